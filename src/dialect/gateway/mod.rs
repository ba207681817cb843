//! Gateway API (`gateway.networking.k8s.io/v1`) with Envoy Gateway's `ClientTrafficPolicy`,
//! as the specification and Envoy Gateway v1.8 behave. Sources: kubernetes-sigs/gateway-api
//! v1.5 `apis/v1/gateway_types.go` and `apis/v1/httproute_types.go`, GEP-91
//! (`geps/gep-91/index.md`); envoyproxy/gateway v1.8.3 `api/v1alpha1/tls_types.go`,
//! `clienttrafficpolicy_types.go`, `internal/gatewayapi/clienttrafficpolicy.go`,
//! `helpers.go`; summarised in `reference/ingress-controllers.md` §4.2-4.3 and its
//! additions.
//!
//! * Listeners: a request for host `h` on port `p` is handled by the listener of the Gateway
//!   on `p` whose `hostname` matches `h` most specifically (exact, then the longest
//!   wildcard, then none). A wildcard `*.example.com` is a suffix match over one or more
//!   labels (`Listener.Hostname`). `HTTPS` listeners carry client certificates; `HTTP`
//!   listeners serve their routes in clear text (reported as `TlsMissing` on any port).
//!   Other protocols (TLS, TCP, UDP) on a profile host's port are not modelled (fail
//!   closed). An endpoint URL's port is part of the endpoint (design.md §10): HTTPS
//!   listeners count only on the ports of the profile's URLs for the host (443 if none).
//! * `allowedRoutes`: `namespaces.from` `Same` (default) or `All`; `Selector` is not
//!   modelled (the route is treated as attached, with an `UnmodelledSetting` finding);
//!   `kinds` that do not list `HTTPRoute` keep HTTPRoutes out.
//! * HTTPRoute `parentRefs`: group/kind default to `gateway.networking.k8s.io`/`Gateway`,
//!   namespace to the route's; `sectionName` names one listener, `port` restricts to the
//!   listeners on that port. Route `hostnames` intersect the listener's (`HTTPRoute.Hostnames`:
//!   non-matching route hostnames are ignored; no route hostnames = the listener's). The
//!   hostname precedence below is that of the intersection (Envoy Gateway builds one
//!   virtual host per intersected hostname), so on a listener with an exact hostname every
//!   attached route ranks the same by hostname.
//! * Matches: `Exact`; `PathPrefix` by path elements (`/abc` matches `/abc`, `/abc/`,
//!   `/abc/def`, not `/abcd`; a trailing `/` is ignored); `RegularExpression` as an RE2
//!   full match (Envoy `safe_regex`), analysed within the engine's budget or failing
//!   closed. Precedence (`HTTPRouteRule.Matches`, `HTTPRoute.Hostnames`): the most
//!   characters in a matching non-wildcard hostname, then in a matching hostname, then an
//!   `Exact` path, then the longest `PathPrefix`, then a method match, the most header
//!   matches, the most query matches; then the oldest route, then `{namespace}/{name}`
//!   alphabetically, then the first rule and match. A match that also tests a method,
//!   headers or query parameters may or may not apply to a request: it and the next
//!   routes are possible winners. The precedence of `RegularExpression` matches is
//!   implementation-specific: a regex route that may match is always a possible winner.
//! * Client certificates, Gateway API (GEP-91, standard since v1.5): `spec.tls.frontend.default`
//!   and `perPort[]` (a port's entry replaces the default); `validation.caCertificateRefs`
//!   (ConfigMap or Secret, key `ca.crt`); `mode: AllowValidOnly` (default: verified
//!   certificate required) or `AllowInsecureFallback` (Envoy Gateway maps it to `Request`:
//!   a presented certificate is not verified). Validation is per **port** because a
//!   connection established for one listener can be reused for another on the same port
//!   (GEP-91 "Connection coalescing security issue").
//! * Envoy Gateway `ClientTrafficPolicy` (`spec.tls.clientValidation`) targets a Gateway,
//!   or one listener with `sectionName`. A listener-targeted policy **replaces** the
//!   Gateway-wide one for that listener (settings are not merged), so a timeout-only
//!   listener policy drops client validation there. `mode`: `RequireAndVerify` (default),
//!   `VerifyIfGiven` (also the deprecated `optional: true`), `RequireAny`, `Request` (the
//!   last two never verify the chain). Two policies for the same target: Envoy Gateway
//!   keeps the oldest; reported as a conflict. `targetSelectors` are not modelled.
//!   A Gateway with both `spec.tls.frontend` and a `ClientTrafficPolicy` validation on one
//!   listener: which wins is not modelled (fail closed).
//! * Shared ports: on a Gateway port that serves an MTLS host, every HTTPS listener must
//!   require verified certificates; otherwise a connection opened for the other listener's
//!   host without a certificate can be reused for the MTLS host (connection coalescing).
//! * Cross-namespace CA references: a Gateway's `caCertificateRefs` to a ConfigMap or
//!   Secret in another namespace is valid only with a ReferenceGrant
//!   (`gateway.networking.k8s.io/v1beta1`) in that namespace whose `from` names
//!   `gateway.networking.k8s.io`/`Gateway` and the Gateway's namespace, and whose `to`
//!   names the kind (and the name, or none for every object of it); otherwise the
//!   listener's validation is invalid (GEP-91 `FrontendTLSValidation.CACertificateRefs`:
//!   ResolvedRefs False, RefNotPermitted) and counts as none. A ClientTrafficPolicy's CA
//!   reference never crosses namespaces in Envoy Gateway, grant or not
//!   (`clienttrafficpolicy.go` calls `validateSecretRef` with `allowCrossNamespace` false).
//!   ReferenceGrants that cannot be read count as absent (fail closed).
//! * Single-host layouts (MTLS and TLS endpoints on one host) are refused: Gateway API
//!   validates certificates per port or listener, never per route, and the Envoy Gateway
//!   `SecurityPolicy` ext-auth gate is not modelled. A SecurityPolicy (any of `extAuth`,
//!   `jwt`, `oidc`, `basicAuth`, `apiKeyAuth`, `authorization`, `cors`) that applies to a
//!   listener, Gateway or HTTPRoute serving an MTLS host whose handshake does not require
//!   a verified certificate is reported as `UnmodelledSetting`: it is never credited as
//!   the MTLS gate, so such hosts fail closed and the finding says why. Where the
//!   handshake already requires a verified certificate, a SecurityPolicy only acts on
//!   requests of connections that passed it (Envoy HTTP filters), so it cannot admit a
//!   client without one and is not reported.
//! * Not modelled, so reported when they touch a profile host: GRPCRoute, TLSRoute,
//!   TCPRoute attached to its listener; ListenerSet (standard since Gateway API v1.5) and
//!   XListenerSet (`gateway.networking.x-k8s.io`, v1.3-v1.4) listeners whose hostname may
//!   match the host (HTTPS ones on the ports of its endpoint URLs).
//! * Envoy Gateway merged Gateways, detected and refused: a GatewayClass (cluster-scoped)
//!   whose `spec.parametersRef` names an `EnvoyProxy` (`gateway.envoyproxy.io/v1alpha1`,
//!   namespaced, so the reference carries a namespace) with `spec.mergeGateways: true`
//!   "merge[s] all Gateway Listeners under the parent Gateway Class" onto one proxy fleet
//!   (envoyproxy/gateway `api/v1alpha1/envoyproxy_types.go` `MergeGateways`; Envoy Gateway
//!   docs, "Deployment Mode", merged Gateways). Listeners of other Gateways of the class can
//!   then share a port with the host's, and the per-port checks above (client validation,
//!   connection coalescing) would have to span Gateways, which they do not: a Gateway
//!   serving a profile host gets an `UnmodelledSetting`. So does a class whose
//!   `parametersRef` names an EnvoyProxy that does not exist, or names one without a
//!   namespace: Envoy Gateway then rejects the class (`InvalidParameters`,
//!   `internal/provider/kubernetes/controller.go` `processGatewayClassParamsRef`) and
//!   whether the proxy it will read merges Gateways is unknown. A Gateway whose class does
//!   not exist is programmed by no controller and is judged as it is (nothing merges), and
//!   `parametersRef` kinds of other implementations are not read. GatewayClasses or
//!   EnvoyProxies that cannot be read make every host of the profile fail closed
//!   (`ObjectsUnreadable`, as for every kind this dialect reads), which is why the chart
//!   grants `list`/`watch` on both; where the EnvoyProxy CRD is not installed (another
//!   Gateway API implementation) no EnvoyProxy exists and nothing is reported. Not read:
//!   the controller's own configuration file (`EnvoyGateway`), and a Gateway's
//!   `spec.infrastructure.parametersRef` (Envoy Gateway refuses `mergeGateways` there:
//!   "Customize EnvoyProxy" task).
//! * Admission after an HTTPRoute change (`patch.rs`): the host's table before the change
//!   is patched (the route's matches leave and are placed again by the precedence above)
//!   instead of rebuilt, unless a finding depends on which routes attach (SecurityPolicy,
//!   `allowedRoutes` by selector) or a version has a `RegularExpression` match;
//!   `tests/incremental_objects.rs` holds patched tables equal to tables built in full.
//! * Rendering (`render.rs`): a Gateway labelled `mtls-gate.io/profile` gets its frontend
//!   validation per port, at admission (mutating webhook), in `mtls-gate render`, and by the
//!   controller for existing Gateways (server-side apply of only those fields).
//!
//! Types: compact views over the JSON of only the fields read here, not the
//! `gateway-api` crate (it pins kube 4 / k8s-openapi 0.28 while this project is on kube 5 /
//! 0.29, and the engine reduces every object to a view anyway).

