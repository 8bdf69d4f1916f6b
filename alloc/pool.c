/*
 * alloc/pool.c: per-scheduler pools of small blocks, carved from slabs that
 * name their owner; a block freed anywhere goes back to its owner.
 *
 * Owns: the slabs (64 KiB, aligned to 64 KiB, from numa.c), one pool per
 * scheduler slot and one shared pool for threads that are not schedulers;
 * per pool and size class (64, 128, 256, 512 bytes) a LIFO free list, the
 * pool's slabs on three lists (full, partial, empty) and a lock-free
 * return stack; per slab a free list of its own; the calling
 * thread's binding to a pool; a count of the slabs held.
 *
 * The problem. Messages, process blocks, wait and send timers are
 * allocated on one scheduler and often freed on another (a message crosses
 * schedulers, a process is stolen). The pools used to be tcaches: a free went into the
 * freeing thread's cache, so blocks drifted between schedulers, and with
 * NUMA nodes they would drift off their node. The issue asks that a free
 * from elsewhere return the block to its owner without a lock on the
 * owner's fast path, that shutdown return everything, and that messages
 * take nothing from the global allocator on the fast path.
 *
 * Rejected: a header word per block naming its owner (a 64-byte message
 * would need 128); a lookup table from address to owner (a load we do not
 * need, see below); a lock per pool (the owner would pay it on every alloc);
 * mimalloc's free list per slab plus a remote list per slab (the owner must
 * then find the slabs that have remote frees: a second protocol, "delayed
 * free", for slabs that were full). Batching remote frees on the freeing
 * side (snmalloc's way) was first rejected too: the blocks sit out of
 * reach of their owner until a flush, which needs flush points. It is
 * used now, in a small form (see free_remote, "Remote frees in batches"):
 * a batch holds at most 32 blocks per class, and a scheduler about to
 * sleep flushes.
 *
 * Chosen. A slab is aligned to its size, and its first block-sized slot is
 * its header, so the owner of any block is one mask and one load away (no
 * per-block header, no lookup). A free whose slab names the calling thread's
 * pool is a push on a plain list: no atomic, as before. Any other free (a
 * scheduler freeing another's block, a foreign thread, tel_run's thread
 * during teardown) pushes the block on the owner's return stack for that
 * class with one CAS (release); a scheduler pushes them in chains of up to
 * 32 (free_remote). The owner looks at its return stack only
 * when its list for that class is empty, and then takes the whole stack
 * with one exchange (acquire): as only the owner pops, and it takes
 * everything, the stack has no ABA problem, and a pusher never reads
 * another block. Only when the return stack is empty too does the owner
 * carve a new slab.
 *
 * Threads that are not schedulers (an embedding thread sending, tel_run's
 * thread creating the first process) allocate from the shared pool under a
 * spinlock; frees never take it (they go to its return stack like any
 * remote free), so a block a foreign thread sent can be freed by the
 * receiving scheduler as usual. The lock is a leaf (alloc/lock.h).
 *
 * Bounded memory. A pool keeps the free blocks of its own slabs only, so it
 * never holds more than its own peak (blocks do not drift in). Its list
 * per class holds at most pool_keep[class] blocks on a local free; a local
 * free past that bound goes to the block's own slab: each slab has a free
 * list and a count in its header's second line (the owner's alone), and
 * sits on one of three lists of its pool (full: nothing on its list;
 * partial; empty: every block free). A slab whose last block comes back
 * is kept (POOL_EMPTY_KEEP per class, for the next carving) or given back
 * to numa.c at once: O(1), no walk. A refill (the pool's list is empty)
 * takes the return stack first, then a partial slab's whole list, then a
 * kept empty slab's, and only then carves. Blocks on the pool's list keep
 * their slabs from being empty: that is the bound's worth of memory, not
 * more.
 *
 * Rejected, the earlier design: one list per class and no per-slab state;
 * a list longer than a threshold was walked to count each slab's free
 * blocks, and slabs all free were given back, the threshold then doubling
 * (amortised O(1)). But each walk touched every free block (a cache miss
 * each), and a receiver draining a backlog did it on its own free path:
 * fanin -s 2 1000 10000 walked 4.5M blocks in 857 walks and gave back (then
 * carved again) 2,186 slabs; trim was 11% of its samples, on the thread
 * that bounds its throughput. One walk of a list of millions stalls its
 * process for milliseconds, too. The cost now: a free past the bound
 * writes its slab's header line (about 15 instructions, the slow path),
 * and a class-64 slab gives one block to the two-line header (1022 a slab,
 * not 1023). The header's first line, read by every free on any thread,
 * is written only when the slab is made and in fini, so it stays shared;
 * the owner's writes go to the second.
 *
 * Blocks freed remotely to a pool that has stopped allocating wait on its
 * stack until it allocates again or the run ends (up to its own peak: a
 * scheduler whose senders are done while the receiver elsewhere frees
 * their messages); so a scheduler about to sleep calls
 * tel__pool_trim_idle, which takes a return stack longer than the list
 * may grow and sends the excess to the slabs as a local free would
 * (nobody waits for that thread then: the walk of the chain costs no
 * latency). A refill takes a return stack without walking it: its blocks
 * were out of their slabs and stay out, on the pool's list. The count of a
 * return stack comes with the exchange (POOL_TAG): a first version walked
 * each taken chain to count it, and fanin -s 2 spent 40% of its time in
 * that walk (each block a cache miss).
 *
 * Shutdown. tel__pool_fini (after every scheduler stopped) counts the free
 * blocks of each slab in the lists and return stacks: a slab all free goes
 * back to numa.c; a slab with blocks still out (a message the user kept:
 * tel_msg_free is allowed after tel_run returns) becomes an orphan, with
 * live = the number of blocks out; each later free of one of them drops
 * live, and the last one frees the slab. So a run frees every slab it made
 * and tel_run called twice does not grow (tel__pool_n_slabs() is 0 between
 * runs).
 *
 * Invariants:
 *   - A block on a pool's list or return stack belongs to one of that pool's
 *     slabs, or to an orphan slab (see the race below); its first word links
 *     to the next one.
 *   - slab->owner is the pool that carved it, or POOL_ORPHAN; it changes only
 *     once, in fini, and an orphan's live counts its blocks not yet freed.
 *   - A pool's list for class c holds n blocks; every slab on its slab
 *     lists for c has class c and is on exactly one of them.
 *   - A slab's own list holds nfree blocks. Its blocks are each on that
 *     list, on its pool's list or return stack, uncarved, or out.
 *   - A slab on the empty list has every block free (nfree + uncarved ==
 *     POOL_CAP); a slab not all free with blocks on its own list is on the
 *     partial list; the rest are on the full list.
 *
 * Concurrency:
 *   - A pool's lists, counts and slab lists: its owner thread only (the
 *     shared pool: under its lock), and tel_run's thread in init/fini while
 *     no scheduler runs (thread start and join order those).
 *   - ret[c]: pushed by any thread (CAS, release: pairs with the owner's
 *     exchange, acquire, which makes the pusher's link write and ASan
 *     poisoning visible before the owner reads or reuses the block).
 *   - slab->owner: stored relaxed when the slab is made (the blocks reach
 *     other threads only inside messages or queues that release them), and
 *     stored POOL_ORPHAN with release in fini after live (relaxed); a free
 *     that sees POOL_ORPHAN loads it again with acquire before touching live.
 *   - The race to watch: a foreign thread may free a message while tel_run
 *     tears down. It loads owner = pool P, fini then drains P, finds that
 *     block out and makes the slab an orphan, and only then does the thread
 *     push on P's return stack. The block is still counted in live, and the
 *     pools are never freed (they are reused by the next run, like numa.c's
 *     arena), so the block waits on P's stack: the next run's owner may hand
 *     it out (its later free drops live: the slab is an orphan), or its idle
 *     trim or the next fini finds it and drops live. Nothing is lost or
 *     freed twice.
 *
 * NUMA: slabs come from tel__mem_alloc_aligned on the owner's thread, which
 * uses that scheduler's jemalloc binding; per-node arenas will take
 * tel__topo_node_of(owner) here (new_slab).
 *
 * ASan builds poison free blocks (a pusher poisons before its CAS); links
 * are read and written through link_get/link_set, which ASan does not check.
 *
 * Slab headers sit at 64 KiB-aligned addresses, so they share L1/L2 sets;
 * a free reads only the header's first line (and past the bound writes
 * its second), and a scheduler has a few dozen hot slabs at most, so the
 * conflict misses stay rare.
 */
