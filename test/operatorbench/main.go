// Command operatorbench measures the peermesh operator against the real test
// control plane (internal/testenv: kube-apiserver and etcd from bin/k8s):
// how long a freshly started operator takes to compile a mesh of many
// PeerAllowlists into its ConfigMap, and how long one changed allowlist
// takes to reach the ConfigMap. The design target is 1,000 allowlists of 10
// entries each compiled in under 5 s.
//
//	go run ./test/operatorbench [-allowlists 1000] [-entries 10] [-parallel 16]
//
// The allowlists are created first, with bounded parallelism, and the
// manager starts afterwards, so the first figure covers what a restarted
// operator does: sync its caches, compile, serialise and write. Each
// configuration's content hash is computed locally beforehand; a figure stops
// when the ConfigMap's p2p.peermesh.io/config-hash annotation shows it.
//
// A ConfigMap holds at most 1 MiB. When the configuration of the requested
// size is larger (with per-rule provenance, 10,000 rules are about 1.2 MB),
// the operator refuses to write it (Propagated=False, WriteFailed) and the
// program reports the time to that verdict, then repeats the measurement
// with the most entries per allowlist that fit.
//
// `make bench` is to run it after test/bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/controllers"
	"github.com/peermesh/peermesh/internal/testenv"
)

// target is the design's bound for compiling 1,000 allowlists x 10 entries.
const target = 5 * time.Second

const mesh = "bench"

func main() {
	allowlists := flag.Int("allowlists", 1000, "PeerAllowlists in the mesh")
	entries := flag.Int("entries", 10, "entries per allowlist (1 to 1024)")
	parallel := flag.Int("parallel", 16, "concurrent creations")
	timeout := flag.Duration("timeout", 5*time.Minute, "bound of each wait")
	flag.Parse()
	if err := run(*allowlists, *entries, *parallel, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "operatorbench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "operatorbench: "+format+"\n", args...)
}

func run(allowlists, entries, parallel int, timeout time.Duration) error {
	if entries < 1 || entries > 1024 || allowlists < 1 {
		return errors.New("-allowlists must be >= 1 and -entries in 1..1024")
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	logf("starting the control plane (%s)", testenv.AssetsDir())
	env, cfg, err := testenv.Start(testenv.Options{CRDDirectoryPaths: []string{testenv.CRDPath()}})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	cfg.QPS, cfg.Burst = -1, 0 // as ctrl.GetConfig: no client-side rate limit

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, scheme: scheme, c: c, parallel: parallel, timeout: timeout}

	res, err := b.runCase("bench-1", allowlists, entries)
	if err != nil {
		return err
	}
	results := []caseResult{res}
	if res.tooLarge {
		fit := entries
		for fit > 1 && res.tooLarge {
			fit--
			_, size := expected(namespaceFor("bench-2"), allowlists, fit, 0)
			res.tooLarge = size > controllers.MaxConfigMapData
		}
		logf("%d x %d does not fit a ConfigMap; measuring %d x %d, the largest that does", allowlists, entries, allowlists, fit)
		res2, err := b.runCase("bench-2", allowlists, fit)
		if err != nil {
			return err
		}
		results = append(results, res2)
	}

	fmt.Println()
	fmt.Println("first: operator start to ConfigMap; reconciled: to the end of the first reconcile (all statuses written);")
	fmt.Println("compile: compile phase of that reconcile; one change: allowlist update to ConfigMap.")
	fmt.Printf("%-30s %-10s %-11s %-9s %-11s %-8s %s\n", "case", "first", "reconciled", "compile", "one change", "target", "result")
	for _, r := range results {
		name := fmt.Sprintf("%d allowlists x %d entries", r.allowlists, r.entries)
		verdict := "ok"
		first, change := r.first, r.change
		switch {
		case r.tooLarge:
			verdict = fmt.Sprintf("NOT WRITTEN: %d rules are %d bytes > %d (ConfigMap limit); times are to the WriteFailed verdict", r.rules, r.size, controllers.MaxConfigMapData)
		case first >= target:
			verdict = "over target"
		}
		if !r.tooLarge {
			verdict += fmt.Sprintf(" (%d rules, %d bytes)", r.rules, r.size)
		}
		fmt.Printf("%-30s %-10s %-11s %-9s %-11s %-8s %s\n", name, round(first), round(r.reconciled), round(r.compile), round(change), "< "+target.String(), verdict)
	}
	return nil
}

func round(d time.Duration) string { return d.Round(time.Millisecond).String() }

type bench struct {
	cfg      *rest.Config
	scheme   *runtime.Scheme
	c        client.WithWatch
	parallel int
	timeout  time.Duration
}

type caseResult struct {
	allowlists, entries int
	rules, size         int
	tooLarge            bool
	// first: operator start to the ConfigMap (to the end of the first
	// reconcile when the configuration is too large); reconciled: to the end
	// of the first reconcile, status patches included; compile: the
	// reconcile's compile phase (peermesh_operator_compile_duration_seconds);
	// change: one allowlist update to the ConfigMap (to the verdict).
	first, reconciled, compile, change time.Duration
}

func namespaceFor(name string) string { return "operator-" + name }

// allowlistFor builds allowlist i of a case: half pod identities, half /32
// CIDRs, all distinct. salt changes allowlist 0's first entry.
func allowlistFor(ns string, i, entries, salt int) *v1alpha1.PeerAllowlist {
	al := &v1alpha1.PeerAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("al-%04d", i)},
		Spec:       v1alpha1.PeerAllowlistSpec{MeshName: mesh},
	}
	for e := range entries {
		n := i*entries + e
		if e%2 == 0 {
			id := v1alpha1.NodeIdentifierForPod("peers", fmt.Sprintf("peer-%d-%d", n, salt*boolInt(i == 0 && e == 0)))
			al.Spec.Peers = append(al.Spec.Peers, v1alpha1.PeerAllowlistEntry{Identifier: v1alpha1.PeerIdentifier(id)})
		} else {
			al.Spec.Peers = append(al.Spec.Peers, v1alpha1.PeerAllowlistEntry{CIDR: v1alpha1.CIDR(fmt.Sprintf("10.%d.%d.%d/32", n>>16&255, n>>8&255, n&255))})
		}
	}
	return al
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// expected compiles the case's configuration locally, as the operator
// compiles a mesh without policy: its generation and serialised size.
func expected(ns string, allowlists, entries, salt int) (string, int) {
	c := v1alpha1.ConfigurationForPolicy(mesh, nil)
	for i := range allowlists {
		c.Allowed = append(c.Allowed, v1alpha1.StaticAllowRules(allowlistFor(ns, i, entries, salt))...)
	}
	c.AllowlistActive = true
	c.Default()
	data, err := c.Marshal()
	if err != nil {
		panic(err)
	}
	// What the ConfigMap stores: the YAML, gzipped when large.
	text, bin, err := v1alpha1.EncodeConfigMapData(data)
	if err != nil {
		panic(err)
	}
	return c.Generation, len(text[v1alpha1.ConfigMapKey]) + len(bin[v1alpha1.ConfigMapGzipKey])
}

