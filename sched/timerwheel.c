/*
 * sched/timerwheel.c: the hierarchical timer wheel each scheduler owns.
 *
 * Owns: TW_LEVELS levels of TW_SLOTS slot lists; level L's slots are
 * 64^L ticks wide. A "due" list for timers armed at or before `now`. A
 * handle table mapping cancel ids to TW_HANDLE nodes.
 *
 * Invariants (for every timer in level L, slot s):
 *   - its tick agrees with `now` in every digit above L, and its digit L is
 *     s, which is at or past now's digit L. So every timer in level L expires
 *     after every timer in levels below L, and the next event is the first
 *     occupied slot of the lowest occupied level.
 *   - When `now` enters the range of a slot at level L > 0, that slot is
 *     emptied and its timers re-inserted relative to the new `now` (they move
 *     down), firing those already due.
 *   - A handle id is gen(24) | wheel index(10) | slot(30); a slot's gen is
 *     bumped when its timer fires or is cancelled, so a stale id misses.
 *
 * Concurrency: one spinlock per wheel guards everything in it. The owner
 * scheduler arms its processes' wait timers and runs expiry passes; any
 * thread may disarm (a process that moved to another scheduler) or cancel by
 * id. Firing runs under the lock, so a disarm that returns has excluded the
 * fire callback: this is what lets a task free itself safely after it
 * disarmed its wait timer.
 */
#include "sched/timerwheel.h"

#include <string.h>

#include "alloc/base.h"
#include "alloc/numa.h"
#include "include/telar.h"

#define HS_GEN_BITS 24
#define HS_WHEEL_BITS 10
_Static_assert((1u << HS_WHEEL_BITS) == TW_MAX_WHEELS, "timer ids");
#define HS_SLOT_BITS 30
#define HS_NONE UINT32_MAX

void tel__tw_init(struct timerwheel *w, uint32_t index, uint64_t now_ns)
{
    memset(w, 0, sizeof(*w));
    tel__spin_init(&w->lock);
    w->index = index;
    w->now = now_ns >> TW_TICK_SHIFT;
    w->free_hslot = HS_NONE;
}

static void push_slot(struct tw_node **head, struct tw_node *n)
{
    n->next = *head;
    if (n->next)
        n->next->pprev = &n->next;
    n->pprev = head;
    *head = n;
}

static void unlink_node(struct tw_node *n)
{
    *n->pprev = n->next;
    if (n->next)
        n->next->pprev = n->pprev;
    n->pprev = NULL;
    n->next = NULL;
}

/* Under lock: put n where its tick belongs relative to w->now. */
static void insert(struct timerwheel *w, struct tw_node *n)
{
    if (n->tick <= w->now) {
        push_slot(&w->due, n);
        return;
    }
    uint64_t diff = n->tick ^ w->now;
    unsigned level = (unsigned)(63 - __builtin_clzll(diff)) / TW_BITS;
    if (TEL_UNLIKELY(level >= TW_LEVELS)) /* only with a clock past 2^63 ns */
        level = TW_LEVELS - 1;
    /* tel__tw_arm caps ticks at now + 2^47, inside the top level. */
    unsigned slot = (unsigned)(n->tick >> (level * TW_BITS)) & (TW_SLOTS - 1);
    push_slot(&w->slots[level][slot], n);
    w->occupied[level] |= 1ull << slot;
}

static void remove_node(struct timerwheel *w, struct tw_node *n)
{
    struct tw_node **head = n->pprev;
    unlink_node(n);
    /* Clear the occupied bit if that slot list became empty. */
    for (unsigned l = 0; l < TW_LEVELS; l++) {
        struct tw_node **base = &w->slots[l][0];
        if (head >= base && head < base + TW_SLOTS) {
            if (*head == NULL)
                w->occupied[l] &= ~(1ull << (head - base));
            break;
        }
    }
}

