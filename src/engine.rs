//! The compliance engine: pure functions from a profile and a view of objects to a
//! [`Verdict`]. No I/O, no clocks; the CLI, the webhooks and the controller all call these.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::{Location, Scheme};
use crate::dialect::{AuthKind, Dialect, HostContext, HostRouteTable, Route, dialect_for};
use crate::model::{IngressView, ObjectSource};
use crate::paths::{PathTemplate, RouteLiterals, representatives, unlisted_representatives};
use crate::profile::{CompiledProfile, ResolvedEndpoint, UnlistedScope};
use crate::violation::{Violation, ViolationCode};

/// The engine cannot evaluate a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(
        "profile {profile}: spec.ingressController {controller:?} is accepted by the CRD, but this version of mtls-gate cannot evaluate it yet (supported: ingress-nginx, traefik)"
    )]
    UnsupportedController {
        profile: String,
        controller: &'static str,
    },
}

/// One route that serves (some instances of) an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingRoute {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
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

/// How the controller would treat one host of the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostSummary {
    pub profile: String,
    pub host: String,
    /// The Ingress rule host that serves it (exact, `*.` wildcard, or `""`), if any.
    pub rule_host: Option<String>,
    /// Host-level client authentication, in the controller's terms.
    pub client_auth: String,
}

/// The result of evaluating one profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub compliant: bool,
    pub violations: Vec<Violation>,
    pub coverage: Vec<EndpointCoverage>,
    pub hosts: Vec<HostSummary>,
}

impl Verdict {
    pub fn merge(&mut self, other: Verdict) {
        self.violations.extend(other.violations);
        self.coverage.extend(other.coverage);
        self.hosts.extend(other.hosts);
        self.violations.sort();
        self.violations.dedup();
        self.compliant = self.violations.is_empty();
    }
}

/// Evaluates every host of the profile.
pub fn evaluate(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
) -> Result<Verdict, EngineError> {
    evaluate_hosts(profile, objects, &profile.hosts)
}

/// Evaluates only the profile's endpoints on `hosts` (the admission path: the hosts an
/// Ingress change touches).
pub fn evaluate_hosts(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
    hosts: &BTreeSet<String>,
) -> Result<Verdict, EngineError> {
    evaluate_with(profile, objects, hosts, true)
}

/// Like [`evaluate_hosts`] without the coverage report: the admission path needs only the
/// violations.
pub fn violations_on_hosts(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
    hosts: &BTreeSet<String>,
) -> Result<Verdict, EngineError> {
    evaluate_with(profile, objects, hosts, false)
}

fn evaluate_with(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
    hosts: &BTreeSet<String>,
    coverage: bool,
) -> Result<Verdict, EngineError> {
    let dialect =
        dialect_for(profile.controller()).ok_or_else(|| EngineError::UnsupportedController {
            profile: profile.name.clone(),
            controller: profile.controller().as_str(),
        })?;
    let mut verdict = Verdict::default();
    for host in hosts.iter().filter(|h| profile.hosts.contains(*h)) {
        evaluate_host(profile, dialect, objects, host, coverage, &mut verdict);
    }
    verdict.violations.sort();
    verdict.violations.dedup();
    verdict.compliant = verdict.violations.is_empty();
    Ok(verdict)
}

/// The rule host that serves `host`: an exact rule, else a `*.` wildcard, else a host-less
/// rule (as controllers pick server blocks), with its Ingresses of the considered class.
pub fn serving_ingresses(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
    host: &str,
) -> Option<(String, Vec<Arc<IngressView>>)> {
    let wildcard = host.split_once('.').map(|(_, rest)| format!("*.{rest}"));
    [Some(host.to_string()), wildcard, Some(String::new())]
        .into_iter()
        .flatten()
        .find_map(|key| {
            let ings: Vec<_> = objects
                .ingresses_for_host(&key)
                .into_iter()
                .filter(|i| profile.considers_class(i.class.as_deref()))
                .collect();
            (!ings.is_empty()).then_some((key, ings))
        })
}

/// Builds the route table the profile's dialect sees for `host`.
pub fn host_table(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
) -> Option<HostRouteTable> {
    let (host_key, ingresses) = serving_ingresses(profile, objects, host)?;
    let ctx = HostContext {
        profile,
        host,
        host_key: &host_key,
        ingresses,
        objects,
    };
    Some(dialect.host_table(&ctx))
}

