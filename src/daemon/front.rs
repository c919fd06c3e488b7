//! The control socket's handler for the daemon's whole life. The store, engine and service
//! live in a session (see the daemon's module docs) that a store fault ends; the socket does
//! not go away with it. While a session serves, requests go to its service; between sessions
//! (starting, reopening after a full disk) they wait for the next one; after a fault, `status`
//! answers with the last counts and the fault, and every other request is refused saying why.
//!
//! Event subscriptions belong to the front too, so they outlive sessions: a subscriber (the
//! TUI) holds a receiver of the front's own channel, and each session's events are forwarded
//! into it while that session serves. A fault is pushed to subscribers as a status event (the
//! TUI's banner says "disk full" or "store damaged" at once), and so is the first status of
//! a session that starts after a reopen, which says the store is back.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::control::{
    ControlError, ControlErrorCode, Event, Handler, Reply, Request, StatusReport,
};
use crate::service::ControlHandler;
use crate::store::RECOVER_HINT;

/// How long a request waits for a session that is starting.
const START_WAIT: Duration = Duration::from_secs(30);
/// Events a subscriber may fall behind by before it skips (as a session's own channel).
const EVENTS_BACKLOG: usize = 1024;

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
    /// What subscribers receive, across sessions.
    events: broadcast::Sender<Event>,
    /// The task forwarding the serving session's events into `events`.
    forwarder: Mutex<Option<tokio::task::JoinHandle<()>>>,
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
            events: broadcast::channel(EVENTS_BACKLOG).0,
            forwarder: Mutex::new(None),
        }
    }

    /// Forwards `handler`'s events to the front's subscribers (replacing the previous
    /// session's forwarder), starting with its status: after a reopen, that is how a
    /// subscriber learns the store is back. Without a runtime (no socket served) nothing is
    /// forwarded.
    fn forward(&self, handler: Option<Arc<ControlHandler>>) {
        let mut slot = self
            .forwarder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = slot.take() {
            old.abort();
        }
        let (Some(handler), Ok(runtime)) = (handler, tokio::runtime::Handle::try_current()) else {
            return;
        };
        let tx = self.events.clone();
        let mut rx = handler.events();
        // Held weakly: the session's store must close when the session ends, whatever this
        // task is doing then (the next session opens the same files).
        let handler = Arc::downgrade(&handler);
        *slot = Some(runtime.spawn(async move {
            let status = match handler.upgrade() {
                Some(h) => h.handle(Request::Status).await,
                None => return,
            };
            if let Reply::Status(s) = status {
                let _ = tx.send(Event::Status(s));
            }
            loop {
                match rx.recv().await {
                    // No subscriber is not an error.
                    Ok(event) => {
                        let _ = tx.send(event);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }));
    }

    fn set(&self, phase: Phase) {
        *self
            .phase
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = phase;
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn serve(&self, handler: ControlHandler) {
        let handler = Arc::new(handler);
        self.forward(Some(handler.clone()));
        self.set(Phase::Serving(handler));
    }

    /// The session is ending: its service is let go; `last` answers status meanwhile.
    pub fn closing(&self, last: StatusReport) {
        self.forward(None);
        self.set(Phase::Between(Some(last)));
    }

    pub fn fault(&self, fault: Fault) {
        self.forward(None);
        let last = match &*self.read() {
            Phase::Between(last) | Phase::Fault { last, .. } => last.clone(),
            Phase::Serving(_) => None,
        };
        let _ = self
            .events
            .send(Event::Status(fault_status(&fault, last.clone())));
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
        self.events.subscribe()
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

    fn session(dir: &std::path::Path) -> (ControlHandler, broadcast::Sender<Event>) {
        use crate::store::{Store, StoreOptions};
        let keys = crate::crypto::KeyConfig::file(dir.join("data.key"));
        let store = Store::open_with_key(dir, StoreOptions::default(), &keys, None).unwrap();
        let service = crate::service::Service::new(store, None);
        let sender = service.event_sender();
        (ControlHandler(Arc::new(service)), sender)
    }

    /// The next event, or a panic after a deadline (none came).
    async fn next(rx: &mut broadcast::Receiver<Event>) -> Event {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
            .expect("the subscription is open")
    }

    #[tokio::test]
    async fn a_subscription_outlives_a_fault_and_the_reopen_after_it() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let front = Front::new();
        let (handler, sender) = session(one.path());
        front.serve(handler);
        let mut rx = front.events();
        assert!(matches!(next(&mut rx).await, Event::Status(_)));
        let _ = sender.send(Event::Status(StatusReport {
            queued: 3,
            ..StatusReport::default()
        }));
        assert!(matches!(next(&mut rx).await, Event::Status(s) if s.queued == 3));

        // The session ends on a full disk: subscribers are told, and the old session's
        // channel closing does not end their subscription.
        front.fault(Fault::DiskFull("0 KiB free".into()));
        drop(sender);
        assert!(matches!(next(&mut rx).await, Event::Status(s) if s.disk_full));

        // A new session: its first status says the store is back, and its events arrive on
        // the subscription made before the fault.
        let (handler, sender) = session(two.path());
        front.serve(handler);
        assert!(matches!(next(&mut rx).await, Event::Status(s) if !s.disk_full && !s.damaged));
        let id = crate::store::RecordId::new();
        let _ = sender.send(Event::RecordChanged {
            id,
            state: crate::store::RecordState::Queued,
        });
        assert!(matches!(next(&mut rx).await, Event::RecordChanged { id: got, .. } if got == id));
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
