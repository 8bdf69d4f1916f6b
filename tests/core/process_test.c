/*
 * tests/core/process_test.c: spawn, self, exit, yield and reductions,
 * fairness, limits, and big process trees. Black-box: include/telar.h only.
 */
#include "common.h"

#include <signal.h>

/* The pid of the test's main process, for children to report to. */
static _Atomic tel_pid_t main_pid;

static void set_main_pid(void)
{
    atomic_store(&main_pid, tel_self());
}

/* ------------------------------------------------------------------------ */
/* Spawn and self                                                            */
/* ------------------------------------------------------------------------ */

static atomic_uintptr_t child_arg_seen;
static _Atomic tel_pid_t child_self_seen;

static void child_records(void *arg)
{
    atomic_store(&child_arg_seen, (uintptr_t)arg);
    atomic_store(&child_self_seen, tel_self());
    tt_send_tag(atomic_load(&main_pid), 1);
}

static _Atomic tel_pid_t spawned_pid;

static void spawn_and_wait_main(void *arg)
{
    set_main_pid();
    tel_pid_t pid = 0;
    int rc = tel_spawn(&pid, child_records, arg);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    atomic_store(&spawned_pid, pid);
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 10000);
    if (TT_CHECK_RC(rc, 0, "tel_recv"))
        TT_CHECK(m->from == pid, "message from %" PRIu64 ", child is %" PRIu64,
                 m->from, pid);
    tel_msg_free(m);
}

Test(process, spawn_runs_the_function_with_its_arg, .timeout = 30)
{
    int token;
    TT_RUN(NULL, spawn_and_wait_main, &token);
    cr_assert_eq(atomic_load(&child_arg_seen), (uintptr_t)&token,
                 "the child got the wrong arg");
}

Test(process, self_inside_a_process_is_the_pid_spawn_returned, .timeout = 30)
{
    TT_RUN(NULL, spawn_and_wait_main, NULL);
    tel_pid_t self = atomic_load(&child_self_seen);
    cr_assert_neq(self, 0, "tel_self() in the child was 0");
    cr_assert_eq(self, atomic_load(&spawned_pid),
                 "child's tel_self() %" PRIu64 " != spawned pid %" PRIu64,
                 self, atomic_load(&spawned_pid));
    cr_assert_neq(self, atomic_load(&main_pid),
                  "the child has main's pid");
    cr_assert_neq(atomic_load(&main_pid), 0, "tel_self() in main was 0");
}

static _Atomic tel_pid_t foreign_self = 1;

static void *foreign_self_thread(void *arg)
{
    (void)arg;
    atomic_store(&foreign_self, tel_self());
    return NULL;
}

static void self_from_foreign_main(void *arg)
{
    (void)arg;
    pthread_t t;
    if (!TT_CHECK(pthread_create(&t, NULL, foreign_self_thread, NULL) == 0,
                  "pthread_create"))
        return;
    pthread_join(t, NULL);
}

Test(process, self_outside_a_process_is_zero, .timeout = 30)
{
    cr_assert_eq(tel_self(), 0, "before any run");
    TT_RUN(NULL, self_from_foreign_main, NULL);
    cr_assert_eq(atomic_load(&foreign_self), 0,
                 "on a foreign thread during a run: %" PRIu64,
                 atomic_load(&foreign_self));
    cr_assert_eq(tel_self(), 0, "on tel_run's thread after the run");
}

/* ------------------------------------------------------------------------ */
/* Exit                                                                      */
/* ------------------------------------------------------------------------ */

