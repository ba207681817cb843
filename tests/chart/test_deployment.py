"""The operator Deployment, its Service and PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import NAMESPACE, RELEASE, VALUE_SETS, Rendered, render

TLS_DIR = "/var/run/mtls-gate/tls"

DEFAULT_ARGS = [
    "run",
    "--listen=0.0.0.0:8443",
    "--probe-listen=0.0.0.0:8080",
    f"--tls-cert-file={TLS_DIR}/tls.crt",
    f"--tls-key-file={TLS_DIR}/tls.key",
    "--log-format=json",
    f"--exclude-namespaces=kube-system,kube-node-lease,{NAMESPACE}",
    "--watch-controllers=ingress-nginx,haproxy-ingress",
    f"--leader-election-lease-name={RELEASE}-leader",
    "--leader-election-lease-duration=15s",
    "--leader-election-renew-deadline=10s",
    "--leader-election-retry-period=2s",
    "--shutdown-grace-period=20s",
    "--self-managed-certs",
    f"--cert-secret-name={RELEASE}-webhook-tls",
    f"--webhook-service-name={RELEASE}",
    f"--validating-webhook-name={RELEASE}",
    f"--mutating-webhook-name={RELEASE}",
]
SELF_MANAGED_FLAGS = ("self-managed-certs", "cert-secret-name", "webhook-service-name",
                      "validating-webhook-name", "mutating-webhook-name")


def test_command_and_arguments(default: Rendered) -> None:
    assert default.container["command"] == ["/usr/local/bin/mtls-gate"]
    assert default.args == DEFAULT_ARGS


def test_cert_manager_mode_has_no_self_managed_flags() -> None:
    rendered = render(VALUE_SETS["cert-manager"])
    for flag in SELF_MANAGED_FLAGS:
        assert rendered.flag(flag) is None, flag
    assert rendered.args == [a for a in DEFAULT_ARGS if not a.lstrip("-").startswith(SELF_MANAGED_FLAGS)]


def test_self_managed_flags_name_real_objects(default: Rendered) -> None:
    assert default.flag("webhook-service-name") == default.one("Service")["metadata"]["name"]
    volume = next(v for v in default.pod["volumes"] if v["name"] == "webhook-tls")
    assert default.flag("cert-secret-name") == volume["secret"]["secretName"]


def test_self_managed_extra_sans_become_one_flag(default: Rendered) -> None:
    assert default.flag("cert-extra-san") is None
    rendered = render({"selfManaged": {"enabled": True,
                                       "extraSANs": ["webhook.bank.example", "10.0.0.7"]}})
    assert rendered.flag("cert-extra-san") == "webhook.bank.example,10.0.0.7"
    assert render({**VALUE_SETS["cert-manager"]}).flag("cert-extra-san") is None


def test_environment(default: Rendered) -> None:
    env = default.container["env"]
    assert env == [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    rendered = render({"rustLog": "mtls_gate=debug,info", "logFormat": "text"})
    assert rendered.container["env"][-1] == {"name": "RUST_LOG", "value": "mtls_gate=debug,info"}
    assert rendered.flag("log-format") == "text"


def test_image() -> None:
    assert render().container["image"] == "ghcr.io/mtls-gate/mtls-gate:0.1.0"
    assert render().container["imagePullPolicy"] == "IfNotPresent"
    assert render({"image": {"tag": "1.2.3"}}).container["image"] == "ghcr.io/mtls-gate/mtls-gate:1.2.3"
    digest = "sha256:" + "ab" * 32
    assert render({"image": {"digest": digest}}).container["image"] == f"ghcr.io/mtls-gate/mtls-gate@{digest}"


def test_replicas_and_rollout(default: Rendered) -> None:
    spec = default.deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert render({"replicaCount": 4}).deployment["spec"]["replicas"] == 4


def test_selectors_match_pod_labels(any_values: dict) -> None:
    rendered = render(any_values)
    pod_labels = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        rendered.deployment["spec"]["selector"]["matchLabels"],
        rendered.one("Service")["spec"]["selector"],
    ]
    selectors += [p["spec"]["selector"]["matchLabels"] for p in rendered.all("PodDisruptionBudget")]
    selectors += [n["spec"]["podSelector"]["matchLabels"] for n in rendered.all("NetworkPolicy")]
    for selector in selectors:
        assert selector == {"app.kubernetes.io/name": "mtls-gate", "app.kubernetes.io/instance": RELEASE}
        assert selector.items() <= pod_labels.items()


# --- hardening -------------------------------------------------------------------------


def test_pod_security_context(any_values: dict) -> None:
    pod = render(any_values).pod
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod.get("hostNetwork") is not True
    assert pod.get("hostPID") is not True and pod.get("hostIPC") is not True
    assert pod["enableServiceLinks"] is False


def test_container_security_context(any_values: dict) -> None:
    sc = render(any_values).container["securityContext"]
    assert sc == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The checks of the Pod Security Standard "restricted" (v1.30+)."""
    problems = []
    psc = pod.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(field)
    for volume in pod.get("volumes", []):
        allowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}
        if not set(volume) - {"name"} <= allowed:
            problems.append(f"volume {volume['name']}")
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            problems.append("privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append("capabilities.drop ALL")
        if set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append("capabilities.add")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            problems.append("runAsNonRoot")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append("runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append("seccompProfile")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                problems.append("hostPort")
    return problems


def test_pod_meets_restricted_pod_security_standard(any_values: dict) -> None:
    assert _restricted_violations(render(any_values).pod) == []


def test_platform_assigned_ids() -> None:
    """OpenShift-style: no fixed UID/GID; the certificate files become world-readable."""
    rendered = render({"securityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None}})
    assert rendered.pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert "runAsUser" not in rendered.container["securityContext"]
    volume = next(v for v in rendered.pod["volumes"] if v["name"] == "webhook-tls")
    assert volume["secret"]["defaultMode"] == 0o444
    assert _restricted_violations(rendered.pod) == []


def test_service_account_token_only_where_needed(any_values: dict) -> None:
    rendered = render(any_values)
    for sa in rendered.all("ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False
    # The operator talks to the API server, so its pod (and only it) opts in.
    assert rendered.pod["automountServiceAccountToken"] is True
    assert rendered.pod["serviceAccountName"] == RELEASE
    assert rendered.pod["serviceAccountName"] != "default"


def test_certificate_volume(any_values: dict) -> None:
    rendered = render(any_values)
    volume = next(v for v in rendered.pod["volumes"] if v["name"] == "webhook-tls")
    assert volume["secret"] == {
        "secretName": f"{RELEASE}-webhook-tls",
        "optional": True,  # pods start before the self-managed Secret exists
        "defaultMode": 0o440,
    }
    assert rendered.container["volumeMounts"] == [
        {"name": "webhook-tls", "mountPath": TLS_DIR, "readOnly": True}
    ]
    mounted = {m["mountPath"] for m in rendered.container["volumeMounts"]}
    for flag in ("tls-cert-file", "tls-key-file"):
        path = rendered.flag(flag)
        assert path and path.rsplit("/", 1)[0] in mounted
    assert rendered.pod["volumes"] == [volume], "no writable volumes: the binary writes no files"


def test_resources(default: Rendered) -> None:
    resources = default.container["resources"]
    assert resources["requests"] == {"cpu": "100m", "memory": "64Mi"}
    assert resources["limits"] == {"memory": "256Mi"}  # no CPU limit: throttling = latency


# --- probes, ports, Service ------------------------------------------------------------


def _port(rendered: Rendered, name: str) -> int:
    return next(p["containerPort"] for p in rendered.container["ports"] if p["name"] == name)


@pytest.mark.parametrize("values", [{}, {"probePort": 9090, "webhook": {"port": 10443}}])
def test_probes_use_the_probe_port(values: dict) -> None:
    rendered = render(values)
    probe_port = _port(rendered, "probe")
    assert rendered.flag("probe-listen") == f"0.0.0.0:{probe_port}"
    assert rendered.flag("listen") == f"0.0.0.0:{_port(rendered, 'webhook')}"
    assert _port(rendered, "webhook") != probe_port
    liveness = rendered.container["livenessProbe"]
    readiness = rendered.container["readinessProbe"]
    assert liveness["httpGet"] == {"path": "/healthz", "port": "probe"}
    assert readiness["httpGet"] == {"path": "/readyz", "port": "probe"}
    for probe in (liveness, readiness):
        assert "scheme" not in probe["httpGet"]  # plain HTTP
        assert probe["timeoutSeconds"] <= probe["periodSeconds"]
    assert "startupProbe" not in rendered.container or rendered.container["startupProbe"]["httpGet"]["port"] == "probe"


def test_service(default: Rendered) -> None:
    service = default.one("Service", RELEASE)
    assert service["metadata"]["namespace"] == NAMESPACE
    assert service["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["https"]["port"] == 443 and ports["https"]["targetPort"] == "webhook"
    assert ports["metrics"]["targetPort"] == "probe"
    container_ports = {p["name"] for p in default.container["ports"]}
    assert {p["targetPort"] for p in ports.values()} <= container_ports


def test_graceful_shutdown(any_values: dict) -> None:
    rendered = render(any_values)
    sleep = rendered.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = rendered.pod["terminationGracePeriodSeconds"]
    shutdown = int(rendered.flag("shutdown-grace-period").rstrip("s"))
    assert sleep >= 1
    assert grace >= sleep + shutdown
    # distroless has no shell: the drain must not need one.
    assert "exec" not in rendered.container["lifecycle"]["preStop"]


# --- scheduling ------------------------------------------------------------------------


def test_default_anti_affinity_and_topology_spread(default: Rendered) -> None:
    selector = {"app.kubernetes.io/name": "mtls-gate", "app.kubernetes.io/instance": RELEASE}
    anti = default.pod["affinity"]["podAntiAffinity"]
    assert anti == {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector}},
    }]}
    assert default.pod["topologySpreadConstraints"] == [{
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
        "matchLabelKeys": ["pod-template-hash"],
        "labelSelector": {"matchLabels": selector},
    }]
    assert default.pod["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_hard_anti_affinity_and_overrides() -> None:
    hard = render({"podAntiAffinity": "hard"}).pod["affinity"]["podAntiAffinity"]
    assert list(hard) == ["requiredDuringSchedulingIgnoredDuringExecution"]
    assert "affinity" not in render({"podAntiAffinity": "none"}).pod
    custom = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}}
    assert render({"affinity": custom}).pod["affinity"] == custom
    spread = [{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"x": "y"}}}]
    assert render({"topologySpreadConstraints": spread}).pod["topologySpreadConstraints"] == spread
    assert "topologySpreadConstraints" not in render({"topologySpreadConstraints": []}).pod


