{{- define "leadership.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The Lease; values.schema.json requires it, this says why if it is empty anyway. */}}
{{- define "leadership.lease" -}}
{{- required "lease.name is required: name the Lease the replicas share, e.g. --set lease.name=credential-renewer" .Values.lease.name -}}
{{- end -}}

{{- define "leadership.serviceAccountName" -}}
{{- default (include "leadership.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The project's image: the tag defaults to the chart's appVersion. */}}
{{- define "leadership.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The application's image: repository[:tag]. */}}
{{- define "leadership.appImage" -}}
{{- $repo := required "app.image.repository is required: the image of your application, e.g. --set app.image.repository=registry.example.com/renewer" .Values.app.image.repository -}}
{{- if .Values.app.image.tag -}}
{{- printf "%s:%s" $repo .Values.app.image.tag -}}
{{- else -}}
{{- $repo -}}
{{- end -}}
{{- end -}}

{{/* The leader label's key, as package podlabel makes it. */}}
{{- define "leadership.leaderLabel" -}}
{{- $key := printf "leader-%s" (include "leadership.lease" .) -}}
{{- if gt (len $key) 63 -}}
{{- fail (printf "labelPod.enabled needs lease.name of at most 56 characters (the label name %s would exceed 63); use a shorter lease.name" $key) -}}
{{- end -}}
{{- printf "leadership.dev/%s" $key -}}
{{- end -}}

{{/* The flags run and serve share, one list item each. */}}
{{- define "leadership.electorArgs" -}}
- --lease={{ include "leadership.lease" . }}
- --lease-duration={{ .Values.lease.duration }}
{{- with .Values.lease.renewInterval }}
- --renew-interval={{ . }}
{{- end }}
{{- if not .Values.events }}
- --no-events
{{- end }}
{{- if .Values.labelPod.enabled }}
- --label-pod
{{- end }}
- --http-addr=:{{ .Values.httpPort }}
- --log-format={{ .Values.logFormat }}
{{- if .Values.restartProof.enabled }}
- --identity=$(POD_NAME)
- --restart-proof-dir={{ include "leadership.restartDir" . }}
- --pod-uid=$(POD_UID)
{{- with .Values.restartProof.minTerm }}
- --restart-min-term={{ . }}
{{- end }}
{{- with .Values.restartProof.delay }}
- --restart-delay={{ . }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The Downward API: the Lease's namespace, and the Pod for --label-pod. */}}
{{- define "leadership.podEnv" -}}
# POD_NAMESPACE wins over the namespace file in client-go's in-cluster
# config; POD_NAME names the Pod that --label-pod labels.
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if .Values.restartProof.enabled }}
# POD_UID binds the restart proof to this pod: a restarted container keeps
# it, a new pod with the same name does not.
- name: POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
{{- end }}
{{- end -}}

{{- define "leadership.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: leadership
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: leadership
  periodSeconds: 5
{{- end -}}

{{- define "leadership.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "leadership.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The `leadership serve` sidecar container, less its name. */}}
{{- define "leadership.sidecar" -}}
image: {{ include "leadership.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
command:
  - /usr/local/bin/leadership
  - serve
  {{- include "leadership.electorArgs" . | nindent 2 }}
env:
  {{- include "leadership.podEnv" . | nindent 2 }}
ports:
  - name: leadership
    containerPort: {{ .Values.httpPort }}
{{- if .Values.restartProof.enabled }}
volumeMounts:
  {{- include "leadership.restartMount" . | nindent 2 }}
{{- end }}
{{ include "leadership.probes" . }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end -}}

{{/* The restart proof's lock files: a directory of this pod only, which
survives a container restart (an emptyDir). */}}
{{- define "leadership.restartDir" -}}/var/run/leadership-restart{{- end -}}

{{- define "leadership.restartMount" -}}
- name: leadership-restart
  mountPath: {{ include "leadership.restartDir" . }}
{{- end -}}

{{- define "leadership.restartVolume" -}}
- name: leadership-restart
  emptyDir:
    sizeLimit: 1Mi
{{- end -}}
