//! Runtimes of their own for the parts of the server that must not share a run queue with
//! the review path, the TCP stream that lets a connection move between them, and the
//! lower-priority threads of large reviews ([`BackgroundPool`]).
//!
//! Tokio has no task priorities: every task of a runtime waits in the same queues. Under a
//! connection flood (adversarial test F3, F7) those queues are full of TLS handshakes,
//! ~150 µs of CPU each, and a request on an established connection waits behind them. The
//! operating system's scheduler, by contrast, runs a thread that mostly sleeps soon after
//! it wakes. So the probe port (one thread) and the intake of new HTTPS connections
//! (accept, TLS handshake, the wait for the first request; as many workers as the serving
//! runtime) each run on a runtime of their own, and a connection moves to the serving
//! runtime once its client has sent a request. Measured (BENCHMARKS.md, stop 27): under
//! 1,100 slowloris connections the keep-alive review p99 went from 15-28 ms to 8-10 ms.
//!
//! The intake's accept loop is a task of the intake runtime, not of a thread of its own:
//! it then takes turns with the handshakes it starts, so it accepts only as fast as they
//! are done. A loop that accepts faster fills the connection slots with connections
//! waiting for a handshake, which evicts established ones, and a good client's handshake
//! waits behind all of them (BENCHMARKS.md, "Handshakes at a lower CPU priority":
//! new-connection p99 0.6-0.8 s).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A server loop running on a thread of its own; see [`ServerThread::spawn`].
pub(crate) struct ServerThread {
    /// `None` once it has resolved.
    done: Option<oneshot::Receiver<()>>,
}

impl ServerThread {
    /// Runs `run(listener)` to its end on a runtime of its own: one thread named `name`
    /// when `workers` is 1, else that thread and `workers` worker threads. The loop runs
    /// as a task of that runtime, so that it takes turns with the tasks it spawns (for the
    /// intake: it accepts only as fast as handshakes are done). The listener moves to that
    /// runtime's reactor (deregistered here, registered there). Tasks the loop spawned and
    /// left running are dropped with the runtime when the loop returns. Returns once the
    /// loop has started.
    pub(crate) async fn spawn<F, Fut>(
        name: &str,
        workers: usize,
        listener: TcpListener,
        run: F,
    ) -> io::Result<ServerThread>
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = listener.into_std()?;
        let (started_tx, started) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let thread_name = name.to_string();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // Built and dropped here, never on an async worker (dropping a runtime
                // there panics).
                let mut builder = if workers > 1 {
                    let mut builder = tokio::runtime::Builder::new_multi_thread();
                    builder.worker_threads(workers);
                    builder
                } else {
                    tokio::runtime::Builder::new_current_thread()
                };
                let runtime = match builder.enable_all().thread_name(thread_name).build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                let listener = {
                    let _entered = runtime.enter();
                    TcpListener::from_std(listener)
                };
                match listener {
                    Ok(listener) => {
                        let _ = started_tx.send(Ok(()));
                        // A panic of the loop ends the thread as its return does.
                        let _ = runtime.block_on(async { tokio::spawn(run(listener)).await });
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                    }
                }
                drop(runtime);
                let _ = done_tx.send(());
            })?;
        started
            .await
            .map_err(|_| io::Error::other(format!("thread {name} ended while starting")))??;
        Ok(ServerThread { done: Some(done) })
    }

    /// Resolves once the loop has returned and its runtime is dropped, or the thread
    /// ended otherwise (a panic); at once when it resolved before.
    pub(crate) async fn stopped(&mut self) {
        if let Some(done) = self.done.as_mut() {
            let _ = done.await;
            self.done = None;
        }
    }
}

