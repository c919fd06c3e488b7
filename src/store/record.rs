//! The record types the store keeps: one row per customer, with its newest payload, its sync
//! state and its history. Pure data: no sled here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::contract::{parse_input, ApiError, Customer, CustomerInput, FieldError};

/// A record's local id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(pub Uuid);

impl RecordId {
    pub fn new() -> Self {
        RecordId(Uuid::now_v7())
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// The id's last [`SHORT_ID_CHARS`] hex digits: the short id people type and read. A
    /// UUIDv7 begins with its creation time and a counter (ids made in the same instant
    /// share 27 characters); these last 32 bits are random, and the store keeps them unique
    /// among its records (`Store::submit` draws another id on the rare collision).
    pub fn short(&self) -> String {
        hex::encode(self.short_bytes())
    }

    /// The bytes [`RecordId::short`] spells.
    pub fn short_bytes(&self) -> [u8; SHORT_ID_CHARS / 2] {
        let b = self.0.as_bytes();
        [b[12], b[13], b[14], b[15]]
    }
}

/// How many hex digits a short id has (see [`RecordId::short`]).
pub const SHORT_ID_CHARS: usize = 8;

impl Default for RecordId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a record stands. `Queued` covers both "waiting" and "backing off" (see
/// `Record::next_attempt_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    Queued,
    Sending,
    Synced,
    Conflict,
    Rejected,
    Discarded,
}

impl RecordState {
    pub const ALL: [RecordState; 6] = [
        RecordState::Queued,
        RecordState::Sending,
        RecordState::Synced,
        RecordState::Conflict,
        RecordState::Rejected,
        RecordState::Discarded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Queued => "queued",
            RecordState::Sending => "sending",
            RecordState::Synced => "synced",
            RecordState::Conflict => "conflict",
            RecordState::Rejected => "rejected",
            RecordState::Discarded => "discarded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// One byte used as the prefix of the state index.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// States that need a person before anything is sent again.
    pub fn needs_person(self) -> bool {
        matches!(self, RecordState::Conflict | RecordState::Rejected)
    }
}

impl std::fmt::Display for RecordState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a record (or its newest revision) entered icsync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// The TUI's capture form.
    Capture,
    /// `icsync add` / `icsync edit`.
    Cli,
    /// `icsync import FILE`, with the line (or array index) in that file.
    Import { file: String, line: u64 },
    /// A file dropped into the watched folder, with its line.
    Drop { file: String, line: u64 },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Capture => f.write_str("capture form"),
            Origin::Cli => f.write_str("command line"),
            Origin::Import { file, line } => write!(f, "import {file}:{line}"),
            Origin::Drop { file, line } => write!(f, "drop folder {file}:{line}"),
        }
    }
}

/// A request body exactly as it will be sent: canonical snake_case members, absent members
/// left out and `null` members kept. Built only from a validated [`CustomerInput`], so every
/// stored payload is one the contract accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Map<String, Value>);

impl Payload {
    pub fn from_input(input: &CustomerInput) -> Self {
        match input.to_body() {
            Value::Object(m) => Payload(m),
            _ => unreachable!("CustomerInput::to_body always returns an object"),
        }
    }

