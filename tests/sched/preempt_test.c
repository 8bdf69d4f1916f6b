/*
 * tests/sched/preempt_test.c: asynchronous preemption (sched/preempt.c).
 *
 * Until the watchdog (sched/sysmon.c) sends them, requests come from a
 * test thread, the "rain": it calls tel__preempt_request on every
 * scheduler every `period` microseconds, for the length of one process's
 * test, whatever the schedulers are doing (running, parked, switching).
 *
 * What would fail without the feature: a process spinning in a pure C
 * loop on the only scheduler never lets the others run, so the tests that
 * need asynchronous preemption to make progress hang and hit their
 * Criterion timeout (a deadlock is a failure, not a hang of CI). Where
 * asynchronous preemption is off (ThreadSanitizer builds), those tests log
 * that they were skipped and pass; the EINTR, configuration and teardown
 * tests run in every build.
 */
#include "common.h"

#include <signal.h>

#include "sched/preempt.h"
#include "sched/scheduler.h"

static const tel_config_t one_sched = {.schedulers = 1,
                                       .stack_size = 64 * 1024};
static const tel_config_t two_sched = {.schedulers = 2,
                                       .stack_size = 64 * 1024};

#define TT_SKIP(msg)                                                          \
    do {                                                                      \
        cr_log_info("skipped: %s", (msg));                                    \
        return;                                                               \
    } while (0)

/* ------------------------------------------------------------------------ */
/* The rain of requests                                                      */
/* ------------------------------------------------------------------------ */

static atomic_bool rain_stop, rain_running;
static atomic_uint_fast64_t rain_sent;
static unsigned rain_period_us;

/* On a blocking-pool thread: tel_run's teardown waits for it to return,
 * and it returns once the handler is uninstalled (or rain_end), so it
 * never reads a scheduler that was freed. */
static intptr_t rain_fn(void *arg)
{
    (void)arg;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)rain_period_us * 1000};
    atomic_store(&rain_running, true);
    while (!atomic_load(&rain_stop) && tel__preempt_active()) {
        unsigned n = tel__sched_count();
        for (unsigned i = 0; i < n; i++)
            if (tel__preempt_request(tel__sched_get(i)))
                atomic_fetch_add(&rain_sent, 1);
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void rain_proc(void *arg)
{
    (void)arg;
    TT_CHECK_RC(tel_blocking(rain_fn, NULL, NULL), 0, "tel_blocking (rain)");
}

/* Inside the test's main process. The rain goes on until rain_end or the
 * end of the run (a spinner that never calls Telar can only be stopped by
 * a signal, as the watchdog will keep sending them). */
static void rain_start(unsigned period_us)
{
    rain_period_us = period_us;
    atomic_store(&rain_stop, false);
    atomic_store(&rain_running, false);
    TT_CHECK_RC(tel_spawn(NULL, rain_proc, NULL), 0, "spawn rain");
    bool ok = false;
    TT_AWAIT(ok, atomic_load(&rain_running), 60000);
    TT_CHECK(ok, "the rain did not start");
}

static void rain_end(void)
{
    atomic_store(&rain_stop, true);
}

/* Signal preemptions so far, over every scheduler. */
static uint64_t n_signal(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < tel__sched_count(); i++)
        n += atomic_load(&tel__sched_get(i)->n_preempt_signal);
    return n;
}

static uint64_t n_watchdog(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < tel__sched_count(); i++)
        n += atomic_load(&tel__sched_get(i)->n_preempt_watchdog);
    return n;
}

static uint64_t n_handled(void)
{
    uint64_t h, d;
    tel__preempt_stats(&h, &d);
    return h;
}

static uint64_t n_deferred(void)
{
    uint64_t h, d;
    tel__preempt_stats(&h, &d);
    return d;
}

/* Whether this build and run interrupt processes; set by the main fns. */
static atomic_bool skipped;

/* ------------------------------------------------------------------------ */
/* Ping-pong                                                                 */
/* ------------------------------------------------------------------------ */

#define TAG_PING 1
#define TAG_PONG 2
#define TAG_DONE 3
#define TAG_SPIN 4
#define TAG_GO 5

