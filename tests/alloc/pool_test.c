/*
 * tests/alloc/pool_test.c: white-box tests of alloc/pool.h, the
 * per-scheduler caches of small blocks.
 *
 * Each test brings up the runtime's memory and two caches and takes them
 * down at the end; ASan/LSan (the asan build) check that fini returns every
 * cached block and that no test touches a block beyond its class.
 */
#include "common.h"

#include "alloc/base.h"
#include "alloc/numa.h"
#include "alloc/pool.h"

static void up(void)
{
    cr_assert_eq(tel__mem_init(2), 0);
    cr_assert_eq(tel__pool_init(2), 0);
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
    /* Allocated unbound (as a foreign thread would), freed into a cache,
     * then served for a larger request of the same class: the block must
     * really have the class size (ASan checks the writes). */
    size_t ask[] = {1, 65, 129, 257};
    size_t full[] = {64, 128, 256, 512};
    for (size_t i = 0; i < TEL_ARRAY_LEN(ask); i++) {
        tel__pool_bind_thread(-1);
        void *p = tel__pool_alloc(ask[i]);
        cr_assert_not_null(p);
        tel__pool_bind_thread(0);
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

Test(pool, a_full_cache_gives_blocks_back_and_fini_frees_the_rest,
     .init = up, .fini = down)
{
    /* Far more blocks than a cache keeps: the surplus must go back to
     * jemalloc (LSan would report what fini misses). */
    enum { N = 5000 };
    static void *p[N];
    tel__pool_bind_thread(0);
    for (int i = 0; i < N; i++) {
        p[i] = tel__pool_alloc(200);
        cr_assert_not_null(p[i]);
    }
    for (int i = 0; i < N; i++)
        tel__pool_free(p[i], 200);
    /* The cache is bounded: at most a few hundred come back from it. */
    int reused = 0;
    for (int i = 0; i < N; i++) {
        void *q = tel__pool_alloc(200);
        for (int j = 0; j < N && reused < N; j++)
            if (q == p[j]) {
                reused++;
                break;
            }
        p[i] = q;
    }
    for (int i = 0; i < N; i++)
        tel__pool_free(p[i], 200);
    cr_assert_gt(reused, 0, "nothing was cached");
    cr_assert_lt(reused, N, "the cache kept every block: it is unbounded");
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
