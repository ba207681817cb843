//! The controller against a mock Kubernetes API (the tower-test pattern of kube-rs's
//! controller-rs `fixtures.rs`): every request the reconciler sends is checked (method,
//! path, query, content type, body) and answered by the test, and a scenario fails if the
//! controller sends anything it did not expect.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;
use kube::{Client, ResourceExt};
use mtls_gate::cluster::{SyncedFlag, shared_view};
use mtls_gate::controller::caches::{CacheContext, RENDERED_HASH, Triggers};
use mtls_gate::controller::leader::{Leadership, LeaseConfig, LeaseElector};
use mtls_gate::controller::reconcile::{Context, RetryPolicy, error_policy, reconcile};
use mtls_gate::controller::{ControllerMetrics, Error, RENDERED_BY};
use mtls_gate::dialect::traefik;
use mtls_gate::model::PROFILE_LABEL;
use mtls_gate::profile::ApiProviderProfile;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

// ---- Mock API server --------------------------------------------------------------------

type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// One request as the API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: String,
    body: Value,
}

struct ApiServer {
    handle: ApiHandle,
    seen: Vec<Seen>,
}

impl ApiServer {
    async fn next(&mut self) -> (Seen, SendResponse<Response<Body>>) {
        let (req, send) = tokio::time::timeout(Duration::from_secs(10), self.handle.next_request())
            .await
            .expect("the controller sent no request within 10 s")
            .expect("the client was dropped");
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                // Apply patches are sent as JSON inside a YAML content type.
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        let query = parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .filter(|(k, _)| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let seen = Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query,
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
            body,
        };
        self.seen.push(seen.clone());
        (seen, send)
    }

    /// The next request, which must have this method and path.
    async fn expect(&mut self, method: &str, path: &str) -> (Seen, SendResponse<Response<Body>>) {
        let (seen, send) = self.next().await;
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            (method, path),
            "unexpected request: {seen:#?}"
        );
        (seen, send)
    }

    /// No request arrives for a while.
    async fn assert_idle(&mut self) {
        if let Ok(Some((req, _))) =
            tokio::time::timeout(Duration::from_millis(200), self.handle.next_request()).await
        {
            panic!("unexpected request: {} {}", req.method(), req.uri());
        }
    }

    fn writes(&self) -> usize {
        self.seen.iter().filter(|s| s.method != "GET").count()
    }
}

fn reply(send: SendResponse<Response<Body>>, body: &Value) {
    send.send_response(
        Response::builder()
            .status(StatusCode::OK)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn reply_status(send: SendResponse<Response<Body>>, code: u16, reason: &str) {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("mock: {reason}"), "reason": reason, "code": code});
    send.send_response(
        Response::builder()
            .status(StatusCode::from_u16(code).unwrap())
            .body(Body::from(serde_json::to_vec(&status).unwrap()))
            .unwrap(),
    );
}

// ---- Fixtures ---------------------------------------------------------------------------

fn yaml_docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

const NS: &str = "open-banking";
const PROFILE: &str = "example-bank";
const CA: &str = "open-banking-client-ca";

fn example_profile() -> ApiProviderProfile {
    let mut v = yaml_docs("examples/nginx-split-host/profile.yaml").remove(0);
    // The mock API server serves no ConfigMaps (tests/controller_config.rs and the e2e
    // suite cover the controller ConfigMap).
    v["spec"]
        .as_object_mut()
        .unwrap()
        .remove("controllerConfigMap");
    v["metadata"]["uid"] = json!("0b0b0b0b-1111-2222-3333-444444444444");
    v["metadata"]["generation"] = json!(1);
    v["metadata"]["resourceVersion"] = json!("100");
    v["metadata"]["finalizers"] = json!(["mtls-gate.io/cleanup"]);
    serde_json::from_value(v).unwrap()
}

/// The split-host example's Ingresses; the managed ones without their client-auth
/// annotations (the controller has to render them).
fn example_ingresses() -> Vec<Value> {
    yaml_docs("examples/nginx-split-host/ingresses.yaml")
        .into_iter()
        .map(|mut v| {
            let name = v["metadata"]["name"].as_str().unwrap().to_string();
            v["metadata"]["uid"] = json!(format!("uid-{name}"));
            v["metadata"]["resourceVersion"] = json!("1");
            if v["metadata"]["labels"][PROFILE_LABEL].is_string() {
                v["metadata"].as_object_mut().unwrap().remove("annotations");
            }
            v
        })
        .collect()
}

struct Fixture {
    ctx: Arc<Context>,
    caches: Arc<CacheContext>,
    api: ApiServer,
    /// The cluster's Ingresses, as the API server would return them.
    ingresses: BTreeMap<String, Value>,
    _triggers: (
        mpsc::UnboundedReceiver<ObjectRef<ApiProviderProfile>>,
        mpsc::UnboundedReceiver<()>,
    ),
}

impl Fixture {
    fn new(profile: &ApiProviderProfile, ingresses: Vec<Value>, leader: bool) -> Self {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (one, one_rx) = mpsc::unbounded();
        let (all, all_rx) = mpsc::unbounded();
        let caches = Arc::new(CacheContext::new(
            shared_view(),
            SyncedFlag::default(),
            Triggers { one, all },
        ));
        caches.on_profile_event(&Event::Init);
        caches.on_profile_event(&Event::InitApply(profile.clone()));
        caches.on_profile_event(&Event::InitDone);
        caches.on_ingress_event(Event::Init);
        for i in &ingresses {
            caches.on_ingress_event(Event::InitApply(serde_json::from_value(i.clone()).unwrap()));
        }
        caches.on_ingress_event(Event::InitDone);
        caches.on_ingress_class_event(Event::Init);
        caches.on_ingress_class_event(Event::InitDone);
        // Traefik CRDs present, no objects yet.
        for kind in traefik::KINDS {
            caches.on_object_event(kind, Event::Init);
            caches.on_object_event(kind, Event::InitDone);
        }
        // No other controller's CRDs.
        for (_, _, kind) in mtls_gate::dialect::owned_kinds() {
            if !traefik::KINDS.contains(kind) {
                caches.kind_absent(*kind);
            }
        }
        let secret: Secret =
            serde_json::from_value(yaml_docs("examples/nginx-split-host/client-ca.yaml").remove(0))
                .unwrap();
        caches.secret_watch_started(CA);
        caches.on_secret_event(CA, Event::Init);
        caches.on_secret_event(CA, Event::InitApply(secret));
        caches.on_secret_event(CA, Event::InitDone);
        let mut ctx = Context::new(
            client,
            caches.clone(),
            Leadership::fixed(leader),
            Arc::new(ControllerMetrics::unregistered()),
            "mtls-gate-test-0",
            Duration::from_secs(300),
        );
        ctx.retry = RetryPolicy {
            attempts: 4,
            delay: Duration::from_millis(1),
        };
        Fixture {
            ctx: Arc::new(ctx),
            caches,
            api: ApiServer {
                handle,
                seen: Vec::new(),
            },
            ingresses: ingresses
                .into_iter()
                .map(|v| (v["metadata"]["name"].as_str().unwrap().to_string(), v))
                .collect(),
            _triggers: (one_rx, all_rx),
        }
    }

    fn start(
        &self,
        profile: &ApiProviderProfile,
    ) -> tokio::task::JoinHandle<Result<Action, Error>> {
        tokio::spawn(reconcile(Arc::new(profile.clone()), self.ctx.clone()))
    }

