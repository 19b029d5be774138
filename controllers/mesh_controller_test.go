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

package controllers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/peermesh/peermesh/api/v1alpha1"
	"github.com/peermesh/peermesh/controllers"
)

// ruleStrings renders rules as "<identifier or cidr>[ except a,b] <- <source>"
// for comparisons that print well.
func ruleStrings(rules []v1alpha1.PeerRule) []string {
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		s := string(r.Identifier) + string(r.CIDR)
		if len(r.Except) > 0 {
			ex := make([]string, len(r.Except))
			for i, e := range r.Except {
				ex[i] = string(e)
			}
			s += " except " + strings.Join(ex, ",")
		}
		out = append(out, s+" <- "+r.Source.String())
	}
	slices.Sort(out)
	return out
}

func sameRules(got []v1alpha1.PeerRule, want ...string) (bool, string) {
	g := ruleStrings(got)
	slices.Sort(want)
	if slices.Equal(g, want) {
		return true, ""
	}
	return false, fmt.Sprintf("rules\n  got  %q\n  want %q", g, want)
}

func podID(ns, name string) string { return v1alpha1.NodeIdentifierForPod(ns, name) }

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

// TestCompiledConfiguration checks the configuration compiled from a table
// of inputs, created before the operator starts.
func TestCompiledConfiguration(t *testing.T) {
	type env struct {
		ns    string            // the mesh's namespace
		other map[string]string // extra namespaces by role
	}
	tests := []struct {
		name string
		// extraNamespaces are created with these labels, by role.
		extraNamespaces map[string]map[string]string
		setup           func(t *testing.T, e env)
		// noConfig: the mesh must get no ConfigMap.
		noConfig bool
		check    func(t *testing.T, e env, c *v1alpha1.PeerNodeConfiguration)
	}{{
		name: "no resources",
		setup: func(t *testing.T, e env) {
			// A resource of another mesh proves that the operator ran.
			create(t, policy(e.ns, "other", "other"))
		},
		noConfig: true,
	}, {
		name: "policy only",
		setup: func(t *testing.T, e env) {
			create(t, policy(e.ns, "demo", "m", func(s *v1alpha1.PeerTrustPolicySpec) {
				s.Blocked = &v1alpha1.BlockedPeers{CIDRs: []v1alpha1.CIDR{"192.0.2.0/24"}, Identifiers: []v1alpha1.PeerIdentifier{"retired-7"}}
				s.Limits.MaxOutboundPeers = ptr.To[int32](64)
			}))
		},
		check: func(t *testing.T, e env, c *v1alpha1.PeerNodeConfiguration) {
			if c.PolicySource == nil || *c.PolicySource != (v1alpha1.PolicyReference{Namespace: e.ns, Name: "demo"}) {
				t.Errorf("policySource = %v, want %s/demo", c.PolicySource, e.ns)
			}
			if c.AllowlistActive || len(c.Allowed) > 0 {
				t.Errorf("allowlistActive = %v with %d rules, want off", c.AllowlistActive, len(c.Allowed))
			}
			if c.Mode != v1alpha1.PolicyModeEnforce || *c.Limits.MaxOutboundPeers != 64 || *c.Limits.MaxInboundPeers != 256 {
				t.Errorf("mode %s, limits %d/%d", c.Mode, *c.Limits.MaxInboundPeers, *c.Limits.MaxOutboundPeers)
			}
			if ok, msg := sameRules(c.Blocked,
				"192.0.2.0/24 <- PeerTrustPolicy "+e.ns+"/demo entry 'blocked.cidrs[0]'",
				"retired-7 <- PeerTrustPolicy "+e.ns+"/demo entry 'blocked.identifiers[0]'"); !ok {
				t.Error("blocked", msg)
			}
		},
	}, {
		name: "allowlist of identifiers and cidrs, no policy",
		setup: func(t *testing.T, e env) {
			create(t, allowlist(e.ns, "static", "m",
				v1alpha1.PeerAllowlistEntry{Name: "bastion", Identifier: "bastion-01.example.com"},
				v1alpha1.PeerAllowlistEntry{Name: "office", CIDR: "10.20.0.0/16", Except: []v1alpha1.CIDR{"10.20.99.0/24"}},
				v1alpha1.PeerAllowlistEntry{CIDR: "fd00::/8"},
			))
		},
		check: func(t *testing.T, e env, c *v1alpha1.PeerNodeConfiguration) {
			if c.PolicySource != nil || c.Mode != v1alpha1.PolicyModeEnforce {
				t.Errorf("policySource %v mode %s, want the built-in defaults", c.PolicySource, c.Mode)
			}
			if !c.AllowlistActive {
				t.Error("allowlistActive is false")
			}
			src := "PeerAllowlist " + e.ns + "/static entry "
			if ok, msg := sameRules(c.Allowed,
				"bastion-01.example.com <- "+src+"'bastion'",
				"10.20.0.0/16 except 10.20.99.0/24 <- "+src+"'office'",
				"fd00::/8 <- "+src+"'peers[2]'"); !ok {
				t.Error(msg)
			}
		},
	}, {
		name: "podSelector in the allowlist's namespace",
		setup: func(t *testing.T, e env) {
			peer := map[string]string{"app": "peer"}
			createPod(t, e.ns, "ready", peer, "10.0.0.1")
			createPod(t, e.ns, "dual-stack", peer, "10.0.0.4", "fd00::4")
			createPod(t, e.ns, "no-ip", peer)
			createPod(t, e.ns, "other-app", map[string]string{"app": "other"}, "10.0.0.3")
			done := createPod(t, e.ns, "succeeded", peer, "10.0.0.5")
			done.Status.Phase = corev1.PodSucceeded
			if err := k8s.Status().Update(context.Background(), done); err != nil {
				t.Fatal(err)
			}
			// A terminating pod: a finalizer keeps it, with its IP, after
			// deletion.
			term := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "terminating", Labels: peer, Finalizers: []string{"test.peermesh.io/keep"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
			}
			create(t, term)
			setPodIPs(t, term, "10.0.0.6")
			deleteObj(t, term)
			t.Cleanup(func() {
				_ = k8s.Patch(context.Background(), term, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
			})
			create(t, allowlist(e.ns, "pods", "m", v1alpha1.PeerAllowlistEntry{Name: "peers", PodSelector: sel("app", "peer")}))
		},
		check: func(t *testing.T, e env, c *v1alpha1.PeerNodeConfiguration) {
			src := "PeerAllowlist " + e.ns + "/pods entry 'peers' (pod " + e.ns + "/"
			if ok, msg := sameRules(c.Allowed,
				podID(e.ns, "ready")+" <- "+src+"ready)",
				"10.0.0.1/32 <- "+src+"ready)",
				podID(e.ns, "dual-stack")+" <- "+src+"dual-stack)",
				"10.0.0.4/32 <- "+src+"dual-stack)",
				"fd00::4/128 <- "+src+"dual-stack)"); !ok {
				t.Error(msg)
			}
			al := &v1alpha1.PeerAllowlist{}
			if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: "pods"}, al); err != nil {
				t.Fatal(err)
			}
			if al.Status.Entries == nil || *al.Status.Entries != 2 {
				t.Errorf("status.entries = %v, want 2 (two pods)", al.Status.Entries)
			}
		},
	}, {
		name: "podSelector with namespaceSelector",
		extraNamespaces: map[string]map[string]string{
			"web":   {"team": "web"},
			"other": {"team": "db"},
		},
		setup: func(t *testing.T, e env) {
			fe := map[string]string{"app": "frontend"}
			createPod(t, e.other["web"], "fe-0", fe, "10.1.0.1")
			createPod(t, e.other["web"], "be-0", map[string]string{"app": "backend"}, "10.1.0.2")
			createPod(t, e.other["other"], "fe-0", fe, "10.2.0.1")
			createPod(t, e.ns, "fe-local", fe, "10.3.0.1") // own namespace is not labelled team=web
			create(t, allowlist(e.ns, "web", "m", v1alpha1.PeerAllowlistEntry{
				Name: "frontend", PodSelector: sel("app", "frontend"), NamespaceSelector: sel("team", "web")}))
		},
		check: func(t *testing.T, e env, c *v1alpha1.PeerNodeConfiguration) {
			web := e.other["web"]
			src := "PeerAllowlist " + e.ns + "/web entry 'frontend' (pod " + web + "/fe-0)"
			if ok, msg := sameRules(c.Allowed, podID(web, "fe-0")+" <- "+src, "10.1.0.1/32 <- "+src); !ok {
				t.Error(msg)
			}
		},
	}, {
		name: "blocked lists and audit mode",
		setup: func(t *testing.T, e env) {
			create(t,
				policy(e.ns, "audit", "m", func(s *v1alpha1.PeerTrustPolicySpec) {
					s.Mode = v1alpha1.PolicyModeAudit
					s.Blocked = &v1alpha1.BlockedPeers{
						CIDRs:       []v1alpha1.CIDR{"198.51.100.0/24", "2001:db8::/32"},
						Identifiers: []v1alpha1.PeerIdentifier{"evil-1", "evil-2"},
					}
				}),
				allowlist(e.ns, "friends", "m", v1alpha1.PeerAllowlistEntry{Identifier: "friend-1"}),
			)
		},
		check: func(t *testing.T, e env, c *v1alpha1.PeerNodeConfiguration) {
			if c.Mode != v1alpha1.PolicyModeAudit {
				t.Errorf("mode = %s, want Audit", c.Mode)
			}
			src := "PeerTrustPolicy " + e.ns + "/audit entry "
			if ok, msg := sameRules(c.Blocked,
				"198.51.100.0/24 <- "+src+"'blocked.cidrs[0]'", "2001:db8::/32 <- "+src+"'blocked.cidrs[1]'",
				"evil-1 <- "+src+"'blocked.identifiers[0]'", "evil-2 <- "+src+"'blocked.identifiers[1]'"); !ok {
				t.Error("blocked", msg)
			}
			if ok, msg := sameRules(c.Allowed, "friend-1 <- PeerAllowlist "+e.ns+"/friends entry 'peers[0]'"); !ok {
				t.Error("allowed", msg)
			}
		},
	}, {
		name: "invalid selector fails closed",
		setup: func(t *testing.T, e env) {
			bad := allowlist(e.ns, "bad", "m", v1alpha1.PeerAllowlistEntry{PodSelector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn}}, // In needs values
			}}, v1alpha1.PeerAllowlistEntry{Identifier: "lost"})
			create(t, bad)
		},
		check: func(t *testing.T, e env, c *v1alpha1.PeerNodeConfiguration) {
			if !c.AllowlistActive || len(c.Allowed) != 0 {
				t.Errorf("allowlistActive %v with %q, want active with no rule", c.AllowlistActive, ruleStrings(c.Allowed))
			}
			bad := &v1alpha1.PeerAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "bad"}}
			waitCondition(t, bad, v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonInvalid)
			if c := findCond(bad.Status.Conditions, v1alpha1.ConditionAccepted); !strings.Contains(c.Message, "spec.peers[0].podSelector") {
				t.Errorf("Accepted message %q does not name the field", c.Message)
			}
		},
	}}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env{ns: newNamespace(t, nil), other: map[string]string{}}
			watched := []string{e.ns}
			for role, labels := range tt.extraNamespaces {
				e.other[role] = newNamespace(t, labels)
				watched = append(watched, e.other[role])
			}
			tt.setup(t, e)
			op := startOperator(t, watched...)
			if tt.noConfig {
				op.waitReconciled(t, meshKey(e.ns, "other"), 1)
				if _, _, ok := configOf(t, e.ns, "m"); ok {
					t.Fatal("a mesh without resources got a ConfigMap")
				}
				return
			}
			waitSettled(t, e.ns)
			cm, c := waitConfig(t, e.ns, "m", "the mesh ConfigMap", nil)
			checkConfigMapMeta(t, cm, c, "m")
			tt.check(t, e, c)
		})
	}
}

