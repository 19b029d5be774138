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
	"net/netip"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestConfigurationForPolicyWithoutPolicyIsDefault(t *testing.T) {
	c := ConfigurationForPolicy("prod", nil)
	c.Default()
	want := DefaultPeerNodeConfiguration()
	want.MeshName = "prod"
	want.Generation = want.Hash()
	if !reflect.DeepEqual(c, want) {
		t.Errorf("mesh without policy:\n%+v\nwant\n%+v", c, want)
	}
}

// A policy that sets nothing compiles to the node defaults: the policy
// defaults (DefaultPolicySpec) and the node defaults agree.
func TestDefaultPolicySpecMatchesNodeDefaults(t *testing.T) {
	p := &PeerTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Spec: DefaultPolicySpec("prod")}
	c := ConfigurationForPolicy("prod", p)
	c.Default()
	want := DefaultPeerNodeConfiguration()
	want.MeshName = "prod"
	want.PolicySource = &PolicyReference{Namespace: "ns", Name: "p"}
	want.Generation = want.Hash()
	if !reflect.DeepEqual(c, want) {
		t.Errorf("default policy:\n%+v\nwant\n%+v", c, want)
	}
}

func TestConfigurationForPolicy(t *testing.T) {
	p := &PeerTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "mesh-system", Name: "strict"},
		Spec: PeerTrustPolicySpec{
			MeshName: "prod",
			Mode:     PolicyModeAudit,
			Incoming: IncomingPolicy{
				AllowDefaultCommunication: ptr.To(false),
				TrustProtocol: TrustProtocol{
					Type:               TrustProtocolSharedKey,
					SharedKeySecretRef: &SecretKeyReference{Name: "mesh-key"},
				},
			},
			Blocked: &BlockedPeers{CIDRs: []CIDR{"192.168.0.0/16"}, Identifiers: []PeerIdentifier{"evil"}},
			Limits:  PeerLimits{MaxOutboundPeers: ptr.To[int32](8)},
		},
	}
	c := ConfigurationForPolicy("prod", p)
	c.Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("compiled policy is invalid: %v", err)
	}
	if got, want := c.Incoming.TrustProtocol.SharedKeySecretRef, (&NamespacedSecretKeyReference{Namespace: "mesh-system", Name: "mesh-key", Key: "key"}); !reflect.DeepEqual(got, want) {
		t.Errorf("secret reference = %+v, want %+v", got, want)
	}
	if c.Mode != PolicyModeAudit || *c.Incoming.AllowDefaultCommunication || *c.Limits.MaxOutboundPeers != 8 || *c.Limits.MaxInboundPeers != DefaultMaxInboundPeers {
		t.Errorf("policy fields not carried over: %+v", c)
	}
	wantBlocked := []string{
		"PeerTrustPolicy mesh-system/strict entry 'blocked.cidrs[0]'",
		"PeerTrustPolicy mesh-system/strict entry 'blocked.identifiers[0]'",
	}
	for i, r := range c.Blocked {
		if got := r.Source.String(); got != wantBlocked[i] {
			t.Errorf("blocked[%d] source = %q, want %q", i, got, wantBlocked[i])
		}
	}
	if p.Spec.Incoming.Placement != "" {
		t.Error("ConfigurationForPolicy defaulted the caller's policy")
	}
}

func TestAllowRules(t *testing.T) {
	al := &PeerAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web"},
		Spec: PeerAllowlistSpec{MeshName: "prod", Peers: []PeerAllowlistEntry{
			{Name: "gateway", Identifier: "gw-1"},
			{CIDR: "10.0.0.0/8", Except: []CIDR{"10.1.0.0/16"}},
			{Name: "frontend", PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "frontend"}}},
		}},
	}
	static := StaticAllowRules(al)
	if len(static) != 2 {
		t.Fatalf("StaticAllowRules returned %d rules, want 2 (podSelector entries are resolved by the operator)", len(static))
	}
	if got := static[0].Source.String(); got != "PeerAllowlist team-a/web entry 'gateway'" {
		t.Errorf("named entry source = %q", got)
	}
	if got := static[1].Source.String(); got != "PeerAllowlist team-a/web entry 'peers[1]'" {
		t.Errorf("unnamed entry source = %q", got)
	}

	pod := PodAllowRules(al, 2, "team-a", "frontend-0", []netip.Addr{
		netip.MustParseAddr("10.244.1.7"),
		netip.MustParseAddr("::ffff:10.244.1.8"),
		netip.MustParseAddr("fd00::7"),
	})
	want := []PeerRule{
		{Identifier: PeerIdentifier(NodeIdentifierForPod("team-a", "frontend-0"))},
		{CIDR: "10.244.1.7/32"},
		{CIDR: "10.244.1.8/32"},
		{CIDR: "fd00::7/128"},
	}
	if len(pod) != len(want) {
		t.Fatalf("PodAllowRules = %+v, want %d rules", pod, len(want))
	}
	for i := range want {
		if pod[i].Identifier != want[i].Identifier || pod[i].CIDR != want[i].CIDR {
			t.Errorf("rule %d = %+v, want matcher %+v", i, pod[i], want[i])
		}
		if got := pod[i].Source.String(); got != "PeerAllowlist team-a/web entry 'frontend' (pod team-a/frontend-0)" {
			t.Errorf("rule %d source = %q", i, got)
		}
	}

	c := ConfigurationForPolicy("prod", nil)
	c.Allowed = append(static, pod...)
	c.Default()
	if err := c.Validate(); err != nil {
		t.Errorf("compiled allowlist is invalid: %v", err)
	}
}

func TestRuleSourceString(t *testing.T) {
	var nilSource *RuleSource
	for _, tt := range []struct {
		s    *RuleSource
		want string
	}{
		{nilSource, "unattributed rule"},
		{&RuleSource{Kind: SourceKindFile, Entry: "blocked[0]"}, "File entry 'blocked[0]'"},
	} {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
