/*
 * core/supervisor.c: OTP's supervisor: a server (core/server.c) that starts
 * children, watches them through links, and restarts them by strategy.
 *
 * Owns: struct sup, the state of one supervisor process, and its struct
 * child records. Everything here runs in the supervisor process itself (as
 * server callbacks), except the tel_sup_* entry points, which validate their
 * input in the caller and turn into tel_call requests.
 *
 * The supervisor traps exits. A child's end arrives as a TEL_TAG_EXIT
 * message (every child is linked to it). An EXIT from the parent (the
 * process that started the supervisor) is the server loop's business: it
 * calls sup_terminate, which stops the children, and the supervisor ends
 * with the parent's reason. EXITs from anyone else are ignored, as OTP's
 * are.
 *
 * Invariants:
 *   - Children sit on one list in start order (sup->head .. sup->tail). A
 *     restart keeps a child's place; start_child appends.
 *   - A child with pid != 0 is in the pid table under that pid, and only
 *     then. Every child of a supervisor that is not simple_one_for_one is in
 *     the id table. So an EXIT, a DOWN, or an administration call finds its
 *     child in O(1); nothing scans the children per event.
 *   - c->restarting <=> c is on the retry queue (sup->rq_*). At least as
 *     many SUP_OP_TRY_AGAIN casts are in the mailbox as children on the
 *     queue; each cast retries the oldest one (OTP's try_again_restart: the
 *     supervisor retries by sending itself a message, so it keeps answering
 *     calls and exit signals between attempts).
 *   - sup->times holds the restarts of the last period_ms, oldest first;
 *     more than flags.intensity of them ends the supervisor (TEL_SHUTDOWN).
 *
 * Stopping a child (OTP's shutdown protocol): monitor it, unlink it, drop
 * an EXIT from it that is already queued, tel_kill(TEL_SHUTDOWN), wait up
 * to its shutdown time for the DOWN, then tel_kill(TEL_KILL) and wait for
 * the DOWN. The monitor, not the link, tells when it is gone, so a child
 * that unlinked itself still stops, and the unlink keeps its EXIT out of
 * the mailbox. Children stop one at a time in reverse start order; the
 * children of a simple_one_for_one supervisor stop in parallel (all are
 * signalled, then the DOWNs are collected, matched through the pid table).
 *
 * Concurrency: none inside; a supervisor is one process. The entry points
 * may be called by any process.
 */
#include "include/telar.h"

#include <string.h>

#include "alloc/numa.h"
#include "core/server.h"
#include "sched/park.h"

/* Request tags (below TEL_TAG_SYSTEM): "SUPV" then the operation. */
#define SUP_TAG UINT64_C(0x5355505600000000)

enum sup_op {
    SUP_OP_START_CHILD = 1,
    SUP_OP_TERMINATE_CHILD,
    SUP_OP_RESTART_CHILD,
    SUP_OP_DELETE_CHILD,
    SUP_OP_WHICH_CHILDREN,
    SUP_OP_COUNT_CHILDREN,
    SUP_OP_TRY_AGAIN, /* a cast the supervisor sends itself */
};

struct child {
    /* The start order list. */
    struct child *prev, *next;
    /* Hash chains: pid table (while running), id table (not simple). */
    struct child *pid_next, *id_next;
    /* The retry queue, while restarting. */
    struct child *rq_prev, *rq_next;
    tel_pid_t pid;    /* 0 while not running */
    uint64_t mon_ref; /* the monitor of a parallel stop */
    bool restarting;  /* a restart failed; a retry is queued */
    bool stopping;    /* signalled in a parallel stop, DOWN not yet seen */
    tel_child_spec_t spec; /* spec.id is NULL; the id is below */
    char id[TEL_NAME_MAX + 1];
};

/* A chained hash table; grows by doubling (best effort: a failed growth
 * leaves longer chains, never a lost entry). */
struct tab {
    struct child **b;
    size_t mask; /* buckets - 1 (the first 64 buckets come with init) */
    size_t n;
};

struct sup {
    tel_sup_flags_t flags;
    struct child *head, *tail;
    size_t n_children;
    struct tab pids, ids;
    struct child *rq_head, *rq_tail;
    tel_child_spec_t tmpl; /* simple_one_for_one: the template */
    /* Restart times (ns), a ring: n of cap entries from first. */
    uint64_t *times;
    size_t times_cap, times_first, times_n;
};

/* What tel_sup_start hands to init (it lives on the caller's stack, which
 * waits until init returns). */
struct sup_init {
    const tel_sup_flags_t *flags;
    const tel_child_spec_t *specs;
    size_t n;
};

/* A request; the spec's id travels inline. */
struct sup_req {
    tel_child_spec_t spec;
    bool spec_ok; /* start_child: spec was given and valid */
    void *arg;
    tel_pid_t pid;
    size_t cap;
    char id[TEL_NAME_MAX + 1];
};

