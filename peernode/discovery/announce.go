package discovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/peermesh/peermesh/peernode/wire"
)

// LAN announcement datagram, version 1 (docs/discovery.md, "LAN datagram"):
//
//	magic "PMLA" (4) | version 0x01 (1) | flags (1) | mesh string | id string | addr string
//
// where a string is a minimal uvarint byte length followed by that many bytes
// of UTF-8, as in the wire protocol. Nothing may follow addr.
const (
	announceMagic   = "PMLA"
	announceVersion = 1
	// flagLeaving marks a node's last announcement: it is shutting down and
	// receivers drop it at once instead of waiting for the TTL.
	flagLeaving = 0x01
	// MaxDatagramSize bounds an announcement: the header and the three
	// strings at their wire-protocol maximum lengths, each behind a 2-byte
	// uvarint. Receivers read at most one byte more and drop anything
	// longer.
	MaxDatagramSize = 6 + (2 + wire.MaxMeshNameLen) + (2 + wire.MaxNodeIDLen) + (2 + wire.MaxAddrLen)
)

// Errors of decodeAnnouncement.
var (
	errMalformed          = errors.New("malformed announcement")
	errUnsupportedVersion = errors.New("unsupported announcement version")
)

// announcement is one decoded LAN datagram.
type announcement struct {
	Mesh    string
	ID      string
	Addr    string
	Leaving bool
}

// appendAnnouncement encodes a. It fails when a field is empty (ID, Addr) or
// longer than its limit, so that a node never sends what others would drop.
func appendAnnouncement(b []byte, a announcement) ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	b = append(b, announceMagic...)
	b = append(b, announceVersion, 0)
	if a.Leaving {
		b[len(b)-1] = flagLeaving
	}
	for _, s := range []string{a.Mesh, a.ID, a.Addr} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

func (a announcement) validate() error {
	switch {
	case a.ID == "" || len(a.ID) > wire.MaxNodeIDLen || !utf8.ValidString(a.ID):
		return fmt.Errorf("%w: id must be 1-%d bytes of UTF-8", errMalformed, wire.MaxNodeIDLen)
	case len(a.Mesh) > wire.MaxMeshNameLen || !utf8.ValidString(a.Mesh):
		return fmt.Errorf("%w: mesh must be at most %d bytes of UTF-8", errMalformed, wire.MaxMeshNameLen)
	case len(a.Addr) > wire.MaxAddrLen:
		return fmt.Errorf("%w: addr longer than %d bytes", errMalformed, wire.MaxAddrLen)
	}
	if err := checkHostPort(a.Addr); err != nil {
		return fmt.Errorf("%w: addr: %w", errMalformed, err)
	}
	return nil
}

// decodeAnnouncement decodes and validates one datagram. It never allocates
// more than the datagram's size: every length is checked against its limit
// and against the bytes left before anything is copied.
func decodeAnnouncement(b []byte) (announcement, error) {
	var a announcement
	if len(b) > MaxDatagramSize {
		return a, fmt.Errorf("%w: %d bytes, more than %d", errMalformed, len(b), MaxDatagramSize)
	}
	if len(b) < 6 || string(b[:4]) != announceMagic {
		return a, fmt.Errorf("%w: bad magic", errMalformed)
	}
	if b[4] != announceVersion {
		return a, fmt.Errorf("%w %d", errUnsupportedVersion, b[4])
	}
	flags := b[5]
	if flags&^flagLeaving != 0 {
		return a, fmt.Errorf("%w: unknown flags %#02x", errMalformed, flags)
	}
	a.Leaving = flags&flagLeaving != 0
	rest := b[6:]
	for _, f := range []struct {
		dst   *string
		name  string
		limit int
	}{{&a.Mesh, "mesh", wire.MaxMeshNameLen}, {&a.ID, "id", wire.MaxNodeIDLen}, {&a.Addr, "addr", wire.MaxAddrLen}} {
		n, k := binary.Uvarint(rest)
		if k <= 0 {
			return a, fmt.Errorf("%w: %s: bad length", errMalformed, f.name)
		}
		if k > 1 && rest[k-1] == 0 {
			return a, fmt.Errorf("%w: %s: non-minimal length", errMalformed, f.name)
		}
		if n > uint64(f.limit) || n > uint64(len(rest)-k) {
			return a, fmt.Errorf("%w: %s: length %d too long", errMalformed, f.name, n)
		}
		*f.dst = string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
	}
	if len(rest) != 0 {
		return a, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(rest))
	}
	if err := a.validate(); err != nil {
		return a, err
	}
	return a, nil
}
