/*
 * bench/workloads/restart_storm.c: a supervisor under a storm of crashes. A
 * one_for_one supervisor (tel_sup_start_link) keeps K permanent workers;
 * the driver (the main process) makes them crash, 2N times in all, and
 * times their replacements.
 *
 *   restart_storm [-s S] [K] [N] [FAULT]
 *       defaults 100, 100,000 and 0
 *
 * Each worker, when it starts, first reads the clock and sends the driver
 * `up` {slot, its pid, that time}; then it waits for `crash` and ends with
 * reason 1 (tel_exit). FAULT = 1: it writes through a NULL pointer instead,
 * which Telar contains (the worker ends with TEL_CRASHED); printed as
 * workload restart_storm_fault. The supervisor's intensity is 2N restarts
 * per 1,000 ms, so every restart this run causes fits and it never gives
 * up (the Erlang peer uses the same figures, its period being 1 s).
 *
 *   latency:    N crashes one at a time, slot i mod K in turn: the driver
 *               reads the clock (t0), sends `crash`, and waits for that
 *               slot's replacement; a sample is its time minus t0. Prints
 *               p50_us and p99_us.
 *   throughput: the driver orders all K workers to crash, then each
 *               replacement as soon as it announces itself, until N crashes
 *               were ordered; the clock stops at the N-th replacement.
 *               Prints restarts_per_sec.
 *
 * Checks: every `up` comes from a new process for the slot expected (a
 * latency sample) or for a slot with a crash outstanding (throughput); at
 * the end tel_sup_which_children lists the K workers with the pids the
 * driver last heard of. The driver is linked to the supervisor, so if the
 * supervisor gave up the driver would end too and no figure is printed.
 * Any wait longer than 10 s fails the run. At the end, untimed, the driver
 * stops the supervisor with shutdown and waits for it to go.
 */
#include <inttypes.h>
#include <stdbool.h>

#include "telar.h"
#include "workload.h"

#define TAG_UP 1    /* worker -> driver: struct up */
#define TAG_CRASH 2 /* driver -> worker: crash now */

#define MAX_K 100000 /* ids are "w<slot>"; K specs are copied at start */
#define WAIT_MS 10000

struct up {
    uint64_t slot;
    tel_pid_t pid;
    uint64_t t_ns;
};

struct run;

/* What each child spec's arg points at: outlives every worker. */
struct slot {
    struct run *run;
    uint64_t index;
};

struct run {
    uint64_t k, n, fault;
    unsigned schedulers;
    tel_pid_t driver;
    struct slot *slots;  /* k */
    tel_pid_t *pids;     /* k: each slot's latest worker */
    bool *pending;       /* k: a crash ordered, no replacement yet */
    int64_t *lates;      /* n: latency samples, ns */
    uint64_t storm_ns;
    bool done;
};

/* A plain store through NULL, out of line and unseen by the sanitizers
 * (UBSan would report it first, TSan would instrument it), so the CPU
 * faults as in a plain build. */
__attribute__((noinline, no_sanitize("undefined", "thread"))) static void
fault(void)
{
    volatile int *volatile nowhere = NULL; /* a volatile store: kept */
    *nowhere = 1;
}

static void worker(void *arg)
{
    const struct slot *s = arg;
    struct up u = {.slot = s->index, .pid = tel_self(), .t_ns = wl_now_ns()};
    wl_send(s->run->driver, TAG_UP, &u, sizeof(u));
    tel_msg_t *m = wl_recv();
    uint64_t tag = m->tag;
    tel_msg_free(m);
    if (tag != TAG_CRASH)
        wl_die("worker got tag %" PRIu64 ", want crash", tag);
    if (s->run->fault)
        fault(); /* Telar ends this process here, with TEL_CRASHED */
    tel_exit(1);
}

