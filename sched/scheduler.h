/*
 * sched/scheduler.h: scheduler threads, the run loop, and the calls a
 * process makes to give up its scheduler (yield, park, exit).
 *
 * Contract with core/ (the layer above), through hooks registered at start:
 * core embeds struct task first in its process block, gives the scheduler
 * a task_main to start a new task, park_msg/unpark_msg to park a task's
 * mailbox, a task_exit to free a task after it left its stack for good, and
 * timer_fire/timer_drop for TW_HANDLE timers. See sched/README.md.
 */
#ifndef TEL_SCHED_SCHEDULER_H
#define TEL_SCHED_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc/base.h"
#include "alloc/lock.h"
#include "alloc/mpsc.h"
#include "sched/epoch.h"
#include "sched/fault.h"
#include "sched/park.h"
#include "sched/runq.h"
#include "sched/task.h"
#include "sched/timerwheel.h"

struct tel__sched_hooks {
    /* On the new task's own stack; must end with tel__sched_exit. */
    void (*task_main)(struct task *t);
    /* Park t (just switched out, WAIT_MSG) on its mailbox; false if a
     * message came since its receive found none. From then on the sender
     * that ends the wait calls tel__sched_wake_parked. */
    bool (*park_msg)(struct task *t);
    /* Take t's park back to wake it for its timer; false if a sender woke
     * it first. t may be running elsewhere already. Any scheduler thread. */
    bool (*unpark_msg)(struct task *t);
    /* After t called tel__sched_exit (its stack is already back in the
     * pool), or when no stack could be had for it (TASK_F_NOSTACK). Owner
     * thread. */
    void (*task_exit)(struct sched *s, struct task *t);
    /* A TW_HANDLE timer fired (wheel owner's thread, outside the lock). */
    void (*timer_fire)(struct tw_node *n);
    /* At teardown, for every TW_HANDLE timer that never fired. */
    void (*timer_drop)(struct tw_node *n);
    /* The id the watchdog reports t by (core: its pid). Owner thread, at
     * the end of a run the watchdog asked about (t is alive). */
    uint64_t (*task_id)(struct task *t);
    /* The watchdog saw a run of the task with that id last at least ns on
     * scheduler index, no shorter than the run's long_schedule threshold
     * (tel__sysmon_set_long). The watchdog's thread, which is no
     * scheduler; at most once per run. May be NULL. */
    void (*long_run)(unsigned index, uint64_t id, uint64_t ns);
    /* The running task is about to leave the CPU (yield, preemption,
     * park, hibernation) and holds sends (TASK_F_OB: core/mailbox.c,
     * "Batched sends"): push them and close the batch. Owner thread, on
     * the task's stack. */
    void (*close_sends)(struct sched *s);
    /* The same from the preemption signal's handler (preempt.c: a
     * receiver's nudge, a long run, a stuck scheduler), where the
     * task was interrupted outside Telar's code; wakes go through
     * tel__sched_wake_parked_async. Owner thread, async-signal context. */
    void (*close_sends_async)(struct sched *s);
    /* The running task has received SCHED_FLOOD_SLICES slices' worth of
     * messages in this run without its mailbox running dry (core/mailbox.c,
     * "Floods"); called at each of its slice ends from then on. Owner
     * thread, on the task's stack. May be NULL. */
    void (*flooded)(struct task *t);
};

struct tel__sched_config {
    unsigned n;       /* scheduler threads (>= 1) */
    uint32_t slice;   /* reductions per slice */
    size_t stack_size;
    bool pin;         /* bind each thread to a core */
    bool watchdog;    /* run the watchdog thread (sysmon.c) */
    bool async_preempt; /* let it interrupt processes with a signal (preempt.c) */
    uint64_t watchdog_ns; /* a run longer than this is acted on */
};

/* How far ahead in a held batch a message hints the receive loop to
 * prefetch (core/mailbox.c, "Prefetch hints"); a power of two. */
