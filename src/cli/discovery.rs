//! The bank's OIDC discovery document, offline: reading it, checking it against a profile
//! (`check --discovery`), and the endpoint URLs a starter profile takes from it
//! (`init --from-discovery`).
//!
//! Sources: OpenID Connect Discovery 1.0 §3 (`issuer`, the `*_endpoint` keys, `jwks_uri`)
//! and §4 (the document is served at the issuer with any trailing `/` removed plus
//! `/.well-known/openid-configuration`; §4.3: its `issuer` is identical to that issuer);
//! RFC 8705 §5 (`mtls_endpoint_aliases`: a client using MTLS uses the alias when present,
//! else the top-level URL; aliases let an AS confine certificate requests to separate
//! hosts). See shared/reference/domain.md §2 and §4.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::{ENDPOINT_TABLE, EndpointRow, Location, Scheme};
use crate::manifest::SourceLocation;
use crate::profile::CompiledProfile;

/// The discovery path suffix (OIDC Discovery §4).
pub const WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// Where an issuer's discovery document is served (OIDC Discovery §4.1).
pub fn discovery_url(issuer: &str) -> String {
    format!("{}{WELL_KNOWN}", issuer.trim_end_matches('/'))
}

/// The discovery metadata mtls-gate reads.
#[derive(Debug, Clone)]
pub struct DiscoveryDocument {
    pub file: PathBuf,
    pub issuer: String,
    /// Top-level `*_endpoint` keys and `jwks_uri`.
    pub endpoints: BTreeMap<String, String>,
    /// `mtls_endpoint_aliases` (RFC 8705 §5).
    pub aliases: BTreeMap<String, String>,
    /// The line of each top-level key, and of each alias as `mtls_endpoint_aliases.KEY`.
    lines: BTreeMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("{}: cannot read the discovery document: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a valid discovery document: {message}", file.display())]
    Invalid { file: PathBuf, message: String },
}

impl DiscoveryDocument {
    pub fn read(file: &Path) -> Result<Self, DiscoveryError> {
        let text = std::fs::read_to_string(file).map_err(|source| DiscoveryError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Self, DiscoveryError> {
        let invalid = |message: String| DiscoveryError::Invalid {
            file: file.to_path_buf(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| invalid("expected a JSON object of metadata".into()))?;
        let issuer = match object.get("issuer") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(invalid("issuer: must be a non-empty string".into())),
            None => return Err(invalid("issuer: is required (OIDC Discovery §3)".into())),
        };
        let url_string = |key: &str, v: &serde_json::Value| -> Result<String, DiscoveryError> {
            let s = v
                .as_str()
                .ok_or_else(|| invalid(format!("{key}: must be a URL string")))?;
            url::Url::parse(s).map_err(|e| invalid(format!("{key}: {s:?} is not a URL: {e}")))?;
            Ok(s.to_string())
        };
        let mut endpoints = BTreeMap::new();
        for (key, v) in object {
            if key.ends_with("_endpoint") || key == "jwks_uri" {
                endpoints.insert(key.clone(), url_string(key, v)?);
            }
        }
        let mut aliases = BTreeMap::new();
        match object.get("mtls_endpoint_aliases") {
            None => {}
            Some(serde_json::Value::Object(map)) => {
                for (key, v) in map {
                    let field = format!("mtls_endpoint_aliases.{key}");
                    aliases.insert(key.clone(), url_string(&field, v)?);
                }
            }
            Some(_) => {
                return Err(invalid(
                    "mtls_endpoint_aliases: must be a JSON object (RFC 8705 §5)".into(),
                ));
            }
        }
        Ok(Self {
            file: file.to_path_buf(),
            issuer,
            endpoints,
            aliases,
            lines: key_lines(text),
        })
    }

    /// The URL an MTLS client uses for `key` (RFC 8705 §5: the alias when present).
    pub fn mtls_url(&self, key: &str) -> Option<&str> {
        self.aliases
            .get(key)
            .or_else(|| self.endpoints.get(key))
            .map(String::as_str)
    }

    /// The URL the table's `row` is served at according to this document.
    pub fn url_for(&self, row: &EndpointRow) -> Option<&str> {
        let key = row.discovery_key?;
        match row.scheme {
            Scheme::Mtls => self.mtls_url(key),
            Scheme::Tls => self.endpoints.get(key).map(String::as_str),
        }
    }

    fn location(&self, key: &str) -> SourceLocation {
        SourceLocation {
            file: self.file.clone(),
            line: self
                .lines
                .get(key)
                .or_else(|| self.lines.get("issuer"))
                .copied(),
        }
    }
}

/// Lines of the keys of a pretty-printed discovery document: top-level keys, and the keys
/// inside `mtls_endpoint_aliases` as `mtls_endpoint_aliases.KEY`.
fn key_lines(text: &str) -> BTreeMap<String, usize> {
    let mut lines = BTreeMap::new();
    let mut in_aliases = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let Some(rest) = t.strip_prefix('"') else {
            if t.starts_with('}') {
                in_aliases = false;
            }
            continue;
        };
        let Some((key, _)) = rest.split_once('"') else {
            continue;
        };
        let name = if in_aliases {
            format!("mtls_endpoint_aliases.{key}")
        } else {
            key.to_string()
        };
        lines.entry(name).or_insert(i + 1);
        if key == "mtls_endpoint_aliases" && !t.contains('}') {
            in_aliases = true;
        }
    }
    lines
}

/// What is wrong with a discovery document for a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum DiscoveryCode {
    /// The document's `issuer` is not the profile's `spec.issuer` (OIDC Discovery §4.3).
    DiscoveryIssuerMismatch,
    /// The document is published somewhere other than issuer + `/.well-known/openid-configuration`
    /// (OIDC Discovery §4).
    DiscoveryUrlNotFromIssuer,
    /// The document sends clients to a URL for an endpoint the profile checks elsewhere.
    DiscoveryEndpointMismatch,
    /// An `mtls_endpoint_aliases` entry points at a host that serves TLS endpoints.
    MtlsAliasOnTlsHost,
    /// An MTLS endpoint's only advertised URL is on a host that serves TLS endpoints.
    MtlsAliasMissing,
}

