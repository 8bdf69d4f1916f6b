/*
 * core/pid.c: the pid table: generation-tagged slots; lookups reject stale
 * pids; a process block is never freed under a sender.
 *
 * Owns: an array of slots (one anonymous mapping, only touched pages
 * resident), the free-slot lists, and the live-process count.
 *
 * A pid is gen << 28 | index (gen: 36 bits, starting at 1, so 0 is never a
 * pid). A slot's word is gen << 28 | ALIVE << 27 | refs (27 bits).
 *   - spawn stores the proc pointer, then publishes gen | ALIVE (release).
 *   - A sender on a scheduler thread looks up without a reference
 *     (tel__pid_lookup): word, proc pointer, word again; the pointer is the
 *     pid's if the word still has its gen and ALIVE. The block stays valid
 *     until that scheduler's next switch, because exited blocks are retired
 *     through sched/epoch.h, not freed.
 *   - Any other thread CASes refs + 1 only while the word's gen matches its
 *     pid and ALIVE is set (acquire: pairs with the publishing release),
 *     uses the proc, then subtracts 1 (release).
 *   - Exit clears ALIVE (seq_cst: the unlink epoch.c's proof starts from).
 *     Whoever sees ALIVE clear with refs at 0, the exit itself or the last
 *     referencing thread, frees the slot (bumping gen, so every old pid
 *     misses) and retires the block: exactly one.
 * So a process block is never freed under a sender, without a lock, and an
 * exit never waits for senders (a sender descheduled by the OS mid-send just
 * delays the reclamation).
 *
 * Invariants:
 *   - live <= reserved <= max_procs, where live = reserved minus the
 *     schedulers' unspent credit (below). The table has room for max_procs
 *     plus every slot the caches may hold, so a slot is always found when
 *     a reservation succeeded.
 *
 * Counting processes against max_procs without a shared counter: one
 * counter that every spawn and exit updated bounced between the CPUs (at
 * s=2, spawn_exit ran 92 ns per process with it and 75 without). So
 * `reserved` counts slots handed out, and each scheduler spends its own
 * credit: a spawn takes one (refilling a batch from `reserved` when out), an
 * exit on that scheduler gives one back (returning a batch past two). Only
 * when `reserved` is at max_procs does a spawn look at the other schedulers'
 * credit, so the limit stays exact.
 *   - gen wraps after 2^36 reuses of one slot (not before).
 *
 * Free slots are chained through their own `next` field (the slot's second
 * word, which holds the proc pointer only while the slot is in use), so
 * slots move between a cache and the shared list a whole chain at a time,
 * never one by one: a scheduler gives a chain of PID_BATCH to the shared
 * list when it holds two, and takes one back when it has none.
 *
 * Concurrency: cache i belongs to scheduler i; the shared list of chains is
 * under a mutex taken once per chain; `next_unused` is an atomic bump.
 */
#include "core/pid.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc/lock.h"
#include "alloc/base.h"
#include "alloc/numa.h"
#include "core/process.h"

#define PID_IDX_MASK ((1ull << PID_IDX_BITS) - 1)
#define PID_GEN_SHIFT PID_IDX_BITS
#define PID_GEN_MAX ((1ull << (64 - PID_IDX_BITS)) - 1)
#define W_ALIVE (1ull << 27)
#define W_REFS ((1ull << 27) - 1)
#define PID_BATCH 64
#define NIL UINT32_MAX

struct slot {
    _Atomic uint64_t word;
    union {
        /* The pid's block while ALIVE or refs > 0. Atomic: a lookup may
         * read it while a spawn that reuses the slot writes it, or while an
         * exit writes `next` (the lookup then sees the word change and
         * discards what it read). */
        _Atomic(struct proc *) proc;
        /* While free: the next free slot of its chain, or NIL. Its writer
         * and readers are the chain's holder (a cache's owner, or whoever
         * holds flock). */
        _Atomic uint64_t next;
    };
};

/* A chain of free slots linked through `next`: head index and length (the
 * length ends it; the last slot's `next` need not be NIL). A chain in a
 * cache or on the shared stack holds at most PID_BATCH slots. */
struct chain {
    uint32_t head, n;
};

#define CREDIT_BATCH 64

struct pcache {
    struct chain cur;  /* taken from and given to first */
    struct chain full; /* a chain of PID_BATCH, or n == 0 */
    /* Reserved but unused process slots; the owner spends and refunds,
     * others take from it only at the limit. */
    _Atomic int64_t credit;
} TEL_ALIGNED_CL;

