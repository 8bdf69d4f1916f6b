/*
 * sched/fault.h: containing a process's faults (stack overflow, bad
 * accesses, division by zero, traps, its own abort). A handler for SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL and SIGABRT, installed for the length of a run, on
 * an alternate signal stack per scheduler thread; see the top of fault.c
 * for exactly what it contains.
 */
#ifndef TEL_SCHED_FAULT_H
#define TEL_SCHED_FAULT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

/* A scheduler thread's alternate signal stack, and the one it replaced. */
struct fault_altstack {
    void *mem;
    size_t size;
    stack_t old;
    bool on;
};

/*
 * Install the handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT,
 * remembering the previous ones (signals that are not a process's fault go
 * to them). 0, or TEL_ESYS (nothing installed: then a fault kills the
 * program, as with no handler). tel_run's thread, before the scheduler
 * threads start.
 */
int tel__fault_install(void);

/* Put the previous handlers back. tel_run's thread, after every scheduler
 * thread stopped. */
void tel__fault_uninstall(void);

/*
 * Give the calling scheduler thread its alternate signal stack (a failure
 * only leaves the thread without containment), and take it away again,
 * restoring the thread's previous one. The thread's own start and stop.
 */
void tel__fault_thread_start(struct fault_altstack *a);
void tel__fault_thread_stop(struct fault_altstack *a);

/* Whether an address is in the guard region below a stack's base. */
bool tel__fault_in_guard(const void *stack_base, const void *addr);

#endif /* TEL_SCHED_FAULT_H */
