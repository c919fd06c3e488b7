//! What each command does to the records, in one place, whoever asks: the daemon answers
//! control requests with it, and the CLI uses it directly on the store when no daemon runs.
//! It validates input with the contract, applies operator actions in store transactions,
//! wakes the engine and announces changes. It never talks HTTP and never names sled.

pub mod actions;
mod drops;
pub mod sorted;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::contract::{ErrorKind, FieldError};
use crate::control::{
    ControlError, ControlErrorCode, Event, FileTaken, Handler, InvalidItem, ListSort, Queued,
    Reply, Request, ResolveAction, SortCursor, SortKey, SortProgress, StatusReport,
    MAX_CHECK_PROBLEMS,
};
use crate::crypto::Passphrase;
use crate::store::{
    DropFileEntry, DropProgress, DropStage, Durability, EditRefused, Edited, Fingerprint, Origin,
    Payload, ReadyBatch, Record, RecordError, RecordId, RecordState, SealAhead, Store, StoreError,
    Submission, SubmitOutcome, Submitted,
};
use crate::sync::InFlight;

pub use actions::ActionError;
use sorted::{SortConfig, Sorter, ViewSpec};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the record is not valid")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error("no record {0}")]
    NotFound(String),
    /// A `drop_report` naming no report of a recent drop-folder file.
    #[error("no recent drop-folder file has the report {0:?}")]
    NoSuchReport(String),
    /// A drop-folder report that exists but cannot be read.
    #[error("cannot read the drop-folder report {path}: {error}")]
    Report { path: String, error: std::io::Error },
    #[error("{0}")]
    NotAllowed(String),
    /// Building a sorted view failed (the message names the store's failure, no record).
    #[error("{0}")]
    Sort(String),
    /// A `list` page larger than [`crate::control::MAX_PAGE`].
    #[error(
        "a page of {0} records is over the limit of {max}: ask for at most {max} and page on \
         with `after`",
        max = crate::control::MAX_PAGE
    )]
    PageTooLarge(usize),
}

impl From<ServiceError> for ControlError {
    fn from(e: ServiceError) -> Self {
        let code = match &e {
            ServiceError::Invalid(_) | ServiceError::Action(ActionError::Invalid(_)) => {
                ControlErrorCode::Invalid
            }
            ServiceError::NotFound(_) | ServiceError::NoSuchReport(_) => ControlErrorCode::NotFound,
            ServiceError::Store(
                StoreError::Ambiguous { .. } | StoreError::AmbiguousHandle { .. },
            ) => ControlErrorCode::Ambiguous,
            ServiceError::Store(StoreError::NoMatch { .. } | StoreError::NoRecord { .. }) => {
                ControlErrorCode::NotFound
            }
            ServiceError::Store(
                StoreError::PrefixTooShort { .. }
                | StoreError::PrefixInvalid { .. }
                | StoreError::HandleInvalid,
            ) => ControlErrorCode::BadId,
            ServiceError::PageTooLarge(_) => ControlErrorCode::TooLarge,
            ServiceError::Action(_) | ServiceError::NotAllowed(_) => ControlErrorCode::NotAllowed,
            ServiceError::Store(
                StoreError::KeyLocked | StoreError::Key(crate::crypto::KeyError::PassphraseNeeded),
            ) => ControlErrorCode::Locked,
            ServiceError::Store(StoreError::Key(_)) => ControlErrorCode::NotAllowed,
            ServiceError::Store(_) | ServiceError::Sort(_) | ServiceError::Report { .. } => {
                ControlErrorCode::Internal
            }
        };
        let invalid = match &e {
            ServiceError::Invalid(v) | ServiceError::Action(ActionError::Invalid(v)) => v.clone(),
            _ => Vec::new(),
        };
        ControlError {
            code,
            // An id prefix quoted back is as long as the request made it.
            message: crate::control::bounded_message(e.to_string()),
            invalid,
        }
    }
}

/// A SHA-256 as hex, from a request.
fn fingerprint(sha256: &str) -> Result<Fingerprint, ServiceError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(sha256, &mut bytes)
        .map_err(|_| ServiceError::NotAllowed(format!("{sha256:?} is not a SHA-256 in hex")))?;
    Ok(Fingerprint(bytes))
}

/// What the service needs to know of a sync engine running in this process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncHealth {
    pub online: bool,
    /// Why sending is paused (401, rate limit, no key), if it is.
    pub paused: Option<String>,
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The API's host (no path, credentials or key), for "cannot reach <host>".
    pub api_host: Option<String>,
}

/// The engine as the service sees it: its health, a nudge when records were queued, and the
/// records it has in flight (`queued` in the store meanwhile).
pub trait SyncLink: Send + Sync + 'static {
    fn health(&self) -> SyncHealth;
    fn wake(&self);
    fn in_flight(&self) -> Option<InFlight> {
        None
    }
}

/// Unlocking and locking the store, where a daemon can start and stop sending.
pub trait KeyControl: Send + Sync + 'static {
    fn unlock(&self, passphrase: &Passphrase) -> Result<(), ServiceError>;
    fn lock(&self) -> Result<(), ServiceError>;
}

/// One record of a dropped file, for [`Service::submit_drop_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropItem {
    pub payload: Payload,
    pub origin: Origin,
    /// The `_icsync_id` it carried (from `icsync export`): the record to apply it to.
    pub record_id: Option<String>,
}

/// Records operations over one store, with the engine when one runs in this process.
#[derive(Clone)]
pub struct Service {
    store: Store,
    engine: Option<Arc<dyn SyncLink>>,
    keys: Option<Arc<dyn KeyControl>>,
    events: broadcast::Sender<Event>,
    /// Sorted views by name and newest change, shared by every clone (see `sorted`).
    sorter: Arc<Sorter>,
    /// Why the drop folder is not watched, shared by every clone; status reports it.
    drop_problem: Arc<std::sync::Mutex<Option<String>>>,
    /// Why the store stayed locked at start (the keychain could not give its key), shared by
    /// every clone; status says it while the store is locked, until an unlock succeeds.
    lock_problem: Arc<std::sync::Mutex<Option<String>>>,
    /// The drop folder, where a daemon watches one: drop-folder reports are read there.
    drop_dir: Option<Arc<std::path::Path>>,
    /// Raised after every bulk write (`submit_batch`), shared by every clone: the daemon
    /// folds the terms they leave pending once it stops being raised (see `store::pending`).
    bulk_written: Arc<tokio::sync::Notify>,
}

impl Service {
    pub fn new(store: Store, engine: Option<Arc<dyn SyncLink>>) -> Self {
        let (events, _) = broadcast::channel(1024);
        Service {
            store,
            engine,
            keys: None,
            events,
            sorter: Arc::new(Sorter::new(SortConfig::default())),
            drop_problem: Arc::default(),
            lock_problem: Arc::default(),
            drop_dir: None,
            bulk_written: Arc::default(),
        }
    }

