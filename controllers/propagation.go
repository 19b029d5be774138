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
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// Node discovery. The nodes of mesh <mesh> in namespace <ns> are the ready
// endpoints of the EndpointSlices of ns labelled
// kubernetes.io/service-name=peermesh-<mesh>, that is of the (headless)
// Service peermesh-<mesh> that the Helm chart creates for the mesh's
// peernode pods. The port named "admin" of an EndpointSlice is the admin
// HTTP port of its endpoints; a node's configuration generation is read from
// http://<address>:<admin port>/debug/config. EndpointSlices may also be
// created by hand (the e2e suite registers nodes running outside the cluster
// that way).
const (
	// AdminPortName names the EndpointSlice port of the nodes' admin server.
	AdminPortName = "admin"
	// DebugConfigPath is the node endpoint that reports the applied
	// configuration and its generation.
	DebugConfigPath = "/debug/config"

	// defaultProbeTimeout bounds one probe of one node.
	defaultProbeTimeout = 2 * time.Second
	// defaultProbeParallelism bounds the concurrent probes of one mesh.
	defaultProbeParallelism = 16
	// defaultPropagationRequeue is how soon a mesh whose nodes are not all
	// in sync is reconciled again.
	defaultPropagationRequeue = 2 * time.Second
)

// NodeProber reads the configuration generation a node applies. url is the
// node's /debug/config URL. Implementations must be safe for concurrent use.
type NodeProber interface {
	Generation(ctx context.Context, url string) (string, error)
}

// HTTPProber is the NodeProber of the operator: GET url, decode
// {"generation": ...}.
type HTTPProber struct {
	// Client is the HTTP client; nil means a client without keep-alives
	// (nodes come and go, and a mesh is probed every few seconds at most).
	Client *http.Client
}

// defaultProbeClient talks to nodes directly: no proxy from the environment
// (node addresses are pod IPs), no connection reuse.
var defaultProbeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

// Generation implements NodeProber.
func (p HTTPProber) Generation(ctx context.Context, url string) (string, error) {
	c := p.Client
	if c == nil {
		c = defaultProbeClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var body struct {
		Generation string `json:"generation"`
	}
	// The configuration itself can be large; only the generation is read,
	// and the body is bounded (a ConfigMap holds at most 1 MiB, as JSON
	// somewhat more).
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("GET %s: decoding the response: %w", url, err)
	}
	return body.Generation, nil
}

// nodeURLs returns the /debug/config URLs of the ready endpoints of eps,
// sorted and without duplicates,. An endpoint whose ready condition is unset
// counts as ready (as the EndpointSlice API says consumers should), one
// being terminated does not; a slice without a port named admin contributes
// nothing.
func nodeURLs(eps []discoveryv1.EndpointSlice) []string {
	var urls []string
	for i := range eps {
		es := &eps[i]
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		var port int32
		for _, p := range es.Ports {
			if p.Name != nil && *p.Name == AdminPortName && p.Port != nil {
				port = *p.Port
				break
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if len(ep.Addresses) == 0 {
				continue
			}
			// The addresses of one endpoint are fungible: one node.
			host := net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))
			urls = append(urls, "http://"+host+DebugConfigPath)
		}
	}
	slices.Sort(urls)
	return slices.Compact(urls)
}

// probeNodes asks every node its generation, at most limit at a time and
// each within timeout, and returns how many report generation. A node that
// cannot be reached or answers badly is not in sync.
func probeNodes(ctx context.Context, prober NodeProber, urls []string, generation string, limit int, timeout time.Duration) int {
	var inSync atomic.Int32
	var g errgroup.Group
	g.SetLimit(limit)
	logger := log.FromContext(ctx)
	for _, u := range urls {
		g.Go(func() error {
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			got, err := prober.Generation(pctx, u)
			switch {
			case err != nil:
				logger.V(1).Info("probing a node failed", "url", u, "error", err.Error())
			case got == generation:
				inSync.Add(1)
			default:
				logger.V(1).Info("node runs another generation", "url", u, "generation", got, "want", generation)
			}
			return nil
		})
	}
	_ = g.Wait()
	return int(inSync.Load())
}

// nodePropagation is the Propagated verdict for a configuration of
// generation that total nodes run, inSync of which applied it.
func nodePropagation(generation string, total, inSync int) propagation {
	switch {
	case total == 0:
		return propagation{status: metav1.ConditionTrue, reason: v1alpha1.ReasonNoNodes,
			message: fmt.Sprintf("generation %.12s is written to the mesh ConfigMap; the mesh has no node to wait for", generation)}
	case inSync == total:
		return propagation{status: metav1.ConditionTrue, reason: v1alpha1.ReasonPropagated,
			message: fmt.Sprintf("%d of %d nodes applied generation %.12s", inSync, total, generation)}
	default:
		return propagation{status: metav1.ConditionFalse, reason: v1alpha1.ReasonPropagating,
			message: fmt.Sprintf("%d of %d nodes applied generation %.12s", inSync, total, generation)}
	}
}

// measurePropagation finds the mesh's nodes and counts those that applied
// the written configuration; it runs only once the ConfigMap holds it. It
// sets s.written and s.nodes, and returns the requeue interval while nodes
// are catching up.
func (r *MeshReconciler) measurePropagation(ctx context.Context, s *meshScope) (reconcile.Result, error) {
	if s.config == nil || !s.upToDate {
		return reconcile.Result{}, nil
	}
	var list discoveryv1.EndpointSliceList
	if err := r.Client.List(ctx, &list, client.InNamespace(s.key.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: ServiceName(s.key.Name)}); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing the EndpointSlices of mesh %s: %w", s.key, err)
	}
	urls := nodeURLs(list.Items)
	prober := r.Prober
	if prober == nil {
		prober = HTTPProber{}
	}
	limit := r.ProbeParallelism
	if limit <= 0 {
		limit = defaultProbeParallelism
	}
	timeout := r.ProbeTimeout
	if timeout <= 0 {
		timeout = defaultProbeTimeout
	}
	inSync := 0
	if len(urls) > 0 {
		inSync = probeNodes(ctx, prober, urls, s.config.Generation, limit, timeout)
	}
	s.nodes = &v1alpha1.NodeSyncStatus{Total: int32(len(urls)), InSync: int32(inSync)}
	s.written = nodePropagation(s.config.Generation, len(urls), inSync)
	if inSync < len(urls) {
		requeue := r.PropagationRequeue
		if requeue <= 0 {
			requeue = defaultPropagationRequeue
		}
		return reconcile.Result{RequeueAfter: requeue}, nil
	}
	return reconcile.Result{}, nil
}

// ServiceName is the name of the Service whose EndpointSlices list the
// nodes of a mesh: the ConfigMap's name, peermesh-<mesh>.
func ServiceName(meshName string) string { return ConfigMapPrefix + meshName }

// meshOfServiceName returns the mesh of a Service name, "" when the name is
// not a mesh Service's.
func meshOfServiceName(name string) string {
	mesh, ok := strings.CutPrefix(name, ConfigMapPrefix)
	if !ok {
		return ""
	}
	return mesh
}
