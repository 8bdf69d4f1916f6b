/*
 * tests/core/link_test.c: links, monitors, exit signals, trap_exit and
 * tel_kill, with Erlang's semantics (the cases follow OTP's monitor_SUITE
 * and the exit-signal rules of the Erlang reference manual). Black-box.
 */
#include "common.h"

enum { TAG_GO = 1, TAG_PID, TAG_DATA, TAG_READY };

static tel_config_t two = {.schedulers = 2};

/* ------------------------------------------------------------------------ */
/* Helpers (inside processes)                                               */
/* ------------------------------------------------------------------------ */

static bool is_tag(const tel_msg_t *m, void *ctx)
{
    return m->tag == *(const uint64_t *)ctx;
}

/* The next message with tag, or NULL (and a failed check) on timeout. */
static tel_msg_t *recv_tag(uint64_t tag, int64_t timeout_ms)
{
    tel_msg_t *m = NULL;
    int rc = tel_recv_match(&m, is_tag, &tag, timeout_ms);
    TT_CHECK(rc == 0, "no message with tag %" PRIx64 " (%s)", tag,
             tel_errname(rc));
    return m;
}

/* Whether a message with tag arrives within timeout_ms (it is freed). */
static bool got_tag(uint64_t tag, int64_t timeout_ms)
{
    tel_msg_t *m = NULL;
    int rc = tel_recv_match(&m, is_tag, &tag, timeout_ms);
    tel_msg_free(m);
    return rc == 0;
}

static tel_down_info_t down_of(const tel_msg_t *m)
{
    tel_down_info_t d = {0};
    if (TT_CHECK(m && m->tag == TEL_TAG_DOWN && m->size == sizeof d,
                 "not a DOWN message"))
        memcpy(&d, m->data, sizeof d);
    return d;
}

static tel_exit_info_t exit_of(const tel_msg_t *m)
{
    tel_exit_info_t x = {0};
    if (TT_CHECK(m && m->tag == TEL_TAG_EXIT && m->size == sizeof x,
                 "not an EXIT message"))
        memcpy(&x, m->data, sizeof x);
    return x;
}

/* Wait for the DOWN of ref and give its reason (INT64_MIN if none came). */
static tel_reason_t await_down(uint64_t ref, int64_t timeout_ms)
{
    int64_t deadline = tt_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - tt_now_ms();
        uint64_t tag = TEL_TAG_DOWN;
        tel_msg_t *m = NULL;
        if (tel_recv_match(&m, is_tag, &tag, left > 0 ? left : 0) != 0) {
            TT_FAIL("no DOWN for ref %" PRIu64, ref);
            return INT64_MIN;
        }
        tel_down_info_t d = down_of(m);
        tel_msg_free(m);
        if (d.ref == ref)
            return d.reason;
    }
}

static tel_pid_t spawn_mon(tel_fn fn, void *arg, uint64_t *ref)
{
    tel_pid_t pid = 0;
    tel_spawn_opts_t o = {.monitor = true, .monitor_ref = ref};
    TT_CHECK_RC(tel_spawn_opt(&pid, fn, arg, &o), 0, "tel_spawn_opt monitor");
    return pid;
}

static void wait_forever(void *arg)
{
    (void)arg;
    tel_msg_t *m = NULL;
    int rc = tel_recv_match(&m, is_tag, &(uint64_t){0xdead}, TEL_INFINITY);
    TT_FAIL("wait_forever returned %d", rc);
}

static void exit_with(void *arg)
{
    tel_exit((tel_reason_t)(intptr_t)arg);
}

/* Links to the pid it is sent, tells the sender, then waits forever. */
static void link_then_wait(void *arg)
{
    (void)arg;
    tel_msg_t *m = recv_tag(TAG_PID, 5000);
    if (!m)
        return;
    tel_pid_t to = tt_msg_u64(m);
    tel_pid_t from = m->from;
    tel_msg_free(m);
    TT_CHECK_RC(tel_link(to), 0, "tel_link");
    tt_send_tag(from, TAG_READY);
    wait_forever(NULL);
}

/* ------------------------------------------------------------------------ */
/* Links                                                                     */
/* ------------------------------------------------------------------------ */

