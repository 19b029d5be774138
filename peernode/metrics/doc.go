// Package metrics holds the Prometheus collectors of a peernode, prefix
// peermesh_node_, as fixed by the project's design brief: the Grafana
// dashboard and the alert rules query exactly these names.
//
// The collectors are fields of a Metrics struct that New registers on an
// injected prometheus.Registerer; nothing is registered in init() or held in
// package variables, so tests and several nodes in one process each get
// their own.
//
// # Cardinality
//
// No metric has a per-peer label. Every label takes values from a fixed set
// known at construction: packet types collapse to their names for the
// built-in types, "application" for 0x80-0xFF and "unknown" for the rest;
// reasons, protocols and results outside the documented sets are counted
// under "other". All documented combinations are created at zero by New, as
// Prometheus recommends, so dashboards and rate() see them before the first
// event.
//
// # Hot path
//
// The helpers called per packet or per connection (PacketSent,
// PacketReceived, PacketDropped, ConnectionRejected, PolicyDenied,
// ObserveRTT, the Channel* helpers and TrustHandshake) do not allocate and
// do not resolve label values through a metric vector: the children are
// resolved once by New into arrays indexed by packet type or direction, or
// maps keyed by the bounded reason strings. They are safe for concurrent
// use.
//
// # Counting rules for the node
//
//   - policy_denials_total counts every gate decision that denied, at any
//     stage (accept, identity, packet), with mode="enforced" for
//     peernode.Deny and mode="audit" for peernode.AuditDeny: call
//     PolicyDenied with every Decision, it ignores Allow.
//   - connections_rejected_total counts connections the node actually
//     refused, for policy reasons (the gate's Reason) or others (capacity,
//     self connection, duplicate, mesh mismatch, failed handshake). An
//     enforced policy denial at accept is therefore counted in both; an
//     audited one only in policy_denials_total.
//   - packets_dropped_total counts received packets that no handler saw.
//   - bytes are frame sizes, header included, so that they add up to what
//     crossed the socket.
package metrics
