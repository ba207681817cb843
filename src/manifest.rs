//! Reading manifests for the CLI (and the webhook's standalone mode): YAML or JSON files
//! and directories, multi-document files and `kind: List`, into a [`ClusterView`] and the
//! profiles they carry. Every error names the file, the document and, where possible, the
//! field.

use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::Deserialize;

use crate::cluster::{ClusterView, Completeness};
use crate::dialect;
use crate::model::{IngressClassView, IngressView, ObjectKey, SecretView};
use crate::profile::{ApiProviderProfile, CompiledProfile};

/// Where a document came from: file and 1-based document number (plus the item of a List),
/// and the 1-based line it starts on where the reader could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub document: usize,
    pub item: Option<usize>,
    /// First line of the document's (or List item's) content; `None` when unknown.
    pub line: Option<usize>,
}

/// The file name standard input is reported under (`-` as a PATH).
pub const STDIN_NAME: &str = "<stdin>";

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
    /// The `path:` entries of the document's text with their lines, in text order, so that
    /// findings about an Ingress path can point at the line that declares it.
    pub path_lines: Vec<(String, usize)>,
}

impl Document {
    /// The line of the first `path:` entry equal to `path`, else the document's first line.
    pub fn line_of_path(&self, path: &str) -> Option<usize> {
        self.path_lines
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, line)| *line)
            .or(self.origin.line)
    }

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

/// Reads files and directories (recursively, `.yaml`/`.yml`/`.json`, in name order); `-`
/// reads standard input (once).
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<Document>, InputError> {
    let mut docs = Vec::new();
    let mut stdin_read = false;
    for path in paths {
        if path.as_os_str() == "-" {
            if std::mem::replace(&mut stdin_read, true) {
                return Err(InputError::Read {
                    path: PathBuf::from(STDIN_NAME),
                    source: std::io::Error::other("`-` is given more than once"),
                });
            }
            docs.extend(read_stdin()?);
            continue;
        }
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

/// Parses standard input (YAML, which includes JSON) into documents.
fn read_stdin() -> Result<Vec<Document>, InputError> {
    use std::io::Read;
    let name = Path::new(STDIN_NAME);
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Read {
            path: name.to_path_buf(),
            source,
        })?;
    parse_documents(name, &utf8(name, bytes)?)
}

fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String, InputError> {
    String::from_utf8(bytes).map_err(|e| InputError::Syntax {
        origin: Origin {
            file: path.to_path_buf(),
            document: 1,
            item: None,
            line: None,
        },
        format: "UTF-8 text",
        message: e.to_string(),
    })
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
    parse_documents(path, &utf8(path, bytes)?)
}

/// Parses YAML (or JSON, which the YAML parser also reads) text into documents.
pub fn parse_documents(path: &Path, text: &str) -> Result<Vec<Document>, InputError> {
    let is_json = path.extension().and_then(|e| e.to_str()) == Some("json");
    let origin_of = |i: usize| Origin {
        file: path.to_path_buf(),
        document: i + 1,
        item: None,
        line: None,
    };
    let mut values = Vec::new();
    // Line spans of the documents, when the text could be split as the parser splits it.
    let index = lines::LineIndex::new(text);
    let mut spans: Vec<lines::Span> = Vec::new();
    if is_json {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
        loop {
            let start = stream.byte_offset();
            let Some(value) = stream.next() else { break };
            let value = value.map_err(|e| InputError::Syntax {
                origin: origin_of(values.len()),
                format: "JSON",
                message: e.to_string(),
            })?;
            spans.push(index.span_of_bytes(start, stream.byte_offset()));
            values.push(value);
        }
    } else {
        spans = index.yaml_documents();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let parallel = (threads > 1 && text.len() >= PARALLEL_PARSE_MIN_BYTES)
            .then(|| parse_yaml_in_parallel(text, &index, &spans, threads))
            .flatten();
        match parallel {
            Some(parsed) => values = parsed,
            None => {
                for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
                    let value =
                        serde_json::Value::deserialize(doc).map_err(|e| InputError::Syntax {
                            origin: origin_of(i),
                            format: "YAML",
                            message: e.to_string(),
                        })?;
                    values.push(value);
                }
            }
        }
    }
    if spans.len() != values.len() {
        spans.clear();
    }
    let mut docs = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let span = spans.get(i).copied();
        let origin = Origin {
            line: span.and_then(|s| index.first_content_line(s)),
            ..origin_of(i)
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
            // Item spans are known only for block-style YAML lists whose item count matches.
            let item_spans = span
                .filter(|_| !is_json)
                .map(|s| index.yaml_list_items(s))
                .filter(|spans| spans.len() == items.len())
                .unwrap_or_default();
            for (j, item) in items.into_iter().enumerate() {
                let item_span = item_spans.get(j).copied();
                docs.push(Document {
                    origin: Origin {
                        item: Some(j),
                        line: item_span
                            .and_then(|s| index.first_content_line(s))
                            .or(origin.line),
                        ..origin.clone()
                    },
                    path_lines: item_span.map(|s| index.path_entries(s)).unwrap_or_default(),
                    value: item,
                });
            }
        } else {
            docs.push(Document {
                path_lines: span.map(|s| index.path_entries(s)).unwrap_or_default(),
                origin,
                value,
            });
        }
    }
    Ok(docs)
}

