/*
 * alloc/stack.h: process stacks, pooled, carved from large reservations.
 *
 * A stack is `size` bytes at `base` (its lowest address; it grows down from
 * base + size). Below base lies its guard region, tel__stack_guard_size()
 * bytes that fault when touched (see the top of stack.c for how, and for
 * the fallback without guards). Stacks never get a mapping of their own, so
 * a million of them fit under vm.max_map_count; only the pages a process
 * touches are resident.
 */
#ifndef TEL_ALLOC_STACK_H
#define TEL_ALLOC_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "include/telar.h"

/* The word the fallback mode keeps at every stack's base (see stack.c). */
#define STACK_CANARY ((uint64_t)0x7e1a75ac0ffee0d5ull)

/*
 * Stack size classes (per-process stack sizes). Class 0 is the run's stack
 * size (tel_config_t.stack_size); class k in [1, STACK_CLASS_MAX] is
 * 2^(k-1) * TEL_MIN_STACK_SIZE bytes: 16 KiB, 32 KiB, ... 256 MiB. Each
 * class has pools of its own (see the top of stack.c); a class whose size
 * is the run's size shares the run's pools.
 */
#define STACK_CLASS_MAX 15
#define STACK_MAX_BYTES ((size_t)256 << 20)

/* The bytes of class k, 1 <= k <= STACK_CLASS_MAX. */
static inline size_t tel__stack_class_bytes(unsigned k)
{
    return TEL_MIN_STACK_SIZE << (k - 1);
}

/*
 * The class for a stack of at least `bytes` bytes (rounded up to the next
 * class): 0 for 0 (the run's size), else 1..STACK_CLASS_MAX, or TEL_EINVAL
 * when bytes is below TEL_MIN_STACK_SIZE or above 256 MiB. Any thread; needs
 * no pool (core validates tel_spawn_opts_t.stack_size with it).
 */
static inline int tel__stack_class_of(size_t bytes)
{
    if (bytes == 0)
        return 0;
    if (bytes < TEL_MIN_STACK_SIZE || bytes > STACK_MAX_BYTES)
        return TEL_EINVAL;
    int k = 1;
    while (tel__stack_class_bytes((unsigned)k) < bytes)
        k++;
    return k;
}

/*
 * Set up for a run: stacks of stack_size bytes (a multiple of the page size)
 * and n_caches per-scheduler caches; cache i refills from the pool of NUMA
 * node tel__topo_node_of(i). 0 or TEL_ENOMEM. tel_run's thread.
 */
int tel__stack_pool_init(size_t stack_size, unsigned n_caches);

/* Unmap every reservation. All stacks are dead by then. tel_run's thread. */
void tel__stack_pool_fini(void);

/* The size of the run's stacks, class 0 (usable bytes, not the guard). */
size_t tel__stack_size(void);

/* The usable bytes of a stack of class k (0: the run's size). Any thread. */
size_t tel__stack_class_size(unsigned k);

/* The bytes of guard region below every stack's base (0 never: in the
 * fallback mode the region is still left unused, as a buffer). */
size_t tel__stack_guard_size(void);

/*
 * Whether this run is in the fallback mode (no guard markers from the
 * kernel): every stack then holds STACK_CANARY at its base, and whoever
 * switches a process out must check it. Read-only during a run.
 */
bool tel__stack_canary_on(void);

/*
 * Take a stack: from cache `cache` (the calling scheduler's index; -1 for a
 * thread with no cache), else its node's pool, else a new reservation.
 * Returns its base, or NULL when out of memory (or address space).
 * Context: cache i is used only by scheduler i's thread; -1 from any thread.
 */
void *tel__stack_alloc(int cache);

/*
 * tel__stack_alloc for a stack of class k (0: the run's size, as
 * tel__stack_alloc). The class's pools are created the first time (NULL if
 * that fails, or k > STACK_CLASS_MAX). Same rules for cache.
 */
void *tel__stack_alloc_class(int cache, unsigned k);

/*
 * Give a stack back (same rules for cache). Its pages stay as they are:
 * for stacks known to be shallow, or about to be discarded with the pool.
 * A stack of another class than the run's is found by its address (a look
 * through that class's reservations; tel__stack_free_class names it).
 */
void tel__stack_free(int cache, void *base);

/*
 * Give a stack back, releasing (madvise) the pages of a deep one: low_sp is
 * the lowest stack pointer its process was seen at. When that is more than
 * STACK_KEEP bytes below the top, every page but the top STACK_KEEP bytes
 * is released. Same rules for cache.
 */
void tel__stack_free_trim(int cache, void *base, const void *low_sp);

/*
 * tel__stack_free and tel__stack_free_trim for a stack of class k (the
 * class it was allocated with). A stack of a class of 1 MiB or more is
 * always trimmed to its top pages when freed with _trim_class.
 */
void tel__stack_free_class(int cache, unsigned k, void *base);
void tel__stack_free_trim_class(int cache, unsigned k, void *base,
                                const void *low_sp);

/*
 * Trim the free stacks that wait untrimmed in the pool of cache's node
 * (beyond its warm bound). Scheduler `cache`'s thread when it is about to
 * sleep (-1: any thread, node 0); a cheap look when there are none.
 */
void tel__stack_trim_idle(int cache);

/* ---- white-box: tests only ---------------------------------------- */

/*
 * Pretend the kernel has no guard markers (MADV_GUARD_INSTALL) for the
 * pools created from now on: at most mprotect_budget stacks get a PROT_NONE
 * guard page, the rest only the canary (0: canary only). A negative value
 * goes back to detecting. Call between runs.
 */
void tel__stack_force_fallback(long mprotect_budget);

/* Pretend the machine has n NUMA nodes (0: ask alloc/topo.h), cache i on
 * node i % n, for the pools created from now on. Call between runs. */
void tel__stack_fake_nodes(unsigned n);
/* Tests: trim with one madvise per range (true), as on a kernel that
 * refuses vectored MADV_DONTNEED, or go back to asking the kernel (false).
 * Before tel__stack_pool_init. */
void tel__stack_force_per_range_discard(bool on);

struct tel__stack_stats {
    unsigned n_nodes;
    bool guard_markers;  /* MADV_GUARD_INSTALL in use */
    size_t n_mprotect;   /* guards made with mprotect (fallback) */
    size_t n_warm;       /* free stacks in node pools, not trimmed */
    size_t n_cold;       /* free stacks in node pools, fully trimmed */
    size_t n_dirty;      /* beyond the warm bound, not trimmed yet */
    size_t warm_max;     /* per node: warm stacks beyond it are trimmed */
    size_t dirty_max;    /* per node: dirty beyond it are trimmed at once */
    size_t n_resvs;      /* reservations, all nodes */
    unsigned n_classes;  /* classes with pools of their own, besides 0 */
};

/* A snapshot of the pools of every class (node pools only, not the
 * caches), summed. Any thread. */
void tel__stack_stats(struct tel__stack_stats *out);

/* The node whose pool cache `cache` uses (-1: node 0). */
unsigned tel__stack_node_of_cache(int cache);

#endif /* TEL_ALLOC_STACK_H */
