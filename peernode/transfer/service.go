package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/wire"
)

// finalSendTimeout bounds the best-effort send of the packet that ends a
// transfer (FileResult, FileAbort), which may happen while the node stops.
const finalSendTimeout = 2 * time.Second

// Service sends and receives files over a node's channels (P2PNet's
// DistributionHandler, with verified, flow-controlled chunked transfers),
// and sends Task and Misc data. Build it with New, which registers its
// packet handlers on the node, and run it with Run beside the node's Run.
// Its methods are safe for concurrent use.
type Service struct {
	node    *node.Node
	cfg     Config
	log     *slog.Logger
	metrics *Metrics

	// chunkHook, set by tests, sees (and may modify) every chunk the
	// sender is about to send.
	chunkHook atomic.Pointer[func(id ID, offset uint64, data []byte)]

	mu       sync.Mutex
	ctx      context.Context // set by Run; nil before
	stopping bool            // Run is returning: no new goroutine may start
	active   map[key]*Transfer
	incoming int                          // active incoming transfers
	history  []*Transfer                  // finished transfers, oldest first
	windows  map[peernode.Channel]*window // flow-control credit per channel
	wg       sync.WaitGroup
}

// key identifies a running transfer: transfer IDs are chosen by senders, so
// they are unique only per channel and direction.
type key struct {
	ch  peernode.Channel
	id  ID
	dir Direction
}

// New builds the service for n, registers the handlers of the file-transfer
// packet types (0x20-0x24) on n's registry, and removes temporary files a
// previous run left in cfg.ReceiveDir (so one receive directory must not be
// shared by two nodes). The trust gate admits these packets only from
// trusted peers, or from any peer when allowEnhancedPacketExchange is set.
func New(n *node.Node, cfg Config) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := NewMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{
		node: n, cfg: cfg, metrics: m,
		log:     cfg.Logger.With("node", n.ID()),
		active:  make(map[key]*Transfer),
		windows: make(map[peernode.Channel]*window),
	}
	if cfg.ReceiveDir != "" {
		s.removeStaleTemps()
	}
	r := n.Registry()
	for t, h := range map[wire.Type]peernode.HandlerFunc{
		TypeFileOffer:  s.handleOffer,
		TypeFileChunk:  s.handleChunk,
		TypeFileAck:    s.handleAck,
		TypeFileResult: s.handleResult,
		TypeFileAbort:  s.handleAbort,
	} {
		if err := r.Handle(t, h); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Metrics returns the service's metrics.
func (s *Service) Metrics() *Metrics { return s.metrics }

// ReceiveDir returns the directory incoming files are stored in ("" when
// receiving is disabled).
func (s *Service) ReceiveDir() string { return s.cfg.ReceiveDir }

// Run serves transfers until ctx ends, then fails every running transfer
// (code shutdown, removing incoming temporary files) and returns once every
// goroutine the service started has returned. Transfers can only start
// while Run runs.
func (s *Service) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	if s.ctx != nil {
		s.mu.Unlock()
		return errors.New("transfer: Run called twice")
	}
	s.ctx = runCtx
	s.mu.Unlock()

	<-ctx.Done()
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	cancel()
	s.wg.Wait()
	return nil
}

// startLocked registers t and accounts for the goroutine that will own it.
// It reports false when the service is not running. s.mu must be held.
func (s *Service) startLocked(t *Transfer) bool {
	if s.ctx == nil || s.stopping {
		return false
	}
	s.active[key{t.ch, t.id, t.dir}] = t
	if t.dir == Receive {
		s.incoming++
	} else {
		w := s.windows[t.ch]
		if w == nil {
			w = newWindow(int64(s.cfg.Window))
			s.windows[t.ch] = w
		}
		w.refs++
		t.win = w
	}
	s.wg.Add(1)
	return true
}

// spawn runs f on a goroutine Run waits for; false when not running.
func (s *Service) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.stopping {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Service) lookup(ch peernode.Channel, id ID, dir Direction) *Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[key{ch, id, dir}]
}

// finish ends t with e (nil: completed). Only the goroutine that owns t
// calls it, after removing any temporary file, so that a transfer that
// looks finished has nothing left behind.
func (s *Service) finish(t *Transfer, e *Error) {
	t.mu.Lock()
	if t.state != Running {
		t.mu.Unlock()
		return
	}
	t.finished = time.Now()
	if e == nil {
		t.state = Completed
	} else {
		t.state, t.err = Failed, e
	}
	unacked := int64(t.reserved) - int64(t.acked)
	bytes := t.bytes
	t.mu.Unlock()
	t.cancel()
	if t.win != nil {
		t.win.release(unacked)
	}

	s.mu.Lock()
	delete(s.active, key{t.ch, t.id, t.dir})
	if t.dir == Receive {
		s.incoming--
	} else if t.win != nil {
		if t.win.refs--; t.win.refs == 0 {
			delete(s.windows, t.ch)
		}
	}
	s.retireLocked(t)
	s.mu.Unlock()

	s.metrics.finishedTransfer(t.dir, e == nil)
	d := t.finished.Sub(t.start)
	attrs := []any{"peer", t.peer, "transfer", t.id.String(), "name", t.name, "direction", t.dir.String(),
		"bytes", bytes, "total", t.total, "duration", d.Round(time.Millisecond)}
	if e == nil {
		attrs = append(attrs, "MiBps", fmt.Sprintf("%.1f", float64(t.total)/(1<<20)/max(d.Seconds(), 1e-9)))
		if t.dir == Receive {
			attrs = append(attrs, "storedAs", t.StoredAs())
		}
		s.log.Info("file transfer completed", attrs...)
	} else {
		s.log.Warn("file transfer failed", append(attrs, "code", e.Code.String(), "remote", e.Remote, "reason", e.Reason)...)
	}
	close(t.done)
}

