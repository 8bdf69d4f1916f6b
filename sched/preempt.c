/*
 * sched/preempt.c: asynchronous preemption. A process whose C code never
 * reaches a reduction point is interrupted with a signal and switched out
 * where that is safe (Go's asyncPreempt, issue 6).
 *
 * Owns: the run's SIGURG handler (installed by tel__sched_run before the
 * scheduler threads start, the previous action restored after they all
 * stopped), the table of code ranges the handler reads, the size and mask
 * of the FP/SIMD save area the trampoline (preempt_x86_64.S) reads, and
 * tel__preempt_request, which the watchdog (sysmon.c) calls.
 *
 * The signal. SIGURG, as Go chose it: glibc uses none of it, debuggers
 * pass it quietly, and its default action is to ignore it, so a request
 * that lands after the run (or on a thread that is no scheduler) is
 * harmless. A request counts itself in s->preempt_sig and sends the
 * signal with pthread_kill only if no request was already on its way (or
 * 8 requests found one pending: a signal that reached the thread before
 * it was a scheduler is never matched); the handler zeroes the count. A SIGURG the handler finds without the flag set is not
 * ours (a socket's out-of-band data, another library's): it goes to the
 * action that was there before the run. SA_RESTART, so the system calls
 * that can be restarted are (see "EINTR" below); SA_ONSTACK, so the handler
 * runs on the scheduler thread's signal stack (fault.c), never on the
 * process's stack.
 *
 * The rule: where the interrupted task is switched out at once. All of:
 *   (a) the thread is a scheduler running a task (s->cur) with a stack;
 *   (b) the thread holds none of Telar's locks (tel__locks_held);
 *   (c) the task has not raised tel_preempt_disable (TASK_NOPRE_MASK),
 *       and is not in a callback Telar makes in the middle of its own
 *       work (TASK_F_NOASYNC: a selective receive's match function, which
 *       runs mid-scan with the scheduler cached). Every other callback
 *       into the program runs in the process's own context, where a yield
 *       is as safe as a tel_yield: the process's main function, a
 *       server's init, handle_call, handle_cast, handle_info and terminate
 *       (core/server.c reads its scheduler afresh after each). Callbacks
 *       Telar runs off the process's stack (exit cleanups, timer hooks)
 *       are Telar's own code. A new callback that runs mid-operation must
 *       set the flag;
 *   (d) the interrupted pc is the program's own code: inside an
 *       executable segment of the main executable, and outside Telar's
 *       code. Telar's code in the static library is one linker section,
 *       tel_text (cmake/tel_text.cmake renames every .text* section of
 *       libtelar.a, the private jemalloc object included, after it is
 *       built; the linker then defines __start_tel_text and
 *       __stop_tel_text). Everything in a shared object is excluded: libc
 *       (malloc, stdio, pthread locks), libstdc++, libm, ld.so, the vDSO,
 *       sanitizer runtimes, and libtelar.so itself when Telar is linked
 *       that way. So is code from no object at all (JIT code);
 *   (e) the interrupted instruction is not a `syscall` about to be
 *       restarted (a raw system call in the program's code: its restart
 *       belongs to this thread);
 *   (f) the interrupted stack pointer is inside the task's stack, with
 *       room below it for the red zone, the save area and the scheduler's
 *       switch path (PREEMPT_ROOM), and the handler itself runs on the
 *       signal stack (not on the task's, where our writes would land on
 *       the kernel's signal frame).
 * Since the scheduler and the switch path are Telar code, (d) also covers
 * "not in a switch": between start_running and the switch the pc is
 * Telar's, and once the pc is back in the program's code s->cur and the
 * stack are the task's. At install, async preemption is turned off for
 * the run (every request then takes the fallback below) when the ranges
 * cannot be known: Telar linked statically without the renamed section,
 * or malloc resolving into the executable's own code (libc linked
 * statically, or the program's own allocator: its locks would be ours to
 * break).
 *
 * Safe: the handler does not switch (a signal handler is no place for
 * it). It rewrites the interrupted context so that sigreturn "calls"
 * tel__preempt_tramp: it stores the interrupted pc 128 bytes below the
 * interrupted stack pointer (past the red zone) and points rsp there and
 * rip at the trampoline, which saves every register and the FP/SIMD state
 * on the task's stack and calls tel__preempt_resume ->
 * tel__sched_preempt_async (counts n_preempt_signal, then yields as at a
 * spent slice). When the task runs again, on this thread or another, the
 * trampoline restores everything and returns to the interrupted
 * instruction, with the errno it had (other processes ran on the thread
 * meanwhile). The handler writes only the task's stack and the ucontext,
 * both of which this thread owns, and leaves errno as it found it.
 *
 * Not safe: the handler zeroes s->reds, so the task yields at its next
 * reduction point (its next Telar call, or the end of the runtime call it
 * is in), and records it in s->preempt_want; tel__sched_preempt counts
 * n_preempt_watchdog when that preemption happens. A lost update (the
 * owner was between the load and the store of a charge) only delays it.
 * Where the interrupted pc is outside Telar's code, no Telar lock is held
 * and no lookup window is open (tel__sched_hold), the handler also
 * announces a quiescent state for the epoch (sched/epoch.h): a thread
 * blocked for long in a system call the program made itself then holds
 * back no scheduler's reclamation (the watchdog signals a stuck scheduler
 * at every sample while it is behind, sysmon.c).
 *
 * What this does not make safe, and the public rule (include/telar.h,
 * "Preemption"): a process that holds a lock of its own (a pthread mutex,
 * a spinlock) across pure C code can now be switched out holding it; if
 * another process on the same thread then blocks on it, that thread
 * deadlocks. Such code brackets the section with tel_preempt_disable and
 * tel_preempt_enable. Thread-local storage is per thread, and a preempted
 * process may resume on another scheduler thread (as after any Telar call
 * that may yield).
 *
 * EINTR. With SA_RESTART the kernel restarts the calls that can be; those
 * it never restarts (futex waits with a timeout, nanosleep, poll, epoll)
 * return EINTR. Telar's own: park.c's futex wait treats EINTR as "look
 * again", like EAGAIN and ETIMEDOUT; tel_sleep and timed receives wait on
 * the timer wheel, not in the kernel; the blocking pool's waits are
 * pthread condition waits (no EINTR) on threads that block the signal
 * anyway; clock_gettime, mmap, madvise and futex wakes do not block. A
 * process that makes a raw blocking call on its scheduler thread can see
 * EINTR from those the kernel does not restart, only while it has run
 * longer than the watchdog's bound (tel_blocking is the way to block):
 * twice when the run is found long, and while it stays stuck at most once
 * per 20 ms, only while processes that ended elsewhere wait for its epoch
 * (sysmon.c).
 *
 * Concurrency: requests come from any thread at any time (the target
 * parked, switching or running); the only shared state is s->preempt_sig
 * (exchange), s->thread (set before the watchdog starts) and `active`.
 * The handler runs on the target thread and touches only that thread's
 * scheduler state. The ranges and the save area's size are written before
 * the handler is installed and the threads start, and only read after.
 *
 * Not in this build: ThreadSanitizer delays asynchronous signals to its
 * own safe points and hands the handler a context that is not the
 * interrupted one, so TSan builds never install the handler (every request
 * fails, TEL_TSAN); other architectures likewise until they have a
 * trampoline.
 */