    /// Validates a body with the contract's own rules.
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        parse_input(body).map(|i| Self::from_input(&i))
    }

    pub fn input(&self) -> CustomerInput {
        parse_input(&self.to_value()).expect("a stored payload is always valid")
    }

    /// The payload of a purged record: no member at all. Never sent (a purged record is
    /// synced), and never valid input, so nothing can queue it by mistake.
    pub fn erased() -> Self {
        Payload(Map::new())
    }

    pub fn is_erased(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    fn str_member(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    pub fn full_name(&self) -> &str {
        self.str_member("full_name").unwrap_or_default()
    }

    pub fn email(&self) -> Option<&str> {
        self.str_member("email")
    }

    pub fn external_id(&self) -> Option<&str> {
        self.str_member("external_id")
    }

    /// Whether applying `changes` as an upsert would leave this payload as it is: every
    /// member `changes` sends is already here with the same value (see [`merge_members`]).
    pub fn absorbs(&self, changes: &Payload) -> bool {
        merge_members(&self.0, &changes.0) == self.0
    }

    /// This payload with `changes` applied as the server applies an upsert to its customer
    /// (see [`merge_members`]).
    pub fn merged(&self, changes: &Payload) -> Payload {
        Payload(merge_members(&self.0, &changes.0))
    }
}

/// `base` with `changes` applied the way the contract applies an update: a member absent from
/// `changes` is kept, one present replaces it (`null` included: it clears the member), and a
/// `risk` object merges key by key into a `risk` object. The one definition shared by
/// `icsync edit` (and everything that edits a record) and the store's "unchanged" test.
pub fn merge_members(
    base: &Map<String, Value>,
    changes: &Map<String, Value>,
) -> Map<String, Value> {
    let mut merged = base.clone();
    for (k, v) in changes {
        match (k.as_str(), merged.get_mut(k), v) {
            ("risk", Some(Value::Object(risk)), Value::Object(patch)) => {
                for (rk, rv) in patch {
                    risk.insert(rk.clone(), rv.clone());
                }
            }
            _ => {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    merged
}

/// Why a record is not synced, as shown to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum RecordError {
    /// The API answered with an error body.
    Api { error: ApiError },
    /// No usable answer: timeout, connection refused or reset, unreadable reply.
    Transport { message: String },
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Api { error } => error.fmt(f),
            RecordError::Transport { message } => write!(f, "transport: {message}"),
        }
    }
}

/// One request sent for a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub revision: u32,
    pub key: String,
    /// HTTP status, or none when no reply came.
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub replayed: bool,
    pub error: Option<String>,
}

/// What an operator (or the CLI on their behalf) did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Created,
    Revised,
    Retry,
    /// `resolve --update-existing` (written `adopt_existing` before 0.2, still read).
    #[serde(alias = "adopt_existing")]
    UpdateExisting,
    /// `resolve --link-existing` (written `keep_existing` before 0.2, still read).
    #[serde(alias = "keep_existing")]
    LinkExisting,
    Discard,
    Edit,
    /// Retention erased the customer data (see `Record::is_purged`).
    Purged,
}

/// A line in a record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HistoryEntry {
    Attempt(Attempt),
    Action {
        at: DateTime<Utc>,
        action: ActionKind,
        revision: u32,
        detail: Option<String>,
    },
}

/// What `GET /v1/customers/{id}` said about the customer a 409 collided with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ExistingLookup {
    Found {
        customer: Box<Customer>,
    },
    /// A 404: the customer was deleted since the 409, or is not visible to this key.
    NotFound,
}

/// The existing customer of a conflict, with the id it was read for and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingCustomer {
    /// The `conflicting_customer_id` it was read for.
    pub customer_id: Uuid,
    pub fetched_at: DateTime<Utc>,
    #[serde(flatten)]
    pub lookup: ExistingLookup,
}

impl ExistingCustomer {
    pub fn customer(&self) -> Option<&Customer> {
        match &self.lookup {
            ExistingLookup::Found { customer } => Some(customer),
            ExistingLookup::NotFound => None,
        }
    }
}

/// One customer as icsync holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: RecordId,
    /// Starts at 1; every accepted change of the payload adds one.
    pub revision: u32,
    pub payload: Payload,
    pub origin: Origin,
    pub state: RecordState,
    pub last_error: Option<RecordError>,
    /// The server's customer from the last 2xx.
    pub remote: Option<Customer>,
    /// The newest revision the server has acknowledged.
    pub synced_revision: Option<u32>,
    /// The server customer an operator linked this record to without sending it
    /// (`resolve --link-existing`), or the server's customer id kept when retention erased
    /// `remote`.
    #[serde(default)]
    pub linked_customer_id: Option<Uuid>,
    /// The existing customer a `customer_conflict` named, as read from the server after the
    /// 409 (the error itself names only its id). Present only while the record is in that
    /// same conflict: the store drops it on any write that leaves it (see
    /// [`Record::drop_stale_existing`]).
    #[serde(default)]
    pub existing: Option<ExistingCustomer>,
    /// Failed attempts in a row for the current revision: drives the backoff.
    pub failures: u32,
    /// Not sent before this instant (backoff); none means as soon as possible.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub history: Vec<HistoryEntry>,
}

