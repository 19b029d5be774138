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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peermesh/peermesh/internal/netns"
	"github.com/peermesh/peermesh/internal/testenv"
	"github.com/peermesh/peermesh/internal/testproc"
)

// The suite runs in a network namespace of its own (internal/netns), where
// node i has the address 10.244.0.(10+i) on lo, as a pod has its own IP: the
// nodes are registered as endpoints of their mesh's Service (the API server
// refuses loopback addresses there), the operator probes them at those
// addresses, and CIDR allowlists tell them apart. The API server and the
// operator stay on 127.0.0.1 inside the namespace.
const (
	nodeCount = 10
	peerPort  = 7000
	adminPort = 9090
)

func nodeIP(i int) string { return netns.NodeAddr(i) }

func TestMain(m *testing.M) {
	inside, code, err := netns.Enter(netns.Addrs(nodeCount))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	if !inside {
		os.Exit(code)
	}
	os.Exit(m.Run())
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
	slices.Sort(ids)
	return ids, nil
}

// TestPolicyFlow drives the whole flow with kubectl against a real API
// server, the operator binary and 10 peernode processes in Kubernetes mode:
// a trust policy forms the mesh and reports Propagated 10/10; Audit mode
// counts a denial and closes nothing; a blocked identifier closes that node's
// channels everywhere; an invalid change is rejected by the API server and
// the nodes are unaffected; an allowlist by identifier and by CIDR admits
// only the listed peers; an operator restart writes nothing; with the
// operator and the API server stopped, the nodes keep enforcing.
func TestPolicyFlow(t *testing.T) {
	root := testenv.RepoRoot()
	bin := filepath.Join(root, "bin")
	for _, b := range []string{"manager", "peernode"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s not built (make build): %v", b, err)
		}
	}
	env, _, err := testenv.Start(testenv.Options{AdvertiseAddress: netns.APIServerAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }() // a no-op once the test stopped it
	kubeconfig, err := testenv.WriteKubeconfig(env, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
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
	// The mesh's Service and its endpoints, as the chart's headless Service
	// and the EndpointSlice controller would make them for 10 pods.
	ips := make([]string, nodeCount)
	for i := range ips {
		ips[i] = nodeIP(i)
	}
	mustKubectl(testenv.MeshService("mesh-e2e", "blue", ips, peerPort, adminPort), "apply", "-f", "-")

	kenv := []string{"KUBECONFIG=" + kubeconfig}
	startManager := func(name string) (*testproc.Process, string) {
		metricsAddr := testproc.FreeAddr(t)
		return testproc.Start(t, name, kenv, filepath.Join(bin, "manager"), "--metrics-bind-address", metricsAddr,
			"--health-probe-bind-address", testproc.FreeAddr(t)), metricsAddr
	}
	manager, _ := startManager("manager")

	admins := make([]string, nodeCount)
	for i := range nodeCount {
		admins[i] = net.JoinHostPort(nodeIP(i), fmt.Sprint(adminPort))
		args := []string{"run", "--id", fmt.Sprintf("node-%d", i), "--mesh", "blue",
			"--listen", net.JoinHostPort(nodeIP(i), fmt.Sprint(peerPort)), "--admin-listen", admins[i],
			"--kube-configmap", "mesh-e2e/peermesh-blue", "--fail-closed", "--data-dir", t.TempDir()}
		if i > 0 {
			args = append(args, "--seeds", net.JoinHostPort(nodeIP(0), fmt.Sprint(peerPort)))
		}
		testproc.Start(t, fmt.Sprintf("node-%d", i), kenv, filepath.Join(bin, "peernode"), args...)
	}
	// expectMesh waits until every node i trusts exactly the nodes want[i].
	expectMesh := func(what string, want map[int][]int) {
		t.Helper()
		testproc.Eventually(t, 60*time.Second, 50*time.Millisecond, what, func() (bool, string) {
			var state []string
			ok := true
			for i, a := range admins {
				ids, err := trustedIDs(a)
				got := strings.Join(ids, ",")
				exp := names(want[i])
				if err != nil || got != exp {
					ok = false
					state = append(state, fmt.Sprintf("node-%d trusts [%s] want [%s] %v", i, got, exp, err))
				}
			}
			return ok, strings.Join(state, "; ")
		})
	}
	propagated := func(kind, name string) {
		t.Helper()
		testproc.Eventually(t, 30*time.Second, 50*time.Millisecond, kind+"/"+name+" Propagated with 10 of 10 nodes in sync", func() (bool, string) {
			// The condition must be about the current spec: its
			// observedGeneration is the resource's generation.
			out, err := kubectl("", "get", "-n", "mesh-e2e", kind, name, "-o",
				`jsonpath={.status.nodes.total}/{.status.nodes.inSync} {.status.conditions[?(@.type=="Propagated")].status} `+
					`{.status.conditions[?(@.type=="Propagated")].observedGeneration}={.metadata.generation}`)
			f := strings.Fields(out)
			if err == nil && len(f) == 3 && f[0] == "10/10" && f[1] == "True" && strings.Count(f[2], "=") == 1 &&
				strings.Split(f[2], "=")[0] == strings.Split(f[2], "=")[1] {
				return true, ""
			}
			status, _ := kubectl("", "get", "-n", "mesh-e2e", kind, name, "-o", "jsonpath={.status}")
			return false, out + "\n" + status
		})
	}

	mustKubectl(policy("Enforce", ""), "apply", "-f", "-")
	all := map[int][]int{}
	for i := range nodeCount {
		all[i] = others(i, nodeCount, nil)
	}
	expectMesh("full trusted mesh after the policy", all)
	mustKubectl("", "wait", "-n", "mesh-e2e", "--for=condition=Accepted", "peertrustpolicy/blue", "--timeout=30s")
	propagated("peertrustpolicy", "blue")

	// Audit mode: the same block closes nothing, but the nodes count it.
	mustKubectl(policy("Audit", "node-9"), "apply", "-f", "-")
	testproc.Eventually(t, 20*time.Second, 50*time.Millisecond, "an audit denial counted on node-0", func() (bool, string) {
		m := metricsOf(t, admins[0])
		return strings.Contains(m, `peermesh_node_policy_denials_total{mode="audit",reason="blocked_identifier"} 1`), "no audit series yet"
	})
	propagated("peertrustpolicy", "blue")
	expectMesh("no channel closed in Audit mode", all)

	start9 := time.Now()
	mustKubectl(policy("Enforce", "node-9"), "apply", "-f", "-")
	blocked := map[int][]int{9: nil}
	for i := range nodeCount - 1 {
		blocked[i] = others(i, nodeCount-1, nil)
	}
	expectMesh("node-9 blocked everywhere", blocked)
	t.Logf("kubectl apply to node-9 closed on all 9 other nodes: %s", time.Since(start9).Round(time.Millisecond))
	propagated("peertrustpolicy", "blue")

	out, err := kubectl(strings.Replace(policy("Enforce", "node-9"), "meshName: blue", "meshName: red", 1), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "meshName is immutable") {
		t.Fatalf("changing meshName was not rejected by the API server: %v\n%s", err, out)
	}
	out, err = kubectl(strings.Replace(policy("Enforce", ""), "Enforce", "Deny", 1), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, `spec.mode: Unsupported value: "Deny"`) {
		t.Fatalf("an unknown mode was not rejected by the API server: %v\n%s", err, out)
	}
	expectMesh("nodes unaffected by the rejected changes", blocked)

	// An allowlist by identifier and by CIDR admits only the listed peers
	// (in both directions): node-0 and node-1 by identifier, 10.244.0.12/30
	// (node-2 to node-5) except 10.244.0.13 (node-3). With the block lifted,
	// node-3 and node-6 to node-9 get no channel.
	mustKubectl(`apiVersion: p2p.peermesh.io/v1alpha1
kind: PeerAllowlist
metadata: {name: members, namespace: mesh-e2e}
spec:
  meshName: blue
  peers:
  - {name: first, identifier: node-0}
  - {identifier: node-1}
  - {name: pods-2-to-5, cidr: 10.244.0.12/30, except: [10.244.0.13/32]}
`, "apply", "-f", "-")
	mustKubectl(policy("Enforce", ""), "apply", "-f", "-")
	members := []int{0, 1, 2, 4, 5}
	allowed := map[int][]int{}
	for _, i := range members {
		allowed[i] = others(i, nodeCount, func(j int) bool { return slices.Contains(members, j) })
	}
	expectMesh("only allowlisted nodes trusted", allowed)
	for _, c := range []struct {
		id, addr string
		want     []string
	}{
		{"node-0", nodeIP(0), []string{`"admitted": true`, `entry \"first\"`}},
		{"node-4", nodeIP(4), []string{`"admitted": true`, `entry \"pods-2-to-5\" 10.244.0.12/30 except 10.244.0.13/32`}},
		{"node-3", nodeIP(3), []string{`"admitted": false`, `"reason": "not_allowlisted"`}},
		{"node-7", nodeIP(7), []string{`"admitted": false`, `"reason": "not_allowlisted"`}},
	} {
		out := explain(t, admins[1], c.id, c.addr)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("node-1 explains %s at %s without %s:\n%s", c.id, c.addr, w, out)
			}
		}
	}
	propagated("peertrustpolicy", "blue")
	propagated("peerallowlist", "members")

	// An operator restart writes nothing: not the ConfigMap, not the
	// resources' status, and no node reloads its configuration.
	versions := func() string {
		return mustKubectl("", "get", "-n", "mesh-e2e", "configmap/peermesh-blue", "peertrustpolicy/blue", "peerallowlist/members",
			"-o", "jsonpath={range .items[*]}{.kind}/{.metadata.name}@{.metadata.resourceVersion} {end}")
	}
	reloads := func() string {
		var r []string
		for i, a := range admins {
			r = append(r, fmt.Sprintf("node-%d:%s", i, metricLine(metricsOf(t, a), `peermesh_node_config_reloads_total{result="success"}`)))
		}
		return strings.Join(r, " ")
	}
	before, reloadsBefore := versions(), reloads()
	if err := manager.Stop(); err != nil {
		t.Fatalf("stopping the operator: %v", err)
	}
	manager, metricsAddr := startManager("manager-restarted")
	testproc.Eventually(t, 30*time.Second, 50*time.Millisecond, "the restarted operator reconciled the mesh and probed its nodes", func() (bool, string) {
		m, err := get("http://" + metricsAddr + "/metrics")
		return err == nil &&
			strings.Contains(m, `controller_runtime_reconcile_total{controller="mesh",result="success"}`) &&
			!strings.Contains(m, `controller_runtime_reconcile_total{controller="mesh",result="success"} 0`) &&
			strings.Contains(m, `peermesh_operator_nodes_in_sync{mesh="blue",namespace="mesh-e2e"} 10`), metricLine(m, "controller_runtime_reconcile_total")
	})
	if after := versions(); after != before {
		t.Errorf("the operator restart wrote objects:\nbefore %s\nafter  %s", before, after)
	}
	if after := reloads(); after != reloadsBefore {
		t.Errorf("the operator restart made nodes reload:\nbefore %s\nafter  %s", reloadsBefore, after)
	}
	if m, _ := get("http://" + metricsAddr + "/metrics"); !strings.Contains(m, `peermesh_operator_configmap_writes_total{result="updated"} 0`) ||
		!strings.Contains(m, `peermesh_operator_configmap_writes_total{result="created"} 0`) {
		t.Errorf("the restarted operator wrote the ConfigMap: %s", metricLine(m, "peermesh_operator_configmap_writes_total"))
	}

	// With the operator and then the API server stopped, the nodes keep
	// enforcing the configuration they have.
	if err := manager.Stop(); err != nil {
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
	if out := explain(t, admins[1], "node-3", nodeIP(3)); !strings.Contains(out, `"reason": "not_allowlisted"`) {
		t.Errorf("without the API server, node-1 explains node-3 as: %s", out)
	}
	expectMesh("the allowlist still enforced without the API server", allowed)
}

func policy(mode, blocked string) string {
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

// others lists the nodes below n other than i that keep (nil: all).
func others(i, n int, keep func(int) bool) []int {
	var out []int
	for j := range n {
		if j != i && (keep == nil || keep(j)) {
			out = append(out, j)
		}
	}
	return out
}

func names(nodes []int) string {
	var s []string
	for _, j := range nodes {
		s = append(s, fmt.Sprintf("node-%d", j))
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

// metricLine returns the lines of a metrics page that start with prefix.
func metricLine(page, prefix string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return b.String(), err
}

func explain(t *testing.T, admin, id, addr string) string {
	t.Helper()
	out, err := get("http://" + admin + "/debug/explain?id=" + id + "&addr=" + addr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func metricsOf(t *testing.T, admin string) string {
	t.Helper()
	out, err := get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return out
}
