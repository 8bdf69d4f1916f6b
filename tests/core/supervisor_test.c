/*
 * tests/core/supervisor_test.c: tel_sup_* (OTP's supervisor), black-box,
 * modelled on OTP's supervisor_SUITE: start and stop order, the four
 * strategies, the three restart types, restart intensity, nested
 * supervisors, the shutdown protocol (timeout then kill, brutal_kill,
 * infinity, a child that unlinked itself), the administration calls and
 * their errors, bad input, a start failure, many children, and a child that
 * crashes.
 *
 * Children log what they do ("S<id>" started, "T<id>" stopped by an exit
 * signal it trapped) in one shared log, so a test can check the order.
 */
#include "common.h"

#include <signal.h>

enum {
    TAG_CRASH = 1,
    TAG_SEGV,
    TAG_PING,
    TAG_PONG,
    TAG_HELLO,
    TAG_ACK,
    TAG_ABORT, /* call abort() */
    TAG_DEEP,  /* recurse until the stack overflows */
};

/* ------------------------------------------------------------------------ */
/* The event log                                                             */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[1 << 20];
static size_t log_len;

static void log_ev(char kind, int id)
{
    pthread_mutex_lock(&log_mu);
    int n = snprintf(log_buf + log_len, sizeof log_buf - log_len, "%c%d ",
                     kind, id);
    if (n > 0 && (size_t)n < sizeof log_buf - log_len)
        log_len += (size_t)n;
    pthread_mutex_unlock(&log_mu);
}

static void log_clear(void)
{
    pthread_mutex_lock(&log_mu);
    log_len = 0;
    log_buf[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

static bool log_is(const char *want)
{
    pthread_mutex_lock(&log_mu);
    bool eq = strcmp(log_buf, want) == 0;
    pthread_mutex_unlock(&log_mu);
    return eq;
}

/* Inside a process: wait until the log reads want; record it if not. */
static bool log_await(const char *want, const char *what)
{
    bool ok;
    TT_AWAIT(ok, log_is(want), 10000);
    if (!ok) {
        pthread_mutex_lock(&log_mu);
        TT_FAIL("%s: log is \"%s\", want \"%s\"", what, log_buf, want);
        pthread_mutex_unlock(&log_mu);
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Workers                                                                   */
/* ------------------------------------------------------------------------ */

enum on_exit { EXIT_AT_ONCE = 0, EXIT_IGNORE, EXIT_SLOWLY, EXIT_WAIT_ALL };

/* A worker's configuration; its arg. */
struct wk {
    int id;
    bool trap;          /* trap exits, log "T<id>" on an exit signal */
    enum on_exit on_exit;
};

#define MAX_WK 64
static _Atomic tel_pid_t cur_pid[MAX_WK]; /* each worker's latest pid */
static atomic_int fail_start[MAX_WK];     /* flaky_start fails for these */
static atomic_int n_got_exit;             /* EXIT_WAIT_ALL workers */
static atomic_int n_wait_all;

/* Store through NULL. The pointer is read from a volatile, so the compiler
 * cannot see it is NULL and drop the store (an optimiser may delete a store
 * it proves undefined). Built without UBSan's check (it would report the
 * store itself, and sanitizer builds halt on its reports) and without
 * TSan's, so the CPU faults as in a plain build. */
static int *volatile null_ptr;

__attribute__((noinline, no_sanitize("undefined"), no_sanitize_thread))
static void segv(void)
{
    *null_ptr = 1;
}

static __attribute__((noinline)) unsigned deep(unsigned depth,
                                               volatile char *up)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    if (up)
        frame[1] = up[0];
    if (depth > (1u << 30))
        return 0;
    return deep(depth + 1, frame) + (unsigned)frame[100];
}

/*
 * A worker: logs its start, then serves TAG_CRASH (exit with the reason it
 * carries), TAG_SEGV (dereference NULL), TAG_PING (answer TAG_PONG with its
 * id) and, when it traps exits, exit signals (see enum on_exit).
 */
static void worker(void *arg)
{
    const struct wk *w = arg;
    if (w->trap)
        (void)tel_trap_exit(true);
    atomic_store(&cur_pid[w->id], tel_self());
    log_ev('S', w->id);
    for (;;) {
        tel_msg_t *m = NULL;
        if (tel_recv(&m, TEL_INFINITY) != 0)
            continue;
        if (m->tag == TAG_CRASH) {
            tel_reason_t r = (tel_reason_t)tt_msg_u64(m);
            tel_msg_free(m);
            tel_exit(r);
        }
        if (m->tag == TAG_SEGV) {
            tel_msg_free(m);
            segv();
            TT_FAIL("worker %d went on after storing through NULL", w->id);
            tel_exit(99);
        }
        if (m->tag == TAG_ABORT) {
            tel_msg_free(m);
            abort();
        }
        if (m->tag == TAG_DEEP) {
            tel_msg_free(m);
            (void)deep(0, NULL);
            TT_FAIL("worker %d did not overflow", w->id);
            tel_exit(99);
        }
        if (m->tag == TAG_HELLO) {
            tt_send_tag(m->from, TAG_ACK);
            tel_msg_free(m);
            continue;
        }
        if (m->tag == TAG_PING) {
            tel_pid_t from = m->from;
            tel_msg_free(m);
            tt_send_u64(from, TAG_PONG, (uint64_t)w->id);
            continue;
        }
        if (m->tag == TEL_TAG_EXIT) {
            tel_exit_info_t e;
            memcpy(&e, m->data, sizeof e);
            tel_msg_free(m);
            if (w->on_exit == EXIT_IGNORE) {
                log_ev('I', w->id);
                continue;
            }
            if (w->on_exit == EXIT_SLOWLY)
                (void)tel_sleep(300);
            if (w->on_exit == EXIT_WAIT_ALL) {
                /* Stopped in parallel: every sibling got its signal before
                 * any of them has exited. A serial stop would never get
                 * there: the first one waits for the others. */
                atomic_fetch_add(&n_got_exit, 1);
                bool ok;
                TT_AWAIT(ok, atomic_load(&n_got_exit) ==
                                 atomic_load(&n_wait_all), 10000);
                TT_CHECK(ok, "children were not signalled in parallel "
                             "(%d of %d got their exit signal)",
                         atomic_load(&n_got_exit), atomic_load(&n_wait_all));
            }
            log_ev('T', w->id);
            tel_exit(e.reason);
        }
        tel_msg_free(m);
    }
}

static bool match_ack(const tel_msg_t *m, void *ctx)
{
    return m->tag == TAG_ACK && m->from == *(const tel_pid_t *)ctx;
}

/*
 * The workers' start function: spawn linked and wait until the worker has
 * run (it answers a TAG_HELLO), as OTP's synchronous starts do, so that
 * children start one after another in a known order.
 */
static int sync_start(tel_pid_t *out, tel_fn fn, void *arg)
{
    tel_spawn_opts_t o = {.link = true};
    tel_pid_t pid = 0;
    int rc = tel_spawn_opt(&pid, fn, arg, &o);
    if (rc != 0)
        return rc;
    rc = tel_send(pid, TAG_HELLO, NULL, 0);
    tel_msg_t *m = NULL;
    if (rc == 0)
        rc = tel_recv_match(&m, match_ack, &pid, 10000);
    tel_msg_free(m);
    if (!TT_CHECK_RC(rc, 0, "waiting for a worker's ack"))
        return rc;
    *out = pid;
    return 0;
}

/* A start function that fails while fail_start[id] is set. */
static int flaky_start(tel_pid_t *out, tel_fn fn, void *arg)
{
    const struct wk *w = arg;
    if (atomic_load(&fail_start[w->id]))
        return TEL_ENOMEM;
    return sync_start(out, fn, arg);
}

static tel_child_spec_t wspec(const char *id, const struct wk *w,
                              tel_restart_t restart)
{
    return (tel_child_spec_t){.id = id,
                              .start = sync_start,
                              .fn = worker,
                              .arg = (void *)w,
                              .restart = restart,
                              .shutdown = 5000,
                              .type = TEL_WORKER};
}

static const struct wk W[MAX_WK] = {
#define WK(i) [i] = {.id = i, .trap = true}
    WK(0), WK(1), WK(2), WK(3), WK(4), WK(5), WK(6), WK(7), WK(8), WK(9),
#undef WK
};

/* ------------------------------------------------------------------------ */
/* Helpers for test processes                                                */
/* ------------------------------------------------------------------------ */

#define NO_DOWN INT64_MIN

static bool match_down(const tel_msg_t *m, void *ctx)
{
    tel_down_info_t d;
    if (m->tag != TEL_TAG_DOWN || m->size != sizeof d)
        return false;
    memcpy(&d, m->data, sizeof d);
    return d.ref == *(uint64_t *)ctx;
}

/* The reason in the DOWN of ref, or NO_DOWN (recorded) on timeout. */
static tel_reason_t await_down(uint64_t ref, int64_t timeout_ms)
{
    tel_msg_t *m = NULL;
    int rc = tel_recv_match(&m, match_down, &ref, timeout_ms);
    if (!TT_CHECK_RC(rc, 0, "waiting for a DOWN"))
        return NO_DOWN;
    tel_down_info_t d;
    memcpy(&d, m->data, sizeof d);
    tel_msg_free(m);
    return d.reason;
}

static uint64_t monitor(tel_pid_t pid)
{
    uint64_t ref = 0;
    TT_CHECK_RC(tel_monitor(&ref, pid), 0, "tel_monitor");
    return ref;
}

/* Stop sup as its parent does (an exit signal TEL_SHUTDOWN) and check it
 * ends with TEL_SHUTDOWN. */
static void stop_sup(tel_pid_t sup)
{
    uint64_t ref = monitor(sup);
    TT_CHECK_RC(tel_kill(sup, TEL_SHUTDOWN), 0, "tel_kill(sup)");
    tel_reason_t r = await_down(ref, 20000);
    TT_CHECK(r == TEL_SHUTDOWN, "the supervisor ended with %" PRId64, r);
}

/* Wait until worker id runs with a pid other than old; its pid. */
static tel_pid_t await_new_pid(int id, tel_pid_t old)
{
    bool ok;
    TT_AWAIT(ok, atomic_load(&cur_pid[id]) != old &&
                     atomic_load(&cur_pid[id]) != 0 &&
                     tel_is_alive(atomic_load(&cur_pid[id])),
             10000);
    TT_CHECK(ok, "worker %d was not restarted", id);
    return atomic_load(&cur_pid[id]);
}

static void crash(int id, tel_reason_t reason)
{
    tt_send_u64(atomic_load(&cur_pid[id]), TAG_CRASH, (uint64_t)reason);
}

static size_t n_children(tel_pid_t sup)
{
    size_t n = 0;
    TT_CHECK_RC(tel_sup_which_children(sup, NULL, 0, &n), 0,
                "tel_sup_which_children");
    return n;
}

/* The entry of which_children for id (pid 0 and a failure if none). */
static tel_child_info_t child_info(tel_pid_t sup, const char *id)
{
    tel_child_info_t v[16];
    size_t n = 0;
    tel_child_info_t none = {.pid = 0};
    if (!TT_CHECK_RC(tel_sup_which_children(sup, v, 16, &n), 0, "which"))
        return none;
    for (size_t i = 0; i < n && i < 16; i++)
        if (strcmp(v[i].id, id) == 0)
            return v[i];
    TT_FAIL("no child %s", id);
    return none;
}

static const tel_sup_flags_t ONE_FOR_ONE = {TEL_ONE_FOR_ONE, 10, 5000};
static const tel_sup_flags_t ONE_FOR_ALL = {TEL_ONE_FOR_ALL, 10, 5000};
static const tel_sup_flags_t REST_FOR_ONE = {TEL_REST_FOR_ONE, 10, 5000};
static const tel_sup_flags_t SIMPLE = {TEL_SIMPLE_ONE_FOR_ONE, 10, 5000};

/* Start a linked supervisor of workers 1..n (trapping, permanent). */
static tel_pid_t start_workers(const tel_sup_flags_t *f, int n)
{
    static const char *ids[] = {"w0", "w1", "w2", "w3", "w4", "w5", "w6"};
    tel_child_spec_t s[6];
    for (int i = 0; i < n; i++)
        s[i] = wspec(ids[i + 1], &W[i + 1], TEL_PERMANENT);
    tel_pid_t sup = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, f, s, (size_t)n), 0,
                "tel_sup_start_link");
    return sup;
}

/* ------------------------------------------------------------------------ */
/* Start and stop order                                                      */
/* ------------------------------------------------------------------------ */

static void order_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t sup = start_workers(&ONE_FOR_ONE, 3);
    /* tel_sup_start_link returns once all started, in spec order. */
    TT_CHECK(log_is("S1 S2 S3 "), "start order: %s", log_buf);
    stop_sup(sup);
    log_await("S1 S2 S3 T3 T2 T1 ", "stop order");
    for (int i = 1; i <= 3; i++)
        TT_CHECK(!tel_is_alive(atomic_load(&cur_pid[i])), "w%d alive", i);
}

