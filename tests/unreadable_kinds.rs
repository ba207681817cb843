//! Objects the controller reads but mtls-gate cannot (issue "Fail closed"): a kind that is
//! not watched, whose list is forbidden, or one object that cannot be parsed may route a
//! profile host in any way. Every host of a profile whose controller reads the kind gets an
//! `ObjectsUnreadable` finding, and admission refuses every change on those hosts: before,
//! an HTTPRoute judged without the Gateways it attaches to attached to nothing and was
//! admitted. Sources given only some objects on purpose (`check` without
//! `--assume-complete`) are not affected.

use std::path::Path;

use mtls_gate::admission::{BeforeStateCache, OutcomeKind, review_ingress, review_object};
use mtls_gate::cluster::{ClusterView, Completeness};
use mtls_gate::dialect::{self, ObjectKind};
use mtls_gate::engine;
use mtls_gate::manifest::{load, read_paths};
use mtls_gate::model::ObjectKey;
use mtls_gate::violation::ViolationCode;
use serde_json::{Value, json};

const NOT_WATCHED: &str = "not watched: --watch-controllers does not list the controller";

fn example(path: &str, complete: bool) -> ClusterView {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = read_paths(&[root.join(path)]).unwrap();
    load(docs, "default", complete).unwrap().view
}

/// What the controller's view holds for a kind it does not watch: nothing, and why.
fn unwatch(view: &mut ClusterView, name: &str) {
    view.retain_objects(&kind(name), |_| false);
    view.set_kind_unreadable(kind(name), NOT_WATCHED);
}

fn kind(name: &str) -> ObjectKind {
    *dialect::owned_kinds()
        .find(|(_, _, k)| k.kind == name && k.group != "traefik.containo.us")
        .map(|(_, _, k)| k)
        .unwrap()
}

/// Codes of every profile's verdict on `view`, per host.
fn unreadable_hosts(view: &ClusterView) -> Vec<String> {
    let mut hosts = Vec::new();
    for profile in view.profiles() {
        let verdict = engine::evaluate(profile, view).unwrap();
        hosts.extend(
            verdict
                .violations
                .iter()
                .filter(|v| v.code == ViolationCode::ObjectsUnreadable)
                .map(|v| v.host.clone()),
        );
    }
    hosts.sort();
    hosts
}

/// Reviews a change to `object` as the webhook does: on the view it takes for the kind.
fn review(view: &ClusterView, object: Value) -> mtls_gate::admission::Outcome {
    let (kind, reduced) = dialect::reduce_owned(&object, "default").unwrap().unwrap();
    let key = reduced.key().clone();
    review_object(
        &mtls_gate::admission::object_review_view(view, kind),
        kind,
        &key,
        Some(reduced),
        &BeforeStateCache::default(),
    )
}

/// The example's API route, unchanged (a no-op UPDATE).
fn api_route() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "open-banking-apis", "namespace": "open-banking",
            "creationTimestamp": "2026-01-10T09:00:00Z"},
        "spec": {
            "parentRefs": [{"name": "mtls", "sectionName": "mtls-api"}],
            "hostnames": ["mtls-api.bank.example"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/open-banking-nz/v3.0"}}],
                       "backendRefs": [{"name": "open-banking-api", "port": 8443}]}]
        }
    })
}

/// The API route moved to the public Gateway, which asks for no client certificate.
fn api_route_on_public_gateway() -> Value {
    let mut route = api_route();
    route["metadata"]["name"] = json!("apis-shortcut");
    route["spec"]["parentRefs"] = json!([{"name": "public"}]);
    route
}

struct Case {
    name: &'static str,
    unreadable: &'static [&'static str],
    change: fn() -> Value,
    decision: OutcomeKind,
    /// A fragment of the denial message.
    says: &'static str,
}

