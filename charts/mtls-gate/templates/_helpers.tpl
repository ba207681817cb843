{{/* Chart name. */}}
{{- define "mtls-gate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the prefix of every object name. Truncated to 63 characters because it is also
the Service name (a DNS label).
*/}}
{{- define "mtls-gate.fullname" -}}
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

{{/* Chart label value. */}}
{{- define "mtls-gate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of a release. */}}
{{- define "mtls-gate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mtls-gate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "mtls-gate.labels" -}}
helm.sh/chart: {{ include "mtls-gate.chart" . }}
{{ include "mtls-gate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mtls-gate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "mtls-gate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mtls-gate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "mtls-gate: serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mtls-gate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Secret with the webhook serving certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "mtls-gate.tlsSecretName" -}}
{{- printf "%s-webhook-tls" (include "mtls-gate.fullname" .) }}
{{- end }}

{{- define "mtls-gate.leaseName" -}}
{{- printf "%s-leader" (include "mtls-gate.fullname" .) }}
{{- end }}

{{/* Namespaces the webhooks never see, as a JSON list: fixed ones, the release namespace, extras. */}}
{{- define "mtls-gate.excludedNamespaces" -}}
{{- $ns := list "kube-system" "kube-node-lease" .Release.Namespace }}
{{- $ns = concat $ns .Values.webhook.excludeNamespaces | uniq }}
{{- toJson $ns }}
{{- end }}

{{/* namespaceSelector shared by every webhook. */}}
{{- define "mtls-gate.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- range (include "mtls-gate.excludedNamespaces" . | fromJsonArray) }}
      - {{ . | quote }}
      {{- end }}
{{- end }}

{{/* clientConfig of a webhook; argument: dict "ctx" $ "path" "/validate". */}}
{{- define "mtls-gate.clientConfig" -}}
clientConfig:
  service:
    name: {{ include "mtls-gate.fullname" .ctx }}
    namespace: {{ .ctx.Release.Namespace }}
    path: {{ .path }}
    port: 443
{{- end }}

{{/*
matchCondition that skips UPDATEs of an Ingress that change nothing the webhooks read
(spec, labels, annotations): e.g. finalizer, ownerReference or managedFields updates.
Status updates go to the status subresource, which the rules do not match at all.
Written so that it never errors: a failed matchCondition would take failurePolicy.
CREATE and DELETE always match (on DELETE `object` is null, on CREATE `oldObject` is).
*/}}
{{- define "mtls-gate.ingressChangedCondition" -}}
- name: ingress-relevant-change
  expression: >-
    request.operation != 'UPDATE' ||
    !has(object.spec) || !has(oldObject.spec) || object.spec != oldObject.spec ||
    (has(object.metadata.labels) ? object.metadata.labels : {}) !=
    (has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}) ||
    (has(object.metadata.annotations) ? object.metadata.annotations : {}) !=
    (has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {})
{{- end }}

{{/* Values checks that JSON Schema cannot express; included by the Deployment. */}}
{{- define "mtls-gate.validateValues" -}}
{{- if and .Values.certManager.enabled .Values.selfManaged.enabled }}
{{- fail "mtls-gate: certManager.enabled and selfManaged.enabled are both true. Choose exactly one source for the webhook certificate: set selfManaged.enabled=false to use cert-manager, or certManager.enabled=false to let the operator manage it." }}
{{- end }}
{{- if not (or .Values.certManager.enabled .Values.selfManaged.enabled) }}
{{- fail "mtls-gate: neither certManager.enabled nor selfManaged.enabled is true, so nothing would issue the webhook serving certificate. Enable exactly one of them." }}
{{- end }}
{{- if and .Values.certManager.issuerRef (not .Values.certManager.enabled) }}
{{- fail "mtls-gate: certManager.issuerRef is set but certManager.enabled is false. Enable cert-manager (and disable selfManaged) or remove certManager.issuerRef." }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (gt (int .Values.replicaCount) 1) }}
{{- if and (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) }}
{{- fail "mtls-gate: podDisruptionBudget.minAvailable and podDisruptionBudget.maxUnavailable are both set. Set exactly one of them (the other to null)." }}
{{- end }}
{{- if and (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable) }}
{{- fail "mtls-gate: podDisruptionBudget is enabled but neither minAvailable nor maxUnavailable is set. Set exactly one of them." }}
{{- end }}
{{- if and (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "string" $pdb.minAvailable)) }}
{{- if ge (int $pdb.minAvailable) (int .Values.replicaCount) }}
{{- fail (printf "mtls-gate: podDisruptionBudget.minAvailable (%d) must be lower than replicaCount (%d), or no pod could ever be evicted and node drains would hang." (int $pdb.minAvailable) (int .Values.replicaCount)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (add (int .Values.preStopSleepSeconds) (int .Values.shutdownGracePeriodSeconds)) }}
{{- fail (printf "mtls-gate: terminationGracePeriodSeconds (%d) must be at least preStopSleepSeconds + shutdownGracePeriodSeconds (%d), or the kubelet kills the pod while it is still draining." (int .Values.terminationGracePeriodSeconds) (add (int .Values.preStopSleepSeconds) (int .Values.shutdownGracePeriodSeconds))) }}
{{- end }}
{{- if and .Values.profile.create (not .Values.profile.name) }}
{{- fail "mtls-gate: profile.create is true but profile.name is empty. Name the profile: Ingresses opt in with the label mtls-gate.io/profile: <name>." }}
{{- end }}
{{- end }}
