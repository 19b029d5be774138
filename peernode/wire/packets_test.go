package wire

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// roundTrip encodes p as a frame, parses the header and decodes the payload.
func roundTrip(tb testing.TB, p Packet) Packet {
	tb.Helper()
	frame := AppendFrame(nil, p)
	h, err := ParseHeader(frame, uint32(len(frame)))
	if err != nil {
		tb.Fatalf("ParseHeader: %v", err)
	}
	if int(h.Length) != len(frame)-HeaderSize || h.Type != p.Type() {
		tb.Fatalf("header %v does not match the %v frame of %d bytes", h, p.Type(), len(frame))
	}
	got, err := DecodePayload(h.Type, frame[HeaderSize:])
	if err != nil {
		tb.Fatalf("DecodePayload: %v", err)
	}
	return got
}

func TestRoundTrip(t *testing.T) {
	maxCaps := make([]string, MaxCapabilities)
	for i := range maxCaps {
		maxCaps[i] = strings.Repeat(string(rune('a'+i%26)), MaxCapabilityLen)
	}
	maxPeers := make([]PeerInfo, MaxPeerGroupEntries)
	for i := range maxPeers {
		maxPeers[i] = PeerInfo{NodeID: strings.Repeat("n", MaxNodeIDLen), Addr: strings.Repeat("a", MaxAddrLen)}
	}
	bigBody := make([]byte, 1<<20)
	for i := range bigBody {
		bigBody[i] = byte(i * 7)
	}
	tests := []struct {
		name string
		p    Packet
	}{
		{"hello zero", Hello{}},
		{"hello typical", Hello{ProtocolVersion: ProtocolVersion, NodeID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", ListenAddr: "10.1.2.3:7946", MeshName: "prod", Capabilities: []string{"trust/sharedKey", "pex"}}},
		{"hello ipv6 no listen", Hello{ProtocolVersion: 0xffff, NodeID: "node-0", MeshName: "m"}},
		{"hello unicode", Hello{NodeID: "nœud-ü-日本", ListenAddr: "[fe80::1%eth0]:1", MeshName: "网格", Capabilities: []string{"", "🚀"}}},
		{"hello max sizes", Hello{NodeID: strings.Repeat("i", MaxNodeIDLen), ListenAddr: strings.Repeat("a", MaxAddrLen), MeshName: strings.Repeat("m", MaxMeshNameLen), Capabilities: maxCaps}},
		{"disconnect zero", Disconnect{}},
		{"disconnect unknown code", Disconnect{Code: 0xffff, Reason: "from the future"}},
		{"disconnect max reason", Disconnect{Code: DisconnectProtocolError, Reason: strings.Repeat("é", MaxReasonLen/2)}},
		{"peer group one empty entry", PeerGroup{Peers: []PeerInfo{{}}}},
		{"peer group max", PeerGroup{Peers: maxPeers}},
		{"data file", Data{Format: DataFormatFile, Body: []byte("chunk")}},
		{"data misc empty body", Data{Format: DataFormatMisc}},
		{"data unknown format", Data{Format: 0xff, Body: []byte{0}}},
		{"data 1 MiB", Data{Format: DataFormatFile, Body: bigBody}},
		{"message zero", Message{}},
		{"message unicode", Message{Text: "héllo, 世界 🌍\x00\n"}},
		{"message large", Message{Text: strings.Repeat("abc", 100000)}},
		{"ping zero", Ping{}},
		{"ping extremes", Ping{Seq: ^uint64(0), SentUnixNano: -1 << 63}},
		{"pong", Pong{Seq: 42, SentUnixNano: 1_700_000_000_000_000_000}},
		{"trust zero", Trust{}},
		{"trust ping", Trust{Protocol: "ping", Step: 255, Body: []byte("Ping from n1")}},
		{"trust max protocol", Trust{Protocol: strings.Repeat("p", MaxTrustProtocolLen), Body: make([]byte, 300)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Validate(tc.p); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got := roundTrip(t, tc.p)
			if !reflect.DeepEqual(got, tc.p) {
				t.Fatalf("round trip changed the packet:\n got %#v\nwant %#v", got, tc.p)
			}
		})
	}
}

// TestDecodeDataAliases checks the documented zero-copy contract: the body of
// a decoded Data packet is the payload's memory, capped at its length.
func TestDecodeDataAliases(t *testing.T) {
	payload := []byte{byte(DataFormatMisc), 1, 2, 3}
	d, err := DecodeData(payload)
	if err != nil {
		t.Fatal(err)
	}
	if &d.Body[0] != &payload[1] {
		t.Fatal("Data.Body is a copy, want an alias of the payload")
	}
	if cap(d.Body) != len(d.Body) {
		t.Fatalf("cap(Body) = %d, want %d so appends cannot overwrite the caller's buffer", cap(d.Body), len(d.Body))
	}
}

func TestDecodeMalformed(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	// Payloads are hex; string lengths over 127 are two-byte uvarints written
	// by hand: 254 = fe01, 262 = 8602, 1025 = 8108.
	tests := []struct {
		name    string
		typ     Type
		payload string // hex
		want    error
	}{
		{"type zero", TypeInvalid, "", ErrMalformed},
		{"reserved core type", 0x08, "", ErrUnknownType},
		{"reserved trust type", 0x11, "00", ErrUnknownType},
		{"data distribution type", 0x20, "", ErrUnknownType},
		{"application type", 0xff, "616263", ErrUnknownType},

		{"hello empty", TypeHello, "", ErrMalformed},
		{"hello truncated version", TypeHello, "00", ErrMalformed},
		{"hello missing fields", TypeHello, "0001", ErrMalformed},
		{"hello missing capabilities", TypeHello, "0001 00 00 00", ErrMalformed},
		{"hello trailing byte", TypeHello, "0000 00 00 00 00 | 00", ErrMalformed},
		{"hello string past end", TypeHello, "0001 05 61", ErrMalformed},
		{"hello invalid utf8", TypeHello, "0001 01 ff 00 00 00", ErrMalformed},
		{"hello overlong utf8", TypeHello, "0001 02 c0af 00 00 00", ErrMalformed},
		{"hello surrogate utf8", TypeHello, "0001 03 eda080 00 00 00", ErrMalformed},
		{"hello non-minimal uvarint", TypeHello, "0000 8000 00 00 00", ErrMalformed},
		{"hello non-minimal uvarint 3 bytes", TypeHello, "0000 818000 00 00 00", ErrMalformed},
		{"hello truncated uvarint", TypeHello, "0000 80", ErrMalformed},
		{"hello uvarint overflow", TypeHello, "0000 ffffffffffffffffff7f 00 00 00", ErrMalformed},
		{"hello uvarint 11 bytes", TypeHello, "0000 8080808080808080808001 00 00 00", ErrMalformed},
		{"hello node id too long", TypeHello, "0000 fe01" + hexOf(long(254)) + "00 00 00", ErrMalformed},
		{"hello addr too long", TypeHello, "0000 00 8602" + hexOf(long(262)) + "00 00", ErrMalformed},
		{"hello mesh too long", TypeHello, "0000 00 00 fe01" + hexOf(long(254)) + "00", ErrMalformed},
		{"hello huge length claim", TypeHello, "0000 ffffffffffffffff7f", ErrMalformed},
		{"hello too many capabilities", TypeHello, "0000 00 00 00 41" + strings.Repeat("00", 65), ErrMalformed},
		{"hello capability too long", TypeHello, "0000 00 00 00 01 41" + hexOf(long(65)), ErrMalformed},
		{"hello fewer capabilities than counted", TypeHello, "0000 00 00 00 03 00 00", ErrMalformed},

		{"disconnect empty", TypeDisconnect, "", ErrMalformed},
		{"disconnect truncated code", TypeDisconnect, "00", ErrMalformed},
		{"disconnect missing reason", TypeDisconnect, "0001", ErrMalformed},
		{"disconnect reason too long", TypeDisconnect, "0001 8108" + hexOf(long(1025)), ErrMalformed},
		{"disconnect trailing", TypeDisconnect, "0001 00 00", ErrMalformed},

		{"peer group empty payload", TypePeerGroup, "", ErrMalformed},
		{"peer group too many", TypePeerGroup, "8108", ErrMalformed},
		{"peer group count past end", TypePeerGroup, "02 0000", ErrMalformed},
		{"peer group half entry", TypePeerGroup, "01 00", ErrMalformed},
		{"peer group node id too long", TypePeerGroup, "01 fe01" + hexOf(long(254)) + "00", ErrMalformed},
		{"peer group addr too long", TypePeerGroup, "01 00 8602" + hexOf(long(262)), ErrMalformed},
		{"peer group trailing", TypePeerGroup, "00 00", ErrMalformed},
		{"peer group non-minimal count", TypePeerGroup, "8000", ErrMalformed},

		{"data empty", TypeData, "", ErrMalformed},
		{"data format zero", TypeData, "00", ErrMalformed},
		{"data format zero with body", TypeData, "00 0102", ErrMalformed},

		{"message invalid utf8", TypeMessage, "ff", ErrMalformed},
		{"message truncated rune", TypeMessage, "68 e29c", ErrMalformed},

		{"ping empty", TypePing, "", ErrMalformed},
		{"ping 15 bytes", TypePing, strings.Repeat("00", 15), ErrMalformed},
		{"ping 17 bytes", TypePing, strings.Repeat("00", 17), ErrMalformed},
		{"pong 8 bytes", TypePong, strings.Repeat("00", 8), ErrMalformed},

		{"trust empty", TypeTrust, "", ErrMalformed},
		{"trust missing step", TypeTrust, "04 70696e67", ErrMalformed},
		{"trust protocol too long", TypeTrust, "41" + hexOf(long(65)) + "00", ErrMalformed},
		{"trust invalid utf8 protocol", TypeTrust, "01 80 00", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := DecodePayload(tc.typ, unhex(t, tc.payload))
			if !errors.Is(err, tc.want) {
				t.Fatalf("DecodePayload(%v, %s) = %#v, %v; want error %v", tc.typ, tc.payload, p, err, tc.want)
			}
			if p != nil {
				t.Fatalf("DecodePayload returned packet %#v with error %v, want nil", p, err)
			}
		})
	}
}

func hexOf(s string) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(digits[s[i]>>4])
		b.WriteByte(digits[s[i]&0xf])
	}
	return b.String()
}

