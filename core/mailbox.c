/*
 * core/mailbox.c: MPSC mailbox, selective receive with a save point, receive
 * timeouts.
 *
 * Owns: a process's arrival queue (alloc/mpsc.h: any thread pushes with one
 * exchange, lock-free) and its saved list (messages taken from the arrival
 * queue and skipped by a selective receive).
 *
 * Invariants:
 *   - Arrival order is kept: everything in `saved` is older than everything
 *     still in `in`, and each keeps its order. So per sender->receiver order
 *     holds for tel_recv and tel_recv_match alike.
 *   - Within one receive call, a message is shown to match() at most once:
 *     the call scans `saved` once, then only new arrivals, appending the
 *     rejected ones to `saved`. That is BEAM's save point: k skipped messages
 *     cost nothing per wake-up.
 *
 * Waking: the receiver parks on the mailbox itself, once it is off its
 * stack: its scheduler marks the empty arrival queue parked (one CAS,
 * alloc/mpsc.h). The sender whose exchange takes that mark wakes it, and
 * no one else: one atomic per message on each side, no CAS on the task's
 * state. The receive timer competes for the same mark (tel__mbox_unpark).
 * A sender that finds the mark takes it back instead and puts its message
 * straight on the saved list (push_and_wake: the direct hand-off), so the
 * receiver's next pop does not pay the stub's exchange.
 *
 * Invariant of the saved list for the direct hand-off: a message put there
 * by a sender is newer than every message already saved and older than
 * anything in the arrival queue; a parked receive finds it as the list's
 * new tail when it resumes.
 */
#include "core/mailbox.h"

#include "core/link.h"
#include "core/pid.h"
#include "core/process.h"
#include "core/runtime.h"
#include "sched/park.h"

void tel__mbox_init(struct mailbox *mb)
{
    tel__mpsc_init(&mb->in);
    mb->saved = mb->saved_tail = NULL;
}

void tel__mbox_drain(struct mailbox *mb, void (*on_signal)(struct msg *m,
                                                          void *ctx),
                     void *ctx)
{
    struct msg *m = mb->saved;
    while (m) {
        struct msg *next = tel__msg_next(m);
        tel__msg_free(m);
        m = next;
    }
    mb->saved = mb->saved_tail = NULL;
    struct tel__mpsc_node *n;
    while ((n = tel__mpsc_pop(&mb->in))) {
        m = tel_container_of(n, struct msg, node);
        if (on_signal && (tel__msg_kind(m) == MSGK_SIGNAL ||
                          tel__msg_kind(m) == MSGK_CALL))
            on_signal(m, ctx);
        else
            tel__msg_free(m);
    }
}

void tel__mbox_remove_if(struct mailbox *mb,
                         bool (*pred)(struct msg *m, void *ctx), void *ctx)
{
    struct msg *prev = NULL, *m = mb->saved;
    while (m) {
        struct msg *next = tel__msg_next(m);
        if (pred(m, ctx)) {
            if (prev)
                tel__msg_set_next(prev, next);
            else
                mb->saved = next;
            if (mb->saved_tail == m)
                mb->saved_tail = prev;
            tel__msg_free(m);
        } else {
            prev = m;
        }
        m = next;
    }
}

/*
 * p is held by the caller: enqueue m and wake p if this push ends its wait.
 * filtered: tel__msg_needs_filter(m), which a caller that made a plain
 * message knows without loading it back.
 *
 * The direct hand-off: when p is parked on its mailbox, its arrival queue
 * is truly empty (a receive parks on nothing else) and every message it
 * holds is in its saved list. Taking the park back (one CAS, which the
 * other senders' exchanges and the receive timer compete for) makes us the
 * one waker, and until we wake p nobody else touches its owner-only
 * fields: so m goes straight to the saved list's tail. It is newer than
 * everything saved and older than anything pushed after our CAS, so
 * arrival order holds. The receiver then takes m without popping the
 * arrival queue, and so without the stub's exchange (alloc/mpsc.h) that
 * draining the queue's last node costs: one read-modify-write less per
 * message to a waiting process. Only kinds the receiver does not filter
 * (tel__msg_needs_filter) go this way: signals, calls and replies are acted
 * on when popped from the arrival queue. The saved list's writes reach the
 * receiver through the wake (its queue's release and acquire).
 *
 * Whether to try is judged by p's task state (a relaxed load; the CAS
 * decides), not by loading `in`: while p runs and drains a flood (fanin),
 * its task line stays clean in every cache, whereas a load of `in` before
 * the exchange would fetch that contended line shared and then again
 * exclusive.
 */
