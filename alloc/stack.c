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
 *     dirty ones pass dirty_max (64 * warm_max: 16,384 stacks a
 *     scheduler; a free stack keeps at most its top 8 KiB, see above, so
 *     that is at most 128 MiB, and a few pages each in practice) by a
 *     chunk of 1,024, a chunk at a time (give_back; up to 8 chunks more
 *     while one is being trimmed). Why not
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
 * Size classes (per-process stack sizes, tel_spawn_opts_t.stack_size).
 * Class 0 is the run's stack size; class k > 0 is 2^(k-1) *
 * TEL_MIN_STACK_SIZE bytes, up to 256 MiB (k = 15). Every class is a whole
 * pool of its own (struct stack_class: per-node pools and per-scheduler
 * caches, the same guards, fallback and trimming), so a stack never
 * changes size and a free finds its pool without a lookup: the caller
 * names the class (sched/ keeps it in the task's flags). A class whose
 * size is the run's size is the run's pool. Other classes are created the
 * first time a stack of theirs is asked for (a mutex, once per class and
 * run) and destroyed with the run's pool. A reservation of a class holds
 * at least one stack (STACK_RESV_BYTES / slot otherwise), so one 256 MiB
 * stack is one mapping of its own. Stacks of a class of 1 MiB or more
 * (STACK_BIG; but the run's class, which trims as it always did) lose all
 * but their top STACK_KEEP bytes every time they are freed with _trim: one madvise per exit of a process that asked for a big stack,
 * and a process that touched megabytes between two switches (which
 * sp_room does not see) cannot leave them resident in the pool.
 *
 * Invariants:
 *   - A free stack is in exactly one cache, warm list or cold array, of
 *     its own class.
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
 * init, before any scheduler thread exists, and read-only after. A class
 * other than the run's is published once (release store into by_class,
 * under class_lock; readers load acquire) and is read-only after, but for
 * its pools and caches, which follow the rules above.
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
#include <sys/syscall.h>
#include <sys/uio.h>
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
/* Dirty stacks trimmed together once the dirty ones pass dirty_max. */
#define STACK_TRIM_CHUNK 1024u
#define STACK_DIRTY_FACTOR 64 /* dirty_max = 64 * warm_max */
#define STACK_BIG ((size_t)1 << 20) /* classes this big trim at every free */

struct stack_class;

struct free_stack {
    struct free_stack *next;
};

struct cache {
    struct free_stack *head;
    unsigned n;
    unsigned node;
    struct stack_class *sc;
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
    bool trimming; /* under lock: give_back trims a chunk (one at a time) */

    struct stack_class *sc;
} TEL_ALIGNED_CL;

/* One size of stack: its pools and caches. Read-only once published, but
 * for the pools and caches themselves. */
struct stack_class {
    size_t size;       /* usable bytes of each stack */
    size_t slot;       /* STACK_GUARD + size */
    size_t per_resv;   /* stacks per reservation */
    size_t resv_bytes; /* per_resv * slot */
    /* A stack freed with a lowest stack pointer below base + trim_from
     * loses all but its top STACK_KEEP bytes: size - STACK_KEEP, or size
     * (always) for the big classes other than the run's (STACK_BIG). */
    size_t trim_from;
    struct node_pool *nodes; /* n_nodes */
    struct cache *caches;    /* n_caches (at least one) */
};

/* Set at init (tel_run's thread, before any scheduler), read-only after. */
static bool markers; /* MADV_GUARD_INSTALL in use */
static bool canary;  /* the fallback: canaries, maybe mprotect guards */
static unsigned n_nodes;
static unsigned n_caches;
static struct stack_class run_sc; /* class 0: the run's stack size */
/* Class k's pools, or NULL until first used; a class of the run's size
 * points at run_sc. Published under class_lock (release), read acquire. */
static _Atomic(struct stack_class *) by_class[STACK_CLASS_MAX + 1];
static pthread_mutex_t class_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned n_other; /* classes with pools of their own */

static _Atomic long mprotect_left; /* fallback guards the budget allows */
static _Atomic size_t n_mprotect;

/* White-box knobs, between runs only. */
static long forced_budget = -1;
static unsigned fake_nodes;

static inline struct free_stack *link_of(const struct stack_class *sc,
                                         void *base)
{
    return (struct free_stack *)((char *)base + sc->size - sizeof(void *));
}

static inline void *base_of(const struct stack_class *sc,
                            struct free_stack *l)
{
    return (char *)l + sizeof(void *) - sc->size;
}

void tel__stack_force_fallback(long mprotect_budget)
{
    forced_budget = mprotect_budget;
}

void tel__stack_fake_nodes(unsigned n)
{
    fake_nodes = n;
}

static atomic_bool vec_refused;

void tel__stack_force_per_range_discard(bool on)
{
    atomic_store_explicit(&vec_refused, on, memory_order_relaxed);
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

/* The node each cache uses (set at init for class 0; others copy it). */
static unsigned cache_node(unsigned i)
{
    return run_sc.caches ? run_sc.caches[i].node : 0;
}

static void class_free(struct stack_class *sc)
{
    for (unsigned k = 0; sc->nodes && k < n_nodes; k++) {
        struct node_pool *np = &sc->nodes[k];
        for (size_t i = 0; i < np->n_resvs; i++)
            munmap(np->resvs[i], sc->resv_bytes);
        if (np->resvs)
            tel__mem_free(np->resvs, np->cap_resvs * sizeof(void *));
        if (np->cold)
            tel__mem_free(np->cold, np->cap_cold * sizeof(void *));
        pthread_mutex_destroy(&np->lock);
    }
    if (sc->nodes)
        tel__mem_free_cl(sc->nodes, sizeof(*sc->nodes) * n_nodes);
    if (sc->caches)
        tel__mem_free_cl(sc->caches,
                         sizeof(*sc->caches) * (n_caches ? n_caches : 1));
    sc->nodes = NULL;
    sc->caches = NULL;
}

/*
 * Set up sc for stacks of size bytes: its node pools and its caches
 * (cache i on node nodes_of[i], or cache_node(i) when nodes_of is NULL).
 * is_run: the run's class (at least 16 stacks a reservation, trimmed only
 * when seen deep); other classes take at least one stack a reservation,
 * and the big ones are trimmed at every free. 0 or TEL_ENOMEM (nothing
 * left allocated).
 */
static int class_init(struct stack_class *sc, size_t size, bool is_run,
                      const unsigned *nodes_of)
{
    size_t min_per_resv = is_run ? 16 : 1;
    memset(sc, 0, sizeof(*sc));
    sc->size = size;
    sc->slot = size + STACK_GUARD;
    sc->per_resv = STACK_RESV_BYTES / sc->slot;
    if (sc->per_resv < min_per_resv)
        sc->per_resv = min_per_resv;
    sc->resv_bytes = sc->per_resv * sc->slot;
    sc->trim_from = size >= STACK_BIG && !is_run ? size : size - STACK_KEEP;
    unsigned nc = n_caches ? n_caches : 1;
    sc->caches = tel__mem_zalloc_cl(sizeof(*sc->caches) * nc);
    sc->nodes = tel__mem_zalloc_cl(sizeof(*sc->nodes) * n_nodes);
    if (!sc->caches || !sc->nodes) {
        if (sc->caches)
            tel__mem_free_cl(sc->caches, sizeof(*sc->caches) * nc);
        if (sc->nodes)
            tel__mem_free_cl(sc->nodes, sizeof(*sc->nodes) * n_nodes);
        sc->caches = NULL;
        sc->nodes = NULL;
        return TEL_ENOMEM;
    }
    size_t per_node[n_nodes];
    memset(per_node, 0, sizeof per_node);
    for (unsigned i = 0; i < n_caches; i++) {
        unsigned nd = nodes_of ? nodes_of[i] : cache_node(i);
        sc->caches[i].node = nd < n_nodes ? nd : 0;
        sc->caches[i].sc = sc;
        per_node[sc->caches[i].node]++;
    }
    for (unsigned k = 0; k < n_nodes; k++) {
        pthread_mutex_init(&sc->nodes[k].lock, NULL);
        sc->nodes[k].node = k;
        sc->nodes[k].sc = sc;
        sc->nodes[k].warm_max =
            2 * (per_node[k] ? per_node[k] : 1) * (size_t)STACK_CACHE_MAX;
        sc->nodes[k].dirty_max = STACK_DIRTY_FACTOR * sc->nodes[k].warm_max;
    }
    return 0;
}

static void discard_open(void);
static void discard_close(void);

int tel__stack_pool_init(size_t size, unsigned n)
{
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
    unsigned nodes_of[n ? n : 1];
    for (unsigned i = 0; i < n; i++)
        nodes_of[i] = fake_nodes ? i % n_nodes : tel__topo_node_of(i);
    int rc = class_init(&run_sc, size, true, nodes_of);
    if (rc)
        return rc;
    discard_open();
    for (unsigned k = 0; k <= STACK_CLASS_MAX; k++)
        atomic_store_explicit(
            &by_class[k],
            k == 0 || tel__stack_class_bytes(k) == size ? &run_sc : NULL,
            memory_order_relaxed);
    return 0;
}

void tel__stack_pool_fini(void)
{
    for (unsigned k = 1; k <= STACK_CLASS_MAX; k++) {
        struct stack_class *sc =
            atomic_load_explicit(&by_class[k], memory_order_acquire);
        if (sc && sc != &run_sc) {
            class_free(sc);
            tel__mem_free(sc, sizeof(*sc));
        }
        atomic_store_explicit(&by_class[k], NULL, memory_order_relaxed);
    }
    atomic_store_explicit(&by_class[0], NULL, memory_order_relaxed);
    atomic_store_explicit(&n_other, 0, memory_order_relaxed);
    class_free(&run_sc);
    discard_close();
    n_nodes = 0;
    n_caches = 0;
}

/* Class k's pools (created on first use), or NULL if out of memory or k
 * is not a class. Any thread. */
static struct stack_class *class_get(unsigned k)
{
    if (TEL_UNLIKELY(k > STACK_CLASS_MAX))
        return NULL;
    struct stack_class *sc =
        atomic_load_explicit(&by_class[k], memory_order_acquire);
    if (TEL_LIKELY(sc != NULL))
        return sc;
    tel__mutex_lock(&class_lock);
    sc = atomic_load_explicit(&by_class[k], memory_order_relaxed);
    if (!sc && run_sc.nodes) {
        sc = tel__mem_alloc(sizeof(*sc));
        if (sc && class_init(sc, tel__stack_class_bytes(k), false, NULL) != 0) {
            tel__mem_free(sc, sizeof(*sc));
            sc = NULL;
        }
        if (sc) { /* release: pairs with the acquire loads of both */
            atomic_store_explicit(&by_class[k], sc, memory_order_release);
            atomic_fetch_add_explicit(&n_other, 1, memory_order_release);
        }
    }
    tel__mutex_unlock(&class_lock);
    return sc;
}

size_t tel__stack_size(void)
{
    return run_sc.size;
}

size_t tel__stack_class_size(unsigned k)
{
    return k == 0 ? run_sc.size : tel__stack_class_bytes(k);
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
    return ci >= 0 && (unsigned)ci < n_caches ? run_sc.caches[ci].node : 0;
}

/*
 * Release a free stack's pages, all but the top `keep` bytes. In the
 * fallback mode the guard region goes too (an overflow may have filled
 * it), and the canary is written again.
 */
static void release(const struct stack_class *sc, void *base, size_t keep)
{
    char *lo = canary ? (char *)base - STACK_GUARD : (char *)base;
    char *hi = (char *)base + sc->size - keep;
    (void)madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
    if (canary)
        *(volatile uint64_t *)base = STACK_CANARY;
}

/*
 * Discarding many ranges. Every madvise(MADV_DONTNEED) ends with a TLB
 * flush, and while another thread of ours runs on another CPU (the other
 * schedulers) that flush is an interrupt to it that the caller waits for:
 * 22-25 us per call on this VM beside one spinning thread, whatever the
 * range's size, so spawn_idle's 1,000,000 exits at -s 2 spent 85% of their
 * time (12 us an exit) in madvise's shootdowns although neighbours were
 * merged. process_madvise(2) on our own pidfd takes a vector of ranges;
 * recent kernels accept any advice for the caller's own process there and
 * flush once per call (this one, 6.18: 0.4-0.5 us a stack in the same
 * test, ranges scattered, 1,024 a call; older kernels take only
 * MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED and MADV_COLLAPSE there). A
 * kernel that refuses (ENOSYS, EINVAL, EPERM) is asked once; madvise per
 * range then. We pass up to 128 ranges a call (a 2 KiB vector on the
 * stack).
 * The pidfd is opened at pool init (before any scheduler runs) and closed
 * at fini; a forked child (another pid) does not use its parent's.
 */
#define DISCARD_VEC 128
static int self_pidfd = -1;
static pid_t self_pid;

static void discard_open(void)
{
    if (self_pidfd >= 0 || atomic_load_explicit(&vec_refused,
                                                memory_order_relaxed))
        return;
    self_pid = getpid();
    long fd = syscall(SYS_pidfd_open, self_pid, 0);
    if (fd < 0) {
        atomic_store_explicit(&vec_refused, true, memory_order_relaxed);
        return;
    }
    (void)fcntl((int)fd, F_SETFD, FD_CLOEXEC); /* pidfd_open sets it too */
    self_pidfd = (int)fd;
}

static void discard_close(void)
{
    if (self_pidfd >= 0)
        (void)close(self_pidfd);
    self_pidfd = -1;
}

/* advice on n ranges with one process_madvise; the number of ranges
 * wholly advised (from the first: the call stops at a range it could not
 * advise), 0 if the call is not available. */
static unsigned advise_vec(const struct iovec *iov, unsigned n, int advice)
{
    if (n == 0 || self_pidfd < 0 ||
        atomic_load_explicit(&vec_refused, memory_order_relaxed) ||
        getpid() != self_pid)
        return 0;
    long r = syscall(SYS_process_madvise, self_pidfd, iov, (size_t)n,
                     advice, 0u);
    if (r < 0) {
        if (errno == ENOSYS || errno == EINVAL || errno == EPERM)
            atomic_store_explicit(&vec_refused, true, memory_order_relaxed);
        return 0;
    }
    unsigned done = 0;
    for (size_t left = (size_t)r; done < n && left >= iov[done].iov_len;
         done++)
        left -= iov[done].iov_len;
    return done;
}

/* MADV_DONTNEED on n ranges (n <= DISCARD_VEC): in one call if it can,
 * the ranges it did not wholly advise one by one. */
static void discard(const struct iovec *iov, unsigned n)
{
    unsigned done = n > 1 ? advise_vec(iov, n, MADV_DONTNEED) : 0;
    for (unsigned i = done; i < n; i++)
        (void)madvise(iov[i].iov_base, iov[i].iov_len, MADV_DONTNEED);
}

/*
 * Trim k free stacks whole (b is reordered). Stacks carved one after the
 * other are neighbours in their reservation, and they tend to be freed
 * together (a batch of processes ends), so adjacent ones make one range,
 * and the ranges go to the kernel DISCARD_VEC at a time (discard above).
 * The guard markers between them survive MADV_DONTNEED. With canaries
 * (the fallback) each stack's range takes its guard region too (an
 * overflow may have filled it), and its canary is put back after.
 */
static int cmp_base(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t) * (void *const *)x;
    uintptr_t b = (uintptr_t) * (void *const *)y;
    return a < b ? -1 : a > b;
}

static void release_many(const struct stack_class *sc, void **b, unsigned k)
{
    struct iovec iov[DISCARD_VEC];
    unsigned n = 0;
    if (!canary)
        qsort(b, k, sizeof(*b), cmp_base);
    for (unsigned i = 0; i < k;) {
        unsigned j = i;
        while (!canary && j + 1 < k &&
               (char *)b[j + 1] == (char *)b[j] + sc->slot)
            j++;
        char *lo = canary ? (char *)b[i] - STACK_GUARD : (char *)b[i];
        char *hi = (char *)b[j] + sc->size;
        iov[n++] = (struct iovec){lo, (size_t)(hi - lo)};
        if (n == DISCARD_VEC) {
            discard(iov, n);
            n = 0;
        }
        i = j + 1;
    }
    if (n > 0)
        discard(iov, n);
    if (canary)
        for (unsigned i = 0; i < k; i++)
            *(volatile uint64_t *)b[i] = STACK_CANARY;
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
        void *m = mmap(NULL, np->sc->resv_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        /* TEL_ESYS (one node, no permission): the kernel places it. */
        (void)tel__topo_membind(m, np->sc->resv_bytes, np->node);
        np->resvs[np->n_resvs++] = m;
        np->bump = m;
        np->bump_end = (char *)m + np->sc->resv_bytes;
    }
    char *slot = np->bump;
    np->bump += np->sc->slot;
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
        return base_of(np->sc, l);
    }
    if (np->n_cold)
        return cold_pop(np);
    *fresh = true;
    return carve(np);
}