/// Streams at least this large are parsed on several threads (`check` of a 10,000-Ingress
/// cluster dump spends most of its time in the YAML parser).
const PARALLEL_PARSE_MIN_BYTES: usize = 1 << 20;

/// The documents of a YAML stream, parsed in about `threads` contiguous runs of documents
/// on one thread each, or `None` when the stream should be parsed in one piece: a stream
/// with directives (`%YAML`, `%TAG`: they apply across the cut), or
/// any run that fails to parse or yields another number of documents than its lines show
/// (the sequential parse then reports the error with its true position). Runs are cut only
/// before a `---` line at the start of a line, which always starts a document: the YAML
/// 1.2 spec forbids such a line inside any scalar (§9.1.4, `c-forbidden`), so each run
/// parses to the documents the whole stream has there.
fn parse_yaml_in_parallel(
    text: &str,
    index: &lines::LineIndex<'_>,
    spans: &[lines::Span],
    threads: usize,
) -> Option<Vec<serde_json::Value>> {
    let runs = index.document_runs(spans, threads, text.len())?;
    if runs.len() < 2 {
        return None;
    }
    let parse_run = |run: &lines::Run| -> Option<Vec<serde_json::Value>> {
        let mut out = Vec::with_capacity(run.documents);
        for doc in serde_yaml_ng::Deserializer::from_str(&text[run.bytes.clone()]) {
            out.push(serde_json::Value::deserialize(doc).ok()?);
        }
        (out.len() == run.documents).then_some(out)
    };
    let parsed: Vec<Option<Vec<serde_json::Value>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|run| {
                std::thread::Builder::new()
                    .name("manifest-parse".into())
                    // As deep as the main thread may nest.
                    .stack_size(8 << 20)
                    .spawn_scoped(scope, || parse_run(run))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.ok().and_then(|h| h.join().ok().flatten()))
            .collect()
    });
    let mut values = Vec::with_capacity(spans.len());
    for run in parsed {
        values.extend(run?);
    }
    Some(values)
}

