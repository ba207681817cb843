//! Differential test of the engine's haproxy-ingress path model against real HAProxy 2.6.
//!
//! Generated sets of Ingress paths (Exact, Prefix, ImplementationSpecific with each
//! `path-type`) are written as the map files and lookups haproxy-ingress writes for a host,
//! each map value naming the path's Ingress. Every path instance and random near-misses are
//! requested; the Ingress HAProxy answers with must be one of the routes the engine says
//! serve that path.
//!
//! How haproxy-ingress writes path matching (jcmoraisjr/haproxy-ingress v0.14+):
//! * `pkg/converters/ingress/ingress.go` `readPathType`, `syncIngressHTTP`: the match type
//!   of each path; a path with a match type already on the host is skipped (oldest wins).
//! * `pkg/haproxy/types/maps.go`: keys `<host>#<path>` (`begin` keys lower-cased, `regex`
//!   keys `^<quoted host>#<regex>`), one file per match type, `exact` first, then the
//!   priority files of overlapping `prefix`/`begin` paths, then `prefix`, `begin`, `regex`
//!   (`path-type-order` default); entries sorted per file. The file list is the dialect's
//!   own port, [`haproxy::match_files`] (unit-tested against the cases of `maps.go`); what
//!   this test checks against HAProxy is everything after it: the converters
//!   (`map_str`, `map_dir`, `map_beg` after `lower`, `map_reg`), their order, and the
//!   engine's matchers and winner rule.
//! * `rootfs/etc/templates/haproxy/haproxy.tmpl`: `req.base` is the lower-cased Host without
//!   port, `#`, and the path; each file is consulted with `map_<method>` only while no
//!   earlier file matched. haproxy-ingress shares one set of files among all hosts; so does
//!   this test ([`shared_map_files`]).
//!
//! `make test` runs a bounded, seeded set; `make differential` runs many more
//! (`MTLS_GATE_DIFFERENTIAL_CASES`, `MTLS_GATE_DIFFERENTIAL_SEED`).

mod common;
mod proxies;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use common::{Ingress, Profile};
use mtls_gate::dialect::haproxy::{self, MapEntry, MatchType};
use mtls_gate::manifest::{self, Manifests};
use mtls_gate::model::PathType;

/// Cases in `make test`: enough to cover every generator branch, quick on a loaded machine.
const BOUNDED_CASES: usize = 150;
const DEFAULT_SEED: u64 = 0x6861_7072_6f78_7921;

/// Segments paths are built from: endpoint-table words, case variants and near-misses.
const SEGMENTS: &[&str] = &[
    "api", "v1", "v2", "accounts", "Accounts", "ACC", "acc", "balances", "token", "tok", "x",
];
/// Regex pieces for `path-type: regex` (PCRE and the engine's regex crate agree on them).
const REGEX_PIECES: &[(&str, &str)] = &[
    ("v[0-9]+", "v12"),
    ("acc.*", "accounts"),
    ("(token|par)", "par"),
    ("[a-z]+", "abc"),
    ("ba.ances", "balances"),
];
/// `path-type` values for ImplementationSpecific paths (`None`: not set).
const PATH_TYPE_KEYS: &[Option<&str>] = &[
    None,
    Some("begin"),
    Some("prefix"),
    Some("exact"),
    Some("regex"),
    Some("Prefix"),
    Some("bogus"),
];

#[derive(Debug, Clone)]
struct GenPath {
    path: String,
    path_type: PathType,
    path_type_key: Option<&'static str>,
    /// A concrete request path the path matches.
    instance: String,
}

#[derive(Debug, Clone)]
struct Case {
    host: String,
    /// One Ingress per path, oldest first: `r0`, `r1`, ...
    paths: Vec<GenPath>,
}

