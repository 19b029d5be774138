/*
Copyright 2026 The peermesh Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Defaults of the API. The CRD's +kubebuilder:default markers repeat the
// policy ones; the envtest suite checks that the API server and
// DefaultPolicySpec agree.
const (
	DefaultMode                        = PolicyModeEnforce
	DefaultPlacement                   = IncomingPlacementEvent
	DefaultAllowDefaultCommunication   = true
	DefaultAllowEnhancedPacketExchange = false
	DefaultRunDefaultTrustProtocol     = true
	DefaultTrustProtocolType           = TrustProtocolPing
	DefaultSharedKeySecretKey          = "key"

	DefaultMaxInboundPeers  int32 = 256
	DefaultMaxOutboundPeers int32 = 256
	DefaultHandshakeTimeout       = 10 * time.Second
	DefaultIdleTimeout            = 5 * time.Minute

	// DefaultMaxFrameSize is the wire protocol's default maximum frame
	// payload (docs/protocol.md).
	DefaultMaxFrameSize      int32 = 4 << 20
	DefaultSendQueueLength   int32 = 256
	DefaultKeepaliveInterval       = 30 * time.Second
)

// Bounds of the limits, shared by the CRD markers and Validate.
const (
	MaxPeersLimit           int32 = 65536
	MaxHandshakeTimeout           = 5 * time.Minute
	MaxIdleTimeout                = 24 * time.Hour
	MinFrameSizeLimit       int32 = 64 << 10
	MaxFrameSizeLimit       int32 = 64 << 20
	MaxSendQueueLengthLimit int32 = 65536
)

// DefaultPolicySpec returns the spec the API server stores for a policy
// that sets only meshName: the built-in behaviour of a mesh without policy.
func DefaultPolicySpec(meshName string) PeerTrustPolicySpec {
	s := PeerTrustPolicySpec{MeshName: meshName}
	s.Default()
	return s
}

// Default sets the fields the API server would default, for specs built in
// Go (tests, or objects not read back from the API server).
func (s *PeerTrustPolicySpec) Default() {
	if s.Mode == "" {
		s.Mode = DefaultMode
	}
	in := &s.Incoming
	if in.Placement == "" {
		in.Placement = DefaultPlacement
	}
	defaultBool(&in.AllowDefaultCommunication, DefaultAllowDefaultCommunication)
	defaultBool(&in.AllowEnhancedPacketExchange, DefaultAllowEnhancedPacketExchange)
	defaultBool(&in.RunDefaultTrustProtocol, DefaultRunDefaultTrustProtocol)
	if in.TrustProtocol.Type == "" {
		in.TrustProtocol.Type = DefaultTrustProtocolType
	}
	if ref := in.TrustProtocol.SharedKeySecretRef; ref != nil && ref.Key == "" {
		ref.Key = DefaultSharedKeySecretKey
	}
	s.Limits.Default()
}

// Default sets the unset limits to their defaults.
func (l *PeerLimits) Default() {
	if l.MaxInboundPeers == nil {
		l.MaxInboundPeers = ptr.To(DefaultMaxInboundPeers)
	}
	if l.MaxOutboundPeers == nil {
		l.MaxOutboundPeers = ptr.To(DefaultMaxOutboundPeers)
	}
	defaultDuration(&l.HandshakeTimeout, DefaultHandshakeTimeout)
	defaultDuration(&l.IdleTimeout, DefaultIdleTimeout)
}

func defaultBool(p **bool, v bool) {
	if *p == nil {
		*p = ptr.To(v)
	}
}

func defaultDuration(p **metav1.Duration, d time.Duration) {
	if *p == nil {
		*p = &metav1.Duration{Duration: d}
	}
}
