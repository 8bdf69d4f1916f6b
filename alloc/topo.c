/*
 * alloc/topo.c: hwloc topology, cores, NUMA nodes, victim rings, binding.
 *
 * Owns: one hwloc topology for the program's life (loaded lazily, freed by a
 * destructor at exit); the usable cores of the current run, those the
 * calling thread's CPU affinity mask allows when tel_run starts (so a
 * process restricted by taskset or a container's cpuset gets that many
 * schedulers, pinned inside its mask), each with its L2, L3 and NUMA node;
 * the nodes that hold a usable core, numbered densely, with their distance
 * matrix; the cgroup CPU quota; and the victim rings of the current plan.
 *
 * Invariants:
 *   - Scheduler i runs on usable core i mod n_cores, in hwloc's logical
 *     order: binding, node_of and the rings all use that one mapping.
 *   - node_dist is n_nodes x n_nodes. With no hwloc latency matrix (most
 *     one-socket machines, synthetic topologies) a node is 10 from itself
 *     and 20 from any other, as ACPI's SLIT would say.
 *   - A plan for n schedulers holds, for each one, its n - 1 victims sorted
 *     by closeness (same core, same L2, same L3, same node, then remote by
 *     distance) and where each ring of equal closeness ends. Within a ring
 *     the order is only a tie-break: the thief starts at a random offset.
 *
 * Why rings and not one sorted list: a thief should spread over the
 * victims that cost the same to steal from (else all thieves of a node
 * hammer the same victim first), but never pay a remote cache miss while a
 * near victim has work. Trying a ring from a random start, nearest ring
 * first, gives both. (Go's runtime tries victims in a random order, blind
 * to sockets.)
 *
 * Why the cgroup quota: a container limited to 2 CPUs often still sees
 * every core of the host in its affinity mask; one scheduler per core would
 * then be throttled by the CFS quota, and a throttled scheduler sits out
 * the rest of the period (up to 100 ms by default) holding its queue.
 *
 * Concurrency: everything here is written by tel_run's thread (init, plan,
 * the test hooks) before any scheduler starts or after all have stopped;
 * while a run is on it is only read (hwloc allows concurrent reads and
 * binding calls). pthread_create and pthread_join order those writes with
 * the schedulers' reads.
 */
#define _GNU_SOURCE 1
#include "alloc/topo.h"

#include <hwloc.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/telar.h"

#define TOPO_DIST_LOCAL 10u
#define TOPO_DIST_REMOTE 20u

/* A usable core (a PU when hwloc reports no cores). */
struct core {
    hwloc_bitmap_t cpus; /* its PUs that the affinity mask allows */
    hwloc_obj_t l2, l3;  /* the caches above it, or NULL */
    unsigned node;       /* dense node number */
};

static hwloc_topology_t topo;
static bool synthetic; /* topo is a test's, not this machine */

static struct core *cores;
static unsigned n_cores; /* 0 only when nothing could be loaded */

static unsigned n_nodes;         /* at least 1 once loaded */
static hwloc_obj_t *node_obj;    /* dense node -> hwloc NUMA node, or NULL */
static uint64_t *node_dist;      /* n_nodes x n_nodes, row-major */

static unsigned cg_cpus; /* cgroup quota in CPUs; 0: none */
static const char *cg_root_override, *cg_self_override;

/* The plan: victims and ring ends of plan_n schedulers. */
static unsigned plan_n;
static unsigned plan_rings_cap; /* ring_ends slots per scheduler */
static unsigned *plan_victims;  /* plan_n x (plan_n - 1) */
static unsigned *plan_ends;     /* plan_n x plan_rings_cap */
static unsigned *plan_nrings;   /* plan_n */

/* ------------------------------------------------------------------ */
/* Cores and nodes                                                     */
/* ------------------------------------------------------------------ */

static void free_cores(void)
{
    for (unsigned i = 0; i < n_cores; i++)
        hwloc_bitmap_free(cores[i].cpus);
    free(cores);
    free(node_obj);
    free(node_dist);
    cores = NULL;
    node_obj = NULL;
    node_dist = NULL;
    n_cores = 0;
    n_nodes = 0;
}

static void free_plan(void)
{
    free(plan_victims);
    free(plan_ends);
    free(plan_nrings);
    plan_victims = plan_ends = plan_nrings = NULL;
    plan_n = 0;
    plan_rings_cap = 0;
}

