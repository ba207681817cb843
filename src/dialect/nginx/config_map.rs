//! The ingress-nginx controller ConfigMap (`--configmap`), when the profile names it
//! (`spec.controllerConfigMap`).
//!
//! The controller decodes the ConfigMap into `Configuration`
//! (`internal/ingress/controller/config/config.go`, json tags) with mapstructure and
//! `WeaklyTypedInput` (`internal/ingress/controller/template/configmap.go`, `ReadConfig`):
//! a boolean is `strconv.ParseBool` of the string, the empty string is `false`, and a value
//! that does not parse is logged and leaves the default in place. Keys it does not know are
//! ignored. The keys that change who reaches an endpoint:
//!
//! | key | default | what mtls-gate does |
//! |---|---|---|
//! | `ssl-redirect` | `true` | modelled: `false` serves the paths of every Ingress without its own `ssl-redirect`/`force-ssl-redirect` annotation in clear text on port 80 as well (`redirect_to_https` in `rootfs/etc/nginx/lua/lua_ingress.lua` redirects only when `ssl_redirect` holds) |
//! | `force-ssl-redirect` | `false` | modelled: `true` keeps the paths of Ingresses that set `ssl-redirect: "false"` redirected; mtls-gate does not credit it (it can only narrow exposure), so such paths are still reported |
//! | `use-forwarded-headers` | `false` | modelled: `true` makes `$pass_access_scheme` the client's `X-Forwarded-Proto` (`nginx.tmpl`), and `redirect_to_https` never redirects a request whose scheme is not `http`: a plain-HTTP request that claims `https` reaches every path without a certificate |
//! | `no-tls-redirect-locations` | `/.well-known/acme-challenge` | reported when changed: the listed locations answer in clear text |
//! | `main-snippet`, `http-snippet`, `server-snippet`, `location-snippet` | empty | reported when set: arbitrary nginx configuration in every server or location |
//! | any other key | | irrelevant to client certificates (the nginx module doc's ConfigMap table says why for the ones that come close) |
//!
//! Only relaxing settings are modelled: a ConfigMap value that could only narrow exposure
//! is not credited, so the verdict errs towards reporting.

use std::collections::BTreeMap;

use super::annotations::bool_annotation;
use super::{FORCE_SSL_REDIRECT, SSL_REDIRECT};
use crate::dialect::config_map::{ControllerConfig, controller_config};
use crate::dialect::go_parse::parse_bool;
use crate::dialect::{AuthKind, HostContext, HostRouteTable, RouteAuth};
use crate::model::ObjectKey;
use crate::violation::ViolationCode;

const DEFAULT_NO_TLS_REDIRECT_LOCATIONS: &str = "/.well-known/acme-challenge";
const SNIPPET_KEYS: [&str; 4] = [
    "main-snippet",
    "http-snippet",
    "server-snippet",
    "location-snippet",
];

/// What mtls-gate tells a reader when a ConfigMap key makes a path answer in clear text.
pub(super) const PLAIN_HTTP_HINT: &str = ", or the controller ConfigMap sets ssl-redirect \"false\" or use-forwarded-headers \"true\" (then ingress-nginx also serves paths in clear text on port 80: change the ConfigMap)";

/// The ConfigMap's relaxing settings, as the controller reads them.
struct ControllerSettings<'a> {
    key: &'a ObjectKey,
    ssl_redirect: bool,
    use_forwarded_headers: bool,
}

/// A boolean key as mapstructure's weak decoding reads it: `Ok(None)` when absent,
/// `Err(value)` when the controller rejects it (and keeps the default).
fn bool_key<'a>(data: &'a BTreeMap<String, String>, key: &str) -> Result<Option<bool>, &'a str> {
    match data.get(key) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(Some(false)),
        Some(v) => parse_bool(v).map(Some).ok_or(v.as_str()),
    }
}

