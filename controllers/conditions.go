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

package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// ReasonPending is the reason of Propagated=Unknown while the operator has
// not counted the nodes that applied the mesh's configuration: before the
// first reconcile gets that far, when no configuration can be written (the
// message says why), or when the mesh's EndpointSlices cannot be listed.
// Ready then stays Unknown with the same reason, so `kubectl wait
// --for=condition=Ready` does not report success before propagation is
// measured. Once nodes are counted, Propagated is True/Propagated,
// True/NoNodes or False/Propagating (api/v1alpha1).
const ReasonPending = "Pending"

// acceptance is the verdict of a reconcile on one resource: whether it takes
// effect in its mesh's configuration and, if not, why.
type acceptance struct {
	// reason is v1alpha1.ReasonAccepted when the resource is in force, else
	// ReasonConflicted, ReasonSecretNotFound or ReasonInvalid.
	reason string
	// message is the human explanation of the Accepted condition.
	message string
	// conflictsWith is the winning policy when reason is ReasonConflicted.
	conflictsWith *v1alpha1.PolicyReference
}

func (a acceptance) accepted() bool { return a.reason == v1alpha1.ReasonAccepted }

// propagation is what became of the mesh configuration that holds an
// accepted resource.
type propagation struct {
	// status is True (ReasonPropagated, ReasonNoNodes), False
	// (ReasonPropagating, ReasonWriteFailed) or Unknown (ReasonPending).
	status  metav1.ConditionStatus
	reason  string
	message string
}

// setAcceptedCondition sets the Accepted condition of conds from a for the
// given resource generation. It is pure apart from writing conds; now is
// the transition time used when the condition's status changes.
func setAcceptedCondition(conds *[]metav1.Condition, generation int64, a acceptance, now metav1.Time) {
	status := metav1.ConditionFalse
	if a.accepted() {
		status = metav1.ConditionTrue
	}
	setCondition(conds, metav1.Condition{
		Type:               v1alpha1.ConditionAccepted,
		Status:             status,
		Reason:             a.reason,
		Message:            a.message,
		ObservedGeneration: generation,
	}, now)
}

// setPropagatedCondition sets Propagated: False/NotAccepted for a resource
// that is not accepted (nothing of it reaches the nodes), else p.
func setPropagatedCondition(conds *[]metav1.Condition, generation int64, a acceptance, p propagation, now metav1.Time) {
	c := metav1.Condition{
		Type:               v1alpha1.ConditionPropagated,
		Status:             p.status,
		Reason:             p.reason,
		Message:            p.message,
		ObservedGeneration: generation,
	}
	if !a.accepted() {
		c.Status = metav1.ConditionFalse
		c.Reason = v1alpha1.ReasonNotAccepted
		c.Message = "the resource is not accepted (" + a.reason + "), so nothing of it is propagated"
	}
	setCondition(conds, c, now)
}

// setReadyCondition derives Ready from Accepted and Propagated, which must be
// set first: True when both are True; otherwise the status, reason and
// message of the first of them that is not True (a missing condition counts
// as Unknown).
func setReadyCondition(conds *[]metav1.Condition, generation int64, now metav1.Time) {
	ready := metav1.Condition{
		Type:               v1alpha1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             v1alpha1.ReasonReady,
		Message:            "the resource is accepted and every node of the mesh runs its configuration",
		ObservedGeneration: generation,
	}
	for _, t := range []string{v1alpha1.ConditionAccepted, v1alpha1.ConditionPropagated} {
		c := meta.FindStatusCondition(*conds, t)
		if c == nil {
			ready.Status, ready.Reason, ready.Message = metav1.ConditionUnknown, ReasonPending, t+" is not reported yet"
			break
		}
		if c.Status != metav1.ConditionTrue {
			ready.Status, ready.Reason, ready.Message = c.Status, c.Reason, t+": "+c.Message
			break
		}
	}
	setCondition(conds, ready, now)
}

// setCondition is meta.SetStatusCondition with an explicit clock: the
// transition time changes only when the status does, so re-applying the same
// verdict leaves conds identical.
func setCondition(conds *[]metav1.Condition, c metav1.Condition, now metav1.Time) {
	c.LastTransitionTime = now
	meta.SetStatusCondition(conds, c)
}