static void pong_fn(void *arg)
{
    (void)arg;
    for (;;) {
        tel_msg_t *m = NULL;
        if (tel_recv(&m, TEL_INFINITY) != 0)
            return;
        uint64_t tag = m->tag;
        tel_pid_t from = m->from;
        tel_msg_free(m);
        if (tag != TAG_PING)
            return;
        if (tel_send(from, TAG_PONG, NULL, 0) != 0)
            return;
    }
}

struct ping_arg {
    tel_pid_t pong, report;
    unsigned rounds;
};

static void ping_fn(void *arg)
{
    struct ping_arg *a = arg;
    unsigned done = 0;
    for (; done < a->rounds; done++) {
        if (!TT_CHECK(tel_send(a->pong, TAG_PING, NULL, 0) == 0, "send"))
            break;
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 60000);
        if (!TT_CHECK_RC(rc, 0, "tel_recv (pong)"))
            break;
        tel_msg_free(m);
    }
    TT_CHECK_RC(tel_send(a->pong, TAG_DONE, NULL, 0), 0, "tel_send");
    uint64_t d = done;
    TT_CHECK_RC(tel_send(a->report, TAG_DONE, &d, sizeof d), 0, "tel_send");
}

/* Inside a process: start a ping-pong pair reporting to the caller. */
static void pingpong_start(struct ping_arg *a, unsigned rounds)
{
    tel_pid_t pong = 0;
    TT_CHECK_RC(tel_spawn(&pong, pong_fn, NULL), 0, "spawn pong");
    a->pong = pong;
    a->report = tel_self();
    a->rounds = rounds;
    TT_CHECK_RC(tel_spawn(NULL, ping_fn, a), 0, "spawn ping");
}

static bool match_tag(const tel_msg_t *m, void *ctx)
{
    return m->tag == *(const uint64_t *)ctx;
}

/* Inside a process: wait for a message with tag; its u64 payload. */
static uint64_t await_tag(uint64_t tag, int64_t timeout_ms)
{
    tel_msg_t *m = NULL;
    int rc = tel_recv_match(&m, match_tag, &tag, timeout_ms);
    if (!TT_CHECK_RC(rc, 0, "tel_recv_match"))
        return 0;
    uint64_t v = 0;
    if (m->size == sizeof v)
        memcpy(&v, m->data, sizeof v);
    tel_msg_free(m);
    return v;
}

/* ------------------------------------------------------------------------ */
/* The spinner: a pure C loop whose registers must survive                   */
/* ------------------------------------------------------------------------ */

static atomic_bool spin_stop;

struct spin_state {
    uint64_t x, i;
    double f, g;
};

/* One step; the same function runs the reference. */
static inline void spin_step(struct spin_state *s)
{
    s->x = s->x * 6364136223846793005ull + s->i;
    s->f = s->f * 0.75 + (double)(s->i & 7);
    s->g = s->g * 0.5 + s->f;
    s->i++;
}

static bool spin_check(uint64_t iters, uint64_t x, double f, double g)
{
    struct spin_state r = {.x = 1, .f = 0.5, .g = 1.5};
    while (r.i < iters)
        spin_step(&r);
    return r.x == x && r.f == f && r.g == g;
}

/* Spins until spin_stop, with its state in registers (the empty asm makes
 * the compiler keep x in a general register and f, g in xmm registers at
 * every iteration). Returns the iterations and whether the state matched
 * a reference computation. */
static uint64_t spin_until_stop(bool *ok)
{
    struct spin_state s = {.x = 1, .f = 0.5, .g = 1.5};
    uint64_t x = s.x, i = 0;
    double f = s.f, g = s.g;
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) {
        x = x * 6364136223846793005ull + i;
        f = f * 0.75 + (double)(i & 7);
        g = g * 0.5 + f;
        i++;
        __asm__ volatile("" : "+r"(x), "+r"(i), "+x"(f), "+x"(g));
    }
    *ok = spin_check(i, x, f, g);
    return i;
}

typedef double v4d __attribute__((vector_size(32)));

