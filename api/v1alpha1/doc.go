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

// Package v1alpha1 holds the peermesh API, group p2p.peermesh.io, version
// v1alpha1:
//
//   - PeerTrustPolicy and PeerAllowlist, the custom resources users write;
//   - PeerNodeConfiguration, the compiled per-mesh configuration the operator
//     writes into a ConfigMap and every peernode applies (it is also the
//     format of peernode's --config file). It is not a custom resource;
//   - the conditions and reasons both resources report;
//   - NodeIdentifierForPod, the rule that derives a pod's node identifier.
//
// Defaulting and validation of PeerNodeConfiguration live here so that the
// operator and the node agree on them: the operator never writes a
// configuration the node would reject.
//
// +kubebuilder:object:generate=true
// +groupName=p2p.peermesh.io
package v1alpha1
