/*
 * tests/sched/prio_test.c: process priorities (max, high, normal, low) and
 * per-process stack sizes, through the public calls (tel_spawn_opt,
 * tel_set_priority).
 *
 * Priorities are observed with one scheduler, where the order is decided by
 * the rules alone: who runs first is logged, and "who ran meanwhile" is
 * counted by hog processes that bump a counter per loop. Shares are ratios
 * of loop counts (each loop charges the same reductions, so a loop count
 * is a share of slices); no test asserts on speed.
 *
 * Stack sizes: exit reasons are seen through core's white-box hook
 * (tel__proc_exit_observer), and the stack pool's reservations
 * (tel__stack_stats) show that stacks of every size are reused.
 */
#include "common.h"

#include "alloc/stack.h"
#include "core/process.h"
#include "sched/scheduler.h"
#include "exit_log.h"

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)

/* No watchdog: on a loaded machine it sees long runs (the thread waiting
 * for a CPU) and acts on them (a signal that switches a process out, a
 * hand-off, the spare scheduler), which are not the rules tested here. */
static const tel_config_t one_sched = {.schedulers = 1,
                                       .stack_size = 64 * 1024,
                                       .flags = TEL_CFG_NO_WATCHDOG};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* Inside a process: spawn fn(arg) at priority prio with a stack of
 * stack_size bytes (0: the run's); records a failure if it fails. */
static tel_pid_t spawn_with(tel_fn fn, void *arg, tel_priority_t prio,
                            size_t stack_size)
{
    tel_spawn_opts_t o = {.priority = prio, .stack_size = stack_size};
    tel_pid_t pid = 0;
    int rc = tel_spawn_opt(&pid, fn, arg, &o);
    TT_CHECK_RC(rc, 0, "tel_spawn_opt");
    return pid;
}

/* The order processes ran in: each appends its mark. */
#define LOG_MAX 64
static _Atomic int order_log[LOG_MAX];
static atomic_uint n_logged;

static void log_mark(int mark)
{
    unsigned i = atomic_fetch_add(&n_logged, 1);
    if (i < LOG_MAX)
        atomic_store(&order_log[i], mark);
}

static void log_fn(void *arg)
{
    log_mark((int)(intptr_t)arg);
}

enum { MARK_NORMAL = 1, MARK_HIGH = 2, MARK_MAX = 3, MARK_LOW = 4 };

/* Hogs: busy loops that charge reductions until told to stop. */
static atomic_bool stop_hogs;
static atomic_uint_fast64_t hog_loops;  /* all normal hogs together */
static atomic_uint_fast64_t other_loops; /* the process under test */

static void hog_fn(void *arg)
{
    atomic_uint_fast64_t *count = arg ? arg : &hog_loops;
    while (!atomic_load_explicit(&stop_hogs, memory_order_relaxed)) {
        atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
        (void)tel_reduce(100);
    }
}

/* Inside a process: about `slices` slices' worth of reductions (the default
 * slice is TEL_DEFAULT_REDUCTIONS), without a call that would wait. */
static void spend_slices(unsigned slices)
{
    for (unsigned i = 0; i < slices * (TEL_DEFAULT_REDUCTIONS / 100); i++)
        (void)tel_reduce(100);
}

/* ------------------------------------------------------------------------ */
/* Order: max and high before normal                                         */
/* ------------------------------------------------------------------------ */

static void order_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++)
        spawn_with(log_fn, (void *)(intptr_t)MARK_NORMAL, TEL_PRIO_NORMAL, 0);
    spawn_with(log_fn, (void *)(intptr_t)MARK_LOW, TEL_PRIO_LOW, 0);
    spawn_with(log_fn, (void *)(intptr_t)MARK_HIGH, TEL_PRIO_HIGH, 0);
    spawn_with(log_fn, (void *)(intptr_t)MARK_MAX, TEL_PRIO_MAX, 0);
    /* Nothing ran yet: one scheduler, and this process has not waited. */
    TT_CHECK(atomic_load(&n_logged) == 0, "%u ran before the spawner waited",
             atomic_load(&n_logged));
    if (!TT_CHECK(tt_await_count(1, 5000), "children did not finish"))
        return;
    TT_CHECK(atomic_load(&n_logged) == 8, "logged %u", atomic_load(&n_logged));
    TT_CHECK(order_log[0] == MARK_MAX, "first ran %d, want max",
             order_log[0]);
    TT_CHECK(order_log[1] == MARK_HIGH, "second ran %d, want high",
             order_log[1]);
    for (int i = 2; i < 7; i++)
        TT_CHECK(order_log[i] == MARK_NORMAL, "#%d ran %d, want normal", i,
                 order_log[i]);
    TT_CHECK(order_log[7] == MARK_LOW, "last ran %d, want low", order_log[7]);
}

