package node

import (
	"context"
	"errors"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/metrics"
	"github.com/peermesh/peermesh/peernode/wire"
)

// chanInfo is the node's bookkeeping of one channel.
type chanInfo struct {
	opened  bool // reached StateOpen (counted in the channels gauge)
	trusted bool // counted as trusted in the channels gauge
	// trustDone is closed when the trust protocol succeeded; nil when no
	// trust protocol runs on the channel.
	trustDone chan struct{}
}

func (n *Node) hooks() channel.Hooks {
	return channel.Hooks{
		OnHello:         n.onHello,
		Admit:           n.admit,
		OnPacket:        n.onPacket,
		OnStateChange:   n.onStateChange,
		OnClosed:        n.onClosed,
		OnTrusted:       n.onTrusted,
		OnRTT:           func(_ *channel.PeerChannel, d time.Duration) { n.metrics.ObserveRTT(d) },
		OnFrameSent:     n.metrics.PacketSent,
		OnFrameReceived: n.metrics.PacketReceived,
		OnDropped:       n.onDropped,
	}
}

func closeWith(label string, code wire.DisconnectCode, text string) peernode.CloseReason {
	return peernode.CloseReason{Label: label, Code: code, Text: text}
}

// onHello runs the identity stage: mesh, self-connection, the gate, incoming
// placement and duplicate resolution, in that order.
func (n *Node) onHello(c *channel.PeerChannel, h wire.Hello) (bool, peernode.CloseReason) {
	peer := c.Peer()
	dir := peer.Direction()
	if n.cfg.Mesh != "" && h.MeshName != n.cfg.Mesh {
		n.metrics.ConnectionRejected(metrics.RejectMeshMismatch)
		return false, closeWith(peernode.CloseMeshMismatch, wire.DisconnectMeshMismatch,
			"mesh "+h.MeshName+" is not "+n.cfg.Mesh)
	}
	if h.NodeID == n.cfg.ID {
		n.metrics.ConnectionRejected(metrics.RejectSelfConnection)
		return false, closeWith(peernode.CloseSelf, wire.DisconnectSelfConnection, "connected to itself")
	}
	d := n.gate.InterceptPeer(peernode.PeerInfo{ID: h.NodeID, Addr: peer.Addr(), Direction: dir})
	if n.denied(d, h.NodeID, peer.Addr().String()) {
		n.metrics.ConnectionRejected(d.Reason)
		n.noteKnownReason(h.NodeID, h.ListenAddr, "denied: "+d.Reason+" by "+d.Rule)
		return false, closeWith(peernode.ClosePolicy, wire.DisconnectPolicyDenied, d.Reason+": "+d.Rule)
	}
	if dir == peernode.Inbound && !n.place(c, h) {
		return false, closeWith(peernode.ClosePolicy, wire.DisconnectPolicyDenied, "refused by incoming placement")
	}

	n.mu.Lock()
	var loser *channel.PeerChannel
	if existing := n.channels[h.NodeID]; existing != nil && existing != c {
		if !n.keepNew(existing, c) {
			n.mu.Unlock()
			n.metrics.ConnectionRejected(metrics.RejectDuplicate)
			return false, closeWith(peernode.CloseDuplicate, wire.DisconnectDuplicate, "another channel to this peer wins")
		}
		loser = existing
	}
	n.channels[h.NodeID] = c
	n.rememberLocked(h.NodeID, h.ListenAddr, peer.Addr().String(), sourceFor(dir))
	n.mu.Unlock()
	if loser != nil {
		n.metrics.ConnectionRejected(metrics.RejectDuplicate)
		n.closeAsync(loser, closeWith(peernode.CloseDuplicate, wire.DisconnectDuplicate, "another channel to this peer wins"))
	}
	return true, peernode.CloseReason{}
}

// keepNew resolves two channels to the same peer so that both ends keep the
// same one: the connection dialed by the node with the smaller identifier
// wins. When both were dialed by the same node (a reconnect), the newer wins.
func (n *Node) keepNew(existing, c *channel.PeerChannel) bool {
	dialer := func(ch *channel.PeerChannel) string {
		if ch.Peer().Direction() == peernode.Outbound {
			return n.cfg.ID
		}
		return ch.Peer().ID()
	}
	de, dn := dialer(existing), dialer(c)
	if de == dn {
		return true
	}
	return dn < de
}

