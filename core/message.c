/*
 * core/message.c: copy-on-send message buffers.
 *
 * Owns: the layout of a message (header, then payload) and its allocation.
 * A message is allocated by the sender's thread (its scheduler's pool) and
 * freed by whoever holds it last (the receiver, or the runtime when the
 * receiver is gone); the free returns it to the sender's pool, lock-free.
 * Small ones come from the block pools (alloc/pool.h), the rest from
 * jemalloc.
 */
#include "core/message.h"

#include <string.h>

#include "alloc/numa.h"
#include "alloc/pool.h"

struct msg *tel__msg_new(tel_pid_t from, uint64_t tag, const void *data,
                         size_t size)
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

void tel__msg_free(struct msg *m)
{
    tel__pool_free(m, MSG_HDR_SIZE + m->pub.size);
}

void tel_msg_free(tel_msg_t *m)
{
    if (m)
        tel__msg_free(tel__msg_of(m));
}

/* References come from per-thread blocks of a global counter: no shared
 * write per reference, and unique across threads. */
#define REF_BLOCK 4096

static _Atomic uint64_t ref_next = 1;
static __thread uint64_t tl_ref, tl_ref_end;

uint64_t tel__make_ref(void)
{
    if (TEL_UNLIKELY(tl_ref == tl_ref_end)) {
        tl_ref = atomic_fetch_add_explicit(&ref_next, REF_BLOCK,
                                           memory_order_relaxed);
        tl_ref_end = tl_ref + REF_BLOCK;
    }
    return tl_ref++ & MSG_REF_MASK;
}
