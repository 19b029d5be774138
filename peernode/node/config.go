package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/trust"
	"github.com/peermesh/peermesh/peernode/wire"
)

// Placement says where inbound peers go once their identity is known and the
// gate admitted them (P2PNet's IncomingPeerPlacement).
type Placement uint8

const (
	// PlacementEvent calls Events.IncomingPeerConnectionAttempt, whose answer
	// admits or refuses the peer; with no callback every peer is admitted.
	PlacementEvent Placement = iota
	// PlacementQueue puts the peer in the bounded InboundConnectingPeers queue;
	// the application accepts or rejects each one. Peers not decided within
	// the handshake timeout are refused.
	PlacementQueue
	// PlacementQueueAndEvent calls the event first (a refusal there is final)
	// and then queues the peer for the application's decision.
	PlacementQueueAndEvent
)

// ParsePlacement parses "Event", "Queue" or "QueueAndEvent".
func ParsePlacement(s string) (Placement, error) {
	switch s {
	case "", "Event":
		return PlacementEvent, nil
	case "Queue":
		return PlacementQueue, nil
	case "QueueAndEvent":
		return PlacementQueueAndEvent, nil
	}
	return 0, fmt.Errorf("unknown placement %q (want Event, Queue or QueueAndEvent)", s)
}

func (p Placement) String() string {
	switch p {
	case PlacementEvent:
		return "Event"
	case PlacementQueue:
		return "Queue"
	case PlacementQueueAndEvent:
		return "QueueAndEvent"
	}
	return "unknown"
}

// Defaults of Config.
const (
	DefaultMaxInbound           = 256
	DefaultMaxOutbound          = 256
	DefaultMaxPendingHandshakes = 128
	DefaultInboundQueueLength   = 64
	DefaultDialTimeout          = 5 * time.Second
	DefaultBackoffMin           = 100 * time.Millisecond
	DefaultBackoffMax           = 30 * time.Second
	DefaultReapInterval         = 30 * time.Second
	DefaultMaxPeerGroup         = 256
	DefaultKnownPeerTTL         = 10 * time.Minute
)

// Config configures a Node. New fills zero fields with the defaults above.
type Config struct {
	// ID is this node's identifier, announced in every Hello. Required.
	ID string
	// Mesh is the mesh name announced in Hello; peers of another mesh are
	// refused. Empty accepts any mesh (and announces none).
	Mesh string
	// ListenAddr is the fixed TCP address to listen on ("host:port"; port 0
	// picks one, for tests). Empty means the node does not listen. When the
	// host is one address (not 0.0.0.0 or ::), outbound connections are made
	// from that address too, so that peers see the address CIDR rules are
	// written for.
	ListenAddr string
	// AdvertiseAddr is the address announced to peers; default: the
	// listener's address.
	AdvertiseAddr string
	// Seeds are "host:port" addresses dialed at start and kept dialed.
	Seeds []string

	// MaxInbound and MaxOutbound are hard caps on channels by direction,
	// handshaking ones included. Connections over the cap are refused and
	// counted (reason capacity_inbound / capacity_outbound). Zero selects
	// the default; a negative value allows no channel in that direction.
	MaxInbound, MaxOutbound int
	// MaxPendingHandshakes bounds accepted connections still handshaking.
	MaxPendingHandshakes int

	// Placement and InboundQueueLength configure incoming placement.
	Placement          Placement
	InboundQueueLength int

	// Channel is the template for every channel (timeouts, queue and frame
	// sizes); its Hello, Trust and RunTrust are set by the node.
	Channel channel.Config

	// DialTimeout bounds one dial; BackoffMin and BackoffMax bound the
	// capped exponential backoff (with jitter) between failed dials.
	DialTimeout, BackoffMin, BackoffMax time.Duration
	// ReapInterval is the period of the reaper routine (P2PNet's
	// DiscernPeerChannels): it closes channels the policy denies and idle
	// ones the channel's own timer missed.
	ReapInterval time.Duration
	// MaxPeerGroup bounds the peers sent in, and accepted from, one
	// PeerGroup packet.
	MaxPeerGroup int
	// KnownPeerTTL is how long a known peer without a channel, and a dial
	// target learned by peer exchange that stays unreachable, are kept.
	// The reaper evicts them after that, so the tables cannot grow forever.
	KnownPeerTTL time.Duration

	// Policy is the initial trust policy; nil means trust.DefaultPolicy().
	Policy *trust.Policy
	// TrustProtocols resolves the policy's trust protocol name to an
	// implementation; nil means trust.ProtocolByName (the built-ins that
	// need no secret). Protocols with key material, such as sharedKey, are
	// provided here by the daemon.
	TrustProtocols func(name string) (peernode.TrustProtocol, error)
	// Discoverers report candidate peer addresses; the node dials what they
	// report and stops dialing what they stop reporting.
	Discoverers []peernode.Discoverer

	// Registerer receives the node's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger

	// Events are optional callbacks.
	Events Events
}

// checkPolicy validates p and checks that its trust protocol can be run.
func (c Config) checkPolicy(p *trust.Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.RunTrustProtocol {
		if _, err := c.TrustProtocols(p.TrustProtocol); err != nil {
			return fmt.Errorf("node: policy %s: %w", p.Generation, err)
		}
	}
	return nil
}

// ErrNoID is returned by New when Config.ID is empty.
var ErrNoID = errors.New("node: Config.ID is required")

func (c Config) withDefaults() Config {
	if c.MaxInbound == 0 {
		c.MaxInbound = DefaultMaxInbound
	}
	if c.MaxOutbound == 0 {
		c.MaxOutbound = DefaultMaxOutbound
	}
	if c.MaxPendingHandshakes <= 0 {
		c.MaxPendingHandshakes = DefaultMaxPendingHandshakes
	}
	if c.InboundQueueLength <= 0 {
		c.InboundQueueLength = DefaultInboundQueueLength
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(DefaultBackoffMax, c.BackoffMin)
	}
	if c.ReapInterval <= 0 {
		c.ReapInterval = DefaultReapInterval
	}
	if c.MaxPeerGroup <= 0 || c.MaxPeerGroup > wire.MaxPeerGroupEntries {
		c.MaxPeerGroup = DefaultMaxPeerGroup
	}
	if c.KnownPeerTTL <= 0 {
		c.KnownPeerTTL = DefaultKnownPeerTTL
	}
	if c.Policy == nil {
		c.Policy = trust.DefaultPolicy()
	}
	if c.TrustProtocols == nil {
		c.TrustProtocols = trust.ProtocolByName
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
