//! The record state machine for sending: pure functions over a `store::Record`, called by
//! the engine inside `Store::update` so each transition is atomic with its history line.
//! They may run more than once on fresh copies (the store retries on contention), so they
//! take everything they need as arguments and read no clock.
//!
//! ```text
//! queued --send_plan (nothing written)--> in flight --finish_attempt--> synced | conflict | rejected | queued
//! sending (stores written before) --recover_sending (start-up)--> queued   (same revision, same key)
//! ```
//!
//! A record in flight stays `queued` in the store: the engine's in-memory set says it is
//! being sent (`inflight`), and a crash leaves it queued at the same revision, so the same
//! key is sent again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::keys::idempotency_key;
use super::policy::Disposition;
use crate::api::{Reply, Transport};
use crate::contract::{ApiError, Customer, ErrorKind, IdempotencyKey};
use crate::store::{Attempt, HistoryEntry, Record, RecordError, RecordId, RecordState};

/// One request to make: the record's newest revision, its derived key and its payload as it
/// stood when the attempt began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendPlan {
    pub id: RecordId,
    pub revision: u32,
    pub key: IdempotencyKey,
    pub body: Value,
}

/// The request for a queued record's newest revision; `None` when the record is not queued.
/// Nothing is written: the record stays queued while the engine has it in flight.
pub fn send_plan(record: &Record) -> Option<SendPlan> {
    if record.state != RecordState::Queued {
        return None;
    }
    Some(SendPlan {
        id: record.id,
        revision: record.revision,
        key: idempotency_key(record.id, record.revision),
        body: record.payload.to_value(),
    })
}

/// The history line for one request.
pub fn attempt_entry(
    plan: &SendPlan,
    result: &Result<Reply, Transport>,
    at: DateTime<Utc>,
    latency: Duration,
) -> Attempt {
    let (status, replayed, error) = match result {
        Ok(reply) => (
            Some(reply.status),
            reply.replayed,
            reply
                .api_error()
                .map(|e| e.kind().as_str().to_string())
                .or_else(|| match &reply.body {
                    crate::api::ReplyBody::Unreadable(text) => Some(text.clone()),
                    _ => None,
                }),
        ),
        Err(e) => (None, false, Some(e.to_string())),
    };
    Attempt {
        at,
        revision: plan.revision,
        key: plan.key.as_str().to_string(),
        status,
        latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        replayed,
        error,
    }
}