#[test]
fn gateway_api_changes_are_judged_only_with_every_kind_readable() {
    let cases = [
        Case {
            name: "no-op update, all readable",
            unreadable: &[],
            change: api_route,
            decision: OutcomeKind::Allowed,
            says: "",
        },
        Case {
            name: "API route on the public Gateway, all readable",
            unreadable: &[],
            change: api_route_on_public_gateway,
            decision: OutcomeKind::Denied,
            says: "MtlsNotRequired",
        },
        Case {
            // The fail-open this test exists for: without the Gateways the route attached
            // to nothing, so the host looked unserved and the change was admitted.
            name: "API route on the public Gateway, Gateways not watched",
            unreadable: &["Gateway"],
            change: api_route_on_public_gateway,
            decision: OutcomeKind::Denied,
            says: "gateways.gateway.networking.k8s.io objects, but mtls-gate cannot read them",
        },
        Case {
            name: "no-op update, Gateways not watched",
            unreadable: &["Gateway"],
            change: api_route,
            decision: OutcomeKind::Denied,
            says: NOT_WATCHED,
        },
        Case {
            name: "no-op update, ClientTrafficPolicies not listable",
            unreadable: &["ClientTrafficPolicy"],
            change: api_route,
            decision: OutcomeKind::Denied,
            says: "clienttrafficpolicies.gateway.envoyproxy.io",
        },
        Case {
            name: "no-op update, Traefik kinds not watched (not read by Gateway API)",
            unreadable: &["IngressRoute", "TLSOption", "Middleware"],
            change: api_route,
            decision: OutcomeKind::Allowed,
            says: "",
        },
    ];
    for case in cases {
        let mut view = example("examples/gateway-api-split-host/bank.yaml", true);
        for name in case.unreadable {
            unwatch(&mut view, name);
        }
        let outcome = review(&view, (case.change)());
        assert_eq!(
            outcome.decision, case.decision,
            "[{}] {outcome:?}",
            case.name
        );
        let message = outcome.message.unwrap_or_default();
        assert!(
            message.contains(case.says),
            "[{}] the denial must say {:?}: {message}",
            case.name,
            case.says
        );
    }
}

#[test]
fn every_host_of_a_profile_whose_controller_reads_the_kind_is_reported() {
    let gateway_hosts = [
        "auth.bank.example",
        "mtls-api.bank.example",
        "mtls-auth.bank.example",
    ];
    for (example_path, unreadable, expected) in [
        (
            "examples/gateway-api-split-host/bank.yaml",
            "HTTPRoute",
            &gateway_hosts[..],
        ),
        // Gateway API reads no Traefik kind.
        (
            "examples/gateway-api-split-host/bank.yaml",
            "IngressRoute",
            &[],
        ),
        (
            "examples/traefik-ingressroute/bank.yaml",
            "IngressRoute",
            &gateway_hosts[..],
        ),
        // ingress-nginx reads none of the dialect-owned kinds.
        (
            "examples/nginx-single-host-gate/bank.yaml",
            "IngressRoute",
            &[],
        ),
        ("examples/nginx-single-host-gate/bank.yaml", "Gateway", &[]),
    ] {
        let mut view = example(example_path, true);
        assert!(unreadable_hosts(&view).is_empty(), "{example_path}");
        unwatch(&mut view, unreadable);
        assert_eq!(
            unreadable_hosts(&view),
            expected,
            "{example_path} with {unreadable} unreadable"
        );
        // Listing the kind again makes it readable.
        view.set_kind_completeness(kind(unreadable), Completeness::Complete);
        assert!(unreadable_hosts(&view).is_empty(), "{example_path}");
    }
}

