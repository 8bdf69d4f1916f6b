/*
 * tests/sched/runq_test.c: white-box tests of sched/runq.h, the bounded
 * FIFO ring each scheduler owns (owner push/pop, thieves steal half).
 *
 * The tasks are fake: only their addresses are queued, never dereferenced.
 * The concurrent tests take TEL_TEST_SEED and name it when they fail.
 */
#include "common.h"

#include <sched.h>

#include "sched/runq.h"
#include "sched/task.h"

/* Tasks for the single-threaded tests: index i is task i. */
#define N_FAKE 4096u
static struct task fake[N_FAKE];

static struct task *T(uint32_t i)
{
    return &fake[i];
}

static uint32_t idx(struct task *t)
{
    return (uint32_t)(t - fake);
}

/* Push tasks [from, from + n) and assert each push succeeds. */
static void push_range(struct runq *q, uint32_t from, uint32_t n)
{
    for (uint32_t i = from; i < from + n; i++)
        cr_assert(tel__runq_push(q, T(i)), "push of task %u failed (len %u)",
                  i, tel__runq_len(q));
}

/* Pop n tasks and assert they are [from, from + n) in order, then empty. */
static void expect_exactly(struct runq *q, uint32_t from, uint32_t n,
                           const char *what)
{
    cr_assert_eq(tel__runq_len(q), n, "%s: len %u, want %u", what,
                 tel__runq_len(q), n);
    for (uint32_t i = from; i < from + n; i++) {
        struct task *t = tel__runq_pop(q);
        cr_assert_not_null(t, "%s: pop returned NULL, want task %u", what, i);
        cr_assert_eq(idx(t), i, "%s: popped task %u, want %u", what, idx(t),
                     i);
    }
    cr_assert_null(tel__runq_pop(q), "%s: ring not empty", what);
}

/* Start a ring's counters at `at` (white box: test counter wrap-around). */
static void init_at(struct runq *q, uint32_t at)
{
    tel__runq_init(q);
    atomic_store(&q->head, at);
    atomic_store(&q->tail, at);
}

/* ------------------------------------------------------------------ */
/* Owner operations                                                    */
/* ------------------------------------------------------------------ */

Test(runq, pop_on_an_empty_ring_returns_null)
{
    struct runq q;
    tel__runq_init(&q);
    cr_assert_null(tel__runq_pop(&q));
    cr_assert_eq(tel__runq_len(&q), 0);
}

Test(runq, pops_in_push_order)
{
    struct runq q;
    tel__runq_init(&q);
    push_range(&q, 0, 100);
    expect_exactly(&q, 0, 100, "after 100 pushes");
}

Test(runq, len_counts_the_queued_tasks)
{
    struct runq q;
    tel__runq_init(&q);
    for (uint32_t i = 0; i < 10; i++) {
        cr_assert_eq(tel__runq_len(&q), i);
        push_range(&q, i, 1);
    }
    for (uint32_t i = 10; i > 0; i--) {
        cr_assert_eq(tel__runq_len(&q), i);
        cr_assert_not_null(tel__runq_pop(&q));
    }
    cr_assert_eq(tel__runq_len(&q), 0);
}

Test(runq, push_fails_when_the_ring_holds_runq_cap_tasks)
{
    struct runq q;
    tel__runq_init(&q);
    push_range(&q, 0, RUNQ_CAP);
    cr_assert_eq(tel__runq_len(&q), RUNQ_CAP);
    cr_assert_not(tel__runq_push(&q, T(RUNQ_CAP)), "push into a full ring");
    cr_assert_not(tel__runq_push(&q, T(RUNQ_CAP)), "second push into a full "
                                                   "ring");
    cr_assert_eq(tel__runq_len(&q), RUNQ_CAP, "a failed push changed len");
    /* One pop makes room for exactly one push. */
    cr_assert_eq(tel__runq_pop(&q), T(0));
    cr_assert(tel__runq_push(&q, T(RUNQ_CAP)));
    cr_assert_not(tel__runq_push(&q, T(RUNQ_CAP + 1)));
    expect_exactly(&q, 1, RUNQ_CAP, "after refill");
}

