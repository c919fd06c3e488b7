//! `icsync tui`: attach the terminal front end to the running daemon, or, when none runs,
//! start the daemon's own code in this process for as long as the TUI is open (and say so).

use std::time::Duration;

use tokio::sync::watch;

use crate::config::Settings;
use crate::control::{Client, ClientError};
use crate::daemon::{self, DaemonError};
use crate::tui::{self, TuiError};

/// How long an in-process daemon may take to start answering.
const START_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum InteractiveError {
    #[error(transparent)]
    Tui(#[from] TuiError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("the in-process sync engine did not start within {0:?} (see the log in the data dir)")]
    StartTimeout(Duration),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the in-process sync engine failed: {0}")]
    Join(String),
}

/// A daemon running inside this process, stopped (and drained) by [`InProcess::stop`].
pub struct InProcess {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), DaemonError>>,
}

impl InProcess {
    /// Starts the daemon code on `settings` and waits until its socket answers.
    pub async fn start(settings: Settings) -> Result<InProcess, InteractiveError> {
        let socket = settings.socket_path();
        let (stop, mut stopped) = watch::channel(false);
        let mut task = tokio::spawn(daemon::run_in_process(settings, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            match Client::connect(&socket).await {
                Ok(_) => return Ok(InProcess { stop, task }),
                Err(ClientError::NotRunning(_)) => {}
                Err(e) => return Err(e.into()),
            }
            if task.is_finished() {
                // It stopped before answering: report why.
                return match (&mut task).await {
                    Ok(Err(e)) => Err(e.into()),
                    _ => Err(InteractiveError::StartTimeout(START_DEADLINE)),
                };
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(InteractiveError::StartTimeout(START_DEADLINE));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the daemon: the engine drains its requests in flight and the store is flushed.
    pub async fn stop(self) -> Result<(), InteractiveError> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result.map_err(Into::into),
            Err(e) => Err(InteractiveError::Join(e.to_string())),
        }
    }
}

/// Runs the TUI against the daemon, starting one in this process if none runs.
pub async fn run_tui(settings: Settings) -> Result<(), InteractiveError> {
    let socket = settings.socket_path();
    match Client::connect(&socket).await {
        Ok(_) => Ok(tui::run(&socket, None).await?),
        Err(ClientError::NotRunning(_)) => {
            let daemon = InProcess::start(settings).await?;
            let shown = tui::run(
                &socket,
                Some("no daemon was running: syncing from this window until you quit"),
            )
            .await;
            let stopped = daemon.stop().await;
            shown?;
            stopped
        }
        Err(e) => Err(e.into()),
    }
}
