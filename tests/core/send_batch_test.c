/*
 * tests/core/send_batch_test.c: batched sends (core/mailbox.c, "Batched
 * sends"). A process that keeps sending to a receiver with unread messages
 * holds its next messages and pushes them as one chain. What must hold:
 * the receiver never waits on held messages (it nudges the sender's
 * scheduler when it parks, polls or hibernates; a sender stuck in a system
 * call has them pushed when the watchdog sheds its work); order per sender
 * is kept, also against the signals and the exit that follow a burst; held
 * messages to a receiver that died are freed; a process's sends to itself
 * are never held.
 *
 * White-box: a sender reads its scheduler's batch (sched/scheduler.h) to
 * check that the case under test was reached (a burst really was held),
 * so a test cannot pass by never batching.
 */
#include "common.h"

#include "core/message.h"
#include "sched/preempt.h"
#include "sched/scheduler.h"

#define BURST 10u   /* a burst: the first 3 go in, the last 7 are held */
#define HELD (BURST - 3u)

enum { TAG_NUM = 1, TAG_DONE = 2 };

static unsigned my_index(void)
{
    return tel__sched_self()->index;
}

/* The running process's held messages (its scheduler's open batch). */
static uint32_t held_now(void)
{
    struct sched *s = tel__sched_self();
    return s->ob_on ? atomic_load(&s->ob_n) : 0;
}

static void spin_until(atomic_int *flag, int64_t timeout_ms)
{
    int64_t end = tt_now_ms() + timeout_ms;
    while (!atomic_load(flag) && tt_now_ms() < end)
        ; /* no Telar call: nothing switches us but a signal */
}

/* ------------------------------------------------------------------------ */
/* Two roles on two schedulers                                               */
/* ------------------------------------------------------------------------ */

/*
 * A receiver role on scheduler 0 and a sender role on scheduler 1: spawned
 * spreaders yield until idle schedulers have stolen them apart; the first
 * one seen on scheduler i takes role i. The receiver busy-waits for the
 * sender's burst, so it is running (and behind) while the burst is sent.
 */
struct pair {
    atomic_int claimed[2];
    atomic_int stop;
    atomic_int burst_sent; /* the sender sent its burst */
    atomic_int got_all;    /* the receiver took all of it */
    atomic_int held;       /* messages the sender held after the burst */
    atomic_int pipe_fd[2];
    tel_pid_t main;
    _Atomic tel_pid_t recv_pid;
    void (*role[2])(struct pair *);
    atomic_int variant;
    atomic_int rounds; /* bursts the receiver took (twice_*) */
    bool needs_signal; /* only the preemption signal can end the test */
    atomic_int skipped;
};

static void spreader(void *arg)
{
    struct pair *pr = arg;
    int64_t end = tt_now_ms() + 10000;
    while (!atomic_load(&pr->stop) && tt_now_ms() < end) {
        unsigned i = my_index();
        int no = 0;
        if (i < 2 && atomic_compare_exchange_strong(&pr->claimed[i], &no, 1)) {
            if (i == 0)
                atomic_store(&pr->recv_pid, tel_self());
            if (atomic_load(&pr->claimed[0]) && atomic_load(&pr->claimed[1]))
                atomic_store(&pr->stop, 1);
            pr->role[i](pr);
            return;
        }
        (void)tel_yield();
    }
}

static void pair_main(void *arg)
{
    struct pair *pr = arg;
    pr->main = tel_self();
    if (pr->needs_signal && !tel__preempt_active()) {
        atomic_store(&pr->skipped, 1); /* ThreadSanitizer builds */
        return;
    }
    /* Without the signal (ThreadSanitizer builds) no sends are held,
     * except in the tests of what does not need it. */
    tel__sched_batching_force(true);
    for (int i = 0; i < 6; i++) {
        tel_pid_t p;
        if (!TT_CHECK_RC(tel_spawn(&p, spreader, pr), 0, "tel_spawn"))
            return;
    }
    tel_msg_t *m = NULL;
    if (TT_CHECK_RC(tel_recv(&m, 30000), 0, "tel_recv done"))
        tel_msg_free(m);
}

/* The sender's burst to the receiver; records what it then held. */
static tel_pid_t await_receiver(struct pair *pr)
{
    bool ok;
    TT_AWAIT(ok, atomic_load(&pr->recv_pid) != 0, 5000);
    TT_CHECK(ok, "no receiver role was taken");
    return atomic_load(&pr->recv_pid);
}

