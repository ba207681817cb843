//! A host table's routes, in the dialect's order.
//!
//! A table built in full owns its list; a table derived from another after a change of one
//! object ([`Dialect::patched_table`](super::Dialect::patched_table),
//! [`Dialect::patched_object_table`](super::Dialect::patched_object_table)) shares the
//! older table's list and keeps only the change: which routes left and which came, where.
//! An admission review derives one such table per change and drops it, so it neither
//! copies nor releases a pointer per route of the host (on a 2,000-route host those two
//! passes were a third of a decision). Indexing a derived list costs a search among the
//! changed routes, which are few.

use std::sync::Arc;

use super::{Route, RouteMoves, kept_at};

/// The routes of one host table (see the module doc).
#[derive(Clone, Default)]
pub struct RouteList {
    /// The routes, or with `change` the older list they were derived from.
    routes: Arc<Vec<Arc<Route>>>,
    change: Option<Arc<RouteChange>>,
}

/// Which routes of an older list left and which came.
struct RouteChange {
    /// Indices into the older list, ascending.
    removed: Vec<usize>,
    /// (index in the derived list, route), ascending.
    added: Vec<(usize, Arc<Route>)>,
}

/// A derived list: an older one and the change.
#[derive(Clone, Copy)]
struct PatchedRoutes<'a> {
    base: &'a [Arc<Route>],
    removed: &'a [usize],
    added: &'a [(usize, Arc<Route>)],
}

impl<'a> PatchedRoutes<'a> {
    fn len(&self) -> usize {
        self.base.len() - self.removed.len() + self.added.len()
    }

    fn get(&self, j: usize) -> Option<&'a Arc<Route>> {
        if j >= self.len() {
            return None;
        }
        // Before every change or after all of them (a change moves few routes, so nearly
        // every index is one of these), the base's: where it is, or shifted by the change.
        let first_added = self.added.first().map_or(usize::MAX, |(at, _)| *at);
        let first_removed = self.removed.first().copied().unwrap_or(usize::MAX);
        if j < first_added && j < first_removed {
            return self.base.get(j);
        }
        if let Some(shifted) = (j + self.removed.len()).checked_sub(self.added.len())
            && self.added.last().is_none_or(|(at, _)| j > *at)
            && self.removed.last().is_none_or(|&r| shifted > r)
        {
            return self.base.get(shifted);
        }
        match self.added.binary_search_by_key(&j, |(at, _)| *at) {
            Ok(k) => Some(&self.added[k].1),
            // The `j - before`-th route the change kept ([`RouteMoves::old_index`]).
            Err(before) => self.base.get(kept_at(self.removed, j - before)),
        }
    }
}

impl RouteList {
    fn patched_view(&self) -> Option<PatchedRoutes<'_>> {
        self.change.as_deref().map(|change| PatchedRoutes {
            base: &self.routes,
            removed: &change.removed,
            added: &change.added,
        })
    }

    pub fn len(&self) -> usize {
        match self.patched_view() {
            Some(patched) => patched.len(),
            None => self.routes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> Option<&Arc<Route>> {
        match self.patched_view() {
            Some(patched) => patched.get(i),
            None => self.routes.get(i),
        }
    }

    pub fn iter(&self) -> RouteIter<'_> {
        RouteIter(match self.patched_view() {
            Some(patched) => IterRepr::Patched {
                patched,
                run: [].iter(),
                next: 0,
                base: 0,
                removed: 0,
                added: 0,
            },
            None => IterRepr::Built(self.routes.iter()),
        })
    }

    /// The routes as a vector to build on (a derived list is copied out first).
    pub fn make_mut(&mut self) -> &mut Vec<Arc<Route>> {
        if self.change.is_some() {
            self.routes = Arc::new(self.iter().cloned().collect());
            self.change = None;
        }
        Arc::make_mut(&mut self.routes)
    }

    pub fn push(&mut self, route: Arc<Route>) {
        self.make_mut().push(route);
    }

    /// This list with the routes at `removed` (ascending) taken out and `added` put in at
    /// their indices in the result (ascending), and how the routes moved. Shares this
    /// list's routes; a list that is itself derived is copied out first, so lists never
    /// chain.
    pub fn patched(
        &self,
        removed: Vec<usize>,
        added: Vec<(usize, Arc<Route>)>,
    ) -> (RouteList, RouteMoves) {
        let routes = match self.change {
            None => Arc::clone(&self.routes),
            Some(_) => Arc::new(self.iter().cloned().collect()),
        };
        let len = routes.len() - removed.len().min(routes.len()) + added.len();
        debug_assert!(
            removed.windows(2).all(|w| w[0] < w[1])
                && removed.last().is_none_or(|&r| r < routes.len())
                && added.windows(2).all(|w| w[0].0 < w[1].0)
                && added.last().is_none_or(|(at, _)| *at < len),
            "a change of a {}-route list: removed {removed:?}, added at {:?}",
            routes.len(),
            added.iter().map(|(at, _)| at).collect::<Vec<_>>()
        );
        let moves = RouteMoves::new(
            routes.len(),
            removed.clone(),
            added.iter().map(|(at, _)| *at).collect(),
        );
        let list = RouteList {
            routes,
            change: Some(Arc::new(RouteChange { removed, added })),
        };
        (list, moves)
    }
}

