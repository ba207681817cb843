//! The compliance engine: pure functions from a profile and a view of objects to a
//! [`Verdict`]. No I/O, no clocks; the CLI, the webhooks and the controller all call these.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::catalog::Scheme;
use crate::dialect::{
    AuthKind, Dialect, HostContext, HostRouteTable, Route, RouteMoves, RouteSource, SharedObject,
    TablePatch, dialect_for,
};
use crate::model::{IngressView, Lookup, ObjectKey, ObjectSource};
use crate::paths::{
    LiteralIndex, MatchResult, PathMatcher, PathTemplate, RouteLiteral, RouteLiterals,
    UnlistedCandidates, representatives, unlisted_representatives,
};
use crate::profile::{CompiledProfile, ResolvedEndpoint, UnlistedScope};
pub use crate::profile::{EndpointCoverage, ServingRoute};
use crate::violation::{Violation, ViolationCode};

/// The engine cannot evaluate a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(
        "profile {profile}: spec.ingressController {controller:?} is accepted by the CRD, but this version of mtls-gate cannot evaluate it (supported: {supported})"
    )]
    UnsupportedController {
        profile: String,
        controller: &'static str,
        supported: String,
    },
}

/// How the controller would treat one host of the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostSummary {
    pub profile: String,
    pub host: String,
    /// The Ingress rule host that serves it (exact, `*.` wildcard, or `""`), if any.
    pub rule_host: Option<String>,
    /// Host-level client authentication, in the controller's terms.
    pub client_auth: String,
}

/// The result of evaluating one profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub compliant: bool,
    pub violations: Vec<Violation>,
    pub coverage: Vec<EndpointCoverage>,
    pub hosts: Vec<HostSummary>,
}

impl Verdict {
    pub fn merge(&mut self, other: Verdict) {
        self.violations.extend(other.violations);
        self.coverage.extend(other.coverage);
        self.hosts.extend(other.hosts);
        self.violations.sort();
        self.violations.dedup();
        self.compliant = self.violations.is_empty();
    }
}

/// Evaluates every host of the profile, with the coverage report. (Admission evaluates
/// host by host: [`evaluate_host`], [`evaluate_host_after_change`].)
pub fn evaluate(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
) -> Result<Verdict, EngineError> {
    let dialect = profile_dialect(profile)?;
    let mut verdict = Verdict::default();
    for host in &profile.hosts {
        evaluate_host(profile, dialect, objects, host, true).add_to(&mut verdict);
    }
    verdict.violations.sort();
    verdict.violations.dedup();
    verdict.compliant = verdict.violations.is_empty();
    Ok(verdict)
}

/// The dialect that evaluates `profile`.
pub fn profile_dialect(profile: &CompiledProfile) -> Result<&'static dyn Dialect, EngineError> {
    dialect_for(profile.controller()).ok_or_else(|| EngineError::UnsupportedController {
        profile: profile.name.clone(),
        controller: profile.controller().as_str(),
        supported: crate::dialect::DIALECTS
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Whether the controller of a profile's `spec.ingressClassName` serves an Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassDecision {
    /// Its class is the profile's (or the profile names no class).
    Served,
    /// Counted although its class differs or is missing (fail closed); the note says why,
    /// and findings about its routes carry it.
    Counted(String),
    /// Another controller serves it.
    NotServed,
}

impl ClassDecision {
    pub fn counts(&self) -> bool {
        !matches!(self, ClassDecision::NotServed)
    }
}

/// Decides whether the controller of the profile's class serves `ingress`, as the
/// controllers select Ingresses:
/// - `spec.ingressClassName` names an IngressClass object; ingress-nginx keeps every
///   IngressClass whose `spec.controller` is its controller class and serves the Ingresses
///   of all of them (`ingressClassEventHandler` and `GetIngressClass` in
///   `internal/ingress/controller/store/store.go`); Traefik likewise serves every class
///   whose controller is `traefik.io/ingress-controller` unless its provider filters by
///   name (`pkg/provider/kubernetes/ingress/kubernetes.go`). So an Ingress of another
///   class whose IngressClass names the same controller as the profile's class counts; one
///   whose IngressClass does not exist, or names another controller, does not.
/// - The legacy `kubernetes.io/ingress.class` annotation is compared with the
///   controller's `--ingress-class` flag, not with IngressClass names (ingress-nginx
///   `IsValid`; the Helm chart passes `controller.ingressClass`, default `nginx`, whatever
///   the IngressClass is called). The flag is invisible to mtls-gate, so the annotation
///   counts when it is the profile's class or the flag's default value
///   ([`crate::dialect::Dialect::legacy_class_default`], with a note).
/// - An Ingress without a class counts (the API server gives new class-less Ingresses the
///   default IngressClass, and controllers may watch Ingresses without a class, which
///   mtls-gate cannot see).
/// - IngressClass objects mtls-gate does not know (a CLI run without them, a watch that is
///   not allowed) make a different class count, with a note: fail closed.
pub fn ingress_class_decision(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
    ingress: &IngressView,
) -> ClassDecision {
    let Some(want) = profile.spec.ingress_class_name.as_deref() else {
        return ClassDecision::Served;
    };
    let Some(class) = ingress.class.as_deref() else {
        return ClassDecision::Counted(format!(
            "it has no ingress class; counted as served by class {want:?}, because the API server gives new class-less Ingresses the default IngressClass and the controller may watch Ingresses without a class"
        ));
    };
    if class == want {
        return ClassDecision::Served;
    }
    if ingress.class_from_annotation {
        let flag_default = crate::dialect::dialect_for(profile.spec.ingress_controller)
            .and_then(|d| d.legacy_class_default());
        return match flag_default {
            Some(default) if class == default => ClassDecision::Counted(format!(
                "its legacy kubernetes.io/ingress.class annotation is {class:?}, which the controller compares with its --ingress-class flag, not with IngressClass names; {default:?} is that flag's default (and the Helm chart's controller.ingressClass), which mtls-gate cannot see, so it is counted although the profile's class is {want:?}"
            )),
            _ => ClassDecision::NotServed,
        };
    }
    match (objects.ingress_class(class), objects.ingress_class(want)) {
        (Lookup::Found(theirs), Lookup::Found(ours)) if theirs.controller == ours.controller => {
            ClassDecision::Counted(format!(
                "its IngressClass {class:?} names controller {:?}, as the profile's class {want:?} does, so the same controller serves it",
                theirs.controller
            ))
        }
        (Lookup::Found(_), Lookup::Found(_)) | (Lookup::Missing, _) => ClassDecision::NotServed,
        (Lookup::Found(_), Lookup::Missing) => ClassDecision::Counted(format!(
            "the profile's IngressClass {want:?} does not exist, so mtls-gate cannot tell which controller serves class {class:?}; counted (create IngressClass {want:?})"
        )),
        (Lookup::Unknown, _) | (_, Lookup::Unknown) => ClassDecision::Counted(format!(
            "its class {class:?} differs from the profile's class {want:?}, but mtls-gate does not know their IngressClass objects, so the same controller may serve both; counted (give check the IngressClass manifests)"
        )),
    }
}

/// The Ingresses that serve `host`, with the notes on those counted by
/// [`ingress_class_decision`] although their class differs.
pub struct ServingIngresses {
    /// The rule host: an exact rule, else a `*.` wildcard, else a host-less rule (as
    /// controllers pick server blocks).
    pub rule_key: String,
    pub ingresses: Vec<Arc<IngressView>>,
    pub class_notes: BTreeMap<ObjectKey, String>,
}

/// The rule host that serves `host` and its Ingresses of the considered classes; each
/// Ingress's class is decided once.
pub fn serving_ingresses(
    profile: &CompiledProfile,
    objects: &dyn ObjectSource,
    host: &str,
) -> Option<ServingIngresses> {
    crate::cluster::rule_keys(host).into_iter().find_map(|key| {
        let mut class_notes = BTreeMap::new();
        let ingresses: Vec<_> = objects
            .ingresses_for_host(&key)
            .into_iter()
            .filter(|i| match ingress_class_decision(profile, objects, i) {
                ClassDecision::Served => true,
                ClassDecision::Counted(note) => {
                    class_notes.insert(i.key.clone(), note);
                    true
                }
                ClassDecision::NotServed => false,
            })
            .collect();
        (!ingresses.is_empty()).then_some(ServingIngresses {
            rule_key: key,
            ingresses,
            class_notes,
        })
    })
}

/// Whether route objects of one of the dialect's kinds have a rule that can serve `host`
/// (exact, `*.` wildcard or host-less).
fn serves_routes_of(dialect: &dyn Dialect, objects: &dyn ObjectSource, host: &str) -> bool {
    let kinds = dialect.kinds();
    if kinds.is_empty() {
        return false;
    }
    crate::cluster::rule_keys(host).iter().any(|key| {
        objects
            .routes_for_host(key)
            .iter()
            .any(|(kind, _)| kinds.contains(kind))
    })
}

/// Builds the route table the profile's dialect sees for `host`, with every regex route
/// compiled within the host's analysis budget ([`crate::paths::HOST_REGEX_BUDGET`]).
/// Routes that cannot be analysed add an `UnmodelledSetting` finding naming the path and
/// count as matching whatever they might (fail closed).
pub fn host_table(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
) -> Option<HostRouteTable> {
    host_table_kept(profile, dialect, objects, host, false)
}

/// [`host_table`]; with `keep_patch_state`, for a before-state that later changes patch
/// ([`Dialect::patched_table`]).
fn host_table_kept(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
    keep_patch_state: bool,
) -> Option<HostRouteTable> {
    let (host_key, ingresses, class_notes, named_by) =
        host_table_inputs(profile, dialect, objects, host)?;
    let ctx = HostContext {
        profile,
        host,
        host_key: &host_key,
        ingresses,
        named_by,
        objects,
        keep_patch_state,
    };
    let mut table = dialect.host_table(&ctx);
    table.class_notes = class_notes;
    let mut budget = crate::paths::HOST_REGEX_BUDGET;
    let mut reported = BTreeSet::new();
    let mut findings = Vec::new();
    for route in &table.routes {
        let PathMatcher::Regex(regex) = &route.matcher else {
            continue;
        };
        let Some(reason) = regex.prepare(&mut budget) else {
            continue;
        };
        if !reported.insert((route.source.clone(), route.path.clone())) {
            continue;
        }
        findings.push(Violation {
            code: ViolationCode::UnmodelledSetting,
            message: format!(
                "{} path {:?} on host {host} is evaluated by the controller as the regular expression {:?}, which mtls-gate cannot analyse: {reason}. It is treated as able to serve every endpoint of the host it might match, and the host cannot be proven compliant. Fix: use a plain path (Exact or Prefix), or a simpler expression.",
                route.source, route.path, regex.source
            ),
            profile: profile.name.clone(),
            host: host.to_string(),
            ingress: Some(route.source.key.clone()),
            path: Some(route.path.clone()),
            endpoint: None,
            url: None,
        });
    }
    table.findings.extend(findings);
    Some(table)
}

/// What [`Dialect::host_table`] is given for `host`: its rule host key, the Ingresses that
/// serve it (with their class notes) and those that name it; `None` when nothing serves
/// the host (no Ingress, no route object of the dialect's kinds).
#[allow(clippy::type_complexity)]
fn host_table_inputs(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
) -> Option<(
    String,
    Vec<Arc<IngressView>>,
    BTreeMap<ObjectKey, String>,
    Vec<Arc<IngressView>>,
)> {
    let found = serving_ingresses(profile, objects, host);
    let mut named_by: Vec<Arc<IngressView>> = crate::cluster::naming_keys(host)
        .iter()
        .flat_map(|key| objects.ingresses_naming_host(key))
        .filter(|i| {
            let rule_key = found.as_ref().map_or(host, |f| f.rule_key.as_str());
            !i.rules.iter().any(|r| r.host == rule_key)
                && ingress_class_decision(profile, objects, i).counts()
        })
        .collect();
    named_by.sort_by(|a, b| a.key.cmp(&b.key));
    named_by.dedup_by(|a, b| a.key == b.key);
    let (host_key, ingresses, class_notes) = match found {
        Some(found) => (found.rule_key, found.ingresses, found.class_notes),
        // Hosts served only by route objects of the dialect's own kinds (IngressRoute,
        // HTTPRoute), or only named by Ingresses outside their rules: the dialect finds
        // them through `objects` and `named_by`.
        None if !named_by.is_empty() || serves_routes_of(dialect, objects, host) => {
            (host.to_string(), Vec::new(), BTreeMap::new())
        }
        None => return None,
    };
    Some((host_key, ingresses, class_notes, named_by))
}

/// Whether [`host_table`] gives a table for `host` (something serves it).
fn host_table_served(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
) -> bool {
    host_table_inputs(profile, dialect, objects, host).is_some()
}

/// Which request paths a target covers.
#[derive(Debug, Clone)]
enum TargetPaths<'p> {
    /// The instances of an endpoint's path template.
    Template(&'p PathTemplate),
    /// Paths under an API base URL that are no instance of the listed templates.
    Unlisted {
        base: &'p PathTemplate,
        listed: Vec<&'p PathTemplate>,
    },
}

/// One thing a profile demands on a host: an endpoint URL with its scheme, or the scheme
/// of the unlisted paths under an API base URL.
#[derive(Debug, Clone)]
pub struct Target<'p> {
    /// The endpoint as the table writes it; `None` for unlisted paths.
    pub endpoint: Option<&'static str>,
    pub label: &'static str,
    pub category: &'static str,
    pub scheme: Scheme,
    /// Borrowed from the profile for endpoints (a review lists the targets of its host, so
    /// they are not copied per review).
    pub url: std::borrow::Cow<'p, str>,
    /// The issuer-default URL of an endpoint the profile moved: reported only when served.
    pub default_alias: bool,
    paths: TargetPaths<'p>,
}