    /// What the API server does with a server-side apply of an Ingress by mtls-gate: the
    /// fields mtls-gate owned before and the apply leaves out are removed, the others set.
    /// Here mtls-gate owned the annotations it applied last time (tracked per object).
    fn apply_ingress(&mut self, name: &str, body: &Value, owned_before: &[String]) -> Value {
        let obj = self.ingresses.get_mut(name).expect("known Ingress");
        let annotations = obj["metadata"]
            .as_object_mut()
            .unwrap()
            .entry("annotations")
            .or_insert(json!({}));
        let map = annotations.as_object_mut().unwrap();
        for k in owned_before {
            map.remove(k);
        }
        if let Some(new) = body["metadata"]["annotations"].as_object() {
            for (k, v) in new {
                map.insert(k.clone(), v.clone());
            }
        }
        let rv: u64 = obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        obj["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
        obj.clone()
    }

    /// Feeds the API server's current Ingress to the cache, as its watch would.
    fn watch_ingress(&self, name: &str) {
        self.caches.on_ingress_event(Event::Apply(
            serde_json::from_value(self.ingresses[name].clone()).unwrap(),
        ));
    }

    fn owned_by_mtls_gate(&self, name: &str) -> Vec<String> {
        self.ingresses[name]["metadata"]["annotations"]
            .as_object()
            .map(|m| {
                m.keys()
                    .filter(|k| {
                        k.starts_with("nginx.ingress.kubernetes.io/auth-") || *k == RENDERED_BY
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn ingress_path(name: &str) -> String {
    format!("/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses/{name}")
}

const STATUS_PATH: &str = "/apis/mtls-gate.io/v1alpha1/apiproviderprofiles/example-bank/status";
const PROFILE_PATH: &str = "/apis/mtls-gate.io/v1alpha1/apiproviderprofiles/example-bank";

fn assert_ssa(seen: &Seen) {
    assert_eq!(seen.method, "PATCH");
    assert_eq!(
        seen.query.get("fieldManager").map(String::as_str),
        Some("mtls-gate"),
        "{seen:?}"
    );
    assert_eq!(seen.query.get("force").map(String::as_str), Some("true"));
    assert_eq!(seen.content_type, "application/apply-patch+yaml");
}

fn rendered_nginx(depth: &str) -> Value {
    json!({
        "nginx.ingress.kubernetes.io/auth-tls-secret": format!("{NS}/{CA}"),
        "nginx.ingress.kubernetes.io/auth-tls-verify-client": "on",
        "nginx.ingress.kubernetes.io/auth-tls-verify-depth": depth,
        "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream": "true",
        RENDERED_BY: PROFILE,
    })
}

/// Runs the first render of the split-host example and returns the status it wrote.
async fn first_render(f: &mut Fixture, profile: &ApiProviderProfile) -> Value {
    let task = f.start(profile);
    for name in ["authorization-server-mtls", "open-banking-apis"] {
        let (seen, send) = f.api.expect("PATCH", &ingress_path(name)).await;
        assert_ssa(&seen);
        assert_eq!(
            seen.body,
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": name, "namespace": NS, "annotations": rendered_nginx("2")}
            }),
            "the apply carries only identity and the owned annotations"
        );
        let owned = f.owned_by_mtls_gate(name);
        let after = f.apply_ingress(name, &seen.body, &owned);
        reply(send, &after);
    }
    let (seen, send) = f.api.expect("PATCH", STATUS_PATH).await;
    assert_eq!(seen.content_type, "application/merge-patch+json");
    reply(send, &serde_json::to_value(profile).unwrap());
    let action = task.await.unwrap().expect("reconcile succeeds");
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    f.api.assert_idle().await;
    seen.body["status"].clone()
}

fn with_status(profile: &ApiProviderProfile, status: &Value) -> ApiProviderProfile {
    let mut p = profile.clone();
    p.status = Some(serde_json::from_value(status.clone()).unwrap());
    p
}

// ---- Scenarios --------------------------------------------------------------------------

#[tokio::test]
async fn first_render_applies_only_owned_annotations_then_writes_status() {
    let profile = example_profile();
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let status = first_render(&mut f, &profile).await;

    // Status content.
    assert_eq!(status["observedGeneration"], 1);
    let conditions = status["conditions"].as_array().unwrap();
    let ready = conditions.iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["reason"], "Reconciled");
    assert_eq!(ready["observedGeneration"], 1);
    assert!(ready["lastTransitionTime"].is_string());
    let compliant = conditions
        .iter()
        .find(|c| c["type"] == "Compliant")
        .unwrap();
    assert_eq!(compliant["status"], "True", "{status:#}");
    assert_eq!(compliant["reason"], "NoViolations");
    assert_eq!(status["violations"], 0);
    assert_eq!(status["managedIngresses"], 2);
    assert!(status.get("refusals").is_none());
    let total = status["endpointsTotal"].as_i64().unwrap();
    assert!(
        total >= 43,
        "every table row resolves at least once: {total}"
    );
    assert_eq!(
        status["endpointsServed"],
        format!(
            "{}/{total}",
            status["endpointsServed"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
        )
    );
    // The auditor's view of one endpoint: URL, scheme, serving Ingress and path, client auth.
    let coverage = status["coverage"].as_array().unwrap();
    let token = coverage
        .iter()
        .find(|c| c["endpoint"] == "/token")
        .expect("/token in coverage");
    assert_eq!(token["url"], "https://mtls-auth.bank.example/token");
    assert_eq!(token["scheme"], "MTLS");
    assert_eq!(token["served"], true);
    assert_eq!(token["compliant"], true);
    assert!(token.get("profile").is_none(), "the profile is implied");
    let route = &token["routes"][0];
    assert_eq!(route["ingress"], "open-banking/authorization-server-mtls");
    assert_eq!(route["path"], "/");
    assert_eq!(route["pathType"], "Prefix");
    assert_eq!(route["clientAuth"], "required");
    assert_eq!(route["compliant"], true);
    let authorize = coverage
        .iter()
        .find(|c| c["endpoint"] == "/authorize")
        .unwrap();
    assert_eq!(authorize["scheme"], "TLS");
    assert_eq!(authorize["routes"][0]["clientAuth"], "none");
    assert_eq!(
        authorize["routes"][0]["ingress"],
        "open-banking/authorization-server-public"
    );

    // Metrics.
    let m = &f.ctx.metrics;
    assert_eq!(m.writes("Ingress", "apply"), 2);
    assert_eq!(m.writes("ApiProviderProfile", "patch_status"), 1);
    assert_eq!(f.api.writes(), 3);
}

#[tokio::test]
async fn noop_resync_makes_zero_writes() {
    let profile = example_profile();
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let status = first_render(&mut f, &profile).await;
    // The watch delivers what was written.
    f.watch_ingress("authorization-server-mtls");
    f.watch_ingress("open-banking-apis");
    let profile = with_status(&profile, &status);
    let writes_before = f.api.seen.len();
    for _ in 0..3 {
        let task = f.start(&profile);
        let action = task.await.unwrap().unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    }
    f.api.assert_idle().await;
    assert_eq!(f.api.seen.len(), writes_before, "no request at all");
    assert_eq!(f.ctx.metrics.writes("Ingress", "apply"), 2);
}

#[tokio::test]
async fn profile_change_rerenders_the_managed_ingresses() {
    let profile = example_profile();
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let status = first_render(&mut f, &profile).await;
    f.watch_ingress("authorization-server-mtls");
    f.watch_ingress("open-banking-apis");
    let mut changed = with_status(&profile, &status);
    changed.spec.client_certificate.verify_depth = 3;
    changed.metadata.generation = Some(2);
    f.caches.on_profile_event(&Event::Apply(changed.clone()));
    let task = f.start(&changed);
    for name in ["authorization-server-mtls", "open-banking-apis"] {
        let (seen, send) = f.api.expect("PATCH", &ingress_path(name)).await;
        assert_ssa(&seen);
        assert_eq!(seen.body["metadata"]["annotations"], rendered_nginx("3"));
        let owned = f.owned_by_mtls_gate(name);
        let after = f.apply_ingress(name, &seen.body, &owned);
        reply(send, &after);
    }
    let (seen, send) = f.api.expect("PATCH", STATUS_PATH).await;
    assert_eq!(seen.body["status"]["observedGeneration"], 2);
    let ready = &seen.body["status"]["conditions"][0];
    assert_eq!(ready["observedGeneration"], 2);
    // Ready stayed True: its transition time is the first one.
    assert_eq!(
        ready["lastTransitionTime"],
        status["conditions"][0]["lastTransitionTime"]
    );
    reply(send, &serde_json::to_value(&changed).unwrap());
    task.await.unwrap().unwrap();
    f.api.assert_idle().await;
}

#[tokio::test]
async fn removing_the_label_removes_what_was_rendered() {
    let profile = example_profile();
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let status = first_render(&mut f, &profile).await;
    // The owner opts the API Ingress out: the label goes, the rendered annotations stay.
    f.ingresses.get_mut("open-banking-apis").unwrap()["metadata"]["labels"] = json!({});
    f.watch_ingress("open-banking-apis");
    f.watch_ingress("authorization-server-mtls");
    let profile = with_status(&profile, &status);
    let task = f.start(&profile);
    let (seen, send) = f
        .api
        .expect("PATCH", &ingress_path("open-banking-apis"))
        .await;
    assert_ssa(&seen);
    assert_eq!(
        seen.body,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "open-banking-apis", "namespace": NS}}),
        "an apply that owns nothing: the API server removes every field mtls-gate owned"
    );
    let owned = f.owned_by_mtls_gate("open-banking-apis");
    let after = f.apply_ingress("open-banking-apis", &seen.body, &owned);
    assert!(
        after["metadata"]["annotations"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    reply(send, &after);
    let (seen, send) = f.api.expect("PATCH", STATUS_PATH).await;
    assert_eq!(seen.body["status"]["managedIngresses"], 1);
    reply(send, &serde_json::to_value(&profile).unwrap());
    task.await.unwrap().unwrap();
    f.api.assert_idle().await;
}

#[tokio::test]
async fn opt_out_also_resets_rendered_values_another_manager_co_owns() {
    let profile = example_profile();
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let status = first_render(&mut f, &profile).await;
    f.ingresses.get_mut("open-banking-apis").unwrap()["metadata"]["labels"] = json!({});
    f.watch_ingress("open-banking-apis");
    f.watch_ingress("authorization-server-mtls");
    let profile = with_status(&profile, &status);
    let task = f.start(&profile);
    let (seen, send) = f
        .api
        .expect("PATCH", &ingress_path("open-banking-apis"))
        .await;
    assert_ssa(&seen);
    // The creator's field manager co-owns the values (the mutating webhook rendered them
    // at creation): the empty apply leaves them in place.
    let after = f.apply_ingress("open-banking-apis", &seen.body, &[]);
    reply(send, &after);
    let (merge, send) = f
        .api
        .expect("PATCH", &ingress_path("open-banking-apis"))
        .await;
    assert_eq!(merge.content_type, "application/merge-patch+json");
    assert_eq!(
        merge.query.get("fieldManager").map(String::as_str),
        Some("mtls-gate")
    );
    assert_eq!(
        merge.body,
        json!({"metadata": {"annotations": {
            "nginx.ingress.kubernetes.io/auth-tls-secret": null,
            "nginx.ingress.kubernetes.io/auth-tls-verify-client": null,
            "nginx.ingress.kubernetes.io/auth-tls-verify-depth": null,
            "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream": null,
            RENDERED_BY: null,
        }}})
    );
    reply(send, &f.ingresses["open-banking-apis"]);
    let (_, send) = f.api.expect("PATCH", STATUS_PATH).await;
    reply(send, &serde_json::to_value(&profile).unwrap());
    task.await.unwrap().unwrap();
    f.api.assert_idle().await;
}

#[tokio::test]
async fn a_cleanup_denied_by_admission_keeps_the_settings_and_becomes_an_event() {
    let profile = example_profile();
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let status = first_render(&mut f, &profile).await;
    f.ingresses.get_mut("open-banking-apis").unwrap()["metadata"]["labels"] = json!({});
    f.watch_ingress("open-banking-apis");
    f.watch_ingress("authorization-server-mtls");
    let profile = with_status(&profile, &status);
    let task = f.start(&profile);
    let (seen, send) = f
        .api
        .expect("PATCH", &ingress_path("open-banking-apis"))
        .await;
    assert_ssa(&seen);
    let denial = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
        "reason": "Forbidden",
        "message": "admission webhook \"validate.mtls-gate.io\" denied the request: MtlsNotRequired: ..."});
    send.send_response(
        Response::builder()
            .status(StatusCode::FORBIDDEN)
            .body(Body::from(serde_json::to_vec(&denial).unwrap()))
            .unwrap(),
    );
    let (_, send) = f
        .api
        .expect("GET", &ingress_path("open-banking-apis"))
        .await;
    reply(send, &f.ingresses["open-banking-apis"]);
    let (event, send) = f
        .api
        .expect(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/open-banking/events",
        )
        .await;
    assert_eq!(event.body["reason"], "CleanupDenied");
    assert!(
        event.body["note"]
            .as_str()
            .unwrap()
            .contains("denied the request")
    );
    reply(send, &event.body);
    let (_, send) = f.api.expect("PATCH", STATUS_PATH).await;
    reply(send, &serde_json::to_value(&profile).unwrap());
    task.await
        .unwrap()
        .expect("a denial does not fail the reconcile");
    f.api.assert_idle().await;
}

#[tokio::test]
async fn deleting_the_profile_cleans_up_then_releases_the_finalizer() {
    let profile = example_profile();
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let status = first_render(&mut f, &profile).await;
    f.watch_ingress("authorization-server-mtls");
    f.watch_ingress("open-banking-apis");
    let mut deleting = with_status(&profile, &status);
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let task = f.start(&deleting);
    for name in ["authorization-server-mtls", "open-banking-apis"] {
        let (seen, send) = f.api.expect("PATCH", &ingress_path(name)).await;
        assert_ssa(&seen);
        assert!(seen.body["metadata"].get("annotations").is_none());
        let owned = f.owned_by_mtls_gate(name);
        let after = f.apply_ingress(name, &seen.body, &owned);
        reply(send, &after);
    }
    let (seen, send) = f.api.expect("PATCH", PROFILE_PATH).await;
    assert_eq!(seen.content_type, "application/json-patch+json");
    assert_eq!(
        seen.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "mtls-gate.io/cleanup"},
            {"op": "remove", "path": "/metadata/finalizers/0"}
        ])
    );
    reply(send, &serde_json::to_value(&deleting).unwrap());
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    f.api.assert_idle().await;
    for name in ["authorization-server-mtls", "open-banking-apis"] {
        assert!(
            f.ingresses[name]["metadata"]["annotations"]
                .as_object()
                .unwrap()
                .is_empty(),
            "{name}: nothing rendered is left"
        );
    }
}

