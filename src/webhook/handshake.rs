//! Accepting HTTPS connections and their TLS handshakes, on a thread of their own at a
//! lower CPU priority than the runtime that serves requests.
//!
//! Why: under a connection flood (adversarial test F3: 1,024 idle HTTP/2 connections
//! reopened as soon as they are evicted; 1,100 slowloris connections) the server does
//! ~500-1,000 TLS handshakes a second, ~0.55 ms of CPU each (BENCHMARKS.md, "Webhook
//! under attack"). On the serving runtime those handshakes share the two async workers
//! with the API server's keep-alive connections, so a good review waits behind handshake
//! crypto. Here the accept loop and the handshakes run on a single-threaded runtime whose
//! thread lowers its own priority at start (`setpriority(2)`; on Linux the nice value is
//! a per-thread attribute, `sched(7)`, "The nice value"), and each handshaken connection
//! moves to the serving runtime: established connections get the CPU first, handshakes
//! get what is left.
//!
//! Moving a connection: a tokio socket is registered with the reactor of the runtime that
//! created it. [`Rehomable`], the TLS stream's transport, is detached from the handshake
//! runtime's reactor once the handshake is done (`TcpStream::into_std`, which deregisters
//! it and leaves it non-blocking) and attached to the serving runtime's reactor
//! (`TcpStream::from_std`, which must run inside that runtime) by the connection's task
//! there, before anything reads from it. The TLS session (and anything the client sent
//! after its handshake, buffered in it) stays in the same `TlsStream`: tokio-rustls has no
//! constructor from a transport and a `ServerConnection`, so the transport is replaced in
//! place instead.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::conn::{ConnectionSlots, Slot};
use super::metrics::{ErrorReason, PortLabel, WebhookMetrics};

/// Name of the thread (at most 15 bytes: Linux truncates longer thread names).
pub const THREAD_NAME: &str = "mtls-gate-tls";

/// The highest nice value (lowest priority) on Linux.
const NICEST: i32 = 19;

/// A connection whose TLS handshake is done, on its way to the serving runtime.
pub(crate) struct Handshaken {
    pub tls: TlsStream<Rehomable>,
    pub peer: SocketAddr,
    pub slot: Slot,
}

/// What the accept loop and the handshakes share.
pub(crate) struct Handshakes {
    pub acceptor: TlsAcceptor,
    pub slots: Arc<ConnectionSlots>,
    pub metrics: Arc<WebhookMetrics>,
    pub timeout: Duration,
    /// Handshaken connections, to the serving runtime. Unbounded channel, bounded queue:
    /// every connection in it holds one of the `max_connections` slots.
    pub handshaken: mpsc::UnboundedSender<Handshaken>,
}

/// The accept-and-handshake thread; see [`spawn_thread`].
pub(crate) struct HandshakeThread {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

impl HandshakeThread {
    /// Stops accepting. Resolves once the listener is closed and the handshakes in
    /// progress are dropped (their slots freed), or the thread has ended.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

/// Accepts connections on `listener` and runs their TLS handshakes on a thread of its
/// own whose niceness is raised by `niceness` (0: the server's own priority), until
/// [`HandshakeThread::stop`]. Handshaken connections are sent to `handshakes.handshaken`,
/// detached: the receiver calls [`Rehomable::attach`] on `tls.get_mut().0` inside the
/// runtime that is to serve them.
pub(crate) fn spawn_thread(
    listener: TcpListener,
    handshakes: Handshakes,
    niceness: u8,
) -> io::Result<HandshakeThread> {
    // The listener moves to the handshake runtime's reactor: deregistered here,
    // registered there.
    let listener = listener.into_std()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(THREAD_NAME)
        .build()?;
    let listener = {
        let _entered = runtime.enter();
        TcpListener::from_std(listener)?
    };
    let (stop, stop_rx) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    spawn_niced(THREAD_NAME, niceness, move || {
        runtime.block_on(accept_loop(listener, Arc::new(handshakes), stop_rx));
        // Handshakes still in progress are dropped with the runtime, and with them their
        // sockets and slots; the listener was dropped when the accept loop returned.
        drop(runtime);
        let _ = done_tx.send(());
    })?;
    Ok(HandshakeThread { stop, done })
}

/// Starts a thread named `name` that raises its own niceness by `niceness` (capped at
/// 19) before running `body`. If the priority cannot be changed, the thread logs why once
/// and runs `body` at the priority it has.
fn spawn_niced<T: Send + 'static>(
    name: &str,
    niceness: u8,
    body: impl FnOnce() -> T + Send + 'static,
) -> io::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if niceness > 0 {
                match lower_this_thread_priority(niceness) {
                    Ok(nice) => tracing::debug!(nice, "TLS handshake thread priority lowered"),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "cannot lower the TLS handshake thread's priority; handshakes run at \
                         the priority of established connections"
                    ),
                }
            }
            body()
        })
}

