/*
 * core/registry.c: process names: tel_register, tel_unregister,
 * tel_whereis (Erlang's register/2, unregister/1, whereis/1).
 *
 * Owns: one entry per name (the name copied, its hash and its pid), and two
 * open-addressing tables over the same entries: by name (`names`, read
 * without a lock) and by pid (`by_pid`, under the lock only).
 *
 * The problem: servers are called by name, so tel_whereis is on the path of
 * every call and must cost next to nothing; names change rarely. Designs
 * rejected: one mutex, or a reader-writer lock, around everything (every
 * lookup writes the lock's line, which then bounces between the schedulers
 * calling the same server); a seqlock (the name bytes would be read while a
 * writer copies them: a data race, or byte-wise atomics). Chosen: the
 * pid table's own trick (core/pid.c, sched/epoch.h). An entry never changes
 * once published, so a lookup on a scheduler thread reads the name table
 * and its entries with plain (seq_cst, a mov on x86) loads and no lock;
 * writers unlink an entry (a tombstone in its slot, or a new table without
 * it) and *retire* it, and it is freed only once every scheduler has
 * switched since, so a lookup's pointers stay valid until its own next
 * switch. Threads the runtime does not own take part in no epoch, so their
 * lookups take the lock, which writers hold while they unlink.
 *
 * Releasing names at exit: a process that registered itself carries
 * PROC_NAMED (owner-only, in task.flags), and proc_exit calls
 * tel__reg_exit while it is still alive. A name given to another process
 * cannot set that process's flag safely, so its entry is checked lazily: an
 * entry whose pid is no longer alive (tel__pid_alive; pids carry a
 * generation, so a dead pid never names a later process) counts as absent:
 * whereis gives 0, register takes the name, and either drops the entry.
 * Table rebuilds drop every such entry too, so dead names never pile up
 * beyond a constant factor of the live ones.
 *
 * Invariants (under the lock):
 *   - Every entry is in both tables or in neither; in `names` a name is in
 *     at most one slot, in `by_pid` a pid in at most one slot.
 *   - names->used (entries plus tombstones) <= 3/4 of the capacity, so a
 *     probe always ends at an empty slot; by_pid holds the same entries
 *     at the same capacity and has no tombstones (deletion shifts back).
 *   - An unlinked entry or table is retired, never freed at once, except
 *     by tel__reg_fini, when no scheduler runs.
 *
 * Concurrency: writers (register, unregister, exit, lookups that drop a
 * dead entry, every call from a thread the runtime does not own) hold
 * `lock`, a mutex (rank: above the leaves of alloc/lock.h, as it allocates
 * and retires while held; nothing else is taken inside). Lookups on
 * scheduler threads take nothing. Slot and table pointers are published
 * with seq_cst stores after the entry is filled: they pair with the
 * lookup's seq_cst loads, as sched/epoch.c's proof asks.
 *
 * Not here: the gate for foreign threads (runtime.c), the pid table
 * (pid.c).
 */
#include "core/registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "alloc/lock.h"
#include "alloc/base.h"
#include "alloc/numa.h"
#include "core/pid.h"
#include "core/process.h"
#include "core/runtime.h"
#include "sched/epoch.h"
#include "sched/scheduler.h"

#define REG_MIN_CAP 16u

/* A name and its pid; immutable once published. */
struct rent {
    struct epoch_node retired; /* after it is unlinked */
    uint64_t hash;
    tel_pid_t pid;
    uint32_t len; /* bytes in name, without the NUL */
    char name[];  /* len bytes and a NUL */
};

/* The name table; mask and slot pointers are read without the lock. */
struct ntab {
    struct epoch_node retired;
    uint32_t mask;
    uint32_t used; /* entries plus tombstones; writers only */
    uint32_t live; /* entries; writers only */
    _Atomic(struct rent *) slot[];
};

/* A removed entry's slot: a probe goes on past it. */
static struct rent tomb;
#define TOMB (&tomb)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct ntab *) names;
/* Under the lock: the same entries by pid, names->mask + 1 slots. */
static struct rent **by_pid;

/* ------------------------------------------------------------------ */
/* Hashing, entries, tables                                            */
/* ------------------------------------------------------------------ */

static inline uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t hash_name(const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3ull;
    }
    return mix(h);
}

/* The length of a valid name (1..TEL_NAME_MAX), or 0. */
static size_t name_len(const char *name)
{
    if (!name)
        return 0;
    size_t len = strnlen(name, TEL_NAME_MAX + 1);
    return len <= TEL_NAME_MAX ? len : 0;
}

