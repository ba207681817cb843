//! Synthetic clusters of realistic shape, for benchmarks and load tests: one bank whose
//! profile spans three hosts, and many other tenants' Ingresses on hosts of their own.

use serde_json::{Value, json};

/// The bank's profile (split host, as `examples/nginx-split-host`).
pub fn bank_profile() -> Value {
    json!({
        "apiVersion": "mtls-gate.io/v1alpha1",
        "kind": "ApiProviderProfile",
        "metadata": {"name": "example-bank"},
        "spec": {
            "issuer": "https://auth.bank.example",
            "apiBaseUrls": [
                "https://mtls-api.bank.example/open-banking-nz/v3.0",
                "https://mtls-api.bank.example/open-banking-nz/v2.3"
            ],
            "authorizationServer": {
                "tokenEndpoint": "https://mtls-auth.bank.example/token",
                "pushedAuthorizationRequestEndpoint": "https://mtls-auth.bank.example/par",
                "backchannelAuthenticationEndpoint": "https://mtls-auth.bank.example/bc-authorize",
                "introspectionEndpoint": "https://mtls-auth.bank.example/introspect",
                "revocationEndpoint": "https://mtls-auth.bank.example/revoke",
                "userinfoEndpoint": "https://mtls-auth.bank.example/userinfo"
            },
            "clientCertificate": {"caSecretName": "open-banking-client-ca"},
            "ingressClassName": "nginx"
        }
    })
}

const MTLS: [(&str, &str); 4] = [
    (
        "nginx.ingress.kubernetes.io/auth-tls-secret",
        "open-banking/open-banking-client-ca",
    ),
    ("nginx.ingress.kubernetes.io/auth-tls-verify-client", "on"),
    ("nginx.ingress.kubernetes.io/auth-tls-verify-depth", "2"),
    (
        "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream",
        "true",
    ),
];

const API_RESOURCES: [&str; 12] = [
    "accounts",
    "account-access-consents",
    "balances",
    "transactions",
    "beneficiaries",
    "direct-debits",
    "standing-orders",
    "domestic-payments",
    "domestic-payment-consents",
    "enduring-payment-consents",
    "event-subscriptions",
    "statements",
];

fn ingress(
    namespace: &str,
    name: &str,
    host: &str,
    created: &str,
    annotations: Value,
    paths: &[(&str, &str)],
) -> Value {
    let paths: Vec<Value> = paths
        .iter()
        .map(|(p, t)| json!({"path": p, "pathType": t, "backend": {"service": {"name": format!("{name}-svc"), "port": {"number": 8443}}}}))
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": created,
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": namespace},
            "annotations": annotations,
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [host], "secretName": format!("{}-tls", host.replace('.', "-"))}],
            "rules": [{"host": host, "http": {"paths": paths}}]
        }
    })
}

/// The bank's own Ingresses: the public and MTLS authorisation hosts and one Ingress per
/// API resource and version on the API host (26 in all).
pub fn bank_ingresses() -> Vec<Value> {
    let mtls: serde_json::Map<String, Value> = MTLS
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut out = vec![
        ingress(
            "open-banking",
            "authorization-server-public",
            "auth.bank.example",
            "2026-01-10T09:00:00Z",
            json!({}),
            &[
                ("/authorize", "Exact"),
                ("/jwks", "Exact"),
                ("/.well-known/openid-configuration", "Exact"),
                ("/login", "Prefix"),
            ],
        ),
        ingress(
            "open-banking",
            "authorization-server-mtls",
            "mtls-auth.bank.example",
            "2026-01-10T09:00:00Z",
            Value::Object(mtls.clone()),
            &[("/", "Prefix")],
        ),
    ];
    for version in ["v3.0", "v2.3"] {
        for (i, resource) in API_RESOURCES.iter().enumerate() {
            let path = format!("/open-banking-nz/{version}/{resource}");
            out.push(ingress(
                "open-banking",
                &format!("api-{}-{resource}", version.replace('.', "")),
                "mtls-api.bank.example",
                &format!("2026-01-{:02}T10:00:00Z", 11 + i),
                Value::Object(mtls.clone()),
                &[(&path, "Prefix")],
            ));
        }
    }
    out
}

