// bench/micro/mailbox_bench.cc: one mailbox, many senders (fan-in).
//
//   BM_mailbox_fanin/N/S   N sender processes (N = 1, 2, 4, 16, 64, 256) on
//                    S schedulers (1 or 2) all send 8-byte messages to one
//                    receiver, the first process. One iteration = one
//                    round: the receiver sends each sender a `go`, each
//                    sender sends kRound / N messages, and the receiver
//                    takes all kRound (16384) with tel_recv. The `go`
//                    messages (N per round, at most 1.6% of the traffic)
//                    are in the time. Items = messages received; counter
//                    ns_per_msg.
//   BM_mailbox_fanin_threads/T/S   the same with T plain threads (T = 1, 2,
//                    4; std::thread, not Telar processes) calling tel_send
//                    from outside the runtime, on S = 1 or 2 schedulers.
//                    Each round is started through a condition variable;
//                    the receiver sleeps in tel_recv when it runs dry, so
//                    this also pays the cross-thread wake-up of a parked
//                    scheduler. Items = messages; counter ns_per_msg.
//
// Each message carries (sender, sequence); the receiver checks that every
// sender's messages arrive complete and in order (tel_send keeps order per
// sender and receiver) and that the threads' messages have from == 0.
//
// The runtime is started per benchmark run: tel_run's first process runs
// the timed loop, so start-up, spawning the senders and teardown stay
// outside the timing. Times are wall-clock (UseRealTime) and CPU time is the
// process's, which counts every scheduler and sender thread.
#include <benchmark/benchmark.h>

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>
#include <vector>

#include "telar.h"

namespace {

constexpr uint32_t kRound = 16384; // messages per round, a multiple of 256

enum : uint64_t { TAG_GO = 1, TAG_STOP, TAG_DATA };

struct payload {
    uint32_t sender;
    uint32_t seq; // per sender, from 0, across rounds
};

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

[[noreturn]] void die(const char *what, int rc)
{
    std::fprintf(stderr, "mailbox_bench: %s: %s\n", what, tel_strerror(rc));
    std::abort();
}

void send_data(tel_pid_t to, uint32_t sender, uint32_t seq)
{
    payload p{sender, seq};
    if (int rc = tel_send(to, TAG_DATA, &p, sizeof(p)))
        die("tel_send", rc);
}

// The receiver's side of one round: take kRound messages and check each
// against its sender's next sequence number. Returns how many were wrong.
uint64_t receive_round(std::vector<uint32_t> &next, bool foreign)
{
    uint64_t wrong = 0;
    for (uint32_t i = 0; i < kRound; i++) {
        tel_msg_t *m;
        if (int rc = tel_recv(&m, TEL_INFINITY))
            die("tel_recv", rc);
        payload p;
        if (m->tag != TAG_DATA || m->size != sizeof(p) ||
            (foreign && m->from != 0)) {
            wrong++;
        } else {
            std::memcpy(&p, m->data, sizeof(p));
            if (p.sender >= next.size() || p.seq != next[p.sender]++)
                wrong++;
        }
        tel_msg_free(m);
    }
    return wrong;
}

void report(benchmark::State &state, uint64_t ns, uint64_t wrong)
{
    if (wrong) {
        std::fprintf(stderr, "mailbox_bench: %llu messages lost, foreign or "
                             "out of order\n", (unsigned long long)wrong);
        state.SkipWithError("messages lost, foreign or out of order");
        return;
    }
    double msgs = double(state.iterations()) * kRound;
    state.SetItemsProcessed(int64_t(msgs));
    state.counters["ns_per_msg"] = double(ns) / msgs;
}

tel_config_t config(unsigned schedulers)
{
    tel_config_t cfg = {};
    cfg.schedulers = schedulers;
    return cfg;
}

// ------------------------------------------------------------------------
// BM_mailbox_fanin

struct fanin_run {
    benchmark::State *state;
    uint32_t n;
    tel_pid_t receiver;
};

struct sender_arg {
    fanin_run *run;
    uint32_t index;
};

void sender(void *arg)
{
    auto *a = static_cast<sender_arg *>(arg);
    const uint32_t quota = kRound / a->run->n;
    const tel_pid_t to = a->run->receiver;
    uint32_t seq = 0;
    for (;;) {
        tel_msg_t *m;
        if (int rc = tel_recv(&m, TEL_INFINITY))
            die("tel_recv", rc);
        uint64_t tag = m->tag;
        tel_msg_free(m);
        if (tag != TAG_GO)
            return;
        for (uint32_t i = 0; i < quota; i++)
            send_data(to, a->index, seq++);
    }
}

void fanin_main(void *arg)
{
    auto *r = static_cast<fanin_run *>(arg);
    benchmark::State &state = *r->state;
    r->receiver = tel_self();
    std::vector<sender_arg> args(r->n);
    std::vector<tel_pid_t> pids(r->n);
    for (uint32_t i = 0; i < r->n; i++) {
        args[i] = {r, i};
        if (int rc = tel_spawn(&pids[i], sender, &args[i]))
            die("tel_spawn", rc);
    }
    std::vector<uint32_t> next(r->n, 0);
    uint64_t wrong = 0;
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        for (tel_pid_t p : pids)
            if (int rc = tel_send(p, TAG_GO, nullptr, 0))
                die("tel_send", rc);
        wrong += receive_round(next, false);
    }
    uint64_t ns = now_ns() - t0;
    // Every sender sent exactly its share of every round.
    for (uint32_t s : next)
        if (s != uint64_t(state.iterations()) * (kRound / r->n))
            wrong++;
    for (tel_pid_t p : pids)
        if (int rc = tel_send(p, TAG_STOP, nullptr, 0))
            die("tel_send", rc);
    report(state, ns, wrong);
}

