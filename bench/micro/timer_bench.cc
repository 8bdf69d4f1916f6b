// bench/micro/timer_bench.cc: the cost of timers, through the public API and
// on the timer wheel itself (sched/timerwheel.c), with P timers already
// pending (P = 0, 1e3, 1e5, 1e6).
//
//   BM_send_after_cancel/P  inside a process on one scheduler, P
//                      tel_send_after timers (1 to 2 hours out) wait on the
//                      scheduler's wheel; one iteration = tel_send_after
//                      (5 s, an empty message to self) and tel_cancel_timer
//                      of that id, which must succeed. Covers the message
//                      copy, the send-timer block, the handle table and the
//                      wheel. Counter ns_per_pair.
//   BM_tw_arm_disarm/P a private wheel with P wait timers (1 ms to 1 hour
//                      out, spread at random over the levels); one iteration
//                      = tel__tw_arm of one more timer at a random deadline
//                      in the same range and tel__tw_disarm, which must find
//                      it armed. Counter ns_per_pair.
//   BM_tw_arm_expire/P a private wheel with P timers 2 to 3 hours out; one
//                      iteration = arm a timer one tick ahead, advance the
//                      (fake) clock one tick and run an expiry pass, which
//                      must fire exactly that timer. The pending timers
//                      never come due, so the pass pays only for finding
//                      the next event among them. Counter ns_per_timer.
//
// The public-API benchmark starts a runtime per benchmark run (tel_run's
// first process sets up the P timers untimed, then runs the timed loop), as
// the other micro benchmarks do. The wheel benchmarks run on the benchmark
// thread with a fake clock and wait timers (TW_WAIT), so no memory from the
// runtime's allocator is needed.
//
// The wheel benchmarks call the real tel__tw_* functions. sched/timerwheel.h
// is C11, which g++ cannot parse, so they reach them through
// internal_shim.h, which declares them with incomplete struct types;
// internal_shim.c (compiled as C, with the real headers) allocates the wheel
// and the nodes, reads the wheel's n_armed, and exports TW_TICK_SHIFT and
// TW_WAIT.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "bench/micro/internal_shim.h"
#include "telar.h"

extern "C" {
// What an expiry pass saw: how many fired, and the last one.
struct fire_log {
    uint64_t n;
    tw_node *last;
};

static void log_fire(struct tw_node *n, void *ctx)
{
    auto *log = static_cast<fire_log *>(ctx);
    log->n++;
    log->last = n;
}

// tel__tw_fini only drops handle timers; these benchmarks arm none.
static void no_drop(struct tw_node *, void *) {}
}

namespace {

constexpr uint64_t kMsNs = 1000000;
constexpr uint64_t kHourNs = 3600 * 1000 * kMsNs;
// The fake clock starts here (about 11.6 days, as after a long uptime).
constexpr uint64_t kBaseNs = uint64_t(1) << 50;

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

[[noreturn]] void die(const char *what, int rc)
{
    std::fprintf(stderr, "timer_bench: %s: %s\n", what, tel_strerror(rc));
    std::abort();
}

[[noreturn]] void out_of_memory()
{
    std::fprintf(stderr, "timer_bench: out of memory\n");
    std::abort();
}

// A 64-bit LCG: cheap, deterministic deadlines.
struct lcg {
    uint64_t x;
    uint64_t next()
    {
        x = x * 6364136223846793005u + 1442695040888963407u;
        return x >> 11;
    }
};

// A wheel on its own cache lines, set up by the real tel__tw_init and torn
// down by tel__tw_fini.
struct wheel_mem {
    timerwheel *w;

    explicit wheel_mem(uint64_t start_ns, uint32_t index = 0)
        : w(bench_tw_alloc())
    {
        if (!w)
            out_of_memory();
        tel__tw_init(w, index, start_ns);
    }
    ~wheel_mem()
    {
        tel__tw_fini(w, no_drop, nullptr);
        bench_tw_free(w);
    }
    wheel_mem(const wheel_mem &) = delete;
    wheel_mem &operator=(const wheel_mem &) = delete;
};

// n zeroed wheel nodes in one block (none when n is 0).
struct node_array {
    tw_node *base;
    size_t n;

