/*
 * sched/preempt.h: asynchronous preemption. The watchdog (sysmon.c) asks
 * for it when a scheduler has run one task for longer than its bound; a
 * signal to that scheduler's thread then switches the task out if it was
 * interrupted where that is safe, or else tells it to yield at its next
 * reduction point. The rule for "safe" is at the top of preempt.c.
 */
#ifndef TEL_SCHED_PREEMPT_H
#define TEL_SCHED_PREEMPT_H

#include <stdbool.h>
#include <stdint.h>

struct sched;

/*
 * Install the preemption signal's handler for a run (enabled: the run's
 * async_preempt setting; when false nothing is installed and every request
 * fails). 0, or TEL_ESYS. tel_run's thread, before the scheduler threads
 * start; uninstall after they all stopped.
 */
int tel__preempt_install(bool enabled);
void tel__preempt_uninstall(void);

/*
 * Any thread (the watchdog), at any time between the start of the run's
 * scheduler threads and their join, whatever s is doing (running, parked,
 * switching): ask s's thread to preempt the task it runs. Returns whether
 * a request was sent or is already on its way (false when asynchronous
 * preemption is off or unsupported in this build). Never blocks; one
 * pthread_kill at most.
 */
bool tel__preempt_request(struct sched *s);

/*
 * Any scheduler thread: a receiver wants the send batch s's running task
 * holds for it (core/mailbox.c, "Batched sends"). Signals s's thread
 * unless a nudge is already on its way; its handler pushes the batch
 * where the task was interrupted, if it is outside Telar's code, and does
 * not preempt it. False when asynchronous preemption is off.
 */
bool tel__preempt_nudge(struct sched *s);

/* Any thread: whether this run interrupts processes with the signal (the
 * handler is installed and the program's code could be told apart). */
bool tel__preempt_active(void);

/* Any thread, for tests and statistics: since this run's install, how
 * many of our signals found a task running (handled), and how many of
 * those could not switch it out where it was (deferred to its next
 * reduction point). */
void tel__preempt_stats(uint64_t *handled, uint64_t *deferred);
/* Tests: times the handler shed a stuck scheduler's owner-only queues
 * (tel__sched_shed) because it could not switch the task out. */
uint64_t tel__preempt_n_shed(void);

#endif /* TEL_SCHED_PREEMPT_H */
