// bench/micro/runq_bench.cc: the run queue each scheduler owns
// (sched/runq.c), driven directly with stand-in tasks, no runtime.
//
//   BM_runq_push_pop/B   one thread, the owner: push B tasks, then pop
//                        them, checking FIFO order. One item = one task
//                        through the ring (a push and a pop). Counter
//                        ns_per_task.
//   BM_runq_steal/P/W    the owner pushes P tasks per pop (its own work)
//                        while a thief thread steals half of the ring into
//                        its own ring and runs what it took, as an idle
//                        scheduler does. Running a task costs W rounds of a
//                        multiply chain (about 1.5 ns each here) on either
//                        side: W = 0 is the worst case for the ring (the
//                        owner's pops race every steal), W = 256 is closer
//                        to real processes. One iteration = P pushes and
//                        one pop by the owner. Items = tasks run by either
//                        side; counter tasks_per_s is the same rate. Also
//                        stolen_pct (share the thief ran), per_steal (tasks
//                        per successful steal) and ring_full (pushes
//                        refused: the owner then runs a task itself and the
//                        new task is not made).
//
// The ring stores only task addresses and never dereferences them.
// BM_runq_push_pop pushes real (zeroed) struct tasks from the shim; the
// steal benchmark's tasks are fake, each a small flag word of its own that
// proves every pushed task runs exactly once.
//
// The benchmarks call the real tel__runq_* functions. sched/runq.h is C11,
// which g++ cannot parse, so they reach them through internal_shim.h, which
// declares them with incomplete struct types; internal_shim.c (compiled as
// C, with the real headers) allocates the rings and the tasks and exports
// RUNQ_CAP.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <thread>
#include <vector>

#include "bench/micro/internal_shim.h"

namespace {

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

[[noreturn]] void out_of_memory()
{
    std::fprintf(stderr, "runq_bench: out of memory\n");
    std::abort();
}

// A ring on its own cache lines, initialised by the real tel__runq_init.
struct ring_mem {
    runq *q;

    ring_mem() : q(bench_runq_alloc())
    {
        if (!q)
            out_of_memory();
        tel__runq_init(q);
    }
    ~ring_mem() { bench_runq_free(q); }
    ring_mem(const ring_mem &) = delete;
    ring_mem &operator=(const ring_mem &) = delete;
};

// ------------------------------------------------------------------------
// BM_runq_push_pop

void BM_runq_push_pop(benchmark::State &state)
{
    const uint32_t b = uint32_t(state.range(0));
    ring_mem m;
    // Real tasks (zeroed; the ring never reads them), their addresses taken
    // before the timing so the loop pays no call to find them.
    task *block = bench_tasks_alloc(b);
    if (!block)
        out_of_memory();
    std::vector<task *> tasks(b);
    for (uint32_t i = 0; i < b; i++)
        tasks[i] = bench_task_at(block, i);
    uint64_t bad = 0;
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        for (uint32_t i = 0; i < b; i++)
            if (!tel__runq_push(m.q, tasks[i]))
                bad++;
        for (uint32_t i = 0; i < b; i++)
            if (tel__runq_pop(m.q) != tasks[i])
                bad++;
    }
    uint64_t ns = now_ns() - t0;
    bool lost = bad || tel__runq_pop(m.q) != nullptr;
    bench_tasks_free(block);
    if (lost) {
        state.SkipWithError("ring lost, reordered or refused tasks");
        return;
    }
    state.SetItemsProcessed(int64_t(state.iterations()) * b);
    state.counters["ns_per_task"] =
        double(ns) / (double(state.iterations()) * b);
}
BENCHMARK(BM_runq_push_pop)->ArgName("batch")->Arg(1)->Arg(16)->Arg(256);

// ------------------------------------------------------------------------
// BM_runq_steal

// A fake task: queued is 1 from its push until it runs. Running it swaps
// in 0; finding 0 there means it ran twice.
struct alignas(8) fake_task {
    std::atomic<uint32_t> queued{0};
};

// More tasks than can be in flight (RUNQ_CAP in the owner's ring, half of
// that in the thief's, one running on each side), so the owner always finds
// a free one soon.
constexpr uint32_t kPool = 4096;

