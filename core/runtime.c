/*
 * core/runtime.c: tel_run; wires the layers together; owns the configuration
 * and the gate for threads outside the runtime.
 *
 * A run: validate the config, load the topology (once per program), plan
 * the victim rings for the scheduler count (by default one per usable core,
 * capped by the cgroup CPU quota), make the memory, stack pool and pid
 * table ready, create the first process, and hand the calling thread to
 * the schedulers (it becomes scheduler 0). When the first process exits
 * the schedulers stop; then the gate closes, every process still alive is
 * ended with TEL_SHUTDOWN and every structure freed, in the reverse order
 * of creation.
 *
 * The gate: a thread the runtime does not own (an embedding program's
 * thread calling tel_send, tel_spawn, ...) counts itself in before it
 * touches runtime state. Bit 63 says the gate is open; teardown clears it and
 * waits for the count to drain, so no such call ever sees freed memory, and
 * calls after the run get TEL_ESHUTDOWN.
 *
 * Concurrency: one run at a time per program (`running`, a CAS).
 */
#include "core/runtime.h"

#include <sched.h>
#include <stdatomic.h>

#include "alloc/numa.h"
#include "alloc/pool.h"
#include "alloc/stack.h"
#include "alloc/topo.h"
#include "core/blocking.h"
#include "core/pid.h"
#include "core/process.h"
#include "core/registry.h"
#include "sched/scheduler.h"
#include "sched/sysmon.h"

#define GATE_OPEN (1ull << 63)

static _Atomic uint64_t gate;
static _Atomic bool running;
/* The system monitor (tel_system_monitor): its pid, 0 for none. */
static _Atomic tel_pid_t sysmon_to;
bool tel__rt_main_nostack;

bool tel__rt_enter(void)
{
    uint64_t v = atomic_fetch_add_explicit(&gate, 1, memory_order_acquire);
    if (TEL_LIKELY(v & GATE_OPEN))
        return true;
    atomic_fetch_sub_explicit(&gate, 1, memory_order_release);
    return false;
}

void tel__rt_leave(void)
{
    atomic_fetch_sub_explicit(&gate, 1, memory_order_release);
}

static void gate_close(void)
{
    atomic_fetch_and_explicit(&gate, ~GATE_OPEN, memory_order_seq_cst);
    while (atomic_load_explicit(&gate, memory_order_acquire) & ~GATE_OPEN)
        sched_yield();
}

static int resolve(const tel_config_t *cfg, struct tel__sched_config *sc,
                   uint32_t *max_procs)
{
    tel_config_t c = {0};
    if (cfg)
        c = *cfg;
    if (c.schedulers > 1024)
        return TEL_EINVAL;
    if (c.stack_size &&
        (c.stack_size < TEL_MIN_STACK_SIZE || c.stack_size > (256u << 20)))
        return TEL_EINVAL;
    if (c.max_processes > TEL_MAX_MAX_PROCESSES)
        return TEL_EINVAL;
    if (c.reductions > (1u << 30))
        return TEL_EINVAL;
    if (c.blocking_threads > TEL_MAX_BLOCKING_THREADS)
        return TEL_EINVAL;
    if (c.watchdog_us && (c.watchdog_us < TEL_MIN_WATCHDOG_US ||
                          c.watchdog_us > TEL_MAX_WATCHDOG_US))
        return TEL_EINVAL;
    if (c.flags & ~(TEL_CFG_NO_ASYNC_PREEMPT | TEL_CFG_NO_WATCHDOG))
        return TEL_EINVAL;
    sc->n = c.schedulers ? c.schedulers : tel__topo_nsched_default();
    sc->pin = true;
    sc->slice = c.reductions ? c.reductions : TEL_DEFAULT_REDUCTIONS;
    size_t ss = c.stack_size ? c.stack_size : TEL_DEFAULT_STACK_SIZE;
    sc->stack_size = (ss + 4095) & ~(size_t)4095;
    sc->watchdog_ns =
        (uint64_t)(c.watchdog_us ? c.watchdog_us : TEL_DEFAULT_WATCHDOG_US) *
        1000u;
    sc->watchdog = !(c.flags & TEL_CFG_NO_WATCHDOG);
    sc->async_preempt = sc->watchdog && !(c.flags & TEL_CFG_NO_ASYNC_PREEMPT);
    *max_procs = c.max_processes ? c.max_processes : TEL_DEFAULT_MAX_PROCESSES;
    return 0;
}

