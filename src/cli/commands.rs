//! One function per record command. Each reaches the records through a [`Backend`] (the
//! daemon, or the store when none runs) and prints human text or, with `--json`, JSON.

use std::io::Write;

use clap::Args;
use serde_json::{json, Value};

use super::fields::CustomerFields;
use super::{output, Backend, CliError};
use crate::config::Settings;
use crate::contract::ErrorKind;
use crate::control::{ListSort, Queued, Reply, Request, ResolveAction, SortCursor};
use crate::store::{Origin, Record, RecordState};

/// How many records one `list` page asks for.
const PAGE: usize = 500;

/// A `--state` value. `refused` is not a state: rows refused while a file was read never
/// became records, and saying where they went beats "unknown state".
pub(crate) fn parse_state(s: &str) -> Result<RecordState, String> {
    if s.eq_ignore_ascii_case("refused") {
        return Err(
            "rows refused at import are not records: `icsync import` wrote them beside \
                    each file (NAME.refused.csv, with NAME.errors.txt) and the drop folder to \
                    rejected/; `--state rejected` is for records the API rejected"
                .into(),
        );
    }
    RecordState::parse(s).ok_or_else(|| {
        let names: Vec<_> = RecordState::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown state; one of: {}", names.join(", "))
    })
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub fields: CustomerFields,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the counts as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// First wait until a running daemon has sent every queued record (none queued or being
    /// sent). Fails at once when sending is paused (no API key, a locked store, a full disk),
    /// and after 10 s when no daemon runs.
    #[arg(long)]
    pub wait: bool,
}

/// How often `status --wait` asks.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(200);
/// How long `status --wait` waits for a daemon to answer before saying none runs (one
/// started just before, as in `icsync daemon & icsync status --wait`, answers well within).
const WAIT_FOR_DAEMON: std::time::Duration = std::time::Duration::from_secs(10);

/// Why `status --wait` stops waiting: `None` while it should go on (records are still
/// queued or being sent by a daemon that can send them).
fn wait_verdict(s: &crate::control::StatusReport) -> Option<Result<(), String>> {
    let left = s.queued + s.sending;
    if left == 0 {
        return Some(Ok(()));
    }
    if s.locked {
        return Some(Err(format!(
            "{left} record(s) wait: the store is locked (run `icsync unlock`)"
        )));
    }
    if let Some(reason) = &s.paused {
        return Some(Err(format!(
            "{left} record(s) wait: sending is paused: {reason}"
        )));
    }
    None
}

/// The progress line `status --wait` keeps up to date on a terminal while it waits.
fn wait_progress(s: &crate::control::StatusReport) -> String {
    let left = s.queued + s.sending;
    let mut line = format!(
        "waiting: {left} record(s) left to send, {} synced",
        s.synced
    );
    if !s.daemon {
        line.push_str("; no daemon answers yet");
    } else if !s.online {
        match &s.api_host {
            Some(host) => line.push_str(&format!("; cannot reach {host}, retrying")),
            None => line.push_str("; the API cannot be reached, retrying"),
        }
    }
    line
}

