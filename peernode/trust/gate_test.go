package trust_test

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/trust"
	"github.com/peermesh/peermesh/peernode/wire"
)

// packetClass is the test's own statement of which class each packet type
// belongs to (the specification in doc.go), not a copy of the code's.
type packetClass int

const (
	enhanced packetClass = iota
	defaultComm
	trustPacket
)

var packetTypes = []struct {
	t     wire.Type
	class packetClass
}{
	{wire.TypeInvalid, enhanced},
	{wire.TypeHello, enhanced},
	{wire.TypeDisconnect, defaultComm},
	{wire.TypePeerGroup, enhanced},
	{wire.TypeData, enhanced},
	{wire.TypeMessage, defaultComm},
	{wire.TypePing, defaultComm},
	{wire.TypePong, defaultComm},
	{0x08, enhanced}, // reserved core range
	{wire.TypeTrust, trustPacket},
	{0x1F, trustPacket}, // rest of the trust range
	{0x20, enhanced},    // data distribution range
	{0x3F, enhanced},
	{0x40, enhanced}, // reserved
	{wire.MinApplicationType, enhanced},
	{0xFF, enhanced},
}

func TestPacketTypesCoverKnownTypes(t *testing.T) {
	listed := map[wire.Type]bool{}
	for _, pt := range packetTypes {
		listed[pt.t] = true
	}
	for _, k := range wire.KnownTypes() {
		if !listed[k] {
			t.Errorf("known packet type %v is missing from the gating matrix", k)
		}
	}
}

