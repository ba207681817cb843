//! Traefik v2.x/v3.x with the Kubernetes Ingress provider, as its source behaves:
//!
//! * Rules: `Exact` → ``Path(`p`)``; `Prefix` and `ImplementationSpecific` →
//!   ``PathPrefix(`p`)`` (a plain, case-sensitive string prefix; `strictPrefixMatching`
//!   is off by default), unless `router.pathmatcher` says otherwise. Router priority is the
//!   length of the whole rule (Host part included) unless `router.priority` is set; the
//!   highest priority wins, and equal priorities are an undefined choice.
//! * TLS options are chosen by SNI: every TLS router of a host must resolve to the same
//!   option, a router without `router.tls.options` resolving to `default`. If they differ,
//!   Traefik applies the `default` options to all of them (normally no client auth).
//! * `clientAuthType`: `RequireAndVerifyClientCert` (also the default when CA secrets are
//!   set), `VerifyClientCertIfGiven`, `RequireAnyClientCert` and `RequestClientCert` (these
//!   two never verify the chain), `NoClientCert`.
//! * Per-path gate: a middleware chain that deletes client-sent
//!   `X-Forwarded-Tls-Client-Cert`, sets it with `passTLSClientCert`, and calls the gate with
//!   `forwardAuth` (`trustForwardHeader: true`, forwarding that header).
//! * IngressRoutes ([`ingress_route`], rules in [`rule`]) are routers of the same host table:
//!   TLS routers compete by priority among TLS routers, plain-HTTP routers among plain-HTTP
//!   ones (a router with a `tls` section is "dedicated to HTTPS requests only").
//!
//! # Audit: what changes who reaches a route, and what this dialect does with it
//!
//! Sources are traefik/traefik files (v2.11 and v3.x, checked in the controller's source);
//! "reported" means an `UnmodelledSetting` (or the named code) naming the object and setting;
//! "irrelevant" means the setting cannot let a request reach a route it would not reach, or
//! skip client authentication it would get. `../shared/reference/` is silent on IngressRoute
//! rules, paerser decoding and the gate-chain middlewares; nothing there was found wrong.
//!
//! Ingress annotations (`traefik.ingress.kubernetes.io/`; the part after the prefix is
//! matched case-insensitively by paerser: `pkg/provider/kubernetes/ingress/annotations.go`,
//! `RouterIng`, `ServiceIng`):
//!
//! | Annotation | Decision |
//! |---|---|
//! | `router.tls`, `router.tls.*` | modelled as paerser decodes the `allowEmpty` pointer (not `strconv.ParseBool`): TLS when `router.tls` is empty or `true` in any case, or absent beside a `router.tls.*` key; any other value (`1`, `t`, `false`, `yes`) makes plain-HTTP routers (`parser/nodes_metadata.go`, `node.Disabled`). Without any of them, a `spec.tls` entry for the host counts as TLS: an assumption (Traefik reads `spec.tls` only for certificates, `loadRouter` and `getCertificates` in `pkg/provider/kubernetes/ingress/kubernetes.go`; such a router is TLS only on an entry point with static `http.tls`, and plain HTTP on the others) |
//! | `router.tls.options` | modelled (`<ns>-<name>@kubernetescrd`, `default`, `default@internal`; unresolved: `TlsOptionInvalid`) |
//! | `router.middlewares` | modelled (gate chain, `chain` expanded) |
//! | `router.priority` | modelled (0 or absent: rule length, `httpmuxer.GetRulePriority`) |
//! | `router.pathmatcher` | modelled (`Path`, `PathPrefix`, `PathRegexp`) |
//! | `router.entrypoints` | modelled for IngressRouteTCP only: a TCP router is not reported when its listed entry points and those of every router of the host share none (absent: Traefik's default entry points, which may be any) |
//! | `router.tls.certresolver`, `router.tls.domains.n.main/sans` | irrelevant (server certificates, ACME) |
//! | any other `router.*` | reported (paerser rejects unknown fields and Traefik skips the Ingress) |
//! | `service.serversscheme`, `service.serverstransport`, `service.sticky.*`, `service.nativelb` | irrelevant (backend side) |
//!
//! Middleware types (`pkg/config/dynamic/middlewares.go`, `Middleware`). Middlewares run
//! after routing and after the TLS handshake, so they can only refuse, redirect or rewrite a
//! request; what matters is the per-path gate and the header it trusts:
//!
//! | Type | Decision |
//! |---|---|
//! | `forwardAuth` | modelled: to the profile's gate it is the gate (needs `trustForwardHeader` and the header forwarded); with `authResponseHeaders`/`authResponseHeadersRegex` that may copy the certificate header it counts as a header writer |
//! | `passTLSClientCert` | modelled (`pem: true` writes the verified certificate) |
//! | `headers` | modelled: an empty `customRequestHeaders` value deletes the header, a non-empty value for the certificate header writes it (forgeable gate) |
//! | `chain` | modelled (members expanded in order, 8 levels, 256 members) |
//! | `plugin` | modelled as writing any header (unknown code): a gate after it is forgeable |
//! | `addPrefix`, `stripPrefix`, `stripPrefixRegex`, `replacePath`, `replacePathRegex` | irrelevant (rewrite the upstream path after routing) |
//! | `ipWhiteList`/`ipAllowList`, `basicAuth`, `digestAuth`, `rateLimit`, `inFlightReq`, `circuitBreaker`, `retry`, `buffering`, `compress`, `contentType`, `grpcWeb`, `errors`, `redirectRegex`, `redirectScheme` | irrelevant (refuse, limit, redirect or transform; never add access or client authentication) |
//!
//! TLSOption fields (`pkg/provider/kubernetes/crd/traefikio/v1alpha1/tlsoption.go`):
//!
//! | Field | Decision |
//! |---|---|
//! | `clientAuth.clientAuthType` | modelled (unknown values: `TlsOptionInvalid`) |
//! | `clientAuth.secretNames` | modelled (Secrets checked for `tls.ca`/`ca.crt`) |
//! | `sniStrict` | irrelevant: a request whose SNI resolved other options than its router's gets 421 from Traefik's per-router `snicheck` middleware (`pkg/middlewares/snicheck`) |
//! | `minVersion`, `maxVersion`, `cipherSuites`, `curvePreferences`, `alpnProtocols`, `preferServerCipherSuites`, `disableSessionTickets` | irrelevant (handshake parameters) |
//!
//! TLSStore fields (`tlsstore.go`: `certificates`, `defaultCertificate`,
//! `defaultGeneratedCert`): irrelevant (server certificates only).
//!
//! IngressRoute fields ([`ingress_route`]): `routes[].match`, `priority`, `middlewares`,
//! `syntax`/`ruleSyntax` (both syntaxes read), `entryPoints`, `tls` and `tls.options` are
//! modelled; `routes[].services`, `tls.secretName`, `tls.certResolver`, `tls.domains`,
//! `tls.store` are irrelevant; the `kubernetes.io/ingress.class` annotation filtering
//! IngressRoutes is not read, so every IngressRoute counts (fail closed).
//!
//! IngressRouteTCP fields ([`ingress_route_tcp`]; both groups). TCP routers see a connection
//! before the HTTP routers of their entry point (`ServeTCP`, `pkg/server/router/tcp/router.go`,
//! quoted in that module), so one that may take a profile host's connections is reported,
//! never modelled as harmless:
//!
//! | Field | Decision |
//! |---|---|
//! | `routes[].match` with `HostSNI` naming the host, `HostSNI(`*`)`, a `HostSNIRegexp` that may match it, or a rule mtls-gate cannot parse | reported (`UnmodelledSetting` on the host, naming the object, rule, TLS handling and services): the connection bypasses the HTTP routers' TLS options, middlewares and paths. Parsed with the v2 and v3 TCP matchers (`pkg/muxer/tcp/matcher.go`, `matcher_v2.go`); `ClientIP` and `ALPN` narrow a router to some connections, which it still takes |
//! | `routes[].match` whose `HostSNI` names only other hosts | irrelevant for the profile host (TLS connections are routed by SNI) |
//! | `tls` absent | reported when the rule matches a connection without SNI (`HostSNI(`*`)`): the router takes plain-text connections before the HTTP routers |
//! | `tls.passthrough`, `tls.options` | named in the finding (passthrough: Traefik does not terminate TLS; options: the TCP router's own handshake) |
//! | `entryPoints` | modelled: a router whose listed entry points share none with those of every router of the host is not reported |
//! | `routes[].priority`, `routes[].middlewares` (MiddlewareTCP: `inFlightConn`, `ipAllowList`), `routes[].services`, `tls.secretName`, `tls.certResolver`, `tls.domains`, `tls.store` | irrelevant (order among TCP routers, connection limits, backend side, server certificates) |
//!
//! Not read (a gap, listed in the README's limits): `IngressRouteUDP` (UDP carries no TLS
//! HTTP traffic of a profile host), and routers of Traefik's other providers (file, Docker).

