package peernode

import (
	"net/netip"

	"github.com/peermesh/peermesh/peernode/wire"
)

// Verdict is the outcome of a gate decision.
type Verdict uint8

const (
	// Allow admits the connection, peer or packet.
	Allow Verdict = iota
	// Deny refuses it; the caller closes or drops.
	Deny
	// AuditDeny is a denial the policy does not enforce (mode Audit): the
	// caller counts and logs it as a would-be denial, then admits.
	AuditDeny
)

// Denial reasons: the bounded values of the reason label of
// peermesh_node_policy_denials_total and connections_rejected_total.
const (
	ReasonBlockedCIDR       = "blocked_cidr"
	ReasonBlockedIdentifier = "blocked_identifier"
	ReasonNotAllowlisted    = "not_allowlisted"
	ReasonUntrustedDefault  = "untrusted_default_communication"
	ReasonUntrustedEnhanced = "untrusted_enhanced_exchange"
	ReasonFailClosed        = "no_configuration"
)

// Decision is a gate's answer with the reason and the rule that decided it,
// so that every denial can name its cause.
type Decision struct {
	Verdict Verdict
	// Reason is one of the Reason* constants ("" for a plain Allow).
	Reason string
	// Rule names the rule and its source, e.g. `PeerTrustPolicy default/mesh
	// blocked.cidrs[0] 10.0.0.0/8` or `PeerAllowlist a/web entry "frontend"`.
	Rule string
	// Policy is the configuration generation that decided.
	Policy string
}

// Allowed reports whether the caller should proceed (Allow or AuditDeny).
func (d Decision) Allowed() bool { return d.Verdict != Deny }

// PeerInfo is what a gate knows about a peer at the identity stage.
type PeerInfo struct {
	ID        string
	Addr      netip.AddrPort
	Direction Direction
}

// Gater decides, at each stage, whether a connection proceeds (in the style of
// libp2p's ConnectionGater). Decisions are pure functions of the policy in
// force and their inputs; implementations swap policies atomically and are
// safe for concurrent use. The per-packet check is on the hot path and must
// not allocate.
type Gater interface {
	// InterceptAccept is asked when a connection is accepted, before any read.
	InterceptAccept(addr netip.AddrPort) Decision
	// InterceptPeer is asked once the peer's identity is known, and again for
	// every open channel when the policy changes.
	InterceptPeer(p PeerInfo) Decision
	// InterceptPacket is asked for every received packet of an open channel.
	InterceptPacket(trusted bool, t wire.Type) Decision
}
