/*
 * examples/supervised.c: a small supervision tree that survives its crashes.
 *
 *   top (one_for_one)
 *    +-- counter   a server (tel_server_start_link) that counts calls; it
 *    |             registers itself as "counter"
 *    +-- crew (one_for_one, a supervisor)
 *         +-- ticker  calls the counter every 100 ms
 *         +-- flaky   crashes on purpose 300 ms after each start: with
 *                     reason 42 one time, by writing through NULL the next
 *                     (Telar ends just that process, with TEL_CRASHED)
 *
 * The main process starts the tree, prints it, lets it run for two seconds,
 * prints it again (only flaky has a new pid: its supervisor restarted it,
 * and nobody else noticed), then shuts the tree down in order and waits
 * for the top supervisor to go. Exits 1 if the tree did not hold.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telar.h"

#define TAG_INCR 1 /* call: count one, reply with the count */
#define TAG_GET 2  /* call: reply with the count */

/* ---- counter: a server ---- */

struct counter {
    uint64_t calls;
};

static tel_reason_t counter_init(void *arg, void **state)
{
    (void)arg;
    struct counter *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return TEL_NOMEM;
    int rc = tel_register("counter", tel_self());
    if (rc != 0) {
        fprintf(stderr, "counter: tel_register: %s\n", tel_strerror(rc));
        free(c);
        return 1;
    }
    /* Trap exits, as an OTP gen_server does in init when it wants its
     * terminate to run: its supervisor's shutdown then arrives as a
     * message, and the server stops through terminate. */
    (void)tel_trap_exit(true);
    *state = c;
    return TEL_CONTINUE;
}

static tel_reason_t counter_call(void *state, tel_from_t from, uint64_t tag,
                                 const void *req, size_t size)
{
    (void)req;
    (void)size;
    struct counter *c = state;
    if (tag == TAG_INCR)
        c->calls++;
    else if (tag != TAG_GET)
        return 1; /* a request we do not know: stop (and be restarted) */
    if (tel_reply(from, tag, &c->calls, sizeof(c->calls)) != 0)
        fprintf(stderr, "counter: tel_reply failed\n");
    return TEL_CONTINUE;
}

static void counter_terminate(void *state, tel_reason_t reason)
{
    struct counter *c = state;
    printf("counter: stopping (%s) after %" PRIu64 " counts\n",
           tel_reason_str(reason), c->calls);
    free(c);
}

static const tel_server_ops_t counter_ops = {
    .init = counter_init,
    .handle_call = counter_call,
    .terminate = counter_terminate,
};

/* The counter's child spec starts it as a server, linked to its supervisor. */
static int start_counter(tel_pid_t *out, tel_fn fn, void *arg)
{
    (void)fn;
    return tel_server_start_link(out, &counter_ops, arg);
}

/* Call the counter by name; the count, or -1 on failure. */
static int64_t counter_ask(uint64_t tag)
{
    tel_pid_t pid = tel_whereis("counter");
    tel_msg_t *m;
    if (pid == 0 || tel_call(pid, tag, NULL, 0, &m, 1000) != 0)
        return -1;
    uint64_t n = 0;
    if (m->size == sizeof(n))
        memcpy(&n, m->data, sizeof(n));
    tel_msg_free(m);
    return (int64_t)n;
}

/* ---- the crew's workers ---- */

static void ticker(void *arg)
{
    (void)arg;
    for (;;) {
        if (tel_sleep(100) != 0 || counter_ask(TAG_INCR) < 0)
            tel_exit(2); /* its supervisor starts another */
    }
}

