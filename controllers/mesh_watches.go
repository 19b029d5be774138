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
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// The functions below map watch events to mesh requests. A map function
// cannot return an error, so a failed cache read is logged: the object's
// next event, or the resync of the informer, maps it again.

// meshOfResource maps a PeerTrustPolicy or PeerAllowlist to its mesh.
func (r *MeshReconciler) meshOfResource(_ context.Context, obj client.Object) []reconcile.Request {
	var mesh string
	switch o := obj.(type) {
	case *v1alpha1.PeerTrustPolicy:
		mesh = o.Spec.MeshName
	case *v1alpha1.PeerAllowlist:
		mesh = o.Spec.MeshName
	}
	if mesh == "" {
		return nil
	}
	return []reconcile.Request{meshRequest(obj.GetNamespace(), mesh)}
}

// meshOfConfigMap maps a mesh ConfigMap to its mesh, so that a ConfigMap
// edited or deleted by hand is restored, and one left behind while the
// operator was down is deleted.
func (r *MeshReconciler) meshOfConfigMap(_ context.Context, obj client.Object) []reconcile.Request {
	mesh := obj.GetLabels()[LabelMesh]
	if mesh == "" || obj.GetName() != ConfigMapName(mesh) {
		return nil
	}
	return []reconcile.Request{meshRequest(obj.GetNamespace(), mesh)}
}

// meshesOfSecret maps a Secret to the meshes of the policies of its
// namespace that reference it.
func (r *MeshReconciler) meshesOfSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	var policies v1alpha1.PeerTrustPolicyList
	if err := r.Client.List(ctx, &policies, client.InNamespace(obj.GetNamespace()),
		client.MatchingFields{indexSharedKeySecret: obj.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing the policies that reference a Secret", "secret", client.ObjectKeyFromObject(obj))
		return nil
	}
	reqs := map[reconcile.Request]struct{}{}
	for _, p := range policies.Items {
		reqs[meshRequest(p.Namespace, p.Spec.MeshName)] = struct{}{}
	}
	return sortedRequests(reqs)
}

// meshesOfPod maps a Pod to the meshes of the allowlists with a podSelector
// entry that selects it: allowlists of the pod's namespace, and allowlists
// anywhere whose entry has a namespaceSelector matching the pod's namespace.
// Update events map both the old and the new pod, so a pod that stops
// matching is caught too.
func (r *MeshReconciler) meshesOfPod(ctx context.Context, obj client.Object) []reconcile.Request {
	logger := log.FromContext(ctx)
	podLabels := labels.Set(obj.GetLabels())
	var local, remote v1alpha1.PeerAllowlistList
	if err := r.Client.List(ctx, &local, client.InNamespace(obj.GetNamespace()),
		client.MatchingFields{indexPodScope: podScopeNamespace}); err != nil {
		logger.Error(err, "listing the allowlists of a pod's namespace", "pod", client.ObjectKeyFromObject(obj))
		return nil
	}
	if err := r.Client.List(ctx, &remote, client.MatchingFields{indexPodScope: podScopeCluster}); err != nil {
		logger.Error(err, "listing the allowlists with a namespaceSelector", "pod", client.ObjectKeyFromObject(obj))
		return nil
	}
	var nsLabels labels.Set
	if len(remote.Items) > 0 {
		ns := &corev1.Namespace{}
		if err := r.Client.Get(ctx, types.NamespacedName{Name: obj.GetNamespace()}, ns); err != nil {
			logger.Error(err, "reading the namespace of a pod", "pod", client.ObjectKeyFromObject(obj))
			return nil
		}
		nsLabels = ns.Labels
	}

	reqs := map[reconcile.Request]struct{}{}
	for _, al := range append(local.Items, remote.Items...) {
		entries, err := podEntries(&al)
		if err != nil {
			continue // an invalid allowlist selects nothing
		}
		for _, e := range entries {
			inScope := (e.namespaces == nil && al.Namespace == obj.GetNamespace()) ||
				(e.namespaces != nil && e.namespaces.Matches(nsLabels))
			if inScope && e.pods.Matches(podLabels) {
				reqs[meshRequest(al.Namespace, al.Spec.MeshName)] = struct{}{}
				break
			}
		}
	}
	return sortedRequests(reqs)
}

