/*
 * sched/sysmon.h: the watchdog thread (Go's sysmon, tighter). It samples
 * every scheduler's run sequence and acts on a scheduler that has run one
 * task for longer than the run's bound: it asks for preemption
 * (preempt.h), keeps the longest run per scheduler for tel_sched_stats,
 * and reports long runs (long_schedule) through the hooks' long_run.
 */
#ifndef TEL_SCHED_SYSMON_H
#define TEL_SCHED_SYSMON_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Start the watchdog for a run of n schedulers (tel__sched_get works for
 * them already), acting on runs longer than bound_ns; also installs the
 * preemption signal (async_preempt). 0, TEL_ENOMEM or TEL_ESYS (nothing
 * started). tel_run's thread, before the scheduler threads start. With
 * enabled false, nothing runs and every query answers "none".
 */
int tel__sysmon_start(bool enabled, bool async_preempt, unsigned n,
                      uint64_t bound_ns);

/* tel_run's thread, after every scheduler thread stopped: stop and join
 * the watchdog. Its records stay readable until tel__sysmon_fini. */
void tel__sysmon_stop(void);

/* Free what the watchdog kept (tel__sched_fini, the gate closed). */
void tel__sysmon_fini(void);

/*
 * A scheduler thread that leaves its park (woke, or cancelled its park):
 * wake the watchdog if it sleeps because every scheduler was parked. The
 * idle path only: a fence and a load when the watchdog is awake.
 */
void tel__sysmon_unparked(void);

/* Any thread: report runs at least ns long through hooks->long_run (0:
 * stop reporting). Returns false if the run has no watchdog. */
bool tel__sysmon_set_long(uint64_t ns);

/* Whether the current run has a watchdog. */
bool tel__sysmon_enabled(void);

/*
 * Any thread, while the run exists: scheduler i's longest run seen so far
 * (ns; 0 if none lasted a sampling period) and the id of the task that
 * ran it (0 while that run has not ended yet), and how long its current
 * run has lasted (0 when idle or shorter than a period).
 */
void tel__sysmon_record(unsigned i, uint64_t *longest_ns, uint64_t *id,
                        uint64_t *current_ns);

/* White-box tests: how many times the watchdog has sampled this run. */
uint64_t tel__sysmon_n_ticks(void);

/* The watchdog's sampling period (ns; 0 without a watchdog). */
uint64_t tel__sysmon_period_ns(void);

#endif /* TEL_SCHED_SYSMON_H */