static void returning_child_main(void *arg)
{
    (void)arg;
    tel_pid_t pid = 0;
    int rc = tel_spawn(&pid, tt_wait_one_fn, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    TT_CHECK(tel_is_alive(pid), "a blocked child is not alive");
    tt_send_tag(pid, 1);
    TT_CHECK(tt_await_dead(pid, 10000),
             "a child that returned is still alive");
}

Test(process, returning_from_the_function_ends_the_process, .timeout = 30)
{
    TT_RUN(NULL, returning_child_main, NULL);
}

static atomic_int after_exit_ran;
static atomic_int before_exit_ran;

static void deep_exit(int depth, tel_reason_t reason);

/* Called through a volatile pointer so the compiler keeps the code after it. */
static void (*volatile deep_exit_ptr)(int, tel_reason_t) = deep_exit;

static void deep_exit(int depth, tel_reason_t reason)
{
    if (depth == 0)
        tel_exit(reason);
    deep_exit_ptr(depth - 1, reason);
    atomic_fetch_add(&after_exit_ran, 1);
}

static void exiting_child(void *arg)
{
    tel_reason_t reason = (tel_reason_t)(intptr_t)arg;
    atomic_fetch_add(&before_exit_ran, 1);
    deep_exit_ptr(10, reason);
    atomic_fetch_add(&after_exit_ran, 1);
}

static void exit_main(void *arg)
{
    (void)arg;
    static const tel_reason_t reasons[] = {TEL_NORMAL, 1, 42, TEL_KILLED};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        tel_pid_t pid = 0;
        int rc = tel_spawn(&pid, exiting_child,
                           (void *)(intptr_t)reasons[i]);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        TT_CHECK(tt_await_dead(pid, 10000),
                 "a child that called tel_exit(%" PRId64 ") is alive",
                 reasons[i]);
    }
    /* The runtime still works after those exits. */
    tel_pid_t pid = 0;
    int rc = tel_spawn(&pid, tt_wait_one_fn, NULL);
    if (TT_CHECK_RC(rc, 0, "tel_spawn after exits")) {
        tt_send_tag(pid, 1);
        TT_CHECK(tt_await_dead(pid, 10000), "the last child is alive");
    }
}

Test(process, exit_ends_the_process_at_once, .timeout = 30)
{
    TT_RUN(NULL, exit_main, NULL);
    cr_assert_eq(atomic_load(&before_exit_ran), 4);
    cr_assert_eq(atomic_load(&after_exit_ran), 0,
                 "code after tel_exit ran %d times",
                 atomic_load(&after_exit_ran));
}

/* Documented misuse: tel_exit outside a process aborts the program. */
Test(process, exit_outside_a_process_aborts, .signal = SIGABRT,
     .timeout = 30)
{
    tel_exit(TEL_NORMAL);
}

/* tel_exit with pending messages: they are freed, nothing else notices. */
static void exit_with_mail_child(void *arg)
{
    (void)arg;
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, TEL_INFINITY);
    TT_CHECK_RC(rc, 0, "tel_recv");
    tel_msg_free(m);
    tel_exit(TEL_NORMAL);
}

