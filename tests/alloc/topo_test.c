/*
 * tests/alloc/topo_test.c: white-box tests of alloc/topo.h: scheduler
 * counts, NUMA nodes, victim rings, memory binding and the cgroup quota.
 *
 * The machines are hwloc's synthetic topologies (tel__topo_init_synthetic),
 * so a 2-core test box can check a 2-socket, 4-node layout; distances are
 * given to hwloc as a user matrix. The cgroup tests write fake cgroup trees
 * and a fake /proc/self/cgroup into a temporary directory.
 */
#include "common.h"

#include <ftw.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "alloc/base.h"
#include "alloc/topo.h"

/* 2 packages x 2 NUMA nodes x 4 cores, one PU each: cores 4k..4k+3 are on
 * node k. */
#define FOUR_NODES "pack:2 numa:2 core:4 pu:1"

/* Victim list and rings of scheduler s in a run of n. */
struct rings {
    unsigned n_rings;
    const unsigned *v, *ends;
};

static struct rings rings_of(unsigned s, unsigned n)
{
    struct rings r = {0};
    r.n_rings = tel__topo_rings(s, n, &r.v, &r.ends);
    return r;
}

/* The ring that victim v is in, or -1. */
static int ring_of(const struct rings *r, unsigned v)
{
    unsigned lo = 0;
    for (unsigned i = 0; i < r->n_rings; lo = r->ends[i++])
        for (unsigned k = lo; k < r->ends[i]; k++)
            if (r->v[k] == v)
                return (int)i;
    return -1;
}

/* Ring i's members as a bit set (schedulers < 64). */
static uint64_t ring_set(const struct rings *r, unsigned i)
{
    uint64_t set = 0;
    for (unsigned k = i ? r->ends[i - 1] : 0; k < r->ends[i]; k++)
        set |= 1ull << r->v[k];
    return set;
}

static uint64_t span(unsigned lo, unsigned hi) /* bits lo..hi */
{
    uint64_t set = 0;
    for (unsigned i = lo; i <= hi; i++)
        set |= 1ull << i;
    return set;
}

/* Scheduler s's plan is a partition: it sees every other scheduler
 * exactly once, never itself, no ring is empty, and the last ring ends at
 * n - 1. */
static void check_partition_of(unsigned s, unsigned n)
{
    struct rings r = rings_of(s, n);
    cr_assert_gt(r.n_rings, 0, "n=%u s=%u: no rings", n, s);
    cr_assert_eq(r.ends[r.n_rings - 1], n - 1, "n=%u s=%u", n, s);
    for (unsigned i = 0; i < r.n_rings; i++)
        cr_assert_lt(i ? r.ends[i - 1] : 0, r.ends[i],
                     "n=%u s=%u: ring %u is empty", n, s, i);
    unsigned char *seen = calloc(n, 1);
    cr_assert_not_null(seen);
    for (unsigned k = 0; k < n - 1; k++) {
        cr_assert_lt(r.v[k], n);
        seen[r.v[k]]++;
    }
    for (unsigned v = 0; v < n; v++)
        cr_assert_eq(seen[v], v == s ? 0 : 1,
                     "n=%u s=%u: victim %u seen %u times", n, s, v, seen[v]);
    free(seen);
}

static void check_partition(unsigned n)
{
    for (unsigned s = 0; s < n; s++)
        check_partition_of(s, n);
}

Test(topo, a_synthetic_machine_gets_one_scheduler_per_core)
{
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    cr_assert_eq(tel__topo_ncores(), 16u);
    cr_assert_eq(tel__topo_nsched_default(), 16u);
    cr_assert_eq(tel__topo_nnodes(), 4u);
}

Test(topo, each_scheduler_runs_on_the_node_of_its_core)
{
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    for (unsigned i = 0; i < 16; i++)
        cr_assert_eq(tel__topo_node_of(i), i / 4, "scheduler %u", i);
    /* More schedulers than cores wrap around, as binding does. */
    for (unsigned i = 16; i < 40; i++)
        cr_assert_eq(tel__topo_node_of(i), (i % 16) / 4, "scheduler %u", i);
}

