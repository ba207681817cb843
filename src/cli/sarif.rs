//! `check --output sarif`: a SARIF 2.1.0 log for code-scanning dashboards.
//!
//! Source: OASIS "Static Analysis Results Interchange Format (SARIF) Version 2.1.0" (errata
//! 01): one `run` whose `tool.driver.rules` hold one rule per violation code (§3.49) with
//! help text, and one `result` per finding (§3.27) located at the file and line of the
//! document it comes from (`physicalLocation`, §3.29) and at the Kubernetes object
//! (`logicalLocations`, §3.33). `level` follows the profile's enforcement: Deny → error,
//! Warn → warning, Audit → note. The test suite validates the output against the official
//! schema (tests/fixtures/sarif/).

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use crate::cli::discovery::DiscoveryCode;
use crate::cli::report::{Finding, Report};
use crate::profile::Enforcement;
use crate::violation::ViolationCode;

const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";
/// The README section that explains every code.
const HELP_URI: &str =
    "https://github.com/mtls-gate/mtls-gate#what-the-webhook-denies-and-how-to-read-it";

/// A rule: (id, one-line description, help: why it matters and what to change).
struct Rule {
    id: &'static str,
    short: &'static str,
    help: &'static str,
}

fn engine_rule(code: ViolationCode) -> Rule {
    let (short, help) = match code {
        ViolationCode::MtlsNotRequired => (
            "An MTLS endpoint is reachable without a verified client certificate.",
            "The endpoint table demands that the provider require a client certificate meeting the Security Profile on this endpoint, but the route that serves it lets clients in without one (client auth off, optional, or not verified). Certificate-bound tokens and client authentication then rest on nothing. Serve the endpoint from a host that requires and verifies client certificates (for ingress-nginx: auth-tls-verify-client \"on\" with auth-tls-secret), or route it through the profile's gate.",
        ),
        ViolationCode::MtlsRequiredOnTlsEndpoint => (
            "A TLS endpoint can only be reached with a client certificate.",
            "The endpoint table says the provider must accept connections without a client certificate here (for example /authorize, the JWKS or the discovery document), but the host requires one or the route goes through the gate. Browsers and third parties without certificates are refused. Serve the endpoint from a host that does not require client certificates (or optionally verifies them), and keep it off the gate.",
        ),
        ViolationCode::HostSettingsConflict => (
            "Ingresses sharing a host carry client-auth settings the controller merges by an order-dependent or fail-open rule.",
            "Client certificates are negotiated per host, at the TLS handshake; the ingress controller takes the host-wide setting from one of the Ingresses (for ingress-nginx the oldest), so another team's Ingress can weaken the whole host. Give every Ingress on the host the same client-auth settings, or move the odd one to its own host.",
        ),
        ViolationCode::CaSecretInvalid => (
            "The CA Secret for client certificates is missing, in another namespace, lacks the key the controller reads, or is not PEM certificates.",
            "Without a usable trust anchor the ingress controller silently stops verifying client certificates (ingress-nginx reads ca.crt from the Secret in the Ingress's namespace). Create the Secret named by spec.clientCertificate.caSecretName in the Ingress's namespace with key ca.crt holding the PEM CA certificates.",
        ),
        ViolationCode::TlsMissing => (
            "A host that serves profile endpoints has no TLS entry, or an endpoint is also served over plain HTTP.",
            "Open-banking endpoints must be served over TLS only; without a spec.tls entry for the host the controller serves it with its default certificate or over plain HTTP, and client-certificate settings do not apply. Add a spec.tls entry that lists the host.",
        ),
        ViolationCode::TlsOptionInvalid => (
            "A Traefik TLSOption an Ingress names does not exist or is invalid, so Traefik does not apply it.",
            "Traefik falls back to its default TLS options when the referenced TLSOption is missing or invalid, which asks for no client certificate. Create the TLSOption in the Ingress's namespace with clientAuth.clientAuthType RequireAndVerifyClientCert and the CA Secret.",
        ),
        ViolationCode::UnmodelledSetting => (
            "Something on a profile host changes routing or client authentication in a way mtls-gate does not model or cannot analyse.",
            "mtls-gate is a security control and fails closed: a setting it cannot evaluate (an annotation or kind it does not model, a value it cannot parse, a regular expression too complex to analyse within its limits) may expose an MTLS endpoint, so the host cannot be proven compliant. Replace the setting with one mtls-gate models (for example a plain Exact or Prefix path instead of a complex regular expression), or move it off the profile's hosts.",
        ),
        ViolationCode::ObjectsUnreadable => (
            "Objects the profile's controller reads to serve a profile host cannot be read by mtls-gate.",
            "mtls-gate fails closed: objects it cannot read (a kind it is not allowed or configured to watch, or an object it cannot parse) may route the host's endpoints without a client certificate, so the host cannot be proven compliant and changes on it are refused. Let mtls-gate read the kind (the chart values that enable the controller's watches, its RBAC), or fix the object named in the finding.",
        ),
    };
    Rule {
        id: code.as_str(),
        short,
        help,
    }
}

