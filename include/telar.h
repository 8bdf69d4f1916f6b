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
    X(ESYS, -10, "the operating system refused a resource")

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
 */
typedef struct tel_config {
    unsigned schedulers;
    size_t stack_size;
    uint32_t max_processes;
    uint32_t reductions;
} tel_config_t;

#define TEL_INFINITY (-1)
#define TEL_DEFAULT_STACK_SIZE ((size_t)64 * 1024)
#define TEL_MIN_STACK_SIZE ((size_t)16 * 1024)
#define TEL_DEFAULT_MAX_PROCESSES 4194304u
#define TEL_MAX_MAX_PROCESSES 134217728u
#define TEL_DEFAULT_REDUCTIONS 4000u

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
 * Signals: while it runs, tel_run handles SIGSEGV and SIGBUS (each
 *   scheduler thread gets an alternate signal stack) to end a process that
 *   overflowed its stack with TEL_STACK_OVERFLOW; every other fault goes to
 *   the handler installed before tel_run (or the default action). The
 *   previous handlers and signal stacks are restored before it returns. A
 *   process ended inside a C library call keeps the locks that call held.
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

#ifdef __cplusplus
}
#endif

#endif /* TELAR_H */
