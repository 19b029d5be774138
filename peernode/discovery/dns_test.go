package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/peermesh/peermesh/peernode/discovery"
)

const testInterval = 20 * time.Millisecond

func newDNS(t *testing.T, cfg discovery.DNSConfig) *discovery.DNS {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = testInterval
	}
	d, err := discovery.NewDNS(cfg)
	if err != nil {
		t.Fatalf("NewDNS: %v", err)
	}
	return d
}

// TestDNSAddressRecords follows a headless Service through its A and AAAA
// records: the initial set, an added and a removed endpoint, a SERVFAIL
// outage that keeps the last set, and NXDOMAIN that empties it.
func TestDNSAddressRecords(t *testing.T) {
	srv := startDNSServer(t)
	const name = "peers.mesh.test."
	srv.SetAddrs(name, "10.0.0.2", "10.0.0.1", "fd00::1")
	m := newMetrics(t)
	d := newDNS(t, discovery.DNSConfig{Name: name, Port: 7946, Server: srv.Addr(), Metrics: m})
	if d.Name() != "dns:"+name {
		t.Errorf("Name() = %q", d.Name())
	}
	updates, _ := startDiscoverer(t, d)

	// Initial set: every address with the configured port, sorted, IPv6
	// in brackets.
	expectUpdate(t, updates, "10.0.0.1:7946", "10.0.0.2:7946", "[fd00::1]:7946")

	// A pod is added.
	srv.SetAddrs(name, "10.0.0.2", "10.0.0.1", "fd00::1", "10.0.0.3")
	expectUpdate(t, updates, "10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.3:7946", "[fd00::1]:7946")

	// Pods are removed: the full set is reported, without them.
	srv.SetAddrs(name, "10.0.0.3")
	expectUpdate(t, updates, "10.0.0.3:7946")

	// SERVFAIL: lookups fail, the last set stays (no update, certainly
	// not an empty one).
	srv.SetServfail(true)
	before := lookups(m, d, discovery.LookupError)
	eventually(t, func() bool { return lookups(m, d, discovery.LookupError) >= before+3 },
		func() string { return fmt.Sprintf("failed lookups: %v", lookups(m, d, discovery.LookupError)-before) })
	expectNoUpdate(t, updates)

	// Only the AAAA query fails: the lookup fails as a whole (StrictErrors)
	// instead of returning the IPv4 half, which would drop [fd00::1].
	srv.SetServfail(false)
	srv.SetAddrs(name, "10.0.0.3", "fd00::1")
	expectUpdate(t, updates, "10.0.0.3:7946", "[fd00::1]:7946")
	srv.SetServfailType(dnsmessage.TypeAAAA)
	before = lookups(m, d, discovery.LookupError)
	eventually(t, func() bool { return lookups(m, d, discovery.LookupError) >= before+3 },
		func() string { return "no failed lookups while AAAA fails" })
	expectNoUpdate(t, updates)
	srv.SetServfailType(0)
	srv.SetAddrs(name, "10.0.0.3")
	expectUpdate(t, updates, "10.0.0.3:7946")

	// Recovery with the same records: still no update (nothing changed)...
	srv.SetServfail(false)
	ok := lookups(m, d, discovery.LookupOK)
	eventually(t, func() bool { return lookups(m, d, discovery.LookupOK) >= ok+2 },
		func() string { return "no successful lookup after SERVFAIL ended" })
	expectNoUpdate(t, updates)
	// ...and the next change is reported.
	srv.SetAddrs(name, "10.0.0.3", "10.0.0.4")
	expectUpdate(t, updates, "10.0.0.3:7946", "10.0.0.4:7946")

	// NXDOMAIN (the Service was deleted): an authoritative empty set.
	srv.SetAddrs(name, nil...)
	expectUpdate(t, updates)
	if got := lookups(m, d, discovery.LookupNotFound); got < 1 {
		t.Errorf("not_found lookups = %v, want >= 1", got)
	}
	if got := testutilGauge(m, d.Name()); got != 0 {
		t.Errorf("addresses gauge = %v, want 0", got)
	}
}

