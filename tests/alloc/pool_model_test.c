/*
 * tests/alloc/pool_model_test.c: alloc/pool.c against its own invariants,
 * under random operations.
 *
 * White-box: the file includes pool.c itself (so the static library's copy
 * is never linked in) and, after every operation, walks every pool, list
 * and slab and checks what the top comment of pool.c states: each slab on
 * exactly one of its pool's lists, in the list its state names; nfree the
 * length of the slab's own list; every block of a slab on exactly one of
 * its own list, the pool's list, the return stack, the uncarved rest, or
 * out; n_empty right and bounded; an orphan's live its blocks not yet
 * back; the slab count the sum of them all; under ASan, free blocks
 * poisoned and blocks out and headers not.
 *
 * The operations: allocations and frees of every class (on pool 0, pool 1
 * or the shared pool of threads that are no scheduler, so frees are local
 * or remote), idle trims, and ends of runs (fini and init again) with a
 * few blocks kept past fini and a few remote frees racing it (the "race to
 * watch" of pool.c). One thread plays every role by rebinding itself. The
 * seed is logged (TEL_TEST_SEED replays a run).
 */
#include "alloc/pool.c"

#include "common.h"

#include "alloc/numa.h"

#ifdef TEL_ASAN
#define CHECK_POISONED(b, n)                                                 \
    for (size_t i_ = 0; i_ < (n); i_ += 8)                                   \
    cr_assert(__asan_address_is_poisoned((const char *)(b) + i_),           \
              "free block %p not poisoned", (void *)(b))
#define CHECK_UNPOISONED(b, n)                                               \
    cr_assert(__asan_region_is_poisoned((void *)(b), (n)) == NULL,           \
              "%p poisoned while in use", (void *)(b))
#else
#define CHECK_POISONED(b, n) ((void)(b), (void)(n))
#define CHECK_UNPOISONED(b, n) ((void)(b), (void)(n))
#endif

enum { MAX_OUT = 20000, MAX_SLABS = 4096, RACERS = 8 };

struct out {
    void *p;
    size_t size;
};

/* The model: the blocks handed out and not freed. */
static struct out out[MAX_OUT];
static int n_out;

/* Scratch for one check: slabs met, with a count each (blocks found on
 * pool lists and return stacks). */
struct tally {
    struct slab *slab[MAX_SLABS];
    uint32_t n[MAX_SLABS];
    int len;
};

/* s's count in t, added at 0 the first time. */
static uint32_t *tally_of(struct tally *t, struct slab *s)
{
    for (int i = 0; i < t->len; i++)
        if (t->slab[i] == s)
            return &t->n[i];
    cr_assert_lt(t->len, MAX_SLABS);
    t->slab[t->len] = s;
    t->n[t->len] = 0;
    return &t->n[t->len++];
}

/* One class of one pool: its own slabs' blocks on its chains. */
static struct tally seen;

static uint32_t out_in(const struct slab *s)
{
    uint32_t n = 0;
    for (int i = 0; i < n_out; i++)
        if (slab_of(out[i].p) == s) {
            CHECK_UNPOISONED(out[i].p, pool_size[class_of(out[i].size)]);
            n++;
        }
    return n;
}

/* Every slab the pool has is on one list: count the lists. */
static bool on_a_list(struct pool_cache *pc, unsigned c, struct slab *want)
{
    for (unsigned l = 0; l < SLAB_LISTS; l++)
        for (struct slab *s = pc->lists[c][l]; s; s = s->next)
            if (s == want)
                return true;
    return false;
}

/* A chain of free blocks (a pool's list or return stack): count them per
 * slab of pc's; an orphan's block is counted with the orphans. */
static uint32_t count_chain(struct pool_cache *pc, unsigned c, void *b)
{
    uint32_t n = 0;
    for (; b; b = link_get(b), n++) {
        struct slab *s = slab_of(b);
        CHECK_POISONED(b, pool_size[c]);
        struct pool_cache *o = atomic_load(&s->owner);
        cr_assert(o == pc || o == POOL_ORPHAN,
                  "block %p of another pool's slab on this pool's chain", b);
        if (o == pc)
            (*tally_of(&seen, s))++;
    }
    return n;
}

