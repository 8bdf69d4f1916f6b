/*
 * tests/common.h: helpers shared by the black-box Criterion tests.
 *
 * Owns: the test scale (TEL_TEST_SCALE), the seed (TEL_TEST_SEED), a small
 * seeded random generator, a monotonic clock, and a way to record failed
 * checks from inside processes.
 *
 * Why checks are recorded and not asserted: cr_assert unwinds with longjmp
 * to the test's own frame, which is only safe on the thread and stack the
 * test started on. Code running as a Telar process runs on a process stack,
 * often on another scheduler thread, so it records the first failure with
 * TT_CHECK and the test asserts on it after tel_run returns (TT_RUN does
 * that).
 *
 * Each test file is its own executable and includes this header once, first,
 * so the statics below are per test program, and Criterion runs each test in
 * its own process, so they start zeroed in every test.
 */
#ifndef TEL_TESTS_COMMON_H
#define TEL_TESTS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "telar.h"

/* ------------------------------------------------------------------------ */
/* Scale and seed                                                            */
/* ------------------------------------------------------------------------ */

/*
 * tel_test_scale: the factor heavy tests multiply their sizes by, read from
 * TEL_TEST_SCALE (default 1.0). Sanitizer builds set 0.05 to 0.2.
 */
static inline double tel_test_scale(void)
{
    const char *s = getenv("TEL_TEST_SCALE");
    if (s == NULL || *s == '\0')
        return 1.0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !(v > 0.0) || v > 1000.0)
        return 1.0;
    return v;
}

/*
 * tel_test_scaled: n times the scale, but never below floor_n, so a scaled
 * down test still means something.
 */
static inline size_t tel_test_scaled(size_t n, size_t floor_n)
{
    double v = (double)n * tel_test_scale();
    size_t r = (size_t)v;
    return r < floor_n ? floor_n : r;
}

/*
 * tel_test_live_cap: n, but at most TEL_TEST_MAX_LIVE if that is set. For
 * tests whose processes are alive at the same time: the TSan build gives
 * each process a TSan fiber, and TSan keeps at most 8128 threads and fibers
 * alive (it dies beyond that), so tools/test sets TEL_TEST_MAX_LIVE there.
 */
static inline size_t tel_test_live_cap(size_t n)
{
    const char *s = getenv("TEL_TEST_MAX_LIVE");
    if (s == NULL || *s == '\0')
        return n;
    char *end = NULL;
    unsigned long long cap = strtoull(s, &end, 10);
    if (end == s || cap == 0)
        return n;
    return n < cap ? n : (size_t)cap;
}

/*
 * tel_test_seed: the seed for a randomised test: TEL_TEST_SEED if set, else
 * one made from the clock and pid. It is logged; tests also put it in their
 * failure messages so a failing run can be replayed.
 * Call it from the test's own thread (not from a process).
 */