/* A reply: rc and pid, then (which_children) entries or (count) counts. */
struct sup_reply {
    int32_t rc;
    tel_pid_t pid;
    size_t total;
    tel_child_counts_t counts;
};

/* ------------------------------------------------------------------------ */
/* Hash tables                                                               */
/* ------------------------------------------------------------------------ */

static size_t hash_pid(tel_pid_t pid)
{
    uint64_t h = pid * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h ^ (h >> 29));
}

static size_t hash_id(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return (size_t)(h ^ (h >> 31));
}

/* The chain link of c in table t (pid or id). */
static struct child **chain_of(struct sup *s, struct tab *t, struct child *c)
{
    return t == &s->pids ? &c->pid_next : &c->id_next;
}

static size_t hash_of(struct sup *s, struct tab *t, struct child *c)
{
    return t == &s->pids ? hash_pid(c->pid) : hash_id(c->id);
}

static void tab_grow(struct sup *s, struct tab *t)
{
    size_t nb = t->b ? (t->mask + 1) * 2 : 64;
    struct child **b = tel__mem_zalloc(nb * sizeof(*b));
    if (!b)
        return;
    if (t->b) {
        for (size_t i = 0; i <= t->mask; i++) {
            struct child *c = t->b[i];
            while (c) {
                struct child *next = *chain_of(s, t, c);
                size_t k = hash_of(s, t, c) & (nb - 1);
                *chain_of(s, t, c) = b[k];
                b[k] = c;
                c = next;
            }
        }
        tel__mem_free(t->b, (t->mask + 1) * sizeof(*t->b));
    }
    t->b = b;
    t->mask = nb - 1;
}

/* Insert c. The buckets exist from init on, so it cannot fail. */
static void tab_put(struct sup *s, struct tab *t, struct child *c)
{
    if (t->n >= t->mask + 1)
        tab_grow(s, t);
    size_t k = hash_of(s, t, c) & t->mask;
    *chain_of(s, t, c) = t->b[k];
    t->b[k] = c;
    t->n++;
}

static void tab_del(struct sup *s, struct tab *t, struct child *c)
{
    if (!t->b)
        return;
    struct child **pp = &t->b[hash_of(s, t, c) & t->mask];
    for (; *pp; pp = chain_of(s, t, *pp)) {
        if (*pp == c) {
            *pp = *chain_of(s, t, c);
            *chain_of(s, t, c) = NULL;
            t->n--;
            return;
        }
    }
}

static struct child *find_pid(const struct sup *s, tel_pid_t pid)
{
    if (!s->pids.b || pid == 0)
        return NULL;
    struct child *c = s->pids.b[hash_pid(pid) & s->pids.mask];
    while (c && c->pid != pid)
        c = c->pid_next;
    return c;
}

static struct child *find_id(const struct sup *s, const char *id)
{
    if (!s->ids.b)
        return NULL;
    struct child *c = s->ids.b[hash_id(id) & s->ids.mask];
    while (c && strcmp(c->id, id) != 0)
        c = c->id_next;
    return c;
}

static void tab_free(struct tab *t)
{
    if (t->b)
        tel__mem_free(t->b, (t->mask + 1) * sizeof(*t->b));
    t->b = NULL;
}

/* ------------------------------------------------------------------------ */
/* Children: records, the retry queue                                        */
/* ------------------------------------------------------------------------ */

static bool is_simple(const struct sup *s)
{
    return s->flags.strategy == TEL_SIMPLE_ONE_FOR_ONE;
}

static void set_pid(struct sup *s, struct child *c, tel_pid_t pid)
{
    if (c->pid)
        tab_del(s, &s->pids, c);
    c->pid = pid;
    if (pid)
        tab_put(s, &s->pids, c);
}

static void rq_remove(struct sup *s, struct child *c)
{
    if (!c->restarting)
        return;
    if (c->rq_prev)
        c->rq_prev->rq_next = c->rq_next;
    else
        s->rq_head = c->rq_next;
    if (c->rq_next)
        c->rq_next->rq_prev = c->rq_prev;
    else
        s->rq_tail = c->rq_prev;
    c->rq_prev = c->rq_next = NULL;
    c->restarting = false;
}

static void rq_push(struct sup *s, struct child *c)
{
    if (c->restarting)
        return;
    c->restarting = true;
    c->rq_next = NULL;
    c->rq_prev = s->rq_tail;
    if (s->rq_tail)
        s->rq_tail->rq_next = c;
    else
        s->rq_head = c;
    s->rq_tail = c;
}

/* A new record for spec (id copied); NULL when out of memory. */
static struct child *child_new(const tel_child_spec_t *spec, const char *id)
{
    struct child *c = tel__mem_zalloc(sizeof(*c));
    if (!c)
        return NULL;
    c->spec = *spec;
    c->spec.id = NULL;
    if (id)
        memcpy(c->id, id, strlen(id) + 1);
    return c;
}

