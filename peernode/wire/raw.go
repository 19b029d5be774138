package wire

// Raw is a packet of a type without a built-in decoder, as received: an
// application-defined type (0x80-0xFF) or a type newer than this receiver.
// A peer channel hands such frames to the node as Raw instead of failing, so
// that handlers can be registered for new types. Raw is also a way to send an
// already encoded payload as a Packet (AppendRawFrame frames it without the
// interface).
type Raw struct {
	// T is the packet type of the frame.
	T Type
	// Payload is the frame payload. A received Raw's Payload is the frame's
	// own payload, which the Reader allocated for it: handlers may keep it.
	Payload []byte
}

var _ Packet = Raw{}

// Type returns r.T.
func (r Raw) Type() Type { return r.T }

// AppendPayload appends r.Payload to dst.
func (r Raw) AppendPayload(dst []byte) []byte { return append(dst, r.Payload...) }
