//! The control protocol, version [`PROTOCOL_VERSION`]: newline-delimited JSON frames over the
//! daemon's Unix socket. Pure types and a codec over bytes; no sockets here.
//!
//! A connection opens with the server's `{"hello": {...}}` frame naming its protocol version.
//! The client then sends `{"id": N, "request": {...}}` frames and gets one
//! `{"id": N, "reply": {...}}` for each, in order. After a `subscribe` request the server
//! also pushes `{"event": {...}}` frames whenever something changes. `docs/control.md`
//! describes every request.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::{ErrorKind, FieldError};
use crate::crypto::Passphrase;
pub use crate::ingest::drop::report::RefusedRow;
use crate::store::{
    DropFileEntry, Origin, Record, RecordId, RecordState, SubmitOutcome, Submitted,
};

/// Bumped whenever a frame changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest frame either side accepts, so a confused peer cannot exhaust memory.
pub const MAX_FRAME_BYTES: usize = 8 << 20;

/// The most records one `list` (or search) page may ask for. The CLI pages by 500 and the
/// TUI by its screen height; a larger `limit` is refused with `too_large`, so no request
/// can make the daemon build a reply of unbounded size.
pub const MAX_PAGE: usize = 5_000;

/// The longest error message a reply carries (longer ones are cut at a character boundary),
/// so an error quoting the request cannot grow with it.
pub const MAX_ERROR_MESSAGE: usize = 1_024;
/// Problems listed at most in a `store_check` reply.
pub const MAX_CHECK_PROBLEMS: usize = 100;

/// What an operator can do to a record that needs a person. Each is named for what it does;
/// the names before 0.2 (`adopt_existing`, `keep_existing`) are still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveAction {
    /// Send the current revision again as it is (same Idempotency-Key).
    Retry,
    /// Send this record's fields over the existing customer of its customer_conflict: the
    /// record takes that customer's external_id (or drops its own when the customer has
    /// none, to match by email), as a new revision the engine sends as an update.
    #[serde(alias = "adopt_existing")]
    UpdateExisting,
    /// Link the record to the existing customer of its customer_conflict and send nothing:
    /// it counts as synced, as that customer.
    #[serde(alias = "keep_existing")]
    LinkExisting,
    /// Stop syncing this record.
    Discard,
}

impl ResolveAction {
    pub const ALL: [ResolveAction; 4] = [
        ResolveAction::UpdateExisting,
        ResolveAction::LinkExisting,
        ResolveAction::Retry,
        ResolveAction::Discard,
    ];