static void send_burst_of(struct pair *pr, uint64_t n)
{
    tel_pid_t r = await_receiver(pr);
    for (uint64_t i = 0; i < n; i++)
        if (!TT_CHECK_RC(tt_send_u64(r, TAG_NUM, i), 0, "burst"))
            break;
    atomic_store(&pr->held, (int)held_now());
    atomic_store(&pr->burst_sent, 1);
}

static void send_burst(struct pair *pr)
{
    send_burst_of(pr, BURST);
}

/* The receiver takes the burst in order (timeout each). */
static bool take_burst(struct pair *pr, int64_t timeout_ms)
{
    for (uint64_t i = 0; i < BURST; i++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, timeout_ms), 0, "tel_recv burst"))
            return false;
        bool ok = TT_CHECK(m->tag == TAG_NUM && tt_msg_u64(m) == i,
                           "burst message %" PRIu64 ": tag %" PRIu64, i,
                           m->tag);
        tel_msg_free(m);
        if (!ok)
            return false;
    }
    atomic_store(&pr->got_all, 1);
    return true;
}

static void run_pair(struct pair *pr, uint32_t flags, uint32_t watchdog_us)
{
    tel_config_t cfg = {.schedulers = 2, .flags = flags,
                        .watchdog_us = watchdog_us};
    TT_RUN(&cfg, pair_main, pr);
    if (atomic_load(&pr->skipped)) {
        cr_log_info("skipped: no asynchronous preemption in this build");
        return;
    }
    cr_assert(atomic_load(&pr->claimed[0]) && atomic_load(&pr->claimed[1]),
              "no processes reached both schedulers");
    /* The first message sees the receiver's queue empty, the second
     * makes it a candidate, the third opens the batch: 7 held (8 when a
     * link request was queued before the burst). */
    int held = atomic_load(&pr->held);
    cr_assert(held >= (int)HELD && held <= (int)BURST - 2,
              "the sender held %d messages after its burst, want %u to %u "
              "(the case under test was not reached)", held, HELD,
              BURST - 2);
    cr_assert(atomic_load(&pr->got_all), "the receiver missed the burst");
}

/* ------------------------------------------------------------------------ */
/* The receiver never waits on held messages                                 */
/* ------------------------------------------------------------------------ */

/* Receiver: busy until the burst is sent, then a blocking receive each. */
static void nudge_receiver(struct pair *pr)
{
    spin_until(&pr->burst_sent, 5000);
    (void)take_burst(pr, 5000);
}

/* Receiver: polls (timeout 0) without ever waiting. */
static void poll_receiver(struct pair *pr)
{
    spin_until(&pr->burst_sent, 5000);
    int64_t end = tt_now_ms() + 5000;
    for (uint64_t i = 0; i < BURST && tt_now_ms() < end;) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 0);
        if (rc == TEL_ETIMEDOUT)
            continue; /* no yield: the sender's scheduler must come */
        if (!TT_CHECK_RC(rc, 0, "tel_recv poll"))
            return;
        bool ok = TT_CHECK(tt_msg_u64(m) == i, "poll: message out of order");
        tel_msg_free(m);
        if (!ok)
            return;
        i++;
        if (i == BURST)
            atomic_store(&pr->got_all, 1);
    }
}

/* Receiver: takes what came, then hibernates; woken, takes the rest. */
static void hib_rest(void *arg)
{
    struct pair *pr = arg;
    for (uint64_t i = 3; i < BURST; i++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 5000), 0, "tel_recv after hibernate"))
            return;
        bool ok = TT_CHECK(tt_msg_u64(m) == i, "hibernate: out of order");
        tel_msg_free(m);
        if (!ok)
            return;
    }
    atomic_store(&pr->got_all, 1);
}

static void hib_receiver(struct pair *pr)
{
    spin_until(&pr->burst_sent, 5000);
    for (uint64_t i = 0; i < 3; i++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 5000), 0, "tel_recv before hibernate"))
            return;
        tel_msg_free(m);
    }
    (void)tel_hibernate(hib_rest, pr);
}

/* Sender: the burst, then a busy wait (no Telar call) for the receiver to
 * have it all: only the receiver's nudge can make the sender push. */
