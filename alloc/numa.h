/*
 * alloc/numa.h: the runtime's memory, from private jemalloc arenas, one
 * per NUMA node.
 *
 * Every runtime allocation (control blocks, messages, timers, queues) goes
 * through here. In a normal build it is jemalloc's mallocx/sdallocx on the
 * arena of the calling scheduler's node, through an explicit tcache per
 * scheduler; the
 * embedding program's malloc is never replaced (jemalloc is linked in under
 * private names, see CMakeLists.txt). In sanitizer builds the calls go to the
 * C library's malloc so that ASan/LSan see every object.
 */
#ifndef TEL_ALLOC_NUMA_H
#define TEL_ALLOC_NUMA_H

#include <stddef.h>

/*
 * tel__mem_init: make ready for a run with n_tcaches scheduler caches;
 * cache i serves scheduler i from the arena of node tel__topo_node_of(i)
 * (so call it after tel__topo_init; before any, there is one node). Arenas
 * are created when a run first needs their node and kept for later runs
 * (so memory a user still holds, such as an unfreed message, stays valid
 * after tel_run returns, and repeated runs do not grow). Context: tel_run's
 * thread, no scheduler running. Errors: TEL_EINVAL (more than 1024
 * caches), TEL_ENOMEM.
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

/*
 * For tests and diagnostics: the jemalloc arena that cache `slot` allocates
 * from (-1: threads without a cache), and the arena that owns p (which must
 * come from tel__mem_*). TEL_ENOENT in sanitizer builds (libc malloc, no
 * arenas) or for a slot out of range. Any thread.
 */
int tel__mem_arena_of(int slot);
int tel__mem_arena_owning(const void *p);

/*
 * Test hook: install the node-binding extent hooks on arenas created from
 * now on even where binding cannot work (they then try, fail and carry on),
 * so that a one-node test machine runs their code. Returns how many extents
 * the hooks have been asked for so far. No run active.
 */
unsigned long tel__mem_test_force_hooks(int on);

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