// place applies incoming placement to an admitted inbound peer.
func (n *Node) place(c *channel.PeerChannel, h wire.Hello) bool {
	p := newPendingPeer(h.NodeID, c.Peer().Addr(), h.ListenAddr, h.MeshName)
	ev := n.cfg.Events.IncomingPeerConnectionAttempt
	switch n.cfg.Placement {
	case PlacementEvent:
		return ev == nil || ev(p)
	case PlacementQueueAndEvent:
		if ev != nil && !ev(p) {
			return false
		}
	}
	select {
	case n.inboundQueue <- p:
	default:
		n.metrics.ConnectionRejected(metrics.RejectCapacityInbound)
		return false
	}
	n.metrics.InboundQueueDepth.Set(float64(len(n.inboundQueue)))
	defer func() { n.metrics.InboundQueueDepth.Set(float64(len(n.inboundQueue))) }()
	timer := time.NewTimer(n.handshakeTimeout())
	defer timer.Stop()
	select {
	case v := <-p.decision:
		return v
	case <-timer.C:
		p.Reject()
		return false
	case <-c.Done():
		return false
	}
}

func (n *Node) handshakeTimeout() time.Duration {
	n.mu.Lock()
	d := n.chanCfg.HandshakeTimeout
	n.mu.Unlock()
	if d > 0 {
		return d
	}
	return channel.DefaultHandshakeTimeout
}

// admit is the per-packet gate; it must not allocate on the allow path.
func (n *Node) admit(c *channel.PeerChannel, t wire.Type) bool {
	d := n.gate.InterceptPacket(c.GenericPeer().Trusted(), t)
	if d.Verdict == peernode.Allow {
		return true
	}
	if d.Verdict == peernode.Deny && n.awaitTrust(c) {
		// The peer finished its side of the trust protocol before this side
		// did (its last trust packet is already read): judge the packet by
		// the outcome rather than by the race.
		d = n.gate.InterceptPacket(c.GenericPeer().Trusted(), t)
		if d.Verdict == peernode.Allow {
			return true
		}
	}
	if n.denied(d, c.Peer().ID(), "") {
		n.metrics.PacketDropped(metrics.DropPolicy)
		return false
	}
	return true
}

// awaitTrust waits, bounded by the handshake timeout, for the trust protocol
// running on c to finish, and reports whether it succeeded. A peer only sends
// packets that need trust once its side of the protocol is done, and every
// trust packet it sent precedes them on the wire, so this wait cannot
// deadlock the reader.
func (n *Node) awaitTrust(c *channel.PeerChannel) bool {
	n.mu.Lock()
	info := n.all[c]
	n.mu.Unlock()
	if info == nil || info.trustDone == nil {
		return false
	}
	timer := time.NewTimer(n.handshakeTimeout())
	defer timer.Stop()
	select {
	case <-info.trustDone:
		return true
	case <-c.Done():
	case <-timer.C:
	}
	return false
}

// denied counts and logs a non-Allow decision and reports whether it is
// enforced (Deny); an AuditDeny is counted and logged but admitted.
func (n *Node) denied(d peernode.Decision, id, addr string) bool {
	if d.Verdict == peernode.Allow {
		return false
	}
	n.metrics.PolicyDenied(d)
	n.denials.log(d, id, addr)
	return d.Verdict == peernode.Deny
}

func (n *Node) onPacket(ctx context.Context, c *channel.PeerChannel, p wire.Packet) {
	h := n.reg.Lookup(p.Type())
	if h == nil {
		if _, raw := p.(wire.Raw); raw && !p.Type().IsApplication() {
			n.metrics.PacketDropped(metrics.DropUnknownType)
		} else {
			n.metrics.PacketDropped(metrics.DropNoHandler)
		}
		return
	}
	if err := h.HandlePacket(ctx, c, p); err != nil {
		n.metrics.PacketDropped(metrics.DropHandlerError)
		n.log.Debug("handler failed", "peer", c.Peer().ID(), "packetType", p.Type().String(), "err", err)
	}
}