static void abnormal_kills_main(void *arg)
{
    (void)arg;
    uint64_t ra, rb;
    tel_pid_t a = spawn_mon(link_then_wait, NULL, &ra);
    tel_pid_t b = spawn_mon(wait_forever, NULL, &rb);
    tt_send_u64(a, TAG_PID, b);
    if (!got_tag(TAG_READY, 5000))
        TT_FAIL("a did not link");
    TT_CHECK_RC(tel_kill(b, 42), 0, "tel_kill");
    TT_CHECK(await_down(rb, 5000) == 42, "b's reason");
    TT_CHECK(await_down(ra, 5000) == 42, "a should die with b's reason");
}

Test(link, abnormal_exit_kills_the_linked_process)
{
    TT_RUN(&two, abnormal_kills_main, NULL);
}

static void normal_exit_main(void *arg)
{
    (void)arg;
    uint64_t ra, rb;
    tel_pid_t a = spawn_mon(link_then_wait, NULL, &ra);
    tel_pid_t b = spawn_mon(tt_wait_one_fn, NULL, &rb);
    tt_send_u64(a, TAG_PID, b);
    if (!got_tag(TAG_READY, 5000))
        TT_FAIL("a did not link");
    tt_send_tag(b, TAG_GO); /* b returns: TEL_NORMAL */
    TT_CHECK(await_down(rb, 5000) == TEL_NORMAL, "b's reason");
    TT_CHECK(!got_tag(TEL_TAG_DOWN, 100), "a died of a normal exit");
    TT_CHECK(tel_is_alive(a), "a should live");
    TT_CHECK_RC(tel_kill(a, TEL_KILL), 0, "kill a");
    TT_CHECK(await_down(ra, 5000) == TEL_KILLED, "a's reason");
}

Test(link, normal_exit_does_not_kill_the_linked_process)
{
    TT_RUN(&two, normal_exit_main, NULL);
}

static void trap_main(void *arg)
{
    (void)arg;
    TT_CHECK(!tel_trap_exit(true), "trap_exit was on");
    TT_CHECK(tel_trap_exit(true), "trap_exit did not stay on");
    tel_pid_t c1, c2;
    tel_spawn_opts_t o = {.link = true};
    TT_CHECK_RC(tel_spawn_opt(&c1, exit_with, (void *)(intptr_t)7, &o), 0,
                "spawn_link 1");
    TT_CHECK_RC(tel_spawn_opt(&c2, tt_return_fn, NULL, &o), 0,
                "spawn_link 2");
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        tel_msg_t *m = recv_tag(TEL_TAG_EXIT, 5000);
        if (!m)
            return;
        tel_exit_info_t x = exit_of(m);
        TT_CHECK(m->from == x.pid, "from %" PRIx64 " pid %" PRIx64, m->from,
                 x.pid);
        if (x.pid == c1)
            TT_CHECK(x.reason == 7, "c1's reason %" PRId64, x.reason), seen++;
        else if (x.pid == c2)
            TT_CHECK(x.reason == TEL_NORMAL, "c2's reason"), seen++;
        else
            TT_FAIL("EXIT from a stranger");
        tel_msg_free(m);
    }
    TT_CHECK(seen == 2, "both EXITs");
    TT_CHECK(tel_trap_exit(false), "trap_exit was off");
}

Test(link, a_trapping_process_gets_exit_messages)
{
    TT_RUN(&two, trap_main, NULL);
}

/* P traps and links to Q (Q does not trap); P then exits with 5: Q dies. */
static void trapper_links_then_exits(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_msg_t *m = recv_tag(TAG_PID, 5000);
    if (!m)
        return;
    tel_pid_t q = tt_msg_u64(m);
    tel_msg_free(m);
    TT_CHECK_RC(tel_link(q), 0, "tel_link");
    tel_exit(5);
}

static void both_ways_main(void *arg)
{
    (void)arg;
    uint64_t rp, rq;
    tel_pid_t q = spawn_mon(wait_forever, NULL, &rq);
    tel_pid_t p = spawn_mon(trapper_links_then_exits, NULL, &rp);
    tt_send_u64(p, TAG_PID, q);
    TT_CHECK(await_down(rp, 5000) == 5, "p's reason");
    TT_CHECK(await_down(rq, 5000) == 5, "q dies through the link p made");
}

Test(link, links_are_bidirectional)
{
    TT_RUN(&two, both_ways_main, NULL);
}

