//! `check` reports: JSON (design.md §5 shape) and a text report grouped by host.

use std::collections::BTreeMap;
use std::io::Write;

use crate::engine::Verdict;
use crate::manifest::Manifests;
use crate::violation::{Violation, ViolationCode};

pub fn write_json(
    out: &mut dyn Write,
    _manifests: &Manifests,
    verdict: &Verdict,
) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, verdict)?;
    writeln!(out)?;
    Ok(())
}

pub fn write_text(
    out: &mut dyn Write,
    manifests: &Manifests,
    verdict: &Verdict,
) -> anyhow::Result<()> {
    for (_, profile) in &manifests.profiles {
        let violations: Vec<_> = verdict
            .violations
            .iter()
            .filter(|v| v.profile == profile.name)
            .collect();
        writeln!(
            out,
            "Profile {} ({}, enforcement {}): {}",
            profile.name,
            profile.controller(),
            profile.spec.enforcement.as_str(),
            if violations.is_empty() {
                "COMPLIANT"
            } else {
                "NOT COMPLIANT"
            }
        )?;
        for host in verdict.hosts.iter().filter(|h| h.profile == profile.name) {
            let coverage: Vec<_> = verdict
                .coverage
                .iter()
                .filter(|c| c.profile == profile.name && c.host == host.host)
                .collect();
            let served = coverage.iter().filter(|c| c.served).count();
            let compliant = coverage.iter().filter(|c| c.served && c.compliant).count();
            writeln!(out, "  host {}", host.host)?;
            writeln!(out, "    client auth: {}", host.client_auth)?;
            writeln!(
                out,
                "    endpoints: {served} of {} served, {compliant} compliant",
                coverage.len()
            )?;
            // Host-level findings first, then route findings grouped by route.
            let on_host: Vec<_> = violations.iter().filter(|v| v.host == host.host).collect();
            for v in on_host.iter().filter(|v| v.path.is_none()) {
                let place = v
                    .ingress
                    .as_ref()
                    .map(|i| format!(" [ingress {i}]"))
                    .unwrap_or_default();
                writeln!(out, "    FAIL {}{place}", v.code)?;
                writeln!(out, "         {}", v.message)?;
            }
            let mut by_route: BTreeMap<(ViolationCode, String, String), Vec<&&&Violation>> =
                BTreeMap::new();
            for v in on_host.iter().filter(|v| v.path.is_some()) {
                let ingress = v
                    .ingress
                    .as_ref()
                    .map(ToString::to_string)
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
                writeln!(
                    out,
                    "    FAIL {code} [ingress {ingress}, path {path}] {} endpoint(s): {}",
                    endpoints.len(),
                    endpoints.join(", ")
                )?;
                writeln!(out, "         {}", group[0].message)?;
            }
        }
        writeln!(out)?;
    }
    let mut by_code: BTreeMap<ViolationCode, usize> = BTreeMap::new();
    for v in &verdict.violations {
        *by_code.entry(v.code).or_default() += 1;
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
    writeln!(
        out,
        "Summary: {} profile(s), {} Ingress(es); {} violation(s){}; {served} of {} endpoint URLs served, {compliant} compliant.",
        manifests.profiles.len(),
        manifests.view.ingress_count(),
        verdict.violations.len(),
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({counts})")
        },
        verdict.coverage.len(),
    )?;
    Ok(())
}
