// pingpong: two goroutines exchange a message N times. Each has a mailbox, a
// buffered channel of capacity 1, so sends are asynchronous. ping sends its
// counter to pong, pong sends it back; after N round trips ping tells the main
// goroutine by a message and pong is told to stop.
//
//	pingpong [-s SCHEDULERS] [N]    (default 1000000)
package main

import (
	"fmt"
	"os"
	"time"

	"telar/bench/peers/go/internal/cli"
)

const stop = -1

func pong(self <-chan int, ping chan<- int) {
	for {
		m := <-self
		if m == stop {
			return
		}
		ping <- m
	}
}

func ping(self <-chan int, pong chan<- int, n int, done chan<- int) {
	for i := 0; i < n; i++ {
		pong <- i
		if m := <-self; m != i {
			fmt.Fprintf(os.Stderr, "pingpong: got %d, want %d\n", m, i)
			os.Exit(1)
		}
	}
	pong <- stop
	done <- n
}

func main() {
	n := cli.Parse("pingpong", 1000000)
	done := make(chan int, 1)

	start := time.Now()
	pingBox := make(chan int, 1)
	pongBox := make(chan int, 1)
	go pong(pongBox, pingBox)
	go ping(pingBox, pongBox, n, done)
	got := <-done
	elapsed := time.Since(start)

	if got != n {
		fmt.Fprintf(os.Stderr, "pingpong: %d round trips, want %d\n", got, n)
		os.Exit(1)
	}
	cli.Report("pingpong", "ns_per_roundtrip", float64(elapsed.Nanoseconds())/float64(n))
}
