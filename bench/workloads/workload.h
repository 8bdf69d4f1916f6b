/*
 * bench/workloads/workload.h: what every workload program shares: the
 * command line (-s S, then positional sizes), the clock, and the one-line
 * result format that joins with the Erlang and Go peers:
 *   peer=telar workload=NAME schedulers=S metric=METRIC value=V
 *
 * Also small helpers the workloads use to stay short and still check every
 * call: wl_send/wl_recv/wl_spawn exit(1) with a message on any error (a
 * benchmark that lost a message must not print a figure), wl_vmrss_bytes
 * reads the OS's view of our memory, and wl_percentile picks from sorted
 * samples. Everything is static inline: each workload is one .c file.
 */
#ifndef TEL_BENCH_WORKLOAD_H
#define TEL_BENCH_WORKLOAD_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "telar.h"

struct wl_args {
    unsigned schedulers; /* 0: one per core */
    int npos;
    const char *pos[8];
};

/* The program's name for diagnostics; wl_parse sets it from argv[0]. */
static inline const char **wl_prog(void)
{
    static const char *name = "workload";
    return &name;
}

/* Print "PROG: <message>" on stderr and exit(1): a wrong or lost result. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void
wl_die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", *wl_prog());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static inline void wl_usage(const char *name, const char *sizes)
{
    fprintf(stderr, "usage: %s [-s SCHEDULERS] %s\n", name, sizes);
    exit(2);
}

static inline struct wl_args wl_parse(int argc, char **argv, const char *sizes)
{
    struct wl_args a = {0};
    const char *slash = strrchr(argv[0], '/');
    *wl_prog() = slash ? slash + 1 : argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            a.schedulers = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (argv[i][0] == '-') {
            wl_usage(argv[0], sizes);
        } else if (a.npos < 8) {
            a.pos[a.npos++] = argv[i];
        }
    }
    return a;
}

static inline uint64_t wl_pos_u64(const struct wl_args *a, int i, uint64_t def)
{
    return i < a->npos ? strtoull(a->pos[i], NULL, 10) : def;
}

/* Positional size i, which must be a whole number >= min and at most 2^40
 * (so that the workloads' products of sizes cannot overflow); else usage. */
static inline uint64_t wl_pos_min(const struct wl_args *a, int i, uint64_t def,
                                  uint64_t min, const char *sizes)
{
    if (i >= a->npos)
        return def;
    char *end;
    uint64_t v = strtoull(a->pos[i], &end, 10);
    if (*a->pos[i] == '\0' || *a->pos[i] == '-' || *end != '\0' || v < min ||
        v > ((uint64_t)1 << 40))
        wl_usage(*wl_prog(), sizes);
    return v;
}

static inline uint64_t wl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void wl_report(const char *workload, unsigned s,
                             const char *metric, double value)
{
    printf("peer=telar workload=%s schedulers=%u metric=%s value=%.6g\n",
           workload, s, metric, value);
    fflush(stdout);
}

/* ---- checked calls: any error is fatal to a benchmark run ---- */

static inline void wl_send(tel_pid_t to, uint64_t tag, const void *data,
                           size_t size)
{
    int rc = tel_send(to, tag, data, size);
    if (rc != 0)
        wl_die("tel_send: %s", tel_strerror(rc));
}

static inline void wl_send_u64(tel_pid_t to, uint64_t tag, uint64_t v)
{
    wl_send(to, tag, &v, sizeof(v));
}

static inline tel_msg_t *wl_recv(void)
{
    tel_msg_t *m;
    int rc = tel_recv(&m, TEL_INFINITY);
    if (rc != 0)
        wl_die("tel_recv: %s", tel_strerror(rc));
    return m;
}

/* The 8-byte payload of m, which must carry exactly that. */
static inline uint64_t wl_msg_u64(const tel_msg_t *m)
{
    uint64_t v;
    if (m->size != sizeof(v))
        wl_die("message with tag %llu has %zu bytes, want 8",
               (unsigned long long)m->tag, m->size);
    memcpy(&v, m->data, sizeof(v));
    return v;
}

static inline tel_pid_t wl_spawn(tel_fn fn, void *arg)
{
    tel_pid_t pid;
    int rc = tel_spawn(&pid, fn, arg);
    if (rc != 0)
        wl_die("tel_spawn: %s", tel_strerror(rc));
    return pid;
}

/* Let cfg allow n live processes: raise max_processes when the default is
 * too small; more than Telar ever allows is a usage error. */
static inline void wl_need_processes(tel_config_t *cfg, uint64_t n,
                                     const char *sizes)
{
    if (n > TEL_MAX_MAX_PROCESSES)
        wl_usage(*wl_prog(), sizes);
    if (n > TEL_DEFAULT_MAX_PROCESSES)
        cfg->max_processes = (uint32_t)n;
}

/* tel_run(cfg, main_fn, arg), or die. */
static inline void wl_run(const tel_config_t *cfg, tel_fn main_fn, void *arg)
{
    int rc = tel_run(cfg, main_fn, arg);
    if (rc != 0)
        wl_die("tel_run: %s", tel_strerror(rc));
}

/* ---- memory and statistics ---- */

/* VmRSS from /proc/self/status, in bytes (the OS's view, as the peers use);
 * dies if it cannot be read, since a figure without it would be made up. */
static inline uint64_t wl_vmrss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        wl_die("cannot open /proc/self/status");
    char line[256];
    unsigned long long kb = 0;
    int found = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
            found = 1;
            break;
        }
    }
    fclose(f);
    if (!found)
        wl_die("no VmRSS line in /proc/self/status");
    return (uint64_t)kb * 1024;
}

static inline int wl_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static inline void wl_sort_i64(int64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), wl_cmp_i64);
}

/* The p-th percentile (0 < p <= 100) of n > 0 sorted samples, by the
 * nearest-rank method: the smallest sample with at least p% at or below. */
static inline int64_t wl_percentile(const int64_t *sorted, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

/* A small fast generator (splitmix64) for workloads that need seeded
 * randomness; the same seed gives the same sequence in every peer that uses
 * it. */
static inline uint64_t wl_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif /* TEL_BENCH_WORKLOAD_H */
