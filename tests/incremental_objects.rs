//! Incremental admission decisions on changes to objects of dialect-owned kinds equal full
//! re-evaluation (issue "Engine v2", item 3; issue 12: "the engine benchmarks hold for a
//! Gateway API host as they do for Ingress").
//!
//! Random Gateway API worlds (the bank's split-host layout on Envoy Gateway: a public
//! Gateway, an MTLS Gateway whose port may or may not require verified certificates, and
//! HTTPRoutes on and around the profile's endpoints) and random sequences of changes:
//! HTTPRoutes created, moved to other paths, re-attached, re-dated and deleted, and the MTLS
//! Gateway's frontend validation changed. For every change:
//! - each host evaluated from its before-state, re-evaluating only what the changed object's
//!   routes can reach (`engine::evaluate_host_after_object_change`), has the same verdict,
//!   coverage included, and the same table as the host evaluated from scratch on the world
//!   after the change (`engine::evaluate_host`), also when the before-state is itself the
//!   previous change's incremental result, and its table chooses the same winners for
//!   every path of the pool (so a patched table's remapped index is checked too);
//! - the admission decision with the before-state cache (`review_object`, as the webhook
//!   runs it) equals the reference decision (`review_object_in_full`).
//!
//! The same for Traefik worlds: IngressRoutes on the profile's hosts (or on none), with
//! paths, header conditions, priorities, TLS and TLS options, created, changed and deleted,
//! and the `mtls-required` TLSOption's client auth type changed.

mod common;

use std::path::Path;
use std::sync::Arc;

use mtls_gate::admission::{BeforeStateCache, review_object, review_object_in_full};
use mtls_gate::cluster::{ClusterView, WithObjectChange};
use mtls_gate::dialect::{ObjectKind, SharedObject, reduce_owned};
use mtls_gate::engine;
use mtls_gate::manifest::{load, parse_documents};
use mtls_gate::model::{Lookup, ObjectKey, ObjectSource};
use proptest::prelude::*;

const NS: &str = "open-banking";
const PUBLIC: &str = "auth.bank.example";
const MTLS_AUTH: &str = "mtls-auth.bank.example";
const MTLS_API: &str = "mtls-api.bank.example";
const API_BASE: &str = "/open-banking-nz/v3.0";
const NAMES: [&str; 5] = ["apis", "auth", "public", "payments", "legacy"];
const CREATED: [&str; 3] = [
    "2026-01-10T09:00:00Z",
    "2026-01-30T12:00:00Z",
    "2026-02-20T14:30:00Z",
];

fn path_pool() -> Vec<String> {
    vec![
        "/".into(),
        "/token".into(),
        "/par".into(),
        "/authorize".into(),
        "/jwks".into(),
        "/.well-known/openid-configuration".into(),
        "/oauth2".into(),
        API_BASE.into(),
        format!("{API_BASE}/"),
        format!("{API_BASE}/accounts"),
        format!("{API_BASE}/accounts/123"),
        format!("{API_BASE}/accounts/123/balances"),
        format!("{API_BASE}/acc.*"),
        format!("{API_BASE}/payments"),
        format!("{API_BASE}/domestic-payment-consents"),
        "/open-banking-nz".into(),
    ]
}

/// `parentRefs` an HTTPRoute may carry.
const PARENTS: [&str; 5] = [
    "[{name: mtls}]",
    "[{name: mtls, sectionName: mtls-api}]",
    "[{name: mtls, sectionName: mtls-auth}]",
    "[{name: public}]",
    "[{name: mtls, sectionName: mtls-api}, {name: public}]",
];

/// `hostnames` an HTTPRoute may carry.
const HOSTNAMES: [&str; 5] = [
    "[]",
    "[mtls-api.bank.example]",
    "[mtls-auth.bank.example]",
    "[auth.bank.example]",
    "[\"*.bank.example\"]",
];