/// Line bookkeeping for locating documents and `path:` entries in manifest text. It splits
/// the text the way YAML does (YAML 1.2 §9.2: a `---` line starts a document, a `...` line
/// ends one) and is checked against the parser's document count: on any disagreement the
/// caller drops the lines rather than report wrong ones.
mod lines {
    /// Lines `start..end` (1-based, end exclusive) of the text.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Span {
        pub start: usize,
        pub end: usize,
    }

    /// Consecutive documents of a stream: their bytes, and how many there are.
    pub struct Run {
        pub bytes: std::ops::Range<usize>,
        pub documents: usize,
    }

    pub struct LineIndex<'a> {
        lines: Vec<&'a str>,
        /// Byte offset of each line's start.
        starts: Vec<usize>,
    }

    fn is_start_marker(line: &str) -> bool {
        line == "---" || line.starts_with("--- ") || line.starts_with("---\t")
    }

    fn is_end_marker(line: &str) -> bool {
        line == "..." || line.starts_with("... ") || line.starts_with("...\t")
    }

    /// Not blank and not a comment.
    fn is_content(line: &str) -> bool {
        let t = line.trim();
        !t.is_empty() && !t.starts_with('#')
    }

    fn indent(line: &str) -> usize {
        line.len() - line.trim_start_matches(' ').len()
    }

    impl<'a> LineIndex<'a> {
        pub fn new(text: &'a str) -> Self {
            let mut starts = vec![0];
            starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
            if starts.last() == Some(&text.len()) {
                starts.pop();
            }
            let lines = text.split('\n').take(starts.len()).collect();
            Self { lines, starts }
        }

        fn line(&self, n: usize) -> &'a str {
            self.lines[n - 1].trim_end_matches('\r')
        }

        /// The 1-based line holding byte `offset`.
        fn line_at(&self, offset: usize) -> usize {
            self.starts.partition_point(|&s| s <= offset).max(1)
        }

        /// The span of bytes `start..end` (a JSON value).
        pub fn span_of_bytes(&self, start: usize, end: usize) -> Span {
            Span {
                start: self.line_at(start),
                end: self.line_at(end.saturating_sub(1)) + 1,
            }
        }

        /// The documents of a YAML stream, in order.
        pub fn yaml_documents(&self) -> Vec<Span> {
            let mut spans = Vec::new();
            let mut open: Option<usize> = None;
            for n in 1..=self.lines.len() {
                let line = self.line(n);
                if is_start_marker(line) {
                    if let Some(start) = open.replace(n) {
                        spans.push(Span { start, end: n });
                    }
                } else if is_end_marker(line) {
                    if let Some(start) = open.take() {
                        spans.push(Span { start, end: n });
                    }
                } else if open.is_none() && is_content(line) && !line.starts_with('%') {
                    open = Some(n);
                }
            }
            if let Some(start) = open {
                spans.push(Span {
                    start,
                    end: self.lines.len() + 1,
                });
            }
            spans
        }

        /// The first line of a span with content (a `--- value` marker line counts).
        pub fn first_content_line(&self, span: Span) -> Option<usize> {
            (span.start..span.end).find(|&n| {
                let line = self.line(n);
                match line.strip_prefix("---") {
                    Some(rest) if is_start_marker(line) => is_content(rest),
                    _ => is_content(line),
                }
            })
        }

        /// The documents `spans` (of [`LineIndex::yaml_documents`]) of a text of
        /// `text_len` bytes cut into about `parts` runs of similar size, each starting at
        /// byte 0 or at a `---` line; `None` when a line starts with a directive (`%`).
        pub fn document_runs(
            &self,
            spans: &[Span],
            parts: usize,
            text_len: usize,
        ) -> Option<Vec<Run>> {
            if (1..=self.lines.len()).any(|n| self.line(n).starts_with('%')) {
                return None;
            }
            let target = text_len.div_ceil(parts.max(1));
            let mut runs = Vec::new();
            let (mut start, mut documents) = (0usize, 0usize);
            for (i, span) in spans.iter().enumerate() {
                let at = self.starts[span.start - 1];
                if i > 0 && at - start >= target && is_start_marker(self.line(span.start)) {
                    runs.push(Run {
                        bytes: start..at,
                        documents,
                    });
                    (start, documents) = (at, 0);
                }
                documents += 1;
            }
            runs.push(Run {
                bytes: start..text_len,
                documents,
            });
            Some(runs)
        }

        /// The items of a block-style `items:` sequence at the top level of a document.
        pub fn yaml_list_items(&self, doc: Span) -> Vec<Span> {
            let Some(items_line) =
                (doc.start..doc.end).find(|&n| self.line(n).trim_end() == "items:")
            else {
                return Vec::new();
            };
            let is_item = |line: &str| {
                let t = line.trim_start_matches(' ');
                t == "-" || t.starts_with("- ")
            };
            let Some(first) = (items_line + 1..doc.end).find(|&n| is_content(self.line(n))) else {
                return Vec::new();
            };
            if !is_item(self.line(first)) {
                return Vec::new();
            }
            let depth = indent(self.line(first));
            let mut spans: Vec<Span> = Vec::new();
            let mut end = doc.end;
            for n in first..doc.end {
                let line = self.line(n);
                if !is_content(line) {
                    continue;
                }
                let at = indent(line);
                if at == depth && is_item(line) {
                    if let Some(last) = spans.last_mut() {
                        last.end = n;
                    }
                    spans.push(Span {
                        start: n,
                        end: doc.end,
                    });
                } else if at < depth || (at == depth && !is_item(line)) {
                    end = n;
                    break;
                }
            }
            if let Some(last) = spans.last_mut() {
                last.end = end;
            }
            spans
        }

        /// Every `path:` entry (YAML `path: /x`, JSON `"path": "/x"`) in a span, with its line.
        pub fn path_entries(&self, span: Span) -> Vec<(String, usize)> {
            let mut out = Vec::new();
            for n in span.start..span.end {
                let line = self.line(n);
                // YAML keys `path:` in block style or inside a flow mapping `{path: /x, ...}`.
                let mut from = 0;
                while let Some(at) = line[from..].find("path:").map(|i| i + from) {
                    from = at + 5;
                    let before = line[..at].trim_end();
                    let key_start = before.is_empty() || before.ends_with(['-', '{', ',', '?']);
                    if !key_start {
                        continue;
                    }
                    let in_flow = before.contains('{');
                    if let Some(value) = yaml_scalar(&line[at + 5..], in_flow) {
                        out.push((value, n));
                    }
                }
                let mut rest = line;
                while let Some(at) = rest.find("\"path\"") {
                    rest = &rest[at + 6..];
                    let Some(value) = rest.trim_start().strip_prefix(':') else {
                        continue;
                    };
                    if let Some(value) = json_string(value.trim_start()) {
                        out.push((value, n));
                    }
                }
            }
            out
        }
    }

    /// A plain, single- or double-quoted YAML scalar on one line (a trailing comment dropped;
    /// in a flow mapping a plain scalar also ends at `,` or `}`).
    fn yaml_scalar(text: &str, in_flow: bool) -> Option<String> {
        let t = text.trim();
        if t.starts_with('"') {
            return json_string(t);
        }
        if let Some(inner) = t.strip_prefix('\'') {
            let mut out = String::new();
            let mut chars = inner.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\'' if chars.peek() == Some(&'\'') => {
                        chars.next();
                        out.push('\'');
                    }
                    '\'' => return Some(out),
                    c => out.push(c),
                }
            }
            return None;
        }
        let mut value = t.split(" #").next().unwrap_or("");
        if in_flow {
            value = value.split([',', '}']).next().unwrap_or("");
        }
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_string())
    }

    /// The JSON string literal at the start of `text`.
    fn json_string(text: &str) -> Option<String> {
        let body = text.strip_prefix('"')?;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return serde_json::from_str(&text[..i + 2]).ok(),
                _ => escaped = false,
            }
        }
        None
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn yaml_streams_split_like_the_parser() {
            // (text, expected document spans)
            let cases: &[(&str, &[(usize, usize)])] = &[
                ("a: 1\n", &[(1, 2)]),
                ("---\na: 1\n", &[(1, 3)]),
                ("# c\n---\na: 1\n---\nb: 2\n", &[(2, 4), (4, 6)]),
                ("a: 1\n---\nb: 2\n...\n", &[(1, 2), (2, 4)]),
                ("%YAML 1.2\n---\na: 1\n", &[(2, 4)]),
            ];
            for (text, want) in cases {
                let got: Vec<_> = LineIndex::new(text)
                    .yaml_documents()
                    .iter()
                    .map(|s| (s.start, s.end))
                    .collect();
                assert_eq!(&got, want, "{text:?}");
            }
        }

        #[test]
        fn path_entries_in_yaml_and_json() {
            let text = "spec:\n  rules:\n  - http:\n      paths:\n      - path: /token # x\n      - backend: {}\n        path: '/it''s'\n      - {\"path\": \"/j\\u0073on\", \"pathType\": \"Exact\"}\n      - path: \"/q\"\n      - {pathType: Prefix, path: /flow, backend: {}}\n      - {path: '/f2', x: 1}\n";
            let index = LineIndex::new(text);
            let got = index.path_entries(Span { start: 1, end: 12 });
            let want = vec![
                ("/token".to_string(), 5),
                ("/it's".to_string(), 7),
                ("/json".to_string(), 8),
                ("/q".to_string(), 9),
                ("/flow".to_string(), 10),
                ("/f2".to_string(), 11),
            ];
            assert_eq!(got, want);
        }

        #[test]
        fn list_items_of_a_kubectl_dump() {
            let text = "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: A\n- apiVersion: v1\n  kind: B\n  spec:\n  - x\nkind: List\n";
            let index = LineIndex::new(text);
            let doc = index.yaml_documents()[0];
            let items: Vec<_> = index
                .yaml_list_items(doc)
                .iter()
                .map(|s| (s.start, s.end))
                .collect();
            assert_eq!(items, vec![(3, 5), (5, 9)]);
        }
    }
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
    // Most documents are valid: read them without tracking the path, which allocates a
    // segment per field, and read a failing one again with it to name the field.
    T::deserialize(&doc.value).or_else(|_| {
        serde_path_to_error::deserialize(&doc.value).map_err(|e| InputError::Invalid {
            origin: Box::new(doc.origin.clone()),
            kind: doc.kind().to_string(),
            name: doc.name().to_string(),
            field: e.path().to_string(),
            message: e.inner().to_string(),
        })
    })
}

