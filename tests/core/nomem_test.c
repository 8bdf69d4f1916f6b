/*
 * tests/core/nomem_test.c: every out-of-memory (TEL_ENOMEM) path of the
 * public API, by fault injection. Built only with TEL_FAILINJ.
 *
 * The pattern (STYLE.md section 6): for n = 0, 1, 2, ... arm the injector so
 * the n-th runtime allocation from now fails, make the call, disarm. A call
 * that returned TEL_ENOMEM must have changed nothing (no process, no
 * message, no timer, no pid in the out-parameter) and the runtime must keep
 * working; the loop stops at the first n where the call succeeds, which must
 * come before NOMEM_MAX_N, and at least one n must have failed, so no test
 * passes vacuously. ASan builds check for leaks after every run (TT_RUN,
 * TT_LEAK_CHECK).
 *
 * Determinism: the injector counts every allocation of the runtime on every
 * thread, so while it is armed nothing else may allocate. Each test runs one
 * scheduler (one tel_run loop runs three; idle schedulers allocate nothing)
 * and no other busy process, and a process about to arm first
 * yields (alone, that only refreshes its slice) so the call under test is
 * not preempted into running someone else while armed.
 *
 * Black-box except for the hook itself: include/telar.h plus
 * tel__failinj_arm, which the static library provides in TEL_FAILINJ builds.
 */
#include "common.h"

/* alloc/failinj.h: fail the n-th runtime allocation from now; n < 0 disarms.
 * fired: whether that failure has happened since. */
extern void tel__failinj_arm(long n);
extern bool tel__failinj_fired(void);

/* No call under test needs anywhere near this many allocations. */
#define NOMEM_MAX_N 64

/* A pid no spawn ever returns (generation 0 is never used), to see that an
 * out-parameter was left alone. */
#define UNTOUCHED_PID ((tel_pid_t)0xdeadull)
#define UNTOUCHED_TIMER ((uint64_t)0xdeadbeefull)

static void arm(long n)
{
    tel__failinj_arm(n);
}

static void disarm(void)
{
    tel__failinj_arm(-1);
}

/* The pid of the test's main process. */
static _Atomic tel_pid_t main_pid;

static void set_main_pid(void)
{
    atomic_store(&main_pid, tel_self());
}

/* Inside a process: a fresh slice, so the next few calls are not preempted. */
static void fresh_slice(void)
{
    int rc = tel_yield();
    TT_CHECK_RC(rc, 0, "tel_yield");
}

/*
 * Inside a process, disarmed: the runtime still spawns, delivers and ends a
 * process normally.
 */
static void check_still_works(const char *after)
{
    uint32_t before = tel_process_count();
    tel_pid_t pid = 0;
    int rc = tel_spawn(&pid, tt_wait_one_fn, NULL);
    if (!TT_CHECK(rc == 0, "after %s: a normal tel_spawn returned %s", after,
                  tel_errname(rc)))
        return;
    rc = tel_send(pid, 1, "x", 1);
    if (!TT_CHECK(rc == 0, "after %s: a normal tel_send returned %s", after,
                  tel_errname(rc)))
        return;
    TT_CHECK(tt_await_dead(pid, 10000),
             "after %s: a released child never exited", after);
    TT_CHECK(tt_await_count(before, 10000),
             "after %s: process count is %u, want %u", after,
             tel_process_count(), before);
}

/* Inside a process: take every message now in the mailbox; return the count
 * and the tag of the last one (when last_tag is not NULL). */