    /// The name on the wire, in `--json` output and in the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolveAction::Retry => "retry",
            ResolveAction::UpdateExisting => "update_existing",
            ResolveAction::LinkExisting => "link_existing",
            ResolveAction::Discard => "discard",
        }
    }

    /// What it does, in one line (the TUI's conflict pane and help).
    pub fn explain(self) -> &'static str {
        match self {
            ResolveAction::Retry => "send the same revision again, unchanged",
            ResolveAction::UpdateExisting => {
                "send these fields over the existing customer (asks first)"
            }
            ResolveAction::LinkExisting => "link to the existing customer as it is; send nothing",
            ResolveAction::Discard => "stop syncing: the record is never sent (asks first)",
        }
    }

    /// What became of the records it was applied to, after a count ("2 records discarded").
    pub fn done(self) -> &'static str {
        match self {
            ResolveAction::Retry => "queued again",
            ResolveAction::UpdateExisting => "queued to update the existing customer",
            ResolveAction::LinkExisting => "linked to the existing customer (nothing sent)",
            ResolveAction::Discard => "discarded",
        }
    }

    /// Whether it changes data on the server that someone else put there, so a person
    /// confirms it first (as they do a discard).
    pub fn overwrites_existing(self) -> bool {
        self == ResolveAction::UpdateExisting
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Request {
    Status,
    List {
        state: Option<RecordState>,
        after: Option<RecordId>,
        limit: usize,
        /// Only records whose full name, email or external id contains this (ignoring case).
        /// Absent for clients older than search; the daemon scans a bounded number of
        /// records per request (docs/control.md).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        query: Option<String>,
        /// The order of the whole list (absent: queue order, as before sorting existed).
        #[serde(default, skip_serializing_if = "ListSort::is_queue")]
        sort: ListSort,
        /// With a `sort` other than queue order: the sort key of `after`, as the reply's
        /// `next` gave it. `after` and `after_key` together name a position in the order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_key: Option<SortKey>,
    },
    /// `id` is a record handle: the external_id of a live record, a short id (the id's last
    /// 8 hex digits), or a unique id prefix of at least 6 characters (docs/control.md,
    /// "Record handles").
    Show {
        id: String,
    },
    /// A request body to validate and queue (a new record, or the next revision of the record
    /// it matches by external_id or email).
    Submit {
        body: Value,
        origin: Origin,
    },
    /// Many already-parsed bodies, queued with one flush (group commit). Invalid ones are
    /// reported by their index and not queued; the valid ones are queued regardless.
    SubmitMany {
        items: Vec<SubmitItem>,
    },
    /// Members to change on a record (`id`: a record handle, as for `show`): absent members
    /// are kept, `null` clears; `risk` members are merged key by key.
    Edit {
        id: String,
        changes: Value,
    },
    /// `id`: a record handle, as for `show`.
    Resolve {
        id: String,
        action: ResolveAction,
    },
    ResolveMany {
        state: RecordState,
        error_type: Option<ErrorKind>,
        action: ResolveAction,
    },
    Subscribe,
    /// The drop folder's recent files and what became of each, newest first.
    DropFiles,
    /// The store's consistency check (every index against the records), run by the daemon
    /// that holds the store, as `icsync doctor` runs it when no daemon does. Answered with
    /// `store_check`; at most [`MAX_CHECK_PROBLEMS`] problems are listed.
    CheckStore,
    /// The refused rows of a recent drop-folder file, read from its report: `report` is the
    /// file's `report` as `drop_files` gave it (nothing else is read). Answered with
    /// `drop_report`; at most [`crate::ingest::drop::report::MAX_ROWS`] rows are listed.
    DropReport {
        report: String,
    },
    /// Whether a file with this content (SHA-256, hex) was taken whole before, by the drop
    /// folder or by `icsync import`. Answered with `file_taken`.
    FileTaken {
        sha256: String,
    },
    /// Notes that `icsync import` took every record of a file with this content, so that
    /// it and the drop folder know it next time. Answered with `file_taken`.
    MarkFileTaken {
        sha256: String,
        file: String,
    },
    /// Opens a passphrase-locked store; sending starts. Answered with the status.
    Unlock {
        passphrase: Passphrase,
    },
    /// Stops sending (draining requests in flight) and drops the key from memory. Answered
    /// with the status.
    Lock,
    /// Erases the customer data of synced records unchanged since `synced_before` (see
    /// docs/security.md); with `dry_run`, only lists them.
    Purge {
        synced_before: DateTime<Utc>,
        dry_run: bool,
    },
}

/// The order a `list` is served in, over every record it selects (not one page). Also the
/// values of `icsync list --sort` (clap spells them `queue`, `name`, `state`,
/// `newest-change`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum ListSort {
    /// By id: oldest record first (UUIDv7).
    #[default]
    Queue,
    /// By full name, ignoring case; equal names in queue order.
    Name,
    /// By state, what needs a person first (conflict, rejected, queued, sending, synced,
    /// discarded), queue order within.
    State,
    /// Most recently changed first; equal times in queue order.
    NewestChange,
}

impl ListSort {
    pub fn is_queue(&self) -> bool {
        *self == ListSort::Queue
    }
}

/// A record's place in a [`ListSort`] other than queue order (the id breaks ties).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// The full name in lower case.
    Name(String),
    State(RecordState),
    NewestChange(DateTime<Utc>),
}

/// A position in a sorted list: just after the record `id` whose sort key is `key`. The key
/// travels with the id because a record's name, state or change time may move after the
/// page was served; the position stays where it was, so paging neither skips nor repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortCursor {
    pub id: RecordId,
    pub key: SortKey,
}

/// How far the daemon is in building a sorted order: `done` of `total` records read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortProgress {
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitItem {
    pub body: Value,
    pub origin: Origin,
}

