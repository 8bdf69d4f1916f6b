/*
 * alloc/pool.h: per-scheduler caches of small fixed-size blocks (messages,
 * process blocks, timer records), in front of alloc/numa.h.
 *
 * Why: jemalloc's fast path serves only malloc/free; mallocx/sdallocx with an
 * explicit arena and tcache (what numa.c must use, to stay out of the
 * embedder's heap) take its general path, about 120 instructions each, which
 * was a third of a ping-pong round trip. A pool hit is a few loads and
 * stores on the scheduler's own cache line.
 *
 * Blocks come from 64 KiB slabs, each owned by one scheduler's pool (or by
 * the shared pool of the threads that are not schedulers). A free on the
 * owner's thread is a push on a plain list; a free anywhere else returns
 * the block to its owner through a lock-free return stack, so blocks never
 * drift between schedulers (or, later, NUMA nodes). Sizes above
 * POOL_MAX_SIZE go to numa.c. pool.c's top comment has the protocol.
 */
#ifndef TEL_ALLOC_POOL_H
#define TEL_ALLOC_POOL_H

#include <stdbool.h>
#include <stddef.h>

#define POOL_MAX_SIZE 512

/* Make ready n pools (one per scheduler; at most 1024, else TEL_EINVAL;
 * TEL_ENOMEM). Pools are kept for later runs. Before any scheduler runs. */
int tel__pool_init(unsigned n_caches);
/* Give every slab back to numa.c; a slab with blocks still in use (a message
 * the user kept) is freed when its last block is. After every scheduler
 * stopped, before tel__mem_fini; other threads may still free. */
void tel__pool_fini(void);
/* The calling thread uses pool `slot` from now on (-1: none, the shared
 * pool). Only one thread may be bound to a slot at a time. A change of
 * binding first pushes the remote frees the old pool holds (pool.c,
 * "Remote frees in batches"), so a thread unbinds before it ends. */
void tel__pool_bind_thread(int slot);
/* Slabs held from numa.c right now, by every pool (a statistic; 0 between
 * runs when nothing is kept). Any thread. */
size_t tel__pool_n_slabs(void);

/* The calling scheduler is about to sleep: push the remote frees its pool
 * holds for other pools, take back the blocks other
 * threads returned to its pool while it stopped allocating, and send what
 * its lists then hold beyond their bound to the blocks' slabs, as local
 * frees past the bound go (slabs all free are kept or given back). One
 * relaxed load per class when there is nothing to do. Owner thread. */
void tel__pool_trim_idle(void);

/* Tests: whether b (a block tel__pool_alloc gave, not a large one) lies in
 * a slab the calling thread's pool holds for its class. Owner thread. */
bool tel__pool_holds(const void *b);

/* size bytes (any size; NULL if out of memory), aligned for any type. Free
 * with tel__pool_free and the same size. Any thread. */
void *tel__pool_alloc(size_t size);
void tel__pool_free(void *p, size_t size);

#endif /* TEL_ALLOC_POOL_H */