// TestErrorContext checks that errors name the packet and field at fault, so
// that a log line is enough to see what a peer got wrong.
func TestErrorContext(t *testing.T) {
	_, err := DecodeHello(unhex(t, "0000 fe01"+hexOf(strings.Repeat("x", 254))+"00 00 00"))
	if err == nil || !strings.Contains(err.Error(), "Hello.NodeID") || !strings.Contains(err.Error(), "254") {
		t.Fatalf("error %q should name Hello.NodeID and the length 254", err)
	}
	_, err = DecodePayload(0x42, nil)
	if err == nil || !strings.Contains(err.Error(), "Unknown(0x42)") {
		t.Fatalf("error %q should name the type", err)
	}
}

func TestValidate(t *testing.T) {
	tooMany := make([]string, MaxCapabilities+1)
	tests := []struct {
		name string
		p    Packet
		ok   bool
	}{
		{"hello ok", Hello{NodeID: "n"}, true},
		{"hello node id too long", Hello{NodeID: strings.Repeat("x", MaxNodeIDLen+1)}, false},
		{"hello addr too long", Hello{ListenAddr: strings.Repeat("x", MaxAddrLen+1)}, false},
		{"hello mesh too long", Hello{MeshName: strings.Repeat("x", MaxMeshNameLen+1)}, false},
		{"hello mesh invalid utf8", Hello{MeshName: "\xff"}, false},
		{"hello too many capabilities", Hello{Capabilities: tooMany}, false},
		{"hello capability too long", Hello{Capabilities: []string{strings.Repeat("x", MaxCapabilityLen+1)}}, false},
		{"disconnect ok", Disconnect{Reason: strings.Repeat("x", MaxReasonLen)}, true},
		{"disconnect reason too long", Disconnect{Reason: strings.Repeat("x", MaxReasonLen+1)}, false},
		{"peer group too many", PeerGroup{Peers: make([]PeerInfo, MaxPeerGroupEntries+1)}, false},
		{"peer group bad addr", PeerGroup{Peers: []PeerInfo{{NodeID: "n", Addr: "\xc0"}}}, false},
		{"peer group long id", PeerGroup{Peers: []PeerInfo{{NodeID: strings.Repeat("x", MaxNodeIDLen+1)}}}, false},
		{"data format zero", Data{Body: []byte("forgot the format")}, false},
		{"data unknown format", Data{Format: 200}, true},
		{"message invalid utf8", Message{Text: "a\xffb"}, false},
		{"ping", Ping{}, true},
		{"pong", Pong{}, true},
		{"trust protocol too long", Trust{Protocol: strings.Repeat("x", MaxTrustProtocolLen+1)}, false},
		{"raw type zero", rawPacket{t: TypeInvalid}, false},
		{"raw application type", rawPacket{t: 0x80}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.p)
			if tc.ok != (err == nil) {
				t.Fatalf("Validate(%v) = %v, want ok=%v", tc.p.Type(), err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Validate error %v does not wrap ErrMalformed", err)
			}
			// What Validate rejects, the receiver's decoder rejects too.
			if !tc.ok && tc.p.Type() != TypeInvalid {
				frame := AppendFrame(nil, tc.p)
				if _, err := DecodePayload(tc.p.Type(), frame[HeaderSize:]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("decoder accepted what Validate rejects: %v", err)
				}
			}
		})
	}
}

