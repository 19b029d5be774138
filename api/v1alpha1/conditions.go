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

// Condition types of PeerTrustPolicy and PeerAllowlist. Every condition
// carries observedGeneration, so `kubectl wait --for=condition=Ready` never
// reports on an older spec.
const (
	// ConditionAccepted is True when the operator compiles the resource into
	// its mesh's configuration. It is False when the resource cannot take
	// effect: a policy that loses the per-mesh conflict (ReasonConflicted), a
	// Secret that does not exist (ReasonSecretNotFound), or a problem the
	// schema cannot catch (ReasonInvalid).
	ConditionAccepted = "Accepted"

	// ConditionPropagated is True when every node of the mesh reports the
	// configuration generation compiled from the current spec (or when the
	// mesh has no node: ReasonNoNodes). While nodes catch up it is False with
	// ReasonPropagating and a message "n/m nodes in sync".
	ConditionPropagated = "Propagated"

	// ConditionReady summarises the others: True when Accepted and
	// Propagated are both True. When False, its reason is the reason of the
	// first of Accepted, Propagated that is not True.
	ConditionReady = "Ready"
)

// Reasons of the conditions above. They are CamelCase, stable, and part of
// the API: alerts and scripts match on them.
const (
	// ReasonAccepted (Accepted=True): the resource is valid and in force.
	ReasonAccepted = "Accepted"

	// ReasonConflicted (Accepted=False, policies only): another
	// PeerTrustPolicy of the same mesh is older and wins; status.conflictsWith
	// names it. The oldest policy by creationTimestamp wins, then the
	// lexically smallest namespace/name.
	ReasonConflicted = "Conflicted"

	// ReasonInvalid (Accepted=False): the resource passed schema validation
	// but cannot be compiled; the message says why.
	ReasonInvalid = "Invalid"

	// ReasonSecretNotFound (Accepted=False, policies only): the SharedKey
	// trust protocol references a Secret or key that does not exist.
	ReasonSecretNotFound = "SecretNotFound"

	// ReasonNotAccepted (Propagated=False): the resource is not Accepted,
	// so nothing of it is propagated.
	ReasonNotAccepted = "NotAccepted"

	// ReasonPropagated (Propagated=True): every node reports the current
	// configuration generation.
	ReasonPropagated = "Propagated"

	// ReasonPropagating (Propagated=False): the configuration is written
	// but some nodes still run an older generation.
	ReasonPropagating = "Propagating"

	// ReasonNoNodes (Propagated=True): the configuration is written and the
	// mesh has no node yet, so there is nothing to wait for. It is True so
	// that `kubectl wait` does not hang on a mesh with no pods.
	ReasonNoNodes = "NoNodes"

	// ReasonRejectedByNodes (Propagated=False): at least one node refused
	// the configuration (it keeps its last good one); the message names a
	// node and its error.
	ReasonRejectedByNodes = "RejectedByNodes"

	// ReasonWriteFailed (Propagated=False): the operator could not write the
	// mesh ConfigMap; the message holds the API error.
	ReasonWriteFailed = "WriteFailed"

	// ReasonReady (Ready=True): Accepted and Propagated are True.
	ReasonReady = "Ready"
)
