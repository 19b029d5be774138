package discovery_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/discovery"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/wire"
)

// freeTCPPort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNodes creates one node per address that addrs returns, with the
// discoverers that discoverers returns for it, and runs them until the test
// ends. The addresses are fixed ports picked in advance, so creation is
// retried with new ones if another process took a port meanwhile.
func startNodes(t *testing.T, addrs func() []string, discoverers func(i int, addr string) []peernode.Discoverer) []*node.Node {
	t.Helper()
	for attempt := 1; ; attempt++ {
		var nodes []*node.Node
		var err error
		for i, addr := range addrs() {
			ch := channel.DefaultConfig(wire.Hello{})
			ch.HandshakeTimeout, ch.KeepaliveInterval, ch.IdleTimeout, ch.DrainTimeout = 5*time.Second, 0, 0, time.Second
			cfg := node.Config{
				ID: fmt.Sprintf("node-%d", i+1), Mesh: "m", ListenAddr: addr, Channel: ch,
				BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
				Discoverers: discoverers(i, addr),
			}
			if os.Getenv("PEERNODE_TEST_LOG") != "" {
				cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			var n *node.Node
			if n, err = node.New(cfg); err != nil {
				break
			}
			nodes = append(nodes, n)
		}
		if err == nil {
			for _, n := range nodes {
				runNode(t, n)
			}
			return nodes
		}
		// Release the listeners of the nodes created so far.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, n := range nodes {
			_ = n.Run(ctx)
		}
		if attempt == 5 {
			t.Fatalf("creating nodes: %v", err)
		}
	}
}

func runNode(t *testing.T, n *node.Node) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: Run: %v", n.ID(), err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("%s did not stop within %s", n.ID(), waitTimeout)
		}
	})
}

// waitFullTrustedMesh waits until every node has a trusted channel to every
// other node.
func waitFullTrustedMesh(t *testing.T, nodes []*node.Node) {
	t.Helper()
	eventually(t, func() bool {
		for _, n := range nodes {
			if len(n.TrustedPeerChannels()) != len(nodes)-1 {
				return false
			}
		}
		return true
	}, func() string {
		var b strings.Builder
		for _, n := range nodes {
			fmt.Fprintf(&b, "%s: %d trusted; ", n.ID(), len(n.TrustedPeerChannels()))
		}
		return b.String()
	})
}

// TestNodesFindEachOtherThroughDNS starts three nodes that have no seeds,
// only a DNS discoverer pointed at a DNS server on loopback, and waits for
// a full trusted mesh: once through A records (three loopback addresses,
// one port) and once through SRV records (one address, three ports).
func TestNodesFindEachOtherThroughDNS(t *testing.T) {
	const svc = "peers.mesh.test."
	t.Run("A records", func(t *testing.T) {
		srv := startDNSServer(t)
		var port int
		addrs := func() []string {
			port = freeTCPPort(t)
			srv.SetAddrs(svc, "127.0.0.1", "127.0.0.2", "127.0.0.3")
			p := strconv.Itoa(port)
			return []string{"127.0.0.1:" + p, "127.0.0.2:" + p, "127.0.0.3:" + p}
		}
		nodes := startNodes(t, addrs, func(int, string) []peernode.Discoverer {
			d, err := discovery.NewDNS(discovery.DNSConfig{Name: svc, Port: port, Server: srv.Addr(), Interval: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return []peernode.Discoverer{d}
		})
		waitFullTrustedMesh(t, nodes)
	})
	t.Run("SRV records", func(t *testing.T) {
		srv := startDNSServer(t)
		addrs := func() []string {
			return []string{"127.0.0.1:" + strconv.Itoa(freeTCPPort(t)), "127.0.0.1:" + strconv.Itoa(freeTCPPort(t)), "127.0.0.1:" + strconv.Itoa(freeTCPPort(t))}
		}
		nodes := startNodes(t, addrs, func(int, string) []peernode.Discoverer {
			d, err := discovery.NewDNS(discovery.DNSConfig{Name: svc, SRV: true, Server: srv.Addr(), Interval: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return []peernode.Discoverer{d}
		})
		// Records appear after the nodes started, as they do when pods
		// become ready behind a headless Service.
		var recs []srvRecord
		for i, n := range nodes {
			target := fmt.Sprintf("node-%d.%s", i+1, svc)
			_, p, _ := net.SplitHostPort(n.AdvertiseAddr())
			port, _ := strconv.Atoi(p)
			srv.SetAddrs(target, "127.0.0.1")
			recs = append(recs, srvRecord{target, uint16(port)})
		}
		srv.SetSRV("_peer._tcp."+svc, recs...)
		waitFullTrustedMesh(t, nodes)
	})
}

// TestNodesFindEachOtherOnLAN starts three nodes whose only discoverer is
// LAN multicast on lo, and waits for a full trusted mesh. Skipped where
// loopback multicast does not work.
func TestNodesFindEachOtherOnLAN(t *testing.T) {
	group := "239.192.77.46:" + strconv.Itoa(freeUDPPort(t))
	requireLoopbackMulticast(t, group)
	addrs := func() []string {
		return []string{"127.0.0.1:" + strconv.Itoa(freeTCPPort(t)), "127.0.0.1:" + strconv.Itoa(freeTCPPort(t)), "127.0.0.1:" + strconv.Itoa(freeTCPPort(t))}
	}
	nodes := startNodes(t, addrs, func(i int, addr string) []peernode.Discoverer {
		l, err := discovery.NewLAN(discovery.LANConfig{ID: fmt.Sprintf("node-%d", i+1), Mesh: "m", Addr: addr,
			Group: group, Interface: "lo", Interval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return []peernode.Discoverer{l}
	})
	waitFullTrustedMesh(t, nodes)
}
