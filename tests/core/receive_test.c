/*
 * tests/core/receive_test.c: where a receive may switch, and where it
 * waits. White-box: the scheduler's slice (s->reds) and switch count, a
 * mailbox's arrival queue.
 *
 * A receive meets the end of its slice, and urgent signals, before it
 * takes a message, never after (core/mailbox.c, receive): a process
 * switched out between taking a message and returning it, then killed
 * (tel_run's teardown, an exit signal), would leave the message where
 * nobody can free it.
 */
#include "common.h"

#include "core/message.h"
#include "core/process.h"
#include "sched/scheduler.h"

static atomic_bool stop;

static void spinner(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        (void)tel_yield();
}

static uint64_t switches(void)
{
    return atomic_load_explicit(&tel__sched_self()->n_switches,
                                memory_order_relaxed);
}

static void no_switch_main(void *arg)
{
    (void)arg;
    TT_CHECK_RC(tel_spawn(NULL, spinner, NULL), 0, "spawn");
    tel_yield(); /* the spinner runs: someone to switch to */
    TT_CHECK_RC(tel_send(tel_self(), 7, NULL, 0), 0, "tel_send");
    /* The slice ends with this receive's charge. */
    tel__sched_self()->reds = 1;
    uint64_t before = switches();
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 0);
    uint64_t after = switches();
    TT_CHECK_RC(rc, 0, "tel_recv");
    TT_CHECK(after == before,
             "tel_recv switched out %llu time(s) with the message taken",
             (unsigned long long)(after - before));
    if (m) {
        TT_CHECK(m->tag == 7, "tag %" PRIu64, m->tag);
        tel_msg_free(m);
    }
    /* The spent slice is met at the next reduction point instead. */
    before = switches();
    TT_CHECK_RC(tel_recv(&m, 0), TEL_ETIMEDOUT, "tel_recv, empty");
    TT_CHECK(switches() > before, "the spent slice was never met");
    atomic_store(&stop, true);
}

Test(receive, takes_a_message_without_switching_at_the_slices_end,
     .timeout = 60)
{
    tel_config_t c = {.schedulers = 1, .flags = TEL_CFG_NO_WATCHDOG};
    TT_RUN(&c, no_switch_main, NULL);
}

/*
 * A receive that finds a sender between its exchange and its link (the
 * message a few instructions away, but that sender interrupted there)
 * spins a little, then yields as a woken task (tel__sched_yield_woken):
 * it waits with the woken tasks, not behind every process in the ring,
 * so it has the message soon after the link. Here main makes the exchange
 * by hand and one of 8 hogs makes the link a few slices later, in its
 * slice: the receiver must take the message soon after that slice, where
 * behind the ring it waited for the hogs queued before it.
 */
#define MP_HOGS 8
#define MP_SLICE 1000u
#define MP_LOOP_REDS 100 /* a hog's loop: one slice is 10 loops */

struct midpush {
    atomic_bool stop;
    atomic_int half; /* the exchange is made, the link not yet */
    atomic_uint_fast64_t loops; /* all hogs' loops */
    struct tel__mpsc_node *_Atomic prev; /* where the link goes */
    struct tel__mpsc_node *node;
    uint64_t half_at, linked_at, got_at;
    tel_pid_t main;
};

static void mp_hog(void *arg)
{
    struct midpush *mp = arg;
    while (!atomic_load_explicit(&mp->stop, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&mp->loops, 1, memory_order_relaxed);
        (void)tel_reduce(MP_LOOP_REDS);
    }
}

/* A hog that makes the link three slices after the exchange, in its own
 * slice, and hogs on. */
