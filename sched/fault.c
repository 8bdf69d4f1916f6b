/*
 * sched/fault.c: a process whose own code faults ends alone, with
 * TEL_CRASHED (TEL_STACK_OVERFLOW if it ran off its stack), its links and
 * monitors fire, and the runtime goes on.
 *
 * Owns: the run's handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT
 * (installed by tel__sched_run before the scheduler threads start, the
 * previous handlers restored after they stopped) and each scheduler
 * thread's alternate signal stack (a process that overflowed has no stack
 * left to run a handler on).
 *
 * What is contained, exactly. A signal is a fault of the running process
 * when all of these hold:
 *   - it was caused by the thread itself: SIGSEGV, SIGBUS, SIGFPE or SIGILL
 *     raised by the CPU (si_code > 0: a bad access, a division by zero,
 *     __builtin_trap's ud2), or a SIGABRT the thread sent itself
 *     (si_code SI_TKILL from our own pid: abort(), raise()). A signal sent
 *     with kill() or sigqueue(), from outside or from inside, is not one;
 *   - the thread is a scheduler and is running a process (s->cur);
 *   - the interrupted stack pointer lies in that process's stack mapping
 *     (its guard region included), so the fault is in code running on the
 *     process's behalf, not in the scheduler loop or on the signal stack;
 *   - the thread holds none of Telar's own locks (tel__locks_held,
 *     alloc/lock.h); tel__panic counts itself as one, so a broken runtime
 *     invariant still aborts the program.
 * The handler then ends that process as tel_exit would: with
 * TASK_F_OVERFLOW if the fault address is in its stack's guard region
 * (alloc/stack.h), else TASK_F_CRASHED (core turns them into the reasons
 * TEL_STACK_OVERFLOW and TEL_CRASHED). It switches from the signal stack
 * straight to the scheduler's exit path (tel__sched_exit_fault), which
 * frees the stack, calls core's task_exit hook (the exit reason, links
 * and monitors, the process block) and runs the next task. The faulting
 * code is never returned to, and the interrupted code's signal mask is
 * put back first, since the handler is left by a context switch, not by
 * sigreturn.
 *
 * Everything else goes to the handler that was there before the run (or
 * the default action, which kills the program as it would have without
 * Telar): a fault on a thread that is not a scheduler (tel_run's caller
 * before or after the run, a plain pthread), on the scheduler loop's own
 * stack or the signal stack, a fault while the thread holds a runtime
 * lock, and every signal that was sent rather than caused.
 *
 * Limits (also in include/telar.h, tel_run, and sched/README.md):
 *   - The process is ended wherever it faulted. Inside a C library call
 *     (malloc, stdio) the library's locks stay held and the next call that
 *     needs them hangs; memory the process allocated, and messages it took
 *     from its mailbox and did not free, are lost, as with any C code
 *     stopped halfway.
 *   - A fault inside a Telar call the process made is contained (no
 *     runtime lock is held on those paths). Audited: tel_send and
 *     tel_send_after read the caller's data only in tel__msg_new's copy,
 *     after the buffer was allocated: that buffer is lost (and
 *     tel_send_after's timer block with it): a pool block keeps its slab
 *     from ever being freed, a large message's jemalloc block stays
 *     allocated; the receiver is untouched. tel_recv and
 *     tel_recv_match write *out before taking anything; a match callback
 *     that faults on a new arrival loses that one message (already taken
 *     from the arrival queue, not yet in the saved list); an armed receive
 *     timer is disarmed by the exit path. tel_msg_free on a bad pointer
 *     faults reading its header, before the pool is touched (a wild pointer
 *     that happens to be mapped corrupts the pool instead: not detected).
 *   - A frame larger than the guard region (16 KiB) can step over it into
 *     the stack below; the switch-out checks in scheduler.c (lowest stack
 *     pointer, and the canary in the fallback mode) are the backstop.
 *     Telar's own calls check the stack before they switch (scheduler.c
 *     keeps SCHED_STACK_RESERVE bytes for the switch path) so that they do
 *     not overflow halfway through a queue operation.
 *   - A SIGABRT another thread of the program sends to a scheduler thread
 *     with pthread_kill or tgkill looks exactly like abort() (SI_TKILL,
 *     our pid) and ends the process that thread is running.
 *
 * Concurrency: the handler runs on the faulting thread and reads only that
 * thread's scheduler (thread-local), its lock count and the running task,
 * which that thread owns. The saved previous handlers are written before
 * ours is installed and only read afterwards.
 */
