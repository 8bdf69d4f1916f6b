/*
 * tests/core/mailbox_test.c: sending and receiving: payload copies, order
 * per sender, selective receive and its scan cost, argument errors, and
 * sends from foreign threads. Black-box: include/telar.h only.
 */
#include "common.h"

static _Atomic tel_pid_t main_pid;

static void set_main_pid(void)
{
    atomic_store(&main_pid, tel_self());
}

/* ------------------------------------------------------------------------ */
/* Payload copies                                                            */
/* ------------------------------------------------------------------------ */

#define COPY_SIZE 1000

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 + 3);
}

static atomic_int copy_ok;

/* Receives the payload, then a go message, then checks the payload. */
static void copy_receiver(void *arg)
{
    (void)arg;
    tel_msg_t *payload = NULL, *go = NULL;
    int rc = tel_recv(&payload, 10000);
    if (!TT_CHECK_RC(rc, 0, "tel_recv payload"))
        return;
    rc = tel_recv(&go, 10000);
    if (!TT_CHECK_RC(rc, 0, "tel_recv go")) {
        tel_msg_free(payload);
        return;
    }
    /* The sender overwrote its buffer before sending go. */
    bool same = payload->size == COPY_SIZE && payload->data != NULL;
    for (size_t i = 0; same && i < COPY_SIZE; i++)
        same = ((unsigned char *)payload->data)[i] == pattern(i);
    if (TT_CHECK(same, "the receiver saw the sender's later writes"))
        atomic_store(&copy_ok, 1);
    /* The copy is the receiver's own and writable. */
    memset(payload->data, 0x5A, payload->size);
    tel_msg_free(go);
    tel_msg_free(payload);
    tt_send_tag(atomic_load(&main_pid), 2);
}

static void copy_main(void *arg)
{
    (void)arg;
    set_main_pid();
    unsigned char *buf = malloc(COPY_SIZE);
    if (!TT_CHECK(buf != NULL, "malloc"))
        return;
    for (size_t i = 0; i < COPY_SIZE; i++)
        buf[i] = pattern(i);
    tel_pid_t pid = 0;
    int rc = tel_spawn(&pid, copy_receiver, NULL);
    if (TT_CHECK_RC(rc, 0, "tel_spawn")) {
        rc = tel_send(pid, 1, buf, COPY_SIZE);
        TT_CHECK_RC(rc, 0, "tel_send");
        memset(buf, 0xEE, COPY_SIZE);
        tt_send_tag(pid, 2);
        tel_msg_t *m = NULL;
        rc = tel_recv(&m, 10000);
        TT_CHECK_RC(rc, 0, "tel_recv");
        tel_msg_free(m);
    }
    free(buf);
}

Test(mailbox, send_copies_the_payload, .timeout = 30)
{
    TT_RUN(NULL, copy_main, NULL);
    cr_assert_eq(atomic_load(&copy_ok), 1);
}

/* Echo each message back to its sender, with the same tag and payload. */
static void echo(void *arg)
{
    (void)arg;
    for (;;) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, TEL_INFINITY);
        if (!TT_CHECK_RC(rc, 0, "tel_recv in echo"))
            return;
        if (m->tag == UINT64_MAX - 1) {
            tel_msg_free(m);
            return;
        }
        rc = tel_send(m->from, m->tag, m->data, m->size);
        TT_CHECK_RC(rc, 0, "tel_send in echo");
        tel_msg_free(m);
    }
}

static const size_t sizes[] = {1,    2,    3,     4,     5,      6,      7,
                               8,    9,    12,    15,    16,     17,     63,
                               64,   65,   255,   256,   1000,   4095,   4096,
                               4097, 65535, 65536, 100000, 1 << 20,
                               (3 << 20) + 5};

static atomic_int sizes_ok;

static void sizes_main(void *arg)
{
    (void)arg;
    tel_pid_t pid = 0;
    int rc = tel_spawn(&pid, echo, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    size_t max = sizes[sizeof sizes / sizeof sizes[0] - 1];
    unsigned char *buf = malloc(max);
    if (!TT_CHECK(buf != NULL, "malloc"))
        return;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)(i * 31 + k);
        rc = tel_send(pid, k, buf, n);
        if (!TT_CHECK_RC(rc, 0, "tel_send"))
            break;
        memset(buf, 0, n);
        tel_msg_t *m = NULL;
        rc = tel_recv(&m, 10000);
        if (!TT_CHECK_RC(rc, 0, "tel_recv"))
            break;
        bool same = m->tag == k && m->size == n && m->from == pid &&
                    m->data != NULL;
        for (size_t i = 0; same && i < n; i++)
            same = ((unsigned char *)m->data)[i] == (unsigned char)(i * 31 + k);
        TT_CHECK(same, "a %zu-byte payload came back wrong (size %zu)", n,
                 m->size);
        if (same)
            atomic_fetch_add(&sizes_ok, 1);
        tel_msg_free(m);
    }
    free(buf);
    tt_send_tag(pid, UINT64_MAX - 1);
}