Test(supervisor, children_start_in_spec_order_and_stop_in_reverse,
     .timeout = 60)
{
    TT_RUN(NULL, order_main, NULL);
}

/* A process that starts a supervisor linked, then ends with reason 42. */
static _Atomic tel_pid_t parent_sup;
static void parent_fn(void *arg)
{
    (void)arg;
    atomic_store(&parent_sup, start_workers(&ONE_FOR_ONE, 2));
    tel_exit(42);
}

static void parent_exit_main(void *arg)
{
    (void)arg;
    tel_pid_t p = 0;
    TT_CHECK_RC(tel_spawn(&p, parent_fn, NULL), 0, "tel_spawn");
    bool ok;
    TT_AWAIT(ok, atomic_load(&parent_sup) != 0, 10000);
    TT_CHECK(ok, "the parent never started its supervisor");
    tel_pid_t sup = atomic_load(&parent_sup);
    uint64_t ref = monitor(sup);
    tel_reason_t r = await_down(ref, 20000);
    /* The supervisor may be gone before we monitored it: then NOPROC. */
    TT_CHECK(r == 42 || r == TEL_NOPROC, "supervisor ended with %" PRId64, r);
    log_await("S1 S2 T2 T1 ", "children stopped when the parent exited");
}

Test(supervisor, parent_exit_stops_children_and_the_supervisor_with_its_reason,
     .timeout = 60)
{
    TT_RUN(NULL, parent_exit_main, NULL);
}

static void exit_from_stranger_fn(void *arg)
{
    TT_CHECK_RC(tel_kill(*(tel_pid_t *)arg, TEL_SHUTDOWN), 0, "tel_kill");
}

static void stranger_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t sup = start_workers(&ONE_FOR_ONE, 1);
    tel_pid_t p = 0;
    TT_CHECK_RC(tel_spawn(&p, exit_from_stranger_fn, &sup), 0, "spawn");
    TT_CHECK(tt_await_dead(p, 10000), "stranger did not end");
    /* OTP: a supervisor traps exits and ignores EXITs from non-children
     * other than its parent. */
    TT_CHECK(n_children(sup) == 1, "supervisor lost its child");
    TT_CHECK(tel_is_alive(sup), "an exit signal from a stranger ended it");
    stop_sup(sup);
}

Test(supervisor, exit_signal_from_a_stranger_is_ignored, .timeout = 60)
{
    TT_RUN(NULL, stranger_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Strategies                                                                */
/* ------------------------------------------------------------------------ */

static void one_for_one_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t sup = start_workers(&ONE_FOR_ONE, 3);
    tel_pid_t p1 = cur_pid[1], p2 = cur_pid[2], p3 = cur_pid[3];
    log_clear();
    crash(2, 7);
    tel_pid_t n2 = await_new_pid(2, p2);
    TT_CHECK(n2 != p2, "w2 has the same pid");
    log_await("S2 ", "only w2 restarted");
    TT_CHECK(cur_pid[1] == p1 && cur_pid[3] == p3, "siblings restarted");
    TT_CHECK(child_info(sup, "w2").pid == n2, "which_children has old pid");
    stop_sup(sup);
}

Test(supervisor, one_for_one_restarts_only_the_failed_child, .timeout = 60)
{
    TT_RUN(NULL, one_for_one_main, NULL);
}

static void one_for_all_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t sup = start_workers(&ONE_FOR_ALL, 3);
    tel_pid_t p1 = cur_pid[1], p3 = cur_pid[3];
    log_clear();
    crash(2, 7);
    /* The others stop last first, then all start in order. */
    log_await("T3 T1 S1 S2 S3 ", "one_for_all restart");
    TT_CHECK(cur_pid[1] != p1 && cur_pid[3] != p3, "siblings kept pids");
    TT_CHECK(!tel_is_alive(p1) && !tel_is_alive(p3), "old siblings alive");
    stop_sup(sup);
}

