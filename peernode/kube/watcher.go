package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// HashAnnotation is the annotation in which the operator writes the
// configuration's generation; a ConfigMap whose annotation matches the
// applied generation is not parsed again.
const HashAnnotation = "p2p.peermesh.io/config-hash"

// Applier applies a parsed, validated configuration to the node. It returns
// an error when the configuration cannot be applied (for example a
// referenced Secret is missing); the node then keeps its previous one.
type Applier func(ctx context.Context, cfg *v1alpha1.PeerNodeConfiguration) error

// Result of one reload, the values of peermesh_node_config_reloads_total.
const (
	ResultSuccess = "success"
	ResultInvalid = "invalid"
	ResultError   = "error"
)

// Watcher follows one ConfigMap.
type Watcher struct {
	client    kubernetes.Interface
	namespace string
	name      string
	apply     Applier
	report    func(result string)
	log       *slog.Logger

	mu        sync.Mutex
	applied   string // generation of the last good configuration
	lastError string
	haveGood  chan struct{}
	goodOnce  sync.Once
}

// NewWatcher returns a watcher of ConfigMap namespace/name. report is called
// with the result of every reload attempt (nil: not reported).
func NewWatcher(client kubernetes.Interface, namespace, name string, apply Applier, report func(string), log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if report == nil {
		report = func(string) {}
	}
	return &Watcher{client: client, namespace: namespace, name: name, apply: apply, report: report,
		log: log.With("configmap", namespace+"/"+name), haveGood: make(chan struct{})}
}

// Applied returns the generation of the configuration in force ("" before
// the first) and the last reload error ("" after a success).
func (w *Watcher) Applied() (generation, lastError string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.applied, w.lastError
}

// HaveConfiguration is closed once a configuration has been applied.
func (w *Watcher) HaveConfiguration() <-chan struct{} { return w.haveGood }

// Run watches until ctx ends. It returns only when ctx ends: a missing
// ConfigMap or an unreachable API server are retried in the background
// (client-go's reflector backs off), and the node keeps its configuration.
func (w *Watcher) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(w.client, 10*time.Minute,
		informers.WithNamespace(w.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", w.name).String()
		}))
	inf := factory.Core().V1().ConfigMaps().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.handle(ctx, obj) },
		UpdateFunc: func(_, obj any) { w.handle(ctx, obj) },
		DeleteFunc: func(any) {
			w.log.Warn("mesh ConfigMap deleted: keeping the configuration in force")
		},
	})
	if err != nil {
		return err
	}
	w.log.Info("watching the mesh configuration through the API server")
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

// handle parses and applies one version of the ConfigMap. Informer handlers
// run one at a time, so configurations are applied in order.
func (w *Watcher) handle(ctx context.Context, obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	w.mu.Lock()
	applied := w.applied
	w.mu.Unlock()
	if h := cm.Annotations[HashAnnotation]; h != "" && h == applied {
		return // resync or metadata-only change
	}
	result, err := w.reload(ctx, cm)
	w.report(result)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.lastError = err.Error()
		w.log.Error("configuration refused: keeping the last good one", "result", result, "err", err,
			"resourceVersion", cm.ResourceVersion, "inForce", w.applied)
		return
	}
}

func (w *Watcher) reload(ctx context.Context, cm *corev1.ConfigMap) (string, error) {
	data, err := v1alpha1.DecodeConfigMapData(cm.Data, cm.BinaryData)
	if err != nil {
		return ResultInvalid, err
	}
	cfg, err := v1alpha1.ParsePeerNodeConfiguration(data)
	if err != nil {
		return ResultInvalid, err
	}
	if err := w.apply(ctx, cfg); err != nil {
		if errors.Is(err, ErrInvalid) {
			return ResultInvalid, err
		}
		return ResultError, err
	}
	w.mu.Lock()
	w.applied, w.lastError = cfg.Generation, ""
	w.mu.Unlock()
	w.goodOnce.Do(func() { close(w.haveGood) })
	w.log.Info("configuration applied", "generation", cfg.Generation, "resourceVersion", cm.ResourceVersion)
	return ResultSuccess, nil
}

// ErrInvalid is wrapped by an Applier's error when the configuration itself
// is wrong (as opposed to a transient failure such as an unreachable Secret).
var ErrInvalid = errors.New("invalid configuration")

// ReadSecretKey reads key from Secret namespace/name through the API.
func ReadSecretKey(ctx context.Context, client kubernetes.Interface, namespace, name, key string) ([]byte, error) {
	s, err := client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	v, ok := s.Data[key]
	if !ok {
		return nil, fmt.Errorf("secret %s/%s has no key %q", namespace, name, key)
	}
	return v, nil
}
