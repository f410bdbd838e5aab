{{/*
Naming. The base name is "metrics-server" (not the chart's name) so that a release of this chart gets
exactly the object names and selector labels an upstream metrics-server release of the same name has.
*/}}
{{- define "msrs.name" -}}
{{- .Values.nameOverride | default "metrics-server" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "msrs.fullname" -}}
{{- $name := include "msrs.name" . -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "msrs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "msrs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "msrs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "msrs.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "msrs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "msrs.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "msrs.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default (printf "v%s" .Chart.AppVersion)) -}}
{{- end -}}

{{/* The Secret holding the serving certificate, when the server does not generate its own. */}}
{{- define "msrs.tlsSecretName" -}}
{{- if eq .Values.tls.type "existingSecret" -}}
{{- required "tls.existingSecret.name is required with tls.type=existingSecret" .Values.tls.existingSecret.name -}}
{{- else -}}
{{- include "msrs.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* DNS names the serving certificate must carry: how the aggregator addresses the Service. */}}
{{- define "msrs.dnsNames" -}}
{{- $svc := include "msrs.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.tls.clusterDomain) | toJson -}}
{{- end -}}

{{/* Fails early on values this chart does not implement, rather than ignoring them. */}}
{{- define "msrs.validate" -}}
{{- if not (has .Values.tls.type (list "metrics-server" "helm" "cert-manager" "existingSecret")) -}}
{{- fail (printf "tls.type must be metrics-server, helm, cert-manager or existingSecret, not %q" .Values.tls.type) -}}
{{- end -}}
{{- if and .Values.addonResizer .Values.addonResizer.enabled -}}
{{- fail "addonResizer.enabled: the addon-resizer sidecar is not supported by metrics-server-rs; size resources yourself (see README)" -}}
{{- end -}}
{{- if and .Values.rbac .Values.rbac.pspEnabled -}}
{{- fail "rbac.pspEnabled: PodSecurityPolicy was removed in Kubernetes 1.25 and is not supported" -}}
{{- end -}}
{{- end -}}