// retireLocked keeps t in the bounded history. s.mu must be held.
func (s *Service) retireLocked(t *Transfer) {
	if len(s.history) >= s.cfg.History {
		n := copy(s.history, s.history[len(s.history)-s.cfg.History+1:])
		clear(s.history[n:])
		s.history = s.history[:n]
	}
	s.history = append(s.history, t)
}

// Transfers returns a snapshot of the running transfers and the last
// finished ones (Config.History), in both directions, oldest first.
func (s *Service) Transfers() []Info {
	s.mu.Lock()
	list := make([]*Transfer, 0, len(s.active)+len(s.history))
	for _, t := range s.active {
		list = append(list, t)
	}
	list = append(list, s.history...)
	s.mu.Unlock()
	out := make([]Info, 0, len(list))
	for _, t := range list {
		out = append(out, t.Info())
	}
	slices.SortFunc(out, func(a, b Info) int {
		return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Direction, b.Direction))
	})
	return out
}

// cause turns the end of a wait (err from a Send, or nil after a select)
// into the reason the transfer ends: the stop signal if there was one, then
// a closed channel, then the service stopping.
func (s *Service) cause(t *Transfer, err error) *Error {
	if e, ok := t.stopCause(); ok {
		return e
	}
	select {
	case <-t.ch.Done():
		return newError(CodeDisconnected, "the channel to the peer closed")
	default:
	}
	if s.ctx.Err() != nil {
		return newError(CodeShutdown, "the node is stopping")
	}
	if errors.Is(err, peernode.ErrChannelClosed) {
		return newError(CodeDisconnected, "the channel to the peer closed")
	}
	if err == nil {
		err = errors.New("interrupted")
	}
	return newError(CodeProtocolError, err.Error())
}

// sendFinal sends the packet that ends a transfer, best effort: the
// transfer is already over, and the node may be stopping.
func (s *Service) sendFinal(ch peernode.Channel, p wire.Packet) {
	ctx, cancel := context.WithTimeout(context.Background(), finalSendTimeout)
	defer cancel()
	if err := ch.Send(ctx, p); err != nil {
		s.log.Debug("final transfer packet not sent", "peer", ch.Peer().ID(), "packetType", p.Type().String(), "err", err)
	}
}

// reply answers an offer the service refuses, from the reader goroutine:
// on a goroutine of its own when it can (Send may block), else without
// blocking.
func (s *Service) reply(ch peernode.Channel, r Result) {
	if !s.spawn(func() { s.sendFinal(ch, r) }) {
		_ = ch.TrySend(r)
	}
}

func truncateReason(s string) string {
	if len(s) <= MaxDetailLen {
		return s
	}
	s = s[:MaxDetailLen]
	for !utf8.ValidString(s) { // cut inside a multi-byte character
		s = s[:len(s)-1]
	}
	return s
}

// removeStaleTemps deletes the temporary files of transfers a previous run
// did not finish (a crash): they never look complete, but take space.
func (s *Service) removeStaleTemps() {
	entries, err := os.ReadDir(s.cfg.ReceiveDir)
	if err != nil {
		return // absent: created with the first offer
	}
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(name, tempPrefix) && strings.HasSuffix(name, tempSuffix) {
			if err := os.Remove(filepath.Join(s.cfg.ReceiveDir, name)); err == nil {
				s.log.Info("removed the temporary file of an unfinished transfer", "file", name)
			}
		}
	}
}

// SendData sends body as a Data packet of the given format to the peer id
// (on top of node.Send). Files are not sent this way: DataFormatFile gets
// ErrFileData (use Send, which verifies them).
func (s *Service) SendData(ctx context.Context, peerID string, format wire.DataFormat, body []byte) error {
	if format == wire.DataFormatFile {
		return ErrFileData
	}
	return s.node.Send(ctx, peerID, wire.Data{Format: format, Body: body})
}

// BroadcastData sends body as a Data packet to every trusted peer (P2PNet's
// DistributionHandler queueing data for every trusted channel). It returns
// to how many peers it was queued and the errors of the others.
func (s *Service) BroadcastData(ctx context.Context, format wire.DataFormat, body []byte) (int, error) {
	if format == wire.DataFormatFile {
		return 0, ErrFileData
	}
	return s.node.Broadcast(ctx, wire.Data{Format: format, Body: body})
}

// decodeAs decodes a received packet: a wire.Raw (how a channel delivers
// types without a built-in decoder) or, should package wire learn these
// types one day, the packet itself.
func decodeAs[P wire.Packet](p wire.Packet, decode func([]byte) (P, error)) (P, error) {
	switch v := p.(type) {
	case P:
		return v, nil
	case wire.Raw:
		return decode(v.Payload)
	}
	var zero P
	return zero, fmt.Errorf("%w: unexpected %T for packet type %v", wire.ErrMalformed, p, p.Type())
}
