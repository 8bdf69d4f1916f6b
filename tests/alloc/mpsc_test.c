/*
 * tests/alloc/mpsc_test.c: white-box tests of alloc/mpsc.h, the intrusive
 * Vyukov multi-producer single-consumer queue.
 *
 * Single-threaded: FIFO order, an empty pop, tel__mpsc_nonempty, the stub
 * being re-pushed when the queue drains to one node. Threaded: several
 * producers push concurrently while one consumer pops; nothing is lost,
 * nothing is duplicated and each producer's nodes come out in its order;
 * and a consumer whose pop came back empty is never told "empty" by
 * tel__mpsc_nonempty while a completed push is still unpopped (the parking
 * check). That last test takes TEL_TEST_SEED and names it on failure.
 */
#include "common.h"

#include <sched.h>

#include "alloc/mpsc.h"

struct item {
    struct tel__mpsc_node node;
    uint32_t producer;
    uint32_t seq;
};

static struct item *item_of(struct tel__mpsc_node *n)
{
    return tel_container_of(n, struct item, node);
}

/* ------------------------------------------------------------------ */
/* Single-threaded                                                     */
/* ------------------------------------------------------------------ */

Test(mpsc, pop_on_a_fresh_queue_returns_null)
{
    struct tel__mpsc q;
    tel__mpsc_init(&q);
    cr_assert_null(tel__mpsc_pop(&q));
    cr_assert_null(tel__mpsc_pop(&q), "a second empty pop is also NULL");
}

Test(mpsc, pops_in_push_order)
{
    enum { N = 1000 };
    static struct item items[N];
    struct tel__mpsc q;
    tel__mpsc_init(&q);
    for (uint32_t i = 0; i < N; i++) {
        items[i].seq = i;
        tel__mpsc_push(&q, &items[i].node);
    }
    for (uint32_t i = 0; i < N; i++) {
        struct tel__mpsc_node *n = tel__mpsc_pop(&q);
        cr_assert_not_null(n, "pop %u of %u returned NULL", i, N);
        cr_assert_eq(item_of(n)->seq, i, "pop %u returned item %u", i,
                     item_of(n)->seq);
    }
    cr_assert_null(tel__mpsc_pop(&q), "queue not empty after %u pops", N);
}

Test(mpsc, a_single_node_can_be_popped_and_the_queue_reused)
{
    /* One node: the pop must re-push the stub to take it (the last node is
     * never taken while it is `in`). Then the queue works again. */
    struct item a = {.seq = 1}, b = {.seq = 2}, c = {.seq = 3};
    struct tel__mpsc q;
    tel__mpsc_init(&q);

    for (int round = 0; round < 3; round++) {
        tel__mpsc_push(&q, &a.node);
        cr_assert_eq(tel__mpsc_pop(&q), &a.node, "round %d", round);
        cr_assert_null(tel__mpsc_pop(&q), "round %d", round);
    }
    tel__mpsc_push(&q, &b.node);
    tel__mpsc_push(&q, &c.node);
    cr_assert_eq(tel__mpsc_pop(&q), &b.node);
    tel__mpsc_push(&q, &a.node);
    cr_assert_eq(tel__mpsc_pop(&q), &c.node);
    cr_assert_eq(tel__mpsc_pop(&q), &a.node);
    cr_assert_null(tel__mpsc_pop(&q));
}

