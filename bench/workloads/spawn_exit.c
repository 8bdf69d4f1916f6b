/*
 * bench/workloads/spawn_exit.c: the cost of a short-lived process, start to
 * finish. The main process spawns N processes in batches of BATCH; each
 * sends `done` to the main process and exits, and the main process waits
 * for a batch's replies before it spawns the next batch.
 *
 *   spawn_exit [-s S] [N] [BATCH]     defaults 1,000,000 and 1,000
 *
 * Prints ns_per_spawn_exit: the whole loop's time over N (the last batch
 * may be short when BATCH does not divide N). Exits 1 unless exactly N
 * `done` replies came back.
 */
#include <inttypes.h>

#include "telar.h"
#include "workload.h"

#define TAG_DONE 1

struct run {
    uint64_t n, batch, replies, ns;
    unsigned schedulers;
    tel_pid_t main;
};

static void child(void *arg)
{
    const struct run *r = arg; /* outlives us: main waits for our reply */
    wl_send(r->main, TAG_DONE, NULL, 0);
}

static void root(void *arg)
{
    struct run *r = arg;
    r->schedulers = tel_scheduler_count();
    r->main = tel_self();
    uint64_t t0 = wl_now_ns();
    for (uint64_t started = 0; started < r->n;) {
        uint64_t b = r->n - started < r->batch ? r->n - started : r->batch;
        for (uint64_t i = 0; i < b; i++)
            (void)wl_spawn(child, r);
        for (uint64_t i = 0; i < b; i++) {
            tel_msg_t *m = wl_recv();
            if (m->tag != TAG_DONE)
                wl_die("main got tag %" PRIu64 ", want done", m->tag);
            tel_msg_free(m);
            r->replies++;
        }
        started += b;
    }
    r->ns = wl_now_ns() - t0;
}

int main(int argc, char **argv)
{
    static const char sizes[] = "[N] [BATCH]   (both >= 1)";
    struct wl_args a = wl_parse(argc, argv, sizes);
    struct run r = {.n = wl_pos_min(&a, 0, 1000000, 1, sizes),
                    .batch = wl_pos_min(&a, 1, 1000, 1, sizes)};
    tel_config_t cfg = {.schedulers = a.schedulers};
    /* A batch's children may not all have finished exiting when the next
     * batch starts: allow two batches and the main process. */
    wl_need_processes(&cfg, 2 * r.batch + 1, sizes);
    wl_run(&cfg, root, &r);
    if (r.replies != r.n)
        wl_die("%" PRIu64 " replies, want %" PRIu64, r.replies, r.n);
    wl_report("spawn_exit", r.schedulers, "ns_per_spawn_exit",
              (double)r.ns / (double)r.n);
    return 0;
}
