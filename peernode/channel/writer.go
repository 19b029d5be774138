package channel

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// clockEpoch anchors the monotonic clock readings that Pings carry: the
// peer echoes them and only this process reads them, so an RTT is immune to
// wall-clock steps.
var clockEpoch = time.Now()

func monotonicNow() int64 { return int64(time.Since(clockEpoch)) }

// Run starts the channel and runs it until it closes: it starts the reader
// goroutine and becomes the writer itself, writes the Hello, and sends
// keepalive Pings. When ctx ends the channel closes with reason shutdown.
// Run returns once the channel is closed, its goroutines (reader, trust
// protocol) have returned and the close hooks have run. It returns the error
// that closed the channel (a read, write, protocol or trust error), or nil
// for an orderly close (Close, shutdown, or a Disconnect from the peer).
// Run may be called once; a second call returns ErrAlreadyRun.
func (c *PeerChannel) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.runCalled {
		c.mu.Unlock()
		return ErrAlreadyRun
	}
	c.runCalled = true
	closed := c.closeStarted
	c.mu.Unlock()
	if closed { // closed before Run, on the goroutine that closed it
		<-c.finished
		return c.runErr()
	}

	if c.helloErr != nil {
		c.beginClose(closeReason(peernode.CloseHandshake, wire.DisconnectUnspecified, c.helloErr.Error()), c.helloErr, false)
	}
	// AfterFunc rather than a select case: the writer may be blocked in a
	// Write when ctx ends, and beginClose's write deadline unblocks it.
	stop := context.AfterFunc(ctx, func() {
		c.beginClose(closeReason(peernode.CloseShutdown, wire.DisconnectShutdown, "node shutting down"), nil, true)
	})
	c.qmu.Lock()
	c.direct = newDirectWriter(c.conn)
	c.qmu.Unlock()
	handlerCtx, cancel := context.WithCancel(ctx)
	go c.readLoop(handlerCtx)

	if spare, ok := c.writeLoop(); ok {
		c.drain(spare, true)
	}
	stop()
	cancel()
	c.finish(true)
	return c.runErr()
}

func (c *PeerChannel) runErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// writeLoop writes what senders queue until the close begins. It returns
// its spare buffer for the drain, and false if a write failed: the stream may
// be cut inside a frame, so nothing more can be written.
func (c *PeerChannel) writeLoop() (spare []byte, ok bool) {
	var keepalive <-chan time.Time
	if d := c.cfg.KeepaliveInterval; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		keepalive = t.C
	}
	for {
		c.qmu.Lock()
		if c.frames > 0 && !c.writing {
			batch, n, tail := c.pending, c.frames, c.tail
			c.pending, c.frames, c.tail = spare[:0], 0, tailFrame{}
			space := c.space
			c.space = nil
			c.inflight.Store(int64(n))
			c.qmu.Unlock()
			if space != nil {
				close(space) // room for a whole queue again
			}
			err := c.writeBatch(batch, n, tail)
			if err != nil {
				c.beginClose(peernode.CloseReason{Label: peernode.CloseConnectionLost, Text: err.Error(), Remote: true}, err, false)
				return nil, false
			}
			spare = batch
			continue
		}
		c.qmu.Unlock()

		// Nothing to write, or a sender is writing directly and will wake
		// this goroutine if it leaves anything behind.
		select {
		case <-c.wake:
		case <-c.closing:
			return spare, true
		case <-keepalive:
			c.ping()
			spare = c.shrink(spare)
		}
	}
}

// ping queues a keepalive Ping while the channel is open.
func (c *PeerChannel) ping() {
	if c.State() != peernode.StateOpen {
		return
	}
	seq := c.lastPingSeq.Add(1)
	sendControl(c, wire.Ping{Seq: seq, SentUnixNano: monotonicNow()})
}

// keepBuffer is the largest buffer capacity that shrink keeps.
const keepBuffer = 64 << 10

// shrink releases send buffers grown large by a burst, at most once per
// keepalive period, so that a channel that went idle does not keep megabytes:
// the spare buffer, and the pending one when it is empty. Under load it costs
// one reallocation per period.
func (c *PeerChannel) shrink(spare []byte) []byte {
	c.qmu.Lock()
	if c.frames == 0 && !c.writing && cap(c.pending) > keepBuffer {
		c.pending = nil
	}
	c.qmu.Unlock()
	if cap(spare) > keepBuffer {
		return nil
	}
	return spare
}

