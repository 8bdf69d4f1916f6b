/*
 * alloc/topo.h: the machine's shape, from hwloc.
 *
 * The topology is loaded once per program (the first tel_run) and freed at
 * program exit. Only the processing units the process may run on (its CPU
 * affinity mask) are counted.
 */
#ifndef TEL_ALLOC_TOPO_H
#define TEL_ALLOC_TOPO_H

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

#endif /* TEL_ALLOC_TOPO_H */
