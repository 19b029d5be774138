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
	"regexp"

	"github.com/google/uuid"
)

// NodeIdentifierNamespace is the UUID namespace of pod node identifiers. It
// is itself the name-based (SHA-1) UUID of "p2p.peermesh.io" in the DNS
// namespace, so anyone can recompute it; it must never change, or every
// pod's identity would change with it.
const NodeIdentifierNamespace = "74698d63-1cdd-5d65-b09d-3cf69644d238"

var nodeIdentifierNamespace = uuid.MustParse(NodeIdentifierNamespace)

// NodeIdentifierForPod returns the node identifier of the peernode running
// in pod namespace/name: the version-5 (SHA-1, name-based) UUID of
// "namespace/name" in NodeIdentifierNamespace, in lower-case text form.
//
// Operator and node compute it independently, the operator to resolve
// podSelector entries and the node when started in Kubernetes without --id,
// so allowlists name pods by stable identities that survive IP changes. A
// StatefulSet pod keeps its identifier across restarts; a Deployment pod gets
// a new one with its new name.
func NodeIdentifierForPod(namespace, name string) string {
	return uuid.NewSHA1(nodeIdentifierNamespace, []byte(namespace+"/"+name)).String()
}

// identifierPattern is PeerIdentifier's schema pattern.
var identifierPattern = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9._:]*[A-Za-z0-9])?$`)

// MaxIdentifierLength is the longest node identifier, the wire protocol's
// MaxNodeIDLen.
const MaxIdentifierLength = 253

// IsValidIdentifier reports whether id can be a node identifier: what
// allowlists and block lists accept, so peernode should check its --id with
// it.
func IsValidIdentifier(id string) bool {
	return len(id) <= MaxIdentifierLength && identifierPattern.MatchString(id)
}
