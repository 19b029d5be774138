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
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/peermesh/peermesh/api/v1alpha1"
)

// MaxConfigMapData is the most bytes of data a ConfigMap can hold (the API
// server refuses more: 1 MiB, core.MaxSecretSize).
const MaxConfigMapData = 1 << 20

// Propagated verdicts of accepted resources.
var (
	propagationWritten = propagation{status: metav1.ConditionUnknown, reason: ReasonPending,
		message: "the configuration is written to the mesh ConfigMap; the nodes that applied it are not counted yet"}
	propagationNotCompiled = propagation{status: metav1.ConditionUnknown, reason: ReasonPending,
		message: "the configuration is not compiled yet"}
)

// compileConfiguration assembles the mesh's PeerNodeConfiguration: the policy
// in force (or the built-in defaults when the mesh has none) and the rules of
// every allowlist.
//
// When the policy in force is not accepted (missing Secret, invalid), the
// mesh keeps the policy part of its last written configuration, the last
// good policy, and still takes allowlist changes, so that revoking a peer
// works while the Secret is missing. A mesh with no earlier configuration
// gets none: its nodes stay fail-closed rather than run a policy nobody
// chose.
func (r *MeshReconciler) compileConfiguration(ctx context.Context, s *meshScope) error {
	var c *v1alpha1.PeerNodeConfiguration
	w := s.winner()
	switch {
	case w == nil:
		c = v1alpha1.ConfigurationForPolicy(s.key.Name, nil)
	case s.policyAcceptance[w.Name].accepted():
		c = v1alpha1.ConfigurationForPolicy(s.key.Name, w)
	default:
		var err error
		if c, err = lastGoodPolicy(s.configMap); err != nil {
			// Not fatal: the ConfigMap is rewritten below when it can be.
			log.FromContext(ctx).Info("the mesh ConfigMap holds no usable configuration", "error", err.Error())
		}
		if c == nil {
			a := s.policyAcceptance[w.Name]
			s.notWritten = fmt.Sprintf("no configuration is written: the policy in force, %s/%s, is not accepted (%s) and the mesh has no earlier configuration to keep",
				w.Namespace, w.Name, a.reason)
			s.written = propagation{status: metav1.ConditionUnknown, reason: ReasonPending, message: s.notWritten}
			return nil
		}
	}
	c.MeshName = s.key.Name
	c.Allowed = s.allowed
	c.AllowlistActive = len(s.allowlists) > 0
	c.Generation = ""
	c.Default()
	if err := c.Validate(); err != nil {
		// The schema and Validate are meant to agree, so this is a bug
		// rather than a user error: retrying cannot help until inputs change.
		s.written = propagation{status: metav1.ConditionFalse, reason: v1alpha1.ReasonWriteFailed,
			message: "the compiled configuration is invalid: " + err.Error()}
		return reconcile.TerminalError(fmt.Errorf("compiled configuration of mesh %s: %w", s.key, err))
	}
	s.config = c
	return nil
}

// lastGoodPolicy returns the policy part of the configuration held by cm, or
// nil when there is none.
func lastGoodPolicy(cm *corev1.ConfigMap) (*v1alpha1.PeerNodeConfiguration, error) {
	if cm == nil {
		return nil, nil
	}
	data, err := v1alpha1.DecodeConfigMapData(cm.Data, cm.BinaryData)
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	old, err := v1alpha1.ParsePeerNodeConfiguration(data)
	if err != nil {
		return nil, err
	}
	return &v1alpha1.PeerNodeConfiguration{
		PolicySource: old.PolicySource,
		Mode:         old.Mode,
		Incoming:     old.Incoming,
		Blocked:      old.Blocked,
		Limits:       v1alpha1.NodeLimits{PeerLimits: old.Limits.PeerLimits},
	}, nil
}

// render serialises the configuration, reusing the bytes of the previous
// reconcile when the generation (a hash of the content) is unchanged.
func (r *MeshReconciler) render(s *meshScope) error {
	if s.config == nil {
		return nil
	}
	gen := s.config.Generation
	r.renderedMu.Lock()
	prev, ok := r.rendered[s.key]
	r.renderedMu.Unlock()
	if ok && prev.generation == gen {
		s.data, s.cmData, s.cmBinary = prev.data, prev.cmData, prev.cmBinary
	} else {
		b, err := s.config.Marshal()
		if err != nil {
			return fmt.Errorf("serialising the configuration of mesh %s: %w", s.key, err)
		}
		s.data = string(b)
		if s.cmData, s.cmBinary, err = v1alpha1.EncodeConfigMapData(b); err != nil {
			return fmt.Errorf("encoding the configuration of mesh %s: %w", s.key, err)
		}
		r.renderedMu.Lock()
		if r.rendered == nil {
			r.rendered = map[types.NamespacedName]renderedConfig{}
		}
		r.rendered[s.key] = renderedConfig{generation: gen, data: s.data, cmData: s.cmData, cmBinary: s.cmBinary}
		r.renderedMu.Unlock()
	}
	return nil
}

