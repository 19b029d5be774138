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

package controllers

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

func TestSortPolicies(t *testing.T) {
	at := func(sec int) metav1.Time { return metav1.NewTime(time.Unix(int64(1700000000+sec), 0)) }
	p := func(ns, name string, sec int) *v1alpha1.PeerTrustPolicy {
		return &v1alpha1.PeerTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: at(sec)}}
	}
	ps := []*v1alpha1.PeerTrustPolicy{p("b", "x", 5), p("a", "z", 5), p("a", "y", 5), p("z", "z", 1)}
	sortPolicies(ps)
	var got []string
	for _, p := range ps {
		got = append(got, p.Namespace+"/"+p.Name)
	}
	if want := []string{"z/z", "a/y", "a/z", "b/x"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v (oldest first, then namespace/name)", got, want)
	}
}

func TestPodAddresses(t *testing.T) {
	now := metav1.Now()
	tests := []struct {
		name   string
		pod    corev1.Pod
		want   []string
		wantOK bool
	}{
		{"running with podIPs", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning,
			PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}}}, []string{"10.0.0.1", "fd00::1"}, true},
		{"pending with an IP", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}}}}, []string{"10.0.0.1"}, true},
		{"podIP only", corev1.Pod{Status: corev1.PodStatus{PodIP: "10.0.0.2"}}, []string{"10.0.0.2"}, true},
		{"no IP", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}, nil, false},
		{"unparsable IP", corev1.Pod{Status: corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: "nope"}}}}, nil, false},
		{"terminating", corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now},
			Status: corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}}}}, nil, false},
		{"succeeded", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded, PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}}}}, nil, false},
		{"failed", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed, PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}}}}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ips, ok := podAddresses(&tt.pod)
			var got []string
			for _, ip := range ips {
				got = append(got, ip.String())
			}
			if ok != tt.wantOK || !slices.Equal(got, tt.want) {
				t.Errorf("got %v %v, want %v %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestPodEntriesAndScopes(t *testing.T) {
	al := &v1alpha1.PeerAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}, Spec: v1alpha1.PeerAllowlistSpec{Peers: []v1alpha1.PeerAllowlistEntry{
		{Identifier: "a"},
		{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}},
		{PodSelector: &metav1.LabelSelector{}, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}}},
	}}}
	entries, err := podEntries(al)
	if err != nil || len(entries) != 2 {
		t.Fatalf("podEntries = %v, %v", entries, err)
	}
	if entries[0].index != 1 || entries[0].namespaces != nil || !entries[0].pods.Matches(labels.Set{"app": "x"}) || entries[0].pods.Matches(labels.Set{}) {
		t.Errorf("entry 1 parsed wrong: %+v", entries[0])
	}
	if entries[1].index != 2 || !entries[1].pods.Matches(labels.Set{"any": "thing"}) || !entries[1].namespaces.Matches(labels.Set{"team": "web"}) {
		t.Errorf("entry 2 parsed wrong: %+v", entries[1])
	}
	if got := podScopes(al); !slices.Equal(got, []string{podScopeNamespace, podScopeCluster}) {
		t.Errorf("podScopes = %v", got)
	}
	if got := podScopes(&v1alpha1.PeerAllowlist{Spec: v1alpha1.PeerAllowlistSpec{Peers: []v1alpha1.PeerAllowlistEntry{{CIDR: "10.0.0.0/8"}}}}); got != nil {
		t.Errorf("podScopes of a static allowlist = %v", got)
	}

	for _, bad := range []v1alpha1.PeerAllowlistEntry{
		{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpIn}}}},
		{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}},
		{PodSelector: &metav1.LabelSelector{}, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bad key!": "v"}}},
	} {
		al := &v1alpha1.PeerAllowlist{Spec: v1alpha1.PeerAllowlistSpec{Peers: []v1alpha1.PeerAllowlistEntry{{Identifier: "ok"}, bad}}}
		if _, err := podEntries(al); err == nil {
			t.Errorf("podEntries accepted %+v", bad)
		}
	}
}

func TestSharedKeySecretRef(t *testing.T) {
	p := &v1alpha1.PeerTrustPolicy{}
	if sharedKeySecretRef(p) != nil {
		t.Error("a Ping policy has a Secret reference")
	}
	p.Spec.Incoming.TrustProtocol = v1alpha1.TrustProtocol{Type: v1alpha1.TrustProtocolSharedKey, SharedKeySecretRef: &v1alpha1.SecretKeyReference{Name: "s"}}
	if ref := sharedKeySecretRef(p); ref == nil || ref.Name != "s" || ref.Key != v1alpha1.DefaultSharedKeySecretKey {
		t.Errorf("ref = %+v, want s with the default key", ref)
	}
	if p.Spec.Incoming.TrustProtocol.SharedKeySecretRef.Key != "" {
		t.Error("sharedKeySecretRef defaulted the policy in place")
	}
}

