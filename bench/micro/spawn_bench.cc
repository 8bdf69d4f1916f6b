// bench/micro/spawn_bench.cc: the cost of a process's whole life.
//
//   BM_spawn_exit/S   on S schedulers, the first process spawns children
//                     that return at once. One iteration = one spawn; every
//                     kBatch spawns (and at the end) it waits, yielding,
//                     until every child has exited, so the figure covers
//                     spawn, first run (stack from the pool), exit and
//                     release.
//
// Counter: ns_per_spawn (wall-clock, including the final wait).
//
// The runtime is started per benchmark run: tel_run's first process runs
// the timed loop, so start-up and teardown stay outside the timing. Times
// are wall-clock (UseRealTime) and CPU time is the process's, since a
// process may resume on another scheduler thread.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "telar.h"

namespace {

constexpr uint64_t kBatch = 1000;

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

[[noreturn]] void die(const char *what, int rc)
{
    std::fprintf(stderr, "spawn_bench: %s: %s\n", what, tel_strerror(rc));
    std::abort();
}

void child(void *) {}

// Yield until only the first process is alive.
void drain()
{
    while (tel_process_count() > 1)
        if (int rc = tel_yield())
            die("tel_yield", rc);
}

void spawn_main(void *arg)
{
    benchmark::State &state = *static_cast<benchmark::State *>(arg);
    uint64_t n = 0;
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        if (int rc = tel_spawn(nullptr, child, nullptr))
            die("tel_spawn", rc);
        if (++n % kBatch == 0)
            drain();
    }
    drain();
    uint64_t ns = now_ns() - t0;
    state.counters["ns_per_spawn"] = double(ns) / double(n);
}

void BM_spawn_exit(benchmark::State &state)
{
    tel_config_t cfg = {};
    cfg.schedulers = unsigned(state.range(0));
    if (int rc = tel_run(&cfg, spawn_main, &state))
        die("tel_run", rc);
}
BENCHMARK(BM_spawn_exit)
    ->ArgName("schedulers")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

} // namespace

BENCHMARK_MAIN();
