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

// PeerTrustPolicySpec is how the nodes of one mesh treat inbound peers.
//
// Defaulted scalars are pointers so that a Go client that leaves them unset
// sends nothing and the API server's default applies; sections that only
// hold defaulted fields are values defaulted to {} so that their fields'
// defaults apply even when the section is omitted.
type PeerTrustPolicySpec struct {
	// meshName is the mesh this policy governs: a DNS-1123 label. At most
	// one policy is in force per mesh (the oldest). It cannot be changed:
	// create a new policy instead.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="meshName is immutable"
	MeshName string `json:"meshName"`

	// mode is Enforce (denials refuse the peer or packet) or Audit (denials
	// are only logged and counted). It applies to the blocked list and to
	// the allowlists of the mesh.
	// +optional
	// +kubebuilder:default=Enforce
	Mode PolicyMode `json:"mode,omitempty"`

	// incoming says how nodes treat inbound peers before and after trust.
	// +optional
	// +kubebuilder:default={}
	Incoming IncomingPolicy `json:"incoming,omitempty"`

	// blocked lists peers that are refused whatever the allowlists say:
	// block beats allow.
	// +optional
	Blocked *BlockedPeers `json:"blocked,omitempty"`

	// limits bounds the channels and the time a node spends on a peer.
	// +optional
	// +kubebuilder:default={}
	Limits PeerLimits `json:"limits,omitempty"`
}

// The CEL rules below treat an absent field as its default: the API server
// also checks them against a section's default ({}), before the nested
// defaults apply.

// IncomingPolicy holds P2PNet's trust gating and incoming-peer placement.
// A peer is untrusted until the trust protocol succeeds; a trusted peer may
// send every packet type.
// +kubebuilder:validation:XValidation:rule="!has(self.allowDefaultCommunication) || !has(self.runDefaultTrustProtocol) || self.allowDefaultCommunication || self.runDefaultTrustProtocol || (has(self.allowEnhancedPacketExchange) && self.allowEnhancedPacketExchange)",message="allowDefaultCommunication, allowEnhancedPacketExchange and runDefaultTrustProtocol are all false: no peer could ever be trusted or send a packet; set at least one to true"
// +kubebuilder:validation:XValidation:rule="(has(self.runDefaultTrustProtocol) && !self.runDefaultTrustProtocol) || !has(self.trustProtocol) || !has(self.trustProtocol.type) || self.trustProtocol.type != 'None'",message="runDefaultTrustProtocol is true but trustProtocol.type is None, which runs no handshake: choose Ping or SharedKey, or set runDefaultTrustProtocol to false"
type IncomingPolicy struct {
	// placement is how inbound peers reach the application: Queue, Event or
	// QueueAndEvent.
	// +optional
	// +kubebuilder:default=Event
	Placement IncomingPlacement `json:"placement,omitempty"`

	// allowDefaultCommunication lets untrusted peers send Message and
	// Disconnect packets.
	// +optional
	// +kubebuilder:default=true
	AllowDefaultCommunication *bool `json:"allowDefaultCommunication,omitempty"`

	// allowEnhancedPacketExchange lets untrusted peers send Identity,
	// PeerGroup and Data packets too.
	// +optional
	// +kubebuilder:default=false
	AllowEnhancedPacketExchange *bool `json:"allowEnhancedPacketExchange,omitempty"`

	// runDefaultTrustProtocol runs the trust protocol on every new channel.
	// When false, no peer becomes trusted and trustProtocol is ignored.
	// +optional
	// +kubebuilder:default=true
	RunDefaultTrustProtocol *bool `json:"runDefaultTrustProtocol,omitempty"`

	// trustProtocol selects the handshake run when runDefaultTrustProtocol
	// is true.
	// +optional
	// +kubebuilder:default={}
	TrustProtocol TrustProtocol `json:"trustProtocol,omitempty"`
}

// TrustProtocol selects a trust handshake and its key.
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'SharedKey' || has(self.sharedKeySecretRef)",message="trustProtocol type SharedKey requires sharedKeySecretRef, the Secret holding the mesh key"
// +kubebuilder:validation:XValidation:rule="!has(self.sharedKeySecretRef) || (has(self.type) && self.type == 'SharedKey')",message="sharedKeySecretRef is only allowed when trustProtocol type is SharedKey"
type TrustProtocol struct {
	// type is None, Ping or SharedKey.
	// +optional
	// +kubebuilder:default=Ping
	Type TrustProtocolType `json:"type,omitempty"`

	// sharedKeySecretRef is the Secret, in the policy's namespace, holding
	// the key of the SharedKey protocol. Required with SharedKey, refused
	// otherwise. The key itself never leaves the Secret: nodes read it
	// through the API.
	// +optional
	SharedKeySecretRef *SecretKeyReference `json:"sharedKeySecretRef,omitempty"`
}

