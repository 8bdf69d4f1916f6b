/*
 * alloc/stack.h: process stacks, pooled, carved from large reservations.
 *
 * A stack is `size` bytes at `base` (its lowest address; it grows down from
 * base + size). Stacks never get a mapping of their own, so a million of them
 * fit under vm.max_map_count; only the pages a process touches are resident.
 */
#ifndef TEL_ALLOC_STACK_H
#define TEL_ALLOC_STACK_H

#include <stddef.h>

/*
 * Set up for a run: stacks of stack_size bytes (a multiple of the page size)
 * and n_caches per-scheduler caches. 0 or TEL_ENOMEM. tel_run's thread.
 */
int tel__stack_pool_init(size_t stack_size, unsigned n_caches);

/* Unmap every reservation. All stacks are dead by then. tel_run's thread. */
void tel__stack_pool_fini(void);

/* The size of every stack of this run. */
size_t tel__stack_size(void);

/*
 * Take a stack: from cache `cache` (the calling scheduler's index; -1 for a
 * thread with no cache), else the shared pool, else a new reservation.
 * Returns its base, or NULL when out of memory (or address space).
 * Context: cache i is used only by scheduler i's thread; -1 from any thread.
 */
void *tel__stack_alloc(int cache);

/* Give a stack back (same rules for cache). */
void tel__stack_free(int cache, void *base);

#endif /* TEL_ALLOC_STACK_H */
