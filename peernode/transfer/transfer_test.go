package transfer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/transfer"
	"github.com/peermesh/peermesh/peernode/trust"
	"github.com/peermesh/peermesh/peernode/wire"
)

// TestTransfer100MiB sends a 100 MiB file between two nodes on loopback and
// checks it arrives whole, verified, under its name, with no temporary file
// left, and that both sides report and count it.
func TestTransfer100MiB(t *testing.T) {
	size := int64(100 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	// fsync on: this is the configuration a daemon runs with.
	a, b := pair(t, peerOptions{}, peerOptions{transfer: func(c *transfer.Config) { c.NoSync = false }})
	path, sum := writeRandomFile(t, t.TempDir(), "big.bin", size, 1)

	start := time.Now()
	tr, err := a.svc.Send(context.Background(), "b", path)
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, tr, 60*time.Second)
	elapsed := time.Since(start)
	if err := tr.Err(); err != nil {
		t.Fatalf("transfer failed: %v", err)
	}
	t.Logf("%d MiB in %v: %.1f MiB/s (hashing, sending, writing, fsync and verification included)",
		size>>20, elapsed.Round(time.Millisecond), float64(size)/(1<<20)/elapsed.Seconds())

	if p := tr.Progress(); p.Bytes != uint64(size) || p.Acked != uint64(size) || p.Total != uint64(size) {
		t.Errorf("sender progress = %+v, want %d everywhere", p, size)
	}
	if got := tr.StoredAs(); got != "big.bin" {
		t.Errorf("StoredAs = %q, want big.bin", got)
	}
	if names := dirNames(t, b.dir); !slices.Equal(names, []string{"big.bin"}) {
		t.Fatalf("receive directory holds %q, want only big.bin", names)
	}
	if got := fileSHA256(t, filepath.Join(b.dir, "big.bin")); got != sum {
		t.Errorf("received file sha256 %s, sent %s", got, sum)
	}
	in := finalInfo(t, b, tr.ID(), transfer.Receive)
	if in.State != "completed" || in.Bytes != uint64(size) || in.Peer != "a" || in.StoredAs != "big.bin" || in.SHA256 != sum {
		t.Errorf("receiver info = %+v", in)
	}
	out := finalInfo(t, a, tr.ID(), transfer.Send)
	if out.State != "completed" || out.Acked != uint64(size) || out.Peer != "b" || out.SHA256 != sum {
		t.Errorf("sender info = %+v", out)
	}

	sendMetrics := a.svc.Metrics()
	recvMetrics := b.svc.Metrics()
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"sent ok", testutil.ToFloat64(sendMetrics.Transfers.WithLabelValues("send", "success")), 1},
		{"received ok", testutil.ToFloat64(recvMetrics.Transfers.WithLabelValues("receive", "success")), 1},
		{"receive failures", testutil.ToFloat64(recvMetrics.Transfers.WithLabelValues("receive", "failure")), 0},
		{"bytes sent", testutil.ToFloat64(sendMetrics.Bytes.WithLabelValues("send")), float64(size)},
		{"bytes received", testutil.ToFloat64(recvMetrics.Bytes.WithLabelValues("receive")), float64(size)},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// The series are on the injected registry, under the documented names.
	if n, err := testutil.GatherAndCount(b.reg, "peermesh_node_file_transfers_total", "peermesh_node_file_transfer_bytes_total"); err != nil || n != 6 {
		t.Errorf("gathered %d transfer series (%v), want 6", n, err)
	}
}

// TestCorruptedChunkDetected flips one byte of one chunk on the sender: the
// receiver's end-to-end check fails, both sides report hash_mismatch, and
// nothing is left in the receive directory.
func TestCorruptedChunkDetected(t *testing.T) {
	a, b := pair(t, peerOptions{}, peerOptions{})
	path, _ := writeRandomFile(t, t.TempDir(), "data.bin", 1<<20+123, 2)
	transfer.SetChunkHook(a.svc, func(_ transfer.ID, off uint64, data []byte) {
		if off == 3*transfer.DefaultChunkSize {
			data[100] ^= 0x01
		}
	})
	tr, err := a.svc.Send(context.Background(), "b", path)
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, tr, 20*time.Second)
	var te *transfer.Error
	if err := tr.Err(); !errors.Is(err, transfer.ErrHashMismatch) || !errors.As(err, &te) || !te.Remote {
		t.Fatalf("sender error = %v, want a hash mismatch reported by the peer", err)
	}
	in := finalInfo(t, b, tr.ID(), transfer.Receive)
	if in.State != "failed" || in.Code != "hash_mismatch" {
		t.Errorf("receiver info = %+v, want failed with hash_mismatch", in)
	}
	if names := dirNames(t, b.dir); len(names) != 0 {
		t.Errorf("receive directory holds %q after a corrupted transfer, want nothing", names)
	}
	if got := testutil.ToFloat64(b.svc.Metrics().Transfers.WithLabelValues("receive", "failure")); got != 1 {
		t.Errorf("receive failures = %v, want 1", got)
	}
}

