//! ingress-nginx (kubernetes/ingress-nginx v1.10-v1.15), as its source behaves:
//!
//! * Paths: `ImplementationSpecific` is loaded as `Prefix`. `Exact /p` is `location = /p`;
//!   `Prefix /p` is split into `location /p/` and `location = /p` (not `/` nor paths ending
//!   in `/`). A duplicate path with the same type on the host is dropped (oldest wins).
//!   Every host has an implicit `location /` to the default backend that inherits the
//!   annotations of the oldest Ingress of the host.
//! * Regex mode: `use-regex` or `rewrite-target` on *any* Ingress of a host turns every
//!   location of the host into `~* "^<path>"` (case-insensitive, no end anchor, so even
//!   `Exact` paths match as prefixes); locations are ordered longest path first, ties in
//!   reverse byte order, and the first matching one wins.
//! * Client auth (`auth-tls-*`) is host-wide: the oldest Ingress whose `auth-tls-secret`
//!   resolves to a Secret with `ca.crt` decides for every path; a Secret without `ca.crt`
//!   silently disables verification; an unresolvable secret makes the whole host answer 403.
//! * `auth-url` is per Ingress (every location of it). The auth sub-request receives
//!   `ssl-client-verify` from nginx only when the host has a CA; otherwise a client-sent
//!   header passes through, so a gate on such a host can be forged.

use std::sync::Arc;

use super::{
    AnnotationChanges, AuthKind, Dialect, HostContext, HostRole, HostRouteTable, RenderInput,
    RenderedObject, Route, RouteAuth, RouteSource, gate_url_for, is_gate_url, oldest_first,
};
use crate::model::{CaBundle, IngressView, Lookup, ObjectKey, PathType};
use crate::paths::{MatchResult, PathMatcher};
use crate::violation::ViolationCode;

pub struct IngressNginx;

const PREFIX: &str = "nginx.ingress.kubernetes.io/";
pub const AUTH_TLS_SECRET: &str = "nginx.ingress.kubernetes.io/auth-tls-secret";
pub const AUTH_TLS_VERIFY_CLIENT: &str = "nginx.ingress.kubernetes.io/auth-tls-verify-client";
pub const AUTH_TLS_VERIFY_DEPTH: &str = "nginx.ingress.kubernetes.io/auth-tls-verify-depth";
pub const AUTH_TLS_PASS_CERT: &str =
    "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream";
pub const AUTH_URL: &str = "nginx.ingress.kubernetes.io/auth-url";
const USE_REGEX: &str = "nginx.ingress.kubernetes.io/use-regex";
const REWRITE_TARGET: &str = "nginx.ingress.kubernetes.io/rewrite-target";
const CONTROLLER: &str = "ingress-nginx";

/// The host-level `auth-tls-*` settings one Ingress carries, normalised as the controller
/// parses them (invalid verify-client → `on`, invalid depth → 1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuthTlsSettings {
    secret: Option<String>,
    verify_client: &'static str,
    depth: i64,
    pass_certificate: bool,
}

impl AuthTlsSettings {
    fn of(ing: &IngressView) -> Option<Self> {
        if !ing
            .annotations
            .keys()
            .any(|k| k.starts_with(PREFIX) && k[PREFIX.len()..].starts_with("auth-tls-"))
        {
            return None;
        }
        let verify_client = match ing.annotation(AUTH_TLS_VERIFY_CLIENT).map(str::trim) {
            Some("off") => "off",
            Some("optional") => "optional",
            Some("optional_no_ca") => "optional_no_ca",
            _ => "on",
        };
        let depth = ing
            .annotation(AUTH_TLS_VERIFY_DEPTH)
            .and_then(|d| d.trim().parse::<i64>().ok())
            .filter(|d| *d > 0)
            .unwrap_or(1);
        Some(Self {
            secret: ing
                .annotation(AUTH_TLS_SECRET)
                .map(|s| s.trim().to_string()),
            verify_client,
            depth,
            pass_certificate: ing
                .annotation(AUTH_TLS_PASS_CERT)
                .is_some_and(|v| v.trim() == "true"),
        })
    }

    fn describe(&self) -> String {
        format!(
            "auth-tls-secret {:?}, auth-tls-verify-client {:?}, auth-tls-verify-depth {}, pass-certificate {}",
            self.secret.as_deref().unwrap_or("(none)"),
            self.verify_client,
            self.depth,
            self.pass_certificate
        )
    }
}

