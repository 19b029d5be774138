package trust_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/trust"
	"github.com/peermesh/peermesh/peernode/wire"
)

// These tests run real nodes over loopback with the sharedKey protocol, as
// the daemon configures them (trust.Resolver as node.Config.TrustProtocols).

// testNode is a running node with its own metrics registry and its trust
// events.
type testNode struct {
	*node.Node
	reg     *prometheus.Registry
	trusted chan string               // IDs of peers whose channel became trusted
	removed chan peernode.CloseReason // reasons of closed channels
	data    chan string               // bodies of Data packets received
}

func sharedKeyPolicy() *trust.Policy {
	return &trust.Policy{
		PolicySource:              "test",
		AllowDefaultCommunication: true,
		RunTrustProtocol:          true,
		TrustProtocol:             trust.ProtocolSharedKey,
	}
}

// startKeyedNode runs a node on 127.0.0.1:0 whose sharedKey is key; Cleanup
// stops it and waits for Run to return.
func startKeyedNode(t *testing.T, id string, key []byte, seeds ...string) *testNode {
	t.Helper()
	ch := channel.DefaultConfig(wire.Hello{})
	ch.HandshakeTimeout = 5 * time.Second
	ch.KeepaliveInterval, ch.IdleTimeout = 0, 0
	ch.DrainTimeout = time.Second
	tn := &testNode{
		reg:     prometheus.NewRegistry(),
		trusted: make(chan string, 64),
		removed: make(chan peernode.CloseReason, 64),
		data:    make(chan string, 64),
	}
	cfg := node.Config{
		ID: id, ListenAddr: "127.0.0.1:0", Seeds: seeds, Channel: ch,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Policy: sharedKeyPolicy(), TrustProtocols: trust.Resolver(key),
		Registerer: tn.reg,
	}
	// Callbacks run on channel goroutines: never block them.
	cfg.Events.PeerTrusted = func(c peernode.Channel) {
		select {
		case tn.trusted <- c.Peer().ID():
		default:
		}
	}
	cfg.Events.PeerRemoved = func(_ peernode.Channel, r peernode.CloseReason) {
		select {
		case tn.removed <- r:
		default:
		}
	}
	cfg.Events.DataReceived = func(_ peernode.Channel, d wire.Data) {
		select {
		case tn.data <- string(d.Body):
		default:
		}
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatalf("node.New(%s): %v", id, err)
	}
	tn.Node = n
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node %s: Run: %v", id, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("node %s did not stop within 10s", id)
		}
	})
	return tn
}

