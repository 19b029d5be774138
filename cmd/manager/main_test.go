package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/controllers"
	"github.com/peermesh/peermesh/internal/testenv"
	"github.com/peermesh/peermesh/internal/testproc"
)

// The tests of this package install config/ into the real test control
// plane with the built kubectl, and run the manager binary's code in-process
// under the ServiceAccount and RBAC of the install bundle.

var (
	testEnv    *envtest.Environment
	testCfg    *rest.Config
	kubeconfig string
	k8s        client.Client
)

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	// No CRDs: the install bundle brings them.
	env, cfg, err := testenv.Start(testenv.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	dir, err := os.MkdirTemp("", "manager-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if kubeconfig, err = testenv.WriteKubeconfig(env, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv, testCfg = env, cfg
	return m.Run()
}

func repoPath(p string) string { return filepath.Join(testenv.RepoRoot(), p) }

// kubectl runs the built kubectl against the test control plane.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.Kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		if code := run(context.Background(), args, &out, io.Discard); code != 0 || out.String() != "manager dev\n" {
			t.Errorf("manager %v: exit %d, output %q", args, code, out.String())
		}
	}
	if code := run(context.Background(), []string{"--no-such-flag"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"extra"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("stray argument: exit %d, want 2", code)
	}
}

func TestSplitNamespaces(t *testing.T) {
	if got := splitNamespaces(" a, b ,,c"); strings.Join(got, "|") != "a|b|c" {
		t.Errorf("splitNamespaces = %q", got)
	}
	if got := splitNamespaces(""); got != nil {
		t.Errorf("splitNamespaces(\"\") = %q, want nil (all namespaces)", got)
	}
}

// TestKustomizeRenders renders every kustomization of config/.
func TestKustomizeRenders(t *testing.T) {
	for _, dir := range []string{"config/default", "config/crd", "config/rbac", "config/manager", "config/samples", "config/prometheus"} {
		if out := kubectl(t, "kustomize", repoPath(dir)); !strings.Contains(out, "kind:") {
			t.Errorf("%s rendered nothing", dir)
		}
	}
}

// TestManagerDeploymentIsRestricted checks the Deployment config/default
// renders against the restricted Pod Security Standard and the probes.
func TestManagerDeploymentIsRestricted(t *testing.T) {
	var dep *appsv1.Deployment
	kinds := map[string]int{}
	for _, doc := range strings.Split(kubectl(t, "kustomize", repoPath("config/default")), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		kinds[meta.Kind]++
		if meta.Kind == "Deployment" {
			dep = &appsv1.Deployment{}
			if err := yaml.UnmarshalStrict([]byte(doc), dep); err != nil {
				t.Fatal(err)
			}
		}
	}
	for kind, n := range map[string]int{"Namespace": 1, "CustomResourceDefinition": 2, "ServiceAccount": 1, "ClusterRole": 1,
		"ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1, "Service": 1, "Deployment": 1, "ServiceMonitor": 0} {
		if kinds[kind] != n {
			t.Errorf("config/default renders %d %s, want %d", kinds[kind], kind, n)
		}
	}
	if dep == nil {
		t.Fatal("no Deployment")
	}
	if dep.Namespace != "peermesh-system" || dep.Name != "peermesh-controller-manager" {
		t.Errorf("Deployment %s/%s", dep.Namespace, dep.Name)
	}
	pod := dep.Spec.Template.Spec
	if psc := pod.SecurityContext; psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v", psc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || !ptr.Deref(sc.RunAsNonRoot, false) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container securityContext %+v", sc)
	}
	if c.Image != "ghcr.io/peermesh/peermesh:dev" || strings.Join(c.Command, " ") != "/manager" {
		t.Errorf("image %s command %v", c.Image, c.Command)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	if pod.ServiceAccountName != "peermesh-controller-manager" {
		t.Errorf("serviceAccountName %q", pod.ServiceAccountName)
	}
}

