package trust

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/peermesh/peermesh/peernode"
)

// ErrUnknownProtocol is wrapped by ProtocolByName (and so by Validate and
// PolicyFromConfig) for a trust protocol name this build does not implement,
// including "SharedKey" until that protocol lands.
var ErrUnknownProtocol = errors.New("trust: unknown trust protocol")

// builtins maps the lower-case name of each built-in trust protocol to it.
// The protocols are stateless values, safe for concurrent use, so one
// instance serves every channel. Adding a protocol is one line here.
var builtins = map[string]peernode.TrustProtocol{
	ProtocolNone: None{},
	ProtocolPing: Ping{},
}

// ProtocolByName returns the built-in trust protocol called name. Names are
// matched case-insensitively, so the CRD's enum values (None, Ping) and the
// wire names (none, ping) both work. An unknown name gives an error wrapping
// ErrUnknownProtocol.
func ProtocolByName(name string) (peernode.TrustProtocol, error) {
	if p, ok := builtins[strings.ToLower(name)]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w %q (this build has: %s)", ErrUnknownProtocol, name, strings.Join(ProtocolNames(), ", "))
}

// ProtocolNames returns the names of the built-in trust protocols, sorted.
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
