/*
 * sched/runq.c: the run queue each scheduler owns.
 *
 * Owns: a ring of RUNQ_CAP task pointers with a head (oldest) and a tail
 * (next free slot), both free-running 32-bit counters.
 *
 * Invariants:
 *   - 0 <= tail - head <= RUNQ_CAP.
 *   - A task sits in at most one queue, and only while it is TASK_RUNNABLE.
 *   - Slots in [head, tail) are never overwritten: the owner writes only at
 *     tail, and only when tail - head < RUNQ_CAP.
 *
 * Why a FIFO ring and not a Chase-Lev deque: Chase-Lev lets the owner pop
 * without a CAS, but only from the LIFO end, and LIFO breaks round-robin:
 * a preempted process must go behind the others. Here the owner pushes with
 * a plain release store (no read-modify-write) and pops with one CAS on a
 * line it owns, uncontended unless a thief is active. The hottest hand-off
 * (a process woken by a message on this scheduler) never touches the ring
 * at all: it goes to the scheduler's private next slot (scheduler.c).
 *
 * Concurrency:
 *   - push: owner only. Release store of tail; pairs with the acquire loads
 *     of tail in pop, steal and tel__runq_len.
 *   - pop, grab_half: owner only; CAS on head (release on success, so a
 *     thief's later read of the slot cannot see a newer write).
 *   - steal: any other scheduler. Reads the slots, then claims them with one
 *     CAS on head; if the CAS fails the copies are discarded and it retries.
 *     Slots are atomics (relaxed) because a failed thief may read a slot the
 *     owner is rewriting; it never uses such a value.
 *
 * Not here: choosing a victim (scheduler.c), going to sleep (park.c).
 */
#include "sched/runq.h"

#include "sched/task.h"

void tel__runq_init(struct runq *q)
{
    atomic_store_explicit(&q->head, 0, memory_order_relaxed);
    atomic_store_explicit(&q->tail, 0, memory_order_relaxed);
    for (uint32_t i = 0; i < RUNQ_CAP; i++)
        atomic_store_explicit(&q->buf[i], NULL, memory_order_relaxed);
}

bool tel__runq_push(struct runq *q, struct task *t)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (tl - h >= RUNQ_CAP)
        return false;
    atomic_store_explicit(&q->buf[tl & (RUNQ_CAP - 1)], t,
                          memory_order_relaxed);
    atomic_store_explicit(&q->tail, tl + 1, memory_order_release);
    return true;
}

struct task *tel__runq_pop(struct runq *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    for (;;) {
        uint32_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (h == tl)
            return NULL;
        struct task *t = atomic_load_explicit(&q->buf[h & (RUNQ_CAP - 1)],
                                              memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1,
                                                  memory_order_release,
                                                  memory_order_acquire))
            return t;
    }
}

uint32_t tel__runq_grab_half(struct runq *q, struct task **out)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    for (;;) {
        uint32_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed);
        uint32_t n = (tl - h) / 2;
        if (n == 0)
            return 0;
        for (uint32_t i = 0; i < n; i++)
            out[i] = atomic_load_explicit(&q->buf[(h + i) & (RUNQ_CAP - 1)],
                                          memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + n,
                                                  memory_order_release,
                                                  memory_order_acquire))
            return n;
    }
}

struct task *tel__runq_steal(struct runq *victim, struct runq *into)
{
    uint32_t it = atomic_load_explicit(&into->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&victim->head, memory_order_acquire);
    for (;;) {
        uint32_t tl = atomic_load_explicit(&victim->tail, memory_order_acquire);
        uint32_t n = tl - h;
        n -= n / 2;
        if (n == 0)
            return NULL;
        if (n > RUNQ_CAP / 2) { /* read head and tail at different times */
            h = atomic_load_explicit(&victim->head, memory_order_acquire);
            continue;
        }
        for (uint32_t i = 0; i < n; i++) {
            struct task *t = atomic_load_explicit(
                &victim->buf[(h + i) & (RUNQ_CAP - 1)], memory_order_relaxed);
            atomic_store_explicit(&into->buf[(it + i) & (RUNQ_CAP - 1)], t,
                                  memory_order_relaxed);
        }
        if (atomic_compare_exchange_weak_explicit(&victim->head, &h, h + n,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            /* Run the newest one now; publish the rest in order. */
            struct task *run = atomic_load_explicit(
                &into->buf[(it + n - 1) & (RUNQ_CAP - 1)],
                memory_order_relaxed);
            if (n > 1)
                atomic_store_explicit(&into->tail, it + n - 1,
                                      memory_order_release);
            return run;
        }
    }
}

uint32_t tel__runq_take_all(struct runq *victim, struct task **out)
{
    uint32_t h = atomic_load_explicit(&victim->head, memory_order_acquire);
    for (;;) {
        uint32_t tl = atomic_load_explicit(&victim->tail, memory_order_acquire);
        uint32_t n = tl - h;
        if (n == 0)
            return 0;
        if (n > RUNQ_CAP) { /* read head and tail at different times */
            h = atomic_load_explicit(&victim->head, memory_order_acquire);
            continue;
        }
        for (uint32_t i = 0; i < n; i++)
            out[i] = atomic_load_explicit(&victim->buf[(h + i) & (RUNQ_CAP - 1)],
                                          memory_order_relaxed);
        /* acq_rel: as a steal's (pairs with the owner's release of tail,
         * and with other consumers' CAS on head). */
        if (atomic_compare_exchange_weak_explicit(&victim->head, &h, h + n,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            return n;
    }
}
