package wire

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Packet is a value that can be sent as the payload of a frame. The built-in
// packet types implement it, and so can application-defined packets (types
// 0x80-0xFF), which AppendFrame then frames like any other.
//
// AppendPayload appends the encoded payload to dst and returns the extended
// slice; it must not allocate when dst has enough capacity, and must be safe
// to call from several goroutines at once (the built-in types are values).
type Packet interface {
	// Type returns the packet type written in the frame header.
	Type() Type
	// AppendPayload appends the encoded payload to dst.
	AppendPayload(dst []byte) []byte
}

// Compile-time checks that every built-in packet implements Packet.
var (
	_ Packet = Hello{}
	_ Packet = Disconnect{}
	_ Packet = PeerGroup{}
	_ Packet = Data{}
	_ Packet = Message{}
	_ Packet = Ping{}
	_ Packet = Pong{}
	_ Packet = Trust{}
)

// Validate returns an error wrapping ErrMalformed if p breaks a rule that the
// receiver's decoder enforces (a string over its limit or not UTF-8, too many
// entries, a zero data format), so that a sender reports a bad packet to its
// caller instead of sending it and having the channel closed by the peer.
// Encoding itself never fails, whatever the packet holds. Packets whose type
// has a method Validate() error are checked with it; others only for a
// non-zero type. Validate does not know the peer's maximum frame size: the
// sender checks the encoded length against it.
func Validate(p Packet) error {
	if p.Type() == TypeInvalid {
		return fmt.Errorf("%w: packet type 0 is reserved", ErrMalformed)
	}
	if v, ok := p.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// DecodePayload decodes the payload of a frame of type t into the matching
// built-in packet type. It returns an error wrapping ErrUnknownType for a type
// without a built-in decoder (reserved and application-defined types), which
// callers count and drop, and ErrMalformed for type 0 or a payload that breaks
// the format. Data and Trust bodies alias payload.
func DecodePayload(t Type, payload []byte) (Packet, error) {
	switch t {
	case TypeHello:
		return boxed(DecodeHello(payload))
	case TypeDisconnect:
		return boxed(DecodeDisconnect(payload))
	case TypePeerGroup:
		return boxed(DecodePeerGroup(payload))
	case TypeData:
		return boxed(DecodeData(payload))
	case TypeMessage:
		return boxed(DecodeMessage(payload))
	case TypePing:
		return boxed(DecodePing(payload))
	case TypePong:
		return boxed(DecodePong(payload))
	case TypeTrust:
		return boxed(DecodeTrust(payload))
	case TypeInvalid:
		return nil, fmt.Errorf("%w: packet type 0 is reserved", ErrMalformed)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnknownType, t)
}

// boxed converts the result of a typed decoder to DecodePayload's. On error it
// returns a nil Packet, not a zero value in a non-nil interface, which would
// trap callers that test the packet instead of the error.
func boxed[P Packet](p P, err error) (Packet, error) {
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Hello is the first packet each side sends on a new channel: who it is,
// where it can be dialled and which mesh it belongs to. The wire layer checks
// only lengths and UTF-8; whether the values are acceptable (a non-empty
// NodeID, a parseable ListenAddr, the right mesh) is for the node to decide.
type Hello struct {
	// ProtocolVersion is the highest protocol revision the sender
	// implements (ProtocolVersion for this package). Unlike the frame's
	// version byte it can grow without changing the framing.
	ProtocolVersion uint16
	// NodeID identifies the sender; at most MaxNodeIDLen bytes.
	NodeID string
	// ListenAddr is the "host:port" on which the sender accepts peer
	// channels, or empty when it does not listen; at most MaxAddrLen bytes.
	ListenAddr string
	// MeshName is the mesh the sender belongs to; at most MaxMeshNameLen
	// bytes.
	MeshName string
	// Capabilities names optional features the sender supports, at most
	// MaxCapabilities names of at most MaxCapabilityLen bytes. Order carries
	// no meaning. Decoding yields nil when there are none.
	Capabilities []string
}

// Type returns TypeHello.
func (Hello) Type() Type { return TypeHello }

// AppendPayload appends the encoded payload to dst.
func (h Hello) AppendPayload(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, h.ProtocolVersion)
	dst = appendString(dst, h.NodeID)
	dst = appendString(dst, h.ListenAddr)
	dst = appendString(dst, h.MeshName)
	dst = binary.AppendUvarint(dst, uint64(len(h.Capabilities)))
	for _, c := range h.Capabilities {
		dst = appendString(dst, c)
	}
	return dst
}

// Validate returns an error wrapping ErrMalformed if DecodeHello would reject
// the encoding of h.
func (h Hello) Validate() error {
	if err := checkString("Hello", "NodeID", h.NodeID, MaxNodeIDLen); err != nil {
		return err
	}
	if err := checkString("Hello", "ListenAddr", h.ListenAddr, MaxAddrLen); err != nil {
		return err
	}
	if err := checkString("Hello", "MeshName", h.MeshName, MaxMeshNameLen); err != nil {
		return err
	}
	if len(h.Capabilities) > MaxCapabilities {
		return malformed("Hello", "Capabilities", "count %d exceeds limit %d", len(h.Capabilities), MaxCapabilities)
	}
	for _, c := range h.Capabilities {
		if err := checkString("Hello", "Capabilities", c, MaxCapabilityLen); err != nil {
			return err
		}
	}
	return nil
}

// DecodeHello decodes the payload of a Hello frame.
func DecodeHello(payload []byte) (Hello, error) {
	d := decoder{b: payload, packet: "Hello"}
	var h Hello
	h.ProtocolVersion = d.uint16("ProtocolVersion")
	h.NodeID = d.string("NodeID", MaxNodeIDLen)
	h.ListenAddr = d.string("ListenAddr", MaxAddrLen)
	h.MeshName = d.string("MeshName", MaxMeshNameLen)
	if n := d.count("Capabilities", MaxCapabilities); n > 0 {
		// Each entry takes at least one byte, which bounds the allocation
		// by what the payload can actually hold, not by what it claims.
		h.Capabilities = make([]string, 0, min(n, len(d.b)))
		for range n {
			h.Capabilities = append(h.Capabilities, d.string("Capabilities", MaxCapabilityLen))
		}
	}
	if err := d.finish(); err != nil {
		return Hello{}, err
	}
	return h, nil
}

// Disconnect is sent, best effort, just before a side closes the channel, so
// that the other side can report the cause rather than a bare reset.
type Disconnect struct {
	// Code is the machine-readable cause. Unknown codes from newer peers
	// decode unchanged; treat them as DisconnectUnspecified.
	Code DisconnectCode
	// Reason is human-readable detail, at most MaxReasonLen bytes.
	Reason string
}

// Type returns TypeDisconnect.
func (Disconnect) Type() Type { return TypeDisconnect }

// AppendPayload appends the encoded payload to dst.
func (d Disconnect) AppendPayload(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(d.Code))
	return appendString(dst, d.Reason)
}