/// Resolves `auth-tls-secret` (`namespace/name` or `name`) as ingress-nginx does.
fn secret_key(ing: &IngressView, value: &str) -> Result<ObjectKey, String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    let (ns, name) = match value.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (ing.key.namespace.as_str(), value),
    };
    if !valid(ns) || !valid(name) {
        return Err(format!("{value:?} is not a valid namespace/name"));
    }
    if ns != ing.key.namespace {
        return Err(format!(
            "{value:?} is in namespace {ns:?}, but cross-namespace secrets are not supported (allow-cross-namespace-resources is off by default)"
        ));
    }
    Ok(ObjectKey::new(ns, name))
}

enum HostMode {
    /// An `auth-tls-secret` could not be resolved: ingress-nginx answers 403 on the host.
    Blocked(String),
    NoTls,
    /// No usable CA: certificates are not requested.
    NoCa,
    Verify {
        verify_client: &'static str,
        source: ObjectKey,
        secret: String,
    },
}

struct Location {
    ingress: Arc<IngressView>,
    path: String,
    /// After ImplementationSpecific → Prefix.
    path_type: PathType,
    written_type: PathType,
    own_regex: bool,
}

fn uses_regex(ing: &IngressView) -> bool {
    ing.annotation(USE_REGEX)
        .is_some_and(|v| v.trim() == "true")
        || ing
            .annotation(REWRITE_TARGET)
            .is_some_and(|v| !v.trim().is_empty())
}

impl IngressNginx {
    fn host_mode(
        &self,
        ctx: &HostContext<'_>,
        ings: &[Arc<IngressView>],
        tls: bool,
        table: &mut HostRouteTable,
    ) -> HostMode {
        let mut blocked: Option<String> = None;
        let mut winner: Option<(ObjectKey, AuthTlsSettings, String)> = None;
        for ing in ings {
            let Some(value) = ing.annotation(AUTH_TLS_SECRET).map(str::trim) else {
                continue;
            };
            let settings = AuthTlsSettings::of(ing);
            let key = match secret_key(ing, value) {
                Ok(key) => key,
                Err(reason) => {
                    table.findings.push(ctx.finding(
                        ViolationCode::CaSecretInvalid,
                        Some(&ing.key),
                        format!(
                            "Ingress {} sets auth-tls-secret {reason}. ingress-nginx rejects the setting and answers 403 for every path of host {}, including TLS endpoints. Point auth-tls-secret at a Secret in namespace {} with a ca.crt key.",
                            ing.key, ctx.host, ing.key.namespace
                        ),
                    ));
                    blocked.get_or_insert_with(|| {
                        format!(
                            "auth-tls-secret of Ingress {} is unusable ({reason})",
                            ing.key
                        )
                    });
                    continue;
                }
            };
            let usable = match ctx.objects.secret(&key) {
                Lookup::Found(secret) => match secret.bundle("ca.crt") {
                    Some(CaBundle::Certificates { .. }) => true,
                    Some(CaBundle::Invalid { reason }) => {
                        // The controller cannot turn ca.crt into a CA file: the secret never
                        // reaches its store and the annotation is denied (whole host 403).
                        table.findings.push(ctx.finding(
                            ViolationCode::CaSecretInvalid,
                            Some(&ing.key),
                            format!(
                                "Secret {key} named by auth-tls-secret of Ingress {}: ca.crt {reason}. ingress-nginx cannot load it and answers 403 for every path of host {}, including TLS endpoints. Put the PEM-encoded trust anchors of the client certificates in ca.crt.",
                                ing.key, ctx.host
                            ),
                        ));
                        blocked.get_or_insert_with(|| {
                            format!("ca.crt of Secret {key} (Ingress {}) is unusable", ing.key)
                        });
                        false
                    }
                    None if secret.bundle("tls.crt").is_some() => {
                        table.findings.push(ctx.finding(
                            ViolationCode::CaSecretInvalid,
                            Some(&ing.key),
                            format!(
                                "Secret {key} named by auth-tls-secret of Ingress {} has no ca.crt key (only a certificate pair). ingress-nginx then silently switches client-certificate verification off for host {} (fail-open). Add the client CA bundle under the key ca.crt.",
                                ing.key, ctx.host
                            ),
                        ));
                        false
                    }
                    None => {
                        // Neither a key pair nor a CA: the controller rejects the secret.
                        table.findings.push(ctx.finding(
                            ViolationCode::CaSecretInvalid,
                            Some(&ing.key),
                            format!(
                                "Secret {key} named by auth-tls-secret of Ingress {} has no ca.crt key. ingress-nginx rejects it and answers 403 for every path of host {}. Add the client CA bundle under the key ca.crt.",
                                ing.key, ctx.host
                            ),
                        ));
                        blocked.get_or_insert_with(|| {
                            format!("Secret {key} (Ingress {}) has no ca.crt", ing.key)
                        });
                        false
                    }
                },
                Lookup::Missing => {
                    table.findings.push(ctx.finding(
                        ViolationCode::CaSecretInvalid,
                        Some(&ing.key),
                        format!(
                            "Secret {key} named by auth-tls-secret of Ingress {} does not exist. ingress-nginx answers 403 for every path of host {} until it does. Create the Secret with the client CA bundle under ca.crt.",
                            ing.key, ctx.host
                        ),
                    ));
                    blocked.get_or_insert_with(|| {
                        format!("Secret {key} named by Ingress {} does not exist", ing.key)
                    });
                    false
                }
                Lookup::Unknown => true,
            };
            if usable
                && winner.is_none()
                && let Some(settings) = settings
            {
                winner = Some((ing.key.clone(), settings, key.to_string()));
            }
        }

        // Differing settings across the Ingresses of the host are merged "oldest wins".
        let carriers: Vec<(&Arc<IngressView>, AuthTlsSettings)> = ings
            .iter()
            .filter_map(|i| AuthTlsSettings::of(i).map(|s| (i, s)))
            .collect();
        if let Some((first, first_settings)) = carriers.first() {
            let (decider, decided) = match &winner {
                Some((key, settings, _)) => (key.clone(), settings.clone()),
                None => (first.key.clone(), first_settings.clone()),
            };
            for (ing, settings) in &carriers {
                if ing.key != decider && *settings != decided {
                    table.findings.push(ctx.finding(
                        ViolationCode::HostSettingsConflict,
                        Some(&ing.key),
                        format!(
                            "Ingress {} sets {} on host {}, but client-certificate settings are host-wide in ingress-nginx and the oldest Ingress with a usable CA decides for every path: {} with {}. The settings of {} are ignored, and which Ingress wins depends on creation order. Give every Ingress of the host identical auth-tls-* annotations, or move these paths to their own host.",
                            ing.key, settings.describe(), ctx.host, decider, decided.describe(), ing.key
                        ),
                    ));
                }
            }
        }

        if let Some(reason) = blocked {
            return HostMode::Blocked(reason);
        }
        if !tls {
            return HostMode::NoTls;
        }
        match winner {
            Some((source, settings, secret)) => HostMode::Verify {
                verify_client: settings.verify_client,
                source,
                secret,
            },
            None => HostMode::NoCa,
        }
    }
}

