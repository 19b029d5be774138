package channel

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// ErrAlreadyRun is returned by a second call of Run.
var ErrAlreadyRun = errors.New("channel: Run called twice")

// PeerChannel is one connection to a peer (P2PNet's PeerChannel): a framed
// TCP connection with a reader goroutine, a writer goroutine (the one that
// calls Run), a bounded send queue, keepalive, an optional trust protocol and
// a graceful close. Its methods are safe for concurrent use.
type PeerChannel struct {
	conn  net.Conn
	peer  *peernode.GenericPeer
	cfg   Config
	hooks Hooks
	// helloErr is set when cfg.Hello cannot be sent; Run then fails at once.
	helloErr error

	// The send queue (send.go). Senders encode frames into pending under
	// qmu; the writer takes the whole buffer at once, swapping in its spare
	// one, and writes it with a single Write.
	qmu      sync.Mutex
	pending  []byte        // encoded frames waiting for the writer
	frames   int           // frames in pending
	qclosed  bool          // the channel is closing: refuse new frames
	space    chan struct{} // closed when the writer takes pending; nil while nobody waits
	wake     chan struct{} // capacity 1: pending went from empty to not empty
	inflight atomic.Int64  // frames of the batch the writer is writing
	// Direct writes (send.go): a sender that finds the queue empty and the
	// writer idle may write its frame itself, without blocking.
	direct     directWriter // nil until Run, and when the conn cannot do it
	writing    bool         // a direct write is under way: the writer waits
	tail       tailFrame    // pending starts with the rest of a frame a direct write cut
	directRecv uint64       // packetsReceived at the last direct write
	lastWrite  atomic.Int64 // monotonicNow() when the last write ended

	state atomic.Uint32 // a peernode.ChannelState

	mu             sync.Mutex // guards the fields below
	runCalled      bool
	closeStarted   bool
	reason         peernode.CloseReason
	cause          error                 // what made the channel close, returned by Run
	sendDisconnect bool                  // write a Disconnect after the drain
	closedFrom     peernode.ChannelState // the state the close started from
	drainDeadline  time.Time
	remoteHello    wire.Hello

	closing    chan struct{} // closed when the close begins
	done       chan struct{} // closed when the connection is closed
	finished   chan struct{} // closed when the close hooks have run
	readerDone chan struct{} // closed when the reader goroutine returns

	// readerBusy is true while the reader handles a frame rather than
	// waiting for the next one; see linger.
	readerBusy atomic.Bool
	// trust is the trust session started at Open, owned by the reader;
	// the writer reads it only after the reader returned.
	trust *trustSession

	rtt             atomic.Int64 // nanoseconds
	lastPingSeq     atomic.Uint64
	bytesSent       atomic.Uint64
	bytesReceived   atomic.Uint64
	packetsSent     atomic.Uint64
	packetsReceived atomic.Uint64
}

var _ peernode.Channel = (*PeerChannel)(nil)

