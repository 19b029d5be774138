package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/peermesh/peermesh/peernode"
)

// Defaults of LANConfig.
const (
	// DefaultLANGroup is an IPv4 organization-local multicast group
	// (239.192.0.0/14, RFC 2365) and a port next to the peer port 7946.
	DefaultLANGroup    = "239.192.77.46:7947"
	DefaultLANInterval = 5 * time.Second
	// LANTTLFactor: a peer not heard for LANTTLFactor announce intervals
	// is dropped from the set, so one or two lost datagrams do not.
	LANTTLFactor = 3
)

// LANConfig configures LAN discovery.
type LANConfig struct {
	// ID is this node's identifier, announced and used to ignore the
	// node's own announcements (multicast loopback). Required.
	ID string
	// Mesh is announced; announcements of another mesh are ignored (and
	// counted as other_mesh). An empty mesh matches only an empty mesh.
	Mesh string
	// Addr is the "host:port" peers should dial, normally the node's
	// advertise address. A host of 0.0.0.0 or :: is replaced by each
	// receiver with the datagram's source address. Required.
	Addr string
	// Group is the IPv4 multicast "group:port" (default DefaultLANGroup).
	// With PacketConn set it is the address announcements are written to,
	// and may be any UDP address.
	Group string
	// Interface is the name of the interface to join the group on and send
	// from; empty lets the system pick (the interface of the route to the
	// group, normally the default route's).
	Interface string
	// Interval is the mean period between announcements (default 5 s),
	// jittered by ±IntervalJitter. Peers expire after LANTTLFactor
	// intervals without an announcement.
	Interval time.Duration
	// PacketConn, when set, replaces the multicast sockets: announcements
	// are written to Group through it and datagrams are read from it. Run
	// does not close it; it sets a past read deadline to stop reading.
	// Tests use a unicast UDP socket on loopback.
	PacketConn net.PacketConn
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Metrics counts datagrams, announcements and updates; nil counts
	// nowhere.
	Metrics *Metrics
}

// LAN discovers peers on the local network by UDP multicast (P2PNet's LAN
// discovery, without raw packet capture). It announces this node at start,
// every Interval (jittered) and, at most four times an interval, when it
// hears a node it did not know (so a newcomer learns its neighbours in
// milliseconds, not an interval); it sends a final "leaving" announcement
// when ctx ends. It reports the set of addresses announced within the TTL.
// Malformed datagrams are dropped and counted; they cost no allocation
// beyond the fixed read buffer.
type LAN struct {
	cfg     LANConfig
	group   netip.AddrPort
	hello   []byte // this node's announcement
	goodbye []byte // its leaving announcement
	log     *slog.Logger
	metrics *Metrics
}

var _ peernode.Discoverer = (*LAN)(nil)

// NewLAN validates cfg and returns a LAN discoverer. It opens no socket:
// Run does.
func NewLAN(cfg LANConfig) (*LAN, error) {
	if cfg.Group == "" {
		cfg.Group = DefaultLANGroup
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultLANInterval
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("%w: negative LAN announce interval", ErrInvalidConfig)
	}
	group, err := netip.ParseAddrPort(cfg.Group)
	if err != nil || group.Port() == 0 {
		return nil, fmt.Errorf("%w: LAN group %q: want IP:PORT", ErrInvalidConfig, cfg.Group)
	}
	if cfg.PacketConn == nil && (!group.Addr().Is4() || !group.Addr().IsMulticast()) {
		return nil, fmt.Errorf("%w: LAN group %q: want an IPv4 multicast address (224.0.0.0/4), such as %s", ErrInvalidConfig, cfg.Group, DefaultLANGroup)
	}
	l := &LAN{cfg: cfg, group: group, metrics: orUnregistered(cfg.Metrics)}
	l.metrics.initLAN()
	a := announcement{Mesh: cfg.Mesh, ID: cfg.ID, Addr: cfg.Addr}
	if l.hello, err = appendAnnouncement(nil, a); err != nil {
		return nil, fmt.Errorf("%w: LAN announcement (ID %q, address %q): %w", ErrInvalidConfig, cfg.ID, cfg.Addr, err)
	}
	a.Leaving = true
	l.goodbye, _ = appendAnnouncement(nil, a)
	l.log = cfg.Logger
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.log = l.log.With("discoverer", l.Name())
	return l, nil
}

