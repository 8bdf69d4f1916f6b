/*
 * tests/alloc/stack_test.c: white-box tests of alloc/stack.h, the pool of
 * process stacks carved from large reservations.
 *
 * Every test brings up the runtime's memory (tel__mem_init) and a pool, and
 * takes both down at the end. Criterion runs each test in its own process,
 * so the pool's statics start fresh.
 */
#include "common.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "alloc/numa.h"
#include "alloc/stack.h"
#include "alloc/topo.h"

#define KIB ((size_t)1024)
#define STACK_64K (64 * KIB)
#define N_CACHES 2u

static void pool_up(size_t size, unsigned n_caches)
{
    int rc = tel__topo_init();
    cr_assert_eq(rc, 0, "tel__topo_init: %d", rc);
    rc = tel__mem_init(n_caches);
    cr_assert_eq(rc, 0, "tel__mem_init: %d", rc);
    rc = tel__stack_pool_init(size, n_caches);
    cr_assert_eq(rc, 0, "tel__stack_pool_init: %d", rc);
}

static void pool_down(void)
{
    tel__stack_pool_fini();
    tel__mem_fini();
}

static void up_64k(void)
{
    pool_up(STACK_64K, N_CACHES);
}

/* How many mappings the process has (lines of /proc/self/maps). */
static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    cr_assert_not_null(f, "open /proc/self/maps: %s", strerror(errno));
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        if (c == '\n')
            n++;
    fclose(f);
    return n;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a;
    uintptr_t y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/*
 * Check that n bases are distinct, page aligned and at least `size` apart
 * (so no two stacks overlap).
 */
static void check_disjoint(void **bases, size_t n, size_t size)
{
    long page = sysconf(_SC_PAGESIZE);
    void **sorted = malloc(n * sizeof(void *));
    cr_assert_not_null(sorted);
    memcpy(sorted, bases, n * sizeof(void *));
    qsort(sorted, n, sizeof(void *), cmp_ptr);
    for (size_t i = 0; i < n; i++) {
        cr_assert_not_null(sorted[i]);
        cr_assert_eq((uintptr_t)sorted[i] % (uintptr_t)page, 0,
                     "base %p is not page aligned", sorted[i]);
        if (i > 0)
            cr_assert_geq((uintptr_t)sorted[i] - (uintptr_t)sorted[i - 1],
                          size, "stacks %p and %p overlap (size %zu)",
                          sorted[i - 1], sorted[i], size);
    }
    free(sorted);
}

Test(stack, size_reports_the_configured_stack_size, .init = up_64k,
     .fini = pool_down)
{
    cr_assert_eq(tel__stack_size(), STACK_64K);
}

Test(stack, alloc_returns_distinct_page_aligned_non_overlapping_stacks,
     .init = up_64k, .fini = pool_down)
{
    enum { N = 100 };
    void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = tel__stack_alloc(0);
        cr_assert_not_null(b[i], "alloc %d", i);
    }
    check_disjoint(b, N, STACK_64K);
    for (int i = 0; i < N; i++)
        tel__stack_free(0, b[i]);
}

Test(stack, every_byte_of_a_stack_is_writable, .init = up_64k,
     .fini = pool_down)
{
    enum { N = 8 };
    void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = tel__stack_alloc(i % 2);
        cr_assert_not_null(b[i]);
        memset(b[i], 0xA0 + i, STACK_64K);
    }
    /* Writing one never disturbed another. */
    for (int i = 0; i < N; i++) {
        unsigned char *p = b[i];
        for (size_t k = 0; k < STACK_64K; k += 509)
            cr_assert_eq(p[k], (unsigned char)(0xA0 + i), "stack %d byte %zu",
                         i, k);
        cr_assert_eq(p[0], (unsigned char)(0xA0 + i));
        cr_assert_eq(p[STACK_64K - 1], (unsigned char)(0xA0 + i));
    }
    for (int i = 0; i < N; i++)
        tel__stack_free(i % 2, b[i]);
}

Test(stack, a_reused_stack_is_writable_end_to_end, .init = up_64k,
     .fini = pool_down)
{
    /* The free-list link lives in the stack; a reused stack must still be
     * fully usable, and writing it must not break the pool. */
    void *a = tel__stack_alloc(0);
    cr_assert_not_null(a);
    memset(a, 1, STACK_64K);
    tel__stack_free(0, a);
    void *b = tel__stack_alloc(0);
    cr_assert_eq(b, a);
    memset(b, 2, STACK_64K);
    void *c = tel__stack_alloc(0);
    cr_assert_not_null(c);
    cr_assert_neq(c, b);
    tel__stack_free(0, b);
    tel__stack_free(0, c);
}