#[tokio::test]
async fn a_new_profile_gets_the_finalizer_before_anything_else() {
    let mut profile = example_profile();
    profile.metadata.finalizers = None;
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let task = f.start(&profile);
    let (seen, send) = f.api.expect("PATCH", PROFILE_PATH).await;
    assert_eq!(
        seen.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["mtls-gate.io/cleanup"]}
        ])
    );
    reply(send, &serde_json::to_value(&profile).unwrap());
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    f.api.assert_idle().await;
}

#[tokio::test]
async fn conflicting_writes_are_retried() {
    let profile = example_profile();
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let task = f.start(&profile);
    let (first, send) = f
        .api
        .expect("PATCH", &ingress_path("authorization-server-mtls"))
        .await;
    reply_status(send, 409, "Conflict");
    let (second, send) = f
        .api
        .expect("PATCH", &ingress_path("authorization-server-mtls"))
        .await;
    assert_eq!(first.body, second.body, "the same apply again");
    let owned = f.owned_by_mtls_gate("authorization-server-mtls");
    let after = f.apply_ingress("authorization-server-mtls", &second.body, &owned);
    reply(send, &after);
    let (seen, send) = f
        .api
        .expect("PATCH", &ingress_path("open-banking-apis"))
        .await;
    let after = f.apply_ingress("open-banking-apis", &seen.body, &[]);
    reply(send, &after);
    // The status patch conflicts too, and is retried.
    let (_, send) = f.api.expect("PATCH", STATUS_PATH).await;
    reply_status(send, 409, "Conflict");
    let (_, send) = f.api.expect("PATCH", STATUS_PATH).await;
    reply(send, &serde_json::to_value(&profile).unwrap());
    task.await.unwrap().unwrap();
    f.api.assert_idle().await;
    assert_eq!(f.ctx.metrics.writes("Ingress", "apply"), 2);
}

#[tokio::test]
async fn persistent_conflicts_fail_the_reconcile_with_backoff() {
    let profile = example_profile();
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let task = f.start(&profile);
    for _ in 0..4 {
        let (_, send) = f
            .api
            .expect("PATCH", &ingress_path("authorization-server-mtls"))
            .await;
        reply_status(send, 409, "Conflict");
    }
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.reason(), "conflict");
    f.api.assert_idle().await;
    let action = error_policy(Arc::new(profile.clone()), &err, f.ctx.clone());
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    let action = error_policy(Arc::new(profile), &err, f.ctx.clone());
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(2)),
        "exponential"
    );
}

/// An unmanaged Ingress serves the token endpoint at its issuer-relative default URL (the
/// profile moved it to the MTLS host) without client certificates.
fn leaky_ingress() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "legacy-token", "namespace": NS, "uid": "uid-legacy-token",
            "resourceVersion": "7", "creationTimestamp": "2025-06-01T00:00:00Z"},
        "spec": {"ingressClassName": "nginx",
            "tls": [{"hosts": ["auth.bank.example"], "secretName": "x"}],
            "rules": [{"host": "auth.bank.example", "http": {"paths": [
                {"path": "/token", "pathType": "Exact",
                 "backend": {"service": {"name": "legacy", "port": {"number": 443}}}}]}}]}
    })
}

