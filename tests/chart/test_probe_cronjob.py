"""The optional `mtls-gate probe` CronJob: off by default; when on, it runs
`probe --from-cluster --write-status` under its own ServiceAccount that may only read
profiles and patch their status."""

from __future__ import annotations

from typing import Any

import pytest
from helm_python import HelmRenderError, HelmValuesError

from helm_python.chart import lint

from conftest import CHART_DIR, NAMESPACE, RELEASE, chart, render

PROBE = {
    "probeCronJob": {
        "enabled": True,
        "schedule": "*/15 * * * *",
        "clientCertificateSecret": "probe-client-cert",
        "caSecret": "bank-server-ca",
        "profiles": ["bank"],
        "resolve": ["api.bank.example:443:10.0.0.10", "mtls.api.bank.example:443:[fd00::10]"],
    }
}
NAME = f"{RELEASE}-probe"


def _job_pod(rendered: Any) -> dict[str, Any]:
    return rendered.one("CronJob", NAME)["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_off_by_default() -> None:
    default = render()
    assert not default.all("CronJob")
    assert all(o["metadata"]["name"] != NAME for o in default.objects)


def test_cronjob_runs_probe_with_the_values() -> None:
    rendered = render(PROBE)
    cron = rendered.one("CronJob", NAME)
    assert cron["apiVersion"] == "batch/v1"
    assert cron["metadata"]["namespace"] == NAMESPACE
    assert cron["spec"]["schedule"] == "*/15 * * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    pod = _job_pod(rendered)
    assert pod["serviceAccountName"] == NAME
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"] == ["/usr/local/bin/mtls-gate"]
    assert container["args"] == [
        "probe",
        "--from-cluster",
        "--write-status",
        "--name=bank",
        "--client-cert=/var/run/mtls-gate/client/tls.crt",
        "--client-key=/var/run/mtls-gate/client/tls.key",
        "--ca-file=/var/run/mtls-gate/server-ca/ca.crt",
        "--resolve=api.bank.example:443:10.0.0.10",
        "--resolve=mtls.api.bank.example:443:[fd00::10]",
        "--timeout=10",
        "--max-rate=10",
    ]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]}
    assert mounts == {"client-certificate": "/var/run/mtls-gate/client",
                      "server-ca": "/var/run/mtls-gate/server-ca"}
    assert volumes == {"client-certificate": "probe-client-cert", "server-ca": "bank-server-ca"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_probe_pods_are_not_selected_by_the_operator_objects() -> None:
    rendered = render(PROBE)
    labels = rendered.one("CronJob", NAME)["spec"]["jobTemplate"]["spec"]["template"][
        "metadata"]["labels"]
    selector = rendered.deployment["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= labels.items(), "the Service and PDB would pick probe pods"
    assert labels["app.kubernetes.io/component"] == "probe"


def test_system_trust_store_without_ca_secret_and_every_profile_without_names() -> None:
    values = {"probeCronJob": {"enabled": True, "clientCertificateSecret": "probe-client-cert"}}
    pod = _job_pod(render(values))
    args = pod["containers"][0]["args"]
    assert not any(a.startswith("--ca-file") or a.startswith("--name") for a in args)
    assert [v["name"] for v in pod["volumes"]] == ["client-certificate"]


def test_rbac_reads_profiles_and_patches_only_their_status() -> None:
    rendered = render(PROBE)
    role = rendered.one("ClusterRole", NAME)
    grants = {(g, r): set(rule["verbs"]) for rule in role["rules"]
              for g in rule["apiGroups"] for r in rule["resources"]}
    assert grants == {
        ("mtls-gate.io", "apiproviderprofiles"): {"get", "list"},
        ("mtls-gate.io", "apiproviderprofiles/status"): {"patch"},
    }
    binding = rendered.one("ClusterRoleBinding", NAME)
    assert binding["roleRef"]["name"] == NAME
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]
    assert rendered.one("ServiceAccount", NAME)["metadata"]["namespace"] == NAMESPACE
    # The operator's own role is unchanged.
    assert render().one("ClusterRole", RELEASE)["rules"] == rendered.one("ClusterRole", RELEASE)["rules"]


def test_client_certificate_secret_is_required() -> None:
    with pytest.raises(HelmRenderError) as info:
        render({"probeCronJob": {"enabled": True}})
    assert "probeCronJob.clientCertificateSecret is required" in str(info.value)


@pytest.mark.parametrize("bad", [
    {"schedule": "often"},
    {"resolve": ["api.bank.example:443"]},
    {"maxRate": 0},
    {"timeoutSeconds": 0},
    {"clientCertificateSecret": "Not_A_Secret"},
    {"unknownKey": True},
])
def test_schema_rejects_bad_probe_values(bad: dict[str, Any]) -> None:
    values = {"probeCronJob": {"enabled": True, "clientCertificateSecret": "c", **bad}}
    with pytest.raises(HelmValuesError):
        chart().validate_schema(chart().merge_values(values))


def test_lint_strict_is_clean_when_enabled() -> None:
    report = lint(CHART_DIR, PROBE, strict=True, namespace=NAMESPACE)
    problems = [f"{m['path']}: {m['error']}" for m in report["messages"]
                if m["severity"] >= 2 or "icon" not in m["error"]] + list(report["errors"])
    assert problems == []
