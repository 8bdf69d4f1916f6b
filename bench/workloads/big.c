/*
 * bench/workloads/big.c: Savina's big: many-to-many messaging. WORKERS
 * processes each send PINGS pings, one at a time, each to a random other
 * worker (the sequence seeded per worker), which answers with a pong; the
 * next ping goes out when the pong is in. A worker that has had all its
 * pongs tells the main process, and keeps answering others' pings until the
 * main process, having all WORKERS reports, stops everyone; each then says
 * how many pings it answered.
 *
 *   big [-s S] [WORKERS] [PINGS]     defaults 1,000 and 1,000
 *
 * Prints ns_per_msg: from sending the workers their start message to the
 * last report, over the pings and pongs (2 x WORKERS x PINGS). Exits 1
 * unless WORKERS reports of PINGS pongs came in and the pings answered sum
 * to WORKERS x PINGS.
 */
#include <inttypes.h>

#include "telar.h"
#include "workload.h"

#define TAG_GO 1       /* main -> worker: its number (uint64_t) */
#define TAG_PING 2     /* worker -> worker */
#define TAG_PONG 3     /* worker -> worker, answering a ping */
#define TAG_DONE 4     /* worker -> main: pongs it had (uint64_t) */
#define TAG_STOP 5     /* main -> worker */
#define TAG_ANSWERED 6 /* worker -> main: pings it answered (uint64_t) */

struct run {
    uint64_t workers, pings, ns, pongs, answered;
    unsigned schedulers;
    tel_pid_t main;
    tel_pid_t *pids; /* complete before any worker is sent TAG_GO */
};

static void ping_random(const struct run *r, uint64_t me, uint64_t *rng)
{
    uint64_t to = wl_rand(rng) % (r->workers - 1);
    if (to >= me)
        to++; /* never ourselves */
    wl_send(r->pids[to], TAG_PING, NULL, 0);
}

static bool is_go(const tel_msg_t *m, void *ctx)
{
    (void)ctx;
    return m->tag == TAG_GO;
}

static void worker(void *arg)
{
    const struct run *r = arg; /* outlives us: main waits for our answer */
    /* Selectively: a worker that started earlier may ping us first. */
    tel_msg_t *m;
    int rc = tel_recv_match(&m, is_go, NULL, TEL_INFINITY);
    if (rc != 0)
        wl_die("tel_recv_match: %s", tel_strerror(rc));
    uint64_t me = wl_msg_u64(m);
    tel_msg_free(m);
    uint64_t rng = me, pongs = 0, answered = 0;
    ping_random(r, me, &rng);
    for (;;) {
        m = wl_recv();
        uint64_t tag = m->tag;
        tel_pid_t from = m->from;
        tel_msg_free(m);
        switch (tag) {
        case TAG_PING:
            wl_send(from, TAG_PONG, NULL, 0);
            answered++;
            break;
        case TAG_PONG:
            if (++pongs < r->pings)
                ping_random(r, me, &rng);
            else
                wl_send_u64(r->main, TAG_DONE, pongs);
            break;
        case TAG_STOP:
            wl_send_u64(r->main, TAG_ANSWERED, answered);
            return;
        default:
            wl_die("worker got tag %" PRIu64, tag);
        }
    }
}

/* Receive n messages with the given tag, summing their payloads. */
static uint64_t collect(uint64_t n, uint64_t tag)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        tel_msg_t *m = wl_recv();
        if (m->tag != tag)
            wl_die("main got tag %" PRIu64 ", want %" PRIu64, m->tag, tag);
        sum += wl_msg_u64(m);
        tel_msg_free(m);
    }
    return sum;
}

static void root(void *arg)
{
    struct run *r = arg;
    r->schedulers = tel_scheduler_count();
    r->main = tel_self();
    r->pids = malloc(r->workers * sizeof(*r->pids));
    if (r->pids == NULL)
        wl_die("out of memory");
    for (uint64_t i = 0; i < r->workers; i++)
        r->pids[i] = wl_spawn(worker, r);

    uint64_t t0 = wl_now_ns();
    for (uint64_t i = 0; i < r->workers; i++)
        wl_send_u64(r->pids[i], TAG_GO, i);
    r->pongs = collect(r->workers, TAG_DONE);
    r->ns = wl_now_ns() - t0;

    for (uint64_t i = 0; i < r->workers; i++)
        wl_send(r->pids[i], TAG_STOP, NULL, 0);
    r->answered = collect(r->workers, TAG_ANSWERED);
    free(r->pids);
}

int main(int argc, char **argv)
{
    static const char sizes[] =
        "[WORKERS] [PINGS]   (WORKERS >= 2, PINGS >= 1)";
    struct wl_args a = wl_parse(argc, argv, sizes);
    struct run r = {.workers = wl_pos_min(&a, 0, 1000, 2, sizes),
                    .pings = wl_pos_min(&a, 1, 1000, 1, sizes)};
    tel_config_t cfg = {.schedulers = a.schedulers};
    wl_need_processes(&cfg, r.workers + 1, sizes);
    wl_run(&cfg, root, &r);
    uint64_t total = r.workers * r.pings;
    /* (root died unless WORKERS reports came in.) */
    if (r.pongs != total || r.answered != total)
        wl_die("%" PRIu64 " pongs, %" PRIu64 " pings answered; want %" PRIu64,
               r.pongs, r.answered, total);
    wl_report("big", r.schedulers, "ns_per_msg",
              (double)r.ns / (double)(2 * total));
    return 0;
}