#define TEL_OB_HINT_DIST 16u

struct sched {
    /* Owner thread only (hot). */
    struct task *cur;     /* running task; NULL on the loop context */
    struct task *runnext; /* runs next, in the current slice */
    /* Parked on its mailbox by the last switch, the park not yet published
     * (scheduler.c, "Lazy parks"); NULL on the loop context. */
    struct task *lazy;
    /* The last task a message woke on this thread (tel__sched_wake_parked):
     * a park that switches to it may be lazy. Reset at each hand-off. */
    struct task *woke;
    struct task *wk_head, *wk_tail; /* woken by a timer, not yet run */
    uint32_t wk_streak;   /* wake-lane picks in a row */
    uint32_t low_skip;    /* normal picks while a low task waited */
    uint32_t g_defer;     /* global turns put off for woken tasks in a row */
    uint32_t recvs;       /* messages the running task received this turn */
    /* core's send batch (core/mailbox.c, "Batched sends"): the running
     * task's latest messages to one receiver, not pushed yet. Owner only
     * (and its preemption signal's handler); closed (hooks->close_sends)
     * before the task leaves the CPU. */
    /* Messages in it. The owner writes it (relaxed: plain moves); a
     * nudging receiver reads it (tel__sched_nudge_senders). */
    _Atomic uint32_t ob_n;
    /* Its receiver's pid; 0: no batch and no candidate. The owner writes
     * it, a
     * receiver that found its mailbox empty reads it
     * (tel__sched_nudge_senders). */
    _Atomic uint64_t ob_to;
    uint32_t ob_on;       /* 1: open; 0: ob_to is only a candidate */
    void *ob_head, *ob_tail;
    void *ob_ring[TEL_OB_HINT_DIST]; /* the batch's last messages (hints) */
    struct task **bl;     /* backlog: older tasks the ring had no room for */
    uint32_t bl_cap, bl_head, bl_tail;
    int32_t reds;         /* reductions left in the slice */
    uint32_t tick;        /* picks so far, for periodic checks */
    uint32_t index;       /* sys.n + k for spare k (scheduler.c) */
    int32_t cache;        /* alloc cache slot: index, or -1 (a spare) */
    uint32_t spare;       /* 1: a spare scheduler (scheduler.c) */
    /* Owner: 1 while it grows its backlog (a call out to the allocator in
     * the middle of an owner-only change): the preemption signal must
     * not shed then (preempt.c). */
    volatile uint32_t no_shed;
    /* Owner: 1 while code on this thread holds pointers it looked up
     * without a reference (tel__sched_hold); the preemption signal's
     * handler reads it (preempt.c). */
    volatile uint32_t hold;
    uint32_t slice;
    tel__ctx_t loop_sp;   /* the scheduler loop's saved context */
    struct task *handoff; /* the task the last switch left behind */
    uint32_t handoff_act;
    uint64_t rng;
    struct tw_node *fired_handles; /* TW_HANDLE timers to deliver */
    void *loop_stack_lo;  /* the thread's own stack (sanitizers) */
    size_t loop_stack_size;
    void *tsan_loop_fiber;
    struct fault_altstack alt; /* for the overflow handler (fault.c) */
    /* Statistics: owner thread writes (tel__stat_inc: load + store, no
     * read-modify-write), anyone reads (tel_sched_stats, the watchdog).
     * n_renews: slices renewed for a task that went on alone (yield or
     * preemption with nothing else to run). n_switches + n_renews is the
     * run sequence the watchdog samples (sysmon.c): it moves whenever a run
     * of one task ends. */
    _Atomic uint64_t n_switches, n_steals, n_parks, n_preempts, n_renews;
    /* The watchdog (sysmon.c) asks the owner who ran the run with this
     * sequence (tel__sched_wd_ask; a bit of prio.mask, which every pick
     * tests, says a question waits). The owner answers at the end of that
     * run in wd_run_id, then wd_run_seq (release). */
    _Atomic uint64_t wd_ask;
    _Atomic uint64_t wd_run_seq, wd_run_id;
    /* Owner: 1 while its thread is on the loop context looking for work
     * (find_work: spinning or parked), 0 while it runs tasks. Written only
     * on the way into and out of find_work, never at a switch. */
    _Atomic uint32_t wd_idle;
    /* Preemptions the watchdog caused: the task was told to yield at its
     * next reduction point (a signal found it where it could not be
     * switched out at once), or was switched out by the signal itself
     * (preempt.c). Owner thread writes (load + store), anyone reads. */
    _Atomic uint64_t n_preempt_watchdog, n_preempt_signal;
    /* core's send batches (core/mailbox.c): batches its tasks opened, and
     * nudges its tasks sent to senders' schedulers (tel__sched_nudge_
     * senders). Owner thread writes (load + store), anyone reads. */
    _Atomic uint64_t n_ob_opens, n_ob_nudges;
    /* Asynchronous preemption (preempt.c). preempt_sig: requests since
     * the last signal was handled (any thread adds, this thread's handler
     * zeroes), so requests never pile up signals. preempt_want: the task the handler told
     * to yield at its next reduction point (written by the handler, on
     * this thread; read and cleared when that preemption happens). */
    _Atomic uint32_t preempt_sig;
    /* A receiver's nudge (tel__sched_nudge_senders). ob_nudge: 1 while
     * its signal is on its way (tel__preempt_nudge; the handler takes
     * it). ob_flush: push and close the batch at the next send to it
     * (core clears it when a batch closes or opens). */
    _Atomic uint32_t ob_nudge, ob_flush;
    /* The pid of a receiver that has fallen far behind (a flood), 0 if
     * none: a full send batch the running sender pushes to it ends that
     * sender's slice (core/mailbox.c, "Floods"; tel__sched_flood_senders).
     * The receiver writes it, rarely; the owner reads it at each full
     * batch. */
    _Atomic uint64_t ob_flood;
    _Atomic(struct task *) preempt_want;
    pthread_t thread;
    _Atomic int32_t tid; /* its thread's kernel id, 0 until it started */

