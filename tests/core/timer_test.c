/*
 * tests/core/timer_test.c: receive timeouts, tel_sleep, tel_send_after and
 * tel_cancel_timer. Timing checks are lower bounds plus generous upper
 * bounds (10x + 500 ms or looser): CI machines are noisy, and no test asserts
 * on speed. Black-box: include/telar.h only.
 */
#include "common.h"

static _Atomic tel_pid_t main_pid;

static void set_main_pid(void)
{
    atomic_store(&main_pid, tel_self());
}

/* A generous upper bound for something that should take ms. */
static int64_t loose_ns(int64_t ms)
{
    return (10 * ms + 500) * 1000000;
}

/* ------------------------------------------------------------------------ */
/* Receive timeouts                                                          */
/* ------------------------------------------------------------------------ */

static const int64_t timeouts[] = {1, 5, 20, 100};

static void recv_timeout_main(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        int64_t ms = timeouts[i];
        tel_msg_t *m = (tel_msg_t *)&m;
        int64_t t0 = tt_now_ns();
        int rc = tel_recv(&m, ms);
        int64_t took = tt_now_ns() - t0;
        TT_CHECK_RC(rc, TEL_ETIMEDOUT, "tel_recv with a timeout");
        TT_CHECK(m == NULL, "*out not NULL after a timeout");
        TT_CHECK(took >= ms * 1000000,
                 "tel_recv(%" PRId64 " ms) timed out after %" PRId64 " us",
                 ms, took / 1000);
        TT_CHECK(took <= loose_ns(ms),
                 "tel_recv(%" PRId64 " ms) took %" PRId64 " ms", ms,
                 took / 1000000);
    }
}

Test(timer, recv_times_out_after_at_least_the_timeout, .timeout = 30)
{
    TT_RUN(NULL, recv_timeout_main, NULL);
}

static bool never(const tel_msg_t *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return false;
}

static void recv_match_timeout_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    for (int i = 0; i < 10; i++)
        if (tt_send_tag(self, (uint64_t)i) != 0)
            return;
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        int64_t ms = timeouts[i];
        tel_msg_t *m = NULL;
        int64_t t0 = tt_now_ns();
        int rc = tel_recv_match(&m, never, NULL, ms);
        int64_t took = tt_now_ns() - t0;
        TT_CHECK_RC(rc, TEL_ETIMEDOUT, "tel_recv_match with a timeout");
        TT_CHECK(took >= ms * 1000000,
                 "tel_recv_match(%" PRId64 " ms) timed out after %" PRId64
                 " us",
                 ms, took / 1000);
        TT_CHECK(took <= loose_ns(ms),
                 "tel_recv_match(%" PRId64 " ms) took %" PRId64 " ms", ms,
                 took / 1000000);
    }
}

Test(timer, recv_match_times_out_after_at_least_the_timeout, .timeout = 30)
{
    TT_RUN(NULL, recv_match_timeout_main, NULL);
}

static void send_later(void *arg)
{
    int64_t ms = (int64_t)(intptr_t)arg;
    (void)tel_sleep(ms);
    tt_send_u64(atomic_load(&main_pid), 5, (uint64_t)ms);
}

static void early_message_main(void *arg)
{
    (void)arg;
    set_main_pid();
    /* A message at ~10 ms beats a 100 ms timeout. */
    int rc = tel_spawn(NULL, send_later, (void *)(intptr_t)10);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    tel_msg_t *m = NULL;
    int64_t t0 = tt_now_ns();
    rc = tel_recv(&m, 2000);
    int64_t took = tt_now_ns() - t0;
    if (!TT_CHECK_RC(rc, 0, "tel_recv before its timeout"))
        return;
    TT_CHECK(tt_msg_u64(m) == 10, "the wrong message");
    TT_CHECK(took < 2000 * 1000000LL, "the message took %" PRId64 " ms",
             took / 1000000);
    tel_msg_free(m);

    /* The 2 s timer of that receive must not disturb later waits. */
    rc = tel_recv(&m, 50);
    TT_CHECK_RC(rc, TEL_ETIMEDOUT, "a later short receive");
    rc = tel_spawn(NULL, send_later, (void *)(intptr_t)2500);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    m = NULL;
    rc = tel_recv(&m, TEL_INFINITY);
    if (TT_CHECK_RC(rc, 0, "tel_recv(TEL_INFINITY) past the old timeout"))
        TT_CHECK(tt_msg_u64(m) == 2500, "the wrong message");
    tel_msg_free(m);
}

