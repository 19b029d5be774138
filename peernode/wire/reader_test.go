package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"
	"testing/iotest"
)

// goldenStream returns every golden frame joined in one byte stream, and the
// packets it holds.
func goldenStream(tb testing.TB) ([]byte, []Packet) {
	tb.Helper()
	var stream []byte
	var packets []Packet
	for _, v := range goldenVectors() {
		stream = append(stream, unhex(tb, v.frame)...)
		packets = append(packets, v.packet)
	}
	return stream, packets
}

// readAll reads frames until an error and decodes each one.
func readAll(tb testing.TB, r *Reader) ([]Packet, error) {
	tb.Helper()
	var got []Packet
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return got, err
		}
		if int(f.Header.Length) != len(f.Payload) || cap(f.Payload) != len(f.Payload) {
			tb.Fatalf("payload len %d cap %d, header length %d", len(f.Payload), cap(f.Payload), f.Header.Length)
		}
		p, err := f.Decode()
		if err != nil {
			tb.Fatalf("Decode %v: %v", f.Header, err)
		}
		got = append(got, p)
	}
}

func TestReaderSplitAndJoined(t *testing.T) {
	stream, want := goldenStream(t)
	tests := []struct {
		name string
		r    func() io.Reader
	}{
		{"joined in one read", func() io.Reader { return bytes.NewReader(stream) }},
		{"one byte per read", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) }},
		{"half reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) }},
		{"EOF with the last data", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) }},
		// A caller-supplied bufio.Reader smaller than a frame (the 300-byte
		// Disconnect) exercises payloads larger than the buffer.
		{"small bufio reader", func() io.Reader { return bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(stream)), 16) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t, NewReader(tc.r(), 0))
			if !errors.Is(err, io.EOF) {
				t.Fatalf("error at the end of the stream = %v, want io.EOF itself", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("read %d packets, want %d:\n got %#v\nwant %#v", len(got), len(want), got, want)
			}
		})
	}
}

func TestReaderUsesGivenBufioReader(t *testing.T) {
	br := bufio.NewReaderSize(bytes.NewReader(nil), 16)
	if r := NewReader(br, 0); r.br != br {
		t.Fatal("NewReader wrapped a *bufio.Reader in another one")
	}
	if r := NewReader(bytes.NewReader(nil), 0); r.br.Size() != readBufferSize || r.maxFrame != DefaultMaxFrameSize {
		t.Fatalf("NewReader: buffer %d, max frame %d", r.br.Size(), r.maxFrame)
	}
}

// TestReaderPayloadsAreFresh checks that handlers may keep payloads: no two
// frames share memory.
func TestReaderPayloadsAreFresh(t *testing.T) {
	stream := AppendFrame(nil, Data{Format: DataFormatMisc, Body: []byte("first")})
	stream = AppendFrame(stream, Data{Format: DataFormatMisc, Body: []byte("other")})
	r := NewReader(bytes.NewReader(stream), 0)
	f1, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := DecodeData(f1.Payload)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if string(d1.Body) != "first" {
		t.Fatalf("first body became %q after reading the next frame", d1.Body)
	}
}

