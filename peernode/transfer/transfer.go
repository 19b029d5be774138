package transfer

import (
	"context"
	"encoding/hex"
	"os"
	"sync"
	"time"

	"github.com/peermesh/peermesh/peernode"
)

// Direction says whether this node sends or receives a transfer.
type Direction uint8

const (
	// Send: this node sends the file.
	Send Direction = iota + 1
	// Receive: this node receives it.
	Receive
)

// String returns "send" or "receive", the values of the direction label.
func (d Direction) String() string {
	if d == Receive {
		return directionReceive
	}
	return directionSend
}

// State is a step of a transfer's life: Running, then Completed or Failed.
type State uint8

const (
	// Running: the transfer is under way (hashing, offered or moving data).
	Running State = iota + 1
	// Completed: the receiver verified and stored the file.
	Completed
	// Failed: the transfer ended otherwise; Err says why. A failed incoming
	// transfer leaves no file behind, not even its temporary file.
	Failed
)

// String returns "running", "completed" or "failed".
func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Completed:
		return "completed"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Progress is how far a transfer got.
type Progress struct {
	// Bytes is, when sending, the bytes queued to the channel; when
	// receiving, the bytes received and written.
	Bytes uint64
	// Acked is the bytes the receiver acknowledged (received and written,
	// contiguously from the start).
	Acked uint64
	// Total is the file's size.
	Total uint64
}

// Transfer is one file transfer, outgoing (Service.Send, Service.Broadcast)
// or incoming (listed by Service.Transfers). Its methods are safe for
// concurrent use.
type Transfer struct {
	id    ID
	peer  string
	ch    peernode.Channel
	dir   Direction
	name  string // the offered name
	total uint64
	start time.Time

	// ctx ends when the transfer stops (stop) or the service stops.
	ctx    context.Context
	cancel context.CancelFunc

	// stopped is closed by stop, with stopErr, when a handler or Cancel
	// ends the transfer; the goroutine that owns it then finishes it.
	stopOnce sync.Once
	stopped  chan struct{}
	stopErr  *Error

	// progressed (sender) signals that an Ack advanced.
	progressed chan struct{}

	// Sender only.
	src *source
	win *window

	// Receiver only.
	chunks    chan Chunk
	chunkSize uint32
	window    uint32
	sum       [32]byte
	file      *os.File
	tmpPath   string

	done chan struct{} // closed by finish

	mu       sync.Mutex
	state    State
	bytes    uint64
	acked    uint64
	reserved uint64    // sender: window credit taken, >= bytes
	accepted bool      // sender: the first Ack arrived
	offered  bool      // sender: the offer was queued (owner goroutine only)
	lastProg time.Time // last progress: the start, an Ack (sender), a chunk (receiver)
	err      *Error
	storedAs string // the receiver's final name, when known
	path     string // sender: the source; receiver: the final path
	hash     string // hex SHA-256, once known
	finished time.Time
}

// newTransfer returns a running transfer whose context derives from parent
// (the service's, or Background for an offer refused before Run).
func newTransfer(parent context.Context, id ID, ch peernode.Channel, dir Direction, name string, total uint64) *Transfer {
	ctx, cancel := context.WithCancel(parent)
	now := time.Now()
	return &Transfer{
		id: id, peer: ch.Peer().ID(), ch: ch, dir: dir, name: name, total: total, start: now,
		ctx: ctx, cancel: cancel,
		stopped:    make(chan struct{}),
		progressed: make(chan struct{}, 1),
		done:       make(chan struct{}),
		state:      Running,
		lastProg:   now,
	}
}

// ID returns the transfer's ID.
func (t *Transfer) ID() ID { return t.id }

// Peer returns the identifier of the other node.
func (t *Transfer) Peer() string { return t.peer }

// Name returns the file's name as offered.
func (t *Transfer) Name() string { return t.name }

// Direction tells whether this node sends or receives.
func (t *Transfer) Direction() Direction { return t.dir }

// Progress returns how far the transfer got.
func (t *Transfer) Progress() Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Progress{Bytes: t.bytes, Acked: t.acked, Total: t.total}
}

// Done is closed when the transfer completed or failed.
func (t *Transfer) Done() <-chan struct{} { return t.done }

// Err returns nil while the transfer runs and after it completed, and an
// *Error saying why once it failed (test it with errors.Is against
// ErrHashMismatch, ErrDisconnected...).
func (t *Transfer) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		return nil
	}
	return t.err
}

// Wait blocks until the transfer is done and returns Err, or until ctx ends
// and returns ctx.Err() (the transfer goes on).
func (t *Transfer) Wait(ctx context.Context) error {
	select {
	case <-t.done:
		return t.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Cancel stops the transfer: the peer is told (FileAbort or FileResult with
// code cancelled) and it fails with ErrCancelled. It returns at once; Done
// is closed shortly after. Cancelling a finished transfer does nothing.
func (t *Transfer) Cancel() { t.stop(newError(CodeCancelled, "cancelled locally")) }

// StoredAs returns the name the receiver stored the file under, once the
// transfer completed: the offered name, or that name with a " (n)" suffix
// when a file of that name already existed.
func (t *Transfer) StoredAs() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.storedAs
}

// stop asks the goroutine that owns the transfer to end it with e (a
// success when e.Code is CodeOK). The first call wins.
func (t *Transfer) stop(e *Error) {
	t.stopOnce.Do(func() {
		t.stopErr = e
		close(t.stopped)
		t.cancel()
	})
}

// stopCause returns the error the transfer was stopped with, if any.
func (t *Transfer) stopCause() (*Error, bool) {
	select {
	case <-t.stopped:
		return t.stopErr, true
	default:
		return nil, false
	}
}

// sinceProgress returns how long ago the transfer last made progress.
func (t *Transfer) sinceProgress() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return time.Since(t.lastProg)
}

// Info is a snapshot of a transfer, as GET /debug/transfers shows it.
type Info struct {
	ID        string `json:"id"`
	Peer      string `json:"peer"`
	Direction string `json:"direction"`
	// Name is the offered name; StoredAs the name the receiver stored the
	// file under, once completed.
	Name     string `json:"name"`
	StoredAs string `json:"storedAs,omitempty"`
	// Path is the sender's source file, or the receiver's final file.
	Path  string `json:"path,omitempty"`
	State string `json:"state"`
	// Bytes, Acked and Total are as in Progress.
	Bytes  uint64 `json:"bytes"`
	Acked  uint64 `json:"acked"`
	Total  uint64 `json:"total"`
	SHA256 string `json:"sha256,omitempty"`
	// Code and Reason say why a transfer failed.
	Code     string    `json:"code,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
}

// Info returns a snapshot of the transfer.
func (t *Transfer) Info() Info {
	t.mu.Lock()
	defer t.mu.Unlock()
	in := Info{
		ID: t.id.String(), Peer: t.peer, Direction: t.dir.String(), Name: t.name, StoredAs: t.storedAs,
		Path: t.path, State: t.state.String(), Bytes: t.bytes, Acked: t.acked, Total: t.total,
		SHA256: t.hash, Started: t.start, Finished: t.finished,
	}
	if t.err != nil {
		in.Code = t.err.Code.String()
		in.Reason = t.err.describe()
	}
	return in
}

func (t *Transfer) setHash(sum [32]byte) {
	t.mu.Lock()
	t.hash = hex.EncodeToString(sum[:])
	t.mu.Unlock()
}
