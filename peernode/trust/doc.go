// Package trust implements peermesh's trust policy as a pure connection
// gate and the trust protocols that make a peer trusted.
//
// It carries over P2PNet's IncomingPeerTrustPolicy (AllowDefaultCommunication,
// AllowEnhancedPacketExchange, RunDefaultTrustProtocol), its BlockedIPs and
// BlockedIdentifiers lists, and adds what the original lacks: CIDR rules with
// exceptions, allowlists, an audit mode, and a named cause for every denial.
//
// # Policy and Gate
//
// A Policy is the compiled, immutable form of a node's configuration (see
// PolicyFromConfig). A Gate implements peernode.Gater over the Policy in
// force; Swap replaces it atomically while channels keep running, so a
// configuration change is enforced without restarting anything. The gate is
// asked at three stages, as libp2p's ConnectionGater is:
//
//   - InterceptAccept, when the listener accepts a TCP connection and before
//     anything is read: blocked CIDRs and the fail-closed state are judged
//     here, because they need only the source address. Allowlists are not:
//     an identifier allowlist can only be judged once the peer's Hello has
//     named it, and judging the CIDR half early would give two different
//     answers for one peer.
//   - InterceptPeer, once the Hello has named the peer, and again for every
//     open channel after a Swap: block lists (identifier, then CIDR), then
//     the allowlists. Block beats allow.
//   - InterceptPacket, for every packet of an open channel: P2PNet's
//     trust gating, a table lookup that never allocates.
//
// In Audit mode every Deny becomes AuditDeny with the same reason and rule:
// the caller counts and logs the would-be denial, then admits.
//
// # Which address is matched
//
// CIDR rules match the source address of the TCP connection, with
// IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) unmapped first so that they
// match IPv4 rules. Behind SNAT or a proxy that is the translating hop's
// address, not the peer's: prefer identifier rules (in Kubernetes the
// operator resolves podSelector entries to both), and use CIDRs for
// networks, not for individual workloads behind NAT.
//
// # Allowlists apply in both directions
//
// When an allowlist is active, a peer that matches no allow rule is denied
// with reason not_allowlisted, whichever side dialed: every node of a mesh
// applies the same configuration, and discovery reports every endpoint of
// the mesh's Service, listed or not, so a peer the allowlists leave out must
// not end up connected because a listed node dialed it. Outbound peers are
// judged once their Hello names them (the dial itself goes ahead). Block
// lists apply in both directions too. Only fail-closed (no configuration
// yet) spares outbound peers, so that a waiting node can reach its seeds.
//
// # Trust gating
//
// A trusted peer may send every packet type. An untrusted peer (the trust
// protocol has not succeeded, or does not run) is gated by packet class:
//
//   - trust packets (0x10-0x1F) always pass: they are how a peer becomes
//     trusted;
//   - default communication (Message, Disconnect, Ping, Pong) passes iff
//     AllowDefaultCommunication, else reason untrusted_default_communication;
//   - enhanced exchange (a Hello after the handshake, PeerGroup, Data, the
//     data-distribution range 0x20-0x3F, application types 0x80-0xFF, and
//     every reserved or unassigned type) passes iff
//     AllowEnhancedPacketExchange, else reason untrusted_enhanced_exchange.
//
// The first Hello of a channel is part of the handshake, not a packet of an
// open channel: the channel layer must not ask InterceptPacket about it.
//
// # Trust protocols
//
// ProtocolByName returns the key-less built-in protocols by
// (case-insensitive) name: "none" trusts the peer at once, "ping" is
// P2PNet's default protocol made fast: each side sends three
// Trust{Protocol: "ping", Step: 1..3, Body: "Ping from <id>"} packets at
// once and must receive the peer's three, in order. Like the original, ping
// proves liveness only, not identity: any peer that can speak the protocol
// becomes trusted.
//
// SharedKey ("sharedKey") is a mutual HMAC-SHA256 challenge-response that
// proves each side holds the mesh's key. It needs the key, so it is not in
// ProtocolByName: Resolver(key) returns the resolver a node is configured
// with (node.Config.TrustProtocols), which serves the built-ins and a
// SharedKey. Policy.Validate checks only that a protocol is named; the node
// asks its resolver whether it can run it before installing a policy.
package trust
