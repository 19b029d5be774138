package wire

import (
	"bytes"
	"io"
	"testing"
)

// The headline target is over 1,000,000 64-byte messages per second on one
// channel, so encoding and decoding a small frame must cost well under a
// microsecond and, for Data, allocate nothing beyond the frame payload.

var (
	body64 = bytes.Repeat([]byte{0xab}, 64)
	text64 = string(bytes.Repeat([]byte{'m'}, 64))
	hello  = Hello{ProtocolVersion: ProtocolVersion, NodeID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", ListenAddr: "10.1.2.3:7946", MeshName: "default", Capabilities: []string{"trust/sharedKey", "pex"}}
)

func TestEncodeDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 1024)
	tests := []struct {
		name string
		p    Packet
	}{
		{"data", Data{Format: DataFormatMisc, Body: body64}},
		{"message", Message{Text: text64}},
		{"ping", Ping{Seq: 1}},
		{"hello", hello},
		{"trust", Trust{Protocol: "sharedKey", Step: 1, Body: body64}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			allocs := testing.AllocsPerRun(100, func() { buf = AppendFrame(buf[:0], tc.p) })
			if allocs != 0 {
				t.Fatalf("AppendFrame(%v) allocates %v times per frame, want 0", tc.p.Type(), allocs)
			}
		})
	}
	// Passing a concrete value must not box it into an interface either.
	t.Run("concrete data", func(t *testing.T) {
		allocs := testing.AllocsPerRun(100, func() { buf = AppendFrame(buf[:0], Data{Format: DataFormatMisc, Body: body64}) })
		if allocs != 0 {
			t.Fatalf("AppendFrame(Data{...}) allocates %v times per frame, want 0", allocs)
		}
	})
	t.Run("concrete message", func(t *testing.T) {
		allocs := testing.AllocsPerRun(100, func() { buf = AppendFrame(buf[:0], Message{Text: text64}) })
		if allocs != 0 {
			t.Fatalf("AppendFrame(Message{...}) allocates %v times per frame, want 0", allocs)
		}
	})
	t.Run("raw", func(t *testing.T) {
		allocs := testing.AllocsPerRun(100, func() { buf = AppendRawFrame(buf[:0], 0x80, body64) })
		if allocs != 0 {
			t.Fatalf("AppendRawFrame allocates %v times per frame, want 0", allocs)
		}
	})
}

func TestDecodeDataDoesNotAllocate(t *testing.T) {
	payload := AppendFrame(nil, Data{Format: DataFormatMisc, Body: body64})[HeaderSize:]
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DecodeData(payload); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("DecodeData allocates %v times, want 0 (the body aliases the payload)", allocs)
	}
}

func benchmarkAppendFrame[P Packet](b *testing.B, p P) {
	buf := AppendFrame(nil, p)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFrame(buf[:0], p)
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	b.Run("Data64", func(b *testing.B) { benchmarkAppendFrame(b, Data{Format: DataFormatMisc, Body: body64}) })
	b.Run("Message64", func(b *testing.B) { benchmarkAppendFrame(b, Message{Text: text64}) })
	b.Run("Ping", func(b *testing.B) { benchmarkAppendFrame(b, Ping{Seq: 1, SentUnixNano: 2}) })
	b.Run("Hello", func(b *testing.B) { benchmarkAppendFrame(b, hello) })
	b.Run("Data64Interface", func(b *testing.B) { benchmarkAppendFrame[Packet](b, Data{Format: DataFormatMisc, Body: body64}) })
}

func benchmarkDecodePayload(b *testing.B, p Packet) {
	frame := AppendFrame(nil, p)
	payload := frame[HeaderSize:]
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodePayload(p.Type(), payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePayload(b *testing.B) {
	b.Run("Data64", func(b *testing.B) { benchmarkDecodePayload(b, Data{Format: DataFormatMisc, Body: body64}) })
	b.Run("Message64", func(b *testing.B) { benchmarkDecodePayload(b, Message{Text: text64}) })
	b.Run("Ping", func(b *testing.B) { benchmarkDecodePayload(b, Ping{Seq: 1, SentUnixNano: 2}) })
	b.Run("Hello", func(b *testing.B) { benchmarkDecodePayload(b, hello) })
}

// BenchmarkDecodeData64 is the typed decoder of the hot path: no allocation.
func BenchmarkDecodeData64(b *testing.B) {
	payload := AppendFrame(nil, Data{Format: DataFormatMisc, Body: body64})[HeaderSize:]
	b.SetBytes(int64(HeaderSize + len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeData(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// loopReader serves the same bytes forever, standing in for a connection.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

// BenchmarkReadFrame measures the receive path of a channel for 64-byte Data
// messages: split the stream into frames (one payload allocation each) and
// decode them.
func BenchmarkReadFrame(b *testing.B) {
	frame := AppendFrame(nil, Data{Format: DataFormatMisc, Body: body64})
	r := NewReader(&loopReader{data: bytes.Repeat(frame, 1024)}, 0)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := r.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeData(f.Payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFrameLarge measures bulk transfer: 256 KiB frames, larger
// than the reader's buffer.
func BenchmarkReadFrameLarge(b *testing.B) {
	frame := AppendFrame(nil, Data{Format: DataFormatFile, Body: make([]byte, 256<<10)})
	r := NewReader(&loopReader{data: frame}, 0)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadFrame(); err != nil {
			b.Fatal(err)
		}
	}
}

var _ io.Reader = (*loopReader)(nil)
