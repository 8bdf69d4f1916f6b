/*
 * tests/alloc/pool_test.c: white-box tests of alloc/pool.h, the
 * per-scheduler block pools with remote free.
 *
 * Most tests bring up the runtime's memory and two pools and take them down
 * at the end; a "scheduler" is any thread bound to a pool slot. ASan/LSan
 * (the asan build) check that fini returns every slab and that no test
 * touches a block beyond its class; TSan checks the return stacks' orders.
 */
#include "common.h"

#include "alloc/base.h"
#include "alloc/numa.h"
#include "alloc/pool.h"

static void up(void)
{
    cr_assert_eq(tel__mem_init(2), 0);
    cr_assert_eq(tel__pool_init(3), 0);
}

static void down(void)
{
    tel__pool_bind_thread(-1);
    tel__pool_fini();
    tel__mem_fini();
}

Test(pool, a_freed_block_is_the_next_one_served_on_the_same_cache,
     .init = up, .fini = down)
{
    tel__pool_bind_thread(0);
    void *a = tel__pool_alloc(100);
    cr_assert_not_null(a);
    tel__pool_free(a, 100);
    void *b = tel__pool_alloc(120); /* the same class (128 bytes) */
    cr_assert_eq(a, b, "a cached block was not reused");
    tel__pool_free(b, 120);
}

Test(pool, blocks_are_not_shared_between_caches, .init = up, .fini = down)
{
    tel__pool_bind_thread(0);
    void *a = tel__pool_alloc(64);
    tel__pool_free(a, 64); /* now cached on cache 0 */
    tel__pool_bind_thread(1);
    void *b = tel__pool_alloc(64);
    cr_assert_neq(a, b, "cache 1 served cache 0's block");
    tel__pool_free(b, 64);
}

Test(pool, every_class_hands_out_its_whole_class_size, .init = up, .fini = down)
{
    /* Allocated for a small request, freed, then served again for the full
     * class size: the block must really have it (ASan checks the writes). */
    size_t ask[] = {1, 65, 129, 257};
    size_t full[] = {64, 128, 256, 512};
    for (size_t i = 0; i < TEL_ARRAY_LEN(ask); i++) {
        tel__pool_bind_thread(0);
        void *p = tel__pool_alloc(ask[i]);
        cr_assert_not_null(p);
        tel__pool_free(p, ask[i]);
        void *q = tel__pool_alloc(full[i]);
        cr_assert_eq(p, q, "class %zu: block not reused", full[i]);
        memset(q, 0xab, full[i]);
        tel__pool_free(q, full[i]);
    }
}

Test(pool, blocks_are_aligned_for_any_type, .init = up, .fini = down)
{
    tel__pool_bind_thread(0);
    void *p[64];
    for (int i = 0; i < 64; i++) {
        p[i] = tel__pool_alloc((size_t)(i * 8 + 1));
        cr_assert_eq((uintptr_t)p[i] % alignof(max_align_t), 0);
    }
    for (int i = 0; i < 64; i++)
        tel__pool_free(p[i], (size_t)(i * 8 + 1));
}

Test(pool, large_sizes_bypass_the_caches, .init = up, .fini = down)
{
    tel__pool_bind_thread(0);
    void *a = tel__pool_alloc(4096);
    cr_assert_not_null(a);
    memset(a, 1, 4096);
    tel__pool_free(a, 4096);
    tel__pool_free(NULL, 64); /* a no-op */
}

/* ------------------------------------------------------------------------ */
/* Remote free: a block goes back to the pool that carved it                */
/* ------------------------------------------------------------------------ */

struct freer {
    int slot; /* pool slot the thread binds, -1: not a scheduler */
    void **blocks;
    size_t n;
    size_t size;
    atomic_int *go;
};

static void *freer_main(void *arg)
{
    struct freer *f = arg;
    tel__pool_bind_thread(f->slot);
    while (f->go && !atomic_load(f->go))
        ;
    for (size_t i = 0; i < f->n; i++)
        tel__pool_free(f->blocks[i], f->size);
    tel__pool_bind_thread(-1);
    return NULL;
}

