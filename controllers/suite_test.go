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
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/controllers"
	"github.com/peermesh/peermesh/internal/testenv"
)

// The suite starts the real control plane once; each test gets its own
// namespaces and its own manager restricted to them (the --watch-namespaces
// mode), so tests cannot see each other's resources.
var (
	testEnv *envtest.Environment
	testCfg *rest.Config
	scheme  = runtime.NewScheme()
	k8s     client.Client // direct client: no cache between tests and the API server
)

// waitTimeout bounds every wait of the suite; the machine is small and
// shared, so it is generous, but a wait ends as soon as its condition holds.
const waitTimeout = 60 * time.Second

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	logs := io.Discard
	if os.Getenv("PEERMESH_TEST_LOG") != "" {
		logs = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true)))

	env, cfg, err := testenv.Start(testenv.Options{CRDDirectoryPaths: []string{testenv.CRDPath()}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "controllers suite:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()
	cfg.QPS, cfg.Burst = -1, 0 // as ctrl.GetConfig: the API server's flow control limits clients
	testEnv, testCfg = env, cfg
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "controllers suite:", err)
		return 1
	}
	return m.Run()
}

// newNamespace creates a namespace for the test with the given labels.
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "pm-", Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	t.Cleanup(func() {
		// Without kube-controller-manager the namespace stays Terminating;
		// its objects are invisible to the other tests' managers anyway.
		_ = k8s.Delete(context.Background(), ns)
	})
	return ns.Name
}

// operator is a manager running the mesh reconciler in-process.
type operator struct {
	metrics *controllers.Metrics
	cancel  context.CancelFunc
	done    chan error

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced at every reconcile
	ok       map[types.NamespacedName]int
	failures map[types.NamespacedName]int
}

// startOperator starts a manager watching namespaces; it is stopped at the
// end of the test unless stopped before.
func startOperator(t *testing.T, namespaces ...string) *operator {
	t.Helper()
	mgr, err := ctrl.NewManager(testCfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controllers.CacheOptions(namespaces),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             crconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("creating the manager: %v", err)
	}
	op := &operator{
		metrics:  controllers.NewMetrics(),
		done:     make(chan error, 1),
		changed:  make(chan struct{}),
		ok:       map[types.NamespacedName]int{},
		failures: map[types.NamespacedName]int{},
	}
	if err := op.metrics.Register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	r := &controllers.MeshReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Recorder:       mgr.GetEventRecorder(controllers.EventReporter),
		Metrics:        op.metrics,
		AfterReconcile: op.record,
		Prober:         loopbackProber(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	op.cancel = cancel
	if err := r.SetupWithManager(ctx, mgr, controller.Options{}); err != nil {
		cancel()
		t.Fatalf("setting up the reconciler: %v", err)
	}
	go func() { op.done <- mgr.Start(ctx) }()
	t.Cleanup(func() { op.stop(t) })
	return op
}

func (o *operator) record(mesh types.NamespacedName, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		o.ok[mesh]++
	} else {
		o.failures[mesh]++
	}
	close(o.changed)
	o.changed = make(chan struct{})
}

// stop stops the manager and waits for it to return.
func (o *operator) stop(t *testing.T) {
	t.Helper()
	if o.cancel == nil {
		return
	}
	o.cancel()
	o.cancel = nil
	select {
	case err := <-o.done:
		if err != nil {
			t.Errorf("manager: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Errorf("manager did not stop within %v", waitTimeout)
	}
}

// reconciledCount is the number of successful reconciles of mesh so far.
func (o *operator) reconciledCount(mesh types.NamespacedName) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ok[mesh]
}

// waitReconciled waits until the operator has reconciled mesh successfully
// at least n times.
func (o *operator) waitReconciled(t *testing.T, mesh types.NamespacedName, n int) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		o.mu.Lock()
		got, ch := o.ok[mesh], o.changed
		o.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("mesh %s was reconciled successfully %d times, want %d, within %v", mesh, got, n, waitTimeout)
		}
	}
}

// eventually polls cond until it returns true or the deadline passes; the
// message of the last poll explains the failure.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", waitTimeout, what, msg)
		}
		<-tick.C
	}
}

// configOf reads and parses a mesh's ConfigMap; ok is false when it does not
// exist.
func configOf(t *testing.T, ns, mesh string) (*corev1.ConfigMap, *v1alpha1.PeerNodeConfiguration, bool) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: controllers.ConfigMapName(mesh)}, cm)
	if apierrors.IsNotFound(err) {
		return nil, nil, false
	}
	if err != nil {
		t.Fatalf("reading the ConfigMap: %v", err)
	}
	yaml, err := v1alpha1.DecodeConfigMapData(cm.Data, cm.BinaryData)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := v1alpha1.ParsePeerNodeConfiguration(yaml)
	if err != nil {
		t.Fatalf("the ConfigMap holds an invalid configuration: %v\n%s", err, cm.Data[v1alpha1.ConfigMapKey])
	}
	return cm, cfg, true
}