// rawPacket is an application-defined packet, as a user of the package would
// write one.
type rawPacket struct {
	t    Type
	body []byte
}

func (p rawPacket) Type() Type                      { return p.t }
func (p rawPacket) AppendPayload(dst []byte) []byte { return append(dst, p.body...) }

func TestPingReply(t *testing.T) {
	p := Ping{Seq: 7, SentUnixNano: 123}
	if got, want := p.Reply(), (Pong{Seq: 7, SentUnixNano: 123}); got != want {
		t.Fatalf("Reply() = %+v, want %+v", got, want)
	}
}

func TestTypeString(t *testing.T) {
	tests := []struct {
		t    Type
		want string
	}{
		{TypeInvalid, "Invalid"},
		{TypeHello, "Hello"},
		{TypeDisconnect, "Disconnect"},
		{TypePeerGroup, "PeerGroup"},
		{TypeData, "Data"},
		{TypeMessage, "Message"},
		{TypePing, "Ping"},
		{TypePong, "Pong"},
		{TypeTrust, "Trust"},
		{0x08, "Unknown(0x08)"},
		{0x2a, "Unknown(0x2a)"},
		{0xff, "Unknown(0xff)"},
	}
	for _, tc := range tests {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(tc.t), got, tc.want)
		}
	}
}