Test(supervisor, one_for_all_stops_the_others_in_reverse_and_restarts_all,
     .timeout = 60)
{
    TT_RUN(NULL, one_for_all_main, NULL);
}

static void rest_for_one_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t sup = start_workers(&REST_FOR_ONE, 4);
    tel_pid_t p1 = cur_pid[1];
    log_clear();
    crash(2, 7);
    log_await("T4 T3 S2 S3 S4 ", "rest_for_one restart");
    TT_CHECK(cur_pid[1] == p1, "w1, started before w2, was restarted");
    log_clear();
    crash(4, 7);
    log_await("S4 ", "rest_for_one restart of the last child");
    stop_sup(sup);
}

Test(supervisor, rest_for_one_restarts_the_failed_child_and_those_after_it,
     .timeout = 60)
{
    TT_RUN(NULL, rest_for_one_main, NULL);
}

static void group_temporary_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_child_spec_t s[] = {wspec("w1", &W[1], TEL_PERMANENT),
                            wspec("w2", &W[2], TEL_TEMPORARY),
                            wspec("w3", &W[3], TEL_TRANSIENT)};
    tel_pid_t sup = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, &ONE_FOR_ALL, s, 3), 0, "start");
    log_clear();
    crash(1, 7);
    /* The temporary child is stopped and dropped; the transient one is
     * restarted with the group (it did not end by itself). */
    log_await("T3 T2 S1 S3 ", "one_for_all with a temporary child");
    TT_CHECK(n_children(sup) == 2, "temporary child kept");
    stop_sup(sup);
}

Test(supervisor, a_group_restart_drops_temporary_children, .timeout = 60)
{
    TT_RUN(NULL, group_temporary_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Restart types                                                             */
/* ------------------------------------------------------------------------ */

static void restart_types_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_child_spec_t s[] = {wspec("perm", &W[1], TEL_PERMANENT),
                            wspec("trans", &W[2], TEL_TRANSIENT),
                            wspec("temp", &W[3], TEL_TEMPORARY)};
    tel_pid_t sup = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, &ONE_FOR_ONE, s, 3), 0, "start");

    /* permanent: restarted even after a normal exit. */
    tel_pid_t old = cur_pid[1];
    crash(1, TEL_NORMAL);
    await_new_pid(1, old);

    /* transient: restarted after an abnormal exit only. */
    old = cur_pid[2];
    crash(2, 99);
    old = await_new_pid(2, old);
    crash(2, TEL_NORMAL);
    TT_CHECK(tt_await_dead(old, 10000), "trans did not exit");
    tel_child_info_t ci;
    bool ok;
    TT_AWAIT(ok, (ci = child_info(sup, "trans")).pid == 0, 10000);
    TT_CHECK(ok, "transient child restarted after a normal exit");
    TT_CHECK(!ci.restarting, "transient child shows restarting");
    TT_CHECK_RC(tel_sup_restart_child(sup, "trans", &old), 0, "restart");
    crash(2, TEL_SHUTDOWN);
    TT_AWAIT(ok, child_info(sup, "trans").pid == 0, 10000);
    TT_CHECK(ok, "transient child restarted after a shutdown exit");

    /* temporary: never restarted; its spec goes. */
    TT_CHECK(n_children(sup) == 3, "before: %zu", n_children(sup));
    crash(3, 99);
    TT_AWAIT(ok, n_children(sup) == 2, 10000);
    TT_CHECK(ok, "temporary child's spec stayed");
    TT_CHECK_RC(tel_sup_restart_child(sup, "temp", NULL), TEL_ENOENT,
                "restart of a gone temporary child");
    stop_sup(sup);
    TT_CHECK(log_is("S1 S2 S3 S1 S2 S2 T1 "), "log: %s", log_buf);
}

Test(supervisor, permanent_transient_and_temporary_restart_as_otp,
     .timeout = 60)
{
    TT_RUN(NULL, restart_types_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Restart intensity                                                         */
/* ------------------------------------------------------------------------ */

static void intensity_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_sup_flags_t f = {TEL_ONE_FOR_ONE, 2, 60000};
    tel_pid_t sup = start_workers(&f, 2);
    uint64_t ref = monitor(sup);
    /* Two restarts are allowed... */
    for (int i = 0; i < 2; i++) {
        tel_pid_t old = cur_pid[1];
        crash(1, 5);
        await_new_pid(1, old);
    }
    TT_CHECK(tel_is_alive(sup), "ended after 2 restarts");
    tel_pid_t w2 = cur_pid[2];
    /* ...the third within the period ends the supervisor. */
    crash(1, 5);
    tel_reason_t r = await_down(ref, 20000);
    TT_CHECK(r == TEL_SHUTDOWN, "supervisor ended with %" PRId64, r);
    TT_CHECK(!tel_is_alive(w2), "sibling survived its supervisor");
    TT_CHECK(log_is("S1 S2 S1 S1 T2 "), "log: %s", log_buf);
}

Test(supervisor, more_restarts_than_intensity_end_the_supervisor_with_shutdown,
     .timeout = 60)
{
    TT_RUN(NULL, intensity_main, NULL);
}

static void intensity_zero_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_sup_flags_t f = {TEL_ONE_FOR_ONE, 0, 1000};
    tel_pid_t sup = start_workers(&f, 1);
    uint64_t ref = monitor(sup);
    crash(1, 5);
    tel_reason_t r = await_down(ref, 20000);
    TT_CHECK(r == TEL_SHUTDOWN, "supervisor ended with %" PRId64, r);
    TT_CHECK(log_is("S1 "), "restarted with intensity 0: %s", log_buf);
}

Test(supervisor, intensity_zero_allows_no_restart, .timeout = 60)
{
    TT_RUN(NULL, intensity_zero_main, NULL);
}

static void period_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_sup_flags_t f = {TEL_ONE_FOR_ONE, 1, 100};
    tel_pid_t sup = start_workers(&f, 1);
    /* One restart per 100 ms is allowed; spaced 250 ms apart, never more
     * than one falls in a period. */
    for (int i = 0; i < 4; i++) {
        tel_pid_t old = cur_pid[1];
        crash(1, 5);
        await_new_pid(1, old);
        (void)tel_sleep(250);
    }
    TT_CHECK(tel_is_alive(sup), "restarts outside the period were counted");
    stop_sup(sup);
}

