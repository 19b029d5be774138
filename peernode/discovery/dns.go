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
	"strconv"
	"strings"
	"time"

	"github.com/peermesh/peermesh/peernode"
)

// Defaults of DNSConfig.
const (
	DefaultDNSInterval = 10 * time.Second
	DefaultDNSTimeout  = 5 * time.Second
	// IntervalJitter is the relative jitter of every discovery period: each
	// wait is uniform in [interval*(1-IntervalJitter), interval*(1+IntervalJitter)],
	// so that the pods of a Deployment started together do not query the DNS
	// server (or announce on the LAN) in lockstep.
	IntervalJitter = 0.2
	// DefaultSRVService and DefaultSRVProto make the SRV name
	// "_peer._tcp.<Name>", the record Kubernetes publishes for a headless
	// Service port named "peer".
	DefaultSRVService = "peer"
	DefaultSRVProto   = "tcp"
)

// ErrInvalidConfig wraps every configuration error of NewDNS and NewLAN.
var ErrInvalidConfig = errors.New("discovery: invalid configuration")

// DNSConfig configures a DNS discoverer.
type DNSConfig struct {
	// Name is the DNS name to resolve, typically a headless Service:
	// "peers.mesh.svc.cluster.local." (a trailing dot skips the search
	// list). Required.
	Name string
	// Port is the peer port paired with every A/AAAA address. Required
	// unless SRV is set (SRV records carry their own ports).
	Port int
	// SRV resolves SRV records instead of A/AAAA: the name
	// "_<SRVService>._<SRVProto>.<Name>" (or Name itself when it starts
	// with "_"), then the address records of every target, each paired with
	// its record's port.
	SRV bool
	// SRVService and SRVProto default to "peer" and "tcp".
	SRVService, SRVProto string
	// Interval is the mean period between resolutions (default 10 s); each
	// wait is jittered by ±IntervalJitter.
	Interval time.Duration
	// Timeout bounds one resolution, SRV targets included (default 5 s).
	Timeout time.Duration
	// Resolver resolves the names. Nil means Go's resolver with StrictErrors
	// (a SERVFAIL or timeout on any sub-query fails the whole lookup instead
	// of returning a partial set), or a resolver that sends every query to
	// Server when Server is set. A caller-supplied Resolver should set
	// StrictErrors too.
	Resolver *net.Resolver
	// Server is the "host:port" of a DNS server to query instead of the
	// system's (for example "127.0.0.1:53535"). Mutually exclusive with
	// Resolver.
	Server string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Metrics counts lookups and updates; nil counts nowhere.
	Metrics *Metrics
}

// DNS discovers peers through the DNS records of a headless Service. It
// resolves at start and then every Interval (jittered), and reports the
// full address set when it differs from the last one reported:
//
//   - records found: the set of "ip:port" addresses, sorted;
//   - NXDOMAIN or no records of the asked type (an authoritative answer that
//     the Service has no endpoints, or no longer exists): the empty set, so
//     the node stops dialing every address it had from this discoverer;
//   - any other failure (SERVFAIL, timeout, refused, network error): nothing
//     is reported, the last good set stays in force; the failure is logged
//     and counted (peermesh_node_discovery_lookups_total{result="error"}).
type DNS struct {
	cfg      DNSConfig
	name     string // Name() value
	srvName  string // SRV query name, when cfg.SRV
	resolver *net.Resolver
	log      *slog.Logger
	metrics  *Metrics
}

var _ peernode.Discoverer = (*DNS)(nil)

// NewDNS validates cfg and returns a DNS discoverer.
func NewDNS(cfg DNSConfig) (*DNS, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("%w: DNS name is required", ErrInvalidConfig)
	}
	if !cfg.SRV && (cfg.Port < 1 || cfg.Port > 65535) {
		return nil, fmt.Errorf("%w: DNS port %d: want 1-65535 (A/AAAA records carry no port)", ErrInvalidConfig, cfg.Port)
	}
	if cfg.Interval < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: negative DNS interval or timeout", ErrInvalidConfig)
	}
	if cfg.Resolver != nil && cfg.Server != "" {
		return nil, fmt.Errorf("%w: set DNS Resolver or Server, not both", ErrInvalidConfig)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultDNSInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultDNSTimeout
	}
	if cfg.SRVService == "" {
		cfg.SRVService = DefaultSRVService
	}
	if cfg.SRVProto == "" {
		cfg.SRVProto = DefaultSRVProto
	}
	d := &DNS{cfg: cfg, name: "dns:" + cfg.Name, metrics: orUnregistered(cfg.Metrics)}
	if cfg.SRV {
		d.srvName = cfg.Name
		if !strings.HasPrefix(cfg.Name, "_") {
			d.srvName = "_" + cfg.SRVService + "._" + cfg.SRVProto + "." + cfg.Name
		}
	}
	switch {
	case cfg.Resolver != nil:
		d.resolver = cfg.Resolver
	case cfg.Server != "":
		if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
			return nil, fmt.Errorf("%w: DNS server %q: want HOST:PORT: %w", ErrInvalidConfig, cfg.Server, err)
		}
		d.resolver = NewResolver(cfg.Server)
	default:
		d.resolver = &net.Resolver{PreferGo: true, StrictErrors: true}
	}
	d.log = cfg.Logger
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.log = d.log.With("discoverer", d.name)
	return d, nil
}

