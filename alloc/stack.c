/*
 * alloc/stack.c: stack pools carved from large reservations.
 *
 * Owns: the list of reservations (anonymous MAP_NORESERVE mappings of
 * STACK_RESV_BYTES each), a shared free list with a bump pointer into the
 * newest reservation, and one small LIFO cache per scheduler.
 *
 * Invariants:
 *   - A free stack's link lives in its top word (base + size - 8): that page
 *     is the one a process touches first, so keeping the link there costs no
 *     extra resident page. A never-used stack is handed out by the bump
 *     pointer and has touched nothing.
 *   - Each cache holds at most STACK_CACHE_MAX stacks; half goes back to the
 *     shared list when it overflows, and a batch comes in when it is empty.
 *
 * Concurrency: cache i belongs to scheduler i's thread (no atomics). The
 * shared list and the reservations are under one mutex, taken once per batch.
 *
 * Not here yet: per-NUMA-node pools, trimming deep stacks with madvise, and
 * overflow guards (the memory issue). Overflow is detected after the fact by
 * sched/ when a process switches out with its stack pointer below its base.
 */
#include "alloc/stack.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc/base.h"
#include "alloc/failinj.h"
#include "alloc/numa.h"
#include "include/telar.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define STACK_VALGRIND 1
#endif
#endif
#ifdef TEL_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define STACK_RESV_BYTES ((size_t)128 << 20)
#define STACK_CACHE_MAX 128
#define STACK_BATCH 32

struct free_stack {
    struct free_stack *next;
};

struct cache {
    struct free_stack *head;
    unsigned n;
} TEL_ALIGNED_CL;

static size_t stack_size;
static size_t per_resv;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct free_stack *shared_head;     /* under lock */
static char *bump, *bump_end;              /* under lock */
static void **resvs;                       /* under lock */
static size_t n_resvs, cap_resvs;          /* under lock */
static size_t resv_bytes;                  /* of each reservation */

static struct cache *caches;
static unsigned n_caches;

static inline struct free_stack *link_of(void *base)
{
    return (struct free_stack *)((char *)base + stack_size - sizeof(void *));
}

static inline void *base_of(struct free_stack *l)
{
    return (char *)l + sizeof(void *) - stack_size;
}

int tel__stack_pool_init(size_t size, unsigned n)
{
    stack_size = size;
    per_resv = STACK_RESV_BYTES / size;
    if (per_resv < 16)
        per_resv = 16;
    resv_bytes = per_resv * size;
    shared_head = NULL;
    bump = bump_end = NULL;
    n_resvs = 0;
    n_caches = n;
    caches = tel__mem_zalloc_cl(sizeof(*caches) * (n ? n : 1));
    return caches ? 0 : TEL_ENOMEM;
}

void tel__stack_pool_fini(void)
{
    for (size_t i = 0; i < n_resvs; i++)
        munmap(resvs[i], resv_bytes);
    tel__mem_free(resvs, cap_resvs * sizeof(void *));
    resvs = NULL;
    n_resvs = cap_resvs = 0;
    tel__mem_free_cl(caches, sizeof(*caches) * (n_caches ? n_caches : 1));
    caches = NULL;
    shared_head = NULL;
    bump = bump_end = NULL;
}

size_t tel__stack_size(void)
{
    return stack_size;
}

/* Under lock: a stack from the shared list or the bump pointer. */
static void *take_shared(void)
{
    if (shared_head) {
        struct free_stack *l = shared_head;
        shared_head = l->next;
        return base_of(l);
    }
    if (bump == bump_end) {
        if (n_resvs == cap_resvs) {
            size_t ncap = cap_resvs ? cap_resvs * 2 : 64;
            void **nr = tel__mem_alloc(ncap * sizeof(void *));
            if (!nr)
                return NULL;
            if (n_resvs)
                memcpy(nr, resvs, n_resvs * sizeof(void *));
            tel__mem_free(resvs, cap_resvs * sizeof(void *));
            resvs = nr;
            cap_resvs = ncap;
        }
        void *m = mmap(NULL, resv_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        resvs[n_resvs++] = m;
        bump = m;
        bump_end = (char *)m + resv_bytes;
    }
    void *base = bump;
    bump += stack_size;
#ifdef STACK_VALGRIND
    if (RUNNING_ON_VALGRIND)
        (void)VALGRIND_STACK_REGISTER(base, (char *)base + stack_size);
#endif
    return base;
}

void *tel__stack_alloc(int ci)
{
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    if (ci >= 0) {
        struct cache *c = &caches[ci];
        if (TEL_LIKELY(c->head != NULL)) {
            struct free_stack *l = c->head;
            c->head = l->next;
            c->n--;
            return base_of(l);
        }
        /* Refill: one stack for the caller plus a batch for later. */
        pthread_mutex_lock(&lock);
        void *base = take_shared();
        for (unsigned i = 0; base && i < STACK_BATCH && shared_head; i++) {
            struct free_stack *l = shared_head;
            shared_head = l->next;
            l->next = c->head;
            c->head = l;
            c->n++;
        }
        pthread_mutex_unlock(&lock);
        return base;
    }
    pthread_mutex_lock(&lock);
    void *base = take_shared();
    pthread_mutex_unlock(&lock);
    return base;
}

void tel__stack_free(int ci, void *base)
{
#ifdef TEL_ASAN
    /* A process that ended mid-call left poisoned frames; clear them. */
    ASAN_UNPOISON_MEMORY_REGION(base, stack_size);
#endif
    struct free_stack *l = link_of(base);
    if (ci >= 0) {
        struct cache *c = &caches[ci];
        l->next = c->head;
        c->head = l;
        if (TEL_LIKELY(++c->n <= STACK_CACHE_MAX))
            return;
        /* Overflow: give half back to the shared list. */
        struct free_stack *first = c->head, *last = first;
        for (unsigned i = 1; i < STACK_CACHE_MAX / 2; i++)
            last = last->next;
        c->head = last->next;
        c->n -= STACK_CACHE_MAX / 2;
        pthread_mutex_lock(&lock);
        last->next = shared_head;
        shared_head = first;
        pthread_mutex_unlock(&lock);
        return;
    }
    pthread_mutex_lock(&lock);
    l->next = shared_head;
    shared_head = l;
    pthread_mutex_unlock(&lock);
}
