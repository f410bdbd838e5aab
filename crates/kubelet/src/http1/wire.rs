//! Reading one HTTP/1.1 response off a connection: head (parsed by `httparse`), then a body
//! framed by `Content-Length`, `Transfer-Encoding: chunked` or the end of the connection.
//!
//! The read buffer lives in a [`Reader`] made per response and dropped with it, so nothing of
//! it stays with a pooled connection.

use std::io;

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes asked of the connection per read.
const READ_CHUNK: usize = 8 * 1024;

/// Header lines accepted in a response head or a chunked trailer (hyper's default is 100).
const MAX_HEADERS: usize = 100;

/// Longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// A declared `Content-Length` is trusted for up to this much preallocation; more grows as it
/// arrives, so a lying peer cannot make us reserve the whole cap up front.
const MAX_PREALLOCATION: usize = 4 * 1024 * 1024;

/// How the response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    Eof,
}

/// The parts of a response head the client acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// Status code.
    pub(crate) status: u16,
    /// Reason phrase as sent (may be empty).
    pub(crate) reason: String,
    /// Body framing.
    pub(crate) framing: Framing,
    /// The server may keep the connection: HTTP/1.1 without `Connection: close`.
    pub(crate) keep_alive: bool,
}

/// Why reading a body failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The connection failed or the framing was broken.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The body is (or was declared) larger than the cap.
    #[error("response body exceeds the limit")]
    TooLarge,
}

fn protocol_error(text: impl Into<String>) -> io::Error {
    io::Error::other(text.into())
}

fn closed_early(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("connection closed {what}"),
    )
}

/// Reads one response from `io` through a per-response buffer.
#[derive(Debug)]
pub(crate) struct Reader<'a, S> {
    io: &'a mut S,
    buf: Vec<u8>,
    pos: usize,
    received: bool,
}

impl<'a, S: AsyncRead + Unpin> Reader<'a, S> {
    pub(crate) fn new(io: &'a mut S) -> Self {
        Self {
            io,
            buf: Vec::new(),
            pos: 0,
            received: false,
        }
    }

    /// Whether any byte of the response arrived (a failure before that may be a stale
    /// pooled connection, safe to retry).
    pub(crate) fn received(&self) -> bool {
        self.received
    }