#[tokio::test]
async fn violations_become_deduplicated_events_on_the_ingress_and_status_counts() {
    let profile = example_profile();
    let mut ingresses = example_ingresses();
    // Already rendered, so the only findings come from the leaky Ingress.
    for i in &mut ingresses {
        if i["metadata"]["labels"][PROFILE_LABEL].is_string() {
            i["metadata"]["annotations"] = rendered_nginx("2");
        }
    }
    ingresses.push(leaky_ingress());
    let mut f = Fixture::new(&profile, ingresses, true);
    let task = f.start(&profile);
    let mut events = Vec::new();
    let status = loop {
        let (seen, send) = f.api.next().await;
        match (seen.method.as_str(), seen.path.as_str()) {
            ("GET", p) if p == ingress_path("legacy-token") => {
                reply(send, &f.ingresses["legacy-token"]);
            }
            ("POST", "/apis/events.k8s.io/v1/namespaces/open-banking/events") => {
                reply(send, &seen.body);
                events.push(seen.body);
            }
            ("PATCH", STATUS_PATH) => {
                reply(send, &serde_json::to_value(&profile).unwrap());
                break seen.body["status"].clone();
            }
            other => panic!("unexpected request {other:?}"),
        }
    };
    task.await.unwrap().unwrap();
    f.api.assert_idle().await;

    let violations = status["violations"].as_i64().unwrap();
    assert!(violations >= 1);
    let compliant = &status["conditions"][1];
    assert_eq!(compliant["type"], "Compliant");
    assert_eq!(compliant["status"], "False");
    assert_eq!(compliant["reason"], "ViolationsFound");
    assert!(
        compliant["message"]
            .as_str()
            .unwrap()
            .contains("MtlsNotRequired"),
        "{compliant}"
    );
    let token = status["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["endpoint"] == "/token" && c["host"] == "auth.bank.example")
        .unwrap();
    assert_eq!(token["compliant"], false);
    let legacy = token["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ingress"] == "open-banking/legacy-token")
        .expect("the leaky route is listed");
    assert_eq!(legacy["compliant"], false);

    // One Event per finding on an Ingress.
    assert!(!events.is_empty());
    let e = events
        .iter()
        .find(|e| e["reason"] == "MtlsNotRequired")
        .expect("an MtlsNotRequired Event");
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["reportingController"], "mtls-gate");
    assert_eq!(e["reportingInstance"], "mtls-gate-test-0");
    assert_eq!(
        e["regarding"],
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "legacy-token",
               "namespace": NS, "uid": "uid-legacy-token"})
    );
    assert_eq!(e["related"]["kind"], "ApiProviderProfile");
    assert_eq!(e["related"]["name"], PROFILE);
    let note = e["note"].as_str().unwrap();
    assert!(note.contains("/token"), "{note}");
    assert!(note.len() <= 1024);
    assert!(
        e["action"]
            .as_str()
            .unwrap()
            .starts_with("Evaluate auth.bank.example/token")
    );
    assert_eq!(e["metadata"]["namespace"], NS);

    // A resync publishes nothing again, and the unchanged status is not written.
    let profile = with_status(&profile, &status);
    f.start(&profile).await.unwrap().unwrap();
    f.api.assert_idle().await;

    // Fixed, then broken again: published again.
    f.caches.on_ingress_event(Event::Delete(
        serde_json::from_value::<Ingress>(leaky_ingress()).unwrap(),
    ));
    let task = f.start(&profile);
    let (seen, send) = f.api.expect("PATCH", STATUS_PATH).await;
    assert_eq!(seen.body["status"]["violations"], 0);
    reply(send, &serde_json::to_value(&profile).unwrap());
    task.await.unwrap().unwrap();
    f.caches.on_ingress_event(Event::Apply(
        serde_json::from_value(leaky_ingress()).unwrap(),
    ));
    let task = f.start(&profile);
    // Each finding is published again; the recorder folds a recurrence of a recent Event
    // into the existing one (an events.k8s.io series: PATCH with series.count 2).
    let mut republished = Vec::new();
    while republished.len() < events.len() {
        let (seen, send) = f.api.next().await;
        match seen.method.as_str() {
            "GET" => reply(send, &leaky_ingress()),
            "PATCH"
                if seen
                    .path
                    .starts_with("/apis/events.k8s.io/v1/namespaces/open-banking/events/") =>
            {
                assert_eq!(seen.body["series"]["count"], 2, "{:#}", seen.body);
                reply(send, &seen.body);
                republished.push(seen.body);
            }
            _ => panic!("unexpected {seen:?}"),
        }
    }
    assert_eq!(republished[0]["reason"], events[0]["reason"]);
    // No status write: the computed status equals the one of the profile object passed in.
    task.await.unwrap().unwrap();
    f.api.assert_idle().await;
}

#[tokio::test]
async fn refused_renderings_are_reported_in_status_and_events() {
    let mut profile = example_profile();
    // The API host also serves /authorize (TLS) and has no gate: cannot be rendered.
    profile
        .spec
        .authorization_server
        .as_mut()
        .unwrap()
        .authorization_endpoint = Some("https://mtls-api.bank.example/authorize".into());
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let task = f.start(&profile);
    let mut events = Vec::new();
    let status = loop {
        let (seen, send) = f.api.next().await;
        match seen.method.as_str() {
            "GET" => {
                let name = seen.path.rsplit('/').next().unwrap().to_string();
                reply(send, &f.ingresses[&name]);
            }
            "POST" => {
                reply(send, &seen.body);
                events.push(seen.body);
            }
            "PATCH" if seen.path == STATUS_PATH => {
                reply(send, &serde_json::to_value(&profile).unwrap());
                break seen.body["status"].clone();
            }
            "PATCH" => {
                let name = seen.path.rsplit('/').next().unwrap().to_string();
                let after = f.apply_ingress(&name, &seen.body, &[]);
                reply(send, &after);
            }
            _ => panic!("unexpected {seen:?}"),
        }
    };
    task.await.unwrap().unwrap();
    let refusals = status["refusals"].as_array().expect("refusals in status");
    assert_eq!(refusals[0]["ingress"], "open-banking/open-banking-apis");
    assert_eq!(refusals[0]["kind"], "Ingress");
    assert_eq!(refusals[0]["object"], "open-banking/open-banking-apis");
    assert!(
        refusals[0]["message"]
            .as_str()
            .unwrap()
            .contains("spec.gate")
    );
    assert_eq!(status["conditions"][0]["reason"], "RenderRefused");
    let refused = events
        .iter()
        .find(|e| e["reason"] == "RenderRefused")
        .expect("a RenderRefused Event");
    assert_eq!(refused["regarding"]["name"], "open-banking-apis");
    assert_eq!(refused["type"], "Warning");
}

#[tokio::test]
async fn an_invalid_profile_reports_the_field_and_writes_nothing_else() {
    let mut profile = example_profile();
    profile.spec.api_base_urls = vec!["http://mtls-api.bank.example/v3".into()];
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    let task = f.start(&profile);
    let (seen, send) = f.api.expect("PATCH", STATUS_PATH).await;
    let ready = &seen.body["status"]["conditions"][0];
    assert_eq!(ready["type"], "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidProfile");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.apiBaseUrls[0]"),
        "{ready}"
    );
    assert_eq!(seen.body["status"]["conditions"][1]["status"], "Unknown");
    reply(send, &serde_json::to_value(&profile).unwrap());
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    f.api.assert_idle().await;
}

/// New-user trial D2: a CA Secret the cache does not hold (its watch was refused, or it does
/// not exist) is asked for once: 403 and 404 become the `CaSecretAvailable` condition and a
/// Warning Event on each managed Ingress; a Secret that exists (the cache is behind) is fine.
#[tokio::test]
async fn a_ca_secret_the_cache_lacks_is_checked_and_reported() {
    let secret_path = format!("/api/v1/namespaces/{NS}/secrets/{CA}");
    for (code, want_status, reason, says) in [
        (403, "False", "CaSecretForbidden", "CA checks are OFF"),
        (404, "False", "CaSecretNotFound", "does not exist"),
        (200, "True", "Available", "readable"),
    ] {
        let profile = example_profile();
        let mut ingresses = example_ingresses();
        for i in &mut ingresses {
            if i["metadata"]["labels"][PROFILE_LABEL].is_string() {
                i["metadata"]["annotations"] = rendered_nginx("2");
            }
        }
        let mut f = Fixture::new(&profile, ingresses, true);
        // As when RBAC refuses the Secret's watch: not in the cache, and the cache cannot
        // say it does not exist (a watch that never listed).
        f.caches.secret_watch_started("refused-ca");
        let secret: Secret =
            serde_json::from_value(yaml_docs("examples/nginx-split-host/client-ca.yaml").remove(0))
                .unwrap();
        f.caches.on_secret_event(CA, Event::Delete(secret));
        let task = f.start(&profile);
        let (_, send) = f.api.expect("GET", &secret_path).await;
        match code {
            200 => reply(
                send,
                &json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                        "metadata": {"name": CA, "namespace": NS}}),
            ),
            403 => reply_status(send, 403, "Forbidden"),
            _ => reply_status(send, 404, "NotFound"),
        }
        let mut events = Vec::new();
        let status = loop {
            let (seen, send) = f.api.next().await;
            match (seen.method.as_str(), seen.path.as_str()) {
                ("GET", p) if p.starts_with(&ingress_path("")) => {
                    let name = p.rsplit('/').next().unwrap().to_string();
                    reply(send, &f.ingresses[&name]);
                }
                ("POST", "/apis/events.k8s.io/v1/namespaces/open-banking/events") => {
                    reply(send, &seen.body);
                    events.push(seen.body);
                }
                ("PATCH", STATUS_PATH) => {
                    reply(send, &serde_json::to_value(&profile).unwrap());
                    break seen.body["status"].clone();
                }
                other => panic!("{code}: unexpected request {other:?}"),
            }
        };
        task.await.unwrap().unwrap();
        f.api.assert_idle().await;
        let condition = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "CaSecretAvailable")
            .unwrap_or_else(|| panic!("{code}: no CaSecretAvailable condition: {status:#}"))
            .clone();
        assert_eq!(
            (condition["status"].as_str(), condition["reason"].as_str()),
            (Some(want_status), Some(reason)),
            "{code}: {condition}"
        );
        let message = condition["message"].as_str().unwrap();
        assert!(message.contains(says), "{code}: {message}");
        if code == 200 {
            assert!(events.is_empty(), "{events:?}");
            continue;
        }
        assert!(message.contains(&format!("{NS}/{CA}")), "{message}");
        let regarding: Vec<&str> = events
            .iter()
            .map(|e| {
                assert_eq!(e["reason"], reason);
                assert_eq!(e["type"], "Warning");
                assert!(e["note"].as_str().unwrap().contains(says), "{e}");
                e["regarding"]["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(
            regarding,
            ["authorization-server-mtls", "open-banking-apis"],
            "one Event per managed Ingress of the namespace"
        );
    }
}