static void trap_forever(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    wait_forever(NULL);
}

static void kill_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    uint64_t r;
    tel_pid_t t = spawn_mon(trap_forever, NULL, &r);
    TT_CHECK_RC(tel_link(t), 0, "tel_link");
    TT_CHECK_RC(tel_kill(t, TEL_KILL), 0, "tel_kill KILL");
    TT_CHECK(await_down(r, 5000) == TEL_KILLED, "KILL is not trappable");
    tel_msg_t *m = recv_tag(TEL_TAG_EXIT, 5000);
    if (m) {
        tel_exit_info_t x = exit_of(m);
        TT_CHECK(x.pid == t && x.reason == TEL_KILLED,
                 "linked processes see killed, got %" PRId64, x.reason);
        tel_msg_free(m);
    }
}

Test(link, kill_cannot_be_trapped_and_links_see_killed)
{
    TT_RUN(&two, kill_main, NULL);
}

static void kill_rules_main(void *arg)
{
    (void)arg;
    uint64_t r1, r2, r3;
    tel_pid_t plain = spawn_mon(wait_forever, NULL, &r1);
    tel_pid_t trapper = spawn_mon(trap_forever, NULL, &r2);
    tel_pid_t other = spawn_mon(wait_forever, NULL, &r3);
    (void)tel_yield(); /* let trapper set its flag */
    TT_CHECK_RC(tel_kill(plain, TEL_NORMAL), 0, "kill normal");
    TT_CHECK(!got_tag(TEL_TAG_DOWN, 100), "normal killed a process");
    TT_CHECK(tel_is_alive(plain), "normal exit signal ignored");
    TT_CHECK_RC(tel_kill(plain, 3), 0, "kill 3");
    TT_CHECK(await_down(r1, 5000) == 3, "plain dies with the reason");
    TT_CHECK_RC(tel_kill(trapper, 3), 0, "kill trapper 3");
    TT_CHECK(!got_tag(TEL_TAG_DOWN, 100), "a trapper died of an exit signal");
    TT_CHECK_RC(tel_kill(trapper, TEL_KILL), 0, "kill trapper");
    TT_CHECK(await_down(r2, 5000) == TEL_KILLED, "trapper killed");
    TT_CHECK_RC(tel_kill(plain, 3), 0, "kill of a dead pid is fine");
    TT_CHECK_RC(tel_kill(other, TEL_SHUTDOWN), 0, "kill shutdown");
    TT_CHECK(await_down(r3, 5000) == TEL_SHUTDOWN, "shutdown reason");
}

Test(link, tel_kill_follows_exit2_rules)
{
    TT_RUN(&two, kill_rules_main, NULL);
}

/* A trapper that reports the EXIT messages it gets. */
static void trap_report(void *arg)
{
    tel_pid_t boss = (tel_pid_t)(uintptr_t)arg;
    (void)tel_trap_exit(true);
    tt_send_tag(boss, TAG_READY);
    tel_msg_t *m = recv_tag(TEL_TAG_EXIT, 5000);
    if (!m)
        return;
    tel_exit_info_t x = exit_of(m);
    tt_send_u64(boss, TAG_DATA, (uint64_t)x.reason);
    TT_CHECK(x.pid == boss && m->from == boss, "EXIT's pid");
    tel_msg_free(m);
    wait_forever(NULL);
}

static void kill_trapped_main(void *arg)
{
    (void)arg;
    uint64_t r;
    tel_pid_t t = spawn_mon(trap_report, (void *)(uintptr_t)tel_self(), &r);
    if (!got_tag(TAG_READY, 5000))
        TT_FAIL("not ready");
    TT_CHECK_RC(tel_kill(t, TEL_NORMAL), 0, "kill normal");
    tel_msg_t *m = recv_tag(TAG_DATA, 5000);
    TT_CHECK(m && tt_msg_u64(m) == (uint64_t)TEL_NORMAL,
             "a trapper gets normal as a message");
    tel_msg_free(m);
    TT_CHECK_RC(tel_kill(t, TEL_KILL), 0, "kill");
    TT_CHECK(await_down(r, 5000) == TEL_KILLED, "reason");
}

Test(link, a_trapper_gets_exit_signals_as_messages)
{
    TT_RUN(&two, kill_trapped_main, NULL);
}

