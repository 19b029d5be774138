package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// checkDecoded is the property both fuzz targets check on a payload: decoding
// either fails with a documented error and no packet, or yields a packet that
// passes Validate and re-encodes to exactly the same bytes (the encoding is
// canonical) and to an equal value.
func checkDecoded(t *testing.T, typ Type, payload []byte) {
	p, err := DecodePayload(typ, payload)
	if err != nil {
		if p != nil {
			t.Fatalf("DecodePayload(%v) returned %#v with error %v", typ, p, err)
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownType) {
			t.Fatalf("DecodePayload(%v) error %v wraps no documented sentinel", typ, err)
		}
		return
	}
	if p.Type() != typ {
		t.Fatalf("DecodePayload(%v) returned a %v packet", typ, p.Type())
	}
	if err := Validate(p); err != nil {
		t.Fatalf("decoded %#v fails Validate: %v", p, err)
	}
	frame := AppendFrame(nil, p)
	if !bytes.Equal(frame[HeaderSize:], payload) {
		t.Fatalf("%v re-encodes differently:\n got %x\nwant %x", typ, frame[HeaderSize:], payload)
	}
	p2, err := DecodePayload(typ, frame[HeaderSize:])
	if err != nil {
		t.Fatalf("re-encoded %v does not decode: %v", typ, err)
	}
	if !reflect.DeepEqual(p, p2) {
		t.Fatalf("round trip changed the packet:\n got %#v\nwant %#v", p2, p)
	}
}

func FuzzReadFrame(f *testing.F) {
	stream, _ := goldenStream(f)
	f.Add(stream)
	for _, v := range goldenVectors() {
		f.Add(unhex(f, v.frame))
	}
	f.Add(unhex(f, "01 80 0000 00000003 | 616263"))
	f.Add(unhex(f, "01 04 0000 ffffffff | 01"))
	f.Add(unhex(f, "02 01 0000 00000000"))
	f.Add(unhex(f, "01 00 0000 00000000"))
	f.Add(unhex(f, "01 01 0000 00000007 | 0000 8000 00 00 00"))

	const maxFrame = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), maxFrame)
		consumed := 0
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				switch {
				case errors.Is(err, io.EOF):
					if consumed != len(data) {
						t.Fatalf("io.EOF after %d of %d bytes", consumed, len(data))
					}
				case errors.Is(err, io.ErrUnexpectedEOF),
					errors.Is(err, ErrUnsupportedVersion),
					errors.Is(err, ErrFrameTooLarge),
					errors.Is(err, ErrMalformed):
				default:
					t.Fatalf("ReadFrame error %v wraps no documented sentinel", err)
				}
				return
			}
			if len(fr.Payload) != int(fr.Header.Length) || fr.Header.Length > maxFrame {
				t.Fatalf("frame %v with a payload of %d bytes", fr.Header, len(fr.Payload))
			}
			raw := data[consumed : consumed+HeaderSize+len(fr.Payload)]
			if !bytes.Equal(raw[HeaderSize:], fr.Payload) {
				t.Fatalf("payload %x differs from the stream bytes %x", fr.Payload, raw[HeaderSize:])
			}
			consumed += len(raw)
			checkDecoded(t, fr.Header.Type, fr.Payload)
		}
	})
}

func FuzzDecodePayload(f *testing.F) {
	for _, v := range goldenVectors() {
		frame := unhex(f, v.frame)
		f.Add(frame[1], frame[HeaderSize:])
	}
	f.Add(uint8(0x80), []byte("abc"))
	f.Add(uint8(TypeHello), unhex(f, "0000 ffffffffffffffffff7f 00 00 00"))
	f.Add(uint8(TypePeerGroup), unhex(f, "8108"))
	f.Fuzz(func(t *testing.T, typ uint8, payload []byte) {
		checkDecoded(t, Type(typ), payload)
	})
}