func TestReaderErrors(t *testing.T) {
	ping := AppendFrame(nil, Ping{Seq: 1})
	tests := []struct {
		name     string
		stream   []byte
		maxFrame uint32
		frames   int // good frames before the error
		want     error
	}{
		{"empty stream", nil, 0, 0, io.EOF},
		{"end after a frame", ping, 0, 1, io.EOF},
		{"truncated header", ping[:3], 0, 0, io.ErrUnexpectedEOF},
		{"truncated header after a frame", append(append([]byte(nil), ping...), 0x01), 0, 1, io.ErrUnexpectedEOF},
		{"header only", ping[:HeaderSize], 0, 0, io.ErrUnexpectedEOF},
		{"truncated payload", ping[:len(ping)-1], 0, 0, io.ErrUnexpectedEOF},
		{"truncated payload larger than the buffer", unhex(t, "01 04 0000 00100000 | 01 0203"), 0, 0, io.ErrUnexpectedEOF},
		{"version 2", unhex(t, "02 06 0000 00000000"), 0, 0, ErrUnsupportedVersion},
		{"version 0", unhex(t, "00 06 0000 00000000"), 0, 0, ErrUnsupportedVersion},
		{"version 2 after a frame", append(append([]byte(nil), ping...), unhex(t, "02 01 0000 00000000")...), 0, 1, ErrUnsupportedVersion},
		{"type 0", unhex(t, "01 00 0000 00000000"), 0, 0, ErrMalformed},
		{"default maximum + 1", unhex(t, "01 04 0000 00400001"), 0, 0, ErrFrameTooLarge},
		{"length 0xffffffff", unhex(t, "01 04 0000 ffffffff"), 0, 0, ErrFrameTooLarge},
		{"configured maximum + 1", unhex(t, "01 05 0000 00000011") /* 17 */, 16, 0, ErrFrameTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.stream), tc.maxFrame)
			for i := range tc.frames {
				if _, err := r.ReadFrame(); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			_, err := r.ReadFrame()
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadFrame error = %v, want %v", err, tc.want)
			}
			// The stream is unusable after these errors: they stick.
			if _, err2 := r.ReadFrame(); !errors.Is(err2, err) {
				t.Fatalf("second ReadFrame error = %v, want the same %v", err2, err)
			}
		})
	}
}

func TestReaderAcceptsMaximumAndUnknown(t *testing.T) {
	// A frame of exactly the maximum size, with flags set and an unknown
	// type: all three must be accepted (flags ignored, type left to the
	// caller to count and drop).
	stream := unhex(t, "01 42 ffff 00000010"+hexOf("0123456789abcdef"))
	f, err := NewReader(bytes.NewReader(stream), 16).ReadFrame()
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	want := Header{Version: 1, Type: 0x42, Flags: 0xffff, Length: 16}
	if f.Header != want || string(f.Payload) != "0123456789abcdef" {
		t.Fatalf("ReadFrame = %v %q, want %v", f.Header, f.Payload, want)
	}
	if _, err := f.Decode(); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("Decode error = %v, want ErrUnknownType", err)
	}
}

// allocatedBytes returns how many heap bytes f allocates. Only the test's
// goroutine runs meanwhile, so other allocations are noise of a few KiB.
func allocatedBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestReaderBoundsAllocation checks that hostile lengths cannot make the
// reader allocate: a length over the maximum is rejected from the header
// alone, and a large but permitted length allocates nothing until the buffer
// has filled with payload bytes.
func TestReaderBoundsAllocation(t *testing.T) {
	tests := []struct {
		name     string
		stream   []byte
		maxFrame uint32
		want     error
	}{
		// Allocating 4 GiB here would show in TotalAlloc even if the
		// operating system never backed it with memory.
		{"length 0xffffffff", unhex(t, "01 04 0000 ffffffff | 01"), 0, ErrFrameTooLarge},
		{"length 0xffffffff, maximum 4 GiB", unhex(t, "01 04 0000 ffffffff | 01"), 0xffffffff, io.ErrUnexpectedEOF},
		{"4 MiB announced, 3 bytes sent", unhex(t, "01 04 0000 00400000 | 01 0203"), 0, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.stream), tc.maxFrame)
			var err error
			n := allocatedBytes(func() { _, err = r.ReadFrame() })
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadFrame error = %v, want %v", err, tc.want)
			}
			if n > 64<<10 {
				t.Fatalf("ReadFrame allocated %d bytes before failing, want < 64 KiB", n)
			}
		})
	}
}

// deadlineReader returns errTimeout once after delivering the first stop
// bytes, like a connection whose read deadline expires, then the rest.
type deadlineReader struct {
	r       io.Reader
	stop    int
	read    int
	tripped bool
}

var errTimeout = errors.New("i/o timeout")

func (d *deadlineReader) Read(p []byte) (int, error) {
	if !d.tripped && d.read >= d.stop {
		d.tripped = true
		return 0, errTimeout
	}
	if !d.tripped {
		p = p[:min(len(p), d.stop-d.read)]
	}
	n, err := d.r.Read(p)
	d.read += n
	return n, err
}

