//! Path templates of the endpoint table and the route matchers of ingress controllers.
//!
//! An endpoint such as `/accounts/{AccountId}` stands for infinitely many request paths.
//! To decide which Ingress route serves *some* instance of it, the engine evaluates a finite
//! set of representative instances: for every parameter position, a value equal to each
//! route literal at that position, each literal followed by a character no route uses, and
//! such a fresh value alone. For exact, prefix and case-insensitive prefix matchers these
//! representatives realise every combination of "which routes match" that any instance can
//! produce, so the answer is exact. Regex routes that are not a plain literal prefix are
//! additionally treated as able to serve any instance their literal prefix admits, which
//! over-approximates (sound: it can only add findings).

use std::fmt;

/// One `/`-separated segment of an endpoint path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    /// `{Name}`: one non-empty path segment.
    Param(String),
}

/// An endpoint path such as `/open-banking-nz/v3.0/accounts/{AccountId}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathTemplate {
    pub segments: Vec<Segment>,
}

impl PathTemplate {
    /// Parses `{Name}` segments as parameters.
    pub fn parse(path: &str) -> Self {
        Self::build(path, true)
    }

    /// Treats every segment literally.
    pub fn parse_literal(path: &str) -> Self {
        Self::build(path, false)
    }

    fn build(path: &str, params: bool) -> Self {
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                if params && s.len() > 2 && s.starts_with('{') && s.ends_with('}') {
                    Segment::Param(s[1..s.len() - 1].to_string())
                } else {
                    Segment::Literal(s.to_string())
                }
            })
            .collect();
        Self { segments }
    }

    pub fn has_params(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Param(_)))
    }

    /// Whether a concrete path is an instance of this template.
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        parts.len() == self.segments.len()
            && self
                .segments
                .iter()
                .zip(&parts)
                .all(|(seg, part)| match seg {
                    Segment::Literal(l) => l == part,
                    Segment::Param(_) => !part.is_empty(),
                })
    }

    /// Whether `self` is `other` or lies below it, segment-wise (`/a/b` is under `/a`).
    pub fn starts_with(&self, other: &PathTemplate) -> bool {
        other.segments.len() <= self.segments.len()
            && other
                .segments
                .iter()
                .zip(&self.segments)
                .all(|(a, b)| a == b)
    }

    fn tokens(&self) -> Vec<Token> {
        let mut out = Vec::new();
        for seg in &self.segments {
            out.push(Token::Char('/'));
            match seg {
                Segment::Literal(l) => out.extend(l.chars().map(Token::Char)),
                Segment::Param(_) => out.push(Token::Param),
            }
        }
        if out.is_empty() {
            out.push(Token::Char('/'));
        }
        out
    }

    /// Whether some instance of the template starts with `prefix` (ASCII case-insensitively
    /// when `ci`).
    pub fn may_start_with(&self, prefix: &str, ci: bool) -> bool {
        let tokens = self.tokens();
        let p: Vec<char> = prefix.chars().collect();
        // reach[ti] = prefix position pi can be reached at token ti (with `in_param` flag).
        // Small strings: a straightforward DP over (token, prefix position, inside-param).
        let mut states = vec![(0usize, false)];
        for &c in &p {
            let mut next = Vec::new();
            for &(ti, in_param) in &states {
                if in_param && c != '/' {
                    // stay inside the parameter
                    next.push((ti, true));
                }
                let ti = if in_param { ti + 1 } else { ti };
                match tokens.get(ti) {
                    Some(Token::Char(t)) if eq(*t, c, ci) => next.push((ti + 1, false)),
                    Some(Token::Param) if c != '/' => next.push((ti, true)),
                    _ => {}
                }
                // closing a parameter then matching the next token was handled via ti + 1
            }
            next.sort_unstable();
            next.dedup();
            if next.is_empty() {
                return false;
            }
            states = next;
        }
        true
    }

    /// Renders an instance with the given parameter values (in order).
    pub fn instance(&self, values: &[&str]) -> String {
        let mut out = String::new();
        let mut v = values.iter();
        for seg in &self.segments {
            out.push('/');
            match seg {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) => out.push_str(v.next().copied().unwrap_or("x")),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for seg in &self.segments {
            match seg {
                Segment::Literal(l) => write!(f, "/{l}")?,
                Segment::Param(p) => write!(f, "/{{{p}}}")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Token {
    Char(char),
    Param,
}

fn eq(a: char, b: char, ci: bool) -> bool {
    if ci {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// How a route matches request paths, after the controller's own translation of the
/// Ingress path (ingress-nginx `location` modifiers, Traefik rule matchers).
#[derive(Debug, Clone)]
pub enum PathMatcher {
    /// The path equals this string (nginx `location = /p`, Traefik ``Path(`/p`)``).
    Exact(String),
    /// The path starts with this string, case-sensitively (nginx `location /p/`, Traefik
    /// ``PathPrefix(`/p`)``).
    Prefix(String),
    /// The path starts with this string, ASCII case-insensitively (nginx `~* "^/p"` where
    /// `/p` has no regex metacharacters). Stored lower-case.
    PrefixIgnoreCase(String),
    /// Any other regular expression.
    Regex(RegexMatcher),
}

#[derive(Debug, Clone)]
pub struct RegexMatcher {
    /// The effective expression as the controller evaluates it.
    pub source: String,
    /// `None` when the expression is not valid in Rust's dialect (PCRE and Go features such
    /// as look-around): the engine then assumes it may match anything.
    pub compiled: Option<regex::Regex>,
    /// Literal text every match starts with (empty when unknown).
    pub literal_prefix: String,
    pub case_insensitive: bool,
}

/// Result of matching one concrete path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchResult {
    Yes,
    No,
    /// Cannot be decided (an expression we cannot evaluate): treated as both.
    Maybe,
}

const REGEX_META: &[char] = &[
    '.', '^', '$', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '\\',
];

impl PathMatcher {
    /// An nginx `~* "^<path>"` location (ingress-nginx regex mode).
    pub fn nginx_regex(path: &str) -> Self {
        if !path.contains(REGEX_META) {
            return PathMatcher::PrefixIgnoreCase(path.to_ascii_lowercase());
        }
        let source = format!("(?i)^{path}");
        PathMatcher::Regex(RegexMatcher {
            compiled: regex::RegexBuilder::new(&source)
                .size_limit(1 << 20)
                .build()
                .ok(),
            literal_prefix: literal_prefix(path),
            source,
            case_insensitive: true,
        })
    }

    /// A Go regular expression as Traefik's `PathRegexp` evaluates it (unanchored search).
    pub fn go_regex(expr: &str) -> Self {
        let anchored = expr.strip_prefix('^');
        PathMatcher::Regex(RegexMatcher {
            compiled: regex::RegexBuilder::new(expr)
                .size_limit(1 << 20)
                .build()
                .ok(),
            literal_prefix: anchored.map(literal_prefix).unwrap_or_default(),
            source: expr.to_string(),
            case_insensitive: expr.starts_with("(?i)"),
        })
    }

    pub fn matches(&self, path: &str) -> MatchResult {
        let yes = |b: bool| if b { MatchResult::Yes } else { MatchResult::No };
        match self {
            PathMatcher::Exact(p) => yes(path == p),
            PathMatcher::Prefix(p) => yes(path.starts_with(p.as_str())),
            PathMatcher::PrefixIgnoreCase(p) => yes(path.len() >= p.len()
                && path.is_char_boundary(p.len())
                && path[..p.len()].eq_ignore_ascii_case(p)),
            PathMatcher::Regex(r) => match &r.compiled {
                Some(re) => yes(re.is_match(path)),
                None => MatchResult::Maybe,
            },
        }
    }

    /// Literal text the matcher compares against, for generating representative instances.
    pub fn literal(&self) -> Option<(&str, bool)> {
        match self {
            PathMatcher::Exact(p) | PathMatcher::Prefix(p) => Some((p, false)),
            PathMatcher::PrefixIgnoreCase(p) => Some((p, true)),
            PathMatcher::Regex(r) if !r.literal_prefix.is_empty() => {
                Some((&r.literal_prefix, r.case_insensitive))
            }
            PathMatcher::Regex(_) => None,
        }
    }

    /// A regex whose matches representatives cannot enumerate: it is assumed to serve any
    /// instance of a template that its literal prefix admits.
    pub fn is_opaque(&self) -> bool {
        matches!(self, PathMatcher::Regex(_))
    }

    /// Whether this matcher could match some instance of `template` (over-approximated for
    /// regexes).
    pub fn may_match_template(&self, template: &PathTemplate) -> bool {
        match self {
            PathMatcher::Exact(p) => template.matches(p),
            PathMatcher::Prefix(p) => template.may_start_with(p, false),
            PathMatcher::PrefixIgnoreCase(p) => template.may_start_with(p, true),
            PathMatcher::Regex(r) => template.may_start_with(&r.literal_prefix, r.case_insensitive),
        }
    }
}

impl fmt::Display for PathMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathMatcher::Exact(p) => write!(f, "= {p}"),
            PathMatcher::Prefix(p) => write!(f, "prefix {p}"),
            PathMatcher::PrefixIgnoreCase(p) => write!(f, "~* ^{p}"),
            PathMatcher::Regex(r) => write!(f, "~ {}", r.source),
        }
    }
}

/// Literal characters at the start of a regex (after an optional `^`), up to the first
/// metacharacter; empty if the expression has alternatives.
fn literal_prefix(expr: &str) -> String {
    if expr.contains('|') {
        return String::new();
    }
    let body = expr.strip_prefix("(?i)").unwrap_or(expr);
    let body = body.strip_prefix('^').unwrap_or(body);
    let mut out: String = body
        .chars()
        .take_while(|c| !REGEX_META.contains(c))
        .collect();
    // A quantifier applies to the last literal character, which is then optional.
    let rest = &body[out.len()..];
    if rest.starts_with(['*', '?', '{']) {
        out.pop();
    }
    out
}

/// A character that none of `literals` contains, used to build values that equal no literal
/// and extend none.
pub fn fresh_char<'a>(literals: impl Iterator<Item = &'a str> + Clone) -> char {
    ('\u{E000}'..='\u{F8FF}')
        .find(|c| !literals.clone().any(|l| l.contains(*c)))
        .unwrap_or('\u{10FFFD}')
}

/// Upper bound on representatives per template; beyond it callers fall back to the
/// over-approximation "every route that may match some instance may serve it".
pub const MAX_REPRESENTATIVES: usize = 4096;

/// Representative instances of `template` with respect to route `literals` (text, case
/// insensitive?). `None` when there would be more than [`MAX_REPRESENTATIVES`].
pub fn representatives(template: &PathTemplate, literals: &[(&str, bool)]) -> Option<Vec<String>> {
    if !template.has_params() {
        return Some(vec![template.instance(&[])]);
    }
    let fresh = fresh_char(literals.iter().map(|(l, _)| *l));
    let fresh_value = fresh.to_string();
    // Candidate values per parameter position.
    let mut per_param: Vec<Vec<String>> = Vec::new();
    for (i, seg) in template.segments.iter().enumerate() {
        if !matches!(seg, Segment::Param(_)) {
            continue;
        }
        let mut values = vec![fresh_value.clone()];
        for (lit, _ci) in literals {
            let parts: Vec<&str> = lit.split('/').collect();
            // parts[0] is "" (leading '/'); segment i is parts[i + 1].
            let Some(part) = parts.get(i + 1) else {
                continue;
            };
            if !compatible_before(template, &parts, i) {
                continue;
            }
            if !part.is_empty() {
                values.push((*part).to_string());
            }
            values.push(format!("{part}{fresh}"));
        }
        values.sort();
        values.dedup();
        per_param.push(values);
    }
    let total = per_param
        .iter()
        .try_fold(1usize, |acc, v| acc.checked_mul(v.len()))?;
    if total > MAX_REPRESENTATIVES {
        return None;
    }
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; per_param.len()];
    loop {
        let values: Vec<&str> = idx
            .iter()
            .zip(&per_param)
            .map(|(&i, v)| v[i].as_str())
            .collect();
        out.push(template.instance(&values));
        // odometer increment
        let mut k = 0;
        loop {
            if k == idx.len() {
                return Some(out);
            }
            idx[k] += 1;
            if idx[k] < per_param[k].len() {
                break;
            }
            idx[k] = 0;
            k += 1;
        }
    }
}

