/*
 * alloc/lock.h: a small spinlock for critical sections of a few dozen
 * instructions (timer wheels, the global run queue). Longer or blocking
 * sections use pthread mutexes.
 *
 * Lock ranks (take in this order only; never hold two of one rank):
 *   1. the global run queue lock (sched/scheduler.c)
 *   2. a timer wheel lock (sched/timerwheel.c)
 *   3. the stack pool and pid free-list mutexes, the shared block pool's
 *      spinlock (alloc/pool.c; taken only to allocate) (leaves)
 */
#ifndef TEL_ALLOC_LOCK_H
#define TEL_ALLOC_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>

#include "alloc/base.h"

typedef struct {
    _Atomic bool held;
} tel__spin_t;

static inline void tel__spin_init(tel__spin_t *l)
{
    atomic_store_explicit(&l->held, false, memory_order_relaxed);
}

static inline void tel__spin_lock(tel__spin_t *l)
{
    for (;;) {
        if (!atomic_exchange_explicit(&l->held, true, memory_order_acquire))
            return;
        while (atomic_load_explicit(&l->held, memory_order_relaxed))
            tel__cpu_relax();
    }
}

static inline void tel__spin_unlock(tel__spin_t *l)
{
    atomic_store_explicit(&l->held, false, memory_order_release);
}

#endif /* TEL_ALLOC_LOCK_H */
