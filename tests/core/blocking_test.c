/*
 * tests/core/blocking_test.c: tel_blocking and its pool. A process that
 * blocks in a pool thread does not hold its scheduler; every caller gets
 * its own result; the pool grows under load, keeps to its bound and
 * shrinks when idle; a caller killed meanwhile leaves nothing behind; and
 * tel_run's end frees queued calls and waits for running ones.
 * Black-box but for the out-of-memory test (alloc/failinj.h).
 */
#include "common.h"

#include "alloc/failinj.h"

static tel_config_t one_sched = {.schedulers = 1};
static tel_config_t two_scheds = {.schedulers = 2};

/* A pool thread: sleep the OS thread for ms milliseconds (EINTR-safe). */
static intptr_t sleep_fn(void *arg)
{
    tt_os_sleep_ms((int64_t)(intptr_t)arg);
    return (intptr_t)arg + 1;
}

/* A gate the test opens to let waiting fns return. */
static atomic_int release;
static atomic_int started;  /* fns that began */
static atomic_int finished; /* fns that returned */

/* A pool thread: wait (polling, 1 ms at a time) until `release`. */
static intptr_t gated_fn(void *arg)
{
    atomic_fetch_add(&started, 1);
    int64_t deadline = tt_now_ms() + 20000;
    while (!atomic_load(&release) && tt_now_ms() < deadline)
        tt_os_sleep_ms(1);
    atomic_fetch_add(&finished, 1);
    return (intptr_t)arg * 2;
}

/* ------------------------------------------------------------------------ */
/* The scheduler stays free                                                  */
/* ------------------------------------------------------------------------ */

static atomic_long rounds;
static atomic_int stop_pair;

static void ponger(void *arg)
{
    (void)arg;
    for (;;) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, TEL_INFINITY), 0, "ponger recv"))
            return;
        uint64_t tag = m->tag;
        tel_pid_t from = m->from;
        tel_msg_free(m);
        if (tag == 1)
            return;
        tt_send_tag(from, 0);
    }
}

static void pinger(void *arg)
{
    tel_pid_t pong = *(tel_pid_t *)arg;
    while (!atomic_load(&stop_pair)) {
        if (tt_send_tag(pong, 0))
            return;
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, TEL_INFINITY), 0, "pinger recv"))
            return;
        tel_msg_free(m);
        atomic_fetch_add(&rounds, 1);
    }
    tt_send_tag(pong, 1);
}

static void pingpong_main(void *arg)
{
    (void)arg;
    static tel_pid_t pong;
    tel_pid_t ping;
    TT_CHECK_RC(tel_spawn(&pong, ponger, NULL), 0, "spawn ponger");
    TT_CHECK_RC(tel_spawn(&ping, pinger, &pong), 0, "spawn pinger");
    long before = atomic_load(&rounds);
    intptr_t r = 0;
    TT_CHECK_RC(tel_blocking(sleep_fn, (void *)(intptr_t)300, &r), 0,
                "tel_blocking");
    long during = atomic_load(&rounds) - before;
    TT_CHECK(r == 301, "result %" PRIdPTR ", want 301", r);
    /* One scheduler: the pair ran only because the blocked process gave
     * its scheduler away. */
    TT_CHECK(during > 0, "no round trips while a process blocked");
    atomic_store(&stop_pair, 1);
    TT_CHECK(tt_await_dead(ping, 10000) && tt_await_dead(pong, 10000),
             "the ping-pong pair did not stop");
}

Test(blocking, scheduler_runs_others_while_a_process_blocks, .timeout = 60)
{
    TT_RUN(&one_sched, pingpong_main, NULL);
    cr_log_info("round trips: %ld", atomic_load(&rounds));
}

/* ------------------------------------------------------------------------ */
/* Many callers, each its own result                                         */
/* ------------------------------------------------------------------------ */

#define N_PARALLEL 50

