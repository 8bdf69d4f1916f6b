/*
 * tests/core/crash_test.c: a process whose own C code faults ends alone,
 * with TEL_CRASHED, and the runtime goes on (sched/fault.c); faults that
 * are not a process's still end the program as they would without Telar.
 *
 * White-box: exit reasons are seen through core's test hook
 * (tel__proc_exit_observer); the held-lock test takes a runtime spinlock
 * (alloc/lock.h) and the panic test calls tel__panic.
 *
 * Sanitizers: the faulting functions are built without UBSan's checks (it
 * would report the null store and the division itself, and this build
 * halts on its reports) and without TSan's, so the CPU faults as in a
 * plain build. A fault
 * that is not contained goes to the sanitizer's own handler, which reports
 * it and exits with status 1 (ASan) instead of dying of the signal: those
 * tests expect that status under ASan. ThreadSanitizer's handler exits
 * with its own status, which the TSan build's stand-in runner cannot
 * expect (it only knows .signal), so they are skipped there.
 */
#include "common.h"

#include <signal.h>
#include <sys/mman.h>

#include "alloc/lock.h"
#include "core/process.h"
#include "sched/scheduler.h"
#include "exit_log.h"

#if defined(__SANITIZE_THREAD__)
#define TT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TT_TSAN 1
#endif
#endif

/* How a fault that is not contained ends the test's process. */
#if defined(TT_HAVE_LSAN)
#define DIES_OF_SEGV .exit_code = 1 /* ASan's report, then exit(1) */
#elif !defined(TT_TSAN)
#define DIES_OF_SEGV .signal = SIGSEGV
#endif

/* The faulting code: plain, so the CPU faults as in a plain build (and
 * ThreadSanitizer does not call the crashers' stores to one bad address a
 * race: none of them happened). */
#define NO_UBSAN                                                              \
    __attribute__((noinline, no_sanitize("undefined"), no_sanitize_thread))

/* ------------------------------------------------------------------------ */
/* Exit reasons, seen by the observer hook                                   */
/* ------------------------------------------------------------------------ */


/* ------------------------------------------------------------------------ */
/* Ways to fault                                                             */
/* ------------------------------------------------------------------------ */

enum kind {
    K_NULL,      /* store through a null pointer: SIGSEGV */
    K_WILD,      /* store to a non-canonical address: SIGSEGV */
    K_READONLY,  /* store to a read-only page: SIGSEGV (SEGV_ACCERR) */
    K_BUS,       /* read a shared mapping past its file's end: SIGBUS */
    K_ABORT,     /* abort(): SIGABRT the thread sends itself */
    K_DIV,       /* integer division by zero: SIGFPE */
    K_TRAP,      /* __builtin_trap (ud2): SIGILL */
    K_PURE,      /* the kinds above are pure process faults */
    K_SEND = K_PURE, /* tel_send given a bad data pointer */
    K_RECV,      /* tel_recv given a bad out pointer */
    K_MATCH,     /* tel_recv_match's callback faults on an arrival */
    K_ALL
};

static const char *const kind_names[K_ALL] = {
    "null", "wild", "readonly", "bus", "abort", "div", "trap",
    "send", "recv", "match",
};

/* Not a canonical x86-64 (or 57-bit) address: nothing can be mapped there
 * (the store raises a general protection fault, si_code SI_KERNEL). */
#define WILD_ADDR ((void *)(uintptr_t)0xdead000000000000ull)

static void *no_access; /* a page reserved PROT_NONE: the bad pointer */
static void *readonly;  /* a page mapped PROT_READ */
static void *bus_page;  /* a page of an empty memfd: any access is SIGBUS */

