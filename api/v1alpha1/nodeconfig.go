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
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"k8s.io/utils/ptr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// ErrInvalidConfiguration is wrapped by every error of
// ParsePeerNodeConfiguration and Validate.
var ErrInvalidConfiguration = errors.New("invalid PeerNodeConfiguration")

// DefaultPeerNodeConfiguration returns the configuration of a node that was
// given none: the built-in policy, no allowlist, no block list.
func DefaultPeerNodeConfiguration() *PeerNodeConfiguration {
	c := &PeerNodeConfiguration{}
	c.Default()
	return c
}

// ParsePeerNodeConfiguration decodes a YAML or JSON document strictly
// (unknown or duplicate fields are errors naming the field, and field names
// are case-sensitive), then defaults and validates it. An empty document is
// the default configuration.
func ParsePeerNodeConfiguration(data []byte) (*PeerNodeConfiguration, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfiguration, err)
	}
	c := &PeerNodeConfiguration{}
	strictErrs, err := kjson.UnmarshalStrict(js, c)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfiguration, err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfiguration, errors.Join(strictErrs...))
	}
	c.Default()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Marshal returns the canonical YAML of the defaulted and normalized
// configuration (keys sorted), which ParsePeerNodeConfiguration reads back
// to the same Hash. The receiver is not modified.
func (c *PeerNodeConfiguration) Marshal() ([]byte, error) {
	cp := c.DeepCopy()
	cp.Default()
	return yaml.Marshal(cp)
}

// Default sets apiVersion, kind and every unset field to its default,
// normalizes the configuration, and sets generation to Hash when empty.
// Callers that change a configuration after Default must reset generation
// (c.Generation = c.Hash()).
func (c *PeerNodeConfiguration) Default() {
	c.applyDefaults()
	if c.Generation == "" {
		c.Generation = c.Hash()
	}
}

// Hash returns the content hash of the configuration: the lower-case hex
// SHA-256 of the JSON encoding of a defaulted and normalized copy with
// generation cleared. Two configurations that mean the same (rules in any
// order, defaults spelled out or not, "5m" or "300s") have the same hash.
func (c *PeerNodeConfiguration) Hash() string {
	cp := c.DeepCopy()
	cp.Generation = ""
	cp.applyDefaults()
	// encoding/json writes struct fields in declaration order and holds no
	// maps here, so the encoding is canonical.
	b, err := json.Marshal(cp)
	if err != nil {
		// Only strings, numbers, booleans and durations: cannot fail.
		panic(fmt.Sprintf("encoding PeerNodeConfiguration: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (c *PeerNodeConfiguration) applyDefaults() {
	if c.APIVersion == "" {
		c.APIVersion = GroupVersion.String()
	}
	if c.Kind == "" {
		c.Kind = PeerNodeConfigurationKind
	}
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	in := &c.Incoming
	if in.Placement == "" {
		in.Placement = DefaultPlacement
	}
	defaultBool(&in.AllowDefaultCommunication, DefaultAllowDefaultCommunication)
	defaultBool(&in.AllowEnhancedPacketExchange, DefaultAllowEnhancedPacketExchange)
	defaultBool(&in.RunDefaultTrustProtocol, DefaultRunDefaultTrustProtocol)
	if in.TrustProtocol.Type == "" {
		in.TrustProtocol.Type = DefaultTrustProtocolType
	}
	if ref := in.TrustProtocol.SharedKeySecretRef; ref != nil && ref.Key == "" {
		ref.Key = DefaultSharedKeySecretKey
	}
	l := &c.Limits
	l.Default()
	if l.MaxFrameSize == nil {
		l.MaxFrameSize = ptr.To(DefaultMaxFrameSize)
	}
	if l.SendQueueLength == nil {
		l.SendQueueLength = ptr.To(DefaultSendQueueLength)
	}
	defaultDuration(&l.KeepaliveInterval, DefaultKeepaliveInterval)
	// Allowed rules only mean something with the allowlist on.
	if len(c.Allowed) > 0 {
		c.AllowlistActive = true
	}
	c.Normalize()
}

// Normalize puts the configuration in canonical form without changing its
// meaning: CIDRs in canonical text (lower-case, compressed IPv6), except
// lists and rules sorted with exact duplicates removed, seeds sorted and
// deduplicated, and an empty discovery section dropped. Values that do not
// parse are left as they are for Validate to report.
func (c *PeerNodeConfiguration) Normalize() {
	c.Blocked = normalizeRules(c.Blocked)
	c.Allowed = normalizeRules(c.Allowed)
	if d := c.Discovery; d != nil {
		slices.Sort(d.Seeds)
		d.Seeds = slices.Compact(d.Seeds)
		if len(d.Seeds) == 0 {
			c.Discovery = nil
		}
	}
}

func normalizeRules(rules []PeerRule) []PeerRule {
	if len(rules) == 0 {
		return nil
	}
	for i := range rules {
		r := &rules[i]
		r.CIDR = canonicalCIDR(r.CIDR)
		if len(r.Except) == 0 {
			r.Except = nil
			continue
		}
		for j := range r.Except {
			r.Except[j] = canonicalCIDR(r.Except[j])
		}
		slices.Sort(r.Except)
		r.Except = slices.Compact(r.Except)
	}
	slices.SortFunc(rules, compareRules)
	return slices.CompactFunc(rules, func(a, b PeerRule) bool { return compareRules(a, b) == 0 })
}

func canonicalCIDR(s CIDR) CIDR {
	if p, err := netip.ParsePrefix(string(s)); err == nil {
		return CIDR(p.String())
	}
	return s
}

// compareRules orders rules by matcher, then by source.
func compareRules(a, b PeerRule) int {
	if c := cmp.Or(
		cmp.Compare(a.Identifier, b.Identifier),
		cmp.Compare(a.CIDR, b.CIDR),
		slices.Compare(a.Except, b.Except),
	); c != 0 {
		return c
	}
	switch {
	case a.Source == nil && b.Source == nil:
		return 0
	case a.Source == nil:
		return -1
	case b.Source == nil:
		return 1
	}
	sa, sb := a.Source, b.Source
	return cmp.Or(
		cmp.Compare(sa.Kind, sb.Kind),
		cmp.Compare(sa.Namespace, sb.Namespace),
		cmp.Compare(sa.Name, sb.Name),
		cmp.Compare(sa.Entry, sb.Entry),
		cmp.Compare(sa.Pod, sb.Pod),
	)
}

// String names the rule's origin for logs and denial explanations, e.g.
// "PeerAllowlist team-a/web entry 'frontend' (pod team-a/frontend-0)".
func (s *RuleSource) String() string {
	if s == nil {
		return "unattributed rule"
	}
	out := s.Kind
	if s.Name != "" {
		out += " " + s.Namespace + "/" + s.Name
	}
	if s.Entry != "" {
		out += " entry '" + s.Entry + "'"
	}
	if s.Pod != "" {
		out += " (pod " + s.Pod + ")"
	}
	return out
}
