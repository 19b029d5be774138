package transfer_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/peermesh/peermesh/peernode/transfer"
	"github.com/peermesh/peermesh/peernode/wire"
)

// unhex decodes a hex literal written with spaces and '|' separators, as in
// docs/protocol.md.
func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	s = strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("bad hex literal %q: %v", s, err)
	}
	return b
}

// goldenID is the transfer ID of the examples of docs/protocol.md, 9.7.
var goldenID = transfer.ID{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}

const goldenIDHex = "00112233445566778899aabbccddeeff"

// sha256("abc")
var abcSum = [32]byte{
	0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
	0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
}

// goldenVectors are the examples of docs/protocol.md, section 9.7, whose
// bytes were written by hand from the specification: the transfer of the
// 3-byte file "abc.txt" holding "abc".
func goldenVectors() []struct {
	name   string
	packet wire.Packet
	frame  string
} {
	return []struct {
		name   string
		packet wire.Packet
		frame  string
	}{
		{
			"offer",
			transfer.Offer{ID: goldenID, Size: 3, ChunkSize: 65536, Window: 1 << 20, SHA256: abcSum, Name: "abc.txt"},
			"01 20 0000 00000048 | " + goldenIDHex + " | 0000000000000003 | 00010000 | 00100000 |" +
				" ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad | 07 6162632e747874",
		},
		{
			"ack accepting",
			transfer.Ack{ID: goldenID, Offset: 0},
			"01 22 0000 00000018 | " + goldenIDHex + " | 0000000000000000",
		},
		{
			"chunk",
			transfer.Chunk{ID: goldenID, Offset: 0, Data: []byte("abc")},
			"01 21 0000 0000001b | " + goldenIDHex + " | 0000000000000000 | 616263",
		},
		{
			"ack of 3 bytes",
			transfer.Ack{ID: goldenID, Offset: 3},
			"01 22 0000 00000018 | " + goldenIDHex + " | 0000000000000003",
		},
		{
			"result ok",
			transfer.Result{ID: goldenID, Code: transfer.CodeOK, Detail: "abc.txt"},
			"01 23 0000 0000001a | " + goldenIDHex + " | 0000 | 07 6162632e747874",
		},
		{
			"result hash mismatch",
			transfer.Result{ID: goldenID, Code: transfer.CodeHashMismatch},
			"01 23 0000 00000013 | " + goldenIDHex + " | 0006 | 00",
		},
		{
			"abort",
			transfer.Abort{ID: goldenID, Code: transfer.CodeCancelled, Reason: "user"},
			"01 24 0000 00000017 | " + goldenIDHex + " | 0001 | 04 75736572",
		},
	}
}

func TestGoldenVectors(t *testing.T) {
	for _, v := range goldenVectors() {
		t.Run(v.name, func(t *testing.T) {
			want := unhex(t, v.frame)
			if err := wire.Validate(v.packet); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got := wire.AppendFrame(nil, v.packet)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n got %x\nwant %x", got, want)
			}
			h, err := wire.ParseHeader(want, 0)
			if err != nil || h.Type != v.packet.Type() || int(h.Length) != len(want)-wire.HeaderSize {
				t.Fatalf("header %v, %v", h, err)
			}
			p, err := transfer.Decode(h.Type, want[wire.HeaderSize:])
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(p, v.packet) {
				t.Errorf("decoded %#v, want %#v", p, v.packet)
			}
		})
	}
}

func TestIDString(t *testing.T) {
	if got := goldenID.String(); got != "00112233-4455-6677-8899-aabbccddeeff" {
		t.Errorf("String = %q", got)
	}
	id, err := transfer.ParseID(goldenID.String())
	if err != nil || id != goldenID {
		t.Errorf("ParseID = %v, %v", id, err)
	}
	if a, b := transfer.NewID(), transfer.NewID(); a == b || a.IsZero() {
		t.Errorf("NewID gave %v and %v", a, b)
	}
}

