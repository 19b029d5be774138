package node

import (
	"cmp"
	"context"
	"net/netip"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/trust"
	"github.com/peermesh/peermesh/peernode/wire"
)

// SetPolicy replaces the trust policy atomically and re-evaluates every live
// channel at once: channels the new policy denies close (policy_denied), the
// others stay open untouched. In Audit mode nothing closes; would-be denials
// are counted and logged. New channels use the new policy's trust protocol.
func (n *Node) SetPolicy(p *trust.Policy) error {
	if err := n.cfg.checkPolicy(p); err != nil {
		return err
	}
	n.gate.Swap(p)
	n.metrics.SetConfig(n.cfg.Mesh, p.Generation)
	n.log.Info("policy applied", "policy", p.PolicySource, "generation", p.Generation, "mode", p.Mode.String())
	n.reevaluate()
	return nil
}

// Policy returns the policy in force.
func (n *Node) Policy() *trust.Policy { return n.gate.Policy() }

// reevaluate asks the gate about every admitted channel and closes the
// denied ones (asynchronously, so a policy change never waits on a drain).
func (n *Node) reevaluate() {
	n.mu.Lock()
	list := make([]*channel.PeerChannel, 0, len(n.channels))
	for _, c := range n.channels {
		list = append(list, c)
	}
	n.mu.Unlock()
	for _, c := range list {
		p := c.Peer()
		d := n.gate.InterceptPeer(peernode.PeerInfo{ID: p.ID(), Addr: p.Addr(), Direction: p.Direction()})
		if n.denied(d, p.ID(), p.Addr().String()) {
			n.noteKnownReason(p.ID(), p.ListenAddr(), "denied: "+d.Reason+" by "+d.Rule)
			n.closeAsync(c, closeWith(peernode.ClosePolicy, wire.DisconnectPolicyDenied, d.Reason+": "+d.Rule))
		}
	}
}

// Explain answers whether a peer with this identifier and address, connecting
// inbound, would be admitted by the policy in force, and by which rule.
func (n *Node) Explain(id string, addr netip.AddrPort) peernode.Decision {
	if id == "" {
		return n.gate.InterceptAccept(addr)
	}
	if d := n.gate.InterceptAccept(addr); d.Verdict != peernode.Allow {
		return d
	}
	return n.gate.Explain(id, addr, peernode.Inbound)
}

// reaper is P2PNet's DiscernPeerChannels routine: every ReapInterval it
// re-evaluates the policy for every channel (a safety net behind SetPolicy)
// and closes channels idle longer than the idle timeout (a safety net behind
// each channel's own timer).
func (n *Node) reaper(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.reevaluate()
			n.reapIdle()
			n.evictStale(time.Now())
		}
	}
}

// evictStale drops known peers without a channel not seen for KnownPeerTTL,
// and peer-exchange targets unreachable for as long.
func (n *Node) evictStale(now time.Time) {
	ttl := n.cfg.KnownPeerTTL
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, kp := range n.known {
		if n.channels[id] == nil && now.Sub(kp.lastSeen) > ttl {
			delete(n.known, id)
		}
	}
	n.metrics.KnownPeers.Set(float64(len(n.known)))
	for addr, t := range n.targets {
		if t.source == sourcePeerExchange && n.channels[t.id] == nil && now.Sub(t.lastGood) > ttl {
			t.removed = true
			delete(n.targets, addr)
			signal(t.wake)
		}
	}
}

func (n *Node) reapIdle() {
	n.mu.Lock()
	idle := n.chanCfg.IdleTimeout
	if idle <= 0 {
		n.mu.Unlock()
		return
	}
	var stale []*channel.PeerChannel
	for c := range n.all {
		if time.Since(c.Peer().LastSeen()) > 2*idle {
			stale = append(stale, c)
		}
	}
	n.mu.Unlock()
	for _, c := range stale {
		n.closeAsync(c, closeWith(peernode.CloseIdleTimeout, wire.DisconnectIdleTimeout, "reaped: idle"))
	}
}

// PolicyLimits are the limits of a mesh configuration (its limits section)
// that SetLimits changes while the node runs. A zero field selects what the
// node started with (Config); a negative cap allows no channel in that
// direction, as in Config.
type PolicyLimits struct {
	MaxInbound, MaxOutbound int
	// HandshakeTimeout, IdleTimeout and KeepaliveInterval apply to channels
	// opened from now on; IdleTimeout also to the reaper, at once.
	HandshakeTimeout, IdleTimeout, KeepaliveInterval time.Duration
}

// SetLimits replaces the limits in force. Lowering a cap refuses new
// channels over it but closes none: the channels already open stay until
// they close for another reason, as a lowered cap in a running mesh should
// not cut peers off all at once.
func (n *Node) SetLimits(l PolicyLimits) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.maxInbound, n.maxOutbound = cmp.Or(l.MaxInbound, n.cfg.MaxInbound), cmp.Or(l.MaxOutbound, n.cfg.MaxOutbound)
	c := n.cfg.Channel
	if l.HandshakeTimeout > 0 {
		c.HandshakeTimeout = l.HandshakeTimeout
	}
	if l.IdleTimeout > 0 {
		c.IdleTimeout = l.IdleTimeout
	}
	if l.KeepaliveInterval > 0 {
		c.KeepaliveInterval = l.KeepaliveInterval
	}
	n.chanCfg = c
}