pub mod ingress_route;
pub mod ingress_route_tcp;
mod objects;
pub mod rule;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::json;

pub use self::ingress_route::{
    CrdRef, INGRESS_ROUTE, INGRESS_ROUTE_CONTAINOUS, INGRESS_ROUTE_KIND, IngressRouteRoute,
    IngressRouteTls, IngressRouteView,
};
pub use self::ingress_route_tcp::{
    INGRESS_ROUTE_TCP, INGRESS_ROUTE_TCP_CONTAINOUS, IngressRouteTcpView, TcpTls,
};
pub use self::objects::{
    KINDS, MIDDLEWARE, MiddlewareKind, MiddlewareView, TLS_OPTION, TlsOptionView,
};
use super::{
    AnnotationChanges, AuthKind, Dialect, HostContext, HostRole, HostRouteTable, ObjectKind,
    ReduceError, RenderInput, RenderedObject, Route, RouteAuth, RouteSource, SharedObject,
    downcast_lookup, gate_url_for, is_gate_url,
};
use crate::model::{CaBundle, IngressView, Lookup, ObjectKey, ObjectSource, PathType};
use crate::paths::{MatchResult, PathMatcher};
use crate::profile::CompiledProfile;
use crate::violation::ViolationCode;

pub struct Traefik;

pub const TLS_OPTIONS: &str = "traefik.ingress.kubernetes.io/router.tls.options";
pub const MIDDLEWARES: &str = "traefik.ingress.kubernetes.io/router.middlewares";
const ROUTER_TLS: &str = "traefik.ingress.kubernetes.io/router.tls";
const PRIORITY: &str = "traefik.ingress.kubernetes.io/router.priority";
const PATH_MATCHER: &str = "traefik.ingress.kubernetes.io/router.pathmatcher";
const ENTRY_POINTS: &str = "traefik.ingress.kubernetes.io/router.entrypoints";
const CERT_HEADER: &str = "X-Forwarded-Tls-Client-Cert";
const ANNOTATION_PREFIX: &str = "traefik.ingress.kubernetes.io/";
const CONTROLLER: &str = "traefik";

/// Client-auth behaviour of a resolved TLS option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OptionMode {
    None,
    RequestUnverified,
    RequireUnverified,
    VerifyIfGiven,
    RequireAndVerify,
}

/// A router's `router.tls.options`, resolved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum OptionRef {
    Default,
    /// A TLSOption of the kubernetescrd provider.
    Crd(ObjectKey),
    /// Named, but not found among the TLSOptions (or from another provider).
    Unresolved(String),
}

impl OptionRef {
    fn name(&self) -> String {
        match self {
            OptionRef::Default => "default".into(),
            OptionRef::Crd(k) => format!("{}-{}@kubernetescrd", k.namespace, k.name),
            OptionRef::Unresolved(s) => s.clone(),
        }
    }
}

/// Resolves a `<namespace>-<name>@kubernetescrd` reference; both parts may contain `-`, so
/// every split is tried against the known objects.
fn resolve_crd_ref<'a, T>(
    value: &str,
    lookup: impl Fn(&ObjectKey) -> Lookup<'a, T>,
) -> Result<(ObjectKey, &'a T), String> {
    let Some(qualified) = value.trim().strip_suffix("@kubernetescrd") else {
        return Err(format!(
            "{value:?} is not a kubernetescrd reference (<namespace>-<name>@kubernetescrd)"
        ));
    };
    for (i, _) in qualified.match_indices('-') {
        let key = ObjectKey::new(&qualified[..i], &qualified[i + 1..]);
        if let Lookup::Found(obj) = lookup(&key) {
            return Ok((key, obj));
        }
    }
    Err(format!("{value:?} names no known object"))
}

fn option_mode(opt: &TlsOptionView) -> Result<OptionMode, String> {
    match opt.client_auth_type.as_deref() {
        None if opt.secret_names.is_empty() => Ok(OptionMode::None),
        None | Some("RequireAndVerifyClientCert") => Ok(OptionMode::RequireAndVerify),
        Some("VerifyClientCertIfGiven") => Ok(OptionMode::VerifyIfGiven),
        Some("RequireAnyClientCert") => Ok(OptionMode::RequireUnverified),
        Some("RequestClientCert") => Ok(OptionMode::RequestUnverified),
        Some("NoClientCert") => Ok(OptionMode::None),
        Some(other) => Err(format!("unknown clientAuthType {other:?}")),
    }
}

/// The per-route gate chain of an Ingress.
enum GateChain {
    Absent,
    Complete,
    /// The chain calls the gate but a client can forge the header it checks.
    Forgeable(String),
    /// The chain calls the gate but the gate can never see a certificate.
    NeverPasses(String),
}