impl Target<'_> {
    /// Whether `matcher` could match some request path of this target (exact for literal
    /// matchers, over-approximated for regexes).
    pub fn may_be_matched_by(&self, matcher: &PathMatcher) -> bool {
        match &self.paths {
            TargetPaths::Template(t) => matcher.may_match_template(t),
            TargetPaths::Unlisted { base, .. } => matcher.may_match_under(base),
        }
    }

    /// Representative request paths: every way the routes with `literals` can split the
    /// target's paths (`None`: too many, fall back to every route that may match).
    fn representatives(&self, literals: &RouteLiterals<'_>) -> Option<Vec<String>> {
        match &self.paths {
            TargetPaths::Template(t) => representatives(t, literals),
            TargetPaths::Unlisted { base, listed } => {
                Some(unlisted_representatives(base, listed, literals))
            }
        }
    }
}

/// The targets of `profile` on `host`, in a fixed order: endpoints, then unlisted scopes.
pub fn host_targets<'p>(profile: &'p CompiledProfile, host: &str) -> Vec<Target<'p>> {
    let slots = profile.host_target_slots(host);
    let mut out: Vec<Target<'p>> = Vec::with_capacity(slots.endpoints.len() + slots.unlisted.len());
    out.extend(slots.endpoints.iter().map(|&i| {
        let ep: &'p ResolvedEndpoint = &profile.endpoints[i];
        Target {
            endpoint: Some(ep.row.endpoint),
            label: ep.row.endpoint,
            category: ep.row.category.as_str(),
            scheme: ep.row.scheme,
            url: ep.url.as_str().into(),
            default_alias: ep.default_alias,
            paths: TargetPaths::Template(&ep.path),
        }
    }));
    out.extend(slots.unlisted.iter().map(|(i, listed)| {
        let scope: &'p UnlistedScope = &profile.unlisted[*i];
        Target {
            endpoint: None,
            label: "(unlisted API paths)",
            category: "unlisted",
            scheme: scope.scheme,
            url: format!("{}/…", scope.base_url).into(),
            default_alias: false,
            paths: TargetPaths::Unlisted {
                base: &scope.base,
                listed: listed.iter().map(|&j| &profile.endpoints[j].path).collect(),
            },
        }
    }));
    out
}

/// The one serving-route analysis: indices of the routes of `table` that serve some
/// request path of `target` under the dialect's precedence rules. Used by the engine, the
/// renderer and (through them) admission and status.
pub fn serving_routes(
    dialect: &dyn Dialect,
    table: &HostRouteTable,
    literals: &RouteLiterals<'_>,
    target: &Target<'_>,
) -> BTreeSet<usize> {
    serving_routes_probed(
        dialect,
        table,
        &TableLiterals::given(literals),
        target,
        None,
    )
    .serving
    .into_iter()
    .collect()
}

/// A table's route literals: given, or collected on first use. A review whose change
/// reaches only unlisted scopes needs just their fresh character, which is derived without
/// collecting them.
struct TableLiterals<'l, 't> {
    source: LiteralSource<'l, 't>,
    /// The routes whose literals give templates values ([`TargetOutcome::related`]), by
    /// the templates' segments before their first parameter: many endpoints share them
    /// (`/accounts/{AccountId}/…`), so each set is derived once per evaluation.
    related: std::cell::RefCell<Vec<RelatedByFixedSegments>>,
}

/// (a template's segments before its first parameter, the routes that give it values)
type RelatedByFixedSegments = (Vec<crate::paths::Segment>, Arc<[usize]>);

