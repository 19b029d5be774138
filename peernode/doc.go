// Package peernode holds the small interfaces and value types of a peermesh
// node: Peer, Channel, Handler, TrustProtocol, Gater and Discoverer. They
// carry the concepts of P2PNet's peer layer (IPeer, PeerChannel,
// PacketHandleProtocol, IncomingPeerTrustPolicy) into Go.
//
// Implementations live in sub-packages: wire (the framed binary protocol),
// channel (one PeerChannel per TCP connection), trust (the policy gate and
// the trust protocols), node (the PeerNetwork: listener, tables, dialing,
// placement, reaper), metrics and admin. peernodetest holds test helpers.
package peernode
