#![doc = include_str!("annotations.md")]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::dialect::go_parse::parse_bool;
use crate::model::IngressView;

/// The controller's default annotation prefix (`--annotations-prefix`).
pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// What the dialect does with one annotation (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Read exactly as the controller parses it.
    Modelled,
    /// Can change who reaches an endpoint; not modelled, so reported.
    Reported,
    /// Cannot weaken the client authentication the engine computes.
    Irrelevant,
}

/// One row of the audit table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audit {
    pub decision: Decision,
    /// What the annotation changes, in the controller's terms.
    pub why: &'static str,
}

const TABLE: &str = include_str!("annotations.md");

/// The audit table, parsed once from the module documentation (annotation name without
/// the prefix → decision). Rows that do not parse are absent, so such an annotation is
/// reported as unknown (fail closed); a unit test keeps every row parseable.
static AUDIT: LazyLock<BTreeMap<&'static str, Audit>> = LazyLock::new(|| {
    TABLE
        .lines()
        .filter_map(parse_row)
        .collect::<BTreeMap<_, _>>()
});

fn parse_row(line: &'static str) -> Option<(&'static str, Audit)> {
    let cells: Vec<&'static str> = line
        .strip_prefix('|')?
        .strip_suffix('|')?
        .split('|')
        .map(str::trim)
        .collect();
    let [name, decision, _package, why] = cells.as_slice() else {
        return None;
    };
    let name = name.strip_prefix('`')?.strip_suffix('`')?;
    let decision = match *decision {
        "modelled" => Decision::Modelled,
        "reported" => Decision::Reported,
        "irrelevant" => Decision::Irrelevant,
        _ => return None,
    };
    Some((name, Audit { decision, why }))
}

/// The audit of an annotation key; `None` for keys outside the prefix or unknown ones.
pub fn audit(key: &str) -> Option<Audit> {
    AUDIT.get(key.strip_prefix(PREFIX)?).copied()
}

/// Every audited annotation (full key) with its decision, in name order.
pub fn audited() -> impl Iterator<Item = (String, Audit)> {
    AUDIT
        .iter()
        .map(|(name, a)| (format!("{PREFIX}{name}"), *a))
}

/// Whether views must keep this annotation: every key of the prefix except the ones the
/// audit found irrelevant (unknown keys are kept, to be reported).
pub fn kept_in_views(key: &str) -> bool {
    key.starts_with(PREFIX) && audit(key).is_none_or(|a| a.decision != Decision::Irrelevant)
}

/// `parser.normalizeString`: every line trimmed of surrounding whitespace
/// (`internal/ingress/annotations/parser/main.go`).
pub fn normalize_string(value: &str) -> String {
    value
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A boolean annotation as the controller reads it: `Ok(None)` absent, `Ok(Some(b))` a
/// value `strconv.ParseBool` accepts, `Err(value)` anything else (the controller then
/// logs the error and uses the annotation's default).
pub fn bool_annotation<'a>(ing: &'a IngressView, key: &str) -> Result<Option<bool>, &'a str> {
    match ing.annotation(key) {
        None => Ok(None),
        Some(v) => parse_bool(v).map(Some).ok_or(v),
    }
}

/// A string annotation as `parser.GetStringAnnotation` returns it: normalised, `None` when
/// absent or empty after normalisation (the controller's "invalid content").
pub fn string_annotation(ing: &IngressView, key: &str) -> Option<String> {
    ing.annotation(key)
        .map(normalize_string)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_table_parses() {
        let rows = TABLE
            .lines()
            .filter(|l| l.starts_with("| `"))
            .collect::<Vec<_>>();
        assert!(rows.len() > 100, "the audit lists every annotation");
        for row in &rows {
            assert!(parse_row(row).is_some(), "unparseable audit row: {row}");
        }
        assert_eq!(AUDIT.len(), rows.len(), "an annotation is listed twice");
    }

    #[test]
    fn decisions_are_read_from_the_table() {
        let cases = [
            (
                "nginx.ingress.kubernetes.io/use-regex",
                Some(Decision::Modelled),
            ),
            (
                "nginx.ingress.kubernetes.io/ssl-redirect",
                Some(Decision::Modelled),
            ),
            (
                "nginx.ingress.kubernetes.io/satisfy",
                Some(Decision::Modelled),
            ),
            (
                "nginx.ingress.kubernetes.io/server-snippet",
                Some(Decision::Reported),
            ),
            (
                "nginx.ingress.kubernetes.io/canary",
                Some(Decision::Reported),
            ),
            (
                "nginx.ingress.kubernetes.io/proxy-body-size",
                Some(Decision::Irrelevant),
            ),
            (
                "nginx.ingress.kubernetes.io/cors-allow-origin",
                Some(Decision::Irrelevant),
            ),
            ("nginx.ingress.kubernetes.io/ssl-redirct", None),
            ("traefik.ingress.kubernetes.io/router.tls", None),
        ];
        for (key, expected) in cases {
            assert_eq!(audit(key).map(|a| a.decision), expected, "{key}");
        }
        assert!(kept_in_views("nginx.ingress.kubernetes.io/ssl-redirct"));
        assert!(kept_in_views("nginx.ingress.kubernetes.io/satisfy"));
        assert!(!kept_in_views(
            "nginx.ingress.kubernetes.io/proxy-body-size"
        ));
    }

    #[test]
    fn strings_are_normalised_per_line() {
        assert_eq!(normalize_string(" any "), "any");
        assert_eq!(normalize_string("any\n"), "any\n");
        assert_eq!(normalize_string("\ta \n b"), "a\nb");
    }
}
