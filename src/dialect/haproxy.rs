//! haproxy-ingress (jcmoraisjr/haproxy-ingress v0.14-v0.16), as its source behaves. Sources
//! (read from the repository; `../shared/reference/ingress-controllers.md` §3.2 summarises):
//!
//! * **Annotation prefixes**: a configuration key is read from the Ingress annotations under
//!   every prefix of `--annotations-prefix`, default `haproxy-ingress.github.io,ingress.kubernetes.io`
//!   (`docs/content/en/docs/configuration/command-line.md`); the first prefix that has the
//!   key wins and a differing value under a later prefix is ignored
//!   (`pkg/converters/ingress/ingress.go`, `readConfigKeys`). A non-default prefix list is
//!   not visible to mtls-gate.
//! * **Order of Ingresses**: creation time ascending, ties by `namespace/name` *ascending*
//!   (`ingress.go`, `sortIngress`); ingress-nginx breaks ties the other way, so this module
//!   reuses [`oldest_first`] only for the timestamps.
//! * **Host-scoped keys conflict per key**: every Ingress with a rule with `http` or a
//!   `spec.tls` entry for the host adds its Host-scope keys to the host's mapper; the first
//!   Ingress that sets a key keeps it and a later, differing value is dropped with a warning
//!   (`ingress.go` `addHost`, `annotations/mapper.go` `addAnnotation`/`Get`; keys.md
//!   "the used value will be of the Ingress resource that was created first"). So
//!   `auth-tls-secret` of one Ingress and `auth-tls-verify-client` of another combine.
//! * **Client auth** (`annotations/host.go`, `setAuthTLSConfig`; keys.md "Auth TLS"): no auth
//!   when `auth-tls-secret` is unset or empty or `auth-tls-verify-client` is exactly `off`.
//!   The CA comes from key `ca.crt` of the Secret (`name` in the Ingress's namespace, or
//!   `namespace/name`, which is refused unless the global `cross-namespace-secrets-ca` is
//!   `allow`; `file://` names a file on the controller). A CA that cannot be read leaves the
//!   host without CA; then `auth-tls-strict` (default `true` since v0.14, parsed with Go's
//!   `strconv.ParseBool`, anything else is `false`) installs a fake CA so that every
//!   certificate fails (495) and, with `on`, every request without one gets 496; with
//!   strict `false` the host silently accepts anonymous requests. `auth-tls-verify-client`:
//!   `on` → a verified certificate is required (496/495 at the HTTP layer, by SNI),
//!   `optional` → verified if sent (495 on an invalid one), `optional_no_ca` → sent
//!   certificates are never verified (since v0.14), any other value → `on`. There is no
//!   per-host verify depth.
//! * **The gate** (`auth-url`, Path scope): the auth request carries `X-SSL-Client-SHA1`,
//!   which the HTTPS frontend deletes from client requests and the backend sets from
//!   `ssl_c_sha1` (empty without a certificate) before the per-path auth (`haproxy.tmpl`;
//!   keys.md "Auth TLS": `X-SSL-Client-SHA1` is always added). With `optional_no_ca` the
//!   hash of an unverified certificate is non-empty, so the gate cannot tell. Only the gate
//!   URL with `?controller=haproxy-ingress` counts (`auth-url` keeps the query:
//!   `pkg/converters/ingress/utils` `ParseURL`); the bare gate URL makes `/verify` trust
//!   `ssl-client-verify`, which haproxy-ingress does not strip. The global
//!   `ssl-headers-prefix` must stay `X-SSL`: with another prefix a client-sent
//!   `X-SSL-Client-SHA1` is neither deleted nor overwritten.
//! * **Paths** (`ingress.go` `readPathType`; keys.md "Path type"): `Exact` → `exact`,
//!   `Prefix` → `prefix`, `ImplementationSpecific` → the `path-type` key (case-insensitive:
//!   `begin` (default, and for unknown values), `prefix`, `exact`, `regex`). The same path
//!   with the same match type on the host is skipped after the first (oldest) declaration
//!   (`host.FindPath(uri, match)`). `redirect-to` turns a path into a redirect.
//! * **Matching** (`pkg/haproxy/types/maps.go`; `haproxy.tmpl` frontends): the request's
//!   `host#path` is looked up in one map file per match type, `exact` (`map_str`) first,
//!   then `prefix` (`map_dir`: the path or a `/`-delimited sub-path, trailing `/` of the
//!   pattern ignored), `begin` (`map_beg` on the lower-cased input and keys) and `regex`
//!   (`map_reg` on `^<host>#<regex>`: anchored at the path start, case-sensitive, no end
//!   anchor), the global `path-type-order` (default `exact,prefix,begin,regex`). Within a
//!   file paths are in reverse byte order (regexes: longest first). A `prefix` or `begin`
//!   path that extends a shorter path of the other of these two types is moved to a
//!   higher-priority file before it (`rebuildMatchFiles`, `overlaps`); exact is always
//!   first and the same path may exist once per match type since v0.13
//!   (jcmoraisjr/haproxy-ingress#779). This module reproduces that construction for the
//!   host ([`match_files`]), and `tests/haproxy_differential.rs` checks the matching against
//!   HAProxy 2.6. An Ingress `spec.defaultBackend` becomes the default host's `/`, which
//!   serves requests no path of the host matches.
//! * **ssl-redirect** (Path scope, default `true`, validated by `strconv.ParseBool`, an
//!   invalid value is ignored: `annotations/validator.go`): `false` serves the path over
//!   plain HTTP as well, without any client certificate.
//! * **Wildcard and host-less rules** are matched as regular expressions / through the
//!   default host, and are consulted for a host's requests that none of its own paths
//!   matches (`maps.go` `convertWildcardToRegex`; regex files come last); they are not
//!   modelled and fail closed, also when they only exist beside the host's own rules.
//!
//! Every configuration key, and what this dialect does with it on an Ingress of a profile
//! host (M: modelled; I: ignored, it cannot change which route serves a request, whether
//! TLS is used or which client certificate is demanded, or Global-scope keys that the
//! controller ignores on Ingresses; U: `UnmodelledSetting`, the host fails closed). Keys not
//! in the table (newer releases, typos) are U.
//!
//! | key | decision | why |
//! |---|---|---|
//! | `auth-tls-secret` | M | host CA |
//! | `auth-tls-verify-client` | M | host verify mode |
//! | `auth-tls-strict` | M | broken CA: reject or fail open |
//! | `auth-url` | M | per-path gate |
//! | `path-type` | M | path matching |
//! | `ssl-redirect` | M | plain-HTTP access |
//! | `auth-tls-cert-header` | I | adds a header to the backend request |
//! | `auth-tls-error-page` | I | redirect instead of 495/496 |
//! | `ssl-fingerprint-lower` | I | header format |
//! | `ssl-fingerprint-sha2-bits` | I | extra header |
//! | `auth-headers-fail` | I | gate response headers |
//! | `auth-headers-request` | I | fewer headers only make the gate deny |
//! | `auth-headers-succeed` | I | gate response headers |
//! | `auth-method` | I | gate request method |
//! | `auth-signin` | I | redirect when the gate denies |
//! | `auth-realm` | I | basic auth only restricts |
//! | `auth-secret` | I | basic auth only restricts |
//! | `allowlist-source-range` | I | only restricts |
//! | `allowlist-source-header` | I | only restricts |
//! | `denylist-source-range` | I | only restricts |
//! | `whitelist-source-range` | I | only restricts |
//! | `waf` | I | only restricts |
//! | `waf-mode` | I | only restricts |
//! | `limit-connections` | I | only restricts |
//! | `limit-rps` | I | only restricts |
//! | `limit-whitelist` | I | only restricts |
//! | `proxy-body-size` | I | only restricts |
//! | `affinity` | I | backend server choice |
//! | `session-cookie-domain` | I | backend server choice |
//! | `session-cookie-dynamic` | I | backend server choice |
//! | `session-cookie-keywords` | I | backend server choice |
//! | `session-cookie-name` | I | backend server choice |
//! | `session-cookie-preserve` | I | backend server choice |
//! | `session-cookie-same-site` | I | backend server choice |
//! | `session-cookie-shared` | I | backend server choice |
//! | `session-cookie-strategy` | I | backend server choice |
//! | `session-cookie-value-strategy` | I | backend server choice |
//! | `blue-green-balance` | I | backend server choice |
//! | `blue-green-cookie` | I | backend server choice |
//! | `blue-green-deploy` | I | backend server choice |
//! | `blue-green-header` | I | backend server choice |
//! | `blue-green-mode` | I | backend server choice |
//! | `balance-algorithm` | I | backend server choice |
//! | `assign-backend-server-id` | I | backend server naming |
//! | `backend-server-naming` | I | backend server naming |
//! | `backend-server-slots-increment` | I | backend sizing |
//! | `slots-min-free` | I | backend sizing |
//! | `dynamic-scaling` | I | backend sizing |
//! | `initial-weight` | I | backend sizing |
//! | `maxconn-server` | I | backend sizing |
//! | `maxqueue-server` | I | backend sizing |
//! | `agent-check-addr` | I | health check |
//! | `agent-check-interval` | I | health check |
//! | `agent-check-port` | I | health check |
//! | `agent-check-send` | I | health check |
//! | `backend-check-interval` | I | health check |
//! | `health-check-addr` | I | health check |
//! | `health-check-fall-count` | I | health check |
//! | `health-check-interval` | I | health check |
//! | `health-check-port` | I | health check |
//! | `health-check-rise-count` | I | health check |
//! | `health-check-uri` | I | health check |
//! | `backend-protocol` | I | upstream connection |
//! | `fcgi-app` | I | upstream connection |
//! | `proxy-protocol` | I | upstream connection |
//! | `secure-backends` | I | upstream connection |
//! | `secure-crt-secret` | I | upstream connection |
//! | `secure-sni` | I | upstream connection |
//! | `secure-verify-ca-secret` | I | upstream connection |
//! | `secure-verify-hostname` | I | upstream connection |
//! | `service-upstream` | I | upstream connection |
//! | `source-address-intf` | I | upstream connection |
//! | `ssl-cipher-suites-backend` | I | upstream connection |
//! | `ssl-ciphers-backend` | I | upstream connection |
//! | `ssl-options-backend` | I | upstream connection |
//! | `use-resolver` | I | upstream connection |
//! | `peers-table` | I | stick table |
//! | `timeout-connect` | I | timeout |
//! | `timeout-http-request` | I | timeout |
//! | `timeout-keep-alive` | I | timeout |
//! | `timeout-queue` | I | timeout |
//! | `timeout-server` | I | timeout |
//! | `timeout-server-fin` | I | timeout |
//! | `timeout-tunnel` | I | timeout |
//! | `cors-allow-credentials` | I | response headers |
//! | `cors-allow-headers` | I | response headers |
//! | `cors-allow-methods` | I | response headers |
//! | `cors-allow-origin` | I | response headers |
//! | `cors-allow-origin-regex` | I | response headers |
//! | `cors-enable` | I | response headers |
//! | `cors-expose-headers` | I | response headers |
//! | `cors-max-age` | I | response headers |
//! | `hsts` | I | response headers |
//! | `hsts-include-subdomains` | I | response headers |
//! | `hsts-max-age` | I | response headers |
//! | `hsts-preload` | I | response headers |
//! | `ssl-always-add-https` | I | response `Location` rewriting |
//! | `ssl-always-follow-redirect` | I | response `Location` rewriting |
//! | `var-namespace` | I | log variable |
//! | `cert-signer` | I | server certificate issuance |
//! | `acme-preferred-chain` | I | server certificate issuance |
//! | `ssl-ciphers` | I | TLS cipher list of the host |
//! | `ssl-cipher-suites` | I | TLS 1.3 suites of the host |
//! | `tls-alpn` | I | ALPN of the host |
//! | `http-response-<code>` | I | custom error response bodies |
//! | Global-scope keys (`acme-*` except `acme-preferred-chain`, `bind-ip-addr-healthz`, `bind-ip-addr-prometheus`, `bind-ip-addr-stats`, `bind-ip-addr-tcp`, `close-sessions-duration`, `config-defaults`, `config-frontend`, `config-frontend-early`, `config-frontend-late`, `config-global`, `config-peers`, `config-proxy`, `config-sections`, `config-tcp`, `cookie-key`, `cpu-map`, `cross-namespace-*`, `default-backend-redirect`, `default-backend-redirect-code`, `dns-*`, `drain-support`, `drain-support-redispatch`, `external-has-lua`, `fcgi-enabled-apps`, `forwardfor`, `groupname`, `healthz-port`, `http-log-format`, `https-log-format`, `auth-log-format`, `auth-proxy`, `load-server-state`, `master-exit-on-failure`, `max-connections`, `modsecurity-*`, `nbproc-ssl`, `nbthread`, `no-redirect-locations`, `no-tls-redirect-locations`, `original-forwarded-for-hdr`, `path-type-order`, `peers-name`, `peers-port`, `peers-table-global`, `prometheus-port`, `real-ip-hdr`, `ssl-dh-default-max-size`, `ssl-dh-param`, `ssl-engine`, `ssl-headers-prefix`, `ssl-mode-async`, `ssl-options`, `ssl-redirect-code`, `stats-*`, `strict-host`, `syslog-*`, `tcp-log-format`, `timeout-client`, `timeout-client-fin`, `timeout-stop`, `use-chroot`, `use-cpu-map`, `use-haproxy-user`, `use-htx`, `username`, `worker-max-reloads`) | I | ignored by the controller on Ingresses (keys.md "Global"); set in the global ConfigMap they are invisible to mtls-gate |
//! | `auth-external-placement` | U | `frontend` runs the gate before the backend sets `X-SSL-Client-SHA1` |
//! | `headers` | U | can set `X-SSL-Client-SHA1` on the request the gate sees |
//! | `config-backend` | U | raw HAProxy configuration |
//! | `oauth` | U | another auth that sets request headers |
//! | `oauth-headers` | U | sets request headers |
//! | `oauth-uri-prefix` | U | routes a prefix to the OAuth proxy |
//! | `rewrite-target` | U | the backend sees another path than the endpoint's |
//! | `redirect-to` | U | the path redirects instead of serving |
//! | `app-root` | U | `/` redirects |
//! | `http-header-match` | U | routes by header |
//! | `http-header-match-regex` | U | routes by header |
//! | `server-alias` | U | the host's routes under another name (and SNI) |
//! | `server-alias-regex` | U | the host's routes under other names |
//! | `redirect-from` | U | another host redirects here |
//! | `redirect-from-regex` | U | other hosts redirect here |
//! | `ssl-passthrough` | U | TLS is not terminated: no client-certificate check |
//! | `ssl-passthrough-http-port` | U | plain-HTTP backend of a passthrough host |
//! | `ssl-options-host` | U | raw `crt-list` options (may change `verify`/`ca-file`) |
//! | `http-port` | U | another frontend (listener) |
//! | `https-port` | U | another frontend (listener) |
//! | `bind-http` | U | listener |
//! | `bind-https` | U | listener |
//! | `bind-fronting-proxy` | U | listener that trusts `X-Forwarded-Proto` |
//! | `bind-ip-addr-http` | U | listener |
//! | `fronting-proxy-port` | U | listener that trusts forwarded headers |
//! | `https-to-http-port` | U | listener |
//! | `use-forwarded-proto` | U | trusts `X-Forwarded-Proto` |
//! | `use-proxy-protocol` | U | listener |
//! | `redirect-from-code` | U | frontend redirect |
//! | `redirect-to-code` | U | frontend redirect |
//! | `tcp-service-port` | U | the Ingress becomes a TCP service |
//! | `tcp-service-log-format` | U | TCP service |
//! | `tcp-service-proxy-protocol` | U | TCP service |
//! | `config-tcp-service` | U | TCP service snippet |
//!
//! Annotations of haproxytech/kubernetes-ingress (`haproxy.org/`) on a profile host are U with
//! a message saying that controller is refused (client certificates only controller-wide,
//! `../shared/reference/ingress-controllers.md` §3.1).
//!
//! `spec.tls`-only Ingresses: haproxy-ingress also applies the Host-scope keys of an
//! Ingress that lists the host only in `spec.tls` (no rule): `syncIngressHTTP` in
//! `pkg/converters/ingress/ingress.go` calls `addHost(hostname, source, annHost)` for every
//! `spec.tls[].hosts` entry, which adds that Ingress's Host-scope keys to the host's mapper
//! with the same first-created-wins rule per key, and assigns its certificate if the host has
//! none yet. So such an Ingress can set any `auth-tls-*` key the host's own Ingresses leave
//! unset (`auth-tls-verify-client: optional` beside an older Ingress that sets only
//! `auth-tls-secret`), and win every key when it is the oldest. The cluster view indexes
//! Ingresses by the hosts they name outside their rules too, so they reach this dialect in
//! `HostContext::named_by` and `adds_host_keys` merges them with the host's own. Naming a
//! host in `spec.tls` while only a wildcard or host-less rule serves it makes a host of its
//! own in haproxy-ingress: reported (`UnmodelledSetting`).
//!
//! IngressClass parameters (a ConfigMap of class-wide keys, which can set defaults for
//! every Host and Path key above, `auth-tls-*` included; keys.md "Configuration keys") are
//! not read: an Ingress of the host whose IngressClass has `spec.parameters` is reported
//! (`UnmodelledSetting`, once per class).
//!
//! The global ConfigMap (`--configmap`) is read when the profile names it
//! (`spec.controllerConfigMap`, labelled `mtls-gate.io/controller-config`; see
//! [`super::config_map`]). Its keys are the defaults of every Ingress (keys.md
//! "Configuration keys": Ingress annotations override them), which mtls-gate does not merge
//! into the host's keys, so on a profile host every key is reported (`UnmodelledSetting`)
//! except: `ssl-redirect` set to a true value (the default), the keys [`key_decision`]
//! ignores on Ingresses (they cannot change who reaches a path), and the global keys that
//! cannot either. The global keys that can are reported too: the raw HAProxy configuration
//! snippets `config-defaults`, `config-frontend`, `config-frontend-early`,
//! `config-frontend-late`, `config-global`, `config-proxy`, `config-sections`,
//! `config-tcp`, and the clear-text exceptions `no-redirect-locations` and
//! `no-tls-redirect-locations` when they differ from `/.well-known/acme-challenge`.
//! Without `spec.controllerConfigMap` its keys are assumed at their defaults.
//!
//! Not visible to mtls-gate, hence assumed at their defaults: Service annotations (Backend
//! and Path keys; they take precedence over Ingress ones), `--annotations-prefix`, and
//! `spec.defaultBackend` of Ingresses of other hosts (the default host is global).

