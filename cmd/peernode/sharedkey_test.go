package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/internal/testproc"
	"github.com/peermesh/peermesh/peernode/node"
)

const (
	testMeshKey  = "c2hhcmVkIG1lc2gga2V5IGZvciB0ZXN0cyBvbmx5IQ==" // 44 bytes of base64, used as is
	testOtherKey = "YW5vdGhlciBtZXNoIGtleSwgYWxzbyBmb3IgdGVzdHM="
)

// writeFile writes body to dir/name and returns that path.
func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sharedKeyConfig(keyFile string) string {
	return "meshName: demo\nincoming:\n  trustProtocol:\n    type: SharedKey\n    sharedKeyFile: " + keyFile + "\n"
}

// TestSharedKeyBadInputNamesTheField: a key that cannot be used fails the
// start with an error naming the field to fix.
func TestSharedKeyBadInputNamesTheField(t *testing.T) {
	dir := t.TempDir()
	short := writeFile(t, dir, "short.key", "too-short\n")
	empty := writeFile(t, dir, "empty.key", "\n\n")
	cases := []struct {
		name, config string
		want         []string
	}{
		{"missing key file", sharedKeyConfig(filepath.Join(dir, "absent.key")),
			[]string{"incoming.trustProtocol.sharedKeyFile", "absent.key"}},
		{"key too short", sharedKeyConfig(short),
			[]string{"incoming.trustProtocol.sharedKeyFile", "short.key", "9 bytes, want at least 16"}},
		{"empty key file", sharedKeyConfig(empty),
			[]string{"incoming.trustProtocol.sharedKeyFile", "is empty"}},
		{"Secret outside Kubernetes", "incoming:\n  trustProtocol:\n    type: SharedKey\n    sharedKeySecretRef: {namespace: mesh, name: mesh-key}\n",
			[]string{"incoming.trustProtocol.sharedKeySecretRef", "mesh/mesh-key", "Kubernetes mode", "sharedKeyFile"}},
		{"no key at all", "incoming:\n  trustProtocol:\n    type: SharedKey\n",
			[]string{"sharedKeySecretRef"}}, // refused by the configuration's validation
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeFile(t, dir, fmt.Sprintf("config-%d.yaml", i), tc.config)
			args := []string{"run", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", dir, "--config", cfg}
			err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil {
				t.Fatal("run succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestReadSharedKeyTrimsTrailingWhitespace(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"plain": testMeshKey, "newline": testMeshKey + "\n", "crlf": testMeshKey + "\r\n", "spaces": testMeshKey + " \t\n\n",
	} {
		key, err := readSharedKey(writeFile(t, dir, name, body))
		if err != nil || string(key) != testMeshKey {
			t.Errorf("%s: readSharedKey = %q, %v; want %q", name, key, err, testMeshKey)
		}
	}
	// Leading whitespace is part of the key.
	if key, _ := readSharedKey(writeFile(t, dir, "leading", " "+testMeshKey)); string(key) != " "+testMeshKey {
		t.Errorf("leading space dropped: %q", key)
	}
}

// TestSharedKeyFileRelativeToConfig: a relative sharedKeyFile is found next
// to the --config file, whatever the working directory.
func TestSharedKeyFileRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "mesh.key", testMeshKey+"\n")
	cfgPath := writeFile(t, dir, "node.yaml", sharedKeyConfig("mesh.key"))
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	o := &runOptions{listen: "127.0.0.1:0", configFile: cfgPath}
	nc, err := nodeConfig(o, "n1", cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p, err := nc.TrustProtocols(nc.Policy.TrustProtocol)
	if err != nil || p.Name() != "sharedKey" || !nc.Policy.RunTrustProtocol {
		t.Fatalf("policy runs %q (%v); resolved %v, %v", nc.Policy.TrustProtocol, nc.Policy.RunTrustProtocol, p, err)
	}
	if cfg.Incoming.TrustProtocol.Type != v1alpha1.TrustProtocolSharedKey {
		t.Errorf("type = %q", cfg.Incoming.TrustProtocol.Type)
	}
}

// TestRunSharedKey runs three daemons: alice and bob share a key file, and
// mallory has another key. Bob becomes trusted by alice; mallory is refused
// every time it dials, which alice's /metrics counts as sharedKey failures.
func TestRunSharedKey(t *testing.T) {
	dir := t.TempDir()
	goodCfg := writeFile(t, dir, "good.yaml", sharedKeyConfig("mesh.key"))
	writeFile(t, dir, "mesh.key", testMeshKey+"\n")
	badDir := t.TempDir()
	badCfg := writeFile(t, badDir, "bad.yaml", sharedKeyConfig("mesh.key"))
	writeFile(t, badDir, "mesh.key", testOtherKey+"\n")

	listenA, adminA, adminB, adminM := testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 3)
	var logs [3]testproc.Buffer
	for i, args := range [][]string{
		{"--id", "alice", "--listen", listenA, "--admin-listen", adminA, "--config", goodCfg},
		{"--id", "bob", "--listen", "127.0.0.1:0", "--admin-listen", adminB, "--config", goodCfg, "--seeds", listenA},
		{"--id", "mallory", "--listen", "127.0.0.1:0", "--admin-listen", adminM, "--config", badCfg, "--seeds", listenA},
	} {
		go func() {
			errs <- run(ctx, append([]string{"run", "--log-level", "debug"}, args...), &bytes.Buffer{}, &logs[i])
		}()
	}
	defer func() {
		cancel()
		for range 3 {
			if err := <-errs; err != nil {
				t.Errorf("run: %v", err)
			}
		}
		if t.Failed() {
			for i := range logs {
				t.Logf("logs of daemon %d:\n%s", i, logs[i].String())
			}
		}
	}()

	waitFor(t, func() bool { return channelTrusted(adminA, "bob") == "true" }, "alice never trusted bob")
	waitFor(t, func() bool { return handshakes(adminA, "failure") >= 1 }, "alice never counted a sharedKey failure")
	if got := handshakes(adminA, "success"); got < 1 {
		t.Errorf("alice: sharedKey successes = %v", got)
	}
	if got := channelTrusted(adminA, "mallory"); got == "true" {
		t.Error("alice trusts mallory")
	}
	for _, admin := range []string{adminA, adminM} {
		if got := handshakes(admin, "timeout"); got != 0 {
			t.Errorf("%s: sharedKey timeouts = %v, want 0", admin, got)
		}
	}
	if got := handshakes(adminM, "success"); got != 0 {
		t.Errorf("mallory: sharedKey successes = %v, want 0", got)
	}
	// The key is in no log.
	for i := range logs {
		if s := logs[i].String(); strings.Contains(s, testMeshKey) || strings.Contains(s, testOtherKey) {
			t.Errorf("daemon %d logged a key", i)
		}
	}
}

// handshakes reads peermesh_node_trust_handshakes_total{protocol="sharedKey",result}
// from the daemon's /metrics; -1 when it cannot.
func handshakes(admin, result string) float64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	prefix := `peermesh_node_trust_handshakes_total{protocol="sharedKey",result="` + result + `"} `
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

// channelTrusted returns "true" or "false" for the daemon's open channel to
// peer, from /debug/peers, or "" when there is none.
func channelTrusted(admin, peer string) string {
	resp, err := http.Get("http://" + admin + "/debug/peers")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var peers struct {
		Channels []node.ChannelInfo `json:"channels"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&peers); err != nil {
		return ""
	}
	for _, c := range peers.Channels {
		if c.ID == peer {
			return strconv.FormatBool(c.Trusted)
		}
	}
	return ""
}
