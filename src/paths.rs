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
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock};

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
        if rest.is_empty() {
            return self.segments.is_empty();
        }
        // Split as bytes: `/` is ASCII, so this is `str::split('/')` without a char search
        // per segment (this runs for every candidate path of every unlisted scope).
        let mut parts = rest.as_bytes().split(|b| *b == b'/');
        for seg in &self.segments {
            match (seg, parts.next()) {
                (Segment::Literal(l), Some(part)) if l.as_bytes() == part => {}
                (Segment::Param(_), Some(part)) if !part.is_empty() => {}
                _ => return false,
            }
        }
        parts.next().is_none()
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

    /// Whether some instance of the template starts with `prefix` (ASCII case-insensitively
    /// when `ci`). A walk along the template: a parameter takes one or more characters
    /// other than `/` and ends where the prefix has a `/` (or ends), so there is never a
    /// choice to make and nothing to allocate (this runs for every target and changed
    /// route of every review).
    pub fn may_start_with(&self, prefix: &str, ci: bool) -> bool {
        // Byte-wise, which is char-wise here: `/` is ASCII (never part of a multi-byte
        // character) and ASCII case folding leaves the other bytes as they are.
        let eq = |t: u8, c: u8| t == c || ci && t.eq_ignore_ascii_case(&c);
        let mut rest = prefix.as_bytes();
        if self.segments.is_empty() {
            return rest.is_empty() || rest == b"/";
        }
        for seg in &self.segments {
            match rest.split_first() {
                None => return true,
                Some((b'/', tail)) => rest = tail,
                Some(_) => return false,
            }
            match seg {
                Segment::Literal(l) => {
                    let l = l.as_bytes();
                    let n = l.len().min(rest.len());
                    if !l[..n].iter().zip(&rest[..n]).all(|(&t, &c)| eq(t, c)) {
                        return false;
                    }
                    if rest.len() <= l.len() {
                        return true;
                    }
                    rest = &rest[l.len()..];
                }
                // One or more characters other than `/`.
                Segment::Param(_) => match rest.first() {
                    None => return true,
                    Some(b'/') => return false,
                    Some(_) => {
                        let end = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
                        rest = &rest[end..];
                    }
                },
            }
        }
        rest.is_empty()
    }

    /// The template's segments before its first parameter.
    pub fn fixed_segments(&self) -> &[Segment] {
        let end = self
            .segments
            .iter()
            .position(|s| matches!(s, Segment::Param(_)))
            .unwrap_or(self.segments.len());
        &self.segments[..end]
    }

    /// Whether a route literal starts with the template's segments before its first
    /// parameter, each after a `/`, and a `/` after them (ASCII case-insensitively, as
    /// [`representatives`] compares segments): only such a literal can give its parameters
    /// values.
    pub fn literal_gives_values(&self, text: &str) -> bool {
        let mut rest = text.as_bytes();
        for seg in &self.segments {
            let Segment::Literal(l) = seg else { break };
            let Some((b'/', tail)) = rest.split_first() else {
                return false;
            };
            let l = l.as_bytes();
            match tail.get(..l.len()) {
                // Equal bytes first: route literals are nearly always written as the
                // profile's paths are.
                Some(start) if start == l || start.eq_ignore_ascii_case(l) => {
                    rest = &tail[l.len()..]
                }
                _ => return false,
            }
        }
        rest.first() == Some(&b'/')
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
    /// Whether a match must start at the beginning of the path (nginx `^...`); Traefik's
    /// `PathRegexp` searches anywhere unless the expression anchors itself.
    pub anchored: bool,
    /// Literal text every match starts with (empty when unknown).
    pub literal_prefix: String,
    pub case_insensitive: bool,
    /// The compiled automaton, built on first use (or by [`RegexMatcher::prepare`] within
    /// a host's budget) and shared by the clones of this matcher.
    automaton: Arc<OnceLock<RegexAnalysis>>,
}

/// A route expression compiled to a DFA, or why it cannot be analysed within the limits
/// (then it counts as "may match anything": fail closed).
type RegexAnalysis = Result<Arc<RouteAutomaton>, Arc<str>>;

#[derive(Debug)]
pub struct RouteAutomaton {
    dfa: DenseDfa,
}

type DenseDfa = regex_automata::dfa::dense::DFA<Vec<u32>>;

