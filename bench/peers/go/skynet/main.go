// skynet: a tree of goroutines. Each node spawns (up to) 10 children until
// there are LEAVES leaves; leaf i sends its number i to its parent, and every
// inner node sends the sum of its children's replies to its own parent. Each
// node's mailbox is a buffered channel with room for all its children's
// replies, so sends never block. The root's sum must be LEAVES*(LEAVES-1)/2.
//
//	skynet [-s SCHEDULERS] [LEAVES]    (default 1000000)
package main

import (
	"fmt"
	"os"
	"time"

	"telar/bench/peers/go/internal/cli"
)

const fanout = 10

// skynet covers the leaves [num, num+size) and sends their sum to parent.
func skynet(parent chan<- int64, num, size int64) {
	if size == 1 {
		parent <- num
		return
	}
	div := int64(fanout)
	if size < div {
		div = size
	}
	mailbox := make(chan int64, div)
	for i := int64(0); i < div; i++ {
		lo := size * i / div
		hi := size * (i + 1) / div
		go skynet(mailbox, num+lo, hi-lo)
	}
	var sum int64
	for i := int64(0); i < div; i++ {
		sum += <-mailbox
	}
	parent <- sum
}

func main() {
	leaves := int64(cli.Parse("skynet", 1000000))
	done := make(chan int64, 1)

	start := time.Now()
	go skynet(done, 0, leaves)
	sum := <-done
	elapsed := time.Since(start)

	if want := leaves * (leaves - 1) / 2; sum != want {
		fmt.Fprintf(os.Stderr, "skynet: wrong sum %d, want %d\n", sum, want)
		os.Exit(1)
	}
	cli.Report("skynet", "wall_ms", float64(elapsed.Nanoseconds())/1e6)
}
