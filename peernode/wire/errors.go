package wire

import "errors"

// Sentinel errors. Functions of this package wrap them with context (the
// field or value at fault), so callers test them with errors.Is and may use
// them as metric labels. Each of them except ErrUnknownType means the peer
// violated the protocol or the stream is corrupt: the channel should be
// closed. ErrUnknownType only means "no built-in decoder": count and drop.
var (
	// ErrFrameTooLarge reports a frame whose payload length exceeds the
	// receiver's maximum frame size. It is detected from the header alone,
	// before anything is allocated for the payload.
	ErrFrameTooLarge = errors.New("wire: frame too large")

	// ErrUnsupportedVersion reports a frame whose version byte is not
	// ProtocolVersion. Nothing after that byte can be interpreted.
	ErrUnsupportedVersion = errors.New("wire: unsupported protocol version")

	// ErrMalformed reports a frame or payload that breaks the format:
	// truncated fields, bad or non-minimal uvarints, invalid UTF-8, trailing
	// bytes, a limit exceeded, or a reserved value such as packet type 0.
	// Validate also reports packets that would decode as malformed with it.
	ErrMalformed = errors.New("wire: malformed payload")

	// ErrUnknownType reports a packet type for which this package has no
	// decoder: a reserved type, or an application-defined type that the
	// caller is expected to decode itself.
	ErrUnknownType = errors.New("wire: unknown packet type")
)