/// Deepest nesting of `chain` middlewares followed, and most middlewares a router's list
/// expands to: beyond these the gate counts as absent (fail closed).
const MAX_CHAIN_DEPTH: usize = 8;
const MAX_CHAIN_MEMBERS: usize = 256;

/// The middlewares a reference runs, `chain`s expanded in order (`None` or an unknown
/// object: a middleware that does nothing the gate model credits).
fn expand_middleware(
    objects: &dyn ObjectSource,
    key: Option<&ObjectKey>,
    depth: usize,
    out: &mut Vec<MiddlewareKind>,
) {
    if out.len() >= MAX_CHAIN_MEMBERS {
        return;
    }
    let found = key.map(|k| downcast_lookup::<MiddlewareView>(objects.object(&MIDDLEWARE, k)));
    match found {
        Some(Lookup::Found(mw)) => match &mw.kind {
            MiddlewareKind::Chain(members) if depth < MAX_CHAIN_DEPTH => {
                for member in members {
                    expand_middleware(objects, Some(member), depth + 1, out);
                }
            }
            MiddlewareKind::Chain(_) => out.push(MiddlewareKind::Other),
            kind => out.push(kind.clone()),
        },
        _ => out.push(MiddlewareKind::Other),
    }
}

/// The gate chain of an Ingress's `router.middlewares` annotation.
fn ingress_gate_chain(
    ing: &IngressView,
    objects: &dyn ObjectSource,
    gate: Option<&str>,
) -> GateChain {
    let Some(list) = router_annotation(ing, MIDDLEWARES) else {
        return GateChain::Absent;
    };
    let mut kinds = Vec::new();
    for reference in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let key = resolve_crd_ref(reference, |k| {
            downcast_lookup::<MiddlewareView>(objects.object(&MIDDLEWARE, k))
        })
        .ok()
        .map(|(key, _)| key);
        expand_middleware(objects, key.as_ref(), 0, &mut kinds);
    }
    gate_chain(&kinds, gate)
}

/// The gate chain of one IngressRoute route's `middlewares`.
fn route_gate_chain(
    ir: &IngressRouteView,
    route: &IngressRouteRoute,
    objects: &dyn ObjectSource,
    gate: Option<&str>,
) -> GateChain {
    let mut kinds = Vec::new();
    for reference in &route.middlewares {
        let key = if reference.name.contains('@') {
            // Another provider's middleware, or this provider's by its qualified name.
            resolve_crd_ref(&reference.name, |k| {
                downcast_lookup::<MiddlewareView>(objects.object(&MIDDLEWARE, k))
            })
            .ok()
            .map(|(key, _)| key)
        } else {
            Some(ObjectKey::new(
                reference.namespace.as_deref().unwrap_or(&ir.key.namespace),
                &reference.name,
            ))
        };
        expand_middleware(objects, key.as_ref(), 0, &mut kinds);
    }
    gate_chain(&kinds, gate)
}

/// Whether a router's middlewares, in order, form a working per-path gate.
fn gate_chain(middlewares: &[MiddlewareKind], gate: Option<&str>) -> GateChain {
    let mut stripped = false;
    let mut passed = false;
    for kind in middlewares {
        match kind {
            MiddlewareKind::StripsRequestHeaders(headers)
                if headers.iter().any(|h| h.eq_ignore_ascii_case(CERT_HEADER)) =>
            {
                stripped = true
            }
            MiddlewareKind::PassTlsClientCert { pem: true } => passed = true,
            // After the strip, something else may write the header the gate trusts.
            MiddlewareKind::SetsRequestHeaders(headers)
            | MiddlewareKind::ForwardAuthCopying {
                copies: headers, ..
            } if headers
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case(CERT_HEADER)) =>
            {
                stripped = false
            }
            MiddlewareKind::ForwardAuth {
                address,
                trust_forward_header,
                auth_request_headers,
            } if is_gate_url(address, gate, CONTROLLER) => {
                let forwards = auth_request_headers.is_empty()
                    || auth_request_headers
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(CERT_HEADER));
                return if !stripped {
                    GateChain::Forgeable(format!(
                        "no headers middleware deletes a client-sent {CERT_HEADER} before the gate"
                    ))
                } else if !passed {
                    GateChain::NeverPasses(
                        "no passTLSClientCert (pem: true) middleware runs before the gate".into(),
                    )
                } else if !trust_forward_header || !forwards {
                    GateChain::NeverPasses(format!(
                        "the gate's forwardAuth needs trustForwardHeader: true and must forward {CERT_HEADER}"
                    ))
                } else {
                    GateChain::Complete
                };
            }
            _ => {}
        }
    }
    GateChain::Absent
}

/// Traefik's Ingress provider decodes `traefik.ingress.kubernetes.io/router.*` annotations
/// with paerser, which matches the part after the prefix to its fields case-insensitively
/// (`router.tls.Options` is `router.tls.options`); the prefix itself is case-sensitive
/// (`convertAnnotations`, `pkg/provider/kubernetes/ingress/annotations.go`).
fn same_router_key(key: &str, known: &str) -> bool {
    match (
        key.strip_prefix(ANNOTATION_PREFIX),
        known.strip_prefix(ANNOTATION_PREFIX),
    ) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// The value of a router annotation under any spelling Traefik reads.
fn router_annotation<'a>(ing: &'a IngressView, known: &str) -> Option<&'a str> {
    ing.annotations
        .iter()
        .find(|(k, _)| same_router_key(k, known))
        .map(|(_, v)| v.as_str())
}

/// Router annotations that do not change who reaches a route or how: the certificate
/// resolver and its ACME domains.
const IRRELEVANT_ROUTER_KEYS: &[&str] = &["router.tls.certresolver"];

/// Findings for `traefik.ingress.kubernetes.io/router.*` annotations of an Ingress that this
/// dialect neither models nor knows to be irrelevant, and for `router.tls` values Traefik's
/// decoder rejects.
fn unmodelled_router_annotations(
    ctx: &HostContext<'_>,
    ing: &IngressView,
) -> Vec<crate::violation::Violation> {
    let modelled = [
        ROUTER_TLS,
        TLS_OPTIONS,
        MIDDLEWARES,
        PRIORITY,
        PATH_MATCHER,
        ENTRY_POINTS,
    ];
    let mut out = Vec::new();
    for key in ing.annotations.keys() {
        let Some(suffix) = key.strip_prefix(ANNOTATION_PREFIX) else {
            continue;
        };
        if !suffix.to_ascii_lowercase().starts_with("router.") {
            continue;
        }
        let lower = suffix.to_ascii_lowercase();
        let acme_domain = lower.starts_with("router.tls.domains.")
            && (lower.ends_with(".main") || lower.ends_with(".sans"));
        let known = modelled.iter().any(|m| same_router_key(key, m))
            || IRRELEVANT_ROUTER_KEYS.contains(&lower.as_str())
            || acme_domain;
        if !known {
            out.push(ctx.finding(
                ViolationCode::UnmodelledSetting,
                Some(&ing.key),
                format!(
                    "Ingress {} sets {key}, which mtls-gate does not model for Traefik (Traefik may reject it and skip the Ingress, or it may change how host {} is routed), so the host cannot be proven compliant. Fix: remove the annotation or use one of router.tls, router.tls.options, router.middlewares, router.priority, router.pathmatcher.",
                    ing.key, ctx.host
                ),
            ));
        }
    }
    out
}

