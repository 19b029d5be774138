package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// readBufferSize is the size of the bufio.Reader that NewReader wraps around
// a plain io.Reader: large enough to batch many small frames per read system
// call.
const readBufferSize = 64 << 10

// Direct reads (Reader.SetDirect): the part of a payload that is not
// buffered yet is read straight into the payload, skipping the copy through
// the buffer, when at least directMin bytes of it remain; and the payload is
// allocated once directGate bytes of it (or all of it) have arrived, rather
// than once the buffer holds as much of it as it can.
const (
	directMin  = 16 << 10
	directGate = 8 << 10
)

// Frame is one frame read from a stream.
type Frame struct {
	Header Header
	// Payload holds exactly Header.Length bytes. Reader allocates it anew
	// for every frame, so handlers may keep it (and bodies that alias it).
	Payload []byte
}

// Decode decodes the payload according to the frame's type; see
// DecodePayload.
func (f Frame) Decode() (Packet, error) { return DecodePayload(f.Header.Type, f.Payload) }

// Reader reads frames from a byte stream, such as a TCP connection. It handles
// frames split across many reads and many frames joined in one read alike.
// A Reader is not safe for concurrent use: one goroutine owns it.
type Reader struct {
	br       *bufio.Reader
	direct   io.Reader // the reader under br, for direct reads; nil: none
	maxFrame uint32
	err      error // sticky error once the stream is out of sync
}

// NewReader returns a Reader of frames from r whose payloads may be at most
// maxFrame bytes (0 means DefaultMaxFrameSize). It reads through a 64 KiB
// bufio.Reader, unless r already is a *bufio.Reader, which it uses as is:
// callers that hold many idle connections can pass a smaller one to save
// memory.
func NewReader(r io.Reader, maxFrame uint32) *Reader {
	if maxFrame == 0 {
		maxFrame = DefaultMaxFrameSize
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, readBufferSize)
	}
	return &Reader{br: br, maxFrame: maxFrame}
}

// SetDirect lets the Reader read large payloads from src, the reader the
// bufio.Reader given to NewReader reads from, once that buffer is drained:
// the bytes of a 64 KiB payload then move once, from the socket to the
// payload, instead of twice. src must be the buffer's own source, so that no
// byte is read out of order. nil turns direct reads off.
func (r *Reader) SetDirect(src io.Reader) { r.direct = src }

// ReadFrame reads the next frame. It returns io.EOF when the stream ends
// cleanly between frames, an error wrapping io.ErrUnexpectedEOF when it ends
// inside one, ErrUnsupportedVersion, ErrFrameTooLarge or ErrMalformed (type
// 0) when a header is invalid, and errors of the underlying reader unchanged.
// It does not decode the payload: see Frame.Decode.
//
// The payload length is checked before anything is allocated for it, and a
// payload larger than the buffer is allocated only once the buffer has filled
// with its first bytes, so a peer that announces a large frame and stalls
// pins at most the buffer, not the frame.
//
// An error of the underlying reader that occurs before a frame's header is
// consumed (for example an expired read deadline while waiting for the next
// frame, or for a frame that fits in the buffer) leaves the Reader usable:
// the next call resumes where this one stopped. Any other error leaves the
// stream out of sync, so the Reader returns it again on every later call.
func (r *Reader) ReadFrame() (Frame, error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	// Peek, rather than read, the header: bytes stay in the buffer until
	// the frame is known to be valid and at least partly arrived, so an
	// interrupted call can be retried.
	b, err := r.br.Peek(HeaderSize)
	if err != nil {
		return Frame{}, r.streamError(err, len(b) == 0, "frame header", len(b), HeaderSize)
	}
	h, err := ParseHeader(b, r.maxFrame)
	if err != nil {
		r.err = err
		return Frame{}, err
	}
	n := int(h.Length)

	// Wait until the payload is buffered, or as much of it as the buffer
	// holds, before allocating it: the length is bounded by maxFrame, but
	// 4 MiB per stalled peer would still be a cheap way to exhaust memory.
	gateMax := r.br.Size() - HeaderSize
	if r.direct != nil {
		gateMax = min(gateMax, directGate)
	}
	if gate := HeaderSize + min(n, gateMax); gate > HeaderSize {
		if b, err := r.br.Peek(gate); err != nil {
			return Frame{}, r.streamError(err, false, "frame", len(b), HeaderSize+n)
		}
	}
	if _, err := r.br.Discard(HeaderSize); err != nil {
		// Unreachable: the header is buffered. Keep the Reader honest anyway.
		r.err = err
		return Frame{}, err
	}
	payload := make([]byte, n)
	if k := r.br.Buffered(); r.direct != nil && n-k >= directMin {
		// Drain the buffer, then read the rest from its source itself.
		copied, _ := r.br.Read(payload[:k]) // k bytes are buffered: no I/O
		if got, err := io.ReadFull(r.direct, payload[copied:]); err != nil {
			r.err = r.streamError(err, false, "frame", HeaderSize+copied+got, HeaderSize+n)
			return Frame{}, r.err
		}
		return Frame{Header: h, Payload: payload}, nil
	}
	if got, err := io.ReadFull(r.br, payload); err != nil {
		// The header is consumed: whatever happened, the stream is out of sync.
		r.err = r.streamError(err, false, "frame", HeaderSize+got, HeaderSize+n)
		return Frame{}, r.err
	}
	return Frame{Header: h, Payload: payload}, nil
}

// streamError maps an error of the underlying reader, met after reading got
// of want bytes of part: io.EOF stays io.EOF only at a frame boundary
// (between is true) and becomes io.ErrUnexpectedEOF, with context, inside a
// frame; other errors pass unchanged so that callers can test them (timeouts,
// net.ErrClosed). An end of stream is final, so it is made sticky.
func (r *Reader) streamError(err error, between bool, part string, got, want int) error {
	switch {
	case errors.Is(err, io.EOF) && between:
		r.err = io.EOF
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		r.err = fmt.Errorf("wire: truncated %s: stream ended after %d of %d bytes: %w", part, got, want, io.ErrUnexpectedEOF)
	default:
		return err
	}
	return r.err
}
