/*
 * tests/tsan/criterion/criterion.h: a small stand-in for Criterion, used
 * only by the ThreadSanitizer build.
 *
 * Why: Criterion's runner cannot start under TSan. Its sandbox (BoxFort)
 * maps a shared arena at a random fixed address in 0x2000'0000'0000 ..
 * 0x7f00'0000'0000, which TSan's memory layout reserves for shadow memory,
 * so criterion_initialize aborts with "Could not initialize inheritable
 * arena" (Snaipe/Criterion#274). Without this header the TSan build could
 * not run the unit tests at all, and a race in a path only a unit test
 * reaches would go unseen.
 *
 * What it keeps of Criterion's contract (everything tests/ uses, nothing
 * more): Test(suite, name, .init, .fini, .timeout, .signal, .disabled);
 * the cr_assert* macros we use, with an optional printf-style message; cr_log_info; each
 * test in its own forked child, so statics start zeroed and a crash fails
 * one test, not the run; a per-test timeout; --jobs N children at a time;
 * --filter SUBSTRING on "suite/name"; exit status 0 only if every test
 * passed. A failed assertion ends the child at once (Criterion longjmps to
 * the test's frame and also skips the rest of the test).
 *
 * Timeouts are multiplied by TEL_TSAN_TIMEOUT_FACTOR (default 5): TSan
 * slows this code 5 to 15 times, and the sizes are already scaled down by
 * TEL_TEST_SCALE.
 *
 * The rest of the builds use the real Criterion; CMakeLists.txt puts this
 * directory first on the include path of test programs in TSan builds only.
 */
#ifndef TEL_TSAN_CRITERION_H
#define TEL_TSAN_CRITERION_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct criterion_test_extra_data {
    void (*init)(void);
    void (*fini)(void);
    double timeout; /* seconds; 0: none */
    int signal;     /* the test passes only if it dies of this signal */
    bool disabled;  /* skipped */
};

struct tt_shim_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    struct criterion_test_extra_data extra;
};

enum { TT_SHIM_MAX_TESTS = 1024 };
static struct tt_shim_test tt_shim_tests[TT_SHIM_MAX_TESTS];
static int tt_shim_ntests;

static inline void tt_shim_register(const char *suite, const char *name,
                                    void (*fn)(void),
                                    struct criterion_test_extra_data extra)
{
    if (tt_shim_ntests == TT_SHIM_MAX_TESTS) {
        fprintf(stderr, "criterion shim: more than %d tests\n",
                TT_SHIM_MAX_TESTS);
        abort();
    }
    tt_shim_tests[tt_shim_ntests++] =
        (struct tt_shim_test){suite, name, fn, extra};
}

