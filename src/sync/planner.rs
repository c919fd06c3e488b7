//! What the engine does next, as a pure function of the queue, what is in flight, the global
//! gate (paused, rate limited, offline) and the clock. The engine only executes the plan, so
//! "nothing is dispatched while rate limited" and "never two requests for one record" are
//! properties of this file and tested here.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::store::{Record, RecordId, RecordState};

/// Conditions that stop all dispatch, whatever the records say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gate {
    /// A 401: nothing is sent until the key changes.
    pub paused: Option<String>,
    /// A 429's `Retry-After`: nothing is sent before this instant.
    pub rate_limited_until: Option<DateTime<Utc>>,
    /// A connection error: nothing is sent until a probe gets an HTTP answer.
    pub offline: Option<Offline>,
    /// With nothing in flight: when to probe the API if it has not been heard from by then,
    /// so an API that cannot be reached shows as offline even with an empty queue. Not a
    /// condition on dispatch.
    pub idle_probe_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offline {
    pub next_probe_at: DateTime<Utc>,
    /// Probes that failed since going offline: drives the probe backoff.
    pub failed_probes: u32,
}

impl Gate {
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.paused.is_none()
            && self.offline.is_none()
            && !matches!(self.rate_limited_until, Some(until) if until > now)
    }
}

/// The records to start now: queued, due, not already in flight, at most `free_slots`, in
/// the order given (the store's queue order). Nothing while the gate is closed.
pub fn select<'a>(
    candidates: impl IntoIterator<Item = &'a Record>,
    in_flight: &HashSet<RecordId>,
    free_slots: usize,
    gate: &Gate,
    now: DateTime<Utc>,
) -> Vec<RecordId> {
    if !gate.is_open(now) {
        return Vec::new();
    }
    candidates
        .into_iter()
        .filter(|r| r.state == RecordState::Queued)
        .filter(|r| !matches!(r.next_attempt_at, Some(at) if at > now))
        .filter(|r| !in_flight.contains(&r.id))
        .map(|r| r.id)
        .take(free_slots)
        .collect()
}

/// Whether to send a probe now: offline and the next probe is due, or idle and the API not
/// heard from since [`Gate::idle_probe_at`].
pub fn probe_now(gate: &Gate, probe_running: bool, now: DateTime<Utc>) -> bool {
    let due = match gate.offline {
        Some(o) => o.next_probe_at <= now,
        None => gate.idle_probe_at.is_some_and(|at| at <= now),
    };
    gate.paused.is_none() && !probe_running && due
}

/// When the engine must wake by itself, if nothing else (a wake-up call, a finished request,
/// a key change, shutdown) wakes it first. `None` means only those events can help.
///
/// `now` is the instant the planning pass started (before records were dispatched). A due
/// time not after it is not a timer: that record was due during the pass, so it was started
/// or is in flight or waiting for a slot, and a finished request wakes the engine anyway.
/// Treating it as a timer would spin. Likewise, while a probe runs its end wakes the engine:
/// a probe time already past must not fire a timer for as long as the probe takes.
pub fn wake_at(
    gate: &Gate,
    next_due_at: Option<DateTime<Utc>>,
    probe_running: bool,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if gate.paused.is_some() {
        return None;
    }
    if let Some(offline) = gate.offline {
        return (!probe_running).then(|| offline.next_probe_at.max(now));
    }
    if let Some(until) = gate.rate_limited_until.filter(|until| *until > now) {
        return Some(until);
    }
    let idle_probe = gate.idle_probe_at.filter(|_| !probe_running);
    [next_due_at, idle_probe]
        .into_iter()
        .flatten()
        .filter(|at| *at > now)
        .min()
}

/// The outcomes one write waits for before it starts: a write costs sled two log-buffer
/// writes and a round of thread wake-ups whatever its size (its transaction pins the log),
/// so outcomes that finish close together are written together.
pub const WRITE_AT_ONCE: usize = 32;
/// The longest a finished request's outcome waits for others to join its write.
pub const WRITE_AFTER: std::time::Duration = std::time::Duration::from_millis(2);

