/*
 * tests/core/registry_test.c: process names (tel_register, tel_unregister,
 * tel_whereis): a name belongs to one live process, a process has at most
 * one name, and a name is free again once its process exits, however it
 * got the name and however it ends.
 * White-box where it helps: tel__reg_entries (core/registry.h) tells an
 * entry dropped at exit from one dropped lazily by a later lookup.
 */
#include "common.h"

#include "alloc/failinj.h"
#include "core/registry.h"

/* Inside a process: a process that waits for one message, then returns. */
static tel_pid_t spawn_waiter(void)
{
    tel_pid_t pid = 0;
    int rc = tel_spawn(&pid, tt_wait_one_fn, NULL);
    TT_CHECK_RC(rc, 0, "tel_spawn");
    return pid;
}

/* Inside a process: let a waiter go and wait until it has exited. */
static void finish(tel_pid_t pid)
{
    tt_send_tag(pid, 0);
    TT_CHECK(tt_await_dead(pid, 10000), "a released process stays alive");
}

static tel_config_t one_sched = {.schedulers = 1};
static tel_config_t two_scheds = {.schedulers = 2};

/* ------------------------------------------------------------------------ */
/* Round trip and errors                                                     */
/* ------------------------------------------------------------------------ */

static void round_trip_main(void *arg)
{
    (void)arg;
    tel_pid_t p = spawn_waiter();
    TT_CHECK(tel_whereis("server") == 0, "an unknown name resolves");
    TT_CHECK_RC(tel_register("server", p), 0, "tel_register");
    TT_CHECK(tel_whereis("server") == p, "whereis after register");
    TT_CHECK(tel_whereis("serve") == 0 && tel_whereis("server2") == 0 &&
                 tel_whereis("Server") == 0,
             "a name close to a registered one resolves");
    TT_CHECK_RC(tel_unregister("server"), 0, "tel_unregister");
    TT_CHECK(tel_whereis("server") == 0, "whereis after unregister");
    /* Both the name and the pid are free again. */
    TT_CHECK_RC(tel_register("server", p), 0, "register again");
    TT_CHECK(tel_whereis("server") == p, "whereis after the second register");
    TT_CHECK_RC(tel_unregister("server"), 0, "unregister again");
    TT_CHECK_RC(tel_register("other", p), 0, "register under a new name");
    TT_CHECK(tel_whereis("other") == p, "whereis of the new name");
    /* A process may name itself. */
    TT_CHECK_RC(tel_register("main", tel_self()), 0, "register self");
    TT_CHECK(tel_whereis("main") == tel_self(), "whereis self");
    TT_CHECK(tel__reg_entries() == 2, "entries: %u", tel__reg_entries());
    finish(p);
}

Test(registry, register_whereis_unregister_round_trip, .timeout = 30)
{
    TT_RUN(&one_sched, round_trip_main, NULL);
}

static void longest_name_main(void *arg)
{
    (void)arg;
    char longest[TEL_NAME_MAX + 1], other[TEL_NAME_MAX + 1];
    memset(longest, 'n', TEL_NAME_MAX);
    longest[TEL_NAME_MAX] = '\0';
    memcpy(other, longest, sizeof other);
    other[TEL_NAME_MAX - 1] = 'm'; /* differs in its last byte only */
    tel_pid_t a = spawn_waiter(), b = spawn_waiter();
    TT_CHECK_RC(tel_register(longest, a), 0, "register a 63-byte name");
    TT_CHECK_RC(tel_register(other, b), 0, "register its neighbour");
    TT_CHECK(tel_whereis(longest) == a, "whereis of the longest name");
    TT_CHECK(tel_whereis(other) == b, "whereis of its neighbour");
    /* The name was copied: changing the caller's buffer changes nothing. */
    longest[0] = 'x';
    TT_CHECK(tel_whereis(longest) == 0, "the caller's buffer is the name");
    longest[0] = 'n';
    TT_CHECK(tel_whereis(longest) == a, "the copy is gone");
    finish(a);
    finish(b);
}