static void *finish_fresh(const struct stack_class *sc, void *base,
                          bool fresh)
{
    if (!fresh || !base)
        return base;
    if (!arm(base))
        return NULL;
#ifdef STACK_VALGRIND
    if (RUNNING_ON_VALGRIND)
        (void)VALGRIND_STACK_REGISTER(base, (char *)base + sc->size);
#else
    (void)sc;
#endif
    return base;
}

/* A stack for a thread with no cache (or a cache's own, see refill). */
static TEL_NOINLINE void *take_one(struct node_pool *np)
{
    bool fresh;
    tel__mutex_lock(&np->lock);
    void *base = take_locked(np, &fresh);
    tel__mutex_unlock(&np->lock);
    return finish_fresh(np->sc, base, fresh);
}

/*
 * New stacks in batches. A pool with no free stack carves a new one for
 * every refill, and a new stack cost a lock, a madvise for its guard and a
 * page fault for its top page: about 1,450 of each in skynet's 100,000
 * leaves at -s 2, some 2-3 ms of its 15. So a refill that finds the pool
 * empty carves STACK_BATCH at once, installs their guards with one
 * process_madvise (the vectored call "Discarding many ranges" uses; 0.53
 * instead of 0.88 us a guard here) and faults their top pages in with one
 * more (MADV_POPULATE_WRITE: the link written there, or the process's
 * first frames, would fault each one). The caller gets the first, the
 * cache the rest. A kernel without the vectored call (or one that stops
 * part way) gets a madvise per remaining guard, as before; a stack whose
 * guard cannot be had is left unused, as before. The batch comes from the
 * reservation at hand only (no new mapping for it), and only for classes
 * below STACK_BIG with guard markers: the fallback mode (canaries,
 * mprotect guards under a budget) carves and arms one at a time.
 */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Arm the n stacks at b (just carved); keeps the armed ones at the front
 * of b, in order, and returns how many. */
