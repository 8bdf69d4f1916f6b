/*
 * telar.h: the one public header of Telar, Erlang-style green processes for C.
 *
 * A Telar program calls tel_run() with a first process function. The runtime
 * starts one scheduler thread per core, runs that function as a process, and
 * returns when it exits. Processes are stackful (plain blocking-style C), talk
 * only through copied messages, and are preempted after a slice of
 * "reductions" (every runtime call costs some), so one busy process never
 * stalls the others.
 *
 * Conventions for every call below:
 *   - A call returns 0 or a negative TEL_E* code (tel_strerror() names it) and
 *     gives results through out-parameters. It never asserts on bad input.
 *   - "Context" says where the call may be made: "inside a process" (from code
 *     running as a Telar process), "any thread" (also from threads the runtime
 *     does not own, while tel_run is active), and whether it may yield (switch
 *     to another process before it returns).
 *   - "Ownership" says who frees what.
 */
#ifndef TELAR_H
#define TELAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__cplusplus)
#define TEL_NORETURN [[noreturn]]
#else
#define TEL_NORETURN _Noreturn
#endif

#if defined(__GNUC__)
#define TEL_API __attribute__((visibility("default")))
#define TEL_NODISCARD __attribute__((warn_unused_result))
#else
#define TEL_API
#define TEL_NODISCARD
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* One list: the enum, tel_strerror() and tel_errname() are generated from it. */
#define TEL_ERRNO_MAP(X)                                                      \
    X(EINVAL, -1, "invalid argument")                                         \
    X(ENOPROC, -2, "no such process (dead or stale pid)")                     \
    X(ENOTPROC, -3, "must be called from inside a process")                   \
    X(ENOMEM, -4, "out of memory")                                            \
    X(ELIMIT, -5, "a configured limit was reached")                           \
    X(ETIMEDOUT, -6, "timed out")                                             \
    X(ENOENT, -7, "no such timer, name or entry")                             \
    X(ESHUTDOWN, -8, "the runtime is shutting down or not running")           \
    X(EBUSY, -9, "the runtime is already running")                            \
    X(ESYS, -10, "the operating system refused a resource")                   \
    X(EEXIST, -11, "the name is taken, or the process already has a name")    \
    X(EDOWN, -12, "the process exited before it replied")                     \
    X(ERUNNING, -13, "the child is running")                                  \
    X(ERESTARTING, -14, "the child is being restarted")                       \
    X(EPRESENT, -15, "a child with that id is present (not running)")         \
    X(EALREADY, -16, "a child with that id is already running")               \
    X(EINIT, -17, "the new process's start or init failed")

enum {
#define TEL__ERRNO_ENUM(name, val, msg) TEL_##name = (val),
    TEL_ERRNO_MAP(TEL__ERRNO_ENUM)
#undef TEL__ERRNO_ENUM
};

/*
 * tel_strerror: a constant English sentence for a TEL_E* code ("success" for
 * 0, "unknown error" for anything else). tel_errname: its name, "TEL_EINVAL".
 * Context: any thread, with or without a running runtime.
 * Ownership: the strings are static; never free them.
 */
TEL_API const char *tel_strerror(int err);
TEL_API const char *tel_errname(int err);

/* ------------------------------------------------------------------------ */
/* Types                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * A process identifier. It carries a generation, so the pid of an exited
 * process never names a later one, even when its slot is reused. 0 is never
 * a valid pid.
 */
typedef uint64_t tel_pid_t;

/*
 * Why a process ended. TEL_NORMAL is 0, the runtime's own reasons are
 * negative, and user reasons are positive.
 */
typedef int64_t tel_reason_t;

#define TEL_REASON_MAP(X)                                                     \
    X(NORMAL, 0, "normal")                                                    \
    X(KILLED, -1, "killed")                                                   \
    X(SHUTDOWN, -2, "shutdown")                                               \
    X(NOPROC, -3, "noproc")                                                   \
    X(CRASHED, -4, "crashed")                                                 \
    X(STACK_OVERFLOW, -5, "stack_overflow")                                   \
    X(KILL, -6, "kill")                                                       \
    X(NOMEM, -7, "nomem")

enum {
#define TEL__REASON_ENUM(name, val, str) TEL_##name = (val),
    TEL_REASON_MAP(TEL__REASON_ENUM)
#undef TEL__REASON_ENUM
};

/* The body of a process. Returning from it is tel_exit(TEL_NORMAL). */
typedef void (*tel_fn)(void *arg);

/*
 * A received message. The user reads these fields; the runtime keeps private
 * fields after them, so never copy the struct to keep it: keep the pointer
 * and give it back with tel_msg_free().
 *   from: the sending process, or 0 when a thread outside the runtime sent it.
 *   tag:  the sender's tag, free for the application to use.
 *   size, data: a private copy of the payload; data is aligned for any type,
 *         writable, and NULL when size is 0.
 */
typedef struct tel_msg {
    tel_pid_t from;
    uint64_t tag;
    size_t size;
    void *data;
} tel_msg_t;

/*
 * Runtime configuration; a zero-initialised struct (or NULL) means defaults.
 *   schedulers:    scheduler threads; 0 means one per core (hwloc, honouring
 *                  the process's CPU affinity mask). At most 1024.
 *   stack_size:    bytes of stack reserved per process (rounded up to pages);
 *                  0 means TEL_DEFAULT_STACK_SIZE. Only touched pages are
 *                  resident. At least TEL_MIN_STACK_SIZE, at most 256 MiB.
 *                  A process that runs off its stack (into the guard below
 *                  it, or within 4 KiB of its end when it switches out) is
 *                  ended alone with TEL_STACK_OVERFLOW; see tel_run.
 *   max_processes: live processes at once; 0 means TEL_DEFAULT_MAX_PROCESSES.
 *                  At most TEL_MAX_MAX_PROCESSES.
 *   reductions:    the slice a process may spend before it is preempted; 0
 *                  means TEL_DEFAULT_REDUCTIONS.
 *   blocking_threads: most threads the blocking pool (tel_blocking) runs at
 *                  once; 0 means TEL_DEFAULT_BLOCKING_THREADS. At most
 *                  TEL_MAX_BLOCKING_THREADS. The pool starts empty, grows
 *                  on demand and shrinks when idle.
 *   watchdog_us:   how long a process may run without a switch before the
 *                  watchdog acts on it (see "Preemption"); 0 means
 *                  TEL_DEFAULT_WATCHDOG_US. At least TEL_MIN_WATCHDOG_US,
 *                  at most TEL_MAX_WATCHDOG_US.
 *   flags:         TEL_CFG_* bits; 0 for the defaults.
 */
typedef struct tel_config {
    unsigned schedulers;
    size_t stack_size;
    uint32_t max_processes;
    uint32_t reductions;
    unsigned blocking_threads;
    uint32_t watchdog_us;
    uint32_t flags;
} tel_config_t;

/* tel_config_t.flags */
#define TEL_CFG_NO_ASYNC_PREEMPT 0x1u /* never interrupt a process with a signal */
#define TEL_CFG_NO_WATCHDOG 0x2u      /* no watchdog thread (implies the above) */

