package main

// MODE 1, blocking hogs: each hog goroutine loops forever reading one byte
// from its own os.Pipe with (*os.File).Read, the idiomatic blocking read.
// Go puts the pipe's read end in its netpoller (non-blocking fd, epoll), so
// a hog waiting for a byte is a parked goroutine, not a blocked thread:
// that is Go's own answer to blocking I/O, where Telar uses a pool of
// blocking threads (tel_blocking) and Erlang its dirty I/O schedulers.
//
// The feeder writes one byte to the hogs' pipes in turn (round-robin),
// sleeping feedSleep between writes, as Telar's feeder thread does. It must
// run outside the Go runtime, as Telar's runs outside Telar's: a goroutine
// cannot be that. time.Sleep wakes an idle runtime through epoll_pwait,
// whose timeout is in whole milliseconds, so a 50 µs time.Sleep takes about
// 1 ms and the hogs would wake 20 times less often than the other peers';
// and a goroutine sleeping in a raw nanosleep system call keeps its P until
// sysmon retakes it, which at GOMAXPROCS=1 delayed the ticker by
// milliseconds (p99 2.5 ms, measured): a cost of the feeder, not of the
// hogs. So the feeder is a small Perl program (perl-base is part of every
// Debian system), the same as the Erlang peer's, that inherits the pipes'
// write ends as file descriptors 3, 4, ... and sleeps in select(), which
// also tells it to stop when its standard input closes.
//
// Warm-up is not measured: the ticker starts once every hog has read one
// byte, which must happen within CAP_MS; CAP_MS then bounds the ticks,
// from the ticker's start.

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"telar/bench/peers/go/internal/cli"
)

// feedSleepUS is the feeder's sleep between two writes, in µs (the same in
// every peer; Linux's 50 µs timer slack comes on top).
const feedSleepUS = 50

// feederScript: perl -e SCRIPT N SLEEP_S; writes one byte to fds 3..N+2 in
// turn until its standard input is closed (or readable).
const feederScript = `
use strict; use warnings;
my ($n, $sleep) = @ARGV;
my @fh = map { open(my $f, ">&=", $_ + 3) or die "fd $_: $!"; $f } 0 .. $n - 1;
my $rin = ''; vec($rin, fileno(STDIN), 1) = 1;
for (my $i = 0; ; $i = ($i + 1) % $n) {
    my $r = $rin;
    last if select($r, undef, undef, $sleep) > 0;
    defined(syswrite($fh[$i], "x", 1)) or die "write to fd ", $i + 3, ": $!";
}
`

// hogCount is one hog's byte count, on a cache line of its own.
type hogCount struct {
	n atomic.Uint64
	_ [56]byte
}

func blockingHog(r *os.File, count *hogCount, warm *sync.WaitGroup) {
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if err != nil {
			return // the feeder has gone: the run is over
		}
		if count.n.Add(uint64(n)) == uint64(n) {
			warm.Done() // the first byte
		}
	}
}

func blocking(name string, hogs, ticks, capMS int) {
	rs := make([]*os.File, hogs)
	ws := make([]*os.File, hogs)
	for i := range rs {
		var err error
		if rs[i], ws[i], err = os.Pipe(); err != nil {
			cli.Fail(name, "pipe for hog %d: %v", i, err)
		}
	}
	counts := make([]hogCount, hogs)
	var warm sync.WaitGroup
	warm.Add(hogs)
	for i := range rs {
		go blockingHog(rs[i], &counts[i], &warm)
	}
	var stop atomic.Bool
	failed := make(chan error, 1)
	if hogs > 0 {
		feed := exec.Command("perl", "-e", feederScript, strconv.Itoa(hogs),
			strconv.FormatFloat(feedSleepUS/1e6, 'f', -1, 64))
		feed.ExtraFiles = ws
		feed.Stderr = os.Stderr
		stdin, err := feed.StdinPipe()
		if err != nil {
			cli.Fail(name, "feeder's stdin: %v", err)
		}
		if err := feed.Start(); err != nil {
			cli.Fail(name, "cannot start the feeder (perl): %v", err)
		}
		for _, w := range ws {
			w.Close() // the feeder's copies are the only write ends now
		}
		go func() {
			err := feed.Wait()
			if !stop.Load() {
				failed <- fmt.Errorf("the feeder exited early: %v", err)
			}
		}()
		defer stdin.Close() // ends the feeder
	}

	warmed := make(chan struct{})
	go func() { warm.Wait(); close(warmed) }()
	select {
	case <-warmed:
	case err := <-failed:
		cli.Fail(name, "%v", err)
	case <-time.After(time.Duration(capMS) * time.Millisecond):
		cli.Fail(name, "some hog has read nothing after %d ms", capMS)
	}

	total := func() uint64 {
		var sum uint64
		for i := range counts {
			sum += counts[i].n.Load()
		}
		return sum
	}
	reads0, t0 := total(), time.Now()
	samples := make(chan []time.Duration, 1)
	go ticker(ticks, t0.Add(time.Duration(capMS)*time.Millisecond), samples)
	var late []time.Duration
	select {
	case late = <-samples:
	case err := <-failed:
		cli.Fail(name, "%v", err)
	}
	reads, elapsed := total()-reads0, time.Since(t0)
	stop.Store(true)

	if len(late) < 1 || len(late) > ticks {
		cli.Fail(name, "%d ticks recorded, want 1..%d", len(late), ticks)
	}
	if hogs > 0 {
		fmt.Fprintf(os.Stderr, "%s: %d hog reads in %.0f ms (%.0f/s)\n", name,
			reads, elapsed.Seconds()*1e3, float64(reads)/elapsed.Seconds())
	}
	report(name, late)
}