Test(mpsc, interleaved_pushes_and_pops_keep_fifo_order)
{
    enum { N = 4096 };
    static struct item items[N];
    struct tel__mpsc q;
    tel__mpsc_init(&q);
    uint32_t pushed = 0, popped = 0;
    /* Push 3, pop 2, repeatedly, then drain: exercises the stub hand-off
     * at many queue lengths. */
    while (pushed < N) {
        for (int k = 0; k < 3 && pushed < N; k++) {
            items[pushed].seq = pushed;
            tel__mpsc_push(&q, &items[pushed].node);
            pushed++;
        }
        for (int k = 0; k < 2; k++) {
            struct tel__mpsc_node *n = tel__mpsc_pop(&q);
            cr_assert_not_null(n, "pop %u returned NULL with %u pushed",
                               popped, pushed);
            cr_assert_eq(item_of(n)->seq, popped);
            popped++;
        }
    }
    while (popped < N) {
        struct tel__mpsc_node *n = tel__mpsc_pop(&q);
        cr_assert_not_null(n, "drain pop %u returned NULL", popped);
        cr_assert_eq(item_of(n)->seq, popped);
        popped++;
    }
    cr_assert_null(tel__mpsc_pop(&q));
}

Test(mpsc, nonempty_is_false_on_a_fresh_queue)
{
    struct tel__mpsc q;
    tel__mpsc_init(&q);
    cr_assert_not(tel__mpsc_nonempty(&q));
}

Test(mpsc, nonempty_is_true_while_nodes_are_queued)
{
    struct item a = {.seq = 0}, b = {.seq = 1};
    struct tel__mpsc q;
    tel__mpsc_init(&q);

    tel__mpsc_push(&q, &a.node);
    cr_assert(tel__mpsc_nonempty(&q), "one node queued");
    tel__mpsc_push(&q, &b.node);
    cr_assert(tel__mpsc_nonempty(&q), "two nodes queued");
    cr_assert_eq(tel__mpsc_pop(&q), &a.node);
    cr_assert(tel__mpsc_nonempty(&q), "one node left");
    cr_assert_eq(tel__mpsc_pop(&q), &b.node);
}

Test(mpsc, nonempty_is_false_after_the_queue_is_drained)
{
    struct item items[5];
    struct tel__mpsc q;
    tel__mpsc_init(&q);

    for (int round = 1; round <= 5; round++) {
        for (int i = 0; i < round; i++)
            tel__mpsc_push(&q, &items[i].node);
        for (int i = 0; i < round; i++)
            cr_assert_eq(tel__mpsc_pop(&q), &items[i].node, "round %d", round);
        cr_assert_not(tel__mpsc_nonempty(&q),
                      "nonempty after draining %d node(s)", round);
        cr_assert_null(tel__mpsc_pop(&q));
        cr_assert_not(tel__mpsc_nonempty(&q),
                      "nonempty after an empty pop (round %d)", round);
    }
}

Test(mpsc, nonempty_is_true_while_a_push_is_half_done)
{
    /*
     * Reproduce a producer stopped between its exchange and its link
     * store, by doing the exchange by hand: pop must return NULL (it never
     * spins) and nonempty must be true, so a parker does not sleep on a
     * message that is on its way. Finishing the link makes it poppable.
     */
    struct item a = {.seq = 0}, b = {.seq = 1};
    struct tel__mpsc q;
    tel__mpsc_init(&q);

    /* Half push onto the empty queue. */
    atomic_store(&a.node.next, NULL);
    struct tel__mpsc_node *prev = atomic_exchange(&q.in, &a.node);
    cr_assert(tel__mpsc_nonempty(&q), "empty queue with a push in flight");
    cr_assert_null(tel__mpsc_pop(&q), "pop saw a half-linked node");
    atomic_store(&prev->next, &a.node);
    cr_assert_eq(tel__mpsc_pop(&q), &a.node);
    cr_assert_not(tel__mpsc_nonempty(&q));

    /* Half push behind a queued node: the queued node is the last linked
     * one but not `in`, so pop must wait for the link before taking it. */
    tel__mpsc_push(&q, &a.node);
    atomic_store(&b.node.next, NULL);
    prev = atomic_exchange(&q.in, &b.node);
    cr_assert(tel__mpsc_nonempty(&q));
    cr_assert_null(tel__mpsc_pop(&q), "pop took a node whose successor is "
                                      "not linked yet");
    cr_assert(tel__mpsc_nonempty(&q), "nonempty after the NULL pop");
    atomic_store(&prev->next, &b.node);
    cr_assert_eq(tel__mpsc_pop(&q), &a.node, "a lost after the link completed");
    cr_assert_eq(tel__mpsc_pop(&q), &b.node);
    cr_assert_null(tel__mpsc_pop(&q));
    cr_assert_not(tel__mpsc_nonempty(&q));
}

