package node

import "time"

// NextBackoff exposes the backoff schedule to tests.
func (n *Node) NextBackoff(prev time.Duration) time.Duration { return n.nextBackoff(prev) }

// EvictStale runs the reaper's eviction as if the time were now.
func (n *Node) EvictStale(now time.Time) { n.evictStale(now) }

// Targets returns the dial targets' addresses.
func (n *Node) Targets() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for a := range n.targets {
		out = append(out, a)
	}
	return out
}
