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

mod objects;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

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
const CERT_HEADER: &str = "X-Forwarded-Tls-Client-Cert";
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

fn gate_chain(ing: &IngressView, objects: &dyn ObjectSource, gate: Option<&str>) -> GateChain {
    let Some(list) = ing.annotation(MIDDLEWARES) else {
        return GateChain::Absent;
    };
    let mut stripped = false;
    let mut passed = false;
    for reference in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let kind = match resolve_crd_ref(reference, |k| {
            downcast_lookup::<MiddlewareView>(objects.object(&MIDDLEWARE, k))
        }) {
            Ok((_, mw)) => mw.kind.clone(),
            Err(_) => MiddlewareKind::Other,
        };
        match kind {
            MiddlewareKind::StripsRequestHeaders(headers)
                if headers.iter().any(|h| h.eq_ignore_ascii_case(CERT_HEADER)) =>
            {
                stripped = true
            }
            MiddlewareKind::PassTlsClientCert { pem: true } => passed = true,
            MiddlewareKind::ForwardAuth {
                address,
                trust_forward_header,
                auth_request_headers,
            } if is_gate_url(&address, gate, CONTROLLER) => {
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

fn router_tls(ing: &IngressView, host_key: &str) -> bool {
    ing.has_tls_for(host_key)
        || ing
            .annotation(ROUTER_TLS)
            .is_some_and(|v| v.trim() == "true")
}

fn option_ref(ing: &IngressView, objects: &dyn ObjectSource) -> OptionRef {
    match ing.annotation(TLS_OPTIONS).map(str::trim) {
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
            plain_http_hint: " and the Ingress does not set router.tls: \"true\"",
            ..Default::default()
        };
        let objects = ctx.objects;

        // TLS option of every TLS router on the host.
        let mut options: BTreeMap<OptionRef, Vec<ObjectKey>> = BTreeMap::new();
        for ing in &ctx.ingresses {
            if router_tls(ing, ctx.host_key) {
                options
                    .entry(option_ref(ing, objects))
                    .or_default()
                    .push(ing.key.clone());
            }
        }
        for (opt, users) in &options {
            if let OptionRef::Unresolved(name) = opt {
                for user in users {
                    table.findings.push(ctx.finding(
                        ViolationCode::TlsOptionInvalid,
                        Some(user),
                        format!(
                            "Ingress {user} sets router.tls.options {name:?}, which names no TLSOption known here. Traefik cannot apply it, and its routers on host {} lose the intended client authentication. Create the TLSOption or fix the reference (<namespace>-<name>@kubernetescrd).",
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
                        Some(user),
                        format!(
                            "Routers of host {} name different TLS options ({}). Traefik then applies the default TLS options to every router of the host, which normally request no client certificate (fail-open). Give every Ingress of the host the same router.tls.options.",
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
        let first_user = options.get(&effective).and_then(|u| u.first()).cloned();
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

        let gate = ctx.profile.gate_url();
        for ing in &ctx.ingresses {
            let tls = router_tls(ing, ctx.host_key);
            let chain = gate_chain(ing, objects, gate);
            let auth = route_auth(mode, tls, &description, &chain, ing);
            let priority_override = ing
                .annotation(PRIORITY)
                .and_then(|p| p.trim().parse::<i64>().ok())
                .filter(|p| *p != 0);
            for rule in ing.rules.iter().filter(|r| r.host == ctx.host_key) {
                for p in &rule.paths {
                    let (function, matcher) =
                        match (p.path_type, ing.annotation(PATH_MATCHER).map(str::trim)) {
                            (PathType::Exact, _)
                            | (PathType::ImplementationSpecific, Some("Path")) => {
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
                    table.routes.push(Route {
                        source: RouteSource::ingress(ing),
                        path: p.path.clone(),
                        path_type: p.path_type,
                        matcher,
                        serves_backend: true,
                        tls,
                        auth: auth.clone(),
                        priority: priority_override.unwrap_or(rule_text.len() as i64),
                    });
                }
            }
            if ctx.host_key.is_empty() && ing.has_default_backend {
                table.routes.push(Route {
                    source: RouteSource::ingress(ing),
                    path: "/".into(),
                    path_type: PathType::Prefix,
                    matcher: PathMatcher::Prefix("/".into()),
                    serves_backend: true,
                    tls,
                    auth: auth.clone(),
                    priority: i64::from(i32::MIN),
                });
            }
        }
        table
    }

    fn winners(&self, table: &HostRouteTable, path: &str) -> Vec<usize> {
        let mut best: Option<i64> = None;
        let mut candidates = Vec::new();
        for (i, r) in table.routes.iter().enumerate() {
            match r.matcher.matches(path) {
                MatchResult::Yes => {
                    best = Some(best.map_or(r.priority, |b| b.max(r.priority)));
                    candidates.push((i, r.priority, true));
                }
                MatchResult::Maybe => candidates.push((i, r.priority, false)),
                MatchResult::No => {}
            }
        }
        candidates
            .into_iter()
            .filter(|(_, p, _)| best.is_none_or(|b| *p >= b))
            .map(|(i, _, _)| i)
            .collect()
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
    ing: &IngressView,
) -> RouteAuth {
    let (kind, detail) = if !tls {
        (
            AuthKind::None,
            format!(
                "Ingress {} creates a router without TLS for this host",
                ing.key
            ),
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
                    "{option}: VerifyClientCertIfGiven; gate chain on Ingress {}",
                    ing.key
                ),
            ),
            (_, GateChain::NeverPasses(why)) => (
                AuthKind::Rejected,
                format!(
                    "{option}; gate on Ingress {} can never pass: {why}",
                    ing.key
                ),
            ),
            (_, GateChain::Forgeable(why)) => (
                AuthKind::None,
                format!("{option}; gate on Ingress {} can be forged: {why}", ing.key),
            ),
            (OptionMode::VerifyIfGiven, GateChain::Absent) => (
                AuthKind::Optional,
                format!(
                    "{option}: VerifyClientCertIfGiven; Ingress {} has no gate",
                    ing.key
                ),
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
                    "{option}: no client certificate is requested, so the gate on Ingress {} rejects every request",
                    ing.key
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
