/*
 * alloc/failinj.c: the countdown behind tel__failinj_hit (test builds only).
 *
 * Concurrency: one atomic counter; any thread may arm or consume. A test that
 * arms it should keep other allocating threads quiet, or accept that the
 * failure lands on whichever allocation comes n-th.
 */
#include "alloc/failinj.h"

#ifdef TEL_FAILINJ
#include <stdatomic.h>

static _Atomic long countdown = -1;
static atomic_bool fired;

void tel__failinj_arm(long n)
{
    atomic_store_explicit(&fired, false, memory_order_relaxed);
    atomic_store_explicit(&countdown, n, memory_order_relaxed);
}

bool tel__failinj_fired(void)
{
    return atomic_load_explicit(&fired, memory_order_relaxed);
}

bool tel__failinj_hit(void)
{
    long c = atomic_load_explicit(&countdown, memory_order_relaxed);
    while (c >= 0) {
        if (atomic_compare_exchange_weak_explicit(&countdown, &c, c - 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            if (c == 0)
                atomic_store_explicit(&fired, true, memory_order_relaxed);
            return c == 0;
        }
    }
    return false;
}
#else
typedef int tel__failinj_empty_unit;
#endif