static void self_normal(void *arg)
{
    (void)arg;
    (void)tel_kill(tel_self(), TEL_NORMAL);
    TT_FAIL("tel_kill(self, normal) returned");
}

static void self_trapped(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    TT_CHECK_RC(tel_kill(tel_self(), 9), 0, "kill self while trapping");
    tel_msg_t *m = recv_tag(TEL_TAG_EXIT, 1000);
    if (m) {
        tel_exit_info_t x = exit_of(m);
        TT_CHECK(x.pid == tel_self() && x.reason == 9, "self EXIT");
        tel_msg_free(m);
    }
    (void)tel_kill(tel_self(), TEL_KILL);
    TT_FAIL("tel_kill(self, KILL) returned");
}

static void self_main(void *arg)
{
    (void)arg;
    uint64_t r1, r2;
    spawn_mon(self_normal, NULL, &r1);
    TT_CHECK(await_down(r1, 5000) == TEL_NORMAL, "exit(self(), normal)");
    spawn_mon(self_trapped, NULL, &r2);
    TT_CHECK(await_down(r2, 5000) == TEL_KILLED, "self kill");
}

Test(link, killing_oneself)
{
    TT_RUN(&two, self_main, NULL);
}

static void link_dead_plain(void *arg)
{
    (void)tel_link((tel_pid_t)(uintptr_t)arg);
    TT_FAIL("tel_link to a dead pid returned in a process not trapping");
}

static void link_dead_main(void *arg)
{
    (void)arg;
    tel_pid_t dead;
    uint64_t r;
    spawn_mon(tt_return_fn, NULL, &r);
    TT_CHECK_RC(tel_spawn(&dead, tt_return_fn, NULL), 0, "spawn");
    TT_CHECK(tt_await_dead(dead, 5000), "dead");
    TT_CHECK(await_down(r, 5000) == TEL_NORMAL, "first");
    uint64_t r2;
    spawn_mon(link_dead_plain, (void *)(uintptr_t)dead, &r2);
    TT_CHECK(await_down(r2, 5000) == TEL_NOPROC, "linking to dead kills");
    (void)tel_trap_exit(true);
    TT_CHECK_RC(tel_link(dead), 0, "tel_link dead while trapping");
    tel_msg_t *m = recv_tag(TEL_TAG_EXIT, 1000);
    if (m) {
        tel_exit_info_t x = exit_of(m);
        TT_CHECK(x.pid == dead && x.reason == TEL_NOPROC, "noproc EXIT");
        tel_msg_free(m);
    }
}

Test(link, linking_to_a_dead_pid_gives_noproc)
{
    TT_RUN(&two, link_dead_main, NULL);
}

static void unlink_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    uint64_t r;
    tel_pid_t c;
    tel_spawn_opts_t o = {.link = true, .monitor = true, .monitor_ref = &r};
    TT_CHECK_RC(tel_spawn_opt(&c, tt_wait_one_fn, NULL, &o), 0, "spawn");
    TT_CHECK_RC(tel_unlink(c), 0, "unlink");
    TT_CHECK_RC(tel_unlink(c), 0, "unlink twice");
    TT_CHECK_RC(tel_kill(c, 4), 0, "kill");
    TT_CHECK(await_down(r, 5000) == 4, "reason");
    TT_CHECK(!got_tag(TEL_TAG_EXIT, 100), "EXIT after unlink");
}

Test(link, no_exit_signal_after_unlink)
{
    TT_RUN(&two, unlink_main, NULL);
}

/* Sends n messages to its boss, then exits with 11. */
static void send_then_die(void *arg)
{
    tel_pid_t boss = (tel_pid_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < 100; i++)
        tt_send_u64(boss, TAG_DATA, i);
    tel_exit(11);
}

static void order_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t c;
    tel_spawn_opts_t o = {.link = true};
    TT_CHECK_RC(tel_spawn_opt(&c, send_then_die, (void *)(uintptr_t)tel_self(),
                              &o),
                0, "spawn");
    for (uint64_t i = 0; i < 101; i++) {
        tel_msg_t *m = NULL;
        if (!TT_CHECK_RC(tel_recv(&m, 5000), 0, "recv"))
            return;
        if (i < 100)
            TT_CHECK(m->tag == TAG_DATA && tt_msg_u64(m) == i,
                     "message %" PRIu64 " out of order", i);
        else
            TT_CHECK(m->tag == TEL_TAG_EXIT && exit_of(m).reason == 11,
                     "EXIT must come after the messages");
        tel_msg_free(m);
    }
}

