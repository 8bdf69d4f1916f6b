/*
 * alloc/topo.h: the machine's shape, from hwloc.
 *
 * The topology is loaded once per program (the first tel_run) and freed at
 * program exit. Only the cores the process may run on (its CPU affinity
 * mask) are counted, and only the NUMA nodes that hold one of them.
 *
 * A run goes: tel__topo_init (tel_run's thread), then tel__topo_plan(n) once
 * the scheduler count n is known, then schedulers start and only read.
 */
#ifndef TEL_ALLOC_TOPO_H
#define TEL_ALLOC_TOPO_H

#include <stddef.h>
#include <stdint.h>

/*
 * Load the topology if not yet loaded (or replace a test's synthetic one),
 * take the calling thread's CPU affinity as the set of usable cores, and
 * read the cgroup CPU quota. Context: tel_run's thread, no scheduler
 * running. Errors: TEL_ESYS (hwloc cannot load the machine), TEL_ENOMEM.
 */
int tel__topo_init(void);

/* Cores the process may run on (at least 1). Any thread. */
unsigned tel__topo_ncores(void);

/*
 * The default scheduler count: one per usable core, but no more than the
 * cgroup CPU quota allows (ceil(quota / period)), and at least 1. Any
 * thread, after tel__topo_init.
 */
unsigned tel__topo_nsched_default(void);

/*
 * Build the victim rings for a run of nsched schedulers (see
 * tel__topo_rings). Replaces the previous run's. Context: tel_run's thread,
 * after tel__topo_init, no scheduler running. Errors: TEL_EINVAL (nsched is
 * 0), TEL_ENOMEM.
 */
int tel__topo_plan(unsigned nsched);

/*
 * The victims of scheduler `sched` in a run of nsched schedulers, nearest
 * first, grouped in rings: the schedulers on its own core, then those that
 * share its L2, then its L3, then the rest of its NUMA node, then one ring
 * per distinct hwloc distance to the remote nodes, nearest first. Empty
 * rings are left out, and a scheduler is never its own victim. Ring r is
 * (*victims)[(*ring_ends)[r-1] .. (*ring_ends)[r] - 1] (ring 0 starts at 0),
 * and the last ring ends at nsched - 1.
 *
 * Returns the number of rings; 0 when there are none to give (nsched < 2,
 * sched >= nsched, or the plan was made for another count), and then the
 * caller picks victims its own way. No allocation, no lock: the arrays are
 * built by tel__topo_plan and read-only while schedulers run. Any thread.
 */
unsigned tel__topo_rings(unsigned sched, unsigned nsched,
                         const unsigned **victims, const unsigned **ring_ends);

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
 * numbered 0..tel__topo_nnodes()-1 in the run's own dense order (hwloc's
 * logical order over the nodes that hold a usable core); scheduler i runs
 * on node tel__topo_node_of(i) (i is taken mod the core count, as in
 * tel__topo_bind_thread). Read-only after init: any thread. Before any
 * init there is one node, 0.
 */
unsigned tel__topo_nnodes(void);
unsigned tel__topo_node_of(unsigned sched_index);

/*
 * Bind [addr, addr + len) (page-aligned) to node's memory. 0, or TEL_ESYS
 * when binding is impossible here (one node, a synthetic topology, no
 * kernel support, no permission, node out of range): the memory then stays
 * where the kernel puts it. TEL_EINVAL for a NULL addr or len 0. Any thread.
 */
int tel__topo_membind(void *addr, size_t len, unsigned node);

/* Whether tel__topo_membind can work at all in this run (more than one
 * node, the real machine, kernel support). Any thread, after init. */
int tel__topo_membind_works(void);

/* ---- Test hooks (white-box tests only) ---------------------------------- */

/*
 * Replace the topology with hwloc's synthetic one for desc (hwloc's
 * synthetic syntax, e.g. "pack:2 numa:2 core:4 pu:1"); every core of it is
 * usable, and no cgroup quota applies unless a test root is set. node_dist,
 * when not NULL, is a row-major k x k latency matrix over the topology's k
 * NUMA nodes in hwloc's logical order, given to hwloc as user distances.
 * The next tel__topo_init loads the real machine again. Context: tel_run's
 * thread, no run active. Errors: TEL_EINVAL (hwloc rejects desc or the
 * matrix), TEL_ESYS, TEL_ENOMEM.
 */
int tel__topo_init_synthetic(const char *desc, const uint64_t *node_dist);

/*
 * Read cgroup quotas under root (instead of /sys/fs/cgroup) for the process
 * cgroup named in self_file (instead of /proc/self/cgroup); NULL restores
 * the default. Takes effect at the next init. No run active.
 */
void tel__topo_set_cgroup_root(const char *root, const char *self_file);

/*
 * The cgroup CPU limit as a whole number of CPUs (ceil(quota / period), at
 * least 1), or 0 when there is none or it cannot be read: cgroup v2's
 * cpu.max first, then v1's cpu.cfs_quota_us / cpu.cfs_period_us; the
 * process's cgroup and each of its ancestors count (the tightest wins).
 * Malformed files are ignored. Any thread (reads files; allocates nothing).
 */
unsigned tel__topo_cgroup_cpus(void);

#endif /* TEL_ALLOC_TOPO_H */