static inline uint64_t tel_test_seed(void)
{
    const char *s = getenv("TEL_TEST_SEED");
    uint64_t seed;
    if (s != NULL && *s != '\0') {
        seed = strtoull(s, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
               ((uint64_t)getpid() << 40);
    }
    cr_log_info("TEL_TEST_SEED=%" PRIu64, seed);
    return seed;
}

/* A splitmix64 generator: small, seedable, good enough for test plans. */
struct tt_rng {
    uint64_t s;
};

static inline uint64_t tt_rng_next(struct tt_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A value in [0, n); n > 0. */
static inline uint64_t tt_rng_below(struct tt_rng *r, uint64_t n)
{
    return tt_rng_next(r) % n;
}

/* ------------------------------------------------------------------------ */
/* Time                                                                      */
/* ------------------------------------------------------------------------ */

static inline int64_t tt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t tt_now_ms(void)
{
    return tt_now_ns() / 1000000;
}

/* Sleep the calling OS thread (not a process) for ms milliseconds. */
static inline void tt_os_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------------ */
/* Checks from inside processes                                              */
/* ------------------------------------------------------------------------ */

static atomic_int tt_nfail_;
static atomic_int tt_msg_taken_;
static atomic_int tt_msg_ready_;
static char tt_fail_msg_[1024];

/*
 * tt_fail_: record a failed check. Only the first failure keeps its text;
 * every failure is counted. Safe from any thread and any process.
 */
static inline void tt_fail_(const char *file, int line, const char *fmt, ...)
{
    atomic_fetch_add(&tt_nfail_, 1);
    if (atomic_exchange(&tt_msg_taken_, 1) != 0)
        return;
    int n = snprintf(tt_fail_msg_, sizeof tt_fail_msg_, "%s:%d: ", file, line);
    if (n < 0 || (size_t)n >= sizeof tt_fail_msg_)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tt_fail_msg_ + n, sizeof tt_fail_msg_ - (size_t)n, fmt, ap);
    va_end(ap);
    /* release: pairs with the acquire in tt_failures(). */
    atomic_store_explicit(&tt_msg_ready_, 1, memory_order_release);
}

/*
 * TT_CHECK(cond, fmt, ...): inside a process or a helper thread, record a
 * failure when cond is false. Evaluates to cond, so a caller may bail out:
 * `if (!TT_CHECK(rc == 0, "send: %d", rc)) return;`.
 */
#define TT_CHECK(cond, ...)                                                   \
    ((cond) ? true : (tt_fail_(__FILE__, __LINE__, __VA_ARGS__), false))

/* Record a failure unconditionally. */
#define TT_FAIL(...) tt_fail_(__FILE__, __LINE__, __VA_ARGS__)

/* A check that a Telar call returned `want`; names both codes on failure. */
#define TT_CHECK_RC(rc, want, what)                                           \
    TT_CHECK((rc) == (want), "%s returned %d (%s), want %d (%s)", (what),     \
             (int)(rc), tel_errname((int)(rc)), (int)(want),                  \
             tel_errname((int)(want)))

static inline int tt_failures(void)
{
    return atomic_load(&tt_nfail_);
}

static inline const char *tt_first_failure(void)
{
    if (atomic_load_explicit(&tt_msg_ready_, memory_order_acquire) == 0)
        return "(none recorded)";
    return tt_fail_msg_;
}

/* On the test's thread: fail the test if any TT_CHECK failed. */
#define TT_ASSERT_NO_FAILURES()                                               \
    cr_assert_eq(tt_failures(), 0,                                            \
                 "%d check(s) failed inside the runtime; first: %s",          \
                 tt_failures(), tt_first_failure())

/*
 * TT_LEAK_CHECK: in AddressSanitizer builds, fail the test if memory nothing
 * points to any more was leaked so far (tel_run promises to free every byte
 * it allocated). LeakSanitizer's report at a worker's exit does not fail a
 * Criterion test, so the check is made here. A no-op in other builds.
 */
#if defined(__SANITIZE_ADDRESS__)
#define TT_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TT_HAVE_LSAN 1
#endif
#endif

#ifdef TT_HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#define TT_LEAK_CHECK()                                                       \
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,                       \
                 "memory leaked (see the LeakSanitizer report on stderr)")
#else
#define TT_LEAK_CHECK() ((void)0)
#endif

/*
 * On the test's thread: run the runtime, expect 0 and no failed checks, and
 * (in ASan builds) no leaks.
 */
#define TT_RUN(cfg, fn, arg)                                                  \
    do {                                                                      \
        int tt_rc_ = tel_run((cfg), (fn), (arg));                             \
        cr_assert_eq(tt_rc_, 0, "tel_run returned %d (%s)", tt_rc_,           \
                     tel_errname(tt_rc_));                                    \
        TT_ASSERT_NO_FAILURES();                                              \
        TT_LEAK_CHECK();                                                      \
    } while (0)

/*
 * tt_peek_ptr: a white-box test's look at a pointer another thread writes
 * without synchronising with the test (a process's stack, in its block).
 * The test only polls it until it holds a value, so a stale read is
 * harmless; ThreadSanitizer is told to ignore this one read.
 */