func findCond(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return &metav1.Condition{}
}

// checkConfigMapMeta checks the labels, hash annotation and owner references
// of a mesh ConfigMap.
func checkConfigMapMeta(t *testing.T, cm *corev1.ConfigMap, c *v1alpha1.PeerNodeConfiguration, mesh string) {
	t.Helper()
	if cm.Labels[controllers.LabelManagedBy] != controllers.ManagedByValue || cm.Labels[controllers.LabelMesh] != mesh {
		t.Errorf("labels = %v", cm.Labels)
	}
	if h := cm.Annotations[controllers.AnnotationConfigHash]; h != c.Generation || h != c.Hash() {
		t.Errorf("hash annotation %q, generation %q, Hash() %q: want all equal", h, c.Generation, c.Hash())
	}
	if c.MeshName != mesh {
		t.Errorf("meshName = %q", c.MeshName)
	}
	var ps v1alpha1.PeerTrustPolicyList
	var als v1alpha1.PeerAllowlistList
	_ = k8s.List(context.Background(), &ps, client.InNamespace(cm.Namespace))
	_ = k8s.List(context.Background(), &als, client.InNamespace(cm.Namespace))
	want := map[string]bool{}
	for _, p := range ps.Items {
		if p.Spec.MeshName == mesh {
			want["PeerTrustPolicy/"+p.Name+"/"+string(p.UID)] = true
		}
	}
	for _, al := range als.Items {
		if al.Spec.MeshName == mesh {
			want["PeerAllowlist/"+al.Name+"/"+string(al.UID)] = true
		}
	}
	got := map[string]bool{}
	for _, o := range cm.OwnerReferences {
		if o.APIVersion != v1alpha1.GroupVersion.String() || ptr.Deref(o.Controller, false) {
			t.Errorf("owner reference %+v: want %s, not a controller", o, v1alpha1.GroupVersion)
		}
		got[o.Kind+"/"+o.Name+"/"+string(o.UID)] = true
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("owner references %v, want %v", got, want)
	}
}