Test(stack, free_then_alloc_on_one_cache_returns_the_same_stack,
     .init = up_64k, .fini = pool_down)
{
    void *a = tel__stack_alloc(1);
    void *b = tel__stack_alloc(1);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    tel__stack_free(1, a);
    cr_assert_eq(tel__stack_alloc(1), a, "cache 1 did not reuse a");
    /* LIFO: the last freed comes back first. */
    tel__stack_free(1, a);
    tel__stack_free(1, b);
    cr_assert_eq(tel__stack_alloc(1), b);
    cr_assert_eq(tel__stack_alloc(1), a);
    tel__stack_free(1, a);
    tel__stack_free(1, b);
}

Test(stack, caches_do_not_hand_out_each_others_live_stacks, .init = up_64k,
     .fini = pool_down)
{
    enum { N = 200 };
    void *b[2 * N];
    for (int i = 0; i < N; i++) {
        b[2 * i] = tel__stack_alloc(0);
        b[2 * i + 1] = tel__stack_alloc(1);
        cr_assert_not_null(b[2 * i]);
        cr_assert_not_null(b[2 * i + 1]);
    }
    check_disjoint(b, 2 * N, STACK_64K);
    for (int i = 0; i < 2 * N; i++)
        tel__stack_free(i % 2, b[i]);
}

Test(stack, the_shared_path_allocates_and_reuses_stacks, .init = up_64k,
     .fini = pool_down)
{
    enum { N = 100 };
    void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = tel__stack_alloc(-1);
        cr_assert_not_null(b[i], "shared alloc %d", i);
        memset(b[i], 0x5A, STACK_64K);
    }
    check_disjoint(b, N, STACK_64K);
    tel__stack_free(-1, b[7]);
    cr_assert_eq(tel__stack_alloc(-1), b[7], "shared free list not LIFO");
    for (int i = 0; i < N; i++)
        tel__stack_free(-1, b[i]);
    /* Freed to the shared list: allocating N again reuses exactly them. */
    void *c[N];
    for (int i = 0; i < N; i++) {
        c[i] = tel__stack_alloc(-1);
        cr_assert_not_null(c[i]);
    }
    qsort(b, N, sizeof(void *), cmp_ptr);
    qsort(c, N, sizeof(void *), cmp_ptr);
    cr_assert_arr_eq(b, c, sizeof b, "shared list did not give back the "
                                     "freed stacks");
    for (int i = 0; i < N; i++)
        tel__stack_free(-1, c[i]);
}

Test(stack, shared_and_cached_stacks_mix_freely, .init = up_64k,
     .fini = pool_down)
{
    /* A stack taken on one cache may be freed on another or on the shared
     * list (a process that migrated), and comes back from there. */
    void *a = tel__stack_alloc(0);
    void *b = tel__stack_alloc(-1);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);
    tel__stack_free(1, a);
    tel__stack_free(0, b);
    cr_assert_eq(tel__stack_alloc(1), a);
    cr_assert_eq(tel__stack_alloc(0), b);
    tel__stack_free(-1, a);
    cr_assert_eq(tel__stack_alloc(-1), a);
    tel__stack_free(0, a);
    tel__stack_free(0, b);
}

Test(stack, a_cache_overflow_keeps_every_stack, .init = up_64k,
     .fini = pool_down)
{
    /* Free 300 to one cache (more than it holds: half spills to the
     * shared list, more than once), then take 300 back: exactly the same
     * set, no duplicates, all writable. */
    enum { N = 300 };
    void *b[N], *c[N];
    for (int i = 0; i < N; i++) {
        b[i] = tel__stack_alloc(-1);
        cr_assert_not_null(b[i]);
    }
    for (int i = 0; i < N; i++)
        tel__stack_free(0, b[i]);
    for (int i = 0; i < N; i++) {
        c[i] = tel__stack_alloc(0);
        cr_assert_not_null(c[i], "alloc %d after overflow", i);
        memset(c[i], 0xC3, STACK_64K);
    }
    check_disjoint(c, N, STACK_64K);
    qsort(b, N, sizeof(void *), cmp_ptr);
    qsort(c, N, sizeof(void *), cmp_ptr);
    cr_assert_arr_eq(b, c, sizeof b, "the stacks that came back are not the "
                                     "ones freed");
    /* The pool has no more freed stacks: the next one is new. */
    void *d = tel__stack_alloc(0);
    cr_assert_not_null(d);
    cr_assert_null(bsearch(&d, c, N, sizeof(void *), cmp_ptr),
                   "stack %p handed out twice", d);
    tel__stack_free(0, d);
    for (int i = 0; i < N; i++)
        tel__stack_free(0, c[i]);
}

