package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fastChannel is a channel template with short timers for tests.
func fastChannel() channel.Config {
	c := channel.DefaultConfig(wire.Hello{})
	c.HandshakeTimeout = 5 * time.Second
	c.KeepaliveInterval = 0
	c.IdleTimeout = 0
	c.DrainTimeout = time.Second
	return c
}

// startNode builds and runs a node on 127.0.0.1:0; Cleanup stops it and
// waits for Run to return.
func startNode(t *testing.T, cfg node.Config) *node.Node {
	t.Helper()
	n, _ := startStoppableNode(t, cfg)
	return n
}

// startStoppableNode is startNode that also returns a function stopping the
// node early (it waits for Run to return; Cleanup then does nothing more).
func startStoppableNode(t *testing.T, cfg node.Config) (*node.Node, func()) {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if cfg.Channel.HandshakeTimeout == 0 {
		cfg.Channel = fastChannel()
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	}
	if cfg.Logger == nil && os.Getenv("PEERNODE_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	reg := prometheus.NewRegistry()
	if cfg.Registerer == nil {
		cfg.Registerer = reg
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatalf("node.New(%s): %v", cfg.ID, err)
	}
	registries.Store(n, reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("node %s: Run: %v", cfg.ID, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("node %s did not stop within 10s", cfg.ID)
			}
		})
	}
	t.Cleanup(stop)
	return n, stop
}

// eventually waits until cond holds, checking every 5 ms, or fails the test
// after timeout with the message msg() returns.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, msg())
		}
		<-tick.C
	}
}

// trustedCount returns the number of trusted open channels of n.
func trustedCount(n *node.Node) int { return len(n.TrustedPeerChannels()) }

// recorder collects events for assertions.
type recorder struct {
	mu       sync.Mutex
	messages []string
}

func (r *recorder) message(from, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages = append(r.messages, fmt.Sprintf("%s:%s", from, text))
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.messages...)
}
