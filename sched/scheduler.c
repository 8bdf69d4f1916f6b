/*
 * sched/scheduler.c: scheduler threads, the run loop, switching, waking,
 * stealing and the global queue.
 *
 * Owns: the array of struct sched (one per thread, each pinned to a core),
 * the global run queue (overflow and balance), the idle counts, the stop
 * flag, and the hooks core registered.
 *
 * How a switch works. A process never switches to the scheduler loop just to
 * pick its successor: switch_out() picks the next task on the process's own
 * stack and switches to it directly (or to the loop context when there is
 * none), leaving itself in s->handoff with an action. The context that
 * resumes runs finish_handoff() first, and only then is the old task
 * published (requeued, parked, or freed). So no other thread can see a task
 * as runnable or waiting while its stack is still in use: the "parked only
 * after leaving its own stack" rule, as in Go's park_m and Argobots'
 * switch-with-call.
 *
 * Picking (pick_next), in order:
 *   0. a max task, else a high one, else (once per 8 normal picks while
 *      one waits) a low one: see "Priorities" below; one test of a mask
 *      when there are none;
 *   1. every 61st pick, one task from the injection queue, else one from
 *      the backlog or the global queue (the global queue first one time in
 *      8), so none of them starves behind a busy ring; the turn waits for
 *      woken tasks (2 and 3), at most SCHED_WAKE_BURST picks;
 *   2. the runnext slot, which inherits the current slice: a ping-pong pair
 *      that keeps waking each other runs there, but once the slice is spent
 *      runnext goes behind the others (tokio#4323, #5712);
 *   3. the wake lane: tasks woken by their timer (a sleeper, a receive
 *      that timed out), and the tasks other threads queued here (the
 *      injection queue: woken by a message from another thread, spawned
 *      from outside), which every full pick moves into the lane (up to its
 *      burst bound; the rest of a burst goes to the ring); before the
 *      ring, at most SCHED_WAKE_BURST in a row while the ring has work.
 *      Without that move a task another thread woke waited for the
 *      every-61st turn: 61 slices behind a busy ring (2.4 ms among
 *      100 hogs; prio_test);
 *   4. the local ring (a fresh slice), then the backlog (the ring's older
 *      half, moved out when it was full), then injection, then global;
 *   5. a low task (no normal work is ready).
 * Timers are run during picks (every 4th pick when any are armed), at every
 * preemption (a slice has passed) and by the idle loop. So a sleeper among
 * 1,000 busy processes wakes within about one slice (fairness_h1000 p99:
 * 1.1 ms before the wake lane, 20-40 us after).
 *
 * Idle (find_work): timers, max and high, ring and backlog, injection,
 * global, low, steal (a max or high task, else half of the nearest busy
 * victim's ring, else a low task), then spin SCHED_SPIN_NS looking again,
 * then park (see park.c for the protocol). A parked scheduler is woken by injection into
 * its queue, by another scheduler that has spare local work while nobody is
 * spinning, or by its next timer's deadline.
 *
 * Concurrency:
 *   - struct sched's first group and the runnext slot: owner thread only.
 *   - runq: see runq.c. inject: MPSC, any thread pushes, owner pops.
 *   - backlog: owner only (thieves see only the ring).
 *   - global queue: spinlock (rank 1), held for O(1) work only.
 *   - priority queues (s->prio): a spinlock per scheduler, held for O(1)
 *     work only and never with another lock (rank 1, like the global
 *     queue's: the two are never held together).
 *   - task->state: see task.h; wakers CAS WAIT_* -> RUNNABLE.
 *
 * Stacks: a task's stack size is its class's (TASK_STK_MASK; 0 is the
 * run's size): materialize takes a stack of that class, and everything that
 * needs the size (the context, ASan's fiber bounds, freeing) asks
 * task_stack_size. The switch-out check counts the room left above the
 * stack's base (task.sp_room), which needs no size at all.
 *
 * A scheduler stuck in one task (the watchdog in sysmon.c says so): its
 * ring and priority queues are handed to the others, its timers run
 * elsewhere, wake-ups from other threads go elsewhere, and its owner-only
 * lanes are shed from its own thread by the preemption signal; see "Stuck
 * schedulers" below. When every scheduler is stuck (or there is one),
 * spare scheduler threads (up to SCHED_SPARE_MAX, one more each time all
 * at work are stuck) run their work until one is free again ("The spare
 * schedulers").
 */
#define _GNU_SOURCE 1
#include "sched/scheduler.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "alloc/numa.h"
#include "alloc/pool.h"
#include "alloc/stack.h"
#include "alloc/topo.h"
#include "include/telar.h"
#include "sched/preempt.h"
#include "sched/sysmon.h"

#ifdef TEL_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef TEL_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#define SCHED_SPIN_NS 50000u
/* A parked scheduler with a timer due wakes this much before it and spins
 * the rest (find_work's spin, SCHED_SPIN_NS, covers it): a halted vCPU
 * takes tens of microseconds to wake, which made every timer that late
 * on an idle runtime. At most this much spinning per timer that finds its
 * scheduler asleep; no timer, no spinning. */
#define SCHED_TIMER_EARLY_NS 40000u
_Static_assert(SCHED_TIMER_EARLY_NS < SCHED_SPIN_NS,
               "the spin after an early wake must reach the deadline");
#define SCHED_GLOBAL_EVERY 61u
#define SCHED_GLOBAL_TURN 8u
#define SCHED_COLLECT_EVERY 16u /* picks between reclamation attempts */
#define SCHED_WAKE_BURST 8u     /* woken tasks in a row before a ring task */
#define SCHED_DRAIN_MIN 64u     /* receives in a slice that make a drainer */
#define SCHED_FLOOD_SLICES 4u   /* slices of receives in a run: a flood */
#define SCHED_INJECT_BATCH 32u
#define SCHED_LOW_EVERY 8u      /* normal picks before a waiting low task */

/* Bits of struct sched's prio.mask: queue p is non-empty. */
#define PRIO_BIT(p) (1u << (p))
#define PRIO_HI_BITS (PRIO_BIT(TEL_PRIO_MAX) | PRIO_BIT(TEL_PRIO_HIGH))
#define PRIO_Q_BITS 0xfu /* the queues' bits */
/* Not a queue: the watchdog's question waits (s->wd_ask, wd_answer). In
 * this word because the pick tests it anyway: the question costs the pick
 * nothing. Everyone else masks it off (PRIO_Q_BITS). */
#define PRIO_WD_ASK (1u << 8)
/* A process that switches out with less stack than this left is ended
 * with TASK_F_OVERFLOW: the switch path itself (pick_next, spill's batch)
 * must never run into the guard halfway through a queue operation. */
#if defined(TEL_ASAN) || defined(TEL_TSAN)
#define SCHED_STACK_RESERVE 8192u
#else
#define SCHED_STACK_RESERVE 4096u
#endif

/* sys.mode. MODE_STUCK: some scheduler is stuck in one task (the
 * watchdog says so): others run its timers (run_timers). */
enum {
    MODE_STOP = 1u,
    MODE_CANARY = 2u,
    MODE_STUCK = 4u,
    MODE_SPARE_ONE = 1u << 8,
    MODE_SPARE = 0xffu << 8,
};
_Static_assert(SCHED_SPARE_MAX <= 0xffu, "MODE_SPARE counts every spare");
/* MODE_SPARE: a field, not a bit: how many spares are asked to hand their
 * work back and have not yet seen it in their loop (one per spare whose
 * back flag is set; "The spare schedulers"). Every switch-out takes the
 * slow path while it is not 0, where a spare sees its own flag. A count,
 * so that one spare clearing its request never hides another's. */

enum handoff_act {
    ACT_NONE = 0,
    ACT_YIELD,
    ACT_YIELD_WAKE, /* preempted while draining its mailbox: wake lane */
    ACT_PARK_MSG,
    ACT_PARK_TIMER,
    /* From here on the leaving context is never resumed (do_switch). */
    ACT_HIBERNATE,  /* stack freed; parks on its mailbox as a fresh task */
    ACT_RESTART,    /* stack freed; queued at once as a fresh task */
    ACT_EXIT,
};

__thread struct sched *tel__tls_sched __attribute__((tls_model("initial-exec")));

/*
 * One spare scheduler's state beside its struct sched. Written rarely (at
 * most a few times per watchdog sample), so no line of its own.
 *   want: it should run the stuck threads' work. The watchdog writes,
 *     seq_cst; anyone reads.
 *   live: its thread was started. The watchdog writes (seq_cst), once;
 *     back to 0 only if pthread_create failed.
 *   back: it was sent back and has not yet seen that in its loop. Set by
 *     the watchdog (after want = 0), or re-set by the spare's own thread
 *     (must_leave_slow); cleared by the spare's own thread. Each set flag
 *     is counted in sys.mode's MODE_SPARE field (spare_mark_back).
 */
struct spare {
    struct sched *s;
    _Atomic uint32_t want, live, back;
};

static struct {
    struct sched **s;
    struct epoch_local **eps; /* every scheduler's s->ep */
    unsigned n;
    struct tel__sched_hooks hooks;
    size_t stack_size;
    bool pin;
    /* Read at every switch-out, in one load: MODE_STOP (tel__sched_stop)
     * and MODE_CANARY (the stack pool's fallback: check canaries; set at
     * start). */
    _Atomic uint32_t mode;
    /* Lazy parks are allowed: asynchronous preemption is active (set at
     * start; "Lazy parks"). */
    bool lazy;
    /* core may hold sends back (core/mailbox.c, "Batched sends"): only
     * where the signal can make a sender push them (asynchronous
     * preemption is active; set at start), or where a test says so. */
    _Atomic bool batch;
    struct park_counts idle;
    _Atomic unsigned rr; /* round-robin for foreign spawns */
    _Atomic unsigned n_stuck; /* schedulers marked stuck (the watchdog's) */
    unsigned n_eps; /* entries of eps: n, plus the spares' */
    /* The spare schedulers ("The spare schedulers" below): n_sp of them,
     * none without a watchdog. Their parks are counted apart
     * (spare_idle), so that none is ever taken for an idle scheduler. */
    struct spare sp[SCHED_SPARE_MAX];
    unsigned n_sp;
    _Atomic uint64_t spare_runs;
    struct park_counts spare_idle;
    sigset_t sigmask; /* tel_run's thread's signal mask (the spares') */
    /* The global run queue. */
    tel__spin_t glock TEL_ALIGNED_CL;
    struct task *ghead, *gtail;
    _Atomic uint32_t glen;
} sys;

/* ------------------------------------------------------------------ */
/* Switching                                                           */
/* ------------------------------------------------------------------ */

static void task_entry(void *arg, void *user);
static inline bool materialize(struct sched *s, struct task *t);

/* t's stack size class (alloc/stack.h): 0 is the run's size. */
static inline unsigned stack_class(const struct task *t)
{
    return (t->flags & TASK_STK_MASK) >> TASK_STK_SHIFT;
}

/* The bytes of t's stack. */
static inline size_t task_stack_size(const struct task *t)
{
    unsigned k = stack_class(t);
    return TEL_LIKELY(k == 0) ? sys.stack_size : tel__stack_class_bytes(k);
}

/* t's priority (tel_priority_t). */
static inline uint32_t prio_of(const struct task *t)
{
    return (t->flags & TASK_PRIO_MASK) >> TASK_PRIO_SHIFT;
}

/*
 * Switch from the current context to `to` (a task, or the loop when to_task
 * is NULL). dying: the current context will never be resumed.
 */
static inline struct sched *do_switch(struct sched *s, tel__ctx_t *from,
                                      tel__ctx_t to, struct task *to_task,
                                      bool dying)
{
    tel__stat_inc(&s->n_switches); /* a plain load and store */
#ifdef TEL_TSAN
    __tsan_switch_to_fiber(to_task ? to_task->tsan_fiber : s->tsan_loop_fiber,
                           0);
#endif
#ifdef TEL_ASAN
    void *fake = NULL;
    if (to_task)
        __sanitizer_start_switch_fiber(dying ? NULL : &fake, to_task->stack,
                                       task_stack_size(to_task));
    else
        __sanitizer_start_switch_fiber(dying ? NULL : &fake, s->loop_stack_lo,
                                       s->loop_stack_size);
#else
    (void)dying;
    (void)to_task;
#endif
    struct sched *ns = tel__ctx_switch(from, to, s);
#ifdef TEL_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    return ns;
}

/* Any thread: append the chain first..last (n tasks, linked by gnext) to
 * the global queue. Async-signal-safe (tel__sched_shed). */
static void push_global_chain(struct task *first, struct task *last,
                              uint32_t n)
{
    last->gnext = NULL;
    tel__spin_lock(&sys.glock);
    if (sys.gtail)
        sys.gtail->gnext = first;
    else
        sys.ghead = first;
    sys.gtail = last;
    atomic_fetch_add_explicit(&sys.glen, n, memory_order_seq_cst);
    tel__spin_unlock(&sys.glock);
}

static void push_global_batch(struct task **ts, uint32_t n)
{
    if (n == 0)
        return;
    for (uint32_t i = 0; i + 1 < n; i++)
        ts[i]->gnext = ts[i + 1];
    push_global_chain(ts[0], ts[n - 1], n);
}

static inline uint64_t next_rand(struct sched *s);

/*
 * Wake one parked scheduler if nobody is looking for work already: on a
 * scheduler thread the nearest one (its victim rings, alloc/topo.h, each
 * from a random start like a thief's), so that the work it will steal from
 * us stays on our cache and node; elsewhere the first one parked.
 */
static void wake_idle(void)
{
    if (atomic_load_explicit(&sys.idle.n_parked, memory_order_relaxed) == 0 ||
        atomic_load_explicit(&sys.idle.n_spinning, memory_order_relaxed) != 0)
        return;
    struct sched *s = tel__sched_self();
    const unsigned *vic, *ends;
    unsigned n_rings =
        s && !s->spare ? tel__topo_rings(s->index, sys.n, &vic, &ends) : 0;
    for (unsigned r = 0, lo = 0; r < n_rings; lo = ends[r++]) {
        unsigned len = ends[r] - lo;
        unsigned k = len > 1 ? (unsigned)(next_rand(s) % len) : 0;
        for (unsigned i = 0; i < len; i++, k = k + 1 < len ? k + 1 : 0)
            if (tel__park_wake(&sys.s[vic[lo + k]]->park, &sys.idle))
                return;
    }
    if (n_rings)
        return; /* the rings hold every other scheduler */
    for (unsigned i = 0; i < sys.n; i++)
        if (tel__park_wake(&sys.s[i]->park, &sys.idle))
            return;
}

