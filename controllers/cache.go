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
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels and annotation of the mesh ConfigMaps.
const (
	// LabelManagedBy marks the ConfigMaps the operator owns; the manager
	// caches only ConfigMaps that carry it with value ManagedByValue.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "peermesh"
	// LabelMesh names the mesh of a ConfigMap.
	LabelMesh = "p2p.peermesh.io/mesh"
	// AnnotationConfigHash holds the configuration's generation (its
	// content hash), so that a reader can compare generations without
	// parsing config.yaml.
	AnnotationConfigHash = "p2p.peermesh.io/config-hash"
	// ConfigMapPrefix prefixes the mesh name in the ConfigMap's name.
	ConfigMapPrefix = "peermesh-"
)

// ConfigMapName returns the name of a mesh's ConfigMap.
func ConfigMapName(meshName string) string { return ConfigMapPrefix + meshName }

// CacheOptions returns the manager cache options the reconciler is built for.
// watchNamespaces restricts every namespaced kind to those namespaces (empty:
// all namespaces); Namespaces, being cluster-scoped, are always watched.
//
// To keep the cache small and free of secrets:
//   - ConfigMaps are cached only when labelled managed-by=peermesh;
//   - Secrets are cached as names and the keys of their non-empty values:
//     the values and annotations (kubectl's last-applied-configuration holds
//     the data) are dropped before they enter the cache;
//   - Pods are cached as the metadata and status fields compilation reads;
//   - Namespaces are cached as name and labels;
//   - EndpointSlices are cached as labels, address type, ports and the
//     addresses and readiness of their endpoints;
//   - managed fields are dropped from everything.
func CacheOptions(watchNamespaces []string) cache.Options {
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}:          {Label: labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue})},
			&corev1.Secret{}:             {Transform: stripSecret},
			&corev1.Pod{}:                {Transform: stripPod},
			&corev1.Namespace{}:          {Transform: stripNamespace},
			&discoveryv1.EndpointSlice{}: {Transform: stripEndpointSlice},
		},
	}
	if len(watchNamespaces) > 0 {
		opts.DefaultNamespaces = make(map[string]cache.Config, len(watchNamespaces))
		for _, ns := range watchNamespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

var (
	_ toolscache.TransformFunc = stripSecret
	_ toolscache.TransformFunc = stripPod
	_ toolscache.TransformFunc = stripNamespace
	_ toolscache.TransformFunc = stripEndpointSlice
)

// stripEndpointSlice keeps what node discovery reads: the service-name label,
// the address type, the ports, and each endpoint's addresses and readiness.
func stripEndpointSlice(in any) (any, error) {
	es, ok := in.(*discoveryv1.EndpointSlice)
	if !ok {
		return in, nil
	}
	out := &discoveryv1.EndpointSlice{TypeMeta: es.TypeMeta, ObjectMeta: keptMeta(&es.ObjectMeta, true),
		AddressType: es.AddressType, Ports: es.Ports}
	if len(es.Endpoints) > 0 {
		out.Endpoints = make([]discoveryv1.Endpoint, len(es.Endpoints))
		for i, ep := range es.Endpoints {
			out.Endpoints[i] = discoveryv1.Endpoint{Addresses: ep.Addresses,
				Conditions: discoveryv1.EndpointConditions{Ready: ep.Conditions.Ready}}
		}
	}
	return out, nil
}

// stripSecret keeps what the SharedKey check needs: whether the Secret exists
// and which keys have a non-empty value. Values become nil.
func stripSecret(in any) (any, error) {
	s, ok := in.(*corev1.Secret)
	if !ok {
		return in, nil
	}
	out := &corev1.Secret{TypeMeta: s.TypeMeta, ObjectMeta: keptMeta(&s.ObjectMeta, false), Type: s.Type}
	for k, v := range s.Data {
		if len(v) == 0 {
			continue
		}
		if out.Data == nil {
			out.Data = make(map[string][]byte, len(s.Data))
		}
		out.Data[k] = nil
	}
	return out, nil
}

// stripPod keeps the labels (for selectors), the deletion timestamp, the phase
// and the pod IPs.
func stripPod(in any) (any, error) {
	p, ok := in.(*corev1.Pod)
	if !ok {
		return in, nil
	}
	return &corev1.Pod{
		TypeMeta:   p.TypeMeta,
		ObjectMeta: keptMeta(&p.ObjectMeta, true),
		Status:     corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}, nil
}

// stripNamespace keeps the labels (for namespace selectors).
func stripNamespace(in any) (any, error) {
	ns, ok := in.(*corev1.Namespace)
	if !ok {
		return in, nil
	}
	return &corev1.Namespace{TypeMeta: ns.TypeMeta, ObjectMeta: keptMeta(&ns.ObjectMeta, true)}, nil
}

func keptMeta(m *metav1.ObjectMeta, withLabels bool) metav1.ObjectMeta {
	out := metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
	}
	if withLabels {
		out.Labels = m.Labels
	}
	return out
}

// podAddresses returns a pod's IPs (status.podIPs, else status.podIP) and
// whether the pod can be a peer: it is not terminating or terminated, and it
// has an IP. Pods that do not qualify are left out of allowlists.
func podAddresses(p *corev1.Pod) ([]netip.Addr, bool) {
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return nil, false
	}
	var ips []netip.Addr
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil {
			ips = append(ips, a)
		}
	}
	for _, ip := range p.Status.PodIPs {
		add(ip.IP)
	}
	if len(ips) == 0 && p.Status.PodIP != "" {
		add(p.Status.PodIP)
	}
	return ips, len(ips) > 0
}