Test(mailbox, payloads_of_many_sizes_arrive_intact, .timeout = 30)
{
    TT_RUN(NULL, sizes_main, NULL);
    cr_assert_eq(atomic_load(&sizes_ok), (int)(sizeof sizes / sizeof sizes[0]));
}

/* ------------------------------------------------------------------------ */
/* Message fields                                                            */
/* ------------------------------------------------------------------------ */

static void zero_size_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    char buf[4] = "abc";
    int rc = tel_send(self, 1, NULL, 0);
    TT_CHECK_RC(rc, 0, "tel_send(NULL, 0)");
    rc = tel_send(self, 2, buf, 0);
    TT_CHECK_RC(rc, 0, "tel_send(buf, 0)");
    for (uint64_t want = 1; want <= 2; want++) {
        tel_msg_t *m = NULL;
        rc = tel_recv(&m, 10000);
        if (!TT_CHECK_RC(rc, 0, "tel_recv"))
            return;
        TT_CHECK(m->tag == want, "tag %" PRIu64 ", want %" PRIu64, m->tag,
                 want);
        TT_CHECK(m->size == 0, "size %zu, want 0", m->size);
        TT_CHECK(m->data == NULL, "data of an empty message is %p", m->data);
        TT_CHECK(m->from == self, "from is %" PRIu64, m->from);
        tel_msg_free(m);
    }
}

Test(mailbox, zero_size_message_has_null_data, .timeout = 30)
{
    TT_RUN(NULL, zero_size_main, NULL);
}

static void align_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    static unsigned char buf[5000];
    for (size_t n = 1; n <= 5000; n += (n < 300 ? 1 : 97)) {
        int rc = tel_send(self, n, buf, n);
        if (!TT_CHECK_RC(rc, 0, "tel_send"))
            return;
        tel_msg_t *m = NULL;
        rc = tel_recv(&m, 10000);
        if (!TT_CHECK_RC(rc, 0, "tel_recv"))
            return;
        TT_CHECK(m->data != NULL &&
                     (uintptr_t)m->data % alignof(max_align_t) == 0,
                 "a %zu-byte payload is at %p, not aligned to %zu", n,
                 m->data, (size_t)alignof(max_align_t));
        tel_msg_free(m);
    }
}

Test(mailbox, data_is_aligned_for_any_type, .timeout = 30)
{
    TT_RUN(NULL, align_main, NULL);
}

static void send_tags_to_main(void *arg)
{
    (void)arg;
    tel_pid_t to = atomic_load(&main_pid);
    tt_send_tag(to, 0);
    tt_send_tag(to, UINT64_MAX);
    tt_send_tag(to, 0x123456789ABCDEFull);
}