use std::cmp::Ordering;
use std::sync::Arc;

use super::config_map::{ControllerConfig, controller_config};
use super::{
    AnnotationChanges, AuthKind, Dialect, HostContext, HostRole, HostRouteTable, RenderInput,
    RenderedObject, Route, RouteAuth, RouteSource, gate_url_for, go_parse::parse_bool, is_gate_url,
    oldest_first,
};
use crate::model::{CaBundle, IngressView, Lookup, ObjectKey, PathType};
use crate::paths::{MatchResult, PathMatcher};
use crate::violation::ViolationCode;

pub struct HaproxyIngress;

/// `--annotations-prefix` default, in precedence order.
pub const PREFIXES: [&str; 2] = ["haproxy-ingress.github.io/", "ingress.kubernetes.io/"];
pub const AUTH_TLS_SECRET: &str = "auth-tls-secret";
pub const AUTH_TLS_VERIFY_CLIENT: &str = "auth-tls-verify-client";
pub const AUTH_TLS_STRICT: &str = "auth-tls-strict";
pub const AUTH_TLS_CERT_HEADER: &str = "auth-tls-cert-header";
pub const AUTH_URL: &str = "auth-url";
pub const PATH_TYPE: &str = "path-type";
pub const SSL_REDIRECT: &str = "ssl-redirect";
const CONTROLLER: &str = "haproxy-ingress";
/// Annotations of haproxytech/kubernetes-ingress, a different controller that is refused.
const HAPROXYTECH_PREFIX: &str = "haproxy.org/";

