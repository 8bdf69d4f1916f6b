/*
 * core/server.c: servers (OTP's gen_server): tel_server_start[_link],
 * tel_call, tel_cast, tel_reply.
 *
 * Owns: the server loop and the call protocol.
 *
 * Protocol. A call is a message of kind MSGK_CALL carrying a fresh ref
 * (core/message.h); the reply is a message of kind MSGK_REPLY with the same
 * ref. The caller monitors the server for the length of the call and waits
 * for whichever comes first, the reply or the DOWN, so a dead server ends
 * the call at once (TEL_ENOPROC if it was dead already, TEL_EDOWN if it died
 * during the call). The monitor rides on the call itself: its ref is the
 * call's, the caller records it in its `mons`, and the server records the
 * caller in its `watchers` when it takes the call off its queue
 * (core/link.c); the server's own tel_reply drops that watch, so a call is
 * two messages, not four (a monitor and a demonitor signal each way cost
 * about 60 ns a call). A call still queued when the server ends gets its
 * DOWN from the server's exit (or, arriving later, from the release of its
 * block: TEL_NOPROC). While it waits, the caller's ext holds the call's ref;
 * any other reply that reaches its mailbox is dropped when popped
 * (core/link.c, tel__sig_filter), so a reply that comes after its call gave
 * up can never be taken for a later call's, nor be seen by a receive: what
 * Erlang's process aliases give OTP 24's gen_server:call.
 *
 * Starting is a call too: the starter spawns the server with a monitor (and
 * a link for _link) and waits for the ack (a reply with the start ref) that
 * the server sends once init returned. A server whose init fails unlinks
 * from its starter first, so the starter gets TEL_EINIT and no exit signal
 * (OTP's proc_lib:init_fail).
 *
 * The loop takes messages while there are any; when the mailbox is empty it
 * hibernates (core/hibernate.c), so an idle server holds no stack, only its
 * process block and a struct server.
 */
#include <string.h>

#include "alloc/numa.h"
#include "core/link.h"
#include "core/mailbox.h"
#include "core/pid.h"
#include "core/runtime.h"
#include "core/server.h"

struct server {
    struct proc_ext *ext; /* the server process's */
    void (*on_kill)(void *state); /* tel__server_on_kill */
    bool keep_stack;              /* tel__server_keep_stack */
    const tel_server_ops_t *ops;
    void *state;
    tel_pid_t parent; /* the starter */
};

struct start {
    const tel_server_ops_t *ops;
    void *arg;
    tel_pid_t starter;
    uint64_t ref;
    bool linked;
};

/* One block, owned by the server process from its spawn on (its ext frees
 * it however the process ends, even before it first runs). */
struct server_blk {
    struct start st;
    struct server sv;
};

