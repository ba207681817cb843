//! `check --output junit`: JUnit XML for CI test reports (design.md §5).
//!
//! One `<testsuite>` per profile, one `<testcase>` per endpoint URL of the profile (name: the
//! URL, classname: profile and host), in the de-facto JUnit XML format CI systems read
//! (Jenkins JUnit plugin / Ant `junitreport` shape: `testsuites` > `testsuite` > `testcase`
//! with `failure` or `skipped`). A test case fails when its endpoint is not served
//! compliantly, when a finding names its URL, or when a host-level finding concerns its
//! host; an endpoint no route serves is skipped. Findings that belong to no endpoint URL
//! (discovery findings, findings on hosts without coverage) get a test case of their own,
//! so that every finding fails some test case.

use std::collections::BTreeMap;
use std::io::Write;

use crate::cli::report::{Finding, Report};

/// Escapes text for XML attribute values and character data (XML 1.0 §2.4, §3.3.3), and
/// replaces characters XML 1.0 cannot carry (§2.2).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

struct Case<'a> {
    name: String,
    classname: String,
    failures: Vec<&'a Finding<'a>>,
    /// Why the case is skipped (no failure), if it is.
    skipped: Option<&'static str>,
    /// Coverage says the endpoint is not served compliantly.
    noncompliant: Option<String>,
}

fn failure_text(case: &Case) -> (String, String) {
    let mut codes: Vec<&str> = case.failures.iter().map(|f| f.code).collect();
    codes.dedup();
    let mut body = String::new();
    if let Some(detail) = &case.noncompliant {
        body.push_str(detail);
        body.push('\n');
        if codes.is_empty() {
            codes.push("NotCompliant");
        }
    }
    for f in &case.failures {
        let place = f
            .location
            .as_ref()
            .map(|l| match l.line {
                Some(line) => format!(" ({}:{line})", l.file.display()),
                None => format!(" ({})", l.file.display()),
            })
            .unwrap_or_default();
        body.push_str(&format!("{}{place}: {}\n", f.code, f.message));
    }
    (codes.join(", "), body)
}

pub fn write_junit(out: &mut dyn Write, report: &Report) -> anyhow::Result<()> {
    let findings = report.findings();
    let mut used = vec![false; findings.len()];
    let mut suites: Vec<(String, Vec<Case>)> = Vec::new();
    for (_, profile) in &report.manifests.profiles {
        let mut cases = Vec::new();
        for c in report
            .verdict
            .coverage
            .iter()
            .filter(|c| c.profile == profile.name)
        {
            let mut failures = Vec::new();
            for (i, f) in findings.iter().enumerate() {
                let same_profile = f.profile == profile.name;
                let on_url = f.url == Some(c.url.as_str());
                let on_host = f.path.is_none() && f.url.is_none() && f.host == Some(&c.host);
                if same_profile && (on_url || on_host) {
                    failures.push(f);
                    used[i] = true;
                }
            }
            let noncompliant = (c.served && !c.compliant).then(|| {
                let routes: Vec<String> = c
                    .routes
                    .iter()
                    .filter(|r| !r.compliant)
                    .map(|r| format!("{} {} ({}: {})", r.ingress, r.path, r.client_auth, r.detail))
                    .collect();
                format!(
                    "{} endpoint {} is served without the client auth it needs: {}",
                    c.scheme,
                    c.endpoint,
                    routes.join("; ")
                )
            });
            let skipped = (!c.served && failures.is_empty())
                .then_some("no Ingress route serves this endpoint URL");
            cases.push(Case {
                name: c.url.clone(),
                classname: format!("{}.{}", profile.name, c.host),
                failures,
                skipped,
                noncompliant,
            });
        }
        suites.push((profile.name.clone(), cases));
    }
    // Findings no endpoint test case carries get their own, per profile and code.
    let mut rest: BTreeMap<(&str, &str, String), Vec<&Finding>> = BTreeMap::new();
    for (i, f) in findings.iter().enumerate() {
        if !used[i] {
            let subject = f.host.or(f.url).or(f.endpoint).unwrap_or("").to_string();
            rest.entry((f.profile, f.code, subject))
                .or_default()
                .push(f);
        }
    }
    for ((profile, code, subject), failures) in rest {
        let case = Case {
            name: format!("{code} {subject}").trim_end().to_string(),
            classname: format!("{profile}.findings"),
            failures,
            skipped: None,
            noncompliant: None,
        };
        match suites.iter_mut().find(|(name, _)| name == profile) {
            Some((_, cases)) => cases.push(case),
            None => suites.push((profile.to_string(), vec![case])),
        }
    }

    fn failed(c: &Case) -> bool {
        !c.failures.is_empty() || c.noncompliant.is_some()
    }
    fn skipped(c: &Case) -> bool {
        c.skipped.is_some() && !failed(c)
    }
    let count = |cases: &[Case], f: fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count();
    let all: usize = suites.iter().map(|(_, c)| c.len()).sum();
    let all_failed: usize = suites.iter().map(|(_, c)| count(c, failed)).sum();
    let all_skipped: usize = suites.iter().map(|(_, c)| count(c, skipped)).sum();
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="mtls-gate check" tests="{all}" failures="{all_failed}" errors="0" skipped="{all_skipped}">"#
    )?;
    for (name, cases) in &suites {
        writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{}" errors="0" skipped="{}">"#,
            escape(name),
            cases.len(),
            count(cases, failed),
            count(cases, skipped),
        )?;
        for case in cases {
            write!(
                out,
                r#"    <testcase name="{}" classname="{}""#,
                escape(&case.name),
                escape(&case.classname)
            )?;
            if failed(case) {
                let (message, body) = failure_text(case);
                writeln!(out, ">")?;
                writeln!(
                    out,
                    r#"      <failure message="{}" type="{}">{}</failure>"#,
                    escape(&message),
                    escape(&message),
                    escape(&body)
                )?;
                writeln!(out, "    </testcase>")?;
            } else if let Some(why) = case.skipped {
                writeln!(out, ">")?;
                writeln!(out, r#"      <skipped message="{}"/>"#, escape(why))?;
                writeln!(out, "    </testcase>")?;
            } else {
                writeln!(out, "/>")?;
            }
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_covers_markup_and_control_characters() {
        assert_eq!(
            super::escape("a<b>&\"c'\u{1}\n"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD}\n"
        );
    }
}
