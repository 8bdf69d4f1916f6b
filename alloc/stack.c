/*
 * alloc/stack.c: stack pools carved from large reservations, one pool per
 * NUMA node, with guard regions, a canary fallback and trimming.
 *
 * Owns: per node, a pool (its reservations: anonymous MAP_NORESERVE
 * mappings of about STACK_RESV_BYTES each, bound to the node's memory; a
 * bump pointer into the newest one; a warm list and a cold array of free
 * stacks) and one small LIFO cache per scheduler, which refills from and
 * spills to its scheduler's node pool.
 *
 * Layout. A reservation is cut into slots of STACK_GUARD + stack_size
 * bytes; a slot is [guard | stack], and the stack's base is the end of its
 * guard. A stack that runs off its base meets its own guard before the top
 * of the stack below it.
 *
 * Guards, and why not one mapping each. A PROT_NONE page per stack would
 * split the reservation's mapping twice per stack: 65,530 mappings
 * (vm.max_map_count's default) is 32,000 stacks. Linux 6.13 added guard
 * markers (madvise MADV_GUARD_INSTALL): page-table entries that fault like
 * PROT_NONE without splitting the mapping. Each stack gets them once, when
 * it is first carved from a reservation; they survive MADV_DONTNEED, so
 * trimming keeps them, and munmap drops them with the reservation.
 *
 * The fallback (older kernels: the probe at init gets EINVAL). While the
 * mapping budget lasts (a quarter of vm.max_map_count above current use is
 * left for the rest of the program; each guard costs two mappings), a
 * carved stack gets a PROT_NONE guard from mprotect. Every stack, guarded
 * or not, keeps STACK_CANARY in its lowest word, and sched/ checks it at
 * every switch-out (tel__stack_canary_on): a process that ran off its base
 * overwrote it. The guard region is then still left unused, a buffer that
 * an overflow fills before it reaches another stack. The cost of the
 * fallback: the base page of every stack is resident (the canary lives
 * there, and a trim rewrites it).
 *
 * Trimming, so that a pool's resident memory stays bounded:
 *   - A stack whose process went deeper than STACK_KEEP below its top loses
 *     every other page when it is freed (tel__stack_free_trim; sched/ keeps
 *     the deepest stack pointer seen at switch-outs). One madvise, only for
 *     deep stacks.
 *   - A node pool keeps at most warm_max free stacks as they are (the warm
 *     list: intrusive, the link in the stack's top word, which a process
 *     touches first anyway). Stacks beyond it go to the cold array, which
 *     holds bare bases (a trimmed stack has no page to hold a link): first
 *     dirty (not trimmed yet), and trimmed whole when a scheduler of the
 *     node is about to sleep (tel__stack_trim_idle), or at once when the
 *     dirty ones reach dirty_max (64 * warm_max: 16,384 stacks a
 *     scheduler; a free stack keeps at most its top 8 KiB, see above, so
 *     that is at most 128 MiB, and a few pages each in practice). Why not
 *     trim at once: a workload whose live process count swings by
 *     thousands (skynet: 11,000 stacks) would trim and fault the same
 *     stacks in again and again; trimming at once took skynet -s 1 from
 *     0.13 to 1.0 s of system time, and a bound of 8 * warm_max still to
 *     0.3 s. If the cold array
 *     cannot grow (out of memory), the stack stays warm instead, over the
 *     bound: freeing never fails.
 *   - Allocation prefers warm stacks, then dirty ones, then trimmed ones,
 *     then new ones.
 *
 * Invariants:
 *   - A free stack is in exactly one cache, warm list or cold array.
 *   - Every cache holds at most STACK_CACHE_MAX stacks; half goes back to
 *     its node's pool when it overflows, and a batch comes in when empty.
 *   - In the fallback mode, every stack that is handed out holds
 *     STACK_CANARY at its base.
 *   - A stack may be freed to any cache or node (a process migrated): it
 *     joins the pool of the node it was freed on.
 *
 * Concurrency: cache i belongs to scheduler i's thread (no atomics). A node
 * pool is under its own mutex, taken once per batch; madvise, mprotect and
 * page-touching work happen outside it. The mode and sizes are written at
 * init, before any scheduler thread exists, and read-only after.
 */
