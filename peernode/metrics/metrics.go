package metrics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peermesh/peermesh/internal/version"
	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/wire"
)

// Label values of the type label for packets without a built-in type name.
const (
	// TypeApplication is the type label of application-defined packets
	// (0x80-0xFF).
	TypeApplication = "application"
	// TypeUnknown is the type label of every other type without a built-in
	// payload format (reserved ranges, and ranges a later version defines).
	TypeUnknown = "unknown"
)

// Other is the value under which a reason, protocol or result outside the
// documented set is counted, so that a caller's mistake cannot grow the
// number of series. Seeing it on a dashboard means a bug in the node.
const Other = "other"

// Reasons of peermesh_node_packets_dropped_total.
const (
	DropPolicy        = "policy"         // the gate denied the packet
	DropUnknownType   = "unknown_type"   // a type without a decoder
	DropNoHandler     = "no_handler"     // no handler registered for the type
	DropQueueFull     = "queue_full"     // a control reply found the send queue full
	DropTrustInactive = "trust_inactive" // a trust packet while no trust protocol runs
	DropHandlerError  = "handler_error"  // the handler returned an error
	// DropChannelClosing: a packet arrived after its channel began closing.
	DropChannelClosing = "channel_closing"
)

// Reasons of peermesh_node_connections_rejected_total besides the gate's
// peernode.Reason* values (blocked_cidr, blocked_identifier,
// not_allowlisted, no_configuration).
const (
	RejectCapacityInbound  = "capacity_inbound"
	RejectCapacityOutbound = "capacity_outbound"
	RejectSelfConnection   = "self_connection"
	RejectDuplicate        = "duplicate"
	RejectMeshMismatch     = "mesh_mismatch"
	RejectHandshakeFailed  = "handshake_failed"
)

// Results of peermesh_node_trust_handshakes_total.
const (
	HandshakeSuccess = "success"
	HandshakeFailure = "failure"
	HandshakeTimeout = "timeout"
)

// Results of peermesh_node_config_reloads_total.
const (
	ReloadSuccess = "success" // the configuration was applied
	ReloadInvalid = "invalid" // it was refused; the last good one stays
	ReloadError   = "error"   // it could not be read
)

// Values of the mode label of peermesh_node_policy_denials_total.
const (
	ModeEnforced = "enforced"
	ModeAudit    = "audit"
)

// dropReasons and the other lists below are the label values New creates
// at zero; the helpers count anything else under Other.
var (
	dropReasons = []string{
		DropPolicy, DropUnknownType, DropNoHandler, DropQueueFull, DropTrustInactive, DropHandlerError, DropChannelClosing,
	}
	policyReasons = []string{
		peernode.ReasonBlockedCIDR, peernode.ReasonBlockedIdentifier, peernode.ReasonNotAllowlisted,
		peernode.ReasonUntrustedDefault, peernode.ReasonUntrustedEnhanced, peernode.ReasonFailClosed,
	}
	rejectReasons = []string{
		peernode.ReasonBlockedCIDR, peernode.ReasonBlockedIdentifier, peernode.ReasonNotAllowlisted,
		peernode.ReasonFailClosed, RejectCapacityInbound, RejectCapacityOutbound,
		RejectSelfConnection, RejectDuplicate, RejectMeshMismatch, RejectHandshakeFailed,
	}
	closeReasons = []string{
		peernode.CloseShutdown, peernode.CloseLocal, peernode.CloseRemote, peernode.CloseConnectionLost,
		peernode.CloseProtocolError, peernode.CloseHandshake, peernode.CloseIdleTimeout, peernode.ClosePolicy,
		peernode.CloseTrustFailed, peernode.CloseDuplicate, peernode.CloseSelf, peernode.CloseCapacity,
		peernode.CloseMeshMismatch,
	}
	// trustProtocols are the names of trust.ProtocolByName's protocols and
	// sharedKey (the metrics package does not import trust).
	trustProtocols  = []string{"none", "ping", "sharedKey"}
	handshakeResult = []string{HandshakeSuccess, HandshakeFailure, HandshakeTimeout}
	reloadResults   = []string{ReloadSuccess, ReloadInvalid, ReloadError}
	directions      = []peernode.Direction{peernode.Inbound, peernode.Outbound}
)

// DropReasons returns the documented reasons of packets_dropped_total.
func DropReasons() []string { return slices.Clone(dropReasons) }

// RejectReasons returns the documented reasons of connections_rejected_total.
func RejectReasons() []string { return slices.Clone(rejectReasons) }

// PolicyReasons returns the documented reasons of policy_denials_total.
func PolicyReasons() []string { return slices.Clone(policyReasons) }

// CloseReasons returns the documented reasons of channels_closed_total: the
// peernode.Close* labels.
func CloseReasons() []string { return slices.Clone(closeReasons) }