fn rule_host(host_key: &str) -> String {
    if let Some(rest) = host_key.strip_prefix("*.") {
        format!(
            "HostRegexp(`^[a-zA-Z0-9-]+\\.{}$`)",
            rest.replace('.', "\\.")
        )
    } else {
        format!("Host(`{host_key}`)")
    }
}

/// What the `router.tls*` annotations make of an Ingress's routers. `RouterIng.TLS` is a
/// pointer with `label:"allowEmpty"` (`pkg/provider/kubernetes/ingress/annotations.go`), which
/// paerser decodes without `strconv.ParseBool`: the pointer is set when `router.tls` or any
/// `router.tls.*` key is present, unless `router.tls` has a value that is not empty and not
/// `true` in any case (`node.Disabled`, `parser/nodes_metadata.go`; a disabled node is left
/// nil, `parser/element_fill.go`). So `"1"`, `"t"`, `"yes"` or `"false"` make the routers
/// plain HTTP even beside `router.tls.options`, and `router.tls.options` alone makes them TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouterTlsAnnotation {
    Absent,
    Enabled,
    Disabled,
}

fn router_tls_annotation(ing: &IngressView) -> RouterTlsAnnotation {
    if let Some(value) = router_annotation(ing, ROUTER_TLS) {
        return if value.is_empty() || value.eq_ignore_ascii_case("true") {
            RouterTlsAnnotation::Enabled
        } else {
            RouterTlsAnnotation::Disabled
        };
    }
    let child = ing.annotations.keys().any(|k| {
        k.strip_prefix(ANNOTATION_PREFIX)
            .is_some_and(|rest| rest.to_ascii_lowercase().starts_with("router.tls."))
    });
    if child {
        RouterTlsAnnotation::Enabled
    } else {
        RouterTlsAnnotation::Absent
    }
}

/// Whether the Ingress's routers are TLS routers: only as the `router.tls*` annotations say.
/// Traefik reads an Ingress's `spec.tls` only for certificates (`loadRouter` and
/// `getCertificates`, `pkg/provider/kubernetes/ingress/kubernetes.go`, v2 and v3); without
/// `router.tls*` the router is TLS only on entry points whose static configuration sets
/// `http.tls`, which mtls-gate cannot see, and plain HTTP on the others (`web` by default,
/// where a router without `router.entrypoints` is also attached). Fail closed: plain.
fn router_tls(ing: &IngressView) -> bool {
    router_tls_annotation(ing) == RouterTlsAnnotation::Enabled
}

fn option_ref(ing: &IngressView, objects: &dyn ObjectSource) -> OptionRef {
    match router_annotation(ing, TLS_OPTIONS).map(str::trim) {
        None | Some("") | Some("default") | Some("default@internal") => OptionRef::Default,
        Some(value) => match resolve_crd_ref(value, |k| {
            downcast_lookup::<TlsOptionView>(objects.object(&TLS_OPTION, k))
        }) {
            Ok((key, _)) if key.name == "default" => OptionRef::Default,
            Ok((key, _)) => OptionRef::Crd(key),
            Err(_) => OptionRef::Unresolved(value.to_string()),
        },
    }
}

/// The TLS options an IngressRoute's TLS routers use (`spec.tls.options`).
fn ingress_route_option(ir: &IngressRouteView, objects: &dyn ObjectSource) -> OptionRef {
    let Some(reference) = ir.tls.as_ref().and_then(|t| t.options.as_ref()) else {
        return OptionRef::Default;
    };
    if reference.name.contains('@') {
        return match reference.name.as_str() {
            "default@internal" => OptionRef::Default,
            name => match resolve_crd_ref(name, |k| {
                downcast_lookup::<TlsOptionView>(objects.object(&TLS_OPTION, k))
            }) {
                Ok((key, _)) if key.name == "default" => OptionRef::Default,
                Ok((key, _)) => OptionRef::Crd(key),
                Err(_) => OptionRef::Unresolved(name.to_string()),
            },
        };
    }
    let namespace = reference.namespace.as_deref().unwrap_or(&ir.key.namespace);
    let key = ObjectKey::new(namespace, &reference.name);
    if namespace != ir.key.namespace {
        // Refused unless the static allowCrossNamespace is set, which mtls-gate cannot see.
        return OptionRef::Unresolved(format!(
            "{key} (in another namespace: Traefik refuses it unless allowCrossNamespace is set)"
        ));
    }
    match downcast_lookup::<TlsOptionView>(objects.object(&TLS_OPTION, &key)) {
        Lookup::Found(_) if key.name == "default" => OptionRef::Default,
        Lookup::Found(_) => OptionRef::Crd(key),
        _ => OptionRef::Unresolved(key.to_string()),
    }
}

/// One router of an IngressRoute that may serve the host.
struct IngressRouteRouter<'a> {
    source: RouteSource,
    view: &'a IngressRouteView,
    route: &'a IngressRouteRoute,
    alternatives: Vec<rule::PathAlternative>,
    tls: bool,
}

/// Whether a `traefik.containo.us` IngressRoute is hidden by the `traefik.io` one of the
/// same namespace/name. Only when the `traefik.io` object is indexed under every rule host
/// of the older one (or under `""`, every host): adding or removing it then changes the
/// generation of every host the older one serves, so no cached evaluation of such a host
/// outlives the change. Otherwise both are read (fail closed).
fn shadowed(objects: &dyn ObjectSource, containous: &dyn super::ObjectView) -> bool {
    let Lookup::Found(current) = objects.object(&INGRESS_ROUTE, containous.key()) else {
        return false;
    };
    let covering = current.route_hosts();
    covering.iter().any(String::is_empty)
        || containous
            .route_hosts()
            .iter()
            .all(|h| covering.contains(h))
}