enum LiteralSource<'l, 't> {
    Given(&'l RouteLiterals<'t>),
    Lazy {
        table: &'t HostRouteTable,
        all: std::cell::OnceCell<RouteLiterals<'t>>,
        fresh: std::cell::OnceCell<char>,
    },
}

impl<'l, 't> TableLiterals<'l, 't> {
    fn given(literals: &'l RouteLiterals<'t>) -> Self {
        Self {
            source: LiteralSource::Given(literals),
            related: Default::default(),
        }
    }

    fn lazy(table: &'t HostRouteTable) -> Self {
        Self {
            source: LiteralSource::Lazy {
                table,
                all: Default::default(),
                fresh: Default::default(),
            },
            related: Default::default(),
        }
    }

    /// The literals of `table`, the table after a change that added the routes `added` to
    /// a table whose fresh character was `before_fresh`: while that is the first one tried
    /// and no added literal contains it, it stays the new table's (taking literals out
    /// cannot free a lower one), and no scan of every literal is needed.
    fn after_change(
        table: &'t HostRouteTable,
        before_fresh: Option<char>,
        added: &[&PathMatcher],
    ) -> Self {
        let literals = Self::lazy(table);
        if let LiteralSource::Lazy { fresh, .. } = &literals.source
            && before_fresh == Some(crate::paths::FIRST_FRESH_CHAR)
            && added.iter().all(|m| {
                m.literal()
                    .is_none_or(|(text, _)| !text.contains(crate::paths::FIRST_FRESH_CHAR))
            })
        {
            let _ = fresh.set(crate::paths::FIRST_FRESH_CHAR);
        }
        literals
    }

    fn all(&self) -> &RouteLiterals<'t> {
        match &self.source {
            LiteralSource::Given(literals) => literals,
            LiteralSource::Lazy { table, all, .. } => {
                all.get_or_init(|| RouteLiterals::new(table.routes.iter().map(|r| &r.matcher)))
            }
        }
    }

    /// [`RouteLiterals::fresh`] of the table's literals.
    fn fresh(&self) -> char {
        match &self.source {
            LiteralSource::Given(literals) => literals.fresh,
            LiteralSource::Lazy { table, all, fresh } => match all.get() {
                Some(literals) => literals.fresh,
                None => *fresh.get_or_init(|| {
                    RouteLiterals::fresh_of(table.routes.iter().map(|r| &r.matcher))
                }),
            },
        }
    }

    /// The routes whose literals give `template` values: `derive`d for the first template
    /// with its fixed segments, shared by the others.
    fn related_routes(
        &self,
        template: &PathTemplate,
        derive: impl FnOnce() -> Vec<usize>,
    ) -> Arc<[usize]> {
        let fixed = template.fixed_segments();
        if let Some((_, routes)) = self.related.borrow().iter().find(|(f, _)| f == fixed) {
            return Arc::clone(routes);
        }
        let routes: Arc<[usize]> = derive().into();
        self.related
            .borrow_mut()
            .push((fixed.to_vec(), Arc::clone(&routes)));
        routes
    }
}

/// The winning routes (indices into one table) of each representative path of a target:
/// kept with a host evaluation so that, after a change, the winners of a path that no
/// route of the changed object can match are taken over instead of recomputed. Hashed
/// with foldhash (seeded per map), as an unlisted scope has one entry per route literal
/// and SipHash was a third of an incremental decision.
type Probes = HashMap<Arc<str>, Winners, foldhash::fast::RandomState>;

/// The winners of one representative path: nearly always one route or none, kept inline
/// so that carrying probes over a change copies them instead of allocating per path.
type Winners = smallvec::SmallVec<[usize; 1]>;

/// The representative paths of an unlisted-path scope, each with how many times the
/// table's route literals and the fixed candidates give it ([`UnlistedCandidates`]): kept
/// with a before-state, so that after a change the representatives are these with the
/// changed object's literals' candidates taken out and put in, not all generated anew.
#[derive(Debug)]
struct UnlistedCounts {
    /// The fresh character of the table's literals the candidates were made with.
    fresh: char,
    counts: HashMap<Arc<str>, usize>,
    /// The representatives in order, with what their probes make each route win (set
    /// once the probes are chosen).
    order: Option<ProbeOrder>,
}

/// An unlisted scope's representative paths in byte order, and of how many of them each
/// route of the table is a winner: kept with a before-state, so that an after-state that
/// keeps no probes finds the paths a changed route may match by range (a `Prefix` literal's
/// paths are one run of the order) and its serving routes by counts
/// ([`ProbeReuse::unlisted_serving`]), without visiting the other probes.
#[derive(Debug)]
struct ProbeOrder {
    paths: Vec<Arc<str>>,
    /// Per route index of the table: the representatives whose winners include it.
    wins: Vec<u32>,
    /// The serving routes an outcome without coverage judges ([`judged_without_coverage`]),
    /// ascending.
    judged: Vec<usize>,
}

impl ProbeOrder {
    fn of(probes: &Probes, routes: usize) -> Self {
        let mut paths: Vec<Arc<str>> = probes.keys().cloned().collect();
        paths.sort_unstable();
        let mut wins = vec![0u32; routes];
        for winners in probes.values() {
            for &i in winners {
                if let Some(n) = wins.get_mut(i) {
                    *n += 1;
                }
            }
        }
        Self {
            paths,
            wins,
            judged: Vec::new(),
        }
    }

    /// Positions of the paths `matcher` may match: by range or lookup for literal
    /// matchers; `None` for the others (the caller then matches every path).
    fn reached_by(&self, matcher: &PathMatcher, out: &mut Vec<usize>) -> Option<()> {
        match matcher {
            PathMatcher::Exact(p) => {
                if let Ok(i) = self.paths.binary_search_by(|path| (**path).cmp(p.as_str())) {
                    out.push(i);
                }
            }
            PathMatcher::Prefix(p) => {
                let start = self.paths.partition_point(|path| **path < *p.as_str());
                out.extend(
                    (start..self.paths.len())
                        .take_while(|&i| self.paths[i].starts_with(p.as_str())),
                );
            }
            PathMatcher::PrefixIgnoreCase(_) | PathMatcher::Regex(_) => return None,
        }
        Some(())
    }
}

impl UnlistedCounts {
    /// The representatives of `scope` for `literals`, counted.
    fn of(scope: &UnlistedCandidates<'_>, literals: &RouteLiterals<'_>) -> Self {
        let mut counts: HashMap<Arc<str>, usize> = HashMap::new();
        let candidates = scope
            .fixed()
            .into_iter()
            .chain(literals.literals.iter().flat_map(|l| scope.of_literal(l)));
        for candidate in candidates {
            match counts.get_mut(candidate.as_str()) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(candidate.into(), 1);
                }
            }
        }
        Self {
            fresh: literals.fresh,
            counts,
            order: None,
        }
    }

    /// How the representatives change when a change takes the literals of `removed` out
    /// of the counted table and puts those of `added` in (every other literal the same):
    /// `None` when the fresh character changed (every candidate changes) or the counts do
    /// not hold the removed candidates (never, for counts of the table before).
    fn after_change(
        &self,
        scope: &UnlistedCandidates<'_>,
        fresh: char,
        removed: &[&PathMatcher],
        added: &[&PathMatcher],
    ) -> Option<UnlistedChange> {
        if fresh != self.fresh {
            return None;
        }
        let mut delta: HashMap<String, isize> = HashMap::new();
        for (matchers, sign) in [(removed, -1), (added, 1)] {
            for lit in matchers.iter().filter_map(|m| RouteLiteral::of(m)) {
                for candidate in scope.of_literal(&lit) {
                    *delta.entry(candidate).or_default() += sign;
                }
            }
        }
        let count = |path: &str| self.counts.get(path).map_or(0, |&n| n as isize);
        if delta.iter().any(|(path, d)| count(path) + d < 0) {
            return None;
        }
        let mut change = UnlistedChange::default();
        for (path, d) in delta {
            match count(&path) {
                0 if d > 0 => change.added.push(Arc::from(path)),
                n if n > 0 && n + d <= 0 => change.gone.push(path),
                _ => {}
            }
        }
        Some(change)
    }
}

/// The representatives of an unlisted scope that a change takes away and adds
/// ([`UnlistedCounts::after_change`]); the others stay.
#[derive(Debug, Default)]
struct UnlistedChange {
    gone: Vec<String>,
    added: Vec<Arc<str>>,
}

/// Most changed matchers a representative path is compared with one by one (more are
/// looked up in [`ProbeReuse::changed_index`]).
const DIRECT_CHANGED_CHECKS: usize = 8;

