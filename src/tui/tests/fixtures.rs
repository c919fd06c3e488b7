//! Fixed records and a status with fixed ids and timestamps, and a stand-in that answers
//! list / show / status requests from them, so tests and snapshots are stable.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::contract::{
    AddedVia, ApiError, Customer, CustomerType, FieldError, KycStatus, Risk, VerifiedIdentity,
};
use crate::control::{
    DropReport, ListSort, RefusedRow, Reply, Request, SortCursor, SortKey, StatusReport,
};
use crate::store::{
    ActionKind, Attempt, DropFileEntry, DropOutcome, ExistingCustomer, ExistingLookup,
    HistoryEntry, Origin, Payload, Record, RecordError, RecordId, RecordState,
};
use crate::tui::app::{App, Effect, Incoming, Outgoing};

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 15, 0).unwrap()
}

pub fn id(n: u128) -> RecordId {
    RecordId(Uuid::from_u128(
        0x0195_5a1e_0000_7000_8000_0000_0000_0000 + n,
    ))
}

pub const EXISTING: u128 = 0x5e1f_c0de_0000_4000_8000_0000_0000_0042;

fn record(n: u128, state: RecordState, body: Value) -> Record {
    let created = t0() - Duration::minutes(60 - n as i64);
    let origin = Origin::Drop {
        file: "crm-export.csv".into(),
        line: n as u64 + 1,
    };
    Record {
        state,
        updated_at: created + Duration::seconds(30),
        history: vec![HistoryEntry::Action {
            at: created,
            action: ActionKind::Created,
            revision: 1,
            detail: None,
        }],
        ..Record::new(id(n), Payload::parse(&body).unwrap(), origin, created)
    }
}

fn attempt(
    of: RecordId,
    at: DateTime<Utc>,
    status: Option<u16>,
    ms: u64,
    error: Option<&str>,
) -> HistoryEntry {
    HistoryEntry::Attempt(Attempt {
        at,
        revision: 1,
        key: crate::sync::idempotency_key(of, 1).as_str().to_owned(),
        status,
        latency_ms: ms,
        replayed: false,
        error: error.map(str::to_owned),
    })
}

/// The customer Alan's record collided with, as the server holds it.
pub fn existing_customer() -> Customer {
    Customer {
        id: Uuid::from_u128(EXISTING),
        external_id: Some("LEGACY-77".into()),
        customer_type: CustomerType::Individual,
        full_name: "Alan M. Turing".into(),
        email: Some("Alan@Example.com".into()),
        trading_name: None,
        phone: Some("+44 161 496 0000".into()),
        risk: Risk {
            occupation: Some("Cryptanalyst".into()),
            country_of_residence: Some("GB".into()),
            ..Risk::default()
        },
        kyc_status: KycStatus::Pending,
        added_via: AddedVia::AdminManual,
        verified_identity: None,
        created_at: t0() - Duration::days(400),
        updated_at: t0() - Duration::days(3),
    }
}