#include "alloc/pool.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc/base.h"
#include "alloc/failinj.h"
#include "alloc/lock.h"
#include "alloc/numa.h"
#include "include/telar.h"

#ifdef TEL_ASAN
#include <sanitizer/asan_interface.h>
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define POOL_NO_ASAN __attribute__((no_sanitize_address))
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#define POOL_NO_ASAN
#endif

#define POOL_CLASSES 4
#define POOL_SLAB_SIZE ((size_t)64 << 10)
#define POOL_MAX_CACHES 1024 /* as numa.c's tcaches and tel_run's limit */
#define POOL_ORPHAN ((struct pool_cache *)(uintptr_t)1)
/* A return stack's top word: the top block's address over 64 (every block
 * is 64-byte aligned) in the low 42 bits (user addresses fit: slabs at or
 * above 2^48 panic in new_slab) and how many blocks the stack holds in the
 * high 22, saturating at POOL_TAG_MAX. So the owner learns the count from
 * the exchange, without walking the blocks (which the other core wrote: a
 * cache miss each), and a pusher counts without reading another block.
 * With 16 bits (the address kept whole) a stack that outgrew 65,535
 * blocks while its owner allocated from its list was walked at the next
 * refill: 90% of refill's samples in fanin -s 2 once remote frees came in
 * batches; 22 bits saturate at 256 MiB of 64-byte blocks. */
