// Package kube is peernode's Kubernetes mode: it follows the mesh's
// ConfigMap (written by the operator) through the API server, with an
// informer limited to that one object, and hands every new
// PeerNodeConfiguration to the node. Mounted ConfigMap volumes lag 60-90 s
// behind the API; a watch delivers changes in milliseconds.
//
// An invalid configuration never replaces a good one: it is counted
// (peermesh_node_config_reloads_total{result="invalid"}), logged, and the
// node keeps enforcing the last good configuration. While the API server is
// unreachable the informer retries in the background and the node keeps
// enforcing what it has.
package kube
