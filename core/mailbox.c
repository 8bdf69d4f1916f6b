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
                              bool filtered, bool *behind)
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
    if (tel__mpsc_push_chain_wake(&mb->in, &m->node, &m->node, behind))
        tel__sched_wake_parked(&p->task);
}

static inline uint64_t ob_to(struct sched *s)
{
    return atomic_load_explicit(&s->ob_to, memory_order_relaxed);
}

static inline uint32_t ob_n(struct sched *s)
{
    return atomic_load_explicit(&s->ob_n, memory_order_relaxed);
}

static inline void ob_set_n(struct sched *s, uint32_t n)
{
    atomic_store_explicit(&s->ob_n, n, memory_order_relaxed);
}

void tel__mbox_deliver(tel_pid_t to, struct msg *m)
{
    (void)tel__mbox_deliver_alive(to, m);
}

bool tel__mbox_deliver_alive(tel_pid_t to, struct msg *m)
{
    struct sched *s = tel__sched_self();
    if (s && ob_to(s))
        tel__send_close(s);
    struct proc *p = tel__proc_get(s, to);
    if (!p) {
        tel__msg_free(m); /* dead or stale: dropped, as in Erlang */
        return false;
    }
    push_and_wake(s, p, m, tel__msg_needs_filter(m), NULL);
    tel__proc_put(s, p);
    return true;
}

/*
 * Batched sends. One receiver and many senders on other CPUs (fan-in: a
 * logger, an aggregator) is where the mailbox's single exchange point
 * costs more than the message: each push takes the receiver's `in` line
 * from the CPU that pushed last and links behind a node another CPU wrote
 * (fanin -s 2: 65% of tel_send's samples waited there). So a process that
 * keeps sending to a receiver that is behind holds its next messages back
 * and pushes them as one chain: one exchange per OB_MAX messages, linked
 * in its own cache, with no lookup and no load of the receiver's block
 * per message.
 *
 * The batch is its scheduler's (s->ob_*), for the running task:
 *   - Opening. Only where the preemption signal is active
 *     (tel__sched_batching; see the last point). A push whose exchange
 *     returned an unread message (the receiver is behind) makes the
 *     receiver a candidate (ob_to = its pid; TASK_F_OB on the sender).
 *     The next send, if to the same receiver, opens the batch: it sets
 *     XW_OB in the receiver's block (release), then pushes its own message
 *     as usual; the sends after it are held. One receiver at a time.
 *   - Closing. The batch is pushed when it holds OB_MAX messages, and
 *     pushed and closed when its task sends to anyone else, sends a signal
 *     (a link, an exit, a cast, a reply...), spawns, or leaves the CPU
 *     (yield, slice end, park, hibernation: hooks->close_sends, which
 *     TASK_F_OB asks for, so the park pays no test it did not make
 *     already; an exit: proc_exit, before the exit signals). Whatever the
 *     sender sends the receiver next goes behind the batch, so order per
 *     pair holds, also against its later signals.
 *   - No receiver waits on a batch. A receiver that finds its arrival
 *     queue empty and waits (its park, once published: proc_park_msg;
 *     a hibernation) or polls sees XW_OB, clears it and nudges each
 *     scheduler whose batch is for it (tel__sched_nudge_senders): it sets
 *     ob_flush, so that the sender's next held send pushes and closes the
 *     batch, and sends the preemption signal (tel__preempt_nudge), whose
 *     handler pushes and closes it where the sender was interrupted if
 *     that is outside Telar's code (its own code, a library, a system
 *     call), without preempting it. Why the receiver sees the flag: the
 *     sender sets ob_to, then XW_OB (release), then pushes the message
 *     that opens the batch; the receiver takes that message before it can
 *     find its queue empty, and its clear (acquire) then shows it ob_to.
 *     A batch opened after the clear sets the flag again; a nudge closes
 *     the batch, so the sender's next one opens anew and sets it. A
 *     sender interrupted inside Telar's code pushes at its next held send
 *     or when it leaves the CPU, at the latest when the watchdog signals
 *     its long run (the handler pushes at any of its signals: a stuck
 *     scheduler's too).
 * The cost where nothing is held: a test of ob_to per send, a compare on
 * the exchange's path, and nothing on the receive path (XW_OB is tested
 * when a park is published and when a poll found nothing). fanin -s 2:
 * 36 -> 24 ns a message; pingpong: +10 instructions a round trip.
 *
 * Prefetch hints. A receiver that drains a chain another CPU wrote waits
 * for each message's line before it learns where the next one is: 64% of
 * tel_recv's samples in fanin -s 2 sat on that load. So each held message
 * but the batch's last TEL_OB_HINT_DIST (16) gets, in its ref (0 for a
 * plain message, whose kind bits a user address leaves PLAIN), the address
 * of the message 16 behind it in the batch (s->ob_ring keeps the last 16),
 * and the receive loop prefetches it. The hint is written while the
 * message is still held (after send_ob's fence, in Telar's code, where the
 * handler never pushes) and only ever prefetched, so a stale one costs
 * nothing. fanin -s 2, alternated runs, medians of 8: 20.9 -> 17.3 ns a
 * message with 8 (100 senders: 21.1 -> 18.9); pingpong gets no hints and
 * 0.2 instructions a round trip. 16 ahead, for a receiver far behind
 * (full fanin -s 2: a million messages and more, out of every cache, so
 * each line comes from memory and 8 in flight were too few): 16.2 -> 15.1
 * ns a message, medians of 20 alternated runs (two other sets of 12: 0.90
 * and 1.02 of before; the runs are bimodal, 12 or 16-17, by how far the
 * receiver falls behind); 100 senders and -s 1 the same within noise. 32
 * ahead was worse (17.5 against 16.6: half of each batch of 64 goes
 * unhinted).
 */