static void from_main(void *arg)
{
    (void)arg;
    set_main_pid();
    tel_pid_t pid = 0;
    int rc = tel_spawn(&pid, send_tags_to_main, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    static const uint64_t tags[] = {0, UINT64_MAX, 0x123456789ABCDEFull};
    for (int i = 0; i < 3; i++) {
        tel_msg_t *m = NULL;
        rc = tel_recv(&m, 10000);
        if (!TT_CHECK_RC(rc, 0, "tel_recv"))
            return;
        TT_CHECK(m->from == pid, "from %" PRIu64 ", sender is %" PRIu64,
                 m->from, pid);
        TT_CHECK(m->tag == tags[i], "tag %#" PRIx64 ", want %#" PRIx64,
                 m->tag, tags[i]);
        tel_msg_free(m);
    }
}

Test(mailbox, from_is_the_sender_and_tag_is_kept, .timeout = 30)
{
    TT_RUN(NULL, from_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Order per sender                                                          */
/* ------------------------------------------------------------------------ */

#define SENDERS 8

static size_t order_n;

struct seq_msg {
    uint64_t sender;
    uint64_t seq;
};

static void seq_sender(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    tel_pid_t to = atomic_load(&main_pid);
    for (uint64_t i = 0; i < order_n; i++) {
        struct seq_msg s = {id, i};
        int rc = tel_send(to, id, &s, sizeof s);
        if (!TT_CHECK_RC(rc, 0, "tel_send"))
            return;
    }
}

static void order_main(void *arg)
{
    (void)arg;
    set_main_pid();
    tel_pid_t pids[SENDERS];
    for (uintptr_t i = 0; i < SENDERS; i++) {
        int rc = tel_spawn(&pids[i], seq_sender, (void *)i);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
    }
    uint64_t next[SENDERS] = {0};
    for (size_t k = 0; k < SENDERS * order_n; k++) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 20000);
        if (!TT_CHECK(rc == 0, "message %zu: %s", k, tel_errname(rc)))
            return;
        struct seq_msg s;
        bool ok = m->size == sizeof s;
        if (ok) {
            memcpy(&s, m->data, sizeof s);
            ok = s.sender < SENDERS && m->tag == s.sender &&
                 m->from == pids[s.sender];
        }
        tel_msg_free(m);
        if (!TT_CHECK(ok, "message %zu is malformed or from the wrong pid",
                      k))
            return;
        if (!TT_CHECK(s.seq == next[s.sender],
                      "sender %" PRIu64 ": got seq %" PRIu64
                      " after %" PRIu64 " messages",
                      s.sender, s.seq, next[s.sender]))
            return;
        next[s.sender]++;
    }
}

Test(mailbox, order_is_kept_per_sender_with_concurrent_senders,
     .timeout = 120)
{
    order_n = tel_test_scaled(20000, 1000);
    TT_RUN(NULL, order_main, NULL);
}

Test(mailbox, order_is_kept_per_sender_on_four_schedulers, .timeout = 120)
{
    order_n = tel_test_scaled(20000, 1000);
    tel_config_t cfg = {.schedulers = 4};
    TT_RUN(&cfg, order_main, NULL);
}

/*
 * Many processes exchanging random messages. The plan is drawn up front from
 * the seed: each process sends EX_SENDS messages to random peers, and knows
 * how many it will receive. Each message carries its per-pair sequence
 * number, which the receiver checks.
 */
#define EX_SENDS 10
#define TAG_GO 1
#define TAG_PEER 2

static uint64_t ex_seed;
static size_t ex_n;
static tel_pid_t *ex_pids;
static uint32_t *ex_targets; /* ex_n * EX_SENDS */
static uint32_t *ex_expect;  /* messages each process receives */
static atomic_size_t ex_received;

struct ex_payload {
    uint32_t sender;
    uint32_t seq;
};

static bool is_go(const tel_msg_t *m, void *ctx)
{
    (void)ctx;
    return m->tag == TAG_GO;
}

static void exchanger(void *arg)
{
    uint32_t me = (uint32_t)(uintptr_t)arg;
    tel_msg_t *go = NULL;
    int rc = tel_recv_match(&go, is_go, NULL, TEL_INFINITY);
    if (!TT_CHECK_RC(rc, 0, "tel_recv_match go"))
        return;
    tel_msg_free(go);

    /* Send, numbering messages per target. */
    const uint32_t *t = &ex_targets[(size_t)me * EX_SENDS];
    for (int i = 0; i < EX_SENDS; i++) {
        struct ex_payload p = {me, 0};
        for (int j = 0; j < i; j++)
            p.seq += t[j] == t[i];
        rc = tel_send(ex_pids[t[i]], TAG_PEER, &p, sizeof p);
        if (!TT_CHECK_RC(rc, 0, "tel_send to a peer"))
            return;
    }

    /*
     * Receive, checking each sender's numbers count up from 0. A process
     * that gets few messages keeps a short list of senders; a hot one keeps
     * a counter per process.
     */
    uint32_t n = ex_expect[me];
    bool dense = n > 64;
    uint32_t *counts = calloc(dense ? ex_n : n + 1, sizeof *counts);
    uint32_t *senders = dense ? NULL : calloc(n + 1, sizeof *senders);
    if (!TT_CHECK(counts != NULL && (dense || senders != NULL), "calloc")) {
        free(counts);
        free(senders);
        return;
    }
    uint32_t nsenders = 0;
    for (uint32_t k = 0; k < n; k++) {
        tel_msg_t *m = NULL;
        rc = tel_recv(&m, 60000);
        if (!TT_CHECK(rc == 0, "process %u, message %u of %u: %s (seed %"
                      PRIu64 ")",
                      me, k, n, tel_errname(rc), ex_seed))
            break;
        struct ex_payload p = {0, 0};
        bool ok = m->tag == TAG_PEER && m->size == sizeof p;
        if (ok) {
            memcpy(&p, m->data, sizeof p);
            ok = p.sender < ex_n && m->from == ex_pids[p.sender];
        }
        tel_msg_free(m);
        if (!TT_CHECK(ok, "process %u got a malformed message (seed %" PRIu64
                      ")",
                      me, ex_seed))
            break;
        uint32_t s = p.sender;
        if (!dense) {
            s = 0;
            while (s < nsenders && senders[s] != p.sender)
                s++;
            if (s == nsenders) {
                senders[nsenders] = p.sender;
                counts[nsenders++] = 0;
            }
        }
        if (!TT_CHECK(p.seq == counts[s],
                      "process %u: from %u got seq %u, want %u (seed %" PRIu64
                      ")",
                      me, p.sender, p.seq, counts[s], ex_seed))
            break;
        counts[s]++;
        atomic_fetch_add(&ex_received, 1);
    }
    free(counts);
    free(senders);
    tt_send_tag(atomic_load(&main_pid), 3);
}

static void exchange_main(void *arg)
{
    (void)arg;
    set_main_pid();
    for (size_t i = 0; i < ex_n; i++) {
        int rc = tel_spawn(&ex_pids[i], exchanger, (void *)(uintptr_t)i);
        if (!TT_CHECK(rc == 0, "spawn %zu: %s", i, tel_errname(rc)))
            return;
    }
    for (size_t i = 0; i < ex_n; i++)
        if (tt_send_tag(ex_pids[i], TAG_GO) != 0)
            return;
    for (size_t i = 0; i < ex_n; i++) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 60000);
        if (!TT_CHECK(rc == 0, "done %zu of %zu: %s (seed %" PRIu64 ")", i,
                      ex_n, tel_errname(rc), ex_seed))
            return;
        tel_msg_free(m);
    }
}

