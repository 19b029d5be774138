package wire

import "strconv"

// Type is the packet type carried in byte 1 of the frame header. It selects
// the layout of the payload.
type Type uint8

// Packet types. This list is append-only: the numbers are the wire format, so
// a value is never renumbered or reused, and a retired type stays reserved.
// Ranges (docs/protocol.md, section 4): 0x08-0x0F are reserved for future core
// packets, 0x10-0x1F for trust protocols, 0x20-0x3F for data distribution
// (file transfer and the like), 0x40-0x7F are reserved, and 0x80-0xFF are
// application-defined (see MinApplicationType).
const (
	// TypeInvalid is never sent. Receivers reject it as malformed because a
	// zero type byte signals a broken sender or a desynchronised stream.
	TypeInvalid Type = 0x00

	TypeHello      Type = 0x01 // identity of the sender (Hello)
	TypeDisconnect Type = 0x02 // reason for closing the channel (Disconnect)
	TypePeerGroup  Type = 0x03 // known peers, for peer exchange (PeerGroup)
	TypeData       Type = 0x04 // tagged binary data (Data)
	TypeMessage    Type = 0x05 // UTF-8 text (Message)
	TypePing       Type = 0x06 // keepalive and RTT probe (Ping)
	TypePong       Type = 0x07 // answer to a Ping (Pong)

	TypeTrust Type = 0x10 // one message of a trust-protocol handshake (Trust)

	// File transfer, in the data-distribution range. Their payloads are
	// encoded by peernode/transfer (docs/protocol.md, section 9), not by
	// DecodePayload; they are named here so that logs and metric labels
	// name them.
	TypeFileOffer  Type = 0x20 // a file proposed: name, size, SHA-256 (FileOffer)
	TypeFileChunk  Type = 0x21 // bytes of a file at an offset (FileChunk)
	TypeFileAck    Type = 0x22 // offer accepted, bytes received so far (FileAck)
	TypeFileResult Type = 0x23 // end of a transfer, receiver side (FileResult)
	TypeFileAbort  Type = 0x24 // end of a transfer, sender side (FileAbort)
)

// MinApplicationType is the first packet type of the application-defined
// range 0x80-0xFF. peermesh never defines types in that range, so users can
// register handlers for them without clashing with future versions.
const MinApplicationType Type = 0x80

// knownTypes lists the types with a built-in payload format, in wire order.
var knownTypes = [...]Type{
	TypeHello, TypeDisconnect, TypePeerGroup, TypeData,
	TypeMessage, TypePing, TypePong, TypeTrust,
}

// KnownTypes returns the packet types that have a built-in payload format, in
// increasing order. Metrics use it to pre-declare their label values, so it
// returns a new slice the caller may modify.
func KnownTypes() []Type {
	return append([]Type(nil), knownTypes[:]...)
}

// IsKnown reports whether t has a built-in payload format, that is whether
// DecodePayload can decode it.
func (t Type) IsKnown() bool {
	return (t >= TypeHello && t <= TypePong) || t == TypeTrust
}

// IsNamed reports whether t has a name: a known type, or one of the
// data-distribution types of peernode/transfer.
func (t Type) IsNamed() bool {
	return t.IsKnown() || (t >= TypeFileOffer && t <= TypeFileAbort)
}

// IsApplication reports whether t is in the application-defined range
// 0x80-0xFF.
func (t Type) IsApplication() bool { return t >= MinApplicationType }

// String returns the name of a known type ("Hello"), "Invalid" for 0, and
// "Unknown(0x2a)" for any other value, which keeps log lines and metric
// labels readable.
func (t Type) String() string {
	switch t {
	case TypeInvalid:
		return "Invalid"
	case TypeHello:
		return "Hello"
	case TypeDisconnect:
		return "Disconnect"
	case TypePeerGroup:
		return "PeerGroup"
	case TypeData:
		return "Data"
	case TypeMessage:
		return "Message"
	case TypePing:
		return "Ping"
	case TypePong:
		return "Pong"
	case TypeTrust:
		return "Trust"
	case TypeFileOffer:
		return "FileOffer"
	case TypeFileChunk:
		return "FileChunk"
	case TypeFileAck:
		return "FileAck"
	case TypeFileResult:
		return "FileResult"
	case TypeFileAbort:
		return "FileAbort"
	}
	const hex = "0123456789abcdef"
	return "Unknown(0x" + string([]byte{hex[t>>4], hex[t&0xf]}) + ")"
}

// DisconnectCode says why a peer closes a channel (Disconnect.Code).
type DisconnectCode uint16