/// Raises the calling thread's nice value by `increment` (capped at 19, the lowest
/// priority). Lowering a priority needs no privilege (`setpriority(2)`). Returns the new
/// nice value.
#[cfg(target_os = "linux")]
fn lower_this_thread_priority(increment: u8) -> io::Result<i32> {
    let target = (thread_niceness()? + i32::from(increment)).min(NICEST);
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::gettid() };
    let who = libc::id_t::try_from(tid).map_err(|_| io::Error::other("negative thread id"))?;
    // SAFETY: setpriority takes plain integers and touches no memory of ours. With
    // PRIO_PROCESS and a thread id, Linux changes that thread only.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, who, target) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(target)
}

#[cfg(not(target_os = "linux"))]
fn lower_this_thread_priority(_increment: u8) -> io::Result<i32> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "per-thread priorities are implemented for Linux only",
    ))
}

/// The calling thread's nice value, from `/proc/thread-self/stat` (field 19, `proc(5)`).
/// Read there rather than with `getpriority(2)`, whose -1 is both a nice value and an
/// error.
pub fn thread_niceness() -> io::Result<i32> {
    stat_niceness(&std::fs::read_to_string("/proc/thread-self/stat")?)
}

/// The nice value in the text of a `/proc/<pid>/task/<tid>/stat` file. Field 2, the
/// command name, is in parentheses and may hold spaces and parentheses itself, so the
/// fields are counted after its last `)`: field 3 is the first there, field 19 the 17th.
pub fn stat_niceness(stat: &str) -> io::Result<i32> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("stat: {what}"));
    let after_name = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| bad("no command name"))?;
    after_name
        .split_ascii_whitespace()
        .nth(19 - 3)
        .ok_or_else(|| bad("fewer than 19 fields"))?
        .parse()
        .map_err(|_| bad("field 19 (nice) is not a number"))
}

async fn accept_loop(
    listener: TcpListener,
    handshakes: Arc<Handshakes>,
    mut stop: oneshot::Receiver<()>,
) {
    let port = PortLabel { port: "webhook" };
    let metrics = &handshakes.metrics;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut stop => return,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                metrics.error(ErrorReason::Accept);
                tracing::warn!(error = %e, "accept failed on the webhook port");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (slot, evicted) = tokio::select! {
            biased;
            _ = &mut stop => return,
            s = handshakes.slots.acquire() => s,
        };
        if evicted > 0 {
            metrics
                .connections_evicted
                .get_or_create(&port)
                .inc_by(evicted);
        }
        let _ = tcp.set_nodelay(true);
        tokio::spawn(handshake(tcp, peer, handshakes.clone(), slot));
    }
}

/// Runs the TLS handshake of one connection within the handshake timeout (or until the
/// slot table evicts it), then hands it, detached, to the serving runtime.
async fn handshake(tcp: TcpStream, peer: SocketAddr, handshakes: Arc<Handshakes>, slot: Slot) {
    let metrics = &handshakes.metrics;
    let activity = slot.activity();
    let accept = tokio::time::timeout(
        handshakes.timeout,
        handshakes.acceptor.accept(Rehomable::new(tcp)),
    );
    let mut tls = tokio::select! {
        r = accept => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                metrics.error(ErrorReason::TlsHandshake);
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                metrics.error(ErrorReason::TlsHandshakeTimeout);
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = activity.evicted() => return,
    };
    if let Err(e) = tls.get_mut().0.detach() {
        metrics.error(ErrorReason::Accept);
        tracing::warn!(%peer, error = %e, "cannot detach a handshaken connection");
        return;
    }
    // The receiver is gone only once the server stopped accepting: the connection closes.
    let _ = handshakes.handshaken.send(Handshaken { tls, peer, slot });
}

/// A TCP connection that can move from one tokio runtime's reactor to another's.
pub(crate) struct Rehomable(Transport);

