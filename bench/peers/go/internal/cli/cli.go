// Package cli holds the command line shared by the Go peers:
//
//	PROGRAM [-s S] [SIZE]
//
// -s S sets GOMAXPROCS (the number of schedulers); SIZE is the workload's
// size. Results are printed as one line per metric:
//
//	peer=go workload=W schedulers=S metric=M value=X
package cli

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
)

// Parse reads -s S and the optional positional SIZE (default def), applies
// GOMAXPROCS and returns the size.
func Parse(workload string, def int) int {
	size := def
	sizeSet := false
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-s":
			if i+1 >= len(args) {
				usage(workload, "-s needs a value")
			}
			i++
			runtime.GOMAXPROCS(positive(workload, args[i]))
		case a == "-h" || a == "--help":
			usage(workload, "")
		case len(a) > 1 && a[0] == '-':
			usage(workload, "unknown option "+a)
		case !sizeSet:
			size = positive(workload, a)
			sizeSet = true
		default:
			usage(workload, "too many arguments")
		}
	}
	return size
}

func positive(workload, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		usage(workload, "not a positive integer: "+s)
	}
	return n
}

func usage(workload, msg string) {
	if msg != "" {
		fmt.Fprintf(os.Stderr, "%s: %s\n", workload, msg)
	}
	fmt.Fprintf(os.Stderr, "usage: %s [-s SCHEDULERS] [SIZE]\n", workload)
	if msg != "" {
		os.Exit(2)
	}
	os.Exit(0)
}

// Report prints one result line.
func Report(workload, metric string, value float64) {
	fmt.Printf("peer=go workload=%s schedulers=%d metric=%s value=%.2f\n",
		workload, runtime.GOMAXPROCS(0), metric, value)
}
