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

/* The slot table (16-byte slots, pid.c), for tel__pid_prefetch. */
extern void *tel__pid_table;

/* A hint: pid's slot will be written soon here (its exit). Its line is often
 * in the cache of the CPU that spawned it; fetch it meanwhile. */
static inline void tel__pid_prefetch(tel_pid_t pid)
{
    __builtin_prefetch((char *)tel__pid_table +
                           (pid & ((1ull << PID_IDX_BITS) - 1)) * 16,
                       1, 3);
}
void tel__pid_fini(void);

/*
 * Give p a pid and make it visible (alive). cache: the caller's scheduler
 * index or -1. Returns 0 or TEL_ELIMIT. Any thread.
 */
int tel__pid_alloc(int cache, struct proc *p, tel_pid_t *out);

/*
 * Any thread: the live process named by pid with a reference held (so it
 * cannot be freed until tel__pid_unref), or NULL if pid is dead or stale.
 * Threads that are not schedulers use this; tel__pid_unref may retire p.
 */
struct proc *tel__pid_ref(tel_pid_t pid);
void tel__pid_unref(struct proc *p);

/*
 * Scheduler threads only: the process named by pid if it is alive, without
 * a reference: the block stays valid (it may exit meanwhile) until the
 * calling scheduler's next switch, so the pointer must not be kept across
 * any call that may switch (sched/epoch.h). NULL if pid is dead or stale.
 * Inside a lookup window (tel__sched_hold) when the pointer is used across
 * a call out of Telar's code (memcpy, a system call), or under a Telar
 * lock: the preemption signal may otherwise announce a quiescent state
 * for the thread meanwhile.
 */
struct proc *tel__pid_lookup(tel_pid_t pid);

/*
 * p has left its stack for good (or is being killed at teardown): it is no
 * longer alive. Returns true if the caller must dispose of the block (no
 * reference is held; its slot is already free), false if the last
 * tel__pid_unref will.
 */
bool tel__pid_exit(struct proc *p);

bool tel__pid_alive(tel_pid_t pid);
uint32_t tel__pid_live(void);

/* Teardown: call fn on every process still alive. No other thread runs. */
void tel__pid_foreach_live(void (*fn)(struct proc *p));

#endif /* TEL_CORE_PID_H */
