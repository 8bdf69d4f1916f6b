/*
 * tests/core/runtime_test.c: tel_run, its configuration, repeated and
 * concurrent runs, shutdown of leftover processes, and calls made when no
 * runtime runs. Black-box: include/telar.h only.
 */
#include "common.h"

#include <sched.h>

/* ------------------------------------------------------------------------ */
/* tel_run runs main                                                         */
/* ------------------------------------------------------------------------ */

static atomic_int main_ran;
static atomic_uintptr_t main_arg_seen;
static atomic_uint_fast64_t main_self_seen;

static void record_main(void *arg)
{
    atomic_fetch_add(&main_ran, 1);
    atomic_store(&main_arg_seen, (uintptr_t)arg);
    atomic_store(&main_self_seen, tel_self());
}

Test(runtime, run_calls_main_with_its_arg_and_returns_zero, .timeout = 30)
{
    int token = 0;
    TT_RUN(NULL, record_main, &token);
    cr_assert_eq(atomic_load(&main_ran), 1, "main ran %d times",
                 atomic_load(&main_ran));
    cr_assert_eq(atomic_load(&main_arg_seen), (uintptr_t)&token,
                 "main got the wrong arg");
    cr_assert_neq(atomic_load(&main_self_seen), 0,
                  "tel_self() in main was 0");
}

static void exit_with_user_reason(void *arg)
{
    (void)arg;
    atomic_fetch_add(&main_ran, 1);
    tel_exit(42);
}

Test(runtime, run_returns_zero_when_main_exits_with_any_reason, .timeout = 30)
{
    TT_RUN(NULL, exit_with_user_reason, NULL);
    cr_assert_eq(atomic_load(&main_ran), 1);
}

Test(runtime, run_with_null_main_returns_einval, .timeout = 30)
{
    int rc = tel_run(NULL, NULL, NULL);
    cr_assert_eq(rc, TEL_EINVAL, "got %d (%s)", rc, tel_errname(rc));
    tel_config_t cfg = {.schedulers = 1};
    rc = tel_run(&cfg, NULL, NULL);
    cr_assert_eq(rc, TEL_EINVAL, "got %d (%s)", rc, tel_errname(rc));
}

/* Run with cfg and expect EINVAL without main ever running. */
static void expect_einval(const tel_config_t *cfg, const char *what)
{
    atomic_store(&main_ran, 0);
    int rc = tel_run(cfg, record_main, NULL);
    cr_assert_eq(rc, TEL_EINVAL, "%s: tel_run returned %d (%s)", what, rc,
                 tel_errname(rc));
    cr_assert_eq(atomic_load(&main_ran), 0, "%s: main ran", what);
}

Test(runtime, run_rejects_too_many_schedulers, .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 100000};
    expect_einval(&cfg, "schedulers=100000");
    cfg.schedulers = 1025;
    expect_einval(&cfg, "schedulers=1025");
}

Test(runtime, run_rejects_a_stack_size_below_the_minimum, .timeout = 30)
{
    tel_config_t cfg = {.stack_size = 1};
    expect_einval(&cfg, "stack_size=1");
    cfg.stack_size = TEL_MIN_STACK_SIZE / 2;
    expect_einval(&cfg, "stack_size=TEL_MIN_STACK_SIZE/2");
}

Test(runtime, run_rejects_a_stack_size_above_256_mib, .timeout = 30)
{
    tel_config_t cfg = {.stack_size = (size_t)512 * 1024 * 1024};
    expect_einval(&cfg, "stack_size=512MiB");
    cfg.stack_size = SIZE_MAX;
    expect_einval(&cfg, "stack_size=SIZE_MAX");
}

Test(runtime, run_rejects_max_processes_above_the_limit, .timeout = 30)
{
    tel_config_t cfg = {.max_processes = TEL_MAX_MAX_PROCESSES + 1u};
    expect_einval(&cfg, "max_processes=TEL_MAX_MAX_PROCESSES+1");
    cfg.max_processes = UINT32_MAX;
    expect_einval(&cfg, "max_processes=UINT32_MAX");
}

