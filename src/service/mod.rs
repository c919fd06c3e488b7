//! What each command does to the records, in one place, whoever asks: the daemon answers
//! control requests with it, and the CLI uses it directly on the store when no daemon runs.
//! It validates input with the contract, applies operator actions in store transactions,
//! wakes the engine and announces changes. It never talks HTTP and never names sled.

pub mod actions;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::contract::{ErrorKind, FieldError};
use crate::control::{
    ControlError, ControlErrorCode, Event, Handler, InvalidItem, Queued, Reply, Request,
    ResolveAction, StatusReport,
};
use crate::crypto::Passphrase;
use crate::store::{
    DropFileEntry, DropProgress, Durability, Fingerprint, Origin, Payload, Record, RecordError,
    RecordId, RecordState, Store, StoreError,
};

pub use actions::ActionError;

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
    #[error("{0}")]
    NotAllowed(String),
}

impl From<ServiceError> for ControlError {
    fn from(e: ServiceError) -> Self {
        let code = match &e {
            ServiceError::Invalid(_) | ServiceError::Action(ActionError::Invalid(_)) => {
                ControlErrorCode::Invalid
            }
            ServiceError::NotFound(_) => ControlErrorCode::NotFound,
            ServiceError::Store(StoreError::Ambiguous { .. }) => ControlErrorCode::Ambiguous,
            ServiceError::Store(StoreError::NoMatch { .. } | StoreError::PrefixTooShort { .. }) => {
                ControlErrorCode::NotFound
            }
            ServiceError::Action(_) | ServiceError::NotAllowed(_) => ControlErrorCode::NotAllowed,
            ServiceError::Store(
                StoreError::KeyLocked | StoreError::Key(crate::crypto::KeyError::PassphraseNeeded),
            ) => ControlErrorCode::Locked,
            ServiceError::Store(StoreError::Key(_)) => ControlErrorCode::NotAllowed,
            ServiceError::Store(_) => ControlErrorCode::Internal,
        };
        let invalid = match &e {
            ServiceError::Invalid(v) | ServiceError::Action(ActionError::Invalid(v)) => v.clone(),
            _ => Vec::new(),
        };
        ControlError {
            code,
            message: e.to_string(),
            invalid,
        }
    }
}

/// What the service needs to know of a sync engine running in this process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncHealth {
    pub online: bool,
    /// Why sending is paused (401, rate limit, no key), if it is.
    pub paused: Option<String>,
    pub last_sync_at: Option<DateTime<Utc>>,
}

/// The engine as the service sees it: its health, and a nudge when records were queued.
pub trait SyncLink: Send + Sync + 'static {
    fn health(&self) -> SyncHealth;
    fn wake(&self);
}

/// Unlocking and locking the store, where a daemon can start and stop sending.
pub trait KeyControl: Send + Sync + 'static {
    fn unlock(&self, passphrase: &Passphrase) -> Result<(), ServiceError>;
    fn lock(&self) -> Result<(), ServiceError>;
}

/// Records operations over one store, with the engine when one runs in this process.
#[derive(Clone)]
pub struct Service {
    store: Store,
    engine: Option<Arc<dyn SyncLink>>,
    keys: Option<Arc<dyn KeyControl>>,
    events: broadcast::Sender<Event>,
}