    /* Cross-thread; each group starts its own cache line. */
    struct runq runq;
    struct tel__mpsc inject TEL_ALIGNED_CL; /* wake-ups from other threads */
    struct park park TEL_ALIGNED_CL;
    /* 1 while the watchdog finds s stuck in one task (sysmon.c): wakers
     * on other threads queue elsewhere, other schedulers run its timers.
     * The watchdog writes; wakers read it beside park.state. */
    _Atomic uint32_t stuck;
    struct timerwheel wheel TEL_ALIGNED_CL;
    struct epoch_local ep TEL_ALIGNED_CL; /* see epoch.h */
    /* Tasks of priority other than normal (tel_priority_t), one FIFO per
     * level linked by gnext (index: the level; [TEL_PRIO_NORMAL] unused),
     * under lock: the owner, wakers on other threads and thieves take it,
     * for O(1) work. mask has bit p set while queue p is non-empty:
     * written under lock (seq_cst), read without it (see scheduler.c). */
    struct {
        tel__spin_t lock;
        _Atomic uint32_t mask;
        struct task *head[4], *tail[4];
    } prio TEL_ALIGNED_CL;
};

/* Owner thread: count one (a relaxed load and store: the owner is the only
 * writer, so no read-modify-write is needed, and readers on other threads
 * see whole values). */
static inline void tel__stat_inc(_Atomic uint64_t *c)
{
#if defined(__x86_64__) && !defined(TEL_TSAN)
    /* The same, in one instruction instead of three: an increment without
     * a lock prefix is no read-modify-write for other threads, but an
     * aligned 8-byte store is single-copy atomic on x86-64, so a reader's
     * relaxed load sees a whole value (what the C below guarantees, and
     * what TSan builds use, since TSan cannot see into asm). */
    __asm__ volatile("incq %0" : "+m"(*(uint64_t *)c));
#else
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
#endif
}

