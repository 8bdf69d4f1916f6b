/*
 * alloc/numa.c: the runtime's allocator, private jemalloc arenas, one per
 * NUMA node.
 *
 * Owns: the arena of each node (created the first time a run has that
 * node, then reused by every later run), the per-scheduler explicit tcaches
 * of the current run with the arena each one fills from, and the calling
 * thread's allocation flags.
 *
 * Why private names: Debian's libjemalloc.so exports malloc and friends, so
 * linking it would replace the embedding program's allocator, and its static
 * TLS forbids dlopen. The build links jemalloc's PIC archive into libtelar
 * with only mallocx/sdallocx/mallctl kept, renamed tel__je_* (CMakeLists.txt),
 * and the shared library exports none of them.
 *
 * Why an arena per node, picked explicitly: a process block, its messages
 * and its timers are touched mostly by the scheduler that runs it, so they
 * should come from that scheduler's node. Each scheduler's flags name its
 * node's arena (MALLOCX_ARENA) and its own tcache, which fills only from
 * that arena. jemalloc's percpu_arena would do the same by CPU, but it is a
 * process-wide option, keyed on the CPU at the moment of the call rather
 * than the scheduler's home, and would reach the embedder's arenas too.
 * Memory freed on another node goes back to the arena that owns it (through
 * the freeing thread's tcache first, as always in jemalloc).
 *
 * Binding: where more than one node exists and the kernel can bind memory
 * (tel__topo_membind_works), a node's arena gets extent hooks: jemalloc's
 * default hooks with alloc wrapped, so that every new extent (mapped, not
 * yet touched) is bound to the node before its first page fault. Elsewhere
 * (one node, a container that forbids mbind, a synthetic test topology) the
 * arenas are plain, and we say nothing: the runtime has no log, and an
 * unbound arena is still a correct one. A binding that fails is ignored.
 *
 * Node numbers are the run's dense ones (alloc/topo.h). A later run with a
 * different affinity mask may number the nodes differently; extents that
 * arena k already holds then stay bound to the old node. That costs
 * locality, never correctness, and such runs are rare.
 *
 * Concurrency: the arenas are thread-safe (jemalloc); the hooks run on any
 * allocating thread and read only immutable state (their node, the default
 * hooks, topo.c's run state). A tcache is used by one thread only:
 * scheduler i's thread binds slot i; other threads use none. init/fini run
 * on tel_run's thread while no scheduler runs.
 */
#include "alloc/numa.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/base.h"
#include "alloc/failinj.h"
#include "alloc/topo.h"
#include "include/telar.h"

#if defined(TEL_ASAN) || defined(TEL_TSAN) || defined(TEL_LIBC_MALLOC)
#define NUMA_LIBC 1
#endif

static __thread int tls_flags;

#ifndef NUMA_LIBC
/* jemalloc's encoding of mallocx flags (its public ABI). */
#define NUMA_ARENA(a) ((int)(((unsigned)(a) + 1u) << 20))
#define NUMA_TCACHE(tc) ((int)(((tc) + 2) << 8))
#define NUMA_TCACHE_NONE NUMA_TCACHE(-1)
#define NUMA_MAX_TCACHES 1024
#define NUMA_MAX_NODES 64 /* more nodes share arenas, node mod this */

void *tel__je_mallocx(size_t size, int flags);
void tel__je_sdallocx(void *p, size_t size, int flags);
int tel__je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp,
                    size_t newlen);

/* jemalloc's extent_hooks_t (its public ABI since 5.0; jemalloc.h is not
 * included because it declares the unprefixed malloc API). */
struct je_hooks {
    void *(*alloc)(struct je_hooks *, void *, size_t, size_t, bool *, bool *,
                   unsigned);
    bool (*dalloc)(struct je_hooks *, void *, size_t, bool, unsigned);
    void (*destroy)(struct je_hooks *, void *, size_t, bool, unsigned);
    bool (*commit)(struct je_hooks *, void *, size_t, size_t, size_t,
                   unsigned);
    bool (*decommit)(struct je_hooks *, void *, size_t, size_t, size_t,
                     unsigned);
    bool (*purge_lazy)(struct je_hooks *, void *, size_t, size_t, size_t,
                       unsigned);
    bool (*purge_forced)(struct je_hooks *, void *, size_t, size_t, size_t,
                         unsigned);
    bool (*split)(struct je_hooks *, void *, size_t, size_t, size_t, bool,
                  unsigned);
    bool (*merge)(struct je_hooks *, void *, size_t, void *, size_t, bool,
                  unsigned);
};