/* Check pool pc; returns how many slabs it holds. */
static size_t check_pool(struct pool_cache *pc)
{
    size_t slabs = 0;
    for (unsigned c = 0; c < POOL_CLASSES; c++) {
        seen.len = 0;
        cr_assert_eq(count_chain(pc, c, pc->head[c]), pc->n[c]);
        (void)count_chain(pc, c, POOL_PTR(atomic_load(&pc->ret[c])));
        /* Remote frees another pool holds for this one (pool.c, "Remote
         * frees in batches"): at most a batch, its count right. */
        for (unsigned pi = 0; pi <= n_made; pi++) {
            struct pool_cache *q = pi < n_made ? caches[pi] : &shared;
            if (q->out_to[c] != pc) {
                cr_assert(q->out_n[c] == 0 || q->out_to[c] != NULL);
                continue;
            }
            cr_assert_neq(q, pc, "a pool holds its own blocks as remote");
            cr_assert_lt(q->out_n[c], POOL_OUT_BATCH);
            cr_assert_eq(count_chain(pc, c, q->out_head[c]), q->out_n[c]);
        }
        uint32_t n_empty = 0;
        bool bump_ok = pc->bump[c] == pc->bump_end[c];
        for (unsigned l = 0; l < SLAB_LISTS; l++) {
            struct slab *prev = NULL;
            for (struct slab *s = pc->lists[c][l]; s; prev = s, s = s->next) {
                slabs++;
                cr_assert(s->list == l && s->prev == prev && s->cls == c);
                cr_assert(atomic_load(&s->owner) == pc);
                CHECK_UNPOISONED(s, sizeof(struct slab));
                uint32_t k = 0;
                for (void *b = s->free; b; b = link_get(b), k++) {
                    cr_assert(slab_of(b) == s,
                              "a block on another slab's list");
                    CHECK_POISONED(b, pool_size[c]);
                }
                cr_assert_eq(k, s->nfree);
                uint32_t u = uncarved(pc, c, s);
                if (u) {
                    bump_ok = true;
                    CHECK_POISONED(pc->bump[c], u * pool_size[c]);
                }
                cr_assert_eq(s->nfree + u + *tally_of(&seen, s) + out_in(s),
                             POOL_CAP(c), "slab %p of class %u loses blocks",
                             (void *)s, c);
                if (l == SLAB_EMPTY) {
                    n_empty++;
                    cr_assert_eq(s->nfree + u, POOL_CAP(c));
                } else if (s->nfree) {
                    cr_assert_eq(l, SLAB_PARTIAL);
                    cr_assert_lt(s->nfree + u, POOL_CAP(c));
                } else {
                    cr_assert_eq(l, SLAB_FULL);
                }
            }
        }
        cr_assert_eq(n_empty, pc->n_empty[c]);
        cr_assert_leq(n_empty, POOL_EMPTY_KEEP);
        cr_assert(bump_ok, "the bump pointer is in no slab of the pool");
        for (int i = 0; i < seen.len; i++)
            cr_assert(on_a_list(pc, c, seen.slab[i]),
                      "a free block's slab is lost");
    }
    return slabs;
}

/* The orphan slabs, with their blocks found free on any pool's chains. */
static struct tally orph;

/* Orphans: each one's live is its blocks out or on a chain; returns how
 * many there are. */
static size_t check_orphans(void)
{
    orph.len = 0;
    for (unsigned pi = 0; pi <= n_made; pi++) {
        struct pool_cache *pc = pi < n_made ? caches[pi] : &shared;
        for (unsigned c = 0; c < POOL_CLASSES; c++) {
            void *chains[3] = {pc->head[c],
                               POOL_PTR(atomic_load(&pc->ret[c])),
                               pc->out_head[c]};
            for (int q = 0; q < 3; q++)
                for (void *b = chains[q]; b; b = link_get(b))
                    if (atomic_load(&slab_of(b)->owner) == POOL_ORPHAN)
                        (*tally_of(&orph, slab_of(b)))++;
        }
    }
    for (int i = 0; i < n_out; i++)
        if (atomic_load(&slab_of(out[i].p)->owner) == POOL_ORPHAN)
            (void)tally_of(&orph, slab_of(out[i].p));
    for (int j = 0; j < orph.len; j++)
        cr_assert_eq(atomic_load(&orph.slab[j]->live),
                     out_in(orph.slab[j]) + orph.n[j],
                     "orphan %p counts its blocks wrong", (void *)orph.slab[j]);
    return (size_t)orph.len;
}