/* ------------------------------------------------------------------ */
/* Multi-producer stress                                               */
/* ------------------------------------------------------------------ */

#define STRESS_PRODUCERS 4u

struct producer {
    struct tel__mpsc *q;
    struct item *items;
    uint32_t id, n;
    atomic_bool *go;
};

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    while (!atomic_load_explicit(p->go, memory_order_acquire))
        tel__cpu_relax();
    for (uint32_t i = 0; i < p->n; i++)
        tel__mpsc_push(p->q, &p->items[i].node);
    return NULL;
}

Test(mpsc, concurrent_producers_lose_nothing_and_keep_their_order,
     .timeout = 60)
{
    const uint32_t per = (uint32_t)tel_test_scaled(100000, 5000);
    const uint32_t total = per * STRESS_PRODUCERS;
    struct tel__mpsc q;
    tel__mpsc_init(&q);
    atomic_bool go = false;

    struct producer prods[STRESS_PRODUCERS];
    pthread_t th[STRESS_PRODUCERS];
    for (uint32_t p = 0; p < STRESS_PRODUCERS; p++) {
        prods[p] = (struct producer){.q = &q, .id = p, .n = per, .go = &go};
        prods[p].items = calloc(per, sizeof(struct item));
        cr_assert_not_null(prods[p].items);
        for (uint32_t i = 0; i < per; i++) {
            prods[p].items[i].producer = p;
            prods[p].items[i].seq = i;
        }
        cr_assert_eq(pthread_create(&th[p], NULL, producer_main, &prods[p]),
                     0);
    }
    atomic_store_explicit(&go, true, memory_order_release);

    uint32_t next[STRESS_PRODUCERS] = {0};
    uint32_t got = 0;
    uint64_t empty_pops = 0;
    while (got < total) {
        struct tel__mpsc_node *n = tel__mpsc_pop(&q);
        if (n == NULL) {
            empty_pops++;
            if ((empty_pops & 1023) == 0)
                sched_yield(); /* two cores: let a stalled producer link */
            else
                tel__cpu_relax();
            continue;
        }
        struct item *it = item_of(n);
        cr_assert_lt(it->producer, STRESS_PRODUCERS, "corrupt node");
        cr_assert_eq(it->seq, next[it->producer],
                     "producer %u: got seq %u, expected %u (after %u pops)",
                     it->producer, it->seq, next[it->producer], got);
        next[it->producer]++;
        got++;
    }
    for (uint32_t p = 0; p < STRESS_PRODUCERS; p++)
        cr_assert_eq(pthread_join(th[p], NULL), 0);

    cr_assert_null(tel__mpsc_pop(&q), "extra node after %u pops", total);
    cr_assert_not(tel__mpsc_nonempty(&q), "nonempty after all producers "
                                          "finished and the queue drained");
    for (uint32_t p = 0; p < STRESS_PRODUCERS; p++) {
        cr_assert_eq(next[p], per, "producer %u: %u of %u delivered", p,
                     next[p], per);
        free(prods[p].items);
    }
}

/*
 * The parking check: a consumer whose pop returned NULL asks
 * tel__mpsc_nonempty before it sleeps. If a push has completed (exchange
 * and link) and its node has not been popped, the answer must be true, or
 * the consumer sleeps with a message in its queue and nobody wakes it.
 *
 * One producer, pushing one node at a time with short random pauses, keeps
 * the queue at length 0 or 1, so pop often takes the path that re-pushes
 * the stub while a producer may be mid-push.
 */