Test(stack, a_cache_overflow_spills_to_the_other_cache, .init = up_64k,
     .fini = pool_down)
{
    /* What cache 0 spills reaches the shared list, where cache 1's refill
     * finds it, before any new reservation memory. */
    enum { N = 300 };
    void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = tel__stack_alloc(-1);
        cr_assert_not_null(b[i]);
    }
    qsort(b, N, sizeof(void *), cmp_ptr);
    for (int i = 0; i < N; i++)
        tel__stack_free(0, b[i]);
    void *c = tel__stack_alloc(1);
    cr_assert_not_null(c);
    cr_assert_not_null(bsearch(&c, b, N, sizeof(void *), cmp_ptr),
                       "cache 1 got a new stack although cache 0 spilled");
    tel__stack_free(1, c);
    for (int i = 0; i < N; i++) {
        void *s = tel__stack_alloc(0);
        cr_assert_not_null(s);
        (void)s;
    }
    /* (The pool is torn down with stacks out: that is allowed.) */
}

Test(stack, twenty_thousand_stacks_do_not_take_a_mapping_each, .init = up_64k,
     .fini = pool_down, .timeout = 60)
{
    const size_t n = 20000;
    void **b = malloc(n * sizeof(void *));
    cr_assert_not_null(b);
    long before = count_maps();
    for (size_t i = 0; i < n; i++) {
        b[i] = tel__stack_alloc((int)(i % 3) - 1); /* -1, 0, 1 */
        cr_assert_not_null(b[i], "alloc %zu of %zu", i, n);
        /* Touch the top word, where a process starts. */
        ((volatile char *)b[i])[STACK_64K - 1] = 1;
    }
    long after = count_maps();
    cr_assert_lt(after - before, 200,
                 "%zu stacks added %ld mappings (%ld -> %ld)", n,
                 after - before, before, after);
    check_disjoint(b, n, STACK_64K);
    for (size_t i = 0; i < n; i++)
        tel__stack_free((int)(i % 3) - 1, b[i]);
    /* Reuse: taking them again adds no mapping. */
    for (size_t i = 0; i < n; i++) {
        b[i] = tel__stack_alloc(0);
        cr_assert_not_null(b[i]);
    }
    /* (A little slack: the C library and sanitizers map memory too.) */
    cr_assert_lt(count_maps() - after, 100, "reuse added %ld mappings",
                 count_maps() - after);
    for (size_t i = 0; i < n; i++)
        tel__stack_free(0, b[i]);
    free(b);
}

Test(stack, fini_unmaps_the_reservations)
{
    pool_up(STACK_64K, 1);
    void *b[4000];
    for (int i = 0; i < 4000; i++) {
        b[i] = tel__stack_alloc(0);
        cr_assert_not_null(b[i]);
        ((volatile char *)b[i])[0] = 1;
    }
    void *probe = b[0];
    tel__stack_pool_fini();
    tel__mem_fini();
    /* The reservation holding b[0] is gone: mincore on it fails ENOMEM. */
    long page = sysconf(_SC_PAGESIZE);
    unsigned char vec;
    int rc = mincore((void *)((uintptr_t)probe & ~((uintptr_t)page - 1)),
                     (size_t)page, &vec);
    cr_assert_eq(rc, -1, "stack memory still mapped after fini");
    cr_assert_eq(errno, ENOMEM);
}

Test(stack, a_second_pool_after_fini_works)
{
    /* A program may call tel_run more than once: fini then init again,
     * with another stack size. */
    pool_up(STACK_64K, 2);
    void *a = tel__stack_alloc(0);
    cr_assert_not_null(a);
    tel__stack_free(0, a);
    pool_down();

    pool_up(128 * KIB, 1);
    cr_assert_eq(tel__stack_size(), 128 * KIB);
    void *b[50];
    for (int i = 0; i < 50; i++) {
        b[i] = tel__stack_alloc(i % 2 ? 0 : -1);
        cr_assert_not_null(b[i]);
        memset(b[i], 0x77, 128 * KIB);
    }
    check_disjoint(b, 50, 128 * KIB);
    for (int i = 0; i < 50; i++)
        tel__stack_free(0, b[i]);
    pool_down();
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */
/* ------------------------------------------------------------------ */

struct worker {
    int cache;
    size_t rounds;
    uintptr_t sum; /* out: checksum mismatch count */
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    enum { HOLD = 40 };
    void *held[HOLD] = {0};
    for (size_t r = 0; r < w->rounds; r++) {
        unsigned k = (unsigned)(r % HOLD);
        if (held[k]) {
            /* Our mark must still be there: nobody else had this stack. */
            uintptr_t *top = (uintptr_t *)((char *)held[k] + STACK_64K) - 2;
            uintptr_t *bot = held[k];
            if (*top != (uintptr_t)held[k] || *bot != (uintptr_t)held[k])
                w->sum++;
            tel__stack_free(w->cache, held[k]);
            held[k] = NULL;
        }
        void *s = tel__stack_alloc(w->cache);
        if (!s) {
            w->sum++;
            continue;
        }
        *((uintptr_t *)((char *)s + STACK_64K) - 2) = (uintptr_t)s;
        *(uintptr_t *)s = (uintptr_t)s;
        held[k] = s;
    }
    for (unsigned k = 0; k < HOLD; k++)
        if (held[k])
            tel__stack_free(w->cache, held[k]);
    return NULL;
}

Test(stack, cache_threads_and_shared_threads_never_share_a_stack,
     .init = up_64k, .fini = pool_down, .timeout = 60)
{
    /* Cache 0 and cache 1 each on its own thread, plus two threads on the
     * shared path: a stack is never held by two at once. */
    struct worker w[4] = {
        {.cache = 0}, {.cache = 1}, {.cache = -1}, {.cache = -1}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i].rounds = tel_test_scaled(50000, 2000);
        cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    }
    for (int i = 0; i < 4; i++)
        cr_assert_eq(w[i].sum, 0,
                     "worker %d (cache %d): %zu stacks clobbered or missing",
                     i, w[i].cache, (size_t)w[i].sum);
}

