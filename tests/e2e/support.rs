//! Shared by the e2e scenarios: the cluster given by the environment, per-test fixtures
//! (namespace, CA Secret, profile) with cleanup, polling, kubectl, the out-of-cluster
//! replicas of `scripts/e2e-cluster.sh` and its audit log.

#![allow(dead_code)] // each scenario uses a different part

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, ResourceExt};
use mtls_gate::profile::ApiProviderProfile;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Field manager of everything the suite writes.
pub const MANAGER: &str = "mtls-gate-e2e";
/// Name of the client CA Secret (the chart's `clientCaSecretNames` must list it).
pub const CA_SECRET: &str = "e2e-client-ca";
pub const VERIFY: &str = "nginx.ingress.kubernetes.io/auth-tls-verify-client";
pub const VERIFY_DEPTH: &str = "nginx.ingress.kubernetes.io/auth-tls-verify-depth";
pub const CA_REF: &str = "nginx.ingress.kubernetes.io/auth-tls-secret";
pub const RENDERED_BY: &str = "mtls-gate.io/rendered-by";
pub const PROFILE_LABEL: &str = "mtls-gate.io/profile";
/// Field manager of the operator's server-side applies (src/controller/reconcile.rs).
pub const OPERATOR_MANAGER: &str = "mtls-gate";
/// Release namespace and Lease of the operator (`helm install mtls-gate -n mtls-gate`).
pub const RELEASE_NS: &str = "mtls-gate";
pub const LEASE: &str = "mtls-gate-leader";
/// The chart's default `leaderElection.leaseDuration`.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

/// The cluster under test.
#[derive(Clone)]
pub struct Env {
    pub client: Client,
    pub kubeconfig: String,
    /// Set when `scripts/e2e-cluster.sh up` runs the operator out of cluster.
    pub local: Option<Local>,
}

/// The out-of-cluster operator and API server of `scripts/e2e-cluster.sh`.
#[derive(Clone)]
pub struct Local {
    pub dir: PathBuf,
    pub audit_log: PathBuf,
}

/// Probe ports of the two replicas (scripts/e2e-cluster.sh).
pub const PROBE_PORTS: [u16; 2] = [18081, 18082];

/// The cluster named by `MTLS_GATE_E2E_KUBECONFIG`, with the CRD applied and Established.
/// `None` (after saying why) when the variable is unset: the suite needs a cluster.
pub async fn env() -> Option<Env> {
    let Ok(kubeconfig) = std::env::var("MTLS_GATE_E2E_KUBECONFIG") else {
        println!(
            "skipped: MTLS_GATE_E2E_KUBECONFIG not set (run `make e2e`, or see the README's \
             \"End-to-end tests\" section)"
        );
        return None;
    };
    let kc = Kubeconfig::read_from(&kubeconfig).expect("readable MTLS_GATE_E2E_KUBECONFIG");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("usable kubeconfig");
    let client = Client::try_from(config).expect("client");
    let local = std::env::var("MTLS_GATE_E2E_LOCAL").ok().map(|dir| Local {
        audit_log: std::env::var("MTLS_GATE_E2E_AUDIT_LOG")
            .map(PathBuf::from)
            .unwrap_or_else(|_| Path::new(&dir).join("audit.log")),
        dir: PathBuf::from(dir),
    });
    let env = Env {
        client,
        kubeconfig,
        local,
    };
    apply_crd(&env.client).await;
    if env.local.is_some() {
        env.replicas_ready().await;
    }
    Some(env)
}

async fn apply_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/apiproviderprofiles.yaml"
    ))
    .expect("crds/apiproviderprofiles.yaml");
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("CRD YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect();
    for crd in docs {
        let name = crd["metadata"]["name"]
            .as_str()
            .expect("CRD name")
            .to_string();
        crds.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply the CRD");
        eventually("CRD established", 60, || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await.ok()?;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
    }
}

/// Polls `check` every second until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {secs} s waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A short random suffix for unique names.
pub fn suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{:06x}",
        (nanos ^ (u128::from(std::process::id()) << 20)) % 0xff_ffff
    )
}

/// A self-signed CA certificate (PEM), as a bank's client-certificate trust anchor.
pub fn ca_pem() -> String {
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mtls-gate e2e client CA");
    let key = rcgen::KeyPair::generate().expect("key");
    params.self_signed(&key).expect("CA").pem()
}