// TypeLabel returns the type label of packets of type t: its name for a
// built-in or file-transfer type, TypeApplication or TypeUnknown otherwise.
func TypeLabel(t wire.Type) string {
	switch {
	case t.IsNamed():
		return t.String()
	case t.IsApplication():
		return TypeApplication
	}
	return TypeUnknown
}

// RTTBuckets returns the upper bounds of peermesh_node_rtt_seconds: 18
// exponential buckets from 50 µs (loopback) to 5 s (a peer about to time
// out), a factor of about 1.97 apart.
func RTTBuckets() []float64 { return prometheus.ExponentialBucketsRange(50e-6, 5, 18) }

// Metrics holds the collectors of one node. Build it with New. The fields
// are exported for reading in tests and for the rare update without a
// helper (KnownPeers, InboundQueueDepth); prefer the helpers, which keep the
// labels bounded and do not allocate.
type Metrics struct {
	KnownPeers          prometheus.Gauge       // peermesh_node_known_peers
	Channels            *prometheus.GaugeVec   // peermesh_node_channels{direction,trusted}
	InboundQueueDepth   prometheus.Gauge       // peermesh_node_inbound_queue_depth
	ChannelsOpened      *prometheus.CounterVec // peermesh_node_channels_opened_total{direction}
	ChannelsClosed      *prometheus.CounterVec // peermesh_node_channels_closed_total{reason}
	PacketsSent         *prometheus.CounterVec // peermesh_node_packets_sent_total{type}
	PacketsReceived     *prometheus.CounterVec // peermesh_node_packets_received_total{type}
	BytesSent           *prometheus.CounterVec // peermesh_node_bytes_sent_total{type}
	BytesReceived       *prometheus.CounterVec // peermesh_node_bytes_received_total{type}
	PacketsDropped      *prometheus.CounterVec // peermesh_node_packets_dropped_total{reason}
	ConnectionsRejected *prometheus.CounterVec // peermesh_node_connections_rejected_total{reason}
	TrustHandshakes     *prometheus.CounterVec // peermesh_node_trust_handshakes_total{protocol,result}
	PolicyDenials       *prometheus.CounterVec // peermesh_node_policy_denials_total{reason,mode}
	RTT                 prometheus.Histogram   // peermesh_node_rtt_seconds
	ConfigInfo          *prometheus.GaugeVec   // peermesh_node_config_info{mesh,generation}
	ConfigReloads       *prometheus.CounterVec // peermesh_node_config_reloads_total{result}
	ConfigLastSuccess   prometheus.Gauge       // peermesh_node_config_last_reload_success_timestamp_seconds
	BuildInfo           *prometheus.GaugeVec   // peermesh_node_build_info{version}

	collectors []prometheus.Collector
	names      []string

	// Children resolved at construction, for the hot-path helpers.
	packetsSent, packetsReceived, bytesSent, bytesReceived [256]prometheus.Counter
	channels                                               [3][2]prometheus.Gauge // [direction][trusted]
	opened                                                 [3]prometheus.Counter  // [direction]
	closed, dropped, rejected, reloads                     map[string]prometheus.Counter
	denials                                                map[string][2]prometheus.Counter // [enforced, audit]
	handshakes                                             map[string][3]prometheus.Counter // [success, failure, timeout]

	configMu     sync.Mutex // serialises SetConfig
	configLabels []string   // the series of ConfigInfo set to 1, nil if none
}

// New returns the node's metrics registered on reg. It fails, registering
// nothing, if any of them is already registered there (for example by a
// second New on the same registry). A nil reg registers nothing, for code
// paths that want the helpers without exporting anything.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := build()
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("metrics: registering %s: %w", m.names[i], err)
		}
	}
	return m, nil
}

// Names returns the name of every metric family New registers, sorted.
func Names() []string {
	names := slices.Clone(build().names)
	slices.Sort(names)
	return names
}