/* The next `up`, or die. */
static struct up next_up(void)
{
    tel_msg_t *m;
    int rc = tel_recv(&m, WAIT_MS);
    if (rc == TEL_ETIMEDOUT)
        wl_die("no worker came up for %d s", WAIT_MS / 1000);
    if (rc != 0)
        wl_die("tel_recv: %s", tel_strerror(rc));
    struct up u;
    if (m->tag != TAG_UP || m->size != sizeof(u))
        wl_die("driver got tag %" PRIu64 " (%zu bytes), want up", m->tag,
               m->size);
    memcpy(&u, m->data, sizeof(u));
    tel_msg_free(m);
    return u;
}

static tel_pid_t start_supervisor(struct run *r)
{
    tel_child_spec_t *specs = calloc(r->k, sizeof(*specs));
    char(*ids)[24] = calloc(r->k, sizeof(*ids));
    if (specs == NULL || ids == NULL)
        wl_die("out of memory");
    for (uint64_t i = 0; i < r->k; i++) {
        snprintf(ids[i], sizeof(ids[i]), "w%" PRIu64, i);
        specs[i] = (tel_child_spec_t){.id = ids[i],
                                      .fn = worker,
                                      .arg = &r->slots[i],
                                      .restart = TEL_PERMANENT,
                                      .shutdown = TEL_BRUTAL_KILL,
                                      .type = TEL_WORKER};
    }
    tel_sup_flags_t flags = {.strategy = TEL_ONE_FOR_ONE,
                             .intensity = (uint32_t)(2 * r->n),
                             .period_ms = 1000};
    tel_pid_t sup;
    int rc = tel_sup_start_link(&sup, &flags, specs, (size_t)r->k);
    if (rc != 0)
        wl_die("tel_sup_start_link: %s", tel_strerror(rc));
    free(ids); /* the supervisor keeps copies */
    free(specs);
    return sup;
}

static void latency(struct run *r)
{
    for (uint64_t i = 0; i < r->n; i++) {
        uint64_t slot = i % r->k;
        tel_pid_t old = r->pids[slot];
        uint64_t t0 = wl_now_ns();
        wl_send(old, TAG_CRASH, NULL, 0);
        struct up u = next_up();
        if (u.slot != slot || u.pid == old)
            wl_die("slot %" PRIu64 " came up, want a new %" PRIu64, u.slot,
                   slot);
        r->pids[slot] = u.pid;
        r->lates[i] = (int64_t)(u.t_ns - t0);
    }
}

static void storm(struct run *r)
{
    uint64_t first = r->k < r->n ? r->k : r->n, ordered = first;
    uint64_t t0 = wl_now_ns();
    for (uint64_t s = 0; s < first; s++) {
        r->pending[s] = true;
        wl_send(r->pids[s], TAG_CRASH, NULL, 0);
    }
    for (uint64_t done = 0; done < r->n; done++) {
        struct up u = next_up();
        if (u.slot >= r->k || !r->pending[u.slot] ||
            u.pid == r->pids[u.slot])
            wl_die("slot %" PRIu64 " came up with no crash ordered", u.slot);
        r->pids[u.slot] = u.pid;
        if (ordered < r->n) {
            wl_send(u.pid, TAG_CRASH, NULL, 0);
            ordered++;
        } else {
            r->pending[u.slot] = false;
        }
    }
    r->storm_ns = wl_now_ns() - t0;
}

/* The supervisor lists the K workers, running, with the pids we know. */
static void check_children(struct run *r, tel_pid_t sup)
{
    tel_child_info_t *info = calloc(r->k, sizeof(*info));
    if (info == NULL)
        wl_die("out of memory");
    size_t n;
    int rc = tel_sup_which_children(sup, info, (size_t)r->k, &n);
    if (rc != 0)
        wl_die("tel_sup_which_children: %s", tel_strerror(rc));
    if (n != r->k)
        wl_die("the supervisor has %zu children, want %" PRIu64, n, r->k);
    for (uint64_t i = 0; i < r->k; i++) {
        char id[24];
        snprintf(id, sizeof(id), "w%" PRIu64, i);
        if (strcmp(info[i].id, id) != 0 || info[i].pid != r->pids[i] ||
            info[i].restarting || info[i].type != TEL_WORKER)
            wl_die("child %" PRIu64 " is '%s' pid %" PRIx64
                   ", want '%s' pid %" PRIx64,
                   i, info[i].id, info[i].pid, id, r->pids[i]);
    }
    free(info);
}