/* Put c at the end of the start order (and in the id table). */
static void child_append(struct sup *s, struct child *c)
{
    if (!is_simple(s))
        tab_put(s, &s->ids, c);
    c->prev = s->tail;
    c->next = NULL;
    if (s->tail)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
    s->n_children++;
}

/* Forget c (it is not running) and free it. */
static void child_drop(struct sup *s, struct child *c)
{
    rq_remove(s, c);
    set_pid(s, c, 0);
    if (!is_simple(s))
        tab_del(s, &s->ids, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        s->tail = c->prev;
    s->n_children--;
    tel__mem_free(c, sizeof(*c));
}

/* ------------------------------------------------------------------------ */
/* Starting and stopping children                                            */
/* ------------------------------------------------------------------------ */

/* Start c's process (linked to us). 0, or TEL_EINIT. Inside the sup. */
static int start_proc(struct sup *s, struct child *c)
{
    tel_pid_t pid = 0;
    int rc;
    if (c->spec.start) {
        rc = c->spec.start(&pid, c->spec.fn, c->spec.arg);
    } else {
        tel_spawn_opts_t o = {.link = true};
        rc = tel_spawn_opt(&pid, c->spec.fn, c->spec.arg, &o);
    }
    if (rc != 0 || pid == 0)
        return TEL_EINIT;
    set_pid(s, c, pid);
    return 0;
}

static bool match_exit_from(const tel_msg_t *m, void *ctx)
{
    tel_exit_info_t e;
    if (m->tag != TEL_TAG_EXIT || m->size != sizeof e)
        return false;
    memcpy(&e, m->data, sizeof e);
    return e.pid == *(const tel_pid_t *)ctx;
}

static bool match_down_ref(const tel_msg_t *m, void *ctx)
{
    tel_down_info_t d;
    if (m->tag != TEL_TAG_DOWN || m->size != sizeof d)
        return false;
    memcpy(&d, m->data, sizeof d);
    return d.ref == *(const uint64_t *)ctx;
}

/* Drop an EXIT from pid that is already queued, if any. */
static void flush_exit(tel_pid_t pid)
{
    tel_msg_t *m = NULL;
    if (tel_recv_match(&m, match_exit_from, &pid, 0) == 0)
        tel_msg_free(m);
}

/* tel_kill, retried while memory is short (an exit signal must get out). */
static void kill_sure(tel_pid_t pid, tel_reason_t reason)
{
    while (tel_kill(pid, reason) == TEL_ENOMEM)
        (void)tel_sleep(1);
}

/* Wait up to timeout_ms for the DOWN of ref: 0, or TEL_ETIMEDOUT (also
 * when no timer could be had: the caller then kills at once). */
static int wait_down(uint64_t ref, int64_t timeout_ms)
{
    tel_msg_t *m = NULL;
    int rc;
    do
        rc = tel_recv_match(&m, match_down_ref, &ref, timeout_ms);
    while (rc == TEL_ENOMEM && timeout_ms == TEL_INFINITY);
    if (rc != 0)
        return TEL_ETIMEDOUT;
    tel_msg_free(m);
    return 0;
}

/* Stop the process pid with OTP's shutdown protocol (see the top). */
static void stop_pid(tel_pid_t pid, int64_t shutdown)
{
    uint64_t ref = 0;
    bool mon = tel_monitor(&ref, pid) == 0;
    (void)tel_unlink(pid);
    flush_exit(pid);
    if (!mon) {
        /* No memory for a monitor: kill it and watch it go. */
        kill_sure(pid, TEL_KILL);
        while (tel_is_alive(pid))
            (void)tel_sleep(1);
        return;
    }
    if (shutdown == TEL_BRUTAL_KILL) {
        kill_sure(pid, TEL_KILL);
        (void)wait_down(ref, TEL_INFINITY);
        return;
    }
    kill_sure(pid, TEL_SHUTDOWN);
    if (wait_down(ref, shutdown) == 0)
        return;
    kill_sure(pid, TEL_KILL);
    (void)wait_down(ref, TEL_INFINITY);
}

/* Stop c if it runs; it stays on the lists (not running, not restarting). */
static void stop_child(struct sup *s, struct child *c)
{
    rq_remove(s, c);
    if (!c->pid)
        return;
    tel_pid_t pid = c->pid;
    set_pid(s, c, 0);
    stop_pid(pid, c->spec.shutdown);
}

/* Parallel stop: match a DOWN or EXIT of a child being stopped. */
static bool match_stopping(const tel_msg_t *m, void *ctx)
{
    const struct sup *s = ctx;
    if (m->tag == TEL_TAG_DOWN && m->size == sizeof(tel_down_info_t)) {
        tel_down_info_t d;
        memcpy(&d, m->data, sizeof d);
        const struct child *c = find_pid(s, d.pid);
        return c && c->stopping && c->mon_ref == d.ref;
    }
    if (m->tag == TEL_TAG_EXIT && m->size == sizeof(tel_exit_info_t)) {
        tel_exit_info_t e;
        memcpy(&e, m->data, sizeof e);
        const struct child *c = find_pid(s, e.pid);
        return c && c->stopping;
    }
    return false;
}

/*
 * Stop every child of a simple_one_for_one supervisor at once and drop
 * them all: signal each (reverse start order), then collect the DOWNs,
 * killing the ones left when the shutdown time is up.
 */
static void stop_all_parallel(struct sup *s)
{
    int64_t shutdown = s->tmpl.shutdown;
    tel_reason_t first = shutdown == TEL_BRUTAL_KILL ? TEL_KILL : TEL_SHUTDOWN;
    size_t pending = 0;
    for (struct child *c = s->tail, *prev; c; c = prev) {
        prev = c->prev;
        if (!c->pid) {
            child_drop(s, c);
            continue;
        }
        if (tel_monitor(&c->mon_ref, c->pid) != 0) {
            stop_child(s, c); /* no memory: this one alone, the slow way */
            child_drop(s, c);
            continue;
        }
        (void)tel_unlink(c->pid);
        c->stopping = true;
        pending++;
        kill_sure(c->pid, first);
    }
    uint64_t deadline = shutdown > 0 ? tel__deadline_ns(shutdown) : 0;
    bool killed = first == TEL_KILL;
    while (pending) {
        int64_t wait = TEL_INFINITY;
        if (!killed && shutdown != TEL_INFINITY) {
            uint64_t now = tel__now_ns();
            wait = now >= deadline ? 0
                                   : (int64_t)((deadline - now + 999999) /
                                               1000000);
        }
        tel_msg_t *m = NULL;
        int rc = tel_recv_match(&m, match_stopping, s, wait);
        if (rc != 0) {
            if (rc == TEL_ENOMEM && wait == TEL_INFINITY)
                continue;
            /* Time is up (or no timer): kill those left. */
            for (struct child *c = s->head; c; c = c->next)
                if (c->stopping)
                    kill_sure(c->pid, TEL_KILL);
            killed = true;
            continue;
        }
        if (m->tag == TEL_TAG_DOWN) {
            tel_down_info_t d;
            memcpy(&d, m->data, sizeof d);
            struct child *c = find_pid(s, d.pid);
            c->stopping = false;
            child_drop(s, c);
            pending--;
        }
        tel_msg_free(m);
    }
}

/* Stop the children from `from` to the end, last first (one at a time);
 * temporary ones are dropped. Not for simple_one_for_one. */
static void stop_from(struct sup *s, struct child *from, struct child *skip)
{
    struct child *stop_at = from ? from->prev : NULL;
    for (struct child *c = s->tail, *prev; c != stop_at; c = prev) {
        prev = c->prev;
        if (c == skip)
            continue;
        stop_child(s, c);
        if (c->spec.restart == TEL_TEMPORARY)
            child_drop(s, c);
    }
}

/* Stop every child (the supervisor is ending). */
static void stop_all(struct sup *s)
{
    if (is_simple(s)) {
        stop_all_parallel(s);
        return;
    }
    stop_from(s, s->head, NULL);
}

/* ------------------------------------------------------------------------ */
/* Restarts                                                                  */
/* ------------------------------------------------------------------------ */

/* Count a restart now; false if that makes more than intensity in period. */
static bool add_restart(struct sup *s)
{
    uint64_t now = tel__now_ns();
    uint64_t period = (uint64_t)s->flags.period_ms * 1000000u;
    while (s->times_n) {
        uint64_t t = s->times[s->times_first];
        if (now - t <= period)
            break;
        s->times_first = (s->times_first + 1) % s->times_cap;
        s->times_n--;
    }
    if ((uint64_t)s->times_n + 1 > s->flags.intensity)
        return false;
    if (s->times_n == s->times_cap) {
        size_t cap = s->times_cap ? s->times_cap * 2 : 8;
        uint64_t *t = tel__mem_alloc(cap * sizeof(*t));
        if (!t) {
            /* Forget the oldest rather than fail: intensity undercounts by
             * one while memory is short. */
            s->times_first = (s->times_first + 1) % s->times_cap;
            s->times_n--;
        } else {
            for (size_t i = 0; i < s->times_n; i++)
                t[i] = s->times[(s->times_first + i) % s->times_cap];
            tel__mem_free(s->times, s->times_cap * sizeof(*s->times));
            s->times = t;
            s->times_cap = cap;
            s->times_first = 0;
        }
    }
    s->times[(s->times_first + s->times_n) % s->times_cap] = now;
    s->times_n++;
    return true;
}

/* c's restart failed: show it restarting and queue a retry. */
static tel_reason_t retry_later(struct sup *s, struct child *c)
{
    rq_push(s, c);
    int rc;
    while ((rc = tel_cast(tel_self(), SUP_TAG | SUP_OP_TRY_AGAIN, NULL, 0)) ==
           TEL_ENOMEM)
        (void)tel_sleep(1);
    return rc == 0 ? TEL_CONTINUE : TEL_SHUTDOWN;
}

/*
 * Restart c (not running) by the strategy. TEL_CONTINUE, or TEL_SHUTDOWN
 * when the restart intensity is exceeded.
 */
static tel_reason_t restart(struct sup *s, struct child *c)
{
    rq_remove(s, c);
    if (!add_restart(s))
        return TEL_SHUTDOWN;
    struct child *from;
    switch (s->flags.strategy) {
    case TEL_ONE_FOR_ALL:
        from = s->head;
        break;
    case TEL_REST_FOR_ONE:
        from = c;
        break;
    default:
        if (start_proc(s, c) != 0)
            return retry_later(s, c);
        return TEL_CONTINUE;
    }
    /* A group: stop it (reverse order; temporary ones are dropped, which
     * may drop the old head), then start it in order. */
    stop_from(s, from, c);
    if (s->flags.strategy == TEL_ONE_FOR_ALL)
        from = s->head;
    struct child *x = from;
    for (; x; x = x->next) {
        rq_remove(s, x);
        if (start_proc(s, x) != 0)
            break;
    }
    if (!x)
        return TEL_CONTINUE;
    /* x failed: stop those started in this round and try again later. */
    for (struct child *y = x->prev; y && y != from->prev; y = y->prev)
        stop_child(s, y);
    return retry_later(s, c);
}

/* A child's process ended with reason. */
static tel_reason_t child_exited(struct sup *s, struct child *c,
                                 tel_reason_t reason)
{
    set_pid(s, c, 0);
    bool normal = reason == TEL_NORMAL || reason == TEL_SHUTDOWN;
    if (c->spec.restart == TEL_TEMPORARY ||
        (c->spec.restart == TEL_TRANSIENT && normal)) {
        if (c->spec.restart == TEL_TEMPORARY || is_simple(s))
            child_drop(s, c);
        return TEL_CONTINUE;
    }
    return restart(s, c);
}

/* ------------------------------------------------------------------------ */
/* Validation (in the caller)                                                */
/* ------------------------------------------------------------------------ */

static bool id_ok(const char *id)
{
    if (!id || !*id)
        return false;
    size_t n = strnlen(id, TEL_NAME_MAX + 1);
    return n <= TEL_NAME_MAX;
}

static bool spec_ok(const tel_child_spec_t *sp, bool simple)
{
    if (!sp || (!sp->start && !sp->fn))
        return false;
    if (!simple && !id_ok(sp->id))
        return false;
    if (sp->restart != TEL_PERMANENT && sp->restart != TEL_TRANSIENT &&
        sp->restart != TEL_TEMPORARY)
        return false;
    if (sp->type != TEL_WORKER && sp->type != TEL_SUPERVISOR)
        return false;
    return sp->shutdown >= 0 || sp->shutdown == TEL_INFINITY;
}

static bool flags_ok(const tel_sup_flags_t *f)
{
    if (!f || f->period_ms == 0)
        return false;
    return f->strategy == TEL_ONE_FOR_ONE || f->strategy == TEL_ONE_FOR_ALL ||
           f->strategy == TEL_REST_FOR_ONE ||
           f->strategy == TEL_SIMPLE_ONE_FOR_ONE;
}

/* ------------------------------------------------------------------------ */
/* The server callbacks                                                      */
/* ------------------------------------------------------------------------ */

static void sup_free(struct sup *s)
{
    while (s->head)
        child_drop(s, s->head);
    tab_free(&s->pids);
    tab_free(&s->ids);
    if (s->times)
        tel__mem_free(s->times, s->times_cap * sizeof(*s->times));
    tel__mem_free(s, sizeof(*s));
}

static void sup_free_state(void *state)
{
    sup_free(state);
}

static tel_reason_t sup_init(void *arg, void **state)
{
    const struct sup_init *in = arg;
    *state = NULL;
    (void)tel_trap_exit(true);
    struct sup *s = tel__mem_zalloc(sizeof(*s));
    if (!s)
        return TEL_NOMEM;
    s->flags = *in->flags;
    tel__server_on_kill(sup_free_state); /* killed: its memory still goes */
    tel__server_keep_stack(); /* no stack to find when a child fails */
    tab_grow(s, &s->pids);
    if (!is_simple(s))
        tab_grow(s, &s->ids);
    if (!s->pids.b || (!is_simple(s) && !s->ids.b)) {
        sup_free(s);
        return TEL_NOMEM;
    }
    if (is_simple(s)) {
        s->tmpl = in->specs[0];
        s->tmpl.id = NULL;
        *state = s;
        return TEL_CONTINUE;
    }
    for (size_t i = 0; i < in->n; i++) {
        struct child *c = child_new(&in->specs[i], in->specs[i].id);
        if (!c) {
            sup_free(s);
            return TEL_NOMEM;
        }
        child_append(s, c);
    }
    for (struct child *c = s->head; c; c = c->next) {
        if (start_proc(s, c) != 0) {
            stop_from(s, s->head, NULL);
            sup_free(s);
            return TEL_SHUTDOWN;
        }
    }
    *state = s;
    return TEL_CONTINUE;
}

static void reply(tel_from_t from, const struct sup_reply *r, const void *extra,
                  size_t extra_size)
{
    if (!extra_size) {
        (void)tel_reply(from, 0, r, sizeof(*r));
        return;
    }
    size_t size = sizeof(*r) + extra_size;
    unsigned char *buf = tel__mem_alloc(size);
    if (!buf) {
        struct sup_reply e = {.rc = TEL_ENOMEM};
        (void)tel_reply(from, 0, &e, sizeof e);
        return;
    }
    memcpy(buf, r, sizeof(*r));
    memcpy(buf + sizeof(*r), extra, extra_size);
    (void)tel_reply(from, 0, buf, size);
    tel__mem_free(buf, size);
}

static void do_start_child(struct sup *s, const struct sup_req *q,
                           struct sup_reply *r)
{
    struct child *c;
    if (is_simple(s)) {
        c = child_new(&s->tmpl, NULL);
        if (c)
            c->spec.arg = q->arg;
    } else {
        if (!q->spec_ok) {
            r->rc = TEL_EINVAL;
            return;
        }
        struct child *old = find_id(s, q->id);
        if (old) {
            r->rc = old->pid ? TEL_EALREADY : TEL_EPRESENT;
            r->pid = old->pid;
            return;
        }
        c = child_new(&q->spec, q->id);
    }
    if (!c) {
        r->rc = TEL_ENOMEM;
        return;
    }
    if (start_proc(s, c) != 0) {
        tel__mem_free(c, sizeof(*c));
        r->rc = TEL_EINIT;
        return;
    }
    child_append(s, c);
    r->pid = c->pid;
}

static void do_terminate_child(struct sup *s, const struct sup_req *q,
                               struct sup_reply *r)
{
    if (is_simple(s) ? q->pid == 0 : q->id[0] == '\0') {
        r->rc = TEL_EINVAL;
        return;
    }
    struct child *c = is_simple(s) ? find_pid(s, q->pid) : find_id(s, q->id);
    if (!c) {
        r->rc = TEL_ENOENT;
        return;
    }
    stop_child(s, c);
    if (is_simple(s) || c->spec.restart == TEL_TEMPORARY)
        child_drop(s, c);
}

/* The stopped child q names, for restart_child and delete_child; NULL with
 * r->rc set (OTP's errors) if there is none. */
static struct child *stopped_child(struct sup *s, const struct sup_req *q,
                                   struct sup_reply *r)
{
    struct child *c = is_simple(s) ? NULL : find_id(s, q->id);
    if (is_simple(s))
        r->rc = TEL_EINVAL;
    else if (!c)
        r->rc = TEL_ENOENT;
    else if (c->pid)
        r->rc = TEL_ERUNNING;
    else if (c->restarting)
        r->rc = TEL_ERESTARTING;
    else
        return c;
    return NULL;
}

static void do_restart_child(struct sup *s, const struct sup_req *q,
                             struct sup_reply *r)
{
    struct child *c = stopped_child(s, q, r);
    if (!c)
        return;
    if (start_proc(s, c) != 0)
        r->rc = TEL_EINIT;
    else
        r->pid = c->pid;
}

static void do_delete_child(struct sup *s, const struct sup_req *q,
                            struct sup_reply *r)
{
    struct child *c = stopped_child(s, q, r);
    if (c)
        child_drop(s, c);
}

static void do_which_children(struct sup *s, tel_from_t from,
                              const struct sup_req *q)
{
    struct sup_reply r = {.total = s->n_children};
    size_t n = q->cap < s->n_children ? q->cap : s->n_children;
    if (n == 0) {
        reply(from, &r, NULL, 0);
        return;
    }
    tel_child_info_t *v = tel__mem_zalloc(n * sizeof(*v));
    if (!v) {
        r.rc = TEL_ENOMEM;
        reply(from, &r, NULL, 0);
        return;
    }
    size_t i = 0;
    for (struct child *c = s->head; c && i < n; c = c->next, i++) {
        memcpy(v[i].id, c->id, sizeof v[i].id);
        v[i].pid = c->pid;
        v[i].restarting = c->restarting;
        v[i].type = c->spec.type;
    }
    reply(from, &r, v, n * sizeof(*v));
    tel__mem_free(v, n * sizeof(*v));
}

static void do_count_children(struct sup *s, struct sup_reply *r)
{
    tel_child_counts_t *k = &r->counts;
    for (struct child *c = s->head; c; c = c->next) {
        if (c->pid && tel_is_alive(c->pid))
            k->active++;
        if (c->spec.type == TEL_SUPERVISOR)
            k->supervisors++;
        else
            k->workers++;
    }
    /* OTP: a simple_one_for_one supervisor has one spec, its template. */
    k->specs = is_simple(s) ? 1 : (uint32_t)s->n_children;
}

static tel_reason_t sup_handle_call(void *state, tel_from_t from, uint64_t tag,
                                    const void *req, size_t size)
{
    struct sup *s = state;
    struct sup_reply r = {0};
    struct sup_req q;
    if ((tag & ~UINT64_C(0xFF)) != SUP_TAG || size != sizeof q) {
        r.rc = TEL_EINVAL;
        reply(from, &r, NULL, 0);
        return TEL_CONTINUE;
    }
    memcpy(&q, req, sizeof q);
    q.id[TEL_NAME_MAX] = '\0';
    switch (tag & 0xFF) {
    case SUP_OP_START_CHILD:
        do_start_child(s, &q, &r);
        break;
    case SUP_OP_TERMINATE_CHILD:
        do_terminate_child(s, &q, &r);
        break;
    case SUP_OP_RESTART_CHILD:
        do_restart_child(s, &q, &r);
        break;
    case SUP_OP_DELETE_CHILD:
        do_delete_child(s, &q, &r);
        break;
    case SUP_OP_WHICH_CHILDREN:
        do_which_children(s, from, &q);
        return TEL_CONTINUE;
    case SUP_OP_COUNT_CHILDREN:
        do_count_children(s, &r);
        break;
    default:
        r.rc = TEL_EINVAL;
        break;
    }
    reply(from, &r, NULL, 0);
    return TEL_CONTINUE;
}

static tel_reason_t sup_handle_cast(void *state, uint64_t tag, const void *req,
                                    size_t size)
{
    struct sup *s = state;
    (void)req;
    (void)size;
    if (tag != (SUP_TAG | SUP_OP_TRY_AGAIN) || !s->rq_head)
        return TEL_CONTINUE;
    return restart(s, s->rq_head);
}

static tel_reason_t sup_handle_info(void *state, const tel_msg_t *m)
{
    struct sup *s = state;
    tel_exit_info_t e;
    if (m->tag != TEL_TAG_EXIT || m->size != sizeof e)
        return TEL_CONTINUE; /* stray DOWNs and anything else */
    memcpy(&e, m->data, sizeof e);
    struct child *c = find_pid(s, e.pid);
    if (!c)
        return TEL_CONTINUE; /* an old child's, or a stranger's (not the
                                parent's: the server loop takes those) */
    return child_exited(s, c, e.reason);
}

static void sup_terminate(void *state, tel_reason_t reason)
{
    struct sup *s = state;
    (void)reason;
    if (!s)
        return;
    stop_all(s);
    sup_free(s);
}

static const tel_server_ops_t sup_ops = {
    .init = sup_init,
    .handle_call = sup_handle_call,
    .handle_cast = sup_handle_cast,
    .handle_info = sup_handle_info,
    .terminate = sup_terminate,
};

/* ------------------------------------------------------------------------ */
/* The entry points                                                          */
/* ------------------------------------------------------------------------ */

static int sup_start(tel_pid_t *out, const tel_sup_flags_t *flags,
                     const tel_child_spec_t *specs, size_t n, bool link)
{
    if (out)
        *out = 0;
    if (!flags_ok(flags) || (n > 0 && !specs))
        return TEL_EINVAL;
    bool simple = flags->strategy == TEL_SIMPLE_ONE_FOR_ONE;
    if (simple && n != 1)
        return TEL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!spec_ok(&specs[i], simple))
            return TEL_EINVAL;
    if (!simple) {
        /* Duplicate ids: a sort would be O(n log n); specs lists are
         * short, so the quadratic check is kept simple. */
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (strcmp(specs[i].id, specs[j].id) == 0)
                    return TEL_EINVAL;
    }
    if (!tel_self())
        return TEL_ENOTPROC;
    struct sup_init in = {.flags = flags, .specs = specs, .n = n};
    tel_pid_t pid = 0;
    int rc = link ? tel_server_start_link(&pid, &sup_ops, &in)
                  : tel_server_start(&pid, &sup_ops, &in);
    if (rc == 0 && out)
        *out = pid;
    return rc;
}

