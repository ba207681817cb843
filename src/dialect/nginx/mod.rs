//! ingress-nginx (kubernetes/ingress-nginx v1.10-v1.15), as its source behaves:
//!
//! * Paths: `ImplementationSpecific` is loaded as `Prefix`. `Exact /p` is `location = /p`;
//!   `Prefix /p` is split into `location /p/` and `location = /p` (not `/` nor paths ending
//!   in `/`, nor paths whose own location is a regex location). A duplicate path with the
//!   same type on the host is dropped (oldest wins). Every host has an implicit
//!   `location /` to the default backend that inherits the annotations of the oldest
//!   Ingress of the host (`createServers` in `internal/ingress/controller/controller.go`).
//! * Catch-all server: host-less rules and Ingresses with only `spec.defaultBackend` serve
//!   every host that no server block names (host key `""`). The oldest Ingress with a
//!   default backend and no rules takes the catch-all's `location /` (its annotations
//!   apply, except rewrite and redirect ones), before any host-less `/` path can.
//! * Regex mode: a host is in regex mode when some *placed* location has `use-regex` or a
//!   `rewrite-target` different from its own path (`enforceRegexModifier` and
//!   `needsRewrite` in `internal/ingress/controller/template/template.go`); then every
//!   location of the host is `~* "^<path>"` (case-insensitive, no end anchor, so even
//!   `Exact` paths match as prefixes); locations are ordered longest path first, ties in
//!   reverse byte order, and the first matching one wins.
//! * Plain HTTP: every location is also served on port 80. `lua_ingress.lua`
//!   (`redirect_to_https`) redirects to HTTPS when `force-ssl-redirect` is true, or when
//!   `ssl-redirect` is true (the default) and the host has a certificate; otherwise the
//!   path is served in clear text, without any client certificate.
//! * Client auth (`auth-tls-*`) is host-wide: the oldest Ingress whose `auth-tls-secret`
//!   resolves to a Secret with `ca.crt` decides for every path; a Secret without `ca.crt`
//!   silently disables verification; an unresolvable secret makes the whole host answer 403.
//! * `auth-url` is per Ingress (every location of it). The auth sub-request receives
//!   `ssl-client-verify` from nginx only when the host has a CA; otherwise a client-sent
//!   header passes through, so a gate on such a host can be forged. `satisfy: any`,
//!   `auth-cache-*` and `auth-proxy-set-headers` let requests past the gate without it
//!   deciding for them, so a gate with them counts as no gate.
//! * Creation order: where the oldest Ingress wins and two or more Ingresses of the host
//!   have no `creationTimestamp` (manifests from Git), their order is unknown; the table is
//!   built with the order that weakens MTLS endpoints most (weakest client-auth settings
//!   first), and a finding says so when the order changes anything.
//!
//! * Server aliases (`server-alias`, `createServers` in `controller.go`): the first Ingress of
//!   a host that sets it gives the host's server its aliases, and an alias equal to a host
//!   that has a server of its own (any Ingress rule for it) is dropped. So an alias never
//!   changes who serves a host with an Ingress of its own; it makes the aliasing server
//!   answer for a host that has none. On an Ingress of a profile host it is reported (the
//!   aliased names get this host's routes and client authentication). The cluster view
//!   indexes Ingresses by their aliases too (`Dialect::host_aliases`; names nginx matches as
//!   a wildcard or regular expression reach every host they may name), so an Ingress of
//!   *another* host whose alias names a profile host without an exact rule of its own is
//!   reported on that host (`UnmodelledSetting`): nginx answers it with the aliasing server.
//!
//! Which annotations are modelled, reported or irrelevant: [`annotations`].
//!
//! The controller ConfigMap (`--configmap`; keys from the json tags of `Configuration` in
//! `internal/ingress/controller/config/config.go`) is read when the profile names it
//! (`spec.controllerConfigMap`): `config_map.rs` models `ssl-redirect` and
//! `use-forwarded-headers` and reports snippets, a widened `no-tls-redirect-locations` and
//! unparsable booleans. Without it, the keys are assumed at their defaults. The keys that
//! come close to who reaches an endpoint, and why the others are irrelevant:
//!
//! | key | default | what another value does |
//! |---|---|---|
//! | `ssl-redirect` | `true` | modelled: `false` serves every Ingress's paths without an own `ssl-redirect` annotation in clear text on port 80, without client certificates |
//! | `force-ssl-redirect` | `false` | only redirects more: cannot widen access (not credited) |
//! | `use-forwarded-headers` | `false` | modelled: `true` takes the scheme from the client's `X-Forwarded-Proto` (`$pass_access_scheme` in `nginx.tmpl`), and `redirect_to_https` (`lua_ingress.lua`) redirects only scheme `http`, so a clear-text request claiming `https` reaches every path |
//! | `no-tls-redirect-locations` | `/.well-known/acme-challenge` | reported when changed: further paths answer in clear text on port 80 |
//! | `main-snippet`, `http-snippet`, `server-snippet`, `location-snippet` | empty | reported when set: arbitrary nginx configuration in every server or location |
//! | `allow-snippet-annotations`, `annotations-risk-level`, `annotation-value-word-blocklist` | `false`, `High`/`Critical` (by version), empty | which annotations the controller accepts; snippet annotations are reported by the audit whatever these keys say |
//! | `global-auth-url` and `global-auth-*` | empty | an external auth sub-request for every location without `enable-global-auth: "false"`; can only refuse more, and never counted as the gate |
//! | `proxy-set-headers`, `add-headers` | empty | headers to the backend or the client; the gate reads the headers nginx sets on its own auth sub-request |
//! | `enable-real-ip`, `forwarded-for-header`, `use-proxy-protocol`, `compute-full-forwarded-for` | `false`, `X-Forwarded-For`, `false`, `false` | client addresses only: no effect on schemes or certificates |
//! | `ssl-protocols`, `ssl-ciphers`, `ssl-reject-handshake`, `ssl-session-*` | TLS 1.2/1.3, defaults | handshake parameters: which clients can connect, not which certificate they need |

pub mod annotations;
mod config_map;

use std::sync::Arc;

use self::annotations::{Decision, PREFIX, bool_annotation, normalize_string, string_annotation};
use super::{
    AnnotationChanges, AuthKind, Dialect, HostContext, HostRole, HostRouteTable, RenderInput,
    RenderedObject, Route, RouteAuth, RouteList, RouteMoves, RouteSource, TablePatch, gate_url_for,
    is_gate_url, oldest_first,
};
use crate::model::{CaBundle, IngressView, Lookup, ObjectKey, PathType};
use crate::paths::{LiteralIndex, MatchResult, PathMatcher, RemappedIndex};
use crate::profile::CompiledProfile;
use crate::violation::{Violation, ViolationCode};

pub struct IngressNginx;

pub const AUTH_TLS_SECRET: &str = "nginx.ingress.kubernetes.io/auth-tls-secret";
pub const AUTH_TLS_VERIFY_CLIENT: &str = "nginx.ingress.kubernetes.io/auth-tls-verify-client";
pub const AUTH_TLS_VERIFY_DEPTH: &str = "nginx.ingress.kubernetes.io/auth-tls-verify-depth";
pub const AUTH_TLS_PASS_CERT: &str =
    "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream";