/// An Ingress of class nginx with TLS for `host` and the given (path, pathType) routes.
pub fn ingress(
    ns: &str,
    name: &str,
    host: &str,
    paths: &[(&str, &str)],
    profile: Option<&str>,
) -> Ingress {
    let paths: Vec<Value> = paths
        .iter()
        .map(|(p, t)| {
            json!({"path": p, "pathType": t,
                   "backend": {"service": {"name": "backend", "port": {"number": 443}}}})
        })
        .collect();
    let mut v = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ingressClassName": "nginx",
                 "tls": [{"hosts": [host], "secretName": format!("{name}-tls")}],
                 "rules": [{"host": host, "http": {"paths": paths}}]}
    });
    if let Some(p) = profile {
        v["metadata"]["labels"] = json!({PROFILE_LABEL: p});
    }
    serde_json::from_value(v).expect("Ingress")
}

pub fn annotation(ing: &Ingress, key: &str) -> Option<String> {
    ing.annotations().get(key).cloned()
}

/// One scenario's objects: a namespace with the client CA Secret, and a split-host profile
/// (public authorisation host, MTLS authorisation host, MTLS API host).
#[derive(Clone)]
pub struct Fixture {
    pub env: Env,
    pub ns: String,
    pub profile: String,
    pub auth_host: String,
    pub mtls_auth_host: String,
    pub api_host: String,
}

impl Fixture {
    pub fn ingresses(&self) -> Api<Ingress> {
        Api::namespaced(self.env.client.clone(), &self.ns)
    }

    pub fn profiles(&self) -> Api<ApiProviderProfile> {
        Api::all(self.env.client.clone())
    }

    /// The profile's spec with the given enforcement (Deny, Warn or Audit).
    pub fn profile_json(&self, enforcement: &str) -> Value {
        json!({
            "apiVersion": "mtls-gate.io/v1alpha1", "kind": "ApiProviderProfile",
            "metadata": {"name": self.profile},
            "spec": {
                "issuer": format!("https://{}", self.auth_host),
                "apiBaseUrls": [format!("https://{}/open-banking-nz/v3.0", self.api_host)],
                "authorizationServer": {
                    "tokenEndpoint": format!("https://{}/token", self.mtls_auth_host),
                    "pushedAuthorizationRequestEndpoint": format!("https://{}/par", self.mtls_auth_host),
                    "backchannelAuthenticationEndpoint": format!("https://{}/bc-authorize", self.mtls_auth_host),
                    "introspectionEndpoint": format!("https://{}/introspect", self.mtls_auth_host),
                    "revocationEndpoint": format!("https://{}/revoke", self.mtls_auth_host),
                    "userinfoEndpoint": format!("https://{}/userinfo", self.mtls_auth_host)
                },
                "clientCertificate": {"caSecretName": CA_SECRET},
                "ingressController": "ingress-nginx",
                "ingressClassName": "nginx",
                "enforcement": enforcement
            }
        })
    }

    pub async fn apply_profile(&self, enforcement: &str) {
        self.apply_profile_json(self.profile_json(enforcement))
            .await;
    }

    /// Applies a profile built from [`Self::profile_json`] and changed by the scenario.
    pub async fn apply_profile_json(&self, profile: Value) {
        self.profiles()
            .patch(
                &self.profile,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(profile),
            )
            .await
            .expect("apply the profile");
    }

    /// The public authorisation host's Ingress (no client certificate).
    pub fn public_ingress(&self) -> Ingress {
        ingress(
            &self.ns,
            "public",
            &self.auth_host,
            &[
                ("/authorize", "Exact"),
                ("/jwks", "Exact"),
                ("/.well-known/openid-configuration", "Exact"),
            ],
            None,
        )
    }

    /// The two managed Ingresses: MTLS authorisation host and API host.
    pub fn managed_ingresses(&self) -> [Ingress; 2] {
        [
            ingress(
                &self.ns,
                "mtls-auth",
                &self.mtls_auth_host,
                &[("/", "Prefix")],
                Some(&self.profile),
            ),
            ingress(
                &self.ns,
                "api",
                &self.api_host,
                &[("/open-banking-nz/v3.0", "Prefix")],
                Some(&self.profile),
            ),
        ]
    }

    pub async fn create(&self, ing: &Ingress) {
        self.ingresses()
            .create(&PostParams::default(), ing)
            .await
            .unwrap_or_else(|e| panic!("create Ingress {}: {e}", ing.name_any()));
    }