/// The MTLS Gateway's `spec.tls` (indented under `spec:`).
const FRONTEND: [&str; 3] = [
    "  tls:
    frontend:
      default:
        validation:
          mode: AllowValidOnly
          caCertificateRefs: [{group: \"\", kind: ConfigMap, name: open-banking-client-ca}]
",
    "  tls:
    frontend:
      default:
        validation:
          mode: AllowInsecureFallback
          caCertificateRefs: [{group: \"\", kind: ConfigMap, name: open-banking-client-ca}]
",
    "",
];

#[derive(Debug, Clone)]
struct MatchSpec {
    path: usize,
    /// 0 Exact, 1 PathPrefix, 2 RegularExpression.
    kind: usize,
    /// Also tests a header: may or may not apply to a request.
    header: bool,
}

#[derive(Debug, Clone)]
struct RouteSpec {
    name: usize,
    parents: usize,
    hostnames: usize,
    /// Index into [`CREATED`]; out of range: no creation time.
    created: usize,
    rules: Vec<Vec<MatchSpec>>,
}

fn match_spec() -> impl Strategy<Value = MatchSpec> + Clone {
    (
        0..path_pool().len(),
        prop_oneof![4 => Just(0usize), 5 => Just(1usize), 1 => Just(2usize)],
        prop::bool::weighted(0.25),
    )
        .prop_map(|(path, kind, header)| MatchSpec { path, kind, header })
}

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    (
        0..NAMES.len(),
        0..PARENTS.len(),
        0..HOSTNAMES.len(),
        0..4usize,
        prop::collection::vec(prop::collection::vec(match_spec(), 0..3), 1..3),
    )
        .prop_map(|(name, parents, hostnames, created, rules)| RouteSpec {
            name,
            parents,
            hostnames,
            created,
            rules,
        })
}

#[derive(Debug, Clone)]
enum Change {
    Upsert(RouteSpec),
    /// The HTTPRoute of the spec's name with its parents, hostnames and creation time kept
    /// and the spec's rules: its routes move within the hosts it serves.
    Repath(RouteSpec),
    Delete(usize),
    /// The MTLS Gateway with the frontend validation of this index into [`FRONTEND`].
    Frontend(usize),
    /// The HTTPRoute of this name as it is, with a status the controller wrote (nothing a
    /// dialect reads: the view stays the same); absent, it is deleted (also no change).
    Status(usize),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => route_spec().prop_map(Change::Upsert),
        3 => route_spec().prop_map(Change::Repath),
        1 => (0..NAMES.len()).prop_map(Change::Delete),
        1 => (0..FRONTEND.len()).prop_map(Change::Frontend),
        1 => (0..NAMES.len()).prop_map(Change::Status),
    ]
}

#[derive(Debug, Clone)]
struct World {
    frontend: usize,
    initial: Vec<RouteSpec>,
    changes: Vec<Change>,
}

fn world() -> impl Strategy<Value = World> {
    (
        0..FRONTEND.len(),
        prop::collection::vec(route_spec(), 0..6),
        prop::collection::vec(change(), 1..7),
    )
        .prop_map(|(frontend, initial, changes)| World {
            frontend,
            initial,
            changes,
        })
}

fn public_gateway() -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: public
  namespace: {NS}
spec:
  gatewayClassName: eg
  listeners:
    - {{name: auth-https, protocol: HTTPS, port: 443, hostname: {PUBLIC}, tls: {{mode: Terminate, certificateRefs: [{{name: public-tls}}]}}}}
"
    )
}

fn mtls_gateway(frontend: usize) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: mtls
  namespace: {NS}
spec:
  gatewayClassName: eg
  listeners:
    - {{name: mtls-auth, protocol: HTTPS, port: 443, hostname: {MTLS_AUTH}, tls: {{mode: Terminate, certificateRefs: [{{name: mtls-tls}}]}}}}
    - {{name: mtls-api, protocol: HTTPS, port: 443, hostname: {MTLS_API}, tls: {{mode: Terminate, certificateRefs: [{{name: mtls-tls}}]}}}}
{}",
        FRONTEND[frontend]
    )
}