int tel_sup_start(tel_pid_t *out, const tel_sup_flags_t *flags,
                  const tel_child_spec_t *specs, size_t n)
{
    return sup_start(out, flags, specs, n, false);
}

int tel_sup_start_link(tel_pid_t *out, const tel_sup_flags_t *flags,
                       const tel_child_spec_t *specs, size_t n)
{
    return sup_start(out, flags, specs, n, true);
}

/* Send q as operation op to sup and wait for the reply; the reply's rc, or
 * the call's error. With extra, the reply's trailing bytes (at most
 * extra_size) are copied there. */
static int sup_call(tel_pid_t sup, enum sup_op op, const struct sup_req *q,
                    struct sup_reply *r, void *extra, size_t extra_size)
{
    if (!tel_self())
        return TEL_ENOTPROC;
    tel_msg_t *m = NULL;
    int rc = tel_call(sup, SUP_TAG | (uint64_t)op, q, sizeof(*q), &m,
                      TEL_INFINITY);
    if (rc != 0)
        return rc;
    if (m->size < sizeof(*r)) {
        tel_msg_free(m);
        return TEL_EINVAL; /* sup is not a supervisor */
    }
    memcpy(r, m->data, sizeof(*r));
    if (extra && m->size > sizeof(*r)) {
        size_t k = m->size - sizeof(*r);
        memcpy(extra, (unsigned char *)m->data + sizeof(*r),
               k < extra_size ? k : extra_size);
    }
    tel_msg_free(m);
    return r->rc;
}

