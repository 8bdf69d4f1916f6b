/*
 * core/link.h: links, monitors and exit signals between processes.
 */
#ifndef TEL_CORE_LINK_H
#define TEL_CORE_LINK_H

#include <stdbool.h>

#include "core/idmap.h"
#include "core/message.h"
#include "core/process.h"

/* What a process has once it has links or monitors (owner only). */
struct proc_ext {
    struct idmap links;    /* linked pids (values unused) */
    struct idmap mons;     /* monitors it holds: ref -> monitored pid */
    struct idmap watchers; /* monitors on it: ref -> watching pid */
    uint64_t call_ref;     /* the tel_call it waits in, 0 if none */
    tel_reason_t call_reason; /* for tel_call_reason */
    void *owned;           /* freed with the ext (a server's block) */
    struct msg *held;      /* freed with the ext: the message a server's
                            * callback runs on, if it ends the process */
    /* Run when the ext is freed, before `owned` (a server's state, when
     * no terminate ran): frees memory only, calls no Telar function. */
    void (*cleanup)(void *arg);
    void *cleanup_arg;
    size_t owned_size;
};

#define XW_SIG ((uintptr_t)1)
/* A sender opened a send batch for this process since it last looked
 * (core/mailbox.c, "Batched sends"). */
#define XW_OB ((uintptr_t)2)
/* This process has told the schedulers it is flooded (core/mailbox.c,
 * "Floods"); it clears the flag when its mailbox runs dry. */
#define XW_FLOOD ((uintptr_t)4)
#define XW_FLAGS (XW_SIG | XW_OB | XW_FLOOD)

void tel__mbox_empty_slow(struct proc *p);
/* p (running) has received four slices of messages in this run without
 * its mailbox running dry: tell the schedulers (core/mailbox.c, "Floods"). */
void tel__mbox_flooded(struct proc *p);

/* p (running, or parking: its scheduler's thread) found its arrival queue
 * empty and waits for a message (or polled): no send batch for it may
 * stay held (core/mailbox.c, "Batched sends"). */
static inline void tel__mbox_empty(struct proc *p)
{
    if (TEL_UNLIKELY(atomic_load_explicit(&p->xw, memory_order_relaxed) &
                     (XW_OB | XW_FLOOD)))
        tel__mbox_empty_slow(p);
}

static inline struct proc_ext *tel__ext(struct proc *p)
{
    return (struct proc_ext *)(atomic_load_explicit(&p->xw,
                                                    memory_order_relaxed) &
                               ~XW_FLAGS);
}

/* Owner (or the spawner of a task not yet queued): p's ext, allocated if
 * needed; NULL when out of memory. */
struct proc_ext *tel__ext_get(struct proc *p);

/* Signal kinds (pub.tag of an MSGK_SIGNAL message). */
enum {
    SIG_LINK = 1,  /* from wants a link */
    SIG_UNLINK,    /* from dropped its link */
    SIG_EXIT_LINK, /* a linked process ended; payload tel_exit_info_t */
    SIG_EXIT,      /* tel_kill; payload tel_exit_info_t */
    SIG_MONITOR,   /* from monitors the receiver with ref */
    SIG_DEMONITOR, /* from dropped its monitor ref */
    SIG_DOWN,      /* from ended; payload tel_down_info_t */
};

/*
 * The receiving process, on its own stack, just popped m from its arrival
 * queue, and m's kind is MSGK_CALL, MSGK_REPLY or MSGK_SIGNAL. Acts on a
 * signal (which may end the process: then it does not return), drops
 * replies nobody waits for, and makes a call's caller a watcher of the
 * process (see core/server.c: the call's ref is also its monitor's).
 * Returns true if m is now a message for the process's code, false if m
 * was consumed (freed).
 */
bool tel__sig_filter(struct proc *p, struct msg *m);

static inline bool tel__msg_needs_filter(const struct msg *m)
{
    unsigned k = tel__msg_kind(m);
    return k >= MSGK_CALL && k <= MSGK_SIGNAL;
}

/*
 * The running process p: take every arrival into the saved list, acting on
 * signals on the way. tel__sig_poll does it only when an exit signal was
 * flagged (one load otherwise): core's calls run it after they may have
 * switched, so a process that never receives still dies when killed.
 */
void tel__sig_take_all(struct proc *p);

static inline void tel__sig_poll(struct proc *p)
{
    if (TEL_UNLIKELY(atomic_load_explicit(&p->xw, memory_order_relaxed) &
                     XW_SIG))
        tel__sig_take_all(p);
}

/*
 * proc_exit, on p's scheduler, p off its stack for good: act on the signals
 * that came before the end (links and monitors made then still count), then
 * send exit signals to the linked processes and DOWNs to the watchers, and
 * drop p's own monitors. Frees the ext.
 */
void tel__sig_exit(struct proc *p);

/*
 * The block is being freed (no sender can reach it): a link or monitor
 * request that came after the exit is answered as one to a dead process
 * (TEL_NOPROC). Not during tel_run's teardown.
 */
void tel__sig_release(struct proc *p, struct msg *m);

/* The caller of a call is done with the server `to` (its reply came from
 * another process, or it gave up): drop its watch there. Any process. */
void tel__sig_demonitor(tel_pid_t to, tel_pid_t from, uint64_t ref);

/* Free p's ext without telling anyone (teardown, or a spawn undone). */
void tel__ext_release(struct proc *p);

/* A spawn with a link and/or a monitor (mon_ref not NULL): set both
 * sides up before the child is queued. 0 or TEL_ENOMEM (nothing made). */
int tel__link_spawned(struct proc *parent, struct proc *child, bool link,
                      uint64_t *mon_ref);

#endif /* TEL_CORE_LINK_H */