fn http_route(spec: &RouteSpec) -> String {
    let pool = path_pool();
    let created = CREATED
        .get(spec.created)
        .map_or(String::new(), |t| format!("\n  creationTimestamp: \"{t}\""));
    let rules: Vec<String> = spec
        .rules
        .iter()
        .map(|rule| {
            let matches: Vec<String> = rule
                .iter()
                .map(|m| {
                    let kind = ["Exact", "PathPrefix", "RegularExpression"][m.kind];
                    let headers = if m.header {
                        ", headers: [{name: x-fapi-interaction-id, value: \"1\"}]"
                    } else {
                        ""
                    };
                    format!(
                        "{{path: {{type: {kind}, value: \"{}\"}}{headers}}}",
                        pool[m.path]
                    )
                })
                .collect();
            format!("{{matches: [{}]}}", matches.join(", "))
        })
        .collect();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: {NS}{created}
spec:
  parentRefs: {parents}
  hostnames: {hostnames}
  rules: [{rules}]
",
        name = NAMES[spec.name],
        parents = PARENTS[spec.parents],
        hostnames = HOSTNAMES[spec.hostnames],
        rules = rules.join(", ")
    )
}

fn load_view(world: &World) -> ClusterView {
    let mut docs = vec![
        common::gateway_profile(""),
        common::gateway_ca_config_map(),
        public_gateway(),
        mtls_gateway(world.frontend),
    ];
    // Later specs with the same name replace earlier ones, as in a cluster.
    let mut by_name = std::collections::BTreeMap::new();
    for spec in &world.initial {
        by_name.insert(spec.name, http_route(spec));
    }
    docs.extend(by_name.into_values());
    view_of(&docs)
}

/// The cluster view of a world's manifests.
fn view_of(docs: &[String]) -> ClusterView {
    let text = docs.join("---\n");
    let parsed = parse_documents(Path::new("world.yaml"), &text).expect("world parses");
    load(parsed, "default", true).expect("world loads").view
}

/// The kind and compact view of one manifest, as the webhook reduces it.
fn reduced(manifest: &str) -> (&'static ObjectKind, SharedObject) {
    let value: serde_json::Value = serde_yaml_ng::from_str(manifest).expect("manifest");
    reduce_owned(&value, NS)
        .expect("a Gateway API kind")
        .expect("reduces")
}

/// One change to an object of a dialect-owned kind: the object after it (`None`: deleted).
struct ObjectChange {
    kind: &'static ObjectKind,
    key: ObjectKey,
    after: Option<SharedObject>,
    /// What the change is, for failure messages.
    label: String,
}

impl ObjectChange {
    /// The object of `manifest` created or replaced.
    fn upsert(manifest: &str, label: String) -> Self {
        let (kind, object) = reduced(manifest);
        Self {
            kind,
            key: object.key().clone(),
            after: Some(object),
            label,
        }
    }

    /// The object of `manifest` (any version of it) deleted.
    fn delete(manifest: &str, label: String) -> Self {
        Self {
            after: None,
            ..Self::upsert(manifest, label)
        }
    }
}

/// A version of the HTTPRoute `name` (for a deletion, which names only the key).
fn any_version(name: usize) -> RouteSpec {
    RouteSpec {
        name,
        parents: 0,
        hostnames: 0,
        created: 0,
        rules: vec![],
    }
}

/// The changes of a Gateway API world, in order.
fn gateway_changes(world: &World) -> Vec<ObjectChange> {
    let mut applied: std::collections::BTreeMap<usize, RouteSpec> = world
        .initial
        .iter()
        .map(|spec| (spec.name, spec.clone()))
        .collect();
    world
        .changes
        .iter()
        .map(|change| {
            let label = format!("{change:?}");
            match change {
                Change::Upsert(spec) | Change::Repath(spec) => {
                    let spec = match (change, applied.get(&spec.name)) {
                        (Change::Repath(_), Some(current)) => RouteSpec {
                            rules: spec.rules.clone(),
                            ..current.clone()
                        },
                        _ => spec.clone(),
                    };
                    let change = ObjectChange::upsert(&http_route(&spec), label);
                    applied.insert(spec.name, spec);
                    change
                }
                Change::Status(name) => match applied.get(name) {
                    Some(current) => ObjectChange::upsert(
                        &format!(
                            "{}status:\n  parents:\n    - parentRef: {{name: mtls}}\n      controllerName: gateway.envoyproxy.io/gatewayclass-controller\n      conditions: [{{type: Accepted, status: \"True\", reason: Accepted}}]\n",
                            http_route(current)
                        ),
                        label,
                    ),
                    None => ObjectChange::delete(&http_route(&any_version(*name)), label),
                },
                Change::Delete(name) => {
                    applied.remove(name);
                    ObjectChange::delete(&http_route(&any_version(*name)), label)
                }
                Change::Frontend(frontend) => ObjectChange::upsert(&mtls_gateway(*frontend), label),
            }
        })
        .collect()
}

