package peernodetest

import (
	"context"
	"slices"
	"sync"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// Identifiers of the two ends of a pair made by NewTrustSessionPair.
const (
	InitiatorID = "node-a"
	ResponderID = "node-b"
)

// TrustSessionBuffer is how many trust packets a TrustSession queues for
// its peer before Send blocks, like a channel's bounded send queue.
const TrustSessionBuffer = 8

// TrustSession is an in-memory peernode.TrustSession: one end of a pair
// made by NewTrustSessionPair, whose Send delivers to the other end's
// Receive. All methods are safe for concurrent use.
type TrustSession struct {
	localID   string
	initiator bool
	peer      *peernode.GenericPeer

	in  chan wire.Trust // packets from the peer
	out chan wire.Trust // the peer's in

	closed    chan struct{} // shared by both ends
	closeOnce *sync.Once

	mu   sync.Mutex
	sent []wire.Trust
}

var _ peernode.TrustSession = (*TrustSession)(nil)

// NewTrustSessionPair returns two connected sessions: initiator (ID
// InitiatorID, the side that dialed) and responder (ResponderID).
func NewTrustSessionPair() (initiator, responder *TrustSession) {
	return NewTrustSessionPairWithIDs(InitiatorID, ResponderID)
}

// NewTrustSessionPairWithIDs is NewTrustSessionPair with chosen node
// identifiers.
func NewTrustSessionPairWithIDs(initiatorID, responderID string) (initiator, responder *TrustSession) {
	aToB := make(chan wire.Trust, TrustSessionBuffer)
	bToA := make(chan wire.Trust, TrustSessionBuffer)
	closed := make(chan struct{})
	once := new(sync.Once)

	// Each end sees the other as a peer whose ID the Hello announced:
	// the initiator dialed the responder (outbound) and vice versa.
	peerOfA := peernode.NewGenericPeer(nil, peernode.Outbound)
	peerOfA.SetIdentity(responderID, "")
	peerOfB := peernode.NewGenericPeer(nil, peernode.Inbound)
	peerOfB.SetIdentity(initiatorID, "")

	initiator = &TrustSession{localID: initiatorID, initiator: true, peer: peerOfA,
		in: bToA, out: aToB, closed: closed, closeOnce: once}
	responder = &TrustSession{localID: responderID, initiator: false, peer: peerOfB,
		in: aToB, out: bToA, closed: closed, closeOnce: once}
	return initiator, responder
}

// Peer implements peernode.TrustSession: the other end, with its ID set.
func (s *TrustSession) Peer() peernode.Peer { return s.peer }

// LocalID implements peernode.TrustSession.
func (s *TrustSession) LocalID() string { return s.localID }

// Initiator implements peernode.TrustSession.
func (s *TrustSession) Initiator() bool { return s.initiator }

// Send implements peernode.TrustSession. It copies t's body (a real channel
// encodes it before Send returns) and blocks while the peer's queue is full,
// until ctx ends (ctx.Err()) or the pair is closed
// (peernode.ErrChannelClosed).
func (s *TrustSession) Send(ctx context.Context, t wire.Trust) error {
	t.Body = slices.Clone(t.Body)
	select {
	case <-s.closed:
		return peernode.ErrChannelClosed
	default:
	}
	select {
	case s.out <- t:
		s.mu.Lock()
		s.sent = append(s.sent, t)
		s.mu.Unlock()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return peernode.ErrChannelClosed
	}
}

// Receive implements peernode.TrustSession. Packets already queued are
// delivered even after Close, as a connection delivers what it read before
// it broke; then it returns peernode.ErrChannelClosed.
func (s *TrustSession) Receive(ctx context.Context) (wire.Trust, error) {
	select {
	case t := <-s.in:
		return t, nil
	default:
	}
	select {
	case t := <-s.in:
		return t, nil
	case <-ctx.Done():
		return wire.Trust{}, ctx.Err()
	case <-s.closed:
		return wire.Trust{}, peernode.ErrChannelClosed
	}
}

// Close closes both ends, as a connection loss would: blocked and later
// Sends and Receives return peernode.ErrChannelClosed. It is idempotent.
func (s *TrustSession) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// Sent returns a copy of the packets this end has sent, in order.
func (s *TrustSession) Sent() []wire.Trust {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}
