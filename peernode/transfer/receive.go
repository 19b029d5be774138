package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// maxNameAttempts bounds the " (n)" suffixes tried for a taken name.
const maxNameAttempts = 1000

// The handlers run on the reader goroutine of the channel the packet came
// on: they decode, look the transfer up and hand over to the goroutine that
// owns it, and never block on the network or the disk, so small packets on
// the same channel are not delayed by file I/O.

func (s *Service) handleOffer(_ context.Context, ch peernode.Channel, p wire.Packet) error {
	o, err := decodeAs(p, DecodeOffer)
	if err != nil {
		return err
	}
	code, reason := s.admitOffer(ch, o)
	if code == CodeOK {
		return nil
	}
	// Refused: record it (it shows in Transfers and counts as a failed
	// incoming transfer) and tell the sender.
	s.mu.Lock()
	parent := s.ctx
	if parent == nil {
		parent = context.Background()
	}
	t := newTransfer(parent, o.ID, ch, Receive, o.Name, o.Size)
	t.setHash(o.SHA256)
	s.mu.Unlock()
	e := newError(code, reason)
	s.finishRefused(t, e)
	s.reply(ch, Result{ID: o.ID, Code: code, Detail: truncateReason(reason)})
	return nil
}

// admitOffer checks an offer against the limits and, when it is accepted,
// starts the goroutine that receives it.
func (s *Service) admitOffer(ch peernode.Channel, o Offer) (Code, string) {
	if s.cfg.ReceiveDir == "" {
		return CodeNotReceiving, "this node does not accept files"
	}
	if err := ValidateName(o.Name); err != nil {
		return CodeInvalidName, err.Error()
	}
	if o.Size > uint64(s.cfg.MaxFileSize) {
		return CodeTooLarge, fmt.Sprintf("%d bytes exceed the maximum of %d", o.Size, s.cfg.MaxFileSize)
	}
	if o.Window > uint32(s.cfg.MaxWindow) {
		return CodeRejected, fmt.Sprintf("window of %d bytes exceeds the maximum of %d", o.Window, s.cfg.MaxWindow)
	}
	if o.Window/o.ChunkSize > maxBufferedChunks {
		return CodeRejected, fmt.Sprintf("window of %d chunks of %d bytes exceeds %d chunks", o.Window/o.ChunkSize, o.ChunkSize, maxBufferedChunks)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ctx == nil || s.stopping:
		return CodeShutdown, "the node is not running file transfers"
	case s.active[key{ch, o.ID, Receive}] != nil:
		return CodeProtocolError, "duplicate transfer ID " + o.ID.String()
	case s.incoming >= s.cfg.MaxIncoming:
		return CodeBusy, fmt.Sprintf("%d incoming transfers already running", s.incoming)
	}
	t := newTransfer(s.ctx, o.ID, ch, Receive, o.Name, o.Size)
	t.sum, t.chunkSize, t.window = o.SHA256, o.ChunkSize, o.Window
	t.hash = hex.EncodeToString(o.SHA256[:])
	// The sender keeps at most Window bytes unacknowledged and sends full
	// chunks, so the queue never fills unless the sender breaks the window.
	t.chunks = make(chan Chunk, int(o.Window/o.ChunkSize)+2)
	s.startLocked(t)
	go s.runReceive(t)
	return CodeOK, ""
}

// finishRefused records an offer refused before any goroutine owned it.
func (s *Service) finishRefused(t *Transfer, e *Error) {
	t.mu.Lock()
	t.state, t.err, t.finished = Failed, e, time.Now()
	t.mu.Unlock()
	t.cancel()
	s.mu.Lock()
	s.retireLocked(t)
	s.mu.Unlock()
	s.metrics.finishedTransfer(Receive, false)
	s.log.Warn("file offer refused", "peer", t.peer, "transfer", t.id.String(), "name", t.name,
		"total", t.total, "code", e.Code.String(), "reason", e.Reason)
	close(t.done)
}