/// Blocking threads at a lower CPU priority than the rest of the process, for work that
/// may wait while the machine is busy: the reviews of large bodies, which first scan up to
/// 4 MiB of JSON for its decoded size (adversarial test F3: four clients sending crafted
/// 4 MiB reviews kept two review workers busy with that scan, and ordinary reviews waited
/// for the CPU behind them). On Linux a nice value is per thread, so these threads yield
/// the CPU to the serving and review threads without a change of the process's priority
/// (raising a nice value needs no privilege; lowering it back would, so the threads are
/// never reused for other work). Elsewhere the threads run at the process's priority.
pub(crate) struct BackgroundPool {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl BackgroundPool {
    /// At most `threads` threads named `name`, each `niceness` above the process's nice
    /// value (at most 19).
    pub(crate) fn new(name: &str, threads: usize, niceness: i32) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .thread_name(name)
            .max_blocking_threads(threads.max(1))
            .on_thread_start(move || lower_priority(niceness))
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Runs `work` on one of the pool's threads.
    pub(crate) fn spawn_blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> tokio::task::JoinHandle<R> {
        match &self.runtime {
            Some(runtime) => runtime.spawn_blocking(work),
            // Not reachable: the runtime is taken only in `drop`.
            None => tokio::task::spawn_blocking(work),
        }
    }
}

impl Drop for BackgroundPool {
    fn drop(&mut self) {
        // Without waiting for running work: dropping a runtime inside another one would
        // block (and panic).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Raises the calling thread's nice value by `niceness` (Linux: per thread).
fn lower_priority(niceness: i32) {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let thread = Some(rustix::thread::gettid());
        let lowered = getpriority_process(thread)
            .and_then(|now| setpriority_process(thread, now.saturating_add(niceness).min(19)));
        if let Err(e) = lowered {
            // Once: the pool starts a thread again after each idle spell.
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    error = %e,
                    "cannot lower the CPU priority of the large-review threads; they run at the process's"
                );
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = niceness;
}

/// Raises the process's soft limit of open files to its hard limit, as Go programs do at
/// start (Go 1.19 release notes, "os"), and warns when it stays below `needed`: each
/// connection, held evicted connection and listener takes a descriptor, and at the limit
/// `accept` fails (EMFILE) and new connections wait. A container's soft limit is often
/// 1,024 where its hard limit is far higher. Returns the soft limit now (`None`:
/// unlimited or not Linux).
pub(crate) fn raise_open_file_limit(needed: u64) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current.is_some() && limit.current != limit.maximum {
            let raised = Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::debug!(error = %e, "cannot raise the open file limit");
            }
        }
        let current = getrlimit(Resource::Nofile).current;
        if let Some(current) = current.filter(|c| *c < needed) {
            tracing::warn!(
                limit = current,
                needed,
                "the open file limit is below what the webhook may hold at once; new connections may wait at the limit: raise the container's nofile limit or lower --max-connections"
            );
        }
        current
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = needed;
        None
    }
}

/// A TCP stream that can move from one runtime's reactor to another's: [`detach`] on the
/// runtime it is registered with, send it, [`attach`] on the other. It is usable only
/// while attached; reads and writes in between fail (they cannot happen: the stream is in
/// flight to the other runtime).
///
/// [`detach`]: MovableTcp::detach
/// [`attach`]: MovableTcp::attach
#[derive(Debug)]
pub(crate) struct MovableTcp(Registration);

#[derive(Debug)]
enum Registration {
    Attached(TcpStream),
    Detached(std::net::TcpStream),
    /// A move failed; the socket is closed.
    Lost,
}

