//! Idempotency-Key rules over real HTTP: byte-for-byte replay, conflicts, the in-progress
//! race, 24-hour expiry through the admin clock, per-organisation scope, errors not stored,
//! and header validation.

mod common;

use common::http::{AdminClient, ApiClient};
use common::{SandboxOptions, SandboxProcess, DEMO_KEY};
use serde_json::json;

#[tokio::test]
async fn a_repeat_replays_status_and_body_byte_for_byte_without_executing() {
    let sb = SandboxOptions::new().admin().start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    let admin = AdminClient::new(&sb);
    let first = api
        .upsert_raw(
            r#"{"full_name": "Ada", "email": "ada@x.io"}"#,
            Some("key-1"),
        )
        .await;
    assert_eq!(first.status, 201);
    assert!(!first.replayed());
    // A later, separate change: a replay must not reflect it.
    admin.advance_clock(60).await;
    api.upsert(
        &json!({"full_name": "Ada Changed", "email": "ada@x.io"}),
        None,
    )
    .await;
    // Same body with other key order and spacing: the same request.
    let again = api
        .upsert_raw(
            "{\"email\":\"ada@x.io\",\n \"full_name\":\"Ada\"}",
            Some("key-1"),
        )
        .await;
    assert_eq!(again.status, 201);
    assert!(again.replayed());
    assert_eq!(again.body, first.body, "replayed byte for byte");
    assert_eq!(admin.customers("demo").await.len(), 1);
    assert_eq!(admin.customers("demo").await[0]["full_name"], "Ada Changed");
}

#[tokio::test]
async fn a_200_is_replayed_as_200() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    api.upsert(&json!({"full_name": "Ada", "external_id": "x"}), None)
        .await;
    let body = json!({"full_name": "Ada L", "external_id": "x"});
    let first = api.upsert(&body, Some("k")).await;
    let again = api.upsert(&body, Some("k")).await;
    assert_eq!((first.status, again.status), (200, 200));
    assert!(again.replayed());
    assert_eq!(again.body, first.body);
}

#[tokio::test]
async fn same_key_with_another_body_is_idempotency_conflict() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    assert_eq!(
        api.upsert(&json!({"full_name": "Ada"}), Some("k"))
            .await
            .status,
        201
    );
    let reply = api.upsert(&json!({"full_name": "Bob"}), Some("k")).await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.error_type(), "idempotency_conflict");
    // null and absent differ, so they are different bodies too.
    let reply = api
        .upsert(&json!({"full_name": "Ada", "email": null}), Some("k"))
        .await;
    assert_eq!(reply.error_type(), "idempotency_conflict");
}

#[tokio::test]
async fn racing_requests_with_one_key_execute_once_and_the_other_is_in_progress() {
    let sb = SandboxOptions::new()
        .args(["--latency-ms", "1500"])
        .admin()
        .start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    let body = json!({"full_name": "Ada", "email": "ada@x.io"});
    // Both are in flight together: the latency (1.5 s) is spent while the first to arrive
    // holds the key, so the other finds it held whichever one wins.
    let (a, b) = tokio::join!(
        api.upsert(&body, Some("race")),
        api.upsert(&body, Some("race"))
    );
    let (first, second) = if a.status == 201 { (a, b) } else { (b, a) };
    assert_eq!(first.status, 201);
    assert!(!first.replayed());
    assert_eq!(second.status, 409);
    assert_eq!(second.error_type(), "idempotency_in_progress");
    assert_eq!(second.header("retry-after"), Some("1"));
    // After it finished, the same key replays.
    let third = api.upsert(&body, Some("race")).await;
    assert!(third.replayed());
    assert_eq!(third.body, first.body);
    assert_eq!(AdminClient::new(&sb).customers("demo").await.len(), 1);
}

