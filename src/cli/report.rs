//! `check` reports: text (grouped by host), JSON and YAML (design.md §5 shape, each
//! violation with its file, line and enforcement), and the common view of findings that the
//! SARIF and JUnit writers share.

use std::collections::BTreeMap;
use std::io::Write;

use clap::ValueEnum;

use crate::catalog;
use crate::cli::discovery::DiscoveryFinding;
use crate::engine::Verdict;
use crate::manifest::{Manifests, STDIN_NAME, SourceLocation};
use crate::model::ObjectKey;
use crate::profile::Enforcement;
use crate::violation::{Violation, ViolationCode};

/// Which findings make `check` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Every finding, whatever its profile's enforcement.
    Any,
    /// Findings of `Deny` and `Warn` profiles (`Audit` findings are reported only).
    Warn,
    /// Only findings of `Deny` profiles, the ones the cluster would reject.
    Deny,
}

impl FailOn {
    pub fn fails(self, enforcement: Enforcement) -> bool {
        match self {
            FailOn::Any => true,
            FailOn::Warn => enforcement != Enforcement::Audit,
            FailOn::Deny => enforcement == Enforcement::Deny,
        }
    }
}

/// Everything one `check` run found.
pub struct Report<'a> {
    pub manifests: &'a Manifests,
    pub verdict: &'a Verdict,
    /// Findings about the discovery document (`check --discovery`).
    pub discovery: &'a [DiscoveryFinding],
}

/// One finding in the shape every output format shares.
#[derive(Debug, Clone)]
pub struct Finding<'a> {
    /// The violation code (engine or discovery).
    pub code: &'static str,
    pub message: &'a str,
    pub profile: &'a str,
    pub enforcement: Enforcement,
    pub host: Option<&'a str>,
    pub ingress: Option<&'a ObjectKey>,
    pub path: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub url: Option<&'a str>,
    /// Where in the inputs to look; `None` when the object is not in them.
    pub location: Option<SourceLocation>,
}

impl Finding<'_> {
    /// What makes this finding the same finding across runs, apart from its wording and
    /// its line (SARIF `partialFingerprints`).
    pub fn identity(&self) -> String {
        [
            self.code,
            self.profile,
            self.host.unwrap_or(""),
            &self.ingress.map(ToString::to_string).unwrap_or_default(),
            self.path.unwrap_or(""),
            self.url.or(self.endpoint).unwrap_or(""),
        ]
        .join("|")
    }

    /// The file of the location, unless it is standard input.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.location
            .as_ref()
            .map(|l| l.file.as_path())
            .filter(|f| f.as_os_str() != STDIN_NAME)
    }
}

impl<'a> Report<'a> {
    pub fn enforcement(&self, profile: &str) -> Enforcement {
        self.manifests
            .profiles
            .iter()
            .find(|(_, p)| p.name == profile)
            .map(|(_, p)| p.spec.enforcement)
            .unwrap_or_default()
    }

    /// Where a violation points: the Ingress path entry, the Ingress, or the profile.
    pub fn locate(&self, v: &Violation) -> Option<SourceLocation> {
        v.ingress
            .as_ref()
            .and_then(|key| self.manifests.locate_ingress(key, v.path.as_deref()))
            .or_else(|| self.manifests.locate_profile(&v.profile))
    }