Test(runq, fifo_order_survives_many_trips_around_the_ring)
{
    struct runq q;
    tel__runq_init(&q);
    uint32_t next_push = 0, next_pop = 0;
    /* Keep 0..200 tasks queued while the indices go around ~15 times. */
    for (uint32_t round = 0; round < 40; round++) {
        uint32_t k = (round * 37) % 200 + 1;
        for (uint32_t i = 0; i < k && tel__runq_len(&q) < RUNQ_CAP; i++) {
            cr_assert(tel__runq_push(&q, T(next_push % N_FAKE)));
            next_push++;
        }
        uint32_t m = (round * 53) % 180;
        for (uint32_t i = 0; i < m && next_pop < next_push; i++) {
            struct task *t = tel__runq_pop(&q);
            cr_assert_not_null(t);
            cr_assert_eq(idx(t), next_pop % N_FAKE, "round %u", round);
            next_pop++;
        }
    }
    while (next_pop < next_push) {
        struct task *t = tel__runq_pop(&q);
        cr_assert_not_null(t);
        cr_assert_eq(idx(t), next_pop % N_FAKE);
        next_pop++;
    }
    cr_assert_null(tel__runq_pop(&q));
    cr_assert_gt(next_push, 3 * RUNQ_CAP, "the test did not wrap the ring");
}

Test(runq, the_counters_wrap_past_uint32_max)
{
    struct runq q;
    init_at(&q, UINT32_MAX - 100);
    push_range(&q, 0, RUNQ_CAP);
    cr_assert_eq(tel__runq_len(&q), RUNQ_CAP);
    cr_assert_not(tel__runq_push(&q, T(RUNQ_CAP)), "full ring across the "
                                                   "wrap accepted a push");
    expect_exactly(&q, 0, RUNQ_CAP, "across the counter wrap");
}

Test(runq, grab_half_takes_the_older_half_oldest_first)
{
    struct task *out[RUNQ_CAP / 2];
    for (uint32_t len = 0; len <= RUNQ_CAP; len++) {
        struct runq q;
        init_at(&q, len * 7u); /* vary where in the ring it starts */
        push_range(&q, 0, len);
        uint32_t n = tel__runq_grab_half(&q, out);
        cr_assert_eq(n, len / 2, "len %u: grabbed %u", len, n);
        for (uint32_t i = 0; i < n; i++)
            cr_assert_eq(out[i], T(i), "len %u: out[%u] is task %u", len, i,
                         idx(out[i]));
        char what[32];
        snprintf(what, sizeof what, "len %u", len);
        expect_exactly(&q, n, len - n, what);
    }
}

Test(runq, grab_half_of_a_full_ring_takes_runq_cap_over_two)
{
    struct task *out[RUNQ_CAP / 2];
    struct runq q;
    init_at(&q, UINT32_MAX - 3);
    push_range(&q, 0, RUNQ_CAP);
    cr_assert_eq(tel__runq_grab_half(&q, out), RUNQ_CAP / 2);
    cr_assert_eq(out[0], T(0));
    cr_assert_eq(out[RUNQ_CAP / 2 - 1], T(RUNQ_CAP / 2 - 1));
    /* Room again: the freed half is pushable. */
    push_range(&q, RUNQ_CAP, RUNQ_CAP / 2);
    cr_assert_not(tel__runq_push(&q, T(2 * RUNQ_CAP)));
    expect_exactly(&q, RUNQ_CAP / 2, RUNQ_CAP, "after grab and refill");
}

/* ------------------------------------------------------------------ */
/* Stealing (single-threaded)                                          */
/* ------------------------------------------------------------------ */

Test(runq, steal_from_an_empty_ring_returns_null)
{
    struct runq v, into;
    tel__runq_init(&v);
    tel__runq_init(&into);
    cr_assert_null(tel__runq_steal(&v, &into));
    cr_assert_eq(tel__runq_len(&into), 0);
    cr_assert_null(tel__runq_pop(&into));
}

Test(runq, steal_of_one_task_returns_it_and_leaves_the_thief_empty)
{
    struct runq v, into;
    tel__runq_init(&v);
    tel__runq_init(&into);
    push_range(&v, 0, 1);
    cr_assert_eq(tel__runq_steal(&v, &into), T(0));
    cr_assert_eq(tel__runq_len(&v), 0);
    cr_assert_eq(tel__runq_len(&into), 0);
    cr_assert_null(tel__runq_pop(&into));
    cr_assert_null(tel__runq_pop(&v));
}

