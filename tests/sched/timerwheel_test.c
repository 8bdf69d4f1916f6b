/*
 * tests/sched/timerwheel_test.c: white-box tests of sched/timerwheel.h, the
 * hierarchical timer wheel (tick = 2^TW_TICK_SHIFT ns).
 *
 * Time here is fake: the tests pass whatever now_ns they like to
 * tel__tw_expire, always non-decreasing, as a scheduler does.
 *
 * The contract checked: a timer fires exactly once; never at a pass before
 * its deadline; and at the latest at the first pass at or after its deadline
 * plus one tick (the wheel's resolution). Disarm and cancel-by-id stop it;
 * cancel ids are never 0 and go stale once used.
 *
 * The wheel's handle table comes from tel__mem_*, so every test brings the
 * runtime's memory up first (tel__mem_init) and down at the end.
 */
#include "common.h"

#include <sched.h>

#include "alloc/numa.h"
#include "sched/timerwheel.h"

#define TICK_NS (1ull << TW_TICK_SHIFT)
#define MS_NS 1000000ull
#define SEC_NS 1000000000ull
#define MIN_NS (60 * SEC_NS)
#define HOUR_NS (60 * MIN_NS)

static void mem_up(void)
{
    cr_assert_eq(tel__mem_init(1), 0);
}

static void mem_down(void)
{
    tel__mem_fini();
}

/* A timer under test. */
struct tmr {
    struct tw_node node;
    uint64_t deadline;
    uint64_t id;
    uint64_t fired_at;
    uint32_t fired;   /* how many times the callback ran for it */
    uint32_t dropped; /* how many times tel__tw_fini dropped it */
    bool cancelled;
    uint32_t arm_call; /* random schedule: armed before this expire call */
    uint32_t end_call; /* random schedule: the call it fired/was cancelled */
};

/* What the fire callback sees and records (no asserts under the lock). */
struct fire_ctx {
    uint64_t now;       /* the now_ns of the current expire call */
    uint32_t call;      /* the index of the current expire call */
    uint64_t n_fired;
    uint64_t n_bad;     /* early, twice, after cancel, not unlinked, ... */
    char first_bad[256];
};

static struct tmr *tmr_of(struct tw_node *n)
{
    return tel_container_of(n, struct tmr, node);
}

static void bad(struct fire_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void bad(struct fire_ctx *c, const char *fmt, ...)
{
    if (c->n_bad++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->first_bad, sizeof c->first_bad, fmt, ap);
        va_end(ap);
    }
}

static void on_fire(struct tw_node *n, void *ctx)
{
    struct fire_ctx *c = ctx;
    struct tmr *t = tmr_of(n);
    c->n_fired++;
    if (t->fired != 0)
        bad(c, "timer (deadline %" PRIu64 ") fired twice", t->deadline);
    if (t->cancelled)
        bad(c, "timer (deadline %" PRIu64 ") fired after it was cancelled",
            t->deadline);
    if (t->deadline > c->now)
        bad(c, "timer fired early: deadline %" PRIu64 " ns, pass at %" PRIu64
               " ns (%" PRIu64 " ns early)",
            t->deadline, c->now, t->deadline - c->now);
    if (n->pprev != NULL)
        bad(c, "timer fired while still linked");
    if (atomic_load(&n->fired) != 1)
        bad(c, "fired flag not set in the callback");
    t->fired++;
    t->fired_at = c->now;
    t->end_call = c->call;
}

static void on_drop(struct tw_node *n, void *ctx)
{
    (void)ctx;
    tmr_of(n)->dropped++;
}

static uint32_t expire_at(struct timerwheel *w, struct fire_ctx *c,
                          uint64_t now_ns)
{
    c->now = now_ns;
    return tel__tw_expire(w, now_ns, on_fire, c);
}

#define ASSERT_NO_BAD(c)                                                      \
    cr_assert_eq((c)->n_bad, 0, "%" PRIu64 " bad firing(s); first: %s",      \
                 (c)->n_bad, (c)->first_bad)

static int arm(struct timerwheel *w, struct tmr *t, uint8_t kind,
               uint64_t deadline)
{
    t->deadline = deadline;
    t->fired = 0;
    t->cancelled = false;
    t->id = 0;
    return tel__tw_arm(w, &t->node, kind, deadline,
                       kind == TW_HANDLE ? &t->id : NULL);
}

static void arm_ok(struct timerwheel *w, struct tmr *t, uint8_t kind,
                   uint64_t deadline)
{
    int rc = arm(w, t, kind, deadline);
    cr_assert_eq(rc, 0, "tel__tw_arm(deadline %" PRIu64 "): %d", deadline,
                 rc);
    if (kind == TW_HANDLE)
        cr_assert_neq(t->id, 0, "a handle timer got id 0");
}

/* ------------------------------------------------------------------ */
/* Basics                                                              */
/* ------------------------------------------------------------------ */

Test(timerwheel, an_empty_wheel_has_no_next_time, .init = mem_up,
     .fini = mem_down)
{
    struct timerwheel w;
    struct fire_ctx c = {0};
    tel__tw_init(&w, 0, 5 * SEC_NS);
    cr_assert(tel__tw_empty(&w));
    cr_assert_eq(tel__tw_next_ns(&w), UINT64_MAX);
    cr_assert_eq(expire_at(&w, &c, 6 * SEC_NS), 0);
    cr_assert_eq(tel__tw_next_ns(&w), UINT64_MAX);
    tel__tw_fini(&w, on_drop, NULL);
}

Test(timerwheel, empty_tracks_armed_timers, .init = mem_up, .fini = mem_down)
{
    struct timerwheel w;
    struct fire_ctx c = {0};
    struct tmr a = {0}, b = {0};
    tel__tw_init(&w, 0, 0);
    arm_ok(&w, &a, TW_WAIT, MS_NS);
    cr_assert_not(tel__tw_empty(&w));
    arm_ok(&w, &b, TW_HANDLE, 2 * MS_NS);
    cr_assert(tel__tw_disarm(&a.node));
    cr_assert_not(tel__tw_empty(&w));
    cr_assert_eq(expire_at(&w, &c, 3 * MS_NS), 1);
    cr_assert(tel__tw_empty(&w));
    ASSERT_NO_BAD(&c);
    tel__tw_fini(&w, on_drop, NULL);
}