Test(topo, victims_on_the_same_node_come_before_remote_ones)
{
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    cr_assert_eq(tel__topo_plan(16), 0);
    for (unsigned s = 0; s < 16; s++) {
        struct rings r = rings_of(s, 16);
        /* No caches and no distances: the node, then everyone else. */
        cr_assert_eq(r.n_rings, 2u, "scheduler %u", s);
        unsigned node = s / 4;
        uint64_t mine = span(node * 4, node * 4 + 3) & ~(1ull << s);
        cr_assert_eq(ring_set(&r, 0), mine, "scheduler %u", s);
        cr_assert_eq(ring_set(&r, 1), span(0, 15) & ~span(node * 4, node * 4 + 3),
                     "scheduler %u", s);
    }
    check_partition(16);
}

Test(topo, victims_sharing_a_cache_come_first_then_the_node_then_remote_ones)
{
    /* 2 nodes x 2 L3 x 2 L2 x 2 cores: 16 cores, node k = cores 8k..8k+7,
     * L3 j = cores 4j..4j+3, L2 i = cores 2i, 2i+1. */
    cr_assert_eq(
        tel__topo_init_synthetic("numa:2 l3:2 l2:2 core:2 pu:1", NULL), 0);
    cr_assert_eq(tel__topo_nnodes(), 2u);
    cr_assert_eq(tel__topo_plan(16), 0);
    struct rings r = rings_of(0, 16);
    cr_assert_eq(r.n_rings, 4u);
    cr_assert_eq(ring_set(&r, 0), span(1, 1), "same L2");
    cr_assert_eq(ring_set(&r, 1), span(2, 3), "same L3");
    cr_assert_eq(ring_set(&r, 2), span(4, 7), "same node");
    cr_assert_eq(ring_set(&r, 3), span(8, 15), "remote");
    r = rings_of(13, 16);
    cr_assert_eq(r.n_rings, 4u);
    cr_assert_eq(ring_set(&r, 0), span(12, 12));
    cr_assert_eq(ring_set(&r, 1), span(14, 15));
    cr_assert_eq(ring_set(&r, 2), span(8, 11));
    cr_assert_eq(ring_set(&r, 3), span(0, 7));
    check_partition(16);
}

Test(topo, remote_victims_are_ordered_by_distance)
{
    /* 4 nodes of 2 cores; from node 0: node 1 at 12, node 3 at 20, node 2
     * at 30 (a symmetric matrix, as an ACPI SLIT would give). */
    const uint64_t dist[16] = {
        10, 12, 30, 20, /**/ 12, 10, 20, 30,
        30, 20, 10, 12, /**/ 20, 30, 12, 10,
    };
    cr_assert_eq(tel__topo_init_synthetic("pack:2 numa:2 core:2 pu:1", dist),
                 0);
    cr_assert_eq(tel__topo_nnodes(), 4u);
    cr_assert_eq(tel__topo_plan(8), 0);
    struct rings r = rings_of(0, 8);
    cr_assert_eq(r.n_rings, 4u);
    cr_assert_eq(ring_set(&r, 0), span(1, 1), "own node");
    cr_assert_eq(ring_set(&r, 1), span(2, 3), "node 1, distance 12");
    cr_assert_eq(ring_set(&r, 2), span(6, 7), "node 3, distance 20");
    cr_assert_eq(ring_set(&r, 3), span(4, 5), "node 2, distance 30");
    r = rings_of(5, 8); /* node 2: node 3 at 12, node 1 at 20, node 0 at 30 */
    cr_assert_eq(r.n_rings, 4u);
    cr_assert_eq(ring_set(&r, 0), span(4, 4));
    cr_assert_eq(ring_set(&r, 1), span(6, 7));
    cr_assert_eq(ring_set(&r, 2), span(2, 3));
    cr_assert_eq(ring_set(&r, 3), span(0, 1));
    check_partition(8);
}

Test(topo, remote_nodes_at_one_distance_share_a_ring)
{
    const uint64_t dist[16] = {
        10, 21, 21, 21, /**/ 21, 10, 21, 21,
        21, 21, 10, 21, /**/ 21, 21, 21, 10,
    };
    cr_assert_eq(tel__topo_init_synthetic("pack:2 numa:2 core:2 pu:1", dist),
                 0);
    cr_assert_eq(tel__topo_plan(8), 0);
    struct rings r = rings_of(2, 8);
    cr_assert_eq(r.n_rings, 2u);
    cr_assert_eq(ring_set(&r, 0), span(3, 3));
    cr_assert_eq(ring_set(&r, 1), span(0, 7) & ~span(2, 3));
}

