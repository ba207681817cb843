"""RBAC: exactly what the binary needs, nothing cluster-wide on Secrets."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import NAMESPACE, RELEASE, VALUE_SETS, Rendered, render

# (apiGroup, resource) -> verbs, for the ClusterRole (cluster-wide, no resourceNames).
CLUSTER_RULES = {
    ("networking.k8s.io", "ingresses"): {"get", "list", "watch", "patch"},
    # Which Ingresses of other classes the profile's controller serves.
    ("networking.k8s.io", "ingressclasses"): {"list", "watch"},
    ("mtls-gate.io", "apiproviderprofiles"): {"get", "list", "watch", "patch"},
    ("mtls-gate.io", "apiproviderprofiles/status"): {"patch"},
    ("mtls-gate.io", "apiproviderprofiles/finalizers"): {"update"},
    ("events.k8s.io", "events"): {"create", "patch"},
    # The ingress controller's ConfigMap a profile names (spec.controllerConfigMap), and
    # gateway-api CA bundles.
    ("", "configmaps"): {"list", "watch"},
}
TRAEFIK_RULES = {
    ("traefik.io", "tlsoptions"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("traefik.io", "middlewares"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    # IngressRoutes are only read, in both groups (Traefik v2.10-v2.11 serve the older one).
    ("traefik.io", "ingressroutes"): {"get", "list", "watch"},
    ("traefik.containo.us", "ingressroutes"): {"get", "list", "watch"},
    # IngressRouteTCPs are only read, to report TCP routers that take a profile host.
    ("traefik.io", "ingressroutetcps"): {"get", "list", "watch"},
    ("traefik.containo.us", "ingressroutetcps"): {"get", "list", "watch"},
}
GATEWAY_API_RULES = {
    # Labelled Gateways get their frontend validation by server-side apply.
    ("gateway.networking.k8s.io", "gateways"): {"list", "watch", "patch"},
    ("gateway.networking.k8s.io", "httproutes"): {"list", "watch"},
    ("gateway.networking.k8s.io", "grpcroutes"): {"list", "watch"},
    ("gateway.networking.k8s.io", "tlsroutes"): {"list", "watch"},
    ("gateway.networking.k8s.io", "tcproutes"): {"list", "watch"},
    ("gateway.networking.k8s.io", "referencegrants"): {"list", "watch"},
    ("gateway.networking.k8s.io", "listenersets"): {"list", "watch"},
    ("gateway.networking.x-k8s.io", "xlistenersets"): {"list", "watch"},
    ("gateway.envoyproxy.io", "clienttrafficpolicies"): {"list", "watch"},
    ("gateway.envoyproxy.io", "securitypolicies"): {"list", "watch"},
    # Merged Gateways: a GatewayClass's parametersRef to an EnvoyProxy.
    ("gateway.networking.k8s.io", "gatewayclasses"): {"list", "watch"},
    ("gateway.envoyproxy.io", "envoyproxies"): {"list", "watch"},
}
# The operator's server-side apply of its policy reports, and pruning of stale ones.
POLICY_REPORT_RULES = {
    ("wgpolicyk8s.io", "policyreports"): {"get", "list", "create", "patch", "delete"},
    ("wgpolicyk8s.io", "clusterpolicyreports"): {"get", "list", "create", "patch", "delete"},
}
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}


def _grants(role: dict[str, Any]) -> dict[tuple[str, str, tuple[str, ...]], set[str]]:
    """(apiGroup, resource, resourceNames) -> verbs, merged over all rules."""
    out: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule
        assert rule["verbs"], rule
        if "resourceNames" in rule:
            # An empty resourceNames list means "every object".
            assert rule["resourceNames"], rule
        names = tuple(sorted(rule.get("resourceNames", [])))
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource, names), set()).update(rule["verbs"])
    return out


def _expected_cluster(values: dict[str, Any]) -> dict[tuple[str, str, tuple[str, ...]], set[str]]:
    expected = {(g, r, ()): v for (g, r), v in CLUSTER_RULES.items()}
    if values.get("traefik", {}).get("enabled"):
        expected.update({(g, r, ()): v for (g, r), v in TRAEFIK_RULES.items()})
    if values.get("gatewayApi", {}).get("enabled"):
        expected.update({(g, r, ()): v for (g, r), v in GATEWAY_API_RULES.items()})
    if values.get("policyReports", {}).get("enabled"):
        expected.update({(g, r, ()): v for (g, r), v in POLICY_REPORT_RULES.items()})
    ca = tuple(sorted(values.get("clientCaSecretNames", [])))
    if ca:
        expected[("", "secrets", ca)] = {"get", "list", "watch"}
    if values.get("selfManaged", {}).get("enabled", True):
        for res in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
            expected[("admissionregistration.k8s.io", res, (RELEASE,))] = {"get", "update"}
    return expected


def _expected_namespaced(values: dict[str, Any]) -> dict[tuple[str, str, tuple[str, ...]], set[str]]:
    expected = {
        ("coordination.k8s.io", "leases", ()): {"create"},
        ("coordination.k8s.io", "leases", (f"{RELEASE}-leader",)): {"get", "update"},
    }
    if values.get("selfManaged", {}).get("enabled", True):
        expected[("", "secrets", ())] = {"create"}
        expected[("", "secrets", (f"{RELEASE}-webhook-tls",))] = {"get", "update"}
    return expected


def test_cluster_role_is_exactly_what_the_binary_needs(any_values: dict) -> None:
    role = render(any_values).one("ClusterRole")
    assert _grants(role) == _expected_cluster(any_values)


def test_role_is_exactly_what_the_binary_needs(any_values: dict) -> None:
    rendered = render(any_values)
    role = rendered.one("Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _grants(role) == _expected_namespaced(any_values)


def test_no_wildcards_or_privilege_escalation(any_values: dict) -> None:
    rendered = render(any_values)
    for role in rendered.all("ClusterRole") + rendered.all("Role"):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), (role["kind"], rule)
            assert not set(rule["verbs"]) & DANGEROUS_VERBS, rule
            assert not {"roles", "clusterroles", "rolebindings", "clusterrolebindings", "pods", "nodes",
                        "serviceaccounts/token"} & set(rule["resources"]), rule


def test_secrets_are_never_listable_without_resource_names(any_values: dict) -> None:
    rendered = render(any_values)
    for role in rendered.all("ClusterRole"):
        for rule in role["rules"]:
            if "secrets" in rule["resources"]:
                assert rule.get("resourceNames"), f"cluster-wide Secret access without resourceNames: {rule}"
    for role in rendered.all("Role"):
        for rule in role["rules"]:
            if "secrets" in rule["resources"] and not rule.get("resourceNames"):
                # create cannot be restricted by name; it never reveals a Secret.
                assert rule["verbs"] == ["create"], rule


def test_default_reads_no_secret_cluster_wide(default: Rendered) -> None:
    rules = default.one("ClusterRole")["rules"]
    assert not [r for r in rules if "secrets" in r["resources"]]


@pytest.mark.parametrize("names", [["client-ca"], ["client-ca", "partner-ca"]])
def test_ca_secrets_readable_by_name_only(names: list[str]) -> None:
    rules = render({"clientCaSecretNames": names}).one("ClusterRole")["rules"]
    secret_rules = [r for r in rules if "secrets" in r["resources"]]
    assert secret_rules == [{
        "apiGroups": [""], "resources": ["secrets"], "resourceNames": names, "verbs": ["get", "list", "watch"],
    }]


def test_cert_manager_mode_drops_certificate_permissions() -> None:
    rendered = render(VALUE_SETS["cert-manager"])
    groups = {g for r in rendered.one("ClusterRole")["rules"] for g in r["apiGroups"]}
    assert "admissionregistration.k8s.io" not in groups
    assert not [r for r in rendered.one("Role")["rules"] if "secrets" in r["resources"]]


def test_bindings_tie_roles_to_the_service_account(any_values: dict) -> None:
    rendered = render(any_values)
    sa_name = rendered.pod["serviceAccountName"]
    subject = [{"kind": "ServiceAccount", "name": sa_name, "namespace": NAMESPACE}]
    crb = rendered.one("ClusterRoleBinding")
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": rendered.one("ClusterRole")["metadata"]["name"]}
    assert crb["subjects"] == subject
    rb = rendered.one("RoleBinding")
    assert rb["metadata"]["namespace"] == NAMESPACE
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                             "name": rendered.one("Role")["metadata"]["name"]}
    assert rb["subjects"] == subject


def test_resource_names_match_the_objects_the_binary_is_told_about(default: Rendered) -> None:
    """The names in RBAC are the names passed on the command line."""
    cluster = _grants(default.one("ClusterRole"))
    namespaced = _grants(default.one("Role"))
    webhook_names = {default.flag("validating-webhook-name"), default.flag("mutating-webhook-name")}
    assert webhook_names == {default.one("ValidatingWebhookConfiguration")["metadata"]["name"],
                             default.one("MutatingWebhookConfiguration")["metadata"]["name"]}
    assert ("admissionregistration.k8s.io", "validatingwebhookconfigurations",
            (default.flag("validating-webhook-name"),)) in cluster
    assert ("", "secrets", (default.flag("cert-secret-name"),)) in namespaced
    assert ("coordination.k8s.io", "leases", (default.flag("leader-election-lease-name"),)) in namespaced


def test_existing_service_account() -> None:
    rendered = render({"serviceAccount": {"create": False, "name": "preexisting"}})
    assert not rendered.all("ServiceAccount")
    assert rendered.pod["serviceAccountName"] == "preexisting"
    assert rendered.one("ClusterRoleBinding")["subjects"][0]["name"] == "preexisting"
    # The mutating webhook's "skip the operator's own writes" condition follows the account.
    hook = next(w for w in rendered.webhooks() if w["name"] == "ingresses.mutate.mtls-gate.io")
    assert f"system:serviceaccount:{NAMESPACE}:preexisting" in hook["matchConditions"][-1]["expression"]
