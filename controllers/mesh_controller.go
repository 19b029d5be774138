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
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// ControllerName names the mesh controller in logs, metrics
// (controller_runtime_reconcile_total{controller="mesh"}) and events.
const ControllerName = "mesh"

// EventReporter is the reportingController of the operator's events.
const EventReporter = "peermesh-operator"

// conflictRequeue is how soon a reconcile whose status patch met a newer
// stored status runs again.
const conflictRequeue = 100 * time.Millisecond

// RBAC of the manager, generated into config/rbac/role.yaml by
// `make manifests`. The reconciler reads everything but ConfigMaps through the
// cache, which only lists and watches, so it has no get on Secrets, Pods or
// Namespaces; it writes only ConfigMaps, statuses and events.
//
// +kubebuilder:rbac:groups=p2p.peermesh.io,resources=peertrustpolicies;peerallowlists,verbs=get;list;watch
// +kubebuilder:rbac:groups=p2p.peermesh.io,resources=peertrustpolicies/status;peerallowlists/status,verbs=update;patch
// +kubebuilder:rbac:groups="",resources=secrets;pods;namespaces,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

// MeshReconciler compiles the PeerTrustPolicy and PeerAllowlist resources of
// one mesh into its ConfigMap. It then counts the mesh's nodes (endpoints of
// the EndpointSlices of Service peermesh-<mesh>, see ServiceName) that
// applied it. Requests are synthetic: Namespace is the mesh's namespace and
// Name its meshName.
type MeshReconciler struct {
	// Client reads through the manager's cache (CacheOptions) and writes to
	// the API server.
	Client client.Client
	// APIReader reads around the cache; it is used only to explain a
	// ConfigMap name that is taken by a ConfigMap the cache does not hold.
	APIReader client.Reader
	// Recorder emits the Accepted, Conflicted, Compiled and warning events.
	Recorder events.EventRecorder
	// Metrics receives the operator metrics; required.
	Metrics *Metrics

	// AfterReconcile, when set, is called at the end of every reconcile with
	// its mesh and outcome. Tests and benchmarks use it to know that a mesh
	// was reconciled; it must not block.
	AfterReconcile func(mesh types.NamespacedName, err error)
	// Now is the clock of condition transitions; nil means time.Now.
	Now func() time.Time
	// StatusPatchParallelism bounds the concurrent status patches of one
	// reconcile (a mesh may hold a thousand allowlists); 0 means 8.
	StatusPatchParallelism int

	// Prober reads the configuration generation of a node from its
	// /debug/config URL; nil means HTTPProber{}.
	Prober NodeProber
	// ProbeParallelism bounds the concurrent node probes of one mesh; 0
	// means 16.
	ProbeParallelism int
	// ProbeTimeout bounds one node probe; 0 means 2 s.
	ProbeTimeout time.Duration
	// PropagationRequeue is how soon a mesh whose nodes are not all in sync
	// is reconciled again; 0 means 2 s.
	PropagationRequeue time.Duration

	// rendered remembers the last serialised configuration of each mesh by
	// generation, so that reconciles of unchanged inputs compare bytes
	// instead of serialising again (YAML of 10,000 rules takes a second).
	renderedMu sync.Mutex
	rendered   map[types.NamespacedName]renderedConfig
}

type renderedConfig struct {
	generation string
	data       string
	cmData     map[string]string
	cmBinary   map[string][]byte
}

// SetupWithManager registers the field indexes and the watches, and adds the
// controller to mgr. opts are passed to the controller (tests set
// SkipNameValidation to run several managers in one process).
func (r *MeshReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if r.Client == nil || r.Metrics == nil || r.Recorder == nil {
		return errors.New("MeshReconciler: Client, Recorder and Metrics are required")
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if err := setupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	err := ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		WithOptions(opts).
		Watches(&v1alpha1.PeerTrustPolicy{}, handler.EnqueueRequestsFromMapFunc(r.meshOfResource),
			builder.WithPredicates(specOrStatusChanged)).
		Watches(&v1alpha1.PeerAllowlist{}, handler.EnqueueRequestsFromMapFunc(r.meshOfResource),
			builder.WithPredicates(specOrStatusChanged)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.meshOfConfigMap)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.meshesOfSecret),
			builder.WithPredicates(secretKeysChanged)).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.meshesOfPod),
			builder.WithPredicates(podPeerFieldsChanged)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.meshesOfNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.meshOfEndpointSlice)).
		Complete(r)
	if err != nil {
		return fmt.Errorf("building the %s controller: %w", ControllerName, err)
	}
	return nil
}

// Reconcile compiles one mesh. The phases run over a meshScope; the deferred
// status patch runs whatever happens after the mesh's resources are listed,
// and sets observedGeneration only when the reconcile succeeded. Once the
// ConfigMap holds the configuration, the mesh's nodes are probed; while some
// lag, the mesh is requeued after PropagationRequeue.
func (r *MeshReconciler) Reconcile(ctx context.Context, req reconcile.Request) (result reconcile.Result, retErr error) {
	mesh := req.NamespacedName
	if r.AfterReconcile != nil {
		defer func() { r.AfterReconcile(mesh, retErr) }()
	}

	s, err := r.loadScope(ctx, mesh)
	if err != nil {
		return reconcile.Result{}, err
	}
	if s.empty() {
		return reconcile.Result{}, r.deleteConfigMap(ctx, s)
	}

	defer func() {
		err := r.patchStatuses(ctx, s, retErr == nil)
		if retErr == nil && apierrors.IsConflict(err) {
			// The cache lags behind a status this controller wrote: not an
			// error, retry once the cache has caught up.
			log.FromContext(ctx).V(1).Info("status changed since it was read; retrying", "reason", err.Error())
			result, err = reconcile.Result{RequeueAfter: conflictRequeue}, nil
		}
		if err != nil {
			retErr = errors.Join(retErr, err)
		}
		r.observeMetrics(s, retErr == nil)
	}()

	start := time.Now()
	if err := r.resolvePolicies(ctx, s); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.compileAllowlists(ctx, s); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.compileConfiguration(ctx, s); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.render(s); err != nil {
		return reconcile.Result{}, err
	}
	r.Metrics.CompileDuration.Observe(time.Since(start).Seconds())

	if err := r.writeConfigMap(ctx, s); err != nil {
		return reconcile.Result{}, err
	}
	return r.measurePropagation(ctx, s)
}

func (r *MeshReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