#define _GNU_SOURCE 1
#include "alloc/lock.h"
#include "alloc/stack.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc/base.h"
#include "alloc/failinj.h"
#include "alloc/numa.h"
#include "alloc/topo.h"
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

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

#define STACK_PAGE ((size_t)4096)
#define STACK_RESV_BYTES ((size_t)128 << 20)
#define STACK_CACHE_MAX 128
#define STACK_BATCH 32
#define STACK_GUARD ((size_t)16 << 10) /* four pages */
#define STACK_KEEP ((size_t)8 << 10)   /* what trimming leaves at the top */
#define STACK_SPILL (STACK_CACHE_MAX / 2)
#define STACK_DIRTY_FACTOR 64 /* dirty_max = 64 * warm_max */

struct free_stack {
    struct free_stack *next;
};

struct cache {
    struct free_stack *head;
    unsigned n;
    unsigned node;
} TEL_ALIGNED_CL;

struct node_pool {
    pthread_mutex_t lock;
    /* Under lock. */
    struct free_stack *warm; /* intrusive, untrimmed */
    size_t n_warm;
    void **cold;             /* bases: [0, n_trimmed) trimmed, then dirty */
    size_t n_cold, cap_cold, n_trimmed;
    _Atomic size_t n_dirty;  /* n_cold - n_trimmed, for a look without lock */
    char *bump, *bump_end;   /* the newest reservation's uncarved part */
    void **resvs;
    size_t n_resvs, cap_resvs;
    /* Set at init. */
    size_t warm_max;
    size_t dirty_max;
    unsigned node;
} TEL_ALIGNED_CL;

/* Set at init (tel_run's thread, before any scheduler), read-only after. */
static size_t stack_size, slot_size, per_resv, resv_bytes;
static bool markers; /* MADV_GUARD_INSTALL in use */
static bool canary;  /* the fallback: canaries, maybe mprotect guards */
static struct node_pool *nodes;
static unsigned n_nodes;
static struct cache *caches;
static unsigned n_caches;

static _Atomic long mprotect_left; /* fallback guards the budget allows */
static _Atomic size_t n_mprotect;

/* White-box knobs, between runs only. */
static long forced_budget = -1;
static unsigned fake_nodes;

static inline struct free_stack *link_of(void *base)
{
    return (struct free_stack *)((char *)base + stack_size - sizeof(void *));
}

static inline void *base_of(struct free_stack *l)
{
    return (char *)l + sizeof(void *) - stack_size;
}

void tel__stack_force_fallback(long mprotect_budget)
{
    forced_budget = mprotect_budget;
}

void tel__stack_fake_nodes(unsigned n)
{
    fake_nodes = n;
}

/* Whether the kernel installs guard markers (one probe per run). */
static bool probe_markers(void)
{
    void *m = mmap(NULL, 2 * STACK_PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return false;
    bool ok = madvise(m, STACK_PAGE, MADV_GUARD_INSTALL) == 0;
    munmap(m, 2 * STACK_PAGE);
    return ok;
}

/* Lines (mappings) in a /proc file, or -1; no stdio, no malloc. */
static long count_lines(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[4096];
    long n = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < r; i++)
            n += buf[i] == '\n';
    close(fd);
    return r < 0 ? -1 : n;
}

/* How many mprotect guards the fallback may make: each costs two
 * mappings, and a quarter of the limit (at least 4096) stays for the rest
 * of the program (its own mappings, thread stacks, the allocator). */
