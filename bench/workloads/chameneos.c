/*
 * bench/workloads/chameneos.c: the benchmarks game's chameneos-redux.
 * Creatures, each with a colour, ask a broker process for a meeting (a
 * message carrying their colour). The broker pairs requests two by two and
 * tells each creature its partner's colour and pid; each creature takes the
 * complement of the two colours and asks again. After MEETINGS meetings the
 * broker answers every request with `stop`, and each creature reports its
 * meeting count (and how often it met itself, which must be never) to the
 * main process.
 *
 * Two runs, as in the game: 3 creatures (blue red yellow), then 10 (blue red
 * yellow red yellow blue red yellow red blue).
 *
 *   chameneos [-s S] [MEETINGS]     default 600,000 meetings per run
 *
 * Prints ns_per_meeting: both runs' time (spawning the broker to the last
 * report) over both runs' meetings. Exits 1 unless, in each run, the
 * creatures' meeting counts sum to 2 x MEETINGS and none met itself.
 */
#include <inttypes.h>

#include "telar.h"
#include "workload.h"

#define TAG_MEET 1    /* creature -> broker: its colour (uint64_t) */
#define TAG_PARTNER 2 /* broker -> creature: struct partner */
#define TAG_STOP 3    /* broker -> creature: no more meetings */
#define TAG_REPORT 4  /* creature -> main: struct report */

enum colour { BLUE, RED, YELLOW };

/* The colour two creatures of colours a and b both take when they meet. */
static uint64_t complement(uint64_t a, uint64_t b)
{
    return a == b ? a : 3 - a - b; /* the third colour: BLUE+RED+YELLOW = 3 */
}

struct partner {
    uint64_t colour;
    tel_pid_t pid;
};

struct report {
    uint64_t meetings, met_self;
};

struct creature_arg {
    tel_pid_t broker, main;
    uint64_t colour;
};

static void creature(void *arg)
{
    /* A copy, for the colour changes; game() waits for our report. */
    struct creature_arg a = *(const struct creature_arg *)arg;
    struct report rep = {0, 0};
    tel_pid_t self = tel_self();
    for (;;) {
        wl_send_u64(a.broker, TAG_MEET, a.colour);
        tel_msg_t *m = wl_recv();
        if (m->tag == TAG_STOP) {
            tel_msg_free(m);
            break;
        }
        struct partner p;
        if (m->tag != TAG_PARTNER || m->size != sizeof(p))
            wl_die("creature got tag %" PRIu64, m->tag);
        memcpy(&p, m->data, sizeof(p));
        tel_msg_free(m);
        a.colour = complement(a.colour, p.colour);
        rep.meetings++;
        rep.met_self += p.pid == self;
    }
    wl_send(a.main, TAG_REPORT, &rep, sizeof(rep));
}

struct broker_arg {
    uint64_t creatures, meetings;
};

/* Pair requests until the meetings are used up, then stop every creature
 * as it asks again; exit once all have been stopped. */
static void broker(void *arg)
{
    const struct broker_arg *b = arg; /* outlives us: main waits for all */
    uint64_t left = b->meetings, stopped = 0;
    struct partner waiting = {0, 0}; /* pid 0: nobody waiting */
    while (stopped < b->creatures) {
        tel_msg_t *m = wl_recv();
        if (m->tag != TAG_MEET)
            wl_die("broker got tag %" PRIu64, m->tag);
        struct partner req = {wl_msg_u64(m), m->from};
        tel_msg_free(m);
        if (left == 0) {
            /* A pair always completes before left reaches 0, so nobody is
             * ever left waiting here. */
            wl_send(req.pid, TAG_STOP, NULL, 0);
            stopped++;
        } else if (waiting.pid == 0) {
            waiting = req;
        } else {
            wl_send(waiting.pid, TAG_PARTNER, &req, sizeof(req));
            wl_send(req.pid, TAG_PARTNER, &waiting, sizeof(waiting));
            waiting.pid = 0;
            left--;
        }
    }
}

struct run {
    uint64_t meetings, ns;
    unsigned schedulers;
};

/* One game with n creatures of the given colours; returns its time. */
static uint64_t game(const struct run *r, const uint64_t *colours, size_t n)
{
    struct creature_arg args[10];
    struct broker_arg b = {n, r->meetings};
    uint64_t t0 = wl_now_ns();
    tel_pid_t bp = wl_spawn(broker, &b);
    for (size_t i = 0; i < n; i++) {
        args[i] = (struct creature_arg){bp, tel_self(), colours[i]};
        (void)wl_spawn(creature, &args[i]);
    }
    struct report sum = {0, 0};
    for (size_t i = 0; i < n; i++) {
        tel_msg_t *m = wl_recv();
        struct report rep;
        if (m->tag != TAG_REPORT || m->size != sizeof(rep))
            wl_die("main got tag %" PRIu64 ", want a report", m->tag);
        memcpy(&rep, m->data, sizeof(rep));
        tel_msg_free(m);
        sum.meetings += rep.meetings;
        sum.met_self += rep.met_self;
    }
    uint64_t ns = wl_now_ns() - t0;
    if (sum.meetings != 2 * r->meetings || sum.met_self != 0)
        wl_die("%zu creatures: %" PRIu64 " meetings (%" PRIu64
               " with itself), want %" PRIu64 " (0)",
               n, sum.meetings, sum.met_self, 2 * r->meetings);
    return ns;
}

static void root(void *arg)
{
    static const uint64_t three[] = {BLUE, RED, YELLOW};
    static const uint64_t ten[] = {BLUE, RED,    YELLOW, RED, YELLOW,
                                   BLUE, RED,    YELLOW, RED, BLUE};
    struct run *r = arg;
    r->schedulers = tel_scheduler_count();
    r->ns = game(r, three, 3) + game(r, ten, 10);
}

int main(int argc, char **argv)
{
    static const char sizes[] = "[MEETINGS]   (MEETINGS >= 1)";
    struct wl_args a = wl_parse(argc, argv, sizes);
    struct run r = {.meetings = wl_pos_min(&a, 0, 600000, 1, sizes)};
    tel_config_t cfg = {.schedulers = a.schedulers};
    wl_run(&cfg, root, &r);
    wl_report("chameneos", r.schedulers, "ns_per_meeting",
              (double)r.ns / (double)(2 * r.meetings));
    return 0;
}