Test(mailbox, random_exchange_among_many_processes_keeps_pair_order,
     .timeout = 240)
{
    ex_seed = tel_test_seed();
    ex_n = tel_test_scaled(100000, 200);
    ex_pids = calloc(ex_n, sizeof *ex_pids);
    ex_targets = calloc(ex_n * EX_SENDS, sizeof *ex_targets);
    ex_expect = calloc(ex_n, sizeof *ex_expect);
    cr_assert(ex_pids && ex_targets && ex_expect);
    struct tt_rng rng = {ex_seed};
    for (size_t i = 0; i < ex_n * EX_SENDS; i++) {
        /* Favour a few hot receivers now and then, to mix load. */
        uint32_t t = (uint32_t)(tt_rng_below(&rng, 8) == 0
                                    ? tt_rng_below(&rng, 4)
                                    : tt_rng_below(&rng, ex_n));
        ex_targets[i] = t;
        ex_expect[t]++;
    }
    TT_RUN(NULL, exchange_main, NULL);
    cr_assert_eq(atomic_load(&ex_received), ex_n * EX_SENDS,
                 "%zu of %zu messages received (seed %" PRIu64 ")",
                 atomic_load(&ex_received), ex_n * EX_SENDS, ex_seed);
    free(ex_pids);
    free(ex_targets);
    free(ex_expect);
}

/* ------------------------------------------------------------------------ */
/* Selective receive                                                         */
/* ------------------------------------------------------------------------ */

static bool tag_is_even(const tel_msg_t *m, void *ctx)
{
    (void)ctx;
    return m->tag % 2 == 0;
}

static bool tag_equals(const tel_msg_t *m, void *ctx)
{
    return m->tag == *(const uint64_t *)ctx;
}

/* Receives and checks the tags in want, in order, then an empty mailbox. */
static void expect_tags(const uint64_t *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 0);
        if (!TT_CHECK(rc == 0, "%s: message %zu missing (%s)", what, i,
                      tel_errname(rc)))
            return;
        bool ok = m->tag == want[i];
        TT_CHECK(ok, "%s: message %zu has tag %" PRIu64 ", want %" PRIu64,
                 what, i, m->tag, want[i]);
        tel_msg_free(m);
        if (!ok)
            return;
    }
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 0);
    TT_CHECK(rc == TEL_ETIMEDOUT, "%s: an extra message (tag %" PRIu64 ")",
             what, m ? m->tag : 0);
    tel_msg_free(m);
}

static void selective_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    static const uint64_t tags[] = {1, 3, 2, 5, 4, 7, 6, 9};
    for (size_t i = 0; i < 8; i++)
        if (tt_send_tag(self, tags[i]) != 0)
            return;
    /* The first even in arrival order is 2, then 4. */
    tel_msg_t *m = NULL;
    int rc = tel_recv_match(&m, tag_is_even, NULL, 0);
    if (TT_CHECK_RC(rc, 0, "tel_recv_match"))
        TT_CHECK(m->tag == 2, "first even is %" PRIu64 ", want 2", m->tag);
    tel_msg_free(m);
    m = NULL;
    rc = tel_recv_match(&m, tag_is_even, NULL, 0);
    if (TT_CHECK_RC(rc, 0, "tel_recv_match"))
        TT_CHECK(m->tag == 4, "second even is %" PRIu64 ", want 4", m->tag);
    tel_msg_free(m);
    /* A match on an exact tag, via ctx. */
    uint64_t want = 7;
    m = NULL;
    rc = tel_recv_match(&m, tag_equals, &want, 0);
    if (TT_CHECK_RC(rc, 0, "tel_recv_match tag 7"))
        TT_CHECK(m->tag == 7, "got %" PRIu64 ", want 7", m->tag);
    tel_msg_free(m);
    /* The rest are still there, in arrival order. */
    static const uint64_t rest[] = {1, 3, 5, 6, 9};
    expect_tags(rest, 5, "after selective receives");
}

Test(mailbox, selective_receive_takes_the_first_match_and_keeps_the_rest,
     .timeout = 30)
{
    TT_RUN(NULL, selective_main, NULL);
}

static void delayed_sender(void *arg)
{
    uint64_t tag = (uint64_t)(uintptr_t)arg;
    (void)tel_sleep(30);
    tt_send_tag(atomic_load(&main_pid), tag);
}

static void selective_wait_main(void *arg)
{
    (void)arg;
    set_main_pid();
    tel_pid_t self = tel_self();
    for (uint64_t t = 1; t <= 9; t += 2)
        if (tt_send_tag(self, t) != 0)
            return;
    int rc = tel_spawn(NULL, delayed_sender, (void *)(uintptr_t)100);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    tel_msg_t *m = NULL;
    rc = tel_recv_match(&m, tag_is_even, NULL, 20000);
    if (TT_CHECK_RC(rc, 0, "tel_recv_match"))
        TT_CHECK(m->tag == 100, "got tag %" PRIu64 ", want 100", m->tag);
    tel_msg_free(m);
    /* A match that never comes times out and takes nothing. */
    m = (tel_msg_t *)&m;
    rc = tel_recv_match(&m, tag_is_even, NULL, 20);
    TT_CHECK_RC(rc, TEL_ETIMEDOUT, "tel_recv_match with no match");
    TT_CHECK(m == NULL, "*out is not NULL after a timeout");
    static const uint64_t rest[] = {1, 3, 5, 7, 9};
    expect_tags(rest, 5, "after waiting for a match");
}

