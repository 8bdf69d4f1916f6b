/*
 * tests/core/receive_test.c: where a receive may switch. White-box: the
 * scheduler's slice (s->reds) and switch count.
 *
 * A receive meets the end of its slice, and urgent signals, before it
 * takes a message, never after (core/mailbox.c, receive): a process
 * switched out between taking a message and returning it, then killed
 * (tel_run's teardown, an exit signal), would leave the message where
 * nobody can free it.
 */
#include "common.h"

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
