//! The public API: `POST /v1/customers` and `GET /v1/customers/{id}`, plus the router that
//! also mounts the admin API and answers unknown routes (404 `not_found`) and wrong methods
//! (405 with an `invalid_request` body) in the contract's error shape.
//!
//! The create-or-upsert steps run in a fixed order, each a plain early return, so the order
//! is readable top to bottom: fail-rate, auth, rate limit, content type, Idempotency-Key,
//! JSON (a repeated member name answered 422 here), idempotency lookup and claim, latency (spent while the key is held), validation,
//! decide-and-apply, store, drop-rate. Faults apply to the public API only, never to admin.

// Early returns carry the finished `Response`, the idiomatic axum shape; it is large, but
// these run once per request, never in a hot loop.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use uuid::Uuid;

use super::admin;
use super::http::{self, error, error_retry_after, simple};
use super::idempotency::{Begin, ClaimId};
use super::server::ConnectionDrop;
use super::state::{customer_body, Sandbox};
use crate::contract::{fingerprint, parse_request, ApiError, ErrorKind, IdempotencyKey};

/// The whole HTTP surface.
pub fn router(sandbox: Arc<Sandbox>) -> Router {
    Router::new()
        .route("/v1/customers", post(create_or_upsert))
        .route("/v1/customers/{id}", get(get_customer))
        .route("/_sandbox/customers", any(admin::customers))
        .route("/_sandbox/faults", any(admin::faults))
        .route("/_sandbox/clock", any(admin::clock))
        .route("/_sandbox/customers/{id}/kyc", any(admin::kyc))
        .fallback(|| async { http::not_found() })
        .method_not_allowed_fallback(|| async {
            let mut r = simple(ErrorKind::InvalidRequest, "method not allowed on this path");
            *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
            r
        })
        .with_state(sandbox)
}

fn roll(rate: f64) -> bool {
    rate > 0.0 && rand::random::<f64>() < rate
}

fn unavailable() -> Response {
    simple(
        ErrorKind::Unavailable,
        "the service is temporarily unavailable (sandbox fail-rate); retry with the same key",
    )
}

/// Rolls the drop-rate once the request is fully executed: on a hit the connection is closed
/// with no response at all, as when a reply is lost after the server committed.
async fn deliver(sandbox: &Sandbox, drop: Option<ConnectionDrop>, response: Response) -> Response {
    match drop {
        Some(drop) if roll(sandbox.faults().drop_rate) => drop.close_without_response().await,
        _ => response,
    }
}

async fn latency(sandbox: &Sandbox) {
    let ms = sandbox.faults().latency_ms;
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// The caller's organisation, or the 401 / 429 answer.
fn admit(sandbox: &Sandbox, headers: &HeaderMap) -> Result<String, Response> {
    let org = http::bearer_token(headers)
        .and_then(|key| sandbox.org_for_key(key))
        .ok_or_else(|| {
            simple(
                ErrorKind::Unauthorized,
                "missing, malformed or unknown API key: send Authorization: Bearer <key>",
            )
        })?
        .to_string();
    sandbox.check_rate(&org).map_err(|retry| {
        error_retry_after(
            ApiError::simple(
                ErrorKind::RateLimited,
                "too many requests for this organisation; retry after the Retry-After delay",
            ),
            retry.0,
        )
    })?;
    Ok(org)
}

/// The request's Idempotency-Key: absent, or one well-formed header. Two or more headers are
/// refused rather than one picked: the IETF draft forbids a client to send more than one,
/// and which one a proxy keeps is anyone's guess.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, Response> {
    let invalid = |why: String| simple(ErrorKind::InvalidRequest, why);
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid(
            "Idempotency-Key must be sent at most once; send one header with one key".into(),
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| invalid("Idempotency-Key must be visible ASCII characters".into()))?;
    IdempotencyKey::new(text)
        .map(Some)
        .map_err(|e| invalid(e.to_string()))
}

