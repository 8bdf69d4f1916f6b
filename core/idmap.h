/*
 * core/idmap.h: a small open-addressing hash map from nonzero 64-bit keys
 * to 64-bit values (linear probing, deletion by backward shift, so no
 * tombstones). A process's links and monitors live in these: a supervisor
 * with 100,000 children adds and removes one in O(1).
 *
 * Owner only (no locking). A map that never had an entry holds no memory;
 * one that had keeps at least its 8 slots (128 bytes) until freed.
 */
#ifndef TEL_CORE_IDMAP_H
#define TEL_CORE_IDMAP_H

#include <stdbool.h>
#include <stdint.h>

struct idmap {
    uint64_t *keys; /* 0: empty slot */
    uint64_t *vals;
    uint32_t cap;   /* 0 or a power of two */
    uint32_t n;
};

/* Insert or overwrite. 0, or TEL_ENOMEM (the map is unchanged). */
int tel__idmap_put(struct idmap *m, uint64_t key, uint64_t val);
/* Whether key is there; its value to *val (may be NULL). */
bool tel__idmap_get(const struct idmap *m, uint64_t key, uint64_t *val);
/* Remove key; whether it was there (and its value to *val, may be NULL). */
bool tel__idmap_del(struct idmap *m, uint64_t key, uint64_t *val);
void tel__idmap_free(struct idmap *m);

/* Iterate: for (uint32_t i = 0; i < m->cap; i++) if (m->keys[i]) ... */

#endif /* TEL_CORE_IDMAP_H */
