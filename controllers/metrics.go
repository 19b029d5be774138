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
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// Values of the state label of peermesh_operator_policies.
const (
	StateAccepted       = "accepted"
	StateConflicted     = "conflicted"
	StateInvalid        = "invalid"
	StateSecretNotFound = "secret_not_found"
)

// Values of the result label of peermesh_operator_configmap_writes_total.
const (
	WriteCreated = "created"
	WriteUpdated = "updated"
	WriteDeleted = "deleted"
	WriteError   = "error"
)

var (
	metricKinds  = []string{v1alpha1.SourceKindPeerTrustPolicy, v1alpha1.SourceKindPeerAllowlist}
	metricStates = []string{StateAccepted, StateConflicted, StateInvalid, StateSecretNotFound}
)

// stateOfReason maps an Accepted reason to a state label value.
func stateOfReason(reason string) string {
	switch reason {
	case v1alpha1.ReasonAccepted:
		return StateAccepted
	case v1alpha1.ReasonConflicted:
		return StateConflicted
	case v1alpha1.ReasonSecretNotFound:
		return StateSecretNotFound
	default:
		return StateInvalid
	}
}

// Metrics are the operator's Prometheus collectors. They cover the meshes
// this replica reconciles: a replica that is not the leader reports zeros.
//
// The node gauges have a series per mesh (labels namespace, mesh): meshes
// are few. A mesh's series exist once its nodes were counted, and are
// deleted when the mesh has no resource left.
//
// Metrics is safe for concurrent use.
type Metrics struct {
	// Policies counts the PeerTrustPolicy and PeerAllowlist resources by
	// kind and state (accepted, conflicted, invalid, secret_not_found).
	Policies *prometheus.GaugeVec
	// CompiledMeshes counts the meshes whose ConfigMap holds the
	// configuration compiled from their current resources.
	CompiledMeshes prometheus.Gauge
	// CompileDuration observes the time to read a mesh's inputs from the
	// cache and compile (and serialise) its configuration.
	CompileDuration prometheus.Histogram
	// ConfigMapWrites counts writes of mesh ConfigMaps by result (created,
	// updated, deleted, error). A reconcile of unchanged inputs writes
	// nothing and counts nothing.
	ConfigMapWrites *prometheus.CounterVec
	// Nodes counts the nodes of each mesh (ready endpoints of the mesh's
	// Service), by namespace and mesh.
	Nodes *prometheus.GaugeVec
	// NodesInSync counts the nodes of each mesh that applied its current
	// configuration, by namespace and mesh.
	NodesInSync *prometheus.GaugeVec

	mu     sync.Mutex
	meshes map[types.NamespacedName]meshMetrics
}

type meshMetrics struct {
	states   map[[2]string]int // [kind, state] -> count
	compiled bool
}

// NewMetrics returns unregistered collectors; see Register.
func NewMetrics() *Metrics {
	m := &Metrics{
		Policies: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "peermesh_operator_policies",
			Help: "PeerTrustPolicy and PeerAllowlist resources by kind and state (accepted, conflicted, invalid, secret_not_found).",
		}, []string{"kind", "state"}),
		CompiledMeshes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "peermesh_operator_compiled_meshes",
			Help: "Meshes whose ConfigMap holds the configuration compiled from their current resources.",
		}),
		CompileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "peermesh_operator_compile_duration_seconds",
			Help:    "Time to read a mesh's resources from the cache and compile its configuration.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		ConfigMapWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peermesh_operator_configmap_writes_total",
			Help: "Writes of mesh ConfigMaps by result (created, updated, deleted, error).",
		}, []string{"result"}),
		Nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "peermesh_operator_nodes",
			Help: "Nodes of a mesh: ready endpoints of its Service peermesh-<mesh>.",
		}, []string{"namespace", "mesh"}),
		NodesInSync: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "peermesh_operator_nodes_in_sync",
			Help: "Nodes of a mesh that report the generation of its current configuration.",
		}, []string{"namespace", "mesh"}),
		meshes: map[types.NamespacedName]meshMetrics{},
	}
	// Every series exists from the start, so that rate() and alerts see
	// zeros rather than absent series.
	for _, k := range metricKinds {
		for _, s := range metricStates {
			m.Policies.WithLabelValues(k, s)
		}
	}
	for _, r := range []string{WriteCreated, WriteUpdated, WriteDeleted, WriteError} {
		m.ConfigMapWrites.WithLabelValues(r)
	}
	return m
}

// Register registers the collectors on reg (in the manager,
// sigs.k8s.io/controller-runtime/pkg/metrics.Registry).
func (m *Metrics) Register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.Policies, m.CompiledMeshes, m.CompileDuration, m.ConfigMapWrites, m.Nodes, m.NodesInSync} {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}

// MetricNames returns the name of every metric family Register registers,
// sorted: the operator's names that dashboards and alert rules may use (a
// histogram's series add _bucket, _sum and _count). test/monitoring checks
// the chart's dashboard and alert rules against it.
func MetricNames() []string {
	var r nameRecorder
	_ = NewMetrics().Register(&r) // nameRecorder.Register never fails
	slices.Sort(r.names)
	return slices.Compact(r.names)
}

// nameRecorder is a prometheus.Registerer that records the metric names
// of what is registered on it, from the collectors' descriptions.
type nameRecorder struct{ names []string }

func (r *nameRecorder) Register(c prometheus.Collector) error {
	descs := make(chan *prometheus.Desc)
	go func() {
		c.Describe(descs)
		close(descs)
	}()
	for d := range descs {
		// Desc has no accessor for its name; String starts with
		// Desc{fqName: "<name>", ...
		s := strings.TrimPrefix(d.String(), "Desc{fqName: ")
		if name, err := strconv.QuotedPrefix(s); err == nil {
			name, _ = strconv.Unquote(name)
			r.names = append(r.names, name)
		}
	}
	return nil
}

func (r *nameRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *nameRecorder) Unregister(prometheus.Collector) bool { return false }

// observeMesh records the states of a mesh's resources and whether its
// ConfigMap is up to date, replacing what was recorded for it before; nodes,
// when not nil, are its counted nodes (nil keeps the last count).
func (m *Metrics) observeMesh(key types.NamespacedName, states map[[2]string]int, compiled bool, nodes *v1alpha1.NodeSyncStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.meshes[key] = meshMetrics{states: states, compiled: compiled}
	if nodes != nil {
		m.Nodes.WithLabelValues(key.Namespace, key.Name).Set(float64(nodes.Total))
		m.NodesInSync.WithLabelValues(key.Namespace, key.Name).Set(float64(nodes.InSync))
	}
	m.publishLocked()
}

// forgetMesh drops a mesh that has no resource left.
func (m *Metrics) forgetMesh(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Nodes.DeleteLabelValues(key.Namespace, key.Name)
	m.NodesInSync.DeleteLabelValues(key.Namespace, key.Name)
	if _, ok := m.meshes[key]; !ok {
		return
	}
	delete(m.meshes, key)
	m.publishLocked()
}

func (m *Metrics) publishLocked() {
	totals := map[[2]string]int{}
	compiled := 0
	for _, mm := range m.meshes {
		for k, n := range mm.states {
			totals[k] += n
		}
		if mm.compiled {
			compiled++
		}
	}
	for _, k := range metricKinds {
		for _, s := range metricStates {
			m.Policies.WithLabelValues(k, s).Set(float64(totals[[2]string{k, s}]))
		}
	}
	m.CompiledMeshes.Set(float64(compiled))
}