/// Applies `changes` to `view` one by one; before each, holds the incremental host
/// evaluations (from a full and from the chained before-state) and the cached admission
/// decision to the full ones.
fn check_changes(mut view: ClusterView, changes: Vec<ObjectChange>) -> Result<(), TestCaseError> {
    let cache = BeforeStateCache::default();
    // Each host as the incremental evaluation left it after the previous change.
    let mut chained = common::before_states(&view);
    for ObjectChange {
        kind,
        key,
        after,
        label,
    } in changes
    {
        let old = match view.object(kind, &key) {
            Lookup::Found(old) => Some(old.clone()),
            _ => None,
        };
        let after_world = WithObjectChange {
            base: &view,
            kind: *kind,
            key: &key,
            replacement: after.clone(),
        };
        for profile in view.profiles() {
            let dialect = engine::profile_dialect(profile).expect("dialect");
            for host in &profile.hosts {
                let full = engine::evaluate_host(profile, dialect, &after_world, host, true);
                let full_without_coverage =
                    engine::evaluate_host(profile, dialect, &after_world, host, false);
                let before =
                    engine::evaluate_host_before_change(profile, dialect, &view, host, true);
                let before_without_coverage =
                    engine::evaluate_host_before_change(profile, dialect, &view, host, false);
                let id = (profile.name.clone(), host.clone());
                // From a full before-state, keeping probes and not; as a review decides (no
                // coverage, no probes kept); and from the chained incremental state.
                for (from, before, keep_probes, full) in [
                    ("the full", &before, true, &full),
                    ("the full (probes not kept)", &before, false, &full),
                    (
                        "the full without coverage (a review's)",
                        &before_without_coverage,
                        false,
                        &full_without_coverage,
                    ),
                    ("the chained", &chained[&id], true, &full),
                ] {
                    let incremental = engine::evaluate_host_after_object_change(
                        profile,
                        dialect,
                        &after_world,
                        host,
                        before,
                        kind,
                        &key,
                        (old.as_ref(), after.as_ref()),
                        keep_probes,
                    );
                    prop_assert_eq!(
                        incremental.verdict(),
                        full.verdict(),
                        "host {} after {}, from {} before-state",
                        host,
                        label,
                        from
                    );
                    prop_assert!(
                        common::same_tables(&incremental, full),
                        "host {} after {}, from {} before-state: the table differs from the one built in full",
                        host,
                        label,
                        from
                    );
                    // The patched table's lookup structure (a remapped index) chooses as the
                    // full table's, for every path of the pool and below it.
                    let differs =
                        common::first_different_winners(dialect, &incremental, full, &path_pool());
                    prop_assert!(
                        differs.is_none(),
                        "host {} after {}, from {} before-state: (path, incremental winners, full winners) {:?}",
                        host,
                        label,
                        from,
                        differs
                    );
                }
                let next = engine::evaluate_host_after_object_change(
                    profile,
                    dialect,
                    &after_world,
                    host,
                    &chained[&id],
                    kind,
                    &key,
                    (old.as_ref(), after.as_ref()),
                    true,
                );
                chained.insert(id, next);
            }
        }

        // Admission level: the cached, incremental decision equals the reference.
        prop_assert_eq!(
            review_object(&view, kind, &key, after.clone(), &cache),
            review_object_in_full(&view, kind, &key, after.clone()),
            "decision after {}",
            label
        );

        match after {
            Some(object) => {
                view.upsert_object(*kind, object);
            }
            None => {
                view.remove_object(kind, &key);
            }
        }
    }
    Ok(())
}

/// The compliant layout: the MTLS Gateway requires verified certificates, and one
/// HTTPRoute serves the API base path on its API listener.
fn compliant_world() -> World {
    World {
        frontend: 0,
        initial: vec![RouteSpec {
            name: 0,
            parents: 1,
            hostnames: 1,
            created: 0,
            rules: vec![vec![MatchSpec {
                path: 7,
                kind: 1,
                header: false,
            }]],
        }],
        changes: vec![],
    }
}

