/*
 * sched/sysmon.c: the watchdog. A thread that watches the schedulers, as
 * Go's sysmon does, but with a bound of a millisecond or two instead of
 * 10 ms.
 *
 * Owns: the watchdog thread, its view of each scheduler (struct wd_sched),
 * the longest run each scheduler was seen to make, and the long_schedule
 * threshold and rate limit.
 *
 * The problem. A process that computes in C without calling Telar, or
 * blocks its thread in a plain system call, keeps its scheduler from
 * everything else queued there. Someone must notice, without making the
 * switch path read the clock (a clock read costs about as much as a
 * switch).
 *
 * The design. Each scheduler's statistics give a run sequence for free:
 * n_switches + n_renews (scheduler.h) moves whenever a run of one task ends,
 * and the owner writes them with a plain load and store (no
 * read-modify-write, nothing more than the counter it always kept). The
 * owner also says whether it is looking for work (wd_idle, written only on
 * the way into and out of find_work). The watchdog samples every period
 * (bound / 2): a scheduler that is busy with the same sequence at two
 * samples has run one task for at least the time between them. While no
 * run spans two samples and no preemption it asked for takes effect, the
 * interval doubles every SYSMON_QUIET_SAMPLES
 * samples up to SYSMON_SLOW periods (2 bounds), and it is the period again
 * at the first run that does: a busy runtime of short runs does not pay a
 * wake-up per period, and the first long run after a quiet spell is seen
 * up to 2 bounds late. The length of a run is measured from the first
 * sample that saw it, so it is a lower bound, short by less than the
 * interval, and a run shorter than the interval may go unseen. That is
 * the resolution of tel_sched_stats's longest run and of long_schedule
 * reports.
 *
 * Who ran it. The watchdog cannot safely look at the task (it may exit
 * and be freed at any moment), so it asks the owner: it stores the run's
 * sequence in s->wd_ask and sets a bit of the priority mask, a word the
 * owner tests at every pick anyway (so asking costs the pick nothing), and
 * at the end of that run
 * (the pick that ends it, or a renewed slice) the owner writes the task's
 * id (hooks->task_id: core's pid) and the sequence back. A long_schedule
 * report therefore goes out when the run has ended (as in Erlang, whose
 * monitor message names the process after it was scheduled out), with the
 * length the watchdog saw. A run that never ends is visible in
 * tel_sched_stats as the current run.
 *
 * Acting on a long run. At bound, the watchdog asks for the task's
 * preemption (tel__preempt_request: a signal to the thread, preempt.c),
 * once per run. A period later, if the run still goes on, the scheduler
 * is marked stuck and its work handed to the others (tel__sched_set_stuck,
 * tel__sched_hand_off; the essay "Stuck schedulers" in scheduler.c), again
 * at every sample until the run ends, when the mark is taken off. When
 * every scheduler is stuck, a spare scheduler is put to work on what they
 * hand off; when it is stuck too, the next spare, up to SCHED_SPARE_MAX.
 * Once a scheduler is free, every spare is sent back; while none is, the
 * spares above the first free one ("The spare schedulers" in
 * scheduler.c).
 *
 * No CPU when idle. When every scheduler is parked, the watchdog sleeps on
 * a futex with no timeout. A scheduler that leaves its park (find_work,
 * after its futex sleep or a cancelled park) calls tel__sysmon_unparked:
 * a Dekker pair, the watchdog stores `sleeping` and then loads the parked
 * count; the scheduler's count went down before its seq_cst
 * read-modify-write of the count and its load of `sleeping`; all seq_cst,
 * so one of them sees the other. The futex
 * word, read before the check, closes the gap between the check and the
 * sleep. Nothing of this is on the switch, send or receive paths.
 *
 * Concurrency: struct wd_sched belongs to the watchdog thread, except the
 * record fields (longest, current), which readers take under `lock` (a
 * leaf spinlock). long_ns is atomic (any thread sets it). on, n, ws are
 * written before the schedulers start and after they stopped.
 */
