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

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the peermesh API.
	GroupVersion = schema.GroupVersion{Group: "p2p.peermesh.io", Version: "v1alpha1"}

	// SchemeBuilder registers the custom resources of this package with a
	// runtime.Scheme. It is apimachinery's builder, so importing this package
	// does not pull controller-runtime into API clients.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group and version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&PeerTrustPolicy{}, &PeerTrustPolicyList{},
		&PeerAllowlist{}, &PeerAllowlistList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