static int drain_mailbox(uint64_t *last_tag)
{
    int n = 0;
    tel_msg_t *m = NULL;
    while (tel_recv(&m, 0) == 0) {
        if (last_tag)
            *last_tag = m->tag;
        tel_msg_free(m);
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* tel_run                                                                   */
/* ------------------------------------------------------------------------ */

static atomic_int run_main_ran;

static void run_main(void *arg)
{
    (void)arg;
    /* Only tel_run's own start-up is under test. */
    disarm();
    atomic_fetch_add(&run_main_ran, 1);
}

/*
 * Loop tel_run over injected failures with cfg. Each failed run must return
 * TEL_ENOMEM without running main, leave no runtime behind and leak nothing;
 * that includes the runs where main's process could not get its stack. Then
 * a plain run works.
 */
static void run_until_it_works(const tel_config_t *cfg)
{
    int n_enomem = 0;
    long n;
    for (n = 0; n < NOMEM_MAX_N; n++) {
        atomic_store(&run_main_ran, 0);
        arm(n);
        int rc = tel_run(cfg, run_main, NULL);
        disarm();
        int ran = atomic_load(&run_main_ran);
        cr_assert(rc == 0 || rc == TEL_ENOMEM,
                  "n=%ld: tel_run returned %d (%s)", n, rc, tel_errname(rc));
        cr_assert_eq(tel_process_count(), 0,
                     "n=%ld: %u processes left after tel_run", n,
                     tel_process_count());
        cr_assert_eq(tel_scheduler_count(), 0,
                     "n=%ld: %u schedulers left after tel_run", n,
                     tel_scheduler_count());
        TT_LEAK_CHECK();
        if (rc == TEL_ENOMEM) {
            cr_assert_eq(ran, 0, "n=%ld: main ran, yet tel_run gave ENOMEM",
                         n);
            n_enomem++;
            continue;
        }
        cr_assert_eq(ran, 1, "n=%ld: tel_run returned 0 but main ran %d times",
                     n, ran);
        break;
    }
    cr_assert_lt(n, NOMEM_MAX_N, "tel_run never succeeded in %d tries",
                 NOMEM_MAX_N);
    cr_assert_gt(n_enomem, 0, "no injected failure made tel_run fail");
    cr_log_info("tel_run: %d ENOMEM, ok at n=%ld", n_enomem, n);
    atomic_store(&run_main_ran, 0);
    TT_RUN(cfg, run_main, NULL);
    cr_assert_eq(atomic_load(&run_main_ran), 1, "the plain run's main did "
                                                "not run");
}

/*
 * The first allocation of a run comes before any process exists, so failing
 * it must give TEL_ENOMEM; the run after it works and nothing leaked.
 */
Test(nomem, run_whose_first_allocation_fails_returns_enomem_and_the_next_works,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    arm(0);
    int rc = tel_run(&cfg, run_main, NULL);
    disarm();
    cr_assert_eq(rc, TEL_ENOMEM, "tel_run returned %d (%s)", rc,
                 tel_errname(rc));
    cr_assert_eq(atomic_load(&run_main_ran), 0, "main ran");
    cr_assert_eq(tel_process_count(), 0, "processes left after tel_run");
    cr_assert_eq(tel_scheduler_count(), 0, "schedulers left after tel_run");
    TT_LEAK_CHECK();
    TT_RUN(&cfg, run_main, NULL);
    cr_assert_eq(atomic_load(&run_main_ran), 1, "the later run's main did "
                                                "not run");
}

/*
 * Every allocation of tel_run's start-up, in turn, up to main's stack. (These
 * found a crash: a failed scheduler array left sys.n set for teardown.)
 */
Test(nomem, run_that_cannot_get_its_memory_returns_enomem_and_a_later_run_works,
     .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 1};
    run_until_it_works(&cfg);
}

Test(nomem, run_on_three_schedulers_that_cannot_get_its_memory_leaks_nothing,
     .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 3};
    run_until_it_works(&cfg);
}

/* ------------------------------------------------------------------------ */
/* tel_spawn                                                                 */
/* ------------------------------------------------------------------------ */

static atomic_int child_runs;
static _Atomic long child_ran_for = -1;

/* A child that records that it ran (and for which n) and allocates nothing. */
static void mark_child(void *arg)
{
    atomic_fetch_add(&child_runs, 1);
    atomic_store(&child_ran_for, (long)(intptr_t)arg);
}

static void spawn_main(void *arg)
{
    (void)arg;
    int n_fail = 0;
    long n;
    for (n = 0; n < NOMEM_MAX_N; n++) {
        uint32_t before = tel_process_count();
        tel_pid_t pid = UNTOUCHED_PID;
        fresh_slice();
        arm(n);
        int rc = tel_spawn(&pid, mark_child, (void *)(intptr_t)n);
        disarm();
        if (rc == 0)
            break;
        if (!TT_CHECK(rc == TEL_ENOMEM, "n=%ld: tel_spawn returned %s", n,
                      tel_errname(rc)))
            return;
        n_fail++;
        TT_CHECK(pid == UNTOUCHED_PID || pid == 0,
                 "n=%ld: a failed spawn wrote pid %" PRIu64, n, pid);
        TT_CHECK(tel_process_count() == before,
                 "n=%ld: a failed spawn changed the count from %u to %u", n,
                 before, tel_process_count());
        fresh_slice(); /* anything queued would run now */
        TT_CHECK(atomic_load(&child_runs) == 0,
                 "n=%ld: a failed spawn's child ran", n);
    }
    if (!TT_CHECK(n < NOMEM_MAX_N, "tel_spawn never succeeded"))
        return;
    TT_CHECK(n_fail > 0, "no injected failure made tel_spawn fail");
    TT_CHECK(tt_await_count(1, 10000), "the child never exited");
    TT_CHECK(atomic_load(&child_runs) == 1, "children ran %d times, want 1",
             atomic_load(&child_runs));
    TT_CHECK(atomic_load(&child_ran_for) == n,
             "the child that ran was spawned at n=%ld, want %ld",
             atomic_load(&child_ran_for), n);
    check_still_works("failed spawns");
}

Test(nomem, spawn_without_a_control_block_returns_enomem_and_changes_nothing,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, spawn_main, NULL);
}

/* The same from a thread the runtime does not own. While it spawns, main
 * blocks its (only) scheduler in pthread_join, so nothing else allocates and
 * no spawned child runs before the injector is disarmed. */
static atomic_int foreign_fails;
static atomic_long foreign_ok_n = -1;
static _Atomic tel_pid_t foreign_ok_pid;

