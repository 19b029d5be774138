package trust_test

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/peernode/trust"
)

func TestPolicyFromConfig(t *testing.T) {
	ptpSource := func(entry string) *v1alpha1.RuleSource {
		return &v1alpha1.RuleSource{Kind: v1alpha1.SourceKindPeerTrustPolicy, Namespace: "ns", Name: "p", Entry: entry}
	}
	tests := []struct {
		name string
		cfg  v1alpha1.PeerNodeConfiguration
		want trust.Policy
	}{
		{
			name: "empty configuration gets P2PNet defaults",
			want: trust.Policy{
				PolicySource: "built-in defaults", Mode: trust.Enforce,
				AllowDefaultCommunication: true, RunTrustProtocol: true, TrustProtocol: "ping",
			},
		},
		{
			name: "every field",
			cfg: v1alpha1.PeerNodeConfiguration{
				Generation: "sha256:abc", MeshName: "prod",
				PolicySource: &v1alpha1.PolicyReference{Namespace: "ns", Name: "p"},
				Mode:         v1alpha1.PolicyModeAudit,
				Incoming: v1alpha1.NodeIncoming{
					AllowDefaultCommunication:   ptr.To(false),
					AllowEnhancedPacketExchange: ptr.To(true),
					RunDefaultTrustProtocol:     ptr.To(false),
					TrustProtocol:               v1alpha1.NodeTrustProtocol{Type: v1alpha1.TrustProtocolNone},
				},
				Blocked: []v1alpha1.PeerRule{
					{CIDR: "10.0.0.0/8", Except: []v1alpha1.CIDR{"10.1.0.0/16"}, Source: ptpSource("blocked.cidrs[0]")},
					{Identifier: "bad-node", Source: ptpSource("blocked.identifiers[0]")},
					{CIDR: "fd00::/8"},
				},
				AllowlistActive: true,
				Allowed: []v1alpha1.PeerRule{
					{Identifier: "6b1c7d39-8d1f-5a3e-9c57-2f5e1c0d8a11", Source: &v1alpha1.RuleSource{
						Kind: v1alpha1.SourceKindPeerAllowlist, Namespace: "team", Name: "web", Entry: "frontend", Pod: "team/web-0"}},
					{CIDR: "10.1.2.3/32", Source: &v1alpha1.RuleSource{
						Kind: v1alpha1.SourceKindPeerAllowlist, Namespace: "team", Name: "web", Entry: "peers[1]"}},
					{CIDR: "192.168.0.0/16", Source: &v1alpha1.RuleSource{Kind: v1alpha1.SourceKindFile}},
				},
			},
			want: trust.Policy{
				Mesh: "prod", Generation: "sha256:abc", PolicySource: "PeerTrustPolicy ns/p", Mode: trust.Audit,
				AllowDefaultCommunication: false, AllowEnhancedPacketExchange: true,
				RunTrustProtocol: false, TrustProtocol: "none",
				Blocked: []trust.Rule{
					{Prefix: mustPrefix("10.0.0.0/8"), Except: []netip.Prefix{mustPrefix("10.1.0.0/16")}, Source: "PeerTrustPolicy ns/p blocked.cidrs[0]"},
					{Identifier: "bad-node", Source: "PeerTrustPolicy ns/p blocked.identifiers[0]"},
					{Prefix: mustPrefix("fd00::/8"), Source: "configuration blocked[2]"},
				},
				AllowlistActive: true,
				Allowed: []trust.Rule{
					{Identifier: "6b1c7d39-8d1f-5a3e-9c57-2f5e1c0d8a11", Source: `PeerAllowlist team/web entry "frontend" pod team/web-0`},
					{Prefix: mustPrefix("10.1.2.3/32"), Source: "PeerAllowlist team/web peers[1]"},
					{Prefix: mustPrefix("192.168.0.0/16"), Source: "File allowed[2]"},
				},
			},
		},
		{
			name: "allowed rules activate the allowlist",
			cfg:  v1alpha1.PeerNodeConfiguration{Allowed: []v1alpha1.PeerRule{{Identifier: "n1"}}},
			want: trust.Policy{
				PolicySource: "built-in defaults", AllowDefaultCommunication: true, RunTrustProtocol: true, TrustProtocol: "ping",
				AllowlistActive: true, Allowed: []trust.Rule{{Identifier: "n1", Source: "configuration allowed[0]"}},
			},
		},
		{
			name: "active allowlist without entries",
			cfg:  v1alpha1.PeerNodeConfiguration{AllowlistActive: true},
			want: trust.Policy{
				PolicySource: "built-in defaults", AllowDefaultCommunication: true, RunTrustProtocol: true, TrustProtocol: "ping",
				AllowlistActive: true,
			},
		},
		{
			name: "SharedKey that does not run",
			cfg: v1alpha1.PeerNodeConfiguration{Incoming: v1alpha1.NodeIncoming{
				RunDefaultTrustProtocol: ptr.To(false),
				TrustProtocol:           v1alpha1.NodeTrustProtocol{Type: v1alpha1.TrustProtocolSharedKey},
			}},
			want: trust.Policy{
				PolicySource: "built-in defaults", AllowDefaultCommunication: true, TrustProtocol: "sharedKey",
			},
		},
		{
			// The key is not in the policy: the node's resolver has it.
			name: "SharedKey runs",
			cfg: v1alpha1.PeerNodeConfiguration{Incoming: v1alpha1.NodeIncoming{
				TrustProtocol: v1alpha1.NodeTrustProtocol{Type: v1alpha1.TrustProtocolSharedKey, SharedKeyFile: "/etc/peermesh/key"},
			}},
			want: trust.Policy{
				PolicySource: "built-in defaults", AllowDefaultCommunication: true, RunTrustProtocol: true, TrustProtocol: "sharedKey",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := trust.PolicyFromConfig(&tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("PolicyFromConfig =\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}
}

func TestPolicyFromConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		cfg    *v1alpha1.PeerNodeConfiguration
		want   string
		wantIs error
	}{
		{"nil", nil, "no configuration", nil},
		{"bad mode", &v1alpha1.PeerNodeConfiguration{Mode: "Bogus"}, `mode "Bogus"`, nil},
		{"unparsable cidr", blocked(v1alpha1.PeerRule{CIDR: "10.0.0.0/33"}), "blocked[0]: cidr", nil},
		{"host bits", blocked(v1alpha1.PeerRule{CIDR: "10.0.0.1/8"}), "write 10.0.0.0/8", nil},
		{"ipv4-mapped", blocked(v1alpha1.PeerRule{CIDR: "::ffff:10.0.0.0/104"}), "IPv4-mapped", nil},
		{"except outside", blocked(v1alpha1.PeerRule{CIDR: "10.0.0.0/8", Except: []v1alpha1.CIDR{"11.0.0.0/16"}}), "not strictly inside", nil},
		{"except equal", blocked(v1alpha1.PeerRule{CIDR: "10.0.0.0/8", Except: []v1alpha1.CIDR{"10.0.0.0/8"}}), "not strictly inside", nil},
		{"except other family", blocked(v1alpha1.PeerRule{CIDR: "10.0.0.0/8", Except: []v1alpha1.CIDR{"fd00::/16"}}), "different address families", nil},
		{"bad except", blocked(v1alpha1.PeerRule{CIDR: "10.0.0.0/8", Except: []v1alpha1.CIDR{"x"}}), "except[0]", nil},
		{"both", blocked(v1alpha1.PeerRule{CIDR: "10.0.0.0/8", Identifier: "a"}), "not both", nil},
		{"neither", &v1alpha1.PeerNodeConfiguration{Allowed: []v1alpha1.PeerRule{{}}}, "allowed[0]: set exactly one", nil},
		{"except with identifier", blocked(v1alpha1.PeerRule{Identifier: "a", Except: []v1alpha1.CIDR{"10.0.0.0/8"}}), "except is only allowed with cidr", nil},
		{"bad identifier", blocked(v1alpha1.PeerRule{Identifier: "-a b"}), "not a valid node identifier", nil},
		{"run with None", &v1alpha1.PeerNodeConfiguration{Incoming: v1alpha1.NodeIncoming{
			TrustProtocol: v1alpha1.NodeTrustProtocol{Type: v1alpha1.TrustProtocolNone}}}, "runDefaultTrustProtocol is true but trustProtocol.type is None", nil},
		{"all switches off", &v1alpha1.PeerNodeConfiguration{Incoming: v1alpha1.NodeIncoming{
			AllowDefaultCommunication: ptr.To(false), AllowEnhancedPacketExchange: ptr.To(false), RunDefaultTrustProtocol: ptr.To(false)}}, "all false", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := trust.PolicyFromConfig(tt.cfg)
			if err == nil {
				t.Fatalf("PolicyFromConfig = %+v, want an error", p)
			}
			if !errors.Is(err, trust.ErrInvalidPolicy) {
				t.Errorf("error %v does not wrap ErrInvalidPolicy", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func blocked(r v1alpha1.PeerRule) *v1alpha1.PeerNodeConfiguration {
	return &v1alpha1.PeerNodeConfiguration{Blocked: []v1alpha1.PeerRule{r}}
}