#define POOL_PTR_SHIFT 6
#define POOL_TAG_SHIFT 42
#define POOL_TAG_MAX ((1u << (64 - POOL_TAG_SHIFT)) - 1)
#define POOL_PTR(v)                                                         \
    ((void *)(((v) & (((uintptr_t)1 << POOL_TAG_SHIFT) - 1))                \
              << POOL_PTR_SHIFT))
#define POOL_COUNT(v) ((uint32_t)((v) >> POOL_TAG_SHIFT))
#define POOL_PACK(p, k)                                                     \
    ((uintptr_t)(p) >> POOL_PTR_SHIFT | (uintptr_t)(k) << POOL_TAG_SHIFT)

static const size_t pool_size[POOL_CLASSES] = {64, 128, 256, POOL_MAX_SIZE};
_Static_assert(POOL_MAX_SIZE == 64 << 3, "class c's blocks are 64 << c");
/* A slab's header: two cache lines (see struct slab). Its first block
 * starts after it, at a block boundary. */
#define POOL_HDR_SIZE 128
#define POOL_FIRST(c) \
    (pool_size[c] < POOL_HDR_SIZE ? POOL_HDR_SIZE : pool_size[c])
#define POOL_CAP(c) \
    ((uint32_t)((POOL_SLAB_SIZE - POOL_FIRST(c)) / pool_size[c]))
/* Free blocks a pool's list may hold; a local free past that goes to the
 * block's slab. A churn of a thousand processes (spawn_exit's batches, the
 * epoch's retired blocks) stays within it. */
static const uint32_t pool_keep[POOL_CLASSES] = {2048, 1024, 1024, 512};
/* Empty slabs a pool keeps per class for its next carving, rather than
 * give them back to numa.c at once (a backlog that fills and drains). */
#define POOL_EMPTY_KEEP 2
/* Remote frees a scheduler holds per class before it pushes them to their
 * owner's return stack as one chain. */
#define POOL_OUT_BATCH 32u

struct pool_cache;

/* The lists a pool keeps its slabs of one class on (slab->list). */
enum {
    SLAB_FULL,    /* nothing on its free list (all out, or uncarved) */
    SLAB_PARTIAL, /* some blocks on its free list, some out */
    SLAB_EMPTY,   /* every block free (on its list, or uncarved) */
    SLAB_LISTS
};

/* At the start of every slab, in its first POOL_HDR_SIZE bytes. */
struct slab {
    /* Line 0: read by every free, on any thread; written when the slab is
     * made and in fini only, so it stays shared in every cache. */
    _Atomic(struct pool_cache *) owner; /* see Concurrency */
    atomic_uint live;                   /* orphans only: blocks still out */
    uint32_t cls;                       /* fixed when made */
    /* Line 1: the owner's (and fini's) only. */
    void *free __attribute__((aligned(64))); /* the slab's own free list */
    uint32_t nfree;                          /* blocks on it */
    uint32_t list;                           /* SLAB_*: which list s is on */
    struct slab *prev, *next;                /* on that list */
};
_Static_assert(sizeof(struct slab) <= POOL_HDR_SIZE, "a slab header fits");