/// What the dialect does with a configuration key found on a profile host's Ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDecision {
    Modelled,
    Ignored,
    Unmodelled,
}

/// The decision for one configuration key (without prefix); the module doc's table says why.
pub fn key_decision(key: &str) -> KeyDecision {
    use KeyDecision::*;
    match key {
        AUTH_TLS_SECRET
        | AUTH_TLS_VERIFY_CLIENT
        | AUTH_TLS_STRICT
        | AUTH_URL
        | PATH_TYPE
        | SSL_REDIRECT => Modelled,
        "auth-tls-cert-header"
        | "auth-tls-error-page"
        | "ssl-fingerprint-lower"
        | "ssl-fingerprint-sha2-bits"
        | "auth-headers-fail"
        | "auth-headers-request"
        | "auth-headers-succeed"
        | "auth-method"
        | "auth-signin"
        | "auth-realm"
        | "auth-secret"
        | "allowlist-source-range"
        | "allowlist-source-header"
        | "denylist-source-range"
        | "whitelist-source-range"
        | "waf"
        | "waf-mode"
        | "limit-connections"
        | "limit-rps"
        | "limit-whitelist"
        | "proxy-body-size"
        | "affinity"
        | "balance-algorithm"
        | "assign-backend-server-id"
        | "backend-server-naming"
        | "backend-server-slots-increment"
        | "slots-min-free"
        | "dynamic-scaling"
        | "initial-weight"
        | "maxconn-server"
        | "maxqueue-server"
        | "backend-check-interval"
        | "backend-protocol"
        | "fcgi-app"
        | "proxy-protocol"
        | "secure-backends"
        | "secure-crt-secret"
        | "secure-sni"
        | "secure-verify-ca-secret"
        | "secure-verify-hostname"
        | "service-upstream"
        | "source-address-intf"
        | "ssl-cipher-suites-backend"
        | "ssl-ciphers-backend"
        | "ssl-options-backend"
        | "use-resolver"
        | "peers-table"
        | "ssl-always-add-https"
        | "ssl-always-follow-redirect"
        | "var-namespace"
        | "cert-signer"
        | "acme-preferred-chain"
        | "ssl-ciphers"
        | "ssl-cipher-suites"
        | "tls-alpn" => Ignored,
        k if k.starts_with("session-cookie-")
            || k.starts_with("blue-green-")
            || k.starts_with("agent-check-")
            || k.starts_with("health-check-")
            || k.starts_with("timeout-") && !GLOBAL_TIMEOUTS.contains(&k)
            || k.starts_with("cors-")
            || k.starts_with("hsts")
            || k.starts_with("http-response-") =>
        {
            Ignored
        }
        k if is_global_key(k) => Ignored,
        _ => Unmodelled,
    }
}

const GLOBAL_TIMEOUTS: [&str; 3] = ["timeout-client", "timeout-client-fin", "timeout-stop"];

/// Global-scope keys, which the controller ignores on Ingresses (keys.md "Global").
fn is_global_key(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "bind-ip-addr-healthz",
        "bind-ip-addr-prometheus",
        "bind-ip-addr-stats",
        "bind-ip-addr-tcp",
        "close-sessions-duration",
        "config-defaults",
        "config-frontend",
        "config-frontend-early",
        "config-frontend-late",
        "config-global",
        "config-peers",
        "config-proxy",
        "config-sections",
        "config-tcp",
        "cookie-key",
        "cpu-map",
        "default-backend-redirect",
        "default-backend-redirect-code",
        "drain-support",
        "drain-support-redispatch",
        "external-has-lua",
        "fcgi-enabled-apps",
        "forwardfor",
        "groupname",
        "healthz-port",
        "http-log-format",
        "https-log-format",
        "auth-log-format",
        "auth-proxy",
        "load-server-state",
        "master-exit-on-failure",
        "max-connections",
        "nbproc-ssl",
        "nbthread",
        "no-redirect-locations",
        "no-tls-redirect-locations",
        "original-forwarded-for-hdr",
        "path-type-order",
        "peers-name",
        "peers-port",
        "peers-table-global",
        "prometheus-port",
        "real-ip-hdr",
        "ssl-dh-default-max-size",
        "ssl-dh-param",
        "ssl-engine",
        "ssl-headers-prefix",
        "ssl-mode-async",
        "ssl-options",
        "ssl-redirect-code",
        "strict-host",
        "tcp-log-format",
        "timeout-client",
        "timeout-client-fin",
        "timeout-stop",
        "use-chroot",
        "use-cpu-map",
        "use-haproxy-user",
        "use-htx",
        "username",
        "worker-max-reloads",
    ];
    EXACT.contains(&key)
        || [
            "acme-",
            "cross-namespace-",
            "dns-",
            "modsecurity-",
            "stats-",
            "syslog-",
        ]
        .iter()
        .any(|p| key.starts_with(p))
}