// TestPolicyConflict checks that the oldest policy wins, the other is
// Conflicted naming it, and deleting the winner promotes the other.
func TestPolicyConflict(t *testing.T) {
	ns := newNamespace(t, nil)
	// The older policy sorts last by name, so only age can make it win.
	older := policy(ns, "zz-older", "m")
	create(t, older)
	waitNextSecond(t, older.CreationTimestamp.Time)
	younger := policy(ns, "aa-younger", "m", func(s *v1alpha1.PeerTrustPolicySpec) { s.Mode = v1alpha1.PolicyModeAudit })
	create(t, younger)
	startOperator(t, ns)

	waitCondition(t, older, v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
	waitCondition(t, younger, v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonConflicted)
	if msg := findCond(younger.Status.Conditions, v1alpha1.ConditionAccepted).Message; !strings.Contains(msg, ns+"/zz-older") {
		t.Errorf("Conflicted message %q does not name the winner", msg)
	}
	if cw := younger.Status.ConflictsWith; cw == nil || *cw != (v1alpha1.PolicyReference{Namespace: ns, Name: "zz-older"}) {
		t.Errorf("conflictsWith = %v, want %s/zz-older", cw, ns)
	}
	if older.Status.ConflictsWith != nil {
		t.Errorf("the winner has conflictsWith %v", older.Status.ConflictsWith)
	}
	for _, c := range []struct {
		p      *v1alpha1.PeerTrustPolicy
		status metav1.ConditionStatus
		reason string
	}{
		{older, metav1.ConditionTrue, v1alpha1.ReasonNoNodes},
		{younger, metav1.ConditionFalse, v1alpha1.ReasonNotAccepted},
	} {
		if p := findCond(c.p.Status.Conditions, v1alpha1.ConditionPropagated); p.Status != c.status || p.Reason != c.reason {
			t.Errorf("%s: Propagated %s/%s, want %s/%s", c.p.Name, p.Status, p.Reason, c.status, c.reason)
		}
	}
	if r := findCond(younger.Status.Conditions, v1alpha1.ConditionReady); r.Status != metav1.ConditionFalse || r.Reason != v1alpha1.ReasonConflicted {
		t.Errorf("loser Ready %s/%s, want False/Conflicted", r.Status, r.Reason)
	}
	_, c := waitConfig(t, ns, "m", "the winner's configuration", nil)
	if c.PolicySource == nil || c.PolicySource.Name != "zz-older" || c.Mode != v1alpha1.PolicyModeEnforce {
		t.Errorf("policySource %v mode %s, want zz-older in Enforce", c.PolicySource, c.Mode)
	}
	waitEvent(t, ns, "aa-younger", controllers.EventConflicted)
	waitEvent(t, ns, "zz-older", controllers.EventAccepted)

	deleteObj(t, older)
	waitCondition(t, younger, v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
	if younger.Status.ConflictsWith != nil {
		t.Errorf("the promoted policy keeps conflictsWith %v", younger.Status.ConflictsWith)
	}
	cm, c := waitConfig(t, ns, "m", "the promoted policy's configuration", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return c.PolicySource != nil && c.PolicySource.Name == "aa-younger", fmt.Sprintf("policySource %v", c.PolicySource)
	})
	if c.Mode != v1alpha1.PolicyModeAudit {
		t.Errorf("mode %s, want the promoted policy's Audit", c.Mode)
	}
	checkConfigMapMeta(t, cm, c, "m")
}

// waitNextSecond waits until the API server's creation timestamps (whole
// seconds) can be later than ts.
func waitNextSecond(t *testing.T, ts time.Time) {
	t.Helper()
	eventually(t, "the clock to pass "+ts.String(), func() (bool, string) {
		return time.Now().Truncate(time.Second).After(ts), ""
	})
}

// waitEvent waits for an event with the reason about the named object.
func waitEvent(t *testing.T, ns, name, reason string) {
	t.Helper()
	eventually(t, fmt.Sprintf("a %s event about %s", reason, name), func() (bool, string) {
		var evs corev1.EventList // core/v1 view of events.k8s.io events
		if err := k8s.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == name && e.Reason == reason {
				return true, ""
			}
			seen = append(seen, e.InvolvedObject.Name+":"+e.Reason)
		}
		return false, fmt.Sprintf("events %v", seen)
	})
}

