package trust

import (
	"bytes"
	"context"
	"fmt"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// Ping is P2PNet's default trust protocol, kept compatible in spirit and
// made fast. The original exchanges three "Ping from <id>" messages 3 s
// apart (about 9 s per channel); here each side sends its three at once:
//
//	Trust{Protocol: "ping", Step: 1, Body: "Ping from <local id>"}
//	Trust{Protocol: "ping", Step: 2, Body: "Ping from <local id>"}
//	Trust{Protocol: "ping", Step: 3, Body: "Ping from <local id>"}
//
// and must receive exactly the peer's three, steps 1, 2 and 3 in order, each
// with the body "Ping from <peer id>" where <peer id> is the identifier the
// peer announced in its Hello. Anything else (another protocol's packet, a
// wrong step or body, the session failing, ctx ending) fails the handshake
// with an error wrapping peernode.ErrTrustFailed.
//
// Ping proves only that the peer is alive and speaks the protocol, not who
// it is: any peer that can open a channel becomes trusted. Use it where
// P2PNet's behaviour is wanted; identity needs a key-based protocol.
//
// Sending and receiving run concurrently, so the handshake completes in one
// round trip and cannot deadlock on a session whose Send blocks until the
// peer reads.
type Ping struct{}

var _ peernode.TrustProtocol = Ping{}

// PingSteps is the number of pings each side sends and expects.
const PingSteps = 3

// pingBodyPrefix starts every ping body, as in P2PNet.
const pingBodyPrefix = "Ping from "

// Name returns "ping".
func (Ping) Name() string { return ProtocolPing }

// Run performs the exchange over s. It returns nil when the peer is trusted.
// On failure the error wraps peernode.ErrTrustFailed and, when the cause was
// ctx ending (the handshake timeout), also ctx.Err(), so that callers can
// tell a timeout (errors.Is(err, context.DeadlineExceeded)) from a failure.
func (Ping) Run(ctx context.Context, s peernode.TrustSession) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	sent := make(chan error, 1)
	go func() { sent <- sendPings(ctx, s) }()

	err := receivePings(ctx, s)
	if err != nil {
		cancel() // stop a sender blocked on a peer that will not read
	}
	if sendErr := <-sent; err == nil {
		err = sendErr
	}
	return err
}

func sendPings(ctx context.Context, s peernode.TrustSession) error {
	body := []byte(pingBodyPrefix + s.LocalID())
	for step := uint8(1); step <= PingSteps; step++ {
		t := wire.Trust{Protocol: ProtocolPing, Step: step, Body: body}
		if err := s.Send(ctx, t); err != nil {
			return fmt.Errorf("%w: ping: sending step %d: %w", peernode.ErrTrustFailed, step, err)
		}
	}
	return nil
}

func receivePings(ctx context.Context, s peernode.TrustSession) error {
	want := []byte(pingBodyPrefix + s.Peer().ID())
	for step := uint8(1); step <= PingSteps; step++ {
		t, err := s.Receive(ctx)
		switch {
		case err != nil:
			return fmt.Errorf("%w: ping: waiting for step %d: %w", peernode.ErrTrustFailed, step, err)
		case t.Protocol != ProtocolPing:
			return fmt.Errorf("%w: ping: step %d: peer sent a packet of trust protocol %.64q", peernode.ErrTrustFailed, step, t.Protocol)
		case t.Step != step:
			return fmt.Errorf("%w: ping: got step %d, want %d", peernode.ErrTrustFailed, t.Step, step)
		case !bytes.Equal(t.Body, want):
			return fmt.Errorf("%w: ping: step %d: body %.80q, want %q", peernode.ErrTrustFailed, step, t.Body, want)
		}
	}
	return nil
}