/* ------------------------------------------------------------------ */
/* Guards                                                              */
/* ------------------------------------------------------------------ */

/*
 * In a forked child, write the byte at p: returns the signal that killed
 * the child, or 0 if it lived. (The child drops any sanitizer handler, so
 * a fault kills it as it would a plain program.)
 */
static int child_touch(volatile char *p)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        *p = 1;
        _exit(0);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st))
        return WTERMSIG(st);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "child ended with status %#x", st);
    return 0;
}

/* Every stack has a guard just below its base, and the stack itself is
 * writable down to its base. */
static void check_guards(void **b, int n)
{
    size_t g = tel__stack_guard_size();
    cr_assert_geq(g, 4096);
    for (int i = 0; i < n; i++) {
        char *base = b[i];
        cr_assert_eq(child_touch(base - 1), SIGSEGV,
                     "stack %d: its guard's top byte did not fault", i);
        cr_assert_eq(child_touch(base - g), SIGSEGV,
                     "stack %d: its guard's lowest byte did not fault", i);
        cr_assert_eq(child_touch(base), 0, "stack %d: its base faulted", i);
    }
}

Test(stack, a_guard_below_every_stack_faults, .init = up_64k,
     .fini = pool_down, .timeout = 60)
{
    struct tel__stack_stats st;
    tel__stack_stats(&st);
    if (!st.guard_markers)
        cr_log_info("no MADV_GUARD_INSTALL here: testing the fallback");
    enum { N = 6 };
    void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = tel__stack_alloc(i % 3 - 1);
        cr_assert_not_null(b[i]);
    }
    check_guards(b, N);
    /* A reused stack keeps its guard (it is installed once, at carving). */
    tel__stack_free(0, b[0]);
    cr_assert_eq(tel__stack_alloc(0), b[0]);
    check_guards(b, 1);
    for (int i = 0; i < N; i++)
        tel__stack_free(i % 3 - 1, b[i]);
}

Test(stack, guard_markers_add_no_mapping, .init = up_64k, .fini = pool_down,
     .timeout = 60)
{
    struct tel__stack_stats st;
    tel__stack_stats(&st);
    if (!st.guard_markers) {
        cr_log_info("skipped: no MADV_GUARD_INSTALL here (Linux < 6.13)");
        return;
    }
    cr_assert_eq(tel__stack_canary_on(), false);
    void *first = tel__stack_alloc(0); /* the first reservation */
    cr_assert_not_null(first);
    long before = count_maps();
    enum { N = 1000 };
    void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = tel__stack_alloc(0);
        cr_assert_not_null(b[i]);
    }
    long after = count_maps();
    cr_assert_lt(after - before, 10, "1000 guards added %ld mappings",
                 after - before);
    for (int i = 0; i < N; i++)
        tel__stack_free(0, b[i]);
    tel__stack_free(0, first);
}

static void fallback_64k(void)
{
    tel__stack_force_fallback(3); /* three mprotect guards, then canaries */
    up_64k();
}

static void fallback_down(void)
{
    pool_down();
    tel__stack_force_fallback(-1);
}