// SecretKeyReference names a key of a Secret in the referrer's namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// key of the Secret's data that holds the shared key.
	// +optional
	// +kubebuilder:default=key
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// BlockedPeers lists peers refused at accept time; channels already open
// to them are closed when the list changes.
type BlockedPeers struct {
	// cidrs refuses peers whose source address is in one of these networks.
	// The address matched is the one the node sees: behind SNAT it is the
	// translated address.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	CIDRs []CIDR `json:"cidrs,omitempty"`

	// identifiers refuses peers announcing one of these node identifiers.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	Identifiers []PeerIdentifier `json:"identifiers,omitempty"`
}

// PeerLimits bounds a node's channels. Limits are hard caps, per node:
// a connection over a cap is refused and counted, never silently kept.
// +kubebuilder:validation:XValidation:rule="!has(self.maxInboundPeers) || !has(self.maxOutboundPeers) || self.maxInboundPeers > 0 || self.maxOutboundPeers > 0",message="maxInboundPeers and maxOutboundPeers are both 0: nodes could open no channel at all"
type PeerLimits struct {
	// maxInboundPeers is the most channels a node accepts. 0 means the node
	// accepts none (it only dials); there is no "unlimited" value, by design.
	// +optional
	// +kubebuilder:default=256
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65536
	MaxInboundPeers *int32 `json:"maxInboundPeers,omitempty"`

	// maxOutboundPeers is the most channels a node dials. 0 means the node
	// dials none (it only accepts).
	// +optional
	// +kubebuilder:default=256
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65536
	MaxOutboundPeers *int32 `json:"maxOutboundPeers,omitempty"`

	// handshakeTimeout bounds the time from accepting or dialling a channel
	// to the end of the Hello exchange and trust handshake; a slower peer is
	// disconnected. A Go duration, more than 0 and at most 5m.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) > duration('0s')",message="handshakeTimeout must be more than 0"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) <= duration('5m')",message="handshakeTimeout must be at most 5m"
	HandshakeTimeout *metav1.Duration `json:"handshakeTimeout,omitempty"`

	// idleTimeout closes a channel on which nothing was received for this
	// long (keepalives count). A Go duration, more than 0 and at most 24h.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) > duration('0s')",message="idleTimeout must be more than 0"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) <= duration('24h')",message="idleTimeout must be at most 24h"
	IdleTimeout *metav1.Duration `json:"idleTimeout,omitempty"`
}

// PeerTrustPolicyStatus is the observed state of a PeerTrustPolicy.
type PeerTrustPolicyStatus struct {
	// conditions are Accepted, Propagated and Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// nodes counts the mesh's nodes and those in sync with this generation.
	// +optional
	Nodes *NodeSyncStatus `json:"nodes,omitempty"`

	// conflictsWith names the policy in force for the same mesh when this
	// one lost the conflict (Accepted=False, reason Conflicted).
	// +optional
	ConflictsWith *PolicyReference `json:"conflictsWith,omitempty"`
}

// PeerTrustPolicy is how the nodes of one mesh treat inbound peers: trust
// gating, the trust handshake, blocked peers, enforcement mode and limits.
// At most one policy is in force per mesh: the oldest wins, the others are
// Accepted=False with reason Conflicted.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=ptp,categories=peermesh
// +kubebuilder:printcolumn:name="Mesh",type=string,JSONPath=`.spec.meshName`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="In Sync",type=integer,JSONPath=`.status.nodes.inSync`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.nodes.total`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PeerTrustPolicy struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired policy.
	// +required
	Spec PeerTrustPolicySpec `json:"spec"`

	// status is the observed state, written by the operator.
	// +optional
	Status PeerTrustPolicyStatus `json:"status,omitempty"`
}

// PeerTrustPolicyList is a list of PeerTrustPolicy.
//
// +kubebuilder:object:root=true
type PeerTrustPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PeerTrustPolicy `json:"items"`
}