/// Probes of the table before a change, and what makes them valid for the table after it.
struct ProbeReuse<'a> {
    probes: &'a Probes,
    /// How the old table's routes moved: the changed object's removed and added, every
    /// other route the same, in the same order ([`same_other_routes`]).
    moves: &'a RouteMoves,
    /// The matchers of the changed object's routes, before and after the change.
    changed: &'a [&'a PathMatcher],
    /// `changed` by literal, when there are more than [`DIRECT_CHANGED_CHECKS`]: a
    /// representative path is matched only against the changed matchers that may match it.
    changed_index: Option<&'a LiteralIndex>,
    /// The same, before the change only and after it only.
    changed_before: &'a [&'a PathMatcher],
    changed_after: &'a [&'a PathMatcher],
    /// The target's counted unlisted-scope representatives before the change.
    unlisted: Option<&'a UnlistedCounts>,
    /// A templated target's routes whose literals may give its representatives values,
    /// before the change ([`TargetOutcome::related`]).
    related: Option<&'a [usize]>,
    /// Whether the after-state keeps probes (to be the before-state of a further change);
    /// without, an unlisted scope's serving routes are derived by counts.
    keep_probes: bool,
    /// Whether the after-state reports coverage (every serving route); without, only the
    /// serving routes it judges ([`judged_without_coverage`]) are needed.
    coverage: bool,
}

impl ProbeReuse<'_> {
    /// The winners of `path` in the new table, if the old ones carry over: no route of the
    /// changed object may match `path`, so the routes that match it are the same in both
    /// tables, and a dialect's winners depend only on those ([`Dialect::winners`]).
    fn winners(&self, path: &str) -> Option<Winners> {
        self.carried_over(path, self.probes.get(path)?)
    }

    /// The old `winners` of `path`, in the new table, if they carry over.
    fn carried_over(&self, path: &str, winners: &[usize]) -> Option<Winners> {
        let may_match = |m: &PathMatcher| m.matches(path) != MatchResult::No;
        // A change of one object has a few matchers: comparing the path with each is
        // cheaper than hashing its prefixes for the index.
        let reached = match self.changed_index {
            Some(index) => index.any_candidate(path, |i| may_match(self.changed[i])),
            None => self.changed.iter().any(|m| may_match(m)),
        };
        if reached {
            return None;
        }
        winners.iter().map(|&i| self.moves.new_index(i)).collect()
    }

    /// The serving routes of an unlisted scope that an outcome without coverage judges
    /// ([`judged_without_coverage`]), after a change that takes the representatives
    /// `change.gone` away and adds `change.added`, derived from `order` (the scope before,
    /// counted from `self.probes`): the paths a changed route may match and the gone ones
    /// give back their old winners, the others keep theirs, and the reached and added
    /// paths are chosen anew. Only the routes whose count moved and the changed object's
    /// are looked at; every other route serves, and is judged, as before. What
    /// [`ProbeReuse::unlisted_probes`] would serve, without visiting the other probes or
    /// routes. `None` when a count is off (never, for counts of the probes before): the
    /// caller rebuilds the probes.
    fn unlisted_judged(
        &self,
        change: &UnlistedChange,
        order: &ProbeOrder,
        dialect: &dyn Dialect,
        table: &HostRouteTable,
        target: &Target<'_>,
    ) -> Option<Vec<usize>> {
        let moves = self.moves;
        if order.paths.len() != self.probes.len()
            || order.wins.len() != moves.old_len()
            || table.routes.len() != moves.new_len()
        {
            return None;
        }
        let mut reached: Vec<usize> = Vec::new();
        let by_order = self
            .changed
            .iter()
            .try_for_each(|m| order.reached_by(m, &mut reached));
        if by_order.is_none() {
            reached.clear();
            reached.extend(order.paths.iter().enumerate().filter_map(|(i, path)| {
                self.changed
                    .iter()
                    .any(|m| m.matches(path) != MatchResult::No)
                    .then_some(i)
            }));
        }
        let mut recompute: Vec<&str> = Vec::with_capacity(reached.len() + change.added.len());
        // Wins given back, by route of the old table.
        let mut given_back: HashMap<usize, u32> = HashMap::new();
        let mut give_back = |path: &str| -> Option<()> {
            for &i in self.probes.get(path)? {
                let n = given_back.entry(i).or_default();
                *n += 1;
                if *n > *order.wins.get(i)? {
                    return None;
                }
            }
            Some(())
        };
        reached.sort_unstable();
        reached.dedup();
        for &i in &reached {
            let path = &*order.paths[i];
            give_back(path)?;
            if !change.gone.iter().any(|gone| gone == path) {
                recompute.push(path);
            }
        }
        for gone in &change.gone {
            let at = order
                .paths
                .binary_search_by(|path| (**path).cmp(gone.as_str()))
                .ok()?;
            if reached.binary_search(&at).is_err() {
                give_back(gone)?;
            }
        }
        recompute.extend(change.added.iter().map(|path| &**path));
        // Wins anew, by route of the new table.
        let mut won: HashMap<usize, u32> = HashMap::new();
        for path in recompute {
            for i in dialect.winners(table, path) {
                *won.entry(i).or_default() += 1;
            }
        }
        // Every path a removed route won, it may match: it was given back.
        for &i in moves.removed() {
            if *order.wins.get(i)? > given_back.get(&i).copied().unwrap_or(0) {
                return None;
            }
        }
        // The routes whose serving may have changed, in the new table.
        let mut touched: Vec<usize> = given_back
            .keys()
            .filter_map(|&i| moves.new_index(i))
            .chain(won.keys().copied())
            .chain(moves.added().iter().copied())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let mut judged: Vec<usize> = order
            .judged
            .iter()
            .filter_map(|&i| moves.new_index(i))
            .filter(|j| touched.binary_search(j).is_err())
            .collect();
        for &j in &touched {
            let route = table.routes.get(j)?;
            let kept_wins = match moves.old_index(j) {
                Some(i) => order.wins.get(i)? - given_back.get(&i).copied().unwrap_or(0),
                None => 0,
            };
            let wins = kept_wins + won.get(&j).copied().unwrap_or(0);
            if serves(route, target, wins > 0) && judged_without_coverage(route, target.scheme) {
                judged.push(j);
            }
        }
        judged.sort_unstable();
        Some(judged)
    }

    /// The probes of an unlisted scope after a change that takes the representatives
    /// `change.gone` away and adds `change.added`: the old probes with their winners
    /// carried over, recomputed only for the added paths and those a changed route may
    /// match. (The probes before hold exactly the counted representatives: both are made
    /// from one list, see [`serving_routes_probed`].)
    fn unlisted_probes(
        &self,
        change: UnlistedChange,
        dialect: &dyn Dialect,
        table: &HostRouteTable,
    ) -> Probes {
        let mut recompute = change.added;
        let mut probes = Probes::with_capacity_and_hasher(self.probes.len(), Default::default());
        for (path, winners) in self.probes {
            match self.carried_over(path, winners) {
                Some(winners) => {
                    probes.insert(path.clone(), winners);
                }
                None => recompute.push(path.clone()),
            }
        }
        for gone in &change.gone {
            probes.remove(gone.as_str());
            recompute.retain(|path| **path != **gone);
        }
        for path in recompute {
            let winners = dialect.winners(table, &path).into();
            probes.insert(path, winners);
        }
        probes
    }
}