/// Applies the profile's controller ConfigMap to a host's table: findings for the keys
/// mtls-gate reports, and clear-text serving for the routes its relaxing keys expose.
pub(super) fn apply(ctx: &HostContext<'_>, table: &mut HostRouteTable) {
    let (key, data) = match controller_config(ctx, "ingress-nginx") {
        ControllerConfig::Defaults => return,
        ControllerConfig::Unusable(finding) => {
            table.findings.push(finding);
            return;
        }
        ControllerConfig::Data { key, data } => (key, data),
    };
    let mut report = |message: String| {
        table
            .findings
            .push(ctx.finding(ViolationCode::UnmodelledSetting, Some(key), message));
    };
    for name in [
        "ssl-redirect",
        "force-ssl-redirect",
        "use-forwarded-headers",
    ] {
        if let Err(value) = bool_key(data, name) {
            report(format!(
                "The controller ConfigMap {key} sets {name}: {value:?}, which ingress-nginx cannot read as a boolean (strconv.ParseBool: 1 t T TRUE true True or 0 f F FALSE false False); the controller logs an error and keeps the default. Fix: write true or false."
            ));
        }
    }
    if let Some(value) = data.get("no-tls-redirect-locations")
        && value.trim() != DEFAULT_NO_TLS_REDIRECT_LOCATIONS
    {
        report(format!(
            "The controller ConfigMap {key} sets no-tls-redirect-locations: {value:?}: ingress-nginx answers those locations in clear text on port 80 on every host, and mtls-gate does not model which endpoints they reach, so host {} cannot be proven compliant. Fix: remove the key (default {DEFAULT_NO_TLS_REDIRECT_LOCATIONS}).",
            ctx.host
        ));
    }
    for name in SNIPPET_KEYS {
        if data.get(name).is_some_and(|v| !v.trim().is_empty()) {
            report(format!(
                "The controller ConfigMap {key} sets {name}: raw nginx configuration in every server or location (ssl_verify_client, return, proxy_pass...), which mtls-gate does not model, so host {} cannot be proven compliant. Fix: remove {name}, or express it with modelled Ingress annotations.",
                ctx.host
            ));
        }
    }
    let settings = ControllerSettings {
        key,
        ssl_redirect: bool_key(data, "ssl-redirect")
            .ok()
            .flatten()
            .unwrap_or(true),
        use_forwarded_headers: bool_key(data, "use-forwarded-headers")
            .ok()
            .flatten()
            .unwrap_or(false),
    };
    expose_clear_text_routes(ctx, &settings, table);
}

/// Routes reached over TLS that the ConfigMap's settings also serve in clear text.
fn expose_clear_text_routes(
    ctx: &HostContext<'_>,
    settings: &ControllerSettings<'_>,
    table: &mut HostRouteTable,
) {
    if settings.ssl_redirect && !settings.use_forwarded_headers {
        return;
    }
    let mut exposed = false;
    for route in table.routes.make_mut().iter_mut().filter(|r| r.tls) {
        let reason = if settings.use_forwarded_headers {
            format!(
                "the controller ConfigMap {} sets use-forwarded-headers \"true\", so ingress-nginx takes the scheme from the client's X-Forwarded-Proto header and serves a clear-text request on port 80 that claims https without redirecting it, where no client certificate exists",
                settings.key
            )
        } else {
            let Some(ing) = ctx.ingresses.iter().find(|i| i.key == route.source.key) else {
                continue;
            };
            let annotated = bool_annotation(ing, SSL_REDIRECT).ok().flatten().is_some()
                || bool_annotation(ing, FORCE_SSL_REDIRECT).ok().flatten() == Some(true);
            if annotated {
                continue;
            }
            format!(
                "the controller ConfigMap {} sets ssl-redirect \"false\" and Ingress {} does not set the ssl-redirect annotation, so ingress-nginx also serves its paths in clear text on port 80, where no client certificate exists",
                settings.key, ing.key
            )
        };
        let route = std::sync::Arc::make_mut(route);
        route.tls = false;
        route.auth = RouteAuth {
            kind: AuthKind::None,
            detail: reason.into(),
        };
        exposed = true;
    }
    if exposed {
        table.plain_http_hint = PLAIN_HTTP_HINT;
    }
}
