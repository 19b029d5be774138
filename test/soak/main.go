// Command soak is the churn soak of issue 4 (`make soak`): a core of nodes
// stays up while, every interval, one churning node leaves and a new one
// (with a new identifier) joins through the seed, for the given duration.
// Every 10 s it forces a GC and samples the heap in use, goroutines and the
// core's table sizes; at the end it compares the first and last minutes.
// Memory must stay flat: known peers are evicted by TTL, channels and
// goroutines of departed nodes are released.
//
//	go run ./test/soak [-duration 10m] [-core 10] [-churn 10] [-interval 1s]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/wire"
)

type running struct {
	n    *node.Node
	stop context.CancelFunc
	done chan error
}

func start(id, seed string, ttl time.Duration) (*running, error) {
	ch := channel.DefaultConfig(wire.Hello{})
	cfg := node.Config{ID: id, ListenAddr: "127.0.0.1:0", Channel: ch, KnownPeerTTL: ttl,
		ReapInterval: ttl / 4, BackoffMin: 50 * time.Millisecond, BackoffMax: 2 * time.Second}
	if seed != "" {
		cfg.Seeds = []string{seed}
	}
	n, err := node.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{n: n, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- n.Run(ctx) }()
	return r, nil
}

type sample struct {
	at              time.Duration
	heap            uint64
	goroutines      int
	known, channels int
}

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long to churn")
	core := flag.Int("core", 10, "nodes that stay up")
	churn := flag.Int("churn", 10, "churning nodes alive at any time")
	interval := flag.Duration("interval", time.Second, "one node leaves and one joins every interval")
	ttl := flag.Duration("ttl", 20*time.Second, "known-peer TTL of every node")
	flag.Parse()
	if err := run(*duration, *core, *churn, *interval, *ttl); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, coreN, churnN int, interval, ttl time.Duration) error {
	var cores, churners []*running
	seed := ""
	for i := range coreN {
		r, err := start(fmt.Sprintf("core-%02d", i), seed, ttl)
		if err != nil {
			return err
		}
		if i == 0 {
			seed = r.n.Addr().String()
		}
		cores = append(cores, r)
	}
	next := 0
	join := func() error {
		r, err := start(fmt.Sprintf("churn-%06d", next), seed, ttl)
		next++
		if err == nil {
			churners = append(churners, r)
		}
		return err
	}
	for range churnN {
		if err := join(); err != nil {
			return err
		}
	}
	defer func() {
		for _, r := range append(cores, churners...) {
			r.stop()
			if err := <-r.done; err != nil {
				fmt.Fprintln(os.Stderr, "soak: node stopped with", err)
			}
		}
	}()

	var samples []sample
	begin := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	nextSample := time.Duration(0)
	for time.Since(begin) < duration {
		<-tick.C
		// One leaves, one joins.
		old := churners[0]
		churners = churners[1:]
		old.stop()
		if err := <-old.done; err != nil {
			return fmt.Errorf("node %s: %w", old.n.ID(), err)
		}
		if err := join(); err != nil {
			return err
		}
		if el := time.Since(begin); el >= nextSample {
			nextSample += 10 * time.Second
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			s := sample{at: el.Round(time.Second), heap: ms.HeapInuse, goroutines: runtime.NumGoroutine()}
			for _, c := range cores {
				s.known += len(c.n.KnownPeers())
				s.channels += len(c.n.Channels())
			}
			samples = append(samples, s)
			fmt.Printf("soak: t=%-6s joined=%-5d heap=%6.1f MiB goroutines=%-5d core known peers=%-5d core channels=%d\n",
				s.at, next, float64(s.heap)/(1<<20), s.goroutines, s.known, s.channels)
		}
	}
	if len(samples) < 4 {
		return fmt.Errorf("too short: %d samples", len(samples))
	}
	// Compare the average of the first and last quarter of the samples,
	// skipping the first sample (warm-up).
	q := max(len(samples)/4, 1)
	avg := func(ss []sample) (heap float64, g float64) {
		for _, s := range ss {
			heap += float64(s.heap)
			g += float64(s.goroutines)
		}
		return heap / float64(len(ss)), g / float64(len(ss))
	}
	h0, g0 := avg(samples[1 : 1+q])
	h1, g1 := avg(samples[len(samples)-q:])
	var peak uint64
	for _, s := range samples {
		peak = max(peak, s.heap)
	}
	growth := (h1 - h0) / h0
	fmt.Printf("\nsoak summary: %s, %d core + %d churning nodes, one leave+join every %s (%d joins), known-peer TTL %s\n",
		duration, coreN, churnN, interval, next, ttl)
	fmt.Printf("  heap in use: first quarter avg %.1f MiB, last quarter avg %.1f MiB (%+.1f %%), peak %.1f MiB\n",
		h0/(1<<20), h1/(1<<20), 100*growth, float64(peak)/(1<<20))
	fmt.Printf("  goroutines:  first quarter avg %.0f, last quarter avg %.0f\n", g0, g1)
	if growth > 0.25 {
		return fmt.Errorf("heap grew %.0f %% between the first and last quarter: not flat", 100*growth)
	}
	fmt.Println("  memory flat: PASS")
	return nil
}
