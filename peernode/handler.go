package peernode

import (
	"context"

	"github.com/peermesh/peermesh/peernode/wire"
)

// Handler handles one packet type (P2PNet's PacketHandleProtocol, one method
// per type there, one registered Handler per type here).
//
// HandlePacket is called on the receiving channel's reader goroutine, one
// packet at a time per channel and concurrently across channels, after the
// trust gate admitted the packet. A slow handler delays only its own channel;
// a handler that must block for long should hand work to its own goroutine.
// Packets of types without a built-in decoder arrive as wire.Raw. The packet
// may alias the frame buffer only for the duration of the call if documented
// by its type; wire.Data bodies stay valid after the call.
type Handler interface {
	HandlePacket(ctx context.Context, ch Channel, p wire.Packet) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, ch Channel, p wire.Packet) error

var _ Handler = HandlerFunc(nil)

// HandlePacket calls f.
func (f HandlerFunc) HandlePacket(ctx context.Context, ch Channel, p wire.Packet) error {
	return f(ctx, ch, p)
}