Test(registry, a_name_of_tel_name_max_bytes_is_kept_whole, .timeout = 30)
{
    TT_RUN(&one_sched, longest_name_main, NULL);
}

static void eexist_main(void *arg)
{
    (void)arg;
    tel_pid_t p1 = spawn_waiter(), p2 = spawn_waiter();
    TT_CHECK_RC(tel_register("a", p1), 0, "register a");
    TT_CHECK_RC(tel_register("a", p2), TEL_EEXIST, "a taken name");
    TT_CHECK(tel_whereis("a") == p1, "a failed register moved the name");
    TT_CHECK_RC(tel_register("b", p1), TEL_EEXIST, "a pid with a name");
    TT_CHECK(tel_whereis("b") == 0, "a failed register left a name");
    TT_CHECK_RC(tel_register("a", p1), TEL_EEXIST, "the same pair twice");
    TT_CHECK_RC(tel_register("b", p2), 0, "p2 is still free to name");
    TT_CHECK(tel_whereis("b") == p2, "whereis b");
    /* A process named by another cannot take a second name itself. */
    TT_CHECK_RC(tel_register("m", tel_self()), 0, "register self");
    TT_CHECK_RC(tel_register("m2", tel_self()), TEL_EEXIST, "self twice");
    TT_CHECK(tel__reg_entries() == 3, "entries: %u", tel__reg_entries());
    finish(p1);
    finish(p2);
}

Test(registry, a_taken_name_or_a_named_pid_is_eexist, .timeout = 30)
{
    TT_RUN(&one_sched, eexist_main, NULL);
}

static void enoproc_main(void *arg)
{
    (void)arg;
    tel_pid_t dead = 0;
    int rc = tel_spawn(&dead, tt_return_fn, NULL);
    TT_CHECK_RC(rc, 0, "tel_spawn");
    TT_CHECK(tt_await_dead(dead, 10000), "a returned process stays alive");
    TT_CHECK_RC(tel_register("d", dead), TEL_ENOPROC, "a dead pid");
    tel_pid_t self = tel_self();
    /* The same slot, another generation: a stale pid. */
    TT_CHECK_RC(tel_register("d", self + (1ull << 28)), TEL_ENOPROC,
                "a stale pid");
    TT_CHECK_RC(tel_register("d", ((tel_pid_t)7 << 28) | 0xfffffff),
                TEL_ENOPROC, "a pid that never was");
    TT_CHECK(tel_whereis("d") == 0, "a failed register left a name");
    TT_CHECK(tel__reg_entries() == 0, "entries: %u", tel__reg_entries());
}

Test(registry, a_dead_or_stale_pid_is_enoproc, .timeout = 30)
{
    TT_RUN(&one_sched, enoproc_main, NULL);
}

static void einval_main(void *arg)
{
    (void)arg;
    char too_long[TEL_NAME_MAX + 2];
    memset(too_long, 'l', TEL_NAME_MAX + 1);
    too_long[TEL_NAME_MAX + 1] = '\0';
    tel_pid_t self = tel_self();
    TT_CHECK_RC(tel_register(NULL, self), TEL_EINVAL, "register NULL");
    TT_CHECK_RC(tel_register("", self), TEL_EINVAL, "register \"\"");
    TT_CHECK_RC(tel_register(too_long, self), TEL_EINVAL, "register long");
    TT_CHECK_RC(tel_register("x", 0), TEL_EINVAL, "register pid 0");
    TT_CHECK_RC(tel_unregister(NULL), TEL_EINVAL, "unregister NULL");
    TT_CHECK_RC(tel_unregister(""), TEL_EINVAL, "unregister \"\"");
    TT_CHECK_RC(tel_unregister(too_long), TEL_EINVAL, "unregister long");
    TT_CHECK(tel_whereis(NULL) == 0, "whereis NULL");
    TT_CHECK(tel_whereis("") == 0, "whereis \"\"");
    TT_CHECK(tel_whereis(too_long) == 0, "whereis long");
    TT_CHECK(tel_whereis("x") == 0, "a failed register left a name");
    /* None of it left the process with a name. */
    TT_CHECK_RC(tel_register("x", self), 0, "register after the errors");
}