impl Service {
    pub fn new(store: Store, engine: Option<Arc<dyn SyncLink>>) -> Self {
        let (events, _) = broadcast::channel(1024);
        Service {
            store,
            engine,
            keys: None,
            events,
        }
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

    fn wake(&self) {
        if let Some(engine) = &self.engine {
            engine.wake();
        }
    }

    pub fn status(&self) -> Result<StatusReport, ServiceError> {
        let counts = self.store.counts()?;
        let mut report = StatusReport {
            queued: counts.get(RecordState::Queued),
            sending: counts.get(RecordState::Sending),
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
        }
        Ok(report)
    }

    pub fn list(
        &self,
        state: Option<RecordState>,
        after: Option<RecordId>,
        limit: usize,
    ) -> Result<Vec<Record>, ServiceError> {
        Ok(self.store.list(state, after, limit)?)
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

    pub fn show(&self, id: &str) -> Result<Record, ServiceError> {
        let id = self.store.resolve_prefix(id)?;
        self.store
            .get(id)?
            .ok_or_else(|| ServiceError::NotFound(id.to_string()))
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
        let _ = self.events.send(Event::RecordChanged {
            id: s.id,
            state: RecordState::Queued,
        });
        self.wake();
        Ok(Queued {
            id: s.id,
            revision: s.revision,
            created: s.created,
        })
    }

    /// Queues many already-validated payloads with one flush (group commit).
    pub fn submit_batch(
        &self,
        items: Vec<(Payload, Origin)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Queued>, ServiceError> {
        let done = self.store.submit_batch(items, now)?;
        if let Some(last) = done.last() {
            let _ = self.events.send(Event::RecordChanged {
                id: last.id,
                state: RecordState::Queued,
            });
        }
        self.wake();
        Ok(done
            .into_iter()
            .map(|s| Queued {
                id: s.id,
                revision: s.revision,
                created: s.created,
            })
            .collect())
    }

    /// Queues one batch of a dropped file's records together with the file's progress (one
    /// transaction), then wakes the engine. `Durability::Lazy` is safe for all but the last
    /// batch: records and progress are committed together, so a crash loses both or neither.
    pub fn submit_drop_batch(
        &self,
        items: &[(Payload, Origin)],
        fp: &Fingerprint,
        progress: &DropProgress,
        durability: Durability,
        now: DateTime<Utc>,
    ) -> Result<usize, ServiceError> {
        let done = self
            .store
            .submit_drop_batch(items, fp, progress, durability, now)?;
        if let Some(last) = done.last() {
            let _ = self.events.send(Event::RecordChanged {
                id: last.id,
                state: RecordState::Queued,
            });
            self.wake();
        }
        Ok(done.len())
    }

    /// The drop folder's recent files, newest first.
    pub fn drop_files(&self, limit: usize) -> Result<Vec<DropFileEntry>, ServiceError> {
        Ok(self.store.recent_drop_files(limit)?)
    }

    /// Refuses an edit that would give this record an external_id or email another local
    /// record holds: each customer is one row.
    fn check_unique(&self, id: RecordId, payload: &Payload) -> Result<(), ServiceError> {
        let holder = match payload.external_id() {
            Some(x) => self.store.find_by_external_id(x)?,
            None => None,
        }
        .or(match payload.email() {
            Some(e) => self.store.find_by_email(e)?,
            None => None,
        });
        match holder {
            Some(other) if other != id => Err(ServiceError::NotAllowed(format!(
                "record {other} already holds this external_id or email; edit or discard that record instead"
            ))),
            _ => Ok(()),
        }
    }

    fn update(
        &self,
        id: RecordId,
        mut f: impl FnMut(&mut Record) -> Result<(), ActionError>,
    ) -> Result<Record, ServiceError> {
        let result = self.store.update(id, Durability::Flush, |r| {
            let mut copy = r.clone();
            f(&mut copy).map(|()| {
                *r = copy.clone();
                copy
            })
        })?;
        let record = result.ok_or_else(|| ServiceError::NotFound(id.to_string()))??;
        self.changed(&record);
        self.wake();
        Ok(record)
    }

    pub fn edit(
        &self,
        id: &str,
        changes: &Value,
        now: DateTime<Utc>,
    ) -> Result<Queued, ServiceError> {
        let id = self.store.resolve_prefix(id)?;
        let current = self
            .store
            .get(id)?
            .ok_or_else(|| ServiceError::NotFound(id.to_string()))?;
        let merged =
            actions::merge_changes(&current.payload, changes).map_err(ServiceError::Invalid)?;
        self.check_unique(id, &merged)?;
        let r = self.update(id, |r| actions::edit(r, changes, now))?;
        Ok(Queued {
            id: r.id,
            revision: r.revision,
            created: false,
        })
    }

    pub fn resolve(
        &self,
        id: &str,
        action: ResolveAction,
        now: DateTime<Utc>,
    ) -> Result<Record, ServiceError> {
        let id = self.store.resolve_prefix(id)?;
        if action == ResolveAction::AdoptExisting {
            if let Some(r) = self.store.get(id)? {
                let mut probe = r.clone();
                actions::resolve(&mut probe, action, now)?;
                self.check_unique(id, &probe.payload)?;
            }
        }
        self.update(id, |r| actions::resolve(r, action, now))
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
                match actions::resolve(&mut copy, action, now) {
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
            } => match query {
                Some(q) => self.search(state, after, limit, &q),
                None => self.list(state, after, limit).map(|records| SearchPage {
                    records,
                    resume_after: None,
                }),
            }
            .map(|p| Reply::Records {
                records: p.records,
                resume_after: p.resume_after,
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
                .map(|files| Reply::DropFiles { files }),
            Request::Unlock { passphrase } => self
                .keys()
                .and_then(|k| k.unlock(&passphrase))
                .and_then(|()| self.status().map(Reply::Status)),
            Request::Lock => self
                .keys()
                .and_then(|k| k.lock())
                .and_then(|()| self.status().map(Reply::Status)),
            Request::Purge {
                synced_before,
                dry_run,
            } => self
                .store
                .purge(synced_before, now, dry_run)
                .map(|ids| Reply::Purged { ids, dry_run })
                .map_err(Into::into),
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
    use crate::store::StoreOptions;
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
        }
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
            })
            .unwrap()
        };
        assert!(wire(search(None, 10)).get("resume_after").is_some());
        assert!(wire(search(Some(ids[599]), 1))
            .get("resume_after")
            .is_none());
    }
}
