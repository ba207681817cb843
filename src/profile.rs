//! The `ApiProviderProfile` custom resource (design.md §4, a fixed contract) and its
//! validation into a [`CompiledProfile`] that the engine evaluates.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::catalog::{ENDPOINT_TABLE, EndpointRow, Location, Scheme};
use crate::paths::PathTemplate;

/// Declares how an open-banking API provider serves the endpoint table, and so which
/// client-certificate scheme every Ingress route on its hosts must have.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "mtls-gate.io",
    version = "v1alpha1",
    kind = "ApiProviderProfile",
    plural = "apiproviderprofiles",
    shortname = "approfile",
    category = "mtls-gate",
    status = "ApiProviderProfileStatus",
    doc = "Declares where an open-banking API provider serves each endpoint of the Payments NZ MTLS endpoint table, and how its Ingresses must require client certificates.",
    printcolumn = r#"{"name":"Controller","type":"string","jsonPath":".spec.ingressController"}"#,
    printcolumn = r#"{"name":"Enforcement","type":"string","jsonPath":".spec.enforcement"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Compliant","type":"string","jsonPath":".status.conditions[?(@.type==\"Compliant\")].status"}"#,
    printcolumn = r#"{"name":"Violations","type":"integer","jsonPath":".status.violations"}"#,
    printcolumn = r#"{"name":"Served","type":"string","jsonPath":".status.endpointsServed","priority":1}"#,
    printcolumn = r#"{"name":"Managed","type":"integer","jsonPath":".status.managedIngresses","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApiProviderProfileSpec {
    /// OIDC issuer URL (https). The discovery document is served at the issuer with any
    /// trailing "/" removed, plus "/.well-known/openid-configuration" (OIDC Discovery §4).
    #[schemars(regex(pattern = r"^https://"))]
    pub issuer: String,

    /// Base URLs (https) of the resource APIs, e.g.
    /// "https://mtls.api.bank.example/open-banking-nz/v3.0". Every account-information,
    /// payment-initiation and event-notification endpoint is served under each of them.
    #[schemars(length(min = 1))]
    pub api_base_urls: Vec<String>,

    /// Where each authorisation and metadata endpoint is served. Unset fields default to
    /// the issuer plus the table's path ("/authorize", "/token", ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_server: Option<AuthorizationServer>,

    /// Trust anchors and verification settings for client certificates.
    pub client_certificate: ClientCertificate,

    /// Which ingress controller's semantics and annotations apply.
    #[serde(default)]
    pub ingress_controller: IngressController,

    /// Only Ingresses of this class are considered, and Ingresses without a class (the API
    /// server gives new ones the default IngressClass; ingress-nginx serves old ones with
    /// --watch-ingress-without-class), whose findings say so. Unset: all classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class_name: Option<String>,

    /// With gateway-api: only Gateways of this GatewayClass are considered. Unset: all
    /// classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_class_name: Option<String>,

    /// With ingress-nginx or haproxy-ingress: the ConfigMap the controller reads its
    /// settings from (its `--configmap` flag). Its keys that change who reaches an endpoint
    /// (`ssl-redirect`, `use-forwarded-headers`, snippets; haproxy-ingress's global
    /// `auth-tls-*` defaults) are evaluated, and the ConfigMap must carry the label
    /// `mtls-gate.io/controller-config` so the webhook reviews its changes. Unset: the
    /// controller's defaults are assumed (the dialect's documentation lists them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_config_map: Option<ConfigMapReference>,

    /// Enables single-host layouts: a host that serves both MTLS and TLS endpoints verifies
    /// client certificates optionally at the handshake, and every route serving an MTLS
    /// endpoint goes through this gate. Without it such a host is a violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,

    /// Scheme for paths under an API base URL that the endpoint table does not list.
    #[serde(default)]
    pub unlisted_api_paths: UnlistedApiPaths,

    /// Deny rejects non-compliant Ingress changes; Warn admits them with warnings; Audit
    /// admits silently and only reports in status, events and metrics.
    #[serde(default)]
    pub enforcement: Enforcement,
}

/// A ConfigMap by namespace and name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigMapReference {
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Locations of the authorisation and metadata endpoints (OIDC discovery-metadata names).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationServer {
    /// Default: issuer + "/authorize" (TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// Default: issuer + "/token" (MTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// Default: issuer + "/bc-authorize" (MTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_authentication_endpoint: Option<String>,
    /// Default: issuer + "/par" (MTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_authorization_request_endpoint: Option<String>,
    /// Default: issuer + "/introspect" (MTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// Default: issuer + "/revoke" (MTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Default: issuer + "/userinfo" (MTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// Default: issuer + "/jwks" (TLS; the table's "/jwks or /keys").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
}