Test(prio, max_and_high_run_before_queued_normal_ones_and_low_after,
     .timeout = 30)
{
    TT_RUN(&one_sched, order_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* A woken high process runs before queued normal ones                       */
/* ------------------------------------------------------------------------ */

static void high_waiter_fn(void *arg)
{
    (void)arg;
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, TEL_INFINITY);
    TT_CHECK_RC(rc, 0, "tel_recv");
    tel_msg_free(m);
    log_mark(MARK_HIGH);
}

static void woken_main(void *arg)
{
    (void)arg;
    tel_pid_t h = spawn_with(high_waiter_fn, NULL, TEL_PRIO_HIGH, 0);
    /* Let it run and wait for a message: a high task is ahead of us. */
    (void)tel_yield();
    /* Woken first, then normal work queued after it: the newest spawn
     * would run next if h were normal (the spawner's next slot). */
    tt_send_tag(h, 1);
    for (int i = 0; i < 5; i++)
        spawn_with(log_fn, (void *)(intptr_t)MARK_NORMAL, TEL_PRIO_NORMAL, 0);
    TT_CHECK(atomic_load(&n_logged) == 0, "ran before the spawner waited");
    if (!TT_CHECK(tt_await_count(1, 5000), "children did not finish"))
        return;
    TT_CHECK(atomic_load(&n_logged) == 6, "logged %u", atomic_load(&n_logged));
    TT_CHECK(order_log[0] == MARK_HIGH,
             "the woken high process ran after a normal one (%d first)",
             order_log[0]);
}

Test(prio, a_high_process_woken_by_a_message_runs_before_queued_normal_ones,
     .timeout = 30)
{
    TT_RUN(&one_sched, woken_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* High keeps its scheduler from normal work, however it was woken           */
/* ------------------------------------------------------------------------ */

enum wake_how { WAKE_TIMER, WAKE_THREAD };
static tel_pid_t high_pid;
static atomic_bool high_waiting, high_done;

/* Waits (a timer, or a message from a thread that is no scheduler), then
 * spends many slices: no normal hog may run meanwhile. */
static void high_spender_fn(void *arg)
{
    enum wake_how how = (enum wake_how)(intptr_t)arg;
    atomic_store(&high_waiting, true);
    if (how == WAKE_TIMER) {
        (void)tel_sleep(20);
    } else {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, TEL_INFINITY);
        TT_CHECK_RC(rc, 0, "tel_recv");
        tel_msg_free(m);
    }
    uint64_t before = atomic_load(&hog_loops);
    spend_slices(20);
    uint64_t after = atomic_load(&hog_loops);
    TT_CHECK(after == before,
             "normal hogs ran %" PRIu64 " loops while a high process had "
             "work (woken by %s)",
             after - before, how == WAKE_TIMER ? "its timer" : "a thread");
    atomic_store(&high_done, true);
}

static void *waker_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&high_waiting))
        tt_os_sleep_ms(1);
    tt_os_sleep_ms(20); /* it is parked by now, or soon */
    int rc = tel_send(high_pid, 7, NULL, 0);
    TT_CHECK_RC(rc, 0, "tel_send from a thread");
    return NULL;
}

static void keeps_main(void *arg)
{
    high_pid = spawn_with(high_spender_fn, arg, TEL_PRIO_HIGH, 0);
    for (int i = 0; i < 4; i++)
        spawn_with(hog_fn, NULL, TEL_PRIO_NORMAL, 0);
    pthread_t th;
    bool thread = (enum wake_how)(intptr_t)arg == WAKE_THREAD;
    if (thread && !TT_CHECK(pthread_create(&th, NULL, waker_thread, NULL) == 0,
                            "pthread_create"))
        return;
    bool ok;
    TT_AWAIT(ok, atomic_load(&high_done), 10000);
    TT_CHECK(ok, "the high process did not finish");
    atomic_store(&stop_hogs, true);
    TT_CHECK(tt_await_count(1, 5000), "hogs did not stop");
    if (thread)
        pthread_join(th, NULL);
}

Test(prio, a_high_process_woken_by_its_timer_keeps_normal_work_waiting,
     .timeout = 30)
{
    TT_RUN(&one_sched, keeps_main, (void *)(intptr_t)WAKE_TIMER);
}

Test(prio, a_high_process_woken_from_another_thread_keeps_normal_work_waiting,
     .timeout = 30)
{
    TT_RUN(&one_sched, keeps_main, (void *)(intptr_t)WAKE_THREAD);
}

/* ------------------------------------------------------------------------ */
/* Low: not starved by normal, and does not starve normal                    */
/* ------------------------------------------------------------------------ */

#define N_HOGS 100

static void low_share_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < N_HOGS; i++)
        spawn_with(hog_fn, NULL, TEL_PRIO_NORMAL, 0);
    spawn_with(hog_fn, &other_loops, TEL_PRIO_LOW, 0);
    (void)tel_sleep(300);
    atomic_store(&stop_hogs, true);
    TT_CHECK(tt_await_count(1, 10000), "hogs did not stop");
    double low = (double)atomic_load(&other_loops);
    double normal = (double)atomic_load(&hog_loops);
    cr_log_info("low: %.0f loops, %d normal hogs: %.0f loops (low share %.3f)",
                low, N_HOGS, normal, low / (low + normal));
    /* One pick in 9 while normal work waits (BEAM's 8 normal picks per
     * low one): a share of about 0.11, far above a hog's 1/101. */
    tel_sched_stats_t st = {0};
    (void)tel_sched_stats(0, &st);
    TT_CHECK(low > 0,
             "the low process never ran (switches %llu, preempt: reductions "
             "%llu watchdog %llu signal %llu, longest run %llu ns)",
             (unsigned long long)st.switches,
             (unsigned long long)st.preempt_reductions,
             (unsigned long long)st.preempt_watchdog,
             (unsigned long long)st.preempt_signal,
             (unsigned long long)st.longest_run_ns);
    TT_CHECK(low / (low + normal) >= 0.08,
             "low share %.3f, want about 1/9 (low %.0f, normal %.0f)",
             low / (low + normal), low, normal);
}

/* A process woken while the low level's turn is due runs first: the low
 * process's slice would otherwise come between the wake-up and the run
 * (and a demoted long runner's lasts until the watchdog's signal). The
 * waker records the low process's loop count as it sends; the woken
 * process finds it unchanged. Each send is followed by a yield, so the
 * next pick happens at once; with 9 normal hogs, the low turn is due at
 * about one of those picks in 9. */
/* A woken process that checks whether a counter moved between the send
 * that woke it and its run: the waker stores the count in at_send before
 * each send (tag 1); tag 0 ends it. */
struct woken_probe {
    atomic_uint_fast64_t *loops;
    uint64_t at_send;
    atomic_uint n_woken, n_behind;
};

static void woken_fn(void *arg)
{
    struct woken_probe *w = arg;
    for (;;) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, TEL_INFINITY), 0, "tel_recv"))
            return;
        uint64_t tag = m->tag;
        tel_msg_free(m);
        if (tag == 0)
            return;
        atomic_fetch_add(&w->n_woken, 1);
        if (atomic_load(w->loops) != w->at_send)
            atomic_fetch_add(&w->n_behind, 1);
    }
}

static struct woken_probe low_probe = {.loops = &other_loops};