// build creates every collector and resolves the children the helpers use.
func build() *Metrics {
	m := &Metrics{}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		m.add(name, g)
		return g
	}
	gaugeVec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		m.add(name, g)
		return g
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.add(name, c)
		return c
	}

	m.KnownPeers = gauge("peermesh_node_known_peers",
		"Number of peers in the node's known-peers table.")
	m.Channels = gaugeVec("peermesh_node_channels",
		"Number of open peer channels, by direction and whether the peer is trusted.",
		"direction", "trusted")
	m.InboundQueueDepth = gauge("peermesh_node_inbound_queue_depth",
		"Number of inbound peers waiting in the incoming queue (placement Queue or QueueAndEvent).")
	m.ChannelsOpened = counterVec("peermesh_node_channels_opened_total",
		"Peer channels opened, by direction.", "direction")
	m.ChannelsClosed = counterVec("peermesh_node_channels_closed_total",
		"Peer channels closed, by reason.", "reason")
	m.PacketsSent = counterVec("peermesh_node_packets_sent_total",
		"Packets sent to peers, by packet type.", "type")
	m.PacketsReceived = counterVec("peermesh_node_packets_received_total",
		"Packets received from peers, by packet type.", "type")
	m.BytesSent = counterVec("peermesh_node_bytes_sent_total",
		"Bytes of frames sent to peers, headers included, by packet type.", "type")
	m.BytesReceived = counterVec("peermesh_node_bytes_received_total",
		"Bytes of frames received from peers, headers included, by packet type.", "type")
	m.PacketsDropped = counterVec("peermesh_node_packets_dropped_total",
		"Received packets dropped without reaching a handler, by reason.", "reason")
	m.ConnectionsRejected = counterVec("peermesh_node_connections_rejected_total",
		"Connections refused at accept or after the peer's Hello, by reason.", "reason")
	m.TrustHandshakes = counterVec("peermesh_node_trust_handshakes_total",
		"Trust protocol handshakes completed, by protocol and result.", "protocol", "result")
	m.PolicyDenials = counterVec("peermesh_node_policy_denials_total",
		"Trust policy denials at any stage, by reason and whether they were enforced or only audited.",
		"reason", "mode")
	m.RTT = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "peermesh_node_rtt_seconds",
		Help:    "Round-trip times to peers measured by keepalive pings.",
		Buckets: RTTBuckets(),
	})
	m.add("peermesh_node_rtt_seconds", m.RTT)
	m.ConfigInfo = gaugeVec("peermesh_node_config_info",
		"The configuration the node applies: 1 for its mesh and generation.", "mesh", "generation")
	m.ConfigReloads = counterVec("peermesh_node_config_reloads_total",
		"Configuration reloads, by result (success, invalid, error).", "result")
	m.ConfigLastSuccess = gauge("peermesh_node_config_last_reload_success_timestamp_seconds",
		"Unix time of the last configuration reload that was applied.")
	m.BuildInfo = gaugeVec("peermesh_node_build_info",
		"Always 1, labelled with the peernode version.", "version")

	for i := range 256 {
		t := wire.Type(i)
		l := TypeLabel(t)
		m.packetsSent[t] = m.PacketsSent.WithLabelValues(l)
		m.packetsReceived[t] = m.PacketsReceived.WithLabelValues(l)
		m.bytesSent[t] = m.BytesSent.WithLabelValues(l)
		m.bytesReceived[t] = m.BytesReceived.WithLabelValues(l)
	}
	for _, d := range directions {
		m.opened[d] = m.ChannelsOpened.WithLabelValues(d.String())
		m.channels[d][0] = m.Channels.WithLabelValues(d.String(), "false")
		m.channels[d][1] = m.Channels.WithLabelValues(d.String(), "true")
	}
	m.closed = children(m.ChannelsClosed, closeReasons)
	m.dropped = children(m.PacketsDropped, dropReasons)
	m.rejected = children(m.ConnectionsRejected, rejectReasons)
	m.reloads = children(m.ConfigReloads, reloadResults)
	m.denials = make(map[string][2]prometheus.Counter, len(policyReasons))
	for _, r := range policyReasons {
		m.denials[r] = [2]prometheus.Counter{
			m.PolicyDenials.WithLabelValues(r, ModeEnforced),
			m.PolicyDenials.WithLabelValues(r, ModeAudit),
		}
	}
	m.handshakes = make(map[string][3]prometheus.Counter, len(trustProtocols))
	for _, p := range trustProtocols {
		var c [3]prometheus.Counter
		for i, r := range handshakeResult {
			c[i] = m.TrustHandshakes.WithLabelValues(p, r)
		}
		m.handshakes[p] = c
	}
	m.BuildInfo.WithLabelValues(version.Version).Set(1)
	return m
}

func (m *Metrics) add(name string, c prometheus.Collector) {
	m.names = append(m.names, name)
	m.collectors = append(m.collectors, c)
}

// children creates the series of v for each value, at zero.
func children(v *prometheus.CounterVec, values []string) map[string]prometheus.Counter {
	out := make(map[string]prometheus.Counter, len(values))
	for _, val := range values {
		out[val] = v.WithLabelValues(val)
	}
	return out
}

// lookup returns the child for value, or v's Other child (created on first
// use) for a value outside the documented set.
func lookup(children map[string]prometheus.Counter, v *prometheus.CounterVec, value string) prometheus.Counter {
	if c, ok := children[value]; ok {
		return c
	}
	return v.WithLabelValues(Other)
}

// PacketSent counts one packet of type t sent, in a frame of n bytes.
func (m *Metrics) PacketSent(t wire.Type, n int) {
	m.packetsSent[t].Inc()
	m.bytesSent[t].Add(float64(n))
}