/// Like [`typed`], but as strict as `kubectl apply --validate=strict`: a field the type does
/// not define (a misspelt `ingresClassName`) is an error naming it, not silently dropped.
/// `apiVersion` and `kind` are read by the dispatch, not by the type.
pub fn typed_strict<T: serde::de::DeserializeOwned>(doc: &Document) -> Result<T, InputError> {
    let mut unknown: Vec<String> = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let value: T =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&doc.value, &mut record))
            .map_err(|e| InputError::Invalid {
                origin: Box::new(doc.origin.clone()),
                kind: doc.kind().to_string(),
                name: doc.name().to_string(),
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
    match unknown
        .into_iter()
        .find(|field| field != "apiVersion" && field != "kind")
    {
        Some(field) => Err(invalid(
            doc,
            &field,
            format!(
                "unknown field {:?}: {} {} does not define it (kubectl --validate=strict rejects it too); check its spelling",
                field.rsplit('.').next().unwrap_or(&field),
                doc.kind(),
                doc.api_version()
            ),
        )),
        None => Ok(value),
    }
}

/// Objects loaded from manifests.
#[derive(Debug, Default)]
pub struct Manifests {
    pub documents: Vec<Document>,
    pub profiles: Vec<(Origin, CompiledProfile)>,
    pub view: ClusterView,
    /// The namespace given to namespaced objects whose manifests name none.
    pub default_namespace: String,
    /// Index into `documents` of each Ingress, for locating findings.
    ingress_documents: std::collections::HashMap<ObjectKey, usize>,
}

/// Where a finding points in the inputs: a file and, where known, a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: PathBuf,
    pub line: Option<usize>,
}