Test(stack, the_fallback_guards_stacks_while_its_budget_lasts_then_uses_canaries,
     .init = fallback_64k, .fini = fallback_down, .timeout = 60)
{
    cr_assert(tel__stack_canary_on());
    long before = count_maps();
    enum { N = 8 };
    void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = tel__stack_alloc(0);
        cr_assert_not_null(b[i]);
        cr_assert_eq(*(uint64_t *)b[i], STACK_CANARY, "stack %d: no canary",
                     i);
    }
    struct tel__stack_stats st;
    tel__stack_stats(&st);
    cr_assert_eq(st.n_mprotect, 3);
    cr_assert_not(st.guard_markers);
    /* Each guard costs about two mappings (plus the reservation). */
    cr_assert_leq(count_maps() - before, 3 * 2 + 2);
    /* The first three fault below their base; the others do not, and
     * rely on the canary (and the unused guard region as a buffer). */
    check_guards(b, 3);
    cr_assert_eq(child_touch((char *)b[5] - 1), 0);
    for (int i = 0; i < N; i++)
        tel__stack_free(0, b[i]);
}

Test(stack, a_freed_stack_gets_its_canary_back, .init = fallback_64k,
     .fini = fallback_down)
{
    void *a = tel__stack_alloc(0);
    cr_assert_not_null(a);
    memset(a, 0, STACK_64K); /* an overflow wiped it */
    tel__stack_free_trim(0, a, a);
    cr_assert_eq(tel__stack_alloc(0), a);
    cr_assert_eq(*(uint64_t *)a, STACK_CANARY);
    memset(a, 0, 64);
    tel__stack_free(0, a);
    cr_assert_eq(tel__stack_alloc(0), a);
    cr_assert_eq(*(uint64_t *)a, STACK_CANARY);
    tel__stack_free(0, a);
}

/* ------------------------------------------------------------------ */
/* Trimming                                                            */
/* ------------------------------------------------------------------ */

/* How many of the pages of [lo, hi) are resident. */
static size_t resident(void *lo, void *hi)
{
    size_t n = ((char *)hi - (char *)lo) / 4096;
    unsigned char *v = malloc(n);
    cr_assert_not_null(v);
    cr_assert_eq(mincore(lo, n * 4096, v), 0, "mincore: %s", strerror(errno));
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += v[i] & 1;
    free(v);
    return r;
}

Test(stack, freeing_a_deep_stack_releases_all_but_its_top_pages,
     .init = up_64k, .fini = pool_down)
{
    char *a = tel__stack_alloc(0);
    cr_assert_not_null(a);
    memset(a, 0x11, STACK_64K);
    char *top = a + STACK_64K;
    cr_assert_eq(resident(a, top), STACK_64K / 4096);
    tel__stack_free_trim(0, a, a + 100); /* it went down to its base */
    size_t r = resident(a, top - 8 * KIB);
    cr_assert_eq(r, 0, "%zu pages below the top 8 KiB stayed resident", r);
    cr_assert_geq(resident(top - 4096, top), 1, "the top page went too");
    /* Still a good stack: it comes back zeroed below, writable. */
    cr_assert_eq(tel__stack_alloc(0), a);
    cr_assert_eq(a[0], 0);
    memset(a, 0x22, STACK_64K);
    tel__stack_free(0, a);
}

Test(stack, freeing_a_shallow_stack_keeps_its_pages, .init = up_64k,
     .fini = pool_down)
{
    char *a = tel__stack_alloc(0);
    cr_assert_not_null(a);
    char *top = a + STACK_64K;
    memset(top - 8 * KIB, 0x33, 8 * KIB);
    tel__stack_free_trim(0, a, top - 8 * KIB); /* not below the kept part */
    cr_assert_eq(resident(top - 8 * KIB, top), 2);
    cr_assert_eq(tel__stack_alloc(0), a);
    /* (The top word holds the free-list link now.) */
    cr_assert_eq(top[-8 * (long)KIB], 0x33, "a shallow stack was trimmed");
    cr_assert_eq(top[-100], 0x33, "a shallow stack was trimmed");
    tel__stack_free(0, a);
}