/* Hot fields first: an alloc or a local free touches one cache line. */
struct pool_cache {
    /* Owner only (the shared pool: under lock). The first line is
     * pool.h's struct tel__pool_hot, which the inline fast paths use. */
    union {
        struct tel__pool_hot hot;
        struct {
            void *head[POOL_CLASSES];    /* LIFO free lists */
            uint32_t n[POOL_CLASSES];    /* blocks on each */
            uint32_t keep[POOL_CLASSES]; /* pool_keep, on this line */
        };
    };
    struct slab *lists[POOL_CLASSES][SLAB_LISTS] TEL_ALIGNED_CL;
    uint32_t n_empty[POOL_CLASSES]; /* slabs on the SLAB_EMPTY lists */
    /* The newest slab's blocks not handed out yet: [bump, bump_end). A
     * slab is carved lazily, one block per refill, so that its memory is
     * first touched by the block's user (a fresh page faults once, and a
     * line is fetched once, not once to link it and again to use it). */
    char *bump[POOL_CLASSES], *bump_end[POOL_CLASSES];
    tel__spin_t lock; /* the shared pool only: serialises its allocations */
    /* Remote frees held back ("Remote frees in batches"), per class: up to
     * POOL_OUT_BATCH blocks of pool out_to's slabs, linked from out_head
     * to out_tail. Owner only (a scheduler pool; the shared pool's stay
     * empty). */
    struct pool_cache *out_to[POOL_CLASSES] TEL_ALIGNED_CL;
    void *out_head[POOL_CLASSES];
    void *out_tail[POOL_CLASSES];
    uint32_t out_n[POOL_CLASSES];
    /* Any thread pushes; the owner takes all. Its own cache line. */
    _Atomic(uintptr_t) ret[POOL_CLASSES] TEL_ALIGNED_CL; /* see POOL_TAG */
} TEL_ALIGNED_CL;

/* Made on first use and kept for later runs (see the race above). */
static struct pool_cache *caches[POOL_MAX_CACHES];
static unsigned n_made;   /* caches[0..n_made) exist */
static unsigned n_caches; /* this run's slots */
static struct pool_cache shared;
static bool shared_made;
static atomic_size_t n_slabs;
__thread struct tel__pool_hot *tel__pool_tls
    __attribute__((tls_model("initial-exec")));
/* The calling thread's pool (its first member is tel__pool_tls's). */
#define tls_cache ((struct pool_cache *)(void *)tel__pool_tls)
_Static_assert(POOL_CLASSES == TEL_POOL_CLASSES &&
                   POOL_SLAB_SIZE == TEL_POOL_SLAB_SIZE,
               "pool.h's fast paths see pool.c's layout");
_Static_assert(offsetof(struct pool_cache, hot) == 0 &&
                   offsetof(struct pool_cache, head) ==
                       offsetof(struct tel__pool_hot, head) &&
                   offsetof(struct pool_cache, n) ==
                       offsetof(struct tel__pool_hot, n) &&
                   offsetof(struct pool_cache, keep) ==
                       offsetof(struct tel__pool_hot, keep),
               "a pool's first line is struct tel__pool_hot");
_Static_assert(offsetof(struct slab, owner) ==
                       offsetof(struct tel__pool_slab_hot, owner) &&
                   offsetof(struct slab, cls) ==
                       offsetof(struct tel__pool_slab_hot, cls),
               "a slab's first line is struct tel__pool_slab_hot");

static inline unsigned class_of(size_t size)
{
    return size <= 64 ? 0 : size <= 128 ? 1 : size <= 256 ? 2 : 3;
}

static inline struct slab *slab_of(const void *p)
{
    return (struct slab *)((uintptr_t)p & ~(uintptr_t)(POOL_SLAB_SIZE - 1));
}

static POOL_NO_ASAN void *link_get(void *b)
{
    return *(void *const *)b;
}

static POOL_NO_ASAN void link_set(void *b, void *next)
{
    *(void **)b = next;
}

static void out_flush_all(struct pool_cache *pc);

static void class_reset(struct pool_cache *pc, unsigned c)
{
    pc->out_to[c] = NULL;
    pc->out_head[c] = pc->out_tail[c] = NULL;
    pc->out_n[c] = 0;
    pc->head[c] = NULL;
    pc->n[c] = 0;
    pc->keep[c] = pool_keep[c];
    for (unsigned l = 0; l < SLAB_LISTS; l++)
        pc->lists[c][l] = NULL;
    pc->n_empty[c] = 0;
    pc->bump[c] = pc->bump_end[c] = NULL;
}

/* Blocks of slab s that pc has not carved yet (s is its newest slab). */
static inline uint32_t uncarved(const struct pool_cache *pc, unsigned c,
                                const struct slab *s)
{
    if (pc->bump[c] == NULL || slab_of(pc->bump[c] - 1) != s)
        return 0;
    return (uint32_t)((size_t)(pc->bump_end[c] - pc->bump[c]) /
                      pool_size[c]);
}

