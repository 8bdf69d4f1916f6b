// fanin: SENDERS goroutines each send the integers 1..MSGS to one receiver,
// which sums them and, once it has all SENDERS*MSGS, reports the sum to the
// main goroutine. The senders share one channel of capacity 1024, so a full
// channel pushes back on them. The sum must be SENDERS*MSGS*(MSGS+1)/2.
//
// Timed from spawning the receiver and senders to the receiver's report.
//
//	fanin [-s SCHEDULERS] [SENDERS [MSGS]]    (defaults 1000 10000)
package main

import (
	"time"

	"telar/bench/peers/go/internal/cli"
)

const name = "fanin"

func sender(to chan<- int64, msgs int64) {
	for i := int64(1); i <= msgs; i++ {
		to <- i
	}
}

func receiver(self <-chan int64, total int64, done chan<- int64) {
	var sum int64
	for i := int64(0); i < total; i++ {
		sum += <-self
	}
	done <- sum
}

func main() {
	sizes := cli.ParseSizes(name, 1000, 10000)
	senders, msgs := int64(sizes[0]), int64(sizes[1])
	total := senders * msgs
	done := make(chan int64, 1)

	start := time.Now()
	box := make(chan int64, 1024)
	go receiver(box, total, done)
	for i := int64(0); i < senders; i++ {
		go sender(box, msgs)
	}
	sum := <-done
	elapsed := time.Since(start)

	if want := senders * msgs * (msgs + 1) / 2; sum != want {
		cli.Fail(name, "sum %d, want %d", sum, want)
	}
	cli.Report(name, "ns_per_msg", float64(elapsed.Nanoseconds())/float64(total))
	cli.Report(name, "msgs_per_sec", float64(total)/elapsed.Seconds())
}
