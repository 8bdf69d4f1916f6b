/*
 * bench/workloads/fanin.c: many senders, one receiver. SENDERS processes
 * each send the integers 1..MSGS to one receiver process, which sums them
 * and reports to the main process once it has all SENDERS x MSGS. Telar
 * mailboxes are unbounded (as Erlang's), so senders never wait: the
 * receiver's mailbox absorbs whatever it has not yet read.
 *
 *   fanin [-s S] [SENDERS] [MSGS]     defaults 1,000 and 10,000
 *
 * Prints ns_per_msg and msgs_per_sec, timed from spawning the receiver to
 * receiving its report. Exits 1 unless the report counts SENDERS x MSGS
 * messages summing to SENDERS * MSGS (MSGS + 1) / 2.
 */
#include <inttypes.h>

#include "telar.h"
#include "workload.h"

#define TAG_NUM 1    /* sender -> receiver: an integer (uint64_t) */
#define TAG_REPORT 2 /* receiver -> main: struct report */

struct report {
    uint64_t count, sum;
};

struct run {
    uint64_t senders, msgs, ns;
    struct report got;
    unsigned schedulers;
    tel_pid_t main, receiver;
};

static void receiver(void *arg)
{
    const struct run *r = arg; /* outlives us: main waits for our report */
    struct report rep = {0, 0};
    uint64_t total = r->senders * r->msgs;
    while (rep.count < total) {
        tel_msg_t *m = wl_recv();
        if (m->tag != TAG_NUM)
            wl_die("receiver got tag %" PRIu64, m->tag);
        rep.sum += wl_msg_u64(m);
        rep.count++;
        tel_msg_free(m);
    }
    wl_send(r->main, TAG_REPORT, &rep, sizeof(rep));
}

static void sender(void *arg)
{
    const struct run *r = arg;
    for (uint64_t i = 1; i <= r->msgs; i++)
        wl_send_u64(r->receiver, TAG_NUM, i);
}

static void root(void *arg)
{
    struct run *r = arg;
    r->schedulers = tel_scheduler_count();
    r->main = tel_self();
    uint64_t t0 = wl_now_ns();
    r->receiver = wl_spawn(receiver, r);
    for (uint64_t i = 0; i < r->senders; i++)
        (void)wl_spawn(sender, r);
    tel_msg_t *m = wl_recv();
    if (m->tag != TAG_REPORT || m->size != sizeof(r->got))
        wl_die("main got tag %" PRIu64 ", want report", m->tag);
    memcpy(&r->got, m->data, sizeof(r->got));
    tel_msg_free(m);
    r->ns = wl_now_ns() - t0;
}

int main(int argc, char **argv)
{
    static const char sizes[] = "[SENDERS] [MSGS]   (both >= 1)";
    struct wl_args a = wl_parse(argc, argv, sizes);
    struct run r = {.senders = wl_pos_min(&a, 0, 1000, 1, sizes),
                    .msgs = wl_pos_min(&a, 1, 10000, 1, sizes)};
    tel_config_t cfg = {.schedulers = a.schedulers};
    wl_need_processes(&cfg, r.senders + 2, sizes);
    wl_run(&cfg, root, &r);
    uint64_t count = r.senders * r.msgs;
    uint64_t sum = r.senders * (r.msgs * (r.msgs + 1) / 2);
    if (r.got.count != count || r.got.sum != sum)
        wl_die("received %" PRIu64 " messages summing to %" PRIu64
               ", want %" PRIu64 " summing to %" PRIu64,
               r.got.count, r.got.sum, count, sum);
    double ns_per_msg = (double)r.ns / (double)count;
    wl_report("fanin", r.schedulers, "ns_per_msg", ns_per_msg);
    wl_report("fanin", r.schedulers, "msgs_per_sec", 1e9 / ns_per_msg);
    return 0;
}