// TestMalformed: payloads each decoder must reject with wire.ErrMalformed,
// and packets Validate must refuse to send.
func TestMalformed(t *testing.T) {
	id := goldenIDHex
	offerTail := "0000000000000003 | 00010000 | 00100000 | " + strings.Repeat("00", 32)
	cases := []struct {
		name    string
		typ     wire.Type
		payload string
	}{
		{"offer zero ID", transfer.TypeFileOffer, strings.Repeat("00", 16) + offerTail + "00"},
		{"offer truncated", transfer.TypeFileOffer, id + "0000000000000003 | 00010000 | 00100000 | " + strings.Repeat("00", 31)},
		{"offer no name", transfer.TypeFileOffer, id + offerTail},
		{"offer chunk size 0", transfer.TypeFileOffer, id + "0000000000000003 | 00000000 | 00100000 |" + strings.Repeat("00", 32) + "00"},
		{"offer chunk size over 1 MiB", transfer.TypeFileOffer, id + "0000000000000003 | 00100001 | 00200000 |" + strings.Repeat("00", 32) + "00"},
		{"offer window below chunk", transfer.TypeFileOffer, id + "0000000000000003 | 00010000 | 0000ffff |" + strings.Repeat("00", 32) + "00"},
		{"offer name over 255", transfer.TypeFileOffer, id + offerTail + "8002" + strings.Repeat("61", 256)},
		{"offer name non-minimal", transfer.TypeFileOffer, id + offerTail + "8000"},
		{"offer name not UTF-8", transfer.TypeFileOffer, id + offerTail + "01ff"},
		{"offer name runs out", transfer.TypeFileOffer, id + offerTail + "0561"},
		{"offer trailing byte", transfer.TypeFileOffer, id + offerTail + "00 00"},
		{"chunk no data", transfer.TypeFileChunk, id + "0000000000000000"},
		{"chunk offset overflow", transfer.TypeFileChunk, id + "ffffffffffffffff | 61"},
		{"chunk zero ID", transfer.TypeFileChunk, strings.Repeat("00", 16) + "0000000000000000 | 61"},
		{"chunk truncated", transfer.TypeFileChunk, id + "00000000"},
		{"ack short", transfer.TypeFileAck, id + "00000000000000"},
		{"ack trailing byte", transfer.TypeFileAck, id + "0000000000000000 00"},
		{"result no detail", transfer.TypeFileResult, id + "0000"},
		{"result trailing byte", transfer.TypeFileResult, id + "0000 00 00"},
		{"result detail over 1024", transfer.TypeFileResult, id + "0006 8108" + strings.Repeat("61", 1025)},
		{"abort code 0", transfer.TypeFileAbort, id + "0000 00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := transfer.Decode(tc.typ, unhex(t, tc.payload))
			if !errors.Is(err, wire.ErrMalformed) || p != nil {
				t.Errorf("Decode = %#v, %v; want ErrMalformed", p, err)
			}
		})
	}
	big := make([]byte, transfer.MaxChunkSize+1)
	if _, err := transfer.Decode(transfer.TypeFileChunk, append(unhex(t, id+"0000000000000000"), big...)); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("chunk over MaxChunkSize: %v", err)
	}
	if _, err := transfer.Decode(wire.TypeData, []byte{1}); !errors.Is(err, wire.ErrUnknownType) {
		t.Errorf("Decode(Data) = %v, want ErrUnknownType", err)
	}

	for _, p := range []wire.Packet{
		transfer.Offer{Size: 1, ChunkSize: 1, Window: 1, Name: "x"},
		transfer.Offer{ID: goldenID, ChunkSize: 0, Window: 1, Name: "x"},
		transfer.Offer{ID: goldenID, ChunkSize: 2, Window: 1, Name: "x"},
		transfer.Offer{ID: goldenID, ChunkSize: 1, Window: 1, Name: strings.Repeat("x", 256)},
		transfer.Offer{ID: goldenID, ChunkSize: 1, Window: 1, Name: "\xff"},
		transfer.Chunk{ID: goldenID},
		transfer.Chunk{ID: goldenID, Offset: 1<<64 - 1, Data: []byte{1}},
		transfer.Ack{},
		transfer.Result{ID: goldenID, Detail: strings.Repeat("x", 1025)},
		transfer.Abort{ID: goldenID},
	} {
		if err := wire.Validate(p); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("Validate(%#v) = %v, want ErrMalformed", p, err)
		}
	}
}

