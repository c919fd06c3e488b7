//! The sandbox's shared state: every organisation's customers, the idempotency table, the
//! rate-limit counters, the live faults and the clock offset, behind one std `Mutex`.
//!
//! The lock is only ever held for short sections with no `.await` inside (a lookup, a claim,
//! one decide-and-apply), so a std mutex is the right tool and no request waits on another's
//! injected latency. Every method here takes the lock once, which is what makes each of them
//! atomic; HTTP concerns stay in the route modules.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use axum::body::Bytes;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::config::{Faults, SandboxConfig, Secret};
use super::idempotency::{Begin, ClaimId, Entry, EntryState, IdempotencyTable};
use super::orgs::{IndexError, OrgCustomers, UpsertOutcome};
use super::persist::{Change, StateFile, StoredKey, MAX_CLOCK_OFFSET_SECONDS};
use super::rate_limit::{RateLimiter, RetryAfter};
use crate::contract::{
    ApiError, Customer, CustomerInput, Fingerprint, IdempotencyKey, KycStatus, VerifiedIdentity,
};

/// The shared sandbox: immutable credentials plus the locked mutable state.
#[derive(Debug)]
pub struct Sandbox {
    keys: HashMap<Secret, String>,
    admin_token: Option<Secret>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    orgs: BTreeMap<String, OrgCustomers>,
    idempotency: IdempotencyTable,
    rate: RateLimiter,
    faults: Faults,
    clock_offset_seconds: i64,
    /// Bumped by every change of state; the state writer compares it.
    generation: u64,
    /// With a state file: the changes not yet handed to the state writer, each tagged with
    /// its generation. `None` without a state file, so nothing accumulates.
    changes: Option<Vec<Change>>,
}

/// A clock move that would take the sandbox clock out of years 0-9999.
#[derive(Debug, thiserror::Error)]
#[error("would move the sandbox clock out of years 0-9999")]
pub struct ClockOutOfRange;

/// A stored state that does not fit together.
#[derive(Debug, thiserror::Error)]
#[error("organisation {org:?}: {source}")]
pub struct RestoreError {
    pub org: String,
    pub source: IndexError,
}

impl Inner {
    fn now(&self) -> DateTime<Utc> {
        shifted(self.clock_offset_seconds).unwrap_or_else(Utc::now)
    }

    /// Counts a change; with a state file, keeps what it changed for the journal.
    fn changed(&mut self, change: impl FnOnce(u64) -> Change) {
        self.generation += 1;
        let generation = self.generation;
        if let Some(changes) = &mut self.changes {
            changes.push(change(generation));
        }
    }

    /// A customer written for `org`, with the stored success of `key` when it has one.
    fn customer_changed(&mut self, org: &str, customer: &Customer, key: Option<&IdempotencyKey>) {
        let stored = key.and_then(|key| stored_key(org, key, self.idempotency.entry(org, key)?));
        let (org, customer) = (org.to_string(), Box::new(customer.clone()));
        self.changed(|generation| Change::Customer {
            generation,
            org,
            customer,
            key: stored,
        });
    }
}

/// A key's stored success as the state file keeps it; `None` while its request runs.
fn stored_key(org: &str, key: &IdempotencyKey, entry: &Entry) -> Option<StoredKey> {
    match &entry.state {
        EntryState::Done { status, body } => Some(StoredKey {
            org: org.to_string(),
            key: key.clone(),
            fingerprint: entry.fingerprint,
            first_used_at: entry.first_used_at,
            status: *status,
            body: String::from_utf8_lossy(body).into_owned(),
        }),
        EntryState::InProgress => None,
    }
}

/// Now moved by `offset` seconds; `None` outside years 0-9999 (or past chrono's range).
fn shifted(offset: i64) -> Option<DateTime<Utc>> {
    if offset.abs() > MAX_CLOCK_OFFSET_SECONDS {
        return None;
    }
    let now = Utc::now().checked_add_signed(Duration::try_seconds(offset)?)?;
    (0..=9999)
        .contains(&chrono::Datelike::year(&now))
        .then_some(now)
}

/// A successful write: the status and the exact body bytes that were answered (and stored).
#[derive(Debug, Clone)]
pub struct Written {
    pub status: u16,
    pub body: Bytes,
}

