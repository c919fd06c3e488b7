//! What each API outcome means, decided in one place: CONTRACT.md, "How a client must treat
//! each outcome", as code. Also the backoff arithmetic. Pure: no clock, no randomness (the
//! caller passes a uniform random number in), no I/O.

use std::time::Duration;

use crate::api::{Reply, ReplyBody, Transport};
use crate::contract::{ApiError, Customer, ErrorKind};
use crate::store::RecordError;

/// What to do after one upsert attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// 200 or 201, first time or replayed: keep the server's customer.
    Synced {
        customer: Box<Customer>,
        replayed: bool,
    },
    /// 409 `customer_conflict` (a person resolves it) or 409 `idempotency_conflict` (never
    /// expected from a correct client: stop and show it).
    NeedsPerson(ApiError),
    /// 400 or 422: a person fixes the record; it is never retried as is.
    Rejected(ApiError),
    /// 401: nothing is sent until the key changes; the record is not marked failed.
    PauseAll { reason: String },
    /// Retry the same key after a backoff, or after `retry_after` if that is longer.
    RetryLater {
        retry_after: Option<Duration>,
        error: RecordError,
    },
    /// 429: the whole queue waits `retry_after`.
    RateLimited { retry_after: Option<Duration> },
    /// No connection: the client is offline until a probe gets any HTTP answer.
    Offline { error: String },
}

impl Disposition {
    /// The attempt counts against the record's backoff.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Disposition::RetryLater { .. }
                | Disposition::RateLimited { .. }
                | Disposition::Offline { .. }
        )
    }
}

pub fn classify(result: &Result<Reply, Transport>) -> Disposition {
    let reply = match result {
        Ok(reply) => reply,
        Err(Transport::Connect(message)) => {
            return Disposition::Offline {
                error: message.clone(),
            }
        }
        Err(e @ (Transport::Timeout | Transport::Other(_))) => {
            return Disposition::RetryLater {
                retry_after: None,
                error: RecordError::Transport {
                    message: e.to_string(),
                },
            }
        }
    };
    let status = reply.status;
    let retry_later = |error: RecordError| Disposition::RetryLater {
        retry_after: reply.retry_after,
        error,
    };
    let error_of_reply = || match &reply.body {
        ReplyBody::Error(e) => RecordError::Api { error: e.clone() },
        ReplyBody::Unreadable(text) => RecordError::Transport {
            message: text.clone(),
        },
        ReplyBody::Customer(_) => RecordError::Transport {
            message: format!("HTTP {status} with a customer body"),
        },
    };
    match (status, &reply.body) {
        (200..=299, ReplyBody::Customer(c)) => Disposition::Synced {
            customer: c.clone(),
            replayed: reply.replayed,
        },
        // The server may have committed: the same key will replay a readable answer.
        (200..=299, _) => retry_later(error_of_reply()),
        (401, body) => Disposition::PauseAll {
            reason: match body {
                ReplyBody::Error(e) => format!("the API refused the key: {}", e.message()),
                _ => "the API refused the key (401 unauthorized)".to_string(),
            },
        },
        (429, _) => Disposition::RateLimited {
            retry_after: reply.retry_after,
        },
        (400 | 422, ReplyBody::Error(e)) => Disposition::Rejected(e.clone()),
        // A proxy's 400 still means this exact request will never be accepted.
        (400 | 422, _) => Disposition::Rejected(ApiError::simple(
            if status == 400 {
                ErrorKind::InvalidRequest
            } else {
                ErrorKind::ValidationError
            },
            format!("HTTP {status} without a readable error body"),
        )),
        (409, ReplyBody::Error(e))
            if matches!(
                e.kind(),
                ErrorKind::CustomerConflict | ErrorKind::IdempotencyConflict
            ) =>
        {
            Disposition::NeedsPerson(e.clone())
        }
        // idempotency_in_progress, 5xx, unreadable bodies, and statuses the contract does not
        // name: none of them says the record is wrong, so the same key is retried.
        _ => retry_later(error_of_reply()),
    }
}

/// Backoff defaults from the issue: 1 s doubling, capped at 5 minutes.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(5 * 60);

/// Exponential backoff with full jitter: uniform in `[0, min(cap, base * 2^(failures-1))]`.
/// `unit_random` is a uniform sample in `[0, 1)`; values outside are clamped.
pub fn backoff(failures: u32, base: Duration, cap: Duration, unit_random: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(32);
    let ceiling = base
        .checked_mul(1u32 << exponent.min(31))
        .unwrap_or(cap)
        .min(cap);
    ceiling.mul_f64(unit_random.clamp(0.0, 1.0))
}