/*
 * Priorities (tel_priority_t, in task.flags): BEAM's four levels. Normal
 * tasks use everything above and below (runnext, wake lane, ring, backlog,
 * injection, global queue, stealing) and pay one load and branch per pick
 * for the rest: s->prio.mask, a bit per non-empty priority queue, which
 * stays 0 (and its line shared and clean) while nothing else runs.
 *
 * The other levels each have a FIFO per scheduler (s->prio), under a
 * spinlock that wakers on other threads and thieves take too: tasks of
 * these levels are rare, so a lock is cheaper than another lock-free
 * structure on the normal paths, and it lets an idle scheduler take one
 * from a busy one. Every path that makes a task runnable routes by its
 * level (put_next, push_tail, requeue, push_wake, inject), so a max, high
 * or low task is never in a normal queue, however it was woken (a message
 * from this thread or another, its timer, a yield, a spawn). core writes
 * the level before a task is first queued, or while it runs (it is in no
 * queue then), so the level a queue was chosen by cannot change under it.
 *
 * The rules, per scheduler (pick_raw):
 *   - max runs before anything else, high before normal and low: a max or
 *     high task that yields or is preempted goes on running while no task
 *     of its level or above is queued (nothing_ahead), and so can starve
 *     the levels below it, as in BEAM;
 *   - low runs once per SCHED_LOW_EVERY (8) normal picks while it waits,
 *     so normal work cannot starve it, and whenever no normal work is
 *     ready; low cannot starve normal (one pick in 9 at most). Its turn
 *     comes after the woken tasks waiting (runnext, the wake lane; at
 *     most SCHED_WAKE_BURST wake-lane picks in a row, the ring's bound
 *     too): a low slice is long, and a demoted long runner's lasts until
 *     the watchdog's signal.
 * An idle scheduler steals max and high work first (one task from the
 * nearest victim that has some), then half a ring of normal work, then one
 * low task: higher levels may thus run on any scheduler, and a queued
 * high task wakes a parked scheduler (wake_idle) to take it. A woken max
 * or high task does not preempt the running task: it runs at the next
 * pick (at most a slice later; BEAM does the same).
 */

/* Any thread: queue t (RUNNABLE, of level p, not normal) on s. seq_cst on
 * the mask: a parking scheduler stores PARKED and then loads the mask
 * (work_visible), the Dekker pair of park.c. */
static void prio_push(struct sched *s, struct task *t, uint32_t p)
{
    t->gnext = NULL;
    tel__spin_lock(&s->prio.lock);
    if (s->prio.tail[p])
        s->prio.tail[p]->gnext = t;
    else
        s->prio.head[p] = t;
    s->prio.tail[p] = t;
    atomic_fetch_or_explicit(&s->prio.mask, PRIO_BIT(p),
                             memory_order_seq_cst);
    tel__spin_unlock(&s->prio.lock);
}

/* Any thread: the oldest task of level p queued on s, or NULL. */
static struct task *prio_pop(struct sched *s, uint32_t p)
{
    if (!(atomic_load_explicit(&s->prio.mask, memory_order_relaxed) &
          PRIO_BIT(p)))
        return NULL;
    tel__spin_lock(&s->prio.lock);
    struct task *t = s->prio.head[p];
    if (t) {
        s->prio.head[p] = t->gnext;
        if (!t->gnext) {
            s->prio.tail[p] = NULL;
            atomic_fetch_and_explicit(&s->prio.mask, ~PRIO_BIT(p),
                                      memory_order_relaxed);
        }
    }
    tel__spin_unlock(&s->prio.lock);
    return t;
}

/* Any thread: the oldest max task queued on s, else the oldest high one. */
static struct task *prio_pop_hi(struct sched *s)
{
    struct task *t = prio_pop(s, TEL_PRIO_MAX);
    return t ? t : prio_pop(s, TEL_PRIO_HIGH);
}

/* Owner: t (RUNNABLE) is not normal: queue it on its level here, and wake
 * an idle scheduler, which may take it. */
static TEL_NOINLINE void push_prio(struct task *t, struct sched *s)
{
    prio_push(s, t, prio_of(t));
    if (sys.n > 1)
        wake_idle();
}

/*
 * The backlog: when the ring is full, its older half moves to the backlog,
 * an owner-only growable FIFO array of task pointers. The ring refills from
 * the backlog's head when it runs dry, and every 61st pick takes one task
 * from it, so the backlog cannot starve.
 *
 * Why not spill to the global queue as Go does: moving a task into a linked
 * list touches it (a cache miss each), and the global queue's lock was
 * contended. In skynet every task was moved 2.6 times on average, and the
 * global queue was 36% of the time at s=2. The backlog moves pointers with
 * memcpy and takes no lock.
 *
 * Why the older half, not FIFO overflow (new tasks behind the backlog):
 * running the newest tasks first makes a spawn tree run depth-first, so few
 * parents are alive at once. Strict FIFO runs skynet breadth-first: 111,000
 * parents each keep a stack page, 4.5 times the peak memory (492 vs 109 MB
 * at s=1). Fairness does not suffer: a yielded or preempted task still goes
 * behind everything (requeue), and the backlog gets its share above.
 *
 * If the backlog cannot grow (out of memory) the half goes to the global
 * queue instead, which always works.
 */
#define BACKLOG_MIN 1024u /* first capacity; a power of two */

static bool backlog_grow(struct sched *s, uint32_t need)
{
    uint32_t len = s->bl_tail - s->bl_head;
    uint32_t cap = s->bl_cap ? s->bl_cap : BACKLOG_MIN;
    while (cap - len < need)
        cap *= 2;
    if (cap == s->bl_cap)
        return true;
    s->no_shed = 1; /* the preemption signal's shed would race this */
    atomic_signal_fence(memory_order_seq_cst);
    struct task **nb = tel__mem_alloc(sizeof(*nb) * cap);
    if (nb) {
        for (uint32_t i = 0; i < len; i++)
            nb[i] = s->bl[(s->bl_head + i) & (s->bl_cap - 1)];
        if (s->bl)
            tel__mem_free(s->bl, sizeof(*s->bl) * s->bl_cap);
        s->bl = nb;
        s->bl_cap = cap;
        s->bl_head = 0;
        s->bl_tail = len;
    }
    atomic_signal_fence(memory_order_seq_cst);
    s->no_shed = 0;
    return nb != NULL;
}