/* The NUMA node holding o's memory: the first NUMA node among the memory
 * children of o's nearest ancestor that has any (hwloc 2 hangs memory off
 * the CPU tree that way; a memory-side cache may sit in between). */
static hwloc_obj_t local_node(hwloc_obj_t o)
{
    for (; o; o = o->parent) {
        if (!o->memory_arity)
            continue;
        hwloc_obj_t m = o->memory_first_child;
        while (m && m->type != HWLOC_OBJ_NUMANODE)
            m = m->memory_first_child;
        if (m)
            return m;
    }
    return NULL;
}

/* Fill node_dist from hwloc's latency matrix over the dense nodes, where
 * it has one (the OS's first, else a user's); keep 10/20 elsewhere. */
static void load_distances(void)
{
    for (unsigned a = 0; a < n_nodes; a++)
        for (unsigned b = 0; b < n_nodes; b++)
            node_dist[a * n_nodes + b] =
                a == b ? TOPO_DIST_LOCAL : TOPO_DIST_REMOTE;
    if (n_nodes < 2)
        return;
    unsigned long kinds[] = {
        HWLOC_DISTANCES_KIND_FROM_OS | HWLOC_DISTANCES_KIND_MEANS_LATENCY,
        HWLOC_DISTANCES_KIND_FROM_USER | HWLOC_DISTANCES_KIND_MEANS_LATENCY,
    };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        struct hwloc_distances_s *d = NULL;
        unsigned nr = 1;
        if (hwloc_distances_get_by_type(topo, HWLOC_OBJ_NUMANODE, &nr, &d,
                                        kinds[k], 0) != 0 ||
            nr == 0 || !d)
            continue;
        for (unsigned a = 0; a < n_nodes; a++) {
            int ia = node_obj[a] ? hwloc_distances_obj_index(d, node_obj[a])
                                 : -1;
            for (unsigned b = 0; ia >= 0 && b < n_nodes; b++) {
                int ib = node_obj[b]
                             ? hwloc_distances_obj_index(d, node_obj[b])
                             : -1;
                if (ib >= 0)
                    node_dist[a * n_nodes + b] =
                        d->values[(unsigned)ia * d->nbobjs + (unsigned)ib];
            }
        }
        hwloc_distances_release(topo, d);
        return;
    }
}

/*
 * Recompute the usable cores, their caches and nodes, and the dense node
 * numbering from `mine` (the CPUs this run may use). 0 or TEL_ENOMEM (then
 * nothing is usable and the getters fall back to one core, one node).
 */
static int load_cores(hwloc_const_bitmap_t mine)
{
    free_cores();
    hwloc_obj_type_t type = HWLOC_OBJ_CORE;
    int n = hwloc_get_nbobjs_by_type(topo, type);
    if (n <= 0) {
        type = HWLOC_OBJ_PU;
        n = hwloc_get_nbobjs_by_type(topo, type);
    }
    int nn = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    if (nn < 0)
        nn = 0;
    cores = calloc(n > 0 ? (size_t)n : 1, sizeof(*cores));
    unsigned *dense = calloc((size_t)nn + 1, sizeof(*dense));
    node_obj = calloc((size_t)nn + 1, sizeof(*node_obj));
    hwloc_obj_t *raw = calloc(n > 0 ? (size_t)n : 1, sizeof(*raw));
    if (!cores || !dense || !node_obj || !raw)
        goto nomem;

    for (int i = 0; i < n; i++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(topo, type, (unsigned)i);
        if (!o || !o->cpuset || !hwloc_bitmap_intersects(o->cpuset, mine))
            continue;
        struct core *c = &cores[n_cores];
        if (!(c->cpus = hwloc_bitmap_alloc()))
            goto nomem;
        hwloc_bitmap_and(c->cpus, o->cpuset, mine);
        c->l2 = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_L2CACHE, o);
        c->l3 = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_L3CACHE, o);
        raw[n_cores] = local_node(o);
        n_cores++;
    }

    /* Dense numbers, in hwloc's logical order, for nodes with a core. */
    for (unsigned i = 0; i < n_cores; i++)
        if (raw[i] && raw[i]->logical_index < (unsigned)nn)
            dense[raw[i]->logical_index] = 1;
    for (int l = 0; l < nn; l++) {
        if (!dense[l])
            continue;
        node_obj[n_nodes] = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE,
                                                  (unsigned)l);
        dense[l] = ++n_nodes; /* 1-based here; 0 means "no core" */
    }
    if (n_nodes == 0)
        n_nodes = 1; /* no NUMA object at all: one node, node_obj[0] NULL */
    for (unsigned i = 0; i < n_cores; i++)
        cores[i].node = raw[i] && raw[i]->logical_index < (unsigned)nn
                            ? dense[raw[i]->logical_index] - 1
                            : 0;
    free(dense);
    free(raw);

    node_dist = calloc((size_t)n_nodes * n_nodes, sizeof(*node_dist));
    if (!node_dist) {
        free_cores();
        return TEL_ENOMEM;
    }
    load_distances();
    return 0;