static void mp_linker(void *arg)
{
    struct midpush *mp = arg;
    bool linked = false;
    while (!atomic_load_explicit(&mp->stop, memory_order_relaxed)) {
        uint64_t n = atomic_fetch_add_explicit(&mp->loops, 1,
                                               memory_order_relaxed);
        struct tel__mpsc_node *prev = atomic_load(&mp->prev);
        if (!linked && prev &&
            n - mp->half_at >= 3 * MP_SLICE / MP_LOOP_REDS) {
            mp->linked_at = n;
            atomic_store_explicit(&prev->next, mp->node,
                                  memory_order_release);
            linked = true;
        }
        (void)tel_reduce(MP_LOOP_REDS);
    }
}

static void mp_receiver(void *arg)
{
    struct midpush *mp = arg;
    while (!atomic_load(&mp->half))
        (void)tel_yield(); /* runnable, never parked: `in` stays unmarked */
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 10000);
    mp->got_at = atomic_load(&mp->loops);
    if (TT_CHECK_RC(rc, 0, "tel_recv")) {
        TT_CHECK(m->tag == 9, "tag %" PRIu64, m->tag);
        tel_msg_free(m);
    }
    TT_CHECK_RC(tel_send(mp->main, 1, NULL, 0), 0, "tel_send done");
}

static void midpush_main(void *arg)
{
    struct midpush *mp = arg;
    mp->main = tel_self();
    tel_pid_t r = 0;
    if (!TT_CHECK_RC(tel_spawn(&r, mp_receiver, mp), 0, "spawn receiver"))
        return;
    TT_CHECK_RC(tel_spawn(NULL, mp_linker, mp), 0, "spawn linker");
    for (int i = 1; i < MP_HOGS; i++)
        TT_CHECK_RC(tel_spawn(NULL, mp_hog, mp), 0, "spawn hog");
    (void)tel_yield();
    /* The first half of a push (alloc/mpsc.h): the exchange, no link. */
    struct msg *m = tel__msg_new(tel_self(), 9, NULL, 0);
    if (!TT_CHECK(m != NULL, "tel__msg_new"))
        return;
    struct sched *s = tel__sched_self();
    struct proc *p = tel__proc_get(s, r);
    if (!TT_CHECK(p != NULL, "the receiver is gone")) {
        tel__msg_free(m);
        return;
    }
    atomic_store_explicit(&m->node.next, NULL, memory_order_relaxed);
    struct tel__mpsc_node *prev = atomic_exchange_explicit(
        &p->mbox.in.in, &m->node, memory_order_seq_cst);
    bool was_empty = prev == &p->mbox.in.stub;
    tel__proc_put(s, p);
    mp->node = &m->node;
    mp->half_at = atomic_load(&mp->loops);
    atomic_store(&mp->prev, prev);
    atomic_store(&mp->half, 1);
    tel_msg_t *done = NULL;
    if (TT_CHECK_RC(tel_recv(&done, 10000), 0, "tel_recv done"))
        tel_msg_free(done);
    atomic_store(&mp->stop, true);
    TT_CHECK(tt_await_count(1, 10000), "hogs did not stop");
    TT_CHECK(was_empty, "the receiver's queue was not empty before");
    uint64_t waited = mp->got_at - mp->linked_at;
    cr_log_info("the receiver took the message %" PRIu64 " hog loops after "
                "the link (a slice is %u)", waited,
                MP_SLICE / MP_LOOP_REDS);
    /* The rest of the linker's slice, and a slice of slack; behind the
     * ring it was 7 hogs' slices (70 loops) and the linker's rest. */
    TT_CHECK(waited <= 2 * MP_SLICE / MP_LOOP_REDS,
             "the receiver took the message %" PRIu64 " hog loops after the "
             "link: it waited behind the ring (want at most 2 slices, %u)",
             waited, 2 * MP_SLICE / MP_LOOP_REDS);
}

Test(receive, a_receive_that_meets_a_push_halfway_waits_with_the_woken,
     .timeout = 60)
{
    static struct midpush mp;
    tel_config_t c = {.schedulers = 1,
                      .reductions = MP_SLICE,
                      .flags = TEL_CFG_NO_WATCHDOG};
    TT_RUN(&c, midpush_main, &mp);
}
