/*
 * core/pid.h: the pid table: generation-tagged slots.
 */
#ifndef TEL_CORE_PID_H
#define TEL_CORE_PID_H

#include <stdbool.h>
#include <stdint.h>

#include "include/telar.h"

struct proc;

#define PID_IDX_BITS 28

/*
 * Set up for max_procs live processes and n_caches per-scheduler slot
 * caches. 0 or TEL_ENOMEM. tel_run's thread.
 */
int tel__pid_init(uint32_t max_procs, unsigned n_caches);
void tel__pid_fini(void);

/*
 * Give p a pid and make it visible (alive). cache: the caller's scheduler
 * index or -1. Returns 0 or TEL_ELIMIT. Any thread.
 */
int tel__pid_alloc(int cache, struct proc *p, tel_pid_t *out);

/*
 * Any thread: the live process named by pid with a reference held (so it
 * cannot be freed until tel__pid_unref), or NULL if pid is dead or stale.
 */
struct proc *tel__pid_ref(tel_pid_t pid);
void tel__pid_unref(struct proc *p);

/*
 * The scheduler that ran p, after p left its stack for good: p is no longer
 * alive. p is released now, or by the last tel__pid_unref.
 */
void tel__pid_exit(struct proc *p);

/* Release p's slot (called from tel__proc_release). */
void tel__pid_free_slot(tel_pid_t pid);

bool tel__pid_alive(tel_pid_t pid);
uint32_t tel__pid_live(void);

/* Teardown: call fn on every process still alive. No other thread runs. */
void tel__pid_foreach_live(void (*fn)(struct proc *p));

#endif /* TEL_CORE_PID_H */