// TestDNSSRVRecords resolves "_peer._tcp.<name>", then each target's
// addresses, each paired with its record's port.
func TestDNSSRVRecords(t *testing.T) {
	srv := startDNSServer(t)
	const svc = "peers.mesh.test."
	srv.SetSRV("_peer._tcp."+svc,
		srvRecord{"a.peers.mesh.test.", 7001},
		srvRecord{"b.peers.mesh.test.", 7002},
		srvRecord{"gone.peers.mesh.test.", 7003}, // NXDOMAIN target: skipped
		srvRecord{".", 7004},                     // "no service": skipped
	)
	srv.SetAddrs("a.peers.mesh.test.", "10.0.0.1")
	srv.SetAddrs("b.peers.mesh.test.", "10.0.0.2", "fd00::2")
	// The A records of the Service name itself must not be used in SRV mode.
	srv.SetAddrs(svc, "10.9.9.9")
	m := newMetrics(t)
	d := newDNS(t, discovery.DNSConfig{Name: svc, SRV: true, Server: srv.Addr(), Metrics: m})
	updates, _ := startDiscoverer(t, d)
	expectUpdate(t, updates, "10.0.0.1:7001", "10.0.0.2:7002", "[fd00::2]:7002")

	// A target moves to another port and address; one disappears.
	srv.SetSRV("_peer._tcp."+svc, srvRecord{"b.peers.mesh.test.", 7002}, srvRecord{"c.peers.mesh.test.", 7010})
	srv.SetAddrs("c.peers.mesh.test.", "10.0.0.3")
	expectUpdate(t, updates, "10.0.0.2:7002", "10.0.0.3:7010", "[fd00::2]:7002")

	// A target lookup failing transiently (here: every query SERVFAILs)
	// keeps the whole last set.
	srv.SetServfail(true)
	before := lookups(m, d, discovery.LookupError)
	eventually(t, func() bool { return lookups(m, d, discovery.LookupError) >= before+2 },
		func() string { return "no failed lookups counted" })
	srv.SetServfail(false)
	expectNoUpdate(t, updates)

	// No SRV records left: empty set.
	srv.SetSRV("_peer._tcp."+svc, nil...)
	srv.SetAddrs(svc, nil...)
	expectUpdate(t, updates)
}

// TestDNSSRVExplicitName uses a name starting with "_" as the SRV name.
func TestDNSSRVExplicitName(t *testing.T) {
	srv := startDNSServer(t)
	srv.SetSRV("_gossip._udp.peers.test.", srvRecord{"a.peers.test.", 9000})
	srv.SetAddrs("a.peers.test.", "127.0.0.9")
	d := newDNS(t, discovery.DNSConfig{Name: "_gossip._udp.peers.test.", SRV: true, Server: srv.Addr()})
	got, err := d.Resolve(context.Background())
	if err != nil || !slices.Equal(got, []string{"127.0.0.9:9000"}) {
		t.Fatalf("Resolve = %q, %v", got, err)
	}
}

// TestDNSResolverField accepts a *net.Resolver instead of a server
// address, and reports a failing lookup as an error wrapping *net.DNSError.
func TestDNSResolverField(t *testing.T) {
	srv := startDNSServer(t)
	srv.SetAddrs("x.test.", "192.0.2.7")
	d := newDNS(t, discovery.DNSConfig{Name: "x.test.", Port: 80, Resolver: discovery.NewResolver(srv.Addr())})
	got, err := d.Resolve(context.Background())
	if err != nil || !slices.Equal(got, []string{"192.0.2.7:80"}) {
		t.Fatalf("Resolve = %q, %v", got, err)
	}
	srv.SetServfail(true)
	_, err = d.Resolve(context.Background())
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || dnsErr.IsNotFound {
		t.Fatalf("Resolve under SERVFAIL: err = %v, want a *net.DNSError that is not IsNotFound", err)
	}
}

// TestDNSFirstLookupFails reports nothing until a lookup succeeds.
func TestDNSFirstLookupFails(t *testing.T) {
	srv := startDNSServer(t)
	srv.SetServfail(true)
	srv.SetAddrs("late.test.", "10.1.1.1")
	m := newMetrics(t)
	d := newDNS(t, discovery.DNSConfig{Name: "late.test.", Port: 1, Server: srv.Addr(), Metrics: m})
	updates, _ := startDiscoverer(t, d)
	eventually(t, func() bool { return lookups(m, d, discovery.LookupError) >= 2 },
		func() string { return "no failed lookups" })
	expectNoUpdate(t, updates)
	srv.SetServfail(false)
	expectUpdate(t, updates, "10.1.1.1:1")
}

func TestNewDNSValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  discovery.DNSConfig
	}{
		{"no name", discovery.DNSConfig{Port: 1}},
		{"no port", discovery.DNSConfig{Name: "a."}},
		{"port too big", discovery.DNSConfig{Name: "a.", Port: 65536}},
		{"negative interval", discovery.DNSConfig{Name: "a.", Port: 1, Interval: -time.Second}},
		{"resolver and server", discovery.DNSConfig{Name: "a.", Port: 1, Server: "127.0.0.1:53", Resolver: net.DefaultResolver}},
		{"bad server", discovery.DNSConfig{Name: "a.", Port: 1, Server: "127.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := discovery.NewDNS(tc.cfg); !errors.Is(err, discovery.ErrInvalidConfig) {
				t.Fatalf("NewDNS: err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := discovery.NewDNS(discovery.DNSConfig{Name: "a.", SRV: true}); err != nil {
		t.Errorf("SRV without port: %v", err)
	}
}

func TestStatic(t *testing.T) {
	s, err := discovery.NewStatic("b:2", "a:1", "b:2", "[::1]:3")
	if err != nil {
		t.Fatal(err)
	}
	updates, _ := startDiscoverer(t, s)
	expectUpdate(t, updates, "[::1]:3", "a:1", "b:2")
	expectNoUpdate(t, updates)
	for _, bad := range []string{"a", "a:0", "a:x", ":1", "a b:1"} {
		if _, err := discovery.NewStatic(bad); err == nil {
			t.Errorf("NewStatic(%q) accepted", bad)
		}
	}
}