/* The same with 256-bit vectors (AVX state). */
__attribute__((target("avx"))) static bool spin_avx_until_stop(void)
{
    v4d v = {1.0, 2.0, 3.0, 4.0}, w = {0.5, 0.25, 0.125, 2.0};
    const v4d k = {0.5, 0.5, 0.5, 0.5}, c = {1.0, 3.0, 5.0, 7.0};
    uint64_t i = 0;
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) {
        v = v * k + c;
        w = w * k + v;
        i++;
        __asm__ volatile("" : "+x"(v), "+x"(w), "+r"(i));
    }
    v4d rv = {1.0, 2.0, 3.0, 4.0}, rw = {0.5, 0.25, 0.125, 2.0};
    for (uint64_t j = 0; j < i; j++) {
        rv = rv * k + c;
        rw = rw * k + rv;
    }
    for (int j = 0; j < 4; j++)
        if (rv[j] != v[j] || rw[j] != w[j])
            return false;
    return true;
}

struct spin_arg {
    tel_pid_t report;
    bool avx;
    /* Only with one scheduler: the compiler keeps errno's address (its
     * function is const), so after a resume on another thread the check
     * would read the old thread's errno. */
    bool check_errno;
};

static void spinner_fn(void *arg)
{
    struct spin_arg *a = arg;
    bool ok = false;
    uint64_t n = 1;
    errno = 4242; /* must survive: others run on this thread meanwhile */
    if (a->avx) {
        TT_CHECK(spin_avx_until_stop(), "the spinner's AVX state changed");
    } else {
        n = spin_until_stop(&ok);
        TT_CHECK(ok, "the spinner's registers changed across preemptions "
                     "(%" PRIu64 " iterations)", n);
    }
    if (a->check_errno)
        TT_CHECK(errno == 4242, "errno changed across preemptions: %d",
                 errno);
    uint64_t v = n;
    TT_CHECK_RC(tel_send(a->report, TAG_SPIN, &v, sizeof v), 0, "tel_send");
}

/* ------------------------------------------------------------------------ */
/* 1. A spinner does not stop a ping-pong pair on its scheduler              */
/* ------------------------------------------------------------------------ */

