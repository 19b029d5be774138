package channel

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode/wire"
)

// choppyWriter is a directWriter that writes at most max bytes, as a socket
// with a nearly full buffer would.
type choppyWriter struct {
	w     directWriter
	max   int
	calls atomic.Int64
}

func (c *choppyWriter) tryWrite(b []byte) (int, error) {
	c.calls.Add(1)
	return c.w.tryWrite(b[:min(len(b), c.max)])
}

// TestDirectWrites checks the direct write of answers, cut at every length,
// with frames queued behind the cut: the peer must see every frame whole and
// in order, and the sender account for each exactly once.
func TestDirectWrites(t *testing.T) {
	directQuietTime = 0
	t.Cleanup(func() { directQuietTime = 5 * time.Microsecond })

	ra, rb := newRecorder(), newRecorder()
	var sentHook atomic.Int64
	sent := make(chan int64, 1<<12)
	ha := ra.hooks()
	ha.OnFrameSent = func(wire.Type, int) { sent <- sentHook.Add(1) }
	// waitSent waits until OnFrameSent has reported n frames in all.
	waitSent := func(n int64) {
		t.Helper()
		for got := sentHook.Load(); got < n; {
			select {
			case got = <-sent:
			case <-time.After(waitTimeout):
				t.Fatalf("OnFrameSent reported %d frames, want %d", sentHook.Load(), n)
			}
		}
	}
	hb := rb.hooks()
	hb.OnPacket = func(ctx context.Context, c *PeerChannel, p wire.Packet) {
		rb.packets <- p
		if m, ok := p.(wire.Message); ok && strings.HasPrefix(m.Text, "last:") {
			if err := SendPacket(ctx, c, wire.Message{Text: "pong"}); err != nil { // answered from the reader
				t.Error(err)
			}
		}
	}
	a, _ := pair(t, testConfig("a"), ha, testConfig("b"), hb)
	ra.waitOpen(t)
	rb.waitOpen(t)
	// Let the writer finish with the Hello, so that a is idle.
	if err := a.Send(context.Background(), wire.Message{Text: "last: first"}); err != nil {
		t.Fatal(err)
	}
	rb.nextPacket(t)
	if p := ra.nextPacket(t); p != (wire.Message{Text: "pong"}) {
		t.Fatalf("got %#v", p)
	}
	waitSent(2) // the Hello and the first ping

	real := a.direct
	if real == nil {
		t.Skip("no direct writes on this platform")
	}
	chop := &choppyWriter{w: real}
	sentBefore := a.PacketsSent()
	hookBefore := sentHook.Load()
	frames, direct := 0, 0
	for cut := 1; cut <= 40; cut++ {
		a.qmu.Lock()
		chop.max = cut
		a.direct = chop
		a.qmu.Unlock()
		calls := chop.calls.Load()
		// The first frame is written directly (a frame arrived since the
		// last direct write) and cut; the burst queues behind it. b
		// answers the last frame only, so nothing arrives in between.
		burst := cut % 4
		texts := []string{"ping " + strings.Repeat("x", cut)}
		for i := range burst {
			texts = append(texts, "burst "+strings.Repeat("y", i))
		}
		texts[len(texts)-1] = "last:" + texts[len(texts)-1]
		for i, text := range texts {
			if err := a.Send(context.Background(), wire.Message{Text: text}); err != nil {
				t.Fatal(err)
			}
			if i == 0 && chop.calls.Load() > calls {
				direct++
			}
		}
		frames += len(texts)
		for _, text := range texts {
			if p := rb.nextPacket(t); p != (wire.Message{Text: text}) {
				t.Fatalf("cut %d: got %#v, want %q", cut, p, text)
			}
		}
		if p := ra.nextPacket(t); p != (wire.Message{Text: "pong"}) { // a reads, so the next write may be direct
			t.Fatalf("cut %d: got %#v", cut, p)
		}
		waitSent(hookBefore + int64(frames)) // the writer is done with the burst
	}
	if direct != 40 {
		t.Errorf("only %d of 40 answers were written directly", direct)
	}
	// Every frame was counted once, by whichever goroutine completed it.
	waitSent(hookBefore + int64(frames))
	if got := a.PacketsSent() - sentBefore; got != uint64(frames) {
		t.Errorf("PacketsSent grew by %d, want %d", got, frames)
	}
	if got := sentHook.Load() - hookBefore; got != int64(frames) {
		t.Errorf("OnFrameSent reported %d frames, want %d", got, frames)
	}
}