/// Limits that bound the analysis of one expression (design.md §7: any single review
/// ≤ 50 ms CPU and ≤ 16 MiB extra memory). `/((x{1000}){1000}){2}` is 21 characters but a
/// billion NFA states: the size limits make the compiler give up early instead.
pub const REGEX_NFA_SIZE_LIMIT: usize = 1 << 20;
pub const REGEX_DFA_SIZE_LIMIT: usize = 256 << 10;
/// Regex automaton memory one host table may use (an expression that fails counts with
/// the full DFA limit: trying costs as much); routes beyond it are not analysed.
pub const HOST_REGEX_BUDGET: usize = 2 << 20;
/// Most (language, route) state pairs explored when intersecting a route with an endpoint
/// language; beyond it the route counts as matching (sound).
const MAX_PRODUCT_PAIRS: usize = 200_000;
/// Distinct expressions whose compiled form is remembered across evaluations.
const COMPILED_CACHE_ENTRIES: usize = 1024;
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
            anchored: true,
            literal_prefix: literal_prefix(path),
            source,
            case_insensitive: true,
            automaton: Arc::default(),
        })
    }

    /// A Go regular expression as Traefik's `PathRegexp` evaluates it (unanchored search).
    pub fn go_regex(expr: &str) -> Self {
        let anchored = expr.strip_prefix('^');
        PathMatcher::Regex(RegexMatcher {
            anchored: anchored.is_some(),
            literal_prefix: anchored.map(literal_prefix).unwrap_or_default(),
            source: expr.to_string(),
            case_insensitive: expr.starts_with("(?i)"),
            automaton: Arc::default(),
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
            PathMatcher::Regex(r) => r.matches(path),
        }
    }

    /// The same matcher (same kind and expression).
    pub fn same_as(&self, other: &PathMatcher) -> bool {
        match (self, other) {
            (PathMatcher::Exact(a), PathMatcher::Exact(b))
            | (PathMatcher::Prefix(a), PathMatcher::Prefix(b))
            | (PathMatcher::PrefixIgnoreCase(a), PathMatcher::PrefixIgnoreCase(b)) => a == b,
            (PathMatcher::Regex(a), PathMatcher::Regex(b)) => {
                a.source == b.source && a.anchored == b.anchored
            }
            _ => false,
        }
    }

    /// Why a regex matcher cannot be analysed (it then counts as matching anything).
    pub fn unanalysable(&self) -> Option<&str> {
        match self {
            PathMatcher::Regex(r) => r.unanalysable(),
            _ => None,
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
            PathMatcher::Regex(r) => {
                template.may_start_with(&r.literal_prefix, r.case_insensitive)
                    && r.may_match_language(&template.instance_pattern())
            }
        }
    }

    /// Whether this matcher could match some path under `base` (the base itself or below).
    pub fn may_match_under(&self, base: &PathTemplate) -> bool {
        let base_path = base.instance(&[]);
        let base_prefix = base_path.trim_end_matches('/');
        match self {
            PathMatcher::Exact(p) => {
                p == &base_path
                    || p.starts_with(base_prefix) && p[base_prefix.len()..].starts_with('/')
            }
            PathMatcher::Prefix(_) | PathMatcher::PrefixIgnoreCase(_) => {
                let (lit, ci) = self.literal().unwrap_or(("", false));
                let (l, b) = if ci {
                    (lit.to_ascii_lowercase(), base_prefix.to_ascii_lowercase())
                } else {
                    (lit.to_string(), base_prefix.to_string())
                };
                l.starts_with(&b) || b.starts_with(&l)
            }
            PathMatcher::Regex(r) => {
                r.may_match_language(&format!("^{}(?:/(?s:.)*)?$", regex::escape(base_prefix)))
            }
        }
    }
}

impl RegexMatcher {
    fn analysis(&self) -> &RegexAnalysis {
        self.automaton
            .get_or_init(|| compiled_route(&self.source, self.anchored, REGEX_DFA_SIZE_LIMIT))
    }

    /// Compiles the expression, charging its automaton's memory to `budget` (one host
    /// table's allowance). Returns why the expression cannot be analysed, if so: too large
    /// for the limits, beyond the budget, or a feature the DFA cannot decide (look-around,
    /// Unicode word boundaries). Such a route counts as matching anything it might.
    pub fn prepare(&self, budget: &mut usize) -> Option<Arc<str>> {
        let analysis = self.automaton.get_or_init(|| {
            if *budget == 0 {
                return Err(Arc::from(
                    "the host's regex analysis budget is used up by its other regex paths",
                ));
            }
            compiled_route(
                &self.source,
                self.anchored,
                REGEX_DFA_SIZE_LIMIT.min(*budget),
            )
        });
        match analysis {
            Ok(automaton) => {
                *budget = budget.saturating_sub(automaton.dfa.memory_usage());
                None
            }
            Err(reason) => {
                *budget = budget.saturating_sub(REGEX_DFA_SIZE_LIMIT);
                Some(reason.clone())
            }
        }
    }

    /// Why the expression is not analysed, if it is not.
    pub fn unanalysable(&self) -> Option<&str> {
        self.analysis().as_ref().err().map(|r| &**r)
    }