static void exit_with_mail_main(void *arg)
{
    (void)arg;
    char big[3000];
    memset(big, 'x', sizeof big);
    for (int k = 0; k < 20; k++) {
        tel_pid_t pid = 0;
        int rc = tel_spawn(&pid, exit_with_mail_child, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        for (int i = 0; i < 50; i++) {
            rc = tel_send(pid, (uint64_t)i, big, (size_t)(i * 60));
            if (!TT_CHECK_RC(rc, 0, "tel_send"))
                return;
        }
        TT_CHECK(tt_await_dead(pid, 10000), "child %d is alive", k);
    }
}

Test(process, exit_with_unread_messages_is_clean, .timeout = 30)
{
    TT_RUN(NULL, exit_with_mail_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Argument errors                                                           */
/* ------------------------------------------------------------------------ */

static atomic_int spawn_null_rc = 1;

static void spawn_null_main(void *arg)
{
    (void)arg;
    tel_pid_t pid = 12345;
    atomic_store(&spawn_null_rc, tel_spawn(&pid, NULL, NULL));
    uint32_t n = tel_process_count();
    TT_CHECK(n == 1, "process count after a failed spawn is %u", n);
}

Test(process, spawn_with_null_fn_returns_einval, .timeout = 30)
{
    TT_RUN(NULL, spawn_null_main, NULL);
    cr_assert_eq(atomic_load(&spawn_null_rc), TEL_EINVAL, "got %d (%s)",
                 atomic_load(&spawn_null_rc),
                 tel_errname(atomic_load(&spawn_null_rc)));
}

static void report_to_main(void *arg)
{
    tt_send_u64(atomic_load(&main_pid), 3, (uint64_t)(uintptr_t)arg);
}

static void spawn_null_out_main(void *arg)
{
    (void)arg;
    set_main_pid();
    int rc = tel_spawn(NULL, report_to_main, (void *)(uintptr_t)99);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn(NULL, ...)"))
        return;
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 10000);
    if (TT_CHECK_RC(rc, 0, "tel_recv"))
        TT_CHECK(tt_msg_u64(m) == 99, "wrong payload");
    tel_msg_free(m);
}

Test(process, spawn_with_null_out_is_allowed, .timeout = 30)
{
    TT_RUN(NULL, spawn_null_out_main, NULL);
}

static atomic_int foreign_yield_rc = 1, foreign_reduce_rc = 1;

static void *foreign_yield_thread(void *arg)
{
    (void)arg;
    atomic_store(&foreign_yield_rc, tel_yield());
    atomic_store(&foreign_reduce_rc, tel_reduce(1));
    return NULL;
}

static void foreign_yield_main(void *arg)
{
    (void)arg;
    pthread_t t;
    if (TT_CHECK(pthread_create(&t, NULL, foreign_yield_thread, NULL) == 0,
                 "pthread_create"))
        pthread_join(t, NULL);
}

Test(process, yield_and_reduce_outside_a_process_return_enotproc,
     .timeout = 30)
{
    cr_assert_eq(tel_yield(), TEL_ENOTPROC, "tel_yield before any run");
    cr_assert_eq(tel_reduce(1), TEL_ENOTPROC, "tel_reduce before any run");
    TT_RUN(NULL, foreign_yield_main, NULL);
    cr_assert_eq(atomic_load(&foreign_yield_rc), TEL_ENOTPROC,
                 "tel_yield on a foreign thread gave %d",
                 atomic_load(&foreign_yield_rc));
    cr_assert_eq(atomic_load(&foreign_reduce_rc), TEL_ENOTPROC,
                 "tel_reduce on a foreign thread gave %d",
                 atomic_load(&foreign_reduce_rc));
}

static void yield_inside_main(void *arg)
{
    (void)arg;
    int rc = tel_yield();
    TT_CHECK_RC(rc, 0, "tel_yield inside a process");
    rc = tel_reduce(0);
    TT_CHECK_RC(rc, 0, "tel_reduce(0) inside a process");
    for (int i = 0; i < 100000; i++) {
        rc = tel_reduce(1);
        if (!TT_CHECK_RC(rc, 0, "tel_reduce(1) inside a process"))
            return;
    }
    rc = tel_reduce(UINT32_MAX);
    TT_CHECK_RC(rc, 0, "tel_reduce(UINT32_MAX) inside a process");
}

Test(process, yield_and_reduce_inside_a_process_return_zero, .timeout = 30)
{
    TT_RUN(NULL, yield_inside_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Fairness                                                                  */
/* ------------------------------------------------------------------------ */

static atomic_uint_fast64_t hog_spins;

static void hog(void *arg)
{
    (void)arg;
    for (;;) {
        atomic_fetch_add(&hog_spins, 1);
        int rc = tel_reduce(1);
        if (!TT_CHECK_RC(rc, 0, "tel_reduce in the hog"))
            return;
    }
}

static void pinger(void *arg)
{
    (void)arg;
    tt_send_tag(atomic_load(&main_pid), 77);
}

static atomic_int fair_got;

static void fairness_main(void *arg)
{
    unsigned hogs = (unsigned)(uintptr_t)arg;
    set_main_pid();
    for (unsigned i = 0; i < hogs; i++) {
        int rc = tel_spawn(NULL, hog, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn hog"))
            return;
    }
    int rc = tel_spawn(NULL, pinger, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn pinger"))
        return;
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 20000);
    if (TT_CHECK(rc == 0, "main never heard from the pinger (%s): the hog "
                          "starved it",
                 tel_errname(rc)))
        atomic_store(&fair_got, 1);
    tel_msg_free(m);
}

Test(process, a_reduce_loop_does_not_starve_others_on_one_scheduler,
     .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, fairness_main, (void *)(uintptr_t)1);
    cr_assert_eq(atomic_load(&fair_got), 1);
    cr_assert_gt(atomic_load(&hog_spins), 0, "the hog never ran");
}

Test(process, several_reduce_loops_with_a_small_slice_do_not_starve_others,
     .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 1, .reductions = 100};
    TT_RUN(&cfg, fairness_main, (void *)(uintptr_t)4);
    cr_assert_eq(atomic_load(&fair_got), 1);
    cr_assert_gt(atomic_load(&hog_spins), 0, "the hogs never ran");
}

/* More busy processes than a scheduler's ring holds (256): the overflow
 * waits in the backlog and the global queue and must still get its turns,
 * and so must a process woken by its timer. (Once, the ring's tasks took
 * turns among themselves and the rest never ran; later, batches from the
 * global queue kept the ring from running dry, and six processes in the
 * backlog never ran.) */
#define MANY_HOGS 1000

static atomic_uint_fast64_t many_spins[MANY_HOGS];

static void counted_hog(void *arg)
{
    atomic_uint_fast64_t *mine = &many_spins[(uintptr_t)arg];
    for (;;) {
        atomic_fetch_add_explicit(mine, 1, memory_order_relaxed);
        int rc = tel_reduce(1);
        if (!TT_CHECK_RC(rc, 0, "tel_reduce in the hog"))
            return;
    }
}

static atomic_int many_woke, many_all_ran;

static void many_hogs_main(void *arg)
{
    (void)arg;
    for (uintptr_t i = 0; i < MANY_HOGS; i++) {
        int rc = tel_spawn(NULL, counted_hog, (void *)i);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn hog"))
            return;
    }
    if (!TT_CHECK_RC(tel_sleep(5), 0, "tel_sleep"))
        return;
    atomic_store(&many_woke, 1);
    int64_t deadline = tt_now_ms() + 20000;
    for (;;) {
        int never = 0;
        for (int i = 0; i < MANY_HOGS; i++)
            never += atomic_load_explicit(&many_spins[i],
                                          memory_order_relaxed) == 0;
        if (never == 0) {
            atomic_store(&many_all_ran, 1);
            return;
        }
        if (!TT_CHECK(tt_now_ms() < deadline,
                      "%d of %d busy processes never ran", never, MANY_HOGS))
            return;
        (void)tel_sleep(10);
    }
}

Test(process, more_busy_processes_than_a_run_queue_holds_all_get_turns,
     .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 1, .reductions = 100};
    TT_RUN(&cfg, many_hogs_main, NULL);
    cr_assert_eq(atomic_load(&many_woke), 1, "the sleeper never woke");
    cr_assert_eq(atomic_load(&many_all_ran), 1);
}

Test(process, more_busy_processes_than_two_run_queues_hold_all_get_turns,
     .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 2, .reductions = 100};
    TT_RUN(&cfg, many_hogs_main, NULL);
    cr_assert_eq(atomic_load(&many_woke), 1, "the sleeper never woke");
    cr_assert_eq(atomic_load(&many_all_ran), 1);
}

/*
 * A burst of spawns far larger than a ring, in one slice (the slice is long
 * enough that the spawner is never preempted): the backlog grows several
 * times, drains, and gives its memory back; every process runs exactly
 * once. Each reports to main, which counts them by index.
 */
static uint8_t *burst_seen;
static size_t burst_n;

static void burst_kid(void *arg)
{
    tel_pid_t *parent = arg;
    uint64_t me = 0;
    tel_msg_t *m;
    if (!TT_CHECK_RC(tel_recv(&m, TEL_INFINITY), 0, "kid receive"))
        return;
    memcpy(&me, m->data, sizeof(me));
    tel_msg_free(m);
    (void)TT_CHECK_RC(tel_send(*parent, 1, &me, sizeof(me)), 0, "kid send");
}

static void burst_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    for (uint64_t i = 0; i < burst_n; i++) {
        tel_pid_t kid;
        if (!TT_CHECK_RC(tel_spawn(&kid, burst_kid, &self), 0, "spawn"))
            return;
        /* The kid is queued, not run: it finds this in its mailbox. */
        if (!TT_CHECK_RC(tel_send(kid, 0, &i, sizeof(i)), 0, "send"))
            return;
    }
    for (size_t got = 0; got < burst_n; got++) {
        tel_msg_t *m;
        if (!TT_CHECK_RC(tel_recv(&m, 60000), 0, "main receive"))
            return;
        uint64_t who;
        memcpy(&who, m->data, sizeof(who));
        tel_msg_free(m);
        if (!TT_CHECK(who < burst_n && burst_seen[who] == 0,
                      "kid %llu reported twice or out of range",
                      (unsigned long long)who))
            return;
        burst_seen[who] = 1;
    }
}

