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
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

var (
	t0 = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 = metav1.NewTime(t0.Add(time.Minute))

	accepted   = acceptance{reason: v1alpha1.ReasonAccepted, message: "in force"}
	conflicted = acceptance{reason: v1alpha1.ReasonConflicted, message: "ns/old is older",
		conflictsWith: &v1alpha1.PolicyReference{Namespace: "ns", Name: "old"}}
	noSecret    = acceptance{reason: v1alpha1.ReasonSecretNotFound, message: "no Secret"}
	writeFailed = propagation{status: metav1.ConditionFalse, reason: v1alpha1.ReasonWriteFailed, message: "too large"}
)

func cond(typ string, status metav1.ConditionStatus, reason, msg string, gen int64, at metav1.Time) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen, LastTransitionTime: at}
}

func TestSetAcceptedCondition(t *testing.T) {
	tests := []struct {
		name string
		have []metav1.Condition
		a    acceptance
		gen  int64
		want metav1.Condition
	}{
		{"new accepted", nil, accepted, 1,
			cond(v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted, "in force", 1, t1)},
		{"new conflicted", nil, conflicted, 1,
			cond(v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonConflicted, "ns/old is older", 1, t1)},
		{"unchanged keeps the transition time",
			[]metav1.Condition{cond(v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted, "in force", 1, t0)},
			accepted, 1, cond(v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted, "in force", 1, t0)},
		{"new generation, same status: time kept, generation updated",
			[]metav1.Condition{cond(v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted, "in force", 1, t0)},
			accepted, 2, cond(v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted, "in force", 2, t0)},
		{"same status, other reason: time kept",
			[]metav1.Condition{cond(v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonConflicted, "x", 1, t0)},
			noSecret, 1, cond(v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound, "no Secret", 1, t0)},
		{"status change moves the time",
			[]metav1.Condition{cond(v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonConflicted, "x", 1, t0)},
			accepted, 1, cond(v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted, "in force", 1, t1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conds := append([]metav1.Condition(nil), tt.have...)
			setAcceptedCondition(&conds, tt.gen, tt.a, t1)
			if len(conds) != 1 || !equality.Semantic.DeepEqual(conds[0], tt.want) {
				t.Errorf("got %+v\nwant %+v", conds, tt.want)
			}
		})
	}
}

func TestSetPropagatedCondition(t *testing.T) {
	tests := []struct {
		name string
		a    acceptance
		p    propagation
		want metav1.Condition
	}{
		{"accepted and written", accepted, propagationWritten,
			cond(v1alpha1.ConditionPropagated, metav1.ConditionUnknown, ReasonPending, propagationWritten.message, 3, t1)},
		{"accepted, write failed", accepted, writeFailed,
			cond(v1alpha1.ConditionPropagated, metav1.ConditionFalse, v1alpha1.ReasonWriteFailed, "too large", 3, t1)},
		{"not accepted wins over the write", conflicted, propagationWritten,
			cond(v1alpha1.ConditionPropagated, metav1.ConditionFalse, v1alpha1.ReasonNotAccepted,
				"the resource is not accepted (Conflicted), so nothing of it is propagated", 3, t1)},
		{"secret not found", noSecret, writeFailed,
			cond(v1alpha1.ConditionPropagated, metav1.ConditionFalse, v1alpha1.ReasonNotAccepted,
				"the resource is not accepted (SecretNotFound), so nothing of it is propagated", 3, t1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conds []metav1.Condition
			setPropagatedCondition(&conds, 3, tt.a, tt.p, t1)
			if len(conds) != 1 || !equality.Semantic.DeepEqual(conds[0], tt.want) {
				t.Errorf("got %+v\nwant %+v", conds, tt.want)
			}
		})
	}
}