struct steal_run {
    uint32_t work; // multiply rounds per task run
    runq *victim;
    runq *mine; // the thief's own ring
    fake_task pool[kPool];
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> twice{0};
    uint64_t thief_ran = 0; // written by the thief, read after join
    uint64_t steals = 0;
};

inline void run_task(steal_run &r, task *t)
{
    uint64_t x = uintptr_t(t);
    for (uint32_t i = 0; i < r.work; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        benchmark::DoNotOptimize(x);
    }
    auto *f = reinterpret_cast<fake_task *>(t);
    if (f->queued.exchange(0, std::memory_order_relaxed) != 1)
        r.twice.fetch_add(1, std::memory_order_relaxed);
}

void thief(steal_run *r)
{
    uint64_t ran = 0, steals = 0;
    while (!r->stop.load(std::memory_order_relaxed)) {
        task *t = tel__runq_steal(r->victim, r->mine);
        if (!t) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            continue;
        }
        steals++;
        run_task(*r, t);
        ran++;
        while ((t = tel__runq_pop(r->mine))) {
            run_task(*r, t);
            ran++;
        }
    }
    r->thief_ran = ran;
    r->steals = steals;
}

void BM_runq_steal(benchmark::State &state)
{
    // The pool must outlast every task in flight, or the owner would spin
    // looking for a free one.
    if (kPool <= bench_runq_cap + bench_runq_cap / 2 + 2) {
        state.SkipWithError("kPool is too small for RUNQ_CAP: raise it");
        return;
    }
    const uint32_t per_pop = uint32_t(state.range(0));
    ring_mem victim, mine;
    auto *r = new steal_run;
    r->work = uint32_t(state.range(1));
    r->victim = victim.q;
    r->mine = mine.q;
    std::thread th(thief, r);

    uint64_t pushed = 0, owner_ran = 0, full = 0;
    uint32_t next = 0;
    auto run_own = [&] {
        if (task *t = tel__runq_pop(r->victim)) {
            run_task(*r, t);
            owner_ran++;
        }
    };
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        for (uint32_t i = 0; i < per_pop; i++) {
            fake_task *f;
            do // skip tasks still queued or running
                f = &r->pool[next++ & (kPool - 1)];
            while (f->queued.load(std::memory_order_relaxed));
            f->queued.store(1, std::memory_order_relaxed);
            if (tel__runq_push(r->victim, reinterpret_cast<task *>(f))) {
                pushed++;
            } else {
                // Full: a scheduler moves half elsewhere; here the owner
                // runs one of its own and the task is not made.
                f->queued.store(0, std::memory_order_relaxed);
                full++;
                run_own();
            }
        }
        run_own();
    }
    uint64_t ns = now_ns() - t0;
    r->stop.store(true, std::memory_order_relaxed);
    th.join();
    while (task *t = tel__runq_pop(r->victim)) { // untimed leftovers
        run_task(*r, t);
        owner_ran++;
    }
    uint64_t ran = owner_ran + r->thief_ran;
    uint64_t twice = r->twice.load();
    uint64_t thief_ran = r->thief_ran, steals = r->steals;
    delete r;
    if (twice || ran != pushed) {
        std::fprintf(stderr,
                     "runq_bench: pushed %llu, ran %llu, %llu ran twice\n",
                     (unsigned long long)pushed, (unsigned long long)ran,
                     (unsigned long long)twice);
        state.SkipWithError("tasks lost or run twice");
        return;
    }
    state.SetItemsProcessed(int64_t(ran));
    state.counters["stolen_pct"] =
        ran ? 100.0 * double(thief_ran) / double(ran) : 0.0;
    state.counters["per_steal"] =
        steals ? double(thief_ran) / double(steals) : 0.0;
    state.counters["ring_full"] = double(full);
    state.counters["tasks_per_s"] =
        ns ? double(pushed) * 1e9 / double(ns) : 0.0;
}
BENCHMARK(BM_runq_steal)
    ->ArgNames({"push_per_pop", "work"})
    ->ArgsProduct({{1, 2, 4}, {0, 256}})
    ->UseRealTime();

} // namespace

BENCHMARK_MAIN();
