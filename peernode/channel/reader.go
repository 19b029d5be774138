package channel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// connReader is the reader's view of the connection. Each read re-arms the
// idle timeout as a read deadline and touches the peer when bytes arrive:
// once per system call rather than per frame, and with no timer of its own.
// It also tells the read buffer whether to grow or shrink (see readBuffer).
type connReader struct {
	c    *PeerChannel
	idle time.Duration // 0 until the handshake is over, and when disabled

	fullReads int // consecutive reads that filled the slice they were given
	lastRead  int // bytes returned by the last read
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.idle > 0 {
		_ = r.c.conn.SetReadDeadline(time.Now().Add(r.idle))
	}
	n, err := r.c.conn.Read(p)
	if n > 0 {
		r.c.peer.Touch(time.Now())
	}
	if n == len(p) {
		r.fullReads++
	} else {
		r.fullReads = 0
	}
	r.lastRead = n
	return n, err
}

// directReader is the connection as the source of direct payload reads
// (wire.Reader.SetDirect): like connReader, but its reads do not count
// towards growing the read buffer, which payloads that skip it do not need.
type directReader connReader

func (r *directReader) Read(p []byte) (int, error) {
	if r.idle > 0 {
		_ = r.c.conn.SetReadDeadline(time.Now().Add(r.idle))
	}
	n, err := r.c.conn.Read(p)
	if n > 0 {
		r.c.peer.Touch(time.Now())
	}
	return n, err
}

// bigReadBufferSizes are the read buffers of busy channels. Reading a busy
// socket in large chunks saves system calls, most of the cost of a bulk
// transfer, but 10,000 idle channels cannot each hold a large buffer, so busy
// channels borrow them from pools, a size at a time while reads keep filling
// them, and give them back when traffic slows down.
var bigReadBufferSizes = [...]int{64 << 10, 256 << 10}

var bigReadBuffers [len(bigReadBufferSizes)]sync.Pool

func init() {
	for i, size := range bigReadBufferSizes {
		bigReadBuffers[i].New = func() any { return bufio.NewReaderSize(nil, size) }
	}
}

// readBuffer is the reader's frame source: a wire.Reader over a small
// bufio.Reader of its own (Config.ReadBufferSize), switched to a bigger pooled
// one after two reads filled the current one, and back to the small one as
// soon as a read returns less than the small buffer holds. It switches only
// between frames and with nothing buffered, so no byte moves between buffers.
type readBuffer struct {
	cr       *connReader
	small    *bufio.Reader
	cur      *bufio.Reader // small, or a pooled buffer of size bigReadBufferSizes[level]
	level    int           // -1 while the small buffer is in use
	maxFrame uint32
	*wire.Reader
}

func newReadBuffer(cr *connReader, size int, maxFrame uint32) *readBuffer {
	rb := &readBuffer{cr: cr, small: bufio.NewReaderSize(cr, size), level: -1, maxFrame: maxFrame}
	rb.use(rb.small)
	return rb
}

// adapt switches buffers if traffic calls for it. It is called between
// frames: its cost when nothing changes is two comparisons.
func (rb *readBuffer) adapt() {
	switch {
	case rb.cr.fullReads >= 2 && rb.level < len(bigReadBufferSizes)-1 && rb.cur.Buffered() == 0:
		next := rb.level + 1
		rb.release()
		rb.level = next
		big := bigReadBuffers[next].Get().(*bufio.Reader)
		big.Reset(rb.cr)
		rb.use(big)
		rb.cr.fullReads = 0 // two more full reads before the next step
	case rb.level >= 0 && rb.cr.lastRead < rb.small.Size() && rb.cur.Buffered() == 0:
		rb.release()
		rb.small.Reset(rb.cr)
		rb.use(rb.small)
	}
}

func (rb *readBuffer) use(br *bufio.Reader) {
	rb.cur = br
	rb.Reader = wire.NewReader(br, rb.maxFrame)
	rb.SetDirect((*directReader)(rb.cr))
}

