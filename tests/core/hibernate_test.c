/*
 * tests/core/hibernate_test.c: tel_hibernate. Black-box, except the checks
 * that a hibernated process holds no stack, which look at its control block
 * through the pid table (core/pid.h) from a scheduler thread.
 */
#include "common.h"

#include "core/pid.h"
#include "core/process.h"

enum { TAG_GO = 1, TAG_REPLY, TAG_TICK, TAG_SKIP, TAG_STATE };

static _Atomic tel_pid_t main_pid;

/* The process block of a live pid, from inside a process (scheduler thread:
 * the block stays valid until our next switch). */
static struct proc *block_of(tel_pid_t pid)
{
    return tel__pid_lookup(pid);
}

/* ------------------------------------------------------------------------ */
/* Waking                                                                    */
/* ------------------------------------------------------------------------ */

struct sleeper {
    int woken;   /* how many times wake_fn ran */
    void *seen;  /* the arg wake_fn got */
};

/* Runs on a fresh stack: takes the message that woke it and replies. */
static void wake_fn(void *arg)
{
    struct sleeper *sl = arg;
    sl->woken++;
    sl->seen = arg;
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 10000);
    if (!TT_CHECK_RC(rc, 0, "tel_recv after waking"))
        return;
    TT_CHECK(m->tag == TAG_GO || m->tag == TAG_TICK,
             "woke with tag %" PRIu64, m->tag);
    tt_send_tag(atomic_load(&main_pid), TAG_REPLY);
    tel_msg_free(m);
}

static void hibernate_at_once(void *arg)
{
    int rc = tel_hibernate(wake_fn, arg);
    TT_FAIL("tel_hibernate returned %d", rc);
}

static void wakes_on_message_main(void *arg)
{
    struct sleeper *sl = arg;
    atomic_store(&main_pid, tel_self());
    tel_pid_t pid;
    if (!TT_CHECK_RC(tel_spawn(&pid, hibernate_at_once, sl), 0, "tel_spawn"))
        return;
    /* Wait until it sleeps: alive, and holding no stack. */
    bool ok;
    TT_AWAIT(ok, block_of(pid) &&
                     !tt_peek_ptr(&block_of(pid)->task.stack) &&
                     atomic_load(&block_of(pid)->task.state) == TASK_WAIT_MSG,
             10000);
    TT_CHECK(ok, "the process never hibernated without a stack");
    TT_CHECK(sl->woken == 0, "wake_fn ran before any message");
    tt_send_tag(pid, TAG_GO);
    tel_msg_t *m = NULL;
    if (TT_CHECK_RC(tel_recv(&m, 10000), 0, "tel_recv reply"))
        TT_CHECK(m->from == pid, "reply from the wrong process");
    tel_msg_free(m);
    TT_CHECK(tt_await_dead(pid, 10000), "the woken process did not exit");
}

Test(hibernate, a_hibernated_process_holds_no_stack_and_wakes_on_a_message,
     .timeout = 30)
{
    struct sleeper sl = {0};
    TT_RUN(NULL, wakes_on_message_main, &sl);
    cr_assert_eq(sl.woken, 1, "wake_fn ran %d times", sl.woken);
    cr_assert_eq(sl.seen, &sl, "wake_fn got the wrong arg");
}

static void hibernate_with_timer(void *arg)
{
    uint64_t timer;
    int rc = tel_send_after(&timer, 20, tel_self(), TAG_TICK, NULL, 0);
    if (!TT_CHECK_RC(rc, 0, "tel_send_after"))
        return;
    rc = tel_hibernate(wake_fn, arg);
    TT_FAIL("tel_hibernate returned %d", rc);
}

static void wakes_on_timer_main(void *arg)
{
    atomic_store(&main_pid, tel_self());
    tel_pid_t pid;
    int64_t t0 = tt_now_ms();
    if (!TT_CHECK_RC(tel_spawn(&pid, hibernate_with_timer, arg), 0,
                     "tel_spawn"))
        return;
    tel_msg_t *m = NULL;
    if (TT_CHECK_RC(tel_recv(&m, 10000), 0, "tel_recv reply"))
        TT_CHECK(m->from == pid, "reply from the wrong process");
    tel_msg_free(m);
    TT_CHECK(tt_now_ms() - t0 >= 20, "woke before its 20 ms timer");
}

