/*
 * tests/core/overflow_test.c: a process that runs off its stack ends alone,
 * with TEL_STACK_OVERFLOW, and the rest of the runtime goes on.
 *
 * White-box: exit reasons are seen through core's test hook
 * (tel__proc_exit_observer; links and monitors come with issue 5), and the
 * stack pool's fallback (no guard markers: mprotect guards, then canaries)
 * is forced with tel__stack_force_fallback so that both paths are covered
 * on any kernel.
 *
 * Sanitizers: AddressSanitizer's own SEGV handler is the one Telar chains
 * to for faults that are not overflows; it lets the runtime install its
 * own (allow_user_segv_handler, on by default). ThreadSanitizer builds run
 * the same tests.
 */
#include "common.h"

#include "alloc/stack.h"
#include "core/process.h"
#include "exit_log.h"

/* ------------------------------------------------------------------------ */
/* Exit reasons, seen by the observer hook                                   */
/* ------------------------------------------------------------------------ */


static void fallback_up(void)
{
    tt_observe_up();
    tel__stack_force_fallback(1000000); /* mprotect guards, canaries */
}

static void canary_up(void)
{
    tt_observe_up();
    tel__stack_force_fallback(0); /* canaries only */
}

static void down(void)
{
    tel__proc_exit_observer = NULL;
    tel__stack_force_fallback(-1);
}

/* ------------------------------------------------------------------------ */
/* The overflowing process                                                   */
/* ------------------------------------------------------------------------ */

/* In the canary-only mode nothing faults: the overflow is seen when the
 * process switches out, so it yields at every level. */
static atomic_bool yield_each_level;
static atomic_uint deepest;

static __attribute__((noinline)) unsigned recurse(unsigned depth,
                                                  volatile char *up)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    frame[255] = up ? up[0] : 0;
    if (depth > atomic_load_explicit(&deepest, memory_order_relaxed))
        atomic_store_explicit(&deepest, depth, memory_order_relaxed);
    if (atomic_load_explicit(&yield_each_level, memory_order_relaxed))
        (void)tel_yield();
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

/* ------------------------------------------------------------------------ */
/* Siblings: a ring of 100 passing a token                                   */
/* ------------------------------------------------------------------------ */

#define TT_SIB_N 100
#define TT_SIB_ROUNDS 3
#include "sib_ring.h"

/* Inside a process: spawn fn, wait for it to die, and check its reason. */
static void spawn_and_expect_overflow(tel_fn fn, int k)
{
    tel_pid_t p;
    int rc = tel_spawn(&p, fn, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn overflowing process"))
        return;
    if (!TT_CHECK(tt_await_dead(p, 20000), "overflow %d: still alive", k))
        return;
    bool seen;
    TT_AWAIT(seen, tt_reason_of(p) != 1, 5000);
    (void)seen; /* the check below says what was seen */
    tel_reason_t r = tt_reason_of(p);
    TT_CHECK(r == TEL_STACK_OVERFLOW,
             "overflow %d: ended with %" PRId64 " (%s), want stack_overflow",
             k, r, tel_reason_str(r));
}

static void one_overflow_among_siblings(void *arg)
{
    int n_overflows = (int)(intptr_t)arg;
    if (!ring_start())
        return;
    check_ring_moves("before");
    for (int k = 0; k < n_overflows; k++) {
        spawn_and_expect_overflow(overflow_fn, k);
        check_ring_moves("after an overflow");
    }
    ring_stop();
}

static void run_siblings(int n_overflows)
{
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, one_overflow_among_siblings, (void *)(intptr_t)n_overflows);
    cr_assert_eq(tt_count_reason(TEL_STACK_OVERFLOW), (unsigned)n_overflows,
                 "%u processes ended with stack_overflow, want %d",
                 tt_count_reason(TEL_STACK_OVERFLOW), n_overflows);
}

Test(overflow, deep_recursion_ends_only_that_process_with_stack_overflow,
     .init = tt_observe_up, .fini = down, .timeout = 60)
{
    run_siblings(1);
}

Test(overflow, the_runtime_survives_several_overflows_in_a_row,
     .init = tt_observe_up, .fini = down, .timeout = 120)
{
    run_siblings(5);
}

Test(overflow, with_mprotect_guards_an_overflow_ends_only_that_process,
     .init = fallback_up, .fini = down, .timeout = 60)
{
    run_siblings(2);
}

