/*
 * tests/core/pid_test.c: pids carry a generation, so a stale pid never names
 * a later process; pid 0 and garbage pids are rejected or ignored safely.
 * Black-box: include/telar.h only.
 */
#include "common.h"

static int cmp_pid(const void *a, const void *b)
{
    tel_pid_t x = *(const tel_pid_t *)a, y = *(const tel_pid_t *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------------ */
/* Exited pids                                                               */
/* ------------------------------------------------------------------------ */

static void exited_not_alive_main(void *arg)
{
    (void)arg;
    tel_pid_t pid = 0;
    int rc = tel_spawn(&pid, tt_return_fn, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    TT_CHECK(pid != 0, "spawn gave pid 0");
    TT_CHECK(tt_await_dead(pid, 10000), "a returned process stays alive");
    /* And it stays dead while other processes come and go. */
    for (int i = 0; i < 1000; i++) {
        tel_pid_t other = 0;
        rc = tel_spawn(&other, tt_return_fn, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        if (!TT_CHECK(other != pid, "new process %d got the dead pid", i))
            return;
        if (!TT_CHECK(!tel_is_alive(pid), "dead pid alive again at %d", i))
            return;
    }
}

Test(pid, exited_pid_is_not_alive, .timeout = 30)
{
    TT_RUN(NULL, exited_not_alive_main, NULL);
}

static size_t cycle_n;
static tel_pid_t *cycle_pids;
static atomic_size_t cycle_ran;

static void count_and_return(void *arg)
{
    (void)arg;
    atomic_fetch_add(&cycle_ran, 1);
}

static void cycle_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    for (size_t i = 0; i < cycle_n; i++) {
        tel_pid_t pid = 0;
        int rc = tel_spawn(&pid, count_and_return, NULL);
        if (!TT_CHECK(rc == 0, "spawn %zu: %s", i, tel_errname(rc)))
            return;
        if (!TT_CHECK(pid != 0 && pid != self, "spawn %zu gave pid %" PRIu64,
                      i, pid))
            return;
        cycle_pids[i] = pid;
        /* Wait for it to go, so the next spawn can take its slot. */
        if (!TT_CHECK(tt_await_dead(pid, 10000), "process %zu stays alive",
                      i))
            return;
        /* Not alive means it has run and exited, not that it is unborn. */
        if (!TT_CHECK(atomic_load(&cycle_ran) == i + 1,
                      "process %zu is not alive but has not run", i))
            return;
        if (i % 1024 == 0 &&
            !TT_CHECK(!tel_is_alive(cycle_pids[0]),
                      "the first pid is alive again after %zu cycles", i))
            return;
    }
    for (size_t i = 0; i < cycle_n; i++)
        if (!TT_CHECK(!tel_is_alive(cycle_pids[i]),
                      "pid %zu of %zu is alive after it exited", i, cycle_n))
            return;
}

static void check_unique(const tel_pid_t *pids, size_t n)
{
    tel_pid_t *sorted = malloc(n * sizeof *sorted);
    cr_assert_not_null(sorted);
    memcpy(sorted, pids, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_pid);
    for (size_t i = 1; i < n; i++)
        cr_assert_neq(sorted[i], sorted[i - 1],
                      "pid %#" PRIx64 " was given to two processes",
                      sorted[i]);
    free(sorted);
}

static void run_cycles(unsigned schedulers)
{
    cycle_n = tel_test_scaled(200000, 5000);
    cycle_pids = calloc(cycle_n, sizeof *cycle_pids);
    cr_assert_not_null(cycle_pids);
    tel_config_t cfg = {.schedulers = schedulers};
    TT_RUN(&cfg, cycle_main, NULL);
    check_unique(cycle_pids, cycle_n);
    free(cycle_pids);
}

Test(pid, stale_pid_never_equals_a_new_pid_across_slot_reuse, .timeout = 180)
{
    run_cycles(1);
}

Test(pid, stale_pid_never_equals_a_new_pid_on_two_schedulers, .timeout = 180)
{
    run_cycles(2);
}

/* Many alive at once: all pids distinct and alive; after exit, all dead. */
#define LIVE_SET_MAX 10000

static tel_pid_t live_set[LIVE_SET_MAX];
static int live_set_n; /* LIVE_SET_MAX, or fewer under TSan */

static void live_set_main(void *arg)
{
    (void)arg;
    tel_pid_t dead = 0;
    int rc = tel_spawn(&dead, tt_return_fn, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn") ||
        !TT_CHECK(tt_await_dead(dead, 10000), "a returned process is alive"))
        return;
    for (int i = 0; i < live_set_n; i++) {
        rc = tel_spawn(&live_set[i], tt_wait_one_fn, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        TT_CHECK(live_set[i] != dead, "live process %d got a dead pid", i);
    }
    for (int i = 0; i < live_set_n; i++)
        TT_CHECK(tel_is_alive(live_set[i]), "blocked process %d not alive",
                 i);
    TT_CHECK(!tel_is_alive(dead), "dead pid alive among %d live", live_set_n);
    for (int i = 0; i < live_set_n; i++)
        tt_send_tag(live_set[i], 1);
    for (int i = 0; i < live_set_n; i++)
        if (!TT_CHECK(tt_await_dead(live_set[i], 10000),
                      "released process %d is alive", i))
            return;
}

Test(pid, live_pids_are_distinct_and_alive_until_they_exit, .timeout = 60)
{
    live_set_n = (int)tel_test_live_cap(LIVE_SET_MAX);
    TT_RUN(NULL, live_set_main, NULL);
    check_unique(live_set, live_set_n);
}

/* ------------------------------------------------------------------------ */
/* Sending to dead pids                                                      */
/* ------------------------------------------------------------------------ */

#define TAG_STALE 0xDEADull
#define TAG_GOOD 0x600Dull

static atomic_int stale_delivered;
static atomic_int good_delivered;

/* Reports the tag of the first message it gets. */
static void first_tag_reporter(void *arg)
{
    tel_pid_t report_to = *(tel_pid_t *)arg;
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, TEL_INFINITY);
    if (!TT_CHECK_RC(rc, 0, "tel_recv"))
        return;
    if (m->tag == TAG_STALE)
        atomic_fetch_add(&stale_delivered, 1);
    else if (m->tag == TAG_GOOD)
        atomic_fetch_add(&good_delivered, 1);
    tel_msg_free(m);
    tt_send_tag(report_to, 1);
}

static size_t stale_rounds;

static void stale_send_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    char payload[100] = {0};
    for (size_t r = 0; r < stale_rounds; r++) {
        tel_pid_t dead = 0;
        int rc = tel_spawn(&dead, tt_return_fn, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn") ||
            !TT_CHECK(tt_await_dead(dead, 10000), "round %zu: not dead", r))
            return;
        rc = tel_send(dead, TAG_STALE, payload, sizeof payload);
        if (!TT_CHECK_RC(rc, 0, "tel_send to a dead pid"))
            return;
        /* A new process, likely in the dead one's slot. */
        tel_pid_t fresh = 0;
        rc = tel_spawn(&fresh, first_tag_reporter, &self);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        /* Sent to the stale pid first: if it leaked, it would come first. */
        rc = tel_send(dead, TAG_STALE, payload, sizeof payload);
        if (!TT_CHECK_RC(rc, 0, "tel_send to a dead pid"))
            return;
        rc = tel_send(fresh, TAG_GOOD, NULL, 0);
        if (!TT_CHECK_RC(rc, 0, "tel_send"))
            return;
        tel_msg_t *m = NULL;
        rc = tel_recv(&m, 10000);
        if (!TT_CHECK_RC(rc, 0, "tel_recv"))
            return;
        tel_msg_free(m);
        if (!TT_CHECK(tt_await_dead(fresh, 10000), "reporter stays alive"))
            return;
    }
    /* Nothing sent to the dead pids came back to main either. */
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 0);
    TT_CHECK(rc == TEL_ETIMEDOUT, "main has a stray message (tag %" PRIu64
             ")", m ? m->tag : 0);
    tel_msg_free(m);
}

Test(pid, send_to_a_dead_pid_returns_zero_and_drops_the_message,
     .timeout = 60)
{
    stale_rounds = tel_test_scaled(2000, 200);
    TT_RUN(NULL, stale_send_main, NULL);
    cr_assert_eq(atomic_load(&stale_delivered), 0,
                 "%d messages sent to dead pids reached a new process",
                 atomic_load(&stale_delivered));
    cr_assert_eq((size_t)atomic_load(&good_delivered), stale_rounds);
}

Test(pid, send_to_a_dead_pid_on_one_scheduler_is_dropped, .timeout = 60)
{
    stale_rounds = tel_test_scaled(2000, 200);
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, stale_send_main, NULL);
    cr_assert_eq(atomic_load(&stale_delivered), 0);
    cr_assert_eq((size_t)atomic_load(&good_delivered), stale_rounds);
}

