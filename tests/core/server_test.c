/*
 * tests/core/server_test.c: servers (gen_server): start, call, cast, reply,
 * info, stop and terminate, dead and dying servers, timeouts and late
 * replies, hibernation between requests. Black-box except the check that
 * an idle server holds no stack (its block, through the pid table).
 */
#include "common.h"

#include "core/link.h"
#include "core/pid.h"
#include "core/process.h"

enum {
    T_ADD = 1, /* call: add the u64, reply with the total */
    T_GET,     /* call: reply with the total */
    T_INC,     /* cast: add 1 */
    T_STOP,    /* call: reply, then stop with the u64 as reason */
    T_DIE,     /* call: exit with the u64, no reply */
    T_SLOW,    /* call: sleep the u64 ms, then reply */
    T_LATER,   /* call: reply when the next T_FLUSH cast comes */
    T_FLUSH,   /* cast */
    T_CRASH,   /* call: dereference NULL */
    T_HANDOFF, /* call: a helper process replies for the server */
    T_INFO = 100,
};

static tel_config_t two = {.schedulers = 2};

struct counter {
    uint64_t total;
    uint64_t infos;
    tel_from_t later;
    bool has_later;
};

static _Atomic tel_reason_t terminated_with = INT64_MIN;
static _Atomic int terminate_calls;

static uint64_t u64_of(const void *p, size_t n)
{
    uint64_t v = 0;
    if (n == sizeof v)
        memcpy(&v, p, sizeof v);
    return v;
}

static tel_reason_t c_init(void *arg, void **state)
{
    struct counter *c = calloc(1, sizeof *c);
    if (!c)
        return TEL_NOMEM;
    c->total = (uint64_t)(uintptr_t)arg;
    *state = c;
    return TEL_CONTINUE;
}

/* Plain code, so the CPU faults as in a plain build (UBSan would stop the
 * program at the null store first). */
__attribute__((noinline, no_sanitize("undefined"),
               no_sanitize_thread)) static void
null_store(void)
{
    volatile int *volatile np = NULL;
    *np = 1;
}

/* A process that answers a call in the server's place. */
static void reply_for(void *arg)
{
    tel_from_t *f = arg;
    uint64_t v = 77;
    TT_CHECK_RC(tel_reply(*f, T_HANDOFF, &v, sizeof v), 0, "reply for");
    free(f);
}

static tel_reason_t c_call(void *state, tel_from_t from, uint64_t tag,
                           const void *req, size_t size)
{
    struct counter *c = state;
    uint64_t v = u64_of(req, size);
    switch (tag) {
    case T_ADD:
        c->total += v;
        break;
    case T_GET:
        break;
    case T_STOP:
        TT_CHECK_RC(tel_reply(from, tag, &c->total, sizeof c->total), 0,
                    "reply");
        return (tel_reason_t)v;
    case T_DIE: /* no terminate runs: free the state here */
        free(c);
        tel_exit((tel_reason_t)v);
    case T_CRASH:
        free(c);
        null_store();
        break;
    case T_HANDOFF: {
        tel_from_t *f = malloc(sizeof *f);
        *f = from;
        TT_CHECK_RC(tel_spawn(NULL, reply_for, f), 0, "spawn replier");
        return TEL_CONTINUE;
    }
    case T_SLOW:
        tel_sleep((int64_t)v);
        break;
    case T_LATER:
        c->later = from;
        c->has_later = true;
        return TEL_CONTINUE;
    default:
        TT_FAIL("unknown call tag %" PRIu64, tag);
    }
    TT_CHECK_RC(tel_reply(from, tag, &c->total, sizeof c->total), 0, "reply");
    return TEL_CONTINUE;
}

static tel_reason_t c_cast(void *state, uint64_t tag, const void *req,
                           size_t size)
{
    struct counter *c = state;
    (void)req;
    (void)size;
    if (tag == T_INC)
        c->total++;
    if (tag == T_FLUSH && c->has_later) {
        c->has_later = false;
        TT_CHECK_RC(tel_reply(c->later, T_LATER, &c->total, sizeof c->total),
                    0, "late reply");
    }
    return TEL_CONTINUE;
}

