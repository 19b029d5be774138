package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/peermesh/peermesh/internal/version"
	"github.com/peermesh/peermesh/peernode"
	"github.com/peermesh/peermesh/peernode/metrics"
	"github.com/peermesh/peermesh/peernode/wire"
)

func newMetrics(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// wantNames is the list of design.md, written out so that a rename is a
// deliberate change of this test (and of the dashboard).
var wantNames = []string{
	"peermesh_node_build_info",
	"peermesh_node_bytes_received_total",
	"peermesh_node_bytes_sent_total",
	"peermesh_node_channels",
	"peermesh_node_channels_closed_total",
	"peermesh_node_channels_opened_total",
	"peermesh_node_config_info",
	"peermesh_node_config_last_reload_success_timestamp_seconds",
	"peermesh_node_config_reloads_total",
	"peermesh_node_connections_rejected_total",
	"peermesh_node_inbound_queue_depth",
	"peermesh_node_known_peers",
	"peermesh_node_packets_dropped_total",
	"peermesh_node_packets_received_total",
	"peermesh_node_packets_sent_total",
	"peermesh_node_policy_denials_total",
	"peermesh_node_rtt_seconds",
	"peermesh_node_trust_handshakes_total",
}

func TestNamesAndLint(t *testing.T) {
	m, reg := newMetrics(t)
	m.SetConfig("prod", "sha256:1")
	if got := metrics.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("Names() =\n%q\nwant\n%q", got, wantNames)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var gathered []string
	for _, mf := range mfs {
		gathered = append(gathered, mf.GetName())
	}
	if !slices.Equal(gathered, wantNames) {
		t.Errorf("gathered families =\n%q\nwant\n%q", gathered, wantNames)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestPreinitialized checks that the series dashboards need exist at zero.
func TestPreinitialized(t *testing.T) {
	_, reg := newMetrics(t)
	types := len(wire.KnownTypes()) + 5 + 2 // + the 5 file-transfer types, application, unknown
	want := map[string]int{
		"peermesh_node_known_peers":                                  1,
		"peermesh_node_channels":                                     4,
		"peermesh_node_inbound_queue_depth":                          1,
		"peermesh_node_channels_opened_total":                        2,
		"peermesh_node_channels_closed_total":                        len(metrics.CloseReasons()),
		"peermesh_node_packets_sent_total":                           types,
		"peermesh_node_packets_received_total":                       types,
		"peermesh_node_bytes_sent_total":                             types,
		"peermesh_node_bytes_received_total":                         types,
		"peermesh_node_packets_dropped_total":                        7,
		"peermesh_node_connections_rejected_total":                   10,
		"peermesh_node_trust_handshakes_total":                       9,
		"peermesh_node_policy_denials_total":                         12,
		"peermesh_node_rtt_seconds":                                  1,
		"peermesh_node_config_info":                                  0,
		"peermesh_node_config_reloads_total":                         3,
		"peermesh_node_build_info":                                   1,
		"peermesh_node_config_last_reload_success_timestamp_seconds": 1,
	}
	for name, n := range want {
		got, err := testutil.GatherAndCount(reg, name)
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Errorf("%s: %d series, want %d", name, got, n)
		}
	}
	if len(metrics.CloseReasons()) != 13 {
		t.Errorf("CloseReasons() has %d values, want the 13 peernode.Close* labels", len(metrics.CloseReasons()))
	}
}

func TestPackets(t *testing.T) {
	m, _ := newMetrics(t)
	m.PacketSent(wire.TypeData, 100)
	m.PacketSent(wire.TypeData, 50)
	m.PacketReceived(wire.TypePing, 24)
	m.PacketReceived(0x80, 10) // application
	m.PacketReceived(0xFE, 10) // application
	m.PacketReceived(0x30, 7)  // data range, not defined yet
	m.PacketReceived(0x21, 5)  // FileChunk
	m.PacketReceived(0x00, 8)  // invalid
	m.PacketSent(0x42, 9)      // reserved
	tests := []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.PacketsSent.WithLabelValues("Data"), 2},
		{m.BytesSent.WithLabelValues("Data"), 150},
		{m.PacketsReceived.WithLabelValues("Ping"), 1},
		{m.BytesReceived.WithLabelValues("Ping"), 24},
		{m.PacketsReceived.WithLabelValues("application"), 2},
		{m.BytesReceived.WithLabelValues("application"), 20},
		{m.PacketsReceived.WithLabelValues("unknown"), 2},
		{m.BytesReceived.WithLabelValues("unknown"), 15},
		{m.PacketsSent.WithLabelValues("unknown"), 1},
		{m.PacketsSent.WithLabelValues("Hello"), 0},
		{m.BytesReceived.WithLabelValues("FileChunk"), 5},
	}
	for i, tt := range tests {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("case %d: %v, want %v", i, got, tt.want)
		}
	}
	if l := metrics.TypeLabel(wire.TypeFileChunk); l != "FileChunk" {
		t.Errorf("file chunks are labelled %q, want FileChunk", l)
	}
	for i := range 256 {
		typ := wire.Type(i)
		l := metrics.TypeLabel(typ)
		switch {
		case typ.IsNamed() && l != typ.String(),
			typ.IsApplication() && l != metrics.TypeApplication,
			!typ.IsNamed() && !typ.IsApplication() && l != metrics.TypeUnknown:
			t.Errorf("TypeLabel(%v) = %q", typ, l)
		}
	}
}

