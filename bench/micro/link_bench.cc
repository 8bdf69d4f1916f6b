// bench/micro/link_bench.cc: links, monitors and exit propagation.
//
//   BM_link_unlink          one tel_link + tel_unlink pair with a live
//                           process (both sides' tables, two signals).
//   BM_monitor_demonitor    one tel_monitor + tel_demonitor(flush) pair.
//   BM_spawn_link_exit/S    spawn a linked child that exits with a reason;
//                           the caller traps exits and takes the EXIT
//                           message: spawn, exit, exit signal, delivery.
//   BM_spawn_monitor_down/S the same with a monitor and its DOWN.
//   BM_server_call/S        one tel_call round trip to a server that
//                           replies at once (the server hibernates when
//                           its mailbox is empty, so this includes its
//                           wake on a fresh stack).
//   BM_chain_kill/N         a chain of N linked processes (built outside
//                           the timing); tel_kill on its head; timed until
//                           the last one's DOWN arrives. ns_per_hop.
//
// Each checks what it receives (the EXIT or DOWN of the right process with
// the right reason) and stops with an error otherwise.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

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
    std::fprintf(stderr, "link_bench: %s: %s\n", what, tel_strerror(rc));
    std::abort();
}

void check(int rc, const char *what)
{
    if (rc)
        die(what, rc);
}

void wait_forever(void *)
{
    tel_msg_t *m = nullptr;
    int rc = tel_recv(&m, TEL_INFINITY);
    die("wait_forever: got a message", rc);
}

void exit_7(void *) { tel_exit(7); }

void run(benchmark::State &state, unsigned scheds, tel_fn fn)
{
    tel_config_t cfg = {};
    cfg.schedulers = scheds;
    check(tel_run(&cfg, fn, &state), "tel_run");
}

void link_unlink_main(void *arg)
{
    benchmark::State &state = *static_cast<benchmark::State *>(arg);
    tel_pid_t p;
    check(tel_spawn(&p, wait_forever, nullptr), "tel_spawn");
    for (auto _ : state) {
        check(tel_link(p), "tel_link");
        check(tel_unlink(p), "tel_unlink");
    }
    check(tel_kill(p, TEL_KILL), "tel_kill");
}

void BM_link_unlink(benchmark::State &state)
{
    run(state, 1, link_unlink_main);
}
BENCHMARK(BM_link_unlink)->UseRealTime();

void monitor_main(void *arg)
{
    benchmark::State &state = *static_cast<benchmark::State *>(arg);
    tel_pid_t p;
    check(tel_spawn(&p, wait_forever, nullptr), "tel_spawn");
    for (auto _ : state) {
        uint64_t ref;
        check(tel_monitor(&ref, p), "tel_monitor");
        check(tel_demonitor(ref, true), "tel_demonitor");
    }
    check(tel_kill(p, TEL_KILL), "tel_kill");
}

void BM_monitor_demonitor(benchmark::State &state)
{
    run(state, 1, monitor_main);
}
BENCHMARK(BM_monitor_demonitor)->UseRealTime();

template <typename T> T payload(tel_msg_t *m, uint64_t tag, const char *what)
{
    T v;
    if (m->tag != tag || m->size != sizeof v)
        die(what, TEL_EINVAL);
    std::memcpy(&v, m->data, sizeof v);
    return v;
}

void spawn_link_main(void *arg)
{
    benchmark::State &state = *static_cast<benchmark::State *>(arg);
    tel_trap_exit(true);
    tel_spawn_opts_t o = {};
    o.link = true;
    for (auto _ : state) {
        tel_pid_t c;
        check(tel_spawn_opt(&c, exit_7, nullptr, &o), "tel_spawn_opt");
        tel_msg_t *m;
        check(tel_recv(&m, 10000), "tel_recv");
        auto x = payload<tel_exit_info_t>(m, TEL_TAG_EXIT, "not an EXIT");
        if (x.pid != c || x.reason != 7)
            die("wrong EXIT", TEL_EINVAL);
        tel_msg_free(m);
    }
}

void BM_spawn_link_exit(benchmark::State &state)
{
    run(state, unsigned(state.range(0)), spawn_link_main);
}
BENCHMARK(BM_spawn_link_exit)->ArgName("schedulers")->Arg(1)->Arg(2)->UseRealTime();