static void spinning_sender(struct pair *pr)
{
    send_burst(pr);
    spin_until(&pr->got_all, 3000);
    TT_CHECK(atomic_load(&pr->got_all),
             "the receiver did not get the held messages while the sender "
             "computed");
    tt_send_tag(pr->main, TAG_DONE);
}

/* Two bursts, each held, each fetched by a nudge: a nudge closes the
 * batch, so the second burst opens a new one that tells the receiver. */
static void twice_receiver(struct pair *pr)
{
    spin_until(&pr->burst_sent, 5000);
    if (!take_burst(pr, 5000))
        return;
    atomic_store(&pr->burst_sent, 0);
    atomic_fetch_add(&pr->rounds, 1); /* the second round may start */
    spin_until(&pr->burst_sent, 5000);
    if (take_burst(pr, 5000))
        atomic_fetch_add(&pr->rounds, 1);
}

static void twice_sender(struct pair *pr)
{
    for (int k = 1; k <= 2; k++) {
        send_burst(pr);
        int64_t end = tt_now_ms() + 3000;
        while (atomic_load(&pr->rounds) < k && tt_now_ms() < end)
            ; /* no Telar call */
        if (!TT_CHECK(atomic_load(&pr->rounds) >= k,
                      "burst %d not fetched while the sender computed", k))
            break;
    }
    tt_send_tag(pr->main, TAG_DONE);
}

Test(send_batch, a_receiver_that_catches_up_twice_gets_both_held_bursts,
     .timeout = 60)
{
    struct pair pr = {.role = {twice_receiver, twice_sender},
                      .needs_signal = true};
    run_pair(&pr, 0, TEL_MAX_WATCHDOG_US);
}

/* The watchdog's bound is 10 s: only the nudge can interrupt the sender. */
Test(send_batch, a_parked_receiver_gets_what_a_computing_sender_holds,
     .timeout = 60)
{
    struct pair pr = {.role = {nudge_receiver, spinning_sender},
                      .needs_signal = true};
    run_pair(&pr, 0, TEL_MAX_WATCHDOG_US);
}

Test(send_batch, a_polling_receiver_gets_what_a_computing_sender_holds,
     .timeout = 60)
{
    struct pair pr = {.role = {poll_receiver, spinning_sender},
                      .needs_signal = true};
    run_pair(&pr, 0, TEL_MAX_WATCHDOG_US);
}

/*
 * Prefetch hints (core/mailbox.c, send_ob): each held message but the
 * batch's last TEL_OB_HINT_DIST (16) carries, in its ref, the address of
 * the message 16 behind it in the batch, so the receiver can fetch ahead in a chain another CPU
 * wrote. Plain messages keep kind PLAIN; the others carry no hint.
 */
#define LONG_BURST 40u

static void long_sender(struct pair *pr)
{
    send_burst_of(pr, LONG_BURST);
    spin_until(&pr->got_all, 3000);
    TT_CHECK(atomic_load(&pr->got_all), "the receiver missed the burst");
    tt_send_tag(pr->main, TAG_DONE);
}

static void hint_receiver(struct pair *pr)
{
    spin_until(&pr->burst_sent, 5000);
    struct msg *got[LONG_BURST];
    for (uint64_t i = 0; i < LONG_BURST; i++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 5000), 0, "tel_recv burst")) {
            while (i--)
                tel_msg_free(&got[i]->pub);
            return;
        }
        TT_CHECK(tt_msg_u64(m) == i, "message %" PRIu64 " out of order", i);
        got[i] = tel__msg_of(m);
    }
    /* The held ones are the last `held`, in one batch. */
    uint32_t held = (uint32_t)atomic_load(&pr->held);
    uint32_t first = LONG_BURST - held;
    for (uint32_t j = 0; j < LONG_BURST; j++) {
        uint64_t want = j >= first && j + TEL_OB_HINT_DIST < LONG_BURST
                            ? (uint64_t)(uintptr_t)got[j + TEL_OB_HINT_DIST]
                            : 0;
        TT_CHECK(tel__msg_kind(got[j]) == MSGK_PLAIN,
                 "message %u is of kind %u", j, tel__msg_kind(got[j]));
        TT_CHECK(got[j]->ref == want,
                 "message %u (held from %u of %u) hints %#" PRIx64
                 ", want %#" PRIx64, j, first, LONG_BURST, got[j]->ref, want);
    }
    for (uint32_t j = 0; j < LONG_BURST; j++)
        tel_msg_free(&got[j]->pub);
    atomic_store(&pr->got_all, 1);
}