static void maps_up(void)
{
    tt_observe_up();
    long pg = sysconf(_SC_PAGESIZE);
    /* Kept reserved for the whole test (an unmapped page could be
     * reused by the runtime's own mappings). */
    no_access = mmap(NULL, (size_t)pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    cr_assert(no_access != MAP_FAILED);
    readonly = mmap(NULL, (size_t)pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    cr_assert(readonly != MAP_FAILED);
    int fd = memfd_create("tel-crash-test", 0);
    cr_assert(fd >= 0, "memfd_create: %s", strerror(errno));
    bus_page = mmap(NULL, (size_t)pg, PROT_READ, MAP_SHARED, fd, 0);
    cr_assert(bus_page != MAP_FAILED);
    close(fd); /* the mapping keeps the (empty) file */
}

static void down(void)
{
    tel__proc_exit_observer = NULL;
}

static volatile int sink;

static bool match_faults(const tel_msg_t *m, void *ctx)
{
    (void)m;
    return *(volatile int *)ctx != 0;
}

static NO_UBSAN void do_fault(enum kind k)
{
    switch (k) {
    case K_NULL: {
        volatile int *p = NULL;
        *p = 1;
        break;
    }
    case K_WILD:
        *(volatile int *)WILD_ADDR = 1;
        break;
    case K_READONLY:
        *(volatile int *)readonly = 1;
        break;
    case K_BUS:
        sink = *(volatile int *)bus_page;
        break;
    case K_ABORT:
        abort();
    case K_DIV: {
        volatile int a = 1, b = 0;
        sink = a / b;
        break;
    }
    case K_TRAP:
        __builtin_trap();
    case K_SEND:
        sink = tel_send(tel_self(), 1, no_access, 64);
        break;
    case K_RECV:
        sink = tel_recv((tel_msg_t **)no_access, 0);
        break;
    case K_MATCH: {
        (void)tt_send_tag(tel_self(), 1);
        tel_msg_t *m = NULL;
        sink = tel_recv_match(&m, match_faults, no_access, 0);
        break;
    }
    default:
        break;
    }
}

static void crasher(void *arg)
{
    enum kind k = (enum kind)(uintptr_t)arg;
    do_fault(k);
    TT_FAIL("the process went on after a %s fault", kind_names[k]);
}

/* ------------------------------------------------------------------------ */
/* Siblings: a ring of 50 passing a token, on both schedulers                */
/* ------------------------------------------------------------------------ */

#define TT_SIB_N 50
#define TT_SIB_ROUNDS 2
#include "sib_ring.h"

/* Inside a process: spawn a crasher of kind k, wait for its end, check
 * its reason. */
static void expect_crash(enum kind k)
{
    tel_pid_t p;
    int rc = tel_spawn(&p, crasher, (void *)(uintptr_t)k);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn crasher"))
        return;
    if (!TT_CHECK(tt_await_dead(p, 20000), "%s: still alive", kind_names[k]))
        return;
    bool seen;
    TT_AWAIT(seen, tt_reason_of(p) != 1, 5000);
    (void)seen; /* the check below says what was seen */
    tel_reason_t r = tt_reason_of(p);
    TT_CHECK(r == TEL_CRASHED, "%s: ended with %" PRId64 " (%s), want crashed",
             kind_names[k], r, tel_reason_str(r));
}

static void crash_among_siblings(void *arg)
{
    enum kind k = (enum kind)(uintptr_t)arg;
    if (!ring_start())
        return;
    check_ring_moves("before");
    for (int i = 0; i < 3; i++) { /* the same fault again on a reused stack */
        expect_crash(k);
        check_ring_moves("after a crash");
    }
    ring_stop();
}

/* A pure process fault leaves nothing behind: TT_RUN checks leaks too. */
static void run_kind(enum kind k)
{
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, crash_among_siblings, (void *)(uintptr_t)k);
    cr_assert_eq(tt_count_reason(TEL_CRASHED), 3, "%u crashed, want 3",
                 tt_count_reason(TEL_CRASHED));
    cr_assert_eq(tt_count_reason(TEL_NORMAL), TT_SIB_N + 1);
}

Test(crash, a_null_dereference_ends_only_that_process, .init = maps_up,
     .fini = down, .timeout = 60)
{
    run_kind(K_NULL);
}

Test(crash, a_store_to_a_wild_address_ends_only_that_process,
     .init = maps_up, .fini = down, .timeout = 60)
{
    run_kind(K_WILD);
}

Test(crash, a_store_to_a_read_only_page_ends_only_that_process,
     .init = maps_up, .fini = down, .timeout = 60)
{
    run_kind(K_READONLY);
}

Test(crash, a_bus_error_ends_only_that_process, .init = maps_up,
     .fini = down, .timeout = 60)
{
    run_kind(K_BUS);
}

Test(crash, abort_ends_only_that_process, .init = maps_up, .fini = down,
     .timeout = 60)
{
    run_kind(K_ABORT);
}

Test(crash, an_integer_division_by_zero_ends_only_that_process,
     .init = maps_up, .fini = down, .timeout = 60)
{
    run_kind(K_DIV);
}

Test(crash, builtin_trap_ends_only_that_process, .init = maps_up,
     .fini = down, .timeout = 60)
{
    run_kind(K_TRAP);
}

/* ------------------------------------------------------------------------ */
/* Faults inside Telar calls, on the caller's bad pointers                   */
/* ------------------------------------------------------------------------ */

/* What these lose is documented (sched/fault.c): the message being built
 * (send) or taken (match) stays allocated. So the run is checked without
 * TT_RUN's leak check. */
static void run_kind_in_call(enum kind k)
{
    tel_config_t cfg = {.schedulers = 2};
    int rc = tel_run(&cfg, crash_among_siblings, (void *)(uintptr_t)k);
    cr_assert_eq(rc, 0, "tel_run returned %d", rc);
    TT_ASSERT_NO_FAILURES();
    cr_assert_eq(tt_count_reason(TEL_CRASHED), 3);
}

Test(crash, tel_send_given_a_bad_data_pointer_ends_only_the_sender,
     .init = maps_up, .fini = down, .timeout = 60)
{
    run_kind_in_call(K_SEND);
}

Test(crash, tel_recv_given_a_bad_out_pointer_ends_only_the_caller,
     .init = maps_up, .fini = down, .timeout = 60)
{
    /* It faults before it takes anything: nothing is lost. */
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, crash_among_siblings, (void *)(uintptr_t)K_RECV);
    cr_assert_eq(tt_count_reason(TEL_CRASHED), 3);
}