static long mapping_budget(void)
{
    long max = 65530;
    int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[32];
        ssize_t r = read(fd, buf, sizeof buf - 1);
        if (r > 0) {
            buf[r] = 0;
            long v = strtol(buf, NULL, 10);
            if (v > 0)
                max = v;
        }
        close(fd);
    }
    long used = count_lines("/proc/self/maps");
    if (used < 0)
        return 0;
    long margin = max / 4 > 4096 ? max / 4 : 4096;
    long avail = max - used - margin;
    return avail > 0 ? avail / 2 : 0;
}

int tel__stack_pool_init(size_t size, unsigned n)
{
    stack_size = size;
    slot_size = size + STACK_GUARD;
    per_resv = STACK_RESV_BYTES / slot_size;
    if (per_resv < 16)
        per_resv = 16;
    resv_bytes = per_resv * slot_size;
    long budget;
    if (forced_budget >= 0) {
        markers = false;
        budget = forced_budget;
    } else {
        markers = probe_markers();
        budget = markers ? 0 : mapping_budget();
    }
    canary = !markers;
    atomic_store_explicit(&mprotect_left, budget, memory_order_relaxed);
    atomic_store_explicit(&n_mprotect, 0, memory_order_relaxed);

    n_nodes = fake_nodes ? fake_nodes : tel__topo_nnodes();
    if (n_nodes == 0)
        n_nodes = 1;
    n_caches = n;
    caches = tel__mem_zalloc_cl(sizeof(*caches) * (n ? n : 1));
    if (!caches)
        return TEL_ENOMEM;
    nodes = tel__mem_zalloc_cl(sizeof(*nodes) * n_nodes);
    if (!nodes) {
        tel__mem_free_cl(caches, sizeof(*caches) * (n ? n : 1));
        caches = NULL;
        return TEL_ENOMEM;
    }
    size_t per_node[n_nodes];
    memset(per_node, 0, sizeof per_node);
    for (unsigned i = 0; i < n; i++) {
        unsigned nd = fake_nodes ? i % n_nodes : tel__topo_node_of(i);
        caches[i].node = nd < n_nodes ? nd : 0;
        per_node[caches[i].node]++;
    }
    for (unsigned k = 0; k < n_nodes; k++) {
        pthread_mutex_init(&nodes[k].lock, NULL);
        nodes[k].node = k;
        nodes[k].warm_max =
            2 * (per_node[k] ? per_node[k] : 1) * (size_t)STACK_CACHE_MAX;
        nodes[k].dirty_max = STACK_DIRTY_FACTOR * nodes[k].warm_max;
    }
    return 0;
}

void tel__stack_pool_fini(void)
{
    for (unsigned k = 0; nodes && k < n_nodes; k++) {
        struct node_pool *np = &nodes[k];
        for (size_t i = 0; i < np->n_resvs; i++)
            munmap(np->resvs[i], resv_bytes);
        if (np->resvs)
            tel__mem_free(np->resvs, np->cap_resvs * sizeof(void *));
        if (np->cold)
            tel__mem_free(np->cold, np->cap_cold * sizeof(void *));
        pthread_mutex_destroy(&np->lock);
    }
    if (nodes)
        tel__mem_free_cl(nodes, sizeof(*nodes) * n_nodes);
    nodes = NULL;
    n_nodes = 0;
    if (caches)
        tel__mem_free_cl(caches, sizeof(*caches) * (n_caches ? n_caches : 1));
    caches = NULL;
    n_caches = 0;
}

size_t tel__stack_size(void)
{
    return stack_size;
}

size_t tel__stack_guard_size(void)
{
    return STACK_GUARD;
}

bool tel__stack_canary_on(void)
{
    return canary;
}

unsigned tel__stack_node_of_cache(int ci)
{
    return ci >= 0 && (unsigned)ci < n_caches ? caches[ci].node : 0;
}

/*
 * Release a free stack's pages, all but the top `keep` bytes. In the
 * fallback mode the guard region goes too (an overflow may have filled
 * it), and the canary is written again.
 */
