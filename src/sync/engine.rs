//! The tokio engine: executes what `planner`, `policy` and `transition` decide. It owns the
//! in-flight requests and their set (`inflight`: nothing is written to mark a record as being
//! sent), the global gate (401 pause, 429 rate limit, offline and its probe, and
//! the idle probe that notices an unreachable API with nothing to send),
//! the status and the event stream. It decides nothing about outcomes itself.
//!
//! Shape: one task runs [`Engine::run`]; each request is a task in a `JoinSet`; the loop
//! sleeps until the next due time, a `wake()`, a key change, a finished request, the outcome
//! writer or shutdown, never polling. Reads of the store (`due`) are made from the loop
//! directly: sled operations on memory. Outcomes are written off the loop, by one blocking
//! writer task at a time (`write_outcomes`): the outcomes that finish while it writes wait
//! and go together in its next transaction, so the loop keeps requests on the wire while the
//! store works, and outcomes are packed per write. A record stays in the in-flight set until
//! its outcome is written, so it is never sent twice meanwhile. The one fsync is the final
//! flush at shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;
use uuid::Uuid;

use super::inflight::InFlight;
use super::meter::{Part, Work, WorkMeter};
use super::planner::{self, Gate, Offline};
use super::policy::{self, classify, Disposition};
use super::transition::{attempt_entry, finish_attempt, recover_sending, send_plan, SendPlan};
use crate::api::{ApiClient, ApiKey, Reply, Transport};
use crate::store::{Durability, QueueCursor, ReadRecord, RecordId, RecordState, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Requests in flight at once.
    pub concurrency: usize,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Delay between offline probes: doubles from base up to cap.
    pub probe_base: Duration,
    pub probe_cap: Duration,
    /// How long shutdown waits for requests in flight before abandoning them.
    pub drain_deadline: Duration,
    /// With nothing to send, the API is probed when not heard from for this long (and once
    /// at start), so an API that cannot be reached shows as offline with an empty queue.
    pub idle_probe: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            concurrency: 8,
            backoff_base: policy::DEFAULT_BACKOFF_BASE,
            backoff_cap: policy::DEFAULT_BACKOFF_CAP,
            probe_base: Duration::from_secs(1),
            probe_cap: Duration::from_secs(60),
            drain_deadline: Duration::from_secs(10),
            idle_probe: Duration::from_secs(30),
        }
    }
}

/// A 429 without `Retry-After` still pauses the queue, this long.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);
/// Finished requests whose outcomes may wait for the writer: past this, no request starts
/// until it catches up, so a slow store bounds memory and each write's size.
const UNWRITTEN_MAX: usize = 64;
/// Events kept for a slow subscriber before it sees `RecvError::Lagged`.
const EVENT_CAPACITY: usize = 1024;

/// What the engine is doing, as `icsync status` and the TUI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineStatus {
    pub online: bool,
    /// Why sending is paused (a 401), until the key changes.
    pub paused: Option<String>,
    pub rate_limited_until: Option<DateTime<Utc>>,
    pub in_flight: usize,
    pub last_sync_at: Option<DateTime<Utc>>,
}

