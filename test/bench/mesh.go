package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/wire"
)

// benchMesh starts nodes that know only node 0 and measures the time until
// every node has a trusted channel to every other (peer exchange + ping
// trust), all in this process on loopback.
func benchMesh(scale int) error {
	size := 100
	if scale > 1 {
		size = 30
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	chCfg := channel.DefaultConfig(wire.Hello{})
	nodes := make([]*node.Node, size)
	done := make(chan error, size)
	var seed string
	start := time.Now()
	for i := range nodes {
		cfg := node.Config{ID: fmt.Sprintf("mesh-%03d", i), ListenAddr: "127.0.0.1:0", Channel: chCfg,
			BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second}
		if i > 0 {
			cfg.Seeds = []string{seed}
		}
		n, err := node.New(cfg)
		if err != nil {
			return err
		}
		if i == 0 {
			seed = n.Addr().String()
		}
		nodes[i] = n
		go func() { done <- n.Run(ctx) }()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		full := 0
		for _, n := range nodes {
			if len(n.TrustedPeerChannels()) == size-1 {
				full++
			}
		}
		if full == size {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d nodes reached a full trusted mesh in 60s", full, size)
		}
		fmt.Fprintf(os.Stderr, "bench: mesh: %d/%d nodes fully connected after %s\n", full, size, time.Since(start).Round(time.Millisecond))
		time.Sleep(100 * time.Millisecond) // progress display while polling the condition
	}
	took := time.Since(start)
	cancel()
	for range nodes {
		if err := <-done; err != nil {
			return err
		}
	}
	record(result{name: fmt.Sprintf("%d nodes to full trusted mesh from one seed", size), value: took.Round(time.Millisecond).String(),
		baseline: "-", ratio: "-", target: "< 5 s (100 nodes)", verdict: verdict(took < 5*time.Second)})
	return nil
}