// PacketReceived counts one packet of type t received, in a frame of n
// bytes, whether or not it is then dropped.
func (m *Metrics) PacketReceived(t wire.Type, n int) {
	m.packetsReceived[t].Inc()
	m.bytesReceived[t].Add(float64(n))
}

// PacketDropped counts a received packet dropped for reason (a Drop*
// constant).
func (m *Metrics) PacketDropped(reason string) {
	lookup(m.dropped, m.PacketsDropped, reason).Inc()
}

// ConnectionRejected counts a connection refused for reason: a gate
// Decision's Reason or a Reject* constant.
func (m *Metrics) ConnectionRejected(reason string) {
	lookup(m.rejected, m.ConnectionsRejected, reason).Inc()
}

// PolicyDenied counts d if it is a denial: Deny as enforced, AuditDeny as
// audit. It ignores Allow, so callers can pass every decision.
func (m *Metrics) PolicyDenied(d peernode.Decision) {
	var mode int
	switch d.Verdict {
	case peernode.Deny:
		mode = 0
	case peernode.AuditDeny:
		mode = 1
	default:
		return
	}
	if c, ok := m.denials[d.Reason]; ok {
		c[mode].Inc()
		return
	}
	m.PolicyDenials.WithLabelValues(Other, [2]string{ModeEnforced, ModeAudit}[mode]).Inc()
}

// ChannelOpened counts a channel opened in direction dir, untrusted.
func (m *Metrics) ChannelOpened(dir peernode.Direction) {
	if !validDirection(dir) {
		return
	}
	m.opened[dir].Inc()
	m.channels[dir][0].Inc()
}

// ChannelTrusted moves an open channel of direction dir from untrusted to
// trusted, once its trust protocol succeeded.
func (m *Metrics) ChannelTrusted(dir peernode.Direction) {
	if !validDirection(dir) {
		return
	}
	m.channels[dir][0].Dec()
	m.channels[dir][1].Inc()
}

// ChannelClosed counts a channel of direction dir, trusted or not, closed
// for reason (a CloseReason's Label).
func (m *Metrics) ChannelClosed(dir peernode.Direction, trusted bool, reason string) {
	if validDirection(dir) {
		m.channels[dir][b2i(trusted)].Dec()
	}
	lookup(m.closed, m.ChannelsClosed, reason).Inc()
}

func validDirection(d peernode.Direction) bool {
	return d == peernode.Inbound || d == peernode.Outbound
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TrustHandshake counts a handshake of protocol (a TrustProtocol's Name)
// with result HandshakeSuccess, HandshakeFailure or HandshakeTimeout.
func (m *Metrics) TrustHandshake(protocol, result string) {
	i := slices.Index(handshakeResult, result)
	c, ok := m.handshakes[protocol]
	if i < 0 || !ok {
		m.TrustHandshakes.WithLabelValues(otherUnless(ok, protocol), otherUnless(i >= 0, result)).Inc()
		return
	}
	c[i].Inc()
}

// TrustHandshakeDone counts a handshake of protocol from the error
// TrustProtocol.Run returned: nil is a success, an error wrapping
// context.DeadlineExceeded (the handshake timeout) a timeout, anything
// else a failure.
func (m *Metrics) TrustHandshakeDone(protocol string, err error) {
	switch {
	case err == nil:
		m.TrustHandshake(protocol, HandshakeSuccess)
	case errors.Is(err, context.DeadlineExceeded):
		m.TrustHandshake(protocol, HandshakeTimeout)
	default:
		m.TrustHandshake(protocol, HandshakeFailure)
	}
}

func otherUnless(known bool, v string) string {
	if known {
		return v
	}
	return Other
}

// ObserveRTT records a measured round-trip time.
func (m *Metrics) ObserveRTT(d time.Duration) {
	m.RTT.Observe(d.Seconds())
}

// SetConfig records the configuration the node now applies: the series
// config_info{mesh, generation} is 1 and the previous one is deleted, so
// that exactly one series exists. Safe for concurrent use.
func (m *Metrics) SetConfig(mesh, generation string) {
	m.configMu.Lock()
	defer m.configMu.Unlock()
	if m.configLabels != nil {
		m.ConfigInfo.DeleteLabelValues(m.configLabels...)
	}
	m.configLabels = []string{mesh, generation}
	m.ConfigInfo.WithLabelValues(mesh, generation).Set(1)
}

// ConfigReload counts a reload with result ReloadSuccess, ReloadInvalid or
// ReloadError; a success also sets the last-success timestamp to now.
func (m *Metrics) ConfigReload(result string) {
	lookup(m.reloads, m.ConfigReloads, result).Inc()
	if result == ReloadSuccess {
		m.ConfigLastSuccess.SetToCurrentTime()
	}
}