static void free_on_thread(int slot, void **blocks, size_t n, size_t size)
{
    struct freer f = {slot, blocks, n, size, NULL};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, freer_main, &f), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
}

Test(pool, a_block_freed_by_another_scheduler_returns_to_its_owner,
     .init = up, .fini = down)
{
    tel__pool_bind_thread(0);
    void *a = tel__pool_alloc(64);
    cr_assert_not_null(a);
    free_on_thread(1, &a, 1, 64); /* scheduler 1 frees scheduler 0's block */

    /* Scheduler 1 does not get it... */
    tel__pool_bind_thread(1);
    void *b = tel__pool_alloc(64);
    cr_assert_neq(a, b, "the freeing scheduler kept the block");
    tel__pool_free(b, 64);

    /* ...its owner does, once its list is empty: at most a slab's worth. */
    tel__pool_bind_thread(0);
    enum { MAX = 2048 };
    static void *got[MAX];
    size_t n = 0;
    bool found = false;
    while (n < MAX && !found) {
        got[n] = tel__pool_alloc(64);
        cr_assert_not_null(got[n]);
        found = got[n++] == a;
    }
    cr_assert(found, "the owner never got its block back");
    for (size_t i = 0; i < n; i++)
        tel__pool_free(got[i], 64);
}

static int cmp_ptr(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t) * (void *const *)x;
    uintptr_t b = (uintptr_t) * (void *const *)y;
    return a < b ? -1 : a > b;
}

Test(pool, many_threads_freeing_to_one_owner_lose_nothing_and_duplicate_nothing,
     .init = up, .fini = down, .timeout = 60)
{
    /* The owner allocates 2N blocks and keeps every other one, so no slab
     * becomes all free (a trim would give the blocks back to numa.c). Four
     * threads, two bound to schedulers 1 and 2 (one thread a slot, as
     * pool.h asks) and two not schedulers, free the other N at once. The
     * owner must then get exactly those N back. */
    enum { THREADS = 4 };
    size_t n = tel_test_scaled(40000, 4000) / THREADS * THREADS;
    size_t cap = 1023; /* 64-byte blocks per slab */
    void **kept = calloc(n, sizeof(void *));
    void **freed = calloc(n, sizeof(void *));
    void **again = calloc(n + cap, sizeof(void *));
    cr_assert(kept && freed && again);
    tel__pool_bind_thread(0);
    for (size_t i = 0; i < n; i++) {
        kept[i] = tel__pool_alloc(64);
        freed[i] = tel__pool_alloc(64);
        cr_assert(kept[i] && freed[i]);
    }
    atomic_int go = 0;
    struct freer f[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        f[i] = (struct freer){i % 2 ? 1 + i / 2 : -1,
                              freed + (size_t)i * (n / THREADS),
                              n / THREADS, 64, &go};
        cr_assert_eq(pthread_create(&t[i], NULL, freer_main, &f[i]), 0);
    }
    atomic_store(&go, 1);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_join(t[i], NULL), 0);

    /* What is left of the last slab comes first, then the N returned. */
    size_t slabs = tel__pool_n_slabs();
    for (size_t i = 0; i < n + cap; i++) {
        again[i] = tel__pool_alloc(64);
        cr_assert_not_null(again[i]);
    }
    qsort(again, n + cap, sizeof(void *), cmp_ptr);
    for (size_t i = 1; i < n + cap; i++)
        cr_assert_neq(again[i - 1], again[i], "a block was served twice");
    size_t back = 0;
    for (size_t i = 0; i < n; i++)
        back += bsearch(&freed[i], again, n + cap, sizeof(void *),
                        cmp_ptr) != NULL;
    cr_assert_eq(back, n, "%zu of %zu freed blocks came back", back, n);
    cr_assert_leq(tel__pool_n_slabs(), slabs + 1,
                  "the owner carved slabs it did not need");
    for (size_t i = 0; i < n; i++)
        tel__pool_free(kept[i], 64);
    for (size_t i = 0; i < n + cap; i++)
        tel__pool_free(again[i], 64);
    free(kept);
    free(freed);
    free(again);
}

