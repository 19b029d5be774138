package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/internal/testenv"
	"github.com/peermesh/peermesh/internal/testproc"
	"github.com/peermesh/peermesh/peernode/kube"
)

// TestKubernetesMode runs two daemons that follow their mesh ConfigMap
// through a real API server: --fail-closed keeps a node not Ready until the
// first configuration; a configuration that blocks a peer closes its channel
// within a second, without a restart; an invalid one is refused and the last
// good one stays; the shared key is read from a Secret.
func TestKubernetesMode(t *testing.T) {
	env, restCfg, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	adminKubeconfig, err := testenv.WriteKubeconfig(env, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The daemons run as the ServiceAccount of config/peernode/role.yaml,
	// so the test proves that this least-privilege Role suffices.
	applyOut, err := exec.Command(testenv.Kubectl(), "--kubeconfig", adminKubeconfig, "apply", "-n", "default",
		"-f", filepath.Join(testenv.RepoRoot(), "config", "peernode", "role.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("applying the peernode Role: %v\n%s", err, applyOut)
	}
	kubeconfig := impersonating(t, adminKubeconfig, "system:serviceaccount:default:peernode")
	t.Setenv("KUBECONFIG", kubeconfig)
	t.Setenv("POD_NAMESPACE", "")
	client := kubernetes.NewForConfigOrDie(restCfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns = "default"

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "mesh-key"}, Data: map[string][]byte{"key": []byte("0123456789abcdef-a-mesh-key")}}
	if _, err := client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cmClient := client.CoreV1().ConfigMaps(ns)
	put := func(cfg *v1alpha1.PeerNodeConfiguration) {
		t.Helper()
		cfg.Generation = ""
		cfg.Default()
		data, err := cfg.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "peermesh-blue", Annotations: map[string]string{kube.HashAnnotation: cfg.Generation}},
			Data: map[string]string{v1alpha1.ConfigMapKey: string(data)}}
		old, err := cmClient.Get(ctx, cm.Name, metav1.GetOptions{})
		if err == nil {
			cm.ResourceVersion = old.ResourceVersion
			_, err = cmClient.Update(ctx, cm, metav1.UpdateOptions{})
		} else {
			_, err = cmClient.Create(ctx, cm, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	listenA, adminA, listenB, adminB := testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t)
	errs := make(chan error, 2)
	var logsA, logsB testproc.Buffer
	common := []string{"--mesh", "blue", "--kube-configmap", ns + "/peermesh-blue", "--fail-closed", "--data-dir", t.TempDir()}
	go func() {
		errs <- run(ctx, append([]string{"run", "--id", "alice", "--listen", listenA, "--admin-listen", adminA}, common...), io.Discard, &logsA)
	}()
	go func() {
		errs <- run(ctx, append([]string{"run", "--id", "bob", "--listen", listenB, "--admin-listen", adminB, "--seeds", listenA}, common...), io.Discard, &logsB)
	}()
	defer func() {
		cancel()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}()

	// Fail-closed: not Ready, and no channel, until the first configuration.
	waitFor(t, func() bool { return status(adminA, "/healthz") == http.StatusOK }, "admin server not up")
	if got := status(adminA, "/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before any configuration = %d, want 503", got)
	}

	cfg := v1alpha1.DefaultPeerNodeConfiguration()
	cfg.MeshName = "blue"
	cfg.Incoming.TrustProtocol = v1alpha1.NodeTrustProtocol{Type: v1alpha1.TrustProtocolSharedKey,
		SharedKeySecretRef: &v1alpha1.NamespacedSecretKeyReference{Namespace: ns, Name: "mesh-key", Key: "key"}}
	put(cfg)
	waitFor(t, func() bool {
		return status(adminA, "/readyz") == http.StatusOK && status(adminB, "/readyz") == http.StatusOK
	}, "nodes not Ready after the first configuration")
	waitFor(t, func() bool { return trustedPeers(t, adminA) == 1 && trustedPeers(t, adminB) == 1 }, "no trusted channel with the shared key from the Secret")
	if !strings.Contains(metricsText(t, adminA), `peermesh_node_trust_handshakes_total{protocol="sharedKey",result="success"}`) {
		t.Error("sharedKey handshake not counted")
	}

	// Block bob: alice closes the channel within a second, no restart. The
	// same change lowers the channel caps, which apply live too.
	blocked := cfg.DeepCopy()
	inCap, outCap := int32(7), int32(3)
	blocked.Limits.MaxInboundPeers, blocked.Limits.MaxOutboundPeers = &inCap, &outCap
	blocked.Blocked = []v1alpha1.PeerRule{{Identifier: "bob", Source: &v1alpha1.RuleSource{Kind: "PeerTrustPolicy", Namespace: ns, Name: "blue", Entry: "blocked.identifiers[0]"}}}
	start := time.Now()
	put(blocked)
	waitFor(t, func() bool { return trustedPeers(t, adminA) == 0 }, "blocked peer's channel still open")
	if took := time.Since(start); took > time.Second {
		t.Errorf("enforcement took %s, want under 1s", took)
	}
	var peers struct {
		KnownPeers []struct{ ID, NoChannelReason string }
		Limits     struct{ MaxInbound, MaxOutbound int }
	}
	getJSONInto(t, adminA, "/debug/peers", &peers)
	if peers.Limits.MaxInbound != 7 || peers.Limits.MaxOutbound != 3 {
		t.Errorf("limits in force after the change: %+v, want the configuration's 7 inbound and 3 outbound", peers.Limits)
	}
	found := false
	for _, kp := range peers.KnownPeers {
		found = found || (kp.ID == "bob" && strings.Contains(kp.NoChannelReason, "blocked.identifiers[0]"))
	}
	if !found {
		t.Errorf("/debug/peers does not say why bob has no channel: %+v", peers.KnownPeers)
	}

	// An invalid configuration is refused; the last good one stays.
	var before struct{ Generation string }
	getJSONInto(t, adminA, "/debug/config", &before)
	bad, err := cmClient.Get(ctx, "peermesh-blue", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad.Data[v1alpha1.ConfigMapKey] = "mode: Sometimes\n"
	bad.Annotations[kube.HashAnnotation] = "broken"
	if _, err := cmClient.Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return strings.Contains(metricsText(t, adminA), `peermesh_node_config_reloads_total{result="invalid"} 1`)
	}, "invalid configuration not counted")
	var after struct{ Generation string }
	getJSONInto(t, adminA, "/debug/config", &after)
	if after.Generation != before.Generation || before.Generation != blocked.Generation {
		t.Errorf("generation %q after an invalid update, want the last good %q", after.Generation, blocked.Generation)
	}
	if trustedPeers(t, adminA) != 0 {
		t.Error("the invalid update undid the block")
	}
}

// impersonating writes a copy of kubeconfig whose user acts as user.
func impersonating(t *testing.T, kubeconfig, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = user
	}
	path := filepath.Join(t.TempDir(), "kubeconfig-"+strings.ReplaceAll(user, ":", "-"))
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func status(admin, path string) int {
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getJSONInto(t *testing.T, admin, path string, v any) {
	t.Helper()
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func trustedPeers(t *testing.T, admin string) int {
	var p struct {
		Channels []struct {
			State   string
			Trusted bool
		}
	}
	getJSONInto(t, admin, "/debug/peers", &p)
	n := 0
	for _, c := range p.Channels {
		if c.State == "open" && c.Trusted {
			n++
		}
	}
	return n
}

func metricsText(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = io.Copy(&b, resp.Body)
	return b.String()
}