Test(stack, free_stacks_beyond_the_pools_bound_are_trimmed_whole,
     .init = up_64k, .fini = pool_down, .timeout = 60)
{
    struct tel__stack_stats st;
    tel__stack_stats(&st);
    size_t bound = st.warm_max;
    cr_assert_gt(bound, 0);
    size_t n = bound + 300;
    char **b = malloc(n * sizeof(char *));
    cr_assert_not_null(b);
    for (size_t i = 0; i < n; i++) {
        b[i] = tel__stack_alloc(-1);
        cr_assert_not_null(b[i]);
        memset(b[i] + STACK_64K - 8 * KIB, 0x44, 8 * KIB); /* two pages */
    }
    for (size_t i = 0; i < n; i++)
        tel__stack_free(-1, b[i]);
    tel__stack_stats(&st);
    cr_assert_eq(st.n_warm, bound, "warm %zu, bound %zu", st.n_warm, bound);
    cr_assert_eq(st.n_dirty, 300, "dirty %zu", st.n_dirty);
    cr_assert_eq(st.n_cold, 0);
    cr_assert_gt(st.dirty_max, 300);
    /* Not trimmed yet: that waits for an idle scheduler. */
    cr_assert_eq(resident(b[n - 1] + STACK_64K - 8 * KIB, b[n - 1] + STACK_64K),
                 2);
    tel__stack_trim_idle(-1);
    tel__stack_stats(&st);
    cr_assert_eq(st.n_dirty, 0);
    cr_assert_eq(st.n_cold, 300);
    /* The first freed are warm (resident), the last were trimmed whole. */
    cr_assert_eq(resident(b[0] + STACK_64K - 8 * KIB, b[0] + STACK_64K), 2);
    size_t r = 0;
    for (size_t i = bound; i < n; i++)
        r += resident(b[i], b[i] + STACK_64K);
    cr_assert_eq(r, 0, "%zu pages of trimmed stacks are resident", r);
    /* Neighbours are trimmed by one madvise across their guards: the
     * guards must still fault. */
    if (st.guard_markers)
        check_guards((void **)b + bound, 3);
    /* Spilling caches obey the same bound. */
    for (size_t i = 0; i < n; i++)
        b[i] = tel__stack_alloc(0);
    for (size_t i = 0; i < n; i++) {
        cr_assert_not_null(b[i]);
        memset(b[i], 0x55, STACK_64K);
    }
    check_disjoint((void **)b, n, STACK_64K);
    for (size_t i = 0; i < n; i++)
        tel__stack_free(0, b[i]);
    tel__stack_trim_idle(0);
    tel__stack_stats(&st);
    cr_assert_eq(st.n_dirty, 0);
    cr_assert_leq(st.n_warm, bound);
    /* The rest is in cache 0 (at most 128). */
    cr_assert(st.n_warm + st.n_cold <= n && st.n_warm + st.n_cold + 128 >= n,
              "warm %zu + cold %zu, %zu stacks", st.n_warm, st.n_cold, n);
    free(b);
}

/* Free stacks that are not neighbours (every other one of a run freed)
 * are trimmed many ranges to a call (process_madvise where the kernel
 * takes it, alloc/stack.c): each must lose its pages, and the live stacks
 * between them must keep theirs. */
static void trim_scattered(void)
{
    struct tel__stack_stats st;
    tel__stack_stats(&st);
    size_t bound = st.warm_max, extra = 300;
    size_t n = 2 * (bound + extra);
    char **b = malloc(n * sizeof(char *));
    cr_assert_not_null(b);
    for (size_t i = 0; i < n; i++) {
        b[i] = tel__stack_alloc(-1);
        cr_assert_not_null(b[i]);
        memset(b[i] + STACK_64K - 8 * KIB, (int)(i & 0x7f), 8 * KIB);
    }
    for (size_t i = 0; i < n; i += 2) /* the first `bound` of them warm */
        tel__stack_free(-1, b[i]);
    tel__stack_trim_idle(-1);
    tel__stack_stats(&st);
    cr_assert_eq(st.n_dirty, 0);
    cr_assert_eq(st.n_cold, extra);
    size_t r = 0;
    for (size_t i = 2 * bound; i < n; i += 2)
        r += resident(b[i], b[i] + STACK_64K);
    cr_assert_eq(r, 0, "%zu pages of trimmed stacks are resident", r);
    for (size_t i = 1; i < n; i += 2) {
        cr_assert_eq(resident(b[i] + STACK_64K - 8 * KIB, b[i] + STACK_64K),
                     2, "live stack %zu lost pages", i);
        for (size_t j = STACK_64K - 8 * KIB; j < STACK_64K; j += 512)
            cr_assert_eq((unsigned char)b[i][j], i & 0x7f,
                         "live stack %zu changed at %zu", i, j);
    }
    if (st.guard_markers) {
        void *t[3] = {b[2 * bound], b[2 * bound + 2], b[2 * bound + 4]};
        check_guards(t, 3);
    }
    for (size_t i = 1; i < n; i += 2)
        tel__stack_free(-1, b[i]);
    free(b);
}

Test(stack, scattered_free_stacks_are_trimmed_and_their_live_neighbours_kept,
     .init = up_64k, .fini = pool_down, .timeout = 60)
{
    trim_scattered();
}

static void per_range_up(void)
{
    tel__stack_force_per_range_discard(true);
    up_64k();
}

static void per_range_down(void)
{
    pool_down();
    tel__stack_force_per_range_discard(false);
}

/* The same where the kernel refuses vectored discards: a madvise each. */
Test(stack, scattered_free_stacks_are_trimmed_one_by_one_without_vectors,
     .init = per_range_up, .fini = per_range_down, .timeout = 60)
{
    trim_scattered();
}