static void *foreign_churn(void *arg)
{
    (void)arg;
    /* Not a scheduler: allocations come from the shared pool. */
    tel__pool_bind_thread(-1);
    void *mine[64];
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 64; i++) {
            size_t sz = (size_t)64 << (i % 4);
            mine[i] = tel__pool_alloc(sz);
            if (!mine[i])
                return (void *)1;
            memset(mine[i], i, sz);
        }
        for (int i = 0; i < 64; i++)
            tel__pool_free(mine[i], (size_t)64 << (i % 4));
    }
    return NULL;
}

Test(pool, threads_that_are_not_schedulers_allocate_and_free_concurrently,
     .init = up, .fini = down, .timeout = 60)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, foreign_churn, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *rc;
        cr_assert_eq(pthread_join(t[i], &rc), 0);
        cr_assert_null(rc, "a foreign allocation failed");
    }
}

Test(pool, a_block_from_a_foreign_thread_is_freed_by_a_scheduler,
     .init = up, .fini = down)
{
    /* A message sent from a thread outside the runtime: the scheduler that
     * receives it frees it into the shared pool's return stack. */
    void *a = tel__pool_alloc(300);
    cr_assert_not_null(a);
    memset(a, 1, 512);
    free_on_thread(0, &a, 1, 300);
    void *b = tel__pool_alloc(300);
    cr_assert_not_null(b);
    tel__pool_free(b, 300);
}

/* ------------------------------------------------------------------------ */
/* Bounded memory and shutdown                                              */
/* ------------------------------------------------------------------------ */

Test(pool, a_long_free_list_gives_its_all_free_slabs_back,
     .init = up, .fini = down)
{
    enum { N = 20000 };
    static void *p[N];
    tel__pool_bind_thread(0);
    for (int i = 0; i < N; i++) {
        p[i] = tel__pool_alloc(200);
        cr_assert_not_null(p[i]);
    }
    size_t peak = tel__pool_n_slabs();
    cr_assert_geq(peak, N / 255);
    for (int i = 0; i < N; i++)
        tel__pool_free(p[i], 200);
    /* The pool keeps its list's bound (1024 blocks, a few slabs), two
     * empty slabs and the slabs partly on the list, not the 80 slabs of
     * the peak. */
    cr_assert_leq(tel__pool_n_slabs(), peak / 4, "kept %zu of %zu slabs",
                  tel__pool_n_slabs(), peak);
}

/* A pool that stopped allocating while another thread freed its blocks
 * (fanin's senders' scheduler once they are done): the blocks wait on its
 * return stack, and the idle trim takes them and gives back the slabs. */
Test(pool, an_idle_pool_gives_back_the_slabs_returned_to_it,
     .init = up, .fini = down)
{
    enum { N = 20000 };
    static void *p[N];
    tel__pool_bind_thread(0);
    for (int i = 0; i < N; i++) {
        p[i] = tel__pool_alloc(200);
        cr_assert_not_null(p[i]);
    }
    size_t peak = tel__pool_n_slabs();
    free_on_thread(1, p, N, 200);
    cr_assert_eq(tel__pool_n_slabs(), peak,
                 "remote frees alone gave slabs back");
    tel__pool_bind_thread(0);
    tel__pool_trim_idle();
    size_t kept = tel__pool_n_slabs();
    cr_assert_leq(kept, peak / 4, "kept %zu of %zu slabs", kept, peak);
    /* What is kept is whole and usable: allocate past it, no duplicates. */
    for (int i = 0; i < N; i++) {
        p[i] = tel__pool_alloc(200);
        cr_assert_not_null(p[i]);
        memset(p[i], i & 0xff, 200);
    }
    qsort(p, N, sizeof(p[0]), cmp_ptr);
    for (int i = 1; i < N; i++)
        cr_assert_neq(p[i], p[i - 1], "block %p handed out twice", p[i]);
    for (int i = 0; i < N; i++)
        tel__pool_free(p[i], 200);
}

