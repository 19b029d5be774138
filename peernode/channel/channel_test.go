package channel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

func TestHandshakeOpensBothSides(t *testing.T) {
	ra, rb := newRecorder(), newRecorder()
	var gotHello wire.Hello
	hb := rb.hooks()
	hb.OnHello = func(c *PeerChannel, h wire.Hello) (bool, peernode.CloseReason) {
		gotHello = h
		if c.Peer().ID() != "a" {
			t.Errorf("OnHello: peer ID %q, want it recorded before the hook", c.Peer().ID())
		}
		return true, peernode.CloseReason{}
	}
	a, b := pair(t, testConfig("a"), ra.hooks(), testConfig("b"), hb)
	ra.waitOpen(t)
	rb.waitOpen(t)

	if a.State() != peernode.StateOpen || b.State() != peernode.StateOpen {
		t.Fatalf("states %v, %v, want open", a.State(), b.State())
	}
	if !reflect.DeepEqual(gotHello, hello("a")) {
		t.Errorf("OnHello got %+v, want %+v", gotHello, hello("a"))
	}
	if id, la := a.Peer().ID(), a.Peer().ListenAddr(); id != "b" || la != "127.0.0.1:7946" {
		t.Errorf("a's peer: %q %q", id, la)
	}
	if b.RemoteHello().MeshName != "test" {
		t.Errorf("RemoteHello: %+v", b.RemoteHello())
	}
	if a.Peer().Direction() != peernode.Outbound || b.Peer().Direction() != peernode.Inbound {
		t.Error("directions")
	}
	if got := ra.transitionLog(); !reflect.DeepEqual(got, []string{"handshaking>open"}) {
		t.Errorf("transitions %v", got)
	}
}

func TestStateHooksInOrder(t *testing.T) {
	ra, rb := newRecorder(), newRecorder()
	a, _ := pair(t, testConfig("a"), ra.hooks(), testConfig("b"), rb.hooks())
	ra.waitOpen(t)
	a.Close(peernode.CloseReason{Label: peernode.CloseLocal, Code: wire.DisconnectShutdown})
	if a.State() != peernode.StateClosed {
		t.Fatalf("state after Close: %v", a.State())
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("Done not closed after Close returned")
	}
	ra.waitClosed(t)
	a.wait(t)
	want := []string{"handshaking>open", "open>closing", "closing>closed", "closed:local"}
	if got := ra.transitionLog(); !reflect.DeepEqual(got, want) {
		t.Errorf("transitions %v, want %v", got, want)
	}
	// Close is idempotent: the first reason stays.
	a.Close(peernode.CloseReason{Label: peernode.ClosePolicy})
	if got := a.CloseReason().Label; got != peernode.CloseLocal {
		t.Errorf("reason after a second Close: %q", got)
	}
	// The peer saw our Disconnect.
	if got := rb.waitClosed(t); got.Label != peernode.CloseRemote || got.Code != wire.DisconnectShutdown || !got.Remote {
		t.Errorf("peer's reason %+v", got)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	ca, cb := tcpPair(t)
	rec := newRecorder()
	cfg := testConfig("a")
	cfg.HandshakeTimeout = 50 * time.Millisecond
	c := start(t, New(ca, peernode.NewGenericPeer(ca, peernode.Outbound), cfg, rec.hooks()))

	raw := newRawPeer(t, cb) // says nothing
	raw.expectHello()
	d := raw.expectDisconnect()
	if d.Code != wire.DisconnectIdleTimeout {
		t.Errorf("Disconnect code %v", d.Code)
	}
	reason := rec.waitClosed(t)
	if reason.Label != peernode.CloseHandshake || reason.Remote {
		t.Errorf("reason %+v, want handshake_failed", reason)
	}
	var ne net.Error
	if err := c.wait(t); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Run: %v, want a timeout", err)
	}
	if got := rec.transitionLog(); !reflect.DeepEqual(got, []string{"handshaking>closing", "closing>closed", "closed:handshake_failed"}) {
		t.Errorf("transitions %v", got)
	}
}