    /// Waits until Ingress `name` carries the rendered client-auth settings.
    pub async fn wait_rendered(&self, name: &str) -> Ingress {
        let ingresses = self.ingresses();
        let profile = self.profile.clone();
        eventually(&format!("Ingress {name} rendered"), 90, || {
            let ingresses = ingresses.clone();
            let profile = profile.clone();
            async move {
                let ing = ingresses.get(name).await.ok()?;
                (annotation(&ing, VERIFY).as_deref() == Some("on")
                    && annotation(&ing, RENDERED_BY).as_deref() == Some(profile.as_str()))
                .then_some(ing)
            }
        })
        .await
    }

    /// Waits until the profile's status is about its current generation and `accept`s it.
    pub async fn wait_status(
        &self,
        what: &str,
        accept: impl Fn(&mtls_gate::profile::ApiProviderProfileStatus) -> bool,
    ) -> ApiProviderProfile {
        let profiles = self.profiles();
        let name = self.profile.clone();
        let accept = &accept;
        eventually(what, 90, || {
            let profiles = profiles.clone();
            let name = name.clone();
            async move {
                let p = profiles.get(&name).await.ok()?;
                let s = p.status.as_ref()?;
                (s.observed_generation == p.metadata.generation && accept(s)).then_some(p.clone())
            }
        })
        .await
    }
}

pub fn condition(s: &mtls_gate::profile::ApiProviderProfileStatus, type_: &str) -> Option<String> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

/// Runs `scenario` on a fresh fixture (namespace `mtls-gate-e2e-<tag>-<random>` with the CA
/// Secret; the profile is not created), then deletes the profile and the namespace whatever
/// the outcome, and re-raises the scenario's panic. Fails if the API server refused any
/// request of the operator meanwhile (403 in the audit log).
pub async fn with_fixture<F, Fut>(env: Env, tag: &str, scenario: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_fixture_allowing(env, tag, |_| false, scenario).await;
}

