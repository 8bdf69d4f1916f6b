/*
 * alloc/lock.h: a small spinlock for critical sections of a few dozen
 * instructions (timer wheels, the global run queue), and wrappers for the
 * pthread mutexes of longer or blocking sections.
 *
 * Lock ranks (take in this order only; never hold two of one rank):
 *   1. the global run queue lock, or one scheduler's priority-queue lock
 *      (sched/scheduler.c; never both)
 *   2. a timer wheel lock (sched/timerwheel.c)
 *   3. the stack pool and pid free-list mutexes, the stack-class creation
 *      mutex (alloc/stack.c), the blocking pool's mutex (core/blocking.c),
 *      the registry's mutex
 *      (core/registry.c), the shared block pool's spinlock (alloc/pool.c;
 *      taken only to allocate), the watchdog's record spinlock
 *      (sched/sysmon.c) (leaves)
 *
 * Every wrapper counts the runtime locks the calling thread holds
 * (tel__locks_held; one thread-local increment and decrement). The fault
 * handler (sched/fault.c) reads it: a process that faults while its thread
 * holds one of these locks cannot be ended alone, since the lock would
 * stay held, so that fault ends the program.
 */
#ifndef TEL_ALLOC_LOCK_H
#define TEL_ALLOC_LOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "alloc/base.h"

/* Runtime locks the calling thread holds now (defined in alloc/lock.c). */
extern __thread unsigned tel__locks_held
    __attribute__((tls_model("initial-exec")));

/* Counted before the lock is taken and after it is let go; the signal
 * fences keep the compiler from moving the critical section outside the
 * count (they emit no instruction). */
static inline void tel__lock_count_in(void)
{
    tel__locks_held++;
    atomic_signal_fence(memory_order_seq_cst);
}

static inline void tel__lock_count_out(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    tel__locks_held--;
}

typedef struct {
    _Atomic bool held;
} tel__spin_t;

static inline void tel__spin_init(tel__spin_t *l)
{
    atomic_store_explicit(&l->held, false, memory_order_relaxed);
}

static inline void tel__spin_lock(tel__spin_t *l)
{
    tel__lock_count_in();
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
    tel__lock_count_out();
}

/* A runtime pthread mutex, counted like the spinlock. */
static inline void tel__mutex_lock(pthread_mutex_t *m)
{
    tel__lock_count_in();
    pthread_mutex_lock(m);
}

static inline void tel__mutex_unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
    tel__lock_count_out();
}

#endif /* TEL_ALLOC_LOCK_H */
