//! The upsert matching rules as pure functions: [`decide_upsert`] says which customer a
//! request touches (or why it cannot), [`apply_upsert`] computes the customer afterwards.
//!
//! Rules, in order (the seed's table plus the decided email-uniqueness rule):
//! 1. `external_id` given and held by a customer: update it.
//! 2. `external_id` given, unheld, `email` matches a customer with no `external_id`: adopt it.
//! 3. `external_id` given, unheld, `email` matches a customer with another `external_id`: 409.
//! 4. No `external_id`, `email` matches: update that customer.
//! 5. Nothing matches: create.
//!
//! Emails are unique in an organisation: an update that would give its target an email
//! another customer holds is a 409 naming that other customer.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::input::{CustomerInput, Patch, RiskInput};
use super::types::{AddedVia, Customer, CustomerType, KycStatus, Risk};

/// What the matcher needs to know about an existing customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: Uuid,
    pub external_id: Option<String>,
}

/// Lookups over one organisation's customers.
pub trait CustomerIndex {
    /// The customer holding exactly this `external_id`.
    fn by_external_id(&self, external_id: &str) -> Option<Candidate>;
    /// The customer whose email, normalised, equals `normalized_email`.
    fn by_email(&self, normalized_email: &str) -> Option<Candidate>;
}

/// Which customer a request touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsertDecision {
    /// Update `id` (rules 1, 2 and 4); `adopted` when rule 2 gives it the request's external_id.
    Update { id: Uuid, adopted: bool },
    /// Create a new customer (rule 5): answered 201.
    Create,
    /// `customer_conflict` (rule 3, or email uniqueness), naming the existing customer.
    Conflict {
        id: Uuid,
        external_id: Option<String>,
    },
}

impl UpsertDecision {
    /// The HTTP status the decision is answered with.
    pub fn status(&self) -> u16 {
        match self {
            UpsertDecision::Update { .. } => 200,
            UpsertDecision::Create => 201,
            UpsertDecision::Conflict { .. } => 409,
        }
    }
}

pub fn decide_upsert(input: &CustomerInput, index: &impl CustomerIndex) -> UpsertDecision {
    let by_email = input.match_email().and_then(|e| index.by_email(&e));
    let conflict = |c: Candidate| UpsertDecision::Conflict {
        id: c.id,
        external_id: c.external_id,
    };
    let target = match input.external_id.as_set() {
        Some(external_id) => match index.by_external_id(external_id) {
            Some(c) => c.id,
            None => match by_email {
                Some(c) if c.external_id.is_none() => {
                    return UpsertDecision::Update {
                        id: c.id,
                        adopted: true,
                    }
                }
                Some(c) => return conflict(c),
                None => return UpsertDecision::Create,
            },
        },
        None => match by_email {
            Some(c) => {
                return UpsertDecision::Update {
                    id: c.id,
                    adopted: false,
                }
            }
            None => return UpsertDecision::Create,
        },
    };
    match by_email {
        Some(other) if other.id != target => conflict(other),
        _ => UpsertDecision::Update {
            id: target,
            adopted: false,
        },
    }
}

fn apply_risk(current: Risk, patch: &Patch<RiskInput>) -> Risk {
    match patch {
        Patch::Absent => current,
        Patch::Null => Risk::default(),
        Patch::Set(r) => Risk {
            occupation: r.occupation.apply(current.occupation),
            source_of_funds: r.source_of_funds.apply(current.source_of_funds),
            country_of_residence: r.country_of_residence.apply(current.country_of_residence),
            expected_monthly_volume: r
                .expected_monthly_volume
                .apply(current.expected_monthly_volume),
            is_pep: r.is_pep.apply(current.is_pep),
        },
    }
}

