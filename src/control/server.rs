//! The socket side of the daemon: binds the Unix socket (0600, stale files replaced, a live
//! daemon detected), greets each client, and answers its requests through a [`Handler`].
//! What a request does is the handler's business; this file only moves frames, within the
//! bounds of [`Limits`]: accept errors back off, connections are capped, idle ones closed,
//! request lines read no further than [`MAX_FRAME_BYTES`]. Every refusal is one error frame
//! saying why (docs/control.md).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, Semaphore};

use super::limits::{AcceptBackoff, Limits, LineEvent, LineReader};
use super::protocol::{
    encode, parse_request, too_long_message, ControlError, ControlErrorCode, Event, Frame, Hello,
    Reply, Request, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};

/// Answers control requests. Implemented by the daemon's service.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> impl Future<Output = Reply> + Send;
    fn events(&self) -> broadcast::Receiver<Event>;
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another icsync daemon is already answering on {0}")]
    InUse(PathBuf),
    #[error("cannot create control socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// How long writing a refusal to a connection over the cap may take.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// Binds the control socket at `path`. A socket file left by a crashed daemon (nothing
/// answers on it) is replaced; one a live daemon answers on is an error.
pub async fn bind(path: &Path) -> Result<UnixListener, BindError> {
    let io_err = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        match UnixStream::connect(path).await {
            Ok(_) => return Err(BindError::InUse(path.to_path_buf())),
            Err(_) => std::fs::remove_file(path).map_err(io_err)?,
        }
    }
    let listener = UnixListener::bind(path).map_err(io_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    }
    Ok(listener)
}

/// Serves clients until `shutdown` completes, with the [`Limits`] the environment sets
/// ([`Limits::from_env`]).
pub async fn serve<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, handler, shutdown, Limits::from_env()).await
}

/// Serves clients until `shutdown` completes. Each connection runs in its own task, so a slow
/// subscriber never holds up another client. An accept error (out of descriptors) backs off
/// and is logged once per episode, not once per error.
pub async fn serve_with<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                if let Some(episode) = backoff.on_success(std::time::Instant::now()) {
                    tracing::info!(
                        failed_accepts = episode.failures,
                        seconds = episode.lasted.as_secs_f64(),
                        "control socket accepting again"
                    );
                }
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let handler = handler.clone();
                        tokio::spawn(async move {
                            if let Err(e) = connection(stream, handler, limits).await {
                                tracing::debug!(error = %e, "control connection ended");
                            }
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        tracing::debug!(
                            max = limits.max_connections,
                            "control connection refused: at the connection cap"
                        );
                        tokio::spawn(refuse_busy(stream, limits.max_connections));
                    }
                }
            }
            Err(e) => {
                let step = backoff.on_error(std::time::Instant::now());
                if step.first_of_episode {
                    tracing::warn!(
                        error = %e,
                        "control socket cannot accept connections; retrying with back-off \
                         up to 1 s (logged once per episode)"
                    );
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(step.wait) => {}
                }
            }
        }
    }
}

/// Tells a connection over the cap why it is closed, in one frame, and closes it.
async fn refuse_busy(mut stream: UnixStream, max: usize) {
    let reply = Reply::Error(ControlError::new(
        ControlErrorCode::Busy,
        format!(
            "the daemon is serving its maximum of {max} control connections; \
             close one or try again shortly"
        ),
    ));
    let _ = tokio::time::timeout(
        REFUSAL_WRITE,
        write_frame(&mut stream, &Frame::Reply { id: 0, reply }),
    )
    .await;
}

async fn write_frame(w: &mut (impl AsyncWriteExt + Unpin), frame: &Frame) -> io::Result<()> {
    let bytes = encode(frame).map_err(io::Error::other)?;
    w.write_all(&bytes).await
}

