package node

import (
	"context"
	"fmt"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// registerDefaults installs the default handler of every packet type that
// reaches the registry, reproducing P2PNet's PacketHandleProtocol: Identity
// refreshes the known peer, PeerGroup hands peers to the dialer, Data and
// Message raise events. Disconnect, Ping, Pong and Trust are handled by the
// channel itself (a Disconnect closes the channel, and the node removes it
// from its tables when it closes).
func (n *Node) registerDefaults() {
	must := func(err error) {
		if err != nil {
			panic(err) // only for an invalid type constant, a programming error
		}
	}
	must(n.reg.HandleFunc(wire.TypeHello, n.handleHello))
	must(n.reg.HandleFunc(wire.TypePeerGroup, n.handlePeerGroup))
	must(n.reg.HandleFunc(wire.TypeData, n.handleData))
	must(n.reg.HandleFunc(wire.TypeMessage, n.handleMessage))
}

func (n *Node) handleHello(_ context.Context, ch peernode.Channel, p wire.Packet) error {
	h := p.(wire.Hello)
	if h.NodeID != ch.Peer().ID() {
		return fmt.Errorf("identity %q announced on the channel of %q", h.NodeID, ch.Peer().ID())
	}
	n.mu.Lock()
	n.rememberLocked(h.NodeID, h.ListenAddr, ch.Peer().Addr().String(), sourceFor(ch.Peer().Direction()))
	n.mu.Unlock()
	return nil
}

func (n *Node) handlePeerGroup(_ context.Context, ch peernode.Channel, p wire.Packet) error {
	g := p.(wire.PeerGroup)
	peers := g.Peers
	if len(peers) > n.cfg.MaxPeerGroup {
		peers = peers[:n.cfg.MaxPeerGroup]
	}
	n.learn(peers)
	if f := n.cfg.Events.PeersDiscovered; f != nil {
		f(ch, peers)
	}
	return nil
}

// learn adds the peers of a PeerGroup as dial targets, skipping this node
// and peers it already has a channel or a target for.
func (n *Node) learn(peers []wire.PeerInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	seen := make(map[string]bool, len(peers))
	for _, p := range peers {
		if seen[p.NodeID] || p.NodeID == n.cfg.ID || p.Addr == "" || n.channels[p.NodeID] != nil {
			continue
		}
		seen[p.NodeID] = true
		if t, ok := n.targets[p.Addr]; ok {
			if t.id == "" {
				t.id = p.NodeID
			}
			continue
		}
		// The peer moved: forget the old address, and dial the new one at
		// once rather than after the old target's backoff.
		for addr, t := range n.targets {
			if t.id == p.NodeID && t.source == sourcePeerExchange {
				t.removed = true
				delete(n.targets, addr)
				signal(t.wake)
			}
		}
		if len(n.targets) >= max(n.maxOutbound, 0)+len(n.cfg.Seeds) {
			return
		}
		n.addTargetLocked(p.Addr, sourcePeerExchange, p.NodeID)
	}
}

func (n *Node) handleData(_ context.Context, ch peernode.Channel, p wire.Packet) error {
	if f := n.cfg.Events.DataReceived; f != nil {
		f(ch, p.(wire.Data))
	}
	return nil
}

func (n *Node) handleMessage(_ context.Context, ch peernode.Channel, p wire.Packet) error {
	if f := n.cfg.Events.MessageReceived; f != nil {
		f(ch, p.(wire.Message).Text)
	}
	return nil
}