func (r *MeshReconciler) forgetRendered(key types.NamespacedName) {
	r.renderedMu.Lock()
	delete(r.rendered, key)
	r.renderedMu.Unlock()
}

// desiredConfigMap is the mesh ConfigMap for the compiled configuration.
func desiredConfigMap(s *meshScope) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       s.key.Namespace,
			Name:            ConfigMapName(s.key.Name),
			Labels:          map[string]string{LabelManagedBy: ManagedByValue, LabelMesh: s.key.Name},
			Annotations:     map[string]string{AnnotationConfigHash: s.config.Generation},
			OwnerReferences: ownerReferences(s),
		},
		Data:       s.cmData,
		BinaryData: s.cmBinary,
	}
}

// storedSize is the number of bytes the ConfigMap's data takes.
func storedSize(s *meshScope) int {
	n := 0
	for k, v := range s.cmData {
		n += len(k) + len(v)
	}
	for k, v := range s.cmBinary {
		n += len(k) + len(v)
	}
	return n
}

// ownerReferences references every resource of the mesh (none as the
// controller), so that the garbage collector deletes the ConfigMap once the
// last of them is gone even when the operator is not running. The operator
// also deletes it itself.
func ownerReferences(s *meshScope) []metav1.OwnerReference {
	refs := make([]metav1.OwnerReference, 0, len(s.policies)+len(s.allowlists))
	for _, p := range s.policies {
		refs = append(refs, metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(),
			Kind: v1alpha1.SourceKindPeerTrustPolicy, Name: p.Name, UID: p.UID})
	}
	for _, al := range s.allowlists {
		refs = append(refs, metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(),
			Kind: v1alpha1.SourceKindPeerAllowlist, Name: al.Name, UID: al.UID})
	}
	slices.SortFunc(refs, compareOwnerRefs)
	return refs
}

func compareOwnerRefs(a, b metav1.OwnerReference) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name), cmp.Compare(a.UID, b.UID))
}

// upToDate reports whether the existing ConfigMap already says what desired
// says: labels, hash annotation, data and owner references. Other labels and
// annotations are left alone.
func upToDate(existing, desired *corev1.ConfigMap) bool {
	for k, v := range desired.Labels {
		if existing.Labels[k] != v {
			return false
		}
	}
	if existing.Annotations[AnnotationConfigHash] != desired.Annotations[AnnotationConfigHash] {
		return false
	}
	if !sameData(existing, desired) {
		return false
	}
	refs := slices.Clone(existing.OwnerReferences)
	slices.SortFunc(refs, compareOwnerRefs)
	return slices.EqualFunc(refs, desired.OwnerReferences, func(a, b metav1.OwnerReference) bool {
		return a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Name == b.Name && a.UID == b.UID &&
			a.Controller == nil && a.BlockOwnerDeletion == nil
	})
}

// sameData reports whether two ConfigMaps hold the same data and binaryData
// (nil and empty maps alike).
func sameData(a, b *corev1.ConfigMap) bool {
	return maps.Equal(a.Data, b.Data) && maps.EqualFunc(a.BinaryData, b.BinaryData, bytes.Equal)
}

// errConfigMapTaken reports a ConfigMap with the mesh ConfigMap's name that
// the operator does not manage.
var errConfigMapTaken = errors.New("a ConfigMap not managed by peermesh has the mesh ConfigMap's name")