/// Global keys that can change who reaches a path: raw HAProxy configuration, and the
/// locations that answer in clear text.
const GLOBAL_SNIPPETS: [&str; 8] = [
    "config-defaults",
    "config-frontend",
    "config-frontend-early",
    "config-frontend-late",
    "config-global",
    "config-proxy",
    "config-sections",
    "config-tcp",
];
const CLEAR_TEXT_LOCATIONS: [&str; 2] = ["no-redirect-locations", "no-tls-redirect-locations"];
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge";

/// `UnmodelledSetting` for each key of the profile's global ConfigMap that can change who
/// reaches a path of the host (the module doc says which).
fn global_config_findings(ctx: &HostContext<'_>, table: &mut HostRouteTable) {
    let (key, data) = match controller_config(ctx, CONTROLLER) {
        ControllerConfig::Defaults => return,
        ControllerConfig::Unusable(finding) => {
            table.findings.push(finding);
            return;
        }
        ControllerConfig::Data { key, data } => (key, data),
    };
    for (name, value) in data {
        let why = if GLOBAL_SNIPPETS.contains(&name.as_str()) {
            if value.trim().is_empty() {
                continue;
            }
            "raw HAProxy configuration, which mtls-gate does not model"
        } else if CLEAR_TEXT_LOCATIONS.contains(&name.as_str()) {
            if value.trim() == ACME_CHALLENGE {
                continue;
            }
            "those locations answer in clear text on every host"
        } else if name == SSL_REDIRECT && parse_bool(value) == Some(true) {
            continue;
        } else {
            match key_decision(name) {
                KeyDecision::Ignored => continue,
                KeyDecision::Modelled => {
                    "the default for every Ingress without the annotation, which mtls-gate reads only from Ingresses"
                }
                KeyDecision::Unmodelled => {
                    "a key mtls-gate does not model (or does not know), set for every Ingress"
                }
            }
        };
        table.findings.push(ctx.finding(
            ViolationCode::UnmodelledSetting,
            Some(key),
            format!(
                "The haproxy-ingress global ConfigMap {key} sets {name}: {why}, so host {} cannot be proven compliant. Fix: remove {name} from the ConfigMap and set it as an annotation on the Ingresses that need it.",
                ctx.host
            ),
        ));
    }
}

/// The configuration key an annotation sets, if it is under one of the prefixes.
fn config_key_of(annotation: &str) -> Option<&str> {
    PREFIXES.iter().find_map(|p| annotation.strip_prefix(p))
}

/// The value haproxy-ingress reads for `key` on this Ingress (first prefix wins).
fn config_value<'a>(ing: &'a IngressView, key: &str) -> Option<&'a str> {
    PREFIXES.iter().find_map(|p| {
        ing.annotations
            .iter()
            .find(|(k, _)| k.strip_prefix(p) == Some(key))
            .map(|(_, v)| v.as_str())
    })
}

/// haproxy-ingress's Ingress order: oldest first, ties by `namespace/name` ascending.
fn controller_order(a: &IngressView, b: &IngressView) -> Ordering {
    if a.created == b.created {
        (&a.key.namespace, &a.key.name).cmp(&(&b.key.namespace, &b.key.name))
    } else {
        oldest_first(a, b)
    }
}

/// haproxy-ingress's match types (`pkg/haproxy/types`, `MatchType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchType {
    Exact,
    Prefix,
    Begin,
    Regex,
}

impl MatchType {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Exact => "exact",
            MatchType::Prefix => "prefix",
            MatchType::Begin => "begin",
            MatchType::Regex => "regex",
        }
    }
    /// The HAProxy map converter the template uses for this type.
    pub fn map_method(self) -> &'static str {
        match self {
            MatchType::Exact => "str",
            MatchType::Prefix => "dir",
            MatchType::Begin => "beg",
            MatchType::Regex => "reg",
        }
    }
    /// The global `path-type-order` default.
    const ORDER: [MatchType; 4] = [
        MatchType::Exact,
        MatchType::Prefix,
        MatchType::Begin,
        MatchType::Regex,
    ];
}

/// `readPathType`: the match type of an Ingress path.
pub fn match_type(path_type: PathType, path_type_key: Option<&str>) -> MatchType {
    match path_type {
        PathType::Exact => MatchType::Exact,
        PathType::Prefix => MatchType::Prefix,
        PathType::ImplementationSpecific => match path_type_key.map(str::to_lowercase).as_deref() {
            Some("prefix") => MatchType::Prefix,
            Some("exact") => MatchType::Exact,
            Some("regex") => MatchType::Regex,
            _ => MatchType::Begin,
        },
    }
}

/// One path of the host as it lands in a map file.
#[derive(Debug, Clone)]
pub struct MapEntry {
    /// The path as written in the Ingress.
    pub path: String,
    pub match_type: MatchType,
    /// Insertion order on the host (oldest Ingress first).
    pub order: usize,
}

impl MapEntry {
    /// The path part of the map key (`begin` keys are lower-cased, as Go's
    /// `strings.ToLower` does).
    pub fn key_path(&self) -> String {
        if self.match_type == MatchType::Begin {
            self.path.to_lowercase()
        } else {
            self.path.clone()
        }
    }
}

/// One map file of the frontend, in lookup order: the indices of its entries, sorted as
/// the file is written.
#[derive(Debug, Clone)]
pub struct MatchFile {
    pub match_type: MatchType,
    pub entries: Vec<usize>,
}

/// `HostsMap.rebuildMatchFiles` for one host: the map files in the order the frontend
/// consults them.
pub fn match_files(entries: &[MapEntry]) -> Vec<MatchFile> {
    let keys: Vec<String> = entries.iter().map(MapEntry::key_path).collect();
    let mut by_path: Vec<usize> = (0..entries.len()).collect();
    // "/sub/dir need to be processed before /sub"
    by_path.sort_by(|&a, &b| keys[b].cmp(&keys[a]).then(a.cmp(&b)));
    let overlaps = |a: usize, b: usize| {
        let (ma, mb) = (entries[a].match_type, entries[b].match_type);
        let plain = |m| m == MatchType::Prefix || m == MatchType::Begin;
        ma != mb && keys[a] != keys[b] && plain(ma) && plain(mb) && keys[a].starts_with(&keys[b])
    };
    // Priority files in list order; `elem`: the priority file of an entry, `upper`: the
    // file an entry must come after.
    let mut priority: Vec<MatchFile> = Vec::new();
    let mut elem: Vec<Option<usize>> = vec![None; entries.len()];
    let mut upper: Vec<Option<usize>> = vec![None; entries.len()];
    for (i, &e1) in by_path.iter().enumerate() {
        for &e2 in &by_path[i + 1..] {
            if !overlaps(e1, e2) {
                continue;
            }
            if elem[e1].is_none() {
                // `findOrCreateMatchFile` from the entry's lower bound; `e2` has no file
                // yet (it sorts after `e1`), so there is no upper limit.
                let start = upper[e1].unwrap_or(0);
                let found = (start..priority.len())
                    .find(|&f| priority[f].match_type == entries[e1].match_type);
                let file = found.unwrap_or_else(|| {
                    priority.push(MatchFile {
                        match_type: entries[e1].match_type,
                        entries: Vec::new(),
                    });
                    priority.len() - 1
                });
                priority[file].entries.push(e1);
                elem[e1] = Some(file);
            }
            upper[e2] = elem[e1];
        }
    }
    let mut files = Vec::new();
    for m in MatchType::ORDER {
        let regular: Vec<usize> = (0..entries.len())
            .filter(|&e| entries[e].match_type == m && elem[e].is_none())
            .collect();
        if regular.is_empty() {
            continue;
        }
        let file = MatchFile {
            match_type: m,
            entries: regular,
        };
        if m == MatchType::Exact {
            files.insert(0, file);
        } else {
            files.push(file);
        }
    }
    // Exact first, then the priority files, then the regular ones.
    let at = usize::from(
        files
            .first()
            .is_some_and(|f| f.match_type == MatchType::Exact),
    );
    for (n, file) in priority.into_iter().enumerate() {
        files.insert(at + n, file);
    }
    for file in &mut files {
        sort_file(file, entries, &keys);
    }
    files
}