struct paced_producer {
    struct tel__mpsc *q;
    struct item *items;
    uint32_t n;
    uint64_t seed;
    atomic_uint completed; /* pushes finished (exchange and link) */
};

static void *paced_producer_main(void *arg)
{
    struct paced_producer *p = arg;
    struct tt_rng rng = {.s = p->seed};
    for (uint32_t i = 0; i < p->n; i++) {
        tel__mpsc_push(p->q, &p->items[i].node);
        atomic_fetch_add(&p->completed, 1);
        uint64_t r = tt_rng_next(&rng);
        for (uint64_t k = (r & 1) ? 0 : (r >> 8) % 32; k > 0; k--)
            tel__cpu_relax();
    }
    return NULL;
}

/* One round: returns how many times nonempty was wrongly false. */
static uint64_t paced_round(uint64_t seed, uint32_t n, uint32_t *bad_done,
                            uint32_t *bad_popped)
{
    struct tel__mpsc q;
    tel__mpsc_init(&q);
    struct paced_producer p = {.q = &q, .seed = seed, .n = n};
    p.items = calloc(n, sizeof(struct item));
    cr_assert_not_null(p.items);
    for (uint32_t i = 0; i < n; i++)
        p.items[i].seq = i;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, paced_producer_main, &p), 0);

    uint32_t popped = 0;
    uint64_t bad = 0, null_pops = 0;
    while (popped < n) {
        struct tel__mpsc_node *node = tel__mpsc_pop(&q);
        if (node) {
            if (item_of(node)->seq != popped)
                cr_assert_fail("popped seq %u, want %u (seed %" PRIu64 ")",
                               item_of(node)->seq, popped, seed);
            popped++;
            continue;
        }
        null_pops++;
        /* Read the count first: those pushes were complete before the
         * nonempty call below. */
        uint32_t done = atomic_load(&p.completed);
        if (!tel__mpsc_nonempty(&q) && done > popped && bad++ == 0) {
            *bad_done = done;
            *bad_popped = popped;
        }
        if ((null_pops & 4095) == 0)
            sched_yield();
    }
    cr_assert_eq(pthread_join(th, NULL), 0);
    free(p.items);
    return bad;
}

Test(mpsc, nonempty_is_true_while_a_completed_push_is_unpopped,
     .timeout = 60)
{
    /* Several rounds, each with a new producer thread (a new placement on
     * the cores); stop at the first round that shows the fault. */
    const uint64_t seed = tel_test_seed();
    const uint32_t n = (uint32_t)tel_test_scaled(500000, 50000);
    for (int round = 0; round < 8; round++) {
        uint32_t bad_done = 0, bad_popped = 0;
        uint64_t bad = paced_round(seed + (uint64_t)round, n, &bad_done,
                                   &bad_popped);
        cr_assert_eq(bad, 0,
                     "tel__mpsc_nonempty returned false with completed "
                     "pushes unpopped, %" PRIu64 " time(s) in round %d; "
                     "first: %u pushes complete, %u popped (seed %" PRIu64
                     ")",
                     bad, round, bad_done, bad_popped, seed);
    }
}

/* ------------------------------------------------------------------------ */
/* Parking the consumer on the queue (mailboxes)                            */
/* ------------------------------------------------------------------------ */

Test(mpsc, a_consumer_parks_on_an_empty_queue_and_the_next_push_wakes_it)
{
    struct tel__mpsc q;
    tel__mpsc_init(&q);
    struct item a = {.seq = 1}, b = {.seq = 2};
    cr_assert(tel__mpsc_park(&q), "park on a fresh queue failed");
    cr_assert(tel__mpsc_push_wake(&q, &a.node), "first push did not wake");
    cr_assert_not(tel__mpsc_push_wake(&q, &b.node), "second push woke too");
    cr_assert_eq(item_of(tel__mpsc_pop(&q))->seq, 1);
    cr_assert_eq(item_of(tel__mpsc_pop(&q))->seq, 2);
    cr_assert_null(tel__mpsc_pop(&q));
    /* Drained (stub back in place): it can park again. */
    cr_assert(tel__mpsc_park(&q), "park after draining failed");
    cr_assert(tel__mpsc_unpark(&q), "unpark of an unwoken park failed");
    cr_assert_not(tel__mpsc_nonempty(&q));
}