/// Not only random: a world where most changes reach no target (a route moved between
/// paths no endpoint or unlisted scope has) still decides as the reference, and a Gateway
/// change that drops the client certificate requirement is denied by both.
#[test]
fn dropping_the_mtls_gateways_validation_is_denied_incrementally_too() {
    let world = compliant_world();
    let view = load_view(&world);
    let (kind, gateway) = reduced(&mtls_gateway(2));
    let key = ObjectKey::new(NS, "mtls");
    let cache = BeforeStateCache::default();
    let cached = review_object(&view, kind, &key, Some(gateway.clone()), &cache);
    let reference = review_object_in_full(&view, kind, &key, Some(Arc::clone(&gateway)));
    assert!(!reference.allowed, "{reference:?}");
    assert_eq!(cached, reference);
}

/// A controller writing an HTTPRoute's status (the most common UPDATE of the kind) changes
/// nothing a dialect reads: the view keeps the host's stamp (and so its cached before-state),
/// and the review decides as the reference. A moved path is a change of the view.
#[test]
fn an_httproute_status_update_keeps_the_hosts_state() {
    let world = compliant_world();
    let mut view = load_view(&world);
    let current = &world.initial[0];
    let with_status = format!(
        "{}status:\n  parents:\n    - parentRef: {{name: mtls}}\n      controllerName: gateway.envoyproxy.io/gatewayclass-controller\n      conditions: [{{type: Accepted, status: \"True\", reason: Accepted}}]\n",
        http_route(current)
    );
    let (kind, status_only) = reduced(&with_status);
    let key = status_only.key().clone();
    let cache = BeforeStateCache::default();
    assert_eq!(
        review_object(&view, kind, &key, Some(status_only.clone()), &cache),
        review_object_in_full(&view, kind, &key, Some(status_only.clone()))
    );
    let stamp = view.host_stamp(MTLS_API);
    view.upsert_object(*kind, status_only);
    assert_eq!(
        view.host_stamp(MTLS_API),
        stamp,
        "a status update is no new state"
    );

    let mut moved = current.clone();
    moved.rules[0][0].path = (current.rules[0][0].path + 1) % path_pool().len();
    let (_, moved) = reduced(&http_route(&moved));
    view.upsert_object(*kind, moved);
    assert_ne!(
        view.host_stamp(MTLS_API),
        stamp,
        "a moved path is a new state"
    );
}

/// A patched table is patched again without a full build (its routes' host order is
/// derived from its base's), and every table of the chain is the one a full build gives:
/// an HTTPRoute created, moved, and deleted on the API host.
#[test]
fn a_patched_table_is_patched_again() {
    let world = compliant_world();
    let mut view = load_view(&world);
    let second = RouteSpec {
        name: 1,
        ..world.initial[0].clone()
    };
    let mut moved = second.clone();
    moved.rules[0][0].path = (second.rules[0][0].path + 1) % path_pool().len();
    let changes = [
        ObjectChange::upsert(&http_route(&second), "create".into()),
        ObjectChange::upsert(&http_route(&moved), "move".into()),
        ObjectChange::delete(&http_route(&moved), "delete".into()),
    ];
    let profile = view.profiles().next().expect("profile").clone();
    let dialect = engine::profile_dialect(&profile).expect("dialect");
    let before = engine::evaluate_host_before_change(&profile, dialect, &view, MTLS_API, true);
    let mut table = before.table().expect("served").clone();
    for change in changes {
        let old = match view.object(change.kind, &change.key) {
            Lookup::Found(old) => Some(old.clone()),
            _ => None,
        };
        let patch = dialect
            .patched_object_table(
                MTLS_API,
                &table,
                change.kind,
                old.as_ref(),
                change.after.as_ref(),
            )
            .unwrap_or_else(|| panic!("{}: patched, not built in full", change.label));
        match &change.after {
            Some(object) => {
                view.upsert_object(*change.kind, object.clone());
            }
            None => {
                view.remove_object(change.kind, &change.key);
            }
        }
        let full = engine::evaluate_host(&profile, dialect, &view, MTLS_API, true);
        assert!(
            engine::same_table(&patch.table, full.table().expect("served")),
            "{}: the patched table is the one built in full",
            change.label
        );
        table = patch.table;
    }
}

