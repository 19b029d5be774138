package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/peermesh/peermesh/internal/netns"
	"github.com/peermesh/peermesh/internal/testenv"
)

// runKube tells the Kubernetes story: a local control plane (the binaries
// of `make kube-assets`), the CRDs applied with kubectl, the operator and
// five peernode processes in Kubernetes mode, then narrated kubectl steps:
// a policy forms the mesh, Audit mode counts a would-be block, Enforce
// closes it, an allowlist admits only its entries.
//
// With podNet (the demo runs in a network namespace of its own), node i
// listens on podIP(i) like a pod, and the nodes are registered as endpoints
// of the mesh's Service, so the resources report how many nodes run each
// change; else the nodes share 127.0.0.1 and the operator cannot count them.
func runKube(binDir string, count int, podNet bool) error {
	start := time.Now()
	step("Kubernetes story: starting a local control plane (kube-apiserver and etcd from bin/k8s; no cluster, no containers)")
	opts := testenv.Options{}
	if podNet {
		opts.AdvertiseAddress = netns.APIServerAddr
	}
	env, _, err := testenv.Start(opts)
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	dir, err := os.MkdirTemp("", "peermesh-kube-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kubeconfig, err := testenv.WriteKubeconfig(env, dir)
	if err != nil {
		return err
	}
	kubectl := func(stdin string, args ...string) error {
		fmt.Printf("    $ kubectl %s\n", strings.Join(args, " "))
		if stdin != "" {
			fmt.Print(indentText(stdin, "      | "))
		}
		cmd := exec.Command(testenv.Kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		fmt.Print(indentText(string(out), "    "))
		if err != nil {
			return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
		}
		return nil
	}

	step("installing the CRDs with kubectl and creating namespace demo")
	if err := kubectl("", "apply", "-f", filepath.Join(testenv.RepoRoot(), "config", "crd", "bases")); err != nil {
		return err
	}
	if err := kubectl("", "wait", "--for=condition=Established", "crd/peertrustpolicies.p2p.peermesh.io", "crd/peerallowlists.p2p.peermesh.io"); err != nil {
		return err
	}
	if err := kubectl("", "create", "namespace", "demo"); err != nil {
		return err
	}

	step("starting the operator (bin/manager, out of cluster) and %d nodes that follow ConfigMap demo/peermesh-blue (--fail-closed)", count)
	kenv := append(os.Environ(), "KUBECONFIG="+kubeconfig)
	var procs []*exec.Cmd
	defer func() { stopProcs(procs) }()
	launch := func(name string, args ...string) error {
		f, err := os.Create(filepath.Join(dir, filepath.Base(name)+fmt.Sprint(len(procs))+".log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(name, args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = kenv, f, f
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
		return nil
	}
	if err := launch(filepath.Join(binDir, "manager"), "--metrics-bind-address", "0", "--health-probe-bind-address", freeAddr()); err != nil {
		return err
	}
	nodes := make([]*demoNode, count)
	for i := range nodes {
		n := &demoNode{id: fmt.Sprintf("node-%d", i+1), listen: freeAddr(), admin: freeAddr()}
		if podNet {
			n.listen, n.admin = net.JoinHostPort(podIP(i), "7000"), net.JoinHostPort(podIP(i), "9090")
		}
		nodes[i] = n
		args := []string{"run", "--id", n.id, "--mesh", "blue", "--listen", n.listen, "--admin-listen", n.admin,
			"--kube-configmap", "demo/peermesh-blue", "--fail-closed", "--data-dir", filepath.Join(dir, n.id)}
		if i > 0 {
			args = append(args, "--seeds", nodes[0].listen)
		}
		if err := launch(filepath.Join(binDir, "peernode"), args...); err != nil {
			return err
		}
	}
	if err := waitUntil(10*time.Second, func() bool { return httpStatus(nodes[0].admin, "/healthz") == http.StatusOK }); err != nil {
		return errors.New("node-1 did not start")
	}
	fmt.Printf("    node-1 /readyz: %d (fail-closed: no configuration yet, no inbound peers)\n", httpStatus(nodes[0].admin, "/readyz"))
	if podNet {
		step("registering the nodes (10.244.0.10 and up) as endpoints of Service peermesh-blue, as Kubernetes does for the chart's StatefulSet")
		ips := make([]string, count)
		for i := range ips {
			ips[i] = podIP(i)
		}
		if err := kubectl(testenv.MeshService("demo", "blue", ips, 7000, 9090), "apply", "-f", "-"); err != nil {
			return err
		}
	}
	propagated := func(what string) error {
		if !podNet {
			return nil
		}
		// The condition must be about the current spec: wait for its
		// observedGeneration to reach the resource's generation first.
		gen, err := exec.Command(testenv.Kubectl(), "--kubeconfig", kubeconfig, "get", "-n", "demo", what,
			"-o", "jsonpath={.metadata.generation}").Output()
		if err != nil {
			return fmt.Errorf("kubectl get %s: %w", what, err)
		}
		if err := kubectl("", "wait", "-n", "demo", what, "--timeout=30s",
			`--for=jsonpath={.status.conditions[?(@.type=="Propagated")].observedGeneration}=`+string(gen)); err != nil {
			return err
		}
		return kubectl("", "wait", "-n", "demo", "--for=condition=Propagated", what, "--timeout=30s")
	}

	policy := func(mode, blocked string) string {
		return "apiVersion: p2p.peermesh.io/v1alpha1\nkind: PeerTrustPolicy\nmetadata: {name: blue, namespace: demo}\n" +
			"spec:\n  meshName: blue\n  mode: " + mode + "\n  incoming: {trustProtocol: {type: Ping}}\n  blocked: {identifiers: [" + blocked + "]}\n"
	}
	step("applying a PeerTrustPolicy: the operator compiles it into the ConfigMap, nodes apply it live and form the mesh")
	if err := kubectl(policy("Enforce", ""), "apply", "-f", "-"); err != nil {
		return err
	}
	if err := waitMesh(nodes, func(int) int { return count - 1 }); err != nil {
		return err
	}
	fmt.Printf("    node-1 /readyz: %d\n", httpStatus(nodes[0].admin, "/readyz"))
	if err := propagated("peertrustpolicy/blue"); err != nil {
		return err
	}
	if err := kubectl("", "get", "peertrustpolicies", "-n", "demo"); err != nil {
		return err
	}

	last := nodes[count-1].id
	step("Audit mode: block %s but only count it; nothing closes", last)
	if err := kubectl(policy("Audit", last), "apply", "-f", "-"); err != nil {
		return err
	}
	if err := waitUntil(20*time.Second, func() bool {
		return strings.Contains(getText(nodes[0].admin, "/metrics"), `peermesh_node_policy_denials_total{mode="audit",reason="blocked_identifier"} 1`)
	}); err != nil {
		return errors.New("no audit denial counted")
	}
	printMetric(nodes[0].admin, `peermesh_node_policy_denials_total{mode="audit",reason="blocked_identifier"}`)
	_, summary := meshStatus(nodes)
	fmt.Printf("    trusted channels per node: %s (unchanged)\n", summary)

	step("Enforce: the same block closes %s's channels on every node, without restarts", last)
	t0 := time.Now()
	if err := kubectl(policy("Enforce", last), "apply", "-f", "-"); err != nil {
		return err
	}
	if err := waitMesh(nodes, func(i int) int {
		if i == count-1 {
			return 0
		}
		return count - 2
	}); err != nil {
		return err
	}
	fmt.Printf("    enforced on every node %s after kubectl apply was started\n", time.Since(t0).Round(time.Millisecond))
	if err := propagated("peertrustpolicy/blue"); err != nil {
		return err
	}
	fmt.Printf("    $ peernode explain --admin %s --id %s\n", nodes[0].admin, last)
	out, _ := exec.Command(filepath.Join(binDir, "peernode"), "explain", "--admin", nodes[0].admin, "--id", last).CombinedOutput()
	fmt.Print(indentText(string(out), "    "))

	step("a PeerAllowlist admits only its entries: node-1 to node-3 (node-4 is left out), the block is lifted")
	allow := "apiVersion: p2p.peermesh.io/v1alpha1\nkind: PeerAllowlist\nmetadata: {name: members, namespace: demo}\nspec:\n  meshName: blue\n  peers:\n" +
		"  - {name: founders, identifier: node-1}\n  - {identifier: node-2}\n  - {identifier: node-3}\n"
	if err := kubectl(allow, "apply", "-f", "-"); err != nil {
		return err
	}
	if err := kubectl(policy("Enforce", ""), "apply", "-f", "-"); err != nil {
		return err
	}
	if err := waitMesh(nodes, func(i int) int {
		if i >= 3 {
			return 0
		}
		return 2
	}); err != nil {
		return err
	}
	fmt.Printf("    $ peernode explain --admin %s --id node-4\n", nodes[0].admin)
	out, _ = exec.Command(filepath.Join(binDir, "peernode"), "explain", "--admin", nodes[0].admin, "--id", "node-4").CombinedOutput()
	fmt.Print(indentText(string(out), "    "))
	if err := propagated("peerallowlist/members"); err != nil {
		return err
	}
	if err := kubectl("", "get", "peertrustpolicies,peerallowlists", "-n", "demo"); err != nil {
		return err
	}
	if podNet {
		fmt.Println("    (IN SYNC and TOTAL: nodes that report the configuration of the resource's current spec, of")
		fmt.Println("     the endpoints of Service peermesh-blue, read by the operator from each node's /debug/config)")
	} else {
		fmt.Println("    (IN SYNC and TOTAL count the nodes behind the EndpointSlices of Service peermesh-blue;")
		fmt.Println("     without a network namespace these loopback nodes cannot be endpoints: Propagated/NoNodes)")
	}

	step("stopping the nodes and the operator")
	stopProcs(procs)
	procs = nil
	fmt.Printf("\nKubernetes story finished in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// podIP is the address of node i in the demo's network namespace.
func podIP(i int) string { return netns.NodeAddr(i) }

// waitMesh waits until node i has want(i) trusted channels, printing progress.
func waitMesh(nodes []*demoNode, want func(int) int) error {
	deadline := time.Now().Add(60 * time.Second)
	lastSummary := ""
	for {
		ok := true
		for i, n := range nodes {
			ok = ok && trustedOf(n) == want(i)
		}
		_, summary := meshStatus(nodes)
		if summary != lastSummary {
			fmt.Printf("    trusted channels per node: %s\n", summary)
			lastSummary = summary
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the nodes did not reach the expected channels within 60s")
		}
		time.Sleep(100 * time.Millisecond) // polling for the narration
	}
}

func trustedOf(n *demoNode) int {
	var peers struct {
		Channels []struct {
			State   string
			Trusted bool
		}
	}
	if err := getJSON(n.admin, "/debug/peers", &peers); err != nil {
		return -1
	}
	c := 0
	for _, ch := range peers.Channels {
		if ch.State == "open" && ch.Trusted {
			c++
		}
	}
	return c
}

func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(50 * time.Millisecond) // polling for the narration
	}
	return nil
}

func httpStatus(admin, path string) int {
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getText(admin, path string) string {
	s, _ := get(admin, path)
	return s
}

func printMetric(admin, prefix string) {
	for _, line := range strings.Split(getText(admin, "/metrics"), "\n") {
		if strings.HasPrefix(line, prefix) {
			fmt.Println("    node-1: " + line)
		}
	}
}

func indentText(s, prefix string) string {
	if s == "" {
		return ""
	}
	var b bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + line + "\n")
	}
	return b.String()
}

func stopProcs(procs []*exec.Cmd) {
	for _, p := range procs {
		_ = p.Process.Signal(os.Interrupt)
	}
	for _, p := range procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
		}
	}
}