static tel_reason_t c_info(void *state, const tel_msg_t *m)
{
    struct counter *c = state;
    if (m->tag == T_INFO)
        c->infos++;
    return TEL_CONTINUE;
}

static void c_terminate(void *state, tel_reason_t reason)
{
    atomic_store(&terminated_with, reason);
    atomic_fetch_add(&terminate_calls, 1);
    free(state);
}

static const tel_server_ops_t counter_ops = {
    .init = c_init,
    .handle_call = c_call,
    .handle_cast = c_cast,
    .handle_info = c_info,
    .terminate = c_terminate,
};

/* A call that must succeed; gives the u64 reply. */
static uint64_t call_u64(tel_pid_t srv, uint64_t tag, uint64_t v)
{
    tel_msg_t *r = NULL;
    int rc = tel_call(srv, tag, &v, sizeof v, &r, 5000);
    if (!TT_CHECK_RC(rc, 0, "tel_call"))
        return UINT64_MAX;
    TT_CHECK(r->tag == tag, "reply tag %" PRIu64 ", want %" PRIu64, r->tag,
             tag);
    uint64_t out = tt_msg_u64(r);
    tel_msg_free(r);
    return out;
}

static bool is_down(const tel_msg_t *m, void *ctx)
{
    (void)ctx;
    return m->tag == TEL_TAG_DOWN;
}

static tel_reason_t down_reason(int64_t timeout_ms)
{
    tel_msg_t *m = NULL;
    if (!TT_CHECK_RC(tel_recv_match(&m, is_down, NULL, timeout_ms), 0,
                     "DOWN"))
        return INT64_MIN;
    tel_down_info_t d;
    memcpy(&d, m->data, sizeof d);
    tel_msg_free(m);
    return d.reason;
}

/* ------------------------------------------------------------------------ */

static void basic_main(void *arg)
{
    (void)arg;
    tel_pid_t srv = 0;
    if (!TT_CHECK_RC(tel_server_start(&srv, &counter_ops, (void *)10), 0,
                     "start"))
        return;
    TT_CHECK(srv != 0 && tel_is_alive(srv), "a live server");
    TT_CHECK(call_u64(srv, T_ADD, 5) == 15, "init's arg plus 5");
    TT_CHECK_RC(tel_cast(srv, T_INC, NULL, 0), 0, "cast");
    TT_CHECK_RC(tel_cast(srv, T_INC, NULL, 0), 0, "cast");
    TT_CHECK_RC(tel_send(srv, T_INFO, NULL, 0), 0, "info");
    TT_CHECK(call_u64(srv, T_GET, 0) == 17, "casts are handled in order");
    uint64_t ref;
    TT_CHECK_RC(tel_monitor(&ref, srv), 0, "monitor");
    TT_CHECK(call_u64(srv, T_STOP, 3) == 17, "stop replies first");
    TT_CHECK(down_reason(5000) == 3, "stops with the reason returned");
    TT_CHECK(atomic_load(&terminated_with) == 3, "terminate got the reason");
    TT_CHECK(atomic_load(&terminate_calls) == 1, "terminate ran once");
}

Test(server, start_call_cast_and_stop)
{
    TT_RUN(&two, basic_main, NULL);
}

static tel_reason_t fail_init(void *arg, void **state)
{
    (void)state;
    return (tel_reason_t)(intptr_t)arg;
}

static tel_reason_t die_init(void *arg, void **state)
{
    (void)state;
    tel_exit((tel_reason_t)(intptr_t)arg);
}