func (b *bench) runCase(name string, allowlists, entries int) (caseResult, error) {
	res := caseResult{allowlists: allowlists, entries: entries, rules: allowlists * entries}
	ns := namespaceFor(name)
	ctx, cancel := context.WithTimeout(context.Background(), 4*b.timeout)
	defer cancel()

	gen, size := expected(ns, allowlists, entries, 0)
	res.size, res.tooLarge = size, size > controllers.MaxConfigMapData
	logf("%s: %d allowlists x %d entries = %d rules; configuration %d bytes (ConfigMap limit %d)",
		name, allowlists, entries, res.rules, size, controllers.MaxConfigMapData)

	if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return res, err
	}
	if err := b.createAllowlists(ctx, ns, allowlists, entries); err != nil {
		return res, err
	}

	// Watch the ConfigMap from before the manager starts.
	var cmList corev1.ConfigMapList
	w, err := b.c.Watch(ctx, &cmList, client.InNamespace(ns),
		&client.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", controllers.ConfigMapName(mesh))})
	if err != nil {
		return res, err
	}
	defer w.Stop()
	hashes := make(chan string, 1024)
	go func() {
		for ev := range w.ResultChan() {
			if cm, ok := ev.Object.(*corev1.ConfigMap); ok && ev.Type != watch.Deleted {
				hashes <- cm.Annotations[controllers.AnnotationConfigHash]
			}
		}
		close(hashes)
	}()

	reconciles := make(chan error, 1024)
	var reconciled atomic.Int64
	key := types.NamespacedName{Namespace: ns, Name: mesh}
	mgr, err := ctrl.NewManager(b.cfg, ctrl.Options{
		Scheme:                 b.scheme,
		Cache:                  controllers.CacheOptions([]string{ns}),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             crconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return res, err
	}
	metrics := controllers.NewMetrics()
	if err := metrics.Register(prometheus.NewRegistry()); err != nil {
		return res, err
	}
	r := &controllers.MeshReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder(controllers.EventReporter), Metrics: metrics,
		AfterReconcile: func(m types.NamespacedName, err error) {
			if m == key {
				reconciled.Add(1)
				select {
				case reconciles <- err:
				default:
				}
			}
		},
	}
	mgrCtx, stopMgr := context.WithCancel(ctx)
	var mgrDone sync.WaitGroup
	defer func() { stopMgr(); mgrDone.Wait() }()
	if err := r.SetupWithManager(mgrCtx, mgr, controller.Options{}); err != nil {
		return res, err
	}

	logf("%s: starting the operator", name)
	start := time.Now()
	mgrDone.Go(func() {
		if err := mgr.Start(mgrCtx); err != nil {
			logf("manager: %v", err)
		}
	})
	if !res.tooLarge {
		if res.first, err = waitFor(ctx, b.timeout, start, gen, false, hashes, reconciles); err != nil {
			return res, fmt.Errorf("%s: first compile: %w", name, err)
		}
		logf("%s: ConfigMap written %s after the operator started", name, round(res.first))
	}
	// The first reconcile reports once it has also patched the status of
	// every allowlist (each goes from no status to Accepted).
	select {
	case err := <-reconciles:
		res.reconciled = time.Since(start)
		if !res.tooLarge && err != nil {
			return res, fmt.Errorf("%s: the first reconcile failed: %w", name, err)
		}
	case <-time.After(b.timeout):
		return res, fmt.Errorf("%s: the first reconcile did not end within %s", name, b.timeout)
	}
	if res.tooLarge {
		res.first = res.reconciled
	}
	res.compile = meanCompile(metrics)
	logf("%s: first reconcile ended %s after the start (compile and serialise %s, then the statuses)", name, round(res.reconciled), round(res.compile))
	if err := drainUntilIdle(ctx, b.timeout, reconciles, res.tooLarge); err != nil {
		return res, err
	}
	logf("%s: changing one allowlist", name)

	changed := allowlistFor(ns, 0, entries, 1)
	gen2, _ := expected(ns, allowlists, entries, 1)
	cur := &v1alpha1.PeerAllowlist{}
	if err := b.c.Get(ctx, client.ObjectKeyFromObject(changed), cur); err != nil {
		return res, err
	}
	cur.Spec = changed.Spec
	start = time.Now()
	if err := b.c.Update(ctx, cur); err != nil {
		return res, err
	}
	if res.change, err = waitFor(ctx, b.timeout, start, gen2, res.tooLarge, hashes, reconciles); err != nil {
		return res, fmt.Errorf("%s: recompile: %w", name, err)
	}
	logf("%s: one change compiled in %s (%d reconciles in all)", name, round(res.change), reconciled.Load())

	if !res.tooLarge {
		cm := &corev1.ConfigMap{}
		if err := b.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: controllers.ConfigMapName(mesh)}, cm); err != nil {
			return res, err
		}
		yaml, err := v1alpha1.DecodeConfigMapData(cm.Data, cm.BinaryData)
		if err != nil {
			return res, err
		}
		parsed, err := v1alpha1.ParsePeerNodeConfiguration(yaml)
		if err != nil {
			return res, err
		}
		if len(parsed.Allowed) != res.rules {
			return res, fmt.Errorf("%s: the ConfigMap holds %d rules, want %d", name, len(parsed.Allowed), res.rules)
		}
	}
	return res, nil
}

