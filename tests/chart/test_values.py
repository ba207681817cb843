"""Bad values fail at install time with a clear message: schema errors and contradictions."""

from __future__ import annotations

from typing import Any

import pytest
from helm_python import HelmRenderError, HelmValuesError

from conftest import PROFILE_SPEC, chart, render

# (values, exception, substrings the message must contain)
CONTRADICTIONS = [
    ({"certManager": {"enabled": True}},
     HelmRenderError, ["certManager.enabled and selfManaged.enabled are both true", "exactly one"]),
    ({"selfManaged": {"enabled": False}},
     HelmRenderError, ["neither certManager.enabled nor selfManaged.enabled", "Enable exactly one"]),
    ({"certManager": {"issuerRef": {"name": "corp-ca"}}},
     HelmRenderError, ["certManager.issuerRef is set but certManager.enabled is false"]),
    ({"podDisruptionBudget": {"maxUnavailable": 1}},
     HelmRenderError, ["minAvailable and podDisruptionBudget.maxUnavailable are both set"]),
    ({"podDisruptionBudget": {"minAvailable": None}},
     HelmRenderError, ["neither minAvailable nor maxUnavailable"]),
    ({"podDisruptionBudget": {"minAvailable": 2}},
     HelmRenderError, ["minAvailable (2) must be lower than replicaCount (2)"]),
    ({"terminationGracePeriodSeconds": 10},
     HelmRenderError, ["terminationGracePeriodSeconds (10) must be at least", "(25)"]),
    ({"serviceAccount": {"create": False}},
     HelmRenderError, ["serviceAccount.name is required when serviceAccount.create is false"]),
]

SCHEMA_ERRORS = [
    ({"webhook": {"failurePolicy": "Maybe"}}, ["/webhook/failurePolicy", "'Fail', 'Ignore'"]),
    ({"webhook": {"timeoutSeconds": 10}}, ["/webhook/timeoutSeconds", "maximum"]),
    ({"webhook": {"timeoutSeconds": 0}}, ["/webhook/timeoutSeconds", "minimum"]),
    ({"webhook": {"timeoutSeconds": "5"}}, ["/webhook/timeoutSeconds", "want integer"]),
    ({"webhook": {"excludeNamespaces": ["Not A Namespace"]}}, ["/webhook/excludeNamespaces/0"]),
    ({"replicaCount": 0}, ["/replicaCount", "minimum"]),
    ({"selfManaged": {"extraSANs": ["https://webhook.bank.example"]}},
     ["/selfManaged/extraSANs/0"]),
    ({"replicas": 3}, ["additional properties 'replicas' not allowed"]),
    ({"webhook": {"failurepolicy": "Fail"}}, ["/webhook", "additional properties 'failurepolicy'"]),
    ({"image": {"tag": 1.0}}, ["/image/tag", "want string"]),
    ({"image": {"digest": "latest"}}, ["/image/digest"]),
    ({"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy"]),
    ({"certManager": {"enabled": "yes"}}, ["/certManager/enabled", "want boolean"]),
    ({"clientCaSecretNames": ["Client_CA"]}, ["/clientCaSecretNames/0"]),
    ({"clientCaSecretNames": "client-ca"}, ["/clientCaSecretNames", "want array"]),
    ({"clientCaSecretNames": ["a", "a"]}, ["/clientCaSecretNames", "items at 0 and 1 are equal"]),
    ({"logFormat": "xml"}, ["/logFormat"]),
    ({"leaderElection": {"leaseDuration": "15"}}, ["/leaderElection/leaseDuration"]),
    ({"podAntiAffinity": "sometimes"}, ["/podAntiAffinity"]),
    ({"securityContext": {"runAsUser": 0}}, ["/securityContext/runAsUser", "minimum"]),
    ({"podDisruptionBudget": {"minAvailable": "half"}}, ["/podDisruptionBudget/minAvailable"]),
    ({"profile": {"create": True}}, ["/profile/name", "/profile/spec",
                                    "missing properties 'issuer', 'apiBaseUrls', 'clientCertificate'"]),
    ({"profile": {"create": True, "name": "bank", "spec": dict(PROFILE_SPEC, issuer="http://insecure.example")}},
     ["/profile/spec/issuer"]),
    ({"profile": {"create": True, "name": "bank", "spec": dict(PROFILE_SPEC, apiBaseUrls=[])}},
     ["/profile/spec/apiBaseUrls", "minItems"]),
    ({"profile": {"create": True, "name": "bank", "spec": dict(PROFILE_SPEC, enforcement="Block")}},
     ["/profile/spec/enforcement", "'Deny', 'Warn', 'Audit'"]),
    ({"profile": {"create": True, "name": "bank",
                  "spec": dict(PROFILE_SPEC, clientCertificate={"caSecretName": "ca", "verifyDepth": 11})}},
     ["/profile/spec/clientCertificate/verifyDepth", "maximum"]),
    ({"profile": {"create": True, "name": "bank", "spec": dict(PROFILE_SPEC, ingressController="envoy")}},
     ["/profile/spec/ingressController"]),
    # A typo would otherwise be pruned silently by the API server.
    ({"profile": {"create": True, "name": "bank", "spec": dict(PROFILE_SPEC, apiBaseURLs=["https://x.example"])}},
     ["/profile/spec", "additional properties 'apiBaseURLs' not allowed"]),
    ({"profile": {"create": True, "name": "bank", "spec": dict(PROFILE_SPEC, gate={})}},
     ["/profile/spec/gate", "missing property 'url'"]),
]


def _render_error(values: dict[str, Any], exc: type[Exception]) -> str:
    with pytest.raises(exc) as info:
        render(values)
    return str(info.value)


@pytest.mark.parametrize("values,exc,expected", CONTRADICTIONS, ids=[str(c[0]) for c in CONTRADICTIONS])
def test_contradictory_values_fail(values: dict, exc: type[Exception], expected: list[str]) -> None:
    message = _render_error(values, exc)
    assert "mtls-gate: " in message
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize("values,expected", SCHEMA_ERRORS, ids=[str(c[0]) for c in SCHEMA_ERRORS])
def test_schema_rejects_bad_values(values: dict, expected: list[str]) -> None:
    message = _render_error(values, HelmValuesError)
    assert "values don't meet the specifications of the schema" in message
    for part in expected:
        assert part in message, message
    with pytest.raises(HelmValuesError):
        chart().validate_schema(chart().merge_values(values))


def test_default_values_pass_the_schema() -> None:
    chart().validate_schema(chart().merge_values({}))
    # values.yaml documents every key the schema knows, and vice versa.
    schema_keys = set(chart().schema["properties"]) - {"global"}
    assert schema_keys == set(chart().values)


def test_good_non_default_values_pass() -> None:
    values = {
        "podDisruptionBudget": {"minAvailable": None, "maxUnavailable": "25%"},
        "certManager": {"enabled": True, "issuerRef": {"name": "corp", "kind": "ClusterIssuer",
                                                        "group": "cert-manager.io"}},
        "selfManaged": {"enabled": False},
        "global": {"imageRegistry": "ignored"},
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
    }
    rendered = render(values)
    assert rendered.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == "25%"
