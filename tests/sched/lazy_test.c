/*
 * tests/sched/lazy_test.c: lazy parks (sched/scheduler.c, "Lazy parks").
 * A task that parks on its mailbox right after waking the task that runs
 * next keeps its park unpublished until that run ends; a reply from that
 * task takes it without an atomic. These tests check that the path is
 * taken (white-box: the scheduler's lazy slot, read by the woken task),
 * and that a lazily parked task is not stranded: its receive timeout
 * fires, a message from another thread reaches it while the run that
 * followed its park never ends by itself, and one that reached it before
 * that run ended has it wait with the woken tasks.
 */
#include "common.h"

#include "sched/preempt.h"
#include "sched/scheduler.h"

#define TAG_GO 1
#define TAG_PING 2
#define TAG_DONE 3

/* Whether the running scheduler holds a lazy park now. */
static bool lazy_here(void)
{
    return tel__sched_self()->lazy != NULL;
}

/* ------------------------------------------------------------------------ */
/* A reply to the waker                                                      */
/* ------------------------------------------------------------------------ */

#define ROUNDS 2000

static atomic_int lazy_seen;

static void ponger(void *arg)
{
    (void)arg;
    for (;;) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 20000), 0, "ponger: tel_recv"))
            return;
        if (lazy_here())
            atomic_store(&lazy_seen, 1);
        uint64_t tag = m->tag, v = m->size ? tt_msg_u64(m) : 0;
        tel_pid_t from = m->from;
        tel_msg_free(m);
        if (tag == TAG_DONE)
            return;
        (void)tt_send_u64(from, TAG_PING, v + 1);
    }
}

static void pingpong_main(void *arg)
{
    (void)arg;
    tel_pid_t pong = 0;
    if (!TT_CHECK_RC(tel_spawn(&pong, ponger, NULL), 0, "tel_spawn"))
        return;
    for (uint64_t i = 0; i < ROUNDS; i++) {
        if (tt_send_u64(pong, TAG_PING, 2 * i) != 0)
            return;
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 20000), 0, "tel_recv"))
            return;
        uint64_t v = tt_msg_u64(m);
        tel_msg_free(m);
        if (!TT_CHECK(v == 2 * i + 1, "round %" PRIu64 ": got %" PRIu64, i,
                      v))
            return;
    }
    (void)tt_send_tag(pong, TAG_DONE);
    if (tel__preempt_active())
        TT_CHECK(atomic_load(&lazy_seen),
                 "the ponger never found the pinger's park lazy");
}

Test(lazy, a_reply_to_the_waker_takes_the_lazy_park, .timeout = 60)
{
    tel_config_t c = {.schedulers = 1};
    TT_RUN(&c, pingpong_main, NULL);
}

Test(lazy, a_reply_to_the_waker_on_two_schedulers, .timeout = 60)
{
    tel_config_t c = {.schedulers = 2};
    TT_RUN(&c, pingpong_main, NULL);
}

/*
 * The same with a selective receive: the pinger asks for the reply tag
 * only; the ponger first sends a message it rejects (which the lazy park
 * hands to its saved list), then the reply. The rejected ones come out
 * after, in order.
 */
#define TAG_JUNK 4
#define SEL_ROUNDS 500

static bool is_ping(const tel_msg_t *m, void *ctx)
{
    (void)ctx;
    return m->tag == TAG_PING;
}

static void sel_ponger(void *arg)
{
    (void)arg;
    for (;;) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 20000), 0, "sel_ponger: tel_recv"))
            return;
        if (lazy_here())
            atomic_store(&lazy_seen, 1);
        uint64_t tag = m->tag, v = m->size ? tt_msg_u64(m) : 0;
        tel_pid_t from = m->from;
        tel_msg_free(m);
        if (tag == TAG_DONE)
            return;
        (void)tt_send_u64(from, TAG_JUNK, v);
        (void)tt_send_u64(from, TAG_PING, v + 1);
    }
}