impl Manifests {
    /// The document of the Ingress `namespace/name`.
    pub fn ingress_document(&self, key: &ObjectKey) -> Option<&Document> {
        self.ingress_documents
            .get(key)
            .and_then(|&i| self.documents.get(i))
    }

    /// The Ingress's `path:` entry for `path` (or the Ingress) in the inputs.
    pub fn locate_ingress(&self, key: &ObjectKey, path: Option<&str>) -> Option<SourceLocation> {
        let doc = self.ingress_document(key)?;
        Some(SourceLocation {
            file: doc.origin.file.clone(),
            line: match path {
                Some(p) => doc.line_of_path(p),
                None => doc.origin.line,
            },
        })
    }

    /// The document that defines the profile `name`.
    pub fn locate_profile(&self, name: &str) -> Option<SourceLocation> {
        self.profiles
            .iter()
            .find(|(_, p)| p.name == name)
            .map(|(origin, _)| SourceLocation {
                file: origin.file.clone(),
                line: origin.line,
            })
    }
}

/// Builds the view and compiles the profiles. `namespace` is given to namespaced objects
/// that have none.
pub fn load(
    documents: Vec<Document>,
    namespace: &str,
    assume_complete: bool,
) -> Result<Manifests, InputError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    load_on(documents, namespace, assume_complete, threads)
}

