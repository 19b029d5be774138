package peernodetest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/peernodetest"
	"github.com/peermesh/peermesh/peernode/wire"
)

func TestTrustSessionPair(t *testing.T) {
	a, b := peernodetest.NewTrustSessionPair()
	if !a.Initiator() || b.Initiator() {
		t.Error("Initiator() wrong")
	}
	if a.LocalID() != peernodetest.InitiatorID || a.Peer().ID() != peernodetest.ResponderID ||
		b.LocalID() != peernodetest.ResponderID || b.Peer().ID() != peernodetest.InitiatorID {
		t.Error("IDs wrong")
	}
	if a.Peer().Direction() != peernode.Outbound || b.Peer().Direction() != peernode.Inbound {
		t.Error("directions wrong")
	}

	ctx := t.Context()
	body := []byte("hello")
	if err := a.Send(ctx, wire.Trust{Protocol: "p", Step: 1, Body: body}); err != nil {
		t.Fatal(err)
	}
	body[0] = 'j' // the session copied it
	got, err := b.Receive(ctx)
	if err != nil || got.Protocol != "p" || got.Step != 1 || string(got.Body) != "hello" {
		t.Fatalf("Receive = %+v, %v", got, err)
	}
	if s := a.Sent(); len(s) != 1 || string(s[0].Body) != "hello" {
		t.Errorf("Sent() = %+v", s)
	}

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := a.Receive(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Receive on an idle session = %v, want DeadlineExceeded", err)
	}

	// Queued packets survive Close; then both ends report it.
	if err := a.Send(ctx, wire.Trust{Protocol: "p", Step: 2}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b.Close() // idempotent
	if got, err := b.Receive(ctx); err != nil || got.Step != 2 {
		t.Errorf("Receive after Close = %+v, %v; want the queued packet", got, err)
	}
	if _, err := b.Receive(ctx); !errors.Is(err, peernode.ErrChannelClosed) {
		t.Errorf("Receive = %v, want ErrChannelClosed", err)
	}
	if err := a.Send(ctx, wire.Trust{}); !errors.Is(err, peernode.ErrChannelClosed) {
		t.Errorf("Send = %v, want ErrChannelClosed", err)
	}
}
