//! Connection slots shared by the HTTPS and probe listeners: a hard limit on open
//! connections, and, at the limit, room made for a new connection by closing the one
//! that has been idle longest.
//!
//! Why evict instead of only waiting: connections that hold a slot without doing work
//! (a TLS handshake that never completes, a header sent one byte at a time, an HTTP/2
//! connection that never sends its preface) would otherwise keep every slot for their
//! whole timeout, and new connections from the API server would wait behind them
//! (adversarial test F3: 1,024 idle HTTP/2 connections blocked all new connections for
//! 150 s). nginx does the same when it runs out of connections: it closes idle keep-alive
//! connections to reuse them (`ngx_drain_connections`). The choice depends only on a
//! connection's state, never on the client address: all legitimate traffic comes from the
//! few API-server addresses.
//!
//! A connection counts as busy while a request is being served on it (from its header to
//! the end of its response); everything else (handshake, waiting for or reading a
//! header, keep-alive idle) counts as idle. Busy connections are never evicted; when every
//! connection is busy, new connections wait in the listen backlog. Connections that have
//! served a request (the
//! API server's keep-alive connections) are evicted only when no connection that never
//! started one is left to evict.
//!
//! A connection's first-request deadline is spread between half and all of the
//! configured timeout, by connection (`spread_deadline`). Connections that
//! arrive together would otherwise all time out together, and a client that reconnects
//! at once (as an attacker's does) would send all its TLS handshakes again in one burst,
//! every timeout (measured in the attack bench: 1,024 idle HTTP/2 connections closed in
//! the same 0.3 s made reviews that began then take 10-31 ms; BENCHMARKS.md, stop 29). The configured timeout
//! stays the longest any connection waits; a legitimate client sends its first request
//! right after its handshake.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The slots of one listener.
pub(crate) struct ConnectionSlots {
    permits: Arc<Semaphore>,
    limit: usize,
    open: Mutex<OpenConnections>,
    next_id: AtomicU64,
    epoch: Instant,
    /// Open connections, for `mtls_gate_open_connections`.
    gauge: Gauge,
}

/// The open connections of a listener, and the order they arrived in.
#[derive(Default)]
struct OpenConnections {
    by_id: HashMap<u64, Arc<Activity>>,
    /// Ids in arrival order, of connections that had not started a request when last
    /// looked at: the front is the oldest candidate for eviction. Entries of connections
    /// that closed, started a request or were already asked to close are dropped when
    /// they reach the front, and the whole queue is compacted when it outgrows the table,
    /// so that it stays bounded without a removal per closed connection.
    arrival: VecDeque<u64>,
}

/// Activity of one connection, shared between its task and the slot table.
pub(crate) struct Activity {
    epoch: Instant,
    busy: AtomicUsize,
    /// Requests started on this connection so far.
    started: AtomicU64,
    /// Milliseconds since `epoch` of the last change of `busy` (or of the connection's start).
    last_ms: AtomicU64,
    evicted: AtomicBool,
    evict: Notify,
    /// This connection's number, which sets its share of the first-request timeout.
    number: u64,
}