/// Inputs with at least this many Ingresses have them read into views on several threads
/// (`check` of a 10,000-Ingress cluster dump spent a fifth of its time on it).
const PARALLEL_LOAD_MIN_INGRESSES: usize = 1_000;

/// [`load`] with the Ingress views read on up to `threads` threads. Reading a view is pure
/// ([`ingress_view`]), so the views, and the error of the first bad document in input
/// order, are those of reading them one by one.
fn load_on(
    documents: Vec<Document>,
    namespace: &str,
    assume_complete: bool,
    threads: usize,
) -> Result<Manifests, InputError> {
    let mut ingress_views = ingress_views_in_parallel(&documents, namespace, threads);
    let mut view = ClusterView::new();
    if assume_complete {
        view.set_secrets_completeness(Completeness::Complete);
        view.set_ingress_classes_completeness(Completeness::Complete);
        for (_, _, kind) in dialect::owned_kinds() {
            view.set_kind_completeness(*kind, Completeness::Complete);
        }
    }
    let mut profiles = Vec::new();
    for (i, doc) in documents.iter().enumerate() {
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
                let profile: ApiProviderProfile = typed_strict(doc)?;
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
                let read = ingress_views
                    .get_mut(i)
                    .and_then(Option::take)
                    .unwrap_or_else(|| ingress_view(doc, namespace));
                view.upsert_ingress(read?);
            }
            "IngressClass" if doc.api_version() == "networking.k8s.io/v1" => {
                let class: IngressClass = typed(doc)?;
                if class.metadata.name.as_deref().is_none_or(str::is_empty) {
                    return Err(invalid(doc, "metadata.name", "is required".into()));
                }
                view.upsert_ingress_class(IngressClassView::from_class(&class));
            }
            "Secret" if doc.api_version() == "v1" => {
                let secret: Secret = typed(doc)?;
                view.upsert_secret(SecretView::from_secret(&secret, namespace));
            }
            kind => {
                if let Some((_, owner, owned)) = dialect::kind_owner(doc.api_version(), kind) {
                    let object = owner
                        .reduce(owned, &doc.value, namespace)
                        .map_err(|e| invalid(doc, &e.field, e.message))?;
                    view.upsert_object(*owned, object);
                }
            }
        }
    }
    for (_, p) in &profiles {
        view.upsert_profile(p.clone());
    }
    let ingress_documents = documents
        .iter()
        .enumerate()
        .filter(|(_, d)| d.kind() == "Ingress")
        .map(|(i, d)| {
            let ns = d.value["metadata"]["namespace"]
                .as_str()
                .unwrap_or(namespace);
            (ObjectKey::new(ns, d.name()), i)
        })
        .collect();
    Ok(Manifests {
        documents,
        profiles,
        view,
        default_namespace: namespace.to_string(),
        ingress_documents,
    })
}

/// The view of an Ingress document, or why it cannot be read.
fn ingress_view(doc: &Document, namespace: &str) -> Result<IngressView, InputError> {
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
    Ok(IngressView::from_ingress(&ing, namespace))
}

