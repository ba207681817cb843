//! Traefik HTTP router rules (`spec.routes[].match` of an IngressRoute), parsed as Traefik
//! parses them and reduced, for one request host, to the paths a router may serve.
//!
//! Sources (traefik/traefik): the rule grammar is `vulcand/predicate` as configured in
//! `pkg/rules/parser.go` (matcher calls with backquoted or double-quoted string arguments,
//! `&&`, `||`, `!`, parentheses); the matchers are `httpFuncs` in
//! `pkg/muxer/http/matcher.go` (v3 syntax: `Host`, `HostRegexp`, `Path`, `PathPrefix`,
//! `PathRegexp`, `Method`, `Header`, `HeaderRegexp`, `Query`, `QueryRegexp`, `ClientIP`)
//! and `httpFuncsV2` in `matcher_v2.go` (v2 syntax, still read by v3 when the static
//! `core.defaultRuleSyntax` or a route's `syntax` says `v2`: `Host`/`HostHeader` and
//! `Path`/`PathPrefix` with several arguments, `HostRegexp` and paths with gorilla/mux
//! `{name:regex}` templates, `Headers`, `HeadersRegexp`, `Query`). The syntax in force is
//! static configuration mtls-gate cannot see, so every rule is read under both and the union
//! of what they may match is kept (fail closed). `Host` compares the request host
//! lower-cased, a trailing dot ignored; `Path` is an exact, case-sensitive comparison,
//! `PathPrefix` a plain string prefix, `PathRegexp` an unanchored Go regexp search.
//!
//! Matchers on other request properties (method, headers, query, client IP) and negated path
//! matchers make a router serve only some requests of a path: such a route may win, but
//! never shadows another one ([`PathAlternative::certain`] is false).

use std::sync::Arc;

use crate::paths::PathMatcher;

/// Longest rule text read (Kubernetes objects are far smaller in practice).
const MAX_RULE_LEN: usize = 16 * 1024;
/// Deepest nesting of parentheses and `!` accepted.
const MAX_DEPTH: usize = 64;
/// Most alternatives a rule may expand to before it is reported as too complex.
const MAX_ALTERNATIVES: usize = 256;
/// Most matcher calls in one rule (bounds the depth of the parsed tree, which the
/// analyses walk recursively).
const MAX_MATCHERS: usize = 256;

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
    Not(Box<Rule>),
    Matcher { name: String, args: Vec<String> },
}

/// Matchers of the request host.
const HOST_MATCHERS: &[&str] = &["Host", "HostHeader", "HostRegexp"];
/// Matchers of the request path.
const PATH_MATCHERS: &[&str] = &["Path", "PathPrefix", "PathRegexp"];
/// Matchers of other request properties (both syntaxes).
const OTHER_MATCHERS: &[&str] = &[
    "Method",
    "Header",
    "HeaderRegexp",
    "Headers",
    "HeadersRegexp",
    "Query",
    "QueryRegexp",
    "ClientIP",
];

/// Matchers of TCP router rules (`tcpFuncs` in `pkg/muxer/tcp/matcher.go`, `tcpFuncsV2` in
/// `matcher_v2.go`: the same names, v2 taking several arguments).
const TCP_MATCHERS: &[&str] = &["HostSNI", "HostSNIRegexp", "ClientIP", "ALPN"];

/// Parses an HTTP router rule; the error says what is wrong and where.
pub fn parse(text: &str) -> Result<Rule, String> {
    parse_with(text, false)
}

/// Parses a TCP router rule (`spec.routes[].match` of an IngressRouteTCP): the same
/// grammar (`pkg/rules/parser.go`) over the TCP matchers.
pub fn parse_tcp(text: &str) -> Result<Rule, String> {
    parse_with(text, true)
}