/// What the idempotency ledger remembers about one Idempotency-Key: which record and revision
/// it was derived for, when it was first sent, the last status it got and how often it went
/// out. Written by the store from the attempts appended to a record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub record: RecordId,
    pub revision: u32,
    pub first_used_at: DateTime<Utc>,
    /// HTTP status of the newest attempt, or none when no reply came.
    pub last_status: Option<u16>,
    pub attempts: u32,
}

impl Record {
    /// A new local record at revision 1, queued.
    pub fn new(id: RecordId, payload: Payload, origin: Origin, now: DateTime<Utc>) -> Record {
        let detail = Some(origin.to_string());
        Record {
            id,
            revision: 1,
            payload,
            origin,
            state: RecordState::Queued,
            last_error: None,
            remote: None,
            synced_revision: None,
            linked_customer_id: None,
            existing: None,
            failures: 0,
            next_attempt_at: None,
            created_at: now,
            updated_at: now,
            history: vec![HistoryEntry::Action {
                at: now,
                action: ActionKind::Created,
                revision: 1,
                detail,
            }],
        }
    }

    /// Makes `payload` the next revision (so a new Idempotency-Key), to be sent as soon as
    /// possible. A record in flight stays `sending`: the engine queues the new revision when
    /// the old one's reply arrives, so revisions reach the server in order. The server's
    /// customer and the synced revision stay: they describe what the server holds.
    pub fn revise(
        &mut self,
        payload: Payload,
        action: ActionKind,
        detail: Option<String>,
        now: DateTime<Utc>,
    ) {
        self.revision += 1;
        self.payload = payload;
        if self.state != RecordState::Sending {
            self.state = RecordState::Queued;
        }
        self.failures = 0;
        self.next_attempt_at = None;
        self.last_error = None;
        self.updated_at = now;
        self.history.push(HistoryEntry::Action {
            at: now,
            action,
            revision: self.revision,
            detail,
        });
    }

    /// The existing customer a 409 `customer_conflict` named: its id and external_id.
    pub fn conflict(&self) -> Option<(Uuid, Option<&str>)> {
        match &self.last_error {
            Some(RecordError::Api {
                error:
                    ApiError::CustomerConflict {
                        conflicting_customer_id,
                        conflicting_external_id,
                        ..
                    },
            }) => Some((*conflicting_customer_id, conflicting_external_id.as_deref())),
            _ => None,
        }
    }

    /// The id of the customer this record is in a `customer_conflict` with, while it is.
    pub fn conflicting_customer_id(&self) -> Option<Uuid> {
        self.conflict()
            .filter(|_| self.state == RecordState::Conflict)
            .map(|(id, _)| id)
    }

    /// The conflicting customer whose details are still to be read: the record is in a
    /// `customer_conflict` and holds no lookup for that customer yet.
    pub fn existing_to_fetch(&self) -> Option<Uuid> {
        self.conflicting_customer_id()
            .filter(|id| self.existing.as_ref().map(|e| e.customer_id) != Some(*id))
    }

    /// Keeps a lookup only while the record is in the conflict it was read for. Returns
    /// whether it dropped one. The store calls this on every write of a record, so every way
    /// out of a conflict (edit, retry, update or link to the existing customer, discard, a newer revision, a purge) clears
    /// it without each transition having to remember.
    pub fn drop_stale_existing(&mut self) -> bool {
        let stale = self.existing_is_stale();
        if stale {
            self.existing = None;
        }
        stale
    }

    /// Whether the record holds a lookup of a conflict it is no longer in.
    pub fn existing_is_stale(&self) -> bool {
        self.existing
            .as_ref()
            .is_some_and(|e| Some(e.customer_id) != self.conflicting_customer_id())
    }