nomem:
    free(dense);
    free(raw);
    free_cores();
    return TEL_ENOMEM;
}

/* ------------------------------------------------------------------ */
/* cgroup CPU quota                                                    */
/* ------------------------------------------------------------------ */

/* Read a small file into buf (NUL-terminated). false if it cannot. */
static bool read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    bool ok = !ferror(f);
    fclose(f);
    buf[n] = '\0';
    return ok && n > 0;
}

/* Parse a decimal integer at *s, skipping leading blanks; false if none. */
static bool parse_u64(const char **s, unsigned long long *out)
{
    const char *p = *s;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    unsigned long long v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (ULLONG_MAX - 9) / 10)
            return false;
        v = v * 10 + (unsigned long long)(*p - '0');
    }
    *s = p;
    *out = v;
    return true;
}

static bool at_line_end(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' || *p == '\n';
}

/* ceil(quota / period), at least 1; 0 for a period of 0. */
static unsigned quota_cpus(unsigned long long quota, unsigned long long period)
{
    if (period == 0 || quota == 0)
        return 0;
    unsigned long long c = quota / period + (quota % period != 0);
    return c > UINT_MAX ? UINT_MAX : (unsigned)c;
}

/* cgroup v2 cpu.max in dir: "max PERIOD" (no limit) or "QUOTA PERIOD". */
static unsigned v2_cpus(const char *dir)
{
    char path[PATH_MAX], buf[128];
    if (snprintf(path, sizeof(path), "%s/cpu.max", dir) >= (int)sizeof(path) ||
        !read_small(path, buf, sizeof(buf)))
        return 0;
    const char *p = buf;
    unsigned long long quota, period;
    if (!parse_u64(&p, &quota) || !parse_u64(&p, &period) || !at_line_end(p))
        return 0; /* "max ..." or malformed */
    return quota_cpus(quota, period);
}

/* cgroup v1 cpu.cfs_quota_us (-1: no limit) and cpu.cfs_period_us in dir. */
static unsigned v1_cpus(const char *dir)
{
    char path[PATH_MAX], buf[64];
    unsigned long long quota, period;
    const char *p = buf;
    if (snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir) >=
            (int)sizeof(path) ||
        !read_small(path, buf, sizeof(buf)) || !parse_u64(&p, &quota) ||
        !at_line_end(p))
        return 0; /* "-1" or malformed */
    p = buf;
    if (snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir) >=
            (int)sizeof(path) ||
        !read_small(path, buf, sizeof(buf)) || !parse_u64(&p, &period) ||
        !at_line_end(p))
        return 0;
    return quota_cpus(quota, period);
}

/*
 * The tightest limit on base + rel and each of its ancestors up to base
 * (a parent's quota caps its children). rel starts with '/'. Without a
 * cgroup namespace the process's path may not exist under base (the
 * container sees its own cgroup as the root): the walk still reaches base.
 */
static unsigned walk_cpus(const char *base, const char *rel, bool v2)
{
    char dir[PATH_MAX];
    int len = snprintf(dir, sizeof(dir), "%s%s", base, rel);
    if (len < 0 || len >= (int)sizeof(dir))
        return 0;
    size_t base_len = strlen(base);
    unsigned best = 0;
    for (;;) {
        while (len > (int)base_len && dir[len - 1] == '/')
            dir[--len] = '\0';
        unsigned c = v2 ? v2_cpus(dir) : v1_cpus(dir);
        if (c && (!best || c < best))
            best = c;
        if (len <= (int)base_len)
            return best;
        char *slash = strrchr(dir + base_len, '/');
        if (!slash)
            len = (int)base_len;
        else
            len = (int)(slash - dir);
        dir[len] = '\0';
    }
}