func TestHandshakeWrongFirstFrame(t *testing.T) {
	ca, cb := tcpPair(t)
	rec := newRecorder()
	start(t, New(ca, peernode.NewGenericPeer(ca, peernode.Outbound), testConfig("a"), rec.hooks()))
	raw := newRawPeer(t, cb)
	raw.send(wire.Message{Text: "hi, no hello"})
	raw.expectHello()
	if d := raw.expectDisconnect(); d.Code != wire.DisconnectProtocolError || !strings.Contains(d.Reason, "want Hello") {
		t.Errorf("Disconnect %+v", d)
	}
	if r := rec.waitClosed(t); r.Label != peernode.CloseProtocolError {
		t.Errorf("reason %+v", r)
	}
	select {
	case p := <-rec.packets:
		t.Errorf("packet %v delivered before the handshake", p)
	default:
	}
}

func TestHandshakeRejected(t *testing.T) {
	ra, rb := newRecorder(), newRecorder()
	hb := rb.hooks()
	hb.OnHello = func(c *PeerChannel, h wire.Hello) (bool, peernode.CloseReason) {
		return false, peernode.CloseReason{Code: wire.DisconnectDuplicate, Label: peernode.CloseDuplicate, Text: "already connected to " + h.NodeID}
	}
	_, b := pair(t, testConfig("a"), ra.hooks(), testConfig("b"), hb)
	if r := rb.waitClosed(t); r.Label != peernode.CloseDuplicate {
		t.Errorf("rejecting side: %+v", r)
	}
	r := ra.waitClosed(t)
	if r.Label != peernode.CloseRemote || r.Code != wire.DisconnectDuplicate || !strings.Contains(r.Text, "already connected to a") {
		t.Errorf("rejected side: %+v", r)
	}
	if err := b.wait(t); err != nil {
		t.Errorf("Run of the rejecting side: %v", err)
	}
	if b.Peer().ID() != "a" {
		t.Errorf("identity not recorded on rejection: %q", b.Peer().ID())
	}
	// The rejected side opened (its peer's Hello came first) or not,
	// depending on timing; it never saw packets.
}

func TestEveryPacketType(t *testing.T) {
	ra, rb := newRecorder(), newRecorder()
	a, _ := pair(t, testConfig("a"), ra.hooks(), testConfig("b"), rb.hooks())
	ctx := context.Background()

	sent := []wire.Packet{
		wire.PeerGroup{Peers: []wire.PeerInfo{{NodeID: "c", Addr: "10.0.0.3:7946"}, {NodeID: "d", Addr: "[::1]:1"}}},
		wire.Data{Format: wire.DataFormatFile, Body: []byte{0, 1, 2, 3}},
		wire.Message{Text: "héllo"},
		wire.Raw{T: 0x80, Payload: []byte("application")},
		wire.Raw{T: 0x30, Payload: []byte("reserved type from a newer peer")},
		wire.Raw{T: 0xff}, // empty payload
	}
	for _, p := range sent {
		if err := a.Send(ctx, p); err != nil {
			t.Fatalf("Send(%v): %v", p.Type(), err)
		}
	}
	if err := a.SendRaw(ctx, 0x81, []byte{9, 9}); err != nil {
		t.Fatal(err)
	}
	if err := SendPacket(ctx, a.PeerChannel, wire.Data{Format: wire.DataFormatTask, Body: []byte("task")}); err != nil {
		t.Fatal(err)
	}
	if err := TrySendPacket(a.PeerChannel, wire.Message{Text: "try"}); err != nil {
		t.Fatal(err)
	}
	want := append(sent,
		wire.Raw{T: 0x81, Payload: []byte{9, 9}},
		wire.Data{Format: wire.DataFormatTask, Body: []byte("task")},
		wire.Message{Text: "try"},
	)
	want[5] = wire.Raw{T: 0xff, Payload: []byte{}}
	for i, w := range want {
		got := rb.nextPacket(t)
		if !reflect.DeepEqual(got, w) {
			t.Errorf("packet %d: got %#v, want %#v", i, got, w)
		}
	}
}