/// [`serving_routes`]; with `probes` set, recording the winners of every representative
/// path (and for an unlisted scope, the counted representatives), and taking them over
/// from the reuse given where they carry over.
fn serving_routes_probed(
    dialect: &dyn Dialect,
    table: &HostRouteTable,
    literals: &TableLiterals<'_, '_>,
    target: &Target<'_>,
    probes: Option<Option<&ProbeReuse<'_>>>,
) -> ProbedServing {
    // The winners of representatives, by index (a winner of many, many times).
    let mut won: Vec<usize> = Vec::new();
    let mut serve = |winners: &[usize]| won.extend_from_slice(winners);
    let mut counted = None;
    let mut related = None;
    if let (Some(Some(reuse)), TargetPaths::Unlisted { base, listed }) = (probes, &target.paths) {
        let scope = UnlistedCandidates::new(base, listed, literals.fresh());
        // The probes before hold exactly the counted representatives (checked, not only
        // assumed: anything else is counted afresh below).
        let counted_before = reuse
            .unlisted
            .filter(|before| before.counts.len() == reuse.probes.len());
        let change = counted_before.and_then(|before| {
            before.after_change(
                &scope,
                literals.fresh(),
                reuse.changed_before,
                reuse.changed_after,
            )
        });
        if let Some(change) = change {
            // An outcome without coverage reads only the routes it judges (an unlisted
            // scope is no default alias, which would read whether any route serves).
            let lean = counted_before
                .and_then(|before| before.order.as_ref())
                .filter(|_| !reuse.keep_probes && !reuse.coverage && !target.default_alias)
                .and_then(|order| reuse.unlisted_judged(&change, order, dialect, table, target));
            if let Some(judged) = lean {
                return ProbedServing {
                    serving: judged,
                    ..ProbedServing::default()
                };
            }
            let probes = reuse.unlisted_probes(change, dialect, table);
            for winners in probes.values() {
                serve(winners);
            }
            let kept = ProbedServing {
                probes: Some(probes),
                ..Default::default()
            };
            return finish(table, target, won, kept);
        }
    }
    let instances: Option<Vec<Arc<str>>> = match (probes, &target.paths) {
        (None, _) => match target.representatives(literals.all()) {
            Some(instances) => {
                for path in &instances {
                    serve(&dialect.winners(table, path));
                }
                return finish(table, target, won, ProbedServing::default());
            }
            None => None,
        },
        (Some(_), TargetPaths::Unlisted { base, listed }) => {
            let scope = UnlistedCandidates::new(base, listed, literals.fresh());
            let counts = UnlistedCounts::of(&scope, literals.all());
            let instances = counts.counts.keys().cloned().collect();
            counted = Some(counts);
            Some(instances)
        }
        (Some(reuse), TargetPaths::Template(t)) => {
            // Before a change, the routes that give values; after it, those that did (in
            // their new places) and the changed object's that do: not every route.
            let routes =
                literals.related_routes(t, || match reuse.and_then(|r| Some((r, r.related?))) {
                    Some((reuse, before)) => related_after_change(before, reuse.moves, table, t),
                    None => related_by_scan(table, t),
                });
            let giving = RouteLiterals {
                literals: routes
                    .iter()
                    .filter_map(|&i| RouteLiteral::of(&table.routes[i].matcher))
                    .collect(),
                fresh: literals.fresh(),
            };
            related = Some(routes);
            representatives(t, &giving).map(|v| v.into_iter().map(Arc::from).collect())
        }
    };
    let probes = match (instances, probes) {
        (Some(instances), Some(reuse)) => {
            let mut probes = Probes::with_capacity_and_hasher(instances.len(), Default::default());
            for path in instances {
                let winners = reuse
                    .and_then(|r| r.winners(&path))
                    .unwrap_or_else(|| dialect.winners(table, &path).into());
                serve(&winners);
                probes.insert(path, winners);
            }
            Some(probes)
        }
        // Too many representatives: every route that may match some path may serve it.
        _ => {
            won.extend(
                (table.routes.iter().enumerate())
                    .filter(|(_, r)| target.may_be_matched_by(&r.matcher))
                    .map(|(i, _)| i),
            );
            None
        }
    };
    let counted_probes = counted.as_ref().and(probes.as_ref());
    let order = counted_probes.map(|probes| ProbeOrder::of(probes, table.routes.len()));
    let kept = ProbedServing {
        serving: Vec::new(),
        probes,
        unlisted: counted,
        related,
    };
    let mut served = finish(table, target, won, kept);
    if let (Some(counted), Some(mut order)) = (served.unlisted.as_mut(), order) {
        order.judged = served
            .serving
            .iter()
            .copied()
            .filter(|&i| judged_without_coverage(&table.routes[i], target.scheme))
            .collect();
        counted.order = Some(order);
    }
    served
}

/// Whether route `i` of `table` has a literal that can give `template`'s parameters
/// values ([`PathTemplate::literal_gives_values`]).
fn gives_values(table: &HostRouteTable, i: usize, template: &PathTemplate) -> bool {
    table.routes[i]
        .matcher
        .literal()
        .is_some_and(|(text, _)| template.literal_gives_values(text))
}

/// A templated target's routes that give values ([`TargetOutcome::related`]) in the
/// table after a change, from those before it: the routes that did, in their new places
/// (`moves`), and the changed object's new routes that do.
fn related_after_change(
    before: &[usize],
    moves: &RouteMoves,
    table: &HostRouteTable,
    template: &PathTemplate,
) -> Vec<usize> {
    let routes = moves.carry_over(before, |j| gives_values(table, j, template));
    // What a scan of the whole table gives (checked where it costs nothing in production:
    // the property tests chain changes in debug builds).
    debug_assert_eq!(
        routes,
        related_by_scan(table, template),
        "routes that give {template:?} values, derived across a change"
    );
    routes
}

/// A templated target's routes that give values, by a scan of every route of `table`.
fn related_by_scan(table: &HostRouteTable, template: &PathTemplate) -> Vec<usize> {
    (0..table.routes.len())
        .filter(|&i| gives_values(table, i, template))
        .collect()
}

/// What [`serving_routes_probed`] found: the serving routes, and what a host evaluation
/// keeps for deciding after a change.
#[derive(Default)]
struct ProbedServing {
    /// Indices of the routes that serve the target, ascending. An after-state without
    /// coverage may hold only those its outcome judges ([`ProbeReuse::unlisted_judged`]).
    serving: Vec<usize>,
    probes: Option<Probes>,
    unlisted: Option<UnlistedCounts>,
    related: Option<Arc<[usize]>>,
}

/// [`serving_routes_probed`]'s last step: the routes that `won` a representative, and the
/// regexes that representatives cannot enumerate and may serve any path they admit
/// ([`HostRouteTable::opaque_routes`]); routes that serve no backend serve nothing. Reads
/// those routes only, not every route of the table.
fn finish(
    table: &HostRouteTable,
    target: &Target<'_>,
    mut won: Vec<usize>,
    kept: ProbedServing,
) -> ProbedServing {
    won.retain(|&i| serves(&table.routes[i], target, true));
    let opaque = table.opaque_routes().iter().copied();
    won.extend(opaque.filter(|&i| serves(&table.routes[i], target, false)));
    won.sort_unstable();
    won.dedup();
    ProbedServing {
        serving: won,
        ..kept
    }
}

/// Whether `route` serves `target`: it wins one of its representative paths (`won`), or
/// it is a regex that representatives cannot enumerate and may match one of its paths;
/// and it serves a backend (a route that serves none serves nothing).
fn serves(route: &Route, target: &Target<'_>, won: bool) -> bool {
    (won || route.matcher.is_opaque() && target.may_be_matched_by(&route.matcher))
        && route.serves_backend
}

/// Whether `route` complies with `scheme`: MTLS needs a verified certificate required;
/// TLS must let clients without one through.
fn complies(route: &Route, scheme: Scheme) -> bool {
    let kind = route.auth.kind;
    match scheme {
        Scheme::Mtls => kind.requires_verified_certificate(),
        Scheme::Tls => !kind.refuses_clients_without_certificate() && kind != AuthKind::Rejected,
    }
}

/// Whether an outcome without coverage judges `route` when it serves a target of
/// `scheme`: a compliant route over TLS adds nothing to it ([`target_outcome`]).
fn judged_without_coverage(route: &Route, scheme: Scheme) -> bool {
    !(complies(route, scheme) && route.tls)
}

/// The outcome for one target on one host.
#[derive(Debug, Clone, Default)]
struct TargetOutcome {
    violations: Vec<Violation>,
    coverage: Option<EndpointCoverage>,
    /// Objects whose routes serve the target over plain HTTP.
    untls: Vec<RouteSource>,
    /// The winners of the target's representative paths in the evaluation's table.
    probes: Option<Arc<Probes>>,
    /// An unlisted scope's representatives, counted, when generated from the
    /// evaluation's table (not kept across a change: see [`UnlistedCounts::after_change`]).
    unlisted: Option<Arc<UnlistedCounts>>,
    /// A templated target's routes whose literals may give its representatives values
    /// (those that start with its fixed segments), when generated from the evaluation's
    /// table: after a change, these and the changed object's, not every route.
    related: Option<Arc<[usize]>>,
}

/// The evaluation of one profile host: its route table, host-level findings and one
/// outcome per target (in [`host_targets`] order). Admission keeps it per host generation
/// as the "before" state and re-evaluates after a change only the targets the change can
/// reach ([`evaluate_host_after_change`]).
#[derive(Debug, Clone)]
pub struct HostEvaluation {
    table: Option<Arc<HostRouteTable>>,
    /// `ObjectsUnreadable` findings: kinds the dialect reads that the source cannot read.
    unreadable: Vec<Violation>,
    summary: HostSummary,
    /// Shared between a before-state and the after-states derived from it, where the
    /// change does not reach a target.
    targets: Vec<Arc<TargetOutcome>>,
    coverage: bool,
    /// [`HostEvaluation::violations`], computed once (a cached before-state is judged
    /// against by every review of its host generation).
    violations: OnceLock<Vec<Violation>>,
}

impl HostEvaluation {
    /// The host's route table (`None`: nothing serves the host).
    pub fn table(&self) -> Option<&HostRouteTable> {
        self.table.as_deref()
    }