fn route_auth(mode: &HostMode, ing: &IngressView, gate: Option<&str>) -> RouteAuth {
    let auth_url = ing.annotation(AUTH_URL).map(str::trim);
    let gated = auth_url.is_some_and(|u| is_gate_url(u, gate, CONTROLLER));
    let foreign = match auth_url {
        Some(u) if !gated => format!(" (its auth-url {u:?} is not the profile's gate)"),
        _ => String::new(),
    };
    let (kind, detail) = match mode {
        HostMode::Blocked(reason) => (AuthKind::Rejected, format!("host answers 403: {reason}")),
        HostMode::NoTls => (
            AuthKind::None,
            "host has no TLS, so no client certificate is requested".into(),
        ),
        HostMode::NoCa if gated => (
            AuthKind::None,
            format!(
                "Ingress {} has the gate as auth-url, but no Ingress of the host configures a usable CA, so ingress-nginx does not set ssl-client-verify and a client can forge it",
                ing.key
            ),
        ),
        HostMode::NoCa => (
            AuthKind::None,
            format!("no Ingress of the host sets a usable auth-tls-secret{foreign}"),
        ),
        HostMode::Verify {
            verify_client,
            source,
            secret,
        } => {
            let from = format!(
                "auth-tls-verify-client {verify_client:?} with CA {secret}, from Ingress {source}"
            );
            match (*verify_client, gated) {
                ("on", _) => (AuthKind::Required, from),
                ("optional", true) => (
                    AuthKind::RequiredByGate,
                    format!("{from}; gate via auth-url of Ingress {}", ing.key),
                ),
                ("optional", false) => (
                    AuthKind::Optional,
                    format!("{from}; Ingress {} has no gate{foreign}", ing.key),
                ),
                ("optional_no_ca", _) => (
                    AuthKind::OptionalUnverified,
                    format!("{from}; optional_no_ca never verifies the chain"),
                ),
                _ => (AuthKind::None, from),
            }
        }
    };
    RouteAuth {
        kind,
        detail: detail.into(),
    }
}

