package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/channel"
	"github.com/peermesh/peermesh/peernode/metrics"
	"github.com/peermesh/peermesh/peernode/trust"
	"github.com/peermesh/peermesh/peernode/wire"
)

// Capabilities announced in Hello.
var localCapabilities = []string{"peergroup", "data"}

// Node is a peermesh node (P2PNet's PeerNetwork). Its methods are safe for
// concurrent use.
type Node struct {
	cfg     Config
	log     *slog.Logger
	gate    *trust.Gate
	reg     *Registry
	metrics *metrics.Metrics
	ln      net.Listener
	advert  string
	denials *rateLimitedLog

	inboundQueue chan *PendingPeer

	mu       sync.Mutex
	ctx      context.Context // set by Run; nil before
	running  bool
	channels map[string]*channel.PeerChannel // open or admitted channels by peer ID
	all      map[*channel.PeerChannel]*chanInfo
	inbound  int // channels by direction, handshaking ones included
	outbound int
	pending  int // inbound channels still handshaking
	known    map[string]*knownPeer
	targets  map[string]*dialTarget // by address
	dialer   net.Dialer             // LocalAddr set when listening on one address

	// Limits in force (SetLimits changes them), guarded by mu.
	maxInbound, maxOutbound int
	chanCfg                 channel.Config // template of new channels

	wg sync.WaitGroup
}

// New validates cfg, binds the listener (when cfg.ListenAddr is set) and
// registers the default handlers and the metrics. Run starts the node.
func New(cfg Config) (*Node, error) {
	if cfg.ID == "" {
		return nil, ErrNoID
	}
	cfg = cfg.withDefaults()
	if err := cfg.checkPolicy(cfg.Policy); err != nil {
		return nil, err
	}
	m, err := metrics.New(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:          cfg,
		log:          cfg.Logger.With("node", cfg.ID),
		gate:         trust.NewGate(cfg.Policy),
		reg:          NewRegistry(),
		metrics:      m,
		inboundQueue: make(chan *PendingPeer, cfg.InboundQueueLength),
		channels:     make(map[string]*channel.PeerChannel),
		all:          make(map[*channel.PeerChannel]*chanInfo),
		known:        make(map[string]*knownPeer),
		targets:      make(map[string]*dialTarget),
	}
	n.maxInbound, n.maxOutbound, n.chanCfg = cfg.MaxInbound, cfg.MaxOutbound, cfg.Channel
	n.denials = newRateLimitedLog(n.log, time.Second)
	n.metrics.SetConfig(cfg.Mesh, cfg.Policy.Generation)
	n.registerDefaults()
	if cfg.ListenAddr != "" {
		ln, err := net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("node: listen on %s: %w", cfg.ListenAddr, err)
		}
		n.ln = ln
		n.advert = ln.Addr().String()
		// A listener bound to one address dials from that address too, so
		// that peers see (and CIDR rules match) the address the node
		// announces, as on a host with several addresses.
		if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
			n.dialer.LocalAddr = &net.TCPAddr{IP: a.IP}
		}
	}
	if cfg.AdvertiseAddr != "" {
		n.advert = cfg.AdvertiseAddr
	}
	for _, s := range cfg.Seeds {
		n.addTarget(s, sourceSeed)
	}
	return n, nil
}

// ID returns the node's identifier.
func (n *Node) ID() string { return n.cfg.ID }

// Mesh returns the node's mesh name.
func (n *Node) Mesh() string { return n.cfg.Mesh }

// Addr returns the listener's address, or nil when the node does not listen.
func (n *Node) Addr() net.Addr {
	if n.ln == nil {
		return nil
	}
	return n.ln.Addr()
}

// AdvertiseAddr returns the address announced to peers.
func (n *Node) AdvertiseAddr() string { return n.advert }

// Registry returns the handler registry, to override defaults or add types.
func (n *Node) Registry() *Registry { return n.reg }

// Gate returns the trust gate.
func (n *Node) Gate() *trust.Gate { return n.gate }

// Metrics returns the node's metrics.
func (n *Node) Metrics() *metrics.Metrics { return n.metrics }

// InboundConnectingPeers is P2PNet's InboundConnectingPeers queue: under
// PlacementQueue and PlacementQueueAndEvent, each admitted inbound peer waits
// here for Accept or Reject.
func (n *Node) InboundConnectingPeers() <-chan *PendingPeer { return n.inboundQueue }

