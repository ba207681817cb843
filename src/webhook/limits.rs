//! Limits and timeouts of the webhook and probe servers (design §8, "available under
//! attack"), and the command-line flags that set them.
//!
//! Every resource a client can make the server hold is bounded by one of these values,
//! never by what the client sends: connections (both ports), HTTP/2 streams per
//! connection, header bytes, buffered body bytes (all bodies together), decoded review
//! size, review workers, and the time each stage may take. Sources for the defaults:
//! the chart's `timeoutSeconds: 5` (review deadline below it), design §8 (4 MiB bodies),
//! design §7 (16 MiB extra memory per review), hyper's defaults (16 KiB HTTP/2 header list).

use std::time::Duration;

use clap::Args;

use crate::controller::args::parse_duration;

/// Limits and timeouts of the webhook server. `Default` gives production values.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body (413 beyond). Default 4 MiB (design §8).
    pub max_body_bytes: usize,
    /// An oversize body is read and thrown away up to this many further bytes before the
    /// 413 is sent, so a client that streams its body without `Expect: 100-continue` can
    /// read the answer instead of a connection reset. Beyond, the connection is closed.
    /// Default 4 MiB (an 8 MiB body still gets a readable 413).
    pub max_discard_bytes: usize,
    /// All request bodies being received or waiting for review, together. A chunk that
    /// does not fit gets 503. Default 32 MiB.
    pub body_memory_bytes: usize,
    /// Estimated memory one decoded AdmissionReview may take (413 beyond, before decoding).
    /// Default 16 MiB (design §7: ≤ 16 MiB extra memory per review).
    pub max_decoded_bytes: usize,
    /// HTTP/1.1: time allowed to receive a request header. hyper also applies it between
    /// requests on a keep-alive connection, so it is the HTTP/1.1 idle timeout too.
    /// HTTP/2: time allowed between the TLS handshake and the first request.
    /// Before a connection's first request, each connection gets between half and all of
    /// it (spread by connection, `webhook::conn`), so that connections that arrived
    /// together do not all close, and reconnect, together. Default 10 s.
    pub header_read_timeout: Duration,
    /// Largest request header (HTTP/1.1 header section, HTTP/2 header list). Default 16 KiB.
    pub max_header_bytes: usize,
    /// Time allowed to receive a whole request body once its header arrived (408 beyond).
    /// Default 10 s.
    pub body_read_timeout: Duration,
    /// After `body_rate_grace`, a body must arrive at least this fast on average
    /// (bytes/s), or it gets 408. Default 16 KiB/s: the API server sends at network speed,
    /// a trickling client is cut off after about two seconds, not ten.
    pub min_body_rate: u64,
    /// All request bodies together are read at most this fast (bytes/s) beyond their first
    /// `max_decoded_bytes / 128` bytes (the large ones), so that clients sending large
    /// bodies take a bounded share of the CPU (`webhook::body::BodyPace`). 0: unpaced.
    /// Default 64 MiB/s.
    pub large_body_read_rate: u64,
    /// Start-up time before `min_body_rate` applies. Default 2 s.
    pub body_rate_grace: Duration,
    /// Time allowed for the TLS handshake. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// An HTTP/2 connection with no request in flight for this long gets GOAWAY.
    /// Default 90 s.
    pub idle_timeout: Duration,
    /// After GOAWAY (idle or shutdown), a connection is dropped if it has not closed
    /// within this time (a client that never acknowledges cannot hold it). Default 5 s.
    pub close_grace: Duration,
    /// Open HTTPS connections (TLS handshakes included). At the limit, a new connection
    /// closes the connection that has been idle longest (no request in flight; handshakes
    /// and header reads count as idle); when every connection is busy it waits in the
    /// listen backlog. Default 1024.
    pub max_connections: usize,
    /// A connection evicted before it completed a request (a slow or silent client) is
    /// held open, unread, for between half and all of this (spread over the connections
    /// evicted, so that those evicted together are not released together) before it
    /// closes, so that its client does not reconnect at once and evict the next
    /// (`webhook::tarpit`). Zero closes it at once. Default 2 s.
    pub evicted_hold: Duration,
    /// Evicted connections held at once; beyond, the one due first closes early.
    /// Each costs a file descriptor and kernel socket memory (its receive buffer is shrunk
    /// to the kernel's minimum, but a client may still fill the window it was last
    /// offered, tens of KiB, and in cgroup v2 that counts against the pod's memory), no
    /// memory of this process. Default 256 (three times what 1,100 slowloris connections
    /// keep held, BENCHMARKS.md stop 28).
    pub max_held_evicted: usize,
    /// Admission requests whose body is complete and that wait for or hold a review
    /// worker; beyond, 503. Default 64.
    pub max_in_flight: usize,
    /// Reviews (decode + handler) running at once, on the blocking thread pool, off the
    /// async workers. Reviews of bodies large enough to need the decoded-size estimate
    /// (over `max_decoded_bytes / 128`) may take only half of them (at least one), so
    /// that ordinary reviews find a worker while large bodies are scanned. Default 4.
    pub review_workers: usize,
    /// A review not answered within this time after its body arrived is denied (fail
    /// closed, uid echoed). Must stay below the webhook's `timeoutSeconds` (chart: 5 s).
    /// Default 3 s.
    pub review_deadline: Duration,
    /// HTTP/2 streams per connection. Default 32.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 PING interval on connections (dead peers are found and dropped). Default 20 s.
    pub http2_keep_alive_interval: Duration,
    /// HTTP/2 PING acknowledgement timeout. Default 10 s.
    pub http2_keep_alive_timeout: Duration,
    /// HTTP/2 flow-control window per connection (bounds data buffered per connection
    /// before the server reads it). Default 256 KiB.
    pub http2_connection_window: u32,
    /// HTTP/2 flow-control window per stream. Default 128 KiB.
    pub http2_stream_window: u32,
    /// After shutdown is requested, how long in-flight requests may take to finish before
    /// the remaining connections are dropped. Default 15 s.
    pub drain_timeout: Duration,
    /// The probe port's own limits.
    pub probe: ProbeLimits,
}