impl DiscoveryCode {
    pub const ALL: [DiscoveryCode; 5] = [
        DiscoveryCode::DiscoveryIssuerMismatch,
        DiscoveryCode::DiscoveryUrlNotFromIssuer,
        DiscoveryCode::DiscoveryEndpointMismatch,
        DiscoveryCode::MtlsAliasOnTlsHost,
        DiscoveryCode::MtlsAliasMissing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryCode::DiscoveryIssuerMismatch => "DiscoveryIssuerMismatch",
            DiscoveryCode::DiscoveryUrlNotFromIssuer => "DiscoveryUrlNotFromIssuer",
            DiscoveryCode::DiscoveryEndpointMismatch => "DiscoveryEndpointMismatch",
            DiscoveryCode::MtlsAliasOnTlsHost => "MtlsAliasOnTlsHost",
            DiscoveryCode::MtlsAliasMissing => "MtlsAliasMissing",
        }
    }
}

/// One finding about the discovery document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryFinding {
    pub code: DiscoveryCode,
    pub message: String,
    pub profile: String,
    /// The discovery-metadata key concerned, if any.
    pub key: Option<String>,
    /// The logical endpoint as the table writes it, if any.
    pub endpoint: Option<&'static str>,
    /// The URL concerned.
    pub url: Option<String>,
    #[serde(skip)]
    pub location: SourceLocation,
}

fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
}