static void init_fail_main(void *arg)
{
    (void)arg;
    tel_server_ops_t ops = counter_ops;
    ops.init = fail_init;
    tel_pid_t srv = 99;
    TT_CHECK_RC(tel_server_start(&srv, &ops, (void *)4), TEL_EINIT,
                "init returned a reason");
    TT_CHECK(srv == 0, "no pid on failure");
    TT_CHECK_RC(tel_server_start_link(&srv, &ops, (void *)4), TEL_EINIT,
                "linked start, init returned a reason");
    TT_CHECK_RC(tel_server_start_link(&srv, &ops, (void *)TEL_NORMAL),
                TEL_EINIT, "init returned normal: still no server");
    ops.init = die_init;
    TT_CHECK_RC(tel_server_start(&srv, &ops, (void *)4), TEL_EINIT,
                "init exited");
    TT_CHECK(tt_await_count(1, 5000), "no server left");
    /* Still alive: the failed linked start did not kill us. */
    TT_CHECK(atomic_load(&terminate_calls) == 0, "terminate after init fail");
}

Test(server, a_failed_init_fails_the_start_and_spares_the_starter)
{
    TT_RUN(&two, init_fail_main, NULL);
}

static void dead_main(void *arg)
{
    (void)arg;
    tel_pid_t srv;
    TT_CHECK_RC(tel_server_start(&srv, &counter_ops, NULL), 0, "start");
    uint64_t v = 42;
    tel_msg_t *r = (tel_msg_t *)1;
    int64_t t0 = tt_now_ms();
    TT_CHECK_RC(tel_call(srv, T_DIE, &v, sizeof v, &r, 10000), TEL_EDOWN,
                "server died in the call");
    TT_CHECK(r == NULL, "no reply");
    TT_CHECK(tel_call_reason() == 42, "the server's reason");
    TT_CHECK_RC(tel_call(srv, T_GET, NULL, 0, &r, 10000), TEL_ENOPROC,
                "call to a dead server");
    TT_CHECK(tel_call_reason() == TEL_NOPROC, "noproc");
    TT_CHECK_RC(tel_server_start(&srv, &counter_ops, NULL), 0, "start 2");
    TT_CHECK_RC(tel_call(srv, T_CRASH, NULL, 0, &r, 10000), TEL_EDOWN,
                "server crashed in the call");
    TT_CHECK(tel_call_reason() == TEL_CRASHED, "crashed");
    TT_CHECK(tt_now_ms() - t0 < 5000, "not a timeout");
    tel_msg_t *m;
    TT_CHECK_RC(tel_recv(&m, 100), TEL_ETIMEDOUT, "no leftovers");
}

Test(server, a_dead_server_fails_the_call_at_once)
{
    TT_RUN(&two, dead_main, NULL);
}

static void late_main(void *arg)
{
    (void)arg;
    tel_pid_t srv;
    TT_CHECK_RC(tel_server_start(&srv, &counter_ops, NULL), 0, "start");
    uint64_t ms = 200;
    tel_msg_t *r = NULL;
    TT_CHECK_RC(tel_call(srv, T_SLOW, &ms, sizeof ms, &r, 20), TEL_ETIMEDOUT,
                "timed out");
    /* The late reply comes while this call waits: it must not be taken. */
    TT_CHECK(call_u64(srv, T_ADD, 1) == 1, "the second call's own reply");
    tel_sleep(300);
    tel_msg_t *m;
    TT_CHECK_RC(tel_recv(&m, 100), TEL_ETIMEDOUT, "the late reply surfaced");
    tel_msg_free(m);
    TT_CHECK(call_u64(srv, T_STOP, TEL_NORMAL) == 1, "stop");
}

Test(server, a_late_reply_never_reaches_a_later_call)
{
    TT_RUN(&two, late_main, NULL);
}

/* noreply done right: the reply comes from a later cast within the call. */
static void deferred_client(void *arg)
{
    tel_pid_t srv = (tel_pid_t)(uintptr_t)arg;
    uint64_t v = 0;
    tel_msg_t *r = NULL;
    int rc = tel_call(srv, T_LATER, &v, sizeof v, &r, 5000);
    TT_CHECK_RC(rc, 0, "deferred call");
    if (rc == 0) {
        TT_CHECK(r->tag == T_LATER && tt_msg_u64(r) == 5, "deferred reply");
        tel_msg_free(r);
    }
}

