//! HTTP/1.1 request heads read before hyper's connection is built.
//!
//! A slowloris client (adversarial test F7: 1,100 TLS connections sending one header line a
//! second) never finishes its request head. Built for every such connection, hyper's
//! HTTP/1.1 connection holds two 8 KiB buffers (its read buffer and its header write
//! buffer, both allocated when the connection is built) plus its state, ~28 KiB a
//! connection by RSS: 1,024 of them put the server at the 64 MiB target of issue 11. So the
//! server first reads the request head into a buffer that grows only with what the client
//! sent, and builds hyper's connection once the head is complete (or as large as a head may
//! be, which hyper then refuses). hyper still parses everything: this module only finds
//! where the head ends, and [`ReadAhead`] hands hyper the bytes already read before the
//! rest of the stream.
//!
//! The end of a head is its first empty line (RFC 9112 §2.1); a bare LF is accepted as a
//! line terminator as hyper's parser (httparse) accepts it, so a head that hyper would take
//! is never held back. An empty line before the request line (RFC 9112 §2.2 lets a server
//! ignore it) ends the wait early, which is harmless: hyper then reads the rest itself, as
//! it did before this module.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// Bytes read from the socket at a time while waiting for the end of a head; the head
/// itself is kept in a buffer that grows with what arrived.
const READ_CHUNK: usize = 1024;

/// Whether `buf` holds the end of a request head: an empty line, `\n\n` or `\n\r\n`. Only
/// the bytes from `from` on (minus the two before, which may begin the terminator) are new.
fn ends_head(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(2);
    let new = &buf[start..];
    new.iter().enumerate().any(|(i, &b)| {
        b == b'\n'
            && match new.get(i + 1) {
                Some(b'\n') => true,
                Some(b'\r') => new.get(i + 2) == Some(&b'\n'),
                _ => false,
            }
    })
}

/// How reading a head ended.
#[derive(Debug)]
pub(crate) enum HeadRead {
    /// The head is complete, or as long as `max` (hyper answers that one with 431): these
    /// are the bytes read, the head and whatever followed it in the same reads.
    Ready(Bytes),
    /// The client closed the connection before its head was complete.
    Closed,
}

/// Reads from `io` until the bytes read hold the end of a request head or reach `max`.
/// Callers bound the wait (the header read timeout, eviction).
pub(crate) async fn read_request_head<T: AsyncRead + Unpin>(
    io: &mut T,
    max: usize,
) -> io::Result<HeadRead> {
    let mut head = Vec::new();
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let want = READ_CHUNK.min(max.saturating_sub(head.len())).max(1);
        let n = io.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Ok(HeadRead::Closed);
        }
        let from = head.len();
        head.extend_from_slice(&chunk[..n]);
        if ends_head(&head, from) || head.len() >= max {
            return Ok(HeadRead::Ready(Bytes::from(head)));
        }
    }
}

/// A stream whose first bytes were already read: reads return them first, then what the
/// stream has next. Writes go straight to the stream.
#[derive(Debug)]
pub(crate) struct ReadAhead<T> {
    ahead: Bytes,
    io: T,
}