static size_t rent_size(size_t len)
{
    return offsetof(struct rent, name) + len + 1;
}

static void rent_free(struct rent *e)
{
    tel__mem_free(e, rent_size(e->len));
}

static void rent_free_retired(struct epoch_node *n)
{
    rent_free(tel_container_of(n, struct rent, retired));
}

static size_t ntab_size(uint32_t cap)
{
    return sizeof(struct ntab) + (size_t)cap * sizeof(struct rent *);
}

static void ntab_free(struct ntab *t)
{
    tel__mem_free(t, ntab_size(t->mask + 1));
}

static void ntab_free_retired(struct epoch_node *n)
{
    ntab_free(tel_container_of(n, struct ntab, retired));
}

/* Free n once no scheduler can still hold it. Under the lock. */
static void retire(struct epoch_node *n, void (*free_fn)(struct epoch_node *))
{
    struct sched *s = tel__sched_self();
    tel__epoch_retire(s ? &s->ep : NULL, n, free_fn);
}

/*
 * The entry for name in t, or NULL. Any thread: under the lock, or on a
 * scheduler thread (then the result is valid until its next switch).
 */
static struct rent *nfind(struct ntab *t, uint64_t h, const char *name,
                          size_t len, uint32_t *at)
{
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
        /* seq_cst: pairs with the seq_cst publication in nput (and the
         * epoch proof: lookups load seq_cst). */
        struct rent *e = atomic_load_explicit(&t->slot[i],
                                              memory_order_seq_cst);
        if (!e)
            return NULL;
        if (e != TOMB && e->hash == h && e->len == len &&
            memcmp(e->name, name, len) == 0) {
            if (at)
                *at = i;
            return e;
        }
    }
}

/* Put e in t's first free slot (a tombstone's or an empty one). Under the
 * lock; e is not in t. */
static void nput(struct ntab *t, struct rent *e)
{
    for (uint32_t i = (uint32_t)e->hash & t->mask;; i = (i + 1) & t->mask) {
        struct rent *o = atomic_load_explicit(&t->slot[i],
                                              memory_order_relaxed);
        if (!o || o == TOMB) {
            if (!o)
                t->used++;
            t->live++;
            /* seq_cst (release would publish e's fields; seq_cst for the
             * epoch proof): pairs with the load in nfind. */
            atomic_store_explicit(&t->slot[i], e, memory_order_seq_cst);
            return;
        }
    }
}

static inline uint32_t pid_home(tel_pid_t pid, uint32_t mask)
{
    return (uint32_t)mix(pid) & mask;
}

/* by_pid's slot holding pid, or -1. Under the lock. */
static int64_t pfind(tel_pid_t pid, uint32_t mask)
{
    if (!by_pid)
        return -1;
    for (uint32_t i = pid_home(pid, mask);; i = (i + 1) & mask) {
        if (!by_pid[i])
            return -1;
        if (by_pid[i]->pid == pid)
            return i;
    }
}

static void pput(struct rent **tab, uint32_t mask, struct rent *e)
{
    uint32_t i = pid_home(e->pid, mask);
    while (tab[i])
        i = (i + 1) & mask;
    tab[i] = e;
}

/* Empty by_pid's slot i, shifting later entries of its run back so that
 * every probe still finds them (linear probing without tombstones). */
static void pdel(uint32_t i, uint32_t mask)
{
    for (;;) {
        by_pid[i] = NULL;
        uint32_t j = i;
        for (;;) {
            j = (j + 1) & mask;
            if (!by_pid[j])
                return;
            uint32_t k = pid_home(by_pid[j]->pid, mask);
            /* Move by_pid[j] into the hole at i unless its home lies
             * cyclically in (i, j]. */
            bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (!stays)
                break;
        }
        by_pid[i] = by_pid[j];
        i = j;
    }
}

/* Unlink e (in t's slot at) from both tables and retire it. Under the lock. */
static void unlink_entry(struct ntab *t, uint32_t at, struct rent *e)
{
    /* seq_cst: the unlink sched/epoch.c's proof starts from. */
    atomic_store_explicit(&t->slot[at], TOMB, memory_order_seq_cst);
    t->live--;
    int64_t pi = pfind(e->pid, t->mask);
    TEL_ASSERT(pi >= 0);
    if (pi >= 0)
        pdel((uint32_t)pi, t->mask);
    retire(&e->retired, rent_free_retired);
}