static void deferred_main(void *arg)
{
    (void)arg;
    tel_pid_t srv, c;
    TT_CHECK_RC(tel_server_start(&srv, &counter_ops, (void *)5), 0, "start");
    uint64_t ref;
    tel_spawn_opts_t o = {.monitor = true, .monitor_ref = &ref};
    TT_CHECK_RC(tel_spawn_opt(&c, deferred_client, (void *)(uintptr_t)srv, &o),
                0, "client");
    tel_sleep(30);
    TT_CHECK(tel_is_alive(c), "the client waits");
    TT_CHECK_RC(tel_cast(srv, T_FLUSH, NULL, 0), 0, "flush");
    TT_CHECK(down_reason(5000) == TEL_NORMAL, "client done");
    TT_CHECK(call_u64(srv, T_STOP, TEL_NORMAL) == 5, "stop");
}

Test(server, a_deferred_reply_reaches_the_waiting_caller)
{
    TT_RUN(&two, deferred_main, NULL);
}

static tel_reason_t trap_init(void *arg, void **state)
{
    (void)tel_trap_exit(true);
    return c_init(arg, state);
}

static const tel_server_ops_t trap_ops = {
    .init = trap_init,
    .handle_call = c_call,
    .handle_cast = c_cast,
    .handle_info = c_info,
    .terminate = c_terminate,
};

static void parent_fn(void *arg)
{
    _Atomic tel_pid_t *out = arg;
    tel_pid_t srv;
    TT_CHECK_RC(tel_server_start_link(&srv, &trap_ops, NULL), 0, "start_link");
    atomic_store(out, srv);
    tel_exit(6);
}

static void parent_exit_main(void *arg)
{
    (void)arg;
    _Atomic tel_pid_t srv = 0;
    tel_pid_t par;
    TT_CHECK_RC(tel_spawn(&par, parent_fn, &srv), 0, "spawn");
    bool ok;
    TT_AWAIT(ok, atomic_load(&srv) != 0, 5000);
    TT_CHECK(ok, "server started");
    TT_AWAIT(ok, atomic_load(&terminate_calls) == 1, 5000);
    TT_CHECK(ok, "terminate ran");
    TT_CHECK(atomic_load(&terminated_with) == 6, "with the parent's reason");
    TT_CHECK(tt_await_dead(atomic_load(&srv), 5000), "server gone");
}

Test(server, a_trapping_server_stops_with_its_parent)
{
    TT_RUN(&two, parent_exit_main, NULL);
}

static void idle_main(void *arg)
{
    (void)arg;
    tel_pid_t srv;
    TT_CHECK_RC(tel_server_start(&srv, &counter_ops, NULL), 0, "start");
    for (int i = 0; i < 100; i++)
        (void)call_u64(srv, T_ADD, 1);
    bool ok;
    TT_AWAIT(ok, tel__pid_lookup(srv) &&
                     !tt_peek_ptr(&tel__pid_lookup(srv)->task.stack),
             5000);
    TT_CHECK(ok, "an idle server holds no stack");
    TT_CHECK(call_u64(srv, T_GET, 0) == 100, "state kept across sleeps");
    TT_CHECK(call_u64(srv, T_STOP, TEL_NORMAL) == 100, "stop");
}

Test(server, an_idle_server_hibernates_and_keeps_its_state)
{
    TT_RUN(&two, idle_main, NULL);
}

/* How many callers a live server still watches (white-box). */
static uint32_t watched_by(tel_pid_t srv)
{
    struct proc *p = tel__pid_lookup(srv);
    struct proc_ext *e = p ? tel__ext(p) : NULL;
    return e ? tt_peek_u32(&e->watchers.n) : UINT32_MAX;
}