Test(mailbox, selective_receive_waits_for_a_later_match, .timeout = 30)
{
    TT_RUN(NULL, selective_wait_main, NULL);
}

/*
 * The scan-cost test: k non-matching messages are queued, then a peer sends
 * `fresh` more, one at a time with a pause between, the last one matching.
 * Each arrival wakes the receiver. A receiver that rescans from the start
 * on each wake-up calls match about k times per wake-up; one that keeps its
 * place calls it k + fresh times in all.
 */
#define SCAN_K 1000
#define SCAN_FRESH 40
#define TAG_JUNK 1
#define TAG_WANT 2

static atomic_uint_fast64_t match_calls;

static bool counting_match(const tel_msg_t *m, void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&match_calls, 1);
    return m->tag == TAG_WANT;
}

static void dripper(void *arg)
{
    (void)arg;
    tel_pid_t to = atomic_load(&main_pid);
    for (uint64_t i = 0; i < SCAN_FRESH; i++) {
        (void)tel_sleep(2);
        uint64_t v = SCAN_K + i;
        int rc = tel_send(to, i + 1 == SCAN_FRESH ? TAG_WANT : TAG_JUNK, &v,
                          sizeof v);
        if (!TT_CHECK_RC(rc, 0, "tel_send in dripper"))
            return;
    }
}

static atomic_uint_fast64_t scan_calls_seen;

static void scan_main(void *arg)
{
    (void)arg;
    set_main_pid();
    tel_pid_t self = tel_self();
    for (uint64_t i = 0; i < SCAN_K; i++)
        if (tt_send_u64(self, TAG_JUNK, i) != 0)
            return;
    int rc = tel_spawn(NULL, dripper, NULL);
    if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
        return;
    atomic_store(&match_calls, 0);
    tel_msg_t *m = NULL;
    rc = tel_recv_match(&m, counting_match, NULL, 30000);
    atomic_store(&scan_calls_seen, atomic_load(&match_calls));
    if (!TT_CHECK_RC(rc, 0, "tel_recv_match"))
        return;
    TT_CHECK(m->tag == TAG_WANT && tt_msg_u64(m) == SCAN_K + SCAN_FRESH - 1,
             "matched the wrong message");
    tel_msg_free(m);
    /* The rejected ones are all there, in order. */
    for (uint64_t i = 0; i < SCAN_K + SCAN_FRESH - 1; i++) {
        m = NULL;
        rc = tel_recv(&m, 0);
        if (!TT_CHECK(rc == 0, "rejected message %" PRIu64 " missing", i))
            return;
        uint64_t v = tt_msg_u64(m);
        tel_msg_free(m);
        if (!TT_CHECK(v == i, "rejected message %" PRIu64 " is %" PRIu64, i,
                      v))
            return;
    }
}

Test(mailbox, selective_receive_does_not_rescan_rejected_messages,
     .timeout = 60)
{
    TT_RUN(NULL, scan_main, NULL);
    uint64_t calls = atomic_load(&scan_calls_seen);
    uint64_t shown = SCAN_K + SCAN_FRESH;
    cr_assert_geq(calls, shown,
                  "match was called %" PRIu64 " times, fewer than the %" PRIu64
                  " messages it had to see",
                  calls, shown);
    cr_assert_leq(calls, shown + 8,
                  "match was called %" PRIu64 " times for %d queued and %d "
                  "fresh messages: rejected messages were scanned again",
                  calls, SCAN_K, SCAN_FRESH);
}

/* The same, when the receive times out: each message is shown once. */
static void scan_timeout_main(void *arg)
{
    (void)arg;
    set_main_pid();
    tel_pid_t self = tel_self();
    for (uint64_t i = 0; i < SCAN_K; i++)
        if (tt_send_u64(self, TAG_JUNK, i) != 0)
            return;
    atomic_store(&match_calls, 0);
    tel_msg_t *m = NULL;
    int rc = tel_recv_match(&m, counting_match, NULL, 50);
    atomic_store(&scan_calls_seen, atomic_load(&match_calls));
    TT_CHECK_RC(rc, TEL_ETIMEDOUT, "tel_recv_match with no match");
    tel_msg_free(m);
}

Test(mailbox, selective_receive_that_times_out_scans_each_message_once,
     .timeout = 30)
{
    TT_RUN(NULL, scan_timeout_main, NULL);
    uint64_t calls = atomic_load(&scan_calls_seen);
    cr_assert_geq(calls, SCAN_K, "match called %" PRIu64 " times", calls);
    cr_assert_leq(calls, SCAN_K + 8,
                  "match called %" PRIu64 " times for %d messages", calls,
                  SCAN_K);
}

/*
 * Receives with short timeouts and matches racing senders on other
 * schedulers: a message may come just as the receive parks, just as its
 * timer fires, or while the receiver waits for another tag (it is then
 * saved). Two senders, one tag each, send increasing numbers with random
 * pauses; the receiver asks for the two tags in turn with 0 to 2 ms
 * timeouts. Nothing may be lost, duplicated or reordered per tag.
 */