/* Owner: the ring is full; move its older half (and t) out of the way. */
static void spill(struct sched *s, struct task *t)
{
    struct task *batch[RUNQ_CAP / 2 + 1];
    uint32_t n = tel__runq_grab_half(&s->runq, batch);
    batch[n++] = t;
    if (s->bl_cap - (s->bl_tail - s->bl_head) < n && !backlog_grow(s, n)) {
        push_global_batch(batch, n);
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        s->bl[(s->bl_tail + i) & (s->bl_cap - 1)] = batch[i];
    s->bl_tail += n;
}

static inline bool backlog_empty(const struct sched *s)
{
    return s->bl_head == s->bl_tail;
}

/* Owner: the backlog's oldest task, or NULL. */
static struct task *backlog_pop(struct sched *s)
{
    if (backlog_empty(s))
        return NULL;
    return s->bl[s->bl_head++ & (s->bl_cap - 1)];
}

/* Owner: the ring is empty; move up to half a ring from the backlog into it
 * and return the first of them. */
static struct task *backlog_refill(struct sched *s)
{
    struct task *first = backlog_pop(s);
    for (uint32_t i = 1; i < RUNQ_CAP / 2 && !backlog_empty(s); i++)
        tel__runq_push(&s->runq, backlog_pop(s)); /* the ring was empty */
    if (backlog_empty(s) && s->bl_cap > 64 * BACKLOG_MIN) {
        /* A burst is over: do not keep megabytes for the next one. */
        tel__mem_free(s->bl, sizeof(*s->bl) * s->bl_cap);
        s->bl = NULL;
        s->bl_cap = s->bl_head = s->bl_tail = 0;
    }
    return first;
}

/* Owner: queue t on s (the ring, spilling when it is full). */
static inline void enqueue_local(struct sched *s, struct task *t)
{
    if (TEL_UNLIKELY(!tel__runq_push(&s->runq, t)))
        spill(s, t);
}

/* Owner: the next task queued here: the ring, then the backlog. */
static inline struct task *pop_local(struct sched *s)
{
    struct task *t = tel__runq_pop(&s->runq);
    /* The task after t: its block is often still in the cache of the
     * scheduler that spawned it (a steal brought it here); fetch it while
     * t runs. A racy peek: a stale pointer costs a useless prefetch, never
     * a fault. */
    struct runq *q = &s->runq;
    __builtin_prefetch(atomic_load_explicit(
        &q->buf[atomic_load_explicit(&q->head, memory_order_relaxed) &
                (RUNQ_CAP - 1)],
        memory_order_relaxed));
    if (TEL_UNLIKELY(!t) && !backlog_empty(s))
        t = backlog_refill(s);
    return t;
}

/* Owner: append t (RUNNABLE) to s's queue; new_work may wake an idle
 * scheduler to steal. */
static void push_tail(struct sched *s, struct task *t, bool new_work)
{
    if (TEL_UNLIKELY(prio_of(t) != TEL_PRIO_NORMAL)) {
        push_prio(t, s);
        return;
    }
    enqueue_local(s, t);
    if (new_work && sys.n > 1)
        wake_idle();
}

/*
 * Owner: t (RUNNABLE) used up its slice or yielded: it goes behind every
 * runnable task. When this scheduler has more runnable tasks than its ring
 * holds, or the global queue has any, that is the global queue's tail (as Go
 * does with preempted goroutines): every scheduler draws from it when its
 * own queue runs dry, so CPU-bound tasks spread over the schedulers and take
 * turns round-robin instead of staying where they were spawned.
 */
static void requeue(struct sched *s, struct task *t)
{
    if (TEL_UNLIKELY(prio_of(t) != TEL_PRIO_NORMAL)) {
        push_prio(t, s);
        return;
    }
    if (TEL_UNLIKELY(!backlog_empty(s) ||
                     atomic_load_explicit(&sys.glen, memory_order_relaxed))) {
        push_global_batch(&t, 1);
        if (sys.n > 1)
            wake_idle();
        return;
    }
    push_tail(s, t, false);
}

/* Owner: t runs next; the task it displaces goes behind the others. */
static void put_next(struct sched *s, struct task *t)
{
    if (TEL_UNLIKELY(prio_of(t) != TEL_PRIO_NORMAL)) {
        push_prio(t, s);
        return;
    }
    struct task *old = s->runnext;
    s->runnext = t;
    if (old) { /* normal: runnext holds no other level */
        enqueue_local(s, old);
        if (sys.n > 1)
            wake_idle();
    }
}

/*
 * Owner: t (RUNNABLE) was woken by its timer: it goes to the wake lane,
 * which is picked before the ring (see pick_raw), so a sleeper does not wait
 * behind up to 256 slices of busy processes. At most SCHED_WAKE_BURST woken
 * tasks run in a row while the ring has work, so a stream of wake-ups
 * cannot starve the ring either.
 */
static void push_wake(struct sched *s, struct task *t)
{
    if (TEL_UNLIKELY(prio_of(t) != TEL_PRIO_NORMAL)) {
        push_prio(t, s);
        return;
    }
    t->gnext = NULL;
    if (s->wk_tail)
        s->wk_tail->gnext = t;
    else
        s->wk_head = t;
    s->wk_tail = t;
    /* The lane is this scheduler's alone (no thief takes from it): an
     * idle one is worth waking only for the ring's work it leaves behind
     * meanwhile. A ring of processes passing a token (thread_ring) spends
     * its slice every few hundred hops and lands here; waking the other
     * scheduler each time kept it spinning for nothing (1.5 CPUs busy
     * for one runnable process). */
    if (sys.n > 1 && tel__runq_len(&s->runq) > 0)
        wake_idle();
}

static inline struct task *pop_wake(struct sched *s)
{
    struct task *t = s->wk_head;
    if (t) {
        s->wk_head = t->gnext;
        if (!s->wk_head)
            s->wk_tail = NULL;
    }
    return t;
}

static void fire_timer(struct tw_node *n, void *ctx)
{
    struct sched *s = ctx;
    if (n->kind == TW_HANDLE) {
        n->next = s->fired_handles;
        s->fired_handles = n;
        return;
    }
    /* A wait timer: wake its task if it is parked. Under the wheel lock, so
     * the task cannot disarm (and go on to free itself) until we are done.
     * A task that is not parked yet will see `fired` when it parks.
     *
     * A receive parks on its mailbox: take the park back, unless a sender
     * did. The attempt does not look at the state first: the parker stores
     * WAIT_MSG relaxed, and only `fired` and the mailbox's `in` (both
     * seq_cst) order the timer against it. On anything else it fails. */
    struct task *t = tel_container_of(n, struct tw_wait, node)->task;
    atomic_store_explicit(&t->timer_fired, 1, memory_order_seq_cst);
    if (sys.hooks.unpark_msg(t)) {
        atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
        push_wake(s, t);
        return;
    }
    uint32_t st = atomic_load_explicit(&t->state, memory_order_seq_cst);
    if (st == TASK_WAIT_TIMER &&
        atomic_compare_exchange_strong_explicit(&t->state, &st, TASK_RUNNABLE,
                                                memory_order_acq_rel,
                                                memory_order_acquire))
        push_wake(s, t);
}

static void help_stuck(struct sched *s);

/* Owner: while a scheduler is stuck (MODE_STUCK), fire its due timers
 * too. Where the mode word is read anyway (a switch-out's slow path) or
 * off the switch path (a preemption, the idle loop). */
static inline void help_if_stuck(struct sched *s)
{
    if (TEL_UNLIKELY(atomic_load_explicit(&sys.mode, memory_order_relaxed) &
                     MODE_STUCK))
        help_stuck(s);
}

/* Owner: fire due timers; deliver TW_HANDLE ones outside the lock. */
static void run_timers(struct sched *s)
{
    if (tel__tw_empty(&s->wheel))
        return;
    tel__tw_expire(&s->wheel, tel__now_ns(), fire_timer, s);
    while (s->fired_handles) {
        struct tw_node *n = s->fired_handles;
        s->fired_handles = n->next;
        sys.hooks.timer_fire(n);
    }
}

/*
 * Owner: take a fair share of the global queue, at most max(room, 1)
 * tasks: the first is returned (to run now), the rest go to s's ring.
 * Taking one even when the ring is full is what keeps the global queue from
 * starving behind a ring of busy tasks.
 *
 * The lock is held only for O(1) work: the whole list is detached, the
 * share is walked and queued outside the lock, and what is left goes back
 * in front of anything pushed meanwhile (it is older). Walking the share
 * under the lock (a cache miss per task) made the other scheduler spin for
 * microseconds at a time: 36% of skynet's time at s=2, and far worse when
 * the hypervisor preempted the vCPU holding the lock.
 */
static struct task *take_global(struct sched *s, uint32_t room)
{
    if (atomic_load_explicit(&sys.glen, memory_order_relaxed) == 0)
        return NULL;
    tel__spin_lock(&sys.glock);
    struct task *first = sys.ghead, *last = sys.gtail;
    uint32_t len = atomic_load_explicit(&sys.glen, memory_order_relaxed);
    sys.ghead = sys.gtail = NULL;
    atomic_store_explicit(&sys.glen, 0, memory_order_relaxed);
    tel__spin_unlock(&sys.glock);
    if (!first)
        return NULL;
    uint32_t n = len / sys.n + 1;
    if (n > len)
        n = len;
    if (n > room)
        n = room ? room : 1;
    struct task *t = first->gnext;
    for (uint32_t i = 1; i < n; i++) {
        struct task *next = t->gnext;
        enqueue_local(s, t); /* n <= room: into the ring */
        t = next;
    }
    if (n < len) {
        tel__spin_lock(&sys.glock);
        last->gnext = sys.ghead;
        sys.ghead = t;
        if (!sys.gtail)
            sys.gtail = last;
        atomic_fetch_add_explicit(&sys.glen, len - n, memory_order_seq_cst);
        tel__spin_unlock(&sys.glock);
        /* Someone may have parked while the list was detached. */
        if (sys.n > 1)
            wake_idle();
    }
    return first;
}

/* Owner: take injected tasks; the first is returned, up to a batch queued. */
static struct task *take_inject(struct sched *s)
{
    struct tel__mpsc_node *n = tel__mpsc_pop(&s->inject);
    if (!n)
        return NULL;
    struct task *first = tel_container_of(n, struct task, qnode);
    for (uint32_t i = 0; i < SCHED_INJECT_BATCH; i++) {
        n = tel__mpsc_pop(&s->inject);
        if (!n)
            break;
        enqueue_local(s, tel_container_of(n, struct task, qnode));
    }
    return first;
}

/* Owner, at a full pick: tasks other threads queued here (woken by a
 * message or a timer elsewhere, or spawned from outside) join the wake
 * lane, as tasks woken here do, rather than waiting for the every-61st
 * turn behind a busy ring (item 3 of the pick order). A burst of them
 * fills the lane up to its burst bound and goes on to the ring, where an
 * idle scheduler can steal it (the lane is this scheduler's alone). */
static TEL_NOINLINE void inject_to_wake(struct sched *s)
{
    bool spread = false;
    for (uint32_t i = 0; i < SCHED_INJECT_BATCH; i++) {
        struct tel__mpsc_node *n = tel__mpsc_pop(&s->inject);
        if (!n)
            break;
        struct task *t = tel_container_of(n, struct task, qnode);
        if (i < SCHED_WAKE_BURST) {
            push_wake(s, t);
        } else {
            push_tail(s, t, false);
            spread = true;
        }
    }
    if (spread && sys.n > 1)
        wake_idle();
}

/* Owner, at a pick, when it has retired blocks: now and then, free what
 * was retired long enough ago (sched/epoch.h). */
static inline void collect(struct sched *s)
{
    if (s->tick % SCHED_COLLECT_EVERY == 0 && s->ep.head)
        (void)tel__epoch_collect(&s->ep, sys.eps, sys.n_eps);
}

static inline uint32_t room(struct sched *s)
{
    return RUNQ_CAP - tel__runq_len(&s->runq);
}

/* Owner: the next task to run, or NULL. */
/*
 * Owner: a task of another level than normal, when one must run now (the
 * mask pm is not 0): max, then high, then low if it waited
 * SCHED_LOW_EVERY normal picks. NULL: pick normal work (counted).
 */
static TEL_NOINLINE struct task *pick_prio(struct sched *s, uint32_t pm)
{
    struct task *t = NULL;
    if ((pm & PRIO_HI_BITS) && (t = prio_pop_hi(s)))
        goto found;
    if (pm & PRIO_BIT(TEL_PRIO_LOW)) {
        /* Its turn waits for the woken tasks (runnext, the wake lane), as
         * the ring does (at most SCHED_WAKE_BURST picks): a low task runs
         * a whole slice, and one that never calls the runtime (a demoted long
         * runner) runs until the watchdog's signal, a millisecond or
         * more; a process just woken by its timer or a message must not
         * wait behind that (fairness/nc: 4% of the ticker's wake-ups
         * waited 1.6 ms so, its p99). */
        if (s->low_skip >= SCHED_LOW_EVERY &&
            ((s->wk_head == NULL && s->runnext == NULL) ||
             s->wk_streak >= SCHED_WAKE_BURST)) {
            s->low_skip = 0;
            if ((t = prio_pop(s, TEL_PRIO_LOW)))
                goto found;
        } else {
            s->low_skip++;
        }
    }
    return NULL;
found:
    s->reds = (int32_t)s->slice;
    return t;
}

/* Owner: no normal work is ready: a low task runs, if one waits. */
static TEL_NOINLINE struct task *pick_low(struct sched *s)
{
    struct task *t = prio_pop(s, TEL_PRIO_LOW);
    if (t) {
        s->low_skip = 0;
        s->reds = (int32_t)s->slice;
    }
    return t;
}

/*
 * Owner, at a pick whose tick makes it the global turn: put the turn off
 * to the next pick when a woken task waits (runnext, the wake lane), at
 * most SCHED_WAKE_BURST picks in a row, as the low level's turn waits
 * (pick_prio). The task the turn takes runs a whole slice; a process just
 * woken by its timer or a message must not wait behind it (fairness: the
 * turn came between 5 to 9 of a ticker's 2,000 wake-ups and its run, and
 * moved the woken task behind the whole ring). The tick goes back by one,
 * so the next pick is the turn again; the bound keeps a ping-pong pair,
 * which always has a woken task, from putting it off for ever. Tick's
 * other uses (timers every 4th pick, collection) only run a little more
 * often meanwhile.
 */
static inline bool defer_global_turn(struct sched *s)
{
    if ((s->runnext != NULL || s->wk_head != NULL) &&
        s->g_defer < SCHED_WAKE_BURST &&
        /* Only if the turn has a task to take: an empty turn costs
         * nothing to take, and putting it off would send every pick of a
         * ping-pong pair down the full path meanwhile. */
        (!backlog_empty(s) ||
         atomic_load_explicit(&sys.glen, memory_order_relaxed) ||
         tel__mpsc_hint_nonempty(&s->inject))) {
        s->g_defer++;
        s->tick--;
        return true;
    }
    s->g_defer = 0;
    return false;
}

/* Owner: normal work (see the top of the file for the order), else low. */
static inline struct task *pick_normal(struct sched *s)
{
    struct task *t;
    if (TEL_UNLIKELY(s->tick % SCHED_GLOBAL_EVERY == 0) &&
        !defer_global_turn(s)) {
        /* One task (Go's globrunqget(pp, 1)): a batch here would keep
         * the ring from ever running dry, and the backlog is refilled only
         * then. The backlog goes first but one time in SCHED_GLOBAL_TURN:
         * its tasks are older than the preempted ones in the global queue,
         * and a process that spawns workers faster than they run (fjcreate)
         * must not get a turn every 122 picks, or its queue grows without
         * bound (100,000 queued workers, 1.5x the time). */
        bool g_first = (s->tick / SCHED_GLOBAL_EVERY) % SCHED_GLOBAL_TURN == 0;
        if ((t = take_inject(s)) ||
            (g_first && (t = take_global(s, 0))) ||
            (t = backlog_pop(s)) || (t = take_global(s, 0))) {
            if (s->runnext) {
                /* Woken, not preempted: ahead of the ring still. */
                push_wake(s, s->runnext);
                s->runnext = NULL;
            }
            s->reds = (int32_t)s->slice;
            return t;
        }
    }
    if ((s->tick & 3) == 0)
        run_timers(s);
    if (s->runnext) {
        t = s->runnext;
        s->runnext = NULL;
        if (s->reds > 0)
            return t;
        /* Slice spent. It has not run since it was woken, so it waits in
         * the wake lane, not behind the preempted tasks; the lane's burst
         * bound keeps a ping-pong pair from taking more than 8 picks in 9
         * from the ring (tokio#4323). */
        push_wake(s, t);
    }
    s->reds = (int32_t)s->slice;
    if (TEL_UNLIKELY(tel__mpsc_hint_nonempty(&s->inject)))
        inject_to_wake(s);
    if (s->wk_head && (s->wk_streak < SCHED_WAKE_BURST ||
                       (tel__runq_len(&s->runq) == 0 && backlog_empty(s)))) {
        s->wk_streak++;
        return pop_wake(s);
    }
    s->wk_streak = 0;
    if ((t = pop_local(s)))
        return t;
    if ((t = pop_wake(s)))
        return t;
    if ((t = take_inject(s)))
        return t;
    if ((t = take_global(s, room(s))))
        return t;
    return pick_low(s);
}

/*
 * Owner, at the end of a run (the pick that ends it, or a slice renewed
 * for a task that goes on alone): the watchdog asked who ran the run with
 * sequence wd_ask (sysmon.c). If that is the run ending now, answer with
 * the running task's id; a question about an older run is stale. Either
 * way the question is done.
 */
static TEL_NOINLINE void wd_answer(struct sched *s)
{
    /* acquire: pairs with the release in tel__sched_wd_ask. The watchdog
     * asks about a run only after it saw it, so no newer question can come
     * before this run ends. */
    atomic_fetch_and_explicit(&s->prio.mask, ~PRIO_WD_ASK,
                              memory_order_acquire);
    uint64_t ask = atomic_load_explicit(&s->wd_ask, memory_order_relaxed);
    if (ask == tel__sched_run_seq(s) && s->cur) {
        atomic_store_explicit(&s->wd_run_id, sys.hooks.task_id(s->cur),
                              memory_order_relaxed);
        /* release: pairs with the watchdog's acquire (take_answer). */
        atomic_store_explicit(&s->wd_run_seq, ask, memory_order_release);
    }
}

void tel__sched_wd_ask(struct sched *s, uint64_t seq)
{
    atomic_store_explicit(&s->wd_ask, seq, memory_order_relaxed);
    atomic_fetch_or_explicit(&s->prio.mask, PRIO_WD_ASK, memory_order_release);
}

/* Owner: the next task to run, or NULL. */
static struct task *pick_raw(struct sched *s)
{
    struct task *t;
    s->tick++;
    /* Quiescent (sched/epoch.h); now and then, free what was retired long
     * enough ago. One test covers that, the other levels and the
     * watchdog's question (PRIO_WD_ASK): pm and ep.head are 0 on the
     * normal path. A timer that fires in this pick's run_timers queues a
     * max or high task for the next pick (timers run every 4th pick
     * anyway). */
    tel__epoch_quiescent(&s->ep);
    if (TEL_UNLIKELY(((uintptr_t)s->ep.head |
                      atomic_load_explicit(&s->prio.mask,
                                           memory_order_relaxed)) != 0)) {
        collect(s);
        uint32_t pm =
            atomic_load_explicit(&s->prio.mask, memory_order_relaxed);
        if (pm & PRIO_WD_ASK)
            wd_answer(s);
        pm &= PRIO_Q_BITS;
        if (pm && (t = pick_prio(s, pm)))
            return t;
    }
    return pick_normal(s);
}

/* Owner: the next task to run, with a stack, or NULL. */
static TEL_NOINLINE struct task *pick_next_full(struct sched *s)
{
    struct task *t;
    while ((t = pick_raw(s)) && TEL_UNLIKELY(!t->stack) && !materialize(s, t))
        ;
    return t;
}

/*
 * Owner: pick_next_full, with its most common outcome inline: runnext, in
 * the current slice, when this pick has nothing else to do (no other
 * level, no reclamation or watchdog question, not the every-61st look, no
 * timer to run). It decides from loads alone and then does exactly what
 * pick_raw would (tick, quiescent state, runnext); anything else takes the
 * full pick, which starts from the same state. A ping-pong switch then
 * saves the full pick's register saves. Keep the two in step: the order
 * of the checks is pick_raw's and pick_normal's.
 */
static inline struct task *pick_next(struct sched *s)
{
    struct task *t = s->runnext;
    uint32_t tick = s->tick + 1;
    if (TEL_LIKELY(t != NULL && s->reds > 0 && t->stack != NULL) &&
        ((uintptr_t)s->ep.head |
         atomic_load_explicit(&s->prio.mask, memory_order_relaxed)) == 0 &&
        tick % SCHED_GLOBAL_EVERY != 0 &&
        ((tick & 3) != 0 || tel__tw_empty(&s->wheel))) {
        s->tick = tick;
        tel__epoch_quiescent(&s->ep);
        s->runnext = NULL;
        return t;
    }
    return pick_next_full(s);
}

/* The lowest stack pointer t was seen at (for trimming its stack). */
static inline const char *low_sp(const struct task *t)
{
    return (const char *)t->stack + t->sp_room;
}

/*
 * Lazy parks. A receive that finds its mailbox empty parks on it (one CAS
 * that marks the arrival queue, alloc/mpsc.h), and the sender that ends the
 * wait takes the mark back (another). When that sender is the very task
 * the parker had just woken, and runs next on the same thread (a ping-pong
 * pair, a call and its reply), those two read-modify-writes order nothing:
 * the parked task could not run before that run ended anyway. So when a
 * task parks on its mailbox and the next task is the one its message woke
 * here (s->woke, set by tel__sched_wake_parked), the context that resumes
 * does not publish the park: it keeps the task in s->lazy (WAIT_MSG, its
 * mailbox unmarked) until the run it starts ends. A process running here
 * that sends to it meanwhile (tel__sched_take_lazy, core/mailbox.c) takes
 * it from the slot and wakes it without any atomic; at the end of the run
 * (the next finish_handoff, a yield or a preemption) the park is published
 * as before (publish_park): the CAS then fails if a message came in the
 * meantime, and the task is queued with the woken tasks (the wake lane). A
 * ping-pong round trip thus does no read-modify-write at all.
 *
 * What it costs: a message from another thread (or a fired timer) to a
 * lazily parked task pushes without finding a mark, so it wakes nobody;
 * the task is queued when the run on its scheduler ends, not at once, as a
 * task in runnext waits for it. That run ends at its next switch, yield or
 * preemption; a run that reaches the watchdog's bound gets the preemption
 * signal, whose handler either switches it out (a preemption: the park is
 * published) or, where it cannot, publishes the park itself
 * (tel__sched_publish_lazy) when the interrupted code is not Telar's and
 * holds no Telar lock (the owner's window between reading s->lazy and
 * clearing it calls nothing, so it is never interrupted outside Telar's
 * code). So a lazily parked task waits at most about a bound for a run
 * that never ends, and only when asynchronous preemption is active: without
 * it (TSan builds, TEL_CFG_NO_ASYNC_PREEMPT, no watchdog) every park is
 * published at once (sys.lazy). The loop context never keeps a lazy park
 * (it may go to sleep), nor does a hibernation, a park that switches to any
 * other task than the one it woke, or a stuck scheduler's shed, which
 * publishes it with the other owner-only lanes.
 *
 * Rejected: publishing at the next pick instead of the run's end. The pick
 * that follows the park is the very switch to the sender, so the slot
 * would always be empty by the time the sender sends. Letting the
 * watchdog's thread publish the slot: the owner would then need a
 * read-modify-write to take it, the cost this saves.
 */

/* Owner: publish t's park on its mailbox (ACT_PARK_MSG). Returns false if
 * a message or its timer came first: t is RUNNABLE then, and the caller
 * queues it. Async-signal-safe (tel__sched_shed). */
static inline bool publish_park(struct task *t)
{
    /*
     * Park on the mailbox (alloc/mpsc.h): one CAS, which fails if a
     * message came meanwhile. Once it succeeds, a sender may wake t (and
     * it may run elsewhere) at any moment, but t's block stays valid until
     * this scheduler's next pick (sched/epoch.h). Then the timer: it sets
     * `fired` and tries to take the park back; we took the park, then load
     * `fired`: all seq_cst, so if it fired before our park it failed and
     * we see `fired` here. Whoever takes the park back (the timer or we)
     * wakes t; a sender who took it first already did.
     */
    if (!sys.hooks.park_msg(t) ||
        (atomic_load_explicit(&t->timer_fired, memory_order_seq_cst) &&
         sys.hooks.unpark_msg(t))) {
        atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
        return false;
    }
    return true;
}

/* Owner: the run that followed a lazy park ends (or may go on for long):
 * publish the park (see "Lazy parks"). */
static inline void flush_lazy(struct sched *s)
{
    struct task *t = s->lazy;
    if (TEL_LIKELY(!t))
        return;
    s->lazy = NULL;
    atomic_signal_fence(memory_order_seq_cst); /* tel__sched_publish_lazy */
    if (!publish_park(t))
        push_wake(s, t); /* woken meanwhile: see ACT_PARK_MSG */
}

/* The context that resumed publishes the task the last switch left. */
static TEL_NOINLINE void finish_handoff_full(struct sched *s)
{
    flush_lazy(s); /* the run that followed it has ended */
    struct task *t = s->handoff;
    if (!t)
        return;
    s->handoff = NULL;
    struct task *woke = s->woke;
    s->woke = NULL;
    switch (s->handoff_act) {
    case ACT_YIELD:
        atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
        requeue(s, t);
        break;
    case ACT_YIELD_WAKE:
        atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
        push_wake(s, t);
        break;
    case ACT_PARK_MSG:
        atomic_store_explicit(&t->state, TASK_WAIT_MSG, memory_order_relaxed);
        if (s->cur == woke && woke != NULL && sys.lazy) {
            /* t woke the task that runs now: published when this run
             * ends ("Lazy parks"). */
            s->lazy = t;
            atomic_signal_fence(memory_order_seq_cst); /* the handler's */
            break;
        }
        /* A message (or its timer) came first: t was woken, and waits
         * with the woken tasks, not behind the ring (a receiver whose
         * lazy park another CPU's messages found unpublished waited a
         * round of 50 senders' slices, 7-10 ms, in fanin -s 2). */
        if (!publish_park(t))
            push_wake(s, t);
        break;
    case ACT_PARK_TIMER: {
        /* tel_sleep: no mailbox involved. Publish the wait, then look for
         * a timer that fired before it: a Dekker pair with fire_timer
         * (fired, then load state), both seq_cst; the CAS from WAIT_TIMER
         * settles who queues t. */
        atomic_store_explicit(&t->state, TASK_WAIT_TIMER, memory_order_seq_cst);
        uint32_t st = TASK_WAIT_TIMER;
        if (atomic_load_explicit(&t->timer_fired, memory_order_seq_cst) &&
            atomic_compare_exchange_strong_explicit(
                &t->state, &st, TASK_RUNNABLE, memory_order_acq_rel,
                memory_order_acquire))
            push_tail(s, t, false);
        break;
    }
    case ACT_HIBERNATE:
    case ACT_RESTART:
        /* tel__sched_hibernate: its stack is no longer in use. Without one,
         * the next pick materializes a fresh stack and starts task_main
         * there. The park is ACT_PARK_MSG's, with no timer to look at. A
         * stack it ran deep on loses its deep pages on the way back. */
        tel__stack_free_trim_class(s->cache, stack_class(t), t->stack,
                                   low_sp(t));
        t->stack = NULL;
        if (s->handoff_act == ACT_HIBERNATE) {
            atomic_store_explicit(&t->state, TASK_WAIT_MSG,
                                  memory_order_relaxed);
            if (sys.hooks.park_msg(t))
                break;
        }
        atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
        push_tail(s, t, false);
        break;
    case ACT_EXIT:
        tel__stack_free_trim_class(s->cache, stack_class(t), t->stack,
                                   low_sp(t));
        t->stack = NULL;
        sys.hooks.task_exit(s, t);
        break;
    default:
        break;
    }
}

/*
 * The context that resumed publishes the task the last switch left:
 * finish_handoff_full, with a reply's usual case inline (a receive parked
 * and switched to the task it woke, with no lazy park pending: the park
 * becomes lazy, "Lazy parks"). Same effect as the full path's.
 */
static inline void finish_handoff(struct sched *s)
{
    struct task *t = s->handoff;
    if (TEL_LIKELY(t != NULL && s->lazy == NULL &&
                   s->handoff_act == ACT_PARK_MSG && s->cur == s->woke &&
                   s->woke != NULL && sys.lazy)) {
        s->handoff = NULL;
        s->woke = NULL;
        atomic_store_explicit(&t->state, TASK_WAIT_MSG, memory_order_relaxed);
        s->lazy = t;
        atomic_signal_fence(memory_order_seq_cst); /* the handler's */
        return;
    }
    finish_handoff_full(s);
}

/*
 * Owner: a task gets its stack when it first runs, not when it is spawned,
 * so a spawned process waiting in a queue holds no stack page at all (a
 * fan-out of a million spawns costs control blocks, not stacks). Returns
 * false if no stack could be had: the task then ends (TASK_F_NOSTACK).
 */
static inline bool materialize(struct sched *s, struct task *t)
{
    size_t size = task_stack_size(t);
    void *stack = tel__stack_alloc_class(s->cache, stack_class(t));
    if (TEL_UNLIKELY(!stack)) {
        t->flags |= TASK_F_NOSTACK;
        atomic_store_explicit(&t->state, TASK_EXITED, memory_order_release);
        sys.hooks.task_exit(s, t);
        return false;
    }
    t->stack = stack;
    t->sp_room = (uint32_t)size;
    t->sp = tel__ctx_make(stack, size, task_entry, t);
    return true;
}

static inline void start_running(struct sched *s, struct task *t)
{
    s->cur = t;
    s->recvs = 0;
    atomic_store_explicit(&t->state, TASK_RUNNING, memory_order_relaxed);
    atomic_store_explicit(&t->home, s, memory_order_relaxed);
}

/* prev ran off its stack (TASK_F_OVERFLOW) or faulted (TASK_F_CRASHED):
 * it ends instead of act. Its wait timer may be armed (a receive about to
 * park): disarm it, since the block is freed soon. */
static TEL_NOINLINE uint32_t end_faulted(struct task *prev, uint32_t flag)
{
    prev->flags |= flag;
    prev->sp_room = 0; /* trim it whole */
    tel__sched_timer_disarm(prev);
    atomic_store_explicit(&prev->state, TASK_EXITED, memory_order_release);
    return ACT_EXIT;
}

static inline uint32_t overflowed(struct task *prev)
{
    return end_faulted(prev, TASK_F_OVERFLOW);
}

static struct sched *switch_away(struct sched *s, struct task *prev,
                                 uint32_t act);

static TEL_NOINLINE bool must_leave_slow(struct sched *s, uint32_t mode);

/* Owner: whether s must go back to its loop instead of running a task: a
 * stop, or s is a spare and was sent back (MODE_SPARE). One load. */
static inline bool must_leave(struct sched *s)
{
    uint32_t m = atomic_load_explicit(&sys.mode, memory_order_relaxed) &
                 (MODE_STOP | MODE_SPARE);
    return TEL_UNLIKELY(m != 0) && must_leave_slow(s, m);
}

/*
 * The stack checks, on the task's own stack, at every switch-out and at a
 * yield that finds nothing else to run: a new lowest stack pointer is
 * recorded (for trimming at exit; one compare when it is not), and a task
 * too close to its base, or whose canary was hit (the fallback mode,
 * alloc/stack.c), ends with TASK_F_OVERFLOW: returns act, or ACT_EXIT.
 * stack_room is the first half (always), canary_check the second (in the
 * fallback mode only).
 */
static inline uint32_t stack_room(struct task *prev, uint32_t act)
{
    char *sp = (char *)__builtin_frame_address(0);
    intptr_t room = sp - (char *)prev->stack; /* < 0: below its base */
    if (TEL_UNLIKELY(room < (intptr_t)prev->sp_room)) {
        prev->sp_room = room > 0 ? (uint32_t)room : 0;
        if (TEL_UNLIKELY(room < (intptr_t)SCHED_STACK_RESERVE))
            return overflowed(prev);
    }
    return act;
}

static inline uint32_t canary_check(struct task *prev, uint32_t act)
{
    if (*(volatile uint64_t *)prev->stack != STACK_CANARY &&
        !(prev->flags & TASK_F_OVERFLOW))
        return overflowed(prev);
    return act;
}

static inline uint32_t stack_check(struct task *prev, uint32_t act)
{
    act = stack_room(prev, act);
    if (TEL_UNLIKELY(atomic_load_explicit(&sys.mode, memory_order_relaxed) &
                     MODE_CANARY))
        act = canary_check(prev, act);
    return act;
}

static inline struct sched *switch_to(struct sched *s, struct task *prev,
                                      uint32_t act, struct task *next);

/* A switch-out with a mode bit set: the fallback's canary, or a stop. */
static TEL_NOINLINE struct sched *switch_out_slow(struct sched *s,
                                                  struct task *prev,
                                                  uint32_t act)
{
    if (atomic_load_explicit(&sys.mode, memory_order_relaxed) & MODE_CANARY)
        act = canary_check(prev, act);
    help_if_stuck(s);
    return switch_away(s, prev, act);
}

/* Leave the running task with act; returns the scheduler it resumed on.
 * One load and test of sys.mode covers the canary and the stop. */
static inline struct sched *switch_out(struct sched *s, struct task *prev,
                                       uint32_t act)
{
    act = stack_room(prev, act);
    if (TEL_UNLIKELY(atomic_load_explicit(&sys.mode, memory_order_relaxed)))
        return switch_out_slow(s, prev, act);
    return switch_to(s, prev, act, pick_next(s));
}

static struct sched *switch_away(struct sched *s, struct task *prev,
                                 uint32_t act)
{
    struct task *next = NULL;
    if (TEL_LIKELY(!must_leave(s)))
        next = pick_next(s);
    return switch_to(s, prev, act, next);
}

/* Switch from prev (leaving it with act) to next, or to the loop. */
static inline struct sched *switch_to(struct sched *s, struct task *prev,
                                      uint32_t act, struct task *next)
{
    s->handoff = prev;
    s->handoff_act = act;
    struct sched *ns;
    if (next) {
        start_running(s, next);
        ns = do_switch(s, &prev->sp, next->sp, next, act >= ACT_HIBERNATE);
    } else {
        s->cur = NULL;
        ns = do_switch(s, &prev->sp, s->loop_sp, NULL, act >= ACT_HIBERNATE);
    }
    finish_handoff(ns);
    return ns;
}

/* Owner: no normal work is queued here (or in the global queue). */
static inline bool no_normal(struct sched *s)
{
    return !s->runnext && !s->wk_head && tel__runq_len(&s->runq) == 0 &&
           backlog_empty(s) &&
           !tel__mpsc_nonempty(&s->inject) &&
           atomic_load_explicit(&sys.glen, memory_order_relaxed) == 0;
}

/*
 * Owner: nothing queued here must run before the running task, which
 * yields (or was preempted): it goes on with a fresh slice. For a normal
 * task: no normal work, nothing of a higher level, and no low task whose
 * turn has come (counted as a normal pick). For max or high: nothing of
 * its level or above (the levels below wait). For low: nothing at all.
 */
static inline bool nothing_ahead(struct sched *s)
{
    uint32_t pm = atomic_load_explicit(&s->prio.mask, memory_order_relaxed) &
                  PRIO_Q_BITS;
    if (must_leave(s))
        return false;
    switch (prio_of(s->cur)) {
    case TEL_PRIO_NORMAL:
        if (TEL_LIKELY(pm == 0))
            return no_normal(s);
        return !(pm & PRIO_HI_BITS) && s->low_skip < SCHED_LOW_EVERY &&
               no_normal(s);
    case TEL_PRIO_LOW:
        return pm == 0 && no_normal(s);
    case TEL_PRIO_HIGH:
        return !(pm & PRIO_HI_BITS);
    default:
        return !(pm & PRIO_BIT(TEL_PRIO_MAX));
    }
}

/* Owner: the running task goes on after nothing_ahead: a fresh slice, which
 * counts as a normal pick for a low task that waits. */
static inline void go_on(struct sched *s)
{
    /* A run ends here too (the watchdog's sequence moves on), and this is
     * a point where the task could have been switched out, so it holds no
     * unreferenced pointer: quiescent, as at a pick (sched/epoch.h). A
     * task that went on alone for long held every other scheduler's
     * reclamation back for as long. */
    tel__epoch_quiescent(&s->ep);
    uint32_t pm = atomic_load_explicit(&s->prio.mask, memory_order_relaxed);
    if (TEL_UNLIKELY(pm & PRIO_WD_ASK))
        wd_answer(s);
    tel__stat_inc(&s->n_renews);
    s->reds = (int32_t)s->slice;
    if (TEL_UNLIKELY(pm & PRIO_BIT(TEL_PRIO_LOW)) &&
        prio_of(s->cur) == TEL_PRIO_NORMAL)
        s->low_skip++;
}

/* The running task leaves: its open send batch goes out first. */
static inline void close_sends(struct sched *s)
{
    if (TEL_UNLIKELY(s->cur->flags & TASK_F_OB))
        sys.hooks.close_sends(s);
}

void tel__sched_nudge_senders(struct sched *self, uint64_t to)
{
    for (unsigned i = 0; i < sys.n + sys.n_sp; i++) {
        struct sched *o = tel__sched_wheel_owner(i);
        if (!o || o == self ||
            atomic_load_explicit(&o->ob_to, memory_order_relaxed) != to)
            continue;
        /* Its next held send pushes and closes the batch. If it holds
         * messages already, the signal's handler pushes them where the
         * task was interrupted (outside Telar's code), at once. The fence
         * pairs with the sender's at its first held message: either we
         * see that message or it sees ob_flush. A batch that holds nothing
         * gets no signal (which would cost a system call of the sender's
         * its EINTR for nothing). */
        atomic_store_explicit(&o->ob_flush, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (!atomic_load_explicit(&o->ob_n, memory_order_relaxed))
            continue;
        if (self)
            tel__stat_inc(&self->n_ob_nudges);
        (void)tel__preempt_nudge(o);
    }
}

void tel__sched_flood_senders(uint64_t to, bool flooded)
{
    for (unsigned i = 0; i < sys.n + sys.n_sp; i++) {
        struct sched *o = tel__sched_wheel_owner(i);
        if (!o)
            continue;
        if (flooded) {
            atomic_store_explicit(&o->ob_flood, to, memory_order_relaxed);
        } else {
            uint64_t want = to;
            (void)atomic_compare_exchange_strong_explicit(
                &o->ob_flood, &want, 0, memory_order_relaxed,
                memory_order_relaxed);
        }
    }
}

bool tel__sched_batching(void)
{
    return atomic_load_explicit(&sys.batch, memory_order_relaxed);
}

void tel__sched_batching_force(bool on)
{
    atomic_store_explicit(&sys.batch, on, memory_order_relaxed);
}

void tel__sched_close_sends_async(struct sched *s)
{
    sys.hooks.close_sends_async(s);
}

/* A yield: act is ACT_YIELD (behind the others) or ACT_YIELD_WAKE (with
 * the woken tasks). */
TEL_INLINE struct sched *yield_as(struct sched *s, uint32_t act)
{
    close_sends(s);
    /* The run may go on: a lazy park must not wait for it. */
    flush_lazy(s);
    /* Alone, keep running with a fresh slice, unless a due timer has work
     * for someone else (pick_next runs timers on the switching path). */
    if (nothing_ahead(s)) {
        run_timers(s);
        if (nothing_ahead(s)) {
            if (TEL_UNLIKELY(stack_check(s->cur, ACT_YIELD) == ACT_EXIT))
                return switch_away(s, s->cur, ACT_EXIT);
            go_on(s);
            return s;
        }
    }
    s->reds = 0; /* the next pick must not give runnext our slice */
    return switch_out(s, s->cur, act);
}

struct sched *tel__sched_yield(struct sched *s)
{
    return yield_as(s, ACT_YIELD);
}

struct sched *tel__sched_yield_woken(struct sched *s)
{
    return yield_as(s, ACT_YIELD_WAKE);
}

/*
 * Long runners. A normal task the watchdog had to stop (it ran past the
 * bound without a reduction point: a C loop, a long library call) is
 * demoted: its level bits say low (TASK_F_DEMOTED remembers it was
 * normal) until it parks, or until a slice ends by its reductions alone.
 * So processes that compute in C for milliseconds at a time take one pick
 * in nine while normal work waits, as low processes do, and never keep a
 * process that spawns, sends or serves waiting behind a ring of them
 * (each would hold the thread for a watchdog bound). A process that runs
 * cooperatively again is normal again at its next slice. A high or max
 * task is never demoted; a CPU-heavy one is low already.
 */
static inline void demote(struct task *t)
{
    if (prio_of(t) == TEL_PRIO_NORMAL)
        t->flags = (t->flags & ~(uint32_t)TASK_PRIO_MASK) |
                   (uint32_t)TEL_PRIO_LOW << TASK_PRIO_SHIFT | TASK_F_DEMOTED;
}

static inline void undemote(struct task *t)
{
    if (TEL_UNLIKELY(t->flags & TASK_F_DEMOTED))
        t->flags = (t->flags & ~(uint32_t)(TASK_PRIO_MASK | TASK_F_DEMOTED)) |
                   (uint32_t)TEL_PRIO_NORMAL << TASK_PRIO_SHIFT;
}

static struct sched *preempt_turn(struct sched *s);

/*
 * Owner: a drainer (see preempt_turn) whose slice ended goes on at once,
 * as the wake lane's next pick, while the lane has nothing else and its
 * burst bound is not reached. Switched out, it would enter the lane only
 * after the pick (the hand-off queues it from the next context), so the
 * pick would take a ring task and reset the burst: the drainer got one
 * slice in two, not eight in nine (fanin -s 2: a 130 us sender slice
 * after each of its 70 us slices, the receiver on its CPU a third of the
 * time and 3.8 M messages behind). So the ring waits at most the lane's
 * bound (a drainer picked from the ring gets that slice and 8 more).
 * Each renewal counts as a pick (the tick), and the drainer leaves when
 * the every-61st turn comes, or when another thread has woken a task here
 * (the injection queue): the pick moves it into the wake lane and takes it
 * at once, and going on would keep it waiting 8 slices (a foreign thread's
 * wake-up waited 0.9-1.3 ms instead of 70-120 us, found in review).
 */
static inline bool drain_on(struct sched *s)
{
    uint32_t tick = s->tick + 1;
    if (s->wk_head || s->runnext || s->wk_streak >= SCHED_WAKE_BURST ||
        tick % SCHED_GLOBAL_EVERY == 0 ||
        tel__mpsc_hint_nonempty(&s->inject) ||
        prio_of(s->cur) != TEL_PRIO_NORMAL ||
        (atomic_load_explicit(&s->prio.mask, memory_order_relaxed) &
         PRIO_Q_BITS) ||
        must_leave(s))
        return false;
    s->tick = tick;
    s->wk_streak++;
    return true;
}

struct sched *tel__sched_preempt(struct sched *s)
{
    tel__stat_inc(&s->n_preempts);
    /* The preemption signal's handler zeroed the slice of this very task
     * (it could not switch it out where it was): that request is done.
     * Only once per slice, so no cost on the switch path. */
    if (TEL_UNLIKELY(atomic_load_explicit(&s->preempt_want,
                                          memory_order_relaxed) == s->cur)) {
        atomic_store_explicit(&s->preempt_want, NULL, memory_order_relaxed);
        tel__stat_inc(&s->n_preempt_watchdog);
        demote(s->cur);
    } else {
        undemote(s->cur);
    }
    return preempt_turn(s);
}

/* Owner, the running task's slice is over (its reductions, the watchdog or
 * the signal): someone else's turn, if anyone's. */
static struct sched *preempt_turn(struct sched *s)
{
    close_sends(s);
    /* A whole slice has passed since the last pick: a timer may be due. The
     * clock read is cheap next to a slice; every pick would not be (a
     * ping-pong switch costs about as much). */
    help_if_stuck(s);
    run_timers(s);
    if (s->recvs < SCHED_DRAIN_MIN)
        return tel__sched_yield(s);
    if (TEL_UNLIKELY(s->recvs >= (uint64_t)SCHED_FLOOD_SLICES * s->slice) &&
        sys.hooks.flooded)
        sys.hooks.flooded(s->cur);
    flush_lazy(s); /* as tel__sched_yield does */
    /* It spent its slice receiving: a process draining a flood of messages
     * (one receiver, many senders). Behind the preempted tasks it would get
     * one slice in N + 1 and its mailbox would grow without bound (fanin:
     * all 10 M messages, 655 MB); in the wake lane it keeps up, and the
     * lane's burst bound still gives the others their share. */
    if (nothing_ahead(s) || drain_on(s)) {
        if (TEL_UNLIKELY(stack_check(s->cur, ACT_YIELD) == ACT_EXIT))
            return switch_away(s, s->cur, ACT_EXIT);
        go_on(s);
        return s;
    }
    s->reds = 0;
    return switch_out(s, s->cur, ACT_YIELD_WAKE);
}

struct sched *tel__sched_preempt_async(struct sched *s)
{
    /* Not also a watchdog preemption (a handler may have zeroed the slice
     * before, where it could not switch). */
    if (atomic_load_explicit(&s->preempt_want, memory_order_relaxed) == s->cur)
        atomic_store_explicit(&s->preempt_want, NULL, memory_order_relaxed);
    tel__stat_inc(&s->n_preempts);
    tel__stat_inc(&s->n_preempt_signal);
    demote(s->cur);
    return preempt_turn(s);
}

/* A parking task's flags ask for work first: its send batch goes out, and
 * it is normal again once woken. One test of the flags for both. */
static TEL_NOINLINE void park_flags(struct sched *s)
{
    close_sends(s);
    undemote(s->cur);
}

struct sched *tel__sched_park(struct sched *s, uint32_t kind)
{
    if (TEL_UNLIKELY(s->cur->flags & (TASK_F_OB | TASK_F_DEMOTED)))
        park_flags(s);
    return switch_out(s, s->cur,
                      kind == TASK_WAIT_MSG ? ACT_PARK_MSG : ACT_PARK_TIMER);
}

_Noreturn void tel__sched_exit(struct sched *s)
{
    struct task *t = s->cur;
    atomic_store_explicit(&t->state, TASK_EXITED, memory_order_release);
    switch_out(s, t, ACT_EXIT);
    tel__panic("sched: an exited task was resumed");
}

_Noreturn void tel__sched_hibernate(struct sched *s, bool ready)
{
    close_sends(s);
    switch_out(s, s->cur, ready ? ACT_RESTART : ACT_HIBERNATE);
    tel__panic("sched: a hibernated task was resumed on its old stack");
}

_Noreturn void tel__sched_exit_fault(struct sched *s, uint32_t flag)
{
    /* It may have faulted inside a lookup window (a bad pointer given to
     * tel_send's copy): the window's pointers die with it. */
    s->hold = 0;
    /* On the signal stack: no stack checks (they would measure it). */
    (void)end_faulted(s->cur, flag);
    switch_away(s, s->cur, ACT_EXIT);
    tel__panic("sched: a task that faulted was resumed");
}

int tel__sched_timer_arm(struct sched *s, struct task *t, uint64_t deadline)
{
    struct tw_wait *w = tel__pool_alloc(sizeof(*w));
    if (TEL_UNLIKELY(!w))
        return TEL_ENOMEM;
    w->task = t;
    atomic_store_explicit(&t->timer_fired, 0, memory_order_relaxed);
    t->wait = w;
    /* Only the handle table can fail, and wait timers have no handle. */
    (void)tel__tw_arm(&s->wheel, &w->node, TW_WAIT, deadline, NULL);
    return 0;
}

void tel__sched_timer_disarm(struct task *t)
{
    struct tw_wait *w = t->wait;
    if (!w)
        return;
    /* Under the wheel's lock: once it returns, fire_timer is not running
     * for w (it fires under that lock), so w can go. */
    (void)tel__tw_disarm(&w->node);
    t->wait = NULL;
    tel__pool_free(w, sizeof(*w));
}

/* ------------------------------------------------------------------ */
/* Stuck schedulers                                                    */
/* ------------------------------------------------------------------ */

/*
 * A scheduler is stuck when its thread has run one task for longer than
 * the watchdog's bound and a preemption request did not end the run: the
 * process computes in C without calling Telar, or its thread is blocked in
 * a system call not made through tel_blocking. Whatever is queued there
 * would wait for it. The watchdog (sysmon.c) marks it (s->stuck, and
 * MODE_STUCK in sys.mode while any is) and, once per sample while it stays
 * stuck, calls tel__sched_hand_off. No switch, send or receive path pays
 * for any of this: help_if_stuck tests a bit of the word the switch path
 * reads anyway (on its slow path, which MODE_STUCK selects, and at a
 * preemption and in the idle loop), and only wakers on threads that are
 * no scheduler test s->stuck.
 *
 * What others may take, they get:
 *   - the ring: the watchdog takes it whole (tel__runq_take_all, one CAS,
 *     as a steal) into the global queue, which every scheduler draws from
 *     (at least one pick in 61 when busy, at once when idle), and wakes a
 *     parked scheduler;
 *   - the priority queues (locked): moved to a scheduler that is not
 *     stuck;
 *   - its timers: every other scheduler fires the stuck wheels' due
 *     timers too (help_stuck) (under the wheel lock, as the owner would; a
 *     woken task goes to the helper's own wake lane), and the watchdog
 *     wakes a parked one when such a timer is due;
 *   - new wake-ups from other threads (inject) go to a scheduler that is
 *     not stuck. Wake-ups from scheduler threads never went to the woken
 *     task's home: they run on the waker's scheduler.
 * What only the owner may touch (runnext, the wake lane, the backlog, the
 * injection queue's consumer side, a lazy park) would need a
 * read-modify-write on the
 * pick path to be taken from another thread (as Go's runnext CAS). Instead
 * the owner's own thread sheds them: tel__sched_shed, from the preemption
 * signal's handler, when it interrupted the process's own code and no
 * Telar lock is held, so nothing on that thread is in the middle of using
 * them. Without that signal they wait until the stuck task switches out.
 * A lazy park is published by that signal even where nothing is shed
 * (tel__sched_publish_lazy): then a message from another thread wakes the
 * parked task elsewhere, as it would have without the lazy park.
 *
 * When every scheduler is stuck (or there is one), the others are the
 * spare schedulers: see "The spare schedulers" below.
 */

static bool spare_working(struct spare *p);

/* Any thread (async-signal-safe): a scheduler other than s that is not
 * stuck (the next one after s), else the first spare at work that is not
 * stuck, else s. */
static struct sched *not_stuck(struct sched *s)
{
    unsigned base = s->spare ? 0 : s->index + 1;
    for (unsigned k = 0; k < sys.n; k++) {
        struct sched *o = sys.s[(base + k) % sys.n];
        if (o != s && !atomic_load_explicit(&o->stuck, memory_order_relaxed))
            return o;
    }
    for (unsigned k = 0; k < sys.n_sp; k++) {
        struct sched *o = sys.sp[k].s;
        if (o != s && spare_working(&sys.sp[k]) &&
            !atomic_load_explicit(&o->stuck, memory_order_relaxed))
            return o;
    }
    return s;
}

/* Any thread: wake every spare at work (each draws on the global queue). */
static void wake_spares(void)
{
    for (unsigned k = 0; k < sys.n_sp; k++)
        if (spare_working(&sys.sp[k]))
            tel__park_wake(&sys.sp[k].s->park, &sys.spare_idle);
}

/* The park counts s's park belongs to. */
static inline struct park_counts *idle_of(struct sched *s)
{
    return TEL_UNLIKELY(s->spare) ? &sys.spare_idle : &sys.idle;
}

void tel__sched_set_stuck(struct sched *s, bool stuck)
{
    uint32_t on = stuck ? 1u : 0u;
    if (atomic_exchange_explicit(&s->stuck, on, memory_order_seq_cst) == on)
        return;
    if (stuck) {
        atomic_fetch_add_explicit(&sys.n_stuck, 1, memory_order_relaxed);
        atomic_fetch_or_explicit(&sys.mode, MODE_STUCK, memory_order_seq_cst);
    } else if (atomic_fetch_sub_explicit(&sys.n_stuck, 1,
                                         memory_order_relaxed) == 1) {
        /* The watchdog alone marks and unmarks: no race with a new mark. */
        atomic_fetch_and_explicit(&sys.mode, ~MODE_STUCK,
                                  memory_order_seq_cst);
    }
}

/* Any thread: move every task of s's priority queues to to's (each on
 * its level, in order). Returns whether there was any. */
static bool move_prio(struct sched *s, struct sched *to)
{
    if (!(atomic_load_explicit(&s->prio.mask, memory_order_relaxed) &
          PRIO_Q_BITS))
        return false;
    struct task *head[4];
    tel__spin_lock(&s->prio.lock);
    for (unsigned p = 0; p < 4; p++) {
        head[p] = s->prio.head[p];
        s->prio.head[p] = s->prio.tail[p] = NULL;
    }
    atomic_fetch_and_explicit(&s->prio.mask, ~PRIO_Q_BITS,
                              memory_order_relaxed);
    tel__spin_unlock(&s->prio.lock);
    /* One lock at a time (rank 1): s's, then to's for each task. */
    bool any = false;
    for (unsigned p = 0; p < 4; p++)
        for (struct task *t = head[p], *next; t; t = next) {
            next = t->gnext;
            prio_push(to, t, p);
            any = true;
        }
    return any;
}

void tel__sched_hand_off(struct sched *s, uint64_t due_ns)
{
    bool moved = false;
    struct task *ring[RUNQ_CAP];
    uint32_t n = tel__runq_take_all(&s->runq, ring);
    if (n) {
        push_global_batch(ring, n);
        moved = true;
    }
    struct sched *to = not_stuck(s);
    if (to != s && move_prio(s, to))
        moved = true;
    if (!tel__tw_empty(&s->wheel) && tel__tw_next_ns(&s->wheel) <= due_ns)
        moved = true; /* someone must run it (run_timers, help_stuck) */
    if (moved) {
        wake_idle();
        wake_spares();
    }
}

/* Owner: fire the due timers of the stuck schedulers' wheels (their
 * woken tasks come here), and deliver TW_HANDLE ones. */
static TEL_NOINLINE void help_stuck(struct sched *s)
{
    uint64_t now = 0;
    for (unsigned i = 0; i < sys.n + sys.n_sp; i++) { /* the spares last */
        struct sched *v = tel__sched_wheel_owner(i);
        if (v == s ||
            !atomic_load_explicit(&v->stuck, memory_order_relaxed) ||
            tel__tw_empty(&v->wheel))
            continue;
        if (!now)
            now = tel__now_ns();
        tel__tw_expire(&v->wheel, now, fire_timer, s);
    }
    while (s->fired_handles) {
        struct tw_node *n = s->fired_handles;
        s->fired_handles = n->next;
        sys.hooks.timer_fire(n);
    }
}

/* Any thread (async-signal-safe): t, of a level other than normal, whose
 * lazy park lost to a message, goes to its level's queue on a scheduler
 * that is not stuck (as inject does), which is woken if parked. */
static void prio_elsewhere(struct sched *s, struct task *t)
{
    struct sched *o = not_stuck(s);
    prio_push(o, t, prio_of(t));
    tel__park_wake(&o->park, idle_of(o));
}

void tel__sched_shed(struct sched *s)
{
    struct task *first = NULL, *last = NULL, *t;
    uint32_t n = 0;
#define SHED_ADD(x)                                                           \
    do {                                                                      \
        struct task *x_ = (x);                                                \
        if (last)                                                             \
            last->gnext = x_;                                                 \
        else                                                                  \
            first = x_;                                                       \
        last = x_;                                                            \
        n++;                                                                  \
    } while (0)
    if ((t = s->runnext)) {
        s->runnext = NULL;
        SHED_ADD(t);
    }
    if ((t = s->lazy)) { /* the stuck run follows its park */
        s->lazy = NULL;
        if (!publish_park(t)) {
            if (TEL_LIKELY(prio_of(t) == TEL_PRIO_NORMAL)) {
                SHED_ADD(t);
            } else {
                prio_elsewhere(s, t);
            }
        }
    }
    while ((t = pop_wake(s)))
        SHED_ADD(t);
    while ((t = tel__runq_pop(&s->runq)))
        SHED_ADD(t);
    while ((t = backlog_pop(s)))
        SHED_ADD(t);
    struct tel__mpsc_node *q;
    while ((q = tel__mpsc_pop(&s->inject))) /* popped: qnode is ours */
        SHED_ADD(tel_container_of(q, struct task, qnode));
#undef SHED_ADD
    if (!n)
        return;
    push_global_chain(first, last, n);
    wake_idle();
}

void tel__sched_publish_lazy(struct sched *s)
{
    struct task *t = s->lazy;
    if (!t)
        return;
    s->lazy = NULL;
    if (publish_park(t))
        return;
    /* A message came first: it runs elsewhere, as tel__sched_shed's. */
    if (TEL_LIKELY(prio_of(t) == TEL_PRIO_NORMAL)) {
        push_global_chain(t, t, 1);
        wake_idle();
    } else {
        prio_elsewhere(s, t);
    }
}

/* ------------------------------------------------------------------ */
/* Waking and spawning                                                 */
/* ------------------------------------------------------------------ */

static struct sched *not_stuck(struct sched *s);

static void inject(struct sched *target, struct task *t)
{
    /* A stuck scheduler would not see it for a while: queue it elsewhere.
     * (One that gets stuck right after this test has it until it runs
     * again, or sheds it from the preemption signal.) */
    if (TEL_UNLIKELY(atomic_load_explicit(&target->stuck,
                                          memory_order_relaxed)))
        target = not_stuck(target);
    if (TEL_UNLIKELY(prio_of(t) != TEL_PRIO_NORMAL))
        prio_push(target, t, prio_of(t)); /* seq_cst on its mask */
    else
        tel__mpsc_push(&target->inject, &t->qnode); /* seq_cst exchange */
    tel__park_wake(&target->park, idle_of(target));
}

void tel__sched_wake_parked_slow(struct task *t)
{
    /* Ours alone (the park mark said so): no CAS. The mark's exchange
     * (seq_cst) made the parking scheduler's writes, t's saved context
     * among them, visible here. */
    atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
    struct sched *s = tel__sched_self();
    if (s) {
        tel__sched_prefetch_resume(t);
        s->woke = t; /* a park that switches to t may be lazy */
        put_next(s, t);
    } else {
        inject(atomic_load_explicit(&t->home, memory_order_relaxed), t);
    }
}

void tel__sched_wake_parked_async(struct task *t)
{
    atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
    inject(atomic_load_explicit(&t->home, memory_order_relaxed), t);
}

void tel__sched_spawn(struct task *t)
{
    struct sched *s = tel__sched_self();
    if (s) {
        atomic_store_explicit(&t->home, s, memory_order_relaxed);
        put_next(s, t);
        return;
    }
    unsigned i = atomic_fetch_add_explicit(&sys.rr, 1, memory_order_relaxed);
    struct sched *target = sys.s[i % sys.n];
    atomic_store_explicit(&t->home, target, memory_order_relaxed);
    inject(target, t);
}

/* ------------------------------------------------------------------ */
/* Tasks                                                               */
/* ------------------------------------------------------------------ */

static void task_entry(void *arg, void *user)
{
    struct sched *s = arg;
    struct task *t = user;
#ifdef TEL_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    finish_handoff(s);
    sys.hooks.task_main(t);
    tel__panic("sched: task_main returned");
}

size_t tel__task_stack_size(const struct task *t)
{
    return task_stack_size(t);
}

void tel__task_stack_release(struct task *t)
{
    if (!t->stack)
        return;
    tel__stack_free_class(-1, stack_class(t), t->stack);
    t->stack = NULL;
}

int tel__task_init(struct task *t)
{
    t->stack = NULL; /* taken when it first runs (materialize) */
    t->sp = NULL;
    atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
    atomic_store_explicit(&t->home, NULL, memory_order_relaxed);
    t->flags = 0;
    t->gnext = NULL;
    t->wait = NULL;
    atomic_store_explicit(&t->timer_fired, 0, memory_order_relaxed);
#ifdef TEL_TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
    if (!t->tsan_fiber)
        return TEL_ENOMEM;
#endif
    return 0;
}

void tel__task_fini(struct task *t)
{
#ifdef TEL_TSAN
    if (t->tsan_fiber)
        __tsan_destroy_fiber(t->tsan_fiber);
    t->tsan_fiber = NULL;
#else
    (void)t;
#endif
}

/* ------------------------------------------------------------------ */
/* The loop                                                            */
/* ------------------------------------------------------------------ */

static inline uint64_t next_rand(struct sched *s)
{
    uint64_t x = s->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return s->rng = x;
}

/* One ring of victims (ring == NULL: every scheduler but s), from a
 * random start. */
enum steal_what {
    STEAL_HI,   /* one max task, else one high task */
    STEAL_RING, /* half of the ring (normal tasks) */
    STEAL_LOW,  /* one low task */
};

static struct task *steal_from(struct sched *s, struct sched *v,
                               enum steal_what what)
{
    if (TEL_LIKELY(what == STEAL_RING))
        return tel__runq_steal(&v->runq, &s->runq);
    uint32_t pm = atomic_load_explicit(&v->prio.mask, memory_order_relaxed);
    if (what == STEAL_HI)
        return (pm & PRIO_HI_BITS) ? prio_pop_hi(v) : NULL;
    return (pm & PRIO_BIT(TEL_PRIO_LOW)) ? prio_pop(v, TEL_PRIO_LOW) : NULL;
}

static struct task *steal_ring(struct sched *s, const unsigned *ring,
                               unsigned len, enum steal_what what)
{
    unsigned k = len > 1 ? (unsigned)(next_rand(s) % len) : 0;
    for (unsigned i = 0; i < len; i++, k = k + 1 < len ? k + 1 : 0) {
        unsigned vi = ring ? ring[k] : (s->index + 1 + k) % sys.n;
        struct task *t = steal_from(s, sys.s[vi], what);
        if (t) {
            tel__stat_inc(&s->n_steals);
            return t;
        }
    }
    return NULL;
}

/*
 * Steal half of the nearest victim's ring that has work. Victims come in
 * rings of equal distance (alloc/topo.h: same core, L2, L3, node, then
 * remote nodes by distance); each ring is tried from a random start, so
 * thieves spread over the victims that cost the same, and a farther ring
 * is tried only when every nearer victim was empty. Without a plan for
 * this scheduler count (a white-box test that starts the schedulers
 * itself), every other scheduler is one ring.
 *
 * Priorities: a max or high task queued anywhere is taken first (one, from
 * the nearest victim that has one), then normal work, then one low task
 * (it runs whenever no normal work is ready, here as well).
 */
static struct task *steal_what(struct sched *s, enum steal_what what)
{
    const unsigned *vic, *ends;
    unsigned n_rings = tel__topo_rings(s->index, sys.n, &vic, &ends);
    if (n_rings == 0)
        return steal_ring(s, NULL, sys.n - 1, what);
    struct task *t = NULL;
    for (unsigned r = 0, lo = 0; r < n_rings && !t; lo = ends[r++])
        t = steal_ring(s, vic + lo, ends[r] - lo, what);
    return t;
}

/* Whether some other scheduler has tasks of a level in bits queued. */
static bool others_have(struct sched *s, uint32_t bits)
{
    for (unsigned i = 0; i < sys.n; i++)
        if (sys.s[i] != s &&
            (atomic_load_explicit(&sys.s[i]->prio.mask,
                                  memory_order_relaxed) & bits))
            return true;
    return false;
}

static struct task *steal(struct sched *s)
{
    if (sys.n < 2 || s->spare) /* a spare takes only what it is given */
        return NULL;
    struct task *t;
    if (TEL_UNLIKELY(others_have(s, PRIO_HI_BITS)) &&
        (t = steal_what(s, STEAL_HI)))
        return t;
    if ((t = steal_what(s, STEAL_RING)))
        return t;
    if (TEL_UNLIKELY(others_have(s, PRIO_BIT(TEL_PRIO_LOW))))
        return steal_what(s, STEAL_LOW);
    return NULL;
}

/* Owner: whether anything is queued on s itself (seq_cst loads where a
 * parking thread pairs with wakers). */
static bool own_work(struct sched *s)
{
    return s->runnext || s->wk_head || !backlog_empty(s) ||
           tel__mpsc_nonempty(&s->inject) || tel__runq_len(&s->runq) ||
           (atomic_load_explicit(&s->prio.mask, memory_order_seq_cst) &
            PRIO_Q_BITS);
}

static bool work_visible(struct sched *s)
{
    if (own_work(s) || atomic_load_explicit(&sys.glen, memory_order_seq_cst))
        return true;
    for (unsigned i = 0; i < sys.n; i++)
        if (sys.s[i] != s &&
            (tel__runq_len(&sys.s[i]->runq) > 0 ||
             (atomic_load_explicit(&sys.s[i]->prio.mask,
                                   memory_order_seq_cst) & PRIO_Q_BITS)))
            return true;
    return false;
}

static struct task *look_once(struct sched *s)
{
    struct task *t;
    tel__epoch_quiescent(&s->ep);
    if (s->ep.head)
        (void)tel__epoch_collect(&s->ep, sys.eps, sys.n_eps);
    do {
        help_if_stuck(s);
        run_timers(s);
        /* A timer or a wake from this thread may have filled runnext. */
        if ((t = prio_pop_hi(s))) {
            s->reds = (int32_t)s->slice;
        } else if ((t = s->runnext)) {
            s->runnext = NULL;
            s->reds = (int32_t)s->slice;
        } else if ((t = pop_wake(s)) || (t = pop_local(s)) ||
                   (t = take_inject(s)) ||
                   (t = take_global(s, room(s))) ||
                   (t = prio_pop(s, TEL_PRIO_LOW)) || (t = steal(s)))
            s->reds = (int32_t)s->slice;
    } while (t && TEL_UNLIKELY(!t->stack) && !materialize(s, t));
    return t;
}

/* The loop context: find work, spin, park. NULL means "stop". */
static struct task *find_work_idle(struct sched *s)
{
    struct task *t;
    for (;;) {
        if (atomic_load_explicit(&sys.mode, memory_order_acquire) & MODE_STOP)
            return NULL;
        if ((t = look_once(s)))
            return t;
        /* Spin a little: waking a halted vCPU costs tens of microseconds. */
        atomic_fetch_add_explicit(&sys.idle.n_spinning, 1,
                                  memory_order_seq_cst);
        uint64_t until = tel__now_ns() + SCHED_SPIN_NS;
        do {
            for (int i = 0; i < 64; i++)
                tel__cpu_relax();
            t = look_once(s);
        } while (!t && tel__now_ns() < until &&
                 !(atomic_load_explicit(&sys.mode, memory_order_relaxed) &
                   MODE_STOP));
        atomic_fetch_sub_explicit(&sys.idle.n_spinning, 1,
                                  memory_order_seq_cst);
        if (t)
            return t;
        /* About to sleep: trim the node's surplus free stacks, and the
         * blocks other threads returned to our pool, now, when nobody
         * waits for this thread (alloc/stack.c, alloc/pool.c). */
        tel__stack_trim_idle(s->cache);
        tel__pool_trim_idle();
        /* Park: announce, look again, sleep until woken or the next timer. */
        uint32_t seq = tel__park_prepare(&s->park, &sys.idle);
        if (work_visible(s) ||
            (atomic_load_explicit(&sys.mode, memory_order_seq_cst) &
             MODE_STOP)) {
            tel__park_cancel(&s->park, &sys.idle);
            tel__sysmon_unparked();
            continue;
        }
        tel__stat_inc(&s->n_parks);
        /* Parked, we hold nothing: do not hold the epoch back. What we
         * retired waits until we run again (or until teardown). */
        tel__epoch_offline(&s->ep);
        uint64_t due = tel__tw_next_ns(&s->wheel);
        if (due != UINT64_MAX && due > SCHED_TIMER_EARLY_NS)
            due -= SCHED_TIMER_EARLY_NS;
        tel__park_sleep(&s->park, &sys.idle, seq, due);
        tel__sysmon_unparked();
        tel__epoch_online(&s->ep);
    }
}

/* The loop context: find_work_idle, flagged for the watchdog. */
static struct task *find_work(struct sched *s)
{
    /* Looking for work, not running a task: the watchdog leaves us be. */
    atomic_store_explicit(&s->wd_idle, 1, memory_order_relaxed);
    struct task *t = find_work_idle(s);
    if (t) /* NULL: stopping, and idle for good */
        atomic_store_explicit(&s->wd_idle, 0, memory_order_relaxed);
    return t;
}

static void sched_loop(struct sched *s)
{
    for (;;) {
        struct task *t = NULL;
        if (!(atomic_load_explicit(&sys.mode, memory_order_acquire) &
              MODE_STOP))
            t = pick_next(s);
        if (!t)
            t = find_work(s);
        if (!t)
            return;
        start_running(s, t);
        s->handoff = NULL;
        struct sched *ns = do_switch(s, &s->loop_sp, t->sp, t, false);
        (void)ns; /* the loop context never changes thread */
        finish_handoff(s);
    }
}

static void thread_setup(struct sched *s)
{
    tel__tls_sched = s;
    atomic_store_explicit(&s->tid, (int32_t)gettid(), memory_order_relaxed);
    tel__epoch_online(&s->ep);
    tel__mem_bind_thread(s->cache);
    tel__pool_bind_thread(s->cache);
    if (sys.pin && !s->spare) /* a spare runs where the kernel puts it */
        (void)tel__topo_bind_thread(s->index);
    /* Timer wake-ups as precise as the kernel allows (default slack 50 us). */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    tel__fault_thread_start(&s->alt);
#ifdef TEL_TSAN
    s->tsan_loop_fiber = __tsan_get_current_fiber();
#endif
#ifdef TEL_ASAN
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        (void)pthread_attr_getstack(&a, &s->loop_stack_lo, &s->loop_stack_size);
        pthread_attr_destroy(&a);
    }
#endif
}

static void thread_teardown(void)
{
    if (tel__tls_sched) {
        tel__epoch_offline(&tel__tls_sched->ep);
        tel__fault_thread_stop(&tel__tls_sched->alt);
    }
    tel__mem_bind_thread(-1);
    tel__pool_bind_thread(-1);
    tel__tls_sched = NULL;
}

static void *thread_main(void *arg)
{
    struct sched *s = arg;
    thread_setup(s);
    sched_loop(s);
    thread_teardown();
    return NULL;
}


/* ------------------------------------------------------------------ */
/* The spare schedulers                                                */
/* ------------------------------------------------------------------ */

/*
 * When every scheduler is stuck (one process computes where it cannot be
 * preempted, or blocks its thread in a system call not made through
 * tel_blocking), handing work to "the others" finds nobody: with one
 * scheduler that is any stuck run. Go hands the stuck M's P to a new M.
 * Here a scheduler and its thread are one, so the replacement is a spare
 * scheduler: a struct sched of its own (index sys.n + k for spare k, no
 * alloc cache of its own, not pinned), whose thread the watchdog starts
 * the first time it is needed and wakes every later time
 * (tel__sched_spare).
 *
 * At work (want), a spare runs what the stuck threads hand off: the
 * watchdog moves their rings to the global queue and their priority
 * queues to a thread that is not stuck (not_stuck), wake-ups from other
 * threads go to such a thread too (inject), it fires the stuck wheels'
 * due timers (help_stuck), and the tasks it runs wake others onto its own
 * queues as any scheduler does. It steals from nobody and nobody steals
 * from it; it is never counted as an idle scheduler (the spares' parks
 * have counts of their own), so wake_idle never wakes it and the
 * watchdog's "all parked" looks at it apart.
 *
 * Several spares. A task on a spare can get stuck in turn (two processes
 * each blocked in a raw read() with one scheduler: the first holds the
 * scheduler, the second the spare). With one spare everything else would
 * then wait for one of them to return, which may be never. So spare k + 1
 * is put to work when every scheduler and every spare 0 .. k is stuck and
 * each of those threads is held (below): the spares at work are always
 * spares 0 .. m - 1, and the watchdog adds at most one a sample.
 *
 * Sent back, newest first. Once a scheduler is free again, every spare is
 * sent back at once (the schedulers can run it all again). While every
 * scheduler stays stuck, the spares above the first spare at work that is
 * free are sent back: that one runs the rest, as one spare did before.
 * Sending back (want = 0, then the spare's back flag, counted in
 * sys.mode's MODE_SPARE field, so that its next switch-out takes the slow
 * path, where must_leave sees it): its running task is switched out at
 * its next switch or spent slice, and everything queued on it goes back
 * (spare_hand_back: runnable work to the global queue, priority queues to
 * a thread that is not stuck). Dormant, it keeps only its timer wheel: it
 * sleeps until the next of those timers (or a wake-up from another thread
 * for a task last run there) and hands what they wake straight back. It
 * runs nothing itself while dormant, so it never competes with the
 * schedulers for a core.
 *
 * MODE_SPARE costs the switch path nothing while it is 0: it is in the
 * word every switch-out reads. It is a count of set back flags, not a bit:
 * with a bit, one spare clearing it would hide another's request. The
 * count goes up before a flag is set and down after it is cleared
 * (spare_mark_back, spare_clear_back), so it never drops below the number
 * of set flags. A spare clears its flag, then reads its want (both
 * seq_cst; the watchdog writes them in the other order), so a new request
 * is never lost.
 *
 * When one is put to work: only if every stuck thread it would stand in
 * for is really held (sysmon.c's held: blocked in the kernel, or running
 * on a CPU). A thread that only waits for a CPU (more runnable threads
 * than cores) gets no spare, which would only add to the queue for the
 * CPUs.
 *
 * Limits: SCHED_SPARE_MAX spares (8). Each one is allocated at start (a
 * struct sched with its timer wheel, epoch record and watchdog record,
 * walked by every epoch collection and watchdog sample), and each in use
 * is a thread held by a process that should have used tel_blocking: that
 * is a bug to fix, and the bound only keeps a program with many such
 * processes from turning each into a thread; beyond it, the rest waits
 * for one of them to return, as with one spare before. Fewer spares at
 * more than TW_MAX_WHEELS - 8 schedulers (a timer id holds a wheel index,
 * timerwheel.h), none with the watchdog off. A stuck spare is marked
 * stuck like a scheduler (its ring goes to the global queue, others fire
 * its timers, foreign wake-ups go elsewhere); one sent back while stuck
 * keeps its MODE_SPARE count until that task switches out. A stuck
 * thread is online and passes no quiescent point of its own; where the
 * watchdog's signal finds it outside Telar's code it announces one
 * (preempt.c), so blocks retired meanwhile wait for it only while it is
 * stuck inside Telar's code (or without asynchronous preemption). With
 * one scheduler, once a spare has run, exited processes are retired
 * instead of freed at once (tel__sched_alone).
 */

/* Spare s's state (s->spare). */
static inline struct spare *spare_of(const struct sched *s)
{
    return &sys.sp[s->index - sys.n];
}

/* Any thread (async-signal-safe): spare p is at work. */
static bool spare_working(struct spare *p)
{
    return atomic_load_explicit(&p->live, memory_order_acquire) &&
           atomic_load_explicit(&p->want, memory_order_seq_cst);
}

/* The watchdog, or p's own thread: p must leave what it runs. The count
 * first, then the flag (undone if the flag was set already): the count
 * never drops below the number of set flags, whatever spare_clear_back
 * does meanwhile. */
static void spare_mark_back(struct spare *p)
{
    atomic_fetch_add_explicit(&sys.mode, MODE_SPARE_ONE, memory_order_seq_cst);
    if (atomic_exchange_explicit(&p->back, 1, memory_order_seq_cst))
        atomic_fetch_sub_explicit(&sys.mode, MODE_SPARE_ONE,
                                  memory_order_seq_cst);
}

/* p's own thread: clear p's flag, then its count. */
static void spare_clear_back(struct spare *p)
{
    if (atomic_exchange_explicit(&p->back, 0, memory_order_seq_cst))
        atomic_fetch_sub_explicit(&sys.mode, MODE_SPARE_ONE,
                                  memory_order_seq_cst);
}

static TEL_NOINLINE bool must_leave_slow(struct sched *s, uint32_t mode)
{
    if (mode & MODE_STOP)
        return true;
    if (!s->spare)
        return false; /* MODE_SPARE is the spares' business */
    struct spare *p = spare_of(s);
    if (!atomic_load_explicit(&p->back, memory_order_seq_cst))
        return false; /* another spare's request */
    /* Sent back: the flag stays set (its count keeps the caller's
     * switch-out on the slow path too) until the spare's loop clears it.
     * Put to work again meanwhile: clear it, then look again (the
     * watchdog stores want, then sets the flag: a new request is never
     * lost). */
    if (atomic_load_explicit(&p->want, memory_order_seq_cst)) {
        spare_clear_back(p);
        if (atomic_load_explicit(&p->want, memory_order_seq_cst))
            return false;
        spare_mark_back(p);
    }
    return true;
}

/* A spare's thread: whether it has work it must run or hand back. */
static bool spare_has_work(struct sched *s)
{
    return own_work(s) ||
           (atomic_load_explicit(&spare_of(s)->want, memory_order_seq_cst) &&
            atomic_load_explicit(&sys.glen, memory_order_seq_cst));
}

/* A spare's thread, sent back: fire its due timers and give everything
 * runnable it holds to the schedulers (or to a spare still at work). */
static void spare_hand_back(struct sched *s)
{
    run_timers(s);
    tel__sched_shed(s); /* runnext, lanes, ring, backlog, inject: global */
    struct sched *to = not_stuck(s);
    if (to == s)
        to = sys.s[0];
    if (move_prio(s, to)) {
        tel__park_wake(&to->park, idle_of(to));
        wake_idle();
    }
}

/* A spare's thread: sleep until woken, its own next timer, or (at work)
 * the next due timer of a stuck scheduler or spare. */
static void spare_sleep(struct sched *s, bool want)
{
    struct spare *p = spare_of(s);
    uint32_t seq = tel__park_prepare(&s->park, &sys.spare_idle);
    if (spare_has_work(s) ||
        atomic_load_explicit(&p->want, memory_order_seq_cst) !=
            (uint32_t)want ||
        atomic_load_explicit(&p->back, memory_order_seq_cst) ||
        (atomic_load_explicit(&sys.mode, memory_order_seq_cst) &
         MODE_STOP)) {
        tel__park_cancel(&s->park, &sys.spare_idle);
        return;
    }
    uint64_t due = tel__tw_next_ns(&s->wheel);
    if (want)
        for (unsigned i = 0; i < sys.n + sys.n_sp; i++) {
            struct sched *v = tel__sched_wheel_owner(i);
            if (v != s &&
                atomic_load_explicit(&v->stuck, memory_order_relaxed) &&
                !tel__tw_empty(&v->wheel)) {
                uint64_t d = tel__tw_next_ns(&v->wheel);
                if (d < due)
                    due = d;
            }
        }
    tel__epoch_offline(&s->ep);
    tel__park_sleep(&s->park, &sys.spare_idle, seq, due);
    tel__epoch_online(&s->ep);
}

static void spare_loop(struct sched *s)
{
    struct spare *p = spare_of(s);
    for (;;) {
        uint32_t mode = atomic_load_explicit(&sys.mode, memory_order_acquire);
        if (mode & MODE_STOP)
            return;
        if (mode & MODE_SPARE)
            spare_clear_back(p);
        bool want = atomic_load_explicit(&p->want, memory_order_seq_cst);
        struct task *t = NULL;
        if (want && !((t = pick_next(s))))
            t = look_once(s);
        if (!t) {
            /* Not running a task: the watchdog leaves us be. */
            atomic_store_explicit(&s->wd_idle, 1, memory_order_relaxed);
            if (!want)
                spare_hand_back(s);
            spare_sleep(s, want);
            continue;
        }
        if (atomic_load_explicit(&s->wd_idle, memory_order_relaxed)) {
            /* Busy again: a watchdog asleep must watch us (its "all
             * parked" counts us; the Dekker pair of tel__sysmon_unparked,
             * seq_cst on both sides). */
            atomic_store_explicit(&s->wd_idle, 0, memory_order_seq_cst);
            tel__sysmon_unparked();
        }
        start_running(s, t);
        s->handoff = NULL;
        (void)do_switch(s, &s->loop_sp, t->sp, t, false);
        finish_handoff(s);
    }
}

static void *spare_main(void *arg)
{
    struct sched *s = arg;
    /* Started by the watchdog, which blocks every signal: take tel_run's
     * mask instead (the fault and preemption handlers need theirs). */
    pthread_sigmask(SIG_SETMASK, &sys.sigmask, NULL);
    char name[16];
    snprintf(name, sizeof name, "tel-spare%u", s->index - sys.n);
    (void)prctl(PR_SET_NAME, name, 0, 0, 0);
    thread_setup(s);
    spare_loop(s);
    /* Stopping: what it holds is torn down with every other task. */
    thread_teardown();
    return NULL;
}

/* The watchdog: put p to work (was: it is already). Returns false if its
 * thread could not be started. */
static bool spare_put_to_work(struct spare *p, bool was)
{
    if (!was)
        atomic_store_explicit(&p->want, 1, memory_order_seq_cst);
    if (!atomic_load_explicit(&p->live, memory_order_relaxed)) {
        /* Live before it exists: a process block freed at once because
         * one scheduler seemed alone (tel__sched_alone) must be
         * unreachable before the spare can look anything up. */
        atomic_store_explicit(&p->live, 1, memory_order_seq_cst);
        if (pthread_create(&p->s->thread, NULL, spare_main, p->s) != 0) {
            atomic_store_explicit(&p->live, 0, memory_order_seq_cst);
            atomic_store_explicit(&p->want, 0, memory_order_seq_cst);
            return false;
        }
    }
    if (!was)
        atomic_fetch_add_explicit(&sys.spare_runs, 1, memory_order_relaxed);
    tel__park_wake(&p->s->park, &sys.spare_idle);
    return true;
}

/* The watchdog: send p back (want first, then the flag: must_leave_slow
 * and spare_loop read them in the other order). */
static void spare_send_back(struct spare *p)
{
    atomic_store_explicit(&p->want, 0, memory_order_seq_cst);
    spare_mark_back(p);
    tel__park_wake(&p->s->park, &sys.spare_idle);
}

unsigned tel__sched_spare(unsigned want)
{
    /* Spares 0 .. at - 1 at work: one whose thread cannot start ends the
     * prefix, and every spare above it is sent back. */
    unsigned at = 0;
    for (unsigned k = 0; k < sys.n_sp; k++) {
        struct spare *p = &sys.sp[k];
        bool was = atomic_load_explicit(&p->want, memory_order_relaxed);
        if (k < want && k == at) {
            if (spare_put_to_work(p, was))
                at++;
        } else if (was) {
            spare_send_back(p);
        }
    }
    return at;
}

bool tel__sched_has_waiting(struct sched *s, uint64_t now)
{
    return (atomic_load_explicit(&s->prio.mask, memory_order_relaxed) &
            PRIO_HI_BITS) ||
           tel__mpsc_hint_nonempty(&s->inject) ||
           (!tel__tw_empty(&s->wheel) && tel__tw_next_ns(&s->wheel) <= now);
}

bool tel__sched_alone(void)
{
    /* Spare k > 0 is started only while spare 0 is at work: spare 0's
     * flag covers them all. */
    return sys.n == 1 &&
           !(sys.n_sp &&
             atomic_load_explicit(&sys.sp[0].live, memory_order_seq_cst));
}

unsigned tel__sched_spares(void)
{
    return sys.n_sp;
}

unsigned tel__sched_spares_at_work(void)
{
    unsigned m = 0;
    for (unsigned k = 0; k < sys.n_sp; k++)
        m += spare_working(&sys.sp[k]);
    return m;
}

unsigned tel__sched_spares_started(void)
{
    unsigned m = 0;
    for (unsigned k = 0; k < sys.n_sp; k++)
        m += atomic_load_explicit(&sys.sp[k].live, memory_order_acquire) != 0;
    return m;
}

bool tel__sched_at_work(const struct sched *s)
{
    return !s->spare || spare_working(spare_of(s));
}

uint64_t tel__sched_spare_runs(void)
{
    return atomic_load_explicit(&sys.spare_runs, memory_order_relaxed);
}

struct sched *tel__sched_wheel_owner(unsigned i)
{
    if (i < sys.n)
        return sys.s[i];
    return i - sys.n < sys.n_sp ? sys.sp[i - sys.n].s : NULL;
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                      */
/* ------------------------------------------------------------------ */

void tel__sched_stop(void)
{
    atomic_fetch_or_explicit(&sys.mode, MODE_STOP, memory_order_seq_cst);
    for (unsigned i = 0; i < sys.n; i++)
        tel__park_wake(&sys.s[i]->park, &sys.idle);
    for (unsigned k = 0; k < sys.n_sp; k++)
        tel__park_wake(&sys.sp[k].s->park, &sys.spare_idle);
}

void tel__sched_kick(struct sched *s)
{
    tel__park_wake(&s->park, idle_of(s));
}

bool tel__sched_stopping(void)
{
    return atomic_load_explicit(&sys.mode, memory_order_acquire) & MODE_STOP;
}

unsigned tel__sched_count(void)
{
    return sys.n;
}

struct sched *tel__sched_get(unsigned i)
{
    return i < sys.n ? sys.s[i] : NULL;
}

unsigned tel__sched_n_parked(void)
{
    /* seq_cst: the watchdog's side of the Dekker pair in sysmon.c. */
    return atomic_load_explicit(&sys.idle.n_parked, memory_order_seq_cst);
}

void tel__sched_n_parked_sync(void)
{
    (void)atomic_fetch_add_explicit(&sys.idle.n_parked, 0,
                                    memory_order_seq_cst);
}

const struct tel__sched_hooks *tel__sched_hooks(void)
{
    return &sys.hooks;
}

static void free_scheds(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        tel__mem_free_cl(sys.s[i], sizeof(struct sched));
    for (unsigned k = 0; k < sys.n_sp; k++)
        if (sys.sp[k].s)
            tel__mem_free_cl(sys.sp[k].s, sizeof(struct sched));
    tel__mem_free(sys.s, sizeof(struct sched *) * sys.n);
    if (sys.eps)
        tel__mem_free(sys.eps,
                      sizeof(struct epoch_local *) * (sys.n + sys.n_sp));
    sys.s = NULL;
    sys.eps = NULL;
    memset(sys.sp, 0, sizeof(sys.sp));
    sys.n = sys.n_eps = sys.n_sp = 0;
}

/* A zeroed scheduler with index i, ready to start (NULL: no memory). */
static struct sched *new_sched(const struct tel__sched_config *cfg,
                               unsigned i, uint64_t now)
{
    struct sched *s = tel__mem_zalloc_cl(sizeof(struct sched));
    if (!s)
        return NULL;
    s->index = i;
    s->cache = i < cfg->n ? (int32_t)i : -1;
    s->spare = i >= cfg->n;
    atomic_store_explicit(&s->wd_idle, s->spare, memory_order_relaxed);
    s->slice = cfg->slice;
    s->reds = (int32_t)cfg->slice;
    s->rng = 0x9e3779b97f4a7c15ull * (i + 1);
    tel__runq_init(&s->runq);
    tel__mpsc_init(&s->inject);
    tel__spin_init(&s->prio.lock);
    tel__park_init(&s->park);
    tel__tw_init(&s->wheel, i, now);
    return s;
}

int tel__sched_run(const struct tel__sched_config *cfg,
                   const struct tel__sched_hooks *hooks, struct task *first)
{
    memset(&sys, 0, sizeof(sys));
    sys.hooks = *hooks;
    sys.stack_size = cfg->stack_size;
    sys.pin = cfg->pin;
    atomic_store_explicit(&sys.mode,
                          tel__stack_canary_on() ? MODE_CANARY : 0,
                          memory_order_relaxed);
    tel__spin_init(&sys.glock);
    sys.s = tel__mem_zalloc(sizeof(struct sched *) * cfg->n);
    if (!sys.s)
        return TEL_ENOMEM; /* sys.n stays 0: tel__sched_fini has nothing to do */
    sys.n = cfg->n;
    /* Spares only with a watchdog (which alone starts them), and only as
     * many as leave every wheel index below TW_MAX_WHEELS. */
    if (cfg->watchdog && cfg->n < TW_MAX_WHEELS)
        sys.n_sp = TW_MAX_WHEELS - cfg->n < SCHED_SPARE_MAX
                       ? TW_MAX_WHEELS - cfg->n
                       : SCHED_SPARE_MAX;
    sys.eps =
        tel__mem_zalloc(sizeof(struct epoch_local *) * (cfg->n + sys.n_sp));
    if (!sys.eps) {
        free_scheds(0);
        return TEL_ENOMEM;
    }
    uint64_t now = tel__now_ns();
    for (unsigned i = 0; i < cfg->n; i++) {
        struct sched *s = new_sched(cfg, i, now);
        if (!s) {
            free_scheds(i);
            return TEL_ENOMEM;
        }
        sys.s[i] = s;
        sys.eps[i] = &s->ep;
    }
    sys.n_eps = cfg->n;
    for (unsigned k = 0; k < sys.n_sp; k++) {
        /* Its thread starts only if it is ever needed. */
        sys.sp[k].s = new_sched(cfg, cfg->n + k, now);
        if (!sys.sp[k].s) {
            free_scheds(cfg->n);
            return TEL_ENOMEM;
        }
        sys.eps[cfg->n + k] = &sys.sp[k].s->ep;
        sys.n_eps = cfg->n + k + 1;
    }
    pthread_sigmask(SIG_SETMASK, NULL, &sys.sigmask);
    atomic_store_explicit(&first->home, sys.s[0], memory_order_relaxed);
    tel__runq_push(&sys.s[0]->runq, first);

    /* Before the watchdog, which sends the requests. Not fatal: without
     * it the watchdog's requests fail and it falls back to its other
     * means. */
    sys.s[0]->thread = pthread_self();
    (void)tel__preempt_install(cfg->async_preempt);
    /* Lazy parks rely on the signal to end a long run that follows one. */
    sys.lazy = tel__preempt_active();
    atomic_store_explicit(&sys.batch, sys.lazy, memory_order_relaxed);
    int rc = tel__sysmon_start(cfg->watchdog, cfg->async_preempt, cfg->n,
                               cfg->watchdog_ns);
    if (rc) {
        tel__preempt_uninstall();
        free_scheds(cfg->n);
        return rc;
    }
    /* Not fatal: without it an overflow kills the program, as before. */
    (void)tel__fault_install();
    void *saved = tel__topo_save_binding();
    thread_setup(sys.s[0]);
    unsigned started = 1;
    for (; started < cfg->n; started++) {
        if (pthread_create(&sys.s[started]->thread, NULL, thread_main,
                           sys.s[started]) != 0) {
            rc = TEL_ESYS;
            break;
        }
    }
    if (rc == 0)
        sched_loop(sys.s[0]);
    else
        tel__sched_stop();
    for (unsigned i = 1; i < started; i++)
        pthread_join(sys.s[i]->thread, NULL);
    tel__sysmon_stop();
    /* The watchdog alone starts spares: it is stopped now. */
    for (unsigned k = 0; k < sys.n_sp; k++)
        if (atomic_load_explicit(&sys.sp[k].live, memory_order_acquire))
            pthread_join(sys.sp[k].s->thread, NULL);
    thread_teardown();
    tel__preempt_uninstall();
    tel__fault_uninstall();
    tel__topo_restore_binding(saved);
    return rc;
}

static void drop_timer(struct tw_node *n, void *ctx)
{
    (void)ctx;
    sys.hooks.timer_drop(n);
}

void tel__sched_fini(void)
{
    /* Every scheduler has stopped: nothing can hold a retired block. */
    if (sys.eps)
        tel__epoch_drain(sys.eps, sys.n_eps);
    for (unsigned i = 0; i < sys.n + sys.n_sp; i++) {
        struct sched *s = tel__sched_wheel_owner(i); /* the spares last */
        if (s->bl)
            tel__mem_free(s->bl, sizeof(struct task *) * s->bl_cap);
        tel__tw_fini(&s->wheel, drop_timer, NULL);
    }
    tel__sysmon_fini();
    free_scheds(sys.n);
}