/* Fill every vector register with ones (NaNs as doubles). */
static void clobber_xmm(void)
{
    __asm__ volatile("pcmpeqd %%xmm0, %%xmm0\n\tpcmpeqd %%xmm1, %%xmm1\n\t"
                     "pcmpeqd %%xmm2, %%xmm2\n\tpcmpeqd %%xmm3, %%xmm3\n\t"
                     "pcmpeqd %%xmm4, %%xmm4\n\tpcmpeqd %%xmm5, %%xmm5\n\t"
                     "pcmpeqd %%xmm6, %%xmm6\n\tpcmpeqd %%xmm7, %%xmm7\n\t"
                     "pcmpeqd %%xmm8, %%xmm8\n\tpcmpeqd %%xmm9, %%xmm9\n\t"
                     "pcmpeqd %%xmm10, %%xmm10\n\tpcmpeqd %%xmm11, %%xmm11\n\t"
                     "pcmpeqd %%xmm12, %%xmm12\n\tpcmpeqd %%xmm13, %%xmm13\n\t"
                     "pcmpeqd %%xmm14, %%xmm14\n\tpcmpeqd %%xmm15, %%xmm15"
                     ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
                       "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                       "xmm12", "xmm13", "xmm14", "xmm15");
}

__attribute__((target("avx"))) static void clobber_ymm(void)
{
    __asm__ volatile("vcmpps $15, %%ymm0, %%ymm0, %%ymm0\n\t"
                     "vcmpps $15, %%ymm1, %%ymm1, %%ymm1\n\t"
                     "vcmpps $15, %%ymm2, %%ymm2, %%ymm2\n\t"
                     "vcmpps $15, %%ymm3, %%ymm3, %%ymm3\n\t"
                     "vcmpps $15, %%ymm4, %%ymm4, %%ymm4\n\t"
                     "vcmpps $15, %%ymm5, %%ymm5, %%ymm5\n\t"
                     "vcmpps $15, %%ymm6, %%ymm6, %%ymm6\n\t"
                     "vcmpps $15, %%ymm7, %%ymm7, %%ymm7"
                     ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
                       "xmm6", "xmm7");
}

/* Runs beside the spinner on its thread: sets errno and fills the vector
 * registers whenever it runs, so a preemption that lost either shows. */
static void clobber_fn(void *arg)
{
    bool avx = (bool)(uintptr_t)arg;
    while (!atomic_load(&spin_stop)) {
        errno = 1;
        clobber_xmm();
        if (avx)
            clobber_ymm();
        TT_CHECK_RC(tel_yield(), 0, "tel_yield");
    }
}

static void spin_pp_main(void *arg)
{
    (void)arg;
    if (!tel__preempt_active()) {
        atomic_store(&skipped, true);
        return;
    }
    rain_start(1000);
    static struct spin_arg sa, sa_avx;
    sa.report = sa_avx.report = tel_self();
    sa.avx = false;
    sa_avx.avx = true;
    sa.check_errno = sa_avx.check_errno = true; /* one scheduler */
    bool avx = __builtin_cpu_supports("avx");
    TT_CHECK_RC(tel_spawn(NULL, spinner_fn, &sa), 0, "spawn spinner");
    tel_yield(); /* the spinner runs first, and spins */
    if (avx)
        TT_CHECK_RC(tel_spawn(NULL, spinner_fn, &sa_avx), 0, "spawn spinner");
    TT_CHECK_RC(tel_spawn(NULL, clobber_fn, (void *)(uintptr_t)avx), 0,
                "spawn clobber");
    static struct ping_arg pa;
    unsigned rounds = (unsigned)tel_test_scaled(2000, 200);
    pingpong_start(&pa, rounds);
    uint64_t done = await_tag(TAG_DONE, 60000);
    TT_CHECK(done == rounds, "ping-pong made %" PRIu64 " of %u rounds", done,
             rounds);
    atomic_store(&spin_stop, true);
    uint64_t iters = await_tag(TAG_SPIN, 60000);
    TT_CHECK(iters > 0, "the spinner never ran");
    if (avx)
        (void)await_tag(TAG_SPIN, 60000);
    TT_CHECK(n_signal() > 0, "no process was switched out by a signal");
    rain_end();
}

Test(preempt, spinner_does_not_stop_pingpong_on_its_scheduler, .timeout = 120)
{
    TT_RUN(&one_sched, spin_pp_main, NULL);
    if (atomic_load(&skipped))
        TT_SKIP("asynchronous preemption is off in this build");
}

/* ------------------------------------------------------------------------ */
/* 2. Processes looping on malloc/free: no deadlock                          */
/* ------------------------------------------------------------------------ */

static atomic_uint_fast64_t malloc_loops[2];

static void mallocer_fn(void *arg)
{
    intptr_t k = (intptr_t)arg;
    uint64_t n = 0;
    /* Sizes above glibc's tcache (1032 bytes): each call takes the arena
     * lock, which a process switched out inside malloc would keep. */
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) {
        size_t sz = 2048 + (size_t)((n * 7919) % 16384);
        char *p = malloc(sz);
        if (!p)
            break;
        p[0] = (char)n;
        p[sz - 1] = (char)k;
        free(p);
        n++;
        atomic_store_explicit(&malloc_loops[k], n, memory_order_relaxed);
    }
}

static tel_pid_t malloc_report;

static void mallocer_main_fn(void *arg)
{
    mallocer_fn(arg);
    uint64_t v = atomic_load(&malloc_loops[(intptr_t)arg]);
    TT_CHECK_RC(tel_send(malloc_report, TAG_SPIN, &v, sizeof v), 0, "tel_send");
}

static void malloc_main(void *arg)
{
    (void)arg;
    if (!tel__preempt_active()) {
        atomic_store(&skipped, true);
        return;
    }
    malloc_report = tel_self();
    rain_start(50); /* often enough to land inside malloc */
    for (intptr_t k = 0; k < 2; k++)
        TT_CHECK_RC(tel_spawn(NULL, mallocer_main_fn, (void *)k), 0,
                    "spawn mallocer");
    tel_yield();
    static struct ping_arg pa;
    unsigned rounds = (unsigned)tel_test_scaled(1000, 100);
    pingpong_start(&pa, rounds);
    uint64_t done = await_tag(TAG_DONE, 60000);
    TT_CHECK(done == rounds, "ping-pong made %" PRIu64 " of %u rounds", done,
             rounds);
    /* Keep the rain on until some signals surely found malloc running. */
    bool ok = false;
    TT_AWAIT(ok, n_deferred() >= 20 && n_signal() >= 20, 60000);
    TT_CHECK(ok, "signals: %" PRIu64 " deferred, %" PRIu64 " switched",
             n_deferred(), n_signal());
    atomic_store(&spin_stop, true);
    uint64_t a = await_tag(TAG_SPIN, 60000);
    uint64_t b = await_tag(TAG_SPIN, 60000);
    TT_CHECK(a > 0 && b > 0, "a mallocer made no progress (%" PRIu64
                             ", %" PRIu64 ")", a, b);
    rain_end();
}

