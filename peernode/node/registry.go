package node

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// Registry maps packet types to handlers (P2PNet's PacketHandleProtocol: one
// overridable handler per packet type, and here new types can be added).
//
// Lookups happen for every received packet, so the table is a copy-on-write
// array read without locks; Handle is for setup and is rare.
type Registry struct {
	mu    sync.Mutex // serializes writers
	table atomic.Pointer[[256]peernode.Handler]
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{}
	r.table.Store(new([256]peernode.Handler))
	return r
}

// Handle registers h for packet type t, replacing the handler in place
// (a default or an earlier registration). A nil h removes the handler, so
// packets of type t are counted and dropped.
//
// Hello, Disconnect, Ping, Pong and Trust during a handshake are consumed by
// the channel itself (they are the connection protocol); their handlers see
// the packets that arrive once the channel is open.
func (r *Registry) Handle(t wire.Type, h peernode.Handler) error {
	if t == wire.TypeInvalid {
		return fmt.Errorf("peernode: cannot register a handler for packet type 0")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := *r.table.Load()
	next[t] = h
	r.table.Store(&next)
	return nil
}

// HandleFunc registers a function as the handler for t.
func (r *Registry) HandleFunc(t wire.Type, f func(context.Context, peernode.Channel, wire.Packet) error) error {
	return r.Handle(t, peernode.HandlerFunc(f))
}

// Lookup returns the handler for t, or nil.
func (r *Registry) Lookup(t wire.Type) peernode.Handler { return r.table.Load()[t] }