fn parse_with(text: &str, tcp: bool) -> Result<Rule, String> {
    if text.len() > MAX_RULE_LEN {
        return Err(format!("the rule is longer than {MAX_RULE_LEN} bytes"));
    }
    let mut parser = Parser {
        text,
        pos: 0,
        depth: 0,
        matchers: 0,
        tcp,
    };
    let rule = parser.or()?;
    parser.skip_space();
    if parser.pos < text.len() {
        return Err(format!("unexpected text at byte {}", parser.pos));
    }
    Ok(rule)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
    matchers: usize,
    /// A TCP rule ([`TCP_MATCHERS`]) rather than an HTTP one.
    tcp: bool,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }
    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }
    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<Rule, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Rule::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Rule, String> {
        let mut left = self.unary()?;
        while self.eat("&&") {
            left = Rule::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Rule, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH}"));
        }
        let rule = if self.eat("!") {
            Rule::Not(Box::new(self.unary()?))
        } else if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(format!("missing ')' at byte {}", self.pos));
            }
            inner
        } else {
            self.matcher()?
        };
        self.depth -= 1;
        Ok(rule)
    }
    fn matcher(&mut self) -> Result<Rule, String> {
        self.matchers += 1;
        if self.matchers > MAX_MATCHERS {
            return Err(format!("more than {MAX_MATCHERS} matchers"));
        }
        self.skip_space();
        let start = self.pos;
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        let name = &self.text[start..start + len];
        if name.is_empty() {
            return Err(format!("expected a matcher at byte {start}"));
        }
        self.pos += len;
        let known = if self.tcp {
            TCP_MATCHERS.contains(&name)
        } else {
            HOST_MATCHERS
                .iter()
                .chain(PATH_MATCHERS)
                .chain(OTHER_MATCHERS)
                .any(|m| *m == name)
        };
        if !known {
            return Err(format!("unknown matcher {name:?}"));
        }
        if !self.eat("(") {
            return Err(format!("expected '(' after {name}"));
        }
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.string()?);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return Err(format!("expected ',' or ')' at byte {}", self.pos));
                }
            }
        }
        if args.is_empty() {
            return Err(format!("{name} has no argument"));
        }
        Ok(Rule::Matcher {
            name: name.to_string(),
            args,
        })
    }
    /// A backquoted (raw) or double-quoted Go string literal.
    fn string(&mut self) -> Result<String, String> {
        self.skip_space();
        let rest = self.rest();
        if let Some(body) = rest.strip_prefix('`') {
            let end = body
                .find('`')
                .ok_or_else(|| format!("unterminated ` string at byte {}", self.pos))?;
            let value = body[..end].to_string();
            self.pos += end + 2;
            return Ok(value);
        }
        if let Some(body) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = body.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        self.pos += i + 2;
                        return Ok(value);
                    }
                    '\\' => match chars.next() {
                        Some((_, e @ ('"' | '\\'))) => value.push(e),
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 't')) => value.push('\t'),
                        _ => {
                            return Err(format!(
                                "escape sequence mtls-gate does not read at byte {}",
                                self.pos + i + 1
                            ));
                        }
                    },
                    c => value.push(c),
                }
            }
            return Err(format!("unterminated \" string at byte {}", self.pos));
        }
        Err(format!("expected a quoted string at byte {}", self.pos))
    }
}

/// Whether a condition holds for the requested host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    Yes,
    No,
    Maybe,
}

/// One way a rule may match requests of a host: by path, and whether every request of the
/// path matches (`certain`) or only some (other matchers, negations, v2/v3 ambiguity).
#[derive(Debug, Clone)]
pub struct PathAlternative {
    pub matcher: PathMatcher,
    pub certain: bool,
}

/// A literal of the rule in negation normal form.
#[derive(Debug, Clone)]
enum Literal {
    Host(Truth),
    Path(PathMatcher, bool),
    /// A condition on something other than host and path, or a negated path matcher.
    Other,
}

/// The ways `rule` may match requests for `host` (empty: never), or an error when the rule
/// expands to too many alternatives to analyse.
pub fn alternatives(rule: &Rule, host: &str) -> Result<Vec<PathAlternative>, String> {
    let host = host.to_ascii_lowercase();
    let dnf = disjuncts(rule, false, &host)?;
    let mut out = Vec::new();
    for conjunct in dnf {
        if let Some(alt) = conjunction(&conjunct) {
            out.push(alt);
        }
    }
    Ok(out)
}