impl Sandbox {
    /// A sandbox for `config`, starting from `restored` when a state file was read.
    pub fn new(config: &SandboxConfig, restored: Option<StateFile>) -> Result<Self, RestoreError> {
        let mut inner = Inner {
            faults: config.faults,
            changes: config.state_file.is_some().then(Vec::new),
            ..Inner::default()
        };
        if let Some(state) = restored {
            inner.generation = state.generation;
            inner.clock_offset_seconds = state.clock_offset_seconds;
            for (org, customers) in state.orgs {
                let customers =
                    OrgCustomers::from_customers(customers).map_err(|source| RestoreError {
                        org: org.clone(),
                        source,
                    })?;
                inner.orgs.insert(org, customers);
            }
            inner.idempotency = IdempotencyTable::restore(state.idempotency.into_iter().map(|k| {
                (
                    k.org,
                    k.key,
                    k.fingerprint,
                    k.first_used_at,
                    k.status,
                    Bytes::from(k.body),
                )
            }));
        }
        for org in &config.orgs {
            inner.orgs.entry(org.name.clone()).or_default();
        }
        Ok(Sandbox {
            keys: config
                .orgs
                .iter()
                .map(|o| (o.key.clone(), o.name.clone()))
                .collect(),
            admin_token: config.admin_token.clone(),
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; if something ever did, the state is still
        // the best there is, so serving on beats wedging every later request.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The organisation an API key belongs to.
    pub fn org_for_key(&self, key: &str) -> Option<&str> {
        self.keys.get(&Secret::new(key)).map(String::as_str)
    }

    /// Whether `token` is the admin token (false when the admin API is off).
    pub fn is_admin_token(&self, token: &str) -> bool {
        self.admin_token
            .as_ref()
            .is_some_and(|t| t.expose() == token)
    }

    pub fn admin_enabled(&self) -> bool {
        self.admin_token.is_some()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now()
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Counts a request of `org` against the current rate limit.
    pub fn check_rate(&self, org: &str) -> Result<(), RetryAfter> {
        let mut inner = self.lock();
        let now_ms = inner.now().timestamp_millis();
        let limit = inner.faults.rate_limit;
        inner.rate.check(org, now_ms, limit)
    }

    /// Looks an Idempotency-Key up, claiming it when free.
    pub fn begin_idempotent(&self, org: &str, key: &IdempotencyKey, fp: Fingerprint) -> Begin {
        let mut inner = self.lock();
        let now = inner.now();
        let begin = inner.idempotency.begin(org, key, fp, now);
        if matches!(begin, Begin::Claimed(_)) {
            inner.generation += 1;
        }
        begin
    }

    /// Frees a key whose request failed.
    pub fn release(&self, org: &str, key: &IdempotencyKey, claim: ClaimId) {
        let mut inner = self.lock();
        inner.idempotency.release(org, key, claim);
        inner.generation += 1;
    }

    /// Purges expired keys; each request calls this so memory stays bounded even for
    /// requests without a key.
    pub fn purge_expired_keys(&self) {
        let mut inner = self.lock();
        let now = inner.now();
        if inner.idempotency.purge_expired(now) > 0 {
            inner.generation += 1;
        }
    }

    /// Decides and applies one upsert and stores its success under `claim`'s key, all under
    /// one lock. A conflict leaves the key to the caller to release.
    pub fn upsert(
        &self,
        org: &str,
        input: &CustomerInput,
        claim: Option<(&IdempotencyKey, ClaimId)>,
    ) -> Result<Written, ApiError> {
        let mut inner = self.lock();
        let now = inner.now();
        let outcome =
            inner
                .orgs
                .entry(org.to_string())
                .or_default()
                .upsert(input, Uuid::new_v4(), now);
        let (status, customer) = match outcome {
            UpsertOutcome::Written { status, customer } => (status, customer),
            UpsertOutcome::Conflict { id, external_id } => {
                return Err(ApiError::CustomerConflict {
                    message: format!(
                        "the request's email is held by customer {id}, which this request \
                         cannot update; resolve it in the app, then retry"
                    ),
                    conflicting_customer_id: id,
                    conflicting_external_id: external_id,
                });
            }
        };
        let body = customer_body(&customer)?;
        if let Some((key, claim)) = claim {
            inner
                .idempotency
                .complete(org, key, claim, status, body.clone());
        }
        inner.customer_changed(org, &customer, claim.map(|(key, _)| key));
        Ok(Written { status, body })
    }

    /// A customer of `org`.
    pub fn customer(&self, org: &str, id: &Uuid) -> Option<Customer> {
        self.lock().orgs.get(org).and_then(|o| o.get(id)).cloned()
    }

    /// Every customer of `org`, oldest first; `None` for an unknown organisation.
    pub fn customers(&self, org: &str) -> Option<Vec<Customer>> {
        self.lock()
            .orgs
            .get(org)
            .map(|o| o.list().cloned().collect())
    }

    /// Moves the clock forward; returns the new now, or refuses a move out of years 0-9999
    /// (leaving the clock as it was).
    pub fn advance_clock(&self, seconds: i64) -> Result<DateTime<Utc>, ClockOutOfRange> {
        let mut inner = self.lock();
        let offset = inner
            .clock_offset_seconds
            .checked_add(seconds)
            .ok_or(ClockOutOfRange)?;
        let now = shifted(offset).ok_or(ClockOutOfRange)?;
        inner.clock_offset_seconds = offset;
        inner.changed(|generation| Change::Clock {
            generation,
            clock_offset_seconds: offset,
        });
        Ok(now)
    }

    /// Sets a customer's KYC status (in whichever organisation holds it), as the back office
    /// would. VERIFIED fills the minimal verified identity; any other status clears it.
    pub fn set_kyc(&self, id: &Uuid, status: KycStatus) -> Option<Customer> {
        let mut inner = self.lock();
        let now = inner.now();
        let (org_name, org) = inner.orgs.iter_mut().find(|(_, o)| o.get(id).is_some())?;
        let org_name = org_name.clone();
        let mut customer = org.get(id)?.clone();
        customer.kyc_status = status;
        customer.verified_identity = (status == KycStatus::Verified).then(|| VerifiedIdentity {
            full_name: customer.full_name.clone(),
            birth_year: birth_year_for(id),
            country: customer
                .risk
                .country_of_residence
                .clone()
                .unwrap_or_else(|| "GB".to_string()),
        });
        customer.updated_at = now;
        org.replace(customer.clone());
        inner.customer_changed(&org_name, &customer, None);
        Some(customer)
    }

    /// The change counter the saver compares against what it last wrote.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The changes made since the last call (or snapshot), for the journal, and the
    /// generation they bring the state to.
    pub fn take_changes(&self) -> (u64, Vec<Change>) {
        let mut inner = self.lock();
        let changes = inner
            .changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        (inner.generation, changes)
    }

    /// A copy of everything the state file keeps, with the generation it reflects. Cloned
    /// under the lock, serialised by the caller outside it. The pending journal changes are
    /// dropped: the snapshot holds them.
    pub fn snapshot(&self) -> (u64, StateFile) {
        let mut inner = self.lock();
        if let Some(changes) = &mut inner.changes {
            changes.clear();
        }
        let orgs = inner
            .orgs
            .iter()
            .map(|(name, o)| (name.clone(), o.list().cloned().collect()))
            .collect();
        let keys = inner
            .idempotency
            .done_entries()
            .filter_map(|(org, key, entry)| stored_key(org, key, entry))
            .collect();
        (
            inner.generation,
            StateFile::new(inner.generation, inner.clock_offset_seconds, orgs, keys),
        )
    }
}

/// The exact bytes a customer is answered with.
pub fn customer_body(customer: &Customer) -> Result<Bytes, ApiError> {
    serde_json::to_vec(customer)
        .map(Bytes::from)
        .map_err(|e| ApiError::InternalError {
            message: format!("cannot encode the customer: {e}"),
        })
}

/// A plausible birth year (1940-2005) derived from the customer id, so it is stable across
/// calls and restarts without storing anything.
pub fn birth_year_for(id: &Uuid) -> u16 {
    1940 + (id.as_u128() % 66) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birth_years_are_plausible_and_stable() {
        for n in 0..500u128 {
            let id = Uuid::from_u128(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let y = birth_year_for(&id);
            assert!((1940..=2005).contains(&y), "{y}");
            assert_eq!(y, birth_year_for(&id));
        }
    }
}
