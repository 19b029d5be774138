package node

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/channel"
)

// Sources of a known peer or dial target.
const (
	sourceSeed         = "seed"
	sourceInbound      = "inbound"
	sourceOutbound     = "outbound"
	sourcePeerExchange = "peer-exchange"
	sourceDiscovery    = "discovery"
)

func sourceFor(d peernode.Direction) string {
	if d == peernode.Inbound {
		return sourceInbound
	}
	return sourceOutbound
}

// knownPeer is an entry of the KnownPeers table.
type knownPeer struct {
	id         string
	listenAddr string // what the peer announced it listens on
	addr       string // the address of its last connection
	source     string
	firstSeen  time.Time
	lastSeen   time.Time
	reason     string // why the peer has no channel, when it has none
}

// rememberLocked adds or refreshes a known peer. n.mu must be held.
func (n *Node) rememberLocked(id, listenAddr, addr, source string) {
	now := time.Now()
	kp := n.known[id]
	if kp == nil {
		kp = &knownPeer{id: id, source: source, firstSeen: now}
		n.known[id] = kp
		n.metrics.KnownPeers.Set(float64(len(n.known)))
	}
	if listenAddr != "" {
		kp.listenAddr = listenAddr
	}
	if addr != "" {
		kp.addr = addr
	}
	kp.lastSeen = now
	kp.reason = ""
}

// noteKnownReason records why a peer has no channel (for /debug/peers).
func (n *Node) noteKnownReason(id, listenAddr, reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rememberLocked(id, listenAddr, "", sourceInbound)
	n.known[id].reason = reason
}

// KnownPeer is a row of the KnownPeers table.
type KnownPeer struct {
	ID         string    `json:"id"`
	ListenAddr string    `json:"listenAddr,omitempty"`
	Addr       string    `json:"addr,omitempty"`
	Source     string    `json:"source"`
	FirstSeen  time.Time `json:"firstSeen"`
	LastSeen   time.Time `json:"lastSeen"`
	Connected  bool      `json:"connected"`
	// NoChannelReason says why a known peer has no channel.
	NoChannelReason string `json:"noChannelReason,omitempty"`
}

// KnownPeers returns a snapshot of every known peer, sorted by ID.
func (n *Node) KnownPeers() []KnownPeer {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]KnownPeer, 0, len(n.known))
	for _, kp := range n.known {
		ch := n.channels[kp.id]
		row := KnownPeer{
			ID: kp.id, ListenAddr: kp.listenAddr, Addr: kp.addr, Source: kp.source,
			FirstSeen: kp.firstSeen, LastSeen: kp.lastSeen, Connected: ch != nil,
		}
		if ch == nil {
			row.NoChannelReason = kp.reason
			if row.NoChannelReason == "" {
				row.NoChannelReason = "not connected yet"
			}
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b KnownPeer) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// ActivePeerChannels returns the open channels (P2PNet's ActivePeerChannels),
// one per peer, sorted by peer ID.
func (n *Node) ActivePeerChannels() []peernode.Channel {
	return n.channelsWhere(func(*channel.PeerChannel) bool { return true })
}

// TrustedPeerChannels returns the open channels whose peer is trusted.
func (n *Node) TrustedPeerChannels() []peernode.Channel {
	return n.channelsWhere(func(c *channel.PeerChannel) bool { return c.Peer().Trusted() })
}

func (n *Node) channelsWhere(keep func(*channel.PeerChannel) bool) []peernode.Channel {
	n.mu.Lock()
	list := make([]*channel.PeerChannel, 0, len(n.channels))
	for _, c := range n.channels {
		list = append(list, c)
	}
	n.mu.Unlock()
	out := make([]peernode.Channel, 0, len(list))
	for _, c := range list {
		if c.State() == peernode.StateOpen && keep(c) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b peernode.Channel) int { return cmp.Compare(a.Peer().ID(), b.Peer().ID()) })
	return out
}

// Channel returns the open channel to the peer id.
func (n *Node) Channel(id string) (peernode.Channel, bool) {
	n.mu.Lock()
	c := n.channels[id]
	n.mu.Unlock()
	if c == nil || c.State() != peernode.StateOpen {
		return nil, false
	}
	return c, true
}

// ChannelInfo is a row of /debug/peers.
type ChannelInfo struct {
	ID              string    `json:"id"`
	Addr            string    `json:"addr"`
	ListenAddr      string    `json:"listenAddr,omitempty"`
	Direction       string    `json:"direction"`
	State           string    `json:"state"`
	Trusted         bool      `json:"trusted"`
	RTTSeconds      float64   `json:"rttSeconds"`
	BytesSent       uint64    `json:"bytesSent"`
	BytesReceived   uint64    `json:"bytesReceived"`
	PacketsSent     uint64    `json:"packetsSent"`
	PacketsReceived uint64    `json:"packetsReceived"`
	QueueLen        int       `json:"queueLen"`
	FirstSeen       time.Time `json:"firstSeen"`
	LastSeen        time.Time `json:"lastSeen"`
}

// Channels returns a snapshot of every channel, handshaking ones included.
func (n *Node) Channels() []ChannelInfo {
	n.mu.Lock()
	list := make([]*channel.PeerChannel, 0, len(n.all))
	for c := range n.all {
		list = append(list, c)
	}
	n.mu.Unlock()
	out := make([]ChannelInfo, 0, len(list))
	for _, c := range list {
		p := c.Peer()
		out = append(out, ChannelInfo{
			ID: p.ID(), Addr: p.Addr().String(), ListenAddr: p.ListenAddr(),
			Direction: p.Direction().String(), State: c.State().String(), Trusted: p.Trusted(),
			RTTSeconds: c.RTT().Seconds(), BytesSent: c.BytesSent(), BytesReceived: c.BytesReceived(),
			PacketsSent: c.PacketsSent(), PacketsReceived: c.PacketsReceived(), QueueLen: c.QueueLen(),
			FirstSeen: p.FirstSeen(), LastSeen: p.LastSeen(),
		})
	}
	slices.SortFunc(out, func(a, b ChannelInfo) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Direction, b.Direction), cmp.Compare(a.Addr, b.Addr))
	})
	return out
}

// Limits are the effective limits, reported in /debug/peers.
type Limits struct {
	MaxInbound           int `json:"maxInbound"`
	MaxOutbound          int `json:"maxOutbound"`
	MaxPendingHandshakes int `json:"maxPendingHandshakes"`
	Inbound              int `json:"inbound"`
	Outbound             int `json:"outbound"`
	PendingHandshakes    int `json:"pendingHandshakes"`
}

// Limits returns the effective limits and current counts.
func (n *Node) Limits() Limits {
	n.mu.Lock()
	defer n.mu.Unlock()
	return Limits{
		MaxInbound: n.maxInbound, MaxOutbound: n.maxOutbound, MaxPendingHandshakes: n.cfg.MaxPendingHandshakes,
		Inbound: n.inbound, Outbound: n.outbound, PendingHandshakes: n.pending,
	}
}

func containsFold(s, sub string) bool { return strings.Contains(strings.ToLower(s), sub) }
