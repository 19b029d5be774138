package monitoring

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/peermesh/peermesh/controllers"
	"github.com/peermesh/peermesh/peernode/metrics"
)

// registry is the set of metric names the code registers, each with where
// it comes from, and which of them are histograms (whose series are
// <name>_bucket, <name>_sum and <name>_count).
type registry struct {
	names      map[string]string // name -> source
	histograms map[string]bool
}

var (
	registryOnce sync.Once
	theRegistry  *registry
	registryErr  error
)

// registered returns the names registered by the node (peernode/metrics),
// the operator (controllers), controller-runtime (the metrics of a running
// controller, from controller-runtime's registry, which the operator
// serves), and Prometheus's own up.
func registered(t *testing.T) *registry {
	t.Helper()
	registryOnce.Do(func() { theRegistry, registryErr = buildRegistry() })
	if registryErr != nil {
		t.Fatal(registryErr)
	}
	return theRegistry
}

func buildRegistry() (*registry, error) {
	r := &registry{names: map[string]string{}, histograms: map[string]bool{}}
	var empty []string
	add := func(source string, names []string) {
		if len(names) == 0 {
			empty = append(empty, source)
		}
		for _, n := range names {
			r.names[n] = source
		}
	}
	addHistograms := func(mfs []*dto.MetricFamily) {
		for _, mf := range mfs {
			if mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_GAUGE_HISTOGRAM {
				r.histograms[mf.GetName()] = true
			}
		}
	}

	// The node.
	add("peernode/metrics.Names", metrics.Names())
	nodeReg := prometheus.NewRegistry()
	if _, err := metrics.New(nodeReg); err != nil {
		return nil, err
	}
	mfs, err := nodeReg.Gather()
	if err != nil {
		return nil, err
	}
	addHistograms(mfs)

	// The operator.
	add("controllers.MetricNames", controllers.MetricNames())
	opReg := prometheus.NewRegistry()
	if err := controllers.NewMetrics().Register(opReg); err != nil {
		return nil, err
	}
	if mfs, err = opReg.Gather(); err != nil {
		return nil, err
	}
	addHistograms(mfs)

	// controller-runtime.
	if mfs, err = controllerRuntimeFamilies(); err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		r.names[mf.GetName()] = "controller-runtime"
	}
	addHistograms(mfs)

	// Prometheus: the health of every target.
	r.names["up"] = "Prometheus"
	if len(empty) > 0 {
		return nil, fmt.Errorf("%v list no metric", empty)
	}
	return r, nil
}

// controllerRuntimeFamilies runs a controller through one reconcile, so that
// controller-runtime's per-controller metrics have series, and gathers its
// registry (sigs.k8s.io/controller-runtime/pkg/metrics.Registry, which the
// operator's /metrics serves).
func controllerRuntimeFamilies() ([]*dto.MetricFamily, error) {
	reconciled := make(chan struct{})
	var once sync.Once
	c, err := controller.NewUnmanaged("monitoring-names", controller.Options{
		Reconciler: reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
			once.Do(func() { close(reconciled) })
			return reconcile.Result{}, nil
		}),
	})
	if err != nil {
		return nil, err
	}
	err = c.Watch(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: "one"}})
		return nil
	}))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	select {
	case <-reconciled:
	case err := <-done:
		return nil, fmt.Errorf("controller stopped before reconciling: %w", err)
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("controller did not reconcile within 30s")
	}
	cancel()
	if err := <-done; err != nil { // the worker has finished: its metrics are recorded
		return nil, err
	}
	return crmetrics.Registry.Gather()
}

// check returns why name is not a name Prometheus gets from the code, or
// nil.
func (r *registry) check(name string) error {
	if _, ok := r.names[name]; ok {
		if r.histograms[name] {
			return fmt.Errorf("%s is a histogram: Prometheus stores %[1]s_bucket, %[1]s_sum and %[1]s_count", name)
		}
		return nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && r.histograms[base] {
			return nil
		}
	}
	return fmt.Errorf("%s is not registered by the code (node: peernode/metrics.Names, operator: controllers.MetricNames, controller-runtime, up)", name)
}

// chartExpr is a PromQL expression of the chart.
type chartExpr struct {
	where string
	expr  string
}

// chartExprs returns every PromQL expression of the rules and of the
// dashboard (as written, variables included).
func chartExprs(t *testing.T) []chartExpr {
	t.Helper()
	var out []chartExpr
	for _, r := range loadRules(t) {
		out = append(out, chartExpr{"rule " + r.Alert + r.Record, r.Expr})
	}
	for _, q := range loadDashboard(t).queries(t) {
		out = append(out, chartExpr{"dashboard " + q.Where, q.Expr})
	}
	return out
}