struct flaky {
    atomic_uint starts;
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

static void flaky(void *arg)
{
    struct flaky *f = arg;
    unsigned n = atomic_fetch_add(&f->starts, 1) + 1;
    printf("flaky: start #%u as %#" PRIx64 "\n", n, tel_self());
    if (tel_sleep(300) != 0)
        tel_exit(3);
    if (n % 2 == 1) {
        printf("flaky #%u: exiting with reason 42\n", n);
        tel_exit(42);
    }
    printf("flaky #%u: writing through a NULL pointer\n", n);
    fflush(stdout); /* a fault inside stdio would leave its lock held */
    fault();
    tel_exit(4); /* not reached */
}

static struct flaky flaky_state;

/* The crew supervisor's child spec starts it with its own children. */
static int start_crew(tel_pid_t *out, tel_fn fn, void *arg)
{
    (void)fn;
    (void)arg;
    static const tel_child_spec_t specs[] = {
        {.id = "ticker", .fn = ticker, .restart = TEL_PERMANENT,
         .shutdown = 1000, .type = TEL_WORKER},
        {.id = "flaky", .fn = flaky, .arg = &flaky_state,
         .restart = TEL_PERMANENT, .shutdown = 1000, .type = TEL_WORKER},
    };
    /* Up to 5 restarts a second: flaky's 3 or 4 are well within it. */
    static const tel_sup_flags_t flags = {
        .strategy = TEL_ONE_FOR_ONE, .intensity = 5, .period_ms = 1000};
    return tel_sup_start_link(out, &flags, specs, 2);
}

/* ---- the main process ---- */

struct tree {
    tel_child_info_t top[2], crew[2];
};

/* Read both supervisors' children and print them under title, in one
 * piece (other processes print too); 0, or -1 if one answered with an error
 * or the shape is not the one we built. */
static int look(const char *title, tel_pid_t top, struct tree *t)
{
    size_t n;
    int rc = tel_sup_which_children(top, t->top, 2, &n);
    if (rc != 0 || n != 2 || strcmp(t->top[1].id, "crew") != 0) {
        fprintf(stderr, "supervised: top's children: %s\n", tel_strerror(rc));
        return -1;
    }
    rc = tel_sup_which_children(t->top[1].pid, t->crew, 2, &n);
    if (rc != 0 || n != 2) {
        fprintf(stderr, "supervised: crew's children: %s\n", tel_strerror(rc));
        return -1;
    }
    char buf[512];
    int len = snprintf(buf, sizeof(buf), "%s\n  top %#" PRIx64 "\n", title,
                       top);
    for (int i = 0; i < 4; i++) {
        const tel_child_info_t *c = i < 2 ? &t->top[i] : &t->crew[i - 2];
        len += snprintf(buf + len, sizeof(buf) - (size_t)len,
                        "%s+-- %-7s %-10s %#" PRIx64 "\n",
                        i < 2 ? "  " : "       ", c->id,
                        c->type == TEL_SUPERVISOR ? "supervisor" : "worker",
                        c->pid);
    }
    fputs(buf, stdout);
    return 0;
}

static int status = 1;

static void main_proc(void *arg)
{
    (void)arg;
    static const tel_child_spec_t specs[] = {
        {.id = "counter", .start = start_counter, .restart = TEL_PERMANENT,
         .shutdown = 1000, .type = TEL_WORKER},
        {.id = "crew", .start = start_crew, .restart = TEL_PERMANENT,
         .shutdown = TEL_INFINITY, .type = TEL_SUPERVISOR},
    };
    static const tel_sup_flags_t flags = {
        .strategy = TEL_ONE_FOR_ONE, .intensity = 3, .period_ms = 5000};
    tel_pid_t top;
    printf("starting the tree\n");
    int rc = tel_sup_start_link(&top, &flags, specs, 2);
    if (rc != 0) {
        fprintf(stderr, "supervised: tel_sup_start_link: %s\n",
                tel_strerror(rc));
        return;
    }
    struct tree before, after;
    if (look("the tree, started:", top, &before) != 0)
        return;

    if (tel_sleep(2000) != 0)
        return;

    if (look("the tree two seconds later:", top, &after) != 0)
        return;
    int64_t counted = counter_ask(TAG_GET);
    unsigned starts = atomic_load(&flaky_state.starts);
    printf("flaky started %u times; the ticker's calls counted: %" PRId64 "\n",
           starts, counted);
    bool held = after.top[0].pid == before.top[0].pid &&   /* counter */
                after.top[1].pid == before.top[1].pid &&   /* crew */
                after.crew[0].pid == before.crew[0].pid && /* ticker */
                after.crew[1].pid != before.crew[1].pid && /* flaky */
                after.crew[1].pid != 0 && starts >= 3 && counted >= 10;
    printf("%s\n", held ? "only flaky was restarted: the tree held"
                        : "the tree did NOT hold");

    /* Stop the tree as its parent would: an exit signal with shutdown. The
     * supervisors stop their children in reverse order, then themselves.
     * We are linked to top, so we trap its exit signal (it arrives as a
     * message we skip) and wait for the monitor's DOWN. */
    uint64_t ref;
    tel_msg_t *m;
    (void)tel_trap_exit(true);
    if (tel_monitor(&ref, top) != 0 || tel_kill(top, TEL_SHUTDOWN) != 0)
        return;
    for (;;) {
        if (tel_recv(&m, 5000) != 0) {
            fprintf(stderr, "supervised: the tree did not stop\n");
            return;
        }
        bool down = m->tag == TEL_TAG_DOWN;
        if (down) {
            tel_down_info_t d;
            memcpy(&d, m->data, sizeof(d));
            printf("top supervisor: down (%s)\n", tel_reason_str(d.reason));
        }
        tel_msg_free(m);
        if (down)
            break;
    }
    status = held ? 0 : 1;
}

int main(void)
{
    int rc = tel_run(NULL, main_proc, NULL);
    if (rc != 0) {
        fprintf(stderr, "supervised: tel_run: %s\n", tel_strerror(rc));
        return 1;
    }
    return status;
}