Test(runtime, run_accepts_the_smallest_and_largest_stack_sizes, .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1, .stack_size = TEL_MIN_STACK_SIZE};
    TT_RUN(&cfg, record_main, NULL);
    cfg.stack_size = (size_t)256 * 1024 * 1024;
    TT_RUN(&cfg, record_main, NULL);
    cr_assert_eq(atomic_load(&main_ran), 2);
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                  */
/* ------------------------------------------------------------------------ */

static atomic_uint sched_count_seen;
static atomic_uint proc_count_seen;

static void echo_back(void *arg)
{
    tel_pid_t to = (tel_pid_t)(uintptr_t)arg;
    tt_send_u64(to, 7, 1234);
}

/* Records counts, and proves spawn and messages work in this config. */
static void defaults_main(void *arg)
{
    (void)arg;
    atomic_store(&sched_count_seen, tel_scheduler_count());
    atomic_store(&proc_count_seen, tel_process_count());
    atomic_fetch_add(&main_ran, 1);
    /* The pid goes through arg as an integer; pids fit in uintptr_t here. */
    tel_pid_t self = tel_self();
    if (!TT_CHECK(self == (tel_pid_t)(uintptr_t)self, "pid too wide"))
        return;
    int rc = tel_spawn(NULL, echo_back, (void *)(uintptr_t)self);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 10000);
    if (TT_CHECK_RC(rc, 0, "tel_recv"))
        TT_CHECK(tt_msg_u64(m) == 1234, "wrong payload");
    tel_msg_free(m);
}

static unsigned affinity_cpus(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    return (unsigned)CPU_COUNT(&set);
}

Test(runtime, zero_config_means_defaults, .timeout = 30)
{
    tel_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    TT_RUN(&cfg, defaults_main, NULL);
    cr_assert_eq(atomic_load(&main_ran), 1);
    cr_assert_eq(atomic_load(&sched_count_seen), affinity_cpus(),
                 "schedulers=0 gave %u schedulers, the affinity mask has %u",
                 atomic_load(&sched_count_seen), affinity_cpus());
    cr_assert_eq(atomic_load(&proc_count_seen), 1,
                 "tel_process_count() in a lone main was %u",
                 atomic_load(&proc_count_seen));
}

Test(runtime, null_config_means_defaults, .timeout = 30)
{
    TT_RUN(NULL, defaults_main, NULL);
    cr_assert_eq(atomic_load(&main_ran), 1);
    cr_assert_eq(atomic_load(&sched_count_seen), affinity_cpus(),
                 "NULL cfg gave %u schedulers, the affinity mask has %u",
                 atomic_load(&sched_count_seen), affinity_cpus());
}

Test(runtime, scheduler_count_inside_a_run_equals_the_config, .timeout = 60)
{
    static const unsigned counts[] = {1, 2, 3, 8};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        tel_config_t cfg = {.schedulers = counts[i]};
        TT_RUN(&cfg, defaults_main, NULL);
        cr_assert_eq(atomic_load(&sched_count_seen), counts[i],
                     "schedulers=%u but tel_scheduler_count() said %u",
                     counts[i], atomic_load(&sched_count_seen));
    }
    cr_assert_eq(tel_scheduler_count(), 0,
                 "tel_scheduler_count() after the runs was %u",
                 tel_scheduler_count());
}

/* ------------------------------------------------------------------------ */
/* tel_process_count                                                         */
/* ------------------------------------------------------------------------ */

#define COUNT_KIDS 10

