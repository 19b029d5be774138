package trust

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// ProtocolSharedKey is the wire and metrics name of the SharedKey protocol.
const ProtocolSharedKey = "sharedKey"

// Sizes of the SharedKey protocol.
const (
	// MinSharedKeySize is the shortest key NewSharedKey accepts. Use 32
	// random bytes: the key is not a password (see SharedKey).
	MinSharedKeySize = 16
	// SharedKeyNonceSize is the length of the Body of step 1.
	SharedKeyNonceSize = 32
	// SharedKeyProofSize is the length of the Body of step 2, an
	// HMAC-SHA256.
	SharedKeyProofSize = sha256.Size
)

// sharedKeyLabel starts every MAC input: it separates these MACs from any
// other use of the same key, and the version lets a later layout coexist.
const sharedKeyLabel = "peermesh/trust/sharedKey/v1"

// Role bytes of the MAC input: whose proof it is.
const (
	roleInitiator byte = 'I'
	roleResponder byte = 'R'
)

// ErrSharedKeyTooShort is returned by NewSharedKey (and so by Resolver's
// function) for a key shorter than MinSharedKeySize.
var ErrSharedKeyTooShort = errors.New("trust: shared key too short")

// SharedKey is a trust protocol in which each side proves to the other that
// it holds the mesh's key, without sending it: a mutual challenge-response
// over HMAC-SHA256. Both sides run the same code:
//
//	Trust{Protocol: "sharedKey", Step: 1, Body: nonce}  // 32 fresh random bytes
//	Trust{Protocol: "sharedKey", Step: 2, Body: proof}  // 32 bytes, sent once the peer's nonce arrived
//
// where the proof of side X to side Y is
//
//	HMAC-SHA256(key, "peermesh/trust/sharedKey/v1" || role(X) || string(id(X)) || string(id(Y)) || nonceI || nonceR)
//
// role is the byte 'I' when X dialed the channel and 'R' when it accepted
// it, string is a uvarint length followed by the bytes (as on the wire),
// ids are the identifiers of the Hellos, and nonceI and nonceR are the
// nonces of the initiator and of the responder. A side trusts its peer once
// the peer's step 2 equals the proof it computes for the peer (compared in
// constant time with hmac.Equal).
//
// Why each field is there:
//
//   - both nonces: each side's fresh nonce makes its expected proof new for
//     every session, so a proof captured from an earlier session (replay)
//     never verifies, and neither side can choose the whole input;
//   - the role and the ordered pair of identifiers: the two proofs of one
//     session differ, so a peer cannot echo our own proof back to us
//     (reflection), and a proof that we computed in another session, in the
//     other direction or towards another peer, is over another input even
//     when an attacker arranged for the same nonces (relaying between two
//     parallel sessions);
//   - the label: the MAC cannot be confused with another protocol's MAC
//     under the same key.
//
// Every field has a fixed length or a length prefix, so two different
// inputs never concatenate to the same bytes.
//
// A peer that echoes our nonce as its own is refused at once, as is one
// that returns our own proof; any other wrong proof fails with "wrong key".
// Sending and receiving run concurrently (as in Ping), so the handshake
// takes one round trip and cannot deadlock on a session whose Send blocks.
//
// What it proves: that the peer held the key when the channel opened. All
// members of a mesh share the key, so it proves membership, not which member
// the peer is: any key holder can announce any identifier. It does not
// encrypt or authenticate the packets that follow, so an attacker on the
// path can still read or alter them; use a network that provides integrity
// (WireGuard or IPsec, an encrypting CNI) where that matters. Each side
// sends its proof to any peer that sends a nonce, so an attacker who can
// open a channel can test guesses of the key offline: the key must be
// random (32 bytes from a CSPRNG), never a password.
//
// A SharedKey is immutable and safe for concurrent use by many channels.
type SharedKey struct {
	key []byte
}

var _ peernode.TrustProtocol = (*SharedKey)(nil)

