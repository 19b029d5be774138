package kube_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/internal/testenv"
	"github.com/peermesh/peermesh/peernode/kube"
)

var cfg *rest.Config

func TestMain(m *testing.M) {
	env, c, err := testenv.Start(testenv.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg = c
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

type recorder struct {
	mu      sync.Mutex
	applied []string
	results []string
	changed chan struct{}
}

func (r *recorder) apply(_ context.Context, c *v1alpha1.PeerNodeConfiguration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, c.Generation)
	return nil
}

func (r *recorder) report(res string) {
	r.mu.Lock()
	r.results = append(r.results, res)
	r.mu.Unlock()
	r.changed <- struct{}{}
}

func (r *recorder) waitResults(t *testing.T, n int) []string {
	t.Helper()
	for {
		r.mu.Lock()
		got := append([]string(nil), r.results...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.changed:
		case <-time.After(10 * time.Second):
			t.Fatalf("results %v, want %d", got, n)
		}
	}
}

func configData(t *testing.T, blocked string) (map[string]string, string) {
	t.Helper()
	c := v1alpha1.DefaultPeerNodeConfiguration()
	c.MeshName = "m"
	c.Blocked = []v1alpha1.PeerRule{{Identifier: v1alpha1.PeerIdentifier(blocked)}}
	c.Generation = ""
	c.Default()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{v1alpha1.ConfigMapKey: string(b)}, c.Generation
}

// TestWatcherAppliesValidAndKeepsLastGood: valid versions are applied in
// order, an invalid one is refused and counted, and the node keeps the last
// good generation.
func TestWatcherAppliesValidAndKeepsLastGood(t *testing.T) {
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kube-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{changed: make(chan struct{}, 16)}
	w := kube.NewWatcher(client, ns.Name, "peermesh-m", rec.apply, rec.report, nil)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	data1, gen1 := configData(t, "a")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "peermesh-m", Annotations: map[string]string{kube.HashAnnotation: gen1}}, Data: data1}
	cm, err = client.CoreV1().ConfigMaps(ns.Name).Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.HaveConfiguration():
	case <-time.After(10 * time.Second):
		t.Fatal("first configuration not applied")
	}

	cm.Data = map[string]string{v1alpha1.ConfigMapKey: "mode: Sometimes\n"}
	cm.Annotations[kube.HashAnnotation] = "bogus"
	if cm, err = client.CoreV1().ConfigMaps(ns.Name).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := rec.waitResults(t, 2); got[1] != kube.ResultInvalid {
		t.Fatalf("results %v: the invalid version was not refused", got)
	}
	if gen, lastErr := w.Applied(); gen != gen1 || lastErr == "" {
		t.Errorf("Applied() = %q, %q; want the last good %q and an error", gen, lastErr, gen1)
	}

	data2, gen2 := configData(t, "b")
	cm.Data = data2
	cm.Annotations[kube.HashAnnotation] = gen2
	if _, err = client.CoreV1().ConfigMaps(ns.Name).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := rec.waitResults(t, 3); got[2] != kube.ResultSuccess {
		t.Fatalf("results %v", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.applied) != 2 || rec.applied[0] != gen1 || rec.applied[1] != gen2 {
		t.Errorf("applied %v, want [%s %s]", rec.applied, gen1, gen2)
	}
}
