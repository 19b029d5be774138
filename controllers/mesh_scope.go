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
	"cmp"
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// meshScope is the state of one mesh reconcile: its inputs as read from the
// cache, the verdict on each resource, and the outcome of the write. Phases
// fill it in order; the deferred status patch reads it.
type meshScope struct {
	key types.NamespacedName // Namespace: the mesh's namespace; Name: its meshName

	// policies are in conflict order (the one in force first), allowlists
	// by name. Resources being deleted are left out: they no longer count.
	policies   []*v1alpha1.PeerTrustPolicy
	allowlists []*v1alpha1.PeerAllowlist
	// configMap is the mesh's ConfigMap as cached, nil when there is none.
	configMap *corev1.ConfigMap

	policyAcceptance    map[string]acceptance // by name
	allowlistAcceptance map[string]acceptance // by name
	allowlistEntries    map[string]int32      // by name; status.entries
	allowed             []v1alpha1.PeerRule   // rules of every accepted allowlist

	// config is the compiled configuration and data its serialisation;
	// config is nil when nothing can be written, and notWritten says why.
	config     *v1alpha1.PeerNodeConfiguration
	data       string
	notWritten string
	// cmData and cmBinary are data as the ConfigMap stores it: text, or
	// gzipped when large (v1alpha1.EncodeConfigMapData).
	cmData   map[string]string
	cmBinary map[string][]byte

	// written is the Propagated verdict for accepted resources; zero until
	// the write phase decides it.
	written propagation
	// nodes counts the mesh's nodes and those that applied config; nil
	// unless the ConfigMap holds config and the nodes were probed.
	nodes *v1alpha1.NodeSyncStatus
	// upToDate is true once the ConfigMap holds config.
	upToDate bool
	// changed is the ConfigMap after a write that changed its content, for
	// the Compiled event; nil otherwise.
	changed *corev1.ConfigMap
}

func (s *meshScope) empty() bool { return len(s.policies) == 0 && len(s.allowlists) == 0 }

// winner returns the policy in force (or that would be, when it is not
// accepted), nil when the mesh has no policy.
func (s *meshScope) winner() *v1alpha1.PeerTrustPolicy {
	if len(s.policies) == 0 {
		return nil
	}
	return s.policies[0]
}

// anchor is the resource that mesh-level events (Compiled, WriteFailed) are
// reported on besides the ConfigMap: the policy in force, else the first
// allowlist.
func (s *meshScope) anchor() client.Object {
	if w := s.winner(); w != nil {
		return w
	}
	if len(s.allowlists) > 0 {
		return s.allowlists[0]
	}
	return nil
}

// loadScope lists the mesh's resources and its ConfigMap from the cache.
func (r *MeshReconciler) loadScope(ctx context.Context, mesh types.NamespacedName) (*meshScope, error) {
	s := &meshScope{
		key:                 mesh,
		policyAcceptance:    map[string]acceptance{},
		allowlistAcceptance: map[string]acceptance{},
		allowlistEntries:    map[string]int32{},
	}
	inMesh := []client.ListOption{client.InNamespace(mesh.Namespace), client.MatchingFields{indexMeshName: mesh.Name}}

	var policies v1alpha1.PeerTrustPolicyList
	if err := r.Client.List(ctx, &policies, inMesh...); err != nil {
		return nil, fmt.Errorf("listing the PeerTrustPolicies of mesh %s: %w", mesh, err)
	}
	for i := range policies.Items {
		if p := &policies.Items[i]; p.DeletionTimestamp.IsZero() {
			s.policies = append(s.policies, p)
		}
	}
	sortPolicies(s.policies)

	var allowlists v1alpha1.PeerAllowlistList
	if err := r.Client.List(ctx, &allowlists, inMesh...); err != nil {
		return nil, fmt.Errorf("listing the PeerAllowlists of mesh %s: %w", mesh, err)
	}
	for i := range allowlists.Items {
		if al := &allowlists.Items[i]; al.DeletionTimestamp.IsZero() {
			s.allowlists = append(s.allowlists, al)
		}
	}
	slices.SortFunc(s.allowlists, func(a, b *v1alpha1.PeerAllowlist) int { return cmp.Compare(a.Name, b.Name) })

	cm := &corev1.ConfigMap{}
	switch err := r.Client.Get(ctx, types.NamespacedName{Namespace: mesh.Namespace, Name: ConfigMapName(mesh.Name)}, cm); {
	case err == nil:
		s.configMap = cm
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading ConfigMap %s/%s: %w", mesh.Namespace, ConfigMapName(mesh.Name), err)
	}
	return s, nil
}