static void check_all(void)
{
    size_t slabs = check_orphans();
    for (unsigned i = 0; i < n_made; i++)
        slabs += check_pool(caches[i]);
    slabs += check_pool(&shared);
    cr_assert_eq(slabs, tel__pool_n_slabs(), "the slab count drifted");
}

/* A small bound makes slabs fill, drain, empty and go back far more often. */
static void set_keep(uint32_t keep)
{
    for (unsigned i = 0; i < n_made; i++)
        for (unsigned c = 0; c < POOL_CLASSES; c++)
            caches[i]->keep[c] = keep ? keep : pool_keep[c];
}

/* A run ends: a few blocks stay out past fini, and a few remote frees race
 * it (their owner read before fini, their push after), as pool.c's "race
 * to watch" says a foreign thread's may. */
static void end_run(struct tt_rng *r, uint32_t keep)
{
    void *racing[RACERS];
    unsigned cls[RACERS];
    struct pool_cache *owner[RACERS];
    int n = 0;
    for (int k = 0; k < RACERS && n_out; k++) {
        int i = (int)tt_rng_below(r, (uint64_t)n_out);
        void *p = out[i].p;
        unsigned c = class_of(out[i].size);
        out[i] = out[--n_out];
        struct pool_cache *o = atomic_load(&slab_of(p)->owner);
        if (o == POOL_ORPHAN) {
            tel__pool_free(p, pool_size[c]);
            continue;
        }
        racing[n] = p;
        cls[n] = c;
        owner[n++] = o;
    }
    tel__pool_bind_thread(-1);
    tel__pool_fini();
    for (int k = 0; k < n; k++)
        free_remote(racing[k], cls[k], owner[k]);
    cr_assert_eq(tel__pool_init(2), 0);
    set_keep(keep);
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct out *)a)->p;
    uintptr_t y = (uintptr_t)((const struct out *)b)->p;
    return (x > y) - (x < y);
}

static int by_address_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a;
    uintptr_t y = (uintptr_t) * (void *const *)b;
    return (x > y) - (x < y);
}

/* Everything comes back (mostly on pool 0, some from pool 1), and both
 * pools go idle: slabs turn all free, and are kept (two a class) or go
 * back to numa.c. Returns the number of empty slabs kept. */
static uint32_t drain(struct tt_rng *r)
{
    /* Highest address first: the pool's list fills with one slab's blocks
     * and the other slabs' go to their own lists, so they turn all free
     * (blocks freed at random would leave a few of every slab on the
     * list). */
    qsort(out, (size_t)n_out, sizeof(out[0]), by_address);
    while (n_out > 0) {
        n_out--;
        tel__pool_bind_thread(tt_rng_below(r, 10) ? 0 : 1);
        tel__pool_free(out[n_out].p, out[n_out].size);
    }
    uint32_t empty = 0;
    for (int slot = 0; slot < 2; slot++) {
        tel__pool_bind_thread(slot);
        tel__pool_trim_idle();
        for (unsigned c = 0; c < POOL_CLASSES; c++)
            empty += caches[slot]->n_empty[c];
    }
    check_all();
    return empty;
}