int tel_sup_start_child(tel_pid_t sup, const tel_child_spec_t *spec,
                        void *arg, tel_pid_t *pid_out)
{
    if (pid_out)
        *pid_out = 0;
    if (sup == 0)
        return TEL_EINVAL;
    struct sup_req q = {.arg = arg};
    /* Whether the spec is good is checked here; only a supervisor that is
     * not simple_one_for_one needs it to be (it answers TEL_EINVAL). */
    if (spec_ok(spec, false)) {
        q.spec = *spec;
        q.spec.id = NULL;
        q.spec_ok = true;
        memcpy(q.id, spec->id, strlen(spec->id) + 1);
    }
    struct sup_reply r = {0};
    int rc = sup_call(sup, SUP_OP_START_CHILD, &q, &r, NULL, 0);
    if (pid_out && (rc == 0 || rc == TEL_EALREADY))
        *pid_out = r.pid;
    return rc;
}

int tel_sup_terminate_child(tel_pid_t sup, const char *id, tel_pid_t pid)
{
    /* One of the two must be usable; the supervisor knows which it needs
     * (an id, or a pid under simple_one_for_one) and answers TEL_EINVAL
     * when that one is missing. */
    bool has_id = id_ok(id);
    if (sup == 0 || (!has_id && pid == 0))
        return TEL_EINVAL;
    struct sup_req q = {.pid = pid};
    if (has_id)
        memcpy(q.id, id, strlen(id) + 1);
    struct sup_reply r = {0};
    return sup_call(sup, SUP_OP_TERMINATE_CHILD, &q, &r, NULL, 0);
}