    /// Notified after every bulk write whose new records' index terms are left pending.
    pub fn bulk_written(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.bulk_written)
    }

    /// The same service reading drop-folder reports in `dir` (the daemon's drop folder).
    pub fn with_drop_dir(mut self, dir: &std::path::Path) -> Self {
        self.drop_dir = Some(Arc::from(dir));
        self
    }

    /// Records why the drop folder is not watched (`None` once it is), for status.
    pub fn set_drop_problem(&self, problem: Option<String>) {
        *self.drop_problem.lock().unwrap_or_else(|e| e.into_inner()) = problem;
    }

    /// Records why the store stayed locked when it should have opened by itself (a keychain
    /// that could not give the key): status shows it as the pause while the store is locked.
    pub fn set_lock_problem(&self, problem: Option<String>) {
        *self.lock_problem.lock().unwrap_or_else(|e| e.into_inner()) = problem;
    }

    /// The same service with sorted views tuned by `config` (tests shorten the timings).
    pub fn with_sort_config(mut self, config: SortConfig) -> Self {
        self.sorter = Arc::new(Sorter::new(config));
        self
    }

    /// Sorted views held in memory (built or being built).
    pub fn sorted_views(&self) -> usize {
        self.sorter.views()
    }

    /// Lets `unlock` and `lock` requests through to `keys` (the daemon).
    pub fn with_keys(mut self, keys: Arc<dyn KeyControl>) -> Self {
        self.keys = Some(keys);
        self
    }

    fn keys(&self) -> Result<&Arc<dyn KeyControl>, ServiceError> {
        self.keys.as_ref().ok_or_else(|| {
            ServiceError::NotAllowed(
                "no daemon is running: unlock and lock apply to a running `icsync daemon`".into(),
            )
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The sender behind [`Handler::events`], for the daemon to forward engine events into.
    pub fn event_sender(&self) -> broadcast::Sender<Event> {
        self.events.clone()
    }

    fn changed(&self, record: &Record) {
        // No subscriber is not an error.
        let _ = self.events.send(Event::RecordChanged {
            id: record.id,
            state: record.state,
        });
    }

    /// One event (for the last record a batch changed) and a wake-up, when a batch changed
    /// anything: listeners reload on any change, so one event per batch is enough.
    fn announce_queued(&self, done: &[Submitted]) {
        if let Some(last) = done.iter().rev().find(|s| s.changed()) {
            let _ = self.events.send(Event::RecordChanged {
                id: last.id,
                state: RecordState::Queued,
            });
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(engine) = &self.engine {
            engine.wake();
        }
    }

    /// The engine's in-flight set, when an engine runs in this process.
    fn in_flight(&self) -> Option<InFlight> {
        self.engine.as_ref().and_then(|e| e.in_flight())
    }

    /// A record as the operator sees it: `sending` while the engine has it in flight.
    fn as_seen(&self, mut record: Record, in_flight: Option<&InFlight>) -> Record {
        if record.state == RecordState::Queued && in_flight.is_some_and(|f| f.contains(record.id)) {
            record.state = RecordState::Sending;
        }
        record
    }

    pub fn status(&self) -> Result<StatusReport, ServiceError> {
        let counts = self.store.counts()?;
        // Records in flight are queued in the store; stores of older versions may still hold
        // `sending` ones until the engine's start-up puts them back.
        let in_flight = self.in_flight().map_or(0, |f| f.len() as u64);
        let mut report = StatusReport {
            queued: counts.get(RecordState::Queued).saturating_sub(in_flight),
            sending: counts.get(RecordState::Sending) + in_flight,
            synced: counts.get(RecordState::Synced),
            conflict: counts.get(RecordState::Conflict),
            rejected: counts.get(RecordState::Rejected),
            discarded: counts.get(RecordState::Discarded),
            total: counts.total,
            locked: self.store.is_locked(),
            ..StatusReport::default()
        };
        if let Some(engine) = &self.engine {
            let h = engine.health();
            report.daemon = true;
            report.online = h.online;
            report.paused = h.paused;
            report.last_sync_at = h.last_sync_at;
            report.api_host = h.api_host;
        }
        if report.last_sync_at.is_none() {
            // No engine here (the CLI on the store), or one that has not synced yet.
            report.last_sync_at = self.store.last_sync_at()?;
        }
        if report.locked && report.paused.is_none() {
            report.paused = self
                .lock_problem
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
        }
        report.drop_folder_problem = self
            .drop_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(report)
    }

    pub fn list(
        &self,
        state: Option<RecordState>,
        after: Option<RecordId>,
        limit: usize,
    ) -> Result<Vec<Record>, ServiceError> {
        let in_flight = self.in_flight();
        let Some(f) = in_flight
            .as_ref()
            .filter(|_| state == Some(RecordState::Sending))
        else {
            let records = self.store.list(state, after, limit)?;
            return Ok(records
                .into_iter()
                .map(|r| self.as_seen(r, in_flight.as_ref()))
                .collect());
        };
        // Nothing is `sending` in the store: the engine's set says which records are.
        let mut out = self.store.list(state, after, limit)?;
        for id in f
            .ids()
            .into_iter()
            .filter(|id| after.is_none_or(|a| *id > a))
        {
            if out.len() >= limit {
                break;
            }
            if let Some(r) = self.store.get(id)? {
                out.push(self.as_seen(r, Some(f)));
            }
        }
        out.retain(|r| r.state == RecordState::Sending);
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// Up to `limit` records after `after`, in queue order, whose full name, email or
    /// external id contains `query` ignoring case. The store has no index on these (they
    /// are sealed at rest), so this walks the list page by page, decrypting as it goes: it
    /// stops after [`SEARCH_SCAN_MAX`] records and returns what it found, so one request
    /// never holds the daemon for long; [`SearchPage::resume_after`] then says where the
    /// next request carries on.
    pub fn search(
        &self,
        state: Option<RecordState>,
        after: Option<RecordId>,
        limit: usize,
        query: &str,
    ) -> Result<SearchPage, ServiceError> {
        self.search_with_cap(state, after, limit, query, SEARCH_SCAN_MAX)
    }

    /// [`Service::search`] reading at most `cap` records (a parameter so tests can reach
    /// the cap without 50,000 records).
    fn search_with_cap(
        &self,
        state: Option<RecordState>,
        after: Option<RecordId>,
        limit: usize,
        query: &str,
        cap: usize,
    ) -> Result<SearchPage, ServiceError> {
        let needle = query.trim().to_lowercase();
        if needle.is_empty() {
            return Ok(SearchPage {
                records: self.list(state, after, limit)?,
                resume_after: None,
            });
        }
        let mut found = Vec::new();
        let mut cursor = after;
        let mut scanned = 0;
        let mut end = false;
        while found.len() < limit && scanned < cap {
            let want = SEARCH_PAGE.min(cap - scanned);
            let page = self.store.list(state, cursor, want)?;
            scanned += page.len();
            cursor = page.last().map(|r| r.id).or(cursor);
            end = page.len() < want;
            found.extend(
                page.into_iter()
                    .filter(|r| matches_query(r, &needle))
                    .take(limit - found.len()),
            );
            if end {
                break;
            }
        }
        // With `limit` matches the last one is the cursor already; only a scan cut short by
        // the cap needs to say where it stopped (the last record read, match or not).
        let resume_after = (!end && found.len() < limit).then_some(cursor).flatten();
        Ok(SearchPage {
            records: found,
            resume_after,
        })
    }

    /// One page of `list` in any order: queue order (and search) as [`Service::search`];
    /// by state, a walk of the state index; by name or newest change, from a sorted view
    /// (see `sorted`). `after_key` is the key of `after` in that order.
    #[allow(clippy::too_many_arguments)]
    pub fn list_page(
        &self,
        state: Option<RecordState>,
        after: Option<RecordId>,
        after_key: Option<SortKey>,
        limit: usize,
        query: Option<&str>,
        sort: ListSort,
    ) -> Result<ListPage, ServiceError> {
        if limit > crate::control::MAX_PAGE {
            return Err(ServiceError::PageTooLarge(limit));
        }
        let needle = query
            .map(|q| q.trim().to_lowercase())
            .filter(|q| !q.is_empty());
        let cursor = match (after, after_key) {
            (Some(id), Some(key)) => Some(SortCursor { id, key }),
            (None, _) => None,
            (Some(_), None) if sort.is_queue() => None,
            (Some(_), None) => {
                return Err(ServiceError::NotAllowed(
                    "a sorted list pages on with after and after_key (from the reply's next)"
                        .into(),
                ))
            }
        };
        match sort {
            ListSort::Queue => {
                let p = match &needle {
                    Some(n) => self.search(state, after, limit, n)?,
                    None => SearchPage {
                        records: self.list(state, after, limit)?,
                        resume_after: None,
                    },
                };
                Ok(ListPage {
                    records: p.records,
                    resume_after: p.resume_after,
                    next: None,
                    sorting: None,
                })
            }
            ListSort::State => {
                let from = match cursor {
                    Some(SortCursor {
                        id,
                        key: SortKey::State(s),
                    }) => Some((s, id)),
                    Some(_) => {
                        return Err(ServiceError::NotAllowed(
                            "after_key is not a key of sort state".into(),
                        ))
                    }
                    None => None,
                };
                self.by_state(state, from, limit, needle.as_deref(), SEARCH_SCAN_MAX)
            }
            ListSort::Name | ListSort::NewestChange => {
                let spec = ViewSpec {
                    sort,
                    state,
                    needle,
                };
                let p = self
                    .sorter
                    .page(&self.store, spec, cursor.as_ref(), limit)?;
                Ok(ListPage {
                    records: p.records,
                    resume_after: None,
                    next: p.next,
                    sorting: p.sorting,
                })
            }
        }
    }

    /// Records by state, those that need a person first (see [`STATE_SORT_ORDER`]), queue
    /// order within, from just after `from`: a walk of the state index, so no view is built.
    /// A search reads at most `cap` records, then `next` says where it stopped.
    fn by_state(
        &self,
        filter: Option<RecordState>,
        from: Option<(RecordState, RecordId)>,
        limit: usize,
        needle: Option<&str>,
        cap: usize,
    ) -> Result<ListPage, ServiceError> {
        let mut found = Vec::new();
        let mut pos = from;
        let mut scanned = 0;
        let mut exhausted = true;
        let states = STATE_SORT_ORDER
            .into_iter()
            .filter(|s| filter.is_none_or(|f| f == *s))
            .filter(|s| from.is_none_or(|(f, _)| state_rank(f) <= state_rank(*s)));
        'states: for s in states {
            let mut after = pos.filter(|(p, _)| *p == s).map(|(_, id)| id);
            loop {
                if found.len() >= limit || scanned >= cap {
                    exhausted = false;
                    break 'states;
                }
                let want = match needle {
                    Some(_) => SEARCH_PAGE.min(cap - scanned),
                    None => limit - found.len(),
                };
                let page = self.store.list(Some(s), after, want)?;
                let read = page.len();
                for r in page {
                    scanned += 1;
                    after = Some(r.id);
                    pos = Some((s, r.id));
                    if needle.is_none_or(|n| matches_query(&r, n)) {
                        found.push(r);
                        if found.len() >= limit {
                            break;
                        }
                    }
                }
                if read < want {
                    break;
                }
            }
        }
        let next = pos.filter(|_| !exhausted).map(|(s, id)| SortCursor {
            id,
            key: SortKey::State(s),
        });
        Ok(ListPage {
            records: found,
            resume_after: None,
            next,
            sorting: None,
        })
    }

    pub fn show(&self, id: &str) -> Result<Record, ServiceError> {
        let id = self.store.resolve_handle(id)?;
        let record = self
            .store
            .get(id)?
            .ok_or_else(|| ServiceError::NotFound(id.to_string()))?;
        Ok(self.as_seen(record, self.in_flight().as_ref()))
    }

    /// Validates and durably queues one request body.
    pub fn submit(
        &self,
        body: &Value,
        origin: Origin,
        now: DateTime<Utc>,
    ) -> Result<Queued, ServiceError> {
        let payload = Payload::parse(body).map_err(ServiceError::Invalid)?;
        let s = self.store.submit(payload, origin, now)?;
        if s.changed() {
            let _ = self.events.send(Event::RecordChanged {
                id: s.id,
                state: RecordState::Queued,
            });
            self.wake();
        }
        Ok(s.into())
    }

    /// Queues many already-validated payloads with one flush (group commit).
    pub fn submit_batch(
        &self,
        items: Vec<(Payload, Origin)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Queued>, ServiceError> {
        let done = self.store.submit_batch(items, now);
        // Also after a failure: the chunks before it are committed, their terms pending.
        self.bulk_written.notify_one();
        let done = done?;
        self.announce_queued(&done);
        Ok(done.into_iter().map(Queued::from).collect())
    }

    /// Queues one batch of a dropped file's records together with the file's progress (one
    /// transaction), then wakes the engine. `Durability::Lazy` is safe for all but the last
    /// batch: records and progress are committed together, so a crash loses both or neither.
    ///
    /// An item naming a record (`_icsync_id`, any unique prefix) is applied to it exactly as
    /// `icsync edit` / a `Request::Edit` would be ([`actions::edit`], the same uniqueness
    /// rule); an id that names no record, or an edit that is refused, falls back to upsert
    /// matching (as `icsync import` does for an unknown id), so no row is lost; a refusal is
    /// logged with the record's id and the reason, never a customer field.
    pub fn submit_drop_batch(
        &self,
        items: Vec<DropItem>,
        fp: &Fingerprint,
        progress: &DropProgress,
        durability: Durability,
        now: DateTime<Utc>,
    ) -> Result<usize, ServiceError> {
        let batch = self.prepare_drop_batch(items, SealAhead::IfUnheld, now)?;
        self.commit_drop_batch(&batch, fp, progress, durability, now)
    }

    /// The part of [`Service::submit_drop_batch`] that can run before its transaction, on
    /// another thread (the drop folder's reader): the records each row names are looked up,
    /// and new records sealed and indexed as `seal` says ([`Store::prepare_drop_batch`]).
    pub fn prepare_drop_batch(
        &self,
        items: Vec<DropItem>,
        seal: SealAhead,
        now: DateTime<Utc>,
    ) -> Result<ReadyBatch, ServiceError> {
        let submissions: Vec<Submission> = items
            .into_iter()
            .map(|item| Submission {
                edit_of: item
                    .record_id
                    .as_deref()
                    .and_then(|id| self.store.resolve_prefix(id).ok()),
                payload: item.payload,
                origin: item.origin,
            })
            .collect();
        Ok(self.store.prepare_drop_batch(submissions, seal, now)?)
    }

    /// The rest of [`Service::submit_drop_batch`]: one transaction, then the wake-up.
    /// Returns how many rows made new records.
    pub fn commit_drop_batch(
        &self,
        batch: &ReadyBatch,
        fp: &Fingerprint,
        progress: &DropProgress,
        durability: Durability,
        now: DateTime<Utc>,
    ) -> Result<usize, ServiceError> {
        let done =
            self.store
                .submit_drop_batch(batch, fp, progress, durability, now, |r, payload| {
                    actions::edit(r, &payload.to_value(), now)
                })?;
        for d in &done {
            if let Some((id, why)) = &d.edit_refused {
                tracing::warn!(
                    record = %id,
                    reason = %why,
                    "a dropped row names this record but cannot edit it: matched as a new row instead"
                );
            }
        }
        let submitted: Vec<Submitted> = done.iter().map(|d| d.submitted).collect();
        self.announce_queued(&submitted);
        Ok(submitted
            .iter()
            .filter(|s| s.outcome == SubmitOutcome::Created)
            .count())
    }

    /// When a file with this content was taken whole before, and under what name.
    pub fn file_taken(&self, sha256: &str) -> Result<Option<FileTaken>, ServiceError> {
        let fp = fingerprint(sha256)?;
        Ok(self
            .store
            .drop_progress(&fp)?
            .filter(|p| p.stage != DropStage::Ingesting)
            .map(|p| FileTaken {
                file: p.file,
                at: p.updated_at,
            }))
    }

    /// Notes a file `icsync import` took whole, as the drop folder notes an archived one.
    pub fn mark_file_taken(
        &self,
        sha256: &str,
        file: &str,
        now: DateTime<Utc>,
    ) -> Result<FileTaken, ServiceError> {
        let fp = fingerprint(sha256)?;
        let progress = DropProgress {
            file: file.to_string(),
            stage: DropStage::Archived,
            records_done: 0,
            updated_at: now,
        };
        self.store
            .set_drop_progress(&fp, &progress, None, Durability::Flush)?;
        Ok(FileTaken {
            file: progress.file,
            at: now,
        })
    }

    /// The drop folder's recent files, newest first.
    pub fn drop_files(&self, limit: usize) -> Result<Vec<DropFileEntry>, ServiceError> {
        Ok(self.store.recent_drop_files(limit)?)
    }

    /// Applies `f` to one record as an edit ([`Store::edit`]: refused when another live
    /// record holds the external_id or email it would leave), then announces it. `f` is told
    /// whether the engine has the record in flight; the in-flight set is held from that check
    /// to the commit, so the engine cannot take the record in between (see
    /// `sync::InFlight::lock`), and the flush comes after it is let go.
    fn apply_edit(
        &self,
        id: RecordId,
        f: impl Fn(&mut Record, bool) -> Result<(), ActionError>,
    ) -> Result<Edited, ServiceError> {
        let in_flight = self.in_flight();
        let held = in_flight.as_ref().map(InFlight::lock);
        let sending = held.as_ref().is_some_and(|set| set.contains(&id));
        let edited = self.store.edit(id, Durability::Lazy, |r| f(r, sending));
        drop(held);
        let edited = edited?;
        if edited.is_ok() {
            self.store.flush()?;
        }
        let edited = match edited {
            Ok(edited) => edited,
            Err(EditRefused::NotFound) => return Err(ServiceError::NotFound(id.to_string())),
            Err(EditRefused::Action(e)) => return Err(e.into()),
            Err(taken @ EditRefused::Taken(_)) => {
                return Err(ServiceError::NotAllowed(taken.to_string()))
            }
        };
        self.changed(&edited.record);
        self.wake();
        Ok(edited)
    }

    pub fn edit(
        &self,
        id: &str,
        changes: &Value,
        now: DateTime<Utc>,
    ) -> Result<Queued, ServiceError> {
        let id = self.store.resolve_handle(id)?;
        // An edit of a record in flight is its next revision, sent once the flight is over.
        let edited = self.apply_edit(id, |r, _| actions::edit(r, changes, now))?;
        Ok(edited.submitted().into())
    }

    pub fn resolve(
        &self,
        id: &str,
        action: ResolveAction,
        now: DateTime<Utc>,
    ) -> Result<Record, ServiceError> {
        let id = self.store.resolve_handle(id)?;
        self.apply_edit(id, |r, sending| actions::resolve(r, action, sending, now))
            .map(|edited| edited.record)
    }

    /// Applies one action to every record in `state` (and with `error_type`, if given).
    /// Records the action does not apply to are left as they are and not listed.
    pub fn resolve_many(
        &self,
        state: RecordState,
        error_type: Option<ErrorKind>,
        action: ResolveAction,
        now: DateTime<Utc>,
    ) -> Result<Vec<RecordId>, ServiceError> {
        if !state.needs_person() {
            return Err(ServiceError::NotAllowed(format!(
                "bulk resolution applies to conflict or rejected records, not {state}"
            )));
        }
        let mut done = Vec::new();
        for id in self.store.in_state(state)? {
            let matches_type = |r: &Record| match (error_type, &r.last_error) {
                (None, _) => true,
                (Some(t), Some(RecordError::Api { error })) => error.kind() == t,
                (Some(_), _) => false,
            };
            let result = self.store.update(id, Durability::Lazy, |r| {
                if r.state != state || !matches_type(r) {
                    return false;
                }
                let mut copy = r.clone();
                // Only conflict and rejected records: never in flight.
                match actions::resolve(&mut copy, action, false, now) {
                    Ok(()) => {
                        *r = copy;
                        true
                    }
                    Err(_) => false,
                }
            })?;
            if result == Some(true) {
                done.push(id);
            }
        }
        self.store.flush()?;
        for id in &done {
            let _ = self.events.send(Event::RecordChanged {
                id: *id,
                state: RecordState::Queued,
            });
        }
        self.wake();
        Ok(done)
    }

    /// The store's consistency check, listing at most [`MAX_CHECK_PROBLEMS`] problems.
    fn check_store(&self) -> Result<Reply, ServiceError> {
        let records = self.store.counts()?.total;
        let mut problems = self.store.check_consistency()?;
        let more = problems.len().saturating_sub(MAX_CHECK_PROBLEMS);
        problems.truncate(MAX_CHECK_PROBLEMS);
        Ok(Reply::StoreCheck {
            records,
            problems,
            more,
        })
    }

    /// Answers one control request (blocking: call off the async reactor).
    pub fn answer(&self, request: Request) -> Reply {
        let now = Utc::now();
        let result = match request {
            Request::Status => self.status().map(Reply::Status),
            Request::List {
                state,
                after,
                limit,
                query,
                sort,
                after_key,
            } => self
                .list_page(state, after, after_key, limit, query.as_deref(), sort)
                .map(|p| Reply::Records {
                    records: p.records,
                    resume_after: p.resume_after,
                    next: p.next,
                    sorting: p.sorting,
                }),
            Request::Show { id } => self.show(&id).map(|r| Reply::Record {
                record: Box::new(r),
            }),
            Request::Submit { body, origin } => self.submit(&body, origin, now).map(Reply::Queued),
            Request::SubmitMany { items } => {
                let mut valid = Vec::with_capacity(items.len());
                let mut invalid = Vec::new();
                for (index, item) in items.into_iter().enumerate() {
                    match Payload::parse(&item.body) {
                        Ok(p) => valid.push((p, item.origin)),
                        Err(errors) => invalid.push(InvalidItem { index, errors }),
                    }
                }
                self.submit_batch(valid, now)
                    .map(|queued| Reply::QueuedMany { queued, invalid })
            }
            Request::Edit { id, changes } => self.edit(&id, &changes, now).map(Reply::Queued),
            Request::Resolve { id, action } => self
                .resolve(&id, action, now)
                .map(|r| Reply::Resolved { ids: vec![r.id] }),
            Request::ResolveMany {
                state,
                error_type,
                action,
            } => self
                .resolve_many(state, error_type, action, now)
                .map(|ids| Reply::Resolved { ids }),
            Request::Subscribe => Ok(Reply::Subscribed),
            Request::DropFiles => self
                .drop_files(crate::store::DROP_HISTORY_MAX)
                .map(|files| Reply::DropFiles {
                    files,
                    folder: self.drop_dir.as_ref().map(|d| d.display().to_string()),
                }),
            Request::DropReport { report } => self.drop_report(&report).map(Reply::DropReport),
            Request::CheckStore => self.check_store(),
            Request::FileTaken { sha256 } => self
                .file_taken(&sha256)
                .map(|earlier| Reply::FileTaken { earlier }),
            Request::MarkFileTaken { sha256, file } => self
                .mark_file_taken(&sha256, &file, now)
                .map(|earlier| Reply::FileTaken {
                    earlier: Some(earlier),
                }),
            Request::Unlock { passphrase } => self
                .keys()
                .and_then(|k| k.unlock(&passphrase))
                .and_then(|()| {
                    self.set_lock_problem(None);
                    self.status().map(Reply::Status)
                }),
            Request::Lock => self
                .keys()
                .and_then(|k| {
                    // No decrypted name outlives the key in memory.
                    self.sorter.clear();
                    k.lock()
                })
                .and_then(|()| self.status().map(Reply::Status)),
            Request::Purge {
                synced_before,
                dry_run,
            } => {
                // The drop folder's refused rows go by the same cutoff (`dropdir::erase`).
                let refused_files = match self.drop_dir.as_deref() {
                    None => 0,
                    Some(dir) if dry_run => {
                        crate::dropdir::erase::count_refused(dir, synced_before).unwrap_or(0)
                    }
                    Some(dir) => crate::dropdir::erase::erase_refused_logged(dir, synced_before),
                };
                self.store
                    .purge(synced_before, now, dry_run)
                    .map(|ids| Reply::Purged {
                        ids,
                        dry_run,
                        refused_files,
                    })
                    .map_err(Into::into)
            }
        };
        result.unwrap_or_else(|e| Reply::Error(e.into()))
    }
}

/// One answer to a search: the matches, and where to carry on when the scan stopped at its
/// cap before finding `limit` of them (none: the matches are all there is after `after`).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub records: Vec<Record>,
    pub resume_after: Option<RecordId>,
}

/// One page of `list` as the reply carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub records: Vec<Record>,
    /// Queue order only: where a capped search stopped.
    pub resume_after: Option<RecordId>,
    /// Other orders: where the next page starts (none: this is the last).
    pub next: Option<SortCursor>,
    /// Name and newest change: the order is still being built.
    pub sorting: Option<SortProgress>,
}

/// The order of `sort: state`: what needs a person first (conflicts, then records refused by
/// the API), then what is still on its way (queued, including those retrying, then sending),
/// then what is done (synced, then discarded). Not the state index's byte order, which would
/// list conflicts after synced records.
pub const STATE_SORT_ORDER: [RecordState; 6] = [
    RecordState::Conflict,
    RecordState::Rejected,
    RecordState::Queued,
    RecordState::Sending,
    RecordState::Synced,
    RecordState::Discarded,
];

/// A state's place in [`STATE_SORT_ORDER`].
fn state_rank(state: RecordState) -> usize {
    STATE_SORT_ORDER
        .iter()
        .position(|s| *s == state)
        .unwrap_or(STATE_SORT_ORDER.len())
}

/// Records a search request reads from the store at most.
pub const SEARCH_SCAN_MAX: usize = 50_000;

/// Records a search reads from the store at a time.
const SEARCH_PAGE: usize = 500;

/// Whether `needle` (lower case) is in the record's full name, email or external id.
fn matches_query(r: &Record, needle: &str) -> bool {
    let p = &r.payload;
    [Some(p.full_name()), p.email(), p.external_id()]
        .into_iter()
        .flatten()
        .any(|s| s.to_lowercase().contains(needle))
}

/// The daemon's control handler: each request runs on the blocking pool, since store writes
/// wait for the disk.
pub struct ControlHandler(pub Arc<Service>);

impl Handler for ControlHandler {
    async fn handle(&self, request: Request) -> Reply {
        let service = self.0.clone();
        tokio::task::spawn_blocking(move || service.answer(request))
            .await
            .unwrap_or_else(|e| {
                Reply::Error(ControlError::new(
                    ControlErrorCode::Internal,
                    format!("request failed: {e}"),
                ))
            })
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        self.0.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreOptions, SubmitOutcome};
    use serde_json::json;

    fn service(dir: &std::path::Path) -> Service {
        // The key file beside the store, never the user's own.
        let keys = crate::crypto::KeyConfig::file(dir.join("data.key"));
        let store = Store::open_with_key(dir, StoreOptions::default(), &keys, None).unwrap();
        Service::new(store, None)
    }

    fn names(reply: Reply) -> Vec<String> {
        match reply {
            Reply::Records { records, .. } => records
                .iter()
                .map(|r| r.payload.full_name().to_owned())
                .collect(),
            other => panic!("not records: {other:?}"),
        }
    }

    fn list(query: Option<&str>, after: Option<RecordId>, limit: usize) -> Request {
        Request::List {
            state: None,
            after,
            limit,
            query: query.map(str::to_owned),
            sort: ListSort::Queue,
            after_key: None,
        }
    }

    /// An engine that has some records in flight and does nothing else.
    struct Flying(InFlight);

    impl SyncLink for Flying {
        fn health(&self) -> SyncHealth {
            SyncHealth::default()
        }
        fn wake(&self) {}
        fn in_flight(&self) -> Option<InFlight> {
            Some(self.0.clone())
        }
    }

    #[test]
    fn records_in_flight_show_as_sending_and_refuse_resolution_but_take_edits() {
        let dir = tempfile::tempdir().unwrap();
        let plain = service(dir.path());
        let now = Utc::now();
        let ids: Vec<RecordId> = (0..3)
            .map(|i| {
                let body = json!({"full_name": format!("Flying {i}")});
                plain.submit(&body, Origin::Cli, now).unwrap().id
            })
            .collect();
        let flying = InFlight::default();
        flying.lock().insert(ids[1]);
        let svc = Service::new(
            plain.store().clone(),
            Some(Arc::new(Flying(flying.clone()))),
        );

        let status = svc.status().unwrap();
        assert_eq!((status.queued, status.sending), (2, 1));
        // The store holds no `sending` record: the engine's set is the only source.
        assert_eq!(svc.store().counts().unwrap().get(RecordState::Queued), 3);
        let shown = svc.show(&ids[1].to_string()).unwrap();
        assert_eq!(shown.state, RecordState::Sending);
        let sending = svc.list(Some(RecordState::Sending), None, 10).unwrap();
        assert_eq!(
            sending.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![ids[1]]
        );
        let all = svc.list(None, None, 10).unwrap();
        let states: Vec<_> = all.iter().map(|r| r.state).collect();
        assert_eq!(
            states,
            vec![
                RecordState::Queued,
                RecordState::Sending,
                RecordState::Queued
            ]
        );

        for action in [ResolveAction::Discard, ResolveAction::Retry] {
            match svc.resolve(&ids[1].to_string(), action, now) {
                Err(ServiceError::Action(ActionError::InFlight(_))) => {}
                other => panic!("{action:?} on a record in flight: {other:?}"),
            }
        }
        assert_eq!(
            svc.store().get(ids[1]).unwrap().unwrap().state,
            RecordState::Queued
        );
        // Not in flight: the same discard applies.
        let discarded = svc
            .resolve(&ids[0].to_string(), ResolveAction::Discard, now)
            .unwrap();
        assert_eq!(discarded.state, RecordState::Discarded);
        // An edit of a record in flight is its next revision.
        let edited = svc
            .edit(&ids[1].to_string(), &json!({"full_name": "Flying 1b"}), now)
            .unwrap();
        assert_eq!(edited.revision, 2);

        flying.lock().clear();
        let status = svc.status().unwrap();
        assert_eq!((status.queued, status.sending), (2, 0));
    }

    #[test]
    fn an_unchanged_submit_announces_nothing_and_says_so_on_the_wire() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let mut events = svc.event_sender().subscribe();
        let body = json!({"full_name": "Ada", "external_id": "x-1"});
        let first = svc.submit(&body, Origin::Cli, Utc::now()).unwrap();
        assert_eq!(first.outcome(), SubmitOutcome::Created);
        assert!(events.try_recv().is_ok());
        let again = svc.submit(&body, Origin::Cli, Utc::now()).unwrap();
        assert_eq!(
            (again.id, again.revision, again.outcome()),
            (first.id, 1, SubmitOutcome::Unchanged)
        );
        assert!(
            events.try_recv().is_err(),
            "nothing changed, nothing announced"
        );
        let wire = serde_json::to_value(Reply::Queued(again)).unwrap();
        assert_eq!(wire["unchanged"], true);
        // A reply from a daemon before `unchanged` existed reads as a revision.
        let old: Queued =
            serde_json::from_value(json!({"id": first.id, "revision": 2, "created": false}))
                .unwrap();
        assert_eq!(old.outcome(), SubmitOutcome::Revised);
    }

    #[test]
    fn search_matches_name_email_or_external_id_across_pages() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let now = Utc::now();
        // More records than one store page, the matches spread across them.
        for i in 0..1_200 {
            let (name, email, ext) = match i {
                3 => (
                    "Grace Hopper".to_string(),
                    "grace@navy.mil".to_string(),
                    "N-3",
                ),
                700 => (
                    "Ada Lovelace".to_string(),
                    "ada@HOPPER.org".to_string(),
                    "N-700",
                ),
                1_150 => (
                    "Alan Turing".to_string(),
                    "alan@example.com".to_string(),
                    "hopper-9",
                ),
                _ => (format!("Person {i}"), format!("p{i}@example.com"), "x"),
            };
            let ext = if ext == "x" {
                format!("CRM-{i}")
            } else {
                ext.to_string()
            };
            svc.submit(
                &json!({"type": "INDIVIDUAL", "full_name": name, "email": email,
                        "external_id": ext}),
                Origin::Cli,
                now,
            )
            .unwrap();
        }
        let all = names(svc.answer(list(Some("HoPPer"), None, 10)));
        assert_eq!(all, ["Grace Hopper", "Ada Lovelace", "Alan Turing"]);

        // Paging: `limit` matches, then on from the last one.
        let first = match svc.answer(list(Some("hopper"), None, 2)) {
            Reply::Records {
                records,
                resume_after: None,
                ..
            } => records,
            other => panic!("{other:?}"),
        };
        assert_eq!(first.len(), 2);
        let rest = names(svc.answer(list(Some("hopper"), Some(first[1].id), 2)));
        assert_eq!(rest, ["Alan Turing"]);

        assert!(names(svc.answer(list(Some("nobody"), None, 10))).is_empty());
        // No query, or a blank one, is the plain list.
        assert_eq!(names(svc.answer(list(None, None, 5))).len(), 5);
        assert_eq!(names(svc.answer(list(Some("  "), None, 5))).len(), 5);
    }

    #[test]
    fn a_search_stopped_by_its_cap_says_where_to_carry_on() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let now = Utc::now();
        let mut ids = Vec::new();
        for i in 0..1_000 {
            let name = match i {
                40 | 650 | 651 => format!("Needle {i}"),
                _ => format!("Person {i}"),
            };
            let q = svc
                .submit(
                    &json!({"type": "INDIVIDUAL", "full_name": name}),
                    Origin::Cli,
                    now,
                )
                .unwrap();
            ids.push(q.id);
        }
        let search = |after, limit| {
            svc.search_with_cap(None, after, limit, "needle", 100)
                .unwrap()
        };
        let names = |p: &SearchPage| -> Vec<String> {
            p.records
                .iter()
                .map(|r| r.payload.full_name().to_owned())
                .collect()
        };

        // Fewer than `limit` matches in the first 100: resume after the 100th record read.
        let first = search(None, 10);
        assert_eq!(names(&first), ["Needle 40"]);
        assert_eq!(first.resume_after, Some(ids[99]));
        // A chunk without a match still moves the cursor on by the cap.
        let empty = search(Some(ids[99]), 10);
        assert!(empty.records.is_empty());
        assert_eq!(empty.resume_after, Some(ids[199]));
        // Carrying on reaches the matches far away; `limit` reached: no resume_after.
        let far = search(Some(ids[599]), 1);
        assert_eq!(names(&far), ["Needle 650"]);
        assert_eq!(far.resume_after, None);
        // The end of the store within the cap: no resume_after either.
        let last = search(Some(ids[949]), 10);
        assert!(last.records.is_empty());
        assert_eq!(last.resume_after, None);

        // Following resume_after from the start finds every match, each exactly once.
        let mut all = Vec::new();
        let mut after = None;
        for _ in 0..20 {
            let page = search(after, 2);
            all.extend(names(&page));
            after = match (page.resume_after, page.records.last()) {
                (Some(r), _) => Some(r),
                (None, Some(r)) if page.records.len() == 2 => Some(r.id),
                _ => break,
            };
        }
        assert_eq!(all, ["Needle 40", "Needle 650", "Needle 651"]);

        // On the wire: only a capped reply carries the member.
        let wire = |p: SearchPage| {
            serde_json::to_value(Reply::Records {
                records: p.records,
                resume_after: p.resume_after,
                next: None,
                sorting: None,
            })
            .unwrap()
        };
        assert!(wire(search(None, 10)).get("resume_after").is_some());
        assert!(wire(search(Some(ids[599]), 1))
            .get("resume_after")
            .is_none());
    }

    /// A service whose sorted views rebuild without waiting and drop after `idle`.
    fn sorting_service(dir: &std::path::Path, idle: std::time::Duration) -> Service {
        service(dir).with_sort_config(sorted::SortConfig {
            debounce: std::time::Duration::ZERO,
            idle_drop: idle,
            ..sorted::SortConfig::default()
        })
    }

    fn sorted(sort: ListSort, state: Option<RecordState>, query: Option<&str>) -> Request {
        Request::List {
            state,
            after: None,
            limit: 0,
            query: query.map(str::to_owned),
            sort,
            after_key: None,
        }
    }

    /// `request` (a list) asking for `limit` records after `after`.
    fn paged(request: &Request, after: Option<&SortCursor>, limit: usize) -> Request {
        let Request::List {
            state, query, sort, ..
        } = request.clone()
        else {
            panic!("not a list")
        };
        Request::List {
            state,
            after: after.map(|c| c.id),
            limit,
            query,
            sort,
            after_key: after.map(|c| c.key.clone()),
        }
    }

    /// One page of `request` from `after`, asked again until the daemon's view is current
    /// (no `sorting`), within a deadline.
    fn sorted_page(
        svc: &Service,
        request: &Request,
        after: Option<&SortCursor>,
        limit: usize,
    ) -> (Vec<Record>, Option<SortCursor>) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let reply = svc.answer(paged(request, after, limit));
            match reply {
                Reply::Records {
                    records,
                    next,
                    sorting: None,
                    resume_after: None,
                } => return (records, next),
                Reply::Records { .. } if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                other => panic!("no sorted page in time: {other:?}"),
            }
        }
    }

    /// Every page of `request`, `limit` at a time, following `next`.
    fn every_page(svc: &Service, request: &Request, limit: usize) -> Vec<Vec<Record>> {
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let (records, next) = sorted_page(svc, request, after.as_ref(), limit);
            pages.push(records);
            match next {
                Some(n) => after = Some(n),
                None => return pages,
            }
            assert!(pages.len() < 10_000, "paging does not end");
        }
    }

    fn full_names(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| r.payload.full_name().to_owned())
            .collect()
    }

    /// `n` records named in an order unrelated to queue order ("Person 0421", ...).
    fn people(svc: &Service, n: usize) -> Vec<RecordId> {
        let now = Utc::now();
        (0..n)
            .map(|i| {
                let k = (i * 389) % n;
                svc.submit(
                    &json!({"type": "INDIVIDUAL", "full_name": format!("person {k:04}"),
                            "external_id": format!("CRM-{i}")}),
                    Origin::Cli,
                    now,
                )
                .unwrap()
                .id
            })
            .collect()
    }

    #[test]
    fn a_name_sort_orders_every_record_across_pages_and_reports_its_progress_first() {
        let dir = tempfile::tempdir().unwrap();
        let svc = sorting_service(dir.path(), std::time::Duration::from_secs(60));
        let n = 1_000;
        people(&svc, n);
        let by_name = sorted(ListSort::Name, None, None);

        // The first request never waits for the build: no records, the progress.
        match svc.answer(paged(&by_name, None, 10)) {
            Reply::Records {
                records,
                sorting: Some(p),
                next: None,
                ..
            } => {
                assert!(records.is_empty());
                assert_eq!(p.total, n as u64);
            }
            other => panic!("expected progress: {other:?}"),
        }

        let pages = every_page(&svc, &by_name, 64);
        assert_eq!(
            pages.len(),
            n.div_ceil(64),
            "several full pages, then the rest"
        );
        let names: Vec<String> = pages.iter().flat_map(|p| full_names(p)).collect();
        let mut expected: Vec<String> = (0..n).map(|k| format!("person {k:04}")).collect();
        expected.sort();
        assert_eq!(names, expected, "one global order, each record once");
    }

    #[test]
    fn sorted_cursors_stay_put_while_records_change_and_the_view_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let svc = sorting_service(dir.path(), std::time::Duration::from_secs(60));
        let ids = people(&svc, 300);
        let by_name = sorted(ListSort::Name, None, None);
        let (page1, next1) = sorted_page(&svc, &by_name, None, 100);
        let next1 = next1.unwrap();
        assert_eq!(page1.last().unwrap().payload.full_name(), "person 0099");

        // Meanwhile: a record on page 3 is renamed to sort first, and a new one arrives.
        let moved = ids[(0..300).find(|i| (i * 389) % 300 == 250).unwrap()];
        svc.edit(
            &moved.to_string(),
            &json!({"full_name": "Aaron First"}),
            Utc::now(),
        )
        .unwrap();
        svc.submit(
            &json!({"type": "INDIVIDUAL", "full_name": "person 0150b"}),
            Origin::Cli,
            Utc::now(),
        )
        .unwrap();

        // Page 2 carries on after page 1's last name, whatever order is served now.
        let (page2, next2) = sorted_page(&svc, &by_name, Some(&next1), 100);
        let names2 = full_names(&page2);
        assert_eq!(
            names2[0], "person 0100",
            "nothing skipped, nothing repeated"
        );
        assert!(
            names2.contains(&"person 0150b".to_owned()),
            "the rebuilt order"
        );
        let (page3, _) = sorted_page(&svc, &by_name, next2.as_ref(), 100);
        assert!(!full_names(&page3).contains(&"Aaron First".to_owned()));
        // The renamed record now sorts first, read fresh.
        let (first, _) = sorted_page(&svc, &by_name, None, 1);
        assert_eq!(full_names(&first), ["Aaron First"]);
        assert_eq!(first[0].id, moved);
    }

    #[test]
    fn newest_change_sorts_the_last_edited_first_and_state_sort_walks_the_state_index() {
        let dir = tempfile::tempdir().unwrap();
        let svc = sorting_service(dir.path(), std::time::Duration::from_secs(60));
        let ids = people(&svc, 250);
        let later = Utc::now() + chrono::Duration::seconds(5);
        for (i, id) in [ids[7], ids[200], ids[3]].iter().enumerate() {
            svc.edit(
                &id.to_string(),
                &json!({"email": format!("new{i}@example.org")}),
                later + chrono::Duration::seconds(i as i64),
            )
            .unwrap();
        }
        let newest = sorted(ListSort::NewestChange, None, None);
        let pages = every_page(&svc, &newest, 40);
        let order: Vec<RecordId> = pages.iter().flatten().map(|r| r.id).collect();
        assert_eq!(order.len(), 250);
        assert_eq!(order[..3], [ids[3], ids[200], ids[7]]);
        let times: Vec<_> = pages.iter().flatten().map(|r| r.updated_at).collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "newest first throughout"
        );

        // Move some records to other states; the state order lists them state by state.
        let states = [
            (ids[5], RecordState::Conflict),
            (ids[100], RecordState::Synced),
            (ids[1], RecordState::Synced),
            (ids[249], RecordState::Rejected),
        ];
        for (id, state) in states {
            svc.store()
                .update(id, Durability::Lazy, |r| r.state = state)
                .unwrap();
        }
        let by_state = sorted(ListSort::State, None, None);
        let pages = every_page(&svc, &by_state, 30);
        let all: Vec<&Record> = pages.iter().flatten().collect();
        assert_eq!(all.len(), 250);
        assert!(all
            .windows(2)
            .all(|w| (state_rank(w[0].state), w[0].id) < (state_rank(w[1].state), w[1].id)));
        // What needs a person comes first, then the queue, then what is done.
        let head: Vec<RecordId> = all[..2].iter().map(|r| r.id).collect();
        assert_eq!(head, [ids[5], ids[249]]);
        let tail: Vec<RecordId> = all[248..].iter().map(|r| r.id).collect();
        assert_eq!(tail, [ids[1], ids[100]]);
        assert_eq!(all[2].state, RecordState::Queued);
        // A state filter and a search narrow the same walk.
        let synced = every_page(&svc, &sorted(ListSort::State, None, Some("person")), 2);
        assert_eq!(synced.iter().flatten().count(), 250);
        let one = every_page(
            &svc,
            &sorted(ListSort::State, Some(RecordState::Synced), None),
            1,
        );
        let ids_synced: Vec<RecordId> = one.iter().flatten().map(|r| r.id).collect();
        assert_eq!(ids_synced, [ids[1], ids[100]]);
    }

    #[test]
    fn a_search_sorted_by_name_sorts_only_the_matches() {
        let dir = tempfile::tempdir().unwrap();
        let svc = sorting_service(dir.path(), std::time::Duration::from_secs(60));
        people(&svc, 400);
        // Only names match this (external ids are "CRM-<n>"): "person 01xx".
        let request = sorted(ListSort::Name, None, Some("SON 01"));
        let pages = every_page(&svc, &request, 7);
        let names: Vec<String> = pages.iter().flat_map(|p| full_names(p)).collect();
        let mut expected: Vec<String> = (0..400)
            .map(|k| format!("person {k:04}"))
            .filter(|n| n.starts_with("person 01"))
            .collect();
        expected.sort();
        assert_eq!(names, expected);
        assert!(pages.len() > 3, "the matches span several pages");
        // A cursor of another order is refused, not misread.
        let wrong = svc.answer(paged(
            &request,
            Some(&SortCursor {
                id: RecordId::new(),
                key: SortKey::State(RecordState::Queued),
            }),
            5,
        ));
        assert!(matches!(
            wrong,
            Reply::Error(ControlError {
                code: ControlErrorCode::NotAllowed,
                ..
            })
        ));
    }

    #[test]
    fn sorted_views_are_dropped_when_idle_and_when_the_store_locks() {
        let dir = tempfile::tempdir().unwrap();
        let svc = sorting_service(dir.path(), std::time::Duration::from_millis(200));
        people(&svc, 50);
        let by_name = sorted(ListSort::Name, None, None);
        sorted_page(&svc, &by_name, None, 10);
        sorted_page(&svc, &sorted(ListSort::NewestChange, None, None), None, 10);
        assert_eq!(svc.sorted_views(), 2);
        // A third order evicts the least recently used: at most two are held.
        sorted_page(
            &svc,
            &sorted(ListSort::Name, None, Some("person 00")),
            None,
            10,
        );
        assert_eq!(svc.sorted_views(), 2);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while svc.sorted_views() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "idle views not dropped"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // A locked store answers no sorted page and holds no view.
        sorted_page(&svc, &by_name, None, 10);
        svc.store().lock();
        assert!(matches!(
            svc.answer(paged(&by_name, None, 5)),
            Reply::Error(ControlError {
                code: ControlErrorCode::Locked,
                ..
            })
        ));
        assert_eq!(svc.sorted_views(), 0);
    }
}