/*
 * New stacks come in batches (alloc/stack.c, "New stacks in batches"): a
 * refill that finds the pool empty carves 32 neighbours, installs their
 * guards together and hands them out in the order they were carved. Every
 * one of them is guarded, with the vectored call and without it.
 */
static void new_batch_is_guarded(void)
{
    enum { N = 40 }; /* more than one batch */
    size_t slot = STACK_64K + tel__stack_guard_size();
    void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = tel__stack_alloc(0);
        cr_assert_not_null(b[i]);
    }
    for (int i = 1; i < 32; i++)
        cr_assert_eq((char *)b[i], (char *)b[0] + (size_t)i * slot,
                     "stack %d of the first batch is not its neighbour's "
                     "next (%p, first %p)", i, b[i], b[0]);
    struct tel__stack_stats st;
    tel__stack_stats(&st);
    if (!st.guard_markers) { /* the fallback carves one at a time */
        cr_log_info("no MADV_GUARD_INSTALL here: no batches to test");
        check_guards(b, 2); /* its default budget guards these few */
        for (int i = 0; i < N; i++)
            tel__stack_free(0, b[i]);
        return;
    }
    /* The other cache's first refill carves after both of cache 0's
     * batches: the batches were carved whole. */
    void *other = tel__stack_alloc(1);
    cr_assert_eq((char *)other, (char *)b[0] + 64 * slot,
                 "the other cache's first stack is %p, want 64 slots "
                 "after %p", other, b[0]);
    tel__stack_free(1, other);
    check_guards(b, N);
    for (int i = 0; i < N; i++)
        tel__stack_free(0, b[i]);
}

Test(stack, an_empty_pool_carves_a_batch_of_guarded_neighbours,
     .init = up_64k, .fini = pool_down, .timeout = 120)
{
    new_batch_is_guarded();
}

Test(stack, a_batch_is_guarded_one_by_one_without_vectors,
     .init = per_range_up, .fini = per_range_down, .timeout = 120)
{
    new_batch_is_guarded();
}

/* ------------------------------------------------------------------ */
/* Nodes                                                               */
/* ------------------------------------------------------------------ */

static void two_nodes_up(void)
{
    tel__stack_fake_nodes(2);
    pool_up(STACK_64K, 2);
}

static void two_nodes_down(void)
{
    pool_down();
    tel__stack_fake_nodes(0);
}

Test(stack, each_node_has_its_own_pool, .init = two_nodes_up,
     .fini = two_nodes_down, .timeout = 60)
{
    struct tel__stack_stats st;
    tel__stack_stats(&st);
    cr_assert_eq(st.n_nodes, 2);
    cr_assert_eq(tel__stack_node_of_cache(0), 0);
    cr_assert_eq(tel__stack_node_of_cache(1), 1);
    cr_assert_eq(tel__stack_node_of_cache(-1), 0);
    /* Cache 0 spills 300 stacks to node 0's pool. */
    enum { N = 300 };
    void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = tel__stack_alloc(0);
        cr_assert_not_null(b[i]);
    }
    tel__stack_stats(&st);
    cr_assert_eq(st.n_resvs, 1, "only node 0 reserved");
    qsort(b, N, sizeof(void *), cmp_ptr);
    for (int i = 0; i < N; i++)
        tel__stack_free(0, b[i]);
    /* Cache 1 refills from node 1: a new reservation, none of those. */
    void *c = tel__stack_alloc(1);
    cr_assert_not_null(c);
    cr_assert_null(bsearch(&c, b, N, sizeof(void *), cmp_ptr),
                   "cache 1 got a stack from node 0's pool");
    tel__stack_stats(&st);
    cr_assert_eq(st.n_resvs, 2);
    /* A thread with no cache uses node 0's pool: a spilled one. */
    void *d = tel__stack_alloc(-1);
    cr_assert_not_null(bsearch(&d, b, N, sizeof(void *), cmp_ptr),
                       "the shared path did not use node 0's pool");
    tel__stack_free(-1, d);
    tel__stack_free(1, c);
}

/* ------------------------------------------------------------------ */
/* Size classes (per-process stack sizes)                              */
/* ------------------------------------------------------------------ */