static void run_model(uint64_t seed, long steps, uint32_t keep)
{
    static const size_t sizes[] = {64, 128, 256, 512, 40, 100, 200, 500};
    struct tt_rng r = {seed};
    set_keep(keep);
    int target = 5000; /* blocks out to grow to or shrink to */
    uint32_t empty_seen = 0;
    for (long step = 0; step < steps; step++) {
        bool grow = n_out < target;
        /* At the top of a large build-up, now and then everything comes
         * back at once (many slabs a class: some are kept, some freed). */
        if (grow && n_out + 1 >= target && n_out > 3000 &&
            tt_rng_below(&r, 3) == 0)
            empty_seen += drain(&r);
        if (tt_rng_below(&r, 2000) == 0 || (grow && n_out + 1 >= target) ||
            (!grow && n_out <= target))
            target = tt_rng_below(&r, 3) == 0
                         ? (int)tt_rng_below(&r, 5)
                         : (int)tt_rng_below(&r, MAX_OUT - 1);
        uint64_t op = tt_rng_below(&r, 1000);
        /* Mostly pool 0; one in ten on pool 1 or the shared pool. */
        int slot = tt_rng_below(&r, 10) ? 0 : tt_rng_below(&r, 2) ? 1 : -1;
        if (op < (grow ? 800u : 150u) && n_out < MAX_OUT) {
            tel__pool_bind_thread(slot);
            size_t size = tt_rng_below(&r, 3) ? 64 : sizes[tt_rng_below(&r, 8)];
            void *p = tel__pool_alloc(size);
            cr_assert_not_null(p);
            memset(p, 0x5a, size); /* ASan: the whole block is ours */
            out[n_out++] = (struct out){p, size};
        } else if (op < 990 && n_out) {
            /* Often the newest (LIFO), else any. */
            int i = tt_rng_below(&r, 2)
                        ? n_out - 1
                        : (int)tt_rng_below(&r, (uint64_t)n_out);
            struct out o = out[i];
            out[i] = out[--n_out];
            tel__pool_bind_thread(slot);
            tel__pool_free(o.p, o.size);
        } else if (op < 998) {
            tel__pool_bind_thread((int)tt_rng_below(&r, 2));
            tel__pool_trim_idle();
        } else if (op < 999 && tt_rng_below(&r, 4) == 0) {
            end_run(&r, keep);
        }
        if (step < 3000 || step % 61 == 0)
            check_all();
    }
    /* Last, everything back (blocks out since a run's end are an orphan
     * slab's, which never counts as empty), then a build-up of many slabs
     * a class on pool 0 and a drain, so that every run reaches slabs
     * turning all free, kept and freed. */
    (void)drain(&r);
    tel__pool_bind_thread(0);
    while (n_out < 12000) {
        size_t size = sizes[tt_rng_below(&r, 8)];
        void *p = tel__pool_alloc(size);
        cr_assert_not_null(p);
        out[n_out++] = (struct out){p, size};
    }
    check_all();
    empty_seen += drain(&r);
    cr_assert_gt(empty_seen, 0, "no slab ever became all free");
}

static void up(void)
{
    cr_assert_eq(tel__mem_init(2), 0);
    cr_assert_eq(tel__pool_init(2), 0);
    n_out = 0;
}

static void down(void)
{
    tel__pool_bind_thread(-1);
    tel__pool_fini();
    cr_assert_eq(tel__pool_n_slabs(), 0, "fini kept %zu slabs",
                 tel__pool_n_slabs());
    tel__mem_fini();
}

Test(pool_model, random_operations_keep_every_invariant, .init = up,
     .fini = down, .timeout = 600)
{
    uint64_t seed = tel_test_seed();
    run_model(seed, (long)tel_test_scaled(40000, 3000), 0);
}

Test(pool_model, with_a_small_bound_slabs_turn_over_and_keep_every_invariant,
     .init = up, .fini = down, .timeout = 600)
{
    uint64_t seed = tel_test_seed();
    run_model(seed ^ 0x5eed, (long)tel_test_scaled(40000, 3000), 8);
}

/* The tests below: a block the model knows is out, and its free. */
static void *model_alloc(size_t size)
{
    void *p = tel__pool_alloc(size);
    cr_assert_not_null(p);
    cr_assert_lt(n_out, MAX_OUT);
    out[n_out++] = (struct out){p, size};
    return p;
}

static void model_free(void *p)
{
    for (int i = n_out - 1; i >= 0; i--)
        if (out[i].p == p) {
            size_t size = out[i].size;
            out[i] = out[--n_out];
            tel__pool_free(p, size);
            return;
        }
    cr_assert_fail("%p is not out", p);
}

/* pool.c, "Remote frees in batches": a scheduler holds the remote frees of
 * a class for one owner and pushes them with one CAS when it has a batch,
 * when a free names another owner, when it is about to sleep and when its
 * thread unbinds; the owner gets every block back. */