Test(registry, bad_names_and_pid_0_are_einval, .timeout = 30)
{
    TT_RUN(&one_sched, einval_main, NULL);
}

static void enoent_main(void *arg)
{
    (void)arg;
    TT_CHECK_RC(tel_unregister("nobody"), TEL_ENOENT, "an unknown name");
    TT_CHECK_RC(tel_register("once", tel_self()), 0, "register");
    TT_CHECK_RC(tel_unregister("once"), 0, "unregister");
    TT_CHECK_RC(tel_unregister("once"), TEL_ENOENT, "unregister twice");
    TT_CHECK_RC(tel_unregister("nobody"), TEL_ENOENT, "an unknown name");
}

Test(registry, unregister_of_an_unknown_name_is_enoent, .timeout = 30)
{
    TT_RUN(&one_sched, enoent_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Names are freed when their process exits                                  */
/* ------------------------------------------------------------------------ */

/* Registers itself under arg (a name), tells its parent, waits, returns. */
static _Atomic tel_pid_t self_parent;

static void self_namer(void *arg)
{
    int rc = tel_register(arg, tel_self());
    TT_CHECK_RC(rc, 0, "register self");
    tt_send_tag(atomic_load(&self_parent), 1);
    tt_wait_one_fn(NULL);
}

static tel_pid_t spawn_self_namer(const char *name)
{
    tel_pid_t pid = 0;
    TT_CHECK_RC(tel_spawn(&pid, self_namer, (void *)name), 0, "tel_spawn");
    tel_msg_t *m = NULL;
    TT_CHECK_RC(tel_recv(&m, 10000), 0, "tel_recv (named)");
    tel_msg_free(m);
    return pid;
}

static void self_exit_main(void *arg)
{
    (void)arg;
    atomic_store(&self_parent, tel_self());
    tel_pid_t c = spawn_self_namer("selfie");
    TT_CHECK(tel_whereis("selfie") == c, "whereis of a self-named process");
    TT_CHECK(tel__reg_entries() == 1, "entries: %u", tel__reg_entries());
    finish(c);
    /* Freed by the exit itself: no lookup was needed to drop it. */
    TT_CHECK(tel__reg_entries() == 0, "entries after exit: %u",
             tel__reg_entries());
    TT_CHECK(tel_whereis("selfie") == 0, "a dead process keeps its name");
    TT_CHECK_RC(tel_register("selfie", tel_self()), 0, "take the name");
    TT_CHECK(tel_whereis("selfie") == tel_self(), "whereis of the new owner");
}

Test(registry, a_self_registered_name_is_freed_when_the_process_exits,
     .timeout = 30)
{
    TT_RUN(&two_scheds, self_exit_main, NULL);
}

static void other_exit_main(void *arg)
{
    (void)arg;
    tel_pid_t w = spawn_waiter();
    TT_CHECK_RC(tel_register("lazy", w), 0, "register");
    finish(w);
    /* No flag could be set on w: the entry stays until someone looks. */
    TT_CHECK(tel__reg_entries() == 1, "entries: %u", tel__reg_entries());
    TT_CHECK(tel_whereis("lazy") == 0, "a dead process keeps its name");
    TT_CHECK(tel__reg_entries() == 0, "whereis left the dead entry: %u",
             tel__reg_entries());

    /* register takes a dead process's name over. */
    tel_pid_t w2 = spawn_waiter(), w3 = spawn_waiter();
    TT_CHECK_RC(tel_register("taken", w2), 0, "register");
    finish(w2);
    TT_CHECK_RC(tel_register("taken", w3), 0, "register over a dead entry");
    TT_CHECK(tel_whereis("taken") == w3, "whereis of the new owner");
    TT_CHECK(tel__reg_entries() == 1, "entries: %u", tel__reg_entries());

    /* unregister of a dead process's name: ENOENT, and the entry goes. */
    tel_pid_t w4 = spawn_waiter();
    TT_CHECK_RC(tel_register("gone", w4), 0, "register");
    finish(w4);
    TT_CHECK_RC(tel_unregister("gone"), TEL_ENOENT, "unregister dead");
    TT_CHECK(tel__reg_entries() == 1, "entries: %u", tel__reg_entries());
    finish(w3);
}

Test(registry, a_name_given_by_another_process_is_free_after_its_exit,
     .timeout = 30)
{
    TT_RUN(&two_scheds, other_exit_main, NULL);
}

static void moved_name_main(void *arg)
{
    (void)arg;
    atomic_store(&self_parent, tel_self());
    /* c names itself, loses the name to another process, then exits: its
     * exit must not take the other's name. */
    tel_pid_t c = spawn_self_namer("moving");
    TT_CHECK_RC(tel_unregister("moving"), 0, "unregister another's name");
    tel_pid_t w = spawn_waiter();
    TT_CHECK_RC(tel_register("moving", w), 0, "register for w");
    finish(c);
    TT_CHECK(tel_whereis("moving") == w, "c's exit took w's name");
    /* c loses its name, is given another one by us, and exits: that one is
     * freed too (eagerly: its flag is still set). */
    tel_pid_t d = spawn_self_namer("first");
    TT_CHECK_RC(tel_unregister("first"), 0, "unregister");
    TT_CHECK_RC(tel_register("second", d), 0, "rename d");
    TT_CHECK(tel__reg_entries() == 2, "entries: %u", tel__reg_entries());
    finish(d);
    TT_CHECK(tel__reg_entries() == 1, "entries: %u", tel__reg_entries());
    TT_CHECK(tel_whereis("second") == 0, "d's name outlived it");
    TT_CHECK(tel_whereis("moving") == w, "w lost its name");
    finish(w);
    TT_CHECK(tel_whereis("moving") == 0, "w's name outlived it");
}

Test(registry, an_exit_frees_only_the_exiting_process_name, .timeout = 30)
{
    TT_RUN(&two_scheds, moved_name_main, NULL);
}

/* Names itself, hibernates; the message that wakes it ends it. */
static void hib_woken(void *arg)
{
    (void)arg;
    tt_wait_one_fn(NULL); /* the wake-up message */
}

static void hib_namer(void *arg)
{
    (void)arg;
    TT_CHECK_RC(tel_register("sleeper", tel_self()), 0, "register self");
    tt_send_tag(atomic_load(&self_parent), 1);
    int rc = tel_hibernate(hib_woken, NULL);
    TT_CHECK_RC(rc, 0, "tel_hibernate"); /* only reached on failure */
}

static void hib_main(void *arg)
{
    (void)arg;
    atomic_store(&self_parent, tel_self());
    tel_pid_t c = 0;
    TT_CHECK_RC(tel_spawn(&c, hib_namer, NULL), 0, "tel_spawn");
    tel_msg_t *m = NULL;
    TT_CHECK_RC(tel_recv(&m, 10000), 0, "tel_recv");
    tel_msg_free(m);
    TT_CHECK(tel_whereis("sleeper") == c, "a hibernating process's name");
    finish(c);
    TT_CHECK(tel__reg_entries() == 0, "entries after exit: %u",
             tel__reg_entries());
    TT_CHECK(tel_whereis("sleeper") == 0, "the name outlived the process");
}

Test(registry, a_name_survives_hibernation_and_goes_at_exit, .timeout = 30)
{
    TT_RUN(&two_scheds, hib_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Across runs; outside a run                                                */
/* ------------------------------------------------------------------------ */

static tel_pid_t teardown_kept;

static void teardown_first_main(void *arg)
{
    (void)arg;
    atomic_store(&self_parent, tel_self());
    teardown_kept = spawn_waiter();
    TT_CHECK_RC(tel_register("kept", teardown_kept), 0, "register kept");
    (void)spawn_self_namer("kept-self");
    TT_CHECK_RC(tel_register("boss", tel_self()), 0, "register boss");
    /* Return with both processes still waiting: teardown kills them. */
}

static void teardown_second_main(void *arg)
{
    (void)arg;
    TT_CHECK(tel__reg_entries() == 0, "a new run starts with %u entries",
             tel__reg_entries());
    TT_CHECK(tel_whereis("kept") == 0, "kept survived the run");
    TT_CHECK(tel_whereis("kept-self") == 0, "kept-self survived the run");
    TT_CHECK(tel_whereis("boss") == 0, "boss survived the run");
    TT_CHECK_RC(tel_register("kept", tel_self()), 0, "register kept");
    TT_CHECK(tel_whereis("kept") == tel_self(), "whereis kept");
}

Test(registry, names_die_with_the_run_and_calls_after_it_fail, .timeout = 60)
{
    cr_assert_eq(tel_whereis("kept"), 0);
    cr_assert_eq(tel_register("kept", 1), TEL_ESHUTDOWN);
    cr_assert_eq(tel_unregister("kept"), TEL_ESHUTDOWN);
    TT_RUN(&two_scheds, teardown_first_main, NULL);
    cr_assert_eq(tel_whereis("kept"), 0, "whereis after the run");
    cr_assert_eq(tel_whereis("boss"), 0, "whereis after the run");
    cr_assert_eq(tel_register("kept", teardown_kept), TEL_ESHUTDOWN);
    cr_assert_eq(tel_unregister("kept"), TEL_ESHUTDOWN);
    cr_assert_eq(tel_register(NULL, teardown_kept), TEL_EINVAL);
    cr_assert_eq(tel_unregister(""), TEL_EINVAL);
    TT_RUN(&two_scheds, teardown_second_main, NULL);
    cr_assert_eq(tel_whereis("kept"), 0, "whereis after the second run");
}

/* ------------------------------------------------------------------------ */
/* A thread the runtime does not own                                         */
/* ------------------------------------------------------------------------ */

static tel_pid_t foreign_w, foreign_w2, foreign_dead, foreign_stale;
static atomic_int foreign_done;

static void *foreign_thread(void *arg)
{
    (void)arg;
    TT_CHECK_RC(tel_register("fx", foreign_w), 0, "foreign register");
    TT_CHECK(tel_whereis("fx") == foreign_w, "foreign whereis");
    TT_CHECK_RC(tel_register("fx", foreign_w2), TEL_EEXIST,
                "foreign register of a taken name");
    TT_CHECK_RC(tel_register("fy", foreign_w), TEL_EEXIST,
                "foreign register of a named pid");
    TT_CHECK_RC(tel_register("fz", foreign_dead), TEL_ENOPROC,
                "foreign register of a dead pid");
    TT_CHECK_RC(tel_unregister("fx"), 0, "foreign unregister");
    TT_CHECK_RC(tel_unregister("fx"), TEL_ENOENT, "foreign unregister twice");
    TT_CHECK(tel_whereis("fx") == 0, "foreign whereis after unregister");
    TT_CHECK_RC(tel_register("fx", foreign_w), 0, "foreign register again");
    /* A name whose process died: 0, and the entry is dropped. */
    TT_CHECK(tel_whereis("stale") == 0, "foreign whereis of a dead name");
    TT_CHECK(tel__reg_entries() == 1, "entries: %u", tel__reg_entries());
    atomic_store(&foreign_done, 1);
    return NULL;
}

static void foreign_main(void *arg)
{
    (void)arg;
    foreign_w = spawn_waiter();
    foreign_w2 = spawn_waiter();
    foreign_stale = spawn_waiter();
    TT_CHECK_RC(tel_register("stale", foreign_stale), 0, "register stale");
    finish(foreign_stale);
    int rc = tel_spawn(&foreign_dead, tt_return_fn, NULL);
    TT_CHECK_RC(rc, 0, "tel_spawn");
    TT_CHECK(tt_await_dead(foreign_dead, 10000), "stays alive");
    pthread_t th;
    if (!TT_CHECK(pthread_create(&th, NULL, foreign_thread, NULL) == 0,
                  "pthread_create"))
        return;
    bool ok;
    TT_AWAIT(ok, atomic_load(&foreign_done), 10000);
    TT_CHECK(ok, "the foreign thread did not finish");
    pthread_join(th, NULL);
    /* What the thread registered, a process sees. */
    TT_CHECK(tel_whereis("fx") == foreign_w, "whereis of a foreign register");
    finish(foreign_w);
    finish(foreign_w2);
}

Test(registry, calls_from_a_foreign_thread_while_the_runtime_runs,
     .timeout = 30)
{
    TT_RUN(&two_scheds, foreign_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Many names, two schedulers                                                */
/* ------------------------------------------------------------------------ */

#define CC_WORKERS 4

static size_t cc_n;
static tel_pid_t *cc_pids;
static atomic_size_t cc_named;   /* names registered so far */
static atomic_size_t cc_removed; /* names unregistered so far */
static atomic_int cc_workers_checked; /* workers past the full check */
static atomic_int cc_workers_done;

static void cc_name(char *buf, size_t i)
{
    snprintf(buf, TEL_NAME_MAX + 1, "holder-%zu", i);
}

/* Holder i: even ones name themselves; then each waits to be released. */
static void cc_holder(void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    if (i % 2 == 0) {
        char name[TEL_NAME_MAX + 1];
        cc_name(name, i);
        if (TT_CHECK_RC(tel_register(name, tel_self()), 0, "self register"))
            atomic_fetch_add(&cc_named, 1);
    }
    tt_wait_one_fn(NULL);
}

/* Worker w: names the odd holders i with i / 2 % CC_WORKERS == w, checks
 * every lookup while names come and go, then unregisters its share of the
 * names i % 4 == 1. */
static void cc_worker(void *arg)
{
    size_t w = (size_t)(uintptr_t)arg;
    char name[TEL_NAME_MAX + 1];
    struct tt_rng rng = {.s = w * 7919 + 1};
    for (size_t i = 1; i < cc_n; i += 2) {
        if (i / 2 % CC_WORKERS != w)
            continue;
        cc_name(name, i);
        if (TT_CHECK_RC(tel_register(name, cc_pids[i]), 0, "register"))
            atomic_fetch_add(&cc_named, 1);
        /* Meanwhile, a lookup sees the right pid or nothing. */
        size_t j = (size_t)tt_rng_below(&rng, cc_n);
        cc_name(name, j);
        tel_pid_t got = tel_whereis(name);
        TT_CHECK(got == 0 || got == cc_pids[j], "whereis %s gave %" PRIu64
                 ", not %" PRIu64, name, got, cc_pids[j]);
        if (i % 64 == 1)
            (void)tel_yield();
    }
    bool ok;
    TT_AWAIT(ok, atomic_load(&cc_named) == cc_n, 60000);
    if (!TT_CHECK(ok, "only %zu of %zu names registered",
                  atomic_load(&cc_named), cc_n))
        goto out;
    for (size_t i = 0; i < cc_n; i++) {
        cc_name(name, i);
        tel_pid_t got = tel_whereis(name);
        if (!TT_CHECK(got == cc_pids[i], "whereis %s gave %" PRIu64
                      ", not %" PRIu64, name, got, cc_pids[i]))
            goto out;
        if (i % 256 == 0)
            (void)tel_yield();
    }
    /* Unregister only once every worker has checked every name. */
    atomic_fetch_add(&cc_workers_checked, 1);
    TT_AWAIT(ok, atomic_load(&cc_workers_checked) == CC_WORKERS, 60000);
    if (!TT_CHECK(ok, "the other workers did not check"))
        goto out;
    /* A taken name stays taken, whoever asks (even names are never
     * unregistered). */
    cc_name(name, 2 * w);
    TT_CHECK_RC(tel_register(name, tel_self()), TEL_EEXIST, "taken name");
    for (size_t i = 1; i < cc_n; i += 4) {
        if (i / 4 % CC_WORKERS != w)
            continue;
        cc_name(name, i);
        if (TT_CHECK_RC(tel_unregister(name), 0, "unregister"))
            atomic_fetch_add(&cc_removed, 1);
        size_t j = (size_t)tt_rng_below(&rng, cc_n);
        cc_name(name, j);
        tel_pid_t got = tel_whereis(name);
        TT_CHECK(got == 0 || got == cc_pids[j], "whereis %s gave %" PRIu64,
                 name, got);
    }
out:
    atomic_fetch_add(&cc_workers_done, 1);
}

static void concurrent_main(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < cc_n; i++) {
        int rc = tel_spawn(&cc_pids[i], cc_holder, (void *)(uintptr_t)i);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn holder"))
            return;
    }
    for (size_t w = 0; w < CC_WORKERS; w++) {
        int rc = tel_spawn(NULL, cc_worker, (void *)(uintptr_t)w);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn worker"))
            return;
    }
    bool ok;
    TT_AWAIT(ok, atomic_load(&cc_workers_done) == CC_WORKERS, 120000);
    if (!TT_CHECK(ok, "the workers did not finish"))
        return;
    size_t left = cc_n - atomic_load(&cc_removed);
    TT_CHECK(tel__reg_entries() == left, "entries %u, want %zu",
             tel__reg_entries(), left);
    for (size_t i = 0; i < cc_n; i++)
        tt_send_tag(cc_pids[i], 0);
    TT_CHECK(tt_await_count(1, 60000), "the holders did not exit");
    /* The self-named ones went with their exits; the rest stay until a
     * lookup finds them dead. */
    size_t odd_left = cc_n / 2 - atomic_load(&cc_removed);
    TT_CHECK(tel__reg_entries() == odd_left, "entries %u after the exits, "
             "want %zu", tel__reg_entries(), odd_left);
    char name[TEL_NAME_MAX + 1];
    for (size_t i = 0; i < cc_n; i++) {
        cc_name(name, i);
        if (!TT_CHECK(tel_whereis(name) == 0, "%s outlived its process", name))
            break;
    }
    TT_CHECK(tel__reg_entries() == 0, "entries %u at the end",
             tel__reg_entries());
}

Test(registry, many_names_registered_and_looked_up_on_two_schedulers,
     .timeout = 300)
{
    cc_n = tel_test_live_cap(tel_test_scaled(10000, 1000)) & ~(size_t)1;
    cc_pids = calloc(cc_n, sizeof *cc_pids);
    cr_assert_not_null(cc_pids);
    TT_RUN(&two_scheds, concurrent_main, NULL);
    free(cc_pids);
}

/* ------------------------------------------------------------------------ */
/* Out of memory                                                             */
/* ------------------------------------------------------------------------ */

#ifdef TEL_FAILINJ
#define NOMEM_N 40 /* past two table rebuilds (at 13 and 25 entries) */

static void nomem_main(void *arg)
{
    (void)arg;
    tel_pid_t pids[NOMEM_N];
    char name[TEL_NAME_MAX + 1];
    for (int k = 0; k < NOMEM_N; k++)
        pids[k] = spawn_waiter();
    unsigned failures = 0;
    for (int k = 0; k < NOMEM_N; k++) {
        snprintf(name, sizeof name, "n%d", k);
        for (long n = 0;; n++) {
            tel__failinj_arm(n);
            int rc = tel_register(name, pids[k]);
            tel__failinj_arm(-1);
            if (rc == TEL_ENOMEM) {
                failures++;
                /* Nothing half-done: no name, and the others intact. */
                TT_CHECK(tel_whereis(name) == 0, "%s after ENOMEM", name);
                TT_CHECK(tel__reg_entries() == (uint32_t)k,
                         "entries %u after ENOMEM, want %d",
                         tel__reg_entries(), k);
                continue;
            }
            if (!TT_CHECK_RC(rc, 0, "tel_register"))
                return;
            break;
        }
    }
    /* One allocation per name, two more for each table built. */
    TT_CHECK(failures >= NOMEM_N + 3 * 2, "only %u failures", failures);
    for (int k = 0; k < NOMEM_N; k++) {
        snprintf(name, sizeof name, "n%d", k);
        TT_CHECK(tel_whereis(name) == pids[k], "%s lost", name);
    }
    for (int k = 0; k < NOMEM_N; k++)
        finish(pids[k]);
}

Test(registry, out_of_memory_is_enomem_and_changes_nothing, .timeout = 60)
{
    TT_RUN(&one_sched, nomem_main, NULL);
}
#endif