/*
 * Owner: the calling code holds pointers it looked up without a reference
 * (a pid's process block, a registry entry: sched/epoch.h) until
 * tel__sched_unhold. Meanwhile the preemption signal's handler announces
 * no quiescent state for this thread: it does so for a thread stuck
 * outside Telar's code (preempt.c), and such a window may be there, in a
 * call out of Telar's code (libc's memcpy or memcmp, a system call of the
 * allocator or a wake-up). Every lookup without a reference on a
 * scheduler thread is inside one, unless it is under a Telar lock (the
 * handler announces nothing then either). They do not nest (a store each,
 * not a count: this is on tel_send's path).
 */
static inline void tel__sched_hold(struct sched *s)
{
    TEL_ASSERT(s->hold == 0);
    s->hold = 1;
    atomic_signal_fence(memory_order_seq_cst);
}

static inline void tel__sched_unhold(struct sched *s)
{
    atomic_signal_fence(memory_order_seq_cst);
    s->hold = 0;
}

/* Any thread: s's run sequence (see n_renews). */
static inline uint64_t tel__sched_run_seq(struct sched *s)
{
    return atomic_load_explicit(&s->n_switches, memory_order_relaxed) +
           atomic_load_explicit(&s->n_renews, memory_order_relaxed);
}

extern __thread struct sched *tel__tls_sched
    __attribute__((tls_model("initial-exec")));

/*
 * The calling thread's scheduler, or NULL on a thread the runtime does not
 * own. Read it once on entry to a call; after a switch use the scheduler the
 * switch returned (the task may have moved to another thread).
 */
static inline struct sched *tel__sched_self(void)
{
    return tel__tls_sched;
}

/*
 * Run the schedulers with `first` queued, on the calling thread as scheduler
 * 0 plus cfg->n - 1 new threads. Returns once tel__sched_stop was called and
 * every scheduler thread has stopped, or TEL_ENOMEM / TEL_ESYS (nothing
 * started). tel_run's thread.
 */
int tel__sched_run(const struct tel__sched_config *cfg,
                   const struct tel__sched_hooks *hooks, struct task *first);

/* Free what tel__sched_run kept (wheels, queues). After every task is freed. */
void tel__sched_fini(void);

/* Any thread: ask every scheduler to stop after its current task. */
void tel__sched_stop(void);

/* Any thread: wake s if it is parked, so it looks at its queues and timers. */
void tel__sched_kick(struct sched *s);

/* Any thread: whether a stop was requested. */
bool tel__sched_stopping(void);

/* The schedulers of the current run (valid between run and fini). */
unsigned tel__sched_count(void);
struct sched *tel__sched_get(unsigned i);

/* Any thread: how many schedulers are parked or about to park (a hint). */
unsigned tel__sched_n_parked(void);
/* A scheduler that left its park: a seq_cst read-modify-write of the
 * parked count (sysmon.c's Dekker pair; no fence: TSan has none). */
void tel__sched_n_parked_sync(void);

/* The hooks of the current run (valid between run and fini). */
const struct tel__sched_hooks *tel__sched_hooks(void);

/*
 * The watchdog's hand-off of a stuck scheduler (sysmon.c; the essay
 * "Stuck schedulers" in scheduler.c).
 *   set_stuck: any thread (the watchdog only): mark s stuck in one task,
 *     or no longer.
 *   hand_off: any thread (the watchdog), while s is stuck: move the work
 *     others may take (its ring, its priority queues) to them, and wake a
 *     parked scheduler if s's wheel has a timer due by due_ns.
 *   shed: s's own thread, from the preemption signal's handler when the
 *     interrupted code is the process's own (outside Telar) and the thread
 *     holds no Telar lock (tel__locks_held == 0): move s's owner-only
 *     runnable work (runnext, the wake lane, the backlog, the injection
 *     queue, the ring) to the global queue and wake an idle scheduler.
 *     Async-signal-safe: no allocation, only the global queue's spinlock
 *     and futex wakes.
 */