/// The rule in disjunctive normal form, each literal already evaluated for `host`.
fn disjuncts(rule: &Rule, negated: bool, host: &str) -> Result<Vec<Vec<Literal>>, String> {
    let product = |a: Vec<Vec<Literal>>, b: Vec<Vec<Literal>>| -> Result<_, String> {
        if a.len().saturating_mul(b.len()) > MAX_ALTERNATIVES {
            return Err(format!(
                "the rule expands to more than {MAX_ALTERNATIVES} alternatives"
            ));
        }
        let mut out = Vec::new();
        for x in &a {
            for y in &b {
                out.push(x.iter().chain(y).cloned().collect());
            }
        }
        Ok(out)
    };
    let sum = |mut a: Vec<Vec<Literal>>, b: Vec<Vec<Literal>>| -> Result<_, String> {
        a.extend(b);
        if a.len() > MAX_ALTERNATIVES {
            return Err(format!(
                "the rule expands to more than {MAX_ALTERNATIVES} alternatives"
            ));
        }
        Ok(a)
    };
    match (rule, negated) {
        (Rule::And(l, r), false) | (Rule::Or(l, r), true) => {
            product(disjuncts(l, negated, host)?, disjuncts(r, negated, host)?)
        }
        (Rule::Or(l, r), false) | (Rule::And(l, r), true) => {
            sum(disjuncts(l, negated, host)?, disjuncts(r, negated, host)?)
        }
        (Rule::Not(inner), _) => disjuncts(inner, !negated, host),
        (Rule::Matcher { name, args }, _) => Ok(matcher_literals(name, args, negated, host)),
    }
}

/// The literals of one matcher call (several alternatives for multi-argument v2 paths).
fn matcher_literals(name: &str, args: &[String], negated: bool, host: &str) -> Vec<Vec<Literal>> {
    match name {
        "Host" | "HostHeader" | "HostRegexp" => {
            let truth = host_truth(name, args, host);
            let truth = match (truth, negated) {
                (Truth::Yes, true) => Truth::No,
                (Truth::No, true) => Truth::Yes,
                (t, _) => t,
            };
            vec![vec![Literal::Host(truth)]]
        }
        "Path" | "PathPrefix" | "PathRegexp" if !negated => args
            .iter()
            .map(|arg| vec![path_literal(name, arg)])
            .collect(),
        _ => vec![vec![Literal::Other]],
    }
}

/// Whether a host matcher matches `host` (lower-case), under either syntax.
fn host_truth(name: &str, args: &[String], host: &str) -> Truth {
    if name != "HostRegexp" {
        let matches = args.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a.strip_suffix('.').unwrap_or(&a) == host
        });
        return if matches { Truth::Yes } else { Truth::No };
    }
    // v3: a Go regexp searched in the Host header (which may carry a port); v2: a
    // gorilla/mux host template with `{name:regex}` variables, matched case-insensitively.
    let mut results = Vec::new();
    for arg in args {
        let candidates = [Some(arg.clone()), host_template_regex(arg)];
        for source in candidates.into_iter().flatten() {
            match regex::Regex::new(&source) {
                Ok(re) => {
                    results.push(re.is_match(host) || re.is_match(&format!("{host}:443")));
                }
                Err(_) => return Truth::Maybe,
            }
        }
    }
    if results.iter().all(|m| *m) {
        Truth::Yes
    } else if results.iter().all(|m| !*m) {
        Truth::No
    } else {
        Truth::Maybe
    }
}

/// A gorilla/mux host template (`{sub:[a-z]+}.example.com`) as an anchored regex, or
/// `None` when it has no variables.
fn host_template_regex(template: &str) -> Option<String> {
    if !template.contains('{') {
        return None;
    }
    let mut out = String::from("(?i)^");
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&regex::escape(&rest[..open]));
        let close = rest[open..].find('}')? + open;
        let var = &rest[open + 1..close];
        match var.split_once(':') {
            Some((_, pattern)) => out.push_str(&format!("(?:{pattern})")),
            None => out.push_str("[^.]+"),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(&regex::escape(rest));
    out.push('$');
    Some(out)
}

/// The path literal of one path matcher argument. A `{` may be a v2 template variable, so
/// such a path counts as every path under its literal start, uncertainly.
fn path_literal(name: &str, arg: &str) -> Literal {
    if name == "PathRegexp" {
        return Literal::Path(PathMatcher::go_regex(arg), true);
    }
    if let Some(open) = arg.find('{') {
        return Literal::Path(PathMatcher::Prefix(arg[..open].to_string()), false);
    }
    if name == "Path" {
        Literal::Path(PathMatcher::Exact(arg.to_string()), true)
    } else {
        Literal::Path(PathMatcher::Prefix(arg.to_string()), true)
    }
}

