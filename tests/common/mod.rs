//! Builders for realistic manifests (profiles, Ingresses, Secrets, Traefik CRDs) and a
//! helper that runs them through the same path as `mtls-gate check`:
//! `manifest::parse_documents` → `manifest::load` → `engine::evaluate`.
//!
//! The builders write YAML text, not structs, so the tests read like the manifests a
//! platform team keeps in Git and exercise the real parser.

#![allow(dead_code)]

use std::path::Path;

use mtls_gate::engine::{self, EndpointCoverage, Verdict};
use mtls_gate::manifest;
use mtls_gate::violation::{Violation, ViolationCode};

/// Namespace of the bank's Ingresses and Secrets.
pub const NS: &str = "open-banking";
/// The profile's `clientCertificate.caSecretName`.
pub const CA_SECRET: &str = "open-banking-client-ca";
/// The profile's `gate.url` (mtls-gate's `/verify`).
pub const GATE_URL: &str = "https://mtls-gate.mtls-gate.svc.cluster.local/verify";
/// The gate URL as the renderer writes it for ingress-nginx.
pub const NGINX_GATE_URL: &str =
    "https://mtls-gate.mtls-gate.svc.cluster.local/verify?controller=ingress-nginx";
/// The gate URL as the renderer writes it for Traefik.
pub const TRAEFIK_GATE_URL: &str =
    "https://mtls-gate.mtls-gate.svc.cluster.local/verify?controller=traefik";

/// Split host: browser-facing authorisation server (TLS endpoints).
pub const PUBLIC_HOST: &str = "auth.bank.example";
/// Split host: MTLS alias of the authorisation server.
pub const MTLS_AUTH_HOST: &str = "mtls-auth.bank.example";
/// Split host: resource APIs (MTLS).
pub const MTLS_API_HOST: &str = "mtls-api.bank.example";
/// Single host with the gate: everything.
pub const SINGLE_HOST: &str = "api.bank.example";
/// API base path used by the profiles built here.
pub const API_BASE: &str = "/open-banking-nz/v3.0";

pub const OLDER: &str = "2026-01-10T09:00:00Z";
pub const NEWER: &str = "2026-02-20T14:30:00Z";

/// The client CA of `examples/nginx-split-host/client-ca.yaml` (a real, parseable X.509 CA).
pub const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICJzCCAc2gAwIBAgIUbNn0WupzGQ3ONrzNIyH6emKBaDIwCgYIKoZIzj0EAwIw
YTELMAkGA1UEBhMCTloxLDAqBgNVBAoMI0V4YW1wbGUgQmFuayBPcGVuIEJhbmtp
bmcgQ2xpZW50IENBMSQwIgYDVQQDDBtFeGFtcGxlIEJhbmsgVGhpcmQgUGFydHkg
Q0EwHhcNMjYxMTIzMjMxNTI4WhcNMzYxMTIwMjMxNTI4WjBhMQswCQYDVQQGEwJO
WjEsMCoGA1UECgwjRXhhbXBsZSBCYW5rIE9wZW4gQmFua2luZyBDbGllbnQgQ0Ex
JDAiBgNVBAMMG0V4YW1wbGUgQmFuayBUaGlyZCBQYXJ0eSBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABOIDB/glBW9fZXOZj3n3NlU10hB8bbycEVjmWxG8GAqZ
mZnjuVDxvxfjTSO91SkPOUZoXajOGLJ13k4zhVWW0xKjYzBhMB0GA1UdDgQWBBQF
TAaemqWxZIWs/6pW7GwjOYFJajAfBgNVHSMEGDAWgBQFTAaemqWxZIWs/6pW7Gwj
OYFJajAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQD
AgNIADBFAiEAtDhrNKUVMA+L0sJ0leLTN9hRzrIjf5WFTM435KGiIdcCIAUiZQak
7DUK3YzXyDh30ZQjQXGHPmxF2/QCv/ADIOfc
-----END CERTIFICATE-----
";

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
pub fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string serialises")
}