Test(preempt, processes_interrupted_inside_malloc_do_not_deadlock,
     .timeout = 120)
{
    TT_RUN(&one_sched, malloc_main, NULL);
    if (atomic_load(&skipped))
        TT_SKIP("asynchronous preemption is off in this build");
}

/* ------------------------------------------------------------------------ */
/* 3. EINTR never escapes the runtime's calls                                */
/* ------------------------------------------------------------------------ */

static intptr_t blocking_fn(void *arg)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 200000};
    nanosleep(&ts, NULL);
    return (intptr_t)arg + 1;
}

static void eintr_worker(void *arg)
{
    tel_pid_t report = (tel_pid_t)(uintptr_t)arg;
    unsigned rounds = (unsigned)tel_test_scaled(150, 30);
    for (unsigned r = 0; r < rounds; r++) {
        TT_CHECK_RC(tel_sleep(1), 0, "tel_sleep");
        tel_msg_t *m = NULL;
        TT_CHECK_RC(tel_recv(&m, 1), TEL_ETIMEDOUT, "tel_recv (timeout)");
        uint64_t tag = 77;
        TT_CHECK_RC(tel_recv_match(&m, match_tag, &tag, 1), TEL_ETIMEDOUT,
                    "tel_recv_match (timeout)");
        uint64_t timer = 0;
        TT_CHECK_RC(tel_send_after(&timer, 1, tel_self(), 77, NULL, 0), 0,
                    "tel_send_after");
        int rc = tel_recv_match(&m, match_tag, &tag, 10000);
        if (TT_CHECK_RC(rc, 0, "tel_recv_match (timer)"))
            tel_msg_free(m);
        intptr_t res = 0;
        TT_CHECK_RC(tel_blocking(blocking_fn, (void *)(intptr_t)r, &res), 0,
                    "tel_blocking");
        TT_CHECK(res == (intptr_t)r + 1, "tel_blocking result %ld",
                 (long)res);
        TT_CHECK_RC(tel_yield(), 0, "tel_yield");
        TT_CHECK_RC(tel_reduce(10), 0, "tel_reduce");
    }
    TT_CHECK_RC(tel_send(report, TAG_DONE, NULL, 0), 0, "tel_send");
}

static void eintr_main(void *arg)
{
    (void)arg;
    bool on = tel__preempt_active();
    if (on)
        rain_start(50);
    /* One worker per scheduler, so one of them is often parked in its
     * futex while signals arrive, and a spinner so that signals also
     * find a task running. */
    static struct spin_arg sa;
    sa.report = tel_self();
    sa.avx = false;
    if (on)
        TT_CHECK_RC(tel_spawn(NULL, spinner_fn, &sa), 0, "spawn spinner");
    for (int k = 0; k < 2; k++)
        TT_CHECK_RC(tel_spawn(NULL, eintr_worker,
                              (void *)(uintptr_t)tel_self()), 0,
                    "spawn worker");
    for (int k = 0; k < 2; k++)
        (void)await_tag(TAG_DONE, 120000);
    atomic_store(&spin_stop, true);
    if (on) {
        (void)await_tag(TAG_SPIN, 60000);
        TT_CHECK(n_handled() > 0, "no signal reached a running process");
        TT_CHECK(atomic_load(&rain_sent) > 0, "no request was sent");
        rain_end();
    }
}