// Name returns "lan".
func (l *LAN) Name() string { return "lan" }

// heard is an accepted announcement passed from the reader to Run's loop.
type heard struct {
	announcement
	at time.Time
}

// lanPeer is a node heard on the LAN.
type lanPeer struct {
	addr    string
	expires time.Time
}

// Run opens the sockets (unless PacketConn is set), announces, listens and
// reports the address set on every change until ctx ends. It starts one
// reader goroutine and joins it before returning. A socket that cannot be
// opened is an error; once running, Run returns nil when ctx ends.
func (l *LAN) Run(ctx context.Context, update func(addrs []string)) error {
	recv, send, closeAll, err := l.open()
	if err != nil {
		return err
	}
	dst := net.UDPAddrFromAddrPort(l.group)
	heardc := make(chan heard)
	readCtx, stopReading := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.readLoop(readCtx, recv, heardc)
	}()
	defer func() {
		stopReading()
		if l.cfg.PacketConn != nil {
			_ = recv.SetReadDeadline(time.Unix(1, 0)) // unblock ReadFrom; the caller owns the socket
		} else {
			_ = recv.Close()
		}
		wg.Wait()
		closeAll()
	}()

	var (
		ttl      = LANTTLFactor * l.cfg.Interval
		peers    = make(map[string]lanPeer)
		last     []string
		lastSent time.Time
		// nextAnnounce is when announce fires; zero time before the
		// first announcement, which is immediate.
		nextAnnounce time.Time
		failures     int
		announce     = time.NewTimer(0)
		expiry       = time.NewTimer(time.Hour)
		replyGap     = l.cfg.Interval / 4
		sendHello    = func(b []byte) {
			lastSent = time.Now()
			if _, err := send.WriteTo(b, dst); err != nil {
				failures++
				l.metrics.Announcements.WithLabelValues(AnnounceError).Inc()
				level := slog.LevelDebug
				if failures == 1 {
					level = slog.LevelWarn
				}
				l.log.Log(ctx, level, "LAN announcement failed", "group", l.cfg.Group, "err", err, "consecutiveFailures", failures)
				return
			}
			failures = 0
			l.metrics.Announcements.WithLabelValues(AnnounceOK).Inc()
		}
	)
	defer announce.Stop()
	expiry.Stop()
	defer expiry.Stop()
	// settle drops expired peers, reports the set if it changed and arms
	// the expiry timer for the next peer to expire.
	settle := func(now time.Time) {
		var next time.Time
		addrs := make([]string, 0, len(peers))
		for id, p := range peers {
			if !p.expires.After(now) {
				delete(peers, id)
				l.log.Debug("LAN peer expired", "peer", id, "addr", p.addr)
				continue
			}
			if next.IsZero() || p.expires.Before(next) {
				next = p.expires
			}
			addrs = append(addrs, p.addr)
		}
		addrs = normalize(addrs)
		if !slices.Equal(addrs, last) {
			last = addrs
			l.metrics.reported(l.Name(), len(addrs))
			update(slices.Clone(addrs))
		}
		if !next.IsZero() {
			expiry.Reset(next.Sub(now))
		}
	}
	for {
		select {
		case <-ctx.Done():
			sendHello(l.goodbye)
			return nil
		case <-announce.C:
			sendHello(l.hello)
			wait := jittered(l.cfg.Interval, IntervalJitter, rand.Float64())
			nextAnnounce = lastSent.Add(wait)
			announce.Reset(wait)
		case h := <-heardc:
			if h.Leaving {
				delete(peers, h.ID)
				l.log.Debug("LAN peer left", "peer", h.ID, "addr", h.Addr)
			} else {
				old, known := peers[h.ID]
				peers[h.ID] = lanPeer{addr: h.Addr, expires: h.at.Add(ttl)}
				if !known || old.addr != h.Addr {
					l.log.Debug("LAN peer heard", "peer", h.ID, "addr", h.Addr)
				}
				// A newcomer announced itself: answer soon, so it need not
				// wait an interval, but at most once per replyGap.
				if due := lastSent.Add(replyGap); !known && due.Before(nextAnnounce) {
					nextAnnounce = due
					announce.Reset(time.Until(due))
				}
			}
			settle(time.Now())
		case <-expiry.C:
			settle(time.Now())
		}
	}
}