// TestKnownTypes pins the append-only enumeration: changing a number breaks
// every deployed peer, so it must be a conscious edit of this table.
func TestKnownTypes(t *testing.T) {
	want := []Type{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x10}
	got := KnownTypes()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("KnownTypes() = %v, want %v", got, want)
	}
	got[0] = 0 // the caller owns the slice
	if KnownTypes()[0] != TypeHello {
		t.Fatal("KnownTypes returned shared state")
	}
	for v := range 256 {
		typ := Type(v)
		wantKnown := typ >= 0x01 && typ <= 0x07 || typ == 0x10
		if typ.IsKnown() != wantKnown {
			t.Errorf("%v.IsKnown() = %v", typ, !wantKnown)
		}
		if typ.IsApplication() != (v >= 0x80) {
			t.Errorf("%v.IsApplication() = %v", typ, v < 0x80)
		}
		_, err := DecodePayload(typ, nil)
		if typ != TypeInvalid && wantKnown == errors.Is(err, ErrUnknownType) {
			t.Errorf("DecodePayload(%v) error = %v, inconsistent with IsKnown", typ, err)
		}
	}
}

func TestDisconnectCodeString(t *testing.T) {
	tests := []struct {
		c    DisconnectCode
		want string
	}{
		{0, "Unspecified"}, {1, "Shutdown"}, {2, "PolicyDenied"}, {3, "ProtocolError"},
		{4, "IdleTimeout"}, {5, "TrustFailed"}, {6, "Duplicate"}, {7, "CapacityExceeded"},
		{8, "SelfConnection"}, {9, "MeshMismatch"}, {10, "DisconnectCode(10)"}, {65535, "DisconnectCode(65535)"},
	}
	for _, tc := range tests {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("DisconnectCode(%d).String() = %q, want %q", uint16(tc.c), got, tc.want)
		}
	}
}

func TestDataFormatString(t *testing.T) {
	tests := []struct {
		f    DataFormat
		want string
	}{
		{0, "Invalid"}, {1, "File"}, {2, "Task"}, {3, "Misc"}, {4, "DataFormat(4)"}, {255, "DataFormat(255)"},
	}
	for _, tc := range tests {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("DataFormat(%d).String() = %q, want %q", uint8(tc.f), got, tc.want)
		}
	}
}