Test(timer, a_message_before_the_timeout_is_returned_and_leaves_no_timeout,
     .timeout = 60)
{
    TT_RUN(NULL, early_message_main, NULL);
}

/*
 * An early message must not leave the receive's timer armed, to cut a later
 * sleep or receive short: the old 300 ms deadline falls inside each of the
 * 400 ms waits that follow.
 */
static void stale_timer_sleep_main(void *arg)
{
    (void)arg;
    set_main_pid();
    for (int round = 0; round < 3; round++) {
        int rc = tel_spawn(NULL, send_later, (void *)(intptr_t)5);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        tel_msg_t *m = NULL;
        rc = tel_recv(&m, 300);
        if (!TT_CHECK_RC(rc, 0, "tel_recv before its timeout"))
            return;
        tel_msg_free(m);
        int64_t t0 = tt_now_ns();
        rc = tel_sleep(400);
        int64_t took = tt_now_ns() - t0;
        TT_CHECK_RC(rc, 0, "tel_sleep");
        TT_CHECK(took >= 400 * 1000000LL,
                 "round %d: tel_sleep(400) after an early message returned "
                 "after %" PRId64 " us",
                 round, took / 1000);
        rc = tel_spawn(NULL, send_later, (void *)(intptr_t)5);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        m = NULL;
        rc = tel_recv(&m, 300);
        if (!TT_CHECK_RC(rc, 0, "tel_recv before its timeout"))
            return;
        tel_msg_free(m);
        m = NULL;
        t0 = tt_now_ns();
        rc = tel_recv(&m, 400);
        took = tt_now_ns() - t0;
        TT_CHECK_RC(rc, TEL_ETIMEDOUT, "tel_recv(400) on an empty mailbox");
        TT_CHECK(took >= 400 * 1000000LL,
                 "round %d: tel_recv(400) after an early message timed out "
                 "after %" PRId64 " us",
                 round, took / 1000);
        tel_msg_free(m);
    }
}

Test(timer, an_early_message_leaves_no_timer_behind, .timeout = 60)
{
    TT_RUN(NULL, stale_timer_sleep_main, NULL);
}

static void huge_timeout_main(void *arg)
{
    (void)arg;
    set_main_pid();
    int rc = tel_spawn(NULL, send_later, (void *)(intptr_t)20);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    tel_msg_t *m = NULL;
    int64_t t0 = tt_now_ns();
    rc = tel_recv(&m, INT64_MAX);
    int64_t took = tt_now_ns() - t0;
    if (TT_CHECK_RC(rc, 0, "tel_recv(INT64_MAX)"))
        TT_CHECK(tt_msg_u64(m) == 20, "the wrong message");
    TT_CHECK(took >= 15 * 1000000LL,
             "tel_recv(INT64_MAX) returned after %" PRId64 " us: the "
             "deadline overflowed?",
             took / 1000);
    tel_msg_free(m);
}