static void burst_on(unsigned schedulers)
{
    burst_n = tel_test_live_cap(100000);
    burst_seen = calloc(burst_n, 1);
    cr_assert_not_null(burst_seen);
    tel_config_t cfg = {.schedulers = schedulers, .reductions = 1u << 30};
    TT_RUN(&cfg, burst_main, NULL);
    size_t ran = 0;
    for (size_t i = 0; i < burst_n; i++)
        ran += burst_seen[i];
    free(burst_seen);
    cr_assert_eq(ran, burst_n, "%zu of %zu spawned processes ran", ran,
                 burst_n);
}

Test(process, a_burst_of_spawns_far_larger_than_a_run_queue_all_run_once,
     .timeout = 120)
{
    burst_on(1);
}

Test(process, a_burst_of_spawns_on_two_schedulers_all_run_once,
     .timeout = 120)
{
    burst_on(2);
}

/* A flag-based variant: the other process sets a flag that main polls. */
static atomic_int flag_set;

static void flag_setter(void *arg)
{
    (void)arg;
    atomic_store(&flag_set, 1);
}

static void fairness_flag_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2; i++) {
        int rc = tel_spawn(NULL, hog, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn hog"))
            return;
    }
    int rc = tel_spawn(NULL, flag_setter, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn flag setter"))
        return;
    /* Main itself loops on tel_reduce, as a third busy process. */
    int64_t deadline = tt_now_ms() + 20000;
    while (atomic_load(&flag_set) == 0 && tt_now_ms() < deadline)
        (void)tel_reduce(1);
    TT_CHECK(atomic_load(&flag_set) == 1,
             "the flag setter never ran among busy processes");
}

Test(process, busy_processes_share_one_scheduler, .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, fairness_flag_main, NULL);
}

