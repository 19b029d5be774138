package node

import (
	"log/slog"
	"sync"
	"time"

	"github.com/peermesh/peermesh/peernode"
)

// denialLogBurst is how many denials are logged per interval; the rest are
// counted (the metrics count all of them) and summarized once.
const denialLogBurst = 10

// rateLimitedLog logs policy denials without letting a flood of denied
// packets flood the log.
type rateLimitedLog struct {
	logger   *slog.Logger
	interval time.Duration

	mu         sync.Mutex
	window     time.Time
	logged     int
	suppressed int
}

func newRateLimitedLog(l *slog.Logger, interval time.Duration) *rateLimitedLog {
	return &rateLimitedLog{logger: l, interval: interval}
}

func (r *rateLimitedLog) log(d peernode.Decision, peer, addr string) {
	now := time.Now()
	r.mu.Lock()
	if now.Sub(r.window) >= r.interval {
		if r.suppressed > 0 {
			r.logger.Warn("policy denial logs suppressed", "count", r.suppressed, "interval", r.interval)
		}
		r.window, r.logged, r.suppressed = now, 0, 0
	}
	if r.logged >= denialLogBurst {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	r.logged++
	r.mu.Unlock()
	mode := "enforced"
	if d.Verdict == peernode.AuditDeny {
		mode = "audit"
	}
	r.logger.Warn("policy denial", "reason", d.Reason, "rule", d.Rule, "policy", d.Policy,
		"peer", peer, "addr", addr, "mode", mode)
}
