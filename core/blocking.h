/*
 * core/blocking.h: the blocking pool behind tel_blocking (BEAM's dirty
 * schedulers, tokio's spawn_blocking); the pool lives in blocking.c.
 */
#ifndef TEL_CORE_BLOCKING_H
#define TEL_CORE_BLOCKING_H

/*
 * Start a run with an empty pool of at most max_threads threads (0 means
 * TEL_DEFAULT_BLOCKING_THREADS). tel_run's thread, before the gate opens.
 */
void tel__blocking_init(unsigned max_threads);

/*
 * Stop the pool: jobs queued and never started are freed, jobs running are
 * waited for (their results dropped), and every thread is joined.
 * tel_run's thread, after the schedulers have stopped and the gate has
 * closed, before any memory is freed.
 */
void tel__blocking_fini(void);

#endif /* TEL_CORE_BLOCKING_H */