// TestSharedKeySecret follows a SharedKey policy whose Secret is missing,
// then has the wrong key, then exists, then disappears again.
func TestSharedKeySecret(t *testing.T) {
	ns := newNamespace(t, nil)
	p := policy(ns, "sk", "m", func(s *v1alpha1.PeerTrustPolicySpec) {
		s.Incoming.TrustProtocol = v1alpha1.TrustProtocol{Type: v1alpha1.TrustProtocolSharedKey,
			SharedKeySecretRef: &v1alpha1.SecretKeyReference{Name: "mesh-key", Key: "shared"}}
	})
	al := allowlist(ns, "friends", "m", v1alpha1.PeerAllowlistEntry{Identifier: "friend-1"})
	create(t, p, al)
	startOperator(t, ns)

	// Missing Secret and no earlier configuration: nothing is written.
	waitCondition(t, p, v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
	waitCondition(t, al, v1alpha1.ConditionPropagated, metav1.ConditionUnknown, controllers.ReasonPending)
	if msg := findCond(al.Status.Conditions, v1alpha1.ConditionPropagated).Message; !strings.Contains(msg, "no configuration is written") {
		t.Errorf("allowlist Propagated message %q", msg)
	}
	if _, _, ok := configOf(t, ns, "m"); ok {
		t.Fatal("a ConfigMap was written for a policy whose Secret is missing")
	}
	waitEvent(t, ns, "sk", controllers.EventSecretNotFound)

	// The Secret exists but lacks the key.
	const value = "s3cr3t-peermesh-value"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mesh-key"}, StringData: map[string]string{"other": value}}
	create(t, secret)
	eventually(t, "a message about the missing key", func() (bool, string) {
		_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(p), p)
		msg := findCond(p.Status.Conditions, v1alpha1.ConditionAccepted).Message
		return strings.Contains(msg, `no key "shared"`), msg
	})

	// The key appears: the policy is accepted and compiled, by reference.
	update(t, secret, func(s *corev1.Secret) { s.Data["shared"] = []byte(value) })
	waitCondition(t, p, v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
	cm, c := waitConfig(t, ns, "m", "the SharedKey configuration", nil)
	want := v1alpha1.NamespacedSecretKeyReference{Namespace: ns, Name: "mesh-key", Key: "shared"}
	if ref := c.Incoming.TrustProtocol.SharedKeySecretRef; ref == nil || *ref != want {
		t.Errorf("sharedKeySecretRef = %v, want %v", ref, want)
	}
	assertNoSecret(t, cm, value)

	// The Secret goes: the policy is not accepted, and the mesh keeps the
	// last good policy while allowlist changes still go through.
	deleteObj(t, secret)
	waitCondition(t, p, v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
	update(t, al, func(a *v1alpha1.PeerAllowlist) {
		a.Spec.Peers = append(a.Spec.Peers, v1alpha1.PeerAllowlistEntry{Identifier: "friend-2"})
	})
	cm, c = waitConfig(t, ns, "m", "the new allowlist entry under the last good policy", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return len(c.Allowed) == 2, fmt.Sprintf("%q", ruleStrings(c.Allowed))
	})
	if ref := c.Incoming.TrustProtocol.SharedKeySecretRef; c.PolicySource == nil || c.PolicySource.Name != "sk" || ref == nil || *ref != want {
		t.Errorf("policySource %v, sharedKeySecretRef %v: want the last good policy kept", c.PolicySource, ref)
	}
	assertNoSecret(t, cm, value)
}

func assertNoSecret(t *testing.T, cm *corev1.ConfigMap, value string) {
	t.Helper()
	for k, v := range cm.Data {
		if strings.Contains(v, value) {
			t.Errorf("ConfigMap key %s holds the Secret's value", k)
		}
	}
	for k, v := range cm.Annotations {
		if strings.Contains(v, value) {
			t.Errorf("ConfigMap annotation %s holds the Secret's value", k)
		}
	}
}

// TestPodSelection follows pods and namespaces in and out of selectors.
func TestPodSelection(t *testing.T) {
	ns := newNamespace(t, nil)
	remote := newNamespace(t, nil)
	create(t,
		allowlist(ns, "local", "m", v1alpha1.PeerAllowlistEntry{Name: "peers", PodSelector: sel("app", "peer")}),
		allowlist(ns, "remote", "m", v1alpha1.PeerAllowlistEntry{Name: "fe", PodSelector: sel("app", "fe"), NamespaceSelector: sel("team", "web")}),
	)
	pod := createPod(t, ns, "p-0", nil, "10.0.0.1")
	createPod(t, remote, "fe-0", map[string]string{"app": "fe"}, "10.9.0.1")
	startOperator(t, ns, remote)

	waitSettled(t, ns)
	_, c := waitConfig(t, ns, "m", "an active allowlist", nil)
	if !c.AllowlistActive || len(c.Allowed) != 0 {
		t.Fatalf("allowlistActive %v, rules %q: want active and empty", c.AllowlistActive, ruleStrings(c.Allowed))
	}

	local := "PeerAllowlist " + ns + "/local entry 'peers' (pod " + ns + "/p-0)"
	update(t, pod, func(p *corev1.Pod) { p.Labels = map[string]string{"app": "peer"} })
	waitConfig(t, ns, "m", "the labelled pod", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return sameRules(c.Allowed, podID(ns, "p-0")+" <- "+local, "10.0.0.1/32 <- "+local)
	})
	al := &v1alpha1.PeerAllowlist{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "local"}}
	eventually(t, "status.entries 1", func() (bool, string) {
		_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(al), al)
		return ptr.Deref(al.Status.Entries, -1) == 1, fmt.Sprint(ptr.Deref(al.Status.Entries, -1))
	})

	setPodIPs(t, pod, "10.0.0.2")
	waitConfig(t, ns, "m", "the pod's new IP", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return sameRules(c.Allowed, podID(ns, "p-0")+" <- "+local, "10.0.0.2/32 <- "+local)
	})

	update(t, pod, func(p *corev1.Pod) { p.Labels = nil })
	waitConfig(t, ns, "m", "the unlabelled pod to leave", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return sameRules(c.Allowed)
	})

	remoteSrc := "PeerAllowlist " + ns + "/remote entry 'fe' (pod " + remote + "/fe-0)"
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: remote}}
	update(t, nsObj, func(n *corev1.Namespace) { n.Labels = map[string]string{"team": "web"} })
	waitConfig(t, ns, "m", "the pod of the labelled namespace", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return sameRules(c.Allowed, podID(remote, "fe-0")+" <- "+remoteSrc, "10.9.0.1/32 <- "+remoteSrc)
	})
	update(t, nsObj, func(n *corev1.Namespace) { n.Labels = map[string]string{"team": "db"} })
	waitConfig(t, ns, "m", "the pod of the unlabelled namespace to leave", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return sameRules(c.Allowed)
	})

	deleteObj(t, pod)
}

