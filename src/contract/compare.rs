//! A request body beside a customer, field by field: what the conflicts screen and
//! `icsync show` print for a 409, the local record against the existing customer it collided
//! with. Pure, like the rest of `contract`.
//!
//! A field *differs* when sending the body as an update of that customer would change it
//! (the upsert rules' own reading): an absent member leaves the stored value, so it never
//! differs; `null` differs only from a stored value; emails are compared normalised.

use super::input::{normalize_email, CustomerInput, Patch, RiskInput};
use super::types::Customer;

/// One field, both sides as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldComparison {
    /// The body's member name; risk answers as `risk.<key>`.
    pub field: &'static str,
    /// The local side: absent, `null`, or the value as text.
    pub local: Patch<String>,
    /// The customer's value as text, none when it has none.
    pub existing: Option<String>,
    pub differs: bool,
}

/// Every field a body can carry, in the contract's order, beside `customer`'s.
pub fn compare_with_customer(input: &CustomerInput, customer: &Customer) -> Vec<FieldComparison> {
    let risk = match &input.risk {
        Patch::Set(r) => r.clone(),
        // A `null` risk clears every answer; absent leaves them all.
        Patch::Null => RiskInput {
            occupation: Patch::Null,
            source_of_funds: Patch::Null,
            country_of_residence: Patch::Null,
            expected_monthly_volume: Patch::Null,
            is_pep: Patch::Null,
        },
        Patch::Absent => RiskInput::default(),
    };
    let text = |p: &Patch<String>| p.clone();
    let shown = |p: &Patch<u64>| map_patch(p, u64::to_string);
    let r = &customer.risk;
    vec![
        row(
            "full_name",
            Patch::Set(input.full_name.clone()),
            Some(customer.full_name.clone()),
            same_text,
        ),
        row(
            "email",
            text(&input.email),
            customer.email.clone(),
            |a, b| normalize_email(a) == normalize_email(b),
        ),
        row(
            "external_id",
            text(&input.external_id),
            customer.external_id.clone(),
            same_text,
        ),
        row(
            "type",
            map_patch(&input.customer_type, |t| t.as_str().to_string()),
            Some(customer.customer_type.as_str().to_string()),
            same_text,
        ),
        row(
            "trading_name",
            text(&input.trading_name),
            customer.trading_name.clone(),
            same_text,
        ),
        row(
            "phone",
            text(&input.phone),
            customer.phone.clone(),
            same_text,
        ),
        row(
            "risk.occupation",
            text(&risk.occupation),
            r.occupation.clone(),
            same_text,
        ),
        row(
            "risk.source_of_funds",
            text(&risk.source_of_funds),
            r.source_of_funds.clone(),
            same_text,
        ),
        row(
            "risk.country_of_residence",
            text(&risk.country_of_residence),
            r.country_of_residence.clone(),
            same_text,
        ),
        row(
            "risk.expected_monthly_volume",
            shown(&risk.expected_monthly_volume),
            r.expected_monthly_volume.map(|n| n.to_string()),
            same_text,
        ),
        row(
            "risk.is_pep",
            map_patch(&risk.is_pep, bool::to_string),
            r.is_pep.map(|b| b.to_string()),
            same_text,
        ),
    ]
}

/// The customer's fields a body cannot set, as (name, text): shown after the compared ones.
pub fn server_only_fields(customer: &Customer) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("id", customer.id.to_string()),
        ("kyc_status", customer.kyc_status.as_str().to_string()),
        ("added_via", customer.added_via.as_str().to_string()),
    ];
    if let Some(v) = &customer.verified_identity {
        fields.push((
            "verified_identity",
            format!("{}, born {}, {}", v.full_name, v.birth_year, v.country),
        ));
    }
    fields
}

fn same_text(a: &str, b: &str) -> bool {
    a == b
}

fn map_patch<T>(p: &Patch<T>, f: impl Fn(&T) -> String) -> Patch<String> {
    match p {
        Patch::Absent => Patch::Absent,
        Patch::Null => Patch::Null,
        Patch::Set(v) => Patch::Set(f(v)),
    }
}

fn row(
    field: &'static str,
    local: Patch<String>,
    existing: Option<String>,
    same: fn(&str, &str) -> bool,
) -> FieldComparison {
    let differs = match (&local, &existing) {
        (Patch::Absent, _) => false,
        (Patch::Null, stored) => stored.is_some(),
        (Patch::Set(_), None) => true,
        (Patch::Set(a), Some(b)) => !same(a, b),
    };
    FieldComparison {
        field,
        local,
        existing,
        differs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{parse_input, AddedVia, CustomerType, KycStatus, Risk};
    use chrono::{DateTime, Utc};
    use serde_json::json;
    use uuid::Uuid;

    fn customer() -> Customer {
        let t = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        Customer {
            id: Uuid::from_u128(9),
            external_id: Some("crm-old".into()),
            customer_type: CustomerType::Individual,
            full_name: "Ada Lovelace".into(),
            email: Some("Ada@Example.com".into()),
            trading_name: None,
            phone: Some("+44 20 1".into()),
            risk: Risk {
                occupation: Some("engineer".into()),
                ..Risk::default()
            },
            kyc_status: KycStatus::Verified,
            added_via: AddedVia::AdminManual,
            verified_identity: None,
            created_at: t,
            updated_at: t,
        }
    }

    fn differing(body: serde_json::Value) -> Vec<&'static str> {
        let input = parse_input(&body).unwrap();
        compare_with_customer(&input, &customer())
            .into_iter()
            .filter(|c| c.differs)
            .map(|c| c.field)
            .collect()
    }

    #[test]
    fn only_fields_an_update_would_change_differ() {
        // Email differs only in case: the same address. external_id is the conflict itself.
        assert_eq!(
            differing(
                json!({"full_name": "Ada Lovelace", "email": "ada@example.com",
                "external_id": "crm-new", "phone": "+44 20 2"})
            ),
            ["external_id", "phone"]
        );
    }

    #[test]
    fn absent_members_never_differ_and_null_differs_only_from_a_stored_value() {
        assert_eq!(
            differing(json!({"full_name": "Ada Lovelace", "phone": null, "trading_name": null})),
            ["phone"]
        );
        // A null risk clears the one stored answer.
        assert_eq!(
            differing(json!({"full_name": "Ada Lovelace", "risk": null})),
            ["risk.occupation"]
        );
        assert_eq!(
            differing(json!({"full_name": "Ada L", "type": "SOLE_TRADER",
                "risk": {"is_pep": false, "occupation": "engineer"}})),
            ["full_name", "type", "risk.is_pep"]
        );
    }

    #[test]
    fn every_body_field_is_compared_once_in_contract_order() {
        let input = parse_input(&json!({"full_name": "A"})).unwrap();
        let rows = compare_with_customer(&input, &customer());
        let names: Vec<_> = rows.iter().map(|c| c.field).collect();
        assert_eq!(names[..4], ["full_name", "email", "external_id", "type"]);
        assert_eq!(rows.len(), 11);
        assert_eq!(rows[1].local, Patch::Absent);
        assert_eq!(rows[1].existing.as_deref(), Some("Ada@Example.com"));
    }

    #[test]
    fn server_only_fields_name_the_kyc_state() {
        let fields = server_only_fields(&customer());
        assert_eq!(fields[1], ("kyc_status", "VERIFIED".to_string()));
        assert_eq!(fields[2], ("added_via", "ADMIN_MANUAL".to_string()));
    }
}
