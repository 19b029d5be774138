package node_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/trust"
	"github.com/peermesh/peermesh/peernode/wire"
)

// TestFullMeshFromOneSeed starts 20 nodes on loopback that know only node 0;
// peer exchange must connect and trust every pair, with exactly one channel
// per pair.
func TestFullMeshFromOneSeed(t *testing.T) {
	const size = 20
	nodes := make([]*node.Node, size)
	nodes[0] = startNode(t, node.Config{ID: "node-00", Mesh: "m"})
	seed := nodes[0].Addr().String()
	for i := 1; i < size; i++ {
		nodes[i] = startNode(t, node.Config{ID: fmt.Sprintf("node-%02d", i), Mesh: "m", Seeds: []string{seed}})
	}
	eventually(t, 30*time.Second, func() bool {
		for _, n := range nodes {
			if trustedCount(n) != size-1 {
				return false
			}
		}
		return true
	}, func() string {
		var b strings.Builder
		for _, n := range nodes {
			fmt.Fprintf(&b, "%s:%d ", n.ID(), trustedCount(n))
		}
		return "trusted channels per node: " + b.String()
	})
	for _, n := range nodes {
		seen := map[string]bool{}
		for _, c := range n.Channels() {
			if c.State != "open" {
				continue
			}
			if seen[c.ID] {
				t.Errorf("%s has two open channels to %s", n.ID(), c.ID)
			}
			seen[c.ID] = true
		}
	}
}

// TestMessagesAndBroadcast sends a message to one peer and broadcasts to all
// trusted peers.
func TestMessagesAndBroadcast(t *testing.T) {
	recs := make([]*recorder, 3)
	nodes := make([]*node.Node, 3)
	for i := range nodes {
		r := &recorder{}
		recs[i] = r
		cfg := node.Config{ID: fmt.Sprintf("n%d", i)}
		cfg.Events.MessageReceived = func(ch peernode.Channel, text string) { r.message(ch.Peer().ID(), text) }
		if i > 0 {
			cfg.Seeds = []string{nodes[0].Addr().String()}
		}
		nodes[i] = startNode(t, cfg)
	}
	eventually(t, 10*time.Second, func() bool {
		return trustedCount(nodes[0]) == 2 && trustedCount(nodes[1]) == 2 && trustedCount(nodes[2]) == 2
	}, func() string { return "mesh of 3 did not form" })

	ctx := context.Background()
	if err := nodes[1].SendMessage(ctx, "n2", "hello n2"); err != nil {
		t.Fatal(err)
	}
	sent, err := nodes[0].Broadcast(ctx, wire.Message{Text: "to all"})
	if err != nil || sent != 2 {
		t.Fatalf("Broadcast = %d, %v; want 2, nil", sent, err)
	}
	eventually(t, 5*time.Second, func() bool {
		return len(recs[1].snapshot()) == 1 && len(recs[2].snapshot()) == 2
	}, func() string { return fmt.Sprint(recs[1].snapshot(), recs[2].snapshot()) })
	if got := recs[1].snapshot()[0]; got != "n0:to all" {
		t.Errorf("n1 got %q", got)
	}
	got2 := strings.Join(recs[2].snapshot(), ",")
	if !strings.Contains(got2, "n1:hello n2") || !strings.Contains(got2, "n0:to all") {
		t.Errorf("n2 got %q", got2)
	}
	if err := nodes[1].SendMessage(ctx, "nobody", "x"); err == nil {
		t.Error("SendMessage to an unknown peer succeeded")
	}
}