/// `hostsMapMatchFile.sort` for the entries of one host.
fn sort_file(file: &mut MatchFile, entries: &[MapEntry], keys: &[String]) {
    let order = |i: usize| entries[i].order;
    match file.match_type {
        MatchType::Exact => file
            .entries
            .sort_by(|&a, &b| keys[a].cmp(&keys[b]).then(order(a).cmp(&order(b)))),
        MatchType::Regex => file.entries.sort_by(|&a, &b| {
            keys[b]
                .len()
                .cmp(&keys[a].len())
                .then(keys[a].cmp(&keys[b]))
                .then(order(a).cmp(&order(b)))
        }),
        MatchType::Prefix | MatchType::Begin => file
            .entries
            .sort_by(|&a, &b| keys[b].cmp(&keys[a]).then(order(a).cmp(&order(b)))),
    }
}

/// The matchers equivalent to one map entry on the path part of `host#path`.
pub fn matchers(entry: &MapEntry) -> Vec<PathMatcher> {
    match entry.match_type {
        MatchType::Exact => vec![PathMatcher::Exact(entry.path.clone())],
        // `map_dir` trims `/` from both ends of the pattern and matches it as whole
        // `/`-delimited words: the path itself or anything below it.
        MatchType::Prefix => {
            let trimmed = entry.path.trim_end_matches('/');
            if trimmed.is_empty() {
                vec![PathMatcher::Prefix("/".into())]
            } else {
                vec![
                    PathMatcher::Exact(trimmed.to_string()),
                    PathMatcher::Prefix(format!("{trimmed}/")),
                ]
            }
        }
        // `map_beg` on the ASCII-lower-cased input against the lower-cased key.
        MatchType::Begin => vec![PathMatcher::PrefixIgnoreCase(entry.key_path())],
        // `map_reg` on `^<host>#<regex>`: anchored at the path, no end anchor.
        MatchType::Regex => vec![PathMatcher::go_regex(&format!("^{}", entry.path))],
    }
}

/// The host's client-certificate handling after the `auth-tls-*` keys are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostAuth {
    NoTls,
    /// No client certificate is requested (no secret, `off`, or a broken CA without strict).
    None(String),
    /// A CA (real, or the fake one of a strict broken configuration) with a verify mode.
    Verify {
        mode: VerifyMode,
        /// The CA cannot be loaded: strict mode's fake CA fails every certificate.
        fake_ca: bool,
        detail: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VerifyMode {
    Always,
    Optional,
    SkipCheck,
}

/// The winning value of one Host-scope key and the Ingress it came from.
struct HostKey<'a> {
    value: &'a str,
    source: &'a ObjectKey,
}

/// Whether haproxy-ingress adds this Ingress's Host-scope keys to the host: `addHost` runs
/// for a rule with `http` (a rule without paths has none) and for a `spec.tls` host.
fn adds_host_keys(ing: &IngressView, host_key: &str) -> bool {
    ing.has_tls_for(host_key)
        || ing
            .rules
            .iter()
            .any(|r| r.host == host_key && !r.paths.is_empty())
}

/// Per-key "first Ingress wins" merge of a Host-scope key, with a finding for every later
/// Ingress whose differing value is dropped.
fn host_key<'a>(
    ctx: &HostContext<'_>,
    ings: &'a [Arc<IngressView>],
    key: &str,
    table: &mut HostRouteTable,
) -> Option<HostKey<'a>> {
    let mut winner: Option<HostKey<'a>> = None;
    for ing in ings.iter().filter(|i| adds_host_keys(i, ctx.host_key)) {
        let Some(value) = config_value(ing, key) else {
            continue;
        };
        match &winner {
            None => {
                winner = Some(HostKey {
                    value,
                    source: &ing.key,
                })
            }
            Some(w) if w.value != value => table.findings.push(ctx.finding(
                ViolationCode::HostSettingsConflict,
                Some(&ing.key),
                format!(
                    "Ingress {} sets {key}: {value:?} on host {}, but Host-scope keys are merged per key in haproxy-ingress and the first-created Ingress that sets one decides for every path of the host: {} with {key}: {:?}. The value of {} is ignored, and which value wins depends on creation order. Fix: give every Ingress of the host the same {key}, or move these paths to their own host.",
                    ing.key, ctx.host, w.source, w.value, ing.key
                ),
            )),
            Some(_) => {}
        }
    }
    winner
}

impl HaproxyIngress {
    fn host_auth(
        &self,
        ctx: &HostContext<'_>,
        ings: &[Arc<IngressView>],
        tls: bool,
        table: &mut HostRouteTable,
    ) -> HostAuth {
        let secret = host_key(ctx, ings, AUTH_TLS_SECRET, table);
        let verify = host_key(ctx, ings, AUTH_TLS_VERIFY_CLIENT, table);
        let strict = host_key(ctx, ings, AUTH_TLS_STRICT, table);
        if !tls {
            return HostAuth::NoTls;
        }
        let Some(secret) = secret.filter(|s| !s.value.is_empty()) else {
            return HostAuth::None("no Ingress of the host sets auth-tls-secret".into());
        };
        let verify_value = verify.as_ref().map_or("", |v| v.value);
        if verify_value == "off" {
            return HostAuth::None(format!(
                "auth-tls-verify-client \"off\" from Ingress {}",
                verify.as_ref().map_or(secret.source, |v| v.source)
            ));
        }
        let mode = match verify_value {
            "optional_no_ca" => VerifyMode::SkipCheck,
            "optional" => VerifyMode::Optional,
            _ => VerifyMode::Always,
        };
        // `auth-tls-strict`: default true; a set value is `strconv.ParseBool`, errors → false.
        let strict_on = strict
            .as_ref()
            .is_none_or(|s| parse_bool(s.value).unwrap_or(false));
        let ca_problem = self.ca_problem(ctx, secret.value, secret.source, table);
        let from = format!(
            "auth-tls-secret {:?} from Ingress {}, auth-tls-verify-client {:?}{}",
            secret.value,
            secret.source,
            if verify_value.is_empty() {
                "(default on)"
            } else {
                verify_value
            },
            verify
                .as_ref()
                .map(|v| format!(" from Ingress {}", v.source))
                .unwrap_or_default()
        );
        match ca_problem {
            None => HostAuth::Verify {
                mode,
                fake_ca: false,
                detail: from,
            },
            Some(problem) if strict_on => HostAuth::Verify {
                mode,
                fake_ca: true,
                detail: format!(
                    "{from}; the CA cannot be loaded ({problem}), so auth-tls-strict installs a CA that fails every certificate"
                ),
            },
            Some(problem) => HostAuth::None(format!(
                "{from}; the CA cannot be loaded ({problem}) and auth-tls-strict is {:?}, so haproxy-ingress drops client authentication for the host",
                strict.as_ref().map_or("", |s| s.value)
            )),
        }
    }

    /// Why the CA of `auth-tls-secret` cannot be loaded (with a finding), or `None`.
    fn ca_problem(
        &self,
        ctx: &HostContext<'_>,
        value: &str,
        source: &ObjectKey,
        table: &mut HostRouteTable,
    ) -> Option<String> {
        let mut report = |code: ViolationCode, problem: String, consequence: &str| {
            table.findings.push(ctx.finding(
                code,
                Some(source),
                format!(
                    "auth-tls-secret {value:?} of Ingress {source} on host {}: {problem}. {consequence} Fix: point auth-tls-secret at a Secret in namespace {} whose ca.crt holds the PEM client CA bundle.",
                    ctx.host, source.namespace
                ),
            ));
            Some(problem)
        };
        const LOADS_NO_CA: &str = "haproxy-ingress loads no CA: with auth-tls-strict (the default) every request of the host is rejected (495/496), without it client authentication is silently dropped.";
        if let Some((proto, _)) = value.split_once("://") {
            if proto == "file" {
                // The file lives on the controller's filesystem: it may or may not work.
                table.findings.push(ctx.finding(
                    ViolationCode::UnmodelledSetting,
                    Some(source),
                    format!(
                        "auth-tls-secret {value:?} of Ingress {source} on host {} names a file on the controller, which mtls-gate cannot read, so the host's client CA cannot be checked. Fix: use a Secret with ca.crt.",
                        ctx.host
                    ),
                ));
                return None;
            }
            return report(
                ViolationCode::CaSecretInvalid,
                format!("protocol {proto:?} is not supported"),
                LOADS_NO_CA,
            );
        }
        let (ns, name) = value.split_once('/').unwrap_or((&source.namespace, value));
        if ns != source.namespace {
            return report(
                ViolationCode::CaSecretInvalid,
                format!(
                    "the Secret is in namespace {ns:?}, and cross-namespace CA secrets are denied by default (cross-namespace-secrets-ca)"
                ),
                LOADS_NO_CA,
            );
        }
        let key = ObjectKey::new(ns, name);
        match ctx.objects.secret(&key) {
            Lookup::Found(secret) => match secret.bundle("ca.crt") {
                Some(CaBundle::Certificates { .. }) => None,
                Some(CaBundle::Invalid { reason }) => report(
                    ViolationCode::CaSecretInvalid,
                    format!("ca.crt of Secret {key} {reason}"),
                    LOADS_NO_CA,
                ),
                None => report(
                    ViolationCode::CaSecretInvalid,
                    format!("Secret {key} has no key ca.crt"),
                    LOADS_NO_CA,
                ),
            },
            Lookup::Missing => report(
                ViolationCode::CaSecretInvalid,
                format!("Secret {key} does not exist"),
                LOADS_NO_CA,
            ),
            Lookup::Unknown => None,
        }
    }
}

