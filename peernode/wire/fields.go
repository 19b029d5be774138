package wire

import "encoding/binary"

// FieldDecoder reads, in order, the primitive fields of a payload with the
// rules of docs/protocol.md section 2.1 (big-endian integers, minimal
// uvarints, length-checked UTF-8 strings, rest-of-payload bytes), for packet
// types defined outside this package, such as the data-distribution types.
// The first error sticks: later reads return zero values, and Finish
// reports it, or the trailing bytes of a payload with more than its fields.
type FieldDecoder struct{ d decoder }

// NewFieldDecoder returns a decoder of payload; packet names the packet in
// errors ("FileOffer.Size: truncated ...").
func NewFieldDecoder(packet string, payload []byte) *FieldDecoder {
	return &FieldDecoder{d: decoder{b: payload, packet: packet}}
}

// Fixed returns the next n bytes (aliasing the payload).
func (f *FieldDecoder) Fixed(field string, n int) []byte { return f.d.fixed(field, n) }

// Uint16 reads a big-endian uint16.
func (f *FieldDecoder) Uint16(field string) uint16 { return f.d.uint16(field) }

// Uint32 reads a big-endian uint32.
func (f *FieldDecoder) Uint32(field string) uint32 {
	if b := f.d.fixed(field, 4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// Uint64 reads a big-endian uint64.
func (f *FieldDecoder) Uint64(field string) uint64 {
	if b := f.d.fixed(field, 8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// String reads a string field of at most limit bytes.
func (f *FieldDecoder) String(field string, limit int) string { return f.d.string(field, limit) }

// Rest returns the rest of the payload (aliasing it; nil when empty).
func (f *FieldDecoder) Rest() []byte { return f.d.rest() }

// Fail records a malformed-field error unless one is recorded already.
func (f *FieldDecoder) Fail(field, format string, args ...any) { f.d.fail(field, format, args...) }

// Err returns the first error so far.
func (f *FieldDecoder) Err() error { return f.d.err }

// Finish returns the first error, or an error if bytes are left over.
func (f *FieldDecoder) Finish() error { return f.d.finish() }

// Malformed returns an ErrMalformed error naming the packet and field.
func Malformed(packet, field, format string, args ...any) error {
	return malformed(packet, field, format, args...)
}

// CheckString returns an ErrMalformed error unless s may be sent as a string
// field of at most limit bytes: the sender-side twin of FieldDecoder.String.
func CheckString(packet, field, s string, limit int) error {
	return checkString(packet, field, s, limit)
}