/* ------------------------------------------------------------------------ */
/* Pid 0                                                                     */
/* ------------------------------------------------------------------------ */

static atomic_int zero_send_rc = 1, zero_send_foreign_rc = 1;
static atomic_int zero_alive_in_run = -1, zero_alive_foreign = -1;

static void *zero_foreign(void *arg)
{
    (void)arg;
    uint64_t v = 1;
    atomic_store(&zero_send_foreign_rc, tel_send(0, 1, &v, sizeof v));
    atomic_store(&zero_alive_foreign, tel_is_alive(0));
    return NULL;
}

static void zero_main(void *arg)
{
    (void)arg;
    uint64_t v = 1;
    atomic_store(&zero_send_rc, tel_send(0, 1, &v, sizeof v));
    atomic_store(&zero_alive_in_run, tel_is_alive(0));
    pthread_t t;
    if (TT_CHECK(pthread_create(&t, NULL, zero_foreign, NULL) == 0,
                 "pthread_create"))
        pthread_join(t, NULL);
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 0);
    TT_CHECK(rc == TEL_ETIMEDOUT, "a message to pid 0 reached main");
    tel_msg_free(m);
}

Test(pid, send_to_pid_zero_returns_einval, .timeout = 30)
{
    TT_RUN(NULL, zero_main, NULL);
    cr_assert_eq(atomic_load(&zero_send_rc), TEL_EINVAL,
                 "inside a process: %d (%s)", atomic_load(&zero_send_rc),
                 tel_errname(atomic_load(&zero_send_rc)));
    cr_assert_eq(atomic_load(&zero_send_foreign_rc), TEL_EINVAL,
                 "on a foreign thread: %d (%s)",
                 atomic_load(&zero_send_foreign_rc),
                 tel_errname(atomic_load(&zero_send_foreign_rc)));
}

