//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peermesh/peermesh/internal/testenv"
)

// process is a binary started by the suite; it is stopped with SIGINT at
// cleanup, or earlier with stop.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	once sync.Once
	err  error
}

// stop interrupts the process and waits for it (at most 15 s).
func (p *process) stop() error {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case p.err = <-done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			p.err = fmt.Errorf("%s did not stop within 15s", p.name)
		}
	})
	return p.err
}

func start(t *testing.T, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, log: &bytes.Buffer{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("%s: %v\n%s", name, err, lastLines(p.log.String(), 40))
		}
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, lastLines(p.log.String(), 40))
		}
	})
	return p
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last state: %s", what, timeout, state)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

type peers struct {
	Channels []struct {
		ID, State string
		Trusted   bool
	}
}

func trustedIDs(admin string) ([]string, error) {
	resp, err := http.Get("http://" + admin + "/debug/peers")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var p peers
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range p.Channels {
		if c.State == "open" && c.Trusted {
			ids = append(ids, c.ID)
		}
	}
	return ids, nil
}

// TestPolicyFlow: a trust policy applied with kubectl forms the mesh; a
// blocked identifier added with kubectl closes that node's channels on every
// other node without a restart; an invalid change is rejected by the API
// server and the nodes are unaffected.
func TestPolicyFlow(t *testing.T) {
	root := testenv.RepoRoot()
	bin := filepath.Join(root, "bin")
	for _, b := range []string{"manager", "peernode"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s not built (make build): %v", b, err)
		}
	}
	env, _, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }() // a no-op once the test stopped it
	kubeconfig, err := testenv.WriteKubeconfig(env, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kubectl := func(stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, testenv.Kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustKubectl := func(stdin string, args ...string) string {
		t.Helper()
		out, err := kubectl(stdin, args...)
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return out
	}
	mustKubectl("", "apply", "-f", filepath.Join(root, "config", "crd", "bases"))
	mustKubectl("", "wait", "--for=condition=Established", "crd/peertrustpolicies.p2p.peermesh.io", "crd/peerallowlists.p2p.peermesh.io")
	mustKubectl("", "create", "namespace", "mesh-e2e")

	kenv := []string{"KUBECONFIG=" + kubeconfig}
	manager := start(t, "manager", kenv, filepath.Join(bin, "manager"), "--metrics-bind-address", "0", "--health-probe-bind-address", freeAddr(t))

	const nodes = 4
	admins := make([]string, nodes)
	listens := make([]string, nodes)
	for i := range nodes {
		admins[i], listens[i] = freeAddr(t), freeAddr(t)
	}
	for i := range nodes {
		args := []string{"run", "--id", fmt.Sprintf("node-%d", i), "--mesh", "blue", "--listen", listens[i], "--admin-listen", admins[i],
			"--kube-configmap", "mesh-e2e/peermesh-blue", "--fail-closed", "--data-dir", t.TempDir()}
		if i > 0 {
			args = append(args, "--seeds", listens[0])
		}
		start(t, fmt.Sprintf("node-%d", i), kenv, filepath.Join(bin, "peernode"), args...)
	}

	policyMode := func(mode, blocked string) string {
		return `apiVersion: p2p.peermesh.io/v1alpha1
kind: PeerTrustPolicy
metadata: {name: blue, namespace: mesh-e2e}
spec:
  meshName: blue
  mode: ` + mode + `
  incoming: {trustProtocol: {type: Ping}}
  blocked: {identifiers: [` + blocked + `]}
`
	}
	policy := func(blocked string) string { return policyMode("Enforce", blocked) }
	mustKubectl(policy(""), "apply", "-f", "-")
	waitFor(t, 60*time.Second, "full trusted mesh after the policy", func() (bool, string) {
		var state []string
		full := true
		for i, a := range admins {
			ids, err := trustedIDs(a)
			full = full && err == nil && len(ids) == nodes-1
			state = append(state, fmt.Sprintf("node-%d:%d", i, len(ids)))
		}
		return full, strings.Join(state, " ")
	})
	mustKubectl("", "wait", "-n", "mesh-e2e", "--for=condition=Accepted", "peertrustpolicy/blue", "--timeout=30s")

	// Audit mode: the same block closes nothing, but node-0 counts it.
	mustKubectl(policyMode("Audit", "node-3"), "apply", "-f", "-")
	waitFor(t, 20*time.Second, "an audit denial counted on node-0", func() (bool, string) {
		m := metricsOf(t, admins[0])
		return strings.Contains(m, `peermesh_node_policy_denials_total{mode="audit",reason="blocked_identifier"} 1`), "no audit series yet"
	})
	for i, a := range admins {
		if ids, err := trustedIDs(a); err != nil || len(ids) != nodes-1 {
			t.Fatalf("Audit mode closed channels: node-%d trusts %v (%v)", i, ids, err)
		}
	}

	start3 := time.Now()
	mustKubectl(policy("node-3"), "apply", "-f", "-")
	waitFor(t, 20*time.Second, "node-3 blocked everywhere", func() (bool, string) {
		for i, a := range admins[:3] {
			ids, err := trustedIDs(a)
			if err != nil || len(ids) != nodes-2 {
				return false, fmt.Sprintf("node-%d trusts %v (%v)", i, ids, err)
			}
			for _, id := range ids {
				if id == "node-3" {
					return false, fmt.Sprintf("node-%d still trusts node-3", i)
				}
			}
		}
		return true, ""
	})
	t.Logf("kubectl apply to node-3 closed everywhere: %s", time.Since(start3).Round(time.Millisecond))

	out, err := kubectl(strings.Replace(policy("node-3"), "meshName: blue", "meshName: red", 1), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "meshName is immutable") {
		t.Fatalf("changing meshName was not rejected by the API server: %v\n%s", err, out)
	}
	for i, a := range admins[:3] {
		if ids, err := trustedIDs(a); err != nil || len(ids) != nodes-2 {
			t.Errorf("node-%d after the rejected change: %v %v", i, ids, err)
		}
	}

	// An allowlist by identifier admits only the listed peers: with the
	// block lifted, node-3 (not listed) still gets no channel.
	mustKubectl(`apiVersion: p2p.peermesh.io/v1alpha1
kind: PeerAllowlist
metadata: {name: members, namespace: mesh-e2e}
spec:
  meshName: blue
  peers:
  - {name: first, identifier: node-0}
  - {identifier: node-1}
  - {identifier: node-2}
`, "apply", "-f", "-")
	mustKubectl(policy(""), "apply", "-f", "-")
	waitFor(t, 20*time.Second, "node-0 explains node-3 as not allowlisted", func() (bool, string) {
		out := explain(t, admins[0], "node-3")
		return strings.Contains(out, `"reason": "not_allowlisted"`), out
	})
	if out := explain(t, admins[0], "node-0"); !strings.Contains(out, `"admitted": true`) || !strings.Contains(out, "first") {
		t.Errorf("explain node-0: %s", out)
	}
	for i, a := range admins[:3] {
		ids, err := trustedIDs(a)
		if err != nil || len(ids) != nodes-2 {
			t.Errorf("node-%d with the allowlist trusts %v (%v)", i, ids, err)
		}
	}
	if ids, _ := trustedIDs(admins[3]); len(ids) != 0 {
		t.Errorf("unlisted node-3 trusts %v", ids)
	}

	// With the operator and then the API server stopped, the nodes keep
	// enforcing the configuration they have.
	if err := manager.stop(); err != nil {
		t.Fatalf("stopping the operator: %v", err)
	}
	// kube-apiserver drains the nodes' watches slowly; envtest kills it after
	// its stop timeout, which is as good a way down for this test.
	if err := env.Stop(); err != nil {
		t.Logf("stopping the control plane: %v", err)
	}
	if out, err := kubectl("", "get", "ns", "--request-timeout=2s"); err == nil {
		t.Fatalf("the API server still answers: %s", out)
	}
	if out := explain(t, admins[1], "node-3"); !strings.Contains(out, `"reason": "not_allowlisted"`) {
		t.Errorf("without the API server, node-1 explains node-3 as: %s", out)
	}
	for i, a := range admins[:3] {
		if ids, err := trustedIDs(a); err != nil || len(ids) != nodes-2 {
			t.Errorf("without the API server, node-%d trusts %v (%v)", i, ids, err)
		}
	}
}

func explain(t *testing.T, admin, id string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/debug/explain?id=" + id + "&addr=127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}

func metricsOf(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}