/// Indents every line of a block scalar by `n` spaces.
fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

// ---------------------------------------------------------------------------------------
// ApiProviderProfile
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub issuer: String,
    pub api_base_urls: Vec<String>,
    /// `spec.authorizationServer.<field>: url`.
    pub authorization_server: Vec<(String, String)>,
    pub ca_secret_name: String,
    pub verify_depth: Option<i64>,
    pub controller: String,
    pub class: Option<String>,
    pub gate: Option<String>,
    /// `spec.controllerConfigMap` as (namespace, name).
    pub controller_config_map: Option<(String, String)>,
}

impl Profile {
    /// Split host (RFC 8705 aliases): discovery, `/authorize` and JWKS at
    /// `https://auth.bank.example`, the six MTLS authorisation endpoints on
    /// `mtls-auth.bank.example`, the APIs on `mtls-api.bank.example/open-banking-nz/v3.0`.
    pub fn split_host() -> Self {
        let mtls = |p: &str| format!("https://{MTLS_AUTH_HOST}{p}");
        Self {
            name: "example-bank".into(),
            issuer: format!("https://{PUBLIC_HOST}"),
            api_base_urls: vec![format!("https://{MTLS_API_HOST}{API_BASE}")],
            authorization_server: vec![
                ("tokenEndpoint".into(), mtls("/token")),
                ("pushedAuthorizationRequestEndpoint".into(), mtls("/par")),
                (
                    "backchannelAuthenticationEndpoint".into(),
                    mtls("/bc-authorize"),
                ),
                ("introspectionEndpoint".into(), mtls("/introspect")),
                ("revocationEndpoint".into(), mtls("/revoke")),
                ("userinfoEndpoint".into(), mtls("/userinfo")),
            ],
            ca_secret_name: CA_SECRET.into(),
            verify_depth: Some(2),
            controller: "ingress-nginx".into(),
            class: None,
            gate: None,
            controller_config_map: None,
        }
    }

    /// One host with the gate: issuer `https://api.bank.example/oauth2` (every
    /// authorisation endpoint at its default under the issuer) and the APIs under
    /// `https://api.bank.example/open-banking-nz/v3.0`.
    pub fn single_host() -> Self {
        Self {
            name: "example-bank".into(),
            issuer: format!("https://{SINGLE_HOST}/oauth2"),
            api_base_urls: vec![format!("https://{SINGLE_HOST}{API_BASE}")],
            authorization_server: Vec::new(),
            ca_secret_name: CA_SECRET.into(),
            verify_depth: Some(2),
            controller: "ingress-nginx".into(),
            class: None,
            gate: Some(GATE_URL.into()),
            controller_config_map: None,
        }
    }