#define _GNU_SOURCE 1
#include "sched/preempt.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "alloc/base.h"
#include "alloc/lock.h"
#include "alloc/numa.h"
#include "include/telar.h"
#include "sched/scheduler.h"

#if defined(__x86_64__) && !defined(TEL_TSAN)
#define PREEMPT_ASYNC 1
#include <cpuid.h>
#endif

#define PREEMPT_SIG SIGURG
#define PREEMPT_MAX_RANGES 16
/* Stack the switch path needs below the trampoline's frame: scheduler.c's
 * SCHED_STACK_RESERVE (4 KiB, 8 KiB under sanitizers) plus the frames of
 * tel__sched_preempt down to the switch. */
#if defined(TEL_ASAN)
#define PREEMPT_ROOM ((uintptr_t)16384)
#else
#define PREEMPT_ROOM ((uintptr_t)8192)
#endif
#define PREEMPT_RED_ZONE 128u

/* Read by the trampoline. Written at install, before any signal. */
TEL_HIDDEN uint64_t tel__preempt_xsize; /* save area bytes, + 64 to align */
TEL_HIDDEN uint64_t tel__preempt_xmask; /* xsave's component mask */
TEL_HIDDEN uint8_t tel__preempt_has_xsave;

void tel__preempt_tramp(void);
void tel__preempt_resume(void);