impl Dialect for IngressNginx {
    fn host_table(&self, ctx: &HostContext<'_>) -> HostRouteTable {
        let mut ings = ctx.ingresses.clone();
        ings.sort_by(|a, b| oldest_first(a, b));
        let mut table = HostRouteTable {
            host_key: ctx.host_key.to_string(),
            ..Default::default()
        };
        let tls = !ctx.host_key.is_empty() && ings.iter().any(|i| i.has_tls_for(ctx.host_key));
        let mode = self.host_mode(ctx, &ings, tls, &mut table);
        table.client_auth = match &mode {
            HostMode::Blocked(r) => format!("403 for every request ({r})"),
            HostMode::NoTls => "no TLS".into(),
            HostMode::NoCa => "no client certificate requested".into(),
            HostMode::Verify {
                verify_client,
                source,
                secret,
            } => {
                format!(
                    "auth-tls-verify-client {verify_client:?}, CA {secret} (from Ingress {source})"
                )
            }
        };

        // Locations, oldest Ingress first; a duplicate (path, type) is dropped.
        let mut locations: Vec<Location> = Vec::new();
        for ing in &ings {
            for rule in ing.rules.iter().filter(|r| r.host == ctx.host_key) {
                for p in &rule.paths {
                    let path_type = if p.path_type == PathType::Exact {
                        PathType::Exact
                    } else {
                        PathType::Prefix
                    };
                    if locations
                        .iter()
                        .any(|l| l.path == p.path && l.path_type == path_type)
                    {
                        continue;
                    }
                    locations.push(Location {
                        ingress: ing.clone(),
                        path: p.path.clone(),
                        path_type,
                        written_type: p.path_type,
                        own_regex: uses_regex(ing),
                    });
                }
            }
        }
        let regex_mode = ings.iter().any(|i| uses_regex(i));
        if regex_mode {
            // The root location exists before any Ingress path is added (`createServers`),
            // and a `Prefix /` takes it over in place, so it precedes an `Exact /`: both
            // become `~* "^/"` and the first one answers (ingress-nginx
            // internal/ingress/controller/controller.go, createServers and the stable
            // sorts of `location`s in getBackendServers).
            locations.sort_by_key(|l| !(l.path == "/" && l.path_type == PathType::Prefix));
            locations.sort_by(|a, b| {
                b.path
                    .len()
                    .cmp(&a.path.len())
                    .then_with(|| b.path.cmp(&a.path))
            });
        }
        let exact_paths: Vec<String> = locations
            .iter()
            .filter(|l| l.path_type == PathType::Exact)
            .map(|l| l.path.clone())
            .collect();
        let gate = ctx.profile.gate_url();
        let mut auth_cache: Vec<(Arc<IngressView>, RouteAuth)> = Vec::new();
        for loc in &locations {
            let split = loc.path_type == PathType::Prefix
                && loc.path != "/"
                && !loc.path.ends_with('/')
                && !loc.own_regex;
            let mut matchers = Vec::new();
            if split {
                let with_slash = format!("{}/", loc.path);
                let has_exact = exact_paths.contains(&loc.path);
                if regex_mode {
                    matchers.push(PathMatcher::nginx_regex(&with_slash));
                    if !has_exact {
                        matchers.push(PathMatcher::nginx_regex(&loc.path));
                    }
                } else {
                    matchers.push(PathMatcher::Prefix(with_slash));
                    if !has_exact {
                        matchers.push(PathMatcher::Exact(loc.path.clone()));
                    }
                }
            } else if regex_mode {
                matchers.push(PathMatcher::nginx_regex(&loc.path));
            } else if loc.path_type == PathType::Exact {
                matchers.push(PathMatcher::Exact(loc.path.clone()));
            } else {
                matchers.push(PathMatcher::Prefix(loc.path.clone()));
            }
            // Client auth depends only on the host and the owning Ingress.
            let auth = match auth_cache
                .iter()
                .find(|(k, _)| Arc::ptr_eq(k, &loc.ingress))
            {
                Some((_, auth)) => auth.clone(),
                None => {
                    let auth = route_auth(&mode, &loc.ingress, gate);
                    auth_cache.push((loc.ingress.clone(), auth.clone()));
                    auth
                }
            };
            for matcher in matchers {
                table.routes.push(Route {
                    source: RouteSource::ingress(&loc.ingress),
                    path: loc.path.clone(),
                    path_type: loc.written_type,
                    matcher,
                    serves_backend: true,
                    tls,
                    auth: auth.clone(),
                    priority: 0,
                });
            }
        }
        let explicit_root = locations
            .iter()
            .any(|l| l.path == "/" && l.path_type == PathType::Prefix);
        if let (false, Some(first)) = (explicit_root, ings.first()) {
            // In regex mode the implicit root comes before every other `/` location (see
            // above); otherwise its place does not matter (longest prefix wins).
            let at = if regex_mode {
                table
                    .routes
                    .iter()
                    .position(|r| r.path == "/")
                    .unwrap_or(table.routes.len())
            } else {
                table.routes.len()
            };
            table.routes.insert(
                at,
                Route {
                    source: RouteSource::ingress(first),
                    path: "/".into(),
                    path_type: PathType::Prefix,
                    matcher: if regex_mode {
                        PathMatcher::nginx_regex("/")
                    } else {
                        PathMatcher::Prefix("/".into())
                    },
                    serves_backend: first.has_default_backend,
                    tls,
                    auth: route_auth(&mode, first, gate),
                    priority: 0,
                },
            );
        }
        table
    }

