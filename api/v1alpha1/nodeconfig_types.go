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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PeerNodeConfigurationKind is the kind of PeerNodeConfiguration documents.
const PeerNodeConfigurationKind = "PeerNodeConfiguration"

// ConfigMapKey is the key of the mesh ConfigMap ("peermesh-<mesh>") that
// holds the PeerNodeConfiguration YAML.
const ConfigMapKey = "config.yaml"

// PeerNodeConfiguration is the configuration a peernode applies: the
// compiled form of a mesh's PeerTrustPolicy and PeerAllowlists that the
// operator writes into the ConfigMap key ConfigMapKey, and the format of
// peernode's --config file.
//
// It is not a custom resource. It holds no secret: the SharedKey trust
// protocol's key is a reference that the node resolves itself.
//
// Fields that have defaults are pointers so that a file that leaves them out
// gets the default; after Default they are never nil.
type PeerNodeConfiguration struct {
	// apiVersion is p2p.peermesh.io/v1alpha1; kind is PeerNodeConfiguration.
	// Both may be left out of a file.
	metav1.TypeMeta `json:",inline"`

	// generation is the content hash of the configuration (Hash): nodes
	// report it in /debug/config and metrics, and the operator compares it
	// with the one it wrote to count nodes in sync. Default fills it when
	// empty. Nodes report the value they received and never recompute it,
	// so that nodes and operator of different versions still agree.
	// +optional
	Generation string `json:"generation,omitempty"`

	// meshName is the mesh the node belongs to: a DNS-1123 label. Empty in a
	// file means the node's --mesh flag decides; the operator always sets it.
	// +optional
	MeshName string `json:"meshName,omitempty"`

	// policySource is the PeerTrustPolicy compiled into mode, incoming,
	// limits and blocked; nil means the built-in defaults.
	// +optional
	PolicySource *PolicyReference `json:"policySource,omitempty"`

	// mode is Enforce or Audit (default Enforce).
	// +optional
	Mode PolicyMode `json:"mode,omitempty"`

	// incoming is the policy's incoming section.
	// +optional
	Incoming NodeIncoming `json:"incoming"`

	// blocked are the rules whose matching peers are denied. Block beats
	// allow.
	// +optional
	Blocked []PeerRule `json:"blocked,omitempty"`

	// allowlistActive is true when at least one allowlist applies to the
	// mesh: then peers matching no rule of allowed are denied. It is kept
	// apart from allowed so that an allowlist whose selectors match no pod
	// denies everyone rather than no one. Default sets it when allowed is
	// not empty.
	// +optional
	AllowlistActive bool `json:"allowlistActive,omitempty"`

	// allowed are the rules of every allowlist of the mesh, with pod
	// selectors resolved to identifiers and /32 or /128 CIDRs.
	// +optional
	Allowed []PeerRule `json:"allowed,omitempty"`

	// limits are the policy's limits plus node-local ones.
	// +optional
	Limits NodeLimits `json:"limits"`

	// discovery is node-local: the operator leaves it empty.
	// +optional
	Discovery *NodeDiscovery `json:"discovery,omitempty"`
}

// NodeIncoming is IncomingPolicy with the SharedKey reference made
// explicit (the Secret's namespace is the policy's).
type NodeIncoming struct {
	// placement is Queue, Event or QueueAndEvent (default Event).
	// +optional
	Placement IncomingPlacement `json:"placement,omitempty"`

	// allowDefaultCommunication lets untrusted peers send Message and
	// Disconnect packets (default true).
	// +optional
	AllowDefaultCommunication *bool `json:"allowDefaultCommunication,omitempty"`

	// allowEnhancedPacketExchange lets untrusted peers send Identity,
	// PeerGroup and Data packets (default false).
	// +optional
	AllowEnhancedPacketExchange *bool `json:"allowEnhancedPacketExchange,omitempty"`

	// runDefaultTrustProtocol runs the trust protocol on every new channel
	// (default true).
	// +optional
	RunDefaultTrustProtocol *bool `json:"runDefaultTrustProtocol,omitempty"`

	// trustProtocol selects the handshake.
	// +optional
	TrustProtocol NodeTrustProtocol `json:"trustProtocol"`
}