/// Counts and sync health, as `icsync status --json` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub queued: u64,
    pub sending: u64,
    pub synced: u64,
    pub conflict: u64,
    pub rejected: u64,
    pub discarded: u64,
    pub total: u64,
    /// Why sending is paused, if it is.
    pub paused: Option<String>,
    pub online: bool,
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Whether a daemon answered (false when the CLI read the store itself).
    pub daemon: bool,
    /// The store's key is not in memory: records wait until `icsync unlock`.
    #[serde(default)]
    pub locked: bool,
    /// The data dir's disk is full: intake and sending wait, and resume by themselves once
    /// space is freed (`paused` says so in words).
    #[serde(default)]
    pub disk_full: bool,
    /// The store is damaged: nothing is read or sent until `icsync recover` (`paused` says
    /// why).
    #[serde(default)]
    pub damaged: bool,
    /// Why the drop folder is not watched (a mapping file that cannot be used, a folder
    /// others can write to, a folder that cannot be watched); `None` while it is watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_folder_problem: Option<String>,
    /// The API's host (and port), as "cannot reach" names it while `online` is false: never
    /// a path, credentials or the key. Absent without an engine and from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_host: Option<String>,
}

/// A dropped file's refused rows, read from its report (the `drop_report` request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropReport {
    /// The name the file was dropped under.
    pub file: String,
    /// The report's path, absolute.
    pub report: String,
    /// The copy of the refused rows to fix and drop again, absolute (absent for a file
    /// refused whole, which is itself in `rejected/`, and for files from older daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_copy: Option<String>,
    /// The first refused rows, in file order.
    pub rows: Vec<RefusedRow>,
    /// Refused rows of the file that are not listed.
    pub more: u64,
    /// The report is no longer where it was written (moved or deleted).
    #[serde(default)]
    pub missing: bool,
}

/// A submitted record: its id, its newest revision, and whether it is new, revised or
/// unchanged (see [`Queued::outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub id: RecordId,
    pub revision: u32,
    /// A new record was made.
    pub created: bool,
    /// The submit matched a record it would not change: nothing was queued (additive: an
    /// older daemon never sends it, so it reads as false there).
    #[serde(default)]
    pub unchanged: bool,
}

impl Queued {
    pub fn outcome(&self) -> SubmitOutcome {
        match (self.created, self.unchanged) {
            (true, _) => SubmitOutcome::Created,
            (false, true) => SubmitOutcome::Unchanged,
            (false, false) => SubmitOutcome::Revised,
        }
    }
}

impl From<Submitted> for Queued {
    fn from(s: Submitted) -> Self {
        Queued {
            id: s.id,
            revision: s.revision,
            created: s.outcome == SubmitOutcome::Created,
            unchanged: s.outcome == SubmitOutcome::Unchanged,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Status(StatusReport),
    Records {
        records: Vec<Record>,
        /// Set when a `list` with `query` stopped at its scan cap before `limit` matches:
        /// the last record read, where the next request carries on (additive: older
        /// clients ignore it, older daemons never send it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_after: Option<RecordId>,
        /// Only for a `list` with a `sort`: where the next page starts (absent on the last
        /// page). Sent back as `after` and `after_key`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<SortCursor>,
        /// Only for a `list` with a `sort`: the daemon is still building this order. With no
        /// records, none is sorted yet (ask again shortly); with records, they are in the
        /// previous order, read fresh, while the order is rebuilt after changes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sorting: Option<SortProgress>,
    },
    Record {
        record: Box<Record>,
    },
    Queued(Queued),
    QueuedMany {
        queued: Vec<Queued>,
        invalid: Vec<InvalidItem>,
    },
    Resolved {
        ids: Vec<RecordId>,
    },
    Subscribed,
    DropFiles {
        files: Vec<DropFileEntry>,
        /// The drop folder, absolute: `report` and `archived_as` are relative to it (absent
        /// from a daemon without one, and from older daemons).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        folder: Option<String>,
    },
    DropReport(DropReport),
    StoreCheck {
        records: u64,
        /// The first [`MAX_CHECK_PROBLEMS`] problems found.
        problems: Vec<String>,
        /// How many more were found and not listed.
        more: usize,
    },
    FileTaken {
        earlier: Option<FileTaken>,
    },
    Purged {
        ids: Vec<RecordId>,
        dry_run: bool,
        /// Files of refused rows in the drop folder's `rejected/` erased by the same cutoff
        /// (with `dry_run`, that would be); 0 from a daemon older than this field.
        #[serde(default)]
        refused_files: usize,
    },
    Error(ControlError),
}

/// A file taken whole before: the name it had and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTaken {
    pub file: String,
    pub at: DateTime<Utc>,
}

/// A body of a `submit_many` that failed validation, by its index in the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidItem {
    pub index: usize,
    pub errors: Vec<FieldError>,
}

