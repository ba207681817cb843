//! The offline command line (design.md §5): `check`, `render`, `endpoints`, `crd`, `init`,
//! `version`. A thin shell: it reads manifests, calls the engine and the renderer, and prints.

pub mod discovery;
pub mod init;
pub mod junit;
pub mod report;
pub mod sarif;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use kube::CustomResourceExt;

use crate::catalog::ENDPOINT_TABLE;
use crate::engine::{self, Verdict};
use crate::manifest::{self, InputError, Manifests};
use crate::model::ObjectKey;
use crate::profile::ApiProviderProfile;
use crate::render::{self, RenderPlan};

/// Exit status of `check` and `render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Compliant = 0,
    Violations = 1,
    UnusableInput = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Report formats of `check` (design.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckOutput {
    /// Grouped by profile and host, for people.
    Text,
    /// The verdict as one JSON object (violations with file, line and enforcement).
    Json,
    /// The JSON report as YAML.
    Yaml,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
    /// JUnit XML: one test case per endpoint URL per profile, for CI test reports.
    Junit,
}

/// When the text report uses colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Only when standard output is a terminal and NO_COLOR is unset.
    Auto,
    Always,
    Never,
}

/// Whether output to a stream may carry ANSI colour: only a terminal, and only when the user
/// has not opted out (<https://no-color.org>: a non-empty `NO_COLOR`; `TERM=dumb`).
pub fn terminal_wants_colour(is_terminal: bool) -> bool {
    is_terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderOutput {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// An ApiProviderProfile manifest (in addition to profiles found in the inputs).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Namespace for namespaced objects whose manifests name none.
    #[arg(long, short = 'n', default_value = "default", value_name = "NAMESPACE")]
    pub namespace: String,
    /// Treat Secrets, TLSOptions and Middlewares absent from the inputs as missing from the
    /// cluster (by default only those present are checked).
    #[arg(long)]
    pub assume_complete: bool,
    /// YAML/JSON files or directories (searched recursively for .yaml, .yml, .json); `-`
    /// reads standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: CheckOutput,
    /// Which findings make the exit status 1: any; warn (findings of Deny and Warn
    /// profiles); deny (only Deny profiles). The report always lists every finding.
    #[arg(long, value_enum, default_value = "any", value_name = "WHICH")]
    pub fail_on: report::FailOn,
    /// Colour in the text report.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    pub color: ColorChoice,
    /// The bank's OIDC discovery document (JSON) to check against the profile: its issuer,
    /// endpoint URLs and mtls_endpoint_aliases.
    #[arg(long, value_name = "FILE")]
    pub discovery: Option<PathBuf>,
    /// The URL the discovery document is published at, checked against its issuer.
    #[arg(long, value_name = "URL", requires = "discovery")]
    pub discovery_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format for the rendered manifests.
    #[arg(long, short = 'o', value_enum, default_value = "yaml")]
    pub output: RenderOutput,
}

#[derive(Debug, Args)]
pub struct EndpointsArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
}

/// Reads and compiles the inputs of `check` and `render`.
pub fn load_inputs(args: &InputArgs) -> Result<Manifests, InputError> {
    let mut paths = Vec::new();
    if let Some(p) = &args.profile {
        paths.push(p.clone());
    }
    paths.extend(args.paths.iter().cloned());
    let documents = manifest::read_paths(&paths)?;
    let manifests = manifest::load(documents, &args.namespace, args.assume_complete)?;
    if manifests.profiles.is_empty() {
        return Err(InputError::NoProfile);
    }
    Ok(manifests)
}

/// Evaluates every profile of the inputs.
pub fn evaluate_all(manifests: &Manifests) -> anyhow::Result<Verdict> {
    let mut verdict = Verdict {
        compliant: true,
        ..Default::default()
    };
    for (origin, profile) in &manifests.profiles {
        let v = engine::evaluate(profile, &manifests.view).with_context(|| origin.to_string())?;
        verdict.merge(v);
    }
    Ok(verdict)
}

