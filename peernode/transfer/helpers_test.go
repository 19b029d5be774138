package transfer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/transfer"
	"github.com/peermesh/peermesh/peernode/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testPeer is a running node with its transfer service.
type testPeer struct {
	id   string
	node *node.Node
	svc  *transfer.Service
	dir  string // receive directory ("" when receiving is disabled)
	reg  *prometheus.Registry
	stop func()
}

// peerOptions adjust the node and service of a test peer.
type peerOptions struct {
	node      func(*node.Config)
	transfer  func(*transfer.Config)
	noReceive bool
}

// startPeer builds and runs a node on 127.0.0.1:0 with a transfer service
// receiving into a fresh temporary directory. Cleanup stops both and waits
// for their Run to return.
func startPeer(t testing.TB, id string, opts peerOptions) *testPeer {
	t.Helper()
	ch := channel.DefaultConfig(wire.Hello{})
	ch.HandshakeTimeout = 5 * time.Second
	ch.KeepaliveInterval, ch.IdleTimeout = 0, 0
	ch.DrainTimeout = time.Second
	reg := prometheus.NewRegistry()
	var logger *slog.Logger
	if os.Getenv("PEERNODE_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	nc := node.Config{
		ID: id, ListenAddr: "127.0.0.1:0", Channel: ch, Registerer: reg, Logger: logger,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	}
	if opts.node != nil {
		opts.node(&nc)
	}
	n, err := node.New(nc)
	if err != nil {
		t.Fatalf("node.New(%s): %v", id, err)
	}
	p := &testPeer{id: id, node: n, reg: reg}
	tc := transfer.Config{Registerer: reg, Logger: logger, NoSync: true}
	if !opts.noReceive {
		p.dir = filepath.Join(t.TempDir(), "received-"+id)
		tc.ReceiveDir = p.dir
	}
	if opts.transfer != nil {
		opts.transfer(&tc)
	}
	svc, err := transfer.New(n, tc)
	if err != nil {
		t.Fatalf("transfer.New(%s): %v", id, err)
	}
	p.svc = svc

	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { errs <- n.Run(ctx) }()
	go func() { errs <- svc.Run(ctx) }()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			timeout := time.After(15 * time.Second)
			for range 2 {
				select {
				case err := <-errs:
					if err != nil {
						t.Errorf("%s: Run: %v", id, err)
					}
				case <-timeout:
					t.Errorf("%s did not stop within 15s", id)
					return
				}
			}
		})
	}
	t.Cleanup(p.stop)
	return p
}

func (p *testPeer) addr() string { return p.node.Addr().String() }

// seeds makes a node dial the given peers.
func seeds(peers ...*testPeer) func(*node.Config) {
	return func(c *node.Config) {
		for _, p := range peers {
			c.Seeds = append(c.Seeds, p.addr())
		}
	}
}

// eventually waits until cond holds, checking every 5 ms, or fails the test
// after timeout with msg().
func eventually(t testing.TB, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, msg())
		}
		<-tick.C
	}
}

// waitTrusted waits until p trusts the peer id.
func waitTrusted(t testing.TB, p *testPeer, ids ...string) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool {
		for _, id := range ids {
			ch, ok := p.node.Channel(id)
			if !ok || !ch.Peer().Trusted() {
				return false
			}
		}
		return true
	}, func() string { return p.id + " does not trust " + strings.Join(ids, ", ") })
}

// pair starts a sender "a" and a receiver "b" that trust each other.
func pair(t testing.TB, a, b peerOptions) (*testPeer, *testPeer) {
	t.Helper()
	pa := startPeer(t, "a", a)
	prev := b.node
	b.node = func(c *node.Config) {
		seeds(pa)(c)
		if prev != nil {
			prev(c)
		}
	}
	pb := startPeer(t, "b", b)
	waitTrusted(t, pa, "b")
	waitTrusted(t, pb, "a")
	return pa, pb
}

// writeRandomFile writes size pseudo-random bytes (seeded, so runs are
// reproducible) to dir/name and returns the path and hex SHA-256.
func writeRandomFile(t testing.TB, dir, name string, size int64, seed uint64) (string, string) {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rng, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dirNames lists a directory ("" entries when it does not exist).
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// waitDone waits for tr to finish.
func waitDone(t testing.TB, tr *transfer.Transfer, timeout time.Duration) {
	t.Helper()
	select {
	case <-tr.Done():
	case <-time.After(timeout):
		t.Fatalf("transfer %s to %s not done within %v: %+v", tr.ID(), tr.Peer(), timeout, tr.Info())
	}
}

// incoming returns the receive-side Info of the transfer id at p, once it
// is in a final state.
func finalInfo(t testing.TB, p *testPeer, id transfer.ID, dir transfer.Direction) transfer.Info {
	t.Helper()
	var in transfer.Info
	eventually(t, 10*time.Second, func() bool {
		for _, x := range p.svc.Transfers() {
			if x.ID == id.String() && x.Direction == dir.String() && x.State != "running" {
				in = x
				return true
			}
		}
		return false
	}, func() string { return "no finished " + dir.String() + " transfer " + id.String() + " at " + p.id })
	return in
}