impl std::ops::Index<usize> for RouteList {
    type Output = Arc<Route>;

    fn index(&self, i: usize) -> &Arc<Route> {
        match self.get(i) {
            Some(route) => route,
            None => panic!("route {i} of a table of {} routes", self.len()),
        }
    }
}

impl From<Vec<Arc<Route>>> for RouteList {
    fn from(routes: Vec<Arc<Route>>) -> Self {
        RouteList {
            routes: Arc::new(routes),
            change: None,
        }
    }
}

impl FromIterator<Arc<Route>> for RouteList {
    fn from_iter<I: IntoIterator<Item = Arc<Route>>>(routes: I) -> Self {
        routes.into_iter().collect::<Vec<_>>().into()
    }
}

impl<'a> IntoIterator for &'a RouteList {
    type Item = &'a Arc<Route>;
    type IntoIter = RouteIter<'a>;

    fn into_iter(self) -> RouteIter<'a> {
        self.iter()
    }
}

impl std::fmt::Debug for RouteList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The routes of a [`RouteList`] in order.
#[derive(Clone)]
pub struct RouteIter<'a>(IterRepr<'a>);

#[derive(Clone)]
enum IterRepr<'a> {
    Built(std::slice::Iter<'a, Arc<Route>>),
    Patched {
        patched: PatchedRoutes<'a>,
        /// The base routes up to the next change, walked as a slice.
        run: std::slice::Iter<'a, Arc<Route>>,
        /// Index in the list of the first route after `run`.
        next: usize,
        /// Cursors into the base (after `run`), the removed and the added routes.
        base: usize,
        removed: usize,
        added: usize,
    },
}

impl<'a> Iterator for RouteIter<'a> {
    type Item = &'a Arc<Route>;

    fn next(&mut self) -> Option<&'a Arc<Route>> {
        match &mut self.0 {
            IterRepr::Built(routes) => routes.next(),
            IterRepr::Patched {
                patched,
                run,
                next,
                base,
                removed,
                added,
            } => {
                if let Some(route) = run.next() {
                    return Some(route);
                }
                if let Some((at, route)) = patched.added.get(*added)
                    && *at == *next
                {
                    *added += 1;
                    *next += 1;
                    return Some(route);
                }
                while patched.removed.get(*removed) == Some(base) {
                    *removed += 1;
                    *base += 1;
                }
                // The next run: up to the next removed route, the next added one or the end.
                let until_removed = patched
                    .removed
                    .get(*removed)
                    .map_or(patched.base.len(), |&r| r);
                let until_added = patched
                    .added
                    .get(*added)
                    .map_or(usize::MAX, |(at, _)| *base + (at - *next));
                let end = until_removed.min(until_added).min(patched.base.len());
                let start = (*base).min(end);
                *run = patched.base[start..end].iter();
                *next += end - start;
                *base = end;
                run.next()
            }
        }
    }

    fn nth(&mut self, n: usize) -> Option<&'a Arc<Route>> {
        match &mut self.0 {
            IterRepr::Built(routes) => routes.nth(n),
            IterRepr::Patched { .. } => {
                for _ in 0..n {
                    self.next()?;
                }
                self.next()
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = match &self.0 {
            IterRepr::Built(routes) => routes.len(),
            IterRepr::Patched {
                patched, run, next, ..
            } => run.len() + (patched.len() - *next),
        };
        (left, Some(left))
    }
}