static void waker_main(void *arg)
{
    (void)arg;
    spawn_with(hog_fn, &other_loops, TEL_PRIO_LOW, 0);
    for (int i = 0; i < 9; i++)
        spawn_with(hog_fn, NULL, TEL_PRIO_NORMAL, 0);
    tel_pid_t woken_pid =
        spawn_with(woken_fn, &low_probe, TEL_PRIO_NORMAL, 0);
    enum { SENDS = 300 };
    for (int i = 0; i < SENDS; i++) {
        low_probe.at_send = atomic_load(&other_loops);
        if (!TT_CHECK_RC(tel_send(woken_pid, 1, NULL, 0), 0, "tel_send"))
            break;
        (void)tel_yield();
    }
    TT_CHECK_RC(tel_send(woken_pid, 0, NULL, 0), 0, "tel_send");
    atomic_store(&stop_hogs, true);
    TT_CHECK(tt_await_count(1, 10000), "hogs did not stop");
    TT_CHECK(atomic_load(&other_loops) > 0, "the low process never ran");
    TT_CHECK(atomic_load(&low_probe.n_woken) == SENDS, "woken %u times of %d",
             atomic_load(&low_probe.n_woken), SENDS);
    TT_CHECK(atomic_load(&low_probe.n_behind) == 0,
             "%u of %u wake-ups waited behind a low slice",
             atomic_load(&low_probe.n_behind),
             atomic_load(&low_probe.n_woken));
}

Test(prio, a_woken_process_runs_before_the_low_levels_turn, .timeout = 60)
{
    TT_RUN(&one_sched, waker_main, NULL);
}

/* The other side of that rule: woken tasks cannot keep the low level's
 * turn away for ever. A ping-pong pair is always woken (each wakes the
 * other), yet the low process runs while it plays. */
static void pair_main(void *arg)
{
    (void)arg;
    spawn_with(hog_fn, &other_loops, TEL_PRIO_LOW, 0);
    tel_pid_t pong = spawn_with(tt_echo_fn, NULL, TEL_PRIO_NORMAL, 0);
    enum { ROUNDS = 200000 };
    for (int i = 0; i < ROUNDS; i++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_send(pong, 1, NULL, 0), 0, "tel_send") ||
            !TT_CHECK_RC(tel_recv(&m, TEL_INFINITY), 0, "tel_recv"))
            break;
        tel_msg_free(m);
    }
    uint64_t low = atomic_load(&other_loops);
    TT_CHECK_RC(tel_send(pong, 0, NULL, 0), 0, "tel_send");
    atomic_store(&stop_hogs, true);
    TT_CHECK(tt_await_count(1, 10000), "hogs did not stop");
    TT_CHECK(low > 0, "the low process never ran during %d round trips",
             (int)ROUNDS);
}

Test(prio, a_ping_pong_pair_does_not_starve_a_low_process, .timeout = 60)
{
    TT_RUN(&one_sched, pair_main, NULL);
}

/* The global turn waits for a woken process too. Every 61st pick takes a
 * task from the injection queue, the backlog or the global queue (which
 * hold the tasks the full ring had no room for); a process woken just
 * before that pick runs first, not after the taken task's slice and
 * behind the ring. White-box: the waker sends only when the next pick is
 * the turn (the scheduler's tick), so every send tests the rule; 300 hogs
 * overfill the 256-task ring so the turn always finds a task. */
#define TURN_HOGS 300
static struct woken_probe turn_probe = {.loops = &hog_loops};

static void turn_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < TURN_HOGS; i++)
        spawn_with(hog_fn, NULL, TEL_PRIO_NORMAL, 0);
    tel_pid_t woken = spawn_with(woken_fn, &turn_probe, TEL_PRIO_NORMAL, 0);
    enum { SENDS = 20, MAX_YIELDS = 200000 };
    int sent = 0;
    for (int y = 0; sent < SENDS && y < MAX_YIELDS; y++) {
        struct sched *s = tel__sched_self();
        if ((s->tick + 1) % 61 == 0) { /* SCHED_GLOBAL_EVERY */
            turn_probe.at_send = atomic_load(&hog_loops);
            if (!TT_CHECK_RC(tel_send(woken, 1, NULL, 0), 0, "tel_send"))
                break;
            sent++;
        }
        (void)tel_yield();
    }
    TT_CHECK_RC(tel_send(woken, 0, NULL, 0), 0, "tel_send");
    atomic_store(&stop_hogs, true);
    TT_CHECK(tt_await_count(1, 10000), "hogs did not stop");
    TT_CHECK(sent == SENDS, "only %d sends came just before the turn", sent);
    TT_CHECK(atomic_load(&turn_probe.n_woken) == (unsigned)sent,
             "woken %u times of %d", atomic_load(&turn_probe.n_woken), sent);
    TT_CHECK(atomic_load(&turn_probe.n_behind) == 0,
             "%u of %u wake-ups waited behind the global turn's task",
             atomic_load(&turn_probe.n_behind),
             atomic_load(&turn_probe.n_woken));
}

Test(prio, a_woken_process_runs_before_the_global_turn, .timeout = 120)
{
    TT_RUN(&one_sched, turn_main, NULL);
}

Test(prio, a_low_process_gets_about_one_pick_in_nine_among_100_normal_hogs,
     .timeout = 60)
{
    TT_RUN(&one_sched, low_share_main, NULL);
}

static void normal_share_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++)
        spawn_with(hog_fn, NULL, TEL_PRIO_LOW, 0);
    spawn_with(hog_fn, &other_loops, TEL_PRIO_NORMAL, 0);
    (void)tel_sleep(300);
    atomic_store(&stop_hogs, true);
    TT_CHECK(tt_await_count(1, 10000), "hogs did not stop");
    double normal = (double)atomic_load(&other_loops);
    double low = (double)atomic_load(&hog_loops);
    cr_log_info("normal: %.0f loops, 10 low hogs: %.0f loops", normal, low);
    TT_CHECK(low > 0, "low processes never ran");
    /* Eight picks in nine. */
    TT_CHECK(normal / (low + normal) >= 0.75,
             "normal share %.3f among 10 low hogs, want about 8/9",
             normal / (low + normal));
}