static int hslot_take(struct timerwheel *w, struct tw_node *n, uint64_t *id)
{
    uint32_t i = w->free_hslot;
    if (i == HS_NONE) {
        if (w->n_hslots == w->cap_hslots) {
            uint32_t ncap = w->cap_hslots ? w->cap_hslots * 2 : 256;
            if (ncap > (1u << HS_SLOT_BITS))
                return TEL_ELIMIT;
            struct tw_hslot *nh = tel__mem_alloc(ncap * sizeof(*nh));
            if (!nh)
                return TEL_ENOMEM;
            if (w->n_hslots)
                memcpy(nh, w->hslots, w->n_hslots * sizeof(*nh));
            tel__mem_free(w->hslots, w->cap_hslots * sizeof(*nh));
            w->hslots = nh;
            w->cap_hslots = ncap;
        }
        i = w->n_hslots++;
        w->hslots[i].gen = 1;
    } else {
        w->free_hslot = w->hslots[i].next_free;
    }
    w->hslots[i].node = n;
    n->hslot = i;
    *id = ((uint64_t)w->hslots[i].gen << (HS_WHEEL_BITS + HS_SLOT_BITS)) |
          ((uint64_t)w->index << HS_SLOT_BITS) | i;
    return 0;
}

static void hslot_release(struct timerwheel *w, uint32_t i)
{
    struct tw_hslot *h = &w->hslots[i];
    h->node = NULL;
    h->gen = (h->gen + 1) & ((1u << HS_GEN_BITS) - 1);
    if (h->gen == 0)
        h->gen = 1;
    h->next_free = w->free_hslot;
    w->free_hslot = i;
}

int tel__tw_arm(struct timerwheel *w, struct tw_node *n, uint8_t kind,
                uint64_t deadline_ns, uint64_t *id)
{
    n->kind = kind;
    n->wheel = w;
    /* Round up (never fire early), saturating near UINT64_MAX. */
    n->tick = (deadline_ns >> TW_TICK_SHIFT) +
              ((deadline_ns & ((1ull << TW_TICK_SHIFT) - 1)) != 0);
    atomic_store_explicit(&n->fired, 0, memory_order_relaxed);
    tel__spin_lock(&w->lock);
    if (kind == TW_HANDLE) {
        int rc = hslot_take(w, n, id);
        if (rc) {
            tel__spin_unlock(&w->lock);
            return rc;
        }
    }
    /* Cap at 2^47 ticks (146 years) ahead: always inside the wheel. */
    if (n->tick > w->now + (1ull << 47))
        n->tick = w->now + (1ull << 47);
    insert(w, n);
    atomic_fetch_add_explicit(&w->n_armed, 1, memory_order_relaxed);
    tel__spin_unlock(&w->lock);
    return 0;
}

bool tel__tw_disarm(struct tw_node *n)
{
    struct timerwheel *w = n->wheel;
    if (!w)
        return false;
    bool was = false;
    tel__spin_lock(&w->lock);
    if (n->pprev) {
        remove_node(w, n);
        if (n->kind == TW_HANDLE)
            hslot_release(w, n->hslot);
        atomic_fetch_sub_explicit(&w->n_armed, 1, memory_order_relaxed);
        was = true;
    }
    tel__spin_unlock(&w->lock);
    n->wheel = NULL;
    return was;
}

uint32_t tel__tw_id_wheel(uint64_t id)
{
    return (uint32_t)(id >> HS_SLOT_BITS) & ((1u << HS_WHEEL_BITS) - 1);
}

struct tw_node *tel__tw_cancel_id(struct timerwheel *w, uint64_t id)
{
    uint64_t gen = id >> (HS_WHEEL_BITS + HS_SLOT_BITS);
    uint32_t si = (uint32_t)id & ((1u << HS_SLOT_BITS) - 1);
    if (gen == 0 || gen >= (1u << HS_GEN_BITS) ||
        tel__tw_id_wheel(id) != w->index)
        return NULL;
    struct tw_node *n = NULL;
    tel__spin_lock(&w->lock);
    if (si < w->n_hslots && w->hslots[si].gen == gen && w->hslots[si].node) {
        n = w->hslots[si].node;
        remove_node(w, n);
        hslot_release(w, si);
        atomic_fetch_sub_explicit(&w->n_armed, 1, memory_order_relaxed);
        n->wheel = NULL;
    }
    tel__spin_unlock(&w->lock);
    return n;
}