int tel_sup_restart_child(tel_pid_t sup, const char *id, tel_pid_t *pid_out)
{
    if (pid_out)
        *pid_out = 0;
    if (sup == 0 || !id_ok(id))
        return TEL_EINVAL;
    struct sup_req q = {0};
    memcpy(q.id, id, strlen(id) + 1);
    struct sup_reply r = {0};
    int rc = sup_call(sup, SUP_OP_RESTART_CHILD, &q, &r, NULL, 0);
    if (rc == 0 && pid_out)
        *pid_out = r.pid;
    return rc;
}

int tel_sup_delete_child(tel_pid_t sup, const char *id)
{
    if (sup == 0 || !id_ok(id))
        return TEL_EINVAL;
    struct sup_req q = {0};
    memcpy(q.id, id, strlen(id) + 1);
    struct sup_reply r = {0};
    return sup_call(sup, SUP_OP_DELETE_CHILD, &q, &r, NULL, 0);
}

int tel_sup_which_children(tel_pid_t sup, tel_child_info_t *buf, size_t cap,
                           size_t *n_out)
{
    if (n_out)
        *n_out = 0;
    if (sup == 0 || !n_out || (cap > 0 && !buf))
        return TEL_EINVAL;
    struct sup_req q = {.cap = cap};
    struct sup_reply r = {0};
    int rc = sup_call(sup, SUP_OP_WHICH_CHILDREN, &q, &r, buf,
                      cap * sizeof(*buf));
    if (rc == 0)
        *n_out = r.total;
    return rc;
}

int tel_sup_count_children(tel_pid_t sup, tel_child_counts_t *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (sup == 0 || !out)
        return TEL_EINVAL;
    struct sup_req q = {0};
    struct sup_reply r = {0};
    int rc = sup_call(sup, SUP_OP_COUNT_CHILDREN, &q, &r, NULL, 0);
    if (rc == 0)
        *out = r.counts;
    return rc;
}
