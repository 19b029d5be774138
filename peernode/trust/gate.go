package trust

import (
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// Gate is the node's peernode.Gater: it answers for the Policy in force and
// swaps in a new one atomically.
//
// All methods are safe for concurrent use. The Intercept methods never block
// and never allocate: every Decision they can return, with its reason and
// rule text, is computed once when a policy is installed. The zero Gate
// enforces FailClosedPolicy.
type Gate struct {
	cur atomic.Pointer[compiledPolicy]
}

var _ peernode.Gater = (*Gate)(nil)

// NewGate returns a gate enforcing p (FailClosedPolicy when p is nil).
func NewGate(p *Policy) *Gate {
	g := &Gate{}
	g.Swap(p)
	return g
}

// Swap installs p (FailClosedPolicy when p is nil) and returns the policy it
// replaces (nil for a zero Gate). Decisions that started before Swap may
// still use the old policy; every one that starts after it uses p. Swap
// compiles p's rules (O(rules)), so call it off the hot path; callers
// serialise their own Swaps if they need the returned old policy to be exact.
func (g *Gate) Swap(p *Policy) (old *Policy) {
	if p == nil {
		p = FailClosedPolicy()
	}
	if prev := g.cur.Swap(compile(p)); prev != nil {
		return prev.policy
	}
	return nil
}

// Policy returns the policy in force. The caller must not modify it.
func (g *Gate) Policy() *Policy { return g.load().policy }

// zeroGatePolicy is what a zero Gate enforces.
var zeroGatePolicy = compile(FailClosedPolicy())

func (g *Gate) load() *compiledPolicy {
	if c := g.cur.Load(); c != nil {
		return c
	}
	return zeroGatePolicy
}

// InterceptAccept implements peernode.Gater: it denies addresses in a blocked
// CIDR (blocked_cidr) and, while the node has no configuration, every
// connection (no_configuration).
func (g *Gate) InterceptAccept(addr netip.AddrPort) peernode.Decision {
	c := g.load()
	if d, ok := c.blocked.matchAddr(addr.Addr()); ok {
		return d
	}
	if c.policy.FailClosed {
		return c.failClosed
	}
	return c.allow
}

// InterceptPeer implements peernode.Gater. In order: a blocked identifier
// (blocked_identifier), a blocked CIDR (blocked_cidr), no configuration for
// an inbound peer (no_configuration), then, when an allowlist is active, no
// matching allow rule, in either direction (not_allowlisted). An admitted
// peer that matched an allow rule gets an Allow naming that rule.
//
// A Direction other than Outbound is judged as inbound, so that a caller
// that forgets to set it fails closed.
func (g *Gate) InterceptPeer(p peernode.PeerInfo) peernode.Decision {
	c := g.load()
	if d, ok := c.blocked.matchID(p.ID); ok {
		return d
	}
	if d, ok := c.blocked.matchAddr(p.Addr.Addr()); ok {
		return d
	}
	// Fail-closed refuses inbound peers only, so that a node waiting for its
	// configuration can still reach its seeds. Allowlists apply in both
	// directions: every node of a mesh runs the same configuration, and a
	// peer the allowlists leave out must not end up connected because a
	// listed node dialed it (discovery reports every endpoint of the
	// Service, listed or not).
	if c.policy.FailClosed && p.Direction != peernode.Outbound {
		return c.failClosed
	}
	if !c.policy.AllowlistActive {
		return c.allow
	}
	if d, ok := c.allowed.matchID(p.ID); ok {
		return d
	}
	if d, ok := c.allowed.matchAddr(p.Addr.Addr()); ok {
		return d
	}
	return c.notAllowlisted
}

// InterceptPacket implements peernode.Gater: trusted peers may send anything;
// untrusted ones are gated by packet class (see the package documentation).
// It is one atomic load and one table lookup.
func (g *Gate) InterceptPacket(trusted bool, t wire.Type) peernode.Decision {
	c := g.load()
	if trusted {
		return c.allow
	}
	return c.untrusted[t]
}

// Explain returns the decision InterceptPeer would make for a peer with this
// identifier, address and direction, for `peernode explain` and the admin
// endpoint. The Rule of the decision names the rule that decided, if any.
func (g *Gate) Explain(id string, addr netip.AddrPort, dir peernode.Direction) peernode.Decision {
	return g.InterceptPeer(peernode.PeerInfo{ID: id, Addr: addr, Direction: dir})
}

// packetClass is how trust gating treats a packet type from an untrusted peer.
type packetClass uint8

const (
	classEnhanced packetClass = iota
	classDefault
	classTrust
)

// classify returns the class of t. Types without a built-in meaning
// (reserved ranges, 0) are enhanced: an untrusted peer gets nothing it was
// not explicitly allowed.
func classify(t wire.Type) packetClass {
	switch {
	case t == wire.TypeMessage, t == wire.TypeDisconnect, t == wire.TypePing, t == wire.TypePong:
		return classDefault
	case t >= 0x10 && t <= 0x1F:
		return classTrust
	}
	return classEnhanced
}

// compiledPolicy is a Policy with every lookup structure and Decision built,
// so that the Intercept methods only read.
type compiledPolicy struct {
	policy *Policy

	allow          peernode.Decision
	failClosed     peernode.Decision
	notAllowlisted peernode.Decision
	untrusted      [256]peernode.Decision

	blocked ruleIndex
	allowed ruleIndex
}

func compile(p *Policy) *compiledPolicy {
	deny := peernode.Deny
	if p.Mode == Audit {
		deny = peernode.AuditDeny
	}
	src := p.PolicySource
	if src == "" {
		src = "policy"
	}
	mesh := ""
	if p.Mesh != "" {
		mesh = " of mesh " + p.Mesh
	}
	c := &compiledPolicy{
		policy: p,
		allow:  peernode.Decision{Verdict: peernode.Allow, Policy: p.Generation},
		failClosed: peernode.Decision{
			Verdict: deny, Reason: peernode.ReasonFailClosed, Policy: p.Generation,
			Rule: "no configuration applied yet (fail-closed)",
		},
		notAllowlisted: peernode.Decision{
			Verdict: deny, Reason: peernode.ReasonNotAllowlisted, Policy: p.Generation,
			Rule: "no PeerAllowlist entry" + mesh + " matches",
		},
	}

	defaultDenied := peernode.Decision{
		Verdict: deny, Reason: peernode.ReasonUntrustedDefault, Policy: p.Generation,
		Rule: src + " incoming.allowDefaultCommunication=false",
	}
	enhancedDenied := peernode.Decision{
		Verdict: deny, Reason: peernode.ReasonUntrustedEnhanced, Policy: p.Generation,
		Rule: src + " incoming.allowEnhancedPacketExchange=false",
	}
	for i := range c.untrusted {
		d := c.allow
		switch classify(wire.Type(i)) {
		case classDefault:
			if !p.AllowDefaultCommunication {
				d = defaultDenied
			}
		case classEnhanced:
			if !p.AllowEnhancedPacketExchange {
				d = enhancedDenied
			}
		}
		c.untrusted[i] = d
	}

	c.blocked = buildIndex(p.Blocked, func(r Rule) peernode.Decision {
		reason := peernode.ReasonBlockedCIDR
		if r.Identifier != "" {
			reason = peernode.ReasonBlockedIdentifier
		}
		return peernode.Decision{Verdict: deny, Reason: reason, Rule: r.String(), Policy: p.Generation}
	})
	c.allowed = buildIndex(p.Allowed, func(r Rule) peernode.Decision {
		return peernode.Decision{Verdict: peernode.Allow, Rule: r.String(), Policy: p.Generation}
	})
	return c
}

// ruleIndex finds the rule matching an identifier in one map lookup and the
// rule matching an address in one map lookup per distinct prefix length
// among the rules (at most 33 for IPv4 and 129 for IPv6, a handful in
// practice), whatever the number of rules.
type ruleIndex struct {
	ids map[string]peernode.Decision
	// prefixes maps a masked prefix to the rules with exactly that prefix,
	// in configuration order (rules may differ in their exceptions).
	prefixes map[netip.Prefix][]prefixRule
	// bits4 and bits6 are the distinct prefix lengths of IPv4 and IPv6
	// rules, longest first, so that the most specific rule wins.
	bits4, bits6 []int
}

type prefixRule struct {
	except   []netip.Prefix
	decision peernode.Decision
}

// buildIndex indexes the valid rules of rules. On duplicates the first rule
// in configuration order is the one a decision names. Malformed rules (see
// Rule.validate) are skipped; PolicyFromConfig never produces them.
func buildIndex(rules []Rule, decide func(Rule) peernode.Decision) ruleIndex {
	ix := ruleIndex{}
	for _, r := range rules {
		if r.validate() != nil {
			continue
		}
		if r.Identifier != "" {
			if ix.ids == nil {
				ix.ids = make(map[string]peernode.Decision)
			}
			if _, dup := ix.ids[r.Identifier]; !dup {
				ix.ids[r.Identifier] = decide(r)
			}
			continue
		}
		pfx := normalizePrefix(r.Prefix)
		if ix.prefixes == nil {
			ix.prefixes = make(map[netip.Prefix][]prefixRule)
		}
		if _, seen := ix.prefixes[pfx]; !seen {
			if pfx.Addr().Is4() {
				ix.bits4 = append(ix.bits4, pfx.Bits())
			} else {
				ix.bits6 = append(ix.bits6, pfx.Bits())
			}
		}
		except := make([]netip.Prefix, len(r.Except))
		for i, e := range r.Except {
			except[i] = normalizePrefix(e)
		}
		ix.prefixes[pfx] = append(ix.prefixes[pfx], prefixRule{except: except, decision: decide(r)})
	}
	ix.bits4 = longestFirst(ix.bits4)
	ix.bits6 = longestFirst(ix.bits6)
	return ix
}

// longestFirst sorts prefix lengths in decreasing order and removes
// duplicates.
func longestFirst(bits []int) []int {
	slices.Sort(bits)
	bits = slices.Compact(bits)
	slices.Reverse(bits)
	return bits
}

// normalizePrefix masks p and rewrites an IPv4-mapped IPv6 prefix
// (::ffff:10.0.0.0/104) as the IPv4 prefix it covers (10.0.0.0/8), because
// addresses are unmapped before matching.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// matchID returns the decision of the rule for identifier id.
func (ix *ruleIndex) matchID(id string) (peernode.Decision, bool) {
	if id == "" || ix.ids == nil {
		return peernode.Decision{}, false
	}
	d, ok := ix.ids[id]
	return d, ok
}

// matchAddr returns the decision of the most specific rule whose prefix
// contains a and whose exceptions do not; among rules with the same prefix,
// the first in configuration order.
func (ix *ruleIndex) matchAddr(a netip.Addr) (peernode.Decision, bool) {
	if !a.IsValid() || ix.prefixes == nil {
		return peernode.Decision{}, false
	}
	a = a.Unmap().WithZone("")
	bits := ix.bits6
	if a.Is4() {
		bits = ix.bits4
	}
	for _, b := range bits {
		pfx, err := a.Prefix(b)
		if err != nil {
			continue
		}
		for _, r := range ix.prefixes[pfx] {
			if !containsAny(r.except, a) {
				return r.decision, true
			}
		}
	}
	return peernode.Decision{}, false
}

func containsAny(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
