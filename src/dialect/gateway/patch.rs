//! A host's table after one HTTPRoute changed, derived from the table before it
//! ([`Dialect::patched_object_table`](crate::dialect::Dialect::patched_object_table)):
//! the route's old matches leave, its new matches are placed by the same precedence as
//! [`GatewayApi::host_table`](super::GatewayApi) sorts them, and everything else (listener
//! groups, their client auth, findings) is the old table's. The route's old matches are
//! found by its key, the new ones' places by bisection of the host order, and the new
//! table shares the old one's routes ([`RouteList`](crate::dialect::RouteList)): no pass
//! that reads every route, where a rebuild reads, sorts and allocates each.
//!
//! A patch is given only where a route's attachment cannot change anything but its own
//! routes; otherwise the table is built in full: findings that depend on which routes
//! attach (SecurityPolicies, `allowedRoutes` by selector), regular-expression matches in
//! either version (the engine spends the host's regex analysis budget in table order, so
//! one regex more or less can change which later ones fit), and tables whose state was not
//! kept.

use std::cmp::Ordering;
use std::sync::{Arc, OnceLock};

use super::{
    Attachment, Candidate, GatewayView, HTTP_ROUTE_KIND, HttpPathType, HttpRouteView,
    PrecedenceKey, PrecedencePrefix, attachment, candidate_routes,
};
use crate::dialect::{AuthKind, HostRouteTable, Route, RouteSource, SharedObject, TablePatch};
use crate::paths::{LiteralIndex, PathMatcher, RemappedIndex};

/// One listener that serves the host (a group of the table's routes).
#[derive(Debug)]
pub(super) struct ListenerGroup {
    pub gateway: SharedObject,
    /// Index into the Gateway's listeners.
    pub listener: usize,
    pub group: usize,
    pub tls: bool,
    /// Index into [`PatchState::auths`] and [`PatchState::labels`].
    pub auth_index: usize,
}

/// Where a table route stands in the host's order, but for its route's rank among the
/// host's HTTPRoutes: the route's key stands for the rank when routes are placed by a
/// patch (ranks move when routes come and go; keys do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RouteOrder {
    group: usize,
    precedence: PrecedencePrefix,
    rule: usize,
    matched: usize,
    /// Which matcher of the match (a `PathPrefix` has two).
    sub: usize,
}

impl RouteOrder {
    pub(super) fn new(group: usize, key: &PrecedenceKey, c: &Candidate<'_>, sub: usize) -> Self {
        Self {
            group,
            precedence: key.0,
            rule: c.rule,
            matched: c.matched,
            sub,
        }
    }

    /// The host's order of two routes of different HTTPRoutes.
    fn cmp_routes(
        a: (&RouteOrder, &crate::model::ObjectKey),
        b: (&RouteOrder, &crate::model::ObjectKey),
    ) -> Ordering {
        (
            a.0.group,
            a.0.precedence,
            a.1,
            a.0.rule,
            a.0.matched,
            a.0.sub,
        )
            .cmp(&(
                b.0.group,
                b.0.precedence,
                b.1,
                b.0.rule,
                b.0.matched,
                b.0.sub,
            ))
    }
}

/// What [`GatewayApi::host_table`](super::GatewayApi) kept for patches.
#[derive(Debug)]
pub(super) struct PatchState {
    groups: Arc<Vec<ListenerGroup>>,
    auths: Arc<Vec<(AuthKind, Arc<str>)>>,
    labels: Arc<Vec<String>>,
    orders: KeptOrders,
}

/// The host order of each table route (one per route, in table order).
#[derive(Debug)]
enum KeptOrders {
    /// A built table's.
    Built(Arc<[RouteOrder]>),
    /// A patched table's: its base's with the patch's moves, derived when first needed (a
    /// review's after-state is not patched again, so it does not copy every route's order).
    Patched {
        base: Arc<[RouteOrder]>,
        /// Indices into `base`, ascending.
        removed: Vec<usize>,
        /// (index in the patched table, order), ascending.
        added: Vec<(usize, RouteOrder)>,
        derived: OnceLock<Arc<[RouteOrder]>>,
    },
}

impl KeptOrders {
    fn get(&self) -> &Arc<[RouteOrder]> {
        match self {
            Self::Built(orders) => orders,
            Self::Patched {
                base,
                removed,
                added,
                derived,
            } => derived.get_or_init(|| {
                let len = base.len() - removed.len() + added.len();
                let mut kept = base
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| removed.binary_search(i).is_err())
                    .map(|(_, order)| *order);
                let mut added = added.iter().peekable();
                (0..len)
                    .filter_map(|j| match added.next_if(|(at, _)| *at == j) {
                        Some((_, order)) => Some(*order),
                        None => kept.next(),
                    })
                    .collect()
            }),
        }
    }
}

impl PatchState {
    pub(super) fn new(
        groups: Vec<ListenerGroup>,
        auths: Vec<(AuthKind, Arc<str>)>,
        labels: Vec<String>,
        orders: Vec<RouteOrder>,
    ) -> Self {
        Self {
            groups: Arc::new(groups),
            auths: Arc::new(auths),
            labels: Arc::new(labels),
            orders: KeptOrders::Built(Arc::from(orders)),
        }
    }
}

fn has_regex(route: &HttpRouteView) -> bool {
    route
        .rules
        .iter()
        .flat_map(|r| &r.matches)
        .any(|m| m.path_type == HttpPathType::RegularExpression)
}