/// Indices of the routes that serve some instance of `template`.
fn serving_routes(
    dialect: &dyn Dialect,
    table: &HostRouteTable,
    instances: Option<Vec<String>>,
    may_match: impl Fn(&Route) -> bool,
) -> BTreeSet<usize> {
    let mut serving = BTreeSet::new();
    match instances {
        Some(instances) => {
            for path in &instances {
                serving.extend(dialect.winners(table, path));
            }
        }
        // Too many representatives: every route that may match some instance may serve it.
        None => serving.extend(
            table
                .routes
                .iter()
                .enumerate()
                .filter(|(_, r)| may_match(r))
                .map(|(i, _)| i),
        ),
    }
    // Regexes that representatives cannot enumerate may serve any instance they admit.
    serving.extend(
        table
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.matcher.is_opaque() && may_match(r))
            .map(|(i, _)| i),
    );
    serving.retain(|i| table.routes[*i].serves_backend);
    serving
}

/// What a target (an endpoint or the unlisted paths under a base URL) is called in findings.
struct Target<'a> {
    endpoint: Option<&'static str>,
    label: String,
    category: &'a str,
    scheme: Scheme,
    url: &'a str,
}

fn evaluate_host(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
    coverage: bool,
    verdict: &mut Verdict,
) {
    let endpoints: Vec<&ResolvedEndpoint> = profile
        .endpoints
        .iter()
        .filter(|e| e.host == host)
        .collect();
    let scopes: Vec<&UnlistedScope> = profile.unlisted.iter().filter(|s| s.host == host).collect();
    let table = host_table(profile, dialect, objects, host);
    verdict.hosts.push(HostSummary {
        profile: profile.name.clone(),
        host: host.to_string(),
        rule_host: table.as_ref().map(|t| t.host_key.clone()),
        client_auth: table.as_ref().map_or_else(
            || "no Ingress serves this host".to_string(),
            |t| t.client_auth.clone(),
        ),
    });
    let Some(table) = table else {
        for ep in endpoints.iter().filter(|e| !e.default_alias) {
            verdict.coverage.push(EndpointCoverage {
                profile: profile.name.clone(),
                endpoint: ep.row.endpoint.to_string(),
                category: ep.row.category.as_str().to_string(),
                scheme: ep.row.scheme.as_str().to_string(),
                url: ep.url.clone(),
                host: host.to_string(),
                served: false,
                compliant: true,
                routes: Vec::new(),
            });
        }
        return;
    };
    verdict.violations.extend(table.findings.iter().cloned());
    let literals = RouteLiterals::new(table.routes.iter().map(|r| &r.matcher));
    let mut untls: BTreeMap<String, &Route> = BTreeMap::new();
    let pass = HostPass {
        profile,
        host,
        table: &table,
        coverage,
    };

    for ep in &endpoints {
        let instances = representatives(&ep.path, &literals);
        let serving = serving_routes(dialect, &table, instances, |r| {
            r.matcher.may_match_template(&ep.path)
        });
        if ep.default_alias && serving.is_empty() {
            continue;
        }
        let target = Target {
            endpoint: Some(ep.row.endpoint),
            label: ep.row.endpoint.to_string(),
            category: ep.row.category.as_str(),
            scheme: ep.row.scheme,
            url: &ep.url,
        };
        record(&pass, &serving, &target, verdict, &mut untls);
    }

    for scope in &scopes {
        let listed: Vec<&PathTemplate> = profile
            .endpoints
            .iter()
            .filter(|e| {
                e.row.location == Location::ApiBase
                    && e.host == host
                    && e.path.starts_with(&scope.base)
            })
            .map(|e| &e.path)
            .collect();
        let instances = unlisted_representatives(&scope.base, &listed, &literals);
        let serving = serving_routes(dialect, &table, Some(instances), |r| {
            r.matcher.may_match_under(&scope.base)
        });
        let url = format!("{}/…", scope.base_url);
        let target = Target {
            endpoint: None,
            label: "(unlisted API paths)".into(),
            category: "unlisted",
            scheme: scope.scheme,
            url: &url,
        };
        record(&pass, &serving, &target, verdict, &mut untls);
    }

    for (ingress, route) in untls {
        verdict.violations.push(Violation {
            code: ViolationCode::TlsMissing,
            message: format!(
                "Host {host} serves endpoints of profile {} through Ingress {ingress} without TLS: no spec.tls entry of the host's Ingresses lists {host}{}. Client certificates exist only in TLS, and open-banking endpoints must not be served in clear text. Add a spec.tls entry for {host} with the server certificate Secret.",
                profile.name,
                if profile.controller() == crate::profile::IngressController::Traefik {
                    " and the Ingress does not set router.tls: \"true\""
                } else {
                    ""
                }
            ),
            profile: profile.name.clone(),
            host: host.to_string(),
            ingress: Some(route.ingress.key.clone()),
            path: None,
            endpoint: None,
            url: None,
        });
    }
}

