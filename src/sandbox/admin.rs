//! The admin API under `/_sandbox/`: list an organisation's customers, change faults live,
//! move the clock, and set a customer's KYC status as the back office would.
//!
//! It exists only with `--admin-token` and answers only `Authorization: Bearer <token>`;
//! anything else gets the very `not_found` body an unknown route gets, and the token is
//! checked before the method so a wrong method does not reveal the API either. Faults never
//! apply here.

// Early returns carry the finished `Response`, the idiomatic axum shape; it is large, but
// these run once per request, never in a hot loop.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::config::Faults;
use super::http::{self, simple};
use super::state::Sandbox;
use crate::contract::{ApiError, ErrorKind, FieldError, KycStatus};

/// Longest latency the admin API accepts, so a typo cannot hang every request for a day.
const MAX_LATENCY_MS: u64 = 600_000;

/// Checks the admin token, then the method; the answer to give when either is wrong.
fn authorize(sandbox: &Sandbox, request: &Request, allowed: &[Method]) -> Result<(), Response> {
    let admitted = sandbox.admin_enabled()
        && http::bearer_token(request.headers()).is_some_and(|t| sandbox.is_admin_token(t));
    if !admitted {
        return Err(http::not_found());
    }
    if !allowed.contains(request.method()) {
        let mut r = simple(ErrorKind::InvalidRequest, "method not allowed on this path");
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return Err(r);
    }
    Ok(())
}

/// The JSON object of an admin request body, or the 400/422 answer.
async fn object_body(request: Request) -> Result<Map<String, Value>, Response> {
    let bytes = http::read_body(request.into_body()).await?;
    match http::parse_json(&bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(http::error(ApiError::validation(vec![FieldError::new(
            "body",
            "must be a JSON object",
        )]))),
    }
}

#[derive(Deserialize)]
struct OrgQuery {
    org: Option<String>,
}

/// `GET /_sandbox/customers?org=NAME`: the organisation's customers, oldest first.
pub async fn customers(State(sandbox): State<Arc<Sandbox>>, request: Request) -> Response {
    if let Err(r) = authorize(&sandbox, &request, &[Method::GET]) {
        return r;
    }
    let org = axum::extract::Query::<OrgQuery>::try_from_uri(request.uri())
        .ok()
        .and_then(|q| q.0.org);
    let Some(org) = org else {
        return simple(
            ErrorKind::InvalidRequest,
            "the org query parameter is required: /_sandbox/customers?org=NAME",
        );
    };
    match sandbox.customers(&org) {
        Some(list) => http::json(200, &list),
        None => http::not_found(),
    }
}

fn faults_json(f: &Faults) -> Value {
    json!({
        "fail_rate": f.fail_rate,
        "drop_rate": f.drop_rate,
        "latency_ms": f.latency_ms,
        "rate_limit": f.rate_limit,
    })
}

/// Applies a faults patch to `current`, reporting every bad member at once.
fn patch_faults(
    mut current: Faults,
    patch: &Map<String, Value>,
) -> Result<Faults, Vec<FieldError>> {
    let mut errors = Vec::new();
    for (name, value) in patch {
        match name.as_str() {
            "fail_rate" | "drop_rate" => match value.as_f64() {
                Some(f) if (0.0..=1.0).contains(&f) => {
                    if name == "fail_rate" {
                        current.fail_rate = f;
                    } else {
                        current.drop_rate = f;
                    }
                }
                _ => errors.push(FieldError::new(name, "must be a number between 0 and 1")),
            },
            "latency_ms" => match value.as_u64() {
                Some(ms) if ms <= MAX_LATENCY_MS => current.latency_ms = ms,
                _ => errors.push(FieldError::new(
                    name,
                    format!("must be a whole number of milliseconds, 0 to {MAX_LATENCY_MS}"),
                )),
            },
            "rate_limit" => match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => current.rate_limit = n,
                None => errors.push(FieldError::new(
                    name,
                    "must be a whole number of requests per second (0 = off)",
                )),
            },
            _ => errors.push(FieldError::new(name, "unknown field")),
        }
    }
    if errors.is_empty() {
        Ok(current)
    } else {
        Err(errors)
    }
}

