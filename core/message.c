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

#include "alloc/numa.h"
#include "alloc/pool.h"

struct msg *tel__msg_new(tel_pid_t from, uint64_t tag, const void *data,
                         size_t size)
{
    return tel__msg_make(from, tag, data, size);
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