    fn add_to(&self, verdict: &mut Verdict) {
        verdict.hosts.push(self.summary.clone());
        verdict.violations.extend(self.unreadable.iter().cloned());
        if let Some(table) = &self.table {
            verdict.violations.extend(table.findings.iter().cloned());
        }
        let mut untls: BTreeSet<&RouteSource> = BTreeSet::new();
        for outcome in &self.targets {
            verdict
                .violations
                .extend(outcome.violations.iter().cloned());
            verdict.coverage.extend(outcome.coverage.iter().cloned());
            untls.extend(outcome.untls.iter());
        }
        for source in untls {
            let why = if source.is_ingress() {
                format!(
                    "no spec.tls entry of the host's Ingresses lists {host}{extra}. Client certificates exist only in TLS, and open-banking endpoints must not be served in clear text. Add a spec.tls entry for {host} with the server certificate Secret.",
                    host = self.summary.host,
                    extra = self.tls_hint(),
                )
            } else {
                format!(
                    "its routes are reached over plain HTTP{extra}. Client certificates exist only in TLS, and open-banking endpoints must not be served in clear text. Serve {host} only from TLS listeners or entry points.",
                    host = self.summary.host,
                    extra = self.tls_hint(),
                )
            };
            verdict.violations.push(Violation {
                code: ViolationCode::TlsMissing,
                message: format!(
                    "Host {host} serves endpoints of profile {profile} through {source} without TLS: {why}",
                    host = self.summary.host,
                    profile = self.summary.profile,
                ),
                profile: self.summary.profile.clone(),
                host: self.summary.host.clone(),
                ingress: Some(source.key.clone()),
                path: None,
                endpoint: None,
                url: None,
            });
        }
    }

    fn tls_hint(&self) -> &'static str {
        self.table.as_ref().map_or("", |t| t.plain_http_hint)
    }

    /// The verdict of this host alone.
    pub fn verdict(&self) -> Verdict {
        let mut verdict = Verdict::default();
        self.add_to(&mut verdict);
        verdict.violations.sort();
        verdict.violations.dedup();
        verdict.compliant = verdict.violations.is_empty();
        verdict
    }

    /// The violations of this host, sorted and deduplicated.
    pub fn violations(&self) -> &[Violation] {
        self.violations.get_or_init(|| self.verdict().violations)
    }
}

/// Evaluates one host of `profile` in full.
pub fn evaluate_host(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
    coverage: bool,
) -> HostEvaluation {
    evaluate_host_with(profile, dialect, objects, host, coverage, false)
}

/// [`evaluate_host`] for a before-state that [`evaluate_host_after_change`] will start
/// from: it also keeps the winners of every representative path, for the after-state to
/// take over.
pub fn evaluate_host_before_change(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
    coverage: bool,
) -> HostEvaluation {
    evaluate_host_with(profile, dialect, objects, host, coverage, true)
}

fn evaluate_host_with(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
    coverage: bool,
    keep_probes: bool,
) -> HostEvaluation {
    let table = host_table_kept(profile, dialect, objects, host, keep_probes).map(Arc::new);
    let targets = host_targets(profile, host);
    let outcomes = match &table {
        Some(table) => {
            let literals = RouteLiterals::new(table.routes.iter().map(|r| &r.matcher));
            targets
                .iter()
                .map(|t| {
                    let probes = keep_probes.then_some(None);
                    Arc::new(target_outcome(
                        profile,
                        dialect,
                        host,
                        table,
                        &TableLiterals::given(&literals),
                        t,
                        coverage,
                        probes,
                    ))
                })
                .collect()
        }
        None => targets
            .iter()
            .map(|t| Arc::new(unserved(profile, host, t, coverage)))
            .collect(),
    };
    HostEvaluation {
        summary: host_summary(profile, host, table.as_deref()),
        unreadable: unreadable_kinds(profile, dialect, objects, host),
        table,
        targets: outcomes,
        coverage,
        violations: OnceLock::new(),
    }
}

/// One Ingress's change, as an admission review sees it: its key, and its versions before
/// and after (`None`: absent, a CREATE or a DELETE).
#[derive(Debug, Clone, Copy)]
pub struct IngressChange<'a> {
    pub key: &'a ObjectKey,
    pub old: Option<&'a IngressView>,
    pub new: Option<&'a IngressView>,
}

/// The host's table after `change`, derived from `old` (the table before it) by the
/// dialect ([`Dialect::patched_table`]) when both versions of the Ingress have a rule for
/// exactly `host` and are served by the profile's controller by their class (so the
/// Ingresses serving the host differ only by it, and the class notes stay as they were).
fn patched_table(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
    old: &HostRouteTable,
    change: &IngressChange<'_>,
) -> Option<TablePatch> {
    if old.host_key != host {
        return None;
    }
    for version in [change.old, change.new].into_iter().flatten() {
        if version.key != *change.key
            || !version.rules.iter().any(|r| r.host == host)
            || !matches!(
                ingress_class_decision(profile, objects, version),
                ClassDecision::Served
            )
        {
            return None;
        }
    }
    dialect.patched_table(profile, host, old, change.old, change.new)
}

/// Evaluates `host` after `change` of one Ingress, reusing `before` (the same
/// host before the change) for every target the change cannot reach, and within a target
/// the winners of every representative path no route of `changed` can match; an unlisted
/// scope's representatives are those of `before` with the changed routes' literals' own
/// candidates taken out and put in (`UnlistedCounts::after_change`). Equal to
/// [`evaluate_host`] on `objects` (a property test holds it to that): when the change
/// alters anything about the host's other routes (host-wide client auth, TLS, regex mode,
/// which duplicate path wins, the implicit default location), everything is re-evaluated.
///
/// With `keep_probes`, the after-state keeps the winners of every representative path, so
/// that it can be the before-state of a further change. A review judges one change and
/// passes `false`: an unlisted scope's serving routes are then derived by counts from the
/// before-state, without rebuilding its probes.
pub fn evaluate_host_after_change(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
    before: &HostEvaluation,
    change: &IngressChange<'_>,
    keep_probes: bool,
) -> HostEvaluation {
    let patch = before
        .table
        .as_ref()
        .and_then(|old| patched_table(profile, dialect, objects, host, old, change));
    let changed = RouteSource {
        kind: crate::dialect::INGRESS_KIND,
        key: change.key.clone(),
    };
    after_change(
        profile,
        dialect,
        objects,
        host,
        before,
        &changed,
        patch,
        keep_probes,
    )
}

/// [`evaluate_host_after_change`] for a change of the object `key` of a dialect-owned
/// `kind` (an HTTPRoute, a Gateway, a Traefik IngressRoute or TLSOption) from `old` to
/// `new` (`None`: absent): the host's table after it is derived by the dialect
/// ([`Dialect::patched_object_table`]) or built in full, and the targets and probes that
/// no route of the object can reach are taken over from `before`. A change of an object
/// that is not a route source (a Gateway, a policy) and alters routes reaches every
/// target: the host is evaluated in full. Equal to [`evaluate_host`] on `objects`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_host_after_object_change(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
    before: &HostEvaluation,
    kind: &crate::dialect::ObjectKind,
    key: &ObjectKey,
    versions: (Option<&SharedObject>, Option<&SharedObject>),
    keep_probes: bool,
) -> HostEvaluation {
    let (old, new) = versions;
    // The host is served after the change as before (so the full build would give a table
    // too) when the new version routes for it, or when something else does.
    let rule_keys = crate::cluster::rule_keys(host);
    let still_served = || {
        new.is_some_and(|n| n.route_hosts().iter().any(|h| rule_keys.contains(h)))
            || host_table_served(profile, dialect, objects, host)
    };
    let patch = before
        .table
        .as_ref()
        .filter(|old_table| old_table.host_key == host)
        .and_then(|old_table| dialect.patched_object_table(host, old_table, kind, old, new))
        .filter(|_| still_served());
    let changed = RouteSource {
        kind: kind.kind,
        key: key.clone(),
    };
    after_change(
        profile,
        dialect,
        objects,
        host,
        before,
        &changed,
        patch,
        keep_probes,
    )
}

