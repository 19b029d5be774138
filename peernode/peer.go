package peernode

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Direction says which side opened a connection.
type Direction uint8

const (
	// Inbound connections were accepted by this node's listener.
	Inbound Direction = iota + 1
	// Outbound connections were dialed by this node.
	Outbound
)

// String returns "inbound" or "outbound", the values of the direction label.
func (d Direction) String() string {
	switch d {
	case Inbound:
		return "inbound"
	case Outbound:
		return "outbound"
	}
	return "unknown"
}

// Peer is the remote end of one connection (P2PNet's IPeer).
//
// Methods are safe for concurrent use. ID is empty until the peer's Hello
// has been received; it never changes after that.
type Peer interface {
	// ID returns the node identifier the peer announced in its Hello.
	ID() string
	// Addr returns the remote IP and port of the connection.
	Addr() netip.AddrPort
	// ListenAddr returns the address the peer accepts connections on, as
	// announced in its Hello ("" when it does not listen).
	ListenAddr() string
	// Direction tells whether this node accepted or dialed the connection.
	Direction() Direction
	// Conn returns the underlying connection.
	Conn() net.Conn
	// FirstSeen is when the connection was established.
	FirstSeen() time.Time
	// LastSeen is when the last frame was received from the peer.
	LastSeen() time.Time
	// Trusted reports whether the peer completed the trust protocol.
	Trusted() bool
}

// GenericPeer is the default Peer (P2PNet's GenericPeer). Unlike the
// original, peers are keyed by their announced identifier, not their IP:
// many pods can share one source IP behind SNAT.
type GenericPeer struct {
	conn      net.Conn
	addr      netip.AddrPort
	direction Direction
	firstSeen time.Time

	mu         sync.Mutex // guards id and listenAddr, set once by the handshake
	id         string
	listenAddr string

	lastSeen atomic.Int64 // unix nanoseconds
	trusted  atomic.Bool
}

var _ Peer = (*GenericPeer)(nil)

// NewGenericPeer returns a peer for conn, first seen now.
func NewGenericPeer(conn net.Conn, dir Direction) *GenericPeer {
	now := time.Now()
	p := &GenericPeer{conn: conn, direction: dir, firstSeen: now}
	if conn != nil {
		p.addr = AddrPortOf(conn.RemoteAddr())
	}
	p.lastSeen.Store(now.UnixNano())
	return p
}

// ID implements Peer.
func (p *GenericPeer) ID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.id
}

// ListenAddr implements Peer.
func (p *GenericPeer) ListenAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.listenAddr
}

// SetIdentity records what the peer announced in its Hello.
func (p *GenericPeer) SetIdentity(id, listenAddr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.id, p.listenAddr = id, listenAddr
}

// Addr implements Peer.
func (p *GenericPeer) Addr() netip.AddrPort { return p.addr }

// Direction implements Peer.
func (p *GenericPeer) Direction() Direction { return p.direction }

// Conn implements Peer.
func (p *GenericPeer) Conn() net.Conn { return p.conn }

// FirstSeen implements Peer.
func (p *GenericPeer) FirstSeen() time.Time { return p.firstSeen }

// LastSeen implements Peer.
func (p *GenericPeer) LastSeen() time.Time { return time.Unix(0, p.lastSeen.Load()) }

// Touch records that a frame arrived at t.
func (p *GenericPeer) Touch(t time.Time) { p.lastSeen.Store(t.UnixNano()) }

// Trusted implements Peer.
func (p *GenericPeer) Trusted() bool { return p.trusted.Load() }

// SetTrusted marks the peer trusted or not.
func (p *GenericPeer) SetTrusted(v bool) { p.trusted.Store(v) }

// AddrPortOf converts a net.Addr of a TCP or UDP connection to an AddrPort,
// unmapping IPv4-in-IPv6 addresses so CIDR rules match as users expect.
func AddrPortOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case nil:
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