/// The IngressRoutes that may serve `host` (exact-host rules and host-less or regex ones),
/// without `traefik.containo.us` objects shadowed by a `traefik.io` one.
fn ingress_routes_for(objects: &dyn ObjectSource, host: &str) -> Vec<SharedObject> {
    let mut found: BTreeMap<(ObjectKind, ObjectKey), SharedObject> = BTreeMap::new();
    for key in [host, ""] {
        for (kind, object) in objects.routes_for_host(key) {
            if kind != INGRESS_ROUTE && kind != INGRESS_ROUTE_CONTAINOUS {
                continue;
            }
            if kind == INGRESS_ROUTE_CONTAINOUS && shadowed(objects, object.as_ref()) {
                continue;
            }
            found.insert((kind, object.key().clone()), object);
        }
    }
    found.into_values().collect()
}

/// The entry points the host's HTTP routers are bound to, or `None` when some router is bound
/// to Traefik's default entry points (static configuration mtls-gate cannot see) or the
/// host has no HTTP router.
fn host_entry_points(
    ingresses: &[std::sync::Arc<IngressView>],
    routers: &[IngressRouteRouter<'_>],
) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut any = false;
    for ing in ingresses {
        let listed: Vec<String> = router_annotation(ing, ENTRY_POINTS)
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect();
        if listed.is_empty() {
            return None;
        }
        out.extend(listed);
        any = true;
    }
    for router in routers {
        if router.view.entry_points.is_empty() {
            return None;
        }
        out.extend(router.view.entry_points.iter().cloned());
        any = true;
    }
    any.then_some(out)
}

/// Findings for the IngressRouteTCP routers that may take connections of the host before
/// its HTTP routers do ([`ingress_route_tcp`]). A router is left out only when its entry
/// points and those of every HTTP router of the host are listed and share none.
fn tcp_router_findings(
    ctx: &HostContext<'_>,
    host_entry_points: Option<&BTreeSet<String>>,
) -> Vec<crate::violation::Violation> {
    let mut found: BTreeMap<(ObjectKind, ObjectKey), SharedObject> = BTreeMap::new();
    for key in [ctx.host, ""] {
        for (kind, object) in ctx.objects.routes_for_host(key) {
            if kind == INGRESS_ROUTE_TCP || kind == INGRESS_ROUTE_TCP_CONTAINOUS {
                found.insert((kind, object.key().clone()), object);
            }
        }
    }
    let mut out = Vec::new();
    for ((kind, _), object) in &found {
        let Some(view) = object.as_any().downcast_ref::<IngressRouteTcpView>() else {
            continue;
        };
        let shares_entry_point = view.entry_points.is_empty()
            || host_entry_points
                .is_none_or(|host| view.entry_points.iter().any(|e| host.contains(e)));
        if !shares_entry_point {
            continue;
        }
        let entry_points = if view.entry_points.is_empty() {
            "every default entry point".to_string()
        } else {
            format!("entry points {}", view.entry_points.join(", "))
        };
        for (i, route) in view.routes.iter().enumerate() {
            let (takes, why) = match route.rule.as_deref() {
                Ok(r) if view.tls == TcpTls::None => (
                    // Without TLS there is no SNI: only `HostSNI(`*`)` matches.
                    rule::may_match_sni(r, ""),
                    String::new(),
                ),
                Ok(r) => (rule::may_match_sni(r, ctx.host), String::new()),
                Err(reason) => (
                    true,
                    format!(
                        " (mtls-gate cannot analyse the rule: {reason}; it counts as matching every host)"
                    ),
                ),
            };
            if !takes {
                continue;
            }
            let handling = match &view.tls {
                TcpTls::None => "takes plain-text connections".to_string(),
                TcpTls::Passthrough => format!(
                    "takes TLS connections for host {} with tls.passthrough (Traefik does not even terminate TLS)",
                    ctx.host
                ),
                TcpTls::Terminated { options } => format!(
                    "takes TLS connections for host {} and terminates TLS with the {} TLS options",
                    ctx.host,
                    options.as_deref().unwrap_or("default")
                ),
            };
            let services = if route.services.is_empty() {
                String::new()
            } else {
                format!(" to service {}", route.services.join(", "))
            };
            out.push(ctx.finding(
                ViolationCode::UnmodelledSetting,
                Some(&view.key),
                format!(
                    "{} {} ({}) spec.routes[{i}].match {:?}{why} on {entry_points} {handling} and forwards them{services} before Traefik's HTTP routers see them (TCP routers apply first on an entry point; only an HTTPS router whose Host rule names the SNI on the same entry point is tried before a TCP router, and entry points are static configuration mtls-gate cannot see). Such connections bypass the HTTP routers' TLS options, middlewares and paths, which mtls-gate does not model for TCP routers, so host {} cannot be proven compliant. Fix: remove the host from the TCP rule (no HostSNI(`*`) or HostSNIRegexp matching it), or list entry points on the TCP router and on every router of the host that share none.",
                    kind.kind, view.key, kind.group, route.text, ctx.host
                ),
            ));
        }
    }
    out
}

impl Traefik {
    /// The effective mode of a TLS option, checking its CA secrets.
    fn mode_of(
        &self,
        ctx: &HostContext<'_>,
        opt: &TlsOptionView,
        user: &ObjectKey,
        table: &mut HostRouteTable,
    ) -> OptionMode {
        let mode = match option_mode(opt) {
            Ok(m) => m,
            Err(reason) => {
                table.findings.push(ctx.finding(
                    ViolationCode::TlsOptionInvalid,
                    Some(user),
                    format!(
                        "TLSOption {} used on host {} has {reason}; Traefik rejects the option. Use RequireAndVerifyClientCert or VerifyClientCertIfGiven.",
                        opt.key, ctx.host
                    ),
                ));
                return OptionMode::None;
            }
        };
        if !matches!(
            mode,
            OptionMode::VerifyIfGiven | OptionMode::RequireAndVerify
        ) {
            return mode;
        }
        if opt.secret_names.is_empty() {
            table.findings.push(ctx.finding(
                ViolationCode::CaSecretInvalid,
                Some(user),
                format!(
                    "TLSOption {} verifies client certificates but names no CA secret (clientAuth.secretNames); Traefik fails with \"CAFiles is required\" and does not verify. Add the client CA Secret.",
                    opt.key
                ),
            ));
            return OptionMode::None;
        }
        let mut usable = true;
        for name in &opt.secret_names {
            let key = ObjectKey::new(&opt.key.namespace, name);
            let problem = match ctx.objects.secret(&key) {
                Lookup::Found(s) => match (s.bundle("tls.ca"), s.bundle("ca.crt")) {
                    (Some(CaBundle::Certificates { .. }), _)
                    | (None, Some(CaBundle::Certificates { .. })) => None,
                    (Some(CaBundle::Invalid { reason }), _)
                    | (None, Some(CaBundle::Invalid { reason })) => {
                        Some(format!("its CA key {reason}"))
                    }
                    (None, None) => Some("has neither a tls.ca nor a ca.crt key".to_string()),
                },
                Lookup::Missing => Some("does not exist".to_string()),
                Lookup::Unknown => None,
            };
            if let Some(problem) = problem {
                usable = false;
                table.findings.push(ctx.finding(
                    ViolationCode::CaSecretInvalid,
                    Some(user),
                    format!(
                        "Secret {key} named by TLSOption {} {problem}, so Traefik cannot verify client certificates for host {}. Put the client CA bundle in the Secret under tls.ca or ca.crt.",
                        opt.key, ctx.host
                    ),
                ));
            }
        }
        if usable { mode } else { OptionMode::None }
    }
}

