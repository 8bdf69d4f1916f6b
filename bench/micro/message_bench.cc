// bench/micro/message_bench.cc: the cost of messages.
//
//   BM_send_receive_pingpong/S  two processes on S schedulers echo an 8-byte
//                    message. One iteration = one round trip (two sends,
//                    two receives, two wake-ups). Counter ns_per_roundtrip.
//   BM_send_self     a process sends an 8-byte message to itself and
//                    receives it: copy, enqueue, dequeue, free, no switch.
//                    Counter ns_per_op.
//   BM_selective_receive_skip_k/K  K non-matching messages wait in the
//                    caller's mailbox; one iteration sends a matching
//                    message to self and takes it with tel_recv_match,
//                    which must pass over the K others first. Counter
//                    ns_per_receive; minus BM_send_self it is the cost of
//                    the skip.
//
// The runtime is started per benchmark run: tel_run's first process runs
// the timed loop, so start-up and teardown stay outside the timing. Times
// are wall-clock (UseRealTime) and CPU time is the process's, since a
// process may resume on another scheduler thread.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "telar.h"

namespace {

enum : uint64_t { TAG_PING = 1, TAG_PONG, TAG_STOP, TAG_OTHER, TAG_WANTED };

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

[[noreturn]] void die(const char *what, int rc)
{
    std::fprintf(stderr, "message_bench: %s: %s\n", what, tel_strerror(rc));
    std::abort();
}

void send_msg(tel_pid_t to, uint64_t tag, const void *data, size_t size)
{
    if (int rc = tel_send(to, tag, data, size))
        die("tel_send", rc);
}

tel_msg_t *recv_msg()
{
    tel_msg_t *m;
    if (int rc = tel_recv(&m, TEL_INFINITY))
        die("tel_recv", rc);
    return m;
}

struct run {
    benchmark::State *state;
    int64_t k; // BM_selective_receive_skip_k only
};

void run_in_telar(benchmark::State &state, unsigned schedulers, tel_fn fn,
                  int64_t k = 0)
{
    run r{&state, k};
    tel_config_t cfg = {};
    cfg.schedulers = schedulers;
    if (int rc = tel_run(&cfg, fn, &r))
        die("tel_run", rc);
}

// ------------------------------------------------------------------------
// BM_send_receive_pingpong

void pong(void *)
{
    for (;;) {
        tel_msg_t *m = recv_msg();
        if (m->tag == TAG_STOP) {
            tel_msg_free(m);
            return;
        }
        send_msg(m->from, TAG_PONG, m->data, m->size);
        tel_msg_free(m);
    }
}

void pingpong_main(void *arg)
{
    benchmark::State &state = *static_cast<run *>(arg)->state;
    tel_pid_t peer;
    if (int rc = tel_spawn(&peer, pong, nullptr))
        die("tel_spawn", rc);
    uint64_t i = 0;
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        send_msg(peer, TAG_PING, &i, sizeof(i));
        tel_msg_t *m = recv_msg();
        uint64_t v;
        std::memcpy(&v, m->data, sizeof(v));
        tel_msg_free(m);
        if (v != i++)
            die("pingpong", TEL_EINVAL);
    }
    uint64_t ns = now_ns() - t0;
    send_msg(peer, TAG_STOP, nullptr, 0);
    state.counters["ns_per_roundtrip"] = double(ns) / double(i);
}

void BM_send_receive_pingpong(benchmark::State &state)
{
    run_in_telar(state, unsigned(state.range(0)), pingpong_main);
}
BENCHMARK(BM_send_receive_pingpong)
    ->ArgName("schedulers")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

// ------------------------------------------------------------------------
// BM_send_self

void send_self_main(void *arg)
{
    benchmark::State &state = *static_cast<run *>(arg)->state;
    tel_pid_t self = tel_self();
    uint64_t i = 0;
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        send_msg(self, TAG_PING, &i, sizeof(i));
        tel_msg_free(recv_msg());
        i++;
    }
    uint64_t ns = now_ns() - t0;
    state.counters["ns_per_op"] = double(ns) / double(i);
}

void BM_send_self(benchmark::State &state)
{
    run_in_telar(state, 1, send_self_main);
}
BENCHMARK(BM_send_self)->UseRealTime()->MeasureProcessCPUTime();

// ------------------------------------------------------------------------
// BM_selective_receive_skip_k

bool is_wanted(const tel_msg_t *m, void *)
{
    return m->tag == TAG_WANTED;
}

void skip_main(void *arg)
{
    auto *r = static_cast<run *>(arg);
    benchmark::State &state = *r->state;
    tel_pid_t self = tel_self();
    uint64_t i = 0;
    for (int64_t j = 0; j < r->k; j++)
        send_msg(self, TAG_OTHER, &i, sizeof(i));
    // Untimed: one receive that matches nothing moves the k messages from
    // the arrival queue to the saved list, where every later receive finds
    // them: the steady state of a mailbox with k old messages.
    tel_msg_t *m;
    int rc = tel_recv_match(&m, is_wanted, nullptr, 0);
    if (rc != TEL_ETIMEDOUT)
        die("tel_recv_match (no match expected)", rc);
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        send_msg(self, TAG_WANTED, &i, sizeof(i));
        if ((rc = tel_recv_match(&m, is_wanted, nullptr, TEL_INFINITY)))
            die("tel_recv_match", rc);
        tel_msg_free(m);
        i++;
    }
    uint64_t ns = now_ns() - t0;
    state.counters["ns_per_receive"] = double(ns) / double(i);
    // The k messages are freed with the process.
}

void BM_selective_receive_skip_k(benchmark::State &state)
{
    run_in_telar(state, 1, skip_main, state.range(0));
}
BENCHMARK(BM_selective_receive_skip_k)
    ->ArgName("k")
    ->Arg(0)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

} // namespace

BENCHMARK_MAIN();