#[tokio::test]
async fn a_non_leader_only_evaluates() {
    let profile = example_profile();
    let mut f = Fixture::new(&profile, example_ingresses(), false);
    let action = f.start(&profile).await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    f.api.assert_idle().await;
    assert_eq!(f.api.seen.len(), 0, "no write, no Event, no status");
    // Its metrics still say where the profile stands (here: not rendered yet).
    let mut text = String::new();
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register(
        "mtls_gate_profile_compliant",
        "",
        f.ctx.metrics.profile_compliant.clone(),
    );
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("mtls_gate_profile_compliant{profile=\"example-bank\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn nothing_happens_before_the_caches_are_synced() {
    let profile = example_profile();
    let mut f = Fixture::new(&profile, example_ingresses(), true);
    f.caches
        .synced
        .store(false, std::sync::atomic::Ordering::Release);
    let action = f.start(&profile).await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    f.api.assert_idle().await;
}

#[tokio::test]
async fn a_user_set_annotation_the_rendering_removes_is_deleted_by_merge_patch() {
    let profile = example_profile();
    let mut ingresses = example_ingresses();
    // The public (TLS) host's Ingress is labelled and carries a user-set client-auth
    // annotation: mtls-gate does not own it, so the apply cannot remove it.
    for i in &mut ingresses {
        if i["metadata"]["name"] == "authorization-server-public" {
            i["metadata"]["labels"] = json!({PROFILE_LABEL: PROFILE});
            i["metadata"]["annotations"] =
                json!({"nginx.ingress.kubernetes.io/auth-tls-verify-client": "on"});
        }
    }
    let mut f = Fixture::new(&profile, ingresses, true);
    let task = f.start(&profile);
    let mut merge = None;
    loop {
        let (seen, send) = f.api.next().await;
        if seen.path == STATUS_PATH {
            assert_eq!(seen.body["status"]["violations"], 0, "{:#}", seen.body);
            reply(send, &serde_json::to_value(&profile).unwrap());
            break;
        }
        let name = seen.path.rsplit('/').next().unwrap().to_string();
        if seen.content_type == "application/merge-patch+json" {
            merge = Some(seen.clone());
            reply(send, &f.ingresses[&name]);
            continue;
        }
        assert_ssa(&seen);
        let after = f.apply_ingress(&name, &seen.body, &[]);
        reply(send, &after);
    }
    task.await.unwrap().unwrap();
    let merge = merge.expect("a merge patch removes the user's annotation");
    assert_eq!(merge.path, ingress_path("authorization-server-public"));
    assert_eq!(
        merge.query.get("fieldManager").map(String::as_str),
        Some("mtls-gate")
    );
    assert_eq!(
        merge.body,
        json!({"metadata": {"annotations": {"nginx.ingress.kubernetes.io/auth-tls-verify-client": null}}})
    );
}

// ---- Traefik ----------------------------------------------------------------------------

fn traefik_profile() -> ApiProviderProfile {
    let mut v = serde_json::to_value(example_profile()).unwrap();
    v["spec"]["ingressController"] = json!("traefik");
    v["spec"]
        .as_object_mut()
        .unwrap()
        .remove("ingressClassName");
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn traefik_objects_are_applied_owned_by_the_profile_then_left_alone() {
    let profile = traefik_profile();
    let ingresses: Vec<Value> = example_ingresses()
        .into_iter()
        .map(|mut i| {
            i["spec"]["ingressClassName"] = json!("traefik");
            // spec.tls only provides certificates in Traefik: the public router is made
            // TLS-only by annotation (the MTLS ones by the rendered TLS options).
            if i["metadata"]["name"] == "authorization-server-public" {
                i["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.tls"] =
                    json!("true");
            }
            i
        })
        .collect();
    let mut f = Fixture::new(&profile, ingresses, true);
    // Traefik CRDs present and listed (empty).
    for kind in traefik::KINDS {
        f.caches.on_object_event(kind, Event::Init);
        f.caches.on_object_event(kind, Event::InitDone);
    }
    for (_, _, kind) in mtls_gate::dialect::owned_kinds() {
        if !traefik::KINDS.contains(kind) {
            f.caches.kind_absent(*kind);
        }
    }
    let task = f.start(&profile);
    let mut objects = Vec::new();
    let status = loop {
        let (seen, send) = f.api.next().await;
        if seen.path == STATUS_PATH {
            reply(send, &serde_json::to_value(&profile).unwrap());
            break seen.body["status"].clone();
        }
        assert_ssa(&seen);
        if seen
            .path
            .starts_with("/apis/traefik.io/v1alpha1/namespaces/open-banking/")
        {
            assert!(
                f.api.seen.iter().all(|s| !s.path.contains("/ingresses/")),
                "objects are applied before the Ingresses that reference them"
            );
            reply(send, &seen.body);
            objects.push(seen.body);
        } else {
            let name = seen.path.rsplit('/').next().unwrap().to_string();
            let after = f.apply_ingress(&name, &seen.body, &[]);
            assert_eq!(
                after["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.tls.options"],
                "open-banking-mtls-gate-example-bank-mtls-required@kubernetescrd"
            );
            reply(send, &after);
        }
    };
    task.await.unwrap().unwrap();
    f.api.assert_idle().await;
    assert_eq!(status["conditions"][1]["status"], "True", "{status:#}");
    let option = objects
        .iter()
        .find(|o| o["kind"] == "TLSOption")
        .expect("a TLSOption");
    assert_eq!(
        option["metadata"]["name"],
        "mtls-gate-example-bank-mtls-required"
    );
    assert_eq!(option["metadata"]["labels"][PROFILE_LABEL], PROFILE);
    assert_eq!(
        option["metadata"]["ownerReferences"],
        json!([{"apiVersion": "mtls-gate.io/v1alpha1", "kind": "ApiProviderProfile",
                "name": PROFILE, "uid": "0b0b0b0b-1111-2222-3333-444444444444", "controller": true}])
    );
    assert!(option["metadata"]["annotations"][RENDERED_HASH].is_string());
    assert_eq!(
        option["spec"]["clientAuth"]["clientAuthType"],
        "RequireAndVerifyClientCert"
    );

    // The watches deliver the objects and Ingresses: the next reconcile writes nothing.
    for o in &objects {
        let kind = *traefik::KINDS
            .iter()
            .find(|k| k.kind == o["kind"].as_str().unwrap())
            .unwrap();
        f.caches.on_object_event(
            kind,
            Event::Apply(serde_json::from_value(o.clone()).unwrap()),
        );
    }
    f.watch_ingress("authorization-server-mtls");
    f.watch_ingress("open-banking-apis");
    let profile = with_status(&profile, &status);
    f.start(&profile).await.unwrap().unwrap();
    f.api.assert_idle().await;

    // An object of this profile that the rendering no longer has is deleted.
    let stale = json!({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
        "metadata": {"name": "mtls-gate-example-bank-gate", "namespace": NS,
            "labels": {PROFILE_LABEL: PROFILE}, "annotations": {RENDERED_HASH: "0123456789abcdef"}},
        "spec": {"forwardAuth": {"address": "https://gate/verify"}}});
    f.caches.on_object_event(
        traefik::MIDDLEWARE,
        Event::Apply(serde_json::from_value(stale).unwrap()),
    );
    let task = f.start(&profile);
    let (seen, send) = f
        .api
        .expect(
            "DELETE",
            "/apis/traefik.io/v1alpha1/namespaces/open-banking/middlewares/mtls-gate-example-bank-gate",
        )
        .await;
    drop(seen);
    reply(
        send,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    );
    task.await.unwrap().unwrap();
    f.api.assert_idle().await;
}

#[tokio::test]
async fn without_traefik_crds_the_profile_is_not_ready_and_says_why() {
    let profile = traefik_profile();
    let ingresses: Vec<Value> = example_ingresses()
        .into_iter()
        .map(|mut i| {
            i["spec"]["ingressClassName"] = json!("traefik");
            i
        })
        .collect();
    let mut f = Fixture::new(&profile, ingresses, true);
    // Discovery found no Traefik CRDs (or RBAC refused the list).
    for (_, _, kind) in mtls_gate::dialect::owned_kinds() {
        f.caches.kind_absent(*kind);
    }
    let task = f.start(&profile);
    let status = loop {
        let (seen, send) = f.api.next().await;
        assert!(
            !seen.path.starts_with("/apis/traefik.io/"),
            "no Traefik write: {seen:?}"
        );
        if seen.path == STATUS_PATH {
            reply(send, &serde_json::to_value(&profile).unwrap());
            break seen.body["status"].clone();
        }
        match seen.method.as_str() {
            // Events for what the missing TLSOptions cause.
            "POST" => reply(send, &seen.body),
            "GET" => {
                let name = seen.path.rsplit('/').next().unwrap().to_string();
                reply(send, &f.ingresses[&name]);
            }
            _ => {
                let name = seen.path.rsplit('/').next().unwrap().to_string();
                let after = f.apply_ingress(&name, &seen.body, &[]);
                reply(send, &after);
            }
        }
    };
    task.await.unwrap().unwrap();
    assert!(
        status["violations"].as_i64().unwrap() > 0,
        "the options do not exist"
    );
    let ready = &status["conditions"][0];
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "CrdsMissing");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("TLSOption.traefik.io") && message.contains("Middleware.traefik.io"),
        "{message}"
    );
}

