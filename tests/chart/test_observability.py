"""Grafana dashboard, PrometheusRule, `helm test` hook, policy-report switch, and NOTES."""

from __future__ import annotations

import json
import re

import yaml

from conftest import NAMESPACE, RELEASE, REPO, render
from test_deployment import _restricted_violations

# Metric names the webhook and controller register (src/**/metrics.rs), as Prometheus exposes
# them (counters get `_total`, histograms `_bucket`).
_REGISTERED = set(re.findall(r'"(mtls_gate_[a-z_]+)"', "".join(
    p.read_text() for p in (REPO / "src").rglob("*.rs"))))
# The serving certificate's notAfter (src/webhook/metrics.rs).
_CERT_EXPIRY = "mtls_gate_certificate_not_after_seconds"


def _metrics_in(expr: str) -> set[str]:
    names = set(re.findall(r"\b(mtls_gate_[a-z_]+)", expr))
    return {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in names}


def _assert_known_metrics(exprs: list[str]) -> None:
    for expr in exprs:
        for name in _metrics_in(expr):
            assert name in _REGISTERED, f"unknown metric {name} in {expr}"


def test_grafana_dashboard_configmap_for_the_sidecar() -> None:
    assert not render().all("ConfigMap")
    rendered = render({"grafana": {"dashboards": {"enabled": True, "namespace": "monitoring",
                                                   "annotations": {"grafana_folder": "Security"}}}})
    cm = rendered.one("ConfigMap", f"{RELEASE}-dashboard")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Security"}
    dashboard = json.loads(cm["data"]["mtls-gate.json"])
    assert dashboard["uid"] == "mtls-gate" and dashboard["title"] == "mtls-gate"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    _assert_known_metrics(exprs)
    # Every panel is scoped to the chosen namespace and data source.
    assert all('namespace="$namespace"' in e for e in exprs)
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "namespace"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # The live check (status.probe) has its panels.
    probe_exprs = [e for e in exprs if "mtls_gate_probe_" in e]
    assert any('mtls_gate_probe_endpoints{namespace="$namespace",result="failed"}' in e
               for e in probe_exprs)
    assert any("mtls_gate_probe_last_run_timestamp_seconds" in e for e in probe_exprs)


def test_prometheus_rule_alerts() -> None:
    assert not render().all("PrometheusRule")
    rendered = render({"prometheusRule": {"enabled": True, "labels": {"release": "kps"},
                                           "certificateExpiryDays": 21}})
    rule = rendered.one("PrometheusRule", RELEASE)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "kps"
    rules = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(rules) == {
        "MtlsGateProfileViolations", "MtlsGateWebhookErrors", "MtlsGateWebhookSlow",
        "MtlsGateServingCertificateExpiresSoon", "MtlsGateNoLeader",
        "MtlsGateProbeFailing", "MtlsGateProbeStale",
    }
    exprs = [r["expr"] for r in rules.values()]
    _assert_known_metrics(exprs)
    for alert, r in rules.items():
        assert f'namespace="{NAMESPACE}"' in r["expr"], alert
        assert r["labels"]["severity"] in {"warning", "critical"}, alert
        assert r["annotations"]["summary"] and r["annotations"]["description"], alert
        # Balanced braces and parentheses: the template rendered whole selectors.
        assert r["expr"].count("{") == r["expr"].count("}"), alert
        assert r["expr"].count("(") == r["expr"].count(")"), alert
    assert _CERT_EXPIRY in rules["MtlsGateServingCertificateExpiresSoon"]["expr"]
    assert "< 21 * 86400" in rules["MtlsGateServingCertificateExpiresSoon"]["expr"]
    assert 'decision="error"' in rules["MtlsGateWebhookErrors"]["expr"]
    assert "{{ $labels.profile }}" in rules["MtlsGateProfileViolations"]["annotations"]["summary"]
    # The live check: failing endpoint URLs from status.probe, one series per profile even
    # when every replica exports it.
    failing = rules["MtlsGateProbeFailing"]
    assert failing["expr"].startswith("max by (profile) (mtls_gate_probe_endpoints{")
    assert 'result="failed"' in failing["expr"] and failing["expr"].endswith("> 0")
    assert failing["for"] == "5m" and failing["labels"]["severity"] == "critical"
    assert "status.probe.failing" in failing["annotations"]["description"]
    assert "> 3 * 3600" in rules["MtlsGateProbeStale"]["expr"]
    tuned = render({"prometheusRule": {"enabled": True, "probeFailingFor": "1h",
                                       "probeStaleHours": 25},
                    "probeCronJob": {"enabled": True, "clientCertificateSecret": "probe-client"}})
    rules = {r["alert"]: r for g in tuned.one("PrometheusRule")["spec"]["groups"]
             for r in g["rules"]}
    assert rules["MtlsGateProbeFailing"]["for"] == "1h"
    assert "> 25 * 3600" in rules["MtlsGateProbeStale"]["expr"]
    assert (f"get jobs -l app.kubernetes.io/component=probe,app.kubernetes.io/instance={RELEASE}"
            in rules["MtlsGateProbeStale"]["annotations"]["description"])