static struct slot *slots;
void *tel__pid_table;
_Static_assert(sizeof(struct slot) == 16, "tel__pid_prefetch's slot size");
static size_t map_bytes;
static uint32_t cap;
static uint32_t max_live;
static _Atomic uint64_t reserved TEL_ALIGNED_CL;
static _Atomic uint32_t next_unused TEL_ALIGNED_CL;
static pthread_mutex_t flock = PTHREAD_MUTEX_INITIALIZER;
/* Under flock: chains given back by schedulers (a stack of them), and the
 * single slots freed by other threads (one chain). */
static struct chain *gfree;
static uint32_t n_gfree;
static struct chain loose;
static struct pcache *caches;
static unsigned n_caches;

int tel__pid_init(uint32_t max_procs, unsigned nc)
{
    max_live = max_procs;
    n_caches = nc;
    cap = max_procs + nc * 2 * PID_BATCH + 1;
    map_bytes = (size_t)cap * sizeof(struct slot);
    void *m = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return TEL_ENOMEM;
    slots = m;
    tel__pid_table = m;
    /* The shared stack holds at most cap chains; mapped lazily too. */
    void *g = mmap(NULL, (size_t)cap * sizeof(struct chain),
                   PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (g == MAP_FAILED) {
        munmap(m, map_bytes);
        return TEL_ENOMEM;
    }
    gfree = g;
    n_gfree = 0;
    caches = tel__mem_zalloc_cl(sizeof(*caches) * (nc ? nc : 1));
    if (!caches) {
        munmap(g, (size_t)cap * sizeof(struct chain));
        munmap(m, map_bytes);
        return TEL_ENOMEM;
    }
    for (unsigned i = 0; i < (nc ? nc : 1); i++)
        caches[i].cur.head = caches[i].full.head = NIL;
    loose = (struct chain){NIL, 0};
    atomic_store_explicit(&reserved, 0, memory_order_relaxed);
    atomic_store_explicit(&next_unused, 0, memory_order_relaxed);
    return 0;
}

void tel__pid_fini(void)
{
    munmap(slots, map_bytes);
    munmap(gfree, (size_t)cap * sizeof(struct chain));
    tel__mem_free_cl(caches, sizeof(*caches) * (n_caches ? n_caches : 1));
    slots = NULL;
    tel__pid_table = NULL;
    gfree = NULL;
    caches = NULL;
}

static inline uint32_t next_of(uint32_t idx)
{
    return (uint32_t)atomic_load_explicit(&slots[idx].next,
                                          memory_order_relaxed);
}

/* Pop c's head (c->n > 0). */
static inline uint32_t chain_pop(struct chain *c)
{
    uint32_t idx = c->head;
    c->head = next_of(idx);
    c->n--;
    return idx;
}

static TEL_NOINLINE bool take_slot_slow(int ci, uint32_t *idx)
{
    if (ci >= 0) {
        struct pcache *c = &caches[ci];
        if (c->full.n) {
            c->cur = c->full;
            c->full = (struct chain){NIL, 0};
            *idx = chain_pop(&c->cur);
            return true;
        }
        tel__mutex_lock(&flock);
        if (n_gfree) {
            c->cur = gfree[--n_gfree];
        } else if (loose.n) {
            /* At most a chain's worth: a cache holds fewer than
             * 2 * PID_BATCH slots, which `cap` counts on. */
            uint32_t k = loose.n < PID_BATCH ? loose.n : PID_BATCH;
            uint32_t last = loose.head;
            for (uint32_t i = 1; i < k; i++)
                last = next_of(last);
            c->cur = (struct chain){loose.head, k};
            loose.head = next_of(last); /* cur's n ends it, not a NIL */
            loose.n -= k;
        }
        tel__mutex_unlock(&flock);
        if (c->cur.n) {
            *idx = chain_pop(&c->cur);
            return true;
        }
    } else {
        tel__mutex_lock(&flock);
        bool ok = true;
        if (loose.n) {
            *idx = chain_pop(&loose);
        } else if (n_gfree) {
            *idx = chain_pop(&gfree[n_gfree - 1]);
            if (!gfree[n_gfree - 1].n)
                n_gfree--;
        } else {
            ok = false;
        }
        tel__mutex_unlock(&flock);
        if (ok)
            return true;
    }
    uint32_t i = atomic_fetch_add_explicit(&next_unused, 1,
                                           memory_order_relaxed);
    if (i >= cap) {
        atomic_fetch_sub_explicit(&next_unused, 1, memory_order_relaxed);
        return false;
    }
    /* A fresh slot: generation 1. */
    atomic_store_explicit(&slots[i].word, 1ull << PID_GEN_SHIFT,
                          memory_order_relaxed);
    *idx = i;
    return true;
}

/* A free slot for cache ci (or -1): its own chain first. */
static inline bool take_slot(int ci, uint32_t *idx)
{
    if (TEL_LIKELY(ci >= 0) && TEL_LIKELY(caches[ci].cur.n)) {
        *idx = chain_pop(&caches[ci].cur);
        return true;
    }
    return take_slot_slow(ci, idx);
}

/* Push idx (free, its word already bumped) on c. Release: a lookup that
 * read this `next` as its proc pointer (then an acquire fence) must see the
 * bumped word on its second load, and so discard it (a plain store on
 * x86). */
static inline void chain_push(struct chain *c, uint32_t idx)
{
    atomic_store_explicit(&slots[idx].next, c->head, memory_order_release);
    c->head = idx;
    c->n++;
}

static TEL_NOINLINE void put_slot_slow(int ci, uint32_t idx)
{
    if (ci >= 0) {
        struct pcache *c = &caches[ci];
        /* cur is a whole chain: it becomes `full`, and the old `full`, if
         * any, goes to the shared list. */
        if (c->full.n) {
            tel__mutex_lock(&flock);
            gfree[n_gfree++] = c->full;
            tel__mutex_unlock(&flock);
        }
        c->full = c->cur;
        c->cur = (struct chain){NIL, 0};
        return;
    }
    tel__mutex_lock(&flock);
    chain_push(&loose, idx);
    tel__mutex_unlock(&flock);
}

/* Give idx back to cache ci (or -1). */
static inline void put_slot(int ci, uint32_t idx)
{
    if (TEL_LIKELY(ci >= 0)) {
        struct chain *c = &caches[ci].cur;
        chain_push(c, idx);
        if (TEL_LIKELY(c->n < PID_BATCH))
            return;
    }
    put_slot_slow(ci, idx);
}

static bool take_credit(_Atomic int64_t *c)
{
    int64_t v = atomic_load_explicit(c, memory_order_relaxed);
    while (v > 0)
        if (atomic_compare_exchange_weak_explicit(c, &v, v - 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    return false;
}

static TEL_NOINLINE bool reserve_slow(int ci)
{
    uint64_t want = ci >= 0 ? CREDIT_BATCH : 1;
    uint64_t r = atomic_load_explicit(&reserved, memory_order_relaxed);
    while (r < max_live) {
        uint64_t take = max_live - r < want ? max_live - r : want;
        if (atomic_compare_exchange_weak_explicit(&reserved, &r, r + take,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            if (take > 1)
                atomic_fetch_add_explicit(&caches[ci].credit,
                                          (int64_t)take - 1,
                                          memory_order_relaxed);
            return true;
        }
    }
    /* At the limit: unspent credit anywhere is still room. */
    for (unsigned k = 0; k < n_caches; k++)
        if (take_credit(&caches[k].credit))
            return true;
    return false;
}

/* Count one more process against max_procs. ci: the caller's scheduler or
 * -1. */
static inline bool reserve(int ci)
{
    if (TEL_LIKELY(ci >= 0) && take_credit(&caches[ci].credit))
        return true;
    return reserve_slow(ci);
}

static void unreserve(int ci)
{
    if (ci < 0) {
        atomic_fetch_sub_explicit(&reserved, 1, memory_order_relaxed);
        return;
    }
    _Atomic int64_t *c = &caches[ci].credit;
    int64_t v = atomic_fetch_add_explicit(c, 1, memory_order_relaxed) + 1;
    while (v > 2 * CREDIT_BATCH) {
        if (atomic_compare_exchange_weak_explicit(c, &v, v - CREDIT_BATCH,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            atomic_fetch_sub_explicit(&reserved, CREDIT_BATCH,
                                      memory_order_relaxed);
            return;
        }
    }
}

int tel__pid_alloc(int ci, struct proc *p, tel_pid_t *out)
{
    if (!reserve(ci))
        return TEL_ELIMIT;
    uint32_t idx;
    if (!take_slot(ci, &idx)) {
        unreserve(ci);
        return TEL_ELIMIT;
    }
    /* The next spawn's slot: its line may have been freed on another CPU
     * (a prefetch for writing). */
    if (TEL_LIKELY(ci >= 0) && caches[ci].cur.n)
        __builtin_prefetch(&slots[caches[ci].cur.head], 1, 3);
    struct slot *sl = &slots[idx];
    uint64_t w = atomic_load_explicit(&sl->word, memory_order_relaxed);
    uint64_t gen = w >> PID_GEN_SHIFT;
    tel_pid_t pid = (gen << PID_GEN_SHIFT) | idx;
    p->pid = pid;
    atomic_store_explicit(&sl->proc, p, memory_order_relaxed);
    /* release: pairs with the acquire CAS in tel__pid_ref. */
    atomic_store_explicit(&sl->word, (gen << PID_GEN_SHIFT) | W_ALIVE,
                          memory_order_release);
    *out = pid;
    return 0;
}

static inline struct slot *slot_of(tel_pid_t pid)
{
    uint64_t idx = pid & PID_IDX_MASK;
    if (TEL_UNLIKELY(idx >= atomic_load_explicit(&next_unused,
                                                 memory_order_relaxed)))
        return NULL;
    return &slots[idx];
}

struct proc *tel__pid_ref(tel_pid_t pid)
{
    struct slot *sl = slot_of(pid);
    if (!sl)
        return NULL;
    uint64_t gen = pid >> PID_GEN_SHIFT;
    uint64_t w = atomic_load_explicit(&sl->word, memory_order_relaxed);
    for (;;) {
        if ((w >> PID_GEN_SHIFT) != gen || !(w & W_ALIVE))
            return NULL;
        if (TEL_UNLIKELY((w & W_REFS) == W_REFS))
            tel__panic("pid: reference count overflow");
        if (atomic_compare_exchange_weak_explicit(&sl->word, &w, w + 1,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return atomic_load_explicit(&sl->proc, memory_order_relaxed);
    }
}

struct proc *tel__pid_lookup(tel_pid_t pid)
{
    struct slot *sl = slot_of(pid);
    if (!sl)
        return NULL;
    const uint64_t key = pid >> PID_GEN_SHIFT << PID_GEN_SHIFT | W_ALIVE;
    const uint64_t mask = ~W_REFS;
    /* seq_cst: see the proof in sched/epoch.c (plain loads on x86). */
    uint64_t w = atomic_load_explicit(&sl->word, memory_order_seq_cst);
    if ((w & mask) != key)
        return NULL;
    struct proc *p = atomic_load_explicit(&sl->proc, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    w = atomic_load_explicit(&sl->word, memory_order_relaxed);
    return (w & mask) == key ? p : NULL;
}

static inline void free_slot(tel_pid_t pid, int ci);

static inline int self_ci(void)
{
    struct sched *s = tel__sched_self();
    return s ? s->cache : -1;
}

void tel__pid_unref(struct proc *p)
{
    tel_pid_t pid = p->pid;
    struct slot *sl = &slots[pid & PID_IDX_MASK];
    uint64_t w = atomic_fetch_sub_explicit(&sl->word, 1, memory_order_seq_cst);
    if (TEL_UNLIKELY(((w - 1) & (W_ALIVE | W_REFS)) == 0)) {
        /* The process exited while we held it: ours to finish. */
        free_slot(pid, self_ci());
        tel__proc_retire(p);
    }
}

bool tel__pid_exit(struct proc *p)
{
    tel_pid_t pid = p->pid;
    struct slot *sl = &slots[pid & PID_IDX_MASK];
    int ci = self_ci();
    unreserve(ci);
    /* ALIVE is set (only this, once per pid, clears it): subtracting it
     * clears it, in one exchange-add where an and returning the old word
     * is a compare-exchange loop on x86. seq_cst: the unlink epoch.c's
     * proof starts from. */
    uint64_t w = atomic_fetch_sub_explicit(&sl->word, W_ALIVE,
                                           memory_order_seq_cst);
    TEL_ASSERT(w & W_ALIVE);
    if ((w & W_REFS) != 0)
        return false; /* the last tel__pid_unref finishes */
    free_slot(pid, ci);
    return true;
}

static inline void free_slot(tel_pid_t pid, int ci)
{
    uint32_t idx = (uint32_t)(pid & PID_IDX_MASK);
    uint64_t gen = (pid >> PID_GEN_SHIFT) + 1;
    if (gen > PID_GEN_MAX)
        gen = 1;
    atomic_store_explicit(&slots[idx].word, gen << PID_GEN_SHIFT,
                          memory_order_release);
    put_slot(ci, idx);
}

bool tel__pid_alive(tel_pid_t pid)
{
    struct slot *sl = slot_of(pid);
    if (!sl || pid == 0)
        return false;
    uint64_t w = atomic_load_explicit(&sl->word, memory_order_acquire);
    return (w >> PID_GEN_SHIFT) == (pid >> PID_GEN_SHIFT) && (w & W_ALIVE);
}

uint32_t tel__pid_live(void)
{
    int64_t n = (int64_t)atomic_load_explicit(&reserved, memory_order_relaxed);
    for (unsigned k = 0; k < n_caches; k++)
        n -= atomic_load_explicit(&caches[k].credit, memory_order_relaxed);
    return n > 0 ? (uint32_t)n : 0; /* a snapshot: racing updates skew it */
}

void tel__pid_foreach_live(void (*fn)(struct proc *p))
{
    uint32_t n = atomic_load_explicit(&next_unused, memory_order_relaxed);
    if (n > cap)
        n = cap;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t w = atomic_load_explicit(&slots[i].word, memory_order_relaxed);
        if (w & W_ALIVE)
            fn(atomic_load_explicit(&slots[i].proc, memory_order_relaxed));
    }
}