Test(timerwheel, a_timer_fires_once_on_time_at_many_distances,
     .init = mem_up, .fini = mem_down)
{
    /* One wheel, many timers: past, now, sub-tick, tick boundaries, each
     * level's boundaries (64^L ticks), seconds, minutes, hours, a day. The
     * passes happen just before, at, and one tick after each deadline. */
    const uint64_t t0 = 1000 * SEC_NS + 12345; /* not tick aligned */
    const int64_t off[] = {
        -(int64_t)SEC_NS, -(int64_t)TICK_NS - 1, -1, 0, 1,
        (int64_t)TICK_NS - 1, (int64_t)TICK_NS, (int64_t)TICK_NS + 1,
        63 * (int64_t)TICK_NS, 64 * (int64_t)TICK_NS,
        65 * (int64_t)TICK_NS + 7, 4095 * (int64_t)TICK_NS,
        4096 * (int64_t)TICK_NS, 4097 * (int64_t)TICK_NS,
        262144 * (int64_t)TICK_NS + 3, (int64_t)MS_NS, 10 * (int64_t)MS_NS,
        (int64_t)SEC_NS, 2 * (int64_t)SEC_NS + 999, (int64_t)MIN_NS,
        (int64_t)HOUR_NS, (int64_t)HOUR_NS + 1, 2 * (int64_t)HOUR_NS + 12345,
        24 * (int64_t)HOUR_NS, 7 * 24 * (int64_t)HOUR_NS + 1};
    enum { N = sizeof off / sizeof off[0] };
    struct tmr t[2 * N];
    memset(t, 0, sizeof t);

    struct timerwheel w;
    struct fire_ctx c = {0};
    tel__tw_init(&w, 0, t0);
    for (unsigned i = 0; i < 2 * N; i++)
        arm_ok(&w, &t[i], i < N ? TW_HANDLE : TW_WAIT,
               (uint64_t)((int64_t)t0 + off[i % N]));

    /* Pass times: t0, and deadline - 1, deadline, deadline + tick - 1,
     * deadline + tick for each deadline; sorted. */
    uint64_t times[1 + 4 * N];
    unsigned nt = 0;
    times[nt++] = t0;
    for (unsigned i = 0; i < N; i++) {
        uint64_t d = t[i].deadline;
        uint64_t cand[4] = {d - 1, d, d + TICK_NS - 1, d + TICK_NS};
        for (int k = 0; k < 4; k++)
            if (cand[k] >= t0)
                times[nt++] = cand[k];
    }
    for (unsigned i = 1; i < nt; i++) /* insertion sort */
        for (unsigned j = i; j > 0 && times[j - 1] > times[j]; j--) {
            uint64_t x = times[j];
            times[j] = times[j - 1];
            times[j - 1] = x;
        }

    for (unsigned k = 0; k < nt; k++) {
        uint64_t now = times[k];
        expire_at(&w, &c, now);
        ASSERT_NO_BAD(&c);
        for (unsigned i = 0; i < 2 * N; i++) {
            if (now >= t[i].deadline + TICK_NS)
                cr_assert_eq(t[i].fired, 1,
                             "timer at t0%+" PRId64 " ns (%s) not fired by "
                             "a pass %" PRIu64 " ns after its deadline",
                             off[i % N], i < N ? "handle" : "wait",
                             now - t[i].deadline);
        }
    }
    for (unsigned i = 0; i < 2 * N; i++)
        cr_assert_eq(t[i].fired, 1, "timer %u fired %u times", i,
                     t[i].fired);
    cr_assert(tel__tw_empty(&w));
    cr_assert_eq(tel__tw_next_ns(&w), UINT64_MAX);
    tel__tw_fini(&w, on_drop, NULL);
}

Test(timerwheel, an_already_past_deadline_fires_at_the_next_pass,
     .init = mem_up, .fini = mem_down)
{
    struct timerwheel w;
    struct fire_ctx c = {0};
    struct tmr a = {0}, b = {0}, z = {0};
    const uint64_t now = 50 * SEC_NS + 777;
    tel__tw_init(&w, 0, now);
    expire_at(&w, &c, now);
    arm_ok(&w, &a, TW_WAIT, now - SEC_NS);
    arm_ok(&w, &b, TW_HANDLE, now & ~(TICK_NS - 1)); /* this tick's start */
    arm_ok(&w, &z, TW_HANDLE, 0);
    cr_assert_leq(tel__tw_next_ns(&w), now,
                  "next_ns after past deadlines is in the future");
    /* The clock has not moved: still, all three are due. */
    cr_assert_eq(expire_at(&w, &c, now), 3);
    ASSERT_NO_BAD(&c);
    cr_assert_eq(a.fired + b.fired + z.fired, 3);
    tel__tw_fini(&w, on_drop, NULL);
}

Test(timerwheel, a_deadline_on_a_tick_boundary_fires_at_that_instant,
     .init = mem_up, .fini = mem_down)
{
    struct timerwheel w;
    struct fire_ctx c = {0};
    struct tmr a = {0};
    tel__tw_init(&w, 0, 0);
    arm_ok(&w, &a, TW_WAIT, 1000 * TICK_NS);
    cr_assert_eq(expire_at(&w, &c, 1000 * TICK_NS - 1), 0);
    cr_assert_eq(expire_at(&w, &c, 1000 * TICK_NS), 1);
    ASSERT_NO_BAD(&c);
    tel__tw_fini(&w, on_drop, NULL);
}

