//! The reqwest client: one connection pool for the process, rustls for TLS, the key sent as a
//! sensitive `Authorization` header, explicit connect and request timeouts, and no redirects
//! (an API that redirects is misconfigured, and following one could carry the key elsewhere).

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;
use uuid::Uuid;

use super::key::ApiKey;
use super::reply::Reply;
use crate::contract::IdempotencyKey;

/// A larger body is not an answer from this API; reading stops there.
const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiTimeouts {
    /// Establishing the TCP and TLS connection.
    pub connect: Duration,
    /// The whole exchange, from sending to the last byte of the body.
    pub request: Duration,
}

impl Default for ApiTimeouts {
    fn default() -> Self {
        ApiTimeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

/// Whether plain `http://` is accepted for a host that is not loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InsecureHttp {
    /// Only `https://`, or `http://` to localhost, 127.0.0.0/8 or ::1.
    #[default]
    Refuse,
    /// The `allow_insecure_http = true` escape hatch.
    Allow,
}

/// Why a client could not be built. No variant carries the key.
#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    #[error("invalid API URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("refusing plain http to {host}: the API key would travel unencrypted (use https://, or set allow_insecure_http = true)")]
    InsecureHttp { host: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// A request that got no HTTP answer. Messages come from the network stack and never include
/// the key (it is only in a header, and headers are not part of reqwest's error text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Transport {
    #[error("request timed out")]
    Timeout,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Other(String),
}

/// The answer to [`ApiClient::probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub status: u16,
    /// The `Date` header as sent (an HTTP date), if any.
    pub date: Option<String>,
}

/// The API client. Cheap to clone: clones share the connection pool and the key, so a key set
/// on one is used by all.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    customers_url: Url,
    key: Arc<RwLock<ApiKey>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("customers_url", &self.customers_url.as_str())
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    pub fn new(
        base_url: &str,
        key: ApiKey,
        timeouts: ApiTimeouts,
        insecure_http: InsecureHttp,
    ) -> Result<ApiClient, ApiClientError> {
        let customers_url = customers_url(base_url, insecure_http)?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("icsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiClientError::Build(error_text(&e)))?;
        Ok(ApiClient {
            http,
            customers_url,
            key: Arc::new(RwLock::new(key)),
        })
    }

    /// The API's host, with the port when it is not the scheme's default: never a path,
    /// credentials or the key, so it can name the API in status and messages.
    pub fn host(&self) -> String {
        let host = self.customers_url.host_str().unwrap_or_default();
        match self.customers_url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }

    /// Replaces the key for every clone of this client; requests already sent keep theirs.
    pub fn set_key(&self, key: ApiKey) {
        // A poisoned lock only means a panic elsewhere while holding it; the key inside is
        // still a whole value, so it is safe to overwrite.
        let mut guard = self.key.write().unwrap_or_else(|e| e.into_inner());
        *guard = key;
    }

    /// The key as shown to people: `ic_…` and at most its last four characters.
    pub fn key_redacted(&self) -> String {
        self.key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .redacted()
    }

    /// `POST /v1/customers` with the given body and Idempotency-Key.
    pub async fn upsert(
        &self,
        body: &serde_json::Value,
        key: &IdempotencyKey,
    ) -> Result<Reply, Transport> {
        let idem = HeaderValue::from_str(key.as_str())
            .map_err(|_| Transport::Other("Idempotency-Key is not a valid header value".into()))?;
        let request = self
            .http
            .post(self.customers_url.clone())
            .headers(self.auth_headers()?)
            .header("Idempotency-Key", idem)
            .json(body);
        self.exchange(request).await
    }

    /// `GET /v1/customers/{id}`.
    pub async fn get_customer(&self, id: Uuid) -> Result<Reply, Transport> {
        let mut url = self.customers_url.clone();
        url.path_segments_mut()
            .map_err(|_| Transport::Other("API URL cannot take a path".into()))?
            .push(&id.to_string());
        let request = self.http.get(url).headers(self.auth_headers()?);
        self.exchange(request).await
    }

    /// A harmless authenticated request for `icsync doctor`: a read of the all-zero customer
    /// id. Returns the status (404 means the key was accepted, 401 that it was refused) and the
    /// server's `Date` header, to measure clock skew. The body is not read.
    pub async fn probe(&self) -> Result<Probe, Transport> {
        let mut url = self.customers_url.clone();
        url.path_segments_mut()
            .map_err(|_| Transport::Other("API URL cannot take a path".into()))?
            .push(&Uuid::nil().to_string());
        let response = self
            .http
            .get(url)
            .headers(self.auth_headers()?)
            .send()
            .await
            .map_err(transport)?;
        let date = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Probe {
            status: response.status().as_u16(),
            date,
        })
    }

    fn auth_headers(&self) -> Result<HeaderMap, Transport> {
        let key = self.key.read().unwrap_or_else(|e| e.into_inner());
        let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
            .map_err(|_| Transport::Other("the API key is not a valid header value".into()))?;
        // Keeps the value out of hyper's and reqwest's Debug output.
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        Ok(headers)
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Reply, Transport> {
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Transport::Other(format!(
                    "HTTP {status} with a body over {MAX_BODY_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply::from_parts(
            status,
            header("idempotent-replayed"),
            header(RETRY_AFTER.as_str()),
            header(CONTENT_TYPE.as_str()),
            &body,
            Utc::now(),
        ))
    }
}