func TestSplitAndJoinedFrames(t *testing.T) {
	ca, cb := tcpPair(t)
	rec := newRecorder()
	start(t, New(ca, peernode.NewGenericPeer(ca, peernode.Outbound), testConfig("a"), rec.hooks()))
	raw := newRawPeer(t, cb)

	// Hello and three packets joined in one write.
	var joined []byte
	joined = wire.AppendFrame(joined, hello("raw"))
	for i := range 3 {
		joined = wire.AppendFrame(joined, wire.Message{Text: fmt.Sprint("joined ", i)})
	}
	// Then a large frame and a small one, cut at every possible place
	// across several writes, the last piece joined with a whole frame.
	big := wire.AppendFrame(nil, wire.Data{Format: wire.DataFormatMisc, Body: bytes.Repeat([]byte("x"), 100_000)})
	split := wire.AppendFrame(nil, wire.Message{Text: "split"})
	raw.write(joined)
	raw.write(big[:3]) // inside the header
	raw.write(big[3:9])
	raw.write(big[9:50_000])
	raw.write(append(big[50_000:], split[:1]...))
	for i := 1; i < len(split); i++ { // one byte per write
		raw.write(split[i : i+1])
	}
	raw.write(wire.AppendFrame(nil, wire.Message{Text: "last"}))

	for i := range 3 {
		if p := rec.nextPacket(t); p != (wire.Message{Text: fmt.Sprint("joined ", i)}) {
			t.Fatalf("got %#v", p)
		}
	}
	if p, ok := rec.nextPacket(t).(wire.Data); !ok || len(p.Body) != 100_000 {
		t.Fatalf("big frame: %T", p)
	}
	for _, want := range []string{"split", "last"} {
		if p := rec.nextPacket(t); p != (wire.Message{Text: want}) {
			t.Fatalf("got %#v, want %q", p, want)
		}
	}
}

// stalledPeer opens a channel whose peer sends its Hello and then never
// reads, with small socket buffers so that they fill fast.
func stalledPeer(t *testing.T, cfg Config, hooks Hooks) (*running, *rawPeer) {
	t.Helper()
	ca, cb := tcpPair(t)
	_ = ca.(*net.TCPConn).SetWriteBuffer(4096)
	_ = cb.(*net.TCPConn).SetReadBuffer(4096)
	c := start(t, New(ca, peernode.NewGenericPeer(ca, peernode.Outbound), cfg, hooks))
	raw := newRawPeer(t, cb)
	raw.send(hello("stalled"))
	return c, raw
}

// fillQueue TrySends until the queue is full, which must happen once the
// socket buffers are full, and returns how many frames it queued.
func fillQueue(t *testing.T, c *PeerChannel, p wire.Packet) int {
	t.Helper()
	for n := 0; n < 1_000_000; n++ {
		switch err := c.TrySend(p); {
		case errors.Is(err, peernode.ErrQueueFull):
			return n
		case err != nil:
			t.Fatal(err)
		}
	}
	t.Fatal("the queue never filled")
	return 0
}