/// The TLSOption named `default` (Traefik's fallback for routers without options); the
/// first by namespace when several exist.
fn default_tls_option(objects: &dyn ObjectSource) -> Option<SharedObject> {
    objects
        .objects_of(&TLS_OPTION)
        .into_iter()
        .filter(|o| o.key().name == "default")
        .min_by(|a, b| a.key().cmp(b.key()))
}

impl Dialect for Traefik {
    fn keeps_annotation(&self, key: &str) -> bool {
        // The whole prefix: paerser matches the names after it case-insensitively.
        key.starts_with("traefik.ingress.kubernetes.io/")
    }

    fn kinds(&self) -> &'static [ObjectKind] {
        &KINDS
    }

    fn reduce(
        &self,
        kind: &ObjectKind,
        object: &serde_json::Value,
        default_namespace: &str,
    ) -> Result<SharedObject, ReduceError> {
        objects::reduce(kind, object, default_namespace)
    }

    fn host_table(&self, ctx: &HostContext<'_>) -> HostRouteTable {
        let mut table = HostRouteTable {
            host_key: ctx.host_key.to_string(),
            plain_http_hint: " (on an Ingress Traefik makes a router TLS only with the annotation traefik.ingress.kubernetes.io/router.tls: \"true\" or a router.tls.* annotation: spec.tls only provides certificates, and any other non-empty router.tls value, such as \"1\" or \"false\", makes it plain HTTP; on an IngressRoute, spec.tls; an entry point's static http.tls is not visible to mtls-gate)",
            ..Default::default()
        };
        let objects = ctx.objects;

        // IngressRoute routers that may serve the host.
        let ingress_routes = ingress_routes_for(objects, ctx.host);
        let mut routers: Vec<IngressRouteRouter<'_>> = Vec::new();
        for object in &ingress_routes {
            let Some(view) = object.as_any().downcast_ref::<IngressRouteView>() else {
                continue;
            };
            let source = RouteSource {
                kind: INGRESS_ROUTE_KIND,
                key: view.key.clone(),
            };
            for (i, route) in view.routes.iter().enumerate() {
                let analysed = route
                    .rule
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|r| rule::alternatives(r, ctx.host));
                let alternatives = match analysed {
                    Ok(alternatives) => alternatives,
                    Err(reason) => {
                        table.findings.push(ctx.finding(
                            ViolationCode::UnmodelledSetting,
                            Some(&view.key),
                            format!(
                                "IngressRoute {} spec.routes[{i}].match {:?} cannot be analysed by mtls-gate: {reason}. It is treated as able to serve every path of host {} (fail closed), and the host cannot be proven compliant. Fix: write the rule with Host, Path, PathPrefix, PathRegexp, &&, || and !.",
                                view.key, route.text, ctx.host
                            ),
                        ));
                        vec![rule::PathAlternative {
                            matcher: PathMatcher::Prefix("/".into()),
                            certain: false,
                        }]
                    }
                };
                if alternatives.is_empty() {
                    continue;
                }
                routers.push(IngressRouteRouter {
                    source: source.clone(),
                    view,
                    route,
                    alternatives,
                    tls: view.tls.is_some(),
                });
            }
        }

        // TLS option of every TLS router on the host (chosen by SNI: only routers whose rule
        // names the host in a Host matcher take part; the others get what the SNI resolves to).
        let mut options: BTreeMap<OptionRef, Vec<RouteSource>> = BTreeMap::new();
        for ing in &ctx.ingresses {
            if router_tls(ing) {
                options
                    .entry(option_ref(ing, objects))
                    .or_default()
                    .push(RouteSource::ingress(ing));
            }
        }
        // Every TLS router whose rule names the host takes part, even one that serves none of
        // its paths; a rule mtls-gate cannot parse takes part if its text names the host.
        let host_lower = ctx.host.to_ascii_lowercase();
        for object in &ingress_routes {
            let Some(view) = object.as_any().downcast_ref::<IngressRouteView>() else {
                continue;
            };
            let names_host = view.routes.iter().any(|route| match route.rule.as_deref() {
                Ok(r) => rule::names_host(r, ctx.host),
                Err(_) => {
                    let text = route.text.to_ascii_lowercase();
                    text.contains(&format!("`{host_lower}`"))
                        || text.contains(&format!("\"{host_lower}\""))
                }
            });
            if view.tls.is_some() && names_host {
                let source = RouteSource {
                    kind: INGRESS_ROUTE_KIND,
                    key: view.key.clone(),
                };
                let users = options
                    .entry(ingress_route_option(view, objects))
                    .or_default();
                if !users.contains(&source) {
                    users.push(source);
                }
            }
        }
        for (opt, users) in &options {
            if let OptionRef::Unresolved(name) = opt {
                for user in users {
                    let setting = if user.is_ingress() {
                        "router.tls.options"
                    } else {
                        "spec.tls.options"
                    };
                    table.findings.push(ctx.finding(
                        ViolationCode::TlsOptionInvalid,
                        Some(&user.key),
                        format!(
                            "{user} sets {setting} {name:?}, which names no TLSOption known here. Traefik cannot apply it, and its routers on host {} lose the intended client authentication. Create the TLSOption or fix the reference (<namespace>-<name>@kubernetescrd on an Ingress, name and namespace on an IngressRoute).",
                            ctx.host
                        ),
                    ));
                }
            }
        }
        let conflict = options.len() > 1;
        if conflict {
            let listing: Vec<String> = options
                .iter()
                .map(|(o, users)| {
                    format!(
                        "{} by {}",
                        o.name(),
                        users
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect();
            for users in options.values() {
                for user in users {
                    table.findings.push(ctx.finding(
                        ViolationCode::HostSettingsConflict,
                        Some(&user.key),
                        format!(
                            "Routers of host {} name different TLS options ({}). Traefik then applies the default TLS options to every router of the host, which normally request no client certificate (fail-open). Give every Ingress of the host the same router.tls.options (and every IngressRoute the same spec.tls.options).",
                            ctx.host,
                            listing.join("; ")
                        ),
                    ));
                }
            }
        }
        let effective = if conflict {
            OptionRef::Default
        } else {
            options.keys().next().cloned().unwrap_or(OptionRef::Default)
        };
        let first_user = options
            .get(&effective)
            .and_then(|u| u.first())
            .map(|s| s.key.clone());
        let (mode, description) = match &effective {
            OptionRef::Crd(key) => {
                match downcast_lookup::<TlsOptionView>(objects.object(&TLS_OPTION, key)) {
                    Lookup::Found(opt) => {
                        let user = first_user.clone().unwrap_or_else(|| key.clone());
                        (
                            self.mode_of(ctx, opt, &user, &mut table),
                            format!("TLSOption {key}"),
                        )
                    }
                    _ => (OptionMode::None, format!("TLSOption {key} (not found)")),
                }
            }
            OptionRef::Unresolved(name) => {
                (OptionMode::None, format!("unresolved TLS option {name}"))
            }
            OptionRef::Default => match default_tls_option(objects)
                .as_ref()
                .and_then(|o| o.as_any().downcast_ref::<TlsOptionView>())
            {
                Some(opt) => {
                    let user = first_user.clone().unwrap_or_else(|| opt.key.clone());
                    (
                        self.mode_of(ctx, opt, &user, &mut table),
                        format!("default TLS options ({})", opt.key),
                    )
                }
                None => (
                    OptionMode::None,
                    "default TLS options (no client certificate)".to_string(),
                ),
            },
        };
        let description = if conflict {
            format!("{description}, because of conflicting options")
        } else {
            description
        };
        table.client_auth = format!("{description}: {:?}", mode);

        for ing in &ctx.ingresses {
            table
                .findings
                .extend(unmodelled_router_annotations(ctx, ing));
        }
        let entry_points = host_entry_points(&ctx.ingresses, &routers);
        table
            .findings
            .extend(tcp_router_findings(ctx, entry_points.as_ref()));
        let gate = ctx.profile.gate_url();
        for ing in &ctx.ingresses {
            let tls = router_tls(ing);
            let chain = ingress_gate_chain(ing, objects, gate);
            let auth = route_auth(mode, tls, &description, &chain, &RouteSource::ingress(ing));
            let priority_override = ing
                .annotations
                .iter()
                .find(|(k, _)| same_router_key(k, PRIORITY))
                .map(|(_, v)| v.as_str())
                .and_then(|p| p.trim().parse::<i64>().ok())
                .filter(|p| *p != 0);
            for rule in ing.rules.iter().filter(|r| r.host == ctx.host_key) {
                for p in &rule.paths {
                    let (function, matcher) = match (
                        p.path_type,
                        router_annotation(ing, PATH_MATCHER).map(str::trim),
                    ) {
                        (PathType::Exact, _) | (PathType::ImplementationSpecific, Some("Path")) => {
                            ("Path", PathMatcher::Exact(p.path.clone()))
                        }
                        (PathType::ImplementationSpecific, Some("PathRegexp")) => {
                            ("PathRegexp", PathMatcher::go_regex(&p.path))
                        }
                        _ => ("PathPrefix", PathMatcher::Prefix(p.path.clone())),
                    };
                    let rule_text = if ctx.host_key.is_empty() {
                        format!("{function}(`{}`)", p.path)
                    } else {
                        format!("{} && {function}(`{}`)", rule_host(ctx.host_key), p.path)
                    };
                    table.routes.push(Arc::new(Route {
                        source: RouteSource::ingress(ing),
                        path: p.path.clone(),
                        path_type: p.path_type,
                        matcher,
                        serves_backend: true,
                        tls,
                        auth: auth.clone(),
                        priority: priority_override.unwrap_or(rule_text.len() as i64),
                    }));
                }
            }
            if ctx.host_key.is_empty() && ing.has_default_backend {
                table.routes.push(Arc::new(Route {
                    source: RouteSource::ingress(ing),
                    path: "/".into(),
                    path_type: PathType::Prefix,
                    matcher: PathMatcher::Prefix("/".into()),
                    serves_backend: true,
                    tls,
                    auth: auth.clone(),
                    priority: i64::from(i32::MIN),
                }));
            }
        }
        for router in &routers {
            let chain = route_gate_chain(router.view, router.route, objects, gate);
            let entry_points = if router.view.entry_points.is_empty() {
                "every default entry point".to_string()
            } else {
                format!("entry points {}", router.view.entry_points.join(", "))
            };
            let mut auth = route_auth(mode, router.tls, &description, &chain, &router.source);
            auth.detail = format!("{} ({entry_points})", auth.detail).into();
            for alternative in &router.alternatives {
                let path_type = match alternative.matcher {
                    PathMatcher::Exact(_) => PathType::Exact,
                    PathMatcher::Prefix(_) | PathMatcher::PrefixIgnoreCase(_) => PathType::Prefix,
                    PathMatcher::Regex(_) => PathType::ImplementationSpecific,
                };
                if !alternative.certain {
                    table.conditional.insert(table.routes.len());
                }
                table.routes.push(Arc::new(Route {
                    source: router.source.clone(),
                    path: router.route.text.clone(),
                    path_type,
                    matcher: alternative.matcher.clone(),
                    serves_backend: true,
                    tls: router.tls,
                    auth: auth.clone(),
                    priority: router.route.effective_priority(),
                }));
            }
        }
        table
    }

    /// TLS routers serve only TLS requests and the others only plain HTTP ones ("a TLS
    /// section ... instructs Traefik that the current router is dedicated to HTTPS requests
    /// only", routers docs), so each kind competes by priority among its own.
    fn winners(&self, table: &HostRouteTable, path: &str) -> Vec<usize> {
        let mut winners = Vec::new();
        for tls in [true, false] {
            let mut best: Option<i64> = None;
            let mut candidates = Vec::new();
            for (i, r) in table.routes.iter().enumerate() {
                if r.tls != tls {
                    continue;
                }
                // A route that matches only some requests of the path never shadows another.
                let result = match r.matcher.matches(path) {
                    MatchResult::Yes if table.conditional.contains(&i) => MatchResult::Maybe,
                    result => result,
                };
                match result {
                    MatchResult::Yes => {
                        best = Some(best.map_or(r.priority, |b| b.max(r.priority)));
                        candidates.push((i, r.priority));
                    }
                    MatchResult::Maybe => candidates.push((i, r.priority)),
                    MatchResult::No => {}
                }
            }
            winners.extend(
                candidates
                    .into_iter()
                    .filter(|(_, p)| best.is_none_or(|b| *p >= b))
                    .map(|(i, _)| i),
            );
        }
        winners.sort_unstable();
        winners
    }

    fn render(&self, input: &RenderInput<'_>) -> (AnnotationChanges, Vec<RenderedObject>) {
        let profile = input.profile;
        let ns = &input.ingress.key.namespace;
        let mut changes = AnnotationChanges::default();
        let mut objects = Vec::new();
        let names = RenderedNames::new(profile);
        let ours: BTreeSet<String> = names
            .all()
            .into_iter()
            .map(|n| format!("{ns}-{n}@kubernetescrd"))
            .collect();
        // User middlewares are kept after ours.
        let user_middlewares: Vec<String> = input
            .annotations
            .get(MIDDLEWARES)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && !ours.contains(*s))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut chain: Vec<String> = Vec::new();
        match input.role {
            HostRole::Tls => {
                if input
                    .annotations
                    .get(TLS_OPTIONS)
                    .is_some_and(|v| ours.contains(v.trim()))
                {
                    changes.remove.push(TLS_OPTIONS.to_string());
                }
            }
            HostRole::Mtls | HostRole::Mixed => {
                let (name, auth_type) = if input.role == HostRole::Mtls {
                    (&names.required, "RequireAndVerifyClientCert")
                } else {
                    (&names.optional, "VerifyClientCertIfGiven")
                };
                changes.set.insert(
                    TLS_OPTIONS.to_string(),
                    format!("{ns}-{name}@kubernetescrd"),
                );
                objects.push(tls_option(profile, ns, name, auth_type));
                let gated = input.role == HostRole::Mixed
                    && input.serves_mtls
                    && profile.gate_url().is_some();
                // A forwarded certificate header is only trustworthy if client-sent copies are
                // deleted first.
                if gated || profile.spec.client_certificate.pass_certificate_to_upstream {
                    objects.push(strip_header_middleware(profile, ns, &names.strip));
                    chain.push(format!("{ns}-{}@kubernetescrd", names.strip));
                    objects.push(pass_cert_middleware(profile, ns, &names.pass));
                    chain.push(format!("{ns}-{}@kubernetescrd", names.pass));
                }
                if let (true, Some(gate)) = (gated, profile.gate_url()) {
                    objects.push(gate_middleware(
                        profile,
                        ns,
                        &names.gate,
                        &gate_url_for(gate, CONTROLLER),
                    ));
                    chain.push(format!("{ns}-{}@kubernetescrd", names.gate));
                }
            }
        }
        chain.extend(user_middlewares.iter().cloned());
        let current = input.annotations.get(MIDDLEWARES).map(String::as_str);
        if chain.is_empty() {
            if current.is_some() && user_middlewares.is_empty() {
                changes.remove.push(MIDDLEWARES.to_string());
            } else if current.is_some() {
                changes
                    .set
                    .insert(MIDDLEWARES.to_string(), user_middlewares.join(","));
            }
        } else {
            changes.set.insert(MIDDLEWARES.to_string(), chain.join(","));
        }
        (changes, objects)
    }
}

