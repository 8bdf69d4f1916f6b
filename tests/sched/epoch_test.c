/*
 * tests/sched/epoch_test.c: white-box tests of sched/epoch.h, the
 * quiescent-state-based reclamation of process blocks.
 *
 * The "schedulers" here are plain epoch records driven by the test (and, in
 * the last test, by threads): what matters is when a retired block may be
 * freed, not who runs.
 */
#include "common.h"

#include <pthread.h>

#include "sched/epoch.h"

struct blk {
    struct epoch_node node;
    int id;
    _Atomic int *freed; /* counts frees; a second free is a bug */
    _Atomic int state;  /* 1 while live; 0 once freed */
};

static void free_blk(struct epoch_node *n)
{
    struct blk *b = tel_container_of(n, struct blk, node);
    int was = atomic_exchange(&b->state, 0);
    if (was != 1)
        TT_FAIL("block %d freed twice", b->id);
    atomic_fetch_add(b->freed, 1);
}

static void init_blks(struct blk *b, int n, _Atomic int *freed)
{
    for (int i = 0; i < n; i++) {
        b[i].id = i;
        b[i].freed = freed;
        atomic_store(&b[i].state, 1);
    }
}

/* Two records, both online. */
static struct epoch_local rec[2];
static struct epoch_local *const all[2] = {&rec[0], &rec[1]};

static void setup(void)
{
    memset(rec, 0, sizeof(rec));
    tel__epoch_online(&rec[0]);
    tel__epoch_online(&rec[1]);
}

Test(epoch, a_block_is_freed_only_after_every_online_scheduler_was_quiescent,
     .init = setup)
{
    _Atomic int freed = 0;
    struct blk b[1];
    init_blks(b, 1, &freed);
    tel__epoch_retire(&rec[0], &b[0].node, free_blk);
    /* rec[1] never passes a quiescent point: nothing may be freed, however
     * often rec[0] tries. */
    for (int i = 0; i < 10; i++) {
        tel__epoch_quiescent(&rec[0]);
        cr_assert(tel__epoch_collect(&rec[0], all, 2), "limbo emptied");
    }
    cr_assert_eq(atomic_load(&freed), 0, "freed while rec[1] may hold it");
    /* Once rec[1] keeps passing quiescent points, it goes. */
    for (int i = 0; i < 4 && atomic_load(&freed) == 0; i++) {
        tel__epoch_quiescent(&rec[1]);
        tel__epoch_quiescent(&rec[0]);
        (void)tel__epoch_collect(&rec[0], all, 2);
    }
    cr_assert_eq(atomic_load(&freed), 1);
    cr_assert_not(tel__epoch_collect(&rec[0], all, 2));
}

Test(epoch, a_block_waits_two_epochs_even_when_alone, .init = setup)
{
    _Atomic int freed = 0;
    struct blk b[1];
    init_blks(b, 1, &freed);
    tel__epoch_offline(&rec[1]);
    tel__epoch_retire(&rec[0], &b[0].node, free_blk);
    uint64_t e = atomic_load(&tel__epoch_global);
    /* The first collect advances once (e + 1): not yet. */
    cr_assert(tel__epoch_collect(&rec[0], all, 2));
    cr_assert_eq(atomic_load(&freed), 0);
    cr_assert_eq(atomic_load(&tel__epoch_global), e + 1);
    /* The second reaches e + 2: freed. */
    cr_assert_not(tel__epoch_collect(&rec[0], all, 2));
    cr_assert_eq(atomic_load(&freed), 1);
}

Test(epoch, an_offline_scheduler_does_not_hold_the_epoch_back, .init = setup)
{
    _Atomic int freed = 0;
    struct blk b[3];
    init_blks(b, 3, &freed);
    for (int i = 0; i < 3; i++)
        tel__epoch_retire(&rec[0], &b[i].node, free_blk);
    tel__epoch_offline(&rec[1]); /* parked: holds nothing */
    for (int i = 0; i < 3; i++)
        (void)tel__epoch_collect(&rec[0], all, 2);
    cr_assert_eq(atomic_load(&freed), 3);
    /* Back online, it holds the epoch again until it is quiescent. */
    tel__epoch_online(&rec[1]);
    struct blk c[1];
    init_blks(c, 1, &freed);
    tel__epoch_retire(&rec[0], &c[0].node, free_blk);
    for (int i = 0; i < 5; i++)
        (void)tel__epoch_collect(&rec[0], all, 2);
    cr_assert_eq(atomic_load(&freed), 3, "freed under an online scheduler "
                                         "that was never quiescent");
}