#define _GNU_SOURCE 1
#include "sched/fault.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "alloc/base.h"
#include "alloc/lock.h"
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

/* The signals we handle, and the handlers they had before the run. */
static const int fault_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define N_FAULT_SIGS (sizeof fault_sigs / sizeof fault_sigs[0])
static struct sigaction old_act[N_FAULT_SIGS];
static bool installed;

bool tel__fault_in_guard(const void *stack_base, const void *addr)
{
    uintptr_t b = (uintptr_t)stack_base, a = (uintptr_t)addr;
    return a < b && a >= b - tel__stack_guard_size();
}

static const struct sigaction *old_of(int sig)
{
    for (size_t i = 0; i < N_FAULT_SIGS; i++)
        if (fault_sigs[i] == sig)
            return &old_act[i];
    return &old_act[0]; /* not reached: only ours are handled here */
}

/* Not ours: what would have happened without Telar. */
static void chain(int sig, siginfo_t *si, void *uc)
{
    const struct sigaction *old = old_of(sig);
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, si, uc);
        return;
    }
    /* A sent signal the program ignored stays ignored (a caused one
     * would only repeat forever: it gets the default action below). */
    if (old->sa_handler == SIG_IGN && si->si_code <= 0)
        return;
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    /* The default action. Returning re-runs the faulting instruction,
     * which now kills the program with the usual signal and core; a
     * signal that was sent, not caused by an instruction, is raised again
     * (it stays pending until we return). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    (void)sigaction(sig, &dfl, NULL);
    if (si->si_code <= 0)
        (void)raise(sig);
}

/* Whether the thread caused sig itself (see the top of the file). */
static bool caused_here(int sig, const siginfo_t *si)
{
    if (sig == SIGABRT)
        return si->si_code == SI_TKILL && si->si_pid == getpid();
    return si->si_code > 0;
}

/* The stack pointer of the interrupted code, or 0 if unknown here. */
static uintptr_t interrupted_sp(const void *uc)
{
    const ucontext_t *u = uc;
#if defined(__x86_64__)
    return (uintptr_t)u->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)u->uc_mcontext.sp;
#else
    (void)u;
    return 0; /* nothing is contained */
#endif
}

/* Whether sp is in t's stack mapping: its guard, then the stack. */
static bool on_task_stack(const struct task *t, uintptr_t sp)
{
    uintptr_t base = (uintptr_t)t->stack;
    return sp >= base - tel__stack_guard_size() &&
           sp <= base + tel__task_stack_size(t);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    struct sched *s = tel__sched_self();
    struct task *t = s ? s->cur : NULL;
    if (t && t->stack && tel__locks_held == 0 && caused_here(sig, si) &&
        on_task_stack(t, interrupted_sp(uc))) {
        uint32_t flag = TASK_F_CRASHED;
        if ((sig == SIGSEGV || sig == SIGBUS) &&
            tel__fault_in_guard(t->stack, si->si_addr))
            flag = TASK_F_OVERFLOW;
#ifdef TEL_ASAN
        /* Earlier faults left this signal stack by a switch, so their
         * frames' redzones are still poisoned under ours: clear them. */
        if (s->alt.on)
            ASAN_UNPOISON_MEMORY_REGION(s->alt.mem, s->alt.size);
#endif
        /* We leave by a switch, not sigreturn: put back the mask the
         * faulting code ran with, as sigreturn would, or the signal (and
         * whatever the handler's mask added: ThreadSanitizer blocks them
         * all) would stay blocked, and the next such fault on this thread
         * would kill the program. */
        const ucontext_t *u = uc;
        (void)pthread_sigmask(SIG_SETMASK, &u->uc_sigmask, NULL);
        tel__sched_exit_fault(s, flag);
    }
    chain(sig, si, uc);
}

int tel__fault_install(void)
{
    /* Read the old handlers before ours can run. */
    for (size_t i = 0; i < N_FAULT_SIGS; i++)
        if (sigaction(fault_sigs[i], NULL, &old_act[i]) != 0)
            return TEL_ESYS;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_FAULT_SIGS; i++) {
        if (sigaction(fault_sigs[i], &sa, NULL) != 0) {
            while (i-- > 0)
                (void)sigaction(fault_sigs[i], &old_act[i], NULL);
            return TEL_ESYS;
        }
    }
    installed = true;
    return 0;
}

void tel__fault_uninstall(void)
{
    if (!installed)
        return;
    for (size_t i = 0; i < N_FAULT_SIGS; i++)
        (void)sigaction(fault_sigs[i], &old_act[i], NULL);
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
