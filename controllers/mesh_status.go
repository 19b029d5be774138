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
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// Reasons of the operator's events. Accepted, Conflicted, SecretNotFound and
// Invalid are reported on a resource when its Accepted condition changes to
// that reason. Compiled is reported on the ConfigMap and on the mesh's anchor
// (the policy in force, else the first allowlist by name) when the
// ConfigMap's content changes; WriteFailed on the anchor when writing starts
// to fail.
const (
	EventAccepted       = "Accepted"
	EventConflicted     = "Conflicted"
	EventSecretNotFound = "SecretNotFound"
	EventInvalid        = "Invalid"
	EventCompiled       = "Compiled"
	EventWriteFailed    = "WriteFailed"
)

// policyStatus is the status a policy gets from a reconcile. It is pure: the
// same inputs give the same status, and a status that already says the same
// comes back unchanged (conditions keep their transition times).
//
// nodes, when not nil, replaces status.nodes; nil keeps what the status says
// (the nodes were not counted in this reconcile).
func policyStatus(old *v1alpha1.PeerTrustPolicyStatus, generation int64, a acceptance, p propagation, nodes *v1alpha1.NodeSyncStatus, succeeded bool, now metav1.Time) v1alpha1.PeerTrustPolicyStatus {
	st := *old.DeepCopy()
	if nodes != nil {
		n := *nodes
		st.Nodes = &n
	}
	setAcceptedCondition(&st.Conditions, generation, a, now)
	setPropagatedCondition(&st.Conditions, generation, a, p, now)
	setReadyCondition(&st.Conditions, generation, now)
	st.ConflictsWith = nil
	if a.conflictsWith != nil {
		ref := *a.conflictsWith
		st.ConflictsWith = &ref
	}
	if succeeded {
		st.ObservedGeneration = generation
	}
	return st
}

// allowlistStatus is policyStatus for allowlists; entries is the number of
// concrete peers the allowlist resolved to.
func allowlistStatus(old *v1alpha1.PeerAllowlistStatus, generation int64, a acceptance, p propagation, nodes *v1alpha1.NodeSyncStatus, entries int32, succeeded bool, now metav1.Time) v1alpha1.PeerAllowlistStatus {
	st := *old.DeepCopy()
	if nodes != nil {
		n := *nodes
		st.Nodes = &n
	}
	setAcceptedCondition(&st.Conditions, generation, a, now)
	setPropagatedCondition(&st.Conditions, generation, a, p, now)
	setReadyCondition(&st.Conditions, generation, now)
	st.Entries = &entries
	if succeeded {
		st.ObservedGeneration = generation
	}
	return st
}

// propagationFor is the Propagated verdict of an accepted resource: the write
// outcome when the reconcile got that far, else what the resource already
// reports.
func (s *meshScope) propagationFor(old []metav1.Condition) propagation {
	if s.written.reason != "" {
		return s.written
	}
	if c := meta.FindStatusCondition(old, v1alpha1.ConditionPropagated); c != nil && c.Reason != v1alpha1.ReasonNotAccepted {
		return propagation{status: c.Status, reason: c.Reason, message: c.Message}
	}
	return propagationNotCompiled
}

