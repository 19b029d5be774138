package trust_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/trust"
	"github.com/peermesh/peermesh/peernode/wire"
)

// bigPolicy has 10,000 allow rules, as 1,000 allowlists of 10 entries
// compile to (half pod identities, half /32 pod addresses, plus a few
// wider networks), and 100 block rules.
func bigPolicy() *trust.Policy {
	p := trust.DefaultPolicy()
	p.AllowlistActive = true
	for l := range 1000 {
		for e := range 10 {
			src := fmt.Sprintf("PeerAllowlist ns%d/list entry %q", l, fmt.Sprint("e", e))
			n := l*10 + e
			switch {
			case e == 9:
				p.Allowed = append(p.Allowed, trust.Rule{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(16 + l%16), byte(l / 16), 0}), 24), Source: src})
			case e%2 == 0:
				p.Allowed = append(p.Allowed, trust.Rule{Identifier: fmt.Sprintf("node-%d", n), Source: src})
			default:
				p.Allowed = append(p.Allowed, trust.Rule{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 32), Source: src})
			}
		}
	}
	for i := range 100 {
		p.Blocked = append(p.Blocked, trust.Rule{Identifier: fmt.Sprintf("bad-%d", i)})
	}
	return p
}

func BenchmarkInterceptPeer10kRules(b *testing.B) {
	g := trust.NewGate(bigPolicy())
	cases := map[string]peernode.PeerInfo{
		"identifier": {ID: "node-5000", Addr: netip.MustParseAddrPort("192.168.0.1:1"), Direction: peernode.Inbound},
		"cidr32":     {ID: "unknown", Addr: netip.MustParseAddrPort("10.0.19.137:1"), Direction: peernode.Inbound},
		"cidr24":     {ID: "unknown", Addr: netip.MustParseAddrPort("172.20.3.9:1"), Direction: peernode.Inbound},
		"denied":     {ID: "unknown", Addr: netip.MustParseAddrPort("192.168.0.1:1"), Direction: peernode.Inbound},
		"blocked":    {ID: "bad-7", Addr: netip.MustParseAddrPort("192.168.0.1:1"), Direction: peernode.Inbound},
	}
	for name, p := range cases {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = g.InterceptPeer(p)
			}
		})
	}
}

func BenchmarkInterceptPacket(b *testing.B) {
	g := trust.NewGate(trust.DefaultPolicy())
	b.ReportAllocs()
	for b.Loop() {
		sink = g.InterceptPacket(false, wire.TypeData)
	}
}

func BenchmarkSwap10kRules(b *testing.B) {
	p := bigPolicy()
	g := trust.NewGate(p)
	b.ReportAllocs()
	for b.Loop() {
		g.Swap(p)
	}
}

func TestBigPolicy(t *testing.T) {
	g := trust.NewGate(bigPolicy())
	for _, tt := range []struct {
		id, addr string
		reason   string
	}{
		{"node-5000", "192.168.0.1:1", ""},
		{"unknown", "10.0.19.137:1", ""},
		{"unknown", "172.20.3.9:1", ""},
		{"unknown", "192.168.0.1:1", peernode.ReasonNotAllowlisted},
		{"bad-7", "10.0.19.137:1", peernode.ReasonBlockedIdentifier},
	} {
		d := g.Explain(tt.id, netip.MustParseAddrPort(tt.addr), peernode.Inbound)
		if d.Reason != tt.reason {
			t.Errorf("Explain(%s, %s) = %+v, want reason %q", tt.id, tt.addr, d, tt.reason)
		}
	}
}
