package discovery_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/ipv4"

	"github.com/peermesh/peermesh/peernode/discovery"
)

// listenUDP returns a UDP socket on 127.0.0.1:0, closed at cleanup.
func listenUDP(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func newLAN(t *testing.T, cfg discovery.LANConfig) *discovery.LAN {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = testInterval
	}
	l, err := discovery.NewLAN(cfg)
	if err != nil {
		t.Fatalf("NewLAN: %v", err)
	}
	return l
}

// encodeAnnouncement builds a datagram by the layout of docs/discovery.md,
// independently of the package's encoder.
func encodeAnnouncement(flags byte, mesh, id, addr string) []byte {
	b := []byte("PMLA\x01")
	b = append(b, flags)
	for _, s := range []string{mesh, id, addr} {
		b = append(b, byte(len(s))) // one-byte uvarint: the tests use short strings
		b = append(b, s...)
	}
	return b
}

func datagrams(m *discovery.Metrics, result string) float64 {
	return testutil.ToFloat64(m.Datagrams.WithLabelValues(result))
}

// TestLANPairOverUnicast runs the LAN logic through injected sockets: two
// UDP sockets on 127.0.0.1, each discoverer announcing to the other's
// address (this stands in for the multicast group; TestLANMulticastLoopback
// uses a real group). It covers discovery in both directions, the
// replacement of an unspecified announced host by the datagram's source,
// and the leaving announcement that removes a stopped node at once.
func TestLANPairOverUnicast(t *testing.T) {
	connA, connB := listenUDP(t), listenUDP(t)
	la := newLAN(t, discovery.LANConfig{ID: "a", Mesh: "m", Addr: "127.0.0.1:7001",
		Group: connB.LocalAddr().String(), PacketConn: connA, Interval: time.Second})
	lb := newLAN(t, discovery.LANConfig{ID: "b", Mesh: "m", Addr: "0.0.0.0:7002",
		Group: connA.LocalAddr().String(), PacketConn: connB, Interval: time.Second})
	updatesA, _ := startDiscoverer(t, la)
	updatesB, stopB := startDiscoverer(t, lb)
	expectUpdate(t, updatesA, "127.0.0.1:7002") // 0.0.0.0 replaced by the source address
	expectUpdate(t, updatesB, "127.0.0.1:7001")

	// b stops: its leaving announcement removes it from a's set without
	// waiting for the TTL (3 s here, far beyond the assertion below).
	start := time.Now()
	stopB()
	expectUpdate(t, updatesA)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("leaving took %s: the TTL expired instead", d)
	}
}

