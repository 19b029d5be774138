package trust_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/peernodetest"
	"github.com/peermesh/peermesh/peernode/trust"
	"github.com/peermesh/peermesh/peernode/wire"
)

var (
	meshKey  = []byte("an example mesh key, 32 bytes!!!")
	otherKey = []byte("another mesh key, also 32 bytes!")
)

func mustSharedKey(t *testing.T, key []byte) *trust.SharedKey {
	t.Helper()
	k, err := trust.NewSharedKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// runPair runs initiator on a and responder on b concurrently.
func runPair(ctx context.Context, initiator, responder peernode.TrustProtocol, a, b peernode.TrustSession) (initErr, respErr error) {
	done := make(chan error, 1)
	go func() { done <- responder.Run(ctx, b) }()
	initErr = initiator.Run(ctx, a)
	return initErr, <-done
}

// playPeer runs script as the peer on its own goroutine; the returned
// function waits for it and reports its error.
func playPeer(t *testing.T, script func() error) (wait func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- script() }()
	return func() {
		t.Helper()
		if err := <-done; err != nil {
			t.Errorf("scripted peer: %v", err)
		}
	}
}

func receiveStep(ctx context.Context, s peernode.TrustSession, step uint8) ([]byte, error) {
	p, err := s.Receive(ctx)
	if err != nil {
		return nil, err
	}
	if p.Protocol != trust.ProtocolSharedKey || p.Step != step {
		return nil, fmt.Errorf("got %s step %d, want sharedKey step %d", p.Protocol, p.Step, step)
	}
	return p.Body, nil
}

func sendStep(ctx context.Context, s peernode.TrustSession, step uint8, body []byte) error {
	return s.Send(ctx, wire.Trust{Protocol: trust.ProtocolSharedKey, Step: step, Body: body})
}

func wantFailure(t *testing.T, side string, err error, want string) {
	t.Helper()
	if !errors.Is(err, peernode.ErrTrustFailed) {
		t.Errorf("%s: error = %v, want ErrTrustFailed", side, err)
		return
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %q does not contain %q", side, err, want)
	}
	if !strings.Contains(want, "timeout") && (errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout")) {
		t.Errorf("%s: error %q would be counted as a timeout", side, err)
	}
}

func TestNewSharedKey(t *testing.T) {
	for _, n := range []int{0, 1, trust.MinSharedKeySize - 1} {
		if _, err := trust.NewSharedKey(make([]byte, n)); !errors.Is(err, trust.ErrSharedKeyTooShort) ||
			!strings.Contains(err.Error(), fmt.Sprintf("%d bytes, want at least 16", n)) {
			t.Errorf("NewSharedKey(%d bytes) error = %v, want ErrSharedKeyTooShort", n, err)
		}
	}
	k := mustSharedKey(t, bytes.Repeat([]byte{'k'}, trust.MinSharedKeySize))
	if k.Name() != "sharedKey" {
		t.Errorf("Name() = %q", k.Name())
	}
	secret := mustSharedKey(t, []byte("do-not-print-this-key"))
	for _, format := range []string{"%v", "%+v", "%s", "%#v"} {
		if got := fmt.Sprintf(format, secret); strings.Contains(got, "do-not-print") {
			t.Errorf("Sprintf(%q) = %q leaks the key", format, got)
		}
	}
}

// TestSharedKeyCopiesKey: changing the caller's slice afterwards changes
// nothing.
func TestSharedKeyCopiesKey(t *testing.T) {
	key := bytes.Clone(meshKey)
	k := mustSharedKey(t, key)
	clear(key)
	a, b := peernodetest.NewTrustSessionPair()
	if initErr, respErr := runPair(t.Context(), k, mustSharedKey(t, meshKey), a, b); initErr != nil || respErr != nil {
		t.Fatalf("errors: %v, %v", initErr, respErr)
	}
}