static void process_count_main(void *arg)
{
    (void)arg;
    uint32_t c = tel_process_count();
    TT_CHECK(c == 1, "count with main alone is %u, want 1", c);
    tel_pid_t kids[COUNT_KIDS];
    for (int i = 0; i < COUNT_KIDS; i++) {
        int rc = tel_spawn(&kids[i], tt_wait_one_fn, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
    }
    c = tel_process_count();
    TT_CHECK(c == COUNT_KIDS + 1, "count with %d blocked kids is %u",
             COUNT_KIDS, c);
    for (int i = 0; i < COUNT_KIDS / 2; i++)
        tt_send_tag(kids[i], 1);
    TT_CHECK(tt_await_count(COUNT_KIDS / 2 + 1, 10000),
             "count never fell to %d after half the kids exited (it is %u)",
             COUNT_KIDS / 2 + 1, tel_process_count());
    for (int i = COUNT_KIDS / 2; i < COUNT_KIDS; i++)
        tt_send_tag(kids[i], 1);
    TT_CHECK(tt_await_count(1, 10000),
             "count never fell back to 1 (it is %u)", tel_process_count());
}

Test(runtime, process_count_follows_spawns_and_exits, .timeout = 30)
{
    cr_assert_eq(tel_process_count(), 0, "count before any run is %u",
                 tel_process_count());
    TT_RUN(NULL, process_count_main, NULL);
    cr_assert_eq(tel_process_count(), 0, "count after the run is %u",
                 tel_process_count());
}

/* ------------------------------------------------------------------------ */
/* Repeated runs                                                             */
/* ------------------------------------------------------------------------ */

static atomic_int rounds_done;

static void roundtrip_main(void *arg)
{
    (void)arg;
    /* Spawn a few processes and exchange messages, so each run does work. */
    tel_pid_t self = tel_self();
    for (int i = 0; i < 50; i++) {
        int rc = tel_spawn(NULL, echo_back, (void *)(uintptr_t)self);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
    }
    for (int i = 0; i < 50; i++) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 10000);
        if (!TT_CHECK_RC(rc, 0, "tel_recv"))
            return;
        tel_msg_free(m);
    }
    atomic_fetch_add(&rounds_done, 1);
}

Test(runtime, run_can_be_called_twice_in_a_row, .timeout = 30)
{
    TT_RUN(NULL, roundtrip_main, NULL);
    TT_RUN(NULL, roundtrip_main, NULL);
    cr_assert_eq(atomic_load(&rounds_done), 2);
}

Test(runtime, run_can_be_called_five_times_with_different_configs,
     .timeout = 60)
{
    static const tel_config_t cfgs[5] = {
        {.schedulers = 1},
        {.schedulers = 2, .stack_size = TEL_MIN_STACK_SIZE},
        {0},
        {.schedulers = 3, .max_processes = 100},
        {.schedulers = 1, .reductions = 10},
    };
    for (int i = 0; i < 5; i++)
        TT_RUN(&cfgs[i], roundtrip_main, NULL);
    cr_assert_eq(atomic_load(&rounds_done), 5);
}

/* ------------------------------------------------------------------------ */
/* tel_run while a runtime runs                                              */
/* ------------------------------------------------------------------------ */

static atomic_int nested_rc = 1;

static void nested_run_main(void *arg)
{
    (void)arg;
    int rc = tel_run(NULL, record_main, NULL);
    atomic_store(&nested_rc, rc);
}

Test(runtime, run_from_inside_a_process_returns_ebusy, .timeout = 30)
{
    TT_RUN(NULL, nested_run_main, NULL);
    cr_assert_eq(atomic_load(&nested_rc), TEL_EBUSY,
                 "nested tel_run returned %d (%s)", atomic_load(&nested_rc),
                 tel_errname(atomic_load(&nested_rc)));
    cr_assert_eq(atomic_load(&main_ran), 0, "the nested main ran");
}

static atomic_int first_started;
static atomic_int second_done;

static void holding_main(void *arg)
{
    (void)arg;
    atomic_store(&first_started, 1);
    bool ok;
    TT_AWAIT(ok, atomic_load(&second_done) != 0, 20000);
    TT_CHECK(ok, "the second tel_run never returned");
}

static void *run_holding(void *arg)
{
    int *rc = arg;
    *rc = tel_run(NULL, holding_main, NULL);
    return NULL;
}

