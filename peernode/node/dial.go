package node

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/metrics"
)

// dialTarget is an address the node keeps a channel to: a seed, or a peer
// learned through discovery or peer exchange. One goroutine per target dials
// it, runs the channel, and redials with capped exponential backoff.
type dialTarget struct {
	addr   string
	source string
	wake   chan struct{} // capacity 1: removed, or the backoff was reset

	// Guarded by Node.mu.
	id       string // the peer's identifier, once known
	removed  bool
	self     bool // the address is this node: never dialed again
	failures int
	lastErr  string
	started  bool
	// lastGood is when a channel to the target last opened, or when the
	// target was added; targets learned by peer exchange that stay
	// unreachable past the known-peer TTL are evicted.
	lastGood time.Time
}

// addTarget adds addr as a dial target unless it is already one, is this
// node's own address, or is empty. The dialer starts now if Run is running.
func (n *Node) addTarget(addr, source string) *dialTarget {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addTargetLocked(addr, source, "")
}

func (n *Node) addTargetLocked(addr, source, id string) *dialTarget {
	if addr == "" || addr == n.advert {
		return nil
	}
	if t := n.targets[addr]; t != nil {
		return t
	}
	t := &dialTarget{addr: addr, source: source, id: id, wake: make(chan struct{}, 1), lastGood: time.Now()}
	n.targets[addr] = t
	if n.running {
		n.startDialer(t)
	}
	return t
}

// AddPeer adds addr ("host:port") as a dial target, as discovery does.
func (n *Node) AddPeer(addr string) { n.addTarget(addr, sourceDiscovery) }

// RemovePeer stops dialing addr; an open channel to it stays open.
func (n *Node) RemovePeer(addr string) {
	n.mu.Lock()
	t := n.targets[addr]
	if t != nil {
		t.removed = true
		delete(n.targets, addr)
	}
	n.mu.Unlock()
	if t != nil {
		signal(t.wake)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// startDialer starts t's goroutine. n.mu must be held and n.ctx set.
func (n *Node) startDialer(t *dialTarget) {
	if t.started {
		return
	}
	t.started = true
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.dialLoop(n.ctx, t)
	}()
}

// dialLoop keeps one channel to t open while t is a target.
func (n *Node) dialLoop(ctx context.Context, t *dialTarget) {
	var backoff time.Duration
	for {
		n.mu.Lock()
		stop := t.removed || t.self
		existing := n.channels[t.id]
		atCap := n.outbound >= n.maxOutbound
		n.mu.Unlock()
		if stop || ctx.Err() != nil {
			return
		}
		if existing != nil && t.id != "" {
			// Already connected to this peer (perhaps it dialed us): wait
			// for that channel to end before dialing again.
			select {
			case <-existing.Done():
			case <-t.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		if atCap {
			n.metrics.ConnectionRejected(metrics.RejectCapacityOutbound)
			backoff = n.nextBackoff(backoff)
			if !n.wait(ctx, t, backoff) {
				return
			}
			continue
		}

		ch, err := n.dial(ctx, t)
		if err != nil {
			n.mu.Lock()
			t.failures++
			t.lastErr = err.Error()
			n.mu.Unlock()
			backoff = n.nextBackoff(backoff)
			n.log.Debug("dial failed", "addr", t.addr, "err", err, "retryIn", backoff)
			if !n.wait(ctx, t, backoff) {
				return
			}
			continue
		}
		start := time.Now()
		_ = ch.Run(ctx)
		reason := ch.CloseReason()
		n.mu.Lock()
		if id := ch.Peer().ID(); id != "" {
			t.id = id
		}
		if ch.CloseReason().Label != peernode.CloseHandshake && ch.Peer().ID() != "" {
			t.lastGood = time.Now()
		}
		if reason.Label == peernode.CloseSelf {
			t.self = true
		}
		t.lastErr = reason.String()
		n.mu.Unlock()
		switch {
		case reason.Label == peernode.CloseDuplicate:
			// The other channel to this peer won: loop to wait on it.
			continue
		case time.Since(start) > n.cfg.BackoffMax:
			backoff = 0 // the channel worked for a while: start over
		}
		backoff = n.nextBackoff(backoff)
		if !n.wait(ctx, t, backoff) {
			return
		}
	}
}

// dial opens a TCP connection to t and builds its channel, counting it
// against the outbound cap.
func (n *Node) dial(ctx context.Context, t *dialTarget) (*channel.PeerChannel, error) {
	dctx, cancel := context.WithTimeout(ctx, n.cfg.DialTimeout)
	defer cancel()
	conn, err := n.dialer.DialContext(dctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	if n.outbound >= n.maxOutbound {
		n.mu.Unlock()
		conn.Close()
		n.metrics.ConnectionRejected(metrics.RejectCapacityOutbound)
		return nil, errOutboundCap
	}
	n.outbound++
	n.mu.Unlock()
	return n.newChannel(conn, peernode.NewGenericPeer(conn, peernode.Outbound)), nil
}

type dialError string

func (e dialError) Error() string { return string(e) }

const errOutboundCap = dialError("outbound channel limit reached")

// nextBackoff doubles prev within [BackoffMin, BackoffMax].
func (n *Node) nextBackoff(prev time.Duration) time.Duration {
	if prev <= 0 {
		return n.cfg.BackoffMin
	}
	return min(2*prev, n.cfg.BackoffMax)
}

// wait sleeps for a jittered d (between d/2 and d) unless t is woken or ctx
// ends; it reports whether the loop should go on.
func (n *Node) wait(ctx context.Context, t *dialTarget, d time.Duration) bool {
	d = d/2 + rand.N(d/2+1)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.wake:
		return true
	case <-ctx.Done():
		return false
	}
}