func TestSharedKeyRightKeyTrustsBothSides(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// One instance per side, as two nodes with the same key file have.
	ka, kb := mustSharedKey(t, meshKey), mustSharedKey(t, meshKey)
	var nonces [][]byte
	for range 2 {
		a, b := peernodetest.NewTrustSessionPair()
		if initErr, respErr := runPair(ctx, ka, kb, a, b); initErr != nil || respErr != nil {
			t.Fatalf("errors: %v, %v", initErr, respErr)
		}
		for _, s := range []*peernodetest.TrustSession{a, b} {
			sent := s.Sent()
			if len(sent) != 2 {
				t.Fatalf("%s sent %d packets, want 2", s.LocalID(), len(sent))
			}
			for i, p := range sent {
				if p.Protocol != "sharedKey" || p.Step != uint8(i+1) || len(p.Body) != 32 {
					t.Errorf("%s packet %d = %s step %d with %d bytes, want sharedKey step %d with 32 bytes",
						s.LocalID(), i, p.Protocol, p.Step, len(p.Body), i+1)
				}
				if err := wire.Validate(p); err != nil {
					t.Errorf("packet %d invalid on the wire: %v", i, err)
				}
			}
			nonces = append(nonces, sent[0].Body)
		}
	}
	// Every side of every session drew its own nonce.
	for i := range nonces {
		for j := range i {
			if bytes.Equal(nonces[i], nonces[j]) {
				t.Errorf("nonces %d and %d are equal", i, j)
			}
		}
	}
}

// TestSharedKeyDocumentedLayout plays the peer with an independent
// implementation of the documented layout, in both roles: the real protocol
// must accept its proof and send the proof it predicts.
func TestSharedKeyDocumentedLayout(t *testing.T) {
	proof := func(role byte, prover, verifier string, nI, nR []byte) []byte {
		m := hmac.New(sha256.New, meshKey)
		m.Write([]byte("peermesh/trust/sharedKey/v1"))
		m.Write([]byte{role})
		for _, id := range []string{prover, verifier} {
			m.Write(binary.AppendUvarint(nil, uint64(len(id))))
			m.Write([]byte(id))
		}
		m.Write(nI)
		m.Write(nR)
		return m.Sum(nil)
	}
	for _, realIsInitiator := range []bool{true, false} {
		t.Run(fmt.Sprint("real side initiator=", realIsInitiator), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			a, b := peernodetest.NewTrustSessionPairWithIDs("10.0.0.1-pod", "node-with-a-longer-identifier")
			real, peer := a, b
			if !realIsInitiator {
				real, peer = b, a
			}
			wait := playPeer(t, func() error {
				own := bytes.Repeat([]byte{0x5a}, 32)
				if err := sendStep(ctx, peer, 1, own); err != nil {
					return err
				}
				theirs, err := receiveStep(ctx, peer, 1)
				if err != nil {
					return err
				}
				nI, nR := theirs, own
				peerRole, realRole := byte('R'), byte('I')
				if peer.Initiator() {
					nI, nR = own, theirs
					peerRole, realRole = 'I', 'R'
				}
				if err := sendStep(ctx, peer, 2, proof(peerRole, peer.LocalID(), real.LocalID(), nI, nR)); err != nil {
					return err
				}
				got, err := receiveStep(ctx, peer, 2)
				if err != nil {
					return err
				}
				if want := proof(realRole, real.LocalID(), peer.LocalID(), nI, nR); !bytes.Equal(got, want) {
					return fmt.Errorf("real side's proof %x, want %x", got, want)
				}
				return nil
			})
			if err := mustSharedKey(t, meshKey).Run(ctx, real); err != nil {
				t.Errorf("Run: %v", err)
			}
			wait()
		})
	}
}

func TestSharedKeyWrongKeyFailsBothSides(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	a, b := peernodetest.NewTrustSessionPair()
	initErr, respErr := runPair(ctx, mustSharedKey(t, meshKey), mustSharedKey(t, otherKey), a, b)
	wantFailure(t, "initiator", initErr, "wrong key")
	wantFailure(t, "responder", respErr, "wrong key")
}

