//! The socket side of the daemon: binds the Unix socket (0600, stale files replaced, a live
//! daemon detected), greets each client, and answers its requests through a [`Handler`].
//! What a request does is the handler's business; this file only moves frames.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

use super::protocol::{decode, encode, Event, Frame, Hello, Reply, Request, PROTOCOL_VERSION};

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

/// Serves clients until `shutdown` completes. Each connection runs in its own task, so a slow
/// subscriber never holds up another client.
pub async fn serve<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, handler).await {
                            tracing::debug!(error = %e, "control connection ended");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
            },
        }
    }
}

async fn write_frame(w: &mut (impl AsyncWriteExt + Unpin), frame: &Frame) -> io::Result<()> {
    let bytes = encode(frame).map_err(io::Error::other)?;
    w.write_all(&bytes).await
}

async fn connection<H: Handler>(stream: UnixStream, handler: Arc<H>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
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
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                let (id, request) = match decode(line.as_bytes()) {
                    Ok(Frame::Request { id, request }) => (id, request),
                    Ok(_) | Err(_) => {
                        // A peer that does not speak the protocol gets one error and is dropped.
                        let reply = Reply::Error(super::protocol::ControlError::new(
                            super::protocol::ControlErrorCode::Invalid,
                            "expected a request frame",
                        ));
                        write_frame(&mut write, &Frame::Reply { id: 0, reply }).await?;
                        return Ok(());
                    }
                };
                let reply = if matches!(request, Request::Subscribe) {
                    events = Some(handler.events());
                    Reply::Subscribed
                } else {
                    handler.handle(request).await
                };
                write_frame(&mut write, &Frame::Reply { id, reply }).await?;
            }
            event = next_event(&mut events) => match event {
                Some(event) => write_frame(&mut write, &Frame::Event { event }).await?,
                None => events = None,
            },
        }
    }
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