fn generate(rng: &mut fastrand::Rng, index: usize) -> Case {
    let n = rng.usize(1..=7);
    let mut paths = Vec::new();
    for _ in 0..n {
        let path_type = [
            PathType::Exact,
            PathType::Prefix,
            PathType::ImplementationSpecific,
        ][rng.usize(0..3)];
        let path_type_key = if path_type == PathType::ImplementationSpecific {
            PATH_TYPE_KEYS[rng.usize(0..PATH_TYPE_KEYS.len())]
        } else {
            None
        };
        let regex = haproxy::match_type(path_type, path_type_key) == MatchType::Regex;
        let mut path = String::new();
        let mut instance = String::new();
        for _ in 0..rng.usize(0..=3) {
            path.push('/');
            instance.push('/');
            if regex && rng.u8(0..3) == 0 {
                let (piece, example) = REGEX_PIECES[rng.usize(0..REGEX_PIECES.len())];
                path.push_str(piece);
                instance.push_str(example);
            } else {
                let s = SEGMENTS[rng.usize(0..SEGMENTS.len())];
                path.push_str(s);
                instance.push_str(s);
            }
        }
        if path.is_empty() || (rng.u8(0..5) == 0 && !path.ends_with('/')) {
            path.push('/');
            instance.push('/');
        }
        paths.push(GenPath {
            path,
            path_type,
            path_type_key,
            instance,
        });
    }
    Case {
        host: format!("case-{index}.differential.test"),
        paths,
    }
}

// ---------------------------------------------------------------------------------------
// HAProxy configuration, written as haproxy-ingress writes it
// ---------------------------------------------------------------------------------------

/// The host's map entries (insertion order, duplicates of path and match type dropped) and
/// the Ingress index of each.
fn map_entries(case: &Case) -> (Vec<MapEntry>, Vec<usize>) {
    let mut entries: Vec<MapEntry> = Vec::new();
    let mut owners = Vec::new();
    for (i, p) in case.paths.iter().enumerate() {
        let match_type = haproxy::match_type(p.path_type, p.path_type_key);
        if entries
            .iter()
            .any(|e| e.path == p.path && e.match_type == match_type)
        {
            continue;
        }
        entries.push(MapEntry {
            path: p.path.clone(),
            match_type,
            order: entries.len(),
        });
        owners.push(i);
    }
    (entries, owners)
}