Test(crash, a_faulting_match_callback_ends_only_the_receiver,
     .init = maps_up, .fini = down, .timeout = 60)
{
    run_kind_in_call(K_MATCH);
}

/* ------------------------------------------------------------------------ */
/* Many in a row, on both schedulers                                         */
/* ------------------------------------------------------------------------ */

#define N_MANY 1000
#define BATCH 20

static atomic_uint crashed_on[2]; /* crashers started, per scheduler */

static void counted_crasher(void *arg)
{
    struct sched *s = tel__sched_self();
    atomic_fetch_add(&crashed_on[s->index & 1], 1);
    crasher(arg);
}

/* Spawns from a thread that is not a scheduler are spread round-robin over
 * the schedulers, so the crashes happen on both. */
static tel_pid_t batch[BATCH];
static unsigned batch_first;

static void *spawn_batch(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < BATCH; i++) {
        enum kind k = (enum kind)((batch_first + i) % K_PURE);
        int rc = tel_spawn(&batch[i], counted_crasher, (void *)(uintptr_t)k);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn crasher"))
            batch[i] = 0;
    }
    return NULL;
}

static void many_main(void *arg)
{
    (void)arg;
    if (!ring_start())
        return;
    uint32_t base = tel_process_count();
    for (unsigned done = 0; done < N_MANY; done += BATCH) {
        batch_first = done;
        pthread_t th;
        if (!TT_CHECK(pthread_create(&th, NULL, spawn_batch, NULL) == 0,
                      "pthread_create"))
            return;
        (void)pthread_join(th, NULL); /* a few spawns: a short block */
        for (unsigned i = 0; i < BATCH; i++)
            if (!TT_CHECK(batch[i] && tt_await_dead(batch[i], 20000),
                          "crasher %u alive", done + i))
                return;
    }
    TT_CHECK(tt_await_count(base, 10000), "%u processes, want %u",
             tel_process_count(), base);
    check_ring_moves("after the crashes");
    /* Spawning, messages and exits still work. */
    expect_crash(K_NULL);
    tel_pid_t p;
    if (TT_CHECK_RC(tel_spawn(&p, tt_return_fn, NULL), 0, "tel_spawn"))
        TT_CHECK(tt_await_dead(p, 10000), "a normal child did not end");
    ring_stop();
}

Test(crash, a_thousand_crashes_in_a_row_leak_nothing_and_the_run_goes_on,
     .init = maps_up, .fini = down, .timeout = 300)
{
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, many_main, NULL);
    cr_assert_eq(tt_count_reason(TEL_CRASHED), N_MANY + 1, "%u crashed, want %d",
                 tt_count_reason(TEL_CRASHED), N_MANY + 1);
    cr_assert_eq(atomic_load(&crashed_on[0]) + atomic_load(&crashed_on[1]),
                 N_MANY);
    cr_assert(atomic_load(&crashed_on[0]) > 0 && atomic_load(&crashed_on[1]) > 0,
              "crashes on scheduler 0: %u, on 1: %u (want both)",
              atomic_load(&crashed_on[0]), atomic_load(&crashed_on[1]));
}

/* ------------------------------------------------------------------------ */
/* The main process                                                          */
/* ------------------------------------------------------------------------ */

static _Atomic tel_pid_t main_pid;

static void main_crashes(void *arg)
{
    atomic_store(&main_pid, tel_self());
    crasher(arg);
}

Test(crash, the_main_process_crashing_ends_tel_run_normally, .init = maps_up,
     .fini = down, .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, main_crashes, (void *)(uintptr_t)K_NULL);
    cr_assert_eq(tt_reason_of(atomic_load(&main_pid)), TEL_CRASHED);
    /* And a new run works, with a main that aborts this time. */
    TT_RUN(&cfg, main_crashes, (void *)(uintptr_t)K_ABORT);
    cr_assert_eq(tt_reason_of(atomic_load(&main_pid)), TEL_CRASHED);
}