Test(supervisor, restarts_older_than_the_period_are_forgotten, .timeout = 60)
{
    TT_RUN(NULL, period_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Nested supervisors                                                        */
/* ------------------------------------------------------------------------ */

static _Atomic tel_pid_t inner_sup;

static int start_inner(tel_pid_t *out, tel_fn fn, void *arg)
{
    (void)fn;
    (void)arg;
    tel_child_spec_t s[] = {wspec("i4", &W[4], TEL_PERMANENT),
                            wspec("i5", &W[5], TEL_PERMANENT)};
    tel_sup_flags_t f = {TEL_ONE_FOR_ONE, 1, 60000};
    int rc = tel_sup_start_link(out, &f, s, 2);
    if (rc == 0)
        atomic_store(&inner_sup, *out);
    return rc;
}

static void nested_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_child_spec_t s[] = {
        wspec("w1", &W[1], TEL_PERMANENT),
        {.id = "inner", .start = start_inner, .restart = TEL_PERMANENT,
         .shutdown = TEL_INFINITY, .type = TEL_SUPERVISOR},
        wspec("w3", &W[3], TEL_PERMANENT)};
    tel_pid_t top = 0;
    TT_CHECK_RC(tel_sup_start_link(&top, &ONE_FOR_ONE, s, 3), 0, "start");
    TT_CHECK(log_is("S1 S4 S5 S3 "), "start order: %s", log_buf);
    tel_child_counts_t k;
    TT_CHECK_RC(tel_sup_count_children(top, &k), 0, "count");
    TT_CHECK(k.specs == 3 && k.active == 3 && k.supervisors == 1 &&
                 k.workers == 2,
             "counts %u %u %u %u", k.specs, k.active, k.supervisors,
             k.workers);
    tel_pid_t in1 = atomic_load(&inner_sup);
    TT_CHECK(child_info(top, "inner").pid == in1, "inner pid");
    TT_CHECK(child_info(top, "inner").type == TEL_SUPERVISOR, "inner type");

    /* A worker of the inner supervisor is restarted there. */
    log_clear();
    crash(4, 3);
    log_await("S4 ", "inner restart");
    TT_CHECK(atomic_load(&inner_sup) == in1, "inner supervisor restarted");

    /* The inner one exceeds its intensity: it stops its children and
     * exits TEL_SHUTDOWN; the top one restarts it. */
    log_clear();
    crash(4, 3);
    log_await("T5 S4 S5 ", "inner supervisor restarted by the top one");
    /* Its children log their start inside its start call; start_inner
     * records its pid only once that call returned. */
    bool renewed;
    TT_AWAIT(renewed, atomic_load(&inner_sup) != in1, 10000);
    TT_CHECK(renewed, "inner supervisor not new");
    TT_CHECK(!tel_is_alive(in1), "old inner supervisor alive");

    /* Stopping the top one stops the whole tree, last first. */
    log_clear();
    stop_sup(top);
    log_await("T3 T5 T4 T1 ", "tree stop order");
    TT_CHECK(!tel_is_alive(atomic_load(&inner_sup)), "inner alive");
}

Test(supervisor, nested_supervisors_restart_and_stop_as_a_tree, .timeout = 60)
{
    TT_RUN(NULL, nested_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* The shutdown protocol                                                     */
/* ------------------------------------------------------------------------ */

static _Atomic tel_pid_t the_sup;

/* A child that unlinks itself from its supervisor, then waits. */
static void unlinker(void *arg)
{
    (void)arg;
    TT_CHECK_RC(tel_unlink(atomic_load(&the_sup)), 0, "tel_unlink");
    atomic_store(&cur_pid[9], tel_self());
    tt_wait_one_fn(NULL);
}

static void unlinked_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t sup = start_workers(&ONE_FOR_ONE, 0);
    atomic_store(&the_sup, sup);
    tel_child_spec_t s = {.id = "u", .fn = unlinker, .shutdown = 1000};
    tel_pid_t pid = 0;
    TT_CHECK_RC(tel_sup_start_child(sup, &s, NULL, &pid), 0, "start_child");
    bool ok;
    TT_AWAIT(ok, atomic_load(&cur_pid[9]) == pid, 10000);
    TT_CHECK(ok, "the child never unlinked");
    uint64_t ref = monitor(pid);
    TT_CHECK_RC(tel_sup_terminate_child(sup, "u", 0), 0, "terminate_child");
    TT_CHECK(!tel_is_alive(pid), "unlinked child still alive");
    tel_reason_t r = await_down(ref, 10000);
    TT_CHECK(r == TEL_SHUTDOWN, "child ended with %" PRId64, r);
    stop_sup(sup);
}

Test(supervisor, a_child_that_unlinked_itself_still_stops, .timeout = 60)
{
    TT_RUN(NULL, unlinked_main, NULL);
}

/* Start one child with the given exit behaviour and shutdown, terminate it,
 * and give its reason and how long terminate_child took. */
static tel_reason_t terminate_one(enum on_exit on_exit, int64_t shutdown,
                                  int64_t *took_ms)
{
    static struct wk w = {.id = 6, .trap = true};
    w.on_exit = on_exit;
    tel_pid_t sup = start_workers(&ONE_FOR_ONE, 0);
    tel_child_spec_t s = wspec("c", &w, TEL_PERMANENT);
    s.shutdown = shutdown;
    tel_pid_t pid = 0;
    TT_CHECK_RC(tel_sup_start_child(sup, &s, NULL, &pid), 0, "start_child");
    uint64_t ref = monitor(pid);
    int64_t t0 = tt_now_ms();
    TT_CHECK_RC(tel_sup_terminate_child(sup, "c", 0), 0, "terminate_child");
    *took_ms = tt_now_ms() - t0;
    TT_CHECK(!tel_is_alive(pid), "child alive after terminate_child");
    tel_reason_t r = await_down(ref, 10000);
    tel_child_info_t ci = child_info(sup, "c");
    TT_CHECK(ci.pid == 0 && !ci.restarting, "terminated child restarted");
    stop_sup(sup);
    return r;
}

static void timeout_kill_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    int64_t took;
    tel_reason_t r = terminate_one(EXIT_IGNORE, 200, &took);
    TT_CHECK(r == TEL_KILLED, "child ended with %" PRId64, r);
    TT_CHECK(took >= 190, "killed after %" PRId64 " ms, before its 200",
             took);
    TT_CHECK(log_is("S6 I6 "), "log: %s", log_buf);
    log_clear();
    r = terminate_one(EXIT_AT_ONCE, 200, &took);
    TT_CHECK(r == TEL_SHUTDOWN, "obliging child ended with %" PRId64, r);
    TT_CHECK(log_is("S6 T6 "), "log: %s", log_buf);
}

Test(supervisor, a_child_that_ignores_shutdown_is_killed_after_its_timeout,
     .timeout = 60)
{
    TT_RUN(NULL, timeout_kill_main, NULL);
}

static void brutal_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    int64_t took;
    tel_reason_t r = terminate_one(EXIT_AT_ONCE, TEL_BRUTAL_KILL, &took);
    TT_CHECK(r == TEL_KILLED, "child ended with %" PRId64, r);
    TT_CHECK(log_is("S6 "), "a brutally killed child saw a signal: %s",
             log_buf);
}

Test(supervisor, brutal_kill_kills_at_once, .timeout = 60)
{
    TT_RUN(NULL, brutal_main, NULL);
}

static void infinity_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    int64_t took;
    tel_reason_t r = terminate_one(EXIT_SLOWLY, TEL_INFINITY, &took);
    TT_CHECK(r == TEL_SHUTDOWN, "child ended with %" PRId64, r);
    TT_CHECK(took >= 290, "returned after %" PRId64 " ms", took);
    TT_CHECK(log_is("S6 T6 "), "log: %s", log_buf);
}

