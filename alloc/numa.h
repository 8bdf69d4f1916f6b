/*
 * alloc/numa.h: the runtime's memory, from a private jemalloc arena.
 *
 * Every runtime allocation (control blocks, messages, timers, queues) goes
 * through here. In a normal build it is jemalloc's mallocx/sdallocx on the
 * runtime's own arena, through an explicit tcache per scheduler; the
 * embedding program's malloc is never replaced (jemalloc is linked in under
 * private names, see CMakeLists.txt). In sanitizer builds the calls go to the
 * C library's malloc so that ASan/LSan see every object.
 */
#ifndef TEL_ALLOC_NUMA_H
#define TEL_ALLOC_NUMA_H

#include <stddef.h>

/*
 * tel__mem_init: make ready for a run with n_tcaches scheduler caches.
 * The arena is created on the first run and kept for later runs (so memory a
 * user still holds, such as an unfreed message, stays valid after tel_run
 * returns). Returns 0 or TEL_ENOMEM. Called by tel_run only.
 */
int tel__mem_init(unsigned n_tcaches);

/*
 * tel__mem_fini: destroy the scheduler caches and give the arena's unused
 * pages back to the OS. Every runtime object must have been freed before.
 */
void tel__mem_fini(void);

/*
 * tel__mem_bind_thread: make the calling thread use scheduler cache `slot`
 * (-1: none, for threads the runtime does not own). A cache must only ever be
 * used by one thread at a time.
 */
void tel__mem_bind_thread(int slot);

/* Allocate size bytes (16-byte aligned); NULL when out of memory. Any thread. */
void *tel__mem_alloc(size_t size);
/* As tel__mem_alloc, zero-filled. */
void *tel__mem_zalloc(size_t size);
/* Free p, which was allocated with exactly size bytes. NULL is ignored. */
void tel__mem_free(void *p, size_t size);

/* Zero-filled, aligned to a cache line (for structs with TEL_ALIGNED_CL
 * members); free with tel__mem_free_cl and the same size. */
void *tel__mem_zalloc_cl(size_t size);
void tel__mem_free_cl(void *p, size_t size);

/* size bytes aligned to align (a power of two, at most size; for the block
 * pools' slabs); free with tel__mem_free_aligned and the same size and align.
 * NULL when out of memory. Any thread. */
void *tel__mem_alloc_aligned(size_t size, size_t align);
void tel__mem_free_aligned(void *p, size_t size, size_t align);

#endif /* TEL_ALLOC_NUMA_H */
