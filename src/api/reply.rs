//! What came back from the API, parsed without judging it: status, replay marker,
//! `Retry-After`, and the body as a customer, an error, or something unreadable. Pure
//! functions over status, header values and bytes, so they are tested without a socket.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::contract::{ApiError, Customer, ErrorBody};

/// One HTTP answer from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// The server replayed a stored answer (`Idempotent-Replayed: true`).
    pub replayed: bool,
    pub retry_after: Option<Duration>,
    pub body: ReplyBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// A 2xx with a customer object.
    Customer(Box<Customer>),
    /// A documented error body.
    Error(ApiError),
    /// Anything else, such as a proxy's HTML 502. The text describes the body (type, size,
    /// parse error) but never quotes it: a 2xx we cannot parse may hold customer data.
    Unreadable(String),
}

impl Reply {
    /// Parses a finished exchange. `content_type` and `body` describe the response body.
    pub fn from_parts(
        status: u16,
        replayed_header: Option<&str>,
        retry_after_header: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Reply {
        let replayed = replayed_header.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let retry_after = retry_after_header.and_then(|v| parse_retry_after(v, now));
        let body = if (200..300).contains(&status) {
            match serde_json::from_slice::<Customer>(body) {
                Ok(c) => ReplyBody::Customer(Box::new(c)),
                Err(e) => ReplyBody::Unreadable(describe(status, content_type, body, &e)),
            }
        } else {
            match serde_json::from_slice::<ErrorBody>(body) {
                Ok(b) => ReplyBody::Error(b.error),
                Err(e) => ReplyBody::Unreadable(describe(status, content_type, body, &e)),
            }
        };
        Reply {
            status,
            replayed,
            retry_after,
            body,
        }
    }

    pub fn api_error(&self) -> Option<&ApiError> {
        match &self.body {
            ReplyBody::Error(e) => Some(e),
            _ => None,
        }
    }
}

fn describe(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    err: &serde_json::Error,
) -> String {
    // serde_json's messages name fields and positions, never values.
    format!(
        "HTTP {status} with an unreadable body ({}, {} bytes): {err}",
        content_type.unwrap_or("no content type"),
        body.len()
    )
}

/// `Retry-After` as delay-seconds or an HTTP date. A date in the past means no wait.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is a subset of RFC 2822.
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ErrorKind;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn customer_json() -> serde_json::Value {
        json!({"id": "0190b0f2-7c1e-7000-8000-000000000001", "external_id": "X-1",
            "type": "INDIVIDUAL", "full_name": "Ada Lovelace", "email": null,
            "trading_name": null, "phone": null,
            "risk": {"occupation": null, "source_of_funds": null, "country_of_residence": null,
                     "expected_monthly_volume": null, "is_pep": null},
            "kyc_status": "NOT_STARTED", "added_via": "INTEGRATION", "verified_identity": null,
            "created_at": "2026-03-01T11:00:00Z", "updated_at": "2026-03-01T11:00:00Z"})
    }

    #[test]
    fn a_2xx_customer_with_replay_header_is_read() {
        let body = serde_json::to_vec(&customer_json()).unwrap();
        let r = Reply::from_parts(201, Some("true"), None, None, &body, now());
        assert!(r.replayed);
        assert_eq!(r.status, 201);
        match r.body {
            ReplyBody::Customer(c) => assert_eq!(c.full_name, "Ada Lovelace"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_error_body_and_retry_after_seconds_are_read() {
        let body = br#"{"error":{"type":"rate_limited","message":"slow down"}}"#;
        let r = Reply::from_parts(429, None, Some("7"), None, body, now());
        assert!(!r.replayed);
        assert_eq!(r.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(r.api_error().unwrap().kind(), ErrorKind::RateLimited);
    }

    #[test]
    fn an_html_502_is_unreadable_and_its_text_is_not_quoted() {
        let body = b"<html><body>Bad Gateway secret-ish</body></html>";
        let r = Reply::from_parts(502, None, None, Some("text/html"), body, now());
        match r.body {
            ReplyBody::Unreadable(text) => {
                assert!(text.contains("502") && text.contains("text/html"), "{text}");
                assert!(!text.contains("secret-ish"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_2xx_that_is_not_a_customer_is_unreadable_without_quoting_it() {
        let body = br#"{"full_name":"Ada Lovelace"}"#;
        let r = Reply::from_parts(200, None, None, Some("application/json"), body, now());
        match r.body {
            ReplyBody::Unreadable(text) => assert!(!text.contains("Lovelace"), "{text}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_accepts_an_http_date_and_clamps_the_past_to_zero() {
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(
            parse_retry_after(" 3 ", now()),
            Some(Duration::from_secs(3))
        );
    }
}
