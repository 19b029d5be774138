package trust

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/peermesh/peermesh/peernode"
)

// ErrUnknownProtocol is wrapped by ProtocolByName, and by the function
// Resolver returns, for a trust protocol name the resolver cannot run: a
// name this build does not implement, or "sharedKey" without a key.
var ErrUnknownProtocol = errors.New("trust: unknown trust protocol")

// builtins maps the lower-case name of each built-in trust protocol to it.
// The protocols are stateless values, safe for concurrent use, so one
// instance serves every channel. Adding a key-less protocol is one line
// here; protocols that need key material are built by Resolver.
var builtins = map[string]peernode.TrustProtocol{
	ProtocolNone: None{},
	ProtocolPing: Ping{},
}

// errSharedKeyNeedsKey explains why "sharedKey" cannot be resolved without a
// key, naming the configuration field that provides one.
var errSharedKeyNeedsKey = fmt.Errorf("%w %q: sharedKey needs a key: set incoming.trustProtocol.sharedKeyFile "+
	"(outside Kubernetes) or sharedKeySecretRef (in Kubernetes mode)", ErrUnknownProtocol, ProtocolSharedKey)

// ProtocolByName returns the built-in trust protocol called name, one that
// needs no key ("none", "ping"). Names are matched case-insensitively, so
// the CRD's enum values (None, Ping) and the wire names (none, ping) both
// work. Any other name, "sharedKey" included (it needs a key: see
// Resolver), gives an error wrapping ErrUnknownProtocol.
func ProtocolByName(name string) (peernode.TrustProtocol, error) {
	if p, ok := builtins[strings.ToLower(name)]; ok {
		return p, nil
	}
	if strings.EqualFold(name, ProtocolSharedKey) {
		return nil, errSharedKeyNeedsKey
	}
	return nil, fmt.Errorf("%w %q (this build has: %s)", ErrUnknownProtocol, name, strings.Join(append(ProtocolNames(), ProtocolSharedKey), ", "))
}

// Resolver returns a resolver for node.Config.TrustProtocols: the built-ins
// of ProtocolByName and, for "sharedKey" (case-insensitive), one SharedKey
// built from sharedKey, shared by every channel. With an empty sharedKey,
// "sharedKey" resolves to an error wrapping ErrUnknownProtocol that says
// which field provides the key; with a key shorter than MinSharedKeySize,
// to NewSharedKey's error. The caller may reuse sharedKey afterwards: the
// SharedKey keeps its own copy.
func Resolver(sharedKey []byte) func(name string) (peernode.TrustProtocol, error) {
	var sk *SharedKey
	skErr := errSharedKeyNeedsKey
	if len(sharedKey) > 0 {
		if sk, skErr = NewSharedKey(sharedKey); skErr != nil {
			skErr = fmt.Errorf("trust protocol %q: %w", ProtocolSharedKey, skErr)
		}
	}
	return func(name string) (peernode.TrustProtocol, error) {
		if !strings.EqualFold(name, ProtocolSharedKey) {
			return ProtocolByName(name)
		}
		if skErr != nil {
			return nil, skErr
		}
		return sk, nil
	}
}

// ProtocolNames returns the names of the key-less built-in trust protocols
// (those ProtocolByName returns), sorted.
func ProtocolNames() []string {
	names := make([]string, 0, len(builtins))
	for _, p := range builtins {
		names = append(names, p.Name())
	}
	slices.Sort(names)
	return names
}

// None is the trust protocol that trusts every peer at once, without sending
// anything. Use it where the network itself is trusted (tests, a private
// link); it carries no proof of any kind.
type None struct{}

var _ peernode.TrustProtocol = None{}

// Name returns "none".
func (None) Name() string { return ProtocolNone }

// Run returns nil: the peer is trusted.
func (None) Run(context.Context, peernode.TrustSession) error { return nil }
