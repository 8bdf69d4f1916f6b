/*
 * bench/workloads/fairness.c: does a busy process stall the others? HOGS
 * busy processes run forever; a ticker process sleeps 1 ms, TICKS times,
 * and records each wake-up's lateness (the time it actually slept minus
 * 1 ms, on a monotonic clock). The run stops after TICKS ticks or CAP_MS
 * milliseconds from the start (mode 0: just before the hogs are spawned;
 * mode 1: when the ticker starts, after the warm-up), whichever comes
 * first; the hogs are never told to stop: the main process returns, and
 * tel_run ends them.
 *
 *   fairness [-s S] [HOGS] [TICKS] [CAP_MS] [MODE]
 *                                      defaults 1,000, 2,000, 10,000, 0
 *
 * MODE 0, cooperative hogs: each counts in a loop. Telar has no
 * asynchronous preemption, so a hog calls tel_reduce(1) each iteration:
 * the compiled-in preemption point a Telar loop must have (the Go peer
 * relies on async preemption, the Erlang peer on the VM's reductions).
 * The ticker starts right after the hogs are spawned. Printed as workload
 * fairness_h<HOGS>.
 *
 * MODE 1, blocking hogs: each loops forever reading one byte from its own
 * pipe with a blocking read(), made through tel_blocking so that the read
 * blocks a thread of the blocking pool, not a scheduler. A feeder thread
 * (a plain pthread, outside the runtime) writes one byte to the hogs'
 * pipes in turn (round-robin), sleeping FEED_SLEEP_US between writes, so
 * that the hogs spend nearly all their time blocked in the kernel and the
 * runtime sees a steady stream of wake-ups (one hog resumes per write:
 * about 10,000 a second, the sleep's timer slack included). The pool may
 * run HOGS threads at once (tel_config_t.blocking_threads = HOGS, at most
 * TEL_MAX_BLOCKING_THREADS; past that the extra reads queue in the pool),
 * so that every hog can be blocked at the same time, as the peers' hogs
 * are. Warm-up is not measured: the ticker starts once every hog has done
 * one read (so the pool's threads exist), which must happen within CAP_MS.
 * At the end the feeder closes the pipes' write ends, so every read still
 * blocked returns 0 (end of file) and tel_run, which waits for running
 * blocking calls, can return. Printed as workload fairness_blk<HOGS>.
 *
 * MODE 2, non-cooperative hogs: each runs a pure C arithmetic loop (an
 * xorshift generator in a local, behind an empty asm barrier so that the
 * compiler can neither drop nor hoist it) that never calls Telar or any
 * function: no reduction point at all. Only the runtime's asynchronous
 * (signal) preemption can take a scheduler back from such a hog. A hog
 * publishes its iteration count on its first iteration and then every
 * 65,536 (a plain relaxed store, no call), so the program can tell that
 * hogs ran. The ticker starts right after the hogs are spawned, as in
 * mode 0. A runtime without asynchronous preemption never runs the ticker
 * again: the watchdog below then ends the program with exit 1 and says
 * so. Printed as workload fairness_nc<HOGS>.
 *
 * Prints the lateness percentiles p50_us, p99_us, max_us (nearest rank)
 * and the ticks done. Exits 1 if no tick completed, or if some hog never
 * ran at all (mode 1: never completed a read; mode 2: if no hog ran, since
 * with a time slice of milliseconds not all of 1,000 hogs need to have had
 * a turn within CAP_MS, as in Go).
 *
 * A watchdog thread (outside the runtime) ends the program with exit 1 if
 * no result is in WATCHDOG_GRACE_S seconds after CAP_MS (twice CAP_MS in
 * mode 1: warm-up, then the ticks): then the runtime starved even the main
 * process, whose receive times out at CAP_MS, and there is no honest
 * figure to print, only a hang to avoid.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "telar.h"
#include "workload.h"

#define TAG_DONE 1 /* ticker -> main */
#define WATCHDOG_GRACE_S 5
#define MODE_COOP 0
#define MODE_BLOCK 1
#define MODE_NONCOOP 2
/* Mode 2: a hog publishes its count when (n & NC_PUBLISH_MASK) == 1. */
#define NC_PUBLISH_MASK 0xffffu
/* Mode 1: the feeder's sleep between two writes (a relative sleep: with
 * Linux's default 50 us timer slack a write goes out about every 60 to
 * 100 us). The Go and Erlang peers use the same sleep. */
#define FEED_SLEEP_US 50

/* One per hog, each on its own cache line so hogs on different schedulers
 * do not slow each other down through false sharing. n counts the hog's
 * iterations (modes 0 and 2; mode 2 updates it every 65,536 iterations)
 * or the bytes it has read (mode 1). */