Test(prio, a_normal_process_is_not_starved_by_10_low_hogs, .timeout = 60)
{
    TT_RUN(&one_sched, normal_share_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* A process draining a flood                                                */
/* ------------------------------------------------------------------------ */

/*
 * One receiver, FLOODERS processes that send to it without pause, on one
 * scheduler. A process preempted while it drains its mailbox (a whole slice
 * of receives) runs as the wake lane's: up to 8 slices in a row, then one
 * ring task (sched/scheduler.c, preempt_turn and drain_on). Seen from the
 * receiver: a "run" is the receives between two moments a flooder ran (its
 * send count moved), and runs of about 8 slices show the drainer keeps its
 * turn, while no run past the bound shows the flooders are not starved.
 */
#define FLOODERS 4
#define FLOOD_SLICE 500u   /* the run's reductions: a receive costs one */
#define FLOOD_BACKLOG 120000u /* sent before the receiver starts draining */
#define FLOOD_RUNS 24

struct flood {
    tel_pid_t main;
    _Atomic tel_pid_t recv;
    atomic_bool stop;
    atomic_uint_fast64_t sent;
    uint64_t run[FLOOD_RUNS];
    int n_runs;
};

static void flooder_fn(void *arg)
{
    struct flood *f = arg;
    tel_pid_t to;
    while (!(to = atomic_load(&f->recv)))
        (void)tel_yield();
    while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
        int rc = tel_send(to, 1, NULL, 0);
        if (!TT_CHECK_RC(rc, 0, "tel_send"))
            return;
        atomic_fetch_add_explicit(&f->sent, 1, memory_order_relaxed);
    }
}

static void flood_recv_fn(void *arg)
{
    struct flood *f = arg;
    atomic_store(&f->recv, tel_self());
    /* Let a backlog build (the flooders run meanwhile). */
    while (atomic_load(&f->sent) < FLOOD_BACKLOG)
        (void)tel_sleep(1);
    uint64_t last = atomic_load(&f->sent), n = 0;
    while (f->n_runs < FLOOD_RUNS) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 5000);
        if (!TT_CHECK_RC(rc, 0, "tel_recv"))
            break;
        tel_msg_free(m);
        uint64_t now = atomic_load_explicit(&f->sent, memory_order_relaxed);
        if (now != last) { /* a flooder ran since the last receive */
            f->run[f->n_runs++] = n;
            n = 0;
            last = now;
        }
        n++;
    }
    atomic_store(&f->stop, true);
    TT_CHECK_RC(tel_send(f->main, 2, NULL, 0), 0, "tel_send to main");
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void flood_main(void *arg)
{
    (void)arg;
    static struct flood f;
    memset(&f, 0, sizeof(f));
    f.main = tel_self();
    for (int i = 0; i < FLOODERS; i++)
        spawn_with(flooder_fn, &f, TEL_PRIO_NORMAL, 0);
    spawn_with(flood_recv_fn, &f, TEL_PRIO_NORMAL, 0);
    /* Parked, not yielding: the ring holds the flooders alone. */
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 30000);
    if (!TT_CHECK_RC(rc, 0, "tel_recv (the flood's end)"))
        return;
    tel_msg_free(m);
    TT_CHECK(tt_await_count(1, 30000), "the flood did not end");
    if (!TT_CHECK(f.n_runs == FLOOD_RUNS, "%d runs seen", f.n_runs))
        return;
    /* The first run starts in the slice the receiver woke in (its sleep):
     * not counted. A drainer never made to leave shows as a first run that
     * takes the whole backlog, and short runs after it. */
    uint64_t sorted[FLOOD_RUNS - 1], longest = 0;
    for (int i = 1; i < FLOOD_RUNS; i++) {
        sorted[i - 1] = f.run[i];
        if (f.run[i] > longest)
            longest = f.run[i];
    }
    qsort(sorted, FLOOD_RUNS - 1, sizeof(sorted[0]), cmp_u64);
    uint64_t median = sorted[(FLOOD_RUNS - 1) / 2];
    cr_log_info("drainer runs: median %" PRIu64 " receives, longest %" PRIu64
                " (slice %u)", median, longest, FLOOD_SLICE);
    TT_CHECK(median >= 4 * FLOOD_SLICE,
             "median run %" PRIu64 " receives: the drainer lost its turn "
             "after each slice (want about %u)", median, 8 * FLOOD_SLICE);
    TT_CHECK(longest <= 9 * FLOOD_SLICE,
             "a run of %" PRIu64 " receives: the flooders waited past the "
             "wake lane's bound (%u)", longest, 8 * FLOOD_SLICE);
}

Test(prio, a_process_draining_a_flood_keeps_its_turn_but_not_forever,
     .timeout = 120)
{
    tel_config_t c = one_sched;
    c.reductions = FLOOD_SLICE;
    TT_RUN(&c, flood_main, NULL);
}

/*
 * The drainer leaves at the end of its slice for a task another thread
 * woke (the injection queue): with no other work here, the pick takes
 * that task at once. A foreign thread floods the drainer; in the middle
 * of a slice the drainer has that thread send a parked waiter a message
 * (it spins, calling nothing, until the send is done): the waiter must
 * run within about a slice of the drainer's receives after it, where
 * going on the drainer kept it waiting 8 slices.
 */
#define FW_BACKLOG 20000u
#define FW_PING_AT (2 * FLOOD_SLICE + FLOOD_SLICE / 2)

struct foreign_wake {
    _Atomic tel_pid_t drainer, waiter;
    atomic_int flooded;
    atomic_uint_fast64_t drained; /* the drainer's receives so far */
    atomic_int poke;              /* the drainer asks for the message */
    atomic_int pinged;            /* it was sent */
    uint64_t woke_at;
    tel_pid_t main;
};

static struct foreign_wake fw;

static void *fw_thread(void *arg)
{
    (void)arg;
    int64_t until = tt_now_ms() + 20000;
    tel_pid_t d, w;
    while ((!(d = atomic_load(&fw.drainer)) ||
            !(w = atomic_load(&fw.waiter))) &&
           tt_now_ms() < until)
        usleep(100);
    for (uint32_t i = 0; i < FW_BACKLOG; i++)
        if (!TT_CHECK_RC(tel_send(d, 1, NULL, 0), 0, "flood: tel_send"))
            break;
    atomic_store(&fw.flooded, 1);
    while (!atomic_load(&fw.poke) && tt_now_ms() < until)
        ;
    TT_CHECK_RC(tel_send(w, 2, NULL, 0), 0, "ping: tel_send");
    atomic_store(&fw.pinged, 1);
    return NULL;
}