Test(topo, schedulers_beyond_the_core_count_share_their_cores_ring_first)
{
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    cr_assert_eq(tel__topo_plan(40), 0);
    /* Scheduler 0 is on core 0 with 16 and 32; then node 0's other cores
     * (1-3, 17-19, 33-35); then the remote rest. */
    struct rings r = rings_of(0, 40);
    cr_assert_eq(r.n_rings, 3u);
    cr_assert_eq(r.ends[0], 2u);
    cr_assert_eq(ring_of(&r, 16), 0);
    cr_assert_eq(ring_of(&r, 32), 0);
    cr_assert_eq(r.ends[1], 11u);
    for (unsigned v = 1; v < 40; v++)
        cr_assert_eq(ring_of(&r, v),
                     v % 16 == 0 ? 0 : (v % 16) / 4 == 0 ? 1 : 2, "victim %u",
                     v);
    check_partition(40);
}

Test(topo, fewer_schedulers_than_cores_fill_the_first_node_first)
{
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    for (unsigned n = 1; n <= 6; n++) {
        cr_assert_eq(tel__topo_plan(n), 0);
        if (n == 1) {
            const unsigned *v, *e;
            cr_assert_eq(tel__topo_rings(0, 1, &v, &e), 0u);
            continue;
        }
        check_partition(n);
    }
    /* 6 schedulers: 0-3 on node 0, 4-5 on node 1. */
    struct rings r = rings_of(1, 6);
    cr_assert_eq(r.n_rings, 2u);
    cr_assert_eq(ring_set(&r, 0), (uint64_t)0xd); /* 0, 2, 3 */
    cr_assert_eq(ring_set(&r, 1), (uint64_t)0x30); /* 4, 5 */
}

Test(topo, a_thousand_schedulers_on_sixteen_nodes_get_their_rings)
{
    /* 4 packages x 4 nodes x 2 L3 x 4 L2 x 2 cores x 2 PUs: 256 cores. */
    cr_assert_eq(
        tel__topo_init_synthetic("pack:4 numa:4 l3:2 l2:4 core:2 pu:2", NULL),
        0);
    cr_assert_eq(tel__topo_ncores(), 256u);
    cr_assert_eq(tel__topo_nnodes(), 16u);
    cr_assert_eq(tel__topo_plan(1024), 0);
    unsigned probe[] = {0, 1, 5, 255, 256, 511, 1000, 1023};
    for (size_t i = 0; i < TEL_ARRAY_LEN(probe); i++)
        check_partition_of(probe[i], 1024);
    /* Scheduler 5 is on core 5: 3 others share it (261, 517, 773), then
     * its L2 (core 4: 4 schedulers), its L3 (6 cores: 24), its node (8
     * cores: 32), then the other 15 nodes (960). */
    struct rings r = rings_of(5, 1024);
    cr_assert_eq(r.n_rings, 5u);
    unsigned want[] = {3, 7, 31, 63, 1023};
    for (unsigned i = 0; i < 5; i++)
        cr_assert_eq(r.ends[i], want[i], "ring %u", i);
}

Test(topo, rings_are_given_only_for_the_planned_count)
{
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    cr_assert_eq(tel__topo_plan(4), 0);
    const unsigned *v, *e;
    cr_assert_gt(tel__topo_rings(3, 4, &v, &e), 0u);
    cr_assert_eq(tel__topo_rings(4, 4, &v, &e), 0u);
    cr_assert_eq(tel__topo_rings(0, 5, &v, &e), 0u);
    cr_assert_eq(tel__topo_plan(0), TEL_EINVAL);
}

Test(topo, a_bad_synthetic_description_is_einval)
{
    cr_assert_eq(tel__topo_init_synthetic("pack:2 bogus:3", NULL), TEL_EINVAL);
    cr_assert_eq(tel__topo_init_synthetic(NULL, NULL), TEL_EINVAL);
    /* Nothing is loaded now: the getters fall back to one core, one node. */
    cr_assert_eq(tel__topo_ncores(), 1u);
    cr_assert_eq(tel__topo_nnodes(), 1u);
    cr_assert_eq(tel__topo_node_of(7), 0u);
}

