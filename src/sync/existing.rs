//! The conflict enricher: a 409 `customer_conflict` names only the existing customer's id and
//! external_id, so this task reads that customer (`GET /v1/customers/{id}`) and keeps it in
//! the record (`Record::existing`, sealed with it), for the conflicts screen to show field by
//! field. It runs beside the engine, never inside it: it learns of new conflicts from the
//! engine's events, and sweeps the store for conflicts still lacking a lookup when it starts
//! and, after a read failed, when the API becomes usable again and every
//! [`EnricherConfig::sweep_interval`].
//!
//! It owns nothing of the send path: it never changes a record's state, and it stores a lookup
//! only if the record is still in the conflict it was read for (`Record::attach_existing`,
//! inside `Store::update`). Clearing a lookup when a record leaves its conflict is the store's
//! job (`Record::drop_stale_existing`). A failed read (offline, 401, 429, 5xx) leaves the
//! record without a lookup and stops the current round: the next sweep or event tries again,
//! so an unreachable API costs one request per sweep, not a loop. A 404 is an answer, stored
//! as [`ExistingLookup::NotFound`]. Logs carry ids and statuses only, never customer fields.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::engine::{EngineEvent, EngineHandle};
use crate::api::{ApiClient, Reply, ReplyBody, Transport};
use crate::store::{
    Durability, ExistingCustomer, ExistingLookup, RecordId, RecordState, Store, StoreError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnricherConfig {
    /// Reads in flight at once: few, so a burst of conflicts never crowds out the upserts.
    pub concurrency: usize,
    /// How often the store is swept for conflicts whose customer is still unread.
    pub sweep_interval: Duration,
}

impl Default for EnricherConfig {
    fn default() -> Self {
        EnricherConfig {
            concurrency: 2,
            sweep_interval: Duration::from_secs(60),
        }
    }
}

/// Why a read gave no lookup; the record is tried again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFailed {
    /// No HTTP answer (offline, timeout).
    Transport(String),
    /// An HTTP answer that is neither the customer nor a 404 (401, 429, 5xx, unreadable).
    Status(u16),
    /// A 2xx naming another customer than the one asked for.
    WrongCustomer,
}

/// What a `GET /v1/customers/{id}` exchange means for the conflict with `customer_id`.
pub fn read_lookup(
    customer_id: Uuid,
    result: &Result<Reply, Transport>,
    now: DateTime<Utc>,
) -> Result<ExistingCustomer, ReadFailed> {
    let reply = result
        .as_ref()
        .map_err(|e| ReadFailed::Transport(e.to_string()))?;
    let lookup = match &reply.body {
        ReplyBody::Customer(c) if c.id == customer_id => ExistingLookup::Found {
            customer: c.clone(),
        },
        ReplyBody::Customer(_) => return Err(ReadFailed::WrongCustomer),
        _ if reply.status == 404 => ExistingLookup::NotFound,
        _ => return Err(ReadFailed::Status(reply.status)),
    };
    Ok(ExistingCustomer {
        customer_id,
        fetched_at: now,
        lookup,
    })
}

/// One finished read.
struct Read {
    record: RecordId,
    customer: Uuid,
    result: Result<Reply, Transport>,
}

struct Enricher<N> {
    store: Store,
    client: ApiClient,
    config: EnricherConfig,
    notify: N,
    /// Records waiting for a read, in arrival order.
    pending: VecDeque<RecordId>,
    /// Records pending or being read: each is read once per round.
    queued: HashSet<RecordId>,
    reads: JoinSet<Read>,
    /// A read failed since the last sweep, so some conflict may still lack its customer.
    /// Sweeps after the first run only then: each decodes every conflict record, which is
    /// wasted work (and, with many conflicts, real work) when every read succeeded.
    owed: bool,
}

/// Runs until `stop` completes. `notify` is called with each record that gained a lookup, so
/// the daemon can tell its subscribers (the TUI redraws the conflict).
pub async fn run<N>(
    store: Store,
    client: ApiClient,
    engine: EngineHandle,
    config: EnricherConfig,
    notify: N,
    stop: impl Future,
) where
    N: Fn(RecordId),
{
    let mut events = engine.subscribe();
    let mut usable = api_usable(&engine.status());
    let mut enricher = Enricher {
        store,
        client,
        config,
        notify,
        pending: VecDeque::new(),
        queued: HashSet::new(),
        reads: JoinSet::new(),
        owed: false,
    };
    enricher.sweep();
    let mut sweep = tokio::time::interval(config.sweep_interval);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        enricher.start_reads();
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(joined) = enricher.reads.join_next(), if !enricher.reads.is_empty() => {
                if let Ok(read) = joined {
                    enricher.finished(read);
                }
            }
            event = events.recv() => match event {
                Ok(EngineEvent::RecordChanged { id, state: RecordState::Conflict }) => {
                    enricher.enqueue(id);
                }
                Ok(EngineEvent::RecordChanged { .. }) => {}
                Ok(EngineEvent::StatusChanged(status)) => {
                    // Back from offline or a 401 pause: what failed then may work now.
                    let now_usable = api_usable(&status);
                    if now_usable && !usable && enricher.owed {
                        enricher.sweep();
                    }
                    usable = now_usable;
                }
                // Missed events may have been conflicts: look at the store instead.
                Err(RecvError::Lagged(_)) => enricher.sweep(),
                Err(RecvError::Closed) => break,
            },
            _ = sweep.tick() => {
                if enricher.owed {
                    enricher.sweep();
                }
            }
        }
    }
    // Reads still in flight are abandoned: their records are read again next time.
    enricher.reads.abort_all();
}

