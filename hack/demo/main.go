// Command demo runs the peermesh demo (`make demo`). Part one: five peernode
// processes on loopback that know only the first node, find each other by
// peer exchange, trust each other through the ping trust protocol, exchange
// messages through the CLI, and stop cleanly on SIGTERM. It narrates each
// step and prints what /debug/peers and /metrics show. It also sends a file
// from one node to another and checks the received copy's SHA-256. Part two
// (kube.go) tells the Kubernetes story with a local control plane, the
// operator and kubectl.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/peermesh/peermesh/internal/netns"
)

type demoNode struct {
	id, listen, admin string
	cmd               *exec.Cmd
	log               string
}

func main() {
	bin := flag.String("peernode", "bin/peernode", "path of the peernode binary (the manager is expected beside it)")
	count := flag.Int("nodes", 5, "number of nodes")
	part := flag.String("part", "all", "nodes (discovery, trust, messages, file transfer), kube (control plane, operator, kubectl), or all")
	flag.Parse()
	// The Kubernetes story runs in a network namespace of its own when it
	// can, so that the nodes have addresses of their own (10.244.0.x) that
	// can be endpoints of their Service: the operator then reports how many
	// nodes applied each change.
	podNet := false
	if *part == "all" || *part == "kube" {
		err := netns.Available()
		podNet = err == nil
		if podNet {
			inside, code, err := netns.Enter(netns.Addrs(*count))
			if err != nil {
				fmt.Fprintln(os.Stderr, "demo failed:", err)
				os.Exit(1)
			}
			if !inside {
				os.Exit(code)
			}
		} else {
			fmt.Printf("note: %v\n      the nodes share 127.0.0.1, so the operator cannot count them (Propagated reports NoNodes)\n", err)
		}
	}
	if *part == "all" || *part == "nodes" {
		if err := run(*bin, *count); err != nil {
			fmt.Fprintln(os.Stderr, "demo failed:", err)
			os.Exit(1)
		}
	}
	if *part == "all" || *part == "kube" {
		if err := runKube(filepath.Dir(*bin), *count, podNet); err != nil {
			fmt.Fprintln(os.Stderr, "demo failed:", err)
			os.Exit(1)
		}
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func run(bin string, count int) error {
	start := time.Now()
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: %w (run make build)", bin, err)
	}
	dir, err := os.MkdirTemp("", "peermesh-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	step("starting %d peernode processes on 127.0.0.1; each knows only node-1 as its seed", count)
	nodes := make([]*demoNode, count)
	for i := range nodes {
		nodes[i] = &demoNode{id: fmt.Sprintf("node-%d", i+1), listen: freeAddr(), admin: freeAddr()}
	}
	defer func() { _ = stopAll(nodes) }() // a no-op after the orderly stop below
	for i, n := range nodes {
		args := []string{"run", "--id", n.id, "--mesh", "demo", "--listen", n.listen, "--admin-listen", n.admin,
			"--data-dir", filepath.Join(dir, n.id)}
		if i > 0 {
			args = append(args, "--seeds", nodes[0].listen)
		}
		n.log = filepath.Join(dir, n.id+".log")
		f, err := os.Create(n.log)
		if err != nil {
			return err
		}
		n.cmd = exec.Command(bin, args...)
		n.cmd.Stdout, n.cmd.Stderr = f, f
		if err := n.cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", n.id, err)
		}
		fmt.Printf("    %s  peers on %s, admin on http://%s\n", n.id, n.listen, n.admin)
	}

	step("waiting until every node has a trusted channel to every other node (peer exchange + ping trust)")
	deadline := time.Now().Add(30 * time.Second)
	for {
		done, summary := meshStatus(nodes)
		fmt.Printf("    trusted channels per node: %s\n", summary)
		if done {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the mesh did not form within 30s")
		}
		time.Sleep(200 * time.Millisecond) // a progress display, not a synchronization
	}
	fmt.Printf("    full trusted mesh of %d nodes after %s\n", count, time.Since(start).Round(time.Millisecond))

	step("node-2 sends a message to node-3, then node-1 sends one to all trusted peers (peernode send)")
	for _, args := range [][]string{
		{"send", "--admin", nodes[1].admin, "--to", nodes[2].id, "hello node-3, from node-2"},
		{"send", "--admin", nodes[0].admin, "--all", "hello everyone, from node-1"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		fmt.Printf("    $ peernode %s\n    %s", strings.Join(quoteArgs(args), " "), out)
		if err != nil {
			return fmt.Errorf("peernode send: %w", err)
		}
	}
	if err := waitForLog(nodes[2].log, "hello node-3, from node-2", 5*time.Second); err != nil {
		return err
	}
	for _, n := range nodes[1:] {
		if err := waitForLog(n.log, "hello everyone, from node-1", 5*time.Second); err != nil {
			return err
		}
	}
	fmt.Println("    every message arrived (see the \"message received\" lines in the node logs)")

	step("node-1 sends a 32 MiB file to node-2 (peernode send-file --wait): chunked, windowed, SHA-256 verified")
	if err := demoFileTransfer(bin, dir, nodes[0], nodes[1]); err != nil {
		return err
	}

	step("node-1's view: GET http://%s/debug/peers", nodes[0].admin)
	var peers struct {
		Self     struct{ ID, Mesh, Policy, TrustProtocol string }
		Channels []struct {
			ID, Direction, State string
			Trusted              bool
			PacketsSent          uint64
			PacketsReceived      uint64
		}
	}
	if err := getJSON(nodes[0].admin, "/debug/peers", &peers); err != nil {
		return err
	}
	fmt.Printf("    self %s, mesh %s, trust protocol %s, policy generation %.12s\n", peers.Self.ID, peers.Self.Mesh, peers.Self.TrustProtocol, peers.Self.Policy)
	for _, c := range peers.Channels {
		fmt.Printf("    %-8s %-8s %-5s trusted=%-5v packets sent=%d received=%d\n", c.ID, c.Direction, c.State, c.Trusted, c.PacketsSent, c.PacketsReceived)
	}

	step("a few of node-1's metrics: GET http://%s/metrics", nodes[0].admin)
	metrics, err := get(nodes[0].admin, "/metrics")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(metrics, "\n") {
		for _, p := range []string{"peermesh_node_known_peers ", "peermesh_node_channels{", "peermesh_node_trust_handshakes_total{protocol=\"ping\",result=\"success\"}", "peermesh_node_packets_received_total{type=\"Message\"}"} {
			if strings.HasPrefix(line, p) && !strings.HasSuffix(line, " 0") {
				fmt.Println("    " + line)
			}
		}
	}

	step("stopping every node with SIGTERM (graceful: channels drain and send Disconnect)")
	if err := stopAll(nodes); err != nil {
		return err
	}
	fmt.Printf("\ndemo finished in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// demoFileTransfer sends a file of random bytes from one node to another and
// checks that the received copy has the same SHA-256.
func demoFileTransfer(bin, dir string, from, to *demoNode) error {
	src := filepath.Join(dir, "payload.bin")
	data := make([]byte, 32<<20)
	if _, err := rand.Read(data); err != nil {
		return err
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		return err
	}
	want := sha256.Sum256(data)
	args := []string{"send-file", "--admin", from.admin, "--to", to.id, "--wait", src}
	fmt.Printf("    $ peernode %s\n", strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = indent(os.Stdout), indent(os.Stderr)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("peernode send-file: %w", err)
	}
	received := filepath.Join(dir, to.id, "received", "payload.bin")
	got, err := os.ReadFile(received)
	if err != nil {
		return fmt.Errorf("the received file is missing: %w", err)
	}
	if sha256.Sum256(got) != want {
		return errors.New("the received file differs from the one sent")
	}
	fmt.Printf("    %s holds %s: %d bytes, sha256 %x, identical to the source\n", to.id, received, len(got), want[:8])
	return nil
}

// indent prefixes each line written to w with four spaces.
func indent(w io.Writer) io.Writer { return &indentWriter{w: w, start: true} }

type indentWriter struct {
	w     io.Writer
	start bool
}

func (iw *indentWriter) Write(p []byte) (int, error) {
	for _, b := range p {
		if iw.start {
			if _, err := iw.w.Write([]byte("    ")); err != nil {
				return 0, err
			}
		}
		if _, err := iw.w.Write([]byte{b}); err != nil {
			return 0, err
		}
		iw.start = b == '\n'
	}
	return len(p), nil
}

func meshStatus(nodes []*demoNode) (bool, string) {
	all := true
	var parts []string
	for _, n := range nodes {
		var peers struct {
			Channels []struct {
				State   string
				Trusted bool
			}
		}
		trusted := 0
		if err := getJSON(n.admin, "/debug/peers", &peers); err == nil {
			for _, c := range peers.Channels {
				if c.State == "open" && c.Trusted {
					trusted++
				}
			}
		}
		all = all && trusted == len(nodes)-1
		parts = append(parts, fmt.Sprintf("%s=%d", n.id, trusted))
	}
	return all, strings.Join(parts, " ")
}

func stopAll(nodes []*demoNode) error {
	var errs []error
	for _, n := range nodes {
		if n == nil || n.cmd == nil || n.cmd.Process == nil || n.cmd.ProcessState != nil {
			continue
		}
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range nodes {
		if n == nil || n.cmd == nil || n.cmd.Process == nil || n.cmd.ProcessState != nil {
			continue
		}
		done := make(chan error, 1)
		go func() { done <- n.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, fmt.Errorf("%s exited: %w", n.id, err))
			} else {
				fmt.Printf("    %s stopped cleanly\n", n.id)
			}
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Kill()
			errs = append(errs, fmt.Errorf("%s did not stop within 10s", n.id))
		}
	}
	return errors.Join(errs...)
}

func waitForLog(path, text string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), text) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %q not logged within %s", filepath.Base(path), text, timeout)
		}
		time.Sleep(50 * time.Millisecond) // polling a log file for the demo's narration
	}
}

func get(addr, path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func getJSON(addr, path string, v any) error {
	s, err := get(addr, path)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(s), v)
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " ,") {
			a = fmt.Sprintf("%q", a)
		}
		out[i] = a
	}
	return out
}