# --- PodDisruptionBudget ---------------------------------------------------------------


def test_pdb_default(default: Rendered) -> None:
    pdb = default.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["metadata"]["namespace"] == NAMESPACE
    assert pdb["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in pdb["spec"]
    # Lets drains evict a pod that is not ready anyway.
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    # Never blocks every eviction.
    assert pdb["spec"]["minAvailable"] < default.deployment["spec"]["replicas"]


def test_pdb_variants() -> None:
    pdb = render({"podDisruptionBudget": {"minAvailable": None, "maxUnavailable": "50%"}}).one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == "50%" and "minAvailable" not in pdb["spec"]
    # A single replica gets no PDB: minAvailable 1 would block every node drain.
    assert not render(VALUE_SETS["single-replica"]).all("PodDisruptionBudget")
    assert not render({"podDisruptionBudget": {"enabled": False}}).all("PodDisruptionBudget")


def test_single_replica_warns() -> None:
    notes = render(VALUE_SETS["single-replica"]).notes
    assert "WARNING: replicaCount is 1" in notes
    assert "WARNING: replicaCount" not in render().notes


def test_namespaced_objects_carry_the_release_namespace(any_values: dict) -> None:
    from conftest import CLUSTER_SCOPED

    for obj in render(any_values).objects:
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in obj["metadata"], obj["kind"]
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]


