/*
 * bench/workloads/thread_ring.c: the benchmarks game's thread-ring. PROCS
 * processes, numbered 1..PROCS, are linked in a ring (PROCS's next is 1).
 * The main process gives process 1 a token holding HOPS; each holder passes
 * the token on, decremented, with a real send; the holder of 0 reports its
 * number to the main process, which then stops the ring.
 *
 *   thread_ring [-s S] [PROCS] [HOPS]     defaults 503 and 10,000,000
 *
 * Prints ns_per_hop: from handing out the token to receiving the report,
 * over HOPS (setting the ring up is not timed). Exits 1 unless the holder of
 * 0 is process (HOPS mod PROCS) + 1.
 *
 * The same program as ring.c, numbered from 1 with 503 processes.
 */
#define RING_NAME "thread_ring"
#define RING_FIRST 1
#define RING_PROCS 503

#include "ring.c"