    pub fn traefik(mut self) -> Self {
        self.controller = "traefik".into();
        self
    }
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = issuer.into();
        self
    }
    pub fn class(mut self, class: &str) -> Self {
        self.class = Some(class.into());
        self
    }
    pub fn gate(mut self, url: &str) -> Self {
        self.gate = Some(url.into());
        self
    }
    pub fn without_gate(mut self) -> Self {
        self.gate = None;
        self
    }
    pub fn api_base_urls(mut self, urls: &[&str]) -> Self {
        self.api_base_urls = urls.iter().map(|u| u.to_string()).collect();
        self
    }
    pub fn authorization_server(mut self, field: &str, url: &str) -> Self {
        self.authorization_server.retain(|(f, _)| f != field);
        self.authorization_server.push((field.into(), url.into()));
        self
    }
    pub fn ca_secret_name(mut self, name: &str) -> Self {
        self.ca_secret_name = name.into();
        self
    }
    pub fn controller_config_map(mut self, namespace: &str, name: &str) -> Self {
        self.controller_config_map = Some((namespace.into(), name.into()));
        self
    }
    pub fn verify_depth(mut self, depth: i64) -> Self {
        self.verify_depth = Some(depth);
        self
    }

    pub fn yaml(&self) -> String {
        let mut y = format!(
            "apiVersion: mtls-gate.io/v1alpha1\nkind: ApiProviderProfile\nmetadata:\n  name: {}\nspec:\n  issuer: {}\n",
            self.name,
            q(&self.issuer)
        );
        if self.api_base_urls.is_empty() {
            y.push_str("  apiBaseUrls: []\n");
        } else {
            y.push_str("  apiBaseUrls:\n");
            for u in &self.api_base_urls {
                y.push_str(&format!("    - {}\n", q(u)));
            }
        }
        if !self.authorization_server.is_empty() {
            y.push_str("  authorizationServer:\n");
            for (field, url) in &self.authorization_server {
                y.push_str(&format!("    {field}: {}\n", q(url)));
            }
        }
        y.push_str(&format!(
            "  clientCertificate:\n    caSecretName: {}\n",
            q(&self.ca_secret_name)
        ));
        if let Some(d) = self.verify_depth {
            y.push_str(&format!("    verifyDepth: {d}\n"));
        }
        y.push_str("    passCertificateToUpstream: true\n");
        y.push_str(&format!("  ingressController: {}\n", self.controller));
        if let Some(c) = &self.class {
            y.push_str(&format!("  ingressClassName: {c}\n"));
        }
        if let Some(g) = &self.gate {
            y.push_str(&format!("  gate:\n    url: {}\n", q(g)));
        }
        if let Some((namespace, name)) = &self.controller_config_map {
            y.push_str(&format!(
                "  controllerConfigMap:\n    namespace: {namespace}\n    name: {name}\n"
            ));
        }
        y
    }
}

// ---------------------------------------------------------------------------------------
// Ingress
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Ingress {
    pub namespace: String,
    pub name: String,
    pub created: Option<String>,
    pub class: Option<String>,
    pub annotations: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub host: String,
    pub tls: bool,
    /// (path, pathType)
    pub paths: Vec<(String, String)>,
}

impl Ingress {
    /// An Ingress in [`NS`] with one rule for `host` and a `spec.tls` entry for it.
    pub fn new(name: &str, host: &str) -> Self {
        Self {
            namespace: NS.into(),
            name: name.into(),
            created: Some(OLDER.into()),
            class: None,
            annotations: Vec::new(),
            labels: Vec::new(),
            host: host.into(),
            tls: true,
            paths: Vec::new(),
        }
    }
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = ns.into();
        self
    }
    pub fn created(mut self, timestamp: &str) -> Self {
        self.created = Some(timestamp.into());
        self
    }
    pub fn class(mut self, class: &str) -> Self {
        self.class = Some(class.into());
        self
    }
    /// No `metadata.creationTimestamp`, as in manifests kept in Git.
    pub fn without_created(mut self) -> Self {
        self.created = None;
        self
    }
    /// Sets an annotation (replacing an earlier value of the same key).
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        match self.annotations.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.into(),
            None => self.annotations.push((key.into(), value.into())),
        }
        self
    }
    pub fn annotations(self, annotations: Vec<(String, String)>) -> Self {
        annotations
            .into_iter()
            .fold(self, |ing, (k, v)| ing.annotation(&k, &v))
    }
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }
    pub fn without_tls(mut self) -> Self {
        self.tls = false;
        self
    }
    pub fn path(mut self, path: &str, path_type: &str) -> Self {
        self.paths.push((path.into(), path_type.into()));
        self
    }
    pub fn exact(self, path: &str) -> Self {
        self.path(path, "Exact")
    }
    pub fn prefix(self, path: &str) -> Self {
        self.path(path, "Prefix")
    }
    pub fn implementation_specific(self, path: &str) -> Self {
        self.path(path, "ImplementationSpecific")
    }

    /// `namespace/name`, as violations name it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn yaml(&self) -> String {
        let mut y = format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {}\n  namespace: {}\n",
            self.name, self.namespace
        );
        if let Some(c) = &self.created {
            y.push_str(&format!("  creationTimestamp: {}\n", q(c)));
        }
        if !self.labels.is_empty() {
            y.push_str("  labels:\n");
            for (k, v) in &self.labels {
                y.push_str(&format!("    {k}: {}\n", q(v)));
            }
        }
        if !self.annotations.is_empty() {
            y.push_str("  annotations:\n");
            for (k, v) in &self.annotations {
                y.push_str(&format!("    {k}: {}\n", q(v)));
            }
        }
        y.push_str("spec:\n");
        if let Some(c) = &self.class {
            y.push_str(&format!("  ingressClassName: {c}\n"));
        }
        if self.tls {
            let secret = format!(
                "{}-tls",
                self.host.replace("*.", "wildcard.").replace('.', "-")
            );
            y.push_str(&format!(
                "  tls:\n    - hosts: [{}]\n      secretName: {secret}\n",
                q(&self.host)
            ));
        }
        y.push_str(&format!(
            "  rules:\n    - host: {}\n      http:\n        paths:\n",
            q(&self.host)
        ));
        for (path, path_type) in &self.paths {
            y.push_str(&format!(
                "          - path: {}\n            pathType: {path_type}\n            backend:\n              service:\n                name: {}\n                port: {{number: 8443}}\n",
                q(path),
                self.name
            ));
        }
        y
    }
}