fn discovery_rule(code: DiscoveryCode) -> Rule {
    let (short, help) = match code {
        DiscoveryCode::DiscoveryIssuerMismatch => (
            "The discovery document's issuer is not the profile's issuer.",
            "OIDC Discovery §4.3: the issuer in the metadata must be identical (exact string comparison, trailing '/' included) to the issuer URL the document was fetched for, and clients must reject it otherwise. Make spec.issuer the issuer the authorisation server uses.",
        ),
        DiscoveryCode::DiscoveryUrlNotFromIssuer => (
            "The discovery document is not served at the issuer plus /.well-known/openid-configuration.",
            "OIDC Discovery §4: the document is served at the issuer with any trailing '/' removed, followed by /.well-known/openid-configuration. The RFC 8414 form (suffix inserted before the issuer's path) is a different document. Serve it where OIDC clients look.",
        ),
        DiscoveryCode::DiscoveryEndpointMismatch => (
            "The discovery document sends clients to a URL the profile does not check.",
            "mtls-gate checks each authorisation endpoint at the URL the profile names (spec.authorizationServer, default issuer + path). If the discovery document advertises another URL (for MTLS endpoints, the mtls_endpoint_aliases entry when present, RFC 8705 §5), the URL clients really use goes unchecked. Set the profile field to the advertised URL.",
        ),
        DiscoveryCode::MtlsAliasOnTlsHost => (
            "An mtls_endpoint_aliases entry points at a host that serves TLS endpoints.",
            "RFC 8705 §5: aliases exist so that an authorisation server can confine certificate requests to separate endpoints. An alias on the host that serves /authorize, the JWKS or the discovery document cannot require a certificate at the handshake without refusing browsers. Point the alias at the MTLS host.",
        ),
        DiscoveryCode::MtlsAliasMissing => (
            "An MTLS endpoint is advertised only on a host that serves TLS endpoints.",
            "RFC 8705 §5: a client using MTLS uses the alias when present, otherwise the top-level URL. With no alias, MTLS clients are sent to a host that cannot require client certificates. Add an mtls_endpoint_aliases entry on the MTLS host (NZ allows it for token, revocation and introspection) or serve the endpoint from the MTLS host.",
        ),
    };
    Rule {
        id: code.as_str(),
        short,
        help,
    }
}

fn rules() -> Vec<Rule> {
    ViolationCode::ALL
        .into_iter()
        .map(engine_rule)
        .chain(DiscoveryCode::ALL.into_iter().map(discovery_rule))
        .collect()
}

fn level(enforcement: Enforcement) -> &'static str {
    match enforcement {
        Enforcement::Deny => "error",
        Enforcement::Warn => "warning",
        Enforcement::Audit => "note",
    }
}

/// A relative path as a URI reference (`/`-separated, reserved characters escaped), or a
/// `file:` URI for an absolute path (SARIF §3.4.3 `artifactLocation.uri`).
pub fn path_uri(path: &Path) -> String {
    if path.is_absolute()
        && let Ok(url) = url::Url::from_file_path(path)
    {
        return url.to_string();
    }
    let text = path.to_string_lossy().replace('\\', "/");
    let text = text.strip_prefix("./").unwrap_or(&text);
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn result(f: &Finding, rule_index: usize) -> Value {
    let mut result = json!({
        "ruleId": f.code,
        "ruleIndex": rule_index,
        "level": level(f.enforcement),
        "message": {"text": f.message},
        "partialFingerprints": {"mtlsGateFinding/v1": f.identity()},
        "properties": {
            "profile": f.profile,
            "enforcement": f.enforcement.as_str(),
        },
    });
    let mut locations = Vec::new();
    let mut location = serde_json::Map::new();
    if let Some(file) = f.file() {
        let mut physical = json!({"artifactLocation": {"uri": path_uri(file)}});
        if let Some(line) = f.location.as_ref().and_then(|l| l.line) {
            physical["region"] = json!({"startLine": line});
        }
        location.insert("physicalLocation".into(), physical);
    }
    if let Some(ingress) = f.ingress {
        location.insert(
            "logicalLocations".into(),
            json!([{
                "name": ingress.name,
                "fullyQualifiedName": format!("Ingress/{ingress}"),
                "kind": "resource",
            }]),
        );
    }
    if !location.is_empty() {
        locations.push(Value::Object(location));
    }
    if !locations.is_empty() {
        result["locations"] = locations.into();
    }
    let props = &mut result["properties"];
    for (key, value) in [
        ("host", f.host),
        ("path", f.path),
        ("endpoint", f.endpoint),
        ("url", f.url),
    ] {
        if let Some(value) = value {
            props[key] = value.into();
        }
    }
    result
}

/// The SARIF log for a report.
pub fn to_sarif(report: &Report) -> Value {
    let rules = rules();
    let rule_values: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": {"text": r.short},
                "fullDescription": {"text": r.help},
                "help": {"text": r.help},
                "helpUri": HELP_URI,
                "defaultConfiguration": {"level": "error"},
                "properties": {"tags": ["security", "mtls", "open-banking"]},
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings()
        .iter()
        .map(|f| {
            let index = rules.iter().position(|r| r.id == f.code).unwrap_or(0);
            result(f, index)
        })
        .collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "mtls-gate",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/mtls-gate/mtls-gate",
                "rules": rule_values,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

pub fn write_sarif(out: &mut dyn Write, report: &Report) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &to_sarif(report))?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_rule_with_help() {
        let rules = rules();
        let ids: std::collections::BTreeSet<_> = rules.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), rules.len(), "rule ids are unique");
        assert_eq!(
            rules.len(),
            ViolationCode::ALL.len() + DiscoveryCode::ALL.len()
        );
        for r in &rules {
            assert!(r.short.ends_with('.') && r.help.len() > 100, "{}", r.id);
        }
    }

    #[test]
    fn paths_become_uri_references() {
        // (path, uri)
        let cases = [
            ("examples/broken/x.yaml", "examples/broken/x.yaml"),
            ("./a b/c#d.yaml", "a%20b/c%23d.yaml"),
            ("/abs/x y.yaml", "file:///abs/x%20y.yaml"),
        ];
        for (path, uri) in cases {
            assert_eq!(path_uri(Path::new(path)), uri, "{path}");
        }
    }
}
