/*
 * alloc/topo.c: hwloc topology, core count and thread binding.
 *
 * Owns: one hwloc topology for the program's life (loaded lazily, freed by a
 * destructor at exit).
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

int tel__topo_init(void)
{
    if (topo)
        return 0;
    hwloc_topology_t t;
    if (hwloc_topology_init(&t) != 0)
        return TEL_ESYS;
    if (hwloc_topology_load(t) != 0) {
        hwloc_topology_destroy(t);
        return TEL_ESYS;
    }
    int n = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
    if (n <= 0)
        n = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
    ncores = n > 0 ? (unsigned)n : 1;
    topo = t;
    return 0;
}

__attribute__((destructor)) static void topo_unload(void)
{
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
    if (!topo)
        return TEL_ESYS;
    hwloc_obj_t o = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE,
                                          index % tel__topo_ncores());
    if (!o)
        o = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU,
                                  index % tel__topo_ncores());
    if (!o || !o->cpuset)
        return TEL_ESYS;
    if (hwloc_set_cpubind(topo, o->cpuset, HWLOC_CPUBIND_THREAD) != 0)
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
