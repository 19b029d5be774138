package peernode

import (
	"context"
	"errors"

	"github.com/peermesh/peermesh/peernode/wire"
)

// ErrTrustFailed is wrapped by trust protocols when the peer failed to prove
// itself; the channel closes with reason trust_failed.
var ErrTrustFailed = errors.New("peernode: trust protocol failed")

// TrustSession is the view of a channel that a trust protocol runs over.
// Trust packets from the peer are delivered to Receive, in order, while the
// protocol runs; other packets follow the normal untrusted path.
type TrustSession interface {
	// Peer is the remote peer (its ID is known).
	Peer() Peer
	// LocalID is this node's identifier.
	LocalID() string
	// Initiator is true on the side that dialed the connection.
	Initiator() bool
	// Send sends a trust packet to the peer.
	Send(ctx context.Context, t wire.Trust) error
	// Receive returns the next trust packet from the peer.
	Receive(ctx context.Context) (wire.Trust, error)
}

// TrustProtocol proves a peer trustworthy when a channel opens (P2PNet's
// RunDefaultTrustProtocol delegate). Run is called once per channel on its
// own goroutine, bounded by the handshake timeout through ctx; it returns
// nil when the peer is trusted. Implementations are safe for concurrent use
// across channels.
type TrustProtocol interface {
	// Name is the protocol's name on the wire and in metrics ("none", "ping", "sharedKey").
	Name() string
	Run(ctx context.Context, s TrustSession) error
}
