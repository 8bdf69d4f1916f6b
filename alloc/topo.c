/*
 * alloc/topo.c: hwloc topology, core count and thread binding.
 *
 * Owns: one hwloc topology for the program's life (loaded lazily, freed by a
 * destructor at exit), and the cores the current run may use: those the
 * calling thread's CPU affinity mask allows when tel_run starts (so a
 * process restricted by taskset or a container's cpuset gets that many
 * schedulers, pinned inside its mask).
 *
 * Concurrency: loaded by tel_run's thread before any scheduler starts; after
 * that it is only read (hwloc allows concurrent reads and binding calls).
 *
 * Not here yet: NUMA distances and victim rings (the memory issue).
 */
#include "alloc/topo.h"

#include <hwloc.h>
#include <stdlib.h>

#include "include/telar.h"

static hwloc_topology_t topo;
static unsigned ncores;
/* The cores the calling thread of the current run may use, in order. */
static hwloc_bitmap_t *allowed;
static unsigned n_allowed_cap;

/* Recompute the usable cores from the calling thread's current binding. */
static void refresh_allowed(void)
{
    hwloc_bitmap_t mine = hwloc_bitmap_alloc();
    if (!mine)
        return;
    if (hwloc_get_cpubind(topo, mine, HWLOC_CPUBIND_THREAD) != 0)
        hwloc_bitmap_copy(mine, hwloc_topology_get_allowed_cpuset(topo));
    int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    hwloc_obj_type_t type = HWLOC_OBJ_CORE;
    if (n <= 0) {
        type = HWLOC_OBJ_PU;
        n = hwloc_get_nbobjs_by_type(topo, type);
    }
    for (unsigned i = 0; i < n_allowed_cap; i++)
        hwloc_bitmap_free(allowed[i]);
    free(allowed);
    allowed = calloc(n > 0 ? (size_t)n : 1, sizeof(*allowed));
    n_allowed_cap = 0;
    for (int i = 0; allowed && i < n; i++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(topo, type, (unsigned)i);
        if (!o || !o->cpuset || !hwloc_bitmap_intersects(o->cpuset, mine))
            continue;
        hwloc_bitmap_t b = hwloc_bitmap_alloc();
        if (!b)
            break;
        hwloc_bitmap_and(b, o->cpuset, mine);
        allowed[n_allowed_cap++] = b;
    }
    ncores = n_allowed_cap ? n_allowed_cap : 1;
    hwloc_bitmap_free(mine);
}

int tel__topo_init(void)
{
    if (topo) {
        refresh_allowed();
        return 0;
    }
    hwloc_topology_t t;
    if (hwloc_topology_init(&t) != 0)
        return TEL_ESYS;
    if (hwloc_topology_load(t) != 0) {
        hwloc_topology_destroy(t);
        return TEL_ESYS;
    }
    topo = t;
    refresh_allowed();
    return 0;
}

__attribute__((destructor)) static void topo_unload(void)
{
    for (unsigned i = 0; i < n_allowed_cap; i++)
        hwloc_bitmap_free(allowed[i]);
    free(allowed);
    allowed = NULL;
    n_allowed_cap = 0;
    if (topo)
        hwloc_topology_destroy(topo);
    topo = NULL;
}

unsigned tel__topo_ncores(void)
{
    return ncores ? ncores : 1;
}

int tel__topo_bind_thread(unsigned index)
{
    if (!topo || !n_allowed_cap)
        return TEL_ESYS;
    if (hwloc_set_cpubind(topo, allowed[index % n_allowed_cap],
                          HWLOC_CPUBIND_THREAD) != 0)
        return TEL_ESYS;
    return 0;
}

void *tel__topo_save_binding(void)
{
    if (!topo)
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
    (void)hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_THREAD);
    hwloc_bitmap_free(set);
}

/* One node until the topology work below lands (issue 4, this session). */
unsigned tel__topo_nnodes(void)
{
    return 1;
}

unsigned tel__topo_node_of(unsigned sched_index)
{
    (void)sched_index;
    return 0;
}

int tel__topo_membind(void *addr, size_t len, unsigned node)
{
    (void)addr;
    (void)len;
    (void)node;
    return TEL_ESYS;
}
