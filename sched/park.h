/*
 * sched/park.h: putting an idle scheduler thread to sleep and waking it.
 */
#ifndef TEL_SCHED_PARK_H
#define TEL_SCHED_PARK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* A scheduler's parking spot. */
struct park {
    _Atomic uint32_t futex; /* bumped by every wake; the futex word */
    _Atomic uint32_t state; /* PARK_AWAKE, PARK_SPINNING, PARK_PARKED */
};

enum { PARK_AWAKE = 0, PARK_SPINNING = 1, PARK_PARKED = 2 };

/* Global idle counts (scheduler.c's system): readers use them as hints. */
struct park_counts {
    _Atomic uint32_t n_parked;
    _Atomic uint32_t n_spinning;
};

void tel__park_init(struct park *p);

/*
 * Owner: announce that the scheduler is about to sleep. Returns the futex
 * value to sleep on. After this the owner must re-check every source of work
 * (the Dekker pair with tel__park_wake's caller), then call tel__park_sleep
 * or tel__park_cancel.
 */
uint32_t tel__park_prepare(struct park *p, struct park_counts *c);

/* Owner: found work after prepare; become awake again. */
void tel__park_cancel(struct park *p, struct park_counts *c);

/*
 * Owner: sleep until woken or until deadline_ns (CLOCK_MONOTONIC;
 * UINT64_MAX: no deadline). Returns with the scheduler awake. EINTR and
 * spurious wake-ups are handled by the caller's loop (it just looks again).
 */
void tel__park_sleep(struct park *p, struct park_counts *c, uint32_t seq,
                     uint64_t deadline_ns);

/*
 * Any thread: wake p if it is parked (one futex syscall only then). Returns
 * true if this call woke it. The caller must have published its work with a
 * seq_cst operation before calling.
 */
bool tel__park_wake(struct park *p, struct park_counts *c);

/* CLOCK_MONOTONIC in ns (vDSO; no syscall). */
uint64_t tel__now_ns(void);

/* now + ms milliseconds, saturating (huge timeouts never wrap). */
static inline uint64_t tel__deadline_ns(int64_t ms)
{
    uint64_t now = tel__now_ns();
    if ((uint64_t)ms >= (UINT64_MAX - now) / 1000000ull)
        return UINT64_MAX >> 1;
    return now + (uint64_t)ms * 1000000ull;
}

#endif /* TEL_SCHED_PARK_H */
