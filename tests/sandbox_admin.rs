//! The admin API over real HTTP: hidden (the unknown-route 404) without the token or
//! without `--admin-token`; listing, faults validation, the clock, and the KYC simulation.

mod common;

use common::http::{client, AdminClient, ApiClient, Reply};
use common::{SandboxOptions, SandboxProcess, DEMO_KEY};
use serde_json::json;

async fn raw(method: reqwest::Method, url: String, auth: Option<&str>) -> Reply {
    let mut request = client()
        .request(method, url)
        .header("content-type", "application/json");
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    Reply::read(request.body("{}").send().await.unwrap()).await
}

#[tokio::test]
async fn admin_api_is_indistinguishable_from_an_unknown_route_without_the_token() {
    let with_admin = SandboxOptions::new().admin().start();
    let without_admin = SandboxProcess::with_args(&[]);
    let unknown = raw(reqwest::Method::GET, with_admin.url("/no/such/route"), None).await;
    assert_eq!(unknown.status, 404);
    let paths = [
        (reqwest::Method::GET, "/_sandbox/customers?org=demo"),
        (reqwest::Method::POST, "/_sandbox/faults"),
        (reqwest::Method::POST, "/_sandbox/clock"),
        (
            reqwest::Method::POST,
            "/_sandbox/customers/00000000-0000-0000-0000-000000000000/kyc",
        ),
        (reqwest::Method::DELETE, "/_sandbox/faults"), // wrong method: still hidden
    ];
    for (method, path) in paths {
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("Bearer ic_test_demo"),
        ] {
            let reply = raw(method.clone(), with_admin.url(path), auth).await;
            assert_eq!(reply.status, 404, "{method} {path} {auth:?}");
            assert_eq!(reply.body, unknown.body, "{method} {path} {auth:?}");
        }
        let reply = raw(
            method.clone(),
            without_admin.url(path),
            Some("Bearer test-admin-token"),
        )
        .await;
        assert_eq!(reply.status, 404, "no --admin-token: {method} {path}");
        assert_eq!(reply.body, unknown.body);
    }
}

