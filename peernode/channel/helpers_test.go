package channel

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait of the tests: a failure, not a hang.
const waitTimeout = 10 * time.Second

func hello(id string) wire.Hello {
	return wire.Hello{ProtocolVersion: wire.ProtocolVersion, NodeID: id, ListenAddr: "127.0.0.1:7946", MeshName: "test"}
}

// testConfig is a config with short timeouts and no keepalive or idle
// timeout, which tests enable when they need them.
func testConfig(id string) Config {
	return Config{Hello: hello(id), HandshakeTimeout: 5 * time.Second, DrainTimeout: 5 * time.Second}
}

// tcpPair returns both ends of a loopback TCP connection: the dialer's and
// the listener's.
func tcpPair(t testing.TB) (dialed, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	dialed, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { dialed.Close(); r.c.Close() })
	return dialed, r.c
}

// running is a channel whose Run goroutine the test owns.
type running struct {
	*PeerChannel
	errc chan error
}

// start runs c until the test ends: cleanup closes it and waits for Run.
func start(t testing.TB, c *PeerChannel) *running {
	t.Helper()
	r := &running{PeerChannel: c, errc: make(chan error, 1)}
	go func() { r.errc <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		c.Close(peernode.CloseReason{Label: peernode.CloseShutdown, Code: wire.DisconnectShutdown})
		r.wait(t)
	})
	return r
}

// wait waits for Run to return and returns its error.
func (r *running) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.errc:
		r.errc <- err // later calls see it too
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("Run of %s did not return", r.cfg.Hello.NodeID)
		return nil
	}
}

// pair returns two running channels over one loopback connection: a dialed
// it (outbound), b accepted it (inbound).
func pair(t testing.TB, cfgA Config, hooksA Hooks, cfgB Config, hooksB Hooks) (a, b *running) {
	t.Helper()
	ca, cb := tcpPair(t)
	a = start(t, New(ca, peernode.NewGenericPeer(ca, peernode.Outbound), cfgA, hooksA))
	b = start(t, New(cb, peernode.NewGenericPeer(cb, peernode.Inbound), cfgB, hooksB))
	return a, b
}

// recorder records what hooks report, as channels tests can wait on.
type recorder struct {
	mu          sync.Mutex
	transitions []string
	drops       map[string]int

	opened  chan struct{}
	closed  chan peernode.CloseReason
	packets chan wire.Packet
	rtts    chan time.Duration
	trusted chan struct{}
	drop    chan string
	admits  chan wire.Type

	// onPacket, when set, runs for every packet after it is recorded.
	onPacket func(ctx context.Context, c *PeerChannel, p wire.Packet)
	// admit, when set, is the Admit hook.
	admit func(t wire.Type) bool
}

func newRecorder() *recorder {
	return &recorder{
		drops:   map[string]int{},
		opened:  make(chan struct{}),
		closed:  make(chan peernode.CloseReason, 1),
		packets: make(chan wire.Packet, 1<<16),
		rtts:    make(chan time.Duration, 1024),
		trusted: make(chan struct{}),
		drop:    make(chan string, 1024),
		admits:  make(chan wire.Type, 1<<16),
	}
}

func (r *recorder) hooks() Hooks {
	h := Hooks{
		OnPacket: func(ctx context.Context, c *PeerChannel, p wire.Packet) {
			r.packets <- p
			if r.onPacket != nil {
				r.onPacket(ctx, c, p)
			}
		},
		OnStateChange: func(c *PeerChannel, from, to peernode.ChannelState) {
			r.mu.Lock()
			r.transitions = append(r.transitions, from.String()+">"+to.String())
			r.mu.Unlock()
			if to == peernode.StateOpen {
				close(r.opened)
			}
		},
		OnClosed: func(c *PeerChannel, reason peernode.CloseReason) {
			r.mu.Lock()
			r.transitions = append(r.transitions, "closed:"+reason.Label)
			r.mu.Unlock()
			r.closed <- reason
		},
		OnRTT: func(c *PeerChannel, d time.Duration) {
			select {
			case r.rtts <- d:
			default:
			}
		},
		OnTrusted: func(c *PeerChannel) { close(r.trusted) },
		OnDropped: func(reason string) {
			r.mu.Lock()
			r.drops[reason]++
			r.mu.Unlock()
			select {
			case r.drop <- reason:
			default:
			}
		},
	}
	if r.admit != nil {
		h.Admit = func(c *PeerChannel, t wire.Type) bool {
			select {
			case r.admits <- t:
			default:
			}
			return r.admit(t)
		}
	}
	return h
}

