// Package cli holds the command line shared by the Go peers:
//
//	PROGRAM [-s S] [SIZE...]
//
// -s S sets GOMAXPROCS (the number of schedulers); the SIZEs are the
// workload's positional sizes, in the order bench/README.md lists them, each
// defaulting to the full size. Results are printed as one line per metric:
//
//	peer=go workload=W schedulers=S metric=M value=X
package cli

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Parse reads -s S and the optional positional SIZE (default def), applies
// GOMAXPROCS and returns the size.
func Parse(workload string, def int) int {
	return parse(workload, 1, []int{def})[0]
}

// ParseSizes reads -s S and up to len(defaults) positional sizes, each a
// positive integer, applies GOMAXPROCS and returns the sizes: the ones given
// on the command line, then the defaults for the rest.
func ParseSizes(workload string, defaults ...int) []int {
	return parse(workload, 1, defaults)
}

// ParseCounts is ParseSizes for workloads whose sizes may be zero (fairness
// runs with 0 hogs as its baseline). The caller checks any size that must
// not be.
func ParseCounts(workload string, defaults ...int) []int {
	return parse(workload, 0, defaults)
}

func parse(workload string, min int, defaults []int) []int {
	sizes := append([]int(nil), defaults...)
	n := 0
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-s":
			if i+1 >= len(args) {
				usage(workload, len(defaults), "-s needs a value")
			}
			i++
			runtime.GOMAXPROCS(atLeast(workload, len(defaults), args[i], 1))
		case a == "-h" || a == "--help":
			usage(workload, len(defaults), "")
		case len(a) > 1 && a[0] == '-':
			usage(workload, len(defaults), "unknown option "+a)
		case n < len(sizes):
			sizes[n] = atLeast(workload, len(defaults), a, min)
			n++
		default:
			usage(workload, len(defaults), "too many arguments")
		}
	}
	return sizes
}

func atLeast(workload string, nsizes int, s string, min int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < min {
		what := "a positive integer"
		if min == 0 {
			what = "a non-negative integer"
		}
		usage(workload, nsizes, "not "+what+": "+s)
	}
	return n
}

func usage(workload string, nsizes int, msg string) {
	if msg != "" {
		fmt.Fprintf(os.Stderr, "%s: %s\n", workload, msg)
	}
	sizes := "[SIZE]"
	if nsizes > 1 {
		sizes = "[SIZE...] (up to " + strconv.Itoa(nsizes) + ")"
	}
	fmt.Fprintf(os.Stderr, "usage: %s [-s SCHEDULERS] %s\n", workload, sizes)
	if msg != "" {
		os.Exit(2)
	}
	os.Exit(0)
}

// Fail prints a diagnostic to stderr and exits 1: the workload's check failed.
func Fail(workload, format string, args ...any) {
	fmt.Fprintf(os.Stderr, workload+": "+format+"\n", args...)
	os.Exit(1)
}

// VmRSS returns the process's resident set size in bytes, as the OS sees it
// (VmRSS in /proc/self/status).
func VmRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "VmRSS:") {
			continue
		}
		fields := strings.Fields(line[len("VmRSS:"):])
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected line %q", line)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected line %q", line)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}

// Report prints one result line.
func Report(workload, metric string, value float64) {
	fmt.Printf("peer=go workload=%s schedulers=%d metric=%s value=%.2f\n",
		workload, runtime.GOMAXPROCS(0), metric, value)
}