// TestReaderResumesAfterTimeout checks that an error of the underlying reader
// met before a frame is consumed does not desynchronise the stream, so a
// channel may use read deadlines for keepalive.
func TestReaderResumesAfterTimeout(t *testing.T) {
	stream, want := goldenStream(t)
	frame0 := len(unhex(t, goldenVectors()[0].frame))
	for _, stop := range []int{0, 3, HeaderSize, HeaderSize + 5, frame0, frame0 + 1} {
		dr := &deadlineReader{r: bytes.NewReader(stream), stop: stop}
		r := NewReader(dr, 0)
		var got []Packet
		timeouts := 0
		for {
			f, err := r.ReadFrame()
			if errors.Is(err, errTimeout) {
				timeouts++
				continue
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("stop %d: ReadFrame: %v", stop, err)
			}
			p, err := f.Decode()
			if err != nil {
				t.Fatalf("stop %d: Decode: %v", stop, err)
			}
			got = append(got, p)
		}
		if timeouts != 1 || !reflect.DeepEqual(got, want) {
			t.Fatalf("stop %d: %d timeouts, read %d packets; want 1 timeout and %d packets", stop, timeouts, len(got), len(want))
		}
	}
}

// TestReaderTimeoutInsideLargePayload checks the other side of the contract:
// once a frame larger than the buffer is consumed, an error sticks.
func TestReaderTimeoutInsideLargePayload(t *testing.T) {
	stream := AppendFrame(nil, Data{Format: DataFormatFile, Body: make([]byte, 100)})
	br := bufio.NewReaderSize(&deadlineReader{r: bytes.NewReader(stream), stop: 50}, 16)
	r := NewReader(br, 0)
	if _, err := r.ReadFrame(); !errors.Is(err, errTimeout) {
		t.Fatalf("ReadFrame error = %v, want the timeout", err)
	}
	if _, err := r.ReadFrame(); !errors.Is(err, errTimeout) {
		t.Fatalf("second ReadFrame error = %v, want the same timeout (stream out of sync)", err)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// With SetDirect, large payloads are read from the buffer's source directly
// once the buffer is drained; frames of every size still come out intact and
// in order, however the stream is split, and a stream cut inside a direct
// read is a truncated frame.
func TestReaderDirect(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i, size := range []int{70 << 10, 10, 16 << 10, 20 << 10, 0, 64 << 10, 3} {
		body := bytes.Repeat([]byte{byte(i + 1)}, size)
		want = append(want, body)
		stream = AppendFrame(stream, Data{Format: DataFormatMisc, Body: body})
	}
	splits := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"half":     iotest.HalfReader,
		"one byte": iotest.OneByteReader,
	}
	for name, split := range splits {
		t.Run(name, func(t *testing.T) {
			src := &countingReader{r: split(bytes.NewReader(stream))}
			direct := &countingReader{r: src}
			br := bufio.NewReaderSize(src, 8<<10)
			r := NewReader(br, 0)
			r.SetDirect(direct)
			for i, w := range want {
				f, err := r.ReadFrame()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				p, err := f.Decode()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if d, ok := p.(Data); !ok || !bytes.Equal(d.Body, w) {
					t.Fatalf("frame %d: got %d bytes, want %d bytes of %d", i, len(d.Body), len(w), i+1)
				}
			}
			if _, err := r.ReadFrame(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
			// The 70, 20 and 64 KiB payloads mostly skip the buffer.
			if direct.n < 100<<10 {
				t.Errorf("%d bytes read directly, want most of the 154 KiB of large payloads", direct.n)
			}
		})
	}
	t.Run("cut inside a direct read", func(t *testing.T) {
		cut := stream[:40<<10]
		src := bytes.NewReader(cut)
		r := NewReader(bufio.NewReaderSize(src, 8<<10), 0)
		r.SetDirect(src)
		if _, err := r.ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("ReadFrame of a cut stream = %v, want io.ErrUnexpectedEOF", err)
		}
	})
}