// NewSharedKey returns the SharedKey protocol for key, which it copies. A
// key shorter than MinSharedKeySize bytes gives an error wrapping
// ErrSharedKeyTooShort.
func NewSharedKey(key []byte) (*SharedKey, error) {
	if len(key) < MinSharedKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d (use 32 random bytes, e.g. `head -c 32 /dev/urandom | base64`)",
			ErrSharedKeyTooShort, len(key), MinSharedKeySize)
	}
	return &SharedKey{key: bytes.Clone(key)}, nil
}

// Name returns "sharedKey".
func (*SharedKey) Name() string { return ProtocolSharedKey }

// String returns the protocol's name and never the key, so that logging a
// SharedKey cannot leak it.
func (*SharedKey) String() string { return ProtocolSharedKey }

// GoString is String for %#v.
func (*SharedKey) GoString() string { return "trust.SharedKey{key: <redacted>}" }

// Run performs the exchange over s and returns nil when the peer proved it
// holds the key. On failure the error wraps peernode.ErrTrustFailed and says
// why: "wrong key", "malformed step", "reflected", or, when ctx ended (the
// handshake timeout), "timeout" and ctx.Err(), so that
// errors.Is(err, context.DeadlineExceeded) tells a timeout from a failure.
func (k *SharedKey) Run(ctx context.Context, s peernode.TrustSession) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var own [SharedKeyNonceSize]byte
	if _, err := rand.Read(own[:]); err != nil {
		return fmt.Errorf("%w: sharedKey: no randomness for the nonce: %w", peernode.ErrTrustFailed, err)
	}
	// proof carries our step 2 from the receiver, which computes it once
	// the peer's nonce arrived, to the sender.
	proof := make(chan []byte, 1)
	sent := make(chan error, 1)
	go func() { sent <- sendSharedKey(ctx, s, own[:], proof) }()

	handed, err := k.receive(ctx, s, own[:], proof)
	if !handed {
		// The receiver failed before our proof existed: stop the sender,
		// which may be blocked on a peer that does not read. Once the
		// proof was handed over it is sent even if the peer's proof
		// failed (it reveals nothing the peer could not have asked for),
		// so that the peer reports the wrong key too rather than wait
		// for the handshake timeout. ctx bounds that send.
		cancel()
	}
	if sendErr := <-sent; err == nil {
		err = sendErr
	}
	return err
}

// sendSharedKey sends step 1 at once and step 2 when the receiver hands
// over our proof.
func sendSharedKey(ctx context.Context, s peernode.TrustSession, nonce []byte, proof <-chan []byte) error {
	if err := s.Send(ctx, wire.Trust{Protocol: ProtocolSharedKey, Step: 1, Body: nonce}); err != nil {
		return sessionError("sending step 1", err)
	}
	var p []byte
	select {
	case p = <-proof:
	case <-ctx.Done():
		return sessionError("waiting for the peer's nonce", ctx.Err())
	}
	if err := s.Send(ctx, wire.Trust{Protocol: ProtocolSharedKey, Step: 2, Body: p}); err != nil {
		return sessionError("sending step 2", err)
	}
	return nil
}

