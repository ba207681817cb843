//! End-to-end suite against a real cluster where mtls-gate is installed (Helm chart).
//!
//! Skipped unless `MTLS_GATE_E2E_KUBECONFIG` names a kubeconfig. It applies the CRD from
//! `crds/`, creates a namespace, a CA Secret, a profile and Ingresses, waits for the
//! controller to render them and report status, checks that the validating webhook denies
//! a bad change, then opts an Ingress out, deletes the profile and checks the cleanup.
//! Everything it creates is named `...-e2e-<random>` and deleted at the end.
//!
//! On kind (any cluster works; nothing here needs an ingress controller):
//!
//! ```sh
//! kind create cluster --name mtls-gate
//! docker build -t mtls-gate:e2e .
//! kind load docker-image mtls-gate:e2e --name mtls-gate
//! helm install mtls-gate ./charts/mtls-gate -n mtls-gate --create-namespace \
//!     --set image.repository=mtls-gate --set image.tag=e2e --set image.pullPolicy=Never \
//!     --set 'clientCaSecretNames={e2e-client-ca}'
//! kubectl -n mtls-gate rollout status deployment/mtls-gate
//! MTLS_GATE_E2E_KUBECONFIG=$HOME/.kube/config \
//!     cargo test --test e2e -- --nocapture --test-threads=1     # or: make e2e
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, ResourceExt};
use mtls_gate::profile::ApiProviderProfile;
use serde_json::{Value, json};

const MANAGER: &str = "mtls-gate-e2e";
const CA_SECRET: &str = "e2e-client-ca";
const VERIFY: &str = "nginx.ingress.kubernetes.io/auth-tls-verify-client";
const RENDERED_BY: &str = "mtls-gate.io/rendered-by";

