//! Whether the operator can see the CA Secret a profile names, in every namespace whose
//! managed Ingresses the rendering points at it (new-user trial D2: with the Secret
//! unreadable, CA checks were silently off).
//!
//! The operator reads CA Secrets only through watches restricted to the names the chart's
//! `clientCaSecretNames` lists (RBAC `resourceNames`). A Secret missing from the cache is
//! either absent or not readable; one GET tells which (404 or 403). Nothing is requested
//! while every needed Secret is in the cache, so a healthy steady state costs no request.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use super::events::{Finding, FindingKey, MAX_NOTE_BYTES, truncate};
use crate::cluster::ClusterView;
use crate::model::ObjectKey;

/// Reason of the `CaSecretAvailable` condition and of the Event when the Secret cannot be read.
pub const FORBIDDEN: &str = "CaSecretForbidden";
/// Reason of the condition and of the Event when the Secret does not exist.
pub const NOT_FOUND: &str = "CaSecretNotFound";

/// Why the CA Secret of a namespace cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CaSecretProblem {
    /// The API server refused the operator (403): not in `clientCaSecretNames`.
    Forbidden,
    /// The Secret does not exist (404).
    NotFound,
}

impl CaSecretProblem {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Forbidden => FORBIDDEN,
            Self::NotFound => NOT_FOUND,
        }
    }
}

/// One needed CA Secret that cannot be used. Ordered by problem first (refusals before
/// absences), then Secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaSecretIssue {
    pub problem: CaSecretProblem,
    pub secret: ObjectKey,
}

impl CaSecretIssue {
    /// What to tell the user: what is wrong, what it means, how to fix it.
    pub fn message(&self) -> String {
        match self.problem {
            CaSecretProblem::Forbidden => format!(
                "mtls-gate may not read the CA Secret {}: its name is not in the chart's clientCaSecretNames, so CA checks are OFF for it (a missing, empty or non-PEM CA, with which ingress-nginx stops verifying client certificates or refuses every request, is not reported). Add it: helm upgrade ... --set 'clientCaSecretNames={{{}}}'",
                self.secret, self.secret.name
            ),
            CaSecretProblem::NotFound => format!(
                "the CA Secret {} does not exist: the rendered client-auth settings point at it, and ingress-nginx answers every request of the host with 403 while it is missing. Create it with the bank's client-certificate CA under ca.crt",
                self.secret
            ),
        }
    }
}

/// The CA Secrets the managed Ingresses of profile `profile` need (`<namespace>/<ca_secret>`
/// for each namespace holding one) that are not in `view`.
pub fn uncached(view: &ClusterView, profile: &str, ca_secret: &str) -> Vec<ObjectKey> {
    let namespaces: BTreeSet<&str> = view
        .ingresses()
        .filter(|i| i.profile_label.as_deref() == Some(profile))
        .map(|i| i.key.namespace.as_str())
        .collect();
    namespaces
        .into_iter()
        .map(|ns| ObjectKey::new(ns, ca_secret))
        .filter(|key| !view.secrets().any(|s| &s.key == key))
        .collect()
}

/// One Warning Event per managed Ingress of the namespace whose CA Secret has an issue:
/// `kubectl describe ingress` shows it where the settings point at the Secret.
pub fn findings(view: &ClusterView, profile: &str, issues: &[CaSecretIssue]) -> Vec<Finding> {
    let mut out = Vec::new();
    for issue in issues {
        let mut ingresses: Vec<&ObjectKey> = view
            .ingresses()
            .filter(|i| {
                i.profile_label.as_deref() == Some(profile)
                    && i.key.namespace == issue.secret.namespace
            })
            .map(|i| &i.key)
            .collect();
        ingresses.sort();
        for ingress in ingresses {
            out.push(Finding {
                key: FindingKey {
                    ingress: ingress.clone(),
                    reason: issue.problem.reason().to_string(),
                    host: String::new(),
                    path: None,
                    endpoint: Some(issue.secret.to_string()),
                },
                note: truncate(&issue.message(), MAX_NOTE_BYTES),
            });
        }
    }
    out
}

/// Asks the API server about each Secret the cache lacks: 403 and 404 are issues; a Secret
/// that exists is fine (the cache is behind); other errors are logged and assumed fine (the
/// next reconcile asks again).
pub async fn check(client: &Client, missing: &[ObjectKey]) -> Vec<CaSecretIssue> {
    let mut issues = Vec::new();
    for key in missing {
        let api: Api<Secret> = Api::namespaced(client.clone(), &key.namespace);
        let problem = match api.get_metadata_opt(&key.name).await {
            Ok(Some(_)) => continue,
            Ok(None) => CaSecretProblem::NotFound,
            Err(kube::Error::Api(s)) if s.is_forbidden() => CaSecretProblem::Forbidden,
            Err(e) => {
                tracing::warn!(secret = %key, error = %e, "could not check the CA Secret");
                continue;
            }
        };
        issues.push(CaSecretIssue {
            problem,
            secret: key.clone(),
        });
    }
    issues.sort();
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_secret_and_the_fix() {
        let forbidden = CaSecretIssue {
            secret: ObjectKey::new("ob", "bank-ca"),
            problem: CaSecretProblem::Forbidden,
        };
        let m = forbidden.message();
        assert!(
            m.contains("ob/bank-ca") && m.contains("CA checks are OFF"),
            "{m}"
        );
        assert!(m.contains("clientCaSecretNames={bank-ca}"), "{m}");
        let missing = CaSecretIssue {
            problem: CaSecretProblem::NotFound,
            ..forbidden
        };
        assert!(missing.message().contains("does not exist"));
        assert_eq!(missing.problem.reason(), "CaSecretNotFound");
    }

    #[test]
    fn the_condition_names_refusals_first_and_stays_bounded() {
        use crate::controller::status::ca_secret_condition;
        let issue = |ns: &str, problem| CaSecretIssue {
            problem,
            secret: ObjectKey::new(ns, "bank-ca"),
        };
        let mut issues = vec![
            issue("a", CaSecretProblem::NotFound),
            issue("b", CaSecretProblem::NotFound),
            issue("c", CaSecretProblem::NotFound),
            issue("z", CaSecretProblem::Forbidden),
            issue("d", CaSecretProblem::NotFound),
        ];
        issues.sort();
        let c = ca_secret_condition(&issues, Some(4));
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", FORBIDDEN));
        assert!(
            c.message
                .starts_with("mtls-gate may not read the CA Secret z/bank-ca")
        );
        assert!(
            c.message.ends_with("; and 2 more namespace(s)"),
            "{}",
            c.message
        );
        assert_eq!(c.observed_generation, Some(4));
        let ok = ca_secret_condition(&[], Some(4));
        assert_eq!(
            (ok.status.as_str(), ok.reason.as_str()),
            ("True", "Available")
        );
    }
}