Test(hibernate, a_hibernated_process_wakes_on_its_timer, .timeout = 30)
{
    struct sleeper sl = {0};
    TT_RUN(NULL, wakes_on_timer_main, &sl);
    cr_assert_eq(sl.woken, 1, "wake_fn ran %d times", sl.woken);
}

/* A message already waiting: hibernate returns to fn at once. */
static void hibernate_with_mail(void *arg)
{
    tt_send_tag(tel_self(), TAG_GO);
    int rc = tel_hibernate(wake_fn, arg);
    TT_FAIL("tel_hibernate returned %d", rc);
}

static bool is_skip(const tel_msg_t *m, void *ctx)
{
    (void)ctx;
    return m->tag == TAG_SKIP;
}

/* Only a skipped message waits (in the saved list): Erlang wakes at once for
 * any message in the queue, and so do we. */
static void skip_fn(void *arg)
{
    struct sleeper *sl = arg;
    sl->woken++;
    tel_msg_t *m = NULL;
    if (TT_CHECK_RC(tel_recv(&m, 0), 0, "the skipped message is still there"))
        TT_CHECK(m->tag == TAG_GO, "got tag %" PRIu64, m->tag);
    tel_msg_free(m);
    tt_send_tag(atomic_load(&main_pid), TAG_REPLY);
}

static void hibernate_with_skipped(void *arg)
{
    tt_send_tag(tel_self(), TAG_GO);
    tel_msg_t *m = NULL;
    int rc = tel_recv_match(&m, is_skip, NULL, 0);
    TT_CHECK_RC(rc, TEL_ETIMEDOUT, "selective receive of a missing tag");
    rc = tel_hibernate(skip_fn, arg);
    TT_FAIL("tel_hibernate returned %d", rc);
}

static void spawn_and_wait_reply(void *arg)
{
    void **a = arg;
    atomic_store(&main_pid, tel_self());
    if (!TT_CHECK_RC(tel_spawn(NULL, (tel_fn)a[0], a[1]), 0, "tel_spawn"))
        return;
    tel_msg_t *m = NULL;
    TT_CHECK_RC(tel_recv(&m, 10000), 0, "tel_recv reply");
    tel_msg_free(m);
}

Test(hibernate, a_waiting_message_wakes_it_at_once, .timeout = 30)
{
    struct sleeper sl = {0};
    void *a[2] = {(void *)hibernate_with_mail, &sl};
    TT_RUN(NULL, spawn_and_wait_reply, a);
    cr_assert_eq(sl.woken, 1, "wake_fn ran %d times", sl.woken);
}

Test(hibernate, a_skipped_message_wakes_it_at_once, .timeout = 30)
{
    struct sleeper sl = {0};
    void *a[2] = {(void *)hibernate_with_skipped, &sl};
    TT_RUN(NULL, spawn_and_wait_reply, a);
    cr_assert_eq(sl.woken, 1, "skip_fn ran %d times", sl.woken);
}

/* ------------------------------------------------------------------------ */
/* A server loop that hibernates between requests                            */
/* ------------------------------------------------------------------------ */

struct counter {
    uint64_t total;   /* sum of the requests, kept across hibernations */
    uint64_t handled; /* requests handled */
    uint64_t want;
};

/* Handles one request per wake-up, then hibernates again (OTP's
 * gen_server:enter_loop with hibernate after each message). */
static void counter_loop(void *arg)
{
    struct counter *c = arg;
    tel_msg_t *m = NULL;
    if (!TT_CHECK_RC(tel_recv(&m, 10000), 0, "counter recv"))
        return;
    uint64_t v = 0;
    memcpy(&v, m->data, sizeof(v));
    tel_pid_t from = m->from;
    tel_msg_free(m);
    c->total += v;
    c->handled++;
    int rc = tel_send(from, TAG_STATE, &c->total, sizeof(c->total));
    TT_CHECK_RC(rc, 0, "counter reply");
    if (c->handled == c->want)
        return;
    rc = tel_hibernate(counter_loop, c);
    TT_FAIL("tel_hibernate returned %d", rc);
}

