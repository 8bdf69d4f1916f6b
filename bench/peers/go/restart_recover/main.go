// restart_recover: NOT a peer of restart_storm, only a reference beside it.
// Go has no supervisors, links or exit signals: one goroutine cannot notice
// another's end unless that one tells it. This is the closest plain Go
// gets, and it leaves out what a supervisor does (no restart intensity, no
// child records, no shutdown protocol), so it prints as its own workload,
// restart_storm_recover, which never joins Telar's or Erlang's rows, and
// tools/bench does not run it.
//
// The shape is restart_storm's: K workers, each of which first reads the
// clock and sends the driver (the main goroutine) "up" {slot, a fresh
// crash channel, that time}, then waits on its crash channel and panics
// (FAULT=1: it writes through a nil pointer, a runtime panic). A deferred
// recover in the worker tells the "supervisor" goroutine its slot, and the
// supervisor starts a new worker for it.
//
//	  latency:    N crashes one at a time, slot i mod K in turn; a sample is
//	              the replacement's clock reading minus the driver's, read
//	              just before it sent crash. Prints p50_us and p99_us.
//	  throughput: crash all K, then each replacement as soon as it is up,
//	              until N crashes were ordered; timed to the N-th
//	              replacement. Prints restarts_per_sec.
//
//		restart_recover [-s SCHEDULERS] [K [N [FAULT]]]    (defaults 100 100000 0)
package main

import (
	"sort"
	"time"

	"telar/bench/peers/go/internal/cli"
)

const program = "restart_recover"

type up struct {
	slot  int
	gen   uint64
	crash chan struct{}
	t     time.Time
}

type worker struct {
	slot  int
	gen   uint64
	fault bool
	up    chan<- up
	exits chan<- int
}

var sink *int // nil: the FAULT=1 worker writes through it

func (w worker) run() {
	defer func() {
		if recover() == nil {
			cli.Fail(program, "worker %d ended without a panic", w.slot)
		}
		w.exits <- w.slot
	}()
	crash := make(chan struct{}, 1)
	w.up <- up{w.slot, w.gen, crash, time.Now()}
	<-crash
	if w.fault {
		*sink = 1
	}
	panic("crash")
}

// supervise starts the K workers, then a new one for each slot it hears of.
func supervise(k int, fault bool, ups chan<- up, exits chan int) {
	var gen uint64
	start := func(slot int) {
		gen++
		go worker{slot, gen, fault, ups, exits}.run()
	}
	for s := 0; s < k; s++ {
		start(s)
	}
	for slot := range exits {
		start(slot)
	}
}

func percentile(sorted []time.Duration, pct int) float64 {
	rank := (len(sorted)*pct + 99) / 100
	if rank < 1 {
		rank = 1
	}
	return float64(sorted[rank-1].Nanoseconds()) / 1e3
}

func next(ups <-chan up) up {
	select {
	case u := <-ups:
		return u
	case <-time.After(10 * time.Second):
		cli.Fail(program, "no worker came up for 10 s")
	}
	panic("unreachable")
}

func main() {
	sizes := cli.ParseCounts(program, 100, 100000, 0)
	k, n, f := sizes[0], sizes[1], sizes[2]
	if k < 1 || n < 1 || f > 1 {
		cli.Fail(program, "want K >= 1, N >= 1 and FAULT 0 or 1")
	}
	ups := make(chan up, k)
	exits := make(chan int, k)
	go supervise(k, f == 1, ups, exits)

	cur := make([]up, k)
	seen := make([]bool, k)
	for i := 0; i < k; i++ {
		u := next(ups)
		if seen[u.slot] {
			cli.Fail(program, "slot %d started twice", u.slot)
		}
		seen[u.slot] = true
		cur[u.slot] = u
	}

	lates := make([]time.Duration, n)
	for i := 0; i < n; i++ {
		slot := i % k
		old := cur[slot]
		t0 := time.Now()
		old.crash <- struct{}{}
		u := next(ups)
		if u.slot != slot || u.gen == old.gen {
			cli.Fail(program, "slot %d came up, want a new %d", u.slot, slot)
		}
		cur[slot] = u
		lates[i] = u.t.Sub(t0)
	}

	pending := make([]bool, k)
	ordered := k
	if n < k {
		ordered = n
	}
	start := time.Now()
	for s := 0; s < ordered; s++ {
		pending[s] = true
		cur[s].crash <- struct{}{}
	}
	for done := 0; done < n; done++ {
		u := next(ups)
		if !pending[u.slot] || u.gen == cur[u.slot].gen {
			cli.Fail(program, "slot %d came up with no crash ordered", u.slot)
		}
		cur[u.slot] = u
		if ordered < n {
			u.crash <- struct{}{}
			ordered++
		} else {
			pending[u.slot] = false
		}
	}
	elapsed := time.Since(start)

	name := "restart_storm_recover"
	if f == 1 {
		name = "restart_storm_recover_fault"
	}
	sort.Slice(lates, func(i, j int) bool { return lates[i] < lates[j] })
	cli.Report(name, "restarts_per_sec", float64(n)/elapsed.Seconds())
	cli.Report(name, "p50_us", percentile(lates, 50))
	cli.Report(name, "p99_us", percentile(lates, 99))
}