#define _GNU_SOURCE 1
#include "sched/sysmon.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "alloc/lock.h"
#include "alloc/numa.h"
#include "include/telar.h"
#include "sched/park.h"
#include "sched/preempt.h"
#include "sched/scheduler.h"

/* long_schedule reports per second at most (the rest are dropped). */
#define SYSMON_LS_PER_S 100u
/* Sampling backs off while no run spans two samples: after this many
 * such samples the interval doubles, up to SYSMON_SLOW periods. */
#define SYSMON_QUIET_SAMPLES 8u
#define SYSMON_SLOW 4u
/* The shortest sampling period (a bound of 100 us samples every 50 us). */
#define SYSMON_MIN_PERIOD_NS 50000u
/* At most one signal per this many ns to a stuck scheduler whose epoch is
 * behind (sample): each one interrupts the system call it is blocked in,
 * and one the kernel does not restart (poll, nanosleep) returns EINTR to
 * the program. Reclamation then lags by about two of these. */
#define SYSMON_EPOCH_SIG_NS 20000000u

struct wd_sched {
    /* The watchdog thread only. */
    uint64_t seq;      /* the run sequence at the last sample */
    uint64_t since_ns; /* the first sample that saw this run */
    uint64_t answered; /* the last answer taken (a run sequence) */
    uint64_t ans_id;   /* and the id it gave */
    uint64_t ls_seq, ls_ns; /* a long run not reported yet, its length */
    bool asked, preempted, stuck;
    uint64_t cpu_ns, cpu_at; /* its thread's CPU time, when read (held) */
    uint64_t n_pre;          /* its watchdog preemptions, at the last sample */
    uint64_t ep_sig_ns;      /* the last signal for its epoch (sample) */
    /* Under wd.lock (the watchdog writes, readers read). */
    uint64_t longest_ns, longest_id, longest_seq;
    uint64_t cur_ns;
};

static struct {
    _Atomic bool on; /* release: n, ws and the rest are set */
    unsigned n;
    unsigned n_sp; /* spares: ws[n .. n + n_sp - 1] are theirs */
    uint64_t bound_ns, period_ns;
    struct wd_sched *ws;
    pthread_t thread;
    tel__spin_t lock;
    _Atomic uint32_t word;     /* futex: bumped by every wake */
    _Atomic uint32_t sleeping; /* the watchdog sleeps with no timeout */
    _Atomic uint32_t stop;
    _Atomic uint64_t long_ns;  /* long_schedule threshold; 0: off */
    _Atomic uint64_t n_ticks;  /* samples taken (white-box tests) */
    uint64_t win_start;        /* the rate limit's second */
    uint32_t win_sent;
} wd;

static void futex_wait(_Atomic uint32_t *w, uint32_t seen, uint64_t ns)
{
    struct timespec ts, *tsp = NULL;
    if (ns) {
        ts.tv_sec = (time_t)(ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        tsp = &ts;
    }
    /* EINTR, EAGAIN, ETIMEDOUT: the loop looks again. */
    (void)syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, seen, tsp, NULL, 0);
}

