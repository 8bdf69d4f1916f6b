// spawn_idle: spawn N goroutines that each block on their mailbox (a buffered
// channel of capacity 1) and measure what an idle process costs.
//
// The spawn loop alone is timed. Then the main goroutine waits until every
// goroutine has reached its receive (each bumps a shared atomic counter just
// before receiving; main polls it, sleeping 1 ms between looks), reads VmRSS
// and divides the growth since before the loop by N. Finally it sends each a
// stop; each replies done and exits, and the N replies are timed.
//
// The main goroutine's mailbox has room for all N replies, as skynet's nodes
// have room for all their children's, so a reply never blocks (sends are
// asynchronous in Telar and Erlang). With capacity 1 each of the N goroutines
// would park a second time on its reply and be woken again, which doubles the
// exit time. (A chan struct{} buffer takes no memory.)
//
// HIBERNATE = 1 (default 0) prints the metrics as workload spawn_idle_hib, to
// join the hibernated runs of the other peers. Go cannot drop a goroutine's
// stack, so the program is the same: an idle goroutine is already at its
// smallest (a 2 KiB stack).
//
//	spawn_idle [-s SCHEDULERS] [N] [HIBERNATE]    (default 1000000 0)
package main

import (
	"sync/atomic"
	"time"

	"telar/bench/peers/go/internal/cli"
)


// ready counts the goroutines that have reached their receive.
var ready atomic.Int64

func idle(self <-chan struct{}, done chan<- struct{}) {
	ready.Add(1)
	<-self
	done <- struct{}{}
}

func main() {
	sizes := cli.ParseCounts("spawn_idle", 1000000, 0)
	n, hib := sizes[0], sizes[1]
	if n < 1 || hib > 1 {
		cli.Fail("spawn_idle", "want N >= 1 and HIBERNATE 0 or 1, got %d %d", n, hib)
	}
	name := "spawn_idle"
	if hib == 1 {
		name = "spawn_idle_hib"
	}
	done := make(chan struct{}, n)

	before, err := cli.VmRSS()
	if err != nil {
		cli.Fail(name, "%v", err)
	}
	start := time.Now()
	boxes := make([]chan struct{}, n)
	for i := range boxes {
		box := make(chan struct{}, 1)
		boxes[i] = box
		go idle(box, done)
	}
	spawn := time.Since(start)

	for ready.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	after, err := cli.VmRSS()
	if err != nil {
		cli.Fail(name, "%v", err)
	}

	start = time.Now()
	for _, box := range boxes {
		box <- struct{}{}
	}
	replies := 0
	for replies < n {
		<-done
		replies++
	}
	exit := time.Since(start)

	if replies != n {
		cli.Fail(name, "%d replies, want %d", replies, n)
	}
	cli.Report(name, "spawn_ns_per_proc", float64(spawn.Nanoseconds())/float64(n))
	cli.Report(name, "bytes_per_proc", float64(after-before)/float64(n))
	cli.Report(name, "exit_ns_per_proc", float64(exit.Nanoseconds())/float64(n))
}
