//! Request bodies: read within a deadline and a minimum average rate, into memory reserved
//! from one budget shared by every body; an oversize body is read and discarded up to a
//! bound so that its 413 reaches the client (design §8: "body over 4 MiB → 413 that the
//! client can read"; adversarial test F7: a client streaming its body without
//! `Expect: 100-continue` got a connection reset because the server closed with unread
//! data, which makes the kernel send RST, RFC 9112 §9.6 "tear-down").
//!
//! The review slot is not held here: it is taken only once the whole body has arrived
//! (adversarial test F3: 80 slow bodies held all 64 slots).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::limits::Limits;

/// Why a body was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Over `max_body_bytes` (413). `drained`: the rest was read and discarded, so the
    /// connection can carry on; otherwise it must close.
    TooLarge { drained: bool },
    /// Not complete within `body_read_timeout` (408).
    Timeout,
    /// Arriving slower than `min_body_rate` after the grace period (408).
    TooSlow,
    /// No room left in the memory shared by all bodies (503).
    Memory,
    /// The client's stream failed (reset, protocol error).
    Read(String),
}

/// Bytes of request bodies in memory, across all requests.
pub(crate) struct BodyBudget {
    permits: Arc<Semaphore>,
    gauge: Gauge,
}

impl BodyBudget {
    pub(crate) fn new(bytes: usize, gauge: Gauge) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
            gauge,
        })
    }
}

/// Memory reserved from the budget; returned when dropped.
pub(crate) struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl Reservation {
    fn new(budget: &Arc<BodyBudget>) -> Self {
        Self {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    /// Reserves `more` bytes, or fails at once when the budget cannot spare them.
    fn grow(&mut self, more: usize) -> Result<(), BodyError> {
        let n = u32::try_from(more).map_err(|_| BodyError::Memory)?;
        let permit = self
            .budget
            .permits
            .try_acquire_many(n)
            .map_err(|_| BodyError::Memory)?;
        permit.forget();
        self.bytes += more;
        self.budget.gauge.inc_by(more as i64);
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.permits.add_permits(self.bytes);
        self.budget.gauge.dec_by(self.bytes as i64);
    }
}

/// A complete body and the memory it holds.
pub(crate) struct Buffered {
    pub bytes: Vec<u8>,
    _reservation: Reservation,
}

/// The time by which a body that has delivered `received` bytes since `started` must
/// deliver more: the end of the grace period, or the moment its average rate would fall
/// below `min_rate`, whichever is later; never after the overall deadline.
fn next_progress_deadline(
    started: Instant,
    received: usize,
    limits: &Limits,
    overall: Instant,
) -> Instant {
    if limits.min_body_rate == 0 {
        return overall;
    }
    let at_rate = Duration::from_secs_f64(received as f64 / limits.min_body_rate as f64);
    (started + at_rate.max(limits.body_rate_grace)).min(overall)
}

/// Reads the next data chunk within the deadlines. `None` at the end of the body.
async fn next_chunk(
    body: &mut Incoming,
    started: Instant,
    received: usize,
    limits: &Limits,
    overall: Instant,
) -> Result<Option<hyper::body::Bytes>, BodyError> {
    loop {
        let deadline = next_progress_deadline(started, received, limits, overall);
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) if deadline >= overall => return Err(BodyError::Timeout),
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
                // Trailers: nothing to keep.
            }
        }
    }
}

/// Reads the rest of an oversize body and throws it away, up to `max_discard_bytes`
/// more, within the same deadlines; true when the body ended.
async fn discard(
    body: &mut Incoming,
    started: Instant,
    mut received: usize,
    limits: &Limits,
    overall: Instant,
    pace: &BodyPace,
) -> bool {
    let stop_at = limits
        .max_body_bytes
        .saturating_add(limits.max_discard_bytes);
    loop {
        match next_chunk(body, started, received, limits, overall).await {
            Ok(None) => return true,
            Ok(Some(data)) => {
                let before = received;
                received = received.saturating_add(data.len());
                if received > stop_at {
                    return false;
                }
                pace.pace(before, received).await;
            }
            Err(_) => return false,
        }
    }
}