unsigned tel__topo_cgroup_cpus(void)
{
    const char *root = cg_root_override ? cg_root_override : "/sys/fs/cgroup";
    const char *self = cg_self_override ? cg_self_override : "/proc/self/cgroup";
    FILE *f = fopen(self, "re");
    if (!f)
        return 0;
    char line[PATH_MAX + 64];
    unsigned v2 = 0, v1 = 0;
    bool seen_v2 = false, seen_v1 = false;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "hierarchy-id:controllers:path"; v2 is "0::path". */
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || c2[1] != '/')
            continue;
        *c1 = *c2 = '\0';
        const char *ctrls = c1 + 1, *path = c2 + 1;
        char base[PATH_MAX];
        if (strcmp(line, "0") == 0 && *ctrls == '\0') {
            if (seen_v2)
                continue;
            seen_v2 = true;
            v2 = walk_cpus(root, path, true);
            continue;
        }
        /* v1: the cpu controller, mounted under its controller list
         * ("cpu,cpuacct") or a "cpu" alias. */
        char list[256];
        if (seen_v1 || snprintf(list, sizeof(list), ",%s,", ctrls) >=
                           (int)sizeof(list) ||
            !strstr(list, ",cpu,"))
            continue;
        seen_v1 = true;
        if (snprintf(base, sizeof(base), "%s/%s", root, ctrls) <
            (int)sizeof(base))
            v1 = walk_cpus(base, path, false);
        if (!v1 && snprintf(base, sizeof(base), "%s/cpu", root) <
                       (int)sizeof(base))
            v1 = walk_cpus(base, path, false);
    }
    fclose(f);
    return v2 ? v2 : v1;
}