static void handoff_main(void *arg)
{
    (void)arg;
    tel_pid_t srv;
    TT_CHECK_RC(tel_server_start(&srv, &counter_ops, NULL), 0, "start");
    for (int i = 0; i < 50; i++) {
        TT_CHECK(call_u64(srv, T_ADD, 1) == (uint64_t)i + 1, "add");
        TT_CHECK(call_u64(srv, T_HANDOFF, 0) == 77, "a reply from a helper");
    }
    tel_msg_t *r = NULL;
    uint64_t ms = 100;
    TT_CHECK_RC(tel_call(srv, T_SLOW, &ms, sizeof ms, &r, 10), TEL_ETIMEDOUT,
                "timed out");
    tel_sleep(200);
    /* Replies by the server itself, by a helper, and a call given up: none
     * leaves the server watching its caller. */
    bool ok;
    TT_AWAIT(ok, watched_by(srv) == 0, 5000);
    TT_CHECK(ok, "the server still watches %u callers", watched_by(srv));
    TT_CHECK(call_u64(srv, T_STOP, TEL_NORMAL) == 50, "stop");
    TT_CHECK_RC(tel_recv(&r, 100), TEL_ETIMEDOUT, "nothing left over");
}

Test(server, replies_from_anyone_and_given_up_calls_leave_no_watch)
{
    TT_RUN(&two, handoff_main, NULL);
}

/* A call waiting in the queue of a server that is killed fails with the
 * server's reason, not a timeout. */
static void queued_caller(void *arg)
{
    tel_pid_t srv = (tel_pid_t)(uintptr_t)arg;
    tel_msg_t *r = NULL;
    TT_CHECK_RC(tel_call(srv, T_GET, NULL, 0, &r, 60000), TEL_EDOWN,
                "a queued call");
    TT_CHECK(tel_call_reason() == 13, "the server's reason");
}

static void slow_caller(void *arg)
{
    tel_pid_t srv = (tel_pid_t)(uintptr_t)arg;
    tel_msg_t *r = NULL;
    uint64_t ms = 60000;
    TT_CHECK_RC(tel_call(srv, T_SLOW, &ms, sizeof ms, &r, 60000), TEL_EDOWN,
                "the call in progress");
}

/* This server is killed without trapping: no terminate runs, so its state
 * is not allocated. */
static struct counter static_counter;

static tel_reason_t static_init(void *arg, void **state)
{
    (void)arg;
    memset(&static_counter, 0, sizeof static_counter);
    *state = &static_counter;
    return TEL_CONTINUE;
}

static const tel_server_ops_t static_ops = {
    .init = static_init,
    .handle_call = c_call,
    .handle_cast = c_cast,
};

static void queued_main(void *arg)
{
    (void)arg;
    tel_pid_t srv;
    TT_CHECK_RC(tel_server_start(&srv, &static_ops, NULL), 0, "start");
    uint64_t r1, r2;
    tel_spawn_opts_t o1 = {.monitor = true, .monitor_ref = &r1};
    tel_spawn_opts_t o2 = {.monitor = true, .monitor_ref = &r2};
    TT_CHECK_RC(tel_spawn_opt(NULL, slow_caller, (void *)(uintptr_t)srv, &o1),
                0, "slow caller");
    tel_sleep(30);
    TT_CHECK_RC(tel_spawn_opt(NULL, queued_caller, (void *)(uintptr_t)srv,
                              &o2),
                0, "queued caller");
    tel_sleep(30);
    int64_t t0 = tt_now_ms();
    TT_CHECK_RC(tel_kill(srv, 13), 0, "kill");
    TT_CHECK(down_reason(10000) == TEL_NORMAL, "a caller returned");
    TT_CHECK(down_reason(10000) == TEL_NORMAL, "both callers returned");
    TT_CHECK(tt_now_ms() - t0 < 5000, "not by timeout");
}

Test(server, a_call_queued_at_a_dying_server_fails_at_once)
{
    TT_RUN(&two, queued_main, NULL);
}

struct load {
    tel_pid_t srv;
    size_t calls;
};

static void client(void *arg)
{
    struct load *l = arg;
    for (size_t i = 0; i < l->calls; i++)
        (void)call_u64(l->srv, T_ADD, 1);
}

