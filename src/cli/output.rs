//! Human-readable output of the CLI: status lines, record tables and record details. Pure
//! functions from data to text; the `--json` forms are built here too so both stay in step.

use std::fmt::Write;

use chrono::SecondsFormat;
use serde_json::{json, Value};

use crate::contract::{compare_with_customer, server_only_fields, Patch};
use crate::control::StatusReport;
use crate::store::{HistoryEntry, Record, RecordError, RecordState};

/// An enum as the API and `--json` spell it (its serde name), never its Rust Debug form.
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => "?".to_string(),
    }
}

fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A record state as a person reads it: `rejected` is the API's verdict (a 400 or 422), never
/// a row refused while a file was read (those are not records; `import` and the drop folder
/// write them to a file of their own).
pub fn state_label(state: RecordState) -> &'static str {
    match state {
        RecordState::Rejected => "rejected by the API",
        other => other.as_str(),
    }
}

pub fn status(s: &StatusReport) -> String {
    let mut out = format!(
        "queued {}  sending {}  synced {}  conflict {}  {} {}  discarded {}  total {}\n",
        s.queued,
        s.sending,
        s.synced,
        s.conflict,
        state_label(RecordState::Rejected),
        s.rejected,
        s.discarded,
        s.total
    );
    if !s.daemon {
        out.push_str("daemon: not running (start it with `icsync daemon`)\n");
    } else {
        let _ = writeln!(
            out,
            "daemon: running, {}{}",
            if s.online { "online" } else { "offline" },
            s.last_sync_at
                .map(|t| format!(", last sync {}", when(&t)))
                .unwrap_or_default()
        );
    }
    if s.locked {
        out.push_str("locked: records wait until `icsync unlock`\n");
    }
    if let Some(reason) = &s.paused {
        let _ = writeln!(out, "paused: {reason}");
    }
    if let Some(problem) = &s.drop_folder_problem {
        let _ = writeln!(out, "drop folder: not watched: {problem}");
    }
    out
}

/// The error as `list --json` shows it: null, or the API's error object.
pub fn error_json(e: &Option<RecordError>) -> Value {
    match e {
        None => Value::Null,
        Some(RecordError::Api { error }) => serde_json::to_value(error).unwrap_or(Value::Null),
        Some(RecordError::Transport { message }) => {
            json!({"type": "transport", "message": message})
        }
    }
}

/// One row of `icsync list --json`.
pub fn list_row(r: &Record) -> Value {
    json!({
        "id": r.id,
        "short_id": r.id.short(),
        "state": r.state,
        "revision": r.revision,
        "full_name": r.payload.full_name(),
        "email": r.payload.email(),
        "external_id": r.payload.external_id(),
        "remote_id": r.remote_id(),
        "error": error_json(&r.last_error),
    })
}

/// One table cell: control characters (a newline in a name) shown as spaces, and cut to
/// `width` characters.
fn clip(s: &str, width: usize) -> String {
    let flat = s.chars().map(|c| if c.is_control() { ' ' } else { c });
    if s.chars().count() <= width {
        flat.collect()
    } else {
        let mut t: String = flat.take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

pub fn list(records: &[Record]) -> String {
    let mut out = format!(
        "{:<8}  {:<9}  {:>3}  {:<24}  {:<28}  {:<16}  {}\n",
        "ID", "STATE", "REV", "NAME", "EMAIL", "EXTERNAL ID", "ERROR"
    );
    for r in records {
        let error = r
            .last_error
            .as_ref()
            .map(|e| clip(&e.to_string(), 60))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<8}  {:<9}  {:>3}  {:<24}  {:<28}  {:<16}  {}",
            r.id.short(),
            r.state.as_str(),
            r.revision,
            clip(r.payload.full_name(), 24),
            clip(r.payload.email().unwrap_or("-"), 28),
            clip(r.payload.external_id().unwrap_or("-"), 16),
            error
        );
    }
    if records.is_empty() {
        out.push_str("(no records)\n");
    }
    out
}

