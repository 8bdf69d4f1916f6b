/*
 * tests/sib_ring.h: siblings for the fault tests: TT_SIB_N processes pass
 * a token round a ring while the test makes other processes fail, and
 * check that the ring keeps moving and ends normally. Include after
 * common.h and exit_log.h; define TT_SIB_N (ring size) and TT_SIB_ROUNDS
 * (how many rounds check_ring_moves waits for) first.
 */
#ifndef TEL_TESTS_SIB_RING_H
#define TEL_TESTS_SIB_RING_H

enum { TAG_TOKEN = 1, TAG_STOP = 2 };

static _Atomic tel_pid_t ring[TT_SIB_N];
static atomic_uint_fast64_t hops;

static void ring_member(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    for (;;) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 20000);
        if (!TT_CHECK_RC(rc, 0, "tel_recv in a ring member"))
            return;
        uint64_t tag = m->tag;
        tel_msg_free(m);
        tel_pid_t next = atomic_load(&ring[(i + 1) % TT_SIB_N]);
        if (tag == TAG_STOP) {
            if (i + 1 < TT_SIB_N)
                tt_send_tag(next, TAG_STOP);
            return;
        }
        atomic_fetch_add(&hops, 1);
        tt_send_tag(next, TAG_TOKEN);
    }
}

/* Inside a process: spawn the ring and start the token. */
static bool ring_start(void)
{
    for (uintptr_t i = 0; i < TT_SIB_N; i++) {
        tel_pid_t p;
        int rc = tel_spawn(&p, ring_member, (void *)i);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn ring member"))
            return false;
        atomic_store(&ring[i], p);
    }
    return tt_send_tag(atomic_load(&ring[0]), TAG_TOKEN) == 0;
}

/* Inside a process: the token still goes round (hops keep growing). */
static void check_ring_moves(const char *when)
{
    uint64_t h0 = atomic_load(&hops);
    bool ok;
    TT_AWAIT(ok, atomic_load(&hops) >= h0 + TT_SIB_ROUNDS * TT_SIB_N, 10000);
    TT_CHECK(ok, "%s: the siblings stopped (hops %" PRIu64 " -> %" PRIu64 ")",
             when, h0, (uint64_t)atomic_load(&hops));
}

/* Inside a process: stop the ring; every member ended normally. */
static void ring_stop(void)
{
    tt_send_tag(atomic_load(&ring[0]), TAG_STOP);
    for (int i = 0; i < TT_SIB_N; i++)
        TT_CHECK(tt_await_dead(atomic_load(&ring[i]), 20000),
                 "ring member %d did not stop", i);
    for (int i = 0; i < TT_SIB_N; i++) {
        tel_reason_t r = tt_reason_of(atomic_load(&ring[i]));
        TT_CHECK(r == TEL_NORMAL, "ring member %d ended with %" PRId64, i, r);
    }
}

#endif /* TEL_TESTS_SIB_RING_H */