void tel__sched_set_stuck(struct sched *s, bool stuck);
/* Any thread (the watchdog): ask s's owner who runs the run with sequence
 * seq; it answers when that run ends (wd_run_seq, wd_run_id). */
void tel__sched_wd_ask(struct sched *s, uint64_t seq);
void tel__sched_hand_off(struct sched *s, uint64_t due_ns);
void tel__sched_shed(struct sched *s);
/* s's own thread, from the preemption signal's handler when it cannot
 * switch the task out and the interrupted code is not Telar's (no Telar
 * lock held): a long run follows a lazy park (scheduler.c, "Lazy parks"):
 * publish it now, so that a message from another thread can wake the
 * parked task elsewhere. Async-signal-safe, as tel__sched_shed. */
void tel__sched_publish_lazy(struct sched *s);

/*
 * The spare schedulers (the essay "The spare schedulers" in scheduler.c).
 * SCHED_SPARE_MAX bounds them (the essay says why); fewer when the
 * schedulers leave fewer than that of the TW_MAX_WHEELS wheel indices,
 * none without a watchdog. Spare k has index sys.n + k.
 *   spare: the watchdog only: want is how many spares should be at work
 *     (spares 0 .. want - 1; the watchdog grows it by one at a time, only
 *     while every thread at work is stuck). One put to work has its
 *     thread started (the first time) or is woken, so it runs what the
 *     stuck ones handed off; one sent back hands back what it holds and
 *     goes dormant. Returns how many are at work: fewer than want if a
 *     thread could not be started (it is tried again at the next call).
 *   spares: any thread: how many spares there are (0 without a watchdog).
 *   spares_at_work: any thread: how many are at work now (tests).
 *   spares_started: any thread: how many spare threads were ever started.
 *   at_work: any thread: s is a scheduler, or a spare at work.
 *   alone: any thread: one scheduler and no spare thread ever started, so
 *     no other scheduler thread can hold an unreferenced pointer (core's
 *     shortcut for freeing an exited process at once). seq_cst.
 *   spare_runs: how many times a spare was put to work (tests).
 *   wheel_owner: the scheduler (spares included) whose wheel has index i
 *     (tel__tw_id_wheel), or NULL.
 */
#define SCHED_SPARE_MAX 8u
unsigned tel__sched_spare(unsigned want);
unsigned tel__sched_spares(void);
unsigned tel__sched_spares_at_work(void);
unsigned tel__sched_spares_started(void);
bool tel__sched_at_work(const struct sched *s);
bool tel__sched_alone(void);
/* Any thread (the watchdog): whether s has work waiting that should not
 * wait for a long run to end: a max or high task, a wake-up from another
 * thread, or a timer due by now. */
bool tel__sched_has_waiting(struct sched *s, uint64_t now);
uint64_t tel__sched_spare_runs(void);
struct sched *tel__sched_wheel_owner(unsigned i);

/*
 * Prepare a fresh task. Its stack is taken from the pool when it first runs
 * and given back when it exits. Returns 0 or TEL_ENOMEM. Any thread.
 */
int tel__task_init(struct task *t);
/* Release what tel__task_init took (not the stack). Never the running task. */
void tel__task_fini(struct task *t);

/* Any thread: queue a new task. On a scheduler it runs next there (one
 * of another priority than normal goes to its level's queue there). */
void tel__sched_spawn(struct task *t);

/*
 * The bytes of t's stack: its size class's (TASK_STK_MASK in t->flags,
 * alloc/stack.h), or the run's stack size for class 0. Any thread, while
 * the run's scheduler state exists (between tel__sched_run and fini).
 */
