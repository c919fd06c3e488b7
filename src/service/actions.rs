//! Operator actions on one record, as pure functions: what `icsync resolve`, `icsync edit` and
//! the TUI's conflict screen do. The service applies them inside a store transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::contract::FieldError;
use crate::control::ResolveAction;
use crate::store::{merge_members, ActionKind, HistoryEntry, Payload, Record, RecordState};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("record {id} is {state}: {action} applies only to {allowed}")]
    WrongState {
        id: String,
        state: RecordState,
        action: &'static str,
        allowed: &'static str,
    },
    #[error("record {0} is being sent right now; try again in a moment")]
    InFlight(String),
    #[error("the changes are not valid")]
    Invalid(Vec<FieldError>),
}

fn wrong_state(r: &Record, action: &'static str, allowed: &'static str) -> ActionError {
    ActionError::WrongState {
        id: r.id.to_string(),
        state: r.state,
        action,
        allowed,
    }
}

fn note(r: &mut Record, action: ActionKind, detail: Option<String>, now: DateTime<Utc>) {
    r.history.push(HistoryEntry::Action {
        at: now,
        action,
        revision: r.revision,
        detail,
    });
    r.updated_at = now;
}

fn requeue(r: &mut Record) {
    r.state = RecordState::Queued;
    r.failures = 0;
    r.next_attempt_at = None;
    r.last_error = None;
}

/// Applies an operator's resolution to a record. `in_flight`: the engine is sending it
/// (the record is `queued` in the store meanwhile); no resolution applies to it then.
pub fn resolve(
    r: &mut Record,
    action: ResolveAction,
    in_flight: bool,
    now: DateTime<Utc>,
) -> Result<(), ActionError> {
    if in_flight {
        return Err(ActionError::InFlight(r.id.to_string()));
    }
    match action {
        ResolveAction::Retry => {
            if !matches!(
                r.state,
                RecordState::Conflict | RecordState::Rejected | RecordState::Queued
            ) {
                return Err(wrong_state(
                    r,
                    "retry",
                    "conflict, rejected or queued records",
                ));
            }
            requeue(r);
            note(r, ActionKind::Retry, None, now);
        }
        ResolveAction::UpdateExisting => {
            let Some((existing, existing_external_id)) = r
                .conflict()
                .filter(|_| r.state == RecordState::Conflict)
                .map(|(id, x)| (id, x.map(str::to_string)))
            else {
                return Err(wrong_state(
                    r,
                    action.as_str(),
                    "records in a customer_conflict",
                ));
            };
            // Matching the existing customer makes the upsert update it: by its external_id
            // when it has one, else by email alone (so this record's external_id is dropped).
            let mut body = r.payload.to_value();
            if let Some(map) = body.as_object_mut() {
                match &existing_external_id {
                    Some(x) => map.insert("external_id".into(), Value::from(x.as_str())),
                    None => map.remove("external_id"),
                };
            }
            let payload = Payload::parse(&body).map_err(ActionError::Invalid)?;
            r.revise(
                payload,
                ActionKind::UpdateExisting,
                Some(format!(
                    "fields to be sent over existing customer {existing}"
                )),
                now,
            );
        }
        ResolveAction::LinkExisting => {
            let Some((existing, _)) = r.conflict().filter(|_| r.state == RecordState::Conflict)
            else {
                return Err(wrong_state(
                    r,
                    action.as_str(),
                    "records in a customer_conflict",
                ));
            };
            r.state = RecordState::Synced;
            r.linked_customer_id = Some(existing);
            r.synced_revision = Some(r.revision);
            r.next_attempt_at = None;
            note(
                r,
                ActionKind::LinkExisting,
                Some(format!("linked to existing customer {existing}; not sent")),
                now,
            );
        }
        ResolveAction::Discard => match r.state {
            // Written only by versions before the in-memory in-flight set.
            RecordState::Sending => return Err(ActionError::InFlight(r.id.to_string())),
            RecordState::Queued | RecordState::Conflict | RecordState::Rejected => {
                r.state = RecordState::Discarded;
                r.next_attempt_at = None;
                note(r, ActionKind::Discard, None, now);
            }
            _ => {
                return Err(wrong_state(
                    r,
                    "discard",
                    "queued, conflict or rejected records",
                ))
            }
        },
    }
    Ok(())
}