Test(runtime, run_while_another_thread_runs_returns_ebusy, .timeout = 60)
{
    pthread_t t;
    int first_rc = 1;
    cr_assert_eq(pthread_create(&t, NULL, run_holding, &first_rc), 0);
    int64_t deadline = tt_now_ms() + 20000;
    while (atomic_load(&first_started) == 0 && tt_now_ms() < deadline)
        tt_os_sleep_ms(1);
    cr_assert_eq(atomic_load(&first_started), 1, "the first run never began");

    int rc = tel_run(NULL, record_main, NULL);
    atomic_store(&second_done, 1);
    pthread_join(t, NULL);

    cr_assert_eq(rc, TEL_EBUSY, "second tel_run returned %d (%s)", rc,
                 tel_errname(rc));
    cr_assert_eq(atomic_load(&main_ran), 0, "the second main ran");
    cr_assert_eq(first_rc, 0, "first tel_run returned %d", first_rc);
    TT_ASSERT_NO_FAILURES();
}

static atomic_int race_mains;
static atomic_int race_busy;
static pthread_barrier_t race_barrier;

static void race_main(void *arg)
{
    (void)arg;
    atomic_fetch_add(&race_mains, 1);
    /* Stay up until the other thread has been turned away (or give up). */
    bool ok;
    TT_AWAIT(ok, atomic_load(&race_busy) != 0, 10000);
    (void)ok;
}

static void *race_thread(void *arg)
{
    int *rc = arg;
    pthread_barrier_wait(&race_barrier);
    *rc = tel_run(NULL, race_main, NULL);
    if (*rc == TEL_EBUSY)
        atomic_fetch_add(&race_busy, 1);
    return NULL;
}

Test(runtime, run_from_two_threads_at_once_gives_one_ebusy, .timeout = 60)
{
    for (int round = 0; round < 5; round++) {
        atomic_store(&race_mains, 0);
        atomic_store(&race_busy, 0);
        cr_assert_eq(pthread_barrier_init(&race_barrier, NULL, 2), 0);
        pthread_t a, b;
        int rca = 1, rcb = 1;
        cr_assert_eq(pthread_create(&a, NULL, race_thread, &rca), 0);
        cr_assert_eq(pthread_create(&b, NULL, race_thread, &rcb), 0);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        pthread_barrier_destroy(&race_barrier);
        bool one_each = (rca == 0 && rcb == TEL_EBUSY) ||
                        (rca == TEL_EBUSY && rcb == 0);
        cr_assert(one_each,
                  "round %d: the two tel_run calls returned %d (%s) and "
                  "%d (%s)",
                  round, rca, tel_errname(rca), rcb, tel_errname(rcb));
        cr_assert_eq(atomic_load(&race_mains), 1, "round %d: %d mains ran",
                     round, atomic_load(&race_mains));
    }
}

/* ------------------------------------------------------------------------ */
/* Shutdown ends what main leaves behind                                     */
/* ------------------------------------------------------------------------ */

#define LEFTOVERS 100

static atomic_int left_started;
static atomic_int left_ran_after;
static atomic_uint_fast64_t left_spins;
static tel_pid_t left_pids[LEFTOVERS];

static void blocked_forever(void *arg)
{
    (void)arg;
    atomic_fetch_add(&left_started, 1);
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, TEL_INFINITY);
    (void)rc;
    atomic_fetch_add(&left_ran_after, 1);
    tel_msg_free(m);
}

static void sleeping_long(void *arg)
{
    (void)arg;
    atomic_fetch_add(&left_started, 1);
    (void)tel_sleep(600000);
    atomic_fetch_add(&left_ran_after, 1);
}

static void yielding_forever(void *arg)
{
    (void)arg;
    atomic_fetch_add(&left_started, 1);
    for (;;) {
        atomic_fetch_add(&left_spins, 1);
        (void)tel_yield();
    }
}

static void reducing_forever(void *arg)
{
    (void)arg;
    atomic_fetch_add(&left_started, 1);
    for (;;) {
        atomic_fetch_add(&left_spins, 1);
        (void)tel_reduce(1);
    }
}

