// bench/micro/selective_bench.cc: selective receive (tel_recv_match) with k
// non-matching messages waiting in the receiver's mailbox,
// k = 0, 1, 10, 100, 1000, 10000. Both benchmarks run two processes on one
// scheduler: a receiver that holds the k old messages and a sender (the
// first process, which runs the timed loop).
//
//   BM_selective_recv_after_k/k   one iteration = the sender sends one
//                    matching message and waits for the receiver's reply.
//                    The receiver is parked in tel_recv_match; it wakes,
//                    finds the match among the new arrivals, replies, and
//                    calls tel_recv_match again, which walks the k saved
//                    messages once before it parks. So the time per matching
//                    receive grows with k, by one pass over k messages per
//                    call (Erlang pays the same, short of its reference
//                    trick). Counter ns_per_receive (the whole round trip);
//                    the k = 0 row is the round trip alone.
//   BM_selective_wakeup_k/k   the save point: the receiver stays inside ONE
//                    tel_recv_match call. After it has walked its k old
//                    messages and parked, one iteration = the sender sends
//                    one more non-matching message and yields; the receiver
//                    wakes, rejects it and parks again. If each wake-up
//                    walked the k old messages again this would grow with k;
//                    the runtime keeps a save point, so it must stay flat.
//                    Counters: ns_per_wakeup, and match_per_wakeup (calls to
//                    the match function per wake-up, from the match
//                    function's own count: exactly 1 means no rescan). The
//                    run also checks that every message had its own wake-up
//                    (the receiver saw it before the next one was sent).
//                    Runs a fixed 500,000 wake-ups: every rejected message
//                    stays in the mailbox until the call ends.
//
// Every run checks what came back: the right messages matched, in order,
// and at the end the receiver drains its mailbox and finds the k old
// messages, then the rejected ones, in arrival order.
//
// The runtime is started per benchmark run: tel_run's first process runs
// the timed loop, so start-up, the k old messages and teardown stay outside
// the timing. Times are wall-clock (UseRealTime) and CPU time is the
// process's.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "telar.h"

