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
 * A block is served from the cache of the scheduler the calling thread runs,
 * and freed into the cache of the scheduler the freeing thread runs, which
 * may be another one (a message crosses schedulers): like a tcache, blocks
 * drift and every cache is bounded, so there is no remote free queue. Threads
 * that are not schedulers go to numa.c directly. Sizes above POOL_MAX_SIZE go
 * to numa.c too.
 */
#ifndef TEL_ALLOC_POOL_H
#define TEL_ALLOC_POOL_H

#include <stddef.h>

#define POOL_MAX_SIZE 512

/* Make room for n caches (one per scheduler). Before any scheduler runs. */
int tel__pool_init(unsigned n_caches);
/* Return every cached block to numa.c and free the caches. After every
 * scheduler stopped, before tel__mem_fini. */
void tel__pool_fini(void);
/* The calling thread uses cache `slot` from now on (-1: none). */
void tel__pool_bind_thread(int slot);

/* size bytes (any size; NULL if out of memory), aligned for any type. Free
 * with tel__pool_free and the same size. Any thread. */
void *tel__pool_alloc(size_t size);
void tel__pool_free(void *p, size_t size);

#endif /* TEL_ALLOC_POOL_H */