/// Limits of the plain-HTTP probe port (`/healthz`, `/readyz`, `/metrics`). Probes are
/// tiny GETs, so these are small: an idle or slow client is cut off quickly and cannot
/// take a slot the kubelet needs for long.
#[derive(Debug, Clone)]
pub struct ProbeLimits {
    /// Open probe connections. At the limit, a new connection closes the connection idle
    /// longest. Default 64.
    pub max_connections: usize,
    /// Time to receive a request header, and HTTP/1.1 keep-alive idle time (before the
    /// first request, between half and all of it, as on the HTTPS port). Default 2 s
    /// (the chart's probe timeout).
    pub header_read_timeout: Duration,
    /// Largest request header. Default 8 KiB.
    pub max_header_bytes: usize,
    /// Time to write one response to a client that does not read it. Default 5 s.
    pub response_timeout: Duration,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(2),
            max_header_bytes: 8 * 1024,
            response_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_discard_bytes: 4 * 1024 * 1024,
            body_memory_bytes: 32 * 1024 * 1024,
            max_decoded_bytes: 16 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            body_read_timeout: Duration::from_secs(10),
            min_body_rate: 16 * 1024,
            large_body_read_rate: 64 * 1024 * 1024,
            body_rate_grace: Duration::from_secs(2),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            close_grace: Duration::from_secs(5),
            max_connections: 1024,
            evicted_hold: Duration::from_secs(2),
            max_held_evicted: 256,
            max_in_flight: 64,
            review_workers: 4,
            review_deadline: Duration::from_secs(3),
            http2_max_concurrent_streams: 32,
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_keep_alive_timeout: Duration::from_secs(10),
            http2_connection_window: 256 * 1024,
            http2_stream_window: 128 * 1024,
            drain_timeout: Duration::from_secs(15),
            probe: ProbeLimits::default(),
        }
    }
}

/// Flags (each with an environment variable) for the limits an operator may need to
/// tune; the others keep their defaults. Shared by `mtls-gate run` and `mtls-gate webhook`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Webhook limits")]
pub struct LimitArgs {
    /// Open HTTPS connections; at the limit a new connection closes the one idle longest.
    #[arg(long, env = "MTLS_GATE_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_048_576), value_name = "N")]
    pub max_connections: u32,

    /// How long a connection evicted before its first request is held open, unread,
    /// before it closes (its client then does not reconnect at once); each is held for
    /// between half and all of it, spread so that those evicted together are not released
    /// together; 0s closes it at once.
    #[arg(long, env = "MTLS_GATE_EVICTED_HOLD", default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub evicted_hold: Duration,

    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, env = "MTLS_GATE_HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024), value_name = "N")]
    pub http2_max_concurrent_streams: u32,

