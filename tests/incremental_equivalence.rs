//! Incremental admission decisions equal full re-evaluation (issue "Engine v2", item 3).
//!
//! Random worlds (ingress-nginx, Traefik and haproxy-ingress, split host and single host
//! with the gate)
//! and random sequences of Ingress changes on the profile's hosts. For every change:
//! - the host evaluated incrementally from the cached before-state
//!   (`engine::evaluate_host_after_change`) has the same verdict, coverage included, as the
//!   host evaluated from scratch on the world after the change (`engine::evaluate_host`);
//! - the admission decision with the before-state cache (`review_ingress_cached`, as the
//!   webhook runs it) equals the reference decision (`review_ingress`);
//! - views that keep what a dialect parsed from them in earlier states and on other hosts
//!   (`IngressView::dialect_memo`) evaluate as copies of them that parse anew.
//!
//! The generators draw from the paths, path types and annotations that decide routing and
//! client auth in the dialects: exact/prefix/implementation-specific paths on and around
//! the endpoints, regex mode, host-wide `auth-tls-*` with different creation times (the
//! oldest Ingress decides), the gate, TLS or not, Traefik TLS options and priorities.
//! Unlisted-path scopes take their representatives over from the before-state, counted
//! per route literal; paths that share candidates (an `Exact` and a `Prefix` of one path)
//! and a path with the private-use character representatives are made of exercise the
//! counts and their fallback.

mod common;

use std::path::Path;

use common::{
    API_BASE, Ingress as IngressBuilder, MTLS_API_HOST, MTLS_AUTH_HOST, NEWER, OLDER, PUBLIC_HOST,
    Profile, SINGLE_HOST, ca_secret, haproxy, nginx, traefik,
};
use k8s_openapi::api::networking::v1::Ingress;
use mtls_gate::admission::{BeforeStateCache, review_ingress, review_ingress_cached};
use mtls_gate::cluster::{ClusterView, WithIngressChange};
use mtls_gate::engine;
use mtls_gate::manifest::{load, parse_documents};
use mtls_gate::model::{IngressView, ObjectKey};
use proptest::prelude::*;

const NAMES: [&str; 5] = ["apis", "auth", "legacy", "health", "gate"];
const MIDDLE: &str = "2026-01-30T12:00:00Z";

fn path_pool() -> Vec<String> {
    vec![
        "/".into(),
        "/token".into(),
        "/authorize".into(),
        "/oauth2".into(),
        "/oauth2/token".into(),
        "/.well-known/openid-configuration".into(),
        "/jwks".into(),
        API_BASE.into(),
        format!("{API_BASE}/accounts"),
        format!("{API_BASE}/accounts/123"),
        format!("{API_BASE}/accounts/123/balances"),
        format!("{API_BASE}/acc.*"),
        format!("{API_BASE}/payments"),
        format!("{API_BASE}/payments/123"),
        format!("{API_BASE}/domestic-payment-consents"),
        format!("{API_BASE}/balances"),
        format!("{API_BASE}/transactions"),
        format!("{API_BASE}/accounts/123/transactions"),
        format!("{API_BASE}/standing-orders"),
        "/open-banking-nz".into(),
        // Holds the character representatives use for values no route has, so adding or
        // removing it changes that character and every unlisted-scope candidate.
        format!("{API_BASE}/accounts\u{e000}"),
    ]
}

#[derive(Debug, Clone)]
struct IngressSpec {
    name: usize,
    host: usize,
    created: usize,
    paths: Vec<(usize, usize)>,
    client_auth: Option<usize>,
    gate: bool,
    regex: bool,
    tls: bool,
    priority: Option<i64>,
    /// ingress-nginx `ssl-redirect`: unset, "true" (the default, spelt out) or "false".
    redirect: Option<bool>,
}