// notifySendBlocked installs testHookSendBlocked for the test and returns
// a channel that receives when a sender starts waiting for room.
func notifySendBlocked(t *testing.T) <-chan struct{} {
	blocked := make(chan struct{}, 1)
	testHookSendBlocked = func() {
		select {
		case blocked <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { testHookSendBlocked = nil })
	return blocked
}

func TestBackpressure(t *testing.T) {
	cfg := testConfig("a")
	cfg.SendQueueLength = 4
	rec := newRecorder()
	c, raw := stalledPeer(t, cfg, rec.hooks())
	rec.waitOpen(t)
	blocked := notifySendBlocked(t)
	// Small enough for the tiny socket buffers to drain the queue quickly
	// once the peer reads.
	big := wire.Data{Format: wire.DataFormatMisc, Body: make([]byte, 8<<10)}

	// TrySend fails at once when the queue is full.
	fillQueue(t, c.PeerChannel, big)
	if c.QueueLen() < cfg.SendQueueLength {
		t.Errorf("QueueLen %d with a full queue", c.QueueLen())
	}

	// Send blocks while the queue is full, until its context ends. (The
	// writer may still free room for a few frames while the socket buffers
	// fill up.)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var err error
	for err == nil {
		err = c.Send(ctx, big)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send on a full queue: %v, want DeadlineExceeded", err)
	}
	select {
	case <-blocked:
	default:
		t.Fatal("Send returned without blocking")
	}

	// A blocked Send succeeds once the peer reads again.
	var reading atomic.Bool
	errc := make(chan error, 1)
	go func() {
		for {
			err := c.Send(context.Background(), big)
			if err != nil || reading.Load() {
				errc <- err
				return
			}
		}
	}()
	select {
	case <-blocked:
	case <-time.After(waitTimeout):
		t.Fatal("Send never blocked")
	}
	reading.Store(true)
	go func() {
		_, _ = io.Copy(io.Discard, raw.conn) // until the channel's close half-closes it
		raw.conn.Close()
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("blocked Send: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("blocked Send never returned")
	}
}

func TestBlockedSendFailsWhenChannelCloses(t *testing.T) {
	cfg := testConfig("a")
	cfg.SendQueueLength = 2
	cfg.DrainTimeout = 50 * time.Millisecond // the peer never reads: the drain times out
	rec := newRecorder()
	c, _ := stalledPeer(t, cfg, rec.hooks())
	rec.waitOpen(t)
	big := wire.Data{Format: wire.DataFormatMisc, Body: make([]byte, 64<<10)}
	blocked := notifySendBlocked(t)

	// Send until one blocks: the writer may still free room for a few.
	errc := make(chan error, 1)
	go func() {
		for {
			if err := c.Send(context.Background(), big); err != nil {
				errc <- err
				return
			}
		}
	}()
	select {
	case <-blocked:
	case <-time.After(waitTimeout):
		t.Fatal("Send never blocked")
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		c.Close(peernode.CloseReason{})
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, peernode.ErrChannelClosed) {
			t.Errorf("blocked Send: %v, want ErrChannelClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("blocked Send never returned")
	}
	select {
	case <-closed: // Close returned although the writer was stuck: the drain deadline
	case <-time.After(waitTimeout):
		t.Fatal("Close never returned")
	}
	if err := c.TrySend(big); !errors.Is(err, peernode.ErrChannelClosed) {
		t.Errorf("TrySend after Close: %v", err)
	}
}

func TestGracefulCloseDrainsQueue(t *testing.T) {
	const n = 20_000
	cfgA := testConfig("a")
	cfgA.SendQueueLength = n
	ra, rb := newRecorder(), newRecorder()
	var got atomic.Int64
	var outOfOrder atomic.Int64
	hb := rb.hooks()
	hb.OnPacket = func(ctx context.Context, c *PeerChannel, p wire.Packet) {
		if p.(wire.Message).Text != fmt.Sprint(got.Load()) {
			outOfOrder.Add(1)
		}
		got.Add(1)
	}
	a, _ := pair(t, cfgA, ra.hooks(), testConfig("b"), hb)
	ra.waitOpen(t)

	for i := range n {
		if err := TrySendPacket(a.PeerChannel, wire.Message{Text: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	queued := a.QueueLen()
	a.Close(peernode.CloseReason{Label: peernode.CloseLocal, Code: wire.DisconnectShutdown, Text: "bye now"})

	r := rb.waitClosed(t)
	if got.Load() != n || outOfOrder.Load() != 0 {
		t.Errorf("peer got %d packets (%d out of order) before the close, want %d (%d were queued at Close)", got.Load(), outOfOrder.Load(), n, queued)
	}
	if r.Label != peernode.CloseRemote || r.Code != wire.DisconnectShutdown || r.Text != "local: bye now" {
		t.Errorf("peer's close reason %+v", r)
	}
	if a.PacketsSent() != n+2 { // Hello, the messages, Disconnect
		t.Errorf("PacketsSent %d, want %d", a.PacketsSent(), n+2)
	}
	t.Logf("%d of %d frames were queued when Close was called", queued, n)
}

func TestCloseFromHandler(t *testing.T) {
	cfgB := testConfig("b")
	cfgB.DrainTimeout = time.Minute // a deadlock would show as a one-minute close
	ra, rb := newRecorder(), newRecorder()
	closeReturned := make(chan struct{})
	rb.onPacket = func(ctx context.Context, c *PeerChannel, p wire.Packet) {
		c.Close(peernode.CloseReason{Label: peernode.ClosePolicy, Code: wire.DisconnectPolicyDenied, Text: "no more"})
		if c.State() != peernode.StateClosed {
			t.Errorf("state after Close in a handler: %v", c.State())
		}
		if ctx.Err() == nil {
			t.Error("handler context alive after Close")
		}
		close(closeReturned)
	}
	a, b := pair(t, testConfig("a"), ra.hooks(), cfgB, rb.hooks())
	if err := a.Send(context.Background(), wire.Message{Text: "please close"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closeReturned:
	case <-time.After(waitTimeout):
		t.Fatal("Close called from OnPacket did not return")
	}
	if r := ra.waitClosed(t); r.Code != wire.DisconnectPolicyDenied {
		t.Errorf("peer saw %+v", r)
	}
	if err := b.wait(t); err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestMalformedInputClosesOnlyThatChannel(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*Config)
		garbage []byte
	}{
		{"bad version", nil, []byte{2, byte(wire.TypeMessage), 0, 0, 0, 0, 0, 0}},
		{"type zero", nil, []byte{1, 0, 0, 0, 0, 0, 0, 0}},
		{"frame too large", func(c *Config) { c.MaxFrameSize = 1024 }, wire.AppendFrame(nil, wire.Message{Text: strings.Repeat("x", 1025)})},
		{"malformed ping", nil, wire.AppendRawFrame(nil, wire.TypePing, make([]byte, 15))},
		{"malformed message", nil, wire.AppendRawFrame(nil, wire.TypeMessage, []byte{0xff})},
		{"second hello", nil, wire.AppendFrame(nil, hello("again"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A healthy channel beside the broken one.
			ra, rb := newRecorder(), newRecorder()
			healthy, _ := pair(t, testConfig("a"), ra.hooks(), testConfig("b"), rb.hooks())

			ca, cb := tcpPair(t)
			cfg := testConfig("victim")
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			rec := newRecorder()
			start(t, New(ca, peernode.NewGenericPeer(ca, peernode.Inbound), cfg, rec.hooks()))
			raw := newRawPeer(t, cb)
			raw.send(hello("raw"))
			raw.expectHello()
			rec.waitOpen(t)
			raw.write(tc.garbage)
			if d := raw.expectDisconnect(); d.Code != wire.DisconnectProtocolError {
				t.Errorf("Disconnect %+v", d)
			}
			if r := rec.waitClosed(t); r.Label != peernode.CloseProtocolError || r.Code != wire.DisconnectProtocolError {
				t.Errorf("reason %+v", r)
			}

			if err := healthy.Send(context.Background(), wire.Message{Text: "still here"}); err != nil {
				t.Fatal(err)
			}
			if p := rb.nextPacket(t); p != (wire.Message{Text: "still here"}) {
				t.Errorf("healthy channel got %#v", p)
			}
		})
	}
}

func TestKeepaliveMeasuresRTT(t *testing.T) {
	cfg := testConfig("a")
	cfg.KeepaliveInterval = 20 * time.Millisecond
	cfg.IdleTimeout = 200 * time.Millisecond
	cfgB := testConfig("b")
	cfgB.IdleTimeout = 200 * time.Millisecond // kept alive by a's pings only
	ra, rb := newRecorder(), newRecorder()
	a, b := pair(t, cfg, ra.hooks(), cfgB, rb.hooks())
	// Twenty measurements take 400 ms, twice the idle timeout of both
	// sides: the pings and pongs keep the channel open.
	for range 20 {
		select {
		case d := <-ra.rtts:
			if d <= 0 || d > time.Second {
				t.Fatalf("RTT %v", d)
			}
		case <-time.After(waitTimeout):
			t.Fatal("no RTT measured")
		}
	}
	if a.RTT() <= 0 {
		t.Errorf("RTT() = %v", a.RTT())
	}
	if a.State() != peernode.StateOpen || b.State() != peernode.StateOpen {
		t.Errorf("states %v %v: keepalive did not keep the channel open", a.State(), b.State())
	}
	if b.RTT() != 0 {
		t.Errorf("b sends no pings but measured %v", b.RTT())
	}
}

func TestIdleTimeout(t *testing.T) {
	ca, cb := tcpPair(t)
	cfg := testConfig("a")
	cfg.IdleTimeout = 50 * time.Millisecond
	rec := newRecorder()
	c := start(t, New(ca, peernode.NewGenericPeer(ca, peernode.Outbound), cfg, rec.hooks()))
	raw := newRawPeer(t, cb)
	raw.send(hello("quiet"))
	raw.expectHello()
	if d := raw.expectDisconnect(); d.Code != wire.DisconnectIdleTimeout {
		t.Errorf("Disconnect %+v", d)
	}
	if r := rec.waitClosed(t); r.Label != peernode.CloseIdleTimeout {
		t.Errorf("reason %+v", r)
	}
	if since := time.Since(c.Peer().LastSeen()); since < cfg.IdleTimeout {
		t.Errorf("closed %v after the last frame, before the idle timeout", since)
	}
}

func TestShutdownOnContextEnd(t *testing.T) {
	ca, cb := tcpPair(t)
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	c := New(ca, peernode.NewGenericPeer(ca, peernode.Outbound), testConfig("a"), rec.hooks())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	raw := newRawPeer(t, cb)
	raw.send(hello("raw"))
	raw.expectHello()
	rec.waitOpen(t)
	cancel()
	if d := raw.expectDisconnect(); d.Code != wire.DisconnectShutdown {
		t.Errorf("Disconnect %+v", d)
	}
	if err := <-errc; err != nil {
		t.Errorf("Run: %v", err)
	}
	if r := c.CloseReason(); r.Label != peernode.CloseShutdown {
		t.Errorf("reason %+v", r)
	}
}

func TestCloseBeforeRun(t *testing.T) {
	ca, cb := tcpPair(t)
	rec := newRecorder()
	c := New(ca, peernode.NewGenericPeer(ca, peernode.Inbound), testConfig("a"), rec.hooks())
	raw := newRawPeer(t, cb)
	go c.Close(peernode.CloseReason{Label: peernode.CloseCapacity, Code: wire.DisconnectCapacityExceeded})
	raw.expectHello()
	if d := raw.expectDisconnect(); d.Code != wire.DisconnectCapacityExceeded {
		t.Errorf("Disconnect %+v", d)
	}
	rec.waitClosed(t)
	if err := c.Run(context.Background()); err != nil {
		t.Errorf("Run after Close: %v", err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrAlreadyRun) {
		t.Errorf("second Run: %v", err)
	}
	if got := rec.transitionLog(); !reflect.DeepEqual(got, []string{"handshaking>closing", "closing>closed", "closed:capacity"}) {
		t.Errorf("transitions %v", got)
	}
}

func TestRemoteConnectionLost(t *testing.T) {
	ca, cb := tcpPair(t)
	rec := newRecorder()
	c := start(t, New(ca, peernode.NewGenericPeer(ca, peernode.Outbound), testConfig("a"), rec.hooks()))
	raw := newRawPeer(t, cb)
	raw.send(hello("raw"))
	raw.expectHello() // unread input would make our close a reset
	rec.waitOpen(t)
	cb.Close()
	r := rec.waitClosed(t)
	if r.Label != peernode.CloseConnectionLost || !r.Remote {
		t.Errorf("reason %+v", r)
	}
	if err := c.wait(t); !errors.Is(err, io.EOF) {
		t.Errorf("Run: %v, want io.EOF", err)
	}
}

// fakeTrust is a tiny trust protocol: the initiator sends its secret, the
// responder checks it and answers "ok".
type fakeTrust struct{ secret string }

func (f fakeTrust) Name() string { return "fake" }

func (f fakeTrust) Run(ctx context.Context, s peernode.TrustSession) error {
	if s.Initiator() {
		if err := s.Send(ctx, wire.Trust{Protocol: "fake", Step: 0, Body: []byte(f.secret)}); err != nil {
			return err
		}
		m, err := s.Receive(ctx)
		if err != nil {
			return err
		}
		if string(m.Body) != "ok" {
			return peernode.ErrTrustFailed
		}
		return nil
	}
	m, err := s.Receive(ctx)
	if err != nil {
		return err
	}
	if string(m.Body) != f.secret || s.Peer().ID() == "" || s.LocalID() != "b" {
		return fmt.Errorf("%w: wrong secret", peernode.ErrTrustFailed)
	}
	return s.Send(ctx, wire.Trust{Protocol: "fake", Step: 1, Body: []byte("ok")})
}

func TestTrustProtocol(t *testing.T) {
	trustCfg := func(id, secret string) Config {
		c := testConfig(id)
		c.Trust, c.RunTrust = fakeTrust{secret}, true
		return c
	}
	t.Run("success", func(t *testing.T) {
		ra, rb := newRecorder(), newRecorder()
		a, b := pair(t, trustCfg("a", "s3cret"), ra.hooks(), trustCfg("b", "s3cret"), rb.hooks())
		for _, r := range []*recorder{ra, rb} {
			select {
			case <-r.trusted:
			case <-time.After(waitTimeout):
				t.Fatal("not trusted")
			}
		}
		if !a.Peer().Trusted() || !b.Peer().Trusted() {
			t.Error("peers not marked trusted")
		}
	})
	t.Run("failure", func(t *testing.T) {
		ra, rb := newRecorder(), newRecorder()
		a, b := pair(t, trustCfg("a", "guess"), ra.hooks(), trustCfg("b", "s3cret"), rb.hooks())
		if r := rb.waitClosed(t); r.Label != peernode.CloseTrustFailed || r.Code != wire.DisconnectTrustFailed {
			t.Errorf("responder: %+v", r)
		}
		if r := ra.waitClosed(t); r.Label != peernode.CloseRemote || r.Code != wire.DisconnectTrustFailed {
			t.Errorf("initiator: %+v", r)
		}
		if err := b.wait(t); !errors.Is(err, peernode.ErrTrustFailed) {
			t.Errorf("Run: %v", err)
		}
		if a.Peer().Trusted() || b.Peer().Trusted() {
			t.Error("trusted after a failure")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		cfg := trustCfg("a", "x")
		cfg.HandshakeTimeout = 50 * time.Millisecond
		ra, rb := newRecorder(), newRecorder()
		pair(t, cfg, ra.hooks(), testConfig("b"), rb.hooks()) // b runs no protocol
		if r := ra.waitClosed(t); r.Label != peernode.CloseTrustFailed {
			t.Errorf("initiator: %+v", r)
		}
		// b dropped the Trust packet nobody expected.
		rb.waitDrop(t, DropUnexpectedTrust)
	})
}

func TestAdmitFalseDrops(t *testing.T) {
	ra, rb := newRecorder(), newRecorder()
	rb.admit = func(t wire.Type) bool { return t != wire.TypeMessage && t != wire.TypePing }
	cfgA := testConfig("a")
	cfgA.KeepaliveInterval = 10 * time.Millisecond
	a, _ := pair(t, cfgA, ra.hooks(), testConfig("b"), rb.hooks())
	ctx := context.Background()
	if err := a.Send(ctx, wire.Message{Text: "dropped"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(ctx, wire.Data{Format: wire.DataFormatMisc, Body: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	if p := rb.nextPacket(t); !reflect.DeepEqual(p, wire.Data{Format: wire.DataFormatMisc, Body: []byte("kept")}) {
		t.Errorf("got %#v, want the Data: the Message was not dropped", p)
	}
	rb.waitAdmit(t, wire.TypeMessage)
	// Pings refused by Admit get no Pong, so a measures no RTT.
	for range 3 {
		rb.waitAdmit(t, wire.TypePing)
	}
	if a.RTT() != 0 {
		t.Errorf("RTT %v measured through refused Pings", a.RTT())
	}
	select {
	case p := <-rb.packets:
		t.Errorf("unexpected packet %#v", p)
	default:
	}
}

func TestSendRefusesBadPackets(t *testing.T) {
	cfg := testConfig("a")
	cfg.MaxFrameSize = 100
	ca, _ := tcpPair(t)
	c := New(ca, peernode.NewGenericPeer(ca, peernode.Outbound), cfg, Hooks{})
	defer c.Close(peernode.CloseReason{})
	ctx := context.Background()
	if err := c.SendRaw(ctx, 0x80, make([]byte, 101)); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Errorf("SendRaw too large: %v", err)
	}
	if err := c.Send(ctx, wire.Data{Format: wire.DataFormatMisc, Body: make([]byte, 100)}); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Errorf("Send too large: %v", err)
	}
	if err := c.Send(ctx, wire.Message{Text: "\xff"}); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("Send invalid UTF-8: %v", err)
	}
	if err := c.SendRaw(ctx, 0, nil); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("SendRaw type 0: %v", err)
	}
	if err := c.Send(ctx, wire.Data{}); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("Send Data format 0: %v", err)
	}
	if got := c.QueueLen(); got != 1 { // the Hello only
		t.Errorf("QueueLen %d after refused sends, want 1", got)
	}
}

func TestSendPacketDoesNotAllocate(t *testing.T) {
	ca, _ := tcpPair(t)
	cfg := testConfig("a")
	cfg.SendQueueLength = 1 << 20
	cfg.SendQueueBytes = 1 << 30
	cfg.DrainTimeout = 10 * time.Millisecond // nobody reads what Close writes
	c := New(ca, peernode.NewGenericPeer(ca, peernode.Outbound), cfg, Hooks{})
	defer c.Close(peernode.CloseReason{})
	body := make([]byte, 64)
	text := strings.Repeat("m", 64)
	// Not running: frames accumulate, and the buffer's growth is amortised.
	if n := testing.AllocsPerRun(10_000, func() {
		_ = TrySendPacket(c, wire.Data{Format: wire.DataFormatMisc, Body: body})
		_ = TrySendPacket(c, wire.Message{Text: text})
		_ = c.SendRaw(context.Background(), 0x80, body)
	}); n != 0 {
		t.Errorf("%v allocations per send", n)
	}
}

func TestStats(t *testing.T) {
	ra, rb := newRecorder(), newRecorder()
	var sentFrames, sentBytes atomic.Int64
	allSent := make(chan struct{})
	ha := ra.hooks()
	ha.OnFrameSent = func(t wire.Type, n int) {
		sentBytes.Add(int64(n))
		if sentFrames.Add(1) == 11 {
			close(allSent)
		}
	}
	var recvFrames atomic.Int64
	hb := rb.hooks()
	hb.OnFrameReceived = func(t wire.Type, n int) { recvFrames.Add(1) }
	a, b := pair(t, testConfig("a"), ha, testConfig("b"), hb)
	for range 10 {
		if err := a.Send(context.Background(), wire.Message{Text: "0123456789"}); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		rb.nextPacket(t)
	}
	select { // counters are updated before OnFrameSent
	case <-allSent:
	case <-time.After(waitTimeout):
		t.Fatal("OnFrameSent not called for every frame")
	}
	// Hello + 10 messages of 8 + 10 bytes.
	wantBytes := uint64(len(wire.AppendFrame(nil, hello("a"))) + 10*18)
	if a.PacketsSent() != 11 || a.BytesSent() != wantBytes {
		t.Errorf("sent %d frames, %d bytes, want 11, %d", a.PacketsSent(), a.BytesSent(), wantBytes)
	}
	if sentFrames.Load() != 11 || uint64(sentBytes.Load()) != wantBytes {
		t.Errorf("OnFrameSent: %d frames, %d bytes", sentFrames.Load(), sentBytes.Load())
	}
	if b.PacketsReceived() != 11 || b.BytesReceived() != wantBytes || recvFrames.Load() != 11 {
		t.Errorf("received %d frames (hook: %d), %d bytes", b.PacketsReceived(), recvFrames.Load(), b.BytesReceived())
	}
	if b.Peer().LastSeen().Before(b.Peer().FirstSeen()) {
		t.Error("LastSeen not touched")
	}
}

// TestConcurrentSendAndClose hammers a channel with senders of every kind
// while several goroutines close it: every call must return nil,
// ErrQueueFull or ErrChannelClosed, every accepted packet must arrive, and
// the race detector and goleak must stay quiet.
func TestConcurrentSendAndClose(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			cfg := testConfig("a")
			cfg.SendQueueLength = 64
			cfg.KeepaliveInterval = time.Millisecond
			ra, rb := newRecorder(), newRecorder()
			var received atomic.Int64
			hb := rb.hooks()
			hb.OnPacket = func(ctx context.Context, c *PeerChannel, p wire.Packet) { received.Add(1) }
			a, _ := pair(t, cfg, ra.hooks(), testConfig("b"), hb)

			var sent atomic.Int64
			closeNow := make(chan struct{})
			var once sync.Once
			ctx := context.Background()
			var wg sync.WaitGroup
			for g := range 16 {
				wg.Go(func() {
					for i := 0; ; i++ {
						var err error
						switch (g + i) % 4 {
						case 0:
							err = a.Send(ctx, wire.Message{Text: "m"})
						case 1:
							err = a.TrySend(wire.Data{Format: wire.DataFormatMisc, Body: []byte{1}})
						case 2:
							err = SendPacket(ctx, a.PeerChannel, wire.Message{Text: "p"})
						case 3:
							err = a.SendRaw(ctx, 0x90, []byte{byte(i)})
						}
						switch {
						case err == nil:
							if sent.Add(1) == 2000 {
								once.Do(func() { close(closeNow) })
							}
						case errors.Is(err, peernode.ErrQueueFull):
						case errors.Is(err, peernode.ErrChannelClosed):
							return
						default:
							t.Errorf("send: %v", err)
							return
						}
					}
				})
			}
			for range 4 { // concurrent Closes all wait for the one close
				wg.Go(func() {
					<-closeNow
					a.Close(peernode.CloseReason{Label: peernode.CloseShutdown})
					if a.State() != peernode.StateClosed {
						t.Errorf("state %v after Close", a.State())
					}
				})
			}
			wg.Wait()
			rb.waitClosed(t)
			a.wait(t)
			if s, r := sent.Load(), received.Load(); r != s {
				t.Errorf("%d packets accepted by Send, %d delivered", s, r)
			}
		})
	}
}