pub fn records() -> Vec<Record> {
    let mut ada = record(
        1,
        RecordState::Synced,
        json!({"type": "INDIVIDUAL", "full_name": "Ada Lovelace", "email": "ada@example.com",
               "external_id": "CRM-1001", "phone": "+44 20 7946 0001",
               "risk": {"occupation": "Mathematician", "country_of_residence": "GB",
                        "expected_monthly_volume": 2500, "is_pep": false}}),
    );
    ada.synced_revision = Some(1);
    ada.remote = Some(Customer {
        id: Uuid::from_u128(0xada),
        external_id: Some("CRM-1001".into()),
        customer_type: CustomerType::Individual,
        full_name: "Ada Lovelace".into(),
        email: Some("ada@example.com".into()),
        trading_name: None,
        phone: Some("+44 20 7946 0001".into()),
        risk: Risk::default(),
        kyc_status: KycStatus::Verified,
        added_via: AddedVia::Integration,
        verified_identity: Some(VerifiedIdentity {
            full_name: "Augusta Ada King".into(),
            birth_year: 1815,
            country: "GB".into(),
        }),
        created_at: t0(),
        updated_at: t0(),
    });
    let at = ada.created_at;
    ada.history.push(attempt(
        ada.id,
        at + Duration::seconds(2),
        Some(503),
        41,
        Some("unavailable (503): try later"),
    ));
    ada.history.push(attempt(
        ada.id,
        at + Duration::seconds(4),
        Some(201),
        87,
        None,
    ));

    let mut grace = record(
        2,
        RecordState::Queued,
        json!({"full_name": "Grace Hopper", "email": "grace@example.com", "external_id": "CRM-1002"}),
    );
    grace.failures = 2;
    grace.next_attempt_at = Some(t0() + Duration::seconds(8));
    grace.last_error = Some(RecordError::Transport {
        message: "timed out after 10s".into(),
    });
    let at = grace.created_at;
    grace.history.push(attempt(
        grace.id,
        at,
        None,
        10_000,
        Some("timed out after 10s"),
    ));

    let mut alan = record(
        3,
        RecordState::Conflict,
        json!({"full_name": "Alan Turing", "email": "alan@example.com", "external_id": "CRM-1003",
               "type": "SOLE_TRADER", "trading_name": "Turing Machines"}),
    );
    alan.last_error = Some(RecordError::Api {
        error: ApiError::CustomerConflict {
            message: "email alan@example.com belongs to another customer".into(),
            conflicting_customer_id: Uuid::from_u128(EXISTING),
            conflicting_external_id: Some("LEGACY-77".into()),
        },
    });
    alan.existing = Some(ExistingCustomer {
        customer_id: Uuid::from_u128(EXISTING),
        fetched_at: t0() - Duration::minutes(2),
        lookup: ExistingLookup::Found {
            customer: Box::new(existing_customer()),
        },
    });

    let mut rejected = record(
        4,
        RecordState::Rejected,
        json!({"full_name": "Kurt Gödel", "email": "kurt@example.com", "phone": "+43 1 4277"}),
    );
    rejected.last_error = Some(RecordError::Api {
        error: ApiError::validation(vec![FieldError::new(
            "phone",
            "must be digits with an optional leading +; spaces and dashes are allowed",
        )]),
    });

    let sending = record(
        5,
        RecordState::Sending,
        json!({"full_name": "Edsger Dijkstra"}),
    );
    let discarded = record(
        6,
        RecordState::Discarded,
        json!({"full_name": "Test Customer", "email": "test@example.com"}),
    );
    let mut barbara = record(
        7,
        RecordState::Conflict,
        json!({"full_name": "Barbara Liskov", "email": "barbara@example.com", "external_id": "CRM-1007"}),
    );
    barbara.last_error = Some(RecordError::Api {
        error: ApiError::CustomerConflict {
            message: "email barbara@example.com belongs to another customer".into(),
            conflicting_customer_id: Uuid::from_u128(EXISTING + 1),
            conflicting_external_id: None,
        },
    });
    let mut more: Vec<Record> = (8..40)
        .map(|n| {
            record(
                n,
                RecordState::Queued,
                json!({"full_name": format!("Customer {n:03}"),
                       "email": format!("customer{n:03}@example.com"),
                       "external_id": format!("CRM-{}", 1000 + n)}),
            )
        })
        .collect();
    let mut all = vec![ada, grace, alan, rejected, sending, discarded, barbara];
    all.append(&mut more);
    all
}

pub fn status() -> StatusReport {
    StatusReport {
        queued: 1200,
        sending: 4,
        synced: 48_210,
        conflict: 2,
        rejected: 1,
        discarded: 3,
        total: 49_420,
        paused: None,
        online: true,
        last_sync_at: Some(t0() - Duration::seconds(5)),
        daemon: true,
        locked: false,
        disk_full: false,
        damaged: false,
        drop_folder_problem: None,
        api_host: Some("api.instantcompliance.example".into()),
    }
}