    fn matches(&self, path: &str) -> MatchResult {
        use regex_automata::dfa::Automaton;
        use regex_automata::{Anchored, Input};
        let Ok(automaton) = self.analysis() else {
            return MatchResult::Maybe;
        };
        let anchored = if self.anchored {
            Anchored::Yes
        } else {
            Anchored::No
        };
        match automaton
            .dfa
            .try_search_fwd(&Input::new(path).anchored(anchored).earliest(true))
        {
            Ok(Some(_)) => MatchResult::Yes,
            Ok(None) => MatchResult::No,
            Err(_) => MatchResult::Maybe,
        }
    }

    /// Whether the route expression matches some path of the regular language `language`
    /// (an anchored expression over paths). Decided exactly on the product of the two
    /// DFAs; `true` when that cannot be decided within the limits (an expression too
    /// large or not supported by the DFA), which is the sound answer.
    pub fn may_match_language(&self, language: &str) -> bool {
        use regex_automata::Anchored;
        use regex_automata::dfa::Automaton;
        use regex_automata::util::start;
        let Ok(route) = self.analysis() else {
            return true;
        };
        let route = &route.dfa;
        let Ok(lang) = compiled_language(language) else {
            return true;
        };
        let lang = &lang.dfa;
        let anchored = if self.anchored {
            Anchored::Yes
        } else {
            Anchored::No
        };
        let (Ok(r0), Ok(l0)) = (
            route.start_state(&start::Config::new().anchored(anchored)),
            lang.start_state(&start::Config::new().anchored(Anchored::Yes)),
        ) else {
            return true;
        };
        // One byte per pair of equivalence classes: bytes in the same class of both DFAs
        // lead to the same product state.
        let mut class_bytes: Vec<u8> = Vec::new();
        let mut seen_classes = std::collections::HashSet::new();
        for byte in 0..=255u8 {
            if seen_classes.insert((
                lang.byte_classes().get(byte),
                route.byte_classes().get(byte),
            )) {
                class_bytes.push(byte);
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![(l0, r0)];
        seen.insert((l0, r0));
        while let Some((l, r)) = stack.pop() {
            // The language accepts here and the route matches the whole path.
            if lang.is_match_state(lang.next_eoi_state(l))
                && route.is_match_state(route.next_eoi_state(r))
            {
                return true;
            }
            for &byte in &class_bytes {
                let l2 = lang.next_state(l, byte);
                if lang.is_dead_state(l2) {
                    continue;
                }
                let r2 = route.next_state(r, byte);
                if route.is_quit_state(r2) || lang.is_quit_state(l2) {
                    return true;
                }
                // Match states are delayed by one byte: the route matched a prefix of a
                // path the language can still complete (no end anchor in the route).
                if route.is_match_state(r2) {
                    return true;
                }
                if route.is_dead_state(r2) {
                    continue;
                }
                if seen.insert((l2, r2)) {
                    if seen.len() > MAX_PRODUCT_PAIRS {
                        return true;
                    }
                    stack.push((l2, r2));
                }
            }
        }
        false
    }
}

/// Compiles a route expression within the size limits, remembering the result per
/// expression so that each distinct expression is compiled once per process, not once per
/// evaluation (reviews rebuild host tables). A memo of a pure function: results do not
/// depend on what is cached.
fn compiled_route(source: &str, anchored: bool, dfa_limit: usize) -> RegexAnalysis {
    use regex_automata::dfa::StartKind;
    let kind = if anchored {
        StartKind::Anchored
    } else {
        StartKind::Unanchored
    };
    memoized(source, kind, dfa_limit)
}

fn compiled_language(language: &str) -> RegexAnalysis {
    memoized(
        language,
        regex_automata::dfa::StartKind::Anchored,
        REGEX_DFA_SIZE_LIMIT,
    )
}

type CompiledCache = std::collections::HashMap<(String, bool, usize), RegexAnalysis>;

fn memoized(
    pattern: &str,
    kind: regex_automata::dfa::StartKind,
    dfa_limit: usize,
) -> RegexAnalysis {
    static CACHE: OnceLock<Mutex<CompiledCache>> = OnceLock::new();
    let anchored = matches!(kind, regex_automata::dfa::StartKind::Anchored);
    let key = (pattern.to_string(), anchored, dfa_limit);
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(hit) = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
    {
        return hit.clone();
    }
    let analysis = build_dfa(pattern, kind, dfa_limit);
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() >= COMPILED_CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(key, analysis.clone());
    analysis
}

fn build_dfa(
    pattern: &str,
    kind: regex_automata::dfa::StartKind,
    dfa_limit: usize,
) -> RegexAnalysis {
    use regex_automata::dfa::dense;
    use regex_automata::nfa::thompson;
    dense::Builder::new()
        .thompson(thompson::Config::new().nfa_size_limit(Some(REGEX_NFA_SIZE_LIMIT)))
        .configure(
            dense::Config::new()
                .start_kind(kind)
                // `\b` is decided on ASCII; a non-ASCII byte next to it stops the search
                // (a quit state), which every caller treats as "may match".
                .unicode_word_boundary(true)
                .dfa_size_limit(Some(dfa_limit))
                .determinize_size_limit(Some(dfa_limit)),
        )
        .build(pattern)
        .map(|dfa| Arc::new(RouteAutomaton { dfa }))
        .map_err(|e| {
            Arc::from(format!(
                "{pattern:?} cannot be analysed within mtls-gate's limits ({e})"
            ))
        })
}

impl PathTemplate {
    /// An anchored expression for the template's instances (`{Param}` = one non-empty
    /// segment).
    pub fn instance_pattern(&self) -> String {
        let mut out = String::from("^");
        if self.segments.is_empty() {
            out.push('/');
        }
        for seg in &self.segments {
            out.push('/');
            match seg {
                Segment::Literal(l) => out.push_str(&regex::escape(l)),
                Segment::Param(_) => out.push_str("[^/]+"),
            }
        }
        out.push('$');
        out
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

/// The character [`fresh_char`] tries first: the first of Unicode's private-use area.
pub const FIRST_FRESH_CHAR: char = '\u{E000}';

/// A character that none of `literals` contains, used to build values that equal no literal
/// and extend none.
pub fn fresh_char<'a>(literals: impl Iterator<Item = &'a str> + Clone) -> char {
    // ASCII text contains no private-use character (the common case, checked word-wise).
    if literals.clone().all(str::is_ascii) {
        return FIRST_FRESH_CHAR;
    }
    (FIRST_FRESH_CHAR..='\u{F8FF}')
        .find(|c| !literals.clone().any(|l| l.contains(*c)))
        .unwrap_or('\u{10FFFD}')
}

/// Upper bound on representatives per template; beyond it callers fall back to the
/// over-approximation "every route that may match some instance may serve it".
pub const MAX_REPRESENTATIVES: usize = 4096;

/// The literal of a route's matcher.
#[derive(Debug, Clone)]
pub struct RouteLiteral<'a> {
    pub text: &'a str,
    pub case_insensitive: bool,
    /// The matcher compares a prefix (so values extending the literal matter), not the
    /// whole path.
    pub prefix: bool,
}

impl<'a> RouteLiteral<'a> {
    /// The literal of a matcher, if it has one ([`PathMatcher::literal`]).
    pub fn of(matcher: &'a PathMatcher) -> Option<Self> {
        matcher
            .literal()
            .map(|(text, ci)| Self::new(text, ci, !matches!(matcher, PathMatcher::Exact(_))))
    }

    pub fn new(text: &'a str, case_insensitive: bool, prefix: bool) -> Self {
        Self {
            text,
            case_insensitive,
            prefix,
        }
    }
}

/// A literal split at `/`: `[0]` is `""` (the leading `/`); segment `i` is `[i + 1]`. On
/// the stack for the usual depth (split per template that asks, not kept).
type LiteralParts<'a> = smallvec::SmallVec<[&'a str; 12]>;

/// Matchers (a table's routes, a change's routes) by literal, so that a path is checked
/// only against the matchers that may match it: `Exact` by its path, `Prefix` ending in
/// `/` by its literal (looked up at those lengths of some literal where the path has a
/// `/`), everything else (regexes, case-insensitive and other prefixes) always. Indices
/// are positions in the matchers given to [`LiteralIndex::new`]. Literals are kept as
/// 64-bit hashes, not as copies of the strings: building the index allocates a few
/// tables, and a lookup hashes the path and finds its group in one hash-table probe. Two
/// literals with the same hash only add a candidate, which the caller then matches against
/// the path, so a collision never changes a result.
#[derive(Debug)]
pub struct LiteralIndex {
    /// Seeded per index (foldhash: hashbrown's default hasher, much cheaper than SipHash on
    /// short strings); the seed never decides a result, see above.
    hasher: foldhash::fast::RandomState,
    /// Hash of an `Exact` path → its routes in `ids`.
    exact: LiteralGroups,
    /// Hash of a `Prefix` literal ending in `/` → its routes in `ids`.
    prefix: LiteralGroups,
    /// Route indices, grouped by literal, ascending within a group.
    ids: Vec<usize>,
    always: Vec<usize>,
    /// Whether some `Exact` path has this length: a path is hashed and looked up only when
    /// some literal is as long.
    exact_lengths: Vec<bool>,
    /// The lengths of the `Prefix` literals, ascending, each once: a path is looked up at
    /// those of them where it has a `/`, never at every `/` it has.
    prefix_lengths: Vec<usize>,
}

/// Literal hash → range of [`LiteralIndex::ids`]. The keys are already seeded hashes, so
/// the table's own hasher needs no seed.
type LiteralGroups =
    std::collections::HashMap<u64, std::ops::Range<usize>, foldhash::fast::FixedState>;

impl LiteralIndex {
    pub fn new<'m>(matchers: impl Iterator<Item = &'m PathMatcher> + Clone) -> Self {
        let hasher = foldhash::fast::RandomState::default();
        // (is a prefix, literal hash, route index), sorted: one run per literal.
        let mut entries: Vec<(bool, u64, usize)> = Vec::with_capacity(matchers.size_hint().0);
        let mut always = Vec::new();
        for (i, matcher) in matchers.clone().enumerate() {
            match matcher {
                PathMatcher::Exact(p) => entries.push((false, hasher.hash_one(p.as_str()), i)),
                PathMatcher::Prefix(p) if p.ends_with('/') => {
                    entries.push((true, hasher.hash_one(p.as_str()), i))
                }
                _ => always.push(i),
            }
        }
        entries.sort_unstable();
        let mut exact_lengths = Vec::new();
        let mut prefix_lengths = Vec::new();
        for matcher in matchers {
            match matcher {
                PathMatcher::Exact(p) => {
                    if exact_lengths.len() <= p.len() {
                        exact_lengths.resize(p.len() + 1, false);
                    }
                    exact_lengths[p.len()] = true;
                }
                PathMatcher::Prefix(p) if p.ends_with('/') => prefix_lengths.push(p.len()),
                _ => {}
            }
        }
        prefix_lengths.sort_unstable();
        prefix_lengths.dedup();
        let mut index = LiteralIndex {
            hasher,
            exact: LiteralGroups::default(),
            prefix: LiteralGroups::default(),
            ids: entries.iter().map(|(_, _, i)| *i).collect(),
            always,
            exact_lengths,
            prefix_lengths,
        };
        let mut start = 0;
        for run in entries.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let (is_prefix, hash, _) = run[0];
            let groups = if is_prefix {
                &mut index.prefix
            } else {
                &mut index.exact
            };
            groups.insert(hash, start..start + run.len());
            start += run.len();
        }
        index
    }

    /// The matchers filed under `literal` in `groups`.
    fn lookup(&self, groups: &LiteralGroups, literal: &str) -> &[usize] {
        groups
            .get(&self.hasher.hash_one(literal))
            .map_or(&[], |range| &self.ids[range.clone()])
    }

    /// The `Exact` matchers of `path`.
    fn exact_hits(&self, path: &str) -> &[usize] {
        if self.exact_lengths.get(path.len()).is_some_and(|l| *l) {
            self.lookup(&self.exact, path)
        } else {
            &[]
        }
    }

    /// The `Prefix` matchers filed under each prefix of `path` that ends in `/` and is as
    /// long as some literal (byte `len - 1` is an ASCII `/`, so `len` is a char boundary).
    fn prefix_hits<'s>(&'s self, path: &'s str) -> impl Iterator<Item = &'s [usize]> + 's {
        let bytes = path.as_bytes();
        self.prefix_lengths
            .iter()
            .take_while(move |&&len| len <= bytes.len())
            .filter(move |&&len| len > 0 && bytes[len - 1] == b'/')
            .map(move |&len| self.lookup(&self.prefix, &path[..len]))
    }

    /// Ascending indices of every matcher that may match `path` (and some that do not).
    pub fn candidates(&self, path: &str) -> Vec<usize> {
        let mut out = self.always.clone();
        out.extend(self.exact_hits(path));
        for hits in self.prefix_hits(path) {
            out.extend(hits);
        }
        out.sort_unstable();
        out
    }

    /// Whether `check` holds for some matcher that may match `path` (without collecting
    /// them: this runs for every representative path of a review).
    pub fn any_candidate(&self, path: &str, mut check: impl FnMut(usize) -> bool) -> bool {
        self.always.iter().any(|&i| check(i))
            || self.exact_hits(path).iter().any(|&i| check(i))
            || self
                .prefix_hits(path)
                .any(|hits| hits.iter().any(|&i| check(i)))
    }
}