// TestLANDatagramValidation feeds a discoverer hand-made datagrams: its own
// announcement, another mesh's, garbage of several kinds, then a valid one.
// Only the valid one is reported; the others are counted by result.
func TestLANDatagramValidation(t *testing.T) {
	conn, raw := listenUDP(t), listenUDP(t)
	m := newMetrics(t)
	l := newLAN(t, discovery.LANConfig{ID: "self", Mesh: "m", Addr: "127.0.0.1:7001",
		Group: raw.LocalAddr().String(), PacketConn: conn, Interval: time.Hour, Metrics: m})
	updates, _ := startDiscoverer(t, l)
	send := func(b []byte) {
		t.Helper()
		if _, err := raw.WriteTo(b, conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	send(encodeAnnouncement(0, "m", "self", "127.0.0.1:9999"))      // own (same ID)
	send(encodeAnnouncement(0, "other", "x", "127.0.0.1:9998"))     // other mesh
	send(encodeAnnouncement(0, "", "y", "127.0.0.1:9997"))          // no mesh is another mesh too
	send([]byte("GET / HTTP/1.1\r\n\r\n"))                          // bad magic
	send(encodeAnnouncement(0, "m", "z", "127.0.0.1"))              // address without port
	send(encodeAnnouncement(0x40, "m", "z", "127.0.0.1:1"))         // unknown flag
	send(append(encodeAnnouncement(0, "m", "z", "127.0.0.1:1"), 0)) // trailing byte
	send(bytes.Repeat([]byte("PMLA\x01\x00"), 200))                 // oversize (1200 bytes)
	send([]byte("PMLA\x02\x00anything"))                            // a future version
	send(encodeAnnouncement(0, "m", "peer", "10.0.0.7:7946"))       // valid
	expectUpdate(t, updates, "10.0.0.7:7946")
	for result, want := range map[string]float64{
		discovery.DatagramOwn: 1, discovery.DatagramOtherMesh: 2, discovery.DatagramMalformed: 5,
		discovery.DatagramUnsupportedVersion: 1, discovery.DatagramAccepted: 1,
	} {
		if got := datagrams(m, result); got != want {
			t.Errorf("datagrams{result=%q} = %v, want %v", result, got, want)
		}
	}
	// A known peer announcing a new address replaces the old one.
	send(encodeAnnouncement(0, "m", "peer", "10.0.0.8:7946"))
	expectUpdate(t, updates, "10.0.0.8:7946")
}

// TestLANExpiryAndAnnouncements checks that the discoverer announces
// periodically, and that a peer heard once drops out of the set after the
// TTL (3 intervals) and not before.
func TestLANExpiryAndAnnouncements(t *testing.T) {
	conn, raw := listenUDP(t), listenUDP(t)
	const interval = 50 * time.Millisecond
	l := newLAN(t, discovery.LANConfig{ID: "self", Mesh: "m", Addr: "127.0.0.1:7001",
		Group: raw.LocalAddr().String(), PacketConn: conn, Interval: interval})
	updates, _ := startDiscoverer(t, l)

	// Three announcements arrive at the stand-in group, each a valid
	// "hello" of this node.
	buf := make([]byte, discovery.MaxDatagramSize)
	want := encodeAnnouncement(0, "m", "self", "127.0.0.1:7001")
	if err := raw.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		n, _, err := raw.ReadFrom(buf)
		if err != nil {
			t.Fatalf("announcement %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("announcement %d = %x, want %x", i, buf[:n], want)
		}
	}

	heard := time.Now()
	if _, err := raw.WriteTo(encodeAnnouncement(0, "m", "once", "10.0.0.9:1"), conn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	expectUpdate(t, updates, "10.0.0.9:1")
	expectUpdate(t, updates)
	ttl := discovery.LANTTLFactor * interval
	if d := time.Since(heard); d < ttl {
		t.Errorf("peer expired after %s, before the TTL %s", d, ttl)
	}
}

func TestNewLANValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  discovery.LANConfig
	}{
		{"no ID", discovery.LANConfig{Addr: "127.0.0.1:1"}},
		{"no address", discovery.LANConfig{ID: "a"}},
		{"address without port", discovery.LANConfig{ID: "a", Addr: "127.0.0.1"}},
		{"unicast group", discovery.LANConfig{ID: "a", Addr: "127.0.0.1:1", Group: "10.0.0.1:7947"}},
		{"IPv6 group", discovery.LANConfig{ID: "a", Addr: "127.0.0.1:1", Group: "[ff02::1]:7947"}},
		{"group without port", discovery.LANConfig{ID: "a", Addr: "127.0.0.1:1", Group: "239.1.1.1"}},
		{"group name", discovery.LANConfig{ID: "a", Addr: "127.0.0.1:1", Group: "group.local:7947"}},
		{"negative interval", discovery.LANConfig{ID: "a", Addr: "127.0.0.1:1", Interval: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := discovery.NewLAN(tc.cfg); !errors.Is(err, discovery.ErrInvalidConfig) {
				t.Fatalf("NewLAN: err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// freeUDPPort returns a UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// requireLoopbackMulticast skips the test unless a datagram sent to group
// on interface lo comes back to a socket that joined it there.
func requireLoopbackMulticast(t *testing.T, group string) {
	t.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo interface: %v", err)
	}
	gaddr, err := net.ResolveUDPAddr("udp4", group)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := net.ListenMulticastUDP("udp4", lo, gaddr)
	if err != nil {
		t.Skipf("cannot join %s on lo: %v", group, err)
	}
	defer rc.Close()
	sc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	p := ipv4.NewPacketConn(sc)
	if err := errors.Join(p.SetMulticastInterface(lo), p.SetMulticastLoopback(true)); err != nil {
		t.Skipf("multicast options on lo: %v", err)
	}
	if _, err := sc.WriteTo([]byte("probe"), gaddr); err != nil {
		t.Skipf("cannot send to %s on lo: %v", group, err)
	}
	_ = rc.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	if _, _, err := rc.ReadFrom(buf); err != nil {
		t.Skipf("multicast on lo does not loop back here: %v", err)
	}
}

// TestLANMulticastLoopback runs three discoverers on one real multicast
// group joined on lo: each must find exactly the two others.
func TestLANMulticastLoopback(t *testing.T) {
	group := "239.192.77.46:" + strconv.Itoa(freeUDPPort(t))
	requireLoopbackMulticast(t, group)
	var all []string
	var updates []<-chan []string
	for i := 1; i <= 3; i++ {
		addr := fmt.Sprintf("127.0.0.%d:7946", i)
		all = append(all, addr)
		l := newLAN(t, discovery.LANConfig{ID: fmt.Sprintf("n%d", i), Mesh: "m", Addr: addr,
			Group: group, Interface: "lo", Interval: 200 * time.Millisecond})
		u, _ := startDiscoverer(t, l)
		updates = append(updates, u)
	}
	// Another mesh on the same group is ignored.
	other := newLAN(t, discovery.LANConfig{ID: "o", Mesh: "other", Addr: "127.0.0.4:7946", Group: group, Interface: "lo"})
	startDiscoverer(t, other)
	for i, u := range updates {
		want := slices.DeleteFunc(slices.Clone(all), func(a string) bool { return a == all[i] })
		for {
			got := nextUpdate(t, u)
			if slices.Equal(got, want) {
				break
			}
			if len(got) >= len(want) {
				t.Fatalf("n%d: set %q, want %q", i+1, got, want)
			}
		}
	}
}

// TestLANMulticastNetns repeats TestLANMulticastLoopback in a fresh network
// namespace whose only interface is lo (root and unshare(1) needed), so the
// test does not depend on, or send anything to, the host's networks.
func TestLANMulticastNetns(t *testing.T) {
	if os.Getenv("PEERMESH_IN_NETNS") != "" {
		t.Skip("already inside the namespace")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and unshare(1)")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs ip(8)")
	}
	cmd := exec.CommandContext(t.Context(), unshare, "--net", "--", "sh", "-c",
		`"$0" link set lo up && "$0" link set lo multicast on && exec "$1" -test.run '^TestLANMulticastLoopback$' -test.v -test.count=1`,
		ipPath, os.Args[0])
	cmd.Env = append(os.Environ(), "PEERMESH_IN_NETNS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("unshare failed")) || bytes.Contains(out, []byte("Operation not permitted")) {
			t.Skipf("cannot create a network namespace: %s", out)
		}
		t.Fatalf("in a new network namespace: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("--- PASS: TestLANMulticastLoopback")) {
		t.Fatalf("TestLANMulticastLoopback did not pass in the namespace:\n%s", out)
	}
}