Test(timerwheel, a_far_future_timer_does_not_fire_early, .init = mem_up,
     .fini = mem_down)
{
    /* Hours and years ahead, and the runtime's "no timeout" deadline
     * (tel__deadline_ns saturates at UINT64_MAX >> 1): passes well before
     * them fire nothing. */
    struct timerwheel w;
    struct fire_ctx c = {0};
    struct tmr h = {0}, y = {0}, sat = {0};
    const uint64_t t0 = 3 * SEC_NS;
    tel__tw_init(&w, 0, t0);
    arm_ok(&w, &h, TW_HANDLE, t0 + 3 * HOUR_NS);
    arm_ok(&w, &y, TW_HANDLE, t0 + 365 * 24 * HOUR_NS);
    arm_ok(&w, &sat, TW_WAIT, UINT64_MAX >> 1);
    uint64_t now = t0;
    for (int i = 0; i < 200; i++) { /* big irregular steps: ~7.3 h total */
        now += 131 * SEC_NS + (uint64_t)i * 7919 * TICK_NS;
        expire_at(&w, &c, now);
    }
    ASSERT_NO_BAD(&c);
    cr_assert_eq(h.fired, 1, "3 h timer not fired after %" PRIu64 " s",
                 (uint64_t)((now - t0) / SEC_NS));
    cr_assert_eq(y.fired, 0);
    cr_assert_eq(sat.fired, 0);
    /* Jump a year ahead in one pass. */
    now = t0 + 365 * 24 * HOUR_NS + TICK_NS;
    expire_at(&w, &c, now);
    ASSERT_NO_BAD(&c);
    cr_assert_eq(y.fired, 1);
    cr_assert_eq(sat.fired, 0);
    cr_assert(tel__tw_disarm(&sat.node));
    tel__tw_fini(&w, on_drop, NULL);
}

Test(timerwheel, a_deadline_of_uint64_max_never_fires_early, .init = mem_up,
     .fini = mem_down)
{
    /* tel__tw_arm takes any uint64_t deadline. Rounding it up to a tick
     * must not wrap around to a deadline in the past. */
    struct timerwheel w;
    struct fire_ctx c = {0};
    struct tmr a = {0}, b = {0};
    tel__tw_init(&w, 0, SEC_NS);
    arm_ok(&w, &a, TW_WAIT, UINT64_MAX);
    arm_ok(&w, &b, TW_HANDLE, UINT64_MAX - 5);
    expire_at(&w, &c, 2 * SEC_NS);
    cr_assert_eq(a.fired + b.fired, 0,
                 "a deadline near UINT64_MAX fired at t = 2 s (%s%s)",
                 a.fired ? "UINT64_MAX " : "", b.fired ? "UINT64_MAX-5" : "");
    cr_assert_geq(tel__tw_next_ns(&w), 2 * SEC_NS);
    tel__tw_disarm(&a.node);
    tel__tw_disarm(&b.node);
    tel__tw_fini(&w, on_drop, NULL);
}

Test(timerwheel, a_fired_node_can_be_armed_again, .init = mem_up,
     .fini = mem_down)
{
    struct timerwheel w;
    struct fire_ctx c = {0};
    struct tmr a = {0};
    tel__tw_init(&w, 0, 0);
    uint64_t now = 0;
    for (int round = 0; round < 100; round++) {
        uint8_t kind = round % 2 ? TW_HANDLE : TW_WAIT;
        uint64_t d = now + (uint64_t)(round * round + 1) * 997 * TICK_NS;
        arm_ok(&w, &a, kind, d);
        cr_assert_eq(atomic_load(&a.node.fired), 0, "fired flag not reset");
        now = d + TICK_NS;
        cr_assert_eq(expire_at(&w, &c, now), 1, "round %d", round);
        cr_assert_eq(a.fired, 1, "round %d", round);
        cr_assert_eq(atomic_load(&a.node.fired), 1);
        ASSERT_NO_BAD(&c);
    }
    tel__tw_fini(&w, on_drop, NULL);
}

/* ------------------------------------------------------------------ */
/* tel__tw_next_ns                                                     */
/* ------------------------------------------------------------------ */

/* The earliest pass that may fire a deadline: deadline rounded up to a
 * tick. */
static uint64_t tick_ceil(uint64_t d)
{
    return (d + TICK_NS - 1) & ~(TICK_NS - 1);
}

Test(timerwheel, following_next_ns_fires_a_timer_on_time, .init = mem_up,
     .fini = mem_down)
{
    /*
     * A scheduler sleeps until tel__tw_next_ns and runs a pass then. Doing
     * that must reach each timer without passing its (tick-rounded)
     * deadline, in a few passes (at most one per level it moves down).
     */
    const uint64_t t0 = 7 * SEC_NS + 4321;
    const uint64_t dist[] = {0,
                             1,
                             TICK_NS,
                             63 * TICK_NS + 5,
                             64 * TICK_NS,
                             100 * TICK_NS + 1,
                             5000 * TICK_NS,
                             MS_NS * 37,
                             SEC_NS + 1,
                             MIN_NS * 3 + 11,
                             HOUR_NS + 5,
                             5 * HOUR_NS + 3 * MIN_NS + 17,
                             30 * 24 * HOUR_NS + 1};
    for (unsigned i = 0; i < sizeof dist / sizeof dist[0]; i++) {
        struct timerwheel w;
        struct fire_ctx c = {0};
        struct tmr a = {0};
        tel__tw_init(&w, 0, t0);
        uint64_t d = t0 + dist[i];
        arm_ok(&w, &a, i % 2 ? TW_WAIT : TW_HANDLE, d);
        uint64_t now = t0;
        unsigned passes = 0;
        while (a.fired == 0) {
            uint64_t nx = tel__tw_next_ns(&w);
            cr_assert_neq(nx, UINT64_MAX,
                          "distance %" PRIu64 " ns: next_ns is 'never' "
                          "with a timer armed",
                          dist[i]);
            cr_assert_leq(nx, tick_ceil(d),
                          "distance %" PRIu64 " ns: next_ns %" PRIu64
                          " is after the deadline's tick %" PRIu64
                          " (%" PRIu64 " ns late)",
                          dist[i], nx, tick_ceil(d), nx - tick_ceil(d));
            if (nx > now)
                now = nx;
            expire_at(&w, &c, now);
            ASSERT_NO_BAD(&c);
            cr_assert_leq(++passes, 2 * TW_LEVELS + 2,
                          "distance %" PRIu64 " ns: %u passes and not "
                          "fired (next_ns %" PRIu64 ")",
                          dist[i], passes, nx);
        }
        cr_assert_lt(now, d + TICK_NS, "distance %" PRIu64 " ns: fired at "
                                       "%" PRIu64 " ns past the deadline",
                     dist[i], now - d);
        cr_assert_eq(tel__tw_next_ns(&w), UINT64_MAX);
        tel__tw_fini(&w, on_drop, NULL);
    }
}

