{{/*
"plexus.nodeplugin" renders what one Plexus node plugin needs:
  ServiceAccount      plexus-<name>
  ClusterRole         plexus-<name>, rules from files/rbac/<name>.yaml
  ClusterRoleBinding  plexus-<name>
  DaemonSet           plexus-<name>, on every node, host network, running
                      /usr/local/bin/plexus-<name>

It takes a dict:
  root            the top-level context ($)
  name            <feature>-node (cni-node, datapath-node, ...): the
                  objects, the container, the rules file and the binary
  values          the plugin's values block (resources, nodeSelector,
                  tolerations, podAnnotations)
  args            the plugin's flags (a list of strings)
  healthPort      host port of /healthz and /readyz (host network: ports
                  must differ between plugins)
  securityContext the container's securityContext (a dict); plugins get the
                  capabilities they need and nothing else
  volumes         list of dicts name, mountPath and hostPath with type (the
                  hostPath type), or without hostPath an emptyDir
  initContainers  optional, rendered as given (a list of dicts)
  sidecars        optional containers beside the plugin, rendered as given
                  (a list of dicts): the l7proxy plugin's Envoy
  configMaps      optional list of dicts name and configMap: volumes from
                  ConfigMaps (mounted by sidecars)
*/}}
{{- define "plexus.nodeplugin" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $v := .values -}}
{{- $ctx := dict "root" $root "name" $name -}}
{{- $fullname := include "plexus.fullname" $ctx -}}
{{- $namespace := $root.Release.Namespace -}}
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
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ $fullname }}
  namespace: {{ $namespace }}
  labels:
    {{- include "plexus.labels" $ctx | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- include "plexus.selectorLabels" $ctx | nindent 6 }}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  template:
    metadata:
      labels:
        {{- include "plexus.labels" $ctx | nindent 8 }}
      {{- with $v.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ $fullname }}
      automountServiceAccountToken: true
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      # The node's networking depends on it: schedule it first, evict it last.
      priorityClassName: system-node-critical
      tolerations:
        {{- toYaml ($v.tolerations | default (list (dict "operator" "Exists"))) | nindent 8 }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        seccompProfile:
          type: RuntimeDefault
      {{- with .initContainers }}
      initContainers:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $name }}
          image: {{ include "plexus.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            - /usr/local/bin/plexus-{{ $name }}
          args:
            {{- range (append .args (printf "--health-probe-bind-address=127.0.0.1:%d" (int .healthPort))) }}
            - {{ . | quote }}
            {{- end }}
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
          livenessProbe:
            httpGet:
              host: 127.0.0.1
              path: /healthz
              port: {{ int .healthPort }}
            initialDelaySeconds: 15
            periodSeconds: 20
          readinessProbe:
            httpGet:
              host: 127.0.0.1
              path: /readyz
              port: {{ int .healthPort }}
            periodSeconds: 10
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- toYaml .securityContext | nindent 12 }}
          {{- with .volumes }}
          volumeMounts:
            {{- range . }}
            - name: {{ .name }}
              mountPath: {{ .mountPath }}
            {{- end }}
          {{- end }}
        {{- with .sidecars }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if or .volumes .configMaps }}
      volumes:
        {{- range .volumes }}
        - name: {{ .name }}
          {{- if .hostPath }}
          hostPath:
            path: {{ .hostPath }}
            type: {{ .type }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        {{- end }}
        {{- range .configMaps }}
        - name: {{ .name }}
          configMap:
            name: {{ .configMap }}
        {{- end }}
      {{- end }}
{{- end -}}