Test(supervisor, infinity_waits_for_a_slow_child, .timeout = 60)
{
    TT_RUN(NULL, infinity_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Administration calls                                                      */
/* ------------------------------------------------------------------------ */

static void admin_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t sup = start_workers(&ONE_FOR_ONE, 1);
    tel_child_spec_t s = wspec("a2", &W[2], TEL_PERMANENT);
    tel_pid_t pid = 0, again = 0;
    TT_CHECK_RC(tel_sup_start_child(sup, &s, NULL, &pid), 0, "start_child");
    TT_CHECK(pid != 0 && pid == cur_pid[2], "start_child pid");
    TT_CHECK_RC(tel_sup_start_child(sup, &s, NULL, &again), TEL_EALREADY,
                "start_child of a running id");
    TT_CHECK(again == pid, "EALREADY gives the running pid");
    TT_CHECK_RC(tel_sup_restart_child(sup, "a2", NULL), TEL_ERUNNING,
                "restart_child of a running child");
    TT_CHECK_RC(tel_sup_delete_child(sup, "a2"), TEL_ERUNNING,
                "delete_child of a running child");
    TT_CHECK_RC(tel_sup_terminate_child(sup, "a2", 0), 0, "terminate");
    TT_CHECK_RC(tel_sup_terminate_child(sup, "a2", 0), 0,
                "terminate of a stopped child");
    TT_CHECK_RC(tel_sup_start_child(sup, &s, NULL, NULL), TEL_EPRESENT,
                "start_child of a present id");
    TT_CHECK_RC(tel_sup_restart_child(sup, "a2", &again), 0, "restart");
    TT_CHECK(again != 0 && again != pid && tel_is_alive(again),
             "restart_child pid");
    TT_CHECK_RC(tel_sup_terminate_child(sup, "a2", 0), 0, "terminate");
    TT_CHECK_RC(tel_sup_delete_child(sup, "a2"), 0, "delete_child");
    TT_CHECK_RC(tel_sup_delete_child(sup, "a2"), TEL_ENOENT, "delete again");
    TT_CHECK_RC(tel_sup_terminate_child(sup, "nope", 0), TEL_ENOENT,
                "terminate unknown");
    TT_CHECK_RC(tel_sup_restart_child(sup, "nope", NULL), TEL_ENOENT,
                "restart unknown");

    /* A child whose start fails is not added. */
    atomic_store(&fail_start[3], 1);
    tel_child_spec_t f = wspec("a3", &W[3], TEL_PERMANENT);
    f.start = flaky_start;
    TT_CHECK_RC(tel_sup_start_child(sup, &f, NULL, &pid), TEL_EINIT,
                "start_child with a failing start");
    TT_CHECK(pid == 0, "pid set on failure");
    TT_CHECK(n_children(sup) == 1, "failed child kept");
    atomic_store(&fail_start[3], 0);
    TT_CHECK_RC(tel_sup_start_child(sup, &f, NULL, &pid), 0, "start_child");

    /* which_children: start order; cap smaller than the total. */
    tel_child_info_t v[4];
    size_t n = 0;
    memset(v, 0xAB, sizeof v);
    TT_CHECK_RC(tel_sup_which_children(sup, v, 1, &n), 0, "which cap 1");
    TT_CHECK(n == 2 && strcmp(v[0].id, "w1") == 0, "which: %zu %s", n,
             v[0].id);
    TT_CHECK(v[1].pid == 0xABABABABABABABABull, "wrote past cap");
    TT_CHECK_RC(tel_sup_which_children(sup, v, 4, &n), 0, "which");
    TT_CHECK(n == 2 && strcmp(v[1].id, "a3") == 0 && v[1].pid == pid &&
                 !v[1].restarting && v[1].type == TEL_WORKER,
             "which_children entry");
    tel_child_counts_t k;
    TT_CHECK_RC(tel_sup_count_children(sup, &k), 0, "count");
    TT_CHECK(k.specs == 2 && k.active == 2 && k.workers == 2 &&
                 k.supervisors == 0,
             "counts %u %u %u %u", k.specs, k.active, k.supervisors,
             k.workers);
    TT_CHECK_RC(tel_sup_terminate_child(sup, "a3", 0), 0, "terminate");
    TT_CHECK_RC(tel_sup_count_children(sup, &k), 0, "count");
    TT_CHECK(k.specs == 2 && k.active == 1, "after terminate: %u %u",
             k.specs, k.active);

    /* A temporary child's spec goes when it is terminated. */
    tel_child_spec_t t = wspec("tmp", &W[4], TEL_TEMPORARY);
    TT_CHECK_RC(tel_sup_start_child(sup, &t, NULL, NULL), 0, "start temp");
    TT_CHECK_RC(tel_sup_terminate_child(sup, "tmp", 0), 0, "terminate");
    TT_CHECK_RC(tel_sup_restart_child(sup, "tmp", NULL), TEL_ENOENT,
                "restart of a terminated temporary child");
    stop_sup(sup);

    /* Calls to a supervisor that is gone. */
    TT_CHECK(tt_await_dead(sup, 10000), "supervisor alive");
    int rc = tel_sup_count_children(sup, &k);
    TT_CHECK(rc == TEL_ENOPROC || rc == TEL_EDOWN, "count: %d", rc);
    rc = tel_sup_start_child(sup, &s, NULL, NULL);
    TT_CHECK(rc == TEL_ENOPROC || rc == TEL_EDOWN, "start_child: %d", rc);
}

Test(supervisor, admin_calls_and_their_errors, .timeout = 60)
{
    TT_RUN(NULL, admin_main, NULL);
}

/* A restart that keeps failing: the child shows restarting; the
 * supervisor still answers; when starts work again, it comes back. */
static void restarting_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_sup_flags_t fl = {TEL_ONE_FOR_ONE, 1000000, 60000};
    tel_child_spec_t s = wspec("r", &W[7], TEL_PERMANENT);
    s.start = flaky_start;
    tel_pid_t sup = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, &fl, &s, 1), 0, "start");
    tel_pid_t old = cur_pid[7];
    atomic_store(&fail_start[7], 1);
    crash(7, 9);
    bool ok;
    TT_AWAIT(ok, child_info(sup, "r").restarting, 10000);
    TT_CHECK(ok, "child never showed restarting");
    TT_CHECK(child_info(sup, "r").pid == 0, "restarting child has a pid");
    TT_CHECK_RC(tel_sup_restart_child(sup, "r", NULL), TEL_ERESTARTING,
                "restart_child while restarting");
    TT_CHECK_RC(tel_sup_delete_child(sup, "r"), TEL_ERESTARTING,
                "delete_child while restarting");
    tel_child_counts_t k;
    TT_CHECK_RC(tel_sup_count_children(sup, &k), 0, "count");
    TT_CHECK(k.specs == 1 && k.active == 0, "counts %u %u", k.specs,
             k.active);
    atomic_store(&fail_start[7], 0);
    await_new_pid(7, old);
    TT_AWAIT(ok, !child_info(sup, "r").restarting, 10000);
    TT_CHECK(ok, "still restarting");

    /* terminate_child stops the retries. */
    atomic_store(&fail_start[7], 1);
    crash(7, 9);
    TT_AWAIT(ok, child_info(sup, "r").restarting, 10000);
    TT_CHECK_RC(tel_sup_terminate_child(sup, "r", 0), 0, "terminate");
    atomic_store(&fail_start[7], 0);
    (void)tel_sleep(50);
    tel_child_info_t ci = child_info(sup, "r");
    TT_CHECK(ci.pid == 0 && !ci.restarting, "retries went on");
    stop_sup(sup);
}

Test(supervisor, a_failing_restart_shows_restarting_and_is_retried,
     .timeout = 60)
{
    TT_RUN(NULL, restarting_main, NULL);
}

static void retry_intensity_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_sup_flags_t fl = {TEL_ONE_FOR_ONE, 10, 60000};
    tel_child_spec_t s = wspec("r", &W[7], TEL_PERMANENT);
    s.start = flaky_start;
    tel_pid_t sup = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, &fl, &s, 1), 0, "start");
    uint64_t ref = monitor(sup);
    atomic_store(&fail_start[7], 1);
    crash(7, 9);
    tel_reason_t r = await_down(ref, 20000);
    TT_CHECK(r == TEL_SHUTDOWN, "supervisor ended with %" PRId64, r);
}

Test(supervisor, failing_restarts_count_toward_intensity, .timeout = 60)
{
    TT_RUN(NULL, retry_intensity_main, NULL);
}

static void stop_in_loop_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_sup_flags_t fl = {TEL_ONE_FOR_ONE, UINT32_MAX, 60000};
    tel_child_spec_t s[] = {wspec("w1", &W[1], TEL_PERMANENT),
                            wspec("r", &W[7], TEL_PERMANENT)};
    s[1].start = flaky_start;
    tel_pid_t sup = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, &fl, s, 2), 0, "start");
    atomic_store(&fail_start[7], 1);
    crash(7, 9);
    bool ok;
    TT_AWAIT(ok, child_info(sup, "r").restarting, 10000);
    TT_CHECK(ok, "never restarting");
    (void)tel_sleep(20); /* let it spin through some retries */
    log_clear();
    stop_sup(sup);
    TT_CHECK(log_is("T1 "), "log: %s", log_buf);
}

Test(supervisor, shutdown_during_a_restart_loop_does_not_hang, .timeout = 60)
{
    TT_RUN(NULL, stop_in_loop_main, NULL);
}

/* one_for_all: the third child's start fails during the group restart. */
static void group_fail_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_sup_flags_t fl = {TEL_ONE_FOR_ALL, 1000000, 60000};
    tel_child_spec_t s[] = {wspec("w1", &W[1], TEL_PERMANENT),
                            wspec("w2", &W[2], TEL_PERMANENT),
                            wspec("w3", &W[3], TEL_PERMANENT)};
    s[2].start = flaky_start;
    tel_pid_t sup = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, &fl, s, 3), 0, "start");
    log_clear();
    atomic_store(&fail_start[3], 1);
    crash(1, 9);
    bool ok;
    TT_AWAIT(ok, child_info(sup, "w1").restarting, 10000);
    TT_CHECK(ok, "w1 never showed restarting");
    /* Each failed round stops the children it started again. */
    tel_child_counts_t k;
    TT_CHECK_RC(tel_sup_count_children(sup, &k), 0, "count");
    TT_CHECK(k.active == 0, "active %u between rounds", k.active);
    atomic_store(&fail_start[3], 0);
    TT_AWAIT(ok, tel_sup_count_children(sup, &k) == 0 && k.active == 3 &&
                     !child_info(sup, "w1").restarting,
             10000);
    TT_CHECK(ok, "group never came back: active %u", k.active);
    pthread_mutex_lock(&log_mu);
    TT_CHECK(strncmp(log_buf, "T3 T2 S1 S2 T2 T1 ", 18) == 0,
             "first round: %s", log_buf);
    size_t len = strlen(log_buf);
    TT_CHECK(len >= 9 && strcmp(log_buf + len - 9, "S1 S2 S3 ") == 0,
             "last round: %s", log_buf);
    pthread_mutex_unlock(&log_mu);
    stop_sup(sup);
}

