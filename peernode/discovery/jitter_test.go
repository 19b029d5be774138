package discovery

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestJittered(t *testing.T) {
	const d = 10 * time.Second
	for _, tc := range []struct {
		u    float64
		want time.Duration
	}{
		{0, 8 * time.Second},
		{0.5, 10 * time.Second},
		{0.25, 9 * time.Second},
		{0.999999, 12*time.Second - 4*time.Microsecond},
	} {
		if got := jittered(d, IntervalJitter, tc.u); got != tc.want {
			t.Errorf("jittered(%s, %v, %v) = %s, want %s", d, IntervalJitter, tc.u, got, tc.want)
		}
	}
	// Random draws stay within ±20 % and are not all equal.
	lo, hi := d*8/10, d*12/10
	seen := map[time.Duration]bool{}
	for range 1000 {
		got := jittered(d, IntervalJitter, rand.Float64())
		if got < lo || got >= hi {
			t.Fatalf("jittered = %s, outside [%s, %s)", got, lo, hi)
		}
		seen[got] = true
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct intervals in 1000 draws", len(seen))
	}
	// Never below 1 ms, so a zero interval cannot spin.
	if got := jittered(0, IntervalJitter, 0); got != time.Millisecond {
		t.Errorf("jittered(0) = %s, want 1ms", got)
	}
	if got := jittered(d, 0, 0.9); got != d {
		t.Errorf("no jitter: %s, want %s", got, d)
	}
}
