/*
 * tests/sched/sysmon_test.c: the watchdog (sched/sysmon.c) through the
 * public calls: tel_sched_stats (longest run and who made it, counters),
 * tel_system_monitor (long_schedule reports), the blocking pool next to
 * it; and, white-box, that the watchdog sleeps while the runtime is idle.
 *
 * Long runs are made by processes that loop in plain C (a volatile counter
 * and the clock, no Telar call) for a fixed time. Lengths are checked
 * against generous lower bounds only (the watchdog sees a run short by
 * less than its period); no test asserts on speed.
 */
#include "common.h"

#include "sched/scheduler.h"
#include "sched/sysmon.h"

static const tel_config_t two = {.schedulers = 2};

/* Busy in plain C for ms milliseconds: no reduction, no switch. */
static void spin_c(int64_t ms)
{
    volatile uint64_t n = 0;
    int64_t until = tt_now_ns() + ms * 1000000;
    while (tt_now_ns() < until)
        for (int i = 0; i < 1000; i++)
            n++;
}

/* A process that spins arg ms in C, then tells its parent (tag 1). */
struct spin_arg {
    tel_pid_t parent;
    int64_t ms;
};

static void spinner_fn(void *arg)
{
    struct spin_arg *a = arg;
    /* A run the signal may not cut short (as a long libc call): these
     * tests are about what the watchdog sees of long runs. */
    TT_CHECK_RC(tel_preempt_disable(), 0, "tel_preempt_disable");
    spin_c(a->ms);
    TT_CHECK_RC(tel_preempt_enable(), 0, "tel_preempt_enable");
    if (a->parent)
        (void)tt_send_tag(a->parent, 1);
}

/* Inside a process: wait for a message with tag `tag` (others are freed)
 * for up to ms; returns it or NULL. */
