package channel

import (
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// Defaults applied by New to zero fields of Config, and by DefaultConfig.
const (
	// DefaultSendQueueLength bounds the frames waiting for the writer.
	DefaultSendQueueLength = 1024
	// DefaultSendQueueBytes bounds the bytes waiting for the writer, so that
	// a queue of large frames cannot hold 1024 x 4 MiB.
	DefaultSendQueueBytes = 4 << 20
	// DefaultReadBufferSize is the size of the read buffer of a channel
	// with little traffic. It keeps idle channels cheap; busy channels
	// borrow a larger buffer from a shared pool while they are busy.
	DefaultReadBufferSize = 8 << 10
	// DefaultHandshakeTimeout bounds the wait for the peer's Hello and the
	// trust protocol.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultKeepaliveInterval is the Ping period DefaultConfig sets.
	DefaultKeepaliveInterval = 15 * time.Second
	// DefaultIdleTimeout is the idle timeout DefaultConfig sets.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultDrainTimeout bounds a graceful close.
	DefaultDrainTimeout = 2 * time.Second
)

// Config configures a PeerChannel. Zero values of the sizes and of
// HandshakeTimeout and DrainTimeout select the defaults above; a zero
// KeepaliveInterval or IdleTimeout disables keepalive or the idle timeout, so
// start from DefaultConfig to get every default.
type Config struct {
	// Hello is what this node announces; it is the first frame sent.
	Hello wire.Hello

	// SendQueueLength bounds the frames queued for the writer (default
	// 1024). Send blocks and TrySend fails while it is reached. The writer
	// holds at most one more batch of that size while writing it.
	SendQueueLength int
	// SendQueueBytes bounds the bytes queued for the writer (default 4 MiB):
	// a frame is admitted while fewer bytes than this are queued, so the
	// queue may exceed it by one frame.
	SendQueueBytes int

	// MaxFrameSize is the largest payload accepted from the peer (default
	// wire.DefaultMaxFrameSize). Sends of larger payloads are refused, since
	// a peer configured alike would close the channel on them.
	MaxFrameSize uint32
	// ReadBufferSize is the size of the read buffer of a quiet channel
	// (default 8 KiB); a busy channel borrows a 256 KiB one while it is busy.
	ReadBufferSize int

	// HandshakeTimeout bounds the wait for the peer's Hello, and then the
	// trust protocol (default 10 s).
	HandshakeTimeout time.Duration
	// KeepaliveInterval is the period of the Pings that keep the channel
	// alive and measure its RTT; 0 disables them.
	KeepaliveInterval time.Duration
	// IdleTimeout closes the channel (idle_timeout) when nothing was
	// received for that long; 0 disables it. Keep it above the peer's
	// KeepaliveInterval plus a round trip.
	IdleTimeout time.Duration
	// DrainTimeout bounds a graceful close: writing what is queued, the
	// Disconnect, and waiting for the peer to close its side (default 2 s).
	DrainTimeout time.Duration

	// Trust is the trust protocol run when the channel opens if RunTrust is
	// set. With a nil Trust or RunTrust unset the channel never becomes
	// trusted by itself (the node may still mark the peer trusted).
	Trust    peernode.TrustProtocol
	RunTrust bool
}

// DefaultConfig returns a Config with every default set, keepalive and idle
// timeout included, announcing hello.
func DefaultConfig(hello wire.Hello) Config {
	return Config{
		Hello:             hello,
		SendQueueLength:   DefaultSendQueueLength,
		SendQueueBytes:    DefaultSendQueueBytes,
		MaxFrameSize:      wire.DefaultMaxFrameSize,
		ReadBufferSize:    DefaultReadBufferSize,
		HandshakeTimeout:  DefaultHandshakeTimeout,
		KeepaliveInterval: DefaultKeepaliveInterval,
		IdleTimeout:       DefaultIdleTimeout,
		DrainTimeout:      DefaultDrainTimeout,
	}
}

// withDefaults fills the zero fields that have a default. Negative values
// are treated as zero, so a config cannot make the queue unbounded or a
// timeout fire at once.
func (c Config) withDefaults() Config {
	if c.SendQueueLength <= 0 {
		c.SendQueueLength = DefaultSendQueueLength
	}
	if c.SendQueueBytes <= 0 {
		c.SendQueueBytes = DefaultSendQueueBytes
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = wire.DefaultMaxFrameSize
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	c.KeepaliveInterval = max(c.KeepaliveInterval, 0)
	c.IdleTimeout = max(c.IdleTimeout, 0)
	return c
}
