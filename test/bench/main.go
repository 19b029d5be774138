// Command bench is peermesh's benchmark program (`make bench`). Each figure
// is measured beside a baseline taken in the same run on the same machine
// (raw TCP on loopback, or length-prefixed framed TCP through a buffered
// writer for small messages), so ratios hold whatever machine runs it.
//
//	go run ./test/bench [-quick] [-only codec,bulk,small,rtt,mesh,transfer]
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

type result struct {
	name, value, baseline, ratio, target, verdict string
}

var results []result

func record(r result) {
	results = append(results, r)
	fmt.Fprintf(os.Stderr, "bench: %-40s %s (baseline %s)\n", r.name, r.value, r.baseline)
}

func main() {
	quick := flag.Bool("quick", false, "smaller runs (for CI smoke checks); figures are noisier")
	only := flag.String("only", "", "comma-separated subset: codec,bulk,small,rtt,mesh,transfer")
	flag.Parse()
	want := func(name string) bool {
		return *only == "" || strings.Contains(","+*only+",", ","+name+",")
	}
	scale := 1
	if *quick {
		scale = 10
	}
	start := time.Now()
	steps := []struct {
		name string
		run  func(scale int) error
	}{
		{"codec", benchCodec},
		{"bulk", benchBulk},
		{"small", benchSmall},
		{"rtt", benchRTT},
		{"mesh", benchMesh},
		{"transfer", benchTransfer},
	}
	for _, s := range steps {
		if !want(s.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: running %s ...\n", s.name)
		if err := s.run(scale); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", s.name, err)
			os.Exit(1)
		}
	}
	fmt.Printf("\npeermesh benchmarks (%s, GOMAXPROCS=%d, %s)\n\n", time.Now().UTC().Format("2006-01-02"), gomaxprocs(), time.Since(start).Round(time.Second))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| benchmark\t| peermesh\t| baseline (same run)\t| ratio\t| target\t| verdict\t|")
	fmt.Fprintln(tw, "|---\t|---\t|---\t|---\t|---\t|---\t|")
	for _, r := range results {
		fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %s\t| %s\t| %s\t|\n", r.name, r.value, r.baseline, r.ratio, r.target, r.verdict)
	}
	tw.Flush()
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