fn route_auth(
    mode: OptionMode,
    tls: bool,
    option: &str,
    chain: &GateChain,
    source: &RouteSource,
) -> RouteAuth {
    let (kind, detail) = if !tls {
        (
            AuthKind::None,
            format!("{source} creates a router without TLS for this host"),
        )
    } else {
        match (mode, chain) {
            (OptionMode::RequireAndVerify, _) => (
                AuthKind::Required,
                format!("{option}: RequireAndVerifyClientCert"),
            ),
            (OptionMode::VerifyIfGiven, GateChain::Complete) => (
                AuthKind::RequiredByGate,
                format!(
                    "{option}: VerifyClientCertIfGiven; gate chain on {}",
                    source
                ),
            ),
            (_, GateChain::NeverPasses(why)) => (
                AuthKind::Rejected,
                format!("{option}; gate on {} can never pass: {why}", source),
            ),
            (_, GateChain::Forgeable(why)) => (
                AuthKind::None,
                format!("{option}; gate on {} can be forged: {why}", source),
            ),
            (OptionMode::VerifyIfGiven, GateChain::Absent) => (
                AuthKind::Optional,
                format!("{option}: VerifyClientCertIfGiven; {} has no gate", source),
            ),
            (OptionMode::RequireUnverified, _) => (
                AuthKind::RequiredUnverified,
                format!("{option}: RequireAnyClientCert does not verify the chain"),
            ),
            (OptionMode::RequestUnverified, _) => (
                AuthKind::OptionalUnverified,
                format!("{option}: RequestClientCert does not verify the chain"),
            ),
            (OptionMode::None, GateChain::Complete) => (
                AuthKind::Rejected,
                format!(
                    "{option}: no client certificate is requested, so the gate on {} rejects every request",
                    source
                ),
            ),
            (OptionMode::None, GateChain::Absent) => (
                AuthKind::None,
                format!("{option}: no client certificate requested"),
            ),
        }
    };
    RouteAuth {
        kind,
        detail: detail.into(),
    }
}