pub fn check(args: &CheckArgs, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let manifests = match load_inputs(&args.input) {
        Ok(m) => m,
        Err(e) => return unusable(err, &e),
    };
    let verdict = match evaluate_all(&manifests) {
        Ok(v) => v,
        Err(e) => return unusable(err, &format!("{e:#}")),
    };
    let discovery = match &args.discovery {
        Some(file) => match check_discovery(&manifests, file, args.discovery_url.as_deref()) {
            Ok(findings) => findings,
            Err(e) => return unusable(err, &format!("{e:#}")),
        },
        None => Vec::new(),
    };
    let report = report::Report {
        manifests: &manifests,
        verdict: &verdict,
        discovery: &discovery,
    };
    let written = match args.output {
        CheckOutput::Json => report::write_json(out, &report),
        CheckOutput::Yaml => report::write_yaml(out, &report),
        CheckOutput::Sarif => sarif::write_sarif(out, &report),
        CheckOutput::Junit => junit::write_junit(out, &report),
        CheckOutput::Text => {
            let colour = match args.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => terminal_wants_colour(std::io::stdout().is_terminal()),
            };
            report::write_text(out, &report, colour)
        }
    };
    if let Err(e) = written.and_then(|()| out.flush().map_err(Into::into)) {
        // A reader that stops early (`| head`) is its choice; the exit status still counts.
        let kind = e
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                e.downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            });
        let broken_pipe = kind == Some(std::io::ErrorKind::BrokenPipe);
        if !broken_pipe {
            return unusable(err, &format!("cannot write the report: {e}"));
        }
    }
    let outcome = if report.fails(args.fail_on) {
        Outcome::Violations
    } else {
        Outcome::Compliant
    };
    drop_in_background(manifests);
    outcome
}

/// Frees `manifests` on a thread of its own: `check` is the last thing the command does,
/// and freeing the documents of a 10,000-Ingress input took a tenth of its time; the
/// process exits without waiting for it (callers in a long-lived process still get the
/// memory back). Freed here if the thread cannot start.
fn drop_in_background(manifests: Manifests) {
    let _detached = std::thread::Builder::new()
        .name("manifest-drop".into())
        // As deep as the main thread may nest.
        .stack_size(8 << 20)
        .spawn(move || drop(manifests));
}

/// Reads the discovery document and checks it against the profile it belongs to: the only
/// profile, or the one whose issuer it names.
fn check_discovery(
    manifests: &Manifests,
    file: &std::path::Path,
    published_at: Option<&str>,
) -> anyhow::Result<Vec<discovery::DiscoveryFinding>> {
    let doc = discovery::DiscoveryDocument::read(file)?;
    let profile = match manifests.profiles.as_slice() {
        [(_, only)] => only,
        all => all
            .iter()
            .map(|(_, p)| p)
            .find(|p| p.spec.issuer == doc.issuer)
            .with_context(|| {
                format!(
                    "{}: the inputs hold {} profiles and none has issuer {:?}; pass the profile the document belongs to with --profile",
                    file.display(),
                    all.len(),
                    doc.issuer
                )
            })?,
    };
    Ok(discovery::check(profile, &doc, published_at))
}

fn unusable(err: &mut dyn Write, e: &dyn std::fmt::Display) -> Outcome {
    let _ = writeln!(err, "error: {e}");
    Outcome::UnusableInput
}

