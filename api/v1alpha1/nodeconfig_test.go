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
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/utils/ptr"
)

// validConfig returns a configuration that uses every section and passes
// Validate once defaulted.
func validConfig() *PeerNodeConfiguration {
	c := &PeerNodeConfiguration{
		MeshName:     "prod",
		PolicySource: &PolicyReference{Namespace: "mesh-system", Name: "default"},
		Mode:         PolicyModeAudit,
		Incoming: NodeIncoming{
			Placement: IncomingPlacementQueueAndEvent,
			TrustProtocol: NodeTrustProtocol{
				Type:               TrustProtocolSharedKey,
				SharedKeySecretRef: &NamespacedSecretKeyReference{Namespace: "mesh-system", Name: "mesh-key"},
			},
		},
		Blocked: []PeerRule{
			{CIDR: "192.168.0.0/16", Source: &RuleSource{Kind: SourceKindPeerTrustPolicy, Namespace: "mesh-system", Name: "default", Entry: "blocked.cidrs[0]"}},
			{Identifier: "evil-node", Source: &RuleSource{Kind: SourceKindPeerTrustPolicy, Namespace: "mesh-system", Name: "default", Entry: "blocked.identifiers[0]"}},
		},
		Allowed: []PeerRule{
			{CIDR: "10.0.0.0/8", Except: []CIDR{"10.9.0.0/16", "10.1.0.0/16"}, Source: &RuleSource{Kind: SourceKindPeerAllowlist, Namespace: "team-a", Name: "web", Entry: "office"}},
			{Identifier: "4b0c5e1e-8f1a-5c36-9d2f-0d6c3a3f0b11", Source: &RuleSource{Kind: SourceKindPeerAllowlist, Namespace: "team-a", Name: "web", Entry: "frontend", Pod: "team-a/frontend-0"}},
			{CIDR: "fd00::1/128"},
		},
		Limits: NodeLimits{
			PeerLimits: PeerLimits{
				MaxInboundPeers: ptr.To[int32](0),
				IdleTimeout:     &metav1.Duration{Duration: time.Minute},
			},
			KeepaliveInterval: &metav1.Duration{Duration: 20 * time.Second},
		},
		Discovery: &NodeDiscovery{Seeds: []string{"peer-b.mesh:7946", "[fd00::2]:7946"}},
	}
	c.Default()
	return c
}

func TestDefaultPeerNodeConfiguration(t *testing.T) {
	c := DefaultPeerNodeConfiguration()
	if err := c.Validate(); err != nil {
		t.Fatalf("default configuration is invalid: %v", err)
	}
	want := &PeerNodeConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "p2p.peermesh.io/v1alpha1", Kind: "PeerNodeConfiguration"},
		Mode:     PolicyModeEnforce,
		Incoming: NodeIncoming{
			Placement:                   IncomingPlacementEvent,
			AllowDefaultCommunication:   ptr.To(true),
			AllowEnhancedPacketExchange: ptr.To(false),
			RunDefaultTrustProtocol:     ptr.To(true),
			TrustProtocol:               NodeTrustProtocol{Type: TrustProtocolPing},
		},
		Limits: NodeLimits{
			PeerLimits: PeerLimits{
				MaxInboundPeers:  ptr.To[int32](256),
				MaxOutboundPeers: ptr.To[int32](256),
				HandshakeTimeout: &metav1.Duration{Duration: 10 * time.Second},
				IdleTimeout:      &metav1.Duration{Duration: 5 * time.Minute},
			},
			MaxFrameSize:      ptr.To[int32](4 << 20),
			SendQueueLength:   ptr.To[int32](256),
			KeepaliveInterval: &metav1.Duration{Duration: 30 * time.Second},
		},
	}
	want.Generation = want.Hash()
	if !reflect.DeepEqual(c, want) {
		t.Errorf("DefaultPeerNodeConfiguration() =\n%+v\nwant\n%+v", c, want)
	}
	if c.Generation != c.Hash() || len(c.Generation) != 64 {
		t.Errorf("generation %q is not the content hash %q", c.Generation, c.Hash())
	}
}