mod objects;
mod patch;
mod render;

use std::collections::BTreeSet;
use std::sync::Arc;

pub use self::objects::{
    CLIENT_TRAFFIC_POLICY, CONFIG_MAP, CaRef, ClientTrafficPolicyView, ClientValidation,
    ConfigMapView, ENVOY_GATEWAY_GROUP, ENVOY_PROXY, EnvoyProxyView, FrontendValidation, GATEWAY,
    GATEWAY_CLASS, GATEWAY_GROUP, GRPC_ROUTE, GatewayClassView, GatewayView, HTTP_ROUTE, HttpMatch,
    HttpPathType, HttpRouteView, KINDS, LISTENER_SET, Listener, ListenerSetView, OtherRouteView,
    ParametersRef, REFERENCE_GRANT, ReferenceGrantView, SECURITY_POLICY, SecurityPolicyView,
    TCP_ROUTE, TLS_ROUTE, X_LISTENER_SET,
};
pub use self::render::{
    GatewayRenderRefusal, carries, desired_frontend, render_gateway, with_rendering,
};
use super::{
    AnnotationChanges, AuthKind, Dialect, HostContext, HostRouteTable, ObjectKind, ReduceError,
    RenderInput, RenderedObject, Route, RouteAuth, RouteSource, SharedObject, TablePatch,
};
use crate::catalog::Scheme;
use crate::model::{CaBundle, Lookup, ObjectKey, PathType};
use crate::paths::{LiteralIndex, MatchResult, PathMatcher};
use crate::profile::CompiledProfile;
use crate::violation::{Violation, ViolationCode};

pub struct GatewayApi;

/// The route kind of [`RouteSource`]s of this dialect.
pub const HTTP_ROUTE_KIND: &str = "HTTPRoute";

/// How specifically a hostname matches a request host: (characters of a matching
/// non-wildcard hostname, characters of a matching hostname).
type Specificity = (usize, usize);

/// Whether the Gateway API hostname `pattern` (exact or `*.` suffix over one or more
/// labels) matches `host`.
fn hostname_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

fn specificity(pattern: Option<&str>) -> Specificity {
    match pattern {
        None => (0, 0),
        Some(p) if p.starts_with('*') => (0, p.len()),
        Some(p) => (p.len(), p.len()),
    }
}

/// The hostname a route serves `host` with on a listener (the intersection of the route's
/// and the listener's hostnames), or `None` if it does not serve `host` there.
fn route_specificity(
    route_hostnames: &[String],
    listener_hostname: Option<&str>,
    host: &str,
) -> Option<Specificity> {
    let listener = specificity(listener_hostname);
    if route_hostnames.is_empty() {
        return Some(listener);
    }
    route_hostnames
        .iter()
        .filter(|h| hostname_matches(h, host))
        .map(|h| specificity(Some(h)).max(listener))
        .max()
}

/// Rule host keys under which route objects that may serve `host` are indexed.
fn lookup_keys(host: &str) -> Vec<String> {
    let mut keys = vec![host.to_string()];
    let mut rest = host;
    while let Some((_, tail)) = rest.split_once('.') {
        keys.push(format!("*.{tail}"));
        rest = tail;
    }
    keys.push(String::new());
    keys
}

/// The ports of the profile's URLs on `host` (443 when a URL names none).
fn endpoint_ports(profile: &CompiledProfile, host: &str) -> BTreeSet<u16> {
    let urls = profile
        .endpoints
        .iter()
        .filter(|e| e.host == host)
        .map(|e| e.url.as_str())
        .chain(
            profile
                .unlisted
                .iter()
                .filter(|s| s.host == host)
                .map(|s| s.base_url.as_str()),
        );
    let mut ports: BTreeSet<u16> = urls
        .filter_map(|u| url::Url::parse(u).ok())
        .filter_map(|u| u.port_or_known_default())
        .collect();
    if ports.is_empty() {
        ports.insert(443);
    }
    ports
}

/// The schemes of the profile's endpoints on `host`: (serves MTLS, serves TLS).
fn host_schemes(profile: &CompiledProfile, host: &str) -> (bool, bool) {
    let schemes: BTreeSet<Scheme> = profile
        .endpoints
        .iter()
        .filter(|e| e.host == host && !e.default_alias)
        .map(|e| e.row.scheme)
        .chain(
            profile
                .unlisted
                .iter()
                .filter(|s| s.host == host)
                .map(|s| s.scheme),
        )
        .collect();
    (
        schemes.contains(&Scheme::Mtls),
        schemes.contains(&Scheme::Tls),
    )
}

/// The client authentication in effect on one listener, the findings about it, and what
/// decides it.
struct ListenerAuth {
    kind: AuthKind,
    detail: String,
    findings: Vec<(ViolationCode, ObjectKey, String)>,
}

fn listener_label(gw: &GatewayView, l: &Listener) -> String {
    format!(
        "Gateway {} listener {:?} ({} port {}{})",
        gw.key,
        l.name,
        l.protocol,
        l.port,
        l.hostname
            .as_deref()
            .map(|h| format!(", hostname {h}"))
            .unwrap_or_default()
    )
}