#define RACE_SENDERS 2

static size_t race_n;
static uint64_t race_seed;

struct race_arg {
    tel_pid_t to;
    uint64_t tag;
};

static void race_sender(void *arg)
{
    const struct race_arg *a = arg;
    struct tt_rng r = {race_seed + a->tag};
    for (uint64_t i = 0; i < race_n; i++) {
        if (tt_rng_below(&r, 64) == 0)
            (void)tel_sleep((int64_t)tt_rng_below(&r, 2));
        else if (tt_rng_below(&r, 4) == 0)
            tel_yield();
        if (!TT_CHECK_RC(tt_send_u64(a->to, a->tag, i), 0, "tel_send"))
            return;
    }
}

static bool tag_is(const tel_msg_t *m, void *ctx)
{
    return m->tag == *(const uint64_t *)ctx;
}

static void race_main(void *arg)
{
    (void)arg;
    struct race_arg args[RACE_SENDERS];
    for (uint64_t k = 0; k < RACE_SENDERS; k++) {
        args[k] = (struct race_arg){.to = tel_self(), .tag = k + 1};
        if (!TT_CHECK_RC(tel_spawn(NULL, race_sender, &args[k]), 0,
                         "tel_spawn"))
            return;
    }
    struct tt_rng r = {race_seed};
    uint64_t next[RACE_SENDERS] = {0};
    size_t got = 0, turn = 0;
    int64_t deadline = tt_now_ms() + 60000;
    while (got < RACE_SENDERS * race_n) {
        if (!TT_CHECK(tt_now_ms() < deadline,
                      "%zu of %zu messages after 60 s (seed %" PRIu64 ")",
                      got, RACE_SENDERS * race_n, race_seed))
            return;
        uint64_t want = turn++ % RACE_SENDERS + 1;
        if (next[want - 1] == race_n)
            continue;
        tel_msg_t *m = NULL;
        int64_t ms = (int64_t)tt_rng_below(&r, 3);
        int rc = tt_rng_below(&r, 2) ? tel_recv_match(&m, tag_is, &want, ms)
                                     : tel_recv(&m, ms);
        if (rc == TEL_ETIMEDOUT)
            continue;
        if (!TT_CHECK_RC(rc, 0, "receive"))
            return;
        uint64_t tag = m->tag, v = tt_msg_u64(m);
        tel_msg_free(m);
        if (!TT_CHECK(tag >= 1 && tag <= RACE_SENDERS &&
                          v == next[tag - 1],
                      "tag %" PRIu64 ": got %" PRIu64 ", want %" PRIu64
                      " (seed %" PRIu64 ")",
                      tag, v, tag >= 1 && tag <= RACE_SENDERS ? next[tag - 1]
                                                              : 0,
                      race_seed))
            return;
        next[tag - 1]++;
        got++;
    }
    tel_msg_t *m = NULL;
    TT_CHECK_RC(tel_recv(&m, 0), TEL_ETIMEDOUT, "a message too many");
    tel_msg_free(m);
}