    fn winners(&self, table: &HostRouteTable, path: &str) -> Vec<usize> {
        let routes = &table.routes;
        if let Some(i) = routes.iter().position(|r| {
            matches!(r.matcher, PathMatcher::Exact(_))
                && r.matcher.matches(path) == MatchResult::Yes
        }) {
            return vec![i];
        }
        let regex_mode = routes.iter().any(|r| {
            matches!(
                r.matcher,
                PathMatcher::PrefixIgnoreCase(_) | PathMatcher::Regex(_)
            )
        });
        if regex_mode {
            // Config order, first match wins; undecidable expressions may or may not match.
            let mut out = Vec::new();
            for (i, r) in routes.iter().enumerate() {
                match r.matcher.matches(path) {
                    MatchResult::Yes => {
                        out.push(i);
                        break;
                    }
                    MatchResult::Maybe => out.push(i),
                    MatchResult::No => {}
                }
            }
            return out;
        }
        let longest = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                matches!(r.matcher, PathMatcher::Prefix(_))
                    && r.matcher.matches(path) == MatchResult::Yes
            })
            .max_by_key(|(i, r)| {
                (
                    r.matcher.literal().map_or(0, |(l, _)| l.len()),
                    std::cmp::Reverse(*i),
                )
            });
        longest.map(|(i, _)| vec![i]).unwrap_or_default()
    }

    fn render(&self, input: &RenderInput<'_>) -> (AnnotationChanges, Vec<RenderedObject>) {
        let spec = &input.profile.spec;
        let cc = &spec.client_certificate;
        let mut changes = AnnotationChanges::default();
        let gate = input.profile.gate_url();
        let has_gate_url = input
            .annotations
            .get(AUTH_URL)
            .is_some_and(|u| is_gate_url(u, gate, CONTROLLER));
        let mut set = |k: &str, v: String| {
            changes.set.insert(k.to_string(), v);
        };
        let verify = match input.role {
            HostRole::Mtls => Some("on"),
            HostRole::Mixed => Some("optional"),
            HostRole::Tls => None,
        };
        if let Some(verify) = verify {
            set(
                AUTH_TLS_SECRET,
                format!("{}/{}", input.ingress.key.namespace, cc.ca_secret_name),
            );
            set(AUTH_TLS_VERIFY_CLIENT, verify.to_string());
            set(AUTH_TLS_VERIFY_DEPTH, cc.verify_depth.to_string());
            set(
                AUTH_TLS_PASS_CERT,
                cc.pass_certificate_to_upstream.to_string(),
            );
        }
        let want_gate = input.role == HostRole::Mixed && input.serves_mtls;
        if let (true, Some(gate)) = (want_gate, gate) {
            set(AUTH_URL, gate_url_for(gate, CONTROLLER));
        }
        let mut remove: Vec<String> = Vec::new();
        if verify.is_none() {
            for k in [
                AUTH_TLS_SECRET,
                AUTH_TLS_VERIFY_CLIENT,
                AUTH_TLS_VERIFY_DEPTH,
                AUTH_TLS_PASS_CERT,
            ] {
                if input.annotations.contains_key(k) {
                    remove.push(k.to_string());
                }
            }
        }
        if !want_gate && has_gate_url {
            remove.push(AUTH_URL.to_string());
        }
        changes.remove = remove;
        (changes, Vec::new())
    }
}
