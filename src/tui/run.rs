//! The terminal loop: the only part of the TUI that does I/O.
//!
//! Three tasks feed the loop through bounded channels: one reads crossterm's event stream,
//! one owns the request connection to the daemon (requests go out one at a time, each reply
//! comes back with its purpose), one owns a second, subscribed connection and forwards
//! pushed events. The loop itself only hands inputs to the [`App`], queues the requests it
//! asks for, and draws when the app says something changed, so rendering never waits on the
//! network or the disk.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::app::{App, Effect, Incoming, Outgoing};
use super::theme::Theme;
use super::ui;
use crate::control::{Client, ClientError};

/// How often the clock ticks: dirty lists are reloaded at most this often.
const TICK: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("{0} (start it with `icsync daemon`, then run `icsync tui` again)")]
    NoDaemon(ClientError),
    #[error("cannot talk to the icsync daemon: {0}")]
    Daemon(ClientError),
    #[error("terminal error: {0}")]
    Terminal(#[from] io::Error),
}

impl From<ClientError> for TuiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::NotRunning(_) => TuiError::NoDaemon(e),
            other => TuiError::Daemon(other),
        }
    }
}

/// Restores the terminal however the loop ends (ratatui's panic hook covers panics).
/// `ratatui::restore` reports a failure with `eprintln!`, which panics when stderr is a
/// terminal that has gone away; this reports it with a write whose failure is ignored.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Err(e) = ratatui::try_restore() {
            use std::io::Write;
            let _ = writeln!(io::stderr(), "cannot restore the terminal: {e}");
        }
    }
}

/// Whether `e` says the terminal has gone away (hung up, closed).
fn terminal_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::ENXIO))
}

/// After the terminal has gone away, every write to it fails, and `eprintln!` (ratatui's
/// own clean-up uses it) panics on a failed write, which would skip the clean-up after it:
/// stdout and stderr go to /dev/null instead.
pub fn detach_from_terminal() {
    use std::os::fd::AsRawFd;
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        for fd in [1, 2] {
            // SAFETY: dup2 on descriptors this process owns; `null` stays open for the call,
            // and the duplicates keep /dev/null open after it is dropped.
            unsafe {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
}

/// Aborts the helper tasks when the loop ends.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Attaches to the daemon listening on `socket_path` and runs the TUI until the user quits.
/// Fails before touching the terminal when no daemon answers. `in_process`, when given, says
/// the daemon was started by this process for the TUI: the corner badge says so and the
/// message is shown at start.
pub async fn run(socket_path: &Path, in_process: Option<&str>) -> Result<(), TuiError> {
    let requests = Client::connect(socket_path).await?;
    let mut events = Client::connect(socket_path).await?;
    events.subscribe().await?;
    let daemon_version = requests.daemon_version.clone();

    let theme = Theme::from_env();
    let mut terminal = ratatui::try_init()?;
    let _guard = TerminalGuard;
    let size = terminal.size()?;
    let mut app = App::new(Utc::now(), size.height);
    if let Some(message) = in_process {
        app.mark_in_process(message);
    }

    let (incoming_tx, mut incoming) = mpsc::channel::<Incoming>(256);
    let (outgoing, outgoing_rx) = mpsc::channel::<Outgoing>(64);
    let (term_tx, mut term_events) = mpsc::channel::<TermEvent>(64);
    let _tasks = Tasks(vec![
        tokio::spawn(request_task(requests, outgoing_rx, incoming_tx.clone())),
        tokio::spawn(event_task(events, incoming_tx)),
        tokio::spawn(terminal_task(term_tx)),
    ]);

    let mut effects = app.start();
    effects.extend(app.apply(Incoming::Connected { daemon_version }));
    let mut backlog: VecDeque<Outgoing> = VecDeque::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    loop {
        for effect in effects.drain(..) {
            match effect {
                Effect::Send(o) => backlog.push_back(o),
                Effect::Redraw => dirty = true,
                Effect::Quit => return Ok(()),
            }
        }
        // Never wait for the request task: what does not fit now goes on the next turn.
        while let Some(o) = backlog.pop_front() {
            match outgoing.try_send(o) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(o)) => {
                    backlog.push_front(o);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    backlog.clear();
                    break;
                }
            }
        }
        if dirty {
            if let Err(e) = terminal.draw(|frame| ui::draw(frame, &app, &theme)) {
                if terminal_gone(&e) {
                    detach_from_terminal();
                }
                return Err(e.into());
            }
            dirty = false;
        }
        tokio::select! {
            Some(ev) = term_events.recv() => match ev {
                TermEvent::Key(key) if key.kind != KeyEventKind::Release => {
                    effects = app.handle_key(key);
                }
                TermEvent::Resize(width, height) => {
                    effects = app.apply(Incoming::Resize { width, height });
                }
                _ => {}
            },
            Some(inc) = incoming.recv() => effects = app.apply(inc),
            _ = ticker.tick() => effects = app.apply(Incoming::Tick(Utc::now())),
        }
    }
}

async fn request_task(
    mut client: Client,
    mut outgoing: mpsc::Receiver<Outgoing>,
    incoming: mpsc::Sender<Incoming>,
) {
    while let Some(Outgoing { purpose, request }) = outgoing.recv().await {
        let message = match client.request(request).await {
            Ok(reply) => Incoming::Reply { purpose, reply },
            Err(e) => {
                let _ = incoming
                    .send(Incoming::Disconnected {
                        reason: e.to_string(),
                    })
                    .await;
                return;
            }
        };
        if incoming.send(message).await.is_err() {
            return;
        }
    }
}

async fn event_task(mut client: Client, incoming: mpsc::Sender<Incoming>) {
    loop {
        match client.next_event().await {
            // Events are hints to reload: when the loop is behind, dropping some loses
            // nothing, as those still queued mark the same lists dirty.
            Ok(event) => match incoming.try_send(Incoming::Event(event)) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            },
            Err(e) => {
                let _ = incoming
                    .send(Incoming::Disconnected {
                        reason: e.to_string(),
                    })
                    .await;
                return;
            }
        }
    }
}

async fn terminal_task(events: mpsc::Sender<TermEvent>) {
    let mut stream = EventStream::new();
    while let Some(Ok(ev)) = stream.next().await {
        if events.send(ev).await.is_err() {
            return;
        }
    }
}
