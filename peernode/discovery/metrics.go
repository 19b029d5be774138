package discovery

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of peermesh_node_discovery_lookups_total.
const (
	LookupOK       = "ok"        // records found
	LookupNotFound = "not_found" // NXDOMAIN or no records: the empty set
	LookupError    = "error"     // any other failure: the last good set stays
)

// Results of peermesh_node_discovery_lan_datagrams_received_total.
const (
	DatagramAccepted           = "accepted"            // an announcement of another node of this mesh
	DatagramOwn                = "own"                 // this node's own announcement (multicast loopback)
	DatagramOtherMesh          = "other_mesh"          // another mesh's announcement
	DatagramMalformed          = "malformed"           // not a valid announcement (bad magic, lengths, fields, trailing bytes, oversize)
	DatagramUnsupportedVersion = "unsupported_version" // magic matches, version is not 1
)

// Results of peermesh_node_discovery_lan_announcements_total.
const (
	AnnounceOK    = "ok"
	AnnounceError = "error"
)

// Metrics are the discovery collectors. One Metrics is shared by every
// discoverer of a node; the discoverer label is the discoverer's Name(), a
// value fixed by configuration, so the number of series stays small.
type Metrics struct {
	// Lookups counts DNS resolutions by discoverer and result.
	Lookups *prometheus.CounterVec
	// Addresses is the size of the address set each discoverer last reported.
	Addresses *prometheus.GaugeVec
	// Updates counts reported address sets (reported only on change).
	Updates *prometheus.CounterVec
	// Datagrams counts received LAN datagrams by result.
	Datagrams *prometheus.CounterVec
	// Announcements counts LAN announcements sent, by result.
	Announcements *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them on reg (nil registers
// nothing, for tests and library users without Prometheus).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peermesh_node_discovery_lookups_total",
			Help: "DNS discovery resolutions by discoverer and result (ok, not_found, error).",
		}, []string{"discoverer", "result"}),
		Addresses: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "peermesh_node_discovery_addresses",
			Help: "Addresses in the set each discoverer last reported.",
		}, []string{"discoverer"}),
		Updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peermesh_node_discovery_updates_total",
			Help: "Changed address sets reported by each discoverer.",
		}, []string{"discoverer"}),
		Datagrams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peermesh_node_discovery_lan_datagrams_received_total",
			Help: "LAN discovery datagrams received, by result (accepted, own, other_mesh, malformed, unsupported_version).",
		}, []string{"result"}),
		Announcements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peermesh_node_discovery_lan_announcements_total",
			Help: "LAN discovery announcements sent, by result (ok, error).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.Lookups, m.Addresses, m.Updates, m.Datagrams, m.Announcements}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("discovery: registering metrics: %w", err)
		}
	}
	return m, nil
}

// orUnregistered returns m, or unregistered collectors when m is nil, so
// discoverers never check for nil.
func orUnregistered(m *Metrics) *Metrics {
	if m != nil {
		return m
	}
	m, _ = NewMetrics(nil)
	return m
}

// initLAN creates the LAN series at zero, so that dashboards see them as
// soon as LAN discovery runs (and not at all when it does not).
func (m *Metrics) initLAN() {
	for _, r := range []string{DatagramAccepted, DatagramOwn, DatagramOtherMesh, DatagramMalformed, DatagramUnsupportedVersion} {
		m.Datagrams.WithLabelValues(r)
	}
	for _, r := range []string{AnnounceOK, AnnounceError} {
		m.Announcements.WithLabelValues(r)
	}
}

// reported records that discoverer reported a set of n addresses.
func (m *Metrics) reported(discoverer string, n int) {
	m.Updates.WithLabelValues(discoverer).Inc()
	m.Addresses.WithLabelValues(discoverer).Set(float64(n))
}
