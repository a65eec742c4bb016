{{/* Mutual TLS between pollers and tracker (values: mtls.*). Each side
mounts its own Secret read-only at qfp.mtlsDir (never with subPath, so that a
renewed Secret reaches the running pod) and its config's
Butler-SOS.failedPolls.<side>.tls points at the files there; the services
re-read them every mtls.refreshIntervalSeconds. Secret keys default to
cert-manager's layout (tls.crt, tls.key, ca.crt). */}}

{{- define "qfp.mtlsDir" -}}
/etc/qlik-failed-polls/mtls
{{- end }}

{{/* The Secret of a side; dict "root" $ "side" "tracker"|"poller". */}}
{{- define "qfp.mtlsSecret" -}}
{{- $mtls := .root.Values.mtls }}
{{- $side := get $mtls .side | default dict }}
{{- required (printf "mtls.enabled: set mtls.%s.secretName (a Secret with %s, %s and %s)" .side $mtls.certKey $mtls.keyKey $mtls.caKey) $side.secretName }}
{{- end }}

{{/* Sets the `tls` map of a side's config section; dict "root" $ "side"
"tracker"|"poller" "section" MAP. Off, the chart consents to plaintext
(tls.allowPlaintext: the Service address is not loopback) and each service
logs a warning saying so; the NetworkPolicy still admits only the pollers. */}}
{{- define "qfp.mtlsKeys" -}}
{{- $mtls := .root.Values.mtls }}
{{- $tls := dict }}
{{- if $mtls.enabled }}
{{- $_ := include "qfp.mtlsSecret" . }}
{{- $dir := include "qfp.mtlsDir" . }}
{{- $_ := set $tls "enable" true }}
{{- $_ := set $tls "certFile" (printf "%s/%s" $dir $mtls.certKey) }}
{{- $_ := set $tls "keyFile" (printf "%s/%s" $dir $mtls.keyKey) }}
{{- $_ := set $tls "caFile" (printf "%s/%s" $dir $mtls.caKey) }}
{{- $_ := set $tls "refreshIntervalSeconds" (int $mtls.refreshIntervalSeconds) }}
{{- if and (eq .side "poller") $mtls.serverName }}
{{- $_ := set $tls "serverName" $mtls.serverName }}
{{- end }}
{{- else }}
{{- $_ := set $tls "enable" false }}
{{- $_ := set $tls "allowPlaintext" true }}
{{- end }}
{{- $_ := set .section "tls" $tls }}
{{- end }}

{{/* The volumeMounts entry of a side (empty when mTLS is off); dict "root" $
"side" ... */}}
{{- define "qfp.mtlsVolumeMount" -}}
{{- if .root.Values.mtls.enabled -}}
- name: mtls
  mountPath: {{ include "qfp.mtlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* The volumes entry of a side (empty when mTLS is off). */}}
{{- define "qfp.mtlsVolume" -}}
{{- if .root.Values.mtls.enabled -}}
- name: mtls
  secret:
    secretName: {{ include "qfp.mtlsSecret" . }}
    # Group-readable: files are root-owned, with the pod's fsGroup.
    defaultMode: 0440
{{- end }}
{{- end }}
