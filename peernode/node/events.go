package node

import (
	"net/netip"
	"sync"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// Events are the node's callbacks (P2PNet's events). Each is optional and is
// called synchronously: PeerAdded, PeerTrusted and PeerRemoved on the
// channel's goroutines, MessageReceived and DataReceived on the receiving
// channel's reader. Callbacks must not block for long.
type Events struct {
	// PeerAdded is raised for every channel that opens, whatever its origin.
	PeerAdded func(ch peernode.Channel)
	// PeerTrusted is raised when a channel's trust protocol succeeded.
	PeerTrusted func(ch peernode.Channel)
	// PeerRemoved is raised when an open channel closed.
	PeerRemoved func(ch peernode.Channel, reason peernode.CloseReason)
	// IncomingPeerConnectionAttempt is P2PNet's OnIncomingPeerConnectionAttempt:
	// called for each inbound peer the gate admitted, under PlacementEvent and
	// PlacementQueueAndEvent. Returning false refuses the peer.
	IncomingPeerConnectionAttempt func(p *PendingPeer) bool
	// MessageReceived is raised by the default Message handler.
	MessageReceived func(ch peernode.Channel, text string)
	// DataReceived is raised by the default Data handler.
	DataReceived func(ch peernode.Channel, d wire.Data)
	// PeersDiscovered is raised by the default PeerGroup handler with the
	// peers it hands to the dialer.
	PeersDiscovered func(from peernode.Channel, peers []wire.PeerInfo)
}

// PendingPeer is an inbound peer waiting for the placement decision. Accept
// or Reject decides it (the first call wins); a peer not decided within the
// handshake timeout is refused.
type PendingPeer struct {
	// ID, Addr and ListenAddr are what the peer announced and connected from.
	ID         string
	Addr       netip.AddrPort
	ListenAddr string
	Mesh       string

	once     sync.Once
	decision chan bool
}

func newPendingPeer(id string, addr netip.AddrPort, listen, mesh string) *PendingPeer {
	return &PendingPeer{ID: id, Addr: addr, ListenAddr: listen, Mesh: mesh, decision: make(chan bool, 1)}
}

// Accept admits the peer: its channel opens.
func (p *PendingPeer) Accept() { p.decide(true) }

// Reject refuses the peer: its channel closes with reason policy_denied.
func (p *PendingPeer) Reject() { p.decide(false) }

func (p *PendingPeer) decide(v bool) { p.once.Do(func() { p.decision <- v }) }