static void *foreign_spawner(void *arg)
{
    (void)arg;
    for (long n = 0; n < NOMEM_MAX_N; n++) {
        uint32_t before = tel_process_count();
        tel_pid_t pid = UNTOUCHED_PID;
        arm(n);
        int rc = tel_spawn(&pid, mark_child, (void *)(intptr_t)n);
        disarm();
        if (rc == 0) {
            atomic_store(&foreign_ok_n, n);
            atomic_store(&foreign_ok_pid, pid);
            return NULL;
        }
        if (!TT_CHECK(rc == TEL_ENOMEM,
                      "n=%ld: foreign tel_spawn returned %s", n,
                      tel_errname(rc)))
            return NULL;
        atomic_fetch_add(&foreign_fails, 1);
        TT_CHECK(pid == UNTOUCHED_PID || pid == 0,
                 "n=%ld: a failed foreign spawn wrote pid %" PRIu64, n, pid);
        TT_CHECK(tel_process_count() == before,
                 "n=%ld: a failed foreign spawn changed the count from %u "
                 "to %u",
                 n, before, tel_process_count());
    }
    return NULL;
}

static void foreign_spawn_main(void *arg)
{
    (void)arg;
    pthread_t t;
    if (!TT_CHECK(pthread_create(&t, NULL, foreign_spawner, NULL) == 0,
                  "pthread_create"))
        return;
    pthread_join(t, NULL);
    long ok_n = atomic_load(&foreign_ok_n);
    if (!TT_CHECK(ok_n >= 0, "foreign tel_spawn never succeeded"))
        return;
    TT_CHECK(atomic_load(&foreign_fails) > 0,
             "no injected failure made a foreign tel_spawn fail");
    TT_CHECK(tt_await_count(1, 10000), "the child never exited");
    TT_CHECK(atomic_load(&child_runs) == 1, "children ran %d times, want 1",
             atomic_load(&child_runs));
    TT_CHECK(atomic_load(&child_ran_for) == ok_n,
             "the child that ran was spawned at n=%ld, want %ld",
             atomic_load(&child_ran_for), ok_n);
    TT_CHECK(!tel_is_alive(atomic_load(&foreign_ok_pid)),
             "the child's pid is still alive");
    check_still_works("failed foreign spawns");
}

Test(nomem, spawn_from_a_foreign_thread_that_cannot_get_memory_returns_enomem,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, foreign_spawn_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* A process whose stack cannot be had                                       */
/* ------------------------------------------------------------------------ */

/*
 * The stack is taken when a process first runs, not at spawn. If it cannot
 * be had, the process ends with TEL_NOMEM without running a line: its pid
 * dies, the count drops, and messages already sent to it are freed (ASan's
 * leak check sees them otherwise). The exit reason itself has no public
 * observer yet (no links or monitors).
 */
static void nostack_main(void *arg)
{
    (void)arg;
    char payload[300];
    memset(payload, 'p', sizeof payload);
    int n_fail = 0;
    long n;
    for (n = 0; n < NOMEM_MAX_N; n++) {
        atomic_store(&child_runs, 0);
        tel_pid_t pid = 0;
        int rc = tel_spawn(&pid, mark_child, (void *)(intptr_t)n);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        rc = tel_send(pid, 7, payload, sizeof payload); /* unread mail */
        if (!TT_CHECK_RC(rc, 0, "tel_send"))
            return;
        TT_CHECK(tel_process_count() == 2, "n=%ld: count %u, want 2", n,
                 tel_process_count());
        arm(n);
        /* Not alone: this switches to the child, which takes its stack. */
        rc = tel_yield();
        disarm();
        TT_CHECK_RC(rc, 0, "tel_yield");
        if (!TT_CHECK(tt_await_dead(pid, 10000), "n=%ld: child alive", n))
            return;
        TT_CHECK(tel_process_count() == 1, "n=%ld: count %u, want 1", n,
                 tel_process_count());
        if (atomic_load(&child_runs) == 1)
            break;
        TT_CHECK(atomic_load(&child_runs) == 0, "n=%ld: child ran %d times",
                 n, atomic_load(&child_runs));
        n_fail++;
        /* Sending to it now is a send to a dead process: dropped, 0. */
        rc = tel_send(pid, 8, payload, sizeof payload);
        TT_CHECK_RC(rc, 0, "tel_send to a process that got no stack");
    }
    TT_CHECK(n < NOMEM_MAX_N, "the child never got a stack");
    TT_CHECK(n_fail > 0, "no injected failure kept the child from a stack");
    check_still_works("a process that got no stack");
}

Test(nomem, a_process_that_cannot_get_a_stack_ends_without_running,
     .timeout = 30)
{
    /* No watchdog: the child must not run before main yields. A stall of
     * the machine in main's run made the watchdog mark the scheduler
     * stuck, and a spare ran the child at once (a CI failure: "n=0: count
     * 1, want 2"). */
    tel_config_t cfg = {.schedulers = 1, .flags = TEL_CFG_NO_WATCHDOG};
    TT_RUN(&cfg, nostack_main, NULL);
}

/*
 * The same for a process that reaches an idle scheduler from a foreign
 * thread: it gets its stack in the scheduler's idle loop, not in a switch
 * from another process. Main waits in tel_recv (its scheduler idle) until
 * the foreign thread has seen the child end and disarmed.
 */
static void *idle_nostack_thread(void *arg)
{
    (void)arg;
    tt_os_sleep_ms(20); /* let main park and its scheduler go idle */
    tel_pid_t pid = 0;
    /* Allocation 0 is the control block, allocation 1 the stack. */
    arm(1);
    int rc = tel_spawn(&pid, mark_child, NULL);
    bool dead = false;
    if (TT_CHECK_RC(rc, 0, "foreign tel_spawn")) {
        int64_t deadline = tt_now_ms() + 10000;
        while (!(dead = !tel_is_alive(pid)) && tt_now_ms() < deadline)
            tt_os_sleep_ms(1);
    }
    disarm();
    TT_CHECK(dead, "the child never ended");
    rc = tel_send(atomic_load(&main_pid), 1, NULL, 0);
    TT_CHECK_RC(rc, 0, "foreign tel_send to main");
    return NULL;
}

static void idle_nostack_main(void *arg)
{
    (void)arg;
    set_main_pid();
    pthread_t t;
    if (!TT_CHECK(pthread_create(&t, NULL, idle_nostack_thread, NULL) == 0,
                  "pthread_create"))
        return;
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 20000);
    TT_CHECK_RC(rc, 0, "tel_recv");
    tel_msg_free(m);
    pthread_join(t, NULL);
    TT_CHECK(atomic_load(&child_runs) == 0, "the child ran without a stack");
    TT_CHECK(tel_process_count() == 1, "count %u, want 1",
             tel_process_count());
    check_still_works("a foreign-spawned process that got no stack");
}