/// Whether literal segments before position `i` can equal the template's (case-insensitively;
/// this only prunes candidates, so erring towards "compatible" is safe).
fn compatible_before(template: &PathTemplate, parts: &[&str], i: usize) -> bool {
    template.segments[..i]
        .iter()
        .enumerate()
        .all(|(j, seg)| match (seg, parts.get(j + 1)) {
            (Segment::Literal(l), Some(p)) => l.eq_ignore_ascii_case(p),
            (Segment::Param(_), Some(p)) => !p.is_empty(),
            (_, None) => false,
        })
}

/// Representative paths under `base` that are not instances of any `listed` template.
pub fn unlisted_representatives(
    base: &PathTemplate,
    listed: &[&PathTemplate],
    literals: &[(&str, bool)],
) -> Vec<String> {
    let fresh = fresh_char(literals.iter().map(|(l, _)| *l));
    let deep: String = std::iter::repeat_n(format!("/{fresh}"), 7).collect();
    let base_path = base.instance(&[]);
    let mut candidates = vec![
        format!("{}{deep}", base_path.trim_end_matches('/')),
        base_path.clone(),
    ];
    for (lit, _) in literals {
        candidates.push((*lit).to_string());
        candidates.push(format!("{}{deep}", lit.trim_end_matches('/')));
        if !lit.ends_with('/') {
            candidates.push(format!("{lit}{fresh}{deep}"));
        }
    }
    candidates.sort();
    candidates.dedup();
    candidates.retain(|c| {
        let t = PathTemplate::parse_literal(c);
        c.starts_with('/')
            && !c.contains("//")
            && t.starts_with(base)
            && !listed.iter().any(|l| l.matches(c))
    });
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_instances_and_matching() {
        let t = PathTemplate::parse("/v3.0/accounts/{AccountId}/balances");
        assert!(t.matches("/v3.0/accounts/123/balances"));
        assert!(!t.matches("/v3.0/accounts//balances"));
        assert!(!t.matches("/v3.0/accounts/123/balances/x"));
        assert_eq!(t.to_string(), "/v3.0/accounts/{AccountId}/balances");
    }

    #[test]
    fn may_start_with_follows_parameters() {
        let t = PathTemplate::parse("/accounts/{AccountId}/balances");
        for (prefix, ci, want) in [
            ("/", false, true),
            ("/accounts", false, true),
            ("/accounts/", false, true),
            ("/accounts/12", false, true),
            ("/accounts/12/bal", false, true),
            ("/accounts/12/balances", false, true),
            ("/accounts/12/balances/", false, false),
            ("/accounts//", false, false),
            ("/ACCOUNTS", false, false),
            ("/ACCOUNTS", true, true),
            ("/token", false, false),
        ] {
            assert_eq!(t.may_start_with(prefix, ci), want, "{prefix}");
        }
    }

    #[test]
    fn representatives_cover_route_literals() {
        let t = PathTemplate::parse("/accounts/{AccountId}");
        let reps = representatives(&t, &[("/accounts/123", false), ("/accounts/", false)])
            .unwrap_or_default();
        assert!(reps.contains(&"/accounts/123".to_string()));
        assert!(
            reps.iter()
                .any(|r| r.starts_with("/accounts/123") && r.len() > "/accounts/123".len())
        );
        assert!(reps.iter().all(|r| t.matches(r)));
    }

    #[test]
    fn regex_literal_prefix() {
        assert_eq!(literal_prefix("/accounts/[0-9]+"), "/accounts/");
        assert_eq!(literal_prefix("/token|/authorize"), "");
        assert_eq!(literal_prefix("/tokens?"), "/token");
    }
}