// TestInterceptPacketMatrix checks every packet type x trusted/untrusted x
// the four combinations of the two incoming switches x Enforce/Audit.
func TestInterceptPacketMatrix(t *testing.T) {
	for _, mode := range []trust.Mode{trust.Enforce, trust.Audit} {
		for _, adc := range []bool{false, true} {
			for _, aepe := range []bool{false, true} {
				p := &trust.Policy{
					Generation: "gen-1", PolicySource: "PeerTrustPolicy ns/p", Mode: mode,
					AllowDefaultCommunication: adc, AllowEnhancedPacketExchange: aepe,
					RunTrustProtocol: true, TrustProtocol: "ping",
				}
				g := trust.NewGate(p)
				for _, pt := range packetTypes {
					for _, trusted := range []bool{false, true} {
						name := fmt.Sprintf("%v/adc=%v/aepe=%v/%v/trusted=%v", mode, adc, aepe, pt.t, trusted)
						t.Run(name, func(t *testing.T) {
							var wantReason string
							switch {
							case trusted, pt.class == trustPacket:
							case pt.class == defaultComm && !adc:
								wantReason = peernode.ReasonUntrustedDefault
							case pt.class == enhanced && !aepe:
								wantReason = peernode.ReasonUntrustedEnhanced
							}
							wantVerdict := peernode.Allow
							if wantReason != "" {
								wantVerdict = peernode.Deny
								if mode == trust.Audit {
									wantVerdict = peernode.AuditDeny
								}
							}
							d := g.InterceptPacket(trusted, pt.t)
							if d.Verdict != wantVerdict || d.Reason != wantReason {
								t.Fatalf("InterceptPacket = %+v, want verdict %v reason %q", d, wantVerdict, wantReason)
							}
							if d.Policy != "gen-1" {
								t.Errorf("Policy = %q, want gen-1", d.Policy)
							}
							if wantReason != "" && !strings.HasPrefix(d.Rule, "PeerTrustPolicy ns/p incoming.allow") {
								t.Errorf("Rule = %q, want it to name the policy and switch", d.Rule)
							}
							if d.Allowed() != (wantVerdict != peernode.Deny) {
								t.Errorf("Allowed() = %v", d.Allowed())
							}
						})
					}
				}
			}
		}
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func ap(s string) netip.AddrPort {
	if s == "" {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.MustParseAddr(s), 7946)
}

// listPolicy exercises every kind of rule.
func listPolicy(mode trust.Mode) *trust.Policy {
	return &trust.Policy{
		Mesh: "prod", Generation: "g7", Mode: mode,
		AllowDefaultCommunication: true, RunTrustProtocol: true, TrustProtocol: "ping",
		Blocked: []trust.Rule{
			{Identifier: "bad-node", Source: "PeerTrustPolicy ns/p blocked.identifiers[0]"},
			{Prefix: mustPrefix("10.0.0.0/8"), Except: []netip.Prefix{mustPrefix("10.1.0.0/16"), mustPrefix("10.77.0.0/16")}, Source: "PeerTrustPolicy ns/p blocked.cidrs[0]"},
			{Prefix: mustPrefix("10.66.0.0/16"), Except: []netip.Prefix{mustPrefix("10.66.1.0/24")}, Source: "PeerTrustPolicy ns/p blocked.cidrs[1]"},
			{Prefix: mustPrefix("fd00:bad::/32"), Source: "PeerTrustPolicy ns/p blocked.cidrs[2]"},
		},
		AllowlistActive: true,
		Allowed: []trust.Rule{
			{Identifier: "friend", Source: `PeerAllowlist ns/web entry "friend"`},
			{Identifier: "bad-node", Source: `PeerAllowlist ns/web entry "traitor"`},
			{Prefix: mustPrefix("10.1.0.0/16"), Except: []netip.Prefix{mustPrefix("10.1.99.0/24")}, Source: "PeerAllowlist ns/web peers[2]"},
			{Prefix: mustPrefix("10.66.1.0/24"), Source: "PeerAllowlist ns/web peers[3]"},
			{Prefix: mustPrefix("2001:db8::/32"), Source: "PeerAllowlist ns/web peers[4]"},
			{Prefix: mustPrefix("2001:db8:1::/48"), Source: "PeerAllowlist ns/web peers[5]"},
		},
	}
}

func TestInterceptPeerLists(t *testing.T) {
	in, out := peernode.Inbound, peernode.Outbound
	tests := []struct {
		name   string
		id     string
		addr   string
		dir    peernode.Direction
		reason string // "" means allowed
		rule   string // substring of Decision.Rule; "" means Rule must be empty
	}{
		{"allowed by v4 cidr", "x", "10.1.2.3", in, "", "PeerAllowlist ns/web peers[2] 10.1.0.0/16 except 10.1.99.0/24"},
		{"allowed by ipv4-mapped v6 addr", "x", "::ffff:10.1.2.3", in, "", "peers[2]"},
		{"except removes range from allow", "x", "10.1.99.5", in, peernode.ReasonNotAllowlisted, "no PeerAllowlist entry of mesh prod matches"},
		{"allowed by identifier", "friend", "192.168.1.1", in, "", `PeerAllowlist ns/web entry "friend" identifier friend`},
		{"identifier beats address for the allow rule named", "friend", "10.1.2.3", in, "", `entry "friend"`},
		{"blocked identifier beats allow", "bad-node", "10.1.2.3", in, peernode.ReasonBlockedIdentifier, "PeerTrustPolicy ns/p blocked.identifiers[0] identifier bad-node"},
		{"blocked cidr", "x", "10.66.5.5", in, peernode.ReasonBlockedCIDR, "PeerTrustPolicy ns/p blocked.cidrs[1] 10.66.0.0/16"},
		{"most specific blocked rule named", "x", "10.66.200.1", in, peernode.ReasonBlockedCIDR, "blocked.cidrs[1]"},
		{"wider blocked rule", "x", "10.5.5.5", in, peernode.ReasonBlockedCIDR, "blocked.cidrs[0] 10.0.0.0/8 except 10.1.0.0/16, 10.77.0.0/16"},
		{"blocked cidr via ipv4-mapped addr", "x", "::ffff:10.5.5.5", in, peernode.ReasonBlockedCIDR, "blocked.cidrs[0]"},
		{"blocked except falls to wider blocked rule", "x", "10.66.1.5", in, peernode.ReasonBlockedCIDR, "blocked.cidrs[0]"},
		{"blocked except, not allowlisted", "x", "10.77.1.1", in, peernode.ReasonNotAllowlisted, "no PeerAllowlist entry"},
		{"blocked v6 cidr", "x", "fd00:bad::1", in, peernode.ReasonBlockedCIDR, "blocked.cidrs[2] fd00:bad::/32"},
		{"allowed v6, most specific rule", "x", "2001:db8:1::5", in, "", "peers[5]"},
		{"allowed v6", "x", "2001:db8:2::5", in, "", "peers[4]"},
		{"v6 not allowlisted", "x", "2001:db9::5", in, peernode.ReasonNotAllowlisted, ""},
		{"no address, unknown id", "x", "", in, peernode.ReasonNotAllowlisted, ""},
		{"no id, no address", "", "", in, peernode.ReasonNotAllowlisted, ""},
		{"unset direction judged inbound", "x", "192.168.1.1", 0, peernode.ReasonNotAllowlisted, ""},
		{"outbound not allowlisted", "x", "192.168.1.1", out, peernode.ReasonNotAllowlisted, "no PeerAllowlist entry"},
		{"outbound allowlisted", "x", "2001:db8:2::5", out, "", "peers[4]"},
		{"outbound blocked identifier", "bad-node", "192.168.1.1", out, peernode.ReasonBlockedIdentifier, "blocked.identifiers[0]"},
		{"outbound blocked cidr", "x", "10.66.5.5", out, peernode.ReasonBlockedCIDR, "blocked.cidrs[1]"},
	}
	for _, mode := range []trust.Mode{trust.Enforce, trust.Audit} {
		g := trust.NewGate(listPolicy(mode))
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				d := g.InterceptPeer(peernode.PeerInfo{ID: tt.id, Addr: ap(tt.addr), Direction: tt.dir})
				checkDecision(t, d, mode, tt.reason, tt.rule)
				if e := g.Explain(tt.id, ap(tt.addr), tt.dir); e != d {
					t.Errorf("Explain = %+v, InterceptPeer = %+v", e, d)
				}
				if d.Policy != "g7" {
					t.Errorf("Policy = %q, want g7", d.Policy)
				}
			})
		}
	}
}