Test(timer, a_huge_timeout_waits_for_the_message, .timeout = 30)
{
    TT_RUN(NULL, huge_timeout_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* tel_sleep                                                                 */
/* ------------------------------------------------------------------------ */

static void sleep_main(void *arg)
{
    (void)arg;
    static const int64_t sleeps[] = {1, 5, 20, 100};
    for (size_t i = 0; i < sizeof sleeps / sizeof sleeps[0]; i++) {
        int64_t ms = sleeps[i];
        int64_t t0 = tt_now_ns();
        int rc = tel_sleep(ms);
        int64_t took = tt_now_ns() - t0;
        TT_CHECK_RC(rc, 0, "tel_sleep");
        TT_CHECK(took >= ms * 1000000,
                 "tel_sleep(%" PRId64 ") returned after %" PRId64 " us", ms,
                 took / 1000);
        TT_CHECK(took <= loose_ns(ms),
                 "tel_sleep(%" PRId64 ") took %" PRId64 " ms", ms,
                 took / 1000000);
    }
    int rc = tel_sleep(0);
    TT_CHECK_RC(rc, 0, "tel_sleep(0)");
}

Test(timer, sleep_waits_at_least_the_time, .timeout = 30)
{
    TT_RUN(NULL, sleep_main, NULL);
}

static void sleep_through_mail_main(void *arg)
{
    (void)arg;
    set_main_pid();
    for (int round = 0; round < 3; round++) {
        int rc = tel_spawn(NULL, send_later, (void *)(intptr_t)10);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        int64_t t0 = tt_now_ns();
        rc = tel_sleep(100);
        int64_t took = tt_now_ns() - t0;
        TT_CHECK_RC(rc, 0, "tel_sleep");
        TT_CHECK(took >= 100 * 1000000LL,
                 "tel_sleep(100) returned after %" PRId64
                 " us when a message came",
                 took / 1000);
        /* The message waited in the mailbox (or comes soon, on a slow box). */
        tel_msg_t *m = NULL;
        rc = tel_recv(&m, 5000);
        if (TT_CHECK_RC(rc, 0, "tel_recv after the sleep"))
            TT_CHECK(tt_msg_u64(m) == 10, "the wrong message");
        tel_msg_free(m);
    }
}

Test(timer, sleep_does_not_return_early_when_a_message_arrives,
     .timeout = 30)
{
    TT_RUN(NULL, sleep_through_mail_main, NULL);
}

static atomic_int sleep_neg_rc = 1, sleep_min_rc = 1;

static void sleep_negative_main(void *arg)
{
    (void)arg;
    atomic_store(&sleep_neg_rc, tel_sleep(-1));
    atomic_store(&sleep_min_rc, tel_sleep(INT64_MIN));
}

Test(timer, sleep_with_a_negative_time_returns_einval, .timeout = 30)
{
    TT_RUN(NULL, sleep_negative_main, NULL);
    cr_assert_eq(atomic_load(&sleep_neg_rc), TEL_EINVAL, "tel_sleep(-1): %s",
                 tel_errname(atomic_load(&sleep_neg_rc)));
    cr_assert_eq(atomic_load(&sleep_min_rc), TEL_EINVAL,
                 "tel_sleep(INT64_MIN): %s",
                 tel_errname(atomic_load(&sleep_min_rc)));
}

static atomic_int foreign_sleep_rc = 1;

static void *foreign_sleep_thread(void *arg)
{
    (void)arg;
    atomic_store(&foreign_sleep_rc, tel_sleep(1));
    return NULL;
}

static void foreign_sleep_main(void *arg)
{
    (void)arg;
    pthread_t t;
    if (TT_CHECK(pthread_create(&t, NULL, foreign_sleep_thread, NULL) == 0,
                 "pthread_create"))
        pthread_join(t, NULL);
}

Test(timer, sleep_outside_a_process_returns_enotproc, .timeout = 30)
{
    int rc = tel_sleep(1);
    cr_assert_eq(rc, TEL_ENOTPROC, "before any run: %d (%s)", rc,
                 tel_errname(rc));
    TT_RUN(NULL, foreign_sleep_main, NULL);
    cr_assert_eq(atomic_load(&foreign_sleep_rc), TEL_ENOTPROC,
                 "on a foreign thread: %d", atomic_load(&foreign_sleep_rc));
}

/* ------------------------------------------------------------------------ */
/* tel_send_after                                                            */
/* ------------------------------------------------------------------------ */

static void send_after_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    char payload[64];
    memset(payload, 'p', sizeof payload);
    uint64_t id = 0;
    int64_t t0 = tt_now_ns();
    int rc = tel_send_after(&id, 50, self, 77, payload, sizeof payload);
    if (!TT_CHECK_RC(rc, 0, "tel_send_after"))
        return;
    /* The copy was taken at the call. */
    memset(payload, 'X', sizeof payload);
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 5000);
    int64_t took = tt_now_ns() - t0;
    if (!TT_CHECK_RC(rc, 0, "tel_recv of the timed message"))
        return;
    TT_CHECK(took >= 50 * 1000000LL,
             "a 50 ms timer fired after %" PRId64 " us", took / 1000);
    TT_CHECK(took <= loose_ns(50), "a 50 ms timer took %" PRId64 " ms",
             took / 1000000);
    TT_CHECK(m->tag == 77, "tag %" PRIu64 ", want 77", m->tag);
    TT_CHECK(m->from == self, "from %" PRIu64 ", want the caller %" PRIu64,
             m->from, self);
    bool same = m->size == sizeof payload && m->data != NULL;
    for (size_t i = 0; same && i < sizeof payload; i++)
        same = ((char *)m->data)[i] == 'p';
    TT_CHECK(same, "the payload was not copied at the call");
    tel_msg_free(m);
    /* Exactly one message. */
    m = NULL;
    rc = tel_recv(&m, 100);
    TT_CHECK_RC(rc, TEL_ETIMEDOUT, "a second receive");
    tel_msg_free(m);
}