func (s *Service) handleChunk(_ context.Context, ch peernode.Channel, p wire.Packet) error {
	c, err := decodeAs(p, DecodeChunk)
	if err != nil {
		return err
	}
	t := s.lookup(ch, c.ID, Receive)
	if t == nil {
		return nil // a chunk in flight when its transfer ended: dropped
	}
	select {
	case t.chunks <- c:
	default:
		t.stop(newError(CodeProtocolError, fmt.Sprintf("the sender exceeded its window of %d bytes", t.window)))
	}
	return nil
}

func (s *Service) handleAck(_ context.Context, ch peernode.Channel, p wire.Packet) error {
	a, err := decodeAs(p, DecodeAck)
	if err != nil {
		return err
	}
	if t := s.lookup(ch, a.ID, Send); t != nil {
		if err := t.onAck(a.Offset); err != nil {
			t.stop(newError(CodeProtocolError, err.Error()))
		}
	}
	return nil
}

func (s *Service) handleResult(_ context.Context, ch peernode.Channel, p wire.Packet) error {
	r, err := decodeAs(p, DecodeResult)
	if err != nil {
		return err
	}
	if t := s.lookup(ch, r.ID, Send); t != nil {
		if r.Code == CodeOK {
			t.mu.Lock()
			t.storedAs = r.Detail
			t.mu.Unlock()
		}
		t.stop(&Error{Code: r.Code, Reason: r.Detail, Remote: true})
	}
	return nil
}

func (s *Service) handleAbort(_ context.Context, ch peernode.Channel, p wire.Packet) error {
	a, err := decodeAs(p, DecodeAbort)
	if err != nil {
		return err
	}
	if t := s.lookup(ch, a.ID, Receive); t != nil {
		t.stop(&Error{Code: a.Code, Reason: a.Reason, Remote: true})
	}
	return nil
}

// runReceive owns an incoming transfer.
func (s *Service) runReceive(t *Transfer) {
	defer s.wg.Done()
	e := s.receive(t)
	if e != nil {
		s.discard(t)
	}
	s.finish(t, e)
	switch {
	case e == nil:
		s.sendFinal(t.ch, Result{ID: t.id, Code: CodeOK, Detail: t.StoredAs()})
	case !e.Remote && e.Code != CodeDisconnected:
		s.sendFinal(t.ch, Result{ID: t.id, Code: e.Code, Detail: truncateReason(e.Reason)})
	}
}

// receive runs the receiver's side of the protocol (docs/transfer.md):
// accept, write the chunks in order to a temporary file, acknowledge, then
// verify and store the file.
func (s *Service) receive(t *Transfer) *Error {
	dir := s.cfg.ReceiveDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return newError(CodeIOError, "creating the receive directory: "+err.Error())
	}
	f, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return newError(CodeIOError, "creating a temporary file: "+err.Error())
	}
	t.file, t.tmpPath = f, f.Name()
	if err := t.ch.Send(t.ctx, Ack{ID: t.id}); err != nil {
		return s.cause(t, err)
	}

	// Acknowledge every quarter window, so the sender never stalls on a
	// full window, and whenever the queue runs dry, so a sender sharing the
	// channel's window with other transfers always gets its credit back.
	ackEvery := max(uint64(t.window)/4, uint64(t.chunkSize))
	var next, lastAck uint64
	timer := time.NewTimer(s.cfg.IdleTimeout)
	defer timer.Stop()
	for next < t.total {
		select {
		case c := <-t.chunks:
			want := min(uint64(t.chunkSize), t.total-next)
			if c.Offset != next {
				return newError(CodeProtocolError, fmt.Sprintf("chunk at offset %d, expected %d", c.Offset, next))
			}
			if uint64(len(c.Data)) != want {
				return newError(CodeProtocolError, fmt.Sprintf("chunk of %d bytes at offset %d, expected %d (file of %d bytes, chunks of %d)",
					len(c.Data), c.Offset, want, t.total, t.chunkSize))
			}
			if _, err := t.file.Write(c.Data); err != nil {
				return newError(CodeIOError, "writing: "+err.Error())
			}
			next += want
			s.metrics.addBytes(Receive, len(c.Data))
			t.mu.Lock()
			t.bytes, t.lastProg = next, time.Now()
			t.mu.Unlock()
			if next-lastAck >= ackEvery || len(t.chunks) == 0 || next == t.total {
				if err := t.ch.Send(t.ctx, Ack{ID: t.id, Offset: next}); err != nil {
					return s.cause(t, err)
				}
				lastAck = next
				t.mu.Lock()
				t.acked = next
				t.mu.Unlock()
			}
			timer.Reset(s.cfg.IdleTimeout)
		case <-timer.C:
			return newError(CodeTimeout, fmt.Sprintf("no data for %v after %d of %d bytes", s.cfg.IdleTimeout, next, t.total))
		case <-t.ch.Done():
			return s.cause(t, nil)
		case <-t.ctx.Done():
			return s.cause(t, nil)
		}
	}
	return s.store(t)
}