/*
 * Steal from a victim holding tasks [0, len) into an empty thief whose
 * counters start at into_at, and check: half (rounded up) is taken, all of
 * them the oldest; one is returned and the rest sit in the thief's ring
 * oldest first; the victim keeps the newer half in order.
 */
static void check_steal(uint32_t len, uint32_t victim_at, uint32_t into_at)
{
    struct runq v, into;
    init_at(&v, victim_at);
    init_at(&into, into_at);
    push_range(&v, 0, len);

    uint32_t want = len - len / 2;
    struct task *run = tel__runq_steal(&v, &into);
    cr_assert_not_null(run, "len %u: steal returned NULL", len);
    cr_assert_eq(tel__runq_len(&into), want - 1,
                 "len %u: thief holds %u, want %u", len,
                 tel__runq_len(&into), want - 1);
    cr_assert_eq(tel__runq_len(&v), len - want, "len %u: victim kept %u",
                 len, tel__runq_len(&v));

    bool taken[RUNQ_CAP] = {false};
    uint32_t r = idx(run);
    cr_assert_lt(r, want, "len %u: returned task %u is not among the "
                          "oldest %u", len, r, want);
    taken[r] = true;
    uint32_t prev = 0;
    for (uint32_t i = 0; i < want - 1; i++) {
        struct task *t = tel__runq_pop(&into);
        cr_assert_not_null(t, "len %u: thief ring short", len);
        uint32_t k = idx(t);
        cr_assert_lt(k, want, "len %u: thief got task %u, not among the "
                              "oldest %u", len, k, want);
        cr_assert_not(taken[k], "len %u: task %u stolen twice", len, k);
        if (i > 0)
            cr_assert_gt(k, prev, "len %u: thief ring not oldest first "
                                  "(%u after %u)", len, k, prev);
        taken[k] = true;
        prev = k;
    }
    cr_assert_null(tel__runq_pop(&into));
    char what[48];
    snprintf(what, sizeof what, "victim after a steal of len %u", len);
    expect_exactly(&v, want, len - want, what);
}

Test(runq, steal_takes_half_rounded_up_oldest_first)
{
    for (uint32_t len = 1; len <= RUNQ_CAP; len++)
        check_steal(len, 0, 0);
}

Test(runq, steal_works_wherever_the_rings_start)
{
    /* Both rings' slots wrap, and both counters wrap past UINT32_MAX. */
    for (uint32_t len = 1; len <= RUNQ_CAP; len += 5) {
        check_steal(len, 200, 250);
        check_steal(len, UINT32_MAX - 60, 123);
        check_steal(len, 17, UINT32_MAX - 30);
    }
}

Test(runq, steal_runs_the_newest_stolen_task_and_queues_the_rest)
{
    /* The implementation's documented choice (runq.c: "Run the newest one
     * now; publish the rest in order"): of tasks 0..9, 0..4 are taken,
     * 4 is returned and 0..3 are queued. */
    struct runq v, into;
    tel__runq_init(&v);
    tel__runq_init(&into);
    push_range(&v, 0, 10);
    cr_assert_eq(tel__runq_steal(&v, &into), T(4));
    expect_exactly(&into, 0, 4, "thief");
    expect_exactly(&v, 5, 5, "victim");
}

Test(runq, repeated_steals_drain_a_ring_in_order)
{
    struct runq v, into;
    tel__runq_init(&v);
    tel__runq_init(&into);
    push_range(&v, 0, RUNQ_CAP);
    uint32_t seen = 0;
    bool got[RUNQ_CAP] = {false};
    struct task *t;
    while ((t = tel__runq_steal(&v, &into)) != NULL) {
        cr_assert_not(got[idx(t)]);
        got[idx(t)] = true;
        seen++;
        while ((t = tel__runq_pop(&into)) != NULL) {
            cr_assert_not(got[idx(t)]);
            got[idx(t)] = true;
            seen++;
        }
    }
    cr_assert_eq(seen, RUNQ_CAP);
    cr_assert_eq(tel__runq_len(&v), 0);
}