// Disconnect codes. This list is append-only: the numbers are the wire format.
// Receivers accept codes they do not know and treat them as unspecified.
const (
	DisconnectUnspecified      DisconnectCode = 0 // no particular reason
	DisconnectShutdown         DisconnectCode = 1 // the sender is shutting down or draining
	DisconnectPolicyDenied     DisconnectCode = 2 // blocked, or not allowlisted
	DisconnectProtocolError    DisconnectCode = 3 // malformed frame or unexpected packet
	DisconnectIdleTimeout      DisconnectCode = 4 // nothing received for too long
	DisconnectTrustFailed      DisconnectCode = 5 // the trust handshake failed or timed out
	DisconnectDuplicate        DisconnectCode = 6 // another channel to this peer wins (simultaneous dial)
	DisconnectCapacityExceeded DisconnectCode = 7 // too many channels or pending handshakes
	DisconnectSelfConnection   DisconnectCode = 8 // the peer has our own node ID
	DisconnectMeshMismatch     DisconnectCode = 9 // the peer belongs to another mesh
)

var disconnectCodeNames = [...]string{
	DisconnectUnspecified:      "Unspecified",
	DisconnectShutdown:         "Shutdown",
	DisconnectPolicyDenied:     "PolicyDenied",
	DisconnectProtocolError:    "ProtocolError",
	DisconnectIdleTimeout:      "IdleTimeout",
	DisconnectTrustFailed:      "TrustFailed",
	DisconnectDuplicate:        "Duplicate",
	DisconnectCapacityExceeded: "CapacityExceeded",
	DisconnectSelfConnection:   "SelfConnection",
	DisconnectMeshMismatch:     "MeshMismatch",
}

// String returns the name of a known code ("PolicyDenied") or
// "DisconnectCode(42)".
func (c DisconnectCode) String() string {
	if int(c) < len(disconnectCodeNames) {
		return disconnectCodeNames[c]
	}
	return "DisconnectCode(" + strconv.Itoa(int(c)) + ")"
}

// DataFormat tags the body of a Data packet with its kind, so the data layer
// can route it (files to the file manager, tasks to the task queue).
type DataFormat uint8

// Data formats. This list is append-only: the numbers are the wire format.
// Decoders accept unknown non-zero formats, so a newer sender does not break
// an older receiver; the data layer decides what to do with them.
const (
	// DataFormatInvalid is rejected as malformed: a zero format almost
	// always means the sender forgot to set it.
	DataFormatInvalid DataFormat = 0
	DataFormatFile    DataFormat = 1 // a file or a chunk of one
	DataFormatTask    DataFormat = 2 // a task for the receiver's task queue
	DataFormatMisc    DataFormat = 3 // anything else
)

// String returns "File", "Task", "Misc", "Invalid" or "DataFormat(42)".
func (f DataFormat) String() string {
	switch f {
	case DataFormatInvalid:
		return "Invalid"
	case DataFormatFile:
		return "File"
	case DataFormatTask:
		return "Task"
	case DataFormatMisc:
		return "Misc"
	}
	return "DataFormat(" + strconv.Itoa(int(f)) + ")"
}

// Limits on payload fields, in bytes of UTF-8 unless stated otherwise. Decoders
// reject larger values with ErrMalformed, and Validate checks them before a
// packet is sent. Text and bodies that are the rest of the payload are bounded
// only by the frame size.
const (
	// MaxNodeIDLen bounds node identifiers: 253 is the longest DNS name and
	// Kubernetes object name, which identifiers are drawn from.
	MaxNodeIDLen = 253
	// MaxMeshNameLen bounds mesh names, for the same reason.
	MaxMeshNameLen = 253
	// MaxAddrLen bounds "host:port" addresses: a 253-byte host, brackets
	// around an IPv6 literal, a colon and a 5-digit port.
	MaxAddrLen = 253 + 2 + 1 + 5
	// MaxCapabilities bounds the number of capabilities in a Hello.
	MaxCapabilities = 64
	// MaxCapabilityLen bounds each capability name.
	MaxCapabilityLen = 64
	// MaxReasonLen bounds Disconnect.Reason.
	MaxReasonLen = 1024
	// MaxPeerGroupEntries bounds the entries of a PeerGroup, which keeps a
	// peer-exchange packet (and the work it causes) small.
	MaxPeerGroupEntries = 1024
	// MaxTrustProtocolLen bounds Trust.Protocol.
	MaxTrustProtocolLen = 64
)