/// The drop folder's history: one file of each outcome, newest first.
pub fn drop_files() -> Vec<DropFileEntry> {
    let entry = |mins: i64, file: &str, outcome, accepted, rejected, archived: Option<&str>| {
        DropFileEntry {
            file: file.into(),
            at: t0() - Duration::minutes(mins),
            outcome,
            accepted,
            rejected,
            archived_as: archived.map(str::to_owned),
            report: None,
            rejected_copy: None,
            note: None,
            read_as: None,
            not_imported: Vec::new(),
            noted: 0,
        }
    };
    let mut dup = entry(
        9,
        "crm-export.csv",
        DropOutcome::Duplicate,
        0,
        0,
        Some("processed/crm-export.2.csv"),
    );
    dup.note = Some("same content as processed/crm-export.csv".into());
    let mut laptop = entry(
        2,
        "field-laptop-7.ndjson",
        DropOutcome::Processed,
        12,
        0,
        Some("processed/field-laptop-7.ndjson"),
    );
    laptop.read_as = Some("NDJSON, UTF-8 (detected)".into());
    let mut leeds = entry(
        5,
        "branch-leeds.csv",
        DropOutcome::PartlyRejected,
        118,
        3,
        Some("processed/branch-leeds.csv"),
    );
    leeds.read_as = Some("CSV, windows-1252 (detected), delimiter ';'".into());
    leeds.report = Some("rejected/branch-leeds.errors.txt".into());
    leeds.rejected_copy = Some("rejected/branch-leeds.rejected.csv".into());
    let mut notes = entry(
        31,
        "notes.xlsx",
        DropOutcome::Rejected,
        0,
        0,
        Some("rejected/notes.xlsx"),
    );
    notes.report = Some("rejected/notes.xlsx.errors.txt".into());
    notes.note = Some("the workbook has no sheet with a header row".into());
    vec![
        laptop,
        leeds,
        dup,
        notes,
        entry(
            60,
            "crm-export.csv",
            DropOutcome::Processed,
            49_410,
            0,
            Some("processed/crm-export.csv"),
        ),
    ]
}

/// What the fixture daemon reads from a drop-folder report: the leeds file's three refused
/// rows (one with two problems and a reason long enough to wrap), or a whole-file refusal.
pub fn drop_report(report: &str) -> DropReport {
    let row = |position: &str, reasons: &[&str]| RefusedRow {
        position: position.into(),
        reasons: reasons.iter().map(|r| r.to_string()).collect(),
    };
    let leeds = report.contains("leeds");
    DropReport {
        file: if leeds {
            "branch-leeds.csv"
        } else {
            "notes.xlsx"
        }
        .into(),
        report: format!("/home/ada/icsync-drop/{report}"),
        rejected_copy: leeds
            .then(|| "/home/ada/icsync-drop/rejected/branch-leeds.rejected.csv".into()),
        rows: if leeds {
            vec![
                row("line 7", &["E-mail (email): is not a valid email address"]),
                row(
                    "line 12",
                    &[
                        "Telefon (phone): \"0113 496 0000 ext. 4\" is not a phone number: \
                         give it in international form, starting with + and the country code",
                        "Name (full_name): is required",
                    ],
                ),
            ]
        } else {
            Vec::new()
        },
        more: if leeds { 1 } else { 0 },
        missing: false,
    }
}

/// How many records the fixture daemon's search reads per request: more than the fixtures
/// hold, so a search answers in one go unless a test asks for a smaller cap.
pub const SCAN_CAP: usize = 1_000;

/// What a daemon holding [`records`] would answer (reads only; writes are echoed).
pub fn answer(request: &Request) -> Reply {
    answer_with_cap(request, SCAN_CAP)
}

