package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/peermesh/peermesh/internal/testenv"
)

const (
	// releaseName and releaseNamespace are those of `helm template` in the
	// golden and dry-run tests.
	releaseName      = "peermesh"
	releaseNamespace = "peermesh-system"

	// promOperatorModule ships the CRDs of ServiceMonitor, PodMonitor and
	// PrometheusRule in example/prometheus-operator-crd; the version is
	// pinned (go list -m -versions lists the ones on the module proxy).
	promOperatorModule  = "github.com/prometheus-operator/prometheus-operator"
	promOperatorVersion = "v0.85.0"
)

// caseNamespaces are the namespaces the values files of testdata/values
// put objects in, besides releaseNamespace. The dry-run tests create them.
var caseNamespaces = []string{"team-green"}

var (
	chartDir = filepath.Join(testenv.RepoRoot(), "charts", "peermesh")

	clusterOnce sync.Once
	clusterErr  error
	theCluster  *cluster
)

// cluster is the test control plane the tests that need an API server share.
type cluster struct {
	env        *envtest.Environment
	kubeconfig string
	dir        string
	client     kubernetes.Interface
}

func TestMain(m *testing.M) {
	code := m.Run()
	if theCluster != nil {
		if err := theCluster.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test control plane:", err)
		}
		_ = os.RemoveAll(theCluster.dir)
	}
	os.Exit(code)
}

// testCluster starts the control plane on first use: the tests that need no
// API server (lint, golden, schema, sync) run without paying for it.
func testCluster(t *testing.T) *cluster {
	t.Helper()
	clusterOnce.Do(func() { theCluster, clusterErr = startCluster() })
	if clusterErr != nil {
		t.Fatalf("test control plane: %v", clusterErr)
	}
	return theCluster
}

// startCluster starts etcd and kube-apiserver with prometheus-operator's
// CRDs, then installs the chart's CRDs the way docs/operations.md upgrades
// them (kubectl apply --server-side), and creates the namespaces of the
// test cases, labelled to enforce the restricted Pod Security Standard.
func startCluster() (*cluster, error) {
	promCRDs, err := prometheusOperatorCRDs()
	if err != nil {
		return nil, err
	}
	env, cfg, err := testenv.Start(testenv.Options{CRDDirectoryPaths: promCRDs})
	if err != nil {
		return nil, err
	}
	c := &cluster{env: env}
	fail := func(err error) (*cluster, error) {
		_ = env.Stop()
		if c.dir != "" {
			_ = os.RemoveAll(c.dir)
		}
		return nil, err
	}
	if c.dir, err = os.MkdirTemp("", "chart-test-"); err != nil {
		return fail(err)
	}
	if c.kubeconfig, err = testenv.WriteKubeconfig(env, c.dir); err != nil {
		return fail(err)
	}
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return fail(err)
	}
	if _, err := c.run("apply", "--server-side", "-f", filepath.Join(chartDir, "crds")); err != nil {
		return fail(err)
	}
	if _, err := c.run("wait", "--for=condition=Established", "--timeout=60s",
		"crd/peertrustpolicies.p2p.peermesh.io", "crd/peerallowlists.p2p.peermesh.io"); err != nil {
		return fail(err)
	}
	for _, ns := range append([]string{releaseNamespace}, caseNamespaces...) {
		if err := c.createRestrictedNamespace(context.Background(), ns); err != nil {
			return fail(err)
		}
	}
	return c, nil
}

// prometheusOperatorCRDs returns the CRD files of ServiceMonitor, PodMonitor
// and PrometheusRule from the pinned prometheus-operator module, downloaded
// from the Go module proxy into the module cache.
func prometheusOperatorCRDs() ([]string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", promOperatorModule+"@"+promOperatorVersion)
	cmd.Dir = os.TempDir() // outside the main module: nothing is added to go.mod
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go mod download %s@%s: %w\n%s%s", promOperatorModule, promOperatorVersion, err, out, stderr.String())
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return nil, fmt.Errorf("go mod download -json: %w", err)
	}
	if mod.Error != "" || mod.Dir == "" {
		return nil, fmt.Errorf("go mod download %s@%s: %s", promOperatorModule, promOperatorVersion, mod.Error)
	}
	var paths []string
	for _, kind := range []string{"servicemonitors", "podmonitors", "prometheusrules"} {
		p := filepath.Join(mod.Dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+kind+".yaml")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("prometheus-operator %s: %w", promOperatorVersion, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// createRestrictedNamespace creates namespace ns, enforcing the restricted
// Pod Security Standard.
func (c *cluster) createRestrictedNamespace(ctx context.Context, ns string) error {
	_, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns,
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
		},
	}}, metav1.CreateOptions{})
	return err
}