static void wake(void)
{
    atomic_fetch_add_explicit(&wd.word, 1, memory_order_release);
    (void)syscall(SYS_futex, &wd.word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void report(unsigned i, uint64_t id, uint64_t ns, uint64_t now)
{
    const struct tel__sched_hooks *h = tel__sched_hooks();
    if (!h->long_run || id == 0)
        return;
    if (now - wd.win_start >= 1000000000ull) {
        wd.win_start = now;
        wd.win_sent = 0;
    }
    if (wd.win_sent >= SYSMON_LS_PER_S)
        return;
    wd.win_sent++;
    h->long_run(i, id, ns);
}

/* The owner's answer to our last question, if it came: the run has
 * ended; name it in the record and report it if it was long. */
static void take_answer(struct sched *s, struct wd_sched *w, uint64_t now)
{
    /* acquire: pairs with the owner's release store (wd_answer). */
    uint64_t rs = atomic_load_explicit(&s->wd_run_seq, memory_order_acquire);
    if (rs == 0 || rs == w->answered)
        return;
    /* acquire: the re-read of the sequence below stays after it. */
    uint64_t id = atomic_load_explicit(&s->wd_run_id, memory_order_acquire);
    if (atomic_load_explicit(&s->wd_run_seq, memory_order_relaxed) != rs)
        return; /* a newer answer is being written: take it next time */
    w->answered = rs;
    w->ans_id = id;
    tel__spin_lock(&wd.lock);
    if (w->longest_seq == rs)
        w->longest_id = id;
    tel__spin_unlock(&wd.lock);
    if (w->ls_seq == rs) {
        report(s->index, id, w->ls_ns, now);
        w->ls_seq = w->ls_ns = 0;
    }
}

/* Returns whether the scheduler runs the same task as at the last sample
 * (a run spanning two samples), or a preemption the watchdog asked for
 * took effect since: long runs are about. */
static bool sample(unsigned i, uint64_t now, uint64_t thr)
{
    struct sched *s = tel__sched_wheel_owner(i); /* i >= wd.n: a spare */
    if (!s)
        return false;
    struct wd_sched *w = &wd.ws[i];
    uint64_t n_pre =
        atomic_load_explicit(&s->n_preempt_watchdog, memory_order_relaxed) +
        atomic_load_explicit(&s->n_preempt_signal, memory_order_relaxed);
    bool pre = n_pre != w->n_pre;
    w->n_pre = n_pre;
    take_answer(s, w, now);
    uint64_t seq = tel__sched_run_seq(s);
    bool busy = !atomic_load_explicit(&s->wd_idle, memory_order_relaxed);
    if (!busy || seq != w->seq || seq == 0) {
        /* A new run (or none): measure it from now. */
        if (w->ls_seq && w->ls_seq == w->answered) {
            /* Named before it ended (a run that went on after a renewed
             * slice the watchdog did not see as an end): report now. */
            report(s->index, w->ans_id, w->ls_ns, now);
            w->ls_seq = w->ls_ns = 0;
        }
        w->seq = busy ? seq : 0;
        w->since_ns = now;
        w->asked = w->preempted = false;
        if (w->stuck) { /* it switched: free again */
            w->stuck = false;
            tel__sched_set_stuck(s, false);
        }
        if (w->cur_ns) {
            tel__spin_lock(&wd.lock);
            w->cur_ns = 0;
            tel__spin_unlock(&wd.lock);
        }
        return pre;
    }
    uint64_t d = now - w->since_ns;
    tel__spin_lock(&wd.lock);
    w->cur_ns = d;
    if (d > w->longest_ns) {
        w->longest_ns = d;
        if (w->longest_seq != seq) {
            w->longest_seq = seq;
            /* Named when the run ends, unless the owner answered already. */
            w->longest_id = w->answered == seq ? w->ans_id : 0;
        }
    }
    tel__spin_unlock(&wd.lock);
    if (!w->asked) {
        /* Who is it? The owner answers when the run ends. */
        tel__sched_wd_ask(s, seq);
        w->asked = true;
    }
    if (thr && d >= thr) {
        w->ls_seq = seq;
        w->ls_ns = d;
    }
    /* At the bound; or a period into the run if something waits that
     * should not (a due timer, a high task, a foreign wake-up): a process
     * woken by its timer then waits at most about a period for a long
     * runner, not a bound. */
    if (!w->preempted &&
        (d >= wd.bound_ns ||
         (d >= wd.period_ns && tel__sched_has_waiting(s, now)))) {
        w->preempted = true;
        (void)tel__preempt_request(s);
    }
    /* Sent back, a spare must leave its task: ask at every sample (one
     * signal on its way at a time). */
    if (s->spare && !tel__sched_at_work(s))
        (void)tel__preempt_request(s);
    /* A period after the request, the run still goes on: stuck. Its work
     * goes to the others, now and at every sample while it stays stuck
     * (act_on_stuck; scheduler.c, "Stuck schedulers"), and one more
     * signal lets the thread shed what only it may take (preempt.c). A
     * spare is marked too (others fire its timers, wake-ups go
     * elsewhere); the next spare replaces it (act_on_stuck). */
    if (d >= wd.bound_ns + wd.period_ns && !w->stuck) {
        w->stuck = true;
        tel__sched_set_stuck(s, true);
        (void)tel__preempt_request(s);
    }
    if (s->spare && w->stuck)
        tel__sched_hand_off(s, now + wd.period_ns);
    /* Stuck, it holds back the epoch (sched/epoch.h) once the others move
     * it on: the blocks of processes that end anywhere would wait for its
     * run to end. A signal lets it announce a quiescent state where it is,
     * when that is outside Telar's code (preempt.c): only while it is
     * behind, and at most one per SYSMON_EPOCH_SIG_NS. */
    if (w->stuck && tel__epoch_behind(&s->ep) &&
        now - w->ep_sig_ns >= SYSMON_EPOCH_SIG_NS) {
        w->ep_sig_ns = now;
        (void)tel__preempt_request(s);
    }
    return true;
}

/*
 * Whether stuck scheduler s's thread is really held: blocked in the kernel
 * (a system call), or running on a CPU for at least half of the time since
 * the last look. A thread that is ready but waits for a CPU (the machine
 * has more runnable threads than cores) is not: a spare thread would only
 * add to the queue for the CPUs. The state comes from
 * /proc/self/task/TID/stat, the CPU time from the thread's CPU clock; both
 * are read only while every scheduler is stuck. If either cannot be read,
 * the thread counts as held.
 */
static bool held(struct sched *s, struct wd_sched *w, uint64_t now)
{
    int tid = atomic_load_explicit(&s->tid, memory_order_relaxed);
    if (tid <= 0)
        return true;
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(s->thread, &cid) != 0 ||
        clock_gettime(cid, &ts) != 0)
        return true;
    uint64_t cpu = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    bool fresh = w->cpu_at && now - w->cpu_at <= 3 * wd.period_ns;
    bool running = fresh && (cpu - w->cpu_ns) * 2 >= now - w->cpu_at;
    w->cpu_ns = cpu;
    w->cpu_at = now;
    if (running)
        return true;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold anything */
    if (!p || p[1] != ' ' || !p[2])
        return true;
    return p[2] != 'R'; /* S, D: blocked in the kernel */
}

/* After a sample of every scheduler: how many spares should be at work
 * ("The spare schedulers" in scheduler.c). While every scheduler is
 * stuck: up to the first spare at work that is free (the ones above it
 * are sent back, newest first); if every one at work is stuck too, and
 * each of those threads is held, one more. Once a scheduler is free:
 * none. Then each stuck scheduler hands its work off (to a spare, if one
 * is at work), now and at every sample while it stays stuck. */
static void act_on_stuck(uint64_t now)
{
    if (tel__sched_stopping())
        return; /* threads may be gone: nothing to act on */
    unsigned n_stuck = 0, want = 0, n_look = 0;
    for (unsigned i = 0; i < wd.n; i++)
        n_stuck += wd.ws[i].stuck;
    if (n_stuck == wd.n) {
        unsigned at_work = 0; /* spares 0 .. at_work - 1 (a prefix) */
        while (at_work < wd.n_sp &&
               tel__sched_at_work(tel__sched_wheel_owner(wd.n + at_work)))
            at_work++;
        unsigned k = 0;
        while (k < at_work && wd.ws[wd.n + k].stuck)
            k++;
        want = k < at_work ? k + 1 : at_work;
        if (k == at_work && at_work < wd.n_sp) {
            /* Every thread at work stuck: held? Stuck but waiting for a
             * CPU, a thread keeps what it runs (it comes back) and hands
             * off the rest. */
            unsigned n_held = 0;
            n_look = wd.n + at_work;
            for (unsigned i = 0; i < n_look; i++)
                n_held += held(tel__sched_wheel_owner(i), &wd.ws[i], now);
            if (n_held == n_look)
                want = at_work + 1;
        }
    }
    for (unsigned i = n_look; i < wd.n + wd.n_sp; i++)
        wd.ws[i].cpu_at = 0; /* a fresh look next time */
    (void)tel__sched_spare(want);
    if (!n_stuck)
        return;
    for (unsigned i = 0; i < wd.n; i++)
        if (wd.ws[i].stuck)
            tel__sched_hand_off(tel__sched_get(i), now + wd.period_ns);
}

static bool all_parked(void)
{
    /* A spare is never counted as parked; it runs a task only after the
     * watchdog (awake then) put it to work, and must be watched until it
     * is back in its loop. */
    if (tel__sched_n_parked() < wd.n)
        return false;
    for (unsigned k = 0; k < wd.n_sp; k++)
        if (!atomic_load_explicit(&tel__sched_wheel_owner(wd.n + k)->wd_idle,
                                  memory_order_seq_cst))
            return false;
    return true;
}

static void *wd_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    (void)prctl(PR_SET_NAME, "tel-sysmon", 0, 0, 0);
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    uint64_t sleep_ns = wd.period_ns;
    unsigned quiet = 0;
    while (!atomic_load_explicit(&wd.stop, memory_order_acquire)) {
        uint32_t seen = atomic_load_explicit(&wd.word, memory_order_acquire);
        /* Parked count first: a scheduler's answer precedes its park (a
         * seq_cst increment), so once we see it parked we see the answer. */
        bool idle = all_parked();
        uint64_t now = tel__now_ns();
        uint64_t thr = atomic_load_explicit(&wd.long_ns, memory_order_relaxed);
        atomic_store_explicit(&wd.n_ticks,
                              atomic_load_explicit(&wd.n_ticks,
                                                   memory_order_relaxed) + 1,
                              memory_order_relaxed);
        bool long_run = false;
        for (unsigned i = 0; i < wd.n + wd.n_sp; i++) /* the spares last */
            long_run |= sample(i, now, thr);
        act_on_stuck(now);
        if (!idle) {
            /* Back off while every run is shorter than the interval (a
             * busy runtime of short runs pays a wake-up per period, about
             * 4% of a core on a VM); back to the period at the first run
             * that spans two samples. */
            if (long_run) {
                sleep_ns = wd.period_ns;
                quiet = 0;
            } else if (++quiet >= SYSMON_QUIET_SAMPLES &&
                       sleep_ns < SYSMON_SLOW * wd.period_ns) {
                sleep_ns *= 2;
                quiet = 0;
            }
            futex_wait(&wd.word, seen, sleep_ns);
            continue;
        }
        sleep_ns = wd.period_ns;
        quiet = 0;
        /* Every scheduler parked: sleep until one leaves its park (the
         * Dekker pair with tel__sysmon_unparked, top of file). */
        atomic_store_explicit(&wd.sleeping, 1, memory_order_seq_cst);
        if (all_parked() &&
            !atomic_load_explicit(&wd.stop, memory_order_seq_cst))
            futex_wait(&wd.word, seen, 0);
        atomic_store_explicit(&wd.sleeping, 0, memory_order_relaxed);
    }
    for (unsigned i = 0; i < wd.n + wd.n_sp; i++) /* the spares too */
        if (wd.ws[i].stuck)
            tel__sched_set_stuck(tel__sched_wheel_owner(i), false);
    return NULL;
}