TEL_INLINE void push_and_wake(struct sched *s, struct proc *p, struct msg *m,
                              bool filtered)
{
    struct mailbox *mb = &p->mbox;
    if (TEL_UNLIKELY(atomic_load_explicit(&p->task.state,
                                          memory_order_relaxed) ==
                     TASK_WAIT_MSG)) {
        if (s && tel__sched_take_lazy(s, &p->task)) {
            /* Parked by our scheduler and not published yet (scheduler.c,
             * "Lazy parks"): its wake is ours, with no atomic at all. Its
             * queue was truly empty when it parked; if no producer has
             * exchanged since, m is the oldest news and goes to the saved
             * list, else it queues behind theirs. */
            if (!filtered && tel__mpsc_idle_hint(&mb->in))
                tel__mbox_save(mb, m);
            else
                tel__mpsc_push(&mb->in, &m->node);
            tel__sched_wake_parked(&p->task);
            return;
        }
        if (!filtered && tel__mpsc_unpark(&mb->in)) {
            tel__mbox_save(mb, m);
            tel__sched_wake_parked(&p->task);
            return;
        }
    }
    if (tel__mpsc_push_wake(&mb->in, &m->node))
        tel__sched_wake_parked(&p->task);
}

void tel__mbox_deliver(tel_pid_t to, struct msg *m)
{
    (void)tel__mbox_deliver_alive(to, m);
}

bool tel__mbox_deliver_alive(tel_pid_t to, struct msg *m)
{
    struct sched *s = tel__sched_self();
    struct proc *p = tel__proc_get(s, to);
    if (!p) {
        tel__msg_free(m); /* dead or stale: dropped, as in Erlang */
        return false;
    }
    push_and_wake(s, p, m, tel__msg_needs_filter(m));
    tel__proc_put(s, p);
    return true;
}