/* Owner: put s on pc's list l for class c / take it off its list. */
static void list_push(struct pool_cache *pc, unsigned c, struct slab *s,
                      uint32_t l)
{
    s->list = l;
    s->prev = NULL;
    s->next = pc->lists[c][l];
    if (s->next)
        s->next->prev = s;
    pc->lists[c][l] = s;
    if (l == SLAB_EMPTY)
        pc->n_empty[c]++;
}

static void list_del(struct pool_cache *pc, unsigned c, struct slab *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        pc->lists[c][s->list] = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (s->list == SLAB_EMPTY)
        pc->n_empty[c]--;
}

static void list_move(struct pool_cache *pc, unsigned c, struct slab *s,
                      uint32_t l)
{
    if (s->list != l) {
        list_del(pc, c, s);
        list_push(pc, c, s, l);
    }
}

int tel__pool_init(unsigned n)
{
    if (n > POOL_MAX_CACHES)
        return TEL_EINVAL;
    if (!shared_made) {
        for (unsigned c = 0; c < POOL_CLASSES; c++)
            class_reset(&shared, c);
        tel__spin_init(&shared.lock);
        shared_made = true;
    }
    for (; n_made < n; n_made++) {
        struct pool_cache *pc = tel__mem_zalloc_cl(sizeof(*pc));
        if (!pc)
            return TEL_ENOMEM;
        for (unsigned c = 0; c < POOL_CLASSES; c++)
            class_reset(pc, c);
        caches[n_made] = pc;
    }
    n_caches = n;
    return 0;
}

void tel__pool_bind_thread(int slot)
{
    struct pool_cache *pc =
        slot >= 0 && (unsigned)slot < n_caches ? caches[slot] : NULL;
    /* Held remote frees go out with the thread that held them. */
    if (tls_cache && tls_cache != pc)
        out_flush_all(tls_cache);
    tel__pool_tls = pc ? &pc->hot : NULL;
}

size_t tel__pool_n_slabs(void)
{
    return atomic_load_explicit(&n_slabs, memory_order_relaxed);
}

bool tel__pool_holds(const void *b)
{
    struct pool_cache *pc = tls_cache ? tls_cache : &shared;
    const struct slab *want = slab_of(b);
    for (unsigned c = 0; c < POOL_CLASSES; c++)
        for (unsigned l = 0; l < SLAB_LISTS; l++)
            for (const struct slab *s = pc->lists[c][l]; s; s = s->next)
                if (s == want)
                    return (const char *)b >=
                           (const char *)s + POOL_FIRST(c);
    return false;
}

static void slab_free(struct slab *s)
{
    POOL_UNPOISON(s, POOL_SLAB_SIZE);
    tel__mem_free_aligned(s, POOL_SLAB_SIZE, POOL_SLAB_SIZE);
    atomic_fetch_sub_explicit(&n_slabs, 1, memory_order_relaxed);
}

/* One of an orphan's blocks came back. Any thread. */
static void orphan_put(struct slab *s)
{
    /* Acquire: pairs with fini's release store of POOL_ORPHAN, so live is
     * the value fini stored (or a later one). */
    (void)atomic_load_explicit(&s->owner, memory_order_acquire);
    /* acq_rel: the last one out sees every other thread's use of the slab
     * before freeing it. */
    if (atomic_fetch_sub_explicit(&s->live, 1, memory_order_acq_rel) == 1)
        slab_free(s);
}

/* Carve a new slab for pc's class c: it becomes the bump slab. Owner
 * only. */
static int new_slab(struct pool_cache *pc, unsigned c)
{
    /* NUMA: the node choice goes here (tel__topo_node_of(owner's index)). */
    struct slab *s = tel__mem_alloc_aligned(POOL_SLAB_SIZE, POOL_SLAB_SIZE);
    if (!s)
        return TEL_ENOMEM;
    if ((uintptr_t)s >> (POOL_TAG_SHIFT + POOL_PTR_SHIFT))
        tel__panic("pool: a slab above 2^48 (the return stacks' tag)");
    (void)madvise(s, POOL_SLAB_SIZE, 23 /* MADV_POPULATE_WRITE */);
    atomic_fetch_add_explicit(&n_slabs, 1, memory_order_relaxed);
    atomic_store_explicit(&s->owner, pc, memory_order_relaxed);
    atomic_store_explicit(&s->live, 0, memory_order_relaxed);
    s->cls = c;
    s->free = NULL;
    s->nfree = 0;
    list_push(pc, c, s, SLAB_FULL); /* carved from at once */
    char *base = (char *)s;
    POOL_POISON(base + POOL_FIRST(c), POOL_SLAB_SIZE - POOL_FIRST(c));
    pc->bump[c] = base + POOL_FIRST(c);
    pc->bump_end[c] = base + POOL_SLAB_SIZE;
    return 0;
}

