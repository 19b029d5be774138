package node

import "time"

// NextBackoff exposes the backoff schedule to tests.
func (n *Node) NextBackoff(prev time.Duration) time.Duration { return n.nextBackoff(prev) }