// store verifies the assembled file against the offered SHA-256, reading it
// back from disk, and only then gives it its final name.
func (s *Service) store(t *Transfer) *Error {
	if !s.cfg.NoSync {
		if err := t.file.Sync(); err != nil {
			return newError(CodeIOError, "syncing: "+err.Error())
		}
	}
	if _, err := t.file.Seek(0, io.SeekStart); err != nil {
		return newError(CodeIOError, "verifying: "+err.Error())
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxReader{t.ctx, t.file}, make([]byte, 1<<20))
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return s.cause(t, err)
		}
		return newError(CodeIOError, "verifying: "+err.Error())
	}
	if uint64(n) != t.total {
		return newError(CodeIOError, fmt.Sprintf("verifying: the temporary file holds %d bytes, expected %d", n, t.total))
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, t.sum[:]) {
		return newError(CodeHashMismatch, fmt.Sprintf("sha256 of the received file is %x, the offer said %x", sum, t.sum))
	}
	if err := t.file.Close(); err != nil {
		t.file = nil
		return newError(CodeIOError, "closing: "+err.Error())
	}
	t.file = nil
	name, err := publish(s.cfg.ReceiveDir, t.tmpPath, t.name)
	if err != nil {
		return newError(CodeIOError, "storing: "+err.Error())
	}
	t.tmpPath = ""
	if !s.cfg.NoSync {
		syncDir(s.cfg.ReceiveDir)
	}
	t.mu.Lock()
	t.storedAs, t.path = name, filepath.Join(s.cfg.ReceiveDir, name)
	t.mu.Unlock()
	return nil
}

// discard removes what a failed incoming transfer left.
func (s *Service) discard(t *Transfer) {
	if t.file != nil {
		t.file.Close()
		t.file = nil
	}
	if t.tmpPath != "" {
		if err := os.Remove(t.tmpPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("removing the temporary file of a failed transfer", "file", t.tmpPath, "err", err)
		}
		t.tmpPath = ""
	}
}

// publish gives the verified temporary file tmp its final name in dir:
// name, or "base (n).ext" for the first n from 1 that is free. It never
// replaces an existing file: the final name is created with link(2), which
// fails when the name exists, and the temporary name is then removed. On
// file systems without hard links it reserves the name with an exclusive
// create and renames the temporary file over that placeholder.
func publish(dir, tmp, name string) (string, error) {
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	if base == "" { // ".bashrc": the dot starts the name, not an extension
		base, ext = name, ""
	}
	for i := range maxNameAttempts {
		cand := name
		if i > 0 {
			cand = fmt.Sprintf("%s (%d)%s", base, i, ext)
			if len(cand) > MaxNameLen {
				return "", fmt.Errorf("%q exists and a numbered name would be too long", name)
			}
		}
		final := filepath.Join(dir, cand)
		err := os.Link(tmp, final)
		if err == nil {
			// The file is complete under its final name; a temporary name
			// that cannot be removed now is removed at the next start.
			_ = os.Remove(tmp)
			return cand, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		placeholder, perr := os.OpenFile(final, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(perr, fs.ErrExist) {
			continue
		}
		if perr != nil {
			return "", fmt.Errorf("link: %w; create: %w", err, perr)
		}
		placeholder.Close()
		if err := os.Rename(tmp, final); err != nil {
			os.Remove(final)
			return "", err
		}
		return cand, nil
	}
	return "", fmt.Errorf("%q and %d numbered variants exist", name, maxNameAttempts-1)
}

// syncDir makes a new directory entry durable, best effort.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