Test(supervisor, a_failed_group_restart_stops_its_restarts_and_retries,
     .timeout = 60)
{
    TT_RUN(NULL, group_fail_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* A start failure at supervisor start                                       */
/* ------------------------------------------------------------------------ */

static void start_fail_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_child_spec_t s[] = {wspec("w1", &W[1], TEL_PERMANENT),
                            wspec("w2", &W[2], TEL_PERMANENT),
                            wspec("w3", &W[3], TEL_PERMANENT),
                            wspec("w4", &W[4], TEL_PERMANENT)};
    s[2].start = flaky_start;
    atomic_store(&fail_start[3], 1);
    uint32_t before = tel_process_count();
    tel_pid_t sup = 1;
    TT_CHECK_RC(tel_sup_start_link(&sup, &ONE_FOR_ONE, s, 4), TEL_EINIT,
                "start with a failing child");
    TT_CHECK(sup == 0, "pid set on failure");
    TT_CHECK(log_is("S1 S2 T2 T1 "), "log: %s", log_buf);
    TT_CHECK(tt_await_count(before, 10000), "processes left: %u vs %u",
             tel_process_count(), before);
    log_clear();
    TT_CHECK_RC(tel_sup_start(&sup, &ONE_FOR_ONE, s, 4), TEL_EINIT,
                "unlinked start with a failing child");
    TT_CHECK(log_is("S1 S2 T2 T1 "), "log: %s", log_buf);
    TT_CHECK(tt_await_count(before, 10000), "processes left");
}

Test(supervisor, a_child_start_failure_stops_the_started_ones_and_gives_einit,
     .timeout = 60)
{
    TT_RUN(NULL, start_fail_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* simple_one_for_one                                                        */
/* ------------------------------------------------------------------------ */

static void simple_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_child_spec_t t = wspec(NULL, NULL, TEL_PERMANENT);
    tel_pid_t sup = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, &SIMPLE, &t, 1), 0, "start");
    TT_CHECK(n_children(sup) == 0, "simple started children");
    tel_pid_t p[4] = {0};
    for (int i = 1; i <= 3; i++) {
        /* The spec is ignored; the arg is the child's. */
        TT_CHECK_RC(tel_sup_start_child(sup, NULL, (void *)&W[i], &p[i]), 0,
                    "start_child");
        TT_CHECK(p[i] == cur_pid[i], "child %d pid", i);
    }
    TT_CHECK(log_is("S1 S2 S3 "), "log: %s", log_buf);
    tel_child_counts_t k;
    TT_CHECK_RC(tel_sup_count_children(sup, &k), 0, "count");
    TT_CHECK(k.specs == 1 && k.active == 3 && k.workers == 3,
             "counts %u %u %u", k.specs, k.active, k.workers);
    tel_child_info_t v[4];
    size_t n = 0;
    TT_CHECK_RC(tel_sup_which_children(sup, v, 4, &n), 0, "which");
    TT_CHECK(n == 3 && v[0].pid == p[1] && v[2].pid == p[3] &&
                 v[1].id[0] == '\0',
             "which_children");

    /* A permanent child is restarted with its own arg. */
    log_clear();
    crash(2, 8);
    p[2] = await_new_pid(2, p[2]);
    TT_CHECK(log_is("S2 "), "log: %s", log_buf);

    /* terminate_child by pid drops the child. */
    TT_CHECK_RC(tel_sup_terminate_child(sup, NULL, p[1]), 0, "terminate");
    TT_CHECK(!tel_is_alive(p[1]) && n_children(sup) == 2, "terminated");
    TT_CHECK_RC(tel_sup_terminate_child(sup, NULL, p[1]), TEL_ENOENT,
                "terminate a gone pid");
    TT_CHECK_RC(tel_sup_terminate_child(sup, "x", 0), TEL_EINVAL,
                "terminate_child by id on simple");
    TT_CHECK_RC(tel_sup_restart_child(sup, "x", NULL), TEL_EINVAL,
                "restart_child on simple");
    TT_CHECK_RC(tel_sup_delete_child(sup, "x"), TEL_EINVAL,
                "delete_child on simple");
    log_clear();
    stop_sup(sup);
    TT_CHECK(!tel_is_alive(p[2]) && !tel_is_alive(p[3]), "children alive");
    TT_CHECK(log_is("T3 T2 ") || log_is("T2 T3 "), "log: %s", log_buf);
}

Test(supervisor, simple_one_for_one_starts_children_from_a_template,
     .timeout = 60)
{
    TT_RUN(NULL, simple_main, NULL);
}

static void simple_types_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_child_spec_t t = wspec(NULL, NULL, TEL_TRANSIENT);
    tel_pid_t sup = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, &SIMPLE, &t, 1), 0, "start");
    for (int i = 1; i <= 2; i++)
        TT_CHECK_RC(tel_sup_start_child(sup, NULL, (void *)&W[i], NULL), 0,
                    "start_child");
    tel_pid_t old = cur_pid[1];
    crash(1, 77);
    await_new_pid(1, old);
    crash(1, TEL_NORMAL);
    bool ok;
    TT_AWAIT(ok, n_children(sup) == 1, 10000);
    TT_CHECK(ok, "a transient child that ended normally stayed");
    stop_sup(sup);
}

Test(supervisor, simple_one_for_one_drops_a_transient_child_that_ended_normally,
     .timeout = 60)
{
    TT_RUN(NULL, simple_types_main, NULL);
}

static void parallel_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    static struct wk w[8];
    tel_child_spec_t t = wspec(NULL, NULL, TEL_PERMANENT);
    tel_pid_t sup = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, &SIMPLE, &t, 1), 0, "start");
    atomic_store(&n_wait_all, 8);
    for (int i = 0; i < 8; i++) {
        w[i] = (struct wk){.id = 10 + i, .trap = true,
                           .on_exit = EXIT_WAIT_ALL};
        TT_CHECK_RC(tel_sup_start_child(sup, NULL, &w[i], NULL), 0,
                    "start_child");
    }
    stop_sup(sup);
    TT_CHECK(atomic_load(&n_got_exit) == 8, "%d got exit",
             atomic_load(&n_got_exit));
}

Test(supervisor, simple_one_for_one_children_stop_in_parallel, .timeout = 60)
{
    TT_RUN(NULL, parallel_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Many children                                                             */
/* ------------------------------------------------------------------------ */

static void idle_wake(void *arg)
{
    tt_wait_one_fn(arg);
}

/* A child that waits holding no stack. */
static void idle_child(void *arg)
{
    (void)arg;
    (void)tel_hibernate(idle_wake, NULL);
}

struct many {
    size_t n;
    bool simple;
};

static void many_main(void *arg)
{
    const struct many *mn = arg;
    (void)tel_trap_exit(true);
    uint32_t before = tel_process_count();
    tel_child_spec_t t = {.fn = idle_child, .restart = TEL_PERMANENT,
                          .shutdown = 5000};
    tel_sup_flags_t fl = {mn->simple ? TEL_SIMPLE_ONE_FOR_ONE
                                     : TEL_ONE_FOR_ONE,
                          1, 5000};
    tel_pid_t sup = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, &fl, &t, mn->simple ? 1 : 0), 0,
                "start");
    for (size_t i = 0; i < mn->n; i++) {
        char id[32];
        snprintf(id, sizeof id, "c%zu", i);
        t.id = id;
        int rc = tel_sup_start_child(sup, &t, NULL, NULL);
        if (!TT_CHECK_RC(rc, 0, "start_child"))
            break;
    }
    tel_child_counts_t k;
    TT_CHECK_RC(tel_sup_count_children(sup, &k), 0, "count");
    TT_CHECK(k.active == mn->n && k.workers == mn->n, "active %u of %zu",
             k.active, mn->n);
    TT_CHECK(tel_process_count() == before + 1 + mn->n, "processes %u",
             tel_process_count());
    if (!mn->simple) {
        /* One child in the middle, found by id. */
        char id[32];
        snprintf(id, sizeof id, "c%zu", mn->n / 2);
        TT_CHECK_RC(tel_sup_terminate_child(sup, id, 0), 0, "terminate");
        TT_CHECK_RC(tel_sup_delete_child(sup, id), 0, "delete");
        TT_CHECK(n_children(sup) == mn->n - 1, "after delete");
    }
    stop_sup(sup);
    TT_CHECK(tt_await_count(before, 20000), "processes left: %u vs %u",
             tel_process_count(), before);
}

/* 100,000 children (fewer in sanitizer builds: a TSan fiber costs about
 * 14 ms to make and 870 KB, so TSan builds take a fifth of their scale). */
