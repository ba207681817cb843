//! `check` reports: JSON (design.md §5 shape) and a text report grouped by host.

use std::collections::BTreeMap;
use std::io::Write;

use crate::engine::Verdict;
use crate::manifest::Manifests;
use crate::violation::ViolationCode;

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
            for v in violations.iter().filter(|v| v.host == host.host) {
                let place = [
                    v.endpoint.map(|e| format!("endpoint {e}")),
                    v.ingress.as_ref().map(|i| format!("ingress {i}")),
                    v.path.as_ref().map(|p| format!("path {p}")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
                writeln!(out, "    FAIL {} [{}]", v.code, place)?;
                writeln!(out, "         {}", v.message)?;
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
