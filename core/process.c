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
#include "core/link.h"
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
    atomic_store_explicit(&p->xw, 0, memory_order_relaxed);
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

static void release_signal(struct msg *m, void *ctx)
{
    /* Link and monitor requests that came after the exit get TEL_NOPROC
     * (not at teardown: every process is ending then). */
    if (tel__sched_stopping())
        tel__msg_free(m);
    else
        tel__sig_release(ctx, m);
}

void tel__proc_release(struct proc *p)
{
    /* Most processes end with an empty mailbox: then the drain's call and
     * pops are skipped. No sender is left to race with (the block is
     * unreachable), so the consumer-side test is exact here. */
    if (p->mbox.saved || tel__mpsc_nonempty(&p->mbox.in))
        tel__mbox_drain(&p->mbox, release_signal, p);
    /* An ext left: only a spawn undone before it ran (the flag bits alone,
     * XW_OB from a late sender, leave nothing to free). */
    if (tel__ext(p))
        tel__ext_release(p);
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
    if (TEL_UNLIKELY(t->flags & PROC_HIB)) {
        /* Woken from hibernation: by a message, or only by signals? Act
         * on them (an exit signal ends us here); with no message for fn,
         * go back to sleep without running it. */
        t->flags &= ~(uint32_t)PROC_HIB;
        tel__sig_take_all(p);
        if (!p->mbox.saved)
            (void)tel_hibernate(p->fn, p->arg);
    }
    tel__pid_prefetch(p->pid); /* for the exit, while fn runs */
    p->fn(p->arg);
    tel_exit(TEL_NORMAL);
}

static bool proc_park_msg(struct task *t)
{
    struct proc *p = (struct proc *)(void *)t;
    tel__mbox_empty(p);
    return tel__mbox_park(&p->mbox);
}

static bool proc_unpark_msg(struct task *t)
{
    return tel__mbox_unpark(&((struct proc *)(void *)t)->mbox);
}

void (*tel__proc_exit_observer)(tel_pid_t pid, tel_reason_t reason);

static void proc_exit(struct sched *s, struct task *t)
{
    struct proc *p = (struct proc *)(void *)t;
    if (s && atomic_load_explicit(&s->ob_to, memory_order_relaxed))
        tel__send_close(s); /* its last sends go before its exit signals */
    uint32_t f = t->flags;
    bool is_main = f & PROC_MAIN;
    if (TEL_UNLIKELY(f & (TASK_F_NOSTACK | TASK_F_OVERFLOW | TASK_F_CRASHED))) {
        if (f & TASK_F_NOSTACK) {
            p->reason = TEL_NOMEM;
            if (is_main)
                tel__rt_main_nostack = true;
        }
        if (f & TASK_F_OVERFLOW)
            p->reason = TEL_STACK_OVERFLOW;
        if (f & TASK_F_CRASHED)
            p->reason = TEL_CRASHED;
    }
    if (tel__proc_exit_observer)
        tel__proc_exit_observer(p->pid, p->reason);
    if (atomic_load_explicit(&p->xw, memory_order_relaxed) ||
        tel__mpsc_nonempty(&p->mbox.in))
        tel__sig_exit(p);
    if (TEL_UNLIKELY(f & PROC_NAMED))
        tel__reg_exit(p);
    if (tel__pid_exit(p)) {
        /* With one scheduler, the block can go at once. What the epoch
         * waits for is another scheduler that looked p up without a
         * reference; here the only scheduler is this one, and it is past a
         * pick (we run in the context that followed p's switch-out), so no
         * code on it holds such a pointer (sched/epoch.h's rule). Other
         * threads hold references, and tel__pid_exit returned true only
         * when none was held (a later tel__pid_ref fails: ALIVE is clear).
         * This skips the retire, the collect and the epoch advance. */
        if (tel__sched_alone()) /* no spare thread either */
            tel__proc_release(p);
        else
            tel__proc_retire(p);
    }
    if (is_main)
        tel__sched_stop();
}

void tel__timer_fire(struct tw_node *n);
void tel__timer_drop(struct tw_node *n);

/* The id the watchdog names a task by: its pid (the task is alive: its
 * scheduler runs it). */
static void proc_flooded(struct task *t)
{
    tel__mbox_flooded((struct proc *)(void *)t);
}

static uint64_t proc_task_id(struct task *t)
{
    return ((struct proc *)(void *)t)->pid;
}

const struct tel__sched_hooks tel__proc_hooks = {
    .task_main = proc_main,
    .park_msg = proc_park_msg,
    .unpark_msg = proc_unpark_msg,
    .task_exit = proc_exit,
    .timer_fire = tel__timer_fire,
    .timer_drop = tel__timer_drop,
    .task_id = proc_task_id,
    .long_run = tel__rt_long_run,
    .close_sends = tel__send_close,
    .close_sends_async = tel__send_close_async,
    .flooded = proc_flooded,
};