Test(mailbox, timed_selective_receives_racing_senders_keep_order,
     .timeout = 120)
{
    race_n = tel_test_scaled(20000, 2000);
    race_seed = tel_test_seed();
    tel_config_t cfg = {.schedulers = 2};
    TT_RUN(&cfg, race_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* Receive errors                                                            */
/* ------------------------------------------------------------------------ */

static void empty_timeout_main(void *arg)
{
    (void)arg;
    tel_msg_t *m = (tel_msg_t *)&m;
    int rc = tel_recv(&m, 0);
    TT_CHECK_RC(rc, TEL_ETIMEDOUT, "tel_recv(0) on an empty mailbox");
    TT_CHECK(m == NULL, "*out is %p after a timeout, want NULL", (void *)m);
    m = (tel_msg_t *)&m;
    rc = tel_recv_match(&m, tag_is_even, NULL, 0);
    TT_CHECK_RC(rc, TEL_ETIMEDOUT, "tel_recv_match(0) on an empty mailbox");
    TT_CHECK(m == NULL, "*out is %p after a match timeout, want NULL",
             (void *)m);
}

Test(mailbox, recv_with_zero_timeout_on_an_empty_mailbox_times_out,
     .timeout = 30)
{
    TT_RUN(NULL, empty_timeout_main, NULL);
}

static void bad_args_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    tt_send_tag(self, 42);
    int rc = tel_recv(NULL, 0);
    TT_CHECK_RC(rc, TEL_EINVAL, "tel_recv(NULL, 0)");
    rc = tel_recv(NULL, TEL_INFINITY);
    TT_CHECK_RC(rc, TEL_EINVAL, "tel_recv(NULL, TEL_INFINITY)");
    rc = tel_recv_match(NULL, tag_is_even, NULL, 0);
    TT_CHECK_RC(rc, TEL_EINVAL, "tel_recv_match(NULL out)");
    tel_msg_t *m = NULL;
    rc = tel_recv_match(&m, NULL, NULL, 0);
    TT_CHECK_RC(rc, TEL_EINVAL, "tel_recv_match(NULL match)");
    static const int64_t bad_timeouts[] = {-2, -1000, INT64_MIN};
    for (int i = 0; i < 3; i++) {
        m = NULL;
        rc = tel_recv(&m, bad_timeouts[i]);
        TT_CHECK(rc == TEL_EINVAL, "tel_recv(timeout %" PRId64 ") gave %s",
                 bad_timeouts[i], tel_errname(rc));
        if (rc == 0)
            tel_msg_free(m);
        m = NULL;
        rc = tel_recv_match(&m, tag_is_even, NULL, bad_timeouts[i]);
        TT_CHECK(rc == TEL_EINVAL,
                 "tel_recv_match(timeout %" PRId64 ") gave %s",
                 bad_timeouts[i], tel_errname(rc));
        if (rc == 0)
            tel_msg_free(m);
    }
    /* None of those consumed the queued message. */
    m = NULL;
    rc = tel_recv(&m, 0);
    if (TT_CHECK(rc == 0, "the queued message was lost to a bad call"))
        TT_CHECK(m->tag == 42, "tag %" PRIu64, m->tag);
    tel_msg_free(m);
}

Test(mailbox, recv_rejects_null_out_null_match_and_bad_timeouts,
     .timeout = 30)
{
    TT_RUN(NULL, bad_args_main, NULL);
}

static atomic_int foreign_recv_rc = 1, foreign_match_rc = 1;

static void *foreign_recv_thread(void *arg)
{
    (void)arg;
    tel_msg_t *m = NULL;
    atomic_store(&foreign_recv_rc, tel_recv(&m, 0));
    atomic_store(&foreign_match_rc, tel_recv_match(&m, tag_is_even, NULL, 0));
    return NULL;
}

static void foreign_recv_main(void *arg)
{
    (void)arg;
    pthread_t t;
    if (TT_CHECK(pthread_create(&t, NULL, foreign_recv_thread, NULL) == 0,
                 "pthread_create"))
        pthread_join(t, NULL);
}

Test(mailbox, recv_outside_a_process_returns_enotproc, .timeout = 30)
{
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 0);
    cr_assert_eq(rc, TEL_ENOTPROC, "before any run: %d (%s)", rc,
                 tel_errname(rc));
    rc = tel_recv_match(&m, tag_is_even, NULL, 0);
    cr_assert_eq(rc, TEL_ENOTPROC, "match before any run: %d (%s)", rc,
                 tel_errname(rc));
    TT_RUN(NULL, foreign_recv_main, NULL);
    cr_assert_eq(atomic_load(&foreign_recv_rc), TEL_ENOTPROC,
                 "on a foreign thread: %d",
                 atomic_load(&foreign_recv_rc));
    cr_assert_eq(atomic_load(&foreign_match_rc), TEL_ENOTPROC,
                 "match on a foreign thread: %d",
                 atomic_load(&foreign_match_rc));
}

static atomic_int null_data_rc = 1, null_data_foreign_rc = 1;

static void *null_data_thread(void *arg)
{
    tel_pid_t to = *(tel_pid_t *)arg;
    atomic_store(&null_data_foreign_rc, tel_send(to, 1, NULL, 10));
    return NULL;
}

static void null_data_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    atomic_store(&null_data_rc, tel_send(self, 1, NULL, 1));
    pthread_t t;
    if (TT_CHECK(pthread_create(&t, NULL, null_data_thread, &self) == 0,
                 "pthread_create"))
        pthread_join(t, NULL);
    tel_msg_t *m = NULL;
    int rc = tel_recv(&m, 20);
    TT_CHECK(rc == TEL_ETIMEDOUT, "a rejected send was delivered");
    tel_msg_free(m);
}

Test(mailbox, send_with_null_data_and_nonzero_size_returns_einval,
     .timeout = 30)
{
    TT_RUN(NULL, null_data_main, NULL);
    cr_assert_eq(atomic_load(&null_data_rc), TEL_EINVAL,
                 "inside a process: %d (%s)", atomic_load(&null_data_rc),
                 tel_errname(atomic_load(&null_data_rc)));
    cr_assert_eq(atomic_load(&null_data_foreign_rc), TEL_EINVAL,
                 "on a foreign thread: %d (%s)",
                 atomic_load(&null_data_foreign_rc),
                 tel_errname(atomic_load(&null_data_foreign_rc)));
}

/* ------------------------------------------------------------------------ */
/* Foreign-thread senders                                                    */
/* ------------------------------------------------------------------------ */

#define FOREIGN_THREADS 2

static size_t foreign_n;
static atomic_int foreign_send_fail;

static void *foreign_sender(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    tel_pid_t to = atomic_load(&main_pid);
    for (uint64_t i = 0; i < foreign_n; i++) {
        struct seq_msg s = {id, i};
        if (tel_send(to, id, &s, sizeof s) != 0) {
            atomic_fetch_add(&foreign_send_fail, 1);
            break;
        }
    }
    return NULL;
}