/* A short return stack is left for the owner's next refill: the idle trim
 * neither takes it (its line stays with the pushers) nor loses it. */
Test(pool, the_idle_trim_leaves_a_short_return_stack_alone,
     .init = up, .fini = down)
{
    enum { N = 100 };
    static void *p[N];
    tel__pool_bind_thread(0);
    for (int i = 0; i < N; i++)
        p[i] = tel__pool_alloc(64);
    void *first = p[0];
    free_on_thread(1, p, N, 64);
    tel__pool_bind_thread(0);
    tel__pool_trim_idle();
    cr_assert_eq(tel__pool_n_slabs(), 1);
    /* The owner still gets its blocks back: first is among the next ones
     * (the slab's uncarved rest comes only after the return stack). */
    bool found = false;
    int n = 0;
    while (n < N && !found) {
        p[n] = tel__pool_alloc(64);
        cr_assert_not_null(p[n]);
        found = p[n++] == first;
    }
    cr_assert(found, "the returned blocks were lost");
    for (int i = 0; i < n; i++)
        tel__pool_free(p[i], 64);
}

/* A slab is carved one block at a time: its last blocks are counted free
 * although they were never handed out, and a slab given back while it is
 * the newest does not leave the next allocation carving it. */
Test(pool, a_partly_carved_slab_is_given_back_and_never_carved_after,
     .init = up, .fini = down)
{
    /* 64-byte class: 1022 blocks a slab (the header takes two), so 6000
     * blocks fill five slabs and 890 blocks of a sixth. */
    enum { N = 6000, PER = 1022, KEEP = 2048 };
    static void *p[N];
    tel__pool_bind_thread(0);
    for (int i = 0; i < N; i++) {
        p[i] = tel__pool_alloc(64);
        cr_assert_not_null(p[i]);
    }
    cr_assert_eq(tel__pool_n_slabs(), 6, "%d blocks in %zu slabs", N,
                 tel__pool_n_slabs());
    /* The oldest 2048 fill the pool's list (the first two slabs and four
     * blocks of the third, which is then never all free). */
    for (int i = 0; i < KEEP; i++)
        tel__pool_free(p[i], 64);
    /* Past the list's bound a free goes to its slab: the fourth and fifth
     * slabs become all free and are kept for carving. */
    for (int i = KEEP; i < 5 * PER; i++)
        tel__pool_free(p[i], 64);
    cr_assert_eq(tel__pool_n_slabs(), 6);
    /* The sixth, newest one (890 out and back, 132 never carved) is all
     * free too, past the two kept: it goes back to numa.c. */
    for (int i = 5 * PER; i < N; i++)
        tel__pool_free(p[i], 64);
    cr_assert_eq(tel__pool_n_slabs(), 5, "the newest slab was kept");
    /* Allocate it all again and write every byte: carving from the freed
     * slab would be a use after free (ASan) or hand out a block twice. */
    for (int i = 0; i < N; i++) {
        p[i] = tel__pool_alloc(64);
        cr_assert_not_null(p[i]);
        cr_assert(tel__pool_holds(p[i]), "block %d of a slab given back", i);
        memset(p[i], i & 0xff, 64);
    }
    /* What was kept was used before anything new was carved: the list,
     * the third slab's own list and the two empty slabs (5,110 blocks),
     * then one new slab for the last 890. */
    cr_assert_eq(tel__pool_n_slabs(), 6, "%zu slabs after refilling",
                 tel__pool_n_slabs());
    qsort(p, N, sizeof(p[0]), cmp_ptr);
    for (int i = 1; i < N; i++)
        cr_assert_neq(p[i], p[i - 1], "block %p handed out twice", p[i]);
    for (int i = 0; i < N; i++)
        tel__pool_free(p[i], 64);
}