/* ------------------------------------------------------------------ */
/* Concurrent: one owner, thieves                                      */
/* ------------------------------------------------------------------ */

struct stress {
    struct runq victim TEL_ALIGNED_CL;
    struct task *tasks;
    atomic_uint *seen; /* per task: how many times it came out */
    uint32_t n;
    uint64_t seed;
    atomic_bool owner_done;
    atomic_bool go;
    atomic_uint started; /* thieves running */
    atomic_uint n_out; /* tasks taken by anyone */
    atomic_uint n_stolen;
};

struct thief {
    struct stress *s;
    struct runq mine TEL_ALIGNED_CL;
    unsigned id;
    uint32_t steals;
};

static void take(struct stress *s, struct task *t, const char *who)
{
    ptrdiff_t k = t - s->tasks;
    if (!TT_CHECK(k >= 0 && (uint64_t)k < s->n,
                  "%s took a task that was never pushed (%p); seed %" PRIu64,
                  who, (void *)t, s->seed))
        return;
    unsigned c = atomic_fetch_add(&s->seen[k], 1);
    TT_CHECK(c == 0, "%s took task %td a second time; seed %" PRIu64, who, k,
             s->seed);
    atomic_fetch_add(&s->n_out, 1);
}

static void *thief_main(void *arg)
{
    struct thief *th = arg;
    struct stress *s = th->s;
    struct tt_rng rng = {.s = s->seed ^ (0x5bd1e995u * (th->id + 1))};
    atomic_fetch_add(&s->started, 1);
    while (!atomic_load(&s->go))
        tel__cpu_relax();
    for (;;) {
        bool done = atomic_load(&s->owner_done);
        struct task *t = tel__runq_steal(&s->victim, &th->mine);
        if (t == NULL) {
            if (done && tel__runq_len(&s->victim) == 0)
                break;
            if (tt_rng_below(&rng, 64) == 0)
                sched_yield();
            continue;
        }
        th->steals++;
        uint32_t batch = 1 + tel__runq_len(&th->mine);
        atomic_fetch_add(&s->n_stolen, batch);
        take(s, t, "thief (run)");
        /* The queued rest must come out oldest first (the owner pushes
         * tasks in index order). */
        ptrdiff_t prev = -1;
        while ((t = tel__runq_pop(&th->mine)) != NULL) {
            ptrdiff_t k = t - s->tasks;
            TT_CHECK(k > prev,
                     "thief %u: stolen batch not oldest first (%td after "
                     "%td); seed %" PRIu64,
                     th->id, k, prev, s->seed);
            prev = k;
            take(s, t, "thief (queued)");
        }
    }
    return NULL;
}