fn api_usable(status: &super::EngineStatus) -> bool {
    status.online && status.paused.is_none()
}

impl<N: Fn(RecordId)> Enricher<N> {
    fn enqueue(&mut self, id: RecordId) {
        if self.queued.insert(id) {
            self.pending.push_back(id);
        }
    }

    /// Queues every conflict whose customer is unread.
    fn sweep(&mut self) {
        self.owed = false;
        let ids = match self.store.in_state(RecordState::Conflict) {
            Ok(ids) => ids,
            Err(e) => {
                self.owed = true;
                return store_failed(&e);
            }
        };
        for id in ids {
            self.enqueue(id);
        }
    }

    fn start_reads(&mut self) {
        while self.reads.len() < self.config.concurrency {
            let Some(id) = self.pending.pop_front() else {
                return;
            };
            // The record as it is now: it may have been resolved, or read, since it was queued.
            let customer = match self.store.get(id) {
                Ok(record) => record.and_then(|r| r.existing_to_fetch()),
                Err(e) => {
                    self.owed = true;
                    store_failed(&e);
                    None
                }
            };
            let Some(customer) = customer else {
                self.queued.remove(&id);
                continue;
            };
            let client = self.client.clone();
            self.reads.spawn(async move {
                Read {
                    record: id,
                    customer,
                    result: client.get_customer(customer).await,
                }
            });
        }
    }

    fn finished(&mut self, read: Read) {
        self.queued.remove(&read.record);
        match read_lookup(read.customer, &read.result, Utc::now()) {
            Ok(existing) => {
                let attached = self.store.update(read.record, Durability::Lazy, |r| {
                    r.attach_existing(existing.clone())
                });
                match attached {
                    Ok(Some(true)) => (self.notify)(read.record),
                    Ok(_) => {}
                    Err(e) => {
                        self.owed = true;
                        store_failed(&e);
                    }
                }
            }
            Err(failed) => {
                tracing::debug!(
                    record = %read.record,
                    reason = ?failed,
                    "existing customer not read; tried again on the next sweep"
                );
                self.owed = true;
                // The API is unusable for now: the rest of the round would fail the same way.
                for id in self.pending.drain(..) {
                    self.queued.remove(&id);
                }
            }
        }
    }
}

fn store_failed(e: &StoreError) {
    tracing::warn!(error = %e, "conflict enricher cannot use the store; it tries again later");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{AddedVia, ApiError, Customer, CustomerType, ErrorKind, KycStatus, Risk};

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn customer(id: u128) -> Customer {
        Customer {
            id: Uuid::from_u128(id),
            external_id: Some("crm-old".into()),
            customer_type: CustomerType::Individual,
            full_name: "Ada".into(),
            email: Some("ada@x.io".into()),
            trading_name: None,
            phone: None,
            risk: Risk::default(),
            kyc_status: KycStatus::NotStarted,
            added_via: AddedVia::Integration,
            verified_identity: None,
            created_at: now(),
            updated_at: now(),
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

    fn error(kind: ErrorKind) -> ReplyBody {
        ReplyBody::Error(ApiError::simple(kind, "x"))
    }

    #[test]
    fn the_customer_asked_for_is_found_and_a_404_is_an_answer() {
        let id = Uuid::from_u128(7);
        let found = read_lookup(
            id,
            &reply(200, ReplyBody::Customer(Box::new(customer(7)))),
            now(),
        )
        .unwrap();
        assert_eq!(found.customer_id, id);
        assert_eq!(found.customer(), Some(&customer(7)));
        let gone = read_lookup(id, &reply(404, error(ErrorKind::NotFound)), now()).unwrap();
        assert_eq!(gone.lookup, ExistingLookup::NotFound);
        assert_eq!(gone.fetched_at, now());
    }

    #[test]
    fn failures_leave_the_record_for_a_later_read() {
        let id = Uuid::from_u128(7);
        for (status, body) in [
            (401, error(ErrorKind::Unauthorized)),
            (429, error(ErrorKind::RateLimited)),
            (503, error(ErrorKind::Unavailable)),
            (502, ReplyBody::Unreadable("html".into())),
        ] {
            assert_eq!(
                read_lookup(id, &reply(status, body), now()),
                Err(ReadFailed::Status(status))
            );
        }
        assert!(matches!(
            read_lookup(id, &Err(Transport::Timeout), now()),
            Err(ReadFailed::Transport(_))
        ));
        assert_eq!(
            read_lookup(
                id,
                &reply(200, ReplyBody::Customer(Box::new(customer(8)))),
                now()
            ),
            Err(ReadFailed::WrongCustomer)
        );
    }
}