// stallAt returns a chunk hook that blocks the sender at offset off until
// release is closed, closing reached when it gets there.
func stallAt(off uint64) (hook func(transfer.ID, uint64, []byte), reached <-chan struct{}, release func()) {
	r, rel := make(chan struct{}), make(chan struct{})
	var once, relOnce sync.Once
	return func(_ transfer.ID, o uint64, _ []byte) {
			if o == off {
				once.Do(func() { close(r) })
				<-rel
			}
		}, r, func() {
			relOnce.Do(func() { close(rel) })
		}
}

// TestSenderDisconnectMidTransfer cuts the sender's connection in the middle
// of a transfer: the receiver fails it (disconnected) and removes its
// temporary file, and the sender fails too.
func TestSenderDisconnectMidTransfer(t *testing.T) {
	a, b := pair(t, peerOptions{}, peerOptions{})
	path, _ := writeRandomFile(t, t.TempDir(), "cut.bin", 4<<20, 3)
	hook, reached, release := stallAt(2 << 20)
	defer release()
	transfer.SetChunkHook(a.svc, hook)
	tr, err := a.svc.Send(context.Background(), "b", path)
	if err != nil {
		t.Fatal(err)
	}
	<-reached
	// The receiver has a temporary file while the transfer runs.
	eventually(t, 5*time.Second, func() bool { return len(dirNames(t, b.dir)) == 1 }, func() string {
		return "no temporary file: " + strings.Join(dirNames(t, b.dir), ", ")
	})
	ch, ok := a.node.Channel("b")
	if !ok {
		t.Fatal("no channel a->b")
	}
	ch.Peer().Conn().Close() // the network fails under the sender
	in := finalInfo(t, b, tr.ID(), transfer.Receive)
	if in.State != "failed" || in.Code != "disconnected" {
		t.Errorf("receiver info = %+v, want failed, disconnected", in)
	}
	if names := dirNames(t, b.dir); len(names) != 0 {
		t.Errorf("receive directory holds %q after a disconnect, want nothing", names)
	}
	release()
	waitDone(t, tr, 10*time.Second)
	if err := tr.Err(); !errors.Is(err, transfer.ErrDisconnected) {
		t.Errorf("sender error = %v, want ErrDisconnected", err)
	}
}

// TestCancelBySender: Cancel fails the transfer on both sides; the receiver
// learns it from a FileAbort.
func TestCancelBySender(t *testing.T) {
	a, b := pair(t, peerOptions{}, peerOptions{})
	path, _ := writeRandomFile(t, t.TempDir(), "cancel.bin", 2<<20, 4)
	hook, reached, release := stallAt(1 << 20)
	defer release()
	transfer.SetChunkHook(a.svc, hook)
	tr, err := a.svc.Send(context.Background(), "b", path)
	if err != nil {
		t.Fatal(err)
	}
	<-reached
	tr.Cancel()
	release()
	waitDone(t, tr, 10*time.Second)
	if err := tr.Err(); !errors.Is(err, transfer.ErrCancelled) {
		t.Errorf("sender error = %v, want ErrCancelled", err)
	}
	in := finalInfo(t, b, tr.ID(), transfer.Receive)
	if in.State != "failed" || in.Code != "cancelled" || !strings.Contains(in.Reason, "(peer)") {
		t.Errorf("receiver info = %+v, want failed, cancelled by the peer", in)
	}
	if names := dirNames(t, b.dir); len(names) != 0 {
		t.Errorf("receive directory holds %q, want nothing", names)
	}
}