// waitConfig waits until the mesh's ConfigMap exists and check accepts it.
func waitConfig(t *testing.T, ns, mesh string, what string, check func(*v1alpha1.PeerNodeConfiguration) (bool, string)) (*corev1.ConfigMap, *v1alpha1.PeerNodeConfiguration) {
	t.Helper()
	var cm *corev1.ConfigMap
	var cfg *v1alpha1.PeerNodeConfiguration
	eventually(t, what, func() (bool, string) {
		var ok bool
		cm, cfg, ok = configOf(t, ns, mesh)
		if !ok {
			return false, "ConfigMap " + controllers.ConfigMapName(mesh) + " does not exist"
		}
		if check == nil {
			return true, ""
		}
		return check(cfg)
	})
	return cm, cfg
}

// statusOf returns the conditions and observedGeneration of a resource.
func statusOf(obj client.Object) ([]metav1.Condition, int64) {
	switch o := obj.(type) {
	case *v1alpha1.PeerTrustPolicy:
		return o.Status.Conditions, o.Status.ObservedGeneration
	case *v1alpha1.PeerAllowlist:
		return o.Status.Conditions, o.Status.ObservedGeneration
	}
	panic(fmt.Sprintf("statusOf(%T)", obj))
}

// waitCondition waits until obj (re-read from the API server into obj) has
// the condition with the status and reason, for its current generation, and
// status.observedGeneration equal to it.
func waitCondition(t *testing.T, obj client.Object, condType string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	key := client.ObjectKeyFromObject(obj)
	eventually(t, fmt.Sprintf("%T %s to have %s=%s (%s)", obj, key, condType, status, reason), func() (bool, string) {
		if err := k8s.Get(context.Background(), key, obj); err != nil {
			return false, err.Error()
		}
		conds, observed := statusOf(obj)
		c := meta.FindStatusCondition(conds, condType)
		switch {
		case c == nil:
			return false, "no condition " + condType
		case c.Status != status || c.Reason != reason:
			return false, fmt.Sprintf("%s=%s reason %s: %s", condType, c.Status, c.Reason, c.Message)
		case c.ObservedGeneration != obj.GetGeneration() || observed != obj.GetGeneration():
			return false, fmt.Sprintf("generation %d, condition observedGeneration %d, status observedGeneration %d",
				obj.GetGeneration(), c.ObservedGeneration, observed)
		}
		return true, ""
	})
}

// waitSettled waits until every PeerTrustPolicy and PeerAllowlist of ns has
// a status for its current generation.
func waitSettled(t *testing.T, ns string) {
	t.Helper()
	eventually(t, "every resource of "+ns+" to have a status for its generation", func() (bool, string) {
		var ps v1alpha1.PeerTrustPolicyList
		var als v1alpha1.PeerAllowlistList
		if err := k8s.List(context.Background(), &ps, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		if err := k8s.List(context.Background(), &als, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for i := range ps.Items {
			if p := &ps.Items[i]; p.Status.ObservedGeneration != p.Generation {
				return false, "PeerTrustPolicy " + p.Name + " not observed"
			}
		}
		for i := range als.Items {
			if al := &als.Items[i]; al.Status.ObservedGeneration != al.Generation {
				return false, "PeerAllowlist " + al.Name + " not observed"
			}
		}
		return true, ""
	})
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

func deleteObj(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Delete(context.Background(), o); err != nil {
			t.Fatalf("deleting %T %s: %v", o, o.GetName(), err)
		}
	}
}

// update re-reads obj, applies mutate and updates it, retrying on conflicts.
func update[T client.Object](t *testing.T, obj T, mutate func(T)) {
	t.Helper()
	eventually(t, fmt.Sprintf("updating %T %s", obj, obj.GetName()), func() (bool, string) {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err.Error()
		}
		mutate(obj)
		if err := k8s.Update(context.Background(), obj); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

func policy(ns, name, mesh string, mutate ...func(*v1alpha1.PeerTrustPolicySpec)) *v1alpha1.PeerTrustPolicy {
	p := &v1alpha1.PeerTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.PeerTrustPolicySpec{MeshName: mesh},
	}
	for _, m := range mutate {
		m(&p.Spec)
	}
	return p
}

func allowlist(ns, name, mesh string, peers ...v1alpha1.PeerAllowlistEntry) *v1alpha1.PeerAllowlist {
	return &v1alpha1.PeerAllowlist{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.PeerAllowlistSpec{MeshName: mesh, Peers: peers},
	}
}

// createPod creates a pod and, when ips are given, sets its status.podIPs
// through the status subresource (no kubelet runs in the test control plane).
func createPod(t *testing.T, ns, name string, labels map[string]string, ips ...string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "peernode", Image: "ghcr.io/peermesh/peermesh:dev"}}},
	}
	create(t, pod)
	if len(ips) > 0 {
		setPodIPs(t, pod, ips...)
	}
	return pod
}

func setPodIPs(t *testing.T, pod *corev1.Pod, ips ...string) {
	t.Helper()
	eventually(t, "setting the IPs of pod "+pod.Name, func() (bool, string) {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), pod); err != nil {
			return false, err.Error()
		}
		pod.Status.Phase = corev1.PodRunning
		pod.Status.PodIP = ips[0]
		pod.Status.PodIPs = nil
		for _, ip := range ips {
			pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
		}
		if err := k8s.Status().Update(context.Background(), pod); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

func meshKey(ns, mesh string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: mesh}
}