static intptr_t mix_fn(void *arg)
{
    intptr_t a = (intptr_t)arg;
    tt_os_sleep_ms(20 + a % 7);
    return a * 7919 - 3;
}

struct ask {
    tel_pid_t parent;
    intptr_t arg;
};

static void parallel_child(void *arg)
{
    struct ask a = *(struct ask *)arg;
    intptr_t r = 0;
    int rc = tel_blocking(mix_fn, (void *)a.arg, &r);
    TT_CHECK_RC(rc, 0, "tel_blocking");
    int64_t pair[2] = {(int64_t)a.arg, (int64_t)r};
    TT_CHECK_RC(tel_send(a.parent, 0, pair, sizeof pair), 0, "send result");
}

static void parallel_main(void *arg)
{
    (void)arg;
    static struct ask asks[N_PARALLEL];
    bool seen[N_PARALLEL] = {false};
    for (int i = 0; i < N_PARALLEL; i++) {
        asks[i] = (struct ask){.parent = tel_self(), .arg = i - 20};
        TT_CHECK_RC(tel_spawn(NULL, parallel_child, &asks[i]), 0, "spawn");
    }
    unsigned peak = 0;
    for (int i = 0; i < N_PARALLEL; i++) {
        unsigned n = tel_blocking_threads();
        peak = n > peak ? n : peak;
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 30000), 0, "recv a result"))
            return;
        int64_t pair[2];
        TT_CHECK(m->size == sizeof pair, "result size %zu", m->size);
        memcpy(pair, m->data, sizeof pair);
        tel_msg_free(m);
        int64_t a = pair[0];
        TT_CHECK(a >= -20 && a < N_PARALLEL - 20, "unknown arg %" PRId64, a);
        if (a < -20 || a >= N_PARALLEL - 20)
            continue;
        TT_CHECK(!seen[a + 20], "arg %" PRId64 " answered twice", a);
        seen[a + 20] = true;
        TT_CHECK(pair[1] == a * 7919 - 3, "f(%" PRId64 ") = %" PRId64, a,
                 pair[1]);
    }
    TT_CHECK(peak >= 1 && peak <= TEL_DEFAULT_BLOCKING_THREADS,
             "pool threads %u", peak);
}