// receive reads the peer's nonce, hands our proof to the sender, then reads
// and verifies the peer's proof. handed reports whether the proof was
// handed to the sender.
func (k *SharedKey) receive(ctx context.Context, s peernode.TrustSession, own []byte, proof chan<- []byte) (handed bool, err error) {
	peerNonce, err := receiveStep(ctx, s, 1, SharedKeyNonceSize)
	if err != nil {
		return false, err
	}
	if bytes.Equal(peerNonce, own) {
		return false, fmt.Errorf("%w: sharedKey: reflected: the peer sent our own nonce back", peernode.ErrTrustFailed)
	}

	initiator := s.Initiator()
	nonceI, nonceR := own, peerNonce
	ownRole, peerRole := roleInitiator, roleResponder
	if !initiator {
		nonceI, nonceR = peerNonce, own
		ownRole, peerRole = roleResponder, roleInitiator
	}
	localID, peerID := s.LocalID(), s.Peer().ID()
	mac := hmac.New(sha256.New, k.key)
	ours := sharedKeyProof(mac, ownRole, localID, peerID, nonceI, nonceR)
	proof <- ours // buffered: never blocks
	want := sharedKeyProof(mac, peerRole, peerID, localID, nonceI, nonceR)

	got, err := receiveStep(ctx, s, 2, SharedKeyProofSize)
	switch {
	case err != nil:
		return true, err
	case hmac.Equal(got, want):
		return true, nil
	case hmac.Equal(got, ours):
		return true, fmt.Errorf("%w: sharedKey: reflected: the peer sent our own proof back", peernode.ErrTrustFailed)
	}
	return true, fmt.Errorf("%w: sharedKey: wrong key: the peer's proof does not verify (it holds another key, or is not who it claims)", peernode.ErrTrustFailed)
}

// receiveStep returns the body of the peer's next Trust packet, which must
// be step of this protocol with a body of size bytes.
func receiveStep(ctx context.Context, s peernode.TrustSession, step uint8, size int) ([]byte, error) {
	t, err := s.Receive(ctx)
	switch {
	case err != nil:
		return nil, sessionError(fmt.Sprintf("waiting for step %d", step), err)
	case t.Protocol != ProtocolSharedKey:
		return nil, fmt.Errorf("%w: sharedKey: malformed step: got a packet of %s, want step %d of %q (do both nodes run the same trust protocol?)",
			peernode.ErrTrustFailed, describeProtocol(t.Protocol), step, ProtocolSharedKey)
	case t.Step != step:
		return nil, fmt.Errorf("%w: sharedKey: malformed step: got step %d, want %d", peernode.ErrTrustFailed, t.Step, step)
	case len(t.Body) != size:
		return nil, fmt.Errorf("%w: sharedKey: malformed step: step %d has %d bytes, want %d", peernode.ErrTrustFailed, step, len(t.Body), size)
	}
	return t.Body, nil
}

// describeProtocol names a peer's trust protocol in an error only when it is
// one peermesh knows: the text ends up in the close reason, from which the
// node tells timeouts from failures, so a peer must not be able to write
// arbitrary words into it.
func describeProtocol(name string) string {
	for _, known := range []string{ProtocolNone, ProtocolPing, ProtocolSharedKey} {
		if strings.EqualFold(name, known) {
			return fmt.Sprintf("trust protocol %q", name)
		}
	}
	return fmt.Sprintf("an unknown trust protocol (name of %d bytes)", len(name))
}

// sessionError wraps an error of the session or of ctx. Only a deadline is
// called a timeout: the node counts a handshake whose close reason says
// "timeout" as one.
func sessionError(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: sharedKey: timeout %s: %w", peernode.ErrTrustFailed, what, err)
	}
	return fmt.Errorf("%w: sharedKey: %s: %w", peernode.ErrTrustFailed, what, err)
}

// sharedKeyProof returns the proof of the side whose role and identifier
// are role and prover to the side verifier (see SharedKey for the layout).
// mac is reset first, so one HMAC serves both proofs of a session.
func sharedKeyProof(mac hash.Hash, role byte, prover, verifier string, nonceI, nonceR []byte) []byte {
	mac.Reset()
	buf := make([]byte, 0, len(sharedKeyLabel)+1+2*binary.MaxVarintLen64+len(prover)+len(verifier)+len(nonceI)+len(nonceR))
	buf = append(buf, sharedKeyLabel...)
	buf = append(buf, role)
	buf = appendString(buf, prover)
	buf = appendString(buf, verifier)
	buf = append(buf, nonceI...)
	buf = append(buf, nonceR...)
	mac.Write(buf)
	return mac.Sum(nil)
}

// appendString appends s as the wire format's string: uvarint length, bytes.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