/// The after-state of `host` from `before`, when the routes of `changed` are the only
/// ones that may differ: `patch` is the dialect's derived table, if it gave one; else the
/// table is built in full and compared with the old one.
#[allow(clippy::too_many_arguments)]
fn after_change(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
    before: &HostEvaluation,
    changed: &RouteSource,
    patch: Option<TablePatch>,
    keep_probes: bool,
) -> HostEvaluation {
    let coverage = before.coverage;
    let (patched, new) = match patch {
        Some(TablePatch { table, moves }) => (Some(moves), Some(Arc::new(table))),
        None => (
            None,
            host_table(profile, dialect, objects, host).map(Arc::new),
        ),
    };
    let (Some(old), Some(new)) = (before.table.as_ref(), new) else {
        return evaluate_host(profile, dialect, objects, host, coverage);
    };
    if let Some(moves) = &patched {
        new.take_opaque_routes_over(old, moves);
    }
    let targets = host_targets(profile, host);
    if targets.len() != before.targets.len() {
        return evaluate_host(profile, dialect, objects, host, coverage);
    }
    // A change that leaves the table as it was (labels, backends, annotations that
    // decide nothing here: the common UPDATE) leaves every target's outcome as it was. A
    // patched table is the old one but for the run it replaced.
    let unchanged = match &patched {
        Some(moves) => {
            moves.removed() == moves.added()
                && moves.removed().iter().all(|&i| same_route(old, i, &new, i))
        }
        None => same_table(old, &new),
    };
    if unchanged {
        return HostEvaluation {
            summary: host_summary(profile, host, Some(&new)),
            unreadable: unreadable_kinds(profile, dialect, objects, host),
            table: Some(new),
            targets: before.targets.clone(),
            coverage,
            violations: OnceLock::new(),
        };
    }
    let moves = match patched {
        // Every route the patch kept is the old table's, in the same order.
        Some(moves) => moves,
        None => match same_other_routes(old, &new, changed) {
            Some(moves) => moves,
            None => return evaluate_host(profile, dialect, objects, host, coverage),
        },
    };
    let changed_before: Vec<&PathMatcher> = moves
        .removed()
        .iter()
        .map(|&i| &old.routes[i].matcher)
        .collect();
    let changed_after: Vec<&PathMatcher> = moves
        .added()
        .iter()
        .map(|&j| &new.routes[j].matcher)
        .collect();
    let changed_matchers: Vec<&PathMatcher> = changed_before
        .iter()
        .chain(&changed_after)
        .copied()
        .collect();
    // Few changed matchers are compared with each path directly (`ProbeReuse::carried_over`).
    let changed_index = (changed_matchers.len() > DIRECT_CHANGED_CHECKS)
        .then(|| LiteralIndex::new(changed_matchers.iter().copied()));
    // Probes of untouched targets stay valid where every other route keeps its index.
    let same_indices = moves.keeps_indices();
    let (removed, added) = (moves.removed(), moves.added());
    let before_fresh = before
        .targets
        .iter()
        .find_map(|t| t.unlisted.as_ref().map(|u| u.fresh));
    let literals = TableLiterals::after_change(&new, before_fresh, &changed_after);
    let outcomes = targets
        .iter()
        .zip(&before.targets)
        .map(|(target, previous)| {
            if changed_matchers.iter().any(|m| target.may_be_matched_by(m)) {
                let reuse = previous.probes.as_deref().map(|probes| ProbeReuse {
                    probes,
                    moves: &moves,
                    changed: &changed_matchers,
                    changed_index: changed_index.as_ref(),
                    changed_before: &changed_before,
                    changed_after: &changed_after,
                    unlisted: previous.unlisted.as_deref(),
                    related: previous.related.as_deref(),
                    keep_probes,
                    coverage,
                });
                Arc::new(target_outcome(
                    profile,
                    dialect,
                    host,
                    &new,
                    &literals,
                    target,
                    coverage,
                    Some(reuse.as_ref()),
                ))
            } else {
                // An added route may give a template values without matching it. An
                // after-state that keeps no probes is no before-state: it needs none.
                let related = match (&target.paths, previous.related.as_ref()) {
                    (TargetPaths::Template(t), Some(before)) => {
                        // Where the old indices hold, the changed routes kept their places:
                        // the set stays if none of them gave values before or gives some now.
                        let unchanged = || {
                            !removed.iter().any(|i| before.binary_search(i).is_ok())
                                && !added.iter().any(|&j| gives_values(&new, j, t))
                        };
                        if same_indices && unchanged() {
                            Some(Arc::clone(before))
                        } else if keep_probes {
                            Some(literals.related_routes(t, || {
                                related_after_change(before, &moves, &new, t)
                            }))
                        } else {
                            None
                        }
                    }
                    _ => None,
                };
                let same_related = match (&related, &previous.related) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (a, b) => a.is_none() && b.is_none(),
                };
                if same_indices && previous.unlisted.is_none() && same_related {
                    // Nothing of it refers to what moved: shared, not copied.
                    Arc::clone(previous)
                } else {
                    Arc::new(TargetOutcome {
                        probes: previous.probes.clone().filter(|_| same_indices),
                        // The counts are of the table before (its literals, its fresh
                        // character): a target the change cannot reach keeps its serving
                        // routes, not necessarily its candidates.
                        unlisted: None,
                        related,
                        ..(**previous).clone()
                    })
                }
            }
        })
        .collect();
    HostEvaluation {
        summary: host_summary(profile, host, Some(&new)),
        unreadable: unreadable_kinds(profile, dialect, objects, host),
        table: Some(new),
        targets: outcomes,
        coverage,
        violations: OnceLock::new(),
    }
}

/// Whether the routes of every object but `changed` are the same, in the same order, with
/// the same matchers, client auth, TLS and conditions, in both tables, and the host-wide
/// matching mode (regex or not) is the same: then, how the routes moved (the routes of
/// `changed` removed and added).
fn same_other_routes(
    old: &HostRouteTable,
    new: &HostRouteTable,
    changed: &RouteSource,
) -> Option<RouteMoves> {
    if old.host_key != new.host_key || old.client_auth != new.client_auth {
        return None;
    }
    let regex_mode = |t: &HostRouteTable| {
        t.routes.iter().any(|r| {
            matches!(
                r.matcher,
                PathMatcher::PrefixIgnoreCase(_) | PathMatcher::Regex(_)
            )
        })
    };
    if regex_mode(old) != regex_mode(new) {
        return None;
    }
    // The changed object's routes, and the others.
    let split = |t: &HostRouteTable| -> (Vec<usize>, Vec<usize>) {
        (0..t.routes.len()).partition(|&i| &t.routes[i].source == changed)
    };
    let ((removed, a), (added, b)) = (split(old), split(new));
    if a.len() != b.len() || !a.iter().zip(&b).all(|(&i, &j)| same_route(old, i, new, j)) {
        return None;
    }
    Some(RouteMoves::new(old.routes.len(), removed, added))
}

/// Whether route `i` of `old` and route `j` of `new` are the same in everything an
/// evaluation reads of a route: source, path, type, matcher (and whether it can be
/// analysed), backend, TLS, client auth, priority and whether it is conditional.
fn same_route(old: &HostRouteTable, i: usize, new: &HostRouteTable, j: usize) -> bool {
    let (x, y) = (&old.routes[i], &new.routes[j]);
    x.source == y.source
        && x.path == y.path
        && x.path_type == y.path_type
        && x.serves_backend == y.serves_backend
        && x.tls == y.tls
        && x.priority == y.priority
        && x.auth == y.auth
        && old.conditional.contains(&i) == new.conditional.contains(&j)
        && x.matcher.same_as(&y.matcher)
        && x.matcher.unanalysable() == y.matcher.unanalysable()
}

/// Whether two tables are the same in everything an evaluation reads of a table (every
/// field of [`HostRouteTable`], every route by [`same_route`]): a host evaluation is a
/// function of its profile, host and table (the unreadable kinds aside), so the
/// evaluation of `old` is then the evaluation of `new`.
pub fn same_table(old: &HostRouteTable, new: &HostRouteTable) -> bool {
    old.host_key == new.host_key
        && old.client_auth == new.client_auth
        && old.plain_http_hint == new.plain_http_hint
        && old.findings == new.findings
        && old.class_notes == new.class_notes
        && old.conditional == new.conditional
        && old.routes.len() == new.routes.len()
        && (0..old.routes.len()).all(|i| same_route(old, i, new, i))
}

/// One `ObjectsUnreadable` finding per kind the dialect reads that `objects` should hold
/// but cannot read: such objects may route `host` in any way, so the host cannot be proven
/// compliant (fail closed). Empty for sources given only some objects on purpose (CLI).
fn unreadable_kinds(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    objects: &dyn ObjectSource,
    host: &str,
) -> Vec<Violation> {
    dialect
        .kinds()
        .iter()
        .filter(|kind| dialect.reads_kind(profile, kind))
        .filter_map(|kind| {
            let reasons = objects.unreadable(kind);
            (!reasons.is_empty()).then(|| Violation {
                code: ViolationCode::ObjectsUnreadable,
                message: format!(
                    "Host {host} of profile {profile} is served by {controller}, which reads {kind} objects, but mtls-gate cannot read them: {reasons}. Such objects may serve the host's endpoints without a client certificate, so the host cannot be proven compliant, and changes on it are refused until they can be read.",
                    profile = profile.name,
                    controller = profile.controller().as_str(),
                    kind = if kind.group.is_empty() {
                        kind.plural.to_string()
                    } else {
                        format!("{}.{}", kind.plural, kind.group)
                    },
                    reasons = reasons.join("; "),
                ),
                profile: profile.name.clone(),
                host: host.to_string(),
                ingress: None,
                path: None,
                endpoint: None,
                url: None,
            })
        })
        .collect()
}

