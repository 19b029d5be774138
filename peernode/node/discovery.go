package node

import (
	"context"
	"slices"

	"github.com/peermesh/peermesh/peernode"
)

// runDiscoverer runs d until ctx ends, turning each reported address set into
// dial targets of source "discovery:<name>": new addresses are dialed at once
// (a fresh target has no backoff), addresses no longer reported stop being
// dialed (open channels stay open until they close on their own).
func (n *Node) runDiscoverer(ctx context.Context, d peernode.Discoverer) {
	defer n.wg.Done()
	source := sourceDiscovery + ":" + d.Name()
	err := d.Run(ctx, func(addrs []string) { n.setDiscovered(source, addrs) })
	if err != nil && ctx.Err() == nil {
		n.log.Error("discoverer stopped", "discoverer", d.Name(), "err", err)
	}
}

// setDiscovered makes the targets of source exactly addrs.
func (n *Node) setDiscovered(source string, addrs []string) {
	n.mu.Lock()
	var woken []*dialTarget
	for addr, t := range n.targets {
		if t.source == source && !slices.Contains(addrs, addr) {
			t.removed = true
			delete(n.targets, addr)
			woken = append(woken, t)
		}
	}
	added := 0
	for _, addr := range addrs {
		if t, ok := n.targets[addr]; ok {
			// Discovery vouches for the address now: it must not be
			// evicted as an unreachable peer-exchange target.
			if t.source == sourcePeerExchange {
				t.source = source
			}
			continue
		}
		if addr != n.advert {
			n.addTargetLocked(addr, source, "")
			added++
		}
	}
	n.mu.Unlock()
	for _, t := range woken {
		signal(t.wake)
	}
	if added > 0 || len(woken) > 0 {
		n.log.Debug("discovery update", "source", source, "addresses", len(addrs), "added", added, "removed", len(woken))
	}
}
