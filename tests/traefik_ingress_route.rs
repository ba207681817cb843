//! Traefik IngressRoutes are routes like Ingress routers: their `match` rules, priorities,
//! TLS sections and options, and middlewares decide who reaches a profile endpoint. Each
//! case is a bank's layout with one IngressRoute changed or added, checked through the
//! same path as `mtls-gate check` (manifests → cluster view → engine).

mod common;

use std::collections::BTreeSet;

use common::traefik::{forward_auth, pass_client_cert, strip_client_cert, tls_option};
use common::*;

const TRAEFIK_IO: &str = "traefik.io/v1alpha1";
const CONTAINOUS: &str = "traefik.containo.us/v1alpha1";

/// An IngressRoute in [`NS`].
#[derive(Clone)]
struct IngressRoute {
    api_version: &'static str,
    name: String,
    entry_points: Vec<&'static str>,
    /// `spec.tls`: `None` for none; `Some(None)` without options; `Some(Some((name, ns)))`.
    tls: Option<Option<(&'static str, Option<&'static str>)>>,
    /// (match, priority, middlewares)
    routes: Vec<(String, i64, Vec<&'static str>)>,
}

impl IngressRoute {
    /// A TLS IngressRoute on `websecure` naming the TLS options `mtls-required`.
    fn mtls(name: &str, rule: &str) -> Self {
        Self {
            api_version: TRAEFIK_IO,
            name: name.into(),
            entry_points: vec!["websecure"],
            tls: Some(Some(("mtls-required", None))),
            routes: vec![(rule.into(), 0, Vec::new())],
        }
    }
    /// A TLS IngressRoute on `websecure` without TLS options.
    fn tls(name: &str, rule: &str) -> Self {
        Self {
            tls: Some(None),
            ..Self::mtls(name, rule)
        }
    }
    /// A plain-HTTP IngressRoute on `web` (no `spec.tls`).
    fn plain(name: &str, rule: &str) -> Self {
        Self {
            entry_points: vec!["web"],
            tls: None,
            ..Self::mtls(name, rule)
        }
    }
    fn options(mut self, name: &'static str, namespace: Option<&'static str>) -> Self {
        self.tls = Some(Some((name, namespace)));
        self
    }
    fn entry_points(mut self, entry_points: &[&'static str]) -> Self {
        self.entry_points = entry_points.to_vec();
        self
    }
    fn without_tls(mut self) -> Self {
        self.tls = None;
        self
    }
    fn containous(mut self) -> Self {
        self.api_version = CONTAINOUS;
        self
    }
    fn priority(mut self, priority: i64) -> Self {
        self.routes[0].1 = priority;
        self
    }
    fn middlewares(mut self, names: &[&'static str]) -> Self {
        self.routes[0].2 = names.to_vec();
        self
    }
    fn yaml(&self) -> String {
        let mut y = format!(
            "apiVersion: {}\nkind: IngressRoute\nmetadata:\n  name: {}\n  namespace: {NS}\nspec:\n  entryPoints: [{}]\n  routes:\n",
            self.api_version,
            self.name,
            self.entry_points.join(", ")
        );
        for (rule, priority, middlewares) in &self.routes {
            y.push_str(&format!("    - kind: Rule\n      match: {}\n", q(rule)));
            if *priority != 0 {
                y.push_str(&format!("      priority: {priority}\n"));
            }
            if !middlewares.is_empty() {
                y.push_str("      middlewares:\n");
                for m in middlewares {
                    y.push_str(&format!("        - name: {m}\n"));
                }
            }
            y.push_str("      services:\n        - {name: backend, port: 8443}\n");
        }
        if let Some(options) = &self.tls {
            y.push_str("  tls:\n    secretName: server-cert\n");
            if let Some((name, namespace)) = options {
                y.push_str(&format!("    options:\n      name: {name}\n"));
                if let Some(ns) = namespace {
                    y.push_str(&format!("      namespace: {ns}\n"));
                }
            }
        }
        y
    }
}

/// An IngressRouteTCP in [`NS`] with one route forwarding to the `backend` Service;
/// `tls` is the YAML of its `spec.tls` (empty: none).
fn ingress_route_tcp(
    api_version: &str,
    name: &str,
    entry_points: &[&str],
    rule: &str,
    tls: &str,
) -> String {
    let mut y = format!(
        "apiVersion: {api_version}\nkind: IngressRouteTCP\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  entryPoints: [{}]\n  routes:\n    - match: {}\n      services:\n        - {{name: backend, port: 8443}}\n",
        entry_points.join(", "),
        q(rule)
    );
    if !tls.is_empty() {
        y.push_str(&format!("  tls:\n    {tls}\n"));
    }
    y
}

const PASSTHROUGH: &str = "passthrough: true";

fn middleware(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  {spec}"
    )
}

fn chain(name: &str, members: &[&str]) -> String {
    let list: String = members
        .iter()
        .map(|m| format!("      - name: {m}\n"))
        .collect();
    format!(
        "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  chain:\n    middlewares:\n{list}"
    )
}

const PUBLIC_RULE: &str = "Host(`auth.bank.example`) && (Path(`/authorize`) || Path(`/jwks`) || Path(`/.well-known/openid-configuration`))";
const AUTH_RULE: &str = "Host(`mtls-auth.bank.example`)";
const API_RULE: &str = "Host(`mtls-api.bank.example`) && PathPrefix(`/open-banking-nz/v3.0/`)";

/// The split-host bank routed only by IngressRoutes (compliant), with the MTLS
/// authorisation server's IngressRoute replaced by `auth`, and `extra` objects added.
fn split_host(auth: &[IngressRoute], extra: &[String]) -> Vec<String> {
    let mut docs = vec![
        Profile::split_host().traefik().yaml(),
        ca_secret(),
        tls_option("mtls-required", "RequireAndVerifyClientCert"),
        IngressRoute::tls("authorization-server-public", PUBLIC_RULE).yaml(),
        IngressRoute::mtls("open-banking-apis", API_RULE).yaml(),
    ];
    docs.extend(auth.iter().map(IngressRoute::yaml));
    docs.extend(extra.iter().cloned());
    docs
}

fn auth_server() -> IngressRoute {
    IngressRoute::mtls("authorization-server-mtls", AUTH_RULE)
}

const SINGLE_PUBLIC_RULE: &str = "Host(`api.bank.example`) && (Path(`/oauth2/authorize`) || Path(`/oauth2/jwks`) || Path(`/oauth2/.well-known/openid-configuration`))";
const SINGLE_GATED_RULE: &str =
    "Host(`api.bank.example`) && (PathPrefix(`/oauth2/`) || PathPrefix(`/open-banking-nz/v3.0`))";

/// The single-host bank with the gate: one TLSOption verifying certificates if given, the
/// public endpoints' router without middlewares, everything else through `gated` (whose
/// middlewares are replaced by `gate_chain`), plus `extra`.
fn single_host(public: IngressRoute, gate_chain: &[&'static str], extra: &[String]) -> Vec<String> {
    let mut docs = vec![
        Profile::single_host().traefik().yaml(),
        ca_secret(),
        tls_option("mtls-optional", "VerifyClientCertIfGiven"),
        strip_client_cert("strip-client-cert"),
        pass_client_cert("pass-client-cert"),
        forward_auth("mtls-gate", TRAEFIK_GATE_URL, true),
        public.yaml(),
        IngressRoute::mtls("gated", SINGLE_GATED_RULE)
            .options("mtls-optional", None)
            .middlewares(gate_chain)
            .yaml(),
    ];
    docs.extend(extra.iter().cloned());
    docs
}

fn single_public() -> IngressRoute {
    IngressRoute::mtls("public", SINGLE_PUBLIC_RULE).options("mtls-optional", None)
}

const GATE_CHAIN: &[&str] = &["strip-client-cert", "pass-client-cert", "mtls-gate"];

/// (what the layout shows, manifests, exact set of violation codes, findings that must be
/// among them: (code, host, endpoint))
type Case = (
    &'static str,
    Vec<String>,
    &'static [&'static str],
    Vec<(&'static str, &'static str, Option<&'static str>)>,
);

fn leak(rule: &str) -> Vec<String> {
    split_host(&[auth_server(), IngressRoute::plain("debug", rule)], &[])
}

const A: &str = MTLS_AUTH_HOST;
const LEAK: &[&str] = &["MtlsNotRequired", "TlsMissing"];

fn mtls_not_required(
    host: &'static str,
    endpoints: &[&'static str],
) -> Vec<(&'static str, &'static str, Option<&'static str>)> {
    endpoints
        .iter()
        .map(|e| ("MtlsNotRequired", host, Some(*e)))
        .collect()
}

fn cases() -> Vec<Case> {
    let all_auth = [
        "/token",
        "/par",
        "/bc-authorize",
        "/introspect",
        "/revoke",
        "/userinfo",
    ];
    vec![
        (
            "every router names the TLSOption requiring client certificates",
            split_host(&[auth_server()], &[]),
            &[],
            vec![],
        ),
        // Match-rule constructs: a plain-HTTP router beside the compliant ones serves
        // exactly the endpoints its rule matches.
        (
            "Path matches one path exactly",
            leak("Host(`mtls-auth.bank.example`) && Path(`/token`)"),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        (
            "PathPrefix is a plain string prefix",
            leak("Host(`mtls-auth.bank.example`) && PathPrefix(`/intro`)"),
            LEAK,
            mtls_not_required(A, &["/introspect"]),
        ),
        (
            "PathRegexp is a Go regexp search",
            leak("Host(`mtls-auth.bank.example`) && PathRegexp(`^/(par|revoke)$`)"),
            LEAK,
            mtls_not_required(A, &["/par", "/revoke"]),
        ),
        (
            "|| serves both sides",
            leak("Host(`mtls-auth.bank.example`) && (Path(`/token`) || Path(`/par`))"),
            LEAK,
            mtls_not_required(A, &["/token", "/par"]),
        ),
        (
            "a negated path matcher counts as every path (fail closed)",
            leak("Host(`mtls-auth.bank.example`) && !PathPrefix(`/token`)"),
            LEAK,
            mtls_not_required(A, &all_auth),
        ),
        (
            "Method narrows a route to some requests, which it still serves",
            leak("Host(`mtls-auth.bank.example`) && Path(`/token`) && Method(`POST`)"),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        (
            "Header narrows a route to some requests, which it still serves",
            leak("Host(`mtls-auth.bank.example`) && Path(`/token`) && Header(`X-Debug`, `1`)"),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        (
            "Query narrows a route to some requests, which it still serves",
            leak("Host(`mtls-auth.bank.example`) && Path(`/token`) && Query(`debug`, `1`)"),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        (
            "ClientIP narrows a route to some clients, which it still serves",
            leak("Host(`mtls-auth.bank.example`) && Path(`/token`) && ClientIP(`10.0.0.0/8`)"),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        (
            "HostRegexp (v3 syntax) matches the host",
            leak("HostRegexp(`^mtls-auth\\.bank\\.example$`) && Path(`/token`)"),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        (
            "HostRegexp with a v2 template may match the host",
            leak("HostRegexp(`{sub:mtls-auth}.bank.example`) && Path(`/token`)"),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        (
            "parentheses group host alternatives",
            leak("(Host(`auth.bank.example`) || Host(`mtls-auth.bank.example`)) && Path(`/token`)"),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        (
            "v2 syntax: several hosts and paths in one matcher",
            leak(
                "Host(`www.bank.example`, `mtls-auth.bank.example`) && PathPrefix(`/token`, `/par`)",
            ),
            LEAK,
            mtls_not_required(A, &["/token", "/par"]),
        ),
        (
            "v2 syntax: HostHeader",
            leak("HostHeader(`mtls-auth.bank.example`) && Path(`/token`)"),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        (
            "a rule for another host serves none of the profile's",
            leak("Host(`www.bank.example`) && Path(`/token`)"),
            &[],
            vec![],
        ),
        (
            "!Host excludes only that host: the rule serves the issuer host's default /token URL",
            leak("!Host(`mtls-auth.bank.example`) && Path(`/token`)"),
            LEAK,
            mtls_not_required(PUBLIC_HOST, &["/token"]),
        ),
        // A rule mtls-gate cannot read fails closed on every host it might match.
        (
            "an unparseable rule is reported and counts as serving every path",
            split_host(
                &[
                    auth_server(),
                    IngressRoute::plain(
                        "typo",
                        "Host(`mtls-auth.bank.example`) && PathPrefx(`/token`)",
                    ),
                ],
                &[],
            ),
            &["MtlsNotRequired", "TlsMissing", "UnmodelledSetting"],
            [
                vec![
                    ("UnmodelledSetting", MTLS_AUTH_HOST, None),
                    ("UnmodelledSetting", MTLS_API_HOST, None),
                    ("UnmodelledSetting", PUBLIC_HOST, None),
                ],
                mtls_not_required(A, &all_auth),
            ]
            .concat(),
        ),
        (
            "a route the CRD schema would refuse (priority not an integer) is reported and serves every path of every host",
            split_host(
                &[auth_server()],
                &[
                    IngressRoute::mtls("odd", "Host(`mtls-auth.bank.example`) && Path(`/token`)")
                        .yaml()
                        .replace(
                            "    - kind: Rule\n",
                            "    - kind: Rule\n      priority: high\n",
                        ),
                ],
            ),
            &["MtlsNotRequired", "UnmodelledSetting"],
            vec![
                ("UnmodelledSetting", A, None),
                ("MtlsNotRequired", PUBLIC_HOST, Some("/token")),
            ],
        ),
        // Entry points and spec.tls.
        (
            "a router without spec.tls on websecure serves plain HTTP only",
            split_host(
                &[
                    auth_server(),
                    IngressRoute::mtls(
                        "no-tls",
                        "Host(`mtls-auth.bank.example`) && Path(`/token`)",
                    )
                    .without_tls(),
                ],
                &[],
            ),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        (
            "a TLS router on every entry point is still a TLS router",
            split_host(&[auth_server().entry_points(&[])], &[]),
            &[],
            vec![],
        ),
        // TLS options.
        (
            "a TLS router without options gets Traefik's default options",
            split_host(
                &[IngressRoute::tls("authorization-server-mtls", AUTH_RULE)],
                &[],
            ),
            &["MtlsNotRequired"],
            mtls_not_required(A, &all_auth),
        ),
        (
            "options naming a missing TLSOption",
            split_host(&[auth_server().options("mtls-requried", None)], &[]),
            &["MtlsNotRequired", "TlsOptionInvalid"],
            [
                vec![("TlsOptionInvalid", A, None)],
                mtls_not_required(A, &all_auth),
            ]
            .concat(),
        ),
        (
            "options in another namespace (refused without allowCrossNamespace)",
            split_host(
                &[auth_server().options("mtls-required", Some("traefik"))],
                &[],
            ),
            &["MtlsNotRequired", "TlsOptionInvalid"],
            [
                vec![("TlsOptionInvalid", A, None)],
                mtls_not_required(A, &all_auth),
            ]
            .concat(),
        ),
        (
            "options with the namespace spelled out",
            split_host(&[auth_server().options("mtls-required", Some(NS))], &[]),
            &[],
            vec![],
        ),
        (
            "an Ingress and an IngressRoute of one host name different options: default for all",
            split_host(
                &[IngressRoute::tls(
                    "par",
                    "Host(`mtls-auth.bank.example`) && Path(`/par`)",
                )],
                &[Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
                    .annotations(common::traefik::tls_options("mtls-required"))
                    .prefix("/")
                    .yaml()],
            ),
            &["HostSettingsConflict", "MtlsNotRequired"],
            [
                vec![("HostSettingsConflict", A, None)],
                mtls_not_required(A, &all_auth),
            ]
            .concat(),
        ),
        (
            "a TLS router naming the host takes part in the SNI choice even if it serves no path",
            split_host(
                &[
                    auth_server(),
                    IngressRoute::tls(
                        "nothing",
                        "Host(`mtls-auth.bank.example`) && Path(`/a`) && Path(`/b`)",
                    ),
                ],
                &[],
            ),
            &["HostSettingsConflict", "MtlsNotRequired"],
            [
                vec![("HostSettingsConflict", A, None)],
                mtls_not_required(A, &all_auth),
            ]
            .concat(),
        ),
        (
            "an Ingress and an IngressRoute of one host name the same options",
            split_host(
                &[IngressRoute::mtls(
                    "par",
                    "Host(`mtls-auth.bank.example`) && Path(`/par`)",
                )],
                &[Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
                    .annotations(common::traefik::tls_options("mtls-required"))
                    .prefix("/")
                    .yaml()],
            ),
            &[],
            vec![],
        ),
        (
            "a router that does not name the host in Host() takes the options the SNI resolves to",
            split_host(
                &[IngressRoute::tls(
                    "regexp",
                    "HostRegexp(`^mtls-auth\\.bank\\.example$`) && Path(`/par`)",
                )],
                &[Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
                    .annotations(common::traefik::tls_options("mtls-required"))
                    .prefix("/")
                    .yaml()],
            ),
            &[],
            vec![],
        ),
        // traefik.io and traefik.containo.us.
        (
            "a traefik.containo.us IngressRoute is read (Traefik v2 serves it)",
            split_host(
                &[
                    auth_server(),
                    IngressRoute::plain(
                        "debug",
                        "Host(`mtls-auth.bank.example`) && Path(`/token`)",
                    )
                    .containous(),
                ],
                &[],
            ),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        (
            "a traefik.containo.us IngressRoute shadowed by the traefik.io one of the same name is ignored",
            split_host(
                &[
                    auth_server(),
                    IngressRoute::plain(
                        "authorization-server-mtls",
                        "Host(`mtls-auth.bank.example`) && Path(`/token`)",
                    )
                    .containous(),
                ],
                &[],
            ),
            &[],
            vec![],
        ),
        (
            "a traefik.containo.us IngressRoute for hosts its traefik.io namesake does not route is still read",
            split_host(
                &[
                    auth_server(),
                    IngressRoute::mtls("debug", "Host(`www.bank.example`)"),
                    IngressRoute::plain(
                        "debug",
                        "Host(`mtls-auth.bank.example`) && Path(`/token`)",
                    )
                    .containous(),
                ],
                &[],
            ),
            LEAK,
            mtls_not_required(A, &["/token"]),
        ),
        // Single host with the gate: priorities and middlewares.
        (
            "single host: public routers without gate, the rest through the gate chain",
            single_host(single_public(), GATE_CHAIN, &[]),
            &[],
            vec![],
        ),
        (
            "priority: a low explicit priority lets the gated router take the public endpoints",
            single_host(single_public().priority(1), GATE_CHAIN, &[]),
            &["MtlsRequiredOnTlsEndpoint"],
            vec![("MtlsRequiredOnTlsEndpoint", SINGLE_HOST, Some("/authorize"))],
        ),
        (
            "priority: by default the longer rule wins, so a short ungated /oauth2/token rule loses",
            single_host(
                single_public(),
                GATE_CHAIN,
                &[IngressRoute::mtls(
                    "debug",
                    "Host(`api.bank.example`) && PathPrefix(`/oauth2/token`)",
                )
                .options("mtls-optional", None)
                .yaml()],
            ),
            &[],
            vec![],
        ),
        (
            "priority: an explicit high priority makes the ungated rule win",
            single_host(
                single_public(),
                GATE_CHAIN,
                &[IngressRoute::mtls(
                    "debug",
                    "Host(`api.bank.example`) && PathPrefix(`/oauth2/token`)",
                )
                .options("mtls-optional", None)
                .priority(1000)
                .yaml()],
            ),
            &["MtlsNotRequired"],
            mtls_not_required(SINGLE_HOST, &["/token"]),
        ),
        (
            "a conditional route never shadows: a gated POST-only router leaves the ungated one serving",
            single_host(
                single_public(),
                GATE_CHAIN,
                &[
                    IngressRoute::mtls(
                        "token-post",
                        "Host(`api.bank.example`) && Path(`/oauth2/token`) && Method(`POST`)",
                    )
                    .options("mtls-optional", None)
                    .middlewares(GATE_CHAIN)
                    .priority(2000)
                    .yaml(),
                    IngressRoute::mtls(
                        "token",
                        "Host(`api.bank.example`) && Path(`/oauth2/token`)",
                    )
                    .options("mtls-optional", None)
                    .priority(1000)
                    .yaml(),
                ],
            ),
            &["MtlsNotRequired"],
            mtls_not_required(SINGLE_HOST, &["/token"]),
        ),
        (
            "middlewares: a gate without the header strip can be forged",
            single_host(single_public(), &["pass-client-cert", "mtls-gate"], &[]),
            &["MtlsNotRequired"],
            mtls_not_required(SINGLE_HOST, &["/token", "/par"]),
        ),
        (
            "middlewares: a headers middleware writing the certificate header after the strip",
            single_host(
                single_public(),
                &[
                    "strip-client-cert",
                    "set-client-cert",
                    "pass-client-cert",
                    "mtls-gate",
                ],
                &[middleware(
                    "set-client-cert",
                    "headers:\n    customRequestHeaders:\n      X-Forwarded-Tls-Client-Cert: forged\n",
                )],
            ),
            &["MtlsNotRequired"],
            mtls_not_required(SINGLE_HOST, &["/token"]),
        ),
        (
            "middlewares: a plugin after the strip may write any header",
            single_host(
                single_public(),
                &[
                    "strip-client-cert",
                    "plugin",
                    "pass-client-cert",
                    "mtls-gate",
                ],
                &[middleware(
                    "plugin",
                    "plugin:\n    header-rewriter:\n      mode: add\n",
                )],
            ),
            &["MtlsNotRequired"],
            mtls_not_required(SINGLE_HOST, &["/token"]),
        ),
        (
            "middlewares: a forwardAuth copying the certificate header from its response",
            single_host(
                single_public(),
                &["strip-client-cert", "sso", "pass-client-cert", "mtls-gate"],
                &[middleware(
                    "sso",
                    "forwardAuth:\n    address: https://sso.bank.example/check\n    authResponseHeaders: [X-Forwarded-Tls-Client-Cert]\n",
                )],
            ),
            &["MtlsNotRequired"],
            mtls_not_required(SINGLE_HOST, &["/token"]),
        ),
        (
            "middlewares: other middleware kinds between strip and gate change nothing",
            single_host(
                single_public(),
                &[
                    "strip-client-cert",
                    "rate-limit",
                    "pass-client-cert",
                    "mtls-gate",
                ],
                &[middleware("rate-limit", "rateLimit:\n    average: 100\n")],
            ),
            &[],
            vec![],
        ),
        (
            "middlewares: a chain Middleware expands to its members in order",
            single_host(
                single_public(),
                &["mtls-gate-chain"],
                &[chain("mtls-gate-chain", GATE_CHAIN)],
            ),
            &[],
            vec![],
        ),
        // IngressRouteTCP: a TCP router whose rule may match a profile host's SNI takes its
        // connections before the HTTP routers (reported, never modelled as harmless).
        (
            "IngressRouteTCP: HostSNI naming the host with TLS passthrough",
            split_host(
                &[auth_server()],
                &[ingress_route_tcp(
                    TRAEFIK_IO,
                    "legacy-token",
                    &["websecure"],
                    "HostSNI(`mtls-auth.bank.example`)",
                    PASSTHROUGH,
                )],
            ),
            &["UnmodelledSetting"],
            vec![("UnmodelledSetting", A, None)],
        ),
        (
            "IngressRouteTCP: HostSNI(`*`) (traefik.containo.us) catches every host",
            split_host(
                &[auth_server()],
                &[ingress_route_tcp(
                    CONTAINOUS,
                    "catch-all",
                    &["websecure"],
                    "HostSNI(`*`)",
                    PASSTHROUGH,
                )],
            ),
            &["UnmodelledSetting"],
            vec![
                ("UnmodelledSetting", A, None),
                ("UnmodelledSetting", MTLS_API_HOST, None),
                ("UnmodelledSetting", PUBLIC_HOST, None),
            ],
        ),
        (
            "IngressRouteTCP: HostSNIRegexp matching the hosts, TLS terminated by Traefik",
            split_host(
                &[auth_server()],
                &[ingress_route_tcp(
                    TRAEFIK_IO,
                    "wildcard",
                    &["websecure"],
                    "HostSNIRegexp(`^.+\\.bank\\.example$`)",
                    "secretName: server-cert",
                )],
            ),
            &["UnmodelledSetting"],
            vec![
                ("UnmodelledSetting", A, None),
                ("UnmodelledSetting", MTLS_API_HOST, None),
            ],
        ),
        (
            "IngressRouteTCP: ClientIP narrows the router to some clients, which it still takes",
            split_host(
                &[auth_server()],
                &[ingress_route_tcp(
                    TRAEFIK_IO,
                    "partners",
                    &["websecure"],
                    "HostSNI(`mtls-auth.bank.example`) && ClientIP(`10.0.0.0/8`)",
                    PASSTHROUGH,
                )],
            ),
            &["UnmodelledSetting"],
            vec![("UnmodelledSetting", A, None)],
        ),
        (
            "IngressRouteTCP: an unparseable rule counts as matching every host",
            split_host(
                &[auth_server()],
                &[ingress_route_tcp(
                    TRAEFIK_IO,
                    "typo",
                    &["websecure"],
                    "HostSNl(`db.bank.example`)",
                    PASSTHROUGH,
                )],
            ),
            &["UnmodelledSetting"],
            vec![
                ("UnmodelledSetting", A, None),
                ("UnmodelledSetting", PUBLIC_HOST, None),
            ],
        ),
        (
            "IngressRouteTCP: a plain-text HostSNI(`*`) router on every entry point",
            split_host(
                &[auth_server()],
                &[ingress_route_tcp(
                    TRAEFIK_IO,
                    "raw",
                    &[],
                    "HostSNI(`*`)",
                    "",
                )],
            ),
            &["UnmodelledSetting"],
            vec![("UnmodelledSetting", A, None)],
        ),
        (
            "IngressRouteTCP: a router for another SNI name takes none of the profile's hosts",
            split_host(
                &[auth_server()],
                &[ingress_route_tcp(
                    TRAEFIK_IO,
                    "database",
                    &["websecure"],
                    "HostSNI(`db.bank.example`)",
                    PASSTHROUGH,
                )],
            ),
            &[],
            vec![],
        ),
        (
            "IngressRouteTCP: HostSNI(`*`) on an entry point none of the hosts' routers use",
            split_host(
                &[auth_server()],
                &[ingress_route_tcp(
                    TRAEFIK_IO,
                    "postgres",
                    &["postgres"],
                    "HostSNI(`*`)",
                    "",
                )],
            ),
            &[],
            vec![],
        ),
        (
            "middlewares: a chain missing the header strip can be forged",
            single_host(
                single_public(),
                &["mtls-gate-chain"],
                &[chain("mtls-gate-chain", &["pass-client-cert", "mtls-gate"])],
            ),
            &["MtlsNotRequired"],
            mtls_not_required(SINGLE_HOST, &["/token"]),
        ),
    ]
}

#[test]
fn ingress_routes_decide_who_reaches_the_profile_endpoints() {
    for (desc, docs, codes, findings) in cases() {
        let verdict = evaluate_complete(&docs);
        let got: BTreeSet<String> = verdict
            .violations
            .iter()
            .map(|v| v.code.to_string())
            .collect();
        let want: BTreeSet<String> = codes.iter().map(|c| c.to_string()).collect();
        assert_eq!(got, want, "{desc}:\n{}", describe(&verdict));
        assert_eq!(verdict.compliant, codes.is_empty(), "{desc}");
        for (code, host, endpoint) in findings {
            assert!(
                verdict.violations.iter().any(|v| v.code.to_string() == code
                    && v.host == host
                    && (endpoint.is_none() || v.endpoint == endpoint)),
                "{desc}: expected {code} on {host} for {endpoint:?}:\n{}",
                describe(&verdict)
            );
        }
    }
}

/// Every IngressRoute finding names the IngressRoute, and an unparseable rule is quoted.
#[test]
fn findings_name_the_ingress_route_and_the_rule() {
    let docs = split_host(
        &[
            auth_server(),
            IngressRoute::plain(
                "typo",
                "Host(`mtls-auth.bank.example`) && PathPrefx(`/token`)",
            ),
        ],
        &[],
    );
    let verdict = evaluate_complete(&docs);
    let unmodelled = with_code(
        &verdict,
        mtls_gate::violation::ViolationCode::UnmodelledSetting,
    );
    assert!(!unmodelled.is_empty());
    for v in unmodelled {
        assert_eq!(ingress_of(v).as_deref(), Some("open-banking/typo"));
        assert!(
            v.message.contains("IngressRoute open-banking/typo")
                && v.message.contains("PathPrefx(`/token`)")
                && v.message.contains("unknown matcher"),
            "{}",
            v.message
        );
    }
}

/// An IngressRouteTCP finding names the object, its group, the rule, the TLS handling and
/// the Service the connections go to.
#[test]
fn tcp_router_findings_name_the_router() {
    let docs = split_host(
        &[auth_server()],
        &[ingress_route_tcp(
            CONTAINOUS,
            "legacy-token",
            &["websecure"],
            "HostSNI(`mtls-auth.bank.example`)",
            PASSTHROUGH,
        )],
    );
    let verdict = evaluate_complete(&docs);
    let unmodelled = with_code(
        &verdict,
        mtls_gate::violation::ViolationCode::UnmodelledSetting,
    );
    assert_eq!(unmodelled.len(), 1, "{}", describe(&verdict));
    let v = unmodelled[0];
    assert_eq!(ingress_of(v).as_deref(), Some("open-banking/legacy-token"));
    for part in [
        "IngressRouteTCP open-banking/legacy-token (traefik.containo.us)",
        "HostSNI(`mtls-auth.bank.example`)",
        "tls.passthrough",
        "entry points websecure",
        "service backend",
    ] {
        assert!(v.message.contains(part), "{part:?} in {}", v.message);
    }
}

/// The validating webhook reviews IngressRoutes (and IngressRouteTCPs) like Ingresses: one
/// that would expose an MTLS endpoint or take an MTLS host's connections is denied, naming
/// itself; a compliant one is admitted.
#[test]
fn admission_reviews_ingress_routes() {
    use mtls_gate::admission::OutcomeKind;
    use mtls_gate::cluster::Completeness;
    use mtls_gate::manifest::{load, read_paths};
    use mtls_gate::model::ObjectKey;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let routed = |route: IngressRoute| (route.name.clone(), route.yaml());
    let cases = [
        (
            "a plain-HTTP IngressRoute serving /token",
            routed(IngressRoute::plain(
                "debug",
                "Host(`mtls-auth.bank.example`) && Path(`/token`)",
            )),
            false,
        ),
        (
            "a traefik.containo.us IngressRoute without TLS options on the MTLS host",
            routed(
                IngressRoute::tls("par", "Host(`mtls-auth.bank.example`) && Path(`/par`)")
                    .containous(),
            ),
            false,
        ),
        (
            "an IngressRoute naming the enforcing TLS options",
            routed(IngressRoute::mtls(
                "par",
                "Host(`mtls-auth.bank.example`) && Path(`/par`)",
            )),
            true,
        ),
        (
            "an IngressRouteTCP passing the MTLS host's connections through",
            (
                "legacy-token".to_string(),
                ingress_route_tcp(
                    TRAEFIK_IO,
                    "legacy-token",
                    &["websecure"],
                    "HostSNI(`mtls-auth.bank.example`)",
                    PASSTHROUGH,
                ),
            ),
            false,
        ),
        (
            "an IngressRouteTCP for another SNI name",
            (
                "database".to_string(),
                ingress_route_tcp(
                    TRAEFIK_IO,
                    "database",
                    &["websecure"],
                    "HostSNI(`db.bank.example`)",
                    PASSTHROUGH,
                ),
            ),
            true,
        ),
    ];
    for (desc, (name, yaml), allowed) in cases {
        let docs =
            read_paths(&[root.join("examples/traefik-ingressroute")]).expect("example reads");
        let mut m = load(docs, "default", true).expect("loads");
        m.view.set_secrets_completeness(Completeness::Complete);
        let manifest: serde_json::Value = serde_yaml_ng::from_str(&yaml).expect("route YAML");
        let (key, outcome) = review_object_change(&m.view, &manifest, NS);
        assert_eq!(key, ObjectKey::new(NS, &name), "{desc}: the review's key");
        assert_eq!(outcome.allowed, allowed, "{desc}: {:?}", outcome.message);
        if !allowed {
            assert_eq!(outcome.decision, OutcomeKind::Denied, "{desc}");
            let message = outcome.message.unwrap_or_default();
            assert!(
                message.contains(&format!("open-banking/{name}")),
                "{desc}: {message}"
            );
        }
    }
}

/// `render` leaves IngressRoutes unchanged and says so for each one serving the profile.
#[test]
fn render_names_the_ingress_routes_it_leaves_unchanged() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtls-gate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["render", "examples/traefik-ingressroute"])
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for (name, host) in [
        ("authorization-server-public", PUBLIC_HOST),
        ("authorization-server-mtls", MTLS_AUTH_HOST),
        ("open-banking-apis", MTLS_API_HOST),
    ] {
        assert!(
            stderr.contains(&format!(
                "note: IngressRoute open-banking/{name} serves endpoints of profile example-bank-ingressroute on host {host}; render writes Ingress annotations only"
            )),
            "{stderr}"
        );
    }
}