Test(link, exit_signal_keeps_order_with_messages)
{
    TT_RUN(&two, order_main, NULL);
}

static void busy_loop(void *arg)
{
    (void)arg;
    for (;;)
        (void)tel_reduce(1);
}

static void sleeper(void *arg)
{
    (void)arg;
    (void)tel_sleep(600000);
    TT_FAIL("sleeper woke");
}

static void hib_wake(void *arg)
{
    (void)arg;
    TT_FAIL("a signal alone must not run the hibernated function");
}

static void hibernator(void *arg)
{
    (void)arg;
    (void)tel_hibernate(hib_wake, NULL);
}

static void kill_anywhere_main(void *arg)
{
    (void)arg;
    tel_fn fns[] = {busy_loop, sleeper, hibernator};
    for (int i = 0; i < 3; i++) {
        uint64_t r;
        tel_pid_t p = spawn_mon(fns[i], NULL, &r);
        TT_CHECK(!got_tag(TEL_TAG_DOWN, 20), "died early");
        if (i == 2) { /* a link request reaches it, then the signal */
            TT_CHECK_RC(tel_link(p), 0, "link to a hibernated process");
            (void)tel_trap_exit(true);
        }
        TT_CHECK_RC(tel_kill(p, 77), 0, "kill");
        TT_CHECK(await_down(r, 5000) == 77, "process %d killed", i);
    }
    tel_msg_t *m = recv_tag(TEL_TAG_EXIT, 5000);
    TT_CHECK(m && exit_of(m).reason == 77, "the hibernated one was linked");
    tel_msg_free(m);
}

Test(link, exit_signals_reach_busy_sleeping_and_hibernated_processes)
{
    TT_RUN(&two, kill_anywhere_main, NULL);
}

/* A chain: each links to the next and waits. */
static void chain_link(void *arg)
{
    uintptr_t left = (uintptr_t)arg;
    if (left > 1) {
        tel_pid_t next;
        tel_spawn_opts_t o = {.link = true};
        TT_CHECK_RC(tel_spawn_opt(&next, chain_link, (void *)(left - 1), &o),
                    0, "spawn");
    }
    wait_forever(NULL);
}

static void chain_main(void *arg)
{
    size_t n = *(size_t *)arg;
    uint64_t r;
    tel_pid_t head = spawn_mon(chain_link, (void *)(uintptr_t)n, &r);
    TT_CHECK(tt_await_count((uint32_t)n + 1, 20000), "chain built");
    TT_CHECK_RC(tel_kill(head, 9), 0, "kill");
    TT_CHECK(await_down(r, 5000) == 9, "head");
    TT_CHECK(tt_await_count(1, 20000), "the whole chain died, %u left",
             tel_process_count());
}

Test(link, an_exit_runs_down_a_chain_of_links)
{
    size_t n = tel_test_scaled(10000, 500);
    TT_RUN(&two, chain_main, &n);
}

/* ------------------------------------------------------------------------ */
/* Monitors                                                                  */
/* ------------------------------------------------------------------------ */

static void mon_once_main(void *arg)
{
    (void)arg;
    tel_pid_t p;
    TT_CHECK_RC(tel_spawn(&p, tt_wait_one_fn, NULL), 0, "spawn");
    uint64_t r1 = 0, r2 = 0;
    TT_CHECK_RC(tel_monitor(&r1, p), 0, "monitor 1");
    TT_CHECK_RC(tel_monitor(&r2, p), 0, "monitor 2");
    TT_CHECK(r1 && r2 && r1 != r2, "two monitors, two refs");
    tt_send_tag(p, TAG_GO);
    int got1 = 0, got2 = 0;
    for (int i = 0; i < 2; i++) {
        tel_msg_t *m = recv_tag(TEL_TAG_DOWN, 5000);
        if (!m)
            return;
        tel_down_info_t d = down_of(m);
        TT_CHECK(d.pid == p && m->from == p && d.reason == TEL_NORMAL,
                 "DOWN fields");
        got1 += d.ref == r1;
        got2 += d.ref == r2;
        tel_msg_free(m);
    }
    TT_CHECK(got1 == 1 && got2 == 1, "one DOWN per monitor");
    TT_CHECK(!got_tag(TEL_TAG_DOWN, 100), "an extra DOWN");
}

