"""Optional objects: cert-manager, profile, ServiceMonitor, NetworkPolicy."""

from __future__ import annotations

from conftest import NAMESPACE, PROFILE_SPEC, RELEASE, VALUE_SETS, Rendered, render

DEFAULT_KINDS = [
    "ClusterRole", "ClusterRoleBinding", "Deployment", "MutatingWebhookConfiguration",
    "Pod", "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount",
    "ValidatingWebhookConfiguration",
]


def test_default_renders_only_the_core_objects(default: Rendered) -> None:
    assert default.kinds() == DEFAULT_KINDS


def test_cert_manager_chain() -> None:
    rendered = render(VALUE_SETS["cert-manager"])
    issuers = {i["metadata"]["name"]: i["spec"] for i in rendered.all("Issuer")}
    assert issuers == {f"{RELEASE}-selfsigned": {"selfSigned": {}}, f"{RELEASE}-ca": {"ca": {"secretName": f"{RELEASE}-ca"}}}
    ca = rendered.one("Certificate", f"{RELEASE}-ca")["spec"]
    assert ca["isCA"] is True
    assert ca["secretName"] == f"{RELEASE}-ca"
    assert ca["issuerRef"] == {"group": "cert-manager.io", "kind": "Issuer", "name": f"{RELEASE}-selfsigned"}
    serving = rendered.one("Certificate", f"{RELEASE}-webhook-tls")["spec"]
    assert serving["issuerRef"] == {"group": "cert-manager.io", "kind": "Issuer", "name": f"{RELEASE}-ca"}
    assert serving["secretName"] == f"{RELEASE}-webhook-tls"
    assert serving["dnsNames"] == [
        RELEASE, f"{RELEASE}.{NAMESPACE}", f"{RELEASE}.{NAMESPACE}.svc", f"{RELEASE}.{NAMESPACE}.svc.cluster.local",
    ]
    assert "server auth" in serving["usages"]
    assert serving["privateKey"]["rotationPolicy"] == "Always"
    for obj in rendered.all("Issuer") + rendered.all("Certificate"):
        assert obj["apiVersion"] == "cert-manager.io/v1"
        assert obj["metadata"]["namespace"] == NAMESPACE
    assert "issued by cert-manager" in rendered.notes


def test_cert_manager_with_existing_issuer() -> None:
    rendered = render(VALUE_SETS["cert-manager-issuer"])
    assert not rendered.all("Issuer")
    (cert,) = rendered.all("Certificate")
    assert cert["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "corp-ca"}


def test_self_managed_renders_no_certificate_objects(default: Rendered) -> None:
    assert not default.all("Certificate") and not default.all("Issuer") and not default.all("Secret")
    assert "self-managed" in default.notes


def test_profile_from_values() -> None:
    rendered = render(VALUE_SETS["profile"])
    profile = rendered.one("ApiProviderProfile", "bank")
    assert profile["apiVersion"] == "mtls-gate.io/v1alpha1"
    assert "namespace" not in profile["metadata"]  # cluster-scoped
    assert profile["spec"] == PROFILE_SPEC  # passed through unchanged
    assert not render().all("ApiProviderProfile")


def test_profile_ca_secret_not_readable_is_pointed_out() -> None:
    values = {"profile": VALUE_SETS["profile"]["profile"]}  # without clientCaSecretNames
    assert 'names the CA Secret "client-ca", which is not in' in render(values).notes
    assert "which is not in" not in render(VALUE_SETS["profile"]).notes


def test_service_monitor() -> None:
    rendered = render(VALUE_SETS["monitoring"])
    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = rendered.one("Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["scheme"] == "http"
    port = next(p for p in service["spec"]["ports"] if p["name"] == endpoint["port"])
    assert port["targetPort"] == "probe"
    assert not render().all("ServiceMonitor")


def test_network_policy() -> None:
    rendered = render(VALUE_SETS["monitoring"])
    policy = rendered.one("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    container_ports = {p["name"] for p in rendered.container["ports"]}
    ingress_ports = {port["port"] for rule in policy["ingress"] for port in rule["ports"]}
    assert ingress_ports == container_ports == {"webhook", "probe"}
    webhook_rule = next(r for r in policy["ingress"] if r["ports"][0]["port"] == "webhook")
    assert "from" not in webhook_rule  # the API server's address is not knowable in general
    metrics_rule = next(r for r in policy["ingress"] if r["ports"][0]["port"] == "probe")
    assert metrics_rule["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    api, dns = policy["egress"]
    assert api == {"ports": [{"port": 6443, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]}
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert not render().all("NetworkPolicy")


def test_traefik_only_when_enabled() -> None:
    def groups(r: Rendered) -> set[str]:
        return {g for rule in r.one("ClusterRole")["rules"] for g in rule["apiGroups"]}

    assert "traefik.io" not in groups(render())
    assert "traefik.io" in groups(render(VALUE_SETS["traefik"]))
