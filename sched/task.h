/*
 * sched/task.h: struct task, the unit the scheduler runs, and its states.
 *
 * core's struct proc embeds a struct task as its first member; the scheduler
 * knows nothing else of it (tel_container_of gets the proc back).
 */
#ifndef TEL_SCHED_TASK_H
#define TEL_SCHED_TASK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/mpsc.h"
#include "sched/context.h"
#include "sched/epoch.h"
#include "sched/timerwheel.h"

struct sched;

/*
 * Task states. Transitions:
 *   RUNNABLE -> RUNNING     the scheduler that popped it (it owns the task)
 *   RUNNING  -> RUNNABLE    yield or preemption: the next context requeues it
 *   RUNNING  -> WAIT_*      park: published by the next context, after the
 *                           task's stack is no longer in use
 *   WAIT_MSG -> RUNNABLE    whoever takes the mailbox's park mark (the sender
 *                           whose push ends the wait, or the timer) queues it
 *   WAIT_TIMER -> RUNNABLE  the timer's or the parker's CAS; the winner queues
 *   RUNNING  -> EXITED      tel_exit; the next context frees the stack
 */
enum task_state {
    TASK_RUNNING = 0,   /* its stack is in use; it is in no queue */
    TASK_RUNNABLE = 1,  /* in exactly one queue or a next slot */
    TASK_WAIT_MSG = 2,  /* parked until a message or its wait timer */
    TASK_WAIT_TIMER = 3, /* parked until its wait timer (tel_sleep) */
    TASK_EXITED = 4,    /* gone; only the pid table's references remain */
};

/* A task's wait timer while armed (tel__sched_timer_arm). */
struct tw_wait {
    struct tw_node node;
    struct task *task;
};

/* Task flags the scheduler sets (the low 16 bits of flags; core uses the
 * high 16). NOSTACK: no stack could be had, so it never ran. OVERFLOW: it
 * ran off its stack (its guard faulted, its canary was hit, or it switched
 * out too close to its base) and was ended (sched/fault.c). core's
 * task_exit turns them into exit reasons. */
enum {
    TASK_F_NOSTACK = 1u << 0,
    TASK_F_OVERFLOW = 1u << 1,
    /* A fault in its own code (sched/fault.c): core's TEL_CRASHED. */
    TASK_F_CRASHED = 1u << 2,
    /* Running a callback Telar called in the middle of its own work (a
     * selective receive's match function): the preemption signal must not
     * switch it out there (sched/preempt.c). Set and cleared by the task. */
    TASK_F_NOASYNC = 1u << 3,
    /* Its priority (tel_priority_t) in bits 4-5; set before it is first
     * queued, or by the task itself while it runs. */
    TASK_PRIO_SHIFT = 4,
    TASK_PRIO_MASK = 3u << 4,
    /* A normal task that ran past the watchdog's bound without a
     * reduction point (the signal, or the watchdog's request, switched it
     * out): its level bits say low until it parks or is preempted by its
     * reductions again (scheduler.c, "Long runners"). Written by the
     * scheduler running it; core's tel__proc_set_level clears it. */
    TASK_F_DEMOTED = 1u << 6,
    /* Its scheduler holds a send batch (or a candidate) for it (core/
     * mailbox.c, "Batched sends"): hooks->close_sends before it leaves
     * the CPU. Set and cleared by core while the task runs. */
    TASK_F_OB = 1u << 7,
    /* Its stack size class in bits 8-12: 0 is the run's stack size, k > 0
     * is a stack of 2^(k-1) * TEL_MIN_STACK_SIZE bytes (alloc/stack.h).
     * Set before it first runs. */
    TASK_STK_SHIFT = 8,
    TASK_STK_MASK = 31u << 8,
    /* tel_preempt_disable's nesting depth in bits 13-15 (at most 7): while
     * nonzero the preemption signal never switches the task out where it
     * interrupted it (sched/preempt.c). Written by the task itself. */
    TASK_NOPRE_SHIFT = 13,
    TASK_NOPRE_MASK = 7u << 13,
};

/*
 * Every byte here is paid by each of a million idle processes (a hibernated
 * one holds little else), so fields whose lives do not overlap share room:
 *   - sp, stack and home are dead once the task has exited; its block then
 *     waits in `retired` to be freed (sched/epoch.h). Nothing reads them
 *     after the exit: an exited task is in no queue and its mailbox is
 *     never parked, so no wake looks at home.
 *   - A runnable task is in exactly one queue: an injection queue (qnode)
 *     or the global queue or a wake lane (gnext). A node popped from an
 *     injection queue is no longer written by its producers (alloc/mpsc.h).
 */
struct task {
    union {
        struct {
            /* Written by whichever scheduler runs the task. */
            tel__ctx_t sp;      /* saved context, valid when not RUNNING */
            void *stack;        /* its stack's base; NULL while it has none */
            _Atomic(struct sched *) home; /* the scheduler that ran it last */
        };
        struct epoch_node retired; /* after the exit, until it is freed */
    };
    /* Cross-thread. */
    _Atomic uint32_t state; /* enum task_state */
    uint32_t flags;         /* TASK_F_* (low 16 bits) and core's (high 16) */
    union {
        struct tel__mpsc_node qnode; /* link in an injection queue */
        struct task *gnext;          /* in the global queue or a wake lane */
    };
    /* Receive timeouts and tel_sleep: the armed wait timer (allocated
     * while armed, so an idle process does not carry its 40 bytes), and
     * whether it fired (seq_cst; read without the timer, which the task
     * frees when it disarms). */
    struct tw_wait *wait;
    _Atomic uint32_t timer_fired;
    /* The least room its stack was seen with at a switch-out (bytes from
     * its base up to the stack pointer; in what was padding): its stack is
     * trimmed at exit when it went deep. Counted from the base, so the
     * check needs no stack size (a task's size varies, TASK_STK_MASK). */
    uint32_t sp_room;
#ifdef TEL_TSAN
    void *tsan_fiber;
#endif
};

#endif /* TEL_SCHED_TASK_H */