/* Two processes on one scheduler, each yielding after every step. */
#define ALTERNATIONS 10000

static char alt_log[2 * ALTERNATIONS];
static atomic_int alt_len;

static void alt_step(char who)
{
    int i = atomic_fetch_add(&alt_len, 1);
    if (i < (int)sizeof alt_log)
        alt_log[i] = who;
}

static void alternator(void *arg)
{
    (void)arg;
    for (int i = 0; i < ALTERNATIONS; i++) {
        alt_step('B');
        (void)tel_yield();
    }
    tt_send_tag(atomic_load(&main_pid), 1);
}

static void alternation_main(void *arg)
{
    (void)arg;
    set_main_pid();
    int rc = tel_spawn(NULL, alternator, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    for (int i = 0; i < ALTERNATIONS; i++) {
        alt_step('M');
        rc = tel_yield();
        if (!TT_CHECK_RC(rc, 0, "tel_yield"))
            return;
    }
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, 20000);
    TT_CHECK_RC(rc, 0, "tel_recv");
    tel_msg_free(m);
}

Test(process, yield_lets_a_peer_run_in_strict_alternation, .timeout = 30)
{
    /* No watchdog: on a loaded machine it would see a long run (the thread
     * waiting for a CPU) and switch a process out between its step and its
     * yield, which is not what this is about. */
    tel_config_t cfg = {.schedulers = 1, .flags = TEL_CFG_NO_WATCHDOG};
    TT_RUN(&cfg, alternation_main, NULL);
    int n = atomic_load(&alt_len);
    cr_assert_eq(n, 2 * ALTERNATIONS, "%d steps logged", n);
    for (int i = 1; i < n; i++)
        cr_assert_neq(alt_log[i], alt_log[i - 1],
                      "step %d and %d were both taken by %c: tel_yield did "
                      "not let the peer run",
                      i - 1, i, alt_log[i]);
}

/* ------------------------------------------------------------------------ */
/* Skynet                                                                    */
/* ------------------------------------------------------------------------ */

struct sky_arg {
    tel_pid_t parent;
    uint64_t base;
    uint64_t size;
};

static atomic_uint_fast64_t sky_leaves;