/// Whether the outcomes waiting for the writer (`pending` of them, the oldest `waited` long)
/// are written now rather than joined by more: when enough wait, when the oldest has waited
/// [`WRITE_AFTER`], or when no request is out whose outcome could join them (a lone record
/// is written at once, and a drain never waits).
pub fn write_now(pending: usize, waited: std::time::Duration, requests_out: usize) -> bool {
    pending > 0 && (requests_out == 0 || pending >= WRITE_AT_ONCE || waited >= WRITE_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Origin, Payload};
    use serde_json::json;
    use uuid::Uuid;

    #[test]
    fn outcomes_are_written_together_but_none_waits_long_or_alone() {
        use std::time::Duration;
        let soon = Duration::from_micros(300);
        assert!(!write_now(0, Duration::from_secs(1), 0), "nothing to write");
        assert!(!write_now(1, soon, 8), "more may join it");
        assert!(!write_now(WRITE_AT_ONCE - 1, soon, 8));
        assert!(write_now(WRITE_AT_ONCE, soon, 8), "enough to write");
        assert!(write_now(1, WRITE_AFTER, 8), "waited long enough");
        assert!(
            write_now(1, Duration::ZERO, 0),
            "no request out could join it"
        );
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000 + secs, 0).unwrap()
    }

    fn record(n: u128, state: RecordState, next: Option<i64>) -> Record {
        let payload = Payload::parse(&json!({"full_name": "Ada"})).unwrap();
        Record {
            state,
            next_attempt_at: next.map(t),
            history: Vec::new(),
            ..Record::new(RecordId(Uuid::from_u128(n)), payload, Origin::Cli, t(0))
        }
    }

    fn ids(ns: &[u128]) -> Vec<RecordId> {
        ns.iter().map(|n| RecordId(Uuid::from_u128(*n))).collect()
    }

    #[test]
    fn selects_due_queued_records_in_order_up_to_the_free_slots() {
        let rs = [
            record(1, RecordState::Queued, None),
            record(2, RecordState::Queued, Some(100)),
            record(3, RecordState::Synced, None),
            record(4, RecordState::Queued, Some(10)),
            record(5, RecordState::Queued, None),
        ];
        let open = Gate::default();
        assert_eq!(
            select(&rs, &HashSet::new(), 8, &open, t(10)),
            ids(&[1, 4, 5])
        );
        assert_eq!(select(&rs, &HashSet::new(), 2, &open, t(10)), ids(&[1, 4]));
        assert_eq!(select(&rs, &HashSet::new(), 0, &open, t(10)), ids(&[]));
    }

    #[test]
    fn never_selects_a_record_already_in_flight() {
        let rs = [
            record(1, RecordState::Queued, None),
            record(2, RecordState::Queued, None),
        ];
        let in_flight: HashSet<_> = ids(&[1]).into_iter().collect();
        assert_eq!(
            select(&rs, &in_flight, 8, &Gate::default(), t(0)),
            ids(&[2])
        );
    }

    #[test]
    fn a_closed_gate_selects_nothing() {
        let rs = [record(1, RecordState::Queued, None)];
        let none = HashSet::new();
        let paused = Gate {
            paused: Some("401".into()),
            ..Gate::default()
        };
        let limited = Gate {
            rate_limited_until: Some(t(30)),
            ..Gate::default()
        };
        let offline = Gate {
            offline: Some(Offline {
                next_probe_at: t(5),
                failed_probes: 0,
            }),
            ..Gate::default()
        };
        for gate in [&paused, &limited, &offline] {
            assert!(select(&rs, &none, 8, gate, t(10)).is_empty(), "{gate:?}");
        }
        assert_eq!(
            select(&rs, &none, 8, &limited, t(30)),
            ids(&[1]),
            "limit over"
        );
    }

    #[test]
    fn wakes_for_the_next_due_record_but_never_for_one_already_due() {
        let open = Gate::default();
        assert_eq!(wake_at(&open, Some(t(20)), false, t(10)), Some(t(20)));
        assert_eq!(wake_at(&open, Some(t(10)), false, t(10)), None);
        assert_eq!(wake_at(&open, None, false, t(10)), None);
    }

    #[test]
    fn a_rate_limit_or_offline_probe_sets_the_wake_time_and_a_pause_waits_for_the_key() {
        let limited = Gate {
            rate_limited_until: Some(t(30)),
            ..Gate::default()
        };
        assert_eq!(wake_at(&limited, Some(t(11)), false, t(10)), Some(t(30)));
        let offline = Gate {
            offline: Some(Offline {
                next_probe_at: t(15),
                failed_probes: 2,
            }),
            ..Gate::default()
        };
        assert_eq!(wake_at(&offline, Some(t(11)), false, t(10)), Some(t(15)));
        assert_eq!(
            wake_at(&offline, Some(t(11)), true, t(20)),
            None,
            "a running probe's end wakes the engine; a past probe time must not spin"
        );
        let paused = Gate {
            paused: Some("401".into()),
            ..offline.clone()
        };
        assert_eq!(wake_at(&paused, Some(t(11)), false, t(10)), None);
    }

    #[test]
    fn one_probe_at_a_time_and_only_when_due_and_not_paused() {
        let offline = Gate {
            offline: Some(Offline {
                next_probe_at: t(15),
                failed_probes: 0,
            }),
            ..Gate::default()
        };
        assert!(!probe_now(&offline, false, t(14)));
        assert!(probe_now(&offline, false, t(15)));
        assert!(!probe_now(&offline, true, t(15)));
        assert!(!probe_now(&Gate::default(), false, t(15)));
    }

    #[test]
    fn an_idle_engine_probes_when_the_api_has_not_been_heard_from() {
        let idle = Gate {
            idle_probe_at: Some(t(30)),
            ..Gate::default()
        };
        assert!(!probe_now(&idle, false, t(29)));
        assert!(probe_now(&idle, false, t(30)));
        assert!(!probe_now(&idle, true, t(30)));
        // The timer wakes the engine for it, or for a record due sooner.
        assert_eq!(wake_at(&idle, None, false, t(10)), Some(t(30)));
        assert_eq!(wake_at(&idle, Some(t(20)), false, t(10)), Some(t(20)));
        assert_eq!(wake_at(&idle, None, true, t(10)), None);
        let paused = Gate {
            paused: Some("401".into()),
            ..idle.clone()
        };
        assert!(!probe_now(&paused, false, t(30)));
    }
}