/// Go's `regexp.QuoteMeta`.
fn quote_meta(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The map files of every host, merged into shared files as haproxy-ingress shares them:
/// slot (position in the host's lookup order, match type), slots in that order. Each host's
/// files keep their relative order, and a lookup in a slot without the host's entries
/// cannot match (every key starts with its host), so each host is answered as by its own
/// file list, with at most 4 lookups per position instead of some per host.
fn shared_map_files(cases: &[Case]) -> Vec<(MatchType, String)> {
    let mut slots: BTreeMap<(usize, MatchType), String> = BTreeMap::new();
    for case in cases {
        let (entries, owners) = map_entries(case);
        for (n, file) in haproxy::match_files(&entries).iter().enumerate() {
            let map = slots.entry((n, file.match_type)).or_default();
            for &e in &file.entries {
                let entry = &entries[e];
                let key = match entry.match_type {
                    MatchType::Regex => format!("^{}#{}", quote_meta(&case.host), entry.path),
                    _ => format!("{}#{}", case.host, entry.key_path()),
                };
                let _ = writeln!(map, "{key} r{}", owners[e]);
            }
        }
    }
    slots.into_iter().map(|((_, m), map)| (m, map)).collect()
}

fn config(cases: &[Case], port: u16, dir: &Path) -> String {
    let mut c = format!(
        "global\n  maxconn 1000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\nfrontend differential\n  bind 127.0.0.1:{port}\n  http-request set-var(req.path) path\n  http-request set-var(req.host) hdr(host),field(1,:),lower\n  http-request set-var(req.base) var(req.host),concat(\\#,req.path)\n"
    );
    for (n, (match_type, map)) in shared_map_files(cases).iter().enumerate() {
        let name = dir.join(format!("_front_host_{n:02}__{}.map", match_type.as_str()));
        std::fs::write(&name, map).expect("write map");
        let _ = writeln!(
            c,
            "  http-request set-var(txn.route) var(req.base){},map_{}({}){}",
            if *match_type == MatchType::Begin {
                ",lower"
            } else {
                ""
            },
            match_type.map_method(),
            name.display(),
            if n == 0 {
                ""
            } else {
                " if !{ var(txn.route) -m found }"
            }
        );
    }
    c.push_str("  http-request return status 200 content-type text/plain lf-string \"%[var(txn.route)]\" if { var(txn.route) -m found }\n  http-request return status 200 content-type text/plain string none\n");
    c
}

// ---------------------------------------------------------------------------------------
// The engine's answer
// ---------------------------------------------------------------------------------------

fn manifests(cases: &[Case]) -> Manifests {
    let mut profile = Profile::split_host().issuer("https://differential.test");
    profile.controller = "haproxy-ingress".into();
    let mut docs = vec![profile.yaml()];
    for case in cases {
        for (i, p) in case.paths.iter().enumerate() {
            let mut ing = Ingress::new(&format!("r{i}"), &case.host)
                .namespace(&case.host.replace('.', "-"))
                .created(&format!("2026-01-01T00:{i:02}:00Z"))
                .path(&p.path, p.path_type.as_str());
            if let Some(key) = p.path_type_key {
                ing = ing.annotation("haproxy-ingress.github.io/path-type", key);
            }
            docs.push(ing.yaml());
        }
    }
    let text = docs.join("---\n");
    let documents = manifest::parse_documents(Path::new("differential.yaml"), &text)
        .expect("generated manifests parse");
    manifest::load(documents, "default", false).expect("generated manifests load")
}

/// THE one engine query of this test: for each request path, the Ingresses whose routes
/// the engine says may serve it on `host` (`none`: no route).
fn engine_markers(manifests: &Manifests, host: &str, paths: &[String]) -> Vec<BTreeSet<String>> {
    let (_, profile) = &manifests.profiles[0];
    let dialect = mtls_gate::dialect::dialect_for(profile.controller()).expect("haproxy-ingress");
    let table = mtls_gate::engine::host_table(profile, dialect, &manifests.view, host)
        .expect("the host has Ingresses");
    paths
        .iter()
        .map(|path| {
            let names: BTreeSet<String> = dialect
                .winners(&table, path)
                .into_iter()
                .map(|i| table.routes[i].source.key.name.clone())
                .collect();
            if names.is_empty() {
                ["none".to_string()].into()
            } else {
                names
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

fn requests(case: &Case, rng: &mut fastrand::Rng) -> Vec<String> {
    proxies::near_miss_requests(
        case.paths.iter().map(|p| p.instance.as_str()),
        SEGMENTS,
        true,
        rng,
    )
}

#[test]
fn engine_path_model_matches_real_haproxy() {
    let Some(binary) = proxies::require("haproxy") else {
        return;
    };
    let count: usize = std::env::var("MTLS_GATE_DIFFERENTIAL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BOUNDED_CASES);
    let seed: u64 = std::env::var("MTLS_GATE_DIFFERENTIAL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let mut rng = fastrand::Rng::with_seed(seed);
    let cases: Vec<Case> = (0..count).map(|i| generate(&mut rng, i)).collect();
    let manifests = manifests(&cases);

    let maps = tempfile::tempdir().expect("temp dir for map files");
    let proxy = proxies::haproxy(&binary, |port| config(&cases, port, maps.path()));
    let mut http = proxies::HttpConnection::new(proxy.port);

    let mut checked = 0usize;
    let mut disagreements = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let paths = requests(case, &mut rng);
        let answers = engine_markers(&manifests, &case.host, &paths);
        for (path, engine) in paths.into_iter().zip(answers) {
            let (status, body) = http.get(&case.host, &path);
            checked += 1;
            let answer = body.trim().to_string();
            if status == 200 && engine.contains(&answer) {
                continue;
            }
            let (entries, owners) = map_entries(case);
            let files: Vec<String> = haproxy::match_files(&entries)
                .iter()
                .map(|f| {
                    format!(
                        "{}: {:?}",
                        f.match_type.as_str(),
                        f.entries
                            .iter()
                            .map(|&e| format!("{} -> r{}", entries[e].path, owners[e]))
                            .collect::<Vec<_>>()
                    )
                })
                .collect();
            disagreements.push(format!(
                "case {index} host {} request {path:?}: HAProxy {status} {answer:?}, engine {engine:?}\n  Ingress paths (oldest first): {:?}\n  map files in lookup order: {files:?}",
                case.host,
                case.paths
                    .iter()
                    .map(|p| format!(
                        "{} {}{}",
                        p.path_type.as_str(),
                        p.path,
                        p.path_type_key
                            .map(|k| format!(" (path-type {k})"))
                            .unwrap_or_default()
                    ))
                    .collect::<Vec<_>>(),
            ));
        }
    }
    eprintln!(
        "haproxy differential: seed {seed}, {count} cases, {checked} requests, {} disagreements",
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} of {checked} requests disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
