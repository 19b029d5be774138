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

package v1alpha1_test

// These tests send objects to a real kube-apiserver (started once in
// TestMain) with the generated CRDs loaded, so they check the OpenAPI
// schema, the defaults and every CEL rule as users meet them. Loading the
// CRDs at all proves the CEL rules fit the API server's cost budget.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	p2pv1alpha1 "github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/internal/testenv"
)

var (
	scheme    = runtime.NewScheme()
	k8sClient client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := p2pv1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	// Fuzz worker processes run only the fuzz target of this package; they
	// must not each start a control plane.
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		return m.Run()
	}
	env, cfg, err := testenv.Start(testenv.Options{CRDDirectoryPaths: []string{testenv.CRDPath()}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test control plane:", err)
		}
	}()
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// newNamespace creates a namespace for one test.
func newNamespace(ctx context.Context, t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "validation-"}}
	if err := k8sClient.Create(ctx, ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// object builds an unstructured object of kind from the YAML of its spec,
// so that tests can send what a typed client could not (wrong types,
// patterns, missing required fields).
func object(t *testing.T, kind, namespace, name, spec string) *unstructured.Unstructured {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: p2p.peermesh.io/v1alpha1\nkind: %s\nmetadata: {name: %s, namespace: %s}\nspec:\n%s",
		kind, name, namespace, indent(spec))
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatalf("test manifest is not YAML: %v\n%s", err, doc)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatalf("test manifest: %v\n%s", err, doc)
	}
	return u
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// expectInvalid asserts that err is the API server's Invalid error and
// mentions every substring of want.
func expectInvalid(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want rejection mentioning %q", want)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("error is not Invalid: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not mention %q", err, w)
		}
	}
	t.Logf("rejected: %v", err)
}

func manyCIDRs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  - 10.%d.%d.0/24\n", i/256, i%256)
	}
	return b.String()
}