Test(preempt, runtime_calls_never_fail_with_eintr, .timeout = 240)
{
    TT_RUN(&two_sched, eintr_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* 4. tel_preempt_disable holds off preemption                               */
/* ------------------------------------------------------------------------ */

/* Pure C until the handler has seen `more` more signals (a plain read of
 * the counter: no call). */
static void spin_for_signals(uint64_t more)
{
    uint64_t h0, d0, h, d;
    tel__preempt_stats(&h0, &d0);
    do {
        for (volatile int k = 0; k < 1000; k++)
            ;
        tel__preempt_stats(&h, &d);
    } while (h - h0 < more);
}

static void disable_main(void *arg)
{
    (void)arg;
    if (!tel__preempt_active()) {
        atomic_store(&skipped, true);
        return;
    }
    TT_CHECK_RC(tel_preempt_enable(), TEL_EINVAL, "enable without disable");
    rain_start(500);
    TT_CHECK_RC(tel_preempt_disable(), 0, "tel_preempt_disable");
    TT_CHECK_RC(tel_preempt_disable(), 0, "tel_preempt_disable (nested)");
    uint64_t sig0 = n_signal(), wd0 = n_watchdog(), def0 = n_deferred();
    spin_for_signals(20);
    TT_CHECK(n_signal() == sig0,
             "switched out by a signal with preemption disabled");
    TT_CHECK(n_deferred() - def0 >= 20, "the signals were not deferred");
    TT_CHECK_RC(tel_preempt_enable(), 0, "tel_preempt_enable (inner)");
    spin_for_signals(20);
    TT_CHECK(n_signal() == sig0, "switched out while still disabled once");
    /* The last enable yields at once for the requests it held off. */
    TT_CHECK_RC(tel_preempt_enable(), 0, "tel_preempt_enable");
    TT_CHECK(n_watchdog() > wd0, "the held-off preemption did not happen");
    /* Control: enabled again, the same loop is switched out. */
    bool ok = false;
    uint64_t sig1 = n_signal();
    for (int tries = 0; tries < 10000 && !ok; tries++) {
        spin_for_signals(1);
        ok = n_signal() > sig1;
    }
    TT_CHECK(ok, "not switched out with preemption enabled again");
    for (int k = 0; k < 7; k++)
        TT_CHECK_RC(tel_preempt_disable(), 0, "disable, 7 deep");
    TT_CHECK_RC(tel_preempt_disable(), TEL_ELIMIT, "disable, 8 deep");
    for (int k = 0; k < 7; k++)
        TT_CHECK_RC(tel_preempt_enable(), 0, "enable");
    rain_end();
}

Test(preempt, disable_holds_off_preemption_until_enable, .timeout = 120)
{
    cr_assert_eq(tel_preempt_disable(), TEL_ENOTPROC);
    cr_assert_eq(tel_preempt_enable(), TEL_ENOTPROC);
    TT_RUN(&one_sched, disable_main, NULL);
    if (atomic_load(&skipped))
        TT_SKIP("asynchronous preemption is off in this build");
}

/* A match function that spins until signals came, and checks it was not
 * switched out meanwhile (it runs mid-scan inside tel_recv_match). */
static atomic_int match_calls;

static bool slow_match(const tel_msg_t *m, void *ctx)
{
    (void)ctx;
    uint64_t sig0 = n_signal();
    spin_for_signals(5);
    TT_CHECK(n_signal() == sig0, "switched out inside a match function");
    atomic_fetch_add(&match_calls, 1);
    return m->tag == TAG_GO;
}

static void match_main(void *arg)
{
    (void)arg;
    if (!tel__preempt_active()) {
        atomic_store(&skipped, true);
        return;
    }
    rain_start(500);
    for (uint64_t tag = TAG_PING; tag <= TAG_GO; tag += 4)
        TT_CHECK_RC(tel_send(tel_self(), tag, NULL, 0), 0, "tel_send");
    tel_msg_t *m = NULL;
    int rc = tel_recv_match(&m, slow_match, NULL, 60000);
    if (TT_CHECK_RC(rc, 0, "tel_recv_match"))
        tel_msg_free(m);
    TT_CHECK(atomic_load(&match_calls) == 2, "match ran %d times",
             atomic_load(&match_calls));
    rc = tel_recv(&m, 0);
    if (TT_CHECK_RC(rc, 0, "tel_recv (the skipped message)"))
        tel_msg_free(m);
    rain_end();
}

Test(preempt, match_function_is_never_switched_out, .timeout = 120)
{
    TT_RUN(&one_sched, match_main, NULL);
    if (atomic_load(&skipped))
        TT_SKIP("asynchronous preemption is off in this build");
}

/* ------------------------------------------------------------------------ */
/* 5. TEL_CFG_NO_ASYNC_PREEMPT: nothing installed, requests fail             */
/* ------------------------------------------------------------------------ */

static atomic_int user_urg;

static void user_urg_handler(int sig)
{
    (void)sig;
    atomic_fetch_add(&user_urg, 1);
}

static void install_user_urg(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = user_urg_handler;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGURG, &sa, NULL), 0);
}