int tel__sysmon_start(bool enabled, bool async_preempt, unsigned n,
                      uint64_t bound_ns)
{
    atomic_store_explicit(&wd.on, false, memory_order_relaxed);
    wd.n = wd.n_sp = 0;
    wd.ws = NULL;
    atomic_store_explicit(&wd.long_ns, 0, memory_order_relaxed);
    if (!enabled)
        return 0;
    unsigned n_sp = tel__sched_spares(); /* allocated before we start */
    wd.ws = tel__mem_zalloc(sizeof(*wd.ws) * (n + n_sp));
    if (!wd.ws)
        return TEL_ENOMEM;
    wd.n = n;
    wd.n_sp = n_sp;
    wd.bound_ns = bound_ns;
    wd.period_ns = bound_ns / 2 > SYSMON_MIN_PERIOD_NS ? bound_ns / 2
                                                       : SYSMON_MIN_PERIOD_NS;
    wd.win_start = 0;
    wd.win_sent = 0;
    tel__spin_init(&wd.lock);
    atomic_store_explicit(&wd.stop, 0, memory_order_relaxed);
    atomic_store_explicit(&wd.n_ticks, 0, memory_order_relaxed);
    atomic_store_explicit(&wd.sleeping, 0, memory_order_relaxed);
    (void)async_preempt; /* installed by tel__sched_run (preempt.c) */
    int rc = TEL_ESYS;
    if (pthread_create(&wd.thread, NULL, wd_main, NULL) != 0)
        goto fail;
    atomic_store_explicit(&wd.on, true, memory_order_release);
    return 0;
fail:
    tel__mem_free(wd.ws, sizeof(*wd.ws) * (n + n_sp));
    wd.ws = NULL;
    wd.n = wd.n_sp = 0;
    return rc;
}