// createAllowlists creates the allowlists with bounded parallelism.
func (b *bench) createAllowlists(ctx context.Context, ns string, n, entries int) error {
	start := time.Now()
	jobs := make(chan int)
	errs := make(chan error, b.parallel)
	var created atomic.Int64
	var wg sync.WaitGroup
	for range b.parallel {
		wg.Go(func() {
			for i := range jobs {
				if err := b.c.Create(ctx, allowlistFor(ns, i, entries, 0)); err != nil {
					errs <- err
					return
				}
				if c := created.Add(1); c%100 == 0 || int(c) == n {
					logf("  created %d/%d allowlists (%s)", c, n, round(time.Since(start)))
				}
			}
		})
	}
	var err error
feed:
	for i := range n {
		select {
		case jobs <- i:
		case err = <-errs:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// waitFor waits until the ConfigMap shows generation gen or, when the
// configuration is too large, until a reconcile reports the refusal.
func waitFor(ctx context.Context, timeout time.Duration, start time.Time, gen string, tooLarge bool, hashes <-chan string, reconciles <-chan error) (time.Duration, error) {
	deadline := time.After(timeout)
	for {
		select {
		case h, ok := <-hashes:
			if !ok {
				return 0, errors.New("the ConfigMap watch ended")
			}
			if !tooLarge && h == gen {
				return time.Since(start), nil
			}
		case err := <-reconciles:
			if tooLarge && isRefusal(err) {
				return time.Since(start), nil
			}
		case <-deadline:
			return 0, fmt.Errorf("not done within %s", timeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// isRefusal tells a reconcile that refused to write an oversized
// configuration (a terminal error) from one that will be retried.
func isRefusal(err error) bool { return errors.Is(err, reconcile.TerminalError(nil)) }

// meanCompile is the mean of peermesh_operator_compile_duration_seconds.
func meanCompile(m *controllers.Metrics) time.Duration {
	var d dto.Metric
	if err := m.CompileDuration.Write(&d); err != nil || d.GetHistogram().GetSampleCount() == 0 {
		return 0
	}
	h := d.GetHistogram()
	return time.Duration(h.GetSampleSum() / float64(h.GetSampleCount()) * float64(time.Second))
}

// drainUntilIdle consumes reconcile reports until none arrives for a
// second: the operator has nothing left to do for the mesh. Failures other
// than the expected refusal of an oversized configuration are logged.
func drainUntilIdle(ctx context.Context, timeout time.Duration, reconciles <-chan error, tooLarge bool) error {
	deadline := time.After(timeout)
	for {
		select {
		case err := <-reconciles:
			if err != nil && (!tooLarge || !isRefusal(err)) {
				logf("reconcile failed (retried): %v", err)
			}
		case <-time.After(time.Second):
			return nil
		case <-deadline:
			return errors.New("the operator kept reconciling")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