static unsigned arm_many(void **b, unsigned n)
{
    unsigned done = 0;
    if (markers) {
        struct iovec iov[STACK_BATCH];
        for (unsigned i = 0; i < n; i++)
            iov[i] = (struct iovec){(char *)b[i] - STACK_GUARD, STACK_GUARD};
        done = advise_vec(iov, n, MADV_GUARD_INSTALL);
    }
    unsigned k = done;
    for (unsigned i = done; i < n; i++)
        if (arm(b[i]))
            b[k++] = b[i];
    return k;
}

/* Fault in the top page of the n stacks at b, in one call if it can. */
static void populate_tops(const struct stack_class *sc, void **b, unsigned n)
{
    struct iovec iov[STACK_BATCH];
    for (unsigned i = 0; i < n; i++)
        iov[i] = (struct iovec){(char *)b[i] + sc->size - STACK_PAGE,
                                STACK_PAGE};
    (void)advise_vec(iov, n, MADV_POPULATE_WRITE);
}

/* The n stacks at b were carved for cache c: arm them, the first for the
 * caller (returned; NULL if none could be armed), the rest into c. */
static void *arm_batch(struct cache *c, void **b, unsigned n)
{
    n = arm_many(b, n);
    if (n == 0)
        return NULL;
    if (n > 1)
        populate_tops(c->sc, b, n);
    /* Last first, so that they come out in the order they were carved
     * (neighbours in the reservation). */
    for (unsigned i = n; i-- > 0;) {
#ifdef STACK_VALGRIND
        if (RUNNING_ON_VALGRIND)
            (void)VALGRIND_STACK_REGISTER(b[i], (char *)b[i] + c->sc->size);
#endif
        if (i == 0)
            break;
        struct free_stack *l = link_of(c->sc, b[i]);
        l->next = c->head;
        c->head = l;
        c->n++;
    }
    return b[0];
}