/// Whether `policy` targets `gw` (and which section).
fn targets_of<'a>(
    policy: &'a ClientTrafficPolicyView,
    gw: &GatewayView,
) -> impl Iterator<Item = Option<&'a str>> {
    let gw_key = gw.key.clone();
    policy
        .targets
        .iter()
        .filter(move |t| {
            policy.key.namespace == gw_key.namespace
                && t.group == GATEWAY_GROUP
                && t.kind == "Gateway"
                && t.name == gw_key.name
        })
        .map(|t| t.section_name.as_deref())
}

/// Oldest first (Envoy Gateway keeps the oldest of conflicting policies), then by key.
fn oldest<'a>(policies: &[&'a ClientTrafficPolicyView]) -> Option<&'a ClientTrafficPolicyView> {
    policies
        .iter()
        .min_by(|a, b| {
            a.created
                .unwrap_or(i64::MAX)
                .cmp(&b.created.unwrap_or(i64::MAX))
                .then_with(|| a.key.cmp(&b.key))
        })
        .copied()
}

/// Who refers to a CA bundle, for cross-namespace references.
#[derive(Clone, Copy)]
enum Referrer {
    /// A Gateway's `spec.tls.frontend`: valid across namespaces only with a ReferenceGrant
    /// in the CA's namespace (GEP-91 `FrontendTLSValidation.CACertificateRefs`).
    Gateway,
    /// A ClientTrafficPolicy: Envoy Gateway never allows it (`validateSecretRef` with
    /// `allowCrossNamespace` false in `clienttrafficpolicy.go`).
    ClientTrafficPolicy,
}

/// Whether a ReferenceGrant in `ca`'s namespace lets Gateways of `from_namespace` refer to
/// the `kind` (ConfigMap or Secret) `ca`. `None` when ReferenceGrants cannot be read.
fn granted(ctx: &HostContext<'_>, from_namespace: &str, kind: &str, ca: &ObjectKey) -> bool {
    ctx.objects
        .objects_of(&REFERENCE_GRANT)
        .iter()
        .filter_map(|o| o.as_any().downcast_ref::<ReferenceGrantView>())
        .any(|g| g.permits((GATEWAY_GROUP, "Gateway", from_namespace), ("", kind, ca)))
}

/// Checks CA references; returns problems as findings (empty: usable or unknown).
fn check_ca_refs(
    ctx: &HostContext<'_>,
    refs: &[CaRef],
    owner: &ObjectKey,
    owner_text: &str,
    referrer: Referrer,
    findings: &mut Vec<(ViolationCode, ObjectKey, String)>,
) -> bool {
    if refs.is_empty() {
        findings.push((
            ViolationCode::CaSecretInvalid,
            owner.clone(),
            format!(
                "{owner_text} validates client certificates but names no CA (caCertificateRefs), so it cannot verify any. Reference the ConfigMap holding the client CA bundle under ca.crt."
            ),
        ));
        return false;
    }
    let mut usable = true;
    for r in refs {
        let namespace = r.namespace.as_deref().unwrap_or(&owner.namespace);
        let key = ObjectKey::new(namespace, &r.name);
        if namespace != owner.namespace {
            let refused = match referrer {
                Referrer::ClientTrafficPolicy => Some(format!(
                    "{owner_text} references CA {} {key} in another namespace; Envoy Gateway does not allow cross-namespace CA references from a ClientTrafficPolicy (not even with a ReferenceGrant) and rejects the policy, so client certificates are not validated there. Keep the CA {} in the namespace {}.",
                    r.kind, r.kind, owner.namespace
                )),
                Referrer::Gateway if !granted(ctx, &owner.namespace, &r.kind, &key) => {
                    Some(format!(
                        "{owner_text} references CA {} {key} in another namespace, and no ReferenceGrant in namespace {namespace} lets Gateways of namespace {} refer to it; the reference is invalid (GEP-91: ResolvedRefs False, RefNotPermitted), so client certificates are not validated there. Add a ReferenceGrant (from: group {GATEWAY_GROUP}, kind Gateway, namespace {}; to: group \"\", kind {}, name {}) in namespace {namespace}, or keep the CA in namespace {}.",
                        r.kind, owner.namespace, owner.namespace, r.kind, r.name, owner.namespace
                    ))
                }
                Referrer::Gateway => None,
            };
            if let Some(message) = refused {
                findings.push((ViolationCode::CaSecretInvalid, owner.clone(), message));
                usable = false;
                continue;
            }
        }
        let bundle: Result<Option<CaBundle>, String> = match (r.group.as_str(), r.kind.as_str()) {
            ("", "ConfigMap") => {
                match super::downcast_lookup::<ConfigMapView>(ctx.objects.object(&CONFIG_MAP, &key))
                {
                    Lookup::Found(cm) => Ok(cm.ca_crt.clone()),
                    Lookup::Missing => Err("does not exist".into()),
                    Lookup::Unknown => continue,
                }
            }
            ("", "Secret") => match ctx.objects.secret(&key) {
                Lookup::Found(s) => Ok(s.bundle("ca.crt").cloned()),
                Lookup::Missing => Err("does not exist".into()),
                Lookup::Unknown => continue,
            },
            (group, kind) => Err(format!(
                "is of kind {kind}{} , which is not a CA bundle kind (ConfigMap or Secret)",
                if group.is_empty() {
                    String::new()
                } else {
                    format!(".{group}")
                }
            )),
        };
        let problem = match bundle {
            Ok(Some(CaBundle::Certificates { .. })) => continue,
            Ok(Some(CaBundle::Invalid { reason })) => format!("has a ca.crt that {reason}"),
            Ok(None) => "has no ca.crt key".to_string(),
            Err(problem) => problem,
        };
        usable = false;
        findings.push((
            ViolationCode::CaSecretInvalid,
            owner.clone(),
            format!(
                "CA {} {key} referenced by {owner_text} {problem}, so client certificates cannot be verified there. Put the client CA bundle (PEM) under ca.crt.",
                r.kind
            ),
        ));
    }
    usable
}

