// Package discovery implements peernode.Discoverer: the ways a node finds
// candidate peers before peer exchange (PeerGroup packets, handled by the
// node itself) takes over.
//
//   - Static reports a fixed list of "host:port" seeds once.
//   - DNS resolves the name of a headless Kubernetes Service (A/AAAA records
//     plus a port, or SRV records) periodically, with jitter, and reports the
//     full address set whenever it changes. A failed lookup keeps the last
//     good set; an authoritative "no such name / no records" answer reports
//     the empty set.
//   - LAN announces the node over UDP multicast and reports the peers heard
//     within a TTL, for use outside Kubernetes (P2PNet's LAN discovery).
//
// Every discoverer calls its update callback from the goroutine that called
// Run, never concurrently, with a fresh sorted slice it does not keep. Run
// returns nil once ctx ends, after every goroutine it started has returned.
// docs/discovery.md describes the behaviour and the LAN datagram byte by
// byte.
package discovery
