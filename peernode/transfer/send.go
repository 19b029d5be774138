package transfer

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/node"
)

// source is a file being sent, shared by the transfers of one Broadcast: it
// is hashed once and read with ReadAt, which is safe from many goroutines.
type source struct {
	f    *os.File
	path string
	size int64

	once sync.Once
	sum  [32]byte
	err  error

	refs atomic.Int32 // transfers still reading it; the last one closes f
}

func openSource(path string) (*source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrNotRegularFile, path)
	}
	return &source{f: f, path: path, size: fi.Size()}, nil
}

// digest streams the file through SHA-256 once (never holding it in
// memory); every transfer of the source gets the same result. The file is
// read up to the size it had when opened: a file that shrank since is an
// error, and bytes appended since are not sent.
func (src *source) digest(ctx context.Context) ([32]byte, error) {
	src.once.Do(func() {
		h := sha256.New()
		buf := make([]byte, 1<<20)
		n, err := io.CopyBuffer(h, ctxReader{ctx, io.NewSectionReader(src.f, 0, src.size)}, buf)
		switch {
		case err != nil:
			src.err = err
		case n != src.size:
			src.err = fmt.Errorf("%s shrank from %d to %d bytes while being hashed", src.path, src.size, n)
		default:
			h.Sum(src.sum[:0])
		}
	})
	return src.sum, src.err
}

func (src *source) release() {
	if src.refs.Add(-1) == 0 {
		src.f.Close()
	}
}

// ctxReader stops reading once ctx ends, so that hashing a large file does
// not delay a shutdown.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Send starts sending the file at path (read from this node's file system)
// to the peer id and returns at once; the Transfer reports progress and the
// outcome, which is a success only once the receiver verified the file's
// SHA-256 and stored it. The file is offered under its base name, which
// must pass ValidateName. ctx bounds only the start: the transfer runs until
// it completes, fails, is cancelled (Transfer.Cancel) or Run ends.
//
// Errors: node.ErrNoChannel when there is no open channel to the peer,
// ErrInvalidName, ErrNotRegularFile, the error of opening the file, and
// ErrNotRunning.
func (s *Service) Send(ctx context.Context, peerID, path string) (*Transfer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch, ok := s.node.Channel(peerID)
	if !ok {
		return nil, fmt.Errorf("%w %q", node.ErrNoChannel, peerID)
	}
	ts, err := s.start(path, []peernode.Channel{ch})
	if err != nil {
		return nil, err
	}
	return ts[0], nil
}

// Broadcast starts sending the file at path to every trusted peer (P2PNet's
// DistributionHandler), one Transfer per peer, hashing the file once. It
// returns ErrNoPeers when no peer is trusted; other errors are Send's.
func (s *Service) Broadcast(ctx context.Context, path string) ([]*Transfer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	chans := s.node.TrustedPeerChannels()
	if len(chans) == 0 {
		return nil, ErrNoPeers
	}
	return s.start(path, chans)
}

func (s *Service) start(path string, chans []peernode.Channel) ([]*Transfer, error) {
	name := filepath.Base(path)
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	src, err := openSource(path)
	if err != nil {
		return nil, err
	}
	src.refs.Store(int32(len(chans)))
	ts := make([]*Transfer, 0, len(chans))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.stopping {
		src.f.Close()
		return nil, ErrNotRunning
	}
	for _, ch := range chans {
		t := newTransfer(s.ctx, NewID(), ch, Send, name, uint64(src.size))
		t.src, t.path = src, src.path
		s.startLocked(t) // cannot fail: s.mu is held and the service runs
		go s.runSend(t)
		ts = append(ts, t)
	}
	return ts, nil
}

// runSend owns an outgoing transfer.
func (s *Service) runSend(t *Transfer) {
	defer s.wg.Done()
	defer t.src.release()
	e := s.send(t)
	if e != nil && !e.Remote && t.offered && e.Code != CodeDisconnected {
		defer s.sendFinal(t.ch, Abort{ID: t.id, Code: e.Code, Reason: truncateReason(e.Reason)})
	}
	s.finish(t, e)
}

