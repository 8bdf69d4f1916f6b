/*
 * bench/workloads/fork_join.c: Savina's two fork-join shapes.
 *
 *   fjcreate: the main process spawns N processes one by one and sends each
 *   one message carrying its index i; the process computes sin(i), replies
 *   with it and exits. The main process waits for all N replies.
 *
 *   fjthrput: ACTORS processes each receive MSGS messages, sent round-robin
 *   by the main process (message j, to every actor in turn, carries j); per
 *   message an actor adds sin(j) to its sum. After the last round the main
 *   process sends each a stop, on which it reports its count and sum.
 *
 *   fork_join [-s S] [N] [ACTORS] [MSGS]   defaults 100,000, 60, 10,000
 *
 * Prints create_ns_per_proc (fjcreate: first spawn to last reply, over N)
 * and thrput_ns_per_msg (fjthrput: first spawn to last report, over
 * ACTORS x MSGS). Exits 1 on a missing reply, a wrong count, or a sum that
 * disagrees with the same computation done here.
 */
#include <inttypes.h>
#include <math.h>

#include "telar.h"
#include "workload.h"

#define TAG_WORK 1   /* main -> worker: an index (uint64_t) */
#define TAG_RESULT 2 /* fjcreate worker -> main: sin(index) (double) */
#define TAG_STOP 3   /* main -> fjthrput actor: no more work */
#define TAG_REPORT 4 /* fjthrput actor -> main: struct report */

struct report {
    uint64_t count;
    double sum;
};

struct run {
    uint64_t n, actors, msgs;
    uint64_t create_ns, thrput_ns;
    uint64_t create_replies, thrput_reports, thrput_bad;
    double create_sum;
    unsigned schedulers;
    tel_pid_t main;
};

/* The fixed computation both shapes do per message. */
static double work(uint64_t i)
{
    return sin((double)i);
}

static void create_worker(void *arg)
{
    const struct run *r = arg; /* outlives us: main waits for our reply */
    tel_msg_t *m = wl_recv();
    if (m->tag != TAG_WORK)
        wl_die("worker got tag %" PRIu64 ", want work", m->tag);
    double v = work(wl_msg_u64(m));
    tel_msg_free(m);
    wl_send(r->main, TAG_RESULT, &v, sizeof(v));
}

/* Count and sum work until told to stop; the count is checked by main. */
static void thrput_actor(void *arg)
{
    const struct run *r = arg; /* outlives us: main waits for our report */
    struct report rep = {0, 0.0};
    for (;;) {
        tel_msg_t *m = wl_recv();
        if (m->tag == TAG_STOP) {
            tel_msg_free(m);
            break;
        }
        if (m->tag != TAG_WORK)
            wl_die("actor got tag %" PRIu64 ", want work", m->tag);
        rep.sum += work(wl_msg_u64(m));
        rep.count++;
        tel_msg_free(m);
    }
    wl_send(r->main, TAG_REPORT, &rep, sizeof(rep));
}

static void fjcreate(struct run *r)
{
    uint64_t t0 = wl_now_ns();
    for (uint64_t i = 0; i < r->n; i++)
        wl_send_u64(wl_spawn(create_worker, r), TAG_WORK, i);
    for (uint64_t i = 0; i < r->n; i++) {
        tel_msg_t *m = wl_recv();
        double v;
        if (m->tag != TAG_RESULT || m->size != sizeof(v))
            wl_die("main got tag %" PRIu64 ", want a result", m->tag);
        memcpy(&v, m->data, sizeof(v));
        tel_msg_free(m);
        r->create_sum += v;
        r->create_replies++;
    }
    r->create_ns = wl_now_ns() - t0;
}

static void fjthrput(struct run *r, double want_sum)
{
    tel_pid_t *pids = malloc(r->actors * sizeof(*pids));
    if (pids == NULL)
        wl_die("out of memory");
    uint64_t t0 = wl_now_ns();
    for (uint64_t a = 0; a < r->actors; a++)
        pids[a] = wl_spawn(thrput_actor, r);
    for (uint64_t j = 0; j < r->msgs; j++) {
        for (uint64_t a = 0; a < r->actors; a++)
            wl_send_u64(pids[a], TAG_WORK, j);
    }
    for (uint64_t a = 0; a < r->actors; a++)
        wl_send(pids[a], TAG_STOP, NULL, 0);
    for (uint64_t a = 0; a < r->actors; a++) {
        tel_msg_t *m = wl_recv();
        struct report rep;
        if (m->tag != TAG_REPORT || m->size != sizeof(rep))
            wl_die("main got tag %" PRIu64 ", want a report", m->tag);
        memcpy(&rep, m->data, sizeof(rep));
        tel_msg_free(m);
        /* Every actor adds the same terms in the same order: exact. */
        if (rep.count != r->msgs || rep.sum != want_sum)
            r->thrput_bad++;
        r->thrput_reports++;
    }
    r->thrput_ns = wl_now_ns() - t0;
    free(pids);
}

static void root(void *arg)
{
    struct run *r = arg;
    r->schedulers = tel_scheduler_count();
    r->main = tel_self();
    double want = 0.0; /* an actor's sum, computed before the clock runs */
    for (uint64_t j = 0; j < r->msgs; j++)
        want += work(j);
    fjcreate(r);
    fjthrput(r, want);
}

int main(int argc, char **argv)
{
    static const char sizes[] = "[N] [ACTORS] [MSGS]   (all >= 1)";
    struct wl_args a = wl_parse(argc, argv, sizes);
    struct run r = {.n = wl_pos_min(&a, 0, 100000, 1, sizes),
                    .actors = wl_pos_min(&a, 1, 60, 1, sizes),
                    .msgs = wl_pos_min(&a, 2, 10000, 1, sizes)};
    tel_config_t cfg = {.schedulers = a.schedulers};
    /* fjcreate's last workers may still be exiting when fjthrput starts. */
    wl_need_processes(&cfg, r.n + r.actors + 1, sizes);
    wl_run(&cfg, root, &r);

    if (r.create_replies != r.n)
        wl_die("fjcreate: %" PRIu64 " replies, want %" PRIu64,
               r.create_replies, r.n);
    /* The replies came in any order, so their sum may differ from this one
     * in the last bits; each term is at most 1 in size. */
    double want = 0.0;
    for (uint64_t i = 0; i < r.n; i++)
        want += work(i);
    if (fabs(r.create_sum - want) > 1e-9 * (double)r.n)
        wl_die("fjcreate: sum %.17g, want %.17g", r.create_sum, want);
    if (r.thrput_reports != r.actors || r.thrput_bad != 0)
        wl_die("fjthrput: %" PRIu64 " reports, %" PRIu64 " wrong; want %"
               PRIu64 " right", r.thrput_reports, r.thrput_bad, r.actors);
    wl_report("fork_join", r.schedulers, "create_ns_per_proc",
              (double)r.create_ns / (double)r.n);
    wl_report("fork_join", r.schedulers, "thrput_ns_per_msg",
              (double)r.thrput_ns / (double)(r.actors * r.msgs));
    return 0;
}