Test(timerwheel, next_ns_is_no_later_than_the_earliest_of_many,
     .init = mem_up, .fini = mem_down)
{
    struct timerwheel w;
    struct fire_ctx c = {0};
    struct tmr t[6];
    memset(t, 0, sizeof t);
    const uint64_t t0 = SEC_NS;
    tel__tw_init(&w, 0, t0);
    const uint64_t d[6] = {t0 + HOUR_NS, t0 + 3 * SEC_NS, t0 + 70 * TICK_NS,
                           t0 + MIN_NS, t0 + 5 * TICK_NS + 3,
                           t0 + 2 * HOUR_NS};
    for (int i = 0; i < 6; i++)
        arm_ok(&w, &t[i], TW_HANDLE, d[i]);
    cr_assert_leq(tel__tw_next_ns(&w), tick_ceil(t0 + 5 * TICK_NS + 3));
    cr_assert_geq(tel__tw_next_ns(&w), t0 - TICK_NS,
                  "next_ns before the wheel's present");
    /* Cancelling the earliest moves next_ns on, but not past the next. */
    cr_assert_not_null(tel__tw_cancel_id(&w, t[4].id));
    cr_assert_leq(tel__tw_next_ns(&w), tick_ceil(t0 + 70 * TICK_NS));
    expire_at(&w, &c, t0 + 71 * TICK_NS);
    cr_assert_eq(t[2].fired, 1);
    cr_assert_leq(tel__tw_next_ns(&w), tick_ceil(t0 + 3 * SEC_NS));
    cr_assert_gt(tel__tw_next_ns(&w), t0 + 71 * TICK_NS,
                 "next_ns did not move past a fired timer");
    ASSERT_NO_BAD(&c);
    tel__tw_fini(&w, on_drop, NULL);
    cr_assert_eq(t[0].dropped + t[1].dropped + t[3].dropped + t[5].dropped,
                 4);
}

/* ------------------------------------------------------------------ */
/* Disarm and cancel                                                   */
/* ------------------------------------------------------------------ */

Test(timerwheel, disarm_prevents_firing, .init = mem_up, .fini = mem_down)
{
    struct timerwheel w;
    struct fire_ctx c = {0};
    struct tmr a = {0}, b = {0}, far = {0}, due = {0}, keep = {0};
    tel__tw_init(&w, 0, SEC_NS);
    arm_ok(&w, &a, TW_WAIT, SEC_NS + MS_NS);
    arm_ok(&w, &b, TW_HANDLE, SEC_NS + MS_NS);
    arm_ok(&w, &far, TW_WAIT, SEC_NS + 2 * HOUR_NS);
    arm_ok(&w, &due, TW_WAIT, SEC_NS - 1); /* already due */
    arm_ok(&w, &keep, TW_WAIT, SEC_NS + MS_NS);
    cr_assert(tel__tw_disarm(&a.node), "disarm of an armed wait timer");
    cr_assert(tel__tw_disarm(&b.node), "disarm of an armed handle timer");
    cr_assert(tel__tw_disarm(&far.node), "disarm of a far timer");
    cr_assert(tel__tw_disarm(&due.node), "disarm of a due timer");
    cr_assert_not(tel__tw_disarm(&a.node), "second disarm returned true");
    cr_assert_null(tel__tw_cancel_id(&w, b.id),
                   "a disarmed handle timer's id still cancels");
    expire_at(&w, &c, SEC_NS + 3 * HOUR_NS);
    ASSERT_NO_BAD(&c);
    cr_assert_eq(a.fired + b.fired + far.fired + due.fired, 0);
    cr_assert_eq(keep.fired, 1);
    cr_assert_not(tel__tw_disarm(&keep.node), "disarm of a fired timer "
                                              "returned true");
    cr_assert(tel__tw_empty(&w));
    tel__tw_fini(&w, on_drop, NULL);
}

Test(timerwheel, cancel_id_cancels_once_then_the_id_is_stale,
     .init = mem_up, .fini = mem_down)
{
    struct timerwheel w;
    struct fire_ctx c = {0};
    struct tmr a = {0}, b = {0};
    tel__tw_init(&w, 3, SEC_NS);
    arm_ok(&w, &a, TW_HANDLE, 2 * SEC_NS);
    arm_ok(&w, &b, TW_HANDLE, 2 * SEC_NS);
    cr_assert_neq(a.id, b.id);
    cr_assert_eq(tel__tw_id_wheel(a.id), 3, "id names wheel %u",
                 tel__tw_id_wheel(a.id));
    cr_assert_eq(tel__tw_cancel_id(&w, a.id), &a.node);
    cr_assert_null(tel__tw_cancel_id(&w, a.id), "second cancel succeeded");
    cr_assert_not(tel__tw_disarm(&a.node), "disarm after cancel");
    cr_assert_eq(atomic_load(&a.node.fired), 0, "cancel set fired");
    expire_at(&w, &c, 3 * SEC_NS);
    ASSERT_NO_BAD(&c);
    cr_assert_eq(a.fired, 0);
    cr_assert_eq(b.fired, 1);
    cr_assert_null(tel__tw_cancel_id(&w, b.id), "cancel after firing");
    tel__tw_fini(&w, on_drop, NULL);
    cr_assert_eq(a.dropped + b.dropped, 0);
}

Test(timerwheel, a_reused_handle_slot_gives_a_new_id, .init = mem_up,
     .fini = mem_down)
{
    /* Re-arming after a cancel reuses the handle slot, but the old id must
     * not cancel the new timer. */
    struct timerwheel w;
    struct tmr a = {0}, b = {0};
    tel__tw_init(&w, 1, 0);
    arm_ok(&w, &a, TW_HANDLE, SEC_NS);
    uint64_t old = a.id;
    cr_assert_eq(tel__tw_cancel_id(&w, old), &a.node);
    arm_ok(&w, &b, TW_HANDLE, SEC_NS);
    cr_assert_neq(b.id, old, "a reused slot handed out the same id");
    cr_assert_null(tel__tw_cancel_id(&w, old), "a stale id cancelled the "
                                               "slot's new timer");
    cr_assert_eq(tel__tw_cancel_id(&w, b.id), &b.node);
    tel__tw_fini(&w, on_drop, NULL);
}