static struct sigaction old_act;
static bool installed;
static _Atomic bool active; /* requests may send the signal */
/* Statistics (tel__preempt_stats): our signals a running task got, and
 * how many of those found it where it could not be switched out. */
static _Atomic uint64_t n_handled, n_deferred, n_shed;

#ifdef PREEMPT_ASYNC

/* The program's own code: executable segments of the main executable,
 * minus Telar's. Written at install only. */
static struct {
    uintptr_t lo, hi;
} ranges[PREEMPT_MAX_RANGES];
static unsigned n_ranges;

/* Set by the linker when Telar's static library (renamed) is linked in. */
extern const char __start_tel_text[] __attribute__((weak));
extern const char __stop_tel_text[] __attribute__((weak));

/* Telar's own code, for the handler's "outside Telar" tests: tel_text when
 * Telar is linked statically, else the executable segment of the shared
 * object it is in (where the weak bounds above are both 0). Written at
 * install only. */
static uintptr_t tel_lo, tel_hi;

/* ------------------------------------------------------------------ */
/* At install: the save area and the code ranges                      */
/* ------------------------------------------------------------------ */

/* XSAVE's mask and size for what the OS enabled (XCR0), without AMX's
 * tile state (11 KiB, and only for threads that asked for it); FXSAVE
 * where there is no XSAVE. */
static void save_area_init(void)
{
    unsigned a, b, c, d;
    tel__preempt_has_xsave = 0;
    tel__preempt_xmask = 0;
    tel__preempt_xsize = 512 + 64 + 64;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) ||
        __get_cpuid_max(0, NULL) < 0xd)
        return;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    uint64_t mask = ((uint64_t)hi << 32 | lo) & ~((1ull << 17) | (1ull << 18));
    uint64_t size = 512 + 64; /* legacy area and header */
    for (unsigned i = 2; i < 64; i++) {
        if (!(mask & (1ull << i)))
            continue;
        __cpuid_count(0xd, i, a, b, c, d);
        if ((uint64_t)b + a > size)
            size = (uint64_t)b + a;
    }
    tel__preempt_xmask = mask;
    tel__preempt_xsize = (size + 63 + 64) & ~(uint64_t)63;
    tel__preempt_has_xsave = 1;
}

struct scan {
    uintptr_t self;   /* an address inside Telar */
    bool first;
    bool telar_in_exe; /* Telar is part of the main executable */
    uintptr_t exe_bias; /* the main executable's load address */
};

static int scan_one(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct scan *sc = arg;
    bool exe = sc->first;
    sc->first = false;
    if (exe)
        sc->exe_bias = info->dlpi_addr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        uintptr_t hi = lo + ph->p_memsz;
        if (sc->self >= lo && sc->self < hi) {
            sc->telar_in_exe = exe;
            tel_lo = lo; /* the shared object's; tel_text's if static */
            tel_hi = hi;
        }
        if (exe && n_ranges < PREEMPT_MAX_RANGES) {
            ranges[n_ranges].lo = lo;
            ranges[n_ranges].hi = hi;
            n_ranges++;
        }
    }
    return 0;
}

