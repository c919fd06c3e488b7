//! The control socket's handler for the daemon's whole life. The store, engine and service
//! live in a session (see the daemon's module docs) that a store fault ends; the socket does
//! not go away with it. While a session serves, requests go to its service; between sessions
//! (starting, reopening after a full disk) they wait for the next one; after a fault, `status`
//! answers with the last counts and the fault, and every other request is refused saying why.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::control::{
    ControlError, ControlErrorCode, Event, Handler, Reply, Request, StatusReport,
};
use crate::service::ControlHandler;
use crate::store::RECOVER_HINT;

/// How long a request waits for a session that is starting.
const START_WAIT: Duration = Duration::from_secs(30);

/// Why no session serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("disk full: {0}; intake and sending resume once space is freed")]
    DiskFull(String),
    /// The store error's text, which already carries the recover hint.
    #[error("{0}")]
    Damaged(String),
}

enum Phase {
    /// No session yet, or between two; status answers with the last counts.
    Between(Option<StatusReport>),
    Serving(Arc<ControlHandler>),
    Fault {
        fault: Fault,
        last: Option<StatusReport>,
    },
}

pub struct Front {
    phase: RwLock<Phase>,
    /// Bumped on every phase change, so waiting requests look again.
    changed: watch::Sender<u64>,
    /// Subscribers get this between sessions (nothing is sent on it).
    idle_events: broadcast::Sender<Event>,
}

enum Current {
    Serving(Arc<ControlHandler>),
    Between(Option<StatusReport>),
    Fault(Fault, Option<StatusReport>),
}

impl Front {
    pub fn new() -> Front {
        Front {
            phase: RwLock::new(Phase::Between(None)),
            changed: watch::channel(0).0,
            idle_events: broadcast::channel(1).0,
        }
    }

    fn set(&self, phase: Phase) {
        *self
            .phase
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = phase;
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn serve(&self, handler: ControlHandler) {
        self.set(Phase::Serving(Arc::new(handler)));
    }

    /// The session is ending: its service is let go; `last` answers status meanwhile.
    pub fn closing(&self, last: StatusReport) {
        self.set(Phase::Between(Some(last)));
    }

    pub fn fault(&self, fault: Fault) {
        let last = match &*self.read() {
            Phase::Between(last) | Phase::Fault { last, .. } => last.clone(),
            Phase::Serving(_) => None,
        };
        self.set(Phase::Fault { fault, last });
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Phase> {
        self.phase
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn current(&self) -> Current {
        match &*self.read() {
            Phase::Serving(h) => Current::Serving(h.clone()),
            Phase::Between(last) => Current::Between(last.clone()),
            Phase::Fault { fault, last } => Current::Fault(fault.clone(), last.clone()),
        }
    }

    /// The current phase, waiting (up to [`START_WAIT`]) while no session serves yet.
    async fn settled(&self) -> Current {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            let current = self.current();
            if !matches!(current, Current::Between(_)) {
                return current;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return current,
            }
        }
    }
}

/// The status a daemon without a session gives: its last counts and why.
pub fn fault_status(fault: &Fault, last: Option<StatusReport>) -> StatusReport {
    let mut report = last.unwrap_or_default();
    report.daemon = true;
    report.online = false;
    report.paused = Some(fault.to_string());
    report.disk_full = matches!(fault, Fault::DiskFull(_));
    report.damaged = matches!(fault, Fault::Damaged(_));
    report
}

fn refused(fault: &Fault) -> Reply {
    let message = match fault {
        Fault::DiskFull(_) => fault.to_string(),
        Fault::Damaged(why) if why.contains(RECOVER_HINT) => why.clone(),
        Fault::Damaged(why) => format!("{why} ({RECOVER_HINT})"),
    };
    Reply::Error(ControlError::new(ControlErrorCode::NotAllowed, message))
}

impl Handler for Front {
    async fn handle(&self, request: Request) -> Reply {
        match self.settled().await {
            Current::Serving(handler) => handler.handle(request).await,
            Current::Fault(fault, last) => match request {
                Request::Status => Reply::Status(fault_status(&fault, last)),
                _ => refused(&fault),
            },
            Current::Between(last) => match (request, last) {
                (Request::Status, Some(mut last)) => {
                    last.paused = Some("the daemon is reopening the store".into());
                    Reply::Status(last)
                }
                _ => Reply::Error(ControlError::new(
                    ControlErrorCode::NotAllowed,
                    "the daemon is opening the store: try again in a moment",
                )),
            },
        }
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        match &*self.read() {
            Phase::Serving(h) => h.events(),
            _ => self.idle_events.subscribe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_status_keeps_the_last_counts_and_says_why() {
        let last = StatusReport {
            queued: 7,
            total: 7,
            ..StatusReport::default()
        };
        let s = fault_status(&Fault::DiskFull("12 KiB free".into()), Some(last));
        assert_eq!(
            (s.queued, s.total, s.disk_full, s.damaged),
            (7, 7, true, false)
        );
        assert!(s.paused.unwrap().starts_with("disk full"));
        let d = fault_status(&Fault::Damaged("store damaged: x".into()), None);
        assert!(d.damaged && d.daemon);
    }

    #[tokio::test]
    async fn after_a_fault_status_answers_and_other_requests_say_why() {
        let front = Front::new();
        front.fault(Fault::Damaged(format!(
            "store damaged: truncated ({RECOVER_HINT})"
        )));
        match front.handle(Request::Status).await {
            Reply::Status(s) => assert!(s.damaged),
            other => panic!("{other:?}"),
        }
        match front.handle(Request::Lock).await {
            Reply::Error(e) => assert!(e.message.contains("icsync recover"), "{}", e.message),
            other => panic!("{other:?}"),
        }
    }
}