/// One conjunction of literals as a path alternative (`None`: matches nothing for the host).
fn conjunction(literals: &[Literal]) -> Option<PathAlternative> {
    let mut certain = true;
    let mut paths: Vec<(&PathMatcher, bool)> = Vec::new();
    for literal in literals {
        match literal {
            Literal::Host(Truth::No) => return None,
            Literal::Host(Truth::Yes) => {}
            Literal::Host(Truth::Maybe) | Literal::Other => certain = false,
            Literal::Path(m, sure) => paths.push((m, *sure)),
        }
    }
    let Some((&(first, first_sure), others)) = paths.split_first() else {
        return Some(PathAlternative {
            matcher: PathMatcher::Prefix("/".into()),
            certain,
        });
    };
    let mut matcher = first.clone();
    certain &= first_sure;
    for &(other, sure) in others {
        certain &= sure;
        matcher = match intersect(&matcher, other) {
            Intersection::Empty => return None,
            Intersection::Exactly(m) => m,
            Intersection::Within(m) => {
                certain = false;
                m
            }
        };
    }
    Some(PathAlternative { matcher, certain })
}

enum Intersection {
    Empty,
    Exactly(PathMatcher),
    /// The intersection lies within this matcher (not all of it).
    Within(PathMatcher),
}

/// The paths two matchers both match, as a matcher when literal.
fn intersect(a: &PathMatcher, b: &PathMatcher) -> Intersection {
    use crate::paths::MatchResult;
    match (a, b) {
        (PathMatcher::Exact(p), other) | (other, PathMatcher::Exact(p)) => match other.matches(p) {
            MatchResult::Yes => Intersection::Exactly(PathMatcher::Exact(p.clone())),
            MatchResult::No => Intersection::Empty,
            MatchResult::Maybe => Intersection::Within(PathMatcher::Exact(p.clone())),
        },
        (PathMatcher::Prefix(x), PathMatcher::Prefix(y)) => {
            if x.starts_with(y.as_str()) {
                Intersection::Exactly(a.clone())
            } else if y.starts_with(x.as_str()) {
                Intersection::Exactly(b.clone())
            } else {
                Intersection::Empty
            }
        }
        // A regex with anything: the literal side over-approximates the intersection.
        (PathMatcher::Regex(_), other) | (other, PathMatcher::Regex(_))
            if !matches!(other, PathMatcher::Regex(_)) =>
        {
            Intersection::Within(other.clone())
        }
        _ => Intersection::Within(a.clone()),
    }
}

/// The exact hosts a rule can match, lower-case without trailing dot, or `None` when some
/// alternative may match other hosts (no `Host` matcher, `HostRegexp`, negation).
pub fn exact_hosts(rule: &Rule) -> Option<Vec<String>> {
    match rule {
        Rule::Or(l, r) => {
            let mut hosts = exact_hosts(l)?;
            hosts.extend(exact_hosts(r)?);
            Some(hosts)
        }
        Rule::And(l, r) => exact_hosts(l).or_else(|| exact_hosts(r)),
        Rule::Not(_) => None,
        Rule::Matcher { name, args } if name == "Host" || name == "HostHeader" => Some(
            args.iter()
                .map(|a| {
                    let a = a.to_ascii_lowercase();
                    a.strip_suffix('.').unwrap_or(&a).to_string()
                })
                .collect(),
        ),
        Rule::Matcher { .. } => None,
    }
}

/// Whether the rule names `host` in a `Host` matcher anywhere: Traefik ties a router's TLS
/// options to the SNI names it finds this way (`pkg/server/router/tcp/manager.go`,
/// `ParseDomains`); other routers get the options the host's SNI resolves to.
pub fn names_host(rule: &Rule, host: &str) -> bool {
    match rule {
        Rule::Or(l, r) | Rule::And(l, r) => names_host(l, host) || names_host(r, host),
        Rule::Not(inner) => names_host(inner, host),
        Rule::Matcher { name, args } => {
            (name == "Host" || name == "HostHeader")
                && args.iter().any(|a| {
                    let a = a.to_ascii_lowercase();
                    a.strip_suffix('.').unwrap_or(&a).eq_ignore_ascii_case(host)
                })
        }
    }
}

