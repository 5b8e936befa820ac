{{/* Chart name, overridable. */}}
{{- define "runahead.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the prefix of every object's name. 63 characters is the DNS-1123 label limit. */}}
{{- define "runahead.fullname" -}}
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

{{- define "runahead.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that never change for a release: the Deployment's selector. */}}
{{- define "runahead.selectorLabels" -}}
app.kubernetes.io/name: {{ include "runahead.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "runahead.labels" -}}
helm.sh/chart: {{ include "runahead.chart" . }}
{{ include "runahead.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: runahead
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "runahead.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "runahead.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository[:tag][@digest]; the tag defaults to the chart's appVersion. */}}
{{- define "runahead.imageRef" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag }}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* Labels of the rank pods the operator creates (core/api/v1alpha1/names.ts). */}}
{{- define "runahead.rankSelector" -}}
app.kubernetes.io/managed-by: runahead-operator
app.kubernetes.io/component: worker
{{- end }}

{{/* The labels of every RunaheadServer front the operator creates (operator/server-children.ts). */}}
{{- define "runahead.frontSelector" -}}
app.kubernetes.io/managed-by: runahead-operator
app.kubernetes.io/component: front
{{- end }}

{{/* Settings that do not go together; `fail` stops install and template with the reason. */}}
{{- define "runahead.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.operator.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %d but operator.leaderElection.enabled is false: replicas without leader election would all reconcile the same jobs" (int .Values.replicaCount)) }}
{{- end }}
{{- end }}
