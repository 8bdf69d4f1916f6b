/*
 * core/mailbox.h: a process's mailbox.
 */
#ifndef TEL_CORE_MAILBOX_H
#define TEL_CORE_MAILBOX_H

#include <stdbool.h>

#include "alloc/mpsc.h"
#include "core/message.h"

struct mailbox {
    struct tel__mpsc in; /* arrivals: any thread pushes */
    /* Owner only: taken from `in` but not received (skipped by a selective
     * receive), oldest first; all older than anything still in `in`. */
    struct msg *saved, *saved_tail;
};

void tel__mbox_init(struct mailbox *mb);

/* Free every message in the mailbox. No sender may be active. */
void tel__mbox_drain(struct mailbox *mb);

/* Park re-check, by the scheduler that parked the owner (who may already
 * be running elsewhere): has anything arrived since its receive found the
 * queue empty? Sound only if the receive parked on a truly empty queue
 * (not with a sender mid-push: then it yields instead; see receive()). */
static inline bool tel__mbox_has_new(struct mailbox *mb)
{
    return tel__mpsc_pushed_since_empty(&mb->in);
}

/*
 * Any thread: deliver m to the process `to` and wake it if it waits. A dead
 * or stale `to` frees m. Returns 0 (never fails once m exists).
 */
void tel__mbox_deliver(tel_pid_t to, struct msg *m);

#endif /* TEL_CORE_MAILBOX_H */
