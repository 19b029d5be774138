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
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// TestSetPropagatedConditionFromNodes table-tests the Propagated condition
// that node counts give, through the pure setter.
func TestSetPropagatedConditionFromNodes(t *testing.T) {
	const gen = "0123456789abcdef"
	tests := []struct {
		name          string
		a             acceptance
		total, inSync int
		want          metav1.Condition
	}{
		{"no nodes", accepted, 0, 0,
			cond(v1alpha1.ConditionPropagated, metav1.ConditionTrue, v1alpha1.ReasonNoNodes,
				"generation 0123456789ab is written to the mesh ConfigMap; the mesh has no node to wait for", 2, t1)},
		{"all in sync", accepted, 3, 3,
			cond(v1alpha1.ConditionPropagated, metav1.ConditionTrue, v1alpha1.ReasonPropagated, "3 of 3 nodes applied generation 0123456789ab", 2, t1)},
		{"some in sync", accepted, 2, 1,
			cond(v1alpha1.ConditionPropagated, metav1.ConditionFalse, v1alpha1.ReasonPropagating, "1 of 2 nodes applied generation 0123456789ab", 2, t1)},
		{"none in sync", accepted, 2, 0,
			cond(v1alpha1.ConditionPropagated, metav1.ConditionFalse, v1alpha1.ReasonPropagating, "0 of 2 nodes applied generation 0123456789ab", 2, t1)},
		{"not accepted wins over the nodes", conflicted, 2, 2,
			cond(v1alpha1.ConditionPropagated, metav1.ConditionFalse, v1alpha1.ReasonNotAccepted,
				"the resource is not accepted (Conflicted), so nothing of it is propagated", 2, t1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conds []metav1.Condition
			setPropagatedCondition(&conds, 2, tt.a, nodePropagation(gen, tt.total, tt.inSync), t1)
			if len(conds) != 1 || !equality.Semantic.DeepEqual(conds[0], tt.want) {
				t.Errorf("got %+v\nwant %+v", conds, tt.want)
			}
		})
	}
}

// TestNodesStatusIsStable: the same counts leave the status unchanged, and
// new counts replace it; nil keeps it.
func TestNodesStatusIsStable(t *testing.T) {
	p := nodePropagation("g", 2, 1)
	nodes := &v1alpha1.NodeSyncStatus{Total: 2, InSync: 1}
	st := policyStatus(&v1alpha1.PeerTrustPolicyStatus{}, 1, accepted, p, nodes, true, t0)
	if again := policyStatus(&st, 1, accepted, p, &v1alpha1.NodeSyncStatus{Total: 2, InSync: 1}, true, t1); !equality.Semantic.DeepEqual(st, again) {
		t.Errorf("status changed:\n%+v\n%+v", st, again)
	}
	if st.Nodes == nodes {
		t.Error("status.nodes aliases the count")
	}
	if kept := allowlistStatus(&v1alpha1.PeerAllowlistStatus{Nodes: nodes}, 1, accepted, p, nil, 0, true, t0); kept.Nodes == nil || *kept.Nodes != *nodes {
		t.Errorf("nil nodes did not keep status.nodes: %+v", kept.Nodes)
	}
}

func TestNodeURLs(t *testing.T) {
	admin := discoveryv1.EndpointPort{Name: ptr.To(AdminPortName), Port: ptr.To[int32](9090)}
	other := discoveryv1.EndpointPort{Name: ptr.To("p2p"), Port: ptr.To[int32](4001)}
	ep := func(ready *bool, addrs ...string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	got := nodeURLs([]discoveryv1.EndpointSlice{
		{AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{other, admin},
			Endpoints: []discoveryv1.Endpoint{ep(ptr.To(true), "10.0.0.2"), ep(nil, "10.0.0.1"), ep(ptr.To(false), "10.0.0.3"), ep(nil)}},
		{AddressType: discoveryv1.AddressTypeIPv6, Ports: []discoveryv1.EndpointPort{admin},
			Endpoints: []discoveryv1.Endpoint{ep(ptr.To(true), "fd00::1")}},
		// Same endpoint in two slices (a slice being replaced): one node.
		{AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{admin},
			Endpoints: []discoveryv1.Endpoint{ep(ptr.To(true), "10.0.0.2")}},
		// No admin port, FQDN: no node.
		{AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{other},
			Endpoints: []discoveryv1.Endpoint{ep(ptr.To(true), "10.0.0.9")}},
		{AddressType: discoveryv1.AddressTypeFQDN, Ports: []discoveryv1.EndpointPort{admin},
			Endpoints: []discoveryv1.Endpoint{ep(ptr.To(true), "node.example.com")}},
	})
	want := []string{
		"http://10.0.0.1:9090/debug/config",
		"http://10.0.0.2:9090/debug/config",
		"http://[fd00::1]:9090/debug/config",
	}
	if !slices.Equal(got, want) {
		t.Errorf("nodeURLs = %q\nwant %q", got, want)
	}
}

type fakeProber struct {
	gens              map[string]string
	running, maxSeen  atomic.Int32
	delay             time.Duration
	sawDeadlineWithin time.Duration
	deadlineOK        atomic.Bool
}

func (f *fakeProber) Generation(ctx context.Context, url string) (string, error) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= f.sawDeadlineWithin {
		f.deadlineOK.Store(true)
	}
	time.Sleep(f.delay)
	g, ok := f.gens[url]
	if !ok {
		return "", errors.New("unreachable")
	}
	return g, nil
}

