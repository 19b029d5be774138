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

// Package controllers holds the peermesh operator's reconciler.
//
// The operator reconciles per mesh, not per object: a mesh is identified by
// a namespace and a meshName, and its configuration depends on every
// PeerTrustPolicy and PeerAllowlist of that mesh, on the Pods and Namespaces
// their selectors match, and on the Secret its policy references.
// MeshReconciler therefore receives synthetic requests whose Namespace is the
// mesh's namespace and whose Name is the meshName, fed by watches on all of
// those kinds (see SetupWithManager and docs/architecture-operator.md).
//
// A reconcile lists the mesh's resources from the cache, resolves the policy
// conflict (oldest wins), compiles a v1alpha1.PeerNodeConfiguration, writes
// it to the ConfigMap "peermesh-<mesh>" only when its content differs, and
// patches each resource's status once, only when it differs. Conditions are
// computed by the pure functions of conditions.go.
package controllers