/// ingress-nginx annotations.
pub mod nginx {
    use super::{CA_SECRET, NGINX_GATE_URL, NS};

    pub const AUTH_TLS_SECRET: &str = "nginx.ingress.kubernetes.io/auth-tls-secret";
    pub const AUTH_TLS_VERIFY_CLIENT: &str = "nginx.ingress.kubernetes.io/auth-tls-verify-client";
    pub const AUTH_TLS_VERIFY_DEPTH: &str = "nginx.ingress.kubernetes.io/auth-tls-verify-depth";
    pub const AUTH_TLS_PASS_CERT: &str =
        "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream";
    pub const AUTH_URL: &str = "nginx.ingress.kubernetes.io/auth-url";
    pub const USE_REGEX: &str = "nginx.ingress.kubernetes.io/use-regex";
    pub const SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";

    /// The four `auth-tls-*` annotations with the profile's CA and this verify mode.
    pub fn client_auth(verify_client: &str) -> Vec<(String, String)> {
        client_auth_with_secret(&format!("{NS}/{CA_SECRET}"), verify_client)
    }

    pub fn client_auth_with_secret(secret: &str, verify_client: &str) -> Vec<(String, String)> {
        vec![
            (AUTH_TLS_SECRET.into(), secret.into()),
            (AUTH_TLS_VERIFY_CLIENT.into(), verify_client.into()),
            (AUTH_TLS_VERIFY_DEPTH.into(), "2".into()),
            (AUTH_TLS_PASS_CERT.into(), "true".into()),
        ]
    }

    /// `auth-url` pointing at the profile's gate, as the renderer writes it.
    pub fn gate() -> Vec<(String, String)> {
        vec![(AUTH_URL.into(), NGINX_GATE_URL.into())]
    }
}

/// Traefik annotations and CRDs.
pub mod traefik {
    use super::{CA_SECRET, NS, q};

    pub const TLS_OPTIONS: &str = "traefik.ingress.kubernetes.io/router.tls.options";
    pub const MIDDLEWARES: &str = "traefik.ingress.kubernetes.io/router.middlewares";
    pub const PRIORITY: &str = "traefik.ingress.kubernetes.io/router.priority";

    /// `router.tls.options` naming the TLSOption `open-banking/<name>`.
    pub fn tls_options(name: &str) -> Vec<(String, String)> {
        vec![(TLS_OPTIONS.into(), format!("{NS}-{name}@kubernetescrd"))]
    }

    /// `router.middlewares` naming these Middlewares of `open-banking`, in order.
    pub fn middlewares(names: &[&str]) -> Vec<(String, String)> {
        let list: Vec<String> = names
            .iter()
            .map(|n| format!("{NS}-{n}@kubernetescrd"))
            .collect();
        vec![(MIDDLEWARES.into(), list.join(","))]
    }