static void load_main(void *arg)
{
    struct load *l = arg;
    TT_CHECK_RC(tel_server_start(&l->srv, &counter_ops, NULL), 0, "start");
    uint64_t refs[8];
    for (int i = 0; i < 8; i++) {
        tel_spawn_opts_t o = {.monitor = true, .monitor_ref = &refs[i]};
        TT_CHECK_RC(tel_spawn_opt(NULL, client, l, &o), 0, "client");
    }
    for (int i = 0; i < 8; i++)
        TT_CHECK(down_reason(60000) == TEL_NORMAL, "client ended");
    TT_CHECK(call_u64(l->srv, T_GET, 0) == 8 * l->calls, "every call counted");
    TT_CHECK(call_u64(l->srv, T_STOP, TEL_NORMAL) == 8 * l->calls, "stop");
}

Test(server, many_clients_on_two_schedulers)
{
    struct load l = {.calls = tel_test_scaled(2000, 100)};
    TT_RUN(&two, load_main, &l);
}

static void *foreign(void *arg)
{
    tel_pid_t srv = (tel_pid_t)(uintptr_t)arg;
    tel_pid_t p;
    tel_msg_t *r;
    TT_CHECK_RC(tel_server_start(&p, &counter_ops, NULL), TEL_ENOTPROC,
                "start outside");
    TT_CHECK_RC(tel_call(srv, T_GET, NULL, 0, &r, 10), TEL_ENOTPROC,
                "call outside");
    TT_CHECK_RC(tel_cast(srv, T_INC, NULL, 0), 0, "cast from outside");
    TT_CHECK(tel_call_reason() == 0, "reason outside");
    return NULL;
}

static void bad_main(void *arg)
{
    (void)arg;
    tel_pid_t srv;
    tel_msg_t *r;
    tel_server_ops_t none = {0};
    TT_CHECK_RC(tel_server_start(&srv, NULL, NULL), TEL_EINVAL, "NULL ops");
    TT_CHECK_RC(tel_server_start(&srv, &none, NULL), TEL_EINVAL, "no init");
    none.init = c_init;
    TT_CHECK_RC(tel_server_start_link(&srv, &none, NULL), TEL_EINVAL,
                "no handle_call");
    TT_CHECK_RC(tel_server_start(&srv, &counter_ops, NULL), 0, "start");
    TT_CHECK_RC(tel_call(0, 1, NULL, 0, &r, 10), TEL_EINVAL, "pid 0");
    TT_CHECK_RC(tel_call(srv, 1, NULL, 0, NULL, 10), TEL_EINVAL, "no out");
    TT_CHECK_RC(tel_call(srv, 1, NULL, 4, &r, 10), TEL_EINVAL, "NULL data");
    TT_CHECK_RC(tel_call(srv, 1, NULL, 0, &r, -2), TEL_EINVAL, "timeout");
    TT_CHECK_RC(tel_cast(0, 1, NULL, 0), TEL_EINVAL, "cast pid 0");
    TT_CHECK_RC(tel_cast(srv, 1, NULL, 3), TEL_EINVAL, "cast NULL data");
    tel_from_t f = {0};
    TT_CHECK_RC(tel_reply(f, 1, NULL, 0), TEL_EINVAL, "reply to 0");
    f.pid = srv;
    TT_CHECK_RC(tel_reply(f, 1, NULL, 2), TEL_EINVAL, "reply NULL data");
    TT_CHECK_RC(tel_reply(f, 1, NULL, 0), 0, "a stray reply is harmless");
    pthread_t th;
    pthread_create(&th, NULL, foreign, (void *)(uintptr_t)srv);
    pthread_join(th, NULL);
    TT_CHECK(call_u64(srv, T_GET, 0) == 1, "the foreign cast counted");
    TT_CHECK(call_u64(srv, T_STOP, TEL_NORMAL) == 1, "stop");
}

Test(server, bad_input_gets_clear_errors)
{
    TT_RUN(&two, bad_main, NULL);
    tel_from_t f = {.pid = 5};
    cr_assert_eq(tel_cast(5, 1, NULL, 0), TEL_ESHUTDOWN);
    cr_assert_eq(tel_reply(f, 1, NULL, 0), TEL_ESHUTDOWN);
}
