package discovery_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/discovery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait of these tests; updates normally arrive in
// milliseconds.
const waitTimeout = 10 * time.Second

// startDiscoverer runs d until the test ends (or stop is called) and
// returns the channel its updates arrive on. Stopping cancels Run and fails
// the test if Run does not return nil promptly (goleak then checks that it
// joined its goroutines).
func startDiscoverer(t *testing.T, d peernode.Discoverer) (updates <-chan []string, stop func()) {
	t.Helper()
	ch := make(chan []string, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- d.Run(ctx, func(addrs []string) {
			select {
			case ch <- addrs:
			default:
				t.Errorf("%s: more than %d unread updates", d.Name(), cap(ch))
			}
		})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Run returned %v, want nil", d.Name(), err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("%s: Run did not return within %s of cancel", d.Name(), waitTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return ch, stop
}

// nextUpdate returns the next reported set, failing the test after
// waitTimeout.
func nextUpdate(t *testing.T, updates <-chan []string) []string {
	t.Helper()
	select {
	case u := <-updates:
		return u
	case <-time.After(waitTimeout):
		t.Fatalf("no update within %s", waitTimeout)
		return nil
	}
}

// expectUpdate fails unless the next reported set is exactly want (nil and
// empty are the same set).
func expectUpdate(t *testing.T, updates <-chan []string, want ...string) {
	t.Helper()
	if got := nextUpdate(t, updates); !slices.Equal(got, want) {
		t.Fatalf("update = %q, want %q", got, want)
	}
}

// expectNoUpdate fails if an update is pending.
func expectNoUpdate(t *testing.T, updates <-chan []string) {
	t.Helper()
	select {
	case u := <-updates:
		t.Fatalf("unexpected update %q", u)
	default:
	}
}

// eventually waits until cond holds, checking every 5 ms, or fails the test
// after waitTimeout with msg().
func eventually(t *testing.T, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", waitTimeout, msg())
		}
		<-tick.C
	}
}

// lookups returns peermesh_node_discovery_lookups_total for d and result.
func lookups(m *discovery.Metrics, d peernode.Discoverer, result string) float64 {
	return testutil.ToFloat64(m.Lookups.WithLabelValues(d.Name(), result))
}

func newMetrics(t *testing.T) *discovery.Metrics {
	t.Helper()
	m, err := discovery.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testutilGauge returns peermesh_node_discovery_addresses for discoverer.
func testutilGauge(m *discovery.Metrics, discoverer string) float64 {
	return testutil.ToFloat64(m.Addresses.WithLabelValues(discoverer))
}
