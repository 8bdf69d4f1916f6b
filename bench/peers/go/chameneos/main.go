// chameneos: the benchmarks-game chameneos-redux with processes. Creatures
// send meeting requests to a broker goroutine, which pairs them and tells each
// its partner's colour and id; each creature then takes the complement of its
// own colour and its partner's. After MEETINGS meetings the broker answers
// every further request with stop, and each creature reports its meeting count
// to the main goroutine. Run once with 3 creatures and once with 10. Every
// goroutine has a mailbox, a buffered channel of capacity 1, except the main
// goroutine's, which has room for every creature's report.
//
// Check: in each run the creatures' counts sum to 2*MEETINGS.
// ns_per_meeting is both runs' time over both runs' meetings.
//
//	chameneos [-s SCHEDULERS] [MEETINGS]    (default 600000)
package main

import (
	"time"

	"telar/bench/peers/go/internal/cli"
)

const name = "chameneos"

type colour uint8

const (
	blue colour = iota
	red
	yellow
)

func complement(a, b colour) colour {
	if a == b {
		return a
	}
	return 3 - a - b
}

// meeting is the broker's answer: the partner's colour and id, or stop.
type meeting struct {
	id     int // -1: stop
	colour colour
}

type request struct {
	id     int
	colour colour
	reply  chan<- meeting
}

type result struct {
	meetings, selfMet int
}

func broker(self <-chan request, meetings, creatures int) {
	for ; meetings > 0; meetings-- {
		a := <-self
		b := <-self
		a.reply <- meeting{b.id, b.colour}
		b.reply <- meeting{a.id, a.colour}
	}
	// Every creature has one more request on its way; answer each with stop.
	for ; creatures > 0; creatures-- {
		(<-self).reply <- meeting{id: -1}
	}
}

func creature(id int, c colour, broker chan<- request, done chan<- result) {
	self := make(chan meeting, 1)
	var r result
	for {
		broker <- request{id, c, self}
		m := <-self
		if m.id < 0 {
			done <- r
			return
		}
		r.meetings++
		if m.id == id {
			r.selfMet++
		}
		c = complement(c, m.colour)
	}
}

func run(meetings int, colours []colour) time.Duration {
	done := make(chan result, len(colours))
	start := time.Now()
	box := make(chan request, 1)
	go broker(box, meetings, len(colours))
	for i, c := range colours {
		go creature(i, c, box, done)
	}
	total, selfMet := 0, 0
	for range colours {
		r := <-done
		total += r.meetings
		selfMet += r.selfMet
	}
	elapsed := time.Since(start)
	if total != 2*meetings || selfMet != 0 {
		cli.Fail(name, "%d creatures: %d meetings counted (%d with itself), want %d",
			len(colours), total, selfMet, 2*meetings)
	}
	return elapsed
}

func main() {
	meetings := cli.Parse(name, 600000)

	elapsed := run(meetings, []colour{blue, red, yellow})
	elapsed += run(meetings, []colour{blue, red, yellow, red, yellow,
		blue, red, yellow, red, blue})

	cli.Report(name, "ns_per_meeting", float64(elapsed.Nanoseconds())/float64(2*meetings))
}