    /// Every finding: the engine's violations, then the discovery document's.
    pub fn findings(&self) -> Vec<Finding<'a>> {
        let mut out: Vec<Finding<'a>> = self
            .verdict
            .violations
            .iter()
            .map(|v| Finding {
                code: v.code.as_str(),
                message: &v.message,
                profile: &v.profile,
                enforcement: self.enforcement(&v.profile),
                host: Some(&v.host),
                ingress: v.ingress.as_ref(),
                path: v.path.as_deref(),
                endpoint: v.endpoint,
                url: v.url.as_deref(),
                location: self.locate(v),
            })
            .collect();
        out.extend(self.discovery.iter().map(|d| Finding {
            code: d.code.as_str(),
            message: &d.message,
            profile: &d.profile,
            enforcement: self.enforcement(&d.profile),
            host: None,
            ingress: None,
            path: None,
            endpoint: d.endpoint,
            url: d.url.as_deref(),
            location: Some(d.location.clone()),
        }));
        out
    }

    /// No findings at all.
    pub fn compliant(&self) -> bool {
        self.verdict.violations.is_empty() && self.discovery.is_empty()
    }

    /// Whether `check` exits 1 under `fail_on`.
    pub fn fails(&self, fail_on: FailOn) -> bool {
        self.findings().iter().any(|f| fail_on.fails(f.enforcement))
    }

    /// The JSON report: the verdict's shape, each violation with `enforcement`, `file` and
    /// `line`, plus the discovery findings.
    pub fn to_json(&self) -> anyhow::Result<serde_json::Value> {
        let mut value = serde_json::to_value(self.verdict)?;
        value["compliant"] = self.compliant().into();
        if let Some(items) = value["violations"].as_array_mut() {
            for (item, v) in items.iter_mut().zip(&self.verdict.violations) {
                item["enforcement"] = self.enforcement(&v.profile).as_str().into();
                add_location(item, self.locate(v).as_ref());
            }
        }
        let mut discovery = Vec::new();
        for d in self.discovery {
            let mut item = serde_json::to_value(d)?;
            item["enforcement"] = self.enforcement(&d.profile).as_str().into();
            add_location(&mut item, Some(&d.location));
            discovery.push(item);
        }
        value["discovery"] = discovery.into();
        Ok(value)
    }
}

fn add_location(item: &mut serde_json::Value, location: Option<&SourceLocation>) {
    item["file"] = location.map(|l| l.file.display().to_string()).into();
    item["line"] = location.and_then(|l| l.line).into();
}

pub fn write_json(out: &mut dyn Write, report: &Report) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &report.to_json()?)?;
    writeln!(out)?;
    Ok(())
}

pub fn write_yaml(out: &mut dyn Write, report: &Report) -> anyhow::Result<()> {
    write!(out, "{}", crate::manifest::to_yaml(&report.to_json()?)?)?;
    Ok(())
}

/// Width the text report wraps at.
const WIDTH: usize = 100;

/// ANSI styles, used only when colour is on.
#[derive(Clone, Copy)]
struct Style {
    colour: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn fail(self, text: &str) -> String {
        self.paint("1;31", text)
    }
    fn pass(self, text: &str) -> String {
        self.paint("1;32", text)
    }
}

/// Writes `text` as lines of at most [`WIDTH`] columns, each starting with `indent` (a single
/// word longer than the width stays whole).
fn write_wrapped(out: &mut dyn Write, indent: &str, text: &str) -> std::io::Result<()> {
    write_hanging(out, indent, indent, text)
}

/// Like [`write_wrapped`], with `first` before the first line and `rest` before the others.
/// Colour escapes in `text` are not counted as columns.
fn write_hanging(out: &mut dyn Write, first: &str, rest: &str, text: &str) -> std::io::Result<()> {
    let width = WIDTH.saturating_sub(first.len().max(rest.len())).max(20);
    for (i, line) in wrap(text, width).into_iter().enumerate() {
        writeln!(out, "{}{line}", if i == 0 { first } else { rest })?;
    }
    Ok(())
}