// ---- Leader election ----------------------------------------------------------------------

fn elector() -> (LeaseElector, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let elector = LeaseElector::new(
        client,
        LeaseConfig {
            lease_name: "mtls-gate-leader".into(),
            namespace: "mtls-gate".into(),
            identity: "pod-a".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        },
        None,
    );
    (
        elector,
        ApiServer {
            handle,
            seen: Vec::new(),
        },
    )
}

const LEASE_PATH: &str =
    "/apis/coordination.k8s.io/v1/namespaces/mtls-gate/leases/mtls-gate-leader";

fn lease(holder: Option<&str>, rv: &str, transitions: i32) -> Value {
    let mut spec = json!({"leaseDurationSeconds": 15, "leaseTransitions": transitions,
        "renewTime": "2026-01-01T00:00:00.000000Z", "acquireTime": "2026-01-01T00:00:00.000000Z"});
    if let Some(h) = holder {
        spec["holderIdentity"] = json!(h);
    }
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "mtls-gate-leader", "namespace": "mtls-gate", "resourceVersion": rv},
        "spec": spec})
}

#[tokio::test]
async fn election_creates_the_lease_when_absent_and_renews_it() {
    let (mut elector, mut api) = elector();
    let leadership = elector.leadership();
    let now = tokio::time::Instant::now();
    let round = tokio::spawn(async move {
        let won = elector.try_acquire_or_renew(now).await.unwrap();
        (elector, won)
    });
    let (_, send) = api.expect("GET", LEASE_PATH).await;
    reply_status(send, 404, "NotFound");
    let (seen, send) = api
        .expect(
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/mtls-gate/leases",
        )
        .await;
    assert_eq!(seen.body["metadata"]["name"], "mtls-gate-leader");
    assert_eq!(seen.body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(seen.body["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(seen.body["spec"]["leaseTransitions"], 0);
    assert!(seen.body["spec"]["renewTime"].is_string());
    reply(send, &lease(Some("pod-a"), "1", 0));
    let (mut elector, won) = round.await.unwrap();
    assert!(won);
    assert!(leadership.is_leader());

    // Renew: same holder, the resourceVersion read is sent back (optimistic concurrency).
    let round = tokio::spawn(async move {
        let won = elector
            .try_acquire_or_renew(now + Duration::from_secs(2))
            .await
            .unwrap();
        (elector, won)
    });
    let (_, send) = api.expect("GET", LEASE_PATH).await;
    reply(send, &lease(Some("pod-a"), "1", 0));
    let (seen, send) = api.expect("PUT", LEASE_PATH).await;
    assert_eq!(seen.body["metadata"]["resourceVersion"], "1");
    assert_eq!(seen.body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(
        seen.body["spec"]["leaseTransitions"], 0,
        "a renew is no transition"
    );
    assert_ne!(
        seen.body["spec"]["renewTime"],
        "2026-01-01T00:00:00.000000Z"
    );
    reply(send, &lease(Some("pod-a"), "2", 0));
    let (_, won) = round.await.unwrap();
    assert!(won);
    api.assert_idle().await;
}

#[tokio::test]
async fn election_waits_for_expiry_then_takes_over() {
    let (mut elector, mut api) = elector();
    let leadership = elector.leadership();
    let t0 = tokio::time::Instant::now();
    // Another replica holds it: first observation.
    let round = tokio::spawn(async move {
        let won = elector.try_acquire_or_renew(t0).await.unwrap();
        (elector, won)
    });
    let (_, send) = api.expect("GET", LEASE_PATH).await;
    reply(send, &lease(Some("pod-b"), "5", 3));
    let (elector, won) = round.await.unwrap();
    assert!(!won);
    assert!(!leadership.is_leader());
    api.assert_idle().await;

    // 10 s later, unchanged record: still not expired (15 s), no write.
    let mut elector = elector;
    let round = tokio::spawn(async move {
        let won = elector
            .try_acquire_or_renew(t0 + Duration::from_secs(10))
            .await
            .unwrap();
        (elector, won)
    });
    let (_, send) = api.expect("GET", LEASE_PATH).await;
    reply(send, &lease(Some("pod-b"), "5", 3));
    let (mut elector, won) = round.await.unwrap();
    assert!(!won);
    api.assert_idle().await;

    // 16 s after the record was first seen unchanged: taken over, with the read version.
    let round = tokio::spawn(async move {
        let won = elector
            .try_acquire_or_renew(t0 + Duration::from_secs(16))
            .await
            .unwrap();
        (elector, won)
    });
    let (_, send) = api.expect("GET", LEASE_PATH).await;
    reply(send, &lease(Some("pod-b"), "5", 3));
    let (seen, send) = api.expect("PUT", LEASE_PATH).await;
    assert_eq!(seen.body["metadata"]["resourceVersion"], "5");
    assert_eq!(seen.body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(seen.body["spec"]["leaseTransitions"], 4);
    reply(send, &lease(Some("pod-a"), "6", 4));
    let (mut elector, won) = round.await.unwrap();
    assert!(won);
    assert!(leadership.is_leader());

    // Someone else wrote meanwhile: 409, leadership lost.
    let round = tokio::spawn(async move {
        let won = elector
            .try_acquire_or_renew(t0 + Duration::from_secs(18))
            .await
            .unwrap();
        (elector, won)
    });
    let (_, send) = api.expect("GET", LEASE_PATH).await;
    reply(send, &lease(Some("pod-a"), "6", 4));
    let (_, send) = api.expect("PUT", LEASE_PATH).await;
    reply_status(send, 409, "Conflict");
    let (_, won) = round.await.unwrap();
    assert!(!won);
    assert!(!leadership.is_leader());
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once_and_release_clears_the_holder() {
    let (mut elector, mut api) = elector();
    let t0 = tokio::time::Instant::now();
    let round = tokio::spawn(async move {
        let won = elector.try_acquire_or_renew(t0).await.unwrap();
        (elector, won)
    });
    let (_, send) = api.expect("GET", LEASE_PATH).await;
    reply(send, &lease(None, "9", 2));
    let (seen, send) = api.expect("PUT", LEASE_PATH).await;
    assert_eq!(seen.body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(seen.body["spec"]["leaseTransitions"], 3);
    reply(send, &lease(Some("pod-a"), "10", 3));
    let (mut elector, won) = round.await.unwrap();
    assert!(won, "no holder: no need to wait for expiry");

    let leadership = elector.leadership();
    let release = tokio::spawn(async move { elector.release().await.unwrap() });
    let (_, send) = api.expect("GET", LEASE_PATH).await;
    reply(send, &lease(Some("pod-a"), "10", 3));
    let (seen, send) = api.expect("PUT", LEASE_PATH).await;
    assert!(
        seen.body["spec"].get("holderIdentity").is_none(),
        "{}",
        seen.body
    );
    assert_eq!(seen.body["metadata"]["resourceVersion"], "10");
    reply(send, &lease(None, "11", 3));
    assert!(release.await.unwrap());
    assert!(!leadership.is_leader());
}

#[tokio::test]
async fn the_run_loop_releases_the_lease_on_shutdown() {
    let (elector, mut api) = elector();
    let leadership = elector.leadership();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(elector.run(async move {
        let _ = stopped.await;
    }));
    let (_, send) = api.expect("GET", LEASE_PATH).await;
    reply_status(send, 404, "NotFound");
    let (_, send) = api
        .expect(
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/mtls-gate/leases",
        )
        .await;
    reply(send, &lease(Some("pod-a"), "1", 0));
    let mut changes = leadership.subscribe();
    changes.wait_for(|l| *l).await.unwrap();
    stop.send(()).unwrap();
    let (_, send) = api.expect("GET", LEASE_PATH).await;
    reply(send, &lease(Some("pod-a"), "1", 0));
    let (seen, send) = api.expect("PUT", LEASE_PATH).await;
    assert!(seen.body["spec"].get("holderIdentity").is_none());
    reply(send, &lease(None, "2", 0));
    run.await.unwrap();
    assert!(!leadership.is_leader());
}

/// A leader whose renewals fail stops acting as leader once the renew deadline (10 s) has
/// passed since its last successful renew, before any other replica may take the Lease over
/// (15 s lease duration, observed on the other replica's own clock). Time is paused: tokio
/// advances it to the next timer whenever both sides wait.
#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_renew_steps_down_at_the_renew_deadline() {
    let (elector, mut api) = elector();
    let leadership = elector.leadership();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(elector.run(async move {
        let _ = stopped.await;
    }));
    let (_, send) = api.expect("GET", LEASE_PATH).await;
    reply(send, &lease(None, "1", 0));
    let (_, send) = api.expect("PUT", LEASE_PATH).await;
    reply(send, &lease(Some("pod-a"), "2", 1));
    let mut changes = leadership.subscribe();
    changes.wait_for(|l| *l).await.unwrap();
    let acquired = tokio::time::Instant::now();

    // From now on the API server answers every election round with 500.
    let mut failed_rounds = 0;
    loop {
        tokio::select! {
            lost = changes.wait_for(|l| !*l) => {
                lost.unwrap();
                break;
            }
            (seen, send) = api.next() => {
                assert_eq!(seen.path, LEASE_PATH, "{seen:#?}");
                assert!(leadership.is_leader() || acquired.elapsed() >= Duration::from_secs(10));
                reply_status(send, 500, "InternalError");
                failed_rounds += 1;
            }
        }
    }
    let stepped_down_after = acquired.elapsed();
    assert!(
        (Duration::from_secs(10)..Duration::from_secs(15)).contains(&stepped_down_after),
        "stepped down {stepped_down_after:?} after the last renew ({failed_rounds} failed rounds)"
    );
    assert!(failed_rounds >= 4, "it kept trying every retry period");
    assert!(!leadership.is_leader());

    // Not the leader any more: shutdown writes nothing.
    stop.send(()).unwrap();
    run.await.unwrap();
    assert!(
        api.handle.next_request().await.is_none(),
        "no release by a replica that no longer leads"
    );
}

// ---- Self-managed certificates -------------------------------------------------------------

#[tokio::test]
async fn certificates_are_created_and_ca_bundles_synced_with_resource_versions() {
    use mtls_gate::controller::certs::{CertConfig, ensure};
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut api = ApiServer {
        handle,
        seen: Vec::new(),
    };
    let cfg = CertConfig {
        namespace: "mtls-gate".into(),
        secret_name: "mtls-gate-webhook-tls".into(),
        service_name: "mtls-gate".into(),
        cluster_domain: "cluster.local".into(),
        validating_webhook: "mtls-gate".into(),
        mutating_webhook: "mtls-gate".into(),
        extra_sans: Vec::new(),
    };
    let now = 1_800_000_000;
    let (c, g) = (client.clone(), cfg.clone());
    let round = tokio::spawn(async move { ensure(&c, &g, now, None).await.unwrap() });
    let secret_path = "/api/v1/namespaces/mtls-gate/secrets/mtls-gate-webhook-tls";
    let (_, send) = api.expect("GET", secret_path).await;
    reply_status(send, 404, "NotFound");
    let (created, send) = api
        .expect("POST", "/api/v1/namespaces/mtls-gate/secrets")
        .await;
    assert_eq!(created.body["type"], "kubernetes.io/tls");
    for key in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        assert!(created.body["data"][key].is_string(), "{key}");
    }
    assert_eq!(
        created.body["metadata"]["annotations"]["mtls-gate.io/serving-names"],
        "mtls-gate.mtls-gate.svc,mtls-gate.mtls-gate.svc.cluster.local"
    );
    let mut stored = created.body.clone();
    stored["metadata"]["resourceVersion"] = json!("1");
    reply(send, &stored);
    let bundle = created.body["data"]["ca.crt"].clone();
    let vwc_path =
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/mtls-gate";
    let (_, send) = api.expect("GET", vwc_path).await;
    let vwc = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "mtls-gate", "resourceVersion": "40"},
    "webhooks": [
        {"name": "ingresses.mtls-gate.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
         "clientConfig": {"service": {"name": "mtls-gate", "namespace": "mtls-gate", "path": "/validate"}}},
        {"name": "profiles.mtls-gate.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
         "clientConfig": {"service": {"name": "mtls-gate", "namespace": "mtls-gate", "path": "/validate"}, "caBundle": "b2xk"}}
    ]});
    reply(send, &vwc);
    let (put, send) = api.expect("PUT", vwc_path).await;
    assert_eq!(put.body["metadata"]["resourceVersion"], "40");
    assert_eq!(put.body["webhooks"][0]["clientConfig"]["caBundle"], bundle);
    assert_eq!(put.body["webhooks"][1]["clientConfig"]["caBundle"], bundle);
    reply(send, &put.body);
    let mwc_path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/mtls-gate";
    let (_, send) = api.expect("GET", mwc_path).await;
    reply_status(send, 404, "NotFound");
    let outcome = round.await.unwrap();
    assert!(outcome.secret_written);
    assert_eq!(outcome.webhooks_patched.len(), 1);
    api.assert_idle().await;

    // Second round: everything current, only reads.
    let (c, g) = (client.clone(), cfg.clone());
    let round = tokio::spawn(async move { ensure(&c, &g, now + 60, None).await.unwrap() });
    let (_, send) = api.expect("GET", secret_path).await;
    reply(send, &stored);
    let (_, send) = api.expect("GET", vwc_path).await;
    reply(send, &put.body);
    let (_, send) = api.expect("GET", mwc_path).await;
    reply_status(send, 404, "NotFound");
    let outcome = round.await.unwrap();
    assert!(!outcome.secret_written && outcome.webhooks_patched.is_empty());
    api.assert_idle().await;

    // Another replica created the Secret first: 409, nothing else written this round.
    let (c, g) = (client.clone(), cfg.clone());
    let round = tokio::spawn(async move { ensure(&c, &g, now, None).await.unwrap() });
    let (_, send) = api.expect("GET", secret_path).await;
    reply_status(send, 404, "NotFound");
    let (_, send) = api
        .expect("POST", "/api/v1/namespaces/mtls-gate/secrets")
        .await;
    reply_status(send, 409, "AlreadyExists");
    let outcome = round.await.unwrap();
    assert!(outcome.lost_race && !outcome.secret_written);
    api.assert_idle().await;
}

#[test]
fn secret_names_in_ingress_views_come_from_the_example() {
    // Guard: the fixtures above rely on the example's names.
    let ing: Ingress = serde_json::from_value(example_ingresses().remove(1)).unwrap();
    assert_eq!(ing.name_any(), "authorization-server-mtls");
}

#[test]
fn traefik_cleanup_keeps_the_users_middlewares() {
    use mtls_gate::cluster::ClusterView;
    use mtls_gate::controller::reconcile::cleanups_for;
    use mtls_gate::model::IngressView;
    let profile = traefik_profile();
    let compiled = profile.compile().unwrap();
    let mut raw = example_ingresses().remove(2); // open-banking-apis, labelled
    assert_eq!(raw["metadata"]["name"], "open-banking-apis");
    raw["metadata"]["annotations"] = json!({
        "traefik.ingress.kubernetes.io/router.middlewares": "open-banking-user@kubernetescrd"
    });
    let ing: Ingress = serde_json::from_value(raw).unwrap();
    let view_of = |i: &Ingress| IngressView::from_ingress(i, NS);
    let mut view = ClusterView::new();
    view.upsert_ingress(view_of(&ing));
    let rendered = mtls_gate::render::render_profile(&compiled, &view, [&view_of(&ing)]).unwrap();
    let set = rendered.ingresses[0].changes.set.clone();
    let chain = set["traefik.ingress.kubernetes.io/router.middlewares"].clone();
    assert!(
        chain.ends_with(",open-banking-user@kubernetescrd"),
        "{chain}"
    );
    // Rendered, then the label removed.
    let mut after = view_of(&ing);
    for (k, v) in &set {
        after.annotations.insert(k.clone(), v.clone());
    }
    after.annotations.insert(RENDERED_BY.into(), PROFILE.into());
    after.profile_label = None;
    view.upsert_ingress(after.clone());
    let cleanup = cleanups_for(&compiled, &view, &[&after]).remove(0);
    assert_eq!(
        cleanup.strip["traefik.ingress.kubernetes.io/router.middlewares"],
        (chain, Some("open-banking-user@kubernetescrd".to_string()))
    );
    assert_eq!(
        cleanup.strip["traefik.ingress.kubernetes.io/router.tls.options"].1,
        None
    );
    assert_eq!(cleanup.strip[RENDERED_BY], (PROFILE.to_string(), None));
}

// ---- Gateway API: labelled Gateways rendered in place -----------------------------------

/// The Gateway API example's profile under the fixture's profile name.
fn gateway_profile() -> ApiProviderProfile {
    let mut v = yaml_docs("examples/gateway-api-split-host/bank.yaml").remove(0);
    v["metadata"]["name"] = json!(PROFILE);
    v["metadata"]["uid"] = json!("0b0b0b0b-1111-2222-3333-444444444444");
    v["metadata"]["generation"] = json!(1);
    v["metadata"]["resourceVersion"] = json!("100");
    v["metadata"]["finalizers"] = json!(["mtls-gate.io/cleanup"]);
    serde_json::from_value(v).unwrap()
}

/// The example's Gateway API objects as the API server returns them; `edit` changes the
/// Gateways (by name) before they are listed.
fn gateway_objects(edit: impl Fn(&str, &mut Value)) -> Vec<Value> {
    yaml_docs("examples/gateway-api-split-host/bank.yaml")
        .into_iter()
        .skip(1)
        .map(|mut v| {
            let name = v["metadata"]["name"].as_str().unwrap().to_string();
            v["metadata"]["uid"] = json!(format!("uid-{name}"));
            v["metadata"]["resourceVersion"] = json!("1");
            v["metadata"]["creationTimestamp"] = json!("2026-11-01T10:00:00Z");
            if v["kind"] == "Gateway" {
                edit(&name, &mut v);
            }
            v
        })
        .collect()
}

/// The Gateway API kinds listed with `objects` in them.
fn list_gateway_objects(f: &Fixture, objects: &[Value]) {
    use mtls_gate::dialect::gateway::KINDS;
    for kind in KINDS {
        f.caches.on_object_event(kind, Event::Init);
        for o in objects.iter().filter(|o| {
            kind.matches(
                o["apiVersion"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
            )
        }) {
            f.caches.on_object_event(
                kind,
                Event::InitApply(serde_json::from_value(o.clone()).unwrap()),
            );
        }
        f.caches.on_object_event(kind, Event::InitDone);
    }
}

fn labelled(gw: &mut Value) {
    gw["metadata"]["labels"] = json!({PROFILE_LABEL: PROFILE});
}

fn without_frontend(gw: &mut Value) {
    gw["spec"].as_object_mut().unwrap().remove("tls");
}

const MTLS_GATEWAY_PATH: &str =
    "/apis/gateway.networking.k8s.io/v1/namespaces/open-banking/gateways/mtls";

/// Runs one reconcile, answering Event lookups (findings about non-Ingress objects find no
/// Ingress) and Event creations; returns the writes to Gateways and the status written.
async fn reconcile_gateways(f: &mut Fixture, profile: &ApiProviderProfile) -> (Vec<Seen>, Value) {
    let task = f.start(profile);
    let mut writes = Vec::new();
    let status = loop {
        let (seen, send) = f.api.next().await;
        match seen.method.as_str() {
            "GET" if seen.path.contains("/ingresses/") => reply_status(send, 404, "NotFound"),
            "POST" if seen.path.contains("/events") => reply(send, &seen.body),
            "PATCH" if seen.path == STATUS_PATH => {
                reply(send, &serde_json::to_value(profile).unwrap());
                break seen.body["status"].clone();
            }
            "PATCH" if seen.path.contains("/gateways/") => {
                reply(send, &seen.body);
                writes.push(seen);
            }
            _ => panic!("unexpected request: {seen:#?}"),
        }
    };
    task.await.unwrap().expect("reconcile succeeds");
    f.api.assert_idle().await;
    (writes, status)
}

/// An existing Gateway labelled for the profile is brought into compliance by server-side
/// apply of only its frontend validation (field manager mtls-gate), never owned, never
/// deleted; once the watch delivers it, nothing is written again.
#[tokio::test]
async fn an_existing_labelled_gateway_gets_its_frontend_validation_applied() {
    let profile = gateway_profile();
    let mut f = Fixture::new(&profile, Vec::new(), true);
    // Both Gateways labelled; the MTLS one was created without client validation.
    let objects = gateway_objects(|name, gw| {
        labelled(gw);
        if name == "mtls" {
            without_frontend(gw);
        }
    });
    list_gateway_objects(&f, &objects);

    let (writes, status) = reconcile_gateways(&mut f, &profile).await;
    assert_eq!(
        writes.len(),
        1,
        "only the MTLS Gateway needs a rendering: {writes:#?}"
    );
    let apply = &writes[0];
    assert_eq!(apply.path, MTLS_GATEWAY_PATH);
    assert_ssa(apply);
    assert_eq!(
        apply.body,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "mtls", "namespace": NS},
            "spec": {"tls": {"frontend": {"default": {}, "perPort": [{"port": 443, "tls": {
                "validation": {"mode": "AllowValidOnly", "caCertificateRefs": [
                    {"group": "", "kind": "Secret", "name": CA}]}}}]}}},
        }),
        "identity and the owned fields only: no listeners, no owner reference, no hash"
    );
    // Judged on the world after the apply.
    let compliant = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Compliant")
        .unwrap();
    assert_eq!(compliant["status"], "True", "{status:#}");
    assert_eq!(f.ctx.metrics.writes("Gateway", "apply"), 1);

    // The watch delivers the applied Gateway (the API server merges the apply).
    let mut after = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "mtls")
        .unwrap()
        .clone();
    after["spec"]["tls"] = apply.body["spec"]["tls"].clone();
    f.caches.on_object_event(
        mtls_gate::dialect::gateway::GATEWAY,
        Event::Apply(serde_json::from_value(after).unwrap()),
    );
    let profile = with_status(&profile, &status);
    f.start(&profile).await.unwrap().unwrap();
    f.api.assert_idle().await;
    assert_eq!(
        f.ctx.metrics.writes("Gateway", "apply"),
        1,
        "rendered: no write"
    );
}

