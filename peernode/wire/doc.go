// Package wire implements the peermesh wire protocol, version 1: the binary
// framing and packet payloads that peernode daemons exchange over a peer
// channel. docs/protocol.md in the repository specifies every byte; this
// package follows it, and its golden tests check the encoder against the
// examples of that document.
//
// # Frames
//
// Every frame is an 8-byte [Header] (version, packet [Type], flags, payload
// length) followed by the payload. [AppendFrame] encodes a [Packet] into a
// frame, [AppendRawFrame] frames an already encoded payload (for
// application-defined types, 0x80-0xFF), and a [Reader] splits a byte stream
// back into [Frame] values. The payload length is checked against the
// receiver's maximum frame size before anything is allocated for it, so a
// hostile peer cannot make a receiver allocate what it wants.
//
// # Packets
//
// Each built-in packet type has a value type implementing [Packet]: [Hello],
// [Disconnect], [PeerGroup], [Data], [Message], [Ping], [Pong] and [Trust].
// [DecodePayload] decodes a payload by type, and DecodeHello, DecodeData and
// the like decode one type without boxing the result in an interface. Types
// without a built-in decoder yield [ErrUnknownType], which a read loop counts
// and drops instead of closing the channel, so newer peers can add packet types
// without breaking older ones.
//
// # Errors
//
// Errors wrap one of the sentinels [ErrFrameTooLarge], [ErrUnsupportedVersion],
// [ErrMalformed] and [ErrUnknownType] (or io.EOF and io.ErrUnexpectedEOF for
// the stream) with context about the field at fault; test them with errors.Is.
//
// # Performance and aliasing
//
// Encoding appends to a caller-supplied slice and does not allocate when the
// slice has enough capacity, so a writer can reuse one buffer for every frame.
// Decoding a [Data] or [Trust] packet does not copy its body: the body aliases
// the payload it was decoded from. [Reader.ReadFrame] allocates a fresh payload
// per frame, so handlers may keep a decoded body as long as they like, but a
// caller that decodes from its own reused buffer must copy what it keeps.
// Strings (identifiers, addresses, message text) are always copied.
//
// # Concurrency
//
// The packet types are plain values, and the encoding and decoding functions
// are safe for concurrent use. A [Reader] is not: one goroutine (the channel's
// reader) owns it.
package wire
