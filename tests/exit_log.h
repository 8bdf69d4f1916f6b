/*
 * tests/exit_log.h: a white-box test's record of exit reasons, fed by the
 * tel__proc_exit_observer hook (core/process.h), which sees every process
 * that ends while the runtime runs, on the thread of its scheduler.
 * Include after common.h and core/process.h; each test program has its own
 * record (Criterion runs each test in its own process, so it starts empty).
 *
 *   tt_observe_up()       install the hook (a Criterion .init)
 *   tt_reason_of(pid)     the reason pid ended with, or 1 if not seen (yet)
 *   tt_count_reason(r)    how many recorded exits had reason r
 */
#ifndef TEL_TESTS_EXIT_LOG_H
#define TEL_TESTS_EXIT_LOG_H

#ifndef TT_MAX_EXITS
#define TT_MAX_EXITS 8192
#endif

static struct {
    _Atomic tel_pid_t pid;
    _Atomic tel_reason_t reason;
} tt_exits[TT_MAX_EXITS];
static atomic_uint tt_n_exits;

static inline void tt_observe(tel_pid_t pid, tel_reason_t reason)
{
    unsigned i = atomic_fetch_add(&tt_n_exits, 1);
    if (i < TT_MAX_EXITS) {
        atomic_store(&tt_exits[i].reason, reason);
        atomic_store(&tt_exits[i].pid, pid); /* last: marks the entry done */
    }
}

static inline tel_reason_t tt_reason_of(tel_pid_t pid)
{
    unsigned n = atomic_load(&tt_n_exits);
    for (unsigned i = 0; i < n && i < TT_MAX_EXITS; i++)
        if (atomic_load(&tt_exits[i].pid) == pid)
            return atomic_load(&tt_exits[i].reason);
    return 1;
}

static inline unsigned tt_count_reason(tel_reason_t r)
{
    unsigned n = atomic_load(&tt_n_exits), k = 0;
    for (unsigned i = 0; i < n && i < TT_MAX_EXITS; i++)
        if (atomic_load(&tt_exits[i].pid) &&
            atomic_load(&tt_exits[i].reason) == r)
            k++;
    return k;
}

static inline void tt_observe_up(void)
{
    tel__proc_exit_observer = tt_observe;
}

#endif /* TEL_TESTS_EXIT_LOG_H */