    /// Stores a lookup for `existing.customer_id` if the record is still in a conflict with
    /// that customer (it may have been resolved while the read was in flight). Returns
    /// whether it was stored.
    pub fn attach_existing(&mut self, existing: ExistingCustomer) -> bool {
        if self.conflicting_customer_id() != Some(existing.customer_id) {
            return false;
        }
        self.existing = Some(existing);
        true
    }

    /// The server's id for this customer: from the last 2xx, or linked by an operator.
    pub fn remote_id(&self) -> Option<Uuid> {
        self.remote
            .as_ref()
            .map(|c| c.id)
            .or(self.linked_customer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn conflict_with(customer: u128) -> RecordError {
        RecordError::Api {
            error: ApiError::CustomerConflict {
                message: "taken".into(),
                conflicting_customer_id: Uuid::from_u128(customer),
                conflicting_external_id: None,
            },
        }
    }

    fn in_conflict(customer: u128) -> Record {
        let p = Payload::parse(&json!({"full_name": "Ada", "email": "ada@x.io"})).unwrap();
        let mut r = Record::new(RecordId::new(), p, Origin::Cli, t(0));
        r.state = RecordState::Conflict;
        r.last_error = Some(conflict_with(customer));
        r
    }

    fn lookup(customer: u128) -> ExistingCustomer {
        ExistingCustomer {
            customer_id: Uuid::from_u128(customer),
            fetched_at: t(1),
            lookup: ExistingLookup::NotFound,
        }
    }

    #[test]
    fn only_customer_conflicts_without_a_lookup_of_their_customer_need_one() {
        let mut r = in_conflict(5);
        assert_eq!(r.existing_to_fetch(), Some(Uuid::from_u128(5)));
        assert!(r.attach_existing(lookup(5)));
        assert_eq!(r.existing_to_fetch(), None);

        let mut rejected = in_conflict(5);
        rejected.state = RecordState::Rejected;
        assert_eq!(rejected.existing_to_fetch(), None);
        let mut other_409 = in_conflict(5);
        other_409.last_error = Some(RecordError::Api {
            error: ApiError::simple(crate::contract::ErrorKind::IdempotencyConflict, "x"),
        });
        assert_eq!(other_409.existing_to_fetch(), None);
    }

    #[test]
    fn a_lookup_is_attached_only_to_the_conflict_it_was_read_for() {
        let mut r = in_conflict(5);
        assert!(!r.attach_existing(lookup(6)), "another customer");
        r.state = RecordState::Queued;
        assert!(!r.attach_existing(lookup(5)), "left the conflict meanwhile");
        assert_eq!(r.existing, None);
    }

    #[test]
    fn leaving_the_conflict_or_a_new_conflict_makes_the_lookup_stale() {
        let mut r = in_conflict(5);
        r.attach_existing(lookup(5));
        assert!(!r.drop_stale_existing());
        assert!(r.existing.is_some());

        let mut revised = r.clone();
        let p = Payload::parse(&json!({"full_name": "Ada B"})).unwrap();
        revised.revise(p, ActionKind::Edit, None, t(2));
        assert!(revised.drop_stale_existing());
        assert_eq!(revised.existing, None);

        let mut other = r.clone();
        other.last_error = Some(conflict_with(6));
        assert!(other.existing_is_stale());
        assert_eq!(other.existing_to_fetch(), Some(Uuid::from_u128(6)));
    }

    #[test]
    fn a_lookup_round_trips_through_json_and_old_records_read_without_one() {
        let mut r = in_conflict(5);
        r.attach_existing(lookup(5));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["existing"]["outcome"], "not_found");
        assert_eq!(serde_json::from_value::<Record>(v.clone()).unwrap(), r);
        let mut old = v;
        old.as_object_mut().unwrap().remove("existing");
        assert_eq!(
            serde_json::from_value::<Record>(old).unwrap().existing,
            None
        );
    }
}