Test(timer, send_after_delivers_after_the_delay_with_tag_and_payload,
     .timeout = 30)
{
    TT_RUN(NULL, send_after_main, NULL);
}

static void send_after_other_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    /* Zero delay, NULL timer_out and an empty payload are all fine. */
    int rc = tel_send_after(NULL, 0, self, 1, NULL, 0);
    TT_CHECK_RC(rc, 0, "tel_send_after(NULL, 0 ms, empty)");
    /* A timer for another process. */
    tel_pid_t waiter = 0;
    rc = tel_spawn(&waiter, tt_wait_one_fn, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    rc = tel_send_after(NULL, 10, waiter, 2, NULL, 0);
    TT_CHECK_RC(rc, 0, "tel_send_after to another process");
    TT_CHECK(tt_await_dead(waiter, 10000),
             "the timed message never woke the other process");
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 5000);
    if (TT_CHECK_RC(rc, 0, "tel_recv of the zero-delay timer")) {
        TT_CHECK(m->tag == 1, "tag %" PRIu64 ", want 1", m->tag);
        TT_CHECK(m->size == 0 && m->data == NULL, "not empty");
        TT_CHECK(m->from == self, "from %" PRIu64, m->from);
    }
    tel_msg_free(m);
}

Test(timer, send_after_with_zero_delay_and_to_others_works, .timeout = 30)
{
    TT_RUN(NULL, send_after_other_main, NULL);
}

static void send_after_bad_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    uint64_t id = 0;
    int rc = tel_send_after(&id, 10, 0, 1, NULL, 0);
    TT_CHECK_RC(rc, TEL_EINVAL, "tel_send_after to pid 0");
    rc = tel_send_after(&id, -1, self, 1, NULL, 0);
    TT_CHECK_RC(rc, TEL_EINVAL, "tel_send_after with -1 ms");
    rc = tel_send_after(&id, INT64_MIN, self, 1, NULL, 0);
    TT_CHECK_RC(rc, TEL_EINVAL, "tel_send_after with INT64_MIN ms");
    rc = tel_send_after(&id, 10, self, 1, NULL, 5);
    TT_CHECK_RC(rc, TEL_EINVAL, "tel_send_after with NULL data, size 5");
    /* None of them sent anything. */
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 100);
    TT_CHECK_RC(rc, TEL_ETIMEDOUT, "receive after rejected timers");
    tel_msg_free(m);
}

Test(timer, send_after_rejects_bad_arguments, .timeout = 30)
{
    TT_RUN(NULL, send_after_bad_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* tel_cancel_timer                                                          */
/* ------------------------------------------------------------------------ */

static void cancel_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    char data[100] = {1};
    uint64_t id = 0;
    int rc = tel_send_after(&id, 100, self, 3, data, sizeof data);
    if (!TT_CHECK_RC(rc, 0, "tel_send_after"))
        return;
    rc = tel_cancel_timer(id);
    TT_CHECK_RC(rc, 0, "tel_cancel_timer before it fired");
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 300);
    TT_CHECK(rc == TEL_ETIMEDOUT, "a cancelled timer's message arrived");
    tel_msg_free(m);
    rc = tel_cancel_timer(id);
    TT_CHECK_RC(rc, TEL_ENOENT, "tel_cancel_timer a second time");
}

Test(timer, cancel_before_it_fires_stops_the_message, .timeout = 30)
{
    TT_RUN(NULL, cancel_main, NULL);
}

static void cancel_after_fire_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    uint64_t id = 0;
    int rc = tel_send_after(&id, 1, self, 3, NULL, 0);
    if (!TT_CHECK_RC(rc, 0, "tel_send_after"))
        return;
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 5000);
    if (!TT_CHECK_RC(rc, 0, "tel_recv"))
        return;
    tel_msg_free(m);
    rc = tel_cancel_timer(id);
    TT_CHECK_RC(rc, TEL_ENOENT, "tel_cancel_timer after it fired");
}

