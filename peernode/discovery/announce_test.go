package discovery

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/peermesh/peermesh/peernode/wire"
)

// TestAnnouncementGolden pins the byte layout documented in
// docs/discovery.md.
func TestAnnouncementGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    announcement
		hex  string
	}{
		{
			"hello",
			announcement{Mesh: "m", ID: "n1", Addr: "10.0.0.1:7946"},
			"504d4c41" + "01" + "00" + "016d" + "026e31" + "0d" + hex.EncodeToString([]byte("10.0.0.1:7946")),
		},
		{
			"leaving, no mesh",
			announcement{ID: "n1", Addr: "[::1]:1", Leaving: true},
			"504d4c41" + "01" + "01" + "00" + "026e31" + "07" + hex.EncodeToString([]byte("[::1]:1")),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := appendAnnouncement(nil, tc.a)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(b); got != tc.hex {
				t.Fatalf("encoded\n got %s\nwant %s", got, tc.hex)
			}
			back, err := decodeAnnouncement(b)
			if err != nil || back != tc.a {
				t.Fatalf("decode = %+v, %v; want %+v", back, err, tc.a)
			}
		})
	}
}

func TestAnnouncementMaxSize(t *testing.T) {
	a := announcement{
		Mesh: strings.Repeat("m", wire.MaxMeshNameLen),
		ID:   strings.Repeat("i", wire.MaxNodeIDLen),
		// The longest address: a bracketed 253-byte IPv6 literal with zone.
		Addr: "[fe80::1%" + strings.Repeat("z", 253-len("fe80::1%")) + "]:65535",
	}
	b, err := appendAnnouncement(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != MaxDatagramSize {
		t.Fatalf("largest announcement is %d bytes, MaxDatagramSize %d", len(b), MaxDatagramSize)
	}
	if _, err := decodeAnnouncement(b); err != nil {
		t.Fatalf("largest announcement: %v", err)
	}
	if _, err := decodeAnnouncement(append(b, 0)); !errors.Is(err, errMalformed) {
		t.Fatalf("oversize: err = %v", err)
	}
}

func TestDecodeAnnouncementRejects(t *testing.T) {
	valid, _ := appendAnnouncement(nil, announcement{Mesh: "m", ID: "n1", Addr: "10.0.0.1:7946"})
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errMalformed},
		{"short", valid[:5], errMalformed},
		{"bad magic", mod(func(b []byte) []byte { b[0] = 'X'; return b }), errMalformed},
		{"version 2", mod(func(b []byte) []byte { b[4] = 2; return b }), errUnsupportedVersion},
		{"version 0", mod(func(b []byte) []byte { b[4] = 0; return b }), errUnsupportedVersion},
		{"unknown flag", mod(func(b []byte) []byte { b[5] = 0x80; return b }), errMalformed},
		{"truncated", valid[:len(valid)-1], errMalformed},
		{"trailing byte", append(bytes.Clone(valid), 0), errMalformed},
		{"length past end", mod(func(b []byte) []byte { b[6] = 0x7f; return b }), errMalformed},
		{"unterminated uvarint", []byte("PMLA\x01\x00\xff\xff"), errMalformed},
		{"non-minimal length", []byte("PMLA\x01\x00\x80\x00\x02n1\x03a:1"), errMalformed},
		{"empty id", []byte("PMLA\x01\x00\x00\x00\x03a:1"), errMalformed},
		{"invalid UTF-8 id", []byte("PMLA\x01\x00\x00\x02\xff\xfe\x03a:1"), errMalformed},
		{"addr without port", []byte("PMLA\x01\x00\x00\x02n1\x01a"), errMalformed},
		{"addr port 0", []byte("PMLA\x01\x00\x00\x02n1\x03a:0"), errMalformed},
		{"addr bad host", []byte("PMLA\x01\x00\x00\x02n1\x05a b:1"), errMalformed},
		{"mesh too long", append([]byte("PMLA\x01\x00\xfe\x01"), bytes.Repeat([]byte("m"), 254)...), errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeAnnouncement(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzDecodeAnnouncement: decoding never panics, and whatever decodes
// re-encodes to the same bytes (the encoding is canonical).
func FuzzDecodeAnnouncement(f *testing.F) {
	for _, a := range []announcement{
		{Mesh: "m", ID: "n1", Addr: "10.0.0.1:7946"},
		{ID: "x", Addr: "[fd00::1]:1", Leaving: true},
		{Mesh: "prod", ID: "5b0c2b1e-9f0a-5d4c-8a51-4f5c0e1d2a3b", Addr: "0.0.0.0:7946"},
	} {
		b, _ := appendAnnouncement(nil, a)
		f.Add(b)
	}
	f.Add([]byte("PMLA\x01\x00\x80\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAnnouncement(b)
		if err != nil {
			return
		}
		again, err := appendAnnouncement(nil, a)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", a, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %x re-encodes to %x", b, again)
		}
	})
}