func TestPeerTrustPolicyValidation(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(ctx, t)
	tests := []struct {
		name string
		spec string
		want []string
	}{
		{"meshName required", "mode: Enforce",
			[]string{"spec.meshName: Required value"}},
		{"meshName is a DNS label", "meshName: Prod_Mesh",
			[]string{`spec.meshName: Invalid value: "Prod_Mesh"`, "should match"}},
		{"meshName at most 63", "meshName: " + strings.Repeat("m", 64),
			[]string{"spec.meshName: Too long"}},
		{"unknown mode", "meshName: m\nmode: Permissive",
			[]string{`spec.mode: Unsupported value: "Permissive"`}},
		{"unknown placement", "meshName: m\nincoming: {placement: Stack}",
			[]string{`spec.incoming.placement: Unsupported value: "Stack"`}},
		{"no packet could ever pass", "meshName: m\nincoming: {allowDefaultCommunication: false, runDefaultTrustProtocol: false}",
			[]string{"spec.incoming: Invalid value", "allowDefaultCommunication, allowEnhancedPacketExchange and runDefaultTrustProtocol are all false: no peer could ever be trusted or send a packet"}},
		{"None with the trust protocol on", "meshName: m\nincoming: {trustProtocol: {type: None}}",
			[]string{"spec.incoming: Invalid value", "runDefaultTrustProtocol is true but trustProtocol.type is None"}},
		{"SharedKey without its Secret", "meshName: m\nincoming: {trustProtocol: {type: SharedKey}}",
			[]string{"spec.incoming.trustProtocol: Invalid value", "trustProtocol type SharedKey requires sharedKeySecretRef"}},
		{"Secret without SharedKey", "meshName: m\nincoming: {trustProtocol: {sharedKeySecretRef: {name: k}}}",
			[]string{"sharedKeySecretRef is only allowed when trustProtocol type is SharedKey"}},
		{"Secret key name", "meshName: m\nincoming: {trustProtocol: {type: SharedKey, sharedKeySecretRef: {name: k, key: a/b}}}",
			[]string{`spec.incoming.trustProtocol.sharedKeySecretRef.key: Invalid value: "a/b"`}},
		{"Secret name required", "meshName: m\nincoming: {trustProtocol: {type: SharedKey, sharedKeySecretRef: {key: k}}}",
			[]string{"spec.incoming.trustProtocol.sharedKeySecretRef.name: Required value"}},
		{"blocked CIDR out of range", "meshName: m\nblocked: {cidrs: [10.0.0.0/33]}",
			[]string{"spec.blocked.cidrs[0]: Invalid value", "must be a CIDR such as 10.0.0.0/8 or fd00::/8"}},
		{"blocked CIDR with host bits", "meshName: m\nblocked: {cidrs: [10.0.0.1/8]}",
			[]string{"spec.blocked.cidrs[0]: Invalid value", "must not have bits set after the prefix length (for example, write 10.0.0.0/8, not 10.0.0.1/8)"}},
		{"blocked address without prefix", "meshName: m\nblocked: {cidrs: [192.0.2.1]}",
			[]string{"spec.blocked.cidrs[0]", "must be a CIDR"}},
		{"blocked IPv4-mapped IPv6", "meshName: m\nblocked: {cidrs: ['::ffff:10.0.0.0/104']}",
			[]string{"spec.blocked.cidrs[0]", "must be a CIDR"}},
		{"blocked CIDR listed twice", "meshName: m\nblocked: {cidrs: [10.0.0.0/8, 10.0.0.0/8]}",
			[]string{"spec.blocked.cidrs[1]: Duplicate value"}},
		{"too many blocked CIDRs", "meshName: m\nblocked:\n  cidrs:\n" + manyCIDRs(1025),
			[]string{"spec.blocked.cidrs: Too many: 1025: must have at most 1024 items"}},
		{"blocked identifier pattern", "meshName: m\nblocked: {identifiers: ['has space']}",
			[]string{`spec.blocked.identifiers[0]: Invalid value: "has space"`}},
		{"negative limit", "meshName: m\nlimits: {maxInboundPeers: -1}",
			[]string{"spec.limits.maxInboundPeers: Invalid value: -1", "greater than or equal to 0"}},
		{"limit too large", "meshName: m\nlimits: {maxOutboundPeers: 1000000}",
			[]string{"spec.limits.maxOutboundPeers: Invalid value: 1000000", "less than or equal to 65536"}},
		{"no channel at all", "meshName: m\nlimits: {maxInboundPeers: 0, maxOutboundPeers: 0}",
			[]string{"spec.limits: Invalid value", "maxInboundPeers and maxOutboundPeers are both 0"}},
		{"zero handshake timeout", "meshName: m\nlimits: {handshakeTimeout: 0s}",
			[]string{"spec.limits.handshakeTimeout", "handshakeTimeout must be more than 0"}},
		{"handshake timeout too long", "meshName: m\nlimits: {handshakeTimeout: 1h}",
			[]string{"spec.limits.handshakeTimeout", "handshakeTimeout must be at most 5m"}},
		{"idle timeout too long", "meshName: m\nlimits: {idleTimeout: 48h}",
			[]string{"spec.limits.idleTimeout", "idleTimeout must be at most 24h"}},
		{"negative idle timeout", "meshName: m\nlimits: {idleTimeout: -5m}",
			[]string{"spec.limits.idleTimeout", "should match"}},
		{"duration in words", "meshName: m\nlimits: {idleTimeout: five minutes}",
			[]string{`spec.limits.idleTimeout: Invalid value: "five minutes"`, "should match"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := k8sClient.Create(ctx, object(t, "PeerTrustPolicy", ns, fmt.Sprintf("p%d", i), tt.spec))
			expectInvalid(t, err, tt.want...)
		})
	}
}

