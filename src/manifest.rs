//! Reading manifests for the CLI (and the webhook's standalone mode): YAML or JSON files
//! and directories, multi-document files and `kind: List`, into a [`ClusterView`] and the
//! profiles they carry. Every error names the file, the document and, where possible, the
//! field.

use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;

use crate::cluster::{ClusterView, Completeness};
use crate::model::{IngressView, MiddlewareView, SecretView, TlsOptionView};
use crate::profile::{ApiProviderProfile, CompiledProfile};

/// Where a document came from: file and 1-based document number (plus the item of a List).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub document: usize,
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file.display(), self.document)?;
        if let Some(item) = self.item {
            write!(f, " item {item}")?;
        }
        Ok(())
    }
}

/// One parsed document (List items are separate documents).
#[derive(Debug, Clone)]
pub struct Document {
    pub origin: Origin,
    pub value: serde_json::Value,
}

impl Document {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: not valid {format}: {message}")]
    Syntax {
        origin: Origin,
        format: &'static str,
        message: String,
    },
    #[error("{origin} ({kind} {name:?}): {field}: {message}")]
    Invalid {
        origin: Box<Origin>,
        kind: String,
        name: String,
        field: String,
        message: String,
    },
    #[error(
        "no ApiProviderProfile found: pass --profile FILE or include an ApiProviderProfile document in the inputs"
    )]
    NoProfile,
    #[error("{}: no .yaml, .yml or .json files found", path.display())]
    NoManifests { path: PathBuf },
}

/// Reads files and directories (recursively, `.yaml`/`.yml`/`.json`, in name order).
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<Document>, InputError> {
    let mut docs = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| InputError::Read {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_files(path, &mut files)?;
            if files.is_empty() {
                return Err(InputError::NoManifests { path: path.clone() });
            }
            for file in files {
                docs.extend(read_file(&file)?);
            }
        } else {
            docs.extend(read_file(path)?);
        }
    }
    Ok(docs)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let read = |p: &Path| {
        std::fs::read_dir(p).map_err(|source| InputError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let mut entries: Vec<PathBuf> = Vec::new();
    for entry in read(dir)? {
        let entry = entry.map_err(|source| InputError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        entries.push(entry.path());
    }
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses one file into its documents.
pub fn read_file(path: &Path) -> Result<Vec<Document>, InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| InputError::Syntax {
        origin: Origin {
            file: path.to_path_buf(),
            document: 1,
            item: None,
        },
        format: "UTF-8 text",
        message: e.to_string(),
    })?;
    parse_documents(path, &text)
}

/// Parses YAML (or JSON, which the YAML parser also reads) text into documents.
pub fn parse_documents(path: &Path, text: &str) -> Result<Vec<Document>, InputError> {
    let is_json = path.extension().and_then(|e| e.to_str()) == Some("json");
    let mut values = Vec::new();
    if is_json {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
        for (i, value) in stream.enumerate() {
            let value = value.map_err(|e| InputError::Syntax {
                origin: Origin {
                    file: path.to_path_buf(),
                    document: i + 1,
                    item: None,
                },
                format: "JSON",
                message: e.to_string(),
            })?;
            values.push(value);
        }
    } else {
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let value = serde_json::Value::deserialize(doc).map_err(|e| InputError::Syntax {
                origin: Origin {
                    file: path.to_path_buf(),
                    document: i + 1,
                    item: None,
                },
                format: "YAML",
                message: e.to_string(),
            })?;
            values.push(value);
        }
    }
    let mut docs = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let origin = Origin {
            file: path.to_path_buf(),
            document: i + 1,
            item: None,
        };
        match &value {
            serde_json::Value::Null => continue,
            serde_json::Value::Object(_) => {}
            other => {
                return Err(InputError::Syntax {
                    origin,
                    format: "Kubernetes manifest",
                    message: format!(
                        "expected a mapping with apiVersion and kind, found {}",
                        json_type(other)
                    ),
                });
            }
        }
        if value["kind"].as_str() == Some("List")
            || value["kind"].as_str().is_some_and(|k| k.ends_with("List"))
                && value.get("items").is_some()
        {
            let items = value["items"].as_array().cloned().unwrap_or_default();
            for (j, item) in items.into_iter().enumerate() {
                docs.push(Document {
                    origin: Origin {
                        item: Some(j),
                        ..origin.clone()
                    },
                    value: item,
                });
            }
        } else {
            docs.push(Document { origin, value });
        }
    }
    Ok(docs)
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

