package channel

import (
	"context"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// Drop reasons passed to Hooks.OnDropped: bounded values for the reason label
// of the node's dropped-packets counter. Packets refused by Hooks.Admit are
// not reported here: the node counts them where it decides.
const (
	// DropClosing: a packet arrived after the channel began closing.
	DropClosing = "channel_closing"
	// DropUnexpectedTrust: a Trust packet arrived while no trust session ran.
	DropUnexpectedTrust = "unexpected_trust"
	// DropSendQueueFull: a Pong or keepalive Ping found the send queue full.
	// The reader never blocks on the send queue: two peers whose readers
	// waited for each other's writers could deadlock.
	DropSendQueueFull = "send_queue_full"
)

// Hooks are the callbacks through which the node and its metrics follow a
// channel. Every field is optional. Hooks run synchronously on the goroutine
// named below, so a slow hook slows that goroutine only: the reader for
// receive-side hooks (one packet at a time per channel), the goroutine that
// wrote the frame for OnFrameSent.
//
// Hooks may call any method of the channel, Close included, with two
// exceptions: OnFrameSent and OnFrameReceived are metric hooks that must
// return quickly and must not call Send or Close (OnFrameSent may run on the
// writer, which Close waits for).
type Hooks struct {
	// OnHello is called on the reader with the peer's Hello, once the
	// peer's identity is recorded in the channel's GenericPeer. It admits
	// the peer (the channel opens) or refuses it with a reason (the channel
	// closes, sending a Disconnect with reason.Code; an empty Label becomes
	// policy_denied). Nil admits every peer.
	OnHello func(c *PeerChannel, h wire.Hello) (admit bool, reason peernode.CloseReason)

	// Admit is called on the reader for every packet received after the
	// handshake, before the channel handles it, Ping, Pong, Disconnect and
	// Trust included (so a node admitting only trusted peers must still
	// admit Trust packets, or no trust protocol can run). False drops the
	// packet. Nil admits all. It must not allocate: it is on the hot path.
	Admit func(c *PeerChannel, t wire.Type) bool

	// OnPacket is called on the reader for every admitted packet that the
	// channel does not handle itself (everything but Hello, Disconnect,
	// Ping, Pong and Trust): built-in types decoded, others as wire.Raw.
	// ctx ends when the channel closes. The packet's byte slices belong to
	// the callee. Handlers should not Send without a deadline on the same
	// channel: a peer that stops reading would block this reader.
	OnPacket func(ctx context.Context, c *PeerChannel, p wire.Packet)

	// OnStateChange reports every state change, in order. The move to Open
	// is reported on the reader; the moves to Closing and Closed are
	// reported together by the goroutine that finishes the close (the Run
	// goroutine), after the connection is closed and Done is closed.
	OnStateChange func(c *PeerChannel, from, to peernode.ChannelState)
	// OnClosed is called once, after the last OnStateChange, with the
	// reason of the close. No other hook starts after it.
	OnClosed func(c *PeerChannel, reason peernode.CloseReason)

	// OnTrusted is called on the trust goroutine when the trust protocol
	// succeeded, after the peer was marked trusted.
	OnTrusted func(c *PeerChannel)
	// OnRTT is called on the reader with every round-trip time measured by
	// a keepalive Ping.
	OnRTT func(c *PeerChannel, rtt time.Duration)

	// OnFrameSent is called for every frame written, with the frame size
	// (header included), once the frame is whole on the socket. It runs on
	// the goroutine that wrote the end of the frame: usually the writer, or
	// the sender (a handler on the reader, for replies) that wrote it
	// directly, so it may be called concurrently; metric counters are fine.
	OnFrameSent func(t wire.Type, bytes int)
	// OnFrameReceived is called on the reader for every frame read, before
	// Admit, with the frame size (header included).
	OnFrameReceived func(t wire.Type, bytes int)
	// OnDropped is called when the channel drops a packet itself, with one
	// of the Drop* reasons.
	OnDropped func(reason string)
}