func TestReasons(t *testing.T) {
	m, reg := newMetrics(t)
	m.PacketDropped(metrics.DropQueueFull)
	m.PacketDropped(metrics.DropQueueFull)
	m.PacketDropped("made_up")
	m.ConnectionRejected(peernode.ReasonBlockedCIDR)
	m.ConnectionRejected(metrics.RejectCapacityInbound)
	m.ConnectionRejected("made_up")

	m.PolicyDenied(peernode.Decision{Verdict: peernode.Allow, Reason: ""})
	m.PolicyDenied(peernode.Decision{Verdict: peernode.Deny, Reason: peernode.ReasonNotAllowlisted})
	m.PolicyDenied(peernode.Decision{Verdict: peernode.AuditDeny, Reason: peernode.ReasonNotAllowlisted})
	m.PolicyDenied(peernode.Decision{Verdict: peernode.AuditDeny, Reason: peernode.ReasonUntrustedEnhanced})
	m.PolicyDenied(peernode.Decision{Verdict: peernode.Deny, Reason: "made_up"})

	m.TrustHandshakeDone("ping", nil)
	m.TrustHandshakeDone("ping", fmt.Errorf("%w: %w", peernode.ErrTrustFailed, context.DeadlineExceeded))
	m.TrustHandshakeDone("ping", peernode.ErrTrustFailed)
	m.TrustHandshake("none", metrics.HandshakeSuccess)
	m.TrustHandshake("made_up", metrics.HandshakeSuccess)
	m.TrustHandshake("ping", "made_up")

	tests := []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.PacketsDropped.WithLabelValues("queue_full"), 2},
		{m.PacketsDropped.WithLabelValues("other"), 1},
		{m.ConnectionsRejected.WithLabelValues("blocked_cidr"), 1},
		{m.ConnectionsRejected.WithLabelValues("capacity_inbound"), 1},
		{m.ConnectionsRejected.WithLabelValues("other"), 1},
		{m.PolicyDenials.WithLabelValues("not_allowlisted", "enforced"), 1},
		{m.PolicyDenials.WithLabelValues("not_allowlisted", "audit"), 1},
		{m.PolicyDenials.WithLabelValues("untrusted_enhanced_exchange", "audit"), 1},
		{m.PolicyDenials.WithLabelValues("untrusted_enhanced_exchange", "enforced"), 0},
		{m.PolicyDenials.WithLabelValues("other", "enforced"), 1},
		{m.TrustHandshakes.WithLabelValues("ping", "success"), 1},
		{m.TrustHandshakes.WithLabelValues("ping", "timeout"), 1},
		{m.TrustHandshakes.WithLabelValues("ping", "failure"), 1},
		{m.TrustHandshakes.WithLabelValues("none", "success"), 1},
		{m.TrustHandshakes.WithLabelValues("other", "success"), 1},
		{m.TrustHandshakes.WithLabelValues("ping", "other"), 1},
	}
	for i, tt := range tests {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("case %d: %v, want %v", i, got, tt.want)
		}
	}
	// No label value outside the documented sets and Other.
	n, err := testutil.GatherAndCount(reg, "peermesh_node_policy_denials_total")
	if err != nil {
		t.Fatal(err)
	}
	if n != 13 {
		t.Errorf("policy_denials_total has %d series, want 12 + other", n)
	}
}

func TestChannels(t *testing.T) {
	m, _ := newMetrics(t)
	m.ChannelOpened(peernode.Inbound)
	m.ChannelOpened(peernode.Inbound)
	m.ChannelOpened(peernode.Outbound)
	m.ChannelTrusted(peernode.Inbound)
	m.ChannelClosed(peernode.Inbound, true, peernode.CloseIdleTimeout)
	m.ChannelClosed(peernode.Outbound, false, peernode.ClosePolicy)
	m.ChannelOpened(0) // ignored: no such direction
	m.ChannelClosed(0, false, "made_up")
	tests := []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.ChannelsOpened.WithLabelValues("inbound"), 2},
		{m.ChannelsOpened.WithLabelValues("outbound"), 1},
		{m.Channels.WithLabelValues("inbound", "false"), 1},
		{m.Channels.WithLabelValues("inbound", "true"), 0},
		{m.Channels.WithLabelValues("outbound", "false"), 0},
		{m.ChannelsClosed.WithLabelValues("idle_timeout"), 1},
		{m.ChannelsClosed.WithLabelValues("policy_denied"), 1},
		{m.ChannelsClosed.WithLabelValues("other"), 1},
	}
	for i, tt := range tests {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("case %d: %v, want %v", i, got, tt.want)
		}
	}
	m.KnownPeers.Set(7)
	m.InboundQueueDepth.Set(3)
	if testutil.ToFloat64(m.KnownPeers) != 7 || testutil.ToFloat64(m.InboundQueueDepth) != 3 {
		t.Error("gauges not set")
	}
}

