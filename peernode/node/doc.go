// Package node is the peermesh node (P2PNet's PeerNetwork): a TCP listener
// on a fixed address, one channel.PeerChannel per connection, the tables of
// known peers and active channels, incoming peer placement (queue, event or
// both), dialing with capped exponential backoff and jitter, the handler
// registry with defaults for every packet type, the trust gate and its live
// policy, hard caps on inbound and outbound channels, and the reaper.
//
// A Node is built with New (which binds the listener, so its address is known
// at once) and runs with Run until its context ends; Run joins every
// goroutine it started before returning.
package node