    explicit node_array(size_t count)
        : base(bench_tw_nodes_alloc(count)), n(count)
    {
        if (count && !base)
            out_of_memory();
    }
    ~node_array() { bench_tw_nodes_free(base); }
    tw_node *at(size_t i) const { return bench_tw_node_at(base, i); }
    size_t size() const { return n; }
    node_array(const node_array &) = delete;
    node_array &operator=(const node_array &) = delete;
};

// Arm P wait timers on w at random deadlines in [lo, lo + span).
bool arm_pending(benchmark::State &state, timerwheel *w,
                 const node_array &nodes, uint64_t lo, uint64_t span)
{
    lcg r{42};
    for (size_t i = 0; i < nodes.size(); i++)
        if (tel__tw_arm(w, nodes.at(i), bench_tw_wait, lo + r.next() % span,
                        nullptr)) {
            state.SkipWithError("tel__tw_arm failed");
            return false;
        }
    if (bench_tw_n_armed(w) != nodes.size()) {
        state.SkipWithError("the wheel does not count the pending timers");
        return false;
    }
    return true;
}

// ------------------------------------------------------------------------
// BM_tw_arm_disarm

void BM_tw_arm_disarm(benchmark::State &state)
{
    wheel_mem m(kBaseNs);
    node_array pending(size_t(state.range(0)));
    if (!arm_pending(state, m.w, pending, kBaseNs + kMsNs, kHourNs))
        return;
    node_array one(1);
    tw_node *n = one.at(0);
    const uint8_t wait = bench_tw_wait;
    lcg r{7};
    uint64_t missed = 0;
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        uint64_t dl = kBaseNs + kMsNs + r.next() % kHourNs;
        if (tel__tw_arm(m.w, n, wait, dl, nullptr))
            missed++;
        if (!tel__tw_disarm(n))
            missed++;
    }
    uint64_t ns = now_ns() - t0;
    if (missed || bench_tw_n_armed(m.w) != pending.size()) {
        state.SkipWithError("arm failed or disarm found the timer gone");
        return;
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.counters["ns_per_pair"] = double(ns) / double(state.iterations());
}

// ------------------------------------------------------------------------
// BM_tw_arm_expire

void BM_tw_arm_expire(benchmark::State &state)
{
    wheel_mem m(kBaseNs);
    node_array pending(size_t(state.range(0)));
    if (!arm_pending(state, m.w, pending, kBaseNs + 2 * kHourNs, kHourNs))
        return;
    node_array one(1);
    tw_node *n = one.at(0);
    const uint8_t wait = bench_tw_wait;
    const uint64_t tick_ns = uint64_t(1) << bench_tw_tick_shift;
    fire_log log = {0, nullptr};
    uint64_t clock = kBaseNs, wrong = 0;
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        if (tel__tw_arm(m.w, n, wait, clock + tick_ns, nullptr))
            wrong++;
        clock += tick_ns;
        if (tel__tw_expire(m.w, clock, log_fire, &log) != 1 || log.last != n)
            wrong++;
        log.last = nullptr;
    }
    uint64_t ns = now_ns() - t0;
    // The fake clock must not have reached the pending timers: they would
    // have fired and the passes would have counted them.
    if (wrong || clock >= kBaseNs + 2 * kHourNs ||
        log.n != uint64_t(state.iterations()) ||
        bench_tw_n_armed(m.w) != pending.size()) {
        state.SkipWithError("an expiry pass fired the wrong timers");
        return;
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.counters["ns_per_timer"] = double(ns) / double(state.iterations());
}

// ------------------------------------------------------------------------
// BM_send_after_cancel

enum : uint64_t { TAG_PENDING = 1, TAG_BENCH };

struct cancel_run {
    benchmark::State *state;
    int64_t pending;
};

void cancel_main(void *arg)
{
    auto *r = static_cast<cancel_run *>(arg);
    benchmark::State &state = *r->state;
    tel_pid_t self = tel_self();
    lcg g{42};
    for (int64_t i = 0; i < r->pending; i++) {
        int64_t ms = 3600 * 1000 + int64_t(g.next() % (3600 * 1000));
        if (int rc = tel_send_after(nullptr, ms, self, TAG_PENDING, nullptr, 0))
            die("tel_send_after (pending)", rc);
    }
    uint64_t failed = 0;
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        uint64_t id;
        if (int rc = tel_send_after(&id, 5000, self, TAG_BENCH, nullptr, 0))
            die("tel_send_after", rc);
        if (tel_cancel_timer(id) != 0)
            failed++;
    }
    uint64_t ns = now_ns() - t0;
    // A cancelled timer never sends: the mailbox must be empty.
    tel_msg_t *m;
    if (failed || tel_recv(&m, 0) != TEL_ETIMEDOUT) {
        state.SkipWithError("a timer could not be cancelled or still fired");
        return;
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.counters["ns_per_pair"] = double(ns) / double(state.iterations());
    // The pending timers are dropped, messages and all, when tel_run ends.
}

void BM_send_after_cancel(benchmark::State &state)
{
    cancel_run r{&state, state.range(0)};
    tel_config_t cfg = {};
    cfg.schedulers = 1;
    if (int rc = tel_run(&cfg, cancel_main, &r))
        die("tel_run", rc);
}

} // namespace

BENCHMARK(BM_send_after_cancel)
    ->ArgName("pending")
    ->Arg(0)
    ->Arg(1000)
    ->Arg(100000)
    ->Arg(1000000)
    ->MinTime(0.2)
    ->UseRealTime()
    ->MeasureProcessCPUTime();
BENCHMARK(BM_tw_arm_disarm)
    ->ArgName("pending")
    ->Arg(0)
    ->Arg(1000)
    ->Arg(100000)
    ->Arg(1000000)
    ->MinTime(0.2);
BENCHMARK(BM_tw_arm_expire)
    ->ArgName("pending")
    ->Arg(0)
    ->Arg(1000)
    ->Arg(100000)
    ->Arg(1000000)
    ->MinTime(0.2);

BENCHMARK_MAIN();