static int deliver_kind(tel_pid_t to, tel_pid_t from, unsigned kind,
                        uint64_t ref, uint64_t tag, const void *data,
                        size_t size)
{
    struct msg *m = tel__msg_new(from, tag, data, size);
    if (!m)
        return TEL_ENOMEM;
    tel__msg_set_kind(m, kind, ref);
    tel__mbox_deliver(to, m);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The server process                                                  */
/* ------------------------------------------------------------------ */

_Noreturn static void stop(struct server *sv, tel_reason_t reason)
{
    /* The state is terminate's to free; the on-kill cleanup stays armed
     * until it has returned, since terminate may wait (a supervisor stops
     * its children) and the process can be killed there, or ended by
     * tel_run's teardown. So terminate must free the state only where it
     * can no longer switch. */
    if (sv->ops->terminate)
        sv->ops->terminate(sv->state, reason);
    sv->ext->cleanup = NULL;
    tel_exit(reason); /* sv goes with the process's ext */
}

static void loop(void *arg);

/* One message; frees it. */
static void dispatch(struct server *sv, tel_msg_t *pub)
{
    struct msg *m = tel__msg_of(pub);
    const tel_server_ops_t *ops = sv->ops;
    tel_reason_t r = TEL_CONTINUE;
    /* If a callback ends the process (tel_exit, a crash), the message it
     * runs on is freed with the process. */
    sv->ext->held = m;
    switch (tel__msg_kind(m)) {
    case MSGK_CALL: {
        tel_from_t from = {.pid = pub->from, .ref = tel__msg_ref(m)};
        r = ops->handle_call(sv->state, from, pub->tag, pub->data, pub->size);
        break;
    }
    case MSGK_CAST:
        if (ops->handle_cast)
            r = ops->handle_cast(sv->state, pub->tag, pub->data, pub->size);
        break;
    case MSGK_SYS:
        if (pub->tag == TEL_TAG_EXIT) {
            tel_exit_info_t x;
            memcpy(&x, pub->data, sizeof x);
            if (x.pid == sv->parent && sv->parent) {
                /* The parent ended and we trap exits: stop with its reason
                 * (gen_server does the same). */
                sv->ext->held = NULL;
                tel_msg_free(pub);
                stop(sv, x.reason);
            }
        }
        /* Other EXITs and DOWNs are info. */
        __attribute__((fallthrough));
    default:
        if (ops->handle_info)
            r = ops->handle_info(sv->state, pub);
        break;
    }
    sv->ext->held = NULL;
    tel_msg_free(pub);
    if (r != TEL_CONTINUE)
        stop(sv, r);
}

static void loop(void *arg)
{
    struct server *sv = arg;
    for (;;) {
        tel_msg_t *m;
        if (tel_recv(&m, 0) != 0) {
            /* Nothing waits: sleep without a stack until something does.
             * tel_hibernate fails only for bad arguments. */
            if (!sv->keep_stack)
                (void)tel_hibernate(loop, sv);
            else if (tel_recv(&m, TEL_INFINITY) == 0)
                dispatch(sv, m);
            continue;
        }
        dispatch(sv, m);
    }
}

static void server_main(void *arg)
{
    struct server_blk *b = arg;
    struct start st = b->st;
    struct server *sv = &b->sv;
    sv->ext = tel__ext(tel__proc_current(tel__sched_self()));
    sv->on_kill = NULL;
    sv->keep_stack = false;
    sv->ops = st.ops;
    sv->state = NULL;
    sv->parent = st.starter;
    tel_reason_t r = st.ops->init(st.arg, &sv->state);
    if (r != TEL_CONTINUE) {
        sv->ext->cleanup = NULL; /* a failed init cleans up after itself */
        if (st.linked)
            (void)tel_unlink(st.starter);
        (void)deliver_kind(st.starter, tel_self(), MSGK_REPLY, st.ref, 0, &r,
                           sizeof r);
        tel_exit(r);
    }
    if (deliver_kind(st.starter, tel_self(), MSGK_REPLY, st.ref, 0, &r,
                     sizeof r) != 0)
        stop(sv, TEL_NOMEM); /* the starter must not wait for nothing */
    loop(sv);
}

static void run_on_kill(void *arg)
{
    struct server *sv = arg;
    if (sv->state)
        sv->on_kill(sv->state);
}

void tel__server_on_kill(void (*fn)(void *state))
{
    struct proc *p = tel__proc_current(tel__sched_self());
    struct proc_ext *e = p ? tel__ext(p) : NULL;
    if (!e || !e->owned)
        return;
    struct server *sv = &((struct server_blk *)e->owned)->sv;
    sv->on_kill = fn;
    e->cleanup = run_on_kill;
    e->cleanup_arg = sv;
}

void tel__server_keep_stack(void)
{
    struct proc *p = tel__proc_current(tel__sched_self());
    struct proc_ext *e = p ? tel__ext(p) : NULL;
    if (e && e->owned)
        ((struct server_blk *)e->owned)->sv.keep_stack = true;
}

/* ------------------------------------------------------------------ */
/* Waiting for a reply                                                 */
/* ------------------------------------------------------------------ */

struct wait {
    uint64_t ref;  /* the reply's */
    uint64_t mref; /* the monitor's */
};

static bool reply_or_down(const tel_msg_t *pub, void *ctx)
{
    const struct wait *w = ctx;
    const struct msg *m = tel__msg_of((tel_msg_t *)pub);
    unsigned k = tel__msg_kind(m);
    if (k == MSGK_REPLY)
        return tel__msg_ref(m) == w->ref;
    if (k == MSGK_SYS && pub->tag == TEL_TAG_DOWN) {
        tel_down_info_t d;
        memcpy(&d, pub->data, sizeof d);
        return d.ref == w->mref;
    }
    return false;
}

/*
 * Wait for the reply w->ref or the DOWN w->mref. 0 with the reply in *out,
 * or TEL_ENOPROC / TEL_EDOWN (reason to *why), TEL_ETIMEDOUT, TEL_ENOMEM.
 * Always leaves the monitor removed and no DOWN of it queued.
 */
static int await_reply(struct proc_ext *e, const struct wait *w,
                       int64_t timeout_ms, tel_msg_t **out, tel_reason_t *why)
{
    e->call_ref = w->ref;
    tel_msg_t *m = NULL;
    int rc = tel_recv_match(&m, reply_or_down, (void *)w, timeout_ms);
    e->call_ref = 0;
    if (rc != 0) {
        (void)tel_demonitor(w->mref, true);
        return rc;
    }
    if (tel__msg_kind(tel__msg_of(m)) == MSGK_REPLY) {
        (void)tel_demonitor(w->mref, true);
        *out = m;
        return 0;
    }
    tel_down_info_t d;
    memcpy(&d, m->data, sizeof d);
    tel_msg_free(m);
    *why = d.reason;
    return d.reason == TEL_NOPROC ? TEL_ENOPROC : TEL_EDOWN;
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */
/* ------------------------------------------------------------------ */

static int start(tel_pid_t *out, const tel_server_ops_t *ops, void *arg,
                 bool link)
{
    if (out)
        *out = 0;
    if (!ops || !ops->init || !ops->handle_call)
        return TEL_EINVAL;
    struct proc *p = tel__proc_current(tel__sched_self());
    if (!p)
        return TEL_ENOTPROC;
    struct proc_ext *e = tel__ext_get(p);
    struct server_blk *b = tel__mem_alloc(sizeof(*b));
    if (!e || !b) {
        if (b)
            tel__mem_free(b, sizeof(*b));
        return TEL_ENOMEM;
    }
    b->st = (struct start){.ops = ops, .arg = arg, .starter = p->pid,
                           .ref = tel__make_ref(), .linked = link};
    struct wait w = {.ref = b->st.ref};
    tel_pid_t pid;
    tel_spawn_opts_t o = {.link = link, .monitor = true, .monitor_ref = &w.mref};
    int rc = tel__spawn_owned(&pid, server_main, b, sizeof(*b), &o);
    if (rc) {
        tel__mem_free(b, sizeof(*b));
        return rc;
    }
    tel_msg_t *ack = NULL;
    tel_reason_t why;
    rc = await_reply(e, &w, TEL_INFINITY, &ack, &why);
    if (rc == TEL_ENOPROC || rc == TEL_EDOWN)
        return TEL_EINIT; /* it died in init */
    if (rc)
        return rc;
    tel_reason_t r = TEL_NOMEM;
    if (ack->size == sizeof r)
        memcpy(&r, ack->data, sizeof r);
    tel_msg_free(ack);
    if (r != TEL_CONTINUE)
        return TEL_EINIT;
    if (out)
        *out = pid;
    return 0;
}

int tel_server_start(tel_pid_t *out, const tel_server_ops_t *ops, void *arg)
{
    return start(out, ops, arg, false);
}

int tel_server_start_link(tel_pid_t *out, const tel_server_ops_t *ops,
                          void *arg)
{
    return start(out, ops, arg, true);
}

int tel_call(tel_pid_t pid, uint64_t tag, const void *req, size_t size,
             tel_msg_t **reply_out, int64_t timeout_ms)
{
    if (reply_out)
        *reply_out = NULL;
    if (!pid || !reply_out || (size && !req) || timeout_ms < TEL_INFINITY)
        return TEL_EINVAL;
    struct proc *p = tel__proc_current(tel__sched_self());
    if (!p)
        return TEL_ENOTPROC;
    struct proc_ext *e = tel__ext_get(p);
    if (!e)
        return TEL_ENOMEM;
    /* The call's ref is also its monitor's: the server watches us from the
     * moment it takes the call (core/link.c), so no monitor signals. */
    struct wait w;
    w.ref = w.mref = tel__make_ref();
    struct msg *m = tel__msg_new(p->pid, tag, req, size);
    if (!m || tel__idmap_put(&e->mons, w.ref, pid) != 0) {
        if (m)
            tel__msg_free(m);
        return TEL_ENOMEM;
    }
    tel__msg_set_kind(m, MSGK_CALL, w.ref);
    if (!tel__mbox_deliver_alive(pid, m)) {
        (void)tel__idmap_del(&e->mons, w.ref, NULL);
        e->call_reason = TEL_NOPROC;
        return TEL_ENOPROC;
    }
    e->call_ref = w.ref;
    tel_msg_t *r = NULL;
    int rc = tel_recv_match(&r, reply_or_down, &w, timeout_ms);
    e->call_ref = 0;
    if (rc == 0 && tel__msg_kind(tel__msg_of(r)) == MSGK_SYS) {
        /* The DOWN (its monitor entry went when it was taken). */
        tel_down_info_t d;
        memcpy(&d, r->data, sizeof d);
        tel_msg_free(r);
        e->call_reason = d.reason;
        return d.reason == TEL_NOPROC ? TEL_ENOPROC : TEL_EDOWN;
    }
    /* A reply, a timeout or no memory for a timer: we stop watching. A
     * DOWN still on its way finds no monitor here and is dropped. The
     * server dropped its watch when it replied itself; if another process
     * replied, or none did, tell the server. */
    (void)tel__idmap_del(&e->mons, w.ref, NULL);
    if (rc != 0 || r->from != pid)
        tel__sig_demonitor(pid, p->pid, w.ref);
    if (rc == 0)
        *reply_out = r;
    return rc;
}

tel_reason_t tel_call_reason(void)
{
    struct proc *p = tel__proc_current(tel__sched_self());
    struct proc_ext *e = p ? tel__ext(p) : NULL;
    return e ? e->call_reason : 0;
}

/* A message of kind to pid from wherever we are. */
static int post(tel_pid_t pid, unsigned kind, uint64_t ref, uint64_t tag,
                const void *data, size_t size)
{
    struct sched *s = tel__sched_self();
    if (!s && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    struct proc *self = tel__proc_current(s);
    int rc = deliver_kind(pid, self ? self->pid : 0, kind, ref, tag, data,
                          size);
    if (!s) {
        tel__rt_leave();
    } else if (self) {
        (void)tel__sched_charge(s, 1 + (uint32_t)(size >> 10));
        tel__sig_poll(self);
    }
    return rc;
}

int tel_cast(tel_pid_t pid, uint64_t tag, const void *req, size_t size)
{
    if (!pid || (size && !req))
        return TEL_EINVAL;
    return post(pid, MSGK_CAST, 0, tag, req, size);
}

int tel_reply(tel_from_t from, uint64_t tag, const void *data, size_t size)
{
    if (!from.pid || (size && !data))
        return TEL_EINVAL;
    /* The server answering its own call: the caller stops watching it. */
    struct proc *self = tel__proc_current(tel__sched_self());
    struct proc_ext *e = self ? tel__ext(self) : NULL;
    uint64_t watcher;
    if (e && tel__idmap_get(&e->watchers, from.ref, &watcher) &&
        watcher == from.pid)
        (void)tel__idmap_del(&e->watchers, from.ref, NULL);
    return post(from.pid, MSGK_REPLY, from.ref, tag, data, size);
}