static void fw_drainer(void *arg)
{
    (void)arg;
    atomic_store(&fw.drainer, tel_self());
    while (!atomic_load(&fw.flooded))
        (void)tel_sleep(1);
    for (uint32_t i = 0; i < FW_BACKLOG; i++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 5000), 0, "drainer: tel_recv"))
            break;
        tel_msg_free(m);
        if (atomic_fetch_add(&fw.drained, 1) + 1 == FW_PING_AT) {
            atomic_store(&fw.poke, 1);
            int64_t until = tt_now_ms() + 5000;
            while (!atomic_load(&fw.pinged) && tt_now_ms() < until)
                ; /* no Telar call: the slice goes on */
            TT_CHECK(atomic_load(&fw.pinged), "the message was not sent");
        }
    }
    TT_CHECK_RC(tel_send(fw.main, 1, NULL, 0), 0, "drainer: done");
}

static void fw_waiter(void *arg)
{
    (void)arg;
    atomic_store(&fw.waiter, tel_self());
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 20000);
    fw.woke_at = atomic_load(&fw.drained);
    if (TT_CHECK_RC(rc, 0, "waiter: tel_recv"))
        tel_msg_free(m);
    TT_CHECK_RC(tel_send(fw.main, 1, NULL, 0), 0, "waiter: done");
}

static void foreign_wake_main(void *arg)
{
    (void)arg;
    fw.main = tel_self();
    spawn_with(fw_waiter, NULL, TEL_PRIO_NORMAL, 0);
    spawn_with(fw_drainer, NULL, TEL_PRIO_NORMAL, 0);
    for (int i = 0; i < 2; i++) {
        tel_msg_t *m = NULL;
        if (TT_CHECK_RC(tel_recv(&m, 30000), 0, "main: tel_recv"))
            tel_msg_free(m);
    }
    if (!TT_CHECK(fw.woke_at >= FW_PING_AT,
                  "the waiter woke at receive %" PRIu64
                  ", before its message (at %u)", fw.woke_at, FW_PING_AT))
        return;
    uint64_t waited = fw.woke_at - FW_PING_AT;
    cr_log_info("the waiter woke %" PRIu64 " receives of the drainer after "
                "the message (slice %u)", waited, FLOOD_SLICE);
    TT_CHECK(waited <= 2 * FLOOD_SLICE,
             "the waiter woke %" PRIu64 " receives after another thread's "
             "message: the drainer went on past it (want at most %u)",
             waited, 2 * FLOOD_SLICE);
}

Test(prio, a_process_draining_a_flood_leaves_for_a_task_another_thread_woke,
     .timeout = 120)
{
    /* The other thread starts here, not in a process: a thread started on
     * the pinned scheduler thread would share its CPU. */
    memset(&fw, 0, sizeof(fw));
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fw_thread, NULL), 0);
    tel_config_t c = one_sched;
    c.reductions = FLOOD_SLICE;
    TT_RUN(&c, foreign_wake_main, NULL);
    pthread_join(th, NULL);
}

/*
 * A process another thread wakes waits for the slice that runs, not for
 * the every-61st turn: the pick moves the injection queue's tasks into the
 * wake lane. 100 hogs keep the ring busy (a slice is 40 of their loops).
 * One of them, the poker, now and then asks a thread outside the runtime
 * to wake a parked process, and spins (calling nothing, so its slice goes
 * on) until the send is done; then it notes the hogs' loops, and the woken
 * process notes them when it runs. So the measure starts at the send
 * whatever the thread's own delays. Behind the turn the waiter waited up
 * to 61 slices (2,440 loops).
 */
#define IW_HOGS 100
#define IW_SENDS 20
#define IW_SLICE_LOOPS (TEL_DEFAULT_REDUCTIONS / 100)

struct inject_wake {
    _Atomic tel_pid_t waiter;
    atomic_uint_fast64_t at_send;
    atomic_uint n_woken;
    atomic_int poke, pinged, parked;
    uint64_t waited[IW_SENDS]; /* hog loops from each send to its wake */
};

static struct inject_wake iw;

static void *iw_thread(void *arg)
{
    (void)arg;
    int64_t until = tt_now_ms() + 60000;
    for (unsigned i = 0; i < IW_SENDS && tt_now_ms() < until; i++) {
        while (!atomic_load(&iw.poke) && tt_now_ms() < until)
            usleep(50);
        atomic_store(&iw.poke, 0);
        if (!TT_CHECK_RC(tel_send(atomic_load(&iw.waiter), 1, NULL, 0), 0,
                         "thread: tel_send"))
            break;
        atomic_store(&iw.pinged, 1);
    }
    return NULL;
}

static void iw_poker(void *arg)
{
    (void)arg;
    int64_t next = tt_now_ms() + 2;
    unsigned sent = 0;
    while (!atomic_load_explicit(&stop_hogs, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&hog_loops, 1, memory_order_relaxed);
        /* Between sends, the waiter has run and parked again, and the
         * ring has turned for a while. */
        if (sent < IW_SENDS && atomic_load(&iw.n_woken) == sent &&
            atomic_load(&iw.parked) == (int)sent + 1 &&
            tt_now_ms() >= next) {
            atomic_store(&iw.poke, 1);
            int64_t until = tt_now_ms() + 10000;
            while (!atomic_load(&iw.pinged) && tt_now_ms() < until)
                ; /* no Telar call: the slice goes on */
            if (!TT_CHECK(atomic_load(&iw.pinged), "the thread did not send"))
                return;
            atomic_store(&iw.pinged, 0);
            atomic_store(&iw.at_send, atomic_load(&hog_loops));
            sent++;
            next = tt_now_ms() + 1;
        }
        (void)tel_reduce(100);
    }
}

static void iw_waiter(void *arg)
{
    tel_pid_t main_pid = *(const tel_pid_t *)arg;
    atomic_store(&iw.waiter, tel_self());
    for (unsigned i = 0; i < IW_SENDS; i++) {
        tel_msg_t *m = NULL;
        atomic_store(&iw.parked, (int)i + 1); /* about to wait */
        if (!TT_CHECK_RC(tel_recv(&m, 60000), 0, "waiter: tel_recv"))
            break;
        iw.waited[i] = atomic_load(&hog_loops) - atomic_load(&iw.at_send);
        tel_msg_free(m);
        atomic_fetch_add(&iw.n_woken, 1);
    }
    TT_CHECK_RC(tel_send(main_pid, 1, NULL, 0), 0, "waiter: done");
}

