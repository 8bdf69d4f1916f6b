package main

// MODE 2, non-cooperative hogs: each hog goroutine runs a pure arithmetic
// loop (an xorshift generator in a local variable) that calls nothing, so
// the loop has no preemption point of its own. Since Go 1.14 the runtime
// preempts such a loop asynchronously: sysmon notices a goroutine that has
// run for 10 ms and sends its thread a signal (SIGURG), whose handler
// switches goroutines. That is Go's answer to code that never yields, and
// what this mode measures: no runtime.Gosched, nothing added to help.
//
// A hog publishes its iteration count and its generator's state on its
// first iteration and then every 65,536 (atomic stores: plain instructions
// on amd64, no call), so that the program can check that hogs ran and the
// compiler cannot drop the arithmetic as dead code. The hogs never stop: the
// process exits when main returns, as Telar's run ends its hogs. The
// ticker starts right after the hogs are spawned, as in mode 0.
//
// (Mode 0's hog, a loop of an increment and an atomic load, is already
// non-cooperative in Go: Go has no way to count reductions. Mode 2 is
// still its own program so that the three peers' fairness_nc rows measure
// the same kind of loop.)

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"telar/bench/peers/go/internal/cli"
)

// ncPublishMask: a hog publishes its count when n&ncPublishMask == 1.
const ncPublishMask = 0xffff

// ncCount is one hog's published count and state, on a cache line of its own.
type ncCount struct {
	n, x atomic.Uint64
	_    [48]byte
}

func noncoopHog(count *ncCount, seed uint64) {
	x := seed | 1 // xorshift64: never 0
	for n := uint64(1); ; n++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		if n&ncPublishMask == 1 {
			count.n.Store(n)
			count.x.Store(x)
		}
	}
}

func noncoop(name string, hogs, ticks, capMS int) {
	deadline := time.Now().Add(time.Duration(capMS) * time.Millisecond)
	counts := make([]ncCount, hogs)
	for i := range counts {
		go noncoopHog(&counts[i], uint64(i)*0x9e3779b97f4a7c15)
	}
	samples := make(chan []time.Duration, 1)
	go ticker(ticks, deadline, samples)
	late := <-samples

	if len(late) < 1 || len(late) > ticks {
		cli.Fail(name, "%d ticks recorded, want 1..%d", len(late), ticks)
	}
	started := 0
	for i := range counts {
		if counts[i].n.Load() != 0 {
			started++
		}
	}
	if hogs > 0 && started == 0 {
		cli.Fail(name, "the hogs never ran")
	}
	if hogs > 0 {
		fmt.Fprintf(os.Stderr, "%s: %d of %d hogs ran\n", name, started, hogs)
	}
	report(name, late)
}