Test(timerwheel, cancel_id_needs_the_wheel_that_issued_it, .init = mem_up,
     .fini = mem_down)
{
    struct timerwheel w0, w1;
    struct fire_ctx c = {0};
    struct tmr a = {0}, b = {0};
    tel__tw_init(&w0, 0, 0);
    tel__tw_init(&w1, 1, 0);
    arm_ok(&w0, &a, TW_HANDLE, MS_NS);
    arm_ok(&w1, &b, TW_HANDLE, MS_NS);
    cr_assert_eq(tel__tw_id_wheel(a.id), 0);
    cr_assert_eq(tel__tw_id_wheel(b.id), 1);
    cr_assert_null(tel__tw_cancel_id(&w1, a.id), "wheel 1 cancelled wheel "
                                                 "0's id");
    cr_assert_null(tel__tw_cancel_id(&w0, b.id));
    cr_assert_eq(tel__tw_cancel_id(&w1, b.id), &b.node);
    expire_at(&w0, &c, 2 * MS_NS);
    cr_assert_eq(a.fired, 1, "a wrong-wheel cancel took the timer out");
    ASSERT_NO_BAD(&c);
    tel__tw_fini(&w0, on_drop, NULL);
    tel__tw_fini(&w1, on_drop, NULL);
}

Test(timerwheel, cancel_id_rejects_made_up_ids, .init = mem_up,
     .fini = mem_down)
{
    struct timerwheel w;
    struct tmr a = {0};
    tel__tw_init(&w, 0, 0);
    cr_assert_null(tel__tw_cancel_id(&w, 0));
    cr_assert_null(tel__tw_cancel_id(&w, 1));
    cr_assert_null(tel__tw_cancel_id(&w, UINT64_MAX));
    arm_ok(&w, &a, TW_HANDLE, MS_NS);
    cr_assert_null(tel__tw_cancel_id(&w, a.id + 1), "an id for a slot never "
                                                    "issued cancelled");
    cr_assert_null(tel__tw_cancel_id(&w, a.id & ((1ull << 40) - 1)),
                   "an id with generation 0 cancelled");
    cr_assert_eq(tel__tw_cancel_id(&w, a.id), &a.node);
    tel__tw_fini(&w, on_drop, NULL);
}

Test(timerwheel, ids_are_never_zero_and_never_repeat_while_armed,
     .init = mem_up, .fini = mem_down)
{
    enum { N = 3000 };
    struct tmr *t = calloc(N, sizeof *t);
    cr_assert_not_null(t);
    struct timerwheel w;
    struct fire_ctx c = {0};
    tel__tw_init(&w, 0, 0);
    uint64_t now = 0;
    /* Churn: arm, cancel or fire, re-arm, so slots are reused with new
     * generations. */
    for (int round = 0; round < 5; round++) {
        for (unsigned i = 0; i < N; i++)
            arm_ok(&w, &t[i], TW_HANDLE, now + (i % 97 + 1) * TICK_NS);
        uint64_t *ids = malloc(N * sizeof *ids);
        cr_assert_not_null(ids);
        for (unsigned i = 0; i < N; i++)
            ids[i] = t[i].id;
        for (unsigned i = 1; i < N; i++) /* sort: N small */
            for (unsigned j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
                uint64_t x = ids[j];
                ids[j] = ids[j - 1];
                ids[j - 1] = x;
            }
        for (unsigned i = 1; i < N; i++)
            cr_assert_neq(ids[i], ids[i - 1], "round %d: id %" PRIu64
                          " issued twice", round, ids[i]);
        free(ids);
        for (unsigned i = 0; i < N; i += 2)
            cr_assert_eq(tel__tw_cancel_id(&w, t[i].id), &t[i].node);
        now += 100 * TICK_NS;
        expire_at(&w, &c, now);
        ASSERT_NO_BAD(&c);
    }
    cr_assert(tel__tw_empty(&w));
    tel__tw_fini(&w, on_drop, NULL);
    free(t);
}

Test(timerwheel, an_id_is_not_zero_when_a_slot_generation_wraps,
     .init = mem_up, .fini = mem_down)
{
    /* White box: the generation is 24 bits. Push slot 0 to the last one,
     * then use it twice more. */
    struct timerwheel w;
    struct tmr a = {0};
    tel__tw_init(&w, 0, 0);
    arm_ok(&w, &a, TW_HANDLE, SEC_NS);
    cr_assert_eq(tel__tw_cancel_id(&w, a.id), &a.node);
    cr_assert_eq(w.n_hslots, 1);
    w.hslots[0].gen = (1u << 24) - 1;
    arm_ok(&w, &a, TW_HANDLE, SEC_NS);
    uint64_t last = a.id;
    cr_assert_eq(tel__tw_cancel_id(&w, last), &a.node);
    arm_ok(&w, &a, TW_HANDLE, SEC_NS); /* generation wrapped */
    cr_assert_neq(a.id, last);
    cr_assert_null(tel__tw_cancel_id(&w, last));
    cr_assert_eq(tel__tw_cancel_id(&w, a.id), &a.node);
    tel__tw_fini(&w, on_drop, NULL);
}

/* ------------------------------------------------------------------ */
/* Teardown                                                            */
/* ------------------------------------------------------------------ */

Test(timerwheel, fini_drops_exactly_the_armed_handle_timers, .init = mem_up,
     .fini = mem_down)
{
    struct timerwheel w;
    struct fire_ctx c = {0};
    struct tmr h[4], wt[2];
    memset(h, 0, sizeof h);
    memset(wt, 0, sizeof wt);
    tel__tw_init(&w, 0, 0);
    arm_ok(&w, &h[0], TW_HANDLE, MS_NS);          /* fires */
    arm_ok(&w, &h[1], TW_HANDLE, HOUR_NS);        /* cancelled */
    arm_ok(&w, &h[2], TW_HANDLE, 2 * HOUR_NS);    /* dropped */
    arm_ok(&w, &h[3], TW_HANDLE, 0);              /* due, dropped */
    arm_ok(&w, &wt[0], TW_WAIT, 3 * HOUR_NS);     /* skipped */
    arm_ok(&w, &wt[1], TW_WAIT, 2 * MS_NS);       /* skipped */
    cr_assert_eq(tel__tw_cancel_id(&w, h[1].id), &h[1].node);
    /* Fire h[0] and h[3] first, then re-arm h[3] as due. */
    expire_at(&w, &c, MS_NS + TICK_NS);
    cr_assert_eq(h[0].fired, 1);
    cr_assert_eq(h[3].fired, 1);
    arm_ok(&w, &h[3], TW_HANDLE, 0);
    tel__tw_fini(&w, on_drop, NULL);
    cr_assert_eq(h[0].dropped, 0, "dropped a fired timer");
    cr_assert_eq(h[1].dropped, 0, "dropped a cancelled timer");
    cr_assert_eq(h[2].dropped, 1, "an armed far timer was not dropped");
    cr_assert_eq(h[3].dropped, 1, "an armed due timer was not dropped");
    cr_assert_eq(wt[0].dropped + wt[1].dropped, 0, "dropped a wait timer");
    ASSERT_NO_BAD(&c);
}

