/*
Copyright 2026 The peermesh Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// The checks below mirror the CRD's OpenAPI and CEL rules, with the same
// messages, so that whatever the API server accepts compiles into a
// configuration the node accepts; a few more cover node-local fields.

const (
	msgNoPackets = "allowDefaultCommunication, allowEnhancedPacketExchange and runDefaultTrustProtocol are all false: " +
		"no peer could ever be trusted or send a packet; set at least one to true"
	msgNoneWithTrust = "runDefaultTrustProtocol is true but trustProtocol.type is None, which runs no handshake: " +
		"choose Ping or SharedKey, or set runDefaultTrustProtocol to false"
	msgNoChannels   = "maxInboundPeers and maxOutboundPeers are both 0: nodes could open no channel at all"
	msgBadCIDR      = "must be a CIDR such as 10.0.0.0/8 or fd00::/8"
	msgBadIdentifer = "must be 1 to 253 letters, digits, '.', '_', ':' or '-', starting and ending with a letter or digit"

	// maxExcept is the CRD's limit on except entries per allowlist entry.
	maxExcept = 32
	// maxSourceFieldLength bounds provenance strings (a pod's
	// "namespace/name" is at most 63+1+253 bytes).
	maxSourceFieldLength = 512
	// maxSeedLength is the wire protocol's MaxAddrLen.
	maxSeedLength = 261
)

// Validate reports every problem of the configuration, each naming its
// field path (for example `blocked[2].cidr: Invalid value: "10.0.0.0/33":
// must be a CIDR ...`). The error wraps ErrInvalidConfiguration and a
// k8s.io/apimachinery utilerrors.Aggregate of *field.Error. Validate does not
// default: call Default first, as ParsePeerNodeConfiguration does.
func (c *PeerNodeConfiguration) Validate() error {
	var errs field.ErrorList
	if c.APIVersion != GroupVersion.String() {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), c.APIVersion, []string{GroupVersion.String()}))
	}
	if c.Kind != PeerNodeConfigurationKind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), c.Kind, []string{PeerNodeConfigurationKind}))
	}
	if c.Generation != "" && !isSHA256Hex(c.Generation) {
		errs = append(errs, field.Invalid(field.NewPath("generation"), c.Generation, "must be 64 lower-case hex digits (a SHA-256, see Hash)"))
	}
	if c.MeshName != "" {
		errs = append(errs, dns1123Label(field.NewPath("meshName"), c.MeshName)...)
	}
	if ps := c.PolicySource; ps != nil {
		p := field.NewPath("policySource")
		errs = append(errs, dns1123Label(p.Child("namespace"), ps.Namespace)...)
		errs = append(errs, dns1123Subdomain(p.Child("name"), ps.Name)...)
	}
	errs = append(errs, enum(field.NewPath("mode"), c.Mode, PolicyModeEnforce, PolicyModeAudit)...)
	errs = append(errs, validateIncoming(field.NewPath("incoming"), &c.Incoming)...)
	errs = append(errs, validateRules(field.NewPath("blocked"), c.Blocked)...)
	errs = append(errs, validateRules(field.NewPath("allowed"), c.Allowed)...)
	if len(c.Allowed) > 0 && !c.AllowlistActive {
		errs = append(errs, field.Invalid(field.NewPath("allowlistActive"), false, "must be true when allowed has rules"))
	}
	errs = append(errs, validateLimits(field.NewPath("limits"), &c.Limits)...)
	if c.Discovery != nil {
		errs = append(errs, validateSeeds(field.NewPath("discovery", "seeds"), c.Discovery.Seeds)...)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfiguration, errs.ToAggregate())
}

func validateIncoming(p *field.Path, in *NodeIncoming) field.ErrorList {
	errs := enum(p.Child("placement"), in.Placement,
		IncomingPlacementQueue, IncomingPlacementEvent, IncomingPlacementQueueAndEvent)
	for _, flag := range []struct {
		name  string
		value *bool
	}{
		{"allowDefaultCommunication", in.AllowDefaultCommunication},
		{"allowEnhancedPacketExchange", in.AllowEnhancedPacketExchange},
		{"runDefaultTrustProtocol", in.RunDefaultTrustProtocol},
	} {
		if flag.value == nil {
			errs = append(errs, field.Required(p.Child(flag.name), "call Default first"))
		}
	}
	if len(errs) == 0 && !*in.AllowDefaultCommunication && !*in.AllowEnhancedPacketExchange && !*in.RunDefaultTrustProtocol {
		errs = append(errs, field.Invalid(p, "all false", msgNoPackets))
	}

	tp := p.Child("trustProtocol")
	t := in.TrustProtocol
	errs = append(errs, enum(tp.Child("type"), t.Type, TrustProtocolNone, TrustProtocolPing, TrustProtocolSharedKey)...)
	if t.Type == TrustProtocolNone && ptr.Deref(in.RunDefaultTrustProtocol, false) {
		errs = append(errs, field.Invalid(tp.Child("type"), t.Type, msgNoneWithTrust))
	}
	if t.Type == TrustProtocolSharedKey {
		switch {
		case t.SharedKeySecretRef == nil && t.SharedKeyFile == "":
			errs = append(errs, field.Required(tp.Child("sharedKeySecretRef"), "trustProtocol type SharedKey requires sharedKeySecretRef or sharedKeyFile"))
		case t.SharedKeySecretRef != nil && t.SharedKeyFile != "":
			errs = append(errs, field.Invalid(tp.Child("sharedKeyFile"), t.SharedKeyFile, "set only one of sharedKeySecretRef and sharedKeyFile"))
		}
	} else {
		if t.SharedKeySecretRef != nil {
			errs = append(errs, field.Forbidden(tp.Child("sharedKeySecretRef"), "only allowed when trustProtocol type is SharedKey"))
		}
		if t.SharedKeyFile != "" {
			errs = append(errs, field.Forbidden(tp.Child("sharedKeyFile"), "only allowed when trustProtocol type is SharedKey"))
		}
	}
	if ref := t.SharedKeySecretRef; ref != nil {
		rp := tp.Child("sharedKeySecretRef")
		errs = append(errs, dns1123Label(rp.Child("namespace"), ref.Namespace)...)
		errs = append(errs, dns1123Subdomain(rp.Child("name"), ref.Name)...)
		for _, msg := range validation.IsConfigMapKey(ref.Key) {
			errs = append(errs, field.Invalid(rp.Child("key"), ref.Key, msg))
		}
	}
	return errs
}

func validateRules(p *field.Path, rules []PeerRule) field.ErrorList {
	var errs field.ErrorList
	for i := range rules {
		errs = append(errs, validateRule(p.Index(i), &rules[i])...)
	}
	return errs
}

func validateRule(p *field.Path, r *PeerRule) field.ErrorList {
	var errs field.ErrorList
	switch {
	case r.Identifier == "" && r.CIDR == "":
		errs = append(errs, field.Required(p, "must set exactly one of identifier or cidr"))
	case r.Identifier != "" && r.CIDR != "":
		errs = append(errs, field.Invalid(p, r.Identifier, "must set exactly one of identifier or cidr, not both"))
	}
	if r.Identifier != "" && !IsValidIdentifier(string(r.Identifier)) {
		errs = append(errs, field.Invalid(p.Child("identifier"), r.Identifier, msgBadIdentifer))
	}
	var outer netip.Prefix
	if r.CIDR != "" {
		var cidrErrs field.ErrorList
		outer, cidrErrs = parseCIDR(p.Child("cidr"), r.CIDR)
		errs = append(errs, cidrErrs...)
	}
	if len(r.Except) > 0 && r.CIDR == "" {
		errs = append(errs, field.Forbidden(p.Child("except"), "except is only allowed together with cidr"))
	}
	if len(r.Except) > maxExcept {
		errs = append(errs, field.TooMany(p.Child("except"), len(r.Except), maxExcept))
	}
	for j, e := range r.Except {
		ep := p.Child("except").Index(j)
		inner, exceptErrs := parseCIDR(ep, e)
		errs = append(errs, exceptErrs...)
		if len(exceptErrs) == 0 && outer.IsValid() && (!outer.Contains(inner.Addr()) || inner.Bits() <= outer.Bits()) {
			errs = append(errs, field.Invalid(ep, e, fmt.Sprintf("must be a CIDR strictly inside cidr %s", r.CIDR)))
		}
	}
	if s := r.Source; s != nil {
		sp := p.Child("source")
		errs = append(errs, enum(sp.Child("kind"), s.Kind, SourceKindPeerTrustPolicy, SourceKindPeerAllowlist, SourceKindFile)...)
		for _, f := range []struct{ name, value string }{
			{"namespace", s.Namespace}, {"name", s.Name}, {"entry", s.Entry}, {"pod", s.Pod},
		} {
			if len(f.value) > maxSourceFieldLength {
				errs = append(errs, field.TooLong(sp.Child(f.name), "", maxSourceFieldLength))
			}
		}
	}
	return errs
}

// parseCIDR parses s as the CRD's CIDR type does: an IPv4 or IPv6 prefix,
// no IPv4-mapped IPv6, no zone, no bits set after the prefix length.
func parseCIDR(p *field.Path, s CIDR) (netip.Prefix, field.ErrorList) {
	prefix, err := netip.ParsePrefix(string(s))
	if err != nil || prefix.Addr().Is4In6() {
		return netip.Prefix{}, field.ErrorList{field.Invalid(p, s, msgBadCIDR)}
	}
	if m := prefix.Masked(); m != prefix {
		return netip.Prefix{}, field.ErrorList{field.Invalid(p, s,
			fmt.Sprintf("must not have bits set after the prefix length: write %s, not %s", m, s))}
	}
	return prefix, nil
}

func validateLimits(p *field.Path, l *NodeLimits) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, int32Range(p.Child("maxInboundPeers"), l.MaxInboundPeers, 0, MaxPeersLimit)...)
	errs = append(errs, int32Range(p.Child("maxOutboundPeers"), l.MaxOutboundPeers, 0, MaxPeersLimit)...)
	if ptr.Deref(l.MaxInboundPeers, -1) == 0 && ptr.Deref(l.MaxOutboundPeers, -1) == 0 {
		errs = append(errs, field.Invalid(p, "0, 0", msgNoChannels))
	}
	errs = append(errs, durationRange(p.Child("handshakeTimeout"), l.HandshakeTimeout, MaxHandshakeTimeout)...)
	errs = append(errs, durationRange(p.Child("idleTimeout"), l.IdleTimeout, MaxIdleTimeout)...)
	errs = append(errs, int32Range(p.Child("maxFrameSize"), l.MaxFrameSize, MinFrameSizeLimit, MaxFrameSizeLimit)...)
	errs = append(errs, int32Range(p.Child("sendQueueLength"), l.SendQueueLength, 1, MaxSendQueueLengthLimit)...)
	errs = append(errs, durationRange(p.Child("keepaliveInterval"), l.KeepaliveInterval, MaxIdleTimeout)...)
	// A keepalive no more frequent than the idle timeout would let healthy
	// idle channels time out between two pings.
	if k, i := l.KeepaliveInterval, l.IdleTimeout; k != nil && i != nil && k.Duration >= i.Duration {
		errs = append(errs, field.Invalid(p.Child("keepaliveInterval"), k.Duration.String(),
			fmt.Sprintf("must be shorter than idleTimeout (%s)", i.Duration)))
	}
	return errs
}

func validateSeeds(p *field.Path, seeds []string) field.ErrorList {
	var errs field.ErrorList
	for i, s := range seeds {
		sp := p.Index(i)
		if len(s) > maxSeedLength {
			errs = append(errs, field.TooLong(sp, "", maxSeedLength))
			continue
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			errs = append(errs, field.Invalid(sp, s, "must be host:port"))
			continue
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			errs = append(errs, field.Invalid(sp, s, "port must be a number from 1 to 65535"))
		}
	}
	return errs
}

func enum[T ~string](p *field.Path, v T, allowed ...T) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "call Default first")}
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return field.ErrorList{field.NotSupported(p, v, names)}
}

func int32Range(p *field.Path, v *int32, lo, hi int32) field.ErrorList {
	switch {
	case v == nil:
		return field.ErrorList{field.Required(p, "call Default first")}
	case *v < lo || *v > hi:
		return field.ErrorList{field.Invalid(p, *v, fmt.Sprintf("must be from %d to %d", lo, hi))}
	}
	return nil
}

func durationRange(p *field.Path, d *metav1.Duration, hi time.Duration) field.ErrorList {
	switch {
	case d == nil:
		return field.ErrorList{field.Required(p, "call Default first")}
	case d.Duration <= 0:
		return field.ErrorList{field.Invalid(p, d.Duration.String(), "must be more than 0")}
	case d.Duration > hi:
		return field.ErrorList{field.Invalid(p, d.Duration.String(), fmt.Sprintf("must be at most %s", hi))}
	}
	return nil
}

func dns1123Label(p *field.Path, v string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

func dns1123Subdomain(p *field.Path, v string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

func isSHA256Hex(s string) bool {
	if len(s) != 2*32 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
