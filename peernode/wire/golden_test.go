package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// unhex decodes a hex literal written with spaces and '|' separators for
// readability, as in the examples of docs/protocol.md.
func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	s = strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("bad hex literal %q: %v", s, err)
	}
	return b
}

// goldenVector is one example of docs/protocol.md, section 8. The frame bytes
// were derived by hand from the specification, not produced by the encoder,
// so these tests check the code against the document.
type goldenVector struct {
	name   string
	packet Packet
	frame  string // hex
}

func goldenVectors() []goldenVector {
	return []goldenVector{
		{
			name: "hello",
			packet: Hello{
				ProtocolVersion: 1,
				NodeID:          "n1",
				ListenAddr:      "10.0.0.1:7946",
				MeshName:        "default",
				Capabilities:    []string{"ping"},
			},
			frame: "01 01 0000 00000021 | 0001 | 02 6e31 | 0d 31302e302e302e313a37393436 | 07 64656661756c74 | 01 04 70696e67",
		},
		{
			name:   "hello empty",
			packet: Hello{},
			frame:  "01 01 0000 00000006 | 0000 | 00 | 00 | 00 | 00",
		},
		{
			name:   "disconnect",
			packet: Disconnect{Code: DisconnectPolicyDenied, Reason: "blocked"},
			frame:  "01 02 0000 0000000a | 0002 | 07 626c6f636b6564",
		},
		{
			name:   "disconnect two-byte uvarint",
			packet: Disconnect{Code: DisconnectShutdown, Reason: strings.Repeat("x", 300)},
			frame:  "01 02 0000 00000130 | 0001 | ac02" + strings.Repeat("78", 300),
		},
		{
			name: "peer group",
			packet: PeerGroup{Peers: []PeerInfo{
				{NodeID: "a", Addr: "10.0.0.2:7946"},
				{NodeID: "b", Addr: "[::1]:7946"},
			}},
			frame: "01 03 0000 0000001e | 02 | 01 61 0d 31302e302e302e323a37393436 | 01 62 0a 5b3a3a315d3a37393436",
		},
		{
			name:   "peer group empty",
			packet: PeerGroup{},
			frame:  "01 03 0000 00000001 | 00",
		},
		{
			name:   "data",
			packet: Data{Format: DataFormatTask, Body: []byte{0xde, 0xad, 0xbe, 0xef}},
			frame:  "01 04 0000 00000005 | 02 | deadbeef",
		},
		{
			name:   "data unknown format",
			packet: Data{Format: 0x7f},
			frame:  "01 04 0000 00000001 | 7f",
		},
		{
			name:   "message",
			packet: Message{Text: "hi ✓"},
			frame:  "01 05 0000 00000006 | 686920e29c93",
		},
		{
			name:   "message empty",
			packet: Message{},
			frame:  "01 05 0000 00000000",
		},
		{
			name:   "ping",
			packet: Ping{Seq: 1, SentUnixNano: 0x0102030405060708},
			frame:  "01 06 0000 00000010 | 0000000000000001 | 0102030405060708",
		},
		{
			name:   "pong",
			packet: Pong{Seq: 0xfffffffffffffffe, SentUnixNano: -1},
			frame:  "01 07 0000 00000010 | fffffffffffffffe | ffffffffffffffff",
		},
		{
			name:   "trust",
			packet: Trust{Protocol: "sharedKey", Step: 2, Body: []byte{1, 2}},
			frame:  "01 10 0000 0000000d | 09 7368617265644b6579 | 02 | 0102",
		},
	}
}

func TestGoldenEncode(t *testing.T) {
	for _, tc := range goldenVectors() {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.frame)
			got := AppendFrame(nil, tc.packet)
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendFrame(%#v):\n got %x\nwant %x", tc.packet, got, want)
			}
			// Appending after existing bytes must leave them alone.
			prefix := []byte("prefix")
			got = AppendFrame(append([]byte(nil), prefix...), tc.packet)
			if !bytes.Equal(got, append(prefix, want...)) {
				t.Fatalf("AppendFrame after a prefix:\n got %x\nwant %x%x", got, prefix, want)
			}
			if err := Validate(tc.packet); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestGoldenDecode(t *testing.T) {
	for _, tc := range goldenVectors() {
		t.Run(tc.name, func(t *testing.T) {
			frame := unhex(t, tc.frame)
			h, err := ParseHeader(frame, 0)
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			want := Header{Version: ProtocolVersion, Type: tc.packet.Type(), Length: uint32(len(frame) - HeaderSize)}
			if h != want {
				t.Fatalf("ParseHeader = %v, want %v", h, want)
			}
			got, err := DecodePayload(h.Type, frame[HeaderSize:])
			if err != nil {
				t.Fatalf("DecodePayload: %v", err)
			}
			if !reflect.DeepEqual(got, tc.packet) {
				t.Fatalf("DecodePayload:\n got %#v\nwant %#v", got, tc.packet)
			}
		})
	}
}

// TestGoldenRawFrame checks example 14: an application-defined frame, which
// the wire layer frames but does not decode.
func TestGoldenRawFrame(t *testing.T) {
	want := unhex(t, "01 80 0000 00000003 | 616263")
	got := AppendRawFrame(nil, 0x80, []byte("abc"))
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendRawFrame:\n got %x\nwant %x", got, want)
	}
	h, err := ParseHeader(got, 0)
	if err != nil {
		t.Fatalf("ParseHeader: %v", err)
	}
	if h.Type != 0x80 || !h.Type.IsApplication() || h.Type.IsKnown() {
		t.Fatalf("header type %v: want an unknown application type", h.Type)
	}
	if _, err := DecodePayload(h.Type, got[HeaderSize:]); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("DecodePayload(0x80) error = %v, want ErrUnknownType", err)
	}
}
