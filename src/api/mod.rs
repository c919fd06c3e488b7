//! The HTTP client for the two Instant Compliance endpoints the product uses: the customer
//! upsert and the customer read.
//!
//! This module owns the reqwest client (rustls), the API key and its redaction, the refusal
//! of plain http to non-loopback hosts, and the translation of an HTTP exchange into a
//! [`Reply`] or a [`Transport`] failure. It does not decide what an outcome means for a record:
//! that is `sync::policy`'s job. It never touches the store.

mod client;
mod key;
mod reply;

pub use client::{ApiClient, ApiClientError, ApiTimeouts, InsecureHttp, Probe, Transport};
pub use key::{configured as configured_key, ApiKey, InvalidApiKey};
pub use reply::{parse_retry_after, Reply, ReplyBody};