Test(send_batch, held_messages_hint_the_message_16_behind_them,
     .timeout = 60)
{
    struct pair pr = {.role = {hint_receiver, long_sender},
                      .needs_signal = true};
    tel_config_t cfg = {.schedulers = 2,
                        .watchdog_us = TEL_MAX_WATCHDOG_US};
    TT_RUN(&cfg, pair_main, &pr);
    if (atomic_load(&pr.skipped)) {
        cr_log_info("skipped: no asynchronous preemption in this build");
        return;
    }
    cr_assert(atomic_load(&pr.claimed[0]) && atomic_load(&pr.claimed[1]),
              "no processes reached both schedulers");
    int held = atomic_load(&pr.held);
    cr_assert(held >= (int)LONG_BURST - 4 && held <= (int)LONG_BURST - 2,
              "the sender held %d of %u (the case under test was not "
              "reached)", held, LONG_BURST);
    cr_assert(atomic_load(&pr.got_all), "the receiver missed the burst");
}

Test(send_batch, a_hibernating_receiver_gets_what_a_computing_sender_holds,
     .timeout = 60)
{
    struct pair pr = {.role = {hib_receiver, spinning_sender},
                      .needs_signal = true};
    run_pair(&pr, 0, TEL_MAX_WATCHDOG_US);
}

/* Sender: the burst, then a blocking read() of its own on a pipe the
 * receiver writes once it has the burst (or gave up on it). */
static void blocked_receiver(struct pair *pr)
{
    spin_until(&pr->burst_sent, 5000);
    (void)take_burst(pr, 5000);
    char c = 1;
    TT_CHECK(write(atomic_load(&pr->pipe_fd[1]), &c, 1) == 1, "write");
}

static void blocked_sender(struct pair *pr)
{
    send_burst(pr);
    char c;
    ssize_t n;
    do
        n = read(atomic_load(&pr->pipe_fd[0]), &c, 1);
    while (n < 0 && errno == EINTR);
    TT_CHECK(n == 1, "read");
    tt_send_tag(pr->main, TAG_DONE);
}

/* Default watchdog: the blocked sender's scheduler is found stuck and its
 * work shed, held messages included. */
Test(send_batch, a_sender_blocked_in_a_system_call_has_its_burst_pushed,
     .timeout = 60)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct pair pr = {.role = {blocked_receiver, blocked_sender},
                      .needs_signal = true};
    atomic_store(&pr.pipe_fd[0], fds[0]);
    atomic_store(&pr.pipe_fd[1], fds[1]);
    run_pair(&pr, 0, 0);
    close(fds[0]);
    close(fds[1]);
}

/* ------------------------------------------------------------------------ */
/* Order against what follows a burst                                        */
/* ------------------------------------------------------------------------ */

/* Receiver (trapping exits): the burst, then the EXIT the sender's end or
 * kill sent after it. */
static void exit_receiver(struct pair *pr)
{
    (void)tel_trap_exit(true);
    spin_until(&pr->burst_sent, 5000);
    if (!take_burst(pr, 5000))
        return;
    tel_msg_t *m = NULL;
    if (TT_CHECK_RC(tel_recv(&m, 5000), 0, "tel_recv EXIT")) {
        TT_CHECK(m->tag == TEL_TAG_EXIT, "after the burst: tag %" PRIu64
                 ", want TEL_TAG_EXIT", m->tag);
        tel_msg_free(m);
    }
    tt_send_tag(pr->main, TAG_DONE);
}

/* Sender: linked, the burst, then it ends (variant 0) or kills the
 * receiver with a reason it traps (variant 1), before any switch; or,
 * with no link, it just returns (variant 2). */
static void exit_sender(struct pair *pr)
{
    tel_pid_t r = await_receiver(pr);
    int variant = atomic_load(&pr->variant);
    if (variant == 0 && !TT_CHECK_RC(tel_link(r), 0, "tel_link"))
        return;
    send_burst(pr);
    if (variant == 0)
        tel_exit(77);
    if (variant == 1)
        TT_CHECK_RC(tel_kill(r, 77), 0, "tel_kill");
}

