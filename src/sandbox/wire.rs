//! A connection's byte stream as hyper sees it, with one change: hyper's own answer to a
//! request it cannot parse is replaced by the contract's JSON error body.
//!
//! A NUL or DEL byte in a header, a malformed request line or headers over hyper's limit
//! never reach a handler: hyper answers them itself (`Server::on_error` in hyper's
//! `proto/h1/role.rs`) with a bare head such as `400 Bad Request` and `content-length: 0`,
//! then closes the connection, and offers no hook to change that answer.
//! (`ignore_invalid_headers` would drop the bad header and run the request without it: a
//! request whose Idempotency-Key held a DEL would execute unkeyed.) So this wrapper watches
//! what hyper writes: a head with an error status, no body and no `Content-Type` is one of
//! those automatic answers (every answer of ours carries `Content-Type: application/json`),
//! and the same status is written with an `invalid_request` body in its place.
//!
//! Vectored writes are declined so hyper writes each message as one flat buffer, which keeps
//! a head whole in one `poll_write`.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::contract::{ApiError, ErrorKind};

/// An I/O stream whose automatic HTTP error heads are rewritten to JSON error responses.
#[derive(Debug)]
pub struct JsonErrors<T> {
    inner: T,
    /// A rewritten answer still being written, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> JsonErrors<T> {
    pub fn new(inner: T) -> Self {
        JsonErrors {
            inner,
            pending: None,
        }
    }
}

/// The status of `buf` if it is exactly one response head that hyper wrote by itself for a
/// request it could not parse: an error status, no body, no content type.
fn automatic_error_status(buf: &[u8]) -> Option<u16> {
    let head = std::str::from_utf8(buf).ok()?;
    let head = head.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let mut bodiless = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" | "transfer-encoding" => return None,
            "content-length" => bodiless = value.trim() == "0",
            _ => {}
        }
    }
    ((400..600).contains(&status) && bodiless).then_some(status)
}

/// The whole response written instead of an automatic error head with `status`.
fn json_error_response(status: u16) -> Vec<u8> {
    let (reason, message) = match status {
        414 => (
            "URI Too Long",
            "the request line's URI is too long".to_string(),
        ),
        431 => (
            "Request Header Fields Too Large",
            "the request's headers are too large".to_string(),
        ),
        400 => (
            "Bad Request",
            "the request is not valid HTTP/1.1: a header holds a byte HTTP forbids (such as \
             NUL, DEL or another control character), or the request line or a header is \
             malformed"
                .to_string(),
        ),
        _ => (
            "Error",
            format!("the request could not be read (HTTP {status})"),
        ),
    };
    let body =
        serde_json::to_vec(&ApiError::simple(ErrorKind::InvalidRequest, message).into_body())
            .unwrap_or_else(|_| {
                br#"{"error":{"type":"invalid_request","message":"bad request"}}"#.to_vec()
            });
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        if let Some(status) = automatic_error_status(buf) {
            // Taken whole; written by the flush and shutdown hyper does next.
            this.pending = Some((json_error_response(status), 0));
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn hypers_bare_error_heads_are_recognised_and_ours_are_not() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 05:00:00 GMT\r\n\r\n";
        assert_eq!(automatic_error_status(bare), Some(400));
        let big = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(automatic_error_status(big), Some(431));
        for ours in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"{\"full_name\":\"HTTP/1.1 400 \"}",
        ] {
            assert_eq!(automatic_error_status(ours), None, "{ours:?}");
        }
    }

    #[test]
    fn the_replacement_is_a_complete_json_error_response() {
        let response = String::from_utf8(json_error_response(400)).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request");
    }

    #[tokio::test]
    async fn a_bare_error_head_is_written_as_json_and_everything_else_passes_through() {
        // A small pipe, so the rewritten answer takes several partial writes.
        let (a, mut b) = tokio::io::duplex(16);
        let reader = tokio::spawn(async move {
            let mut seen = String::new();
            b.read_to_string(&mut seen).await.map(|_| seen)
        });
        let mut wire = JsonErrors::new(a);
        wire.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        wire.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        wire.flush().await.unwrap();
        wire.shutdown().await.unwrap();
        drop(wire);
        let seen = reader.await.unwrap().unwrap();
        let (first, second) = seen.split_at(seen.find("HTTP/1.1 400").unwrap());
        assert_eq!(first, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(second.as_bytes(), json_error_response(400));
    }
}
