// Package testenv starts the project's real test control plane (etcd and
// kube-apiserver built by `make kube-assets`) through controller-runtime's
// envtest, for tests that need a Kubernetes API server.
//
// It never skips: when the binaries are missing or the server cannot start,
// Start returns an error that names the cause and how to fix it, and the
// calling test fails.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the Kubernetes release the test control plane is built from.
const K8sVersion = "1.37.2"

// ErrAssetsMissing reports that the control-plane binaries are not built.
var ErrAssetsMissing = errors.New("test control plane binaries not found (run `make kube-assets`)")

// RepoRoot returns the repository root, found from this source file so that
// tests work from any package directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// AssetsDir returns the directory holding kube-apiserver, etcd and kubectl:
// KUBEBUILDER_ASSETS when set, else bin/k8s/<K8sVersion> of the repository.
func AssetsDir() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	return filepath.Join(RepoRoot(), "bin", "k8s", K8sVersion)
}

// CheckAssets returns ErrAssetsMissing, naming the first missing binary,
// unless every binary of the test control plane is in dir.
func CheckAssets(dir string) error {
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		path := filepath.Join(dir, name)
		st, err := os.Stat(path)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%w: %s", ErrAssetsMissing, path)
		}
	}
	return nil
}

// Options selects what the control plane loads.
type Options struct {
	// CRDDirectoryPaths are loaded into the API server before Start returns;
	// a missing path is an error.
	CRDDirectoryPaths []string
	// AdvertiseAddress is kube-apiserver's --advertise-address. Empty lets
	// it pick the address of the default route's interface, which fails
	// where there is no default route (in a network namespace of its own).
	AdvertiseAddress string
}

// Start starts etcd and kube-apiserver and returns the running environment
// and a client configuration for it. The caller must call env.Stop.
func Start(opts Options) (*envtest.Environment, *rest.Config, error) {
	dir := AssetsDir()
	if err := CheckAssets(dir); err != nil {
		return nil, nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     opts.CRDDirectoryPaths,
		ErrorIfCRDPathMissing: true,
	}
	if opts.AdvertiseAddress != "" {
		env.ControlPlane.GetAPIServer().Configure().Set("advertise-address", opts.AdvertiseAddress)
	}
	cfg, err := env.Start()
	if err != nil {
		// envtest may have started etcd before the API server failed.
		_ = env.Stop()
		return nil, nil, fmt.Errorf("starting the test control plane from %s: %w", dir, err)
	}
	return env, cfg, nil
}

// CRDPath is the folder of generated CRD manifests.
func CRDPath() string { return filepath.Join(RepoRoot(), "config", "crd", "bases") }

// WriteKubeconfig writes env's kubeconfig to a file in dir and returns its path,
// for tools such as kubectl and for processes started by tests.
func WriteKubeconfig(env *envtest.Environment, dir string) (string, error) {
	if len(env.KubeConfig) == 0 {
		return "", errors.New("testenv: environment has no kubeconfig (not started?)")
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, env.KubeConfig, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// Kubectl returns the path of the built kubectl.
func Kubectl() string { return filepath.Join(AssetsDir(), "kubectl") }

// MeshService returns the YAML of the headless Service peermesh-<mesh> of
// namespace ns and of one EndpointSlice listing ips as ready endpoints, with
// the ports named peer and admin as the Helm chart names them: what the
// EndpointSlice controller would make for the mesh's pods, for nodes that
// run as processes (the operator finds nodes through these slices).
func MeshService(ns, mesh string, ips []string, peerPort, adminPort int) string {
	var eps strings.Builder
	for _, ip := range ips {
		fmt.Fprintf(&eps, "- addresses: [%s]\n  conditions: {ready: true}\n", ip)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: peermesh-%[2]s, namespace: %[1]s}
spec:
  clusterIP: None
  ports: [{name: peer, port: %[3]d}, {name: admin, port: %[4]d}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: peermesh-%[2]s-nodes
  namespace: %[1]s
  labels: {kubernetes.io/service-name: peermesh-%[2]s}
addressType: IPv4
ports: [{name: peer, port: %[3]d, protocol: TCP}, {name: admin, port: %[4]d, protocol: TCP}]
endpoints:
%[5]s`, ns, mesh, peerPort, adminPort, eps.String())
}
