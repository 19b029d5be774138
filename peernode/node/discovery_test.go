package node_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/node"
)

// fakeDiscoverer reports the address sets sent on its channel.
type fakeDiscoverer struct{ sets chan []string }

func (f *fakeDiscoverer) Name() string { return "fake" }

func (f *fakeDiscoverer) Run(ctx context.Context, update func([]string)) error {
	for {
		select {
		case s := <-f.sets:
			update(s)
		case <-ctx.Done():
			return nil
		}
	}
}

// TestDiscoveryAddressChangeDialsAtOnce: while the old address of a peer is
// backing off (BackoffMax one minute), discovery reports its new address,
// which is dialed at once; the old one is no longer dialed.
func TestDiscoveryAddressChangeDialsAtOnce(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	disc := &fakeDiscoverer{sets: make(chan []string)}
	n := startNode(t, node.Config{ID: "client", Discoverers: []peernode.Discoverer{disc},
		BackoffMin: 10 * time.Second, BackoffMax: time.Minute})
	disc.sets <- []string{dead}
	eventually(t, 5*time.Second, func() bool {
		return len(n.Targets()) == 1
	}, func() string { return "the reported address is not a dial target" })

	server := startNode(t, node.Config{ID: "server"})
	start := time.Now()
	disc.sets <- []string{server.Addr().String()}
	eventually(t, 5*time.Second, func() bool { return trustedCount(n) == 1 }, func() string { return "new address not dialed" })
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s, more than the old target's backoff would allow", took)
	}
	if targets := n.Targets(); len(targets) != 1 || targets[0] != server.Addr().String() {
		t.Errorf("targets %v, want only the new address", targets)
	}
}