static tel_msg_t *recv_tag(uint64_t tag, int64_t ms)
{
    int64_t until = tt_now_ms() + ms;
    for (;;) {
        int64_t left = until - tt_now_ms();
        if (left < 0)
            return NULL;
        tel_msg_t *m = NULL;
        if (tel_recv(&m, left) != 0)
            return NULL;
        if (m->tag == tag)
            return m;
        tel_msg_free(m);
    }
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

static void errors_fn(void *arg)
{
    (void)arg;
    tel_sched_stats_t st;
    TT_CHECK_RC(tel_sched_stats(0, NULL), TEL_EINVAL, "stats(NULL)");
    TT_CHECK_RC(tel_sched_stats(tel_scheduler_count(), &st), TEL_EINVAL,
                "stats(n)");
    TT_CHECK_RC(tel_sched_stats(UINT32_MAX, &st), TEL_EINVAL, "stats(max)");
    TT_CHECK_RC(tel_sched_stats(0, &st), 0, "stats(0)");
    TT_CHECK(st.sample_period_ns == 500000, "period %" PRIu64,
             st.sample_period_ns);
    TT_CHECK_RC(tel_system_monitor(tel_self(), 0), TEL_EINVAL,
                "system_monitor(self, 0)");
    TT_CHECK_RC(tel_system_monitor(tel_self(), 1000), 0, "system_monitor");
    TT_CHECK_RC(tel_system_monitor(0, 0), 0, "system_monitor(off)");
}

Test(sysmon, errors)
{
    tel_sched_stats_t st;
    cr_assert_eq(tel_sched_stats(0, &st), TEL_ESHUTDOWN);
    cr_assert_eq(tel_system_monitor(0, 0), TEL_ESHUTDOWN);
    TT_RUN(&two, errors_fn, NULL);
    /* After the run, as before it. */
    cr_assert_eq(tel_sched_stats(0, &st), TEL_ESHUTDOWN);
}

static void no_watchdog_fn(void *arg)
{
    (void)arg;
    tel_sched_stats_t st;
    TT_CHECK_RC(tel_system_monitor(tel_self(), 1000), TEL_EINVAL,
                "system_monitor without a watchdog");
    TT_CHECK_RC(tel_sched_stats(0, &st), 0, "stats");
    TT_CHECK(st.sample_period_ns == 0 && st.longest_run_ns == 0,
             "period %" PRIu64 " longest %" PRIu64, st.sample_period_ns,
             st.longest_run_ns);
}

Test(sysmon, no_watchdog)
{
    tel_config_t c = {.schedulers = 1, .flags = TEL_CFG_NO_WATCHDOG};
    TT_RUN(&c, no_watchdog_fn, NULL);
}

/* ------------------------------------------------------------------------ */
/* The longest run, and who made it                                          */
/* ------------------------------------------------------------------------ */

/* Whether some scheduler's longest run is pid's and at least min_ns, or
 * (a slow build, a loaded machine) a named run of another process at
 * least shadow_ns long hides it: the record keeps the longest only. */
static bool longest_is(tel_pid_t pid, uint64_t min_ns, uint64_t shadow_ns)
{
    for (unsigned i = 0; i < tel_scheduler_count(); i++) {
        tel_sched_stats_t st;
        if (tel_sched_stats(i, &st) != 0)
            continue;
        if (st.longest_run_pid == pid && st.longest_run_ns >= min_ns)
            return true;
        if (st.longest_run_pid != 0 && st.longest_run_pid != pid &&
            st.longest_run_ns >= shadow_ns)
            return true;
    }
    return false;
}

static void longest_fn(void *arg)
{
    (void)arg;
    /* 50 ms: longer than any other run here, even on a loaded machine
     * (the watchdog counts wall time: a thread the OS took away counts). */
    struct spin_arg a = {.parent = tel_self(), .ms = 50};
    tel_pid_t pid;
    if (!TT_CHECK_RC(tel_spawn(&pid, spinner_fn, &a), 0, "spawn"))
        return;
    tel_msg_t *m = recv_tag(1, 10000);
    TT_CHECK(m != NULL, "the spinner never finished");
    tel_msg_free(m);
    /* The watchdog names the run at its next sample after the run ended. */
    bool ok;
    TT_AWAIT(ok, longest_is(pid, 25000000, 50000000), 5000);
    TT_CHECK(ok, "no scheduler's longest run (>= 25 ms) names the spinner");
    uint64_t switches = 0, parks = 0;
    for (unsigned i = 0; i < tel_scheduler_count(); i++) {
        tel_sched_stats_t st;
        TT_CHECK_RC(tel_sched_stats(i, &st), 0, "stats");
        switches += st.switches;
        parks += st.parks;
        TT_CHECK(st.longest_run_ns < 10ull * 1000000000ull,
                 "longest %" PRIu64, st.longest_run_ns);
    }
    TT_CHECK(switches >= 2, "switches %" PRIu64, switches);
}

Test(sysmon, longest_run_names_the_process)
{
    TT_RUN(&two, longest_fn, NULL);
}

/* ------------------------------------------------------------------------ */
/* long_schedule                                                             */
/* ------------------------------------------------------------------------ */

static void long_schedule_fn(void *arg)
{
    (void)arg;
    TT_CHECK_RC(tel_system_monitor(tel_self(), 5000), 0, "system_monitor");
    struct spin_arg a = {.parent = 0, .ms = 20};
    tel_pid_t pid;
    /* Reports about other runs may come too (main's, if a loaded machine
     * took its thread away for 5 ms): look for the spinner's. A machine
     * loaded enough to keep the watchdog's own thread off the CPU for most
     * of the 20 ms may miss a run: up to three spinners, one at a time. */
    tel_long_schedule_info_t info = {0};
    int reports = 0, tries = 0;
    if (!TT_CHECK_RC(tel_spawn(&pid, spinner_fn, &a), 0, "spawn"))
        return;
    for (;;) {
        tel_msg_t *m = recv_tag(TEL_TAG_LONG_SCHEDULE, reports ? 100 : 2000);
        if (!m && !reports && ++tries < 3) {
            if (!TT_CHECK_RC(tel_spawn(&pid, spinner_fn, &a), 0, "spawn"))
                return;
            continue;
        }
        if (!m)
            break;
        TT_CHECK(m->from == 0 && m->size == sizeof(info),
                 "from %" PRIu64 " size %zu", m->from, m->size);
        tel_long_schedule_info_t i;
        memcpy(&i, m->data, sizeof(i));
        tel_msg_free(m);
        if (i.pid == pid) {
            info = i;
            reports++;
        }
    }
    /* Once per run: one report for it. */
    TT_CHECK(reports == 1, "%d reports name the spinner", reports);
    TT_CHECK(info.run_us >= 5000 && info.run_us < 10000000,
             "run_us %" PRIu64, info.run_us);
    TT_CHECK(info.scheduler < 2, "scheduler %u", info.scheduler);
}

Test(sysmon, long_schedule_names_a_busy_process)
{
    TT_RUN(&two, long_schedule_fn, NULL);
}

/* A process that works 300 ms in pieces of about 50 us, yielding between
 * them: alone on its scheduler it goes on after each yield, but every
 * piece is a run of its own, so it is never a long one. (The watchdog
 * counts wall time: the threshold, 150 ms, leaves room for a loaded
 * machine taking the thread away for a while.) */
/* The longest the yielder saw between two looks at the clock: time the
 * OS took its thread away (a loaded machine), which the watchdog, counting
 * wall time, rightly sees as one long run. */
static _Atomic int64_t yielder_max_gap_ns;

static void yielder_fn(void *arg)
{
    tel_pid_t parent = (tel_pid_t)(uintptr_t)arg;
    int64_t last = tt_now_ns(), gap = 0;
    int64_t until = last + 300 * 1000000;
    for (;;) {
        int64_t now = tt_now_ns();
        if (now - last > gap)
            gap = now - last;
        last = now;
        if (now >= until)
            break;
        int64_t piece = now + 50000;
        while ((now = tt_now_ns()) < piece) {
            if (now - last > gap)
                gap = now - last;
            last = now;
        }
        (void)tel_yield();
    }
    atomic_store(&yielder_max_gap_ns, gap);
    (void)tt_send_tag(parent, 1);
}

static void short_runs_fn(void *arg)
{
    (void)arg;
    TT_CHECK_RC(tel_system_monitor(tel_self(), 150000), 0, "system_monitor");
    tel_pid_t pid;
    if (!TT_CHECK_RC(tel_spawn(&pid, yielder_fn, (void *)(uintptr_t)tel_self()),
                     0, "spawn"))
        return;
    tel_msg_t *m = recv_tag(1, 10000);
    TT_CHECK(m != NULL, "the yielder never finished");
    tel_msg_free(m);
    tel_sleep(5); /* the watchdog's next sample names the last run */
    /* Its runs were short: no scheduler saw one anywhere near 150 ms,
     * unless the OS took the thread away about that long. */
    uint64_t allow = 150000000;
    int64_t gap = atomic_load(&yielder_max_gap_ns);
    if ((uint64_t)gap + 20000000 > allow)
        allow = (uint64_t)gap + 20000000;
    for (unsigned i = 0; i < tel_scheduler_count(); i++) {
        tel_sched_stats_t st;
        TT_CHECK_RC(tel_sched_stats(i, &st), 0, "stats");
        TT_CHECK(st.longest_run_ns < allow || st.longest_run_pid != pid,
                 "scheduler %u saw the yielder run %" PRIu64
                 " ns (its longest gap: %" PRId64 " ns)",
                 i, st.longest_run_ns, gap);
    }
    m = recv_tag(TEL_TAG_LONG_SCHEDULE, 50);
    if (m) {
        tel_long_schedule_info_t info;
        memcpy(&info, m->data, sizeof(info));
        TT_CHECK(info.pid != pid || info.run_us * 1000 < allow,
                 "a report names the yielder (%" PRIu64 " us)", info.run_us);
    }
    tel_msg_free(m);
}

Test(sysmon, yields_end_runs)
{
    TT_RUN(&two, short_runs_fn, NULL);
}

/* The monitor is dead: reports are dropped; a new monitor gets them. */
static void dead_monitor_fn(void *arg)
{
    (void)arg;
    tel_pid_t dead;
    TT_CHECK_RC(tel_spawn(&dead, tt_return_fn, NULL), 0, "spawn");
    TT_CHECK(tt_await_dead(dead, 5000), "the monitor did not end");
    TT_CHECK_RC(tel_system_monitor(dead, 10000), 0, "system_monitor(dead)");
    struct spin_arg a = {.parent = tel_self(), .ms = 30};
    tel_pid_t pid;
    TT_CHECK_RC(tel_spawn(&pid, spinner_fn, &a), 0, "spawn");
    tel_msg_t *m = recv_tag(1, 10000);
    TT_CHECK(m != NULL, "the spinner never finished");
    tel_msg_free(m);
    tel_sleep(5); /* the watchdog sends to the dead pid meanwhile */
    TT_CHECK_RC(tel_system_monitor(tel_self(), 10000), 0, "system_monitor");
    TT_CHECK_RC(tel_spawn(&pid, spinner_fn, &a), 0, "spawn");
    /* Other runs may be reported too (a slow build, a loaded machine). */
    bool named = false;
    while (!named && (m = recv_tag(TEL_TAG_LONG_SCHEDULE, 10000))) {
        tel_long_schedule_info_t info;
        memcpy(&info, m->data, sizeof(info));
        named = info.pid == pid;
        tel_msg_free(m);
    }
    TT_CHECK(named, "no report names the spinner after the monitor changed");
}

Test(sysmon, dead_monitor)
{
    TT_RUN(&two, dead_monitor_fn, NULL);
}

/* ------------------------------------------------------------------------ */
/* The blocking pool next to the watchdog                                    */
/* ------------------------------------------------------------------------ */

static intptr_t sleep_1s(void *arg)
{
    (void)arg;
    tt_os_sleep_ms(1000);
    return 7;
}

static void blocker_fn(void *arg)
{
    tel_pid_t parent = (tel_pid_t)(uintptr_t)arg;
    intptr_t r = 0;
    TT_CHECK_RC(tel_blocking(sleep_1s, NULL, &r), 0, "tel_blocking");
    TT_CHECK(r == 7, "result %d", (int)r);
    (void)tt_send_tag(parent, 2);
}

static void worker_fn(void *arg)
{
    tel_pid_t parent = (tel_pid_t)(uintptr_t)arg;
    for (int i = 0; i < 20; i++)
        (void)tel_yield();
    (void)tt_send_tag(parent, 1);
}

static void blocking_fn(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    TT_CHECK_RC(tel_spawn(NULL, blocker_fn, (void *)(uintptr_t)self), 0,
                "spawn");
    tel_sleep(10); /* the blocker is in its call */
    tel_sched_stats_t st;
    TT_CHECK_RC(tel_sched_stats(0, &st), 0, "stats");
    TT_CHECK(st.blocking_threads >= 1, "blocking_threads %u",
             st.blocking_threads);
    enum { N = 10 };
    for (int i = 0; i < N; i++)
        TT_CHECK_RC(tel_spawn(NULL, worker_fn, (void *)(uintptr_t)self), 0,
                    "spawn");
    /* Every worker is done before the blocker's call returns. */
    for (int i = 0; i < N; i++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 10000), 0, "recv"))
            return;
        TT_CHECK(m->tag == 1, "message %d has tag %" PRIu64, i, m->tag);
        tel_msg_free(m);
    }
    tel_msg_t *m = recv_tag(2, 10000);
    TT_CHECK(m != NULL, "the blocker never finished");
    tel_msg_free(m);
}

