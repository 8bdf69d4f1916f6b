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

/* Free every message in the mailbox. No sender may be active. With
 * on_signal, signals and calls still queued go to it (it frees them). */
void tel__mbox_drain(struct mailbox *mb, void (*on_signal)(struct msg *m,
                                                          void *ctx),
                     void *ctx);

/* Owner: append m (taken from the arrival queue) to the saved list. */
TEL_INLINE void tel__mbox_save(struct mailbox *mb, struct msg *m)
{
    tel__msg_set_next(m, NULL);
    if (mb->saved_tail)
        tel__msg_set_next(mb->saved_tail, m);
    else
        mb->saved = m;
    mb->saved_tail = m;
}

/* Owner: free the saved messages for which pred(m, ctx) is true. */
void tel__mbox_remove_if(struct mailbox *mb,
                         bool (*pred)(struct msg *m, void *ctx), void *ctx);

/* The running process: tel_sleep (messages that come meanwhile are kept;
 * signals are acted on). 0 or TEL_ENOMEM. */
int tel__mbox_sleep(int64_t ms);

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

/* tel__mbox_deliver, and whether `to` was alive (if not, m is freed). */
bool tel__mbox_deliver_alive(tel_pid_t to, struct msg *m);

struct sched;
/* Push the running task's open send batch and close it (hooks->close_sends;
 * core's calls that must not overtake it). Owner thread. */
void tel__send_close(struct sched *s);

/* hooks->close_sends_async: the same from the preemption signal's handler;
 * a batch for a receiver that died stays (its messages are freed at the
 * next tel__send_close, not in the handler). */
void tel__send_close_async(struct sched *s);

#endif /* TEL_CORE_MAILBOX_H */
