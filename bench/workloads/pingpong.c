/*
 * bench/workloads/pingpong.c: the pingpong benchmark. Two processes exchange
 * a small message ROUNDTRIPS times with plain (asynchronous) sends: ping
 * sends its counter i (an 8-byte payload) to pong, pong sends it back, ping
 * checks it. After the last round trip ping tells pong to stop and reports
 * its count to the main process.
 *
 *   pingpong [-s S] [ROUNDTRIPS]     default 1,000,000 round trips
 *
 * Prints ns_per_roundtrip, timed from spawning the pair to receiving ping's
 * report, as the peers do (bench/peers/go/pingpong, bench/peers/erlang).
 * Exits 1 on a wrong count or an echoed value that does not match.
 */
#include <inttypes.h>

#include "telar.h"
#include "workload.h"

#define TAG_PING 1
#define TAG_PONG 2
#define TAG_STOP 3
#define TAG_DONE 4

struct ping_arg {
    tel_pid_t pong, parent;
    uint64_t n;
};

static void send_or_die(tel_pid_t to, uint64_t tag, const void *data,
                        size_t size)
{
    int rc = tel_send(to, tag, data, size);
    if (rc != 0) {
        fprintf(stderr, "pingpong: tel_send: %s\n", tel_strerror(rc));
        exit(1);
    }
}

static tel_msg_t *recv_or_die(void)
{
    tel_msg_t *m;
    int rc = tel_recv(&m, TEL_INFINITY);
    if (rc != 0) {
        fprintf(stderr, "pingpong: tel_recv: %s\n", tel_strerror(rc));
        exit(1);
    }
    return m;
}

/* Echo every ping back to its sender until told to stop. */
static void pong(void *arg)
{
    (void)arg;
    for (;;) {
        tel_msg_t *m = recv_or_die();
        if (m->tag == TAG_STOP) {
            tel_msg_free(m);
            return;
        }
        send_or_die(m->from, TAG_PONG, m->data, m->size);
        tel_msg_free(m);
    }
}

static void ping(void *arg)
{
    /* The parent's struct outlives us: it waits for our report. */
    const struct ping_arg *a = arg;
    uint64_t i;
    for (i = 0; i < a->n; i++) {
        send_or_die(a->pong, TAG_PING, &i, sizeof(i));
        tel_msg_t *m = recv_or_die();
        uint64_t v;
        if (m->tag != TAG_PONG || m->size != sizeof(v)) {
            fprintf(stderr, "pingpong: unexpected message (tag %" PRIu64
                            ", %zu bytes)\n", m->tag, m->size);
            exit(1);
        }
        memcpy(&v, m->data, sizeof(v));
        tel_msg_free(m);
        if (v != i) {
            fprintf(stderr, "pingpong: got %" PRIu64 ", want %" PRIu64 "\n",
                    v, i);
            exit(1);
        }
    }
    send_or_die(a->pong, TAG_STOP, NULL, 0);
    send_or_die(a->parent, TAG_DONE, &i, sizeof(i));
}

struct run {
    uint64_t n, done, ns;
    unsigned schedulers;
};

static void root(void *arg)
{
    struct run *r = arg;
    r->schedulers = tel_scheduler_count();
    struct ping_arg pa = {.parent = tel_self(), .n = r->n};
    uint64_t t0 = wl_now_ns();
    if (tel_spawn(&pa.pong, pong, NULL) != 0 ||
        tel_spawn(NULL, ping, &pa) != 0) {
        fprintf(stderr, "pingpong: spawn failed\n");
        exit(1);
    }
    tel_msg_t *m = recv_or_die();
    if (m->tag != TAG_DONE || m->size != sizeof(r->done)) {
        fprintf(stderr, "pingpong: unexpected report\n");
        exit(1);
    }
    memcpy(&r->done, m->data, sizeof(r->done));
    tel_msg_free(m);
    r->ns = wl_now_ns() - t0;
}

int main(int argc, char **argv)
{
    struct wl_args a = wl_parse(argc, argv, "[ROUNDTRIPS]");
    struct run r = {.n = wl_pos_u64(&a, 0, 1000000)};
    if (r.n == 0)
        wl_usage(argv[0], "[ROUNDTRIPS]   (ROUNDTRIPS > 0)");
    tel_config_t cfg = {.schedulers = a.schedulers};
    int rc = tel_run(&cfg, root, &r);
    if (rc) {
        fprintf(stderr, "pingpong: tel_run: %s\n", tel_strerror(rc));
        return 1;
    }
    if (r.done != r.n) {
        fprintf(stderr,
                "pingpong: %" PRIu64 " round trips, want %" PRIu64 "\n",
                r.done, r.n);
        return 1;
    }
    wl_report("pingpong", r.schedulers, "ns_per_roundtrip",
              (double)r.ns / (double)r.n);
    return 0;
}