pub const AUTH_URL: &str = "nginx.ingress.kubernetes.io/auth-url";
pub const USE_REGEX: &str = "nginx.ingress.kubernetes.io/use-regex";
pub const REWRITE_TARGET: &str = "nginx.ingress.kubernetes.io/rewrite-target";
pub const SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
pub const FORCE_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/force-ssl-redirect";
pub const SATISFY: &str = "nginx.ingress.kubernetes.io/satisfy";
pub const AUTH_CACHE_KEY: &str = "nginx.ingress.kubernetes.io/auth-cache-key";
pub const AUTH_CACHE_DURATION: &str = "nginx.ingress.kubernetes.io/auth-cache-duration";
pub const AUTH_PROXY_SET_HEADERS: &str = "nginx.ingress.kubernetes.io/auth-proxy-set-headers";
const CONTROLLER: &str = "ingress-nginx";

/// `auth-tls-verify-client` values (`authVerifyClientRegex` in `annotations/authtls`).
const VERIFY_CLIENT_VALUES: [&str; 4] = ["on", "off", "optional", "optional_no_ca"];

/// `auth-tls-verify-client` as the controller ends up with it: the normalised value if it
/// is one of the four, else the default `on`.
fn verify_client(ing: &IngressView) -> &'static str {
    let value = ing.annotation(AUTH_TLS_VERIFY_CLIENT).map(normalize_string);
    VERIFY_CLIENT_VALUES
        .into_iter()
        .find(|v| value.as_deref() == Some(*v))
        .unwrap_or("on")
}

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
        if !ing.annotations.keys().any(|k| {
            k.strip_prefix(PREFIX)
                .is_some_and(|k| k.starts_with("auth-tls-"))
        }) {
            return None;
        }
        // `parser.GetIntAnnotation` (`strconv.Atoi`, no trimming); 0 or invalid → 1.
        let depth = ing
            .annotation(AUTH_TLS_VERIFY_DEPTH)
            .and_then(|d| d.parse::<i64>().ok())
            .filter(|d| *d > 0)
            .unwrap_or(1);
        Some(Self {
            secret: string_annotation(ing, AUTH_TLS_SECRET),
            verify_client: verify_client(ing),
            depth,
            pass_certificate: bool_annotation(ing, AUTH_TLS_PASS_CERT)
                .ok()
                .flatten()
                .unwrap_or(false),
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

/// Resolves `auth-tls-secret` as ingress-nginx does: `k8s.ParseNameNS` requires exactly
/// `namespace/name` (a bare name is an error, and the location is denied: 403 for the
/// host), and the namespace must be the Ingress's.
fn secret_key(ing: &IngressView, value: &str) -> Result<ObjectKey, String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    let Some((ns, name)) = value.split_once('/') else {
        return Err(format!(
            "{value:?} is not of the form namespace/name (k8s.ParseNameNS), e.g. {}/{value}",
            ing.key.namespace
        ));
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

#[derive(Clone)]
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
        /// What the routes' client auth says of it (shared by every route of the host).
        from: Arc<str>,
    },
}

struct Location<'a> {
    /// Index of the owning Ingress in the host's Ingress order.
    owner: usize,
    path: &'a str,
    /// After ImplementationSpecific → Prefix.
    path_type: PathType,
    written_type: PathType,
    /// `needsRewrite(location) || location.Rewrite.UseRegex` for the path as written.
    own_regex: bool,
}

/// The per-location settings of one Ingress (`locationApplyAnnotations`), as the
/// controller parses them; invalid values take the controller's defaults (and are reported
/// by [`setting_issues`]).
#[derive(Clone)]
struct LocationSettings {
    use_regex: bool,
    rewrite_target: Option<String>,
    /// Why the Ingress's locations are also served in clear text on port 80, if they are.
    plain_http: Option<String>,
    /// Why a gate on this Ingress does not decide alone, if it does not.
    gate_bypass: Option<String>,
}

impl LocationSettings {
    fn of(ing: &IngressView) -> Self {
        let use_regex = bool_annotation(ing, USE_REGEX).ok().flatten() == Some(true);
        // Defaults of the controller ConfigMap: ssl-redirect true, force-ssl-redirect false.
        let force = bool_annotation(ing, FORCE_SSL_REDIRECT)
            .ok()
            .flatten()
            .unwrap_or(false);
        let redirect = bool_annotation(ing, SSL_REDIRECT)
            .ok()
            .flatten()
            .unwrap_or(true);
        let plain_http = (!force && !redirect).then(|| {
            format!(
                "Ingress {} sets ssl-redirect {:?}, so ingress-nginx also serves its paths in clear text on port 80, where no client certificate exists",
                ing.key,
                ing.annotation(SSL_REDIRECT).unwrap_or_default()
            )
        });
        let mut bypass = Vec::new();
        if string_annotation(ing, SATISFY).as_deref() == Some("any") {
            bypass.push("satisfy \"any\" lets any other access check (an allow list, basic auth) admit the request without the gate");
        }
        if string_annotation(ing, AUTH_CACHE_KEY).is_some()
            || string_annotation(ing, AUTH_CACHE_DURATION).is_some()
        {
            bypass.push("auth-cache-key/auth-cache-duration replay a cached answer of the gate to other clients");
        }
        if string_annotation(ing, AUTH_PROXY_SET_HEADERS).is_some() {
            bypass
                .push("auth-proxy-set-headers can set the ssl-client-verify header the gate reads");
        }
        Self {
            use_regex,
            rewrite_target: string_annotation(ing, REWRITE_TARGET),
            plain_http,
            gate_bypass: (!bypass.is_empty()).then(|| bypass.join("; ")),
        }
    }

    /// The settings of the catch-all server's root location when an Ingress with only a
    /// default backend takes it: its annotations except rewrite and redirect ones, which
    /// keep their zero values (`ssl-redirect` false).
    fn catch_all(ing: &IngressView) -> Self {
        Self {
            use_regex: false,
            rewrite_target: None,
            plain_http: Some(format!(
                "Ingress {} serves the catch-all server, whose root location never redirects to HTTPS",
                ing.key
            )),
            ..Self::of(ing)
        }
    }

    /// `needsRewrite(location) || location.Rewrite.UseRegex` for a location at `path`.
    fn regex_location(&self, path: &str) -> bool {
        self.use_regex || self.rewrite_target.as_deref().is_some_and(|t| t != path)
    }
}

/// `normalizePrefixPath`: a Prefix location's path ends in `/`.
fn normalized_prefix(path: &str) -> String {
    let mut normalized = path.to_string();
    if !path.ends_with('/') {
        normalized.push('/');
    }
    normalized
}

/// How much an Ingress weakens MTLS endpoints when it is taken as the oldest (lower: more):
/// its `auth-tls-verify-client` when it carries `auth-tls-*`, then whether its gate holds.
fn exposure_rank(ing: &IngressView, gate: Option<&str>) -> (u8, bool) {
    let facts = IngressFacts::of(ing);
    let verify = match facts.auth_tls.as_ref().map(|s| s.verify_client) {
        Some("off") => 0,
        Some("optional_no_ca") => 1,
        None | Some("optional") => 2,
        Some(_) => 3,
    };
    let gated = ing
        .annotation(AUTH_URL)
        .is_some_and(|u| is_gate_url(u, gate, CONTROLLER))
        && facts.location.gate_bypass.is_none();
    (verify, gated)
}

