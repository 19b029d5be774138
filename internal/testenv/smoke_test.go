package testenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"

	"github.com/peermesh/peermesh/internal/testenv"
)

// crdDirs returns config/crd/bases when it holds CRDs, so the smoke test also
// proves that the generated CRDs load into the real API server.
func crdDirs(t *testing.T) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(testenv.CRDPath(), "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) == 0 {
		return nil
	}
	return []string{testenv.CRDPath()}
}

// TestControlPlaneServes starts the real API server and proves that it serves:
// version discovery, create, get and watch of a ConfigMap, and the CRDs.
func TestControlPlaneServes(t *testing.T) {
	env, cfg, err := testenv.Start(testenv.Options{CRDDirectoryPaths: crdDirs(t)})
	if err != nil {
		t.Fatalf("the test control plane must start: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})

	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dc.ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if want := "v" + testenv.K8sVersion; info.GitVersion != want {
		t.Errorf("server version = %q, want %q", info.GitVersion, want)
	}

	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "smoke-"}}
	ns, err = cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}

	// Watch from before the create so the ADDED and MODIFIED events must arrive.
	w, err := cs.CoreV1().ConfigMaps(ns.Name).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke"},
		Data:       map[string]string{"hello": "world"},
	}
	if _, err := cs.CoreV1().ConfigMaps(ns.Name).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	got, err := cs.CoreV1().ConfigMaps(ns.Name).Get(ctx, "smoke", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get configmap: %v", err)
	}
	if got.Data["hello"] != "world" {
		t.Errorf("configmap data = %v", got.Data)
	}
	got.Data["hello"] = "mesh"
	if _, err := cs.CoreV1().ConfigMaps(ns.Name).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update configmap: %v", err)
	}

	wantEvents := []watch.EventType{watch.Added, watch.Modified}
	for _, want := range wantEvents {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed early")
			}
			if ev.Type != want {
				t.Fatalf("watch event = %s, want %s", ev.Type, want)
			}
			if want == watch.Modified && ev.Object.(*corev1.ConfigMap).Data["hello"] != "mesh" {
				t.Errorf("modified event carries %v", ev.Object.(*corev1.ConfigMap).Data)
			}
		case <-ctx.Done():
			t.Fatalf("no %s event: %v", want, ctx.Err())
		}
	}

	// Every CRD that envtest loaded must be served.
	for _, crd := range env.CRDs {
		for _, v := range crd.Spec.Versions {
			gv := crd.Spec.Group + "/" + v.Name
			res, err := dc.ServerResourcesForGroupVersion(gv)
			if err != nil {
				t.Fatalf("CRD %s: group version %s not served: %v", crd.Name, gv, err)
			}
			found := false
			for _, r := range res.APIResources {
				found = found || r.Name == crd.Spec.Names.Plural
			}
			if !found {
				t.Errorf("CRD %s: resource %s not served in %s", crd.Name, crd.Spec.Names.Plural, gv)
			}
		}
	}

	// The built kubectl must parse the server's version (it refuses an
	// unstamped v0.0.0 build) and read what the API server serves.
	kubeconfig, err := testenv.WriteKubeconfig(env, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kubectl := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, testenv.Kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	var versions struct {
		ServerVersion struct{ GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(kubectl("version", "-o", "json")), &versions); err != nil {
		t.Fatalf("kubectl version -o json: %v", err)
	}
	if want := "v" + testenv.K8sVersion; versions.ServerVersion.GitVersion != want {
		t.Errorf("kubectl sees server version %q, want %q", versions.ServerVersion.GitVersion, want)
	}
	if out := kubectl("get", "configmap", "smoke", "-n", ns.Name, "-o", "jsonpath={.data.hello}"); out != "mesh" {
		t.Errorf("kubectl get configmap: %q, want mesh", out)
	}

	if err := cs.CoreV1().ConfigMaps(ns.Name).Delete(ctx, "smoke", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns.Name).Get(ctx, "smoke", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v, want NotFound", err)
	}
}

// TestStartFailsWithoutBinaries proves that a missing control plane is a
// failure with a clear message, never a skip.
func TestStartFailsWithoutBinaries(t *testing.T) {
	t.Setenv("KUBEBUILDER_ASSETS", t.TempDir())
	_, _, err := testenv.Start(testenv.Options{})
	if !errors.Is(err, testenv.ErrAssetsMissing) {
		t.Fatalf("Start with no binaries: err = %v, want ErrAssetsMissing", err)
	}
	if !strings.Contains(err.Error(), "make kube-assets") {
		t.Errorf("error %q does not say how to fix it", err)
	}
}

// TestStartFailsWhenServerCannotStart replaces kube-apiserver with a program
// that exits at once: Start must return an error, not hang or succeed.
func TestStartFailsWhenServerCannotStart(t *testing.T) {
	real := testenv.AssetsDir()
	if err := testenv.CheckAssets(real); err != nil {
		t.Fatalf("this test needs the real etcd: %v", err)
	}
	dir := t.TempDir()
	for _, name := range []string{"etcd", "kubectl"} {
		if err := os.Symlink(filepath.Join(real, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	broken := "#!/bin/sh\necho 'kube-apiserver: broken on purpose' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "kube-apiserver"), []byte(broken), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBEBUILDER_ASSETS", dir)
	env, _, err := testenv.Start(testenv.Options{})
	if err == nil {
		_ = env.Stop()
		t.Fatal("Start succeeded with a kube-apiserver that exits at once")
	}
	t.Logf("Start failed as it must: %v", err)
}