fn host_summary(
    profile: &CompiledProfile,
    host: &str,
    table: Option<&HostRouteTable>,
) -> HostSummary {
    HostSummary {
        profile: profile.name.clone(),
        host: host.to_string(),
        rule_host: table.map(|t| t.host_key.clone()),
        client_auth: table.map_or_else(
            || "nothing routes this host".to_string(),
            |t| t.client_auth.clone(),
        ),
    }
}

fn unserved(
    profile: &CompiledProfile,
    host: &str,
    target: &Target<'_>,
    coverage: bool,
) -> TargetOutcome {
    let listed = target.endpoint.is_some() && !target.default_alias;
    TargetOutcome {
        coverage: (coverage && listed).then(|| coverage_entry(profile, host, target, Vec::new())),
        ..TargetOutcome::default()
    }
}

/// The coverage entry of a target served by `routes` (none: not served).
fn coverage_entry(
    profile: &CompiledProfile,
    host: &str,
    target: &Target<'_>,
    routes: Vec<ServingRoute>,
) -> EndpointCoverage {
    EndpointCoverage {
        profile: profile.name.clone(),
        endpoint: target.label.to_string(),
        category: target.category.to_string(),
        scheme: target.scheme.as_str().to_string(),
        url: target.url.to_string(),
        host: host.to_string(),
        served: !routes.is_empty(),
        compliant: routes.iter().all(|r| r.compliant),
        routes,
    }
}

#[allow(clippy::too_many_arguments)]
fn target_outcome(
    profile: &CompiledProfile,
    dialect: &dyn Dialect,
    host: &str,
    table: &HostRouteTable,
    literals: &TableLiterals<'_, '_>,
    target: &Target<'_>,
    coverage: bool,
    probes: Option<Option<&ProbeReuse<'_>>>,
) -> TargetOutcome {
    let ProbedServing {
        serving,
        probes,
        unlisted,
        related,
    } = serving_routes_probed(dialect, table, literals, target, probes);
    let mut outcome = TargetOutcome {
        probes: probes.map(Arc::new),
        unlisted: unlisted.map(Arc::new),
        related,
        ..TargetOutcome::default()
    };
    if target.default_alias && serving.is_empty() {
        return outcome;
    }
    let mut routes = Vec::new();
    let mut seen = BTreeSet::new();
    for &i in &serving {
        let route = &table.routes[i];
        let kind = route.auth.kind;
        let compliant = complies(route, target.scheme);
        // Without coverage, a compliant route over TLS adds nothing (nor does any copy of
        // it, which is as compliant and as TLS).
        if !coverage && !judged_without_coverage(route, target.scheme) {
            continue;
        }
        // A Prefix path is two nginx locations; report it once. Copies of one path that
        // differ in TLS or client auth (an HTTPRoute attached to two listeners) are each
        // judged.
        if !seen.insert((
            &route.source,
            route.path.as_str(),
            route.path_type,
            route.tls,
            route.auth.kind,
        )) {
            continue;
        }
        if !route.tls && !outcome.untls.contains(&route.source) {
            outcome.untls.push(route.source.clone());
        }
        if !compliant {
            outcome
                .violations
                .push(route_violation(profile, host, table, route, target));
        }
        if !coverage {
            continue;
        }
        routes.push(ServingRoute {
            ingress: route.source.key.to_string(),
            kind: (!route.source.is_ingress()).then(|| route.source.kind.to_string()),
            path: route.path.clone(),
            path_type: route.path_type.as_str().to_string(),
            client_auth: kind.as_str().to_string(),
            detail: route.auth.detail.to_string(),
            compliant,
        });
    }
    if coverage {
        outcome.coverage = Some(coverage_entry(profile, host, target, routes));
    }
    outcome
}

fn route_violation(
    profile: &CompiledProfile,
    host: &str,
    table: &HostRouteTable,
    route: &Route,
    target: &Target<'_>,
) -> Violation {
    let what = match target.endpoint {
        Some(e) => format!("{} endpoint {e} ({})", target.scheme, target.url),
        None => format!(
            "unlisted API paths under {} (scheme {} by spec.unlistedApiPaths)",
            target.url, target.scheme
        ),
    };
    let class_note = match table.class_notes.get(&route.source.key) {
        Some(note) if route.source.is_ingress() => format!(" ({note})"),
        _ => String::new(),
    };
    let route_text = format!(
        "{} path {} ({}) on host {host}{class_note}",
        route.source,
        route.path,
        route.path_type.as_str()
    );
    let auth = format!(
        "client auth there is {} ({})",
        route.auth.kind.as_str(),
        route.auth.detail
    );
    let (code, message) = match target.scheme {
        Scheme::Mtls => {
            let fix = match (profile.gate_url(), route.auth.kind) {
                (_, AuthKind::RequiredUnverified | AuthKind::OptionalUnverified) => {
                    "verify the chain against the profile's CA (ingress-nginx auth-tls-verify-client \"on\"; Traefik RequireAndVerifyClientCert)".to_string()
                }
                (Some(_), _) => format!(
                    "serve the path from a host that requires verified client certificates, or label {} with {}={} so mtls-gate renders optional verification plus the gate for it",
                    route.source,
                    crate::model::PROFILE_LABEL,
                    profile.name
                ),
                (None, _) => format!(
                    "serve the path from a host whose Ingresses require verified client certificates (split host: MTLS endpoints on their own host), e.g. by labelling the MTLS host's Ingresses with {}={} so mtls-gate renders the settings; a host that also serves TLS endpoints needs spec.gate",
                    crate::model::PROFILE_LABEL,
                    profile.name
                ),
            };
            (
                ViolationCode::MtlsNotRequired,
                format!(
                    "{what} is served by {route_text}, where {auth}. Clients without a verified certificate can reach it, but the security profile requires MTLS. Fix: {fix}."
                ),
            )
        }
        Scheme::Tls => (
            ViolationCode::MtlsRequiredOnTlsEndpoint,
            format!(
                "{what} is served by {route_text}, where {auth}. Clients without a certificate (browsers at /authorize, relying parties fetching discovery and JWKS) are refused, but TLS endpoints MUST NOT require MTLS. Fix: serve it from a host whose Ingresses do not require client certificates, and do not put the gate on its route."
            ),
        ),
    };
    Violation {
        code,
        message,
        profile: profile.name.clone(),
        host: host.to_string(),
        ingress: Some(route.source.key.clone()),
        path: Some(route.path.clone()),
        endpoint: target.endpoint,
        url: Some(target.url.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::FIRST_FRESH_CHAR;

    fn table(paths: &[&str]) -> HostRouteTable {
        HostRouteTable {
            routes: paths
                .iter()
                .map(|p| {
                    crate::dialect::required_route("Ingress", PathMatcher::Prefix(p.to_string()), 0)
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The fresh character a table after a change is given without scanning its literals is
    /// the one the scan finds: (literals before, literals after, the added one).
    #[test]
    fn fresh_character_after_a_change_is_the_scanned_one() {
        let api = "/open-banking-nz/v3.0";
        let private = format!("{api}/accounts{FIRST_FRESH_CHAR}");
        let cases: [(&[&str], &[&str], Option<&str>); 4] = [
            // ASCII before and after: the first character stays, given.
            (&[api, "/"], &[api, "/", "/token"], Some("/token")),
            // The added literal holds it: the next one, scanned.
            (&[api, "/"], &[api, "/", &private], Some(&private)),
            // The literal that held it is removed: the first one again, scanned.
            (&[api, &private], &[api], None),
            // A removal from an ASCII table.
            (&[api, "/"], &["/"], None),
        ];
        for (before, after, added) in cases {
            let before = table(before);
            let after = table(after);
            let before_fresh = RouteLiterals::fresh_of(before.routes.iter().map(|r| &r.matcher));
            let added_matcher = added.map(|p| PathMatcher::Prefix(p.to_string()));
            let added: Vec<&PathMatcher> = added_matcher.iter().collect();
            let literals = TableLiterals::after_change(&after, Some(before_fresh), &added);
            assert_eq!(
                literals.fresh(),
                RouteLiterals::fresh_of(after.routes.iter().map(|r| &r.matcher)),
                "{before:?} -> {after:?}"
            );
        }
    }
}