// TestReceiverIdleTimeout: a sender that stops making progress is failed by
// the receiver (timeout), which tells the sender.
func TestReceiverIdleTimeout(t *testing.T) {
	a, b := pair(t, peerOptions{}, peerOptions{transfer: func(c *transfer.Config) { c.IdleTimeout = 300 * time.Millisecond }})
	path, _ := writeRandomFile(t, t.TempDir(), "stall.bin", 1<<20, 5)
	hook, _, release := stallAt(512 << 10)
	defer release()
	transfer.SetChunkHook(a.svc, hook)
	tr, err := a.svc.Send(context.Background(), "b", path)
	if err != nil {
		t.Fatal(err)
	}
	in := finalInfo(t, b, tr.ID(), transfer.Receive)
	if in.State != "failed" || in.Code != "timeout" || in.Bytes != 512<<10 {
		t.Errorf("receiver info = %+v, want failed, timeout after 512 KiB", in)
	}
	release()
	waitDone(t, tr, 10*time.Second)
	if err := tr.Err(); !errors.Is(err, transfer.ErrTimeout) {
		t.Errorf("sender error = %v, want the receiver's timeout", err)
	}
	if names := dirNames(t, b.dir); len(names) != 0 {
		t.Errorf("receive directory holds %q, want nothing", names)
	}
}