/// [`answer`] by a daemon whose search reads at most `cap` records per request, saying
/// where it stopped (`resume_after`) as the real one does.
pub fn answer_with_cap(request: &Request, cap: usize) -> Reply {
    let all = records();
    match request {
        Request::Status => Reply::Status(status()),
        Request::DropFiles => Reply::DropFiles {
            files: drop_files(),
            folder: Some("/home/ada/icsync-drop".into()),
        },
        Request::DropReport { report } => Reply::DropReport(drop_report(report)),
        Request::List {
            state,
            after,
            limit,
            query,
            sort: sort @ (ListSort::Name | ListSort::State | ListSort::NewestChange),
            after_key,
        } => {
            // The whole selection in the order asked for, paged by (key, id) as the daemon's
            // sorted views are.
            let mut keyed: Vec<(SortKey, Record)> = all
                .into_iter()
                .filter(|r| state.is_none_or(|s| r.state == s))
                .filter(|r| query.as_deref().is_none_or(|q| matches(r, q)))
                .map(|r| (sort_key(*sort, &r), r))
                .collect();
            keyed.sort_by(|(a, ra), (b, rb)| cmp_keys(a, b).then(ra.id.cmp(&rb.id)));
            let start = match (after, after_key) {
                (Some(a), Some(k)) => keyed
                    .iter()
                    .position(|(key, r)| cmp_keys(key, k).then(r.id.cmp(a)).is_gt())
                    .unwrap_or(keyed.len()),
                _ => 0,
            };
            let rest = &keyed[start..];
            let page = &rest[..rest.len().min(*limit)];
            Reply::Records {
                records: page.iter().map(|(_, r)| r.clone()).collect(),
                resume_after: None,
                next: page
                    .last()
                    .filter(|_| rest.len() > page.len())
                    .map(|(key, r)| SortCursor {
                        id: r.id,
                        key: key.clone(),
                    }),
                sorting: None,
            }
        }
        Request::List {
            state,
            after,
            limit,
            query,
            ..
        } => {
            let listed = all
                .into_iter()
                .filter(|r| state.is_none_or(|s| r.state == s))
                .filter(|r| after.is_none_or(|a| r.id > a));
            let Some(q) = query else {
                return Reply::Records {
                    records: listed.take(*limit).collect(),
                    resume_after: None,
                    next: None,
                    sorting: None,
                };
            };
            let mut records = Vec::new();
            let mut last_read = None;
            let mut scanned = 0;
            for r in listed {
                if records.len() == *limit || scanned == cap {
                    break;
                }
                scanned += 1;
                last_read = Some(r.id);
                if matches(&r, q) {
                    records.push(r);
                }
            }
            let capped = scanned == cap && records.len() < *limit;
            Reply::Records {
                records,
                resume_after: last_read.filter(|_| capped),
                next: None,
                sorting: None,
            }
        }
        Request::Show { id } => match all.into_iter().find(|r| r.id.to_string() == *id) {
            Some(r) => Reply::Record {
                record: Box::new(r),
            },
            None => Reply::Error(crate::control::ControlError::new(
                crate::control::ControlErrorCode::NotFound,
                "no such record",
            )),
        },
        other => panic!("the fixture daemon does not answer {other:?}"),
    }
}

fn sort_key(sort: ListSort, r: &Record) -> SortKey {
    match sort {
        ListSort::State => SortKey::State(r.state),
        ListSort::NewestChange => SortKey::NewestChange(r.updated_at),
        _ => SortKey::Name(r.payload.full_name().to_lowercase()),
    }
}

/// Keys of one order: names and states ascending, change times newest first.
fn cmp_keys(a: &SortKey, b: &SortKey) -> std::cmp::Ordering {
    match (a, b) {
        (SortKey::Name(a), SortKey::Name(b)) => a.cmp(b),
        (SortKey::State(a), SortKey::State(b)) => a.cmp(b),
        (SortKey::NewestChange(a), SortKey::NewestChange(b)) => b.cmp(a),
        _ => panic!("keys of two orders: {a:?} {b:?}"),
    }
}

/// The daemon's search: full name, email or external id contains `q`, ignoring case.
fn matches(r: &Record, q: &str) -> bool {
    let p = &r.payload;
    let q = q.to_lowercase();
    [Some(p.full_name()), p.email(), p.external_id()]
        .into_iter()
        .flatten()
        .any(|s| s.to_lowercase().contains(&q))
}

/// The requests among `effects`.
pub fn sent(effects: &[Effect]) -> Vec<Outgoing> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(o) => Some(o.clone()),
            _ => None,
        })
        .collect()
}

/// Answers every request in `effects` from the fixtures, and those the answers lead to.
pub fn settle(app: &mut App, effects: Vec<Effect>) {
    settle_with_cap(app, effects, SCAN_CAP);
}

/// [`settle`] by a daemon whose search reads at most `cap` records per request; returns
/// how many requests were answered.
pub fn settle_with_cap(app: &mut App, effects: Vec<Effect>, cap: usize) -> usize {
    let mut pending = sent(&effects);
    let mut answered = 0;
    while let Some(o) = pending.pop() {
        answered += 1;
        let reply = answer_with_cap(&o.request, cap);
        let fx = app.apply(Incoming::Reply {
            purpose: o.purpose,
            reply,
        });
        pending.extend(sent(&fx));
    }
    answered
}

/// An app of `height` rows, connected, with status and the first pages loaded.
pub fn loaded_app(height: u16) -> App {
    let mut app = App::new(t0(), height);
    app.apply(Incoming::Connected {
        daemon_version: "0.1.0".into(),
    });
    let fx = app.start();
    settle(&mut app, fx);
    app
}
