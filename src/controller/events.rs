//! Kubernetes Events for violations and render refusals, on the Ingress concerned.
//!
//! Events are deduplicated per profile by (Ingress, reason, host, path, endpoint): a finding
//! is published once while it persists (a resync does not publish it again) and becomes
//! eligible again after it has disappeared from an evaluation. The set lives in memory, so a
//! new leader publishes each current finding once.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource};

use crate::model::ObjectKey;
use crate::render::Refusal;
use crate::violation::Violation;

/// Longest note the events API accepts.
pub const MAX_NOTE_BYTES: usize = 1024;
/// Longest action the events API accepts.
const MAX_ACTION_BYTES: usize = 128;

/// Reason of refusal Events.
pub const RENDER_REFUSED: &str = "RenderRefused";

/// Identity of one published finding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FindingKey {
    pub ingress: ObjectKey,
    pub reason: String,
    pub host: String,
    pub path: Option<String>,
    pub endpoint: Option<String>,
}

/// One Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub key: FindingKey,
    pub note: String,
}

impl Finding {
    pub fn from_violation(v: &Violation) -> Option<Self> {
        let ingress = v.ingress.clone()?;
        Some(Self {
            key: FindingKey {
                ingress,
                reason: v.code.as_str().to_string(),
                host: v.host.clone(),
                path: v.path.clone(),
                endpoint: v.endpoint.map(str::to_string).or_else(|| v.url.clone()),
            },
            note: v.message.clone(),
        })
    }

    pub fn from_refusal(r: &Refusal) -> Self {
        Self {
            key: FindingKey {
                ingress: r.ingress.clone(),
                reason: RENDER_REFUSED.to_string(),
                host: r.host.clone().unwrap_or_default(),
                path: None,
                // Different refusals of one Ingress are different findings.
                endpoint: Some(r.message.clone()),
            },
            note: r.message.clone(),
        }
    }

    /// The Event's action. It tells findings of the same reason on one Ingress apart
    /// (kube's Recorder folds Events with equal reason and action into one series).
    pub fn action(&self) -> String {
        let mut what = String::from("Evaluate");
        if self.key.reason == RENDER_REFUSED {
            what = String::from("Render");
        }
        if !self.key.host.is_empty() {
            what.push(' ');
            what.push_str(&self.key.host);
        }
        if let Some(p) = &self.key.path {
            what.push_str(p);
        }
        if self.key.reason != RENDER_REFUSED
            && let Some(e) = &self.key.endpoint
        {
            what.push_str(" for ");
            what.push_str(e);
        }
        truncate(&what, MAX_ACTION_BYTES)
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut with "…".
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ellipsis = "…";
    let mut end = max - ellipsis.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &s[..end])
}

/// What has been published per profile.
#[derive(Debug, Default)]
pub struct EventDedup {
    published: Mutex<HashMap<String, HashSet<FindingKey>>>,
}

impl EventDedup {
    /// The findings of `profile`'s latest evaluation that were not published yet. Forgets
    /// published findings that are gone, so they are published again if they come back.
    pub fn fresh(&self, profile: &str, current: &[Finding]) -> Vec<Finding> {
        let mut map = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let published = map.entry(profile.to_string()).or_default();
        let now: HashSet<&FindingKey> = current.iter().map(|f| &f.key).collect();
        published.retain(|k| now.contains(k));
        let mut seen = HashSet::new();
        current
            .iter()
            .filter(|f| !published.contains(&f.key) && seen.insert(&f.key))
            .cloned()
            .collect()
    }

    pub fn mark_published(&self, profile: &str, key: FindingKey) {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(profile.to_string())
            .or_default()
            .insert(key);
    }

    pub fn forget_profile(&self, profile: &str) {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(profile);
    }

    pub fn published_count(&self, profile: &str) -> usize {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(profile)
            .map_or(0, HashSet::len)
    }
}

/// Publishes one finding as a Warning Event regarding the Ingress (looked up for its uid,
/// so `kubectl describe ingress` lists it), related to the profile. A finding about an
/// object that is not an Ingress (a Gateway, an HTTPRoute, an IngressRoute: the message
/// names it) is published regarding the profile, so it is published once, not looked up
/// again on every reconcile.
pub async fn publish(
    client: &Client,
    recorder: &Recorder,
    profile: &ObjectReference,
    finding: &Finding,
) -> Result<(), kube::Error> {
    let api: Api<Ingress> = Api::namespaced(client.clone(), &finding.key.ingress.namespace);
    let (regarding, secondary) = match api.get_opt(&finding.key.ingress.name).await? {
        Some(ingress) => (ingress.object_ref(&()), Some(profile.clone())),
        None => (profile.clone(), None),
    };
    recorder
        .publish(
            &Event {
                type_: EventType::Warning,
                reason: finding.key.reason.clone(),
                note: Some(truncate(&finding.note, MAX_NOTE_BYTES)),
                action: finding.action(),
                secondary,
            },
            &regarding,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(path: &str) -> Finding {
        Finding {
            key: FindingKey {
                ingress: ObjectKey::new("ob", "api"),
                reason: "MtlsNotRequired".into(),
                host: "api.bank.example".into(),
                path: Some(path.into()),
                endpoint: Some("/accounts".into()),
            },
            note: "n".into(),
        }
    }

    #[test]
    fn dedup_publishes_once_and_again_after_the_finding_disappeared() {
        let d = EventDedup::default();
        let a = finding("/a");
        let b = finding("/b");
        let fresh = d.fresh("p", &[a.clone(), b.clone()]);
        assert_eq!(fresh.len(), 2);
        d.mark_published("p", a.key.clone());
        // b failed to publish: still fresh; a is not.
        assert_eq!(d.fresh("p", &[a.clone(), b.clone()]), vec![b.clone()]);
        d.mark_published("p", b.key.clone());
        assert!(d.fresh("p", &[a.clone(), b.clone()]).is_empty());
        // a disappears, then comes back: published again.
        assert!(d.fresh("p", std::slice::from_ref(&b)).is_empty());
        assert_eq!(d.fresh("p", &[a.clone(), b.clone()]), vec![a.clone()]);
        d.forget_profile("p");
        assert_eq!(d.published_count("p"), 0);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "é".repeat(600);
        let t = truncate(&s, MAX_NOTE_BYTES);
        assert!(t.len() <= MAX_NOTE_BYTES);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short", 10), "short");
    }

    #[test]
    fn actions_tell_findings_apart_and_fit() {
        assert_eq!(
            finding("/a").action(),
            "Evaluate api.bank.example/a for /accounts"
        );
        let mut long = finding(&"/x".repeat(200));
        long.key.endpoint = None;
        assert!(long.action().len() <= MAX_ACTION_BYTES);
    }
}