/// One problem the annotation audit finds on an Ingress, whatever host it serves:
/// [`SettingIssue::finding`] words it for a host.
enum SettingIssue {
    /// An annotation mtls-gate does not model; `why`: what it changes.
    Reported { key: String, why: &'static str },
    /// Not an ingress-nginx annotation of the supported versions.
    Unknown { key: String },
    /// A modelled annotation whose value the controller rejects: `what` the rule is,
    /// `then` what the controller does instead.
    Invalid {
        key: String,
        value: String,
        what: &'static str,
        then: String,
    },
}

impl SettingIssue {
    fn finding(&self, ctx: &HostContext<'_>, ing: &IngressView) -> Violation {
        let host = ctx.host;
        let message = match self {
            SettingIssue::Reported { key, why } => format!(
                "Ingress {} on host {host} sets {key} ({why}). mtls-gate does not model it, so the host cannot be proven compliant while it is there. Fix: remove {key} from the Ingresses of {host}, or serve the profile's endpoints from a host whose Ingresses do not use it.",
                ing.key
            ),
            SettingIssue::Unknown { key } => format!(
                "Ingress {} on host {host} sets {key}, which is not an ingress-nginx annotation mtls-gate knows (v1.10-v1.15): a newer controller may route or authenticate by it, a misspelt one is ignored by ingress-nginx. Fix: remove it, or correct its name (see the annotation table of the ingress-nginx dialect).",
                ing.key
            ),
            SettingIssue::Invalid {
                key,
                value,
                what,
                then,
            } => format!(
                "Ingress {} on host {host} sets {key}: {value:?}, which ingress-nginx rejects ({what}); the controller logs a validation error and {then}. mtls-gate evaluates that, but the value must be fixed: write one the controller accepts.",
                ing.key
            ),
        };
        ctx.finding(ViolationCode::UnmodelledSetting, Some(&ing.key), message)
    }
}

/// The audit of one Ingress's annotations: every reported or unknown annotation, and
/// every modelled one whose value the controller rejects.
fn setting_issues(ing: &IngressView) -> Vec<SettingIssue> {
    let mut out = Vec::new();
    for (key, value) in &ing.annotations {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        match annotations::audit(key) {
            Some(a) if a.decision == Decision::Reported => out.push(SettingIssue::Reported {
                key: key.clone(),
                why: a.why,
            }),
            Some(_) => {}
            None => out.push(SettingIssue::Unknown { key: key.clone() }),
        }
        let invalid = |what: &'static str, then: &str| SettingIssue::Invalid {
            key: key.clone(),
            value: value.clone(),
            what,
            then: then.to_string(),
        };
        const GO_BOOL: &str = "booleans are parsed by Go's strconv.ParseBool: 1 t T TRUE true True or 0 f F FALSE false False, without spaces";
        match name {
            "use-regex"
            | "ssl-redirect"
            | "force-ssl-redirect"
            | "auth-tls-pass-certificate-to-upstream"
                if bool_annotation(ing, key).is_err() =>
            {
                let then = match name {
                    "use-regex" => "uses false (no regex)",
                    "ssl-redirect" => "uses the ConfigMap's ssl-redirect (true unless changed)",
                    "force-ssl-redirect" => {
                        "uses the ConfigMap's force-ssl-redirect (false unless changed)"
                    }
                    _ => "does not pass the certificate",
                };
                out.push(invalid(GO_BOOL, then));
            }
            "auth-tls-verify-client" if !VERIFY_CLIENT_VALUES.contains(&value.as_str()) => out
                .push(invalid(
                    "it must be on, off, optional or optional_no_ca",
                    &format!("uses {:?}", verify_client(ing)),
                )),
            "auth-tls-verify-depth" if value.parse::<i64>().map_or(true, |d| d <= 0) => {
                out.push(invalid("it must be a positive integer", "uses 1"))
            }
            "satisfy" if value != "any" && value != "all" => {
                let effective = string_annotation(ing, SATISFY);
                let then = if effective.as_deref() == Some("any") {
                    "may still read it as any (the value is trimmed before use)"
                } else {
                    "uses the default (all)"
                };
                out.push(invalid("it must be any or all", then))
            }
            "rewrite-target"
                if !value.is_empty()
                    && !value
                        .strip_prefix('/')
                        .unwrap_or(value)
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~/:$".contains(&b)) =>
            {
                out.push(invalid(
                    "parser.RegexPathWithCapture allows letters, digits and -._~/:$",
                    "ignores it with annotation validation on (the default since v1.12), or uses it with validation off; mtls-gate assumes it is used",
                ))
            }
            _ => {}
        }
    }
    out
}

/// What ingress-nginx reads from one Ingress alone (its annotations, parsed and audited),
/// whatever host and profile it is evaluated for: derived once per view
/// ([`IngressView::dialect_memo`]), so rebuilding a host's table after a change parses
/// only the changed Ingress.
struct IngressFacts {
    auth_tls: Option<AuthTlsSettings>,
    /// `auth-tls-secret` resolved to a Secret's key ([`secret_key`]), if set.
    secret: Option<Result<ObjectKey, String>>,
    location: LocationSettings,
    issues: Vec<SettingIssue>,
}

impl IngressFacts {
    fn of(ing: &IngressView) -> Arc<Self> {
        ing.dialect_memo.get_or_derive(|| Self {
            auth_tls: AuthTlsSettings::of(ing),
            secret: ing
                .annotation(AUTH_TLS_SECRET)
                .map(|value| secret_key(ing, value.trim())),
            location: LocationSettings::of(ing),
            issues: setting_issues(ing),
        })
    }
}