// Validate returns an error wrapping ErrMalformed if DecodeDisconnect would
// reject the encoding of d.
func (d Disconnect) Validate() error {
	return checkString("Disconnect", "Reason", d.Reason, MaxReasonLen)
}

// DecodeDisconnect decodes the payload of a Disconnect frame.
func DecodeDisconnect(payload []byte) (Disconnect, error) {
	d := decoder{b: payload, packet: "Disconnect"}
	var p Disconnect
	p.Code = DisconnectCode(d.uint16("Code"))
	p.Reason = d.string("Reason", MaxReasonLen)
	if err := d.finish(); err != nil {
		return Disconnect{}, err
	}
	return p, nil
}

// PeerInfo is one entry of a PeerGroup: a peer's identity and the address on
// which it accepts channels.
type PeerInfo struct {
	NodeID string // at most MaxNodeIDLen bytes
	Addr   string // "host:port", at most MaxAddrLen bytes
}

// PeerGroup carries peers the sender knows, for peer exchange.
type PeerGroup struct {
	// Peers holds at most MaxPeerGroupEntries entries. Decoding yields nil
	// when there are none.
	Peers []PeerInfo
}

// Type returns TypePeerGroup.
func (PeerGroup) Type() Type { return TypePeerGroup }

// AppendPayload appends the encoded payload to dst.
func (g PeerGroup) AppendPayload(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(g.Peers)))
	for _, p := range g.Peers {
		dst = appendString(dst, p.NodeID)
		dst = appendString(dst, p.Addr)
	}
	return dst
}