Test(sysmon, blocking_call_does_not_stop_others)
{
    tel_config_t c = {.schedulers = 1};
    TT_RUN(&c, blocking_fn, NULL);
}

/* ------------------------------------------------------------------------ */
/* Idle: the watchdog sleeps                                                 */
/* ------------------------------------------------------------------------ */

static void idle_fn(void *arg)
{
    (void)arg;
    tel_sleep(20);
    uint64_t before = tel__sysmon_n_ticks();
    tel_sleep(500); /* every scheduler parks */
    uint64_t ticks = tel__sysmon_n_ticks() - before;
    /* Awake it would sample every 0.5 ms: about 1,000 times. Asleep it
     * samples around the wake-ups only. */
    TT_CHECK(ticks < 100, "the watchdog sampled %" PRIu64
             " times in 500 ms of idle", ticks);
}

Test(sysmon, sleeps_while_idle)
{
    TT_RUN(&two, idle_fn, NULL);
}

/* ------------------------------------------------------------------------ */
/* A scheduler stuck in a plain read(): its work goes on elsewhere           */
/* ------------------------------------------------------------------------ */

/*
 * The blocker runs on scheduler A. Before it blocks A's thread in read()
 * on a pipe (not through tel_blocking), it makes two processes that belong
 * to A: a sleeper, whose timer is on A's wheel, and a waiter, parked on
 * its mailbox with A as its home, which a thread outside the runtime then
 * wakes (a foreign wake-up is queued on the woken process's home). Each
 * ran on A right after it was spawned (the runnext slot, which no other
 * scheduler takes), and checks that it did. While A is blocked, both must
 * run to their end elsewhere; then main writes the pipe.
 */