// sortPolicies puts policies in conflict order: the oldest by
// creationTimestamp first, ties broken by namespace/name. The first is the
// policy in force.
func sortPolicies(ps []*v1alpha1.PeerTrustPolicy) {
	slices.SortFunc(ps, func(a, b *v1alpha1.PeerTrustPolicy) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}

// resolvePolicies decides which policy is in force and whether it can be:
// the oldest wins; the others are Conflicted; the winner is SecretNotFound
// when its SharedKey Secret or key is missing, and Invalid when it compiles
// into a configuration nodes would refuse.
//
// A winner that is not accepted keeps winning: a younger policy never takes
// over because the older one is broken, since that could silently weaken the
// mesh (for example from SharedKey to Ping).
func (r *MeshReconciler) resolvePolicies(ctx context.Context, s *meshScope) error {
	w := s.winner()
	if w == nil {
		return nil
	}
	ref := v1alpha1.PolicyReference{Namespace: w.Namespace, Name: w.Name}
	for _, p := range s.policies[1:] {
		s.policyAcceptance[p.Name] = acceptance{
			reason: v1alpha1.ReasonConflicted,
			message: fmt.Sprintf("PeerTrustPolicy %s is older and governs mesh %q: at most one policy applies per mesh, the oldest",
				ref, s.key.Name),
			conflictsWith: &ref,
		}
	}

	a, err := r.checkSharedKeySecret(ctx, w)
	if err != nil {
		return err
	}
	if a.accepted() {
		c := v1alpha1.ConfigurationForPolicy(s.key.Name, w)
		c.Default()
		if err := c.Validate(); err != nil {
			a = acceptance{reason: v1alpha1.ReasonInvalid, message: err.Error()}
		}
	}
	s.policyAcceptance[w.Name] = a
	return nil
}

// checkSharedKeySecret returns Accepted unless p uses SharedKey and its
// Secret does not exist or has no non-empty value under the key. The Secret's
// value is never read: the cache holds only its keys (CacheOptions).
func (r *MeshReconciler) checkSharedKeySecret(ctx context.Context, p *v1alpha1.PeerTrustPolicy) (acceptance, error) {
	ok := acceptance{reason: v1alpha1.ReasonAccepted, message: fmt.Sprintf("the policy governs mesh %q", p.Spec.MeshName)}
	ref := sharedKeySecretRef(p)
	if ref == nil {
		return ok, nil
	}
	secret := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: ref.Name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		return acceptance{reason: v1alpha1.ReasonSecretNotFound, message: fmt.Sprintf(
			"Secret %q of the SharedKey trust protocol does not exist in namespace %q; the mesh keeps its last configuration until it does",
			ref.Name, p.Namespace)}, nil
	case err != nil:
		return acceptance{}, fmt.Errorf("reading Secret %s/%s: %w", p.Namespace, ref.Name, err)
	}
	if _, found := secret.Data[ref.Key]; !found {
		return acceptance{reason: v1alpha1.ReasonSecretNotFound, message: fmt.Sprintf(
			"Secret %q has no key %q with a value for the SharedKey trust protocol; the mesh keeps its last configuration until it does",
			ref.Name, ref.Key)}, nil
	}
	return ok, nil
}

