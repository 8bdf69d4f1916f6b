/*
 * sched/timerwheel.h: a hierarchical timer wheel per scheduler.
 *
 * Time is counted in ticks of 2^TW_TICK_SHIFT ns (32.8 us). A deadline is
 * rounded up to its tick, so a timer never fires before its deadline and
 * fires at the first expiry pass at or after that tick: at most one tick
 * (32.8 us) late, plus however late the pass itself comes. Insert and
 * cancel are O(1); an expiry pass costs O(levels) plus the timers it fires or
 * moves down a level.
 */
#ifndef TEL_SCHED_TIMERWHEEL_H
#define TEL_SCHED_TIMERWHEEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/lock.h"

#define TW_TICK_SHIFT 15
#define TW_BITS 6
#define TW_SLOTS (1u << TW_BITS)
#define TW_LEVELS 8
/* Wheel indices (tel__tw_init) are below this: a timer id holds 10 bits. */
#define TW_MAX_WHEELS 1024u

enum tw_kind {
    TW_WAIT = 0,   /* a task's wait timer, embedded in struct task */
    TW_HANDLE = 1, /* a timer with an id (tel_send_after), owned by core */
};

struct timerwheel;

struct tw_node {
    struct tw_node *next;
    struct tw_node **pprev;    /* NULL when not in a slot; under the lock */
    uint64_t tick;             /* expiry tick */
    struct timerwheel *wheel;  /* where it was armed */
    uint32_t hslot;            /* TW_HANDLE: its handle slot */
    uint8_t kind;
    _Atomic uint8_t fired;     /* set (seq_cst) when it expires */
};

struct tw_hslot {
    struct tw_node *node; /* NULL when free */
    uint32_t gen;
    uint32_t next_free;
};

struct timerwheel {
    tel__spin_t lock;
    _Atomic uint32_t n_armed; /* read without the lock as a hint */
    uint32_t index;           /* the owning scheduler's index (< 1024) */
    uint64_t now;             /* the last tick processed */
    uint64_t occupied[TW_LEVELS];
    struct tw_node *slots[TW_LEVELS][TW_SLOTS];
    struct tw_node *due; /* armed at or before `now`: fire next pass */
    struct tw_hslot *hslots;
    uint32_t n_hslots, cap_hslots, free_hslot;
};

typedef void (*tw_fire_fn)(struct tw_node *n, void *ctx);

/* Owner, before use. now_ns is the current monotonic time. */
void tel__tw_init(struct timerwheel *w, uint32_t index, uint64_t now_ns);

/*
 * Owner, at teardown: call drop(n, ctx) for every armed TW_HANDLE timer (wait
 * timers are skipped) and free the wheel's memory.
 */
void tel__tw_fini(struct timerwheel *w, tw_fire_fn drop, void *ctx);

/*
 * Any thread: arm n to expire at deadline_ns. For TW_HANDLE nodes *id gets a
 * cancel id (never 0). Returns 0, TEL_ENOMEM (the handle table could not
 * grow) or TEL_ELIMIT (2^30 handle timers pending on this wheel).
 */
int tel__tw_arm(struct timerwheel *w, struct tw_node *n, uint8_t kind,
                uint64_t deadline_ns, uint64_t *id);

/*
 * Any thread: take n (armed on n->wheel) out if it has not fired. Returns
 * true if it was still armed. When this returns, n's fire callback is not
 * running and will not run.
 */
bool tel__tw_disarm(struct tw_node *n);

/* The index of the wheel a TW_HANDLE id was issued by. */
uint32_t tel__tw_id_wheel(uint64_t id);

/*
 * Any thread: cancel a TW_HANDLE timer of wheel w by id. Returns the node
 * (now unlinked and owned by the caller), or NULL if the id names no armed
 * timer of w.
 */
struct tw_node *tel__tw_cancel_id(struct timerwheel *w, uint64_t id);

/*
 * Owner: fire every timer due at now_ns, calling fire(n, ctx) under the
 * wheel's lock with n unlinked and n->fired set. Returns how many fired.
 */
uint32_t tel__tw_expire(struct timerwheel *w, uint64_t now_ns,
                        tw_fire_fn fire, void *ctx);

/* Owner: when the next expiry pass has work (ns; the start of that tick, so
 * possibly a little after the earliest deadline), or UINT64_MAX. */
uint64_t tel__tw_next_ns(struct timerwheel *w);

static inline bool tel__tw_empty(struct timerwheel *w)
{
    return atomic_load_explicit(&w->n_armed, memory_order_relaxed) == 0;
}

#endif /* TEL_SCHED_TIMERWHEEL_H */