/// A held slot; frees it when dropped.
pub(crate) struct Slot {
    slots: Arc<ConnectionSlots>,
    id: u64,
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

/// Keeps a connection busy while alive (one per request).
pub(crate) struct Busy(Arc<Activity>);

impl ConnectionSlots {
    pub(crate) fn new(limit: usize, gauge: Gauge) -> Arc<Self> {
        let limit = limit.clamp(1, u32::MAX as usize);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            open: Mutex::new(OpenConnections::default()),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
            gauge,
        })
    }

    /// Resolves once every slot is free (after the listener stopped accepting).
    pub(crate) async fn all_closed(&self) {
        let all = u32::try_from(self.limit).unwrap_or(u32::MAX);
        if let Ok(p) = self.permits.acquire_many(all).await {
            drop(p);
        }
    }

    /// Open connections now.
    #[cfg(test)]
    fn open_count(&self) -> usize {
        self.limit - self.permits.available_permits()
    }

    /// A slot for a connection just accepted. At the limit, closes the connection idle
    /// longest (if any) and waits for its slot; when all are busy, waits for any slot.
    /// Returns the number of connections evicted to make room.
    pub(crate) async fn acquire(self: &Arc<Self>) -> (Slot, u64) {
        let mut evicted = 0;
        loop {
            if let Some(slot) = self.try_acquire(&mut evicted).await {
                return (slot, evicted);
            }
        }
    }

    async fn try_acquire(self: &Arc<Self>, evicted: &mut u64) -> Option<Slot> {
        let permit = loop {
            if let Ok(p) = self.permits.clone().try_acquire_owned() {
                break p;
            }
            if self.evict_idlest() {
                *evicted += 1;
            }
            // The evicted connection's task frees its slot within microseconds; if nothing
            // was idle, wait for any slot, and look again now and then.
            match tokio::time::timeout(
                Duration::from_millis(100),
                self.permits.clone().acquire_owned(),
            )
            .await
            {
                Ok(Ok(p)) => break p,
                // Never closed; were it, try again from the top.
                Ok(Err(_)) => return None,
                Err(_) => continue,
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            epoch: self.epoch,
            busy: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
            number: id,
        });
        activity.touch();
        {
            let mut open = self.lock();
            open.by_id.insert(id, activity.clone());
            open.arrival.push_back(id);
            if open.arrival.len() > 2 * open.by_id.len() + 64 {
                let OpenConnections { by_id, arrival } = &mut *open;
                arrival.retain(|id| by_id.get(id).is_some_and(|a| a.never_started_nor_asked()));
            }
        }
        self.gauge.inc();
        Some(Slot {
            slots: self.clone(),
            id,
            activity,
            _permit: permit,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OpenConnections> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks an idle connection to close: one that has never started a request if there
    /// is one (a handshake, a silent or slow client), else the keep-alive connection idle
    /// longest; oldest first among either. False when every connection is busy.
    ///
    /// The first kind is found at the front of the arrival order (a connection that never
    /// started a request has been idle since it arrived), without visiting the others:
    /// under a flood of silent connections every new one evicts one.
    fn evict_idlest(&self) -> bool {
        let mut open = self.lock();
        let OpenConnections { by_id, arrival } = &mut *open;
        while let Some(id) = arrival.pop_front() {
            if let Some(a) = by_id.get(&id).filter(|a| a.never_started_nor_asked()) {
                a.evicted.store(true, Ordering::Relaxed);
                a.evict.notify_one();
                return true;
            }
        }
        let idlest = by_id
            .values()
            .filter(|a| a.busy.load(Ordering::Relaxed) == 0 && !a.evicted.load(Ordering::Relaxed))
            .min_by_key(|a| {
                (
                    a.started.load(Ordering::Relaxed) > 0,
                    a.last_ms.load(Ordering::Relaxed),
                )
            });
        match idlest {
            Some(a) => {
                a.evicted.store(true, Ordering::Relaxed);
                a.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().by_id.remove(&self.id);
        self.slots.gauge.dec();
    }
}

impl Slot {
    pub(crate) fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }
}

impl Activity {
    /// Never started a request and not asked to close yet: a candidate of the arrival order.
    fn never_started_nor_asked(&self) -> bool {
        self.started.load(Ordering::Relaxed) == 0 && !self.evicted.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Marks one request in progress until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Busy(self.clone())
    }

    /// Whether the slot table asked this connection to make room.
    pub(crate) fn was_evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }

    /// True once a request header arrived on this connection (a request started).
    pub(crate) fn started_a_request(&self) -> bool {
        self.started.load(Ordering::Relaxed) > 0
    }

    /// Resolves when the slot table asks this connection to make room. A request that
    /// started after the choice keeps the connection: the request is served, and the
    /// connection is chosen again later if still idlest.
    pub(crate) async fn evicted(&self) {
        loop {
            self.evict.notified().await;
            if self.busy.load(Ordering::Relaxed) == 0 {
                return;
            }
            self.evicted.store(false, Ordering::Relaxed);
        }
    }

    /// Resolves once no request has been in flight for `first` (before the first request
    /// started; this connection's share of it, see the module doc) or `later` (after).
    /// Polls at the deadline only, so it costs one timer.
    pub(crate) async fn idle_for(&self, first: Duration, later: Duration) {
        let first = spread_deadline(first, self.number);
        loop {
            let timeout = if self.started.load(Ordering::Relaxed) == 0 {
                first
            } else {
                later
            };
            if self.busy.load(Ordering::Relaxed) == 0 {
                let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
                let idle = self.epoch.elapsed().saturating_sub(last);
                if idle >= timeout {
                    return;
                }
                tokio::time::sleep(timeout - idle).await;
            } else {
                tokio::time::sleep(timeout).await;
            }
        }
    }
}

/// The deadline the `n`th of a series gets out of `full` (connection `n`'s first-request
/// deadline; the `n`th hold of `webhook::tarpit`): between half and all of it, by
/// [`deadline_share`].
pub(crate) fn spread_deadline(full: Duration, n: u64) -> Duration {
    // Never longer than `full`, even where the float product would round past it.
    Duration::try_from_secs_f64(full.as_secs_f64() * deadline_share(n))
        .map_or(full, |d| d.min(full))
}

/// ½ plus half the fractional part of `n` times the golden ratio (a Weyl sequence, of low
/// discrepancy): consecutive numbers, as in a burst of arrivals, fall close to evenly over
/// [½, 1) rather than randomly, and it needs no random source.
fn deadline_share(n: u64) -> f64 {
    // 2^64 / golden ratio, odd: multiplying by it permutes the u64s.
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let fraction = (n.wrapping_mul(GOLDEN) >> 11) as f64 / (1u64 << 53) as f64;
    0.5 + fraction / 2.0
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_limit_the_idlest_connection_makes_room() {
        let slots = ConnectionSlots::new(2, Gauge::default());
        let (old, e) = slots.acquire().await;
        assert_eq!(e, 0);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (young, _) = slots.acquire().await;
        assert_eq!(slots.open_count(), 2);

        // The third connection evicts the older idle one, which then lets go of its slot.
        let old_activity = old.activity();
        let closer = tokio::spawn(async move {
            old_activity.evicted().await;
            drop(old);
        });
        let (third, evicted) = tokio::time::timeout(Duration::from_secs(5), slots.acquire())
            .await
            .expect("a slot is made free");
        assert_eq!(evicted, 1);
        closer.await.unwrap();
        assert_eq!(slots.open_count(), 2);
        drop((young, third));
        assert_eq!(slots.open_count(), 0);
    }

    #[tokio::test]
    async fn connections_that_served_a_request_are_evicted_last() {
        let slots = ConnectionSlots::new(2, Gauge::default());
        let (served, _) = slots.acquire().await;
        drop(served.activity().begin());
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Younger, but it never started a request: it goes first.
        let (silent, _) = slots.acquire().await;
        assert!(slots.evict_idlest());
        assert!(silent.activity().evicted.load(Ordering::Relaxed));
        assert!(!served.activity().evicted.load(Ordering::Relaxed));
        // With only served connections left to choose from, the served one goes.
        assert!(slots.evict_idlest());
        assert!(served.activity().evicted.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn silent_connections_are_evicted_in_arrival_order() {
        let slots = ConnectionSlots::new(8, Gauge::default());
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(slots.acquire().await.0);
        }
        // The oldest starts a request: it leaves the silent ones, and is skipped.
        drop(held[0].activity().begin());
        for expected in [1, 2, 3] {
            assert!(slots.evict_idlest());
            let asked: Vec<usize> = (0..held.len())
                .filter(|&i| held[i].activity().evicted.load(Ordering::Relaxed))
                .collect();
            assert_eq!(asked.last(), Some(&expected), "asked so far: {asked:?}");
        }
        // No silent one left: the connection that served a request goes.
        assert!(slots.evict_idlest());
        assert!(held[0].activity().evicted.load(Ordering::Relaxed));
        assert!(!slots.evict_idlest(), "every connection was asked already");
    }

    #[tokio::test]
    async fn the_arrival_order_stays_bounded_when_connections_close_on_their_own() {
        let slots = ConnectionSlots::new(4, Gauge::default());
        let kept = slots.acquire().await.0;
        for _ in 0..10_000 {
            drop(slots.acquire().await.0);
        }
        let queued = slots.lock().arrival.len();
        assert!(
            queued <= 2 * 2 + 64 + 1,
            "{queued} ids queued for 1 open connection"
        );
        // The connection still open is still found first.
        assert!(slots.evict_idlest());
        assert!(kept.activity().evicted.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn busy_connections_are_never_evicted() {
        let slots = ConnectionSlots::new(1, Gauge::default());
        let (only, _) = slots.acquire().await;
        let busy = only.activity().begin();
        let waiting = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire().await })
        };
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!waiting.is_finished(), "a busy connection kept its slot");
        drop(busy);
        drop(only);
        let (_slot, evicted) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the freed slot is taken")
            .unwrap();
        assert_eq!(evicted, 0);
    }

    /// Connections that arrive together time out spread over the second half of the
    /// first-request timeout, never after it.
    #[test]
    fn first_request_deadlines_of_a_burst_are_spread_evenly() {
        let burst = 1_024;
        let mut per_tenth = [0usize; 5];
        for id in 7_000..7_000 + burst {
            let f = deadline_share(id);
            assert!((0.5..1.0).contains(&f), "connection {id}: {f}");
            per_tenth[((f - 0.5) * 10.0) as usize] += 1;
        }
        // A uniform spread puts ~205 in each tenth of the timeout; a Weyl sequence keeps
        // every tenth within a few of that for any run of consecutive ids.
        for (tenth, n) in per_tenth.iter().enumerate() {
            assert!((195..=215).contains(n), "tenth {tenth}: {per_tenth:?}");
        }
        // Neighbours are far apart: no two consecutive arrivals expire together.
        for id in 0..burst {
            let gap = (deadline_share(id) - deadline_share(id + 1)).abs();
            assert!(gap > 0.05, "connections {id} and {}: {gap}", id + 1);
        }
    }

    #[test]
    fn a_spread_deadline_is_never_longer_than_the_full_one() {
        for full in [Duration::ZERO, Duration::from_nanos(1), Duration::MAX] {
            for n in [0, 1, 2, 3, u64::MAX] {
                assert!(spread_deadline(full, n) <= full, "{full:?}, {n}");
            }
        }
        assert_eq!(
            spread_deadline(Duration::from_secs(10), 0),
            Duration::from_secs(5)
        );
    }

    #[tokio::test]
    async fn the_first_request_deadline_is_this_connections_share_of_the_timeout() {
        let slots = ConnectionSlots::new(64, Gauge::default());
        let timeout = Duration::from_millis(400);
        let start = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..16 {
            let (slot, _) = slots.acquire().await;
            waits.push(tokio::spawn(async move {
                slot.activity()
                    .idle_for(timeout, Duration::from_secs(3600))
                    .await;
                start.elapsed()
            }));
        }
        let mut waited = Vec::new();
        for w in waits {
            waited.push(w.await.unwrap());
        }
        let shortest = *waited.iter().min().unwrap();
        let longest = *waited.iter().max().unwrap();
        // Timers fire late, never early.
        assert!(shortest >= timeout / 2, "{waited:?}");
        assert!(longest < timeout + Duration::from_millis(150), "{waited:?}");
        assert!(longest - shortest >= timeout / 3, "{waited:?}");
    }

    #[tokio::test]
    async fn idle_deadline_differs_before_and_after_the_first_request() {
        let slots = ConnectionSlots::new(1, Gauge::default());
        let (slot, _) = slots.acquire().await;
        let a = slot.activity();
        // Before any request: the short deadline applies.
        tokio::time::timeout(
            Duration::from_secs(5),
            a.idle_for(Duration::from_millis(20), Duration::from_secs(3600)),
        )
        .await
        .expect("first-request deadline");
        drop(a.begin());
        // After one: the long one, so this does not resolve soon.
        let r = tokio::time::timeout(
            Duration::from_millis(100),
            a.idle_for(Duration::from_millis(20), Duration::from_secs(3600)),
        )
        .await;
        assert!(r.is_err());
    }
}
