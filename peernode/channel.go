package peernode

import (
	"context"
	"errors"
	"time"

	"github.com/peermesh/peermesh/peernode/wire"
)

// ChannelState is a step of a channel's life. States only move forward:
// Handshaking -> Open -> Closing -> Closed (Handshaking may go straight to
// Closing or Closed when the handshake fails).
type ChannelState uint8

const (
	// StateHandshaking: connected, waiting for the peer's Hello.
	StateHandshaking ChannelState = iota + 1
	// StateOpen: identity known and admitted; packets flow.
	StateOpen
	// StateClosing: draining queued packets before the Disconnect.
	StateClosing
	// StateClosed: the connection is closed; CloseReason says why.
	StateClosed
)

// String returns the lower-case state name used in /debug/peers.
func (s ChannelState) String() string {
	switch s {
	case StateHandshaking:
		return "handshaking"
	case StateOpen:
		return "open"
	case StateClosing:
		return "closing"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// CloseReason says why a channel closed. Code is what the Disconnect packet
// carried (sent or received); Text is for people; Label is the bounded value
// of the channels_closed_total reason label.
type CloseReason struct {
	Code   wire.DisconnectCode
	Label  string
	Text   string
	Remote bool // the peer closed (Disconnect received or connection lost)
}

func (r CloseReason) String() string {
	if r.Text == "" {
		return r.Label
	}
	return r.Label + ": " + r.Text
}

// Close reason labels: the bounded values of peermesh_node_channels_closed_total{reason}.
const (
	CloseShutdown       = "shutdown"
	CloseLocal          = "local"
	CloseRemote         = "remote_disconnect"
	CloseConnectionLost = "connection_lost"
	CloseProtocolError  = "protocol_error"
	CloseHandshake      = "handshake_failed"
	CloseIdleTimeout    = "idle_timeout"
	ClosePolicy         = "policy_denied"
	CloseTrustFailed    = "trust_failed"
	CloseDuplicate      = "duplicate"
	CloseSelf           = "self_connection"
	CloseCapacity       = "capacity"
	CloseMeshMismatch   = "mesh_mismatch"
)

// Errors returned by Channel methods.
var (
	// ErrQueueFull is returned by TrySend when the send queue is full.
	ErrQueueFull = errors.New("peernode: send queue full")
	// ErrChannelClosed is returned when sending on a closing or closed channel.
	ErrChannelClosed = errors.New("peernode: channel closed")
)

// Channel is one connection to a peer (P2PNet's PeerChannel), as handlers
// and applications see it. All methods are safe for concurrent use.
type Channel interface {
	// Peer returns the remote peer.
	Peer() Peer
	// State returns the current state.
	State() ChannelState
	// Send queues p, blocking while the send queue is full until there is
	// room, ctx ends (ctx.Err()) or the channel closes (ErrChannelClosed).
	Send(ctx context.Context, p wire.Packet) error
	// TrySend queues p without blocking; ErrQueueFull when there is no room.
	TrySend(p wire.Packet) error
	// RTT returns the last measured round-trip time (0 before the first pong).
	RTT() time.Duration
	// Close drains queued packets (bounded by the drain timeout), sends a
	// Disconnect with reason and closes. It returns once closed.
	Close(reason CloseReason) error
	// Done is closed when the channel is closed.
	Done() <-chan struct{}
}