fn ingress_spec() -> impl Strategy<Value = IngressSpec> + Clone {
    (
        0..NAMES.len(),
        0..4usize,
        // 3: no creation time (a CREATE at admission, or a manifest from Git).
        0..4usize,
        prop::collection::vec((0..path_pool().len(), 0..3usize), 1..4),
        prop::option::of(0..4usize),
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.85),
        prop::option::of(1..40i64),
        prop::option::weighted(0.3, any::<bool>()),
    )
        .prop_map(
            |(name, host, created, paths, client_auth, gate, regex, tls, priority, redirect)| {
                IngressSpec {
                    name,
                    host,
                    created,
                    paths,
                    client_auth,
                    gate,
                    regex,
                    tls,
                    priority,
                    redirect,
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Change {
    Upsert(IngressSpec),
    /// The Ingress of the spec's name with its host and paths kept and everything else
    /// (client auth, gate, regex mode, TLS, priority, creation time) from the spec: the
    /// routes stay where they are and only their settings may change, which the engine
    /// must tell from a change that leaves the host's table as it was (an Upsert when no
    /// Ingress of that name exists).
    Restyle(IngressSpec),
    /// The Ingress of the spec's name with its host, creation time and settings kept and
    /// the spec's paths: its routes move within the host, its place in the controller's
    /// order stays (an Upsert when no Ingress of that name exists).
    Repath(IngressSpec),
    Delete(usize),
}

fn change() -> impl Strategy<Value = Change> {
    change_drawing(ingress_spec())
}

fn change_drawing(
    spec: impl Strategy<Value = IngressSpec> + Clone,
) -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => spec.clone().prop_map(Change::Upsert),
        2 => spec.clone().prop_map(Change::Restyle),
        2 => spec.prop_map(Change::Repath),
        1 => (0..NAMES.len()).prop_map(Change::Delete),
    ]
}

/// Ingresses of the MTLS API host of the split layout, not in regex mode: the host whose
/// table ingress-nginx's dialect patches after most changes
/// (`Dialect::patched_table`) rather than rebuilding it.
fn api_host_spec() -> impl Strategy<Value = IngressSpec> + Clone {
    // TLS on half of them, so that changes also take the host's last TLS entry away.
    (ingress_spec(), any::<bool>()).prop_map(|(spec, tls)| IngressSpec {
        host: 2,
        regex: false,
        tls,
        ..spec
    })
}

/// ingress-nginx worlds on the MTLS API host, where most changes patch the host's table.
fn api_host_world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(api_host_spec(), 1..6),
        prop::collection::vec(change_drawing(api_host_spec()), 1..8),
    )
        .prop_map(|(initial, changes)| World {
            controller: Controller::Nginx,
            single_host: false,
            initial,
            changes,
        })
}

/// The controllers of the worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Controller {
    Nginx,
    Traefik,
    Haproxy,
}

/// The Ingress manifest of a spec in a world of `controller` whose hosts are `hosts`.
fn manifest(spec: &IngressSpec, hosts: &[&str], controller: Controller) -> String {
    let pool = path_pool();
    let mut ing = IngressBuilder::new(NAMES[spec.name], hosts[spec.host % hosts.len()]);
    ing = match [OLDER, MIDDLE, NEWER].get(spec.created) {
        Some(created) => ing.created(created),
        None => ing.without_created(),
    };
    for (p, t) in &spec.paths {
        ing = ing.path(&pool[*p], ["Exact", "Prefix", "ImplementationSpecific"][*t]);
    }
    if !spec.tls {
        ing = ing.without_tls();
    }
    if controller == Controller::Haproxy {
        if let Some(mode) = spec.client_auth {
            ing = ing.annotations(haproxy::client_auth(
                ["on", "optional", "off", "optional_no_ca"][mode],
            ));
        }
        if spec.gate {
            ing = ing.annotations(haproxy::gate());
        }
        if spec.regex {
            ing = ing.annotation(&haproxy::key("path-type"), "regex");
        }
    } else if controller == Controller::Traefik {
        if let Some(mode) = spec.client_auth {
            ing = ing.annotations(traefik::tls_options(
                ["mtls", "optional", "none", "mtls"][mode],
            ));
        }
        if let Some(priority) = spec.priority {
            ing = ing.annotation(traefik::PRIORITY, &priority.to_string());
        }
    } else {
        if let Some(mode) = spec.client_auth {
            ing = ing.annotations(nginx::client_auth(
                ["on", "optional", "off", "optional_no_ca"][mode],
            ));
        }
        if spec.gate {
            ing = ing.annotations(nginx::gate());
        }
        if spec.regex {
            ing = ing.annotation(nginx::USE_REGEX, "true");
        }
        if let Some(redirect) = spec.redirect {
            ing = ing.annotation(nginx::SSL_REDIRECT, &redirect.to_string());
        }
    }
    ing.yaml()
}

#[derive(Debug, Clone)]
struct World {
    controller: Controller,
    single_host: bool,
    initial: Vec<IngressSpec>,
    changes: Vec<Change>,
}

fn world() -> impl Strategy<Value = World> {
    (
        prop_oneof![
            Just(Controller::Nginx),
            Just(Controller::Traefik),
            Just(Controller::Haproxy)
        ],
        any::<bool>(),
        prop::collection::vec(ingress_spec(), 0..6),
        prop::collection::vec(change(), 1..6),
    )
        .prop_map(|(controller, single_host, initial, changes)| World {
            controller,
            single_host,
            initial,
            changes,
        })
}