// NodeTrustProtocol selects the trust handshake and where its key is.
type NodeTrustProtocol struct {
	// type is None, Ping or SharedKey (default Ping).
	// +optional
	Type TrustProtocolType `json:"type,omitempty"`

	// sharedKeySecretRef is the Secret holding the SharedKey key; the node
	// reads it through the API. Set by the operator.
	// +optional
	SharedKeySecretRef *NamespacedSecretKeyReference `json:"sharedKeySecretRef,omitempty"`

	// sharedKeyFile is a file holding the SharedKey key, for nodes run
	// outside Kubernetes. Exactly one of sharedKeySecretRef and
	// sharedKeyFile is required with SharedKey.
	// +optional
	SharedKeyFile string `json:"sharedKeyFile,omitempty"`
}

// NamespacedSecretKeyReference names a key of a Secret.
type NamespacedSecretKeyReference struct {
	// namespace of the Secret.
	Namespace string `json:"namespace"`
	// name of the Secret.
	Name string `json:"name"`
	// key of the Secret's data (default "key").
	// +optional
	Key string `json:"key,omitempty"`
}

// PeerRule matches peers by exactly one of identifier or cidr, and says
// where it came from.
type PeerRule struct {
	// identifier matches the peer announcing this node identifier.
	// +optional
	Identifier PeerIdentifier `json:"identifier,omitempty"`

	// cidr matches peers whose source address is in this network.
	// +optional
	CIDR CIDR `json:"cidr,omitempty"`

	// except removes networks strictly inside cidr from it.
	// +optional
	Except []CIDR `json:"except,omitempty"`

	// source is the custom resource and entry the rule was compiled from,
	// so that a denial can name its cause. Rules written by hand in a file
	// may leave it out.
	// +optional
	Source *RuleSource `json:"source,omitempty"`
}

// Kinds of RuleSource.
const (
	SourceKindPeerTrustPolicy = "PeerTrustPolicy"
	SourceKindPeerAllowlist   = "PeerAllowlist"
	// SourceKindFile marks a rule from a node's --config file.
	SourceKindFile = "File"
)

// RuleSource is the provenance of a PeerRule.
type RuleSource struct {
	// kind is PeerTrustPolicy, PeerAllowlist or File.
	Kind string `json:"kind"`

	// namespace of the custom resource.
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// name of the custom resource.
	// +optional
	Name string `json:"name,omitempty"`

	// entry is the entry of the resource: an allowlist entry's name, or its
	// path when unnamed ("peers[3]"); for a policy, the path of the blocked
	// item ("blocked.cidrs[2]", "blocked.identifiers[0]"). Paths contain
	// '[', which names cannot, so the two never collide.
	// +optional
	Entry string `json:"entry,omitempty"`

	// pod is "namespace/name" of the pod a podSelector entry matched.
	// +optional
	Pod string `json:"pod,omitempty"`
}

// NodeLimits are the policy's limits plus node-local ones that a
// configuration file may set (the operator leaves them to their defaults).
type NodeLimits struct {
	PeerLimits `json:",inline"`

	// maxFrameSize is the largest frame payload the node accepts, in bytes
	// (default 4 MiB, the wire protocol's default; 64 KiB to 64 MiB).
	// +optional
	MaxFrameSize *int32 `json:"maxFrameSize,omitempty"`

	// sendQueueLength is the number of frames a channel queues before its
	// sender blocks (backpressure); default 256, 1 to 65536.
	// +optional
	SendQueueLength *int32 `json:"sendQueueLength,omitempty"`

	// keepaliveInterval is how often an idle channel sends a Ping; it must
	// be shorter than idleTimeout (default 30s).
	// +optional
	KeepaliveInterval *metav1.Duration `json:"keepaliveInterval,omitempty"`
}

// NodeDiscovery is how a node finds peers without the operator.
type NodeDiscovery struct {
	// seeds are "host:port" addresses the node dials at start.
	// +optional
	Seeds []string `json:"seeds,omitempty"`
}
