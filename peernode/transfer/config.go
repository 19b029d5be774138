package transfer

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	// DefaultMaxFileSize bounds the size of an incoming file (1 GiB).
	DefaultMaxFileSize = 1 << 30
	// DefaultMaxIncoming bounds the incoming transfers running at once.
	DefaultMaxIncoming = 4
	// DefaultChunkSize is the data length of outgoing chunks (64 KiB).
	DefaultChunkSize = 64 << 10
	// DefaultWindow is how many bytes of outgoing file data may be
	// unacknowledged on one channel, all transfers on it together (1 MiB).
	// It bounds how long a small packet queued behind file data waits.
	DefaultWindow = 1 << 20
	// DefaultMaxWindow is the largest window an incoming offer may ask for
	// (8 MiB): it bounds the chunks buffered per incoming transfer.
	DefaultMaxWindow = 8 << 20
	// DefaultIdleTimeout fails a transfer that makes no progress for that
	// long (30 s).
	DefaultIdleTimeout = 30 * time.Second
	// DefaultHistory is how many finished transfers Transfers lists.
	DefaultHistory = 100
)

// maxBufferedChunks bounds Window/ChunkSize of an incoming offer, which sets
// the capacity of the transfer's chunk queue.
const maxBufferedChunks = 4096

// Config configures a Service. New fills zero fields with the defaults.
type Config struct {
	// ReceiveDir is where incoming files are stored; it is created (0700)
	// when the first offer arrives. Empty disables receiving: offers are
	// refused with code not_receiving. Sending works either way.
	ReceiveDir string
	// MaxFileSize bounds incoming files, in bytes (default 1 GiB); larger
	// offers are refused with code too_large.
	MaxFileSize int64
	// MaxIncoming bounds the incoming transfers running at once (default
	// 4); more offers are refused with code busy.
	MaxIncoming int
	// ChunkSize is the data length of outgoing chunks (default 64 KiB, at
	// most MaxChunkSize).
	ChunkSize int
	// Window bounds the unacknowledged bytes of outgoing file data per
	// channel (default 1 MiB, at least ChunkSize).
	Window int
	// MaxWindow is the largest window accepted from a sender (default
	// 8 MiB); an offer asking for more is refused with code rejected.
	MaxWindow int
	// IdleTimeout fails a transfer, on either side, that makes no progress
	// for that long (default 30 s).
	IdleTimeout time.Duration
	// History is how many finished transfers Transfers keeps (default 100).
	History int
	// NoSync skips the fsync of a received file before it is renamed into
	// place. Only for tests and benchmarks on throwaway directories: without
	// it a crash can leave a final name with incomplete content.
	NoSync bool

	// Registerer receives the transfer metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// errConfig is wrapped by New for an unusable Config.
var errConfig = errors.New("transfer: invalid config")

func (c Config) withDefaults() (Config, error) {
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.MaxIncoming <= 0 {
		c.MaxIncoming = DefaultMaxIncoming
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.Window <= 0 {
		c.Window = max(DefaultWindow, c.ChunkSize)
	}
	if c.MaxWindow <= 0 {
		c.MaxWindow = max(DefaultMaxWindow, c.Window)
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.History <= 0 {
		c.History = DefaultHistory
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.ChunkSize > MaxChunkSize:
		return c, fmt.Errorf("%w: ChunkSize %d exceeds %d", errConfig, c.ChunkSize, MaxChunkSize)
	case c.Window < c.ChunkSize:
		return c, fmt.Errorf("%w: Window %d is below ChunkSize %d", errConfig, c.Window, c.ChunkSize)
	case c.Window > 1<<31:
		return c, fmt.Errorf("%w: Window %d exceeds 2 GiB", errConfig, c.Window)
	case c.Window/c.ChunkSize > maxBufferedChunks:
		return c, fmt.Errorf("%w: Window/ChunkSize = %d exceeds %d chunks", errConfig, c.Window/c.ChunkSize, maxBufferedChunks)
	}
	return c, nil
}