static bool urg_is_user(void)
{
    struct sigaction cur;
    if (sigaction(SIGURG, NULL, &cur) != 0)
        return false;
    return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == user_urg_handler;
}

static void off_main(void *arg)
{
    (void)arg;
    TT_CHECK(!tel__preempt_active(), "active with TEL_CFG_NO_ASYNC_PREEMPT");
    TT_CHECK(urg_is_user(), "a SIGURG handler was installed");
    for (unsigned i = 0; i < tel__sched_count(); i++)
        TT_CHECK(!tel__preempt_request(tel__sched_get(i)),
                 "a request was sent");
}

Test(preempt, config_flag_off_installs_nothing, .timeout = 60)
{
    install_user_urg();
    tel_config_t c = two_sched;
    c.flags = TEL_CFG_NO_ASYNC_PREEMPT;
    TT_RUN(&c, off_main, NULL);
    c.flags = TEL_CFG_NO_WATCHDOG;
    TT_RUN(&c, off_main, NULL);
    cr_assert(urg_is_user());
}

/* ------------------------------------------------------------------------ */
/* 6. A preempted process can still be killed                                */
/* ------------------------------------------------------------------------ */

static atomic_bool kill_phase;

/* Pure C for long stretches (switched out by signals there), a Telar call
 * between them: a kill takes effect at that call. */
static void killable_fn(void *arg)
{
    (void)arg;
    for (;;) {
        while (!atomic_load_explicit(&kill_phase, memory_order_relaxed))
            ;
        TT_CHECK_RC(tel_reduce(1), 0, "tel_reduce");
    }
}

static void kill_main(void *arg)
{
    (void)arg;
    if (!tel__preempt_active()) {
        atomic_store(&skipped, true);
        return;
    }
    rain_start(500);
    tel_pid_t victim = 0;
    TT_CHECK_RC(tel_spawn(&victim, killable_fn, NULL), 0, "spawn");
    uint64_t ref = 0;
    TT_CHECK_RC(tel_monitor(&ref, victim), 0, "tel_monitor");
    uint64_t sig0 = n_signal();
    bool ok = false;
    /* One scheduler: each time this process runs, the victim is switched
     * out inside its loop, its registers on its stack. */
    TT_AWAIT(ok, n_signal() >= sig0 + 5, 60000);
    TT_CHECK(ok, "the victim was not preempted");
    TT_CHECK_RC(tel_kill(victim, TEL_KILL), 0, "tel_kill");
    TT_CHECK(tel_is_alive(victim), "died before its next Telar call");
    atomic_store(&kill_phase, true);
    tel_msg_t *m = NULL;
    uint64_t tag = TEL_TAG_DOWN;
    int rc = tel_recv_match(&m, match_tag, &tag, 60000);
    if (TT_CHECK_RC(rc, 0, "DOWN")) {
        tel_down_info_t di;
        memcpy(&di, m->data, sizeof di);
        TT_CHECK(di.reason == TEL_KILLED, "reason %s",
                 tel_reason_str(di.reason));
        tel_msg_free(m);
    }
    /* This one and the rain's. */
    TT_CHECK(tel_process_count() == 2, "%u processes alive",
             (unsigned)tel_process_count());
    rain_end();
}

Test(preempt, preempted_process_can_be_killed, .timeout = 120)
{
    TT_RUN(&one_sched, kill_main, NULL);
    if (atomic_load(&skipped))
        TT_SKIP("asynchronous preemption is off in this build");
}

/* ------------------------------------------------------------------------ */
/* 7. Teardown: the previous handler is back; a preempted stack is freed     */
/* ------------------------------------------------------------------------ */

static void forever_fn(void *arg)
{
    (void)arg;
    for (;;)
        __asm__ volatile("");
}

static void teardown_main(void *arg)
{
    (void)arg;
    if (!tel__preempt_active())
        return;
    TT_CHECK(!urg_is_user(), "the handler is not installed");
    /* A SIGURG Telar did not send goes to the previous handler. */
    int before = atomic_load(&user_urg);
    raise(SIGURG);
    TT_CHECK(atomic_load(&user_urg) == before + 1,
             "a foreign SIGURG did not reach the previous handler");
    rain_start(500);
    TT_CHECK_RC(tel_spawn(NULL, forever_fn, NULL), 0, "spawn");
    uint64_t sig0 = n_signal();
    bool ok = false;
    TT_AWAIT(ok, n_signal() >= sig0 + 3, 60000);
    TT_CHECK(ok, "the spinner was not preempted");
    /* Returning ends the run with the spinner switched out mid-loop; the
     * rain goes on until then (the spinner must be switched out again for
     * the schedulers to see the stop). */
}

