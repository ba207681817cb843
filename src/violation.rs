//! Findings of the engine (design.md §5, a fixed contract).

use serde::Serialize;

use crate::model::ObjectKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ViolationCode {
    /// Objects of a kind the profile's controller reads to serve a profile host cannot be
    /// read by mtls-gate (not watched, listing forbidden, or an object it cannot parse), so
    /// they may route the host in any way; admission refuses changes on the host until
    /// they can be read. First in the order (findings sort by code): it is the cause to fix
    /// before any other finding on the host can be trusted.
    ObjectsUnreadable,
    /// An MTLS endpoint is reachable through a route that does not require a verified
    /// client certificate.
    MtlsNotRequired,
    /// A TLS endpoint can only be reached with a client certificate.
    MtlsRequiredOnTlsEndpoint,
    /// Ingresses sharing a host carry client-auth settings the controller merges by an
    /// order-dependent or fail-open rule.
    HostSettingsConflict,
    /// The referenced CA secret is missing, in another namespace, lacks the key the
    /// controller reads, or is not PEM certificates.
    CaSecretInvalid,
    /// A host that serves profile endpoints has no TLS entry.
    TlsMissing,
    /// A Traefik TLSOption an Ingress names does not exist or is invalid, so Traefik does
    /// not apply it.
    TlsOptionInvalid,
    /// Something on a profile host changes routing or client authentication in a way the
    /// engine does not model (or cannot analyse within its limits); it is never silently
    /// ignored (design.md §2, "Fail closed on the unknown").
    UnmodelledSetting,
}

impl ViolationCode {
    pub const ALL: [ViolationCode; 8] = [
        ViolationCode::MtlsNotRequired,
        ViolationCode::MtlsRequiredOnTlsEndpoint,
        ViolationCode::HostSettingsConflict,
        ViolationCode::CaSecretInvalid,
        ViolationCode::TlsMissing,
        ViolationCode::TlsOptionInvalid,
        ViolationCode::UnmodelledSetting,
        ViolationCode::ObjectsUnreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ViolationCode::MtlsNotRequired => "MtlsNotRequired",
            ViolationCode::MtlsRequiredOnTlsEndpoint => "MtlsRequiredOnTlsEndpoint",
            ViolationCode::HostSettingsConflict => "HostSettingsConflict",
            ViolationCode::CaSecretInvalid => "CaSecretInvalid",
            ViolationCode::TlsMissing => "TlsMissing",
            ViolationCode::TlsOptionInvalid => "TlsOptionInvalid",
            ViolationCode::UnmodelledSetting => "UnmodelledSetting",
            ViolationCode::ObjectsUnreadable => "ObjectsUnreadable",
        }
    }
}

impl std::fmt::Display for ViolationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding, naming everything a platform engineer needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub code: ViolationCode,
    /// What is wrong, why it matters and what to change.
    pub message: String,
    pub profile: String,
    pub host: String,
    /// The Ingress concerned (`namespace/name`), if the finding is about one.
    pub ingress: Option<ObjectKey>,
    /// The Ingress path concerned.
    pub path: Option<String>,
    /// The logical endpoint exactly as the table writes it; `None` for host-level findings
    /// and for unlisted API paths.
    pub endpoint: Option<&'static str>,
    /// The concrete endpoint URL (with `{Param}` placeholders), or the API base URL for
    /// unlisted paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Violation {
    /// Identity used to tell findings apart across evaluations (admission before/after).
    pub fn identity(&self) -> ViolationIdentity<'_> {
        ViolationIdentity {
            code: self.code,
            host: &self.host,
            ingress: self.ingress.as_ref(),
            path: self.path.as_deref(),
            endpoint: self.endpoint,
            url: self.url.as_deref(),
        }
    }
}

/// Everything that makes a finding the same finding, apart from its wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ViolationIdentity<'a> {
    pub code: ViolationCode,
    pub host: &'a str,
    pub ingress: Option<&'a ObjectKey>,
    pub path: Option<&'a str>,
    pub endpoint: Option<&'static str>,
    pub url: Option<&'a str>,
}