static void foreign_send_main(void *arg)
{
    (void)arg;
    set_main_pid();
    pthread_t t[FOREIGN_THREADS];
    int started = 0;
    for (uintptr_t i = 0; i < FOREIGN_THREADS; i++) {
        if (!TT_CHECK(pthread_create(&t[i], NULL, foreign_sender, (void *)i) ==
                          0,
                      "pthread_create"))
            break;
        started++;
    }
    uint64_t next[FOREIGN_THREADS] = {0};
    for (size_t k = 0; k < (size_t)started * foreign_n; k++) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 20000);
        if (!TT_CHECK(rc == 0, "message %zu from foreign threads: %s", k,
                      tel_errname(rc)))
            break;
        struct seq_msg s = {UINT64_MAX, 0};
        if (m->size == sizeof s)
            memcpy(&s, m->data, sizeof s);
        bool ok = s.sender < FOREIGN_THREADS && m->tag == s.sender &&
                  m->from == 0 && s.seq == next[s.sender];
        TT_CHECK(ok, "message %zu: from %" PRIu64 " thread %" PRIu64
                 " seq %" PRIu64 " (want from 0, seq %" PRIu64 ")",
                 k, m->from, s.sender, s.seq,
                 s.sender < FOREIGN_THREADS ? next[s.sender] : 0);
        tel_msg_free(m);
        if (!ok)
            break;
        next[s.sender]++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    TT_CHECK(atomic_load(&foreign_send_fail) == 0,
             "a foreign tel_send failed");
}

Test(mailbox, sends_from_foreign_threads_arrive_in_order_with_from_zero,
     .timeout = 60)
{
    foreign_n = tel_test_scaled(100000, 2000);
    TT_RUN(NULL, foreign_send_main, NULL);
}

Test(mailbox, sends_from_foreign_threads_reach_a_one_scheduler_runtime,
     .timeout = 60)
{
    foreign_n = tel_test_scaled(20000, 1000);
    tel_config_t cfg = {.schedulers = 1};
    TT_RUN(&cfg, foreign_send_main, NULL);
}

/* ------------------------------------------------------------------------ */
/* tel_msg_free                                                              */
/* ------------------------------------------------------------------------ */

static tel_msg_t *kept_msg;

static void free_null_main(void *arg)
{
    (void)arg;
    tel_msg_free(NULL);
    /* Keep one message past the run. */
    tel_pid_t self = tel_self();
    char text[] = "kept past the run";
    int rc = tel_send(self, 9, text, sizeof text);
    TT_CHECK_RC(rc, 0, "tel_send");
    rc = tel_recv(&kept_msg, 0);
    TT_CHECK_RC(rc, 0, "tel_recv");
}

Test(mailbox, msg_free_ignores_null_and_works_after_the_run, .timeout = 30)
{
    tel_msg_free(NULL);
    TT_RUN(NULL, free_null_main, NULL);
    tel_msg_free(NULL);
    cr_assert_not_null(kept_msg);
    cr_assert_eq(kept_msg->tag, 9);
    cr_assert_str_eq((const char *)kept_msg->data, "kept past the run");
    tel_msg_free(kept_msg);
}

/* Messages left unread in a mailbox when processes die are freed. */
static void unread_main(void *arg)
{
    (void)arg;
    char buf[512] = {0};
    for (int k = 0; k < 100; k++) {
        tel_pid_t pid = 0;
        int rc = tel_spawn(&pid, tt_wait_one_fn, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        for (int i = 0; i < 20; i++)
            if (tel_send(pid, 1, buf, (size_t)(i * 25)) != 0)
                break;
        TT_CHECK(tt_await_dead(pid, 10000), "child %d is alive", k);
    }
    /* Leave some behind at shutdown too. */
    for (int k = 0; k < 100; k++) {
        tel_pid_t pid = 0;
        int rc = tel_spawn(&pid, tt_return_fn, NULL);
        if (!TT_CHECK_RC(rc, 0, "tel_spawn"))
            return;
        rc = tel_send(pid, 1, buf, sizeof buf);
        TT_CHECK_RC(rc, 0, "tel_send");
    }
    for (int i = 0; i < 100; i++)
        tt_send_tag(tel_self(), 5);
}

Test(mailbox, unread_messages_of_dead_processes_are_dropped, .timeout = 30)
{
    TT_RUN(NULL, unread_main, NULL);
}

/* A process can send to itself. */
static void self_send_main(void *arg)
{
    (void)arg;
    tel_pid_t self = tel_self();
    for (uint64_t i = 0; i < 1000; i++)
        if (tt_send_u64(self, i, i * 3) != 0)
            return;
    for (uint64_t i = 0; i < 1000; i++) {
        tel_msg_t *m = NULL;
        int rc = tel_recv(&m, 0);
        if (!TT_CHECK_RC(rc, 0, "tel_recv"))
            return;
        bool ok = m->tag == i && tt_msg_u64(m) == i * 3 && m->from == self;
        tel_msg_free(m);
        if (!TT_CHECK(ok, "self message %" PRIu64 " wrong", i))
            return;
    }
}

Test(mailbox, a_process_can_send_to_itself, .timeout = 30)
{
    TT_RUN(NULL, self_send_main, NULL);
}
