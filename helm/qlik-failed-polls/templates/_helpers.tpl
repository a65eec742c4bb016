{{/* Chart name, release-qualified name (room left for the suffixes). */}}
{{- define "qfp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "qfp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "qfp.trackerName" -}}
{{ include "qfp.fullname" . }}-tracker
{{- end }}

{{/* The headless Service of all pollers (StatefulSet serviceName, scrapes). */}}
{{- define "qfp.pollersName" -}}
{{ include "qfp.fullname" . }}-poller
{{- end }}

{{/* A poller group's workload and ConfigMap; dict "root" $ "group" NAME.
52 characters at most: a StatefulSet's pods carry a label made of its name
and an 11-character suffix. */}}
{{- define "qfp.pollerGroupName" -}}
{{- printf "%s-poller-%s" (include "qfp.fullname" .root) .group | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* A poller group's peers: the DNS name of its headless Service, whose
records are the group's ready pods (cluster.peersDns); dict "root" $ "group"
NAME. */}}
{{- define "qfp.pollerPeersDns" -}}
{{ include "qfp.pollerGroupName" . }}.{{ .root.Release.Namespace }}.svc.{{ .root.Values.clusterDomain }}
{{- end }}

{{- define "qfp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "qfp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "qfp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qfp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "qfp.image" -}}
{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end }}

{{/* The tracker's gRPC address as the pollers dial it. */}}
{{- define "qfp.trackerAddress" -}}
{{ include "qfp.trackerName" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:{{ int .Values.tracker.grpcPort }}
{{- end }}

{{/* The user's Butler SOS config (a map, or the file's text from --set-file),
checked and printed as YAML; callers read it back with fromYaml. */}}
{{- define "qfp.butlerSosConfig" -}}
{{- $config := .Values.butlerSosConfig }}
{{- if kindIs "string" $config }}
{{- $config = fromYaml $config }}
{{- if hasKey $config "Error" }}
{{- fail (printf "butlerSosConfig is not valid YAML: %s" $config.Error) }}
{{- end }}
{{- end }}
{{- if not (kindIs "map" (get (default dict $config) "Butler-SOS")) }}
{{- fail "butlerSosConfig must be a Butler SOS config: a map with the root key Butler-SOS" }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Gets (creating it when missing or null) the map under key in a map. */}}
{{- define "qfp.child" -}}
{{- if not (kindIs "map" (get .parent .key)) }}
{{- $_ := set .parent .key dict }}
{{- end }}
{{- end }}

{{/* The tracker's copy of the config. */}}
{{- define "qfp.trackerConfig" -}}
{{- $config := include "qfp.butlerSosConfig" . | fromYaml }}
{{- $sos := get $config "Butler-SOS" }}
{{- include "qfp.child" (dict "parent" $sos "key" "failedPolls") }}
{{- include "qfp.child" (dict "parent" $sos.failedPolls "key" "tracker") }}
{{- $tracker := $sos.failedPolls.tracker }}
{{- $_ := set $tracker "listen" (printf "0.0.0.0:%d" (int .Values.tracker.grpcPort)) }}
{{- if .Values.metrics.enabled }}
{{- $_ := set $tracker "metricsListen" (printf "0.0.0.0:%d" (int .Values.metrics.port)) }}
{{- else }}
{{- $_ := unset $tracker "metricsListen" }}
{{- end }}
{{- if .Values.tracker.wal.enabled }}
{{- $_ := set $tracker "walDirectory" .Values.tracker.wal.directory }}
{{- if .Values.tracker.wal.maxBytes }}
{{- $_ := set $tracker "walMaxBytes" (int64 .Values.tracker.wal.maxBytes) }}
{{- end }}
{{- else }}
{{- $_ := unset $tracker "walDirectory" }}
{{- end }}
{{- include "qfp.mtlsKeys" (dict "root" . "side" "tracker" "section" $tracker) }}
{{- if and (kindIs "map" $tracker.coverage) (eq (toString $tracker.coverage.enable) "true") }}
{{- include "qfp.coverageNeedsOnePlan" . }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Coverage (failedPolls.tracker.coverage) reads the poll plan from the
tracker's own copy of the config, which has no group's overrides: a group
that changes what is polled, or how (servers, app names, timeouts, ...),
would have its targets reported as not polled, or missed. So with coverage
on, a group's config may only set failedPolls.poller.cluster. */}}
{{- define "qfp.coverageNeedsOnePlan" -}}
{{- range $group, $spec := .Values.poller.groups }}
{{- $sos := dict }}
{{- if and (kindIs "map" $spec) (kindIs "map" $spec.config) }}
{{- $sos = get $spec.config "Butler-SOS" | default dict }}
{{- end }}
{{- $other := without (keys $sos) "failedPolls" }}
{{- $failedPolls := get $sos "failedPolls" | default dict }}
{{- $other = concat $other (without (keys $failedPolls) "poller" | sortAlpha) }}
{{- $poller := get $failedPolls "poller" | default dict }}
{{- $other = concat $other (without (keys $poller) "cluster" | sortAlpha) }}
{{- if $other }}
{{- fail (printf "poller group %s: failedPolls.tracker.coverage.enable reads the poll plan from butlerSosConfig, but this group's config also sets %s; keep coverage off, or give the group only failedPolls.poller.cluster" $group (join ", " (sortAlpha $other))) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A poller group's copy of the config: butlerSosConfig with the group's
config deep-merged over it; dict "root" $ "group" NAME "spec" GROUP. */}}
{{- define "qfp.pollerConfig" -}}
{{- $root := .root }}
{{- $config := include "qfp.butlerSosConfig" $root | fromYaml }}
{{- with .spec.config }}
{{- $config = mergeOverwrite $config (deepCopy .) }}
{{- end }}
{{- $sos := get $config "Butler-SOS" }}
{{- include "qfp.child" (dict "parent" $sos "key" "failedPolls") }}
{{- include "qfp.child" (dict "parent" $sos.failedPolls "key" "poller") }}
{{- $poller := $sos.failedPolls.poller }}
{{- if hasKey $poller "pollerId" }}
{{- fail (printf "poller group %s: remove Butler-SOS.failedPolls.poller.pollerId; every poller of a group reads the same file, and each is named after its pod" .group) }}
{{- end }}
{{- $_ := set $poller "trackerAddress" (include "qfp.trackerAddress" $root) }}
{{- if $root.Values.metrics.enabled }}
{{- $_ := set $poller "metricsListen" (printf "0.0.0.0:%d" (int $root.Values.metrics.port)) }}
{{- else }}
{{- $_ := unset $poller "metricsListen" }}
{{- end }}
{{- /* The group's replicas share its servers (cluster.peersDns), unless
its config sets fixed shards (cluster.shardCount) or poller.cluster.enabled
is false. */}}
{{- include "qfp.child" (dict "parent" $poller "key" "cluster") }}
{{- with $poller.cluster.shardCount }}
{{- if not (and $root.Values.poller.spool.enabled $root.Values.poller.spool.persistence.enabled) }}
{{- fail (printf "poller group %s: cluster.shardCount takes each pod's shard from its StatefulSet ordinal; set poller.spool.persistence.enabled (a StatefulSet)" $.group) }}
{{- end }}
{{- $replicas := hasKey $.spec "replicas" | ternary $.spec.replicas 1 | int }}
{{- if ne (int .) $replicas }}
{{- fail (printf "poller group %s: cluster.shardCount (%d) must equal replicas (%d), so that every shard is polled" $.group (int .) $replicas) }}
{{- end }}
{{- end }}
{{- if and $root.Values.poller.cluster.enabled (not (hasKey $poller.cluster "shardCount")) }}
{{- $_ := set $poller.cluster "peersDns" (include "qfp.pollerPeersDns" .) }}
{{- else }}
{{- $_ := unset $poller.cluster "peersDns" }}
{{- end }}
{{- if not $poller.cluster }}
{{- $_ := unset $poller "cluster" }}
{{- end }}
{{- if $root.Values.poller.spool.enabled }}
{{- $_ := set $poller "spoolDirectory" $root.Values.poller.spool.directory }}
{{- else }}
{{- $_ := unset $poller "spoolDirectory" }}
{{- end }}
{{- include "qfp.mtlsKeys" (dict "root" $root "side" "poller" "section" $poller) }}
{{- with $root.Values.secrets.qlikClientCerts }}
{{- if .secretName }}
{{- include "qfp.child" (dict "parent" $sos "key" "cert") }}
{{- $_ := set $sos.cert "clientCert" (printf "/etc/qlik-failed-polls/certs/%s" .clientCert) }}
{{- $_ := set $sos.cert "clientCertKey" (printf "/etc/qlik-failed-polls/certs/%s" .clientCertKey) }}
{{- $_ := set $sos.cert "clientCertCA" (printf "/etc/qlik-failed-polls/certs/%s" .clientCertCA) }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* An env entry from a secret: dict "name" VAR "ref" {secretName, key}. */}}
{{- define "qfp.secretEnv" -}}
{{- if .ref.secretName -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.secretName }}
      key: {{ required (printf "the secret key for %s" .name) .ref.key }}
{{- end }}
{{- end }}

{{/* Prometheus scrape annotations. */}}
{{- define "qfp.scrapeAnnotations" -}}
{{- if .Values.metrics.enabled -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ int .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* The NetworkPolicy peers that may scrape metrics: one peer, the
namespaces of networkPolicy.metricsNamespaces (default: the release's) and,
when set, the pods with networkPolicy.metricsPodLabels in them. */}}
{{- define "qfp.metricsPeers" -}}
{{- $namespaces := .Values.networkPolicy.metricsNamespaces | default (list .Release.Namespace) }}
{{- range $namespaces }}
{{- if not (and (kindIs "string" .) (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .)) }}
{{- fail (printf "networkPolicy.metricsNamespaces: %v is not a namespace name" .) }}
{{- end }}
{{- end -}}
- namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: In
        values:
          {{- toYaml $namespaces | nindent 10 }}
  {{- with .Values.networkPolicy.metricsPodLabels }}
  podSelector:
    matchLabels:
      {{- toYaml . | nindent 6 }}
  {{- end }}
{{- end }}