// TestInstallBundle installs config/default (server-side dry run first),
// applies config/samples, and runs the manager as the bundle's
// ServiceAccount: the generated RBAC must be enough to compile the samples,
// patch their status, record events and hold the leader Lease.
func TestInstallBundle(t *testing.T) {
	ctx := context.Background()
	const operatorNS = "peermesh-system"
	// The dry run cannot create the namespace its objects go to.
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNS}}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "--dry-run=server", "-k", repoPath("config/default"))
	kubectl(t, "apply", "--server-side", "-k", repoPath("config/default"))
	kubectl(t, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/peertrustpolicies.p2p.peermesh.io", "crd/peerallowlists.p2p.peermesh.io")

	const samplesNS = "samples"
	kubectl(t, "create", "namespace", samplesNS)
	kubectl(t, "apply", "-n", samplesNS, "-f", repoPath("config/samples"))
	kubectl(t, "get", "-n", samplesNS, "peertrustpolicy/demo", "peerallowlist/demo-frontends")

	// A kubeconfig that impersonates the operator's ServiceAccount.
	raw, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range raw.AuthInfos {
		ai.Impersonate = "system:serviceaccount:" + operatorNS + ":peermesh-controller-manager"
	}
	saKubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*raw, saKubeconfig); err != nil {
		t.Fatal(err)
	}

	metricsAddr, probeAddr := testproc.FreeAddr(t), testproc.FreeAddr(t)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	var logs testproc.Buffer
	go func() {
		done <- run(runCtx, []string{
			"--kubeconfig", saKubeconfig,
			"--metrics-bind-address", metricsAddr,
			"--health-probe-bind-address", probeAddr,
			"--leader-elect", "--leader-election-namespace", operatorNS,
		}, io.Discard, &logs)
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("manager exited %d\n%s", code, logs.String())
				}
			case <-time.After(time.Minute):
				t.Error("the manager did not stop")
			}
		}
	}
	defer stop()

	// The samples compile into mesh demo's ConfigMap, with statuses.
	eventually(t, "the demo mesh ConfigMap", func() (bool, string) {
		cm := &corev1.ConfigMap{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: samplesNS, Name: controllers.ConfigMapName("demo")}, cm); err != nil {
			return false, err.Error() + "\n" + logs.String()
		}
		cfg, err := v1alpha1.ParsePeerNodeConfiguration([]byte(cm.Data[v1alpha1.ConfigMapKey]))
		if err != nil {
			return false, err.Error()
		}
		return cfg.PolicySource != nil && cfg.PolicySource.Name == "demo" && cfg.AllowlistActive, "incomplete configuration"
	})
	eventually(t, "the sample policy's status", func() (bool, string) {
		p := &v1alpha1.PeerTrustPolicy{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: samplesNS, Name: "demo"}, p); err != nil {
			return false, err.Error()
		}
		return p.Status.ObservedGeneration == p.Generation && len(p.Status.Conditions) == 3, fmt.Sprintf("%+v", p.Status)
	})
	eventually(t, "an Accepted event", func() (bool, string) {
		var evs corev1.EventList
		if err := k8s.List(ctx, &evs, client.InNamespace(samplesNS)); err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Reason == controllers.EventAccepted {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(evs.Items))
	})

	// Probes and metrics.
	for _, path := range []string{"/healthz", "/readyz"} {
		eventually(t, path, func() (bool, string) {
			code, body := httpGet("http://" + probeAddr + path)
			return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
		})
	}
	eventually(t, "operator metrics", func() (bool, string) {
		code, body := httpGet("http://" + metricsAddr + "/metrics")
		for _, want := range []string{
			`peermesh_operator_policies{kind="PeerTrustPolicy",state="accepted"} 1`,
			`peermesh_operator_policies{kind="PeerAllowlist",state="accepted"} 1`,
			`peermesh_operator_compiled_meshes 1`,
			`peermesh_operator_configmap_writes_total{result="created"} 1`,
			`peermesh_operator_compile_duration_seconds_count`,
			`controller_runtime_reconcile_total{controller="mesh",result="success"}`,
		} {
			if !strings.Contains(body, want) {
				return false, fmt.Sprintf("%d: no %q", code, want)
			}
		}
		return true, ""
	})

	// The Lease is held, then released on shutdown.
	lease := &coordinationv1.Lease{}
	leaseKey := types.NamespacedName{Namespace: operatorNS, Name: LeaderElectionID}
	eventually(t, "the leader Lease", func() (bool, string) {
		err := k8s.Get(ctx, leaseKey, lease)
		return err == nil && ptr.Deref(lease.Spec.HolderIdentity, "") != "", fmt.Sprint(err)
	})
	stop()
	if err := k8s.Get(ctx, leaseKey, lease); err != nil || ptr.Deref(lease.Spec.HolderIdentity, "") != "" {
		t.Errorf("the Lease is not released on shutdown: holder %q, %v", ptr.Deref(lease.Spec.HolderIdentity, ""), err)
	}
	if strings.Contains(logs.String(), "forbidden") {
		t.Errorf("the manager hit an RBAC denial:\n%s", logs.String())
	}
}

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
