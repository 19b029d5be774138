package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peermesh/peermesh/internal/netns"
	"github.com/peermesh/peermesh/internal/testenv"
	"github.com/peermesh/peermesh/internal/testproc"
	"github.com/peermesh/peermesh/peernode/metrics"
	"github.com/peermesh/peermesh/peernode/wire"
)

// The live mesh of TestLiveMeshMonitoring.
const (
	liveNodes    = 4
	liveMesh     = "blue"
	liveNS       = "mesh-mon"        // the mesh's namespace
	operatorNS   = "peermesh-system" // the namespace label of the operator's target
	blockedNode  = "node-3"          // the policy blocks it once the mesh is up
	nodeJob      = "peermesh-node"
	operatorJob  = "peermesh-operator"
	liveDeadline = 3 * time.Minute // for the checks on Prometheus's data
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

// TestLiveMeshMonitoring runs a real Prometheus on loopback that scrapes a
// live mesh of peernode processes and the operator, which follow and serve
// the test control plane, with the chart's alert rules loaded. After the
// mesh has formed, exchanged messages and denied a blocked node, every
// expression of the dashboard and every selector of the dashboard and of
// the rules returns data; the alerts of a healthy mesh stay silent, and
// PeermeshNodeNoPeers selects exactly the blocked node. Stopping the
// operator then makes PeermeshOperatorDown's expression select its target.
func TestLiveMeshMonitoring(t *testing.T) {
	promBin := tool(t, "prometheus")
	root := testenv.RepoRoot()
	ctx := t.Context()
	began := time.Now()

	// The binaries, built as releases are (hack/build.sh).
	binDir := t.TempDir()
	build := exec.CommandContext(ctx, "bash", filepath.Join(root, "hack", "build.sh"), binDir)
	build.Env = append(os.Environ(), "VERSION=monitoring-test")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("hack/build.sh: %v\n%s", err, out)
	}
	t.Logf("binaries built in %s", time.Since(began).Round(time.Millisecond))

	// The control plane, with the CRDs.
	env, _, err := testenv.Start(testenv.Options{CRDDirectoryPaths: []string{testenv.CRDPath()}, AdvertiseAddress: netns.APIServerAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() }) // after the processes (cleanups run last first)
	kubeconfig, err := testenv.WriteKubeconfig(env, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kubectl := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, testenv.Kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	kubectl("", "create", "namespace", liveNS)
	// The mesh's Service and its endpoints, as the chart and the
	// EndpointSlice controller make them: the operator probes the nodes.
	ips := make([]string, liveNodes)
	for i := range ips {
		ips[i] = nodeIP(i)
	}
	kubectl(testenv.MeshService(liveNS, liveMesh, ips, 7000, 9090), "apply", "-f", "-")

	// The operator and the nodes. The nodes follow the mesh's ConfigMap
	// (Kubernetes mode, fail-closed) and read a configuration file only for
	// a 1 s keepalive, so that RTTs are measured at once.
	kenv := []string{"KUBECONFIG=" + kubeconfig}
	opMetrics := testproc.FreeAddr(t)
	manager := testproc.Start(t, "manager", kenv, filepath.Join(binDir, "manager"),
		"--metrics-bind-address", opMetrics, "--health-probe-bind-address", testproc.FreeAddr(t))
	cfgFile := filepath.Join(t.TempDir(), "node.yaml")
	cfg := "apiVersion: p2p.peermesh.io/v1alpha1\nkind: PeerNodeConfiguration\nmeshName: " + liveMesh + "\nlimits: {keepaliveInterval: 1s}\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	admins, listens := make([]string, liveNodes), make([]string, liveNodes)
	for i := range liveNodes {
		admins[i], listens[i] = nodeIP(i)+":9090", nodeIP(i)+":7000"
	}
	for i := range liveNodes {
		args := []string{"run", "--id", nodeID(i), "--mesh", liveMesh, "--listen", listens[i], "--admin-listen", admins[i],
			"--kube-configmap", liveNS + "/peermesh-" + liveMesh, "--fail-closed", "--config", cfgFile,
			"--data-dir", t.TempDir(), "--log-format", "text"}
		if i > 0 {
			args = append(args, "--seeds", listens[0])
		}
		testproc.Start(t, nodeID(i), kenv, filepath.Join(binDir, "peernode"), args...)
	}

	// Prometheus: static targets labelled as the chart's monitors label them
	// (namespace, pod). The operator's target has its own namespace label, as
	// from a ServiceMonitor without honorLabels: the mesh namespace label of
	// the operator's gauges becomes exported_namespace.
	prom := &promAPI{base: "http://" + testproc.FreeAddr(t)}
	var pc strings.Builder
	fmt.Fprintf(&pc, "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n")
	fmt.Fprintf(&pc, "rule_files: [%q]\n", rulesFile)
	fmt.Fprintf(&pc, "scrape_configs:\n- job_name: %s\n  static_configs:\n", nodeJob)
	for i := range liveNodes {
		fmt.Fprintf(&pc, "  - targets: [%q]\n    labels: {namespace: %s, pod: %s}\n", admins[i], liveNS, nodeID(i))
	}
	fmt.Fprintf(&pc, "- job_name: %s\n  static_configs:\n  - targets: [%q]\n    labels: {namespace: %s, pod: peermesh-operator-0}\n",
		operatorJob, opMetrics, operatorNS)
	promDir := t.TempDir()
	promCfg := filepath.Join(promDir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(pc.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	testproc.Start(t, "prometheus", nil, promBin, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--web.listen-address="+strings.TrimPrefix(prom.base, "http://"), "--log.level=warn")
	testproc.Eventually(t, 60*time.Second, 250*time.Millisecond, "Prometheus ready", func() (bool, string) {
		code, err := httpStatus(prom.base + "/-/ready")
		return code == http.StatusOK, fmt.Sprint(code, err)
	})
	testproc.Eventually(t, 60*time.Second, 250*time.Millisecond, "every target scraped", func() (bool, string) {
		s, err := prom.query(ctx, "up == 1")
		return err == nil && len(s) == liveNodes+1, fmt.Sprintf("%d targets up (%v)", len(s), err)
	})

	// The mesh forms under a policy and exchanges messages.
	policy := func(blocked string) string {
		return "apiVersion: p2p.peermesh.io/v1alpha1\nkind: PeerTrustPolicy\nmetadata: {name: " + liveMesh + ", namespace: " + liveNS + "}\n" +
			"spec:\n  meshName: " + liveMesh + "\n  mode: Enforce\n  incoming: {trustProtocol: {type: Ping}}\n  blocked: {identifiers: [" + blocked + "]}\n"
	}
	kubectl(policy(""), "apply", "-f", "-")
	waitTrusted(t, ctx, admins, func(int) int { return liveNodes - 1 })
	for i := range liveNodes {
		sendAll(t, admins[i], liveNodes-1)
	}

	// The policy blocks node-3: its channels close, and its peers deny it.
	kubectl(policy(blockedNode), "apply", "-f", "-")
	waitTrusted(t, ctx, admins, func(i int) int {
		if nodeID(i) == blockedNode {
			return 0
		}
		return liveNodes - 2
	})
	for i := range liveNodes - 1 {
		sendAll(t, admins[i], liveNodes-2)
	}
	t.Logf("mesh formed, messages sent, %s blocked: %s after the start", blockedNode, time.Since(began).Round(time.Millisecond))

	// Everything the chart asks of Prometheus, checked together until it
	// all holds.
	checks := liveChecks(t)
	evalStart := time.Now()
	testproc.Eventually(t, liveDeadline, 250*time.Millisecond, "the chart's expressions on the live mesh", func() (bool, string) {
		var failed []string
		for _, c := range checks {
			if err := c.run(ctx, prom); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", c.name, err))
			}
		}
		return len(failed) == 0, fmt.Sprintf("%d of %d checks fail:\n  %s", len(failed), len(checks), strings.Join(failed, "\n  "))
	})
	t.Logf("%d checks of the dashboard's and rules' expressions pass on the live mesh, %s after the mesh was ready",
		len(checks), time.Since(evalStart).Round(time.Millisecond))

	// The operator stops: its target fails its scrapes, and
	// PeermeshOperatorDown's expression selects it (and it alone), pending.
	if err := manager.Stop(); err != nil {
		t.Fatalf("stopping the operator: %v", err)
	}
	down := alertExpr(t, "PeermeshOperatorDown")
	testproc.Eventually(t, 60*time.Second, 250*time.Millisecond, "PeermeshOperatorDown selects the stopped operator", func() (bool, string) {
		s, err := prom.query(ctx, down)
		if err != nil {
			return false, err.Error()
		}
		if len(s) != 1 || s[0].Metric["job"] != operatorJob || s[0].Value != 0 {
			return false, fmt.Sprintf("got %v", s)
		}
		p, err := prom.query(ctx, `ALERTS{alertname="PeermeshOperatorDown", alertstate="pending", job="`+operatorJob+`"}`)
		return err == nil && len(p) == 1, fmt.Sprintf("pending alert: %v (%v)", p, err)
	})
	t.Logf("test done in %s", time.Since(began).Round(time.Millisecond))
}

func nodeID(i int) string { return fmt.Sprintf("node-%d", i) }

// check is one condition on Prometheus's data.
type check struct {
	name string
	run  func(context.Context, *promAPI) error
}

// liveChecks returns the checks of the live test: the dashboard's
// expressions return data; every selector of the dashboard and of the rules
// does; each alert's expression selects what the live mesh should (only
// the blocked node for PeermeshNodeNoPeers, nothing for the others), and
// Prometheus evaluates the rules without errors; and the mesh's story is in
// the data (denials of the blocked node, messages, RTTs, one generation, the
// operator's view).
func liveChecks(t *testing.T) []check {
	t.Helper()
	var checks []check
	dash := substituted(t, loadDashboard(t).queries(t))
	selectorSeen := map[string]bool{}
	addSelectors := func(where, expr string) {
		sels, err := selectors(expr)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		for _, s := range sels {
			if selectorSeen[s.Text] {
				continue
			}
			selectorSeen[s.Text] = true
			checks = append(checks, check{"selector " + s.Text + " (" + where + ")", hasData(s.Text)})
		}
	}
	for _, q := range dash {
		checks = append(checks, check{"dashboard " + q.Where + ": " + q.Expr, hasData(q.Expr)})
		addSelectors("dashboard "+q.Where, q.Expr)
	}
	for _, r := range loadRules(t) {
		addSelectors("rule "+r.Alert, r.Expr)
		switch r.Alert {
		case "PeermeshNodeNoPeers":
			checks = append(checks, check{"rule " + r.Alert + " selects " + blockedNode + " alone", selectsOnly(r.Expr, blockedNode)},
				check{"rule " + r.Alert + " pending for " + blockedNode,
					selectsOnly(`ALERTS{alertname="`+r.Alert+`", alertstate="pending"}`, blockedNode)})
		default:
			checks = append(checks, check{"rule " + r.Alert + " silent on the healthy mesh", isEmpty(r.Expr)})
		}
	}
	checks = append(checks, check{"Prometheus evaluates the rules without error", rulesHealthy})
	for _, e := range []struct{ name, expr string }{
		{"enforced denials of the blocked node", `sum(peermesh_node_policy_denials_total{reason="blocked_identifier", mode="enforced"}) > 0`},
		{"messages sent", fmt.Sprintf(`sum(rate(peermesh_node_packets_sent_total{type=%q}[5m])) > 0`, metrics.TypeLabel(wire.TypeMessage))},
		{"messages received", fmt.Sprintf(`sum(rate(peermesh_node_packets_received_total{type=%q}[5m])) > 0`, metrics.TypeLabel(wire.TypeMessage))},
		{"RTTs measured", `sum(rate(peermesh_node_rtt_seconds_count[5m])) > 0`},
		{"every node applies the operator's configuration", fmt.Sprintf(`count(peermesh_node_config_info{mesh=%q}) == %d`, liveMesh, liveNodes)},
		{"one generation in the mesh", fmt.Sprintf(`count(count by (generation) (peermesh_node_config_info{mesh=%q})) == 1`, liveMesh)},
		{"every node reloaded a configuration", fmt.Sprintf(`count(peermesh_node_config_reloads_total{result="success"} > 0) == %d`, liveNodes)},
		{"the operator reconciled", `sum(controller_runtime_reconcile_total{controller="mesh"}) > 0`},
		{"the operator compiled the mesh", `peermesh_operator_compiled_meshes == 1`},
		{"the policy is accepted", `peermesh_operator_policies{kind="PeerTrustPolicy", state="accepted"} == 1`},
		{"the operator wrote the ConfigMap", `sum(peermesh_operator_configmap_writes_total{result=~"created|updated"}) > 0`},
		{"the mesh's namespace is exported_namespace", fmt.Sprintf(`peermesh_operator_nodes{exported_namespace=%q, namespace=%q, mesh=%q}`, liveNS, operatorNS, liveMesh)},
		{"the operator counts every node", fmt.Sprintf(`peermesh_operator_nodes{mesh=%q} == %d`, liveMesh, liveNodes)},
		{"the operator counts every node in sync", fmt.Sprintf(`peermesh_operator_nodes_in_sync{mesh=%q} == %d`, liveMesh, liveNodes)},
	} {
		checks = append(checks, check{e.name + ": " + e.expr, hasData(e.expr)})
	}
	return checks
}

// hasData: expr returns at least one sample that is a number (not NaN).
func hasData(expr string) func(context.Context, *promAPI) error {
	return func(ctx context.Context, p *promAPI) error {
		s, err := p.query(ctx, expr)
		if err != nil {
			return err
		}
		if len(s) == 0 {
			return fmt.Errorf("no data")
		}
		for _, x := range s {
			if !math.IsNaN(x.Value) {
				return nil
			}
		}
		return fmt.Errorf("only NaN: %v", s)
	}
}

// isEmpty: expr returns nothing.
func isEmpty(expr string) func(context.Context, *promAPI) error {
	return func(ctx context.Context, p *promAPI) error {
		s, err := p.query(ctx, expr)
		if err != nil {
			return err
		}
		if len(s) > 0 {
			return fmt.Errorf("selects %v", s)
		}
		return nil
	}
}

// selectsOnly: expr returns one sample, of the target whose pod label is
// pod.
func selectsOnly(expr, pod string) func(context.Context, *promAPI) error {
	return func(ctx context.Context, p *promAPI) error {
		s, err := p.query(ctx, expr)
		if err != nil {
			return err
		}
		if len(s) != 1 || s[0].Metric["pod"] != pod {
			return fmt.Errorf("selects %v, want %s alone", s, pod)
		}
		return nil
	}
}

// rulesHealthy: Prometheus loaded the five alerts and evaluates each
// without error (evaluation errors, such as many-to-many matches, show only
// on real data).
func rulesHealthy(ctx context.Context, p *promAPI) error {
	var resp struct {
		Groups []struct {
			Rules []struct {
				Name, Type, Health, LastError string
				LastEvaluation                time.Time
			}
		}
	}
	if err := p.get(ctx, "/api/v1/rules", nil, &resp); err != nil {
		return err
	}
	var names, bad []string
	for _, g := range resp.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Name)
			if r.Health != "ok" || r.LastError != "" || r.LastEvaluation.IsZero() {
				bad = append(bad, fmt.Sprintf("%s: health %q, error %q, last evaluation %s", r.Name, r.Health, r.LastError, r.LastEvaluation))
			}
		}
	}
	if !sameSet(names, wantAlerts) {
		return fmt.Errorf("Prometheus has the rules %v, want %v", names, wantAlerts)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

// alertExpr returns the expression of an alert of the rule file.
func alertExpr(t *testing.T, alert string) string {
	t.Helper()
	for _, r := range loadRules(t) {
		if r.Alert == alert {
			return r.Expr
		}
	}
	t.Fatalf("no alert %s", alert)
	return ""
}

// promAPI queries Prometheus's HTTP API.
type promAPI struct{ base string }

// sample is one element of an instant vector.
type sample struct {
	Metric map[string]string
	Value  float64
}

func (s sample) String() string {
	labels := make([]string, 0, len(s.Metric))
	for k, v := range s.Metric {
		labels = append(labels, k+"="+strconv.Quote(v))
	}
	slices.Sort(labels)
	return fmt.Sprintf("{%s} %g", strings.Join(labels, ","), s.Value)
}

// get calls path with the query parameters q and decodes the data of a
// successful answer into out.
func (p *promAPI) get(ctx context.Context, path string, q url.Values, out any) error {
	u := p.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %s: %w", path, resp.Status, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// query evaluates expr now (an instant query) and returns its samples.
func (p *promAPI) query(ctx context.Context, expr string) ([]sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	var raw []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	switch data.ResultType {
	case "vector":
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, err
		}
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, err
		}
		raw = append(raw, struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}{Value: v})
	default:
		return nil, fmt.Errorf("result type %s", data.ResultType)
	}
	out := make([]sample, 0, len(raw))
	for _, r := range raw {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("value %v: %w", r.Value[1], err)
		}
		out = append(out, sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

func httpStatus(u string) (int, error) {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// waitTrusted waits until node i has want(i) open trusted channels.
func waitTrusted(t *testing.T, ctx context.Context, admins []string, want func(int) int) {
	t.Helper()
	testproc.Eventually(t, 60*time.Second, 250*time.Millisecond, "trusted channels", func() (bool, string) {
		ok := true
		var state []string
		for i, a := range admins {
			n, err := trustedChannels(ctx, a)
			ok = ok && err == nil && n == want(i)
			state = append(state, fmt.Sprintf("%s: %d (want %d, %v)", nodeID(i), n, want(i), err))
		}
		return ok, strings.Join(state, "; ")
	})
}

func trustedChannels(ctx context.Context, admin string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/debug/peers", nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var p struct {
		Channels []struct {
			State   string
			Trusted bool
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return 0, err
	}
	n := 0
	for _, c := range p.Channels {
		if c.State == "open" && c.Trusted {
			n++
		}
	}
	return n, nil
}

// sendAll sends a message from the node at admin to all its trusted peers
// (POST /v1/send, as `peernode send --all` does) and checks that it went to
// want peers.
func sendAll(t *testing.T, admin string, want int) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"all": true, "message": "hello from the monitoring test"})
	resp, err := httpClient.Post("http://"+admin+"/v1/send", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Sent  int    `json:"sent"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK || r.Sent != want || r.Error != "" {
		t.Fatalf("POST %s/v1/send: %s, %+v (%v), want sent to %d", admin, resp.Status, r, err, want)
	}
}
