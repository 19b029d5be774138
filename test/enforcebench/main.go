// Command enforcebench measures how long a custom-resource change takes to be
// enforced on every node (issue 6's benchmark, part of `make bench`): the
// real control plane, the operator's reconciler in process, and N nodes
// (peernode/node) each following the mesh ConfigMap through the API server
// with peernode/kube, as `peernode run --kube-configmap` does. Each of the
// changes blocks a new identifier in the PeerTrustPolicy; the time is from
// the update call returning to the last node applying the new policy.
//
//	go run ./test/enforcebench [-nodes 50] [-changes 50]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/controllers"
	"github.com/peermesh/peermesh/internal/testenv"
	"github.com/peermesh/peermesh/peernode/kube"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/trust"
)

const (
	namespace = "enforce"
	mesh      = "bench"
	target    = time.Second
)

type applied struct {
	node    int
	blocked string
	at      time.Time
}

func main() {
	nodes := flag.Int("nodes", 50, "nodes following the mesh ConfigMap")
	changes := flag.Int("changes", 50, "policy changes to time")
	flag.Parse()
	if err := run(*nodes, *changes); err != nil {
		fmt.Fprintln(os.Stderr, "enforcebench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "enforcebench: "+format+"\n", args...) }

func run(nodeCount, changes int) error {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	logf("starting the control plane")
	env, cfg, err := testenv.Start(testenv.Options{CRDDirectoryPaths: []string{testenv.CRDPath()}})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	cfg.QPS, cfg.Burst = -1, 0
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Create(ctx, &corev1Namespace); err != nil {
		return err
	}

	logf("starting the operator")
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Cache: controllers.CacheOptions([]string{namespace}),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: crconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return err
	}
	m := controllers.NewMetrics()
	if err := m.Register(prometheus.NewRegistry()); err != nil {
		return err
	}
	r := &controllers.MeshReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder(controllers.EventReporter), Metrics: m}
	if err := r.SetupWithManager(ctx, mgr, controller.Options{}); err != nil {
		return err
	}
	done := make(chan error, nodeCount*2+1)
	go func() { done <- mgr.Start(ctx) }()

	logf("starting %d nodes that follow ConfigMap %s/%s", nodeCount, namespace, controllers.ConfigMapName(mesh))
	events := make(chan applied, nodeCount*4)
	kc := kubernetes.NewForConfigOrDie(cfg)
	quiet := slog.New(slog.DiscardHandler)
	for i := range nodeCount {
		n, err := node.New(node.Config{ID: fmt.Sprintf("node-%02d", i), Mesh: mesh, Policy: trust.FailClosedPolicy()})
		if err != nil {
			return err
		}
		apply := func(_ context.Context, pc *v1alpha1.PeerNodeConfiguration) error {
			p, err := trust.PolicyFromConfig(pc)
			if err != nil {
				return fmt.Errorf("%w: %w", kube.ErrInvalid, err)
			}
			if err := n.SetPolicy(p); err != nil {
				return err
			}
			blocked := ""
			if len(p.Blocked) > 0 {
				blocked = p.Blocked[0].Identifier
			}
			events <- applied{node: i, blocked: blocked, at: time.Now()}
			return nil
		}
		w := kube.NewWatcher(kc, namespace, controllers.ConfigMapName(mesh), apply, nil, quiet)
		go func() { done <- n.Run(ctx) }()
		go func() { done <- w.Run(ctx) }()
	}

	policy := &v1alpha1.PeerTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "p"},
		Spec: v1alpha1.PeerTrustPolicySpec{MeshName: mesh}}
	if err := c.Create(ctx, policy); err != nil {
		return err
	}
	if _, err := waitAll(events, nodeCount, "", 60*time.Second); err != nil {
		return fmt.Errorf("initial configuration: %w", err)
	}
	logf("every node applied the initial configuration; timing %d changes", changes)

	var lat []time.Duration
	for i := range changes {
		ghost := fmt.Sprintf("ghost-%03d", i)
		// A merge patch of the spec, as `kubectl patch` sends: the operator
		// writes the status at the same time.
		patch := []byte(`{"spec":{"blocked":{"identifiers":["` + ghost + `"]}}}`)
		start := time.Now()
		if err := c.Patch(ctx, policy, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return err
		}
		last, err := waitAll(events, nodeCount, ghost, 30*time.Second)
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		lat = append(lat, last.Sub(start))
		if (i+1)%10 == 0 {
			logf("%d/%d changes enforced on all %d nodes", i+1, changes, nodeCount)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p/100)] }
	p50, p99 := pct(50), pct(99)
	verdict := "met"
	if p99 >= target {
		verdict = "MISSED"
	}
	fmt.Printf("\nCR change to enforcement on every node (%d nodes, %d changes): p50 %s, p99 %s, max %s; target p99 < %s: %s\n",
		nodeCount, changes, p50.Round(time.Millisecond), p99.Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), target, verdict)
	cancel()
	return nil
}

// waitAll waits until every node applied a policy whose first blocked
// identifier is blocked and returns when the last one did.
func waitAll(events <-chan applied, n int, blocked string, timeout time.Duration) (time.Time, error) {
	seen := make(map[int]time.Time, n)
	deadline := time.After(timeout)
	for len(seen) < n {
		select {
		case e := <-events:
			if e.blocked == blocked {
				seen[e.node] = e.at
			}
		case <-deadline:
			return time.Time{}, fmt.Errorf("only %d of %d nodes applied it within %s", len(seen), n, timeout)
		}
	}
	var last time.Time
	for _, t := range seen {
		if t.After(last) {
			last = t
		}
	}
	return last, nil
}