static void sky_node(void *p)
{
    struct sky_arg a = *(struct sky_arg *)p;
    free(p);
    uint64_t sum = 0;
    if (a.size == 1) {
        sum = a.base;
        atomic_fetch_add(&sky_leaves, 1);
    } else {
        uint64_t chunk = (a.size + 9) / 10;
        unsigned nkids = 0;
        for (uint64_t off = 0; off < a.size; off += chunk) {
            struct sky_arg *c = malloc(sizeof *c);
            if (!TT_CHECK(c != NULL, "malloc"))
                break;
            c->parent = tel_self();
            c->base = a.base + off;
            c->size = a.size - off < chunk ? a.size - off : chunk;
            int rc = tel_spawn(NULL, sky_node, c);
            if (!TT_CHECK_RC(rc, 0, "tel_spawn in skynet")) {
                free(c);
                break;
            }
            nkids++;
        }
        for (unsigned i = 0; i < nkids; i++) {
            tel_msg_t *m = NULL;
            int rc = tel_recv(&m, TEL_INFINITY);
            if (!TT_CHECK_RC(rc, 0, "tel_recv in skynet"))
                break;
            sum += tt_msg_u64(m);
            tel_msg_free(m);
        }
    }
    tt_send_u64(a.parent, 0, sum);
}

static uint64_t sky_n;
static atomic_uint_fast64_t sky_result;

static void skynet_main(void *arg)
{
    (void)arg;
    struct sky_arg *root = malloc(sizeof *root);
    if (!TT_CHECK(root != NULL, "malloc"))
        return;
    root->parent = tel_self();
    root->base = 0;
    root->size = sky_n;
    int rc = tel_spawn(NULL, sky_node, root);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn skynet root")) {
        free(root);
        return;
    }
    tel_msg_t *m = NULL;
    rc = tel_recv(&m, TEL_INFINITY);
    if (TT_CHECK_RC(rc, 0, "tel_recv root"))
        atomic_store(&sky_result, tt_msg_u64(m));
    tel_msg_free(m);
}

static void run_skynet(unsigned schedulers)
{
    sky_n = tel_test_live_cap(tel_test_scaled(1000000, 1000));
    tel_config_t cfg = {.schedulers = schedulers};
    TT_RUN(&cfg, skynet_main, NULL);
    uint64_t want = sky_n * (sky_n - 1) / 2;
    cr_assert_eq(atomic_load(&sky_leaves), sky_n, "%" PRIu64 " leaves ran",
                 (uint64_t)atomic_load(&sky_leaves));
    cr_assert_eq(atomic_load(&sky_result), want,
                 "skynet(%" PRIu64 ") summed %" PRIu64 ", want %" PRIu64,
                 sky_n, (uint64_t)atomic_load(&sky_result), want);
}

Test(process, skynet_sums_a_million_leaves_on_one_scheduler, .timeout = 180)
{
    run_skynet(1);
}

Test(process, skynet_sums_a_million_leaves_on_two_schedulers, .timeout = 180)
{
    run_skynet(2);
}

/* ------------------------------------------------------------------------ */
/* A million live processes                                                  */
/* ------------------------------------------------------------------------ */

static size_t live_n;
static tel_pid_t *live_pids;
static atomic_size_t live_started;
static atomic_size_t live_replies;

static void live_child(void *arg)
{
    uint64_t idx = (uint64_t)(uintptr_t)arg;
    atomic_fetch_add(&live_started, 1);
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, TEL_INFINITY);
    if (!TT_CHECK_RC(rc, 0, "tel_recv in a live child"))
        return;
    TT_CHECK(m->tag == idx, "child %" PRIu64 " got tag %" PRIu64, idx,
             m->tag);
    tt_send_u64(m->from, 1, idx);
    tel_msg_free(m);
}

