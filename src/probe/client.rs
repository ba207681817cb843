//! One probe attempt: a fresh TCP connection, a fresh TLS session (no resumption, SNI = the
//! URL's host), one `GET` without body or credentials over HTTP/1.1, and the classification
//! of what came back (design.md §11).
//!
//! Facts relied on:
//! * nginx with `ssl_verify_client on` completes the handshake and answers HTTP 400 "No
//!   required SSL certificate was sent" (internal code 496) or "The SSL certificate error"
//!   (495) (nginx `ngx_http_special_response.c`, `ngx_http_request.c`).
//! * OpenSSL-based servers that reject at the TLS layer (HAProxy `verify required`) send a
//!   fatal alert: `handshake_failure` in TLS 1.2, and in TLS 1.3 `certificate_required`
//!   *after* the client's handshake has completed (RFC 8446 §4.4.2.4), so the client sees it
//!   only on its first read: rustls then returns `Error::AlertReceived` from that read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::{AlertDescription, ClientConfig};
use rustls_pki_types::ServerName;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What one request met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// An HTTP response that is not a certificate error.
    Response,
    /// A TLS alert about certificates, or an HTTP client-certificate error.
    RefusedCertificate,
    /// The server answered but refused for another reason (TLS failure, closed connection).
    RefusedOther,
    /// No connection could be made (name resolution, connection refused, no route).
    Unreachable,
    /// No answer in time.
    Timeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Response => "response",
            Outcome::RefusedCertificate => "refused-certificate",
            Outcome::RefusedOther => "refused-other",
            Outcome::Unreachable => "unreachable",
            Outcome::Timeout => "timeout",
        }
    }

    /// The server was reached (it answered at the TLS or HTTP layer).
    pub fn reached(self) -> bool {
        matches!(
            self,
            Outcome::Response | Outcome::RefusedCertificate | Outcome::RefusedOther
        )
    }
}

/// The result of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub outcome: Outcome,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    pub detail: String,
}

impl Attempt {
    fn new(outcome: Outcome, status: Option<u16>, detail: impl Into<String>) -> Self {
        Self {
            outcome,
            status,
            detail: detail.into(),
        }
    }
}

/// Where and what to request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub host: &'a str,
    pub port: u16,
    /// Path (already percent-encoded), e.g. `/open-banking-nz/v3.0/accounts/x`.
    pub path: &'a str,
    /// Address override (`--resolve`); otherwise the host name is resolved.
    pub address: Option<IpAddr>,
}

/// How much of a 400 body is read to tell nginx's certificate errors from other 400s.
const BODY_LIMIT: usize = 16 * 1024;

/// nginx's texts for its client-certificate errors (`ngx_http_error_495_page`, `_496_page`).
const NGINX_CERT_ERRORS: &[&str] = &[
    "No required SSL certificate was sent",
    "The SSL certificate error",
];

/// Sends one request within `timeout` (connection, handshake, response head and the bounded
/// body read all count).
pub async fn attempt(config: Arc<ClientConfig>, req: &Request<'_>, timeout: Duration) -> Attempt {
    match tokio::time::timeout(timeout, attempt_inner(config, req, timeout)).await {
        Ok(a) => a,
        Err(_) => Attempt::new(
            Outcome::Timeout,
            None,
            format!("no answer within {} ms", timeout.as_millis()),
        ),
    }
}