/// `POST /_sandbox/faults` changes any of the faults live; `GET` reads them. Both answer
/// the faults now in force.
pub async fn faults(State(sandbox): State<Arc<Sandbox>>, request: Request) -> Response {
    if let Err(r) = authorize(&sandbox, &request, &[Method::GET, Method::POST]) {
        return r;
    }
    if request.method() == Method::GET {
        return http::json(200, &faults_json(&sandbox.faults()));
    }
    let patch = match object_body(request).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match patch_faults(sandbox.faults(), &patch) {
        Ok(f) => {
            sandbox.set_faults(f);
            http::json(200, &faults_json(&f))
        }
        Err(errors) => http::error(ApiError::validation(errors)),
    }
}

/// `POST /_sandbox/clock {"advance_seconds": N}`: moves the sandbox clock forward.
pub async fn clock(State(sandbox): State<Arc<Sandbox>>, request: Request) -> Response {
    if let Err(r) = authorize(&sandbox, &request, &[Method::POST]) {
        return r;
    }
    let body = match object_body(request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut errors: Vec<FieldError> = body
        .keys()
        .filter(|k| *k != "advance_seconds")
        .map(|k| FieldError::new(k, "unknown field"))
        .collect();
    let seconds = body
        .get("advance_seconds")
        .and_then(Value::as_i64)
        .filter(|s| *s >= 0);
    if seconds.is_none() {
        errors.insert(
            0,
            FieldError::new(
                "advance_seconds",
                "required: a whole number of seconds, 0 or more",
            ),
        );
    }
    match seconds {
        Some(s) if errors.is_empty() => match sandbox.advance_clock(s) {
            Ok(now) => http::json(
                200,
                &json!({"now": now.to_rfc3339_opts(SecondsFormat::Secs, true)}),
            ),
            Err(e) => http::error(ApiError::validation(vec![FieldError::new(
                "advance_seconds",
                e.to_string(),
            )])),
        },
        _ => http::error(ApiError::validation(errors)),
    }
}

/// `POST /_sandbox/customers/{id}/kyc {"kyc_status": "..."}`: any organisation's customer.
pub async fn kyc(
    State(sandbox): State<Arc<Sandbox>>,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    if let Err(r) = authorize(&sandbox, &request, &[Method::POST]) {
        return r;
    }
    let Some(id) = id.ok().and_then(|Path(id)| Uuid::parse_str(&id).ok()) else {
        return http::not_found();
    };
    let body = match object_body(request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut errors: Vec<FieldError> = body
        .keys()
        .filter(|k| *k != "kyc_status")
        .map(|k| FieldError::new(k, "unknown field"))
        .collect();
    let status = body
        .get("kyc_status")
        .and_then(Value::as_str)
        .and_then(KycStatus::parse);
    if status.is_none() {
        let names: Vec<_> = KycStatus::ALL.iter().map(|k| k.as_str()).collect();
        errors.insert(
            0,
            FieldError::new(
                "kyc_status",
                format!("required: one of {}", names.join(", ")),
            ),
        );
    }
    match status {
        Some(s) if errors.is_empty() => match sandbox.set_kyc(&id, s) {
            Some(customer) => http::json(200, &customer),
            None => http::not_found(),
        },
        _ => http::error(ApiError::validation(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_faults_patch_changes_only_what_it_names() {
        let start = Faults {
            fail_rate: 0.1,
            drop_rate: 0.2,
            latency_ms: 5,
            rate_limit: 7,
        };
        let f = patch_faults(start, &patch(json!({"drop_rate": 0, "rate_limit": 0}))).unwrap();
        assert_eq!(
            f,
            Faults {
                drop_rate: 0.0,
                rate_limit: 0,
                ..start
            }
        );
    }

    #[test]
    fn bad_fault_values_are_all_reported() {
        let e = patch_faults(
            Faults::default(),
            &patch(json!({"fail_rate": 1.5, "latency_ms": -1, "rate_limit": "x", "typo": 1})),
        )
        .unwrap_err();
        let mut fields: Vec<_> = e.iter().map(|f| f.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["fail_rate", "latency_ms", "rate_limit", "typo"]);
    }
}