    /// A `traefik.io/v1alpha1` TLSOption trusting the profile's CA secret.
    pub fn tls_option(name: &str, client_auth_type: &str) -> String {
        format!(
            "apiVersion: traefik.io/v1alpha1\nkind: TLSOption\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  minVersion: VersionTLS12\n  sniStrict: true\n  clientAuth:\n    secretNames: [{CA_SECRET}]\n    clientAuthType: {client_auth_type}\n"
        )
    }

    /// `headers` middleware deleting a client-sent `X-Forwarded-Tls-Client-Cert`.
    pub fn strip_client_cert(name: &str) -> String {
        format!(
            "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  headers:\n    customRequestHeaders:\n      X-Forwarded-Tls-Client-Cert: \"\"\n"
        )
    }

    /// `passTLSClientCert` with the PEM.
    pub fn pass_client_cert(name: &str) -> String {
        format!(
            "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  passTLSClientCert:\n    pem: true\n"
        )
    }

    /// `forwardAuth` to `address`, forwarding the certificate header.
    pub fn forward_auth(name: &str, address: &str, trust_forward_header: bool) -> String {
        format!(
            "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  forwardAuth:\n    address: {}\n    trustForwardHeader: {trust_forward_header}\n    authRequestHeaders: [X-Forwarded-Tls-Client-Cert]\n",
            q(address)
        )
    }
}

// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

/// The client CA Secret (`open-banking/open-banking-client-ca`) with `ca.crt`.
pub fn ca_secret() -> String {
    secret(NS, CA_SECRET, &[("ca.crt", CA_PEM)])
}

/// A ConfigMap with these `data` entries and labels.
pub fn config_map(
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    data: &[(&str, &str)],
) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
    );
    if !labels.is_empty() {
        y.push_str("  labels:\n");
        for (k, v) in labels {
            y.push_str(&format!("    {k}: {}\n", q(v)));
        }
    }
    y.push_str(if data.is_empty() {
        "data: {}\n"
    } else {
        "data:\n"
    });
    for (k, v) in data {
        y.push_str(&format!("  {k}: {}\n", q(v)));
    }
    y
}

/// A Secret with these `stringData` entries.
pub fn secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: Opaque\nstringData:\n"
    );
    for (k, v) in data {
        y.push_str(&format!("  {k}: |\n{}", indent(v, 4)));
    }
    y
}

// ---------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------

/// Joins manifests into one multi-document YAML stream.
pub fn stream(docs: &[String]) -> String {
    docs.iter()
        .map(|d| format!("---\n{d}"))
        .collect::<Vec<_>>()
        .join("")
}

/// Evaluates the manifests' single profile; Secrets and Traefik objects absent from the
/// manifests are "not checked" (the CLI default).
pub fn evaluate(docs: &[String]) -> Verdict {
    evaluate_with(docs, false)
}

/// Like [`evaluate`], but absent Secrets and Traefik objects do not exist
/// (`check --assume-complete`, and the controller's watched caches).
pub fn evaluate_complete(docs: &[String]) -> Verdict {
    evaluate_with(docs, true)
}

fn evaluate_with(docs: &[String], assume_complete: bool) -> Verdict {
    let text = stream(docs);
    let documents = manifest::parse_documents(Path::new("manifests.yaml"), &text)
        .unwrap_or_else(|e| panic!("test manifests do not parse: {e}\n{text}"));
    let manifests = manifest::load(documents, "default", assume_complete)
        .unwrap_or_else(|e| panic!("test manifests do not load: {e}\n{text}"));
    assert_eq!(
        manifests.profiles.len(),
        1,
        "test manifests must hold exactly one profile"
    );
    engine::evaluate(&manifests.profiles[0].1, &manifests.view)
        .unwrap_or_else(|e| panic!("engine error: {e}"))
}

// ---------------------------------------------------------------------------------------
// Reading verdicts
// ---------------------------------------------------------------------------------------

