package transfer_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/transfer"
)

// TestSmallMessagesNotStarvedByTransfer sends a Message every 0.5 ms on the
// channel a large transfer is using and measures how long each takes to
// arrive. The channel has a single FIFO send queue, so a Message waits
// behind whatever file data is queued: the window keeps that at most
// Config.Window (1 MiB), so the median latency must stay near the time one
// window takes to move, and the p99 a small fraction of the transfer's
// duration (loose: a loaded machine stalls now and then).
func TestSmallMessagesNotStarvedByTransfer(t *testing.T) {
	size := int64(64 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	p50, p99, worst, d, n := measureMessageLatency(t, size, 0)
	t.Logf("%d messages during a %d MiB transfer of %v: latency p50 %v, p99 %v, max %v (window %d KiB)",
		n, size>>20, d.Round(time.Millisecond), p50, p99, worst, transfer.DefaultWindow>>10)
	if n < 20 {
		t.Fatalf("only %d messages measured", n)
	}
	// A Message waits behind at most one window of file data: about the
	// time the transfer takes to move one window at its average rate.
	// Without flow control it would wait behind the whole send queue, and
	// an unbounded queue would make it wait for the whole file.
	windowTime := time.Duration(float64(d) * float64(transfer.DefaultWindow) / float64(size))
	if bound := 3 * windowTime; p50 > bound {
		t.Errorf("median latency %v of small messages exceeds 3 windows' worth of transfer time (%v)", p50, bound)
	}
	if bound := d / 4; p99 > bound {
		t.Errorf("p99 latency %v of small messages exceeds a quarter of the transfer's %v", p99, d)
	}
	if !testing.Short() {
		// For comparison only (not asserted: timing on a shared machine),
		// the same with a window larger than the channel's send queue,
		// which lets file data fill the queue as an unpaced sender would.
		p50, p99, worst, d, n := measureMessageLatency(t, size, 32<<20)
		t.Logf("control, 32 MiB window: %d messages during %v: latency p50 %v, p99 %v, max %v",
			n, d.Round(time.Millisecond), p50, p99, worst)
	}
}

// measureMessageLatency runs a transfer of size bytes from a to b with the
// given window (0: the default) while a sends b numbered Messages, and
// returns the latency percentiles of the Messages sent while file data was
// flowing, the transfer's duration and the number of Messages measured.
func measureMessageLatency(t testing.TB, size int64, window int) (p50, p99, worst, d time.Duration, n int) {
	var mu sync.Mutex
	recv := make(map[int]time.Time)
	a, _ := pair(t,
		peerOptions{transfer: func(c *transfer.Config) { c.Window = window }},
		peerOptions{
			node: func(c *node.Config) {
				c.Events.MessageReceived = func(_ peernode.Channel, text string) {
					now := time.Now()
					i, err := strconv.Atoi(text)
					if err != nil {
						return
					}
					mu.Lock()
					recv[i] = now
					mu.Unlock()
				}
			},
			transfer: func(c *transfer.Config) { c.MaxWindow = max(window, transfer.DefaultMaxWindow) },
		})
	path, _ := writeRandomFile(t, t.TempDir(), "bulk.bin", size, 10)

	start := time.Now()
	tr, err := a.svc.Send(context.Background(), "b", path)
	if err != nil {
		t.Fatal(err)
	}
	// Measure only while file data flows: from the first 2 MiB to the last 4.
	eventually(t, 30*time.Second, func() bool { return tr.Progress().Acked >= 2<<20 }, func() string {
		return "the transfer does not progress"
	})
	sent := make(map[int]time.Time)
	tick := time.NewTicker(500 * time.Microsecond)
	defer tick.Stop()
	ctx := context.Background()
loop:
	for i := 0; ; i++ {
		select {
		case <-tr.Done():
			break loop
		case <-tick.C:
		}
		if tr.Progress().Bytes+4<<20 >= uint64(size) {
			break
		}
		sent[i] = time.Now()
		if err := a.node.SendMessage(ctx, "b", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Wait(ctx); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	d = time.Since(start)
	eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(recv) >= len(sent)
	}, func() string { return "messages lost" })

	mu.Lock()
	defer mu.Unlock()
	lat := make([]time.Duration, 0, len(sent))
	for i, at := range sent {
		lat = append(lat, recv[i].Sub(at))
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return 0, 0, 0, d, 0
	}
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return pct(0.50), pct(0.99), lat[len(lat)-1], d, len(lat)
}
