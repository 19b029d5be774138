package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/kube"
	"github.com/peermesh/peermesh/peernode/metrics"
	"github.com/peermesh/peermesh/peernode/node"
	"github.com/peermesh/peermesh/peernode/trust"
)

// kubeTarget returns the ConfigMap Kubernetes mode follows: --kube-configmap,
// or peermesh-<mesh> in $POD_NAMESPACE when the node runs in a pod with
// --mesh. enabled is false outside Kubernetes mode.
func kubeTarget(o *runOptions) (namespace, name string, enabled bool, err error) {
	if o.kubeConfigMap != "" {
		ns, n, ok := strings.Cut(o.kubeConfigMap, "/")
		if !ok || ns == "" || n == "" || strings.Contains(n, "/") {
			return "", "", false, fmt.Errorf("--kube-configmap %q: want NAMESPACE/NAME", o.kubeConfigMap)
		}
		return ns, n, true, nil
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" && o.mesh != "" {
		return ns, "peermesh-" + o.mesh, true, nil
	}
	if o.failClosed {
		return "", "", false, errors.New("--fail-closed needs Kubernetes mode (--kube-configmap, or --mesh with POD_NAMESPACE set)")
	}
	return "", "", false, nil
}

// kubeMode follows the mesh ConfigMap and applies each configuration to the
// node live: the trust policy is swapped atomically (live channels the new
// policy denies close at once), and a SharedKey Secret is read through the
// API.
type kubeMode struct {
	namespace, name string
	mesh            string
	failClosed      bool
	client          kubernetes.Interface
	log             *slog.Logger

	key     atomic.Pointer[[]byte] // the shared key read from the Secret, if any
	watcher *kube.Watcher
}

func newKubeMode(o *runOptions, namespace, name string, log *slog.Logger) (*kubeMode, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules() // $KUBECONFIG, ~/.kube/config, else in-cluster
	restCfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--kube-configmap: no Kubernetes client configuration (in-cluster or KUBECONFIG): %w", err)
	}
	restCfg.UserAgent = "peernode"
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, err
	}
	return &kubeMode{namespace: namespace, name: name, mesh: o.mesh, failClosed: o.failClosed, client: client,
		log: log.With("configmap", namespace+"/"+name)}, nil
}

// resolver resolves trust protocols with the key currently read from the
// policy's Secret.
func (k *kubeMode) resolver(name string) (peernode.TrustProtocol, error) {
	var key []byte
	if p := k.key.Load(); p != nil {
		key = *p
	}
	return trust.Resolver(key)(name)
}

// applier returns the function that applies each configuration to n.
func (k *kubeMode) applier(n *node.Node, applied *appliedConfig) kube.Applier {
	return func(ctx context.Context, cfg *v1alpha1.PeerNodeConfiguration) error {
		if k.mesh != "" && cfg.MeshName != "" && cfg.MeshName != k.mesh {
			return fmt.Errorf("%w: meshName %q is not this node's mesh %q", kube.ErrInvalid, cfg.MeshName, k.mesh)
		}
		if tp := cfg.Incoming.TrustProtocol; tp.Type == v1alpha1.TrustProtocolSharedKey && tp.SharedKeySecretRef != nil {
			ref := tp.SharedKeySecretRef
			key, err := kube.ReadSecretKey(ctx, k.client, ref.Namespace, ref.Name, ref.Key)
			if err != nil {
				return err // transient or not, the last good configuration stays
			}
			k.key.Store(&key)
		}
		policy, err := trust.PolicyFromConfig(cfg)
		if err != nil {
			return fmt.Errorf("%w: %w", kube.ErrInvalid, err)
		}
		if err := n.SetPolicy(policy); err != nil {
			return fmt.Errorf("%w: %w", kube.ErrInvalid, err)
		}
		n.SetLimits(policyLimits(cfg))
		applied.set(cfg)
		return nil
	}
}

// start creates the watcher; run it with k.watcher.Run.
func (k *kubeMode) start(n *node.Node, applied *appliedConfig) {
	report := func(result string) {
		switch result {
		case kube.ResultSuccess:
			n.Metrics().ConfigReload(metrics.ReloadSuccess)
		case kube.ResultInvalid:
			n.Metrics().ConfigReload(metrics.ReloadInvalid)
		default:
			n.Metrics().ConfigReload(metrics.ReloadError)
		}
	}
	k.watcher = kube.NewWatcher(k.client, k.namespace, k.name, k.applier(n, applied), report, k.log)
}

// ready reports whether the node may be Ready: with --fail-closed, only once
// a configuration has been applied.
func (k *kubeMode) ready() error {
	if !k.failClosed {
		return nil
	}
	select {
	case <-k.watcher.HaveConfiguration():
		return nil
	default:
		return fmt.Errorf("waiting for the first configuration from ConfigMap %s/%s (--fail-closed)", k.namespace, k.name)
	}
}