static size_t many_n(void)
{
    size_t n = tel_test_scaled(100000, 1000);
#if defined(__SANITIZE_THREAD__)
    n /= 5;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    n /= 5;
#endif
#endif
    return tel_test_live_cap(n);
}

Test(supervisor, simple_one_for_one_starts_and_stops_many_children,
     .timeout = 300)
{
    struct many mn = {.n = many_n(), .simple = true};
    TT_RUN(NULL, many_main, &mn);
}

Test(supervisor, one_for_one_starts_and_stops_many_children, .timeout = 300)
{
    struct many mn = {.n = many_n(), .simple = false};
    TT_RUN(NULL, many_main, &mn);
}

/* ------------------------------------------------------------------------ */
/* A storm: clients call while children are killed                          */
/* ------------------------------------------------------------------------ */

#define STORM_CHILDREN 16
#define STORM_CLIENTS 4

static const char *const storm_ids[STORM_CHILDREN] = {
    "s0", "s1", "s2",  "s3",  "s4",  "s5",  "s6",  "s7",
    "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15"};

struct storm {
    tel_pid_t sup;
    uint64_t seed;
    size_t ops;
    atomic_int done;
};

/* One client: random kills, terminates, restarts and queries. */
static void storm_client(void *arg)
{
    struct storm *st = arg;
    struct tt_rng rng = {.s = st->seed ^ (uint64_t)tel_self()};
    for (size_t i = 0; i < st->ops; i++) {
        const char *id = storm_ids[tt_rng_below(&rng, STORM_CHILDREN)];
        int rc;
        switch (tt_rng_below(&rng, 5)) {
        case 0: { /* kill a child from outside (abnormal: restarted) */
            tel_child_info_t v[STORM_CHILDREN];
            size_t n = 0;
            rc = tel_sup_which_children(st->sup, v, STORM_CHILDREN, &n);
            TT_CHECK(rc == 0 && n == STORM_CHILDREN,
                     "which: %d, %zu children (seed %" PRIu64 ")", rc, n,
                     st->seed);
            tel_pid_t pid = v[tt_rng_below(&rng, STORM_CHILDREN)].pid;
            if (pid)
                (void)tel_kill(pid, 77);
            break;
        }
        case 1:
            rc = tel_sup_terminate_child(st->sup, id, 0);
            TT_CHECK_RC(rc, 0, "terminate_child");
            break;
        case 2:
            rc = tel_sup_restart_child(st->sup, id, NULL);
            TT_CHECK(rc == 0 || rc == TEL_ERUNNING || rc == TEL_ERESTARTING,
                     "restart_child: %s (seed %" PRIu64 ")", tel_errname(rc),
                     st->seed);
            break;
        case 3: {
            tel_child_counts_t k;
            rc = tel_sup_count_children(st->sup, &k);
            TT_CHECK(rc == 0 && k.specs == STORM_CHILDREN &&
                         k.active <= STORM_CHILDREN,
                     "count: %d, %u specs, %u active", rc, k.specs,
                     k.active);
            break;
        }
        default:
            (void)tel_yield();
            break;
        }
    }
    atomic_fetch_add(&st->done, 1);
}

static void storm_main(void *arg)
{
    struct storm *st = arg;
    (void)tel_trap_exit(true);
    uint32_t before = tel_process_count();
    tel_child_spec_t s[STORM_CHILDREN];
    for (int i = 0; i < STORM_CHILDREN; i++)
        s[i] = (tel_child_spec_t){.id = storm_ids[i], .fn = tt_wait_one_fn,
                                  .restart = TEL_PERMANENT,
                                  .shutdown = 1000};
    tel_sup_flags_t f = {TEL_ONE_FOR_ONE, UINT32_MAX, 1000};
    TT_CHECK_RC(tel_sup_start_link(&st->sup, &f, s, STORM_CHILDREN), 0,
                "start");
    for (int i = 0; i < STORM_CLIENTS; i++)
        TT_CHECK_RC(tel_spawn(NULL, storm_client, st), 0, "spawn client");
    bool ok;
    TT_AWAIT(ok, atomic_load(&st->done) == STORM_CLIENTS, 60000);
    TT_CHECK(ok, "clients did not finish (seed %" PRIu64 ")", st->seed);
    /* Bring every child back; then all run, each under a live pid. */
    for (int i = 0; i < STORM_CHILDREN; i++) {
        int rc = tel_sup_restart_child(st->sup, storm_ids[i], NULL);
        TT_CHECK(rc == 0 || rc == TEL_ERUNNING, "restart %s: %s",
                 storm_ids[i], tel_errname(rc));
    }
    tel_child_counts_t k = {0};
    TT_AWAIT(ok, tel_sup_count_children(st->sup, &k) == 0 &&
                     k.active == STORM_CHILDREN,
             10000);
    TT_CHECK(ok, "%u of %d children run after the storm (seed %" PRIu64 ")",
             k.active, STORM_CHILDREN, st->seed);
    TT_CHECK(tel_process_count() == before + 1 + STORM_CHILDREN,
             "%u processes, want %u", tel_process_count(),
             before + 1 + STORM_CHILDREN);
    stop_sup(st->sup);
    TT_CHECK(tt_await_count(before, 10000), "processes left after the storm");
}

Test(supervisor, concurrent_admin_calls_and_kills_leave_a_consistent_tree,
     .timeout = 120)
{
    struct storm st = {.seed = tel_test_seed(),
                       .ops = tel_test_scaled(2000, 200)};
    TT_RUN(NULL, storm_main, &st);
}

/* ------------------------------------------------------------------------ */
/* Crash isolation                                                           */
/* ------------------------------------------------------------------------ */

static void crash_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t sup = start_workers(&ONE_FOR_ONE, 2);
    /* A null dereference, a stack overflow and abort(), each in turn. */
    uint64_t kinds[] = {TAG_SEGV, TAG_DEEP, TAG_ABORT};
    size_t n_kinds = sizeof kinds / sizeof kinds[0];
    tel_pid_t p1 = cur_pid[1];
    for (size_t k = 0; k < n_kinds; k++) {
        tel_pid_t old = p1;
        tt_send_tag(old, kinds[k]);
        p1 = await_new_pid(1, old);
    }
    TT_CHECK(tel_is_alive(sup), "supervisor died with its child");
    /* The rest of the tree keeps working. */
    for (int i = 1; i <= 2; i++) {
        tt_send_tag(i == 1 ? p1 : cur_pid[2], TAG_PING);
        tel_msg_t *m = NULL;
        if (TT_CHECK_RC(tel_recv(&m, 10000), 0, "pong"))
            TT_CHECK(m->tag == TAG_PONG && tt_msg_u64(m) == (uint64_t)i,
                     "pong from %d", i);
        tel_msg_free(m);
    }
    stop_sup(sup);
}

Test(supervisor, a_child_that_crashes_or_overflows_is_restarted, .timeout = 60)
{
    TT_RUN(NULL, crash_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Out of memory                                                             */
/* ------------------------------------------------------------------------ */

#ifdef TEL_FAILINJ
/* alloc/failinj.h: fail the n-th runtime allocation from now; n < 0
 * disarms (as tests/core/nomem_test.c uses it). */
extern void tel__failinj_arm(long n);

/*
 * For n = 0, 1, 2, ...: make the n-th allocation fail during a supervisor
 * start (three children). Each failed start gives TEL_ENOMEM or TEL_EINIT
 * and leaves no process behind (and, in ASan builds, no leak); the loop
 * ends at the first n that succeeds. One scheduler, so nothing else
 * allocates while the injector is armed.
 *
 * Not looped here: the administration calls. A supervisor is a server,
 * which waits hibernated; if no stack can be had when a request wakes it,
 * it ends with TEL_NOMEM (tel_hibernate's contract), so a failed
 * allocation there ends the supervisor rather than the call.
 */
static void nomem_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    uint32_t before = tel_process_count();
    tel_child_spec_t s[3];
    for (int i = 0; i < 3; i++)
        s[i] = (tel_child_spec_t){.id = i == 0 ? "a" : i == 1 ? "b" : "c",
                                  .fn = tt_wait_one_fn, .shutdown = 1000};
    tel_pid_t sup = 0;
    int rc = TEL_ENOMEM, failed = 0;
    long n = 0;
    for (; n < 200; n++) {
        (void)tel_yield();
        tel__failinj_arm(n);
        rc = tel_sup_start_link(&sup, &ONE_FOR_ONE, s, 3);
        tel__failinj_arm(-1);
        if (rc == 0)
            break;
        failed++;
        TT_CHECK(rc == TEL_ENOMEM || rc == TEL_EINIT,
                 "start with allocation %ld failing: %d", n, rc);
        TT_CHECK(sup == 0, "pid set on failure");
        TT_CHECK(tt_await_count(before, 10000),
                 "allocation %ld failing left %u processes (had %u)", n,
                 tel_process_count(), before);
    }
    TT_CHECK(rc == 0 && failed > 0, "start never succeeded (n %ld)", n);
    if (rc != 0)
        return;
    TT_CHECK(n_children(sup) == 3, "children after start");
    stop_sup(sup);
    TT_CHECK(tt_await_count(before, 10000), "processes left");
}

Test(supervisor, allocation_failures_during_start_fail_cleanly,
     .timeout = 120)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, nomem_main, NULL);
}
#endif