/// Checks `doc` against `profile`. `published_at` is the URL the document is fetched from,
/// when known.
pub fn check(
    profile: &CompiledProfile,
    doc: &DiscoveryDocument,
    published_at: Option<&str>,
) -> Vec<DiscoveryFinding> {
    let mut findings = Vec::new();
    // `at` is the key whose line the finding points at.
    let finding = |code, key: Option<&str>, at: &str, endpoint, url: Option<&str>, message| {
        DiscoveryFinding {
            code,
            message,
            profile: profile.name.clone(),
            key: key.map(str::to_string),
            endpoint,
            url: url.map(str::to_string),
            location: doc.location(at),
        }
    };
    if doc.issuer != profile.spec.issuer {
        findings.push(finding(
            DiscoveryCode::DiscoveryIssuerMismatch,
            Some("issuer"),
            "issuer",
            None,
            Some(&doc.issuer),
            format!(
                "the discovery document's issuer {:?} is not the profile's spec.issuer {:?}; clients must reject metadata whose issuer differs from the URL they fetched it from (OIDC Discovery §4.3, exact string comparison). Make spec.issuer the issuer the authorisation server puts in its tokens.",
                doc.issuer, profile.spec.issuer
            ),
        ));
    }
    if let Some(url) = published_at {
        let want = discovery_url(&doc.issuer);
        if url != want {
            findings.push(finding(
                DiscoveryCode::DiscoveryUrlNotFromIssuer,
                None,
                "issuer",
                Some("/.well-known/openid-configuration"),
                Some(url),
                format!(
                    "the discovery document is published at {url} but its issuer {:?} puts it at {want} (OIDC Discovery §4: the issuer with any trailing '/' removed, plus /.well-known/openid-configuration; the RFC 8414 form inserts the suffix before the path and is not what OIDC clients fetch). Serve it at {want}.",
                    doc.issuer
                ),
            ));
        }
    }
    let gate = profile.gate_url().is_some();
    // Hosts where the profile serves endpoints that must accept connections without a
    // client certificate.
    let tls_hosts: BTreeSet<&str> = profile
        .endpoints
        .iter()
        .filter(|e| e.row.scheme == Scheme::Tls && !e.default_alias)
        .map(|e| e.host.as_str())
        .collect();
    for row in ENDPOINT_TABLE.iter() {
        let Some(key) = row.discovery_key else {
            continue;
        };
        if row.location == Location::Issuer {
            continue;
        }
        let checked = profile
            .endpoints
            .iter()
            .find(|e| std::ptr::eq(e.row, row) && !e.default_alias);
        if let (Some(advertised), Some(checked)) = (doc.url_for(row), checked)
            && advertised != checked.url
        {
            let which = if row.scheme == Scheme::Mtls && doc.aliases.contains_key(key) {
                format!("mtls_endpoint_aliases.{key}")
            } else {
                key.to_string()
            };
            findings.push(finding(
                DiscoveryCode::DiscoveryEndpointMismatch,
                Some(key),
                &which,
                Some(row.endpoint),
                Some(advertised),
                format!(
                    "{which} sends {} clients to {advertised}, but the profile checks {} at {}, so the URL clients use is not checked. Set spec.authorizationServer.{} to {advertised:?}.",
                    row.scheme,
                    row.endpoint,
                    checked.url,
                    row.profile_field().unwrap_or(key)
                ),
            ));
        }
        if row.scheme != Scheme::Mtls || gate {
            continue;
        }
        if let Some(alias) = doc.aliases.get(key)
            && let Some(host) = host_of(alias)
            && tls_hosts.contains(host.as_str())
        {
            findings.push(finding(
                DiscoveryCode::MtlsAliasOnTlsHost,
                Some(key),
                &format!("mtls_endpoint_aliases.{key}"),
                Some(row.endpoint),
                Some(alias),
                format!(
                    "mtls_endpoint_aliases.{key} points at {alias}, on host {host}, which serves TLS endpoints that must not require a client certificate; an MTLS alias exists to send certificate-bearing clients to a host that asks for certificates (RFC 8705 §5). Point it at the MTLS host."
                ),
            ));
        } else if !doc.aliases.contains_key(key)
            && let Some(top) = doc.endpoints.get(key)
            && let Some(host) = host_of(top)
            && tls_hosts.contains(host.as_str())
        {
            let fix = if matches!(
                key,
                "token_endpoint" | "revocation_endpoint" | "introspection_endpoint"
            ) {
                format!("add mtls_endpoint_aliases.{key} on the MTLS host")
            } else {
                // The NZ AS-metadata schema allows aliases only for these three keys.
                "serve it from the MTLS host (the NZ metadata schema allows aliases only for the token, revocation and introspection endpoints)".to_string()
            };
            findings.push(finding(
                DiscoveryCode::MtlsAliasMissing,
                Some(key),
                key,
                Some(row.endpoint),
                Some(top),
                format!(
                    "{key} ({}, MTLS) is advertised only at {top}, on host {host}, which serves TLS endpoints and so cannot require a client certificate at the handshake; MTLS clients use the alias when present, else this URL (RFC 8705 §5): {fix}.",
                    row.endpoint
                ),
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ApiProviderProfile;

    fn profile(extra: &str) -> CompiledProfile {
        let yaml = format!(
            "apiVersion: mtls-gate.io/v1alpha1
kind: ApiProviderProfile
metadata: {{name: bank}}
spec:
  issuer: https://auth.bank.example
  apiBaseUrls: [https://mtls-api.bank.example/open-banking-nz/v3.0]
  clientCertificate: {{caSecretName: client-ca}}
  authorizationServer:
    tokenEndpoint: https://mtls-auth.bank.example/token
    pushedAuthorizationRequestEndpoint: https://mtls-auth.bank.example/par
    backchannelAuthenticationEndpoint: https://mtls-auth.bank.example/bc-authorize
    introspectionEndpoint: https://mtls-auth.bank.example/introspect
    revocationEndpoint: https://mtls-auth.bank.example/revoke
    userinfoEndpoint: https://mtls-auth.bank.example/userinfo
{extra}"
        );
        let p: ApiProviderProfile = serde_yaml_ng::from_str(&yaml).unwrap();
        p.compile().unwrap()
    }

    /// A document matching the profile, with `edit` applied.
    fn document(edit: impl FnOnce(&mut serde_json::Value)) -> DiscoveryDocument {
        DiscoveryDocument::parse(Path::new("openid-configuration.json"), &document_text(edit))
            .unwrap()
    }

    fn document_text(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = serde_json::json!({
            "issuer": "https://auth.bank.example",
            "authorization_endpoint": "https://auth.bank.example/authorize",
            "token_endpoint": "https://mtls-auth.bank.example/token",
            "pushed_authorization_request_endpoint": "https://mtls-auth.bank.example/par",
            "backchannel_authentication_endpoint": "https://mtls-auth.bank.example/bc-authorize",
            "introspection_endpoint": "https://mtls-auth.bank.example/introspect",
            "revocation_endpoint": "https://mtls-auth.bank.example/revoke",
            "userinfo_endpoint": "https://mtls-auth.bank.example/userinfo",
            "jwks_uri": "https://auth.bank.example/jwks",
            "mtls_endpoint_aliases": {
                "token_endpoint": "https://mtls-auth.bank.example/token",
                "revocation_endpoint": "https://mtls-auth.bank.example/revoke",
                "introspection_endpoint": "https://mtls-auth.bank.example/introspect"
            }
        });
        edit(&mut v);
        serde_json::to_string_pretty(&v).unwrap()
    }

    fn codes(findings: &[DiscoveryFinding]) -> Vec<(DiscoveryCode, Option<String>)> {
        findings.iter().map(|f| (f.code, f.key.clone())).collect()
    }

    #[test]
    fn a_matching_document_has_no_findings() {
        let doc = document(|_| {});
        let published = "https://auth.bank.example/.well-known/openid-configuration";
        assert!(check(&profile(""), &doc, Some(published)).is_empty());
    }

    #[test]
    fn findings_as_the_standards_define_them() {
        use DiscoveryCode::*;
        type Edit = fn(&mut serde_json::Value);
        // (what is wrong, edit to the document, published URL, expected (code, key))
        type Expected<'a> = &'a [(DiscoveryCode, Option<&'a str>)];
        let cases: &[(&str, Edit, Option<&str>, Expected)] = &[
            (
                "issuer with a trailing slash is another issuer (§4.3)",
                |v| v["issuer"] = "https://auth.bank.example/".into(),
                None,
                &[(DiscoveryIssuerMismatch, Some("issuer"))],
            ),
            (
                "RFC 8414-style URL is not the OIDC discovery URL (§4)",
                |_| {},
                Some("https://auth.bank.example/.well-known/oauth-authorization-server"),
                &[(DiscoveryUrlNotFromIssuer, None)],
            ),
            (
                "token alias on the public host",
                |v| {
                    v["mtls_endpoint_aliases"]["token_endpoint"] =
                        "https://auth.bank.example/token".into()
                },
                None,
                &[
                    (DiscoveryEndpointMismatch, Some("token_endpoint")),
                    (MtlsAliasOnTlsHost, Some("token_endpoint")),
                ],
            ),
            (
                "PAR top-level URL on the public host, no alias possible",
                |v| {
                    v["pushed_authorization_request_endpoint"] =
                        "https://auth.bank.example/par".into()
                },
                None,
                &[
                    (
                        DiscoveryEndpointMismatch,
                        Some("pushed_authorization_request_endpoint"),
                    ),
                    (
                        MtlsAliasMissing,
                        Some("pushed_authorization_request_endpoint"),
                    ),
                ],
            ),
            (
                "top-level revocation on the public host is fine with an MTLS alias",
                |v| v["revocation_endpoint"] = "https://auth.bank.example/revoke".into(),
                None,
                &[],
            ),
            (
                "top-level revocation on the public host without an alias",
                |v| {
                    v["revocation_endpoint"] = "https://auth.bank.example/revoke".into();
                    v["mtls_endpoint_aliases"]
                        .as_object_mut()
                        .unwrap()
                        .remove("revocation_endpoint");
                },
                None,
                &[
                    (DiscoveryEndpointMismatch, Some("revocation_endpoint")),
                    (MtlsAliasMissing, Some("revocation_endpoint")),
                ],
            ),
        ];
        for (what, edit, published, want) in cases {
            let doc = document(*edit);
            let got = codes(&check(&profile(""), &doc, *published));
            let want: Vec<_> = want
                .iter()
                .map(|(c, k)| (*c, k.map(str::to_string)))
                .collect();
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn a_gate_allows_mtls_urls_on_the_shared_host() {
        let gated =
            profile("  gate: {url: https://mtls-gate.mtls-gate.svc.cluster.local/verify}\n");
        let doc = document(|v| {
            v["mtls_endpoint_aliases"]["token_endpoint"] = "https://auth.bank.example/token".into()
        });
        assert_eq!(
            codes(&check(&gated, &doc, None)),
            vec![(
                DiscoveryCode::DiscoveryEndpointMismatch,
                Some("token_endpoint".to_string())
            )]
        );
    }

    #[test]
    fn findings_point_at_the_key_line() {
        let edit = |v: &mut serde_json::Value| {
            v["mtls_endpoint_aliases"]["token_endpoint"] = "https://auth.bank.example/token".into()
        };
        let text = document_text(edit);
        let findings = check(&profile(""), &document(edit), None);
        let line_of = |code| {
            let f = findings.iter().find(|f| f.code == code).unwrap();
            let line = text.lines().nth(f.location.line.unwrap() - 1).unwrap();
            line.trim().trim_end_matches(',')
        };
        // Both name the alias: the URL MTLS clients use is the alias (RFC 8705 §5).
        let alias_line = r#""token_endpoint": "https://auth.bank.example/token""#;
        assert_eq!(line_of(DiscoveryCode::MtlsAliasOnTlsHost), alias_line);
        assert_eq!(
            line_of(DiscoveryCode::DiscoveryEndpointMismatch),
            alias_line
        );
        let doc = document(|v| v["issuer"] = "https://other.example".into());
        let mismatch = &check(&profile(""), &doc, None)[0];
        let issuer_text = document_text(|v| v["issuer"] = "https://other.example".into());
        let line = issuer_text.lines().nth(mismatch.location.line.unwrap() - 1);
        assert_eq!(
            line.map(|l| l.trim().trim_end_matches(',')),
            Some(r#""issuer": "https://other.example""#)
        );
    }

    #[test]
    fn bad_documents_are_named() {
        let cases = [
            ("[]", "expected a JSON object"),
            ("{}", "issuer: is required"),
            (
                r#"{"issuer": "https://a", "token_endpoint": 3}"#,
                "token_endpoint: must be a URL",
            ),
            (
                r#"{"issuer": "https://a", "mtls_endpoint_aliases": []}"#,
                "mtls_endpoint_aliases: must be a JSON object",
            ),
            (
                r#"{"issuer": "https://a", "jwks_uri": "not a url"}"#,
                "jwks_uri: \"not a url\" is not a URL",
            ),
        ];
        for (text, want) in cases {
            let e = DiscoveryDocument::parse(Path::new("d.json"), text).unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn discovery_url_removes_a_trailing_slash() {
        assert_eq!(
            discovery_url("https://as.example/issuer1/"),
            "https://as.example/issuer1/.well-known/openid-configuration"
        );
    }
}
