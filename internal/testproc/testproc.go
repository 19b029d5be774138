// Package testproc holds what tests that run the project's binaries share:
// a log buffer safe for a process (or logger) and the test to use at once,
// started processes that are interrupted and waited for at cleanup, free
// loopback addresses, and waiting on a condition with a deadline.
package testproc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent use: a process's output or a
// logger writes it while the test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Process is a program a test started. It is interrupted and waited for at
// cleanup, or earlier with Stop.
type Process struct {
	Name string
	Log  *Buffer // its standard output and error
	cmd  *exec.Cmd
	once sync.Once
	err  error
}

// StopTimeout bounds the wait for a process after SIGINT; it is killed then.
const StopTimeout = 20 * time.Second

// Start starts bin with args, with env added to the test's environment, and
// registers its Stop at cleanup; when the test failed, the end of its log is
// logged too.
func Start(t testing.TB, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: name, Log: &Buffer{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.Log, p.Log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("%v\n%s", err, LastLines(p.Log.String(), 40))
		}
		if t.Failed() {
			t.Logf("--- %s log (end) ---\n%s", name, LastLines(p.Log.String(), 40))
		}
	})
	return p
}

// Stop interrupts the process and waits for it, at most StopTimeout. An exit
// caused by the signal itself is not an error.
func (p *Process) Stop() error {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) && !exit.Exited() {
				err = nil // ended by the signal itself
			}
			if err != nil {
				p.err = fmt.Errorf("%s: %w", p.Name, err)
			}
		case <-time.After(StopTimeout):
			_ = p.cmd.Process.Kill()
			p.err = fmt.Errorf("%s did not stop within %s of SIGINT and was killed (%w)", p.Name, StopTimeout, <-done)
		}
	})
	return p.err
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreeAddr returns a loopback address with a port free at the time of the
// call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Eventually calls cond every interval until it reports true, and fails the
// test with cond's last explanation once timeout has passed first.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last state:\n%s", what, timeout, state)
		}
		<-tick.C
	}
}
