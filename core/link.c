/*
 * core/link.c: links, monitors, exit signals, trap_exit, tel_kill.
 *
 * Owns: the signals processes send each other (core/link.h: SIG_*), each
 * process's link and monitor tables (struct proc_ext), and the public calls
 * tel_link, tel_unlink, tel_monitor, tel_demonitor, tel_trap_exit, tel_kill.
 *
 * Signals are messages (kind MSGK_SIGNAL) in the receiver's own arrival
 * queue, so a signal keeps its order with every message from the same
 * sender, and waking a receiver for a signal is waking it for a message.
 * Only the receiver's runtime acts on them, on its own stack, when it pops
 * them (receive, tel__sig_take_all): so a process's tables are written by
 * the process alone, without locks, and the sender of a signal never
 * touches the receiver's state besides its queue and one flag bit.
 *
 * Each side keeps its half:
 *   - a link is in both processes' `links`; the one calling tel_link adds
 *     it at once and sends SIG_LINK, the other adds it when it acts on it.
 *   - a monitor is `mons[ref] = target` in the watcher and
 *     `watchers[ref] = watcher` in the target.
 * An exit signal or DOWN is acted on only if the receiver still has the
 * link or monitor: that is how "after tel_unlink no exit signal from that
 * link arrives" and "no DOWN after tel_demonitor" hold without any
 * handshake, whatever is in flight.
 *
 * The end of a process (tel__sig_exit, on its scheduler once it is off its
 * stack): it first acts on the signals that came before its end (links and
 * monitors made then are honoured with the real reason), then sends
 * SIG_EXIT_LINK to every linked process, SIG_DOWN to every watcher, and
 * SIG_DEMONITOR for its own monitors. A signal that comes later still (its
 * sender looked the pid up just before the exit) sits in the queue until the
 * block is freed; tel__sig_release then answers a LINK or MONITOR with
 * TEL_NOPROC, as for a process already dead.
 *
 * Exit signals must reach a process that never receives: the sender of
 * SIG_EXIT or SIG_EXIT_LINK sets XW_SIG in the receiver's block after the
 * push, and core's calls that may have switched (tel_reduce, tel_yield,
 * tel_send, tel_spawn, ...) look at that bit (tel__sig_poll). Code that
 * never calls Telar sees it at its next call.
 *
 * Out of memory: a process that cannot record a link or monitor asked of
 * it answers as if it had ended with TEL_NOMEM (the asker gets the exit
 * signal or DOWN), so no one waits for a signal that will never come. If
 * even that answer, or an exit notification, cannot be allocated, it is
 * lost; Telar then has less than a message's worth of memory.
 */
#include "core/link.h"

#include <string.h>

#include "alloc/numa.h"
#include "core/mailbox.h"
#include "core/pid.h"
#include "core/runtime.h"

struct proc_ext *tel__ext_get(struct proc *p)
{
    struct proc_ext *e = tel__ext(p);
    if (e)
        return e;
    e = tel__mem_zalloc(sizeof(*e));
    if (!e)
        return NULL;
    atomic_fetch_or_explicit(&p->xw, (uintptr_t)e, memory_order_relaxed);
    return e;
}

