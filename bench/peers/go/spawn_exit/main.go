// spawn_exit: spawn N goroutines in batches of BATCH. Each sends done to the
// main goroutine's mailbox and exits; the main goroutine waits for a batch's
// replies before spawning the next batch. The mailbox has room for a batch's
// replies, as skynet's nodes have room for their children's, so a reply never
// blocks (sends are asynchronous in Telar and Erlang).
//
//	spawn_exit [-s SCHEDULERS] [N [BATCH]]    (defaults 1000000 1000)
package main

import (
	"time"

	"telar/bench/peers/go/internal/cli"
)

const name = "spawn_exit"

func worker(done chan<- struct{}) {
	done <- struct{}{}
}

func main() {
	sizes := cli.ParseSizes(name, 1000000, 1000)
	n, batch := sizes[0], sizes[1]
	done := make(chan struct{}, batch)

	start := time.Now()
	replies := 0
	for spawned := 0; spawned < n; {
		b := batch
		if b > n-spawned {
			b = n - spawned
		}
		for i := 0; i < b; i++ {
			go worker(done)
		}
		spawned += b
		for i := 0; i < b; i++ {
			<-done
			replies++
		}
	}
	elapsed := time.Since(start)

	if replies != n {
		cli.Fail(name, "%d replies, want %d", replies, n)
	}
	cli.Report(name, "ns_per_spawn_exit", float64(elapsed.Nanoseconds())/float64(n))
}