// patchStatuses is the one status write of a reconcile: each resource whose
// status differs from what the reconcile computed gets one merge patch of its
// status subresource; the others get nothing. observedGeneration advances
// only when the reconcile succeeded. Events for condition changes are
// emitted once their patch succeeded.
func (r *MeshReconciler) patchStatuses(ctx context.Context, s *meshScope, succeeded bool) error {
	now := metav1.NewTime(r.now().Truncate(time.Second))
	limit := r.StatusPatchParallelism
	if limit <= 0 {
		limit = 8
	}
	var g errgroup.Group
	g.SetLimit(limit)
	// writeFailed is set when an accepted resource's Propagated condition
	// changes to WriteFailed: the mesh's write started failing.
	var writeFailed atomic.Bool

	for _, p := range s.policies {
		a, ok := s.policyAcceptance[p.Name]
		if !ok {
			continue
		}
		want := policyStatus(&p.Status, p.Generation, a, s.propagationFor(p.Status.Conditions), s.nodes, succeeded, now)
		if equality.Semantic.DeepEqual(p.Status, want) {
			continue
		}
		g.Go(func() error {
			old := p.DeepCopy()
			p.Status = want
			if err := r.Client.Status().Patch(ctx, p, statusPatch(old)); err != nil {
				return ignoreNotFound(fmt.Errorf("patching the status of PeerTrustPolicy %s/%s: %w", p.Namespace, p.Name, err))
			}
			r.conditionEvents(p, old.Status.Conditions, p.Status.Conditions, &writeFailed)
			return nil
		})
	}
	for _, al := range s.allowlists {
		a, ok := s.allowlistAcceptance[al.Name]
		if !ok {
			continue
		}
		want := allowlistStatus(&al.Status, al.Generation, a, s.propagationFor(al.Status.Conditions), s.nodes, s.allowlistEntries[al.Name], succeeded, now)
		if equality.Semantic.DeepEqual(al.Status, want) {
			continue
		}
		g.Go(func() error {
			old := al.DeepCopy()
			al.Status = want
			if err := r.Client.Status().Patch(ctx, al, statusPatch(old)); err != nil {
				return ignoreNotFound(fmt.Errorf("patching the status of PeerAllowlist %s/%s: %w", al.Namespace, al.Name, err))
			}
			r.conditionEvents(al, old.Status.Conditions, al.Status.Conditions, &writeFailed)
			return nil
		})
	}
	err := g.Wait()

	if anchor := s.anchor(); anchor != nil && writeFailed.Load() {
		r.Recorder.Eventf(anchor, nil, corev1.EventTypeWarning, EventWriteFailed, "Write", "%s", s.written.message)
	}
	if cm := s.changed; cm != nil {
		note := fmt.Sprintf("compiled %d allowed and %d blocked rules of mesh %q into ConfigMap %s (generation %.12s)",
			len(s.config.Allowed), len(s.config.Blocked), s.key.Name, cm.Name, s.config.Generation)
		anchor := s.anchor()
		r.Recorder.Eventf(cm, anchor, corev1.EventTypeNormal, EventCompiled, "Compile", "%s", note)
		if anchor != nil {
			r.Recorder.Eventf(anchor, cm, corev1.EventTypeNormal, EventCompiled, "Compile", "%s", note)
		}
	}
	return err
}

// conditionEvents reports the changes of a resource's Accepted condition,
// and sets writeFailed when its Propagated condition changed to WriteFailed
// (reported once per mesh, on its anchor).
func (r *MeshReconciler) conditionEvents(obj client.Object, old, cur []metav1.Condition, writeFailed *atomic.Bool) {
	was := meta.FindStatusCondition(old, v1alpha1.ConditionAccepted)
	is := meta.FindStatusCondition(cur, v1alpha1.ConditionAccepted)
	if is != nil && (was == nil || was.Status != is.Status || was.Reason != is.Reason || was.Message != is.Message) {
		switch is.Reason {
		case v1alpha1.ReasonAccepted:
			if was == nil || was.Status != metav1.ConditionTrue {
				r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, EventAccepted, "Accept", "%s", is.Message)
			}
		case v1alpha1.ReasonConflicted:
			r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventConflicted, "Accept", "%s", is.Message)
		case v1alpha1.ReasonSecretNotFound:
			r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventSecretNotFound, "Accept", "%s", is.Message)
		default:
			r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventInvalid, "Accept", "%s", is.Message)
		}
	}
	wasP := meta.FindStatusCondition(old, v1alpha1.ConditionPropagated)
	isP := meta.FindStatusCondition(cur, v1alpha1.ConditionPropagated)
	if isP != nil && isP.Reason == v1alpha1.ReasonWriteFailed && (wasP == nil || wasP.Reason != v1alpha1.ReasonWriteFailed) {
		writeFailed.Store(true)
	}
}

// observeMetrics records the states of the mesh's resources.
func (r *MeshReconciler) observeMetrics(s *meshScope, succeeded bool) {
	states := map[[2]string]int{}
	for _, a := range s.policyAcceptance {
		states[[2]string{v1alpha1.SourceKindPeerTrustPolicy, stateOfReason(a.reason)}]++
	}
	for _, a := range s.allowlistAcceptance {
		states[[2]string{v1alpha1.SourceKindPeerAllowlist, stateOfReason(a.reason)}]++
	}
	r.Metrics.observeMesh(s.key, states, succeeded && s.upToDate, s.nodes)
}

// statusPatch is a merge patch from old that carries old's resourceVersion:
// the API server refuses it with a conflict when the cached object the
// reconcile read is older than the stored one. A merge patch computed from a
// stale copy would otherwise send only the fields that differ from the stale
// copy and leave a mix of two reconciles in the status (nodes counted by one,
// conditions from the other). The reconcile is then retried (see
// Reconcile), against a cache that has caught up.
func statusPatch(old client.Object) client.Patch {
	return client.MergeFromWithOptions(old, client.MergeFromWithOptimisticLock{})
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