struct hog_count {
    _Alignas(64) _Atomic uint64_t n;
    int rfd, wfd; /* mode 1: the hog's pipe; the feeder owns wfd */
};

struct run {
    uint64_t hogs, ticks_max, cap_ms, mode;
    uint64_t deadline_ns; /* wl_now_ns() at the start, plus CAP_MS */
    unsigned schedulers;
    tel_pid_t main;
    struct hog_count *counts;
    int64_t *late_ns; /* ticks_max samples; the ticker's, until it reports */
    /* Ticks done. Release: pairs with the acquire in main(), which reads
     * late_ns[0..ticks) after tel_run, when the ticker is gone. */
    _Atomic uint64_t ticks;
    /* Mode 1: main asks the feeder to stop; the bytes read during the
     * ticks, and how long they took (a diagnostic on stderr). */
    _Atomic int feeder_stop;
    uint64_t reads_ticking, ticking_ns;
};

static void hog(void *arg)
{
    _Atomic uint64_t *count = arg;
    for (uint64_t n = 1;; n++) {
        atomic_store_explicit(count, n, memory_order_relaxed);
        if (tel_reduce(1) != 0)
            wl_die("tel_reduce failed");
    }
}

/* Mode 2: never calls anything (no tel_reduce, no libc), so nothing but an
 * asynchronous preemption can interrupt it. The asm barrier makes x opaque
 * to the compiler each iteration: the loop cannot be removed, folded or
 * vectorised away, and its body stays a few register operations. */
static void noncoop_hog(void *arg)
{
    _Atomic uint64_t *count = arg;
    uint64_t x = (uint64_t)(uintptr_t)arg | 1; /* xorshift64: never 0 */
    for (uint64_t n = 1;; n++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        __asm__ volatile("" : "+r"(x));
        if ((n & NC_PUBLISH_MASK) == 1)
            atomic_store_explicit(count, n, memory_order_relaxed);
    }
}

/* On a pool thread: one blocking read() of one byte from the hog's pipe.
 * Returns 1 (a byte), 0 (end of file: the feeder has stopped) or -errno. */
static intptr_t read_one(void *arg)
{
    const struct hog_count *h = arg;
    char c;
    ssize_t n;
    do
        n = read(h->rfd, &c, 1);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -(intptr_t)errno : (intptr_t)n;
}

/* Mode 1: read from the pipe forever, each read through tel_blocking. arg
 * (the hog's slot) outlives the hog and every read it started. */
static void blocking_hog(void *arg)
{
    struct hog_count *h = arg;
    for (uint64_t n = 1;; n++) {
        intptr_t got;
        int rc = tel_blocking(read_one, h, &got);
        if (rc == TEL_ESHUTDOWN)
            return; /* the main process has returned: the run is over */
        if (rc != 0)
            wl_die("tel_blocking: %s", tel_strerror(rc));
        if (got == 0)
            return; /* the feeder has closed the pipe: the run is over */
        if (got < 0)
            wl_die("read from a hog's pipe: %s", strerror((int)-got));
        atomic_store_explicit(&h->n, n, memory_order_relaxed);
    }
}

/* Mode 1, outside the runtime: one byte to each hog's pipe in turn, a
 * FEED_SLEEP_US sleep between writes, until asked to stop; then close the
 * write ends, which ends every read still blocked. */
static void *feeder(void *arg)
{
    struct run *r = arg;
    const struct timespec pause = {.tv_nsec = FEED_SLEEP_US * 1000};
    uint64_t i = 0;
    while (!atomic_load_explicit(&r->feeder_stop, memory_order_relaxed)) {
        (void)nanosleep(&pause, NULL); /* EINTR: just write sooner */
        ssize_t n;
        do
            n = write(r->counts[i].wfd, "x", 1);
        while (n < 0 && errno == EINTR);
        if (n != 1)
            wl_die("write to a hog's pipe: %s",
                   n < 0 ? strerror(errno) : "short write");
        i = i + 1 == r->hogs ? 0 : i + 1;
    }
    for (uint64_t j = 0; j < r->hogs; j++)
        (void)close(r->counts[j].wfd);
    return NULL;
}

/* How many hogs have published a count (have started). */
static uint64_t hogs_started(const struct run *r)
{
    uint64_t started = 0;
    for (uint64_t i = 0; i < r->hogs; i++)
        started +=
            atomic_load_explicit(&r->counts[i].n, memory_order_relaxed) != 0;
    return started;
}

static uint64_t total_reads(const struct run *r)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < r->hogs; i++)
        sum += atomic_load_explicit(&r->counts[i].n, memory_order_relaxed);
    return sum;
}

/* Mode 1: wait (sleeping 1 ms between looks) until every hog has read a
 * byte, so that the ticker measures the steady state, not the pool's
 * threads being started; dies if that takes longer than CAP_MS. */