#[tokio::test]
async fn keys_are_remembered_for_exactly_24_hours_of_sandbox_clock() {
    let sb = SandboxOptions::new().admin().start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    let admin = AdminClient::new(&sb);
    let first = api
        .upsert(&json!({"full_name": "Ada", "external_id": "x"}), Some("k"))
        .await;
    assert_eq!(first.status, 201);
    // 30 s short of 24 hours: room for the test's own runtime (the exact boundary is
    // unit-tested in the idempotency table).
    admin.advance_clock(24 * 3600 - 30).await;
    let other_body = json!({"full_name": "Ada L", "external_id": "x"});
    assert_eq!(
        api.upsert(&other_body, Some("k")).await.error_type(),
        "idempotency_conflict"
    );
    admin.advance_clock(30).await;
    let fresh = api.upsert(&other_body, Some("k")).await;
    assert_eq!(fresh.status, 200, "expired key: executes as a new request");
    assert!(!fresh.replayed());
    assert_eq!(fresh.json()["full_name"], "Ada L");
    // The update's timestamp comes from the advanced clock.
    let created =
        chrono::DateTime::parse_from_rfc3339(first.json()["created_at"].as_str().unwrap()).unwrap();
    let updated =
        chrono::DateTime::parse_from_rfc3339(fresh.json()["updated_at"].as_str().unwrap()).unwrap();
    assert!(updated - created >= chrono::Duration::hours(24));
}

#[tokio::test]
async fn keys_are_scoped_per_organisation() {
    let sb = SandboxOptions::new()
        .args([
            "--org",
            "acme=ic_test_acme",
            "--org",
            "globex=ic_test_globex",
        ])
        .start();
    let acme = ApiClient::new(&sb, "ic_test_acme");
    let globex = ApiClient::new(&sb, "ic_test_globex");
    let a = acme
        .upsert(&json!({"full_name": "Ada"}), Some("shared"))
        .await;
    let g = globex
        .upsert(&json!({"full_name": "Bob"}), Some("shared"))
        .await;
    assert_eq!((a.status, g.status), (201, 201));
    assert!(!g.replayed());
    let g_same_as_acme = globex
        .upsert(&json!({"full_name": "Ada"}), Some("shared"))
        .await;
    assert_eq!(g_same_as_acme.error_type(), "idempotency_conflict");
}

#[tokio::test]
async fn a_422_is_not_stored_so_the_key_is_free_for_a_fixed_body() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    let bad = json!({"full_name": "Ada", "email": "nope"});
    assert_eq!(api.upsert(&bad, Some("k")).await.status, 422);
    let again = api.upsert(&bad, Some("k")).await;
    assert_eq!(again.status, 422);
    assert!(!again.replayed(), "errors are never replayed");
    let fixed = api
        .upsert(&json!({"full_name": "Ada", "email": "ada@x.io"}), Some("k"))
        .await;
    assert_eq!(
        fixed.status, 201,
        "not an idempotency_conflict: the 422 was not stored"
    );
}

#[tokio::test]
async fn a_customer_conflict_fixed_in_app_can_be_retried_with_the_same_key() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    api.upsert(
        &json!({"full_name": "Ada", "email": "ada@x.io", "external_id": "a"}),
        None,
    )
    .await;
    let body = json!({"full_name": "Ada", "email": "ada@x.io", "external_id": "b"});
    assert_eq!(
        api.upsert(&body, Some("k")).await.error_type(),
        "customer_conflict"
    );
    // Someone resolves it: customer "a" gets another email.
    api.upsert(
        &json!({"full_name": "Ada", "email": "old@x.io", "external_id": "a"}),
        None,
    )
    .await;
    let retried = api.upsert(&body, Some("k")).await;
    assert_eq!(retried.status, 201);
    assert!(!retried.replayed());
}

#[tokio::test]
async fn bad_idempotency_keys_are_400() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    let body = json!({"full_name": "Ada"});
    assert_eq!(api.upsert(&body, Some(&"k".repeat(255))).await.status, 201);
    for key in ["", &"k".repeat(256)] {
        let reply = api.upsert(&body, Some(key)).await;
        assert_eq!(reply.status, 400, "key of {} chars", key.len());
        assert_eq!(reply.error_type(), "invalid_request");
    }
}