async fn client(path: &str) -> Client {
    let kc = Kubeconfig::read_from(path).expect("readable kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("usable kubeconfig");
    Client::try_from(config).expect("client")
}

/// Polls `check` every second until it returns `Some`, for at most `secs` seconds.
async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..secs {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

fn ca_pem() -> String {
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mtls-gate e2e client CA");
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

fn ingress(
    ns: &str,
    name: &str,
    host: &str,
    paths: &[(&str, &str)],
    profile: Option<&str>,
) -> Value {
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
        v["metadata"]["labels"] = json!({"mtls-gate.io/profile": p});
    }
    v
}

fn annotation(ing: &Ingress, key: &str) -> Option<String> {
    ing.annotations().get(key).cloned()
}

struct Names {
    ns: String,
    profile: String,
    auth_host: String,
    mtls_auth_host: String,
    api_host: String,
}

#[tokio::test]
async fn e2e_render_status_webhook_opt_out_and_deletion() {
    let Ok(kubeconfig) = std::env::var("MTLS_GATE_E2E_KUBECONFIG") else {
        println!("skipped: MTLS_GATE_E2E_KUBECONFIG not set");
        return;
    };
    let client = client(&kubeconfig).await;
    let suffix = format!(
        "{:06x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 0xff_ffff
    );
    let names = Names {
        ns: format!("mtls-gate-e2e-{suffix}"),
        profile: format!("e2e-{suffix}"),
        auth_host: format!("auth.e2e-{suffix}.example"),
        mtls_auth_host: format!("mtls-auth.e2e-{suffix}.example"),
        api_host: format!("mtls-api.e2e-{suffix}.example"),
    };
    let outcome = tokio::spawn(scenario(client.clone(), names_clone(&names))).await;
    // Clean up whatever the scenario left, then report its result.
    let profiles: Api<ApiProviderProfile> = Api::all(client.clone());
    let _ = profiles
        .delete(&names.profile, &DeleteParams::default())
        .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(&names.ns, &DeleteParams::default()).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn names_clone(n: &Names) -> Names {
    Names {
        ns: n.ns.clone(),
        profile: n.profile.clone(),
        auth_host: n.auth_host.clone(),
        mtls_auth_host: n.mtls_auth_host.clone(),
        api_host: n.api_host.clone(),
    }
}

async fn scenario(client: Client, n: Names) {
    let ssa = PatchParams::apply(MANAGER).force();

    // 1. The CRD, as shipped.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/apiproviderprofiles.yaml"
    ))
    .unwrap();
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect();
    for crd in docs {
        let name = crd["metadata"]["name"].as_str().unwrap().to_string();
        crds.patch(&name, &ssa, &Patch::Apply(&crd)).await.unwrap();
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

    // 2. Namespace and the client CA.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &n.ns,
            &ssa,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n.ns}}),
            ),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &n.ns);
    secrets
        .patch(
            CA_SECRET,
            &ssa,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": CA_SECRET, "namespace": n.ns},
                "stringData": {"ca.crt": ca_pem()}})),
        )
        .await
        .unwrap();

    // 3. The profile (split host) and the Ingresses.
    let profiles: Api<ApiProviderProfile> = Api::all(client.clone());
    let profile = json!({
        "apiVersion": "mtls-gate.io/v1alpha1", "kind": "ApiProviderProfile",
        "metadata": {"name": n.profile},
        "spec": {
            "issuer": format!("https://{}", n.auth_host),
            "apiBaseUrls": [format!("https://{}/open-banking-nz/v3.0", n.api_host)],
            "authorizationServer": {
                "tokenEndpoint": format!("https://{}/token", n.mtls_auth_host),
                "pushedAuthorizationRequestEndpoint": format!("https://{}/par", n.mtls_auth_host),
                "backchannelAuthenticationEndpoint": format!("https://{}/bc-authorize", n.mtls_auth_host),
                "introspectionEndpoint": format!("https://{}/introspect", n.mtls_auth_host),
                "revocationEndpoint": format!("https://{}/revoke", n.mtls_auth_host),
                "userinfoEndpoint": format!("https://{}/userinfo", n.mtls_auth_host)
            },
            "clientCertificate": {"caSecretName": CA_SECRET},
            "ingressController": "ingress-nginx",
            "ingressClassName": "nginx",
            "enforcement": "Deny"
        }
    });
    profiles
        .patch(&n.profile, &ssa, &Patch::Apply(&profile))
        .await
        .unwrap();
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &n.ns);
    let pp = PostParams::default();
    for v in [
        ingress(
            &n.ns,
            "public",
            &n.auth_host,
            &[
                ("/authorize", "Exact"),
                ("/jwks", "Exact"),
                ("/.well-known/openid-configuration", "Exact"),
            ],
            None,
        ),
        ingress(
            &n.ns,
            "mtls-auth",
            &n.mtls_auth_host,
            &[("/", "Prefix")],
            Some(&n.profile),
        ),
        ingress(
            &n.ns,
            "api",
            &n.api_host,
            &[("/open-banking-nz/v3.0", "Prefix")],
            Some(&n.profile),
        ),
    ] {
        let ing: Ingress = serde_json::from_value(v).unwrap();
        ingresses.create(&pp, &ing).await.unwrap();
    }

    // 4. Rendered (by the mutating webhook at creation, or by the controller).
    for name in ["mtls-auth", "api"] {
        eventually(&format!("Ingress {name} rendered"), 90, || {
            let ingresses = ingresses.clone();
            let profile = n.profile.clone();
            async move {
                let ing = ingresses.get(name).await.ok()?;
                (annotation(&ing, VERIFY).as_deref() == Some("on")
                    && annotation(&ing, RENDERED_BY).as_deref() == Some(profile.as_str()))
                .then_some(())
            }
        })
        .await;
    }

    // 5. Status: current generation, Ready and Compliant, counts and coverage.
    let status = eventually("profile status compliant", 90, || {
        let profiles = profiles.clone();
        let name = n.profile.clone();
        async move {
            let p = profiles.get(&name).await.ok()?;
            let s = p.status.clone()?;
            let ok = s.observed_generation == p.metadata.generation
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Compliant" && c.status == "True")
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                && s.managed_ingresses == 2;
            ok.then_some(s)
        }
    })
    .await;
    assert_eq!(status.violations, 0);
    let token = status
        .coverage
        .iter()
        .find(|c| c.endpoint == "/token" && c.host == n.mtls_auth_host)
        .expect("/token in coverage");
    assert!(token.served && token.compliant);
    assert_eq!(token.routes[0].ingress, format!("{}/mtls-auth", n.ns));
    assert_eq!(token.routes[0].client_auth, "required");
    let p = profiles.get(&n.profile).await.unwrap();
    assert!(p.finalizers().iter().any(|f| f == "mtls-gate.io/cleanup"));

    // 6. The validating webhook denies a bad change: a client certificate on /authorize.
    let mut bad: Ingress = serde_json::from_value(ingress(
        &n.ns,
        "authorize-with-mtls",
        &n.auth_host,
        &[("/authorize", "Exact")],
        None,
    ))
    .unwrap();
    bad.annotations_mut().insert(VERIFY.into(), "on".into());
    bad.annotations_mut().insert(
        "nginx.ingress.kubernetes.io/auth-tls-secret".into(),
        format!("{}/{CA_SECRET}", n.ns),
    );
    match ingresses.create(&pp, &bad).await {
        Err(kube::Error::Api(s)) => {
            assert!(
                (400..500).contains(&s.code) && s.message.contains("denied"),
                "denied by admission: {s:?}"
            );
        }
        other => panic!("the webhook admitted a client certificate on /authorize: {other:?}"),
    }
    let patch = json!({"metadata": {"annotations": {VERIFY: "on",
        "nginx.ingress.kubernetes.io/auth-tls-secret": format!("{}/{CA_SECRET}", n.ns)}}});
    let denied = ingresses
        .patch("public", &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(s)) if s.message.contains("denied")),
        "an UPDATE that breaks the TLS host is denied: {denied:?}"
    );

    // 7. Opt-out: with enforcement Audit the cleanup is admitted; the label goes, what was
    // rendered goes.
    profiles
        .patch(
            &n.profile,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"enforcement": "Audit"}})),
        )
        .await
        .unwrap();
    ingresses
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"mtls-gate.io/profile": null}}})),
        )
        .await
        .unwrap();
    eventually("opted-out Ingress cleaned", 90, || {
        let ingresses = ingresses.clone();
        async move {
            let ing = ingresses.get("api").await.ok()?;
            (annotation(&ing, VERIFY).is_none() && annotation(&ing, RENDERED_BY).is_none())
                .then_some(())
        }
    })
    .await;

    // 8. Deleting the profile removes the rest, then the finalizer lets it go.
    profiles
        .delete(&n.profile, &DeleteParams::default())
        .await
        .unwrap();
    eventually("profile deleted", 90, || {
        let profiles = profiles.clone();
        let name = n.profile.clone();
        async move { profiles.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    let ing = ingresses.get("mtls-auth").await.unwrap();
    assert!(
        annotation(&ing, RENDERED_BY).is_none(),
        "cleaned: {:?}",
        ing.annotations()
    );
    assert!(annotation(&ing, VERIFY).is_none());
}