// New returns a channel over conn, in state Handshaking, with its Hello
// already queued (packets sent before Run follow it). peer is the peer of
// conn (peernode.NewGenericPeer); the channel records the peer's identity and
// trust in it. Run starts the channel.
func New(conn net.Conn, peer *peernode.GenericPeer, cfg Config, hooks Hooks) *PeerChannel {
	cfg = cfg.withDefaults()
	c := &PeerChannel{
		conn:       conn,
		peer:       peer,
		cfg:        cfg,
		hooks:      hooks,
		wake:       make(chan struct{}, 1),
		closing:    make(chan struct{}),
		done:       make(chan struct{}),
		finished:   make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	c.state.Store(uint32(peernode.StateHandshaking))
	if err := wire.Validate(cfg.Hello); err != nil {
		c.helloErr = fmt.Errorf("channel: invalid local Hello: %w", err)
	} else {
		c.pending = wire.AppendFrame(c.pending, cfg.Hello)
		c.frames = 1
	}
	return c
}

// Peer implements peernode.Channel.
func (c *PeerChannel) Peer() peernode.Peer { return c.peer }

// GenericPeer returns the peer as its concrete type.
func (c *PeerChannel) GenericPeer() *peernode.GenericPeer { return c.peer }

// State implements peernode.Channel.
func (c *PeerChannel) State() peernode.ChannelState {
	return peernode.ChannelState(c.state.Load())
}

// RTT implements peernode.Channel.
func (c *PeerChannel) RTT() time.Duration { return time.Duration(c.rtt.Load()) }

// Done implements peernode.Channel. It is closed once the connection is
// closed; the close hooks may still be running.
func (c *PeerChannel) Done() <-chan struct{} { return c.done }

// CloseReason returns why the channel closes or closed, and the zero
// CloseReason while it is open.
func (c *PeerChannel) CloseReason() peernode.CloseReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// RemoteHello returns the peer's Hello, or the zero Hello before it arrived.
func (c *PeerChannel) RemoteHello() wire.Hello {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remoteHello
}

// BytesSent returns the bytes of the frames written, headers included.
func (c *PeerChannel) BytesSent() uint64 { return c.bytesSent.Load() }

// BytesReceived returns the bytes of the frames read, headers included.
func (c *PeerChannel) BytesReceived() uint64 { return c.bytesReceived.Load() }

// PacketsSent returns the number of frames written.
func (c *PeerChannel) PacketsSent() uint64 { return c.packetsSent.Load() }

// PacketsReceived returns the number of frames read.
func (c *PeerChannel) PacketsReceived() uint64 { return c.packetsReceived.Load() }

// QueueLen returns the frames queued and not yet written: those waiting
// for the writer and those of the batch it is writing.
func (c *PeerChannel) QueueLen() int {
	c.qmu.Lock()
	n := c.frames
	c.qmu.Unlock()
	return n + int(c.inflight.Load())
}

// Close implements peernode.Channel: it refuses new sends at once, lets the
// writer drain the queue and send a Disconnect with reason (bounded together
// by Config.DrainTimeout), closes the connection and returns once it is
// closed. Only the first close counts: later calls, whatever their reason,
// wait for that one. An empty reason.Label becomes local. Close may be called
// from any goroutine, hooks included (see Hooks for the exceptions). Called
// before Run, it closes the channel on the calling goroutine, writing the
// Hello and the Disconnect best effort. It always returns nil.
func (c *PeerChannel) Close(reason peernode.CloseReason) error {
	if reason.Label == "" {
		reason.Label = peernode.CloseLocal
	}
	c.beginClose(reason, nil, true)
	<-c.done
	return nil
}

// beginClose starts closing the channel for reason unless a close already
// started. cause is the error behind the close (nil for an orderly one);
// disconnect says whether to send a Disconnect after the drain (not when the
// peer sent one or the connection broke). It does not wait, so the reader
// and the writer can call it.
func (c *PeerChannel) beginClose(reason peernode.CloseReason, cause error, disconnect bool) {
	c.mu.Lock()
	if c.closeStarted {
		c.mu.Unlock()
		return
	}
	c.closeStarted = true
	c.reason, c.cause = reason, cause
	c.sendDisconnect = disconnect && c.helloErr == nil // a Disconnect must not come first
	c.closedFrom = c.State()
	c.state.Store(uint32(peernode.StateClosing))
	c.drainDeadline = time.Now().Add(c.cfg.DrainTimeout)
	deadline := c.drainDeadline
	runLater := !c.runCalled
	c.mu.Unlock()

	c.qmu.Lock()
	c.qclosed = true
	c.qmu.Unlock()
	close(c.closing) // wakes the writer and every blocked sender
	// A writer blocked on a peer that stopped reading fails at the
	// deadline instead of holding the close forever.
	_ = c.conn.SetWriteDeadline(deadline)

	if runLater {
		// No writer exists, nor will: this goroutine does its work.
		c.drain(nil, false)
		c.finish(false)
	}
}

// finish closes the connection, moves to Closed, closes Done, waits for the
// channel's other goroutines (when called by Run) and reports the close
// through the hooks. Hooks come last so that they may call anything,
// Close included, without waiting for themselves.
func (c *PeerChannel) finish(joinGoroutines bool) {
	_ = c.conn.Close()
	c.mu.Lock()
	from, reason := c.closedFrom, c.reason
	c.state.Store(uint32(peernode.StateClosed))
	c.mu.Unlock()
	c.qmu.Lock()
	c.pending = nil // release the buffer of a closed channel
	c.qmu.Unlock()
	close(c.done)

	if joinGoroutines {
		<-c.readerDone
		if c.trust != nil {
			<-c.trust.done
		}
	}
	if fn := c.hooks.OnStateChange; fn != nil {
		fn(c, from, peernode.StateClosing)
		fn(c, peernode.StateClosing, peernode.StateClosed)
	}
	if fn := c.hooks.OnClosed; fn != nil {
		fn(c, reason)
	}
	close(c.finished)
}

// open moves from Handshaking to Open, unless a close started.
func (c *PeerChannel) open() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.State() != peernode.StateHandshaking {
		return false
	}
	c.state.Store(uint32(peernode.StateOpen))
	return true
}

// closeReason builds the CloseReason of a close decided by this side.
func closeReason(label string, code wire.DisconnectCode, text string) peernode.CloseReason {
	return peernode.CloseReason{Code: code, Label: label, Text: text}
}

// disconnectText is the Reason of the Disconnect sent for r: the label and
// the text, made valid UTF-8 and cut to what the field may carry without
// splitting a character, so that the peer does not reject it as malformed.
func disconnectText(r peernode.CloseReason) string {
	s := strings.ToValidUTF8(r.String(), "\uFFFD")
	if len(s) <= wire.MaxReasonLen {
		return s
	}
	n := wire.MaxReasonLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
