package channel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// The send queue is a byte buffer, not a queue of packets: a sender encodes
// its frame straight into c.pending under c.qmu (wire.AppendFrame, no
// allocation once the buffer has grown), and the writer takes every pending
// frame at once by swapping the buffer with its spare one, then writes the
// batch with a single Write. Under load that coalesces hundreds of small
// frames per system call, without a flush per packet; when idle, a frame is
// written as soon as the writer wakes.
//
// The queue is bounded in frames (Config.SendQueueLength) and in bytes
// (Config.SendQueueBytes). A sender that finds it full waits on c.space, a
// channel created by the first waiter and closed by the writer when it takes
// the buffer: one broadcast wakes every waiter, and nothing is allocated
// while nobody waits.
//
// One shortcut: a sender that answers on a quiet channel (see canWriteDirect)
// writes its frame itself with a non-blocking write instead of waking the
// writer, which takes a goroutine switch off each round trip. What the
// socket does not take at once stays queued for the writer, as does every
// frame queued behind it.

// Send implements peernode.Channel. p is validated (wire.Validate) and its
// payload checked against Config.MaxFrameSize before it is queued. Send
// boxes p in an interface, which costs an allocation per call for most
// packet types: hot paths use SendPacket.
func (c *PeerChannel) Send(ctx context.Context, p wire.Packet) error {
	return enqueue(ctx, c, p, true)
}

// TrySend implements peernode.Channel: like Send, but it returns
// peernode.ErrQueueFull at once when the queue is full.
func (c *PeerChannel) TrySend(p wire.Packet) error {
	return enqueue(context.Background(), c, p, false)
}

// SendPacket is c.Send for a packet of concrete type, such as wire.Data or
// wire.Message: being generic, it does not box p into an interface, so it
// does not allocate once the queue's buffer has grown.
func SendPacket[P wire.Packet](ctx context.Context, c *PeerChannel, p P) error {
	return enqueue(ctx, c, p, true)
}

// TrySendPacket is c.TrySend for a packet of concrete type; see SendPacket.
func TrySendPacket[P wire.Packet](c *PeerChannel, p P) error {
	return enqueue(context.Background(), c, p, false)
}

// SendRaw queues a frame of type t carrying payload as is: the way to send
// application-defined packet types (0x80-0xFF) or payloads encoded ahead of
// time. It blocks like Send.
func (c *PeerChannel) SendRaw(ctx context.Context, t wire.Type, payload []byte) error {
	if t == wire.TypeInvalid {
		return fmt.Errorf("channel: %w: packet type 0 is reserved", wire.ErrMalformed)
	}
	if uint64(len(payload)) > uint64(c.cfg.MaxFrameSize) {
		return c.tooLarge(t, len(payload))
	}
	if err := c.reserve(ctx, true); err != nil {
		return err
	}
	start := len(c.pending)
	c.pending = wire.AppendRawFrame(c.pending, t, payload)
	return c.commit(t, start)
}

// testHookSendBlocked, when set by a test, is called each time a sender
// starts waiting for room in the queue.
var testHookSendBlocked func()

func enqueue[P wire.Packet](ctx context.Context, c *PeerChannel, p P, block bool) error {
	if err := validate(p); err != nil {
		return err
	}
	if err := c.reserve(ctx, block); err != nil {
		return err
	}
	start := len(c.pending)
	c.pending = wire.AppendFrame(c.pending, p)
	return c.commit(p.Type(), start)
}

// validate is wire.Validate without boxing the packet types that travel in
// bulk: converting to an interface that only a type switch sees does not
// allocate, while wire.Validate's parameter escapes.
func validate[P wire.Packet](p P) error {
	switch v := any(p).(type) {
	case wire.Data:
		return v.Validate()
	case wire.Message:
		return v.Validate()
	case wire.Raw:
		if v.T == wire.TypeInvalid {
			return fmt.Errorf("channel: %w: packet type 0 is reserved", wire.ErrMalformed)
		}
		return nil
	}
	return wire.Validate(p)
}

