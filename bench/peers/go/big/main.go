// big: Savina's big. Each of WORKERS goroutines sends PINGS pings, one at a
// time, each to a random other worker (every worker has its own seeded
// generator); the receiver answers with a pong, and the pinger sends its next
// ping when the pong arrives. A worker that has had all its pongs tells the
// main goroutine, but keeps answering pings until the main goroutine, having
// heard from every worker, stops them all; each then reports how many pings it
// answered.
//
// A mailbox is a buffered channel with room for WORKERS messages: at most one
// ping from each other worker (each has at most one outstanding) plus its own
// pong. With capacity 1, two workers answering each other's pings while
// their mailboxes are full would block on each other for ever; with WORKERS,
// a send never blocks, as an Erlang or Telar send never does. The main
// goroutine's mailboxes likewise have room for every worker's report.
//
// Check: WORKERS reports, and pings answered = WORKERS*PINGS.
// ns_per_msg is the time from the first spawn to the last worker's report,
// over the WORKERS*PINGS pings plus as many pongs.
//
//	big [-s SCHEDULERS] [WORKERS [PINGS]]    (defaults 1000 1000)
package main

import (
	"math/rand"
	"time"

	"telar/bench/peers/go/internal/cli"
)

const name = "big"

// Messages: a ping carries the sender's index (>= 0).
const (
	pong = -1
	stop = -2
)

func worker(id int, boxes []chan int, pings int, finished, answered chan<- int) {
	self := boxes[id]
	rng := rand.New(rand.NewSource(int64(id) + 1))
	ping := func() {
		to := rng.Intn(len(boxes) - 1)
		if to >= id {
			to++
		}
		boxes[to] <- id
	}

	ping()
	pongs, answers := 0, 0
	for {
		switch m := <-self; m {
		case pong:
			pongs++
			if pongs < pings {
				ping()
			} else {
				finished <- id
			}
		case stop:
			answered <- answers
			return
		default:
			boxes[m] <- pong
			answers++
		}
	}
}

func main() {
	sizes := cli.ParseSizes(name, 1000, 1000)
	workers, pings := sizes[0], sizes[1]
	if workers < 2 {
		cli.Fail(name, "WORKERS must be at least 2")
	}
	finished := make(chan int, workers)
	answered := make(chan int, workers)

	start := time.Now()
	boxes := make([]chan int, workers)
	for i := range boxes {
		boxes[i] = make(chan int, workers)
	}
	for i := range boxes {
		go worker(i, boxes, pings, finished, answered)
	}
	for i := 0; i < workers; i++ {
		<-finished
	}
	elapsed := time.Since(start)

	for _, box := range boxes {
		box <- stop
	}
	total := 0
	for i := 0; i < workers; i++ {
		total += <-answered
	}
	if total != workers*pings {
		cli.Fail(name, "%d pings answered, want %d", total, workers*pings)
	}
	cli.Report(name, "ns_per_msg", float64(elapsed.Nanoseconds())/float64(2*workers*pings))
}