def test_helm_test_hook_checks_the_webhook_over_verified_tls() -> None:
    pod = render().one("Pod", f"{RELEASE}-test-webhook")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    script = container["command"][-1]
    assert f"https://{RELEASE}.{NAMESPACE}.svc" in script
    assert "--cacert /webhook-tls/ca.crt" in script and " -k" not in script
    assert '"uid":"helm-test"' in script and "/readyz" in script
    review = json.loads(re.search(r"review='(.*)'", script).group(1))
    assert review["request"]["kind"]["kind"] == "ConfigMap"  # a kind the webhooks admit
    (volume,) = spec["volumes"]
    assert volume["secret"]["secretName"] == f"{RELEASE}-webhook-tls"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert _restricted_violations(spec) == []  # runs in the restricted namespace of deploy/
    assert not render({"tests": {"enabled": False}}).all("Pod")


def test_policy_reports_switch_adds_the_flag_and_only_their_rbac() -> None:
    default = render()
    assert default.flag("policy-reports") is None
    groups = {g for r in default.one("ClusterRole")["rules"] for g in r["apiGroups"]}
    assert "wgpolicyk8s.io" not in groups
    rendered = render({"policyReports": {"enabled": True}})
    assert rendered.flag("policy-reports") == ""
    rules = [r for r in rendered.one("ClusterRole")["rules"] if r["apiGroups"] == ["wgpolicyk8s.io"]]
    assert rules == [{"apiGroups": ["wgpolicyk8s.io"],
                      "resources": ["policyreports", "clusterpolicyreports"],
                      "verbs": ["get", "list", "create", "patch", "delete"]}]
    assert "kubectl get policyreports" in rendered.notes


def test_notes_say_loudly_when_ca_secrets_cannot_be_read() -> None:
    assert "CA CHECKS ARE OFF IN THE CLUSTER" in render().notes
    assert "CaSecretAvailable" in render().notes  # where each profile says so
    assert "CA CHECKS ARE OFF" not in render({"clientCaSecretNames": ["open-banking-client-ca"]}).notes


def test_notes_give_one_gate_url_and_the_test_command() -> None:
    notes = render().notes
    assert f"https://{RELEASE}.{NAMESPACE}.svc.cluster.local/verify" in notes
    assert f"helm test {RELEASE} -n {NAMESPACE}" in notes
    readme = (REPO / "README.md").read_text()
    assert ".svc/verify" not in readme and ".svc.cluster.local/verify" in readme


def test_dashboard_file_is_the_configmap_content() -> None:
    text = (REPO / "charts" / "mtls-gate" / "dashboards" / "mtls-gate.json").read_text()
    cm = render({"grafana": {"dashboards": {"enabled": True}}}).one("ConfigMap")
    assert json.loads(cm["data"]["mtls-gate.json"]) == json.loads(text)
    yaml.safe_dump(cm)  # serialisable as a manifest