/// Where a patched table's routes stand against the table it was derived from, for
/// looking paths up in the old table's [`LiteralIndex`] instead of building one per patched
/// table: the old candidates moved to their new places (removed routes dropped), and every
/// added route a candidate (callers match candidates against the path anyway).
#[derive(Debug)]
pub struct RemappedIndex {
    moves: crate::dialect::RouteMoves,
}

impl RemappedIndex {
    pub fn new(moves: crate::dialect::RouteMoves) -> Self {
        Self { moves }
    }

    /// A superset of the new table's routes that may match `path`, ascending, from `base`
    /// (the old table's index).
    pub fn candidates(&self, base: &LiteralIndex, path: &str) -> Vec<usize> {
        let mut out: Vec<usize> = base
            .candidates(path)
            .into_iter()
            .filter_map(|i| self.moves.new_index(i))
            .chain(self.moves.added().iter().copied())
            .collect();
        out.sort_unstable();
        out
    }
}

/// The literals of a set of matchers, plus a character none of them contains.
pub struct RouteLiterals<'a> {
    pub literals: Vec<RouteLiteral<'a>>,
    pub fresh: char,
}

impl<'a> RouteLiterals<'a> {
    pub fn new<'m>(matchers: impl Iterator<Item = &'a PathMatcher>) -> Self {
        let literals: Vec<RouteLiteral<'a>> = matchers.filter_map(RouteLiteral::of).collect();
        let fresh = fresh_char(literals.iter().map(|l| l.text));
        Self { literals, fresh }
    }

    /// The `fresh` character of the literals of `matchers`, without collecting them.
    pub fn fresh_of(matchers: impl Iterator<Item = &'a PathMatcher> + Clone) -> char {
        fresh_char(matchers.filter_map(|m| RouteLiteral::of(m).map(|l| l.text)))
    }
}