/// The payload after applying `changes` (an object of members: absent kept, `null` clears,
/// `risk` merged key by key), validated by the contract.
pub fn merge_changes(current: &Payload, changes: &Value) -> Result<Payload, Vec<FieldError>> {
    let Value::Object(changes) = changes else {
        return Err(vec![FieldError::new("", "changes must be a JSON object")]);
    };
    let body = merge_members(current.as_map(), changes);
    Payload::parse(&Value::Object(body))
}

/// Edits a record: a new revision with `changes` merged in.
pub fn edit(r: &mut Record, changes: &Value, now: DateTime<Utc>) -> Result<(), ActionError> {
    if r.state == RecordState::Discarded {
        return Err(wrong_state(r, "edit", "records that are not discarded"));
    }
    let payload = merge_changes(&r.payload, changes).map_err(ActionError::Invalid)?;
    // An edit that changes nothing is not a new revision: nothing new to send.
    if payload != r.payload {
        r.revise(payload, ActionKind::Edit, None, now);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ApiError;
    use crate::store::RecordError;
    use crate::store::{Origin, RecordId};
    use serde_json::json;
    use uuid::Uuid;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn record(body: Value, state: RecordState) -> Record {
        let payload = Payload::parse(&body).unwrap();
        Record {
            state,
            failures: 3,
            next_attempt_at: Some(t(100)),
            history: vec![],
            ..Record::new(RecordId::new(), payload, Origin::Cli, t(0))
        }
    }

    fn in_conflict(existing_external_id: Option<&str>) -> Record {
        let mut r = record(
            json!({"full_name": "Ada", "email": "ada@x.io", "external_id": "crm-new"}),
            RecordState::Conflict,
        );
        r.last_error = Some(RecordError::Api {
            error: ApiError::CustomerConflict {
                message: "taken".into(),
                conflicting_customer_id: Uuid::from_u128(5),
                conflicting_external_id: existing_external_id.map(str::to_string),
            },
        });
        r
    }

    #[test]
    fn retry_requeues_the_same_revision_at_once() {
        let mut r = in_conflict(Some("crm-old"));
        resolve(&mut r, ResolveAction::Retry, false, t(1)).unwrap();
        assert_eq!(r.state, RecordState::Queued);
        assert_eq!(r.revision, 1, "same revision, so the same Idempotency-Key");
        assert_eq!((r.failures, r.next_attempt_at), (0, None));
        assert!(matches!(
            r.history.last(),
            Some(HistoryEntry::Action {
                action: ActionKind::Retry,
                ..
            })
        ));
        let mut synced = record(json!({"full_name": "A"}), RecordState::Synced);
        assert!(matches!(
            resolve(&mut synced, ResolveAction::Retry, false, t(1)),
            Err(ActionError::WrongState { .. })
        ));
    }

    #[test]
    fn update_existing_takes_its_external_id_as_a_new_revision() {
        let mut r = in_conflict(Some("crm-old"));
        resolve(&mut r, ResolveAction::UpdateExisting, false, t(1)).unwrap();
        assert_eq!(r.payload.external_id(), Some("crm-old"));
        assert_eq!(r.revision, 2);
        assert_eq!(r.state, RecordState::Queued);
        assert_eq!(r.last_error, None);
    }

    #[test]
    fn update_existing_without_external_id_matches_by_email() {
        let mut r = in_conflict(None);
        resolve(&mut r, ResolveAction::UpdateExisting, false, t(1)).unwrap();
        assert_eq!(r.payload.external_id(), None);
        assert_eq!(r.payload.email(), Some("ada@x.io"));
    }

    #[test]
    fn link_existing_links_without_sending() {
        let mut r = in_conflict(Some("crm-old"));
        resolve(&mut r, ResolveAction::LinkExisting, false, t(1)).unwrap();
        assert_eq!(r.state, RecordState::Synced);
        assert_eq!(r.remote_id(), Some(Uuid::from_u128(5)));
        assert_eq!(r.revision, 1);
    }

    /// Histories written before the actions were renamed still read, under the new names,
    /// and new entries are written as the docs spell them.
    #[test]
    fn history_entries_use_the_new_names_and_read_the_old() {
        for (old, new) in [
            ("adopt_existing", ActionKind::UpdateExisting),
            ("keep_existing", ActionKind::LinkExisting),
        ] {
            let stored = json!({"event": "action", "at": "2026-03-01T10:00:00Z", "action": old,
                "revision": 2, "detail": null});
            match serde_json::from_value::<HistoryEntry>(stored).unwrap() {
                HistoryEntry::Action { action, .. } => assert_eq!(action, new),
                other => panic!("{other:?}"),
            }
        }
        let mut r = in_conflict(Some("crm-old"));
        resolve(&mut r, ResolveAction::UpdateExisting, false, t(1)).unwrap();
        let written = serde_json::to_value(r.history.last().unwrap()).unwrap();
        assert_eq!(written["action"], "update_existing");
        let mut r = in_conflict(Some("crm-old"));
        resolve(&mut r, ResolveAction::LinkExisting, false, t(1)).unwrap();
        let written = serde_json::to_value(r.history.last().unwrap()).unwrap();
        assert_eq!(written["action"], "link_existing");
    }

    #[test]
    fn conflict_actions_need_a_customer_conflict() {
        let mut r = record(json!({"full_name": "A"}), RecordState::Rejected);
        for action in [ResolveAction::UpdateExisting, ResolveAction::LinkExisting] {
            assert!(matches!(
                resolve(&mut r, action, false, t(1)),
                Err(ActionError::WrongState { .. })
            ));
        }
    }

    #[test]
    fn discard_refuses_records_in_flight_or_synced() {
        let mut sending = record(json!({"full_name": "A"}), RecordState::Sending);
        assert!(matches!(
            resolve(&mut sending, ResolveAction::Discard, false, t(1)),
            Err(ActionError::InFlight(_))
        ));
        let mut synced = record(json!({"full_name": "A"}), RecordState::Synced);
        assert!(resolve(&mut synced, ResolveAction::Discard, false, t(1)).is_err());
        let mut queued = record(json!({"full_name": "A"}), RecordState::Queued);
        resolve(&mut queued, ResolveAction::Discard, false, t(1)).unwrap();
        assert_eq!(queued.state, RecordState::Discarded);
    }

    #[test]
    fn no_resolution_applies_to_a_record_the_engine_has_in_flight() {
        for action in [
            ResolveAction::Retry,
            ResolveAction::Discard,
            ResolveAction::UpdateExisting,
            ResolveAction::LinkExisting,
        ] {
            // In flight, the record is queued in the store: only the engine's set tells.
            let mut r = record(json!({"full_name": "A"}), RecordState::Queued);
            let before = r.clone();
            assert!(matches!(
                resolve(&mut r, action, true, t(1)),
                Err(ActionError::InFlight(_))
            ));
            assert_eq!(r, before);
        }
    }

    #[test]
    fn edit_merges_changes_and_keeps_sending_records_in_flight() {
        let mut r = record(
            json!({"full_name": "Ada", "phone": "+44 1", "risk": {"is_pep": false, "occupation": "baker"}}),
            RecordState::Sending,
        );
        edit(
            &mut r,
            &json!({"phone": null, "risk": {"is_pep": true}}),
            t(2),
        )
        .unwrap();
        assert_eq!(
            r.payload.to_value(),
            json!({"full_name": "Ada", "phone": null, "risk": {"is_pep": true, "occupation": "baker"}})
        );
        assert_eq!(r.revision, 2);
        assert_eq!(r.state, RecordState::Sending);
    }

    #[test]
    fn an_edit_that_changes_nothing_is_no_revision() {
        let mut r = record(json!({"full_name": "Ada"}), RecordState::Synced);
        edit(&mut r, &json!({"full_name": "Ada"}), t(2)).unwrap();
        assert_eq!((r.revision, r.state), (1, RecordState::Synced));
    }

    #[test]
    fn invalid_edits_report_contract_errors() {
        let mut r = record(json!({"full_name": "Ada"}), RecordState::Queued);
        match edit(&mut r, &json!({"email": "nope"}), t(2)) {
            Err(ActionError::Invalid(errors)) => assert_eq!(errors[0].field, "email"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.revision, 1);
    }
}