func (n *Node) onDropped(reason string) {
	switch reason {
	case channel.DropUnexpectedTrust:
		reason = metrics.DropTrustInactive
	case channel.DropSendQueueFull:
		reason = metrics.DropQueueFull
	case channel.DropClosing:
		reason = metrics.DropChannelClosing
	}
	n.metrics.PacketDropped(reason)
}

func (n *Node) onStateChange(c *channel.PeerChannel, from, to peernode.ChannelState) {
	dir := c.Peer().Direction()
	if from == peernode.StateHandshaking && dir == peernode.Inbound {
		n.mu.Lock()
		n.pending--
		n.mu.Unlock()
	}
	if to != peernode.StateOpen {
		return
	}
	n.mu.Lock()
	info := n.all[c]
	if info != nil {
		info.opened = true
	}
	trusted := info != nil && info.trusted
	n.metrics.ChannelOpened(dir)
	if trusted {
		n.metrics.ChannelTrusted(dir)
	}
	n.mu.Unlock()
	n.log.Debug("channel open", "peer", c.Peer().ID(), "addr", c.Peer().Addr().String(), "direction", dir.String())
	if f := n.cfg.Events.PeerAdded; f != nil {
		f(c)
	}
}

func (n *Node) onTrusted(c *channel.PeerChannel) {
	n.mu.Lock()
	info := n.all[c]
	if info != nil && !info.trusted {
		info.trusted = true
		if info.opened {
			n.metrics.ChannelTrusted(c.Peer().Direction())
		}
		if info.trustDone != nil {
			close(info.trustDone)
		}
	}
	n.mu.Unlock()
	n.metrics.TrustHandshake(n.trustProtocolName(), metrics.HandshakeSuccess)
	n.sharePeers(c)
	if f := n.cfg.Events.PeerTrusted; f != nil {
		f(c)
	}
}

func (n *Node) trustProtocolName() string { return n.gate.Policy().TrustProtocol }

func (n *Node) onClosed(c *channel.PeerChannel, reason peernode.CloseReason) {
	peer := c.Peer()
	dir := peer.Direction()
	id := peer.ID()
	n.mu.Lock()
	info := n.all[c]
	delete(n.all, c)
	if id != "" && n.channels[id] == c {
		delete(n.channels, id)
	}
	switch dir {
	case peernode.Inbound:
		n.inbound--
	case peernode.Outbound:
		n.outbound--
	}
	if kp := n.known[id]; kp != nil && id != "" {
		kp.lastSeen = peer.LastSeen()
		if n.channels[id] == nil {
			kp.reason = "channel closed: " + reason.String()
		}
	}
	n.mu.Unlock()

	if info != nil && info.opened {
		n.metrics.ChannelClosed(dir, info.trusted, reason.Label)
	} else {
		n.metrics.ChannelsClosed.WithLabelValues(reason.Label).Inc()
	}
	if reason.Label == peernode.CloseTrustFailed {
		n.metrics.TrustHandshakeDone(n.trustProtocolName(), trustError(reason))
	}
	n.log.Debug("channel closed", "peer", id, "addr", peer.Addr().String(), "reason", reason.String())
	if info != nil && info.opened {
		if f := n.cfg.Events.PeerRemoved; f != nil {
			f(c, reason)
		}
	}
}

// trustError rebuilds the kind of a trust failure from its close reason for
// the handshake metric: a timeout or a failure.
func trustError(r peernode.CloseReason) error {
	if containsFold(r.Text, "deadline") || containsFold(r.Text, "timeout") {
		return context.DeadlineExceeded
	}
	return errors.New(r.Text)
}

// closeAsync closes ch on a goroutine the node waits for, so callers holding
// the reader or a lock never wait for a drain.
func (n *Node) closeAsync(ch *channel.PeerChannel, reason peernode.CloseReason) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = ch.Close(reason)
	}()
}