    /// Bytes read but not consumed. Non-empty after a whole response means the server sent
    /// more than it framed: the connection must not be reused.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more into the buffer; 0 at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(READ_CHUNK);
        let n = self.io.read_buf(&mut self.buf).await?;
        self.received |= n > 0;
        Ok(n)
    }

    async fn fill_or_fail(&mut self, what: &str) -> io::Result<()> {
        match self.fill().await? {
            0 => Err(closed_early(what)),
            _ => Ok(()),
        }
    }

    /// Reads the response head, skipping interim (1xx) responses. The head, status line
    /// included, must fit in `limit` bytes.
    pub(crate) async fn read_head(&mut self, limit: usize) -> io::Result<Head> {
        loop {
            if let Some((head, len)) = parse_head(self.buffered(), limit)? {
                self.pos += len;
                // 101 would switch protocols, which a GET never asked for: treat as final.
                if (100..200).contains(&head.status) && head.status != 101 {
                    continue;
                }
                return Ok(head);
            }
            if self.buffered().len() >= limit {
                return Err(protocol_error(format!(
                    "response head exceeds {limit} bytes"
                )));
            }
            if self.fill().await? == 0 {
                return Err(closed_early(if self.received {
                    "in the response head"
                } else {
                    "before any response"
                }));
            }
        }
    }

    /// Reads the whole body, failing with [`BodyError::TooLarge`] once it would exceed `cap`.
    pub(crate) async fn read_body(
        &mut self,
        framing: Framing,
        cap: usize,
    ) -> Result<Vec<u8>, BodyError> {
        match framing {
            Framing::Length(n) => {
                let n = usize::try_from(n).map_err(|_| BodyError::TooLarge)?;
                if n > cap {
                    return Err(BodyError::TooLarge);
                }
                let mut body = Vec::with_capacity(n.min(MAX_PREALLOCATION));
                self.copy_exact(&mut body, n).await?;
                Ok(body)
            }
            Framing::Chunked => self.read_chunked(cap).await,
            Framing::Eof => self.read_to_end(cap).await,
        }
    }

    /// Appends exactly `n` body bytes to `out`: what is buffered, then straight from the
    /// connection into `out` (no second copy).
    async fn copy_exact(&mut self, out: &mut Vec<u8>, n: usize) -> io::Result<()> {
        let take = n.min(self.buffered().len());
        out.extend_from_slice(&self.buffered()[..take]);
        self.pos += take;
        let mut left = n - take;
        while left > 0 {
            out.reserve(left.min(16 * READ_CHUNK));
            let got = self.io.read_buf(&mut (&mut *out).limit(left)).await?;
            if got == 0 {
                return Err(closed_early("in the response body"));
            }
            self.received = true;
            left -= got;
        }
        Ok(())
    }

    async fn read_chunked(&mut self, cap: usize) -> Result<Vec<u8>, BodyError> {
        let mut body = Vec::new();
        loop {
            let size = self.chunk_size().await?;
            if size == 0 {
                self.trailers().await?;
                return Ok(body);
            }
            // Checked before reading: a huge announced chunk is refused, not buffered.
            let size = usize::try_from(size).map_err(|_| BodyError::TooLarge)?;
            if size > cap.saturating_sub(body.len()) {
                return Err(BodyError::TooLarge);
            }
            self.copy_exact(&mut body, size).await?;
            self.expect_crlf().await?;
        }
    }

    /// Parses a chunk-size line (extensions ignored) and consumes it.
    async fn chunk_size(&mut self) -> io::Result<u64> {
        loop {
            match httparse::parse_chunk_size(self.buffered()) {
                Ok(httparse::Status::Complete((len, size))) => {
                    self.pos += len;
                    return Ok(size);
                }
                Ok(httparse::Status::Partial) if self.buffered().len() <= MAX_CHUNK_LINE => {
                    self.fill_or_fail("in a chunk size line").await?;
                }
                Ok(httparse::Status::Partial) => {
                    return Err(protocol_error("chunk size line too long"));
                }
                Err(_) => return Err(protocol_error("invalid chunk size line")),
            }
        }
    }

    async fn expect_crlf(&mut self) -> io::Result<()> {
        while self.buffered().len() < 2 {
            self.fill_or_fail("after a chunk").await?;
        }
        if &self.buffered()[..2] != b"\r\n" {
            return Err(protocol_error("chunk data not followed by CRLF"));
        }
        self.pos += 2;
        Ok(())
    }

    /// Consumes the trailer section after the last chunk (ignored) and its empty line.
    async fn trailers(&mut self) -> io::Result<()> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let parsed = match httparse::parse_headers(self.buffered(), &mut headers) {
                Ok(httparse::Status::Complete((len, _))) => Ok(Some(len)),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(e) => Err(e),
            };
            match parsed {
                Ok(Some(len)) => {
                    self.pos += len;
                    return Ok(());
                }
                Ok(None) if self.buffered().len() <= MAX_CHUNK_LINE => {
                    self.fill_or_fail("in the chunked trailer").await?;
                }
                Ok(None) => return Err(protocol_error("trailer too long")),
                Err(e) => return Err(protocol_error(format!("invalid chunked trailer: {e}"))),
            }
        }
    }

    /// Reads until the server closes, reading at most one byte past `cap` to notice excess.
    async fn read_to_end(&mut self, cap: usize) -> Result<Vec<u8>, BodyError> {
        let mut body = self.buffered().to_vec();
        self.pos = self.buf.len();
        loop {
            if body.len() > cap {
                return Err(BodyError::TooLarge);
            }
            body.reserve(16 * READ_CHUNK);
            let room = cap + 1 - body.len();
            if self.io.read_buf(&mut (&mut body).limit(room)).await? == 0 {
                return Ok(body);
            }
            self.received = true;
        }
    }
}