impl Default for EngineStatus {
    fn default() -> Self {
        EngineStatus {
            online: true,
            paused: None,
            rate_limited_until: None,
            in_flight: 0,
            last_sync_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    RecordChanged { id: RecordId, state: RecordState },
    StatusChanged(EngineStatus),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the sync engine cannot use the store: {0}")]
    Store(#[from] StoreError),
}

/// State shared between the engine and its handles.
struct Shared {
    client: ApiClient,
    status: watch::Sender<EngineStatus>,
    events: broadcast::Sender<EngineEvent>,
    wake: Notify,
    /// Bumped by every `set_api_key`; lets the engine ignore a 401 earned by an older key.
    key_generation: AtomicU64,
    /// The records whose request is out or whose outcome is not yet recorded.
    in_flight: InFlight,
    /// The CPU the engine's store work has taken, by part.
    meter: WorkMeter,
}

/// A cheap, clonable remote control for a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
}

impl EngineHandle {
    pub fn status(&self) -> EngineStatus {
        self.shared.status.borrow().clone()
    }

    /// The API's host (and port, when not the scheme's own): what "cannot reach" names.
    pub fn api_host(&self) -> String {
        self.shared.client.host()
    }

    /// A receiver that always holds the newest status (`wait_for` is handy in tests).
    pub fn status_updates(&self) -> watch::Receiver<EngineStatus> {
        self.shared.status.subscribe()
    }

    /// Call after submitting records so they are sent now rather than at the next timer.
    /// Wake-ups coalesce: a thousand calls before the engine looks cost one pass.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Uses `key` for every request from now on and lifts a 401 pause.
    pub fn set_api_key(&self, key: ApiKey) {
        self.shared.client.set_key(key);
        self.shared.key_generation.fetch_add(1, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.shared.events.subscribe()
    }

    /// The records this engine has in flight (they are `queued` in the store meanwhile).
    pub fn in_flight(&self) -> InFlight {
        self.shared.in_flight.clone()
    }

    /// Counts the CPU time of the engine's store work from now on (see `meter`; off by
    /// default).
    pub fn measure_work(&self) {
        self.shared.meter.start();
    }

    /// The CPU time the engine's store work has taken since [`EngineHandle::measure_work`],
    /// by part.
    pub fn work(&self) -> Work {
        self.shared.meter.read()
    }
}

pub struct Engine {
    store: Store,
    config: EngineConfig,
    shared: Arc<Shared>,
    /// Sending starts paused with this reason (no key configured yet) until a key is set.
    initial_pause: Option<String>,
}

/// A request that finished, with what is needed to record it.
struct Finished {
    plan: SendPlan,
    result: Result<Reply, Transport>,
    at: DateTime<Utc>,
    latency: Duration,
    key_generation: u64,
}

/// A finished request waiting for the writer, with how it was classified and when.
struct Outcome {
    finished: Finished,
    disposition: Disposition,
    at: DateTime<Utc>,
}

/// A request task's end: what it finished with, and the record it was made from.
type Joined = Result<(tokio::task::Id, (Finished, Box<ReadRecord>)), JoinError>;

/// What a write did: each record's new state (`None`: the record is gone).
type Written = Vec<(RecordId, Option<RecordState>)>;

/// The outcome writer's task and the records it is writing.
struct Writer {
    task: JoinHandle<Result<Written, EngineError>>,
    ids: Vec<RecordId>,
}

/// An offline probe's answer, with the key generation it was sent under.
type ProbeOutcome = (u64, Result<Reply, Transport>);

/// What woke the loop.
enum Wake {
    Shutdown,
    Finished(Joined),
    Probe(Result<ProbeOutcome, JoinError>),
    Written(Result<Result<Written, EngineError>, JoinError>),
    /// Outcomes waited for others to join their write long enough.
    WriteDue,
    Nudge,
}

impl Engine {
    pub fn new(store: Store, client: ApiClient, config: EngineConfig) -> Engine {
        let (status, _) = watch::channel(EngineStatus::default());
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Engine {
            store,
            config,
            shared: Arc::new(Shared {
                client,
                status,
                events,
                wake: Notify::new(),
                key_generation: AtomicU64::new(0),
                in_flight: InFlight::default(),
                meter: WorkMeter::default(),
            }),
            initial_pause: None,
        }
    }

    /// Starts with sending paused for `reason` (e.g. no API key yet); the pause lifts on the
    /// next [`EngineHandle::set_api_key`]. Records are still accepted and queued meanwhile.
    pub fn paused_until_key(mut self, reason: impl Into<String>) -> Engine {
        let reason = reason.into();
        // Shown at once: `status` may be asked before the run loop publishes anything.
        self.shared
            .status
            .send_modify(|s| s.paused = Some(reason.clone()));
        self.initial_pause = Some(reason);
        self
    }

    pub fn handle(&self) -> EngineHandle {
        EngineHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Sends queued records until `shutdown` completes, then drains (see [`Runner::drain`]).
    pub async fn run(self, shutdown: impl Future) -> Result<(), EngineError> {
        // "Last sync" outlives the process: the store keeps it.
        let last_sync_at = self.store.last_sync_at()?;
        let mut runner = Runner {
            seen_key_generation: self.shared.key_generation.load(Ordering::SeqCst),
            store: self.store,
            config: self.config,
            shared: self.shared,
            gate: Gate {
                paused: self.initial_pause,
                ..Gate::default()
            },
            tasks: JoinSet::new(),
            task_records: HashMap::new(),
            cursor: QueueCursor::default(),
            pending: Vec::new(),
            pending_since: Instant::now(),
            writer: None,
            probe: None,
            last_sync_at,
            // Nothing heard yet: an idle engine probes at once.
            idle_probe_at: Utc::now(),
        };
        runner.recover()?;
        let outcome = runner.run_until(shutdown).await;
        // Drain even after a store error: requests in flight still deserve their outcome.
        let drained = runner.drain().await;
        outcome.and(drained)
    }
}

struct Runner {
    store: Store,
    config: EngineConfig,
    shared: Arc<Shared>,
    gate: Gate,
    tasks: JoinSet<(Finished, Box<ReadRecord>)>,
    task_records: HashMap<tokio::task::Id, RecordId>,
    /// Where the next walk of the queue resumes (`Store::due_from`).
    cursor: QueueCursor,
    /// Finished requests whose outcomes wait for the writer.
    pending: Vec<(Box<ReadRecord>, Outcome)>,
    /// When the oldest of `pending` arrived (see `planner::write_now`).
    pending_since: Instant,
    writer: Option<Writer>,
    probe: Option<JoinHandle<ProbeOutcome>>,
    seen_key_generation: u64,
    last_sync_at: Option<DateTime<Utc>>,
    /// When an idle engine next probes the API: `idle_probe` after it was last heard from.
    idle_probe_at: DateTime<Utc>,
}

impl Runner {
    /// Records left `sending` by a run of a version that wrote that state go back to the
    /// queue; their revision is unchanged, so they are re-sent with the same key and the
    /// server replays if it had already executed them. (This version never writes it: a
    /// record in flight stays queued, so a crash needs no recovery.)
    fn recover(&mut self) -> Result<(), EngineError> {
        // At most one wave per engine run (the concurrency), so one transaction.
        let left = self.store.in_state(RecordState::Sending)?;
        self.store
            .update_many(&left, Durability::Lazy, |_, r| recover_sending(r))?;
        Ok(())
    }

    /// Requests on the wire (the set also holds finished ones waiting for the writer).
    fn requests_out(&self) -> usize {
        self.tasks.len()
    }

    async fn run_until(&mut self, shutdown: impl Future) -> Result<(), EngineError> {
        tokio::pin!(shutdown);
        loop {
            // The timer is planned from the instant before `dispatch`, not after it: every
            // record due by then was seen by `dispatch` (whose clock reads are later), so the
            // timer need only cover those due after it. With a clock read after `dispatch`, a
            // record falling due in between got no timer at all, and with nothing in flight
            // the queue stalled for good (seen in the daemon's kill -9 test).
            let planned_at = Utc::now();
            self.observe_key_change();
            self.dispatch()?;
            self.gate.idle_probe_at = (self.requests_out() == 0).then_some(self.idle_probe_at);
            self.start_probe_if_due();
            self.publish_status();

            let wake_at = planner::wake_at(
                &self.gate,
                self.store.next_due_at()?,
                self.probe.is_some(),
                planned_at,
            );
            let timer = tokio::time::sleep_until(instant_at(wake_at, Utc::now()));
            let event = tokio::select! {
                biased;
                _ = &mut shutdown => Wake::Shutdown,
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    Wake::Finished(joined)
                }
                result = wait_probe(&mut self.probe), if self.probe.is_some() => {
                    Wake::Probe(result)
                }
                written = wait_writer(&mut self.writer), if self.writer.is_some() => {
                    Wake::Written(written)
                }
                _ = tokio::time::sleep_until(self.pending_since + planner::WRITE_AFTER),
                    if self.writer.is_none() && !self.pending.is_empty() => Wake::WriteDue,
                _ = self.shared.wake.notified() => Wake::Nudge,
                _ = timer, if wake_at.is_some() => Wake::Nudge,
            };
            match event {
                Wake::Shutdown => return Ok(()),
                Wake::Finished(first) => {
                    let joined = self.collect_finished(first);
                    self.finished(joined, true)?;
                }
                Wake::Probe(result) => {
                    self.probe = None;
                    self.probe_finished(result);
                }
                Wake::Written(result) => {
                    self.written(result)?;
                    self.start_writer();
                }
                Wake::WriteDue => self.start_writer(),
                Wake::Nudge => {}
            }
        }
    }

    fn observe_key_change(&mut self) {
        let generation = self.shared.key_generation.load(Ordering::SeqCst);
        if generation != self.seen_key_generation {
            self.seen_key_generation = generation;
            self.gate.paused = None;
        }
    }

    /// Starts as many due records as there are free slots, while the gate is open. Nothing
    /// is written: the records join the in-flight set, under its lock from reading them to
    /// adding them, so an operator's action (which holds it too) is either seen by this read
    /// or refused as in flight.
    fn dispatch(&mut self) -> Result<(), EngineError> {
        loop {
            let now = Utc::now();
            let plans = {
                let mut in_flight = self.shared.in_flight.lock();
                // Slots free on the wire, unless too many outcomes wait for the writer (the set
                // holds the requests out and the outcomes not yet written).
                let free = self
                    .config
                    .concurrency
                    .saturating_sub(self.tasks.len())
                    .min((self.config.concurrency + UNWRITTEN_MAX).saturating_sub(in_flight.len()));
                if free == 0 || !self.gate.is_open(now) {
                    return Ok(());
                }
                let candidates = self.shared.meter.measure(Part::QueueReads, || {
                    self.store.due_from(now, free, &in_flight, &mut self.cursor)
                })?;
                let chosen = planner::select(
                    candidates.iter().map(|r| &r.record),
                    &in_flight,
                    free,
                    &self.gate,
                    now,
                );
                let plans: Vec<(SendPlan, Box<ReadRecord>)> = candidates
                    .into_iter()
                    .filter(|r| chosen.contains(&r.record.id))
                    .filter_map(|r| Some((send_plan(&r.record)?, Box::new(r))))
                    .collect();
                in_flight.extend(plans.iter().map(|(p, _)| p.id));
                plans
            };
            if plans.is_empty() {
                return Ok(());
            }
            for (plan, read) in plans {
                let id = plan.id;
                self.spawn(plan, read);
                self.emit_record(id, RecordState::Sending);
            }
        }
    }

    /// Starts the request for `plan`, made from `read` (which its outcome's write starts
    /// from: see `write_outcomes`).
    fn spawn(&mut self, plan: SendPlan, read: Box<ReadRecord>) {
        let client = self.shared.client.clone();
        let key_generation = self.shared.key_generation.load(Ordering::SeqCst);
        let id = plan.id;
        let task = self.tasks.spawn(async move {
            let at = Utc::now();
            let started = Instant::now();
            let result = client.upsert(&plan.body, &plan.key).await;
            let finished = Finished {
                plan,
                result,
                at,
                latency: started.elapsed(),
                key_generation,
            };
            (finished, read)
        });
        self.task_records.insert(task.id(), id);
    }

    /// Forgets requests whose outcome is unknown (a panicked task's, an abandoned one's):
    /// their records are still queued at the same revision in the store, so they are sent
    /// again with the same key and the server replays if it had executed them. The walk of
    /// the queue starts from its head again, since it has passed them.
    fn forget(&mut self, ids: &[RecordId]) {
        self.leave_flight(ids);
        if !ids.is_empty() {
            self.cursor.reset();
        }
    }

    fn leave_flight(&self, ids: &[RecordId]) {
        let mut in_flight = self.shared.in_flight.lock();
        for id in ids {
            in_flight.remove(id);
        }
    }

    /// Takes every request that has finished by now, the one that woke the loop first.
    fn collect_finished(&mut self, first: Joined) -> Vec<Joined> {
        let mut joined = vec![first];
        while let Some(more) = self.tasks.try_join_next_with_id() {
            joined.push(more);
        }
        joined
    }

    /// Takes a batch of finished requests: the gate first, then the next wave is started, then
    /// the outcomes go to the writer (started now if it is idle and `planner::write_now`
    /// says so, else they wait for its next write). The finished records leave the in-flight
    /// set only once their outcome is written, so no wave picks them up again meanwhile.
    fn finished(&mut self, joined: Vec<Joined>, dispatch_first: bool) -> Result<(), EngineError> {
        let now = Utc::now();
        let mut lost = Vec::new();
        for joined in joined {
            match joined {
                Ok((task, (finished, read))) => {
                    self.task_records.remove(&task);
                    let disposition = classify(&finished.result);
                    self.apply_to_gate(&disposition, &finished, now);
                    let outcome = Outcome {
                        finished,
                        disposition,
                        at: now,
                    };
                    if self.pending.is_empty() {
                        self.pending_since = Instant::now();
                    }
                    self.pending.push((read, outcome));
                }
                Err(e) => {
                    // A request task panicked or was aborted: the outcome is unknown, which
                    // is exactly the crash case: the record is still queued at its revision
                    // and is sent again with its same key.
                    if let Some(id) = self.task_records.remove(&e.id()) {
                        lost.push(id);
                    }
                }
            }
        }
        self.forget(&lost);
        for id in lost {
            self.emit_record(id, RecordState::Queued);
        }
        let dispatched = if dispatch_first {
            self.dispatch()
        } else {
            Ok(())
        };
        self.start_writer();
        dispatched
    }

    /// Hands every pending outcome to a new writer task, unless one is writing already or
    /// they wait for more to join them (`planner::write_now`; the loop's timer ends the wait).
    fn start_writer(&mut self) {
        let waited = self.pending_since.elapsed();
        if planner::write_now(self.pending.len(), waited, self.tasks.len()) {
            self.write_pending();
        }
    }

    /// Hands every pending outcome to a new writer task now, unless one is writing already.
    fn write_pending(&mut self) {
        if self.writer.is_some() || self.pending.is_empty() {
            return;
        }
        let outcomes = std::mem::take(&mut self.pending);
        let ids = outcomes.iter().map(|(_, o)| o.finished.plan.id).collect();
        let store = self.store.clone();
        let backoff = (self.config.backoff_base, self.config.backoff_cap);
        let shared = self.shared.clone();
        let task = tokio::task::spawn_blocking(move || {
            shared.meter.measure(Part::OutcomeWrites, || {
                write_outcomes(&store, outcomes, backoff)
            })
        });
        self.writer = Some(Writer { task, ids });
    }

    /// The writer finished: its records leave the in-flight set (whether or not the write
    /// succeeded: a failed one leaves them queued at their revision, as a crash does).
    fn written(
        &mut self,
        result: Result<Result<Written, EngineError>, JoinError>,
    ) -> Result<(), EngineError> {
        let ids = self.writer.take().map(|w| w.ids).unwrap_or_default();
        self.leave_flight(&ids);
        match result {
            Ok(Ok(states)) => {
                // A record still queued after its outcome (one backing off, or edited while
                // it was in flight) is behind the walk of the queue: start it from the head.
                if states
                    .iter()
                    .any(|(_, state)| matches!(state, Some(RecordState::Queued)))
                {
                    self.cursor.reset();
                }
                for (id, state) in states {
                    if let Some(state) = state {
                        self.emit_record(id, state);
                    }
                }
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => {
                // The write panicked: its outcomes are unknown to the store, which is the
                // crash case again (same revision, same key next time).
                self.cursor.reset();
                tracing::error!(error = %e, "the outcome writer stopped; those records are sent again");
                Ok(())
            }
        }
    }

    fn apply_to_gate(
        &mut self,
        disposition: &Disposition,
        finished: &Finished,
        now: DateTime<Utc>,
    ) {
        self.idle_probe_at = later(now, self.config.idle_probe);
        if matches!(disposition, Disposition::Offline { .. }) {
            self.go_offline(now);
            return;
        }
        // Any HTTP answer proves the API is reachable.
        if self.gate.offline.take().is_some() {
            tracing::info!("the API answers again: online");
        }
        match disposition {
            Disposition::Synced { .. } => self.last_sync_at = Some(now),
            // A 401 for a request sent with a key since replaced says nothing about the new one.
            Disposition::PauseAll { reason }
                if finished.key_generation == self.seen_key_generation =>
            {
                if self.gate.paused.is_none() {
                    tracing::warn!(%reason, "sending paused until the API key changes");
                }
                self.gate.paused = Some(reason.clone());
            }
            Disposition::RateLimited { retry_after } => self.rate_limit(*retry_after, now),
            _ => {}
        }
    }

    fn rate_limit(&mut self, retry_after: Option<Duration>, now: DateTime<Utc>) {
        let wait = retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
        tracing::debug!(wait_ms = wait.as_millis() as u64, "rate limited by the API");
        let until = later(now, wait);
        self.gate.rate_limited_until = Some(match self.gate.rate_limited_until {
            Some(existing) if existing > until => existing,
            _ => until,
        });
    }

    fn go_offline(&mut self, now: DateTime<Utc>) {
        if self.gate.offline.is_none() {
            tracing::warn!("the API does not answer: offline, probing until it does");
            self.gate.offline = Some(Offline {
                next_probe_at: later(now, self.probe_delay(1)),
                failed_probes: 0,
            });
        }
    }

    /// Half fixed, half jitter: probes never fire back to back, yet many clients spread out.
    fn probe_delay(&self, probes: u32) -> Duration {
        let unit = 0.5 + rand::random::<f64>() / 2.0;
        policy::backoff(probes, self.config.probe_base, self.config.probe_cap, unit)
    }

    fn start_probe_if_due(&mut self) {
        if !planner::probe_now(&self.gate, self.probe.is_some(), Utc::now()) {
            return;
        }
        let client = self.shared.client.clone();
        let key_generation = self.shared.key_generation.load(Ordering::SeqCst);
        // Any id will do: that an answer came (a 404, a 401) matters, not the customer.
        self.probe = Some(tokio::spawn(async move {
            (key_generation, client.get_customer(Uuid::nil()).await)
        }));
    }

    fn probe_finished(&mut self, result: Result<ProbeOutcome, JoinError>) {
        let now = Utc::now();
        self.idle_probe_at = later(now, self.config.idle_probe);
        match result {
            Ok((key_generation, Ok(reply))) => {
                if self.gate.offline.take().is_some() {
                    tracing::info!("the API answers again: online");
                }
                // The same reading of a reply as for upserts; only the gate-level parts apply.
                match classify(&Ok(reply)) {
                    Disposition::PauseAll { reason }
                        if key_generation == self.seen_key_generation =>
                    {
                        self.gate.paused = Some(reason);
                    }
                    Disposition::RateLimited { retry_after } => self.rate_limit(retry_after, now),
                    _ => {}
                }
            }
            // An idle probe that gets no answer: offline, probing on as any offline engine.
            Ok((_, Err(_))) | Err(_) if self.gate.offline.is_none() => self.go_offline(now),
            Ok((_, Err(_))) | Err(_) => {
                let delay = self
                    .gate
                    .offline
                    .map(|o| self.probe_delay(o.failed_probes + 2));
                if let (Some(offline), Some(delay)) = (self.gate.offline.as_mut(), delay) {
                    offline.failed_probes += 1;
                    offline.next_probe_at = later(now, delay);
                }
            }
        }
    }

    fn publish_status(&mut self) {
        let now = Utc::now();
        if matches!(self.gate.rate_limited_until, Some(until) if until <= now) {
            self.gate.rate_limited_until = None;
        }
        let status = EngineStatus {
            online: self.gate.offline.is_none(),
            paused: self.gate.paused.clone(),
            rate_limited_until: self.gate.rate_limited_until,
            in_flight: self.requests_out(),
            last_sync_at: self.last_sync_at,
        };
        let changed = self.shared.status.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status.clone();
                true
            }
        });
        if changed {
            // No subscribers is not an error.
            let _ = self.shared.events.send(EngineEvent::StatusChanged(status));
        }
    }

    fn emit_record(&self, id: RecordId, state: RecordState) {
        let _ = self
            .shared
            .events
            .send(EngineEvent::RecordChanged { id, state });
    }

    /// Stops dispatching, waits for requests in flight until the drain deadline and records
    /// their outcomes, forgets abandoned requests (their records are still queued at the same
    /// revision: same key next time), then flushes the store to disk.
    async fn drain(&mut self) -> Result<(), EngineError> {
        if let Some(probe) = self.probe.take() {
            probe.abort();
        }
        let deadline = Instant::now() + self.config.drain_deadline;
        let mut first_error = None;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(first)) => {
                    let joined = self.collect_finished(first);
                    if let Err(e) = self.finished(joined, false) {
                        first_error.get_or_insert(e);
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        self.tasks.abort_all();
        self.task_records.clear();
        // Every outcome taken is written before the flush: the writer's current batch, then
        // what waited for it, without waiting for more to join.
        self.write_pending();
        while self.writer.is_some() {
            let result = wait_writer(&mut self.writer).await;
            if let Err(e) = self.written(result) {
                first_error.get_or_insert(e);
            }
            self.write_pending();
        }
        // Abandoned requests' records are queued in the store already.
        self.shared.in_flight.lock().clear();
        self.publish_status();
        // The one write that must reach the disk: everything recorded lazily above.
        let flushed = self.store.flush().map_err(EngineError::from);
        match first_error {
            Some(e) => Err(e),
            None => flushed,
        }
    }
}

async fn wait_writer(
    writer: &mut Option<Writer>,
) -> Result<Result<Written, EngineError>, JoinError> {
    match writer.as_mut() {
        Some(w) => (&mut w.task).await,
        None => std::future::pending().await,
    }
}

/// Writes a batch of outcomes in one transaction (the writer task's work, off the loop), and
/// notes the last sync when any synced.
fn write_outcomes(
    store: &Store,
    outcomes: Vec<(Box<ReadRecord>, Outcome)>,
    (base, cap): (Duration, Duration),
) -> Result<Written, EngineError> {
    // Each write starts from the record as its request was made from it, not read and
    // opened again; the store changes it again from what it holds if it changed meanwhile
    // (an edit while the request was out).
    let (read, outcomes): (Vec<ReadRecord>, Vec<Outcome>) =
        outcomes.into_iter().map(|(read, o)| (*read, o)).unzip();
    let ids: Vec<RecordId> = outcomes.iter().map(|o| o.finished.plan.id).collect();
    let attempts: Vec<_> = outcomes
        .iter()
        .map(|o| {
            let f = &o.finished;
            attempt_entry(&f.plan, &f.result, f.at, f.latency)
        })
        .collect();
    let randoms: Vec<f64> = outcomes.iter().map(|_| rand::random()).collect();
    // Lazy is safe here: if the process dies before sled's next flush, these outcomes
    // are lost and the records are found queued at the same revision next time, so they
    // are re-sent with the same derived keys and the server replays its stored answers.
    // Losing an outcome costs one request, never a duplicate customer.
    let states = store.update_read(read, Durability::Lazy, |i, record| {
        let Outcome {
            finished,
            disposition,
            at,
        } = &outcomes[i];
        let next_attempt_at = match disposition {
            Disposition::RetryLater { retry_after, .. } => {
                let delay = policy::retry_delay(
                    record.failures.saturating_add(1),
                    *retry_after,
                    base,
                    cap,
                    randoms[i],
                );
                Some(later(*at, delay))
            }
            // These wait on the global gate, not on the record.
            _ => None,
        };
        finish_attempt(
            record,
            finished.plan.revision,
            attempts[i].clone(),
            disposition,
            next_attempt_at,
            *at,
        )
    })?;
    if let Some(synced) = outcomes
        .iter()
        .filter(|o| matches!(o.disposition, Disposition::Synced { .. }))
        .map(|o| o.at)
        .max()
    {
        store.note_last_sync(synced)?;
    }
    for ((outcome, attempt), state) in outcomes.iter().zip(&attempts).zip(&states) {
        // Ids, revisions and statuses only: never the payload, the key or error texts
        // (a server message may quote a field's value).
        tracing::debug!(
            record = %outcome.finished.plan.id,
            revision = outcome.finished.plan.revision,
            status = ?attempt.status,
            replayed = attempt.replayed,
            latency_ms = attempt.latency_ms,
            state = ?state,
            "attempt finished"
        );
    }
    Ok(ids.into_iter().zip(states).collect())
}

async fn wait_probe(
    probe: &mut Option<JoinHandle<ProbeOutcome>>,
) -> Result<ProbeOutcome, JoinError> {
    match probe.as_mut() {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

/// `now + d`, saturating instead of panicking on absurd durations.
fn later(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The tokio instant for a wall-clock time; far in the future for `None` (the timer branch
/// is disabled then anyway).
fn instant_at(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Instant {
    let far = Instant::now() + Duration::from_secs(24 * 60 * 60);
    match at {
        Some(at) => Instant::now() + (at - now).to_std().unwrap_or(Duration::ZERO),
        None => far,
    }
}
