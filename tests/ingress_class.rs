//! Which Ingresses a profile with `spec.ingressClassName` considers (issue: "an Ingress with
//! no class that routes /token on the public host is called compliant"). An Ingress of
//! another class is not served by the profile's controller; one without a class may be (the
//! API server assigns the default IngressClass to new class-less Ingresses, and ingress-nginx
//! serves old ones with `--watch-ingress-without-class`), so it counts, and the finding says
//! why. An Ingress of another class counts when its IngressClass names the same controller
//! as the profile's class (ingress-nginx and Traefik serve every such class), or when the
//! IngressClass objects are unknown (fail closed).

use std::path::Path;

use mtls_gate::engine::Verdict;
use mtls_gate::engine::evaluate;
use mtls_gate::manifest::{load, parse_documents, read_paths};
use mtls_gate::violation::{Violation, ViolationCode};

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

fn ingress_class(name: &str, controller: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: {name}}}\nspec: {{controller: {controller}}}\n"
    )
}

const NGINX: &str = "k8s.io/ingress-nginx";

/// The finding that `/token` is served without a certificate by the extra Ingress.
fn token_exposed(verdict: &Verdict) -> Option<&Violation> {
    verdict.violations.iter().find(|v| {
        v.code == ViolationCode::MtlsNotRequired
            && v.ingress
                .as_ref()
                .is_some_and(|k| k.name == "token-shortcut")
    })
}

struct Case {
    /// Class of the extra Ingress (`annotation:` for the legacy annotation).
    class: &'static str,
    /// IngressClass objects given: (name, spec.controller).
    classes: &'static [(&'static str, &'static str)],
    /// `check --assume-complete`: absent IngressClasses do not exist.
    complete: bool,
    counted: bool,
    /// What the finding says about the class, if anything.
    note: Option<&'static str>,
}

#[test]
fn ingresses_the_profiles_controller_serves_count() {
    let both = &[("nginx", NGINX), ("nginx-public", NGINX)][..];
    let cases = [
        Case {
            class: "nginx",
            classes: &[],
            complete: true,
            counted: true,
            note: None,
        },
        Case {
            class: "",
            classes: &[],
            complete: true,
            counted: true,
            note: Some("it has no ingress class"),
        },
        Case {
            class: "annotation:nginx",
            classes: &[],
            complete: true,
            counted: true,
            note: None,
        },
        // No IngressClass "other": the controllers ignore the Ingress.
        Case {
            class: "other",
            classes: &[],
            complete: true,
            counted: false,
            note: None,
        },
        Case {
            class: "annotation:other",
            classes: &[],
            complete: true,
            counted: false,
            note: None,
        },
        // ingress-nginx serves every class whose IngressClass names its controller.
        Case {
            class: "nginx-public",
            classes: both,
            complete: true,
            counted: true,
            note: Some(
                "names controller \"k8s.io/ingress-nginx\", as the profile's class \"nginx\" does",
            ),
        },
        Case {
            class: "nginx-public",
            classes: both,
            complete: false,
            counted: true,
            note: Some("names controller"),
        },
        Case {
            class: "nginx-public",
            classes: &[("nginx", NGINX), ("nginx-public", "example.com/edge")],
            complete: true,
            counted: false,
            note: None,
        },
        // The legacy annotation is compared with the controller's --ingress-class flag: a
        // value that is neither the profile's class nor the flag's default `nginx` is not
        // served.
        Case {
            class: "annotation:nginx-public",
            classes: both,
            complete: true,
            counted: false,
            note: None,
        },
        // Unknown IngressClasses: counted, fail closed.
        Case {
            class: "nginx-public",
            classes: &[],
            complete: false,
            counted: true,
            note: Some("does not know their IngressClass objects"),
        },
        Case {
            class: "nginx-public",
            classes: &[("nginx-public", NGINX)],
            complete: true,
            counted: true,
            note: Some("the profile's IngressClass \"nginx\" does not exist"),
        },
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for case in cases {
        let class = case.class;
        let mut docs = read_paths(&[root.join("examples/nginx-split-host")]).expect("example");
        let mut extra = token_on_public_host(class);
        for (name, controller) in case.classes {
            extra.push_str("---\n");
            extra.push_str(&ingress_class(name, controller));
        }
        docs.extend(parse_documents(Path::new("extra.yaml"), &extra).expect("yaml"));
        let manifests = load(docs, "default", case.complete).expect("loads");
        let profile = manifests.profiles[0].1.clone();
        assert_eq!(profile.spec.ingress_class_name.as_deref(), Some("nginx"));
        let verdict = evaluate(&profile, &manifests.view).expect("evaluates");
        let finding = token_exposed(&verdict);
        let classes = case.classes;
        assert_eq!(
            finding.is_some(),
            case.counted,
            "class {class:?} with {classes:?}: {:#?}",
            verdict.violations
        );
        if let Some(f) = finding {
            match case.note {
                Some(note) => assert!(f.message.contains(note), "class {class:?}: {}", f.message),
                None => assert!(
                    !f.message.contains("class"),
                    "class {class:?}: {}",
                    f.message
                ),
            }
        }
    }
}

/// The legacy `kubernetes.io/ingress.class` annotation is compared with the controller's
/// `--ingress-class` flag, which the ingress-nginx Helm chart sets to
/// `controller.ingressClass` (default `nginx`) whatever the IngressClass is named. With
/// the profile's class named `nginx-public`, an Ingress annotated `nginx` may well be
/// served by the profile's controller: counted, with a note; another value is not.
#[test]
fn the_legacy_annotation_counts_at_the_controller_flags_default() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (annotation, counted) in [("nginx", true), ("nginx-public", true), ("traefik", false)] {
        let mut docs = read_paths(&[root.join("examples/nginx-split-host")]).expect("example");
        let extra = format!(
            "{}---\n{}---\n{}",
            token_on_public_host(&format!("annotation:{annotation}")),
            ingress_class("nginx", NGINX),
            ingress_class("nginx-public", NGINX),
        );
        docs.extend(parse_documents(Path::new("extra.yaml"), &extra).expect("yaml"));
        let manifests = load(docs, "default", true).expect("loads");
        let mut profile = manifests.profiles[0].1.clone();
        profile.spec.ingress_class_name = Some("nginx-public".into());
        let verdict = evaluate(&profile, &manifests.view).expect("evaluates");
        let finding = token_exposed(&verdict);
        assert_eq!(
            finding.is_some(),
            counted,
            "annotation {annotation:?}: {:#?}",
            verdict.violations
        );
        if annotation == "nginx" {
            let message = &finding.expect("counted").message;
            assert!(
                message.contains("--ingress-class flag"),
                "annotation {annotation:?}: {message}"
            );
        }
    }
}
