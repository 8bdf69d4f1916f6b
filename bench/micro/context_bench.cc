// bench/micro/context_bench.cc: the cost of switching, from the bare
// assembly switch up to a switch through the scheduler.
//
//   BM_raw_switch        tel__ctx_switch between the benchmark's own thread
//                        context and one fresh context, no scheduler at all.
//                        One iteration = two switches (there and back).
//   BM_yield_roundtrip   two processes on one scheduler alternating with
//                        tel_yield. One iteration = A yields to B and B
//                        yields back to A: two switches through the
//                        scheduler (pick, requeue, handoff).
//
// Counters: ns_per_switch (raw), ns_per_roundtrip (yield); the overhead of
// the scheduler is ns_per_roundtrip / (2 * ns_per_switch).
//
// The runtime benchmarks start a runtime per benchmark run: tel_run's first
// process runs the timed loop (`for (auto _ : state)`), so start-up and
// teardown stay outside the timing. Times are wall-clock (UseRealTime) and
// CPU time is the process's, since a process may resume on another
// scheduler thread.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include <sys/mman.h>

extern "C" {
#include "sched/context.h"
}
#include "telar.h"

namespace {

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

[[noreturn]] void die(const char *what, int rc)
{
    std::fprintf(stderr, "context_bench: %s: %s\n", what, tel_strerror(rc));
    std::abort();
}

// ------------------------------------------------------------------------
// BM_raw_switch

tel__ctx_t raw_main_sp, raw_co_sp;

// The other side: switch straight back, forever (a context never returns).
void raw_entry(void *, void *)
{
    for (;;)
        tel__ctx_switch(&raw_co_sp, raw_main_sp, nullptr);
}

void BM_raw_switch(benchmark::State &state)
{
    const size_t size = 64 * 1024;
    void *stack = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED) {
        state.SkipWithError("mmap failed");
        return;
    }
    raw_co_sp = tel__ctx_make(stack, size, raw_entry, nullptr);
    tel__ctx_switch(&raw_main_sp, raw_co_sp, nullptr); // start it, untimed
    uint64_t t0 = now_ns();
    for (auto _ : state)
        tel__ctx_switch(&raw_main_sp, raw_co_sp, nullptr);
    uint64_t ns = now_ns() - t0;
    // The other context stays suspended in raw_entry; its stack just goes.
    munmap(stack, size);
    state.counters["ns_per_switch"] =
        double(ns) / (2.0 * double(state.iterations()));
}
BENCHMARK(BM_raw_switch);

// ------------------------------------------------------------------------
// BM_yield_roundtrip

struct yield_run {
    benchmark::State *state;
    std::atomic<bool> stop{false};
    uint64_t b_yields = 0;
};

void yield_partner(void *arg)
{
    auto *r = static_cast<yield_run *>(arg);
    while (!r->stop.load(std::memory_order_relaxed)) {
        if (int rc = tel_yield())
            die("tel_yield", rc);
        r->b_yields++;
    }
}

void yield_main(void *arg)
{
    auto *r = static_cast<yield_run *>(arg);
    benchmark::State &state = *r->state;
    if (int rc = tel_spawn(nullptr, yield_partner, r))
        die("tel_spawn", rc);
    if (int rc = tel_yield()) // let the partner start (stack), untimed
        die("tel_yield", rc);
    uint64_t b0 = r->b_yields;
    uint64_t t0 = now_ns();
    for (auto _ : state)
        if (int rc = tel_yield())
            die("tel_yield", rc);
    uint64_t ns = now_ns() - t0;
    uint64_t b = r->b_yields - b0;
    r->stop.store(true, std::memory_order_relaxed);
    (void)tel_yield(); // the partner sees stop and exits
    // Each of our yields must have run the partner exactly once.
    if (b + 1 < uint64_t(state.iterations()) ||
        b > uint64_t(state.iterations()) + 1) {
        std::fprintf(stderr,
                     "context_bench: %llu partner yields for %llu "
                     "iterations: not alternating\n",
                     (unsigned long long)b,
                     (unsigned long long)state.iterations());
        state.SkipWithError("yields did not alternate");
        return;
    }
    state.counters["ns_per_roundtrip"] =
        double(ns) / double(state.iterations());
}

void BM_yield_roundtrip(benchmark::State &state)
{
    yield_run r;
    r.state = &state;
    tel_config_t cfg = {};
    cfg.schedulers = 1;
    if (int rc = tel_run(&cfg, yield_main, &r))
        die("tel_run", rc);
}
BENCHMARK(BM_yield_roundtrip)->UseRealTime()->MeasureProcessCPUTime();

} // namespace

BENCHMARK_MAIN();