    /// Time to receive a request header (HTTP/1.1; also its keep-alive idle time) or the
    /// first request of an HTTP/2 connection. A connection's first request gets between
    /// half and all of it, spread by connection so that a burst of idle connections does
    /// not time out (and reconnect) at once.
    #[arg(long, env = "MTLS_GATE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub header_read_timeout: Duration,

    /// Time to receive a whole request body.
    #[arg(long, env = "MTLS_GATE_BODY_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub body_read_timeout: Duration,

    /// Slowest accepted average body rate in bytes/s, enforced after the first 2 s.
    #[arg(
        long,
        env = "MTLS_GATE_MIN_BODY_RATE",
        default_value_t = 16384,
        value_name = "BYTES"
    )]
    pub min_body_rate: u64,

    /// How fast all request bodies together are read beyond their first 128 KiB, in
    /// bytes/s (Ki, Mi suffixes allowed; 0: unlimited): bounds the CPU that clients
    /// sending large bodies can take from ordinary reviews.
    #[arg(long, env = "MTLS_GATE_LARGE_BODY_READ_RATE", default_value = "64Mi", value_parser = parse_bytes, value_name = "BYTES")]
    pub large_body_read_rate: usize,

    /// An HTTP/2 connection without a request in flight for this long is closed.
    #[arg(long, env = "MTLS_GATE_IDLE_TIMEOUT", default_value = "90s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,

    /// Memory for all request bodies being received or waiting for review (bytes; Ki, Mi
    /// suffixes allowed). A body that does not fit gets 503.
    #[arg(long, env = "MTLS_GATE_BODY_MEMORY_LIMIT", default_value = "32Mi", value_parser = parse_bytes, value_name = "BYTES")]
    pub body_memory_limit: usize,

    /// Reviews running at once on the blocking thread pool.
    #[arg(long, env = "MTLS_GATE_REVIEW_WORKERS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256), value_name = "N")]
    pub review_workers: u32,

    /// A review not answered this long after its body arrived is denied (fail closed).
    /// Keep it below the webhooks' timeoutSeconds.
    #[arg(long, env = "MTLS_GATE_REVIEW_DEADLINE", default_value = "3s", value_parser = parse_duration, value_name = "DURATION")]
    pub review_deadline: Duration,

    /// Open connections on the probe port; at the limit a new one closes the one idle longest.
    #[arg(long, env = "MTLS_GATE_PROBE_MAX_CONNECTIONS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_536), value_name = "N")]
    pub probe_max_connections: u32,
}

/// The longest connection timeout or hold the flags accept.
const MAX_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

impl LimitArgs {
    /// The server limits these flags describe (the rest at their defaults).
    pub fn limits(&self) -> Limits {
        let mut limits = Limits {
            max_connections: self.max_connections as usize,
            evicted_hold: self.evicted_hold,
            http2_max_concurrent_streams: self.http2_max_concurrent_streams,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            min_body_rate: self.min_body_rate,
            large_body_read_rate: self.large_body_read_rate as u64,
            idle_timeout: self.idle_timeout,
            body_memory_bytes: self.body_memory_limit,
            review_workers: self.review_workers as usize,
            review_deadline: self.review_deadline,
            ..Limits::default()
        };
        limits.probe.max_connections = self.probe_max_connections as usize;
        limits
    }

    /// Checks relations between the flags that clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.review_deadline.is_zero() {
            return Err("--review-deadline must be positive".into());
        }
        if self.review_deadline >= Duration::from_secs(30) {
            return Err(format!(
                "--review-deadline ({:?}) must be below the webhooks' timeoutSeconds (at most 30 s)",
                self.review_deadline
            ));
        }
        for (flag, d) in [
            ("--header-read-timeout", self.header_read_timeout),
            ("--body-read-timeout", self.body_read_timeout),
            ("--idle-timeout", self.idle_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("{flag} must be positive"));
            }
        }
        // Longer would let a client hold a connection slot (or a held socket) for longer
        // than any API server waits for an answer, and past what the clocks can add.
        for (flag, d) in [
            ("--header-read-timeout", self.header_read_timeout),
            ("--body-read-timeout", self.body_read_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--evicted-hold", self.evicted_hold),
        ] {
            if d > MAX_CONNECTION_TIMEOUT {
                return Err(format!(
                    "{flag} ({d:?}) must be at most {MAX_CONNECTION_TIMEOUT:?}"
                ));
            }
        }
        let max_body = Limits::default().max_body_bytes;
        if self.body_memory_limit < max_body {
            return Err(format!(
                "--body-memory-limit ({}) must hold at least one largest body ({max_body} bytes)",
                self.body_memory_limit
            ));
        }
        Ok(())
    }
}

