/*
 * core/process.h: the process control block and its lifecycle.
 */
#ifndef TEL_CORE_PROCESS_H
#define TEL_CORE_PROCESS_H

#include <stddef.h>

#include "core/mailbox.h"
#include "core/pid.h"
#include "include/telar.h"
#include "sched/scheduler.h"
#include "sched/task.h"

/* core's flags, in the high 16 bits of task.flags (sched/task.h). */
enum proc_flags {
    PROC_MAIN = 1u << 16, /* tel_run's first process: its exit stops the run */
    PROC_NAMED = 1u << 17, /* it registered itself (core/registry.c) */
    PROC_TRAP = 1u << 18,  /* it traps exits */
    PROC_HIB = 1u << 19,   /* restarting from hibernation (hibernate.c) */
    /* CPU-heavy (tel_set_cpu_heavy): a normal process is queued at the
     * low level (TASK_PRIO_MASK); its own priority is kept in
     * PROC_NOMINAL (bits 21-22) while it is marked. */
    PROC_HEAVY = 1u << 20,
    PROC_NOMINAL_SHIFT = 21,
    PROC_NOMINAL_MASK = 3u << 21,
};


/*
 * 128 bytes (x86-64, no TSan): see sched/task.h for why every word counts.
 *
 * Two cache lines, split by who writes them while the process runs and
 * receives. The first: the task (its scheduler writes it at switches;
 * wakers read its state) and the mailbox's `in`, which every sender
 * exchanges. The second: everything the process itself reads or writes at
 * every send, receive or charge (the mailbox's consumer end and saved list,
 * xw, its own pid), which senders write only to wake it (the stub's link,
 * a direct hand-off) while it waits. With `in` beside the consumer's end,
 * every message from another CPU took the line from the receiver and every
 * pop took it back (fanin at s=2: 92 -> 78 ns per message apart, measured
 * with a padded block). tel_container_of and the scheduler need task first.
 */
struct proc {
    struct task task; /* first: the scheduler sees only this */
    struct mailbox mbox; /* `in` ends the first line (static asserts) */
    /* A struct proc_ext * (links, monitors: core/link.h), allocated the
     * first time the process has any, or'ed with XW_SIG: an exit signal
     * may be waiting in the mailbox (any sender sets it; core/link.c).
     * Off the line senders exchange on: the process reads it at every
     * spawn, yield and charge (tel__sig_poll; at s=2, spawn_exit's main
     * process missed the cache at every tel_spawn with it there). */
    _Atomic uintptr_t xw;
    tel_pid_t pid;
    /* fn is read when the process starts (or restarts from hibernation);
     * reason is written when it ends, after fn is dead. */
    union {
        tel_fn fn;
        tel_reason_t reason;
    };
    void *arg;
};
#if defined(__x86_64__) && !defined(TEL_TSAN)
_Static_assert(sizeof(struct proc) <= 128, "a process block fits 128 bytes");
_Static_assert(offsetof(struct proc, mbox.in) / 64 == 0 &&
                   offsetof(struct proc, mbox.in.out) / 64 == 1 &&
                   offsetof(struct proc, xw) / 64 == 1,
               "the mailbox's `in` alone with the task's line");
#endif

/*
 * The live process named pid, held until tel__proc_put(s, p), or NULL (dead
 * or stale; nothing to put then). s: tel__sched_self(). On a scheduler
 * thread a lookup without a reference inside a lookup window
 * (tel__sched_hold: the holder may copy or make system calls meanwhile,
 * but must not switch); elsewhere a reference (tel__pid_ref: the caller
 * is inside tel__rt_enter).
 */
static inline struct proc *tel__proc_get(struct sched *s, tel_pid_t pid)
{
    if (!s)
        return tel__pid_ref(pid);
    tel__sched_hold(s);
    struct proc *p = tel__pid_lookup(pid);
    if (!p)
        tel__sched_unhold(s);
    return p;
}

static inline void tel__proc_put(struct sched *s, struct proc *p)
{
    if (s)
        tel__sched_unhold(s);
    else
        tel__pid_unref(p);
}

/* The running process, or NULL outside a process. */
static inline struct proc *tel__proc_current(struct sched *s)
{
    return s ? (struct proc *)(void *)s->cur : NULL;
}

/*
 * Create a process (not yet queued). cache: the calling scheduler's index or
 * -1. Returns 0 or TEL_ELIMIT / TEL_ENOMEM, with nothing left behind.
 */
int tel__proc_create(int cache, tel_fn fn, void *arg, struct proc **out);

/*
 * Free an exited process that nobody can reach any more: its unread
 * messages and its control block (its pid slot is already free). Its stack
 * was freed when it exited (or by teardown). Any thread.
 */
void tel__proc_release(struct proc *p);

/* Release p once no scheduler can still hold it (sched/epoch.h). Any
 * thread; p is exited and unreachable by pid. */
void tel__proc_retire(struct proc *p);

/*
 * White-box test hook: when set, proc_exit calls it with the pid and exit
 * reason of every process that ends while the runtime runs (not those
 * ended by tel_run's teardown, TEL_SHUTDOWN), on the thread of the
 * scheduler that ran it. Set it before tel_run, clear it after. Links and
 * monitors (issue 5) are how users will see exit reasons.
 */
extern void (*tel__proc_exit_observer)(tel_pid_t pid, tel_reason_t reason);

/*
 * tel_spawn_opt, and the child owns block (size bytes, from tel__mem_alloc,
 * passed as its arg): it is freed with the child's ext however the child
 * ends, even if it never runs. On failure the caller keeps it.
 */
int tel__spawn_owned(tel_pid_t *out, tel_fn fn, void *block, size_t size,
                     const tel_spawn_opts_t *opts);

/* The hooks core gives the scheduler. */
extern const struct tel__sched_hooks tel__proc_hooks;

/* tel_run's teardown: end every process still alive. */
void tel__proc_kill_all(void);

/* Set p's priority and CPU-heavy mark: the level the scheduler queues it
 * at (task.flags' TASK_PRIO bits) follows from both. p runs, or is not
 * queued yet. */
static inline void tel__proc_set_level(struct proc *p, uint32_t prio,
                                       bool heavy)
{
    uint32_t level = heavy && prio == TEL_PRIO_NORMAL ? TEL_PRIO_LOW : prio;
    uint32_t f = p->task.flags & ~(uint32_t)(TASK_PRIO_MASK | PROC_HEAVY |
                                             PROC_NOMINAL_MASK |
                                             TASK_F_DEMOTED);
    f |= level << TASK_PRIO_SHIFT | prio << PROC_NOMINAL_SHIFT;
    if (heavy)
        f |= PROC_HEAVY;
    p->task.flags = f;
}

static inline uint32_t tel__proc_priority(const struct proc *p)
{
    return (p->task.flags & PROC_NOMINAL_MASK) >> PROC_NOMINAL_SHIFT;
}

#endif /* TEL_CORE_PROCESS_H */