Test(nomem, a_process_that_cannot_get_a_stack_on_an_idle_scheduler_ends,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, idle_nostack_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* tel_send                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Inside a process: send `size` bytes of a pattern to ourselves under
 * injected failures. A failed send must enqueue nothing; the one that
 * succeeds must arrive intact, with its own tag.
 */
static void send_loop(size_t size)
{
    unsigned char *buf = malloc(size ? size : 1);
    if (!TT_CHECK(buf != NULL, "malloc(%zu)", size))
        return;
    for (size_t i = 0; i < size; i++)
        buf[i] = (unsigned char)(i * 31 + 7);
    tel_pid_t self = tel_self();
    int n_fail = 0;
    long n;
    for (n = 0; n < NOMEM_MAX_N; n++) {
        fresh_slice();
        arm(n);
        int rc = tel_send(self, (uint64_t)n, buf, size);
        disarm();
        if (rc == 0)
            break;
        if (!TT_CHECK(rc == TEL_ENOMEM, "n=%ld: tel_send returned %s", n,
                      tel_errname(rc)))
            goto out;
        n_fail++;
        tel_msg_t *m = NULL;
        rc = tel_recv(&m, 0);
        TT_CHECK(rc == TEL_ETIMEDOUT,
                 "n=%ld: a send that failed delivered a message (%s)", n,
                 tel_errname(rc));
        tel_msg_free(m);
    }
    if (!TT_CHECK(n < NOMEM_MAX_N, "tel_send never succeeded"))
        goto out;
    TT_CHECK(n_fail > 0, "no injected failure made tel_send fail");
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 0);
    if (TT_CHECK_RC(rc, 0, "tel_recv of the message that was sent")) {
        TT_CHECK(m->tag == (uint64_t)n && m->from == self &&
                     m->size == size &&
                     (size == 0 || memcmp(m->data, buf, size) == 0),
                 "the message is wrong: tag %" PRIu64 " (want %ld), size "
                 "%zu (want %zu)",
                 m->tag, n, m->size, size);
        tel_msg_free(m);
    }
    TT_CHECK(drain_mailbox(NULL) == 0, "more than one message arrived");
    check_still_works("failed sends");
out:
    free(buf);
}

static void send_small_main(void *arg)
{
    (void)arg;
    send_loop(sizeof(uint64_t));
}

Test(nomem, send_that_cannot_copy_returns_enomem_and_delivers_nothing,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, send_small_main, NULL);
}

static void send_large_main(void *arg)
{
    (void)arg;
    send_loop((size_t)4 << 20);
}

Test(nomem, send_of_a_large_payload_that_cannot_be_copied_returns_enomem,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, send_large_main, NULL);
}

/* A waiting receiver is not woken by a send that failed. */
static atomic_int waiter_got;

static void waiter(void *arg)
{
    (void)arg;
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, TEL_INFINITY);
    if (TT_CHECK_RC(rc, 0, "tel_recv in the waiter")) {
        atomic_store(&waiter_got, (int)m->tag);
        tel_msg_free(m);
    }
}

static void send_to_waiter_main(void *arg)
{
    (void)arg;
    tel_pid_t pid = 0;
    int rc = tel_spawn(&pid, waiter, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    fresh_slice(); /* the waiter runs and parks */
    int n_fail = 0;
    long n;
    for (n = 0; n < NOMEM_MAX_N; n++) {
        fresh_slice();
        arm(n);
        rc = tel_send(pid, (uint64_t)n + 100, "hello", 5);
        disarm();
        if (rc == 0)
            break;
        if (!TT_CHECK(rc == TEL_ENOMEM, "n=%ld: tel_send returned %s", n,
                      tel_errname(rc)))
            return;
        n_fail++;
        fresh_slice();
        TT_CHECK(atomic_load(&waiter_got) == 0 && tel_is_alive(pid),
                 "n=%ld: a failed send woke the receiver", n);
    }
    if (!TT_CHECK(n < NOMEM_MAX_N, "tel_send never succeeded"))
        return;
    TT_CHECK(n_fail > 0, "no injected failure made tel_send fail");
    TT_CHECK(tt_await_dead(pid, 10000), "the waiter never got the message");
    TT_CHECK(atomic_load(&waiter_got) == (int)n + 100,
             "the waiter got tag %d, want %ld", atomic_load(&waiter_got),
             n + 100);
    check_still_works("failed sends to a waiting process");
}

Test(nomem, send_that_fails_does_not_wake_a_waiting_receiver, .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, send_to_waiter_main, NULL);
}