/* ------------------------------------------------------------------ */
/* Scale                                                               */
/* ------------------------------------------------------------------ */

Test(timerwheel, a_million_timers_are_all_cancelled_or_fired_once,
     .init = mem_up, .fini = mem_down, .timeout = 120)
{
    const size_t n = tel_test_scaled(1000000, 100000);
    uint64_t seed = tel_test_seed();
    struct tt_rng rng = {.s = seed};
    struct tmr *t = calloc(n, sizeof *t);
    cr_assert_not_null(t, "calloc of %zu timers", n);
    struct timerwheel *w = malloc(sizeof *w);
    cr_assert_not_null(w);
    struct fire_ctx c = {0};
    const uint64_t t0 = 100 * SEC_NS;
    const uint64_t span = 20 * MIN_NS;
    tel__tw_init(w, 0, t0);

    for (size_t i = 0; i < n; i++) {
        /* Mostly within 20 min, some hours ahead, some already due. */
        uint64_t r = tt_rng_below(&rng, 100);
        uint64_t d = r < 2    ? t0 - tt_rng_below(&rng, SEC_NS)
                     : r < 5  ? t0 + HOUR_NS + tt_rng_below(&rng, HOUR_NS)
                              : t0 + tt_rng_below(&rng, span);
        int rc = arm(w, &t[i], i % 4 == 3 ? TW_WAIT : TW_HANDLE, d);
        cr_assert_eq(rc, 0, "arm %zu: %d (seed %" PRIu64 ")", i, rc, seed);
        cr_assert(t[i].node.kind != TW_HANDLE || t[i].id != 0);
    }
    cr_assert_eq(atomic_load(&w->n_armed), n);

    /* Cancel about half, by id or by disarm. */
    size_t n_cancel = 0;
    for (size_t i = 0; i < n; i++) {
        if (tt_rng_below(&rng, 2))
            continue;
        bool ok = t[i].node.kind == TW_HANDLE
                      ? tel__tw_cancel_id(w, t[i].id) == &t[i].node
                      : tel__tw_disarm(&t[i].node);
        cr_assert(ok, "cancel of timer %zu failed (seed %" PRIu64 ")", i,
                  seed);
        t[i].cancelled = true;
        n_cancel++;
    }

    /* Expire in 2000 irregular steps to 3 h past t0. */
    uint64_t now = t0;
    const uint64_t end = t0 + 3 * HOUR_NS;
    for (int k = 0; k < 2000 && now < end; k++) {
        now += tt_rng_below(&rng, (end - t0) / 1000) + 1;
        if (now > end)
            now = end;
        expire_at(w, &c, now);
    }
    expire_at(w, &c, end);
    cr_assert_eq(c.n_bad, 0, "%" PRIu64 " bad firing(s), first: %s "
                             "(seed %" PRIu64 ")",
                 c.n_bad, c.first_bad, seed);
    cr_assert_eq(c.n_fired, n - n_cancel, "fired %" PRIu64 " of %zu "
                                          "(seed %" PRIu64 ")",
                 c.n_fired, n - n_cancel, seed);
    for (size_t i = 0; i < n; i++)
        if (t[i].fired != (t[i].cancelled ? 0u : 1u))
            cr_assert_fail("timer %zu (deadline t0%+" PRId64 " ns, %s): "
                           "fired %u times (seed %" PRIu64 ")",
                           i, (int64_t)(t[i].deadline - t0),
                           t[i].cancelled ? "cancelled" : "live",
                           t[i].fired, seed);
    cr_assert(tel__tw_empty(w));
    cr_assert_eq(tel__tw_next_ns(w), UINT64_MAX);
    tel__tw_fini(w, on_drop, NULL);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(t[i].dropped, 0);
    free(w);
    free(t);
}

Test(timerwheel, a_million_armed_timers_are_dropped_at_fini,
     .init = mem_up, .fini = mem_down, .timeout = 120)
{
    const size_t n = tel_test_scaled(1000000, 100000);
    struct tmr *t = calloc(n, sizeof *t);
    cr_assert_not_null(t);
    struct timerwheel *w = malloc(sizeof *w);
    cr_assert_not_null(w);
    tel__tw_init(w, 2, 0);
    size_t n_handles = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t kind = i % 3 == 0 ? TW_WAIT : TW_HANDLE;
        arm_ok(w, &t[i], kind, (i * 7919 % 100000 + 1) * TICK_NS * 13);
        n_handles += kind == TW_HANDLE;
    }
    tel__tw_fini(w, on_drop, NULL);
    size_t dropped = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_leq(t[i].dropped, 1, "timer %zu dropped twice", i);
        if (t[i].node.kind == TW_WAIT)
            cr_assert_eq(t[i].dropped, 0, "wait timer %zu dropped", i);
        dropped += t[i].dropped;
    }
    cr_assert_eq(dropped, n_handles);
    free(w);
    free(t);
}

/* ------------------------------------------------------------------ */
/* A random schedule against a sorted reference                        */
/* ------------------------------------------------------------------ */

struct plan_ref {
    uint64_t eff; /* max(deadline, the last pass before it was armed) */
    uint32_t i;   /* index into the timer array */
};

static int cmp_ref(const void *a, const void *b)
{
    const struct plan_ref *x = a, *y = b;
    return x->eff < y->eff ? -1 : x->eff > y->eff;
}

static int cmp_u32_by_arm(const void *a, const void *b, void *arg);