Test(monitor, exactly_one_down_per_monitor)
{
    TT_RUN(&two, mon_once_main, NULL);
}

static void mon_dead_main(void *arg)
{
    (void)arg;
    tel_pid_t p;
    TT_CHECK_RC(tel_spawn(&p, tt_return_fn, NULL), 0, "spawn");
    TT_CHECK(tt_await_dead(p, 5000), "dead");
    uint64_t r;
    TT_CHECK_RC(tel_monitor(&r, p), 0, "monitor dead");
    tel_msg_t *m = recv_tag(TEL_TAG_DOWN, 0); /* already there */
    if (m) {
        tel_down_info_t d = down_of(m);
        TT_CHECK(d.ref == r && d.pid == p && d.reason == TEL_NOPROC,
                 "noproc DOWN");
        tel_msg_free(m);
    }
    TT_CHECK_RC(tel_demonitor(r, false), TEL_ENOENT, "demonitor fired");
}

Test(monitor, monitoring_a_dead_pid_gives_noproc_at_once)
{
    TT_RUN(&two, mon_dead_main, NULL);
}

static void demon_main(void *arg)
{
    (void)arg;
    tel_pid_t p;
    TT_CHECK_RC(tel_spawn(&p, tt_wait_one_fn, NULL), 0, "spawn");
    uint64_t r, r2;
    TT_CHECK_RC(tel_monitor(&r, p), 0, "monitor");
    TT_CHECK_RC(tel_monitor(&r2, p), 0, "monitor 2");
    TT_CHECK_RC(tel_demonitor(r, false), 0, "demonitor");
    TT_CHECK_RC(tel_demonitor(r, false), TEL_ENOENT, "demonitor twice");
    tt_send_tag(p, TAG_GO);
    TT_CHECK(await_down(r2, 5000) == TEL_NORMAL, "the other monitor fires");
    TT_CHECK(!got_tag(TEL_TAG_DOWN, 100), "DOWN after demonitor");

    /* flush: a DOWN already queued goes too. */
    TT_CHECK_RC(tel_spawn(&p, tt_return_fn, NULL), 0, "spawn");
    TT_CHECK_RC(tel_monitor(&r, p), 0, "monitor");
    TT_CHECK(tt_await_dead(p, 5000), "dead");
    tel_sleep(20);
    int rc = tel_demonitor(r, true);
    TT_CHECK(rc == 0 || rc == TEL_ENOENT, "demonitor flush: %d", rc);
    TT_CHECK(!got_tag(TEL_TAG_DOWN, 100), "flush left a DOWN");
    TT_CHECK_RC(tel_demonitor(12345, false), TEL_ENOENT, "unknown ref");
    TT_CHECK_RC(tel_demonitor(0, true), TEL_ENOENT, "ref 0");
}

Test(monitor, no_down_after_demonitor_and_flush_removes_one_queued)
{
    TT_RUN(&two, demon_main, NULL);
}

/* Each of n monitors from one process on short-lived ones fires exactly
 * once, with the real reason or noproc, however the exit races it. */
static void mon_race_main(void *arg)
{
    size_t n = *(size_t *)arg;
    for (size_t i = 0; i < n; i++) {
        tel_pid_t p;
        TT_CHECK_RC(tel_spawn(&p, exit_with, (void *)(intptr_t)5), 0, "spawn");
        uint64_t r;
        if (!TT_CHECK_RC(tel_monitor(&r, p), 0, "monitor"))
            return;
        tel_reason_t why = await_down(r, 5000);
        TT_CHECK(why == 5 || why == TEL_NOPROC, "reason %" PRId64, why);
    }
    TT_CHECK(!got_tag(TEL_TAG_DOWN, 50), "an extra DOWN");
}

Test(monitor, racing_exits_give_exactly_one_down)
{
    size_t n = tel_test_scaled(5000, 300);
    TT_RUN(&two, mon_race_main, &n);
}