// compileAllowlists turns every allowlist into rules: identifier and cidr
// entries as they are, podSelector entries resolved to the identity and IPs
// of each pod they select. An allowlist with an unusable selector is Invalid
// and contributes no rule, yet still counts as an allowlist of the mesh, so
// the mesh fails closed.
func (r *MeshReconciler) compileAllowlists(ctx context.Context, s *meshScope) error {
	pods := &podSource{reader: r.Client, byNamespace: map[string][]corev1.Pod{}}
	for _, al := range s.allowlists {
		entries, err := podEntries(al)
		if err != nil {
			s.allowlistAcceptance[al.Name] = acceptance{reason: v1alpha1.ReasonInvalid, message: fmt.Sprintf(
				"%v; none of its entries is compiled, and peers that no other allowlist of mesh %q allows are denied", err, s.key.Name)}
			s.allowlistEntries[al.Name] = 0
			continue
		}
		rules := v1alpha1.StaticAllowRules(al)
		count := len(rules)
		for _, e := range entries {
			matched, err := pods.selected(ctx, al.Namespace, e)
			if err != nil {
				return err
			}
			for i := range matched {
				p := &matched[i]
				ips, ok := podAddresses(p)
				if !ok {
					continue
				}
				rules = append(rules, v1alpha1.PodAllowRules(al, e.index, p.Namespace, p.Name, ips)...)
				count++
			}
		}
		s.allowed = append(s.allowed, rules...)
		s.allowlistEntries[al.Name] = int32(count)
		s.allowlistAcceptance[al.Name] = acceptance{reason: v1alpha1.ReasonAccepted,
			message: fmt.Sprintf("the allowlist applies to mesh %q", s.key.Name)}
	}
	return nil
}

// podSource lists pods from the cache at most once per namespace, or once
// for all namespaces when an entry has a namespaceSelector.
type podSource struct {
	reader      client.Reader
	byNamespace map[string][]corev1.Pod
	all         []corev1.Pod // every cached pod, once an entry needed them
	allLoaded   bool
	nsLabels    map[string]labels.Set
}

// selected returns the pods entry e of an allowlist in namespace ns selects,
// in namespace/name order.
func (p *podSource) selected(ctx context.Context, ns string, e podEntry) ([]corev1.Pod, error) {
	var candidates []corev1.Pod
	if e.namespaces == nil {
		var err error
		if candidates, err = p.inNamespace(ctx, ns); err != nil {
			return nil, err
		}
	} else if err := p.loadAll(ctx); err != nil {
		return nil, err
	} else {
		candidates = p.all
	}
	var out []corev1.Pod
	for _, pod := range candidates {
		if !e.pods.Matches(labels.Set(pod.Labels)) {
			continue
		}
		if e.namespaces != nil && !e.namespaces.Matches(p.nsLabels[pod.Namespace]) {
			continue
		}
		out = append(out, pod)
	}
	return out, nil
}

func (p *podSource) inNamespace(ctx context.Context, ns string) ([]corev1.Pod, error) {
	if pods, ok := p.byNamespace[ns]; ok {
		return pods, nil
	}
	var list corev1.PodList
	if err := p.reader.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing pods in namespace %s: %w", ns, err)
	}
	sortPods(list.Items)
	p.byNamespace[ns] = list.Items
	return list.Items, nil
}

// loadAll lists the pods of every watched namespace and the labels of every
// namespace. Namespaces the manager does not watch have no pods here: a
// namespaceSelector reaches only watched namespaces.
func (p *podSource) loadAll(ctx context.Context) error {
	if p.allLoaded {
		return nil
	}
	var pods corev1.PodList
	if err := p.reader.List(ctx, &pods); err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	var nss corev1.NamespaceList
	if err := p.reader.List(ctx, &nss); err != nil {
		return fmt.Errorf("listing namespaces: %w", err)
	}
	sortPods(pods.Items)
	p.all = pods.Items
	p.nsLabels = make(map[string]labels.Set, len(nss.Items))
	for _, ns := range nss.Items {
		p.nsLabels[ns.Name] = ns.Labels
	}
	p.allLoaded = true
	return nil
}

func sortPods(pods []corev1.Pod) {
	slices.SortFunc(pods, func(a, b corev1.Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}