/// Records the attempt for `sent_revision` and moves the record on. `next_attempt_at` is
/// used for the outcomes that wait (retry, rate limit, offline, pause). Returns the new state.
pub fn finish_attempt(
    record: &mut Record,
    sent_revision: u32,
    attempt: Attempt,
    disposition: &Disposition,
    next_attempt_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> RecordState {
    record.history.push(HistoryEntry::Attempt(attempt));
    record.updated_at = now;
    // A newer revision queued while this one was in flight goes next, whatever happened to
    // this one: it may well fix a conflict or a rejection.
    let current = record.revision == sent_revision;

    if let Disposition::Synced { customer, .. } = disposition {
        record.remote = Some(Customer::clone(customer));
        record.synced_revision = Some(
            record
                .synced_revision
                .map_or(sent_revision, |r| r.max(sent_revision)),
        );
    }
    // An operator's discard during the flight stands; only the facts above are kept.
    if record.state == RecordState::Discarded {
        return record.state;
    }

    match disposition {
        Disposition::Synced { .. } | Disposition::NeedsPerson(_) | Disposition::Rejected(_)
            if !current =>
        {
            requeue_for_newer_revision(record)
        }
        Disposition::Synced { .. } => {
            record.state = RecordState::Synced;
            record.last_error = None;
            record.failures = 0;
            record.next_attempt_at = None;
        }
        Disposition::NeedsPerson(error) => stop(record, RecordState::Conflict, error),
        Disposition::Rejected(error) => stop(record, RecordState::Rejected, error),
        Disposition::PauseAll { .. } => {
            // Not the record's fault: no failure counted, no error recorded on it.
            record.state = RecordState::Queued;
            record.next_attempt_at = next_attempt_at;
        }
        Disposition::RetryLater { error, .. } => back_off(record, next_attempt_at, error.clone()),
        Disposition::RateLimited { .. } => back_off(
            record,
            next_attempt_at,
            RecordError::Api {
                error: ApiError::simple(ErrorKind::RateLimited, "rate limited by the API"),
            },
        ),
        Disposition::Offline { error } => back_off(
            record,
            next_attempt_at,
            RecordError::Transport {
                message: error.clone(),
            },
        ),
    }
    record.state
}

fn requeue_for_newer_revision(record: &mut Record) {
    record.state = RecordState::Queued;
    record.last_error = None;
    record.failures = 0;
    record.next_attempt_at = None;
}

fn stop(record: &mut Record, state: RecordState, error: &ApiError) {
    record.state = state;
    record.last_error = Some(RecordError::Api {
        error: error.clone(),
    });
    record.next_attempt_at = None;
}

fn back_off(record: &mut Record, next_attempt_at: Option<DateTime<Utc>>, error: RecordError) {
    record.state = RecordState::Queued;
    record.failures = record.failures.saturating_add(1);
    record.next_attempt_at = next_attempt_at;
    record.last_error = Some(error);
}

/// Start-up: a record found `Sending` (as versions before the in-memory in-flight set wrote
/// it) was in flight when the process stopped. Its revision is
/// unchanged, so re-sending it uses the same key and the server replays if it had committed.
/// Returns whether the record changed.
pub fn recover_sending(record: &mut Record) -> bool {
    if record.state != RecordState::Sending {
        return false;
    }
    record.state = RecordState::Queued;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ReplyBody;
    use crate::contract::{AddedVia, CustomerType, KycStatus, Risk};
    use crate::store::{Origin, Payload};
    use serde_json::json;
    use uuid::Uuid;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000 + secs, 0).unwrap()
    }

    fn record(revision: u32, state: RecordState) -> Record {
        let payload = Payload::parse(&json!({"full_name": format!("Ada r{revision}")})).unwrap();
        Record {
            revision,
            state,
            history: Vec::new(),
            ..Record::new(RecordId(Uuid::from_u128(42)), payload, Origin::Cli, t(0))
        }
    }

    fn customer() -> Customer {
        Customer {
            id: Uuid::from_u128(7),
            external_id: None,
            customer_type: CustomerType::Individual,
            full_name: "Ada r1".into(),
            email: None,
            trading_name: None,
            phone: None,
            risk: Risk::default(),
            kyc_status: KycStatus::NotStarted,
            added_via: AddedVia::Integration,
            verified_identity: None,
            created_at: t(0),
            updated_at: t(0),
        }
    }

    fn attempt(revision: u32) -> Attempt {
        Attempt {
            at: t(5),
            revision,
            key: idempotency_key(RecordId(Uuid::from_u128(42)), revision).to_string(),
            status: None,
            latency_ms: 3,
            replayed: false,
            error: None,
        }
    }

    fn synced() -> Disposition {
        Disposition::Synced {
            customer: Box::new(customer()),
            replayed: false,
        }
    }

    fn conflict() -> ApiError {
        ApiError::CustomerConflict {
            message: "taken".into(),
            conflicting_customer_id: Uuid::from_u128(8),
            conflicting_external_id: Some("X".into()),
        }
    }

    fn finish(
        r: &mut Record,
        sent: u32,
        d: &Disposition,
        next: Option<DateTime<Utc>>,
    ) -> RecordState {
        finish_attempt(r, sent, attempt(sent), d, next, t(6))
    }

    #[test]
    fn send_plan_sends_the_current_revision_with_its_derived_key() {
        let r = record(3, RecordState::Queued);
        let plan = send_plan(&r).unwrap();
        assert_eq!(plan.id, r.id);
        assert_eq!(plan.revision, 3);
        assert_eq!(plan.key, idempotency_key(r.id, 3));
        assert_eq!(plan.body, json!({"full_name": "Ada r3"}));
    }

    #[test]
    fn send_plan_refuses_a_record_that_is_not_queued() {
        for state in RecordState::ALL
            .into_iter()
            .filter(|s| *s != RecordState::Queued)
        {
            assert_eq!(send_plan(&record(1, state)), None, "{state}");
        }
    }

    #[test]
    fn success_for_the_current_revision_syncs_and_keeps_the_customer() {
        let mut r = record(2, RecordState::Sending);
        r.failures = 3;
        r.last_error = Some(RecordError::Transport {
            message: "x".into(),
        });
        assert_eq!(finish(&mut r, 2, &synced(), None), RecordState::Synced);
        assert_eq!(r.remote, Some(customer()));
        assert_eq!(r.synced_revision, Some(2));
        assert_eq!((r.failures, r.last_error.clone()), (0, None));
        assert_eq!(r.history, vec![HistoryEntry::Attempt(attempt(2))]);
    }

    #[test]
    fn success_for_an_older_revision_keeps_the_customer_and_queues_the_newer_one() {
        let mut r = record(3, RecordState::Queued);
        r.synced_revision = Some(1);
        assert_eq!(finish(&mut r, 2, &synced(), None), RecordState::Queued);
        assert_eq!(r.remote, Some(customer()));
        assert_eq!(r.synced_revision, Some(2));
        assert_eq!(r.next_attempt_at, None);
        // Still Sending (the store may not have touched the state): queued all the same.
        let mut r = record(3, RecordState::Sending);
        assert_eq!(finish(&mut r, 2, &synced(), None), RecordState::Queued);
    }

    #[test]
    fn conflicts_and_rejections_stop_the_current_revision() {
        let mut r = record(1, RecordState::Sending);
        assert_eq!(
            finish(&mut r, 1, &Disposition::NeedsPerson(conflict()), None),
            RecordState::Conflict
        );
        assert_eq!(r.last_error, Some(RecordError::Api { error: conflict() }));

        let invalid = ApiError::validation(vec![crate::contract::FieldError::new("email", "bad")]);
        let mut r = record(1, RecordState::Sending);
        assert_eq!(
            finish(&mut r, 1, &Disposition::Rejected(invalid.clone()), None),
            RecordState::Rejected
        );
        assert_eq!(r.last_error, Some(RecordError::Api { error: invalid }));
    }

    #[test]
    fn a_conflict_or_rejection_of_an_older_revision_queues_the_newer_one() {
        for d in [
            Disposition::NeedsPerson(conflict()),
            Disposition::Rejected(ApiError::simple(ErrorKind::InvalidRequest, "bad")),
        ] {
            let mut r = record(2, RecordState::Queued);
            assert_eq!(finish(&mut r, 1, &d, None), RecordState::Queued, "{d:?}");
            assert_eq!(r.last_error, None);
            assert_eq!(r.history.len(), 1);
        }
    }

    #[test]
    fn retryable_outcomes_queue_again_with_one_more_failure_and_a_due_time() {
        for d in [
            Disposition::RetryLater {
                retry_after: None,
                error: RecordError::Transport {
                    message: "timeout".into(),
                },
            },
            Disposition::RateLimited { retry_after: None },
            Disposition::Offline {
                error: "refused".into(),
            },
        ] {
            let mut r = record(1, RecordState::Sending);
            r.failures = 2;
            assert_eq!(
                finish(&mut r, 1, &d, Some(t(60))),
                RecordState::Queued,
                "{d:?}"
            );
            assert_eq!(r.failures, 3);
            assert_eq!(r.next_attempt_at, Some(t(60)));
            assert!(r.last_error.is_some());
        }
    }

    #[test]
    fn a_pause_queues_the_record_without_counting_a_failure() {
        let mut r = record(1, RecordState::Sending);
        r.failures = 2;
        let d = Disposition::PauseAll {
            reason: "401".into(),
        };
        assert_eq!(finish(&mut r, 1, &d, None), RecordState::Queued);
        assert_eq!((r.failures, r.last_error.clone()), (2, None));
        assert_eq!(r.history.len(), 1, "the attempt is still recorded");
    }

    #[test]
    fn a_record_discarded_during_the_flight_stays_discarded() {
        let mut r = record(1, RecordState::Discarded);
        assert_eq!(finish(&mut r, 1, &synced(), None), RecordState::Discarded);
        assert_eq!(r.remote, Some(customer()), "the server has it, so say so");
    }

    #[test]
    fn recovery_at_start_up_requeues_sending_records_with_the_same_key() {
        let mut r = record(4, RecordState::Sending);
        assert!(recover_sending(&mut r));
        assert_eq!(r.state, RecordState::Queued);
        let plan = send_plan(&r).unwrap();
        assert_eq!(plan.key, idempotency_key(r.id, 4));
        let mut synced = record(4, RecordState::Synced);
        assert!(!recover_sending(&mut synced));
        assert_eq!(synced.state, RecordState::Synced);
    }

    #[test]
    fn the_attempt_line_names_status_replay_and_error_kind() {
        let r = record(1, RecordState::Queued);
        let plan = send_plan(&r).unwrap();
        let reply = Ok(Reply {
            status: 409,
            replayed: false,
            retry_after: None,
            body: ReplyBody::Error(conflict()),
        });
        let a = attempt_entry(&plan, &reply, t(2), Duration::from_millis(12));
        assert_eq!(a.status, Some(409));
        assert_eq!(a.error.as_deref(), Some("customer_conflict"));
        assert_eq!(a.latency_ms, 12);
        assert_eq!(a.key, plan.key.as_str());
        let a = attempt_entry(&plan, &Err(Transport::Timeout), t(2), Duration::ZERO);
        assert_eq!(
            (a.status, a.error.as_deref()),
            (None, Some("request timed out"))
        );
    }
}