fn hosts(world: &World) -> Vec<&'static str> {
    if world.single_host {
        vec![SINGLE_HOST, SINGLE_HOST, PUBLIC_HOST, "*.bank.example"]
    } else {
        vec![PUBLIC_HOST, MTLS_AUTH_HOST, MTLS_API_HOST, "*.bank.example"]
    }
}

fn load_view(world: &World) -> ClusterView {
    let profile = if world.single_host {
        Profile::single_host()
    } else {
        Profile::split_host()
    };
    let profile = match world.controller {
        Controller::Nginx => profile,
        Controller::Traefik => profile.traefik(),
        Controller::Haproxy => Profile {
            controller: "haproxy-ingress".into(),
            ..profile
        },
    };
    let mut docs = vec![profile.yaml(), ca_secret()];
    if world.controller == Controller::Traefik {
        docs.push(traefik::tls_option("mtls", "RequireAndVerifyClientCert"));
        docs.push(traefik::tls_option("optional", "VerifyClientCertIfGiven"));
    }
    let hosts = hosts(world);
    // Later specs with the same name replace earlier ones, as in a cluster.
    let mut by_name = std::collections::BTreeMap::new();
    for spec in &world.initial {
        by_name.insert(spec.name, manifest(spec, &hosts, world.controller));
    }
    docs.extend(by_name.into_values());
    let text = docs.join("---\n");
    let parsed = parse_documents(Path::new("world.yaml"), &text).expect("world parses");
    load(parsed, "default", true).expect("world loads").view
}

fn ingress(spec: &IngressSpec, world: &World) -> Ingress {
    serde_yaml_ng::from_str(&manifest(spec, &hosts(world), world.controller)).expect("Ingress")
}

/// `view` with every Ingress replaced by a copy, which starts without what a dialect
/// derived from it ([`IngressView::dialect_memo`]); the view lists a host's Ingresses in
/// key order whatever the insertion order, so the two differ only in those memos.
fn with_fresh_views(view: &ClusterView) -> ClusterView {
    let mut out = view.clone();
    for ingress in view.ingresses() {
        out.upsert_ingress((**ingress).clone());
    }
    out
}

/// A host's evaluations after `world`'s change of `key`: incremental from a before-state
/// evaluated on `view` with coverage, keeping probes for a further change; as a review
/// decides it (no coverage, no probes kept: an unlisted scope's judged routes by counts);
/// and in full, with coverage and without.
struct HostAfterChange {
    incremental: engine::HostEvaluation,
    decided: engine::HostEvaluation,
    full: engine::HostEvaluation,
    full_without_coverage: engine::HostEvaluation,
}

impl HostAfterChange {
    /// Both incremental evaluations decide as the full ones (`what`: the host and change).
    fn decides_as_full(&self, what: &str) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.incremental.verdict(), self.full.verdict(), "{}", what);
        prop_assert_eq!(
            self.decided.verdict(),
            self.full_without_coverage.verdict(),
            "{}, as a review decides it",
            what
        );
        Ok(())
    }
}

fn incremental_and_full(
    profile: &mtls_gate::profile::CompiledProfile,
    dialect: &dyn mtls_gate::dialect::Dialect,
    view: &ClusterView,
    world: &WithIngressChange<'_>,
    host: &str,
) -> HostAfterChange {
    let after = |coverage, keep_probes| {
        let before = engine::evaluate_host_before_change(profile, dialect, view, host, coverage);
        engine::evaluate_host_after_change(
            profile,
            dialect,
            world,
            host,
            &before,
            &change_of(view, world),
            keep_probes,
        )
    };
    HostAfterChange {
        incremental: after(true, true),
        decided: after(false, false),
        full: engine::evaluate_host(profile, dialect, world, host, true),
        full_without_coverage: engine::evaluate_host(profile, dialect, world, host, false),
    }
}

/// The change `world` makes to `view`, as an admission review gives it to the engine.
fn change_of<'a>(
    view: &'a ClusterView,
    world: &'a WithIngressChange<'_>,
) -> engine::IngressChange<'a> {
    engine::IngressChange {
        key: world.key,
        old: view.ingress(world.key).map(|old| &**old),
        new: world.replacement.as_deref(),
    }
}