/// The pace at which all request bodies together are read beyond each one's first
/// `free_bytes` (the bodies that need the decoded-size scan and review at a lower CPU
/// priority).
///
/// Why: receiving a body costs CPU on the serving runtime (TLS decryption and copies,
/// about 1 ms per MiB here), and so does scanning it, so clients that send large bodies
/// back to back take CPU from the API server's ordinary reviews in proportion to what
/// they send: four clients sending crafted 4 MiB reviews kept ~1.5 of 2 cores busy, and
/// the good reviews' p99 went over 10 ms (adversarial test F3; BENCHMARKS.md, stop 28).
/// Paced, what they can take is bounded by configuration instead. A legitimate review is
/// rarely over 128 KiB; at the default pace a 4 MiB body arrives in 64 ms when it is the
/// only large one, and the per-body deadlines still run (each of 256 concurrent large
/// bodies, more than the default body memory holds, would still get 256 KiB/s, far above
/// `min_body_rate`). A generic cell rate algorithm (ITU-T I.371's GCRA): each paced read
/// moves a shared "paced until" instant on by its size at the rate, and waits while that
/// instant is more than [`PACE_BURST`] ahead.
pub(crate) struct BodyPace {
    bytes_per_second: u64,
    free_bytes: usize,
    paced_until: Mutex<Instant>,
}

/// How far reads may run ahead of the pace before they wait.
const PACE_BURST: Duration = Duration::from_millis(4);

impl BodyPace {
    /// `bytes_per_second` 0: not paced.
    pub(crate) fn new(bytes_per_second: u64, free_bytes: usize) -> Self {
        Self {
            bytes_per_second,
            free_bytes,
            paced_until: Mutex::new(Instant::now()),
        }
    }

    /// Bytes of a read that brought a body from `before` to `after` bytes that count
    /// against the pace (none when not paced).
    fn paced_bytes(&self, before: usize, after: usize) -> usize {
        if self.bytes_per_second == 0 {
            return 0;
        }
        after.saturating_sub(before.max(self.free_bytes))
    }

    /// When a read that brought a body from `before` to `after` bytes may be followed by
    /// the next; `now` when that part of the body is not paced or within the burst.
    fn next_read_at(&self, before: usize, after: usize, now: Instant) -> Instant {
        let paced = self.paced_bytes(before, after);
        if paced == 0 {
            return now;
        }
        let mut until = self.paced_until.lock().unwrap_or_else(|e| e.into_inner());
        let took = Duration::from_secs_f64(paced as f64 / self.bytes_per_second as f64);
        *until = (*until).max(now) + took;
        until.checked_sub(PACE_BURST).unwrap_or(now).max(now)
    }

    async fn pace(&self, before: usize, after: usize) {
        // Most bodies are never paced: no clock read on their chunks.
        if self.paced_bytes(before, after) == 0 {
            return;
        }
        let now = Instant::now();
        let at = self.next_read_at(before, after, now);
        if at > now {
            tokio::time::sleep_until(at).await;
        }
    }
}