static void release(void *base, size_t keep)
{
    char *lo = canary ? (char *)base - STACK_GUARD : (char *)base;
    char *hi = (char *)base + stack_size - keep;
    (void)madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
    if (canary)
        *(volatile uint64_t *)base = STACK_CANARY;
}

/*
 * Trim k free stacks whole (b is reordered). Stacks carved one after the
 * other are neighbours in their reservation, and they tend to be freed
 * together (a batch of processes ends), so adjacent ones go in one madvise:
 * on this VM a madvise that drops one page cost about 10 us, and
 * spawn_idle's 50,000 exits spent 6 us each trimming one stack at a time.
 * The guard markers between them survive MADV_DONTNEED. With canaries
 * (the fallback) each stack is trimmed alone, to put its canary back.
 */
static void release_many(void **b, unsigned k)
{
    if (canary) {
        for (unsigned i = 0; i < k; i++)
            release(b[i], 0);
        return;
    }
    for (unsigned i = 1; i < k; i++) { /* insertion sort: k <= 64 */
        void *x = b[i];
        unsigned j = i;
        for (; j > 0 && (char *)b[j - 1] > (char *)x; j--)
            b[j] = b[j - 1];
        b[j] = x;
    }
    for (unsigned i = 0; i < k;) {
        unsigned j = i;
        while (j + 1 < k && (char *)b[j + 1] == (char *)b[j] + slot_size)
            j++;
        char *lo = b[i];
        char *hi = (char *)b[j] + stack_size;
        (void)madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
        i = j + 1;
    }
}

/* Make room for one more pointer in a growable array of n (doubling from
 * first); false if it cannot grow. */
static bool ptrs_room(void ***arr, size_t *cap, size_t n, size_t first)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : first;
    void **na = tel__mem_alloc(ncap * sizeof(void *));
    if (!na)
        return false;
    if (n)
        memcpy(na, *arr, n * sizeof(void *));
    if (*arr)
        tel__mem_free(*arr, *cap * sizeof(void *));
    *arr = na;
    *cap = ncap;
    return true;
}

/* Under np->lock: the next slot of the node's newest reservation (a new
 * one if it is used up); its stack's base, or NULL. */
