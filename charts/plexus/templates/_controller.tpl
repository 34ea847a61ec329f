{{/*
"plexus.controller" renders everything one Plexus controller needs:
  ServiceAccount      plexus-<name>
  ClusterRole         plexus-<name>, rules from files/rbac/<name>.yaml
  ClusterRoleBinding  plexus-<name>
  Role, RoleBinding   plexus-<name>, in the release namespace, for the
                      leader-election Lease plexus-<name> (only with leader
                      election)
  Deployment          plexus-<name>, running /usr/local/bin/plexus-<name>-controller

It takes a dict:
  root    the top-level context ($)
  name    the controller's name (lbipam, bgp, ...): the file under
          files/rbac, the binary, the container and the component label
  values  the controller's values block (.Values.<name>), with enabled,
          replicas, resources, leaderElection, logLevel, nodeSelector,
          tolerations, affinity, podAnnotations
  args    the flags of this controller only (a list of strings); the flags
          every controller shares (metrics, probes, leader election,
          logging) are added here

A controller's template is then a few lines; see lbipam.yaml.
*/}}
{{- define "plexus.controller" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $v := .values -}}
{{- $ctx := dict "root" $root "name" $name -}}
{{- $fullname := include "plexus.fullname" $ctx -}}
{{- $namespace := $root.Release.Namespace -}}
{{- $le := $v.leaderElection -}}
{{- $args := .args | default list -}}
{{- $common := list "--metrics-bind-address=:8080" "--health-probe-bind-address=:8081" (printf "--leader-elect=%t" (eq $le.enabled true)) -}}
{{- if $le.enabled -}}
{{- $common = concat $common (list
  (printf "--leader-election-namespace=%s" $namespace)
  (printf "--leader-election-id=%s" $fullname)
  (printf "--leader-election-lease-duration=%s" $le.leaseDuration)
  (printf "--leader-election-renew-deadline=%s" $le.renewDeadline)
  (printf "--leader-election-retry-period=%s" $le.retryPeriod)) -}}
{{- end -}}
{{- $common = append $common (printf "--zap-log-level=%v" $v.logLevel) -}}
{{- if and (not $le.enabled) (gt (int $v.replicas) 1) -}}
{{- fail (printf "plexus: %s.replicas is %d but %s.leaderElection.enabled is false: without leader election every replica acts at once and they fight over the same objects; set %s.replicas=1 or %s.leaderElection.enabled=true" $name (int $v.replicas) $name $name $name) -}}
{{- end -}}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $fullname }}
  namespace: {{ $namespace }}
  labels:
    {{- include "plexus.labels" $ctx | nindent 4 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "plexus.labels" $ctx | nindent 4 }}
rules:
  {{- include "plexus.rbacRules" $ctx | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "plexus.labels" $ctx | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $fullname }}
subjects:
  - kind: ServiceAccount
    name: {{ $fullname }}
    namespace: {{ $namespace }}
{{- if $le.enabled }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $fullname }}
  namespace: {{ $namespace }}
  labels:
    {{- include "plexus.labels" $ctx | nindent 4 }}
rules:
  # The leader-election Lease, by name.
  - apiGroups:
      - coordination.k8s.io
    resources:
      - leases
    resourceNames:
      - {{ $fullname }}
    verbs:
      - get
      - list
      - watch
      - update
      - patch
      - delete
  # create cannot be limited by resourceNames: the name is not known when
  # the request is authorized.
  - apiGroups:
      - coordination.k8s.io
    resources:
      - leases
    verbs:
      - create
  # Leader election records its transitions as core/v1 Events next to the Lease.
  - apiGroups:
      - ""
    resources:
      - events
    verbs:
      - create
      - patch
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $fullname }}
  namespace: {{ $namespace }}
  labels:
    {{- include "plexus.labels" $ctx | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $fullname }}
subjects:
  - kind: ServiceAccount
    name: {{ $fullname }}
    namespace: {{ $namespace }}
{{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  namespace: {{ $namespace }}
  labels:
    {{- include "plexus.labels" $ctx | nindent 4 }}
spec:
  replicas: {{ int $v.replicas }}
  selector:
    matchLabels:
      {{- include "plexus.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "plexus.labels" $ctx | nindent 8 }}
      annotations:
        {{- $scrape := dict "prometheus.io/scrape" "true" "prometheus.io/port" "8080" "prometheus.io/path" "/metrics" }}
        {{- merge (dict) ($v.podAnnotations | default dict) $scrape | toYaml | nindent 8 }}
    spec:
      serviceAccountName: {{ $fullname }}
      automountServiceAccountToken: true
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ $name }}
          image: {{ include "plexus.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            - /usr/local/bin/plexus-{{ $name }}-controller
          args:
            {{- range concat $common $args }}
            - {{ . | quote }}
            {{- end }}
          ports:
            - name: metrics
              containerPort: 8080
              protocol: TCP
            - name: health
              containerPort: 8081
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: 8081
            initialDelaySeconds: 15
            periodSeconds: 20
          readinessProbe:
            httpGet:
              path: /readyz
              port: 8081
            initialDelaySeconds: 5
            periodSeconds: 10
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities:
              drop:
                - ALL
            seccompProfile:
              type: RuntimeDefault
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