/* From a foreign thread; main blocks its only scheduler in pthread_join. */
static atomic_int foreign_send_fails;
static atomic_long foreign_send_ok_n = -1;

static void *foreign_sender(void *arg)
{
    (void)arg;
    tel_pid_t to = atomic_load(&main_pid);
    uint64_t v = 42;
    for (long n = 0; n < NOMEM_MAX_N; n++) {
        arm(n);
        int rc = tel_send(to, (uint64_t)n, &v, sizeof v);
        disarm();
        if (rc == 0) {
            atomic_store(&foreign_send_ok_n, n);
            return NULL;
        }
        if (!TT_CHECK(rc == TEL_ENOMEM,
                      "n=%ld: foreign tel_send returned %s", n,
                      tel_errname(rc)))
            return NULL;
        atomic_fetch_add(&foreign_send_fails, 1);
    }
    return NULL;
}

static void foreign_send_main(void *arg)
{
    (void)arg;
    set_main_pid();
    pthread_t t;
    if (!TT_CHECK(pthread_create(&t, NULL, foreign_sender, NULL) == 0,
                  "pthread_create"))
        return;
    pthread_join(t, NULL);
    long ok_n = atomic_load(&foreign_send_ok_n);
    if (!TT_CHECK(ok_n >= 0, "foreign tel_send never succeeded"))
        return;
    TT_CHECK(atomic_load(&foreign_send_fails) > 0,
             "no injected failure made a foreign tel_send fail");
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 0);
    if (TT_CHECK_RC(rc, 0, "tel_recv")) {
        TT_CHECK(m->tag == (uint64_t)ok_n && m->from == 0 &&
                     tt_msg_u64(m) == 42,
                 "wrong message: tag %" PRIu64 " (want %ld), from %" PRIu64,
                 m->tag, ok_n, m->from);
        tel_msg_free(m);
    }
    TT_CHECK(drain_mailbox(NULL) == 0,
             "failed foreign sends delivered messages");
    check_still_works("failed foreign sends");
}

Test(nomem, send_from_a_foreign_thread_that_cannot_copy_returns_enomem,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, foreign_send_main, NULL);
}

/*
 * A payload no allocator can hold: the runtime refuses it with TEL_ENOMEM
 * before reading a byte of it (the size overflows the message header).
 */
static void impossible_size_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    char byte = 'b';
    int rc = tel_send(self, 1, &byte, SIZE_MAX);
    TT_CHECK_RC(rc, TEL_ENOMEM, "tel_send of SIZE_MAX bytes");
    uint64_t id = UNTOUCHED_TIMER;
    rc = tel_send_after(&id, 1, self, 2, &byte, SIZE_MAX);
    TT_CHECK_RC(rc, TEL_ENOMEM, "tel_send_after of SIZE_MAX bytes");
    TT_CHECK(id == UNTOUCHED_TIMER || id == 0,
             "a failed tel_send_after wrote timer id %" PRIu64, id);
    rc = tel_sleep(20);
    TT_CHECK_RC(rc, 0, "tel_sleep");
    TT_CHECK(drain_mailbox(NULL) == 0, "a refused message arrived");
    check_still_works("refused payloads");
}

Test(nomem, send_of_an_impossible_size_returns_enomem, .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, impossible_size_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* tel_send_after                                                            */
/* ------------------------------------------------------------------------ */

#define AFTER_MS 10

/*
 * Check, inside a process, that exactly one timer message came (the one with
 * tag ok_n, from `from`) and that no failed timer fires later.
 */
static void expect_one_timer_message(long ok_n, tel_pid_t from)
{
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 10000);
    if (TT_CHECK_RC(rc, 0, "tel_recv of the timer's message")) {
        TT_CHECK(m->tag == (uint64_t)ok_n && m->from == from &&
                     tt_msg_u64(m) == 7,
                 "wrong timer message: tag %" PRIu64 " (want %ld), from "
                 "%" PRIu64 " (want %" PRIu64 ")",
                 m->tag, ok_n, m->from, from);
        tel_msg_free(m);
    }
    /* Well past every deadline: nothing else may come. */
    rc = tel_sleep(10 * AFTER_MS + 50);
    TT_CHECK_RC(rc, 0, "tel_sleep");
    int extra = drain_mailbox(NULL);
    TT_CHECK(extra == 0, "%d timer(s) that failed to arm fired anyway", extra);
}

