"""deploy/mtls-gate.yaml is the chart rendered with default values, kept in sync."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import yaml

from conftest import CLUSTER_SCOPED, REPO, render

SCRIPT = REPO / "scripts" / "render-deploy.py"
DEPLOY = REPO / "deploy" / "mtls-gate.yaml"
NETWORK_POLICY = REPO / "deploy" / "networkpolicy.yaml"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_deploy", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deploy_matches_a_fresh_render() -> None:
    assert DEPLOY.exists(), "deploy/mtls-gate.yaml is missing: run .venv/bin/python scripts/render-deploy.py"
    assert DEPLOY.read_text() == _script().render(), (
        "deploy/mtls-gate.yaml is stale: run scripts/sync-crds.sh && .venv/bin/python scripts/render-deploy.py")


def test_deploy_contents() -> None:
    docs = [d for d in yaml.safe_load_all(DEPLOY.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    # Namespace first, then the CRDs (if generated yet), then the chart's objects.
    assert kinds[0] == "Namespace"
    assert docs[0]["metadata"]["name"] == "mtls-gate"
    assert docs[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    crd_count = kinds.count("CustomResourceDefinition")
    assert kinds[1:1 + crd_count] == ["CustomResourceDefinition"] * crd_count
    top_level = [d for f in sorted((REPO / "crds").glob("*.yaml"))
                 for d in yaml.safe_load_all(f.read_text()) if d]
    assert crd_count == len(top_level), (
        f"deploy/mtls-gate.yaml has {crd_count} CRDs, crds/ has {len(top_level)}: "
        "run scripts/sync-crds.sh && .venv/bin/python scripts/render-deploy.py")
    assert docs[1:1 + crd_count] == top_level
    objects = docs[1 + crd_count:]
    assert "CustomResourceDefinition" not in [o["kind"] for o in objects]
    # Exactly the objects of a default render, without Helm hooks (the `helm test` Pod).
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    installed = [o for o in render().objects if not _script().is_hook(o)]
    assert len(installed) < len(render().objects), "the default render has a helm test hook"
    assert sorted(objects, key=key) == sorted(installed, key=key)
    assert not [o for o in objects if "helm.sh/hook" in o["metadata"].get("annotations", {})]
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == "mtls-gate"
    # Webhook configurations last, so the API server does not call a webhook that has no
    # endpoints while the other objects are being created.
    assert [o["kind"] for o in objects[-2:]] == ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


def test_deploy_readme_exists() -> None:
    readme = (REPO / "deploy" / "README.md").read_text()
    assert "scripts/render-deploy.py" in readme


def test_network_policy_for_plain_manifests() -> None:
    assert NETWORK_POLICY.read_text() == _script().render_network_policy(), (
        "deploy/networkpolicy.yaml is stale: run .venv/bin/python scripts/render-deploy.py")
    docs = [d for d in yaml.safe_load_all(NETWORK_POLICY.read_text()) if d]
    assert [d["kind"] for d in docs] == ["NetworkPolicy"]
    policy = docs[0]
    assert policy["metadata"]["namespace"] == "mtls-gate"
    assert policy == render({"networkPolicy": {"enabled": True}}).one("NetworkPolicy")
    # It selects the pods of deploy/mtls-gate.yaml.
    deployment = [d for d in yaml.safe_load_all(DEPLOY.read_text()) if d and d["kind"] == "Deployment"][0]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
