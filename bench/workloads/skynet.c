/*
 * bench/workloads/skynet.c: the skynet benchmark. A tree of processes: each
 * node spawns 10 children until LEAVES leaves; leaf i answers i; every node
 * sends the sum of its children's answers to its parent.
 *
 *   skynet [-s S] [LEAVES]     default 1,000,000 leaves; sum checked
 *
 * Prints wall_ms (spawning the root to receiving the sum). Exits 1 on a wrong
 * sum. The peers (bench/peers) build the same tree with the same messages.
 */
#include <inttypes.h>

#include "telar.h"
#include "workload.h"

#define TAG_SUM 1

struct node {
    tel_pid_t parent;
    uint64_t num, size;
};

static void skynet(void *arg)
{
    struct node me = *(struct node *)arg;
    uint64_t sum = 0;
    if (me.size == 1) {
        sum = me.num;
    } else {
        uint64_t step = (me.size + 9) / 10, n = 0;
        /* Each child copies its node when it starts; this frame outlives
         * that, because it waits below for every child's answer. */
        struct node kids[10];
        for (uint64_t off = 0; off < me.size; off += step, n++) {
            kids[n].parent = tel_self();
            kids[n].num = me.num + off;
            kids[n].size = off + step <= me.size ? step : me.size - off;
            if (tel_spawn(NULL, skynet, &kids[n]) != 0) {
                fprintf(stderr, "skynet: spawn failed\n");
                exit(1);
            }
        }
        for (uint64_t i = 0; i < n; i++) {
            tel_msg_t *m;
            if (tel_recv(&m, TEL_INFINITY) != 0)
                exit(1);
            uint64_t v;
            memcpy(&v, m->data, sizeof(v));
            sum += v;
            tel_msg_free(m);
        }
    }
    if (tel_send(me.parent, TAG_SUM, &sum, sizeof(sum)) != 0)
        exit(1);
}

struct run {
    uint64_t leaves, sum, ns;
    unsigned schedulers;
};

static void root(void *arg)
{
    struct run *r = arg;
    struct node top = {tel_self(), 0, r->leaves};
    r->schedulers = tel_scheduler_count();
    uint64_t t0 = wl_now_ns();
    if (tel_spawn(NULL, skynet, &top) != 0)
        exit(1);
    tel_msg_t *m;
    if (tel_recv(&m, TEL_INFINITY) != 0)
        exit(1);
    memcpy(&r->sum, m->data, sizeof(r->sum));
    tel_msg_free(m);
    r->ns = wl_now_ns() - t0;
}

int main(int argc, char **argv)
{
    struct wl_args a = wl_parse(argc, argv, "[LEAVES]");
    struct run r = {.leaves = wl_pos_u64(&a, 0, 1000000)};
    tel_config_t cfg = {.schedulers = a.schedulers};
    int rc = tel_run(&cfg, root, &r);
    if (rc) {
        fprintf(stderr, "skynet: tel_run: %s\n", tel_strerror(rc));
        return 1;
    }
    uint64_t want = r.leaves * (r.leaves - 1) / 2;
    if (r.sum != want) {
        fprintf(stderr, "skynet: wrong sum %" PRIu64 ", want %" PRIu64 "\n",
                r.sum, want);
        return 1;
    }
    wl_report("skynet", r.schedulers, "wall_ms", (double)r.ns / 1e6);
    return 0;
}