Test(timer, cancel_after_it_fired_returns_enoent, .timeout = 30)
{
    TT_RUN(NULL, cancel_after_fire_main, NULL);
}

static void cancel_made_up_main(void *arg)
{
    (void)arg;
    static const uint64_t ids[] = {0, 1, 2, 12345, UINT64_MAX, 1ull << 63};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        int rc = tel_cancel_timer(ids[i]);
        TT_CHECK(rc == TEL_ENOENT, "cancel of made-up id %#" PRIx64
                 " gave %d (%s)",
                 ids[i], rc, tel_errname(rc));
    }
    /* Next to a real, already fired, timer's id. */
    uint64_t id = 0;
    int rc = tel_send_after(&id, 0, tel_self(), 1, NULL, 0);
    if (!TT_CHECK_RC(rc, 0, "tel_send_after"))
        return;
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 5000);
    TT_CHECK_RC(rc, 0, "tel_recv");
    tel_msg_free(m);
    uint64_t near[] = {id + 1, id + 2, id ^ (1ull << 40), id + (1ull << 32)};
    for (size_t i = 0; i < sizeof near / sizeof near[0]; i++) {
        rc = tel_cancel_timer(near[i]);
        TT_CHECK(rc == TEL_ENOENT, "cancel of made-up id %#" PRIx64
                 " gave %d (%s)",
                 near[i], rc, tel_errname(rc));
    }
}

Test(timer, cancel_of_a_made_up_id_returns_enoent, .timeout = 30)
{
    TT_RUN(NULL, cancel_made_up_main, NULL);
}

Test(timer, timer_calls_with_no_runtime_return_eshutdown, .timeout = 30)
{
    uint64_t id = 0;
    int rc = tel_send_after(&id, 10, 0x100000001ull, 1, NULL, 0);
    cr_assert_eq(rc, TEL_ESHUTDOWN, "tel_send_after: %d (%s)", rc,
                 tel_errname(rc));
    rc = tel_cancel_timer(1);
    cr_assert_eq(rc, TEL_ESHUTDOWN, "tel_cancel_timer: %d (%s)", rc,
                 tel_errname(rc));
}

/* ------------------------------------------------------------------------ */
/* Many timers                                                               */
/* ------------------------------------------------------------------------ */

static size_t many_n;
static uint64_t *many_ids;
static uint64_t many_seed;

static void many_cancel_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    struct tt_rng rng = {many_seed};
    for (size_t i = 0; i < many_n; i++) {
        int64_t ms = 3600000 + (int64_t)tt_rng_below(&rng, 100000);
        int rc = tel_send_after(&many_ids[i], ms, self, i, NULL, 0);
        if (!TT_CHECK(rc == 0, "timer %zu of %zu: %s", i, many_n,
                      tel_errname(rc)))
            return;
    }
    /* Cancel in a shuffled order; each id is live exactly once. */
    for (size_t i = many_n - 1; i > 0; i--) {
        size_t j = (size_t)tt_rng_below(&rng, i + 1);
        uint64_t t = many_ids[i];
        many_ids[i] = many_ids[j];
        many_ids[j] = t;
    }
    for (size_t i = 0; i < many_n; i++) {
        int rc = tel_cancel_timer(many_ids[i]);
        if (!TT_CHECK(rc == 0, "cancel %zu of %zu gave %s (seed %" PRIu64 ")",
                      i, many_n, tel_errname(rc), many_seed))
            return;
    }
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 50);
    TT_CHECK_RC(rc, TEL_ETIMEDOUT, "receive after cancelling all timers");
    tel_msg_free(m);
}

Test(timer, a_million_pending_timers_can_be_created_and_cancelled,
     .timeout = 120)
{
    many_seed = tel_test_seed();
    many_n = tel_test_scaled(1000000, 10000);
    many_ids = calloc(many_n, sizeof *many_ids);
    cr_assert_not_null(many_ids);
    TT_RUN(NULL, many_cancel_main, NULL);
    free(many_ids);
}

