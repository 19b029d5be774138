package transfer

import "sync"

// window is the flow-control credit of one channel: the bytes of file data
// that may still be sent before the receiver acknowledges some. Every
// outgoing transfer on the channel draws from it, so file data queued on the
// channel, and in the connection's buffers, never exceeds Config.Window
// however many transfers run: a small packet sent on the same channel waits
// behind at most that much.
type window struct {
	mu    sync.Mutex
	avail int64
	wake  chan struct{} // closed and replaced when credit comes back; nil while nobody waits
	refs  int           // transfers using the window (guarded by Service.mu)
}

func newWindow(size int64) *window { return &window{avail: size} }

// tryAcquire takes n bytes of credit if available. Otherwise it returns a
// channel that is closed when credit comes back.
func (w *window) tryAcquire(n int64) (<-chan struct{}, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.avail >= n {
		w.avail -= n
		return nil, true
	}
	if w.wake == nil {
		w.wake = make(chan struct{})
	}
	return w.wake, false
}

// release gives n bytes of credit back and wakes every waiter.
func (w *window) release(n int64) {
	if n <= 0 {
		return
	}
	w.mu.Lock()
	w.avail += n
	wake := w.wake
	w.wake = nil
	w.mu.Unlock()
	if wake != nil {
		close(wake)
	}
}