// writeConfigMap creates or updates the mesh ConfigMap when its content
// differs from the compiled configuration, and writes nothing otherwise.
func (r *MeshReconciler) writeConfigMap(ctx context.Context, s *meshScope) error {
	if s.config == nil {
		return nil
	}
	if size := storedSize(s); size > MaxConfigMapData {
		s.written = propagation{status: metav1.ConditionFalse, reason: v1alpha1.ReasonWriteFailed, message: fmt.Sprintf(
			"the compiled configuration is %d bytes stored (%d as YAML; %d allowed and %d blocked rules), more than the %d bytes a ConfigMap holds; nodes keep the last written configuration",
			size, len(s.data), len(s.config.Allowed), len(s.config.Blocked), MaxConfigMapData)}
		r.Metrics.ConfigMapWrites.WithLabelValues(WriteError).Inc()
		// Terminal: only a change of the mesh's resources, which triggers a
		// reconcile anyway, can make it fit.
		return reconcile.TerminalError(fmt.Errorf("configuration of mesh %s is %d bytes, over the ConfigMap limit of %d",
			s.key, storedSize(s), MaxConfigMapData))
	}
	desired := desiredConfigMap(s)
	existing := s.configMap
	if existing != nil && upToDate(existing, desired) {
		s.written, s.upToDate = propagationWritten, true
		return nil
	}

	var err error
	result := WriteCreated
	if existing == nil {
		err = r.Client.Create(ctx, desired)
		if apierrors.IsAlreadyExists(err) {
			err = r.explainTakenName(ctx, desired, err)
		}
	} else {
		result = WriteUpdated
		updated := existing.DeepCopy()
		if updated.Labels == nil {
			updated.Labels = map[string]string{}
		}
		maps.Copy(updated.Labels, desired.Labels)
		if updated.Annotations == nil {
			updated.Annotations = map[string]string{}
		}
		maps.Copy(updated.Annotations, desired.Annotations)
		updated.Data = desired.Data
		updated.BinaryData = desired.BinaryData
		updated.OwnerReferences = desired.OwnerReferences
		err = r.Client.Update(ctx, updated)
		desired = updated
	}
	switch {
	case err == nil:
	case errors.Is(err, errConfigMapTaken):
		// Retried with backoff: deleting or labelling that ConfigMap
		// produces no event the label-filtered cache would see.
		r.Metrics.ConfigMapWrites.WithLabelValues(WriteError).Inc()
		s.written = propagation{status: metav1.ConditionFalse, reason: v1alpha1.ReasonWriteFailed,
			message: fmt.Sprintf("ConfigMap %s exists and is not managed by peermesh: add the label %s=%s to hand it over, or delete it",
				desired.Name, LabelManagedBy, ManagedByValue)}
		return fmt.Errorf("writing ConfigMap %s/%s: %w", desired.Namespace, desired.Name, err)
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		// The cache is behind the API server: retry with a fresh view
		// rather than report a failure.
		return fmt.Errorf("writing ConfigMap %s/%s: %w", desired.Namespace, desired.Name, err)
	default:
		r.Metrics.ConfigMapWrites.WithLabelValues(WriteError).Inc()
		s.written = propagation{status: metav1.ConditionFalse, reason: v1alpha1.ReasonWriteFailed,
			message: fmt.Sprintf("writing ConfigMap %s: %v", desired.Name, err)}
		return fmt.Errorf("writing ConfigMap %s/%s: %w", desired.Namespace, desired.Name, err)
	}
	r.Metrics.ConfigMapWrites.WithLabelValues(result).Inc()
	s.written, s.upToDate = propagationWritten, true
	if existing == nil || !sameData(existing, desired) {
		s.changed = desired
	}
	return nil
}

// explainTakenName turns an AlreadyExists for a ConfigMap the cache does not
// hold into errConfigMapTaken when the existing one lacks the managed-by
// label; otherwise the cache is merely behind and err is returned as is.
func (r *MeshReconciler) explainTakenName(ctx context.Context, desired *corev1.ConfigMap, err error) error {
	live := &metav1.PartialObjectMetadata{}
	live.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	if getErr := r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), live); getErr != nil {
		return err
	}
	if live.Labels[LabelManagedBy] != ManagedByValue {
		return fmt.Errorf("%w: %w", errConfigMapTaken, err)
	}
	return err
}

// deleteConfigMap removes the ConfigMap of a mesh that has no resource left.
func (r *MeshReconciler) deleteConfigMap(ctx context.Context, s *meshScope) error {
	r.Metrics.forgetMesh(s.key)
	r.forgetRendered(s.key)
	if s.configMap == nil {
		return nil
	}
	err := r.Client.Delete(ctx, s.configMap, client.Preconditions{UID: &s.configMap.UID})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		r.Metrics.ConfigMapWrites.WithLabelValues(WriteError).Inc()
		return fmt.Errorf("deleting ConfigMap %s/%s: %w", s.configMap.Namespace, s.configMap.Name, err)
	}
	r.Metrics.ConfigMapWrites.WithLabelValues(WriteDeleted).Inc()
	log.FromContext(ctx).Info("deleted the ConfigMap of a mesh with no resource left", "configMap", s.configMap.Name)
	return nil
}