/// Parses a complete response head at the start of `buf`; `None` if more bytes are needed.
fn parse_head(buf: &[u8], limit: usize) -> io::Result<Option<(Head, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(protocol_error(format!("invalid HTTP response head: {e}"))),
    };
    if len > limit {
        return Err(protocol_error(format!(
            "response head exceeds {limit} bytes"
        )));
    }
    let status = resp.code.unwrap_or_default();
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut close = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| protocol_error("invalid Content-Length"))?;
            if length.is_some_and(|m| m != n) {
                return Err(protocol_error("conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding tells whether the body is chunked; the last header wins.
            chunked = Some(last_token(h.value).eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    let framing = if matches!(status, 100..=199 | 204 | 304) {
        Framing::Length(0)
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            // A coding other than chunked last: the body runs to the end (RFC 9112 6.3).
            (Some(false), _) | (None, None) => Framing::Eof,
            (None, Some(n)) => Framing::Length(n),
        }
    };
    let head = Head {
        status,
        reason: resp.reason.unwrap_or_default().to_owned(),
        framing,
        keep_alive: resp.version == Some(1) && !close,
    };
    Ok(Some((head, len)))
}

fn last_token(value: &[u8]) -> &[u8] {
    value
        .rsplit(|b| *b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    /// A reader handing out `raw` in pieces of a fixed size, then end of stream.
    #[derive(Debug)]
    struct Scripted(VecDeque<Vec<u8>>);

    fn scripted(raw: &[u8], step: usize) -> Scripted {
        Scripted(raw.chunks(step.max(1)).map(<[u8]>::to_vec).collect())
    }

    impl AsyncRead for Scripted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(mut piece) = self.0.pop_front() {
                let n = piece.len().min(buf.remaining());
                buf.put_slice(&piece[..n]);
                if n < piece.len() {
                    self.0.push_front(piece.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Reads one response from `raw` delivered in pieces of `step` bytes: head, body result
    /// and the bytes left unread.
    async fn read(
        raw: &[u8],
        step: usize,
        cap: usize,
    ) -> (Head, Result<Vec<u8>, BodyError>, usize) {
        let mut io = scripted(raw, step);
        let mut reader = Reader::new(&mut io);
        let head = reader.read_head(8 * 1024).await.unwrap();
        let body = reader.read_body(head.framing, cap).await;
        let left = reader.buffered().len();
        (head, body, left)
    }

    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n";

    #[tokio::test]
    async fn a_chunked_body_with_extensions_and_trailers_is_read_whole_in_any_pieces() {
        for step in [1, 2, 3, 7, 1000] {
            let (head, body, left) = read(CHUNKED, step, 1024).await;
            assert_eq!(head.framing, Framing::Chunked);
            assert!(head.keep_alive);
            assert_eq!(body.unwrap(), b"hello, world", "step {step}");
            assert_eq!(left, 0);
        }
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_cap_fails_before_the_chunk_is_read() {
        let (_, body, _) = read(CHUNKED, 1000, 8).await;
        assert!(matches!(body, Err(BodyError::TooLarge)));
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n";
        let (_, body, _) = read(raw, 1000, 1 << 20).await;
        assert!(matches!(body, Err(BodyError::TooLarge)));
    }

    #[tokio::test]
    async fn a_content_length_body_is_read_exactly() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
        for step in [1, 4, 1000] {
            let (head, body, left) = read(raw, step, 5).await;
            assert_eq!(head.framing, Framing::Length(5));
            assert_eq!(body.unwrap(), b"hello");
            assert_eq!(left, 0);
        }
        let (_, body, _) = read(raw, 1000, 4).await;
        assert!(matches!(body, Err(BodyError::TooLarge)));
    }

    #[tokio::test]
    async fn without_framing_the_body_runs_to_the_end_under_the_cap() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello";
        let (head, body, _) = read(raw, 2, 5).await;
        assert_eq!((head.framing, head.keep_alive), (Framing::Eof, false));
        assert_eq!(body.unwrap(), b"hello");
        let (_, body, _) = read(raw, 2, 4).await;
        assert!(matches!(body, Err(BodyError::TooLarge)));
    }

    #[tokio::test]
    async fn a_truncated_body_is_an_error() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello";
        let (_, body, _) = read(raw, 1000, 100).await;
        assert!(matches!(body, Err(BodyError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof));
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
        let (_, body, _) = read(raw, 1000, 100).await;
        assert!(matches!(body, Err(BodyError::Io(_))));
    }

    #[tokio::test]
    async fn interim_responses_are_skipped_and_reasons_kept_as_sent() {
        let raw =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Kubelet Busy\r\nContent-Length: 0\r\n\r\n";
        let (head, body, _) = read(raw, 1000, 100).await;
        assert_eq!((head.status, head.reason.as_str()), (503, "Kubelet Busy"));
        assert!(body.unwrap().is_empty());
    }

    #[tokio::test]
    async fn http_1_0_and_connection_close_are_not_kept() {
        let raw = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!read(raw, 1000, 100).await.0.keep_alive);
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive, Close\r\n\r\n";
        assert!(!read(raw, 1000, 100).await.0.keep_alive);
    }

    #[tokio::test]
    async fn a_head_over_the_limit_or_not_http_fails() {
        let big = format!("HTTP/1.1 200 OK\r\nX-Pad: {}\r\n\r\n", "a".repeat(9000));
        let mut io = scripted(big.as_bytes(), 1000);
        let err = Reader::new(&mut io).read_head(8 * 1024).await.unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        let mut io = scripted(b"\x16\x03\x01garbage\r\n\r\n", 1000);
        assert!(Reader::new(&mut io).read_head(8 * 1024).await.is_err());
        let mut io = scripted(b"", 1000);
        let mut reader = Reader::new(&mut io);
        let err = reader.read_head(8 * 1024).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(!reader.received());
    }
}