static void *map_pages(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    return p;
}

Test(topo, membind_is_refused_on_a_synthetic_topology)
{
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    cr_assert_eq(tel__topo_membind_works(), 0);
    size_t len = 1 << 16;
    void *p = map_pages(len);
    for (unsigned node = 0; node < 5; node++)
        cr_assert_eq(tel__topo_membind(p, len, node), TEL_ESYS);
    cr_assert_eq(tel__topo_membind(NULL, len, 0), TEL_EINVAL);
    cr_assert_eq(tel__topo_bind_thread(0), TEL_ESYS);
    munmap(p, len);
}

Test(topo, the_real_machine_loads_again_after_a_synthetic_one)
{
    cr_assert_eq(tel__topo_init(), 0);
    unsigned real_cores = tel__topo_ncores();
    unsigned real_nodes = tel__topo_nnodes();
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    cr_assert_eq(tel__topo_plan(16), 0);
    cr_assert_eq(tel__topo_init(), 0);
    cr_assert_eq(tel__topo_ncores(), real_cores);
    cr_assert_eq(tel__topo_nnodes(), real_nodes);
    size_t len = 1 << 16;
    void *p = map_pages(len);
    int rc = tel__topo_membind(p, len, 0);
    if (real_nodes == 1)
        cr_assert_eq(rc, TEL_ESYS, "one node: binding is pointless");
    else
        cr_assert(rc == 0 || rc == TEL_ESYS);
    munmap(p, len);
}

static void count_scheds(void *arg)
{
    *(unsigned *)arg = tel_scheduler_count();
}

Test(topo, a_run_after_a_synthetic_topology_uses_the_real_machine,
     .timeout = 30)
{
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    unsigned n = 0;
    cr_assert_eq(tel_run(NULL, count_scheds, &n), 0);
    cr_assert_eq(n, tel__topo_nsched_default());
    cr_assert_leq(n, tel__topo_ncores());
    /* And again: the plan and the topology are reused cleanly. */
    cr_assert_eq(tel_run(NULL, count_scheds, &n), 0);
    cr_assert_eq(n, tel__topo_nsched_default());
}

/* ------------------------------------------------------------------ */
/* cgroup quota                                                        */
/* ------------------------------------------------------------------ */

static char cg_dir[64];
static char cg_root[128];
static char cg_self[128];

