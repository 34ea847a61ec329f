{{/*
Shared helpers. Every Plexus controller is rendered by "plexus.controller"
(in _controller.tpl); the helpers here take a dict with:
  root   the top-level context ($)
  name   the controller's name: lbipam, bgp, l2announcer, ...
*/}}

{{/* chart name and version, as in the helm.sh/chart label */}}
{{- define "plexus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* name of every object of a controller, and of its leader-election Lease */}}
{{- define "plexus.fullname" -}}
{{- printf "plexus-%s" .name -}}
{{- end -}}

{{/* labels that select a controller's pods; never change them, a Deployment's selector is immutable */}}
{{- define "plexus.selectorLabels" -}}
app.kubernetes.io/name: plexus
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* labels of every object of a controller */}}
{{- define "plexus.labels" -}}
{{ include "plexus.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: plexus
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "plexus.chart" .root }}
{{- end -}}

{{/* the controllers' image, repository:tag; the tag defaults to the appVersion */}}
{{- define "plexus.image" -}}
{{- $image := .Values.image -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag | toString) -}}
{{- end -}}

{{/*
ClusterRole rules of a controller, from files/rbac/<name>.yaml, which
controller-gen writes from the controller's RBAC markers (make generate).
*/}}
{{/*
Rules of the namespaced Role beside a ClusterRole in files/rbac/<name>.yaml
(a controller-gen marker with a namespace: Secrets of one namespace), or
nothing.
*/}}
{{- define "plexus.roleRules" -}}
{{- $raw := .root.Files.Get (printf "files/rbac/%s.yaml" .name) -}}
{{- range splitList "\n---" $raw -}}
{{- $doc := fromYaml . -}}
{{- if eq (get $doc "kind") "Role" -}}
{{- toYaml $doc.rules -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
"plexus.secretsRole" renders the Role of files/rbac/<name>.yaml (its
Secrets rules) in namespace, bound to ServiceAccount plexus-<name>: access
to one namespace's Secrets, never the cluster's.
*/}}
{{- define "plexus.secretsRole" -}}
{{- $ctx := dict "root" .root "name" .name -}}
{{- $fullname := include "plexus.fullname" $ctx -}}
{{- $rules := include "plexus.roleRules" $ctx -}}
{{- if not $rules -}}
{{- fail (printf "plexus: files/rbac/%s.yaml has no Role: make generate writes it from the namespaced RBAC marker" .name) -}}
{{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $fullname }}-secrets
  namespace: {{ .namespace }}
  labels:
    {{- include "plexus.labels" $ctx | nindent 4 }}
rules:
  {{- $rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $fullname }}-secrets
  namespace: {{ .namespace }}
  labels:
    {{- include "plexus.labels" $ctx | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $fullname }}-secrets
subjects:
  - kind: ServiceAccount
    name: {{ $fullname }}
    namespace: {{ .root.Release.Namespace }}
{{- end -}}

{{- define "plexus.rbacRules" -}}
{{- $path := printf "files/rbac/%s.yaml" .name -}}
{{- $raw := .root.Files.Get $path -}}
{{- if not $raw -}}
{{- fail (printf "plexus: %s is missing: every controller needs the ClusterRole that 'make generate' writes there" $path) -}}
{{- end -}}
{{- $role := fromYaml $raw -}}
{{- if hasKey $role "Error" -}}
{{- fail (printf "plexus: %s is not valid YAML: %s" $path $role.Error) -}}
{{- end -}}
{{- if not $role.rules -}}
{{- fail (printf "plexus: %s has no rules" $path) -}}
{{- end -}}
{{- toYaml $role.rules -}}
{{- end -}}