// send runs the sender's side of the protocol (docs/transfer.md): hash,
// offer, wait for the acceptance, send the chunks within the window, wait
// for the receiver's result.
func (s *Service) send(t *Transfer) *Error {
	sum, err := t.src.digest(s.ctx)
	if err != nil {
		if e, ok := t.stopCause(); ok {
			return e
		}
		if s.ctx.Err() != nil {
			return newError(CodeShutdown, "the node is stopping")
		}
		return newError(CodeIOError, "hashing: "+err.Error())
	}
	t.setHash(sum)
	chunkSize := uint64(s.cfg.ChunkSize)
	offer := Offer{
		ID: t.id, Size: t.total, ChunkSize: uint32(chunkSize), Window: uint32(s.cfg.Window),
		SHA256: sum, Name: t.name,
	}
	if err := t.ch.Send(t.ctx, offer); err != nil {
		return s.cause(t, err)
	}
	t.offered = true

	timer := time.NewTimer(s.cfg.IdleTimeout)
	defer timer.Stop()
	for !t.isAccepted() {
		if e := s.await(t, timer, nil); e != nil {
			return resultOf(t, e)
		}
	}

	buf := make([]byte, chunkSize)
	for off := uint64(0); off < t.total; {
		n := min(chunkSize, t.total-off)
		for {
			wake, ok := t.win.tryAcquire(int64(n))
			if ok {
				break
			}
			if e := s.await(t, timer, wake); e != nil {
				return resultOf(t, e)
			}
		}
		t.mu.Lock()
		t.reserved += n
		t.mu.Unlock()
		data := buf[:n]
		if k, err := t.src.f.ReadAt(data, int64(off)); k < len(data) {
			return newError(CodeIOError, fmt.Sprintf("reading %s at offset %d: %v (did the file shrink?)", t.src.path, off, err))
		}
		if hook := s.chunkHook.Load(); hook != nil {
			(*hook)(t.id, off, data)
		}
		if err := t.ch.Send(t.ctx, Chunk{ID: t.id, Offset: off, Data: data}); err != nil {
			return resultOf(t, s.cause(t, err))
		}
		t.mu.Lock()
		t.bytes += n
		t.mu.Unlock()
		s.metrics.addBytes(Send, int(n))
		off += n
	}

	for {
		if e := s.await(t, timer, nil); e != nil {
			return resultOf(t, e)
		}
	}
}

// resultOf turns the end of a wait into the transfer's outcome: a FileResult
// with code OK is a success if every byte was sent and acknowledged.
func resultOf(t *Transfer, e *Error) *Error {
	if e.Code != CodeOK {
		return e
	}
	p := t.Progress()
	if p.Bytes != p.Total || p.Acked != p.Total {
		return newError(CodeProtocolError, fmt.Sprintf("the peer reported success after %d of %d bytes (%d acknowledged)", p.Bytes, p.Total, p.Acked))
	}
	return nil
}

// await waits for something to happen to an outgoing transfer: wake closed
// (window credit came back), an Ack, or an end. It returns nil to let the
// caller re-check its condition, and the transfer's end otherwise: a stop
// (a FileResult, possibly OK; a Cancel; a protocol error found by a
// handler), the channel closing, the service stopping, or no Ack within
// the idle timeout.
func (s *Service) await(t *Transfer, timer *time.Timer, wake <-chan struct{}) *Error {
	idle := s.cfg.IdleTimeout - t.sinceProgress()
	if idle <= 0 {
		if t.isAccepted() {
			return newError(CodeTimeout, fmt.Sprintf("no acknowledgement for %v", s.cfg.IdleTimeout))
		}
		return newError(CodeTimeout, fmt.Sprintf("no answer to the offer within %v (does the peer trust this node?)", s.cfg.IdleTimeout))
	}
	timer.Reset(idle)
	select {
	case <-wake:
	case <-t.progressed:
	case <-timer.C:
	case <-t.stopped:
		return t.stopErr
	case <-t.ch.Done():
		return s.cause(t, nil)
	case <-t.ctx.Done():
		return s.cause(t, nil)
	}
	return nil
}

func (t *Transfer) isAccepted() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.accepted
}

// onAck records an Ack of an outgoing transfer and gives the newly
// acknowledged bytes back to the window.
func (t *Transfer) onAck(off uint64) error {
	t.mu.Lock()
	if t.state != Running {
		t.mu.Unlock()
		return nil
	}
	if off > t.reserved || off < t.acked {
		sent, acked := t.reserved, t.acked
		t.mu.Unlock()
		return fmt.Errorf("acknowledgement of %d bytes when %d were sent and %d acknowledged", off, sent, acked)
	}
	delta := off - t.acked
	t.acked, t.accepted, t.lastProg = off, true, time.Now()
	t.mu.Unlock()
	t.win.release(int64(delta))
	select {
	case t.progressed <- struct{}{}:
	default:
	}
	return nil
}