/* arg: the process body to leave behind. */
static void leave_behind_main(void *arg)
{
    tel_fn fn = (tel_fn)(uintptr_t)arg;
    for (int i = 0; i < LEFTOVERS; i++) {
        int rc = tel_spawn(&left_pids[i], fn, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
    }
    bool ok;
    TT_AWAIT(ok, atomic_load(&left_started) == LEFTOVERS, 20000);
    TT_CHECK(ok, "only %d of %d leftovers started",
             atomic_load(&left_started), LEFTOVERS);
    /* Let the busy ones spin a while, the sleepers settle. */
    (void)tel_sleep(20);
}

/* Run leave_behind_main with fn and check that the leftovers were ended. */
static void check_leftovers_ended(tel_fn fn, unsigned schedulers)
{
    tel_config_t cfg = {.schedulers = schedulers};
    int64_t t0 = tt_now_ms();
    TT_RUN(&cfg, leave_behind_main, (void *)(uintptr_t)fn);
    int64_t took = tt_now_ms() - t0;
    cr_assert_lt(took, 20000, "tel_run took %" PRId64 " ms to shut down",
                 took);
    cr_assert_eq(atomic_load(&left_ran_after), 0,
                 "%d leftovers ran code after main exited",
                 atomic_load(&left_ran_after));
    cr_assert_eq(tel_process_count(), 0);
    for (int i = 0; i < LEFTOVERS; i++)
        cr_assert(!tel_is_alive(left_pids[i]),
                  "leftover %d is alive after tel_run returned", i);
    /* No code of a leftover runs after shutdown. */
    uint64_t spins = atomic_load(&left_spins);
    tt_os_sleep_ms(50);
    cr_assert_eq(atomic_load(&left_spins), spins,
                 "busy leftovers kept running after tel_run returned");
}

Test(runtime, main_exit_ends_processes_blocked_in_recv, .timeout = 60)
{
    check_leftovers_ended(blocked_forever, 2);
}

Test(runtime, main_exit_ends_sleeping_processes, .timeout = 60)
{
    check_leftovers_ended(sleeping_long, 2);
}

Test(runtime, main_exit_ends_processes_looping_on_yield, .timeout = 60)
{
    check_leftovers_ended(yielding_forever, 2);
    cr_assert_gt(atomic_load(&left_spins), 0, "the yielders never ran");
}

Test(runtime, main_exit_ends_yield_loopers_on_one_scheduler, .timeout = 60)
{
    check_leftovers_ended(yielding_forever, 1);
}

Test(runtime, main_exit_ends_processes_looping_on_reduce, .timeout = 60)
{
    check_leftovers_ended(reducing_forever, 1);
    cr_assert_gt(atomic_load(&left_spins), 0, "the reducers never ran");
}

/* ------------------------------------------------------------------------ */
/* Calls when no runtime runs                                                */
/* ------------------------------------------------------------------------ */

static atomic_uint_fast64_t saved_main_pid;

static void save_pid_main(void *arg)
{
    (void)arg;
    atomic_store(&saved_main_pid, tel_self());
}

struct outside_results {
    int send_rc, spawn_rc, send_after_rc, cancel_rc;
    bool alive;
    tel_pid_t self;
    uint32_t nproc;
    unsigned nsched;
};

static void call_outside(struct outside_results *r, tel_pid_t pid)
{
    uint64_t v = 1;
    r->send_rc = tel_send(pid, 1, &v, sizeof v);
    r->spawn_rc = tel_spawn(NULL, tt_return_fn, NULL);
    r->send_after_rc = tel_send_after(NULL, 1, pid, 1, &v, sizeof v);
    r->cancel_rc = tel_cancel_timer(1);
    r->alive = tel_is_alive(pid);
    r->self = tel_self();
    r->nproc = tel_process_count();
    r->nsched = tel_scheduler_count();
}

static void *call_outside_thread(void *arg)
{
    call_outside(arg, (tel_pid_t)atomic_load(&saved_main_pid));
    return NULL;
}

static void check_outside(const struct outside_results *r, const char *where)
{
    cr_assert_eq(r->send_rc, TEL_ESHUTDOWN, "%s: tel_send gave %d (%s)",
                 where, r->send_rc, tel_errname(r->send_rc));
    cr_assert_eq(r->spawn_rc, TEL_ESHUTDOWN, "%s: tel_spawn gave %d (%s)",
                 where, r->spawn_rc, tel_errname(r->spawn_rc));
    cr_assert_eq(r->send_after_rc, TEL_ESHUTDOWN,
                 "%s: tel_send_after gave %d (%s)", where, r->send_after_rc,
                 tel_errname(r->send_after_rc));
    cr_assert_eq(r->cancel_rc, TEL_ESHUTDOWN,
                 "%s: tel_cancel_timer gave %d (%s)", where, r->cancel_rc,
                 tel_errname(r->cancel_rc));
    cr_assert(!r->alive, "%s: the old main pid is alive", where);
    cr_assert_eq(r->self, 0, "%s: tel_self() is %" PRIu64, where, r->self);
    cr_assert_eq(r->nproc, 0, "%s: tel_process_count() is %u", where,
                 r->nproc);
    cr_assert_eq(r->nsched, 0, "%s: tel_scheduler_count() is %u", where,
                 r->nsched);
}

Test(runtime, calls_after_run_returned_give_eshutdown, .timeout = 30)
{
    TT_RUN(NULL, save_pid_main, NULL);
    cr_assert_neq(atomic_load(&saved_main_pid), 0);

    struct outside_results r;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, call_outside_thread, &r), 0);
    pthread_join(t, NULL);
    check_outside(&r, "foreign thread after the run");

    /* The thread that ran the runtime is a foreign thread again. */
    call_outside(&r, (tel_pid_t)atomic_load(&saved_main_pid));
    check_outside(&r, "tel_run's own thread after the run");
    cr_assert_eq(tel_yield(), TEL_ENOTPROC);
    cr_assert_eq(tel_reduce(1), TEL_ENOTPROC);
}