func TestDefaultKeepsSetValues(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if c.Mode != PolicyModeAudit || *c.Limits.MaxInboundPeers != 0 || c.Limits.IdleTimeout.Duration != time.Minute {
		t.Errorf("Default overwrote set values: mode %q, maxInboundPeers %d, idleTimeout %s",
			c.Mode, *c.Limits.MaxInboundPeers, c.Limits.IdleTimeout.Duration)
	}
	if got := c.Incoming.TrustProtocol.SharedKeySecretRef.Key; got != "key" {
		t.Errorf("sharedKeySecretRef.key defaulted to %q, want %q", got, "key")
	}
	if !c.AllowlistActive {
		t.Error("allowlistActive is not implied by allowed rules")
	}
	// Normalize sorted the except list and canonicalised the IPv6 text.
	if got := c.Allowed[0].Except; !reflect.DeepEqual(got, []CIDR{"10.1.0.0/16", "10.9.0.0/16"}) {
		t.Errorf("except not sorted: %v", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*PeerNodeConfiguration)
		want   []string // substrings of the error, each naming a field path
	}{
		{"valid", func(*PeerNodeConfiguration) {}, nil},
		{"wrong apiVersion", func(c *PeerNodeConfiguration) { c.APIVersion = "p2p.peermesh.io/v1" },
			[]string{`apiVersion: Unsupported value: "p2p.peermesh.io/v1"`}},
		{"wrong kind", func(c *PeerNodeConfiguration) { c.Kind = "PeerTrustPolicy" },
			[]string{`kind: Unsupported value: "PeerTrustPolicy"`}},
		{"generation not a hash", func(c *PeerNodeConfiguration) { c.Generation = "42" },
			[]string{`generation: Invalid value: "42"`}},
		{"mesh name not a label", func(c *PeerNodeConfiguration) { c.MeshName = "Prod_Mesh" },
			[]string{`meshName: Invalid value: "Prod_Mesh"`}},
		{"policy source name", func(c *PeerNodeConfiguration) { c.PolicySource.Name = "" },
			[]string{`policySource.name: Invalid value: ""`}},
		{"unknown mode", func(c *PeerNodeConfiguration) { c.Mode = "Permissive" },
			[]string{`mode: Unsupported value: "Permissive"`}},
		{"missing mode", func(c *PeerNodeConfiguration) { c.Mode = "" },
			[]string{`mode: Required value`}},
		{"unknown placement", func(c *PeerNodeConfiguration) { c.Incoming.Placement = "Stack" },
			[]string{`incoming.placement: Unsupported value: "Stack"`}},
		{"no packet could pass", func(c *PeerNodeConfiguration) {
			c.Incoming.AllowDefaultCommunication = ptr.To(false)
			c.Incoming.AllowEnhancedPacketExchange = ptr.To(false)
			c.Incoming.RunDefaultTrustProtocol = ptr.To(false)
		}, []string{`incoming: Invalid value: "all false": ` + msgNoPackets}},
		{"flag not defaulted", func(c *PeerNodeConfiguration) { c.Incoming.RunDefaultTrustProtocol = nil },
			[]string{`incoming.runDefaultTrustProtocol: Required value`}},
		{"None with trust protocol on", func(c *PeerNodeConfiguration) {
			c.Incoming.TrustProtocol = NodeTrustProtocol{Type: TrustProtocolNone}
		}, []string{`incoming.trustProtocol.type: Invalid value: "None": runDefaultTrustProtocol is true`}},
		{"SharedKey without key", func(c *PeerNodeConfiguration) { c.Incoming.TrustProtocol.SharedKeySecretRef = nil },
			[]string{`incoming.trustProtocol.sharedKeySecretRef: Required value: trustProtocol type SharedKey requires`}},
		{"SharedKey with two keys", func(c *PeerNodeConfiguration) { c.Incoming.TrustProtocol.SharedKeyFile = "/etc/key" },
			[]string{`incoming.trustProtocol.sharedKeyFile: Invalid value: "/etc/key": set only one`}},
		{"secret ref without SharedKey", func(c *PeerNodeConfiguration) { c.Incoming.TrustProtocol.Type = TrustProtocolPing },
			[]string{`incoming.trustProtocol.sharedKeySecretRef: Forbidden: only allowed when trustProtocol type is SharedKey`}},
		{"key file without SharedKey", func(c *PeerNodeConfiguration) {
			c.Incoming.TrustProtocol = NodeTrustProtocol{Type: TrustProtocolPing, SharedKeyFile: "/k"}
		}, []string{`incoming.trustProtocol.sharedKeyFile: Forbidden`}},
		{"bad secret reference", func(c *PeerNodeConfiguration) {
			c.Incoming.TrustProtocol.SharedKeySecretRef = &NamespacedSecretKeyReference{Namespace: "A", Name: "x_y", Key: "a/b"}
		}, []string{
			`incoming.trustProtocol.sharedKeySecretRef.namespace: Invalid value: "A"`,
			`incoming.trustProtocol.sharedKeySecretRef.name: Invalid value: "x_y"`,
			`incoming.trustProtocol.sharedKeySecretRef.key: Invalid value: "a/b"`,
		}},
		{"invalid CIDR", func(c *PeerNodeConfiguration) { c.Blocked[0].CIDR = "10.0.0.0/33" },
			[]string{`blocked[0].cidr: Invalid value: "10.0.0.0/33": must be a CIDR`}},
		{"host bits set", func(c *PeerNodeConfiguration) { c.Blocked[0].CIDR = "10.0.0.1/8" },
			[]string{`blocked[0].cidr: Invalid value: "10.0.0.1/8": must not have bits set after the prefix length: write 10.0.0.0/8`}},
		{"IPv4-mapped IPv6", func(c *PeerNodeConfiguration) { c.Allowed[1].CIDR = "::ffff:10.0.0.0/104" },
			[]string{`allowed[1].cidr: Invalid value: "::ffff:10.0.0.0/104"`}},
		{"identifier and cidr", func(c *PeerNodeConfiguration) { c.Blocked[1].CIDR = "10.0.0.0/8" },
			[]string{`blocked[1]: Invalid value: "evil-node": must set exactly one of identifier or cidr, not both`}},
		{"empty rule", func(c *PeerNodeConfiguration) { c.Allowed[1] = PeerRule{} },
			[]string{`allowed[1]: Required value: must set exactly one of identifier or cidr`}},
		{"bad identifier", func(c *PeerNodeConfiguration) { c.Blocked[1].Identifier = "has space" },
			[]string{`blocked[1].identifier: Invalid value: "has space"`}},
		{"except without cidr", func(c *PeerNodeConfiguration) { c.Allowed[2].Except = []CIDR{"10.0.0.0/8"} },
			[]string{`allowed[2].except: Forbidden: except is only allowed together with cidr`}},
		{"except outside cidr", func(c *PeerNodeConfiguration) { c.Allowed[0].Except = []CIDR{"11.0.0.0/16"} },
			[]string{`allowed[0].except[0]: Invalid value: "11.0.0.0/16": must be a CIDR strictly inside cidr 10.0.0.0/8`}},
		{"except equal to cidr", func(c *PeerNodeConfiguration) { c.Allowed[0].Except = []CIDR{"10.0.0.0/8"} },
			[]string{`allowed[0].except[0]: Invalid value: "10.0.0.0/8": must be a CIDR strictly inside`}},
		{"except of other family", func(c *PeerNodeConfiguration) { c.Allowed[0].Except = []CIDR{"fd00::/8"} },
			[]string{`allowed[0].except[0]: Invalid value: "fd00::/8"`}},
		{"invalid except", func(c *PeerNodeConfiguration) { c.Allowed[0].Except = []CIDR{"10.1.0.0"} },
			[]string{`allowed[0].except[0]: Invalid value: "10.1.0.0": must be a CIDR`}},
		{"unknown source kind", func(c *PeerNodeConfiguration) { c.Allowed[0].Source.Kind = "NetworkPolicy" },
			[]string{`allowed[0].source.kind: Unsupported value: "NetworkPolicy"`}},
		{"allowed rules without allowlist", func(c *PeerNodeConfiguration) { c.AllowlistActive = false },
			[]string{`allowlistActive: Invalid value: false: must be true when allowed has rules`}},
		{"negative peers", func(c *PeerNodeConfiguration) { c.Limits.MaxOutboundPeers = ptr.To[int32](-1) },
			[]string{`limits.maxOutboundPeers: Invalid value: -1: must be from 0 to 65536`}},
		{"no channels at all", func(c *PeerNodeConfiguration) { c.Limits.MaxOutboundPeers = ptr.To[int32](0) },
			[]string{`limits: Invalid value: "0, 0": ` + msgNoChannels}},
		{"zero handshake timeout", func(c *PeerNodeConfiguration) { c.Limits.HandshakeTimeout.Duration = 0 },
			[]string{`limits.handshakeTimeout: Invalid value: "0s": must be more than 0`}},
		{"huge idle timeout", func(c *PeerNodeConfiguration) { c.Limits.IdleTimeout.Duration = 48 * time.Hour },
			[]string{`limits.idleTimeout: Invalid value: "48h0m0s": must be at most 24h0m0s`}},
		{"keepalive not shorter than idle", func(c *PeerNodeConfiguration) { c.Limits.KeepaliveInterval.Duration = time.Minute },
			[]string{`limits.keepaliveInterval: Invalid value: "1m0s": must be shorter than idleTimeout (1m0s)`}},
		{"tiny frames", func(c *PeerNodeConfiguration) { c.Limits.MaxFrameSize = ptr.To[int32](1024) },
			[]string{`limits.maxFrameSize: Invalid value: 1024: must be from 65536 to 67108864`}},
		{"no send queue", func(c *PeerNodeConfiguration) { c.Limits.SendQueueLength = ptr.To[int32](0) },
			[]string{`limits.sendQueueLength: Invalid value: 0`}},
		{"seed without port", func(c *PeerNodeConfiguration) { c.Discovery.Seeds[1] = "peer-b.mesh" },
			[]string{`discovery.seeds[1]: Invalid value: "peer-b.mesh": must be host:port`}},
		{"seed port out of range", func(c *PeerNodeConfiguration) { c.Discovery.Seeds[0] = "peer:70000" },
			[]string{`discovery.seeds[0]: Invalid value: "peer:70000": port must be a number from 1 to 65535`}},
		{"every problem reported", func(c *PeerNodeConfiguration) {
			c.Mode = "x"
			c.Blocked[0].CIDR = "nope"
			c.Limits.SendQueueLength = ptr.To[int32](0)
		}, []string{"mode: Unsupported value", "blocked[0].cidr: Invalid value", "limits.sendQueueLength: Invalid value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			if !errors.Is(err, ErrInvalidConfiguration) {
				t.Errorf("error does not wrap ErrInvalidConfiguration: %v", err)
			}
			var agg utilerrors.Aggregate
			if !errors.As(err, &agg) || len(agg.Errors()) != len(tt.want) {
				t.Errorf("want %d field errors, got %v", len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestParsePeerNodeConfiguration(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string // substring; empty means valid
		check   func(*testing.T, *PeerNodeConfiguration)
	}{
		{name: "empty document is the default", doc: "",
			check: func(t *testing.T, c *PeerNodeConfiguration) {
				if c.Hash() != DefaultPeerNodeConfiguration().Hash() {
					t.Error("empty document differs from the default configuration")
				}
			}},
		{name: "file with node-local settings", doc: `
apiVersion: p2p.peermesh.io/v1alpha1
kind: PeerNodeConfiguration
meshName: lab
incoming:
  trustProtocol: {type: SharedKey, sharedKeyFile: /etc/peermesh/key}
blocked:
- cidr: 192.168.1.0/24
limits: {idleTimeout: 300s, maxFrameSize: 1048576}
discovery: {seeds: ["10.0.0.2:7946", "10.0.0.1:7946"]}
`, check: func(t *testing.T, c *PeerNodeConfiguration) {
			if c.MeshName != "lab" || c.Limits.IdleTimeout.Duration != 5*time.Minute || *c.Limits.MaxFrameSize != 1<<20 {
				t.Errorf("fields not decoded: %+v", c)
			}
			if c.Discovery.Seeds[0] != "10.0.0.1:7946" {
				t.Errorf("seeds not sorted: %v", c.Discovery.Seeds)
			}
		}},
		{name: "JSON is YAML", doc: `{"meshName":"lab","mode":"Audit"}`,
			check: func(t *testing.T, c *PeerNodeConfiguration) {
				if c.Mode != PolicyModeAudit {
					t.Errorf("mode = %q", c.Mode)
				}
			}},
		{name: "unknown top-level field", doc: "meshName: lab\nmeshname: lab\n", wantErr: `unknown field "meshname"`},
		{name: "unknown nested field", doc: "incoming:\n  trustProtocl: {type: Ping}\n", wantErr: `unknown field "incoming.trustProtocl"`},
		{name: "unknown field in a rule", doc: "blocked:\n- cidr: 10.0.0.0/8\n  excpt: [10.1.0.0/16]\n", wantErr: `unknown field "blocked[0].excpt"`},
		{name: "duplicate key", doc: "meshName: a\nmeshName: b\n", wantErr: `"meshName" already set`},
		{name: "wrong kind", doc: "kind: ConfigMap\n", wantErr: `kind: Unsupported value: "ConfigMap"`},
		{name: "wrong type", doc: "limits: {maxInboundPeers: many}\n", wantErr: "maxInboundPeers"},
		{name: "int32 overflow", doc: "limits: {maxInboundPeers: 4294967296}\n", wantErr: "maxInboundPeers"},
		{name: "bad duration", doc: "limits: {idleTimeout: 5 minutes}\n", wantErr: `duration "5 minutes"`},
		{name: "not a mapping", doc: "- a\n- b\n", wantErr: "cannot unmarshal array"},
		{name: "invalid after defaulting", doc: "blocked: [{cidr: 10.0.0.0/33}]\n", wantErr: `blocked[0].cidr: Invalid value: "10.0.0.0/33"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParsePeerNodeConfiguration([]byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidConfiguration) {
					t.Errorf("error does not wrap ErrInvalidConfiguration: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePeerNodeConfiguration() error = %v", err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestHash(t *testing.T) {
	base := validConfig()
	h := base.Hash()

	same := map[string]func(*PeerNodeConfiguration){
		"rules reordered": func(c *PeerNodeConfiguration) {
			c.Allowed[0], c.Allowed[2] = c.Allowed[2], c.Allowed[0]
			c.Blocked[0], c.Blocked[1] = c.Blocked[1], c.Blocked[0]
		},
		"except reordered": func(c *PeerNodeConfiguration) {
			c.Allowed[0].Except[0], c.Allowed[0].Except[1] = c.Allowed[0].Except[1], c.Allowed[0].Except[0]
		},
		"seeds reordered": func(c *PeerNodeConfiguration) {
			c.Discovery.Seeds[0], c.Discovery.Seeds[1] = c.Discovery.Seeds[1], c.Discovery.Seeds[0]
		},
		"duplicate rule":     func(c *PeerNodeConfiguration) { c.Blocked = append(c.Blocked, *c.Blocked[0].DeepCopy()) },
		"generation ignored": func(c *PeerNodeConfiguration) { c.Generation = strings.Repeat("0", 64) },
		"duration spelling":  func(c *PeerNodeConfiguration) { c.Limits.IdleTimeout = &metav1.Duration{Duration: 60 * time.Second} },
		"default left out": func(c *PeerNodeConfiguration) {
			c.Limits.SendQueueLength = nil // Hash defaults it back to 256
		},
		"IPv6 spelling": func(c *PeerNodeConfiguration) { c.Allowed[1].CIDR = "FD00:0::1/128" },
	}
	for name, mutate := range same {
		c := base.DeepCopy()
		mutate(c)
		if got := c.Hash(); got != h {
			t.Errorf("%s: hash changed to %s", name, got)
		}
	}

	differ := map[string]func(*PeerNodeConfiguration){
		"cidr changed":       func(c *PeerNodeConfiguration) { c.Blocked[0].CIDR = "192.168.0.0/24" },
		"except changed":     func(c *PeerNodeConfiguration) { c.Allowed[0].Except = c.Allowed[0].Except[:1] },
		"identifier changed": func(c *PeerNodeConfiguration) { c.Blocked[1].Identifier = "evil-node-2" },
		"rule added":         func(c *PeerNodeConfiguration) { c.Allowed = append(c.Allowed, PeerRule{Identifier: "n9"}) },
		"source changed":     func(c *PeerNodeConfiguration) { c.Allowed[0].Source.Entry = "home" },
		"mode changed":       func(c *PeerNodeConfiguration) { c.Mode = PolicyModeEnforce },
		"allowlist toggled":  func(c *PeerNodeConfiguration) { c.Allowed = nil; c.AllowlistActive = false },
		"limit changed":      func(c *PeerNodeConfiguration) { c.Limits.MaxOutboundPeers = ptr.To[int32](10) },
		"flag changed":       func(c *PeerNodeConfiguration) { c.Incoming.AllowEnhancedPacketExchange = ptr.To(true) },
		"policy changed":     func(c *PeerNodeConfiguration) { c.PolicySource = nil },
	}
	for name, mutate := range differ {
		c := base.DeepCopy()
		mutate(c)
		if c.Hash() == h {
			t.Errorf("%s: hash did not change", name)
		}
	}

	// Hash must not modify its receiver.
	c := base.DeepCopy()
	c.Allowed[0], c.Allowed[2] = c.Allowed[2], c.Allowed[0]
	before := c.DeepCopy()
	_ = c.Hash()
	if !reflect.DeepEqual(c, before) {
		t.Error("Hash modified its receiver")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c := validConfig()
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePeerNodeConfiguration(out)
	if err != nil {
		t.Fatalf("re-parsing marshalled config: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the configuration:\n%s", out)
	}
	if !strings.HasPrefix(string(out), "allowed:") || !strings.Contains(string(out), "apiVersion: p2p.peermesh.io/v1alpha1\n") {
		t.Errorf("Marshal is not canonical (sorted keys):\n%s", out)
	}
}