/// Writes a reply, giving up (and so closing the connection) when the client reads nothing
/// for `within`: a client that sends requests but never reads replies cannot hold a
/// connection slot forever. Events have no such deadline (a suspended TUI keeps its
/// subscription; it skips what it missed).
async fn write_reply(
    w: &mut (impl AsyncWriteExt + Unpin),
    frame: &Frame,
    within: Duration,
) -> io::Result<()> {
    tokio::time::timeout(within, write_frame(w, frame))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client reads no replies"))?
}

async fn write_error(
    w: &mut (impl AsyncWriteExt + Unpin),
    id: u64,
    error: ControlError,
    within: Duration,
) -> io::Result<()> {
    let reply = Reply::Error(error);
    write_reply(w, &Frame::Reply { id, reply }, within).await
}

async fn connection<H: Handler>(
    stream: UnixStream,
    handler: Arc<H>,
    limits: Limits,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = LineReader::new(read, MAX_FRAME_BYTES);
    write_frame(
        &mut write,
        &Frame::Hello {
            hello: Hello {
                protocol: PROTOCOL_VERSION,
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
        },
    )
    .await?;
    let mut events: Option<broadcast::Receiver<Event>> = None;
    let mut idle_since = tokio::time::Instant::now();
    loop {
        // A subscriber may stay quiet for as long as it likes: it is reading events.
        let subscribed = events.is_some();
        let idle = async move {
            if subscribed {
                std::future::pending::<()>().await
            }
            tokio::time::sleep_until(idle_since + limits.idle_timeout).await
        };
        tokio::select! {
            line = lines.next() => match line? {
                LineEvent::Eof => return Ok(()),
                LineEvent::TooLong { seen } => {
                    idle_since = tokio::time::Instant::now();
                    tracing::debug!(bytes = seen, "control request refused: line too long");
                    write_error(
                        &mut write,
                        0,
                        ControlError::new(ControlErrorCode::TooLarge, too_long_message(seen)),
                        limits.idle_timeout,
                    )
                    .await?;
                }
                LineEvent::Line(line) => {
                    answer(&line, &handler, &mut events, &mut write, limits.idle_timeout).await?;
                    idle_since = tokio::time::Instant::now();
                }
            },
            event = next_event(&mut events) => match event {
                Some(event) => write_frame(&mut write, &Frame::Event { event }).await?,
                None => events = None,
            },
            _ = idle => {
                tracing::debug!("control connection closed: idle");
                let message = format!(
                    "no complete request for {} s: the connection is closed (connect again)",
                    limits.idle_timeout.as_secs_f64()
                );
                write_error(
                    &mut write,
                    0,
                    ControlError::new(ControlErrorCode::IdleTimeout, message),
                    limits.idle_timeout,
                )
                .await?;
                return Ok(());
            }
        }
    }
}

/// Answers one complete request line: the handler's reply, or why the line is not a request.
/// The connection goes on either way.
async fn answer<H: Handler>(
    line: &[u8],
    handler: &Arc<H>,
    events: &mut Option<broadcast::Receiver<Event>>,
    write: &mut (impl AsyncWriteExt + Unpin),
    within: Duration,
) -> io::Result<()> {
    let (id, request) = match parse_request(line) {
        Ok(parsed) => parsed,
        Err(refused) => {
            tracing::debug!(code = ?refused.error.code, "control request refused");
            return write_error(write, refused.id, refused.error, within).await;
        }
    };
    let reply = if matches!(request, Request::Subscribe) {
        *events = Some(handler.events());
        Reply::Subscribed
    } else {
        handler.handle(request).await
    };
    write_reply(write, &Frame::Reply { id, reply }, within).await
}

/// The next event for a subscribed connection; pends forever when not subscribed. A
/// subscriber that fell behind skips what it missed (it refreshes from the next event).
async fn next_event(events: &mut Option<broadcast::Receiver<Event>>) -> Option<Event> {
    let Some(rx) = events else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(e) => return Some(e),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}