#if defined(__SANITIZE_THREAD__)
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
static inline void *tt_peek_ptr(void *const *p)
{
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    void *v = *(void *const volatile *)p;
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
    return v;
}
static inline uint32_t tt_peek_u32(const uint32_t *p)
{
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    uint32_t v = *(const volatile uint32_t *)p;
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
    return v;
}
#else
static inline void *tt_peek_ptr(void *const *p)
{
    return *(void *const volatile *)p;
}
static inline uint32_t tt_peek_u32(const uint32_t *p)
{
    return *(const volatile uint32_t *)p;
}
#endif

/* ------------------------------------------------------------------------ */
/* Waiting inside a process                                                  */
/* ------------------------------------------------------------------------ */

/*
 * TT_AWAIT(ok, cond, timeout_ms): inside a process, yield (and after a while
 * sleep 1 ms at a time) until cond holds; ok becomes whether it did before
 * timeout_ms passed. Used to wait for atomics that other processes set.
 */
#define TT_AWAIT(ok, cond, timeout_ms)                                        \
    do {                                                                      \
        int64_t tt_deadline_ = tt_now_ms() + (int64_t)(timeout_ms);           \
        unsigned tt_spins_ = 0;                                               \
        (ok) = false;                                                         \
        for (;;) {                                                            \
            if (cond) {                                                       \
                (ok) = true;                                                  \
                break;                                                        \
            }                                                                 \
            if (tt_now_ms() > tt_deadline_)                                   \
                break;                                                        \
            if (++tt_spins_ < 2000)                                           \
                (void)tel_yield();                                            \
            else                                                              \
                (void)tel_sleep(1);                                           \
        }                                                                     \
    } while (0)

/* Inside a process: wait until pid is no longer alive; false on timeout. */
static inline bool tt_await_dead(tel_pid_t pid, int64_t timeout_ms)
{
    bool ok;
    TT_AWAIT(ok, !tel_is_alive(pid), timeout_ms);
    return ok;
}

/* Inside a process: wait until tel_process_count() == n; false on timeout. */
static inline bool tt_await_count(uint32_t n, int64_t timeout_ms)
{
    bool ok;
    TT_AWAIT(ok, tel_process_count() == n, timeout_ms);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Common process bodies                                                     */
/* ------------------------------------------------------------------------ */

/* A process that waits for one message, frees it and returns. */
static inline void tt_wait_one_fn(void *arg)
{
    (void)arg;
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, TEL_INFINITY);
    TT_CHECK_RC(rc, 0, "tel_recv in tt_wait_one_fn");
    tel_msg_free(m);
}

/* A process that answers each message with an empty one of the same tag
 * to its sender, until a message with tag 0 (a ping-pong partner). */
static inline void tt_echo_fn(void *arg)
{
    (void)arg;
    for (;;) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, TEL_INFINITY), 0,
                         "tt_echo_fn: tel_recv"))
            return;
        tel_pid_t from = m->from;
        uint64_t tag = m->tag;
        tel_msg_free(m);
        if (tag == 0)
            return;
        if (!TT_CHECK_RC(tel_send(from, tag, NULL, 0), 0,
                         "tt_echo_fn: tel_send"))
            return;
    }
}

/* A process that returns at once. */
static inline void tt_return_fn(void *arg)
{
    (void)arg;
}

/* Inside a process: send an empty message and record a failure if it fails. */
static inline int tt_send_tag(tel_pid_t to, uint64_t tag)
{
    int rc = tel_send(to, tag, NULL, 0);
    TT_CHECK_RC(rc, 0, "tel_send");
    return rc;
}

/* Inside a process: send one uint64_t and record a failure if it fails. */
static inline int tt_send_u64(tel_pid_t to, uint64_t tag, uint64_t v)
{
    int rc = tel_send(to, tag, &v, sizeof v);
    TT_CHECK_RC(rc, 0, "tel_send");
    return rc;
}

/* The uint64_t a message carries (0 and a failed check if it has none). */
static inline uint64_t tt_msg_u64(const tel_msg_t *m)
{
    uint64_t v = 0;
    if (TT_CHECK(m != NULL && m->size == sizeof v && m->data != NULL,
                 "message does not carry a uint64_t (size %zu)",
                 m ? m->size : (size_t)0))
        memcpy(&v, m->data, sizeof v);
    return v;
}

#endif /* TEL_TESTS_COMMON_H */
