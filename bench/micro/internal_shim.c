/*
 * bench/micro/internal_shim.c: the C side of internal_shim.h, compiled as
 * C11 against the real sched/ headers.
 *
 * Owns: nothing that lasts. It allocates the internal structs the C++
 * benchmarks cannot size (they see only incomplete types), indexes arrays
 * of them, reads the one field they check, and exports the constants they
 * need. Everything else the benchmarks call is the real code in sched/.
 *
 * Invariants:
 *   - internal_shim.h is included first and the real headers after it, so
 *     each tel__* redeclaration there must match its header exactly or this
 *     file does not compile. Sizes, alignments and constants come from the
 *     real headers here, so a change in sched/ needs no edit in the
 *     benchmarks.
 *
 * Concurrency: none of its own. The helpers touch only memory the caller
 * has not shared yet, except bench_tw_n_armed, a relaxed atomic load (the
 * same read the header calls a hint).
 */
#include "bench/micro/internal_shim.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/base.h"
#include "sched/runq.h"
#include "sched/task.h"
#include "sched/timerwheel.h"

const uint32_t bench_runq_cap = RUNQ_CAP;
const unsigned bench_tw_tick_shift = TW_TICK_SHIFT;
const uint8_t bench_tw_wait = TW_WAIT;

/*
 * n zeroed objects of elem_size bytes, aligned to align (a power of two), in
 * one block that free() releases. NULL when n is 0, the size overflows or
 * memory runs out.
 */
static void *zalloc_aligned(size_t n, size_t elem_size, size_t align)
{
    if (align < sizeof(void *))
        align = sizeof(void *);
    if (n == 0 || elem_size > (SIZE_MAX - align) / n)
        return NULL;
    /* C11 aligned_alloc wants a size that is a multiple of align. */
    size_t size = (n * elem_size + align - 1) & ~(align - 1);
    void *p = aligned_alloc(align, size);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

/* A cache line at least, so a ring or wheel shares no line with its
 * neighbours (the alignment the benchmarks have always given them). */
static size_t line_align(size_t align)
{
    return align > TEL_CACHELINE ? align : TEL_CACHELINE;
}

/* ------------------------------------------------------------------------ */
/* Run queue                                                                 */
/* ------------------------------------------------------------------------ */

struct runq *bench_runq_alloc(void)
{
    return zalloc_aligned(1, sizeof(struct runq),
                          line_align(alignof(struct runq)));
}

void bench_runq_free(struct runq *q)
{
    free(q);
}

struct task *bench_tasks_alloc(size_t n)
{
    return zalloc_aligned(n, sizeof(struct task), alignof(struct task));
}

struct task *bench_task_at(struct task *tasks, size_t i)
{
    return &tasks[i];
}

void bench_tasks_free(struct task *tasks)
{
    free(tasks);
}

/* ------------------------------------------------------------------------ */
/* Timer wheel                                                               */
/* ------------------------------------------------------------------------ */

struct timerwheel *bench_tw_alloc(void)
{
    return zalloc_aligned(1, sizeof(struct timerwheel),
                          line_align(alignof(struct timerwheel)));
}

void bench_tw_free(struct timerwheel *w)
{
    free(w);
}

uint32_t bench_tw_n_armed(struct timerwheel *w)
{
    return atomic_load_explicit(&w->n_armed, memory_order_relaxed);
}

struct tw_node *bench_tw_nodes_alloc(size_t n)
{
    return zalloc_aligned(n, sizeof(struct tw_node), alignof(struct tw_node));
}

struct tw_node *bench_tw_node_at(struct tw_node *nodes, size_t i)
{
    return &nodes[i];
}

void bench_tw_nodes_free(struct tw_node *nodes)
{
    free(nodes);
}