/* A supervisor killed with TEL_KILL runs no terminate, and one still
 * running when tel_run ends runs no code at all: their memory still goes
 * (the leak check of TT_RUN). */
static void killed_sup_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t sup = start_workers(&ONE_FOR_ONE, 3);
    if (!sup)
        return;
    TT_CHECK_RC(tel_kill(sup, TEL_KILL), 0, "kill");
    TT_CHECK(tt_await_dead(sup, 10000), "supervisor killed");
    TT_CHECK(tt_await_count(1, 10000), "its children went with it");
    (void)start_workers(&REST_FOR_ONE, 3); /* left running */
}

Test(supervisor, a_killed_supervisor_and_one_left_at_shutdown_free_their_state)
{
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, killed_sup_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Bad input                                                                 */
/* ------------------------------------------------------------------------ */

static void bad_input_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t sup = 1;
    tel_child_spec_t ok = wspec("a", &W[1], TEL_PERMANENT);
    tel_child_spec_t s[2] = {ok, ok};
    TT_CHECK_RC(tel_sup_start_link(&sup, NULL, &ok, 1), TEL_EINVAL,
                "NULL flags");
    TT_CHECK(sup == 0, "pid set on error");
    tel_sup_flags_t f = ONE_FOR_ONE;
    f.strategy = (tel_strategy_t)9;
    TT_CHECK_RC(tel_sup_start_link(&sup, &f, &ok, 1), TEL_EINVAL,
                "bad strategy");
    f = ONE_FOR_ONE;
    f.period_ms = 0;
    TT_CHECK_RC(tel_sup_start_link(&sup, &f, &ok, 1), TEL_EINVAL,
                "zero period");
    TT_CHECK_RC(tel_sup_start_link(&sup, &ONE_FOR_ONE, NULL, 1), TEL_EINVAL,
                "NULL specs");
    TT_CHECK_RC(tel_sup_start_link(&sup, &ONE_FOR_ONE, s, 2), TEL_EINVAL,
                "duplicate ids");
    TT_CHECK_RC(tel_sup_start_link(&sup, &SIMPLE, s, 2), TEL_EINVAL,
                "simple with 2 specs");
    TT_CHECK_RC(tel_sup_start_link(&sup, &SIMPLE, s, 0), TEL_EINVAL,
                "simple with no spec");
    static const char long_id[] =
        "0123456789012345678901234567890123456789012345678901234567890123";
    tel_child_spec_t bad[] = {
        {.id = "x", .restart = TEL_PERMANENT, .shutdown = 1}, /* no fn */
        {.id = NULL, .fn = worker, .shutdown = 1},
        {.id = "", .fn = worker, .shutdown = 1},
        {.id = long_id, .fn = worker, .shutdown = 1},
        {.id = "x", .fn = worker, .restart = (tel_restart_t)3},
        {.id = "x", .fn = worker, .type = (tel_child_type_t)2},
        {.id = "x", .fn = worker, .shutdown = -2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        TT_CHECK_RC(tel_sup_start_link(&sup, &ONE_FOR_ONE, &bad[i], 1),
                    TEL_EINVAL, "bad spec");
        TT_CHECK(log_is(""), "bad spec %zu started something", i);
    }
    /* An id of exactly TEL_NAME_MAX bytes is fine. */
    tel_child_spec_t max_id = wspec(long_id + 1, &W[1], TEL_TEMPORARY);
    TT_CHECK_RC(tel_sup_start_link(&sup, &ONE_FOR_ONE, &max_id, 1), 0,
                "63-byte id");
    TT_CHECK(strcmp(child_info(sup, long_id + 1).id, long_id + 1) == 0,
             "63-byte id kept");

    /* The administration calls. */
    tel_child_counts_t k;
    size_t n;
    tel_child_info_t v[1];
    TT_CHECK_RC(tel_sup_start_child(0, &ok, NULL, NULL), TEL_EINVAL, "sc 0");
    TT_CHECK_RC(tel_sup_start_child(sup, NULL, NULL, NULL), TEL_EINVAL,
                "start_child NULL spec on one_for_one");
    TT_CHECK_RC(tel_sup_start_child(sup, &bad[0], NULL, NULL), TEL_EINVAL,
                "start_child bad spec");
    TT_CHECK_RC(tel_sup_start_child(sup, &bad[3], NULL, NULL), TEL_EINVAL,
                "start_child long id");
    TT_CHECK_RC(tel_sup_terminate_child(0, "a", 0), TEL_EINVAL, "tc 0");
    TT_CHECK_RC(tel_sup_terminate_child(sup, NULL, 0), TEL_EINVAL,
                "tc NULL id, 0 pid");
    TT_CHECK_RC(tel_sup_terminate_child(sup, long_id, 0), TEL_EINVAL,
                "tc long id");
    TT_CHECK_RC(tel_sup_terminate_child(sup, NULL, tel_self()), TEL_EINVAL,
                "tc by pid on one_for_one");
    TT_CHECK_RC(tel_sup_restart_child(0, "a", NULL), TEL_EINVAL, "rc 0");
    TT_CHECK_RC(tel_sup_restart_child(sup, NULL, NULL), TEL_EINVAL,
                "rc NULL");
    TT_CHECK_RC(tel_sup_delete_child(0, "a"), TEL_EINVAL, "dc 0");
    TT_CHECK_RC(tel_sup_delete_child(sup, ""), TEL_EINVAL, "dc empty");
    TT_CHECK_RC(tel_sup_which_children(0, v, 1, &n), TEL_EINVAL, "wc 0");
    TT_CHECK_RC(tel_sup_which_children(sup, v, 1, NULL), TEL_EINVAL,
                "wc NULL n_out");
    TT_CHECK_RC(tel_sup_which_children(sup, NULL, 1, &n), TEL_EINVAL,
                "wc NULL buf");
    TT_CHECK_RC(tel_sup_count_children(0, &k), TEL_EINVAL, "cc 0");
    TT_CHECK_RC(tel_sup_count_children(sup, NULL), TEL_EINVAL, "cc NULL");
    /* The supervisor is unharmed. */
    TT_CHECK(n_children(sup) == 1, "children after bad calls");
    stop_sup(sup);
}

Test(supervisor, bad_input_gets_einval, .timeout = 60)
{
    TT_RUN(NULL, bad_input_main, NULL);
}

Test(supervisor, calls_from_outside_a_process_get_enotproc)
{
    tel_pid_t sup = 0;
    tel_child_spec_t ok = wspec("a", &W[1], TEL_PERMANENT);
    tel_child_counts_t k;
    tel_child_info_t v[1];
    size_t n;
    const tel_pid_t some = 12345;
    cr_assert_eq(tel_sup_start(&sup, &ONE_FOR_ONE, &ok, 1), TEL_ENOTPROC);
    cr_assert_eq(tel_sup_start_link(&sup, &ONE_FOR_ONE, &ok, 1),
                 TEL_ENOTPROC);
    cr_assert_eq(tel_sup_start_child(some, &ok, NULL, NULL), TEL_ENOTPROC);
    cr_assert_eq(tel_sup_terminate_child(some, "a", 0), TEL_ENOTPROC);
    cr_assert_eq(tel_sup_restart_child(some, "a", NULL), TEL_ENOTPROC);
    cr_assert_eq(tel_sup_delete_child(some, "a"), TEL_ENOTPROC);
    cr_assert_eq(tel_sup_which_children(some, v, 1, &n), TEL_ENOTPROC);
    cr_assert_eq(tel_sup_count_children(some, &k), TEL_ENOTPROC);
}