/// The HTTPRoute of a version (`Some(None)`: absent; `None`: not an HTTPRoute).
fn http_route(object: Option<&SharedObject>) -> Option<Option<&HttpRouteView>> {
    match object {
        None => Some(None),
        Some(o) => o.as_any().downcast_ref::<HttpRouteView>().map(Some),
    }
}

/// The table of `host` after the HTTPRoute `old` became `new` (`None`: absent).
pub(super) fn patch(
    host: &str,
    before: &HostRouteTable,
    old: Option<&SharedObject>,
    new: Option<&SharedObject>,
) -> Option<TablePatch> {
    let state = before.kept_patch_state::<PatchState>()?;
    let base_orders = Arc::clone(state.orders.get());
    if base_orders.len() != before.routes.len() || !before.conditional.is_empty() {
        return None;
    }
    let (old, new) = (http_route(old)?, http_route(new)?);
    if new.is_some_and(has_regex) {
        return None;
    }
    let source = RouteSource {
        kind: HTTP_ROUTE_KIND,
        key: old.or(new)?.key.clone(),
    };

    // The new version's routes, in the host's order.
    let mut added: Vec<(RouteOrder, Arc<Route>)> = Vec::new();
    if let Some(route) = new {
        let mut candidates: Vec<(&ListenerGroup, Candidate<'_>)> = Vec::new();
        for g in state.groups.iter() {
            let gw = g.gateway.as_any().downcast_ref::<GatewayView>()?;
            let l = gw.listeners.get(g.listener)?;
            let spec = match attachment(gw, l, route, host) {
                Attachment::None => continue,
                Attachment::Attached(spec) => spec,
                Attachment::Undecided(_) => return None,
            };
            for (ri, rule) in route.rules.iter().enumerate() {
                for (mi, m) in rule.matches.iter().enumerate() {
                    candidates.push((
                        g,
                        Candidate {
                            route,
                            // Unused: a patch orders by the route's key (`RouteOrder`).
                            route_rank: 0,
                            rule: ri,
                            matched: mi,
                            m,
                            specificity: spec,
                            redirects: rule.redirects,
                        },
                    ));
                }
            }
        }
        let several = candidates.windows(2).any(|w| w[0].0.group != w[1].0.group);
        for (g, c) in &candidates {
            let key = c.precedence_key();
            let label = several.then(|| state.labels[g.auth_index].as_str());
            let auth = state.auths.get(g.auth_index)?;
            for (sub, r) in candidate_routes(c, g.group, g.tls, auth, label).enumerate() {
                added.push((RouteOrder::new(g.group, &key, c, sub), r));
            }
        }
        added.sort_unstable_by_key(|(order, _)| *order);
    }

    // The old version's routes leave; each new one goes before the first old route it
    // precedes (found by bisection: the old table is in the host's order). The new table
    // shares the old one's routes ([`crate::dialect::RouteList`]).
    let removed = before.routes_of(&source).to_vec();
    if removed
        .iter()
        .any(|&i| matches!(before.routes[i].matcher, PathMatcher::Regex(_)))
    {
        return None;
    }
    let old_order = |i: usize| (&base_orders[i], &before.routes[i].source.key);
    let mut added_orders: Vec<(usize, RouteOrder)> = Vec::with_capacity(added.len());
    let mut added_routes: Vec<(usize, Arc<Route>)> = Vec::with_capacity(added.len());
    for (k, (order, route)) in added.into_iter().enumerate() {
        let at = first_after(before.routes.len(), |i| {
            RouteOrder::cmp_routes(old_order(i), (&order, &source.key)) == Ordering::Greater
        });
        // Its index in the new table: the old routes before it that stay, and the new
        // ones before it.
        let new_at = at - removed.partition_point(|&r| r < at) + k;
        added_orders.push((new_at, order));
        added_routes.push((new_at, route));
    }
    let (routes, moves) = before.routes.patched(removed.clone(), added_routes);
    let table = before.with_routes(
        routes,
        Some(Arc::new(PatchState {
            groups: Arc::clone(&state.groups),
            auths: Arc::clone(&state.auths),
            labels: Arc::clone(&state.labels),
            orders: KeptOrders::Patched {
                base: base_orders,
                removed,
                added: added_orders,
                derived: OnceLock::new(),
            },
        })),
    );
    // The old table's literal index serves the new one through the moves, if it was
    // built (it is, for a before-state that was evaluated): no rebuild per review.
    if let Some(base) = before
        .winners_index
        .get()
        .filter(|index| index.downcast_ref::<LiteralIndex>().is_some())
    {
        let patched: Arc<dyn std::any::Any + Send + Sync> = Arc::new(PatchedIndex {
            base: Arc::clone(base),
            moves: RemappedIndex::new(moves.clone()),
        });
        let _ = table.winners_index.set(patched);
    }
    Some(TablePatch { table, moves })
}

/// The first of `0..len` for which `after` holds (it holds for a suffix), by bisection.
fn first_after(len: usize, after: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, len);
    while low < high {
        let middle = low + (high - low) / 2;
        if after(middle) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    low
}

/// The literal index of a patched table: the old table's index through the patch's moves
/// ([`RemappedIndex`]).
#[derive(Debug)]
pub(super) struct PatchedIndex {
    /// A [`LiteralIndex`] over the old table's routes.
    base: Arc<dyn std::any::Any + Send + Sync>,
    moves: RemappedIndex,
}

impl PatchedIndex {
    /// A superset of the new table's routes that may match `path`, ascending; `None` if
    /// the base is not a [`LiteralIndex`].
    pub(super) fn candidates(&self, path: &str) -> Option<Vec<usize>> {
        let base = self.base.downcast_ref::<LiteralIndex>()?;
        Some(self.moves.candidates(base, path))
    }
}
