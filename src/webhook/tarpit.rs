//! Evicted connections that never sent a request are held open, unread, for a while
//! before they close, instead of being closed at once.
//!
//! Why: at the connection limit a new connection closes the connection idle longest
//! (`webhook::conn`), and a slow client (slowloris, an idle HTTP/2 flood) reconnects as
//! soon as it sees its connection close. With more such clients than connection slots,
//! every reconnection evicts another of them, which reconnects in turn: measured under
//! 1,100 slowloris connections against 1,024 slots (BENCHMARKS.md, stop 28), ~3,300
//! evictions and TLS handshakes a second, ~0.75 of the server's CPU cores, and a good
//! client's new connection waited behind those handshakes (new-connection p99 35-45 ms).
//! An evicted socket that stays open costs no TLS state, no HTTP state and no reactor
//! registration here, only its file descriptor and the kernel's socket buffers; the
//! client, which sees no close, stops reconnecting for that long. That breaks the loop
//! without spending a connection slot.
//!
//! Only connections that never completed a request are held: a legitimate client sends
//! its request as soon as the handshake ends, so the API server's connections are never
//! held (they are evicted only once they have served a request, and are then closed at
//! once). The holding is bounded in time (`Limits::evicted_hold`) and in number
//! (`Limits::max_held_evicted`: when full, the socket due first closes early).
//! Nothing is read from a held socket; the kernel's receive buffer bounds what a client
//! can still send into it. The idea is the "tarpit" of mail servers and firewalls
//! (e.g. iptables' `TARPIT` target), applied only to connections already chosen for
//! closing.
//!
//! Each socket is held for between half and all of the hold time, spread evenly over the
//! sockets in the order they come in (`conn::spread_deadline`). With one hold time for all,
//! the connections evicted together in an attack's opening burst were released together,
//! reconnected together and evicted the next ones together: under 1,100 slowloris
//! connections ~78 handshakes at once every 2 s, and the slowest good reviews of a phase
//! began at +2.2, +8.2 and +10.2 s (BENCHMARKS.md, stop 29).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use super::conn::spread_deadline;

/// Sockets of evicted connections waiting to be closed.
pub(crate) struct Tarpit {
    hold: Duration,
    capacity: usize,
    held: Mutex<HeldSockets>,
    /// Wakes [`Tarpit::run`] when a socket comes in (it may be due before the one the
    /// runner sleeps for).
    arrived: Notify,
    /// `mtls_gate_held_connections`.
    gauge: Gauge,
}

#[derive(Default)]
struct HeldSockets {
    /// Due first at the top.
    by_due: BinaryHeap<Reverse<Held>>,
    /// Sockets taken so far: the `n` of each one's share of the hold time.
    taken: u64,
}

struct Held {
    due: Instant,
    /// Closed when dropped.
    _socket: std::net::TcpStream,
}

// Ordered by when they are due only.
impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.due.cmp(&other.due)
    }
}

impl Tarpit {
    /// Holds at most `capacity` sockets for between half and all of `hold` each; either
    /// zero holds none (evicted connections close at once).
    pub(crate) fn new(hold: Duration, capacity: usize, gauge: Gauge) -> Self {
        Self {
            hold,
            capacity,
            held: Mutex::new(HeldSockets::default()),
            arrived: Notify::new(),
            gauge,
        }
    }

    /// Takes the socket of a connection that was evicted before its first request; when
    /// full, the socket due first closes now.
    pub(crate) fn hold(&self, socket: std::net::TcpStream, now: Instant) {
        if self.capacity == 0 || self.hold.is_zero() {
            return;
        }
        // As small as the kernel allows: nothing is read from it any more.
        if let Err(e) = socket2::SockRef::from(&socket).set_recv_buffer_size(0) {
            tracing::debug!(error = %e, "cannot shrink a held connection's receive buffer");
        }
        let mut held = self.lock();
        let hold = spread_deadline(self.hold, held.taken);
        held.taken = held.taken.wrapping_add(1);
        // A hold too long for the clock: closed at once, as with none.
        let Some(due) = now.checked_add(hold) else {
            return;
        };
        while held.by_due.len() >= self.capacity {
            held.by_due.pop();
        }
        held.by_due.push(Reverse(Held {
            due,
            _socket: socket,
        }));
        self.set_gauge(held.by_due.len());
        self.arrived.notify_one();
    }

    /// Closes the sockets due by `now`; returns when the next one is due.
    pub(crate) fn release_due(&self, now: Instant) -> Option<Instant> {
        let mut held = self.lock();
        while held.by_due.peek().is_some_and(|h| h.0.due <= now) {
            held.by_due.pop();
        }
        self.set_gauge(held.by_due.len());
        held.by_due.peek().map(|h| h.0.due)
    }

