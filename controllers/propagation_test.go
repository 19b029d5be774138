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

package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/controllers"
)

// fakeNode is a node admin server on loopback that serves /debug/config
// with a generation the test chooses.
type fakeNode struct {
	srv *httptest.Server
	mu  sync.Mutex
	gen string
}

func newFakeNode(t *testing.T, gen string) *fakeNode {
	t.Helper()
	n := &fakeNode{gen: gen}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+controllers.DebugConfigPath, func(w http.ResponseWriter, _ *http.Request) {
		n.mu.Lock()
		g := n.gen
		n.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"generation": g, "config": map[string]any{}})
	})
	n.srv = httptest.NewServer(mux)
	t.Cleanup(n.srv.Close)
	return n
}

func (n *fakeNode) setGeneration(gen string) {
	n.mu.Lock()
	n.gen = gen
	n.mu.Unlock()
}

func (n *fakeNode) port(t *testing.T) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(n.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(port)
}

// nodeAddress is the endpoint address of the fake nodes. The API server
// refuses loopback addresses in EndpointSlices ("may not be in the loopback
// range"), so the slices carry a TEST-NET-1 address and the suite's prober
// (loopbackProber) dials 127.0.0.1 on the same port instead: the probes are
// real HTTP requests to the fake nodes.
const nodeAddress = "192.0.2.1"

// loopbackProber is controllers.HTTPProber with a dialer that sends
// connections for 192.0.2.0/24 to 127.0.0.1, same port.
func loopbackProber() controllers.NodeProber {
	var d net.Dialer
	return controllers.HTTPProber{Client: &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip := net.ParseIP(host); ip != nil && ip.To4() != nil && ip.To4()[0] == 192 && ip.To4()[1] == 0 && ip.To4()[2] == 2 {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return d.DialContext(ctx, network, addr)
		},
	}}}
}

// nodeSlice is an EndpointSlice of the mesh's Service with one ready
// endpoint, nodeAddress, whose admin port is the fake node's: each node gets
// its own slice, since a slice has one port per name.
func nodeSlice(t *testing.T, ns, mesh, name string, n *fakeNode) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: controllers.ServiceName(mesh)}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{nodeAddress},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("p2p"), Port: ptr.To[int32](4001), Protocol: ptr.To(corev1.ProtocolTCP)},
			{Name: ptr.To(controllers.AdminPortName), Port: ptr.To(n.port(t)), Protocol: ptr.To(corev1.ProtocolTCP)},
		},
	}
}

// waitNodes waits until obj reports Propagated with status and reason, for
// its generation, and status.nodes equal to want.
func waitNodes(t *testing.T, obj client.Object, status metav1.ConditionStatus, reason string, want v1alpha1.NodeSyncStatus) {
	t.Helper()
	waitCondition(t, obj, v1alpha1.ConditionPropagated, status, reason)
	eventually(t, fmt.Sprintf("%s to report nodes %+v", obj.GetName(), want), func() (bool, string) {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err.Error()
		}
		var got *v1alpha1.NodeSyncStatus
		switch o := obj.(type) {
		case *v1alpha1.PeerTrustPolicy:
			got = o.Status.Nodes
		case *v1alpha1.PeerAllowlist:
			got = o.Status.Nodes
		}
		c := findCond(statusOf2(obj), v1alpha1.ConditionPropagated)
		if got == nil || *got != want || c.Reason != reason {
			return false, fmt.Sprintf("nodes %+v, Propagated %s/%s: %s", got, c.Status, c.Reason, c.Message)
		}
		return true, ""
	})
}

func statusOf2(obj client.Object) []metav1.Condition {
	conds, _ := statusOf(obj)
	return conds
}