// reserve locks c.qmu once the queue has room for one more frame and
// returns with it held; on error it returns with the lock released. Without
// block it fails with ErrQueueFull instead of waiting.
func (c *PeerChannel) reserve(ctx context.Context, block bool) error {
	c.qmu.Lock()
	for {
		if c.qclosed {
			c.qmu.Unlock()
			return peernode.ErrChannelClosed
		}
		if c.frames < c.cfg.SendQueueLength && len(c.pending) < c.cfg.SendQueueBytes {
			return nil
		}
		if !block {
			c.qmu.Unlock()
			return peernode.ErrQueueFull
		}
		if c.space == nil {
			c.space = make(chan struct{})
		}
		space := c.space
		c.qmu.Unlock()
		if testHookSendBlocked != nil {
			testHookSendBlocked()
		}
		select {
		case <-space:
		case <-c.closing:
			return peernode.ErrChannelClosed
		case <-ctx.Done():
			return ctx.Err()
		}
		c.qmu.Lock()
	}
}

// commit accounts for the frame of type t appended at c.pending[start:],
// releases c.qmu and wakes the writer if the frame is the first one waiting.
// A payload over the maximum frame size is taken back out and refused.
func (c *PeerChannel) commit(t wire.Type, start int) error {
	if n := len(c.pending) - start - wire.HeaderSize; uint64(n) > uint64(c.cfg.MaxFrameSize) {
		c.pending = c.pending[:start]
		c.qmu.Unlock()
		return c.tooLarge(t, n)
	}
	c.frames++
	first := c.frames == 1
	if first && c.canWriteDirect() {
		c.writeDirect()
		return nil
	}
	c.qmu.Unlock()
	if first {
		c.signalWriter()
	}
	return nil
}

// directQuietTime is how long the socket must have been quiet for a sender
// to write directly: a sender that comes sooner is part of a stream, whose
// frames the writer coalesces. (A variable for tests.)
var directQuietTime = 5 * time.Microsecond

// canWriteDirect reports, under c.qmu, whether the sender of the one frame
// queued may write it itself rather than wake the writer: only when the
// writer is idle, the socket quiet for directQuietTime, and as the first
// write since a frame arrived. A write that follows a read on a quiet channel
// is usually an answer (a Pong, a reply, the next step of an exchange), whose
// latency the goroutine switch to the writer would make much longer; a stream
// of writes, or writes with nothing read in between, is bulk, which goes
// through the writer so that it is coalesced into few system calls.
func (c *PeerChannel) canWriteDirect() bool {
	return c.direct != nil && !c.writing && c.tail.n == 0 && c.inflight.Load() == 0 &&
		c.packetsReceived.Load() != c.directRecv &&
		monotonicNow()-c.lastWrite.Load() >= int64(directQuietTime)
}

// writeDirect writes what is queued (one frame) from the sender's goroutine
// with a non-blocking write, and leaves what the socket did not take to the
// writer. It is called with c.qmu held, and releases it. The writer does not
// touch the queue meanwhile (c.writing), and other senders may append behind
// the frame being written.
func (c *PeerChannel) writeDirect() {
	end := len(c.pending)
	batch := c.pending[:end:end]
	c.writing = true
	c.directRecv = c.packetsReceived.Load()
	c.qmu.Unlock()

	written, err := c.direct.tryWrite(batch)
	c.lastWrite.Store(monotonicNow())
	frames, tail := c.account(batch, written, tailFrame{})

	c.qmu.Lock()
	c.writing = false
	c.pending = c.pending[:copy(c.pending, c.pending[written:])]
	c.frames -= frames
	c.tail = tail
	var space chan struct{}
	if frames > 0 {
		space, c.space = c.space, nil
	}
	wake := c.frames > 0 || c.qclosed // the writer may be waiting for us
	c.qmu.Unlock()
	if space != nil {
		close(space)
	}
	if wake {
		c.signalWriter()
	}
	if err != nil {
		c.beginClose(peernode.CloseReason{Label: peernode.CloseConnectionLost, Text: err.Error(), Remote: true}, err, false)
	}
}

// signalWriter wakes the writer without blocking: a token already waiting
// will do.
func (c *PeerChannel) signalWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sendControl queues a packet generated by the channel itself (Pong,
// keepalive Ping) without ever blocking: when the queue is full the packet
// is dropped and counted, since the reader must not wait for the writer.
func sendControl[P wire.Packet](c *PeerChannel, p P) {
	err := enqueue(context.Background(), c, p, false)
	if errors.Is(err, peernode.ErrQueueFull) && c.hooks.OnDropped != nil {
		c.hooks.OnDropped(DropSendQueueFull)
	}
}

func (c *PeerChannel) tooLarge(t wire.Type, n int) error {
	return fmt.Errorf("channel: %v payload of %d bytes exceeds the maximum frame size of %d: %w",
		t, n, c.cfg.MaxFrameSize, wire.ErrFrameTooLarge)
}