/// One host's evaluation: what [`record`] needs besides the target.
struct HostPass<'t> {
    profile: &'t CompiledProfile,
    host: &'t str,
    table: &'t HostRouteTable,
    coverage: bool,
}

fn record<'t>(
    pass: &HostPass<'t>,
    serving: &BTreeSet<usize>,
    target: &Target<'_>,
    verdict: &mut Verdict,
    untls: &mut BTreeMap<String, &'t Route>,
) {
    let HostPass {
        profile,
        host,
        table,
        coverage,
    } = *pass;
    let mut routes = Vec::new();
    let mut seen = BTreeSet::new();
    for &i in serving {
        let route = &table.routes[i];
        // A Prefix path is two nginx locations; report it once.
        if !seen.insert((
            Arc::as_ptr(&route.ingress) as usize,
            route.path.as_str(),
            route.path_type,
        )) {
            continue;
        }
        if !route.tls {
            untls.entry(route.ingress.key.to_string()).or_insert(route);
        }
        let kind = route.auth.kind;
        let compliant = match target.scheme {
            Scheme::Mtls => kind.requires_verified_certificate(),
            Scheme::Tls => {
                !kind.refuses_clients_without_certificate() && kind != AuthKind::Rejected
            }
        };
        if !compliant {
            verdict
                .violations
                .push(route_violation(profile, host, route, target));
        }
        if !coverage {
            continue;
        }
        routes.push(ServingRoute {
            ingress: route.ingress.key.to_string(),
            path: route.path.clone(),
            path_type: route.path_type.as_str().to_string(),
            client_auth: kind.as_str().to_string(),
            detail: route.auth.detail.to_string(),
            compliant,
        });
    }
    if !coverage {
        return;
    }
    verdict.coverage.push(EndpointCoverage {
        profile: profile.name.clone(),
        endpoint: target.label.clone(),
        category: target.category.to_string(),
        scheme: target.scheme.as_str().to_string(),
        url: target.url.to_string(),
        host: host.to_string(),
        served: !routes.is_empty(),
        compliant: routes.iter().all(|r| r.compliant),
        routes,
    });
}

fn route_violation(
    profile: &CompiledProfile,
    host: &str,
    route: &Route,
    target: &Target<'_>,
) -> Violation {
    let what = match target.endpoint {
        Some(e) => format!("{} endpoint {e} ({})", target.scheme, target.url),
        None => format!(
            "unlisted API paths under {} (scheme {} by spec.unlistedApiPaths)",
            target.url, target.scheme
        ),
    };
    let route_text = format!(
        "Ingress {} path {} ({}) on host {host}",
        route.ingress.key,
        route.path,
        route.path_type.as_str()
    );
    let auth = format!(
        "client auth there is {} ({})",
        route.auth.kind.as_str(),
        route.auth.detail
    );
    let (code, message) = match target.scheme {
        Scheme::Mtls => {
            let fix = match (profile.gate_url(), route.auth.kind) {
                (_, AuthKind::RequiredUnverified | AuthKind::OptionalUnverified) => {
                    "verify the chain against the profile's CA (ingress-nginx auth-tls-verify-client \"on\"; Traefik RequireAndVerifyClientCert)".to_string()
                }
                (Some(_), _) => format!(
                    "serve the path from a host that requires verified client certificates, or label Ingress {} with {}={} so mtls-gate renders optional verification plus the gate for it",
                    route.ingress.key,
                    crate::model::PROFILE_LABEL,
                    profile.name
                ),
                (None, _) => format!(
                    "serve the path from a host whose Ingresses require verified client certificates (split host: MTLS endpoints on their own host), e.g. by labelling the MTLS host's Ingresses with {}={} so mtls-gate renders the settings; a host that also serves TLS endpoints needs spec.gate",
                    crate::model::PROFILE_LABEL,
                    profile.name
                ),
            };
            (
                ViolationCode::MtlsNotRequired,
                format!(
                    "{what} is served by {route_text}, where {auth}. Clients without a verified certificate can reach it, but the security profile requires MTLS. Fix: {fix}."
                ),
            )
        }
        Scheme::Tls => (
            ViolationCode::MtlsRequiredOnTlsEndpoint,
            format!(
                "{what} is served by {route_text}, where {auth}. Clients without a certificate (browsers at /authorize, relying parties fetching discovery and JWKS) are refused, but TLS endpoints MUST NOT require MTLS. Fix: serve it from a host whose Ingresses do not require client certificates, and do not put the gate on its route."
            ),
        ),
    };
    Violation {
        code,
        message,
        profile: profile.name.clone(),
        host: host.to_string(),
        ingress: Some(route.ingress.key.clone()),
        path: Some(route.path.clone()),
        endpoint: target.endpoint,
        url: Some(target.url.to_string()),
    }
}
