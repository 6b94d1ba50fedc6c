{{/*
The chart's name, for labels.
*/}}
{{- define "eventlog-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The objects' name. Not derived from the release name: there is one server per
node, and clients and docs refer to it as eventlog-server whatever the release
is called (`helm install --generate-name` gives a random one).
*/}}
{{- define "eventlog-server.fullname" -}}
{{- default (include "eventlog-server.name" .) .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eventlog-server.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eventlog-server.labels" -}}
helm.sh/chart: {{ include "eventlog-server.chart" . }}
{{ include "eventlog-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: eventlog
app.kubernetes.io/part-of: ccnp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "eventlog-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eventlog-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eventlog-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "eventlog-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "eventlog-server.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The socket path, given to the server and to its probes.
*/}}
{{- define "eventlog-server.socket" -}}
{{- printf "%s/eventlog.sock" (trimSuffix "/" .Values.socketDir) }}
{{- end }}