// Run accepts and dials peers until ctx ends, then closes every channel
// gracefully and returns once every goroutine it started has returned.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	if n.running {
		n.mu.Unlock()
		return errors.New("node: Run called twice")
	}
	n.running = true
	n.ctx = ctx
	for _, t := range n.targets {
		n.startDialer(t)
	}
	n.mu.Unlock()

	if n.ln != nil {
		n.wg.Add(1)
		go n.acceptLoop(ctx)
		stop := context.AfterFunc(ctx, func() { n.ln.Close() })
		defer stop()
	}
	n.wg.Add(1)
	go n.reaper(ctx)
	for _, d := range n.cfg.Discoverers {
		n.wg.Add(1)
		go n.runDiscoverer(ctx, d)
	}
	n.log.Info("node started", "listen", n.advert, "mesh", n.cfg.Mesh, "policy", n.gate.Policy().Generation)

	<-ctx.Done()
	// Channels close themselves with reason shutdown (their Run context is
	// ctx); wait for them and for the loops.
	n.wg.Wait()
	n.drainInboundQueue()
	n.log.Info("node stopped")
	return nil
}

func (n *Node) drainInboundQueue() {
	for {
		select {
		case p := <-n.inboundQueue:
			p.Reject()
		default:
			return
		}
	}
}

func (n *Node) acceptLoop(ctx context.Context) {
	defer n.wg.Done()
	var delay time.Duration
	for {
		conn, err := n.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary errors such as EMFILE: back off instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			n.log.Warn("accept failed", "err", err, "retryIn", delay)
			select {
			case <-time.After(delay):
				continue
			case <-ctx.Done():
				return
			}
		}
		delay = 0
		n.accept(ctx, conn)
	}
}

// accept admits or refuses a new inbound connection at the accept stage.
func (n *Node) accept(ctx context.Context, conn net.Conn) {
	addr := peernode.AddrPortOf(conn.RemoteAddr())
	d := n.gate.InterceptAccept(addr)
	if n.denied(d, "", addr.String()) {
		n.metrics.ConnectionRejected(d.Reason)
		conn.Close()
		return
	}
	n.mu.Lock()
	switch {
	case n.inbound >= n.maxInbound:
		n.mu.Unlock()
		n.reject(conn, metrics.RejectCapacityInbound, wire.DisconnectCapacityExceeded, "inbound channel limit reached")
		return
	case n.pending >= n.cfg.MaxPendingHandshakes:
		n.mu.Unlock()
		n.reject(conn, metrics.RejectCapacityInbound, wire.DisconnectCapacityExceeded, "too many pending handshakes")
		return
	}
	n.inbound++
	n.pending++
	n.mu.Unlock()
	peer := peernode.NewGenericPeer(conn, peernode.Inbound)
	ch := n.newChannel(conn, peer)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = ch.Run(ctx)
	}()
}

// reject refuses a connection over a cap with a Disconnect, so the peer knows
// why, and counts it.
func (n *Node) reject(conn net.Conn, reason string, code wire.DisconnectCode, text string) {
	n.metrics.ConnectionRejected(reason)
	_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = conn.Write(wire.AppendFrame(nil, wire.Disconnect{Code: code, Reason: text}))
	conn.Close()
}

func (n *Node) hello() wire.Hello {
	return wire.Hello{
		ProtocolVersion: wire.ProtocolVersion,
		NodeID:          n.cfg.ID,
		ListenAddr:      n.advert,
		MeshName:        n.cfg.Mesh,
		Capabilities:    localCapabilities,
	}
}

// newChannel builds a channel wired to the node's hooks. The trust protocol
// is the one of the policy in force when the channel is created.
func (n *Node) newChannel(conn net.Conn, peer *peernode.GenericPeer) *channel.PeerChannel {
	n.mu.Lock()
	cfg := n.chanCfg
	n.mu.Unlock()
	cfg.Hello = n.hello()
	pol := n.gate.Policy()
	if pol.RunTrustProtocol {
		p, err := n.cfg.TrustProtocols(pol.TrustProtocol)
		if err != nil {
			// SetPolicy and New refuse such a policy, so this only happens
			// if a resolver changes its mind: the channel stays untrusted.
			n.log.Error("trust protocol unavailable", "protocol", pol.TrustProtocol, "err", err)
		} else {
			cfg.Trust, cfg.RunTrust = p, true
		}
	}
	ch := channel.New(conn, peer, cfg, n.hooks())
	info := &chanInfo{}
	if cfg.RunTrust {
		info.trustDone = make(chan struct{})
	}
	n.mu.Lock()
	n.all[ch] = info
	n.mu.Unlock()
	return ch
}
