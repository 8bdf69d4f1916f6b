/*
 * sched/epoch.c: quiescent-state-based reclamation (see epoch.h).
 *
 * Owns: the global epoch, and the shared list of blocks retired by threads
 * that are not schedulers.
 *
 * Why a block retired in epoch e is safe to free once the global epoch is
 * e + 2. The retirer unlinked the block (a seq_cst read-modify-write: after
 * it, no lookup finds the block) and then loaded the global epoch, seeing e.
 * The epoch became e + 2 only after every online scheduler had announced
 * e + 1, each at a quiescent point, after loading the epoch and seeing e + 1.
 * In the single total order of seq_cst operations: unlink < the retirer's
 * load of e < the advance to e + 1 < that scheduler's load of e + 1 < its
 * later lookups, which therefore see the unlink and cannot find the block.
 * What it did before that quiescent point, it did holding nothing
 * (quiescent), and its release store of `seen` makes all of it happen before
 * our acquire load of `seen`, hence before the free. A scheduler that comes
 * online announces with a seq_cst store: either an advancer's load of its
 * `seen` comes after that store (it then holds the epoch back), or before,
 * and then its later lookups come after the unlink too.
 *
 * Concurrency: `seen` is written by its owner only; the epoch advances by
 * CAS (any scheduler); a limbo list belongs to its scheduler; the shared
 * list is under a spinlock (leaf rank), taken only when it is not empty.
 */
#include "sched/epoch.h"

#include "alloc/lock.h"

/* Starts at 1: 0 in `seen` means offline. Never reset between runs. */
_Atomic uint64_t tel__epoch_global = 1;

static struct {
    tel__spin_t lock;
    struct epoch_node *head, *tail;
    _Atomic uint32_t n;
} foreign;

void tel__epoch_offline(struct epoch_local *l)
{
    atomic_store_explicit(&l->seen, 0, memory_order_release);
}

void tel__epoch_online(struct epoch_local *l)
{
    uint64_t g = atomic_load_explicit(&tel__epoch_global, memory_order_seq_cst);
    atomic_store_explicit(&l->seen, g, memory_order_seq_cst);
}

static void append(struct epoch_node **head, struct epoch_node **tail,
                   struct epoch_node *n)
{
    n->next = NULL;
    if (*tail)
        (*tail)->next = n;
    else
        *head = n;
    *tail = n;
}

void tel__epoch_retire(struct epoch_local *l, struct epoch_node *n,
                       void (*free_fn)(struct epoch_node *n))
{
    n->free_fn = free_fn;
    n->epoch = atomic_load_explicit(&tel__epoch_global, memory_order_seq_cst);
    if (l) {
        append(&l->head, &l->tail, n);
        l->n++;
        return;
    }
    tel__spin_lock(&foreign.lock);
    append(&foreign.head, &foreign.tail, n);
    atomic_fetch_add_explicit(&foreign.n, 1, memory_order_relaxed);
    tel__spin_unlock(&foreign.lock);
}

/* Move the shared list into l: from now on its blocks wait in l's limbo.
 * Their epochs are kept, so they are freed no later than in place. */
static void adopt_foreign(struct epoch_local *l)
{
    if (atomic_load_explicit(&foreign.n, memory_order_relaxed) == 0)
        return;
    tel__spin_lock(&foreign.lock);
    struct epoch_node *h = foreign.head, *t = foreign.tail;
    uint32_t k = atomic_load_explicit(&foreign.n, memory_order_relaxed);
    foreign.head = foreign.tail = NULL;
    atomic_store_explicit(&foreign.n, 0, memory_order_relaxed);
    tel__spin_unlock(&foreign.lock);
    if (!h)
        return;
    /* Older than anything l retires from now, but not necessarily than what
     * l holds: put them first, which at worst frees l's own later. */
    t->next = l->head;
    l->head = h;
    if (!l->tail)
        l->tail = t;
    l->n += k;
}

bool tel__epoch_collect(struct epoch_local *l, struct epoch_local *const *all,
                        unsigned n_all)
{
    adopt_foreign(l);
    if (!l->head)
        return false;
    uint64_t g = atomic_load_explicit(&tel__epoch_global, memory_order_seq_cst);
    /* Advance if every online scheduler has seen g (we have: the caller is
     * at a quiescent point). */
    bool all_seen = true;
    for (unsigned i = 0; i < n_all && all_seen; i++) {
        uint64_t s = atomic_load_explicit(&all[i]->seen, memory_order_acquire);
        all_seen = s == 0 || s == g;
    }
    if (all_seen &&
        atomic_compare_exchange_strong_explicit(&tel__epoch_global, &g, g + 1,
                                                memory_order_seq_cst,
                                                memory_order_seq_cst))
        g++;
    /* Our own announcement must not lag behind what we free by. */
    tel__epoch_quiescent(l);
    /* Blocks are retired in epoch order, except adopted ones, which are
     * older; so stop at the first one that is too young. */
    while (l->head && l->head->epoch + 2 <= g) {
        struct epoch_node *n = l->head;
        l->head = n->next;
        if (!l->head)
            l->tail = NULL;
        l->n--;
        n->free_fn(n);
    }
    return l->head != NULL;
}

static void free_list(struct epoch_node *n)
{
    while (n) {
        struct epoch_node *next = n->next;
        n->free_fn(n);
        n = next;
    }
}

void tel__epoch_drain(struct epoch_local *const *all, unsigned n_all)
{
    for (unsigned i = 0; i < n_all; i++) {
        free_list(all[i]->head);
        all[i]->head = all[i]->tail = NULL;
        all[i]->n = 0;
    }
    free_list(foreign.head);
    foreign.head = foreign.tail = NULL;
    atomic_store_explicit(&foreign.n, 0, memory_order_relaxed);
}
