/*
 * tests/core/drainer_test.c: a process draining a backlog gets the CPU.
 * Once it received TEL__SCHED_DRAIN_MIN messages in one turn its mailbox
 * is flagged "behind", and a process that sends to it ends its slice at
 * that send; the flag drops when the mailbox is found empty. White-box:
 * reads the flag through the running process's block (core/process.h).
 */
#include "common.h"

#include "core/process.h"
#include "sched/scheduler.h"

enum { TAG_NUM = 1, TAG_DONE };
enum { BACKLOG = 100 };

struct drain {
    tel_pid_t main;
    atomic_int other_ran;  /* set by a process queued behind the drainer */
    int behind_before;     /* the flag after 63 receives */
    int behind_at_min;     /* ... after 64 */
    int other_ran_before_send; /* whether `other` ran before the self-send */
    int other_ran_after_send;  /* ... and after it */
    int behind_after_empty;    /* after a receive found the mailbox empty */
    int got;
};

static uint32_t own_behind(void)
{
    struct proc *p = tel__proc_current(tel__sched_self());
    return atomic_load_explicit(&p->mbox.behind, memory_order_relaxed);
}

static void other_fn(void *arg)
{
    struct drain *d = arg;
    atomic_store(&d->other_ran, 1);
}

static void drainer(void *arg)
{
    struct drain *d = arg;
    for (int i = 0; i < BACKLOG; i++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 10000), 0, "tel_recv"))
            return;
        d->got++;
        tel_msg_free(m);
        if (i == (int)TEL__SCHED_DRAIN_MIN - 2)
            d->behind_before = (int)own_behind();
        if (i == (int)TEL__SCHED_DRAIN_MIN - 1) {
            d->behind_at_min = (int)own_behind();
            /* A process queued here (runs next, after us), then a send to
             * a flagged mailbox (our own): the send ends our slice, so
             * `other` runs before the send returns. */
            tel_pid_t o;
            if (!TT_CHECK_RC(tel_spawn(&o, other_fn, d), 0, "tel_spawn"))
                return;
            d->other_ran_before_send = atomic_load(&d->other_ran);
            TT_CHECK_RC(tel_send(tel_self(), TAG_NUM, NULL, 0), 0,
                        "tel_send to self");
            d->other_ran_after_send = atomic_load(&d->other_ran);
            tel_msg_t *one = NULL; /* the next of the backlog: 101 in all */
            if (TT_CHECK_RC(tel_recv(&one, 10000), 0, "tel_recv one"))
                tel_msg_free(one);
        }
    }
    /* All 101 taken (the loop's last receive took our own message). */
    tel_msg_t *m = NULL;
    TT_CHECK_RC(tel_recv(&m, 1), TEL_ETIMEDOUT, "tel_recv on empty");
    d->behind_after_empty = (int)own_behind();
    tt_send_tag(d->main, TAG_DONE);
}

static void drain_main(void *arg)
{
    struct drain *d = arg;
    d->main = tel_self();
    tel_pid_t r;
    if (!TT_CHECK_RC(tel_spawn(&r, drainer, d), 0, "tel_spawn drainer"))
        return;
    /* The whole backlog is queued before the drainer first runs (one
     * scheduler: it runs when we block). */
    for (int i = 0; i < BACKLOG; i++)
        TT_CHECK_RC(tel_send(r, TAG_NUM, NULL, 0), 0, "tel_send");
    tel_msg_t *m = NULL;
    TT_CHECK_RC(tel_recv(&m, 20000), 0, "tel_recv done");
    tel_msg_free(m);
}

Test(drainer, a_drainer_is_flagged_its_senders_yield_and_the_flag_drops,
     .timeout = 60)
{
    struct drain d = {0};
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, drain_main, &d);
    cr_assert_eq(d.got, BACKLOG);
    cr_assert_eq(d.behind_before, 0, "flagged before 64 receives");
    cr_assert_eq(d.behind_at_min, 1, "not flagged after 64 receives");
    cr_assert_eq(d.other_ran_before_send, 0);
    cr_assert_eq(d.other_ran_after_send, 1,
                 "a send to a flagged mailbox did not end the slice");
    cr_assert_eq(d.behind_after_empty, 0, "flag kept on an empty mailbox");
}
