// fairness: how late a sleeping goroutine wakes while busy ones run.
//
// MODE 0 (cooperative hogs): HOGS goroutines count in a loop without
// function calls, so only the runtime's asynchronous (signal-based)
// preemption takes the CPU from them. A ticker goroutine sleeps 1 ms TICKS
// times and records each wake-up's lateness (actual sleep - 1 ms); it stops
// after TICKS ticks or CAP_MS milliseconds from the start (just before the
// hogs are spawned), whichever comes first, and sends its samples to the
// main goroutine. The hogs then stop and publish their counts (so the loop
// is not dead code). Printed as workload fairness_h<HOGS>.
//
// MODE 1 (blocking hogs, blocking.go): HOGS goroutines each read one byte
// at a time from their own os.Pipe; a feeder writes to the pipes in turn.
// Printed as workload fairness_blk<HOGS>.
//
// MODE 2 (non-cooperative hogs, noncoop.go): HOGS goroutines run a pure
// arithmetic loop that calls nothing, preempted only asynchronously.
// Printed as workload fairness_nc<HOGS>.
//
//	fairness [-s SCHEDULERS] [HOGS [TICKS [CAP_MS [MODE]]]]  (defaults 1000 2000 10000 0)
package main

import (
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"telar/bench/peers/go/internal/cli"
)

var stopHogs atomic.Bool

// hog counts until told to stop. The loop body is a counter increment and an
// atomic load (a plain MOV on amd64): no calls, so no preemption points.
func hog(done chan<- uint64) {
	var n uint64
	for !stopHogs.Load() {
		n++
	}
	done <- n
}

func ticker(ticks int, deadline time.Time, done chan<- []time.Duration) {
	late := make([]time.Duration, 0, ticks)
	for len(late) < ticks {
		t := time.Now()
		time.Sleep(time.Millisecond)
		now := time.Now()
		late = append(late, now.Sub(t)-time.Millisecond)
		if !now.Before(deadline) {
			break
		}
	}
	done <- late
}

// percentile is the nearest-rank pct-th percentile of sorted samples, in µs.
func percentile(sorted []time.Duration, pct int) float64 {
	rank := (len(sorted)*pct + 99) / 100
	if rank < 1 {
		rank = 1
	}
	return float64(sorted[rank-1].Nanoseconds()) / 1e3
}

func main() {
	sizes := cli.ParseCounts("fairness", 1000, 2000, 10000, 0)
	hogs, ticks, capMS, mode := sizes[0], sizes[1], sizes[2], sizes[3]
	name := fmt.Sprintf("fairness_h%d", hogs)
	switch mode {
	case 1:
		name = fmt.Sprintf("fairness_blk%d", hogs)
	case 2:
		name = fmt.Sprintf("fairness_nc%d", hogs)
	}
	if ticks < 1 || capMS < 1 {
		cli.Fail(name, "TICKS and CAP_MS must be positive")
	}
	if mode > 2 {
		cli.Fail(name, "MODE must be 0 (cooperative hogs), 1 (blocking hogs) "+
			"or 2 (non-cooperative hogs)")
	}
	switch mode {
	case 1:
		blocking(name, hogs, ticks, capMS)
		return
	case 2:
		noncoop(name, hogs, ticks, capMS)
		return
	}

	deadline := time.Now().Add(time.Duration(capMS) * time.Millisecond)
	counts := make(chan uint64, hogs)
	for i := 0; i < hogs; i++ {
		go hog(counts)
	}
	samples := make(chan []time.Duration, 1)
	go ticker(ticks, deadline, samples)
	late := <-samples

	stopHogs.Store(true)
	var total uint64
	for i := 0; i < hogs; i++ {
		total += <-counts
	}
	if len(late) < 1 || len(late) > ticks {
		cli.Fail(name, "%d ticks recorded, want 1..%d", len(late), ticks)
	}
	if hogs > 0 && total == 0 {
		cli.Fail(name, "the hogs never ran")
	}
	report(name, late)
}

// report prints the lateness percentiles and the tick count.
func report(name string, late []time.Duration) {
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	cli.Report(name, "p50_us", percentile(late, 50))
	cli.Report(name, "p99_us", percentile(late, 99))
	cli.Report(name, "max_us", percentile(late, 100))
	cli.Report(name, "ticks", float64(len(late)))
}
