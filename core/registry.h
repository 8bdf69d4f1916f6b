/*
 * core/registry.h: process names (tel_register, tel_unregister,
 * tel_whereis); the table lives in registry.c.
 */
#ifndef TEL_CORE_REGISTRY_H
#define TEL_CORE_REGISTRY_H

#include <stdint.h>

struct proc;

/*
 * Start a run with an empty registry (the tables are allocated by the first
 * tel_register). tel_run's thread, before the gate opens.
 */
void tel__reg_init(void);

/*
 * Free every name and table still held. tel_run's thread, after the
 * schedulers have stopped and the gate has closed (nobody can call in).
 */
void tel__reg_fini(void);

/*
 * p is exiting and registered itself (PROC_NAMED): free its name, if it
 * still has one. Called by proc_exit before p stops being alive, on the
 * thread of the scheduler that ran it.
 */
void tel__reg_exit(struct proc *p);

/*
 * White-box test hook: how many entries the table holds, counting those
 * whose process has died and that nobody has dropped yet. Any thread while
 * the runtime runs (it takes the lock).
 */
uint32_t tel__reg_entries(void);

#endif /* TEL_CORE_REGISTRY_H */
