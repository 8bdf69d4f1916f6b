/*
 * alloc/pool.c: per-scheduler caches of small blocks (see pool.h for why).
 *
 * Owns: an array of caches, one per scheduler, each a LIFO free list per size
 * class (64, 128, 256, 512 bytes), and the calling thread's binding to one.
 *
 * Invariants:
 *   - A cached block is a whole class-size block from tel__mem_alloc; its
 *     first word links to the next cached block of its class.
 *   - A cache holds at most pool_cap[class] blocks; a free beyond that goes
 *     straight back to numa.c, so memory parked in caches stays bounded
 *     (64 + 128 + 256 + 64 KiB per scheduler). The 64 class holds a message
 *     with up to 16 bytes of payload and a wait timer. 1024 process blocks
 *     (128 class; 136 bytes, 256 class, under TSan): a
 *     churn of a thousand live processes (spawn_exit's batches, and the
 *     epoch's batches of retired blocks) stays in the cache; at 256, jemalloc
 *     took 140 of spawn_exit's 1270 instructions per process, and s=1 ran
 *     87 instead of 72 ns per spawn and exit.
 *
 * Concurrency: a cache is touched only by the thread bound to it (one
 * scheduler thread), so there are no atomics. A block handed to another
 * thread travels inside a message or a queue whose own release/acquire
 * orders its contents. init/fini run on tel_run's thread while no scheduler
 * runs.
 *
 * ASan builds poison cached blocks, so a use after free still reports.
 */
#include "alloc/pool.h"

#include <stdint.h>
#include <string.h>

#include "alloc/base.h"
#include "alloc/failinj.h"
#include "alloc/numa.h"
#include "include/telar.h"

#ifdef TEL_ASAN
#include <sanitizer/asan_interface.h>
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define POOL_CLASSES 4

static const size_t pool_size[POOL_CLASSES] = {64, 128, 256, POOL_MAX_SIZE};
static const uint32_t pool_cap[POOL_CLASSES] = {1024, 1024, 1024, 128};

struct pool_cache {
    void *head[POOL_CLASSES];
    uint32_t n[POOL_CLASSES];
} TEL_ALIGNED_CL;

static struct pool_cache *caches;
static unsigned n_caches;
static __thread struct pool_cache *tls_cache
    __attribute__((tls_model("initial-exec")));

static inline unsigned class_of(size_t size)
{
    return size <= 64 ? 0 : size <= 128 ? 1 : size <= 256 ? 2 : 3;
}

int tel__pool_init(unsigned n)
{
    caches = tel__mem_zalloc_cl(sizeof(*caches) * (n ? n : 1));
    if (!caches)
        return TEL_ENOMEM;
    n_caches = n;
    return 0;
}

void tel__pool_fini(void)
{
    for (unsigned i = 0; i < n_caches; i++) {
        for (unsigned c = 0; c < POOL_CLASSES; c++) {
            void *b = caches[i].head[c];
            while (b) {
                POOL_UNPOISON(b, pool_size[c]);
                void *next = *(void **)b;
                tel__mem_free(b, pool_size[c]);
                b = next;
            }
        }
    }
    tel__mem_free_cl(caches, sizeof(*caches) * (n_caches ? n_caches : 1));
    caches = NULL;
    n_caches = 0;
    tls_cache = NULL;
}

void tel__pool_bind_thread(int slot)
{
    tls_cache = slot >= 0 && (unsigned)slot < n_caches ? &caches[slot] : NULL;
}

void *tel__pool_alloc(size_t size)
{
    struct pool_cache *pc = tls_cache;
    if (TEL_UNLIKELY(size > POOL_MAX_SIZE))
        return tel__mem_alloc(size);
    /* Always a whole class-size block: whichever thread frees it may cache
     * it for a caller that needs the whole class size. */
    unsigned c = class_of(size);
    if (TEL_UNLIKELY(pc == NULL))
        return tel__mem_alloc(pool_size[c]);
    void *b = pc->head[c];
    if (TEL_LIKELY(b != NULL)) {
        if (TEL_UNLIKELY(tel__failinj_hit()))
            return NULL;
        POOL_UNPOISON(b, pool_size[c]);
        pc->head[c] = *(void **)b;
        pc->n[c]--;
        return b;
    }
    return tel__mem_alloc(pool_size[c]);
}

void tel__pool_free(void *p, size_t size)
{
    if (p == NULL)
        return;
    struct pool_cache *pc = tls_cache;
    if (TEL_UNLIKELY(size > POOL_MAX_SIZE)) {
        tel__mem_free(p, size);
        return;
    }
    unsigned c = class_of(size);
    if (TEL_UNLIKELY(pc == NULL || pc->n[c] >= pool_cap[c])) {
        tel__mem_free(p, pool_size[c]);
        return;
    }
    *(void **)p = pc->head[c];
    pc->head[c] = p;
    pc->n[c]++;
    POOL_POISON(p, pool_size[c]);
}