// FuzzDecode: a decoder never panics; it fails with a documented error and
// no packet, or yields a valid packet that re-encodes to the same bytes
// (the encoding is canonical) and to an equal value.
func FuzzDecode(f *testing.F) {
	for _, v := range goldenVectors() {
		frame := unhex(f, v.frame)
		f.Add(frame[1], frame[wire.HeaderSize:])
	}
	f.Add(uint8(transfer.TypeFileOffer), unhex(f, goldenIDHex+"0000000000000003 00010000 00100000"+strings.Repeat("00", 32)+"8000"))
	f.Add(uint8(transfer.TypeFileChunk), unhex(f, goldenIDHex+"ffffffffffffffff 61"))
	f.Add(uint8(transfer.TypeFileResult), unhex(f, goldenIDHex+"0006 ffffffffffffffffff7f"))
	f.Fuzz(func(t *testing.T, typ uint8, payload []byte) {
		p, err := transfer.Decode(wire.Type(typ), payload)
		if err != nil {
			if p != nil {
				t.Fatalf("Decode returned %#v with error %v", p, err)
			}
			if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnknownType) {
				t.Fatalf("error %v wraps no documented sentinel", err)
			}
			return
		}
		if p.Type() != wire.Type(typ) {
			t.Fatalf("decoded a %v from type %#x", p.Type(), typ)
		}
		if err := wire.Validate(p); err != nil {
			t.Fatalf("decoded %#v fails Validate: %v", p, err)
		}
		frame := wire.AppendFrame(nil, p)
		if !bytes.Equal(frame[wire.HeaderSize:], payload) {
			t.Fatalf("re-encodes differently:\n got %x\nwant %x", frame[wire.HeaderSize:], payload)
		}
		p2, err := transfer.Decode(p.Type(), frame[wire.HeaderSize:])
		if err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("round trip: %#v, %v; want %#v", p2, err, p)
		}
	})
}

func TestValidateName(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"report.pdf", true},
		{"a", true},
		{".bashrc", true},
		{"archive.tar.gz", true},
		{"spaces are fine.txt", true},
		{"ünïcødé-文件.txt", true},
		{"emoji 👍🏽.png", true},
		{"...", true},
		{"a..b", true},
		{strings.Repeat("x", 255), true},
		{"", false},
		{".", false},
		{"..", false},
		{"../etc/passwd", false},
		{"dir/file", false},
		{"/abs", false},
		{"file/", false},
		{`C:\windows`, false},
		{`..\x`, false},
		{"nul\x00byte", false},
		{"new\nline", false},
		{"tab\there", false},
		{"esc\x1b[31m", false},
		{"del\x7f", false},
		{"c1\u0085", false},
		{"gpj\u202eexe.txt", false},
		{"lrm\u200e", false},
		{"isolate\u2066x", false},
		{"bad\xffutf8", false},
		{strings.Repeat("x", 256), false},
		{".peermesh-transfer-123.part", false},
	}
	for _, tc := range cases {
		err := transfer.ValidateName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, transfer.ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, not ErrInvalidName", tc.name, err)
		}
	}
}

func TestErrorMatching(t *testing.T) {
	var err error = &transfer.Error{Code: transfer.CodeHashMismatch, Reason: "x", Remote: true}
	if !errors.Is(err, transfer.ErrHashMismatch) || errors.Is(err, transfer.ErrTimeout) {
		t.Errorf("errors.Is mismatch for %v", err)
	}
	if got := err.Error(); got != "transfer: hash_mismatch (reported by the peer): x" {
		t.Errorf("Error() = %q", got)
	}
	if got := transfer.Code(999).String(); got != "code_999" {
		t.Errorf("unknown code = %q", got)
	}
}