/* Under lock: fire n (already unlinked). */
static void fire_one(struct timerwheel *w, struct tw_node *n, tw_fire_fn fire,
                     void *ctx)
{
    if (n->kind == TW_HANDLE)
        hslot_release(w, n->hslot);
    atomic_fetch_sub_explicit(&w->n_armed, 1, memory_order_relaxed);
    atomic_store_explicit(&n->fired, 1, memory_order_seq_cst);
    fire(n, ctx);
}

/* Under lock: the next tick at which a slot needs processing, or MAX. */
static uint64_t next_event(struct timerwheel *w, unsigned *level_out,
                           unsigned *slot_out)
{
    for (unsigned l = 0; l < TW_LEVELS; l++) {
        if (!w->occupied[l])
            continue;
        unsigned shift = l * TW_BITS;
        unsigned now_slot = (unsigned)(w->now >> shift) & (TW_SLOTS - 1);
        uint64_t bits = w->occupied[l] & (~0ull << now_slot);
        uint64_t span = 1ull << (shift + TW_BITS);
        uint64_t base = w->now & ~(span - 1);
        if (!bits) { /* cannot happen by the invariant; stay safe */
            bits = w->occupied[l];
            base += span;
        }
        unsigned s = (unsigned)__builtin_ctzll(bits);
        *level_out = l;
        *slot_out = s;
        uint64_t t = base + ((uint64_t)s << shift);
        return t < w->now ? w->now : t;
    }
    return UINT64_MAX;
}

uint32_t tel__tw_expire(struct timerwheel *w, uint64_t now_ns, tw_fire_fn fire,
                        void *ctx)
{
    uint64_t target = now_ns >> TW_TICK_SHIFT;
    uint32_t fired = 0;
    tel__spin_lock(&w->lock);
    for (;;) {
        while (w->due) {
            struct tw_node *n = w->due;
            unlink_node(n);
            fire_one(w, n, fire, ctx);
            fired++;
        }
        unsigned l, s;
        uint64_t t = next_event(w, &l, &s);
        if (t > target)
            break;
        w->now = t;
        struct tw_node *list = w->slots[l][s];
        w->slots[l][s] = NULL;
        w->occupied[l] &= ~(1ull << s);
        while (list) {
            struct tw_node *n = list;
            list = n->next;
            n->pprev = NULL;
            n->next = NULL;
            if (n->tick <= w->now) {
                fire_one(w, n, fire, ctx);
                fired++;
            } else {
                insert(w, n);
            }
        }
    }
    if (target > w->now)
        w->now = target;
    tel__spin_unlock(&w->lock);
    return fired;
}

uint64_t tel__tw_next_ns(struct timerwheel *w)
{
    tel__spin_lock(&w->lock);
    unsigned l, s;
    uint64_t t = w->due ? w->now : next_event(w, &l, &s);
    tel__spin_unlock(&w->lock);
    return t == UINT64_MAX ? UINT64_MAX : t << TW_TICK_SHIFT;
}

void tel__tw_fini(struct timerwheel *w, tw_fire_fn drop, void *ctx)
{
    for (uint32_t i = 0; i < w->n_hslots; i++) {
        struct tw_node *n = w->hslots[i].node;
        if (n) {
            remove_node(w, n);
            n->wheel = NULL;
            drop(n, ctx);
        }
    }
    tel__mem_free(w->hslots, w->cap_hslots * sizeof(*w->hslots));
    w->hslots = NULL;
    w->n_hslots = w->cap_hslots = 0;
}