Test(pool_model, remote_frees_reach_their_owner_in_batches, .init = up,
     .fini = down)
{
    enum { N = 2 * POOL_OUT_BATCH + 1 };
    void *p[N];
    tel__pool_bind_thread(0);
    for (int i = 0; i < N; i++)
        p[i] = model_alloc(64);
    tel__pool_bind_thread(-1);
    void *foreign = model_alloc(64); /* the shared pool's */

    struct pool_cache *owner = caches[0], *holder = caches[1];
    tel__pool_bind_thread(1);
    for (int i = 0; i < (int)POOL_OUT_BATCH - 1; i++)
        model_free(p[i]);
    cr_assert_eq(POOL_COUNT(atomic_load(&owner->ret[0])), 0,
                 "a remote free was pushed before a batch was full");
    cr_assert_eq(holder->out_n[0], POOL_OUT_BATCH - 1);
    model_free(p[POOL_OUT_BATCH - 1]);
    cr_assert_eq(POOL_COUNT(atomic_load(&owner->ret[0])), POOL_OUT_BATCH);
    cr_assert_eq(holder->out_n[0], 0);
    check_all();

    /* A free for another owner pushes what was held for the first. */
    for (int i = (int)POOL_OUT_BATCH; i < (int)POOL_OUT_BATCH + 3; i++)
        model_free(p[i]);
    model_free(foreign);
    cr_assert_eq(POOL_COUNT(atomic_load(&owner->ret[0])),
                 POOL_OUT_BATCH + 3);
    cr_assert(holder->out_to[0] == &shared && holder->out_n[0] == 1);
    check_all();
    /* About to sleep: nothing stays held. */
    tel__pool_trim_idle();
    cr_assert_eq(holder->out_n[0], 0);
    cr_assert_eq(POOL_COUNT(atomic_load(&shared.ret[0])), 1);

    /* Rebinding to the same pool keeps the batch; unbinding pushes it. */
    for (int i = (int)POOL_OUT_BATCH + 3; i < N; i++)
        model_free(p[i]);
    tel__pool_bind_thread(1);
    cr_assert_eq(holder->out_n[0], (uint32_t)N - POOL_OUT_BATCH - 3);
    tel__pool_bind_thread(0);
    cr_assert_eq(holder->out_n[0], 0);
    cr_assert_eq(POOL_COUNT(atomic_load(&owner->ret[0])), N);
    check_all();

    /* The owner gets each block back once (its list is empty: every block
     * so far was carved, so the next refill takes the return stack). */
    void *q[N];
    for (int i = 0; i < N; i++) {
        q[i] = model_alloc(64);
        bool known = false;
        for (int j = 0; j < N && !known; j++)
            known = q[i] == p[j];
        cr_assert(known, "block %d is not one of the freed ones", i);
        for (int j = 0; j < i; j++)
            cr_assert_neq(q[i], q[j], "a block came back twice");
    }
    for (int i = 0; i < N; i++)
        model_free(q[i]);
    check_all();
}

/* A return stack's count is exact past 65,535 blocks (it used to saturate
 * there, and the owner's next refill walked the whole chain to count it),
 * and the refill hands out every block once. */
Test(pool_model, a_return_stack_counts_past_65535_blocks, .init = up,
     .fini = down, .timeout = 120)
{
    enum { N = 70000 };
    static void *p[N];
    tel__pool_bind_thread(0);
    for (int i = 0; i < N; i++)
        cr_assert_not_null(p[i] = tel__pool_alloc(64));
    tel__pool_bind_thread(1);
    for (int i = 0; i < N; i++)
        tel__pool_free(p[i], 64);
    tel__pool_bind_thread(0);
    cr_assert_eq(POOL_COUNT(atomic_load(&caches[0]->ret[0])), N);
    cr_assert_null(caches[0]->head[0], "the owner's list was not empty");
    cr_assert_not_null(p[0] = tel__pool_alloc(64));
    cr_assert_eq(caches[0]->n[0], N - 1, "the refill's count is wrong");
    for (int i = 1; i < N; i++)
        cr_assert_not_null(p[i] = tel__pool_alloc(64));
    qsort(p, N, sizeof(p[0]), by_address_ptr);
    for (int i = 1; i < N; i++)
        cr_assert_neq(p[i], p[i - 1], "block %p handed out twice", p[i]);
    for (int i = 0; i < N; i++)
        tel__pool_free(p[i], 64);
    check_all(); /* the model knows of no block out: all back */
}