/// `status --wait`: asks again until nothing is left to send. The store is opened afresh
/// (and let go) on every ask, so a daemon started a moment before can take it. On a
/// terminal, stderr shows one progress line, rewritten as the counts change and cleared at
/// the end (stdout gets only the final status).
pub async fn wait_until_sent(settings: &Settings) -> Result<(), CliError> {
    use std::io::{IsTerminal, Write};
    let live = std::io::stderr().is_terminal();
    let mut shown = String::new();
    let clear = |shown: &str| {
        if !shown.is_empty() {
            eprint!("\r{}\r", " ".repeat(shown.chars().count()));
            let _ = std::io::stderr().flush();
        }
    };
    let mut without_daemon = std::time::Duration::ZERO;
    loop {
        let mut backend = super::Backend::connect(settings).await?;
        let reply = backend.call(Request::Status).await?;
        drop(backend);
        let Reply::Status(s) = reply else {
            clear(&shown);
            return Err(unexpected(reply));
        };
        if let Some(verdict) = wait_verdict(&s) {
            clear(&shown);
            return verdict.map_err(CliError::Usage);
        }
        if live {
            let line = wait_progress(&s);
            if line != shown {
                clear(&shown);
                eprint!("{line}");
                let _ = std::io::stderr().flush();
                shown = line;
            }
        }
        if s.daemon {
            without_daemon = std::time::Duration::ZERO;
        } else {
            without_daemon += WAIT_POLL;
            if without_daemon >= WAIT_FOR_DAEMON {
                clear(&shown);
                return Err(CliError::Usage(format!(
                    "{} record(s) queued and no daemon sends them: start `icsync daemon`",
                    s.queued + s.sending
                )));
            }
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only records in this state: queued, sending, synced, conflict, rejected (by the API)
    /// or discarded.
    #[arg(long, value_parser = parse_state)]
    pub state: Option<RecordState>,
    /// At most this many records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The order of the whole list (the daemon sorts every record it selects).
    #[arg(long, value_enum, default_value_t = ListSort::Queue)]
    pub sort: ListSort,
    /// Print the records as a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// How often `list --sort` asks again while the daemon is still building the order.
const SORTING_POLL: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The record: its external_id, its short id (as `icsync list` shows it), or a unique
    /// prefix of its id (6+ characters).
    pub id: String,
    /// Print the record as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The record: its external_id, its short id (as `icsync list` shows it), or a unique
    /// prefix of its id (6+ characters).
    pub id: String,
    #[command(flatten)]
    pub fields: CustomerFields,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").required(true)))]
pub struct ResolveArgs {
    /// The record: its external_id, its short id (as `icsync list` shows it), or a unique
    /// prefix of its id (6+ characters); or use --state for every matching record.
    #[arg(required_unless_present = "state", conflicts_with = "state")]
    pub id: Option<String>,
    /// Act on every record in this state: conflict, or rejected (by the API).
    #[arg(long, value_parser = parse_state)]
    pub state: Option<RecordState>,
    /// With --state: only records whose API error has this type (e.g. customer_conflict).
    #[arg(long, requires = "state", value_parser = parse_error_type)]
    pub error_type: Option<ErrorKind>,
    /// Send the record again as it is.
    #[arg(long, group = "action")]
    pub retry: bool,
    /// Send this record's fields over the existing customer of its customer_conflict (it
    /// takes that customer's external_id). Asks first on a terminal; elsewhere the flag is
    /// the confirmation. Formerly --adopt-existing.
    #[arg(
        long,
        group = "action",
        conflicts_with = "state",
        alias = "adopt-existing"
    )]
    pub update_existing: bool,
    /// Link the record to the existing customer of its customer_conflict as that customer
    /// is, and send nothing (the record counts as synced). Formerly --keep-existing.
    #[arg(
        long,
        group = "action",
        conflicts_with = "state",
        alias = "keep-existing"
    )]
    pub link_existing: bool,
    /// Stop syncing the record.
    #[arg(long, group = "action")]
    pub discard: bool,
    /// Do not ask first (before --update-existing on a terminal, or discarding with
    /// --state, which without --yes is refused when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_error_type(s: &str) -> Result<ErrorKind, String> {
    ErrorKind::parse(s).ok_or_else(|| {
        let names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown error type; one of: {}", names.join(", "))
    })
}

impl ResolveArgs {
    fn action(&self) -> ResolveAction {
        if self.retry {
            ResolveAction::Retry
        } else if self.update_existing {
            ResolveAction::UpdateExisting
        } else if self.link_existing {
            ResolveAction::LinkExisting
        } else {
            ResolveAction::Discard
        }
    }
}