// TestDeletion checks that the ConfigMap follows the resources of its mesh
// and is deleted with the last of them, also when that happens while the
// operator is down.
func TestDeletion(t *testing.T) {
	ns := newNamespace(t, nil)
	p := policy(ns, "p", "m")
	al := allowlist(ns, "al", "m", v1alpha1.PeerAllowlistEntry{Identifier: "x"})
	p2 := policy(ns, "p2", "m2")
	create(t, p, al, p2)
	op := startOperator(t, ns)
	cm, c := waitConfig(t, ns, "m", "the ConfigMap", nil)
	checkConfigMapMeta(t, cm, c, "m")

	deleteObj(t, al)
	cm, c = waitConfig(t, ns, "m", "the allowlist to leave", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return !c.AllowlistActive, "allowlist still active"
	})
	checkConfigMapMeta(t, cm, c, "m")

	deleteObj(t, p)
	eventually(t, "the ConfigMap to be deleted", func() (bool, string) {
		_, _, ok := configOf(t, ns, "m")
		return !ok, "it exists"
	})

	// Deleted while the operator is down: the restarted operator finds the
	// ConfigMap through its watch and deletes it.
	waitConfig(t, ns, "m2", "the second mesh's ConfigMap", nil)
	op.stop(t)
	deleteObj(t, p2)
	startOperator(t, ns)
	eventually(t, "the orphaned ConfigMap to be deleted", func() (bool, string) {
		_, _, ok := configOf(t, ns, "m2")
		return !ok, "it exists"
	})
}

