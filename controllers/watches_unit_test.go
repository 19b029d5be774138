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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// The policy and allowlist watches pass spec and status changes (a status
// write of this controller triggers the reconcile that corrects one made on
// a stale cache) and nothing else.
func TestSpecOrStatusChanged(t *testing.T) {
	policy := func(gen int64, inSync int32, label string) *v1alpha1.PeerTrustPolicy {
		p := &v1alpha1.PeerTrustPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: gen, ResourceVersion: "1", Labels: map[string]string{"l": label}}}
		p.Status.Nodes = &v1alpha1.NodeSyncStatus{Total: 10, InSync: inSync}
		return p
	}
	allowlist := func(gen int64, entries int32) *v1alpha1.PeerAllowlist {
		a := &v1alpha1.PeerAllowlist{ObjectMeta: metav1.ObjectMeta{Name: "a", Generation: gen}}
		a.Status.Entries = &entries
		return a
	}
	for _, c := range []struct {
		name     string
		old, new client.Object
		want     bool
	}{
		{"policy spec", policy(1, 10, "x"), policy(2, 10, "x"), true},
		{"policy status", policy(1, 9, "x"), policy(1, 10, "x"), true},
		{"policy label only", policy(1, 10, "x"), policy(1, 10, "y"), false},
		{"policy unchanged", policy(1, 10, "x"), policy(1, 10, "x"), false},
		{"allowlist spec", allowlist(1, 3), allowlist(2, 3), true},
		{"allowlist status", allowlist(1, 3), allowlist(1, 4), true},
		{"allowlist unchanged", allowlist(1, 3), allowlist(1, 3), false},
	} {
		if got := specOrStatusChanged.Update(event.UpdateEvent{ObjectOld: c.old, ObjectNew: c.new}); got != c.want {
			t.Errorf("%s: passed = %v, want %v", c.name, got, c.want)
		}
	}
	if !specOrStatusChanged.Create(event.CreateEvent{Object: policy(1, 0, "")}) || !specOrStatusChanged.Delete(event.DeleteEvent{Object: policy(1, 0, "")}) {
		t.Error("creations and deletions must pass")
	}
}
