package discovery_test

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// srvRecord is one SRV answer of the test server.
type srvRecord struct {
	target string
	port   uint16
}

// dnsServer is an authoritative DNS server on a loopback UDP port, built on
// dnsmessage, answering A, AAAA and SRV queries from a mutable table. Names
// are absolute ("peers.mesh.test."), compared case-insensitively. A name in
// no table answers NXDOMAIN; a known name without records of the asked type
// answers NOERROR with no answers (NODATA); servfail answers every query
// with SERVFAIL.
type dnsServer struct {
	conn net.PacketConn
	wg   sync.WaitGroup

	mu       sync.Mutex
	addrs    map[string][]netip.Addr
	srvs     map[string][]srvRecord
	servfail bool
	// servfailType, when set, makes only queries of that type SERVFAIL.
	servfailType dnsmessage.Type
	queries      int
}

// startDNSServer starts a server on 127.0.0.1:0; Cleanup stops it.
func startDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{conn: conn, addrs: map[string][]netip.Addr{}, srvs: map[string][]srvRecord{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		conn.Close()
		s.wg.Wait()
	})
	return s
}

func (s *dnsServer) Addr() string { return s.conn.LocalAddr().String() }

// SetAddrs replaces the A and AAAA records of name (nil deletes the name
// from the address table).
func (s *dnsServer) SetAddrs(name string, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if addrs == nil {
		delete(s.addrs, strings.ToLower(name))
		return
	}
	ips := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		ips = append(ips, netip.MustParseAddr(a))
	}
	s.addrs[strings.ToLower(name)] = ips
}

// SetSRV replaces the SRV records of name (nil deletes them).
func (s *dnsServer) SetSRV(name string, recs ...srvRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if recs == nil {
		delete(s.srvs, strings.ToLower(name))
		return
	}
	s.srvs[strings.ToLower(name)] = recs
}

// SetServfail makes every answer SERVFAIL (true) or normal (false).
func (s *dnsServer) SetServfail(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail = on
}

// SetServfailType makes only queries of type qt SERVFAIL (0: none).
func (s *dnsServer) SetServfailType(qt dnsmessage.Type) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfailType = qt
}

// Queries returns the number of queries answered.
func (s *dnsServer) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

func (s *dnsServer) serve() {
	defer s.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		resp, err := s.answer(buf[:n])
		if err != nil {
			continue // not a query we can parse: no answer, as a server would
		}
		_, _ = s.conn.WriteTo(resp, from)
	}
}

func (s *dnsServer) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries++
	name := strings.ToLower(q.Name.String())
	addrs, hasAddrs := s.addrs[name]
	srvs, hasSRV := s.srvs[name]

	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RCode: dnsmessage.RCodeSuccess}
	switch {
	case s.servfail, s.servfailType != 0 && q.Type == s.servfailType:
		rh.RCode = dnsmessage.RCodeServerFailure
	case !hasAddrs && !hasSRV:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if rh.RCode == dnsmessage.RCodeSuccess {
		rrh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}
		switch q.Type {
		case dnsmessage.TypeA:
			for _, a := range addrs {
				if a.Is4() {
					if err := b.AResource(rrh, dnsmessage.AResource{A: a.As4()}); err != nil {
						return nil, err
					}
				}
			}
		case dnsmessage.TypeAAAA:
			for _, a := range addrs {
				if a.Is6() {
					if err := b.AAAAResource(rrh, dnsmessage.AAAAResource{AAAA: a.As16()}); err != nil {
						return nil, err
					}
				}
			}
		case dnsmessage.TypeSRV:
			for _, r := range srvs {
				target, err := dnsmessage.NewName(r.target)
				if err != nil {
					return nil, err
				}
				if err := b.SRVResource(rrh, dnsmessage.SRVResource{Priority: 10, Weight: 10, Port: r.port, Target: target}); err != nil {
					return nil, err
				}
			}
		}
	}
	return b.Finish()
}