int tel_send(tel_pid_t to, uint64_t tag, const void *data, size_t size)
{
    if (to == 0 || (size && !data))
        return TEL_EINVAL;
    struct sched *s = tel__sched_self();
    if (!s && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    struct proc *self = tel__proc_current(s);
    int rc = 0;
    /* One lookup proves the receiver alive (a dead one costs no copy) and
     * keeps its block valid through the copy (memcpy) and the push: on a
     * scheduler without an atomic read-modify-write, elsewhere by a
     * reference (tel__proc_get). */
    struct proc *p = tel__proc_get(s, to);
    if (p) {
        struct msg *m = tel__msg_make(self ? self->pid : 0, tag, data, size);
        if (m)
            push_and_wake(s, p, m, false); /* MSGK_PLAIN */
        else
            rc = TEL_ENOMEM;
        tel__proc_put(s, p);
    }
    if (!s)
        tel__rt_leave();
    else if (self) {
        (void)tel__sched_charge(s, 1 + (uint32_t)(size >> 10));
        tel__sig_poll(self);
    }
    return rc;
}

/*
 * Call the process's match function. It runs in the middle of the scan,
 * with this scheduler cached in receive(): the preemption signal must not
 * switch the process out (and maybe to another thread) inside it, so it
 * runs with TASK_F_NOASYNC (sched/preempt.c; match may not call Telar, so
 * it never nests). The signal fences keep the call inside the flag.
 */
static inline bool call_match(struct proc *p,
                              bool (*match)(const tel_msg_t *, void *),
                              const tel_msg_t *m, void *ctx)
{
    p->task.flags |= TASK_F_NOASYNC;
    atomic_signal_fence(memory_order_seq_cst);
    bool r = match(m, ctx);
    atomic_signal_fence(memory_order_seq_cst);
    p->task.flags &= ~(uint32_t)TASK_F_NOASYNC;
    return r;
}

/*
 * Every receive. Inlined twice: into tel_recv, where match is NULL and the
 * compiler drops every test of it (the common receive costs about a third
 * less), and into receive_match for the rest.
 */
TEL_INLINE int receive(tel_msg_t **out,
                       bool (*match)(const tel_msg_t *, void *), void *ctx,
                       int64_t timeout_ms)
{
    if (!out || timeout_ms < TEL_INFINITY)
        return TEL_EINVAL;
    *out = NULL;
    struct sched *s = tel__sched_self();
    struct proc *p = tel__proc_current(s);
    if (!p)
        return TEL_ENOTPROC;
    /* The slice's end and urgent signals are met here, before a message
     * is taken, not after: a process switched out (or ended) between
     * taking a message and returning it would hold it where nobody can
     * free it if the process is then killed (tel_run's teardown ended
     * fairness/blk's hogs so, one run in a few hundred under ASan: a
     * leaked reply). The found path charges without switching; the
     * next reduction point preempts. */
    if (TEL_UNLIKELY(s->reds <= 0))
        s = tel__sched_preempt(s);
    tel__sig_poll(p);
    struct mailbox *mb = &p->mbox;
    uint32_t seen = 0;
    struct msg *m, *prev = NULL;

    /* 1. The saved list, oldest first. */
    for (m = mb->saved; m; prev = m, m = tel__msg_next(m)) {
        seen++;
        if (!match || call_match(p, match, &m->pub, ctx)) {
            if (prev)
                tel__msg_set_next(prev, tel__msg_next(m));
            else
                mb->saved = tel__msg_next(m);
            if (mb->saved_tail == m)
                mb->saved_tail = prev;
            goto found;
        }
    }

    /* 2. New arrivals, waiting for more as needed. */
    bool armed = false;
    int rc = TEL_ETIMEDOUT;
    for (;;) {
        struct tel__mpsc_node *n;
        while ((n = tel__mpsc_pop(&mb->in))) {
            m = tel_container_of(n, struct msg, node);
            seen++;
            if (TEL_UNLIKELY(tel__msg_needs_filter(m)) &&
                !tel__sig_filter(p, m))
                continue; /* a signal acted on, or a stale reply */
            if (!match || call_match(p, match, &m->pub, ctx))
                goto found_armed;
            tel__mbox_save(mb, m);
        }
        if (timeout_ms == 0)
            break;
        if (armed && tel__sched_timer_fired(&p->task))
            break;
        if (TEL_UNLIKELY(tel__mpsc_nonempty(&mb->in))) {
            /* A sender is between its exchange and its link: the message
             * is a few instructions away. Parking now would be wrong: the
             * park (tel__mbox_park) is only sound on a truly empty queue,
             * and our own stub push may already have hidden that sender's
             * exchange from it. */
            s = tel__sched_yield(s);
            continue;
        }
        if (!armed && timeout_ms > 0) {
            rc = tel__sched_timer_arm(s, &p->task,
                                      tel__deadline_ns(timeout_ms));
            if (TEL_UNLIKELY(rc)) /* TEL_ENOMEM: nothing taken */
                break;
            rc = TEL_ETIMEDOUT;
            armed = true;
        }
        struct msg *tail = mb->saved_tail;
        s = tel__sched_park(s, TASK_WAIT_MSG);
        if (mb->saved_tail != tail) {
            /* Handed to us directly (push_and_wake): the one message
             * after tail, saved already, never filtered. */
            m = mb->saved_tail;
            seen++;
            if (!match || call_match(p, match, &m->pub, ctx)) {
                if (tail)
                    tel__msg_set_next(tail, NULL);
                else
                    mb->saved = NULL;
                mb->saved_tail = tail;
                goto found_armed;
            }
        }
    }
    if (armed)
        tel__sched_timer_disarm(&p->task);
    (void)tel__sched_charge(s, seen + 1);
    tel__sig_poll(p);
    return rc;

found_armed:
    if (armed)
        tel__sched_timer_disarm(&p->task);
found:
    tel__msg_set_next(m, NULL);
    *out = &m->pub;
    s->recvs++; /* a drainer is favoured when preempted (scheduler.c) */
    s->reds -= (int32_t)seen; /* no switch with m taken (see above) */
    return 0;
}

static TEL_NOINLINE int receive_match(tel_msg_t **out,
                                      bool (*match)(const tel_msg_t *,
                                                    void *),
                                      void *ctx, int64_t timeout_ms)
{
    return receive(out, match, ctx, timeout_ms);
}

int tel_recv(tel_msg_t **out, int64_t timeout_ms)
{
    return receive(out, NULL, NULL, timeout_ms);
}

int tel_recv_match(tel_msg_t **out, bool (*match)(const tel_msg_t *, void *),
                   void *ctx, int64_t timeout_ms)
{
    if (!match)
        return TEL_EINVAL;
    return receive_match(out, match, ctx, timeout_ms);
}

static bool match_none(const tel_msg_t *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return false;
}

int tel__mbox_sleep(int64_t ms)
{
    tel_msg_t *m;
    int rc = receive_match(&m, match_none, NULL, ms);
    return rc == TEL_ETIMEDOUT ? 0 : rc;
}