/* Write text to cg_dir/rel, making the directories on the way. */
static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", cg_dir, rel);
    for (char *p = path + strlen(cg_dir) + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        (void)mkdir(path, 0700);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void cg_up(void)
{
    snprintf(cg_dir, sizeof(cg_dir), "/tmp/tel-topo-cg-XXXXXX");
    cr_assert_not_null(mkdtemp(cg_dir));
    snprintf(cg_root, sizeof(cg_root), "%s/fs", cg_dir);
    snprintf(cg_self, sizeof(cg_self), "%s/self", cg_dir);
    cr_assert_eq(mkdir(cg_root, 0700), 0);
    tel__topo_set_cgroup_root(cg_root, cg_self);
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cg_down(void)
{
    tel__topo_set_cgroup_root(NULL, NULL);
    (void)nftw(cg_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A v2 process cgroup /app/web with cpu.max = text. */
static unsigned v2_quota(const char *text)
{
    put("self", "0::/app/web\n");
    put("fs/app/web/cpu.max", text);
    return tel__topo_cgroup_cpus();
}

Test(topo_cgroup, a_v2_quota_of_max_is_no_limit, .init = cg_up, .fini = cg_down)
{
    cr_assert_eq(v2_quota("max 100000\n"), 0u);
}

Test(topo_cgroup, a_v2_quota_of_two_periods_is_two_cpus, .init = cg_up,
     .fini = cg_down)
{
    cr_assert_eq(v2_quota("200000 100000\n"), 2u);
}

Test(topo_cgroup, a_v2_quota_is_rounded_up_to_whole_cpus, .init = cg_up,
     .fini = cg_down)
{
    cr_assert_eq(v2_quota("150000 100000\n"), 2u);
    cr_assert_eq(v2_quota("5000 100000"), 1u);
    cr_assert_eq(v2_quota("100000 100000"), 1u);
}

Test(topo_cgroup, a_malformed_v2_quota_is_ignored, .init = cg_up,
     .fini = cg_down)
{
    const char *bad[] = {"", "abc", "200000", "200000 0", "-5 100000",
                         "200000 100000 7", "200000 x", "0 100000",
                         "99999999999999999999999 100000"};
    for (size_t i = 0; i < TEL_ARRAY_LEN(bad); i++)
        cr_assert_eq(v2_quota(bad[i]), 0u, "cpu.max \"%s\"", bad[i]);
}

Test(topo_cgroup, a_parent_cgroups_quota_limits_its_children, .init = cg_up,
     .fini = cg_down)
{
    put("fs/app/cpu.max", "300000 100000\n");
    cr_assert_eq(v2_quota("max 100000\n"), 3u);
    cr_assert_eq(v2_quota("500000 100000\n"), 3u, "the tighter one wins");
    cr_assert_eq(v2_quota("100000 100000\n"), 1u);
}

Test(topo_cgroup, a_container_without_a_cgroup_namespace_finds_its_own_root,
     .init = cg_up, .fini = cg_down)
{
    /* The process's path names the host's hierarchy, which the container
     * does not see; its own cgroup is the root of the mount. */
    put("self", "0::/docker/0123abcd\n");
    put("fs/cpu.max", "400000 100000\n");
    cr_assert_eq(tel__topo_cgroup_cpus(), 4u);
}

Test(topo_cgroup, a_v1_quota_is_read_when_there_is_no_v2_one, .init = cg_up,
     .fini = cg_down)
{
    put("self", "12:pids:/x\n4:cpu,cpuacct:/grp\n1:name=systemd:/grp\n0::/\n");
    put("fs/cpu,cpuacct/grp/cpu.cfs_quota_us", "250000\n");
    put("fs/cpu,cpuacct/grp/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(tel__topo_cgroup_cpus(), 3u);
    put("fs/cpu,cpuacct/grp/cpu.cfs_quota_us", "-1\n");
    cr_assert_eq(tel__topo_cgroup_cpus(), 0u, "-1 is no limit");
    put("fs/cpu,cpuacct/grp/cpu.cfs_quota_us", "junk\n");
    cr_assert_eq(tel__topo_cgroup_cpus(), 0u, "malformed is ignored");
}

Test(topo_cgroup, a_v1_cpu_controller_may_be_mounted_as_cpu, .init = cg_up,
     .fini = cg_down)
{
    put("self", "3:cpu,cpuacct:/\n");
    put("fs/cpu/cpu.cfs_quota_us", "100000\n");
    put("fs/cpu/cpu.cfs_period_us", "50000\n");
    cr_assert_eq(tel__topo_cgroup_cpus(), 2u);
}

Test(topo_cgroup, no_cgroup_file_is_no_limit, .init = cg_up, .fini = cg_down)
{
    cr_assert_eq(tel__topo_cgroup_cpus(), 0u); /* "self" does not exist */
    put("self", "0::/\n");
    cr_assert_eq(tel__topo_cgroup_cpus(), 0u); /* no cpu.max anywhere */
}

Test(topo_cgroup, the_quota_caps_the_default_scheduler_count, .init = cg_up,
     .fini = cg_down)
{
    put("self", "0::/app\n");
    put("fs/app/cpu.max", "300000 100000\n");
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    cr_assert_eq(tel__topo_ncores(), 16u);
    cr_assert_eq(tel__topo_nsched_default(), 3u);
    put("fs/app/cpu.max", "4000000 100000\n");
    cr_assert_eq(tel__topo_init_synthetic(FOUR_NODES, NULL), 0);
    cr_assert_eq(tel__topo_nsched_default(), 16u, "at most the cores");
    /* The real machine too. */
    put("fs/app/cpu.max", "50000 100000\n");
    cr_assert_eq(tel__topo_init(), 0);
    cr_assert_eq(tel__topo_nsched_default(), 1u);
}