#define TEL_INFINITY (-1)
#define TEL_DEFAULT_STACK_SIZE ((size_t)64 * 1024)
#define TEL_MIN_STACK_SIZE ((size_t)16 * 1024)
#define TEL_DEFAULT_MAX_PROCESSES 4194304u
#define TEL_MAX_MAX_PROCESSES 134217728u
#define TEL_DEFAULT_REDUCTIONS 4000u
#define TEL_DEFAULT_BLOCKING_THREADS 64u
#define TEL_MAX_BLOCKING_THREADS 4096u
#define TEL_DEFAULT_WATCHDOG_US 1000u
#define TEL_MIN_WATCHDOG_US 100u
#define TEL_MAX_WATCHDOG_US 10000000u

/* ------------------------------------------------------------------------ */
/* The runtime                                                               */
/* ------------------------------------------------------------------------ */

/*
 * tel_run: start the schedulers, run main_fn(arg) as the first process, and
 * return when that process exits. Every other process still alive is then
 * ended with TEL_SHUTDOWN (its stack is discarded; no code of it runs) and
 * every byte the runtime allocated is freed. tel_run may be called again,
 * one run after another, in the same program. The calling thread serves as
 * the first scheduler while the runtime runs; its CPU affinity is restored
 * before tel_run returns.
 * Signals: while it runs, tel_run handles SIGSEGV, SIGBUS, SIGFPE, SIGILL
 *   and SIGABRT (each scheduler thread gets an alternate signal stack). A
 *   fault of a process's own code ends that process alone, and its links
 *   and monitors fire as for any exit: with TEL_STACK_OVERFLOW if it ran
 *   off its stack, else TEL_CRASHED. That is a bad memory access, an
 *   integer division by zero, an illegal instruction (__builtin_trap), or
 *   abort() (a SIGABRT the thread raised itself), on a scheduler thread,
 *   while the stack pointer is on the running process's stack, including
 *   inside a Telar call the process made (a bad pointer given to tel_send,
 *   tel_recv or a match callback; the message being copied or matched is
 *   then lost). Everything else goes to the handler installed before
 *   tel_run (or the default action, which ends the program): faults on
 *   threads that are not schedulers (the caller's, before or after the
 *   run, and threads of its own), in the scheduler itself, while Telar
 *   holds one of its locks, Telar's own panics, and signals sent with
 *   kill() or sigqueue(). A process ended inside a C library call (malloc,
 *   stdio) leaves that call's locks held, and what it had allocated and
 *   not freed (memory, received messages) is lost. A SIGABRT another
 *   thread sends a scheduler thread with pthread_kill looks like abort()
 *   and ends the process running there. Unless turned off, SIGURG is
 *   handled too, for asynchronous preemption (see "Preemption"). The
 *   previous handlers and signal stacks are restored before tel_run
 *   returns.
 * Context: any thread that is not a Telar process; blocks until main_fn's
 *   process exits.
 * Returns: 0 when main_fn's process exited (whatever its reason).
 * Errors: TEL_EINVAL if main_fn is NULL or a cfg field is out of range;
 *   TEL_EBUSY if a runtime is already running (another thread's tel_run, or a
 *   call from inside a process); TEL_ENOMEM if the runtime's memory could not
 *   be had, including a stack for main_fn's process (then main_fn never
 *   ran); TEL_ESYS if the OS refused a thread, a topology or a mapping.
 * Ownership: cfg is read during the call only; arg is passed to main_fn.
 */
TEL_API TEL_NODISCARD int tel_run(const tel_config_t *cfg, tel_fn main_fn,
                                  void *arg);

/* ------------------------------------------------------------------------ */
/* Processes                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * tel_spawn: start fn(arg) as a new process. From inside a process the child
 * is put first in line on the caller's scheduler (it runs soon, in the
 * caller's slice); from another thread it is queued on a scheduler and one is
 * woken. Costs reductions; the caller may be preempted before it returns.
 * Context: any thread while the runtime runs; may yield inside a process.
 * Errors: TEL_EINVAL if fn is NULL; TEL_ELIMIT if max_processes are alive;
 *   TEL_ENOMEM if no stack or control block could be had (nothing leaks);
 *   TEL_ESHUTDOWN if no runtime is running or it is shutting down.
 * Ownership: out (may be NULL) receives the child's pid; arg belongs to the
 *   caller, and the runtime never frees it.
 */
TEL_API TEL_NODISCARD int tel_spawn(tel_pid_t *out, tel_fn fn, void *arg);

/*
 * tel_self: the calling process's pid, or 0 outside a process.
 * Context: any thread; never yields.
 */
TEL_API tel_pid_t tel_self(void);

/*
 * tel_yield: give up the rest of the slice; the caller goes behind the other
 * runnable processes of its scheduler.
 * Context: inside a process; yields.
 * Errors: TEL_ENOTPROC outside a process.
 */
TEL_API int tel_yield(void);

/*
 * tel_reduce: count n reductions of work against the caller's slice. When the
 * slice is spent the caller is preempted here and goes behind the others; a
 * loop that calls tel_reduce(1) never keeps its scheduler's other processes
 * waiting longer than one slice.
 * Context: inside a process; may yield.
 * Errors: TEL_ENOTPROC outside a process.
 */
TEL_API int tel_reduce(uint32_t n);