/// Representative instances of `template` with respect to the route literals. `None` when
/// there would be more than [`MAX_REPRESENTATIVES`].
pub fn representatives(
    template: &PathTemplate,
    literals: &RouteLiterals<'_>,
) -> Option<Vec<String>> {
    if !template.has_params() {
        return Some(vec![template.instance(&[])]);
    }
    let fresh = literals.fresh;
    let fresh_value = fresh.to_string();
    // A literal compatible at some parameter (`compatible_before`) starts with the
    // template's segments before its first parameter, each followed by `/`: the others
    // are passed over without splitting them (a host has many literals, a template few).
    let related: Vec<(&RouteLiteral<'_>, LiteralParts<'_>)> = literals
        .literals
        .iter()
        .filter(|lit| template.literal_gives_values(lit.text))
        .map(|lit| (lit, lit.text.split('/').collect()))
        .collect();
    // Candidate values per parameter position.
    let mut per_param: Vec<Vec<String>> = Vec::new();
    for (i, seg) in template.segments.iter().enumerate() {
        if !matches!(seg, Segment::Param(_)) {
            continue;
        }
        let mut values = vec![fresh_value.clone()];
        for (lit, parts) in &related {
            let Some(part) = parts.get(i + 1) else {
                continue;
            };
            if !compatible_before(template, parts, i) {
                continue;
            }
            if !part.is_empty() {
                values.push((*part).to_string());
            }
            // A prefix that ends inside this segment also matches longer values.
            if lit.prefix && i + 2 == parts.len() {
                values.push(format!("{part}{fresh}"));
            }
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

fn is_listed(path: &str, listed: &[&PathTemplate], max_depth: usize) -> bool {
    let depth = path.bytes().filter(|b| *b == b'/').count();
    depth <= max_depth
        && listed
            .iter()
            .any(|l| l.segments.len() == depth && l.matches(path))
}

/// The representative paths of an unlisted-path scope, one route literal at a time: the
/// scope's representatives are [`UnlistedCandidates::fixed`] and the
/// [`UnlistedCandidates::of_literal`] of every route literal, deduplicated. Kept per
/// literal, a change that moves one route adds and removes only its own candidates.
pub struct UnlistedCandidates<'t> {
    listed: &'t [&'t PathTemplate],
    /// The deepest listed template's segment count.
    max_depth: usize,
    base_path: String,
    /// Fresh segments deeper than every listed template (so never an instance of one).
    deep: String,
    fresh: char,
}

impl<'t> UnlistedCandidates<'t> {
    pub fn new(base: &PathTemplate, listed: &'t [&'t PathTemplate], fresh: char) -> Self {
        let max_depth = listed.iter().map(|t| t.segments.len()).max().unwrap_or(0);
        let depth = max_depth.saturating_sub(base.segments.len()) + 1;
        Self {
            listed,
            max_depth,
            base_path: base.instance(&[]),
            deep: std::iter::repeat_n(format!("/{fresh}"), depth).collect(),
            fresh,
        }
    }

    fn base_prefix(&self) -> &str {
        self.base_path.trim_end_matches('/')
    }

    /// Whether `candidate` is a request path under the base that no listed template has.
    fn keeps(&self, candidate: &str) -> bool {
        let base_prefix = self.base_prefix();
        candidate.starts_with('/')
            && !candidate.contains("//")
            && (candidate == self.base_path
                || candidate.starts_with(base_prefix)
                    && candidate[base_prefix.len()..].starts_with('/'))
            && !is_listed(candidate, self.listed, self.max_depth)
    }

    /// The candidates whatever the routes: the base itself and a path below it deeper
    /// than every listed template.
    pub fn fixed(&self) -> Vec<String> {
        [
            format!("{}{}", self.base_prefix(), self.deep),
            self.base_path.clone(),
        ]
        .into_iter()
        .filter(|c| self.keeps(c))
        .collect()
    }

    /// The candidates one route literal adds (possibly repeated, possibly another
    /// literal's too): the literal, and for a prefix what extends it.
    pub fn of_literal(&self, lit: &RouteLiteral<'_>) -> Vec<String> {
        let text = lit.text;
        let base_prefix = self.base_prefix();
        // Only literals on the way to, or below, the base matter.
        let related = if lit.case_insensitive {
            let (a, b) = (text.to_ascii_lowercase(), base_prefix.to_ascii_lowercase());
            a.starts_with(&b) || b.starts_with(&a)
        } else {
            text.starts_with(base_prefix) || base_prefix.starts_with(text)
        };
        if !related {
            return Vec::new();
        }
        let mut candidates = vec![text.to_string()];
        if lit.prefix {
            candidates.push(format!("{}{}", text.trim_end_matches('/'), self.deep));
            if !text.ends_with('/') {
                candidates.push(format!("{text}{}{}", self.fresh, self.deep));
            }
        }
        candidates.retain(|c| self.keeps(c));
        candidates
    }
}