static void selective_main(void *arg)
{
    (void)arg;
    tel_pid_t pong = 0;
    if (!TT_CHECK_RC(tel_spawn(&pong, sel_ponger, NULL), 0, "tel_spawn"))
        return;
    for (uint64_t i = 0; i < SEL_ROUNDS; i++) {
        if (tt_send_u64(pong, TAG_PING, 2 * i) != 0)
            return;
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv_match(&m, is_ping, NULL, 20000), 0,
                         "tel_recv_match"))
            return;
        uint64_t v = tt_msg_u64(m);
        tel_msg_free(m);
        if (!TT_CHECK(v == 2 * i + 1, "round %" PRIu64 ": got %" PRIu64, i,
                      v))
            return;
    }
    (void)tt_send_tag(pong, TAG_DONE);
    for (uint64_t i = 0; i < SEL_ROUNDS; i++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 0), 0, "a rejected message is missing"))
            return;
        uint64_t tag = m->tag, v = tt_msg_u64(m);
        tel_msg_free(m);
        if (!TT_CHECK(tag == TAG_JUNK && v == 2 * i,
                      "rejected message %" PRIu64 ": tag %" PRIu64
                      ", value %" PRIu64,
                      i, tag, v))
            return;
    }
    if (tel__preempt_active())
        TT_CHECK(atomic_load(&lazy_seen),
                 "the ponger never found the pinger's park lazy");
}

Test(lazy, a_selective_receive_keeps_what_the_woken_task_hands_it,
     .timeout = 60)
{
    tel_config_t c = {.schedulers = 1};
    TT_RUN(&c, selective_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Not stranded                                                              */
/* ------------------------------------------------------------------------ */

/*
 * main spawns the worker, which waits for a go; then the waiter, which
 * sends it the go and waits: its park is lazy, since the worker it woke
 * runs next. The worker then runs long:
 *   - cooperatively (tel_reduce), while the waiter's receive times out:
 *     the timeout must fire long before the worker is done;
 *   - in a tel_preempt_disable section that never calls Telar, until the
 *     waiter got a message another thread sent it: the watchdog's signal
 *     must publish the park, so the message wakes the waiter on the other
 *     scheduler (the worker gives up after 5 s).
 */
struct strand {
    _Atomic tel_pid_t waiter;
    atomic_int released;   /* the waiter got what it waited for */
    atomic_int lazy;       /* the worker found a lazy park */
    atomic_int timed_out;  /* the worker gave up */
    int64_t waited_ms;     /* the waiter's receive took this long */
    bool spin;             /* the worker spins without Telar calls */
    tel_pid_t main;
};

static struct strand st;

static void worker(void *arg)
{
    (void)arg;
    tel_msg_t *m = NULL;
    if (!TT_CHECK_RC(tel_recv(&m, 20000), 0, "worker: tel_recv"))
        return;
    tel_msg_free(m);
    if (lazy_here())
        atomic_store(&st.lazy, 1);
    int64_t until = tt_now_ms() + 5000;
    bool released;
    if (st.spin) {
        TT_CHECK_RC(tel_preempt_disable(), 0, "tel_preempt_disable");
        while (!(released = atomic_load_explicit(&st.released,
                                                 memory_order_relaxed)) &&
               tt_now_ms() < until)
            ;
        TT_CHECK_RC(tel_preempt_enable(), 0, "tel_preempt_enable");
    } else {
        while (!(released = atomic_load_explicit(&st.released,
                                                 memory_order_relaxed)) &&
               tt_now_ms() < until)
            (void)tel_reduce(1);
    }
    if (!released) /* the waiter ran only once we stopped */
        atomic_store(&st.timed_out, 1);
    (void)tt_send_tag(st.main, TAG_DONE);
}

static void waiter(void *arg)
{
    tel_pid_t w = (tel_pid_t)(uintptr_t)arg;
    atomic_store(&st.waiter, tel_self());
    (void)tt_send_tag(w, TAG_GO);
    int64_t t0 = tt_now_ms();
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, st.spin ? 20000 : 50);
    st.waited_ms = tt_now_ms() - t0;
    if (st.spin)
        TT_CHECK_RC(rc, 0, "waiter: tel_recv");
    else
        TT_CHECK_RC(rc, TEL_ETIMEDOUT, "waiter: tel_recv");
    tel_msg_free(m);
    atomic_store(&st.released, 1);
    (void)tt_send_tag(st.main, TAG_DONE);
}

/* Another thread: once the worker has spun for a while (the scheduler is
 * marked stuck by then), send the waiter a message. */
static void *poker(void *arg)
{
    (void)arg;
    tel_pid_t to;
    while (!(to = atomic_load(&st.waiter)))
        usleep(1000);
    usleep(100 * 1000);
    TT_CHECK_RC(tel_send(to, TAG_PING, NULL, 0), 0, "poker: tel_send");
    return NULL;
}

static void strand_main(void *arg)
{
    (void)arg;
    st.main = tel_self();
    tel_pid_t w = 0;
    if (!TT_CHECK_RC(tel_spawn(&w, worker, NULL), 0, "spawn worker"))
        return;
    tel_sleep(10); /* the worker waits for its go */
    pthread_t th;
    bool poke = st.spin;
    if (poke && !TT_CHECK(pthread_create(&th, NULL, poker, NULL) == 0,
                          "pthread_create"))
        return;
    if (!TT_CHECK_RC(tel_spawn(NULL, waiter, (void *)(uintptr_t)w), 0,
                     "spawn waiter"))
        return;
    for (int k = 0; k < 2; k++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 20000), 0, "main: tel_recv"))
            break;
        tel_msg_free(m);
    }
    if (poke)
        pthread_join(th, NULL);
    TT_CHECK(!atomic_load(&st.timed_out),
             "the waiter never ran while the worker ran (waited %" PRId64
             " ms)",
             st.waited_ms);
    if (tel__preempt_active())
        TT_CHECK(atomic_load(&st.lazy), "the waiter's park was not lazy");
}