/// The reference world of design.md §7 for the bank's MTLS API host: `api_routes`
/// Ingresses on it, one per service with a distinct path under the API base URL, plus a
/// catch-all Prefix on the base URL; and the two authorisation hosts.
pub fn bank_ingresses_with_api_routes(api_routes: usize) -> Vec<Value> {
    let mtls: serde_json::Map<String, Value> = MTLS
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut out: Vec<Value> = bank_ingresses().into_iter().take(2).collect();
    out.push(ingress(
        "open-banking",
        "api-catch-all",
        "mtls-api.bank.example",
        "2026-01-10T09:30:00Z",
        Value::Object(mtls.clone()),
        &[("/open-banking-nz/v3.0", "Prefix")],
    ));
    for i in 1..api_routes {
        let path = match API_RESOURCES.get(i - 1) {
            Some(resource) => format!("/open-banking-nz/v3.0/{resource}"),
            None => format!("/open-banking-nz/v3.0/service-{i}"),
        };
        out.push(ingress(
            "open-banking",
            &format!("api-service-{i}"),
            "mtls-api.bank.example",
            &format!("2026-01-{:02}T10:00:00Z", 11 + i % 18),
            Value::Object(mtls.clone()),
            &[(&path, "Prefix")],
        ));
    }
    out
}

/// `count` Ingresses: the bank's (with `api_routes` on the API host), then other tenants'
/// (5 per host, 3 paths each).
pub fn cluster_yaml_with_api_routes(count: usize, api_routes: usize) -> String {
    let mut ingresses = bank_ingresses_with_api_routes(api_routes);
    ingresses.extend(tenant_ingresses(count.saturating_sub(ingresses.len())));
    let mut docs = vec![bank_profile(), bank_ca_secret()];
    docs.extend(ingresses);
    docs.iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap_or_default()))
        .collect()
}

/// `count` Ingresses of other tenants (5 per host, 3 paths each).
fn tenant_ingresses(count: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < count {
        let tenant = i / 5;
        let host = format!("app-{tenant}.tenant-{}.example", tenant % 97);
        out.push(ingress(
            &format!("tenant-{}", tenant % 97),
            &format!("web-{i}"),
            &host,
            "2025-11-01T00:00:00Z",
            json!({"nginx.ingress.kubernetes.io/proxy-body-size": "8m", "nginx.ingress.kubernetes.io/ssl-redirect": "true"}),
            &[(&format!("/service-{}", i % 5), "Prefix"), ("/static", "Prefix"), ("/healthz", "Exact")],
        ));
        i += 1;
    }
    out
}

/// `count` Ingresses: the bank's, then other tenants' (5 per host, 3 paths each).
pub fn cluster_ingresses(count: usize) -> Vec<Value> {
    let mut out = bank_ingresses();
    out.extend(tenant_ingresses(count.saturating_sub(out.len())));
    out.truncate(count);
    out
}

/// The CA Secret the profile names.
pub fn bank_ca_secret() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "open-banking-client-ca", "namespace": "open-banking"},
        "stringData": {"ca.crt": CA_PEM}
    })
}

/// An ECDSA P-256 CA certificate (the one in `examples/`).
pub const CA_PEM: &str = include_str!("../tests/fixtures/client-ca.crt");

/// Every document of a cluster of `count` Ingresses plus the profile and its CA Secret, as
/// one multi-document YAML text (what `mtls-gate check` reads).
pub fn cluster_yaml(count: usize) -> String {
    let mut docs = vec![bank_profile(), bank_ca_secret()];
    docs.extend(cluster_ingresses(count));
    docs.iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap_or_default()))
        .collect()
}