// TestSharedKeyReplay: a peer without the key replays both packets it
// captured from an earlier, successful session, in either role; the fresh
// nonce of the side it talks to makes the old proof worthless.
func TestSharedKeyReplay(t *testing.T) {
	for _, victimIsInitiator := range []bool{true, false} {
		t.Run(fmt.Sprint("victim initiator=", victimIsInitiator), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			k := mustSharedKey(t, meshKey)
			a, b := peernodetest.NewTrustSessionPair()
			if initErr, respErr := runPair(ctx, k, k, a, b); initErr != nil || respErr != nil {
				t.Fatalf("first session: %v, %v", initErr, respErr)
			}
			// The attacker impersonates the other side of the first
			// session, with the same identifiers and role.
			captured := a.Sent()
			a2, b2 := peernodetest.NewTrustSessionPair()
			victim, attacker := b2, a2
			if victimIsInitiator {
				captured = b.Sent()
				victim, attacker = a2, b2
			}
			wait := playPeer(t, func() error {
				for _, p := range captured {
					if err := attacker.Send(ctx, p); err != nil {
						return err
					}
				}
				return nil
			})
			err := k.Run(ctx, victim)
			wait()
			wantFailure(t, "victim", err, "wrong key")
		})
	}
}

// TestSharedKeyReflection: a peer without the key sends our own nonce, or
// our own proof, back to us.
func TestSharedKeyReflection(t *testing.T) {
	tests := []struct {
		name string
		// reflect plays the attacker on s.
		reflect func(ctx context.Context, s peernode.TrustSession) error
		want    string
	}{
		{"nonce", func(ctx context.Context, s peernode.TrustSession) error {
			n, err := receiveStep(ctx, s, 1)
			if err != nil {
				return err
			}
			return sendStep(ctx, s, 1, n)
		}, "reflected: the peer sent our own nonce back"},
		{"proof", func(ctx context.Context, s peernode.TrustSession) error {
			if err := sendStep(ctx, s, 1, bytes.Repeat([]byte{1}, 32)); err != nil {
				return err
			}
			if _, err := receiveStep(ctx, s, 1); err != nil {
				return err
			}
			p, err := receiveStep(ctx, s, 2)
			if err != nil {
				return err
			}
			return sendStep(ctx, s, 2, p)
		}, "reflected: the peer sent our own proof back"},
	}
	for _, tt := range tests {
		for _, victimIsInitiator := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/victim initiator=%v", tt.name, victimIsInitiator), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				a, b := peernodetest.NewTrustSessionPair()
				victim, attacker := b, a
				if victimIsInitiator {
					victim, attacker = a, b
				}
				wait := playPeer(t, func() error { return tt.reflect(ctx, attacker) })
				err := mustSharedKey(t, meshKey).Run(ctx, victim)
				wait()
				wantFailure(t, "victim", err, tt.want)
			})
		}
	}
}

// TestSharedKeyRelayAcrossSessions: an attacker without the key runs two
// sessions with the victim at once, one in each direction, and chooses the
// nonces so that both sessions cover the same pair of nonces; it then
// answers the first session with the proof the victim computed in the
// second. The proof covers the victim's own identifier as prover, so it
// never verifies as the attacker's.
func TestSharedKeyRelayAcrossSessions(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	k := mustSharedKey(t, meshKey)
	// Session 1: the victim dialed the attacker. Session 2: the attacker
	// dialed the victim. The attacker is "mallory" in both.
	victim1, mallory1 := peernodetest.NewTrustSessionPairWithIDs("victim", "mallory")
	mallory2, victim2 := peernodetest.NewTrustSessionPairWithIDs("mallory", "victim")

	errs2 := make(chan error, 1)
	go func() { errs2 <- k.Run(ctx, victim2) }()
	wait := playPeer(t, func() error {
		defer mallory2.Close()
		nonceI, err := receiveStep(ctx, mallory1, 1) // the victim's, as initiator of session 1
		if err != nil {
			return err
		}
		nonceR, err := receiveStep(ctx, mallory2, 1) // the victim's, as responder of session 2
		if err != nil {
			return err
		}
		// Both sessions now cover (nonceI, nonceR).
		if err := sendStep(ctx, mallory2, 1, nonceI); err != nil {
			return err
		}
		if err := sendStep(ctx, mallory1, 1, nonceR); err != nil {
			return err
		}
		// The victim's proof as responder of session 2 is what mallory
		// owes as responder of session 1, but for the identifiers.
		relayed, err := receiveStep(ctx, mallory2, 2)
		if err != nil {
			return err
		}
		if _, err := receiveStep(ctx, mallory1, 2); err != nil {
			return err
		}
		return sendStep(ctx, mallory1, 2, relayed)
	})
	err1 := k.Run(ctx, victim1)
	wait()
	wantFailure(t, "session 1", err1, "wrong key")
	if err := <-errs2; !errors.Is(err, peernode.ErrTrustFailed) {
		t.Errorf("session 2: %v, want ErrTrustFailed", err)
	}
}