static void *carve(struct node_pool *np)
{
    if (np->bump == np->bump_end) {
        if (!ptrs_room(&np->resvs, &np->cap_resvs, np->n_resvs, 16))
            return NULL;
        void *m = mmap(NULL, resv_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        /* TEL_ESYS (one node, no permission): the kernel places it. */
        (void)tel__topo_membind(m, resv_bytes, np->node);
        np->resvs[np->n_resvs++] = m;
        np->bump = m;
        np->bump_end = (char *)m + resv_bytes;
    }
    char *slot = np->bump;
    np->bump += slot_size;
    return slot + STACK_GUARD;
}

/*
 * Outside the lock, once per stack (just carved): install its guard, or in
 * the fallback its canary and, while the budget lasts, a PROT_NONE guard.
 * false if no guard could be had where one is required: the slot is then
 * left unused (until the pool's fini).
 */
static bool arm(void *base)
{
    char *g = (char *)base - STACK_GUARD;
    if (markers)
        return madvise(g, STACK_GUARD, MADV_GUARD_INSTALL) == 0;
    if (atomic_fetch_sub_explicit(&mprotect_left, 1, memory_order_relaxed) >
            0 &&
        mprotect(g, STACK_GUARD, PROT_NONE) == 0)
        atomic_fetch_add_explicit(&n_mprotect, 1, memory_order_relaxed);
    *(volatile uint64_t *)base = STACK_CANARY;
    return true;
}

/* Under np->lock: the cold array's top (a dirty one first), or NULL. */
static void *cold_pop(struct node_pool *np)
{
    if (!np->n_cold)
        return NULL;
    void *b = np->cold[--np->n_cold];
    if (np->n_trimmed > np->n_cold)
        np->n_trimmed = np->n_cold;
    atomic_store_explicit(&np->n_dirty, np->n_cold - np->n_trimmed,
                          memory_order_relaxed);
    return b;
}

/* Under np->lock: a free stack, or NULL (*fresh: carved, not armed). */
static void *take_locked(struct node_pool *np, bool *fresh)
{
    *fresh = false;
    if (np->warm) {
        struct free_stack *l = np->warm;
        np->warm = l->next;
        np->n_warm--;
        return base_of(l);
    }
    if (np->n_cold)
        return cold_pop(np);
    *fresh = true;
    return carve(np);
}

static void *finish_fresh(void *base, bool fresh)
{
    if (!fresh || !base)
        return base;
    if (!arm(base))
        return NULL;
#ifdef STACK_VALGRIND
    if (RUNNING_ON_VALGRIND)
        (void)VALGRIND_STACK_REGISTER(base, (char *)base + stack_size);
#endif
    return base;
}

/* A stack for a thread with no cache (or a cache's own, see refill). */
static void *take_one(struct node_pool *np)
{
    bool fresh;
    tel__mutex_lock(&np->lock);
    void *base = take_locked(np, &fresh);
    tel__mutex_unlock(&np->lock);
    return finish_fresh(base, fresh);
}

/* Cache c is empty: one stack for the caller plus a batch for later. */
static void *refill(struct cache *c)
{
    struct node_pool *np = &nodes[c->node];
    void *cold[STACK_BATCH];
    unsigned n_cold = 0;
    bool fresh;
    tel__mutex_lock(&np->lock);
    void *base = take_locked(np, &fresh);
    if (base) {
        for (unsigned i = 0; i < STACK_BATCH && np->warm; i++) {
            struct free_stack *l = np->warm;
            np->warm = l->next;
            np->n_warm--;
            l->next = c->head;
            c->head = l;
            c->n++;
        }
        /* Cold ones are linked outside the lock: writing the link faults
         * their top page in. */
        while (c->n + n_cold < STACK_BATCH && np->n_cold)
            cold[n_cold++] = cold_pop(np);
    }
    tel__mutex_unlock(&np->lock);
    for (unsigned i = 0; i < n_cold; i++) {
        struct free_stack *l = link_of(cold[i]);
        l->next = c->head;
        c->head = l;
        c->n++;
    }
    return finish_fresh(base, fresh);
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
        return refill(c);
    }
    return take_one(&nodes[0]);
}

/* Under np->lock: append to the cold array (dirty, or trimmed when
 * `trimmed`); false if it cannot grow. */
static bool cold_push(struct node_pool *np, void *base, bool trimmed)
{
    if (!ptrs_room(&np->cold, &np->cap_cold, np->n_cold, 1024))
        return false;
    np->cold[np->n_cold++] = base;
    if (trimmed) {
        /* Below the dirty ones: swap with the lowest dirty one. */
        np->cold[np->n_cold - 1] = np->cold[np->n_trimmed];
        np->cold[np->n_trimmed++] = base;
    }
    atomic_store_explicit(&np->n_dirty, np->n_cold - np->n_trimmed,
                          memory_order_relaxed);
    return true;
}

/* Under np->lock: keep a stack warm (over the bound if need be). */
static void warm_push(struct node_pool *np, void *base)
{
    struct free_stack *l = link_of(base);
    l->next = np->warm;
    np->warm = l;
    np->n_warm++;
}

/*
 * Give a chain of n free stacks (linked through their top words, newest
 * first) to np: warm while the warm list has room, the rest dirty in the
 * cold array (trimmed later by tel__stack_trim_idle, no syscall now), or,
 * once the dirty ones reach dirty_max, trimmed whole at once.
 */