@pytest.mark.parametrize("release,fullname", [
    ("mtls-gate", "mtls-gate"),
    ("prod-mtls-gate", "prod-mtls-gate"),
    ("prod", "prod-mtls-gate"),
    ("a-very-long-release-name-that-goes-on-and-on-and-on-forever", None),
])
def test_names_are_valid(release: str, fullname: str | None) -> None:
    import re

    rendered = render(name=release)
    name = rendered.deployment["metadata"]["name"]
    if fullname:
        assert name == fullname
    dns_label = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    for obj in rendered.objects:
        assert len(obj["metadata"]["name"]) <= 253
    assert dns_label.match(rendered.one("Service")["metadata"]["name"])
    assert len(rendered.one("Service")["metadata"]["name"]) <= 63


@pytest.mark.parametrize(
    "values, watched",
    [
        ({}, "ingress-nginx,haproxy-ingress"),
        ({"traefik": {"enabled": True}}, "ingress-nginx,haproxy-ingress,traefik"),
        ({"gatewayApi": {"enabled": True}}, "ingress-nginx,haproxy-ingress,gateway-api"),
        ({"traefik": {"enabled": True}, "gatewayApi": {"enabled": True}},
         "ingress-nginx,haproxy-ingress,traefik,gateway-api"),
    ],
)
def test_the_controller_watches_only_the_kinds_its_rbac_grants(values: dict, watched: str) -> None:
    # Kinds of the other controllers are never listed (no 403s); they count as unknown.
    assert render(values).flag("watch-controllers") == watched
