/*
 * tests/sched/spare_test.c: the spare schedulers ("The spare schedulers"
 * in sched/scheduler.c). When every scheduler is stuck (here: its thread
 * blocked in read() on a pipe, not through tel_blocking, or a process
 * spinning in C with tel_preempt_disable), the rest of the processes keep
 * running on a spare thread, and the spare goes back to sleep once a
 * scheduler is free again.
 *
 * Every test would hang without the spare: what unblocks the stuck
 * process is sent by processes that can only run elsewhere. With more
 * stuck threads than schedulers plus one, they would hang without a
 * spare for each (the essay's "Several spares"). A thread
 * outside the runtime unblocks it anyway after 10 s and records that it
 * had to, so a broken spare fails the test instead of hanging it.
 */
#include "common.h"

#include <poll.h>

#include "sched/preempt.h"
#include "sched/scheduler.h"

/* The blocked processes read from these (more than the schedulers and
 * every spare: the bound test); others_done says the others ran. */
#define N_PIPES 16
_Static_assert(N_PIPES >= SCHED_SPARE_MAX + 1 + 2, "the bound test's pipes");
static int pipes[N_PIPES][2];
static atomic_bool others_done, rescued;
static atomic_int n_blocked;

/* Outside the runtime: the safety net. Waits for others_done for up to
 * 10 s, then writes every pipe (once). */
static void *rescuer(void *arg)
{
    int n_pipes = (int)(intptr_t)arg;
    for (int i = 0; i < 10000 && !atomic_load(&others_done); i++)
        tt_os_sleep_ms(1);
    if (!atomic_load(&others_done))
        atomic_store(&rescued, true);
    for (int k = 0; k < n_pipes; k++)
        TT_CHECK(write(pipes[k][1], "x", 1) == 1, "write");
    return NULL;
}

/* Blocks its scheduler's thread in read() on pipes[arg] (SA_RESTART
 * restarts it across the watchdog's signal), then tells main (tag 5). */
struct blocker_arg {
    tel_pid_t main;
    int pipe;
};

static void blocker_fn(void *arg)
{
    struct blocker_arg *a = arg;
    atomic_fetch_add(&n_blocked, 1);
    char c;
    ssize_t r;
    do
        r = read(pipes[a->pipe][0], &c, 1);
    while (r < 0 && errno == EINTR);
    TT_CHECK(r == 1, "read: %zd", r);
    (void)tt_send_tag(a->main, 5);
}

/* Spins in C, not preemptible, until others_done (or 10 s). */
static void spinner_fn(void *arg)
{
    tel_pid_t main = (tel_pid_t)(uintptr_t)arg;
    atomic_fetch_add(&n_blocked, 1);
    TT_CHECK_RC(tel_preempt_disable(), 0, "tel_preempt_disable");
    int64_t until = tt_now_ms() + 10000;
    while (!atomic_load_explicit(&others_done, memory_order_relaxed) &&
           tt_now_ms() < until)
        ;
    if (!atomic_load(&others_done))
        atomic_store(&rescued, true);
    TT_CHECK_RC(tel_preempt_enable(), 0, "tel_preempt_enable");
    (void)tt_send_tag(main, 5);
}

/* A ping-pong pair: the pinger sends n pings, each answered, then tells
 * main (tag 1). */
#define PINGS 1000

static void ponger_fn(void *arg)
{
    (void)arg;
    for (;;) {
        tel_msg_t *m = NULL;
        if (tel_recv(&m, 20000) != 0)
            return;
        uint64_t tag = m->tag;
        tel_pid_t from = m->from;
        tel_msg_free(m);
        if (tag == 0)
            return;
        (void)tt_send_tag(from, 2);
    }
}

static void pinger_fn(void *arg)
{
    tel_pid_t main = (tel_pid_t)(uintptr_t)arg;
    tel_pid_t pong;
    if (!TT_CHECK_RC(tel_spawn(&pong, ponger_fn, NULL), 0, "spawn ponger"))
        return;
    /* Once the stuck ones are stuck: that is what this is about. */
    while (atomic_load(&n_blocked) == 0)
        tel_sleep(1);
    for (int i = 0; i < PINGS; i++) {
        (void)tt_send_tag(pong, 1);
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 20000), 0, "a pong"))
            return;
        tel_msg_free(m);
    }
    (void)tt_send_tag(pong, 0);
    (void)tt_send_tag(main, 1);
}

