// Package admin serves a node's admin HTTP endpoints: /healthz, /readyz,
// /metrics, /debug/peers, /debug/config, /debug/explain, and the
// POST /v1/send endpoint the peernode CLI uses to send messages. It binds
// loopback by default: the endpoints can send on the node's behalf.
package admin