// Validate returns an error wrapping ErrMalformed if DecodePeerGroup would
// reject the encoding of g.
func (g PeerGroup) Validate() error {
	if len(g.Peers) > MaxPeerGroupEntries {
		return malformed("PeerGroup", "Peers", "count %d exceeds limit %d", len(g.Peers), MaxPeerGroupEntries)
	}
	for _, p := range g.Peers {
		if err := checkString("PeerGroup", "NodeID", p.NodeID, MaxNodeIDLen); err != nil {
			return err
		}
		if err := checkString("PeerGroup", "Addr", p.Addr, MaxAddrLen); err != nil {
			return err
		}
	}
	return nil
}

// DecodePeerGroup decodes the payload of a PeerGroup frame.
func DecodePeerGroup(payload []byte) (PeerGroup, error) {
	d := decoder{b: payload, packet: "PeerGroup"}
	var g PeerGroup
	if n := d.count("Peers", MaxPeerGroupEntries); n > 0 {
		// An entry takes at least two bytes (two empty strings): size the
		// slice by what the payload can hold, not by the claimed count.
		g.Peers = make([]PeerInfo, 0, min(n, len(d.b)/2))
		for range n {
			var p PeerInfo
			p.NodeID = d.string("NodeID", MaxNodeIDLen)
			p.Addr = d.string("Addr", MaxAddrLen)
			if d.err != nil {
				break
			}
			g.Peers = append(g.Peers, p)
		}
	}
	if err := d.finish(); err != nil {
		return PeerGroup{}, err
	}
	return g, nil
}

// Data carries application data tagged with its format.
type Data struct {
	// Format says what Body is. It must not be DataFormatInvalid; unknown
	// non-zero formats from newer peers decode unchanged.
	Format DataFormat
	// Body is the rest of the payload. A decoded Body aliases the payload
	// it was decoded from (it is not copied); it is nil when empty.
	Body []byte
}

// Type returns TypeData.
func (Data) Type() Type { return TypeData }

// AppendPayload appends the encoded payload to dst.
func (d Data) AppendPayload(dst []byte) []byte {
	dst = append(dst, byte(d.Format))
	return append(dst, d.Body...)
}

// Validate returns an error wrapping ErrMalformed if the format is zero,
// which DecodeData rejects.
func (d Data) Validate() error {
	if d.Format == DataFormatInvalid {
		return malformed("Data", "Format", "format 0 is reserved")
	}
	return nil
}

// DecodeData decodes the payload of a Data frame. The returned Body aliases
// payload: it is not copied, which keeps the bulk data path at one copy from
// the socket to the handler.
func DecodeData(payload []byte) (Data, error) {
	d := decoder{b: payload, packet: "Data"}
	var p Data
	p.Format = DataFormat(d.uint8("Format"))
	if d.err == nil && p.Format == DataFormatInvalid {
		d.fail("Format", "format 0 is reserved")
	}
	p.Body = d.rest()
	if err := d.finish(); err != nil {
		return Data{}, err
	}
	return p, nil
}

// Message carries UTF-8 text.
type Message struct {
	// Text is the whole payload; it must be valid UTF-8. It is bounded
	// only by the frame size.
	Text string
}

// Type returns TypeMessage.
func (Message) Type() Type { return TypeMessage }

// AppendPayload appends the encoded payload to dst.
func (m Message) AppendPayload(dst []byte) []byte { return append(dst, m.Text...) }

// Validate returns an error wrapping ErrMalformed if Text is not valid UTF-8.
func (m Message) Validate() error {
	if !utf8.ValidString(m.Text) {
		return malformed("Message", "Text", "invalid UTF-8")
	}
	return nil
}