impl MovableTcp {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Self(Registration::Attached(tcp))
    }

    /// Deregisters the stream from the current runtime's reactor.
    pub(crate) fn detach(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.0, Registration::Lost) {
            Registration::Attached(tcp) => {
                self.0 = Registration::Detached(tcp.into_std()?);
                Ok(())
            }
            other => {
                self.0 = other;
                Err(not_attached())
            }
        }
    }

    /// Registers the stream with the reactor of the runtime this is called on.
    pub(crate) fn attach(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.0, Registration::Lost) {
            Registration::Detached(std) => {
                self.0 = Registration::Attached(TcpStream::from_std(std)?);
                Ok(())
            }
            other => {
                self.0 = other;
                Err(io::Error::other("the connection is not detached"))
            }
        }
    }

    /// The socket, deregistered from any reactor.
    pub(crate) fn into_std(self) -> io::Result<std::net::TcpStream> {
        match self.0 {
            Registration::Attached(tcp) => tcp.into_std(),
            Registration::Detached(std) => Ok(std),
            Registration::Lost => Err(not_attached()),
        }
    }

    /// Waits until the stream is readable (see [`TcpStream::readable`]).
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.attached()?.readable().await
    }

    fn attached(&self) -> io::Result<&TcpStream> {
        match &self.0 {
            Registration::Attached(tcp) => Ok(tcp),
            _ => Err(not_attached()),
        }
    }

    fn attached_mut(self: Pin<&mut Self>) -> io::Result<Pin<&mut TcpStream>> {
        match &mut self.get_mut().0 {
            Registration::Attached(tcp) => Ok(Pin::new(tcp)),
            _ => Err(not_attached()),
        }
    }
}

fn not_attached() -> io::Error {
    io::Error::other("the connection is between runtimes")
}

impl AsyncRead for MovableTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.attached_mut() {
            Ok(tcp) => tcp.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for MovableTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.attached_mut() {
            Ok(tcp) => tcp.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.attached_mut() {
            Ok(tcp) => tcp.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.attached().is_ok_and(|tcp| tcp.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.attached_mut() {
            Ok(tcp) => tcp.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.attached_mut() {
            Ok(tcp) => tcp.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let hard = getrlimit(Resource::Nofile).maximum;
        // One below the hard limit first (harmless to the other tests), so that the raise
        // has something to do.
        if let Some(h) = hard.filter(|h| *h > 1) {
            let lowered = Rlimit {
                current: Some(h - 1),
                maximum: hard,
            };
            setrlimit(Resource::Nofile, lowered).unwrap();
        }
        assert_eq!(raise_open_file_limit(64), hard);
        assert_eq!(getrlimit(Resource::Nofile).current, hard);
    }

    /// A stream detached on one runtime and attached on another keeps working there, and
    /// fails (no panic) in between.
    #[tokio::test]
    async fn a_stream_moves_between_runtimes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut moving = MovableTcp::new(server);
        moving.detach().unwrap();
        let mut buf = [0u8; 4];
        assert!(moving.read(&mut buf).await.is_err(), "detached: no reads");
        assert!(moving.detach().is_err(), "detached twice");

        client.write_all(b"ping").await.unwrap();
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                moving.attach().unwrap();
                let mut buf = [0u8; 4];
                moving.read_exact(&mut buf).await.unwrap();
                moving.write_all(b"pong").await.unwrap();
                let _ = tx.send(buf);
            });
        });
        assert_eq!(&rx.await.unwrap(), b"ping");
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"pong");
    }

    /// The nice value of the calling thread, from `/proc/thread-self/stat` (field 19).
    #[cfg(target_os = "linux")]
    fn thread_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // After the command name in parentheses: state is field 3, nice field 19.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn background_threads_run_at_a_lower_priority_than_the_rest() {
        let pool = BackgroundPool::new("test-background", 1, 10).unwrap();
        let here = thread_nice();
        let there = pool.spawn_blocking(thread_nice).await.unwrap();
        assert_eq!(there, (here + 10).min(19));
        // The caller's priority is untouched.
        assert_eq!(thread_nice(), here);
        drop(pool);
    }

    #[tokio::test]
    async fn a_server_thread_runs_its_loop_and_reports_its_end() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut thread = ServerThread::spawn("test-server", 2, listener, |listener| async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tcp.write_all(b"hi").await.unwrap();
        })
        .await
        .unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut hi = Vec::new();
        client.read_to_end(&mut hi).await.unwrap();
        assert_eq!(hi, b"hi");
        tokio::time::timeout(std::time::Duration::from_secs(5), thread.stopped())
            .await
            .expect("the loop returned, so the thread ends");
    }
}