/// `CODE endpoint @ ingress path` lines, for assertion messages.
pub fn describe(verdict: &Verdict) -> String {
    if verdict.violations.is_empty() {
        return "(no violations)".into();
    }
    verdict
        .violations
        .iter()
        .map(|v| {
            format!(
                "{} host={} endpoint={} ingress={} path={}",
                v.code,
                v.host,
                v.endpoint.unwrap_or("-"),
                v.ingress.as_ref().map_or("-".into(), |k| k.to_string()),
                v.path.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The violation's Ingress as `namespace/name`.
pub fn ingress_of(v: &Violation) -> Option<String> {
    v.ingress.as_ref().map(|k| k.to_string())
}

/// Violations with this code.
pub fn with_code(verdict: &Verdict, code: ViolationCode) -> Vec<&Violation> {
    verdict
        .violations
        .iter()
        .filter(|v| v.code == code)
        .collect()
}

/// Violations naming this endpoint (the table's string).
pub fn naming<'a>(verdict: &'a Verdict, endpoint: &str) -> Vec<&'a Violation> {
    verdict
        .violations
        .iter()
        .filter(|v| v.endpoint == Some(endpoint))
        .collect()
}

/// Sorted, de-duplicated endpoints named by violations of `code`.
pub fn endpoints_with(verdict: &Verdict, code: ViolationCode) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = verdict
        .violations
        .iter()
        .filter(|v| v.code == code)
        .filter_map(|v| v.endpoint)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The coverage entry of an endpoint at a URL.
pub fn coverage<'a>(verdict: &'a Verdict, endpoint: &str, url: &str) -> &'a EndpointCoverage {
    verdict
        .coverage
        .iter()
        .find(|c| c.endpoint == endpoint && c.url == url)
        .unwrap_or_else(|| {
            panic!(
                "no coverage entry for {endpoint} at {url}; entries: {:?}",
                verdict
                    .coverage
                    .iter()
                    .map(|c| format!("{} {}", c.endpoint, c.url))
                    .collect::<Vec<_>>()
            )
        })
}

/// The (ingress, path, clientAuth) of every route serving an endpoint at a URL.
pub fn serving(verdict: &Verdict, endpoint: &str, url: &str) -> Vec<(String, String, String)> {
    let mut routes: Vec<_> = coverage(verdict, endpoint, url)
        .routes
        .iter()
        .map(|r| (r.ingress.clone(), r.path.clone(), r.client_auth.clone()))
        .collect();
    routes.sort();
    routes
}

/// haproxy-ingress annotations (`haproxy-ingress.github.io/` prefix).
pub mod haproxy {
    use super::{CA_SECRET, GATE_URL, NS};

    pub const PREFIX: &str = "haproxy-ingress.github.io/";
    /// The older prefix haproxy-ingress also reads (after `PREFIX`).
    pub const LEGACY_PREFIX: &str = "ingress.kubernetes.io/";

    /// The annotation of a configuration key under the default prefix.
    pub fn key(config_key: &str) -> String {
        format!("{PREFIX}{config_key}")
    }

    /// `auth-tls-secret` (the profile's CA) and `auth-tls-verify-client`.
    pub fn client_auth(verify_client: &str) -> Vec<(String, String)> {
        vec![
            (key("auth-tls-secret"), format!("{NS}/{CA_SECRET}")),
            (key("auth-tls-verify-client"), verify_client.into()),
        ]
    }

    /// The gate URL as the renderer writes it for haproxy-ingress.
    pub fn gate_url() -> String {
        format!("{GATE_URL}?controller=haproxy-ingress")
    }

    /// `auth-url` pointing at the profile's gate.
    pub fn gate() -> Vec<(String, String)> {
        vec![(key("auth-url"), gate_url())]
    }
}

