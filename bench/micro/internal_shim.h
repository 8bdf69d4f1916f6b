/*
 * bench/micro/internal_shim.h: the run queue and timer wheel internals, for
 * the C++ benchmarks (runq_bench.cc, timer_bench.cc).
 *
 * Why a shim: sched/runq.h, sched/task.h and sched/timerwheel.h are C11
 * (`_Atomic T` fields, <stdatomic.h>, `_Noreturn` in alloc/base.h), which
 * g++ cannot parse even inside extern "C". This header parses as both C and
 * C++ and names the internal structs only as incomplete types, so the
 * benchmarks hold pointers and never see a layout.
 *
 * It has two parts:
 *   - The real internal calls, redeclared with the same signatures as in
 *     sched/runq.h and sched/timerwheel.h. The benchmarks call these
 *     directly: no wrapper on the measured path. internal_shim.c includes
 *     this header and the real ones, so a signature that drifts from its
 *     header is a compile error ("conflicting types"), not a silent mirror.
 *   - bench_* helpers, defined in internal_shim.c, for what C++ cannot do
 *     with an incomplete type: allocate one, index an array of them, read a
 *     field the benchmarks check, and see a constant from those headers.
 *
 * Any thread may call the helpers; the rules for the internal calls are in
 * their headers.
 */
#ifndef TEL_BENCH_MICRO_INTERNAL_SHIM_H
#define TEL_BENCH_MICRO_INTERNAL_SHIM_H

#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct runq;
struct task;
struct timerwheel;
struct tw_node;

/* ------------------------------------------------------------------------ */
/* sched/runq.h                                                              */
/* ------------------------------------------------------------------------ */

void tel__runq_init(struct runq *q);
bool tel__runq_push(struct runq *q, struct task *t);
struct task *tel__runq_pop(struct runq *q);
struct task *tel__runq_steal(struct runq *victim, struct runq *into);

/* RUNQ_CAP: how many tasks one ring holds. */
extern const uint32_t bench_runq_cap;

/*
 * A struct runq on its own cache lines (aligned to at least its own
 * alignment and TEL_CACHELINE), not initialised: call tel__runq_init.
 * NULL when out of memory. bench_runq_free(NULL) does nothing.
 */
struct runq *bench_runq_alloc(void);
void bench_runq_free(struct runq *q);

/*
 * n zeroed struct tasks in one block (NULL when out of memory, or n is 0);
 * bench_task_at gives element i. The run queue stores only their addresses.
 */
struct task *bench_tasks_alloc(size_t n);
struct task *bench_task_at(struct task *tasks, size_t i);
void bench_tasks_free(struct task *tasks);

/* ------------------------------------------------------------------------ */
/* sched/timerwheel.h                                                        */
/* ------------------------------------------------------------------------ */

typedef void (*tw_fire_fn)(struct tw_node *n, void *ctx);

void tel__tw_init(struct timerwheel *w, uint32_t index, uint64_t now_ns);
void tel__tw_fini(struct timerwheel *w, tw_fire_fn drop, void *ctx);
int tel__tw_arm(struct timerwheel *w, struct tw_node *n, uint8_t kind,
                uint64_t deadline_ns, uint64_t *id);
bool tel__tw_disarm(struct tw_node *n);
uint32_t tel__tw_expire(struct timerwheel *w, uint64_t now_ns,
                        tw_fire_fn fire, void *ctx);

/* TW_TICK_SHIFT: a tick is 2^bench_tw_tick_shift ns. */
extern const unsigned bench_tw_tick_shift;
/* TW_WAIT: the kind of a task's wait timer (no id, no handle slot). */
extern const uint8_t bench_tw_wait;

/*
 * A struct timerwheel, aligned as bench_runq_alloc's rings are, not
 * initialised: call tel__tw_init (and tel__tw_fini before freeing). NULL
 * when out of memory. bench_tw_free(NULL) does nothing.
 */
struct timerwheel *bench_tw_alloc(void);
void bench_tw_free(struct timerwheel *w);

/* The wheel's count of armed timers (n_armed; a relaxed load). */
uint32_t bench_tw_n_armed(struct timerwheel *w);

/*
 * n zeroed struct tw_nodes in one block (NULL when out of memory, or n is
 * 0); bench_tw_node_at gives element i.
 */
struct tw_node *bench_tw_nodes_alloc(size_t n);
struct tw_node *bench_tw_node_at(struct tw_node *nodes, size_t i);
void bench_tw_nodes_free(struct tw_node *nodes);

#ifdef __cplusplus
}
#endif

#endif /* TEL_BENCH_MICRO_INTERNAL_SHIM_H */