// open returns the socket to read from, the socket to announce through and
// a function closing what Run opened (the reader socket is closed
// separately, to unblock the reader).
func (l *LAN) open() (recv, send net.PacketConn, closeAll func(), err error) {
	if l.cfg.PacketConn != nil {
		return l.cfg.PacketConn, l.cfg.PacketConn, func() {}, nil
	}
	var ifi *net.Interface
	if l.cfg.Interface != "" {
		if ifi, err = net.InterfaceByName(l.cfg.Interface); err != nil {
			return nil, nil, nil, fmt.Errorf("discovery: LAN interface %q: %w", l.cfg.Interface, err)
		}
	}
	group := net.UDPAddrFromAddrPort(l.group)
	// ListenMulticastUDP binds the group port with SO_REUSEADDR, so several
	// nodes on one host can listen, and joins the group on ifi.
	rc, err := net.ListenMulticastUDP("udp4", ifi, group)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("discovery: LAN: joining %s: %w", l.cfg.Group, err)
	}
	sc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		rc.Close()
		return nil, nil, nil, fmt.Errorf("discovery: LAN: announce socket: %w", err)
	}
	p := ipv4.NewPacketConn(sc)
	// Loopback lets nodes on the same host hear each other (our own
	// announcements come back too and are ignored by ID); TTL 1 keeps
	// announcements on the local link.
	err = errors.Join(p.SetMulticastLoopback(true), p.SetMulticastTTL(1))
	if ifi != nil {
		err = errors.Join(err, p.SetMulticastInterface(ifi))
	}
	if err != nil {
		rc.Close()
		sc.Close()
		return nil, nil, nil, fmt.Errorf("discovery: LAN: announce socket options: %w", err)
	}
	return rc, sc, func() { sc.Close() }, nil
}

// readLoop reads datagrams until ctx ends, passing accepted announcements to
// out. Invalid datagrams are counted and dropped.
func (l *LAN) readLoop(ctx context.Context, pc net.PacketConn, out chan<- heard) {
	buf := make([]byte, MaxDatagramSize+1) // one byte more detects oversize datagrams
	var delay time.Duration
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Unexpected read errors (such as an ICMP error reported on the
			// socket): back off instead of spinning.
			delay = min(max(2*delay, 10*time.Millisecond), time.Second)
			l.log.Debug("LAN read failed", "err", err, "retryIn", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		delay = 0
		a, result := l.classify(buf[:n], from)
		l.metrics.Datagrams.WithLabelValues(result).Inc()
		if result != DatagramAccepted {
			continue
		}
		select {
		case out <- heard{announcement: a, at: time.Now()}:
		case <-ctx.Done():
			return
		}
	}
}

// classify decodes b, received from from, and says what to do with it.
func (l *LAN) classify(b []byte, from net.Addr) (announcement, string) {
	a, err := decodeAnnouncement(b)
	switch {
	case errors.Is(err, errUnsupportedVersion):
		l.log.Debug("LAN datagram of an unsupported version dropped", "from", from, "err", err)
		return a, DatagramUnsupportedVersion
	case err != nil:
		l.log.Debug("malformed LAN datagram dropped", "from", from, "bytes", len(b), "err", err)
		return a, DatagramMalformed
	case a.ID == l.cfg.ID:
		return a, DatagramOwn
	case a.Mesh != l.cfg.Mesh:
		return a, DatagramOtherMesh
	}
	// A node listening on 0.0.0.0 or :: announces that; the datagram's
	// source is the address it is reachable at on this link.
	host, port, _ := net.SplitHostPort(a.Addr) // validated by decode
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		src, ok := from.(*net.UDPAddr)
		if !ok || src.IP == nil {
			return a, DatagramMalformed
		}
		a.Addr = net.JoinHostPort(src.AddrPort().Addr().Unmap().String(), port)
	}
	return a, DatagramAccepted
}