// TestSimultaneousDial makes two nodes dial each other at once, many times:
// each pair must end with exactly one channel, the same one on both sides.
func TestSimultaneousDial(t *testing.T) {
	for round := range 10 {
		la, _ := net.Listen("tcp", "127.0.0.1:0")
		lb, _ := net.Listen("tcp", "127.0.0.1:0")
		addrA, addrB := la.Addr().String(), lb.Addr().String()
		la.Close()
		lb.Close()
		a := startNode(t, node.Config{ID: fmt.Sprintf("a%d", round), ListenAddr: addrA, Seeds: []string{addrB}})
		b := startNode(t, node.Config{ID: fmt.Sprintf("b%d", round), ListenAddr: addrB, Seeds: []string{addrA}})
		eventually(t, 10*time.Second, func() bool {
			return trustedCount(a) == 1 && trustedCount(b) == 1 && len(a.Channels()) == 1 && len(b.Channels()) == 1
		}, func() string { return fmt.Sprintf("a: %+v\nb: %+v", a.Channels(), b.Channels()) })
		ca, cb := a.Channels()[0], b.Channels()[0]
		if ca.Direction == cb.Direction {
			t.Fatalf("round %d: both sides see direction %s: not the same connection", round, ca.Direction)
		}
	}
}

// TestNeverConnectsToItself seeds a node with its own address under another
// name: the Hello reveals it and the node stops dialing.
func TestNeverConnectsToItself(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n := startNode(t, node.Config{
		ID:         "lonely",
		ListenAddr: fmt.Sprintf("127.0.0.1:%d", port),
		Seeds:      []string{fmt.Sprintf("localhost:%d", port)},
	})
	eventually(t, 5*time.Second, func() bool {
		return counter(t, n, "peermesh_node_connections_rejected_total", "reason", "self_connection") >= 1
	}, func() string { return "no self-connection rejection counted" })
	if got := len(n.ActivePeerChannels()); got != 0 {
		t.Errorf("node has %d channels to itself", got)
	}
}

// TestInboundCap: with MaxInbound 2, a third and fourth peer are refused.
func TestInboundCap(t *testing.T) {
	hub := startNode(t, node.Config{ID: "hub", MaxInbound: 2})
	var peers []*node.Node
	for i := range 4 {
		peers = append(peers, startNode(t, node.Config{ID: fmt.Sprintf("p%d", i), Seeds: []string{hub.Addr().String()}}))
	}
	eventually(t, 10*time.Second, func() bool {
		return len(hub.ActivePeerChannels()) == 2 &&
			counter(t, hub, "peermesh_node_connections_rejected_total", "reason", "capacity_inbound") >= 2
	}, func() string { return fmt.Sprintf("hub channels: %+v", hub.Channels()) })
	if l := hub.Limits(); l.Inbound > 2 {
		t.Errorf("inbound count %d exceeds the cap of 2", l.Inbound)
	}
	_ = peers
}

// TestBlockedPeerRefusedAtAcceptAndClosedOnPolicyChange covers both block
// stages: a CIDR block refuses at accept, an identifier block added at run
// time closes the live channel and the peer stays out.
func TestBlockedPeerRefusedAtAcceptAndClosedOnPolicyChange(t *testing.T) {
	blocked := trust.DefaultPolicy()
	blocked.Generation = "block-loopback"
	blocked.Blocked = []trust.Rule{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Source: "test blocked.cidrs[0]"}}
	guarded := startNode(t, node.Config{ID: "guarded", Policy: blocked})
	startNode(t, node.Config{ID: "intruder", Seeds: []string{guarded.Addr().String()}})
	eventually(t, 5*time.Second, func() bool {
		return counter(t, guarded, "peermesh_node_connections_rejected_total", "reason", "blocked_cidr") >= 1
	}, func() string { return "no blocked_cidr rejection" })
	if n := len(guarded.ActivePeerChannels()); n != 0 {
		t.Fatalf("blocked peer has %d channels", n)
	}

	// Live channel closed by a policy change.
	host := startNode(t, node.Config{ID: "host"})
	startNode(t, node.Config{ID: "soon-blocked", Seeds: []string{host.Addr().String()}})
	startNode(t, node.Config{ID: "friend", Seeds: []string{host.Addr().String()}})
	eventually(t, 10*time.Second, func() bool { return trustedCount(host) == 2 }, func() string { return "host did not trust both" })
	p := trust.DefaultPolicy()
	p.Generation = "block-id"
	p.Blocked = []trust.Rule{{Identifier: "soon-blocked", Source: "test blocked.identifiers[0]"}}
	start := time.Now()
	if err := host.SetPolicy(p); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, func() bool {
		_, ok := host.Channel("soon-blocked")
		return !ok
	}, func() string { return "blocked channel still open 1s after the policy change" })
	t.Logf("channel closed %s after the policy change", time.Since(start))
	if _, ok := host.Channel("friend"); !ok {
		t.Error("the channel the new policy still allows was dropped")
	}
	if got := counter(t, host, "peermesh_node_policy_denials_total", "reason", "blocked_identifier"); got < 1 {
		t.Errorf("policy denials for blocked_identifier = %v", got)
	}
	// The reason shows once the closing channel has left the table.
	var why string
	eventually(t, 5*time.Second, func() bool {
		for _, kp := range host.KnownPeers() {
			if kp.ID == "soon-blocked" {
				why = kp.NoChannelReason
			}
		}
		return strings.Contains(why, "blocked_identifier") && strings.Contains(why, "test blocked.identifiers[0]")
	}, func() string { return fmt.Sprintf("known peer reason %q does not name the rule", why) })
	d := host.Explain("soon-blocked", netip.MustParseAddrPort("127.0.0.1:1"))
	if d.Verdict != peernode.Deny || d.Reason != peernode.ReasonBlockedIdentifier {
		t.Errorf("Explain = %+v", d)
	}
}