Test(lazy, a_receive_timeout_fires_while_the_next_run_goes_on, .timeout = 60)
{
    st.spin = false;
    tel_config_t c = {.schedulers = 1};
    TT_RUN(&c, strand_main, NULL);
    cr_assert_lt(st.waited_ms, 2000, "a 50 ms receive took %" PRId64 " ms",
                 st.waited_ms);
}

Test(lazy, another_threads_message_reaches_it_while_the_next_run_never_ends,
     .timeout = 60)
{
    st.spin = true;
    tel_config_t c = {.schedulers = 2};
    TT_RUN(&c, strand_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Woken while lazy                                                          */
/* ------------------------------------------------------------------------ */

/*
 * A lazily parked task that another thread's message reaches is woken when
 * the run that followed its park ends (its park's publication fails): it
 * then waits with the woken tasks (the wake lane), not behind every
 * process in the ring. One scheduler, 8 hogs: the waiter wakes the worker
 * and parks lazily; the worker has another thread send the waiter a
 * message, then parks itself. The waiter must run within about a slice of
 * hog loops, where behind the ring it waited for all 8 hogs.
 */
#define WL_HOGS 8
#define WL_SLICE 1000u
#define WL_LOOP_REDS 100 /* a hog's loop: a slice is 10 loops */

struct woken_lazy {
    _Atomic tel_pid_t waiter;
    atomic_int poke;   /* the worker asks the other thread to send */
    atomic_int poked;  /* it has sent */
    atomic_int lazy;   /* the waiter's park was lazy when the message came */
    atomic_bool stop;
    atomic_uint_fast64_t loops;
    uint64_t parked_at, got_at;
    tel_pid_t main;
};

static struct woken_lazy wl;

static void wl_hog(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&wl.stop, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&wl.loops, 1, memory_order_relaxed);
        (void)tel_reduce(WL_LOOP_REDS);
    }
}

