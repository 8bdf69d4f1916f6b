/*
 * sched/epoch.h: quiescent-state-based reclamation (QSBR) for memory that
 * scheduler threads read without a reference count.
 *
 * A scheduler thread is quiescent whenever it picks the next task, or
 * renews the slice of a task that goes on (nothing else to run, or a
 * drainer): no code running there then holds a pointer it looked up
 * without a reference (the rule for such pointers: they do not live across
 * a call that may switch).
 * It is also quiescent where the preemption signal finds it running the
 * program's code or a library's (outside Telar's), with no Telar lock held
 * and no lookup window open (tel__sched_hold, sched/scheduler.h): the
 * handler announces the epoch then (sched/preempt.c), so a thread stuck
 * in a long system call does not hold back every scheduler's reclamation.
 * A block that becomes unreachable is retired, not freed; it is freed once
 * every scheduler has been quiescent at least once since, which is when the
 * global epoch has moved on twice from the epoch it was retired in. A parked
 * scheduler is offline and holds nothing, so it never holds the epoch back.
 *
 * What this buys: tel_send from a process looks its receiver up with plain
 * loads instead of taking and dropping a reference (two atomic
 * read-modify-writes on a line the receiver's other senders share).
 *
 * Memory order (the proof in epoch.c): the epoch loads and advances are
 * seq_cst, as are the unlink that precedes a retire and the lookup's loads,
 * so a lookup that follows a quiescent point in epoch e+1 sees every unlink
 * that was retired in epoch e.
 */
#ifndef TEL_SCHED_EPOCH_H
#define TEL_SCHED_EPOCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/base.h"

struct epoch_node {
    struct epoch_node *next;
    uint64_t epoch;                        /* when it was retired */
    void (*free_fn)(struct epoch_node *n); /* frees the block */
};

/* One per scheduler. */
struct epoch_local {
    /* The epoch this scheduler last saw at a quiescent point; 0: offline.
     * Written by the owner, read by every scheduler that tries to advance. */
    _Atomic uint64_t seen;
    /* Owner only: retired blocks, oldest first. */
    struct epoch_node *head, *tail;
    uint32_t n;
};

extern _Atomic uint64_t tel__epoch_global;

/* Owner, at a quiescent point: announce the current epoch. */
TEL_INLINE void tel__epoch_quiescent(struct epoch_local *l)
{
    uint64_t g = atomic_load_explicit(&tel__epoch_global, memory_order_seq_cst);
    if (atomic_load_explicit(&l->seen, memory_order_relaxed) != g)
        atomic_store_explicit(&l->seen, g, memory_order_release);
}

/* Any thread: l is online and has not announced the current epoch (it
 * holds the epoch back). */
static inline bool tel__epoch_behind(struct epoch_local *l)
{
    uint64_t seen = atomic_load_explicit(&l->seen, memory_order_relaxed);
    return seen != 0 &&
           seen != atomic_load_explicit(&tel__epoch_global,
                                        memory_order_relaxed);
}

/* Owner: this scheduler holds nothing and will not look anything up until
 * tel__epoch_online (it parks, or its thread ends). */
void tel__epoch_offline(struct epoch_local *l);
void tel__epoch_online(struct epoch_local *l);

/*
 * Retire n: free_fn(n) runs once no scheduler can still hold it. l: the
 * calling scheduler's, or NULL on any other thread (then a shared list,
 * under a lock, that schedulers collect).
 */
void tel__epoch_retire(struct epoch_local *l, struct epoch_node *n,
                       void (*free_fn)(struct epoch_node *n));

/*
 * Owner, at a quiescent point: advance the epoch if every online scheduler
 * has seen it, and free what is old enough. all/n_all: every scheduler's
 * record. Returns whether l still holds retired blocks.
 */
bool tel__epoch_collect(struct epoch_local *l, struct epoch_local *const *all,
                        unsigned n_all);

/* Teardown, no scheduler running: free every retired block. */
void tel__epoch_drain(struct epoch_local *const *all, unsigned n_all);

#endif /* TEL_SCHED_EPOCH_H */
