/*
 * alloc/topo.h: the machine's shape, from hwloc.
 *
 * The topology is loaded once per program (the first tel_run) and freed at
 * program exit. Only the processing units the process may run on (its CPU
 * affinity mask) are counted.
 */
#ifndef TEL_ALLOC_TOPO_H
#define TEL_ALLOC_TOPO_H

#include <stddef.h>

/* Load the topology if not yet loaded, and take the calling thread's CPU
 * affinity as the set of usable cores. 0, or TEL_ESYS. tel_run's thread. */
int tel__topo_init(void);

/* Cores the process may run on (at least 1). */
unsigned tel__topo_ncores(void);

/*
 * Pin the calling thread to core (index mod ncores). Returns 0 or TEL_ESYS;
 * failing to pin is not fatal for the runtime (containers may forbid it).
 */
int tel__topo_bind_thread(unsigned index);

/* Save and restore the calling thread's CPU binding (tel_run's caller). */
void *tel__topo_save_binding(void);
void tel__topo_restore_binding(void *saved);

/*
 * NUMA placement of the current run (after tel__topo_init). Nodes are
 * numbered 0..tel__topo_nnodes()-1 in the run's own dense order; scheduler
 * i runs on node tel__topo_node_of(i) (i is taken mod the core count, as in
 * tel__topo_bind_thread). Read-only after init: any thread.
 */
unsigned tel__topo_nnodes(void);
unsigned tel__topo_node_of(unsigned sched_index);

/*
 * Bind [addr, addr + len) (page-aligned) to node's memory. 0, or TEL_ESYS
 * when binding is impossible here (one node, a synthetic topology, no
 * permission): the memory then stays where the kernel puts it. Any thread.
 */
int tel__topo_membind(void *addr, size_t len, unsigned node);

#endif /* TEL_ALLOC_TOPO_H */