Test(runtime, calls_before_any_run_give_eshutdown, .timeout = 30)
{
    struct outside_results r;
    call_outside(&r, 0x100000001ull);
    check_outside(&r, "before any run");
}

/* ------------------------------------------------------------------------ */
/* The calling thread                                                        */
/* ------------------------------------------------------------------------ */

Test(runtime, run_restores_the_callers_cpu_affinity, .timeout = 30)
{
    cpu_set_t before, after;
    CPU_ZERO(&before);
    cr_assert_eq(sched_getaffinity(0, sizeof before, &before), 0);
    TT_RUN(NULL, defaults_main, NULL);
    CPU_ZERO(&after);
    cr_assert_eq(sched_getaffinity(0, sizeof after, &after), 0);
    cr_assert(CPU_EQUAL(&before, &after),
              "affinity changed: %d cpus before, %d after",
              CPU_COUNT(&before), CPU_COUNT(&after));
}

Test(runtime, run_restores_a_narrowed_cpu_affinity, .timeout = 30)
{
    cpu_set_t all, one, after;
    CPU_ZERO(&all);
    cr_assert_eq(sched_getaffinity(0, sizeof all, &all), 0);
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all)) {
            first = c;
            break;
        }
    cr_assert_geq(first, 0);
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
    TT_RUN(NULL, defaults_main, NULL);
    CPU_ZERO(&after);
    cr_assert_eq(sched_getaffinity(0, sizeof after, &after), 0);
    cr_assert(CPU_EQUAL(&one, &after),
              "affinity not restored: %d cpus after, want only cpu %d",
              CPU_COUNT(&after), first);
    cr_assert_eq(atomic_load(&sched_count_seen), 1,
                 "with a one-cpu mask, schedulers=0 gave %u schedulers",
                 atomic_load(&sched_count_seen));
}