/* A node's hooks: jemalloc is handed &h and passes it back to alloc. */
struct node_hooks {
    struct je_hooks h; /* first: the hook's pointer is the struct's */
    unsigned node;
};

static unsigned n_arenas; /* arenas[0..n_arenas-1] exist */
static unsigned arenas[NUMA_MAX_NODES];
static struct node_hooks hooks[NUMA_MAX_NODES];
static struct je_hooks *default_hooks; /* jemalloc's own, read once */
static bool force_hooks;
static _Atomic unsigned long n_hook_allocs;

static unsigned n_tc;
static unsigned tcaches[NUMA_MAX_TCACHES];
static unsigned tc_arena[NUMA_MAX_TCACHES];

/*
 * Extent alloc hook: jemalloc's default mapping, then bind it to the node.
 * Any allocating thread, inside jemalloc (which allows reentrant allocation
 * from hooks, served by its arena 0; hwloc allocates with the C library's
 * malloc anyway). A failed bind is ignored: the extent is still good.
 */
static void *node_alloc(struct je_hooks *h, void *addr, size_t size,
                        size_t align, bool *zero, bool *commit, unsigned ind)
{
    void *p = default_hooks->alloc(default_hooks, addr, size, align, zero,
                                   commit, ind);
    atomic_fetch_add_explicit(&n_hook_allocs, 1, memory_order_relaxed);
    if (p)
        (void)tel__topo_membind(p, size, ((struct node_hooks *)h)->node);
    return p;
}

/* Create node k's arena (k == n_arenas), bound to the node when binding can
 * work. 0 or TEL_ENOMEM. */
static int arena_create(unsigned k)
{
    size_t sz = sizeof(unsigned);
    bool bind = force_hooks || tel__topo_membind_works();
    if (bind && !default_hooks) {
        size_t hsz = sizeof(default_hooks);
        if (tel__je_mallctl("arena.0.extent_hooks", &default_hooks, &hsz,
                            NULL, 0) != 0 ||
            !default_hooks)
            bind = false;
    }
    if (bind) {
        hooks[k].h = *default_hooks;
        hooks[k].h.alloc = node_alloc;
        hooks[k].node = k;
        struct je_hooks *hp = &hooks[k].h;
        if (tel__je_mallctl("arenas.create", &arenas[k], &sz, &hp,
                            sizeof(hp)) == 0) {
            n_arenas = k + 1;
            return 0;
        }
    }
    if (tel__je_mallctl("arenas.create", &arenas[k], &sz, NULL, 0) != 0)
        return TEL_ENOMEM;
    n_arenas = k + 1;
    return 0;
}

static inline unsigned node_arena(unsigned node)
{
    return arenas[node % NUMA_MAX_NODES];
}

int tel__mem_init(unsigned n_tcaches)
{
    if (n_tcaches > NUMA_MAX_TCACHES)
        return TEL_EINVAL;
    unsigned nn = tel__topo_nnodes();
    if (nn > NUMA_MAX_NODES)
        nn = NUMA_MAX_NODES;
    while (n_arenas < nn)
        if (arena_create(n_arenas) != 0)
            return TEL_ENOMEM; /* the arenas made so far stay for later */
    for (n_tc = 0; n_tc < n_tcaches; n_tc++) {
        size_t sz = sizeof(unsigned);
        if (tel__je_mallctl("tcache.create", &tcaches[n_tc], &sz, NULL, 0)) {
            tel__mem_fini();
            return TEL_ENOMEM;
        }
        tc_arena[n_tc] = node_arena(tel__topo_node_of(n_tc));
    }
    tls_flags = NUMA_ARENA(arenas[0]) | NUMA_TCACHE_NONE;
    return 0;
}

void tel__mem_fini(void)
{
    for (unsigned i = 0; i < n_tc; i++) {
        unsigned tc = tcaches[i];
        (void)tel__je_mallctl("tcache.destroy", NULL, NULL, &tc, sizeof(tc));
    }
    n_tc = 0;
    for (unsigned k = 0; k < n_arenas; k++) {
        char name[64];
        snprintf(name, sizeof(name), "arena.%u.purge", arenas[k]);
        (void)tel__je_mallctl(name, NULL, NULL, NULL, 0);
    }
    tls_flags = NUMA_ARENA(arenas[0]) | NUMA_TCACHE_NONE;
}