/// An HTTPRoute whose hostname is a wildcard over more than one label (`*.example`: a
/// suffix match, `HTTPRoute.Hostnames`) serves `mtls-api.bank.example` too, so changing it
/// changes that host's state: a before-state cached for the host must not outlive it, and
/// the review must not take the host for one the route cannot reach. Here
/// the route serves the API over plain HTTP, is deleted, and is created again: the
/// re-creation introduces the violation anew and is denied, as the reference denies it.
#[test]
fn a_route_under_a_deep_wildcard_invalidates_the_hosts_cached_state() {
    let plain_gateway = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: plain
  namespace: {NS}
spec:
  gatewayClassName: eg
  listeners:
    - {{name: http, protocol: HTTP, port: 80}}
"
    );
    let bad_route = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: everything-in-clear
  namespace: {NS}
spec:
  parentRefs: [{{name: plain}}]
  hostnames: [\"*.example\"]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: {API_BASE}}}}}]}}]
"
    );
    let world = compliant_world();
    let mut view = load_view(&world);
    let (gateway_kind, plain) = reduced(&plain_gateway);
    view.upsert_object(*gateway_kind, plain);
    let (kind, bad) = reduced(&bad_route);
    let key = bad.key().clone();
    view.upsert_object(*kind, bad.clone());

    // A review on the API host fills the cache while the bad route exists.
    let cache = BeforeStateCache::default();
    let (apis_kind, apis) = reduced(&http_route(&world.initial[0]));
    let warm = review_object(&view, apis_kind, apis.key(), Some(apis.clone()), &cache);
    assert!(warm.allowed, "{warm:?}");

    // Deleted, then created again.
    assert_eq!(
        review_object(&view, kind, &key, None, &cache),
        review_object_in_full(&view, kind, &key, None)
    );
    view.remove_object(kind, &key);
    let reference = review_object_in_full(&view, kind, &key, Some(bad.clone()));
    assert!(!reference.allowed, "{reference:?}");
    assert_eq!(
        review_object(&view, kind, &key, Some(bad), &cache),
        reference
    );
}

/// Hosts of the Traefik worlds' IngressRoutes (the last: none, a rule without `Host`).
const TRAEFIK_HOSTS: [Option<&str>; 4] = [
    Some(common::PUBLIC_HOST),
    Some(common::MTLS_AUTH_HOST),
    Some(common::MTLS_API_HOST),
    None,
];

/// TLS client auth types the `mtls-required` TLSOption may be changed to.
const CLIENT_AUTH_TYPES: [&str; 3] = [
    "RequireAndVerifyClientCert",
    "VerifyClientCertIfGiven",
    "NoClientCert",
];

#[derive(Debug, Clone)]
struct IngressRouteSpec {
    name: usize,
    host: usize,
    /// (path, 0 `Path` / 1 `PathPrefix`), joined with `||`; none: every path of the host.
    paths: Vec<(usize, usize)>,
    /// Also tests a header: may or may not apply to a request.
    header: bool,
    /// 0: plain HTTP (`web`, no `spec.tls`); 1: TLS without options; 2: the
    /// `mtls-required` TLSOption; 3: the `optional` one.
    tls: usize,
    priority: Option<i64>,
}

fn ingress_route_spec() -> impl Strategy<Value = IngressRouteSpec> {
    (
        0..NAMES.len(),
        0..TRAEFIK_HOSTS.len(),
        prop::collection::vec((0..path_pool().len(), 0..2usize), 0..3),
        prop::bool::weighted(0.2),
        prop_oneof![1 => Just(0usize), 2 => Just(1usize), 4 => Just(2usize), 2 => Just(3usize)],
        prop::option::of(1..40i64),
    )
        .prop_map(
            |(name, host, paths, header, tls, priority)| IngressRouteSpec {
                name,
                host,
                paths,
                header,
                tls,
                priority,
            },
        )
}

#[derive(Debug, Clone)]
enum TraefikChange {
    Upsert(IngressRouteSpec),
    Delete(usize),
    /// The `mtls-required` TLSOption with this index into [`CLIENT_AUTH_TYPES`].
    ClientAuth(usize),
}