func TestSetReadyCondition(t *testing.T) {
	acc := func(s metav1.ConditionStatus, reason string) metav1.Condition {
		return cond(v1alpha1.ConditionAccepted, s, reason, "acc msg", 1, t0)
	}
	prop := func(s metav1.ConditionStatus, reason string) metav1.Condition {
		return cond(v1alpha1.ConditionPropagated, s, reason, "prop msg", 1, t0)
	}
	tests := []struct {
		name       string
		have       []metav1.Condition
		wantStatus metav1.ConditionStatus
		wantReason string
		wantMsg    string
	}{
		{"both true", []metav1.Condition{acc(metav1.ConditionTrue, v1alpha1.ReasonAccepted), prop(metav1.ConditionTrue, v1alpha1.ReasonNoNodes)},
			metav1.ConditionTrue, v1alpha1.ReasonReady, "the resource is accepted and every node of the mesh runs its configuration"},
		{"not accepted", []metav1.Condition{acc(metav1.ConditionFalse, v1alpha1.ReasonConflicted), prop(metav1.ConditionFalse, v1alpha1.ReasonNotAccepted)},
			metav1.ConditionFalse, v1alpha1.ReasonConflicted, "Accepted: acc msg"},
		{"propagation unknown", []metav1.Condition{acc(metav1.ConditionTrue, v1alpha1.ReasonAccepted), prop(metav1.ConditionUnknown, ReasonPending)},
			metav1.ConditionUnknown, ReasonPending, "Propagated: prop msg"},
		{"write failed", []metav1.Condition{acc(metav1.ConditionTrue, v1alpha1.ReasonAccepted), prop(metav1.ConditionFalse, v1alpha1.ReasonWriteFailed)},
			metav1.ConditionFalse, v1alpha1.ReasonWriteFailed, "Propagated: prop msg"},
		{"nothing reported", nil, metav1.ConditionUnknown, ReasonPending, "Accepted is not reported yet"},
		{"propagation missing", []metav1.Condition{acc(metav1.ConditionTrue, v1alpha1.ReasonAccepted)},
			metav1.ConditionUnknown, ReasonPending, "Propagated is not reported yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conds := append([]metav1.Condition(nil), tt.have...)
			setReadyCondition(&conds, 1, t1)
			got := conds[len(conds)-1]
			want := cond(v1alpha1.ConditionReady, tt.wantStatus, tt.wantReason, tt.wantMsg, 1, t1)
			if !equality.Semantic.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestStatusIsStable is the no-op guarantee at the level of the pure
// functions: applying a verdict to the status it produced changes nothing.
func TestStatusIsStable(t *testing.T) {
	for _, tt := range []struct {
		name string
		a    acceptance
		p    propagation
	}{
		{"accepted", accepted, propagationWritten},
		{"conflicted", conflicted, propagationWritten},
		{"write failed", accepted, writeFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ps := policyStatus(&v1alpha1.PeerTrustPolicyStatus{}, 4, tt.a, tt.p, nil, true, t0)
			if again := policyStatus(&ps, 4, tt.a, tt.p, nil, true, t1); !equality.Semantic.DeepEqual(ps, again) {
				t.Errorf("policy status changed:\n%+v\n%+v", ps, again)
			}
			as := allowlistStatus(&v1alpha1.PeerAllowlistStatus{}, 4, tt.a, tt.p, nil, 7, true, t0)
			if again := allowlistStatus(&as, 4, tt.a, tt.p, nil, 7, true, t1); !equality.Semantic.DeepEqual(as, again) {
				t.Errorf("allowlist status changed:\n%+v\n%+v", as, again)
			}
		})
	}
}

func TestPolicyStatus(t *testing.T) {
	old := &v1alpha1.PeerTrustPolicyStatus{ObservedGeneration: 1,
		ConflictsWith: &v1alpha1.PolicyReference{Namespace: "ns", Name: "gone"}}

	st := policyStatus(old, 2, accepted, propagationWritten, nil, false, t1)
	if st.ObservedGeneration != 1 {
		t.Errorf("observedGeneration %d after a failed reconcile, want 1", st.ObservedGeneration)
	}
	if st.ConflictsWith != nil {
		t.Errorf("conflictsWith %v kept on an accepted policy", st.ConflictsWith)
	}
	if got := []string{st.Conditions[0].Type, st.Conditions[1].Type, st.Conditions[2].Type}; got[0] != "Accepted" || got[1] != "Propagated" || got[2] != "Ready" {
		t.Errorf("condition order %v", got)
	}
	if old.ConflictsWith == nil || len(old.Conditions) != 0 {
		t.Error("policyStatus modified its input")
	}

	st = policyStatus(old, 2, conflicted, propagationWritten, nil, true, t1)
	if st.ObservedGeneration != 2 || st.ConflictsWith == nil || *st.ConflictsWith != *conflicted.conflictsWith {
		t.Errorf("observedGeneration %d conflictsWith %v", st.ObservedGeneration, st.ConflictsWith)
	}
	if st.ConflictsWith == conflicted.conflictsWith {
		t.Error("conflictsWith aliases the verdict")
	}
}