#define OB_MAX 64u

/*
 * Floods. Mailboxes are unbounded (as Erlang's), so when senders outrun
 * their receiver its backlog grows, and once it outgrows the caches every
 * message the receiver takes is a miss, so it falls further behind (full
 * fanin -s 2: the receiver 1-2 M messages behind, 100-170 MB, and half the
 * speed of a run where it kept up). BEAM answers with sender punishment: a
 * send to a process with a long queue costs reductions in proportion, so
 * its senders are switched out sooner. Telar keeps no queue length (a
 * counter senders update would be another contended write per message), so
 * it punishes on a coarser sign: a receiver that has received
 * SCHED_FLOOD_SLICES (4) whole slices of messages in one run (a drainer
 * goes on for up to 9 slices, scheduler.c) without its mailbox running dry
 * is flooded: the scheduler sees it where such a slice ends
 * (hooks->flooded, tel__mbox_flooded).
 * It sets XW_FLOOD on itself and tells every scheduler its pid
 * (tel__sched_flood_senders: sched->ob_flood, one flooded receiver per
 * scheduler, the latest; a receiver still flooded at its next slice end
 * takes it back); a full batch pushed to that pid then ends the sender's
 * slice (send_ob), so a sender gets about one batch (64 messages) per
 * turn instead of a slice's worth (4,000 at the default slice), and the
 * receiver's scheduler gives the receiver almost all of its time. When its
 * mailbox runs dry (tel__mbox_empty) or it exits (tel__sig_exit), the
 * receiver clears the flag and the schedulers' pid (a park that a sender
 * on its own scheduler ends before it is published clears nothing: the
 * flag waits for the next time its mailbox runs dry). Costs nothing per
 * message: a compare at a drainer's slice end, and a load of the sender's
 * own scheduler line per batch push. It cannot see a receiver that does much
 * work per message (fewer than 64 receives a slice: not a drainer, and its
 * count restarts every run); BEAM's queue length would.
 * Measured: full fanin -s 2, medians of 12 alternated runs, 15.7 -> 10.9
 * ns a message, peak RSS 48-106 MB -> 29-47 MB; 100 senders -s 2 (1 M
 * messages, the receiver mostly keeps up) 13.4 -> 14.0 over 30 runs (its
 * flood episodes cost the senders a switch and a batch reopened per
 * turn); -s 1 the same within noise.
 */
void tel__mbox_flooded(struct proc *p)
{
    if (!(atomic_load_explicit(&p->xw, memory_order_relaxed) & XW_FLOOD)) {
        atomic_fetch_or_explicit(&p->xw, XW_FLOOD, memory_order_relaxed);
        tel__sched_flood_senders(p->pid, true);
        return;
    }
    /* Still flooded, but another flooded receiver took the schedulers'
     * slot since (one per scheduler): tell them again. */
    struct sched *s = tel__sched_self();
    if (s && atomic_load_explicit(&s->ob_flood, memory_order_relaxed) !=
                 p->pid)
        tel__sched_flood_senders(p->pid, true);
}

/* Push the open batch's messages (if any) to its receiver; the batch
 * stays open. async: from the preemption signal's handler (hooks->
 * close_sends_async), where the owner's run queues, or its pool and the
 * allocator under it, may be mid-change: the wake goes to an injection
 * queue, and messages to a receiver that died are not freed there (they
 * stay, and false says so). */