/* Sleeps 50 ms (on the wheel of the scheduler it runs on, which is stuck
 * by then), then tells main (tag 3). */
static void sleeper_fn(void *arg)
{
    tel_sleep(50);
    (void)tt_send_tag((tel_pid_t)(uintptr_t)arg, 3);
}

/* Inside a process: receive until `count` messages of each tag in `tags`
 * (0-terminated; a tag may repeat) came, for up to 30 s in all; others are
 * freed. Records a failure naming `what` if they did not all come. */
static bool await_tags(const uint64_t *tags, const char *what)
{
    int want[16] = {0}, n = 0;
    for (; tags[n]; n++)
        want[tags[n] & 15]++;
    int64_t until = tt_now_ms() + 30000;
    int left = n;
    while (left > 0) {
        int64_t ms = until - tt_now_ms();
        if (ms < 0)
            break;
        tel_msg_t *m = NULL;
        if (tel_recv(&m, ms) != 0)
            break;
        if (m->tag < 16 && want[m->tag] > 0) {
            want[m->tag]--;
            left--;
        }
        tel_msg_free(m);
    }
    TT_CHECK(left == 0, "%d message(s) missing: %s", left, what);
    return left == 0;
}

/* Start the safety net for the first n_pipes pipes; false (and a failure
 * recorded) if the thread could not start. */
static bool start_rescuer(pthread_t *th, int n_pipes)
{
    return TT_CHECK(pthread_create(th, NULL, rescuer,
                                   (void *)(intptr_t)n_pipes) == 0,
                    "pthread_create");
}

/* Inside a process: release the blockers on the first n pipes and wait
 * for their tags (5 each). */
static void release_blockers(int n)
{
    static const uint64_t fives[] = {5, 5, 5, 5, 0};
    TT_CHECK(n >= 1 && n <= 4, "release_blockers(%d)", n);
    for (int k = 0; k < n; k++)
        TT_CHECK(write(pipes[k][1], "y", 1) == 1, "write");
    (void)await_tags(fives + 4 - n, "blockers");
}

/* Inside a process: wait (up to 5 s) until no spare is at work: each is
 * sent back once a scheduler is free. */
static void await_spares_sent_back(void)
{
    for (int i = 0; i < 5000 && tel__sched_spares_at_work(); i++)
        tel_sleep(1);
    TT_CHECK(tel__sched_spares_at_work() == 0, "%u spare(s) still at work",
             tel__sched_spares_at_work());
}

/* ------------------------------------------------------------------------ */
/* One scheduler, blocked in read()                                          */
/* ------------------------------------------------------------------------ */

/*
 * On a timer armed while the process ran on the spare: a send_after to
 * itself and a sleep, both on the spare's wheel, which fire once the spare
 * went back to sleep (its dormant loop hands the woken process back).
 * Also cancels a timer of the spare's wheel (tel_cancel_timer finds it).
 */
static atomic_bool late_on_spare;

static void late_fn(void *arg)
{
    tel_pid_t main = (tel_pid_t)(uintptr_t)arg;
    atomic_store(&late_on_spare, tel__sched_self()->spare != 0);
    uint64_t id = 0, id2 = 0;
    TT_CHECK_RC(tel_send_after(&id, 150, tel_self(), 8, NULL, 0), 0,
                "send_after");
    TT_CHECK_RC(tel_send_after(&id2, 60000, tel_self(), 9, NULL, 0), 0,
                "send_after");
    TT_CHECK_RC(tel_cancel_timer(id2), 0, "cancel a timer armed on the spare");
    tel_sleep(100);
    tel_msg_t *m = NULL;
    if (TT_CHECK_RC(tel_recv(&m, 20000), 0,
                    "receive the send_after armed on the spare")) {
        TT_CHECK(m->tag == 8, "tag %" PRIu64 ", want 8 (9 was cancelled)",
                 m->tag);
        tel_msg_free(m);
    }
    (void)tt_send_tag(main, 6);
}

