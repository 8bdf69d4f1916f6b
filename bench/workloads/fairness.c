/*
 * bench/workloads/fairness.c: does a busy process stall the others? HOGS
 * CPU-bound processes count forever; a ticker process sleeps 1 ms, TICKS
 * times, and records each wake-up's lateness (the time it actually slept
 * minus 1 ms, on a monotonic clock). The run stops after TICKS ticks or
 * CAP_MS milliseconds from the start (just before the hogs are spawned),
 * whichever comes first; the hogs are never told to stop: the main process
 * returns, and tel_run ends them.
 *
 *   fairness [-s S] [HOGS] [TICKS] [CAP_MS]   defaults 1,000, 2,000, 10,000
 *
 * Telar has no asynchronous preemption, so a hog calls tel_reduce(1) each
 * iteration: the compiled-in preemption point a Telar loop must have (the
 * Go peer relies on async preemption, the Erlang peer on the VM's
 * reductions). Prints, as workload fairness_h<HOGS>, the lateness
 * percentiles p50_us, p99_us, max_us (nearest rank) and the ticks done.
 * Exits 1 if no tick completed, or if some hog never ran at all.
 *
 * A watchdog thread (outside the runtime) ends the program with exit 1 if
 * no result is in WATCHDOG_GRACE_S seconds after CAP_MS: then the runtime
 * starved even the main process, whose receive times out at CAP_MS, and
 * there is no honest figure to print, only a hang to avoid.
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

/* One per hog, each on its own cache line so hogs on different schedulers
 * do not slow each other down through false sharing. */
struct hog_count {
    _Alignas(64) _Atomic uint64_t n;
};

struct run {
    uint64_t hogs, ticks_max, cap_ms;
    uint64_t deadline_ns; /* wl_now_ns() at the start, plus CAP_MS */
    unsigned schedulers;
    tel_pid_t main;
    struct hog_count *counts;
    int64_t *late_ns; /* ticks_max samples; the ticker's, until it reports */
    /* Ticks done. Release: pairs with the acquire in main(), which reads
     * late_ns[0..ticks) after tel_run, when the ticker is gone. */
    _Atomic uint64_t ticks;
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
    for (uint64_t i = 0; i < r->hogs; i++)
        (void)wl_spawn(hog, &r->counts[i].n);
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
    /* Returning ends the hogs (and the ticker, if it is still sleeping). */
}

/* Outside the runtime: give up WATCHDOG_GRACE_S after the cap. */
static void *watchdog(void *arg)
{
    struct run *r = arg;
    struct timespec ts = {
        .tv_sec = (time_t)(r->cap_ms / 1000) + WATCHDOG_GRACE_S,
        .tv_nsec = (long)(r->cap_ms % 1000) * 1000000,
    };
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
    fprintf(stderr,
            "%s: no result %d s after CAP_MS (%" PRIu64 " ticks done): "
            "the main process is starved\n",
            *wl_prog(), WATCHDOG_GRACE_S,
            atomic_load_explicit(&r->ticks, memory_order_relaxed));
    _exit(1);
}

int main(int argc, char **argv)
{
    static const char sizes[] =
        "[HOGS] [TICKS] [CAP_MS]   (HOGS >= 0, TICKS and CAP_MS >= 1)";
    struct wl_args a = wl_parse(argc, argv, sizes);
    static struct run r; /* static: the watchdog may outlive main's frame */
    r.hogs = wl_pos_min(&a, 0, 1000, 0, sizes);
    r.ticks_max = wl_pos_min(&a, 1, 2000, 1, sizes);
    r.cap_ms = wl_pos_min(&a, 2, 10000, 1, sizes);
    tel_config_t cfg = {.schedulers = a.schedulers};
    wl_need_processes(&cfg, r.hogs + 2, sizes); /* hogs, ticker, main */
    r.counts = aligned_alloc(64, (r.hogs + 1) * sizeof(*r.counts));
    r.late_ns = malloc(r.ticks_max * sizeof(*r.late_ns));
    if (r.counts == NULL || r.late_ns == NULL)
        wl_die("out of memory");
    for (uint64_t i = 0; i < r.hogs; i++)
        atomic_init(&r.counts[i].n, 0);
    atomic_init(&r.ticks, 0);

    pthread_t wd;
    if (pthread_create(&wd, NULL, watchdog, &r) != 0 || pthread_detach(wd) != 0)
        wl_die("cannot start the watchdog thread");
    wl_run(&cfg, root, &r);

    uint64_t ticks = atomic_load_explicit(&r.ticks, memory_order_acquire);
    if (ticks == 0)
        wl_die("no tick completed in %" PRIu64 " ms", r.cap_ms);
    for (uint64_t i = 0; i < r.hogs; i++) {
        if (atomic_load_explicit(&r.counts[i].n, memory_order_relaxed) == 0)
            wl_die("hog %" PRIu64 " never ran", i);
    }
    wl_sort_i64(r.late_ns, ticks);
    char name[64];
    snprintf(name, sizeof(name), "fairness_h%" PRIu64, r.hogs);
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
