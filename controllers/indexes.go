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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// Field indexes registered on the manager's cache. The cache also indexes
// every namespaced kind by namespace, and combines that index with these when
// a List has both client.InNamespace and client.MatchingFields.
const (
	// indexMeshName indexes PeerTrustPolicy and PeerAllowlist by
	// spec.meshName, to list the resources of one mesh.
	indexMeshName = "spec.meshName"

	// indexSharedKeySecret indexes PeerTrustPolicy by the name of the Secret
	// its SharedKey trust protocol references (in the policy's namespace),
	// to find the meshes a Secret event concerns.
	indexSharedKeySecret = "spec.incoming.trustProtocol.sharedKeySecretRef.name"

	// indexPodScope indexes PeerAllowlist by where its podSelector entries
	// look for pods: podScopeNamespace when an entry selects pods of the
	// allowlist's own namespace, podScopeCluster when an entry has a
	// namespaceSelector. An allowlist without podSelector entries is not
	// indexed, so Pod and Namespace events never look at it.
	indexPodScope = "peermesh.podScope"

	podScopeNamespace = "namespace"
	podScopeCluster   = "cluster"
)

// setupIndexes registers the field indexes the reconciler and its watch
// mappers list by.
func setupIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &v1alpha1.PeerTrustPolicy{}, indexMeshName, func(o client.Object) []string {
		return []string{o.(*v1alpha1.PeerTrustPolicy).Spec.MeshName}
	}); err != nil {
		return fmt.Errorf("indexing PeerTrustPolicy by %s: %w", indexMeshName, err)
	}
	if err := indexer.IndexField(ctx, &v1alpha1.PeerAllowlist{}, indexMeshName, func(o client.Object) []string {
		return []string{o.(*v1alpha1.PeerAllowlist).Spec.MeshName}
	}); err != nil {
		return fmt.Errorf("indexing PeerAllowlist by %s: %w", indexMeshName, err)
	}
	if err := indexer.IndexField(ctx, &v1alpha1.PeerTrustPolicy{}, indexSharedKeySecret, func(o client.Object) []string {
		if ref := sharedKeySecretRef(o.(*v1alpha1.PeerTrustPolicy)); ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing PeerTrustPolicy by %s: %w", indexSharedKeySecret, err)
	}
	if err := indexer.IndexField(ctx, &v1alpha1.PeerAllowlist{}, indexPodScope, func(o client.Object) []string {
		return podScopes(o.(*v1alpha1.PeerAllowlist))
	}); err != nil {
		return fmt.Errorf("indexing PeerAllowlist by %s: %w", indexPodScope, err)
	}
	return nil
}

// sharedKeySecretRef returns the Secret reference of a SharedKey policy, with
// its key defaulted, or nil for every other trust protocol.
func sharedKeySecretRef(p *v1alpha1.PeerTrustPolicy) *v1alpha1.SecretKeyReference {
	tp := p.Spec.Incoming.TrustProtocol
	if tp.Type != v1alpha1.TrustProtocolSharedKey || tp.SharedKeySecretRef == nil {
		return nil
	}
	ref := *tp.SharedKeySecretRef
	if ref.Key == "" {
		ref.Key = v1alpha1.DefaultSharedKeySecretKey
	}
	return &ref
}

// podScopes returns the indexPodScope values of an allowlist.
func podScopes(al *v1alpha1.PeerAllowlist) []string {
	var own, cluster bool
	for _, e := range al.Spec.Peers {
		switch {
		case e.PodSelector == nil:
		case e.NamespaceSelector == nil:
			own = true
		default:
			cluster = true
		}
	}
	var out []string
	if own {
		out = append(out, podScopeNamespace)
	}
	if cluster {
		out = append(out, podScopeCluster)
	}
	return out
}

// podEntry is a podSelector entry of an allowlist with its selectors parsed.
type podEntry struct {
	// index is the entry's position in spec.peers.
	index int
	// pods selects the pods.
	pods labels.Selector
	// namespaces selects the namespaces searched; nil means only the
	// allowlist's own namespace.
	namespaces labels.Selector
}

// podEntries parses the selectors of an allowlist's podSelector entries. The
// schema cannot check selector semantics (operators, values), so an error
// here makes the allowlist Accepted=False, reason Invalid; the error names
// the entry's field path.
func podEntries(al *v1alpha1.PeerAllowlist) ([]podEntry, error) {
	var out []podEntry
	for i, e := range al.Spec.Peers {
		if e.PodSelector == nil {
			continue
		}
		pe := podEntry{index: i}
		var err error
		if pe.pods, err = metav1.LabelSelectorAsSelector(e.PodSelector); err != nil {
			return nil, fmt.Errorf("spec.peers[%d].podSelector: %w", i, err)
		}
		if e.NamespaceSelector != nil {
			if pe.namespaces, err = metav1.LabelSelectorAsSelector(e.NamespaceSelector); err != nil {
				return nil, fmt.Errorf("spec.peers[%d].namespaceSelector: %w", i, err)
			}
		}
		out = append(out, pe)
	}
	return out, nil
}
