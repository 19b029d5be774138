// Package e2e holds the end-to-end suite (`make test-e2e`, build tag e2e):
// the real control plane from bin/k8s, the CRDs applied with kubectl, the
// operator binary running out of cluster, and peernode processes on
// loopback in Kubernetes mode, driven with kubectl.
package e2e