Test(timerwheel, a_random_schedule_matches_a_sorted_reference,
     .init = mem_up, .fini = mem_down, .timeout = 60)
{
    const uint64_t seed = tel_test_seed();
    struct tt_rng rng = {.s = seed};
    const uint32_t K = 3000;                                  /* passes */
    const uint32_t N = (uint32_t)tel_test_scaled(20000, 4000); /* timers */

    /* Pass times: small, medium and large steps (covers hours). */
    uint64_t *when = malloc((K + 1) * sizeof *when);
    cr_assert_not_null(when);
    uint64_t now = SEC_NS + tt_rng_below(&rng, SEC_NS);
    const uint64_t t0 = now;
    for (uint32_t k = 0; k < K; k++) {
        uint64_t r = tt_rng_below(&rng, 10);
        uint64_t step = r < 5   ? tt_rng_below(&rng, 4 * TICK_NS)
                        : r < 8 ? tt_rng_below(&rng, 4096 * TICK_NS)
                                : tt_rng_below(&rng, 1ull << 38);
        now += step;
        when[k] = now;
    }
    when[K] = now + 400 * HOUR_NS; /* a final pass that fires the rest */

    /* Timers: armed before pass a (a < K/2), deadline relative to the
     * previous pass; some cancelled before a later pass. */
    struct tmr *t = calloc(N, sizeof *t);
    uint32_t *order = malloc(N * sizeof *order);
    struct plan_ref *ref = malloc(N * sizeof *ref);
    uint32_t *cancel_at = malloc(N * sizeof *cancel_at);
    cr_assert(t && order && ref && cancel_at);
    for (uint32_t i = 0; i < N; i++) {
        uint32_t a = (uint32_t)tt_rng_below(&rng, K / 2);
        uint64_t base = a ? when[a - 1] : t0;
        uint64_t r = tt_rng_below(&rng, 100);
        uint64_t d;
        if (r < 10)
            d = base - tt_rng_below(&rng, SEC_NS); /* past */
        else if (r < 15)
            d = base;
        else if (r < 20)
            d = (base & ~(TICK_NS - 1)) + tt_rng_below(&rng, 8) * TICK_NS;
        else /* log-uniform up to 2^43 ns (2.4 h) */
            d = base + tt_rng_below(&rng, 1ull << tt_rng_below(&rng, 44)) + 1;
        t[i].deadline = d;
        t[i].arm_call = a;
        t[i].end_call = UINT32_MAX;
        t[i].node.kind = tt_rng_below(&rng, 2) ? TW_HANDLE : TW_WAIT;
        cancel_at[i] = tt_rng_below(&rng, 5) == 0
                           ? a + 1 + (uint32_t)tt_rng_below(&rng, K - a)
                           : UINT32_MAX;
        ref[i] = (struct plan_ref){.eff = d > base ? d : base, .i = i};
        order[i] = i;
    }
    qsort(ref, N, sizeof *ref, cmp_ref);
    qsort_r(order, N, sizeof *order, cmp_u32_by_arm, t); /* by arm pass */
    /* Cancels in pass order. */
    uint32_t *corder = malloc(N * sizeof *corder);
    cr_assert_not_null(corder);
    uint32_t nc = 0;
    for (uint32_t i = 0; i < N; i++)
        if (cancel_at[i] != UINT32_MAX)
            corder[nc++] = i;
    for (uint32_t i = 1; i < nc; i++) { /* insertion sort by cancel pass */
        uint32_t x = corder[i], j = i;
        for (; j > 0 && cancel_at[corder[j - 1]] > cancel_at[x]; j--)
            corder[j] = corder[j - 1];
        corder[j] = x;
    }

    uint64_t *nx = malloc((K + 1) * sizeof *nx); /* next_ns after pass k */
    cr_assert_not_null(nx);
    struct timerwheel w;
    struct fire_ctx c = {0};
    tel__tw_init(&w, 0, t0);
    uint32_t ai = 0, ci = 0, cursor = 0;
    uint64_t n_cancelled = 0;
    for (uint32_t k = 0; k <= K; k++) {
        bool armed_now = false;
        for (; ai < N && t[order[ai]].arm_call == k; ai++) {
            struct tmr *x = &t[order[ai]];
            int rc = tel__tw_arm(&w, &x->node, x->node.kind, x->deadline,
                                 x->node.kind == TW_HANDLE ? &x->id : NULL);
            cr_assert_eq(rc, 0, "seed %" PRIu64, seed);
            cr_assert(x->node.kind != TW_HANDLE || x->id != 0,
                      "id 0 (seed %" PRIu64 ")", seed);
            armed_now = true;
        }
        for (; ci < nc && cancel_at[corder[ci]] == k; ci++) {
            struct tmr *x = &t[corder[ci]];
            bool want = x->fired == 0;
            bool got = x->node.kind == TW_HANDLE
                           ? tel__tw_cancel_id(&w, x->id) == &x->node
                           : tel__tw_disarm(&x->node);
            cr_assert_eq(got, want,
                         "pass %u: cancel of a %s timer returned %d "
                         "(seed %" PRIu64 ")",
                         k, want ? "pending" : "fired", got, seed);
            if (got) {
                x->cancelled = true;
                x->end_call = k;
                n_cancelled++;
            }
        }
        c.call = k;
        uint32_t f = expire_at(&w, &c, when[k]);
        cr_assert_eq(c.n_bad, 0, "pass %u at %" PRIu64 " ns: %s (seed %" PRIu64
                                 ")", k, when[k] - t0, c.first_bad, seed);
        /* Nothing is due before next_ns: a pass before it fires nothing
         * (unless a new timer was armed in between). */
        if (k > 0 && !armed_now && when[k] < nx[k - 1])
            cr_assert_eq(f, 0, "pass %u fired %u timers before next_ns "
                               "(seed %" PRIu64 ")", k, f, seed);
        nx[k] = tel__tw_next_ns(&w);
        /* The reference: every timer whose (effective) deadline is a tick
         * or more behind this pass has fired or was cancelled. */
        for (; cursor < N && ref[cursor].eff + TICK_NS <= when[k]; cursor++) {
            struct tmr *x = &t[ref[cursor].i];
            if (x->fired != 1 && !x->cancelled)
                cr_assert_fail("pass %u at t0+%" PRIu64 " ns: timer with "
                               "deadline t0%+" PRId64 " ns (armed before "
                               "pass %u) has not fired (seed %" PRIu64 ")",
                               k, when[k] - t0,
                               (int64_t)(x->deadline - t0), x->arm_call,
                               seed);
        }
    }
    cr_assert_eq(cursor, N, "the final pass is not past every deadline");
    cr_assert_eq(c.n_fired + n_cancelled, N, "fired %" PRIu64 " + cancelled "
                                             "%" PRIu64 " != %u (seed %"
                                             PRIu64 ")",
                 c.n_fired, n_cancelled, N, seed);
    cr_assert(tel__tw_empty(&w));

    /* next_ns never pointed past a pending timer's tick. */
    for (uint32_t i = 0; i < N; i++) {
        uint64_t lim = tick_ceil(t[i].deadline);
        for (uint32_t k = t[i].arm_call; k < t[i].end_call && k <= K; k++)
            if (nx[k] > lim)
                cr_assert_fail("after pass %u next_ns was t0+%" PRIu64
                               " ns, after pending deadline t0+%" PRIu64
                               " ns (seed %" PRIu64 ")",
                               k, nx[k] - t0, lim - t0, seed);
    }
    tel__tw_fini(&w, on_drop, NULL);
    free(nx);
    free(corder);
    free(cancel_at);
    free(ref);
    free(order);
    free(t);
    free(when);
}