/// Names of the Traefik objects the renderer creates for a profile (per namespace).
pub struct RenderedNames {
    pub required: String,
    pub optional: String,
    pub strip: String,
    pub pass: String,
    pub gate: String,
}

impl RenderedNames {
    pub fn new(profile: &CompiledProfile) -> Self {
        let base = format!("mtls-gate-{}", profile.name);
        Self {
            required: format!("{base}-mtls-required"),
            optional: format!("{base}-mtls-optional"),
            strip: format!("{base}-strip-client-cert"),
            pass: format!("{base}-pass-client-cert"),
            gate: format!("{base}-gate"),
        }
    }
    fn all(&self) -> Vec<&str> {
        vec![
            &self.required,
            &self.optional,
            &self.strip,
            &self.pass,
            &self.gate,
        ]
    }
}

fn metadata(profile: &CompiledProfile, ns: &str, name: &str) -> serde_json::Value {
    json!({
        "name": name,
        "namespace": ns,
        "labels": {
            "app.kubernetes.io/managed-by": "mtls-gate",
            crate::model::PROFILE_LABEL: profile.name,
        }
    })
}

fn tls_option(
    profile: &CompiledProfile,
    ns: &str,
    name: &str,
    auth_type: &str,
) -> serde_json::Value {
    json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TLSOption",
        "metadata": metadata(profile, ns, name),
        "spec": {
            "minVersion": "VersionTLS12",
            "sniStrict": true,
            "clientAuth": {
                "secretNames": [profile.spec.client_certificate.ca_secret_name],
                "clientAuthType": auth_type,
            }
        }
    })
}

fn strip_header_middleware(profile: &CompiledProfile, ns: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": metadata(profile, ns, name),
        "spec": {"headers": {"customRequestHeaders": {CERT_HEADER: ""}}}
    })
}

fn pass_cert_middleware(profile: &CompiledProfile, ns: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": metadata(profile, ns, name),
        "spec": {"passTLSClientCert": {"pem": true}}
    })
}

fn gate_middleware(
    profile: &CompiledProfile,
    ns: &str,
    name: &str,
    address: &str,
) -> serde_json::Value {
    json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": metadata(profile, ns, name),
        "spec": {"forwardAuth": {
            "address": address,
            "trustForwardHeader": true,
            "authRequestHeaders": [CERT_HEADER],
        }}
    })
}