static void give_back(struct node_pool *np, struct free_stack *chain)
{
    void *b[STACK_SPILL];
    unsigned k = 0;
    tel__mutex_lock(&np->lock);
    while (chain && np->n_warm < np->warm_max) {
        struct free_stack *l = chain;
        chain = l->next;
        l->next = np->warm;
        np->warm = l;
        np->n_warm++;
    }
    while (chain) {
        void *base = base_of(chain);
        chain = chain->next;
        if (np->n_cold - np->n_trimmed < np->dirty_max &&
            cold_push(np, base, false))
            continue;
        TEL_ASSERT(k < STACK_SPILL);
        b[k++] = base;
    }
    tel__mutex_unlock(&np->lock);
    if (k == 0)
        return;
    release_many(b, k);
    tel__mutex_lock(&np->lock);
    for (unsigned i = 0; i < k; i++)
        if (TEL_UNLIKELY(!cold_push(np, b[i], true)))
            warm_push(np, b[i]); /* no memory for the array */
    tel__mutex_unlock(&np->lock);
}

void tel__stack_trim_idle(int ci)
{
    struct node_pool *np = &nodes[tel__stack_node_of_cache(ci)];
    for (int round = 0; round < 64; round++) {
        if (atomic_load_explicit(&np->n_dirty, memory_order_relaxed) == 0)
            return;
        void *b[STACK_BATCH];
        unsigned k = 0;
        tel__mutex_lock(&np->lock);
        while (k < STACK_BATCH && np->n_cold > np->n_trimmed)
            b[k++] = cold_pop(np);
        tel__mutex_unlock(&np->lock);
        release_many(b, k);
        tel__mutex_lock(&np->lock);
        for (unsigned i = 0; i < k; i++)
            if (TEL_UNLIKELY(!cold_push(np, b[i], true)))
                warm_push(np, b[i]);
        tel__mutex_unlock(&np->lock);
    }
}

void tel__stack_free(int ci, void *base)
{
#ifdef TEL_ASAN
    /* A process that ended mid-call left poisoned frames; clear them. */
    ASAN_UNPOISON_MEMORY_REGION((char *)base - (canary ? STACK_GUARD : 0),
                                stack_size + (canary ? STACK_GUARD : 0));
#endif
    if (TEL_UNLIKELY(canary))
        *(volatile uint64_t *)base = STACK_CANARY; /* an overflow hit it */
    struct free_stack *l = link_of(base);
    if (ci >= 0) {
        struct cache *c = &caches[ci];
        l->next = c->head;
        c->head = l;
        if (TEL_LIKELY(++c->n <= STACK_CACHE_MAX))
            return;
        /* Overflow: give half back to the node's pool. */
        struct free_stack *first = c->head, *last = first;
        for (unsigned i = 1; i < STACK_SPILL; i++)
            last = last->next;
        c->head = last->next;
        c->n -= STACK_SPILL;
        last->next = NULL;
        give_back(&nodes[c->node], first);
        return;
    }
    l->next = NULL;
    give_back(&nodes[0], l);
}

void tel__stack_free_trim(int ci, void *base, const void *low_sp)
{
    const char *keep_from = (char *)base + stack_size - STACK_KEEP;
    if (TEL_UNLIKELY((const char *)low_sp < keep_from))
        release(base, STACK_KEEP);
    tel__stack_free(ci, base);
}

void tel__stack_stats(struct tel__stack_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->n_nodes = n_nodes;
    out->guard_markers = markers;
    out->n_mprotect = atomic_load_explicit(&n_mprotect, memory_order_relaxed);
    for (unsigned k = 0; k < n_nodes; k++) {
        struct node_pool *np = &nodes[k];
        tel__mutex_lock(&np->lock);
        out->n_warm += np->n_warm;
        out->n_cold += np->n_trimmed;
        out->n_dirty += np->n_cold - np->n_trimmed;
        out->n_resvs += np->n_resvs;
        if (np->warm_max > out->warm_max)
            out->warm_max = np->warm_max;
        if (np->dirty_max > out->dirty_max)
            out->dirty_max = np->dirty_max;
        tel__mutex_unlock(&np->lock);
    }
}