Test(blocking, fifty_callers_get_their_own_results, .timeout = 60)
{
    TT_RUN(&two_scheds, parallel_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* The pool grows, keeps its bound, shrinks                                  */
/* ------------------------------------------------------------------------ */

static void gated_child(void *arg)
{
    intptr_t r = 0;
    TT_CHECK_RC(tel_blocking(gated_fn, arg, &r), 0, "tel_blocking");
    TT_CHECK(r == (intptr_t)arg * 2, "result %" PRIdPTR, r);
}

static void grow_shrink_main(void *arg)
{
    (void)arg;
    enum { N = 4 };
    tel_pid_t kids[N];
    for (intptr_t i = 0; i < N; i++)
        TT_CHECK_RC(tel_spawn(&kids[i], gated_child, (void *)(i + 1)), 0,
                    "spawn");
    bool ok;
    TT_AWAIT(ok, atomic_load(&started) == N, 10000);
    TT_CHECK(ok, "only %d of %d fns started", atomic_load(&started), N);
    TT_CHECK(tel_blocking_threads() >= N, "%u pool threads for %d blocked",
             tel_blocking_threads(), N);
    atomic_store(&release, 1);
    for (int i = 0; i < N; i++)
        TT_CHECK(tt_await_dead(kids[i], 10000), "a caller stays blocked");
    TT_CHECK(atomic_load(&finished) == N, "finished %d",
             atomic_load(&finished));
    /* Idle threads exit after about a second. */
    TT_AWAIT(ok, tel_blocking_threads() == 0, 15000);
    TT_CHECK(ok, "%u pool threads stay after idling", tel_blocking_threads());
    /* And the pool grows again. */
    intptr_t r = 0;
    TT_CHECK_RC(tel_blocking(sleep_fn, (void *)(intptr_t)1, &r), 0,
                "tel_blocking after the pool shrank");
    TT_CHECK(r == 2, "result %" PRIdPTR, r);
    TT_CHECK(tel_blocking_threads() >= 1, "no pool thread after a call");
}

Test(blocking, pool_grows_and_shrinks_when_idle, .timeout = 60)
{
    TT_RUN(&two_scheds, grow_shrink_main, NULL);
}

static void bound_main(void *arg)
{
    (void)arg;
    enum { N = 5 };
    tel_pid_t kids[N];
    for (intptr_t i = 0; i < N; i++)
        TT_CHECK_RC(tel_spawn(&kids[i], gated_child, (void *)(i + 10)), 0,
                    "spawn");
    bool ok;
    TT_AWAIT(ok, atomic_load(&started) == 2, 10000);
    TT_CHECK(ok, "started %d, want 2", atomic_load(&started));
    /* Give a third fn time to start if the bound were not kept. */
    (void)tel_sleep(100);
    TT_CHECK(atomic_load(&started) == 2, "started %d with a bound of 2",
             atomic_load(&started));
    TT_CHECK(tel_blocking_threads() == 2, "%u pool threads, bound 2",
             tel_blocking_threads());
    atomic_store(&release, 1);
    for (int i = 0; i < N; i++)
        TT_CHECK(tt_await_dead(kids[i], 10000), "a queued caller stays");
    TT_CHECK(atomic_load(&finished) == N, "finished %d",
             atomic_load(&finished));
    TT_CHECK(tel_blocking_threads() <= 2, "%u pool threads, bound 2",
             tel_blocking_threads());
}

Test(blocking, pool_keeps_its_bound_and_queues, .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 2, .blocking_threads = 2};
    TT_RUN(&cfg, bound_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* A caller killed while its fn runs                                         */
/* ------------------------------------------------------------------------ */

static void killed_main(void *arg)
{
    (void)arg;
    tel_pid_t kid;
    TT_CHECK_RC(tel_spawn(&kid, gated_child, (void *)(intptr_t)5), 0,
                "spawn");
    uint64_t mref = 0;
    TT_CHECK_RC(tel_monitor(&mref, kid), 0, "tel_monitor");
    bool ok;
    TT_AWAIT(ok, atomic_load(&started) == 1, 10000);
    TT_CHECK(ok, "the fn never started");
    TT_CHECK_RC(tel_kill(kid, TEL_KILL), 0, "tel_kill");
    tel_msg_t *m = NULL;
    if (TT_CHECK_RC(tel_recv(&m, 10000), 0, "recv the DOWN")) {
        TT_CHECK(m->tag == TEL_TAG_DOWN, "tag %" PRIu64, m->tag);
        tel_down_info_t d;
        memcpy(&d, m->data, sizeof d);
        TT_CHECK(d.reason == TEL_KILLED, "reason %s",
                 tel_reason_str(d.reason));
        tel_msg_free(m);
    }
    /* The process is gone; its fn still runs, and finishes when let go. */
    TT_CHECK(!tel_is_alive(kid), "the killed caller lives");
    TT_CHECK(atomic_load(&finished) == 0, "the fn was cut short");
    atomic_store(&release, 1);
    TT_AWAIT(ok, atomic_load(&finished) == 1, 10000);
    TT_CHECK(ok, "the fn of a killed caller never finished");
    /* Its result went nowhere: nothing reached us. */
    (void)tel_sleep(20);
    TT_CHECK(tel_recv(&m, 0) == TEL_ETIMEDOUT, "a stray message came");
    /* A later call works. */
    intptr_t r = 0;
    TT_CHECK_RC(tel_blocking(gated_fn, (void *)(intptr_t)21, &r), 0,
                "tel_blocking after a killed caller");
    TT_CHECK(r == 42, "result %" PRIdPTR, r);
}

Test(blocking, killed_caller_fn_completes_nothing_leaks, .timeout = 60)
{
    TT_RUN(&one_sched, killed_main, NULL);
    cr_assert_eq(atomic_load(&finished), 2);
}

/* ------------------------------------------------------------------------ */
/* A fn blocked in read()                                                    */
/* ------------------------------------------------------------------------ */

static int pipe_fds[2];

static intptr_t read_fn(void *arg)
{
    (void)arg;
    char buf[16];
    ssize_t n;
    while ((n = read(pipe_fds[0], buf, sizeof buf)) < 0 && errno == EINTR)
        ;
    return n == 1 ? (intptr_t)(unsigned char)buf[0] : -1 - (intptr_t)n;
}

static void reader(void *arg)
{
    tel_pid_t parent = *(tel_pid_t *)arg;
    intptr_t r = 0;
    TT_CHECK_RC(tel_blocking(read_fn, NULL, &r), 0, "tel_blocking(read)");
    tt_send_u64(parent, 7, (uint64_t)r);
}

static void pipe_main(void *arg)
{
    (void)arg;
    static tel_pid_t self;
    self = tel_self();
    TT_CHECK_RC(tel_spawn(NULL, reader, &self), 0, "spawn reader");
    /* One scheduler: we run while the reader waits in read(). */
    tel_msg_t *m = NULL;
    TT_CHECK(tel_recv(&m, 100) == TEL_ETIMEDOUT, "the reader did not wait");
    if (m)
        tel_msg_free(m);
    char c = 'z';
    ssize_t n;
    while ((n = write(pipe_fds[1], &c, 1)) < 0 && errno == EINTR)
        ;
    TT_CHECK(n == 1, "write: %zd", n);
    if (TT_CHECK_RC(tel_recv(&m, 10000), 0, "recv the reader's result")) {
        TT_CHECK(tt_msg_u64(m) == (uint64_t)'z', "read %" PRIu64,
                 tt_msg_u64(m));
        tel_msg_free(m);
    }
}

Test(blocking, fn_blocked_in_read_until_the_test_writes, .timeout = 60)
{
    cr_assert_eq(pipe(pipe_fds), 0);
    TT_RUN(&one_sched, pipe_main, NULL);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

/* ------------------------------------------------------------------------ */
/* Bad input                                                                 */
/* ------------------------------------------------------------------------ */

static atomic_int inner_rc;

static intptr_t nested_fn(void *arg)
{
    (void)arg;
    atomic_store(&inner_rc, tel_blocking(sleep_fn, NULL, NULL));
    return 0;
}

static void bad_input_main(void *arg)
{
    (void)arg;
    intptr_t r = 123;
    TT_CHECK_RC(tel_blocking(NULL, NULL, &r), TEL_EINVAL, "NULL fn");
    TT_CHECK(r == 123, "result_out written on TEL_EINVAL");
    /* result_out may be NULL. */
    TT_CHECK_RC(tel_blocking(sleep_fn, NULL, NULL), 0, "NULL result_out");
    /* A pool thread is no process. */
    atomic_store(&inner_rc, 1);
    TT_CHECK_RC(tel_blocking(nested_fn, NULL, NULL), 0, "nested");
    TT_CHECK_RC(atomic_load(&inner_rc), TEL_ENOTPROC,
                "tel_blocking on a pool thread");
}

Test(blocking, bad_input, .timeout = 60)
{
    cr_assert_eq(tel_blocking_threads(), 0u);
    int rc = tel_blocking(sleep_fn, NULL, NULL);
    cr_assert_eq(rc, TEL_ENOTPROC, "before the run: %s", tel_errname(rc));
    TT_RUN(&one_sched, bad_input_main, NULL);
    rc = tel_blocking(sleep_fn, NULL, NULL);
    cr_assert(rc == TEL_ENOTPROC || rc == TEL_ESHUTDOWN,
              "after the run: %s", tel_errname(rc));
    cr_assert_eq(tel_blocking_threads(), 0u);
    tel_config_t cfg = {.blocking_threads = TEL_MAX_BLOCKING_THREADS + 1};
    rc = tel_run(&cfg, tt_return_fn, NULL);
    cr_assert_eq(rc, TEL_EINVAL, "blocking_threads too big: %s",
                 tel_errname(rc));
}

/* ------------------------------------------------------------------------ */
/* tel_run's end                                                             */
/* ------------------------------------------------------------------------ */

static void queued_main(void *arg)
{
    (void)arg;
    /* One pool thread: the first call runs, the other two queue. */
    for (intptr_t i = 0; i < 3; i++)
        TT_CHECK_RC(tel_spawn(NULL, gated_child, (void *)i), 0, "spawn");
    bool ok;
    TT_AWAIT(ok, atomic_load(&started) == 1, 10000);
    TT_CHECK(ok, "the first fn never started");
    /* Return: the run ends with one fn running and two calls queued. A
     * helper thread lets the running fn go once the run is ending. */
}

static void *release_later(void *arg)
{
    (void)arg;
    while (atomic_load(&started) == 0)
        tt_os_sleep_ms(1);
    /* The run is live; tel_scheduler_count() turns 0 when its gate closes,
     * just before the pool stops. */
    while (tel_scheduler_count() != 0)
        tt_os_sleep_ms(1);
    tt_os_sleep_ms(50);
    atomic_store(&release, 1);
    return NULL;
}

Test(blocking, run_end_frees_queued_calls_and_waits_for_running, .timeout = 60)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, release_later, NULL), 0);
    tel_config_t cfg = {.schedulers = 1, .blocking_threads = 1};
    TT_RUN(&cfg, queued_main, NULL);
    /* tel_run waited for the running fn; the queued ones never started. */
    cr_assert_eq(atomic_load(&finished), 1);
    cr_assert_eq(atomic_load(&started), 1);
    cr_assert_eq(tel_blocking_threads(), 0u);
    pthread_join(t, NULL);
}

/* ------------------------------------------------------------------------ */
/* Out of memory                                                             */
/* ------------------------------------------------------------------------ */

#ifdef TEL_FAILINJ
static atomic_int calls;

static intptr_t count_fn(void *arg)
{
    atomic_fetch_add(&calls, 1);
    return (intptr_t)arg - 1;
}

static void nomem_main(void *arg)
{
    (void)arg;
    /* The pool is empty: a call allocates the caller's ext, the job, the
     * reply and a thread's record; each failure must be TEL_ENOMEM with fn
     * never run and nothing kept (ASan checks the leaks). */
    TT_CHECK(tel_blocking_threads() == 0, "the pool starts with %u threads",
             tel_blocking_threads());
    unsigned failures = 0;
    for (long n = 0;; n++) {
        intptr_t r = 0;
        tel__failinj_arm(n);
        int rc = tel_blocking(count_fn, (void *)(intptr_t)100, &r);
        tel__failinj_arm(-1);
        if (rc == TEL_ENOMEM) {
            failures++;
            TT_CHECK(atomic_load(&calls) == 0, "fn ran on a failed call");
            TT_CHECK(tel_blocking_threads() == 0,
                     "%u pool threads after a failed call",
                     tel_blocking_threads());
            continue;
        }
        TT_CHECK_RC(rc, 0, "tel_blocking");
        TT_CHECK(r == 99, "result %" PRIdPTR, r);
        TT_CHECK(atomic_load(&calls) == 1, "fn ran %d times",
                 atomic_load(&calls));
        break;
    }
    /* The job, its reply, the first pool thread's record (and the ext, if
     * the caller had none yet). */
    TT_CHECK(failures >= 3, "only %u allocations failed", failures);
}

Test(blocking, out_of_memory_is_enomem_and_runs_nothing, .timeout = 60)
{
    TT_RUN(&one_sched, nomem_main, NULL);
}
#endif