/// [`with_fixture`] for a scenario that provokes refusals on purpose: the operator's 403s
/// that `expected` accepts (an audit event) do not fail it.
pub async fn with_fixture_allowing<F, Fut>(
    env: Env,
    tag: &str,
    expected: impl Fn(&Value) -> bool,
    scenario: F,
) where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let s = suffix();
    let fx = Fixture {
        env: env.clone(),
        ns: format!("mtls-gate-e2e-{tag}-{s}"),
        profile: format!("e2e-{tag}-{s}"),
        auth_host: format!("auth.{tag}-{s}.example"),
        mtls_auth_host: format!("mtls-auth.{tag}-{s}.example"),
        api_host: format!("mtls-api.{tag}-{s}.example"),
    };
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": fx.ns}})).expect("Namespace"),
        )
        .await
        .expect("create the namespace");
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &fx.ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": CA_SECRET},
                "stringData": {"ca.crt": ca_pem()}}))
            .expect("Secret"),
        )
        .await
        .expect("create the CA Secret");
    let audit_mark = env.local.as_ref().map(Local::audit_mark);
    let outcome = tokio::spawn(scenario(fx.clone())).await;
    if let Some(local) = &env.local
        && outcome.is_err()
    {
        for r in 1..=2 {
            let log = local.dir.join(format!("replica-{r}.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            println!("--- last lines of {}:", log.display());
            for line in tail.iter().rev() {
                println!("{line}");
            }
        }
    }
    // Cleanup: the profile first (its finalizer needs the operator), then the namespace.
    // Waiting for the profile to go means its hosts are no profile hosts any more when the
    // namespace's Ingresses are deleted (else the webhook could refuse those deletions).
    let profiles = fx.profiles();
    let _ = profiles.delete(&fx.profile, &DeleteParams::default()).await;
    for _ in 0..120 {
        if matches!(profiles.get_opt(&fx.profile).await, Ok(None)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = namespaces.delete(&fx.ns, &DeleteParams::default()).await;
    // The replicas run with the chart ServiceAccount's token: the chart's RBAC must have
    // allowed every request they made meanwhile (checked first: a refusal explains a
    // scenario's failure).
    let forbidden = match (&env.local, audit_mark) {
        (Some(local), Some(mark)) => {
            let mut events = local.audit_since(mark);
            events.retain(|e| !expected(e));
            operator_forbidden(&events)
        }
        _ => Vec::new(),
    };
    if !forbidden.is_empty() {
        println!("the chart's RBAC refused the operator: {forbidden:?}");
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    assert!(
        forbidden.is_empty(),
        "the chart's RBAC refused the operator: {forbidden:?}"
    );
}

/// Requests of the operator that the API server refused with 403, as "verb resource
/// namespace/name" lines.
pub fn operator_forbidden(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["user"]["username"] == OPERATOR_USER)
        .filter(|e| e["responseStatus"]["code"] == 403)
        .map(|e| {
            let r = &e["objectRef"];
            format!(
                "{} {}/{} {}/{}",
                e["verb"].as_str().unwrap_or("?"),
                r["apiGroup"].as_str().unwrap_or(""),
                r["resource"].as_str().unwrap_or("?"),
                r["namespace"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Runs kubectl with the suite's kubeconfig; `stdin` is piped in when given.
pub fn kubectl(env: &Env, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write kubectl stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("kubectl output")
}

// ---- The local operator: replicas, metrics, audit log --------------------------------------

impl Env {
    /// The local setup, or `None` after printing why `what` is skipped.
    pub fn local_or_skip(&self, what: &str) -> Option<Local> {
        if self.local.is_none() {
            println!(
                "skipped: {what} needs the out-of-cluster replicas of scripts/e2e-cluster.sh \
                 (MTLS_GATE_E2E_LOCAL)"
            );
        }
        self.local.clone()
    }

    /// The current holder of the leader Lease.
    pub async fn leader(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), RELEASE_NS);
        leases.get(LEASE).await.ok()?.spec?.holder_identity
    }

    /// Waits until both local replicas answer /readyz.
    pub async fn replicas_ready(&self) {
        for port in PROBE_PORTS {
            eventually(&format!("replica on :{port} ready"), 180, || async move {
                http_get(port, "/readyz")
                    .await
                    .filter(|(status, _)| *status == 200)
                    .map(|_| ())
            })
            .await;
        }
    }
}

impl Local {
    /// `scripts/e2e-cluster.sh replica ACTION N` (start, stop = SIGTERM, kill = SIGKILL).
    pub fn replica(&self, action: &str, n: u8) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/e2e-cluster.sh");
        let status = Command::new(script)
            .args(["replica", action, &n.to_string()])
            .env("E2E_CLUSTER_DIR", &self.dir)
            .status()
            .expect("run scripts/e2e-cluster.sh");
        assert!(
            status.success(),
            "e2e-cluster.sh replica {action} {n} failed"
        );
    }

    /// PID of replica `n`, from the script's PID file.
    pub fn replica_pid(&self, n: u8) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(format!("replica-{n}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Resident set size of replica `n` in KiB (/proc/PID/status VmRSS).
    pub fn replica_rss_kib(&self, n: u8) -> Option<u64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.replica_pid(n)?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// Current length of the audit log: entries after it are "from now on".
    pub fn audit_mark(&self) -> u64 {
        std::fs::metadata(&self.audit_log)
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Audit events (ResponseComplete stage) written since `mark`.
    pub fn audit_since(&self, mark: u64) -> Vec<Value> {
        let text = std::fs::read(&self.audit_log).unwrap_or_default();
        let start = usize::try_from(mark).unwrap_or(usize::MAX).min(text.len());
        String::from_utf8_lossy(&text[start..])
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete")
            .collect()
    }
}

/// The operator's ServiceAccount as the API server names it.
pub const OPERATOR_USER: &str = "system:serviceaccount:mtls-gate:mtls-gate";

/// Writes by the operator in `events` other than its leader Lease renewals and Events,
/// as "verb resource namespace/name" lines (subresource appended).
pub fn operator_writes(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["user"]["username"] == OPERATOR_USER)
        .filter(|e| {
            let verb = e["verb"].as_str().unwrap_or("");
            ["create", "update", "patch", "delete", "deletecollection"].contains(&verb)
        })
        .filter(|e| {
            let resource = e["objectRef"]["resource"].as_str().unwrap_or("");
            resource != "leases" && resource != "events"
        })
        .filter(|e| {
            e["responseStatus"]["code"]
                .as_u64()
                .is_some_and(|c| c < 300)
        })
        .map(|e| {
            let r = &e["objectRef"];
            format!(
                "{} {}{} {}/{}",
                e["verb"].as_str().unwrap_or("?"),
                r["resource"].as_str().unwrap_or("?"),
                r["subresource"]
                    .as_str()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default(),
                r["namespace"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Plain HTTP GET on 127.0.0.1:`port` (probes, metrics): status and body.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .ok()
        .flatten()
}

/// Sum over both local replicas of the Prometheus samples whose line starts with `series`
/// (metric name and, optionally, the beginning of its label set).
pub async fn metric_sum(series: &str) -> f64 {
    let mut total = 0.0;
    for port in PROBE_PORTS {
        if let Some((200, body)) = http_get(port, "/metrics").await {
            total += samples(&body, series).iter().sum::<f64>();
        }
    }
    total
}

/// Values of the samples in a Prometheus text exposition whose series contains all `parts`.
pub fn samples(body: &str, series: &str) -> Vec<f64> {
    let parts: Vec<&str> = series.split('|').collect();
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect()
}

// ---- Policy reports ------------------------------------------------------------------------

/// `ApiResource` of a wgpolicyk8s.io/v1alpha2 kind (PolicyReport, ClusterPolicyReport).
pub fn policy_report_resource(kind: &str) -> kube::api::ApiResource {
    kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "wgpolicyk8s.io",
        "v1alpha2",
        kind,
    ))
}

/// The wgpolicyk8s.io/v1alpha2 PolicyReport or ClusterPolicyReport CRD, as a cluster that
/// runs Kyverno or Policy Reporter has it. Written here from the published schema (Kubernetes
/// Policy WG, kubernetes-sigs/wg-policy-prototypes `policy-report/crd/v1alpha2`): the same
/// fields, types, enums (`result`, `severity`) and required keys, so the API server prunes
/// and validates what mtls-gate writes as it would there. Descriptions and printer columns
/// are left out; the label selectors (`scopeSelector`, `resourceSelector`, unused by
/// mtls-gate) are kept as objects without a schema.
pub fn policy_report_crd(kind: &str, plural: &str, scope: &str) -> Value {
    let string = json!({"type": "string"});
    let selector = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let object_ref = json!({"type": "object", "properties": {
        "apiVersion": string, "fieldPath": string, "kind": string, "name": string,
        "namespace": string, "resourceVersion": string, "uid": string}});
    let result = json!({"type": "object", "required": ["policy"], "properties": {
        "category": string,
        "message": string,
        "policy": string,
        "properties": {"type": "object", "additionalProperties": string},
        "resourceSelector": selector,
        "resources": {"type": "array", "items": object_ref},
        "result": {"type": "string", "enum": ["pass", "fail", "warn", "error", "skip"]},
        "rule": string,
        "scored": {"type": "boolean"},
        "severity": {"type": "string", "enum": ["high", "low", "medium"]},
        "source": string,
        "timestamp": {"type": "object", "required": ["nanos", "seconds"], "properties": {
            "nanos": {"type": "integer", "format": "int32"},
            "seconds": {"type": "integer", "format": "int64"}}}
    }});
    let count = json!({"type": "integer"});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.wgpolicyk8s.io")},
        "spec": {
            "group": "wgpolicyk8s.io",
            "names": {"kind": kind, "listKind": format!("{kind}List"), "plural": plural,
                      "singular": kind.to_lowercase()},
            "scope": scope,
            "versions": [{
                "name": "v1alpha2", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "apiVersion": string, "kind": string, "metadata": {"type": "object"},
                    "results": {"type": "array", "items": result},
                    "scope": object_ref,
                    "scopeSelector": selector,
                    "summary": {"type": "object", "properties": {
                        "error": count, "fail": count, "pass": count, "skip": count,
                        "warn": count}}
                }}}
            }]
        }
    })
}

/// Installs the two policy-report CRDs (server-side apply) and waits until both are served.
pub async fn install_policy_report_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (kind, plural, scope) in [
        ("PolicyReport", "policyreports", "Namespaced"),
        ("ClusterPolicyReport", "clusterpolicyreports", "Cluster"),
    ] {
        let crd = policy_report_crd(kind, plural, scope);
        let name = format!("{plural}.wgpolicyk8s.io");
        crds.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("apply the {kind} CRD: {e}"));
        eventually(&format!("{kind} CRD established"), 60, || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await.ok()?;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
    }
}

// ---- Self-managed certificates ---------------------------------------------------------------

/// The Secret the leader keeps the self-managed webhook certificates in (chart default).
pub const CERT_SECRET: &str = "mtls-gate-webhook-tls";

/// The serving certificate's notAfter (Unix seconds) each local replica reports
/// (`mtls_gate_certificate_not_after_seconds`), `None` for one not answering.
pub async fn served_expiries() -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for port in PROBE_PORTS {
        let body = http_get(port, "/metrics").await.map(|(_, b)| b);
        out.push(body.and_then(|b| {
            samples(&b, "mtls_gate_certificate_not_after_seconds")
                .first()
                .map(|v| *v as i64)
        }));
    }
    out
}