static void send_after_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    uint64_t v = 7;
    int n_fail = 0;
    long n;
    uint64_t id = UNTOUCHED_TIMER;
    for (n = 0; n < NOMEM_MAX_N; n++) {
        id = UNTOUCHED_TIMER;
        fresh_slice();
        arm(n);
        int rc = tel_send_after(&id, AFTER_MS, self, (uint64_t)n, &v,
                                sizeof v);
        disarm();
        if (rc == 0)
            break;
        if (!TT_CHECK(rc == TEL_ENOMEM, "n=%ld: tel_send_after returned %s",
                      n, tel_errname(rc)))
            return;
        n_fail++;
        TT_CHECK(id == UNTOUCHED_TIMER || id == 0,
                 "n=%ld: a failed tel_send_after wrote timer id %" PRIu64, n,
                 id);
    }
    if (!TT_CHECK(n < NOMEM_MAX_N, "tel_send_after never succeeded"))
        return;
    TT_CHECK(n_fail > 0, "no injected failure made tel_send_after fail");
    TT_CHECK(id != UNTOUCHED_TIMER, "the timer id was not written");
    expect_one_timer_message(n, self);
    /* The timer fired, so it can no longer be cancelled. */
    int rc = tel_cancel_timer(id);
    TT_CHECK_RC(rc, TEL_ENOENT, "tel_cancel_timer of a fired timer");
    check_still_works("failed tel_send_after");
}

Test(nomem, send_after_that_cannot_get_memory_returns_enomem_and_never_fires,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, send_after_main, NULL);
}

/* A timer that failed to arm leaves nothing to cancel and cancelling the one
 * that armed still works: it never fires and its copy is freed. */
static void send_after_cancel_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    uint64_t v = 7;
    int n_fail = 0;
    long n;
    uint64_t id = UNTOUCHED_TIMER;
    for (n = 0; n < NOMEM_MAX_N; n++) {
        id = UNTOUCHED_TIMER;
        fresh_slice();
        arm(n);
        int rc = tel_send_after(&id, 5 * AFTER_MS, self, (uint64_t)n, &v,
                                sizeof v);
        disarm();
        if (rc == 0)
            break;
        if (!TT_CHECK(rc == TEL_ENOMEM, "n=%ld: tel_send_after returned %s",
                      n, tel_errname(rc)))
            return;
        n_fail++;
    }
    if (!TT_CHECK(n < NOMEM_MAX_N, "tel_send_after never succeeded"))
        return;
    TT_CHECK(n_fail > 0, "no injected failure made tel_send_after fail");
    int rc = tel_cancel_timer(id);
    TT_CHECK_RC(rc, 0, "tel_cancel_timer of the armed timer");
    rc = tel_sleep(10 * AFTER_MS + 50);
    TT_CHECK_RC(rc, 0, "tel_sleep");
    TT_CHECK(drain_mailbox(NULL) == 0, "a cancelled or failed timer fired");
    check_still_works("failed tel_send_after and a cancel");
}

Test(nomem, send_after_that_failed_leaves_the_one_that_armed_cancellable,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, send_after_cancel_main, NULL);
}

/* From a foreign thread (the timer goes on scheduler 0's wheel). */
static atomic_int foreign_after_fails;
static atomic_long foreign_after_ok_n = -1;

static void *foreign_after_thread(void *arg)
{
    (void)arg;
    tel_pid_t to = atomic_load(&main_pid);
    uint64_t v = 7;
    for (long n = 0; n < NOMEM_MAX_N; n++) {
        uint64_t id = UNTOUCHED_TIMER;
        arm(n);
        int rc = tel_send_after(&id, AFTER_MS, to, (uint64_t)n, &v, sizeof v);
        disarm();
        if (rc == 0) {
            atomic_store(&foreign_after_ok_n, n);
            return NULL;
        }
        if (!TT_CHECK(rc == TEL_ENOMEM,
                      "n=%ld: foreign tel_send_after returned %s", n,
                      tel_errname(rc)))
            return NULL;
        atomic_fetch_add(&foreign_after_fails, 1);
        TT_CHECK(id == UNTOUCHED_TIMER || id == 0,
                 "n=%ld: a failed foreign tel_send_after wrote id %" PRIu64,
                 n, id);
    }
    return NULL;
}

static void foreign_after_main(void *arg)
{
    (void)arg;
    set_main_pid();
    pthread_t t;
    if (!TT_CHECK(pthread_create(&t, NULL, foreign_after_thread, NULL) == 0,
                  "pthread_create"))
        return;
    pthread_join(t, NULL);
    long ok_n = atomic_load(&foreign_after_ok_n);
    if (!TT_CHECK(ok_n >= 0, "foreign tel_send_after never succeeded"))
        return;
    TT_CHECK(atomic_load(&foreign_after_fails) > 0,
             "no injected failure made a foreign tel_send_after fail");
    expect_one_timer_message(ok_n, 0);
    check_still_works("failed foreign tel_send_after");
}

Test(nomem, send_after_from_a_foreign_thread_that_cannot_get_memory_never_fires,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, foreign_after_main, NULL);
}

/*
 * A scheduler's ring is full and the backlog it moves the older half to
 * cannot grow: the half goes to the global queue instead, the spawn that
 * overflowed the ring still succeeds, and every process runs once. main's
 * slice is long enough that nothing runs until it waits.
 */
#define SPILL_FILL 257 /* a full ring (RUNQ_CAP, 256) plus the next slot */

static atomic_int spill_runs;

static void spill_kid(void *arg)
{
    (void)arg;
    atomic_fetch_add(&spill_runs, 1);
}

