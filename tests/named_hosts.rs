//! Host names an Ingress names outside its rules (issue "Fail closed"): ingress-nginx's
//! `server-alias` makes another host's server answer a profile host that has no Ingress
//! rule of its own, and haproxy-ingress adds the Host keys (`auth-tls-*`) of an Ingress
//! that lists a host only in `spec.tls`. Before, the engine indexed Ingresses by rule host
//! only: the aliased host looked unserved and the `spec.tls`-only Ingress was not seen,
//! both admitted.

mod common;

use common::*;
use mtls_gate::admission::{OutcomeKind, review_ingress};
use mtls_gate::manifest::{load, parse_documents};
use mtls_gate::model::ObjectKey;
use mtls_gate::violation::ViolationCode::{self, *};

const LEGACY_HOST: &str = "legacy.bank.example";
const ALIAS: &str = "nginx.ingress.kubernetes.io/server-alias";

fn public() -> Ingress {
    Ingress::new("authorization-server-public", PUBLIC_HOST)
        .exact("/authorize")
        .exact("/jwks")
        .exact("/.well-known/openid-configuration")
}

fn nginx_world(api: Option<Ingress>, extra: Ingress) -> Vec<String> {
    let mut docs = vec![
        Profile::split_host().yaml(),
        ca_secret(),
        public().yaml(),
        Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
            .annotations(nginx::client_auth("on"))
            .prefix("/")
            .yaml(),
        extra.yaml(),
    ];
    docs.extend(api.map(|a| a.yaml()));
    docs
}

fn api_ingress(host: &str) -> Ingress {
    Ingress::new("open-banking-apis", host)
        .annotations(nginx::client_auth("on"))
        .prefix(API_BASE)
}

/// An Ingress of the legacy host that serves everything without client certificates.
fn legacy(alias: Option<&str>) -> Ingress {
    let ing = Ingress::new("legacy", LEGACY_HOST).prefix("/");
    match alias {
        Some(a) => ing.annotation(ALIAS, a),
        None => ing,
    }
}

/// Codes of the findings that name `ingress`.
fn codes_naming(docs: &[String], ingress: &str) -> Vec<ViolationCode> {
    let verdict = evaluate(docs);
    let mut codes: Vec<ViolationCode> = verdict
        .violations
        .iter()
        .filter(|v| ingress_of(v).as_deref() == Some(&format!("{NS}/{ingress}")))
        .map(|v| v.code)
        .collect();
    codes.dedup();
    codes
}

#[test]
fn server_aliases_naming_a_profile_host_without_an_ingress_of_its_own() {
    let cases: [(&str, Vec<String>, &[ViolationCode]); 7] = [
        (
            "alias of the API host, which has no Ingress",
            nginx_world(None, legacy(Some(MTLS_API_HOST))),
            &[UnmodelledSetting],
        ),
        (
            "alias among others, with spaces and upper case",
            nginx_world(
                None,
                legacy(Some(" www.bank.example , MTLS-API.bank.example")),
            ),
            &[UnmodelledSetting],
        ),
        (
            "alias of the API host, which has its own Ingress: ingress-nginx drops the alias",
            nginx_world(
                Some(api_ingress(MTLS_API_HOST)),
                legacy(Some(MTLS_API_HOST)),
            ),
            &[],
        ),
        (
            "alias of the API host served by a wildcard rule: the alias's exact name wins",
            nginx_world(
                Some(api_ingress("*.bank.example")),
                legacy(Some(MTLS_API_HOST)),
            ),
            &[UnmodelledSetting],
        ),
        (
            "a regular-expression alias may name any host",
            nginx_world(None, legacy(Some("~^mtls-.*\\.bank\\.example$"))),
            &[UnmodelledSetting],
        ),
        (
            "a leading-dot alias names the domain and its subdomains",
            nginx_world(None, legacy(Some(".bank.example"))),
            &[UnmodelledSetting],
        ),
        (
            "alias of an unrelated host",
            nginx_world(None, legacy(Some("www.bank.example"))),
            &[],
        ),
    ];
    for (name, docs, expected) in cases {
        assert_eq!(
            codes_naming(&docs, "legacy"),
            expected,
            "[{name}]\n{}",
            describe(&evaluate(&docs))
        );
    }
}

#[test]
fn creating_an_alias_of_a_profile_host_is_denied() {
    let docs = nginx_world(None, legacy(None));
    let mut documents = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        documents.extend(parse_documents(std::path::Path::new(&format!("{i}.yaml")), doc).unwrap());
    }
    let view = load(documents, "default", true).unwrap().view;
    let aliased: k8s_openapi::api::networking::v1::Ingress =
        serde_yaml_ng::from_str(&legacy(Some(MTLS_API_HOST)).yaml()).unwrap();
    let outcome = review_ingress(&view, &ObjectKey::new(NS, "legacy"), Some(&aliased));
    assert_eq!(outcome.decision, OutcomeKind::Denied, "{outcome:?}");
    let message = outcome.message.unwrap();
    assert!(message.contains("server-alias"), "{message}");
    assert!(message.contains(MTLS_API_HOST), "{message}");
}

fn haproxy_profile() -> String {
    let mut profile = Profile::split_host();
    profile.controller = "haproxy-ingress".into();
    profile.yaml()
}

/// An Ingress of the legacy host that also lists the API host in `spec.tls`.
fn tls_only(annotations: Vec<(String, String)>, created: &str) -> String {
    Ingress::new("tls-only", LEGACY_HOST)
        .created(created)
        .annotations(annotations)
        .prefix("/")
        .yaml()
        .replace(
            &format!("- hosts: [{}]", q(LEGACY_HOST)),
            &format!("- hosts: [{}, {}]", q(LEGACY_HOST), q(MTLS_API_HOST)),
        )
}

#[test]
fn spec_tls_only_ingresses_add_their_host_keys_in_haproxy_ingress() {
    let world = |extra: String| {
        vec![
            haproxy_profile(),
            ca_secret(),
            public().yaml(),
            Ingress::new("authorization-server-mtls", MTLS_AUTH_HOST)
                .annotations(haproxy::client_auth("on"))
                .prefix("/")
                .yaml(),
            Ingress::new("open-banking-apis", MTLS_API_HOST)
                .created(NEWER)
                .annotations(vec![(
                    haproxy::key("auth-tls-secret"),
                    format!("{NS}/{CA_SECRET}"),
                )])
                .prefix(API_BASE)
                .yaml(),
            extra,
        ]
    };
    // The API host's own Ingress sets the CA but leaves verification to its default
    // ("on"); the older spec.tls-only Ingress makes it optional for the whole host.
    let weakened = world(tls_only(
        vec![(haproxy::key("auth-tls-verify-client"), "optional".into())],
        OLDER,
    ));
    let verdict = evaluate(&weakened);
    assert!(!verdict.compliant);
    let api = with_code(&verdict, MtlsNotRequired);
    assert!(
        api.iter().any(|v| v.host == MTLS_API_HOST),
        "{}",
        describe(&verdict)
    );
    // Without Host keys of its own it changes nothing.
    let harmless = world(tls_only(Vec::new(), OLDER));
    assert!(
        evaluate(&harmless).compliant,
        "{}",
        describe(&evaluate(&harmless))
    );
}