#define Test(suite, name, ...)                                                 \
    static void suite##_##name##_impl(void);                                   \
    __attribute__((constructor)) static void suite##_##name##_register(void)   \
    {                                                                          \
        struct criterion_test_extra_data extra = {__VA_ARGS__};                \
        tt_shim_register(#suite, #name, suite##_##name##_impl, extra);         \
    }                                                                          \
    static void suite##_##name##_impl(void)

/* Ends the test as failed; the message is optional and printf-style. */
static inline __attribute__((noreturn, format(printf, 4, 5))) void
tt_shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: Assertion failed: %s\n", file, line, expr);
    if (fmt[1] != '\0') { /* fmt is "-" followed by the message, if any */
        va_list ap;
        va_start(ap, fmt);
        fputs("  ", stderr);
        vfprintf(stderr, fmt + 1, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    fflush(stderr);
    _exit(3);
}

/* "-" __VA_ARGS__: the message, if any, is a string literal; the "-" keeps
 * the format non-empty for -Wformat-zero-length. */
#define TT_SHIM_CHECK(cond, expr, ...)                                         \
    do {                                                                       \
        if (!(cond))                                                           \
            tt_shim_fail(__FILE__, __LINE__, expr, "-" __VA_ARGS__);            \
    } while (0)

#define cr_assert(c, ...) TT_SHIM_CHECK((c), #c, __VA_ARGS__)
#define cr_assert_not(c, ...) TT_SHIM_CHECK(!(c), "!(" #c ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...) TT_SHIM_CHECK((a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) TT_SHIM_CHECK((a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) TT_SHIM_CHECK((a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) TT_SHIM_CHECK((a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) TT_SHIM_CHECK((a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) TT_SHIM_CHECK((a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(a, ...) TT_SHIM_CHECK((a) == NULL, #a " == NULL", __VA_ARGS__)
#define cr_assert_not_null(a, ...) TT_SHIM_CHECK((a) != NULL, #a " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)                                            \
    TT_SHIM_CHECK(strcmp((a), (b)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...)                                           \
    TT_SHIM_CHECK(strcmp((a), (b)) != 0, #a " differs from " #b, __VA_ARGS__)
#define cr_assert_arr_eq(a, b, size, ...)                                      \
    TT_SHIM_CHECK(memcmp((a), (b), (size)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_assert_fail(...) tt_shim_fail(__FILE__, __LINE__, "cr_assert_fail", "-" __VA_ARGS__)

#define cr_log_info(...)                                                       \
    (fprintf(stderr, "[----] " __VA_ARGS__), fputc('\n', stderr))

/* ------------------------------------------------------------------------ */
/* The runner                                                                */
/* ------------------------------------------------------------------------ */

static inline double tt_shim_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct tt_shim_child {
    pid_t pid;
    int test;
    double started, deadline;
    bool timed_out;
};

/* Runs test i in this (child) process; never returns. */
static inline __attribute__((noreturn)) void tt_shim_child_run(int i)
{
    const struct tt_shim_test *t = &tt_shim_tests[i];
    if (t->extra.init)
        t->extra.init();
    t->fn();
    if (t->extra.fini)
        t->extra.fini();
    fflush(NULL);
    _exit(0);
}

/* Reports a finished child; returns whether the test passed. */
static inline bool tt_shim_report(const struct tt_shim_child *c, int status)
{
    const struct tt_shim_test *t = &tt_shim_tests[c->test];
    bool pass;
    char why[96] = "";
    if (c->timed_out) {
        pass = false;
        snprintf(why, sizeof why, " (timed out)");
    } else if (t->extra.signal != 0) {
        pass = WIFSIGNALED(status) && WTERMSIG(status) == t->extra.signal;
        if (!pass)
            snprintf(why, sizeof why, " (expected signal %d)", t->extra.signal);
    } else {
        pass = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!pass && WIFSIGNALED(status))
            snprintf(why, sizeof why, " (crashed: signal %d)", WTERMSIG(status));
    }
    fprintf(stderr, "[%s] %s::%s: %.2fs%s\n", pass ? "PASS" : "FAIL",
            t->suite, t->name, tt_shim_now() - c->started, why);
    return pass;
}

int main(int argc, char **argv)
{
    int jobs = 1;
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
            jobs = atoi(argv[++i]);
        else if (strncmp(argv[i], "--jobs=", 7) == 0 || strncmp(argv[i], "-j", 2) == 0)
            jobs = atoi(strchr(argv[i], '=') ? strchr(argv[i], '=') + 1 : argv[i] + 2);
        else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
            filter = argv[++i];
        else if (strncmp(argv[i], "--filter=", 9) == 0)
            filter = argv[i] + 9;
        else {
            fprintf(stderr, "usage: %s [--jobs N] [--filter SUBSTRING]\n", argv[0]);
            return 2;
        }
    }
    if (jobs < 1)
        jobs = 1;
    if (jobs > 64)
        jobs = 64;
    double factor = 5.0;
    const char *f = getenv("TEL_TSAN_TIMEOUT_FACTOR");
    if (f != NULL && atof(f) > 0)
        factor = atof(f);

    struct tt_shim_child running[64];
    int nrunning = 0, next = 0, ran = 0, failed = 0;
    fflush(NULL);
    for (;;) {
        while (nrunning < jobs && next < tt_shim_ntests) {
            int i = next++;
            char full[256];
            snprintf(full, sizeof full, "%s/%s", tt_shim_tests[i].suite,
                     tt_shim_tests[i].name);
            if (filter != NULL && strstr(full, filter) == NULL)
                continue;
            if (tt_shim_tests[i].extra.disabled) {
                fprintf(stderr, "[SKIP] %s::%s: disabled\n",
                        tt_shim_tests[i].suite, tt_shim_tests[i].name);
                continue;
            }
            pid_t pid = fork();
            if (pid < 0) {
                perror("criterion shim: fork");
                return 1;
            }
            if (pid == 0)
                tt_shim_child_run(i);
            double now = tt_shim_now(), limit = tt_shim_tests[i].extra.timeout;
            running[nrunning++] = (struct tt_shim_child){
                .pid = pid, .test = i, .started = now,
                .deadline = limit > 0 ? now + limit * factor : 0};
            ran++;
        }
        if (nrunning == 0)
            break;
        int status;
        pid_t done = waitpid(-1, &status, WNOHANG);
        if (done < 0 && errno != EINTR) {
            perror("criterion shim: waitpid");
            return 1;
        }
        if (done <= 0) {
            double now = tt_shim_now();
            for (int k = 0; k < nrunning; k++) {
                if (running[k].deadline > 0 && now > running[k].deadline &&
                    !running[k].timed_out) {
                    running[k].timed_out = true;
                    kill(running[k].pid, SIGKILL);
                }
            }
            usleep(5000);
            continue;
        }
        for (int k = 0; k < nrunning; k++) {
            if (running[k].pid == done) {
                failed += !tt_shim_report(&running[k], status);
                running[k] = running[--nrunning];
                break;
            }
        }
    }
    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d\n",
            ran, ran - failed, failed);
    return failed == 0 ? 0 : 1;
}

#endif /* TEL_TSAN_CRITERION_H */