// release returns the pooled buffer in use, if any.
func (rb *readBuffer) release() {
	if rb.level >= 0 {
		rb.cur.Reset(nil)
		bigReadBuffers[rb.level].Put(rb.cur)
		rb.cur = nil
		rb.level = -1
	}
}

// readLoop is the reader goroutine: the handshake, then one frame at a time
// until the connection fails or closes. After a fatal error it keeps reading
// (and discarding) until the peer or the writer closes the connection, so
// that the peer's bytes do not make our close a reset that would lose the
// Disconnect.
func (c *PeerChannel) readLoop(ctx context.Context) {
	defer close(c.readerDone)
	cr := &connReader{c: c}
	r := newReadBuffer(cr, c.cfg.ReadBufferSize, c.cfg.MaxFrameSize)
	defer r.release()
	if !c.handshake(ctx, r.Reader, cr) {
		c.discardInput(cr)
		return
	}
	for {
		r.adapt()
		c.readerBusy.Store(false)
		f, err := r.ReadFrame()
		c.readerBusy.Store(true) // before State: see linger
		if err != nil {
			c.readFailed(err)
			c.discardInput(cr)
			return
		}
		c.received(f)
		if c.State() != peernode.StateOpen {
			c.dropped(DropClosing)
			continue
		}
		if fn := c.hooks.Admit; fn != nil && !fn(c, f.Header.Type) {
			continue
		}
		if err := c.handle(ctx, f); err != nil {
			// The frame was whole, so the stream is still in step: keep
			// reading, and dropping, until the peer closes.
			c.protocolError(err)
		}
	}
}

// handshake reads the peer's Hello within the handshake timeout, lets the
// node admit the peer and opens the channel. It reports whether the channel
// opened.
func (c *PeerChannel) handshake(ctx context.Context, r *wire.Reader, cr *connReader) bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	f, err := r.ReadFrame()
	c.readerBusy.Store(true)
	if err != nil {
		c.readFailed(err)
		return false
	}
	c.received(f)
	if f.Header.Type != wire.TypeHello {
		c.protocolError(fmt.Errorf("channel: first frame is %v, want Hello", f.Header.Type))
		return false
	}
	h, err := wire.DecodeHello(f.Payload)
	if err != nil {
		c.protocolError(err)
		return false
	}
	c.peer.SetIdentity(h.NodeID, h.ListenAddr)
	c.mu.Lock()
	c.remoteHello = h
	c.mu.Unlock()
	if fn := c.hooks.OnHello; fn != nil {
		if admit, reason := fn(c, h); !admit {
			if reason.Label == "" {
				reason.Label = peernode.ClosePolicy
			}
			c.beginClose(reason, nil, true)
			return false
		}
	}

	// From now on the idle timeout bounds each read instead.
	cr.idle = c.cfg.IdleTimeout
	if cr.idle == 0 {
		_ = c.conn.SetReadDeadline(time.Time{})
	}
	if !c.open() {
		return false // closed while the node looked at the Hello
	}
	if fn := c.hooks.OnStateChange; fn != nil {
		fn(c, peernode.StateHandshaking, peernode.StateOpen)
	}
	// Started before the next read, so that the peer's first Trust packet
	// finds the session.
	c.startTrust(ctx)
	return true
}