async fn attempt_inner(config: Arc<ClientConfig>, req: &Request<'_>, timeout: Duration) -> Attempt {
    let addrs: Vec<SocketAddr> = match req.address {
        Some(ip) => vec![SocketAddr::new(ip, req.port)],
        None => match tokio::net::lookup_host((req.host, req.port)).await {
            Ok(it) => it.collect(),
            Err(e) => {
                return Attempt::new(
                    Outcome::Unreachable,
                    None,
                    format!("cannot resolve {}: {e}", req.host),
                );
            }
        },
    };
    let mut last_error = format!("{} resolves to no address", req.host);
    let mut tcp = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last_error = format!("cannot connect to {addr}: {e}"),
        }
    }
    let Some(tcp) = tcp else {
        return Attempt::new(Outcome::Unreachable, None, last_error);
    };
    let _ = tcp.set_nodelay(true);
    let server_name = match ServerName::try_from(req.host.to_string()) {
        Ok(n) => n,
        Err(e) => {
            return Attempt::new(
                Outcome::Unreachable,
                None,
                format!("{:?} is not a valid TLS server name: {e}", req.host),
            );
        }
    };
    let tls = match TlsConnector::from(config).connect(server_name, tcp).await {
        Ok(s) => s,
        Err(e) => return classify_error(&e, "during the TLS handshake"),
    };

    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tls)).await {
        Ok(pair) => pair,
        Err(e) => return classify_error(&e, "starting HTTP/1.1"),
    };
    // The connection task reports its own error (see the request's error handling below).
    let (conn_err_tx, mut conn_err_rx) = tokio::sync::oneshot::channel();
    // Bounded: a server that keeps the connection open cannot keep the task alive.
    tokio::spawn(async move {
        if let Ok(result) = tokio::time::timeout(timeout, conn).await {
            let _ = conn_err_tx.send(result.err());
        }
    });

    let authority = if req.port == 443 {
        req.host.to_string()
    } else {
        format!("{}:{}", req.host, req.port)
    };
    let request = match http::Request::get(req.path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, USER_AGENT)
        .header(http::header::ACCEPT, "*/*")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
    {
        Ok(r) => r,
        Err(e) => {
            return Attempt::new(
                Outcome::RefusedOther,
                None,
                format!("cannot build the request for path {:?}: {e}", req.path),
            );
        }
    };
    let send = sender.send_request(request);
    tokio::pin!(send);
    // The connection task's outcome, once it has been received.
    let mut conn_ended = None;
    let response = tokio::select! {
        sent = &mut send => sent,
        ended = &mut conn_err_rx => {
            let ended = conn_ended.insert(ended.ok().flatten());
            // The connection ended first. hyper answers the request from the connection's
            // error almost always, but a request queued in the instant the connection closes
            // can be left in the dispatch channel, unanswered while this sender lives (seen
            // with HAProxy, TLS 1.3, on a loaded 2-core machine: the attempt waited out its
            // whole timeout). So the request gets a short grace, then the connection's own
            // outcome stands for it.
            match tokio::time::timeout(CONN_ERROR_GRACE, &mut send).await {
                Ok(sent) => sent,
                Err(_) => {
                    return match ended {
                        Some(conn_err) => classify_error(conn_err, "after the handshake"),
                        None => Attempt::new(
                            Outcome::RefusedOther,
                            None,
                            "the server closed the connection without answering (after the handshake)",
                        ),
                    };
                }
            }
        }
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            // When the alert arrives before the request is dispatched, hyper fails the request
            // with "connection was not ready" and only the connection task's error names the
            // alert (seen with HAProxy, TLS 1.3). That task ends with the request, so a short
            // wait suffices, and a stuck connection cannot stall the attempt.
            let conn_err = match conn_ended {
                Some(ended) => ended,
                None => tokio::time::timeout(CONN_ERROR_GRACE, &mut conn_err_rx)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten(),
            };
            if let Some(alert) = conn_err.as_ref().and_then(|e| alert_in(e)) {
                return alert_attempt(alert, "after the handshake");
            }
            return classify_error(&e, "after the handshake");
        }
    };
    let status = response.status().as_u16();
    match status {
        495 | 496 => Attempt::new(
            Outcome::RefusedCertificate,
            Some(status),
            format!("HTTP {status} (client-certificate error)"),
        ),
        400 => {
            let body = Limited::new(response.into_body(), BODY_LIMIT)
                .collect()
                .await;
            let text = body
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            match NGINX_CERT_ERRORS.iter().find(|m| text.contains(**m)) {
                Some(m) => Attempt::new(
                    Outcome::RefusedCertificate,
                    Some(status),
                    format!("HTTP 400 \"{m}\""),
                ),
                None => Attempt::new(Outcome::Response, Some(status), "HTTP 400"),
            }
        }
        _ => Attempt::new(Outcome::Response, Some(status), format!("HTTP {status}")),
    }
}

