//! The local mirror of the upsert rules, as pure functions: which index a payload is matched
//! on, and what a new record or a record's next revision looks like. The store's transactions
//! do the lookups and writes; nothing here touches sled or the clock.
//!
//! Matching follows the brief for issue 4: a payload with an external_id matches only on it
//! (exactly, case-sensitive, like the server); a payload without one matches on its email,
//! normalised with `contract::normalize_email`. Discarded records are not indexed, so they
//! never match. The server's adoption rule (an unheld external_id taking over an email match)
//! is deliberately not mirrored: that would merge two local rows the user entered apart, and
//! the server's answer settles it.

use chrono::{DateTime, Utc};

use super::record::{ActionKind, Origin, Payload, Record, RecordId};
use crate::contract::normalize_email;

/// The index a payload is matched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchKey {
    ExternalId(String),
    /// Already normalised.
    Email(String),
    None,
}

pub fn match_key(payload: &Payload) -> MatchKey {
    if let Some(x) = payload.external_id() {
        return MatchKey::ExternalId(x.to_owned());
    }
    match payload.email() {
        Some(e) => MatchKey::Email(normalize_email(e)),
        None => MatchKey::None,
    }
}

/// Whether a payload has nothing to be matched on (neither external_id nor email), so the
/// content index stands in: a real payload (not an erased one) only.
pub fn is_keyless(payload: &Payload) -> bool {
    !payload.is_erased() && payload.external_id().is_none() && payload.email().is_none()
}

/// The record's normalised email, as the email index holds it.
pub fn indexed_email(record: &Record) -> Option<String> {
    record.payload.email().map(normalize_email)
}

pub fn new_record(id: RecordId, payload: Payload, origin: Origin, now: DateTime<Utc>) -> Record {
    Record::new(id, payload, origin, now)
}

/// Makes `payload`, merged over the record's as the server merges it, the next revision (see
/// [`Record::revise`]); the origin of each revision is kept in its history line,
/// `Record::origin` holds the newest.
pub fn revise(record: &mut Record, payload: Payload, origin: Origin, now: DateTime<Utc>) {
    // What the server will hold after this upsert: a member the payload leaves out keeps its
    // value there, so it does here (a row with only a name and an email must not cost the
    // record its external_id).
    let merged = record.payload.merged(&payload);
    record.revise(merged, ActionKind::Revised, Some(origin.to_string()), now);
    record.origin = origin;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{HistoryEntry, RecordState};
    use serde_json::json;

    fn payload(body: serde_json::Value) -> Payload {
        Payload::parse(&body).unwrap()
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn external_id_takes_precedence_over_email() {
        let p = payload(json!({"full_name": "N", "external_id": "crm-1", "email": "A@x.io"}));
        assert_eq!(match_key(&p), MatchKey::ExternalId("crm-1".into()));
    }

    #[test]
    fn email_is_normalised_and_null_external_id_counts_as_none() {
        let p = payload(json!({"full_name": "N", "external_id": null, "email": " Ada@X.io "}));
        assert_eq!(match_key(&p), MatchKey::Email("ada@x.io".into()));
        assert_eq!(
            match_key(&payload(json!({"full_name": "N"}))),
            MatchKey::None
        );
    }

    #[test]
    fn revision_requeues_and_resets_the_retry_state() {
        let mut r = new_record(
            RecordId::new(),
            payload(json!({"full_name": "A"})),
            Origin::Cli,
            t(0),
        );
        assert_eq!((r.revision, r.state), (1, RecordState::Queued));
        r.state = RecordState::Rejected;
        r.failures = 3;
        r.next_attempt_at = Some(t(60));
        r.synced_revision = Some(1);
        let origin = Origin::Import {
            file: "f.ndjson".into(),
            line: 4,
        };
        revise(
            &mut r,
            payload(json!({"full_name": "B"})),
            origin.clone(),
            t(9),
        );
        assert_eq!(r.revision, 2);
        assert_eq!(r.state, RecordState::Queued);
        assert_eq!((r.failures, r.next_attempt_at), (0, None));
        assert_eq!(r.synced_revision, Some(1));
        assert_eq!(r.origin, origin);
        assert_eq!(r.payload.full_name(), "B");
        assert_eq!((r.created_at, r.updated_at), (t(0), t(9)));
        assert!(matches!(
            r.history.last(),
            Some(HistoryEntry::Action {
                action: ActionKind::Revised,
                revision: 2,
                ..
            })
        ));
    }

    #[test]
    fn a_revision_keeps_what_the_payload_leaves_out_as_the_server_does() {
        let mut record = new_record(
            RecordId::new(),
            payload(
                json!({"full_name": "Ann", "external_id": "crm-1", "email": "ann@x.io",
                           "risk": {"occupation": "Nurse"}}),
            ),
            Origin::Cli,
            t(0),
        );
        revise(
            &mut record,
            payload(
                json!({"full_name": "Ann B", "email": "ann@x.io", "phone": null,
                           "risk": {"is_pep": false}}),
            ),
            Origin::Cli,
            t(1),
        );
        assert_eq!(
            record.payload.to_value(),
            json!({"full_name": "Ann B", "external_id": "crm-1", "email": "ann@x.io",
                   "phone": null, "risk": {"occupation": "Nurse", "is_pep": false}})
        );
        assert_eq!(record.revision, 2);
    }
}
