package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

const (
	// HeaderSize is the size of the frame header in bytes.
	HeaderSize = 8

	// ProtocolVersion is the version byte of the frames this package reads
	// and writes, and the ProtocolVersion a node puts in its Hello.
	ProtocolVersion = 1

	// DefaultMaxFrameSize is the default maximum payload length of a frame
	// (4 MiB), used when a maximum of 0 is given. It bounds the memory one
	// frame can make a receiver allocate, and is well above the chunk size
	// of file transfers.
	DefaultMaxFrameSize = 4 << 20
)

// Header is the fixed 8-byte header that starts every frame.
type Header struct {
	// Version is the protocol version byte, ProtocolVersion.
	Version uint8
	// Type selects the payload layout.
	Type Type
	// Flags is reserved: no flag is defined in version 1, senders write 0
	// and receivers ignore the bits they do not know. ParseHeader keeps
	// the received value.
	Flags uint16
	// Length is the number of payload bytes that follow the header.
	Length uint32
}

// Put writes the 8 header bytes into b, which must hold at least HeaderSize
// bytes (it panics otherwise, like encoding/binary's Put functions).
func (h Header) Put(b []byte) {
	_ = b[HeaderSize-1] // one bounds check for the whole header
	b[0] = h.Version
	b[1] = byte(h.Type)
	binary.BigEndian.PutUint16(b[2:4], h.Flags)
	binary.BigEndian.PutUint32(b[4:8], h.Length)
}

// Append appends the 8 header bytes to dst.
func (h Header) Append(dst []byte) []byte {
	dst = append(dst, h.Version, byte(h.Type))
	dst = binary.BigEndian.AppendUint16(dst, h.Flags)
	return binary.BigEndian.AppendUint32(dst, h.Length)
}

// String formats the header for logs and test failures.
func (h Header) String() string {
	return fmt.Sprintf("v%d %v flags=%#04x len=%d", h.Version, h.Type, h.Flags, h.Length)
}

// ParseHeader parses the header at the start of b and checks it, in this
// order: the version byte must be ProtocolVersion (else
// ErrUnsupportedVersion: nothing after it can be trusted), the payload length
// must not exceed maxFrame (else ErrFrameTooLarge), and the type must not be 0
// (else ErrMalformed). A maxFrame of 0 means DefaultMaxFrameSize. Unknown
// types and flags are accepted: they are for the caller to count and drop, or
// to ignore. A b shorter than HeaderSize yields ErrMalformed.
//
// On error the returned Header holds the raw fields, for diagnostics only.
func ParseHeader(b []byte, maxFrame uint32) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: header is %d bytes, want %d", ErrMalformed, len(b), HeaderSize)
	}
	h := Header{
		Version: b[0],
		Type:    Type(b[1]),
		Flags:   binary.BigEndian.Uint16(b[2:4]),
		Length:  binary.BigEndian.Uint32(b[4:8]),
	}
	if h.Version != ProtocolVersion {
		return h, fmt.Errorf("%w: version byte %#02x, want %#02x", ErrUnsupportedVersion, h.Version, ProtocolVersion)
	}
	if maxFrame == 0 {
		maxFrame = DefaultMaxFrameSize
	}
	if h.Length > maxFrame {
		return h, fmt.Errorf("%w: %v payload of %d bytes exceeds the maximum of %d", ErrFrameTooLarge, h.Type, h.Length, maxFrame)
	}
	if h.Type == TypeInvalid {
		return h, fmt.Errorf("%w: packet type 0 is reserved", ErrMalformed)
	}
	return h, nil
}

// AppendFrame appends a whole frame carrying p (header, then payload) to dst
// and returns the extended slice. It reserves the header, lets p append its
// payload directly after it, then writes the header with the final length, so
// it does not allocate when dst has enough capacity: a writer can encode every
// frame into one reused buffer.
//
// AppendFrame is generic so that a packet passed by concrete type, as in
// AppendFrame(buf, Data{...}), is not boxed into a Packet interface (which
// would cost an allocation per frame); callers holding a Packet interface call
// it the same way.
//
// AppendFrame does not validate p (see Validate) nor compare the length with
// the peer's maximum frame size; the sender does that. It panics if the
// payload exceeds 2^32-1 bytes, which no frame can carry.
func AppendFrame[P Packet](dst []byte, p P) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...) // no allocation: the compiler appends zeros in place
	dst = p.AppendPayload(dst)
	return finishFrame(dst, start, p.Type())
}

// AppendRawFrame appends a frame of type t carrying payload as is. It is how
// application-defined packet types (0x80-0xFF), or payloads encoded ahead of
// time, are sent. It panics if the payload exceeds 2^32-1 bytes.
func AppendRawFrame(dst []byte, t Type, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	dst = append(dst, payload...)
	return finishFrame(dst, start, t)
}

// finishFrame writes the header of the frame that starts at dst[start:],
// now that its payload length is known.
func finishFrame(dst []byte, start int, t Type) []byte {
	n := len(dst) - start - HeaderSize
	if uint64(n) > math.MaxUint32 {
		panic(fmt.Sprintf("wire: %v payload of %d bytes does not fit in a frame", t, n))
	}
	Header{Version: ProtocolVersion, Type: t, Length: uint32(n)}.Put(dst[start:])
	return dst
}
