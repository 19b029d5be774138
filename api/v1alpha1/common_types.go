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

// This file holds the value types shared by PeerTrustPolicy, PeerAllowlist
// and PeerNodeConfiguration. Their kubebuilder markers sit on the type, so
// every field of that type in a CRD gets the same schema and CEL rules.

// PolicyMode says whether denials are enforced or only reported.
// +kubebuilder:validation:Enum=Enforce;Audit
type PolicyMode string

const (
	// PolicyModeEnforce refuses peers and packets the policy denies.
	PolicyModeEnforce PolicyMode = "Enforce"
	// PolicyModeAudit lets everything through but logs and counts every
	// decision that Enforce would have denied, so that a new policy can be
	// tried on a live mesh before it is enforced.
	PolicyModeAudit PolicyMode = "Audit"
)

// IncomingPlacement says how a node hands inbound peers to the application,
// as P2PNet's IncomingPeerPlacement does.
// +kubebuilder:validation:Enum=Queue;Event;QueueAndEvent
type IncomingPlacement string

const (
	// IncomingPlacementQueue puts inbound peers in a bounded queue that the
	// application drains.
	IncomingPlacementQueue IncomingPlacement = "Queue"
	// IncomingPlacementEvent raises an event for each inbound peer.
	IncomingPlacementEvent IncomingPlacement = "Event"
	// IncomingPlacementQueueAndEvent does both.
	IncomingPlacementQueueAndEvent IncomingPlacement = "QueueAndEvent"
)

// TrustProtocolType names the handshake that makes a peer trusted.
// +kubebuilder:validation:Enum=None;Ping;SharedKey
type TrustProtocolType string

const (
	// TrustProtocolNone runs no handshake: no peer ever becomes trusted, so
	// only the untrusted packet classes allowed by the incoming flags pass.
	TrustProtocolNone TrustProtocolType = "None"
	// TrustProtocolPing is P2PNet's default protocol: peers exchange pings and
	// then trust each other. It proves liveness, not identity.
	TrustProtocolPing TrustProtocolType = "Ping"
	// TrustProtocolSharedKey trusts a peer that proves knowledge of a key
	// shared by every node of the mesh (kept in a Secret).
	TrustProtocolSharedKey TrustProtocolType = "SharedKey"
)

// CIDR is an IPv4 or IPv6 network in CIDR notation with no host bits set,
// for example 10.0.0.0/8, 10.1.2.3/32 or fd00::/8. IPv4-mapped IPv6
// addresses and zones are refused, as the Kubernetes CEL CIDR library does.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=43
// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="must be a CIDR such as 10.0.0.0/8 or fd00::/8"
// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self) == cidr(self).masked()",message="must not have bits set after the prefix length (for example, write 10.0.0.0/8, not 10.0.0.1/8)"
type CIDR string

// PeerIdentifier is a node identifier as announced in the Hello packet: in
// Kubernetes the UUID NodeIdentifierForPod derives, else the node's --id.
// It is 1 to 253 letters, digits, '.', '_', ':' or '-', starting and ending
// with a letter or digit, so that it prints unambiguously in logs.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9._:]*[A-Za-z0-9])?$`
type PeerIdentifier string

// PolicyReference names a PeerTrustPolicy.
type PolicyReference struct {
	// namespace of the PeerTrustPolicy.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`

	// name of the PeerTrustPolicy.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// String returns "namespace/name".
func (r PolicyReference) String() string { return r.Namespace + "/" + r.Name }

// NodeSyncStatus counts the nodes of a mesh and those that run the
// configuration compiled from the current generation of the resource.
type NodeSyncStatus struct {
	// total is the number of peernode pods of the mesh the operator found.
	// +kubebuilder:validation:Minimum=0
	Total int32 `json:"total"`

	// inSync is the number of those nodes that report the configuration
	// generation compiled from the current spec of this resource.
	// +kubebuilder:validation:Minimum=0
	InSync int32 `json:"inSync"`
}