/// Reads a whole request body under `limits`, reserving its memory from `budget`.
/// `expect_continue`: the client waits for `100 Continue` before sending the body, so an
/// announced oversize body is refused without asking for it.
pub(crate) async fn read(
    mut body: Incoming,
    expect_continue: bool,
    limits: &Limits,
    budget: &Arc<BodyBudget>,
    pace: &BodyPace,
) -> Result<Buffered, BodyError> {
    let started = Instant::now();
    let overall = started + limits.body_read_timeout;
    let max = limits.max_body_bytes;
    // Content-Length (HTTP/1.1 and HTTP/2) is known up front.
    if let Some(announced) = body.size_hint().exact() {
        let announced = usize::try_from(announced).unwrap_or(usize::MAX);
        if announced > max {
            if expect_continue || announced > max.saturating_add(limits.max_discard_bytes) {
                return Err(BodyError::TooLarge { drained: false });
            }
            let drained = discard(&mut body, started, 0, limits, overall, pace).await;
            return Err(BodyError::TooLarge { drained });
        }
    }
    let mut reservation = Reservation::new(budget);
    let mut buf: Vec<u8> = Vec::new();
    while let Some(data) = next_chunk(&mut body, started, buf.len(), limits, overall).await? {
        let needed = buf.len().saturating_add(data.len());
        if needed > max {
            let received = needed;
            drop(buf);
            drop(reservation);
            let drained = discard(&mut body, started, received, limits, overall, pace).await;
            return Err(BodyError::TooLarge { drained });
        }
        if needed > buf.capacity() {
            // Grow by doubling (capped at the limit), reserving the new capacity first, so
            // the budget accounts for what is allocated, not only what is filled.
            let target = needed.max(buf.capacity().saturating_mul(2)).min(max);
            reservation.grow(target - reservation.bytes)?;
            buf.reserve_exact(target - buf.len());
        }
        let before = buf.len();
        buf.extend_from_slice(&data);
        pace.pace(before, buf.len()).await;
    }
    Ok(Buffered {
        bytes: buf,
        _reservation: reservation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_are_paced_beyond_their_free_bytes_all_bodies_together() {
        const KI: usize = 1024;
        let ms = |n: u64| Duration::from_millis(n);
        // 1 MiB/s beyond the first 128 KiB of each body.
        let pace = BodyPace::new(1 << 20, 128 * KI);
        let t0 = Instant::now();
        // Within the free bytes: at once.
        assert_eq!(pace.next_read_at(0, 100 * KI, t0), t0);
        // 100 KiB past the free bytes take ~97.7 ms at the pace, less the burst.
        let next = pace.next_read_at(100 * KI, 228 * KI, t0);
        assert_eq!((next - t0).as_micros(), 97_656 - 4_000);
        // Another body's paced bytes queue behind: the pace is shared.
        let next = pace.next_read_at(300 * KI, 400 * KI, t0);
        assert_eq!((next - t0).as_micros(), 2 * 97_656 - 4_000);
        // Later, once the pace has caught up, a small paced read (within the burst) goes at once.
        let later = t0 + ms(1000);
        assert_eq!(pace.next_read_at(500 * KI, 502 * KI, later), later);
        // Pace 0: never paced.
        let unpaced = BodyPace::new(0, 128 * KI);
        assert_eq!(unpaced.next_read_at(0, 4 << 20, t0), t0);
    }

    #[test]
    fn progress_deadline_follows_the_minimum_rate_after_the_grace_period() {
        let limits = Limits {
            min_body_rate: 1000,
            body_rate_grace: Duration::from_secs(2),
            ..Limits::default()
        };
        let t0 = Instant::now();
        let overall = t0 + Duration::from_secs(10);
        // Little received: the grace period decides.
        assert_eq!(
            next_progress_deadline(t0, 10, &limits, overall),
            t0 + Duration::from_secs(2)
        );
        // 5,000 bytes at 1,000 B/s buy five seconds.
        assert_eq!(
            next_progress_deadline(t0, 5000, &limits, overall),
            t0 + Duration::from_secs(5)
        );
        // Never past the overall deadline.
        assert_eq!(
            next_progress_deadline(t0, 50_000, &limits, overall),
            overall
        );
        let no_rate = Limits {
            min_body_rate: 0,
            ..limits
        };
        assert_eq!(next_progress_deadline(t0, 0, &no_rate, overall), overall);
    }

    #[test]
    fn reservations_are_bounded_and_returned() {
        let budget = BodyBudget::new(100, Gauge::default());
        let mut a = Reservation::new(&budget);
        a.grow(60).unwrap();
        let mut b = Reservation::new(&budget);
        assert_eq!(b.grow(50), Err(BodyError::Memory));
        b.grow(40).unwrap();
        assert_eq!(budget.gauge.get(), 100);
        drop(a);
        assert_eq!(budget.gauge.get(), 40);
        b.grow(60).unwrap();
        drop(b);
        assert_eq!(budget.permits.available_permits(), 100);
    }
}