// meshesOfNamespace maps a Namespace to the meshes of the allowlists whose
// namespaceSelector selects it. Update events map the old and the new
// labels, so a namespace that stops matching is caught too.
func (r *MeshReconciler) meshesOfNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	var remote v1alpha1.PeerAllowlistList
	if err := r.Client.List(ctx, &remote, client.MatchingFields{indexPodScope: podScopeCluster}); err != nil {
		log.FromContext(ctx).Error(err, "listing the allowlists with a namespaceSelector", "namespace", obj.GetName())
		return nil
	}
	nsLabels := labels.Set(obj.GetLabels())
	reqs := map[reconcile.Request]struct{}{}
	for _, al := range remote.Items {
		entries, err := podEntries(&al)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.namespaces != nil && e.namespaces.Matches(nsLabels) {
				reqs[meshRequest(al.Namespace, al.Spec.MeshName)] = struct{}{}
				break
			}
		}
	}
	return sortedRequests(reqs)
}

// meshOfEndpointSlice maps an EndpointSlice of Service peermesh-<mesh>
// (label kubernetes.io/service-name) to mesh <mesh> of its namespace: nodes
// that come, go or become ready change the mesh's propagation.
func (r *MeshReconciler) meshOfEndpointSlice(_ context.Context, obj client.Object) []reconcile.Request {
	mesh := meshOfServiceName(obj.GetLabels()[discoveryv1.LabelServiceName])
	if mesh == "" {
		return nil
	}
	return []reconcile.Request{meshRequest(obj.GetNamespace(), mesh)}
}

func meshRequest(namespace, mesh string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: mesh}}
}

func sortedRequests(set map[reconcile.Request]struct{}) []reconcile.Request {
	return slices.SortedFunc(maps.Keys(set), func(a, b reconcile.Request) int {
		if a.Namespace != b.Namespace {
			if a.Namespace < b.Namespace {
				return -1
			}
			return 1
		}
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
}

// secretKeysChanged passes Secret creations and deletions, and updates that
// change which keys have a value: all the SharedKey check looks at. The
// cache holds no values (stripSecret), so a rotated key is not an event here;
// nodes read the key themselves.
var secretKeysChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, okOld := e.ObjectOld.(*corev1.Secret)
		n, okNew := e.ObjectNew.(*corev1.Secret)
		if !okOld || !okNew {
			return true
		}
		return !slices.Equal(slices.Sorted(maps.Keys(o.Data)), slices.Sorted(maps.Keys(n.Data)))
	},
}

// specOrStatusChanged passes creations, deletions, and updates that change
// the spec (the generation) or the status of a policy or allowlist. Status
// changes are this controller's own writes: the reconcile they trigger reads
// a cache that holds them, and so corrects a reconcile that compared against
// a stale copy and found nothing to write. That reconcile writes nothing
// when the status is right, so it does not loop.
var specOrStatusChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		if e.ObjectOld == nil || e.ObjectNew == nil || e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() {
			return true
		}
		switch o := e.ObjectOld.(type) {
		case *v1alpha1.PeerTrustPolicy:
			n, ok := e.ObjectNew.(*v1alpha1.PeerTrustPolicy)
			return !ok || !equality.Semantic.DeepEqual(o.Status, n.Status)
		case *v1alpha1.PeerAllowlist:
			n, ok := e.ObjectNew.(*v1alpha1.PeerAllowlist)
			return !ok || !equality.Semantic.DeepEqual(o.Status, n.Status)
		}
		return true
	},
}

// podPeerFieldsChanged passes Pod creations and deletions, and updates that
// change what compilation reads: labels, IPs, phase or deletion.
var podPeerFieldsChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, okOld := e.ObjectOld.(*corev1.Pod)
		n, okNew := e.ObjectNew.(*corev1.Pod)
		if !okOld || !okNew {
			return true
		}
		oIPs, oOK := podAddresses(o)
		nIPs, nOK := podAddresses(n)
		return oOK != nOK || !slices.Equal(oIPs, nIPs) || !maps.Equal(o.Labels, n.Labels)
	},
}
