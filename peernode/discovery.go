package peernode

import "context"

// Discoverer finds candidate peers (static seeds, DNS of a headless Service,
// peer exchange). Run reports the full current set of candidate addresses
// ("host:port") each time it changes, until ctx ends; the node dials new
// addresses and forgets removed ones. Run owns its goroutines and returns
// after they stop.
type Discoverer interface {
	Name() string
	Run(ctx context.Context, update func(addrs []string)) error
}