// NewResolver returns a Go resolver that sends every query to server
// ("host:port") over the network Go asks for (UDP, or TCP for truncated
// answers), with StrictErrors set.
func NewResolver(server string) *net.Resolver {
	return &net.Resolver{
		PreferGo:     true,
		StrictErrors: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
}

// Name returns "dns:" and the configured name, so two DNS discoverers of one
// node keep separate target sets.
func (d *DNS) Name() string { return d.name }

// Run resolves at once and then periodically until ctx ends, reporting the
// address set when it changed (see DNS). It runs on the caller's goroutine
// only and returns nil when ctx ends.
func (d *DNS) Run(ctx context.Context, update func(addrs []string)) error {
	var (
		last     []string
		reported bool
		failures int
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		addrs, err := d.Resolve(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			d.metrics.Lookups.WithLabelValues(d.name, LookupError).Inc()
			// The first failure of a run is a warning; repeats are logged
			// at debug level with the count, so a long outage does not flood
			// the log at every interval.
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			d.log.Log(ctx, level, "DNS discovery lookup failed; keeping the last address set",
				"err", err, "consecutiveFailures", failures, "addresses", len(last))
		default:
			if failures > 0 {
				d.log.Info("DNS discovery lookups recovered", "failedLookups", failures)
			}
			failures = 0
			result := LookupOK
			if len(addrs) == 0 {
				result = LookupNotFound
			}
			d.metrics.Lookups.WithLabelValues(d.name, result).Inc()
			if !reported || !slices.Equal(addrs, last) {
				d.log.Debug("DNS discovery address set changed", "addresses", len(addrs), "previous", len(last))
				last, reported = addrs, true
				d.metrics.reported(d.name, len(addrs))
				update(slices.Clone(addrs))
			}
		}
		timer.Reset(jittered(d.cfg.Interval, IntervalJitter, rand.Float64()))
	}
}

// Resolve performs one resolution and returns the sorted, deduplicated
// address set. NXDOMAIN and "no records" give an empty set and a nil error;
// every other failure is returned (wrapping the resolver's *net.DNSError).
func (d *DNS) Resolve(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	if d.cfg.SRV {
		return d.resolveSRV(ctx)
	}
	port := strconv.Itoa(d.cfg.Port)
	ips, err := d.lookupIPs(ctx, d.cfg.Name)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, 0, len(ips))
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip.String(), port))
	}
	return normalize(addrs), nil
}

func (d *DNS) resolveSRV(ctx context.Context) ([]string, error) {
	_, records, err := d.resolver.LookupSRV(ctx, "", "", d.srvName)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: SRV %s: %w", d.srvName, err)
	}
	var addrs []string
	resolved := make(map[string][]netip.Addr, len(records))
	for _, r := range records {
		// Port 0 or target "." mean "no service here" (RFC 2782).
		if r.Port == 0 || r.Target == "." || r.Target == "" {
			continue
		}
		ips, ok := resolved[r.Target]
		if !ok {
			// A target that no longer exists (its pod is gone) is skipped;
			// any other failure fails the whole resolution, so that one
			// flaky lookup does not make its peer vanish.
			if ips, err = d.lookupIPs(ctx, r.Target); err != nil {
				return nil, err
			}
			resolved[r.Target] = ips
		}
		port := strconv.Itoa(int(r.Port))
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip.String(), port))
		}
	}
	return normalize(addrs), nil
}

// lookupIPs returns the A and AAAA addresses of host; not found is an empty
// result, not an error.
func (d *DNS) lookupIPs(ctx context.Context, host string) ([]netip.Addr, error) {
	ips, err := d.resolver.LookupNetIP(ctx, "ip", host)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: resolving %s: %w", host, err)
	}
	for i, ip := range ips {
		ips[i] = ip.Unmap()
	}
	return ips, nil
}

// isNotFound reports whether err is an authoritative "no such name" or "no
// records" answer.
func isNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

// jittered returns d scaled uniformly into [d*(1-frac), d*(1+frac)] by u, a
// random number in [0, 1). It never returns less than 1 ms, so a tiny
// interval cannot turn a timer loop into a busy loop.
func jittered(d time.Duration, frac, u float64) time.Duration {
	j := time.Duration(float64(d) * (1 - frac + 2*frac*u))
	return max(j, time.Millisecond)
}