void tel__topo_set_cgroup_root(const char *root, const char *self_file)
{
    cg_root_override = root;
    cg_self_override = self_file;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

static void unload(void)
{
    free_plan();
    free_cores();
    if (topo)
        hwloc_topology_destroy(topo);
    topo = NULL;
    synthetic = false;
}

__attribute__((destructor)) static void topo_unload(void)
{
    unload();
}

int tel__topo_init(void)
{
    if (topo && synthetic)
        unload(); /* a test's topology: load the real machine again */
    if (!topo) {
        hwloc_topology_t t;
        if (hwloc_topology_init(&t) != 0)
            return TEL_ESYS;
        if (hwloc_topology_load(t) != 0) {
            hwloc_topology_destroy(t);
            return TEL_ESYS;
        }
        topo = t;
    }
    hwloc_bitmap_t mine = hwloc_bitmap_alloc();
    if (!mine)
        return TEL_ENOMEM;
    if (hwloc_get_cpubind(topo, mine, HWLOC_CPUBIND_THREAD) != 0 ||
        hwloc_bitmap_iszero(mine))
        hwloc_bitmap_copy(mine, hwloc_topology_get_allowed_cpuset(topo));
    int rc = load_cores(mine);
    hwloc_bitmap_free(mine);
    cg_cpus = tel__topo_cgroup_cpus();
    return rc;
}

int tel__topo_init_synthetic(const char *desc, const uint64_t *node_dist_in)
{
    if (!desc)
        return TEL_EINVAL;
    unload();
    hwloc_topology_t t;
    if (hwloc_topology_init(&t) != 0)
        return TEL_ESYS;
    int rc = TEL_EINVAL;
    if (hwloc_topology_set_synthetic(t, desc) != 0)
        goto fail;
    rc = TEL_ESYS;
    if (hwloc_topology_load(t) != 0)
        goto fail;
    if (node_dist_in) {
        rc = TEL_EINVAL;
        int k = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
        if (k <= 0)
            goto fail;
        hwloc_obj_t *objs = calloc((size_t)k, sizeof(*objs));
        hwloc_uint64_t *vals = calloc((size_t)k * (size_t)k, sizeof(*vals));
        if (!objs || !vals) {
            free(objs);
            free(vals);
            rc = TEL_ENOMEM;
            goto fail;
        }
        for (int i = 0; i < k; i++)
            objs[i] = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, (unsigned)i);
        for (int i = 0; i < k * k; i++)
            vals[i] = node_dist_in[i];
        hwloc_distances_add_handle_t h = hwloc_distances_add_create(
            t, "telar-test",
            HWLOC_DISTANCES_KIND_FROM_USER | HWLOC_DISTANCES_KIND_MEANS_LATENCY,
            0);
        /* On failure, add_values and add_commit free the handle. */
        int ok = h && hwloc_distances_add_values(t, h, (unsigned)k, objs, vals,
                                                 0) == 0 &&
                 hwloc_distances_add_commit(t, h, 0) == 0;
        free(objs);
        free(vals);
        if (!ok)
            goto fail;
    }
    topo = t;
    synthetic = true;
    rc = load_cores(hwloc_topology_get_allowed_cpuset(topo));
    cg_cpus = cg_root_override ? tel__topo_cgroup_cpus() : 0;
    return rc;

fail:
    hwloc_topology_destroy(t);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Counts                                                              */
/* ------------------------------------------------------------------ */

unsigned tel__topo_ncores(void)
{
    return n_cores ? n_cores : 1;
}

unsigned tel__topo_nsched_default(void)
{
    unsigned n = tel__topo_ncores();
    return cg_cpus && cg_cpus < n ? cg_cpus : n;
}

unsigned tel__topo_nnodes(void)
{
    return n_nodes ? n_nodes : 1;
}

unsigned tel__topo_node_of(unsigned sched_index)
{
    return n_cores ? cores[sched_index % n_cores].node : 0;
}

/* ------------------------------------------------------------------ */
/* Victim rings                                                        */
/* ------------------------------------------------------------------ */

/* Closeness classes, nearest first; remote ones add their distance. */
enum { NEAR_CORE, NEAR_L2, NEAR_L3, NEAR_NODE, NEAR_REMOTE };

static uint64_t closeness(unsigned s, unsigned v)
{
    if (!n_cores)
        return NEAR_NODE;
    const struct core *a = &cores[s % n_cores], *b = &cores[v % n_cores];
    if (a == b)
        return NEAR_CORE;
    if (a->l2 && a->l2 == b->l2)
        return NEAR_L2;
    if (a->l3 && a->l3 == b->l3)
        return NEAR_L3;
    if (a->node == b->node)
        return NEAR_NODE;
    uint64_t d = node_dist[a->node * n_nodes + b->node];
    return d > UINT64_MAX - NEAR_REMOTE ? UINT64_MAX : NEAR_REMOTE + d;
}

/*
 * Index of key in the sorted set keys[0..*n-1], inserting it if absent
 * (the set holds at most cap keys, which the caller sizes so that it never
 * overflows; if it would, the key joins the farthest ring).
 */
static unsigned key_slot(uint64_t *keys, unsigned *n, unsigned cap,
                         uint64_t key)
{
    unsigned i = 0;
    while (i < *n && keys[i] < key)
        i++;
    if (i < *n && keys[i] == key)
        return i;
    if (*n == cap)
        return *n - 1;
    memmove(keys + i + 1, keys + i, (*n - i) * sizeof(*keys));
    keys[i] = key;
    (*n)++;
    return i;
}

/*
 * Why not sort each victim list: that is n sorts of n - 1 entries at every
 * tel_run, O(n^2 log n) with a comparison call each. There are few distinct
 * closeness values (four near classes and fewer than n_nodes distances), so
 * each list is a counting sort over them: O(n) per scheduler (41 ms of CPU
 * for 1024 schedulers in a Debug build), stable, and the stable order
 * within a ring is (v - s) mod n, so schedulers of one ring do not all
 * list the same victim first.
 */
int tel__topo_plan(unsigned nsched)
{
    if (nsched == 0)
        return TEL_EINVAL;
    free_plan();
    if (nsched < 2)
        return 0; /* nobody to steal from */
    /* Rings: the four near classes plus one per distinct remote distance,
     * of which there are fewer than n_nodes; never more than victims. */
    unsigned cap = NEAR_REMOTE + tel__topo_nnodes();
    if (cap > nsched - 1)
        cap = nsched - 1;
    size_t nv = (size_t)nsched * (nsched - 1);
    plan_victims = calloc(nv, sizeof(*plan_victims));
    plan_ends = calloc((size_t)nsched * cap, sizeof(*plan_ends));
    plan_nrings = calloc(nsched, sizeof(*plan_nrings));
    uint64_t *key = calloc(nsched - 1, sizeof(*key));
    unsigned *slot = calloc(nsched - 1, sizeof(*slot));
    uint64_t *ring_key = calloc(cap, sizeof(*ring_key));
    unsigned *fill = calloc(cap, sizeof(*fill));
    int rc = TEL_ENOMEM;
    if (!plan_victims || !plan_ends || !plan_nrings || !key || !slot ||
        !ring_key || !fill) {
        free_plan();
        goto out;
    }
    for (unsigned s = 0; s < nsched; s++) {
        /* Victims in (v - s) mod n order, and the set of their keys. */
        unsigned nr = 0;
        for (unsigned k = 0, v = s; k < nsched - 1; k++) {
            v = v + 1 < nsched ? v + 1 : 0;
            key[k] = closeness(s, v);
            if (k == 0 || key[k] != key[k - 1])
                (void)key_slot(ring_key, &nr, cap, key[k]);
        }
        /* Counting sort by ring. */
        unsigned *ends = plan_ends + (size_t)s * cap;
        memset(ends, 0, cap * sizeof(*ends));
        for (unsigned k = 0; k < nsched - 1; k++) {
            slot[k] = k && key[k] == key[k - 1]
                          ? slot[k - 1]
                          : key_slot(ring_key, &nr, cap, key[k]);
            ends[slot[k]]++;
        }
        for (unsigned r = 0, sum = 0; r < nr; r++) {
            fill[r] = sum;
            sum += ends[r];
            ends[r] = sum;
        }
        unsigned *vic = plan_victims + (size_t)s * (nsched - 1);
        for (unsigned k = 0, v = s; k < nsched - 1; k++) {
            v = v + 1 < nsched ? v + 1 : 0;
            vic[fill[slot[k]]++] = v;
        }
        plan_nrings[s] = nr;
    }
    plan_n = nsched;
    plan_rings_cap = cap;
    rc = 0;
out:
    free(key);
    free(slot);
    free(ring_key);
    free(fill);
    return rc;
}

unsigned tel__topo_rings(unsigned sched, unsigned nsched,
                         const unsigned **victims, const unsigned **ring_ends)
{
    if (nsched < 2 || nsched != plan_n || sched >= nsched)
        return 0;
    *victims = plan_victims + (size_t)sched * (nsched - 1);
    *ring_ends = plan_ends + (size_t)sched * plan_rings_cap;
    return plan_nrings[sched];
}

/* ------------------------------------------------------------------ */
/* Binding                                                             */
/* ------------------------------------------------------------------ */

int tel__topo_bind_thread(unsigned index)
{
    if (!topo || synthetic || !n_cores)
        return TEL_ESYS;
    if (hwloc_set_cpubind(topo, cores[index % n_cores].cpus,
                          HWLOC_CPUBIND_THREAD) != 0)
        return TEL_ESYS;
    return 0;
}

void *tel__topo_save_binding(void)
{
    if (!topo || synthetic)
        return NULL;
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (set && hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_THREAD) != 0) {
        hwloc_bitmap_free(set);
        set = NULL;
    }
    return set;
}

void tel__topo_restore_binding(void *saved)
{
    if (!saved)
        return;
    hwloc_bitmap_t set = saved;
    if (topo)
        (void)hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_THREAD);
    hwloc_bitmap_free(set);
}

int tel__topo_membind_works(void)
{
    if (!topo || synthetic || n_nodes < 2 ||
        !hwloc_topology_is_thissystem(topo))
        return 0;
    const struct hwloc_topology_support *sup = hwloc_topology_get_support(topo);
    return sup && sup->membind && sup->membind->set_area_membind &&
           sup->membind->bind_membind;
}

int tel__topo_membind(void *addr, size_t len, unsigned node)
{
    if (!addr || !len)
        return TEL_EINVAL;
    if (!tel__topo_membind_works() || node >= n_nodes || !node_obj[node])
        return TEL_ESYS;
    if (hwloc_set_area_membind(topo, addr, len, node_obj[node]->nodeset,
                               HWLOC_MEMBIND_BIND,
                               HWLOC_MEMBIND_BYNODESET) != 0)
        return TEL_ESYS;
    return 0;
}