static void wl_worker(void *arg)
{
    (void)arg;
    tel_msg_t *m = NULL;
    if (!TT_CHECK_RC(tel_recv(&m, 20000), 0, "worker: tel_recv go"))
        return;
    tel_msg_free(m);
    /* No Telar call until the other thread has sent: the run goes on. */
    atomic_store(&wl.poke, 1);
    int64_t until = tt_now_ms() + 5000;
    while (!atomic_load(&wl.poked) && tt_now_ms() < until)
        ;
    atomic_store(&wl.lazy, lazy_here());
    wl.parked_at = atomic_load(&wl.loops);
    /* The run ends: the waiter's park is published, and fails. */
    if (TT_CHECK_RC(tel_recv(&m, 20000), 0, "worker: tel_recv end"))
        tel_msg_free(m);
}

static void wl_waiter(void *arg)
{
    tel_pid_t w = (tel_pid_t)(uintptr_t)arg;
    atomic_store(&wl.waiter, tel_self());
    (void)tt_send_tag(w, TAG_GO);
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 20000);
    wl.got_at = atomic_load(&wl.loops);
    if (TT_CHECK_RC(rc, 0, "waiter: tel_recv"))
        tel_msg_free(m);
    (void)tt_send_tag(wl.main, TAG_DONE);
}

static void *wl_poker(void *arg)
{
    (void)arg;
    int64_t until = tt_now_ms() + 20000;
    while (!atomic_load(&wl.poke) && tt_now_ms() < until)
        ;
    TT_CHECK_RC(tel_send(atomic_load(&wl.waiter), TAG_PING, NULL, 0), 0,
                "poker: tel_send");
    atomic_store(&wl.poked, 1);
    return NULL;
}

static void woken_lazy_main(void *arg)
{
    (void)arg;
    wl.main = tel_self();
    if (!tel__preempt_active()) {
        cr_log_info("skipped: no lazy parks without asynchronous "
                    "preemption");
        return;
    }
    tel_pid_t w = 0;
    if (!TT_CHECK_RC(tel_spawn(&w, wl_worker, NULL), 0, "spawn worker"))
        return;
    for (int i = 0; i < WL_HOGS; i++)
        TT_CHECK_RC(tel_spawn(NULL, wl_hog, NULL), 0, "spawn hog");
    (void)tel_yield(); /* the worker waits for its go */
    pthread_t th;
    if (!TT_CHECK(pthread_create(&th, NULL, wl_poker, NULL) == 0,
                  "pthread_create"))
        return;
    if (TT_CHECK_RC(tel_spawn(NULL, wl_waiter, (void *)(uintptr_t)w), 0,
                    "spawn waiter")) {
        tel_msg_t *m = NULL;
        if (TT_CHECK_RC(tel_recv(&m, 20000), 0, "main: tel_recv"))
            tel_msg_free(m);
    }
    pthread_join(th, NULL);
    TT_CHECK_RC(tt_send_tag(w, TAG_DONE), 0, "end the worker");
    atomic_store(&wl.stop, true);
    TT_CHECK(tt_await_count(1, 10000), "hogs did not stop");
    TT_CHECK(atomic_load(&wl.lazy), "the waiter's park was not lazy");
    uint64_t waited = wl.got_at - wl.parked_at;
    cr_log_info("the waiter ran %" PRIu64 " hog loops after the worker "
                "parked (a slice is %u)", waited, WL_SLICE / WL_LOOP_REDS);
    /* A hog's slice may come first (the pick precedes the publication);
     * behind the ring it was all 8. */
    TT_CHECK(waited <= 2 * WL_SLICE / WL_LOOP_REDS,
             "the waiter ran %" PRIu64 " hog loops after the worker parked: "
             "it waited behind the ring (want at most 2 slices, %u)",
             waited, 2 * WL_SLICE / WL_LOOP_REDS);
}

Test(lazy, a_lazy_park_that_a_message_reached_waits_with_the_woken,
     .timeout = 60)
{
    /* The watchdog's bound is 10 s: its signal never publishes the park
     * first (it would send the waiter to the global queue). */
    tel_config_t c = {.schedulers = 1, .reductions = WL_SLICE,
                      .watchdog_us = TEL_MAX_WATCHDOG_US};
    TT_RUN(&c, woken_lazy_main, NULL);
}