static void run_stress(unsigned n_thieves)
{
    struct stress *s = aligned_alloc(TEL_CACHELINE, sizeof *s);
    cr_assert_not_null(s);
    memset(s, 0, sizeof *s);
    s->seed = tel_test_seed();
    s->n = (uint32_t)tel_test_scaled(200000, 20000);
    s->tasks = calloc(s->n, sizeof(struct task));
    s->seen = calloc(s->n, sizeof(atomic_uint));
    cr_assert_not_null(s->tasks);
    cr_assert_not_null(s->seen);
    tel__runq_init(&s->victim);

    struct thief *th = aligned_alloc(TEL_CACHELINE, 2 * sizeof *th);
    cr_assert_not_null(th);
    pthread_t tid[2];
    for (unsigned i = 0; i < n_thieves; i++) {
        memset(&th[i], 0, sizeof th[i]);
        th[i].s = s;
        th[i].id = i;
        tel__runq_init(&th[i].mine);
        cr_assert_eq(pthread_create(&tid[i], NULL, thief_main, &th[i]), 0);
    }

    /* The owner: this thread. Push every task in order; pop at a random
     * rate; when the ring is full, pop one or move half out (as the
     * scheduler does to the global queue). Owner pops must come out in
     * increasing order: steals only ever take from the old end. */
    struct tt_rng rng = {.s = s->seed};
    while (atomic_load(&s->started) < n_thieves)
        sched_yield();
    atomic_store(&s->go, true);
    struct task *half[RUNQ_CAP / 2];
    int64_t last_pop = -1;
    uint32_t full = 0, grabs = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        while (!tel__runq_push(&s->victim, &s->tasks[i])) {
            full++;
            if (tt_rng_below(&rng, 2)) {
                uint32_t n = tel__runq_grab_half(&s->victim, half);
                grabs++;
                for (uint32_t k = 0; k < n; k++) {
                    int64_t x = half[k] - s->tasks;
                    TT_CHECK(x > last_pop, "grab_half out of order (%" PRId64
                             " after %" PRId64 "); seed %" PRIu64,
                             x, last_pop, s->seed);
                    last_pop = x;
                    take(s, half[k], "owner (grab_half)");
                }
            } else {
                struct task *t = tel__runq_pop(&s->victim);
                if (t) {
                    int64_t x = t - s->tasks;
                    TT_CHECK(x > last_pop, "pop out of order; seed %" PRIu64,
                             s->seed);
                    last_pop = x;
                    take(s, t, "owner (pop)");
                }
            }
        }
        /* "Run" something for a moment, so thieves find work. */
        for (uint64_t k = tt_rng_below(&rng, 64); k > 0; k--)
            tel__cpu_relax();
        uint64_t r = tt_rng_below(&rng, 8);
        for (uint64_t k = 0; k < (r < 5 ? 0 : r - 4); k++) { /* 0..3 pops */
            struct task *t = tel__runq_pop(&s->victim);
            if (!t)
                break;
            int64_t x = t - s->tasks;
            TT_CHECK(x > last_pop,
                     "owner pop out of order (%" PRId64 " after %" PRId64
                     "); seed %" PRIu64, x, last_pop, s->seed);
            last_pop = x;
            take(s, t, "owner (pop)");
        }
        /* Now and then let the ring fill up. */
        if ((i & 4095) == 0 && tt_rng_below(&rng, 4) == 0) {
            /* Only the owner pushes, so below RUNQ_CAP a push succeeds. */
            while (tel__runq_len(&s->victim) < RUNQ_CAP && i + 1 < s->n) {
                i++;
                TT_CHECK(tel__runq_push(&s->victim, &s->tasks[i]),
                         "push below RUNQ_CAP failed; seed %" PRIu64,
                         s->seed);
            }
        }
    }
    /* Drain what the thieves left. */
    struct task *t;
    while ((t = tel__runq_pop(&s->victim)) != NULL) {
        int64_t x = t - s->tasks;
        TT_CHECK(x > last_pop, "owner drain out of order; seed %" PRIu64,
                 s->seed);
        last_pop = x;
        take(s, t, "owner (drain)");
    }
    atomic_store(&s->owner_done, true);
    for (unsigned i = 0; i < n_thieves; i++)
        cr_assert_eq(pthread_join(tid[i], NULL), 0);

    TT_ASSERT_NO_FAILURES();
    uint32_t missing = 0, first_missing = UINT32_MAX;
    for (uint32_t i = 0; i < s->n; i++) {
        if (atomic_load(&s->seen[i]) != 1) {
            missing++;
            if (first_missing == UINT32_MAX)
                first_missing = i;
        }
    }
    cr_assert_eq(missing, 0,
                 "%u task(s) not seen exactly once (first: task %u, seen %u "
                 "times); seed %" PRIu64,
                 missing, first_missing,
                 first_missing == UINT32_MAX
                     ? 0
                     : atomic_load(&s->seen[first_missing]),
                 s->seed);
    cr_assert_eq(atomic_load(&s->n_out), s->n, "seed %" PRIu64, s->seed);
    uint32_t steals = 0;
    for (unsigned i = 0; i < n_thieves; i++)
        steals += th[i].steals;
    cr_log_info("runq stress: %u tasks, %u thieves, %u steals (%u tasks), "
                "%u full pushes, %u grabs",
                s->n, n_thieves, steals, atomic_load(&s->n_stolen), full,
                grabs);
    free(s->tasks);
    free(s->seen);
    free(s);
    free(th);
}

Test(runq, an_owner_and_one_thief_see_every_task_exactly_once, .timeout = 60)
{
    run_stress(1);
}

Test(runq, an_owner_and_two_thieves_see_every_task_exactly_once,
     .timeout = 60)
{
    run_stress(2);
}