void BM_mailbox_fanin(benchmark::State &state)
{
    fanin_run r{&state, uint32_t(state.range(0)), 0};
    tel_config_t cfg = config(unsigned(state.range(1)));
    if (int rc = tel_run(&cfg, fanin_main, &r))
        die("tel_run", rc);
}
BENCHMARK(BM_mailbox_fanin)
    ->ArgNames({"senders", "schedulers"})
    ->ArgsProduct({{1, 2, 4, 16, 64, 256}, {1, 2}})
    ->MinTime(0.3)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

// ------------------------------------------------------------------------
// BM_mailbox_fanin_threads

struct threads_run {
    benchmark::State *state;
    uint32_t n;
    tel_pid_t receiver;
    std::mutex mu;
    std::condition_variable cv;
    uint64_t round = 0; // under mu: rounds started
    bool stop = false;  // under mu
};

void thread_sender(threads_run *r, uint32_t index)
{
    const uint32_t quota = kRound / r->n;
    uint32_t seq = 0;
    uint64_t done = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lk(r->mu);
            r->cv.wait(lk, [&] { return r->stop || r->round != done; });
            if (r->stop)
                return;
            done++;
        }
        for (uint32_t i = 0; i < quota; i++)
            send_data(r->receiver, index, seq++);
    }
}

void threads_main(void *arg)
{
    auto *r = static_cast<threads_run *>(arg);
    benchmark::State &state = *r->state;
    r->receiver = tel_self();
    std::vector<std::thread> threads;
    for (uint32_t i = 0; i < r->n; i++)
        threads.emplace_back(thread_sender, r, i);
    std::vector<uint32_t> next(r->n, 0);
    uint64_t wrong = 0;
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        {
            // Held only by threads between waits: never long.
            std::lock_guard<std::mutex> lk(r->mu);
            r->round++;
        }
        r->cv.notify_all();
        wrong += receive_round(next, true);
    }
    uint64_t ns = now_ns() - t0;
    for (uint32_t s : next)
        if (s != uint64_t(state.iterations()) * (kRound / r->n))
            wrong++;
    {
        std::lock_guard<std::mutex> lk(r->mu);
        r->stop = true;
    }
    r->cv.notify_all();
    // The threads are waiting for a round that never comes: they return at
    // once. Joining blocks this scheduler briefly; nothing else runs here.
    for (std::thread &t : threads)
        t.join();
    report(state, ns, wrong);
}

void BM_mailbox_fanin_threads(benchmark::State &state)
{
    threads_run r;
    r.state = &state;
    r.n = uint32_t(state.range(0));
    tel_config_t cfg = config(unsigned(state.range(1)));
    if (int rc = tel_run(&cfg, threads_main, &r))
        die("tel_run", rc);
}
BENCHMARK(BM_mailbox_fanin_threads)
    ->ArgNames({"threads", "schedulers"})
    ->ArgsProduct({{1, 2, 4}, {1, 2}})
    ->MinTime(0.3)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

} // namespace

BENCHMARK_MAIN();