int tel_run(const tel_config_t *cfg, tel_fn main_fn, void *arg)
{
    if (!main_fn)
        return TEL_EINVAL;
    if (tel__sched_self())
        return TEL_EBUSY;
    bool no = false;
    if (!atomic_compare_exchange_strong(&running, &no, true))
        return TEL_EBUSY;

    struct tel__sched_config sc;
    uint32_t max_procs;
    int rc = tel__topo_init();
    if (rc)
        goto out;
    rc = resolve(cfg, &sc, &max_procs);
    if (rc)
        goto out;
    rc = tel__topo_plan(sc.n);
    if (rc)
        goto out;
    rc = tel__mem_init(sc.n);
    if (rc)
        goto out;
    rc = tel__pool_init(sc.n);
    if (rc)
        goto out_mem;
    rc = tel__stack_pool_init(sc.stack_size, sc.n);
    if (rc)
        goto out_pool;
    rc = tel__pid_init(max_procs, sc.n);
    if (rc)
        goto out_stack;
    tel__reg_init();

    struct proc *first;
    rc = tel__proc_create(-1, main_fn, arg, &first);
    if (rc)
        goto out_pid;
    first->task.flags |= PROC_MAIN;
    tel__blocking_init(cfg ? cfg->blocking_threads : 0);

    tel__rt_main_nostack = false;
    atomic_store_explicit(&sysmon_to, 0, memory_order_relaxed);
    atomic_fetch_or_explicit(&gate, GATE_OPEN, memory_order_seq_cst);
    rc = tel__sched_run(&sc, &tel__proc_hooks, &first->task);
    gate_close();
    tel__blocking_fini(); /* waits for the fns still running */
    if (rc == 0 && tel__rt_main_nostack)
        rc = TEL_ENOMEM; /* main_fn never ran */

    tel__proc_kill_all();
    tel__sched_fini();
    tel__reg_fini();
out_pid:
    tel__pid_fini();
out_stack:
    tel__stack_pool_fini();
out_pool:
    tel__pool_fini();
out_mem:
    tel__mem_fini();
out:
    atomic_store(&running, false);
    return rc;
}

unsigned tel_scheduler_count(void)
{
    struct sched *s = tel__sched_self();
    if (!s && !tel__rt_enter())
        return 0;
    unsigned n = tel__sched_count();
    if (!s)
        tel__rt_leave();
    return n;
}

/* ------------------------------------------------------------------ */
/* Introspection: schedulers, the watchdog, long_schedule               */
/* ------------------------------------------------------------------ */

int tel_sched_stats(unsigned index, tel_sched_stats_t *out)
{
    if (!out)
        return TEL_EINVAL;
    struct sched *self = tel__sched_self();
    if (!self && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    int rc = 0;
    struct sched *s = tel__sched_get(index);
    if (!s) {
        rc = TEL_EINVAL;
        goto out;
    }
    /* Each counter has one writer (its scheduler, load + store): relaxed
     * loads see whole values, each at most a little stale. */
    out->switches = atomic_load_explicit(&s->n_switches, memory_order_relaxed);
    out->steals = atomic_load_explicit(&s->n_steals, memory_order_relaxed);
    out->parks = atomic_load_explicit(&s->n_parks, memory_order_relaxed);
    out->preempt_reductions =
        atomic_load_explicit(&s->n_preempts, memory_order_relaxed);
    out->preempt_watchdog =
        atomic_load_explicit(&s->n_preempt_watchdog, memory_order_relaxed);
    out->preempt_signal =
        atomic_load_explicit(&s->n_preempt_signal, memory_order_relaxed);
    out->send_batches =
        atomic_load_explicit(&s->n_ob_opens, memory_order_relaxed);
    out->send_nudges =
        atomic_load_explicit(&s->n_ob_nudges, memory_order_relaxed);
    uint64_t id;
    tel__sysmon_record(index, &out->longest_run_ns, &id, &out->current_run_ns);
    out->longest_run_pid = (tel_pid_t)id;
    out->sample_period_ns = tel__sysmon_period_ns();
    out->blocking_threads = tel_blocking_threads();
out:
    if (!self)
        tel__rt_leave();
    return rc;
}

int tel_system_monitor(tel_pid_t to, uint32_t long_schedule_us)
{
    if (to && long_schedule_us == 0)
        return TEL_EINVAL;
    struct sched *self = tel__sched_self();
    if (!self && !tel__rt_enter())
        return TEL_ESHUTDOWN;
    int rc = 0;
    if (!tel__sysmon_enabled()) {
        rc = TEL_EINVAL; /* TEL_CFG_NO_WATCHDOG: nobody watches */
    } else {
        /* The pid first: the watchdog reports only once it has a
         * threshold, and then reads the pid it goes to. */
        atomic_store_explicit(&sysmon_to, to, memory_order_relaxed);
        (void)tel__sysmon_set_long(to ? (uint64_t)long_schedule_us * 1000u
                                      : 0);
    }
    if (!self)
        tel__rt_leave();
    return rc;
}

void tel__rt_long_run(unsigned index, uint64_t id, uint64_t ns)
{
    tel_pid_t to = atomic_load_explicit(&sysmon_to, memory_order_relaxed);
    if (!to)
        return;
    tel_long_schedule_info_t info = {
        .pid = (tel_pid_t)id,
        .run_us = ns / 1000u,
        .scheduler = index,
    };
    /* From the watchdog's thread, as from any thread outside the runtime:
     * a dead monitor drops the message; out of memory drops it too. */
    int rc = tel_send(to, TEL_TAG_LONG_SCHEDULE, &info, sizeof(info));
    (void)rc;
}
