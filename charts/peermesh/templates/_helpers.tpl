{{/*
Names, labels and the per-mesh values of the peermesh chart.
*/}}

{{/* The chart name, truncated to a DNS label. */}}
{{- define "peermesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: the prefix of the operator's resources. It is the release name
when that already contains the chart name.
*/}}
{{- define "peermesh.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The operator's resource name prefix, <fullname>-operator. */}}
{{- define "peermesh.operator.fullname" -}}
{{- printf "%s-operator" (include "peermesh.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "peermesh.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "peermesh.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The chart label value. */}}
{{- define "peermesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "peermesh.labels" -}}
helm.sh/chart: {{ include "peermesh.chart" . }}
app.kubernetes.io/name: {{ include "peermesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: peermesh
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the operator pods. */}}
{{- define "peermesh.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "peermesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of the operator's resources. */}}
{{- define "peermesh.operator.labels" -}}
{{ include "peermesh.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Selector labels of the nodes of one mesh; the argument is a dict with "root"
(the chart context) and "mesh" (the merged mesh values).
*/}}
{{- define "peermesh.mesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "peermesh.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: peernode
p2p.peermesh.io/mesh: {{ .mesh.name }}
{{- end }}

{{/* Labels of the resources of one mesh (argument as for selectorLabels). */}}
{{- define "peermesh.mesh.labels" -}}
{{ include "peermesh.labels" .root }}
app.kubernetes.io/component: peernode
p2p.peermesh.io/mesh: {{ .mesh.name }}
{{- end }}

{{/*
The image reference: repository@digest, or repository:tag (default: the
chart's appVersion).
*/}}
{{- define "peermesh.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
peermesh.meshes returns, as YAML {meshes: [...]}, every entry of .Values.meshes
merged over .Values.meshDefaults: an entry's keys replace the defaults' keys,
and inside objects the entry's sub-keys replace the defaults' sub-keys (one
level deep). Each mesh gets its namespace (default: the release namespace).
It fails on a duplicate mesh, and, in namespace-scoped mode, on a mesh whose
namespace the operator does not watch.
*/}}
{{- define "peermesh.meshes" -}}
{{- $root := . }}
{{- $out := list }}
{{- $seen := dict }}
{{- range $i, $entry := .Values.meshes }}
{{- $m := deepCopy $root.Values.meshDefaults }}
{{- range $k, $v := $entry }}
{{- $d := get $m $k }}
{{- if and (kindIs "map" $v) (kindIs "map" $d) }}
{{- $merged := deepCopy $d }}
{{- range $sk, $sv := $v }}
{{- $_ := set $merged $sk $sv }}
{{- end }}
{{- $_ := set $m $k $merged }}
{{- else }}
{{- $_ := set $m $k $v }}
{{- end }}
{{- end }}
{{- $_ := set $m "namespace" (default $root.Release.Namespace $entry.namespace) }}
{{- $key := printf "%s/%s" $m.namespace $m.name }}
{{- if hasKey $seen $key }}
{{- fail (printf "meshes[%d]: mesh %q is listed twice in namespace %q; each mesh of a namespace needs one entry" $i $m.name $m.namespace) }}
{{- end }}
{{- $_ := set $seen $key true }}
{{- if and $root.Values.operator.enabled $root.Values.operator.watchNamespaces (not (has $m.namespace $root.Values.operator.watchNamespaces)) }}
{{- fail (printf "meshes[%d]: mesh %q is in namespace %q, which operator.watchNamespaces %v does not list: the operator would never configure it" $i $m.name $m.namespace $root.Values.operator.watchNamespaces) }}
{{- end }}
{{- $out = append $out $m }}
{{- end }}
{{- toYaml (dict "meshes" $out) }}
{{- end }}

{{/* The name of a mesh's resources: peermesh-<mesh>, as the operator expects. */}}
{{- define "peermesh.mesh.fullname" -}}
{{- printf "peermesh-%s" .name }}
{{- end }}

{{/* The name of a mesh's ServiceAccount, Role and RoleBinding. */}}
{{- define "peermesh.mesh.nodeName" -}}
{{- printf "peernode-%s" .name }}
{{- end }}

{{/*
The operator's RBAC rules: rbac/role.yaml, a copy of config/rbac/role.yaml
(generated from the +kubebuilder:rbac markers of controllers/ by
`make manifests`; test/chart fails when the copy drifts).
*/}}
{{- define "peermesh.operator.rules" -}}
{{- $role := .Files.Get "rbac/role.yaml" | fromYaml }}
{{- if not $role.rules }}
{{- fail "rbac/role.yaml holds no rules: copy config/rbac/role.yaml into the chart (go test ./test/chart -run TestChartInSync -update)" }}
{{- end }}
{{- toYaml $role.rules }}
{{- end }}

{{/*
The operator's rules for a namespace-scoped install: those of
peermesh.operator.rules without the cluster-scoped Namespaces, which a Role
cannot grant.
*/}}
{{- define "peermesh.operator.namespacedRules" -}}
{{- $rules := list }}
{{- range (include "peermesh.operator.rules" . | fromYamlArray) }}
{{- $resources := without .resources "namespaces" }}
{{- if $resources }}
{{- $rules = append $rules (set (deepCopy .) "resources" $resources) }}
{{- end }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{/*
The operator's rules on cluster-scoped resources, for a namespace-scoped
install: the rules of peermesh.operator.rules on Namespaces.
*/}}
{{- define "peermesh.operator.clusterScopedRules" -}}
{{- $rules := list }}
{{- range (include "peermesh.operator.rules" . | fromYamlArray) }}
{{- if has "namespaces" .resources }}
{{- $rules = append $rules (set (deepCopy .) "resources" (list "namespaces")) }}
{{- end }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{/* peermesh.hostPort joins (list HOST PORT) as net.JoinHostPort does. */}}
{{- define "peermesh.hostPort" -}}
{{- $host := index . 0 }}
{{- $port := index . 1 }}
{{- if contains ":" $host }}
{{- printf "[%s]:%v" $host $port }}
{{- else }}
{{- printf "%s:%v" $host $port }}
{{- end }}
{{- end }}