func TestCacheTransforms(t *testing.T) {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", ResourceVersion: "7",
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"key":"c2VjcmV0"}}`},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Data: map[string][]byte{"key": []byte("secret"), "empty": nil},
	}
	out, _ := stripSecret(secret)
	s := out.(*corev1.Secret)
	if s.Name != "s" || s.ResourceVersion != "7" || s.Annotations != nil || s.ManagedFields != nil {
		t.Errorf("stripped metadata %+v", s.ObjectMeta)
	}
	if _, ok := s.Data["key"]; !ok || s.Data["key"] != nil || len(s.Data) != 1 {
		t.Errorf("stripped data %v: want key present without value, empty values dropped", s.Data)
	}
	if string(secret.Data["key"]) != "secret" {
		t.Error("stripSecret modified its input")
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"x": "y"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}}, Conditions: []corev1.PodCondition{{Type: "Ready"}}},
	}
	out, _ = stripPod(pod)
	p := out.(*corev1.Pod)
	if p.Labels["a"] != "b" || p.Annotations != nil || len(p.Spec.Containers) != 0 || len(p.Status.Conditions) != 0 ||
		p.Status.Phase != corev1.PodRunning || len(p.Status.PodIPs) != 1 {
		t.Errorf("stripped pod %+v", p)
	}
	if out, _ := stripPod("not a pod"); out != "not a pod" {
		t.Error("stripPod changed a non-pod")
	}
}

func TestPredicates(t *testing.T) {
	sec := func(keys ...string) *corev1.Secret {
		s := &corev1.Secret{Data: map[string][]byte{}}
		for _, k := range keys {
			s.Data[k] = nil
		}
		return s
	}
	if secretKeysChanged.Update(event.UpdateEvent{ObjectOld: sec("a"), ObjectNew: sec("a")}) {
		t.Error("a Secret update with the same keys passed")
	}
	if !secretKeysChanged.Update(event.UpdateEvent{ObjectOld: sec("a"), ObjectNew: sec("a", "b")}) {
		t.Error("a Secret update adding a key was filtered")
	}

	pod := func(ip string, lbl map[string]string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: lbl}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		if ip != "" {
			p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		}
		return p
	}
	l := map[string]string{"app": "x"}
	for _, tt := range []struct {
		name     string
		old, new *corev1.Pod
		want     bool
	}{
		{"nothing relevant", pod("10.0.0.1", l), pod("10.0.0.1", l), false},
		{"IP assigned", pod("", l), pod("10.0.0.1", l), true},
		{"IP changed", pod("10.0.0.1", l), pod("10.0.0.2", l), true},
		{"label changed", pod("10.0.0.1", l), pod("10.0.0.1", nil), true},
		{"finished", pod("10.0.0.1", l), func() *corev1.Pod { p := pod("10.0.0.1", l); p.Status.Phase = corev1.PodSucceeded; return p }(), true},
	} {
		if got := podPeerFieldsChanged.Update(event.UpdateEvent{ObjectOld: tt.old, ObjectNew: tt.new}); got != tt.want {
			t.Errorf("%s: passed=%v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestUpToDate(t *testing.T) {
	s := &meshScope{key: types.NamespacedName{Namespace: "ns", Name: "m"},
		policies:   []*v1alpha1.PeerTrustPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u1"}}},
		allowlists: []*v1alpha1.PeerAllowlist{{ObjectMeta: metav1.ObjectMeta{Name: "b", UID: "u3"}}, {ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "u2"}}},
		config:     &v1alpha1.PeerNodeConfiguration{Generation: "g1"}, data: "data",
		cmData: map[string]string{v1alpha1.ConfigMapKey: "data"}}
	desired := desiredConfigMap(s)
	if got := []string{desired.OwnerReferences[0].Name, desired.OwnerReferences[1].Name, desired.OwnerReferences[2].Name}; !slices.Equal(got, []string{"a", "b", "p"}) {
		t.Errorf("owner references not sorted: %v", got)
	}
	existing := desired.DeepCopy()
	existing.Labels["extra"] = "kept"
	existing.Annotations["other"] = "kept"
	slices.Reverse(existing.OwnerReferences)
	if !upToDate(existing, desired) {
		t.Error("an equal ConfigMap with extra labels and reordered owners is not up to date")
	}
	for name, mutate := range map[string]func(*corev1.ConfigMap){
		"data":       func(c *corev1.ConfigMap) { c.Data[v1alpha1.ConfigMapKey] = "x" },
		"extra key":  func(c *corev1.ConfigMap) { c.Data["x"] = "y" },
		"binaryData": func(c *corev1.ConfigMap) { c.BinaryData = map[string][]byte{"b": {1}} },
		"hash":       func(c *corev1.ConfigMap) { c.Annotations[AnnotationConfigHash] = "g0" },
		"label":      func(c *corev1.ConfigMap) { delete(c.Labels, LabelMesh) },
		"owner gone": func(c *corev1.ConfigMap) { c.OwnerReferences = c.OwnerReferences[1:] },
		"owner uid":  func(c *corev1.ConfigMap) { c.OwnerReferences[0].UID = "other" },
		"controller": func(c *corev1.ConfigMap) { c.OwnerReferences[0].Controller = ptr.To(true) },
	} {
		c := desired.DeepCopy()
		mutate(c)
		if upToDate(c, desired) {
			t.Errorf("%s: a different ConfigMap is up to date", name)
		}
	}
}

func TestLastGoodPolicy(t *testing.T) {
	p := &v1alpha1.PeerTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"},
		Spec: v1alpha1.PeerTrustPolicySpec{MeshName: "m", Mode: v1alpha1.PolicyModeAudit,
			Blocked: &v1alpha1.BlockedPeers{Identifiers: []v1alpha1.PeerIdentifier{"evil"}}}}
	c := v1alpha1.ConfigurationForPolicy("m", p)
	c.Allowed = []v1alpha1.PeerRule{{Identifier: "friend"}}
	c.Default()
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	last, err := lastGoodPolicy(&corev1.ConfigMap{Data: map[string]string{v1alpha1.ConfigMapKey: string(data)}})
	if err != nil || last == nil {
		t.Fatalf("lastGoodPolicy = %v, %v", last, err)
	}
	if last.Mode != v1alpha1.PolicyModeAudit || last.PolicySource.Name != "p" || len(last.Blocked) != 1 || len(last.Allowed) != 0 || last.AllowlistActive {
		t.Errorf("last good policy %+v: want the policy part only", last)
	}
	if last, err := lastGoodPolicy(nil); last != nil || err != nil {
		t.Errorf("no ConfigMap: %v, %v", last, err)
	}
	if _, err := lastGoodPolicy(&corev1.ConfigMap{Data: map[string]string{v1alpha1.ConfigMapKey: "mode: Sideways\n"}}); err == nil {
		t.Error("an invalid configuration was accepted as the last good one")
	}
}

func TestMetricsAggregateMeshes(t *testing.T) {
	m := NewMetrics()
	reg := prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	a, b := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}
	pol := func(state string) [2]string { return [2]string{v1alpha1.SourceKindPeerTrustPolicy, state} }
	m.observeMesh(a, map[[2]string]int{pol(StateAccepted): 1, pol(StateConflicted): 2}, true, nil)
	m.observeMesh(b, map[[2]string]int{pol(StateAccepted): 1}, false, nil)
	m.observeMesh(a, map[[2]string]int{pol(StateAccepted): 1, pol(StateConflicted): 1}, true, nil)
	check := func(state string, want float64) {
		t.Helper()
		var d dto.Metric
		_ = m.Policies.WithLabelValues(v1alpha1.SourceKindPeerTrustPolicy, state).Write(&d)
		if got := d.GetGauge().GetValue(); got != want {
			t.Errorf("policies{state=%s} = %v, want %v", state, got, want)
		}
	}
	check(StateAccepted, 2)
	check(StateConflicted, 1)
	var d dto.Metric
	_ = m.CompiledMeshes.Write(&d)
	if d.GetGauge().GetValue() != 1 {
		t.Errorf("compiled_meshes = %v, want 1", d.GetGauge().GetValue())
	}
	m.forgetMesh(a)
	check(StateAccepted, 1)
	check(StateConflicted, 0)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	want := []string{"peermesh_operator_compile_duration_seconds", "peermesh_operator_compiled_meshes",
		"peermesh_operator_configmap_writes_total", "peermesh_operator_policies"}
	if !slices.Equal(names, want) {
		t.Errorf("metric families %v, want %v", names, want)
	}
	if err := m.Register(reg); err == nil {
		t.Error("registering twice succeeded")
	}
}

func TestConfigMapName(t *testing.T) {
	if got := ConfigMapName("demo"); got != "peermesh-demo" {
		t.Errorf("ConfigMapName = %q", got)
	}
}