/// The client authentication of the paths of one Ingress.
fn route_auth(host: &HostAuth, ing: &IngressView, gate: Option<&str>) -> RouteAuth {
    let auth_url = config_value(ing, AUTH_URL).map(str::trim);
    // Only the gate URL naming this controller: without `controller=haproxy-ingress` the
    // gate trusts `ssl-client-verify`, which haproxy-ingress passes through from clients.
    let gated = auth_url
        .zip(gate)
        .is_some_and(|(u, g)| u == gate_url_for(g, CONTROLLER));
    let no_gate = match auth_url {
        Some(u) if is_gate_url(u, gate, CONTROLLER) && !gated => format!(
            "Ingress {} has auth-url {u:?}, the gate without ?controller={CONTROLLER}: the gate then trusts the ssl-client-verify header, which haproxy-ingress passes through from the client, so it can be forged",
            ing.key
        ),
        Some(u) if !gated => format!(
            "Ingress {} has auth-url {u:?}, not the profile's gate",
            ing.key
        ),
        Some(_) => String::new(),
        None => format!("Ingress {} has no gate (auth-url)", ing.key),
    };
    let (kind, detail) = match host {
        HostAuth::NoTls => (
            AuthKind::None,
            "host has no TLS, so no client certificate is requested".to_string(),
        ),
        HostAuth::None(why) if gated => (
            AuthKind::None,
            format!(
                "{why}; the gate of Ingress {} can never see a verified certificate",
                ing.key
            ),
        ),
        HostAuth::None(why) => (AuthKind::None, why.clone()),
        HostAuth::Verify {
            mode,
            fake_ca,
            detail,
        } => match (mode, fake_ca, gated) {
            (VerifyMode::SkipCheck, _, _) => (
                AuthKind::OptionalUnverified,
                format!(
                    "{detail}; optional_no_ca never verifies the certificate, and X-SSL-Client-SHA1 is set for unverified ones too"
                ),
            ),
            (VerifyMode::Always, true, _) => (
                AuthKind::Rejected,
                format!("{detail}: every request is rejected"),
            ),
            (VerifyMode::Always, false, _) => (AuthKind::Required, detail.clone()),
            (VerifyMode::Optional, true, true) => (
                AuthKind::Rejected,
                format!(
                    "{detail}; the gate of Ingress {} rejects requests without a certificate",
                    ing.key
                ),
            ),
            (VerifyMode::Optional, true, false) => (
                AuthKind::None,
                format!("{detail}; requests without a certificate pass; {no_gate}"),
            ),
            (VerifyMode::Optional, false, true) => (
                AuthKind::RequiredByGate,
                format!("{detail}; gate via auth-url of Ingress {}", ing.key),
            ),
            (VerifyMode::Optional, false, false) => {
                (AuthKind::Optional, format!("{detail}; {no_gate}"))
            }
        },
    };
    // `ssl-redirect: "false"` (validated like the controller: an invalid value keeps the
    // default `true`) also serves the path on plain HTTP, where no certificate exists.
    let plain_http = !matches!(host, HostAuth::NoTls)
        && config_value(ing, SSL_REDIRECT).and_then(parse_bool) == Some(false);
    let (kind, detail) = if plain_http && kind != AuthKind::None {
        (
            AuthKind::None,
            format!(
                "ssl-redirect \"false\" on Ingress {} also serves its paths over plain HTTP, without a client certificate ({detail})",
                ing.key
            ),
        )
    } else {
        (kind, detail)
    };
    RouteAuth {
        kind,
        detail: detail.into(),
    }
}

impl HaproxyIngress {
    /// `UnmodelledSetting` once per IngressClass with `spec.parameters` that an Ingress of
    /// the host names: haproxy-ingress reads configuration keys from the ConfigMap those
    /// parameters link, as defaults for every Ingress of the class (above the global
    /// ConfigMap, below the Ingress's own annotations; keys.md "Configuration keys"), so
    /// they can set `ssl-redirect` or `auth-tls-*` for the host. mtls-gate does not read
    /// them, so the host cannot be proven compliant. The legacy class annotation names no
    /// IngressClass object, so it brings no parameters.
    fn class_parameters(
        &self,
        ctx: &HostContext<'_>,
        ings: &[Arc<IngressView>],
        table: &mut HostRouteTable,
    ) {
        let mut reported: Vec<&str> = Vec::new();
        for ing in ings {
            let Some(class) = ing.class.as_deref().filter(|_| !ing.class_from_annotation) else {
                continue;
            };
            if reported.contains(&class) {
                continue;
            }
            let Lookup::Found(view) = ctx.objects.ingress_class(class) else {
                continue;
            };
            let Some(parameters) = view.parameters.as_deref() else {
                continue;
            };
            reported.push(class);
            table.findings.push(ctx.finding(
                ViolationCode::UnmodelledSetting,
                Some(&ing.key),
                format!(
                    "Ingress {} on host {} is of IngressClass {class:?}, whose spec.parameters links {parameters}: haproxy-ingress reads configuration keys from it as defaults for every Ingress of the class (ssl-redirect and auth-tls-* included), which mtls-gate does not read, so the host cannot be proven compliant. Fix: set those keys as annotations on the Ingresses instead and remove spec.parameters from IngressClass {class:?}, or serve the profile's hosts through a class without parameters.",
                    ing.key, ctx.host
                ),
            ));
        }
    }

