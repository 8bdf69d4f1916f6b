/*
 * core/message.h: copy-on-send message buffers.
 */
#ifndef TEL_CORE_MESSAGE_H
#define TEL_CORE_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alloc/mpsc.h"
#include "alloc/pool.h"
#include "include/telar.h"

/*
 * One allocation per message: this header (48 bytes) and the payload right
 * after it, 16-byte aligned (max_align_t). `pub` is what the receiver sees.
 * A message with up to 16 bytes of payload fits a 64-byte block: most
 * messages are a tag and a word or two, and in fan-in workloads millions of
 * them wait at once (a 72-byte message took a 128-byte block).
 *
 * The allocation's size is MSG_HDR_SIZE + pub.size (the receiver must not
 * change pub.size), and `node` links the message in the arrival queue or,
 * once a selective receive skipped it, in the saved list (never both).
 */
struct msg {
    tel_msg_t pub;
    struct tel__mpsc_node node;
    /* The kind (MSGK_*, top 3 bits) and a reference (low 61 bits): a
     * call's and its reply's ref, a signal's monitor ref. 0 for tel_send,
     * or a held message's prefetch hint (core/mailbox.c). */
    uint64_t ref;
};

/*
 * Message kinds. PLAIN is tel_send's. CAST, CALL and REPLY are the server
 * protocol's (core/server.c): a call and its reply carry the call's ref.
 * SIGNAL is a signal between processes (core/link.c): pub.tag holds its
 * kind (SIG_*), ref the monitor ref if any, the payload its reason; it is
 * acted on by the receiver's runtime, never shown to its code.
 */
enum {
    MSGK_PLAIN = 0,
    MSGK_CAST = 1,
    MSGK_CALL = 2,
    MSGK_REPLY = 3,
    MSGK_SIGNAL = 4,
    MSGK_SYS = 5, /* a signal turned into a message (EXIT, DOWN) */
};
#define MSGK_SHIFT 61
#define MSG_REF_MASK ((UINT64_C(1) << MSGK_SHIFT) - 1)

static inline unsigned tel__msg_kind(const struct msg *m)
{
    return (unsigned)(m->ref >> MSGK_SHIFT);
}

static inline uint64_t tel__msg_ref(const struct msg *m)
{
    return m->ref & MSG_REF_MASK;
}

static inline void tel__msg_set_kind(struct msg *m, unsigned kind,
                                     uint64_t ref)
{
    m->ref = (uint64_t)kind << MSGK_SHIFT | (ref & MSG_REF_MASK);
}

/* A new reference, unique within the run (any thread; never 0; < 2^61). */
uint64_t tel__make_ref(void);

#define MSG_HDR_SIZE 48
_Static_assert(sizeof(struct msg) <= MSG_HDR_SIZE, "message header too big");
_Static_assert(MSG_HDR_SIZE % 16 == 0, "payload must be 16-byte aligned");

/* The saved list's link (owner only; the arrival queue is done with it). */
static inline struct msg *tel__msg_next(const struct msg *m)
{
    struct tel__mpsc_node *n =
        atomic_load_explicit(&m->node.next, memory_order_relaxed);
    return n ? (struct msg *)((char *)n - offsetof(struct msg, node)) : NULL;
}

static inline void tel__msg_set_next(struct msg *m, struct msg *next)
{
    atomic_store_explicit(&m->node.next, next ? &next->node : NULL,
                          memory_order_relaxed);
}

/* Any thread: a new message holding a copy of data. NULL when out of memory. */
struct msg *tel__msg_new(tel_pid_t from, uint64_t tag, const void *data,
                         size_t size);

/* tel__msg_new, inline, for tel_send's path (a call and its register
 * saves cost a third of the work for a one-word message). */
static inline struct msg *tel__msg_make(tel_pid_t from, uint64_t tag,
                                        const void *data, size_t size)
{
    if (size > SIZE_MAX - MSG_HDR_SIZE)
        return NULL;
    size_t total = MSG_HDR_SIZE + size;
    struct msg *m = tel__pool_alloc(total);
    if (!m)
        return NULL;
    m->pub.from = from;
    m->pub.tag = tag;
    m->pub.size = size;
    m->pub.data = NULL;
    m->ref = 0;
    if (size) {
        char *d = (char *)m + MSG_HDR_SIZE;
        const char *src = data;
        m->pub.data = d;
        /* Most payloads are a word or two: copy those inline (two
         * overlapping fixed-size moves) rather than call memcpy, whose
         * call and size dispatch cost more than the copy. */
        if (size >= 8 && size <= 16) {
            memcpy(d, src, 8);
            memcpy(d + size - 8, src + size - 8, 8);
        } else if (size >= 4 && size < 8) {
            memcpy(d, src, 4);
            memcpy(d + size - 4, src + size - 4, 4);
        } else {
            memcpy(d, src, size);
        }
    }
    atomic_store_explicit(&m->node.next, NULL, memory_order_relaxed);
    return m;
}

/* Any thread. */
void tel__msg_free(struct msg *m);

static inline struct msg *tel__msg_of(tel_msg_t *pub)
{
    return (struct msg *)(void *)pub;
}

#endif /* TEL_CORE_MESSAGE_H */
