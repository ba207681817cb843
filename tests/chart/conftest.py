"""Shared helpers: render charts/mtls-gate with the real Helm engine (helm-python-sdk)."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_python.chart import Chart

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "mtls-gate"
RELEASE = "mtls-gate"
NAMESPACE = "mtls-gate"

CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ApiProviderProfile",
    "CustomResourceDefinition",
    "Namespace",
}

PROFILE_SPEC = {
    "issuer": "https://auth.bank.example",
    "apiBaseUrls": ["https://mtls.api.bank.example/open-banking-nz/v3.0"],
    "clientCertificate": {"caSecretName": "client-ca", "verifyDepth": 3},
    "ingressController": "ingress-nginx",
    "enforcement": "Deny",
}

# Named non-default value sets; each is rendered and linted.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "cert-manager": {"certManager": {"enabled": True}, "selfManaged": {"enabled": False}},
    "cert-manager-issuer": {
        "certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}},
        "selfManaged": {"enabled": False},
    },
    "ignore": {"webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 3}},
    "traefik": {"traefik": {"enabled": True}},
    "gateway-api": {"gatewayApi": {"enabled": True}},
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
            "apiServer": {"cidrs": ["10.0.0.1/32"], "ports": [6443]},
        },
    },
    "profile": {
        "profile": {"create": True, "name": "bank", "spec": PROFILE_SPEC},
        "clientCaSecretNames": ["client-ca"],
    },
    "single-replica": {"replicaCount": 1},
    "observability": {
        "grafana": {"dashboards": {"enabled": True}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
        "policyReports": {"enabled": True},
        "clientCaSecretNames": ["client-ca"],
    },
    "kitchen-sink": {
        "replicaCount": 3,
        "image": {"tag": "1.2.3", "pullPolicy": "Always"},
        "webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 2, "excludeNamespaces": ["legacy"]},
        "clientCaSecretNames": ["client-ca", "partner-ca"],
        "traefik": {"enabled": True},
        "rustLog": "mtls_gate=debug,info",
        "logFormat": "text",
        "podAntiAffinity": "hard",
        "podDisruptionBudget": {"minAvailable": None, "maxUnavailable": 1},
        "serviceMonitor": {"enabled": True},
        "networkPolicy": {"enabled": True},
        "priorityClassName": "system-cluster-critical",
        "profile": {"create": True, "name": "bank", "spec": PROFILE_SPEC},
    },
}


def _freeze(values: dict[str, Any] | None) -> str:
    return json.dumps(values or {}, sort_keys=True)


@functools.lru_cache(maxsize=1)
def chart() -> Chart:
    return Chart.load(CHART_DIR)


class Rendered:
    """The objects of one render, with lookups by kind and name."""

    def __init__(self, manifests: dict[str, str]):
        self.manifests = manifests
        self.notes = manifests.get("mtls-gate/templates/NOTES.txt", "")
        self.objects: list[dict[str, Any]] = []
        for path, text in sorted(manifests.items()):
            if not path.endswith(".yaml"):
                continue
            for doc in yaml.safe_load_all(text):
                if doc is not None:
                    self.objects.append(doc)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def pod(self) -> dict[str, Any]:
        return self.deployment["spec"]["template"]["spec"]

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod["containers"]
        assert len(containers) == 1
        return containers[0]

    @property
    def args(self) -> list[str]:
        return self.container["args"]

    def flag(self, name: str) -> str | None:
        """Value of --name=value, "" for a bare --name, None when absent."""
        for arg in self.args:
            if arg == f"--{name}":
                return ""
            if arg.startswith(f"--{name}="):
                return arg.split("=", 1)[1]
        return None

    def webhooks(self) -> list[dict[str, Any]]:
        hooks = []
        for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
            for cfg in self.all(kind):
                hooks.extend(cfg["webhooks"])
        return hooks

    def webhook(self, name: str) -> dict[str, Any]:
        found = [w for w in self.webhooks() if w["name"] == name]
        assert len(found) == 1, f"webhook {name}: found {len(found)}"
        return found[0]


@functools.lru_cache(maxsize=64)
def _render_cached(frozen: str, name: str, namespace: str) -> Rendered:
    values = json.loads(frozen)
    return Rendered(chart().render(values=values or None, name=name, namespace=namespace, is_install=True))


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE,
           namespace: str = NAMESPACE) -> Rendered:
    """Render the chart; results are cached, so callers must not mutate them."""
    return _render_cached(_freeze(values), name, namespace)


def merged(base: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(overrides)
    return out


@pytest.fixture(params=sorted(VALUE_SETS), ids=sorted(VALUE_SETS))
def any_values(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Each named value set in turn."""
    return VALUE_SETS[request.param]


@pytest.fixture
def default() -> Rendered:
    return render()