void spawn_monitor_main(void *arg)
{
    benchmark::State &state = *static_cast<benchmark::State *>(arg);
    for (auto _ : state) {
        tel_pid_t c;
        uint64_t ref;
        tel_spawn_opts_t o = {};
        o.monitor = true;
        o.monitor_ref = &ref;
        check(tel_spawn_opt(&c, exit_7, nullptr, &o), "tel_spawn_opt");
        tel_msg_t *m;
        check(tel_recv(&m, 10000), "tel_recv");
        auto d = payload<tel_down_info_t>(m, TEL_TAG_DOWN, "not a DOWN");
        if (d.pid != c || d.ref != ref || d.reason != 7)
            die("wrong DOWN", TEL_EINVAL);
        tel_msg_free(m);
    }
}

void BM_spawn_monitor_down(benchmark::State &state)
{
    run(state, unsigned(state.range(0)), spawn_monitor_main);
}
BENCHMARK(BM_spawn_monitor_down)->ArgName("schedulers")->Arg(1)->Arg(2)->UseRealTime();

tel_reason_t echo_init(void *, void **state)
{
    *state = nullptr;
    return TEL_CONTINUE;
}

tel_reason_t echo_call(void *, tel_from_t from, uint64_t tag, const void *req,
                       size_t size)
{
    check(tel_reply(from, tag, req, size), "tel_reply");
    return TEL_CONTINUE;
}

const tel_server_ops_t echo_ops = {echo_init, echo_call, nullptr, nullptr,
                                   nullptr};

void call_main(void *arg)
{
    benchmark::State &state = *static_cast<benchmark::State *>(arg);
    tel_pid_t srv;
    check(tel_server_start(&srv, &echo_ops, nullptr), "tel_server_start");
    uint64_t i = 0;
    for (auto _ : state) {
        tel_msg_t *r;
        check(tel_call(srv, 1, &i, sizeof i, &r, 10000), "tel_call");
        uint64_t back;
        std::memcpy(&back, r->data, sizeof back);
        if (back != i++)
            die("wrong reply", TEL_EINVAL);
        tel_msg_free(r);
    }
    check(tel_kill(srv, TEL_KILL), "tel_kill");
}

void BM_server_call(benchmark::State &state)
{
    run(state, unsigned(state.range(0)), call_main);
}
BENCHMARK(BM_server_call)->ArgName("schedulers")->Arg(1)->Arg(2)->UseRealTime();

struct chain {
    uint64_t left;
    std::atomic<tel_pid_t> *tail;
};

// Links to a new next process until the chain is long enough; the last one
// reports its pid.
void link_next(void *arg)
{
    chain *c = static_cast<chain *>(arg);
    if (--c->left == 0) {
        c->tail->store(tel_self());
    } else {
        tel_spawn_opts_t o = {};
        o.link = true;
        check(tel_spawn_opt(nullptr, link_next, arg, &o), "chain spawn");
    }
    wait_forever(nullptr);
}

void chain_main(void *arg)
{
    benchmark::State &state = *static_cast<benchmark::State *>(arg);
    uint64_t n = uint64_t(state.range(0));
    uint64_t total_ns = 0, hops = 0;
    for (auto _ : state) {
        state.PauseTiming();
        std::atomic<tel_pid_t> tail{0};
        chain c = {n, &tail};
        tel_pid_t head;
        check(tel_spawn(&head, link_next, &c), "tel_spawn");
        while (tail.load() == 0)
            check(tel_yield(), "tel_yield");
        uint64_t ref;
        check(tel_monitor(&ref, tail.load()), "tel_monitor");
        state.ResumeTiming();
        uint64_t t0 = now_ns();
        check(tel_kill(head, 3), "tel_kill");
        tel_msg_t *m;
        check(tel_recv(&m, 60000), "tel_recv");
        total_ns += now_ns() - t0;
        hops += n;
        auto d = payload<tel_down_info_t>(m, TEL_TAG_DOWN, "not a DOWN");
        if (d.ref != ref || d.reason != 3)
            die("wrong DOWN at the tail", TEL_EINVAL);
        tel_msg_free(m);
    }
    state.counters["ns_per_hop"] = double(total_ns) / double(hops);
}

void BM_chain_kill(benchmark::State &state)
{
    run(state, 2, chain_main);
}
BENCHMARK(BM_chain_kill)->ArgName("n")->Arg(1000)->Arg(100000)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