/// Parses a byte count: `33554432`, `32Mi`, `512Ki`, `1Gi`.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let s = text.trim();
    let (digits, scale) = match s.len().checked_sub(2).map(|i| s.split_at(i)) {
        Some((d, "Ki")) => (d, 1usize << 10),
        Some((d, "Mi")) => (d, 1 << 20),
        Some((d, "Gi")) => (d, 1 << 30),
        _ => (s, 1),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a byte count such as 33554432 or 32Mi"))?;
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("32Mi"), Ok(32 << 20));
        assert_eq!(parse_bytes("512Ki"), Ok(512 << 10));
        assert_eq!(parse_bytes("1Gi"), Ok(1 << 30));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        for bad in ["", "Mi", "32MB", "-1", "1.5Mi"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let args = Cli::try_parse_from(["x"]).unwrap().limits;
        assert!(args.validate().is_ok());
        let from_flags = format!("{:?}", args.limits());
        assert_eq!(from_flags, format!("{:?}", Limits::default()));
    }

    #[test]
    fn flags_set_the_limits_and_bad_values_are_refused() {
        let args = Cli::try_parse_from([
            "x",
            "--max-connections=2048",
            "--evicted-hold=500ms",
            "--http2-max-concurrent-streams=8",
            "--header-read-timeout=5s",
            "--body-read-timeout=20s",
            "--min-body-rate=1024",
            "--large-body-read-rate=8Mi",
            "--idle-timeout=1m",
            "--body-memory-limit=64Mi",
            "--review-workers=8",
            "--review-deadline=2500ms",
            "--probe-max-connections=16",
        ])
        .unwrap()
        .limits;
        assert!(args.validate().is_ok());
        let l = args.limits();
        assert_eq!(l.max_connections, 2048);
        assert_eq!(l.evicted_hold, Duration::from_millis(500));
        assert_eq!(l.http2_max_concurrent_streams, 8);
        assert_eq!(l.header_read_timeout, Duration::from_secs(5));
        assert_eq!(l.body_read_timeout, Duration::from_secs(20));
        assert_eq!(l.min_body_rate, 1024);
        assert_eq!(l.large_body_read_rate, 8 << 20);
        assert_eq!(l.idle_timeout, Duration::from_secs(60));
        assert_eq!(l.body_memory_bytes, 64 << 20);
        assert_eq!(l.review_workers, 8);
        assert_eq!(l.review_deadline, Duration::from_millis(2500));
        assert_eq!(l.probe.max_connections, 16);

        for bad in [
            "--max-connections=0",
            "--review-workers=0",
            "--body-memory-limit=lots",
        ] {
            assert!(Cli::try_parse_from(["x", bad]).is_err(), "{bad}");
        }
        for (bad, message) in [
            ("--review-deadline=0s", "--review-deadline"),
            ("--review-deadline=45s", "timeoutSeconds"),
            ("--body-memory-limit=1Mi", "--body-memory-limit"),
            ("--idle-timeout=0s", "--idle-timeout"),
            (
                "--header-read-timeout=18446744073709551615",
                "--header-read-timeout",
            ),
            ("--body-read-timeout=2h", "at most 3600s"),
            ("--idle-timeout=61m", "--idle-timeout"),
            ("--evicted-hold=1h1s", "--evicted-hold"),
        ] {
            let args = Cli::try_parse_from(["x", bad]).unwrap().limits;
            let err = args.validate().unwrap_err();
            assert!(err.contains(message), "{bad}: {err}");
        }
    }

    #[test]
    fn help_documents_every_limit_flag_and_its_environment_variable() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for arg in Cli::command().get_arguments() {
            if arg.get_id() == "help" {
                continue;
            }
            let flag = format!("--{}", arg.get_long().unwrap_or_default());
            assert!(help.contains(&flag), "{flag} missing from --help");
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_default();
            assert!(env.starts_with("MTLS_GATE_"), "{flag} has no env variable");
            assert!(help.contains(&format!("env: {env}")), "{env} not in --help");
            assert!(arg.get_help().is_some(), "{flag} has no help");
        }
    }
}