Test(overflow, with_canaries_only_an_overflow_ends_at_its_next_switch,
     .init = canary_up, .fini = down, .timeout = 60)
{
    atomic_store(&yield_each_level, true);
    run_siblings(2);
}

/* A process that hits its canary (writes its stack's lowest word) without
 * running deep: the canary check alone catches it at its next switch. */
static void hit_canary_fn(void *arg)
{
    (void)arg;
    struct sched *s = tel__sched_self();
    volatile uint64_t *base = s->cur->stack;
    *base = 0;
    (void)tel_yield();
    TT_FAIL("resumed after hitting the canary");
}

static void canary_main(void *arg)
{
    (void)arg;
    if (!TT_CHECK(tel__stack_canary_on(), "not in the canary mode"))
        return;
    if (!ring_start())
        return;
    spawn_and_expect_overflow(hit_canary_fn, 0);
    check_ring_moves("after the canary");
    ring_stop();
}

Test(overflow, a_hit_canary_ends_the_process_at_its_next_switch,
     .init = canary_up, .fini = down, .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, canary_main, NULL);
}

static void just_overflow_main(void *arg)
{
    (void)arg;
    spawn_and_expect_overflow(overflow_fn, 0);
}

static void hello_main(void *arg)
{
    tel_pid_t p;
    int rc = tel_spawn(&p, tt_return_fn, NULL);
    TT_CHECK_RC(rc, 0, "tel_spawn");
    TT_CHECK(tt_await_dead(p, 10000), "child did not end");
    atomic_store((atomic_bool *)arg, true);
}

Test(overflow, tel_run_works_again_after_a_run_with_an_overflow,
     .init = tt_observe_up, .fini = down, .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, just_overflow_main, NULL);
    atomic_bool ran = false;
    TT_RUN(&cfg, hello_main, &ran);
    cr_assert(atomic_load(&ran), "the second run's main did not run");
    TT_RUN(&cfg, just_overflow_main, NULL);
    cr_assert_eq(tt_count_reason(TEL_STACK_OVERFLOW), 2);
}

static void main_overflows(void *arg)
{
    (void)arg;
    (void)recurse(0, NULL);
}

Test(overflow, an_overflow_in_the_main_process_ends_the_run,
     .init = tt_observe_up, .fini = down, .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, main_overflows, NULL);
    cr_assert_eq(tt_count_reason(TEL_STACK_OVERFLOW), 1);
}

/* A fault in a process that is not an overflow ends it with TEL_CRASHED,
 * not TEL_STACK_OVERFLOW (tests/core/crash_test.c tests crashes). */
static __attribute__((noinline, no_sanitize("undefined"))) void
null_deref_fn(void *arg)
{
    (void)arg;
    volatile int *volatile p = NULL;
    *p = 1;
}

static void null_deref_main(void *arg)
{
    (void)arg;
    tel_pid_t p;
    int rc = tel_spawn(&p, null_deref_fn, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    TT_CHECK(tt_await_dead(p, 10000), "the faulting process is alive");
}

Test(overflow, a_fault_that_is_not_an_overflow_is_a_crash, .init = tt_observe_up,
     .fini = down, .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, null_deref_main, NULL);
    cr_assert_eq(tt_count_reason(TEL_STACK_OVERFLOW), 0);
    cr_assert_eq(tt_count_reason(TEL_CRASHED), 1);
}

/* A big stack size is honoured: the process gets deeper before it ends. */
static void depth_main(void *arg)
{
    (void)arg;
    atomic_store(&deepest, 0);
    spawn_and_expect_overflow(overflow_fn, 0);
}

Test(overflow, the_configured_stack_size_sets_how_deep_a_process_gets,
     .init = tt_observe_up, .fini = down, .timeout = 60)
{
    tel_config_t small = {.schedulers = 1, .stack_size = 64 * 1024};
    TT_RUN(&small, depth_main, NULL);
    unsigned d_small = atomic_load(&deepest);
    tel_config_t big = {.schedulers = 1, .stack_size = 1024 * 1024};
    TT_RUN(&big, depth_main, NULL);
    unsigned d_big = atomic_load(&deepest);
    cr_assert_gt(d_big, 8 * d_small, "depth %u with 1 MiB, %u with 64 KiB",
                 d_big, d_small);
}