static void spill_main(void *arg)
{
    (void)arg;
    int spawned = 0;
    for (int i = 0; i < SPILL_FILL; i++) {
        if (!TT_CHECK_RC(tel_spawn(NULL, spill_kid, NULL), 0, "fill spawn"))
            return;
        spawned++;
    }
    /* The next spawn displaces the next slot's process into the full ring,
     * which moves its older half to the backlog, whose array is allocated
     * then. Find the n at which that allocation fails. */
    bool absorbed = false;
    long n;
    for (n = 0; n < NOMEM_MAX_N && !absorbed; n++) {
        arm(n);
        int rc = tel_spawn(NULL, spill_kid, NULL);
        bool fired = tel__failinj_fired();
        disarm();
        if (rc == 0) {
            spawned++;
            absorbed = fired;
            if (!fired)
                break; /* every allocation succeeded: nothing to see */
        } else if (!TT_CHECK(rc == TEL_ENOMEM, "n=%ld: tel_spawn returned %s",
                             n, tel_errname(rc))) {
            return;
        }
    }
    if (!TT_CHECK(absorbed, "no spawn absorbed an allocation failure "
                            "(the backlog never needed memory?)"))
        return;
    int64_t deadline = tt_now_ms() + 20000;
    while (atomic_load(&spill_runs) < spawned && tt_now_ms() < deadline)
        (void)tel_sleep(1);
    TT_CHECK(atomic_load(&spill_runs) == spawned,
             "%d of %d processes ran", atomic_load(&spill_runs), spawned);
    check_still_works("a backlog that could not grow");
}

Test(nomem, a_full_ring_whose_backlog_cannot_grow_still_runs_every_process,
     .timeout = 60)
{
    /* No watchdog: its hand-off would move the full ring of a spawn loop
     * that runs past its bound (a slow or loaded machine) to the global
     * queue, and the backlog under test would never be needed. */
    tel_config_t cfg = {.schedulers = 1, .reductions = 1u << 30,
                        .flags = TEL_CFG_NO_WATCHDOG};
    TT_RUN(&cfg, spill_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Timed waits: the wait timer is allocated when the wait begins             */
/* ------------------------------------------------------------------------ */

static bool tag_is_2(const tel_msg_t *m, void *ctx)
{
    (void)ctx;
    return m->tag == 2;
}

static void timed_wait_main(void *arg)
{
    (void)arg;
    /* A message that the selective receive skips: it must stay. */
    if (!TT_CHECK_RC(tel_send(tel_self(), 1, NULL, 0), 0, "send to self"))
        return;
    tel_msg_t *m = (tel_msg_t *)1;
    arm(0);
    int rc = tel_recv_match(&m, tag_is_2, NULL, 50);
    disarm();
    TT_CHECK_RC(rc, TEL_ENOMEM, "timed tel_recv_match without a timer");
    TT_CHECK(m == NULL, "*out was not cleared");
    arm(0);
    rc = tel_sleep(10);
    disarm();
    TT_CHECK_RC(rc, TEL_ENOMEM, "tel_sleep without a timer");
    /* Everything still works, and the skipped message is still first. */
    rc = tel_recv_match(&m, tag_is_2, NULL, 20);
    TT_CHECK_RC(rc, TEL_ETIMEDOUT, "timed tel_recv_match afterwards");
    TT_CHECK_RC(tel_sleep(1), 0, "tel_sleep afterwards");
    rc = tel_recv(&m, 0);
    if (TT_CHECK_RC(rc, 0, "the skipped message"))
        TT_CHECK(m->tag == 1, "got tag %" PRIu64, m->tag);
    tel_msg_free(m);
}

Test(nomem, a_timed_wait_that_cannot_get_a_timer_returns_enomem_and_takes_nothing,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, timed_wait_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* A hibernated process that cannot get a stack back when it wakes           */
/* ------------------------------------------------------------------------ */

static atomic_int woke_runs;

static void woke_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&woke_runs, 1);
    tel_msg_t *m = NULL;
    if (tel_recv(&m, 0) == 0)
        tel_msg_free(m);
}

static void hibernate_now(void *arg)
{
    int rc = tel_hibernate(woke_fn, arg);
    TT_FAIL("tel_hibernate returned %d", rc);
}

static void hib_nostack_main(void *arg)
{
    (void)arg;
    char payload[300];
    memset(payload, 'h', sizeof payload);
    int n_fail = 0;
    long n;
    for (n = 0; n < NOMEM_MAX_N; n++) {
        atomic_store(&woke_runs, 0);
        tel_pid_t pid = 0;
        if (!TT_CHECK_RC(tel_spawn(&pid, hibernate_now, NULL), 0, "tel_spawn"))
            return;
        /* Let it run and hibernate (its stack goes back): one scheduler,
         * so a yield runs it. */
        (void)tel_yield();
        (void)tel_yield();
        arm(n);
        /* The send copies (one allocation), then the yield switches to the
         * woken process, which needs a fresh stack. */
        int rc = tel_send(pid, 7, payload, sizeof payload);
        if (rc == 0)
            rc = tel_yield();
        disarm();
        bool copied = rc != TEL_ENOMEM;
        if (!copied) /* nothing woke it: wake it now, without failures */
            rc = tel_send(pid, 7, payload, sizeof payload);
        if (!TT_CHECK_RC(rc, 0, "tel_send/tel_yield"))
            return;
        if (!TT_CHECK(tt_await_dead(pid, 10000), "n=%ld: process alive", n))
            return;
        if (!copied)
            continue;
        if (atomic_load(&woke_runs) == 1)
            break;
        TT_CHECK(atomic_load(&woke_runs) == 0, "n=%ld: woke %d times", n,
                 atomic_load(&woke_runs));
        n_fail++;
    }
    TT_CHECK(n < NOMEM_MAX_N, "the woken process never got a stack");
    TT_CHECK(n_fail > 0, "no injected failure kept it from a stack");
    check_still_works("a hibernated process that got no stack");
}

Test(nomem, a_hibernated_process_that_cannot_get_a_stack_ends_and_frees_its_mail,
     .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, hib_nostack_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Links and monitors                                                        */
/* ------------------------------------------------------------------------ */

static bool any_system_message(void)
{
    bool found = false;
    tel_msg_t *m = NULL;
    while (tel_recv(&m, 0) == 0) {
        found |= m->tag == TEL_TAG_EXIT || m->tag == TEL_TAG_DOWN;
        tel_msg_free(m);
    }
    return found;
}

static void exit_5(void *arg)
{
    (void)arg;
    tel_exit(5);
}

/* spawn_opt with a link and a monitor: each failure makes no process, no
 * link, no monitor; the success gives exactly one EXIT and one DOWN. */
static void spawn_opt_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    int n_fail = 0;
    long n;
    for (n = 0; n < NOMEM_MAX_N; n++) {
        uint32_t before = tel_process_count();
        tel_pid_t pid = UNTOUCHED_PID;
        uint64_t ref = 0;
        tel_spawn_opts_t o = {.link = true, .monitor = true,
                              .monitor_ref = &ref};
        fresh_slice();
        arm(n);
        int rc = tel_spawn_opt(&pid, exit_5, NULL, &o);
        disarm();
        if (rc == 0)
            break;
        if (!TT_CHECK(rc == TEL_ENOMEM, "n=%ld: tel_spawn_opt returned %s", n,
                      tel_errname(rc)))
            return;
        n_fail++;
        TT_CHECK(tel_process_count() == before,
                 "n=%ld: a failed spawn_opt changed the count", n);
        fresh_slice();
        TT_CHECK(!any_system_message(), "n=%ld: an EXIT or DOWN came", n);
    }
    if (!TT_CHECK(n < NOMEM_MAX_N, "tel_spawn_opt never succeeded"))
        return;
    TT_CHECK(n_fail > 0, "no injected failure made tel_spawn_opt fail");
    int exits = 0, downs = 0;
    tel_msg_t *m = NULL;
    while (tel_recv(&m, 300) == 0) {
        exits += m->tag == TEL_TAG_EXIT;
        downs += m->tag == TEL_TAG_DOWN;
        tel_msg_free(m);
    }
    TT_CHECK(exits == 1 && downs == 1, "%d EXITs and %d DOWNs, want 1 and 1",
             exits, downs);
    check_still_works("failed spawn_opt");
}

Test(nomem, spawn_opt_that_cannot_link_or_monitor_makes_nothing, .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, spawn_opt_main, NULL);
}