static void *pending_sender(void *arg)
{
    tel_pid_t to = *(tel_pid_t *)arg;
    size_t n = many_n / 4;
    for (size_t i = 0; i < n; i++) {
        char data[24] = {0};
        if (tel_send_after(NULL, 7200000, to, i, data, sizeof data) != 0) {
            TT_FAIL("a foreign tel_send_after failed at %zu", i);
            break;
        }
    }
    return NULL;
}

static void many_pending_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    for (size_t i = 0; i < many_n; i++) {
        uint64_t v = i;
        int rc = tel_send_after(NULL, 3600000 + (int64_t)(i % 5000), self, i,
                                &v, sizeof v);
        if (!TT_CHECK(rc == 0, "timer %zu of %zu: %s", i, many_n,
                      tel_errname(rc)))
            return;
    }
    /* Some held by other processes too, that die with the runtime. */
    tel_pid_t waiter = 0;
    int rc = tel_spawn(&waiter, tt_wait_one_fn, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    pthread_t t;
    if (TT_CHECK(pthread_create(&t, NULL, pending_sender, &waiter) == 0,
                 "pthread_create"))
        pthread_join(t, NULL);
}

Test(timer, pending_timers_do_not_hold_up_shutdown, .timeout = 120)
{
    many_n = tel_test_scaled(1000000, 10000);
    int64_t t0 = tt_now_ms();
    TT_RUN(NULL, many_pending_main, NULL);
    int64_t took = tt_now_ms() - t0;
    cr_assert_lt(took, 60000, "the run took %" PRId64 " ms", took);
    /* And a new run starts clean: no old timer fires into it. */
    TT_RUN(NULL, sleep_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* From a foreign thread                                                     */
/* ------------------------------------------------------------------------ */

static atomic_int foreign_after_rc = 1, foreign_cancel_rc = 1;
static atomic_int foreign_cancel_after_rc = 1;
static atomic_int_fast64_t foreign_sent_at_ns;

static void *foreign_timer_thread(void *arg)
{
    tel_pid_t to = *(tel_pid_t *)arg;
    /* One that is cancelled from here... */
    uint64_t id = 0;
    atomic_store(&foreign_cancel_after_rc,
                 tel_send_after(&id, 200, to, 2, NULL, 0));
    atomic_store(&foreign_cancel_rc, tel_cancel_timer(id));
    /* ...and one that fires. */
    char text[] = "from afar";
    atomic_store(&foreign_sent_at_ns, tt_now_ns());
    atomic_store(&foreign_after_rc,
                 tel_send_after(NULL, 20, to, 1, text, sizeof text));
    memset(text, 0, sizeof text);
    return NULL;
}

static void foreign_timer_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    pthread_t t;
    if (!TT_CHECK(pthread_create(&t, NULL, foreign_timer_thread, &self) == 0,
                  "pthread_create"))
        return;
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 5000);
    int64_t got_at = tt_now_ns();
    pthread_join(t, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_recv of a foreign timer's message"))
        return;
    TT_CHECK(m->tag == 1, "tag %" PRIu64 ", want 1", m->tag);
    TT_CHECK(m->from == 0, "from %" PRIu64 ", want 0 for a foreign thread",
             m->from);
    TT_CHECK(m->size == sizeof "from afar" &&
                 strcmp((const char *)m->data, "from afar") == 0,
             "the payload is wrong");
    int64_t took = got_at - atomic_load(&foreign_sent_at_ns);
    TT_CHECK(took >= 20 * 1000000LL,
             "a 20 ms foreign timer fired after %" PRId64 " us", took / 1000);
    tel_msg_free(m);
    /* The cancelled one never comes. */
    m = NULL;
    rc = tel_recv(&m, 400);
    TT_CHECK(rc == TEL_ETIMEDOUT, "a cancelled foreign timer fired (tag %"
             PRIu64 ")",
             m ? m->tag : 0);
    tel_msg_free(m);
}

Test(timer, send_after_and_cancel_work_from_a_foreign_thread, .timeout = 30)
{
    TT_RUN(NULL, foreign_timer_main, NULL);
    cr_assert_eq(atomic_load(&foreign_after_rc), 0, "send_after: %s",
                 tel_errname(atomic_load(&foreign_after_rc)));
    cr_assert_eq(atomic_load(&foreign_cancel_after_rc), 0,
                 "send_after: %s",
                 tel_errname(atomic_load(&foreign_cancel_after_rc)));
    cr_assert_eq(atomic_load(&foreign_cancel_rc), 0, "cancel: %s",
                 tel_errname(atomic_load(&foreign_cancel_rc)));
}

/* ------------------------------------------------------------------------ */
/* A timer for a process that is gone                                        */
/* ------------------------------------------------------------------------ */

static atomic_int late_delivered;

static void short_waiter(void *arg)
{
    (void)arg;
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 300);
    if (rc == 0) {
        atomic_fetch_add(&late_delivered, 1);
        tel_msg_free(m);
    }
}

