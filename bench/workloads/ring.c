/*
 * bench/workloads/ring.c: a token passed around a ring of processes. PROCS
 * processes, numbered 0..PROCS-1, each know the next (PROCS-1's next is 0).
 * The main process injects one token, the count of hops left (HOPS), at
 * process 0; each holder decrements it and passes it on with a real send;
 * the holder of 0 tells the main process its number, and the main process
 * then stops them all.
 *
 *   ring [-s S] [PROCS] [HOPS]     defaults 10,000 and 10,000,000
 *
 * Prints ns_per_hop: from injecting the token to receiving the report, over
 * HOPS (setting the ring up is not timed). Exits 1 unless the final holder
 * is process HOPS mod PROCS.
 *
 * thread_ring.c is this program with other numbers: it defines RING_NAME,
 * RING_FIRST (the first process's number) and RING_PROCS (the default
 * PROCS), then includes this file.
 */
#include <inttypes.h>

#include "telar.h"
#include "workload.h"

#ifndef RING_NAME
#define RING_NAME "ring"
#define RING_FIRST 0
#define RING_PROCS 10000
#endif

#define TAG_SETUP 1  /* main -> member: struct setup */
#define TAG_TOKEN 2  /* member -> next: hops left (uint64_t) */
#define TAG_REPORT 3 /* holder of 0 -> main: its number (uint64_t) */
#define TAG_STOP 4   /* main -> member */

struct setup {
    tel_pid_t next, main;
};

/* Member number (uintptr_t)arg: learn the next pid, then pass tokens on. */
static void member(void *arg)
{
    uint64_t me = (uintptr_t)arg;
    tel_msg_t *m = wl_recv();
    struct setup s;
    if (m->tag != TAG_SETUP || m->size != sizeof(s))
        wl_die("member %" PRIu64 ": bad setup message", me);
    memcpy(&s, m->data, sizeof(s));
    tel_msg_free(m);
    for (;;) {
        m = wl_recv();
        if (m->tag == TAG_STOP) {
            tel_msg_free(m);
            return;
        }
        if (m->tag != TAG_TOKEN)
            wl_die("member %" PRIu64 ": unexpected tag %" PRIu64, me, m->tag);
        uint64_t left = wl_msg_u64(m);
        tel_msg_free(m);
        if (left == 0)
            wl_send_u64(s.main, TAG_REPORT, me);
        else
            wl_send_u64(s.next, TAG_TOKEN, left - 1);
    }
}

struct run {
    uint64_t procs, hops, holder, ns;
    unsigned schedulers;
};

static void root(void *arg)
{
    struct run *r = arg;
    r->schedulers = tel_scheduler_count();
    tel_pid_t *pids = malloc(r->procs * sizeof(*pids));
    if (pids == NULL)
        wl_die("out of memory");
    for (uint64_t i = 0; i < r->procs; i++)
        pids[i] = wl_spawn(member, (void *)(uintptr_t)(i + RING_FIRST));
    for (uint64_t i = 0; i < r->procs; i++) {
        struct setup s = {pids[(i + 1) % r->procs], tel_self()};
        wl_send(pids[i], TAG_SETUP, &s, sizeof(s));
    }

    uint64_t t0 = wl_now_ns();
    wl_send_u64(pids[0], TAG_TOKEN, r->hops);
    tel_msg_t *m = wl_recv();
    if (m->tag != TAG_REPORT)
        wl_die("main got tag %" PRIu64 ", want report", m->tag);
    r->holder = wl_msg_u64(m);
    tel_msg_free(m);
    r->ns = wl_now_ns() - t0;

    for (uint64_t i = 0; i < r->procs; i++)
        wl_send(pids[i], TAG_STOP, NULL, 0);
    free(pids);
}

int main(int argc, char **argv)
{
    static const char sizes[] = "[PROCS] [HOPS]   (both >= 1)";
    struct wl_args a = wl_parse(argc, argv, sizes);
    struct run r = {.procs = wl_pos_min(&a, 0, RING_PROCS, 1, sizes),
                    .hops = wl_pos_min(&a, 1, 10000000, 1, sizes)};
    tel_config_t cfg = {.schedulers = a.schedulers};
    wl_need_processes(&cfg, r.procs + 1, sizes);
    wl_run(&cfg, root, &r);
    uint64_t want = r.hops % r.procs + RING_FIRST;
    if (r.holder != want)
        wl_die("holder of 0 is %" PRIu64 ", want %" PRIu64, r.holder, want);
    wl_report(RING_NAME, r.schedulers, "ns_per_hop",
              (double)r.ns / (double)r.hops);
    return 0;
}