    /// `UnmodelledSetting` for every annotation under the prefixes that the dialect does
    /// not model and that can change routing, listeners, hosts or client auth.
    fn unmodelled_keys(
        &self,
        ctx: &HostContext<'_>,
        ings: &[Arc<IngressView>],
        table: &mut HostRouteTable,
    ) {
        for ing in ings {
            for annotation in ing.annotations.keys() {
                if annotation.starts_with(HAPROXYTECH_PREFIX) {
                    table.findings.push(ctx.finding(
                        ViolationCode::UnmodelledSetting,
                        Some(&ing.key),
                        format!(
                            "Ingress {} on host {} sets {annotation}, an annotation of haproxytech/kubernetes-ingress. mtls-gate does not support that controller: it configures client certificates only controller-wide in its ConfigMap (client-ca, client-crt-optional), for every host at once, which cannot separate MTLS from TLS endpoints. Fix: run jcmoraisjr/haproxy-ingress (spec.ingressController: haproxy-ingress) or another supported controller for the profile's hosts.",
                            ing.key, ctx.host
                        ),
                    ));
                    continue;
                }
                let Some(key) = config_key_of(annotation) else {
                    continue;
                };
                if key_decision(key) != KeyDecision::Unmodelled {
                    continue;
                }
                table.findings.push(ctx.finding(
                    ViolationCode::UnmodelledSetting,
                    Some(&ing.key),
                    format!(
                        "Ingress {} on host {} sets {annotation}, which changes routing, listeners, hosts or client authentication in haproxy-ingress in a way mtls-gate does not model, so the host cannot be proven compliant. Fix: remove the annotation from Ingresses of profile hosts, or serve these paths on a host outside the profile.",
                        ing.key, ctx.host
                    ),
                ));
            }
            if let Some(regex) = ing
                .rules
                .iter()
                .filter(|r| r.host == ctx.host_key)
                .find_map(|r| {
                    r.paths.iter().find(|p| {
                        has_top_level_alternation(&p.path)
                            && match_type(p.path_type, config_value(ing, PATH_TYPE))
                                == MatchType::Regex
                    })
                })
            {
                table.findings.push(ctx.finding(
                    ViolationCode::UnmodelledSetting,
                    Some(&ing.key),
                    format!(
                        "Ingress {} path {:?} on host {} is a regex with an alternation: haproxy-ingress appends it unparenthesised to ^<host>#, so the alternatives after the first match anywhere in host and path. mtls-gate does not model that. Fix: wrap the expression in a group, (a|b).",
                        ing.key, regex.path, ctx.host
                    ),
                ));
            }
        }
        if ctx.host_key.is_empty() || ctx.host_key.starts_with("*.") {
            table.findings.push(ctx.finding(
                ViolationCode::UnmodelledSetting,
                None,
                format!(
                    "Host {} is served by Ingress rules for {:?}: haproxy-ingress matches wildcard hosts with regular expressions and host-less rules through its default host, with other precedence, which mtls-gate does not model. Fix: add rules for {} itself.",
                    ctx.host,
                    ctx.host_key,
                    ctx.host
                ),
            ));
        } else {
            // The wildcard host's paths (regex map, last) and the default host's paths are
            // consulted when no path of the host itself matches.
            let wildcard = ctx
                .host_key
                .split_once('.')
                .map(|(_, parent)| format!("*.{parent}"));
            for key in wildcard.iter().map(String::as_str).chain([""]) {
                let fallback = ctx
                    .objects
                    .ingresses_for_host(key)
                    .into_iter()
                    .filter(|i| {
                        crate::engine::ingress_class_decision(ctx.profile, ctx.objects, i).counts()
                    })
                    .find(|i| i.rules.iter().any(|r| r.host == key && !r.paths.is_empty()));
                if let Some(ing) = fallback {
                    table.findings.push(ctx.finding(
                        ViolationCode::UnmodelledSetting,
                        Some(&ing.key),
                        format!(
                            "Ingress {} has a rule for {}: haproxy-ingress consults it for requests to {} that no path of the host's own Ingresses matches, which mtls-gate does not model. Fix: give {} its own catch-all path, or remove the {} rule.",
                            ing.key,
                            if key.is_empty() { "no host (the default host)".to_string() } else { key.to_string() },
                            ctx.host,
                            ctx.host,
                            if key.is_empty() { "host-less" } else { key },
                        ),
                    ));
                }
            }
        }
    }
}