// chartNames returns the metric names of the chart's expressions, each with
// the first place that uses it.
func chartNames(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{}
	for _, e := range chartExprs(t) {
		ns, err := metricNames(e.expr)
		if err != nil {
			t.Fatalf("%s: %v", e.where, err)
		}
		if len(ns) == 0 {
			t.Errorf("%s: no metric name in %q", e.where, e.expr)
		}
		for _, n := range ns {
			if _, ok := names[n]; !ok {
				names[n] = e.where
			}
		}
	}
	return names
}

// TestChartMetricNamesAreRegistered: every metric name of the alert rules and
// of the dashboard is a name the code registers. Renaming a metric in the
// code, or misspelling one in the chart, fails it.
func TestChartMetricNamesAreRegistered(t *testing.T) {
	reg := registered(t)
	used := chartNames(t)
	for _, n := range slices.Sorted(maps.Keys(used)) {
		if err := reg.check(n); err != nil {
			t.Errorf("%s: %v", used[n], err)
		}
	}
	// Names of the node and the operator that neither the dashboard nor the
	// rules use (they are still on /metrics).
	var unused []string
	for n, src := range reg.names {
		if src == "controller-runtime" || src == "Prometheus" {
			continue
		}
		_, direct := used[n]
		_, bucket := used[n+"_bucket"]
		if !direct && !bucket {
			unused = append(unused, n)
		}
	}
	slices.Sort(unused)
	t.Logf("chart uses %d metric names; node and operator metrics it does not use: %v", len(used), unused)
}

// TestNameCheckCatchesRenames proves that the check above has teeth: with
// any of the node's or operator's metrics the chart uses gone from the code
// (renamed), it reports that name.
func TestNameCheckCatchesRenames(t *testing.T) {
	reg := registered(t)
	used := chartNames(t)
	tried := 0
	for n := range used {
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && reg.histograms[b] {
				base = b
			}
		}
		if !strings.HasPrefix(base, "peermesh_") {
			continue
		}
		tried++
		renamed := &registry{names: maps.Clone(reg.names), histograms: maps.Clone(reg.histograms)}
		delete(renamed.names, base)
		delete(renamed.histograms, base)
		renamed.names[base+"_renamed"] = "test"
		if err := renamed.check(n); err == nil {
			t.Errorf("with %s renamed, %s passes the check", base, n)
		}
	}
	if tried < 10 {
		t.Errorf("only %d peermesh metric names in the chart", tried)
	}
	if err := reg.check("peermesh_node_rtt_seconds"); err == nil {
		t.Error("a histogram's bare name passes the check")
	}
	if err := reg.check("peermesh_node_known_peers_total"); err == nil {
		t.Error("an unregistered name passes the check")
	}
}

// TestDashboardCoversIssuePanels: the dashboard shows what issue 7 asks for
// (peers; channels by trust and direction; packet and byte rates by type;
// denials by reason and mode; RTT quantiles; configuration generation per
// node and propagation; operator reconcile rate, errors and duration).
func TestDashboardCoversIssuePanels(t *testing.T) {
	var all strings.Builder
	for _, q := range loadDashboard(t).queries(t) {
		all.WriteString(q.Expr)
		all.WriteByte('\n')
	}
	text := all.String()
	for _, want := range []string{
		"peermesh_node_known_peers",
		"sum by (direction, trusted) (peermesh_node_channels",
		"sum by (type) (rate(peermesh_node_packets_sent_total",
		"sum by (type) (rate(peermesh_node_packets_received_total",
		"sum by (type) (rate(peermesh_node_bytes_sent_total",
		"sum by (type) (rate(peermesh_node_bytes_received_total",
		"sum by (reason, mode) (rate(peermesh_node_policy_denials_total",
		"histogram_quantile(0.5, sum by (le) (rate(peermesh_node_rtt_seconds_bucket",
		"histogram_quantile(0.99, sum by (le) (rate(peermesh_node_rtt_seconds_bucket",
		"max by (namespace, pod, instance, mesh, generation) (peermesh_node_config_info",
		"peermesh_operator_nodes{",
		"peermesh_operator_nodes_in_sync{",
		"rate(controller_runtime_reconcile_total",
		"rate(controller_runtime_reconcile_errors_total",
		"rate(controller_runtime_reconcile_time_seconds_bucket",
		"peermesh_operator_compile_duration_seconds_bucket",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no dashboard query contains %q", want)
		}
	}
}