void tel__mem_bind_thread(int slot)
{
    if (slot >= 0 && (unsigned)slot < n_tc)
        tls_flags =
            NUMA_ARENA(tc_arena[slot]) | NUMA_TCACHE((int)tcaches[slot]);
    else
        tls_flags = NUMA_ARENA(arenas[0]) | NUMA_TCACHE_NONE;
}

int tel__mem_arena_of(int slot)
{
    if (slot >= 0 && (unsigned)slot < n_tc)
        return (int)tc_arena[slot];
    return slot == -1 ? (int)arenas[0] : TEL_ENOENT;
}

int tel__mem_arena_owning(const void *p)
{
    unsigned ind;
    size_t sz = sizeof(ind);
    if (!p || tel__je_mallctl("arenas.lookup", &ind, &sz, (void *)&p,
                              sizeof(p)) != 0)
        return TEL_ENOENT;
    return (int)ind;
}

unsigned long tel__mem_test_force_hooks(int on)
{
    force_hooks = on != 0;
    return atomic_load_explicit(&n_hook_allocs, memory_order_relaxed);
}

/* A thread that never bound gets flags 0: fix it up to the arena, no cache. */
static inline int flags_now(void)
{
    int f = tls_flags;
    if (TEL_UNLIKELY(f == 0))
        f = tls_flags = NUMA_ARENA(arenas[0]) | NUMA_TCACHE_NONE;
    return f;
}

void *tel__mem_alloc(size_t size)
{
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    return tel__je_mallocx(size ? size : 1, flags_now());
}

void *tel__mem_zalloc(size_t size)
{
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    return tel__je_mallocx(size ? size : 1, flags_now() | 0x40 /* ZERO */);
}

void tel__mem_free(void *p, size_t size)
{
    if (p)
        tel__je_sdallocx(p, size ? size : 1, flags_now());
}

#define NUMA_LG_ALIGN_CL 6 /* MALLOCX_LG_ALIGN(6): 64 bytes */

void *tel__mem_zalloc_cl(size_t size)
{
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    return tel__je_mallocx(size ? size : 1,
                           flags_now() | 0x40 | NUMA_LG_ALIGN_CL);
}

void tel__mem_free_cl(void *p, size_t size)
{
    if (p)
        tel__je_sdallocx(p, size ? size : 1, flags_now() | NUMA_LG_ALIGN_CL);
}

/* MALLOCX_ALIGN(a): log2(a) in the low six bits. */
#define NUMA_LG_ALIGN(a) (__builtin_ctzl(a))

void *tel__mem_alloc_aligned(size_t size, size_t align)
{
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    return tel__je_mallocx(size, flags_now() | NUMA_LG_ALIGN(align));
}

void tel__mem_free_aligned(void *p, size_t size, size_t align)
{
    if (p)
        tel__je_sdallocx(p, size, flags_now() | NUMA_LG_ALIGN(align));
}

#else /* NUMA_LIBC: sanitizer builds */

int tel__mem_init(unsigned n_tcaches)
{
    (void)n_tcaches;
    return 0;
}

void tel__mem_fini(void) {}

void tel__mem_bind_thread(int slot)
{
    tls_flags = slot;
}

int tel__mem_arena_of(int slot)
{
    (void)slot;
    return TEL_ENOENT;
}

int tel__mem_arena_owning(const void *p)
{
    (void)p;
    return TEL_ENOENT;
}

unsigned long tel__mem_test_force_hooks(int on)
{
    (void)on;
    return 0;
}

void *tel__mem_alloc(size_t size)
{
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    return malloc(size ? size : 1);
}

void *tel__mem_zalloc(size_t size)
{
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    return calloc(1, size ? size : 1);
}

void tel__mem_free(void *p, size_t size)
{
    (void)size;
    free(p);
}

void *tel__mem_zalloc_cl(size_t size)
{
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    size_t n = (size + TEL_CACHELINE - 1) & ~(size_t)(TEL_CACHELINE - 1);
    void *p = aligned_alloc(TEL_CACHELINE, n ? n : TEL_CACHELINE);
    if (p)
        memset(p, 0, n ? n : TEL_CACHELINE);
    return p;
}

void tel__mem_free_cl(void *p, size_t size)
{
    (void)size;
    free(p);
}

void *tel__mem_alloc_aligned(size_t size, size_t align)
{
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    return aligned_alloc(align, size);
}

void tel__mem_free_aligned(void *p, size_t size, size_t align)
{
    (void)size;
    (void)align;
    free(p);
}
#endif