static void inject_wake_main(void *arg)
{
    (void)arg;
    static tel_pid_t main_pid;
    main_pid = tel_self();
    spawn_with(iw_waiter, &main_pid, TEL_PRIO_NORMAL, 0);
    for (int i = 0; i < IW_HOGS - 1; i++)
        spawn_with(hog_fn, NULL, TEL_PRIO_NORMAL, 0);
    spawn_with(iw_poker, NULL, TEL_PRIO_NORMAL, 0);
    tel_msg_t *m = NULL;
    if (TT_CHECK_RC(tel_recv(&m, 60000), 0, "main: tel_recv"))
        tel_msg_free(m);
    atomic_store(&stop_hogs, true);
    TT_CHECK(tt_await_count(1, 10000), "hogs did not stop");
    unsigned n = atomic_load(&iw.n_woken);
    if (!TT_CHECK(n == IW_SENDS, "woken %u times of %d", n, IW_SENDS))
        return;
    uint64_t worst = 0;
    for (unsigned i = 0; i < n; i++)
        worst = iw.waited[i] > worst ? iw.waited[i] : worst;
    cr_log_info("woken by another thread: at most %" PRIu64
                " hog loops after the send (a slice is %u)",
                worst, IW_SLICE_LOOPS);
    /* The poker's slice goes on after the send, then the pick. */
    TT_CHECK(worst <= 2 * IW_SLICE_LOOPS,
             "a wake-up from another thread waited %" PRIu64
             " hog loops (%.1f slices), want at most 2 slices", worst,
             (double)worst / IW_SLICE_LOOPS);
}

Test(prio, a_process_another_thread_wakes_runs_after_the_slice_that_runs,
     .timeout = 120)
{
    /* The thread starts here, not in a process: a thread started on the
     * pinned scheduler thread would share its CPU. */
    memset(&iw, 0, sizeof(iw));
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, iw_thread, NULL), 0);
    TT_RUN(&one_sched, inject_wake_main, NULL);
    pthread_join(th, NULL);
}

/* ------------------------------------------------------------------------ */
/* tel_set_priority while running                                            */
/* ------------------------------------------------------------------------ */

static atomic_bool changer_done;

static void changer_fn(void *arg)
{
    (void)arg;
    /* Normal: the hogs share the scheduler with us. */
    uint64_t before = atomic_load(&hog_loops);
    spend_slices(5);
    TT_CHECK(atomic_load(&hog_loops) > before,
             "hogs did not run beside a normal process");

    int old = tel_set_priority(TEL_PRIO_HIGH);
    TT_CHECK(old == TEL_PRIO_NORMAL, "old priority %d, want normal", old);
    (void)tel_yield(); /* requeued as high: back at once */
    before = atomic_load(&hog_loops);
    spend_slices(20);
    TT_CHECK(atomic_load(&hog_loops) == before,
             "hogs ran %" PRIu64 " loops after the raise to high",
             (uint64_t)(atomic_load(&hog_loops) - before));

    old = tel_set_priority(TEL_PRIO_NORMAL);
    TT_CHECK(old == TEL_PRIO_HIGH, "old priority %d, want high", old);
    before = atomic_load(&hog_loops);
    spend_slices(5);
    TT_CHECK(atomic_load(&hog_loops) > before,
             "hogs did not run after going back to normal");

    old = tel_set_priority(TEL_PRIO_LOW);
    TT_CHECK(old == TEL_PRIO_NORMAL, "old priority %d, want normal", old);
    uint64_t mine = 0;
    before = atomic_load(&hog_loops);
    for (int i = 0; i < 20; i++, mine++)
        (void)tel_yield();
    /* Each of those yields let about 8 hog slices run (40 loops each). */
    TT_CHECK(atomic_load(&hog_loops) - before >= 20 * 8 * 30,
             "low: only %" PRIu64 " hog loops ran in 20 yields",
             (uint64_t)(atomic_load(&hog_loops) - before));
    TT_CHECK(tel_set_priority(4) == TEL_EINVAL, "priority 4 accepted");
    TT_CHECK(tel_set_priority(-1) == TEL_EINVAL, "priority -1 accepted");
    TT_CHECK(tel_set_priority(TEL_PRIO_NORMAL) == TEL_PRIO_LOW,
             "an invalid priority changed it");
    atomic_store(&changer_done, true);
}

static void change_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++)
        spawn_with(hog_fn, NULL, TEL_PRIO_NORMAL, 0);
    spawn_with(changer_fn, NULL, TEL_PRIO_NORMAL, 0);
    bool ok;
    TT_AWAIT(ok, atomic_load(&changer_done), 20000);
    TT_CHECK(ok, "the changer did not finish");
    atomic_store(&stop_hogs, true);
    TT_CHECK(tt_await_count(1, 5000), "hogs did not stop");
}