/// Holds a claimed key while its request runs; releases it unless the success was stored,
/// including when the request is abandoned mid-way (client gone, shutdown), so a key is never
/// left "in progress" for a day.
struct Claim {
    sandbox: Arc<Sandbox>,
    org: String,
    key: IdempotencyKey,
    id: ClaimId,
    stored: bool,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.stored {
            self.sandbox.release(&self.org, &self.key, self.id);
        }
    }
}

async fn create_or_upsert(State(sandbox): State<Arc<Sandbox>>, request: Request) -> Response {
    if roll(sandbox.faults().fail_rate) {
        return unavailable();
    }
    let drop = request.extensions().get::<ConnectionDrop>().cloned();
    sandbox.purge_expired_keys();
    let response = execute_upsert(&sandbox, request).await;
    deliver(&sandbox, drop, response).await
}

async fn execute_upsert(sandbox: &Arc<Sandbox>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let org = match admit(sandbox, &parts.headers) {
        Ok(org) => org,
        Err(r) => return r,
    };
    if !http::is_json_content(&parts.headers) {
        return simple(
            ErrorKind::InvalidRequest,
            "Content-Type must be application/json",
        );
    }
    let key = match idempotency_key(&parts.headers) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let body = match http::read_body(body).await {
        Ok(bytes) => match http::parse_request_body(&bytes) {
            Ok(body) => body,
            Err(r) => return r,
        },
        Err(r) => return r,
    };
    // A member name given twice has no one meaning, so neither has its fingerprint: the body
    // is refused (with every other bad field) before the key is looked at or claimed.
    if body.has_repeated_members() {
        if let Err(fields) = parse_request(&body) {
            return error(ApiError::validation(fields));
        }
    }
    let value = &body.value;

    let mut claim = None;
    if let Some(key) = key {
        match sandbox.begin_idempotent(&org, &key, fingerprint(value)) {
            Begin::Replay { status, body } => return replay(status, body),
            Begin::Conflict => {
                return simple(
                    ErrorKind::IdempotencyConflict,
                    "this Idempotency-Key was first used with a different request body",
                )
            }
            Begin::InProgress => {
                return error_retry_after(
                    ApiError::simple(
                        ErrorKind::IdempotencyInProgress,
                        "a request with this Idempotency-Key is still executing; retry shortly",
                    ),
                    1,
                )
            }
            Begin::Claimed(id) => {
                claim = Some(Claim {
                    sandbox: Arc::clone(sandbox),
                    org: org.clone(),
                    key,
                    id,
                    stored: false,
                })
            }
        }
    }

    latency(sandbox).await;

    let input = match parse_request(&body) {
        Ok(input) => input,
        Err(fields) => return error(ApiError::validation(fields)),
    };
    match sandbox.upsert(&org, &input, claim.as_ref().map(|c| (&c.key, c.id))) {
        Ok(written) => {
            if let Some(c) = claim.as_mut() {
                c.stored = true;
            }
            http::json_bytes(written.status, written.body)
        }
        Err(e) => error(e),
    }
}

fn replay(status: u16, body: Bytes) -> Response {
    let mut response = http::json_bytes(status, body);
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

async fn get_customer(
    State(sandbox): State<Arc<Sandbox>>,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    if roll(sandbox.faults().fail_rate) {
        return unavailable();
    }
    let drop = request.extensions().get::<ConnectionDrop>().cloned();
    let response = match admit(&sandbox, request.headers()) {
        Err(r) => r,
        Ok(org) => {
            latency(&sandbox).await;
            // An id that does not even decode (bad percent-encoding) is as absent as any other.
            let customer = id
                .ok()
                .and_then(|Path(id)| Uuid::parse_str(&id).ok())
                .and_then(|id| sandbox.customer(&org, &id));
            match customer.map(|c| customer_body(&c)) {
                Some(Ok(body)) => http::json_bytes(200, body),
                Some(Err(e)) => error(e),
                None => http::not_found(),
            }
        }
    };
    deliver(&sandbox, drop, response).await
}
