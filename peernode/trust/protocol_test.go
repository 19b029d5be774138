package trust_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/peernodetest"
	"github.com/peermesh/peermesh/peernode/trust"
	"github.com/peermesh/peermesh/peernode/wire"
)

func TestProtocolByName(t *testing.T) {
	for _, name := range []string{"none", "None", "NONE", "ping", "Ping", "PING"} {
		p, err := trust.ProtocolByName(name)
		if err != nil {
			t.Errorf("ProtocolByName(%q): %v", name, err)
			continue
		}
		if want := strings.ToLower(name); p.Name() != want {
			t.Errorf("ProtocolByName(%q).Name() = %q, want %q", name, p.Name(), want)
		}
	}
	for _, name := range []string{"", "SharedKey", "sharedKey", "pong"} {
		if _, err := trust.ProtocolByName(name); !errors.Is(err, trust.ErrUnknownProtocol) {
			t.Errorf("ProtocolByName(%q) error = %v, want ErrUnknownProtocol", name, err)
		}
	}
	// sharedKey needs a key: the error says where it comes from.
	if _, err := trust.ProtocolByName("SharedKey"); err == nil || !strings.Contains(err.Error(), "incoming.trustProtocol.sharedKeyFile") {
		t.Errorf("ProtocolByName(SharedKey) error = %v, want it to name sharedKeyFile", err)
	}
	if got := fmt.Sprint(trust.ProtocolNames()); got != "[none ping]" {
		t.Errorf("ProtocolNames() = %s", got)
	}
}

// runBoth runs p on both ends of a fresh pair and returns their errors.
func runBoth(t *testing.T, p peernode.TrustProtocol) (a, b *peernodetest.TrustSession, initErr, respErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	a, b = peernodetest.NewTrustSessionPair()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, b) }()
	initErr = p.Run(ctx, a)
	respErr = <-done
	return a, b, initErr, respErr
}

func TestNoneTrustsAtOnce(t *testing.T) {
	a, b, initErr, respErr := runBoth(t, trust.None{})
	if initErr != nil || respErr != nil {
		t.Fatalf("errors: %v, %v", initErr, respErr)
	}
	if len(a.Sent())+len(b.Sent()) != 0 {
		t.Error("none sent packets")
	}
}

func TestPingBothSides(t *testing.T) {
	a, b, initErr, respErr := runBoth(t, trust.Ping{})
	if initErr != nil || respErr != nil {
		t.Fatalf("errors: %v, %v", initErr, respErr)
	}
	for _, s := range []*peernodetest.TrustSession{a, b} {
		sent := s.Sent()
		if len(sent) != trust.PingSteps {
			t.Fatalf("%s sent %d packets, want %d", s.LocalID(), len(sent), trust.PingSteps)
		}
		for i, p := range sent {
			want := wire.Trust{Protocol: "ping", Step: uint8(i + 1), Body: []byte("Ping from " + s.LocalID())}
			if p.Protocol != want.Protocol || p.Step != want.Step || string(p.Body) != string(want.Body) {
				t.Errorf("%s packet %d = %+v, want %+v", s.LocalID(), i, p, want)
			}
			if err := wire.Validate(p); err != nil {
				t.Errorf("packet %d invalid on the wire: %v", i, err)
			}
		}
	}
}

// TestPingFailures plays the peer by hand: script is what the peer sends.
func TestPingFailures(t *testing.T) {
	good := func(step uint8) wire.Trust {
		return wire.Trust{Protocol: "ping", Step: step, Body: []byte("Ping from " + peernodetest.ResponderID)}
	}
	tests := []struct {
		name    string
		script  []wire.Trust
		close   bool          // close the session after the script
		timeout time.Duration // handshake timeout (default: long)
		want    string        // substring of the error
		wantIs  error         // also wrapped, besides ErrTrustFailed
	}{
		{"wrong step", []wire.Trust{good(1), good(3)}, false, 0, "got step 3, want 2", nil},
		{"repeated step", []wire.Trust{good(1), good(1)}, false, 0, "got step 1, want 2", nil},
		{"step zero", []wire.Trust{good(0)}, false, 0, "got step 0, want 1", nil},
		{"other protocol", []wire.Trust{{Protocol: "sharedKey", Step: 1}}, false, 0, `protocol "sharedKey"`, nil},
		{"wrong body", []wire.Trust{good(1), {Protocol: "ping", Step: 2, Body: []byte("Ping from mallory")}}, false, 0, `step 2: body "Ping from mallory"`, nil},
		{"empty body", []wire.Trust{{Protocol: "ping", Step: 1}}, false, 0, "step 1: body", nil},
		{"timeout", []wire.Trust{good(1), good(2)}, false, 20 * time.Millisecond, "waiting for step 3", context.DeadlineExceeded},
		{"silent peer", nil, false, 20 * time.Millisecond, "waiting for step 1", context.DeadlineExceeded},
		{"connection lost", []wire.Trust{good(1)}, true, 0, "waiting for step 2", peernode.ErrChannelClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			a, b := peernodetest.NewTrustSessionPair()
			for _, p := range tt.script {
				if err := b.Send(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			if tt.close {
				b.Close()
			}
			err := trust.Ping{}.Run(ctx, a)
			if !errors.Is(err, peernode.ErrTrustFailed) {
				t.Fatalf("Run error = %v, want ErrTrustFailed", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Run error = %v, want it to wrap %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestPingSendFails covers a session closed before the handshake: the
// sender's error is reported and no goroutine is left behind (goleak).
func TestPingSendFails(t *testing.T) {
	a, _ := peernodetest.NewTrustSessionPair()
	a.Close()
	err := trust.Ping{}.Run(t.Context(), a)
	if !errors.Is(err, peernode.ErrTrustFailed) || !errors.Is(err, peernode.ErrChannelClosed) {
		t.Fatalf("Run error = %v, want ErrTrustFailed wrapping ErrChannelClosed", err)
	}
}

// TestPingPeerNeverReads checks that a peer that neither reads nor sends
// cannot hold the handshake past its timeout, even once the send queue is
// full.
func TestPingPeerNeverReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	a, _ := peernodetest.NewTrustSessionPair()
	// Fill the queue towards the peer, so that a's pings block in Send.
	for i := range peernodetest.TrustSessionBuffer {
		if err := a.Send(ctx, wire.Trust{Protocol: "filler", Step: uint8(i)}); err != nil {
			t.Fatal(err)
		}
	}
	err := trust.Ping{}.Run(ctx, a)
	if !errors.Is(err, peernode.ErrTrustFailed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run error = %v, want ErrTrustFailed wrapping DeadlineExceeded", err)
	}
}