static void end_receiver(struct pair *pr)
{
    spin_until(&pr->burst_sent, 5000);
    (void)take_burst(pr, 5000);
    tt_send_tag(pr->main, TAG_DONE);
}

Test(send_batch, a_sender_that_ends_holding_a_burst_delivers_it,
     .timeout = 60)
{
    struct pair pr = {.role = {end_receiver, exit_sender}, .variant = 2};
    run_pair(&pr, 0, TEL_MAX_WATCHDOG_US);
}

Test(send_batch, a_senders_exit_signal_comes_after_its_held_burst,
     .timeout = 60)
{
    struct pair pr = {.role = {exit_receiver, exit_sender}, .variant = 0};
    run_pair(&pr, 0, TEL_MAX_WATCHDOG_US);
}

Test(send_batch, a_kill_sent_after_a_held_burst_comes_after_it,
     .timeout = 60)
{
    struct pair pr = {.role = {exit_receiver, exit_sender}, .variant = 1};
    run_pair(&pr, 0, TEL_MAX_WATCHDOG_US);
}

/* ------------------------------------------------------------------------ */
/* A receiver that dies while messages to it are held                        */
/* ------------------------------------------------------------------------ */

static void dying_receiver(struct pair *pr)
{
    spin_until(&pr->burst_sent, 5000);
    /* Ends with the first 3 unread and the rest held elsewhere. */
}

static void orphan_sender(struct pair *pr)
{
    tel_pid_t r = await_receiver(pr);
    send_burst(pr);
    bool ok;
    TT_AWAIT(ok, !tel_is_alive(r), 5000);
    TT_CHECK(ok, "the receiver did not end");
    /* Appended to the batch for the dead receiver, then dropped with it
     * at the next switch (the run's leak check sees them freed). */
    for (uint64_t i = 0; i < 5; i++)
        TT_CHECK_RC(tt_send_u64(r, TAG_NUM, i), 0, "send to the dead");
    atomic_store(&pr->got_all, 1);
    tt_send_tag(pr->main, TAG_DONE);
}

Test(send_batch, held_messages_to_a_receiver_that_died_are_freed,
     .timeout = 60)
{
    struct pair pr = {.role = {dying_receiver, orphan_sender}};
    run_pair(&pr, 0, TEL_MAX_WATCHDOG_US);
}

/* ------------------------------------------------------------------------ */
/* Sends to oneself                                                          */
/* ------------------------------------------------------------------------ */

static void self_main(void *arg)
{
    (void)arg;
    tel__sched_batching_force(true);
    tel_pid_t me = tel_self();
    for (uint64_t i = 0; i < 100; i++)
        if (!TT_CHECK_RC(tt_send_u64(me, TAG_NUM, i), 0, "send to self"))
            return;
    TT_CHECK(held_now() == 0, "%u sends to itself held", held_now());
    for (uint64_t i = 0; i < 100; i++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 0), 0, "poll own message"))
            return;
        TT_CHECK(tt_msg_u64(m) == i, "own message out of order");
        tel_msg_free(m);
    }
}

Test(send_batch, sends_to_oneself_are_never_held, .timeout = 30)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, self_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Many senders, one slow receiver                                           */
/* ------------------------------------------------------------------------ */

#define FAN_SENDERS 8u

struct fan {
    uint64_t msgs;
    size_t size;    /* payload bytes: the first 8 are the sequence word */
    unsigned work;  /* the receiver's work per message */
    unsigned burst; /* senders: this many sends, then a pause (0: none) */
    tel_pid_t receiver, main;
    uint64_t batches, nudges;
};

static void fan_receiver(void *arg)
{
    struct fan *f = arg;
    uint64_t next[FAN_SENDERS] = {0};
    uint64_t total = FAN_SENDERS * f->msgs, sink = 0;
    for (uint64_t n = 0; n < total; n++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 10000), 0, "fan: tel_recv"))
            return;
        uint64_t v = 0;
        if (TT_CHECK(m->size == f->size, "fan: size %zu", m->size))
            memcpy(&v, m->data, sizeof v);
        uint64_t who = v >> 32, seq = v & 0xffffffffu;
        tel_msg_free(m);
        if (!TT_CHECK(who < FAN_SENDERS && seq == next[who],
                      "sender %" PRIu64 ": got %" PRIu64 ", want %" PRIu64,
                      who, seq, who < FAN_SENDERS ? next[who] : 0))
            return;
        next[who]++;
        for (unsigned k = 0; k < f->work; k++)
            sink += (uint64_t)k * v;
    }
    TT_CHECK(sink != 1, "sink"); /* keeps the loop */
    tt_send_tag(f->main, TAG_DONE);
}