/// Client auth of an HTTPS listener: `spec.tls.frontend` of its Gateway (per port) and the
/// Envoy Gateway ClientTrafficPolicy that applies to it.
fn listener_auth(
    ctx: &HostContext<'_>,
    gw: &GatewayView,
    l: &Listener,
    policies: &[&ClientTrafficPolicyView],
) -> ListenerAuth {
    let label = listener_label(gw, l);
    let mut findings = Vec::new();
    let frontend = match gw.frontend_per_port.iter().find(|(p, _)| *p == l.port) {
        Some((_, v)) => v
            .as_ref()
            .map(|v| (v, format!("spec.tls.frontend.perPort (port {})", l.port))),
        None => gw
            .frontend_default
            .as_ref()
            .map(|v| (v, "spec.tls.frontend.default".to_string())),
    };
    let mut section = Vec::new();
    let mut gateway_wide = Vec::new();
    for p in policies {
        for target in targets_of(p, gw) {
            match target {
                Some(s) if s == l.name => section.push(*p),
                Some(_) => {}
                None => gateway_wide.push(*p),
            }
        }
    }
    for (level, list) in [("listener", &section), ("Gateway", &gateway_wide)] {
        if list.len() > 1 {
            let names: Vec<String> = list.iter().map(|p| p.key.to_string()).collect();
            findings.push((
                ViolationCode::HostSettingsConflict,
                gw.key.clone(),
                format!(
                    "ClientTrafficPolicies {} all target {label} at the {level} level; Envoy Gateway applies only the oldest and rejects the others. Keep one policy per target.",
                    names.join(", ")
                ),
            ));
        }
    }
    let chosen_section = oldest(&section);
    let chosen = chosen_section.or_else(|| oldest(&gateway_wide));
    let replaced = match (chosen_section, oldest(&gateway_wide)) {
        (Some(s), Some(g)) => format!(
            "; ClientTrafficPolicy {} targets this listener and replaces the Gateway-wide {} (Envoy Gateway does not merge them)",
            s.key, g.key
        ),
        _ => String::new(),
    };
    let policy_validation = chosen.and_then(|p| p.client_validation.as_ref().map(|v| (p, v)));

    let (kind, detail) = match (frontend, policy_validation) {
        (None, None) => (
            AuthKind::None,
            format!(
                "{label}: no client certificate validation ({}{}){replaced}",
                if gw.frontend_per_port.iter().any(|(p, _)| *p == l.port) {
                    format!(
                        "spec.tls.frontend.perPort (port {}) has no validation and replaces the default",
                        l.port
                    )
                } else {
                    "no spec.tls.frontend validation".to_string()
                },
                match chosen {
                    Some(p) => format!(
                        ", ClientTrafficPolicy {} without tls.clientValidation",
                        p.key
                    ),
                    None => ", no ClientTrafficPolicy".to_string(),
                }
            ),
        ),
        (Some((v, field)), other) => {
            if let Some((p, _)) = other {
                findings.push((
                    ViolationCode::UnmodelledSetting,
                    gw.key.clone(),
                    format!(
                        "{label} has client validation both in the Gateway's {field} and in ClientTrafficPolicy {}; which one Envoy Gateway applies is not modelled, so the listener's client authentication cannot be proven. Configure it in one place.",
                        p.key
                    ),
                ));
            }
            let owner = format!("Gateway {} {field}", gw.key);
            let kind = match v.mode.as_str() {
                "AllowValidOnly" => AuthKind::Required,
                "AllowInsecureFallback" => AuthKind::OptionalUnverified,
                other => {
                    findings.push((
                        ViolationCode::UnmodelledSetting,
                        gw.key.clone(),
                        format!("{owner} has validation mode {other:?}, which is not a Gateway API mode (AllowValidOnly, AllowInsecureFallback)."),
                    ));
                    AuthKind::None
                }
            };
            let usable = check_ca_refs(
                ctx,
                &v.ca_refs,
                &gw.key,
                &owner,
                Referrer::Gateway,
                &mut findings,
            );
            (
                if usable { kind } else { AuthKind::None },
                format!(
                    "{label}: {field} validation mode {}{} (applies to every listener on port {}){replaced}",
                    v.mode,
                    if v.mode == "AllowInsecureFallback" {
                        ", which Envoy Gateway maps to Request: a presented certificate is not verified"
                    } else {
                        ""
                    },
                    l.port
                ),
            )
        }
        (None, Some((p, v))) => {
            let mode = v.mode.clone().unwrap_or_else(|| {
                if v.optional {
                    "VerifyIfGiven".into()
                } else {
                    "RequireAndVerify".into()
                }
            });
            let owner = format!("ClientTrafficPolicy {}", p.key);
            let kind = match mode.as_str() {
                "RequireAndVerify" => AuthKind::Required,
                "VerifyIfGiven" => AuthKind::Optional,
                "RequireAny" => AuthKind::RequiredUnverified,
                "Request" => AuthKind::OptionalUnverified,
                other => {
                    findings.push((
                        ViolationCode::UnmodelledSetting,
                        p.key.clone(),
                        format!("{owner} has clientValidation mode {other:?}, which Envoy Gateway does not define (RequireAndVerify, VerifyIfGiven, RequireAny, Request)."),
                    ));
                    AuthKind::None
                }
            };
            let verifies = matches!(kind, AuthKind::Required | AuthKind::Optional);
            let usable = !verifies
                || check_ca_refs(
                    ctx,
                    &v.ca_refs,
                    &p.key,
                    &owner,
                    Referrer::ClientTrafficPolicy,
                    &mut findings,
                );
            (
                if usable { kind } else { AuthKind::None },
                format!("{label}: {owner} clientValidation mode {mode}{replaced}"),
            )
        }
    };
    ListenerAuth {
        kind,
        detail,
        findings,
    }
}

/// One route match, before ordering.
struct Candidate<'a> {
    route: &'a HttpRouteView,
    /// The route's place in key order (`{namespace}/{name}`), the last-but-two tie-break.
    route_rank: usize,
    rule: usize,
    matched: usize,
    m: &'a HttpMatch,
    specificity: Specificity,
    redirects: bool,
}

/// The Gateway API precedence of a match within its listener group (smaller wins): see
/// [`Candidate::precedence_key`].
type PrecedenceKey = (PrecedencePrefix, usize, usize, usize);

/// The precedence of a match up to its route's rank: hostname, path, method, headers,
/// query parameters, creation time.
type PrecedencePrefix = (
    std::cmp::Reverse<Specificity>,
    u8,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<bool>,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
    i64,
);

impl Candidate<'_> {
    /// The Gateway API precedence key of this match (smaller wins), computed once per match
    /// before sorting: plain integers, so that comparisons neither allocate nor compare
    /// strings (the route's `{namespace}/{name}` order is its rank).
    fn precedence_key(&self) -> PrecedenceKey {
        let class = match self.m.path_type {
            HttpPathType::Exact => 0,
            HttpPathType::PathPrefix => 1,
            HttpPathType::RegularExpression => 2,
        };
        (
            (
                std::cmp::Reverse(self.specificity),
                class,
                std::cmp::Reverse(self.m.path.trim_end_matches('/').len()),
                std::cmp::Reverse(self.m.has_method),
                std::cmp::Reverse(self.m.headers),
                std::cmp::Reverse(self.m.query_params),
                self.route.created.unwrap_or(i64::MAX),
            ),
            self.route_rank,
            self.rule,
            self.matched,
        )
    }
}

/// The table routes of one match (one per matcher): `label` names the listener when the
/// route serves the host through several listener groups.
fn candidate_routes<'c>(
    c: &'c Candidate<'_>,
    group: usize,
    tls: bool,
    auth: &'c (AuthKind, Arc<str>),
    label: Option<&str>,
) -> impl Iterator<Item = Arc<Route>> + 'c {
    let path = match label {
        Some(label) => format!("{} [{label}]", c.m.path),
        None => c.m.path.clone(),
    };
    let source = RouteSource {
        kind: HTTP_ROUTE_KIND,
        key: c.route.key.clone(),
    };
    matchers(c.m).map(move |matcher| {
        Arc::new(Route {
            source: source.clone(),
            path: path.clone(),
            path_type: match c.m.path_type {
                HttpPathType::Exact => PathType::Exact,
                HttpPathType::PathPrefix => PathType::Prefix,
                HttpPathType::RegularExpression => PathType::ImplementationSpecific,
            },
            matcher,
            serves_backend: !c.redirects,
            tls,
            auth: RouteAuth {
                kind: auth.0,
                detail: auth.1.clone(),
            },
            priority: priority(group, c.m.conditional()),
        })
    })
}

