package node_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode/node"
)

// TestMeshOf30ThroughPeerExchange: 30 nodes that know only one seed form a
// full trusted mesh through PeerGroup exchange.
func TestMeshOf30ThroughPeerExchange(t *testing.T) {
	const size = 30
	nodes := []*node.Node{startNode(t, node.Config{ID: "pex-00"})}
	seed := nodes[0].Addr().String()
	for i := 1; i < size; i++ {
		nodes = append(nodes, startNode(t, node.Config{ID: fmt.Sprintf("pex-%02d", i), Seeds: []string{seed}}))
	}
	start := time.Now()
	eventually(t, 60*time.Second, func() bool {
		for _, n := range nodes {
			if trustedCount(n) != size-1 {
				return false
			}
		}
		return true
	}, func() string {
		var b strings.Builder
		for _, n := range nodes {
			fmt.Fprintf(&b, "%d ", trustedCount(n))
		}
		return "trusted per node: " + b.String()
	})
	t.Logf("30-node trusted mesh formed in %s", time.Since(start))
	for _, n := range nodes {
		if got := len(n.KnownPeers()); got != size-1 {
			t.Errorf("%s knows %d peers, want %d", n.ID(), got, size-1)
		}
	}
}

// TestKnownPeersEvictedByTTL: a peer that left is forgotten after the TTL,
// and so is its peer-exchange dial target; connected peers stay.
func TestKnownPeersEvictedByTTL(t *testing.T) {
	hub := startNode(t, node.Config{ID: "hub"})
	leaving, stop := startStoppableNode(t, node.Config{ID: "leaving", Seeds: []string{hub.Addr().String()}})
	eventually(t, 10*time.Second, func() bool { return trustedCount(hub) == 1 }, func() string { return "leaving not connected" })
	// stays joins later, so the hub's PeerGroup tells it leaving's address
	// and stays dials it: a peer-exchange target.
	stays := startNode(t, node.Config{ID: "stays", KnownPeerTTL: time.Minute, Seeds: []string{hub.Addr().String()}})
	eventually(t, 10*time.Second, func() bool {
		return trustedCount(hub) == 2 && trustedCount(stays) == 2
	}, func() string { return "mesh of 3 did not form" })
	leavingAddr := leaving.Addr().String()
	stop()
	eventually(t, 10*time.Second, func() bool { return !connected(stays, "leaving") && !connected(hub, "leaving") },
		func() string { return "channels to the stopped node stay open" })

	// Before the TTL nothing is evicted; after it, the departed peer is gone.
	stays.EvictStale(time.Now().Add(30 * time.Second))
	if !knows(stays, "leaving") || !slices.Contains(stays.Targets(), leavingAddr) {
		t.Fatal("evicted before the TTL")
	}
	stays.EvictStale(time.Now().Add(2 * time.Minute))
	if knows(stays, "leaving") {
		t.Errorf("departed peer still known after the TTL: %+v", stays.KnownPeers())
	}
	if slices.Contains(stays.Targets(), leavingAddr) {
		t.Error("unreachable peer-exchange target still dialed after the TTL")
	}
	if !knows(stays, "hub") {
		t.Error("a connected peer was evicted")
	}
}

func connected(n *node.Node, id string) bool {
	for _, kp := range n.KnownPeers() {
		if kp.ID == id {
			return kp.Connected
		}
	}
	return false
}

func knows(n *node.Node, id string) bool {
	for _, kp := range n.KnownPeers() {
		if kp.ID == id {
			return true
		}
	}
	return false
}
