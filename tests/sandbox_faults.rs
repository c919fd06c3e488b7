//! Fault injection over real HTTP: fail-rate, drop-rate (executed, then no response),
//! latency, the per-organisation rate limit, and changing faults live through the admin API.

mod common;

use std::time::{Duration, Instant};

use common::http::{AdminClient, ApiClient};
use common::{SandboxOptions, DEMO_KEY};
use serde_json::json;

#[tokio::test]
async fn fail_rate_one_answers_503_and_executes_nothing() {
    let sb = SandboxOptions::new()
        .args(["--fail-rate", "1.0"])
        .admin()
        .start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    let admin = AdminClient::new(&sb);
    let body = json!({"full_name": "Ada", "email": "ada@x.io"});
    let reply = api.upsert(&body, Some("k")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error_type(), "unavailable");
    // Before auth: even a bad key gets 503, so nothing about the caller was looked at.
    let stranger = ApiClient::new(&sb, "ic_test_nobody");
    assert_eq!(stranger.upsert(&body, None).await.status, 503);
    assert!(admin.customers("demo").await.is_empty());
    // The key was not claimed: once the fault is off, the same key executes.
    admin.set_faults(json!({"fail_rate": 0})).await;
    let retried = api.upsert(&body, Some("k")).await;
    assert_eq!(retried.status, 201);
    assert!(!retried.replayed());
}

#[tokio::test]
async fn drop_rate_one_executes_then_closes_without_a_response_and_a_retry_replays() {
    let sb = SandboxOptions::new()
        .args(["--drop-rate", "1"])
        .admin()
        .start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    let admin = AdminClient::new(&sb);
    let body = r#"{"full_name": "Ada", "email": "ada@x.io"}"#;
    let err = api
        .try_upsert_raw(body, Some("lost-reply"))
        .await
        .expect_err("the connection must close with no response");
    assert!(!err.is_timeout(), "closed, not hung: {err}");
    // It was executed all the same.
    let stored = admin.customers("demo").await;
    assert_eq!(stored.len(), 1);
    admin.set_faults(json!({"drop_rate": 0})).await;
    let retry = api.upsert_raw(body, Some("lost-reply")).await;
    assert_eq!(retry.status, 201);
    assert!(retry.replayed(), "the retry replays the lost reply");
    assert_eq!(retry.json(), stored[0]);
    assert_eq!(admin.customers("demo").await.len(), 1);
}

#[tokio::test]
async fn latency_delays_every_public_request() {
    let sb = SandboxOptions::new()
        .args(["--latency-ms", "400"])
        .admin()
        .start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    let started = Instant::now();
    let created = api.upsert(&json!({"full_name": "Ada"}), None).await;
    assert_eq!(created.status, 201);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(api.get(&created.id()).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
    // The admin API is never delayed, and latency can be turned off live.
    let admin = AdminClient::new(&sb);
    admin.set_faults(json!({"latency_ms": 0})).await;
    let started = Instant::now();
    api.get(&created.id()).await;
    assert!(started.elapsed() < Duration::from_millis(400));
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_and_changes_live() {
    let sb = SandboxOptions::new()
        .args([
            "--rate-limit",
            "2",
            "--org",
            "acme=ic_test_acme",
            "--org",
            "globex=ic_test_globex",
        ])
        .admin()
        .start();
    let acme = ApiClient::new(&sb, "ic_test_acme");
    // Five requests inside well under a second span at most two one-second windows, so at
    // most four pass and at least one is refused.
    let started = Instant::now();
    let mut refused = Vec::new();
    for i in 0..5 {
        let reply = acme
            .upsert(&json!({"full_name": format!("C{i}")}), None)
            .await;
        if reply.status == 429 {
            refused.push(reply);
        } else {
            assert_eq!(reply.status, 201);
        }
    }
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "test ran too slowly to judge"
    );
    assert!(!refused.is_empty(), "no request was rate limited");
    for r in &refused {
        assert_eq!(r.error_type(), "rate_limited");
        let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(after >= 1);
    }
    // Another organisation has its own budget.
    let globex = ApiClient::new(&sb, "ic_test_globex");
    assert_eq!(
        globex.upsert(&json!({"full_name": "G"}), None).await.status,
        201
    );
    // Lifted live: a burst now passes.
    let admin = AdminClient::new(&sb);
    let faults = admin.set_faults(json!({"rate_limit": 0})).await.json();
    assert_eq!(faults["rate_limit"], 0);
    for i in 0..10 {
        let reply = acme
            .upsert(&json!({"full_name": format!("D{i}")}), None)
            .await;
        assert_eq!(reply.status, 201);
    }
}