/// Whether a TCP rule may match a TLS connection whose SNI is `host` (a v2 or v3 rule:
/// `HostSNI` compares the SNI with each argument, `*` matching every connection, a trailing
/// dot ignored; `HostSNIRegexp` is a Go regexp searched in the SNI under v3 and an anchored,
/// case-insensitive gorilla/mux template under v2; `ClientIP` and `ALPN` may hold or not).
/// Host names are compared case-insensitively, which may over-match (fail closed).
pub fn may_match_sni(rule: &Rule, host: &str) -> bool {
    sni_truth(rule, &host.to_ascii_lowercase()) != Truth::No
}

fn sni_truth(rule: &Rule, host: &str) -> Truth {
    match rule {
        Rule::And(l, r) => match (sni_truth(l, host), sni_truth(r, host)) {
            (Truth::No, _) | (_, Truth::No) => Truth::No,
            (Truth::Yes, Truth::Yes) => Truth::Yes,
            _ => Truth::Maybe,
        },
        Rule::Or(l, r) => match (sni_truth(l, host), sni_truth(r, host)) {
            (Truth::Yes, _) | (_, Truth::Yes) => Truth::Yes,
            (Truth::No, Truth::No) => Truth::No,
            _ => Truth::Maybe,
        },
        Rule::Not(inner) => match sni_truth(inner, host) {
            Truth::Yes => Truth::No,
            Truth::No => Truth::Yes,
            Truth::Maybe => Truth::Maybe,
        },
        Rule::Matcher { name, args } if name == "HostSNI" => {
            let matches = args.iter().any(|a| {
                let a = a.to_ascii_lowercase();
                a == "*" || a.strip_suffix('.').unwrap_or(&a) == host
            });
            if matches { Truth::Yes } else { Truth::No }
        }
        Rule::Matcher { name, args } if name == "HostSNIRegexp" => {
            let mut results = Vec::new();
            for arg in args {
                let v2 = host_template_regex(arg)
                    .unwrap_or_else(|| format!("(?i)^{}$", regex::escape(arg)));
                for source in [arg.clone(), v2] {
                    match regex::Regex::new(&source) {
                        Ok(re) => results.push(re.is_match(host)),
                        Err(_) => return Truth::Maybe,
                    }
                }
            }
            if results.iter().all(|m| *m) {
                Truth::Yes
            } else if results.iter().all(|m| !*m) {
                Truth::No
            } else {
                Truth::Maybe
            }
        }
        Rule::Matcher { .. } => Truth::Maybe,
    }
}

/// The exact SNI names a TCP rule can match, lower-case without trailing dot, or `None`
/// when some alternative may match other names (`HostSNI(`*`)`, `HostSNIRegexp`, negation,
/// no `HostSNI`).
pub fn exact_sni_hosts(rule: &Rule) -> Option<Vec<String>> {
    match rule {
        Rule::Or(l, r) => {
            let mut hosts = exact_sni_hosts(l)?;
            hosts.extend(exact_sni_hosts(r)?);
            Some(hosts)
        }
        Rule::And(l, r) => exact_sni_hosts(l).or_else(|| exact_sni_hosts(r)),
        Rule::Not(_) => None,
        Rule::Matcher { name, args } if name == "HostSNI" => args
            .iter()
            .map(|a| {
                let a = a.to_ascii_lowercase();
                (a != "*").then(|| a.strip_suffix('.').unwrap_or(&a).to_string())
            })
            .collect(),
        Rule::Matcher { .. } => None,
    }
}