/* ------------------------------------------------------------------------ */
/* What is not contained                                                     */
/* ------------------------------------------------------------------------ */

static const int handled[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

static void dummy_handler(int sig)
{
    (void)sig;
}

static void quick_main(void *arg)
{
    (void)arg;
    expect_crash(K_NULL);
}

Test(crash, the_previous_handlers_are_back_after_the_run, .init = maps_up,
     .fini = down, .timeout = 60)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dummy_handler;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGFPE, &sa, NULL), 0);
    struct sigaction before[5], after[5];
    for (int i = 0; i < 5; i++)
        cr_assert_eq(sigaction(handled[i], NULL, &before[i]), 0);
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, quick_main, NULL);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(sigaction(handled[i], NULL, &after[i]), 0);
        cr_assert(before[i].sa_handler == after[i].sa_handler,
                  "signal %d's handler was not restored", handled[i]);
        /* (The C library adds SA_RESTORER when it sets one: not ours.) */
        int mask = SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER |
                   SA_RESETHAND;
        cr_assert_eq(before[i].sa_flags & mask, after[i].sa_flags & mask);
    }
}

#ifdef DIES_OF_SEGV
static NO_UBSAN void *thread_faults(void *arg)
{
    (void)arg;
    do_fault(K_NULL);
    return NULL;
}

static void main_starts_faulting_thread(void *arg)
{
    (void)arg;
    pthread_t th;
    if (pthread_create(&th, NULL, thread_faults, NULL) != 0)
        return;
    (void)pthread_join(th, NULL); /* blocks this scheduler: fine here */
    TT_FAIL("the thread's fault was survived");
}

Test(crash, a_fault_on_a_plain_thread_during_a_run_kills_the_program,
     .init = maps_up, DIES_OF_SEGV, .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 2};
    int rc = tel_run(&cfg, main_starts_faulting_thread, NULL);
    cr_assert_fail("tel_run returned %d after a fault on a plain thread", rc);
}

Test(crash, a_fault_in_tel_runs_caller_after_the_run_kills_the_program,
     .init = maps_up, DIES_OF_SEGV, .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, quick_main, NULL);
    do_fault(K_NULL);
    cr_assert_fail("the caller survived a null dereference");
}

Test(crash, a_fault_in_tel_runs_caller_before_the_run_kills_the_program,
     .init = maps_up, DIES_OF_SEGV, .timeout = 60)
{
    do_fault(K_NULL);
    cr_assert_fail("the caller survived a null dereference");
}

/* A process faulting while its thread holds a runtime lock: ending it
 * alone would leave the lock held, so the program ends. */
static tel__spin_t a_lock;

static void main_faults_holding_a_lock(void *arg)
{
    (void)arg;
    tel__spin_init(&a_lock);
    tel__spin_lock(&a_lock);
    do_fault(K_NULL);
    tel__spin_unlock(&a_lock);
    TT_FAIL("the fault was survived");
}

Test(crash, a_fault_while_holding_a_runtime_lock_kills_the_program,
     .init = maps_up, DIES_OF_SEGV, .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 1};
    int rc = tel_run(&cfg, main_faults_holding_a_lock, NULL);
    cr_assert_fail("tel_run returned %d", rc);
}
#endif /* DIES_OF_SEGV */

/* A SIGABRT sent with kill() is not the process's fault: with one
 * scheduler the process runs on the thread the kernel prefers for it (the
 * program's first), and the program dies of it. */
static void main_is_sent_sigabrt(void *arg)
{
    (void)arg;
    (void)kill(getpid(), SIGABRT);
    for (int i = 0; i < 1000; i++)
        (void)tel_sleep(10);
    TT_FAIL("SIGABRT from kill() was survived");
}

Test(crash, a_sigabrt_sent_with_kill_is_not_a_crash, .signal = SIGABRT,
     .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 1};
    int rc = tel_run(&cfg, main_is_sent_sigabrt, NULL);
    cr_assert_fail("tel_run returned %d after SIGABRT from kill()", rc);
}

/* A broken runtime invariant (tel__panic) inside a process still aborts
 * the program: it counts as a held runtime lock. */
static void main_panics(void *arg)
{
    (void)arg;
    tel__panic("a test panic inside a process");
}

Test(crash, a_panic_inside_a_process_aborts_the_program, .signal = SIGABRT,
     .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 1};
    int rc = tel_run(&cfg, main_panics, NULL);
    cr_assert_fail("tel_run returned %d after a panic", rc);
}
