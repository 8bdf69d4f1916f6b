/*
 * bench/workloads/spawn_idle.c: what an idle process costs. The main process
 * spawns N processes that each block in a receive, then measures:
 *   - spawn_ns_per_proc: the spawn loop alone, over N;
 *   - bytes_per_proc: VmRSS growth from just before the spawn loop to the
 *     moment all N have reached their receive, over N;
 *   - exit_ns_per_proc: sending each its stop until all N `done` replies
 *     are in (each replies, then exits), over N.
 *
 *   spawn_idle [-s S] [N] [HIBERNATE]
 *       default 1,000,000 processes; N replies checked
 *
 * HIBERNATE = 1 (default 0): each process hibernates (tel_hibernate) right
 * after bumping the counter, instead of blocking in a plain receive, and
 * takes its stop on a fresh stack when it wakes. The metrics are then
 * printed as workload spawn_idle_hib: what an idle process costs once it
 * holds no stack.
 *
 * Each process bumps a shared atomic counter just before its receive; the
 * main process polls it, sleeping 1 ms between looks, as the peers do
 * (bench/README.md). The pid table the main process keeps (8 bytes a
 * process) is allocated and touched before the first VmRSS reading, so the
 * growth is the processes' own: stacks, control blocks, runtime tables.
 * Exits 1 if a reply is missing or wrong.
 */
#include <inttypes.h>
#include <stdatomic.h>

#include "telar.h"
#include "workload.h"

#define TAG_STOP 1
#define TAG_DONE 2

struct run {
    uint64_t n, replies, hibernate;
    uint64_t spawn_ns, exit_ns;
    int64_t rss_growth;
    unsigned schedulers;
    tel_pid_t main;
    /* Bumped by each process just before it blocks (relaxed: the main
     * process only needs to see the count reach N, not any other data). */
    _Atomic uint64_t waiting;
};

/* Take the stop, reply, exit. */
static void stop_and_reply(struct run *r)
{
    tel_msg_t *m = wl_recv();
    if (m->tag != TAG_STOP)
        wl_die("idle process got tag %" PRIu64 ", want stop", m->tag);
    tel_msg_free(m);
    wl_send(r->main, TAG_DONE, NULL, 0);
}

static void woken(void *arg)
{
    stop_and_reply(arg);
}

static void idle(void *arg)
{
    struct run *r = arg; /* outlives us: main waits for our reply */
    atomic_fetch_add_explicit(&r->waiting, 1, memory_order_relaxed);
    if (r->hibernate) {
        int rc = tel_hibernate(woken, r);
        wl_die("tel_hibernate: %s", tel_strerror(rc));
    }
    stop_and_reply(r);
}

static void root(void *arg)
{
    struct run *r = arg;
    r->schedulers = tel_scheduler_count();
    r->main = tel_self();
    tel_pid_t *pids = malloc(r->n * sizeof(*pids));
    if (pids == NULL)
        wl_die("out of memory for %" PRIu64 " pids", r->n);
    memset(pids, 0, r->n * sizeof(*pids)); /* fault it in before rss0 */

    uint64_t rss0 = wl_vmrss_bytes();
    uint64_t t0 = wl_now_ns();
    for (uint64_t i = 0; i < r->n; i++)
        pids[i] = wl_spawn(idle, r);
    r->spawn_ns = wl_now_ns() - t0;

    while (atomic_load_explicit(&r->waiting, memory_order_relaxed) < r->n) {
        if (tel_sleep(1) != 0)
            wl_die("tel_sleep failed");
    }
    r->rss_growth = (int64_t)wl_vmrss_bytes() - (int64_t)rss0;

    t0 = wl_now_ns();
    for (uint64_t i = 0; i < r->n; i++)
        wl_send(pids[i], TAG_STOP, NULL, 0);
    for (uint64_t i = 0; i < r->n; i++) {
        tel_msg_t *m = wl_recv();
        if (m->tag != TAG_DONE)
            wl_die("main got tag %" PRIu64 ", want done", m->tag);
        tel_msg_free(m);
        r->replies++;
    }
    r->exit_ns = wl_now_ns() - t0;
    free(pids);
}

int main(int argc, char **argv)
{
    static const char sizes[] = "[N] [HIBERNATE]   (N >= 1, HIBERNATE 0 or 1)";
    struct wl_args a = wl_parse(argc, argv, sizes);
    struct run r = {.n = wl_pos_min(&a, 0, 1000000, 1, sizes),
                    .hibernate = wl_pos_u64(&a, 1, 0)};
    if (r.hibernate > 1)
        wl_usage(argv[0], sizes);
    const char *name = r.hibernate ? "spawn_idle_hib" : "spawn_idle";
    tel_config_t cfg = {.schedulers = a.schedulers};
    wl_need_processes(&cfg, r.n + 1, sizes); /* N and the main process */
    wl_run(&cfg, root, &r);
    if (r.replies != r.n)
        wl_die("%" PRIu64 " replies, want %" PRIu64, r.replies, r.n);
    double n = (double)r.n;
    wl_report(name, r.schedulers, "spawn_ns_per_proc",
              (double)r.spawn_ns / n);
    wl_report(name, r.schedulers, "bytes_per_proc",
              (double)r.rss_growth / n);
    wl_report(name, r.schedulers, "exit_ns_per_proc",
              (double)r.exit_ns / n);
    return 0;
}
