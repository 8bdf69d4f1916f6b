/*
 * core/hibernate.c: tel_hibernate, Erlang's hibernate/3.
 *
 * A hibernating process keeps its control block, pid and mailbox and gives
 * its stack back: it is, to the scheduler, a process that has not run yet
 * (sched/scheduler.h, tel__sched_hibernate), with fn and arg replaced. So
 * the wake-up path is the spawn path: the first pick after a sender wakes
 * it takes a stack from the pool and starts proc_main, which calls the new
 * fn(arg). An idle server that hibernates between requests holds no stack
 * page at all, and a million of them cost their control blocks only.
 *
 * Erlang wakes a hibernating process at once when its queue holds any
 * message; so does this: the saved list (messages an earlier selective
 * receive skipped) or the arrival queue. The park itself is the mailbox
 * park of a receive (one CAS that fails if a message came meanwhile).
 */
#include "include/telar.h"

#include "alloc/mpsc.h"
#include "core/process.h"

int tel_hibernate(tel_fn fn, void *arg)
{
    if (!fn)
        return TEL_EINVAL;
    struct sched *s = tel__sched_self();
    struct proc *p = tel__proc_current(s);
    if (!p)
        return TEL_ENOTPROC;
    p->fn = fn;
    p->arg = arg;
    p->task.flags |= PROC_HIB; /* proc_main looks at what woke it */
    bool ready = p->mbox.saved || tel__mpsc_nonempty(&p->mbox.in);
    tel__sched_hibernate(s, ready);
}