/// The request matchers of one `HTTPPathMatch` (one or two: a `PathPrefix` matches its
/// path and what lies below it).
fn matchers(m: &HttpMatch) -> impl Iterator<Item = PathMatcher> {
    let (first, second) = match m.path_type {
        HttpPathType::Exact => (PathMatcher::Exact(m.path.clone()), None),
        HttpPathType::PathPrefix => {
            let p = m.path.trim_end_matches('/');
            if p.is_empty() {
                (PathMatcher::Prefix("/".into()), None)
            } else {
                (
                    PathMatcher::Exact(p.to_string()),
                    Some(PathMatcher::Prefix(format!("{p}/"))),
                )
            }
        }
        HttpPathType::RegularExpression => {
            (PathMatcher::go_regex(&format!("^(?:{})$", m.path)), None)
        }
    };
    std::iter::once(first).chain(second)
}

/// The routes among `candidates` (ascending indices, a superset of the routes that may
/// match `path`) that may serve `path`. Routes are in precedence order within each listener
/// group; a group is decided by its first unconditional literal match. Regex matches may
/// win wherever they match.
fn winners_among(
    table: &HostRouteTable,
    path: &str,
    candidates: impl IntoIterator<Item = usize>,
) -> Vec<usize> {
    let mut decided: BTreeSet<i64> = BTreeSet::new();
    let mut out = Vec::new();
    for i in candidates {
        let route = &table.routes[i];
        let group = route.priority / 2;
        let conditional = route.priority % 2 == 1;
        let regex = matches!(route.matcher, PathMatcher::Regex(_));
        if decided.contains(&group) && !regex {
            continue;
        }
        match route.matcher.matches(path) {
            MatchResult::No => {}
            MatchResult::Maybe => out.push(i),
            MatchResult::Yes => {
                out.push(i);
                if !conditional && !regex {
                    decided.insert(group);
                }
            }
        }
    }
    out
}

/// `Route::priority` of this dialect: the listener group (one Gateway port) × 2, plus 1 if
/// the match also tests a method, headers or query parameters.
fn priority(group: usize, conditional: bool) -> i64 {
    i64::try_from(group).unwrap_or(i64::MAX / 4) * 2 + i64::from(conditional)
}

fn route_allowed(gw: &GatewayView, l: &Listener, route: &HttpRouteView) -> Option<bool> {
    if !l.allowed_kinds.is_empty() && !l.allowed_kinds.iter().any(|k| k == HTTP_ROUTE_KIND) {
        return Some(false);
    }
    match l.allowed_from.as_str() {
        "Same" => Some(route.key.namespace == gw.key.namespace),
        "All" => Some(true),
        // Selector (or an unknown value): cannot be decided here.
        _ => None,
    }
}

fn attaches(refs: &[objects::ParentRef], route_ns: &str, gw: &GatewayView, l: &Listener) -> bool {
    refs.iter().any(|r| {
        r.group == GATEWAY_GROUP
            && r.kind == "Gateway"
            && r.namespace.as_deref().unwrap_or(route_ns) == gw.key.namespace
            && r.name == gw.key.name
            && r.section_name.as_deref().is_none_or(|s| s == l.name)
            && r.port.is_none_or(|p| p == l.port)
    })
}

/// Whether and how an HTTPRoute serves `host` through listener `l` of `gw`.
enum Attachment {
    /// Not attached, not allowed, or none of its hostnames matches.
    None,
    /// Attached, serving the host with this hostname precedence.
    Attached(Specificity),
    /// Attached by a rule mtls-gate does not model (`allowedRoutes` by selector): treated
    /// as attached, with a finding; `None` if its hostnames do not match.
    Undecided(Option<Specificity>),
}

fn attachment(gw: &GatewayView, l: &Listener, route: &HttpRouteView, host: &str) -> Attachment {
    if !attaches(&route.parent_refs, &route.key.namespace, gw, l) {
        return Attachment::None;
    }
    let spec = route_specificity(&route.hostnames, l.hostname.as_deref(), host);
    match (route_allowed(gw, l, route), spec) {
        (Some(false), _) | (Some(true), None) => Attachment::None,
        (Some(true), Some(spec)) => Attachment::Attached(spec),
        (None, spec) => Attachment::Undecided(spec),
    }
}

impl Dialect for GatewayApi {
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
        let host = ctx.host;
        let mut table = HostRouteTable {
            host_key: host.to_string(),
            plain_http_hint: " (an HTTP listener of the Gateway attaches the HTTPRoute)",
            ..Default::default()
        };
        let finding = |code, key: &ObjectKey, message: String| -> Violation {
            ctx.finding(code, Some(key), message)
        };
        let ports = endpoint_ports(ctx.profile, host);
        let (serves_mtls, serves_tls) = host_schemes(ctx.profile, host);

        let gateway_objects = ctx.objects.objects_of(&GATEWAY);
        let mut gateways: Vec<(&GatewayView, &SharedObject)> = gateway_objects
            .iter()
            .filter_map(|o| Some((o.as_any().downcast_ref::<GatewayView>()?, o)))
            .filter(|(g, _)| ctx.profile.considers_gateway_class(&g.class))
            .collect();
        gateways.sort_by(|(a, _), (b, _)| a.key.cmp(&b.key));
        let policy_objects = ctx.objects.objects_of(&CLIENT_TRAFFIC_POLICY);
        let policies: Vec<&ClientTrafficPolicyView> = policy_objects
            .iter()
            .filter_map(|o| o.as_any().downcast_ref::<ClientTrafficPolicyView>())
            .collect();

        // Route objects that may serve the host (an object with several hostnames can be
        // filed under several lookup keys).
        let route_objects: Vec<SharedObject> = lookup_keys(host)
            .iter()
            .flat_map(|key| ctx.objects.routes_for_host(key))
            .filter(|(kind, _)| KINDS.contains(kind))
            .map(|(_, object)| object)
            .collect();
        // Once each, in `{namespace}/{name}` order: a route's index is then its rank in the
        // last tie-breaks of the precedence.
        let mut http_routes: Vec<&HttpRouteView> = route_objects
            .iter()
            .filter_map(|o| o.as_any().downcast_ref::<HttpRouteView>())
            .collect();
        http_routes.sort_by(|a, b| a.key.cmp(&b.key));
        http_routes.dedup_by(|a, b| a.key == b.key);
        let mut other_routes: Vec<&OtherRouteView> = route_objects
            .iter()
            .filter_map(|o| o.as_any().downcast_ref::<OtherRouteView>())
            .collect();
        other_routes.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        other_routes.dedup_by(|a, b| (a.kind, &a.key) == (b.kind, &b.key));

        let security_objects = ctx.objects.objects_of(&SECURITY_POLICY);
        let security_policies: Vec<&SecurityPolicyView> = security_objects
            .iter()
            .filter_map(|o| o.as_any().downcast_ref::<SecurityPolicyView>())
            .collect();
        listener_set_findings(ctx, &ports, &mut table);

        if serves_mtls && serves_tls {
            table.findings.push(ctx.finding(
                ViolationCode::UnmodelledSetting,
                None,
                format!(
                    "Host {host} serves both MTLS and TLS endpoints of profile {}. With gateway-api, client certificates are validated per port (spec.tls.frontend) or per listener (ClientTrafficPolicy), never per route, so one host cannot require certificates on its MTLS paths only; the Envoy Gateway SecurityPolicy ext-auth gate that could do it is not modelled by mtls-gate. Fix: split hosts (MTLS endpoints on their own host, RFC 8705 mtls_endpoint_aliases).",
                    ctx.profile.name
                ),
            ));
        }