func TestPeerAllowlistValidation(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(ctx, t)
	tests := []struct {
		name string
		spec string
		want []string
	}{
		{"peers required", "meshName: m",
			[]string{"spec.peers: Required value"}},
		{"at least one peer", "meshName: m\npeers: []",
			[]string{"spec.peers: Invalid value", "should have at least 1 items"}},
		{"too many peers", "meshName: m\npeers:\n" + strings.Repeat("- identifier: n1\n", 1025),
			[]string{"spec.peers: Too many: 1025: must have at most 1024 items"}},
		{"meshName is a DNS label", "meshName: -m\npeers: [{identifier: n1}]",
			[]string{`spec.meshName: Invalid value: "-m"`}},
		{"entry with no matcher", "meshName: m\npeers: [{name: empty}]",
			[]string{"spec.peers[0]: Invalid value", "each peer must set exactly one of identifier, cidr or podSelector"}},
		{"identifier and cidr", "meshName: m\npeers: [{identifier: n1, cidr: 10.0.0.0/8}]",
			[]string{"spec.peers[0]", "each peer must set exactly one of identifier, cidr or podSelector"}},
		{"cidr and podSelector", "meshName: m\npeers: [{identifier: n1}, {cidr: 10.0.0.0/8, podSelector: {}}]",
			[]string{"spec.peers[1]", "each peer must set exactly one of identifier, cidr or podSelector"}},
		{"empty identifier", "meshName: m\npeers: [{identifier: ''}]",
			[]string{"spec.peers[0].identifier", "should be at least 1 chars long"}},
		{"except without cidr", "meshName: m\npeers: [{identifier: n1, except: [10.1.0.0/16]}]",
			[]string{"spec.peers[0]", "except is only allowed together with cidr"}},
		{"except outside cidr", "meshName: m\npeers: [{cidr: 10.0.0.0/16, except: [10.1.0.0/24]}]",
			[]string{"spec.peers[0]", "every except entry must be a CIDR strictly inside cidr"}},
		{"except equal to cidr", "meshName: m\npeers: [{cidr: 10.0.0.0/16, except: [10.0.0.0/16]}]",
			[]string{"every except entry must be a CIDR strictly inside cidr"}},
		{"except of the other family", "meshName: m\npeers: [{cidr: 10.0.0.0/8, except: ['fd00::/16']}]",
			[]string{"every except entry must be a CIDR strictly inside cidr"}},
		{"except not a CIDR", "meshName: m\npeers: [{cidr: 10.0.0.0/8, except: [10.1.0.1]}]",
			[]string{"spec.peers[0].except[0]", "must be a CIDR such as"}},
		{"entry CIDR invalid", "meshName: m\npeers: [{cidr: 300.0.0.0/8}]",
			[]string{"spec.peers[0].cidr", "must be a CIDR such as"}},
		{"entry CIDR with host bits", "meshName: m\npeers: [{cidr: 'fd00::1/8'}]",
			[]string{"spec.peers[0].cidr", "must not have bits set after the prefix length"}},
		{"namespaceSelector without podSelector", "meshName: m\npeers: [{identifier: n1, namespaceSelector: {}}]",
			[]string{"spec.peers[0]", "namespaceSelector is only allowed together with podSelector"}},
		{"entry name pattern", "meshName: m\npeers: [{name: Front End, identifier: n1}]",
			[]string{`spec.peers[0].name: Invalid value: "Front End"`}},
		// Selector semantics (operators and values) are beyond the CEL cost
		// budget; the operator reports them with Accepted=False, reason
		// Invalid. The schema still checks the selector's shape.
		{"selector label value not a string", "meshName: m\npeers: [{podSelector: {matchLabels: {app: [web]}}}]",
			[]string{"spec.peers[0].podSelector.matchLabels.app", "must be of type string"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := k8sClient.Create(ctx, object(t, "PeerAllowlist", ns, fmt.Sprintf("a%d", i), tt.spec))
			expectInvalid(t, err, tt.want...)
		})
	}
}

func TestMeshNameIsImmutable(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(ctx, t)
	for kind, spec := range map[string]string{
		"PeerTrustPolicy": "meshName: one",
		"PeerAllowlist":   "meshName: one\npeers: [{identifier: n1}]",
	} {
		t.Run(kind, func(t *testing.T) {
			obj := object(t, kind, ns, "immutable", spec)
			if err := k8sClient.Create(ctx, obj); err != nil {
				t.Fatalf("creating: %v", err)
			}
			// Other fields may change.
			if err := unstructured.SetNestedField(obj.Object, "changed", "metadata", "labels", "note"); err != nil {
				t.Fatal(err)
			}
			if err := k8sClient.Update(ctx, obj); err != nil {
				t.Fatalf("updating a label: %v", err)
			}
			if err := unstructured.SetNestedField(obj.Object, "two", "spec", "meshName"); err != nil {
				t.Fatal(err)
			}
			expectInvalid(t, k8sClient.Update(ctx, obj), "spec.meshName: Invalid value", "meshName is immutable")
		})
	}
}

