/*
 * alloc/numa.c: the runtime's allocator, a private jemalloc arena.
 *
 * Owns: the arena index (created once per program, reused by every run), the
 * per-scheduler explicit tcaches of the current run, and the calling thread's
 * tcache binding.
 *
 * Why private names: Debian's libjemalloc.so exports malloc and friends, so
 * linking it would replace the embedding program's allocator, and its static
 * TLS forbids dlopen. The build links jemalloc's PIC archive into libtelar
 * with only mallocx/sdallocx/mallctl kept, renamed tel__je_* (CMakeLists.txt),
 * and the shared library exports none of them.
 *
 * One arena for now; the memory issue makes it one per NUMA node, bound with
 * extent hooks.
 *
 * Concurrency: the arena is thread-safe (jemalloc). A tcache is used by one
 * thread only: scheduler i's thread binds slot i; other threads use none.
 * init/fini run on tel_run's thread while no scheduler runs.
 */
#include "alloc/numa.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/base.h"
#include "alloc/failinj.h"
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

void *tel__je_mallocx(size_t size, int flags);
void tel__je_sdallocx(void *p, size_t size, int flags);
int tel__je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp,
                    size_t newlen);

static bool arena_ready;
static unsigned arena;
static unsigned n_tc;
static unsigned tcaches[NUMA_MAX_TCACHES];

int tel__mem_init(unsigned n_tcaches)
{
    if (n_tcaches > NUMA_MAX_TCACHES)
        return TEL_EINVAL;
    if (!arena_ready) {
        size_t sz = sizeof(arena);
        if (tel__je_mallctl("arenas.create", &arena, &sz, NULL, 0) != 0)
            return TEL_ENOMEM;
        arena_ready = true;
    }
    for (n_tc = 0; n_tc < n_tcaches; n_tc++) {
        size_t sz = sizeof(unsigned);
        if (tel__je_mallctl("tcache.create", &tcaches[n_tc], &sz, NULL, 0)) {
            tel__mem_fini();
            return TEL_ENOMEM;
        }
    }
    tls_flags = NUMA_ARENA(arena) | NUMA_TCACHE_NONE;
    return 0;
}

void tel__mem_fini(void)
{
    for (unsigned i = 0; i < n_tc; i++) {
        unsigned tc = tcaches[i];
        (void)tel__je_mallctl("tcache.destroy", NULL, NULL, &tc, sizeof(tc));
    }
    n_tc = 0;
    char name[64];
    snprintf(name, sizeof(name), "arena.%u.purge", arena);
    (void)tel__je_mallctl(name, NULL, NULL, NULL, 0);
    tls_flags = NUMA_ARENA(arena) | NUMA_TCACHE_NONE;
}

void tel__mem_bind_thread(int slot)
{
    if (slot >= 0 && (unsigned)slot < n_tc)
        tls_flags = NUMA_ARENA(arena) | NUMA_TCACHE((int)tcaches[slot]);
    else
        tls_flags = NUMA_ARENA(arena) | NUMA_TCACHE_NONE;
}

/* A thread that never bound gets flags 0: fix it up to the arena, no cache. */
static inline int flags_now(void)
{
    int f = tls_flags;
    if (TEL_UNLIKELY(f == 0))
        f = tls_flags = NUMA_ARENA(arena) | NUMA_TCACHE_NONE;
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
