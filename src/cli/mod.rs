//! The offline command line (design.md §5): `check`, `render`, `endpoints`, `crd`.
//! A thin shell: it reads manifests, calls the engine and the renderer, and prints.

pub mod report;

use std::collections::BTreeMap;
use std::io::Write;
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
    /// YAML/JSON files or directories (searched recursively for .yaml, .yml, .json).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
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
    let written = match args.output {
        Output::Json => report::write_json(out, &manifests, &verdict),
        Output::Text => report::write_text(out, &manifests, &verdict),
    };
    if let Err(e) = written {
        return unusable(err, &format!("cannot write the report: {e}"));
    }
    if verdict.compliant {
        Outcome::Compliant
    } else {
        Outcome::Violations
    }
}

fn unusable(err: &mut dyn Write, e: &dyn std::fmt::Display) -> Outcome {
    let _ = writeln!(err, "error: {e}");
    Outcome::UnusableInput
}

/// Renders every profile's managed Ingresses and returns the rendered documents.
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
    for doc in &manifests.documents {
        let mut value = doc.value.clone();
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
    if refusals.is_empty() {
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
                    row.discovery_key.unwrap_or("-")
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