#[derive(Debug, Clone)]
struct TraefikWorld {
    initial: Vec<IngressRouteSpec>,
    changes: Vec<TraefikChange>,
}

fn traefik_world() -> impl Strategy<Value = TraefikWorld> {
    (
        prop::collection::vec(ingress_route_spec(), 0..6),
        prop::collection::vec(
            prop_oneof![
                5 => ingress_route_spec().prop_map(TraefikChange::Upsert),
                1 => (0..NAMES.len()).prop_map(TraefikChange::Delete),
                1 => (0..CLIENT_AUTH_TYPES.len()).prop_map(TraefikChange::ClientAuth),
            ],
            1..7,
        ),
    )
        .prop_map(|(initial, changes)| TraefikWorld { initial, changes })
}

fn ingress_route(spec: &IngressRouteSpec) -> String {
    let pool = path_pool();
    let mut parts: Vec<String> = Vec::new();
    if let Some(host) = TRAEFIK_HOSTS[spec.host] {
        parts.push(format!("Host(`{host}`)"));
    }
    let paths: Vec<String> = spec
        .paths
        .iter()
        .map(|(p, kind)| format!("{}(`{}`)", ["Path", "PathPrefix"][*kind], pool[*p]))
        .collect();
    if !paths.is_empty() {
        parts.push(format!("({})", paths.join(" || ")));
    }
    if spec.header {
        parts.push("Header(`X-Fapi-Interaction-Id`, `1`)".into());
    }
    if parts.is_empty() {
        parts.push("PathPrefix(`/`)".into());
    }
    let rule = parts.join(" && ");
    let priority = spec
        .priority
        .map_or(String::new(), |p| format!("\n      priority: {p}"));
    let (entry_point, tls) = match spec.tls {
        0 => ("web", String::new()),
        1 => (
            "websecure",
            "  tls:\n    secretName: server-cert\n".to_string(),
        ),
        n => (
            "websecure",
            format!(
                "  tls:\n    secretName: server-cert\n    options:\n      name: {}\n",
                ["mtls-required", "optional"][n - 2]
            ),
        ),
    };
    format!(
        "apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: {name}
  namespace: {NS}
spec:
  entryPoints: [{entry_point}]
  routes:
    - kind: Rule
      match: {rule}{priority}
      services:
        - {{name: backend, port: 8443}}
{tls}",
        name = NAMES[spec.name],
        rule = common::q(&rule),
    )
}

fn load_traefik_view(world: &TraefikWorld) -> ClusterView {
    let mut docs = vec![
        common::Profile::split_host().traefik().yaml(),
        common::ca_secret(),
        common::traefik::tls_option("mtls-required", CLIENT_AUTH_TYPES[0]),
        common::traefik::tls_option("optional", "VerifyClientCertIfGiven"),
    ];
    let mut by_name = std::collections::BTreeMap::new();
    for spec in &world.initial {
        by_name.insert(spec.name, ingress_route(spec));
    }
    docs.extend(by_name.into_values());
    view_of(&docs)
}

fn traefik_changes(world: &TraefikWorld) -> Vec<ObjectChange> {
    world
        .changes
        .iter()
        .map(|change| {
            let label = format!("{change:?}");
            match change {
                TraefikChange::Upsert(spec) => ObjectChange::upsert(&ingress_route(spec), label),
                TraefikChange::Delete(name) => {
                    let any_version = IngressRouteSpec {
                        name: *name,
                        host: 0,
                        paths: vec![],
                        header: false,
                        tls: 1,
                        priority: None,
                    };
                    ObjectChange::delete(&ingress_route(&any_version), label)
                }
                TraefikChange::ClientAuth(i) => ObjectChange::upsert(
                    &common::traefik::tls_option("mtls-required", CLIENT_AUTH_TYPES[*i]),
                    label,
                ),
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 160,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn gateway_api_object_changes_decide_as_full_re_evaluation(world in world()) {
        check_changes(load_view(&world), gateway_changes(&world))?;
    }

    /// The same property for Traefik IngressRoutes (route objects whose table is rebuilt
    /// and compared) and TLSOptions (objects that route no host).
    #[test]
    fn traefik_object_changes_decide_as_full_re_evaluation(world in traefik_world()) {
        check_changes(load_traefik_view(&world), traefik_changes(&world))?;
    }
}