/*
 * Make room for one more entry: a new pair of tables sized for the live
 * entries (dead ones are dropped here). Under the lock. 0 or TEL_ENOMEM,
 * and then nothing has changed.
 */
static int rebuild(void)
{
    struct ntab *old = atomic_load_explicit(&names, memory_order_relaxed);
    uint32_t n = 0;
    if (old)
        for (uint32_t i = 0; i <= old->mask; i++) {
            struct rent *e = atomic_load_explicit(&old->slot[i],
                                                  memory_order_relaxed);
            if (e && e != TOMB && tel__pid_alive(e->pid))
                n++;
        }
    uint32_t cap = REG_MIN_CAP;
    while (cap / 2 < n + 1)
        cap *= 2;
    struct ntab *t = tel__mem_zalloc(ntab_size(cap));
    if (!t)
        return TEL_ENOMEM;
    struct rent **pt = tel__mem_zalloc((size_t)cap * sizeof(*pt));
    if (!pt) {
        tel__mem_free(t, ntab_size(cap));
        return TEL_ENOMEM;
    }
    t->mask = cap - 1;
    /* Entries that die meanwhile are copied, and dropped lazily later. */
    struct epoch_node *dead = NULL;
    if (old) {
        for (uint32_t i = 0; i <= old->mask; i++) {
            struct rent *e = atomic_load_explicit(&old->slot[i],
                                                  memory_order_relaxed);
            if (!e || e == TOMB)
                continue;
            if (t->live < n && tel__pid_alive(e->pid)) {
                nput(t, e);
                pput(pt, t->mask, e);
            } else {
                /* Chain it through its (unused) epoch node to retire it
                 * after the new table is published. */
                e->retired.next = dead;
                dead = &e->retired;
            }
        }
        tel__mem_free(by_pid, (size_t)(old->mask + 1) * sizeof(*by_pid));
    }
    by_pid = pt;
    /* seq_cst: the new table (and its slots) are published together; the
     * entries left out are unlinked by this store. */
    atomic_store_explicit(&names, t, memory_order_seq_cst);
    while (dead) {
        struct epoch_node *next = dead->next;
        retire(dead, rent_free_retired);
        dead = next;
    }
    if (old)
        retire(&old->retired, ntab_free_retired);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Lifetime                                                            */
/* ------------------------------------------------------------------ */

void tel__reg_init(void)
{
    atomic_store_explicit(&names, NULL, memory_order_relaxed);
    by_pid = NULL;
}

void tel__reg_fini(void)
{
    struct ntab *t = atomic_load_explicit(&names, memory_order_relaxed);
    if (!t)
        return;
    for (uint32_t i = 0; i <= t->mask; i++) {
        struct rent *e = atomic_load_explicit(&t->slot[i],
                                              memory_order_relaxed);
        if (e && e != TOMB)
            rent_free(e);
    }
    tel__mem_free(by_pid, (size_t)(t->mask + 1) * sizeof(*by_pid));
    ntab_free(t);
    by_pid = NULL;
    atomic_store_explicit(&names, NULL, memory_order_relaxed);
}

void tel__reg_exit(struct proc *p)
{
    tel__mutex_lock(&lock);
    struct ntab *t = atomic_load_explicit(&names, memory_order_relaxed);
    int64_t pi = t ? pfind(p->pid, t->mask) : -1;
    if (pi >= 0) {
        struct rent *e = by_pid[pi];
        uint32_t at;
        struct rent *f = nfind(t, e->hash, e->name, e->len, &at);
        TEL_ASSERT(f == e);
        if (f == e)
            unlink_entry(t, at, e);
    }
    tel__mutex_unlock(&lock);
    p->task.flags &= ~(uint32_t)PROC_NAMED;
}

uint32_t tel__reg_entries(void)
{
    tel__mutex_lock(&lock);
    struct ntab *t = atomic_load_explicit(&names, memory_order_relaxed);
    uint32_t n = t ? t->live : 0;
    tel__mutex_unlock(&lock);
    return n;
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */
/* ------------------------------------------------------------------ */

/* Under the lock. */
static int reg_locked(const char *name, size_t len, uint64_t h, tel_pid_t pid)
{
    struct ntab *t = atomic_load_explicit(&names, memory_order_relaxed);
    if (t) {
        uint32_t at;
        struct rent *e = nfind(t, h, name, len, &at);
        if (e) {
            if (tel__pid_alive(e->pid))
                return TEL_EEXIST;
            unlink_entry(t, at, e); /* its process is gone: the name is free */
        }
        if (pfind(pid, t->mask) >= 0)
            return TEL_EEXIST; /* pid is alive (checked), so is its name */
    }
    struct rent *e = tel__mem_alloc(rent_size(len));
    if (!e)
        return TEL_ENOMEM;
    e->hash = h;
    e->pid = pid;
    e->len = (uint32_t)len;
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    if (!t || (t->used + 1) * 4 > (t->mask + 1) * 3) {
        int rc = rebuild();
        if (rc) {
            rent_free(e);
            return rc;
        }
        t = atomic_load_explicit(&names, memory_order_relaxed);
    }
    pput(by_pid, t->mask, e);
    nput(t, e);
    return 0;
}

int tel_register(const char *name, tel_pid_t pid)
{
    size_t len = name_len(name);
    if (len == 0 || pid == 0)
        return TEL_EINVAL;
    struct sched *s = tel__sched_self();
    if (!s && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    int rc = TEL_ENOPROC;
    if (tel__pid_alive(pid)) {
        uint64_t h = hash_name(name, len);
        tel__mutex_lock(&lock);
        rc = reg_locked(name, len, h, pid);
        tel__mutex_unlock(&lock);
        struct proc *self = tel__proc_current(s);
        /* Only the process itself may set its flag. */
        if (rc == 0 && self && self->pid == pid)
            self->task.flags |= PROC_NAMED;
    }
    if (!s)
        tel__rt_leave();
    return rc;
}

int tel_unregister(const char *name)
{
    size_t len = name_len(name);
    if (len == 0)
        return TEL_EINVAL;
    struct sched *s = tel__sched_self();
    if (!s && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    uint64_t h = hash_name(name, len);
    int rc = TEL_ENOENT;
    tel_pid_t pid = 0;
    tel__mutex_lock(&lock);
    struct ntab *t = atomic_load_explicit(&names, memory_order_relaxed);
    uint32_t at;
    struct rent *e = t ? nfind(t, h, name, len, &at) : NULL;
    if (e) {
        pid = e->pid;
        if (tel__pid_alive(pid))
            rc = 0;
        unlink_entry(t, at, e); /* a dead process's entry goes too */
    }
    tel__mutex_unlock(&lock);
    struct proc *self = tel__proc_current(s);
    if (rc == 0 && self && self->pid == pid)
        self->task.flags &= ~(uint32_t)PROC_NAMED; /* nothing to do at exit */
    if (!s)
        tel__rt_leave();
    return rc;
}

/* Under the lock: the live pid named name (a dead one's entry is dropped). */
static tel_pid_t whereis_locked(const char *name, size_t len, uint64_t h)
{
    struct ntab *t = atomic_load_explicit(&names, memory_order_relaxed);
    uint32_t at;
    struct rent *e = t ? nfind(t, h, name, len, &at) : NULL;
    if (!e)
        return 0;
    if (tel__pid_alive(e->pid))
        return e->pid;
    unlink_entry(t, at, e);
    return 0;
}

tel_pid_t tel_whereis(const char *name)
{
    size_t len = name_len(name);
    if (len == 0)
        return 0;
    uint64_t h = hash_name(name, len);
    struct sched *s = tel__sched_self();
    if (TEL_LIKELY(s)) {
        /* The fast path: no lock, no write to shared memory. The table and
         * entry stay valid until this scheduler's next switch. */
        tel__sched_hold(s); /* nfind calls memcmp */
        struct ntab *t = atomic_load_explicit(&names, memory_order_seq_cst);
        struct rent *e = t ? nfind(t, h, name, len, NULL) : NULL;
        tel_pid_t pid = e ? e->pid : 0;
        tel__sched_unhold(s);
        if (!pid)
            return 0;
        if (TEL_LIKELY(tel__pid_alive(pid)))
            return pid;
        /* Its process is gone: drop the entry (once; others then miss),
         * and take a live one that a register may have put in its place. */
        tel__mutex_lock(&lock);
        pid = whereis_locked(name, len, h);
        tel__mutex_unlock(&lock);
        return pid;
    }
    if (!tel__rt_enter())
        return 0;
    tel__mutex_lock(&lock);
    tel_pid_t pid = whereis_locked(name, len, h);
    tel__mutex_unlock(&lock);
    tel__rt_leave();
    return pid;
}