/// Whether a regular expression has a `|` outside groups and classes, which binds looser
/// than the `^<host>#` haproxy-ingress puts in front of it.
fn has_top_level_alternation(regex: &str) -> bool {
    let (mut depth, mut class, mut escaped) = (0usize, false, false);
    for c in regex.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ']' if class => class = false,
            _ if class => {}
            '[' => class = true,
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

impl Dialect for HaproxyIngress {
    fn reads_controller_config_map(&self) -> bool {
        true
    }

    /// `--ingress-class` defaults to `haproxy` (keys.md "Class matter": the annotation
    /// `kubernetes.io/ingress.class` with the value `haproxy`).
    fn legacy_class_default(&self) -> Option<&'static str> {
        Some("haproxy")
    }

    fn keeps_annotation(&self, key: &str) -> bool {
        key.starts_with("haproxy-ingress.github.io/")
            || key.starts_with("ingress.kubernetes.io/")
            || key.starts_with("haproxy.org/")
    }

    fn host_table(&self, ctx: &HostContext<'_>) -> HostRouteTable {
        let mut table = HostRouteTable {
            host_key: ctx.host_key.to_string(),
            ..Default::default()
        };
        // `spec.tls`-only Ingresses of the host add their Host keys like the host's own
        // (`addHost` for every `spec.tls` host, `syncIngressHTTP`): merged below. Naming the
        // host in `spec.tls` while a wildcard or host-less rule serves it creates a host of
        // its own in haproxy-ingress, which mtls-gate does not model.
        let mut ings = ctx.ingresses.clone();
        for ing in &ctx.named_by {
            if ing.has_tls_for(ctx.host_key) {
                ings.push(ing.clone());
            } else if ing.has_tls_for(ctx.host) {
                table.findings.push(ctx.finding(
                    ViolationCode::UnmodelledSetting,
                    Some(&ing.key),
                    format!(
                        "Ingress {} names {} in spec.tls without a rule for it, while the host is served by the rule host {:?}: haproxy-ingress then creates a host {} of its own (addHost for spec.tls hosts), with that Ingress's Host keys and no paths of the rule host, which mtls-gate does not model. Fix: give {} a rule of its own, or remove it from spec.tls of {}.",
                        ing.key, ctx.host, ctx.host_key, ctx.host, ctx.host, ing.key
                    ),
                ));
            }
        }
        ings.sort_by(|a, b| controller_order(a, b));
        self.unmodelled_keys(ctx, &ings, &mut table);
        self.class_parameters(ctx, &ings, &mut table);
        global_config_findings(ctx, &mut table);
        let tls = !ctx.host_key.is_empty() && ings.iter().any(|i| i.has_tls_for(ctx.host_key));
        let host = self.host_auth(ctx, &ings, tls, &mut table);
        table.client_auth = match &host {
            HostAuth::NoTls => "no TLS".into(),
            HostAuth::None(why) => format!("no client certificate requested ({why})"),
            HostAuth::Verify { detail, .. } => detail.clone(),
        };

        // Paths in insertion order; a (path, match type) already on the host is skipped.
        let mut entries: Vec<MapEntry> = Vec::new();
        let mut owners: Vec<(Arc<IngressView>, PathType)> = Vec::new();
        for ing in &ings {
            let path_type_key = config_value(ing, PATH_TYPE);
            for rule in ing.rules.iter().filter(|r| r.host == ctx.host_key) {
                for p in &rule.paths {
                    let m = match_type(p.path_type, path_type_key);
                    if entries
                        .iter()
                        .any(|e| e.path == p.path && e.match_type == m)
                    {
                        continue;
                    }
                    entries.push(MapEntry {
                        path: p.path.clone(),
                        match_type: m,
                        order: entries.len(),
                    });
                    owners.push((ing.clone(), p.path_type));
                }
            }
        }
        let gate = ctx.profile.gate_url();
        let mut auth_cache: Vec<(Arc<IngressView>, RouteAuth)> = Vec::new();
        let mut auth_of =
            |ing: &Arc<IngressView>| match auth_cache.iter().find(|(k, _)| Arc::ptr_eq(k, ing)) {
                Some((_, auth)) => auth.clone(),
                None => {
                    let auth = route_auth(&host, ing, gate);
                    auth_cache.push((ing.clone(), auth.clone()));
                    auth
                }
            };
        for file in match_files(&entries) {
            for e in file.entries {
                let (ing, path_type) = &owners[e];
                let auth = auth_of(ing);
                for matcher in matchers(&entries[e]) {
                    table.routes.push(Arc::new(Route {
                        source: RouteSource::ingress(ing),
                        path: entries[e].path.clone(),
                        path_type: *path_type,
                        matcher,
                        serves_backend: true,
                        tls,
                        auth: auth.clone(),
                        priority: 0,
                    }));
                }
            }
        }
        // The default host's `/` (an Ingress `spec.defaultBackend`, oldest first) answers
        // what no path of the host matches.
        if let Some(ing) = ings.iter().find(|i| i.has_default_backend) {
            table.routes.push(Arc::new(Route {
                source: RouteSource::ingress(ing),
                path: "/".into(),
                path_type: PathType::ImplementationSpecific,
                matcher: PathMatcher::Prefix("/".into()),
                serves_backend: true,
                tls,
                auth: auth_of(ing),
                priority: 0,
            }));
        }
        table
    }

    /// The frontend's lookups in file order: the first matching entry answers.
    fn winners(&self, table: &HostRouteTable, path: &str) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, r) in table.routes.iter().enumerate() {
            match r.matcher.matches(path) {
                MatchResult::Yes => {
                    out.push(i);
                    break;
                }
                MatchResult::Maybe => out.push(i),
                MatchResult::No => {}
            }
        }
        out
    }

    fn render(&self, input: &RenderInput<'_>) -> (AnnotationChanges, Vec<RenderedObject>) {
        let cc = &input.profile.spec.client_certificate;
        let gate = input.profile.gate_url();
        let key = |k: &str| format!("{}{k}", PREFIXES[0]);
        let legacy = |k: &str| format!("{}{k}", PREFIXES[1]);
        let mut changes = AnnotationChanges::default();
        let verify = match input.role {
            HostRole::Mtls => Some("on"),
            HostRole::Mixed => Some("optional"),
            HostRole::Tls => None,
        };
        const OWNED: [&str; 4] = [
            AUTH_TLS_SECRET,
            AUTH_TLS_VERIFY_CLIENT,
            AUTH_TLS_STRICT,
            AUTH_TLS_CERT_HEADER,
        ];
        if let Some(verify) = verify {
            let mut set = |k: &str, v: String| {
                changes.set.insert(key(k), v);
            };
            set(
                AUTH_TLS_SECRET,
                format!("{}/{}", input.ingress.key.namespace, cc.ca_secret_name),
            );
            set(AUTH_TLS_VERIFY_CLIENT, verify.into());
            set(AUTH_TLS_STRICT, "true".into());
            set(
                AUTH_TLS_CERT_HEADER,
                cc.pass_certificate_to_upstream.to_string(),
            );
        }
        let want_gate = input.role == HostRole::Mixed && input.serves_mtls;
        if let (true, Some(gate)) = (want_gate, gate) {
            changes
                .set
                .insert(key(AUTH_URL), gate_url_for(gate, CONTROLLER));
        }
        let mut remove = Vec::new();
        for k in OWNED {
            // The legacy prefix would be shadowed anyway; it goes so nobody misreads it.
            if input.annotations.contains_key(&legacy(k)) {
                remove.push(legacy(k));
            }
            if verify.is_none() && input.annotations.contains_key(&key(k)) {
                remove.push(key(k));
            }
        }
        if !want_gate {
            for k in [key(AUTH_URL), legacy(AUTH_URL)] {
                if input
                    .annotations
                    .get(&k)
                    .is_some_and(|u| is_gate_url(u, gate, CONTROLLER))
                {
                    remove.push(k);
                }
            }
        } else if input.annotations.contains_key(&legacy(AUTH_URL)) {
            remove.push(legacy(AUTH_URL));
        }
        changes.remove = remove;
        (changes, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key in the module doc's table has the decision the code takes.
    #[test]
    fn doc_table_matches_the_code() {
        let source = include_str!("haproxy.rs");
        let mut rows = 0;
        for line in source.lines() {
            let Some(row) = line.strip_prefix("//! | `") else {
                continue;
            };
            let Some((key, rest)) = row.split_once("` | ") else {
                continue;
            };
            let want = match rest.split(' ').next() {
                Some("M") => KeyDecision::Modelled,
                Some("I") => KeyDecision::Ignored,
                Some("U") => KeyDecision::Unmodelled,
                other => panic!("row {key}: decision {other:?}"),
            };
            let key = key.replace("<code>", "496");
            assert_eq!(key_decision(&key), want, "{key}");
            rows += 1;
        }
        assert!(rows > 100, "table rows: {rows}");
        for global in [
            "ssl-headers-prefix",
            "config-frontend",
            "acme-emails",
            "timeout-stop",
        ] {
            assert_eq!(key_decision(global), KeyDecision::Ignored, "{global}");
        }
        for unknown in ["config-frontend-snippet", "auth-tls-verify-depth", "x"] {
            assert_eq!(key_decision(unknown), KeyDecision::Unmodelled, "{unknown}");
        }
    }

    /// What each map entry matches on the path part of `host#path`.
    #[test]
    fn matchers_of_map_entries() {
        use MatchType::*;
        /// (Ingress path, match type, requests and whether they match)
        type MatcherCase = (&'static str, MatchType, &'static [(&'static str, bool)]);
        let cases: &[MatcherCase] = &[
            (
                "/app",
                Prefix,
                &[("/app", true), ("/app/x", true), ("/app1", false)],
            ),
            (
                "/app/",
                Prefix,
                &[("/app", true), ("/app/", true), ("/apps", false)],
            ),
            ("/", Prefix, &[("/", true), ("/anything", true)]),
            (
                "/App",
                Begin,
                &[("/app", true), ("/APPLE", true), ("/ap", false)],
            ),
            (
                "/app",
                Exact,
                &[("/app", true), ("/app/", false), ("/APP", false)],
            ),
            (
                "/v[0-9]+",
                Regex,
                &[("/v12/x", true), ("/x/v12", false), ("/V1", false)],
            ),
        ];
        for (path, match_type, requests) in cases {
            let matchers = matchers(&entry(path, *match_type, 0));
            for (request, want) in *requests {
                let got = matchers
                    .iter()
                    .any(|m| m.matches(request) == MatchResult::Yes);
                assert_eq!(got, *want, "{match_type:?} {path} vs {request}");
            }
        }
    }

    #[test]
    fn top_level_alternation() {
        for (regex, want) in [
            ("/a|/b", true),
            ("/(a|b)", false),
            ("/[|]", false),
            ("/a\\|b", false),
            ("/(a)|b", true),
        ] {
            assert_eq!(has_top_level_alternation(regex), want, "{regex}");
        }
    }

    fn entry(path: &str, match_type: MatchType, order: usize) -> MapEntry {
        MapEntry {
            path: path.into(),
            match_type,
            order,
        }
    }

    /// `rebuildMatchFiles`: exact first; a path extending a shorter path of the other
    /// plain type moves to a priority file before it; regular files in path-type-order.
    /// The first two cases are `TestOverlap` items 7 and 4 of haproxy-ingress's
    /// `pkg/haproxy/types/maps_test.go` (one host), with exact first as since v0.13
    /// (jcmoraisjr/haproxy-ingress#779).
    #[test]
    fn match_file_order() {
        use MatchType::*;
        /// (paths of the host in insertion order, expected files in lookup order)
        type FileCase = (
            &'static [(&'static str, MatchType)],
            &'static [(MatchType, &'static [&'static str])],
        );
        let cases: &[FileCase] = &[
            (
                &[
                    ("/ab", Prefix),
                    ("/abc", Begin),
                    ("/a", Begin),
                    ("/abcd", Exact),
                ],
                &[
                    (Exact, &["/abcd"]),
                    (Begin, &["/abc"]),
                    (Prefix, &["/ab"]),
                    (Begin, &["/a"]),
                ],
            ),
            (
                &[("/a", Begin), ("/abc", Begin), ("/ab", Prefix)],
                &[(Begin, &["/abc"]), (Prefix, &["/ab"]), (Begin, &["/a"])],
            ),
            (
                &[("/app", Begin), ("/app/sub", Prefix), ("/x", Exact)],
                &[
                    (Exact, &["/x"]),
                    (Prefix, &["/app/sub"]),
                    (Begin, &["/app"]),
                ],
            ),
            (
                &[("/app", Prefix), ("/app/sub", Begin)],
                &[(Begin, &["/app/sub"]), (Prefix, &["/app"])],
            ),
            (
                &[("/a", Prefix), ("/b", Begin), ("/c", Regex), ("/d", Exact)],
                &[
                    (Exact, &["/d"]),
                    (Prefix, &["/a"]),
                    (Begin, &["/b"]),
                    (Regex, &["/c"]),
                ],
            ),
            (
                &[("/a/b/c", Prefix), ("/a/b", Begin), ("/a", Prefix)],
                &[(Prefix, &["/a/b/c"]), (Begin, &["/a/b"]), (Prefix, &["/a"])],
            ),
            (
                &[("/API", Begin), ("/api/v1", Prefix)],
                &[(Prefix, &["/api/v1"]), (Begin, &["/API"])],
            ),
            (
                &[("/r", Regex), ("/r/longer", Regex), ("/r/long2", Regex)],
                &[(Regex, &["/r/longer", "/r/long2", "/r"])],
            ),
        ];
        for (paths, want) in cases {
            let entries: Vec<MapEntry> = paths
                .iter()
                .enumerate()
                .map(|(i, (p, m))| entry(p, *m, i))
                .collect();
            let got: Vec<(MatchType, Vec<&str>)> = match_files(&entries)
                .iter()
                .map(|f| {
                    (
                        f.match_type,
                        f.entries
                            .iter()
                            .map(|&e| entries[e].path.as_str())
                            .collect(),
                    )
                })
                .collect();
            let want: Vec<(MatchType, Vec<&str>)> =
                want.iter().map(|(m, p)| (*m, p.to_vec())).collect();
            assert_eq!(got, want, "{paths:?}");
        }
    }
}