enum Transport {
    /// Registered with the reactor of the runtime that polls it.
    Registered(TcpStream),
    /// Between two runtimes: registered with none. Not readable or writable.
    Detached(std::net::TcpStream),
    /// A move failed; the socket is closed.
    Gone,
}

impl Rehomable {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Self(Transport::Registered(tcp))
    }

    /// Deregisters the socket from the current runtime's reactor.
    pub(crate) fn detach(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.0, Transport::Gone) {
            Transport::Registered(tcp) => {
                self.0 = Transport::Detached(tcp.into_std()?);
                Ok(())
            }
            other => {
                self.0 = other;
                Ok(())
            }
        }
    }

    /// Registers the socket with the reactor of the runtime this is called in.
    ///
    /// # Panics
    /// Outside a tokio runtime with IO enabled (`TcpStream::from_std`).
    pub(crate) fn attach(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.0, Transport::Gone) {
            // `into_std` left it non-blocking, as `from_std` requires.
            Transport::Detached(std) => {
                self.0 = Transport::Registered(TcpStream::from_std(std)?);
                Ok(())
            }
            Transport::Registered(tcp) => {
                self.0 = Transport::Registered(tcp);
                Ok(())
            }
            Transport::Gone => Err(not_registered()),
        }
    }

    fn registered(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match &mut self.0 {
            Transport::Registered(tcp) => Ok(Pin::new(tcp)),
            _ => Err(not_registered()),
        }
    }
}

fn not_registered() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection not registered with a runtime",
    )
}

impl AsyncRead for Rehomable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().registered() {
            Ok(tcp) => tcp.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Rehomable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().registered() {
            Ok(tcp) => tcp.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().registered() {
            Ok(tcp) => tcp.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().registered() {
            Ok(tcp) => tcp.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().registered() {
            Ok(tcp) => tcp.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn nice_value_is_field_19_of_stat() {
        // proc(5) layout; the command name may hold spaces and parentheses.
        let fields_3_to_18 = "S 1 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20";
        for (stat, nice) in [
            (format!("1234 (mtls-gate-tls) {fields_3_to_18} 10 3 0"), 10),
            (format!("1234 (a (b) c) {fields_3_to_18} -5 3 0"), -5),
            (format!("1234 (x) {fields_3_to_18} 0"), 0),
        ] {
            assert_eq!(stat_niceness(&stat).unwrap(), nice, "{stat}");
        }
        for bad in [
            "".to_string(),
            "1234 no-name S 1".to_string(),
            format!("1234 (x) {fields_3_to_18}"),
            format!("1234 (x) {fields_3_to_18} ten"),
        ] {
            assert!(stat_niceness(&bad).is_err(), "{bad}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_handshake_thread_runs_at_a_lower_priority() {
        let own = thread_niceness().unwrap();
        for increment in [10, 3, 0] {
            let niced = spawn_niced("niceness-test", increment, thread_niceness)
                .unwrap()
                .join()
                .unwrap()
                .unwrap();
            assert_eq!(
                niced,
                (own + i32::from(increment)).min(NICEST),
                "+{increment}"
            );
        }
        // Only the new thread changed: nice values are per thread on Linux.
        assert_eq!(thread_niceness().unwrap(), own);
    }

    /// A connection accepted on one runtime keeps working on another once moved.
    #[test]
    fn a_connection_moves_between_runtimes() {
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (mut moving, client) = first.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap());
            let (client, accepted) = tokio::join!(client, listener.accept());
            let mut moving = Rehomable::new(accepted.unwrap().0);
            moving.write_all(b"before").await.unwrap();
            moving.detach().unwrap();
            (moving, client.unwrap().into_std().unwrap())
        });
        // Detached: neither readable nor writable.
        let detached = first.block_on(moving.write_all(b"x")).unwrap_err();
        assert_eq!(detached.kind(), io::ErrorKind::NotConnected);
        // The first runtime is gone before the connection is used again.
        drop(first);
        second.block_on(async {
            moving.attach().unwrap();
            let mut client = TcpStream::from_std(client).unwrap();
            let mut got = [0u8; 6];
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"before");
            client.write_all(b"after").await.unwrap();
            let mut got = [0u8; 5];
            moving.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"after");
            moving.write_all(b"!").await.unwrap();
            let mut got = [0u8; 1];
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"!");
        });
    }
}