/// The validating webhook's answer to a CREATE or UPDATE of `manifest`, an object of a
/// dialect-owned kind (its namespace defaulting to `namespace`), judged against `view`;
/// with the key the review used.
pub fn review_object_change(
    view: &mtls_gate::cluster::ClusterView,
    manifest: &serde_json::Value,
    namespace: &str,
) -> (mtls_gate::model::ObjectKey, mtls_gate::admission::Outcome) {
    use mtls_gate::admission::{BeforeStateCache, object_review_view, review_object};
    let (kind, object) = mtls_gate::dialect::reduce_owned(manifest, namespace)
        .expect("a dialect-owned kind")
        .expect("reduces");
    let key = object.key().clone();
    let snapshot = object_review_view(view, kind);
    let outcome = review_object(
        &snapshot,
        kind,
        &key,
        Some(object),
        &BeforeStateCache::default(),
    );
    (key, outcome)
}

/// The bank's client CA bundle as Gateway API frontend validation reads it (GEP-91: a
/// ConfigMap `open-banking-client-ca` in [`NS`], key `ca.crt`).
pub fn gateway_ca_config_map() -> String {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/client-ca.crt"
    ))
    .expect("client CA fixture");
    let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: open-banking-client-ca
  namespace: {NS}
data:
  ca.crt: |
{indented}"
    )
}

/// Whether an incremental host evaluation's table (patched by the dialect, or rebuilt) is
/// the full evaluation's in everything an evaluation reads.
pub fn same_tables(incremental: &engine::HostEvaluation, full: &engine::HostEvaluation) -> bool {
    match (incremental.table(), full.table()) {
        (Some(a), Some(b)) => engine::same_table(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// The first path of `pool`, or one segment below it, whose winners differ between the
/// tables of an incremental and a full host evaluation (a patched table looks paths up
/// through a remapped index: it must choose as the full table's).
pub fn first_different_winners(
    dialect: &dyn mtls_gate::dialect::Dialect,
    incremental: &engine::HostEvaluation,
    full: &engine::HostEvaluation,
    pool: &[String],
) -> Option<(String, Vec<usize>, Vec<usize>)> {
    let (Some(a), Some(b)) = (incremental.table(), full.table()) else {
        return None;
    };
    pool.iter()
        .flat_map(|p| [p.clone(), format!("{p}/x")])
        .map(|path| {
            let (x, y) = (dialect.winners(a, &path), dialect.winners(b, &path));
            (path, x, y)
        })
        .find(|(_, x, y)| x != y)
}

/// Every profile host of `view` evaluated as a before-state (with probes), by (profile,
/// host): what the incremental evaluations of a chain of changes start from.
pub fn before_states(
    view: &mtls_gate::cluster::ClusterView,
) -> std::collections::HashMap<(String, String), engine::HostEvaluation> {
    let mut states = std::collections::HashMap::new();
    for profile in view.profiles() {
        let dialect = engine::profile_dialect(profile).expect("dialect");
        for host in &profile.hosts {
            states.insert(
                (profile.name.clone(), host.clone()),
                engine::evaluate_host_before_change(profile, dialect, view, host, true),
            );
        }
    }
    states
}

/// The bank's split-host profile for Gateway API (`examples/gateway-api-split-host`), with
/// `extra` spec lines.
pub fn gateway_profile(extra: &str) -> String {
    format!(
        "apiVersion: mtls-gate.io/v1alpha1
kind: ApiProviderProfile
metadata:
  name: example-bank
spec:
  issuer: https://{PUBLIC_HOST}
  apiBaseUrls:
    - https://{MTLS_API_HOST}/open-banking-nz/v3.0
  authorizationServer:
    tokenEndpoint: https://{MTLS_AUTH_HOST}/token
    pushedAuthorizationRequestEndpoint: https://{MTLS_AUTH_HOST}/par
    backchannelAuthenticationEndpoint: https://{MTLS_AUTH_HOST}/bc-authorize
    introspectionEndpoint: https://{MTLS_AUTH_HOST}/introspect
    revocationEndpoint: https://{MTLS_AUTH_HOST}/revoke
    userinfoEndpoint: https://{MTLS_AUTH_HOST}/userinfo
  clientCertificate:
    caSecretName: open-banking-client-ca
  ingressController: gateway-api
  gatewayClassName: eg
{extra}"
    )
}