Test(preempt, teardown_restores_the_handler_and_frees_preempted_stacks,
     .timeout = 120)
{
    install_user_urg();
    TT_RUN(&one_sched, teardown_main, NULL);
    cr_assert(urg_is_user(), "the previous SIGURG handler was not restored");
    int before = atomic_load(&user_urg);
    raise(SIGURG);
    cr_assert_eq(atomic_load(&user_urg), before + 1);
    /* And again: a second run installs and restores it the same way. */
    TT_RUN(&one_sched, teardown_main, NULL);
    cr_assert(urg_is_user());
}

/* ------------------------------------------------------------------------ */
/* Long runners are demoted                                                  */
/* ------------------------------------------------------------------------ */

/*
 * A normal process switched out by the signal is demoted to the low level
 * until it parks (scheduler.c, "Long runners"): a normal process beside 20
 * C loops on one scheduler then takes 8 picks in 9 instead of waiting
 * behind all 20 loops (a watchdog bound each) at every yield. Counted, not
 * timed: over 90 yields of the normal process the loops are switched out
 * by the signal about 90 / 8 times; without demotion, 20 times per yield.
 */
#define DEMOTE_HOGS 20
static atomic_bool demote_stop;
static atomic_int demote_started, demoted_seen, normal_after_park;

static void demote_hog(void *arg)
{
    (void)arg;
    struct task *t = tel__sched_self()->cur; /* reads, no call */
    atomic_fetch_add(&demote_started, 1);
    volatile uint64_t n = 0;
    while (!atomic_load_explicit(&demote_stop, memory_order_relaxed))
        n++;
    if (t->flags & TASK_F_DEMOTED)
        atomic_fetch_add(&demoted_seen, 1);
    (void)tel_sleep(1); /* parks: normal again */
    t = tel__sched_self()->cur;
    if (!(t->flags & TASK_F_DEMOTED) &&
        ((t->flags & TASK_PRIO_MASK) >> TASK_PRIO_SHIFT) == TEL_PRIO_NORMAL)
        atomic_fetch_add(&normal_after_park, 1);
}

static void demote_main(void *arg)
{
    (void)arg;
    if (!tel__preempt_active()) {
        atomic_store(&skipped, true);
        return;
    }
    for (int i = 0; i < DEMOTE_HOGS; i++)
        TT_CHECK_RC(tel_spawn(NULL, demote_hog, NULL), 0, "spawn hog");
    /* Once every hog has started and we run again (one scheduler), each
     * was switched out by the signal: it never yields. */
    bool ok = false;
    TT_AWAIT(ok, atomic_load(&demote_started) == DEMOTE_HOGS, 30000);
    TT_CHECK(ok, "%d of %d hogs started", atomic_load(&demote_started),
             DEMOTE_HOGS);
    uint64_t before = n_signal();
    for (int i = 0; i < 90; i++)
        TT_CHECK_RC(tel_yield(), 0, "tel_yield");
    uint64_t during = n_signal() - before;
    cr_log_info("signal preemptions during 90 yields: %" PRIu64, during);
    TT_CHECK(during < 90, "%" PRIu64 " signal preemptions during 90 yields: "
                          "the normal process waited behind the loops",
             during);
    atomic_store(&demote_stop, true);
    TT_AWAIT(ok, atomic_load(&normal_after_park) == DEMOTE_HOGS, 30000);
    TT_CHECK(ok, "%d of %d hogs normal again after parking",
             atomic_load(&normal_after_park), DEMOTE_HOGS);
    TT_CHECK(atomic_load(&demoted_seen) == DEMOTE_HOGS,
             "%d of %d hogs were demoted", atomic_load(&demoted_seen),
             DEMOTE_HOGS);
}

Test(preempt, long_runners_are_demoted_until_they_park, .timeout = 120)
{
    TT_RUN(&one_sched, demote_main, NULL);
    if (atomic_load(&skipped))
        TT_SKIP("asynchronous preemption is off in this build");
}
