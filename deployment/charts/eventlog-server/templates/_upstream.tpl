{{/*
Values of the upstream CCNP eventlog-server chart, accepted so that an
upstream values file installs as it is (deployment/README.md, "Migrating
from the upstream chart"). They are deprecated: each has a value of this
chart to use instead, or does nothing here.

  volumes.eventlogDir                                eventlogDir
  volumes.sockDir                                    socketDir
  volumes.eventlogEntryFile, volumes.eventlogDataFile
                                 (DIR/CCEL, DIR/data/CCEL)   hostPaths.acpiTables: DIR
  volumes.eventlogEntryMount, volumes.eventlogDataMount
                                 where the init container stages the copies: fixed
                                 here, so only upstream's own values are accepted
  volumes.eventlogVolume, .eventlogEntry, .eventlogData, .sockPath
                                 names of volumes inside the pod: no effect
  service                        no effect; enable: true fails (a socket, no port)
  autoscaling                    no effect; enabled: true fails (a DaemonSet)

"eventlog-server.upstreamValues" maps the deprecated values onto this chart's,
in .Values itself, and fails where this chart cannot do what they ask, naming
the value to use. A deprecated value, when given, wins over the value it maps
to: an upstream values file is what is being migrated. Every template that
reads a mapped value includes it first; it is idempotent and renders nothing.
*/}}
{{- define "eventlog-server.upstreamValues" -}}
{{- $v := .Values -}}
{{- $vol := $v.volumes | default dict -}}
{{- with $vol.eventlogDir }}{{ $_ := set $v "eventlogDir" . }}{{ end -}}
{{- with $vol.sockDir }}{{ $_ := set $v "socketDir" . }}{{ end -}}
{{- $tables := "" -}}
{{- with $vol.eventlogEntryFile -}}
{{- if not (hasSuffix "/CCEL" .) -}}
{{- fail (printf "volumes.eventlogEntryFile %q (deprecated) is not a CCEL table file, DIR/CCEL: set hostPaths.acpiTables to the host directory holding CCEL and data/CCEL instead" .) -}}
{{- end -}}
{{- $tables = trimSuffix "/CCEL" . -}}
{{- end -}}
{{- with $vol.eventlogDataFile -}}
{{- if not (hasSuffix "/data/CCEL" .) -}}
{{- fail (printf "volumes.eventlogDataFile %q (deprecated) is not a CCEL log area file, DIR/data/CCEL: set hostPaths.acpiTables to the host directory holding CCEL and data/CCEL instead" .) -}}
{{- end -}}
{{- if and $tables (ne $tables (trimSuffix "/data/CCEL" .)) -}}
{{- fail (printf "volumes.eventlogEntryFile %q and volumes.eventlogDataFile %q (deprecated) are not DIR/CCEL and DIR/data/CCEL of one DIR: set hostPaths.acpiTables to that directory instead" $vol.eventlogEntryFile .) -}}
{{- end -}}
{{- $tables = trimSuffix "/data/CCEL" . -}}
{{- end -}}
{{- if $tables }}{{ $_ := set $v.hostPaths "acpiTables" $tables }}{{ end -}}
{{- range $key, $staged := dict "eventlogEntryMount" "/run/firmware/acpi/tables" "eventlogDataMount" "/run/firmware/acpi/tables/data" -}}
{{- with index $vol $key -}}
{{- if not (has (trimSuffix "/" .) (list $staged (printf "%s/CCEL" $staged))) -}}
{{- fail (printf "volumes.%s %q (deprecated): this chart's init container stages the copy at %s/CCEL, where the server reads it, and it cannot be moved: remove volumes.%s" $key . $staged $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if ($v.service | default dict).enable -}}
{{- fail "service.enable (deprecated): eventlog-server serves its Unix socket (socketDir/eventlog.sock) only, no port: remove service" -}}
{{- end -}}
{{- if ($v.autoscaling | default dict).enabled -}}
{{- fail "autoscaling.enabled (deprecated): a DaemonSet runs one pod on each node it selects (nodeSelector) and has nothing to scale: remove autoscaling" -}}
{{- end -}}
{{- end }}

{{/*
The deprecated values given, each with what to use instead, one per line;
empty when there are none. For the DaemonSet's annotation and NOTES.
*/}}
{{- define "eventlog-server.deprecatedValues" -}}
{{- $vol := .Values.volumes | default dict -}}
{{- $fixed := "remove it (the init container stages the copies at fixed paths)" -}}
{{- $name := "remove it (a volume's name inside the pod: no effect)" -}}
{{- $use := dict
  "eventlogDir" "set eventlogDir instead"
  "sockDir" "set socketDir instead"
  "eventlogEntryFile" "set hostPaths.acpiTables (the directory of CCEL) instead"
  "eventlogDataFile" "set hostPaths.acpiTables (the directory of CCEL) instead"
  "eventlogEntryMount" $fixed
  "eventlogDataMount" $fixed
  "eventlogVolume" $name
  "eventlogEntry" $name
  "eventlogData" $name
  "sockPath" $name -}}
{{- range $key := keys $vol | sortAlpha }}
volumes.{{ $key }}: {{ get $use $key | default "remove it" }}
{{- end }}
{{- with .Values.service }}
service: remove it (no effect)
{{- end }}
{{- with .Values.autoscaling }}
autoscaling: remove it (no effect)
{{- end }}
{{- end }}