static void lone_main(void *arg)
{
    bool spin = arg != NULL;
    tel_pid_t self = tel_self();
    pthread_t th;
    if (!start_rescuer(&th, 1))
        return;
    uint64_t runs0 = tel__sched_spare_runs();
    /* The sleeper first: its timer is on the lone scheduler's wheel. */
    TT_CHECK_RC(tel_spawn(NULL, sleeper_fn, (void *)(uintptr_t)self), 0,
                "spawn sleeper");
    tel_sleep(5);
    TT_CHECK_RC(tel_spawn(NULL, pinger_fn, (void *)(uintptr_t)self), 0,
                "spawn pinger");
    struct blocker_arg ba = {.main = self, .pipe = 0};
    if (spin)
        TT_CHECK_RC(tel_spawn(NULL, spinner_fn, (void *)(uintptr_t)self), 0,
                    "spawn spinner");
    else
        TT_CHECK_RC(tel_spawn(NULL, blocker_fn, &ba), 0, "spawn blocker");
    /* The blocker runs next and blocks the only scheduler: all that
     * follows runs on the spare. */
    bool ok = await_tags((const uint64_t[]){3, 1, 0}, "sleeper, pinger");
    TT_CHECK(tel__sched_self()->spare, "main did not run on the spare");
    TT_CHECK_RC(tel_spawn(NULL, late_fn, (void *)(uintptr_t)self), 0,
                "spawn late");
    tel_sleep(10); /* late_fn arms its timers on the spare */
    atomic_store(&others_done, ok);
    if (!spin)
        TT_CHECK(write(pipes[0][1], "y", 1) == 1, "write");
    (void)await_tags((const uint64_t[]){5, 6, 0},
                     "stuck process, process with timers on the spare");
    TT_CHECK(atomic_load(&late_on_spare), "late_fn did not run on the spare");
    TT_CHECK(tel__sched_spare_runs() > runs0, "the spare never ran");
    /* Sent back once the scheduler was free. */
    await_spares_sent_back();
    /* And the scheduler runs everything again. */
    for (int i = 0; i < 50 && tel__sched_self()->spare; i++)
        tel_sleep(2);
    TT_CHECK(!tel__sched_self()->spare, "main still runs on the spare");
    pthread_join(th, NULL);
    TT_CHECK(!atomic_load(&rescued),
             "the stuck process had to be rescued: the others never ran");
}

static void setup(void)
{
    for (int k = 0; k < N_PIPES; k++)
        cr_assert_eq(pipe(pipes[k]), 0);
}

static void teardown(void)
{
    for (int k = 0; k < N_PIPES; k++) {
        close(pipes[k][0]);
        close(pipes[k][1]);
    }
}

Test(spare, a_lone_scheduler_blocked_in_read_does_not_stop_the_rest,
     .init = setup, .fini = teardown, .timeout = 120)
{
    tel_config_t c = {.schedulers = 1};
    TT_RUN(&c, lone_main, NULL);
}

Test(spare, a_lone_scheduler_in_an_unpreemptible_loop_does_not_stop_the_rest,
     .init = setup, .fini = teardown, .timeout = 120)
{
    tel_config_t c = {.schedulers = 1};
    TT_RUN(&c, lone_main, (void *)1);
    /* The spinner wrote nothing: the pipe the rescuer wrote is unread. */
}

/* ------------------------------------------------------------------------ */
/* Sent back while it runs a loop that never calls Telar                     */
/* ------------------------------------------------------------------------ */

/*
 * The spare runs a process that loops in plain C when the scheduler comes
 * free again: the watchdog's signal switches it out there, so it goes back
 * to the scheduler (it watches which thread runs it, reading the thread's
 * scheduler, which calls nothing).
 */
static atomic_bool looper_on_spare, looper_back, looper_go;

