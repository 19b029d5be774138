package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peermesh/peermesh/internal/testproc"
)

// TestSendFile runs two daemons in-process, sends a file with
// `peernode send-file --wait`, and checks the file arrived in the
// receiver's default receive directory and /debug/transfers on both sides.
// bob runs with an empty --receive-dir, so a file sent to him fails, and
// send-file --wait exits non-zero.
func TestSendFile(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	listenA, adminA, listenB, adminB := testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logsA, logsB testproc.Buffer
	errs := make(chan error, 2)
	go func() {
		errs <- run(ctx, []string{"run", "--id", "alice", "--listen", listenA, "--admin-listen", adminA, "--data-dir", dirA}, &bytes.Buffer{}, &logsA)
	}()
	go func() {
		errs <- run(ctx, []string{"run", "--id", "bob", "--listen", listenB, "--admin-listen", adminB, "--seeds", listenA, "--data-dir", dirB, "--receive-dir="}, &bytes.Buffer{}, &logsB)
	}()
	defer func() {
		cancel()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}()

	content := make([]byte, 3<<20+17)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(src, content, 0o600); err != nil {
		t.Fatal(err)
	}

	// Until bob's admin server listens the call is refused, and until its
	// channel to alice is open the node answers 404.
	deadline := time.Now().Add(10 * time.Second)
	var out, stderr bytes.Buffer
	for {
		out.Reset()
		stderr.Reset()
		err := run(ctx, []string{"send-file", "--admin", adminB, "--to", "alice", "--wait", "--interval", "50ms", src}, &out, &stderr)
		if err == nil {
			break
		}
		retry := strings.Contains(err.Error(), "404") || strings.Contains(err.Error(), "connection refused")
		if !retry || time.Now().After(deadline) {
			t.Fatalf("send-file: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond) // retrying a CLI call until the channel opens
	}
	if got := out.String(); !strings.Contains(got, "started ") || !strings.Contains(got, `completed, 3145745 bytes verified, stored as "payload.bin"`) {
		t.Errorf("send-file printed:\n%s", got)
	}
	got, err := os.ReadFile(filepath.Join(dirA, "received", "payload.bin"))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("received file: %d bytes, %v", len(got), err)
	}

	var list struct {
		Transfers []struct{ Direction, State, Peer string }
	}
	for admin, want := range map[string]string{adminA: "receive completed bob", adminB: "send completed alice"} {
		resp, err := http.Get("http://" + admin + "/debug/transfers")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil || len(list.Transfers) != 1 {
			t.Fatalf("%s /debug/transfers: %+v, %v", admin, list, err)
		}
		if tr := list.Transfers[0]; tr.Direction+" "+tr.State+" "+tr.Peer != want {
			t.Errorf("%s /debug/transfers: %+v, want %s", admin, tr, want)
		}
	}

	out.Reset()
	err = run(ctx, []string{"send-file", "--admin", adminA, "--all", "--wait", "--interval", "50ms", src}, &out, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "1 of 1 transfer(s) failed") || !strings.Contains(out.String(), "FAILED") ||
		!strings.Contains(out.String(), "not_receiving") {
		t.Errorf("send-file to a node that does not receive: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(dirB, "received")); !os.IsNotExist(err) {
		t.Errorf("bob created a receive directory: %v", err)
	}
	err = run(ctx, []string{"send-file", "--admin", adminB, "--to", "alice", filepath.Join(t.TempDir(), "absent")}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("send-file of an absent file: %v", err)
	}
	if err := run(ctx, []string{"send-file", "--admin", adminB, src}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--to") {
		t.Errorf("send-file without --to or --all: %v", err)
	}
}