/// Deserialises a document into a typed object, naming the offending field on error.
pub fn typed<T: serde::de::DeserializeOwned>(doc: &Document) -> Result<T, InputError> {
    serde_path_to_error::deserialize(&doc.value).map_err(|e| InputError::Invalid {
        origin: Box::new(doc.origin.clone()),
        kind: doc.kind().to_string(),
        name: doc.name().to_string(),
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Objects loaded from manifests.
#[derive(Debug, Default)]
pub struct Manifests {
    pub documents: Vec<Document>,
    pub profiles: Vec<(Origin, CompiledProfile)>,
    pub view: ClusterView,
}

const TRAEFIK_GROUPS: &[&str] = &["traefik.io/", "traefik.containo.us/"];

/// Builds the view and compiles the profiles. `namespace` is given to namespaced objects
/// that have none.
pub fn load(
    documents: Vec<Document>,
    namespace: &str,
    assume_complete: bool,
) -> Result<Manifests, InputError> {
    let mut view = ClusterView::new();
    if assume_complete {
        view.secrets_completeness = Completeness::Complete;
        view.traefik_completeness = Completeness::Complete;
    }
    let mut profiles = Vec::new();
    for doc in &documents {
        let traefik = TRAEFIK_GROUPS
            .iter()
            .any(|g| doc.api_version().starts_with(g));
        match doc.kind() {
            "ApiProviderProfile" => {
                if doc.api_version() != "mtls-gate.io/v1alpha1" {
                    return Err(invalid(
                        doc,
                        "apiVersion",
                        format!(
                            "{:?} is not supported; use mtls-gate.io/v1alpha1",
                            doc.api_version()
                        ),
                    ));
                }
                let profile: ApiProviderProfile = typed(doc)?;
                let compiled = profile
                    .compile()
                    .map_err(|e| invalid(doc, &e.field, e.message))?;
                if profiles
                    .iter()
                    .any(|(_, p): &(Origin, CompiledProfile)| p.name == compiled.name)
                {
                    return Err(invalid(
                        doc,
                        "metadata.name",
                        format!("profile {:?} is defined twice", compiled.name),
                    ));
                }
                profiles.push((doc.origin.clone(), compiled));
            }
            "Ingress" => {
                if doc.api_version() != "networking.k8s.io/v1" {
                    return Err(invalid(
                        doc,
                        "apiVersion",
                        format!(
                            "{:?} is not supported; mtls-gate evaluates networking.k8s.io/v1 Ingresses",
                            doc.api_version()
                        ),
                    ));
                }
                let ing: Ingress = typed(doc)?;
                if ing.metadata.name.as_deref().is_none_or(str::is_empty) {
                    return Err(invalid(doc, "metadata.name", "is required".into()));
                }
                view.upsert_ingress(IngressView::from_ingress(&ing, namespace));
            }
            "Secret" if doc.api_version() == "v1" => {
                let secret: Secret = typed(doc)?;
                view.upsert_secret(SecretView::from_secret(&secret, namespace));
            }
            "TLSOption" if traefik => {
                view.upsert_tls_option(TlsOptionView::from_value(&doc.value, namespace))
            }
            "Middleware" if traefik => {
                view.upsert_middleware(MiddlewareView::from_value(&doc.value, namespace))
            }
            _ => {}
        }
    }
    for (_, p) in &profiles {
        view.upsert_profile(p.clone());
    }
    Ok(Manifests {
        documents,
        profiles,
        view,
    })
}

fn invalid(doc: &Document, field: &str, message: String) -> InputError {
    InputError::Invalid {
        origin: Box::new(doc.origin.clone()),
        kind: doc.kind().to_string(),
        name: doc.name().to_string(),
        field: field.to_string(),
        message,
    }
}

/// Serialises a manifest as YAML that YAML 1.1 parsers (kubectl, client-go) read back the
/// same way: plain scalars such as `on`, `off`, `yes` or `y` are booleans in YAML 1.1, so an
/// annotation value like `auth-tls-verify-client: on` would be rejected; they are quoted.
pub fn to_yaml(value: &serde_json::Value) -> Result<String, serde_yaml_ng::Error> {
    const YAML11_BOOLS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    let text = serde_yaml_ng::to_string(value)?;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let fixed = line
            .rsplit_once(": ")
            .filter(|(_, v)| YAML11_BOOLS.contains(v))
            .or_else(|| {
                line.trim_start()
                    .strip_prefix("- ")
                    .filter(|v| YAML11_BOOLS.contains(v))
                    .map(|v| (&line[..line.len() - v.len() - 2], v))
            });
        match fixed {
            Some((head, v)) if line.trim_start().starts_with("- ") && !line.contains(": ") => {
                out.push_str(&format!("{head}- '{v}'"));
            }
            Some((head, v)) => out.push_str(&format!("{head}: '{v}'")),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn yaml_1_1_booleans_are_quoted() {
        let v = serde_json::json!({"metadata": {"annotations": {"a/verify": "on", "b": "off", "c": "optional", "d": "true"}}, "items": ["yes", "x"]});
        let text = super::to_yaml(&v).unwrap();
        assert!(text.contains("a/verify: 'on'"), "{text}");
        assert!(text.contains("b: 'off'"), "{text}");
        assert!(text.contains("c: optional"), "{text}");
        assert!(text.contains("d: 'true'"), "{text}");
        assert!(text.contains("- 'yes'"), "{text}");
        let back: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