/// How long a failed request waits for its connection task's error.
const CONN_ERROR_GRACE: Duration = Duration::from_secs(1);

const USER_AGENT: &str = concat!("mtls-gate-probe/", env!("CARGO_PKG_VERSION"));

/// Alerts that mean "refused for certificate reasons" (RFC 8446 §6.2, RFC 5246 §7.2.2).
fn is_certificate_alert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::CertificateRequired
            | AlertDescription::HandshakeFailure
            | AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
    )
}

/// The alert's name as the TLS RFCs write it.
fn alert_name(alert: AlertDescription) -> String {
    match alert {
        AlertDescription::CertificateRequired => "certificate_required".into(),
        AlertDescription::HandshakeFailure => "handshake_failure".into(),
        AlertDescription::BadCertificate => "bad_certificate".into(),
        AlertDescription::UnsupportedCertificate => "unsupported_certificate".into(),
        AlertDescription::CertificateRevoked => "certificate_revoked".into(),
        AlertDescription::CertificateExpired => "certificate_expired".into(),
        AlertDescription::CertificateUnknown => "certificate_unknown".into(),
        AlertDescription::UnknownCA => "unknown_ca".into(),
        AlertDescription::AccessDenied => "access_denied".into(),
        AlertDescription::ProtocolVersion => "protocol_version".into(),
        AlertDescription::InternalError => "internal_error".into(),
        AlertDescription::DecryptError => "decrypt_error".into(),
        other => format!("{other:?}"),
    }
}

/// The fatal alert the server sent, if the error chain holds one. `io::Error::source`
/// skips the wrapped error, so its payload is inspected with `get_ref`.
fn alert_in(err: &(dyn std::error::Error + 'static)) -> Option<AlertDescription> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(rustls::Error::AlertReceived(a)) = e.downcast_ref::<rustls::Error>() {
            return Some(*a);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(rustls::Error::AlertReceived(a)) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(*a);
        }
        next = e.source();
    }
    None
}

fn alert_attempt(alert: AlertDescription, when: &str) -> Attempt {
    let outcome = if is_certificate_alert(alert) {
        Outcome::RefusedCertificate
    } else {
        Outcome::RefusedOther
    };
    Attempt::new(
        outcome,
        None,
        format!("TLS alert {} {when}", alert_name(alert)),
    )
}

fn classify_error(err: &(dyn std::error::Error + 'static), when: &str) -> Attempt {
    if let Some(alert) = alert_in(err) {
        return alert_attempt(alert, when);
    }
    // The full chain, for the report (hyper and io errors hide their causes in Display).
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        let inner = inner.to_string();
        if !text.contains(&inner) {
            text.push_str(": ");
            text.push_str(&inner);
        }
    }
    Attempt::new(Outcome::RefusedOther, None, format!("{text} ({when})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_found_inside_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
        );
        assert_eq!(alert_in(&io), Some(AlertDescription::CertificateRequired));
        let a = classify_error(&io, "after the handshake");
        assert_eq!(a.outcome, Outcome::RefusedCertificate);
        assert_eq!(
            a.detail,
            "TLS alert certificate_required after the handshake"
        );
        let other = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::ProtocolVersion),
        );
        assert_eq!(classify_error(&other, "x").outcome, Outcome::RefusedOther);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify_error(&reset, "x").outcome, Outcome::RefusedOther);
    }
}