Test(prio, a_priority_changed_while_running_takes_effect, .timeout = 60)
{
    TT_RUN(&one_sched, change_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* CPU-heavy processes (tel_set_cpu_heavy, tel_spawn_opts_t.cpu_heavy)       */
/* ------------------------------------------------------------------------ */

enum { MARK_HEAVY = 5 };

static void heavy_order_main(void *arg)
{
    (void)arg;
    tel_spawn_opts_t heavy = {.cpu_heavy = true};
    tel_spawn_opts_t heavy_high = {.cpu_heavy = true,
                                   .priority = TEL_PRIO_HIGH};
    tel_pid_t pid;
    for (int i = 0; i < 3; i++)
        spawn_with(log_fn, (void *)(intptr_t)MARK_NORMAL, TEL_PRIO_NORMAL, 0);
    /* Spawned last, a normal child would run first (the spawner's next
     * slot): a heavy one waits for every ready normal process. */
    TT_CHECK_RC(tel_spawn_opt(&pid, log_fn, (void *)(intptr_t)MARK_HIGH,
                              &heavy_high), 0, "tel_spawn_opt");
    TT_CHECK_RC(tel_spawn_opt(&pid, log_fn, (void *)(intptr_t)MARK_HEAVY,
                              &heavy), 0, "tel_spawn_opt");
    if (!TT_CHECK(tt_await_count(1, 5000), "children did not finish"))
        return;
    TT_CHECK(atomic_load(&n_logged) == 5, "logged %u", atomic_load(&n_logged));
    TT_CHECK(order_log[0] == MARK_HIGH,
             "a heavy high process ran after others (%d first)", order_log[0]);
    for (int i = 1; i < 4; i++)
        TT_CHECK(order_log[i] == MARK_NORMAL, "#%d ran %d, want normal", i,
                 order_log[i]);
    TT_CHECK(order_log[4] == MARK_HEAVY, "the heavy one ran #%d",
             order_log[4] == MARK_HEAVY ? 4 : -1);
}

Test(prio, a_cpu_heavy_process_runs_after_ready_normal_ones_unless_high,
     .timeout = 30)
{
    TT_RUN(&one_sched, heavy_order_main, NULL);
}

static atomic_bool heavy_done;

static void heavy_changer_fn(void *arg)
{
    (void)arg;
    TT_CHECK(tel_set_cpu_heavy(true) == 0, "was marked heavy already");
    TT_CHECK(tel_set_cpu_heavy(true) == 1, "the mark did not stick");
    /* Its priority stays what it was. */
    TT_CHECK(tel_set_priority(TEL_PRIO_NORMAL) == TEL_PRIO_NORMAL,
             "a heavy process reports another priority");
    /* In the background lane: each yield lets about 8 hog slices run. */
    uint64_t before = atomic_load(&hog_loops);
    for (int i = 0; i < 20; i++)
        (void)tel_yield();
    TT_CHECK(atomic_load(&hog_loops) - before >= 20 * 8 * 30,
             "heavy: only %" PRIu64 " hog loops ran in 20 yields",
             (uint64_t)(atomic_load(&hog_loops) - before));
    /* Raised to high while heavy: high wins, the hogs wait. */
    TT_CHECK(tel_set_priority(TEL_PRIO_HIGH) == TEL_PRIO_NORMAL, "old prio");
    (void)tel_yield();
    before = atomic_load(&hog_loops);
    spend_slices(10);
    TT_CHECK(atomic_load(&hog_loops) == before,
             "hogs ran beside a heavy high process");
    TT_CHECK(tel_set_priority(TEL_PRIO_NORMAL) == TEL_PRIO_HIGH, "old prio");
    /* Unmarked: a normal process again, one slice in five. */
    TT_CHECK(tel_set_cpu_heavy(false) == 1, "was not marked");
    before = atomic_load(&hog_loops);
    uint64_t hogs_before = before;
    for (int i = 0; i < 20; i++)
        (void)tel_yield();
    TT_CHECK(atomic_load(&hog_loops) - hogs_before < 20 * 8 * 30,
             "unmarked: %" PRIu64 " hog loops ran in 20 yields",
             (uint64_t)(atomic_load(&hog_loops) - hogs_before));
    atomic_store(&heavy_done, true);
}

static void heavy_change_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++)
        spawn_with(hog_fn, NULL, TEL_PRIO_NORMAL, 0);
    spawn_with(heavy_changer_fn, NULL, TEL_PRIO_NORMAL, 0);
    bool ok;
    TT_AWAIT(ok, atomic_load(&heavy_done), 20000);
    TT_CHECK(ok, "the changer did not finish");
    atomic_store(&stop_hogs, true);
    TT_CHECK(tt_await_count(1, 5000), "hogs did not stop");
}

Test(prio, cpu_heavy_marks_and_unmarks_and_keeps_the_priority, .timeout = 60)
{
    cr_assert_eq(tel_set_cpu_heavy(true), TEL_ENOTPROC);
    TT_RUN(&one_sched, heavy_change_main, NULL);
}

static void nothing_fn(void *arg)
{
    (void)arg;
}

Test(prio, set_priority_outside_a_process_is_enotproc, .timeout = 30)
{
    cr_assert_eq(tel_set_priority(TEL_PRIO_HIGH), TEL_ENOTPROC);
    TT_RUN(&one_sched, nothing_fn, NULL);
}