// run runs the built kubectl against the control plane and returns its
// standard output; an error carries its standard error.
func (c *cluster) run(args ...string) (string, error) {
	out, _, err := c.runStreams(args...)
	return out, err
}

// runStreams runs the built kubectl and returns both its outputs.
func (c *cluster) runStreams(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(testenv.Kubectl(), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	if err := cmd.Run(); err != nil {
		return outBuf.String(), errBuf.String(), fmt.Errorf("kubectl %s: %w\n%s%s", strings.Join(args, " "), err, outBuf.String(), errBuf.String())
	}
	return outBuf.String(), errBuf.String(), nil
}

// kubectl runs kubectl and fails the test when it fails.
func (c *cluster) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// helmBinary returns the helm that `make helm` builds: $HELM, else bin/helm.
func helmBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("HELM")
	if path == "" {
		path = filepath.Join(testenv.RepoRoot(), "bin", "helm")
	}
	if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("helm not found at %s (run `make helm`)", path)
	}
	return path
}

// helmEnv keeps helm's cache, configuration and data out of $HOME, and
// points it at kubeconfig (may be "").
func helmEnv(t *testing.T, kubeconfig string) []string {
	t.Helper()
	home := t.TempDir()
	env := append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	if kubeconfig != "" {
		env = append(env, "KUBECONFIG="+kubeconfig)
	}
	return env
}

// runHelm runs helm with args and returns its stdout and stderr.
func runHelm(t *testing.T, kubeconfig string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Env = helmEnv(t, kubeconfig)
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	err = cmd.Run()
	return outBuf.String(), errBuf.String(), err
}

// helm runs helm and fails the test when it fails.
func helm(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	out, stderr, err := runHelm(t, kubeconfig, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// testCase is one values file of testdata/values.
type testCase struct {
	name   string // file name without .yaml
	values string // path
}

func testCases(t *testing.T) []testCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "values", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no values files in testdata/values")
	}
	sort.Strings(files)
	var cases []testCase
	for _, f := range files {
		cases = append(cases, testCase{name: strings.TrimSuffix(filepath.Base(f), ".yaml"), values: f})
	}
	return cases
}

// renders caches the output of render by values file: several tests
// render the same cases.
var renders sync.Map

// render runs `helm template` for a values file.
func render(t *testing.T, values string) string {
	t.Helper()
	if out, ok := renders.Load(values); ok {
		return out.(string)
	}
	out := helm(t, "", "template", releaseName, chartDir, "--namespace", releaseNamespace, "-f", values)
	renders.Store(values, out)
	return out
}

// object is one rendered document: its source comment, raw YAML and the
// fields the tests look at.
type object struct {
	source string // the template, from helm's "# Source:" line
	raw    string
	kind   string
	name   string
	ns     string
	fields map[string]any
}

func (o object) String() string {
	if o.ns == "" {
		return o.kind + "/" + o.name
	}
	return o.kind + " " + o.ns + "/" + o.name
}

// splitObjects splits helm's output into its documents.
func splitObjects(t *testing.T, manifest string) []object {
	t.Helper()
	var objs []object
	for _, doc := range strings.Split(manifest, "\n---\n") {
		doc = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---"))
		var source string
		for _, line := range strings.Split(doc, "\n") {
			if s, ok := strings.CutPrefix(line, "# Source: "); ok {
				source = s
				break
			}
		}
		var fields map[string]any
		if err := yaml.Unmarshal([]byte(doc), &fields); err != nil {
			t.Fatalf("%s: %v\n%s", source, err, doc)
		}
		if len(fields) == 0 {
			continue // only comments
		}
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		if meta.Kind == "" || meta.Metadata.Name == "" {
			t.Fatalf("%s: a document without kind or name:\n%s", source, doc)
		}
		objs = append(objs, object{source: source, raw: doc, kind: meta.Kind, name: meta.Metadata.Name,
			ns: meta.Metadata.Namespace, fields: fields})
	}
	return objs
}

// eventually polls cond until it returns nil or the timeout passes, and
// returns its last error.
func eventually(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	delay := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(delay) // polling an external process's effect; no event to wait on
		delay = min(2*delay, 500*time.Millisecond)
	}
}
