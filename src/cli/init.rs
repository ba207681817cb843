//! `mtls-gate init`: a starter ApiProviderProfile, either the documented template
//! (`examples/starter-profile.yaml`) or one built from the bank's OIDC discovery document
//! (issuer, the `*_endpoint` keys and `jwks_uri`, and `mtls_endpoint_aliases` for the MTLS
//! rows, RFC 8705 §5). Starter profiles use `enforcement: Audit`: the rollout guide in the
//! README starts there.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::catalog::{ENDPOINT_TABLE, Location};
use crate::cli::discovery::DiscoveryDocument;
use crate::profile::ApiProviderProfile;

/// The documented starter profile, byte for byte.
pub const STARTER_PROFILE: &str = include_str!("../../examples/starter-profile.yaml");

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Build the profile from this OIDC discovery document (JSON, as served at the issuer
    /// + /.well-known/openid-configuration) instead of printing the template.
    #[arg(long, value_name = "FILE")]
    pub from_discovery: Option<PathBuf>,
    /// Base URL of the resource APIs, e.g. https://mtls-api.bank.example/open-banking-nz/v3.0
    /// (repeat for several versions); required with --from-discovery, which cannot know it.
    #[arg(long = "api-base-url", value_name = "URL")]
    pub api_base_urls: Vec<String>,
    /// metadata.name of the profile (default: the issuer's host).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Secret with the CA certificates that issue client certificates (key ca.crt).
    #[arg(long, default_value = "open-banking-client-ca", value_name = "SECRET")]
    pub ca_secret_name: String,
    /// spec.ingressController of the profile.
    #[arg(long, default_value = "ingress-nginx", value_name = "CONTROLLER")]
    pub ingress_controller: String,
    /// spec.ingressClassName of the profile (default: all classes).
    #[arg(long, value_name = "CLASS")]
    pub ingress_class_name: Option<String>,
}

/// Builds a profile manifest from a discovery document, validated as `check` would.
pub fn profile_from_discovery(
    doc: &DiscoveryDocument,
    args: &InitArgs,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        !args.api_base_urls.is_empty(),
        "a discovery document does not name the resource APIs' base URLs: pass --api-base-url URL (for example https://mtls-api.bank.example/open-banking-nz/v3.0)"
    );
    let mut server = serde_json::Map::new();
    for row in ENDPOINT_TABLE
        .iter()
        .filter(|r| r.location == Location::AuthorizationServer)
    {
        if let (Some(field), Some(url)) = (row.profile_field(), doc.url_for(row)) {
            server.insert(field.to_string(), url.into());
        }
    }
    let name = match &args.name {
        Some(n) => n.clone(),
        None => url::Url::parse(&doc.issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .context("the discovery document's issuer has no host; pass --name")?,
    };
    let mut spec = serde_json::json!({
        "issuer": doc.issuer,
        "apiBaseUrls": args.api_base_urls,
        "clientCertificate": {"caSecretName": args.ca_secret_name},
        "ingressController": args.ingress_controller,
        "enforcement": "Audit",
    });
    if !server.is_empty() {
        spec["authorizationServer"] = server.into();
    }
    if let Some(class) = &args.ingress_class_name {
        spec["ingressClassName"] = class.clone().into();
    }
    let manifest = serde_json::json!({
        "apiVersion": "mtls-gate.io/v1alpha1",
        "kind": "ApiProviderProfile",
        "metadata": {"name": name},
        "spec": spec,
    });
    let profile: ApiProviderProfile = serde_path_to_error::deserialize(&manifest)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.path(), e.inner()))?;
    profile
        .compile()
        .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
    Ok(manifest)
}

pub fn init(args: &InitArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(file) = &args.from_discovery else {
        out.write_all(STARTER_PROFILE.as_bytes())?;
        return Ok(());
    };
    let doc = DiscoveryDocument::read(file)?;
    let manifest = profile_from_discovery(&doc, args)?;
    writeln!(
        out,
        "# Starter ApiProviderProfile built by `mtls-gate init --from-discovery {}`.",
        file.display()
    )?;
    writeln!(
        out,
        "# Authorisation endpoints come from the discovery document; MTLS endpoints use their"
    )?;
    writeln!(
        out,
        "# mtls_endpoint_aliases URL where one is given (RFC 8705 §5). enforcement: Audit only"
    )?;
    writeln!(
        out,
        "# reports; follow the README's rollout guide (Audit -> Warn -> Deny) before denying."
    )?;
    writeln!(out, "---")?;
    write!(out, "{}", crate::manifest::to_yaml(&manifest)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn args(api: &[&str]) -> InitArgs {
        InitArgs {
            from_discovery: None,
            api_base_urls: api.iter().map(|s| s.to_string()).collect(),
            name: None,
            ca_secret_name: "open-banking-client-ca".into(),
            ingress_controller: "ingress-nginx".into(),
            ingress_class_name: Some("nginx".into()),
        }
    }

    const DISCOVERY: &str = r#"{
        "issuer": "https://auth.bank.example",
        "authorization_endpoint": "https://auth.bank.example/authorize",
        "token_endpoint": "https://auth.bank.example/token",
        "pushed_authorization_request_endpoint": "https://mtls-auth.bank.example/par",
        "jwks_uri": "https://auth.bank.example/jwks",
        "mtls_endpoint_aliases": {"token_endpoint": "https://mtls-auth.bank.example/token"}
    }"#;

    #[test]
    fn discovery_urls_become_profile_fields_with_aliases_for_mtls_rows() {
        let doc = DiscoveryDocument::parse(Path::new("d.json"), DISCOVERY).unwrap();
        let m = profile_from_discovery(
            &doc,
            &args(&["https://mtls-api.bank.example/open-banking-nz/v3.0"]),
        )
        .unwrap();
        let server = &m["spec"]["authorizationServer"];
        assert_eq!(m["metadata"]["name"], "auth.bank.example");
        assert_eq!(m["spec"]["enforcement"], "Audit");
        assert_eq!(
            server["tokenEndpoint"],
            "https://mtls-auth.bank.example/token"
        );
        assert_eq!(
            server["authorizationEndpoint"],
            "https://auth.bank.example/authorize"
        );
        assert_eq!(
            server["pushedAuthorizationRequestEndpoint"],
            "https://mtls-auth.bank.example/par"
        );
        assert_eq!(server["jwksUri"], "https://auth.bank.example/jwks");
        assert!(server.get("userinfoEndpoint").is_none(), "{server}");
    }

    #[test]
    fn without_api_base_urls_it_says_what_to_pass() {
        let doc = DiscoveryDocument::parse(Path::new("d.json"), DISCOVERY).unwrap();
        let e = profile_from_discovery(&doc, &args(&[])).unwrap_err();
        assert!(e.to_string().contains("--api-base-url"), "{e}");
        let e = profile_from_discovery(&doc, &args(&["http://api.bank.example/v3"])).unwrap_err();
        assert!(e.to_string().contains("spec.apiBaseUrls[0]"), "{e}");
    }

    #[test]
    fn the_starter_profile_is_a_valid_audit_profile() {
        let doc: ApiProviderProfile = serde_yaml_ng::from_str(STARTER_PROFILE).unwrap();
        let compiled = doc.compile().unwrap();
        assert_eq!(
            compiled.spec.enforcement,
            crate::profile::Enforcement::Audit
        );
    }
}