static int stuck_pipe[2];
static atomic_int blocker_sched = -1;
static atomic_int sleeper_sched = -2, waiter_sched = -3;
static _Atomic tel_pid_t waiter_pid;
static atomic_bool blocked;

static int my_sched(void)
{
    return (int)tel__sched_self()->index;
}

static void sleeper_fn(void *arg)
{
    tel_pid_t parent = (tel_pid_t)(uintptr_t)arg;
    atomic_store(&sleeper_sched, my_sched());
    tel_sleep(50); /* on its scheduler's wheel */
    (void)tt_send_tag(parent, 3);
}

static void waiter_fn(void *arg)
{
    tel_pid_t parent = (tel_pid_t)(uintptr_t)arg;
    atomic_store(&waiter_sched, my_sched());
    tel_msg_t *m = NULL;
    TT_CHECK_RC(tel_recv(&m, 20000), 0, "waiter's recv");
    tel_msg_free(m);
    (void)tt_send_tag(parent, 4);
}

static void stuck_blocker_fn(void *arg)
{
    tel_pid_t parent = (tel_pid_t)(uintptr_t)arg;
    tel_pid_t pid;
    /* Each child runs next here while we sleep a little. */
    TT_CHECK_RC(tel_spawn(&pid, waiter_fn, arg), 0, "spawn waiter");
    atomic_store(&waiter_pid, pid);
    tel_sleep(2);
    TT_CHECK_RC(tel_spawn(NULL, sleeper_fn, arg), 0, "spawn sleeper");
    tel_sleep(2);
    int here = my_sched();
    atomic_store(&blocker_sched, here);
    TT_CHECK(atomic_load(&waiter_sched) == here &&
                 atomic_load(&sleeper_sched) == here,
             "children ran on %d and %d, not %d", atomic_load(&waiter_sched),
             atomic_load(&sleeper_sched), here);
    atomic_store(&blocked, true);
    char c;
    ssize_t r;
    do
        r = read(stuck_pipe[0], &c, 1); /* blocks this scheduler's thread */
    while (r < 0 && errno == EINTR);
    TT_CHECK(r == 1, "read: %zd", r);
    (void)tt_send_tag(parent, 5);
}