Test(epoch, a_block_retired_by_another_thread_is_collected_by_a_scheduler,
     .init = setup)
{
    _Atomic int freed = 0;
    struct blk b[2];
    init_blks(b, 2, &freed);
    tel__epoch_retire(NULL, &b[0].node, free_blk);
    tel__epoch_retire(NULL, &b[1].node, free_blk);
    for (int i = 0; i < 6 && atomic_load(&freed) < 2; i++) {
        tel__epoch_quiescent(&rec[1]);
        (void)tel__epoch_collect(&rec[0], all, 2);
    }
    cr_assert_eq(atomic_load(&freed), 2);
}

Test(epoch, teardown_frees_every_retired_block, .init = setup)
{
    _Atomic int freed = 0;
    struct blk b[5];
    init_blks(b, 5, &freed);
    tel__epoch_retire(&rec[0], &b[0].node, free_blk);
    tel__epoch_retire(&rec[1], &b[1].node, free_blk);
    tel__epoch_retire(&rec[1], &b[2].node, free_blk);
    tel__epoch_retire(NULL, &b[3].node, free_blk);
    tel__epoch_retire(NULL, &b[4].node, free_blk);
    tel__epoch_offline(&rec[0]);
    tel__epoch_offline(&rec[1]);
    tel__epoch_drain(all, 2);
    cr_assert_eq(atomic_load(&freed), 5);
    cr_assert_null(rec[0].head);
    cr_assert_null(rec[1].head);
}

/*
 * Concurrent: a reader thread (scheduler 1) repeatedly takes the block
 * published in `shared`, checks it is live, and passes a quiescent point;
 * scheduler 0 keeps replacing the block, retiring the old one, and
 * collecting. A reader that ever sees a freed block fails the test, as does
 * a block freed twice (free_blk). ASan/TSan builds see use-after-free and
 * races directly.
 */
#define SWAPS 20000
static _Atomic(struct blk *) shared;
static atomic_bool stop_reader;
static atomic_int bad_reads;

static void *reader(void *arg)
{
    (void)arg;
    tel__epoch_online(&rec[1]);
    while (!atomic_load(&stop_reader)) {
        for (int i = 0; i < 16; i++) {
            /* seq_cst as in tel__pid_lookup. */
            struct blk *b = atomic_load_explicit(&shared, memory_order_seq_cst);
            if (b && atomic_load_explicit(&b->state, memory_order_relaxed) != 1)
                atomic_fetch_add(&bad_reads, 1);
        }
        tel__epoch_quiescent(&rec[1]);
    }
    tel__epoch_offline(&rec[1]);
    return NULL;
}

Test(epoch, a_reader_never_sees_a_freed_block, .init = setup, .timeout = 60)
{
    _Atomic int freed = 0;
    struct blk *b = calloc(SWAPS, sizeof(*b));
    cr_assert_not_null(b);
    init_blks(b, SWAPS, &freed);
    tel__epoch_offline(&rec[1]); /* the reader brings it online */
    atomic_store(&shared, &b[0]);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, reader, NULL), 0);
    for (int i = 1; i < SWAPS; i++) {
        struct blk *old = atomic_exchange_explicit(&shared, &b[i],
                                                   memory_order_seq_cst);
        tel__epoch_retire(&rec[0], &old->node, free_blk);
        tel__epoch_quiescent(&rec[0]);
        (void)tel__epoch_collect(&rec[0], all, 2);
    }
    atomic_store(&stop_reader, true);
    pthread_join(t, NULL);
    cr_assert_eq(atomic_load(&bad_reads), 0, "the reader saw a freed block");
    /* The reader went offline: everything retired can go now. */
    while (tel__epoch_collect(&rec[0], all, 2))
        ;
    cr_assert_eq(atomic_load(&freed), SWAPS - 1);
    free(b);
}