/// Columns a word takes on a terminal (ANSI colour escapes take none).
fn columns(word: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in word.chars() {
        match c {
            '\x1b' => in_escape = true,
            'm' if in_escape => in_escape = false,
            _ if in_escape => {}
            _ => n += 1,
        }
    }
    n
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && columns(&line) + 1 + columns(word) > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// `file:line` of a location, for the text report.
fn place(location: Option<&SourceLocation>) -> String {
    match location {
        Some(SourceLocation {
            file,
            line: Some(line),
        }) => format!(" ({}:{line})", file.display()),
        Some(SourceLocation { file, line: None }) => format!(" ({})", file.display()),
        None => String::new(),
    }
}

pub fn write_text(out: &mut dyn Write, report: &Report, colour: bool) -> anyhow::Result<()> {
    let style = Style { colour };
    let manifests = report.manifests;
    let verdict = report.verdict;
    for (_, profile) in &manifests.profiles {
        let violations: Vec<_> = verdict
            .violations
            .iter()
            .filter(|v| v.profile == profile.name)
            .collect();
        let discovery: Vec<_> = report
            .discovery
            .iter()
            .filter(|d| d.profile == profile.name)
            .collect();
        writeln!(
            out,
            "Profile {} ({}, enforcement {}): {}",
            profile.name,
            profile.controller().as_str(),
            profile.spec.enforcement.as_str(),
            if violations.is_empty() && discovery.is_empty() {
                style.pass("COMPLIANT")
            } else {
                style.fail("NOT COMPLIANT")
            }
        )?;
        if let Some(line) = controller_settings_line(profile) {
            write_hanging(out, "  ", "    ", &line)?;
        }
        for host in verdict.hosts.iter().filter(|h| h.profile == profile.name) {
            let coverage: Vec<_> = verdict
                .coverage
                .iter()
                .filter(|c| c.profile == profile.name && c.host == host.host)
                .collect();
            let served = coverage.iter().filter(|c| c.served).count();
            let compliant = coverage.iter().filter(|c| c.served && c.compliant).count();
            writeln!(out, "  host {}", host.host)?;
            write_hanging(
                out,
                "    ",
                "      ",
                &format!("client auth: {}", host.client_auth),
            )?;
            writeln!(
                out,
                "    endpoints: {served} of {} served, {compliant} compliant",
                coverage.len()
            )?;
            // Host-level findings first, then route findings grouped by route.
            let on_host: Vec<&Violation> = violations
                .iter()
                .copied()
                .filter(|v| v.host == host.host)
                .collect();
            for v in on_host.iter().filter(|v| v.path.is_none()) {
                let ingress = v
                    .ingress
                    .as_ref()
                    .map(|i| format!(" [{} {i}]", object_label(&manifests.view, i)))
                    .unwrap_or_default();
                write_hanging(
                    out,
                    "    ",
                    "         ",
                    &format!(
                        "{} {}{ingress}{}",
                        style.fail("FAIL"),
                        v.code,
                        place(report.locate(v).as_ref())
                    ),
                )?;
                write_wrapped(out, "         ", &v.message)?;
            }
            let mut by_route: BTreeMap<(ViolationCode, String, String), Vec<&Violation>> =
                BTreeMap::new();
            for v in on_host.iter().filter(|v| v.path.is_some()) {
                let ingress = v
                    .ingress
                    .as_ref()
                    .map(|i| format!("{} {i}", object_label(&manifests.view, i)))
                    .unwrap_or_default();
                by_route
                    .entry((v.code, ingress, v.path.clone().unwrap_or_default()))
                    .or_default()
                    .push(v);
            }
            for ((code, ingress, path), group) in by_route {
                let mut endpoints: Vec<&str> = group
                    .iter()
                    .map(|v| v.endpoint.unwrap_or("(unlisted API paths)"))
                    .collect();
                endpoints.dedup();
                write_hanging(
                    out,
                    "    ",
                    "         ",
                    &format!(
                        "{} {code} [{ingress}, path {path}]{}: {} endpoint(s)",
                        style.fail("FAIL"),
                        place(report.locate(group[0]).as_ref()),
                        endpoints.len(),
                    ),
                )?;
                write_endpoint_groups(out, &endpoints)?;
                write_wrapped(out, "         ", &group[0].message)?;
            }
        }
        for d in &discovery {
            write_hanging(
                out,
                "  ",
                "         ",
                &format!(
                    "{} {}{}",
                    style.fail("FAIL"),
                    d.code.as_str(),
                    place(Some(&d.location))
                ),
            )?;
            write_wrapped(out, "         ", &d.message)?;
        }
        writeln!(out)?;
    }
    let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
    for f in report.findings() {
        *by_code.entry(f.code).or_default() += 1;
    }
    let served = verdict.coverage.iter().filter(|c| c.served).count();
    let compliant = verdict
        .coverage
        .iter()
        .filter(|c| c.served && c.compliant)
        .count();
    let counts = by_code
        .iter()
        .map(|(c, n)| format!("{n} {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let routing_objects: usize = crate::dialect::owned_kinds()
        .filter(|(_, _, kind)| kind.kind != "ConfigMap")
        .map(|(_, _, kind)| manifests.view.objects(kind).count())
        .sum();
    let summary = format!(
        "Summary: {} profile(s), {} Ingress(es){}; {} violation(s){}; {served} of {} endpoint URLs served, {compliant} compliant.",
        manifests.profiles.len(),
        manifests.view.ingress_count(),
        if routing_objects == 0 {
            String::new()
        } else {
            format!(" and {routing_objects} controller object(s)")
        },
        by_code.values().sum::<usize>(),
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({counts})")
        },
        verdict.coverage.len(),
    );
    write_wrapped(out, "", &summary)?;
    Ok(())
}

/// Where the controller-wide settings of an ingress controller with a ConfigMap come from:
/// the ConfigMap the profile names, or the defaults `check` assumed (said, never silent).
fn controller_settings_line(profile: &crate::profile::CompiledProfile) -> Option<String> {
    use crate::profile::IngressController::{HaproxyIngress, IngressNginx};
    let assumed = match profile.controller() {
        IngressNginx => "ssl-redirect true, use-forwarded-headers false, no snippets",
        HaproxyIngress => "no global auth-tls-* defaults, ssl-redirect true, no config snippets",
        _ => return None,
    };
    Some(match &profile.spec.controller_config_map {
        Some(c) => format!(
            "controller settings: ConfigMap {}/{} (spec.controllerConfigMap)",
            c.namespace, c.name
        ),
        None => format!(
            "controller settings: the controller ConfigMap's defaults are assumed ({assumed}); name the ConfigMap in spec.controllerConfigMap to check it"
        ),
    })
}

/// Lists endpoints grouped by the table's categories, wrapped.
fn write_endpoint_groups(out: &mut dyn Write, endpoints: &[&str]) -> std::io::Result<()> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for endpoint in endpoints {
        let title = catalog::row(endpoint)
            .map(|r| r.category.title())
            .unwrap_or("Other");
        match groups.iter_mut().find(|(t, _)| *t == title) {
            Some((_, list)) => list.push(endpoint),
            None => groups.push((title, vec![endpoint])),
        }
    }
    for (title, list) in groups {
        let text = format!("{title} ({}): {}", list.len(), list.join(", "));
        let mut lines = wrap(&text, WIDTH - 11).into_iter();
        if let Some(first) = lines.next() {
            writeln!(out, "         {first}")?;
        }
        for line in lines {
            writeln!(out, "           {line}")?;
        }
    }
    Ok(())
}

/// What a finding's object is, for the text report: `ingress`, or the lower-case kind of
/// the dialect-owned object of that name (`httproute`, `ingressroute`, `gateway`).
fn object_label(view: &crate::cluster::ClusterView, key: &crate::model::ObjectKey) -> String {
    if view.ingress(key).is_some() {
        return "ingress".into();
    }
    crate::dialect::owned_kinds()
        .find(|(_, _, kind)| view.objects(kind).any(|o| o.key() == key))
        .map_or_else(
            || "object".into(),
            |(_, _, kind)| kind.kind.to_ascii_lowercase(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_whole_and_lines_short() {
        let text = "/accounts, /accounts/{AccountId}, /accounts/{AccountId}/balances, /balances, /beneficiaries, /direct-debits";
        let lines = wrap(text, 40);
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:?}");
        assert_eq!(lines.join(" "), text);
        assert_eq!(wrap("", 10), vec![String::new()]);
        let long = "x".repeat(50);
        assert_eq!(wrap(&long, 10), vec![long.clone()]);
    }

    #[test]
    fn fail_on_thresholds() {
        use Enforcement::*;
        // (fail_on, enforcement, fails)
        let cases = [
            (FailOn::Any, Audit, true),
            (FailOn::Warn, Audit, false),
            (FailOn::Warn, Warn, true),
            (FailOn::Deny, Warn, false),
            (FailOn::Deny, Deny, true),
        ];
        for (fail_on, enforcement, want) in cases {
            assert_eq!(
                fail_on.fails(enforcement),
                want,
                "{fail_on:?} {enforcement:?}"
            );
        }
    }
}