/// A parsed rule shared by the views of one object.
pub type SharedRule = Arc<Rule>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_traefik_rules_and_rejects_what_traefik_rejects() {
        let ok = [
            "Host(`a.example`) && PathPrefix(`/x`)",
            "(Host(`a`) || Host(\"b\")) && !Path(`/p`)",
            "Host(`a`,`b`) && Method(`GET`)",
        ];
        for rule in ok {
            assert!(parse(rule).is_ok(), "{rule}");
        }
        let bad = [
            "Host(`a`",
            "Hots(`a`)",
            "Host(`a`) &&",
            "Host()",
            "Host(`a`) PathPrefix(`/`)",
            "Host(\"\\x41\")",
        ];
        for rule in bad {
            assert!(parse(rule).is_err(), "{rule}");
        }
        let deep = format!("{}Host(`a`){}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
        let long = vec!["Path(`/a`)"; 1000].join(" && ");
        assert!(parse(&long).is_err());
        let wide = vec!["Path(`/a`)"; 200].join(" || ");
        let parsed = parse(&wide).expect("200 matchers parse");
        assert_eq!(alternatives(&parsed, "a").map(|a| a.len()), Ok(200));
        let product = ["(Path(`/a`) || Path(`/b`))"; 10].join(" && ");
        let parsed = parse(&product).expect("parses");
        assert!(
            alternatives(&parsed, "a").is_err(),
            "2^10 alternatives are too many"
        );
    }

    #[test]
    fn tcp_rules_for_a_sni() {
        // (rule, may take SNI api.bank, exact SNI names it is indexed under)
        let cases: &[(&str, bool, Option<&[&str]>)] = &[
            ("HostSNI(`api.bank`)", true, Some(&["api.bank"])),
            ("HostSNI(`API.bank.`)", true, Some(&["api.bank"])),
            ("HostSNI(`db.bank`)", false, Some(&["db.bank"])),
            ("HostSNI(`*`)", true, None),
            (
                "HostSNI(`db.bank`, `api.bank`)",
                true,
                Some(&["db.bank", "api.bank"]),
            ),
            ("HostSNIRegexp(`^.+\\.bank$`)", true, None),
            ("HostSNIRegexp(`{sub:[a-z]+}.bank`)", true, None),
            ("HostSNIRegexp(`^db\\.`)", false, None),
            (
                "HostSNI(`api.bank`) && ClientIP(`10.0.0.0/8`)",
                true,
                Some(&["api.bank"]),
            ),
            (
                "HostSNI(`api.bank`) && ALPN(`h2`)",
                true,
                Some(&["api.bank"]),
            ),
            ("!HostSNI(`db.bank`)", true, None),
            (
                "HostSNI(`db.bank`) || HostSNI(`x.bank`)",
                false,
                Some(&["db.bank", "x.bank"]),
            ),
        ];
        for (text, takes, hosts) in cases {
            let parsed = parse_tcp(text).expect(text);
            assert_eq!(may_match_sni(&parsed, "api.bank"), *takes, "{text}");
            let want = hosts.map(|h| h.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(exact_sni_hosts(&parsed), want, "{text}");
        }
        // HTTP matchers are not TCP matchers, and the other way round.
        assert!(parse_tcp("Host(`api.bank`)").is_err());
        assert!(parse("HostSNI(`api.bank`)").is_err());
    }

    #[test]
    fn alternatives_for_a_host() {
        let cases: &[(&str, &[(&str, bool)])] = &[
            (
                "Host(`api.bank`) && PathPrefix(`/token`)",
                &[("/token", true)],
            ),
            ("Host(`other`) && PathPrefix(`/token`)", &[]),
            ("Host(`API.bank.`)", &[("/", true)]),
            (
                "PathPrefix(`/a`) || Path(`/b`)",
                &[("/a", true), ("/b", true)],
            ),
            ("Host(`api.bank`) && Header(`X`, `1`)", &[("/", false)]),
            ("Host(`api.bank`) && !PathPrefix(`/a`)", &[("/", false)]),
            ("!Host(`api.bank`)", &[]),
            ("PathPrefix(`/a`) && PathPrefix(`/a/b`)", &[("/a/b", true)]),
            ("PathPrefix(`/a`) && PathPrefix(`/b`)", &[]),
            ("HostRegexp(`^[a-z]+\\.bank$`)", &[("/", true)]),
            ("HostRegexp(`{sub:[a-z]+}.bank`)", &[("/", false)]),
            ("Path(`/a/{id}`)", &[("/a/", false)]),
        ];
        for (rule, want) in cases {
            let parsed = parse(rule).expect(rule);
            let got: Vec<(String, bool)> = alternatives(&parsed, "api.bank")
                .expect(rule)
                .into_iter()
                .map(|a| {
                    let text = match &a.matcher {
                        PathMatcher::Exact(p) | PathMatcher::Prefix(p) => p.clone(),
                        other => format!("{other:?}"),
                    };
                    (text, a.certain)
                })
                .collect();
            let want: Vec<(String, bool)> = want.iter().map(|(p, c)| (p.to_string(), *c)).collect();
            assert_eq!(got, want, "{rule}");
        }
    }
}
