// Package channel implements the PeerChannel: one framed connection to a
// peer (P2PNet's PeerChannel), carrying the wire protocol of package wire
// over a net.Conn, usually TCP.
//
// # Life cycle
//
// New wraps a connection in state Handshaking and queues this node's Hello;
// Run starts the channel and returns once it is closed. The states only move
// forward, Handshaking -> Open -> Closing -> Closed, and every close has a
// peernode.CloseReason:
//
//   - The peer's first frame must be a Hello, within Config.HandshakeTimeout
//     (else handshake_failed or protocol_error). Hooks.OnHello then admits
//     the peer, or refuses it with a reason, and the channel opens.
//   - Open: packets flow. If Config.RunTrust is set, the trust protocol runs
//     on its own goroutine; success marks the peer trusted, failure closes
//     with trust_failed.
//   - Close (or the end of Run's context: shutdown, or an error: protocol
//     error, idle timeout, lost connection, a Disconnect from the peer) moves
//     to Closing: new sends fail with peernode.ErrChannelClosed, the writer
//     drains what is queued, sends a Disconnect with the reason's code, half
//     closes and waits for the peer to close its side, all within
//     Config.DrainTimeout; then the connection is closed (Closed, Done).
//
// # Goroutines
//
// A channel runs one reader goroutine (started by Run), one writer (the
// goroutine that calls Run) and, while the trust protocol runs, one trust
// goroutine; Run joins them all before it returns. (Senders answering on a
// quiet channel may also write to the socket, without blocking: see
// Sending.) There is no polling: the writer sleeps on a channel until a
// sender wakes it; the keepalive is a ticker; the idle and handshake timeouts
// are read deadlines of the connection; the drain is bounded by its write
// deadline.
//
// # Sending
//
// Senders encode their frame straight into a shared buffer under a mutex,
// and the writer swaps that buffer for a spare one and writes every pending
// frame with one Write: a sender never waits for the network unless the
// queue is full, and small frames are coalesced under load without a flush
// per frame. The queue is bounded in frames and bytes: Send blocks until
// there is room, its context ends or the channel closes; TrySend fails at once
// with peernode.ErrQueueFull. SendPacket and TrySendPacket do the same for a
// packet of concrete type without boxing it, and do not allocate. On a quiet
// channel, a frame sent in answer to one received (a Pong, a reply) is
// written by its sender with a non-blocking write, which saves the switch to
// the writer goroutine; what the socket does not take goes through the
// writer.
//
// # Receiving
//
// The reader reads frames with a wire.Reader bounded by Config.MaxFrameSize,
// through a small read buffer (Config.ReadBufferSize) that keeps idle
// channels cheap; while reads keep filling it, the channel borrows a 64 KiB,
// then a 256 KiB buffer from a shared pool, and gives it back once traffic
// slows down.
//
// After the handshake the reader asks Hooks.Admit about every packet, then
// handles Ping (answers with a Pong), Pong (measures the RTT), Disconnect
// (closes without answering) and Trust (feeds the trust protocol) itself,
// and passes every other packet to Hooks.OnPacket, types without a built-in
// decoder as wire.Raw. A malformed frame closes only this channel, with protocol_error;
// an unknown packet type is never fatal. The reader never blocks on the send
// queue: a Pong that finds it full is dropped.
package channel