size_t tel__task_stack_size(const struct task *t);

/*
 * Give t's stack back (if it has one) to the pool of its size class, from
 * a thread that is no scheduler (tel_run's teardown: t never runs again).
 * Its stack is NULL after.
 */
void tel__task_stack_release(struct task *t);

/* Any thread: t was parked waiting for a message and the caller's push
 * ended the wait (it took the park mark, or tel__sched_take_lazy gave it
 * t): make t runnable. The general path; callers use the inline one
 * below, which does the common case (a scheduler thread, a normal task,
 * runnext free) itself. */
void tel__sched_wake_parked_slow(struct task *t);

/* t runs next here, usually as soon as the caller blocks: start loading
 * the lines it resumes through (its saved registers and the frames of the
 * context switch, the park and the receive above them, about 200 bytes
 * with GCC -O3). Cold with many processes (ring's 10,000 stacks are out of
 * L2). One line (the registers) before: ring -s 1 10000 49.8 -> 35.7 ns a
 * hop, thread_ring 27.9 -> 26.7 (medians of 10 and 14 alternated runs);
 * six lines were worse than four. */
static inline void tel__sched_prefetch_resume(const struct task *t)
{
    const char *sp = (const char *)t->sp;
    __builtin_prefetch(sp, 0, 3);
    __builtin_prefetch(sp + 64, 0, 3);
    __builtin_prefetch(sp + 128, 0, 3);
    __builtin_prefetch(sp + 192, 0, 3);
}

static inline void tel__sched_wake_parked(struct task *t)
{
    struct sched *s = tel__sched_self();
    if (__builtin_expect(s == NULL || s->runnext != NULL ||
                             (t->flags & TASK_PRIO_MASK) != 0,
                         0)) {
        tel__sched_wake_parked_slow(t);
        return;
    }
    /* Ours alone (the park mark said so): no CAS. The mark's exchange
     * (seq_cst) made the parking scheduler's writes, t's saved context
     * among them, visible here. */
    atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
    tel__sched_prefetch_resume(t);
    s->woke = t; /* a park that switches to t may be lazy */
    s->runnext = t; /* put_next's case with runnext empty */
}

/* tel__sched_wake_parked from the preemption signal's handler (the
 * owner's own queues may be mid-change under it): t goes to its home's
 * injection queue, or another's if that one is stuck. */
void tel__sched_wake_parked_async(struct task *t);

/*
 * On s's own thread (a process running on s, or s's timer delivering a
 * message): if t is the task whose park on its mailbox s has not
 * published yet (scheduler.c, "Lazy parks"), take it:
 * nobody else can wake t now, its mailbox is not marked, and the caller
 * must make it runnable with tel__sched_wake_parked after delivering.
 * While t waits so, its arrival queue was truly empty when it parked and
 * only producers' exchanges have changed it since.
 */
static inline bool tel__sched_take_lazy(struct sched *s, struct task *t)
{
    if (TEL_LIKELY(s->lazy != t))
        return false;
    s->lazy = NULL;
    atomic_signal_fence(memory_order_seq_cst); /* tel__sched_publish_lazy */
    return true;
}

/*
 * Inside a process (s is its scheduler, t = s->cur). Each returns the
 * scheduler the task resumed on.
 *   yield: go behind the other runnable tasks (a fresh slice next time).
 *   park:  sleep in state kind (TASK_WAIT_MSG or TASK_WAIT_TIMER) until a
 *          wake or the task's wait timer fires.
 *   preempt: yield because the slice is spent.
 */
struct sched *tel__sched_yield(struct sched *s);
/* yield_woken: as yield, but wait with the woken tasks (the wake lane),
 * not behind the others: for a task that has work a moment away (a
 * receive whose message is being linked by another thread). */