        let mut summaries = Vec::new();
        let mut candidates: Vec<((usize, PrecedenceKey), bool, ListenerAuthRef, Candidate<'_>)> =
            Vec::new();
        let mut auths: Vec<(AuthKind, Arc<str>)> = Vec::new();
        let mut listeners: Vec<String> = Vec::new();
        let mut group = 0usize;
        // What a patch after an HTTPRoute change needs (`patch.rs`); findings that depend
        // on which routes attach keep every change from being patched.
        let mut patch_groups: Vec<patch::ListenerGroup> = Vec::new();
        let mut patchable = security_policies.is_empty();
        for &(gw, gateway_object) in &gateways {
            let listener_ports: BTreeSet<u16> = gw.listeners.iter().map(|l| l.port).collect();
            let mut serving_ports: BTreeSet<u16> = BTreeSet::new();
            for port in listener_ports {
                let on_port: Vec<&Listener> =
                    gw.listeners.iter().filter(|l| l.port == port).collect();
                let serving: Vec<&Listener> = on_port
                    .iter()
                    .copied()
                    .filter(|l| {
                        l.hostname
                            .as_deref()
                            .is_none_or(|h| hostname_matches(h, host))
                    })
                    .collect();
                let Some(best) = serving
                    .iter()
                    .map(|l| specificity(l.hostname.as_deref()))
                    .max()
                else {
                    continue;
                };
                for l in serving
                    .into_iter()
                    .filter(|l| specificity(l.hostname.as_deref()) == best)
                {
                    let tls = match l.protocol.as_str() {
                        "HTTPS" if ports.contains(&port) => true,
                        "HTTPS" => continue,
                        "HTTP" => false,
                        other => {
                            if ports.contains(&port) {
                                table.findings.push(finding(
                                    ViolationCode::UnmodelledSetting,
                                    &gw.key,
                                    format!(
                                        "{} serves host {host} with protocol {other:?}, which mtls-gate does not model (only HTTP and HTTPS listeners with HTTPRoutes), so the host cannot be proven compliant. Serve {host} from an HTTPS listener.",
                                        listener_label(gw, l)
                                    ),
                                ));
                            }
                            continue;
                        }
                    };
                    group += 1;
                    serving_ports.insert(port);
                    let auth = if tls {
                        let auth = listener_auth(ctx, gw, l, &policies);
                        for (code, key, message) in &auth.findings {
                            table.findings.push(finding(*code, key, message.clone()));
                        }
                        if serves_mtls && auth.kind.requires_verified_certificate() {
                            coalescing_findings(ctx, gw, l, &on_port, &policies, &mut table);
                        }
                        (auth.kind, Arc::<str>::from(auth.detail))
                    } else {
                        (
                            AuthKind::None,
                            Arc::from(format!(
                                "{}: plain HTTP, no TLS and no client certificates",
                                listener_label(gw, l)
                            )),
                        )
                    };
                    summaries.push(auth.1.to_string());
                    auths.push(auth);
                    listeners.push(format!("Gateway {} listener {}", gw.key, l.name));
                    let auth_index = auths.len() - 1;
                    patch_groups.push(patch::ListenerGroup {
                        gateway: Arc::clone(gateway_object),
                        listener: gw
                            .listeners
                            .iter()
                            .position(|x| std::ptr::eq(x, l))
                            .unwrap_or(usize::MAX),
                        group,
                        tls,
                        auth_index,
                    });
                    patchable &= l.allowed_from == "Same" || l.allowed_from == "All";
                    if gw.policies_with_selectors(&policies).next().is_some() {
                        table.findings.push(finding(
                            ViolationCode::UnmodelledSetting,
                            &gw.key,
                            format!(
                                "A ClientTrafficPolicy in namespace {} chooses its targets with targetSelectors, which mtls-gate does not model; it may change client validation of {}. Use targetRefs.",
                                gw.key.namespace,
                                listener_label(gw, l)
                            ),
                        ));
                    }
                    for other in &other_routes {
                        if attaches(&other.parent_refs, &other.key.namespace, gw, l)
                            && route_specificity(&other.hostnames, l.hostname.as_deref(), host)
                                .is_some()
                        {
                            table.findings.push(finding(
                                ViolationCode::UnmodelledSetting,
                                &other.key,
                                format!(
                                    "{} {} attaches to {} and may serve host {host}; mtls-gate models only HTTPRoutes, so the host cannot be proven compliant. Serve other protocols from another host or listener.",
                                    other.kind,
                                    other.key,
                                    listener_label(gw, l)
                                ),
                            ));
                        }
                    }
                    let mut attached: Vec<&ObjectKey> = Vec::new();
                    for (route_rank, route) in http_routes.iter().copied().enumerate() {
                        let spec = match attachment(gw, l, route, host) {
                            Attachment::None => continue,
                            Attachment::Attached(spec) => spec,
                            Attachment::Undecided(spec) => {
                                table.findings.push(finding(
                                ViolationCode::UnmodelledSetting,
                                &route.key,
                                format!(
                                    "{} admits routes by allowedRoutes.namespaces.from {:?}, which mtls-gate does not model; HTTPRoute {} is treated as attached. Use From: Same or All.",
                                    listener_label(gw, l),
                                    l.allowed_from,
                                    route.key
                                ),
                                ));
                                match spec {
                                    Some(spec) => spec,
                                    None => continue,
                                }
                            }
                        };
                        attached.push(&route.key);
                        for (ri, rule) in route.rules.iter().enumerate() {
                            for (mi, m) in rule.matches.iter().enumerate() {
                                let candidate = Candidate {
                                    route,
                                    route_rank,
                                    rule: ri,
                                    matched: mi,
                                    m,
                                    specificity: spec,
                                    redirects: rule.redirects,
                                };
                                candidates.push((
                                    (group, candidate.precedence_key()),
                                    tls,
                                    auth_index,
                                    candidate,
                                ));
                            }
                        }
                    }
                    if serves_mtls && !auths[auth_index].0.requires_verified_certificate() {
                        for sp in &security_policies {
                            if let Some(what) = security_policy_reach(sp, gw, l, &attached) {
                                table.findings.push(finding(
                                    ViolationCode::UnmodelledSetting,
                                    &sp.key,
                                    format!(
                                        "SecurityPolicy {} ({}) applies to {what}, which serves MTLS host {host} without requiring a verified client certificate in the TLS handshake (client auth {}). mtls-gate does not model SecurityPolicy, its extAuth gate included, so it is not credited with requiring certificates and the host fails closed. Require verified certificates at the handshake (spec.tls.frontend mode AllowValidOnly, or a ClientTrafficPolicy with RequireAndVerify) on a port that serves only MTLS hosts (split host).",
                                        sp.key,
                                        if sp.features.is_empty() {
                                            "no gate set".to_string()
                                        } else {
                                            sp.features.join(", ")
                                        },
                                        auths[auth_index].0.as_str(),
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            if !serving_ports.is_empty() {
                merged_gateways_findings(ctx, gw, &serving_ports, &mut table);
            }
        }
        // Keys are unique (group, route, rule, match), so an unstable sort is deterministic.
        candidates.sort_unstable_by_key(|c| c.0);
        // The engine reports a route's path once per target; a route attached to several
        // listeners that serve the host (with different client auth) names the listener.
        // Per route rank: its first listener group, and whether it has more than one.
        let mut groups_of: Vec<Option<(usize, bool)>> = vec![None; http_routes.len()];
        for ((group, _), _, _, c) in &candidates {
            let seen = &mut groups_of[c.route_rank];
            *seen = match *seen {
                None => Some((*group, false)),
                Some((first, several)) => Some((first, several || first != *group)),
            };
        }
        let mut orders = Vec::new();
        for ((group, key), tls, auth_index, c) in &candidates {
            let several = groups_of[c.route_rank].is_some_and(|(_, several)| several);
            let label = several.then(|| listeners[*auth_index].as_str());
            for (sub, route) in
                candidate_routes(c, *group, *tls, &auths[*auth_index], label).enumerate()
            {
                table.routes.push(route);
                if ctx.keep_patch_state {
                    orders.push(patch::RouteOrder::new(*group, key, c, sub));
                }
            }
        }
        if ctx.keep_patch_state && patchable {
            table.patch_state = Some(Arc::new(patch::PatchState::new(
                patch_groups,
                auths,
                listeners,
                orders,
            )));
        }
        table.client_auth = if summaries.is_empty() {
            "no Gateway listener serves this host".into()
        } else {
            summaries.join("; ")
        };
        table
    }

    fn patched_object_table(
        &self,
        host: &str,
        before: &HostRouteTable,
        kind: &ObjectKind,
        old: Option<&SharedObject>,
        new: Option<&SharedObject>,
    ) -> Option<TablePatch> {
        if *kind != HTTP_ROUTE {
            return None;
        }
        patch::patch(host, before, old, new)
    }

    fn winners(&self, table: &HostRouteTable, path: &str) -> Vec<usize> {
        let index = table
            .winners_index
            .get_or_init(|| Arc::new(LiteralIndex::new(table.routes.iter().map(|r| &r.matcher))));
        if let Some(index) = index.downcast_ref::<LiteralIndex>() {
            return winners_among(table, path, index.candidates(path));
        }
        match index
            .downcast_ref::<patch::PatchedIndex>()
            .and_then(|index| index.candidates(path))
        {
            Some(candidates) => winners_among(table, path, candidates),
            None => winners_among(table, path, 0..table.routes.len()),
        }
    }

    fn render(&self, _input: &RenderInput<'_>) -> (AnnotationChanges, Vec<RenderedObject>) {
        // Gateway API objects are not Ingresses: nothing is written onto an Ingress. The
        // frontend validation of a labelled Gateway is rendered by `render_object`.
        (AnnotationChanges::default(), Vec::new())
    }

    fn render_object(
        &self,
        profile: &CompiledProfile,
        kind: &ObjectKind,
        object: &SharedObject,
    ) -> Result<Option<serde_json::Value>, String> {
        let Some(gateway) = rendered_kind(kind, object) else {
            return Ok(None);
        };
        let desired = desired_frontend(profile, gateway).map_err(refusal_text)?;
        if carries(gateway, &desired) {
            return Ok(None);
        }
        render_gateway(profile, gateway)
            .map(Some)
            .map_err(refusal_text)
    }

    fn rendered_view(
        &self,
        profile: &CompiledProfile,
        kind: &ObjectKind,
        object: &SharedObject,
    ) -> Option<SharedObject> {
        let gateway = rendered_kind(kind, object)?;
        let desired = desired_frontend(profile, gateway).ok()?;
        Some(Arc::new(with_rendering(gateway, &desired)))
    }
}

/// The Gateway behind a view of the one kind this dialect renders.
fn rendered_kind<'a>(kind: &ObjectKind, object: &'a SharedObject) -> Option<&'a GatewayView> {
    if *kind != GATEWAY {
        return None;
    }
    object.as_any().downcast_ref::<GatewayView>()
}

fn refusal_text(refusals: Vec<GatewayRenderRefusal>) -> String {
    refusals
        .iter()
        .map(|r| format!("Gateway {} port {}: {}", r.gateway, r.port, r.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What of `l` (on `gw`) a SecurityPolicy applies to, if anything: the Gateway, the
/// listener, an HTTPRoute attached to it that serves the host, or (with
/// `targetSelectors`, which are not modelled) possibly any of them in its namespace.
fn security_policy_reach(
    sp: &SecurityPolicyView,
    gw: &GatewayView,
    l: &Listener,
    routes: &[&ObjectKey],
) -> Option<String> {
    if sp.has_target_selectors
        && (sp.key.namespace == gw.key.namespace
            || routes.iter().any(|r| r.namespace == sp.key.namespace))
    {
        return Some(format!(
            "possibly {} or its HTTPRoutes (targetSelectors)",
            listener_label(gw, l)
        ));
    }
    sp.targets.iter().find_map(|t| {
        if t.group != GATEWAY_GROUP {
            return None;
        }
        match t.kind.as_str() {
            "Gateway"
                if sp.key.namespace == gw.key.namespace
                    && t.name == gw.key.name
                    && t.section_name.as_deref().is_none_or(|s| s == l.name) =>
            {
                Some(listener_label(gw, l))
            }
            "HTTPRoute" => routes
                .iter()
                .find(|r| r.namespace == sp.key.namespace && r.name == t.name)
                .map(|r| format!("HTTPRoute {r} on {}", listener_label(gw, l))),
            _ => None,
        }
    })
}

/// ListenerSets (standard since Gateway API v1.5) and XListenerSets add listeners to a
/// Gateway from another object; a listener of one that may serve the host is not
/// modelled (its routes, its TLS and how the parent's per-port validation applies to it),
/// so the host fails closed.
fn listener_set_findings(ctx: &HostContext<'_>, ports: &BTreeSet<u16>, table: &mut HostRouteTable) {
    for kind in [LISTENER_SET, X_LISTENER_SET] {
        for object in ctx.objects.objects_of(&kind) {
            let Some(set) = object.as_any().downcast_ref::<ListenerSetView>() else {
                continue;
            };
            for l in &set.listeners {
                let serves = l
                    .hostname
                    .as_deref()
                    .is_none_or(|h| hostname_matches(h, ctx.host));
                if !serves || (l.protocol == "HTTPS" && !ports.contains(&l.port)) {
                    continue;
                }
                table.findings.push(ctx.finding(
                    ViolationCode::UnmodelledSetting,
                    Some(&set.key),
                    format!(
                        "{} {} adds listener {:?} ({} port {}{}) to Gateway {}/{} that may serve host {}; mtls-gate does not model ListenerSets (their routes and how the Gateway's client-certificate validation applies to their listeners), so the host cannot be proven compliant. Serve {} from listeners of the Gateway itself.",
                        set.kind,
                        set.key,
                        l.name,
                        l.protocol,
                        l.port,
                        l.hostname
                            .as_deref()
                            .map(|h| format!(", hostname {h}"))
                            .unwrap_or_default(),
                        set.parent_namespace.as_deref().unwrap_or(&set.key.namespace),
                        set.parent_name,
                        ctx.host,
                        ctx.host
                    ),
                ));
            }
        }
    }
}

/// Envoy Gateway merged Gateways: a GatewayClass whose `parametersRef` names an EnvoyProxy
/// with `spec.mergeGateways: true` puts the listeners of every Gateway of the class on one
/// proxy fleet, so the client-certificate settings of a port, and connection coalescing on
/// it, span Gateways; the checks here are per Gateway, so the host fails closed. The class
/// missing: no controller programs the Gateway (nothing merged). The class or EnvoyProxy
/// unreadable: the engine reports the kind (`ObjectsUnreadable`). An EnvoyProxy that is
/// named but missing, or named without a namespace: Envoy Gateway rejects the class
/// (`InvalidParameters`), and whether the proxy it will read merges Gateways is unknown,
/// so the host fails closed too.
fn merged_gateways_findings(
    ctx: &HostContext<'_>,
    gw: &GatewayView,
    ports: &BTreeSet<u16>,
    table: &mut HostRouteTable,
) {
    let class_key = GatewayClassView::key_of(&gw.class);
    let Lookup::Found(class) =
        super::downcast_lookup::<GatewayClassView>(ctx.objects.object(&GATEWAY_CLASS, &class_key))
    else {
        return;
    };
    let Some(params) = class
        .parameters
        .as_ref()
        .filter(|p| p.group == ENVOY_GATEWAY_GROUP && p.kind == ENVOY_PROXY.kind)
    else {
        return;
    };
    let ports = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let host = ctx.host;
    let problem = match &params.namespace {
        None => Some(format!(
            "names EnvoyProxy {} in its parametersRef without a namespace, so mtls-gate cannot find it and cannot tell whether it sets mergeGateways (Envoy Gateway rejects such a class with InvalidParameters). Set parametersRef.namespace",
            params.name
        )),
        Some(namespace) => {
            let proxy_key = ObjectKey::new(namespace, &params.name);
            match super::downcast_lookup::<EnvoyProxyView>(
                ctx.objects.object(&ENVOY_PROXY, &proxy_key),
            ) {
                Lookup::Found(proxy) if proxy.merge_gateways => Some(format!(
                    "uses EnvoyProxy {proxy_key}, which sets mergeGateways: true: Envoy Gateway merges the listeners of every Gateway of the class onto one proxy fleet, so listeners of other Gateways on port {ports} share the port, its client-certificate validation and its connections (coalescing) with host {host}. mtls-gate checks those per Gateway, not across merged Gateways. Turn mergeGateways off, or serve the MTLS hosts from a Gateway of a GatewayClass of their own without it"
                )),
                Lookup::Found(_) | Lookup::Unknown => None,
                Lookup::Missing => Some(format!(
                    "names EnvoyProxy {proxy_key} in its parametersRef, which does not exist: Envoy Gateway rejects the class (InvalidParameters), and whether the EnvoyProxy it will read sets mergeGateways (listeners of every Gateway of the class on one proxy fleet, sharing ports) is unknown. Create the EnvoyProxy (or include it in the manifests checked)"
                )),
            }
        }
    };
    if let Some(problem) = problem {
        table.findings.push(ctx.finding(
            ViolationCode::UnmodelledSetting,
            Some(&gw.key),
            format!(
                "Gateway {} serves host {host} on port {ports}, and its GatewayClass {} {problem}.",
                gw.key, gw.class
            ),
        ));
    }
}

/// Index into the listener auths of one table build.
type ListenerAuthRef = usize;

impl GatewayView {
    /// ClientTrafficPolicies of this Gateway's namespace that pick targets by labels.
    fn policies_with_selectors<'a>(
        &'a self,
        policies: &'a [&'a ClientTrafficPolicyView],
    ) -> impl Iterator<Item = &'a ClientTrafficPolicyView> + 'a {
        policies
            .iter()
            .copied()
            .filter(move |p| p.has_target_selectors && p.key.namespace == self.key.namespace)
    }
}

/// A port that serves an MTLS host must require verified certificates on every HTTPS
/// listener: a connection opened without a certificate for another listener's host can be
/// reused for the MTLS host (GEP-91 "Connection coalescing security issue").
fn coalescing_findings(
    ctx: &HostContext<'_>,
    gw: &GatewayView,
    mtls_listener: &Listener,
    on_port: &[&Listener],
    policies: &[&ClientTrafficPolicyView],
    table: &mut HostRouteTable,
) {
    for other in on_port {
        if other.name == mtls_listener.name || other.protocol != "HTTPS" {
            continue;
        }
        let auth = listener_auth(ctx, gw, other, policies);
        if auth.kind.requires_verified_certificate() {
            continue;
        }
        table.findings.push(ctx.finding(
            ViolationCode::MtlsNotRequired,
            Some(&gw.key),
            format!(
                "MTLS host {host} is served on port {port} of Gateway {gw} by {mine}, which requires verified client certificates, but the same port also serves {theirs}, where client auth is {kind}. Client certificates are checked once per TLS connection, and a connection opened for {other_host} without a certificate can be reused for {host} (connection coalescing, GEP-91), reaching the MTLS endpoints without one. Fix: serve the TLS hosts from another port or Gateway (split host on separate ports), or require verified certificates on every listener of port {port}.",
                host = ctx.host,
                port = mtls_listener.port,
                gw = gw.key,
                mine = listener_label(gw, mtls_listener),
                theirs = listener_label(gw, other),
                kind = auth.kind.as_str(),
                other_host = other.hostname.as_deref().unwrap_or("another host"),
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route of listener group `group` with `matcher` (conditional: it also tests
    /// headers).
    fn route(group: usize, conditional: bool, matcher: PathMatcher) -> Arc<Route> {
        crate::dialect::required_route(HTTP_ROUTE_KIND, matcher, priority(group, conditional))
    }

    /// The indexed winners are those of a scan over every route, for paths that each kind
    /// of matcher matches, almost matches, or does not.
    #[test]
    fn indexed_winners_equal_a_scan_of_every_route() {
        let base = "/open-banking-nz/v3.0";
        let table = HostRouteTable {
            routes: vec![
                route(
                    1,
                    true,
                    PathMatcher::Exact(format!("{base}/accounts/status")),
                ),
                route(1, false, PathMatcher::Exact(format!("{base}/accounts"))),
                route(1, false, PathMatcher::Prefix(format!("{base}/accounts/"))),
                route(1, true, PathMatcher::Prefix(format!("{base}/"))),
                route(
                    1,
                    false,
                    PathMatcher::go_regex(&format!("^(?:{base}/pay.*)$")),
                ),
                route(1, false, PathMatcher::Exact(base.to_string())),
                route(1, false, PathMatcher::Prefix(format!("{base}/"))),
                route(1, false, PathMatcher::Prefix("/".into())),
                route(2, false, PathMatcher::Prefix(format!("{base}/acc"))),
                route(2, false, PathMatcher::Exact(format!("{base}/accounts"))),
                route(2, false, PathMatcher::Prefix("/".into())),
            ]
            .into(),
            ..Default::default()
        };
        let paths = [
            "/",
            "",
            base,
            &format!("{base}/"),
            &format!("{base}/accounts"),
            &format!("{base}/accounts/"),
            &format!("{base}/accounts/status"),
            &format!("{base}/accounts/a1/balances"),
            &format!("{base}/accountsx"),
            &format!("{base}/payments/p1"),
            "/other",
            "//",
        ];
        for path in paths {
            assert_eq!(
                GatewayApi.winners(&table, path),
                winners_among(&table, path, 0..table.routes.len()),
                "{path}"
            );
        }
        assert!(
            table
                .winners_index
                .get()
                .is_some_and(|i| i.downcast_ref::<LiteralIndex>().is_some()),
            "the index is kept with the table"
        );
    }
}
