package wire

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// This file holds the primitive field encodings of docs/protocol.md, section
// 2.1: fixed-size big-endian integers, minimal uvarints, length-prefixed
// UTF-8 strings and "rest of payload" bytes.

// appendString appends s as a string field: uvarint length, then the bytes.
func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// malformed builds an ErrMalformed error naming the packet and field at fault,
// so that a log line says exactly what a peer got wrong.
func malformed(packet, field, format string, args ...any) error {
	return fmt.Errorf("%w: %s.%s: %s", ErrMalformed, packet, field, fmt.Sprintf(format, args...))
}

// checkString returns an ErrMalformed error unless s may be sent as a string
// field of at most limit bytes. It is the sender-side twin of decoder.string.
func checkString(packet, field, s string, limit int) error {
	if len(s) > limit {
		return malformed(packet, field, "length %d exceeds limit %d", len(s), limit)
	}
	if !utf8.ValidString(s) {
		return malformed(packet, field, "invalid UTF-8")
	}
	return nil
}

// decoder reads the fields of one payload in order. The first error sticks:
// later reads return zero values and do not overwrite it, so a decode
// function reads all its fields and checks the error once, in finish.
type decoder struct {
	b      []byte // the bytes not yet read
	err    error
	packet string // packet name for error messages
}

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = malformed(d.packet, field, format, args...)
	}
	d.b = nil
}

// fixed returns the next n bytes, or nil after recording a truncation error.
func (d *decoder) fixed(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail(field, "truncated: need %d bytes, have %d", n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint8(field string) uint8 {
	if b := d.fixed(field, 1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) uint16(field string) uint16 {
	if b := d.fixed(field, 2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

// uvarint reads a uvarint and insists on its minimal encoding, which keeps
// the encoding canonical (one valid byte string per value).
func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.fail(field, "truncated uvarint")
		return 0
	case n < 0:
		d.fail(field, "uvarint overflows 64 bits")
		return 0
	case n > 1 && d.b[n-1] == 0:
		// A final group of zero bits could have been left out.
		d.fail(field, "non-minimal uvarint encoding")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a uvarint element count of at most limit.
func (d *decoder) count(field string, limit int) int {
	n := d.uvarint(field)
	if d.err == nil && n > uint64(limit) {
		d.fail(field, "count %d exceeds limit %d", n, limit)
		return 0
	}
	return int(n)
}

// string reads a string field of at most limit bytes. The limit is checked
// before the bytes are looked at, and the result is a copy, so it does not
// pin the payload.
func (d *decoder) string(field string, limit int) string {
	n := d.uvarint(field)
	if d.err != nil {
		return ""
	}
	if n > uint64(limit) {
		d.fail(field, "length %d exceeds limit %d", n, limit)
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(field, "length %d exceeds the %d bytes left in the payload", n, len(d.b))
		return ""
	}
	b := d.b[:n]
	if !utf8.Valid(b) {
		d.fail(field, "invalid UTF-8")
		return ""
	}
	d.b = d.b[n:]
	return string(b)
}

// rest returns the rest of the payload without copying it, or nil when it is
// empty (so that an empty body decodes the same as a zero-value packet).
func (d *decoder) rest() []byte {
	if d.err != nil || len(d.b) == 0 {
		d.b = nil
		return nil
	}
	// Cap the slice at its length so that a handler appending to it cannot
	// write past the payload into a caller's buffer.
	v := d.b[:len(d.b):len(d.b)]
	d.b = nil
	return v
}

// finish returns the first error, or an error if bytes are left over: a
// payload must contain exactly its fields.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformed, d.packet, len(d.b))
	}
	return d.err
}