static void kill_one(struct proc *p)
{
    p->reason = TEL_SHUTDOWN;
    tel__sched_timer_disarm(&p->task); /* killed inside a timed wait */
    tel__task_stack_release(&p->task);
    tel__ext_release(p); /* no one is told: every process is ending */
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

/* Inlined: tel_spawn's copy (o == NULL) loses every option test. */
static inline __attribute__((always_inline)) int
spawn(tel_pid_t *out, tel_fn fn, void *arg, const tel_spawn_opts_t *o,
      size_t owned_size)
{
    if (!fn)
        return TEL_EINVAL;
    int stk = 0;
    if (o) {
        if ((unsigned)o->priority > TEL_PRIO_MAX ||
            (o->monitor && !o->monitor_ref))
            return TEL_EINVAL;
        stk = tel__stack_class_of(o->stack_size);
        if (stk < 0)
            return TEL_EINVAL;
    }
    struct sched *s = tel__sched_self();
    struct proc *self = tel__proc_current(s);
    bool ties = o && (o->link || o->monitor);
    if (ties && !self)
        return TEL_ENOTPROC;
    if (!s && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    if (s && atomic_load_explicit(&s->ob_to, memory_order_relaxed))
        tel__send_close(s);
    struct proc *p;
    int rc = tel__proc_create(s ? s->cache : -1, fn, arg, &p);
    if (rc == 0 && (o || owned_size)) {
        struct proc_ext *ce = owned_size ? tel__ext_get(p) : NULL;
        if (owned_size && !ce)
            rc = TEL_ENOMEM;
        if (o) {
            p->task.flags |= (uint32_t)stk << TASK_STK_SHIFT;
            tel__proc_set_level(p, (uint32_t)o->priority, o->cpu_heavy);
        }
        if (rc == 0 && ties)
            rc = tel__link_spawned(self, p, o->link,
                                   o->monitor ? o->monitor_ref : NULL);
        if (rc == 0 && ce) {
            ce->owned = arg; /* the child's from here on */
            ce->owned_size = owned_size;
        }
        if (rc && tel__pid_exit(p)) /* never ran: undo it */
            tel__proc_release(p);
    }
    if (rc == 0) {
        tel_pid_t pid = p->pid; /* p may run and exit before we return */
        tel__sched_spawn(&p->task);
        if (out)
            *out = pid;
    }
    if (!s) {
        tel__rt_leave();
    } else if (self) {
        (void)tel__sched_charge(s, 10);
        tel__sig_poll(self);
    }
    return rc;
}

int tel_spawn(tel_pid_t *out, tel_fn fn, void *arg)
{
    return spawn(out, fn, arg, NULL, 0);
}

int tel_spawn_opt(tel_pid_t *out, tel_fn fn, void *arg,
                  const tel_spawn_opts_t *opts)
{
    return spawn(out, fn, arg, opts, 0);
}

int tel__spawn_owned(tel_pid_t *out, tel_fn fn, void *block, size_t size,
                     const tel_spawn_opts_t *opts)
{
    return spawn(out, fn, block, opts, size);
}

int tel_set_priority(int priority)
{
    if ((unsigned)priority > TEL_PRIO_MAX)
        return TEL_EINVAL;
    struct proc *p = tel__proc_current(tel__sched_self());
    if (!p)
        return TEL_ENOTPROC;
    int old = (int)tel__proc_priority(p);
    tel__proc_set_level(p, (uint32_t)priority,
                        (p->task.flags & PROC_HEAVY) != 0);
    return old;
}

int tel_set_cpu_heavy(bool heavy)
{
    struct proc *p = tel__proc_current(tel__sched_self());
    if (!p)
        return TEL_ENOTPROC;
    int old = (p->task.flags & PROC_HEAVY) != 0;
    tel__proc_set_level(p, tel__proc_priority(p), heavy);
    return old;
}

int tel_preempt_disable(void)
{
    struct proc *p = tel__proc_current(tel__sched_self());
    if (!p)
        return TEL_ENOTPROC;
    uint32_t f = p->task.flags;
    if ((f & TASK_NOPRE_MASK) == TASK_NOPRE_MASK)
        return TEL_ELIMIT;
    p->task.flags = f + (1u << TASK_NOPRE_SHIFT);
    return 0;
}

int tel_preempt_enable(void)
{
    struct sched *s = tel__sched_self();
    struct proc *p = tel__proc_current(s);
    if (!p)
        return TEL_ENOTPROC;
    uint32_t f = p->task.flags;
    if (!(f & TASK_NOPRE_MASK))
        return TEL_EINVAL;
    f -= 1u << TASK_NOPRE_SHIFT;
    p->task.flags = f;
    if (!(f & TASK_NOPRE_MASK)) {
        /* A preemption asked for meanwhile zeroed the slice: yield now. */
        s = tel__sched_charge(s, 1);
        tel__sig_poll(tel__proc_current(s));
    }
    return 0;
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
    s = tel__sched_yield(s);
    tel__sig_poll(tel__proc_current(s));
    return 0;
}

int tel_reduce(uint32_t n)
{
    struct sched *s = tel__sched_self();
    if (!s || !s->cur)
        return TEL_ENOTPROC;
    s = tel__sched_charge(s, n);
    tel__sig_poll(tel__proc_current(s));
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