Test(mpsc, park_fails_once_something_was_pushed)
{
    struct tel__mpsc q;
    tel__mpsc_init(&q);
    struct item a = {.seq = 1};
    cr_assert_not(tel__mpsc_push_wake(&q, &a.node), "no one was parked");
    cr_assert_not(tel__mpsc_park(&q), "parked over a queued node");
    cr_assert_eq(item_of(tel__mpsc_pop(&q))->seq, 1);
}

Test(mpsc, unpark_fails_after_a_push_took_the_park)
{
    struct tel__mpsc q;
    tel__mpsc_init(&q);
    struct item a = {.seq = 1};
    cr_assert(tel__mpsc_park(&q));
    cr_assert(tel__mpsc_push_wake(&q, &a.node));
    cr_assert_not(tel__mpsc_unpark(&q), "the timer took a park a push had");
    cr_assert_eq(item_of(tel__mpsc_pop(&q))->seq, 1);
    cr_assert_not(tel__mpsc_unpark(&q), "unpark with no park");
}

/*
 * Concurrent: producers push; the consumer drains, parks when truly empty
 * and then waits for the one producer whose push took the park to hand it
 * the wake (a flag). A lost wake-up hangs (the test times out); a double
 * one trips the check.
 */
#define PARK_PRODUCERS 3
#define PARK_ITEMS 20000

static struct tel__mpsc park_q;
static atomic_int park_woken; /* set by the producer that took the park */
static atomic_int park_wakes_given, park_double;

static void *park_producer(void *arg)
{
    struct item *items = arg;
    for (int i = 0; i < PARK_ITEMS; i++) {
        if (tel__mpsc_push_wake(&park_q, &items[i].node)) {
            atomic_fetch_add(&park_wakes_given, 1);
            if (atomic_exchange(&park_woken, 1) != 0)
                atomic_fetch_add(&park_double, 1);
        }
        if ((i & 63) == 0)
            sched_yield();
    }
    return NULL;
}

Test(mpsc, a_parked_consumer_is_woken_exactly_once_per_park, .timeout = 60)
{
    tel__mpsc_init(&park_q);
    static struct item items[PARK_PRODUCERS][PARK_ITEMS];
    pthread_t th[PARK_PRODUCERS];
    for (int p = 0; p < PARK_PRODUCERS; p++) {
        for (int i = 0; i < PARK_ITEMS; i++)
            items[p][i].seq = (uint32_t)i;
        cr_assert_eq(pthread_create(&th[p], NULL, park_producer, items[p]), 0);
    }
    int got = 0, parks = 0;
    while (got < PARK_PRODUCERS * PARK_ITEMS) {
        if (tel__mpsc_pop(&park_q)) {
            got++;
            continue;
        }
        if (tel__mpsc_nonempty(&park_q))
            continue; /* a producer is mid-push */
        if (!tel__mpsc_park(&park_q))
            continue; /* something came after all */
        parks++;
        while (!atomic_load(&park_woken))
            sched_yield();
        atomic_store(&park_woken, 0);
    }
    for (int p = 0; p < PARK_PRODUCERS; p++)
        pthread_join(th[p], NULL);
    cr_assert_eq(atomic_load(&park_double), 0, "a park was woken twice");
    cr_assert_eq(atomic_load(&park_wakes_given), parks,
                 "%d parks, %d wakes", parks, atomic_load(&park_wakes_given));
    cr_assert_null(tel__mpsc_pop(&park_q));
}
