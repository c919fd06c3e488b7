//! One organisation's customers and the two indexes the upsert rules match on (exact
//! external_id, normalised email). It owns keeping the indexes in step with the customers;
//! the matching rules themselves come from `contract` and are never restated here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::contract::{
    apply_upsert, decide_upsert, normalize_email, Candidate, Customer, CustomerIndex,
    CustomerInput, UpsertDecision,
};

#[derive(Debug, Default, Clone)]
pub struct OrgCustomers {
    customers: HashMap<Uuid, Customer>,
    /// Creation order, for listings "oldest first". Customers are never deleted.
    order: Vec<Uuid>,
    by_external_id: HashMap<String, Uuid>,
    by_email: HashMap<String, Uuid>,
}

/// Why stored customers cannot be loaded as one organisation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("customer {0} appears twice")]
    DuplicateId(Uuid),
    #[error("customers {0} and {1} share an external_id")]
    DuplicateExternalId(Uuid, Uuid),
    #[error("customers {0} and {1} share an email")]
    DuplicateEmail(Uuid, Uuid),
}

/// The result of an upsert: the customer as now stored and the status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsertOutcome {
    Written {
        status: u16,
        customer: Box<Customer>,
    },
    Conflict {
        id: Uuid,
        external_id: Option<String>,
    },
}

impl CustomerIndex for OrgCustomers {
    fn by_external_id(&self, external_id: &str) -> Option<Candidate> {
        self.by_external_id
            .get(external_id)
            .and_then(|id| self.candidate(*id))
    }

    fn by_email(&self, normalized_email: &str) -> Option<Candidate> {
        self.by_email
            .get(normalized_email)
            .and_then(|id| self.candidate(*id))
    }
}

impl OrgCustomers {
    fn candidate(&self, id: Uuid) -> Option<Candidate> {
        self.customers.get(&id).map(|c| Candidate {
            id: c.id,
            external_id: c.external_id.clone(),
        })
    }

    /// Rebuilds an organisation from stored customers, oldest first.
    pub fn from_customers(customers: Vec<Customer>) -> Result<Self, IndexError> {
        let mut org = OrgCustomers::default();
        for c in customers {
            if org.customers.contains_key(&c.id) {
                return Err(IndexError::DuplicateId(c.id));
            }
            if let Some(x) = &c.external_id {
                if let Some(other) = org.by_external_id.get(x) {
                    return Err(IndexError::DuplicateExternalId(*other, c.id));
                }
            }
            if let Some(e) = &c.email {
                if let Some(other) = org.by_email.get(&normalize_email(e)) {
                    return Err(IndexError::DuplicateEmail(*other, c.id));
                }
            }
            org.order.push(c.id);
            org.put(c);
        }
        Ok(org)
    }

    /// Stores `customer` (new or replacing the one with its id) and re-indexes it.
    fn put(&mut self, customer: Customer) {
        if let Some(old) = self.customers.get(&customer.id) {
            if let Some(x) = &old.external_id {
                self.by_external_id.remove(x);
            }
            if let Some(e) = &old.email {
                self.by_email.remove(&normalize_email(e));
            }
        }
        if let Some(x) = &customer.external_id {
            self.by_external_id.insert(x.clone(), customer.id);
        }
        if let Some(e) = &customer.email {
            self.by_email.insert(normalize_email(e), customer.id);
        }
        self.customers.insert(customer.id, customer);
    }

    /// Decides and applies one upsert. Callers hold the sandbox lock across this call, so the
    /// decision and the write are one atomic step: two racing creates with one email can
    /// never both see "no match".
    pub fn upsert(
        &mut self,
        input: &CustomerInput,
        new_id: Uuid,
        now: DateTime<Utc>,
    ) -> UpsertOutcome {
        let decision = decide_upsert(input, self);
        let status = decision.status();
        let customer = match decision {
            UpsertDecision::Conflict { id, external_id } => {
                return UpsertOutcome::Conflict { id, external_id }
            }
            UpsertDecision::Update { id, .. } => {
                apply_upsert(self.customers.get(&id), input, new_id, now)
            }
            UpsertDecision::Create => {
                self.order.push(new_id);
                apply_upsert(None, input, new_id, now)
            }
        };
        self.put(customer.clone());
        UpsertOutcome::Written {
            status,
            customer: Box::new(customer),
        }
    }

    pub fn get(&self, id: &Uuid) -> Option<&Customer> {
        self.customers.get(id)
    }

    /// Replaces a stored customer's back-office fields (KYC simulation). The caller must not
    /// change `email` or `external_id` this way; they are re-indexed anyway to stay safe.
    pub fn replace(&mut self, customer: Customer) {
        if self.customers.contains_key(&customer.id) {
            self.put(customer);
        }
    }

    /// Every customer, oldest first.
    pub fn list(&self) -> impl Iterator<Item = &Customer> {
        self.order.iter().filter_map(|id| self.customers.get(id))
    }

    pub fn len(&self) -> usize {
        self.customers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::parse_input;
    use serde_json::json;

    fn input(v: serde_json::Value) -> CustomerInput {
        parse_input(&v).unwrap()
    }
    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn indexes_follow_email_and_external_id_changes() {
        let mut org = OrgCustomers::default();
        let id = Uuid::from_u128(1);
        let out = org.upsert(
            &input(json!({"full_name": "A", "external_id": "x1", "email": "A@x.io"})),
            id,
            now(),
        );
        assert!(matches!(out, UpsertOutcome::Written { status: 201, .. }));
        org.upsert(
            &input(json!({"full_name": "A", "external_id": "x1", "email": "b@x.io"})),
            Uuid::from_u128(2),
            now(),
        );
        assert_eq!(org.by_email("a@x.io"), None);
        assert_eq!(org.by_email("b@x.io").map(|c| c.id), Some(id));
        // The old email is free again: a new customer may take it.
        let out = org.upsert(
            &input(json!({"full_name": "C", "email": "a@x.io"})),
            Uuid::from_u128(3),
            now(),
        );
        assert!(matches!(out, UpsertOutcome::Written { status: 201, .. }));
        assert_eq!(
            org.list().map(|c| c.id).collect::<Vec<_>>(),
            [id, Uuid::from_u128(3)]
        );
    }

    #[test]
    fn loading_refuses_duplicate_emails() {
        let mut org = OrgCustomers::default();
        org.upsert(
            &input(json!({"full_name": "A", "email": "a@x.io"})),
            Uuid::from_u128(1),
            now(),
        );
        let mut twin = org.get(&Uuid::from_u128(1)).unwrap().clone();
        twin.id = Uuid::from_u128(2);
        twin.email = Some("A@X.io".into());
        let all: Vec<_> = org.list().cloned().chain([twin]).collect();
        assert_eq!(
            OrgCustomers::from_customers(all).unwrap_err(),
            IndexError::DuplicateEmail(Uuid::from_u128(1), Uuid::from_u128(2))
        );
    }
}
