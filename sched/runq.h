/*
 * sched/runq.h: the run queue each scheduler owns (a bounded FIFO ring).
 */
#ifndef TEL_SCHED_RUNQ_H
#define TEL_SCHED_RUNQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/base.h"

struct task;

#define RUNQ_CAP 256u /* a power of two */

struct runq {
    /* Consumers (owner and thieves) move head with CAS. */
    _Atomic uint32_t head TEL_ALIGNED_CL;
    /* Only the owner writes tail (release); thieves read it (acquire). */
    _Atomic uint32_t tail TEL_ALIGNED_CL;
    _Atomic(struct task *) buf[RUNQ_CAP];
};

void tel__runq_init(struct runq *q);

/*
 * Owner only: append t. Returns false when the ring is full; the caller then
 * moves half of it elsewhere (tel__runq_grab_half) and retries.
 */
bool tel__runq_push(struct runq *q, struct task *t);

/* Owner only: the oldest task, or NULL. */
struct task *tel__runq_pop(struct runq *q);

/*
 * Owner only: take the older half of the ring into out (at most
 * RUNQ_CAP / 2 tasks), oldest first; returns how many.
 */
uint32_t tel__runq_grab_half(struct runq *q, struct task **out);

/*
 * Any other scheduler (the owner of `into`): steal the older half of
 * victim's ring. One task is returned to run now; the rest are appended to
 * `into`, which must be empty. NULL when there was nothing to take.
 */
struct task *tel__runq_steal(struct runq *victim, struct runq *into);

/*
 * Any thread but the owner (the watchdog, for a scheduler stuck in one
 * task): take every task of victim's ring into out (RUNQ_CAP entries),
 * oldest first; returns how many. One CAS on head, as a steal.
 */
uint32_t tel__runq_take_all(struct runq *victim, struct task **out);

/* Any thread: how many tasks are queued (a snapshot). */
static inline uint32_t tel__runq_len(struct runq *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    return t - h;
}

#endif /* TEL_SCHED_RUNQ_H */