struct fan_sender {
    struct fan *f;
    uint64_t who;
};

static struct fan_sender fan_senders[FAN_SENDERS];

static void fan_sender_fn(void *arg)
{
    struct fan_sender *fs = arg;
    unsigned char buf[256] = {0};
    for (uint64_t i = 0; i < fs->f->msgs; i++) {
        uint64_t v = fs->who << 32 | i;
        memcpy(buf, &v, sizeof v);
        if (!TT_CHECK_RC(tel_send(fs->f->receiver, TAG_NUM, buf,
                                  fs->f->size),
                         0, "fan: tel_send"))
            return;
        if (fs->f->burst && i % fs->f->burst == fs->f->burst - 1) {
            /* A pause in C: what this sender holds waits for a nudge. */
            volatile unsigned x = 0;
            for (unsigned k = 0; k < 20000; k++)
                x += k;
        }
    }
}

static void fan_main(void *arg)
{
    struct fan *f = arg;
    f->main = tel_self();
    tel__sched_batching_force(true);
    if (!TT_CHECK_RC(tel_spawn(&f->receiver, fan_receiver, f), 0, "spawn"))
        return;
    for (uint64_t i = 0; i < FAN_SENDERS; i++) {
        fan_senders[i] = (struct fan_sender){f, i};
        tel_pid_t p;
        if (!TT_CHECK_RC(tel_spawn(&p, fan_sender_fn, &fan_senders[i]), 0,
                         "spawn"))
            return;
    }
    tel_msg_t *m = NULL;
    if (!TT_CHECK_RC(tel_recv(&m, 60000), 0, "fan: done"))
        return;
    tel_msg_free(m);
    for (unsigned i = 0; i < tel_scheduler_count(); i++) {
        tel_sched_stats_t st;
        if (TT_CHECK_RC(tel_sched_stats(i, &st), 0, "tel_sched_stats")) {
            f->batches += st.send_batches;
            f->nudges += st.send_nudges;
        }
    }
}

Test(send_batch, many_senders_to_a_slow_receiver_keep_order_per_sender,
     .timeout = 120)
{
    struct fan f = {.msgs = tel_test_scaled(50000, 2000), .size = 8,
                    .work = 50};
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, fan_main, &f);
    cr_assert(f.batches > 0, "no sender ever held a burst (%" PRIu64 ")",
              f.batches);
}

/* A receiver that keeps up, so it often finds its mailbox empty and nudges
 * senders that are in the middle of a send; messages big enough that the
 * copy calls memcpy, where the nudge's handler may push the batch. */
Test(send_batch, nudges_in_the_middle_of_sends_keep_order_per_sender,
     .timeout = 120)
{
    struct fan f = {.msgs = tel_test_scaled(50000, 2000), .size = 200,
                    .work = 0, .burst = 20};
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, fan_main, &f);
    cr_log_info("batches %" PRIu64 ", nudges %" PRIu64, f.batches,
                f.nudges);
}

/* ------------------------------------------------------------------------ */
/* Floods                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A receiver that has received four slices' worth of messages in one run
 * without its mailbox running dry is flooded (core/mailbox.c, "Floods"):
 * a sender's batch push to it ends the sender's slice, so the receiver
 * gets the CPU back after about one batch instead of a whole slice of
 * sends. One scheduler, so runs alternate exactly: the receiver counts its
 * receives, and the sender knows it was switched out when that count moved
 * between two of its sends. The receiver sleeps while the sender builds a
 * backlog, then drains it; the sender records each of its runs, its length
 * in sends and whether its scheduler had the receiver flooded when the run
 * began. It stops once a flooded run was followed by a long one (the flood
 * over: the receiver ran dry).
 */
#define FLOOD_BACKLOG 60000u /* more than the receiver's first run takes */
#define FLOOD_MAX_SENDS 2000000u
#define FLOOD_RUNS 4096