/* tel_monitor and tel_link on a live process: a failure leaves no monitor
 * and no link (its abnormal end then sends us nothing). */
static void mon_link_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    for (int which = 0; which < 2; which++) {
        int n_fail = 0;
        long n;
        for (n = 0; n < NOMEM_MAX_N; n++) {
            tel_pid_t pid;
            if (!TT_CHECK_RC(tel_spawn(&pid, tt_wait_one_fn, NULL), 0,
                             "spawn"))
                return;
            uint64_t ref = 0;
            fresh_slice();
            arm(n);
            int rc = which ? tel_link(pid) : tel_monitor(&ref, pid);
            disarm();
            TT_CHECK(rc == 0 || rc == TEL_ENOMEM, "n=%ld: %s returned %s", n,
                     which ? "tel_link" : "tel_monitor", tel_errname(rc));
            TT_CHECK_RC(tel_kill(pid, 6), 0, "kill");
            TT_CHECK(tt_await_dead(pid, 10000), "dead");
            tel_msg_t *m = NULL;
            int got = tel_recv(&m, 200);
            if (rc == 0) {
                TT_CHECK(got == 0 && m->tag == (which ? TEL_TAG_EXIT
                                                      : TEL_TAG_DOWN),
                         "n=%ld: the success made no %s", n,
                         which ? "link" : "monitor");
                tel_msg_free(m);
                break;
            }
            n_fail++;
            TT_CHECK(got == TEL_ETIMEDOUT, "n=%ld: a failed %s still fired", n,
                     which ? "link" : "monitor");
            tel_msg_free(m);
        }
        TT_CHECK(n < NOMEM_MAX_N, "never succeeded");
        TT_CHECK(n_fail > 0, "no injected failure made it fail");
    }
    check_still_works("failed links and monitors");
}

Test(nomem, link_and_monitor_that_cannot_be_made_leave_nothing, .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, mon_link_main, NULL);
}
