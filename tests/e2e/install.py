#!/usr/bin/env python3
"""Print the chart objects an out-of-cluster e2e install applies, as one YAML stream.

Renders charts/mtls-gate with the real Helm engine (helm-python-sdk, as
scripts/render-deploy.py does) and keeps what does not need a kubelet: the ServiceAccount,
the RBAC objects and the webhook configurations. Each webhook's clientConfig.service is
replaced by `url` (same path), because the operator runs out of cluster behind that URL,
and `caBundle` is set from --ca if given (without it, as in the chart, the operator's leader
writes it in self-managed mode). Everything else (names, rules, selectors, failurePolicy)
is the chart's.

    install.py --release mtls-gate --namespace mtls-gate --url https://127.0.0.1:18443 \\
        [--ca pki/ca.crt] [--set KEY=JSON ...]

Used by scripts/e2e-cluster.sh up.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import yaml
from helm_python.chart import Chart

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "mtls-gate"
KINDS = {
    "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
}


def set_value(values: dict, dotted: str, raw: str) -> None:
    *path, last = dotted.split(".")
    for key in path:
        values = values.setdefault(key, {})
    values[last] = json.loads(raw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--url", required=True, help="base URL of the webhooks")
    parser.add_argument("--ca", help="PEM file of the webhook server's CA (caBundle)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    args = parser.parse_args()

    values: dict = {}
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=JSON")
        set_value(values, key, raw)
    ca_bundle = base64.b64encode(Path(args.ca).read_bytes()).decode() if args.ca else None

    with Chart.load(CHART_DIR) as chart:
        rendered = chart.render(values=values, name=args.release, namespace=args.namespace,
                                is_install=True)
    docs = []
    for path in sorted(rendered):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if not doc or doc.get("kind") not in KINDS:
                continue
            if doc["kind"].endswith("WebhookConfiguration"):
                for webhook in doc["webhooks"]:
                    service_path = webhook["clientConfig"]["service"]["path"]
                    webhook["clientConfig"] = {"url": args.url + service_path}
                    if ca_bundle:
                        webhook["clientConfig"]["caBundle"] = ca_bundle
            docs.append(doc)
    if not any(d["kind"] == "ClusterRole" for d in docs):
        print("install.py: the chart rendered no ClusterRole", file=sys.stderr)
        return 1
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