struct sched *tel__sched_yield_woken(struct sched *s);
struct sched *tel__sched_park(struct sched *s, uint32_t kind);
struct sched *tel__sched_preempt(struct sched *s);

/*
 * The preemption trampoline (preempt.c), on the running task's own stack,
 * after the preemption signal interrupted it in its own code: counts
 * n_preempt_signal and preempts as at a spent slice. Returns the
 * scheduler the task resumed on.
 */
struct sched *tel__sched_preempt_async(struct sched *s);

/* Inside a process: leave for good; hooks->task_exit frees it. */
_Noreturn void tel__sched_exit(struct sched *s);

/*
 * Inside a process: give up the running task's stack for good (the next
 * context frees it). The task then waits on its mailbox (hooks->park_msg)
 * holding no stack; when woken, or at once if ready (a message already
 * waits), it is queued as a fresh task: its next run takes a new stack and
 * starts hooks->task_main. If no stack can be had then, it ends as a task
 * that never got one (TASK_F_NOSTACK). Never returns.
 */
_Noreturn void tel__sched_hibernate(struct sched *s, bool ready);

/*
 * The fault handler (fault.c), on s's thread and its signal stack: the
 * running task ran into its stack's guard (flag TASK_F_OVERFLOW) or faulted
 * in its own code (TASK_F_CRASHED). End it with that flag (never returning
 * to it) and run the next task.
 */
_Noreturn void tel__sched_exit_fault(struct sched *s, uint32_t flag);

/*
 * Inside a process: arm the running task's wait timer on s's wheel for
 * deadline_ns (monotonic). 0, or TEL_ENOMEM if no timer could be allocated
 * (nothing armed). Disarm with tel__sched_timer_disarm (a no-op when none
 * is armed; also from tel_run's teardown for a task that never resumed);
 * whether it fired is tel__sched_timer_fired.
 */
int tel__sched_timer_arm(struct sched *s, struct task *t, uint64_t deadline_ns);
void tel__sched_timer_disarm(struct task *t);

static inline bool tel__sched_timer_fired(struct task *t)
{
    return atomic_load_explicit(&t->timer_fired, memory_order_acquire);
}

/*
 * Inside a process: count n reductions; preempt when the slice is spent.
 * Returns the scheduler the caller runs on afterwards.
 */
static inline struct sched *tel__sched_charge(struct sched *s, uint32_t n)
{
    s->reds -= (int32_t)n;
    if (TEL_UNLIKELY(s->reds <= 0))
        return tel__sched_preempt(s);
    return s;
}

/*
 * A process (pid `to`, running on self) found its mailbox empty while
 * some scheduler may hold an open send batch for it (core/mailbox.c,
 * "Batched sends"): every other scheduler whose batch is for `to` closes
 * it at its next held send (ob_flush), and one that holds messages already
 * gets the preemption signal (tel__preempt_nudge), whose handler pushes
 * them where its task runs, without preempting it. Any scheduler thread.
 */
void tel__sched_nudge_senders(struct sched *self, uint64_t to);
/* The receiver `to` has fallen far behind (flooded: true) or caught up
 * (false): tell every scheduler, so that its senders' batches end their
 * slices while it is behind (core/mailbox.c, "Floods"). */
void tel__sched_flood_senders(uint64_t to, bool flooded);

/* Whether core may hold sends back in this run: only where the preemption
 * signal is active (it makes a sender push them wherever it is). Any
 * thread. tel__sched_batching_force: white-box tests of what does not
 * need the signal (order, exits), in builds without it (ThreadSanitizer);
 * call it inside the run, before the sends. */
bool tel__sched_batching(void);
void tel__sched_batching_force(bool on);

/* The preemption signal's handler, on s's thread, found the running task
 * holding sends where none of Telar's work is under way: push them and
 * close the batch (hooks->close_sends_async). */
void tel__sched_close_sends_async(struct sched *s);

#endif /* TEL_SCHED_SCHEDULER_H */
