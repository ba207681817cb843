"""helm lint (the real Helm engine) with default and non-default values."""

from __future__ import annotations

import pytest
from helm_python.chart import lint

from conftest import CHART_DIR, NAMESPACE, VALUE_SETS, chart, render


def _problems(report: dict) -> list[str]:
    # Severity: 1 info, 2 warning, 3 error. "icon is recommended" is the only info we accept.
    return [
        f"{m['path']}: {m['error']}"
        for m in report["messages"]
        if m["severity"] >= 2 or "icon" not in m["error"]
    ] + list(report["errors"])


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_strict_is_clean(name: str) -> None:
    report = lint(CHART_DIR, VALUE_SETS[name] or None, strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert _problems(report) == []


@pytest.mark.parametrize("kube_version", ["v1.30.0", "v1.33.0", "v1.35.0"])
def test_lint_supported_kubernetes_versions(kube_version: str) -> None:
    report = lint(CHART_DIR, None, strict=True, namespace=NAMESPACE, kube_version=kube_version)
    assert _problems(report) == []


def test_lint_reports_schema_violations() -> None:
    report = lint(CHART_DIR, {"webhook": {"timeoutSeconds": 30}}, namespace=NAMESPACE)
    assert any("/webhook/timeoutSeconds" in e for e in report["errors"]), report


def test_chart_metadata() -> None:
    meta = chart().metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "mtls-gate"
    assert meta["type"] == "application"
    assert meta["appVersion"] == "0.1.0"
    # matchConditions are GA from 1.30; the chart says so.
    assert meta["kubeVersion"] == ">=1.30.0-0"
    assert chart().schema is not None, "values.schema.json is missing"


def test_every_value_set_renders_valid_objects(any_values: dict) -> None:
    rendered = render(any_values)
    assert rendered.objects
    for obj in rendered.objects:
        assert obj.get("apiVersion") and obj.get("kind"), obj
        meta = obj["metadata"]
        assert meta["name"], obj
        labels = meta.get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "mtls-gate", (obj["kind"], labels)
        assert labels.get("app.kubernetes.io/instance"), (obj["kind"], labels)
        assert all(isinstance(v, str) for v in labels.values()), labels
    assert rendered.notes.strip(), "NOTES.txt rendered nothing"