impl AuthorizationServer {
    fn field(&self, name: &str) -> Option<&str> {
        match name {
            "authorizationEndpoint" => self.authorization_endpoint.as_deref(),
            "tokenEndpoint" => self.token_endpoint.as_deref(),
            "backchannelAuthenticationEndpoint" => {
                self.backchannel_authentication_endpoint.as_deref()
            }
            "pushedAuthorizationRequestEndpoint" => {
                self.pushed_authorization_request_endpoint.as_deref()
            }
            "introspectionEndpoint" => self.introspection_endpoint.as_deref(),
            "revocationEndpoint" => self.revocation_endpoint.as_deref(),
            "userinfoEndpoint" => self.userinfo_endpoint.as_deref(),
            "jwksUri" => self.jwks_uri.as_deref(),
            _ => None,
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificate {
    /// Secret with the client-certificate trust anchors, in the namespace of each Ingress
    /// that needs it (key "ca.crt" for ingress-nginx; "tls.ca" or "ca.crt" for Traefik).
    #[schemars(length(min = 1, max = 253))]
    pub ca_secret_name: String,
    /// Maximum client certificate chain depth.
    #[serde(default = "default_verify_depth")]
    #[schemars(range(min = 1, max = 10))]
    pub verify_depth: i32,
    /// Forward the verified certificate to the backend (needed for certificate-bound tokens).
    #[serde(default = "default_true")]
    pub pass_certificate_to_upstream: bool,
}

fn default_verify_depth() -> i32 {
    2
}
fn default_true() -> bool {
    true
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum IngressController {
    #[default]
    #[serde(rename = "ingress-nginx")]
    IngressNginx,
    #[serde(rename = "traefik")]
    Traefik,
    #[serde(rename = "haproxy-ingress")]
    HaproxyIngress,
    #[serde(rename = "gateway-api")]
    GatewayApi,
}

impl IngressController {
    pub fn as_str(self) -> &'static str {
        match self {
            IngressController::IngressNginx => "ingress-nginx",
            IngressController::Traefik => "traefik",
            IngressController::HaproxyIngress => "haproxy-ingress",
            IngressController::GatewayApi => "gateway-api",
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    /// URL of the gate (mtls-gate's "/verify"), e.g.
    /// "https://mtls-gate.mtls-gate.svc.cluster.local/verify".
    #[schemars(regex(pattern = r"^https?://"))]
    pub url: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UnlistedApiPaths {
    #[default]
    #[serde(rename = "MTLS")]
    Mtls,
    #[serde(rename = "TLS")]
    Tls,
    Ignore,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Enforcement {
    #[default]
    Deny,
    Warn,
    Audit,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Deny => "Deny",
            Enforcement::Warn => "Warn",
            Enforcement::Audit => "Audit",
        }
    }
}

/// Observed compliance of the profile, written by the controller.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiProviderProfileStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the profile is valid and evaluated) and `Compliant`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Number of violations found.
    #[serde(default)]
    pub violations: i32,
    /// Endpoint URLs served by some Ingress route, as "served/total".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints_served: Option<String>,
    /// Number of endpoint URLs whose every serving route has the right client auth.
    #[serde(default)]
    pub endpoints_compliant: i32,
    /// Number of endpoint URLs the profile resolves to.
    #[serde(default)]
    pub endpoints_total: i32,
    /// Per-endpoint coverage, for auditors.
    #[serde(default)]
    pub coverage: Vec<EndpointCoverage>,
    /// Ingresses labelled `mtls-gate.io/profile: <this profile>` (of the considered class).
    #[serde(default)]
    pub managed_ingresses: i32,
    /// Managed Ingresses (and labelled Gateways) that no setting can make compliant, and
    /// what to change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<RenderRefusal>,
    /// The last live check of the endpoints, written by `mtls-gate probe --write-status`
    /// (field manager `mtls-gate-probe`), never by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeStatus>,
}

/// What `mtls-gate probe` last observed on the live endpoints (design.md §11).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeStatus {
    /// When the probe ran.
    pub time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    /// Endpoint URLs that behave as the table demands.
    pub passed: i32,
    /// Endpoint URLs that do not (unreachable ones included).
    pub failed: i32,
    /// Endpoint URLs where neither request reached a server.
    #[serde(default)]
    pub unreachable: i32,
    /// The failing endpoint URLs and why (at most 50; `failed` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<ProbeFailure>,
}

/// One endpoint URL that failed the live check.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeFailure {
    /// The endpoint as the table writes it.
    pub endpoint: String,
    /// The URL probed.
    pub url: String,
    pub reason: String,
}

// Coverage types are CRD status (the engine builds them): they live with the CRD so the
// engine's internals never become part of the CRD contract by accident.

/// One route that serves (some instances of) an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingRoute {
    /// `namespace/name` of the Ingress (or of the route object `kind` names).
    pub ingress: String,
    /// The kind of the route object when it is not an Ingress (`IngressRoute`, `HTTPRoute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub path: String,
    pub path_type: String,
    /// Effective client auth: required, required-by-gate, optional, none,
    /// required-unverified, optional-unverified or rejected.
    pub client_auth: String,
    /// Which setting decides it.
    pub detail: String,
    pub compliant: bool,
}

/// How one endpoint URL is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointCoverage {
    /// The profile this entry belongs to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub profile: String,
    /// The endpoint as the table writes it, or "(unlisted API paths)".
    pub endpoint: String,
    pub category: String,
    pub scheme: String,
    pub url: String,
    pub host: String,
    /// Some Ingress route serves (some instances of) this endpoint.
    pub served: bool,
    /// Every serving route has the client auth the scheme demands.
    pub compliant: bool,
    #[serde(default)]
    pub routes: Vec<ServingRoute>,
}

