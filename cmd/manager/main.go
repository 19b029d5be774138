// Command manager is the peermesh operator: a controller-runtime manager
// running the mesh reconciler (package controllers).
//
// Usage:
//
//	manager [flags]     run the operator against the cluster of KUBECONFIG
//	                    (or --kubeconfig, or the in-cluster configuration)
//	manager version     print the version and exit (also --version)
//
// Run `manager --help` for the flags; they keep kubebuilder's names.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/controllers"
	"github.com/peermesh/peermesh/internal/version"
)

// LeaderElectionID is the name of the Lease replicas compete for.
const LeaderElectionID = "peermesh-operator.p2p.peermesh.io"

func main() {
	os.Exit(run(ctrl.SetupSignalHandler(), os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command-line flags.
type options struct {
	metricsAddr         string
	probeAddr           string
	leaderElect         bool
	leaderElectionNS    string
	watchNamespaces     string
	maxConcurrentMeshes int
	showVersion         bool
	zap                 zap.Options
}

func parseFlags(args []string, stderr io.Writer) (*options, *flag.FlagSet, error) {
	o := &options{}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080",
		`address the Prometheus /metrics endpoint binds to (plain HTTP); "0" disables it`)
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081",
		`address the /healthz and /readyz endpoints bind to; "0" disables them`)
	fs.BoolVar(&o.leaderElect, "leader-elect", false,
		"elect a leader among replicas with a Lease, so that only one reconciles; the lease is released on shutdown")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "",
		"namespace of the leader-election Lease (default: the pod's namespace)")
	fs.StringVar(&o.watchNamespaces, "watch-namespaces", "",
		"comma-separated namespaces to watch for resources, pods, secrets and ConfigMaps (empty: all namespaces)")
	fs.IntVar(&o.maxConcurrentMeshes, "max-concurrent-meshes", 2,
		"meshes reconciled in parallel (one mesh is never reconciled twice at once)")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	config.RegisterFlags(fs) // --kubeconfig
	o.zap.BindFlags(fs)      // --zap-devel, --zap-log-level, --zap-encoder, ...
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	return o, fs, nil
}

// splitNamespaces parses --watch-namespaces.
func splitNamespaces(s string) []string {
	var out []string
	for _, ns := range strings.Split(s, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}

// run runs the manager until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "version" {
		fmt.Fprintln(stdout, "manager", version.Version)
		return 0
	}
	o, fs, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if o.showVersion {
		fmt.Fprintln(stdout, "manager", version.Version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "manager: unexpected argument %q (run `manager --help`)\n", fs.Arg(0))
		return 2
	}
	o.zap.DestWriter = stderr
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	logger := ctrl.Log.WithName("setup")
	if err := runManager(ctx, o); err != nil {
		logger.Error(err, "manager stopped")
		return 1
	}
	return 0
}

func runManager(ctx context.Context, o *options) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the Kubernetes client configuration: %w", err)
	}
	namespaces := splitNamespaces(o.watchNamespaces)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(namespaces),
		Metrics:                       metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       o.leaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	metrics := controllers.NewMetrics()
	if err := metrics.Register(crmetrics.Registry); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	r := &controllers.MeshReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder(controllers.EventReporter),
		Metrics:   metrics,
	}
	if err := r.SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: o.maxConcurrentMeshes}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("cache-synced", cacheSynced(mgr.GetCache())); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting the manager", "version", version.Version,
		"watchNamespaces", namespaces, "leaderElect", o.leaderElect)
	return mgr.Start(ctx)
}

// cacheSynced is ready once the informers have synced, so that a replica
// reports Ready only when it could reconcile from a complete view.
func cacheSynced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("informer caches have not synced")
		}
		return nil
	}
}