// drain runs once the close began: it writes what senders queued before the
// queue closed and, unless told not to, a Disconnect, then lingers for the
// peer to close its side. All of it is bounded by the write deadline that
// beginClose set. spare is a buffer to reuse, or nil; withReader says whether
// a reader goroutine runs (not when the channel closes before Run).
func (c *PeerChannel) drain(spare []byte, withReader bool) {
	c.mu.Lock()
	reason, disconnect := c.reason, c.sendDisconnect
	c.mu.Unlock()
	c.qmu.Lock()
	for c.writing { // a direct write ends at once, and wakes this goroutine
		c.qmu.Unlock()
		<-c.wake
		c.qmu.Lock()
	}
	batch, n, tail := c.pending, c.frames, c.tail
	c.pending, c.frames, c.tail = spare[:0], 0, tailFrame{}
	c.qmu.Unlock()

	if disconnect {
		batch = wire.AppendFrame(batch, wire.Disconnect{Code: reason.Code, Reason: disconnectText(reason)})
		n++
	}
	if len(batch) > 0 && c.writeBatch(batch, n, tail) != nil {
		return // the stream is broken, possibly inside a frame: nothing more to say
	}
	if disconnect && withReader {
		c.linger()
	}
}

// linger half-closes the connection and waits, until the drain deadline, for
// the reader to see the peer close its side. Closing a socket that still has
// unread input makes the kernel reset the connection, discarding what it had
// not yet sent, the Disconnect included; reading to the end avoids that.
//
// The wait is skipped when the reader is busy handling a frame instead of
// reading: it may be inside a hook that called Close and waits for this
// close, and it drops every frame once the channel is closing anyway. The
// reader sets readerBusy before it looks at the state and the close set the
// state before this load, so if this sees the reader idle, the reader will
// see the channel closing and go back to reading.
func (c *PeerChannel) linger() {
	cw, ok := c.conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil || c.readerBusy.Load() {
		return
	}
	c.mu.Lock()
	deadline := c.drainDeadline
	c.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-c.readerDone:
	case <-t.C:
	}
}

// writeBatch writes n frames in one Write (the first of them possibly cut
// by a direct write: tail) and accounts for what it wrote.
func (c *PeerChannel) writeBatch(batch []byte, n int, tail tailFrame) error {
	written, err := c.conn.Write(batch)
	c.lastWrite.Store(monotonicNow())
	if err == nil && tail.n == 0 && c.hooks.OnFrameSent == nil {
		c.bytesSent.Add(uint64(len(batch)))
		c.packetsSent.Add(uint64(n))
		c.inflight.Store(0)
		return nil
	}
	c.inflight.Store(0) // the socket is free for a direct write while the hooks run
	c.account(batch, written, tail)
	return err
}

// tailFrame describes the bytes at the start of the queue that end a frame
// whose beginning a direct write sent: they must go out before anything
// else, and the frame counts as sent once they have.
type tailFrame struct {
	n    int       // bytes of the frame not yet written
	t    wire.Type // the frame's type
	size int       // the whole frame's size
}

// account adds the first written bytes of batch, which starts with tail, to
// the counters, then reports every frame they completed to OnFrameSent. It
// returns the number of frames completed and the tail of the frame cut by
// the end of the write, if any. Frames are found by their headers, which is
// cheap: a batch holds whole frames after its tail.
func (c *PeerChannel) account(batch []byte, written int, tail tailFrame) (int, tailFrame) {
	frames, rest := walkFrames(batch, written, tail, nil)
	c.bytesSent.Add(uint64(written))
	c.packetsSent.Add(uint64(frames))
	if fn := c.hooks.OnFrameSent; fn != nil {
		walkFrames(batch, written, tail, fn)
	}
	return frames, rest
}

// walkFrames calls fn (if not nil) for every frame of batch that its first
// written bytes complete, and returns their count and the tail left by the
// last frame if the write ended inside it.
func walkFrames(batch []byte, written int, tail tailFrame, fn func(wire.Type, int)) (int, tailFrame) {
	frames, off := 0, 0
	if tail.n > 0 {
		if written < tail.n {
			return 0, tailFrame{n: tail.n - written, t: tail.t, size: tail.size}
		}
		if fn != nil {
			fn(tail.t, tail.size)
		}
		frames, off = 1, tail.n
	}
	for off < written {
		size := wire.HeaderSize + int(binary.BigEndian.Uint32(batch[off+4:off+8]))
		if off+size > written {
			return frames, tailFrame{n: off + size - written, t: wire.Type(batch[off+1]), size: size}
		}
		if fn != nil {
			fn(wire.Type(batch[off+1]), size)
		}
		frames++
		off += size
	}
	return frames, tailFrame{}
}