/// An error answered to a request; `invalid` carries the contract's field errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    pub code: ControlErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<FieldError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlErrorCode {
    NotFound,
    Ambiguous,
    Invalid,
    NotAllowed,
    /// The store is locked: run `icsync unlock`.
    Locked,
    /// A record handle that cannot name a record: empty, or over 255 characters.
    BadId,
    /// The request line is not JSON (the message gives the position).
    Malformed,
    /// The request names a method this daemon does not know (the message names it).
    UnknownMethod,
    /// The request line is over [`MAX_FRAME_BYTES`], or a page over [`MAX_PAGE`].
    TooLarge,
    /// The daemon has as many control connections as it serves; this one is closed.
    Busy,
    /// The connection sent no complete request for too long and is closed.
    IdleTimeout,
    Internal,
}

impl ControlError {
    /// An error whose message is cut to [`MAX_ERROR_MESSAGE`] bytes.
    pub fn new(code: ControlErrorCode, message: impl Into<String>) -> Self {
        ControlError {
            code,
            message: bounded_message(message.into()),
            invalid: Vec::new(),
        }
    }
}

/// `message` cut to at most [`MAX_ERROR_MESSAGE`] bytes at a character boundary, with `...`
/// where it was cut.
pub fn bounded_message(mut message: String) -> String {
    if message.len() > MAX_ERROR_MESSAGE {
        let mut end = MAX_ERROR_MESSAGE - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

/// A request line the server refuses: the id it carried (0 when none could be read) and
/// why, as the reply says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub id: u64,
    pub error: ControlError,
}

/// Parses one request line (with or without its newline) into its id and request, or says
/// precisely why it is not one: not JSON (with the position), no numeric `id`, no
/// `request.method`, a method this daemon does not know (named), or a bad field of a known
/// method (named by serde).
pub fn parse_request(line: &[u8]) -> Result<(u64, Request), Refused> {
    let refused = |id, code, message: String| Refused {
        id,
        error: ControlError::new(code, message),
    };
    if line.len() > MAX_FRAME_BYTES {
        return Err(refused(
            0,
            ControlErrorCode::TooLarge,
            too_long_message(line.len()),
        ));
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        refused(
            0,
            ControlErrorCode::Malformed,
            format!("the request is not JSON: {e}"),
        )
    })?;
    let Value::Object(mut frame) = value else {
        return Err(refused(
            0,
            ControlErrorCode::Malformed,
            "a request frame is a JSON object: {\"id\": N, \"request\": {...}}".into(),
        ));
    };
    let id = frame.get("id").and_then(Value::as_u64).ok_or_else(|| {
        refused(
            0,
            ControlErrorCode::Invalid,
            "a request frame needs a numeric \"id\" (a whole number of at least 0)".into(),
        )
    })?;
    let request = frame.remove("request").unwrap_or(Value::Null);
    let method = match request.get("method") {
        Some(Value::String(m)) => m.clone(),
        _ => {
            return Err(refused(
                id,
                ControlErrorCode::Invalid,
                "a request frame needs \"request\": {\"method\": \"...\", ...}".into(),
            ))
        }
    };
    serde_json::from_value::<Request>(request)
        .map(|r| (id, r))
        .map_err(|e| {
            let text = e.to_string();
            // serde names an unknown tag with the list of every method, `status` first.
            if text.starts_with(&format!(
                "unknown variant `{method}`, expected one of `status`"
            )) {
                let method: String = method.chars().take(64).collect();
                refused(
                    id,
                    ControlErrorCode::UnknownMethod,
                    format!(
                        "unknown request method {method:?}; this daemon knows {}",
                        text.split_once("expected one of ")
                            .map_or("", |(_, known)| known)
                    ),
                )
            } else {
                refused(
                    id,
                    ControlErrorCode::Invalid,
                    format!("bad {method:?} request: {text}"),
                )
            }
        })
}

/// What a client is told when its request line is over [`MAX_FRAME_BYTES`].
pub fn too_long_message(seen: usize) -> String {
    format!(
        "the request line is over the limit of {MAX_FRAME_BYTES} bytes ({seen} bytes read); \
         it was not read"
    )
}

/// Something that changed, pushed to subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    RecordChanged { id: RecordId, state: RecordState },
    Status(StatusReport),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub version: String,
}