// TestSharedKeyMalformed plays the peer by hand: script is what it sends.
func TestSharedKeyMalformed(t *testing.T) {
	nonce := bytes.Repeat([]byte{7}, 32)
	step := func(s uint8, body []byte) wire.Trust {
		return wire.Trust{Protocol: "sharedKey", Step: s, Body: body}
	}
	tests := []struct {
		name   string
		script []wire.Trust
		want   string
	}{
		{"other protocol", []wire.Trust{{Protocol: "ping", Step: 1, Body: nonce}}, `malformed step: got a packet of trust protocol "ping"`},
		{"protocol name case", []wire.Trust{{Protocol: "SharedKey", Step: 1, Body: nonce}}, `trust protocol "SharedKey"`},
		// The peer's text never reaches the close reason, from which the
		// node tells a timeout from a failure.
		{"unknown protocol", []wire.Trust{{Protocol: "timeout", Step: 1, Body: nonce}}, "an unknown trust protocol (name of 7 bytes)"},
		{"step 2 first", []wire.Trust{step(2, nonce)}, "malformed step: got step 2, want 1"},
		{"step 0", []wire.Trust{step(0, nonce)}, "got step 0, want 1"},
		{"step 1 twice", []wire.Trust{step(1, nonce), step(1, nonce)}, "got step 1, want 2"},
		{"step 3", []wire.Trust{step(1, nonce), step(3, nonce)}, "got step 3, want 2"},
		{"empty nonce", []wire.Trust{step(1, nil)}, "step 1 has 0 bytes, want 32"},
		{"short nonce", []wire.Trust{step(1, nonce[:31])}, "step 1 has 31 bytes, want 32"},
		{"long nonce", []wire.Trust{step(1, append(nonce, 0))}, "step 1 has 33 bytes, want 32"},
		{"empty proof", []wire.Trust{step(1, nonce), step(2, nil)}, "step 2 has 0 bytes, want 32"},
		{"short proof", []wire.Trust{step(1, nonce), step(2, nonce[:16])}, "step 2 has 16 bytes, want 32"},
		{"garbage proof", []wire.Trust{step(1, nonce), step(2, nonce)}, "wrong key"},
	}
	for _, tt := range tests {
		for _, victimIsInitiator := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/initiator=%v", tt.name, victimIsInitiator), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				a, b := peernodetest.NewTrustSessionPair()
				victim, peer := b, a
				if victimIsInitiator {
					victim, peer = a, b
				}
				for _, p := range tt.script {
					if err := peer.Send(ctx, p); err != nil {
						t.Fatal(err)
					}
				}
				wantFailure(t, "Run", mustSharedKey(t, meshKey).Run(ctx, victim), tt.want)
			})
		}
	}
}

// TestSharedKeyTimeout: a peer that never answers (or stops after its
// nonce) cannot hold the handshake past ctx's deadline, and the error says
// it was a timeout.
func TestSharedKeyTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	tests := []struct {
		name   string
		script []wire.Trust
		want   string
	}{
		{"silent peer", nil, "timeout waiting for step 1"},
		{"no proof", []wire.Trust{{Protocol: "sharedKey", Step: 1, Body: bytes.Repeat([]byte{3}, 32)}}, "timeout waiting for step 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			a, b := peernodetest.NewTrustSessionPair()
			for _, p := range tt.script {
				if err := b.Send(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			err := mustSharedKey(t, meshKey).Run(ctx, a)
			if elapsed := time.Since(start); elapsed > timeout+2*time.Second {
				t.Errorf("Run returned after %s, deadline was %s", elapsed, timeout)
			}
			wantFailure(t, "Run", err, tt.want)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v does not wrap DeadlineExceeded", err)
			}
		})
	}
}

