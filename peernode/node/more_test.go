package node_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/wire"
)

// TestSlowHandlerStallsOnlyItsChannel blocks the Message handler for one
// peer; messages from another peer keep arriving meanwhile.
func TestSlowHandlerStallsOnlyItsChannel(t *testing.T) {
	release := make(chan struct{})
	fast := make(chan string, 10)
	hub := startNode(t, node.Config{ID: "hub"})
	if err := hub.Registry().HandleFunc(wire.TypeMessage, func(ctx context.Context, ch peernode.Channel, p wire.Packet) error {
		if ch.Peer().ID() == "slow" {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}
		fast <- p.(wire.Message).Text
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slow := startNode(t, node.Config{ID: "slow", Seeds: []string{hub.Addr().String()}})
	quick := startNode(t, node.Config{ID: "quick", Seeds: []string{hub.Addr().String()}})
	eventually(t, 10*time.Second, func() bool { return trustedCount(hub) == 2 }, func() string { return "hub lacks channels" })
	ctx := context.Background()
	if err := slow.SendMessage(ctx, "hub", "blocks the handler"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := quick.SendMessage(ctx, "hub", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-fast:
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d from quick stalled behind the slow handler", i)
		}
	}
	close(release)
}

// TestOutboundCap: a node with MaxOutbound 1 and three seeds keeps one
// outbound channel and counts the others as refused by the cap.
func TestOutboundCap(t *testing.T) {
	var seeds []string
	for i := range 3 {
		seeds = append(seeds, startNode(t, node.Config{ID: fmt.Sprintf("s%d", i)}).Addr().String())
	}
	n := startNode(t, node.Config{ID: "dialer", MaxOutbound: 1, Seeds: seeds})
	eventually(t, 10*time.Second, func() bool {
		return len(n.ActivePeerChannels()) == 1 &&
			counter(t, n, "peermesh_node_connections_rejected_total", "reason", "capacity_outbound") >= 2
	}, func() string { return fmt.Sprintf("channels %+v", n.Channels()) })
	if l := n.Limits(); l.Outbound > 1 {
		t.Errorf("outbound %d exceeds the cap of 1", l.Outbound)
	}
}

// TestBackoffIsCappedExponential checks the schedule: doubling from the
// minimum, never above the maximum.
func TestBackoffIsCappedExponential(t *testing.T) {
	n, err := node.New(node.Config{ID: "b", BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	var d time.Duration
	for i, w := range want {
		d = n.NextBackoff(d)
		if d != w*time.Millisecond {
			t.Fatalf("step %d: backoff %s, want %s", i, d, w*time.Millisecond)
		}
	}
}

// TestRedialsAfterPeerRestart: when a seed goes away and comes back on the
// same address, the dialer reconnects within the backoff bound.
func TestRedialsAfterPeerRestart(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	n := startNode(t, node.Config{ID: "client", Seeds: []string{addr}})
	// Nothing listens yet: dials fail and back off (capped at 200ms in tests).
	ctx, cancel := context.WithCancel(context.Background())
	server, err := node.New(node.Config{ID: "server", ListenAddr: addr, Channel: fastChannel()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx) }()
	eventually(t, 5*time.Second, func() bool { return trustedCount(n) == 1 }, func() string { return "no reconnect to the late server" })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return len(n.ActivePeerChannels()) == 0 }, func() string { return "channel to stopped server still open" })
	again := startNode(t, node.Config{ID: "server", ListenAddr: addr})
	eventually(t, 5*time.Second, func() bool { return trustedCount(n) == 1 && trustedCount(again) == 1 }, func() string { return "no reconnect after restart" })
}

// A node listening on one address dials from it: the peer sees the
// connection come from 127.0.0.2, the address a CIDR rule would name, not
// from the kernel's choice for the route (127.0.0.1).
func TestDialFromListenAddress(t *testing.T) {
	server := startNode(t, node.Config{ID: "server"})
	client := startNode(t, node.Config{ID: "client", ListenAddr: "127.0.0.2:0", Seeds: []string{server.Addr().String()}})
	eventually(t, 5*time.Second, func() bool { return trustedCount(server) == 1 && trustedCount(client) == 1 },
		func() string {
			return fmt.Sprintf("server %d, client %d channels", trustedCount(server), trustedCount(client))
		})
	for _, c := range server.Channels() {
		if host, _, _ := net.SplitHostPort(c.Addr); host != "127.0.0.2" {
			t.Errorf("server sees the client's channel from %s, want 127.0.0.2", c.Addr)
		}
	}
}

// SetLimits changes the caps of a running node: a lowered inbound cap
// refuses new channels but keeps the open one, and restoring it lets the
// refused peer in (it keeps redialling).
func TestSetLimitsLive(t *testing.T) {
	server := startNode(t, node.Config{ID: "server"})
	server.SetLimits(node.PolicyLimits{MaxInbound: 1, IdleTimeout: time.Hour})
	if l := server.Limits(); l.MaxInbound != 1 || l.MaxOutbound != node.DefaultMaxOutbound {
		t.Fatalf("limits after SetLimits: %+v", l)
	}
	a := startNode(t, node.Config{ID: "a", Seeds: []string{server.Addr().String()}})
	eventually(t, 5*time.Second, func() bool { return trustedCount(server) == 1 && trustedCount(a) == 1 },
		func() string { return fmt.Sprintf("server has %d channels", trustedCount(server)) })
	b := startNode(t, node.Config{ID: "b", Seeds: []string{server.Addr().String()}})
	eventually(t, 5*time.Second, func() bool {
		return counter(t, server, "peermesh_node_connections_rejected_total", "reason", "capacity_inbound") >= 1
	}, func() string { return "b was not refused" })
	if trustedCount(server) != 1 || trustedCount(b) != 0 {
		t.Fatalf("over the lowered cap: server %d channels, b %d", trustedCount(server), trustedCount(b))
	}
	server.SetLimits(node.PolicyLimits{}) // back to what the node started with
	eventually(t, 10*time.Second, func() bool { return trustedCount(server) == 2 && trustedCount(b) >= 1 },
		func() string {
			return fmt.Sprintf("server has %d channels after the cap was restored", trustedCount(server))
		})
	if l := server.Limits(); l.MaxInbound != node.DefaultMaxInbound {
		t.Fatalf("limits after restoring: %+v", l)
	}
}