static void link_race_main(void *arg)
{
    size_t n = *(size_t *)arg;
    (void)tel_trap_exit(true);
    for (size_t i = 0; i < n; i++) {
        tel_pid_t p;
        TT_CHECK_RC(tel_spawn(&p, exit_with, (void *)(intptr_t)5), 0, "spawn");
        if (!TT_CHECK_RC(tel_link(p), 0, "link"))
            return;
        tel_msg_t *m = recv_tag(TEL_TAG_EXIT, 5000);
        if (!m)
            return;
        tel_exit_info_t x = exit_of(m);
        TT_CHECK(x.pid == p && (x.reason == 5 || x.reason == TEL_NOPROC),
                 "reason %" PRId64, x.reason);
        tel_msg_free(m);
    }
    TT_CHECK(!got_tag(TEL_TAG_EXIT, 50), "an extra EXIT");
}

Test(link, racing_exits_give_exactly_one_exit_signal)
{
    size_t n = tel_test_scaled(5000, 300);
    TT_RUN(&two, link_race_main, &n);
}

static void many_mon_main(void *arg)
{
    size_t n = *(size_t *)arg;
    tel_pid_t p;
    TT_CHECK_RC(tel_spawn(&p, tt_wait_one_fn, NULL), 0, "spawn");
    uint64_t *refs = calloc(n, sizeof *refs);
    for (size_t i = 0; i < n; i++)
        TT_CHECK_RC(tel_monitor(&refs[i], p), 0, "monitor");
    for (size_t i = 0; i < n / 2; i++) /* half of them go again */
        TT_CHECK_RC(tel_demonitor(refs[i], false), 0, "demonitor");
    tt_send_tag(p, TAG_GO);
    size_t downs = 0;
    tel_msg_t *m;
    uint64_t tag = TEL_TAG_DOWN;
    while (tel_recv_match(&m, is_tag, &tag, 500) == 0) {
        tel_down_info_t d = down_of(m);
        bool known = false;
        for (size_t i = n / 2; i < n && !known; i++)
            known = refs[i] == d.ref;
        TT_CHECK(known, "a DOWN for a removed monitor");
        downs++;
        tel_msg_free(m);
    }
    TT_CHECK(downs == n - n / 2, "%zu DOWNs, want %zu", downs, n - n / 2);
    free(refs);
}

Test(monitor, many_monitors_on_one_process)
{
    size_t n = tel_test_scaled(20000, 1000);
    TT_RUN(&two, many_mon_main, &n);
}

static __attribute__((noinline)) unsigned recurse(unsigned depth,
                                                  volatile char *up)
{
    volatile char frame[1024];
    frame[0] = (char)depth;
    if (up)
        frame[1] = up[0];
    if (depth > (1u << 30))
        return 0;
    return recurse(depth + 1, frame) + (unsigned)frame[128];
}

static void overflow(void *arg)
{
    (void)arg;
    (void)recurse(0, NULL);
}

static void overflow_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t c;
    tel_spawn_opts_t o = {.link = true};
    TT_CHECK_RC(tel_spawn_opt(&c, overflow, NULL, &o), 0, "spawn");
    tel_msg_t *m = recv_tag(TEL_TAG_EXIT, 10000);
    TT_CHECK(m && exit_of(m).reason == TEL_STACK_OVERFLOW,
             "a linked process sees the overflow");
    tel_msg_free(m);
}

Test(link, a_stack_overflow_reaches_linked_processes)
{
    TT_RUN(&two, overflow_main, NULL);
}

/* Plain code, so the CPU faults as in a plain build (UBSan would stop the
 * program at the null store first). */
__attribute__((noinline, no_sanitize("undefined"), no_sanitize_thread))
static void null_deref(void *arg)
{
    (void)arg;
    volatile int *volatile p = NULL;
    *p = 1;
}

static void crash_main(void *arg)
{
    (void)arg;
    (void)tel_trap_exit(true);
    tel_pid_t c;
    uint64_t r;
    tel_spawn_opts_t o = {.link = true, .monitor = true, .monitor_ref = &r};
    TT_CHECK_RC(tel_spawn_opt(&c, null_deref, NULL, &o), 0, "spawn");
    TT_CHECK(await_down(r, 10000) == TEL_CRASHED, "DOWN says crashed");
    tel_msg_t *m = recv_tag(TEL_TAG_EXIT, 10000);
    TT_CHECK(m && exit_of(m).reason == TEL_CRASHED && exit_of(m).pid == c,
             "a linked process sees the crash");
    tel_msg_free(m);
}

