//! Thin reqwest helpers for talking to a sandbox (or the real API) in tests: one request,
//! its full reply kept (status, headers, exact body bytes) so tests can compare bytes.

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::SandboxProcess;

/// A client that opens a fresh connection per request, so a connection the server closed on
/// purpose (drop fault) never affects the next request.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A complete reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Reply {
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// `error.type` of an error body.
    pub fn error_type(&self) -> String {
        self.json()["error"]["type"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {}", self.json()))
            .to_string()
    }

    pub fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }

    /// The customer id of a customer body.
    pub fn id(&self) -> String {
        self.json()["id"].as_str().unwrap().to_string()
    }
}

/// A caller of the public API as one organisation.
#[derive(Clone)]
pub struct ApiClient {
    pub client: reqwest::Client,
    pub base_url: String,
    pub key: String,
}

impl ApiClient {
    pub fn new(sandbox: &SandboxProcess, key: &str) -> ApiClient {
        ApiClient {
            client: client(),
            base_url: sandbox.base_url.clone(),
            key: key.to_string(),
        }
    }

    /// `POST /v1/customers` with `body` and an optional Idempotency-Key.
    pub async fn upsert(&self, body: &Value, key: Option<&str>) -> Reply {
        self.upsert_raw(&body.to_string(), key).await
    }

    pub async fn upsert_raw(&self, body: &str, key: Option<&str>) -> Reply {
        Reply::read(self.try_upsert_raw(body, key).await.unwrap()).await
    }

    /// Like [`upsert_raw`](Self::upsert_raw) but returns the transport error, for tests of
    /// dropped connections.
    pub async fn try_upsert_raw(
        &self,
        body: &str,
        key: Option<&str>,
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = self
            .client
            .post(format!("{}/v1/customers", self.base_url))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await
    }

    /// `GET /v1/customers/{id}`.
    pub async fn get(&self, id: &str) -> Reply {
        let response = self
            .client
            .get(format!("{}/v1/customers/{id}", self.base_url))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        Reply::read(response).await
    }
}

/// A caller of the admin API (`/_sandbox/...`) with the sandbox's admin token.
#[derive(Clone)]
pub struct AdminClient {
    pub client: reqwest::Client,
    pub base_url: String,
    pub token: String,
}

impl AdminClient {
    pub fn new(sandbox: &SandboxProcess) -> AdminClient {
        AdminClient {
            client: client(),
            base_url: sandbox.base_url.clone(),
            token: sandbox
                .admin_token
                .clone()
                .expect("sandbox started without an admin token"),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        let response = self
            .client
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        Reply::read(response).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        Reply::read(response).await
    }

    /// The organisation's customers, oldest first.
    pub async fn customers(&self, org: &str) -> Vec<Value> {
        let reply = self.get(&format!("/_sandbox/customers?org={org}")).await;
        assert_eq!(
            reply.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json().as_array().unwrap().clone()
    }

    pub async fn set_faults(&self, faults: Value) -> Reply {
        let reply = self.post("/_sandbox/faults", &faults).await;
        assert_eq!(
            reply.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&reply.body)
        );
        reply
    }

    pub async fn advance_clock(&self, seconds: i64) -> Reply {
        let reply = self
            .post(
                "/_sandbox/clock",
                &serde_json::json!({ "advance_seconds": seconds }),
            )
            .await;
        assert_eq!(
            reply.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&reply.body)
        );
        reply
    }
}