static void await_warm_hogs(const struct run *r)
{
    uint64_t give_up = wl_now_ns() + r->cap_ms * 1000000;
    for (uint64_t i = 0; i < r->hogs;) {
        if (atomic_load_explicit(&r->counts[i].n, memory_order_relaxed) != 0) {
            i++;
            continue;
        }
        if (wl_now_ns() >= give_up)
            wl_die("hog %" PRIu64 " has read nothing after %" PRIu64 " ms",
                   i, r->cap_ms);
        if (tel_sleep(1) != 0)
            wl_die("tel_sleep failed");
    }
}

static void ticker(void *arg)
{
    struct run *r = arg; /* outlives us: tel_run ends us before returning */
    for (uint64_t i = 0; i < r->ticks_max; i++) {
        uint64_t t0 = wl_now_ns();
        if (tel_sleep(1) != 0)
            wl_die("tel_sleep failed");
        uint64_t t1 = wl_now_ns();
        r->late_ns[i] = (int64_t)(t1 - t0) - 1000000;
        atomic_store_explicit(&r->ticks, i + 1, memory_order_release);
        if (t1 >= r->deadline_ns)
            break;
    }
    wl_send(r->main, TAG_DONE, NULL, 0);
}

static void root(void *arg)
{
    struct run *r = arg;
    r->schedulers = tel_scheduler_count();
    r->main = tel_self();
    r->deadline_ns = wl_now_ns() + r->cap_ms * 1000000;
    for (uint64_t i = 0; i < r->hogs; i++) {
        if (r->mode == MODE_COOP)
            (void)wl_spawn(hog, &r->counts[i].n);
        else if (r->mode == MODE_NONCOOP)
            (void)wl_spawn(noncoop_hog, &r->counts[i].n);
        else
            (void)wl_spawn(blocking_hog, &r->counts[i]);
    }
    uint64_t reads0 = 0, t_start = 0;
    if (r->mode == MODE_BLOCK) {
        await_warm_hogs(r);
        reads0 = total_reads(r);
        t_start = wl_now_ns();
        r->deadline_ns = t_start + r->cap_ms * 1000000;
    }
    (void)wl_spawn(ticker, r);
    /* The ticker stops itself at the deadline; this timeout only matters
     * if the ticker is starved so badly it cannot even notice. */
    uint64_t now = wl_now_ns();
    int64_t left_ms = now < r->deadline_ns
                          ? (int64_t)((r->deadline_ns - now) / 1000000) + 1
                          : 0;
    tel_msg_t *m;
    int rc = tel_recv(&m, left_ms);
    if (rc == 0) {
        if (m->tag != TAG_DONE)
            wl_die("main got tag %" PRIu64 ", want done", m->tag);
        tel_msg_free(m);
    } else if (rc != TEL_ETIMEDOUT) {
        wl_die("tel_recv: %s", tel_strerror(rc));
    }
    if (r->mode == MODE_BLOCK) {
        r->reads_ticking = total_reads(r) - reads0;
        r->ticking_ns = wl_now_ns() - t_start;
        /* The feeder closes the pipes: the reads still blocked return 0,
         * so tel_run (which waits for them) can end. */
        atomic_store_explicit(&r->feeder_stop, 1, memory_order_relaxed);
    }
    /* Returning ends the hogs (and the ticker, if it is still sleeping). */
}

/* Outside the runtime: give up WATCHDOG_GRACE_S after the cap (mode 1:
 * after twice the cap, the warm-up's bound and the ticks'). */
static void *watchdog(void *arg)
{
    struct run *r = arg;
    uint64_t cap_ms = r->mode == MODE_BLOCK ? 2 * r->cap_ms : r->cap_ms;
    struct timespec ts = {
        .tv_sec = (time_t)(cap_ms / 1000) + WATCHDOG_GRACE_S,
        .tv_nsec = (long)(cap_ms % 1000) * 1000000,
    };
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
    fprintf(stderr,
            "%s: no result %d s after CAP_MS (%" PRIu64 " ticks done): "
            "the main process is starved\n",
            *wl_prog(), WATCHDOG_GRACE_S,
            atomic_load_explicit(&r->ticks, memory_order_relaxed));
    if (r->mode == MODE_NONCOOP)
        fprintf(stderr,
                "%s: mode 2: %" PRIu64 " of %" PRIu64 " non-cooperative "
                "hogs started and the ticker starved: the runtime did not "
                "preempt them (no asynchronous preemption, or it failed), "
                "so no figure\n",
                *wl_prog(), hogs_started(r), r->hogs);
    _exit(1);
}

