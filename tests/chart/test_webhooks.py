"""The admission webhook configurations: scope, safety settings and matchConditions."""

from __future__ import annotations

import copy
import re
from typing import Any

import cel
import pytest

from conftest import NAMESPACE, RELEASE, VALUE_SETS, Rendered, render

VALIDATE_INGRESS = "ingresses.validate.mtls-gate.io"
VALIDATE_PROFILE = "apiproviderprofiles.validate.mtls-gate.io"
VALIDATE_CONTROLLER_OBJECTS = "controller-objects.validate.mtls-gate.io"
MUTATE_INGRESS = "ingresses.mutate.mtls-gate.io"
MUTATE_CONTROLLER_OBJECTS = "controller-objects.mutate.mtls-gate.io"
MUTATING = (MUTATE_INGRESS, MUTATE_CONTROLLER_OBJECTS)

INGRESS_RULE = {
    "apiGroups": ["networking.k8s.io"],
    "apiVersions": ["v1"],
    "resources": ["ingresses"],
    "scope": "Namespaced",
}
# The kinds the dialects own (tests/webhook_rules.rs checks them against the Rust dialects).
CONTROLLER_OBJECTS_RULES = [
    {
        "apiGroups": ["traefik.io"],
        "apiVersions": ["v1alpha1"],
        "resources": ["tlsoptions", "middlewares", "ingressroutes", "ingressroutetcps"],
        "scope": "Namespaced",
    },
    # Traefik v2.10-v2.11 still serve IngressRoutes of the older group.
    {
        "apiGroups": ["traefik.containo.us"],
        "apiVersions": ["v1alpha1"],
        "resources": ["ingressroutes", "ingressroutetcps"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["gateway.networking.k8s.io"],
        "apiVersions": ["v1"],
        "resources": ["gateways", "httproutes", "grpcroutes", "listenersets"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["gateway.networking.k8s.io"],
        "apiVersions": ["v1alpha2"],
        "resources": ["tlsroutes", "tcproutes"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["gateway.networking.k8s.io"],
        "apiVersions": ["v1beta1"],
        "resources": ["referencegrants"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["gateway.networking.x-k8s.io"],
        "apiVersions": ["v1alpha1"],
        "resources": ["xlistenersets"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["gateway.envoyproxy.io"],
        "apiVersions": ["v1alpha1"],
        "resources": ["clienttrafficpolicies", "securitypolicies"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["gateway.networking.k8s.io"],
        "apiVersions": ["v1"],
        "resources": ["gatewayclasses"],
        "scope": "Cluster",
    },
    {
        "apiGroups": ["gateway.envoyproxy.io"],
        "apiVersions": ["v1alpha1"],
        "resources": ["envoyproxies"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["configmaps"],
        "scope": "Namespaced",
    },
]
PROFILE_RULE = {
    "apiGroups": ["mtls-gate.io"],
    "apiVersions": ["v1alpha1"],
    "resources": ["apiproviderprofiles"],
    "scope": "Cluster",
}


def test_webhook_configurations_and_names(default: Rendered) -> None:
    validating = default.one("ValidatingWebhookConfiguration", RELEASE)
    mutating = default.one("MutatingWebhookConfiguration", RELEASE)
    assert [w["name"] for w in validating["webhooks"]] == [
        VALIDATE_INGRESS,
        VALIDATE_CONTROLLER_OBJECTS,
        VALIDATE_PROFILE,
    ]
    assert [w["name"] for w in mutating["webhooks"]] == [MUTATE_INGRESS, MUTATE_CONTROLLER_OBJECTS]


def test_rules_cover_exactly_the_narrow_scope(default: Rendered) -> None:
    assert default.webhook(VALIDATE_INGRESS)["rules"] == [
        dict(INGRESS_RULE, operations=["CREATE", "UPDATE", "DELETE"])
    ]
    assert default.webhook(VALIDATE_PROFILE)["rules"] == [
        dict(PROFILE_RULE, operations=["CREATE", "UPDATE"])
    ]
    assert default.webhook(VALIDATE_CONTROLLER_OBJECTS)["rules"] == [
        dict(rule, operations=["CREATE", "UPDATE", "DELETE"]) for rule in CONTROLLER_OBJECTS_RULES
    ]
    assert default.webhook(MUTATE_INGRESS)["rules"] == [
        dict(INGRESS_RULE, operations=["CREATE", "UPDATE"])
    ]
    for hook in default.webhooks():
        for rule in hook["rules"]:
            for key in ("apiGroups", "apiVersions", "resources", "operations"):
                assert "*" not in rule[key] and all("/" not in r for r in rule.get("resources", [])), rule


def test_safety_settings_of_every_webhook(any_values: dict) -> None:
    rendered = render(any_values)
    expected_policy = any_values.get("webhook", {}).get("failurePolicy", "Fail")
    expected_timeout = any_values.get("webhook", {}).get("timeoutSeconds", 5)
    hooks = rendered.webhooks()
    assert len(hooks) == 5
    for hook in hooks:
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["sideEffects"] == "None"
        assert hook["failurePolicy"] == expected_policy
        assert isinstance(hook["timeoutSeconds"], int)
        assert 1 <= hook["timeoutSeconds"] <= 5
        assert hook["timeoutSeconds"] == expected_timeout
        assert hook["matchPolicy"] == "Equivalent"


def test_failure_policy_defaults_to_fail_and_can_be_ignore() -> None:
    assert {h["failurePolicy"] for h in render().webhooks()} == {"Fail"}
    assert {h["failurePolicy"] for h in render(VALUE_SETS["ignore"]).webhooks()} == {"Ignore"}


def test_client_config_points_at_the_service(any_values: dict) -> None:
    rendered = render(any_values)
    service = rendered.one("Service")
    https = next(p for p in service["spec"]["ports"] if p["name"] == "https")
    assert https["port"] == 443
    for hook in rendered.webhooks():
        client = hook["clientConfig"]
        assert "url" not in client, "webhooks must go through the Service"
        # caBundle is written by cert-manager's injector or by the operator, never by Helm,
        # so that upgrades do not wipe it.
        assert "caBundle" not in client
        assert client["service"] == {
            "name": service["metadata"]["name"],
            "namespace": NAMESPACE,
            "path": "/mutate" if hook["name"] in MUTATING else "/validate",
            "port": 443,
        }


def _excluded(hook: dict[str, Any]) -> list[str]:
    expressions = hook["namespaceSelector"]["matchExpressions"]
    assert len(expressions) == 1
    (expr,) = expressions
    assert expr["key"] == "kubernetes.io/metadata.name"
    assert expr["operator"] == "NotIn"
    return expr["values"]


@pytest.mark.parametrize("namespace", ["mtls-gate", "security", "kube-system"])
def test_namespace_selector_excludes_system_and_release_namespaces(namespace: str) -> None:
    rendered = render(namespace=namespace)
    expected = list(dict.fromkeys(["kube-system", "kube-node-lease", namespace]))
    for hook in rendered.webhooks():
        assert _excluded(hook) == expected
        assert "matchLabels" not in hook["namespaceSelector"]
    # The binary gets the same list (its controller skips the same namespaces).
    assert rendered.flag("exclude-namespaces") == ",".join(expected)


def test_extra_excluded_namespaces() -> None:
    rendered = render({"webhook": {"excludeNamespaces": ["legacy", "kube-system"]}})
    expected = ["kube-system", "kube-node-lease", NAMESPACE, "legacy"]
    for hook in rendered.webhooks():
        assert _excluded(hook) == expected
    assert rendered.flag("exclude-namespaces") == ",".join(expected)


def test_object_selector_only_on_the_mutating_webhooks(default: Rendered) -> None:
    for name in MUTATING:
        assert default.webhook(name)["objectSelector"] == {
            "matchExpressions": [{"key": "mtls-gate.io/profile", "operator": "Exists"}]
        }
        assert default.webhook(name)["reinvocationPolicy"] == "IfNeeded"
    assert default.webhook(MUTATE_CONTROLLER_OBJECTS)["rules"] == [{
        "apiGroups": ["gateway.networking.k8s.io"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["gateways"],
        "scope": "Namespaced",
    }]
    # Validation covers every Ingress on a profile's hosts, managed or not.
    assert "objectSelector" not in default.webhook(VALIDATE_INGRESS)
    assert "objectSelector" not in default.webhook(VALIDATE_PROFILE)
    assert "objectSelector" not in default.webhook(VALIDATE_CONTROLLER_OBJECTS)


def test_cert_manager_injects_the_ca() -> None:
    rendered = render(VALUE_SETS["cert-manager"])
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        annotations = rendered.one(kind)["metadata"]["annotations"]
        assert annotations == {"cert-manager.io/inject-ca-from": f"{NAMESPACE}/{RELEASE}-webhook-tls"}
    # ... from the Certificate that writes the Secret the pods mount.
    cert = rendered.one("Certificate", f"{RELEASE}-webhook-tls")
    volume = next(v for v in rendered.pod["volumes"] if v["name"] == "webhook-tls")
    assert cert["spec"]["secretName"] == volume["secret"]["secretName"]


def test_self_managed_has_no_injection_annotation(default: Rendered) -> None:
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        assert "annotations" not in default.one(kind)["metadata"]


# --- matchConditions -------------------------------------------------------------------
#
# Evaluated with a real CEL implementation against realistic AdmissionRequests. The
# API server evaluates `object`, `oldObject` and `request` as dynamic values; a condition
# that raises an error takes the webhook's failurePolicy (with Fail: the request is
# rejected), so each expression must evaluate to a bool without error for every shape of
# request, including DELETE (object is null) and CREATE (oldObject is null).

OPERATOR_USER = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _ingress(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "accounts",
            "namespace": "bank",
            "resourceVersion": "100",
            "labels": {"mtls-gate.io/profile": "bank"},
            "annotations": {"nginx.ingress.kubernetes.io/auth-tls-verify-client": "on"},
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["mtls.api.bank.example"], "secretName": "tls"}],
            "rules": [{"host": "mtls.api.bank.example", "http": {"paths": [{
                "path": "/open-banking-nz/v3.0/accounts", "pathType": "Prefix",
                "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}],
        },
        "status": {"loadBalancer": {}},
    }
    for path, value in changes.items():
        target = obj
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[key]
        if value is _DELETE:
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = value
    return obj


_DELETE = object()


def _request(operation: str, obj: Any, old: Any, user: str = "alice",
             resource: str = "ingresses") -> dict[str, Any]:
    group = "mtls-gate.io" if resource == "apiproviderprofiles" else "networking.k8s.io"
    version = "v1alpha1" if resource == "apiproviderprofiles" else "v1"
    some = obj or old
    return {
        "object": obj,
        "oldObject": old,
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": version, "kind": some["kind"]},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": some["kind"]},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": some["metadata"]["name"],
            "namespace": some["metadata"].get("namespace", ""),
            "operation": operation,
            "userInfo": {"username": user, "uid": "1", "groups": ["system:authenticated"]},
            "dryRun": False,
        },
    }


def _matches(hook: dict[str, Any], ctx: dict[str, Any]) -> bool:
    """All matchConditions true -> the webhook is called. Errors propagate (test fails)."""
    results = []
    for cond in hook.get("matchConditions", []):
        result = cel.evaluate(cond["expression"], copy.deepcopy(ctx))
        assert isinstance(result, bool), f"{cond['name']} returned {result!r}"
        results.append(result)
    return all(results)


INGRESS = _ingress()
INGRESS_CASES = [
    # (description, operation, object, oldObject, validating called, mutating called)
    ("create", "CREATE", INGRESS, None, True, True),
    ("delete", "DELETE", None, INGRESS, True, None),
    ("spec change", "UPDATE", _ingress(spec__ingressClassName="other"), INGRESS, True, True),
    ("path change", "UPDATE", _ingress(spec__rules=[]), INGRESS, True, True),
    ("label change", "UPDATE", _ingress(metadata__labels={"mtls-gate.io/profile": "other"}), INGRESS, True, True),
    ("label removed", "UPDATE", _ingress(metadata__labels=_DELETE), INGRESS, True, True),
    ("annotation change", "UPDATE", _ingress(metadata__annotations={}), INGRESS, True, True),
    ("annotation added", "UPDATE", INGRESS, _ingress(metadata__annotations=_DELETE), True, True),
    ("status only", "UPDATE", _ingress(status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}), INGRESS, False, False),
    ("finalizers only", "UPDATE", _ingress(metadata__finalizers=["x"], metadata__resourceVersion="101"), INGRESS, False, False),
    ("no labels or annotations", "UPDATE",
     _ingress(metadata__labels=_DELETE, metadata__annotations=_DELETE, metadata__resourceVersion="2"),
     _ingress(metadata__labels=_DELETE, metadata__annotations=_DELETE), False, False),
    ("no spec", "UPDATE", _ingress(spec=_DELETE), _ingress(spec=_DELETE), True, True),
]


@pytest.mark.parametrize("values_name", ["default", "profile", "kitchen-sink"])
@pytest.mark.parametrize(
    "desc,operation,obj,old,validating,mutating", INGRESS_CASES, ids=[c[0] for c in INGRESS_CASES]
)
def test_ingress_match_conditions(values_name: str, desc: str, operation: str, obj: Any, old: Any,
                                  validating: bool, mutating: bool | None) -> None:
    rendered = render(VALUE_SETS[values_name])
    ctx = _request(operation, obj, old)
    assert _matches(rendered.webhook(VALIDATE_INGRESS), ctx) is validating, desc
    if mutating is not None:  # the mutating webhook has no DELETE rule
        assert _matches(rendered.webhook(MUTATE_INGRESS), ctx) is mutating, desc


def test_mutating_webhook_skips_the_operators_own_writes(default: Rendered) -> None:
    changed = _ingress(spec__ingressClassName="other")
    mutating = default.webhook(MUTATE_INGRESS)
    assert _matches(mutating, _request("UPDATE", changed, INGRESS, user=OPERATOR_USER)) is False
    assert _matches(mutating, _request("UPDATE", changed, INGRESS, user="system:serviceaccount:other:mtls-gate")) is True
    # The validating webhook checks the operator's writes like anyone else's.
    assert _matches(default.webhook(VALIDATE_INGRESS), _request("UPDATE", changed, INGRESS, user=OPERATOR_USER)) is True


def _profile(name: str = "bank", **spec_changes: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mtls-gate.io/v1alpha1",
        "kind": "ApiProviderProfile",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": NAMESPACE},
        },
        "spec": {"issuer": "https://auth.bank.example", **spec_changes},
    }


def test_profile_match_conditions(default: Rendered) -> None:
    hook = default.webhook(VALIDATE_PROFILE)
    profile = _profile()
    assert _matches(hook, _request("CREATE", profile, None, resource="apiproviderprofiles")) is True
    changed = _profile(issuer="https://other.example")
    assert _matches(hook, _request("UPDATE", changed, profile, resource="apiproviderprofiles")) is True
    relabelled = copy.deepcopy(profile)
    relabelled["metadata"]["finalizers"] = ["mtls-gate.io/cleanup"]
    relabelled["status"] = {"compliant": True}
    assert _matches(hook, _request("UPDATE", relabelled, profile, resource="apiproviderprofiles")) is False
    # By default no profile is exempt from validation, even one that looks Helm-made.
    assert [c["name"] for c in hook["matchConditions"]] == ["profile-spec-change"]


def test_release_profile_is_exempt_only_on_its_first_create() -> None:
    hook = render(VALUE_SETS["profile"]).webhook(VALIDATE_PROFILE)
    own = _profile("bank")
    assert _matches(hook, _request("CREATE", own, None, resource="apiproviderprofiles")) is False
    # Any later change of it is validated.
    changed = _profile("bank", issuer="https://other.example")
    assert _matches(hook, _request("UPDATE", changed, own, resource="apiproviderprofiles")) is True
    # Other profiles, and the same name without this release's ownership, are validated.
    assert _matches(hook, _request("CREATE", _profile("other"), None, resource="apiproviderprofiles")) is True
    foreign = _profile("bank")
    foreign["metadata"]["annotations"]["meta.helm.sh/release-name"] = "someone-else"
    assert _matches(hook, _request("CREATE", foreign, None, resource="apiproviderprofiles")) is True
    bare = _profile("bank")
    del bare["metadata"]["annotations"]
    assert _matches(hook, _request("CREATE", bare, None, resource="apiproviderprofiles")) is True
    # Switched off: no exemption at all.
    values = {"profile": dict(VALUE_SETS["profile"]["profile"], exemptFromWebhookOnCreate=False)}
    strict = render(values).webhook(VALIDATE_PROFILE)
    assert _matches(strict, _request("CREATE", own, None, resource="apiproviderprofiles")) is True


def test_match_condition_names_and_limits(any_values: dict) -> None:
    for hook in render(any_values).webhooks():
        names = [c["name"] for c in hook.get("matchConditions", [])]
        assert names, f"{hook['name']} has no matchConditions"
        assert len(names) == len(set(names)) <= 64
        for name in names:
            assert len(name) <= 63 and QUALIFIED_NAME.match(name), name
        for cond in hook["matchConditions"]:
            # Only the variables the API server provides.
            identifiers = set(re.findall(r"\b(object|oldObject|request|authorizer|params|variables)\b",
                                         cond["expression"]))
            assert identifiers <= {"object", "oldObject", "request"}, identifiers
            cel.compile(cond["expression"])


def _tls_option(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TLSOption",
        "metadata": {"name": "mtls", "namespace": "open-banking", "resourceVersion": "1"},
        "spec": {"clientAuth": {"clientAuthType": "RequireAndVerifyClientCert", "secretNames": ["bank-ca"]}, **spec},
    }


@pytest.mark.parametrize(
    "desc, operation, obj, old, called",
    [
        ("create", "CREATE", _tls_option(), None, True),
        ("delete", "DELETE", None, _tls_option(), True),
        ("client auth weakened", "UPDATE", _tls_option(clientAuth={"clientAuthType": "NoClientCert"}), _tls_option(), True),
        ("metadata only", "UPDATE", dict(_tls_option(), metadata={"name": "mtls", "namespace": "open-banking", "labels": {"a": "b"}}), _tls_option(), False),
    ],
)
def test_controller_objects_webhook_sees_every_spec_change_and_delete(
    default: Rendered, desc: str, operation: str, obj: Any, old: Any, called: bool
) -> None:
    ctx = _request(operation, obj, old)
    assert _matches(default.webhook(VALIDATE_CONTROLLER_OBJECTS), ctx) is called, desc


def _config_map(data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "client-ca", "namespace": "open-banking", "resourceVersion": "1"},
        "data": data,
    }


CA = {"ca.crt": "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"}


def _controller_config(data: dict[str, str], labelled: bool = True) -> dict[str, Any]:
    """The ingress-nginx controller ConfigMap a profile names (spec.controllerConfigMap)."""
    labels = {"app.kubernetes.io/component": "controller"}
    if labelled:
        labels["mtls-gate.io/controller-config"] = "true"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx",
                     "resourceVersion": "1", "labels": labels},
        "data": data,
    }


@pytest.mark.parametrize(
    "desc, operation, obj, old, called",
    [
        ("CA bundle created", "CREATE", _config_map(CA), None, True),
        ("CA bundle deleted", "DELETE", None, _config_map(CA), True),
        ("CA bundle emptied", "UPDATE", _config_map({}), _config_map(CA), True),
        ("CA bundle replaced", "UPDATE", _config_map({"ca.crt": "other"}), _config_map(CA), True),
        ("ordinary ConfigMap created", "CREATE", _config_map({"app.yaml": "x: 1"}), None, False),
        ("ordinary ConfigMap updated", "UPDATE", _config_map({"a": "2"}), _config_map({"a": "1"}), False),
        ("ordinary ConfigMap deleted", "DELETE", None, _config_map({"a": "1"}), False),
        ("the cluster root CA published into a new namespace", "CREATE",
         dict(_config_map(CA), metadata={"name": "kube-root-ca.crt", "namespace": "team-a"}), None, False),
        ("controller ConfigMap: ssl-redirect switched off", "UPDATE",
         _controller_config({"ssl-redirect": "false"}), _controller_config({}), True),
        ("controller ConfigMap: the label removed", "UPDATE",
         _controller_config({}, labelled=False), _controller_config({}), True),
        ("controller ConfigMap: labelled", "UPDATE",
         _controller_config({}), _controller_config({}, labelled=False), True),
        ("controller ConfigMap: deleted", "DELETE", None, _controller_config({}), True),
        ("controller ConfigMap without the label (no profile can rely on it)", "UPDATE",
         _controller_config({"ssl-redirect": "false"}, labelled=False),
         _controller_config({}, labelled=False), False),
    ],
)
def test_controller_objects_webhook_sees_only_ca_bundle_and_controller_config_maps(
    default: Rendered, desc: str, operation: str, obj: Any, old: Any, called: bool
) -> None:
    ctx = _request(operation, obj, old, resource="configmaps")
    assert _matches(default.webhook(VALIDATE_CONTROLLER_OBJECTS), ctx) is called, desc