/* Remove [lo, hi) from the ranges (splitting one if needed). */
static bool cut(uintptr_t lo, uintptr_t hi)
{
    for (unsigned i = 0; i < n_ranges; i++) {
        uintptr_t rl = ranges[i].lo, rh = ranges[i].hi;
        if (hi <= rl || lo >= rh)
            continue;
        if (lo > rl && hi < rh) {
            if (n_ranges == PREEMPT_MAX_RANGES)
                return false;
            ranges[n_ranges].lo = hi;
            ranges[n_ranges].hi = rh;
            n_ranges++;
            ranges[i].hi = lo;
        } else if (lo > rl) {
            ranges[i].hi = lo;
        } else if (hi < rh) {
            ranges[i].lo = hi;
        } else {
            ranges[i].lo = ranges[i].hi = 0; /* all of it */
        }
    }
    return true;
}

static bool in_ranges(uintptr_t pc)
{
    for (unsigned i = 0; i < n_ranges; i++)
        if (pc >= ranges[i].lo && pc < ranges[i].hi)
            return true;
    return false;
}

/*
 * Cut the main executable's PLT sections (.plt, .plt.got, .plt.sec,
 * .iplt) from the ranges: their stubs are in the executable's code segment
 * but are the way every call to a shared library goes, Telar's own calls
 * included (memcpy, and in ASan builds the fiber-switch annotations in the
 * middle of a context switch). A signal that lands on a stub has not
 * interrupted the program's code. The section headers are read from
 * /proc/self/exe; false if they cannot be.
 */
static bool cut_plt(uintptr_t bias)
{
    bool ok = false;
    ElfW(Shdr) *sh = NULL;
    char *names = NULL;
    size_t sh_bytes = 0, names_bytes = 0;
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ElfW(Ehdr) eh;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_shentsize != sizeof(ElfW(Shdr)) || eh.e_shnum == 0 ||
        eh.e_shstrndx >= eh.e_shnum)
        goto out;
    sh_bytes = (size_t)eh.e_shnum * sizeof(ElfW(Shdr));
    if (!(sh = tel__mem_alloc(sh_bytes)) ||
        pread(fd, sh, sh_bytes, (off_t)eh.e_shoff) != (ssize_t)sh_bytes)
        goto out;
    const ElfW(Shdr) *st = &sh[eh.e_shstrndx];
    names_bytes = st->sh_size;
    if (names_bytes == 0 || names_bytes > (1u << 20) ||
        !(names = tel__mem_alloc(names_bytes + 1)) ||
        pread(fd, names, names_bytes, (off_t)st->sh_offset) !=
            (ssize_t)names_bytes)
        goto out;
    names[names_bytes] = '\0';
    ok = true;
    for (unsigned i = 0; i < eh.e_shnum && ok; i++) {
        if (!(sh[i].sh_flags & SHF_EXECINSTR) || sh[i].sh_name >= names_bytes)
            continue;
        const char *n = names + sh[i].sh_name;
        if (strncmp(n, ".plt", 4) == 0 || strcmp(n, ".iplt") == 0)
            ok = cut(bias + sh[i].sh_addr, bias + sh[i].sh_addr + sh[i].sh_size);
    }
out:
    if (sh)
        tel__mem_free(sh, sh_bytes);
    if (names)
        tel__mem_free(names, names_bytes + 1);
    close(fd);
    return ok;
}