#[tokio::test]
async fn listing_is_oldest_first_and_unknown_orgs_are_404() {
    let sb = SandboxOptions::new().admin().start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    let admin = AdminClient::new(&sb);
    for name in ["First", "Second", "Third"] {
        api.upsert(&json!({"full_name": name}), None).await;
    }
    let names: Vec<_> = admin
        .customers("demo")
        .await
        .iter()
        .map(|c| c["full_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["First", "Second", "Third"]);
    let unknown = admin.get("/_sandbox/customers?org=nobody").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(admin.get("/_sandbox/customers").await.status, 400);
}

#[tokio::test]
async fn faults_endpoint_returns_current_faults_and_rejects_bad_values() {
    let sb = SandboxOptions::new()
        .args(["--latency-ms", "5"])
        .admin()
        .start();
    let admin = AdminClient::new(&sb);
    let now = admin.set_faults(json!({"drop_rate": 0.25})).await.json();
    assert_eq!(
        now,
        json!({"fail_rate": 0.0, "drop_rate": 0.25, "latency_ms": 5, "rate_limit": 0})
    );
    let bad = admin
        .post(
            "/_sandbox/faults",
            &json!({"fail_rate": 2, "rate_limit": -1, "latncy_ms": 1}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.error_type(), "validation_error");
    assert_eq!(bad.json()["error"]["errors"].as_array().unwrap().len(), 3);
    // Nothing of a rejected patch was applied.
    assert_eq!(admin.get("/_sandbox/faults").await.json(), now);
}

#[tokio::test]
async fn clock_moves_forward_only() {
    let sb = SandboxOptions::new().admin().start();
    let admin = AdminClient::new(&sb);
    let before = chrono::Utc::now();
    let now = admin.advance_clock(3600).await.json()["now"]
        .as_str()
        .unwrap()
        .to_string();
    let now = chrono::DateTime::parse_from_rfc3339(&now).unwrap();
    assert!(now >= before + chrono::Duration::seconds(3599), "{now}");
    let back = admin
        .post("/_sandbox/clock", &json!({"advance_seconds": -1}))
        .await;
    assert_eq!(back.status, 422);
    let missing = admin.post("/_sandbox/clock", &json!({})).await;
    assert_eq!(missing.status, 422);
}

#[tokio::test]
async fn a_clock_move_past_year_9999_is_refused_and_the_sandbox_serves_on() {
    let sb = SandboxOptions::new().admin().start();
    let admin = AdminClient::new(&sb);
    for seconds in [10_000_000_000_000_i64, i64::MAX] {
        let refused = admin
            .post("/_sandbox/clock", &json!({ "advance_seconds": seconds }))
            .await;
        assert_eq!(refused.status, 422, "{seconds}: {:?}", refused.json());
        assert_eq!(refused.error_type(), "validation_error");
        let message = refused.json()["error"]["errors"][0]["message"].to_string();
        assert!(
            message.contains("0-9999"),
            "{seconds}: {:?}",
            refused.json()
        );
    }
    // The clock did not move, and every later request is answered.
    let now = admin.advance_clock(0).await;
    assert_eq!(now.status, 200);
    let now = chrono::DateTime::parse_from_rfc3339(now.json()["now"].as_str().unwrap()).unwrap();
    assert!(
        (now.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .num_minutes()
            .abs()
            < 5
    );
    let api = ApiClient::new(&sb, DEMO_KEY);
    assert_eq!(
        api.upsert(&json!({"full_name": "Ada"}), None).await.status,
        201
    );
}

#[tokio::test]
async fn kyc_verified_fills_a_minimal_identity_and_other_statuses_clear_it() {
    let sb = SandboxOptions::new()
        .args(["--org", "acme=ic_test_acme"])
        .admin()
        .start();
    let api = ApiClient::new(&sb, "ic_test_acme");
    let admin = AdminClient::new(&sb);
    let created = api
        .upsert(
            &json!({"full_name": "Ada Lovelace", "risk": {"country_of_residence": "FR"}}),
            None,
        )
        .await;
    let id = created.id();
    admin.advance_clock(120).await;
    let path = format!("/_sandbox/customers/{id}/kyc");
    let verified = admin.post(&path, &json!({"kyc_status": "VERIFIED"})).await;
    assert_eq!(verified.status, 200);
    let c = verified.json();
    assert_eq!(c["kyc_status"], "VERIFIED");
    let identity = c["verified_identity"].as_object().unwrap();
    let mut members: Vec<_> = identity.keys().map(String::as_str).collect();
    members.sort();
    assert_eq!(
        members,
        ["birth_year", "country", "full_name"],
        "deliberately minimal"
    );
    assert_eq!(identity["full_name"], "Ada Lovelace");
    assert_eq!(identity["country"], "FR");
    let year = identity["birth_year"].as_u64().unwrap();
    assert!((1900..=2010).contains(&year), "{year}");
    assert_ne!(
        c["updated_at"],
        created.json()["updated_at"],
        "updated_at bumped"
    );
    // The public API shows the same.
    assert_eq!(api.get(&id).await.json(), c);

    let pending = admin
        .post(&path, &json!({"kyc_status": "PENDING"}))
        .await
        .json();
    assert_eq!(pending["kyc_status"], "PENDING");
    assert!(pending["verified_identity"].is_null());

    let bad = admin.post(&path, &json!({"kyc_status": "DONE"})).await;
    assert_eq!(bad.status, 422);
    let unknown = admin
        .post(
            &format!("/_sandbox/customers/{}/kyc", uuid::Uuid::new_v4()),
            &json!({"kyc_status": "VERIFIED"}),
        )
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn kyc_without_a_country_defaults_to_gb_and_an_upsert_keeps_kyc() {
    let sb = SandboxOptions::new().admin().start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    let admin = AdminClient::new(&sb);
    let id = api
        .upsert(&json!({"full_name": "Bob", "external_id": "b"}), None)
        .await
        .id();
    let c = admin
        .post(
            &format!("/_sandbox/customers/{id}/kyc"),
            &json!({"kyc_status": "VERIFIED"}),
        )
        .await
        .json();
    assert_eq!(c["verified_identity"]["country"], "GB");
    let updated = api
        .upsert(&json!({"full_name": "Bob B", "external_id": "b"}), None)
        .await
        .json();
    assert_eq!(updated["kyc_status"], "VERIFIED");
    assert_eq!(updated["added_via"], "INTEGRATION");
    assert!(updated["verified_identity"].is_object());
}