impl<T> ReadAhead<T> {
    pub(crate) fn new(ahead: Bytes, io: T) -> Self {
        Self { ahead, io }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadAhead<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ahead.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.ahead.len().min(buf.remaining());
        if n == this.ahead.len() {
            // Taken whole, so that the buffer is released now, not with the connection.
            buf.put_slice(&std::mem::take(&mut this.ahead));
        } else {
            buf.put_slice(&this.ahead.split_to(n));
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ReadAhead<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[test]
    fn the_end_of_a_head_is_its_first_empty_line() {
        // (bytes, where the new bytes start, ends the head)
        let cases: &[(&[u8], usize, bool)] = &[
            (b"POST /validate HTTP/1.1\r\nhost: x\r\n\r\n", 0, true),
            (
                b"POST /validate HTTP/1.1\r\nhost: x\r\n\r\n{\"body\"",
                0,
                true,
            ),
            (b"POST /validate HTTP/1.1\r\nhost: x\r\n", 0, false),
            (
                b"POST /validate HTTP/1.1\r\nx-slow: 1\r\nx-slow: 1\r\n",
                0,
                false,
            ),
            // bare LF line ends, as httparse accepts them
            (b"POST /validate HTTP/1.1\nhost: x\n\n", 0, true),
            (b"POST /validate HTTP/1.1\nhost: x\n\r\n", 0, true),
            // the terminator split across reads: only the tail is new
            (b"POST / HTTP/1.1\r\nhost: x\r\n\r\n", 27, true),
            (b"POST / HTTP/1.1\r\nhost: x\r\n\r\n", 26, true),
            // an empty line before the request line ends the wait (hyper reads the rest)
            (b"\r\n\r\nPOST", 0, true),
            (b"", 0, false),
            (b"\r", 0, false),
        ];
        for &(buf, from, expected) in cases {
            assert_eq!(
                ends_head(buf, from),
                expected,
                "{:?} from {from}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[tokio::test]
    async fn a_head_sent_a_line_at_a_time_is_read_whole_with_what_follows_it() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for line in [
                &b"POST /validate HTTP/1.1\r\n"[..],
                b"host: localhost\r\n",
                b"content-length: 2\r\n",
                b"\r\n{}",
            ] {
                client.write_all(line).await?;
                tokio::task::yield_now().await;
            }
            Ok::<_, io::Error>(client)
        });
        let HeadRead::Ready(head) = read_request_head(&mut server, 16 * 1024).await.unwrap() else {
            panic!("the client sent a whole head");
        };
        assert_eq!(
            &head[..],
            b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\n{}"
        );
        drop(writer.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn reading_stops_at_the_size_limit_and_at_end_of_stream() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(&[b'x'; 3000]).await.unwrap();
        let HeadRead::Ready(head) = read_request_head(&mut server, 2048).await.unwrap() else {
            panic!("2 KiB without an end is handed on at the limit");
        };
        assert_eq!(head.len(), 2048, "never reads past the limit");
        drop(client);
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest.len(), 3000 - 2048, "the rest stays on the stream");

        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"POST / HTTP/1.1\r\n").await.unwrap();
        drop(client);
        assert!(matches!(
            read_request_head(&mut server, 2048).await.unwrap(),
            HeadRead::Closed
        ));
    }

    /// A stream that delivers `chunks` one read at a time (a chunk larger than the read's
    /// buffer is split), as a client's TLS records arrive.
    struct Chunked(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Chunked {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let chunks = &mut self.get_mut().0;
            if let Some(mut chunk) = chunks.pop_front() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    chunks.push_front(chunk.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Where the first head in `bytes` ends (after its empty line), by a plain scan.
    fn first_head_end(bytes: &[u8]) -> Option<usize> {
        (0..bytes.len()).find_map(|i| match &bytes[i..] {
            [b'\n', b'\n', ..] => Some(i + 2),
            [b'\n', b'\r', b'\n', ..] => Some(i + 3),
            _ => None,
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// However the bytes are split into reads: nothing is lost, duplicated or reordered
        /// on the way to hyper; the head read stops at the first empty line or at `max`
        /// bytes, never past `max`; and only a stream that ends before either is `Closed`.
        #[test]
        fn heads_are_cut_where_they_end_and_every_byte_reaches_hyper(
            chunks in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(b"a: \r\n".to_vec()), 1..12),
                0..12,
            ),
            max in 1usize..48,
        ) {
            let sent: Vec<u8> = chunks.concat();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let mut stream = Chunked(chunks.into_iter().filter(|c| !c.is_empty()).collect());
                let read = read_request_head(&mut stream, max).await.unwrap();
                let end = first_head_end(&sent).filter(|&end| end <= max);
                let head = match read {
                    HeadRead::Ready(head) => {
                        match end {
                            // Stopped in the read that brought the end (reads here are at
                            // most 11 bytes), never past `max`.
                            Some(end) => proptest::prop_assert!(
                                end <= head.len() && head.len() < end + 11 && head.len() <= max,
                                "head of {} bytes, its end at {end}, max {max}", head.len()
                            ),
                            None => proptest::prop_assert_eq!(head.len(), max),
                        }
                        head
                    }
                    HeadRead::Closed => {
                        proptest::prop_assert!(end.is_none() && sent.len() < max);
                        return Ok(());
                    }
                };
                let mut received = Vec::new();
                ReadAhead::new(head, stream).read_to_end(&mut received).await.unwrap();
                proptest::prop_assert_eq!(received, sent);
                Ok(())
            })?;
        }
    }

    #[tokio::test]
    async fn the_bytes_read_ahead_come_first_then_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut io = ReadAhead::new(Bytes::from_static(b"hello"), server);
        // Small reads split the bytes read ahead.
        let mut first = [0u8; 3];
        io.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"hel");
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(&rest, b"lo world");
    }
}