Test(stack, class_of_rounds_up_to_a_power_of_two_and_rejects_out_of_range)
{
    cr_assert_eq(tel__stack_class_of(0), 0, "0 is the run's size");
    cr_assert_eq(tel__stack_class_of(16 * KIB), 1);
    cr_assert_eq(tel__stack_class_of(16 * KIB + 1), 2);
    cr_assert_eq(tel__stack_class_of(32 * KIB), 2);
    cr_assert_eq(tel__stack_class_of(100 * KIB), 4); /* 128 KiB */
    cr_assert_eq(tel__stack_class_of((size_t)1 << 20), 7);
    cr_assert_eq(tel__stack_class_of((size_t)256 << 20), STACK_CLASS_MAX);
    for (int k = 1; k <= STACK_CLASS_MAX; k++)
        cr_assert_eq(tel__stack_class_of(tel__stack_class_bytes((unsigned)k)),
                     k);
    cr_assert_eq(tel__stack_class_of(1), TEL_EINVAL);
    cr_assert_eq(tel__stack_class_of(TEL_MIN_STACK_SIZE - 1), TEL_EINVAL);
    cr_assert_eq(tel__stack_class_of(((size_t)256 << 20) + 1), TEL_EINVAL);
    cr_assert_eq(tel__stack_class_of(SIZE_MAX), TEL_EINVAL);
}

Test(stack, stacks_of_other_classes_are_disjoint_writable_and_guarded,
     .init = up_64k, .fini = pool_down, .timeout = 60)
{
    enum { N = 8 };
    const unsigned ks[] = {1, 2, 5, 7}; /* 16 KiB, 32 KiB, 256 KiB, 1 MiB */
    for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
        size_t size = tel__stack_class_size(ks[j]);
        cr_assert_eq(size, tel__stack_class_bytes(ks[j]));
        void *b[N];
        for (int i = 0; i < N; i++) {
            b[i] = tel__stack_alloc_class(i % 3 - 1, ks[j]);
            cr_assert_not_null(b[i], "class %u", ks[j]);
            memset(b[i], 0x5a, size); /* every byte writable */
        }
        check_disjoint(b, N, size + tel__stack_guard_size());
        check_guards(b, 2);
        for (int i = 0; i < N; i++)
            tel__stack_free_class(i % 3 - 1, ks[j], b[i]);
        /* Reused LIFO from the cache, within the class. */
        void *a = tel__stack_alloc_class(0, ks[j]);
        cr_assert_eq(a, b[N - 1], "class %u: cache 0 did not reuse", ks[j]);
        tel__stack_free_class(0, ks[j], a);
    }
    struct tel__stack_stats st;
    tel__stack_stats(&st);
    cr_assert_eq(st.n_classes, 4);
    cr_assert_eq(tel__stack_alloc_class(0, STACK_CLASS_MAX + 1), NULL);
}

Test(stack, a_class_of_the_runs_size_shares_the_runs_pool, .init = up_64k,
     .fini = pool_down)
{
    unsigned k = (unsigned)tel__stack_class_of(STACK_64K);
    void *a = tel__stack_alloc(0);
    tel__stack_free(0, a);
    cr_assert_eq(tel__stack_alloc_class(0, k), a);
    tel__stack_free_class(0, k, a);
    cr_assert_eq(tel__stack_alloc(0), a);
    tel__stack_free(0, a);
    struct tel__stack_stats st;
    tel__stack_stats(&st);
    cr_assert_eq(st.n_classes, 0, "the run's size got a pool of its own");
}

Test(stack, a_stack_freed_without_its_class_goes_back_to_its_class,
     .init = up_64k, .fini = pool_down)
{
    /* tel_run's teardown frees live processes' stacks this way. */
    void *a = tel__stack_alloc_class(-1, 1);
    void *b = tel__stack_alloc_class(-1, 8);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    void *c = tel__stack_alloc(-1);
    tel__stack_free(-1, a);
    tel__stack_free(-1, b);
    tel__stack_free(-1, c);
    cr_assert_eq(tel__stack_alloc_class(-1, 1), a);
    cr_assert_eq(tel__stack_alloc_class(-1, 8), b);
    cr_assert_eq(tel__stack_alloc(-1), c);
    tel__stack_free_class(-1, 1, a);
    tel__stack_free_class(-1, 8, b);
    tel__stack_free(-1, c);
}

Test(stack, a_big_stack_is_trimmed_at_every_free, .init = up_64k,
     .fini = pool_down)
{
    unsigned k = (unsigned)tel__stack_class_of((size_t)1 << 20);
    size_t size = tel__stack_class_size(k);
    char *a = tel__stack_alloc_class(0, k);
    cr_assert_not_null(a);
    memset(a, 0x11, size);
    char *top = a + size;
    /* Seen shallow at its switches, yet it touched everything. */
    tel__stack_free_trim_class(0, k, a, top - 100);
    size_t r = resident(a, top - 8 * KIB);
    cr_assert_eq(r, 0, "%zu pages of a 1 MiB stack stayed resident", r);
    /* A small class keeps a shallow stack's pages (no syscall). */
    char *s = tel__stack_alloc_class(0, 2);
    memset(s, 0x22, 32 * KIB);
    tel__stack_free_trim_class(0, 2, s, s + 32 * KIB - 100);
    cr_assert_eq(resident(s, s + 32 * KIB), 8);
}