func TestRTT(t *testing.T) {
	m, reg := newMetrics(t)
	m.ObserveRTT(100 * time.Microsecond)
	m.ObserveRTT(2 * time.Second)
	b := metrics.RTTBuckets()
	if len(b) != 18 || b[0] != 50e-6 || b[len(b)-1] < 4.99 || b[len(b)-1] > 5.01 {
		t.Errorf("RTTBuckets = %v", b)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "peermesh_node_rtt_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 2 || h.GetSampleSum() < 2.0001 || h.GetSampleSum() > 2.0002 {
				t.Errorf("histogram count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
			}
			return
		}
	}
	t.Error("rtt histogram not gathered")
}

func TestConfig(t *testing.T) {
	m, reg := newMetrics(t)
	m.ConfigReload(metrics.ReloadInvalid)
	if got := testutil.ToFloat64(m.ConfigLastSuccess); got != 0 {
		t.Errorf("last success = %v after an invalid reload, want 0", got)
	}
	before := float64(time.Now().Unix())
	m.SetConfig("prod", "g1")
	m.ConfigReload(metrics.ReloadSuccess)
	m.SetConfig("prod", "g2")
	m.ConfigReload(metrics.ReloadSuccess)
	m.ConfigReload(metrics.ReloadError)
	if got := testutil.ToFloat64(m.ConfigLastSuccess); got < before {
		t.Errorf("last success = %v, want >= %v", got, before)
	}
	if n, _ := testutil.GatherAndCount(reg, "peermesh_node_config_info"); n != 1 {
		t.Errorf("config_info has %d series, want 1", n)
	}
	if got := testutil.ToFloat64(m.ConfigInfo.WithLabelValues("prod", "g2")); got != 1 {
		t.Errorf("config_info{g2} = %v", got)
	}
	for result, want := range map[string]float64{"success": 2, "invalid": 1, "error": 1} {
		if got := testutil.ToFloat64(m.ConfigReloads.WithLabelValues(result)); got != want {
			t.Errorf("reloads{%s} = %v, want %v", result, got, want)
		}
	}
	if got := testutil.ToFloat64(m.BuildInfo.WithLabelValues(version.Version)); got != 1 {
		t.Errorf("build_info{version=%q} = %v", version.Version, got)
	}
}

func TestDoubleRegistration(t *testing.T) {
	_, reg := newMetrics(t)
	if _, err := metrics.New(reg); err == nil {
		t.Fatal("second New on the same registry succeeded")
	} else if are := (prometheus.AlreadyRegisteredError{}); !errors.As(err, &are) {
		t.Errorf("error %v does not wrap AlreadyRegisteredError", err)
	}
	// The first set is still registered and gathers cleanly.
	if n, err := testutil.GatherAndCount(reg, "peermesh_node_known_peers"); err != nil || n != 1 {
		t.Errorf("after failed New: %d series, %v", n, err)
	}
}

// TestFailedNewRegistersNothing makes a late collector clash and checks
// that the earlier ones were unregistered again.
func TestFailedNewRegistersNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "peermesh_node_build_info", Help: "x"})
	reg.MustRegister(clash)
	_, err := metrics.New(reg)
	if err == nil || !strings.Contains(err.Error(), "peermesh_node_build_info") {
		t.Fatalf("New error = %v, want a clash on build_info", err)
	}
	n, err := testutil.GatherAndCount(reg)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("registry holds %d series after a failed New, want only the clashing one", n)
	}
	if _, err := metrics.New(nil); err != nil {
		t.Errorf("New(nil): %v", err)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	m, _ := newMetrics(t)
	deny := peernode.Decision{Verdict: peernode.Deny, Reason: peernode.ReasonUntrustedEnhanced, Rule: "r"}
	audit := peernode.Decision{Verdict: peernode.AuditDeny, Reason: peernode.ReasonBlockedCIDR}
	tests := map[string]func(){
		"PacketSent":         func() { m.PacketSent(wire.TypeData, 1024) },
		"PacketReceived":     func() { m.PacketReceived(0x90, 64) },
		"PacketDropped":      func() { m.PacketDropped(metrics.DropPolicy) },
		"ConnectionRejected": func() { m.ConnectionRejected(peernode.ReasonBlockedCIDR) },
		"PolicyDenied":       func() { m.PolicyDenied(deny); m.PolicyDenied(audit) },
		"ObserveRTT":         func() { m.ObserveRTT(300 * time.Microsecond) },
		"Channels": func() {
			m.ChannelOpened(peernode.Outbound)
			m.ChannelTrusted(peernode.Outbound)
			m.ChannelClosed(peernode.Outbound, true, peernode.CloseRemote)
		},
		"TrustHandshake": func() { m.TrustHandshake("ping", metrics.HandshakeSuccess) },
	}
	for name, f := range tests {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}

func BenchmarkPacketReceived(b *testing.B) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m.PacketReceived(wire.TypeData, 64)
	}
}