func (r *recorder) waitOpen(t testing.TB) {
	t.Helper()
	select {
	case <-r.opened:
	case <-time.After(waitTimeout):
		t.Fatal("channel did not open")
	}
}

func (r *recorder) waitClosed(t testing.TB) peernode.CloseReason {
	t.Helper()
	select {
	case reason := <-r.closed:
		r.closed <- reason // later calls see it too
		return reason
	case <-time.After(waitTimeout):
		t.Fatal("channel did not close")
		return peernode.CloseReason{}
	}
}

func (r *recorder) nextPacket(t testing.TB) wire.Packet {
	t.Helper()
	select {
	case p := <-r.packets:
		return p
	case <-time.After(waitTimeout):
		t.Fatal("no packet arrived")
		return nil
	}
}

func (r *recorder) waitDrop(t testing.TB, want string) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case got := <-r.drop:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("no drop with reason %q", want)
		}
	}
}

// waitAdmit waits until Admit is asked about a packet of type typ.
func (r *recorder) waitAdmit(t testing.TB, typ wire.Type) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case got := <-r.admits:
			if got == typ {
				return
			}
		case <-deadline:
			t.Fatalf("Admit never asked about %v", typ)
		}
	}
}

func (r *recorder) transitionLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.transitions...)
}

// rawPeer drives the other end of a channel by hand, frame by frame.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	r    *wire.Reader
}

// newRawPeer wraps conn, which it closes when the test ends, before the
// channel's cleanup closes the channel (cleanups run last-in first-out).
func newRawPeer(t testing.TB, conn net.Conn) *rawPeer {
	t.Cleanup(func() { conn.Close() })
	return &rawPeer{t: t, conn: conn, r: wire.NewReader(conn, 0)}
}

func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("raw peer write: %v", err)
	}
}

func (p *rawPeer) send(pk wire.Packet) { p.t.Helper(); p.write(wire.AppendFrame(nil, pk)) }

// next reads the next frame, failing the test on error.
func (p *rawPeer) next() wire.Frame {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	f, err := p.r.ReadFrame()
	if err != nil {
		p.t.Fatalf("raw peer read: %v", err)
	}
	return f
}

// expectHello reads the channel's Hello.
func (p *rawPeer) expectHello() wire.Hello {
	p.t.Helper()
	f := p.next()
	h, err := wire.DecodeHello(f.Payload)
	if f.Header.Type != wire.TypeHello || err != nil {
		p.t.Fatalf("first frame: %v (%v), want Hello", f.Header.Type, err)
	}
	return h
}

// expectDisconnect reads frames until a Disconnect, which must be followed
// by the end of the stream, and returns it. Keepalive frames are skipped.
func (p *rawPeer) expectDisconnect() wire.Disconnect {
	p.t.Helper()
	for {
		f := p.next()
		switch f.Header.Type {
		case wire.TypePing, wire.TypePong:
			continue
		case wire.TypeDisconnect:
		default:
			p.t.Fatalf("got %v, want Disconnect", f.Header.Type)
		}
		d, err := wire.DecodeDisconnect(f.Payload)
		if err != nil {
			p.t.Fatal(err)
		}
		// The channel half-closes after its Disconnect; closing ours ends its linger.
		if _, err := p.r.ReadFrame(); !errors.Is(err, io.EOF) {
			p.t.Fatalf("after Disconnect: %v, want io.EOF", err)
		}
		p.conn.Close()
		return d
	}
}