static void counter_main(void *arg)
{
    struct counter *c = arg;
    tel_pid_t pid;
    if (!TT_CHECK_RC(tel_spawn(&pid, counter_loop, c), 0, "tel_spawn"))
        return;
    uint64_t sum = 0;
    for (uint64_t i = 1; i <= c->want; i++) {
        int rc = tel_send(pid, TAG_GO, &i, sizeof(i));
        if (!TT_CHECK_RC(rc, 0, "tel_send request"))
            return;
        sum += i;
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 10000), 0, "tel_recv state"))
            return;
        uint64_t got = 0;
        memcpy(&got, m->data, sizeof(got));
        tel_msg_free(m);
        if (!TT_CHECK(got == sum, "request %" PRIu64 ": total %" PRIu64
                                  ", want %" PRIu64, i, got, sum))
            return;
    }
    TT_CHECK(tt_await_dead(pid, 10000), "the server did not exit");
}

Test(hibernate, a_server_hibernating_after_each_request_keeps_its_state,
     .timeout = 60)
{
    for (unsigned s = 1; s <= 2; s++) {
        struct counter c = {.want = tel_test_scaled(10000, 200)};
        tel_config_t cfg = {.schedulers = s};
        TT_RUN(&cfg, counter_main, &c);
        cr_assert_eq(c.handled, c.want, "s=%u: handled %" PRIu64, s,
                     c.handled);
    }
}

/* ------------------------------------------------------------------------ */
/* Many hibernated processes                                                 */
/* ------------------------------------------------------------------------ */

static _Atomic uint64_t many_woken;

static void many_wake(void *arg)
{
    (void)arg;
    tel_msg_t *m = NULL;
    if (TT_CHECK_RC(tel_recv(&m, 10000), 0, "recv after waking"))
        tel_msg_free(m);
    atomic_fetch_add(&many_woken, 1);
}

static void many_sleep(void *arg)
{
    int rc = tel_hibernate(many_wake, arg);
    TT_FAIL("tel_hibernate returned %d", rc);
}

struct many {
    size_t n;
    bool wake; /* wake them all, or leave them for shutdown */
};

static void many_main(void *arg)
{
    struct many *mn = arg;
    tel_pid_t *pids = calloc(mn->n, sizeof(*pids));
    if (!TT_CHECK(pids != NULL, "calloc"))
        return;
    for (size_t i = 0; i < mn->n; i++)
        if (!TT_CHECK_RC(tel_spawn(&pids[i], many_sleep, NULL), 0,
                         "tel_spawn"))
            goto out;
    /* All asleep with no stack: check a sample of them. */
    for (size_t i = 0; i < mn->n; i += 1 + mn->n / 64) {
        bool ok;
        TT_AWAIT(ok, block_of(pids[i]) &&
                         !tt_peek_ptr(&block_of(pids[i])->task.stack) &&
                         atomic_load(&block_of(pids[i])->task.state) ==
                             TASK_WAIT_MSG,
                 10000);
        if (!TT_CHECK(ok, "process %zu is not hibernating", i))
            goto out;
    }
    if (mn->wake) {
        for (size_t i = 0; i < mn->n; i++)
            tt_send_tag(pids[i], TAG_GO);
        TT_CHECK(tt_await_count(1, 30000), "%u processes left",
                 tel_process_count());
    }
out:
    free(pids);
}

Test(hibernate, many_hibernated_processes_all_wake_and_exit, .timeout = 120)
{
    struct many mn = {.n = tel_test_live_cap(tel_test_scaled(20000, 500)),
                      .wake = true};
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, many_main, &mn);
    cr_assert_eq(atomic_load(&many_woken), mn.n, "%" PRIu64 " of %zu woke",
                 atomic_load(&many_woken), mn.n);
}

Test(hibernate, shutdown_frees_processes_left_hibernating, .timeout = 120)
{
    struct many mn = {.n = tel_test_live_cap(tel_test_scaled(20000, 500)),
                      .wake = false};
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, many_main, &mn);
    cr_assert_eq(atomic_load(&many_woken), 0, "a process woke with no mail");
}

/* ------------------------------------------------------------------------ */
/* Bad input                                                                 */
/* ------------------------------------------------------------------------ */

static void null_fn_main(void *arg)
{
    (void)arg;
    TT_CHECK_RC(tel_hibernate(NULL, NULL), TEL_EINVAL, "tel_hibernate(NULL)");
}

Test(hibernate, a_null_function_is_einval_and_the_caller_goes_on,
     .timeout = 30)
{
    TT_RUN(NULL, null_fn_main, NULL);
}

Test(hibernate, outside_a_process_it_is_enotproc)
{
    cr_assert_eq(tel_hibernate(wake_fn, NULL), TEL_ENOTPROC);
}