/* Every block of s is free (s is on no list now): keep it for carving,
 * or give it back to numa.c. Owner only. */
static void slab_emptied(struct pool_cache *pc, unsigned c, struct slab *s)
{
    if (pc->n_empty[c] < POOL_EMPTY_KEEP) {
        list_push(pc, c, s, SLAB_EMPTY);
        return;
    }
    if (pc->bump[c] && slab_of(pc->bump[c] - 1) == s)
        pc->bump[c] = pc->bump_end[c] = NULL; /* the newest: carve no more */
    slab_free(s);
}

/*
 * A local free past the pool's list's bound: b goes on its own slab's
 * list. The slab changes list as it fills (full -> partial) and is kept or
 * given back once every block is free. O(1), no walk. Owner only.
 */
static TEL_NOINLINE void free_to_slab(struct pool_cache *pc, unsigned c,
                                      struct slab *s, void *b)
{
    link_set(b, s->free);
    s->free = b;
    POOL_POISON(b, pool_size[c]);
    if (++s->nfree + uncarved(pc, c, s) == POOL_CAP(c)) {
        list_del(pc, c, s);
        slab_emptied(pc, c, s);
    } else {
        list_move(pc, c, s, SLAB_PARTIAL);
    }
}

/* Owner: move s's free list to pc's (empty) list for class c. */
static void checkout(struct pool_cache *pc, unsigned c, struct slab *s)
{
    pc->head[c] = s->free;
    pc->n[c] = s->nfree;
    s->free = NULL;
    s->nfree = 0;
    list_move(pc, c, s, SLAB_FULL);
}

/*
 * pc's list for class c is empty: take its return stack, or a slab's free
 * list (a partly used one first, then a kept empty one), or carve the bump
 * slab or a new one; then pop a block. NULL if out of memory. Owner only.
 */
static TEL_NOINLINE void *refill(struct pool_cache *pc, unsigned c)
{
    struct slab *s;
    /* Load first: an empty stack's line is not taken from the pushers. */
    if (atomic_load_explicit(&pc->ret[c], memory_order_relaxed) != 0) {
        /* Acquire: pairs with the pushers' release CAS in ret_push. */
        uintptr_t v = atomic_exchange_explicit(&pc->ret[c], 0,
                                               memory_order_acquire);
        void *chain = POOL_PTR(v);
        uint32_t n = POOL_COUNT(v);
        if (TEL_UNLIKELY(n == POOL_TAG_MAX)) { /* saturated: count */
            n = 0;
            for (void *b = chain; b; b = link_get(b))
                n++;
        }
        /* Out of their slabs they were, and out they stay (on this list):
         * a returned block is not walked to its slab. */
        pc->head[c] = chain;
        pc->n[c] = n;
    } else if ((s = pc->lists[c][SLAB_PARTIAL]) != NULL ||
               (s = pc->lists[c][SLAB_EMPTY]) != NULL) {
        /* An empty slab got there by a free to its own list: it has one. */
        TEL_ASSERT(s->nfree > 0);
        checkout(pc, c, s);
    }
    void *b = pc->head[c];
    if (b == NULL) {
        if (pc->bump[c] == pc->bump_end[c] && new_slab(pc, c) != 0)
            return NULL;
        b = pc->bump[c];
        pc->bump[c] += pool_size[c];
        /* The bump slab is never on the empty list here: it gets there
         * only through a free to its own list, and a refill checks such
         * a slab out (onto the full list) before it carves. */
        TEL_ASSERT(slab_of(b)->list != SLAB_EMPTY);
        POOL_UNPOISON(b, pool_size[c]);
        return b;
    }
    POOL_UNPOISON(b, pool_size[c]);
    pc->head[c] = *(void **)b;
    pc->n[c]--;
    return b;
}

/*
 * Take pc's return stack for class c onto its list. Owner only. The chain
 * is walked to its end (to link the list after it): callers are idle.
 */
static void take_returns(struct pool_cache *pc, unsigned c)
{
    uintptr_t v = atomic_exchange_explicit(&pc->ret[c], 0,
                                           memory_order_acquire);
    void *chain = POOL_PTR(v);
    if (chain == NULL)
        return;
    uint32_t n = 1;
    void *last = chain;
    for (void *b; (b = link_get(last)) != NULL; last = b)
        n++;
    link_set(last, pc->head[c]);
    pc->head[c] = chain;
    pc->n[c] += n;
}