static atomic_bool both_done, pipe_written;

/* Outside the runtime: wake the waiter once the blocker blocks, then
 * write the pipe when main saw both children finish (or after 5 s, so a
 * broken hand-off fails the test instead of hanging it: main's own timers
 * may be on the stuck wheel). */
static void *foreign_waker(void *arg)
{
    (void)arg;
    while (!atomic_load(&blocked))
        tt_os_sleep_ms(1);
    /* Once the watchdog has marked it stuck (a wake-up queued just before
     * that would wait for it, or for the preemption signal's shed). */
    struct sched *a = tel__sched_get((unsigned)atomic_load(&blocker_sched));
    for (int i = 0; i < 5000 && !atomic_load(&a->stuck); i++)
        tt_os_sleep_ms(1);
    TT_CHECK(atomic_load(&a->stuck), "the blocked scheduler never got stuck");
    int rc = tel_send(atomic_load(&waiter_pid), 9, NULL, 0);
    TT_CHECK_RC(rc, 0, "foreign send");
    for (int i = 0; i < 5000 && !atomic_load(&both_done); i++)
        tt_os_sleep_ms(1);
    atomic_store(&pipe_written, true);
    TT_CHECK(write(stuck_pipe[1], "x", 1) == 1, "write");
    return NULL;
}