// TestObservedGeneration checks that status follows spec changes.
func TestObservedGeneration(t *testing.T) {
	ns := newNamespace(t, nil)
	p := policy(ns, "p", "m")
	create(t, p)
	startOperator(t, ns)
	waitCondition(t, p, v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
	if p.Generation != 1 {
		t.Fatalf("generation %d", p.Generation)
	}
	update(t, p, func(p *v1alpha1.PeerTrustPolicy) { p.Spec.Mode = v1alpha1.PolicyModeAudit })
	if p.Generation != 2 {
		t.Fatalf("generation %d after a spec change", p.Generation)
	}
	waitCondition(t, p, v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
	for _, c := range p.Status.Conditions {
		if c.ObservedGeneration != 2 {
			t.Errorf("condition %s observedGeneration %d, want 2", c.Type, c.ObservedGeneration)
		}
	}
	waitConfig(t, ns, "m", "Audit mode", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return c.Mode == v1alpha1.PolicyModeAudit, string(c.Mode)
	})
}

// TestRestartWritesNothing restarts the operator over a settled mesh and
// checks that the new one reconciles it into the identical ConfigMap without
// a single write.
func TestRestartWritesNothing(t *testing.T) {
	ns := newNamespace(t, nil)
	older := policy(ns, "older", "m", func(s *v1alpha1.PeerTrustPolicySpec) {
		s.Blocked = &v1alpha1.BlockedPeers{Identifiers: []v1alpha1.PeerIdentifier{"evil"}}
	})
	create(t, older)
	waitNextSecond(t, older.CreationTimestamp.Time)
	create(t,
		policy(ns, "younger", "m"),
		allowlist(ns, "static", "m", v1alpha1.PeerAllowlistEntry{Identifier: "a"}, v1alpha1.PeerAllowlistEntry{CIDR: "10.0.0.0/8"}),
		allowlist(ns, "pods", "m", v1alpha1.PeerAllowlistEntry{PodSelector: sel("app", "peer")}),
		allowlist(ns, "invalid", "m", v1alpha1.PeerAllowlistEntry{PodSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}}),
	)
	createPod(t, ns, "peer-0", map[string]string{"app": "peer"}, "10.1.1.1")
	first := startOperator(t, ns)
	waitSettled(t, ns)
	cm, _ := waitConfig(t, ns, "m", "the ConfigMap", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return len(c.Allowed) == 4, fmt.Sprintf("%q", ruleStrings(c.Allowed))
	})
	before := resourceVersions(t, ns)
	first.stop(t)

	second := startOperator(t, ns)
	second.waitReconciled(t, meshKey(ns, "m"), 1)
	after := resourceVersions(t, ns)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("the restarted operator wrote:\n before %v\n after  %v", before, after)
	}
	cm2, _, _ := configOf(t, ns, "m")
	if cm2.Data[v1alpha1.ConfigMapKey] != cm.Data[v1alpha1.ConfigMapKey] {
		t.Error("the restarted operator compiled a different configuration")
	}

	// A running operator also writes nothing for an event that changes no
	// input: a foreign annotation on the ConfigMap triggers a reconcile.
	n := second.reconciledCount(meshKey(ns, "m"))
	update(t, cm2, func(cm *corev1.ConfigMap) { cm.Annotations["example.com/note"] = "hello" })
	before["ConfigMap/"+cm2.Name] = cm2.ResourceVersion
	second.waitReconciled(t, meshKey(ns, "m"), n+1)
	if after := resourceVersions(t, ns); fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("a reconcile of unchanged inputs wrote:\n before %v\n after  %v", before, after)
	}

	for _, result := range []string{controllers.WriteCreated, controllers.WriteUpdated, controllers.WriteDeleted, controllers.WriteError} {
		if n := counterValue(t, second.metrics.ConfigMapWrites.WithLabelValues(result)); n != 0 {
			t.Errorf("configmap_writes_total{result=%q} = %v after restart, want 0", result, n)
		}
	}
	if n := gaugeValue(t, second.metrics.CompiledMeshes); n != 1 {
		t.Errorf("compiled_meshes = %v, want 1", n)
	}
	for state, want := range map[string]float64{controllers.StateAccepted: 1, controllers.StateConflicted: 1} {
		if n := gaugeValue(t, second.metrics.Policies.WithLabelValues(v1alpha1.SourceKindPeerTrustPolicy, state)); n != want {
			t.Errorf("policies{kind=PeerTrustPolicy,state=%s} = %v, want %v", state, n, want)
		}
	}
	for state, want := range map[string]float64{controllers.StateAccepted: 2, controllers.StateInvalid: 1} {
		if n := gaugeValue(t, second.metrics.Policies.WithLabelValues(v1alpha1.SourceKindPeerAllowlist, state)); n != want {
			t.Errorf("policies{kind=PeerAllowlist,state=%s} = %v, want %v", state, n, want)
		}
	}
}