/*
 * Preemption. A process is switched out at a reduction point (any Telar
 * call that costs reductions, tel_reduce) once its slice is spent. A
 * process that runs long without reaching one (a pure C loop) is also
 * interrupted asynchronously: when the watchdog sees a scheduler run one
 * process longer than watchdog_us (tel_config_t), it sends that scheduler
 * thread SIGURG. The handler switches the process out right where it was
 * interrupted (every register, the FP/SIMD state included, is saved on its
 * stack and restored when it resumes, possibly on another scheduler
 * thread) only if all of these hold:
 *   - the interrupted instruction is in the program's own code: the main
 *     executable, not Telar, and not any shared library (the C library, so
 *     never inside malloc, stdio or a pthread call; libstdc++, libm, the
 *     vDSO, the dynamic loader, sanitizer runtimes, nor code of no object,
 *     such as JIT code);
 *   - Telar holds none of its locks on that thread;
 *   - the process has not called tel_preempt_disable (or has called
 *     tel_preempt_enable as many times since);
 *   - its stack has room for the save area (about 9 KiB plus 1-3 KiB of
 *     FP/SIMD state below the stack pointer).
 * Otherwise the process yields at its next reduction point instead. Code
 * in a shared library the program loads is never interrupted there.
 * A normal process stopped either way (it ran past watchdog_us without a
 * reduction point) is demoted: it runs at the low level (one pick in nine
 * while normal processes wait) until it next waits (a receive, a sleep)
 * or ends a slice by its own reductions, so C loops that run for
 * milliseconds never keep cooperative processes waiting behind them.
 * tel_set_priority and tel_set_cpu_heavy end a demotion. If
 * the program's code cannot be told apart (Telar linked statically without
 * its renamed code section, libc linked statically, or malloc defined by
 * the executable itself), no process is interrupted in this run.
 * What user code must do: a process that holds a lock of its own (a
 * pthread mutex, a spinlock, anything another process on the same thread
 * could wait for) across code that may be interrupted brackets that
 * section with tel_preempt_disable / tel_preempt_enable, or another process
 * of the same scheduler may block its thread on the lock forever. A
 * process resumed on another thread sees that thread's thread-local
 * variables, as after any call that may yield (errno's value is carried
 * over to the new thread, but code the compiler made keep the address of
 * a thread-local, errno's included, uses the old thread's). Exit signals (tel_kill)
 * still take effect at the next Telar call only.
 * Signals and system calls: the handler is installed with SA_RESTART and
 * SA_ONSTACK for the length of tel_run (the previous action is restored
 * when it returns; a SIGURG not sent by Telar goes to it). Telar's own
 * calls never fail with EINTR because of it. A raw system call the kernel
 * never restarts (nanosleep, poll, epoll_wait, a timed futex wait) made
 * directly on a scheduler thread may return EINTR, and only while its
 * process has run longer than watchdog_us (twice, then at most once per
 * 20 ms while ended processes' memory waits for that thread), or while
 * it holds sends a waiting receiver asks for (once per such request; see
 * "Delivery" at tel_send): use tel_blocking to block.
 * Embedders must not use SIGURG on Telar's threads while tel_run runs.
 * Turned off by TEL_CFG_NO_ASYNC_PREEMPT or TEL_CFG_NO_WATCHDOG (then the
 * handler is not installed), and always in ThreadSanitizer builds.
 *
 * Stuck schedulers. A process the signal cannot switch out (blocked in a
 * system call not made through tel_blocking, inside a library, or in a
 * tel_preempt_disable section) keeps its scheduler thread: about
 * watchdog_us * 1.5 into such a run the scheduler is marked stuck and
 * what is queued there goes to the other schedulers (its timers fire
 * there too). When every scheduler is stuck, a spare scheduler thread
 * (started the first time it is needed, not pinned) runs the other
 * processes until a scheduler is free again, then hands them back and
 * sleeps. When a process gets stuck on that spare too, another spare
 * takes over, and so on up to 8 spares (fewer past 1016 schedulers);
 * only a process that gets stuck on the last of them waits for a thread
 * to come free. No spare with TEL_CFG_NO_WATCHDOG. The control blocks of
 * processes that end are reused once every scheduler has switched since
 * or been seen outside Telar's code (sched/epoch.h): the watchdog's
 * signal checks a stuck scheduler for that at every sample, so a process
 * blocked in the program's own system call or library code holds no
 * memory back. One stuck inside Telar's code (a message copy that runs
 * for milliseconds), or anywhere while asynchronous preemption is off,
 * holds back that reuse until its run ends.
 */

/*
 * tel_preempt_disable / tel_preempt_enable: bracket a section in which the
 * calling process must not be interrupted asynchronously (see
 * "Preemption"); they nest up to 7 deep. Reduction points still preempt
 * as usual in between: a section that calls Telar may yield there. When
 * the last enable ends the section and a preemption was asked for
 * meanwhile, the process yields in tel_preempt_enable.
 * Context: inside a process; tel_preempt_disable never yields,
 *   tel_preempt_enable may yield.
 * Errors: TEL_ENOTPROC outside a process; TEL_ELIMIT (disable) if already
 *   7 deep; TEL_EINVAL (enable) without a matching disable.
 */
TEL_API int tel_preempt_disable(void);
TEL_API int tel_preempt_enable(void);

/*
 * tel_exit: end the calling process with reason. Its stack and control block
 * go back to their pools and its unread messages are freed.
 * Context: inside a process; never returns. Called outside a process it is a
 *   programming error that cannot be reported through a return value: the
 *   program is aborted with a message on stderr.
 */
TEL_NORETURN TEL_API void tel_exit(tel_reason_t reason);

/*
 * tel_hibernate: Erlang's hibernate/3. The caller gives up its stack and
 * waits for its next message holding only its control block, pid slot and
 * mailbox (about 150 bytes on x86-64). When a message arrives (or at once, if one already
 * waits, skipped ones included), fn(arg) starts on a fresh stack: the old
 * call stack is gone, so nothing on it may be used afterwards, and fn
 * returning ends the process as any process function does. The message is
 * not taken: fn receives it. Hibernating ends the caller's slice.
 * Context: inside a process; on success it does not return.
 * Errors: TEL_EINVAL if fn is NULL; TEL_ENOTPROC outside a process. If no
 *   stack can be had when it wakes, the process ends with reason TEL_NOMEM.
 * Ownership: arg is passed to fn untouched; it must outlive the wait (it
 *   must not point into the old stack).
 */
TEL_API int tel_hibernate(tel_fn fn, void *arg);

/*
 * tel_is_alive: whether pid names a live process (false for 0, stale or
 * malformed pids, and when no runtime runs).
 * Context: any thread; never yields.
 */
