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

// PeerAllowlistSpec lists the peers the nodes of a mesh accept.
type PeerAllowlistSpec struct {
	// meshName is the mesh this allowlist applies to: a DNS-1123 label. It
	// cannot be changed: create a new allowlist instead.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="meshName is immutable"
	MeshName string `json:"meshName"`

	// peers are the allowed peers. A peer matching any entry of any
	// allowlist of the mesh is allowed, unless it is blocked by the mesh's
	// policy.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1024
	Peers []PeerAllowlistEntry `json:"peers"`
}

// PeerAllowlistEntry matches peers by exactly one of identifier, cidr or
// podSelector.
// +kubebuilder:validation:XValidation:rule="[has(self.identifier), has(self.cidr), has(self.podSelector)].filter(x, x).size() == 1",message="each peer must set exactly one of identifier, cidr or podSelector"
// +kubebuilder:validation:XValidation:rule="!has(self.except) || has(self.cidr)",message="except is only allowed together with cidr"
// +kubebuilder:validation:XValidation:rule="!has(self.namespaceSelector) || has(self.podSelector)",message="namespaceSelector is only allowed together with podSelector"
// +kubebuilder:validation:XValidation:rule="!has(self.except) || !has(self.cidr) || !isCIDR(self.cidr) || self.except.all(e, !isCIDR(e) || (cidr(self.cidr).containsCIDR(e) && cidr(e).prefixLength() > cidr(self.cidr).prefixLength()))",message="every except entry must be a CIDR strictly inside cidr"
type PeerAllowlistEntry struct {
	// name identifies the entry in denial explanations, logs and
	// /debug/config ("PeerAllowlist team-a/web entry 'frontend'"). Unnamed
	// entries are named by their index, "peers[3]". Keep names unique within
	// an allowlist.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name,omitempty"`

	// identifier allows the peer announcing this node identifier.
	// +optional
	Identifier PeerIdentifier `json:"identifier,omitempty"`

	// cidr allows peers whose source address is in this network.
	// +optional
	CIDR CIDR `json:"cidr,omitempty"`

	// except removes networks from cidr; each must lie strictly inside it.
	// Only allowed with cidr.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	Except []CIDR `json:"except,omitempty"`

	// podSelector allows the peernode pods it selects, by their node
	// identifier and pod IPs (resolved by the operator). It selects pods in
	// the allowlist's namespace unless namespaceSelector is set. An empty
	// selector ({}) selects every pod.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`

	// namespaceSelector widens podSelector to the namespaces it selects
	// ({} selects every namespace). Only allowed with podSelector.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// PeerAllowlistStatus is the observed state of a PeerAllowlist.
type PeerAllowlistStatus struct {
	// conditions are Accepted, Propagated and Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// entries is the number of concrete peers the allowlist resolved to:
	// one per identifier or cidr entry plus one per pod matched by a
	// podSelector entry. 0 with podSelector entries means no pod matches
	// yet, and then the allowlist allows nobody.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Entries *int32 `json:"entries,omitempty"`

	// nodes counts the mesh's nodes and those in sync with this generation.
	// +optional
	Nodes *NodeSyncStatus `json:"nodes,omitempty"`
}

// PeerAllowlist lists the peers the nodes of a mesh accept. Once any
// allowlist applies to a mesh, peers that match no entry of any of the
// mesh's allowlists are denied, whichever side dialed (only logged and counted when the mesh's
// policy is in Audit mode). Blocked peers are denied even when allowed.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=pal,categories=peermesh
// +kubebuilder:printcolumn:name="Mesh",type=string,JSONPath=`.spec.meshName`
// +kubebuilder:printcolumn:name="Entries",type=integer,JSONPath=`.status.entries`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="In Sync",type=integer,JSONPath=`.status.nodes.inSync`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PeerAllowlist struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired allowlist.
	// +required
	Spec PeerAllowlistSpec `json:"spec"`

	// status is the observed state, written by the operator.
	// +optional
	Status PeerAllowlistStatus `json:"status,omitempty"`
}

// PeerAllowlistList is a list of PeerAllowlist.
//
// +kubebuilder:object:root=true
type PeerAllowlistList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PeerAllowlist `json:"items"`
}