// resourceVersions maps every resource of ns that the operator writes to
// its resourceVersion.
func resourceVersions(t *testing.T, ns string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var ps v1alpha1.PeerTrustPolicyList
	var als v1alpha1.PeerAllowlistList
	var cms corev1.ConfigMapList
	for _, l := range []client.ObjectList{&ps, &als, &cms} {
		if err := k8s.List(context.Background(), l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range ps.Items {
		out["PeerTrustPolicy/"+p.Name] = p.ResourceVersion
	}
	for _, al := range als.Items {
		out["PeerAllowlist/"+al.Name] = al.ResourceVersion
	}
	for _, cm := range cms.Items {
		out["ConfigMap/"+cm.Name] = cm.ResourceVersion
	}
	return out
}

// TestConfigMapDrift checks that a ConfigMap edited or deleted by hand is
// restored.
func TestConfigMapDrift(t *testing.T) {
	ns := newNamespace(t, nil)
	create(t, policy(ns, "p", "m"))
	startOperator(t, ns)
	cm, want := waitConfig(t, ns, "m", "the ConfigMap", nil)
	waitEvent(t, ns, cm.Name, controllers.EventCompiled)
	waitEvent(t, ns, "p", controllers.EventCompiled)
	update(t, cm, func(cm *corev1.ConfigMap) { cm.Data[v1alpha1.ConfigMapKey] = "mode: Audit\n" })
	waitConfig(t, ns, "m", "the edited ConfigMap to be restored", func(c *v1alpha1.PeerNodeConfiguration) (bool, string) {
		return c.Generation == want.Generation, c.Generation
	})
	deleteObj(t, cm)
	waitConfig(t, ns, "m", "the deleted ConfigMap to be restored", nil)
}

// TestWriteFailures checks the two ways a write fails: a ConfigMap name
// taken by a ConfigMap the operator does not manage, and a configuration
// too large for a ConfigMap.
func TestWriteFailures(t *testing.T) {
	t.Run("name taken", func(t *testing.T) {
		ns := newNamespace(t, nil)
		foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: controllers.ConfigMapName("m")}, Data: map[string]string{"mine": "yes"}}
		p := policy(ns, "p", "m")
		create(t, foreign, p)
		startOperator(t, ns)
		p2 := &v1alpha1.PeerTrustPolicy{ObjectMeta: p.ObjectMeta}
		eventually(t, "Propagated=False WriteFailed", func() (bool, string) {
			_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(p2), p2)
			c := findCond(p2.Status.Conditions, v1alpha1.ConditionPropagated)
			return c.Reason == v1alpha1.ReasonWriteFailed && strings.Contains(c.Message, "not managed by peermesh"), c.Reason + ": " + c.Message
		})
		if p2.Status.ObservedGeneration != 0 {
			t.Errorf("observedGeneration %d after a failed reconcile, want 0", p2.Status.ObservedGeneration)
		}
		got := &corev1.ConfigMap{}
		_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(foreign), got)
		if got.Data["mine"] != "yes" || len(got.Data) != 1 {
			t.Errorf("the foreign ConfigMap was changed: %v", got.Data)
		}
		deleteObj(t, foreign)
		waitCondition(t, p2, v1alpha1.ConditionPropagated, metav1.ConditionTrue, v1alpha1.ReasonNoNodes)
		waitConfig(t, ns, "m", "the ConfigMap once the name is free", nil)
	})

	t.Run("too large", func(t *testing.T) {
		ns := newNamespace(t, nil)
		// Large configurations are stored gzipped; random identifiers do
		// not compress: 10 allowlists of 1,024 random 200-character
		// identifiers stay over 1 MiB.
		rng := rand.New(rand.NewPCG(1, 2))
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		var als []client.Object
		for a := range 10 {
			al := allowlist(ns, fmt.Sprintf("big-%02d", a), "m")
			for range 1024 {
				id := make([]byte, 200)
				for i := range id {
					id[i] = alphabet[rng.IntN(len(alphabet))]
				}
				al.Spec.Peers = append(al.Spec.Peers, v1alpha1.PeerAllowlistEntry{Identifier: v1alpha1.PeerIdentifier(id)})
			}
			als = append(als, al)
		}
		create(t, als...)
		op := startOperator(t, ns)
		al := als[0].(*v1alpha1.PeerAllowlist)
		eventually(t, "Propagated=False WriteFailed", func() (bool, string) {
			_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(al), al)
			c := findCond(al.Status.Conditions, v1alpha1.ConditionPropagated)
			return c.Reason == v1alpha1.ReasonWriteFailed && strings.Contains(c.Message, "more than the 1048576 bytes"), c.Reason + ": " + c.Message
		})
		if _, _, ok := configOf(t, ns, "m"); ok {
			t.Error("a ConfigMap was written")
		}
		if n := counterValue(t, op.metrics.ConfigMapWrites.WithLabelValues(controllers.WriteError)); n < 1 {
			t.Errorf("configmap_writes_total{result=error} = %v", n)
		}
		waitEvent(t, ns, al.Name, controllers.EventWriteFailed)
	})
}
