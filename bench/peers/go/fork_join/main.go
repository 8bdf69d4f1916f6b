// fork_join: Savina's two fork-join shapes. Every goroutine has a mailbox, a
// buffered channel of capacity 1, except the main goroutine's, which has room
// for all the replies it collects (as skynet's nodes have room for all their
// children's), so a reply never blocks: sends are asynchronous in Telar and
// Erlang. With capacity 1, fjcreate's N workers would all stay alive, parked
// on their replies, and fjcreate would take about 4 times as long.
//
// fjcreate: spawn N goroutines one by one and send each one message, its
// index i; each computes sin(i), replies with it to the main goroutine and
// exits. Timed from the first spawn to the N-th reply.
//
// fjthrput: ACTORS goroutines each receive MSGS messages, sent round-robin by
// the main goroutine, and do the same computation per message (summing it),
// then a stop, on which each reports how many messages it handled. Timed from
// the first spawn to the last report.
//
// Check: N replies, and ACTORS reports of MSGS messages each.
//
//	fork_join [-s SCHEDULERS] [N [ACTORS [MSGS]]]    (defaults 100000 60 10000)
package main

import (
	"math"
	"time"

	"telar/bench/peers/go/internal/cli"
)

const (
	name = "fork_join"
	stop = -1
)

func compute(i int) float64 {
	return math.Sin(float64(i))
}

func createWorker(self <-chan int, reply chan<- float64) {
	reply <- compute(<-self)
}

type report struct {
	count int
	sum   float64
}

func thrputWorker(self <-chan int, reply chan<- report) {
	var r report
	for {
		m := <-self
		if m == stop {
			reply <- r
			return
		}
		r.sum += compute(m)
		r.count++
	}
}

func fjcreate(n int) time.Duration {
	replies := make(chan float64, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		box := make(chan int, 1)
		go createWorker(box, replies)
		box <- i
	}
	var sum float64
	got := 0
	for got < n {
		sum += <-replies
		got++
	}
	elapsed := time.Since(start)
	if got != n || math.IsNaN(sum) {
		cli.Fail(name, "fjcreate: %d replies (sum %g), want %d", got, sum, n)
	}
	return elapsed
}

func fjthrput(actors, msgs int) time.Duration {
	reports := make(chan report, actors)
	start := time.Now()
	boxes := make([]chan int, actors)
	for a := range boxes {
		boxes[a] = make(chan int, 1)
		go thrputWorker(boxes[a], reports)
	}
	for m := 0; m < msgs; m++ {
		for _, box := range boxes {
			box <- m
		}
	}
	for _, box := range boxes {
		box <- stop
	}
	bad := 0
	for a := 0; a < actors; a++ {
		if r := <-reports; r.count != msgs || math.IsNaN(r.sum) {
			bad++
		}
	}
	elapsed := time.Since(start)
	if bad != 0 {
		cli.Fail(name, "fjthrput: %d of %d actors did not handle %d messages", bad, actors, msgs)
	}
	return elapsed
}

func main() {
	sizes := cli.ParseSizes(name, 100000, 60, 10000)
	n, actors, msgs := sizes[0], sizes[1], sizes[2]

	create := fjcreate(n)
	thrput := fjthrput(actors, msgs)

	cli.Report(name, "create_ns_per_proc", float64(create.Nanoseconds())/float64(n))
	cli.Report(name, "thrput_ns_per_msg", float64(thrput.Nanoseconds())/float64(actors*msgs))
}