#[test]
fn an_ingress_change_on_a_traefik_host_is_refused_while_ingress_routes_are_unreadable() {
    let mut view = example("examples/traefik-ingressroute/bank.yaml", true);
    let ingress: k8s_openapi::api::networking::v1::Ingress = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "health", "namespace": "open-banking", "annotations": {
            "traefik.ingress.kubernetes.io/router.tls.options": "open-banking-mtls-required@kubernetescrd"}},
        "spec": {"rules": [{"host": "mtls-api.bank.example", "http": {"paths": [
            {"path": "/healthz", "pathType": "Exact",
             "backend": {"service": {"name": "health", "port": {"number": 80}}}}]}}],
            "tls": [{"hosts": ["mtls-api.bank.example"], "secretName": "t"}]}
    }))
    .unwrap();
    let key = ObjectKey::new("open-banking", "health");
    let readable = review_ingress(&view, &key, Some(&ingress));
    assert_eq!(readable.decision, OutcomeKind::Allowed, "{readable:?}");
    view.set_kind_unreadable(
        kind("IngressRoute"),
        "listing them failed (403 Forbidden); grant mtls-gate list and watch on ingressroutes",
    );
    let outcome = review_ingress(&view, &key, Some(&ingress));
    assert_eq!(outcome.decision, OutcomeKind::Denied);
    let message = outcome.message.unwrap();
    assert!(message.contains("403 Forbidden"), "{message}");
    assert!(message.contains("mtls-api.bank.example"), "{message}");
}

#[test]
fn one_unreadable_object_is_named_and_cleared_when_it_becomes_readable() {
    let mut view = example("examples/gateway-api-split-host/bank.yaml", true);
    let gateway = kind("Gateway");
    let key = ObjectKey::new("open-banking", "mtls");
    let readable = view
        .objects(&gateway)
        .find(|o| o.key() == &key)
        .unwrap()
        .clone();
    view.set_object_unreadable(gateway, key.clone(), "spec.listeners[0].port: not a number");
    let profile = view.profiles().next().unwrap().clone();
    let verdict = engine::evaluate(&profile, &view).unwrap();
    let found: Vec<_> = verdict
        .violations
        .iter()
        .filter(|v| v.code == ViolationCode::ObjectsUnreadable)
        .collect();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0]
            .message
            .contains("Gateway open-banking/mtls cannot be read: spec.listeners[0].port"),
        "{}",
        found[0].message
    );
    // Other lookups of the kind stay exact; the unreadable one is unknown, not missing.
    assert!(matches!(
        mtls_gate::model::ObjectSource::object(&view, &gateway, &key),
        mtls_gate::model::Lookup::Unknown
    ));
    view.upsert_object(gateway, readable);
    assert!(unreadable_hosts(&view).is_empty());
    view.set_object_unreadable(gateway, key.clone(), "bad");
    view.remove_object(&gateway, &key);
    assert!(
        unreadable_hosts(&view).is_empty(),
        "a deleted object is gone"
    );
}

#[test]
fn check_inputs_given_on_purpose_are_not_unreadable() {
    // `check` without --assume-complete: absent objects are unknown, never unreadable.
    let view = example("examples/gateway-api-split-host/bank.yaml", false);
    assert!(unreadable_hosts(&view).is_empty());
}

#[test]
fn an_object_of_a_kind_discovery_found_absent_is_judged_as_unreadable_until_listed() {
    // The controller's view after discovery found no ClientTrafficPolicy CRD.
    let mut view = example("examples/gateway-api-split-host/bank.yaml", true);
    let policy_kind = kind("ClientTrafficPolicy");
    view.set_kind_absent(policy_kind);
    assert!(
        unreadable_hosts(&view).is_empty(),
        "absent is complete and empty"
    );
    let policy = json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "ClientTrafficPolicy",
        "metadata": {"name": "client-validation", "namespace": "open-banking"},
        "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "mtls"}]}
    });
    // The CRD has been installed since: other policies may exist that the view has not read.
    let outcome = review(&view, policy.clone());
    assert_eq!(outcome.decision, OutcomeKind::Denied, "{outcome:?}");
    let message = outcome.message.unwrap();
    assert!(message.contains("retry in a minute"), "{message}");
    // Once discovery lists the kind, the same change is judged on its merits.
    view.set_kind_completeness(policy_kind, Completeness::Complete);
    let outcome = review(&view, policy);
    assert_eq!(outcome.decision, OutcomeKind::Allowed, "{outcome:?}");
}