Test(prio, spawn_rejects_a_priority_out_of_range, .timeout = 30)
{
    tel_spawn_opts_t o = {.priority = (tel_priority_t)4};
    cr_assert_eq(tel_spawn_opt(NULL, nothing_fn, NULL, &o), TEL_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* An idle scheduler takes high work from a busy one                         */
/* ------------------------------------------------------------------------ */

static atomic_bool high_ran;

static void set_high_ran(void *arg)
{
    (void)arg;
    atomic_store(&high_ran, true);
}

static void steal_main(void *arg)
{
    (void)arg;
    spawn_with(set_high_ran, NULL, TEL_PRIO_HIGH, 0);
    /* Keep this scheduler busy with no preemption point: only the other
     * scheduler can run the high process. */
    int64_t until = tt_now_ms() + 10000;
    while (!atomic_load(&high_ran) && tt_now_ms() < until)
        ;
    TT_CHECK(atomic_load(&high_ran),
             "an idle scheduler did not take the busy one's high task");
}

Test(prio, an_idle_scheduler_takes_high_work_from_a_busy_one, .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, steal_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Stack sizes                                                               */
/* ------------------------------------------------------------------------ */


static void observe_down(void)
{
    tel__proc_exit_observer = NULL;
}

/* Uses about levels * 4 KiB of stack, every byte of it touched, and
 * switches out at the deepest point (where the scheduler checks it). */
static __attribute__((noinline)) unsigned deep(unsigned levels)
{
    volatile char frame[4096];
    memset((char *)frame, (int)levels, sizeof frame);
    unsigned sum = 0;
    if (levels > 1)
        sum = deep(levels - 1);
    else
        (void)tel_yield();
    return sum + frame[levels % sizeof frame] + frame[0];
}

static atomic_uint deep_sum;

static void deep_fn(void *arg)
{
    unsigned levels = (unsigned)(uintptr_t)arg;
    atomic_store(&deep_sum, deep(levels));
}

static void big_stack_main(void *arg)
{
    (void)arg;
    tel_pid_t p = spawn_with(deep_fn, (void *)(uintptr_t)128, TEL_PRIO_NORMAL,
                             1 * MIB); /* 128 frames of 4 KiB: 512 KiB */
    if (!TT_CHECK(tt_await_dead(p, 10000), "the deep process did not end"))
        return;
    TT_CHECK(tt_reason_of(p) == TEL_NORMAL,
             "a 1 MiB stack ended with %d using 512 KiB", (int)tt_reason_of(p));
    TT_CHECK(atomic_load(&deep_sum) != 0, "it did not finish its recursion");
    /* Hibernation starts over on a stack of the same size. */
}

Test(prio, a_1_mib_stack_process_uses_512_kib_of_locals_on_a_64_kib_run,
     .init = tt_observe_up, .fini = observe_down, .timeout = 30)
{
    TT_RUN(&one_sched, big_stack_main, NULL);
}

static atomic_uint deepest;

static __attribute__((noinline)) unsigned recurse(unsigned depth,
                                                  volatile char *up)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    frame[255] = up ? up[0] : 0;
    if (depth > atomic_load_explicit(&deepest, memory_order_relaxed))
        atomic_store_explicit(&deepest, depth, memory_order_relaxed);
    if (depth > 100000000u) /* never: keeps the recursion finite to the eye */
        return 0;
    return recurse(depth + 1, frame) + (unsigned)frame[128];
}

static void overflow_fn(void *arg)
{
    (void)arg;
    (void)recurse(0, NULL);
    TT_FAIL("the recursion returned");
}

static void small_stack_main(void *arg)
{
    (void)arg;
    tel_pid_t p = spawn_with(overflow_fn, NULL, TEL_PRIO_NORMAL, 16 * KIB);
    if (!TT_CHECK(tt_await_dead(p, 10000), "the recursion did not end"))
        return;
    TT_CHECK(tt_reason_of(p) == TEL_STACK_OVERFLOW,
             "a 16 KiB stack that recursed ended with %d, want "
             "TEL_STACK_OVERFLOW",
             (int)tt_reason_of(p));
    /* Each level takes at least 256 bytes: a 64 KiB stack (the run's)
     * would have gone past 250 levels. */
    unsigned d = atomic_load(&deepest);
    TT_CHECK(d > 8 && d < 16 * KIB / 256,
             "it reached depth %u on a 16 KiB stack", d);
    /* The runtime goes on: a default-size process still works. */
    atomic_store(&deep_sum, 0);
    tel_pid_t q = spawn_with(deep_fn, (void *)(uintptr_t)8, TEL_PRIO_NORMAL, 0);
    TT_CHECK(tt_await_dead(q, 10000) && tt_reason_of(q) == TEL_NORMAL,
             "a process after the overflow failed");
}

Test(prio, a_16_kib_stack_process_that_recurses_ends_with_stack_overflow,
     .init = tt_observe_up, .fini = observe_down, .timeout = 30)
{
    TT_RUN(&one_sched, small_stack_main, NULL);
}

/* Touches 2 KiB of its stack and switches out: fits the smallest size with
 * the scheduler's reserve (4 KiB, 8 KiB under sanitizers) to spare. */
static void touch_fn(void *arg)
{
    (void)arg;
    volatile char buf[2 * 1024];
    memset((char *)buf, 1, sizeof buf);
    (void)tel_yield();
    TT_CHECK(buf[100] == 1, "its stack changed under it");
}

static void einval_main(void *arg)
{
    (void)arg;
    const size_t bad[] = {1, TEL_MIN_STACK_SIZE - 1, 256 * MIB + 1,
                          SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tel_spawn_opts_t o = {.stack_size = bad[i]};
        tel_pid_t pid = 0;
        int rc = tel_spawn_opt(&pid, nothing_fn, NULL, &o);
        TT_CHECK(rc == TEL_EINVAL, "stack_size %zu: %d, want TEL_EINVAL",
                 bad[i], rc);
        TT_CHECK(pid == 0, "stack_size %zu made a process", bad[i]);
    }
    /* The ends of the range work. */
    const size_t good[] = {TEL_MIN_STACK_SIZE, 256 * MIB, 20 * KIB};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        tel_pid_t p = spawn_with(touch_fn, NULL, TEL_PRIO_NORMAL, good[i]);
        TT_CHECK(tt_await_dead(p, 10000) && tt_reason_of(p) == TEL_NORMAL,
                 "stack_size %zu: ended with %d", good[i], (int)tt_reason_of(p));
    }
    TT_CHECK(tel_process_count() == 1, "%u processes left",
             tel_process_count());
}

Test(prio, out_of_range_stack_sizes_give_einval, .init = tt_observe_up,
     .fini = observe_down, .timeout = 30)
{
    TT_RUN(&one_sched, einval_main, NULL);
}

static void cycles_main(void *arg)
{
    (void)arg;
    /* Classes 16 KiB, 32 KiB, the run's 64 KiB, 128 KiB (rounded up from
     * 100 KiB), 1 MiB and 2 MiB. */
    const size_t sizes[] = {0, 16 * KIB, 32 * KIB, 64 * KIB, 100 * KIB,
                            1 * MIB, 2 * MIB};
    const size_t n_sizes = sizeof sizes / sizeof sizes[0];
    size_t rounds = tel_test_scaled(60, 30);
    for (size_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < 5 * n_sizes; i++)
            spawn_with(touch_fn, NULL, TEL_PRIO_NORMAL, sizes[i % n_sizes]);
        if (!TT_CHECK(tt_await_count(1, 10000), "round %zu did not end", r))
            return;
    }
    struct tel__stack_stats st;
    tel__stack_stats(&st);
    /* 64 KiB is the run's size: its class shares the run's pool. */
    TT_CHECK(st.n_classes == 5, "%u classes with pools of their own, want 5",
             st.n_classes);
    /* Every class's stacks are reused: one reservation each (the 2 MiB
     * class fits 63 stacks in one, the 1 MiB class 127; the rounds ran at
     * least 30 x 5 of each size, so without reuse those two would take 3
     * and 2). */
    TT_CHECK(st.n_resvs <= 6, "%zu reservations after %zu rounds",
             st.n_resvs, rounds);
}

Test(prio, mixed_size_spawn_exit_cycles_reuse_every_stack_and_leak_nothing,
     .timeout = 60)
{
    TT_RUN(&one_sched, cycles_main, NULL);
}

static void left_alive_main(void *arg)
{
    (void)arg;
    /* Still waiting when the run ends: teardown frees their stacks. */
    spawn_with(tt_wait_one_fn, NULL, TEL_PRIO_NORMAL, 16 * KIB);
    spawn_with(tt_wait_one_fn, NULL, TEL_PRIO_HIGH, 2 * MIB);
    spawn_with(tt_wait_one_fn, NULL, TEL_PRIO_LOW, 0);
    (void)tel_sleep(20);
}

Test(prio, processes_with_their_own_stack_size_alive_at_teardown_are_freed,
     .timeout = 30)
{
    TT_RUN(&one_sched, left_alive_main, NULL);
}