static void dead_target_main(void *arg)
{
    (void)arg;
    tel_pid_t pids[50];
    for (int i = 0; i < 50; i++) {
        tel_pid_t dead = 0;
        int rc = tel_spawn(&dead, tt_return_fn, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn") ||
            !TT_CHECK(tt_await_dead(dead, 10000), "child alive"))
            return;
        rc = tel_send_after(NULL, 30, dead, 9, NULL, 0);
        if (!TT_CHECK_RC(rc, 0, "tel_send_after to a dead pid"))
            return;
        /* Likely in the dead one's slot; must not get its timer. */
        rc = tel_spawn(&pids[i], short_waiter, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
    }
    /* A control: a timer for a live process does arrive. */
    int rc = tel_send_after(NULL, 30, tel_self(), 10, NULL, 0);
    if (!TT_CHECK_RC(rc, 0, "tel_send_after to main"))
        return;
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 5000);
    TT_CHECK_RC(rc, 0, "tel_recv of the control timer");
    tel_msg_free(m);
    for (int i = 0; i < 50; i++)
        TT_CHECK(tt_await_dead(pids[i], 10000), "waiter alive");
}

Test(timer, a_timer_for_a_dead_process_is_dropped, .timeout = 30)
{
    TT_RUN(NULL, dead_target_main, NULL);
    cr_assert_eq(atomic_load(&late_delivered), 0,
                 "%d timers for dead processes reached new ones",
                 atomic_load(&late_delivered));
}

/* ------------------------------------------------------------------------ */
/* Many sleepers                                                             */
/* ------------------------------------------------------------------------ */

static uint64_t sleepers_seed;
static size_t sleepers_n;
static atomic_size_t sleepers_woke;

static void sleeper(void *arg)
{
    uint64_t idx = (uint64_t)(uintptr_t)arg;
    struct tt_rng rng = {sleepers_seed ^ (idx * 0x9E3779B97F4A7C15ull)};
    for (int round = 0; round < 3; round++) {
        int64_t ms = 1 + (int64_t)tt_rng_below(&rng, 10);
        int64_t t0 = tt_now_ns();
        int rc = tel_sleep(ms);
        int64_t took = tt_now_ns() - t0;
        if (!TT_CHECK_RC(rc, 0, "tel_sleep"))
            return;
        if (!TT_CHECK(took >= ms * 1000000,
                      "sleeper %" PRIu64 ": tel_sleep(%" PRId64
                      ") returned after %" PRId64 " us (seed %" PRIu64 ")",
                      idx, ms, took / 1000, sleepers_seed))
            return;
    }
    atomic_fetch_add(&sleepers_woke, 1);
    tt_send_tag(atomic_load(&main_pid), idx);
}

static void sleepers_main(void *arg)
{
    (void)arg;
    set_main_pid();
    for (size_t i = 0; i < sleepers_n; i++) {
        int rc = tel_spawn(NULL, sleeper, (void *)(uintptr_t)i);
        if (!TT_CHECK(rc == 0, "spawn %zu: %s", i, tel_errname(rc)))
            return;
    }
    for (size_t i = 0; i < sleepers_n; i++) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 30000);
        if (!TT_CHECK(rc == 0, "only %zu of %zu sleepers woke (seed %" PRIu64
                      ")",
                      i, sleepers_n, sleepers_seed))
            return;
        tel_msg_free(m);
    }
}

Test(timer, many_processes_sleeping_random_times_all_wake, .timeout = 120)
{
    sleepers_seed = tel_test_seed();
    sleepers_n = tel_test_scaled(10000, 500);
    TT_RUN(NULL, sleepers_main, NULL);
    cr_assert_eq(atomic_load(&sleepers_woke), sleepers_n);
}