struct flood {
    _Atomic tel_pid_t receiver;
    atomic_uint_fast64_t received;
    atomic_int backlog_ready;
    tel_pid_t main;
    uint32_t run_len[FLOOD_RUNS];
    bool run_flooded[FLOOD_RUNS];
    unsigned n_runs;
};

static struct flood fl;

static void flood_receiver(void *arg)
{
    (void)arg;
    atomic_store(&fl.receiver, tel_self());
    while (!atomic_load(&fl.backlog_ready))
        (void)tel_sleep(1);
    for (;;) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 30000), 0, "receiver: tel_recv"))
            return;
        atomic_fetch_add(&fl.received, 1);
        uint64_t tag = m->tag;
        tel_msg_free(m);
        if (tag == TAG_DONE)
            break;
    }
    tt_send_tag(fl.main, TAG_DONE);
}

static void flood_sender(void *arg)
{
    (void)arg;
    bool ok;
    TT_AWAIT(ok, atomic_load(&fl.receiver) != 0, 5000);
    if (!TT_CHECK(ok, "no receiver"))
        return;
    tel_pid_t r = atomic_load(&fl.receiver);
    uint64_t seen = atomic_load(&fl.received);
    uint32_t len = 0;
    bool flooded = false, was_flooded = false, done = false;
    for (uint32_t i = 0; i < FLOOD_MAX_SENDS && !done; i++) {
        uint64_t now = atomic_load(&fl.received);
        if (now != seen) { /* the receiver ran: a run of ours ended */
            if (fl.n_runs < FLOOD_RUNS) {
                fl.run_len[fl.n_runs] = len;
                fl.run_flooded[fl.n_runs] = flooded;
                fl.n_runs++;
            }
            done = was_flooded && !flooded && len >= 1000;
            was_flooded |= flooded;
            seen = now;
            len = 0;
            flooded = atomic_load(&tel__sched_self()->ob_flood) == r;
        }
        if (!TT_CHECK_RC(tel_send(r, TAG_NUM, NULL, 0), 0, "tel_send"))
            return;
        len++;
        if (i + 1 == FLOOD_BACKLOG)
            atomic_store(&fl.backlog_ready, 1);
    }
    tt_send_tag(r, TAG_DONE);
}

static void flood_main(void *arg)
{
    (void)arg;
    fl.main = tel_self();
    tel__sched_batching_force(true);
    tel_pid_t p;
    if (!TT_CHECK_RC(tel_spawn(&p, flood_receiver, NULL), 0, "spawn") ||
        !TT_CHECK_RC(tel_spawn(&p, flood_sender, NULL), 0, "spawn"))
        return;
    tel_msg_t *m = NULL;
    if (TT_CHECK_RC(tel_recv(&m, 60000), 0, "flood: done"))
        tel_msg_free(m);
}

Test(send_batch, a_flooded_receiver_gets_the_cpu_back_after_a_batch,
     .timeout = 120)
{
    memset(&fl, 0, sizeof(fl));
    tel_config_t cfg = {.schedulers = 1, .flags = TEL_CFG_NO_WATCHDOG};
    TT_RUN(&cfg, flood_main, NULL);
    unsigned n_flooded = 0, first_flooded = fl.n_runs;
    uint32_t worst = 0, longest_after = 0;
    for (unsigned i = 0; i < fl.n_runs; i++) {
        if (fl.run_flooded[i]) {
            n_flooded++;
            if (first_flooded == fl.n_runs)
                first_flooded = i;
            worst = fl.run_len[i] > worst ? fl.run_len[i] : worst;
        } else if (first_flooded < i && fl.run_len[i] > longest_after) {
            longest_after = fl.run_len[i];
        }
    }
    cr_log_info("%u runs, %u began flooded (longest %u sends); longest "
                "after the flood: %u sends", fl.n_runs, n_flooded, worst,
                longest_after);
    cr_assert(n_flooded > 0, "the receiver was never flooded (%u runs)",
              fl.n_runs);
    /* Two sends before the batch opens, then one batch. */
    cr_assert(worst <= 2 * 64, "a run that began with the receiver flooded "
              "went on for %u sends, want one batch (64) and a few", worst);
    cr_assert(longest_after >= 1000, "the sender's runs stayed short once "
              "the flood was over (longest %u sends)", longest_after);
}