// TestAuditModeClosesNothing: the same block in Audit mode keeps the channel
// and counts an audit denial.
func TestAuditModeClosesNothing(t *testing.T) {
	host := startNode(t, node.Config{ID: "host"})
	startNode(t, node.Config{ID: "peer", Seeds: []string{host.Addr().String()}})
	eventually(t, 5*time.Second, func() bool { return trustedCount(host) == 1 }, func() string { return "no channel" })
	p := trust.DefaultPolicy()
	p.Mode = trust.Audit
	p.Blocked = []trust.Rule{{Identifier: "peer", Source: "audit rule"}}
	if err := host.SetPolicy(p); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, func() bool {
		return counterWithLabels(t, host, "peermesh_node_policy_denials_total", map[string]string{"reason": "blocked_identifier", "mode": "audit"}) >= 1
	}, func() string { return "no audit denial counted" })
	if _, ok := host.Channel("peer"); !ok {
		t.Error("Audit mode closed a channel")
	}
}

// TestUntrustedPacketsGated: with the trust protocol off, a peer stays
// untrusted: its Message passes (default communication) but its Data does not
// (enhanced exchange), and the drop is counted.
func TestUntrustedPacketsGated(t *testing.T) {
	p := trust.DefaultPolicy()
	p.RunTrustProtocol = false
	var data, msgs atomic.Int32
	cfg := node.Config{ID: "strict", Policy: p}
	cfg.Events.DataReceived = func(peernode.Channel, wire.Data) { data.Add(1) }
	cfg.Events.MessageReceived = func(peernode.Channel, string) { msgs.Add(1) }
	strict := startNode(t, cfg)
	sender := startNode(t, node.Config{ID: "sender", Policy: p, Seeds: []string{strict.Addr().String()}})
	eventually(t, 5*time.Second, func() bool {
		_, ok := sender.Channel("strict")
		return ok
	}, func() string { return "no channel" })
	ctx := context.Background()
	if err := sender.Send(ctx, "strict", wire.Data{Format: wire.DataFormatMisc, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := sender.SendMessage(ctx, "strict", "hi"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		return msgs.Load() == 1 && counter(t, strict, "peermesh_node_packets_dropped_total", "reason", "policy") >= 1
	}, func() string { return "message not received or data not dropped" })
	if data.Load() != 0 {
		t.Error("untrusted Data reached the handler")
	}
}

// TestHandlerOverrideAndCustomType replaces the Message default and adds an
// application packet type.
func TestHandlerOverrideAndCustomType(t *testing.T) {
	got := make(chan string, 2)
	recv := startNode(t, node.Config{ID: "recv"})
	if err := recv.Registry().HandleFunc(wire.TypeMessage, func(_ context.Context, _ peernode.Channel, p wire.Packet) error {
		got <- "override:" + p.(wire.Message).Text
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const custom wire.Type = 0x90
	if err := recv.Registry().HandleFunc(custom, func(_ context.Context, _ peernode.Channel, p wire.Packet) error {
		got <- "custom:" + string(p.(wire.Raw).Payload)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p := trust.DefaultPolicy()
	send := startNode(t, node.Config{ID: "send", Policy: p, Seeds: []string{recv.Addr().String()}})
	eventually(t, 5*time.Second, func() bool { return trustedCount(recv) == 1 && trustedCount(send) == 1 }, func() string { return "no trusted channel" })
	ctx := context.Background()
	if err := send.SendMessage(ctx, "recv", "m"); err != nil {
		t.Fatal(err)
	}
	if err := send.Send(ctx, "recv", wire.Raw{T: custom, Payload: []byte("app")}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"override:m": true, "custom:app": true}
	for range 2 {
		select {
		case s := <-got:
			if !want[s] {
				t.Errorf("unexpected %q", s)
			}
			delete(want, s)
		case <-time.After(5 * time.Second):
			t.Fatalf("missing %v", want)
		}
	}
	// A type with no handler is counted and dropped, never fatal.
	if err := send.Send(ctx, "recv", wire.Raw{T: 0x91, Payload: []byte("?")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		return counter(t, recv, "peermesh_node_packets_dropped_total", "reason", "no_handler") >= 1
	}, func() string { return "no no_handler drop" })
	if _, ok := recv.Channel("send"); !ok {
		t.Error("an unhandled type closed the channel")
	}
}

// TestQueuePlacement: inbound peers wait in InboundConnectingPeers until the
// application decides.
func TestQueuePlacement(t *testing.T) {
	host := startNode(t, node.Config{ID: "host", Placement: node.PlacementQueue})
	startNode(t, node.Config{ID: "welcome", Seeds: []string{host.Addr().String()}})
	startNode(t, node.Config{ID: "unwelcome", Seeds: []string{host.Addr().String()}})
	decided := map[string]bool{}
	for len(decided) < 2 {
		select {
		case p := <-host.InboundConnectingPeers():
			if decided[p.ID] {
				p.Reject()
				continue
			}
			decided[p.ID] = true
			if p.ID == "welcome" {
				p.Accept()
			} else {
				p.Reject()
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("queued peers: got %v", decided)
		}
	}
	eventually(t, 5*time.Second, func() bool {
		_, ok := host.Channel("welcome")
		return ok
	}, func() string { return "accepted peer has no channel" })
	if _, ok := host.Channel("unwelcome"); ok {
		t.Error("rejected peer has a channel")
	}
}

// TestMalformedFrameClosesOnlyItsChannel writes garbage on one connection;
// the node's other channel keeps working.
func TestMalformedFrameClosesOnlyItsChannel(t *testing.T) {
	var msgs atomic.Int32
	cfg := node.Config{ID: "victim"}
	cfg.Events.MessageReceived = func(peernode.Channel, string) { msgs.Add(1) }
	victim := startNode(t, cfg)
	good := startNode(t, node.Config{ID: "good", Seeds: []string{victim.Addr().String()}})
	eventually(t, 5*time.Second, func() bool { return trustedCount(victim) == 1 }, func() string { return "no channel" })

	conn, err := net.Dial("tcp", victim.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hello := wire.Hello{ProtocolVersion: 1, NodeID: "evil"}
	frame := wire.AppendFrame(nil, hello)
	frame = append(frame, 0x07, 0x05, 0, 0, 0, 0, 0, 1, 'x') // version 7: unsupported
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		return counterWithLabels(t, victim, "peermesh_node_channels_closed_total", map[string]string{"reason": "protocol_error"}) >= 1
	}, func() string { return "malformed channel not closed with protocol_error" })
	if err := good.SendMessage(context.Background(), "victim", "still here"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return msgs.Load() == 1 }, func() string { return "good channel broken" })
}
