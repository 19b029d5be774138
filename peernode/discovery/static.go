package discovery

import (
	"context"
	"fmt"
	"slices"

	"github.com/peermesh/peermesh/peernode"
)

// Static is a fixed list of seed addresses. Run reports it once and waits
// for ctx to end. (The node also dials node.Config.Seeds directly; Static is
// the same idea as a Discoverer, for composing with others.)
type Static struct {
	addrs []string
}

var _ peernode.Discoverer = (*Static)(nil)

// NewStatic returns a Static reporting addrs ("host:port" each), sorted and
// without duplicates. An address without a valid port is an error.
func NewStatic(addrs ...string) (*Static, error) {
	for _, a := range addrs {
		if err := checkHostPort(a); err != nil {
			return nil, fmt.Errorf("discovery: static seed: %w", err)
		}
	}
	return &Static{addrs: normalize(addrs)}, nil
}

// Name returns "static".
func (s *Static) Name() string { return "static" }

// Run reports the seeds once, then blocks until ctx ends and returns nil.
func (s *Static) Run(ctx context.Context, update func(addrs []string)) error {
	update(slices.Clone(s.addrs))
	<-ctx.Done()
	return nil
}