Test(pid, pid_zero_is_never_alive, .timeout = 30)
{
    cr_assert(!tel_is_alive(0), "before any run");
    TT_RUN(NULL, zero_main, NULL);
    cr_assert_eq(atomic_load(&zero_alive_in_run), 0, "inside a process");
    cr_assert_eq(atomic_load(&zero_alive_foreign), 0, "on a foreign thread");
    cr_assert(!tel_is_alive(0), "after the run");
}

/* ------------------------------------------------------------------------ */
/* Garbage pids                                                              */
/* ------------------------------------------------------------------------ */

static uint64_t garbage_seed;
static atomic_size_t garbage_tried;

/* With main the only process, no pid but main's may be alive. */
static void try_garbage(tel_pid_t self, tel_pid_t g)
{
    if (g == self)
        return;
    atomic_fetch_add(&garbage_tried, 1);
    TT_CHECK(!tel_is_alive(g), "garbage pid %#" PRIx64 " is alive (seed %"
             PRIu64 ")", g, garbage_seed);
    uint64_t v = g;
    int rc = tel_send(g, 5, &v, sizeof v);
    TT_CHECK(rc == 0 || rc == TEL_EINVAL,
             "send to garbage pid %#" PRIx64 " gave %d (%s) (seed %" PRIu64
             ")",
             g, rc, tel_errname(rc), garbage_seed);
}