impl ExactSizeIterator for RouteIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::PathMatcher;

    fn route(path: &str) -> Arc<Route> {
        crate::dialect::required_route("Ingress", PathMatcher::Exact(path.into()), 0)
    }

    fn paths(list: &RouteList) -> Vec<String> {
        list.iter().map(|r| format!("{:?}", r.matcher)).collect()
    }

    /// A derived list reads, by index and in order, as the vector the change makes:
    /// (base length, removed, added at), including changes at either end, of every route,
    /// and a derived list derived again.
    #[test]
    fn a_derived_list_reads_as_the_changed_vector() {
        let cases: [(usize, &[usize], &[usize]); 8] = [
            (4, &[], &[]),
            (4, &[1], &[1]),
            (4, &[0], &[3]),
            (4, &[3], &[0]),
            (4, &[1, 2], &[0, 3]),
            (4, &[0, 1, 2, 3], &[0]),
            (0, &[], &[0, 1]),
            (5, &[0, 2, 4], &[]),
        ];
        for (len, removed, added_at) in cases {
            let base: Vec<Arc<Route>> = (0..len).map(|i| route(&format!("/old/{i}"))).collect();
            let added: Vec<(usize, Arc<Route>)> = added_at
                .iter()
                .map(|&at| (at, route(&format!("/new/{at}"))))
                .collect();
            let mut expected: Vec<Arc<Route>> = base
                .iter()
                .enumerate()
                .filter(|(i, _)| !removed.contains(i))
                .map(|(_, r)| Arc::clone(r))
                .collect();
            for (at, r) in &added {
                expected.insert(*at, Arc::clone(r));
            }
            let (list, moves) = RouteList::from(base.clone()).patched(removed.to_vec(), added);
            let expected = RouteList::from(expected);
            let case = format!("{len} {removed:?} {added_at:?}");
            assert_eq!(list.len(), expected.len(), "{case}");
            assert_eq!(list.iter().len(), expected.len(), "{case}");
            assert_eq!(paths(&list), paths(&expected), "{case}");
            for i in 0..expected.len() {
                assert!(Arc::ptr_eq(&list[i], &expected[i]), "{case}: route {i}");
                let nth = list.iter().nth(i).expect("in range");
                assert!(Arc::ptr_eq(nth, &expected[i]), "{case}: {i}th route");
                assert_eq!(list.iter().skip(i).len(), expected.len() - i, "{case}");
            }
            assert!(list.get(expected.len()).is_none(), "{case}");
            // The moves say where each kept route went, and which routes came.
            for (i, old) in base.iter().enumerate() {
                match moves.new_index(i) {
                    Some(j) => assert!(Arc::ptr_eq(&list[j], old), "{case}: route {i} moved"),
                    None => assert!(removed.contains(&i), "{case}: route {i} kept"),
                }
            }
            assert_eq!(moves.added(), added_at, "{case}");
            let (again, _) = list.patched(vec![], vec![(0, route("/again"))]);
            assert_eq!(again.len(), expected.len() + 1, "{case}");
            assert_eq!(paths(&again)[1..], paths(&expected)[..], "{case}");
            let mut built = list.clone();
            built.push(route("/pushed"));
            assert_eq!(
                paths(&built)[..expected.len()],
                paths(&expected)[..],
                "{case}"
            );
        }
    }
}
