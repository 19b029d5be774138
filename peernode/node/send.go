package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// ErrNoChannel is returned when there is no open channel to a peer.
var ErrNoChannel = errors.New("node: no open channel to peer")

// Send sends p to the peer id, blocking while its send queue is full.
func (n *Node) Send(ctx context.Context, id string, p wire.Packet) error {
	ch, ok := n.Channel(id)
	if !ok {
		return fmt.Errorf("%w %q", ErrNoChannel, id)
	}
	return ch.Send(ctx, p)
}

// SendMessage sends a text Message to the peer id.
func (n *Node) SendMessage(ctx context.Context, id, text string) error {
	return n.Send(ctx, id, wire.Message{Text: text})
}

// Broadcast sends p to every trusted peer (P2PNet's DistributionHandler
// queues data for every trusted channel). It returns how many peers it was
// queued for, and the errors of the others joined.
func (n *Node) Broadcast(ctx context.Context, p wire.Packet) (int, error) {
	var errs []error
	sent := 0
	for _, ch := range n.TrustedPeerChannels() {
		if err := ch.Send(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", ch.Peer().ID(), err))
			continue
		}
		sent++
	}
	return sent, errors.Join(errs...)
}

// sharePeers sends the newly trusted peer of ch the peers this node has open
// channels to, so that a mesh forms from a single seed (peer exchange).
func (n *Node) sharePeers(ch peernode.Channel) {
	var peers []wire.PeerInfo
	for _, c := range n.ActivePeerChannels() {
		p := c.Peer()
		if p.ID() == ch.Peer().ID() || p.ListenAddr() == "" {
			continue
		}
		peers = append(peers, wire.PeerInfo{NodeID: p.ID(), Addr: p.ListenAddr()})
		if len(peers) == n.cfg.MaxPeerGroup {
			break
		}
	}
	if len(peers) == 0 {
		return
	}
	if err := ch.TrySend(wire.PeerGroup{Peers: peers}); err != nil {
		n.log.Debug("peer exchange not sent", "peer", ch.Peer().ID(), "err", err)
	}
}
