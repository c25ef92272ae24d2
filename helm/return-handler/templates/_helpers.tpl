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

{{/*
The most replicas that hold a partition: kafka.partitions. Replicas beyond the partitions of
the returns topic would sit idle, so a replicaCount or keda.maxReplicaCount above it is
refused here rather than deployed.
*/}}
{{- define "return-handler.partitions" -}}
{{- $partitions := .Values.kafka.partitions | int }}
{{- if lt $partitions 1 }}
{{- fail "kafka.partitions must be set to the number of partitions of the returns topic (it bounds how far the service scales)" }}
{{- end }}
{{- $partitions }}
{{- end }}

{{/*
KEDA's maxReplicaCount: keda.maxReplicaCount, or kafka.partitions when it is 0.
*/}}
{{- define "return-handler.kedaMaxReplicas" -}}
{{- $partitions := include "return-handler.partitions" . | int }}
{{- $max := .Values.keda.maxReplicaCount | int | default $partitions }}
{{- if gt $max $partitions }}
{{- fail (printf "keda.maxReplicaCount (%d) is above kafka.partitions (%d): replicas beyond the partitions of %q would sit idle" $max $partitions .Values.kafka.returnsTopic) }}
{{- end }}
{{- if lt $max (.Values.keda.minReplicaCount | int) }}
{{- fail (printf "keda.minReplicaCount (%d) is above the maximum (%d)" (.Values.keda.minReplicaCount | int) $max) }}
{{- end }}
{{- $max }}
{{- end }}

{{/*
The Deployment's replicas when KEDA does not own them.
*/}}
{{- define "return-handler.replicas" -}}
{{- $partitions := include "return-handler.partitions" . | int }}
{{- if gt (.Values.replicaCount | int) $partitions }}
{{- fail (printf "replicaCount (%d) is above kafka.partitions (%d): replicas beyond the partitions of %q would sit idle" (.Values.replicaCount | int) $partitions .Values.kafka.returnsTopic) }}
{{- end }}
{{- .Values.replicaCount }}
{{- end }}

{{/*
Kafka's security settings, checked together: "sasl" and "tls" are "true" or "".
*/}}
{{- define "return-handler.kafkaSasl" -}}
{{- if has .Values.kafka.security.protocol (list "SASL_PLAINTEXT" "SASL_SSL") }}true{{ end }}
{{- end }}

{{- define "return-handler.kafkaTls" -}}
{{- if has .Values.kafka.security.protocol (list "SSL" "SASL_SSL") }}true{{ end }}
{{- end }}

{{/*
Refuses Kafka security values that contradict each other, so that they fail at install time
instead of in the pod.
*/}}
{{- define "return-handler.checkKafkaSecurity" -}}
{{- $security := .Values.kafka.security }}
{{- if include "return-handler.kafkaSasl" . }}
{{- if not (and $security.sasl.username $security.sasl.existingSecret) }}
{{- fail (printf "kafka.security.protocol %s needs kafka.security.sasl.username and kafka.security.sasl.existingSecret" $security.protocol) }}
{{- end }}
{{- else if $security.sasl.existingSecret }}
{{- fail (printf "kafka.security.sasl.existingSecret is set, but kafka.security.protocol %s does not use SASL" $security.protocol) }}
{{- end }}
{{- if and $security.tls.existingSecret (not (include "return-handler.kafkaTls" .)) }}
{{- fail (printf "kafka.security.tls.existingSecret is set, but kafka.security.protocol %s does not use TLS" $security.protocol) }}
{{- end }}
{{- $keys := $security.tls.secretKeys }}
{{- if ne (empty $keys.cert) (empty $keys.key) }}
{{- fail "kafka.security.tls.secretKeys.cert and .key go together: set both (client certificate authentication) or neither" }}
{{- end }}
{{- if and $keys.keyPassword (not $keys.key) }}
{{- fail "kafka.security.tls.secretKeys.keyPassword is set without a key" }}
{{- end }}
{{- end }}

{{/*
The files mounted from kafka.security.tls.existingSecret: a list of {env, key, path}.
*/}}
{{- define "return-handler.kafkaTlsFiles" -}}
{{- $files := list }}
{{- if and (include "return-handler.kafkaTls" .) .Values.kafka.security.tls.existingSecret }}
{{- $keys := .Values.kafka.security.tls.secretKeys }}
{{- range $env, $item := dict "SSL_CA_FILE" (list $keys.ca "ca.crt") "SSL_CERT_FILE" (list $keys.cert "tls.crt") "SSL_KEY_FILE" (list $keys.key "tls.key") "SSL_KEY_PASSWORD_FILE" (list $keys.keyPassword "key-password") }}
{{- if first $item }}
{{- $files = append $files (dict "env" $env "key" (first $item) "path" (last $item)) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml (dict "files" $files) }}
{{- end }}

{{/*
The ports of a comma-separated host:port list, as a YAML list of integers.
*/}}
{{- define "return-handler.hostPortPorts" -}}
{{- $ports := list }}
{{- range splitList "," . }}
{{- $port := regexFind "[0-9]+$" (trim .) }}
{{- if $port }}
{{- $ports = append $ports ($port | int) }}
{{- end }}
{{- end }}
{{- toYaml ($ports | uniq) }}
{{- end }}

{{/*
The port of a URL: the explicit one, else 443 for https and 80 for http.
*/}}
{{- define "return-handler.urlPort" -}}
{{- $url := urlParse . }}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" }}
{{- $port | default (ternary "443" "80" (eq $url.scheme "https")) }}
{{- end }}

{{/*
PromQL label matchers selecting this release's series, as the ServiceMonitor scrapes them:
the release's namespace, and the Service's name as job.
*/}}
{{- define "return-handler.metricSelector" -}}
{{- .Values.prometheusRule.selector | default (printf "namespace=%q,job=%q" .Release.Namespace (include "return-handler.fullname" .)) }}
{{- end }}