static TEL_NOINLINE bool ob_push_any(struct sched *s, bool async)
{
    struct msg *h = s->ob_head, *t = s->ob_tail;
    uint32_t n = ob_n(s);
    if (!n)
        return true;
    struct proc *p = tel__proc_get(s, ob_to(s));
    if (!p) {
        if (async)
            return false;
        ob_set_n(s, 0);
        s->ob_head = s->ob_tail = NULL;
        for (; n; n--) { /* dead: dropped, as one by one */
            struct msg *next = tel__msg_next(h);
            tel__msg_free(h);
            h = next;
        }
        return true;
    }
    ob_set_n(s, 0);
    s->ob_head = s->ob_tail = NULL;
    struct mailbox *mb = &p->mbox;
    bool wake = false, local = false;
    if (TEL_UNLIKELY(atomic_load_explicit(&p->task.state,
                                          memory_order_relaxed) ==
                     TASK_WAIT_MSG) &&
        ((local = !async && tel__sched_take_lazy(s, &p->task)) ||
         tel__mpsc_unpark(&mb->in))) {
        /* Its wake is ours: the queue is empty and unparked. */
        (void)tel__mpsc_push_chain_wake(&mb->in, &h->node, &t->node, NULL);
        wake = true;
    } else {
        wake = tel__mpsc_push_chain_wake(&mb->in, &h->node, &t->node, NULL);
    }
    /* A receiver that parked on its own scheduler waited for these: it
     * goes back there (an injection queue), not behind us on ours as a
     * plain send's wake would put it (it would wait for our slice). */
    if (wake && local)
        tel__sched_wake_parked(&p->task);
    else if (wake)
        tel__sched_wake_parked_async(&p->task);
    tel__proc_put(s, p);
    return true;
}

static TEL_NOINLINE void ob_push(struct sched *s)
{
    (void)ob_push_any(s, false);
}

static inline void ob_clear(struct sched *s)
{
    atomic_store_explicit(&s->ob_flush, 0, memory_order_relaxed);
    s->ob_on = 0;
    atomic_store_explicit(&s->ob_to, 0, memory_order_relaxed);
    if (s->cur) /* the batch's task; or, after its exit, the next one */
        s->cur->flags &= ~(uint32_t)TASK_F_OB;
}

void tel__send_close(struct sched *s)
{
    if (ob_n(s))
        ob_push(s);
    ob_clear(s);
}

void tel__send_close_async(struct sched *s)
{
    if (ob_push_any(s, true))
        ob_clear(s);
}

void tel__mbox_empty_slow(struct proc *p)
{
    uintptr_t x = atomic_fetch_and_explicit(&p->xw, ~(XW_OB | XW_FLOOD),
                                            memory_order_acquire);
    if (x & XW_FLOOD)
        tel__sched_flood_senders(p->pid, false);
    if (x & XW_OB)
        tel__sched_nudge_senders(tel__sched_self(), p->pid);
}

/*
 * tel_send's work once its arguments are checked; s may be NULL (a
 * thread outside the runtime, counted in). opening: to is the batch's
 * candidate, and this send opens the batch (self is a process).
 */
TEL_INLINE int send_one(struct sched *s, struct proc *self, tel_pid_t to,
                        uint64_t tag, const void *data, size_t size,
                        bool opening)
{
    int rc = 0;
    /* One lookup proves the receiver alive (a dead one costs no copy) and
     * keeps its block valid through the copy (memcpy) and the push: on a
     * scheduler without an atomic read-modify-write, elsewhere by a
     * reference (tel__proc_get). */
    struct proc *p = tel__proc_get(s, to);
    if (p) {
        struct msg *m = tel__msg_make(self ? self->pid : 0, tag, data, size);
        if (m) {
            bool behind = false;
            if (opening) {
                s->ob_on = 1;
                /* A nudge for an earlier batch: this one tells the
                 * receiver anew (XW_OB). */
                atomic_store_explicit(&s->ob_flush, 0, memory_order_relaxed);
                tel__stat_inc(&s->n_ob_opens);
                atomic_fetch_or_explicit(&p->xw, XW_OB,
                                         memory_order_release);
            }
            push_and_wake(s, p, m, false, &behind); /* MSGK_PLAIN */
            /* Unread messages were ahead of ours: a candidate. */
            if (TEL_UNLIKELY(behind) && !opening && self && p != self &&
                tel__sched_batching()) {
                atomic_store_explicit(&s->ob_to, to, memory_order_relaxed);
                self->task.flags |= TASK_F_OB;
            }
        } else {
            rc = TEL_ENOMEM;
        }
        tel__proc_put(s, p);
    } else if (opening) {
        tel__send_close(s); /* it died */
    }
    if (!s)
        tel__rt_leave();
    else if (self) {
        (void)tel__sched_charge(s, 1 + (uint32_t)(size >> 10));
        tel__sig_poll(self);
    }
    return rc;
}

/* tel_send by the running task self while s has a batch open or a
 * candidate (ob_to != 0). */