namespace {

enum : uint64_t {
    TAG_OLD = 1, // the k messages nobody matches until the end
    TAG_NOISE,   // BM_selective_wakeup_k: rejected new arrivals
    TAG_WANTED,  // what the receiver waits for
    TAG_REPLY,   // receiver -> sender
    TAG_STOP,
};

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

[[noreturn]] void die(const char *what, int rc)
{
    std::fprintf(stderr, "selective_bench: %s: %s\n", what, tel_strerror(rc));
    std::abort();
}

void send_u64(tel_pid_t to, uint64_t tag, uint64_t v)
{
    if (int rc = tel_send(to, tag, &v, sizeof(v)))
        die("tel_send", rc);
}

uint64_t u64_of(const tel_msg_t *m)
{
    uint64_t v = 0;
    if (m->size == sizeof(v))
        std::memcpy(&v, m->data, sizeof(v));
    return v;
}

// What the two processes share. One scheduler, so plain fields would do;
// relaxed atomics say they cross processes.
struct run {
    benchmark::State *state;
    int64_t k;
    tel_pid_t sender;
    std::atomic<uint64_t> match_calls{0};
    std::atomic<uint64_t> noise_sent{0};   // by the sender
    std::atomic<uint64_t> noise_seen{0};   // by the match function
    std::atomic<uint64_t> batched{0};      // seen after a later one was sent
    std::atomic<bool> parked_once{false};  // the k old ones were walked
    bool drained_ok = false;               // written by the receiver
};

// Matches TAG_WANTED and TAG_STOP; counts its calls and checks the noise.
bool match_wanted(const tel_msg_t *m, void *ctx)
{
    auto *r = static_cast<run *>(ctx);
    uint64_t calls = r->match_calls.fetch_add(1, std::memory_order_relaxed);
    if (calls + 1 == uint64_t(r->k))
        r->parked_once.store(true, std::memory_order_relaxed);
    if (m->tag == TAG_NOISE) {
        // Seen before the sender sent the next: this arrival had its own
        // wake-up.
        uint64_t seq = u64_of(m);
        if (r->noise_sent.load(std::memory_order_relaxed) != seq + 1)
            r->batched.fetch_add(1, std::memory_order_relaxed);
        r->noise_seen.fetch_add(1, std::memory_order_relaxed);
    }
    return m->tag == TAG_WANTED || m->tag == TAG_STOP;
}

// Send k old messages to self. The receiver's first tel_recv_match walks
// them into the saved list, the steady state of a mailbox with k old
// messages.
void fill_old(run *r)
{
    tel_pid_t self = tel_self();
    for (int64_t i = 0; i < r->k; i++)
        send_u64(self, TAG_OLD, uint64_t(i));
    if (r->k == 0) // nothing to walk
        r->parked_once.store(true, std::memory_order_relaxed);
}

// The sender's side: yield until the receiver has walked its k old
// messages. On one scheduler the receiver then runs on to its park before
// the sender runs again (a receive has no preemption point until it
// returns); the receiver may need several slices to send the k.
void wait_receiver_parked(run *r)
{
    while (!r->parked_once.load(std::memory_order_relaxed))
        if (int rc = tel_yield())
            die("tel_yield", rc);
}

// Take everything left, oldest first, and check it is the k old messages
// (0..k-1) followed by n_noise noise messages (0..n_noise-1).
bool drain_and_check(int64_t k, uint64_t n_noise)
{
    bool ok = true;
    tel_msg_t *m;
    for (int64_t i = 0; i < k; i++) {
        if (int rc = tel_recv(&m, 0))
            die("tel_recv (old)", rc);
        ok &= m->tag == TAG_OLD && u64_of(m) == uint64_t(i);
        tel_msg_free(m);
    }
    for (uint64_t i = 0; i < n_noise; i++) {
        if (int rc = tel_recv(&m, 0))
            die("tel_recv (noise)", rc);
        ok &= m->tag == TAG_NOISE && u64_of(m) == i;
        tel_msg_free(m);
    }
    ok &= tel_recv(&m, 0) == TEL_ETIMEDOUT;
    return ok;
}

void run_in_telar(benchmark::State &state, tel_fn fn)
{
    run r;
    r.state = &state;
    r.k = state.range(0);
    tel_config_t cfg = {};
    cfg.schedulers = 1;
    if (int rc = tel_run(&cfg, fn, &r))
        die("tel_run", rc);
}

// ------------------------------------------------------------------------
// BM_selective_recv_after_k

void after_receiver(void *arg)
{
    auto *r = static_cast<run *>(arg);
    fill_old(r);
    uint64_t expect = 0;
    for (;;) {
        tel_msg_t *m;
        if (int rc = tel_recv_match(&m, match_wanted, r, TEL_INFINITY))
            die("tel_recv_match", rc);
        if (m->tag == TAG_STOP) {
            tel_msg_free(m);
            break;
        }
        // The wanted message, in order; the reply carries its number, or
        // ~0 to flag a wrong one.
        uint64_t v = u64_of(m);
        tel_msg_free(m);
        send_u64(r->sender, TAG_REPLY, v == expect++ ? v : ~uint64_t(0));
    }
    r->drained_ok = drain_and_check(r->k, 0);
    send_u64(r->sender, TAG_REPLY, 0);
}

void after_main(void *arg)
{
    auto *r = static_cast<run *>(arg);
    benchmark::State &state = *r->state;
    r->sender = tel_self();
    tel_pid_t rx;
    if (int rc = tel_spawn(&rx, after_receiver, r))
        die("tel_spawn", rc);
    // Untimed warm-up: the receiver fills its mailbox, walks it into the
    // saved list and parks; then it answers one request.
    wait_receiver_parked(r);
    send_u64(rx, TAG_WANTED, 0);
    tel_msg_t *m;
    if (int rc = tel_recv(&m, TEL_INFINITY))
        die("tel_recv", rc);
    tel_msg_free(m);
    uint64_t i = 1, wrong = 0;
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        send_u64(rx, TAG_WANTED, i);
        if (int rc = tel_recv(&m, TEL_INFINITY))
            die("tel_recv", rc);
        wrong += m->tag != TAG_REPLY || u64_of(m) != i;
        tel_msg_free(m);
        i++;
    }
    uint64_t ns = now_ns() - t0;
    send_u64(rx, TAG_STOP, 0);
    if (int rc = tel_recv(&m, TEL_INFINITY)) // the receiver has checked
        die("tel_recv", rc);
    tel_msg_free(m);
    if (wrong || !r->drained_ok) {
        state.SkipWithError("wrong message matched or mailbox out of order");
        return;
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.counters["ns_per_receive"] =
        double(ns) / double(state.iterations());
}

void BM_selective_recv_after_k(benchmark::State &state)
{
    run_in_telar(state, after_main);
}
BENCHMARK(BM_selective_recv_after_k)
    ->ArgName("k")
    ->Arg(0)
    ->Arg(1)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10000)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