/// For a `customer_conflict`: the existing customer beside the local payload, `≠` marking
/// each field the local record would change, or why it is not known.
fn existing_section(out: &mut String, r: &Record) {
    let Some((customer_id, _)) = r.conflict().filter(|_| r.state == RecordState::Conflict) else {
        return;
    };
    let _ = writeln!(out, "\nexisting customer {customer_id}");
    let Some(existing) = &r.existing else {
        out.push_str("  not fetched yet (offline?)\n");
        return;
    };
    let Some(customer) = existing.customer() else {
        let _ = writeln!(
            out,
            "  not found on the server at {} (deleted since the conflict?)",
            when(&existing.fetched_at)
        );
        return;
    };
    let _ = writeln!(out, "  read {}", when(&existing.fetched_at));
    let _ = writeln!(out, "    {:<28}  {:<30}  existing", "field", "local");
    for c in compare_with_customer(&r.payload.input(), customer) {
        let local = match &c.local {
            Patch::Absent => "-".to_string(),
            Patch::Null => "null".to_string(),
            Patch::Set(v) => clip(v, 30),
        };
        let _ = writeln!(
            out,
            "  {} {:<28}  {:<30}  {}",
            if c.differs { "≠" } else { " " },
            c.field,
            local,
            c.existing
                .as_deref()
                .map_or("-".to_string(), |v| clip(v, 40)),
        );
    }
    for (field, value) in server_only_fields(customer) {
        let _ = writeln!(out, "    {field:<28}  {:<30}  {value}", "");
    }
}

pub fn show(r: &Record) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "record    {} (short id {})", r.id, r.id.short());
    let _ = writeln!(out, "state     {}", state_label(r.state));
    let _ = writeln!(
        out,
        "revision  {}{}",
        r.revision,
        r.synced_revision
            .map(|s| format!(" (server has revision {s})"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "origin    {}", r.origin);
    let _ = writeln!(out, "created   {}", when(&r.created_at));
    let _ = writeln!(out, "updated   {}", when(&r.updated_at));
    if let Some(t) = r.next_attempt_at {
        let _ = writeln!(out, "next try  {}", when(&t));
    }
    if let Some(e) = &r.last_error {
        let _ = writeln!(out, "error     {e}");
        if let RecordError::Api {
            error: crate::contract::ApiError::ValidationError { errors, .. },
        } = e
        {
            for fe in errors {
                let _ = writeln!(out, "          - {}: {}", fe.field, fe.message);
            }
        }
    }
    out.push_str("\npayload\n");
    let pretty = serde_json::to_string_pretty(&r.payload.to_value()).unwrap_or_default();
    for line in pretty.lines() {
        let _ = writeln!(out, "  {line}");
    }
    existing_section(&mut out, r);
    match (&r.remote, r.remote_id()) {
        (Some(c), _) => {
            let _ = writeln!(
                out,
                "\nserver customer {}\n  kyc_status {}  added_via {}",
                c.id,
                c.kyc_status.as_str(),
                c.added_via.as_str()
            );
            if let Some(v) = &c.verified_identity {
                let _ = writeln!(
                    out,
                    "  verified identity: {}, born {}, {}",
                    v.full_name, v.birth_year, v.country
                );
            }
        }
        (None, Some(id)) => {
            let _ = writeln!(out, "\nlinked to server customer {id}");
        }
        (None, None) => {}
    }
    out.push_str("\nhistory\n");
    for h in &r.history {
        match h {
            HistoryEntry::Attempt(a) => {
                let _ = writeln!(
                    out,
                    "  {}  attempt r{}  {}  {} ms{}  key {}{}",
                    when(&a.at),
                    a.revision,
                    a.status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "no reply".into()),
                    a.latency_ms,
                    if a.replayed { " (replayed)" } else { "" },
                    a.key,
                    a.error
                        .as_ref()
                        .map(|e| format!("  {e}"))
                        .unwrap_or_default()
                );
            }
            HistoryEntry::Action {
                at,
                action,
                revision,
                detail,
            } => {
                let _ = writeln!(
                    out,
                    "  {}  {} r{}{}",
                    when(at),
                    wire_name(action),
                    revision,
                    detail
                        .as_ref()
                        .map(|d| format!("  {d}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    out
}
