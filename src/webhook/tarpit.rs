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
//! (`Limits::max_held_evicted`: when full, the socket held longest closes early).
//! Nothing is read from a held socket; the kernel's receive buffer bounds what a client
//! can still send into it. The idea is the "tarpit" of mail servers and firewalls
//! (e.g. iptables' `TARPIT` target), applied only to connections already chosen for
//! closing.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

/// Sockets of evicted connections waiting to be closed.
pub(crate) struct Tarpit {
    hold: Duration,
    capacity: usize,
    /// In the order they came in, which is also the order they are due (one hold time).
    held: Mutex<VecDeque<Held>>,
    /// Wakes [`Tarpit::run`] when the first socket comes in.
    arrived: Notify,
    /// `mtls_gate_held_connections`.
    gauge: Gauge,
}

struct Held {
    due: Instant,
    /// Closed when dropped.
    _socket: std::net::TcpStream,
}

impl Tarpit {
    /// Holds at most `capacity` sockets for `hold` each; either zero holds none (evicted
    /// connections close at once).
    pub(crate) fn new(hold: Duration, capacity: usize, gauge: Gauge) -> Self {
        Self {
            hold,
            capacity,
            held: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            gauge,
        }
    }

    /// Takes the socket of a connection that was evicted before its first request; when
    /// full, the socket held longest closes now.
    pub(crate) fn hold(&self, socket: std::net::TcpStream, now: Instant) {
        if self.capacity == 0 || self.hold.is_zero() {
            return;
        }
        // As small as the kernel allows: nothing is read from it any more.
        if let Err(e) = socket2::SockRef::from(&socket).set_recv_buffer_size(0) {
            tracing::debug!(error = %e, "cannot shrink a held connection's receive buffer");
        }
        let mut held = self.lock();
        while held.len() >= self.capacity {
            held.pop_front();
        }
        held.push_back(Held {
            due: now + self.hold,
            _socket: socket,
        });
        self.set_gauge(held.len());
        if held.len() == 1 {
            self.arrived.notify_one();
        }
    }

    /// Closes the sockets due by `now`; returns when the next one is due.
    pub(crate) fn release_due(&self, now: Instant) -> Option<Instant> {
        let mut held = self.lock();
        while held.front().is_some_and(|h| h.due <= now) {
            held.pop_front();
        }
        self.set_gauge(held.len());
        held.front().map(|h| h.due)
    }

    /// Closes every socket when it is due, until the task is dropped (sockets still held
    /// then close with the tarpit).
    pub(crate) async fn run(&self) {
        loop {
            // tokio's clock (the same as `Instant::now()` unless a test pauses it).
            match self.release_due(tokio::time::Instant::now().into_std()) {
                Some(due) => tokio::time::sleep_until(due.into()).await,
                None => self.arrived.notified().await,
            }
        }
    }

    /// Sockets held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn set_gauge(&self, len: usize) {
        self.gauge.set(i64::try_from(len).unwrap_or(i64::MAX));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Held>> {
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
        assert_eq!(
            tarpit.release_due(t0 + Duration::from_millis(1999)),
            Some(t0 + Duration::from_secs(2))
        );
        assert!(!sees_close(&mut client), "no close before the hold ends");
        assert_eq!(tarpit.release_due(t0 + Duration::from_secs(2)), None);
        assert_eq!((tarpit.len(), gauge.get()), (0, 0));
        assert!(sees_close(&mut client), "closed once due");
    }

    #[test]
    fn when_full_the_socket_held_longest_closes_early() {
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
        let closed: Vec<bool> = clients.iter_mut().map(sees_close).collect();
        assert_eq!(closed, [true, false, false]);
        // Due in the order they came in.
        assert_eq!(
            tarpit.release_due(t0 + Duration::from_millis(2010)),
            Some(t0 + Duration::from_millis(2020))
        );
        assert_eq!(tarpit.len(), 1);
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
        let (_client, server) = pair(&listener);
        tarpit.hold(server, tokio::time::Instant::now().into_std());
        tokio::time::sleep(Duration::from_millis(1900)).await;
        assert_eq!(tarpit.len(), 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(tarpit.len(), 0);
        runner.abort();
    }
}
