package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/peermesh/peermesh/internal/testproc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBadInputNamesTheField: every bad flag or configuration file fails with
// an error that names the flag or the field.
func TestBadInputNamesTheField(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	typo := write("typo.yaml", "incoming:\n  allowDefaultCommunicaton: true\n")
	badCIDR := write("cidr.yaml", "blocked:\n- cidr: 10.0.0.0/33\n")
	badLimit := write("limit.yaml", "limits:\n  maxInboundPeers: -1\n")
	badMode := write("mode.yaml", "mode: Sometimes\n")
	meshFile := write("mesh.yaml", "meshName: blue\n")
	notYAML := write("garbage.yaml", "{{{{")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"listen without port", []string{"--listen", "localhost"}, "--listen"},
		{"admin without port", []string{"--admin-listen", "nope"}, "--admin-listen"},
		{"bad seed", []string{"--seeds", "10.0.0.1:7946,oops"}, `--seeds: "oops"`},
		{"bad advertise", []string{"--advertise", "x"}, "--advertise"},
		{"bad log format", []string{"--log-format", "xml"}, "--log-format"},
		{"bad log level", []string{"--log-level", "loud"}, "--log-level"},
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
		{"missing config file", []string{"--config", filepath.Join(dir, "absent.yaml")}, "--config"},
		{"unknown config field", []string{"--config", typo}, `unknown field "incoming.allowDefaultCommunicaton"`},
		{"invalid CIDR", []string{"--config", badCIDR}, "blocked[0].cidr"},
		{"invalid limit", []string{"--config", badLimit}, "limits.maxInboundPeers"},
		{"invalid mode", []string{"--config", badMode}, "mode"},
		{"not YAML", []string{"--config", notYAML}, "--config"},
		{"mesh conflict", []string{"--config", meshFile, "--mesh", "red"}, `--mesh "red" differs from meshName "blue"`},
		{"kube configmap not NS/NAME", []string{"--kube-configmap", "nsname"}, `--kube-configmap "nsname": want NAMESPACE/NAME`},
		{"fail-closed outside Kubernetes", []string{"--fail-closed"}, "--fail-closed needs Kubernetes mode"},
		{"dns port without name", []string{"--dns-port", "7946"}, "--dns-port needs --dns-name"},
		{"dns port with srv", []string{"--dns-name", "mesh.ns.svc", "--dns-srv", "--dns-port", "1"}, "--dns-port"},
		{"dns needs a fixed port", []string{"--dns-name", "mesh.ns.svc"}, "--dns-port"},
		{"bad lan group", []string{"--listen", "127.0.0.1:7946", "--lan-discovery", "--lan-group", "10.0.0.1:7947"}, "--lan-group"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			args := append([]string{"run", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", dir}, tc.args...)
			err := run(context.Background(), args, &bytes.Buffer{}, &stderr)
			if err == nil {
				t.Fatal("run succeeded")
			}
			if msg := err.Error() + stderr.String(); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not mention %q", msg, tc.want)
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	err := run(context.Background(), []string{"fly"}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), `"fly"`) {
		t.Errorf("err = %v", err)
	}
	if err := run(context.Background(), []string{"run", "-h"}, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

// TestNodeIDKeptInDataDir: without --id, a generated UUID is reused.
func TestNodeIDKeptInDataDir(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "")
	t.Setenv("POD_NAME", "")
	o := &runOptions{dataDir: t.TempDir()}
	first, src, err := nodeID(o)
	if err != nil || src != "generated" {
		t.Fatalf("nodeID = %q, %q, %v", first, src, err)
	}
	again, src, err := nodeID(o)
	if err != nil || again != first || src != "data-dir" {
		t.Errorf("second nodeID = %q (%s), %v; want %q", again, src, err, first)
	}
	t.Setenv("POD_NAMESPACE", "team-a")
	t.Setenv("POD_NAME", "mesh-0")
	pod, src, _ := nodeID(o)
	if src != "pod" || pod == first {
		t.Errorf("pod identity = %q (%s)", pod, src)
	}
}

// TestRunSendExplain runs two daemons in-process with a configuration file,
// sends messages with the CLI and asks for an explanation, then stops them
// with the context, as SIGTERM does.
func TestRunSendExplain(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "node.yaml")
	cfg := "apiVersion: p2p.peermesh.io/v1alpha1\nkind: PeerNodeConfiguration\nmeshName: demo\n" +
		"blocked:\n- identifier: mallory\n  source: {kind: PeerTrustPolicy, namespace: default, name: demo, entry: 'blocked.identifiers[0]'}\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	listenA, adminA, listenB, adminB := testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logsA, logsB testproc.Buffer
	errs := make(chan error, 2)
	go func() {
		errs <- run(ctx, []string{"run", "--id", "alice", "--listen", listenA, "--admin-listen", adminA, "--config", cfgPath}, &bytes.Buffer{}, &logsA)
	}()
	go func() {
		errs <- run(ctx, []string{"run", "--id", "bob", "--mesh", "demo", "--listen", listenB, "--admin-listen", adminB, "--seeds", listenA, "--data-dir", dir}, &bytes.Buffer{}, &logsB)
	}()
	defer func() {
		cancel()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}()

	// Wait until bob's channel to alice is trusted: send fails until then.
	deadline := time.Now().Add(10 * time.Second)
	var out bytes.Buffer
	for {
		out.Reset()
		err := run(ctx, []string{"send", "--admin", adminB, "--to", "alice", "hello alice"}, &out, &bytes.Buffer{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("send never succeeded: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // retrying a CLI call until the channel opens
	}
	if !strings.Contains(out.String(), "sent to 1 peer") {
		t.Errorf("send printed %q", out.String())
	}
	waitFor(t, func() bool { return strings.Contains(logsA.String(), "hello alice") }, "alice did not log the message")

	out.Reset()
	if err := run(ctx, []string{"explain", "--admin", adminA, "--id", "mallory", "--addr", "10.1.2.3"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "DENY mallory") || !strings.Contains(got, "blocked_identifier") || !strings.Contains(got, "blocked.identifiers[0]") {
		t.Errorf("explain printed %q", got)
	}
	out.Reset()
	if err := run(ctx, []string{"explain", "--admin", adminA, "--id", "bob"}, &out, &bytes.Buffer{}); err != nil || !strings.HasPrefix(out.String(), "ADMIT bob") {
		t.Errorf("explain bob: %q, %v", out.String(), err)
	}
	if err := run(ctx, []string{"send", "--admin", adminA, "--to", "nobody", "x"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("send to unknown peer: %v", err)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/debug/peers", "/debug/config"} {
		resp, err := http.Get("http://" + adminA + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", path, resp.Status)
		}
	}
}

func waitFor(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}