/// What the controller does with labelled Gateways it must not or cannot change.
#[tokio::test]
async fn labelled_gateways_that_need_no_write_or_cannot_be_rendered() {
    struct Case {
        name: &'static str,
        edit: fn(&str, &mut Value),
        /// A refusal naming this is in status (and nothing is written).
        refusal: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "already carries the validation (rendered at admission)",
            edit: |name, gw| {
                labelled(gw);
                if name == "mtls" {
                    gw["spec"]["tls"] = json!({"frontend": {"default": {}, "perPort": [
                        {"port": 443, "tls": {"validation": {"mode": "AllowValidOnly",
                            "caCertificateRefs": [{"group": "", "kind": "Secret", "name": CA}]}}}]}});
                }
            },
            refusal: None,
        },
        Case {
            name: "its own default validation and the rendered port entry: left as it is",
            edit: |name, gw| {
                if name == "mtls" {
                    labelled(gw);
                    gw["spec"]["tls"]["frontend"]["perPort"] = json!([{"port": 443, "tls": {
                        "validation": {"mode": "AllowValidOnly", "caCertificateRefs": [
                            {"group": "", "kind": "Secret", "name": CA}]}}}]);
                }
            },
            refusal: None,
        },
        Case {
            name: "MTLS and TLS hosts on one port",
            edit: |name, gw| {
                if name == "mtls" {
                    labelled(gw);
                    without_frontend(gw);
                    gw["spec"]["listeners"].as_array_mut().unwrap().push(json!({
                        "name": "auth-https", "protocol": "HTTPS", "port": 443,
                        "hostname": "auth.bank.example"}));
                }
            },
            refusal: Some("Gateway open-banking/mtls port 443: serves MTLS hosts"),
        },
    ];
    for case in cases {
        let profile = gateway_profile();
        let mut f = Fixture::new(&profile, Vec::new(), true);
        list_gateway_objects(&f, &gateway_objects(case.edit));
        let (writes, status) = reconcile_gateways(&mut f, &profile).await;
        assert!(writes.is_empty(), "[{}] {writes:#?}", case.name);
        assert!(
            f.api.seen.iter().all(|s| s.method != "DELETE"),
            "[{}] a labelled Gateway is never deleted",
            case.name
        );
        match case.refusal {
            None => assert!(
                status.get("refusals").is_none(),
                "[{}] {status:#}",
                case.name
            ),
            Some(fragment) => {
                let refusals = status["refusals"].as_array().expect("refusals in status");
                let refusal = refusals
                    .iter()
                    .find(|r| r["message"].as_str().unwrap().contains(fragment))
                    .unwrap_or_else(|| panic!("[{}] {status:#}", case.name));
                // The refused object is named with its kind; `ingress` keeps naming it for
                // readers of the first status version.
                assert_eq!(refusal["kind"], "Gateway", "[{}]", case.name);
                assert_eq!(refusal["object"], "open-banking/mtls", "[{}]", case.name);
                assert_eq!(refusal["ingress"], "open-banking/mtls", "[{}]", case.name);
                assert_eq!(status["conditions"][0]["reason"], "RenderRefused");
                // The refused object is a Gateway, not an Ingress: its Event is published
                // regarding the profile (once), not looked up as an Ingress on every
                // reconcile.
                let event = f
                    .api
                    .seen
                    .iter()
                    .find(|s| {
                        s.method == "POST"
                            && s.path.contains("/events")
                            && s.body["reason"] == "RenderRefused"
                    })
                    .unwrap_or_else(|| panic!("[{}] no Event: {:#?}", case.name, f.api.seen));
                assert_eq!(
                    event.body["regarding"]["kind"], "ApiProviderProfile",
                    "[{}]",
                    case.name
                );
            }
        }
    }
}

/// Deleting the profile removes what the writer created, never a labelled Gateway (the
/// user's object, rendered in place): the finalizer is released without any DELETE.
#[tokio::test]
async fn deleting_the_profile_leaves_labelled_gateways_in_place() {
    let profile = gateway_profile();
    let mut f = Fixture::new(&profile, Vec::new(), true);
    list_gateway_objects(&f, &gateway_objects(|_, gw| labelled(gw)));
    let mut deleting = profile.clone();
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let task = f.start(&deleting);
    let (seen, send) = f.api.expect("PATCH", PROFILE_PATH).await;
    assert_eq!(seen.content_type, "application/json-patch+json");
    reply(send, &serde_json::to_value(&deleting).unwrap());
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    f.api.assert_idle().await;
    assert!(
        f.api.seen.iter().all(|s| s.method != "DELETE"),
        "{:#?}",
        f.api.seen
    );
}