static int cmp_u32_by_arm(const void *a, const void *b, void *arg)
{
    const struct tmr *t = arg;
    uint32_t x = t[*(const uint32_t *)a].arm_call;
    uint32_t y = t[*(const uint32_t *)b].arm_call;
    if (x != y)
        return x < y ? -1 : 1;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    return i < j ? -1 : i > j;
}

/* ------------------------------------------------------------------ */
/* Other threads arm and cancel while the owner expires                */
/* ------------------------------------------------------------------ */

struct race {
    struct timerwheel w;
    struct tmr *t;
    atomic_uint *fired;    /* per timer, from the callback */
    atomic_uint *cancelled; /* per timer, cancel returned it */
    uint32_t n;
    _Atomic uint64_t now;
    atomic_bool done;
    atomic_uint armed;
    uint64_t seed;
};

static void race_fire(struct tw_node *n, void *ctx)
{
    struct race *r = ctx;
    struct tmr *t = tmr_of(n);
    atomic_fetch_add(&r->fired[t - r->t], 1);
}

struct canceller {
    struct race *r;
    uint32_t from, step; /* this thread's timers: from, from+step, ... */
};

static void *canceller_main(void *arg)
{
    struct canceller *cl = arg;
    struct race *r = cl->r;
    struct tt_rng rng = {.s = r->seed + cl->from * 0x9E37u};
    for (uint32_t i = cl->from; i < r->n; i += cl->step) {
        struct tmr *t = &r->t[i];
        uint64_t d = atomic_load(&r->now) + tt_rng_below(&rng, 64 * TICK_NS);
        uint64_t id = 0;
        uint8_t kind = (i & 1) ? TW_HANDLE : TW_WAIT;
        int rc = tel__tw_arm(&r->w, &t->node, kind, d,
                             kind == TW_HANDLE ? &id : NULL);
        if (!TT_CHECK(rc == 0, "arm: %d (seed %" PRIu64 ")", rc, r->seed))
            continue;
        atomic_fetch_add(&r->armed, 1);
        if (tt_rng_below(&rng, 2)) {
            /* Race the owner's pass. */
            for (int spin = (int)tt_rng_below(&rng, 200); spin > 0; spin--)
                tel__cpu_relax();
            bool got = kind == TW_HANDLE ? tel__tw_cancel_id(&r->w, id) != NULL
                                         : tel__tw_disarm(&t->node);
            if (got) {
                atomic_fetch_add(&r->cancelled[i], 1);
                /* Once cancel returned, the callback must not run. */
                TT_CHECK(atomic_load(&r->fired[i]) == 0,
                         "timer %u fired and was cancelled (seed %" PRIu64
                         ")", i, r->seed);
            }
        }
    }
    return NULL;
}

Test(timerwheel, cancels_from_other_threads_race_expiry_safely,
     .init = mem_up, .fini = mem_down, .timeout = 60)
{
    struct race *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    r->seed = tel_test_seed();
    r->n = (uint32_t)tel_test_scaled(200000, 20000);
    r->t = calloc(r->n, sizeof *r->t);
    r->fired = calloc(r->n, sizeof *r->fired);
    r->cancelled = calloc(r->n, sizeof *r->cancelled);
    cr_assert(r->t && r->fired && r->cancelled);
    uint64_t now = SEC_NS;
    atomic_store(&r->now, now);
    tel__tw_init(&r->w, 0, now);

    struct canceller cl[2] = {{r, 0, 2}, {r, 1, 2}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, canceller_main, &cl[i]), 0);

    /* The owner: passes at a steadily advancing fake clock until both
     * threads are done and everything armed has fired or been cancelled. */
    struct tt_rng rng = {.s = r->seed};
    for (int joined = 0;;) {
        now += tt_rng_below(&rng, 8 * TICK_NS);
        atomic_store(&r->now, now);
        tel__tw_expire(&r->w, now, race_fire, r);
        if (!joined && atomic_load(&r->armed) == r->n) {
            for (int i = 0; i < 2; i++)
                cr_assert_eq(pthread_join(th[i], NULL), 0);
            joined = 1;
        }
        if (joined && tel__tw_empty(&r->w))
            break;
        if ((now & 0xff) == 0)
            sched_yield();
    }
    TT_ASSERT_NO_FAILURES();
    for (uint32_t i = 0; i < r->n; i++) {
        unsigned f = atomic_load(&r->fired[i]);
        unsigned cc = atomic_load(&r->cancelled[i]);
        cr_assert_eq(f + cc, 1,
                     "timer %u: fired %u, cancelled %u (seed %" PRIu64 ")", i,
                     f, cc, r->seed);
    }
    tel__tw_fini(&r->w, on_drop, NULL);
    free(r->t);
    free(r->fired);
    free(r->cancelled);
    free(r);
}