/* Stop the supervisor as its parent would, with shutdown, and wait until
 * it is gone: it stops the K workers first. (Untimed; a supervisor left
 * running would be ended by tel_run's end instead, which runs none of its
 * code, so its records would never be freed.) */
static void stop_supervisor(tel_pid_t sup)
{
    uint64_t ref;
    int rc = tel_unlink(sup);
    if (rc == 0)
        rc = tel_monitor(&ref, sup);
    if (rc == 0)
        rc = tel_kill(sup, TEL_SHUTDOWN);
    if (rc != 0)
        wl_die("stopping the supervisor: %s", tel_strerror(rc));
    for (;;) {
        tel_msg_t *m;
        rc = tel_recv(&m, WAIT_MS);
        if (rc != 0)
            wl_die("waiting for the supervisor to stop: %s",
                   tel_strerror(rc));
        bool down = m->tag == TEL_TAG_DOWN;
        tel_msg_free(m);
        if (down)
            return;
    }
}

static void driver(void *arg)
{
    struct run *r = arg;
    r->schedulers = tel_scheduler_count();
    r->driver = tel_self();
    tel_pid_t sup = start_supervisor(r);
    for (uint64_t i = 0; i < r->k; i++) {
        struct up u = next_up();
        if (u.slot >= r->k || r->pids[u.slot] != 0)
            wl_die("slot %" PRIu64 " started twice", u.slot);
        r->pids[u.slot] = u.pid;
    }
    latency(r);
    storm(r);
    check_children(r, sup);
    stop_supervisor(sup);
    r->done = true;
}

int main(int argc, char **argv)
{
    static const char sizes[] =
        "[K] [N] [FAULT]   (1 <= K <= 100000, 1 <= N < 2^31, FAULT 0 or 1)";
    struct wl_args a = wl_parse(argc, argv, sizes);
    struct run r = {.k = wl_pos_min(&a, 0, 100, 1, sizes),
                    .n = wl_pos_min(&a, 1, 100000, 1, sizes),
                    .fault = wl_pos_min(&a, 2, 0, 0, sizes)};
    if (r.k > MAX_K || r.n >= (UINT64_C(1) << 31) || r.fault > 1)
        wl_usage(*wl_prog(), sizes);
    r.slots = calloc(r.k, sizeof(*r.slots));
    r.pids = calloc(r.k, sizeof(*r.pids));
    r.pending = calloc(r.k, sizeof(*r.pending));
    r.lates = calloc(r.n, sizeof(*r.lates));
    if (!r.slots || !r.pids || !r.pending || !r.lates)
        wl_die("out of memory");
    for (uint64_t i = 0; i < r.k; i++)
        r.slots[i] = (struct slot){.run = &r, .index = i};
    tel_config_t cfg = {.schedulers = a.schedulers};
    /* K workers, the crashed ones still exiting, the supervisor, the
     * driver: twice K and a few is plenty. */
    wl_need_processes(&cfg, 2 * r.k + 8, sizes);
    wl_run(&cfg, driver, &r);
    if (!r.done)
        wl_die("the driver did not finish (did the supervisor give up?)");
    const char *name = r.fault ? "restart_storm_fault" : "restart_storm";
    wl_sort_i64(r.lates, (size_t)r.n);
    wl_report(name, r.schedulers, "restarts_per_sec",
              (double)r.n * 1e9 / (double)r.storm_ns);
    wl_report(name, r.schedulers, "p50_us",
              (double)wl_percentile(r.lates, (size_t)r.n, 50) / 1000.0);
    wl_report(name, r.schedulers, "p99_us",
              (double)wl_percentile(r.lates, (size_t)r.n, 99) / 1000.0);
    free(r.slots);
    free(r.pids);
    free(r.pending);
    free(r.lates);
    return 0;
}
