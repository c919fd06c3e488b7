//! Small HTTP helpers shared by the public and admin routes: error responses in the
//! contract's body shape, verbatim JSON bodies, bearer-token and header parsing, and body
//! reading with a size cap. No state, no routing.

// Early returns carry the finished `Response`, the idiomatic axum shape; it is large, but
// these run once per request, never in a hot loop.
#![allow(clippy::result_large_err)]

use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;

use crate::contract::{ApiError, ErrorKind, RequestBody, MAX_BODY_BYTES};

/// A response with `status` and exactly `body` as a JSON document.
pub fn json_bytes(status: u16, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `value` serialised as a JSON response.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(status, Bytes::from(bytes)),
        Err(e) => error(ApiError::InternalError {
            message: format!("cannot encode the response: {e}"),
        }),
    }
}

/// The contract's error body with the error's status.
pub fn error(err: ApiError) -> Response {
    let status = err.status();
    json(status, &err.into_body())
}

/// An error carrying `Retry-After: seconds`.
pub fn error_retry_after(err: ApiError, seconds: u64) -> Response {
    let mut response = error(err);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

pub fn simple(kind: ErrorKind, message: impl Into<String>) -> Response {
    error(ApiError::simple(kind, message))
}

/// The one `not_found` answer for unknown routes, absent customers and the hidden admin API,
/// so none of them can be told apart.
pub fn not_found() -> Response {
    simple(ErrorKind::NotFound, "no such resource")
}

/// The token of an `Authorization: Bearer <token>` header; `None` when missing or malformed.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    let well_formed = scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_graphic());
    well_formed.then_some(token)
}

/// Whether the request declares a JSON body (`application/json`, any parameters).
pub fn is_json_content(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads a whole body, refusing more than [`MAX_BODY_BYTES`].
pub async fn read_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            simple(
                ErrorKind::InvalidRequest,
                format!("the request body is unreadable or larger than {MAX_BODY_BYTES} bytes"),
            )
        })
}

/// Parses a customer body as JSON, recording repeated member names; malformed JSON is
/// `400 invalid_request`, with a position but never the content.
pub fn parse_request_body(bytes: &[u8]) -> Result<RequestBody, Response> {
    RequestBody::parse(bytes).map_err(|e| simple(ErrorKind::InvalidRequest, e.to_string()))
}

/// Parses a body as JSON; malformed JSON is `400 invalid_request`. serde_json's message
/// gives a position, never the content, so no customer data is echoed.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, Response> {
    serde_json::from_slice(bytes).map_err(|e| {
        simple(
            ErrorKind::InvalidRequest,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer ic_test_x")])),
            Some("ic_test_x")
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer ic_test_x")])),
            Some("ic_test_x")
        );
        assert_eq!(bearer_token(&headers(&[])), None);
        assert_eq!(bearer_token(&headers(&[("authorization", "Bearer")])), None);
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer ")])),
            None
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Basic ic_test_x")])),
            None
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer a b")])),
            None
        );
    }

    #[test]
    fn json_content_type_allows_parameters_only() {
        assert!(is_json_content(&headers(&[(
            "content-type",
            "application/json"
        )])));
        assert!(is_json_content(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )])));
        assert!(!is_json_content(&headers(&[(
            "content-type",
            "text/plain"
        )])));
        assert!(!is_json_content(&headers(&[(
            "content-type",
            "application/jsonx"
        )])));
        assert!(!is_json_content(&headers(&[])));
    }
}