/* The program's own code, or false if it cannot be told apart. */
static bool ranges_init(void)
{
    n_ranges = 0;
    tel_lo = tel_hi = 0;
    struct scan sc = {.self = (uintptr_t)(void *)tel__preempt_tramp,
                      .first = true};
    (void)dl_iterate_phdr(scan_one, &sc);
    if (n_ranges == 0)
        return false;
    if (sc.telar_in_exe) {
        /* Static: Telar's code must be one known section. */
        uintptr_t lo = (uintptr_t)__start_tel_text;
        uintptr_t hi = (uintptr_t)__stop_tel_text;
        if (!lo || !hi || hi <= lo || sc.self < lo || sc.self >= hi)
            return false;
        if (!cut(lo, hi))
            return false;
        tel_lo = lo;
        tel_hi = hi;
    }
    if (tel_hi <= tel_lo)
        return false; /* Telar's own code not found */
    if (!cut_plt(sc.exe_bias))
        return false;
    /* malloc and the pthread locks must not be the program's own code. */
    static const char *const libc_fns[] = {"malloc", "free",
                                           "pthread_mutex_lock"};
    for (size_t i = 0; i < TEL_ARRAY_LEN(libc_fns); i++) {
        void *f = dlsym(RTLD_DEFAULT, libc_fns[i]);
        if (!f || in_ranges((uintptr_t)f))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* The handler                                                         */
/* ------------------------------------------------------------------ */

/* Not ours: what would have happened without Telar (SIGURG's default is
 * to ignore it). */
static void chain(int sig, siginfo_t *si, void *uc)
{
    if (old_act.sa_flags & SA_SIGINFO) {
        if (old_act.sa_sigaction)
            old_act.sa_sigaction(sig, si, uc);
        return;
    }
    if (old_act.sa_handler != SIG_DFL && old_act.sa_handler != SIG_IGN)
        old_act.sa_handler(sig);
}

/* Whether pc is a `syscall` instruction: a system call the signal
 * interrupted and the kernel restarts (SA_RESTART) after the handler. Code
 * pages are readable on x86-64. */
static bool at_syscall(uintptr_t pc)
{
    const unsigned char *ip = (const unsigned char *)pc;
    return ip[0] == 0x0f && ip[1] == 0x05;
}

/* The stack pointer the trampoline is entered with, if the task t,
 * interrupted at pc with stack pointer sp, may be switched out there;
 * else 0 (the rule at the top of the file). */
static uintptr_t safe_entry(struct sched *s, struct task *t, uintptr_t pc,
                            uintptr_t sp)
{
    /* s->hold: a lookup window (tel__sched_hold) that called into the
     * program's code (its own memcpy, say) must not switch there. */
    if (!t->stack || tel__locks_held != 0 || s->hold != 0 ||
        (t->flags & (TASK_NOPRE_MASK | TASK_F_NOASYNC)))
        return 0;
    if (!in_ranges(pc))
        return 0;
    /* A restarted raw system call: its restart is this thread's. */
    if (at_syscall(pc))
        return 0;
    uintptr_t base = (uintptr_t)t->stack;
    uintptr_t top = base + tel__task_stack_size(t);
    uintptr_t need = PREEMPT_RED_ZONE + 8 + 16 * 8 + tel__preempt_xsize +
                     PREEMPT_ROOM;
    if (sp > top || sp < base || sp - base < need)
        return 0;
    /* The handler must be on the signal stack, not below sp. */
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (here >= base && here <= top)
        return 0;
    return sp - PREEMPT_RED_ZONE - 8;
}

/* Store the return slot; the task's stack below its red zone is ours to
 * write (ASan may still mark it as an old frame's redzone). */
#ifdef TEL_ASAN
__attribute__((no_sanitize("address")))
#endif
static void put_slot(uintptr_t at, uintptr_t pc)
{
    uint64_t v = pc;
    __builtin_memcpy((void *)at, &v, sizeof v); /* sp may be unaligned */
}

/*
 * Held sends (core/mailbox.c, "Batched sends"): at any of our signals, if
 * the running task holds a batch and the thread is outside Telar's code
 * (none of Telar's work is half done under us: the batch is only changed
 * there, and a send's copy, which may call memcpy, reads it after a signal
 * fence), no Telar lock is held, no lookup window is open and the backlog
 * is not growing, push it here. That answers a receiver's nudge at once
 * wherever the sender computes or blocks (its own code, a library, the
 * vDSO, a system call), and a long run's or a stuck scheduler's signal
 * too. A sender interrupted inside Telar's code pushes at its next
 * batched send (ob_flush) or at its next reduction point (a nudge zeroes
 * its slice), at the latest at the watchdog's next signal for its run.
 *
 * The nudge's flag (ob_nudge) and the watchdog's count (preempt_sig) each
 * send a signal only when none of theirs is on its way, but they share
 * the signal: a handler run may take both, and the other's signal, still
 * on its way, then finds neither and goes to the action that was there
 * before the run, as a SIGURG that is not ours would. Such an action must
 * already cope with spurious SIGURGs (the signal's default is to ignore).
 */
static void push_held(struct sched *s, struct task *t, uintptr_t pc,
                      bool nudge)
{
    if (!(t->flags & TASK_F_OB) ||
        !atomic_load_explicit(&s->ob_n, memory_order_relaxed))
        return;
    if (!(pc >= tel_lo && pc < tel_hi) && tel__locks_held == 0 &&
        s->hold == 0 && !s->no_shed)
        tel__sched_close_sends_async(s);
    else if (nudge)
        s->reds = 0; /* inside Telar: its next reduction point closes it */
}

static void on_preempt(int sig, siginfo_t *si, void *ucv)
{
    int saved_errno = errno;
    struct sched *s = tel__sched_self();
    uint32_t want = s ? atomic_exchange_explicit(&s->preempt_sig, 0,
                                                 memory_order_acquire)
                      : 0;
    bool nudge = s && atomic_load_explicit(&s->ob_nudge,
                                           memory_order_relaxed) &&
                 atomic_exchange_explicit(&s->ob_nudge, 0,
                                          memory_order_acquire);
    if (!want && !nudge) {
        chain(sig, si, ucv);
        errno = saved_errno;
        return;
    }
    struct task *t = s->cur;
    if (!t) { /* parked, or between tasks: nothing runs too long */
        errno = saved_errno;
        return;
    }
    ucontext_t *uc = ucv;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    push_held(s, t, pc, nudge);
    if (!want) { /* only a nudge: the task runs on */
        errno = saved_errno;
        return;
    }
    atomic_fetch_add_explicit(&n_handled, 1, memory_order_relaxed);
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t entry = safe_entry(s, t, pc, sp);
    if (entry) {
        put_slot(entry, pc);
        uc->uc_mcontext.gregs[REG_RSP] = (greg_t)entry;
        uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)tel__preempt_tramp;
    } else {
        /* Yield at the next reduction point instead. */
        atomic_fetch_add_explicit(&n_deferred, 1, memory_order_relaxed);
        atomic_store_explicit(&s->preempt_want, t, memory_order_relaxed);
        s->reds = 0;
        /* Outside Telar's code, holding no Telar lock: this thread is
         * not in the middle of any of Telar's own work. */
        bool outside = !(pc >= tel_lo && pc < tel_hi) && tel__locks_held == 0;
        /* A long run follows a park this thread has not published yet
         * (scheduler.c, "Lazy parks"): publish it, so that another
         * thread's message wakes that task elsewhere. Outside Telar's
         * code the thread is not between reading s->lazy and clearing it
         * (that window calls nothing). */
        if (s->lazy && outside)
            tel__sched_publish_lazy(s);
        /* Outside Telar's code, with no Telar lock and no lookup window
         * open (tel__sched_hold): nothing here holds a pointer it looked
         * up without a reference, so this is a quiescent state
         * (sched/epoch.h), as a pick is. A thread stuck in a long system
         * call (a raw read(), a sleep) otherwise holds back the reuse of
         * every ended process's block, on every scheduler, until its run
         * ends; the watchdog signals it while it is behind (sysmon.c). A
         * match function (TASK_F_NOASYNC) runs in the middle of a receive:
         * not announced there, to keep the rule simple. */
        if (outside && s->hold == 0 && !(t->flags & TASK_F_NOASYNC))
            tel__epoch_quiescent(&s->ep);
        /* Stuck (the watchdog said so) in a system call: what only this
         * thread may take (runnext, the wake lane, the backlog, the
         * injection queue) goes to the others now, when this thread is
         * not in the middle of changing it: interrupted at a system call
         * the kernel will restart (blocked in it), not in Telar's code,
         * no Telar lock held, not growing its backlog (the one owner-only
         * change that calls out, to the allocator). Only there: a thread
         * stuck elsewhere (a long library call, a tel_preempt_disable
         * section) runs and may be inside Telar's code further up. */
        if (atomic_load_explicit(&s->stuck, memory_order_relaxed) &&
            !s->no_shed && outside &&
            at_syscall(pc)) {
            atomic_fetch_add_explicit(&n_shed, 1, memory_order_relaxed);
            tel__sched_shed(s);
        }
    }
    errno = saved_errno;
}

/* The trampoline's C half, on the task's stack, every register saved.
 * errno is the thread's, and other processes run on this thread (and on
 * the one the task resumes on) meanwhile: the interrupted code may be
 * between a call that set errno and its test of it, so its value goes
 * with the task. */
void tel__preempt_resume(void)
{
    int e = errno;
    (void)tel__sched_preempt_async(tel__sched_self());
    errno = e;
}

#endif /* PREEMPT_ASYNC */

/* ------------------------------------------------------------------ */
/* Install, request                                                    */
/* ------------------------------------------------------------------ */

int tel__preempt_install(bool enabled)
{
    atomic_store_explicit(&active, false, memory_order_relaxed);
    atomic_store_explicit(&n_handled, 0, memory_order_relaxed);
    atomic_store_explicit(&n_deferred, 0, memory_order_relaxed);
    atomic_store_explicit(&n_shed, 0, memory_order_relaxed);
    if (!enabled)
        return 0;
#ifdef PREEMPT_ASYNC
    save_area_init();
    if (!ranges_init())
        return 0; /* cannot tell the program's code apart: off */
    if (sigaction(PREEMPT_SIG, NULL, &old_act) != 0)
        return TEL_ESYS;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_preempt;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(PREEMPT_SIG, &sa, NULL) != 0)
        return TEL_ESYS;
    installed = true;
    atomic_store_explicit(&active, true, memory_order_release);
    return 0;
#else
    return 0;
#endif
}