    /// Closes every socket when it is due, until the task is dropped (sockets still held
    /// then close with the tarpit).
    pub(crate) async fn run(&self) {
        loop {
            // tokio's clock (the same as `Instant::now()` unless a test pauses it).
            match self.release_due(tokio::time::Instant::now().into_std()) {
                Some(due) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(due.into()) => {}
                        () = self.arrived.notified() => {}
                    }
                }
                None => self.arrived.notified().await,
            }
        }
    }

    /// Sockets held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_due.len()
    }

    fn set_gauge(&self, len: usize) {
        self.gauge.set(i64::try_from(len).unwrap_or(i64::MAX));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HeldSockets> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// A connected pair: (the client's end, the server's end).
    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        (client, server)
    }

    /// Whether the client's end sees the server's end closed (rather than silence).
    fn sees_close(client: &mut TcpStream) -> bool {
        let mut buf = [0u8; 16];
        match client.read(&mut buf) {
            Ok(n) => n == 0,
            // The read timeout; a reset would be a close too.
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }

    fn tarpit(hold: Duration, capacity: usize) -> (Tarpit, Gauge) {
        let gauge = Gauge::default();
        (Tarpit::new(hold, capacity, gauge.clone()), gauge)
    }

    #[test]
    fn a_held_socket_stays_open_and_unread_until_it_is_due() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut client, server) = pair(&listener);
        let (tarpit, gauge) = tarpit(Duration::from_secs(2), 8);
        let t0 = Instant::now();
        tarpit.hold(server, t0);
        assert_eq!((tarpit.len(), gauge.get()), (1, 1));
        // The first socket gets the shortest share of the hold: half.
        let due = tarpit.release_due(t0).expect("held");
        assert_eq!(due, t0 + Duration::from_secs(1));
        assert_eq!(
            tarpit.release_due(due - Duration::from_millis(1)),
            Some(due)
        );
        assert!(!sees_close(&mut client), "no close before the hold ends");
        assert_eq!(tarpit.release_due(due), None);
        assert_eq!((tarpit.len(), gauge.get()), (0, 0));
        assert!(sees_close(&mut client), "closed once due");
    }

    #[test]
    fn sockets_evicted_together_are_released_spread_over_the_hold() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let hold = Duration::from_secs(2);
        let (tarpit, _) = tarpit(hold, 256);
        let t0 = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..64 {
            let (client, server) = pair(&listener);
            tarpit.hold(server, t0);
            clients.push(client);
        }
        // Between half and all of the hold, about evenly: a quarter of them go in each
        // quarter of that second.
        let mut left = Vec::new();
        for quarter in 0..=4u32 {
            tarpit.release_due(t0 + hold / 2 + hold / 8 * quarter);
            left.push(tarpit.len());
        }
        assert_eq!(left[0], 63, "{left:?}");
        assert_eq!(left[4], 0, "{left:?}");
        for pair in left.windows(2) {
            assert!((12..=20).contains(&(pair[0] - pair[1])), "{left:?}");
        }
    }

    #[test]
    fn when_full_the_socket_due_first_closes_early() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (tarpit, gauge) = tarpit(Duration::from_secs(2), 2);
        let t0 = Instant::now();
        let mut clients = Vec::new();
        for i in 0..3 {
            let (client, server) = pair(&listener);
            tarpit.hold(server, t0 + Duration::from_millis(i * 10));
            clients.push(client);
        }
        assert_eq!((tarpit.len(), gauge.get()), (2, 2));
        // The first one's share, half, is the shortest there is: it was due first.
        let closed: Vec<bool> = clients.iter_mut().map(sees_close).collect();
        assert_eq!(closed, [true, false, false]);
        let next = tarpit.release_due(t0).expect("two held");
        assert!(next > t0 + Duration::from_secs(1), "{:?}", next - t0);
        assert_eq!(tarpit.release_due(t0 + Duration::from_secs(3)), None);
    }

    #[test]
    fn a_zero_hold_or_capacity_closes_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        for (hold, capacity) in [(Duration::ZERO, 8), (Duration::from_secs(2), 0)] {
            let (tarpit, gauge) = tarpit(hold, capacity);
            let (mut client, server) = pair(&listener);
            tarpit.hold(server, Instant::now());
            assert_eq!((tarpit.len(), gauge.get()), (0, 0));
            assert!(sees_close(&mut client), "{hold:?}, {capacity}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn run_closes_each_socket_when_due() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tarpit = std::sync::Arc::new(tarpit(Duration::from_secs(2), 8).0);
        let runner = tokio::spawn({
            let tarpit = tarpit.clone();
            async move { tarpit.run().await }
        });
        // Idle with nothing held, then woken by the first socket.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = || tokio::time::Instant::now().into_std();
        let (_client, server) = pair(&listener);
        tarpit.hold(server, now());
        // The first socket is held for half the hold.
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(tarpit.len(), 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(tarpit.len(), 0);
        // A socket due sooner than the one the runner sleeps for wakes it: one taken as
        // if 3 s from now (due in ~4.6 s), then one due in 1.2 s (the third share, 0.62).
        let (_client2, server2) = pair(&listener);
        tarpit.hold(server2, now() + Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (_client3, server3) = pair(&listener);
        tarpit.hold(server3, now());
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(tarpit.len(), 1, "the sooner one closed when due");
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(tarpit.len(), 0);
        runner.abort();
    }
}