// ------------------------------------------------------------------------
// BM_selective_wakeup_k

void wakeup_receiver(void *arg)
{
    auto *r = static_cast<run *>(arg);
    fill_old(r);
    // One call for the whole benchmark: it walks the k old ones, then parks
    // and wakes once per noise message until the wanted one comes.
    tel_msg_t *m;
    if (int rc = tel_recv_match(&m, match_wanted, r, TEL_INFINITY))
        die("tel_recv_match", rc);
    bool ok = m->tag == TAG_WANTED;
    tel_msg_free(m);
    uint64_t n_noise = r->noise_sent.load(std::memory_order_relaxed);
    r->drained_ok = ok && drain_and_check(r->k, n_noise);
    send_u64(r->sender, TAG_REPLY, 0);
}

void wakeup_main(void *arg)
{
    auto *r = static_cast<run *>(arg);
    benchmark::State &state = *r->state;
    r->sender = tel_self();
    tel_pid_t rx;
    if (int rc = tel_spawn(&rx, wakeup_receiver, r))
        die("tel_spawn", rc);
    wait_receiver_parked(r);
    uint64_t calls0 = r->match_calls.load(std::memory_order_relaxed);
    uint64_t n = 0;
    uint64_t t0 = now_ns();
    for (auto _ : state) {
        r->noise_sent.store(n + 1, std::memory_order_relaxed);
        send_u64(rx, TAG_NOISE, n);
        n++;
        if (int rc = tel_yield()) // the receiver wakes, rejects, parks
            die("tel_yield", rc);
    }
    uint64_t ns = now_ns() - t0;
    uint64_t calls = r->match_calls.load(std::memory_order_relaxed) - calls0;
    send_u64(rx, TAG_WANTED, 0);
    tel_msg_t *m;
    if (int rc = tel_recv(&m, TEL_INFINITY)) // the receiver has checked
        die("tel_recv", rc);
    tel_msg_free(m);
    uint64_t seen = r->noise_seen.load(std::memory_order_relaxed);
    uint64_t batched = r->batched.load(std::memory_order_relaxed);
    if (seen != n || calls != n || !r->drained_ok) {
        std::fprintf(stderr,
                     "selective_bench: k=%lld: %llu sent, %llu seen, %llu "
                     "match calls during the loop\n",
                     (long long)r->k, (unsigned long long)n,
                     (unsigned long long)seen, (unsigned long long)calls);
        state.SkipWithError("the save point was not kept (rescan or loss)");
        return;
    }
    if (batched) {
        std::fprintf(stderr,
                     "selective_bench: k=%lld: %llu of %llu messages "
                     "shared a wake-up\n",
                     (long long)r->k, (unsigned long long)batched,
                     (unsigned long long)n);
        state.SkipWithError("wake-ups were batched: not one per message");
        return;
    }
    state.SetItemsProcessed(int64_t(n));
    state.counters["ns_per_wakeup"] = double(ns) / double(n);
    state.counters["match_per_wakeup"] = double(calls) / double(n);
}

void BM_selective_wakeup_k(benchmark::State &state)
{
    run_in_telar(state, wakeup_main);
}
BENCHMARK(BM_selective_wakeup_k)
    ->ArgName("k")
    ->Arg(0)
    ->Arg(1)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10000)
    ->Iterations(500000)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

} // namespace

BENCHMARK_MAIN();
