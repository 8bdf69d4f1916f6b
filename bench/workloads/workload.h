/*
 * bench/workloads/workload.h: what every workload program shares: the
 * command line (-s S, then positional sizes), the clock, and the one-line
 * result format that joins with the Erlang and Go peers:
 *   peer=telar workload=NAME schedulers=S metric=METRIC value=V
 */
#ifndef TEL_BENCH_WORKLOAD_H
#define TEL_BENCH_WORKLOAD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct wl_args {
    unsigned schedulers; /* 0: one per core */
    int npos;
    const char *pos[8];
};

static inline void wl_usage(const char *name, const char *sizes)
{
    fprintf(stderr, "usage: %s [-s SCHEDULERS] %s\n", name, sizes);
    exit(2);
}

static inline struct wl_args wl_parse(int argc, char **argv, const char *sizes)
{
    struct wl_args a = {0};
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

#endif /* TEL_BENCH_WORKLOAD_H */
