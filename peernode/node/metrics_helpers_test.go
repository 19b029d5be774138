package node_test

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/peermesh/peermesh/peernode/node"
)

// registries holds each test node's own metrics registry.
var registries sync.Map // *node.Node -> *prometheus.Registry

// counter returns the sum of the series of family name whose label has value.
func counter(t *testing.T, n *node.Node, name, label, value string) float64 {
	return counterWithLabels(t, n, name, map[string]string{label: value})
}

func counterWithLabels(t *testing.T, n *node.Node, name string, labels map[string]string) float64 {
	t.Helper()
	reg, ok := registries.Load(n)
	if !ok {
		t.Fatalf("node %s has no test registry", n.ID())
	}
	families, err := reg.(*prometheus.Registry).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !matches(m.GetLabel(), labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			}
		}
	}
	return total
}

func matches(pairs []*dto.LabelPair, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, p := range pairs {
			if p.GetName() == k && p.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
