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

#include <stdatomic.h>
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

/* The general paths of tel__pool_alloc and tel__pool_free below (any size,
 * any thread, every case); callers use those. */
void *tel__pool_alloc_slow(size_t size);
void tel__pool_free_slow(void *p, size_t size);

/*
 * The fast paths, inline: a pool hit was a call to a leaf of some 20
 * instructions, four of them per ping-pong round trip and per short-lived
 * process (a message and a process block, each allocated and freed), plus
 * the call, its argument moves and the caller's spills. pool.c owns the
 * layout; these see only the first line of a pool (struct tel__pool_hot,
 * the first member of struct pool_cache) and of a slab (owner and class).
 */
#include <stdint.h>

#include "alloc/base.h"
#include "alloc/failinj.h"

#ifdef TEL_ASAN
#include <sanitizer/asan_interface.h>
#define TEL_POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define TEL_POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define TEL_POOL_POISON(p, n) ((void)(p), (void)(n))
#define TEL_POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define TEL_POOL_CLASSES 4
#define TEL_POOL_SLAB_SIZE ((size_t)64 << 10)

struct tel__pool_hot {
    void *head[TEL_POOL_CLASSES]; /* LIFO free lists */
    uint32_t n[TEL_POOL_CLASSES]; /* blocks on each */
    uint32_t keep[TEL_POOL_CLASSES]; /* how many each may hold */
};

struct tel__pool_slab_hot {
    _Atomic(void *) owner; /* the owning pool (struct pool_cache *) */
    uint32_t live_;        /* pool.c's */
    uint32_t cls;
};

/* The calling thread's pool, NULL if none (pool.c: tls_cache). */
extern __thread struct tel__pool_hot *tel__pool_tls
    __attribute__((tls_model("initial-exec")));

/* Block class of a size (<= POOL_MAX_SIZE): blocks are 64 << class. */
static inline unsigned tel__pool_class_of(size_t size)
{
    return size <= 64 ? 0 : size <= 128 ? 1 : size <= 256 ? 2 : 3;
}

/* size bytes (any size; NULL if out of memory), aligned for any type. Free
 * with tel__pool_free and the same size. Any thread. */
static inline void *tel__pool_alloc(size_t size)
{
    struct tel__pool_hot *pc = tel__pool_tls;
    if (TEL_UNLIKELY(size > POOL_MAX_SIZE || pc == NULL))
        return tel__pool_alloc_slow(size);
    unsigned c = tel__pool_class_of(size);
    void *b = pc->head[c];
    if (TEL_UNLIKELY(b == NULL || tel__failinj_hit()))
        return b ? NULL : tel__pool_alloc_slow(size);
    TEL_POOL_UNPOISON(b, (size_t)64 << c);
    void *next = *(void **)b;
    pc->head[c] = next;
    pc->n[c]--;
    /* The next block's line is often in another CPU's cache (it came back
     * from a free there): fetch it now, so the next allocation does not
     * wait for it (a prefetch never faults, NULL included). */
    __builtin_prefetch(next, 1, 3);
    return b;
}

static inline void tel__pool_free(void *p, size_t size)
{
    if (p == NULL)
        return;
    if (TEL_UNLIKELY(size > POOL_MAX_SIZE)) {
        tel__pool_free_slow(p, size);
        return;
    }
    const struct tel__pool_slab_hot *s =
        (const struct tel__pool_slab_hot *)((uintptr_t)p &
                                            ~(uintptr_t)(TEL_POOL_SLAB_SIZE -
                                                         1));
    /* The slab's class, not tel__pool_class_of(size): one load from the
     * line owner is on, instead of a chain of compares. */
    unsigned c = s->cls;
    struct tel__pool_hot *pc = tel__pool_tls;
    if (TEL_LIKELY(atomic_load_explicit(&s->owner, memory_order_relaxed) ==
                   (void *)pc) &&
        TEL_LIKELY(pc->n[c] < pc->keep[c])) {
        *(void **)p = pc->head[c];
        pc->head[c] = p;
        pc->n[c]++;
        TEL_POOL_POISON(p, (size_t)64 << c);
        return;
    }
    tel__pool_free_slow(p, size);
}

#endif /* TEL_ALLOC_POOL_H */