static void live_main(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < live_n; i++) {
        int rc = tel_spawn(&live_pids[i], live_child, (void *)(uintptr_t)i);
        if (!TT_CHECK(rc == 0, "spawn %zu of %zu: %s", i, live_n,
                      tel_errname(rc)))
            return;
    }
    bool ok;
    TT_AWAIT(ok, atomic_load(&live_started) == live_n, 120000);
    if (!TT_CHECK(ok, "only %zu of %zu started", atomic_load(&live_started),
                  live_n))
        return;
    uint32_t count = tel_process_count();
    TT_CHECK(count == live_n + 1, "tel_process_count() is %u, want %zu",
             count, live_n + 1);
    for (size_t i = 0; i < live_n; i++) {
        int rc = tel_send(live_pids[i], i, NULL, 0);
        if (!TT_CHECK_RC(rc, 0, "tel_send to a live child"))
            return;
    }
    unsigned char *seen = calloc(live_n, 1);
    if (!TT_CHECK(seen != NULL, "calloc"))
        return;
    for (size_t i = 0; i < live_n; i++) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 60000);
        if (!TT_CHECK(rc == 0, "reply %zu of %zu: %s", i, live_n,
                      tel_errname(rc)))
            break;
        uint64_t idx = tt_msg_u64(m);
        if (TT_CHECK(idx < live_n && !seen[idx], "bad or repeated reply %" PRIu64,
                     idx)) {
            seen[idx] = 1;
            TT_CHECK(m->from == live_pids[idx], "reply %" PRIu64
                     " not from its child", idx);
            atomic_fetch_add(&live_replies, 1);
        }
        tel_msg_free(m);
    }
    free(seen);
}

Test(process, a_million_blocked_processes_all_get_a_message_and_reply,
     .timeout = 300)
{
    live_n = tel_test_live_cap(tel_test_scaled(1000000, 1000));
    live_pids = calloc(live_n, sizeof *live_pids);
    cr_assert_not_null(live_pids);
    TT_RUN(NULL, live_main, NULL);
    cr_assert_eq(atomic_load(&live_replies), live_n,
                 "%zu replies of %zu", atomic_load(&live_replies), live_n);
    free(live_pids);
}

/* ------------------------------------------------------------------------ */
/* max_processes                                                             */
/* ------------------------------------------------------------------------ */

#define LIMIT 1000u
#define LIMIT_TRIES 5000u

static tel_pid_t limit_pids[LIMIT_TRIES];

/*
 * Spawn blockers until LIMIT_TRIES attempts; returns how many succeeded and
 * checks every failure is TEL_ELIMIT.
 */
static unsigned spawn_blockers(unsigned tries)
{
    unsigned ok = 0, other = 0;
    int other_rc = 0;
    for (unsigned i = 0; i < tries; i++) {
        tel_pid_t pid = 0;
        int rc = tel_spawn(&pid, tt_wait_one_fn, NULL);
        if (rc == 0)
            limit_pids[ok++] = pid;
        else if (rc != TEL_ELIMIT) {
            other++;
            other_rc = rc;
        }
    }
    TT_CHECK(other == 0, "%u spawns failed with %d (%s), not TEL_ELIMIT",
             other, other_rc, tel_errname(other_rc));
    return ok;
}

static void release_blockers(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        tt_send_tag(limit_pids[i], 1);
}

static void limit_main(void *arg)
{
    (void)arg;
    unsigned ok = spawn_blockers(LIMIT_TRIES);
    TT_CHECK(ok == LIMIT - 1,
             "with max_processes=%u and main alive, %u of %u spawns "
             "succeeded, want %u",
             LIMIT, ok, LIMIT_TRIES, LIMIT - 1);
    uint32_t count = tel_process_count();
    TT_CHECK(count == LIMIT, "process count at the limit is %u", count);

    /* The runtime still works at the limit: messages flow. */
    release_blockers(ok);
    TT_CHECK(tt_await_count(1, 20000),
             "the blockers never all exited (count %u)", tel_process_count());

    /* After releasing them, spawns succeed again, up to the limit. */
    unsigned ok2 = spawn_blockers(LIMIT);
    TT_CHECK(ok2 == LIMIT - 1, "after release, %u of %u spawns succeeded",
             ok2, LIMIT);
    release_blockers(ok2);
    TT_CHECK(tt_await_count(1, 20000),
             "the second blockers never all exited (count %u)",
             tel_process_count());
}

Test(process, spawning_past_max_processes_returns_elimit_and_recovers,
     .timeout = 60)
{
    tel_config_t cfg = {.max_processes = LIMIT};
    TT_RUN(&cfg, limit_main, NULL);
}