/// Every frame on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Frame {
    Hello { hello: Hello },
    Request { id: u64, request: Request },
    Reply { id: u64, reply: Reply },
    Event { event: Event },
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("control frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES}")]
    TooLong(usize),
    #[error("malformed control frame: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// One frame as a line of JSON, newline included.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, CodecError> {
    let mut line = serde_json::to_vec(frame)?;
    line.push(b'\n');
    Ok(line)
}

/// Parses one line (with or without its newline).
pub fn decode(line: &[u8]) -> Result<Frame, CodecError> {
    if line.len() > MAX_FRAME_BYTES {
        return Err(CodecError::TooLong(line.len()));
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    Ok(serde_json::from_slice(line)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(frame: Frame) -> Frame {
        let bytes = encode(&frame).unwrap();
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(bytes.ends_with(b"\n"));
        decode(&bytes).unwrap()
    }

    #[test]
    fn every_frame_kind_survives_the_wire() {
        let frames = [
            Frame::Hello {
                hello: Hello {
                    protocol: PROTOCOL_VERSION,
                    version: "0.1.0".into(),
                },
            },
            Frame::Request {
                id: 7,
                request: Request::Submit {
                    body: json!({"full_name": "A\nB"}),
                    origin: Origin::Cli,
                },
            },
            Frame::Request {
                id: 8,
                request: Request::ResolveMany {
                    state: RecordState::Conflict,
                    error_type: Some(ErrorKind::CustomerConflict),
                    action: ResolveAction::Discard,
                },
            },
            Frame::Reply {
                id: 7,
                reply: Reply::Status(StatusReport {
                    queued: 3,
                    paused: Some("401".into()),
                    ..StatusReport::default()
                }),
            },
            Frame::Reply {
                id: 9,
                reply: Reply::Error(ControlError::new(ControlErrorCode::NotFound, "no record")),
            },
            Frame::Event {
                event: Event::RecordChanged {
                    id: RecordId::new(),
                    state: RecordState::Synced,
                },
            },
        ];
        for f in frames {
            assert_eq!(round_trip(f.clone()), f);
        }
    }

    #[test]
    fn resolve_actions_are_named_for_what_they_do_and_old_names_are_still_read() {
        for action in ResolveAction::ALL {
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                json!(action.as_str())
            );
        }
        for (old, new) in [
            ("adopt_existing", ResolveAction::UpdateExisting),
            ("keep_existing", ResolveAction::LinkExisting),
        ] {
            let line = format!(
                r#"{{"id": 1, "request": {{"method": "resolve", "id": "crm-1", "action": "{old}"}}}}"#
            );
            assert_eq!(
                parse_request(line.as_bytes()).unwrap().1,
                Request::Resolve {
                    id: "crm-1".into(),
                    action: new
                }
            );
        }
        assert_eq!(ResolveAction::UpdateExisting.as_str(), "update_existing");
        assert_eq!(ResolveAction::LinkExisting.as_str(), "link_existing");
    }

    #[test]
    fn request_wire_shape_is_documented_form() {
        let f = Frame::Request {
            id: 1,
            request: Request::Show {
                id: "0190ab".into(),
            },
        };
        let v: Value = serde_json::from_slice(&encode(&f).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"id": 1, "request": {"method": "show", "id": "0190ab"}})
        );
    }

    #[test]
    fn a_list_without_query_is_still_understood() {
        let old = br#"{"id": 2, "request": {"method": "list", "state": null, "after": null, "limit": 5}}"#;
        assert_eq!(
            decode(old).unwrap(),
            Frame::Request {
                id: 2,
                request: Request::List {
                    state: None,
                    after: None,
                    limit: 5,
                    query: None,
                    sort: ListSort::Queue,
                    after_key: None,
                },
            }
        );
    }

    #[test]
    fn a_sorted_list_and_its_reply_survive_the_wire() {
        let id = RecordId::new();
        let at: DateTime<Utc> = "2026-03-01T10:00:00.123456789Z".parse().unwrap();
        for key in [
            SortKey::Name("grace hopper".into()),
            SortKey::State(RecordState::Conflict),
            SortKey::NewestChange(at),
        ] {
            let request = Frame::Request {
                id: 3,
                request: Request::List {
                    state: None,
                    after: Some(id),
                    limit: 20,
                    query: Some("hop".into()),
                    sort: ListSort::Name,
                    after_key: Some(key.clone()),
                },
            };
            assert_eq!(round_trip(request.clone()), request);
            let reply = Frame::Reply {
                id: 3,
                reply: Reply::Records {
                    records: Vec::new(),
                    resume_after: None,
                    next: Some(SortCursor { id, key }),
                    sorting: Some(SortProgress {
                        done: 10,
                        total: 200,
                    }),
                },
            };
            assert_eq!(round_trip(reply.clone()), reply);
        }
        // The documented shape; queue order and unset members stay off the wire, so a v1
        // daemon sees exactly the request it knew.
        let v = serde_json::to_value(Request::List {
            state: None,
            after: Some(id),
            limit: 2,
            query: None,
            sort: ListSort::NewestChange,
            after_key: Some(SortKey::NewestChange(at)),
        })
        .unwrap();
        assert_eq!(v["sort"], "newest_change");
        assert_eq!(
            v["after_key"],
            json!({"newest_change": "2026-03-01T10:00:00.123456789Z"})
        );
        let plain = serde_json::to_value(Request::List {
            state: None,
            after: None,
            limit: 2,
            query: None,
            sort: ListSort::Queue,
            after_key: None,
        })
        .unwrap();
        assert_eq!(
            plain,
            json!({"method": "list", "state": null, "after": null, "limit": 2})
        );
        let records = serde_json::to_value(Reply::Records {
            records: Vec::new(),
            resume_after: None,
            next: None,
            sorting: None,
        })
        .unwrap();
        assert_eq!(records, json!({"type": "records", "records": []}));
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        assert!(matches!(
            decode(&vec![b' '; MAX_FRAME_BYTES + 1]),
            Err(CodecError::TooLong(_))
        ));
        assert!(matches!(
            decode(b"{not json}\n"),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            decode(b"{\"id\": 1}\n"),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn refused_requests_say_precisely_why() {
        let code = |line: &[u8]| parse_request(line).unwrap_err();
        let r = code(b"{\"id\": 1, \"request\": ");
        assert_eq!(r.error.code, ControlErrorCode::Malformed);
        assert!(
            r.error.message.contains("line 1 column"),
            "{}",
            r.error.message
        );
        assert_eq!(code(b"[1]").error.code, ControlErrorCode::Malformed);
        assert_eq!(
            code(b"{\"request\": {\"method\": \"status\"}}").error.code,
            ControlErrorCode::Invalid
        );
        let r = code(b"{\"id\": 4, \"request\": {\"method\": \"explode\"}}");
        assert_eq!((r.id, r.error.code), (4, ControlErrorCode::UnknownMethod));
        assert!(
            r.error.message.contains("\"explode\""),
            "{}",
            r.error.message
        );
        assert!(r.error.message.contains("`status`"), "{}", r.error.message);
        // A known method with a bad field names the method and the field, not "unknown".
        let r = code(b"{\"id\": 5, \"request\": {\"method\": \"list\", \"limit\": \"all\"}}");
        assert_eq!((r.id, r.error.code), (5, ControlErrorCode::Invalid));
        assert!(r.error.message.contains("\"list\""), "{}", r.error.message);
        let r = code(
            b"{\"id\": 6, \"request\": {\"method\": \"list\", \"state\": \"list\", \"after\": null, \"limit\": 1}}",
        );
        assert_eq!(r.error.code, ControlErrorCode::Invalid);
        assert_eq!(
            code(&vec![b' '; MAX_FRAME_BYTES + 1]).error.code,
            ControlErrorCode::TooLarge
        );
        let long = format!(
            "{{\"id\": 7, \"request\": {{\"method\": \"{}\"}}}}",
            "x".repeat(100_000)
        );
        assert!(code(long.as_bytes()).error.message.len() <= MAX_ERROR_MESSAGE);
        assert_eq!(
            parse_request(b"{\"id\": 8, \"request\": {\"method\": \"status\"}}\n").unwrap(),
            (8, Request::Status)
        );
    }

    #[test]
    fn messages_are_cut_at_a_character_boundary() {
        let m = bounded_message("é".repeat(MAX_ERROR_MESSAGE));
        assert!(m.len() <= MAX_ERROR_MESSAGE && m.ends_with("..."));
        assert_eq!(bounded_message("short".into()), "short");
    }
}
