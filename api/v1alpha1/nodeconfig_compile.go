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
	"net/netip"
)

// This file maps the custom resources onto PeerNodeConfiguration pieces.
// Choosing the policy in force and resolving pod selectors need the API and
// belong to the operator; these pure mappings live beside the types so that
// provenance is spelled the same everywhere.

// ConfigurationForPolicy returns the configuration of mesh meshName under
// policy (nil: the built-in defaults), without allowlist rules. The caller
// appends allowed rules, sets AllowlistActive when any allowlist applies,
// then calls Default, which also computes the generation.
func ConfigurationForPolicy(meshName string, policy *PeerTrustPolicy) *PeerNodeConfiguration {
	c := &PeerNodeConfiguration{MeshName: meshName}
	if policy == nil {
		return c
	}
	spec := policy.Spec.DeepCopy()
	spec.Default()
	c.PolicySource = &PolicyReference{Namespace: policy.Namespace, Name: policy.Name}
	c.Mode = spec.Mode
	in := spec.Incoming
	c.Incoming = NodeIncoming{
		Placement:                   in.Placement,
		AllowDefaultCommunication:   in.AllowDefaultCommunication,
		AllowEnhancedPacketExchange: in.AllowEnhancedPacketExchange,
		RunDefaultTrustProtocol:     in.RunDefaultTrustProtocol,
		TrustProtocol:               NodeTrustProtocol{Type: in.TrustProtocol.Type},
	}
	if ref := in.TrustProtocol.SharedKeySecretRef; ref != nil {
		// The Secret is in the policy's namespace; the node resolves it.
		c.Incoming.TrustProtocol.SharedKeySecretRef = &NamespacedSecretKeyReference{
			Namespace: policy.Namespace, Name: ref.Name, Key: ref.Key,
		}
	}
	c.Limits = NodeLimits{PeerLimits: spec.Limits}
	if b := spec.Blocked; b != nil {
		for i, cidr := range b.CIDRs {
			c.Blocked = append(c.Blocked, PeerRule{CIDR: cidr,
				Source: policySource(policy, fmt.Sprintf("blocked.cidrs[%d]", i))})
		}
		for i, id := range b.Identifiers {
			c.Blocked = append(c.Blocked, PeerRule{Identifier: id,
				Source: policySource(policy, fmt.Sprintf("blocked.identifiers[%d]", i))})
		}
	}
	return c
}

func policySource(p *PeerTrustPolicy, entry string) *RuleSource {
	return &RuleSource{Kind: SourceKindPeerTrustPolicy, Namespace: p.Namespace, Name: p.Name, Entry: entry}
}

// EntryName returns the name of entry i of spec.peers, or its path
// "peers[i]" when it has none.
func (al *PeerAllowlist) EntryName(i int) string {
	if n := al.Spec.Peers[i].Name; n != "" {
		return n
	}
	return fmt.Sprintf("peers[%d]", i)
}

// EntrySource returns the provenance of a rule compiled from entry i of
// spec.peers; pod is "namespace/name" of the pod a podSelector matched, or
// empty.
func (al *PeerAllowlist) EntrySource(i int, pod string) *RuleSource {
	return &RuleSource{Kind: SourceKindPeerAllowlist, Namespace: al.Namespace, Name: al.Name, Entry: al.EntryName(i), Pod: pod}
}

// StaticAllowRules returns the rules of al's identifier and cidr entries.
// podSelector entries are skipped: the operator resolves them with
// PodAllowRules.
func StaticAllowRules(al *PeerAllowlist) []PeerRule {
	var rules []PeerRule
	for i, e := range al.Spec.Peers {
		switch {
		case e.Identifier != "":
			rules = append(rules, PeerRule{Identifier: e.Identifier, Source: al.EntrySource(i, "")})
		case e.CIDR != "":
			rules = append(rules, PeerRule{CIDR: e.CIDR, Except: append([]CIDR(nil), e.Except...), Source: al.EntrySource(i, "")})
		}
	}
	return rules
}

// PodAllowRules returns the rules that allow pod podNamespace/podName,
// matched by the podSelector of entry i of al: one for its node identifier
// (NodeIdentifierForPod) and one /32 or /128 CIDR per pod IP, so the pod is
// recognised by identity or address.
func PodAllowRules(al *PeerAllowlist, i int, podNamespace, podName string, podIPs []netip.Addr) []PeerRule {
	pod := podNamespace + "/" + podName
	rules := []PeerRule{{
		Identifier: PeerIdentifier(NodeIdentifierForPod(podNamespace, podName)),
		Source:     al.EntrySource(i, pod),
	}}
	for _, ip := range podIPs {
		ip = ip.Unmap() // an IPv4-mapped address is an IPv4 peer
		if !ip.IsValid() {
			continue
		}
		rules = append(rules, PeerRule{
			CIDR:   CIDR(netip.PrefixFrom(ip.WithZone(""), ip.BitLen()).String()),
			Source: al.EntrySource(i, pod),
		})
	}
	return rules
}
