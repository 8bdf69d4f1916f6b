/*
 * alloc/mpsc.h: an intrusive multi-producer single-consumer FIFO queue.
 * Header only; used by mailboxes (core/) and injection queues (sched/).
 *
 * The algorithm is Dmitry Vyukov's intrusive MPSC queue: a producer swaps
 * itself in as the newest node with one atomic exchange and then links the
 * previous newest to itself; the consumer walks from the oldest node. A stub
 * node keeps the list non-empty so neither side needs a lock.
 *
 * Invariants:
 *   - `in` is the newest node (producers' end); `out` is the oldest node not
 *     yet taken, or the stub.
 *   - Between a producer's exchange and its link store the queue is
 *     "inconsistent": the consumer sees `out->next == NULL` although `in` is
 *     newer. tel__mpsc_pop then returns NULL and tel__mpsc_nonempty returns
 *     true; the consumer tries again later (it never spins here).
 *
 * Concurrency:
 *   - push: any thread, wait-free (one exchange, seq_cst). Mailboxes use
 *     push_wake/park/unpark (below): the consumer parks on the queue itself.
 *   - pop, nonempty: the single consumer only.
 */
#ifndef TEL_ALLOC_MPSC_H
#define TEL_ALLOC_MPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc/base.h"

struct tel__mpsc_node {
    _Atomic(struct tel__mpsc_node *) next;
};

struct tel__mpsc {
    _Atomic(struct tel__mpsc_node *) in; /* producers */
    struct tel__mpsc_node *out;          /* consumer */
    struct tel__mpsc_node stub;
};

static inline void tel__mpsc_init(struct tel__mpsc *q)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&q->in, &q->stub, memory_order_relaxed);
    q->out = &q->stub;
}

/* Any thread. Release: pairs with the acquire loads in tel__mpsc_pop. */
static inline void tel__mpsc_push(struct tel__mpsc *q, struct tel__mpsc_node *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    struct tel__mpsc_node *prev =
        atomic_exchange_explicit(&q->in, n, memory_order_seq_cst);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/*
 * Parking the consumer on the queue itself (mailboxes). A consumer that
 * found the queue truly empty (tel__mpsc_nonempty false) may be marked
 * parked by a CAS of `in` from the stub to the stub's address with the low
 * bit set. The next push's exchange returns that mark: that producer, and
 * no one else, has made the queue non-empty under a parked consumer, so it
 * alone must wake it (no second atomic on the consumer's state is needed).
 * Something else that wakes the consumer (its receive timer, or a producer
 * that hands its node over some other way: core/mailbox.c) takes the mark
 * back with tel__mpsc_unpark, which fails once a push has come first; the
 * queue is then empty and unparked again, and the winner wakes it.
 * While the consumer runs, `in` never holds the mark, so pop and nonempty
 * are unchanged.
 */
static inline struct tel__mpsc_node *tel__mpsc_mark(struct tel__mpsc *q)
{
    return (struct tel__mpsc_node *)((uintptr_t)&q->stub | 1u);
}

/*
 * Any thread: push the chain first..last (linked by next; last->next may
 * be anything) with one exchange; true if this push must wake the parked
 * consumer. behind (if not NULL): whether nodes the consumer has not taken
 * were queued before it (the exchange returned one of them, not the stub).
 */
static inline bool tel__mpsc_push_chain_wake(struct tel__mpsc *q,
                                             struct tel__mpsc_node *first,
                                             struct tel__mpsc_node *last,
                                             bool *behind)
{
    atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
    struct tel__mpsc_node *prev =
        atomic_exchange_explicit(&q->in, last, memory_order_seq_cst);
    if (TEL_UNLIKELY((uintptr_t)prev & 1u)) {
        atomic_store_explicit(&q->stub.next, first, memory_order_release);
        return true;
    }
    atomic_store_explicit(&prev->next, first, memory_order_release);
    if (behind)
        *behind = prev != &q->stub;
    return false;
}

/* Any thread: push n; true if this push must wake the parked consumer. */
static inline bool tel__mpsc_push_wake(struct tel__mpsc *q,
                                       struct tel__mpsc_node *n)
{
    return tel__mpsc_push_chain_wake(q, n, n, NULL);
}

/* For the consumer (which no longer runs): mark it parked. False if a node
 * was pushed since it found the queue truly empty. */
static inline bool tel__mpsc_park(struct tel__mpsc *q)
{
    struct tel__mpsc_node *want = &q->stub;
    return atomic_compare_exchange_strong_explicit(
        &q->in, &want, tel__mpsc_mark(q), memory_order_seq_cst,
        memory_order_seq_cst);
}

/* Any thread: take the park mark back (so the caller wakes the consumer);
 * false if a push took it first (that producer wakes it) or there is none. */
static inline bool tel__mpsc_unpark(struct tel__mpsc *q)
{
    struct tel__mpsc_node *want = tel__mpsc_mark(q);
    return atomic_compare_exchange_strong_explicit(
        &q->in, &want, &q->stub, memory_order_seq_cst, memory_order_seq_cst);
}

/* Any thread: no producer has exchanged since the queue was last truly
 * empty and unparked (a relaxed load of `in`: it is the stub). Meaningful
 * only to whoever holds the consumer's wake while the consumer waits (a
 * lazy park, core/mailbox.c): then nothing older than a node it hands
 * over some other way can be in the queue. */
static inline bool tel__mpsc_idle_hint(struct tel__mpsc *q)
{
    return atomic_load_explicit(&q->in, memory_order_relaxed) == &q->stub;
}

/* Consumer only. The oldest node, or NULL if empty or inconsistent. */
static inline struct tel__mpsc_node *tel__mpsc_pop(struct tel__mpsc *q)
{
    struct tel__mpsc_node *out = q->out;
    struct tel__mpsc_node *next =
        atomic_load_explicit(&out->next, memory_order_acquire);
    if (out == &q->stub) {
        if (next == NULL)
            return NULL;
        q->out = out = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->out = next;
        return out;
    }
    if (out != atomic_load_explicit(&q->in, memory_order_acquire))
        return NULL; /* a producer is between its exchange and its link */
    tel__mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&out->next, memory_order_acquire);
    if (next) {
        q->out = next;
        return out;
    }
    return NULL;
}

/*
 * Consumer only: whether a node is queued or on its way (true while a
 * producer is mid-push). Both ends are needed: after a pop that returned
 * NULL on its stub path, `in` can be the stub while nodes still wait behind
 * `out` (a producer had swapped itself in but not linked yet).
 */
static inline bool tel__mpsc_nonempty(struct tel__mpsc *q)
{
    return q->out != &q->stub ||
           atomic_load_explicit(&q->in, memory_order_seq_cst) != &q->stub;
}

/*
 * Any thread: a hint that a node was pushed and not all were taken yet
 * (`in` is not the stub). It can say empty while nodes still wait behind
 * the consumer's end; only the consumer may know (tel__mpsc_nonempty).
 */
static inline bool tel__mpsc_hint_nonempty(struct tel__mpsc *q)
{
    return atomic_load_explicit(&q->in, memory_order_relaxed) != &q->stub;
}

#endif /* TEL_ALLOC_MPSC_H */