TEL_API bool tel_is_alive(tel_pid_t pid);

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * tel_send: copy size bytes at data into a message with tag and put it in
 * to's mailbox. It never blocks, is lock-free for the sender, and keeps order
 * between each sender and receiver. A message to a process that has exited
 * is dropped and the call returns 0 (Erlang semantics). Costs reductions.
 * Context: any thread while the runtime runs (from a thread outside the
 *   runtime the message's from is 0); may yield inside a process.
 * Errors: TEL_EINVAL if to is 0 or data is NULL with size > 0; TEL_ENOMEM if
 *   the copy could not be allocated (nothing is enqueued); TEL_ESHUTDOWN if no
 *   runtime is running.
 * Ownership: data stays the caller's; the receiver gets its own copy.
 * Delivery: as in Erlang, asynchronous. A process that keeps sending to
 *   one receiver that has unread messages (a flooded server or sink) may
 *   hold its next messages to it (up to 64) and put them in the mailbox
 *   together, which spares the receiver's CPU a cache-line exchange per
 *   message. They go in when there are 64, when it sends to anyone else,
 *   sends a signal or spawns, and when it yields, waits, is preempted or
 *   ends. When the receiver finds its mailbox empty while they are held,
 *   it asks the sender's scheduler for them: the sender's thread gets
 *   the watchdog's signal, whose handler puts them in wherever the sender
 *   is (its own code, a library, a system call; inside Telar's own
 *   code, at its next reduction point), without preempting it.
 *   So a receiver does not wait on held messages, and order per sender
 *   is kept. Nothing is held where that signal is off
 *   (TEL_CFG_NO_ASYNC_PREEMPT, TEL_CFG_NO_WATCHDOG, ThreadSanitizer
 *   builds). tel_sched_stats counts send_batches and send_nudges.
 */
TEL_API TEL_NODISCARD int tel_send(tel_pid_t to, uint64_t tag,
                                   const void *data, size_t size);

/*
 * tel_recv: take the oldest message from the caller's mailbox, waiting up to
 * timeout_ms milliseconds for one (TEL_INFINITY: forever; 0: do not wait).
 * Context: inside a process; may yield.
 * Errors: TEL_EINVAL if out is NULL or timeout_ms < -1; TEL_ENOTPROC outside
 *   a process; TEL_ETIMEDOUT if no message came in time (*out is NULL);
 *   TEL_ENOMEM if it had to wait with a timeout and no timer could be
 *   allocated (*out is NULL; the mailbox is unchanged).
 * Ownership: *out belongs to the caller, who frees it with tel_msg_free().
 *   A receive that returns a message does not yield on the way out (it
 *   meets a spent slice or an exit signal before it takes one), so a
 *   process killed meanwhile never loses it; a process killed later,
 *   while it holds messages it has not freed, loses them (free a message
 *   before the next call that may yield, or keep it where others can
 *   free it).
 */
TEL_API TEL_NODISCARD int tel_recv(tel_msg_t **out, int64_t timeout_ms);

/*
 * tel_recv_match: selective receive. Take the oldest message for which
 * match(m, ctx) is true, leaving the others in their order for later
 * receives; wait up to timeout_ms for one. Within one call, messages already
 * rejected are never shown to match again: each wake-up scans only the new
 * arrivals. match runs on the caller's stack and must not call Telar.
 * Context: inside a process; may yield.
 * Errors: TEL_EINVAL if out or match is NULL or timeout_ms < -1;
 *   TEL_ENOTPROC outside a process; TEL_ETIMEDOUT if no match came in time;
 *   TEL_ENOMEM as tel_recv.
 * Ownership: as tel_recv; ctx is passed to match untouched.
 */
TEL_API TEL_NODISCARD int tel_recv_match(tel_msg_t **out,
                                         bool (*match)(const tel_msg_t *m,
                                                       void *ctx),
                                         void *ctx, int64_t timeout_ms);

/*
 * tel_msg_free: free a message returned by tel_recv or tel_recv_match. NULL
 * is ignored.
 * Context: any thread, even after the runtime stopped.
 */
TEL_API void tel_msg_free(tel_msg_t *m);

/* ------------------------------------------------------------------------ */
/* Time                                                                      */
/* ------------------------------------------------------------------------ */

/*
 * tel_sleep: suspend the caller for at least ms milliseconds; messages that
 * arrive meanwhile wait in the mailbox. tel_sleep(0) yields.
 * Context: inside a process; yields.
 * Errors: TEL_EINVAL if ms < 0; TEL_ENOTPROC outside a process; TEL_ENOMEM
 *   if no timer could be allocated (it returns at once).
 */
TEL_API int tel_sleep(int64_t ms);

/*
 * tel_send_after: after ms milliseconds, send the message (tag, a copy of
 * data) to `to`, as tel_send would; its from is the caller (0 outside a
 * process). The copy is taken now. If `to` has exited by then the message is
 * dropped.
 * Context: any thread while the runtime runs; never yields.
 * Errors: TEL_EINVAL if to is 0, ms < 0, or data is NULL with size > 0;
 *   TEL_ENOMEM; TEL_ESHUTDOWN if no runtime is running.
 * Ownership: timer_out (may be NULL) receives an id for tel_cancel_timer;
 *   data stays the caller's.
 */
TEL_API TEL_NODISCARD int tel_send_after(uint64_t *timer_out, int64_t ms,
                                         tel_pid_t to, uint64_t tag,
                                         const void *data, size_t size);

/*
 * tel_cancel_timer: cancel a tel_send_after timer that has not fired; its
 * message is never sent and its copy is freed.
 * Context: any thread while the runtime runs; never yields.
 * Errors: TEL_ENOENT if the timer already fired, was cancelled, or never
 *   existed; TEL_ESHUTDOWN if no runtime is running.
 */
TEL_API int tel_cancel_timer(uint64_t timer);

/* ------------------------------------------------------------------------ */
/* Links, monitors and exit signals (Erlang's semantics)                     */
/* ------------------------------------------------------------------------ */

/*
 * Tags of the messages the runtime itself sends. Applications must not use
 * tags at or above TEL_TAG_SYSTEM for their own meanings (sending them is
 * allowed, as forging an 'EXIT' tuple is in Erlang).
 *   TEL_TAG_EXIT: an exit signal turned into a message because the receiver
 *     traps exits; data is a tel_exit_info_t.
 *   TEL_TAG_DOWN: a monitor fired; data is a tel_down_info_t.
 */
#define TEL_TAG_SYSTEM UINT64_C(0xFFFFFFFFFFFFFF00)
#define TEL_TAG_EXIT (TEL_TAG_SYSTEM + 1)
#define TEL_TAG_DOWN (TEL_TAG_SYSTEM + 2)
#define TEL_TAG_LONG_SCHEDULE (TEL_TAG_SYSTEM + 3) /* see tel_system_monitor */

typedef struct tel_exit_info {
    tel_pid_t pid;       /* the process the signal came from */
    tel_reason_t reason; /* its reason */
} tel_exit_info_t;

typedef struct tel_down_info {
    uint64_t ref;        /* the monitor's reference */
    tel_pid_t pid;       /* the monitored process */
    tel_reason_t reason; /* why it ended; TEL_NOPROC if it was not alive */
} tel_down_info_t;

/*
 * Process priorities, BEAM's four levels. The zero value is normal. Each
 * scheduler runs, of the processes ready on it:
 *   max    before any other level;
 *   high   before normal and low (max and high processes that never wait
 *          keep lower levels from running on their scheduler, as in BEAM);
 *   normal round-robin, one slice each;
 *   low    once per 8 normal slices while it waits (so normal work cannot
 *          starve it, and it cannot take more than 1 slice in 9 from
 *          normal work), but after the processes just woken (at most 8
 *          of them in a row), and whenever no normal process is ready.
 * A level applies however the process became ready (spawned, woken by a
 * message from a process or another thread, by its timer, after a yield).
 * A process of a higher level does not interrupt a running one: it runs at
 * the next switch, at most a slice later. An idle scheduler takes a max or
 * high process queued on a busy one before it takes normal work. A new
 * level set with tel_set_priority applies from the caller's next switch.
 */
typedef enum tel_priority {
    TEL_PRIO_NORMAL = 0,
    TEL_PRIO_LOW = 1,
    TEL_PRIO_HIGH = 2,
    TEL_PRIO_MAX = 3,
} tel_priority_t;

/*
 * Options for tel_spawn_opt; a zero-initialised struct means tel_spawn's
 * behaviour.
 *   link:        link the child to the caller before it runs (spawn_link).
 *   monitor:     monitor the child; its reference goes to *monitor_ref
 *                (which must then not be NULL) before the child runs.
 *   priority:    the child's priority (tel_priority_t).
 *   stack_size:  the child's stack in bytes (rounded up to a power of two
 *                of pages); 0 means the run's stack_size. From
 *                TEL_MIN_STACK_SIZE to 256 MiB.
 *   cpu_heavy:   the child starts marked CPU-heavy (tel_set_cpu_heavy).
 */
typedef struct tel_spawn_opts {
    bool link;
    bool monitor;
    uint64_t *monitor_ref;
    tel_priority_t priority;
    size_t stack_size;
    bool cpu_heavy;
} tel_spawn_opts_t;

/*
 * tel_spawn_opt: tel_spawn with options. The link and the monitor exist
 * before the child runs, so a child that dies at once is still seen.
 * Context and errors: as tel_spawn; link and monitor need a calling process
 *   (TEL_ENOTPROC otherwise); TEL_EINVAL if monitor is set and monitor_ref
 *   is NULL, priority is not a tel_priority_t, or stack_size is out of
 *   range.
 */
TEL_API TEL_NODISCARD int tel_spawn_opt(tel_pid_t *out, tel_fn fn, void *arg,
                                        const tel_spawn_opts_t *opts);

/*
 * tel_link: link the caller and pid, both ways. When either ends with a
 * reason other than TEL_NORMAL, the other gets an exit signal: it ends with
 * the same reason unless it traps exits, in which case the signal arrives
 * as a TEL_TAG_EXIT message. Linking twice is one link; linking to oneself
 * does nothing. If pid is not alive, the caller gets an exit signal with
 * TEL_NOPROC (so a caller that does not trap exits ends; this call then
 * does not return) and the call returns 0 in a caller that traps.
 * Context: inside a process; may yield.
 * Errors: TEL_EINVAL if pid is 0; TEL_ENOTPROC outside a process;
 *   TEL_ENOMEM.
 */
TEL_API int tel_link(tel_pid_t pid);

/*
 * tel_unlink: remove the link between the caller and pid, if any. After it
 * returns, no exit signal from that link reaches the caller, and an EXIT
 * message from pid already queued stays queued (as in Erlang; use
 * tel_recv_match to drop it).
 * Context: inside a process; may yield.
 * Errors: TEL_EINVAL if pid is 0; TEL_ENOTPROC outside a process.
 */
TEL_API int tel_unlink(tel_pid_t pid);

/*
 * tel_monitor: watch pid. When it ends (or at once if it is not alive,
 * with TEL_NOPROC), the caller gets exactly one TEL_TAG_DOWN message with
 * the reference written to *ref_out. Monitoring the same process twice
 * makes two monitors.
 * Context: inside a process; may yield.
 * Errors: TEL_EINVAL if ref_out is NULL or pid is 0; TEL_ENOTPROC outside
 *   a process; TEL_ENOMEM (no monitor was made).
 */
TEL_API TEL_NODISCARD int tel_monitor(uint64_t *ref_out, tel_pid_t pid);

/*
 * tel_demonitor: remove the caller's monitor ref. No DOWN for it arrives
 * after this returns. With flush, a DOWN for it already in the mailbox is
 * removed too; without, it may stay there.
 * Context: inside a process; may yield.
 * Errors: TEL_ENOTPROC outside a process; TEL_ENOENT if ref is not one of
 *   the caller's active monitors (it fired, was removed, or never was);
 *   with flush, a DOWN already queued is still removed.
 */
TEL_API int tel_demonitor(uint64_t ref, bool flush);

/*
 * tel_trap_exit: whether exit signals become TEL_TAG_EXIT messages in the
 * caller (Erlang's process_flag(trap_exit, On)). Returns the previous
 * setting; outside a process it does nothing and returns false. TEL_KILL
 * from tel_kill cannot be trapped.
 * Context: any thread; never yields.
 */
TEL_API bool tel_trap_exit(bool on);

/*
 * tel_kill: send an exit signal with reason to pid (Erlang's exit/2).
 *   TEL_KILL: pid ends with TEL_KILLED, trapping or not.
 *   TEL_NORMAL: ignored by pid unless it traps exits (then a message), or
 *     unless pid is the caller, which then ends with TEL_NORMAL.
 *   anything else: pid ends with reason, or gets a TEL_TAG_EXIT message if
 *     it traps exits.
 * A signal to a process that is not alive is dropped. Signals from one
 * sender keep their order with its messages. A process running C code that
 * never calls Telar sees the signal at its next Telar call.
 * Context: any thread while the runtime runs (from outside a process the
 *   signal's pid is 0); may yield inside a process, and does not return
 *   when the caller kills itself.
 * Errors: TEL_EINVAL if pid is 0; TEL_ENOMEM; TEL_ESHUTDOWN if no runtime
 *   runs.
 */
TEL_API int tel_kill(tel_pid_t pid, tel_reason_t reason);

/*
 * tel_set_priority: set the caller's priority (a tel_priority_t); returns
 * the previous one, or TEL_EINVAL / TEL_ENOTPROC. Context: inside a process.
 */
TEL_API int tel_set_priority(int priority);

/*
 * tel_set_cpu_heavy: mark the caller as CPU-heavy (a long computation, a
 * batch job), or unmark it. A CPU-heavy process of normal priority is run
 * where it does not delay latency-sensitive processes: in the background
 * lane of its scheduler, under the low level's rules (processes of normal
 * priority that are ready run before it, it takes at most 1 slice in 9
 * from them while they wait, and runs whenever none is ready; an idle
 * scheduler takes it after any other work). It never takes the turn of a
 * process it woke or the next slot of a woken one. Its priority, as
 * tel_set_priority reports and sets it, does not change, and a process of
 * priority max or high is not moved (its level already says it must run
 * first). Applies from the caller's next switch.
 * Context: inside a process.
 * Returns: 1 if the caller was marked before the call, 0 if not.
 * Errors: TEL_ENOTPROC outside a process.
 */
TEL_API int tel_set_cpu_heavy(bool heavy);

/* ------------------------------------------------------------------------ */
/* Registry                                                                  */
/* ------------------------------------------------------------------------ */

#define TEL_NAME_MAX 63 /* bytes in a registered name, without the NUL */

/*
 * tel_register: give pid the name (copied). A name belongs to one live
 * process and a process has at most one name; the name is free again once
 * the process exits (or tel_unregister).
 * Context: any thread while the runtime runs; never yields.
 * Errors: TEL_EINVAL if name is NULL, empty or longer than TEL_NAME_MAX, or
 *   pid is 0; TEL_ENOPROC if pid is not alive; TEL_EEXIST if the name
 *   belongs to a live process or pid already has a name; TEL_ENOMEM;
 *   TEL_ESHUTDOWN.
 */
TEL_API TEL_NODISCARD int tel_register(const char *name, tel_pid_t pid);

/* tel_unregister: free name. Errors: TEL_EINVAL; TEL_ENOENT if no live
 * process has it; TEL_ESHUTDOWN. Any thread; never yields. */
TEL_API int tel_unregister(const char *name);

/* tel_whereis: the live process with name, or 0 (also for NULL, and when no
 * runtime runs). Any thread; never yields. */
TEL_API tel_pid_t tel_whereis(const char *name);

/* ------------------------------------------------------------------------ */
/* Servers (OTP's gen_server)                                                */
/* ------------------------------------------------------------------------ */

/*
 * A callback returns TEL_CONTINUE to keep the server running, or the reason
 * to stop with (TEL_NORMAL included): terminate(state, reason) then runs and
 * the server exits with that reason. TEL_CONTINUE is never an exit reason.
 */
#define TEL_CONTINUE INT64_MIN

/* Who made a call: give it to tel_reply, now or later. */
typedef struct tel_from {
    tel_pid_t pid;
    uint64_t ref;
} tel_from_t;

/*
 * The callbacks of a server; each runs in the server process.
 *   init(arg, &state): TEL_CONTINUE to start (the starter is released), or
 *     a reason: the start fails with TEL_EINIT and the server exits with it.
 *   handle_call: a tel_call; reply with tel_reply(from, ...) before or after
 *     returning (a later reply is OTP's noreply).
 *   handle_cast: a tel_cast.
 *   handle_info: any other message (the server frees it after the call; the
 *     callback must not keep it). NULL means such messages are dropped.
 *   terminate (may be NULL): the server is stopping with reason, because a
 *     callback asked, or because its parent (the process that started it)
 *     ended and the server traps exits (init may call tel_trap_exit(true),
 *     as in OTP; EXITs from other processes go to handle_info). A server
 *     that does not trap exits and gets an exit signal ends at once, with
 *     no callback run: what its init allocated for state is then lost,
 *     so servers that own resources trap exits.
 * req is the caller's payload (NULL when size is 0), valid during the call.
 */
typedef struct tel_server_ops {
    tel_reason_t (*init)(void *arg, void **state);
    tel_reason_t (*handle_call)(void *state, tel_from_t from, uint64_t tag,
                                const void *req, size_t size);
    tel_reason_t (*handle_cast)(void *state, uint64_t tag, const void *req,
                                size_t size);
    tel_reason_t (*handle_info)(void *state, const tel_msg_t *msg);
    void (*terminate)(void *state, tel_reason_t reason);
} tel_server_ops_t;

/*
 * tel_server_start / tel_server_start_link: spawn a server (linked to the
 * caller for _link), wait until its init returned, and give its pid. The
 * server waits for requests holding no stack (it hibernates between them).
 * Context: inside a process; yields.
 * Errors: TEL_EINVAL if ops, ops->init or ops->handle_call is NULL;
 *   TEL_ENOTPROC outside a process; TEL_EINIT if init returned a reason or
 *   the server died during init (*out is 0); as tel_spawn.
 * Ownership: ops must outlive the server; arg goes to init.
 */
TEL_API TEL_NODISCARD int tel_server_start(tel_pid_t *out,
                                           const tel_server_ops_t *ops,
                                           void *arg);
TEL_API TEL_NODISCARD int tel_server_start_link(tel_pid_t *out,
                                                const tel_server_ops_t *ops,
                                                void *arg);

/*
 * tel_call: send req (tag, a copy of size bytes) to the server pid and wait
 * up to timeout_ms for its reply (tel_recv's timeouts). The caller monitors
 * the server while it waits. A reply that comes after the call gave up is
 * dropped, never seen by a later call or receive.
 * Context: inside a process; yields.
 * Errors: TEL_EINVAL if pid is 0, reply_out is NULL, data is NULL with
 *   size > 0, or timeout_ms < -1; TEL_ENOTPROC outside a process;
 *   TEL_ENOPROC if pid was not alive; TEL_EDOWN if it exited before
 *   replying (tel_call_reason() then gives its exit reason);
 *   TEL_ETIMEDOUT; TEL_ENOMEM. *reply_out is NULL on error.
 * Ownership: *reply_out is a message (its tag and payload are the reply's)
 *   that the caller frees with tel_msg_free.
 */
TEL_API TEL_NODISCARD int tel_call(tel_pid_t pid, uint64_t tag,
                                   const void *req, size_t size,
                                   tel_msg_t **reply_out, int64_t timeout_ms);

/* tel_call_reason: the exit reason behind the caller's last TEL_EDOWN from
 * tel_call (TEL_NOPROC after TEL_ENOPROC). Inside a process; 0 otherwise. */
TEL_API tel_reason_t tel_call_reason(void);

/*
 * tel_cast: send req to the server pid without waiting (as tel_send: a dead
 * server drops it). Errors: as tel_send.
 */
TEL_API TEL_NODISCARD int tel_cast(tel_pid_t pid, uint64_t tag,
                                   const void *req, size_t size);

/*
 * tel_reply: answer the call from with tag and a copy of data. A caller
 * that stopped waiting never sees it. Any process (not only the server).
 * Errors: TEL_EINVAL if from.pid is 0 or data is NULL with size > 0;
 *   TEL_ENOMEM; TEL_ESHUTDOWN.
 */
TEL_API int tel_reply(tel_from_t from, uint64_t tag, const void *data,
                      size_t size);

/* ------------------------------------------------------------------------ */
/* Supervisors (OTP's supervisor)                                            */
/* ------------------------------------------------------------------------ */

/*
 * A supervisor is a server (above) that traps exits and keeps its children
 * running, as OTP's supervisor does:
 *   - Children start in order (spec order; start_child appends) and stop in
 *     reverse order, one at a time. Stopping a child: monitor it, unlink it,
 *     drop its EXIT if one is queued, tel_kill(child, TEL_SHUTDOWN), wait
 *     up to its shutdown time for it to end, then tel_kill(child, TEL_KILL).
 *     TEL_BRUTAL_KILL kills at once; TEL_INFINITY waits however long. The
 *     monitor tells when it is gone, so a child that unlinked itself still
 *     stops. The children of a simple_one_for_one supervisor stop in
 *     parallel (all are signalled, then all are waited for).
 *   - A child that ends is restarted by its restart type (TEL_TRANSIENT:
 *     only after a reason other than TEL_NORMAL and TEL_SHUTDOWN) and the
 *     strategy: one_for_one restarts it alone; one_for_all stops the others
 *     (reverse order) and starts all in order; rest_for_one stops those
 *     started after it (reverse order) and starts it and them in order.
 *     Temporary children stopped by a group restart are dropped.
 *   - A restart whose start fails (in a group restart: after stopping the
 *     children that round started again) is retried through a message the
 *     supervisor sends itself, so it keeps answering calls and exit signals
 *     between attempts; meanwhile which_children shows the child as
 *     restarting. Every attempt counts toward the restart intensity. More
 *     than intensity restarts within period_ms: the supervisor stops its
 *     children and exits with TEL_SHUTDOWN.
 *   - An exit signal from its parent (the process that called
 *     tel_sup_start[_link]) stops the children and ends the supervisor with
 *     the parent's reason; EXITs from other processes that are not its
 *     children are ignored. tel_kill(sup, TEL_SHUTDOWN) from the parent is
 *     how a supervisor is stopped in order.
 *   - A supervisor ended with TEL_KILL runs no code: its children get
 *     their link's exit signal (TEL_KILLED) instead of a shutdown. Its
 *     bookkeeping is still freed (by the runtime, as when tel_run ends
 *     with supervisors running).
 *   - A supervisor keeps its stack while it waits (unlike other servers,
 *     it never hibernates), so a failing child never finds it short of
 *     memory for a stack.
 * Children are found by id and by pid through hash tables, so starting and
 * stopping N children costs O(N), and one event O(1).
 */

typedef enum tel_restart {
    TEL_PERMANENT = 0, /* always restarted */
    TEL_TRANSIENT = 1, /* restarted after an abnormal exit only */
    TEL_TEMPORARY = 2, /* never restarted; its spec is dropped when it ends */
} tel_restart_t;

typedef enum tel_child_type { TEL_WORKER = 0, TEL_SUPERVISOR = 1 } tel_child_type_t;

typedef enum tel_strategy {
    TEL_ONE_FOR_ONE = 0,
    TEL_ONE_FOR_ALL = 1,
    TEL_REST_FOR_ONE = 2,
    TEL_SIMPLE_ONE_FOR_ONE = 3,
} tel_strategy_t;

/* shutdown values besides a timeout in ms (> 0). */
#define TEL_BRUTAL_KILL 0
/* and TEL_INFINITY: wait for the child however long it takes. */

/*
 * A child spec. The supervisor copies it (and id).
 *   id:       unique among the supervisor's children, 1 to TEL_NAME_MAX
 *             bytes; ignored for simple_one_for_one.
 *   start:    starts the child linked to the calling process (the
 *             supervisor) and gives its pid; returns 0 with a pid, or a
 *             TEL_E* code (the start then fails with TEL_EINIT). It runs
 *             in the supervisor, which answers nothing meanwhile.
 *             NULL: the supervisor spawns fn(arg) linked itself (then fn
 *             must not be NULL).
 *   fn, arg:  what start or the spawn gets. For simple_one_for_one, the arg
 *             of tel_sup_start_child replaces arg.
 *   restart, shutdown (TEL_BRUTAL_KILL, ms > 0, or TEL_INFINITY), type.
 *   A zero shutdown is brutal_kill (a zero-initialised spec has it); OTP's
 *   defaults are 5000 ms for workers and TEL_INFINITY for supervisors:
 *   spell them. Anything else is TEL_EINVAL.
 */
typedef struct tel_child_spec {
    const char *id;
    int (*start)(tel_pid_t *out, tel_fn fn, void *arg);
    tel_fn fn;
    void *arg;
    tel_restart_t restart;
    int64_t shutdown;
    tel_child_type_t type;
} tel_child_spec_t;

/*
 * Supervisor flags: more than intensity restarts within period_ms ends the
 * supervisor (its children are stopped; it exits with TEL_SHUTDOWN).
 * intensity 0 allows no restart; period_ms must be > 0. OTP's defaults are
 * intensity 1, period 5000 ms.
 */
typedef struct tel_sup_flags {
    tel_strategy_t strategy;
    uint32_t intensity;
    uint32_t period_ms;
} tel_sup_flags_t;

/* What which_children gives per child. pid is 0 when not running; id is
 * "" under simple_one_for_one; restarting: a failed restart is queued. */
typedef struct tel_child_info {
    char id[TEL_NAME_MAX + 1];
    tel_pid_t pid;
    bool restarting;
    tel_child_type_t type;
} tel_child_info_t;

/* count_children, as OTP's: specs, the children (1, the template, under
 * simple_one_for_one); active, those whose process is alive; supervisors
 * and workers, the children of each type, running or not. */
typedef struct tel_child_counts {
    uint32_t specs, active, supervisors, workers;
} tel_child_counts_t;

/*
 * tel_sup_start / tel_sup_start_link: start a supervisor process (linked to
 * the caller for _link) that starts the n children in order. It returns once
 * they all started; if one fails to start, those started are stopped in
 * reverse order and the call fails with TEL_EINIT (*out is 0; a linked
 * caller gets no exit signal). For simple_one_for_one, n must be 1 (the
 * template) and no child starts yet. The caller is the supervisor's
 * parent (see above), linked or not.
 * Context: inside a process; yields.
 * Errors: TEL_EINVAL (NULL flags, bad strategy, period_ms 0, specs NULL
 *   with n > 0, a bad spec, duplicate ids, n != 1 for simple_one_for_one);
 *   TEL_ENOTPROC outside a process; TEL_EINIT; as tel_spawn.
 * Ownership: specs (and their ids) are copied before it returns; each arg
 *   must live as long as the child may be (re)started.
 */
TEL_API TEL_NODISCARD int tel_sup_start(tel_pid_t *out,
                                        const tel_sup_flags_t *flags,
                                        const tel_child_spec_t *specs,
                                        size_t n);
TEL_API TEL_NODISCARD int tel_sup_start_link(tel_pid_t *out,
                                             const tel_sup_flags_t *flags,
                                             const tel_child_spec_t *specs,
                                             size_t n);

/*
 * The administration calls, each a request to the supervisor sup (a call:
 * inside a process, yields; it waits as long as the supervisor takes, as
 * OTP's do). Every one returns TEL_EINVAL if sup is 0 or an argument below
 * is bad, TEL_ENOTPROC outside a process, TEL_ENOPROC/TEL_EDOWN if sup is
 * not alive or ends first, TEL_ENOMEM.
 *   start_child: add spec and start it (pid_out, which may be NULL, gets
 *     its pid); the spec must be valid (TEL_EINVAL) and arg is ignored.
 *     For simple_one_for_one, spec is ignored (may be NULL) and arg starts
 *     a new child from the template. TEL_EALREADY (id running; *pid_out is
 *     its pid), TEL_EPRESENT (id present, not running), TEL_EINIT (its
 *     start failed; the spec is not kept).
 *   terminate_child: stop the child id (pid is ignored); its spec stays
 *     (temporary ones are dropped); a child not running is 0, and a
 *     restarting one stops being retried. For simple_one_for_one: stop the
 *     child whose pid is pid (id is ignored) and drop it. TEL_ENOENT.
 *   restart_child: start a terminated child again (pid_out may be NULL).
 *     TEL_ENOENT, TEL_ERUNNING, TEL_ERESTARTING, TEL_EINIT.
 *   delete_child: drop a terminated child's spec. TEL_ENOENT,
 *     TEL_ERUNNING, TEL_ERESTARTING.
 *   restart_child and delete_child on simple_one_for_one: TEL_EINVAL (OTP's
 *     {error, simple_one_for_one}).
 *   which_children: up to cap entries into buf (start order) and the total
 *     into *n_out (buf may be NULL when cap is 0; n_out may not be NULL).
 *   count_children: the counts into *out.
 */
TEL_API int tel_sup_start_child(tel_pid_t sup, const tel_child_spec_t *spec,
                                void *arg, tel_pid_t *pid_out);
TEL_API int tel_sup_terminate_child(tel_pid_t sup, const char *id,
                                    tel_pid_t pid);
TEL_API int tel_sup_restart_child(tel_pid_t sup, const char *id,
                                  tel_pid_t *pid_out);
TEL_API int tel_sup_delete_child(tel_pid_t sup, const char *id);
TEL_API int tel_sup_which_children(tel_pid_t sup, tel_child_info_t *buf,
                                   size_t cap, size_t *n_out);
TEL_API int tel_sup_count_children(tel_pid_t sup, tel_child_counts_t *out);

/* ------------------------------------------------------------------------ */
/* Blocking calls (BEAM's dirty schedulers, tokio's spawn_blocking)          */
/* ------------------------------------------------------------------------ */

/*
 * tel_blocking: run fn(arg) on a thread of the blocking pool and return its
 * result in *result_out (if result_out is not NULL). For work that blocks
 * its thread or runs long without calling Telar: a read() on a pipe or a
 * file, a DNS lookup, a blocking library call. The calling process waits
 * holding its stack but not its scheduler, which runs other processes
 * meanwhile; when fn returns, the process is made runnable again and
 * resumes on a scheduler with the result. Messages that arrive meanwhile
 * stay in its mailbox, in order; exit signals are acted on as usual.
 * The pool: at most tel_config_t.blocking_threads threads (0:
 * TEL_DEFAULT_BLOCKING_THREADS); a call that finds no idle thread starts
 * one while under that bound, and otherwise waits in a queue for the next
 * thread to finish (FIFO). A thread idle for about a second exits. Pool
 * threads are not processes: fn may call what any thread may (tel_send,
 * tel_spawn, ...), not what needs a process (tel_recv, tel_blocking: they
 * return TEL_ENOTPROC). Pool threads block the asynchronous signals (a
 * signal sent to the program is never taken there); a fault in fn (a bad
 * pointer, abort()) is not caught and ends the program.
 * Killed while fn runs (tel_kill, a linked process's exit): the process
 * ends at once as usual; fn still runs to its end on its pool thread, and
 * its result is then dropped. Nothing leaks: the call's memory is the
 * pool's from then on. Whatever arg points to must stay valid until fn
 * returns, which may be after the caller is gone: it must not be on the
 * caller's stack if the caller can be killed.
 * At tel_run's end, calls still queued never start (their memory is freed)
 * and calls running are waited for: tel_run returns only when every fn
 * running has returned, so a fn that never returns keeps tel_run from
 * returning.
 * Context: inside a process; yields (parks until fn has returned).
 * Errors: TEL_EINVAL if fn is NULL; TEL_ENOTPROC outside a process (a pool
 *   thread included); TEL_ENOMEM if the call's memory could not be had, or
 *   no pool thread could be started and none runs (fn was not run);
 *   TEL_ESHUTDOWN if the runtime is stopping (fn was not run).
 */
TEL_API int tel_blocking(intptr_t (*fn)(void *arg), void *arg,
                         intptr_t *result_out);

/*
 * tel_blocking_threads: how many threads the blocking pool has now, busy
 * or idle (0 when no runtime runs). Context: any thread; never yields.
 */
TEL_API unsigned tel_blocking_threads(void);

/* ------------------------------------------------------------------------ */
/* Introspection                                                             */
/* ------------------------------------------------------------------------ */

/*
 * tel_reason_str: a constant name for a runtime exit reason ("normal",
 * "killed", ...) or "user" for positive reasons and "unknown" otherwise.
 * Context: any thread.
 */
TEL_API const char *tel_reason_str(tel_reason_t reason);

/*
 * tel_process_count: how many processes are alive now (0 when no runtime
 * runs). tel_scheduler_count: how many scheduler threads run (0 when none).
 * Context: any thread; never yields.
 */
TEL_API uint32_t tel_process_count(void);
TEL_API unsigned tel_scheduler_count(void);

/*
 * Per-scheduler statistics (tel_sched_stats). Counters count from the start
 * of the run; each is read whole, but they are read one after another
 * while the scheduler runs, so they need not agree with each other exactly.
 *   switches:  context switches (process to process, or to and from the
 *              scheduler's idle loop).
 *   steals:    times it took work queued on another scheduler.
 *   parks:     times it went to sleep with nothing to do.
 *   preempt_reductions: slices that ended because the process used up its
 *              reductions (tel_config_t.reductions).
 *   preempt_watchdog: preemptions the watchdog asked for that took effect
 *              at the process's next reduction point.
 *   preempt_signal: processes the watchdog's signal switched out at once.
 *   longest_run_ns: the longest the scheduler ran one process without a
 *              switch, as the watchdog saw it. The watchdog samples every
 *              sample_period_ns (half of tel_config_t.watchdog_us) while
 *              long runs are about, and up to 4 times less often after a
 *              while without any, so this is a lower bound, short by less
 *              than the interval, and runs shorter than it may go unseen.
 *              0 if none was seen.
 *   longest_run_pid: the process that made that run; 0 while the run goes
 *              on (it is named when it ends) or when there was none.
 *   current_run_ns: how long the process running now has run (same
 *              resolution); 0 when the scheduler is idle.
 *   sample_period_ns: the watchdog's shortest sampling interval; 0
 *              without a watchdog
 *              (TEL_CFG_NO_WATCHDOG: the three run fields stay 0).
 *   blocking_threads: threads of the blocking pool now (the whole
 *              runtime's, as tel_blocking_threads; the same for every index).
 *   send_batches: bursts its processes held back and pushed as one chain
 *              ("Delivery" at tel_send: a process that keeps sending to a
 *              receiver with unread messages).
 *   send_nudges: times one of its processes found its mailbox empty while
 *              another scheduler's process held a burst for it, and asked
 *              that scheduler to push it.
 */
typedef struct tel_sched_stats {
    uint64_t switches;
    uint64_t steals;
    uint64_t parks;
    uint64_t preempt_reductions;
    uint64_t preempt_watchdog;
    uint64_t preempt_signal;
    uint64_t longest_run_ns;
    tel_pid_t longest_run_pid;
    uint64_t current_run_ns;
    uint64_t sample_period_ns;
    unsigned blocking_threads;
    uint64_t send_batches;
    uint64_t send_nudges;
} tel_sched_stats_t;

/*
 * tel_sched_stats: fill *out with scheduler index's statistics (see
 * tel_sched_stats_t).
 * Context: any thread while the runtime runs; never yields.
 * Errors: TEL_EINVAL if out is NULL or index >= tel_scheduler_count();
 *   TEL_ESHUTDOWN if no runtime is running.
 */
TEL_API int tel_sched_stats(unsigned index, tel_sched_stats_t *out);

/*
 * What a TEL_TAG_LONG_SCHEDULE message carries (tel_system_monitor).
 *   pid:       the process that ran long.
 *   run_us:    how long it ran without a switch, as the watchdog saw it (a
 *              lower bound, short by less than its sampling period).
 *   scheduler: the index of the scheduler it ran on; tel_scheduler_count()
 *              + k for spare scheduler k, which runs processes while every
 *              scheduler is stuck (see tel_config_t.watchdog_us).
 */
typedef struct tel_long_schedule_info {
    tel_pid_t pid;
    uint64_t run_us;
    unsigned scheduler;
} tel_long_schedule_info_t;

/*
 * tel_system_monitor: Erlang's erlang:system_monitor(To, [{long_schedule,
 * Ms}]). From now on, whenever a process runs at least long_schedule_us
 * microseconds without a switch (computing in C without calling Telar, or
 * blocked in a system call not made through tel_blocking), the watchdog
 * sends `to` a message with tag TEL_TAG_LONG_SCHEDULE and a
 * tel_long_schedule_info_t as data (from 0), once per such run, after the
 * run has ended (when the process switched out; a run that never ends is
 * seen in tel_sched_stats's current_run_ns). At most 100 reports a
 * second; the rest are dropped. Runs shorter than the watchdog's sampling
 * interval (half of tel_config_t.watchdog_us, up to twice watchdog_us
 * after a while without long runs) may go unseen. One monitor per
 * runtime: a new call replaces the old one; to = 0 stops the reports. If
 * `to` has exited, reports are dropped (as tel_send does). The monitor
 * lasts until the run ends.
 * Context: any thread while the runtime runs; never yields.
 * Errors: TEL_EINVAL if to is not 0 and long_schedule_us is 0, or the run
 *   has no watchdog (TEL_CFG_NO_WATCHDOG); TEL_ESHUTDOWN if no runtime is
 *   running.
 */
TEL_API int tel_system_monitor(tel_pid_t to, uint32_t long_schedule_us);

#ifdef __cplusplus
}
#endif

#endif /* TELAR_H */