// handshakes returns peermesh_node_trust_handshakes_total{protocol="sharedKey",result}.
func (tn *testNode) handshakes(t *testing.T, result string) float64 {
	t.Helper()
	families, err := tn.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "peermesh_node_trust_handshakes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if label(m, "protocol") == "sharedKey" && label(m, "result") == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestSharedKeyNodesTrustEachOther(t *testing.T) {
	alpha := startKeyedNode(t, "alpha", meshKey)
	beta := startKeyedNode(t, "beta", meshKey, alpha.AdvertiseAddr())

	deadline := time.After(10 * time.Second)
	for _, w := range []struct {
		n    *testNode
		peer string
	}{{alpha, "beta"}, {beta, "alpha"}} {
		select {
		case id := <-w.n.trusted:
			if id != w.peer {
				t.Errorf("%s trusted %q, want %q", w.n.ID(), id, w.peer)
			}
		case r := <-w.n.removed:
			t.Fatalf("%s: channel closed: %s", w.n.ID(), r)
		case <-deadline:
			t.Fatalf("%s did not trust %s within 10s", w.n.ID(), w.peer)
		}
	}
	for _, n := range []*testNode{alpha, beta} {
		// The node counts the success before raising PeerTrusted.
		if got := n.handshakes(t, "success"); got < 1 {
			t.Errorf("%s: sharedKey successes = %v, want >= 1", n.ID(), got)
		}
		if got := n.handshakes(t, "failure") + n.handshakes(t, "timeout"); got != 0 {
			t.Errorf("%s: sharedKey failures and timeouts = %v, want 0", n.ID(), got)
		}
	}
	// Trust is what the gate checks: the policy denies Data to untrusted
	// peers, so alpha receiving it shows that beta is trusted there.
	if err := beta.Send(t.Context(), "alpha", wire.Data{Format: wire.DataFormatMisc, Body: []byte("from beta")}); err != nil {
		t.Fatalf("beta -> alpha data: %v", err)
	}
	select {
	case got := <-alpha.data:
		if got != "from beta" {
			t.Errorf("alpha received %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alpha did not receive beta's data within 10s")
	}
}

// TestSharedKeyWrongKeyRefused: a node with another key keeps dialing but is
// refused every time: its channels close with trust_failed, counted as
// sharedKey failures, and neither side ever trusts the other.
func TestSharedKeyWrongKeyRefused(t *testing.T) {
	alpha := startKeyedNode(t, "alpha", meshKey)
	mallory := startKeyedNode(t, "mallory", otherKey, alpha.AdvertiseAddr())

	// Wait for alpha to refuse mallory. Mallory redials after each
	// failure; which side closes first in one attempt is a race, so
	// several attempts may pass before alpha is the one to close.
	deadline := time.After(10 * time.Second)
	for refused := false; !refused; {
		select {
		case r := <-alpha.removed:
			if r.Label != peernode.CloseTrustFailed {
				continue // mallory closed first, alpha saw a Disconnect
			}
			if !strings.Contains(r.Text, "wrong key") {
				t.Errorf("alpha closed with %q, want it to say wrong key", r.Text)
			}
			refused = true
		case id := <-alpha.trusted:
			t.Fatalf("alpha trusted %s", id)
		case id := <-mallory.trusted:
			t.Fatalf("mallory trusted %s", id)
		case <-deadline:
			t.Fatal("alpha did not close a channel with trust_failed within 10s")
		}
	}
	// alpha counts the failure before raising PeerRemoved.
	if got := alpha.handshakes(t, "failure"); got < 1 {
		t.Errorf(`alpha: peermesh_node_trust_handshakes_total{protocol="sharedKey",result="failure"} = %v, want >= 1`, got)
	}
	for _, n := range []*testNode{alpha, mallory} {
		if got := n.handshakes(t, "success"); got != 0 {
			t.Errorf("%s: sharedKey successes = %v, want 0", n.ID(), got)
		}
		if got := len(n.TrustedPeerChannels()); got != 0 {
			t.Errorf("%s has %d trusted channels", n.ID(), got)
		}
		select {
		case id := <-n.trusted:
			t.Errorf("%s trusted %s", n.ID(), id)
		default:
		}
	}
}

// TestSharedKeyNodeNeedsKey: a node refuses a sharedKey policy it has no key
// for, at New and at SetPolicy, and the error names the field to set.
func TestSharedKeyNodeNeedsKey(t *testing.T) {
	for name, resolve := range map[string]func(string) (peernode.TrustProtocol, error){
		"default resolver":     nil,
		"resolver without key": trust.Resolver(nil),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := node.New(node.Config{ID: "n", Policy: sharedKeyPolicy(), TrustProtocols: resolve})
			if !errors.Is(err, trust.ErrUnknownProtocol) || !strings.Contains(err.Error(), "incoming.trustProtocol.sharedKeyFile") {
				t.Errorf("node.New error = %v, want ErrUnknownProtocol naming sharedKeyFile", err)
			}
		})
	}
	n, err := node.New(node.Config{ID: "n", TrustProtocols: trust.Resolver(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetPolicy(sharedKeyPolicy()); !errors.Is(err, trust.ErrUnknownProtocol) {
		t.Errorf("SetPolicy(sharedKey) without key = %v, want ErrUnknownProtocol", err)
	}
	if got := n.Policy().TrustProtocol; got != "ping" {
		t.Errorf("policy in force uses %q, want the previous one (ping)", got)
	}
}