/* Cache c is empty: one stack for the caller plus a batch for later. */
static TEL_NOINLINE void *refill(struct cache *c)
{
    struct node_pool *np = &c->sc->nodes[c->node];
    void *cold[STACK_BATCH];
    unsigned n_cold = 0, n_new = 0;
    bool fresh;
    tel__mutex_lock(&np->lock);
    void *base = take_locked(np, &fresh);
    if (base && fresh) {
        /* Nothing free: a batch of new ones ("New stacks in batches"),
         * from the reservation at hand only (a big class holds a few
         * stacks a reservation: no mapping for stacks nobody asked for),
         * and only with guard markers (the fallback's mprotect budget is
         * not spent ahead of need). */
        cold[n_new++] = base;
        while (markers && n_new < STACK_BATCH && np->bump != np->bump_end &&
               np->sc->size < STACK_BIG)
            cold[n_new++] = carve(np);
    } else if (base) {
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
    if (n_new)
        return arm_batch(c, cold, n_new);
    for (unsigned i = 0; i < n_cold; i++) {
        struct free_stack *l = link_of(c->sc, cold[i]);
        l->next = c->head;
        c->head = l;
        c->n++;
    }
    return base;
}

static inline void *alloc_in(struct stack_class *sc, int ci)
{
    if (ci >= 0) {
        struct cache *c = &sc->caches[ci];
        if (TEL_LIKELY(c->head != NULL)) {
            struct free_stack *l = c->head;
            c->head = l->next;
            c->n--;
            return base_of(sc, l);
        }
        return refill(c);
    }
    return take_one(&sc->nodes[0]);
}

void *tel__stack_alloc(int ci)
{
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    return alloc_in(&run_sc, ci);
}

static TEL_NOINLINE void *alloc_other(int ci, unsigned k)
{
    struct stack_class *sc = class_get(k);
    return sc ? alloc_in(sc, ci) : NULL;
}

void *tel__stack_alloc_class(int ci, unsigned k)
{
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    if (TEL_LIKELY(k == 0))
        return alloc_in(&run_sc, ci);
    return alloc_other(ci, k);
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
    struct free_stack *l = link_of(np->sc, base);
    l->next = np->warm;
    np->warm = l;
    np->n_warm++;
}

/*
 * Give a chain of n free stacks (linked through their top words, newest
 * first) to np: warm while the warm list has room, the rest dirty in the
 * cold array (trimmed later by tel__stack_trim_idle, no syscall now). Once
 * the dirty ones pass dirty_max by STACK_TRIM_CHUNK, the caller trims a
 * chunk of them together, sorted, so that neighbours go in one madvise.
 * One chunk at a time (two threads trimming at once interrupt each other
 * with their TLB shootdowns: 4-6 us an exit instead of 1.3-1.9); frees
 * meanwhile stay dirty, up to a hard bound of 8 chunks over dirty_max,
 * past which a spill is trimmed as it comes. No memory for the chunk's
 * buffer: the dirty ones wait for the next free or an idle scheduler.
 * Trimming each spill as it came (64 stacks, freed by whichever scheduler
 * ended their processes, so rarely neighbours) cost a madvise per few
 * stacks, and with two scheduler threads each madvise a TLB-shootdown
 * interrupt to the other CPU: spawn_idle's 50,000 exits at -s 2 spent 76%
 * of their time there (6 us an exit, against 1.4 us at -s 1).
 */
static TEL_NOINLINE void give_back(struct node_pool *np,
                                   struct free_stack *chain)
{
    void *b[STACK_SPILL];
    unsigned k = 0, tk = 0;
    void **tb = NULL;
    tel__mutex_lock(&np->lock);
    while (chain && np->n_warm < np->warm_max) {
        struct free_stack *l = chain;
        chain = l->next;
        l->next = np->warm;
        np->warm = l;
        np->n_warm++;
    }
    while (chain) {
        void *base = base_of(np->sc, chain);
        chain = chain->next;
        /* A chunk is under way and the dirty ones keep coming: past a
         * hard bound these are trimmed as they come. */
        bool over = np->trimming && np->n_cold - np->n_trimmed >=
                                        np->dirty_max + 8 * STACK_TRIM_CHUNK;
        if (!over && cold_push(np, base, false))
            continue;
        TEL_ASSERT(k < STACK_SPILL);
        b[k++] = base;
    }
    if (!np->trimming &&
        np->n_cold - np->n_trimmed >= np->dirty_max + STACK_TRIM_CHUNK &&
        (tb = tel__mem_alloc(STACK_TRIM_CHUNK * sizeof(void *)))) {
        np->trimming = true;
        while (tk < STACK_TRIM_CHUNK && np->n_cold > np->n_trimmed)
            tb[tk++] = cold_pop(np);
    }
    tel__mutex_unlock(&np->lock);
    if (k) {
        release_many(np->sc, b, k);
        tel__mutex_lock(&np->lock);
        for (unsigned i = 0; i < k; i++)
            if (TEL_UNLIKELY(!cold_push(np, b[i], true)))
                warm_push(np, b[i]); /* no memory for the array */
        tel__mutex_unlock(&np->lock);
    }
    if (!tb)
        return;
    release_many(np->sc, tb, tk);
    tel__mutex_lock(&np->lock);
    for (unsigned i = 0; i < tk; i++)
        if (TEL_UNLIKELY(!cold_push(np, tb[i], true)))
            warm_push(np, tb[i]);
    np->trimming = false;
    tel__mutex_unlock(&np->lock);
    tel__mem_free(tb, STACK_TRIM_CHUNK * sizeof(void *));
}

static void trim_idle_in(struct node_pool *np)
{
    for (int round = 0; round < 64; round++) {
        if (atomic_load_explicit(&np->n_dirty, memory_order_relaxed) == 0)
            return;
        void *b[STACK_BATCH];
        unsigned k = 0;
        tel__mutex_lock(&np->lock);
        while (k < STACK_BATCH && np->n_cold > np->n_trimmed)
            b[k++] = cold_pop(np);
        tel__mutex_unlock(&np->lock);
        release_many(np->sc, b, k);
        tel__mutex_lock(&np->lock);
        for (unsigned i = 0; i < k; i++)
            if (TEL_UNLIKELY(!cold_push(np, b[i], true)))
                warm_push(np, b[i]);
        tel__mutex_unlock(&np->lock);
    }
}

void tel__stack_trim_idle(int ci)
{
    unsigned node = tel__stack_node_of_cache(ci);
    trim_idle_in(&run_sc.nodes[node]);
    for (unsigned k = 1; k <= STACK_CLASS_MAX; k++) {
        struct stack_class *sc =
            atomic_load_explicit(&by_class[k], memory_order_acquire);
        if (sc && sc != &run_sc)
            trim_idle_in(&sc->nodes[node]);
    }
}

static inline void free_in(struct stack_class *sc, int ci, void *base)
{
#ifdef TEL_ASAN
    /* A process that ended mid-call left poisoned frames; clear them. */
    ASAN_UNPOISON_MEMORY_REGION((char *)base - (canary ? STACK_GUARD : 0),
                                sc->size + (canary ? STACK_GUARD : 0));
#endif
    if (TEL_UNLIKELY(canary))
        *(volatile uint64_t *)base = STACK_CANARY; /* an overflow hit it */
    struct free_stack *l = link_of(sc, base);
    if (ci >= 0) {
        struct cache *c = &sc->caches[ci];
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
        give_back(&sc->nodes[c->node], first);
        return;
    }
    l->next = NULL;
    give_back(&sc->nodes[0], l);
}

static inline void free_trim_in(struct stack_class *sc, int ci, void *base,
                                const void *low_sp)
{
    if (TEL_UNLIKELY((const char *)low_sp < (char *)base + sc->trim_from))
        release(sc, base, STACK_KEEP);
    free_in(sc, ci, base);
}

/*
 * The class whose reservations hold base, among the classes with pools of
 * their own; the run's when none does. For frees that do not name the
 * class (tel_run's teardown frees every live process's stack that way);
 * one look at a counter when no other class was ever used.
 */
static struct stack_class *class_of_base(void *base)
{
    if (TEL_LIKELY(atomic_load_explicit(&n_other, memory_order_acquire) == 0))
        return &run_sc;
    for (unsigned k = 1; k <= STACK_CLASS_MAX; k++) {
        struct stack_class *sc =
            atomic_load_explicit(&by_class[k], memory_order_acquire);
        if (!sc || sc == &run_sc)
            continue;
        for (unsigned nd = 0; nd < n_nodes; nd++) {
            struct node_pool *np = &sc->nodes[nd];
            bool in = false;
            tel__mutex_lock(&np->lock);
            for (size_t i = 0; i < np->n_resvs && !in; i++)
                in = (char *)base >= (char *)np->resvs[i] &&
                     (char *)base < (char *)np->resvs[i] + sc->resv_bytes;
            tel__mutex_unlock(&np->lock);
            if (in)
                return sc;
        }
    }
    return &run_sc;
}

void tel__stack_free(int ci, void *base)
{
    free_in(class_of_base(base), ci, base);
}

void tel__stack_free_trim(int ci, void *base, const void *low_sp)
{
    free_trim_in(class_of_base(base), ci, base, low_sp);
}

/* The pools of class k, which must exist (a stack of it was handed out). */
static struct stack_class *class_of_live(unsigned k)
{
    if (TEL_LIKELY(k == 0))
        return &run_sc;
    struct stack_class *sc = k <= STACK_CLASS_MAX
        ? atomic_load_explicit(&by_class[k], memory_order_acquire)
        : NULL;
    if (TEL_UNLIKELY(!sc))
        tel__panic("stack: freeing a stack of a class never allocated");
    return sc;
}

void tel__stack_free_class(int ci, unsigned k, void *base)
{
    free_in(class_of_live(k), ci, base);
}

void tel__stack_free_trim_class(int ci, unsigned k, void *base,
                                const void *low_sp)
{
    if (TEL_LIKELY(k == 0))
        free_trim_in(&run_sc, ci, base, low_sp);
    else
        free_trim_in(class_of_live(k), ci, base, low_sp);
}

static void stats_of(const struct stack_class *sc,
                     struct tel__stack_stats *out)
{
    for (unsigned k = 0; k < n_nodes; k++) {
        struct node_pool *np = &sc->nodes[k];
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

void tel__stack_stats(struct tel__stack_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->n_nodes = n_nodes;
    out->guard_markers = markers;
    out->n_mprotect = atomic_load_explicit(&n_mprotect, memory_order_relaxed);
    if (!run_sc.nodes)
        return;
    stats_of(&run_sc, out);
    for (unsigned k = 1; k <= STACK_CLASS_MAX; k++) {
        struct stack_class *sc =
            atomic_load_explicit(&by_class[k], memory_order_acquire);
        if (sc && sc != &run_sc) {
            stats_of(sc, out);
            out->n_classes++;
        }
    }
}