void tel__pool_trim_idle(void)
{
    struct pool_cache *pc = tls_cache;
    if (pc == NULL)
        return;
    out_flush_all(pc); /* the owners may need them while we sleep */
    for (unsigned c = 0; c < POOL_CLASSES; c++) {
        /* Relaxed load first: an empty or short stack costs one load and
         * leaves the pushers' line alone. */
        uintptr_t v = atomic_load_explicit(&pc->ret[c], memory_order_relaxed);
        if ((uint64_t)POOL_COUNT(v) + pc->n[c] <= pc->keep[c])
            continue;
        take_returns(pc, c);
        /* The list's excess goes to the blocks' slabs, as local frees past
         * the bound do: slabs all free are kept or given back. */
        while (pc->n[c] > pc->keep[c]) {
            void *b = pc->head[c];
            pc->head[c] = link_get(b);
            pc->n[c]--;
            struct slab *s = slab_of(b);
            if (atomic_load_explicit(&s->owner, memory_order_relaxed) == pc)
                free_to_slab(pc, c, s, b);
            else
                orphan_put(s); /* the race in the top comment */
        }
    }
}

/* A thread that is not a scheduler: the shared pool, under its lock. */
static TEL_NOINLINE void *alloc_shared(unsigned c)
{
    tel__spin_lock(&shared.lock);
    struct pool_cache *pc = &shared;
    void *b = pc->head[c];
    if (b) {
        POOL_UNPOISON(b, pool_size[c]);
        pc->head[c] = *(void **)b;
        pc->n[c]--;
    } else {
        b = refill(pc, c);
    }
    tel__spin_unlock(&shared.lock);
    return b;
}

void *tel__pool_alloc_slow(size_t size)
{
    struct pool_cache *pc = tls_cache;
    if (TEL_UNLIKELY(size > POOL_MAX_SIZE))
        return tel__mem_alloc(size);
    /* Always a whole class-size block: frees do not care who asked. */
    unsigned c = class_of(size);
    if (TEL_UNLIKELY(tel__failinj_hit()))
        return NULL;
    if (TEL_UNLIKELY(pc == NULL))
        return alloc_shared(c);
    void *b = pc->head[c];
    if (TEL_LIKELY(b != NULL)) {
        POOL_UNPOISON(b, pool_size[c]);
        void *next = *(void **)b;
        pc->head[c] = next;
        pc->n[c]--;
        /* The next block's line is often in another CPU's cache (it came
         * back from a free there): fetch it now, so the next allocation
         * does not wait for it (a prefetch never faults, NULL included). */
        __builtin_prefetch(next, 1, 3);
        return b;
    }
    return refill(pc, c);
}

/* Push the chain first..last (n blocks of class c, linked, poisoned) on
 * owner's return stack. Any thread. */
static void ret_push(struct pool_cache *owner, unsigned c, void *first,
                     void *last, uint32_t n)
{
    _Atomic(uintptr_t) *top = &owner->ret[c];
    uintptr_t old = atomic_load_explicit(top, memory_order_relaxed), nv;
    do {
        uint32_t k = POOL_COUNT(old) + n;
        link_set(last, POOL_PTR(old));
        nv = POOL_PACK(first, k < POOL_TAG_MAX ? k : POOL_TAG_MAX);
        /* Release: pairs with the owner's acquire exchange in refill/fini. */
    } while (!atomic_compare_exchange_weak_explicit(
        top, &old, nv, memory_order_release, memory_order_relaxed));
}

/* Owner of pc: push its held remote frees of class c to their pool. */
static void out_flush(struct pool_cache *pc, unsigned c)
{
    if (pc->out_n[c] == 0)
        return;
    ret_push(pc->out_to[c], c, pc->out_head[c], pc->out_tail[c],
             pc->out_n[c]);
    pc->out_head[c] = pc->out_tail[c] = NULL;
    pc->out_n[c] = 0;
    pc->out_to[c] = NULL;
}

static void out_flush_all(struct pool_cache *pc)
{
    for (unsigned c = 0; c < POOL_CLASSES; c++)
        out_flush(pc, c);
}