// The API server's defaults are DefaultPolicySpec's, so the operator compiles
// the same configuration whether it reads a policy back or builds one in Go.
func TestPeerTrustPolicyDefaults(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(ctx, t)
	p := &p2pv1alpha1.PeerTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "defaults"},
		Spec:       p2pv1alpha1.PeerTrustPolicySpec{MeshName: "m"},
	}
	if err := k8sClient.Create(ctx, p); err != nil {
		t.Fatalf("creating a minimal policy: %v", err)
	}
	got := &p2pv1alpha1.PeerTrustPolicy{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil {
		t.Fatal(err)
	}
	if want := p2pv1alpha1.DefaultPolicySpec("m"); !reflect.DeepEqual(got.Spec, want) {
		t.Errorf("API server defaults:\n%+v\nDefaultPolicySpec:\n%+v", got.Spec, want)
	}

	ref := &p2pv1alpha1.PeerTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared-key"},
		Spec: p2pv1alpha1.PeerTrustPolicySpec{MeshName: "m", Incoming: p2pv1alpha1.IncomingPolicy{
			TrustProtocol: p2pv1alpha1.TrustProtocol{
				Type:               p2pv1alpha1.TrustProtocolSharedKey,
				SharedKeySecretRef: &p2pv1alpha1.SecretKeyReference{Name: "mesh-key"},
			},
		}},
	}
	if err := k8sClient.Create(ctx, ref); err != nil {
		t.Fatalf("creating a SharedKey policy: %v", err)
	}
	if key := ref.Spec.Incoming.TrustProtocol.SharedKeySecretRef.Key; key != p2pv1alpha1.DefaultSharedKeySecretKey {
		t.Errorf("sharedKeySecretRef.key defaulted to %q, want %q", key, p2pv1alpha1.DefaultSharedKeySecretKey)
	}
}

func TestValidObjectsAccepted(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(ctx, t)
	for i, tt := range []struct{ kind, spec string }{
		{"PeerTrustPolicy", "meshName: m\nmode: Audit\nincoming: {runDefaultTrustProtocol: false, trustProtocol: {type: None}}"},
		{"PeerTrustPolicy", "meshName: m\nincoming: {allowDefaultCommunication: false, allowEnhancedPacketExchange: true, runDefaultTrustProtocol: false}\nlimits: {maxInboundPeers: 0}"},
		{"PeerTrustPolicy", "meshName: m\nblocked:\n  cidrs:\n" + manyCIDRs(1024)},
		{"PeerTrustPolicy", "meshName: m\nlimits: {handshakeTimeout: 1m30s, idleTimeout: 24h}"},
		{"PeerAllowlist", "meshName: m\npeers: [{cidr: 'fd00::/8', except: ['fd00:1::/32', 'fd00:2::/32']}, {podSelector: {}}]"},
		{"PeerAllowlist", "meshName: m\npeers: [{cidr: 10.0.0.0/8, except: [10.0.0.0/9]}, {identifier: 431f6833-421d-5ebd-a865-300f22894169}]"},
	} {
		if err := k8sClient.Create(ctx, object(t, tt.kind, ns, fmt.Sprintf("ok%d", i), tt.spec)); err != nil {
			t.Errorf("valid %s %d rejected: %v", tt.kind, i, err)
		}
	}
}

func TestStatusSubresource(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(ctx, t)
	p := &p2pv1alpha1.PeerTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "status"},
		Spec:       p2pv1alpha1.PeerTrustPolicySpec{MeshName: "m"},
	}
	if err := k8sClient.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Status = p2pv1alpha1.PeerTrustPolicyStatus{
		ObservedGeneration: p.Generation,
		Conditions: []metav1.Condition{{
			Type: p2pv1alpha1.ConditionAccepted, Status: metav1.ConditionFalse, Reason: p2pv1alpha1.ReasonConflicted,
			Message: "PeerTrustPolicy other/older is in force for mesh m", LastTransitionTime: metav1.Now(),
			ObservedGeneration: p.Generation,
		}},
		Nodes:         &p2pv1alpha1.NodeSyncStatus{Total: 3, InSync: 2},
		ConflictsWith: &p2pv1alpha1.PolicyReference{Namespace: "other", Name: "older"},
	}
	if err := k8sClient.Status().Update(ctx, p); err != nil {
		t.Fatalf("updating status: %v", err)
	}
	got := &p2pv1alpha1.PeerTrustPolicy{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ConflictsWith == nil || got.Status.Nodes.InSync != 2 || len(got.Status.Conditions) != 1 {
		t.Errorf("status not stored: %+v", got.Status)
	}
}

// Every sample in config/samples is accepted as written.
func TestSamplesAccepted(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(ctx, t)
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	decode := serializer.NewCodecFactory(scheme).UniversalDeserializer().Decode
	var n int
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			obj, _, err := decode(data, nil, nil)
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			cobj, ok := obj.(client.Object)
			if !ok {
				t.Fatalf("%T is not a client.Object", obj)
			}
			cobj.SetNamespace(ns)
			if err := k8sClient.Create(ctx, cobj); err != nil {
				t.Fatalf("sample rejected: %v", err)
			}
		})
	}
	if n < 2 {
		t.Errorf("found %d samples, want at least a policy and an allowlist", n)
	}
}
