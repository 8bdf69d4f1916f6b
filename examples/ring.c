/*
 * examples/ring.c: N processes in a ring pass a token around M times.
 *
 *   ring [N] [M]      default N = 1000 processes, M = 1000 rounds
 *
 * The first process is one member of the ring: it spawns the other N - 1,
 * each knowing the next one's pid, sends the token and counts its rounds.
 * Then it sends a stop token around, which every member forwards and exits.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "telar.h"

enum { TAG_TOKEN = 1, TAG_STOP = 2 };

struct ring {
    uint64_t n, rounds;
    tel_pid_t *next; /* next[i]: where member i forwards the token */
    double ms;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A member: forward every token; forward the stop token and exit. */
static void member(void *arg)
{
    tel_pid_t next = *(const tel_pid_t *)arg;
    for (;;) {
        tel_msg_t *m;
        if (tel_recv(&m, TEL_INFINITY) != 0)
            exit(1);
        uint64_t tag = m->tag;
        tel_msg_free(m);
        if (tel_send(next, tag, NULL, 0) != 0)
            exit(1);
        if (tag == TAG_STOP)
            return;
    }
}

static void recv_or_die(void)
{
    tel_msg_t *m;
    if (tel_recv(&m, TEL_INFINITY) != 0)
        exit(1);
    tel_msg_free(m);
}

static void ring_main(void *arg)
{
    struct ring *r = arg;
    /* Spawn from the end, so each member's next already exists; the last
     * one closes the ring back to us (member 0). */
    r->next[r->n - 1] = tel_self();
    for (uint64_t i = r->n - 1; i >= 1; i--) {
        if (tel_spawn(&r->next[i - 1], member, &r->next[i]) != 0) {
            fprintf(stderr, "ring: spawn failed\n");
            exit(1);
        }
    }
    uint64_t t0 = now_ns();
    for (uint64_t round = 0; round < r->rounds; round++) {
        if (tel_send(r->next[0], TAG_TOKEN, NULL, 0) != 0)
            exit(1);
        recv_or_die();
    }
    r->ms = (double)(now_ns() - t0) / 1e6;
    if (tel_send(r->next[0], TAG_STOP, NULL, 0) != 0)
        exit(1);
    recv_or_die();
}

int main(int argc, char **argv)
{
    struct ring r = {
        .n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000,
        .rounds = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000,
    };
    if (r.n < 2) {
        fprintf(stderr, "usage: %s [N >= 2] [M]\n", argv[0]);
        return 2;
    }
    r.next = calloc(r.n, sizeof(*r.next));
    if (!r.next)
        return 1;
    int rc = tel_run(NULL, ring_main, &r);
    free(r.next);
    if (rc != 0) {
        fprintf(stderr, "ring: tel_run: %s\n", tel_strerror(rc));
        return 1;
    }
    uint64_t hops = r.n * r.rounds;
    printf("ring: %" PRIu64 " processes, %" PRIu64 " rounds, %" PRIu64
           " hops in %.3f ms (%.1f ns per hop)\n",
           r.n, r.rounds, hops, r.ms, hops ? r.ms * 1e6 / (double)hops : 0.0);
    return 0;
}