/// Connection failures come first: a connect timeout means the host is unreachable (offline),
/// not that a request it started is slow.
fn transport(e: reqwest::Error) -> Transport {
    if e.is_connect() {
        Transport::Connect(error_text(&e))
    } else if e.is_timeout() {
        Transport::Timeout
    } else {
        Transport::Other(error_text(&e))
    }
}

/// The error and its causes on one line ("error sending request: connection refused").
fn error_text(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Checks the scheme and host and returns `{base}/v1/customers`.
fn customers_url(base_url: &str, insecure_http: InsecureHttp) -> Result<Url, ApiClientError> {
    let invalid = |reason: &str| ApiClientError::InvalidUrl {
        url: crate::config::redact_credentials(base_url),
        reason: reason.to_string(),
    };
    let mut url = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in the URL are not supported"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the API URL takes no query or fragment"));
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            let host = url.host_str().ok_or_else(|| invalid("no host"))?;
            if !is_loopback(host) && insecure_http == InsecureHttp::Refuse {
                return Err(ApiClientError::InsecureHttp {
                    host: host.to_string(),
                });
            }
        }
        _ => return Err(invalid("the scheme must be https or http")),
    }
    if url.cannot_be_a_base() {
        return Err(invalid("not a base URL"));
    }
    // `join` replaces the last path segment unless the path ends in a slash.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.join("v1/customers")
        .map_err(|e| invalid(&e.to_string()))
}

/// `host` as `Url::host_str` gives it: IPv6 addresses in brackets, names lower-cased.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(base: &str) -> Result<String, ApiClientError> {
        customers_url(base, InsecureHttp::Refuse).map(|u| u.to_string())
    }

    #[test]
    fn plain_http_is_accepted_only_for_loopback_hosts() {
        for ok in [
            "http://localhost:8080",
            "http://127.0.0.1:1",
            "http://127.9.9.9",
            "http://[::1]:3000",
            "https://api.example.com",
        ] {
            assert!(url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://api.example.com",
            "http://10.0.0.1",
            "http://[fe80::1]",
            "http://localhost.example.com",
        ] {
            assert!(
                matches!(url(refused), Err(ApiClientError::InsecureHttp { .. })),
                "{refused}"
            );
        }
        assert!(customers_url("http://api.example.com", InsecureHttp::Allow).is_ok());
    }

    #[test]
    fn other_schemes_and_embedded_credentials_are_refused() {
        assert!(matches!(
            url("ftp://localhost"),
            Err(ApiClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            url("https://user:pw@api.example.com"),
            Err(ApiClientError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn the_customers_path_is_appended_to_any_base_path() {
        assert_eq!(
            url("https://api.example.com").unwrap(),
            "https://api.example.com/v1/customers"
        );
        assert_eq!(
            url("https://api.example.com/ic").unwrap(),
            "https://api.example.com/ic/v1/customers"
        );
        assert_eq!(
            url("https://api.example.com/ic/").unwrap(),
            "https://api.example.com/ic/v1/customers"
        );
    }

    #[test]
    fn debug_of_a_client_does_not_show_the_key() {
        let key = ApiKey::new("ic_live_0123456789abcdefSECRET").unwrap();
        let client = ApiClient::new(
            "http://127.0.0.1:9",
            key,
            ApiTimeouts::default(),
            InsecureHttp::Refuse,
        )
        .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("0123456789"), "{shown}");
        assert_eq!(client.key_redacted(), "ic_…CRET");
    }
}