/// What `resolve` says it did: a count in words, then each record's short and full id.
fn resolved_text(action: ResolveAction, ids: &[crate::store::RecordId]) -> String {
    let mut text = format!(
        "{} {} {}",
        ids.len(),
        if ids.len() == 1 { "record" } else { "records" },
        action.done()
    );
    for id in ids {
        text.push_str(&format!("\n  {}  {id}", id.short()));
    }
    text
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A reply the request does not allow: an internal error. Named by its kind only, since a
/// reply's contents may be customer data.
pub(crate) fn unexpected(reply: Reply) -> CliError {
    let kind = serde_json::to_value(&reply)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "?".into());
    CliError::Join(format!("the daemon sent an unexpected `{kind}` reply"))
}

/// What `add` says: what it queued (or why nothing) and how to follow it.
fn added_text(q: &Queued) -> String {
    let id = q.id;
    if q.unchanged {
        format!(
            "nothing queued: record {id} already holds these fields (revision {})",
            q.revision
        )
    } else {
        let what = if q.created {
            "a new record".to_string()
        } else {
            format!("revision {} of the existing record it matches", q.revision)
        };
        format!(
            "queued {id}: {what}\nfollow it with `icsync show {id}` (or `icsync status` for the \
             whole queue)"
        )
    }
}

