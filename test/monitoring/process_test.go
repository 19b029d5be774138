package monitoring

import (
	"bytes"
	"context"
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

// logBuffer collects a process's output; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a program the test started; it is interrupted and waited for
// at cleanup, or earlier with stop.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *logBuffer
	once sync.Once
	err  error
}

// start starts bin with args and env added to the test's environment, and
// registers its stop (and, when the test failed, the end of its log) at
// cleanup.
func start(t *testing.T, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, log: &logBuffer{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("--- %s log (end) ---\n%s", name, lastLines(p.log.String(), 30))
		}
	})
	return p
}

// stop interrupts the process and waits for it, at most 20 s.
func (p *process) stop() error {
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
				p.err = fmt.Errorf("%s: %w", p.name, err)
			}
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
			p.err = fmt.Errorf("%s did not stop within 20s of SIGINT", p.name)
		}
	})
	return p.err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// eventually calls cond until it reports true, every 250 ms, and fails the
// test with cond's last explanation when timeout has passed first.
func eventually(t *testing.T, ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %s; last state:\n%s", what, timeout, state)
		case <-tick.C:
		}
	}
}