static void garbage_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    static const tel_pid_t fixed[] = {
        UINT64_MAX, UINT64_MAX - 1, 1, 2, 3, 0xFFFFFFFFull, 0x100000000ull,
        0x100000001ull, 1ull << 63, (1ull << 63) | 1, 0x7FFFFFFFFFFFFFFFull,
        0xDEADBEEFDEADBEEFull,
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        try_garbage(self, fixed[i]);
    /* Main's own pid with one bit flipped, or nudged. */
    for (int b = 0; b < 64; b++)
        try_garbage(self, self ^ (1ull << b));
    for (uint64_t d = 1; d < 64; d++) {
        try_garbage(self, self + d);
        try_garbage(self, self - d);
        try_garbage(self, self + (d << 32));
        try_garbage(self, self - (d << 32));
    }
    /* Pids of processes that ran and exited, with their neighbours. */
    for (int i = 0; i < 100; i++) {
        tel_pid_t pid = 0;
        int rc = tel_spawn(&pid, tt_return_fn, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn") ||
            !TT_CHECK(tt_await_dead(pid, 10000), "child alive"))
            return;
        try_garbage(self, pid);
        try_garbage(self, pid + 1);
        try_garbage(self, pid ^ (1ull << 40));
    }
    struct tt_rng rng = {garbage_seed};
    for (int i = 0; i < 100000; i++) {
        uint64_t g = tt_rng_next(&rng);
        /* Also small and mid-range values, where real pids live. */
        if (i % 3 == 1)
            g &= 0xFFFFFFFFull;
        else if (i % 3 == 2)
            g &= 0xFFFFFFFFFFFFull;
        try_garbage(self, g);
    }
    /* None of it reached main. */
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 0);
    TT_CHECK(rc == TEL_ETIMEDOUT,
             "a message to garbage pid %#" PRIx64 " reached main (seed %"
             PRIu64 ")",
             m && m->size >= 8 ? *(uint64_t *)m->data : 0, garbage_seed);
    tel_msg_free(m);
}

Test(pid, garbage_pids_are_not_alive_and_sending_to_them_is_safe,
     .timeout = 60)
{
    garbage_seed = tel_test_seed();
    TT_RUN(NULL, garbage_main, NULL);
    cr_assert_gt(atomic_load(&garbage_tried), 100000);
}

static atomic_int garbage_foreign_bad;

static void *garbage_foreign(void *arg)
{
    tel_pid_t self = *(tel_pid_t *)arg;
    struct tt_rng rng = {garbage_seed ^ 0x5555};
    for (int i = 0; i < 20000; i++) {
        tel_pid_t g = tt_rng_next(&rng);
        if (i & 1)
            g &= 0xFFFFFFFFull;
        if (g == self)
            continue;
        if (tel_is_alive(g))
            atomic_fetch_add(&garbage_foreign_bad, 1);
        int rc = tel_send(g, 1, NULL, 0);
        if (rc != 0 && rc != TEL_EINVAL)
            atomic_fetch_add(&garbage_foreign_bad, 1);
    }
    return NULL;
}

static void garbage_foreign_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    pthread_t t;
    if (TT_CHECK(pthread_create(&t, NULL, garbage_foreign, &self) == 0,
                 "pthread_create"))
        pthread_join(t, NULL);
}

Test(pid, garbage_pids_from_a_foreign_thread_are_safe, .timeout = 60)
{
    garbage_seed = tel_test_seed();
    TT_RUN(NULL, garbage_foreign_main, NULL);
    cr_assert_eq(atomic_load(&garbage_foreign_bad), 0,
                 "%d garbage pids were alive or gave an odd error (seed %"
                 PRIu64 ")",
                 atomic_load(&garbage_foreign_bad), garbage_seed);
}

static _Atomic tel_pid_t self_in_run;

static void save_self_main(void *arg)
{
    (void)arg;
    atomic_store(&self_in_run, tel_self());
    TT_CHECK(tel_is_alive(tel_self()), "main is not alive to itself");
}

Test(pid, no_pid_is_alive_when_no_runtime_runs, .timeout = 30)
{
    cr_assert(!tel_is_alive(1));
    cr_assert(!tel_is_alive(UINT64_MAX));
    TT_RUN(NULL, save_self_main, NULL);
    tel_pid_t old = atomic_load(&self_in_run);
    cr_assert_neq(old, 0);
    cr_assert(!tel_is_alive(old), "main's pid is alive after tel_run");
}