// TestSharedKeyPeerNeverReads: a peer that neither reads nor sends cannot
// hold the handshake past its timeout, even once the send queue is full.
func TestSharedKeyPeerNeverReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	a, _ := peernodetest.NewTrustSessionPair()
	for i := range peernodetest.TrustSessionBuffer {
		if err := a.Send(ctx, wire.Trust{Protocol: "filler", Step: uint8(i)}); err != nil {
			t.Fatal(err)
		}
	}
	err := mustSharedKey(t, meshKey).Run(ctx, a)
	if !errors.Is(err, peernode.ErrTrustFailed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run error = %v, want ErrTrustFailed wrapping DeadlineExceeded", err)
	}
}

func TestSharedKeyConnectionLost(t *testing.T) {
	a, b := peernodetest.NewTrustSessionPair()
	b.Close()
	err := mustSharedKey(t, meshKey).Run(t.Context(), a)
	if !errors.Is(err, peernode.ErrTrustFailed) || !errors.Is(err, peernode.ErrChannelClosed) {
		t.Fatalf("Run error = %v, want ErrTrustFailed wrapping ErrChannelClosed", err)
	}
	if strings.Contains(err.Error(), "timeout") {
		t.Errorf("a lost connection reads as a timeout: %v", err)
	}
}

// TestSharedKeyConcurrentSessions: one SharedKey serves many channels at
// once (run with -race).
func TestSharedKeyConcurrentSessions(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	k := mustSharedKey(t, meshKey)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 16 {
		wg.Go(func() {
			a, b := peernodetest.NewTrustSessionPairWithIDs(fmt.Sprint("i", i), fmt.Sprint("r", i))
			initErr, respErr := runPair(ctx, k, k, a, b)
			errs <- errors.Join(initErr, respErr)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestResolver(t *testing.T) {
	r := trust.Resolver(meshKey)
	for _, name := range []string{"none", "Ping"} {
		if p, err := r(name); err != nil || p.Name() != strings.ToLower(name) {
			t.Errorf("resolve %q = %v, %v", name, p, err)
		}
	}
	p1, err := r("sharedKey")
	if err != nil || p1.Name() != "sharedKey" {
		t.Fatalf(`resolve "sharedKey" = %v, %v`, p1, err)
	}
	if p2, err := r("SharedKey"); err != nil || p2 != p1 {
		t.Errorf(`resolve "SharedKey" = %v, %v; want the same instance`, p2, err)
	}
	if _, err := r("pong"); !errors.Is(err, trust.ErrUnknownProtocol) {
		t.Errorf(`resolve "pong" error = %v, want ErrUnknownProtocol`, err)
	}

	for _, key := range [][]byte{nil, {}} {
		_, err := trust.Resolver(key)("sharedKey")
		if !errors.Is(err, trust.ErrUnknownProtocol) || !strings.Contains(err.Error(), "sharedKey needs a key: set incoming.trustProtocol.sharedKeyFile") {
			t.Errorf("Resolver(%v)(sharedKey) error = %v", key, err)
		}
		if p, err := trust.Resolver(key)("ping"); err != nil || p.Name() != "ping" {
			t.Errorf("Resolver(%v)(ping) = %v, %v", key, p, err)
		}
	}
	if _, err := trust.Resolver([]byte("short"))("sharedKey"); !errors.Is(err, trust.ErrSharedKeyTooShort) {
		t.Errorf("Resolver(short key) error = %v, want ErrSharedKeyTooShort", err)
	}
}

// TestValidateLeavesProtocolsToTheResolver: Validate only requires a name
// when a protocol runs; whether it can run is the node's resolver's call.
func TestValidateLeavesProtocolsToTheResolver(t *testing.T) {
	for _, name := range []string{"sharedKey", "ping", "not-built-in"} {
		p := trust.DefaultPolicy()
		p.TrustProtocol = name
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%q): %v", name, err)
		}
	}
	p := trust.DefaultPolicy()
	p.TrustProtocol = ""
	if err := p.Validate(); !errors.Is(err, trust.ErrInvalidPolicy) || !strings.Contains(err.Error(), "TrustProtocol") {
		t.Errorf("Validate(no name) = %v, want ErrInvalidPolicy", err)
	}
	p.RunTrustProtocol = false
	if err := p.Validate(); err != nil {
		t.Errorf("Validate(no name, not run): %v", err)
	}
}