/// Representative paths under `base` that are not instances of any `listed` template.
pub fn unlisted_representatives(
    base: &PathTemplate,
    listed: &[&PathTemplate],
    literals: &RouteLiterals<'_>,
) -> Vec<String> {
    let scope = UnlistedCandidates::new(base, listed, literals.fresh);
    let mut candidates = scope.fixed();
    for lit in &literals.literals {
        candidates.extend(scope.of_literal(lit));
    }
    candidates.sort();
    candidates.dedup();
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

    fn eq(a: char, b: char, ci: bool) -> bool {
        if ci {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    }

    /// The char-by-char walk `may_start_with` replaced, kept as its oracle.
    fn may_start_with_by_chars(t: &PathTemplate, prefix: &str, ci: bool) -> bool {
        fn step(
            rest: &mut std::iter::Peekable<std::str::Chars<'_>>,
            want: impl Fn(char) -> bool,
        ) -> Option<bool> {
            rest.next().map(want)
        }
        let mut rest = prefix.chars().peekable();
        let slash = |c: char| eq('/', c, ci);
        if t.segments.is_empty() {
            return match step(&mut rest, slash) {
                None => true,
                Some(matched) => matched && rest.next().is_none(),
            };
        }
        for seg in &t.segments {
            match step(&mut rest, slash) {
                None => return true,
                Some(false) => return false,
                Some(true) => {}
            }
            match seg {
                Segment::Literal(l) => {
                    for c in l.chars() {
                        match step(&mut rest, |p| eq(c, p, ci)) {
                            None => return true,
                            Some(false) => return false,
                            Some(true) => {}
                        }
                    }
                }
                Segment::Param(_) => {
                    match step(&mut rest, |c| c != '/') {
                        None => return true,
                        Some(false) => return false,
                        Some(true) => {}
                    }
                    while rest.next_if(|c| *c != '/').is_some() {}
                }
            }
        }
        rest.next().is_none()
    }

    /// Cases the property below once shrank to, against deliberately broken walks.
    #[test]
    fn may_start_with_edge_cases() {
        for (template, prefix, ci, want) in [
            ("/{p}", "//", false, false),
            ("/ab", "/A", false, false),
            ("/ab", "/A", true, true),
        ] {
            let t = PathTemplate::parse(template);
            assert_eq!(
                t.may_start_with(prefix, ci),
                want,
                "{template} / {prefix} ci {ci}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Byte-wise and char-wise walks agree, with multi-byte characters, case and
        /// parameters in both the template and the prefix.
        #[test]
        fn may_start_with_agrees_with_the_char_walk(
            template in r"(/(a|A|é|É|\{p\}|ab|b/){0,2}){0,3}",
            prefix in "[/aAéÉb]{0,8}",
            ci in proptest::bool::ANY,
        ) {
            let t = PathTemplate::parse(&template);
            proptest::prop_assert_eq!(
                t.may_start_with(&prefix, ci),
                may_start_with_by_chars(&t, &prefix, ci),
                "{} / {:?} ci {}", template, prefix, ci
            );
        }
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
        let matchers = [
            PathMatcher::Exact("/accounts/123".into()),
            PathMatcher::Prefix("/accounts/9".into()),
        ];
        let reps = representatives(&t, &RouteLiterals::new(matchers.iter())).unwrap_or_default();
        // Equal to the exact literal, extending the prefix literal, and neither.
        assert!(reps.contains(&"/accounts/123".to_string()), "{reps:?}");
        assert!(
            reps.iter()
                .any(|r| r.starts_with("/accounts/9") && r.len() > "/accounts/9".len()),
            "{reps:?}"
        );
        assert!(
            reps.iter()
                .any(|r| !r.starts_with("/accounts/1") && !r.starts_with("/accounts/9")),
            "{reps:?}"
        );
        assert!(reps.iter().all(|r| t.matches(r)));
    }

    /// (template, route literal, whether it can give the template's parameters values).
    #[test]
    fn literals_give_values_below_the_fixed_segments() {
        let accounts = "/open-banking-nz/v3.0/accounts/{AccountId}/balances";
        for (template, literal, gives) in [
            (accounts, "/open-banking-nz/v3.0/accounts/1", true),
            (accounts, "/open-banking-nz/v3.0/accounts/", true),
            (accounts, "/Open-Banking-NZ/V3.0/ACCOUNTS/1/balances", true),
            (accounts, "/open-banking-nz/v3.0/accounts", false),
            (accounts, "/open-banking-nz/v3.0/accountsx/1", false),
            (accounts, "/open-banking-nz/v3.0/payments/1", false),
            (accounts, "/open-banking-nz/v3.0/", false),
            (accounts, "/", false),
            (accounts, "", false),
            ("/{Tenant}/accounts", "/", true),
            ("/{Tenant}/accounts", "/bank", true),
            ("/{Tenant}/accounts", "", false),
        ] {
            assert_eq!(
                PathTemplate::parse(template).literal_gives_values(literal),
                gives,
                "{template} {literal}"
            );
        }
    }

    /// Literals are compared with the template's segments before its parameters ASCII
    /// case-insensitively (as `compatible_before` does), so a literal in other case still
    /// gives its values; literals elsewhere give none.
    #[test]
    fn representatives_take_values_only_from_literals_below_the_fixed_segments() {
        let t = PathTemplate::parse("/open-banking-nz/v3.0/accounts/{AccountId}/balances");
        let values = |paths: &[&str]| {
            let matchers: Vec<PathMatcher> = paths
                .iter()
                .map(|p| PathMatcher::Exact(p.to_string()))
                .collect();
            representatives(&t, &RouteLiterals::new(matchers.iter())).unwrap_or_default()
        };
        let related = [
            "/open-banking-nz/v3.0/accounts/123/balances",
            "/OPEN-BANKING-NZ/v3.0/Accounts/456",
        ];
        let unrelated = [
            "/open-banking-nz/v3.0/accounts",
            "/open-banking-nz/v3.0/payments/789",
            "/open-banking-nz/v3.0/accountsx/1",
            "/token",
            "/",
        ];
        let reps = values(&related);
        for value in ["123", "456"] {
            let path = format!("/open-banking-nz/v3.0/accounts/{value}/balances");
            assert!(reps.contains(&path), "{path} in {reps:?}");
        }
        let all: Vec<&str> = related.iter().chain(&unrelated).copied().collect();
        assert_eq!(values(&all), reps, "unrelated literals add no value");
    }

    #[test]
    fn regex_language_intersection_is_exact() {
        let route = |p: &str| match PathMatcher::nginx_regex(p) {
            PathMatcher::Regex(r) => r,
            other => panic!("{other:?} is not a regex"),
        };
        let t = |p: &str| PathTemplate::parse(p).instance_pattern();
        // '.' is any character, but the rest must still match.
        assert!(
            !route("/oauth2/.well-known/openid-configuration")
                .may_match_language(&t("/oauth2/token"))
        );
        assert!(
            route("/open-banking-nz/v3.0/accounts")
                .may_match_language(&t("/open-banking-nz/v3.0/accounts/{AccountId}"))
        );
        assert!(
            !route("/open-banking-nz/v3.0/accounts")
                .may_match_language(&t("/open-banking-nz/v3.0/balances"))
        );
        assert!(
            route("/open-banking-nz/v3.0/accounts/[0-9]+")
                .may_match_language(&t("/open-banking-nz/v3.0/accounts/{AccountId}/balances"))
        );
        assert!(
            !route("/open-banking-nz/v3.0/accounts/[0-9]+$")
                .may_match_language(&t("/open-banking-nz/v3.0/accounts/{AccountId}/balances"))
        );
        // Case-insensitive, as nginx's ~*.
        assert!(
            route("/OPEN-banking-nz/v3.0/Accounts")
                .may_match_language(&t("/open-banking-nz/v3.0/accounts"))
        );
    }

    #[test]
    fn regex_literal_prefix() {
        assert_eq!(literal_prefix("/accounts/[0-9]+"), "/accounts/");
        assert_eq!(literal_prefix("/token|/authorize"), "");
        assert_eq!(literal_prefix("/tokens?"), "/token");
    }
}
