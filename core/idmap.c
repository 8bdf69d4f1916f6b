/*
 * core/idmap.c: see idmap.h. Grows at 3/4 full, shrinks at 1/8 (so a map
 * that was large once does not keep its memory), never below 8 slots; an
 * empty map keeps its 8 slots until tel__idmap_free.
 */
#include "core/idmap.h"

#include "alloc/numa.h"
#include "include/telar.h"

static inline uint32_t slot_of(uint64_t key, uint32_t cap)
{
    key ^= key >> 33;
    key *= UINT64_C(0xff51afd7ed558ccd);
    key ^= key >> 33;
    return (uint32_t)key & (cap - 1);
}

static void raw_put(struct idmap *m, uint64_t key, uint64_t val)
{
    uint32_t i = slot_of(key, m->cap);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->n++;
    m->keys[i] = key;
    m->vals[i] = val;
}

static int resize(struct idmap *m, uint32_t cap)
{
    /* One block: the keys, then the values. */
    uint64_t *k = tel__mem_zalloc(2 * sizeof(uint64_t) * cap);
    if (!k)
        return TEL_ENOMEM;
    struct idmap old = *m;
    m->keys = k;
    m->vals = k + cap;
    m->cap = cap;
    m->n = 0;
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.keys[i])
            raw_put(m, old.keys[i], old.vals[i]);
    tel__idmap_free(&old);
    return 0;
}

int tel__idmap_put(struct idmap *m, uint64_t key, uint64_t val)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        int rc = resize(m, m->cap ? m->cap * 2 : 8);
        if (rc)
            return rc;
    }
    raw_put(m, key, val);
    return 0;
}

bool tel__idmap_get(const struct idmap *m, uint64_t key, uint64_t *val)
{
    if (!m->n)
        return false;
    uint32_t i = slot_of(key, m->cap);
    while (m->keys[i]) {
        if (m->keys[i] == key) {
            if (val)
                *val = m->vals[i];
            return true;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return false;
}

bool tel__idmap_del(struct idmap *m, uint64_t key, uint64_t *val)
{
    if (!m->n)
        return false;
    uint32_t mask = m->cap - 1, i = slot_of(key, m->cap);
    while (m->keys[i] != key) {
        if (!m->keys[i])
            return false;
        i = (i + 1) & mask;
    }
    if (val)
        *val = m->vals[i];
    /* Backward shift: pull later entries of the cluster into the hole
     * when their home slot does not lie between the hole and them. */
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        uint32_t home = slot_of(m->keys[j], m->cap);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->keys[hole] = 0;
    m->n--;
    /* The smallest table stays (a server adds and drops a watcher per
     * call: freeing it each time cost two jemalloc calls a call). */
    if (m->cap > 8 && m->n * 8 < m->cap)
        (void)resize(m, m->cap / 2); /* no memory: keep the bigger one */
    return true;
}

void tel__idmap_free(struct idmap *m)
{
    if (m->cap)
        tel__mem_free(m->keys, 2 * sizeof(uint64_t) * m->cap);
    m->keys = m->vals = NULL;
    m->cap = m->n = 0;
}
