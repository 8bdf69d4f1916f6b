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

/* Park the owner on its mailbox, by the scheduler that switched it out
 * (alloc/mpsc.h): false if a message came since its receive found the
 * arrival queue truly empty (a receive never parks otherwise; it yields
 * while a sender is mid-push). */
static inline bool tel__mbox_park(struct mailbox *mb)
{
    return tel__mpsc_park(&mb->in);
}

/* Any thread: take back the owner's park to wake it for another reason
 * (its receive timer); false if a message already woke it. */
static inline bool tel__mbox_unpark(struct mailbox *mb)
{
    return tel__mpsc_unpark(&mb->in);
}

/*
 * Any thread: deliver m to the process `to` and wake it if it waits. A dead
 * or stale `to` frees m. Returns 0 (never fails once m exists).
 */
void tel__mbox_deliver(tel_pid_t to, struct msg *m);

#endif /* TEL_CORE_MAILBOX_H */
