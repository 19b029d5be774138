package trust

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrInvalidPolicy is wrapped by PolicyFromConfig and Policy.Validate when a
// configuration cannot be enforced as written. The node keeps its last good
// policy when it gets one.
var ErrInvalidPolicy = errors.New("trust: invalid policy")

// Mode says whether a policy's denials are enforced or only reported.
type Mode uint8

const (
	// Enforce refuses the peers and packets the policy denies. It is the
	// zero value.
	Enforce Mode = iota
	// Audit admits everything but reports each decision Enforce would have
	// denied as peernode.AuditDeny.
	Audit
)

// String returns "Enforce" or "Audit", as the CRD spells them.
func (m Mode) String() string {
	switch m {
	case Enforce:
		return "Enforce"
	case Audit:
		return "Audit"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Rule matches peers by exactly one of Identifier or Prefix.
type Rule struct {
	// Identifier matches the peer that announced this node identifier.
	Identifier string
	// Prefix matches peers whose connection's source address is inside it
	// (IPv4-mapped IPv6 addresses are unmapped before matching).
	Prefix netip.Prefix
	// Except removes networks strictly inside Prefix from the match.
	Except []netip.Prefix
	// Source says where the rule came from, for people: for example
	// `PeerTrustPolicy ns/name blocked.cidrs[0]` or
	// `PeerAllowlist ns/web entry "frontend"`.
	Source string
}

// String returns the rule as decisions name it: its source followed by what
// it matches, e.g. `PeerTrustPolicy ns/p blocked.cidrs[0] 10.0.0.0/8`.
func (r Rule) String() string {
	var b strings.Builder
	if r.Source != "" {
		b.WriteString(r.Source)
		b.WriteByte(' ')
	}
	switch {
	case r.Identifier != "":
		b.WriteString("identifier ")
		b.WriteString(r.Identifier)
	case r.Prefix.IsValid():
		b.WriteString(r.Prefix.String())
		for i, e := range r.Except {
			if i == 0 {
				b.WriteString(" except ")
			} else {
				b.WriteString(", ")
			}
			b.WriteString(e.String())
		}
	default:
		b.WriteString("(empty rule)")
	}
	return b.String()
}

// validate checks that r matches by exactly one of identifier or prefix and
// that its exceptions are strictly inside its prefix.
func (r Rule) validate() error {
	switch {
	case r.Identifier != "" && r.Prefix.IsValid():
		return errors.New("has both an identifier and a CIDR; a rule matches by exactly one")
	case r.Identifier == "" && !r.Prefix.IsValid():
		return errors.New("has neither an identifier nor a CIDR")
	case r.Identifier != "" && len(r.Except) > 0:
		return errors.New("has except ranges but no CIDR")
	}
	for i, e := range r.Except {
		if err := checkExcept(r.Prefix, e); err != nil {
			return fmt.Errorf("except[%d]: %w", i, err)
		}
	}
	return nil
}

// checkExcept reports whether e is a valid exception of p: same family,
// longer and inside it.
func checkExcept(p, e netip.Prefix) error {
	if !e.IsValid() {
		return errors.New("invalid CIDR")
	}
	if e.Addr().Is4() != p.Addr().Is4() {
		return fmt.Errorf("%s and %s are of different address families", e, p)
	}
	if e.Bits() <= p.Bits() || !p.Contains(e.Addr()) {
		return fmt.Errorf("%s is not strictly inside %s", e, p)
	}
	return nil
}

// Policy is the compiled, immutable form of a node configuration that a Gate
// evaluates. Build one with PolicyFromConfig, DefaultPolicy or
// FailClosedPolicy, or as a literal in tests. Once handed to a Gate it must
// not be modified: the gate keeps its own compiled copy of the rules, so a
// later change would not be enforced but would show in Gate.Policy().
type Policy struct {
	// Mesh is the mesh the policy applies to; it appears in explanations.
	Mesh string
	// Generation is the configuration's content hash, reported in every
	// Decision so that a denial names the configuration that made it.
	Generation string
	// PolicySource names the PeerTrustPolicy compiled into the policy
	// ("PeerTrustPolicy ns/name"), or "built-in defaults".
	PolicySource string

	// Mode is Enforce or Audit.
	Mode Mode
	// FailClosed means no configuration has been applied yet: every inbound
	// connection is denied with reason no_configuration. Outbound peers are
	// admitted and packets gated by the other fields, so a node can reach
	// its seeds while it waits for its configuration.
	FailClosed bool

	// AllowDefaultCommunication lets untrusted peers send Message,
	// Disconnect, Ping and Pong packets.
	AllowDefaultCommunication bool
	// AllowEnhancedPacketExchange lets untrusted peers send Hello (after
	// the handshake), PeerGroup, Data, data-distribution and application
	// packets.
	AllowEnhancedPacketExchange bool
	// RunTrustProtocol runs TrustProtocol on every new channel.
	RunTrustProtocol bool
	// TrustProtocol is the name of the trust protocol: "none", "ping" or
	// "sharedKey". The node resolves it to an implementation
	// (node.Config.TrustProtocols, see Resolver) and refuses a policy whose
	// protocol it cannot run.
	TrustProtocol string

	// Blocked rules deny the peers they match, in both directions. Block
	// beats allow.
	Blocked []Rule
	// AllowlistActive means at least one allowlist applies: inbound peers
	// that match no rule of Allowed are denied. It is separate from
	// Allowed so that allowlists whose selectors match nothing deny
	// everyone rather than no one.
	AllowlistActive bool
	// Allowed rules are the entries of every allowlist of the mesh.
	Allowed []Rule
}

// Names of the key-less built-in trust protocols, as on the wire and in
// metrics (ProtocolSharedKey is beside SharedKey).
const (
	ProtocolNone = "none"
	ProtocolPing = "ping"
)

// sourceDefaults is PolicySource for policies built without a PeerTrustPolicy.
const sourceDefaults = "built-in defaults"

// DefaultPolicy returns P2PNet's default IncomingPeerTrustPolicy: untrusted
// peers may send default communication but not enhanced packets, the ping
// trust protocol runs on every channel, nothing is blocked and no allowlist
// applies. The caller owns the result.
func DefaultPolicy() *Policy {
	return &Policy{
		PolicySource:                sourceDefaults,
		Mode:                        Enforce,
		AllowDefaultCommunication:   true,
		AllowEnhancedPacketExchange: false,
		RunTrustProtocol:            true,
		TrustProtocol:               ProtocolPing,
	}
}

// FailClosedPolicy returns the policy of a node that has no configuration
// yet: DefaultPolicy with FailClosed set, so that no inbound peer is admitted
// until the first configuration is applied.
func FailClosedPolicy() *Policy {
	p := DefaultPolicy()
	p.FailClosed = true
	p.PolicySource = "no configuration (fail-closed)"
	return p
}

// Validate returns an error wrapping ErrInvalidPolicy if a rule of p is
// malformed (both or neither of identifier and CIDR, or an exception not
// strictly inside its CIDR) or if RunTrustProtocol is set without a
// TrustProtocol name. A Gate ignores malformed rules rather than failing,
// so validate hand-built policies before use.
//
// Validate does not check that the protocol can run: whether a name is
// implemented, and whether its key is available, is the resolver's answer
// (node.Config.TrustProtocols), which the node asks before installing p.
func (p *Policy) Validate() error {
	if p.Mode != Enforce && p.Mode != Audit {
		return fmt.Errorf("%w: mode %v", ErrInvalidPolicy, p.Mode)
	}
	for i, r := range p.Blocked {
		if err := r.validate(); err != nil {
			return fmt.Errorf("%w: blocked[%d] (%s): %w", ErrInvalidPolicy, i, r.Source, err)
		}
	}
	for i, r := range p.Allowed {
		if err := r.validate(); err != nil {
			return fmt.Errorf("%w: allowed[%d] (%s): %w", ErrInvalidPolicy, i, r.Source, err)
		}
	}
	if p.RunTrustProtocol && p.TrustProtocol == "" {
		return fmt.Errorf("%w: RunTrustProtocol is set but TrustProtocol names no protocol", ErrInvalidPolicy)
	}
	return nil
}