/// The [`ingress_view`] of each Ingress document, by document index, read in contiguous
/// runs of Ingresses on up to `threads` threads; empty for inputs with fewer than
/// [`PARALLEL_LOAD_MIN_INGRESSES`] Ingresses (read one by one in [`load_on`]). A view a
/// thread did not deliver (it could not start) is `None`, and read there too.
fn ingress_views_in_parallel(
    documents: &[Document],
    namespace: &str,
    threads: usize,
) -> Vec<Option<Result<IngressView, InputError>>> {
    let ingresses: Vec<usize> = documents
        .iter()
        .enumerate()
        .filter(|(_, d)| d.kind() == "Ingress")
        .map(|(i, _)| i)
        .collect();
    if threads < 2 || ingresses.len() < PARALLEL_LOAD_MIN_INGRESSES {
        return Vec::new();
    }
    let runs = ingresses.chunks(ingresses.len().div_ceil(threads));
    let read_run = |run: &[usize]| -> Vec<(usize, Result<IngressView, InputError>)> {
        run.iter()
            .map(|&i| (i, ingress_view(&documents[i], namespace)))
            .collect()
    };
    let mut views: Vec<Option<Result<IngressView, InputError>>> = std::iter::repeat_with(|| None)
        .take(documents.len())
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .map(|run| {
                std::thread::Builder::new()
                    .name("manifest-load".into())
                    // As deep as the main thread may nest.
                    .stack_size(8 << 20)
                    .spawn_scoped(scope, move || read_run(run))
            })
            .collect();
        for handle in handles {
            // A run whose thread did not start or ended early is read on the main thread
            // (a panic there shows as it would have without threads).
            for (i, read) in handle.ok().and_then(|h| h.join().ok()).unwrap_or_default() {
                views[i] = Some(read);
            }
        }
    });
    views
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
    use super::*;

    /// The documents of `text` as the parser reads the whole stream.
    fn sequential(text: &str) -> Result<Vec<serde_json::Value>, String> {
        serde_yaml_ng::Deserializer::from_str(text)
            .map(|doc| serde_json::Value::deserialize(doc).map_err(|e| e.to_string()))
            .collect()
    }

    fn in_parallel(text: &str, threads: usize) -> Option<Vec<serde_json::Value>> {
        let index = lines::LineIndex::new(text);
        parse_yaml_in_parallel(text, &index, &index.yaml_documents(), threads)
    }

    #[test]
    fn large_streams_parse_in_runs_to_the_documents_of_the_whole_stream() {
        let cluster = crate::synthetic::cluster_yaml(2_000);
        assert!(
            cluster.len() >= PARALLEL_PARSE_MIN_BYTES,
            "{}",
            cluster.len()
        );
        // (stream, why it is interesting)
        let cases: &[(&str, &str)] = &[
            (&cluster, "a 2,000-Ingress cluster dump"),
            (
                "a: 1\n---\nb: |\n  x\n  ---\n---\n# c\n---\nc: [1, 2]\n...\n---\nd: \"---\"\n",
                "an implicit first document, indented and quoted `---`, comments, an end marker",
            ),
            ("---\n---\na: 1\n---\n", "empty documents"),
        ];
        for (text, why) in cases {
            for threads in [2, 3, 8] {
                assert_eq!(
                    in_parallel(text, threads),
                    Some(sequential(text).expect("valid")),
                    "{why}, {threads} threads"
                );
            }
        }
    }

    #[test]
    fn streams_the_runs_could_misread_are_parsed_whole() {
        // (stream, why it must not be cut)
        let cases: &[(&str, &str)] = &[
            (
                "a: 1\n---\nb: 2\n...\n%YAML 1.2\n---\nc: 3\n",
                "a directive applies to the document after it",
            ),
            (
                "a: 1\n---\nb: \"x\n---\ny\"\n",
                "a `---` line inside a quoted scalar is an error of the whole stream",
            ),
            (
                "a: 1\n---\nb: 2\n---\nc: [1,\n",
                "a syntax error in one run",
            ),
        ];
        for (text, why) in cases {
            assert_eq!(in_parallel(text, 2), None, "{why}");
        }
        // The error is the whole stream's, with its position in the file.
        let text = format!(
            "{}---\nb: \"x\n---\ny\"\n",
            crate::synthetic::cluster_yaml(2_000)
        );
        let error = parse_documents(Path::new("cluster.yaml"), &text)
            .expect_err("a document indicator inside a quoted scalar");
        let whole = sequential(&text).expect_err("the whole stream fails too");
        assert!(error.to_string().contains(&whole), "{error} / {whole}");
    }

    #[test]
    fn ingresses_read_on_several_threads_are_those_read_one_by_one() {
        let cluster = crate::synthetic::cluster_yaml(PARALLEL_LOAD_MIN_INGRESSES + 200);
        let documents = parse_documents(Path::new("cluster.yaml"), &cluster).expect("valid");
        let ingress_at = |n: usize| {
            documents
                .iter()
                .enumerate()
                .filter(|(_, d)| d.kind() == "Ingress")
                .nth(n)
                .map(|(i, _)| i)
                .expect("enough Ingresses")
        };
        let (early, late) = (ingress_at(150), ingress_at(1_100));
        type Change = Box<dyn Fn(&mut [Document])>;
        // (why, change to the cluster, the document the error names or `None` for a view)
        let cases: Vec<(&str, Change, Option<usize>)> = vec![
            ("a valid cluster dump", Box::new(|_| {}), None),
            (
                "a later document of the same Ingress replaces the earlier one",
                Box::new(move |docs| {
                    let mut again = docs[early].clone();
                    again.value["spec"]["rules"][0]["http"]["paths"][0]["path"] =
                        serde_json::json!("/moved");
                    docs[late] = again;
                }),
                None,
            ),
            (
                "the first of two bad Ingresses, in different runs, is reported",
                Box::new(move |docs| {
                    docs[late].value["spec"]["rules"] = serde_json::json!("not a list");
                    docs[early].value["metadata"]["name"] = serde_json::json!("");
                }),
                Some(early),
            ),
            (
                "an Ingress of an unsupported apiVersion",
                Box::new(move |docs| {
                    docs[late].value["apiVersion"] = serde_json::json!("extensions/v1beta1");
                }),
                Some(late),
            ),
            (
                "a bad document of another kind before a bad Ingress is reported",
                Box::new(move |docs| {
                    docs[late].value["spec"]["tls"] = serde_json::json!(7);
                    docs[early].value = serde_json::json!({
                        "apiVersion": "networking.k8s.io/v1",
                        "kind": "IngressClass",
                        "metadata": {"name": "nginx"},
                        "spec": {"controller": ["not", "a", "string"]},
                    });
                }),
                Some(early),
            ),
        ];
        for (why, change, error_in) in cases {
            let mut changed = documents.clone();
            change(&mut changed);
            let one_by_one = load_on(changed.clone(), "default", false, 1);
            for threads in [2, 3] {
                let in_parallel = load_on(changed.clone(), "default", false, threads);
                match (&one_by_one, &in_parallel, error_in) {
                    (Ok(want), Ok(got), None) => {
                        // The view's maps iterate in no fixed order.
                        let views = |m: &Manifests| -> Vec<IngressView> {
                            let mut views: Vec<IngressView> =
                                m.view.ingresses().map(|v| v.as_ref().clone()).collect();
                            views.sort_by(|a, b| a.key.cmp(&b.key));
                            views
                        };
                        assert!(views(got) == views(want), "{why}, {threads} threads");
                    }
                    (Err(want), Err(got), Some(doc)) => {
                        assert_eq!(
                            got.to_string(),
                            want.to_string(),
                            "{why}, {threads} threads"
                        );
                        assert!(
                            got.to_string().contains(&changed[doc].origin.to_string()),
                            "{why}: {got}"
                        );
                    }
                    (want, got, _) => panic!("{why}, {threads} threads: {got:?}, want {want:?}"),
                }
            }
        }
    }

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