// DecodeMessage decodes the payload of a Message frame. Text is a copy of the
// payload (strings are immutable, and the payload may be a reused buffer).
func DecodeMessage(payload []byte) (Message, error) {
	if !utf8.Valid(payload) {
		return Message{}, malformed("Message", "Text", "invalid UTF-8")
	}
	return Message{Text: string(payload)}, nil
}

// pingSize is the exact payload size of Ping and Pong.
const pingSize = 16

// Ping asks the peer to answer with a Pong carrying the same values. Both
// fields are opaque to the responder, so the pinger computes the round-trip
// time from the Pong alone, without remembering its pings.
type Ping struct {
	// Seq numbers the ping.
	Seq uint64
	// SentUnixNano is the pinger's send time in nanoseconds. The pinger may
	// store a monotonic clock reading instead of wall-clock time, to keep
	// RTTs immune to clock steps: only the pinger reads it.
	SentUnixNano int64
}

// Type returns TypePing.
func (Ping) Type() Type { return TypePing }

// AppendPayload appends the encoded payload to dst.
func (p Ping) AppendPayload(dst []byte) []byte { return appendPing(dst, p.Seq, p.SentUnixNano) }

// Reply returns the Pong that answers p.
func (p Ping) Reply() Pong { return Pong(p) }

// DecodePing decodes the payload of a Ping frame.
func DecodePing(payload []byte) (Ping, error) {
	seq, sent, err := decodePing("Ping", payload)
	return Ping{Seq: seq, SentUnixNano: sent}, err
}

// Pong answers a Ping with its Seq and SentUnixNano unchanged.
type Pong struct {
	Seq          uint64 // the Seq of the Ping
	SentUnixNano int64  // the SentUnixNano of the Ping
}

// Type returns TypePong.
func (Pong) Type() Type { return TypePong }

// AppendPayload appends the encoded payload to dst.
func (p Pong) AppendPayload(dst []byte) []byte { return appendPing(dst, p.Seq, p.SentUnixNano) }

// DecodePong decodes the payload of a Pong frame.
func DecodePong(payload []byte) (Pong, error) {
	seq, sent, err := decodePing("Pong", payload)
	return Pong{Seq: seq, SentUnixNano: sent}, err
}

func appendPing(dst []byte, seq uint64, sent int64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return binary.BigEndian.AppendUint64(dst, uint64(sent))
}

func decodePing(packet string, payload []byte) (seq uint64, sent int64, err error) {
	if len(payload) != pingSize {
		return 0, 0, malformed(packet, "Seq", "payload is %d bytes, want %d", len(payload), pingSize)
	}
	return binary.BigEndian.Uint64(payload), int64(binary.BigEndian.Uint64(payload[8:])), nil
}

// Trust carries one message of a trust-protocol handshake. What Step and Body
// mean is defined by the trust protocol named in Protocol.
type Trust struct {
	// Protocol names the trust protocol ("ping", "sharedKey"); at most
	// MaxTrustProtocolLen bytes.
	Protocol string
	// Step is the index of this message in the protocol's exchange.
	Step uint8
	// Body is the rest of the payload. A decoded Body aliases the payload
	// it was decoded from; it is nil when empty.
	Body []byte
}

// Type returns TypeTrust.
func (Trust) Type() Type { return TypeTrust }

// AppendPayload appends the encoded payload to dst.
func (t Trust) AppendPayload(dst []byte) []byte {
	dst = appendString(dst, t.Protocol)
	dst = append(dst, t.Step)
	return append(dst, t.Body...)
}

// Validate returns an error wrapping ErrMalformed if DecodeTrust would reject
// the encoding of t.
func (t Trust) Validate() error {
	return checkString("Trust", "Protocol", t.Protocol, MaxTrustProtocolLen)
}

// DecodeTrust decodes the payload of a Trust frame. The returned Body aliases
// payload.
func DecodeTrust(payload []byte) (Trust, error) {
	d := decoder{b: payload, packet: "Trust"}
	var t Trust
	t.Protocol = d.string("Protocol", MaxTrustProtocolLen)
	t.Step = d.uint8("Step")
	t.Body = d.rest()
	if err := d.finish(); err != nil {
		return Trust{}, err
	}
	return t, nil
}