/// Renders every profile's managed Ingresses and labelled objects (Gateways) and returns
/// the rendered documents.
pub fn render_documents(
    manifests: &Manifests,
) -> anyhow::Result<(Vec<serde_json::Value>, Vec<RenderPlan>)> {
    let mut plans = Vec::new();
    for (origin, profile) in &manifests.profiles {
        let managed: Vec<_> = manifests.view.ingresses().map(|i| i.as_ref()).collect();
        let mut managed = managed;
        managed.sort_by(|a, b| a.key.cmp(&b.key));
        let plan = render::render_profile(profile, &manifests.view, managed)
            .with_context(|| origin.to_string())?;
        plans.push(plan);
    }
    let changes: BTreeMap<ObjectKey, &crate::dialect::AnnotationChanges> = plans
        .iter()
        .flat_map(|p| p.ingresses.iter().map(|r| (r.ingress.clone(), &r.changes)))
        .collect();
    let mut docs = Vec::new();
    let mut refused_objects = Vec::new();
    for doc in &manifests.documents {
        let mut value = doc.value.clone();
        // Labelled objects the dialect renders in place (Gateways), as the mutating
        // webhook renders them at admission.
        let namespace = value["metadata"]["namespace"]
            .as_str()
            .unwrap_or(&manifests.default_namespace)
            .to_string();
        match render::render_labelled_object(&manifests.view, &value, &namespace) {
            Ok(Some(rendered)) => value = rendered,
            Ok(None) => {}
            Err(message) => {
                let label = value["metadata"]["labels"][crate::model::PROFILE_LABEL].as_str();
                // Labelled for a profile the inputs lack: reported with the first.
                let plan = plans
                    .iter()
                    .position(|p| Some(p.profile.as_str()) == label)
                    .unwrap_or(0);
                refused_objects.push((plan, message));
            }
        }
        if doc.kind() == "Ingress" {
            let ns = value["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let key = ObjectKey::new(ns, doc.name());
            if let Some(change) = changes.get(&key) {
                apply_changes(&mut value, change);
            }
        }
        // Objects the renderer creates replace stale copies of themselves in the inputs.
        let replaced = plans
            .iter()
            .flat_map(|p| &p.objects)
            .any(|o| same_object(o, &value));
        if !replaced {
            docs.push(value);
        }
    }
    docs.extend(plans.iter().flat_map(|p| p.objects.iter().cloned()));
    for (plan, message) in refused_objects {
        if let Some(plan) = plans.get_mut(plan) {
            plan.object_refusals.push(message);
        }
    }
    Ok((docs, plans))
}

fn same_object(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    a["kind"] == b["kind"]
        && a["metadata"]["name"] == b["metadata"]["name"]
        && a["metadata"]["namespace"] == b["metadata"]["namespace"]
}

/// Applies annotation changes to a full Ingress manifest.
pub fn apply_changes(ingress: &mut serde_json::Value, changes: &crate::dialect::AnnotationChanges) {
    let Some(meta) = ingress.get_mut("metadata").and_then(|m| m.as_object_mut()) else {
        return;
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    if !annotations.is_object() {
        *annotations = serde_json::json!({});
    }
    if let Some(map) = annotations.as_object_mut() {
        for k in &changes.remove {
            map.remove(k);
        }
        for (k, v) in &changes.set {
            map.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
        if map.is_empty() {
            meta.remove("annotations");
        }
    }
}

pub fn render(args: &RenderArgs, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let manifests = match load_inputs(&args.input) {
        Ok(m) => m,
        Err(e) => return unusable(err, &e),
    };
    let (docs, plans) = match render_documents(&manifests) {
        Ok(r) => r,
        Err(e) => return unusable(err, &format!("{e:#}")),
    };
    let written = match args.output {
        RenderOutput::Json => serde_json::to_writer_pretty(
            &mut *out,
            &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs}),
        )
        .map_err(anyhow::Error::from)
        .and_then(|_| writeln!(out).map_err(anyhow::Error::from)),
        RenderOutput::Yaml => docs.iter().try_for_each(|d| -> anyhow::Result<()> {
            writeln!(out, "---")?;
            write!(out, "{}", manifest::to_yaml(d)?)?;
            Ok(())
        }),
    };
    if let Err(e) = written {
        return unusable(err, &format!("cannot write the output: {e}"));
    }
    for plan in &plans {
        for u in &plan.unrendered {
            let _ = writeln!(
                err,
                "note: {} {} serves endpoints of profile {} on host {}; render writes Ingress annotations only and leaves it unchanged (check, the webhook and status judge it: set its spec.tls.options and middlewares yourself)",
                u.kind, u.object, plan.profile, u.host
            );
        }
    }
    let refusals: Vec<_> = plans
        .iter()
        .flat_map(|p| p.refusals.iter().map(move |r| (&p.profile, r)))
        .collect();
    for (profile, r) in &refusals {
        let _ = writeln!(
            err,
            "cannot render Ingress {} for profile {profile}: {}",
            r.ingress, r.message
        );
    }
    let object_refusals: Vec<_> = plans
        .iter()
        .flat_map(|p| p.object_refusals.iter().map(move |r| (&p.profile, r)))
        .collect();
    for (profile, message) in &object_refusals {
        let _ = writeln!(err, "cannot render for profile {profile}: {message}");
    }
    if refusals.is_empty() && object_refusals.is_empty() {
        Outcome::Compliant
    } else {
        Outcome::Violations
    }
}

pub fn endpoints(args: &EndpointsArgs, out: &mut dyn Write) -> std::io::Result<()> {
    match args.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &ENDPOINT_TABLE[..])?;
            writeln!(out)
        }
        Output::Text => {
            writeln!(
                out,
                "{:<24} {:<62} {:<6} DISCOVERY KEY",
                "CATEGORY", "ENDPOINT", "SCHEME"
            )?;
            for row in ENDPOINT_TABLE.iter() {
                writeln!(
                    out,
                    "{:<24} {:<62} {:<6} {}",
                    row.category.title(),
                    row.endpoint,
                    row.scheme.as_str(),
                    // The discovery document itself has no metadata key: it is where the
                    // others are published (OIDC Discovery §4).
                    row.discovery_key
                        .filter(|_| row.location != crate::catalog::Location::Issuer)
                        .unwrap_or("-")
                )?;
            }
            writeln!(out, "{} endpoints", ENDPOINT_TABLE.len())
        }
    }
}

/// The CRD manifest, exactly as `crds/apiproviderprofiles.yaml` holds it.
pub fn crd_yaml() -> anyhow::Result<String> {
    let body = serde_yaml_ng::to_string(&ApiProviderProfile::crd())?;
    Ok(format!(
        "# Generated by `mtls-gate crd`; do not edit. A test fails when this file differs.\n---\n{body}"
    ))
}
pub mod serve;