static void looper_fn(void *arg)
{
    tel_pid_t main = (tel_pid_t)(uintptr_t)arg;
    atomic_store(&looper_on_spare, tel__sched_self()->spare != 0);
    atomic_store(&looper_go, true);
    int64_t until = tt_now_ms() + 10000;
    volatile uint64_t n = 0;
    while (!atomic_load(&looper_back) && tt_now_ms() < until)
        /* Mostly here, where the signal may switch it out (not in the
         * clock's vDSO code, where it may not). */
        for (int i = 0; i < 100000; i++) {
            n++;
            if (!tel__tls_sched->spare) /* a plain read, no call */
                atomic_store_explicit(&looper_back, true,
                                      memory_order_relaxed);
        }
    (void)tt_send_tag(main, 7);
}

static void sent_back_main(void *arg)
{
    (void)arg;
    if (!tel__preempt_active()) {
        atomic_store(&others_done, true); /* nothing to rescue */
        return;
    }
    tel_pid_t self = tel_self();
    pthread_t th;
    if (!start_rescuer(&th, 1))
        return;
    struct blocker_arg ba = {.main = self, .pipe = 0};
    TT_CHECK_RC(tel_spawn(NULL, blocker_fn, &ba), 0, "spawn blocker");
    /* We run again only on the spare (the blocker runs first). */
    tel_sleep(1);
    TT_CHECK(tel__sched_self()->spare, "main did not run on the spare");
    TT_CHECK_RC(tel_spawn(NULL, looper_fn, (void *)(uintptr_t)self), 0,
                "spawn looper");
    while (!atomic_load(&looper_go))
        tel_sleep(1);
    atomic_store(&others_done, true);
    TT_CHECK(write(pipes[0][1], "y", 1) == 1, "write");
    (void)await_tags((const uint64_t[]){5, 7, 0}, "blocker, looper");
    TT_CHECK(atomic_load(&looper_on_spare), "the looper did not start on the spare");
    TT_CHECK(atomic_load(&looper_back),
             "the looper was never moved back to the scheduler");
    pthread_join(th, NULL);
    TT_CHECK(!atomic_load(&rescued), "the blocker had to be rescued");
}