Test(link, a_crash_reaches_links_and_monitors)
{
    TT_RUN(&two, crash_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Bad input                                                                 */
/* ------------------------------------------------------------------------ */

static void *foreign_calls(void *arg)
{
    tel_pid_t p = (tel_pid_t)(uintptr_t)arg;
    TT_CHECK_RC(tel_link(p), TEL_ENOTPROC, "link outside");
    TT_CHECK_RC(tel_unlink(p), TEL_ENOTPROC, "unlink outside");
    uint64_t r;
    TT_CHECK_RC(tel_monitor(&r, p), TEL_ENOTPROC, "monitor outside");
    TT_CHECK_RC(tel_demonitor(1, true), TEL_ENOTPROC, "demonitor outside");
    TT_CHECK(!tel_trap_exit(true), "trap_exit outside");
    TT_CHECK_RC(tel_set_priority(TEL_PRIO_HIGH), TEL_ENOTPROC, "priority");
    tel_spawn_opts_t o = {.link = true};
    TT_CHECK_RC(tel_spawn_opt(NULL, tt_return_fn, NULL, &o), TEL_ENOTPROC,
                "spawn_link outside");
    TT_CHECK_RC(tel_kill(p, 8), 0, "kill from a foreign thread");
    return NULL;
}

static void bad_input_main(void *arg)
{
    (void)arg;
    uint64_t r;
    TT_CHECK_RC(tel_link(0), TEL_EINVAL, "link 0");
    TT_CHECK_RC(tel_unlink(0), TEL_EINVAL, "unlink 0");
    TT_CHECK_RC(tel_monitor(NULL, tel_self()), TEL_EINVAL, "monitor NULL");
    TT_CHECK_RC(tel_monitor(&r, 0), TEL_EINVAL, "monitor 0");
    TT_CHECK_RC(tel_kill(0, 1), TEL_EINVAL, "kill 0");
    TT_CHECK_RC(tel_link(tel_self()), 0, "link self");
    TT_CHECK_RC(tel_set_priority(7), TEL_EINVAL, "priority 7");
    TT_CHECK_RC(tel_set_priority(-1), TEL_EINVAL, "priority -1");
    TT_CHECK_RC(tel_set_priority(TEL_PRIO_HIGH), TEL_PRIO_NORMAL, "prio");
    TT_CHECK_RC(tel_set_priority(TEL_PRIO_NORMAL), TEL_PRIO_HIGH, "prio back");
    tel_spawn_opts_t o = {.monitor = true};
    TT_CHECK_RC(tel_spawn_opt(NULL, tt_return_fn, NULL, &o), TEL_EINVAL,
                "monitor without ref");
    tel_spawn_opts_t o2 = {.priority = (tel_priority_t)9};
    TT_CHECK_RC(tel_spawn_opt(NULL, tt_return_fn, NULL, &o2), TEL_EINVAL,
                "bad priority");
    tel_spawn_opts_t o3 = {.stack_size = 100};
    TT_CHECK_RC(tel_spawn_opt(NULL, tt_return_fn, NULL, &o3), TEL_EINVAL,
                "tiny stack");
    tel_spawn_opts_t o4 = {.stack_size = (size_t)1 << 40};
    TT_CHECK_RC(tel_spawn_opt(NULL, tt_return_fn, NULL, &o4), TEL_EINVAL,
                "huge stack");
    TT_CHECK_RC(tel_spawn_opt(NULL, NULL, NULL, NULL), TEL_EINVAL, "NULL fn");
    TT_CHECK_RC(tel_spawn_opt(NULL, tt_return_fn, NULL, NULL), 0,
                "NULL opts is tel_spawn");
    uint64_t rv;
    tel_pid_t v = spawn_mon(wait_forever, NULL, &rv);
    pthread_t th;
    pthread_create(&th, NULL, foreign_calls, (void *)(uintptr_t)v);
    TT_CHECK(await_down(rv, 10000) == 8, "killed from a foreign thread");
    pthread_join(th, NULL);
}

Test(link, bad_input_gets_clear_errors)
{
    TT_RUN(&two, bad_input_main, NULL);
    cr_assert_eq(tel_kill(12345, 1), TEL_ESHUTDOWN);
    cr_assert_eq(tel_link(12345), TEL_ENOTPROC);
    cr_assert_eq(tel_trap_exit(true), false);
}