// handle handles one admitted frame of an open channel. An error means the
// peer broke the protocol.
func (c *PeerChannel) handle(ctx context.Context, f wire.Frame) error {
	t := f.Header.Type
	switch t {
	case wire.TypePing:
		p, err := wire.DecodePing(f.Payload)
		if err != nil {
			return err
		}
		sendControl(c, p.Reply())
		return nil
	case wire.TypePong:
		p, err := wire.DecodePong(f.Payload)
		if err != nil {
			return err
		}
		c.pong(p)
		return nil
	case wire.TypeDisconnect:
		d, err := wire.DecodeDisconnect(f.Payload)
		if err != nil {
			return err
		}
		c.beginClose(peernode.CloseReason{Code: d.Code, Label: peernode.CloseRemote, Text: d.Reason, Remote: true}, nil, false)
		return nil
	case wire.TypeTrust:
		tp, err := wire.DecodeTrust(f.Payload)
		if err != nil {
			return err
		}
		c.routeTrust(tp)
		return nil
	case wire.TypeHello:
		return errors.New("channel: unexpected Hello on an open channel")
	}

	var p wire.Packet
	if t.IsKnown() {
		var err error
		if p, err = wire.DecodePayload(t, f.Payload); err != nil {
			return err
		}
	} else {
		p = wire.Raw{T: t, Payload: f.Payload}
	}
	if fn := c.hooks.OnPacket; fn != nil {
		fn(ctx, c, p)
	}
	return nil
}

// pong records the RTT that a Pong measures. Pongs that answer no Ping of
// ours are ignored: a peer could otherwise report any RTT it likes.
func (c *PeerChannel) pong(p wire.Pong) {
	if p.Seq == 0 || p.Seq > c.lastPingSeq.Load() {
		return
	}
	rtt := time.Duration(monotonicNow() - p.SentUnixNano)
	if rtt <= 0 || rtt > time.Since(c.peer.FirstSeen()) {
		return
	}
	c.rtt.Store(int64(rtt))
	if fn := c.hooks.OnRTT; fn != nil {
		fn(c, rtt)
	}
}

// received accounts for a frame read.
func (c *PeerChannel) received(f wire.Frame) {
	n := wire.HeaderSize + len(f.Payload)
	c.bytesReceived.Add(uint64(n))
	c.packetsReceived.Add(1)
	if fn := c.hooks.OnFrameReceived; fn != nil {
		fn(f.Header.Type, n)
	}
}

func (c *PeerChannel) dropped(reason string) {
	if fn := c.hooks.OnDropped; fn != nil {
		fn(reason)
	}
}

// protocolError closes the channel because the peer broke the protocol.
func (c *PeerChannel) protocolError(err error) {
	c.beginClose(closeReason(peernode.CloseProtocolError, wire.DisconnectProtocolError, err.Error()), err, true)
}

// readFailed closes the channel after ReadFrame failed with err.
func (c *PeerChannel) readFailed(err error) {
	handshaking := c.State() == peernode.StateHandshaking
	var ne net.Error
	switch {
	case errors.Is(err, net.ErrClosed):
		// This side closed the connection: a close is under way.
	case errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrUnsupportedVersion):
		c.protocolError(err)
	case errors.As(err, &ne) && ne.Timeout():
		if handshaking {
			err = fmt.Errorf("channel: no Hello within %v: %w", c.cfg.HandshakeTimeout, err)
			c.beginClose(closeReason(peernode.CloseHandshake, wire.DisconnectIdleTimeout, err.Error()), err, true)
		} else {
			err = fmt.Errorf("channel: nothing received for %v: %w", c.cfg.IdleTimeout, err)
			c.beginClose(closeReason(peernode.CloseIdleTimeout, wire.DisconnectIdleTimeout, err.Error()), err, true)
		}
	default:
		// The peer went away without a Disconnect (io.EOF, a reset, a
		// stream cut inside a frame). Nothing can be sent back.
		label := peernode.CloseConnectionLost
		if handshaking {
			label = peernode.CloseHandshake
		}
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("channel: connection closed by the peer: %w", err)
		}
		c.beginClose(peernode.CloseReason{Label: label, Text: err.Error(), Remote: true}, err, false)
	}
}

// discardInput reads and drops whatever the peer still sends, until it
// closes its side or this side closes the connection (the writer does, by
// the drain deadline at the latest).
func (c *PeerChannel) discardInput(cr *connReader) {
	c.readerBusy.Store(false)
	_, _ = io.Copy(io.Discard, cr)
}