static void ext_free(struct proc *p)
{
    struct proc_ext *e = tel__ext(p);
    if (!e)
        return;
    tel__idmap_free(&e->links);
    tel__idmap_free(&e->mons);
    tel__idmap_free(&e->watchers);
    if (e->cleanup)
        e->cleanup(e->cleanup_arg);
    if (e->owned)
        tel__mem_free(e->owned, e->owned_size);
    if (e->held)
        tel__msg_free(e->held);
    tel__mem_free(e, sizeof(*e));
    atomic_store_explicit(&p->xw, 0, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* Sending signals                                                     */
/* ------------------------------------------------------------------ */

/*
 * Send signal kind (ref, payload) from `from` to `to`. urgent: it may end
 * the receiver, which must see it even if it never receives. Returns 1 if
 * delivered, 0 if `to` is not alive, TEL_ENOMEM. Any thread (a thread
 * outside the runtime must be inside tel__rt_enter).
 */
static int sig_send(tel_pid_t to, tel_pid_t from, unsigned kind, uint64_t ref,
                    const void *pl, size_t n, bool urgent)
{
    struct sched *s = tel__sched_self();
    if (s && atomic_load_explicit(&s->ob_to, memory_order_relaxed))
        tel__send_close(s);
    struct proc *p = tel__proc_get(s, to);
    if (!p)
        return 0;
    int rc = 1;
    struct msg *m = tel__msg_new(from, kind, pl, n);
    if (m) {
        tel__msg_set_kind(m, MSGK_SIGNAL, ref);
        if (tel__mpsc_push_wake(&p->mbox.in, &m->node))
            tel__sched_wake_parked(&p->task);
        if (urgent)
            atomic_fetch_or_explicit(&p->xw, XW_SIG, memory_order_release);
    } else {
        rc = TEL_ENOMEM;
    }
    tel__proc_put(s, p);
    return rc;
}

static void send_exit(tel_pid_t to, tel_pid_t from, unsigned kind,
                      tel_reason_t reason)
{
    tel_exit_info_t xi = {.pid = from, .reason = reason};
    (void)sig_send(to, from, kind, 0, &xi, sizeof xi, true);
}

static void send_down(tel_pid_t to, tel_pid_t from, uint64_t ref,
                      tel_reason_t reason)
{
    tel_down_info_t di = {.ref = ref, .pid = from, .reason = reason};
    (void)sig_send(to, from, SIG_DOWN, ref, &di, sizeof di, false);
}

/* A message the runtime gives p itself (an EXIT or DOWN it must see). */
static int self_sys(struct proc *p, uint64_t tag, tel_pid_t from,
                    const void *pl, size_t n)
{
    struct msg *m = tel__msg_new(from, tag, pl, n);
    if (!m)
        return TEL_ENOMEM;
    tel__msg_set_kind(m, MSGK_SYS, 0);
    /* Our own queue: the owner is running, so no one to wake. */
    (void)tel__mpsc_push_wake(&p->mbox.in, &m->node);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Acting on signals (the receiver, on its own stack)                  */
/* ------------------------------------------------------------------ */

_Noreturn static void die(struct proc *p, tel_reason_t reason)
{
    tel__sched_timer_disarm(&p->task); /* killed in a timed wait */
    tel_exit(reason);
}

static void to_sys(struct msg *m, uint64_t tag)
{
    tel__msg_set_kind(m, MSGK_SYS, 0);
    m->pub.tag = tag;
}

/* Erlang's rules for an exit signal that reached p. */
static bool exit_rules(struct proc *p, struct msg *m, bool linked)
{
    tel_exit_info_t xi;
    memcpy(&xi, m->pub.data, sizeof xi);
    if (!linked && xi.reason == TEL_KILL) {
        tel__msg_free(m);
        die(p, TEL_KILLED);
    }
    if (p->task.flags & PROC_TRAP) {
        to_sys(m, TEL_TAG_EXIT);
        return true;
    }
    tel__msg_free(m);
    if (xi.reason == TEL_NORMAL && !(!linked && xi.pid == p->pid))
        return false;
    die(p, xi.reason);
}

bool tel__sig_filter(struct proc *p, struct msg *m)
{
    struct proc_ext *e = tel__ext(p);
    if (tel__msg_kind(m) == MSGK_REPLY) {
        /* Only the call waiting now takes a reply: a late one (its call
         * timed out or the caller gave up) is dropped here. */
        if (e && e->call_ref && e->call_ref == tel__msg_ref(m))
            return true;
        tel__msg_free(m);
        return false;
    }
    tel_pid_t from = m->pub.from;
    uint64_t ref = tel__msg_ref(m);
    if (tel__msg_kind(m) == MSGK_CALL) {
        /* The caller watches us until we reply (tel_reply drops it) or it
         * gives up (SIG_DEMONITOR): one message where a monitor would take
         * two signals more. */
        e = tel__ext_get(p);
        if (!e || tel__idmap_put(&e->watchers, ref, from) != 0)
            send_down(from, p->pid, ref, TEL_NOMEM); /* it stops waiting */
        return true;
    }
    switch (m->pub.tag) {
    case SIG_LINK:
        e = tel__ext_get(p);
        if (!e || tel__idmap_put(&e->links, from, 0) != 0)
            send_exit(from, p->pid, SIG_EXIT_LINK, TEL_NOMEM);
        break;
    case SIG_UNLINK:
        if (e)
            (void)tel__idmap_del(&e->links, from, NULL);
        break;
    case SIG_EXIT_LINK:
        if (e && tel__idmap_del(&e->links, from, NULL))
            return exit_rules(p, m, true);
        break;
    case SIG_EXIT:
        return exit_rules(p, m, false);
    case SIG_MONITOR:
        e = tel__ext_get(p);
        if (!e || tel__idmap_put(&e->watchers, ref, from) != 0)
            send_down(from, p->pid, ref, TEL_NOMEM);
        break;
    case SIG_DEMONITOR:
        if (e)
            (void)tel__idmap_del(&e->watchers, ref, NULL);
        break;
    case SIG_DOWN:
        if (e && tel__idmap_del(&e->mons, ref, NULL)) {
            to_sys(m, TEL_TAG_DOWN);
            return true;
        }
        break;
    default:
        break;
    }
    tel__msg_free(m);
    return false;
}

void tel__sig_take_all(struct proc *p)
{
    struct mailbox *mb = &p->mbox;
    atomic_fetch_and_explicit(&p->xw, ~XW_SIG, memory_order_acquire);
    struct tel__mpsc_node *n;
    while ((n = tel__mpsc_pop(&mb->in))) {
        struct msg *m = tel_container_of(n, struct msg, node);
        if (tel__msg_needs_filter(m) && !tel__sig_filter(p, m))
            continue;
        tel__mbox_save(mb, m);
    }
    /* A sender is mid-push: what it pushes may be the signal; look again
     * at the next call. */
    if (TEL_UNLIKELY(tel__mpsc_nonempty(&mb->in)))
        atomic_fetch_or_explicit(&p->xw, XW_SIG, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* The end of a process                                                */
/* ------------------------------------------------------------------ */

/* p has ended: a signal that came before its end. */
static void exiting_signal(struct proc *p, struct msg *m)
{
    struct proc_ext *e = tel__ext(p);
    tel_pid_t from = m->pub.from;
    uint64_t ref = tel__msg_ref(m);
    switch (m->pub.tag) {
    case SIG_LINK: /* linked just in time: it sees the real reason */
        send_exit(from, p->pid, SIG_EXIT_LINK, p->reason);
        break;
    case SIG_UNLINK:
        if (e)
            (void)tel__idmap_del(&e->links, from, NULL);
        break;
    case SIG_MONITOR:
        send_down(from, p->pid, ref, p->reason);
        break;
    case SIG_DEMONITOR:
        if (e)
            (void)tel__idmap_del(&e->watchers, ref, NULL);
        break;
    default: /* exit signals and DOWNs to a process that has ended */
        break;
    }
    tel__msg_free(m);
}

void tel__sig_exit(struct proc *p)
{
    /* It dies flooded: its senders need not make way for it any longer
     * (core/mailbox.c, "Floods"). */
    if (atomic_fetch_and_explicit(&p->xw, ~XW_FLOOD, memory_order_relaxed) &
        XW_FLOOD)
        tel__sched_flood_senders(p->pid, false);
    struct tel__mpsc_node *n;
    while ((n = tel__mpsc_pop(&p->mbox.in))) {
        struct msg *m = tel_container_of(n, struct msg, node);
        if (tel__msg_kind(m) == MSGK_SIGNAL) {
            exiting_signal(p, m);
            continue;
        }
        if (tel__msg_kind(m) == MSGK_CALL) /* its caller waits: tell it */
            send_down(m->pub.from, p->pid, tel__msg_ref(m), p->reason);
        tel__mbox_save(&p->mbox, m); /* freed with the block */
    }
    struct proc_ext *e = tel__ext(p);
    if (!e)
        return;
    tel_reason_t reason = p->reason;
    for (uint32_t i = 0; i < e->links.cap; i++)
        if (e->links.keys[i])
            send_exit(e->links.keys[i], p->pid, SIG_EXIT_LINK, reason);
    for (uint32_t i = 0; i < e->watchers.cap; i++)
        if (e->watchers.keys[i])
            send_down(e->watchers.vals[i], p->pid, e->watchers.keys[i],
                      reason);
    for (uint32_t i = 0; i < e->mons.cap; i++)
        if (e->mons.keys[i])
            (void)sig_send(e->mons.vals[i], p->pid, SIG_DEMONITOR,
                           e->mons.keys[i], NULL, 0, false);
    ext_free(p);
}

void tel__sig_release(struct proc *p, struct msg *m)
{
    if (tel__msg_kind(m) == MSGK_CALL)
        send_down(m->pub.from, p->pid, tel__msg_ref(m), TEL_NOPROC);
    else if (m->pub.tag == SIG_LINK)
        send_exit(m->pub.from, p->pid, SIG_EXIT_LINK, TEL_NOPROC);
    else if (m->pub.tag == SIG_MONITOR)
        send_down(m->pub.from, p->pid, tel__msg_ref(m), TEL_NOPROC);
    tel__msg_free(m);
}

void tel__sig_demonitor(tel_pid_t to, tel_pid_t from, uint64_t ref)
{
    (void)sig_send(to, from, SIG_DEMONITOR, ref, NULL, 0, false);
}

void tel__ext_release(struct proc *p)
{
    ext_free(p);
}

/* ------------------------------------------------------------------ */
/* Spawning with a link or a monitor                                   */
/* ------------------------------------------------------------------ */

int tel__link_spawned(struct proc *parent, struct proc *child, bool link,
                      uint64_t *mon_ref)
{
    /* The child has not run and is in no queue: its tables are ours to
     * write until tel__sched_spawn publishes it. */
    struct proc_ext *pe = tel__ext_get(parent);
    struct proc_ext *ce = tel__ext_get(child);
    if (!pe || !ce)
        return TEL_ENOMEM;
    if (link) {
        if (tel__idmap_put(&pe->links, child->pid, 0) != 0)
            return TEL_ENOMEM;
        if (tel__idmap_put(&ce->links, parent->pid, 0) != 0) {
            (void)tel__idmap_del(&pe->links, child->pid, NULL);
            return TEL_ENOMEM;
        }
    }
    if (mon_ref) {
        uint64_t ref = tel__make_ref();
        if (tel__idmap_put(&pe->mons, ref, child->pid) != 0 ||
            tel__idmap_put(&ce->watchers, ref, parent->pid) != 0) {
            (void)tel__idmap_del(&pe->mons, ref, NULL);
            if (link)
                (void)tel__idmap_del(&pe->links, child->pid, NULL);
            return TEL_ENOMEM;
        }
        *mon_ref = ref;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */
/* ------------------------------------------------------------------ */

static struct proc *self_proc(struct sched **sp)
{
    struct sched *s = tel__sched_self();
    *sp = s;
    return tel__proc_current(s);
}

/* After a call's work: its reductions, and a look for exit signals. */
static void finish(struct sched *s, struct proc *p, uint32_t reds)
{
    (void)tel__sched_charge(s, reds);
    tel__sig_poll(p);
}

int tel_link(tel_pid_t pid)
{
    if (!pid)
        return TEL_EINVAL;
    struct sched *s;
    struct proc *p = self_proc(&s);
    if (!p)
        return TEL_ENOTPROC;
    if (pid == p->pid)
        return 0;
    struct proc_ext *e = tel__ext_get(p);
    if (!e)
        return TEL_ENOMEM;
    if (tel__idmap_get(&e->links, pid, NULL)) {
        finish(s, p, 1);
        return 0;
    }
    if (tel__idmap_put(&e->links, pid, 0) != 0)
        return TEL_ENOMEM;
    int rc = sig_send(pid, p->pid, SIG_LINK, 0, NULL, 0, false);
    if (rc == 1) {
        finish(s, p, 2);
        return 0;
    }
    (void)tel__idmap_del(&e->links, pid, NULL);
    if (rc == TEL_ENOMEM)
        return rc;
    /* Not alive: an exit signal with TEL_NOPROC, as from the dead pid. */
    if (!(p->task.flags & PROC_TRAP))
        die(p, TEL_NOPROC);
    tel_exit_info_t xi = {.pid = pid, .reason = TEL_NOPROC};
    rc = self_sys(p, TEL_TAG_EXIT, pid, &xi, sizeof xi);
    finish(s, p, 2);
    return rc;
}

int tel_unlink(tel_pid_t pid)
{
    if (!pid)
        return TEL_EINVAL;
    struct sched *s;
    struct proc *p = self_proc(&s);
    if (!p)
        return TEL_ENOTPROC;
    struct proc_ext *e = tel__ext(p);
    if (e && tel__idmap_del(&e->links, pid, NULL))
        /* If this cannot be sent, pid keeps a link we dropped: its exit
         * signal will find no link here and be ignored. */
        (void)sig_send(pid, p->pid, SIG_UNLINK, 0, NULL, 0, false);
    finish(s, p, 1);
    return 0;
}

int tel_monitor(uint64_t *ref_out, tel_pid_t pid)
{
    if (!ref_out || !pid)
        return TEL_EINVAL;
    struct sched *s;
    struct proc *p = self_proc(&s);
    if (!p)
        return TEL_ENOTPROC;
    struct proc_ext *e = tel__ext_get(p);
    if (!e)
        return TEL_ENOMEM;
    uint64_t ref = tel__make_ref();
    if (tel__idmap_put(&e->mons, ref, pid) != 0)
        return TEL_ENOMEM;
    int rc = sig_send(pid, p->pid, SIG_MONITOR, ref, NULL, 0, false);
    if (rc == 0) { /* not alive: the DOWN comes at once */
        (void)tel__idmap_del(&e->mons, ref, NULL);
        tel_down_info_t di = {.ref = ref, .pid = pid, .reason = TEL_NOPROC};
        rc = self_sys(p, TEL_TAG_DOWN, pid, &di, sizeof di);
    } else if (rc == 1) {
        rc = 0;
    } else {
        (void)tel__idmap_del(&e->mons, ref, NULL);
    }
    if (rc == 0)
        *ref_out = ref;
    finish(s, p, 2);
    return rc;
}

static bool is_down_for(struct msg *m, void *ctx)
{
    uint64_t ref = *(const uint64_t *)ctx;
    if (tel__msg_kind(m) != MSGK_SYS || m->pub.tag != TEL_TAG_DOWN)
        return false;
    tel_down_info_t di;
    memcpy(&di, m->pub.data, sizeof di);
    return di.ref == ref;
}

int tel_demonitor(uint64_t ref, bool flush)
{
    struct sched *s;
    struct proc *p = self_proc(&s);
    if (!p)
        return TEL_ENOTPROC;
    struct proc_ext *e = tel__ext(p);
    uint64_t target;
    bool found = e && ref && tel__idmap_del(&e->mons, ref, &target);
    if (found)
        (void)sig_send(target, p->pid, SIG_DEMONITOR, ref, NULL, 0, false);
    if (flush) {
        tel__sig_take_all(p);
        tel__mbox_remove_if(&p->mbox, is_down_for, &ref);
    }
    finish(s, p, 1);
    return found ? 0 : TEL_ENOENT;
}

bool tel_trap_exit(bool on)
{
    struct proc *p = tel__proc_current(tel__sched_self());
    if (!p)
        return false;
    bool old = p->task.flags & PROC_TRAP;
    if (on)
        p->task.flags |= PROC_TRAP;
    else
        p->task.flags &= ~(uint32_t)PROC_TRAP;
    return old;
}

int tel_kill(tel_pid_t pid, tel_reason_t reason)
{
    if (!pid)
        return TEL_EINVAL;
    struct sched *s = tel__sched_self();
    struct proc *p = tel__proc_current(s);
    if (p && pid == p->pid) {
        /* To oneself: acted on now, as the next signal in line. */
        if (reason == TEL_KILL)
            die(p, TEL_KILLED);
        if (p->task.flags & PROC_TRAP) {
            tel_exit_info_t xi = {.pid = pid, .reason = reason};
            int rc = self_sys(p, TEL_TAG_EXIT, pid, &xi, sizeof xi);
            finish(s, p, 1);
            return rc;
        }
        die(p, reason);
    }
    if (!s && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    tel_exit_info_t xi = {.pid = p ? p->pid : 0, .reason = reason};
    int rc = sig_send(pid, xi.pid, SIG_EXIT, 0, &xi, sizeof xi, true);
    if (!s)
        tel__rt_leave();
    if (p)
        finish(s, p, 2);
    return rc < 0 ? rc : 0;
}