fn check(world: World) -> Result<(), TestCaseError> {
    let mut view = load_view(&world);
    let cache = BeforeStateCache::default();
    // Each host as the incremental evaluation left it after the previous change: its
    // probes (the winners of representative paths) are taken over again by the next.
    let mut chained = common::before_states(&view);
    // The Ingresses as last applied (and their specs), to re-apply unchanged.
    let mut applied: std::collections::BTreeMap<usize, Ingress> = world
        .initial
        .iter()
        .map(|spec| (spec.name, ingress(spec, &world)))
        .collect();
    let mut applied_specs: std::collections::BTreeMap<usize, IngressSpec> = world
        .initial
        .iter()
        .map(|spec| (spec.name, spec.clone()))
        .collect();
    for (step, change) in world.changes.iter().enumerate() {
        let upserted = match change {
            Change::Upsert(spec) => Some(spec.clone()),
            Change::Restyle(spec) => Some(match applied_specs.get(&spec.name) {
                Some(current) => IngressSpec {
                    host: current.host,
                    paths: current.paths.clone(),
                    ..spec.clone()
                },
                None => spec.clone(),
            }),
            Change::Repath(spec) => Some(match applied_specs.get(&spec.name) {
                Some(current) => IngressSpec {
                    paths: spec.paths.clone(),
                    ..current.clone()
                },
                None => spec.clone(),
            }),
            Change::Delete(_) => None,
        };
        let name = match change {
            Change::Upsert(spec) | Change::Restyle(spec) | Change::Repath(spec) => spec.name,
            Change::Delete(name) => *name,
        };
        let key = ObjectKey::new(common::NS, NAMES[name]);
        let new = upserted.as_ref().map(|spec| ingress(spec, &world));
        let new_view = new
            .as_ref()
            .map(|i| std::sync::Arc::new(IngressView::from_ingress(i, common::NS)));

        // Engine level: incremental host evaluation == full evaluation, coverage included.
        let after_world = WithIngressChange {
            base: &view,
            key: &key,
            replacement: new_view.clone(),
        };
        // The views keep what the dialect parsed from them in earlier states and on other
        // hosts: that is what copies without it give.
        let fresh = with_fresh_views(&view);
        let fresh_world = WithIngressChange {
            base: &fresh,
            key: &key,
            replacement: new_view.as_deref().map(|v| std::sync::Arc::new(v.clone())),
        };
        for profile in view.profiles() {
            let dialect = engine::profile_dialect(profile).expect("dialect");
            for host in &profile.hosts {
                let after = incremental_and_full(profile, dialect, &view, &after_world, host);
                after.decides_as_full(&format!("host {host} after {change:?}"))?;
                let HostAfterChange {
                    incremental,
                    decided,
                    full,
                    ..
                } = after;
                prop_assert!(
                    common::same_tables(&incremental, &full),
                    "host {} after {:?}: the table differs from the one built in full",
                    host,
                    change
                );
                // A patched table's location lookup (the old table's index through the
                // patch's moves) chooses as the full table's, for every path of the pool
                // and below it.
                let differs =
                    common::first_different_winners(dialect, &decided, &full, &path_pool());
                prop_assert!(
                    differs.is_none(),
                    "host {} after {:?}: (path, incremental winners, full winners) {:?}",
                    host,
                    change,
                    differs
                );
                prop_assert_eq!(
                    full.verdict(),
                    engine::evaluate_host(profile, dialect, &fresh_world, host, true).verdict(),
                    "host {} after {:?}, views reduced anew",
                    host,
                    change
                );
                // From the previous incremental state, as from a full one.
                let id = (profile.name.clone(), host.clone());
                let from_chain = engine::evaluate_host_after_change(
                    profile,
                    dialect,
                    &after_world,
                    host,
                    &chained[&id],
                    &change_of(&view, &after_world),
                    true,
                );
                prop_assert!(
                    common::same_tables(&from_chain, &full),
                    "host {} after {:?}, from the chained state: the table differs",
                    host,
                    change
                );
                prop_assert_eq!(
                    from_chain.verdict(),
                    full.verdict(),
                    "host {} after {:?}, from the chained state",
                    host,
                    change
                );
                chained.insert(id, from_chain);
            }
        }

        // Re-applying an Ingress as it is leaves its host's table as it was: the
        // incremental evaluation takes every outcome over, coverage included.
        if let Some(same) = applied.values().nth(step % applied.len().max(1)) {
            let same_key =
                ObjectKey::new(common::NS, same.metadata.name.clone().unwrap_or_default());
            let same_view = std::sync::Arc::new(IngressView::from_ingress(same, common::NS));
            let reapplied = WithIngressChange {
                base: &view,
                key: &same_key,
                replacement: Some(same_view),
            };
            for profile in view.profiles() {
                let dialect = engine::profile_dialect(profile).expect("dialect");
                for host in &profile.hosts {
                    incremental_and_full(profile, dialect, &view, &reapplied, host)
                        .decides_as_full(&format!(
                            "host {host} re-applying {same_key} unchanged"
                        ))?;
                }
            }
        }

        // Admission level: the cached, incremental decision equals the reference.
        let reference = review_ingress(&view, &key, new.as_ref());
        let cached = review_ingress_cached(&view, &key, new.as_ref(), &cache);
        prop_assert_eq!(&cached, &reference, "decision after {:?}", change);
        // Re-applying an Ingress as it is (its view unchanged) also decides as the
        // reference; the cache serves both this and the change above.
        if let Some(same) = applied.values().nth(step % applied.len().max(1)) {
            let same_key =
                ObjectKey::new(common::NS, same.metadata.name.clone().unwrap_or_default());
            prop_assert_eq!(
                review_ingress_cached(&view, &same_key, Some(same), &cache),
                review_ingress(&view, &same_key, Some(same)),
                "re-applying {} unchanged before {:?}",
                same_key,
                change
            );
        }
        match (&upserted, &new) {
            (Some(spec), Some(ingress)) => {
                applied.insert(spec.name, ingress.clone());
                applied_specs.insert(spec.name, spec.clone());
            }
            _ => {
                applied.remove(&name);
                applied_specs.remove(&name);
            }
        }

        match new_view {
            Some(v) => {
                view.upsert_shared_ingress(v);
            }
            None => {
                view.remove_ingress(&key);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn incremental_decisions_equal_full_re_evaluation(world in world()) {
        check(world)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The same property where ingress-nginx patches the MTLS API host's table after most
    /// changes (UPDATEs that keep the creation time, CREATEs without one, DELETEs of any
    /// Ingress but the oldest): the patched table is the table built in full.
    #[test]
    fn patched_tables_equal_tables_built_in_full(world in api_host_world()) {
        check(world)?;
    }
}

/// Not only random: an Ingress on the API host whose path is replaced in place (the
/// routes keep their indices) by one that gives a templated endpoint a parameter value
/// without matching it (`…/accounts/123/transactions` for `…/accounts/{AccountId}/balances`),
/// then another Ingress's path replaced by one that reaches the template. The untouched
/// template's routes that give values must take the first replacement in, or the second
/// change would derive them without it (the engine's debug assertion compares each derived
/// set with a scan).
#[test]
fn a_route_replaced_in_place_that_gives_a_template_values_is_kept_for_the_next_change() {
    // Exact paths: one route each, so a replacement keeps every index.
    let spec = |name, created, path| api_host_exact_path(name, created, path, Some(0));
    let (base, payments, transactions, balances) = (7, 12, 17, 10);
    for path in [&path_pool()[transactions], &path_pool()[balances]] {
        assert!(path.contains("/accounts/123/"), "{path}");
    }
    check_nginx_changes(
        vec![spec(0, 0, base), spec(1, 1, payments)],
        vec![
            Change::Repath(spec(1, 1, transactions)),
            Change::Repath(spec(0, 0, balances)),
        ],
    );
}

/// An Ingress of the MTLS API host over TLS with one `Exact` path (of the pool) and the
/// client-auth setting given, nothing else set.
fn api_host_exact_path(
    name: usize,
    created: usize,
    path: usize,
    client_auth: Option<usize>,
) -> IngressSpec {
    IngressSpec {
        name,
        host: 2,
        created,
        paths: vec![(path, 0)],
        client_auth,
        gate: false,
        regex: false,
        tls: true,
        priority: None,
        redirect: None,
    }
}

/// [`check`] of an ingress-nginx world with these Ingresses and changes.
fn check_nginx_changes(initial: Vec<IngressSpec>, changes: Vec<Change>) {
    let world = World {
        controller: Controller::Nginx,
        single_host: false,
        initial,
        changes,
    };
    if let Err(e) = check(world) {
        panic!("{e}");
    }
}

/// Not only random: ingress-nginx patches the API host's table after an Ingress moves its
/// path, then an Ingress is created (no creation time yet: it comes last) with that same
/// path. The patched table's path claims must hold the moved path, or the second change
/// would be patched as if the path were free, and the duplicate (which ingress-nginx drops,
/// oldest first) would be added. The chained state checks the table against the one built
/// in full.
#[test]
fn a_path_moved_to_by_a_patch_stays_claimed_for_the_next_change() {
    let spec = |name, created, path| api_host_exact_path(name, created, path, None);
    let (base, payments, transactions) = (7, 12, 17);
    let undated = 3;
    check_nginx_changes(
        vec![spec(0, 0, base), spec(1, 1, payments)],
        vec![
            Change::Repath(spec(1, 1, transactions)),
            Change::Upsert(spec(2, undated, transactions)),
        ],
    );
}
