/*
 * core/process.c: spawn, exit, exit reasons, process-block lifecycle.
 *
 * Owns: struct proc (control block, embedding struct task first), the hooks
 * the scheduler calls, and the public process calls.
 *
 * Lifecycle:
 *   create: control block (jemalloc, the spawning scheduler's cache),
 *           mailbox, then a pid (visible from here on). No stack yet: the
 *           scheduler takes one from its pool when the process first runs.
 *   run:    task_main runs fn(arg) on that stack; returning is
 *           tel_exit(TEL_NORMAL).
 *   exit:   tel_exit switches away for good; the next context gives the
 *           stack back and calls proc_exit: the pid stops being alive and
 *           its slot is free. The block is retired (sched/epoch.h) and
 *           released once no scheduler can still be sending to it, a few
 *           picks later; if a foreign thread holds a reference then, its
 *           tel__pid_unref retires it instead.
 *   kill_all: tel_run's teardown ends whatever is left (TEL_SHUTDOWN): no
 *           code of theirs runs; their stacks are simply discarded.
 *
 * Concurrency: a block is written by the scheduler running it; senders touch
 * only its mailbox and task state, after a lookup (schedulers) or under a
 * pid reference (other threads).
 */
#include "core/process.h"

#include <stdio.h>
#include <stdlib.h>

#include "alloc/numa.h"
#include "alloc/pool.h"
#include "alloc/stack.h"
#include "core/pid.h"
#include "core/registry.h"
#include "core/runtime.h"

int tel__proc_create(int cache, tel_fn fn, void *arg, struct proc **out)
{
    struct proc *p = tel__pool_alloc(sizeof(*p));
    if (!p)
        return TEL_ENOMEM;
    if (tel__task_init(&p->task) != 0)
        goto err_block;
    p->fn = fn;
    p->arg = arg;
    p->ext = NULL;
    tel__mbox_init(&p->mbox);
    tel_pid_t pid;
    int rc = tel__pid_alloc(cache, p, &pid);
    if (rc) {
        tel__task_fini(&p->task);
        tel__pool_free(p, sizeof(*p));
        return rc;
    }
    *out = p;
    return 0;

err_block:
    tel__pool_free(p, sizeof(*p));
    return TEL_ENOMEM;
}

void tel__proc_release(struct proc *p)
{
    tel__mbox_drain(&p->mbox);
    tel__task_fini(&p->task);
    tel__pool_free(p, sizeof(*p));
}

static void release_retired(struct epoch_node *n)
{
    tel__proc_release(tel_container_of(n, struct proc, task.retired));
}

void tel__proc_retire(struct proc *p)
{
    struct sched *s = tel__sched_self();
    tel__epoch_retire(s ? &s->ep : NULL, &p->task.retired, release_retired);
}

static void proc_main(struct task *t)
{
    struct proc *p = (struct proc *)(void *)t;
    p->fn(p->arg);
    tel_exit(TEL_NORMAL);
}

static bool proc_park_msg(struct task *t)
{
    return tel__mbox_park(&((struct proc *)(void *)t)->mbox);
}

static bool proc_unpark_msg(struct task *t)
{
    return tel__mbox_unpark(&((struct proc *)(void *)t)->mbox);
}

void (*tel__proc_exit_observer)(tel_pid_t pid, tel_reason_t reason);

static void proc_exit(struct sched *s, struct task *t)
{
    struct proc *p = (struct proc *)(void *)t;
    (void)s;
    bool is_main = t->flags & PROC_MAIN;
    if (t->flags & TASK_F_NOSTACK) {
        p->reason = TEL_NOMEM;
        if (is_main)
            tel__rt_main_nostack = true;
    }
    if (t->flags & TASK_F_OVERFLOW)
        p->reason = TEL_STACK_OVERFLOW;
    if (t->flags & TASK_F_CRASHED)
        p->reason = TEL_CRASHED;
    if (tel__proc_exit_observer)
        tel__proc_exit_observer(p->pid, p->reason);
    if (t->flags & PROC_NAMED)
        tel__reg_exit(p);
    if (tel__pid_exit(p))
        tel__proc_retire(p);
    if (is_main)
        tel__sched_stop();
}

void tel__timer_fire(struct tw_node *n);
void tel__timer_drop(struct tw_node *n);

const struct tel__sched_hooks tel__proc_hooks = {
    .task_main = proc_main,
    .park_msg = proc_park_msg,
    .unpark_msg = proc_unpark_msg,
    .task_exit = proc_exit,
    .timer_fire = tel__timer_fire,
    .timer_drop = tel__timer_drop,
};

static void kill_one(struct proc *p)
{
    p->reason = TEL_SHUTDOWN;
    tel__sched_timer_disarm(&p->task); /* killed inside a timed wait */
    if (p->task.stack)
        tel__stack_free(-1, p->task.stack);
    p->task.stack = NULL;
    if (tel__pid_exit(p))
        tel__proc_release(p); /* no scheduler runs: no need to wait */
}

void tel__proc_kill_all(void)
{
    tel__pid_foreach_live(kill_one);
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */
/* ------------------------------------------------------------------ */

int tel_spawn(tel_pid_t *out, tel_fn fn, void *arg)
{
    if (!fn)
        return TEL_EINVAL;
    struct sched *s = tel__sched_self();
    if (!s && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    struct proc *p;
    int rc = tel__proc_create(s ? (int)s->index : -1, fn, arg, &p);
    if (rc == 0) {
        tel_pid_t pid = p->pid; /* p may run and exit before we return */
        tel__sched_spawn(&p->task);
        if (out)
            *out = pid;
    }
    if (!s)
        tel__rt_leave();
    else if (s->cur)
        (void)tel__sched_charge(s, 10);
    return rc;
}

tel_pid_t tel_self(void)
{
    struct proc *p = tel__proc_current(tel__sched_self());
    return p ? p->pid : 0;
}

int tel_yield(void)
{
    struct sched *s = tel__sched_self();
    if (!s || !s->cur)
        return TEL_ENOTPROC;
    (void)tel__sched_yield(s);
    return 0;
}

int tel_reduce(uint32_t n)
{
    struct sched *s = tel__sched_self();
    if (!s || !s->cur)
        return TEL_ENOTPROC;
    (void)tel__sched_charge(s, n);
    return 0;
}

_Noreturn void tel_exit(tel_reason_t reason)
{
    struct sched *s = tel__sched_self();
    struct proc *p = tel__proc_current(s);
    if (!p) {
        fputs("telar: tel_exit called outside a process\n", stderr);
        abort();
    }
    p->reason = reason;
    tel__sched_exit(s);
}

bool tel_is_alive(tel_pid_t pid)
{
    if (pid == 0)
        return false;
    struct sched *s = tel__sched_self();
    if (!s && !tel__rt_enter())
        return false;
    bool alive = tel__pid_alive(pid);
    if (!s)
        tel__rt_leave();
    return alive;
}

uint32_t tel_process_count(void)
{
    struct sched *s = tel__sched_self();
    if (!s && !tel__rt_enter())
        return 0;
    uint32_t n = tel__pid_live();
    if (!s)
        tel__rt_leave();
    return n;
}
