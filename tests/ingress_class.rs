//! Which Ingresses a profile with `spec.ingressClassName` considers (issue: "an Ingress with
//! no class that routes /token on the public host is called compliant"). An Ingress of
//! another class is not served by the profile's controller; one without a class may be (the
//! API server assigns the default IngressClass to new class-less Ingresses, and ingress-nginx
//! serves old ones with `--watch-ingress-without-class`), so it counts, and the finding says
//! why.

use std::path::Path;

use mtls_gate::engine::evaluate;
use mtls_gate::manifest::{load, parse_documents, read_paths};
use mtls_gate::violation::ViolationCode;

/// `/token` on the public (TLS) host, with the given class.
fn token_on_public_host(class: &str) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: token-shortcut
  namespace: open-banking
  {class}
spec:
  {spec_class}
  tls: [{{hosts: [auth.bank.example], secretName: auth-tls}}]
  rules:
    - host: auth.bank.example
      http:
        paths:
          - {{path: /token, pathType: Exact, backend: {{service: {{name: authorization-server, port: {{number: 8443}}}}}}}}
"#,
        class = match class.strip_prefix("annotation:") {
            Some(value) => format!("annotations: {{kubernetes.io/ingress.class: {value}}}"),
            None => String::new(),
        },
        spec_class = match class {
            "" => String::new(),
            c if c.starts_with("annotation:") => String::new(),
            c => format!("ingressClassName: {c}"),
        }
    )
}

#[test]
fn class_less_ingresses_count_for_a_profile_with_a_class() {
    // (class of the extra Ingress, counted, note in the finding)
    let cases = [
        ("nginx", true, false),
        ("", true, true),
        ("annotation:nginx", true, false),
        ("other", false, false),
        ("annotation:other", false, false),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (class, counted, noted) in cases {
        let mut docs = read_paths(&[root.join("examples/nginx-split-host")]).expect("example");
        docs.extend(
            parse_documents(Path::new("extra.yaml"), &token_on_public_host(class)).expect("yaml"),
        );
        let manifests = load(docs, "default", true).expect("loads");
        let profile = manifests.profiles[0].1.clone();
        let verdict = evaluate(&profile, &manifests.view).expect("evaluates");
        let finding = verdict.violations.iter().find(|v| {
            v.code == ViolationCode::MtlsNotRequired
                && v.ingress
                    .as_ref()
                    .is_some_and(|k| k.name == "token-shortcut")
        });
        assert_eq!(
            finding.is_some(),
            counted,
            "class {class:?}: {:#?}",
            verdict.violations
        );
        if let Some(f) = finding {
            assert_eq!(
                f.message.contains("it has no ingress class"),
                noted,
                "class {class:?}: {}",
                f.message
            );
        }
    }
}
