package trust

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// PolicyFromConfig converts a node configuration into the Policy its gate
// enforces. Fields left unset get the API's defaults, so a configuration
// that was not defaulted converts like one that was. CIDRs are parsed here,
// once; the Gate indexes the parsed rules when the policy is installed.
//
// It returns an error wrapping ErrInvalidPolicy when the configuration
// cannot be enforced as written: an unknown mode, a CIDR that does not parse
// or has host bits set, an IPv4-mapped IPv6 CIDR, an exception not strictly
// inside its CIDR, a rule with both or neither of identifier and CIDR, an
// invalid identifier, the contradictions the CRD's CEL rules refuse
// (runDefaultTrustProtocol with type None; all three incoming switches
// false). The caller keeps its previous policy in that case.
//
// Trust protocol type SharedKey becomes "sharedKey". The key is not part of
// the policy (configurations hold no secret): the daemon reads it from
// sharedKeyFile, or the Secret of sharedKeySecretRef, and hands it to the
// node through Resolver.
func PolicyFromConfig(cfg *v1alpha1.PeerNodeConfiguration) (*Policy, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: no configuration", ErrInvalidPolicy)
	}
	p := &Policy{
		Mesh:                        cfg.MeshName,
		Generation:                  cfg.Generation,
		PolicySource:                sourceDefaults,
		AllowDefaultCommunication:   boolOr(cfg.Incoming.AllowDefaultCommunication, v1alpha1.DefaultAllowDefaultCommunication),
		AllowEnhancedPacketExchange: boolOr(cfg.Incoming.AllowEnhancedPacketExchange, v1alpha1.DefaultAllowEnhancedPacketExchange),
		RunTrustProtocol:            boolOr(cfg.Incoming.RunDefaultTrustProtocol, v1alpha1.DefaultRunDefaultTrustProtocol),
		// As the API defaults it: an allowlist applies as soon as it has
		// a rule, whether or not allowlistActive was written.
		AllowlistActive: cfg.AllowlistActive || len(cfg.Allowed) > 0,
	}
	if ref := cfg.PolicySource; ref != nil {
		p.PolicySource = v1alpha1.SourceKindPeerTrustPolicy + " " + ref.String()
	}

	switch cfg.Mode {
	case "", v1alpha1.PolicyModeEnforce:
		p.Mode = Enforce
	case v1alpha1.PolicyModeAudit:
		p.Mode = Audit
	default:
		return nil, fmt.Errorf("%w: mode %q: must be Enforce or Audit", ErrInvalidPolicy, cfg.Mode)
	}

	typ := cfg.Incoming.TrustProtocol.Type
	if typ == "" {
		typ = v1alpha1.DefaultTrustProtocolType
	}
	p.TrustProtocol = protocolName(typ)
	if p.RunTrustProtocol && typ == v1alpha1.TrustProtocolNone {
		return nil, fmt.Errorf("%w: incoming: runDefaultTrustProtocol is true but trustProtocol.type is None, which runs no handshake: choose Ping or SharedKey, or set runDefaultTrustProtocol to false", ErrInvalidPolicy)
	}
	if !p.AllowDefaultCommunication && !p.AllowEnhancedPacketExchange && !p.RunTrustProtocol {
		return nil, fmt.Errorf("%w: incoming: allowDefaultCommunication, allowEnhancedPacketExchange and runDefaultTrustProtocol are all false: no peer could ever be trusted or send a packet", ErrInvalidPolicy)
	}

	var err error
	if p.Blocked, err = convertRules("blocked", cfg.Blocked); err != nil {
		return nil, err
	}
	if p.Allowed, err = convertRules("allowed", cfg.Allowed); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// protocolName maps the CRD's enum value to the protocol's wire name.
func protocolName(t v1alpha1.TrustProtocolType) string {
	switch t {
	case v1alpha1.TrustProtocolNone:
		return ProtocolNone
	case v1alpha1.TrustProtocolPing:
		return ProtocolPing
	case v1alpha1.TrustProtocolSharedKey:
		return ProtocolSharedKey
	}
	return string(t)
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func convertRules(list string, in []v1alpha1.PeerRule) ([]Rule, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]Rule, len(in))
	for i, pr := range in {
		path := fmt.Sprintf("%s[%d]", list, i)
		r, err := convertRule(pr)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalidPolicy, path, err)
		}
		r.Source = ruleSource(pr.Source, path)
		out[i] = r
	}
	return out, nil
}

func convertRule(pr v1alpha1.PeerRule) (Rule, error) {
	var r Rule
	switch {
	case pr.Identifier != "" && pr.CIDR != "":
		return r, errors.New("set exactly one of identifier and cidr, not both")
	case pr.Identifier == "" && pr.CIDR == "":
		return r, errors.New("set exactly one of identifier and cidr")
	case pr.Identifier != "":
		if len(pr.Except) > 0 {
			return r, errors.New("except is only allowed with cidr")
		}
		if !v1alpha1.IsValidIdentifier(string(pr.Identifier)) {
			return r, fmt.Errorf("identifier %.80q is not a valid node identifier", pr.Identifier)
		}
		r.Identifier = string(pr.Identifier)
		return r, nil
	}
	pfx, err := parseCIDR(string(pr.CIDR))
	if err != nil {
		return r, fmt.Errorf("cidr: %w", err)
	}
	r.Prefix = pfx
	if len(pr.Except) > 0 {
		r.Except = make([]netip.Prefix, len(pr.Except))
	}
	for j, e := range pr.Except {
		ep, err := parseCIDR(string(e))
		if err != nil {
			return r, fmt.Errorf("except[%d]: %w", j, err)
		}
		if err := checkExcept(pfx, ep); err != nil {
			return r, fmt.Errorf("except[%d]: %w", j, err)
		}
		r.Except[j] = ep
	}
	return r, nil
}

// parseCIDR parses s as the CRD's CIDR type allows: a masked prefix, not
// IPv4-mapped, without zone (netip refuses zones in prefixes).
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%.64q is not a CIDR such as 10.0.0.0/8 or fd00::/8", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 CIDR; write the IPv4 CIDR", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has bits set after the prefix length: write %s", s, p.Masked())
	}
	return p, nil
}

// ruleSource renders a rule's provenance for decisions, for example
// `PeerAllowlist team-a/web entry "frontend" pod team-a/web-0` or
// `PeerTrustPolicy ns/p blocked.cidrs[0]`. Rules without one are named by
// their place in the configuration.
func ruleSource(s *v1alpha1.RuleSource, path string) string {
	if s == nil {
		return "configuration " + path
	}
	parts := make([]string, 0, 5)
	if s.Kind != "" {
		parts = append(parts, s.Kind)
	}
	switch {
	case s.Namespace != "" && s.Name != "":
		parts = append(parts, s.Namespace+"/"+s.Name)
	case s.Name != "":
		parts = append(parts, s.Name)
	}
	switch {
	case s.Entry == "":
		parts = append(parts, path)
	case strings.Contains(s.Entry, "["): // a path such as peers[3]
		parts = append(parts, s.Entry)
	default: // an entry's name
		parts = append(parts, fmt.Sprintf("entry %q", s.Entry))
	}
	if s.Pod != "" {
		parts = append(parts, "pod "+s.Pod)
	}
	return strings.Join(parts, " ")
}