void tel__preempt_uninstall(void)
{
    atomic_store_explicit(&active, false, memory_order_release);
    if (!installed)
        return;
    (void)sigaction(PREEMPT_SIG, &old_act, NULL);
    installed = false;
}

bool tel__preempt_active(void)
{
    return atomic_load_explicit(&active, memory_order_acquire);
}

bool tel__preempt_request(struct sched *s)
{
    if (!atomic_load_explicit(&active, memory_order_acquire))
        return false;
    /* One signal on its way at a time: the handler zeroes the count. A
     * signal the handler could not match to this scheduler (the thread
     * had not set tel__tls_sched yet, or no longer has) leaves it
     * nonzero, so every 8th request sends again. */
    uint32_t prev = atomic_fetch_add_explicit(&s->preempt_sig, 1,
                                              memory_order_acq_rel);
    if (prev != 0 && (prev & 7) != 0)
        return true;
    if (pthread_kill(s->thread, PREEMPT_SIG) != 0) {
        atomic_store_explicit(&s->preempt_sig, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

bool tel__preempt_nudge(struct sched *s)
{
    if (!atomic_load_explicit(&active, memory_order_acquire))
        return false;
    /* One on its way at a time: the handler takes the flag first. */
    if (atomic_exchange_explicit(&s->ob_nudge, 1, memory_order_acq_rel))
        return true;
    if (pthread_kill(s->thread, PREEMPT_SIG) != 0) {
        atomic_store_explicit(&s->ob_nudge, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

void tel__preempt_stats(uint64_t *handled, uint64_t *deferred)
{
    *handled = atomic_load_explicit(&n_handled, memory_order_relaxed);
    *deferred = atomic_load_explicit(&n_deferred, memory_order_relaxed);
}

uint64_t tel__preempt_n_shed(void)
{
    return atomic_load_explicit(&n_shed, memory_order_relaxed);
}
