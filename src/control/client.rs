//! The client side of the control socket, used by the CLI and the TUI: connects (with a
//! deadline, so a wedged daemon cannot hang a command), checks the protocol version, sends
//! requests and receives events. A connection the daemon closed as idle is opened again
//! once, transparently: the daemon says so before closing and never reads a request after,
//! so resending is safe.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::protocol::{
    decode, encode, ControlError, ControlErrorCode, Event, Frame, Reply, Request, PROTOCOL_VERSION,
};

/// How long a connecting client waits for the daemon's greeting.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon: no socket file, or nothing listening on it.
    #[error("no icsync daemon is running (no answer on {0})")]
    NotRunning(PathBuf),
    #[error("the icsync daemon on {0} did not answer in time; it may be stuck (restart it)")]
    Timeout(PathBuf),
    #[error(
        "the running daemon speaks control protocol {daemon} (icsync {daemon_version}) but this \
         icsync speaks {ours} (icsync {ours_version}); restart the daemon with this version"
    )]
    VersionMismatch {
        daemon: u32,
        daemon_version: String,
        ours: u32,
        ours_version: &'static str,
    },
    #[error("control connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("the daemon sent something this icsync does not understand: {0}")]
    Protocol(String),
    #[error("the daemon closed the connection")]
    Closed,
    /// The daemon refused the connection or a request line as a whole (over the connection
    /// cap, a line over the size limit, ...): its reason.
    #[error("the daemon refused: {0}")]
    Refused(ControlError),
}

pub struct Client {
    path: PathBuf,
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
    next_id: u64,
    /// Events received while waiting for a reply, handed out by [`Client::next_event`].
    pending_events: std::collections::VecDeque<Event>,
    pub daemon_version: String,
}

impl Client {
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = match UnixStream::connect(path).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ClientError::NotRunning(path.to_path_buf()))
            }
            Err(e) => return Err(e.into()),
        };
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let first = tokio::time::timeout(HELLO_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| ClientError::Timeout(path.to_path_buf()))??
            .ok_or(ClientError::Closed)?;
        let hello = match decode(first.as_bytes()) {
            Ok(Frame::Hello { hello }) => hello,
            Ok(Frame::Reply {
                reply: Reply::Error(e),
                ..
            }) => return Err(ClientError::Refused(e)),
            Ok(other) => {
                return Err(ClientError::Protocol(format!(
                    "expected hello, got {other:?}"
                )))
            }
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        };
        if hello.protocol != PROTOCOL_VERSION {
            return Err(ClientError::VersionMismatch {
                daemon: hello.protocol,
                daemon_version: hello.version,
                ours: PROTOCOL_VERSION,
                ours_version: env!("CARGO_PKG_VERSION"),
            });
        }
        Ok(Client {
            path: path.to_path_buf(),
            lines,
            write,
            next_id: 1,
            pending_events: Default::default(),
            daemon_version: hello.version,
        })
    }

    /// What to tell the user when the daemon runs another release than this binary (same
    /// protocol, so it answers, but an upgrade is only half done until it restarts).
    pub fn other_release(&self) -> Option<String> {
        other_release(&self.daemon_version, env!("CARGO_PKG_VERSION"))
    }

    async fn read_frame(&mut self) -> Result<Frame, ClientError> {
        let line = self.lines.next_line().await?.ok_or(ClientError::Closed)?;
        decode(line.as_bytes()).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Sends one request and waits for its reply. When the daemon had closed this connection
    /// as idle, it is opened again and the request sent once more.
    pub async fn request(&mut self, request: Request) -> Result<Reply, ClientError> {
        match self.request_once(request.clone()).await {
            Err(ClientError::Refused(e)) if e.code == ControlErrorCode::IdleTimeout => {
                let fresh = Client::connect(&self.path).await?;
                let events = std::mem::take(&mut self.pending_events);
                *self = fresh;
                self.pending_events = events;
                self.request_once(request).await
            }
            other => other,
        }
    }

    async fn request_once(&mut self, request: Request) -> Result<Reply, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = encode(&Frame::Request { id, request })
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if let Err(e) = self.write.write_all(&bytes).await {
            // Closed by the daemon: its last frame says why, when it said.
            return match tokio::time::timeout(HELLO_TIMEOUT, self.read_frame()).await {
                Ok(Ok(Frame::Reply {
                    reply: Reply::Error(refusal),
                    ..
                })) => Err(ClientError::Refused(refusal)),
                _ => Err(e.into()),
            };
        }
        loop {
            match self.read_frame().await? {
                Frame::Reply { id: got, reply } if got == id => return Ok(reply),
                Frame::Reply {
                    reply: Reply::Error(e),
                    ..
                } => return Err(ClientError::Refused(e)),
                Frame::Event { event } => self.pending_events.push_back(event),
                other => return Err(ClientError::Protocol(format!("unexpected frame {other:?}"))),
            }
        }
    }

    /// Subscribes to events; read them with [`Client::next_event`].
    pub async fn subscribe(&mut self) -> Result<(), ClientError> {
        match self.request(Request::Subscribe).await? {
            Reply::Subscribed => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "expected subscribed, got {other:?}"
            ))),
        }
    }

    /// The next pushed event (after [`Client::subscribe`]).
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        if let Some(e) = self.pending_events.pop_front() {
            return Ok(e);
        }
        match self.read_frame().await? {
            Frame::Event { event } => Ok(event),
            other => Err(ClientError::Protocol(format!("unexpected frame {other:?}"))),
        }
    }
}

/// The warning for a daemon of release `daemon` seen by a binary of release `ours`, or None
/// when they are the same release.
pub fn other_release(daemon: &str, ours: &str) -> Option<String> {
    (daemon != ours).then(|| {
        format!(
            "the running daemon is icsync {daemon} and this command is icsync {ours}: restart \
             the daemon so both are the same release (systemctl --user restart icsync, or stop \
             and start `icsync daemon`)"
        )
    })
}

#[cfg(test)]
mod release_tests {
    use super::other_release;

    #[test]
    fn only_another_release_is_flagged() {
        assert_eq!(other_release("0.3.0", "0.3.0"), None);
        let w = other_release("0.2.9", "0.3.0").unwrap();
        assert!(
            w.contains("icsync 0.2.9") && w.contains("icsync 0.3.0"),
            "{w}"
        );
        assert!(w.contains("restart"), "{w}");
    }
}