func checkDecision(t *testing.T, d peernode.Decision, mode trust.Mode, reason, rule string) {
	t.Helper()
	want := peernode.Allow
	if reason != "" {
		want = peernode.Deny
		if mode == trust.Audit {
			want = peernode.AuditDeny
		}
	}
	if d.Verdict != want || d.Reason != reason {
		t.Fatalf("decision = %+v, want verdict %v reason %q", d, want, reason)
	}
	if rule == "" && reason == "" && d.Rule != "" {
		t.Errorf("Rule = %q, want empty", d.Rule)
	}
	if !strings.Contains(d.Rule, rule) {
		t.Errorf("Rule = %q, want it to contain %q", d.Rule, rule)
	}
}

func TestInterceptAccept(t *testing.T) {
	tests := []struct {
		name   string
		policy *trust.Policy
		addr   string
		reason string
		rule   string
	}{
		{"blocked cidr", listPolicy(trust.Enforce), "10.66.5.5", peernode.ReasonBlockedCIDR, "blocked.cidrs[1] 10.66.0.0/16"},
		{"blocked v6", listPolicy(trust.Enforce), "fd00:bad::9", peernode.ReasonBlockedCIDR, "blocked.cidrs[2]"},
		{"blocked ipv4-mapped", listPolicy(trust.Enforce), "::ffff:10.66.5.5", peernode.ReasonBlockedCIDR, "blocked.cidrs[1]"},
		{"allowlist not judged at accept", listPolicy(trust.Enforce), "192.168.1.1", "", ""},
		{"default policy", trust.DefaultPolicy(), "192.168.1.1", "", ""},
		{"fail closed", trust.FailClosedPolicy(), "192.168.1.1", peernode.ReasonFailClosed, "no configuration"},
		{"fail closed, blocked first", func() *trust.Policy {
			p := listPolicy(trust.Enforce)
			p.FailClosed = true
			return p
		}(), "10.66.5.5", peernode.ReasonBlockedCIDR, "blocked.cidrs[1]"},
		{"audit", listPolicy(trust.Audit), "10.66.5.5", peernode.ReasonBlockedCIDR, "blocked.cidrs[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := trust.NewGate(tt.policy).InterceptAccept(ap(tt.addr))
			checkDecision(t, d, tt.policy.Mode, tt.reason, tt.rule)
		})
	}
}

