/*
 * sched/fault.c: a process that runs off its stack ends alone, with
 * TEL_STACK_OVERFLOW, and the runtime goes on.
 *
 * Owns: the SIGSEGV and SIGBUS handler of a run (installed by
 * tel__sched_run before the scheduler threads start, the previous handlers
 * restored after they stopped) and each scheduler thread's alternate signal
 * stack (a process that overflowed has no stack left to run a handler on).
 *
 * What is contained, exactly: a fault whose address lies in the guard
 * region (alloc/stack.h) of the stack of the process that is running on the
 * faulting scheduler thread. The handler then ends that process as
 * tel_exit would, with TASK_F_OVERFLOW set (core turns it into the reason
 * TEL_STACK_OVERFLOW): it switches from the signal stack straight to the
 * scheduler's exit path (tel__sched_exit_overflow), which frees the stack,
 * calls the task_exit hook and runs the next task. The faulting code is
 * never returned to, and the signal is unblocked first, since the handler
 * is left by a context switch, not by sigreturn.
 *
 * Everything else goes to the handler that was there before the run (or
 * the default action, which kills the program as it would have without
 * Telar): a null or wild pointer, a fault on a thread that is not a
 * scheduler, a fault in the guard of some other stack, an overflow in the
 * scheduler loop itself. Crash isolation for those is a later issue.
 *
 * Limits (documented in alloc/README.md and sched/README.md):
 *   - A frame larger than the guard region (16 KiB) can step over it into
 *     the stack below; the switch-out checks in scheduler.c (lowest stack
 *     pointer, and the canary in the fallback mode) are the backstop.
 *   - The process is ended wherever it faulted. If that was inside a call
 *     holding a lock (the C library's malloc, stdio), the lock stays held.
 *     Telar's own calls check the stack before they switch (scheduler.c
 *     keeps SCHED_STACK_RESERVE bytes for the switch path) so that they do
 *     not fault halfway through a queue operation.
 *
 * Concurrency: the handler runs on the faulting thread and reads only that
 * thread's scheduler (thread-local) and the running task, which that thread
 * owns. The saved previous handlers are written before ours is installed
 * and only read afterwards.
 */
#define _GNU_SOURCE 1
#include "sched/fault.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc/base.h"
#include "alloc/stack.h"
#include "include/telar.h"
#include "sched/scheduler.h"

#ifdef TEL_ASAN
#include <sanitizer/asan_interface.h>
#endif

#if defined(TEL_ASAN) || defined(TEL_TSAN)
#define FAULT_ALTSTACK ((size_t)256 << 10) /* their handlers need room */
#else
#define FAULT_ALTSTACK ((size_t)64 << 10)
#endif

static struct sigaction old_segv, old_bus;
static bool installed;

bool tel__fault_in_guard(const void *stack_base, const void *addr)
{
    uintptr_t b = (uintptr_t)stack_base, a = (uintptr_t)addr;
    return a < b && a >= b - tel__stack_guard_size();
}

/* Not ours: what would have happened without Telar. */
static void chain(int sig, siginfo_t *si, void *uc)
{
    const struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, si, uc);
        return;
    }
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    /* The default action (an ignored fault would only repeat forever).
     * Returning re-runs the faulting access, which now kills the program
     * with the usual signal and core; a signal that was sent, not caused
     * by an access, is raised again (it stays pending until we return). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    (void)sigaction(sig, &dfl, NULL);
    if (si->si_code <= 0)
        (void)raise(sig);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    struct sched *s = tel__sched_self();
    struct task *t = s ? s->cur : NULL;
    if (t && t->stack && tel__fault_in_guard(t->stack, si->si_addr)) {
#ifdef TEL_ASAN
        /* Earlier overflows left this signal stack by a switch, so their
         * frames' redzones are still poisoned under ours: clear them. */
        if (s->alt.on)
            ASAN_UNPOISON_MEMORY_REGION(s->alt.mem, s->alt.size);
#endif
        /* We leave by a switch, not sigreturn: unblock the signal now, or
         * the next fault on this thread would kill the program. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        (void)pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        tel__sched_exit_overflow(s);
    }
    chain(sig, si, uc);
}

int tel__fault_install(void)
{
    /* Read the old handlers before ours can run. */
    if (sigaction(SIGSEGV, NULL, &old_segv) != 0 ||
        sigaction(SIGBUS, NULL, &old_bus) != 0)
        return TEL_ESYS;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0)
        return TEL_ESYS;
    if (sigaction(SIGBUS, &sa, NULL) != 0) {
        (void)sigaction(SIGSEGV, &old_segv, NULL);
        return TEL_ESYS;
    }
    installed = true;
    return 0;
}

void tel__fault_uninstall(void)
{
    if (!installed)
        return;
    (void)sigaction(SIGSEGV, &old_segv, NULL);
    (void)sigaction(SIGBUS, &old_bus, NULL);
    installed = false;
}

void tel__fault_thread_start(struct fault_altstack *a)
{
    memset(a, 0, sizeof(*a));
    void *m = mmap(NULL, FAULT_ALTSTACK, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return;
    stack_t ss = {.ss_sp = m, .ss_size = FAULT_ALTSTACK, .ss_flags = 0};
    if (sigaltstack(&ss, &a->old) != 0) {
        munmap(m, FAULT_ALTSTACK);
        return;
    }
    a->mem = m;
    a->size = FAULT_ALTSTACK;
    a->on = true;
}

void tel__fault_thread_stop(struct fault_altstack *a)
{
    if (!a->on)
        return;
    /* The thread's previous one back (or none). */
    if (sigaltstack(&a->old, NULL) != 0) {
        stack_t off = {.ss_flags = SS_DISABLE};
        (void)sigaltstack(&off, NULL);
    }
    munmap(a->mem, a->size);
    a->mem = NULL;
    a->on = false;
}
