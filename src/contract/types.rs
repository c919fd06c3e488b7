//! The customer object as the API returns it, and the enums it is made of.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the `type` field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CustomerType {
    #[default]
    Individual,
    SoleTrader,
}

impl CustomerType {
    pub const ALL: [CustomerType; 2] = [CustomerType::Individual, CustomerType::SoleTrader];

    pub fn as_str(self) -> &'static str {
        match self {
            CustomerType::Individual => "INDIVIDUAL",
            CustomerType::SoleTrader => "SOLE_TRADER",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Where a customer is in Instant Compliance's KYC process. Never changed by an upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KycStatus {
    NotStarted,
    Pending,
    InProgress,
    Verified,
    Failed,
    NotRequired,
    AwaitingResubmission,
}

impl KycStatus {
    pub const ALL: [KycStatus; 7] = [
        KycStatus::NotStarted,
        KycStatus::Pending,
        KycStatus::InProgress,
        KycStatus::Verified,
        KycStatus::Failed,
        KycStatus::NotRequired,
        KycStatus::AwaitingResubmission,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KycStatus::NotStarted => "NOT_STARTED",
            KycStatus::Pending => "PENDING",
            KycStatus::InProgress => "IN_PROGRESS",
            KycStatus::Verified => "VERIFIED",
            KycStatus::Failed => "FAILED",
            KycStatus::NotRequired => "NOT_REQUIRED",
            KycStatus::AwaitingResubmission => "AWAITING_RESUBMISSION",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How the record entered Instant Compliance. Upserts create `INTEGRATION` customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AddedVia {
    AdminManual,
    AiExtracted,
    ContactPortal,
    BulkImport,
    Integration,
    System,
}

impl AddedVia {
    pub fn as_str(self) -> &'static str {
        match self {
            AddedVia::AdminManual => "ADMIN_MANUAL",
            AddedVia::AiExtracted => "AI_EXTRACTED",
            AddedVia::ContactPortal => "CONTACT_PORTAL",
            AddedVia::BulkImport => "BULK_IMPORT",
            AddedVia::Integration => "INTEGRATION",
            AddedVia::System => "SYSTEM",
        }
    }
}

/// Risk pre-answers as stored on a customer. Every key is always present, `null` when unanswered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    pub occupation: Option<String>,
    pub source_of_funds: Option<String>,
    pub country_of_residence: Option<String>,
    pub expected_monthly_volume: Option<u64>,
    pub is_pep: Option<bool>,
}

/// The deliberately minimal identity exposed once `kyc_status = VERIFIED`. A full date of birth
/// or a full address is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedIdentity {
    pub full_name: String,
    pub birth_year: u16,
    pub country: String,
}

/// The customer object returned by `POST /v1/customers` and `GET /v1/customers/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: Uuid,
    pub external_id: Option<String>,
    #[serde(rename = "type")]
    pub customer_type: CustomerType,
    pub full_name: String,
    pub email: Option<String>,
    pub trading_name: Option<String>,
    pub phone: Option<String>,
    pub risk: Risk,
    pub kyc_status: KycStatus,
    pub added_via: AddedVia,
    pub verified_identity: Option<VerifiedIdentity>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// Note shown with country validation errors.
pub const COUNTRY_CODES_NOTE: &str = "an ISO 3166-1 alpha-2 code in capitals, such as GB or DE";

/// RFC 3339 in UTC with second precision and a `Z` suffix, as the API writes timestamps.
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_serializes_every_member_with_api_spelling() {
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = Customer {
            id: Uuid::nil(),
            external_id: None,
            customer_type: CustomerType::SoleTrader,
            full_name: "Ada".into(),
            email: None,
            trading_name: Some("Ada's".into()),
            phone: None,
            risk: Risk::default(),
            kyc_status: KycStatus::NotStarted,
            added_via: AddedVia::Integration,
            verified_identity: None,
            created_at: t,
            updated_at: t,
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["type"], "SOLE_TRADER");
        assert_eq!(v["kyc_status"], "NOT_STARTED");
        assert_eq!(v["added_via"], "INTEGRATION");
        assert_eq!(v["created_at"], "2026-01-02T03:04:05Z");
        assert!(v["external_id"].is_null());
        assert!(v["verified_identity"].is_null());
        assert!(v["risk"]["is_pep"].is_null());
        let back: Customer = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn enums_round_trip_through_their_names() {
        for k in KycStatus::ALL {
            assert_eq!(KycStatus::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for t in CustomerType::ALL {
            assert_eq!(CustomerType::parse(t.as_str()), Some(t));
        }
        assert_eq!(CustomerType::parse("individual"), None);
    }
}