/// The wait before the next attempt: the backoff, or the server's `Retry-After` if longer.
pub fn retry_delay(
    failures: u32,
    retry_after: Option<Duration>,
    base: Duration,
    cap: Duration,
    unit_random: f64,
) -> Duration {
    backoff(failures, base, cap, unit_random).max(retry_after.unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{AddedVia, CustomerType, KycStatus, Risk};
    use chrono::Utc;
    use uuid::Uuid;

    fn customer() -> Customer {
        Customer {
            id: Uuid::from_u128(9),
            external_id: None,
            customer_type: CustomerType::Individual,
            full_name: "Ada".into(),
            email: None,
            trading_name: None,
            phone: None,
            risk: Risk::default(),
            kyc_status: KycStatus::NotStarted,
            added_via: AddedVia::Integration,
            verified_identity: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn reply(status: u16, body: ReplyBody) -> Result<Reply, Transport> {
        Ok(Reply {
            status,
            replayed: false,
            retry_after: None,
            body,
        })
    }

    fn error_reply(kind: ErrorKind) -> Result<Reply, Transport> {
        reply(kind.status(), ReplyBody::Error(ApiError::simple(kind, "m")))
    }

    #[test]
    fn a_200_201_or_replay_is_synced_with_the_customer() {
        for status in [200, 201] {
            match classify(&reply(status, ReplyBody::Customer(Box::new(customer())))) {
                Disposition::Synced {
                    customer,
                    replayed: false,
                } => assert_eq!(customer.id, Uuid::from_u128(9)),
                other => panic!("{status}: {other:?}"),
            }
        }
        let mut r = reply(200, ReplyBody::Customer(Box::new(customer()))).unwrap();
        r.replayed = true;
        assert!(matches!(
            classify(&Ok(r)),
            Disposition::Synced { replayed: true, .. }
        ));
    }

    #[test]
    fn both_kinds_of_409_conflict_need_a_person() {
        for kind in [ErrorKind::CustomerConflict, ErrorKind::IdempotencyConflict] {
            match classify(&error_reply(kind)) {
                Disposition::NeedsPerson(e) => assert_eq!(e.kind(), kind),
                other => panic!("{kind}: {other:?}"),
            }
        }
    }

    #[test]
    fn idempotency_in_progress_retries_honouring_retry_after() {
        let mut r = error_reply(ErrorKind::IdempotencyInProgress).unwrap();
        r.retry_after = Some(Duration::from_secs(1));
        match classify(&Ok(r)) {
            Disposition::RetryLater { retry_after, error } => {
                assert_eq!(retry_after, Some(Duration::from_secs(1)));
                assert!(matches!(error, RecordError::Api { .. }));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_400_or_422_is_rejected_even_without_a_readable_body() {
        assert!(matches!(
            classify(&error_reply(ErrorKind::ValidationError)),
            Disposition::Rejected(ApiError::ValidationError { .. })
        ));
        assert!(matches!(
            classify(&error_reply(ErrorKind::InvalidRequest)),
            Disposition::Rejected(ApiError::InvalidRequest { .. })
        ));
        assert!(matches!(
            classify(&reply(400, ReplyBody::Unreadable("html".into()))),
            Disposition::Rejected(ApiError::InvalidRequest { .. })
        ));
    }

    #[test]
    fn a_401_pauses_everything_with_a_reason() {
        match classify(&error_reply(ErrorKind::Unauthorized)) {
            Disposition::PauseAll { reason } => assert!(reason.contains("key"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(&reply(401, ReplyBody::Unreadable("x".into()))),
            Disposition::PauseAll { .. }
        ));
    }

    #[test]
    fn a_429_rate_limits_the_queue_with_its_retry_after() {
        let mut r = error_reply(ErrorKind::RateLimited).unwrap();
        r.retry_after = Some(Duration::from_secs(4));
        assert_eq!(
            classify(&Ok(r)),
            Disposition::RateLimited {
                retry_after: Some(Duration::from_secs(4))
            }
        );
    }

    #[test]
    fn server_errors_unreadable_bodies_and_timeouts_retry_later() {
        for result in [
            error_reply(ErrorKind::InternalError),
            error_reply(ErrorKind::Unavailable),
            reply(502, ReplyBody::Unreadable("html".into())),
            reply(200, ReplyBody::Unreadable("truncated".into())),
            reply(409, ReplyBody::Unreadable("?".into())),
            Err(Transport::Timeout),
            Err(Transport::Other("connection reset".into())),
        ] {
            assert!(
                matches!(classify(&result), Disposition::RetryLater { .. }),
                "{result:?}"
            );
        }
    }

    #[test]
    fn a_connection_error_means_offline() {
        assert_eq!(
            classify(&Err(Transport::Connect("refused".into()))),
            Disposition::Offline {
                error: "refused".into()
            }
        );
    }

    #[test]
    fn only_retryable_outcomes_count_as_failures() {
        assert!(!Disposition::PauseAll { reason: "x".into() }.is_failure());
        assert!(
            !Disposition::Rejected(ApiError::simple(ErrorKind::InvalidRequest, "x")).is_failure()
        );
        assert!(Disposition::Offline { error: "x".into() }.is_failure());
    }

    #[test]
    fn backoff_doubles_from_base_up_to_the_cap() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(300);
        let top = 0.999_999_999;
        assert_eq!(backoff(1, base, cap, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(2, base, cap, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(5, base, cap, 1.0), Duration::from_secs(16));
        assert_eq!(backoff(9, base, cap, 1.0), Duration::from_secs(256));
        assert_eq!(backoff(10, base, cap, 1.0), cap);
        assert_eq!(backoff(u32::MAX, base, cap, 1.0), cap);
        assert!(backoff(10, base, cap, top) < cap);
    }

    #[test]
    fn backoff_is_full_jitter_between_zero_and_the_ceiling() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(300);
        assert_eq!(backoff(4, base, cap, 0.0), Duration::ZERO);
        assert_eq!(backoff(4, base, cap, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(4, base, cap, -3.0), Duration::ZERO);
        assert_eq!(backoff(4, base, cap, 7.0), Duration::from_secs(8));
    }

    #[test]
    fn retry_after_wins_when_it_is_longer_than_the_backoff() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(300);
        let ra = Some(Duration::from_secs(30));
        assert_eq!(retry_delay(1, ra, base, cap, 1.0), Duration::from_secs(30));
        assert_eq!(retry_delay(9, ra, base, cap, 1.0), Duration::from_secs(256));
        assert_eq!(retry_delay(3, None, base, cap, 0.5), Duration::from_secs(2));
    }
}