int main(int argc, char **argv)
{
    static const char sizes[] =
        "[HOGS] [TICKS] [CAP_MS] [MODE]   (HOGS >= 0, TICKS and CAP_MS >= 1; "
        "MODE 0: cooperative hogs, 1: hogs blocked in read() via "
        "tel_blocking, 2: non-cooperative hogs)";
    struct wl_args a = wl_parse(argc, argv, sizes);
    static struct run r; /* static: the watchdog may outlive main's frame */
    r.hogs = wl_pos_min(&a, 0, 1000, 0, sizes);
    r.ticks_max = wl_pos_min(&a, 1, 2000, 1, sizes);
    r.cap_ms = wl_pos_min(&a, 2, 10000, 1, sizes);
    r.mode = wl_pos_min(&a, 3, MODE_COOP, 0, sizes);
    if (r.mode > MODE_NONCOOP)
        wl_usage(*wl_prog(), sizes);
    tel_config_t cfg = {.schedulers = a.schedulers};
    wl_need_processes(&cfg, r.hogs + 2, sizes); /* hogs, ticker, main */
    if (r.mode == MODE_BLOCK && r.hogs > 0) /* all hogs blocked at once */
        cfg.blocking_threads = r.hogs < TEL_MAX_BLOCKING_THREADS
                                   ? (unsigned)r.hogs
                                   : TEL_MAX_BLOCKING_THREADS;
    r.counts = aligned_alloc(64, (r.hogs + 1) * sizeof(*r.counts));
    r.late_ns = malloc(r.ticks_max * sizeof(*r.late_ns));
    if (r.counts == NULL || r.late_ns == NULL)
        wl_die("out of memory");
    for (uint64_t i = 0; i < r.hogs; i++) {
        atomic_init(&r.counts[i].n, 0);
        r.counts[i].rfd = r.counts[i].wfd = -1;
        if (r.mode == MODE_BLOCK) {
            int fds[2];
            if (pipe(fds) != 0)
                wl_die("pipe for hog %" PRIu64 ": %s (raise ulimit -n?)", i,
                       strerror(errno));
            r.counts[i].rfd = fds[0];
            r.counts[i].wfd = fds[1];
        }
    }
    atomic_init(&r.ticks, 0);
    atomic_init(&r.feeder_stop, 0);

    pthread_t wd, feed;
    if (pthread_create(&wd, NULL, watchdog, &r) != 0 || pthread_detach(wd) != 0)
        wl_die("cannot start the watchdog thread");
    if (r.mode == MODE_BLOCK && r.hogs > 0 &&
        pthread_create(&feed, NULL, feeder, &r) != 0)
        wl_die("cannot start the feeder thread");
    wl_run(&cfg, root, &r);
    if (r.mode == MODE_BLOCK && r.hogs > 0) {
        atomic_store_explicit(&r.feeder_stop, 1, memory_order_relaxed);
        if (pthread_join(feed, NULL) != 0)
            wl_die("cannot join the feeder thread");
        for (uint64_t i = 0; i < r.hogs; i++)
            (void)close(r.counts[i].rfd);
    }

    uint64_t ticks = atomic_load_explicit(&r.ticks, memory_order_acquire);
    if (ticks == 0)
        wl_die("no tick completed in %" PRIu64 " ms", r.cap_ms);
    uint64_t started = hogs_started(&r);
    if (r.mode == MODE_NONCOOP ? r.hogs > 0 && started == 0
                               : started < r.hogs)
        wl_die("%" PRIu64 " of %" PRIu64 " hogs never ran",
               r.hogs - started, r.hogs);
    wl_sort_i64(r.late_ns, ticks);
    char name[64];
    snprintf(name, sizeof(name), "fairness_%s%" PRIu64,
             r.mode == MODE_BLOCK    ? "blk"
             : r.mode == MODE_NONCOOP ? "nc"
                                      : "h",
             r.hogs);
    if (r.mode == MODE_NONCOOP && r.hogs > 0)
        fprintf(stderr, "%s: %" PRIu64 " of %" PRIu64 " hogs ran\n", name,
                started, r.hogs);
    if (r.mode == MODE_BLOCK && r.hogs > 0 && r.ticking_ns > 0)
        fprintf(stderr, "%s: %" PRIu64 " hog reads in %.0f ms (%.0f/s)\n",
                name, r.reads_ticking, (double)r.ticking_ns / 1e6,
                (double)r.reads_ticking * 1e9 / (double)r.ticking_ns);
    wl_report(name, r.schedulers, "p50_us",
              (double)wl_percentile(r.late_ns, ticks, 50) / 1e3);
    wl_report(name, r.schedulers, "p99_us",
              (double)wl_percentile(r.late_ns, ticks, 99) / 1e3);
    wl_report(name, r.schedulers, "max_us",
              (double)r.late_ns[ticks - 1] / 1e3);
    wl_report(name, r.schedulers, "ticks", (double)ticks);
    free(r.late_ns);
    free(r.counts);
    return 0;
}