/*
 * A free of a block whose slab is not the caller's pool's. Any thread.
 *
 * Remote frees in batches. A scheduler holds up to POOL_OUT_BATCH remote
 * frees of one class for one owner and pushes them as one chain, with one
 * CAS. One CAS a block put the owner's return-stack line in the freeing
 * CPU's cache at every free, and the owner took it back at each refill,
 * which then found only the few blocks freed since: a receiver draining a
 * flood from another CPU (fanin -s 2) spent 22% of its samples on that CAS
 * and the senders' scheduler 18% in refill. The held blocks are out of
 * their owner's reach until the push: at most POOL_OUT_BATCH per class per
 * scheduler, pushed when the batch is full, when a free of that class
 * names another owner, when the scheduler is about to sleep
 * (tel__pool_trim_idle), when its thread unbinds, and in fini. Threads that
 * are not schedulers push at once, as does every free of an orphan's
 * block.
 */
static TEL_NOINLINE void free_remote(void *p, unsigned c,
                                     struct pool_cache *owner)
{
    POOL_POISON(p, pool_size[c]); /* before the CAS or the count lets go */
    if (owner == POOL_ORPHAN) {
        orphan_put(slab_of(p));
        return;
    }
    struct pool_cache *pc = tls_cache;
    if (pc == NULL) {
        ret_push(owner, c, p, p, 1);
        return;
    }
    if (pc->out_to[c] != owner) {
        out_flush(pc, c);
        pc->out_to[c] = owner;
        pc->out_tail[c] = p;
    }
    link_set(p, pc->out_head[c]);
    pc->out_head[c] = p;
    if (++pc->out_n[c] >= POOL_OUT_BATCH)
        out_flush(pc, c);
}

void tel__pool_free_slow(void *p, size_t size)
{
    if (p == NULL)
        return;
    if (TEL_UNLIKELY(size > POOL_MAX_SIZE)) {
        tel__mem_free(p, size);
        return;
    }
    struct slab *s = slab_of(p);
    struct pool_cache *owner =
        atomic_load_explicit(&s->owner, memory_order_relaxed);
    /* The slab's class, not class_of(size): one load from the line owner
     * is on, instead of a chain of compares. */
    unsigned c = s->cls;
    struct pool_cache *pc = tls_cache;
    TEL_ASSERT(c == class_of(size));
    if (TEL_LIKELY(owner == pc)) {
        if (TEL_LIKELY(pc->n[c] < pc->keep[c])) {
            *(void **)p = pc->head[c];
            pc->head[c] = p;
            pc->n[c]++;
            POOL_POISON(p, pool_size[c]);
            return;
        }
        free_to_slab(pc, c, s, p);
        return;
    }
    free_remote(p, c, owner);
}

/* fini: one block found free on pc's list or stack (not on its slab's). */
static void fini_count(struct pool_cache *pc, void *b)
{
    struct slab *s = slab_of(b);
    struct pool_cache *o = atomic_load_explicit(&s->owner,
                                                memory_order_relaxed);
    if (o == pc)
        s->nfree++; /* counted, not linked: the slab goes now */
    else if (o == POOL_ORPHAN)
        orphan_put(s); /* a straggler from an earlier run's teardown */
    else
        tel__panic("pool: a block on another pool's list");
}

static void fini_cache(struct pool_cache *pc)
{
    for (unsigned c = 0; c < POOL_CLASSES; c++) {
        void *next;
        for (void *b = pc->head[c]; b; b = next) {
            next = link_get(b); /* fini_count may free b's slab */
            fini_count(pc, b);
        }
        void *chain = POOL_PTR(atomic_exchange_explicit(
            &pc->ret[c], 0, memory_order_acquire));
        for (void *b = chain; b; b = next) {
            next = link_get(b);
            fini_count(pc, b);
        }
        for (unsigned l = 0; l < SLAB_LISTS; l++) {
            struct slab *s = pc->lists[c][l];
            while (s) {
                struct slab *sn = s->next;
                uint32_t nfree = s->nfree + uncarved(pc, c, s);
                if (nfree == POOL_CAP(c)) {
                    slab_free(s);
                } else {
                    atomic_store_explicit(&s->live, POOL_CAP(c) - nfree,
                                          memory_order_relaxed);
                    /* Release: pairs with the acquire in orphan_put. */
                    atomic_store_explicit(&s->owner, POOL_ORPHAN,
                                          memory_order_release);
                }
                s = sn;
            }
        }
        class_reset(pc, c);
    }
}

void tel__pool_fini(void)
{
    /* Held remote frees first, so each owner's count finds them. */
    for (unsigned i = 0; i < n_made; i++)
        out_flush_all(caches[i]);
    for (unsigned i = 0; i < n_made; i++)
        fini_cache(caches[i]);
    if (shared_made)
        fini_cache(&shared);
    n_caches = 0;
    tel__pool_tls = NULL;
}