// TestExistingFileIsNeverOverwritten: a received file whose name is taken is
// stored under "name (n).ext", and the sender learns that name.
func TestExistingFileIsNeverOverwritten(t *testing.T) {
	a, b := pair(t, peerOptions{}, peerOptions{})
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"report.pdf", "report (1).pdf"} {
		if err := os.WriteFile(filepath.Join(b.dir, name), []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path, sum := writeRandomFile(t, t.TempDir(), "report.pdf", 100<<10, 6)
	tr, err := a.svc.Send(context.Background(), "b", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tr.StoredAs(); got != "report (2).pdf" {
		t.Errorf("StoredAs = %q, want %q", got, "report (2).pdf")
	}
	for _, name := range []string{"report.pdf", "report (1).pdf"} {
		if b, _ := os.ReadFile(filepath.Join(b.dir, name)); string(b) != "keep me" {
			t.Errorf("%s was modified", name)
		}
	}
	if got := fileSHA256(t, filepath.Join(b.dir, "report (2).pdf")); got != sum {
		t.Errorf("stored file sha256 %s, want %s", got, sum)
	}
}

// TestEmptyFile: a zero-byte file needs no chunk.
func TestEmptyFile(t *testing.T) {
	a, b := pair(t, peerOptions{}, peerOptions{})
	path := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := a.svc.Send(context.Background(), "b", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(b.dir, "empty")); err != nil || fi.Size() != 0 {
		t.Errorf("stat = %v, %v", fi, err)
	}
}

// TestBroadcastReachesOnlyTrustedPeers: a broadcast goes to every trusted
// peer and to no untrusted one, even one with an open channel; and an
// offer sent to a peer that does not trust this node is dropped by that
// peer's gate, so it times out with a hint.
func TestBroadcastReachesOnlyTrustedPeers(t *testing.T) {
	// a keeps its pending trust handshake with c open for the whole test.
	a := startPeer(t, "a", peerOptions{
		node:     func(c *node.Config) { c.Channel.HandshakeTimeout = time.Minute },
		transfer: func(c *transfer.Config) { c.IdleTimeout = 2 * time.Second },
	})
	b := startPeer(t, "b", peerOptions{node: seeds(a)})
	d := startPeer(t, "d", peerOptions{node: seeds(a)})
	// c never runs a trust protocol and refuses enhanced packets from
	// untrusted peers: a never trusts it, and it never trusts a.
	untrusting := trust.DefaultPolicy()
	untrusting.RunTrustProtocol, untrusting.AllowEnhancedPacketExchange = false, false
	c := startPeer(t, "c", peerOptions{node: func(cfg *node.Config) { seeds(a)(cfg); cfg.Policy = untrusting }})
	waitTrusted(t, a, "b", "d")
	eventually(t, 10*time.Second, func() bool { _, ok := a.node.Channel("c"); return ok }, func() string { return "no channel a->c" })
	if ch, _ := a.node.Channel("c"); ch.Peer().Trusted() {
		t.Fatal("a trusts c")
	}

	path, sum := writeRandomFile(t, t.TempDir(), "all.bin", 300<<10, 7)
	ts, err := a.svc.Broadcast(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	var peers []string
	for _, tr := range ts {
		peers = append(peers, tr.Peer())
		if err := tr.Wait(context.Background()); err != nil {
			t.Errorf("to %s: %v", tr.Peer(), err)
		}
	}
	slices.Sort(peers)
	if !slices.Equal(peers, []string{"b", "d"}) {
		t.Errorf("broadcast went to %q, want [b d]", peers)
	}
	for _, p := range []*testPeer{b, d} {
		if got := fileSHA256(t, filepath.Join(p.dir, "all.bin")); got != sum {
			t.Errorf("%s: sha256 %s, want %s", p.id, got, sum)
		}
	}
	if names := dirNames(t, c.dir); len(names) != 0 || len(c.svc.Transfers()) != 0 {
		t.Errorf("untrusted c got files %q, transfers %+v", names, c.svc.Transfers())
	}

	// Sent directly, the offer is dropped by c's gate.
	tr, err := a.svc.Send(context.Background(), "c", path)
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, tr, 10*time.Second)
	if err := tr.Err(); !errors.Is(err, transfer.ErrTimeout) || !strings.Contains(err.Error(), "trust") {
		t.Errorf("send to untrusting c: %v, want a timeout mentioning trust", err)
	}
	if len(c.svc.Transfers()) != 0 {
		t.Errorf("c saw transfers %+v", c.svc.Transfers())
	}
}

// TestReceiverRefusesOffers sends hand-made offers that the receiver must
// refuse, and checks the refusal reaches the sender's side as a FileResult.
func TestReceiverRefusesOffers(t *testing.T) {
	results := make(chan transfer.Result, 16)
	a, b := pair(t, peerOptions{}, peerOptions{transfer: func(c *transfer.Config) {
		c.MaxFileSize = 1 << 20
		c.MaxWindow = 2 << 20
	}})
	// Watch the results a receives instead of a's service.
	if err := a.node.Registry().HandleFunc(transfer.TypeFileResult, func(_ context.Context, _ peernode.Channel, p wire.Packet) error {
		r, err := transfer.DecodeResult(p.(wire.Raw).Payload)
		if err == nil {
			results <- r
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	good := transfer.Offer{Size: 10, ChunkSize: 4, Window: 16, Name: "ok.txt"}
	cases := []struct {
		name string
		edit func(*transfer.Offer)
		code transfer.Code
	}{
		{"path", func(o *transfer.Offer) { o.Name = "../etc/passwd" }, transfer.CodeInvalidName},
		{"dot dot", func(o *transfer.Offer) { o.Name = ".." }, transfer.CodeInvalidName},
		{"newline", func(o *transfer.Offer) { o.Name = "a\nb" }, transfer.CodeInvalidName},
		{"too large", func(o *transfer.Offer) { o.Size = 1<<20 + 1 }, transfer.CodeTooLarge},
		{"window", func(o *transfer.Offer) { o.ChunkSize, o.Window = 1<<20, 4<<20 }, transfer.CodeRejected},
		{"tiny chunks", func(o *transfer.Offer) { o.ChunkSize, o.Window = 1, 1<<20 }, transfer.CodeRejected},
	}
	for _, tc := range cases {
		o := good
		o.ID = transfer.NewID()
		tc.edit(&o)
		if err := a.node.Send(context.Background(), "b", o); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		select {
		case r := <-results:
			if r.ID != o.ID || r.Code != tc.code {
				t.Errorf("%s: result %+v, want code %v", tc.name, r, tc.code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no result", tc.name)
		}
		in := finalInfo(t, b, o.ID, transfer.Receive)
		if in.State != "failed" || in.Code != tc.code.String() {
			t.Errorf("%s: receiver info %+v", tc.name, in)
		}
	}
	if names := dirNames(t, b.dir); len(names) != 0 {
		t.Errorf("receive directory holds %q", names)
	}
}

// TestNotReceivingAndBusy: a node without a receive directory refuses
// files; a node at its limit of incoming transfers refuses more.
func TestNotReceivingAndBusy(t *testing.T) {
	a, b := pair(t, peerOptions{noReceive: true}, peerOptions{transfer: func(c *transfer.Config) { c.MaxIncoming = 1 }})
	path, _ := writeRandomFile(t, t.TempDir(), "x.bin", 1<<20, 8)

	// b -> a: a does not receive.
	tr, err := b.svc.Send(context.Background(), "a", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Wait(context.Background()); !errors.Is(err, transfer.ErrNotReceiving) {
		t.Errorf("to a node without receive dir: %v", err)
	}

	// a -> b twice: the first stalls, the second is refused.
	hook, reached, release := stallAt(512 << 10)
	defer release()
	transfer.SetChunkHook(a.svc, hook)
	first, err := a.svc.Send(context.Background(), "b", path)
	if err != nil {
		t.Fatal(err)
	}
	<-reached
	second, err := a.svc.Send(context.Background(), "b", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(context.Background()); !errors.Is(err, transfer.ErrBusy) {
		t.Errorf("second transfer: %v, want ErrBusy", err)
	}
	release()
	if err := first.Wait(context.Background()); err != nil {
		t.Errorf("first transfer: %v", err)
	}
}

// TestSendErrors covers what Send refuses before any packet is sent.
func TestSendErrors(t *testing.T) {
	a, _ := pair(t, peerOptions{}, peerOptions{})
	dir := t.TempDir()
	path, _ := writeRandomFile(t, dir, "f.bin", 10, 9)
	ctx := context.Background()
	if _, err := a.svc.Send(ctx, "nobody", path); !errors.Is(err, node.ErrNoChannel) {
		t.Errorf("unknown peer: %v", err)
	}
	if _, err := a.svc.Send(ctx, "b", filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
	if _, err := a.svc.Send(ctx, "b", dir); !errors.Is(err, transfer.ErrNotRegularFile) {
		t.Errorf("directory: %v", err)
	}
	bad := filepath.Join(dir, "a\x1bb")
	if err := os.WriteFile(bad, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Send(ctx, "b", bad); !errors.Is(err, transfer.ErrInvalidName) {
		t.Errorf("control character in name: %v", err)
	}
}

// TestSendData sends Task data to one peer and Misc data to all, and
// refuses File data (files are verified transfers).
func TestSendData(t *testing.T) {
	got := make(chan wire.Data, 4)
	a, _ := pair(t, peerOptions{}, peerOptions{node: func(c *node.Config) {
		c.Events.DataReceived = func(_ peernode.Channel, d wire.Data) { got <- d }
	}})
	ctx := context.Background()
	if err := a.svc.SendData(ctx, "b", wire.DataFormatTask, []byte("task")); err != nil {
		t.Fatal(err)
	}
	if n, err := a.svc.BroadcastData(ctx, wire.DataFormatMisc, []byte("misc")); n != 1 || err != nil {
		t.Fatalf("BroadcastData = %d, %v", n, err)
	}
	for _, want := range []wire.Data{{Format: wire.DataFormatTask, Body: []byte("task")}, {Format: wire.DataFormatMisc, Body: []byte("misc")}} {
		select {
		case d := <-got:
			if d.Format != want.Format || string(d.Body) != string(want.Body) {
				t.Errorf("received %v %q, want %v %q", d.Format, d.Body, want.Format, want.Body)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("data not received")
		}
	}
	if err := a.svc.SendData(ctx, "b", wire.DataFormatFile, nil); !errors.Is(err, transfer.ErrFileData) {
		t.Errorf("File data: %v", err)
	}
}

// TestStaleTemporaryFilesRemoved: temporary files of a previous run are
// removed when the service starts, other files are not.
func TestStaleTemporaryFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{".peermesh-transfer-123.part", "keep.part", ".peermesh-transfer-x"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startPeer(t, "a", peerOptions{transfer: func(c *transfer.Config) { c.ReceiveDir = dir }})
	if names := dirNames(t, dir); !slices.Equal(names, []string{".peermesh-transfer-x", "keep.part"}) {
		t.Errorf("left %q", names)
	}
}

// TestReceiverShutdownMidTransfer stops the receiving node in the middle of
// a transfer: its transfer fails (shutdown), its temporary file is gone by
// the time Run returned, and the sender's transfer fails too.
func TestReceiverShutdownMidTransfer(t *testing.T) {
	a, b := pair(t, peerOptions{}, peerOptions{})
	path, _ := writeRandomFile(t, t.TempDir(), "stop.bin", 2<<20, 12)
	hook, reached, release := stallAt(1 << 20)
	defer release()
	transfer.SetChunkHook(a.svc, hook)
	tr, err := a.svc.Send(context.Background(), "b", path)
	if err != nil {
		t.Fatal(err)
	}
	<-reached
	b.stop()
	if names := dirNames(t, b.dir); len(names) != 0 {
		t.Errorf("receive directory holds %q after shutdown, want nothing", names)
	}
	ts := b.svc.Transfers()
	if len(ts) != 1 || ts[0].State != "failed" || (ts[0].Code != "shutdown" && ts[0].Code != "disconnected") {
		t.Errorf("receiver transfers after shutdown: %+v", ts)
	}
	release()
	waitDone(t, tr, 10*time.Second)
	if err := tr.Err(); err == nil {
		t.Error("sender's transfer succeeded")
	}
}
