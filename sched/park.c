/*
 * sched/park.c: spinning and parking; futex sleep; an idle runtime burns no
 * CPU.
 *
 * The problem. An idle scheduler must sleep (no CPU burnt), but work can
 * arrive for it at any moment from any thread: a process woken by a foreign
 * thread's message lands in the scheduler's injection queue, a timer comes
 * due. A wake-up that slips between "I looked and found nothing" and "I am
 * asleep" would strand that work until something else happens: the lost
 * wake-up.
 *
 * Rejected designs. (1) A mutex and condition variable per scheduler: every
 * waker would take the lock even when nobody sleeps. (2) Sleeping with a
 * short timeout and polling: burns CPU and adds latency. (3) Waking a
 * scheduler on every enqueue: a futex syscall on the hot path.
 *
 * The design. Each scheduler has a state word (AWAKE, SPINNING, PARKED) and
 * a futex sequence word. The sleeper: read seq, store state = PARKED
 * (seq_cst), re-check every source of work, then futex_wait(seq). The waker:
 * publish work with a seq_cst operation, then load state; if PARKED, CAS it
 * to AWAKE, bump seq and futex_wake. This is a Dekker pair: the sleeper
 * stores state then loads the queues; the waker stores to a queue then loads
 * state; with seq_cst on both sides at least one sees the other's store. If
 * the waker's bump lands between the sleeper's re-check and its futex_wait,
 * the kernel sees seq changed and futex_wait returns at once. So a wake-up is
 * never lost and a waker makes a syscall only when a scheduler really sleeps.
 *
 * Whoever moves state from PARKED to AWAKE (the waker's CAS, or the sleeper
 * itself after a timeout) decrements n_parked: exactly one of them wins.
 *
 * The race to watch: the sleeper's re-check must include everything a waker
 * might have published without waking it, including the timer deadline
 * (passed to futex_wait as a timeout).
 */
#include "sched/park.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void tel__park_init(struct park *p)
{
    atomic_store_explicit(&p->futex, 0, memory_order_relaxed);
    atomic_store_explicit(&p->state, PARK_AWAKE, memory_order_relaxed);
}

uint64_t tel__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint32_t tel__park_prepare(struct park *p, struct park_counts *c)
{
    uint32_t seq = atomic_load_explicit(&p->futex, memory_order_acquire);
    atomic_fetch_add_explicit(&c->n_parked, 1, memory_order_seq_cst);
    /* seq_cst: pairs with the waker's seq_cst publish + load of state. */
    atomic_store_explicit(&p->state, PARK_PARKED, memory_order_seq_cst);
    return seq;
}

static void become_awake(struct park *p, struct park_counts *c)
{
    uint32_t s = PARK_PARKED;
    if (atomic_compare_exchange_strong_explicit(&p->state, &s, PARK_AWAKE,
                                                memory_order_acq_rel,
                                                memory_order_acquire))
        atomic_fetch_sub_explicit(&c->n_parked, 1, memory_order_relaxed);
    else
        atomic_store_explicit(&p->state, PARK_AWAKE, memory_order_relaxed);
}

void tel__park_cancel(struct park *p, struct park_counts *c)
{
    become_awake(p, c);
}

void tel__park_sleep(struct park *p, struct park_counts *c, uint32_t seq,
                     uint64_t deadline_ns)
{
    struct timespec ts, *tsp = NULL;
    if (deadline_ns != UINT64_MAX) {
        uint64_t now = tel__now_ns();
        if (deadline_ns <= now) {
            become_awake(p, c);
            return;
        }
        uint64_t d = deadline_ns - now;
        ts.tv_sec = (time_t)(d / 1000000000ull);
        ts.tv_nsec = (long)(d % 1000000000ull);
        tsp = &ts;
    }
    /* Relative timeout; EINTR, EAGAIN and ETIMEDOUT all mean "look again". */
    (void)syscall(SYS_futex, &p->futex, FUTEX_WAIT_PRIVATE, seq, tsp, NULL, 0);
    become_awake(p, c);
}

bool tel__park_wake(struct park *p, struct park_counts *c)
{
    if (atomic_load_explicit(&p->state, memory_order_seq_cst) != PARK_PARKED)
        return false;
    uint32_t s = PARK_PARKED;
    if (!atomic_compare_exchange_strong_explicit(&p->state, &s, PARK_AWAKE,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire))
        return false;
    atomic_fetch_sub_explicit(&c->n_parked, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->futex, 1, memory_order_release);
    (void)syscall(SYS_futex, &p->futex, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    return true;
}