static bool on(void)
{
    return atomic_load_explicit(&wd.on, memory_order_acquire);
}

void tel__sysmon_stop(void)
{
    if (!on())
        return;
    atomic_store_explicit(&wd.stop, 1, memory_order_seq_cst);
    wake();
    pthread_join(wd.thread, NULL);
}

void tel__sysmon_fini(void)
{
    if (wd.ws)
        tel__mem_free(wd.ws, sizeof(*wd.ws) * (wd.n + wd.n_sp));
    wd.ws = NULL;
    wd.n = wd.n_sp = 0;
    atomic_store_explicit(&wd.on, false, memory_order_relaxed);
}

void tel__sysmon_unparked(void)
{
    if (!on())
        return;
    /* Our parked count went down before this; a seq_cst read-modify-write
     * of the count orders that before our seq_cst load of `sleeping` (the
     * Dekker pair with wd_main's store of `sleeping` and load of the
     * count). The idle path only. */
    tel__sched_n_parked_sync();
    if (atomic_load_explicit(&wd.sleeping, memory_order_seq_cst) &&
        atomic_exchange_explicit(&wd.sleeping, 0, memory_order_acq_rel))
        wake();
}

bool tel__sysmon_set_long(uint64_t ns)
{
    if (!on())
        return false;
    atomic_store_explicit(&wd.long_ns, ns, memory_order_relaxed);
    return true;
}

bool tel__sysmon_enabled(void)
{
    return on();
}

uint64_t tel__sysmon_n_ticks(void)
{
    return atomic_load_explicit(&wd.n_ticks, memory_order_relaxed);
}

uint64_t tel__sysmon_period_ns(void)
{
    return on() ? wd.period_ns : 0;
}

void tel__sysmon_record(unsigned i, uint64_t *longest_ns, uint64_t *id,
                        uint64_t *current_ns)
{
    *longest_ns = *id = *current_ns = 0;
    if (!on() || i >= wd.n)
        return;
    struct wd_sched *w = &wd.ws[i];
    tel__spin_lock(&wd.lock);
    *longest_ns = w->longest_ns;
    *id = w->longest_id;
    *current_ns = w->cur_ns;
    tel__spin_unlock(&wd.lock);
}