pub async fn add(backend: &mut Backend, args: AddArgs) -> Result<(), CliError> {
    let body = args
        .fields
        .to_body()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    match backend
        .call(Request::Submit {
            body,
            origin: Origin::Cli,
        })
        .await?
    {
        Reply::Queued(q) => {
            if args.json {
                print_json(&json!(q));
            } else {
                println!("{}", added_text(&q));
            }
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// Counts and sync state from the daemon (or the store), and whether the API key the config
/// names can be used: a key file that is unreadable or holds a malformed key is reported here
/// even while the daemon still sends with the key it read before.
pub async fn status(
    backend: &mut Backend,
    settings: &Settings,
    args: StatusArgs,
) -> Result<(), CliError> {
    match backend.call(Request::Status).await? {
        Reply::Status(s) => print_status(&s, settings, &args).await,
        other => Err(unexpected(other)),
    }
}

async fn print_status(
    s: &crate::control::StatusReport,
    settings: &Settings,
    args: &StatusArgs,
) -> Result<(), CliError> {
    let key_problem = {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || crate::api::configured_key(&settings).err())
            .await
            .map_err(|e| CliError::Join(e.to_string()))?
            .map(|e| e.to_string())
    };
    if args.json {
        let mut v = json!(s);
        if let Some(m) = v.as_object_mut() {
            m.insert("api_key_problem".into(), json!(key_problem));
        }
        print_json(&v);
    } else {
        print!("{}", output::status(s));
        if let Some(problem) = key_problem {
            if !s.paused.as_deref().is_some_and(|p| p.contains(&problem)) {
                println!("api key: {problem}");
            }
        }
    }
    Ok(())
}

/// Whether a command failed because the store could not be opened on a full disk.
pub fn is_full_disk(e: &CliError) -> bool {
    matches!(
        e,
        CliError::Store {
            source: crate::store::StoreError::DiskFull,
            ..
        }
    )
}

/// `status` with no daemon on a full disk: sled writes when it opens, so the store cannot be
/// opened; the counts are read from its files instead (`store::counts_from_files`), as of
/// the last write that reached the disk, and `paused` says the disk is full.
pub async fn status_on_full_disk(settings: &Settings, args: StatusArgs) -> Result<(), CliError> {
    let dir = settings.store_dir();
    let counts = tokio::task::spawn_blocking(move || crate::store::counts_from_files(&dir))
        .await
        .map_err(|e| CliError::Join(e.to_string()))?;
    let mut s = crate::control::StatusReport {
        disk_full: true,
        ..Default::default()
    };
    let read = match counts {
        Ok(Some(c)) => {
            s.queued = c.get(RecordState::Queued);
            s.sending = c.get(RecordState::Sending);
            s.synced = c.get(RecordState::Synced);
            s.conflict = c.get(RecordState::Conflict);
            s.rejected = c.get(RecordState::Rejected);
            s.discarded = c.get(RecordState::Discarded);
            s.total = c.total;
            "the counts are read from the store's files, as of its last write"
        }
        Ok(None) | Err(_) => "the counts could not be read from the store's files",
    };
    s.paused = Some(format!(
        "disk full: the store cannot be opened until space is freed on the disk of the data \
         dir; {read}"
    ));
    print_status(&s, settings, &args).await
}

/// Every record matching `state`, page by page, in `sort` order.
pub async fn all_records(
    backend: &mut Backend,
    state: Option<RecordState>,
    limit: Option<usize>,
    sort: ListSort,
) -> Result<Vec<Record>, CliError> {
    let mut out: Vec<Record> = Vec::new();
    let want = limit.unwrap_or(usize::MAX);
    // Queue order pages by the last id; other orders by the daemon's `next` cursor.
    let mut cursor: Option<SortCursor> = None;
    loop {
        let page = PAGE.min(want - out.len());
        let (after, after_key) = match (&cursor, sort.is_queue()) {
            (_, true) => (out.last().map(|r| r.id), None),
            (Some(c), false) => (Some(c.id), Some(c.key.clone())),
            (None, false) => (None, None),
        };
        match backend
            .call(Request::List {
                state,
                after,
                limit: page,
                query: None,
                sort,
                after_key,
            })
            .await?
        {
            // The daemon is still sorting: nothing to show yet, ask again shortly.
            Reply::Records {
                records,
                sorting: Some(_),
                ..
            } if records.is_empty() => tokio::time::sleep(SORTING_POLL).await,
            Reply::Records { records, next, .. } => {
                let done = if sort.is_queue() {
                    records.len() < page
                } else {
                    next.is_none()
                };
                cursor = next;
                out.extend(records);
                if done || out.len() >= want {
                    out.truncate(want);
                    return Ok(out);
                }
            }
            other => return Err(unexpected(other)),
        }
    }
}

pub async fn list(backend: &mut Backend, args: ListArgs) -> Result<(), CliError> {
    let records = all_records(backend, args.state, args.limit, args.sort).await?;
    if args.json {
        print_json(&Value::Array(
            records.iter().map(output::list_row).collect(),
        ));
    } else {
        print!("{}", output::list(&records));
    }
    Ok(())
}

pub async fn show(backend: &mut Backend, args: ShowArgs) -> Result<(), CliError> {
    match backend.call(Request::Show { id: args.id }).await? {
        Reply::Record { record } => {
            if args.json {
                let mut v = json!(record);
                if let Some(m) = v.as_object_mut() {
                    m.insert("remote_id".into(), json!(record.remote_id()));
                    m.insert("short_id".into(), json!(record.id.short()));
                }
                print_json(&v);
            } else {
                print!("{}", output::show(&record));
            }
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

pub async fn edit(backend: &mut Backend, args: EditArgs) -> Result<(), CliError> {
    if args.fields.is_empty() {
        return Err(CliError::Usage(
            "nothing to change: give at least one field flag (see `icsync edit --help`)".into(),
        ));
    }
    let changes = args
        .fields
        .to_body()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    match backend
        .call(Request::Edit {
            id: args.id,
            changes,
        })
        .await?
    {
        Reply::Queued(q) => {
            if args.json {
                print_json(&json!(q));
            } else {
                println!("{} revision {} queued", q.id, q.revision);
            }
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Asks on the terminal; false (not confirmed) when stdin is not one.
fn confirm(question: &str) -> bool {
    if !stdin_is_terminal() {
        return false;
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok()
        && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The question asked before sending a record's fields over the customer it conflicts
/// with, naming both by id (the record is read first, so the question says which).
async fn update_existing_question(backend: &mut Backend, handle: &str) -> Result<String, CliError> {
    let record = match backend
        .call(Request::Show {
            id: handle.to_string(),
        })
        .await?
    {
        Reply::Record { record } => record,
        other => return Err(unexpected(other)),
    };
    Ok(match record.conflict() {
        Some((customer, _)) => format!(
            "Send the fields of record {} over existing customer {customer}, replacing its \
             values on the server?",
            record.id.short()
        ),
        // Not in a customer_conflict: the daemon refuses it and says why.
        None => format!(
            "Send the fields of record {} over the existing customer?",
            record.id.short()
        ),
    })
}

pub async fn resolve(backend: &mut Backend, args: ResolveArgs) -> Result<(), CliError> {
    let action = args.action();
    let request = match (&args.id, args.state) {
        (Some(id), _) => {
            // On a terminal, a person confirms; a script (stdin not a terminal) wrote the
            // flag itself, which is its confirmation, so scripts keep working as before.
            if action.overwrites_existing() && !args.yes && stdin_is_terminal() {
                let question = update_existing_question(backend, id).await?;
                if !confirm(&question) {
                    return Err(CliError::Usage(
                        "not confirmed: nothing sent (pass --yes to skip the question)".into(),
                    ));
                }
            }
            Request::Resolve {
                id: id.clone(),
                action,
            }
        }
        (None, Some(state)) => {
            if action == ResolveAction::Discard && !args.yes {
                let question = format!(
                    "Discard every {} record{}?",
                    state,
                    args.error_type
                        .map(|t| format!(" with error {t}"))
                        .unwrap_or_default()
                );
                if !confirm(&question) {
                    return Err(CliError::Usage(
                        "not confirmed: nothing discarded (pass --yes to skip the question)".into(),
                    ));
                }
            }
            Request::ResolveMany {
                state,
                error_type: args.error_type,
                action,
            }
        }
        (None, None) => return Err(CliError::Usage("give a record id or --state".into())),
    };
    match backend.call(request).await? {
        Reply::Resolved { ids } => {
            if args.json {
                print_json(&json!({"action": action.as_str(), "ids": ids}));
            } else {
                println!("{}", resolved_text(action, &ids));
            }
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::StatusReport;

    #[test]
    fn status_wait_ends_when_nothing_is_left_or_sending_cannot_happen() {
        let idle = StatusReport {
            synced: 3,
            conflict: 1,
            daemon: true,
            ..StatusReport::default()
        };
        assert_eq!(wait_verdict(&idle), Some(Ok(())));
        let busy = StatusReport {
            queued: 2,
            sending: 1,
            daemon: true,
            ..StatusReport::default()
        };
        assert_eq!(wait_verdict(&busy), None);
        let paused = StatusReport {
            paused: Some("no API key".into()),
            ..busy.clone()
        };
        let why = wait_verdict(&paused).unwrap().unwrap_err();
        assert!(
            why.starts_with("3 record(s) wait") && why.contains("no API key"),
            "{why}"
        );
        let locked = StatusReport {
            locked: true,
            ..busy
        };
        assert!(wait_verdict(&locked)
            .unwrap()
            .unwrap_err()
            .contains("icsync unlock"));
    }

    #[test]
    fn status_wait_progress_says_what_is_left_and_why_it_may_take_long() {
        let busy = StatusReport {
            queued: 40,
            sending: 2,
            synced: 958,
            daemon: true,
            online: true,
            ..StatusReport::default()
        };
        assert_eq!(
            wait_progress(&busy),
            "waiting: 42 record(s) left to send, 958 synced"
        );
        let offline = StatusReport {
            online: false,
            api_host: Some("api.example.com:443".into()),
            ..busy.clone()
        };
        assert!(wait_progress(&offline).ends_with("; cannot reach api.example.com:443, retrying"));
        let alone = StatusReport {
            daemon: false,
            ..busy
        };
        assert!(wait_progress(&alone).ends_with("; no daemon answers yet"));
    }

    #[test]
    fn refused_is_not_a_state_and_says_where_refused_rows_went() {
        let why = parse_state("refused").unwrap_err();
        assert!(
            why.contains(".refused.csv") && why.contains("--state rejected"),
            "{why}"
        );
        assert_eq!(parse_state("rejected"), Ok(RecordState::Rejected));
    }
}
