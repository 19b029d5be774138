package channel

import (
	"context"
	"fmt"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// trustInboxLength bounds the Trust packets waiting for the protocol. Trust
// exchanges are a few messages long; when the inbox is full the reader waits
// for the protocol (bounded by the handshake timeout) rather than drop a
// step of the exchange.
const trustInboxLength = 8

// trustSession is the peernode.TrustSession of a channel: Send queues Trust
// packets like any other, Receive takes those the reader routes to inbox.
type trustSession struct {
	c     *PeerChannel
	inbox chan wire.Trust
	done  chan struct{} // closed when the protocol returned
}

var _ peernode.TrustSession = (*trustSession)(nil)

func (s *trustSession) Peer() peernode.Peer { return s.c.peer }
func (s *trustSession) LocalID() string     { return s.c.cfg.Hello.NodeID }
func (s *trustSession) Initiator() bool     { return s.c.peer.Direction() == peernode.Outbound }

func (s *trustSession) Send(ctx context.Context, t wire.Trust) error {
	return SendPacket(ctx, s.c, t)
}

func (s *trustSession) Receive(ctx context.Context) (wire.Trust, error) {
	select {
	case t := <-s.inbox:
		return t, nil
	case <-s.c.closing:
		return wire.Trust{}, peernode.ErrChannelClosed
	case <-ctx.Done():
		return wire.Trust{}, ctx.Err()
	}
}

// startTrust starts the trust protocol on its own goroutine if the channel
// runs one. It is called by the reader when the channel opens.
func (c *PeerChannel) startTrust(ctx context.Context) {
	if !c.cfg.RunTrust || c.cfg.Trust == nil {
		return
	}
	s := &trustSession{c: c, inbox: make(chan wire.Trust, trustInboxLength), done: make(chan struct{})}
	c.trust = s
	go c.runTrust(ctx, s)
}

// runTrust runs the trust protocol, bounded by the handshake timeout, and
// marks the peer trusted or closes the channel with trust_failed.
func (c *PeerChannel) runTrust(ctx context.Context, s *trustSession) {
	defer close(s.done)
	tctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	err := c.cfg.Trust.Run(tctx, s)
	switch {
	case ctx.Err() != nil:
		// The channel is closing or the node shutting down: the protocol
		// was interrupted, it did not fail. The close has its own reason.
	case err == nil:
		if c.State() != peernode.StateOpen {
			return
		}
		c.peer.SetTrusted(true)
		if fn := c.hooks.OnTrusted; fn != nil {
			fn(c)
		}
	default:
		err = fmt.Errorf("channel: trust protocol %q: %w", c.cfg.Trust.Name(), err)
		c.beginClose(closeReason(peernode.CloseTrustFailed, wire.DisconnectTrustFailed, err.Error()), err, true)
	}
}

// routeTrust hands a Trust packet to the running trust session, or drops it
// when none runs.
func (c *PeerChannel) routeTrust(t wire.Trust) {
	s := c.trust
	if s == nil {
		c.dropped(DropUnexpectedTrust)
		return
	}
	select {
	case <-s.done: // checked first: the inbox may have room nobody will read
		c.dropped(DropUnexpectedTrust)
		return
	default:
	}
	select {
	case s.inbox <- t:
	case <-s.done:
		c.dropped(DropUnexpectedTrust)
	case <-c.closing:
		c.dropped(DropClosing)
	}
}
