//! The Instant Compliance customer-upsert contract: one source of truth shared by the sync
//! client and the sandbox server.
//!
//! This module owns the wire types (request body, request input, customer object, error
//! bodies), field validation, the request fingerprint, the field-by-field comparison of a body with a customer, the Idempotency-Key rules and the upsert matching
//! rules. Everything here is pure: no I/O, no clock, no randomness (callers pass `now` and
//! fresh ids in). It depends on nothing else in the crate; every other module may depend on it.
//! `docs/api.md` is the prose version of what this module implements.

mod body;
mod compare;
mod error;
mod fingerprint;
mod idempotency;
mod input;
mod types;
mod upsert;

pub use body::{BodyError, RepeatedMember, RequestBody, MAX_BODY_BYTES, MAX_BODY_DEPTH};
pub use compare::{compare_with_customer, server_only_fields, FieldComparison};
pub use error::{ApiError, ErrorBody, ErrorKind, FieldError};
pub use fingerprint::{canonical_json, fingerprint, Fingerprint};
pub use idempotency::{IdempotencyKey, InvalidIdempotencyKey, IDEMPOTENCY_TTL_SECONDS};
pub use input::{normalize_email, parse_input, parse_request, CustomerInput, Patch, RiskInput};
pub use types::{
    AddedVia, Customer, CustomerType, KycStatus, Risk, VerifiedIdentity, COUNTRY_CODES_NOTE,
};
pub use upsert::{apply_upsert, decide_upsert, Candidate, CustomerIndex, UpsertDecision};

/// Maximum length of `full_name`, `email`, `external_id`, `trading_name`, and the free-text
/// risk answers, counted in Unicode scalar values.
pub const MAX_TEXT_CHARS: usize = 255;
/// Maximum length of `phone`, counted in Unicode scalar values.
pub const MAX_PHONE_CHARS: usize = 32;
