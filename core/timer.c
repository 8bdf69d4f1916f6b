/*
 * core/timer.c: tel_sleep, tel_send_after and tel_cancel_timer, built on the
 * schedulers' timer wheels (sched/timerwheel.c). Receive timeouts live in
 * core/mailbox.c and use the same per-task wait timer as tel_sleep.
 *
 * Owns: struct send_timer, a wheel node plus the message it will deliver.
 * A send_after timer is armed on the calling scheduler's wheel (scheduler 0's
 * for a thread outside the runtime, which is then woken so it recomputes its
 * sleep). It is freed by whoever takes it out of the wheel: the expiry pass
 * (it delivers the message first), a cancel, or teardown.
 */
#include <stdatomic.h>

#include "alloc/numa.h"
#include "alloc/pool.h"
#include "core/mailbox.h"
#include "core/process.h"
#include "core/runtime.h"
#include "sched/park.h"
#include "sched/scheduler.h"

struct send_timer {
    struct tw_node node;
    tel_pid_t to;
    struct msg *msg;
};

void tel__timer_fire(struct tw_node *n);
void tel__timer_drop(struct tw_node *n);

void tel__timer_fire(struct tw_node *n)
{
    struct send_timer *st = tel_container_of(n, struct send_timer, node);
    tel__mbox_deliver(st->to, st->msg);
    tel__pool_free(st, sizeof(*st));
}

void tel__timer_drop(struct tw_node *n)
{
    struct send_timer *st = tel_container_of(n, struct send_timer, node);
    tel__msg_free(st->msg);
    tel__pool_free(st, sizeof(*st));
}

int tel_sleep(int64_t ms)
{
    if (ms < 0)
        return TEL_EINVAL;
    struct sched *s = tel__sched_self();
    struct proc *p = tel__proc_current(s);
    if (!p)
        return TEL_ENOTPROC;
    if (ms == 0) {
        (void)tel__sched_yield(s);
        return 0;
    }
    /* A receive that takes nothing: messages wait in the mailbox, and an
     * exit signal still reaches the sleeper. */
    return tel__mbox_sleep(ms);
}

int tel_send_after(uint64_t *timer_out, int64_t ms, tel_pid_t to, uint64_t tag,
                   const void *data, size_t size)
{
    if (to == 0 || ms < 0 || (size && !data))
        return TEL_EINVAL;
    struct sched *s = tel__sched_self();
    if (!s && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    struct proc *self = tel__proc_current(s);
    int rc = TEL_ENOMEM;
    struct send_timer *st = tel__pool_alloc(sizeof(*st));
    if (!st)
        goto out;
    st->to = to;
    st->msg = tel__msg_new(self ? self->pid : 0, tag, data, size);
    if (!st->msg) {
        tel__pool_free(st, sizeof(*st));
        goto out;
    }
    struct sched *owner = s ? s : tel__sched_get(0);
    uint64_t id;
    rc = tel__tw_arm(&owner->wheel, &st->node, TW_HANDLE,
                     tel__deadline_ns(ms), &id);
    if (rc) {
        tel__msg_free(st->msg);
        tel__pool_free(st, sizeof(*st));
        goto out;
    }
    if (timer_out)
        *timer_out = id;
    if (!s) /* the owner may sleep past this deadline: make it look again */
        tel__sched_kick(owner);
out:
    if (!s)
        tel__rt_leave();
    return rc;
}

int tel_cancel_timer(uint64_t timer)
{
    struct sched *s = tel__sched_self();
    if (!s && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    int rc = TEL_ENOENT;
    struct sched *owner = tel__sched_wheel_owner(tel__tw_id_wheel(timer));
    if (owner) {
        struct tw_node *n = tel__tw_cancel_id(&owner->wheel, timer);
        if (n) {
            tel__timer_drop(n);
            rc = 0;
        }
    }
    if (!s)
        tel__rt_leave();
    return rc;
}