/// A managed Ingress (or a labelled object of a controller's own kind, a Gateway) the
/// controller cannot render, with the reason and the fix.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderRefusal {
    /// `namespace/name` of the object refused. Named `ingress` since the first version (the
    /// status is a contract); for other kinds (a Gateway) `kind` and `object` say what it is.
    pub ingress: String,
    /// The kind of the object refused: `Ingress`, or a controller's own kind rendered in
    /// place (`Gateway`). Empty in statuses written before this field existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// `namespace/name` of the object refused (the same as `ingress`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object: String,
    /// The host concerned, when the refusal is about one host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub message: String,
}

/// A profile field that is wrong, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ProfileError {
    /// JSON path of the field, e.g. `spec.apiBaseUrls[1]`.
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ProfileError {
    ProfileError {
        field: field.into(),
        message: message.into(),
    }
}

/// An https URL broken into what the engine matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    /// Lower-case host name without port (Ingress hosts carry no port).
    pub host: String,
    /// Path without trailing `/` (`""` for the root).
    pub path: String,
}

fn parse_https(field: &str, raw: &str) -> Result<EndpointUrl, ProfileError> {
    let url = Url::parse(raw).map_err(|e| err(field, format!("{raw:?} is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(err(
            field,
            format!("{raw:?} must use https (client certificates need TLS)"),
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| err(field, format!("{raw:?} has no host")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err(
            field,
            format!("{raw:?} must not have a query or fragment"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(field, format!("{raw:?} must not carry credentials")));
    }
    if raw.contains('{') || raw.contains('}') || raw.contains('*') {
        return Err(err(
            field,
            format!("{raw:?} must be a concrete URL (no templates or wildcards)"),
        ));
    }
    Ok(EndpointUrl {
        host: host.to_ascii_lowercase(),
        path: url.path().trim_end_matches('/').to_string(),
    })
}

/// DNS-1123 subdomain, the rule for Secret names.
/// A namespace name (RFC 1123 label: at most 63 characters, no dots).
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns1123_subdomain(s)
}

pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// One endpoint of the table, resolved to the host and path template it is served at.
#[derive(Debug, Clone)]
pub struct ResolvedEndpoint {
    pub row: &'static EndpointRow,
    /// The concrete URL with the table's `{Param}` placeholders.
    pub url: String,
    pub host: String,
    pub path: PathTemplate,
    /// The issuer-relative default URL of an authorisation row the profile relocated: not
    /// advertised, but a route there would still reach the authorisation server, so it is
    /// checked whenever some route serves it.
    pub default_alias: bool,
}

/// Paths under one API base URL that the table does not list.
#[derive(Debug, Clone)]
pub struct UnlistedScope {
    pub base_url: String,
    pub host: String,
    pub base: PathTemplate,
    pub scheme: Scheme,
}

/// A validated profile with every endpoint resolved: the engine's input.
#[derive(Debug, Clone)]
pub struct CompiledProfile {
    pub name: String,
    pub spec: ApiProviderProfileSpec,
    pub endpoints: Vec<ResolvedEndpoint>,
    pub unlisted: Vec<UnlistedScope>,
    /// Every host the profile's endpoints live on.
    pub hosts: BTreeSet<String>,
    /// [`CompiledProfile::host_target_slots`] of every host, derived on first use: every
    /// review of a host lists its targets.
    target_slots: std::sync::OnceLock<std::collections::BTreeMap<String, HostTargetSlots>>,
}

/// Which of a profile's endpoints and unlisted-path scopes one host has, by index, in
/// profile order.
#[derive(Debug, Clone, Default)]
pub struct HostTargetSlots {
    /// Indices into [`CompiledProfile::endpoints`].
    pub endpoints: Vec<usize>,
    /// Indices into [`CompiledProfile::unlisted`], each with the indices of the endpoints
    /// listed under the scope's base (API endpoints on its host): its paths exclude them.
    pub unlisted: Vec<(usize, Vec<usize>)>,
}

impl CompiledProfile {
    pub fn controller(&self) -> IngressController {
        self.spec.ingress_controller
    }

    /// The endpoints and unlisted-path scopes of `host` (none for a host the profile does
    /// not use).
    pub fn host_target_slots(&self, host: &str) -> &HostTargetSlots {
        static NONE: HostTargetSlots = HostTargetSlots {
            endpoints: Vec::new(),
            unlisted: Vec::new(),
        };
        let slots = self.target_slots.get_or_init(|| {
            let mut slots: std::collections::BTreeMap<String, HostTargetSlots> = Default::default();
            for (i, e) in self.endpoints.iter().enumerate() {
                slots.entry(e.host.clone()).or_default().endpoints.push(i);
            }
            for (i, scope) in self.unlisted.iter().enumerate() {
                let listed = self
                    .endpoints
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| {
                        e.row.location == Location::ApiBase
                            && e.host == scope.host
                            && e.path.starts_with(&scope.base)
                    })
                    .map(|(j, _)| j)
                    .collect();
                slots
                    .entry(scope.host.clone())
                    .or_default()
                    .unlisted
                    .push((i, listed));
            }
            slots
        });
        slots.get(host).unwrap_or(&NONE)
    }

    /// Whether a Gateway of `class` is considered by this profile (gateway-api).
    pub fn considers_gateway_class(&self, class: &str) -> bool {
        self.spec
            .gateway_class_name
            .as_deref()
            .is_none_or(|want| want == class)
    }

    pub fn gate_url(&self) -> Option<&str> {
        self.spec.gate.as_ref().map(|g| g.url.as_str())
    }
}

impl ApiProviderProfileSpec {
    /// Validates every field and resolves the endpoint table against it.
    /// Errors name the field (`spec.apiBaseUrls[1]`) and say what is wrong.
    pub fn compile(&self, name: &str) -> Result<CompiledProfile, ProfileError> {
        let issuer = parse_https("spec.issuer", &self.issuer)?;
        if self.api_base_urls.is_empty() {
            return Err(err(
                "spec.apiBaseUrls",
                "must list at least one https base URL",
            ));
        }
        let mut bases = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, raw) in self.api_base_urls.iter().enumerate() {
            let field = format!("spec.apiBaseUrls[{i}]");
            let url = parse_https(&field, raw)?;
            if !seen.insert((url.host.clone(), url.path.clone())) {
                return Err(err(field, format!("{raw:?} is listed twice")));
            }
            bases.push((raw.trim_end_matches('/').to_string(), url));
        }
        let cc = &self.client_certificate;
        if !is_dns1123_subdomain(&cc.ca_secret_name) {
            return Err(err(
                "spec.clientCertificate.caSecretName",
                format!(
                    "{:?} is not a valid Secret name (lower-case DNS-1123 subdomain)",
                    cc.ca_secret_name
                ),
            ));
        }
        if !(1..=10).contains(&cc.verify_depth) {
            return Err(err(
                "spec.clientCertificate.verifyDepth",
                format!("{} is out of range 1..10", cc.verify_depth),
            ));
        }
        if let Some(class) = &self.ingress_class_name
            && !is_dns1123_subdomain(class)
        {
            return Err(err(
                "spec.ingressClassName",
                format!("{class:?} is not a valid IngressClass name"),
            ));
        }
        if let Some(class) = &self.gateway_class_name
            && !is_dns1123_subdomain(class)
        {
            return Err(err(
                "spec.gatewayClassName",
                format!("{class:?} is not a valid GatewayClass name"),
            ));
        }
        if let Some(config) = &self.controller_config_map {
            if !matches!(
                self.ingress_controller,
                IngressController::IngressNginx | IngressController::HaproxyIngress
            ) {
                return Err(err(
                    "spec.controllerConfigMap",
                    format!(
                        "is read only for ingress-nginx and haproxy-ingress; {} takes no controller ConfigMap (remove the field)",
                        self.ingress_controller.as_str()
                    ),
                ));
            }
            if !is_dns1123_label(&config.namespace) {
                return Err(err(
                    "spec.controllerConfigMap.namespace",
                    format!("{:?} is not a valid namespace name", config.namespace),
                ));
            }
            if !is_dns1123_subdomain(&config.name) {
                return Err(err(
                    "spec.controllerConfigMap.name",
                    format!("{:?} is not a valid ConfigMap name", config.name),
                ));
            }
        }
        if let Some(gate) = &self.gate {
            let url = Url::parse(&gate.url)
                .map_err(|e| err("spec.gate.url", format!("{:?} is not a URL: {e}", gate.url)))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty)
            {
                return Err(err(
                    "spec.gate.url",
                    format!("{:?} must be an http(s) URL with a host", gate.url),
                ));
            }
            if gate
                .url
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '$' || c == ';')
            {
                return Err(err(
                    "spec.gate.url",
                    "must not contain whitespace, quotes, '$' or ';'",
                ));
            }
        }

        let issuer_text = self.issuer.trim_end_matches('/');
        let mut endpoints = Vec::new();
        for row in ENDPOINT_TABLE.iter() {
            match row.location {
                Location::ApiBase => {
                    for (raw, base) in &bases {
                        let path = format!("{}{}", base.path, row.default_path);
                        endpoints.push(ResolvedEndpoint {
                            row,
                            url: format!("{raw}{}", row.default_path),
                            host: base.host.clone(),
                            path: PathTemplate::parse(&path),
                            default_alias: false,
                        });
                    }
                }
                Location::AuthorizationServer => {
                    let field = row.profile_field().unwrap_or("unknown");
                    let configured = self
                        .authorization_server
                        .as_ref()
                        .and_then(|a| a.field(field));
                    let (url, text) = match configured {
                        Some(raw) => (
                            parse_https(&format!("spec.authorizationServer.{field}"), raw)?,
                            raw.to_string(),
                        ),
                        None => {
                            let text = format!("{issuer_text}{}", row.default_path);
                            (
                                EndpointUrl {
                                    host: issuer.host.clone(),
                                    path: format!("{}{}", issuer.path, row.default_path),
                                },
                                text,
                            )
                        }
                    };
                    let path = if url.path.is_empty() {
                        "/".to_string()
                    } else {
                        url.path.clone()
                    };
                    let default_path = format!("{}{}", issuer.path, row.default_path);
                    if configured.is_some() && (url.host != issuer.host || path != default_path) {
                        endpoints.push(ResolvedEndpoint {
                            row,
                            url: format!("{issuer_text}{}", row.default_path),
                            host: issuer.host.clone(),
                            path: PathTemplate::parse_literal(&default_path),
                            default_alias: true,
                        });
                    }
                    endpoints.push(ResolvedEndpoint {
                        row,
                        url: text,
                        host: url.host,
                        path: PathTemplate::parse_literal(&path),
                        default_alias: false,
                    });
                }
                Location::Issuer => {
                    let path = format!("{}{}", issuer.path, row.default_path);
                    endpoints.push(ResolvedEndpoint {
                        row,
                        url: format!("{issuer_text}{}", row.default_path),
                        host: issuer.host.clone(),
                        path: PathTemplate::parse_literal(&path),
                        default_alias: false,
                    });
                }
            }
        }
        let unlisted = match self.unlisted_api_paths {
            UnlistedApiPaths::Ignore => Vec::new(),
            mode => bases
                .iter()
                .map(|(raw, base)| UnlistedScope {
                    base_url: raw.clone(),
                    host: base.host.clone(),
                    base: PathTemplate::parse_literal(if base.path.is_empty() {
                        "/"
                    } else {
                        &base.path
                    }),
                    scheme: if mode == UnlistedApiPaths::Tls {
                        Scheme::Tls
                    } else {
                        Scheme::Mtls
                    },
                })
                .collect(),
        };
        let hosts = endpoints
            .iter()
            .filter(|e| !e.default_alias)
            .map(|e| e.host.clone())
            .collect();
        Ok(CompiledProfile {
            name: name.to_string(),
            spec: self.clone(),
            endpoints,
            unlisted,
            hosts,
            target_slots: Default::default(),
        })
    }
}

impl ApiProviderProfile {
    pub fn compile(&self) -> Result<CompiledProfile, ProfileError> {
        let name = self.metadata.name.as_deref().unwrap_or("");
        if name.is_empty() {
            return Err(err("metadata.name", "is required"));
        }
        self.spec.compile(name)
    }
}

impl fmt::Display for IngressController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