// TestPropagation counts the nodes of a mesh through the EndpointSlices of
// its Service and their /debug/config.
func TestPropagation(t *testing.T) {
	ns := newNamespace(t, nil)
	p := policy(ns, "p", "m")
	al := allowlist(ns, "al", "m", v1alpha1.PeerAllowlistEntry{Identifier: "a"})
	create(t, p, al)
	op := startOperator(t, ns)

	// No EndpointSlice: NoNodes, True, so that kubectl wait does not hang.
	waitNodes(t, p, metav1.ConditionTrue, v1alpha1.ReasonNoNodes, v1alpha1.NodeSyncStatus{})
	waitCondition(t, p, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
	cm, cfg := waitConfig(t, ns, "m", "the ConfigMap", nil)
	gen := cm.Annotations[controllers.AnnotationConfigHash]
	if gen == "" || gen != cfg.Generation {
		t.Fatalf("config-hash %q, generation %q", gen, cfg.Generation)
	}

	// Two nodes, one of them on an older generation: Propagating, 1 of 2.
	current, old := newFakeNode(t, gen), newFakeNode(t, "0ld")
	create(t, nodeSlice(t, ns, "m", "peermesh-m-a", current), nodeSlice(t, ns, "m", "peermesh-m-b", old),
		// Not the mesh's Service: ignored.
		nodeSlice(t, ns, "other", "peermesh-other-a", old))
	waitNodes(t, p, metav1.ConditionFalse, v1alpha1.ReasonPropagating, v1alpha1.NodeSyncStatus{Total: 2, InSync: 1})
	waitNodes(t, al, metav1.ConditionFalse, v1alpha1.ReasonPropagating, v1alpha1.NodeSyncStatus{Total: 2, InSync: 1})
	if msg := findCond(p.Status.Conditions, v1alpha1.ConditionPropagated).Message; msg != fmt.Sprintf("1 of 2 nodes applied generation %.12s", gen) {
		t.Errorf("Propagating message %q", msg)
	}
	waitCondition(t, p, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonPropagating)
	key := meshKey(ns, "m")
	eventually(t, "nodes gauges 2/1", func() (bool, string) {
		total := gaugeValue(t, op.metrics.Nodes.WithLabelValues(ns, "m"))
		in := gaugeValue(t, op.metrics.NodesInSync.WithLabelValues(ns, "m"))
		return total == 2 && in == 1, fmt.Sprintf("nodes %v in sync %v", total, in)
	})

	// While nothing changes, requeued reconciles probe again but write
	// nothing.
	before := resourceVersions(t, ns)
	n := op.reconciledCount(key)
	op.waitReconciled(t, key, n+2)
	if after := resourceVersions(t, ns); fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("probing unchanged nodes wrote:\n before %v\n after  %v", before, after)
	}

	// The lagging node applies the generation: Propagated, 2 of 2 (found by
	// the requeue, since nothing in the cluster changed).
	old.setGeneration(gen)
	waitNodes(t, p, metav1.ConditionTrue, v1alpha1.ReasonPropagated, v1alpha1.NodeSyncStatus{Total: 2, InSync: 2})
	waitNodes(t, al, metav1.ConditionTrue, v1alpha1.ReasonPropagated, v1alpha1.NodeSyncStatus{Total: 2, InSync: 2})
	waitCondition(t, al, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
	eventually(t, "nodes in sync gauge 2", func() (bool, string) {
		in := gaugeValue(t, op.metrics.NodesInSync.WithLabelValues(ns, "m"))
		return in == 2, fmt.Sprint(in)
	})

	// A node that is not ready does not count.
	update(t, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "peermesh-m-b"}},
		func(es *discoveryv1.EndpointSlice) { es.Endpoints[0].Conditions.Ready = ptr.To(false) })
	waitNodes(t, p, metav1.ConditionTrue, v1alpha1.ReasonPropagated, v1alpha1.NodeSyncStatus{Total: 1, InSync: 1})

	// A new configuration: the nodes lag until they apply it.
	update(t, al, func(al *v1alpha1.PeerAllowlist) {
		al.Spec.Peers = append(al.Spec.Peers, v1alpha1.PeerAllowlistEntry{Identifier: "b"})
	})
	waitNodes(t, al, metav1.ConditionFalse, v1alpha1.ReasonPropagating, v1alpha1.NodeSyncStatus{Total: 1, InSync: 0})
	cm, _ = waitConfig(t, ns, "m", "the new configuration", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return c.Generation != gen, c.Generation
	})
	current.setGeneration(cm.Annotations[controllers.AnnotationConfigHash])
	waitNodes(t, al, metav1.ConditionTrue, v1alpha1.ReasonPropagated, v1alpha1.NodeSyncStatus{Total: 1, InSync: 1})

	// A settled mesh with nodes: a restarted operator writes nothing.
	before = resourceVersions(t, ns)
	op.stop(t)
	second := startOperator(t, ns)
	second.waitReconciled(t, key, 1)
	if after := resourceVersions(t, ns); fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("the restarted operator wrote:\n before %v\n after  %v", before, after)
	}

	// The mesh disappears: its node series are deleted.
	deleteObj(t, p, al)
	eventually(t, "the mesh's node series to be deleted", func() (bool, string) {
		n, in := testutil.CollectAndCount(second.metrics.Nodes), testutil.CollectAndCount(second.metrics.NodesInSync)
		return n == 0 && in == 0, fmt.Sprintf("%d and %d series", n, in)
	})
}
