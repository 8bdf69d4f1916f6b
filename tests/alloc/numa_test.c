/*
 * tests/alloc/numa_test.c: white-box tests of alloc/numa.h: one jemalloc
 * arena per NUMA node, each scheduler's cache on its node's arena, and
 * arenas reused run after run.
 *
 * The nodes come from hwloc's synthetic topologies (alloc/topo.h), where
 * binding is impossible, so the arenas there are plain; one test forces the
 * binding hooks on to run their code anyway. Sanitizer builds allocate with
 * the C library's malloc and have no arenas: the arena checks are skipped
 * there (and say so), the allocation checks still run.
 */
#include "common.h"

#include "alloc/numa.h"
#include "alloc/topo.h"

#ifdef cr_skip_test
#define SKIP_NO_ARENAS() cr_skip_test("libc malloc (sanitizer build): no arenas")
#else
#define SKIP_NO_ARENAS()                                                       \
    do {                                                                       \
        cr_log_info("skipped: libc malloc (sanitizer build), no arenas");     \
        return;                                                                \
    } while (0)
#endif

#define FOUR_NODES "pack:2 numa:2 core:4 pu:1"

/* Allocate and free a few sizes through cache `slot`; each block must come
 * from want (when arenas exist). */
static void alloc_on(int slot, int want)
{
    static const size_t sizes[] = {16, 100, 4000, 70000, 3u << 20};
    tel__mem_bind_thread(slot);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *p = tel__mem_alloc(sizes[i]);
        cr_assert_not_null(p);
        memset(p, 0xa5, sizes[i]);
        if (want >= 0)
            cr_assert_eq(tel__mem_arena_owning(p), want,
                         "slot %d, %zu bytes", slot, sizes[i]);
        tel__mem_free(p, sizes[i]);
    }
    tel__mem_bind_thread(-1);
}

Test(numa, each_scheduler_allocates_from_its_nodes_arena)
{
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    cr_assert_eq(tel__mem_init(20), 0);
    if (tel__mem_arena_of(0) == TEL_ENOENT) {
        for (int i = 0; i < 20; i++)
            alloc_on(i, -1);
        tel__mem_fini();
        SKIP_NO_ARENAS();
    }
    int node_arena[4];
    for (unsigned k = 0; k < 4; k++) {
        node_arena[k] = tel__mem_arena_of((int)k * 4);
        cr_assert_geq(node_arena[k], 0);
        for (unsigned j = 0; j < k; j++)
            cr_assert_neq(node_arena[k], node_arena[j],
                          "nodes %u and %u share an arena", k, j);
    }
    for (int i = 0; i < 20; i++) {
        int a = tel__mem_arena_of(i);
        cr_assert_eq(a, node_arena[tel__topo_node_of((unsigned)i)],
                     "scheduler %d", i);
        alloc_on(i, a);
    }
    /* A thread without a cache uses node 0's arena. */
    cr_assert_eq(tel__mem_arena_of(-1), node_arena[0]);
    cr_assert_eq(tel__mem_arena_of(20), TEL_ENOENT);
    tel__mem_fini();
}

Test(numa, arenas_are_created_once_and_reused_by_later_runs)
{
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    cr_assert_eq(tel__mem_init(16), 0);
    int first[16];
    for (int i = 0; i < 16; i++)
        first[i] = tel__mem_arena_of(i);
    tel__mem_fini();
    for (int run = 0; run < 5; run++) {
        cr_assert_eq(tel__mem_init(16), 0);
        for (int i = 0; i < 16; i++) {
            cr_assert_eq(tel__mem_arena_of(i), first[i], "run %d", run);
            alloc_on(i, first[i] >= 0 ? first[i] : -1);
        }
        tel__mem_fini();
    }
    /* A one-node run afterwards reuses node 0's arena. */
    cr_assert_eq(tel__topo_init_synthetic("core:2 pu:1", NULL), 0);
    cr_assert_eq(tel__topo_nnodes(), 1u);
    cr_assert_eq(tel__mem_init(2), 0);
    cr_assert_eq(tel__mem_arena_of(0), first[0]);
    cr_assert_eq(tel__mem_arena_of(1), first[0]);
    tel__mem_fini();
}

Test(numa, forced_binding_hooks_serve_every_extent_and_survive_failed_binds)
{
    (void)tel__mem_test_force_hooks(1);
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    cr_assert_eq(tel__mem_init(16), 0);
    if (tel__mem_arena_of(0) == TEL_ENOENT) {
        tel__mem_fini();
        SKIP_NO_ARENAS();
    }
    unsigned long before = tel__mem_test_force_hooks(1);
    /* Large blocks need new extents from every node's arena. */
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 16; i += 4)
            alloc_on(i, tel__mem_arena_of(i));
    cr_assert_gt(tel__mem_test_force_hooks(0), before,
                 "the hooks never ran");
    tel__mem_fini();
}

static void nothing(void *arg)
{
    (void)arg;
}

Test(numa, repeated_runs_keep_their_arenas, .timeout = 60)
{
    cr_assert_eq(tel_run(NULL, nothing, NULL), 0);
    int a0 = tel__mem_arena_of(-1);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(tel_run(NULL, nothing, NULL), 0);
        cr_assert_eq(tel__mem_arena_of(-1), a0, "run %d", i);
    }
}
