{{/*
The chart's name, overridable with nameOverride. Kubernetes names stop at 63 characters.
*/}}
{{- define "return-handler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A fully qualified app name: the release name, plus the chart name unless the release name
already contains it.
*/}}
{{- define "return-handler.fullname" -}}
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

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "return-handler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "return-handler.labels" -}}
helm.sh/chart: {{ include "return-handler.chart" . }}
{{ include "return-handler.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the pods; they must never change between upgrades.
*/}}
{{- define "return-handler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "return-handler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The service account the pods run as.
*/}}
{{- define "return-handler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "return-handler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "return-handler.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The Secret holding the Capillary credentials: the user's own, or the one this chart creates.
*/}}
{{- define "return-handler.secretName" -}}
{{- .Values.capillary.existingSecret | default (include "return-handler.fullname" .) }}
{{- end }}

{{/*
The auth mode, checked here so that a typo fails at render time rather than in the pod.
*/}}
{{- define "return-handler.authMode" -}}
{{- $mode := .Values.capillary.authMode | lower }}
{{- if not (has $mode (list "basic" "oauth")) }}
{{- fail (printf "capillary.authMode must be basic or oauth, not %q" .Values.capillary.authMode) }}
{{- end }}
{{- $mode }}
{{- end }}

{{/*
The Secret key and file name of the one credential the auth mode needs.
*/}}
{{- define "return-handler.secretKey" -}}
{{- if eq (include "return-handler.authMode" .) "oauth" }}
{{- .Values.capillary.secretKeys.oauthSecret }}
{{- else }}
{{- .Values.capillary.secretKeys.password }}
{{- end }}
{{- end }}

{{/*
The policy file. Without a version, one is derived from the policy's content, so outcomes
always name the rules that decided them.
*/}}
{{- define "return-handler.policy" -}}
{{- $policy := deepCopy (.Values.policy | default dict) }}
{{- if not $policy.version }}
{{- $hash := omit $policy "version" | toYaml | sha256sum | trunc 12 }}
{{- $_ := set $policy "version" (printf "chart-%s" $hash) }}
{{- end }}
{{- toYaml $policy }}
{{- end }}

{{/*
Seconds Kubernetes waits after SIGTERM: the service's drain plus a margin for closing down.
*/}}
{{- define "return-handler.terminationGracePeriodSeconds" -}}
{{- add (ceil .Values.shutdownGraceSeconds | int) (.Values.terminationGraceMarginSeconds | int) }}
{{- end }}