/// The customer after applying `input`: to `existing` on update, or as a new customer with
/// `new_id` on create. `kyc_status`, `added_via` and `verified_identity` are never changed by
/// an upsert; `type: null` resets the type to its default, `INDIVIDUAL`.
pub fn apply_upsert(
    existing: Option<&Customer>,
    input: &CustomerInput,
    new_id: Uuid,
    now: DateTime<Utc>,
) -> Customer {
    match existing {
        Some(c) => Customer {
            id: c.id,
            external_id: input.external_id.apply(c.external_id.clone()),
            customer_type: match input.customer_type {
                Patch::Absent => c.customer_type,
                Patch::Null => CustomerType::default(),
                Patch::Set(t) => t,
            },
            full_name: input.full_name.clone(),
            email: input.email.apply(c.email.clone()),
            trading_name: input.trading_name.apply(c.trading_name.clone()),
            phone: input.phone.apply(c.phone.clone()),
            risk: apply_risk(c.risk.clone(), &input.risk),
            kyc_status: c.kyc_status,
            added_via: c.added_via,
            verified_identity: c.verified_identity.clone(),
            created_at: c.created_at,
            updated_at: now,
        },
        None => Customer {
            id: new_id,
            external_id: input.external_id.apply(None),
            customer_type: input.customer_type.as_set().copied().unwrap_or_default(),
            full_name: input.full_name.clone(),
            email: input.email.apply(None),
            trading_name: input.trading_name.apply(None),
            phone: input.phone.apply(None),
            risk: apply_risk(Risk::default(), &input.risk),
            kyc_status: KycStatus::NotStarted,
            added_via: AddedVia::Integration,
            verified_identity: None,
            created_at: now,
            updated_at: now,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::input::{normalize_email, parse_input};
    use crate::contract::types::VerifiedIdentity;
    use serde_json::{json, Value};

    struct Org(Vec<Customer>);

    impl CustomerIndex for Org {
        fn by_external_id(&self, x: &str) -> Option<Candidate> {
            self.0
                .iter()
                .find(|c| c.external_id.as_deref() == Some(x))
                .map(candidate)
        }
        fn by_email(&self, e: &str) -> Option<Candidate> {
            self.0
                .iter()
                .find(|c| c.email.as_deref().map(normalize_email).as_deref() == Some(e))
                .map(candidate)
        }
    }

    fn candidate(c: &Customer) -> Candidate {
        Candidate {
            id: c.id,
            external_id: c.external_id.clone(),
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn customer(n: u128, external_id: Option<&str>, email: Option<&str>) -> Customer {
        let input = parse_input(&json!({
            "full_name": format!("Customer {n}"),
            "external_id": external_id,
            "email": email,
        }))
        .unwrap();
        apply_upsert(None, &input, Uuid::from_u128(n), t(0))
    }

    fn decide(org: &Org, body: Value) -> UpsertDecision {
        decide_upsert(&parse_input(&body).unwrap(), org)
    }

    fn org() -> Org {
        Org(vec![
            customer(1, Some("crm-1"), Some("one@x.io")),
            customer(2, None, Some("two@x.io")),
            customer(3, Some("crm-3"), None),
        ])
    }

    // Seed table, row 1.
    #[test]
    fn external_id_match_updates_that_customer() {
        assert_eq!(
            decide(&org(), json!({"full_name": "N", "external_id": "crm-1"})),
            UpsertDecision::Update {
                id: Uuid::from_u128(1),
                adopted: false
            }
        );
        // Matching is exact: another case is another identifier.
        assert_eq!(
            decide(&org(), json!({"full_name": "N", "external_id": "CRM-1"})),
            UpsertDecision::Create
        );
    }

    // Seed table, row 2.
    #[test]
    fn unheld_external_id_adopts_email_match_without_external_id() {
        let d = decide(
            &org(),
            json!({"full_name": "N", "external_id": "crm-2", "email": "TWO@x.io "}),
        );
        assert_eq!(
            d,
            UpsertDecision::Update {
                id: Uuid::from_u128(2),
                adopted: true
            }
        );
        assert_eq!(d.status(), 200);
    }

    // Seed table, row 3.
    #[test]
    fn unheld_external_id_with_email_of_another_external_id_conflicts_naming_it() {
        let d = decide(
            &org(),
            json!({"full_name": "N", "external_id": "crm-9", "email": "one@x.io"}),
        );
        assert_eq!(
            d,
            UpsertDecision::Conflict {
                id: Uuid::from_u128(1),
                external_id: Some("crm-1".into())
            }
        );
        assert_eq!(d.status(), 409);
    }

    // Seed table, row 4.
    #[test]
    fn email_only_updates_the_email_match_whatever_its_external_id() {
        assert_eq!(
            decide(&org(), json!({"full_name": "N", "email": "one@X.io"})),
            UpsertDecision::Update {
                id: Uuid::from_u128(1),
                adopted: false
            }
        );
        assert_eq!(
            decide(&org(), json!({"full_name": "N", "email": "two@x.io"})),
            UpsertDecision::Update {
                id: Uuid::from_u128(2),
                adopted: false
            }
        );
    }

    // Seed table, row 5.
    #[test]
    fn nothing_matching_creates() {
        for body in [
            json!({"full_name": "N"}),
            json!({"full_name": "N", "email": "new@x.io"}),
            json!({"full_name": "N", "external_id": "crm-new", "email": "new@x.io"}),
            json!({"full_name": "N", "external_id": null, "email": null}),
        ] {
            assert_eq!(
                decide(&org(), body.clone()),
                UpsertDecision::Create,
                "{body}"
            );
        }
        assert_eq!(UpsertDecision::Create.status(), 201);
    }

    #[test]
    fn external_id_match_changing_email_to_anothers_conflicts_naming_the_holder() {
        assert_eq!(
            decide(
                &org(),
                json!({"full_name": "N", "external_id": "crm-3", "email": "two@x.io"})
            ),
            UpsertDecision::Conflict {
                id: Uuid::from_u128(2),
                external_id: None
            }
        );
        // Keeping one's own email is no conflict.
        assert_eq!(
            decide(
                &org(),
                json!({"full_name": "N", "external_id": "crm-1", "email": "One@x.io"})
            ),
            UpsertDecision::Update {
                id: Uuid::from_u128(1),
                adopted: false
            }
        );
    }

    #[test]
    fn create_sets_defaults_and_integration_origin() {
        let input = parse_input(&json!({"full_name": "Ada", "risk": {"is_pep": true}})).unwrap();
        let c = apply_upsert(None, &input, Uuid::from_u128(9), t(5));
        assert_eq!(c.customer_type, CustomerType::Individual);
        assert_eq!(c.kyc_status, KycStatus::NotStarted);
        assert_eq!(c.added_via, AddedVia::Integration);
        assert_eq!(c.risk.is_pep, Some(true));
        assert_eq!(c.created_at, t(5));
        assert_eq!(c.updated_at, t(5));
        assert!(c.verified_identity.is_none());
    }

    #[test]
    fn update_leaves_absent_fields_clears_nulls_and_merges_risk() {
        let mut existing = customer(1, Some("crm-1"), Some("one@x.io"));
        existing.phone = Some("+44 1".into());
        existing.risk.occupation = Some("baker".into());
        existing.risk.is_pep = Some(false);
        existing.kyc_status = KycStatus::Verified;
        existing.verified_identity = Some(VerifiedIdentity {
            full_name: "Customer 1".into(),
            birth_year: 1980,
            country: "GB".into(),
        });
        let input = parse_input(&json!({
            "full_name": "Renamed", "email": null, "type": "SOLE_TRADER",
            "risk": {"is_pep": true, "occupation": null}
        }))
        .unwrap();
        let c = apply_upsert(Some(&existing), &input, Uuid::from_u128(99), t(60));
        assert_eq!(c.id, existing.id);
        assert_eq!(c.full_name, "Renamed");
        assert_eq!(c.email, None);
        assert_eq!(c.phone.as_deref(), Some("+44 1"));
        assert_eq!(c.external_id.as_deref(), Some("crm-1"));
        assert_eq!(c.customer_type, CustomerType::SoleTrader);
        assert_eq!(c.risk.is_pep, Some(true));
        assert_eq!(c.risk.occupation, None);
        assert_eq!(
            c.kyc_status,
            KycStatus::Verified,
            "upserts never change KYC"
        );
        assert_eq!(c.verified_identity, existing.verified_identity);
        assert_eq!(c.created_at, t(0));
        assert_eq!(c.updated_at, t(60));

        let reset = parse_input(&json!({"full_name": "R", "type": null, "risk": null})).unwrap();
        let c = apply_upsert(Some(&c), &reset, Uuid::nil(), t(61));
        assert_eq!(c.customer_type, CustomerType::Individual);
        assert_eq!(c.risk, Risk::default());
    }

    #[test]
    fn adoption_sets_the_external_id() {
        let existing = customer(2, None, Some("two@x.io"));
        let input =
            parse_input(&json!({"full_name": "N", "external_id": "crm-2", "email": "two@x.io"}))
                .unwrap();
        let c = apply_upsert(Some(&existing), &input, Uuid::nil(), t(1));
        assert_eq!(c.external_id.as_deref(), Some("crm-2"));
        assert_eq!(c.id, existing.id);
    }
}