func TestProbeNodesBounded(t *testing.T) {
	f := &fakeProber{gens: map[string]string{}, delay: 10 * time.Millisecond, sawDeadlineWithin: time.Second}
	var urls []string
	for i := range 40 {
		u := "http://n" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "/debug/config"
		urls = append(urls, u)
		switch {
		case i%4 == 0: // unreachable
		case i%2 == 0:
			f.gens[u] = "old"
		default:
			f.gens[u] = "g"
		}
	}
	if got := probeNodes(context.Background(), f, urls, "g", 5, time.Second); got != 20 {
		t.Errorf("in sync %d, want 20", got)
	}
	if m := f.maxSeen.Load(); m > 5 || m < 2 {
		t.Errorf("at most %d probes ran at once, want 2..5", m)
	}
	if !f.deadlineOK.Load() {
		t.Error("probes ran without the timeout")
	}
}

func TestHTTPProber(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case DebugConfigPath:
			_, _ = w.Write([]byte(`{"generation":"abc","config":{"meshName":"m"}}`))
		case "/slow":
			time.Sleep(500 * time.Millisecond)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	p := HTTPProber{}
	if g, err := p.Generation(context.Background(), srv.URL+DebugConfigPath); err != nil || g != "abc" {
		t.Errorf("Generation = %q, %v", g, err)
	}
	if _, err := p.Generation(context.Background(), srv.URL+"/missing"); err == nil {
		t.Error("a 404 is not an error")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Generation(ctx, srv.URL+"/slow"); err == nil {
		t.Error("the timeout was not applied")
	}
}

func TestMeshOfEndpointSlice(t *testing.T) {
	r := &MeshReconciler{}
	es := func(svc string) client.Object {
		o := &discoveryv1.EndpointSlice{}
		o.Namespace = "ns"
		if svc != "" {
			o.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
		}
		return o
	}
	if got := r.meshOfEndpointSlice(context.Background(), es("peermesh-m")); len(got) != 1 || got[0].NamespacedName != (types.NamespacedName{Namespace: "ns", Name: "m"}) {
		t.Errorf("peermesh-m mapped to %v", got)
	}
	for _, svc := range []string{"", "kubernetes", "peermesh-"} {
		if got := r.meshOfEndpointSlice(context.Background(), es(svc)); got != nil {
			t.Errorf("service %q mapped to %v", svc, got)
		}
	}
}

func TestNodeMetrics(t *testing.T) {
	m := NewMetrics()
	a := types.NamespacedName{Namespace: "ns", Name: "a"}
	m.observeMesh(a, nil, true, nil)
	if n := testutil.CollectAndCount(m.Nodes); n != 0 {
		t.Errorf("%d node series before nodes are counted", n)
	}
	m.observeMesh(a, nil, true, &v1alpha1.NodeSyncStatus{Total: 3, InSync: 2})
	if v := testutil.ToFloat64(m.NodesInSync.WithLabelValues("ns", "a")); v != 2 {
		t.Errorf("nodes_in_sync = %v", v)
	}
	if v := testutil.ToFloat64(m.Nodes.WithLabelValues("ns", "a")); v != 3 {
		t.Errorf("nodes = %v", v)
	}
	m.forgetMesh(a)
	if n := testutil.CollectAndCount(m.Nodes) + testutil.CollectAndCount(m.NodesInSync); n != 0 {
		t.Errorf("%d node series after the mesh is gone", n)
	}
}

func TestStripEndpointSlice(t *testing.T) {
	in := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "peermesh-m"},
			Annotations: map[string]string{"x": "y"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(AdminPortName), Port: ptr.To[int32](9090)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Hostname: ptr.To("h"),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)}}},
	}
	out, _ := stripEndpointSlice(in)
	es := out.(*discoveryv1.EndpointSlice)
	if es.Annotations != nil || es.Labels[discoveryv1.LabelServiceName] != "peermesh-m" || es.Endpoints[0].Hostname != nil ||
		es.Endpoints[0].Conditions.Serving != nil || !*es.Endpoints[0].Conditions.Ready || len(es.Ports) != 1 {
		t.Errorf("stripped EndpointSlice %+v", es)
	}
	if in.Endpoints[0].Hostname == nil {
		t.Error("stripEndpointSlice modified its input")
	}
	if got := nodeURLs([]discoveryv1.EndpointSlice{*es}); !slices.Equal(got, []string{"http://10.0.0.1:9090/debug/config"}) {
		t.Errorf("nodeURLs of the stripped slice = %q", got)
	}
}