func TestAllowlistActiveWithoutEntriesDeniesEveryone(t *testing.T) {
	p := trust.DefaultPolicy()
	p.Mesh = "m"
	p.AllowlistActive = true
	g := trust.NewGate(p)
	d := g.InterceptPeer(peernode.PeerInfo{ID: "anyone", Addr: ap("10.0.0.1"), Direction: peernode.Inbound})
	checkDecision(t, d, trust.Enforce, peernode.ReasonNotAllowlisted, "no PeerAllowlist entry of mesh m matches")
	d = g.InterceptPeer(peernode.PeerInfo{ID: "anyone", Addr: ap("10.0.0.1"), Direction: peernode.Outbound})
	checkDecision(t, d, trust.Enforce, peernode.ReasonNotAllowlisted, "no PeerAllowlist entry of mesh m matches")
	if d := g.InterceptAccept(ap("10.0.0.1")); d.Verdict != peernode.Allow {
		t.Errorf("InterceptAccept = %+v, want Allow", d)
	}
}

func TestFailClosed(t *testing.T) {
	for name, g := range map[string]*trust.Gate{
		"FailClosedPolicy": trust.NewGate(trust.FailClosedPolicy()),
		"NewGate(nil)":     trust.NewGate(nil),
		"zero Gate":        new(trust.Gate),
	} {
		t.Run(name, func(t *testing.T) {
			if !g.Policy().FailClosed {
				t.Fatalf("Policy().FailClosed = false")
			}
			checkDecision(t, g.InterceptAccept(ap("10.0.0.1")), trust.Enforce, peernode.ReasonFailClosed, "fail-closed")
			checkDecision(t, g.InterceptPeer(peernode.PeerInfo{ID: "a", Addr: ap("10.0.0.1"), Direction: peernode.Inbound}),
				trust.Enforce, peernode.ReasonFailClosed, "fail-closed")
			// Outbound peers are admitted so the node can reach its seeds,
			// and their packets are gated by the default switches.
			checkDecision(t, g.InterceptPeer(peernode.PeerInfo{ID: "a", Addr: ap("10.0.0.1"), Direction: peernode.Outbound}),
				trust.Enforce, "", "")
			checkDecision(t, g.InterceptPacket(false, wire.TypeMessage), trust.Enforce, "", "")
			checkDecision(t, g.InterceptPacket(false, wire.TypeData), trust.Enforce, peernode.ReasonUntrustedEnhanced, "")
		})
	}
}

func TestSwap(t *testing.T) {
	a, b := trust.DefaultPolicy(), trust.FailClosedPolicy()
	g := trust.NewGate(a)
	if g.Policy() != a {
		t.Fatal("Policy() is not the policy given to NewGate")
	}
	if old := g.Swap(b); old != a {
		t.Fatalf("Swap returned %p, want %p", old, a)
	}
	if g.Policy() != b {
		t.Fatal("Policy() is not the swapped-in policy")
	}
	if old := new(trust.Gate).Swap(a); old != nil {
		t.Fatalf("Swap on a zero Gate returned %v, want nil", old)
	}
	// A nil policy is fail-closed.
	g.Swap(nil)
	if !g.Policy().FailClosed {
		t.Fatal("Swap(nil) did not install a fail-closed policy")
	}
}