impl IngressNginx {
    fn host_mode(
        &self,
        ctx: &HostContext<'_>,
        ings: &[Arc<IngressView>],
        tls: bool,
        table: &mut HostRouteTable,
    ) -> (HostMode, Option<AuthTlsWinner>) {
        let mut blocked: Option<String> = None;
        let mut winner: Option<AuthTlsWinner> = None;
        // The Ingresses of a host mostly name one Secret: look each up once in a row.
        let mut last_lookup: Option<(&ObjectKey, Lookup<'_, _>)> = None;
        let facts: Vec<Arc<IngressFacts>> = ings.iter().map(|i| IngressFacts::of(i)).collect();
        for (ing, facts) in ings.iter().zip(&facts) {
            let Some(resolved) = &facts.secret else {
                continue;
            };
            let key = match resolved {
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
            let lookup = match last_lookup {
                Some((last, lookup)) if last == key => lookup,
                _ => ctx.objects.secret(key),
            };
            last_lookup = Some((key, lookup.clone()));
            let usable = match lookup {
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
                && let Some(settings) = &facts.auth_tls
            {
                winner = Some((ing.key.clone(), settings.clone(), key.clone()));
            }
        }

        // Differing settings across the Ingresses of the host are merged "oldest wins".
        let carriers: Vec<(&Arc<IngressView>, &AuthTlsSettings)> = ings
            .iter()
            .zip(&facts)
            .filter_map(|(i, f)| f.auth_tls.as_ref().map(|s| (i, s)))
            .collect();
        if let Some((first, first_settings)) = carriers.first() {
            let (decider, decided) = match &winner {
                Some((key, settings, _)) => (key.clone(), settings.clone()),
                None => (first.key.clone(), (*first_settings).clone()),
            };
            for (ing, settings) in &carriers {
                if ing.key != decider && **settings != decided {
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

        let mode = match (blocked, &winner) {
            (Some(reason), _) => HostMode::Blocked(reason),
            (None, _) if !tls => HostMode::NoTls,
            (None, Some((source, settings, secret))) => HostMode::Verify {
                from: format!(
                    "auth-tls-verify-client {:?} with CA {secret}, from Ingress {source}",
                    settings.verify_client
                )
                .into(),
                verify_client: settings.verify_client,
                source: source.clone(),
                secret: secret.to_string(),
            },
            (None, None) => HostMode::NoCa,
        };
        (mode, winner)
    }
}

/// The Ingress whose `auth-tls-*` settings decide for its host (the oldest with a usable
/// CA), those settings, and the key of its CA Secret.
type AuthTlsWinner = (ObjectKey, AuthTlsSettings, ObjectKey);

/// The client authentication of a location of `ing` on a host in `mode`.
fn route_auth(
    mode: &HostMode,
    ing: &IngressView,
    settings: &LocationSettings,
    gate: Option<&str>,
) -> RouteAuth {
    let auth_url = ing.annotation(AUTH_URL).map(str::trim);
    let gate_url = auth_url.is_some_and(|u| is_gate_url(u, gate, CONTROLLER));
    let gated = gate_url && settings.gate_bypass.is_none();
    // Only the details of some modes name a foreign auth-url.
    let foreign = || match (auth_url, &settings.gate_bypass) {
        (Some(u), _) if !gate_url => format!(" (its auth-url {u:?} is not the profile's gate)"),
        (Some(_), Some(bypass)) => format!(" (its gate does not decide alone: {bypass})"),
        _ => String::new(),
    };
    let (kind, detail): (AuthKind, Arc<str>) = match mode {
        HostMode::Blocked(reason) => (
            AuthKind::Rejected,
            format!("host answers 403: {reason}").into(),
        ),
        HostMode::NoTls => (
            AuthKind::None,
            "host has no TLS, so no client certificate is requested".into(),
        ),
        HostMode::NoCa if gated => (
            AuthKind::None,
            format!(
                "Ingress {} has the gate as auth-url, but no Ingress of the host configures a usable CA, so ingress-nginx does not set ssl-client-verify and a client can forge it",
                ing.key
            )
            .into(),
        ),
        HostMode::NoCa => (
            AuthKind::None,
            format!(
                "no Ingress of the host sets a usable auth-tls-secret{}",
                foreign()
            )
            .into(),
        ),
        HostMode::Verify {
            verify_client,
            from,
            ..
        } => match (*verify_client, gated) {
            ("on", _) => (AuthKind::Required, from.clone()),
            ("optional", true) => (
                AuthKind::RequiredByGate,
                format!("{from}; gate via auth-url of Ingress {}", ing.key).into(),
            ),
            ("optional", false) => (
                AuthKind::Optional,
                format!("{from}; Ingress {} has no gate{}", ing.key, foreign()).into(),
            ),
            ("optional_no_ca", _) => (
                AuthKind::OptionalUnverified,
                format!("{from}; optional_no_ca never verifies the chain").into(),
            ),
            _ => (AuthKind::None, from.clone()),
        },
    };
    RouteAuth { kind, detail }
}

/// What makes two tables of a host serve differently: each route's owner, path, client
/// authentication and TLS, in order, and the host's client-auth summary.
fn same_decisions(a: &HostRouteTable, b: &HostRouteTable) -> bool {
    a.client_auth == b.client_auth
        && a.routes.len() == b.routes.len()
        && a.routes.iter().zip(&b.routes).all(|(x, y)| {
            x.source == y.source
                && x.path == y.path
                && x.path_type == y.path_type
                && x.auth.kind == y.auth.kind
                && x.tls == y.tls
                && x.serves_backend == y.serves_backend
                && x.matcher.same_as(&y.matcher)
        })
}

const SSL_REDIRECT_HINT: &str = ", or an Ingress of the host sets nginx.ingress.kubernetes.io/ssl-redirect \"false\" (then ingress-nginx also serves its paths in clear text on port 80: remove that annotation)";

impl IngressNginx {
    /// The table of one host with its Ingresses in the order the controller walks them
    /// (oldest first), with what [`PatchState::patch`] needs to derive later tables from it
    /// when `keep_state` is set and the host is one it can patch.
    fn build_table(
        &self,
        ctx: &HostContext<'_>,
        ings: &[Arc<IngressView>],
        keep_state: bool,
    ) -> HostRouteTable {
        let mut table = HostRouteTable {
            host_key: ctx.host_key.to_string(),
            ..Default::default()
        };
        let catch_all = ctx.host_key.is_empty();
        let tls = !catch_all && ings.iter().any(|i| i.has_tls_for(ctx.host_key));
        let (mode, winner) = self.host_mode(ctx, ings, tls, &mut table);
        table.client_auth = match &mode {
            HostMode::Blocked(r) => format!("403 for every request ({r})"),
            HostMode::NoTls => "no TLS".into(),
            HostMode::NoCa => "no client certificate requested".into(),
            HostMode::Verify {
                verify_client,
                source,
                secret,
                ..
            } => {
                format!(
                    "auth-tls-verify-client {verify_client:?}, CA {secret} (from Ingress {source})"
                )
            }
        };
        let facts: Vec<Arc<IngressFacts>> = ings.iter().map(|i| IngressFacts::of(i)).collect();
        for (ing, facts) in ings.iter().zip(&facts) {
            table
                .findings
                .extend(facts.issues.iter().map(|issue| issue.finding(ctx, ing)));
        }
        let settings: Vec<&LocationSettings> = facts.iter().map(|f| &f.location).collect();
        // The catch-all server's root location is taken by the oldest Ingress with a
        // default backend and no rules, before any host-less `/` path.
        let catch_all_owner = ings
            .iter()
            .position(|i| catch_all && i.rules.is_empty() && i.has_default_backend);

        // Locations, oldest Ingress first; a duplicate (path, type) is dropped.
        let mut locations: Vec<Location> = Vec::new();
        let mut placed: std::collections::HashSet<(&str, PathType)> =
            std::collections::HashSet::new();
        for (owner, ing) in ings.iter().enumerate() {
            for (path, path_type, written_type) in host_paths(ing, ctx.host_key) {
                let root = path == "/" && path_type == PathType::Prefix;
                if (root && catch_all_owner.is_some()) || !placed.insert((path, path_type)) {
                    continue;
                }
                locations.push(Location {
                    owner,
                    path,
                    path_type,
                    written_type,
                    own_regex: settings[owner].regex_location(path),
                });
            }
        }
        let explicit_root = locations
            .iter()
            .any(|l| l.path == "/" && l.path_type == PathType::Prefix);
        // The root location when no Ingress path `/` takes it: (owner, its settings apply,
        // serves a backend of the owner). `createServers` gives a host's root the
        // annotations and default backend of the host's oldest Ingress; the catch-all
        // server's root has no Ingress's annotations unless a default-backend-only
        // Ingress takes it.
        let implicit_root: Option<(usize, Option<LocationSettings>, bool)> = if explicit_root {
            None
        } else if let Some(owner) = catch_all_owner {
            Some((owner, Some(LocationSettings::catch_all(&ings[owner])), true))
        } else if catch_all {
            (!ings.is_empty()).then_some((0, None, false))
        } else {
            ings.first()
                .map(|first| (0, Some(settings[0].clone()), first.has_default_backend))
        };
        // enforceRegexModifier over the placed locations (a Prefix location that is not a
        // regex location of its own is placed at its normalised path, ending in `/`).
        let placed_regex = |l: &Location| {
            if l.path_type == PathType::Prefix && l.path != "/" && !l.own_regex {
                // `regex_location` of the normalised path, which only a rewrite-target
                // needs spelt out.
                let s = settings[l.owner];
                s.use_regex
                    || s.rewrite_target
                        .as_deref()
                        .is_some_and(|t| t != normalized_prefix(l.path))
            } else {
                l.own_regex
            }
        };
        let regex_mode = locations.iter().any(placed_regex)
            || implicit_root
                .as_ref()
                .and_then(|(_, s, _)| s.as_ref())
                .is_some_and(|s| s.regex_location("/"));
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
                    .then_with(|| b.path.cmp(a.path))
            });
        }
        let exact_paths: std::collections::HashSet<&str> = locations
            .iter()
            .filter(|l| l.path_type == PathType::Exact)
            .map(|l| l.path)
            .collect();
        let gate = ctx.profile.gate_url();
        let serving = |ing: &IngressView, settings: &LocationSettings| {
            location_serving(&mode, tls, gate, ing, settings)
        };
        let mut per_owner: Vec<Option<(bool, RouteAuth)>> = vec![None; ings.len()];
        for loc in &locations {
            let ing = &ings[loc.owner];
            let (route_tls, auth) = per_owner[loc.owner]
                .get_or_insert_with(|| serving(ing, settings[loc.owner]))
                .clone();
            if tls && !route_tls {
                table.plain_http_hint = SSL_REDIRECT_HINT;
            }
            push_location_routes(
                table.routes.make_mut(),
                ing,
                loc,
                regex_mode,
                exact_paths.contains(loc.path),
                route_tls,
                &auth,
            );
        }
        // A regex-mode host orders every location by length, a catch-all server and the
        // controller ConfigMap's keys reach every route: those are always rebuilt.
        if keep_state
            && ctx.keep_patch_state
            && !catch_all
            && !regex_mode
            && ctx.profile.spec.controller_config_map.is_none()
            && let Some(oldest) = ings.first()
        {
            let mut claims: imbl::HashMap<Arc<str>, PathClaims> = imbl::HashMap::new();
            for ing in ings {
                for (path, path_type, _) in host_paths(ing, ctx.host_key) {
                    claims.entry(Arc::from(path)).or_default().add(path_type, 1);
                }
            }
            table.patch_state = Some(Arc::new(PatchState {
                tls,
                tls_ingresses: ings.iter().filter(|i| i.has_tls_for(ctx.host_key)).count(),
                mode: mode.clone(),
                winner,
                oldest: oldest.key.clone(),
                ingresses: ings.len(),
                undated: ings.iter().filter(|i| i.created.is_none()).count(),
                implicit_root: implicit_root.is_some(),
                claims: Arc::new(PathClaimsMap::Built(claims)),
            }));
        }
        if let Some((owner, root_settings, serves_backend)) = implicit_root {
            let ing = &ings[owner];
            // Without an Ingress's annotations (the catch-all server's own root) the
            // location has no gate and, without TLS, no client authentication.
            let (route_tls, auth) = match &root_settings {
                Some(s) => serving(ing, s),
                None => (
                    tls,
                    RouteAuth {
                        kind: AuthKind::None,
                        detail: "the catch-all server's own default location".into(),
                    },
                ),
            };
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
            table.routes.make_mut().insert(
                at,
                Arc::new(Route {
                    source: RouteSource::ingress(ing),
                    path: "/".into(),
                    path_type: PathType::Prefix,
                    matcher: if regex_mode {
                        PathMatcher::nginx_regex("/")
                    } else {
                        PathMatcher::Prefix("/".into())
                    },
                    serves_backend,
                    tls: route_tls,
                    auth,
                    priority: 0,
                }),
            );
        }
        table
    }
}

/// The paths of `ing`'s rules for `host_key` in order: (path, type as placed:
/// `ImplementationSpecific` is `Prefix`, type as written).
fn host_paths<'i>(
    ing: &'i IngressView,
    host_key: &'i str,
) -> impl Iterator<Item = (&'i str, PathType, PathType)> + 'i {
    ing.rules
        .iter()
        .filter(move |r| r.host == host_key)
        .flat_map(|r| &r.paths)
        .map(|p| {
            let placed = if p.path_type == PathType::Exact {
                PathType::Exact
            } else {
                PathType::Prefix
            };
            (p.path.as_str(), placed, p.path_type)
        })
}

/// TLS and client authentication of the locations of `ing` (they depend only on the host
/// and the Ingress's settings).
fn location_serving(
    mode: &HostMode,
    tls: bool,
    gate: Option<&str>,
    ing: &IngressView,
    settings: &LocationSettings,
) -> (bool, RouteAuth) {
    match (&settings.plain_http, tls) {
        (Some(plain), true) => (
            false,
            RouteAuth {
                kind: AuthKind::None,
                detail: plain.as_str().into(),
            },
        ),
        _ => (tls, route_auth(mode, ing, settings, gate)),
    }
}

/// The routes of one location: a `Prefix` location not ending in `/` is split into
/// `location /p/` and `location = /p` (unless an `Exact /p` location exists: `has_exact`).
fn push_location_routes(
    routes: &mut Vec<Arc<Route>>,
    ing: &IngressView,
    loc: &Location<'_>,
    regex_mode: bool,
    has_exact: bool,
    tls: bool,
    auth: &RouteAuth,
) {
    let split = loc.path_type == PathType::Prefix
        && loc.path != "/"
        && !loc.path.ends_with('/')
        && !loc.own_regex;
    let mut matchers = Vec::with_capacity(2);
    if split {
        let with_slash = normalized_prefix(loc.path);
        if regex_mode {
            matchers.push(PathMatcher::nginx_regex(&with_slash));
            if !has_exact {
                matchers.push(PathMatcher::nginx_regex(loc.path));
            }
        } else {
            matchers.push(PathMatcher::Prefix(with_slash));
            if !has_exact {
                matchers.push(PathMatcher::Exact(loc.path.to_string()));
            }
        }
    } else if regex_mode {
        matchers.push(PathMatcher::nginx_regex(loc.path));
    } else if loc.path_type == PathType::Exact {
        matchers.push(PathMatcher::Exact(loc.path.to_string()));
    } else {
        matchers.push(PathMatcher::Prefix(loc.path.to_string()));
    }
    for matcher in matchers {
        routes.push(Arc::new(Route {
            source: RouteSource::ingress(ing),
            path: loc.path.to_string(),
            path_type: loc.written_type,
            matcher,
            serves_backend: true,
            tls,
            auth: auth.clone(),
            priority: 0,
        }));
    }
}

/// A host's locations by literal ([`LiteralIndex`]), kept with its table so that each
/// representative path is checked against the few locations that may match it, and
/// whether the host is in regex mode (a property of the whole host).
#[derive(Debug)]
struct LocationIndex {
    literals: LiteralIndex,
    regex_mode: bool,
}

/// How many location choices a table answers by scanning every location before it
/// indexes them: a table derived after a change ([`Dialect::patched_table`]) is asked for
/// the few paths the change reaches, fewer than it takes to pay for an index; a table
/// evaluated in full is asked for every representative path.
const SCANS_BEFORE_INDEX: usize = 16;

/// [`LocationIndex`], built on a table's `SCANS_BEFORE_INDEX + 1`-th location choice.
#[derive(Debug, Default)]
struct LocationLookup {
    scans: std::sync::atomic::AtomicUsize,
    index: std::sync::OnceLock<LocationIndex>,
}

impl LocationLookup {
    /// The index of `routes` (their table's), or `None` while scanning is cheaper.
    fn index(&self, routes: &RouteList) -> Option<&LocationIndex> {
        if let Some(index) = self.index.get() {
            return Some(index);
        }
        let scans = self
            .scans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (scans >= SCANS_BEFORE_INDEX).then(|| self.index.get_or_init(|| LocationIndex::new(routes)))
    }
}

/// The location lookup of a patched table: the old table's built [`LocationIndex`] through
/// the patch's moves, so that a review's few location choices on the patched table need
/// neither a scan of every location nor an index of their own.
#[derive(Debug)]
struct PatchedLocations {
    /// The old table's [`LocationLookup`], its index built.
    base: Arc<dyn std::any::Any + Send + Sync>,
    moves: RemappedIndex,
    /// Regex mode of the patched table (a property of all its locations): the old one's.
    regex_mode: bool,
}

impl PatchedLocations {
    /// For `after`, patched from `before` by `moves`, when `before`'s index was built.
    fn of(before: &HostRouteTable, after: &HostRouteTable, moves: &RouteMoves) -> Option<Self> {
        let base = before.winners_index.get()?;
        let index = base.downcast_ref::<LocationLookup>()?.index.get()?;
        // A patch keeps the host's mode: regex-mode hosts are rebuilt, and a patch refuses
        // an Ingress with regex settings ([`PatchState::patch`]).
        debug_assert_eq!(
            index.regex_mode,
            LocationIndex::regex_mode_of(&after.routes),
            "a patch changed the host's regex mode"
        );
        Some(Self {
            base: Arc::clone(base),
            moves: RemappedIndex::new(moves.clone()),
            regex_mode: index.regex_mode,
        })
    }

    fn winners(&self, routes: &RouteList, path: &str) -> Option<Vec<usize>> {
        let base = self.base.downcast_ref::<LocationLookup>()?.index.get()?;
        let candidates = self.moves.candidates(&base.literals, path);
        Some(location_winners(routes, self.regex_mode, path, candidates))
    }
}

impl LocationIndex {
    fn new(routes: &RouteList) -> Self {
        Self {
            literals: LiteralIndex::new(routes.iter().map(|r| &r.matcher)),
            regex_mode: Self::regex_mode_of(routes),
        }
    }

    /// In regex mode every location of the host is a regex (see the module doc): a
    /// property of the whole host, not of the locations that may match a path.
    fn regex_mode_of(routes: &RouteList) -> bool {
        routes.iter().any(|r| {
            matches!(
                r.matcher,
                PathMatcher::PrefixIgnoreCase(_) | PathMatcher::Regex(_)
            )
        })
    }
}

/// nginx's location choice among `candidates` (ascending indices of every route that may
/// match `path`; the others cannot win): an exact location first, then in regex mode the
/// first regex in configuration order (undecidable ones may or may not match), else the
/// longest prefix (the first of equals).
fn location_winners(
    routes: &RouteList,
    regex_mode: bool,
    path: &str,
    candidates: impl IntoIterator<Item = usize> + Clone,
) -> Vec<usize> {
    if let Some(i) = candidates.clone().into_iter().find(|&i| {
        matches!(routes[i].matcher, PathMatcher::Exact(_))
            && routes[i].matcher.matches(path) == MatchResult::Yes
    }) {
        return vec![i];
    }
    if regex_mode {
        // Config order, first match wins; undecidable expressions may or may not match.
        let mut out = Vec::new();
        for i in candidates {
            match routes[i].matcher.matches(path) {
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
    let longest = candidates
        .into_iter()
        .filter(|&i| {
            matches!(routes[i].matcher, PathMatcher::Prefix(_))
                && routes[i].matcher.matches(path) == MatchResult::Yes
        })
        .max_by_key(|&i| {
            (
                routes[i].matcher.literal().map_or(0, |(l, _)| l.len()),
                std::cmp::Reverse(i),
            )
        });
    longest.map(|i| vec![i]).unwrap_or_default()
}

/// How often the Ingresses of a host claim one path, by placed type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PathClaims {
    prefix: u32,
    exact: u32,
}

impl PathClaims {
    fn add(&mut self, path_type: PathType, n: i32) {
        let count = if path_type == PathType::Exact {
            &mut self.exact
        } else {
            &mut self.prefix
        };
        *count = count.saturating_add_signed(n);
    }
}

/// Every path of a host's Ingresses (as written), with how many claims of each type. A
/// patched table's map is its base's with the changed Ingress's paths taken out and put
/// in, applied on first read: only a table patched again reads it, and a review's
/// after-state never is, so a review does not copy the map's nodes it would change.
enum PathClaimsMap {
    Built(imbl::HashMap<Arc<str>, PathClaims>),
    Derived {
        base: imbl::HashMap<Arc<str>, PathClaims>,
        /// Claims to take out (-1) and put in (+1), in that order.
        change: Vec<(Arc<str>, PathType, i32)>,
        applied: std::sync::OnceLock<imbl::HashMap<Arc<str>, PathClaims>>,
    },
}

impl PathClaimsMap {
    fn get(&self, path: &str) -> Option<PathClaims> {
        self.map().get(path).copied()
    }

    fn map(&self) -> &imbl::HashMap<Arc<str>, PathClaims> {
        match self {
            PathClaimsMap::Built(map) => map,
            PathClaimsMap::Derived {
                base,
                change,
                applied,
            } => applied.get_or_init(|| {
                let mut map = base.clone();
                for (path, path_type, n) in change {
                    if *n < 0 {
                        if let Some(count) = map.get_mut(&**path) {
                            count.add(*path_type, *n);
                            if *count == PathClaims::default() {
                                map.remove(&**path);
                            }
                        }
                    } else {
                        map.entry(Arc::clone(path)).or_default().add(*path_type, *n);
                    }
                }
                map
            }),
        }
    }

    /// This map with the claims of `removed` taken out and those of `added` put in.
    fn after(
        &self,
        removed: &[(&str, PathType, PathType)],
        added: &[(&str, PathType, PathType)],
    ) -> Self {
        let change = (removed.iter().map(|&(p, t, _)| (p, t, -1)))
            .chain(added.iter().map(|&(p, t, _)| (p, t, 1)))
            .map(|(p, t, n)| (Arc::from(p), t, n))
            .collect();
        PathClaimsMap::Derived {
            // Shares the base's nodes: a copy of the root only.
            base: self.map().clone(),
            change,
            applied: std::sync::OnceLock::new(),
        }
    }
}

/// What deriving a host's table after a change of one Ingress needs beyond the routes
/// ([`PatchState::patch`]): kept with tables of hosts that are not in regex mode, not the
/// catch-all server, and evaluated without a controller ConfigMap.
#[derive(Clone)]
struct PatchState {
    tls: bool,
    /// Ingresses of the host with a `spec.tls` entry for it: the host has TLS while any does.
    tls_ingresses: usize,
    mode: HostMode,
    winner: Option<AuthTlsWinner>,
    /// The first Ingress in the controller's order: its annotations make the implicit
    /// default location, and it decides first.
    oldest: ObjectKey,
    ingresses: usize,
    /// Ingresses without a creation time (two or more are ordered the weakest way).
    undated: usize,
    /// No Ingress has a `Prefix /` path, so the table ends with the implicit root.
    implicit_root: bool,
    /// Every path of the host's Ingresses (as written), with how many claims of each type.
    claims: Arc<PathClaimsMap>,
}

impl PatchState {
    /// The table of `host` after its Ingress changed from `old` to `new`, when the change
    /// can only replace that Ingress's own routes, where they stood:
    /// - the Ingress keeps its place in the controller's order (an UPDATE keeps its
    ///   creation time; a CREATE, not created yet, comes after every created Ingress), is
    ///   not the oldest (whose annotations make the default location) and leaves fewer than
    ///   two undated Ingresses (whose order is taken the weakest way);
    /// - the host keeps its TLS, its client-auth mode and its conflicts: an UPDATE keeps
    ///   the Ingress's `auth-tls-*` settings and Secret; a created or deleted Ingress sets
    ///   none, or exactly the deciding Ingress's;
    /// - no version of the Ingress has an annotation the audit reports, regex or rewrite
    ///   settings (regex mode), clear-text serving on a TLS host, or a `Prefix /` path
    ///   (the explicit root replaces the implicit one);
    /// - no other Ingress claims any of its paths (duplicates are dropped oldest-first, and
    ///   an `Exact /p` decides whether a `Prefix /p` is split into two routes).
    ///
    /// Anything else returns `None`, and the table is built in full.
    fn patch(
        &self,
        profile: &CompiledProfile,
        host: &str,
        before: &HostRouteTable,
        old: Option<&IngressView>,
        new: Option<&IngressView>,
    ) -> Option<TablePatch> {
        let changed = old.or(new)?;
        let undated = |i: Option<&IngressView>| usize::from(i.is_some_and(|i| i.created.is_none()));
        match (old, new) {
            (Some(o), Some(n)) if o.created == n.created => {}
            (None, Some(n)) if n.created.is_none() && self.undated == 0 => {}
            (Some(_), None) if self.ingresses > 1 => {}
            _ => return None,
        }
        if changed.key == self.oldest {
            return None;
        }
        let has_tls = |i: Option<&IngressView>| usize::from(i.is_some_and(|i| i.has_tls_for(host)));
        let tls_ingresses = (self.tls_ingresses + has_tls(new)).checked_sub(has_tls(old))?;
        if (tls_ingresses > 0) != self.tls {
            return None;
        }
        let (facts_old, facts_new) = (old.map(IngressFacts::of), new.map(IngressFacts::of));
        for facts in facts_old.iter().chain(&facts_new) {
            let location = &facts.location;
            if !facts.issues.is_empty()
                || location.use_regex
                || location.rewrite_target.is_some()
                || (self.tls && location.plain_http.is_some())
            {
                return None;
            }
        }
        let follows_winner = |facts: &IngressFacts| {
            (facts.auth_tls.is_none() && facts.secret.is_none())
                || self
                    .winner
                    .as_ref()
                    .is_some_and(|(winner, settings, secret)| {
                        *winner != changed.key
                            && facts.auth_tls.as_ref() == Some(settings)
                            && matches!(&facts.secret, Some(Ok(key)) if key == secret)
                    })
        };
        let same_client_auth = match (&facts_old, &facts_new) {
            (Some(o), Some(n)) => o.auth_tls == n.auth_tls && o.secret == n.secret,
            (Some(f), None) | (None, Some(f)) => follows_winner(f),
            (None, None) => false,
        };
        if !same_client_auth {
            return None;
        }
        let old_paths: Vec<(&str, PathType, PathType)> = old
            .map(|o| host_paths(o, host).collect())
            .unwrap_or_default();
        let new_paths: Vec<(&str, PathType, PathType)> = new
            .map(|n| host_paths(n, host).collect())
            .unwrap_or_default();
        for (path, path_type, _) in old_paths.iter().chain(&new_paths) {
            if *path == "/" && *path_type == PathType::Prefix {
                return None;
            }
            let mut own = PathClaims::default();
            for (p, t, _) in &old_paths {
                if p == path {
                    own.add(*t, 1);
                }
            }
            if self.claims.get(path).unwrap_or_default() != own {
                return None;
            }
        }
        let claims = Arc::new(self.claims.after(&old_paths, &new_paths));

        let gate = profile.gate_url();
        let routes_of = |ing: &IngressView,
                         settings: &LocationSettings,
                         paths: &[(&str, PathType, PathType)]| {
            let (tls, auth) = location_serving(&self.mode, self.tls, gate, ing, settings);
            let mut placed = std::collections::HashSet::new();
            let locations: Vec<Location<'_>> = paths
                .iter()
                .filter(|(path, path_type, _)| placed.insert((*path, *path_type)))
                .map(|&(path, path_type, written_type)| Location {
                    owner: 0,
                    path,
                    path_type,
                    written_type,
                    own_regex: false,
                })
                .collect();
            let mut routes = Vec::new();
            for loc in &locations {
                let has_exact = locations
                    .iter()
                    .any(|l| l.path_type == PathType::Exact && l.path == loc.path);
                push_location_routes(&mut routes, ing, loc, false, has_exact, tls, &auth);
            }
            routes
        };
        let inserted = new
            .zip(facts_new.as_deref())
            .map(|(n, facts)| routes_of(n, &facts.location, &new_paths))
            .unwrap_or_default();
        // The old version's routes stand in one run (locations are placed Ingress by
        // Ingress, and the implicit root is the oldest's); a CREATE's go before the
        // implicit root.
        let start = match old {
            Some(_) => before
                .routes_of(&RouteSource::ingress(changed))
                .first()
                .copied()
                .or_else(|| inserted.is_empty().then_some(0))?,
            None => before
                .routes
                .len()
                .checked_sub(usize::from(self.implicit_root))?,
        };
        let run = before
            .routes
            .iter()
            .skip(start)
            .take_while(|r| old.is_some() && r.source.key == changed.key)
            .count();
        let replaced = start..start + run;
        // Shares the old table's routes ([`RouteList`]).
        let (routes, moves) = before.routes.patched(
            replaced.collect(),
            inserted
                .into_iter()
                .enumerate()
                .map(|(k, route)| (start + k, route))
                .collect(),
        );
        let state = PatchState {
            tls_ingresses,
            ingresses: self.ingresses + usize::from(new.is_some()) - usize::from(old.is_some()),
            undated: self.undated + undated(new) - undated(old),
            claims,
            ..self.clone()
        };
        let table = before.with_routes(routes, Some(Arc::new(state)));
        if let Some(patched) = PatchedLocations::of(before, &table, &moves) {
            let patched: Arc<dyn std::any::Any + Send + Sync> = Arc::new(patched);
            let _ = table.winners_index.set(patched);
        }
        Some(TablePatch { table, moves })
    }
}

/// `server-alias` (`internal/ingress/annotations/alias/main.go`): a comma-separated list,
/// each name trimmed. Names nginx matches as a wildcard or regular expression
/// (`server_name` syntax) are indexed so that they reach every host they may name.
fn server_aliases(ingress: &IngressView) -> Vec<String> {
    let Some(value) = ingress.annotation(&format!("{PREFIX}server-alias")) else {
        return Vec::new();
    };
    value
        .split(',')
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| !a.is_empty())
        .flat_map(|alias| {
            if let Some(rest) = alias.strip_prefix('.') {
                // `.bank.example` is `bank.example` and `*.bank.example`.
                vec![rest.to_string(), format!("*.{rest}")]
            } else if alias.starts_with('~') || alias.trim_start_matches("*.").contains('*') {
                vec![crate::cluster::ANY_HOST_NAME.to_string()]
            } else {
                vec![alias]
            }
        })
        .collect()
}

/// Whether an alias of `ingress` may name `host`.
fn aliases_name(ingress: &IngressView, host: &str) -> bool {
    server_aliases(ingress)
        .iter()
        .any(|key| crate::cluster::naming_keys(host).contains(key))
}

impl IngressNginx {
    /// Aliases of other hosts' Ingresses that make their server answer `host`: ingress-nginx
    /// drops an alias naming a host with a server of its own (`createServers`,
    /// `internal/ingress/controller/controller.go`), so they matter when no Ingress has a
    /// rule for exactly `host`; nginx then prefers the alias's exact `server_name` over a
    /// wildcard or default server.
    fn alias_findings(&self, ctx: &HostContext<'_>) -> Vec<crate::violation::Violation> {
        let own_server = ctx
            .ingresses
            .iter()
            .any(|i| i.rules.iter().any(|r| r.host == ctx.host));
        if own_server {
            return Vec::new();
        }
        ctx.named_by
            .iter()
            .filter(|ing| aliases_name(ing, ctx.host))
            .map(|ing| {
                let hosts: Vec<&str> = ing.hosts().collect();
                ctx.finding(
                    ViolationCode::UnmodelledSetting,
                    Some(&ing.key),
                    format!(
                        "Ingress {} (host {}) names {} in {PREFIX}server-alias ({:?}), and no Ingress has a rule for {}: ingress-nginx answers {} with the server of {}, its paths and client-certificate settings, which mtls-gate does not evaluate for {}. Fix: give {} an Ingress of its own, or remove the alias.",
                        ing.key,
                        hosts.join(", "),
                        ctx.host,
                        ing.annotation(&format!("{PREFIX}server-alias")).unwrap_or_default(),
                        ctx.host,
                        ctx.host,
                        hosts.join(", "),
                        ctx.host,
                        ctx.host,
                    ),
                )
            })
            .collect()
    }
}

impl IngressNginx {
    fn ordered_table(&self, ctx: &HostContext<'_>) -> HostRouteTable {
        let mut ings = ctx.ingresses.clone();
        ings.sort_by(|a, b| oldest_first(a, b));
        let undated: Vec<&ObjectKey> = ings
            .iter()
            .filter(|i| i.created.is_none())
            .map(|i| &i.key)
            .collect();
        // One Ingress without a creation time is the object of an admission CREATE: the
        // newest. Two or more come from manifests without `creationTimestamp`s, whose
        // order in a cluster is unknown: evaluate the order that weakens MTLS endpoints
        // most (every undated Ingress may be older than every dated one).
        if undated.len() < 2 {
            return self.build_table(ctx, &ings, true);
        }
        let gate = ctx.profile.gate_url();
        let mut worst = ings.clone();
        worst.sort_by(|a, b| {
            b.created
                .is_none()
                .cmp(&a.created.is_none())
                .then_with(|| match (a.created, b.created) {
                    (None, None) => exposure_rank(a, gate).cmp(&exposure_rank(b, gate)),
                    _ => std::cmp::Ordering::Equal,
                })
                .then_with(|| oldest_first(a, b))
        });
        let mut table = self.build_table(ctx, &worst, false);
        let guess = self.build_table(ctx, &ings, false);
        if !same_decisions(&table, &guess) {
            let names: Vec<String> = undated.iter().map(|k| k.to_string()).collect();
            let assumed: Vec<String> = worst
                .iter()
                .filter(|i| i.created.is_none())
                .map(|i| i.key.to_string())
                .collect();
            table.findings.push(ctx.finding(
                ViolationCode::HostSettingsConflict,
                worst.first().map(|i| &i.key),
                format!(
                    "Ingresses {} on host {} have no metadata.creationTimestamp, and their creation order decides how ingress-nginx serves the host (the oldest Ingress decides the host's client-certificate settings, duplicate paths and the default location). The manifests do not say that order, so mtls-gate evaluates the order that weakens MTLS endpoints most, oldest first: {}; the coverage shows that case, not a guess. Fix: give the Ingresses of the host identical client-auth settings and distinct paths so that order does not matter, or check the manifests as exported from the cluster (with their creationTimestamps).",
                    names.join(", "),
                    ctx.host,
                    assumed.join(", ")
                ),
            ));
        }
        table
    }
}

impl Dialect for IngressNginx {
    fn keeps_annotation(&self, key: &str) -> bool {
        annotations::kept_in_views(key)
    }

    fn reads_controller_config_map(&self) -> bool {
        true
    }

    /// `--ingress-class` defaults to `nginx` (`cmd/nginx/flags.go`), and the Helm chart
    /// passes `controller.ingressClass`, also `nginx`, whatever the IngressClass is named.
    fn legacy_class_default(&self) -> Option<&'static str> {
        Some("nginx")
    }

    fn host_aliases(&self, ingress: &IngressView) -> Vec<String> {
        server_aliases(ingress)
    }

    fn host_table(&self, ctx: &HostContext<'_>) -> HostRouteTable {
        let aliased = self.alias_findings(ctx);
        let mut table = if ctx.ingresses.is_empty() {
            // Named only outside rules (`spec.tls`, an alias): no server of its own.
            HostRouteTable {
                host_key: ctx.host_key.to_string(),
                client_auth: "no Ingress has a rule for this host".into(),
                ..Default::default()
            }
        } else {
            let mut table = self.ordered_table(ctx);
            config_map::apply(ctx, &mut table);
            table
        };
        table.findings.extend(aliased);
        table
    }

    fn patched_table(
        &self,
        profile: &CompiledProfile,
        host: &str,
        before: &HostRouteTable,
        old: Option<&IngressView>,
        new: Option<&IngressView>,
    ) -> Option<TablePatch> {
        before
            .kept_patch_state::<PatchState>()?
            .patch(profile, host, before, old, new)
    }

    fn winners(&self, table: &HostRouteTable, path: &str) -> Vec<usize> {
        let routes = &table.routes;
        let lookup = table
            .winners_index
            .get_or_init(|| Arc::new(LocationLookup::default()));
        if let Some(winners) = lookup
            .downcast_ref::<PatchedLocations>()
            .and_then(|patched| patched.winners(routes, path))
        {
            return winners;
        }
        match lookup
            .downcast_ref::<LocationLookup>()
            .and_then(|lookup| lookup.index(routes))
        {
            Some(index) => location_winners(
                routes,
                index.regex_mode,
                path,
                index.literals.candidates(path),
            ),
            None => location_winners(
                routes,
                LocationIndex::regex_mode_of(routes),
                path,
                0..routes.len(),
            ),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn location(matcher: PathMatcher) -> Arc<Route> {
        crate::dialect::required_route(crate::dialect::INGRESS_KIND, matcher, 0)
    }

    /// The indexed location choice is nginx's choice over every location, for paths that
    /// each kind of location matches, almost matches, or does not; in literal and in regex
    /// mode.
    #[test]
    fn indexed_winners_equal_a_scan_of_every_location() {
        let base = "/open-banking-nz/v3.0";
        let literal = vec![
            location(PathMatcher::Exact(format!("{base}/accounts"))),
            location(PathMatcher::Prefix(format!("{base}/accounts/"))),
            location(PathMatcher::Prefix(format!("{base}/"))),
            location(PathMatcher::Exact(base.to_string())),
            location(PathMatcher::Prefix(format!("{base}/"))),
            location(PathMatcher::Prefix(format!("{base}/acc"))),
            location(PathMatcher::Exact(format!("{base}/accounts"))),
            location(PathMatcher::Prefix("/".into())),
        ];
        let regex = vec![
            location(PathMatcher::nginx_regex(&format!("{base}/accounts/"))),
            location(PathMatcher::nginx_regex(&format!("{base}/pay.*"))),
            location(PathMatcher::Exact(format!("{base}/accounts"))),
            location(PathMatcher::nginx_regex("/")),
        ];
        let paths = [
            "/",
            "",
            base,
            &format!("{base}/"),
            &format!("{base}/accounts"),
            &format!("{base}/Accounts/a1"),
            &format!("{base}/accounts/a1/balances"),
            &format!("{base}/accountsx"),
            &format!("{base}/payments/p1"),
            "/other",
            "//",
        ];
        for (mode, routes) in [("literal", literal), ("regex", regex)] {
            let table = HostRouteTable {
                routes: routes.into(),
                ..Default::default()
            };
            let regex_mode = LocationIndex::regex_mode_of(&table.routes);
            assert_eq!(regex_mode, mode == "regex");
            let indexed = || {
                table
                    .winners_index
                    .get()
                    .and_then(|i| i.downcast_ref::<LocationLookup>())
                    .is_some_and(|l| l.index.get().is_some())
            };
            // The first choices scan; later ones use the index kept with the table.
            for round in ["scanned", "indexed"] {
                for path in paths {
                    assert_eq!(
                        IngressNginx.winners(&table, path),
                        location_winners(&table.routes, regex_mode, path, 0..table.routes.len()),
                        "{mode}, {round}: {path}"
                    );
                }
                assert_eq!(indexed(), round == "indexed", "{mode}, {round}");
                for _ in paths.len()..=SCANS_BEFORE_INDEX {
                    IngressNginx.winners(&table, "/");
                }
            }
        }
    }
}
