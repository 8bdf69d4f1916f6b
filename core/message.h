/*
 * core/message.h: copy-on-send message buffers.
 */
#ifndef TEL_CORE_MESSAGE_H
#define TEL_CORE_MESSAGE_H

#include <stddef.h>

#include "alloc/mpsc.h"
#include "include/telar.h"

/*
 * One allocation per message: this header (64 bytes) and the payload right
 * after it, 16-byte aligned. `pub` is what the receiver sees.
 */
struct msg {
    tel_msg_t pub;
    struct tel__mpsc_node node; /* link in a mailbox's arrival queue */
    struct msg *next;           /* link in the mailbox's saved list */
    size_t alloc_size;
};

#define MSG_HDR_SIZE 64
_Static_assert(sizeof(struct msg) <= MSG_HDR_SIZE, "message header too big");

/* Any thread: a new message holding a copy of data. NULL when out of memory. */
struct msg *tel__msg_new(tel_pid_t from, uint64_t tag, const void *data,
                         size_t size);

/* Any thread. */
void tel__msg_free(struct msg *m);

static inline struct msg *tel__msg_of(tel_msg_t *pub)
{
    return (struct msg *)(void *)pub;
}

#endif /* TEL_CORE_MESSAGE_H */