// TestSwapConcurrent swaps policies while readers gate packets (run with
// -race): every decision must be wholly one policy's.
func TestSwapConcurrent(t *testing.T) {
	open := trust.DefaultPolicy()
	open.Generation = "open"
	open.AllowEnhancedPacketExchange = true
	closed := trust.DefaultPolicy()
	closed.Generation = "closed"
	closed.AllowEnhancedPacketExchange = false
	closed.AllowlistActive = true

	g := trust.NewGate(open)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := g.InterceptPacket(false, wire.TypeData)
				okOpen := d.Policy == "open" && d.Verdict == peernode.Allow
				okClosed := d.Policy == "closed" && d.Verdict == peernode.Deny && d.Reason == peernode.ReasonUntrustedEnhanced
				if !okOpen && !okClosed {
					errs <- fmt.Sprintf("inconsistent packet decision %+v", d)
					return
				}
				p := g.InterceptPeer(peernode.PeerInfo{ID: "x", Addr: ap("10.0.0.1"), Direction: peernode.Inbound})
				if (p.Policy == "open") != (p.Verdict == peernode.Allow) {
					errs <- fmt.Sprintf("inconsistent peer decision %+v", p)
					return
				}
			}
		})
	}
	for i := range 2000 {
		if i%2 == 0 {
			g.Swap(closed)
		} else {
			g.Swap(open)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

var sink peernode.Decision

func TestInterceptDoesNotAllocate(t *testing.T) {
	g := trust.NewGate(listPolicy(trust.Audit))
	peers := []peernode.PeerInfo{
		{ID: "friend", Addr: ap("192.168.1.1"), Direction: peernode.Inbound},
		{ID: "bad-node", Addr: ap("192.168.1.1"), Direction: peernode.Inbound},
		{ID: "x", Addr: ap("10.1.2.3"), Direction: peernode.Inbound},
		{ID: "x", Addr: ap("::ffff:10.1.2.3"), Direction: peernode.Inbound},
		{ID: "x", Addr: ap("2001:db8:1::5"), Direction: peernode.Inbound},
		{ID: "x", Addr: ap("2001:db9::5"), Direction: peernode.Inbound},
		{ID: "x", Addr: ap("10.77.1.1"), Direction: peernode.Inbound},
		{ID: "x", Addr: ap("10.66.5.5"), Direction: peernode.Outbound},
	}
	tests := map[string]func(){
		"InterceptPacket untrusted": func() { sink = g.InterceptPacket(false, wire.TypeData) },
		"InterceptPacket trusted":   func() { sink = g.InterceptPacket(true, wire.TypeData) },
		"InterceptAccept":           func() { sink = g.InterceptAccept(ap("10.66.5.5")) },
		"InterceptPeer": func() {
			for _, p := range peers {
				sink = g.InterceptPeer(p)
			}
		},
	}
	for name, f := range tests {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}

func TestMalformedRulesIgnoredByGate(t *testing.T) {
	p := trust.DefaultPolicy()
	p.Blocked = []trust.Rule{
		{}, // neither identifier nor prefix
		{Identifier: "a", Prefix: mustPrefix("10.0.0.0/8")},
		{Prefix: mustPrefix("10.0.0.0/8"), Except: []netip.Prefix{mustPrefix("11.0.0.0/16")}},
		// A hand-built IPv4-mapped prefix matches like its IPv4 equivalent.
		{Prefix: mustPrefix("::ffff:192.168.0.0/112"), Source: "mapped"},
	}
	if err := p.Validate(); err == nil {
		t.Error("Validate accepted malformed rules")
	}
	g := trust.NewGate(p)
	if d := g.InterceptAccept(ap("10.1.1.1")); d.Verdict != peernode.Allow {
		t.Errorf("malformed rule enforced: %+v", d)
	}
	if d := g.InterceptAccept(ap("192.168.3.3")); d.Reason != peernode.ReasonBlockedCIDR || !strings.Contains(d.Rule, "mapped") {
		t.Errorf("IPv4-mapped rule not matched: %+v", d)
	}
}

func TestRuleString(t *testing.T) {
	tests := []struct {
		r    trust.Rule
		want string
	}{
		{trust.Rule{Identifier: "n1", Source: "S"}, "S identifier n1"},
		{trust.Rule{Prefix: mustPrefix("10.0.0.0/8")}, "10.0.0.0/8"},
		{trust.Rule{Prefix: mustPrefix("10.0.0.0/8"), Except: []netip.Prefix{mustPrefix("10.1.0.0/16"), mustPrefix("10.2.0.0/16")}, Source: "S"},
			"S 10.0.0.0/8 except 10.1.0.0/16, 10.2.0.0/16"},
		{trust.Rule{}, "(empty rule)"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