static TEL_NOINLINE int send_ob(struct sched *s, struct proc *self,
                                tel_pid_t to, uint64_t tag,
                                const void *data, size_t size)
{
    if (ob_to(s) != to) {
        tel__send_close(s);
        return send_one(s, self, to, tag, data, size, false);
    }
    if (!s->ob_on)
        return send_one(s, self, to, tag, data, size, true);
    int rc = 0;
    struct msg *m = tel__msg_make(self->pid, tag, data, size);
    /* The allocation and the copy may call out of Telar's code (mmap,
     * memcpy), where the preemption signal's handler may push and close
     * the batch (tel__send_close_async): look at it only after them. */
    atomic_signal_fence(memory_order_seq_cst);
    if (m && TEL_UNLIKELY(!s->ob_on)) {
        /* Closed under us: m goes in at once, behind what was held. */
        struct proc *p = tel__proc_get(s, to);
        if (p) {
            push_and_wake(s, p, m, false, NULL);
            tel__proc_put(s, p);
        } else {
            tel__msg_free(m);
        }
    } else if (m) {
        uint32_t n = ob_n(s);
        if (n)
            tel__msg_set_next(s->ob_tail, m);
        else
            s->ob_head = m;
        s->ob_tail = m;
        ob_set_n(s, ++n);
        /* The message TEL_OB_HINT_DIST ahead of m in the batch hints m
         * ("Prefetch hints"); it is still held (see the fence above). */
        if (n > TEL_OB_HINT_DIST)
            ((struct msg *)s->ob_ring[n & (TEL_OB_HINT_DIST - 1)])->ref =
                (uint64_t)(uintptr_t)m;
        s->ob_ring[n & (TEL_OB_HINT_DIST - 1)] = m;
        /* The first held message: a receiver that nudges us sees it, or
         * we see its ob_flush (the nudge's fence pairs with this one). */
        if (n == 1)
            atomic_thread_fence(memory_order_seq_cst);
        /* A receiver asked for it (its mailbox is empty): push, and close
         * (a batch opened anew tells it again, XW_OB). Or it is full. */
        if (TEL_UNLIKELY(atomic_load_explicit(&s->ob_flush,
                                              memory_order_relaxed))) {
            tel__send_close(s);
        } else if (n >= OB_MAX) {
            ob_push(s);
            /* Its receiver is flooded: this sender's slice ends here
             * ("Floods"). Only on the sender's own send: a batch pushed
             * as a task leaves (close_sends, an exit) is pushed while
             * another task's slice is on. */
            if (TEL_UNLIKELY(atomic_load_explicit(&s->ob_flood,
                                                  memory_order_relaxed) ==
                             to) &&
                s->reds > 1)
                s->reds = 1;
        }
    } else {
        rc = TEL_ENOMEM;
    }
    (void)tel__sched_charge(s, 1 + (uint32_t)(size >> 10));
    tel__sig_poll(self);
    return rc;
}

int tel_send(tel_pid_t to, uint64_t tag, const void *data, size_t size)
{
    if (to == 0 || (size && !data))
        return TEL_EINVAL;
    struct sched *s = tel__sched_self();
    if (!s && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    struct proc *self = tel__proc_current(s);
    if (TEL_UNLIKELY(self && ob_to(s)))
        return send_ob(s, self, to, tag, data, size);
    return send_one(s, self, to, tag, data, size, false);
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
    uint32_t spins = 0;
    int rc = TEL_ETIMEDOUT;
    for (;;) {
        struct tel__mpsc_node *n;
        while ((n = tel__mpsc_pop(&mb->in))) {
            m = tel_container_of(n, struct msg, node);
            seen++;
            /* A plain message's hint ("Prefetch hints" above). */
            if (m->ref - 1 < (UINT64_C(1) << MSGK_SHIFT) - 1)
                __builtin_prefetch((void *)(uintptr_t)m->ref, 0, 3);
            if (TEL_UNLIKELY(tel__msg_needs_filter(m)) &&
                !tel__sig_filter(p, m))
                continue; /* a signal acted on, or a stale reply */
            if (!match || call_match(p, match, &m->pub, ctx))
                goto found_armed;
            tel__mbox_save(mb, m);
        }
        if (timeout_ms == 0) {
            tel__mbox_empty(p); /* a poll: as if it waited */
            break;
        }
        if (armed && tel__sched_timer_fired(&p->task))
            break;
        if (TEL_UNLIKELY(tel__mpsc_nonempty(&mb->in))) {
            /* A sender is between its exchange and its link: the message
             * is a few instructions away. Parking now would be wrong: the
             * park (tel__mbox_park) is only sound on a truly empty queue,
             * and our own stub push may already have hidden that sender's
             * exchange from it. Wait a little for the link; if the sender
             * was interrupted there, yield, but as a woken task: behind
             * the ring, a receiver that keeps up with another CPU's
             * senders waited a round of their slices (fanin -s 2: 7 to
             * 11 ms, a third of the run). */
            if (++spins < 64) {
                tel__cpu_relax();
                continue;
            }
            spins = 0;
            s = tel__sched_yield_woken(s);
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