static void stuck_main_fn(void *arg)
{
    (void)arg;
    pthread_t th;
    if (!TT_CHECK(pthread_create(&th, NULL, foreign_waker, NULL) == 0,
                  "pthread_create"))
        return;
    TT_CHECK_RC(tel_spawn(NULL, stuck_blocker_fn,
                          (void *)(uintptr_t)tel_self()),
                0, "spawn blocker");
    /* The sleeper (timer on the stuck wheel) and the waiter (woken from
     * outside) both finish while the blocker still blocks. */
    bool got3 = false, got4 = false, got5 = false;
    int64_t until = tt_now_ms() + 20000;
    while (!(got3 && got4 && got5) && tt_now_ms() < until) {
        tel_msg_t *m = NULL;
        if (tel_recv(&m, 100) != 0)
            continue;
        bool late = atomic_load(&pipe_written);
        if (m->tag == 3) {
            got3 = true;
            TT_CHECK(!late, "the sleeper on the stuck scheduler woke only "
                            "once it was unblocked");
        } else if (m->tag == 4) {
            got4 = true;
            TT_CHECK(!late, "the waiter woken from outside ran only once "
                            "the scheduler was unblocked");
        } else if (m->tag == 5) {
            got5 = true;
            TT_CHECK(late, "the blocker ended before the pipe was written");
        }
        tel_msg_free(m);
        if (got3 && got4)
            atomic_store(&both_done, true);
    }
    TT_CHECK(got3 && got4 && got5, "missing: %s%s%s", got3 ? "" : "sleeper ",
             got4 ? "" : "waiter ", got5 ? "" : "blocker");
    pthread_join(th, NULL);
}

Test(sysmon, stuck_scheduler_hands_off)
{
    cr_assert_eq(pipe(stuck_pipe), 0);
    /* A 20 ms bound: only the blocked scheduler gets stuck, even where
     * every run is slow (sanitizers, a loaded machine). */
    tel_config_t c = {.schedulers = 2, .watchdog_us = 20000};
    TT_RUN(&c, stuck_main_fn, NULL);
    close(stuck_pipe[0]);
    close(stuck_pipe[1]);
}

/*
 * tel__sched_shed, white-box. The preemption signal's handler calls it on
 * a stuck scheduler's own thread; here the process calls it itself, on its
 * own thread, just before blocking that thread in read(): the same state
 * (the process's code running, no Telar lock held). Its children wait in
 * the runnext slot and the ring, which only the owner takes from; after
 * the shed they are in the global queue and the other scheduler runs
 * them while this one is blocked.
 */
static int shed_pipe[2];
static atomic_int shed_done;
static atomic_bool shed_late;

static void shed_child_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&shed_done, 1);
}

static void shed_blocker_fn(void *arg)
{
    tel_pid_t parent = (tel_pid_t)(uintptr_t)arg;
    for (int i = 0; i < 3; i++) /* the last one waits in runnext */
        TT_CHECK_RC(tel_spawn(NULL, shed_child_fn, NULL), 0, "spawn child");
    tel__sched_shed(tel__sched_self());
    char c;
    ssize_t r;
    do
        r = read(shed_pipe[0], &c, 1);
    while (r < 0 && errno == EINTR);
    TT_CHECK(r == 1, "read: %zd", r);
    (void)tt_send_tag(parent, 5);
}

static void *shed_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5000 && atomic_load(&shed_done) < 3; i++)
        tt_os_sleep_ms(1);
    atomic_store(&shed_late, atomic_load(&shed_done) < 3);
    TT_CHECK(write(shed_pipe[1], "x", 1) == 1, "write");
    return NULL;
}

static void shed_main_fn(void *arg)
{
    (void)arg;
    pthread_t th;
    if (!TT_CHECK(pthread_create(&th, NULL, shed_writer, NULL) == 0,
                  "pthread_create"))
        return;
    TT_CHECK_RC(tel_spawn(NULL, shed_blocker_fn,
                          (void *)(uintptr_t)tel_self()),
                0, "spawn blocker");
    tel_msg_t *m = recv_tag(5, 20000);
    TT_CHECK(m != NULL, "the blocker never ended");
    tel_msg_free(m);
    pthread_join(th, NULL);
    TT_CHECK(!atomic_load(&shed_late),
             "the shed children ran only once the scheduler was unblocked");
    TT_CHECK(atomic_load(&shed_done) == 3, "%d children ran",
             atomic_load(&shed_done));
}

Test(sysmon, shed_moves_owner_only_work)
{
    cr_assert_eq(pipe(shed_pipe), 0);
    /* No watchdog: only the shed can move the runnext child. */
    tel_config_t c = {.schedulers = 2, .flags = TEL_CFG_NO_WATCHDOG};
    TT_RUN(&c, shed_main_fn, NULL);
    close(shed_pipe[0]);
    close(shed_pipe[1]);
}