Test(spare, a_loop_on_the_spare_goes_back_when_the_scheduler_is_free,
     .init = setup, .fini = teardown, .timeout = 120)
{
    tel_config_t c = {.schedulers = 1};
    TT_RUN(&c, sent_back_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Work only the stuck thread may take                                       */
/* ------------------------------------------------------------------------ */

/*
 * The parent spawns the writer (it waits in the runnext slot, which only
 * the scheduler's own thread takes), then blocks its thread in read() on
 * the pipe the writer writes. The watchdog's second signal finds the
 * thread in read() and sheds the slot to the global queue, where the spare
 * takes it.
 */
static void writer_fn(void *arg)
{
    (void)arg;
    atomic_store(&others_done, true);
    TT_CHECK(write(pipes[0][1], "w", 1) == 1, "write");
}

static void parent_fn(void *arg)
{
    tel_pid_t main = (tel_pid_t)(uintptr_t)arg;
    TT_CHECK_RC(tel_spawn(NULL, writer_fn, NULL), 0, "spawn writer");
    char c;
    ssize_t r;
    do
        r = read(pipes[0][0], &c, 1); /* the writer is in our runnext */
    while (r < 0 && errno == EINTR);
    TT_CHECK(r == 1, "read: %zd", r);
    (void)tt_send_tag(main, 5);
}

static void runnext_main(void *arg)
{
    (void)arg;
    if (!tel__preempt_active()) {
        atomic_store(&others_done, true); /* nothing to rescue */
        return;
    }
    uint64_t shed0 = tel__preempt_n_shed();
    pthread_t th;
    if (!start_rescuer(&th, 1))
        return;
    TT_CHECK_RC(tel_spawn(NULL, parent_fn, (void *)(uintptr_t)tel_self()), 0,
                "spawn parent");
    (void)await_tags((const uint64_t[]){5, 0}, "parent");
    pthread_join(th, NULL);
    TT_CHECK(!atomic_load(&rescued),
             "the parent had to be rescued: its child never ran");
    TT_CHECK(tel__preempt_n_shed() > shed0, "no shed");
}

Test(spare, a_child_in_the_blocked_threads_runnext_slot_still_runs,
     .init = setup, .fini = teardown, .timeout = 120)
{
    tel_config_t c = {.schedulers = 1};
    TT_RUN(&c, runnext_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Two schedulers, both blocked                                              */
/* ------------------------------------------------------------------------ */

static void both_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    pthread_t th;
    if (!start_rescuer(&th, 2))
        return;
    struct blocker_arg ba[2] = {{.main = self, .pipe = 0},
                                {.main = self, .pipe = 1}};
    for (int k = 0; k < 2; k++)
        TT_CHECK_RC(tel_spawn(NULL, blocker_fn, &ba[k]), 0, "spawn blocker");
    /* Until both block (each on its own thread: one that waits behind the
     * first is handed to the other scheduler, which it blocks in turn). */
    while (atomic_load(&n_blocked) < 2)
        tel_sleep(1);
    TT_CHECK_RC(tel_spawn(NULL, pinger_fn, (void *)(uintptr_t)self), 0,
                "spawn pinger");
    bool ok = await_tags((const uint64_t[]){1, 0}, "pinger");
    atomic_store(&others_done, ok);
    release_blockers(2);
    await_spares_sent_back();
    pthread_join(th, NULL);
    TT_CHECK(!atomic_load(&rescued),
             "the blockers had to be rescued: the others never ran");
}

Test(spare, two_schedulers_both_blocked_do_not_stop_the_rest, .init = setup,
     .fini = teardown, .timeout = 120)
{
    tel_config_t c = {.schedulers = 2};
    TT_RUN(&c, both_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* A stuck scheduler does not hold back reclamation                          */
/* ------------------------------------------------------------------------ */

/*
 * Processes that end on a free scheduler have their blocks reused while
 * the other scheduler's thread is blocked in read() (sched/epoch.h): the
 * watchdog signals the stuck thread while it is behind, and its handler
 * announces a quiescent state there (preempt.c). Without that, every
 * block retired meanwhile waited for read() to return. White-box: the
 * free scheduler's count of retired blocks not yet freed.
 */
static atomic_int n_ended;

static void ended_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&n_ended, 1);
}

/* blocker_fn inside a lookup window (tel__sched_hold): as Telar code
 * blocked in a system call while it holds a pointer it looked up without
 * a reference. Its thread must then hold the epoch back. */
static void holding_blocker_fn(void *arg)
{
    struct sched *s = tel__sched_self();
    tel__sched_hold(s);
    atomic_fetch_add(&n_blocked, 1);
    char c;
    ssize_t r;
    do
        r = read(pipes[0][0], &c, 1);
    while (r < 0 && errno == EINTR);
    tel__sched_unhold(s);
    TT_CHECK(r == 1, "read: %zd", r);
    (void)tt_send_tag(((struct blocker_arg *)arg)->main, 5);
}

static void reclaim_main(void *arg)
{
    bool holding = arg != NULL;
    if (!tel__preempt_active()) { /* TSan: the handler is not installed */
        atomic_store(&others_done, true);
        return;
    }
    tel_pid_t self = tel_self();
    pthread_t th;
    if (!start_rescuer(&th, 1))
        return;
    struct blocker_arg ba = {.main = self, .pipe = 0};
    TT_CHECK_RC(tel_spawn(NULL, holding ? holding_blocker_fn : blocker_fn,
                          &ba),
                0, "spawn blocker");
    while (atomic_load(&n_blocked) == 0)
        tel_sleep(1);
    tel_sleep(20); /* blocked in read() by now, and marked stuck */
    enum { ENDED = 20000, FREED_BELOW = 2000 };
    for (int i = 0; i < ENDED; i++) {
        if (!TT_CHECK_RC(tel_spawn(NULL, ended_fn, NULL), 0, "spawn"))
            break;
        if (i % 500 == 499)
            tel_yield(); /* let them end as we go */
    }
    for (int i = 0; i < 5000 && atomic_load(&n_ended) < ENDED; i++)
        tel_sleep(1);
    TT_CHECK(atomic_load(&n_ended) == ENDED, "%d of %d processes ended",
             atomic_load(&n_ended), (int)ENDED);
    /* Their blocks are retired here (the blocked thread runs nothing). */
    struct sched *s = tel__sched_self();
    TT_CHECK(!s->stuck && !s->spare, "main runs on the stuck scheduler");
    uint32_t left = s->ep.n;
    if (holding) {
        /* Well past the few watchdog periods the free takes otherwise. */
        for (int i = 0; i < 200; i++) {
            tel_sleep(1);
            uint32_t n = tel__sched_self()->ep.n;
            left = n < left ? n : left;
        }
        TT_CHECK(left >= ENDED - FREED_BELOW,
                 "only %u retired blocks wait: the epoch moved on while a "
                 "lookup window was open on the blocked thread", left);
    } else {
        for (int i = 0; i < 3000 && left >= FREED_BELOW; i++) {
            tel_sleep(1);
            left = tel__sched_self()->ep.n;
        }
        TT_CHECK(left < FREED_BELOW,
                 "%u retired blocks still wait while the other scheduler is "
                 "blocked in read()", left);
    }
    TT_CHECK(atomic_load(&n_blocked) == 1 && !atomic_load(&others_done),
             "the blocker is no longer blocked");
    atomic_store(&others_done, true);
    TT_CHECK(write(pipes[0][1], "y", 1) == 1, "write");
    (void)await_tags((const uint64_t[]){5, 0}, "blocker");
    pthread_join(th, NULL);
    TT_CHECK(!atomic_load(&rescued), "the blocker had to be rescued");
}

Test(spare, a_scheduler_blocked_in_read_does_not_hold_back_reclamation,
     .init = setup, .fini = teardown, .timeout = 120)
{
    tel_config_t c = {.schedulers = 2};
    TT_RUN(&c, reclaim_main, NULL);
}

Test(spare, a_scheduler_blocked_inside_a_lookup_window_holds_the_epoch,
     .init = setup, .fini = teardown, .timeout = 120)
{
    tel_config_t c = {.schedulers = 2};
    TT_RUN(&c, reclaim_main, (void *)1);
}

/*
 * The signals that move a stuck scheduler's epoch on come at most once per
 * 20 ms (sysmon.c): a process blocked in poll() on its scheduler thread,
 * which the kernel never restarts, sees a few EINTRs a second while
 * processes end elsewhere, not one per watchdog sample (3,294 in 2 s once).
 */
static atomic_int n_eintr;
static atomic_bool poller_done;

static void poller_fn(void *arg)
{
    tel_pid_t main = (tel_pid_t)(uintptr_t)arg;
    atomic_fetch_add(&n_blocked, 1);
    int64_t until = tt_now_ms() + 1000;
    for (int64_t now; (now = tt_now_ms()) < until;)
        if (poll(NULL, 0, (int)(until - now)) < 0 && errno == EINTR)
            atomic_fetch_add(&n_eintr, 1);
    atomic_store(&poller_done, true);
    (void)tt_send_tag(main, 5);
}

static void eintr_main(void *arg)
{
    (void)arg;
    if (!tel__preempt_active())
        return;
    tel_pid_t self = tel_self();
    TT_CHECK_RC(tel_spawn(NULL, poller_fn, (void *)(uintptr_t)self), 0,
                "spawn poller");
    while (atomic_load(&n_blocked) == 0)
        tel_sleep(1);
    /* Processes end here all the while: the epoch keeps moving on. */
    while (!atomic_load(&poller_done)) {
        for (int i = 0; i < 200; i++)
            if (!TT_CHECK_RC(tel_spawn(NULL, ended_fn, NULL), 0, "spawn"))
                break;
        tel_sleep(1);
    }
    (void)await_tags((const uint64_t[]){5, 0}, "poller");
    int n = atomic_load(&n_eintr);
    cr_log_info("poll() saw %d EINTRs in 1 s", n);
    /* Two when the run is found long and stuck, then at most 50 a
     * second; room for a watchdog that samples late. */
    TT_CHECK(n <= 80, "poll() saw %d EINTRs in 1 s", n);
}

Test(spare, a_stuck_scheduler_gets_few_signals_for_its_epoch, .timeout = 120)
{
    tel_config_t c = {.schedulers = 2};
    TT_RUN(&c, eintr_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* A stuck spare gets a spare of its own                                     */
/* ------------------------------------------------------------------------ */

/*
 * One scheduler, two processes each blocked in read() on a pipe of its
 * own: the first holds the scheduler, the second (spawned from the first
 * spare) holds the spare. A sleeper armed its timer on that spare's wheel
 * before it got stuck; the second spare fires it, and runs a ping-pong
 * pair. Then both are released, every spare goes dormant again, and main
 * is back on the scheduler.
 */
static void two_stuck_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    pthread_t th;
    if (!start_rescuer(&th, 2))
        return;
    struct blocker_arg ba[2] = {{.main = self, .pipe = 0},
                                {.main = self, .pipe = 1}};
    TT_CHECK_RC(tel_spawn(NULL, blocker_fn, &ba[0]), 0, "spawn blocker");
    while (atomic_load(&n_blocked) < 1)
        tel_sleep(1);
    /* We run again only on a spare (the scheduler is blocked). */
    tel_sleep(1);
    TT_CHECK(tel__sched_self()->spare, "main did not run on a spare");
    TT_CHECK_RC(tel_spawn(NULL, sleeper_fn, (void *)(uintptr_t)self), 0,
                "spawn sleeper");
    tel_sleep(5); /* the sleeper armed its timer on this spare's wheel */
    TT_CHECK_RC(tel_spawn(NULL, blocker_fn, &ba[1]), 0, "spawn blocker");
    while (atomic_load(&n_blocked) < 2)
        tel_sleep(1);
    TT_CHECK_RC(tel_spawn(NULL, pinger_fn, (void *)(uintptr_t)self), 0,
                "spawn pinger");
    bool ok = await_tags((const uint64_t[]){3, 1, 0}, "sleeper, pinger");
    TT_CHECK(tel__sched_spares_started() >= 2, "%u spare(s) started",
             tel__sched_spares_started());
    atomic_store(&others_done, ok);
    release_blockers(2);
    /* Sent back once the scheduler was free. */
    await_spares_sent_back();
    for (int i = 0; i < 500 && tel__sched_self()->spare; i++)
        tel_sleep(2);
    TT_CHECK(tel__sched_self() == tel__sched_get(0),
             "main is not back on scheduler 0");
    pthread_join(th, NULL);
    TT_CHECK(!atomic_load(&rescued),
             "the blockers had to be rescued: the others never ran");
}

Test(spare, a_blocked_spare_gets_a_spare_of_its_own, .init = setup,
     .fini = teardown, .timeout = 120)
{
    tel_config_t c = {.schedulers = 1};
    TT_RUN(&c, two_stuck_main, NULL);
}

/* Two schedulers and three processes blocked in read(): the third holds
 * the first spare, and a second spare runs the rest. */
static void three_stuck_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    pthread_t th;
    if (!start_rescuer(&th, 3))
        return;
    struct blocker_arg ba[3] = {{.main = self, .pipe = 0},
                                {.main = self, .pipe = 1},
                                {.main = self, .pipe = 2}};
    for (int k = 0; k < 3; k++)
        TT_CHECK_RC(tel_spawn(NULL, blocker_fn, &ba[k]), 0, "spawn blocker");
    /* Until all three block, each on a thread of its own (one that waits
     * behind another is handed off to a thread that is free). */
    while (atomic_load(&n_blocked) < 3)
        tel_sleep(1);
    TT_CHECK_RC(tel_spawn(NULL, sleeper_fn, (void *)(uintptr_t)self), 0,
                "spawn sleeper");
    TT_CHECK_RC(tel_spawn(NULL, pinger_fn, (void *)(uintptr_t)self), 0,
                "spawn pinger");
    bool ok = await_tags((const uint64_t[]){3, 1, 0}, "sleeper, pinger");
    atomic_store(&others_done, ok);
    release_blockers(3);
    await_spares_sent_back();
    pthread_join(th, NULL);
    TT_CHECK(!atomic_load(&rescued),
             "the blockers had to be rescued: the others never ran");
}

Test(spare, two_schedulers_and_a_spare_blocked_do_not_stop_the_rest,
     .init = setup, .fini = teardown, .timeout = 120)
{
    tel_config_t c = {.schedulers = 2};
    TT_RUN(&c, three_stuck_main, NULL);
}

/*
 * More blocked processes than the scheduler and every spare: each thread
 * ends up blocked, and no more than SCHED_SPARE_MAX spare threads start.
 * Nothing inside the runtime can run then, so the check is made from
 * outside: once the scheduler and every spare hold a blocker (or after
 * 10 s, which counts as rescued), a while longer to see that no thread
 * more starts, then every pipe is written.
 */
#define BOUND_BLOCKERS ((int)SCHED_SPARE_MAX + 1 + 2)

static atomic_uint bound_started;
static atomic_int bound_blocked;

static void *bound_rescuer(void *arg)
{
    (void)arg;
    int all = (int)SCHED_SPARE_MAX + 1;
    for (int i = 0; i < 10000 && atomic_load(&n_blocked) < all; i++)
        tt_os_sleep_ms(1);
    if (atomic_load(&n_blocked) < all)
        atomic_store(&rescued, true);
    tt_os_sleep_ms(300); /* many watchdog periods */
    atomic_store(&bound_started, tel__sched_spares_started());
    atomic_store(&bound_blocked, atomic_load(&n_blocked));
    for (int k = 0; k < BOUND_BLOCKERS; k++)
        TT_CHECK(write(pipes[k][1], "x", 1) == 1, "write");
    return NULL;
}

static void bound_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    TT_CHECK(tel__sched_spares() == SCHED_SPARE_MAX, "%u spares",
             tel__sched_spares());
    pthread_t th;
    if (!TT_CHECK(pthread_create(&th, NULL, bound_rescuer, NULL) == 0,
                  "pthread_create"))
        return;
    struct blocker_arg ba[BOUND_BLOCKERS];
    uint64_t tags[BOUND_BLOCKERS + 1];
    for (int k = 0; k < BOUND_BLOCKERS; k++) {
        ba[k] = (struct blocker_arg){.main = self, .pipe = k};
        tags[k] = 5;
        TT_CHECK_RC(tel_spawn(NULL, blocker_fn, &ba[k]), 0, "spawn blocker");
    }
    tags[BOUND_BLOCKERS] = 0;
    (void)await_tags(tags, "blockers");
    pthread_join(th, NULL);
    TT_CHECK(!atomic_load(&rescued),
             "%d blocked: the scheduler and every spare never all held one",
             atomic_load(&bound_blocked));
    TT_CHECK(atomic_load(&bound_started) == SCHED_SPARE_MAX,
             "%u spare threads started, bound %u", atomic_load(&bound_started),
             SCHED_SPARE_MAX);
    TT_CHECK(atomic_load(&bound_blocked) == (int)SCHED_SPARE_MAX + 1,
             "%d blocked at once with %u threads",
             atomic_load(&bound_blocked), SCHED_SPARE_MAX + 1);
    TT_CHECK(tel__sched_spares_started() == SCHED_SPARE_MAX,
             "%u spare threads started", tel__sched_spares_started());
    await_spares_sent_back();
}

Test(spare, more_blocked_processes_than_spares_keep_the_bound,
     .init = setup, .fini = teardown, .timeout = 120)
{
    tel_config_t c = {.schedulers = 1};
    TT_RUN(&c, bound_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Without a watchdog there is no spare                                      */
/* ------------------------------------------------------------------------ */

static void no_wd_main(void *arg)
{
    (void)arg;
    TT_CHECK(tel__sched_spare(1) == 0, "a spare without a watchdog");
    TT_CHECK(tel__sched_spares() == 0, "spares without a watchdog");
    TT_CHECK(!tel__sched_spares_at_work(), "at work without a watchdog");
    TT_CHECK(tel__sched_wheel_owner(1) == NULL, "a spare's wheel");
    TT_CHECK(tel__sched_wheel_owner(0) == tel__sched_self(), "wheel 0");
}

Test(spare, none_without_a_watchdog)
{
    tel_config_t c = {.schedulers = 1, .flags = TEL_CFG_NO_WATCHDOG};
    TT_RUN(&c, no_wd_main, NULL);
}