/* The count is kept per scheduler (each spends and refunds its own credit
 * against a shared reservation): with exits spread over three schedulers,
 * the limit must still be reached exactly, twice. */
Test(process, the_limit_is_exact_when_exits_are_spread_over_schedulers,
     .timeout = 60)
{
    tel_config_t cfg = {.max_processes = LIMIT, .schedulers = 3};
    TT_RUN(&cfg, limit_main, NULL);
}

static atomic_int limit_one_rc = 1;

static void limit_one_main(void *arg)
{
    (void)arg;
    atomic_store(&limit_one_rc, tel_spawn(NULL, tt_return_fn, NULL));
}

Test(process, max_processes_of_one_leaves_room_only_for_main, .timeout = 30)
{
    tel_config_t cfg = {.max_processes = 1};
    TT_RUN(&cfg, limit_one_main, NULL);
    cr_assert_eq(atomic_load(&limit_one_rc), TEL_ELIMIT, "spawn gave %d (%s)",
                 atomic_load(&limit_one_rc),
                 tel_errname(atomic_load(&limit_one_rc)));
}

/* ------------------------------------------------------------------------ */
/* Spawning from a foreign thread                                            */
/* ------------------------------------------------------------------------ */

#define FOREIGN_KIDS 200

static tel_pid_t foreign_pids[FOREIGN_KIDS];
static int foreign_rcs[FOREIGN_KIDS];

static void *foreign_spawner(void *arg)
{
    (void)arg;
    for (uintptr_t i = 0; i < FOREIGN_KIDS; i++)
        foreign_rcs[i] = tel_spawn(&foreign_pids[i], report_to_main,
                                   (void *)i);
    return NULL;
}

static void foreign_spawn_main(void *arg)
{
    (void)arg;
    set_main_pid();
    pthread_t t;
    if (!TT_CHECK(pthread_create(&t, NULL, foreign_spawner, NULL) == 0,
                  "pthread_create"))
        return;
    tel_pid_t from[FOREIGN_KIDS] = {0};
    int got = 0;
    for (int i = 0; i < FOREIGN_KIDS; i++) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 20000);
        if (!TT_CHECK(rc == 0, "message %d of %d from foreign-spawned "
                               "children: %s",
                      i, FOREIGN_KIDS, tel_errname(rc)))
            break;
        uint64_t idx = tt_msg_u64(m);
        if (TT_CHECK(idx < FOREIGN_KIDS && from[idx] == 0,
                     "bad or repeated index %" PRIu64, idx)) {
            from[idx] = m->from;
            got++;
        }
        tel_msg_free(m);
    }
    pthread_join(t, NULL);
    for (int i = 0; i < FOREIGN_KIDS; i++) {
        if (!TT_CHECK_RC(foreign_rcs[i], 0, "tel_spawn on a foreign thread"))
            break;
        if (!TT_CHECK(foreign_pids[i] != 0 && from[i] == foreign_pids[i],
                      "child %d: spawn gave pid %" PRIu64
                      ", its message came from %" PRIu64,
                      i, foreign_pids[i], from[i]))
            break;
    }
    TT_CHECK(got == FOREIGN_KIDS, "%d of %d children reported", got,
             FOREIGN_KIDS);
}

Test(process, spawn_from_a_foreign_thread_works, .timeout = 60)
{
    TT_RUN(NULL, foreign_spawn_main, NULL);
}

Test(process, spawn_from_a_foreign_thread_works_on_one_scheduler,
     .timeout = 60)
{
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, foreign_spawn_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* A child is alive right after spawn                                        */
/* ------------------------------------------------------------------------ */

static void alive_after_spawn_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        tel_pid_t pid = 0;
        int rc = tel_spawn(&pid, tt_wait_one_fn, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        TT_CHECK(pid != 0, "spawn gave pid 0");
        TT_CHECK(tel_is_alive(pid), "a blocked child is not alive");
        tt_send_tag(pid, 1);
        TT_CHECK(tt_await_dead(pid, 10000), "released child %d is alive", i);
    }
}

Test(process, a_blocked_child_is_alive_until_released, .timeout = 30)
{
    TT_RUN(NULL, alive_after_spawn_main, NULL);
}