Test(pool, fini_gives_every_slab_back, .init = up, .fini = down)
{
    void *a[100];
    for (int i = 0; i < 100; i++) {
        tel__pool_bind_thread(i % 2);
        a[i] = tel__pool_alloc(i < 50 ? 64 : (size_t)(64 << (i % 4)));
        cr_assert_not_null(a[i]);
    }
    free_on_thread(1, a, 50, 64);
    for (int i = 0; i < 50; i++)
        a[i] = NULL;
    for (int i = 50; i < 100; i++) {
        tel__pool_bind_thread(i % 3 == 0 ? -1 : 0);
        tel__pool_free(a[i], (size_t)(64 << (i % 4)));
    }
    (void)a;
    tel__pool_bind_thread(-1);
    tel__pool_fini();
    cr_assert_eq(tel__pool_n_slabs(), 0);
    cr_assert_eq(tel__pool_init(2), 0); /* for down() */
}

Test(pool, a_block_kept_past_fini_stays_valid_and_its_free_ends_its_slab,
     .init = up, .fini = down)
{
    tel__pool_bind_thread(0);
    void *kept = tel__pool_alloc(64);
    void *other = tel__pool_alloc(64);
    memset(kept, 7, 64);
    tel__pool_free(other, 64);
    tel__pool_bind_thread(-1);
    tel__pool_fini();
    cr_assert_eq(tel__pool_n_slabs(), 1, "the kept block's slab was freed");
    cr_assert_eq(((unsigned char *)kept)[63], 7);
    tel__pool_free(kept, 64); /* as tel_msg_free after tel_run returned */
    cr_assert_eq(tel__pool_n_slabs(), 0, "the orphan slab was not freed");
    cr_assert_eq(tel__pool_init(2), 0);
}

/* ------------------------------------------------------------------------ */
/* Through the runtime                                                      */
/* ------------------------------------------------------------------------ */

static atomic_size_t slabs_seen;

static void echo(void *arg)
{
    (void)arg;
    for (;;) {
        tel_msg_t *m;
        if (tel_recv(&m, TEL_INFINITY) != 0)
            return;
        uint64_t tag = m->tag;
        int rc = tel_send(m->from, tag, m->data, m->size);
        tel_msg_free(m);
        if (rc || tag == 0)
            return;
    }
}

static void churn_main(void *arg)
{
    (void)arg;
    /* Processes on both schedulers, messages of every class crossing them
     * and timers: blocks freed far from where they were carved. */
    enum { PEERS = 8 };
    tel_pid_t peer[PEERS];
    for (int i = 0; i < PEERS; i++)
        if (!TT_CHECK_RC(tel_spawn(&peer[i], echo, NULL), 0, "spawn"))
            return;
    char buf[400] = {0};
    size_t rounds = tel_test_scaled(2000, 200);
    for (size_t r = 0; r < rounds; r++) {
        for (int i = 0; i < PEERS; i++)
            TT_CHECK_RC(tel_send(peer[i], 1, buf, (r * 37 + (size_t)i) % 400),
                        0, "send");
        uint64_t id;
        TT_CHECK_RC(tel_send_after(&id, 100000, peer[0], 1, buf, 8), 0,
                    "send_after");
        for (int i = 0; i < PEERS; i++) {
            tel_msg_t *m;
            if (TT_CHECK_RC(tel_recv(&m, 10000), 0, "recv"))
                tel_msg_free(m);
        }
        if (r % 2)
            (void)tel_cancel_timer(id);
        size_t n = tel__pool_n_slabs();
        if (n > atomic_load(&slabs_seen))
            atomic_store(&slabs_seen, n);
    }
    /* The echoes and half the timers are still alive: teardown frees them. */
}

Test(pool, tel_run_twice_gives_back_every_slab_each_time, .timeout = 120)
{
    tel_config_t cfg = {.schedulers = 2};
    for (int run = 0; run < 2; run++) {
        atomic_store(&slabs_seen, 0);
        TT_RUN(&cfg, churn_main, NULL);
        cr_assert_gt(atomic_load(&slabs_seen), 0, "run %d used no slab", run);
        cr_assert_eq(tel__pool_n_slabs(), 0, "run %d kept %zu slabs", run,
                     tel__pool_n_slabs());
    }
}
