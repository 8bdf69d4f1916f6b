// ring: PROCS goroutines in a ring, each with a mailbox (a buffered channel
// of capacity 1) and knowing the next one's. The main goroutine injects a
// token, the number of hops left, at process 0; each process decrements it and
// passes it on, and the one that receives 0 reports its number to the main
// goroutine, which then stops them all. The holder must be HOPS mod PROCS.
//
// ns_per_hop is timed from injecting the token to the holder's report.
//
//	ring [-s SCHEDULERS] [PROCS [HOPS]]    (defaults 10000 10000000)
package main

import (
	"time"

	"telar/bench/peers/go/internal/cli"
)

const (
	name = "ring"
	stop = -1
)

func node(id int, self <-chan int, next chan<- int, done chan<- int) {
	for {
		t := <-self
		switch t {
		case stop:
			return
		case 0:
			done <- id
		default:
			next <- t - 1
		}
	}
}

func main() {
	sizes := cli.ParseSizes(name, 10000, 10000000)
	procs, hops := sizes[0], sizes[1]
	done := make(chan int, 1)

	boxes := make([]chan int, procs)
	for i := range boxes {
		boxes[i] = make(chan int, 1)
	}
	for i, box := range boxes {
		go node(i, box, boxes[(i+1)%procs], done)
	}
	start := time.Now()
	boxes[0] <- hops
	holder := <-done
	elapsed := time.Since(start)

	for _, box := range boxes {
		box <- stop
	}
	if want := hops % procs; holder != want {
		cli.Fail(name, "token ended at process %d, want %d", holder, want)
	}
	cli.Report(name, "ns_per_hop", float64(elapsed.Nanoseconds())/float64(hops))
}
