//! The create-or-upsert and read endpoints over real HTTP against the real binary: every row
//! of the seed's table, the decided email-uniqueness rule, representative validation
//! boundaries, auth, content checks, org isolation, routing, and the create race.

mod common;

use common::http::{client, AdminClient, ApiClient, Reply};
use common::{SandboxOptions, SandboxProcess, DEMO_KEY};
use serde_json::json;

fn two_orgs() -> SandboxProcess {
    SandboxOptions::new()
        .args([
            "--org",
            "acme=ic_test_acme",
            "--org",
            "globex=ic_test_globex",
        ])
        .admin()
        .start()
}

#[tokio::test]
async fn seed_row_1_external_id_match_updates_200() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    let created = api
        .upsert(
            &json!({"full_name": "Ada", "external_id": "crm-1", "email": "ada@x.io"}),
            None,
        )
        .await;
    assert_eq!(created.status, 201);
    let updated = api
        .upsert(
            &json!({"full_name": "Ada Lovelace", "external_id": "crm-1"}),
            None,
        )
        .await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.id(), created.id());
    let c = updated.json();
    assert_eq!(c["full_name"], "Ada Lovelace");
    assert_eq!(c["email"], "ada@x.io", "absent fields are left as stored");
    assert_eq!(c["created_at"], created.json()["created_at"]);
}

#[tokio::test]
async fn seed_row_2_email_match_without_external_id_is_adopted_200() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    let created = api
        .upsert(&json!({"full_name": "Ada", "email": "ada@x.io"}), None)
        .await;
    assert_eq!(created.status, 201);
    assert!(created.json()["external_id"].is_null());
    let adopted = api
        .upsert(
            &json!({"full_name": "Ada", "email": "ADA@x.io ", "external_id": "crm-1"}),
            None,
        )
        .await;
    assert_eq!(adopted.status, 200);
    assert_eq!(adopted.id(), created.id());
    assert_eq!(adopted.json()["external_id"], "crm-1");
}

#[tokio::test]
async fn seed_row_3_email_held_by_another_external_id_is_409_naming_it() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    let existing = api
        .upsert(
            &json!({"full_name": "Ada", "email": "ada@x.io", "external_id": "crm-1"}),
            None,
        )
        .await;
    let reply = api
        .upsert(
            &json!({"full_name": "Ada", "email": "ada@x.io", "external_id": "crm-2"}),
            None,
        )
        .await;
    assert_eq!(reply.status, 409);
    let err = &reply.json()["error"];
    assert_eq!(err["type"], "customer_conflict");
    assert_eq!(err["conflicting_customer_id"], existing.id().as_str());
    assert_eq!(err["conflicting_external_id"], "crm-1");
}

#[tokio::test]
async fn seed_row_4_email_match_without_external_id_updates_200() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    let existing = api
        .upsert(
            &json!({"full_name": "Ada", "email": "ada@x.io", "external_id": "crm-1"}),
            None,
        )
        .await;
    let reply = api
        .upsert(
            &json!({"full_name": "Ada L", "email": "Ada@X.io", "phone": "+44 20 7946 0958"}),
            None,
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.id(), existing.id());
    assert_eq!(reply.json()["external_id"], "crm-1");
    assert_eq!(reply.json()["phone"], "+44 20 7946 0958");
}

#[tokio::test]
async fn seed_row_5_nothing_matches_creates_201_with_integration_defaults() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    let reply = api
        .upsert(
            &json!({"full_name": "Ada", "external_id": "crm-1", "type": "SOLE_TRADER",
                        "trading_name": "Ada's", "risk": {"country_of_residence": "GB"}}),
            None,
        )
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let c = reply.json();
    assert!(uuid::Uuid::parse_str(c["id"].as_str().unwrap()).is_ok());
    assert_eq!(c["kyc_status"], "NOT_STARTED");
    assert_eq!(c["added_via"], "INTEGRATION");
    assert_eq!(c["type"], "SOLE_TRADER");
    assert!(c["verified_identity"].is_null());
    assert_eq!(c["risk"]["country_of_residence"], "GB");
    assert!(c["risk"]["is_pep"].is_null());
    let ts = c["created_at"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
        "{ts}"
    );
    // And the new customer reads back identically.
    let read = api.get(&reply.id()).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, reply.body);
}

#[tokio::test]
async fn changing_an_email_to_one_another_customer_holds_is_a_conflict() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    let bob = api
        .upsert(&json!({"full_name": "Bob", "email": "bob@x.io"}), None)
        .await;
    api.upsert(
        &json!({"full_name": "Ada", "email": "ada@x.io", "external_id": "crm-1"}),
        None,
    )
    .await;
    let reply = api
        .upsert(
            &json!({"full_name": "Ada", "email": "bob@x.io", "external_id": "crm-1"}),
            None,
        )
        .await;
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.json()["error"]["conflicting_customer_id"],
        bob.id().as_str()
    );
    assert!(reply.json()["error"]["conflicting_external_id"].is_null());
}

#[tokio::test]
async fn validation_reports_every_bad_field_with_boundaries() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    // Exactly at the limits: accepted. Lengths count characters, not bytes.
    let ok = api
        .upsert(
            &json!({"full_name": "é".repeat(255), "phone": "1".repeat(32),
                        "external_id": "x".repeat(255)}),
            None,
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.json());
    // One past each limit, plus a bad email, country and an unknown field: all reported.
    let bad = api
        .upsert(
            &json!({"full_name": "é".repeat(256), "phone": "1".repeat(33),
                        "email": "not-an-email", "risk": {"country_of_residence": "UK"},
                        "nickname": "A"}),
            None,
        )
        .await;
    assert_eq!(bad.status, 422);
    let err = &bad.json()["error"];
    assert_eq!(err["type"], "validation_error");
    let mut fields: Vec<&str> = err["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "email",
            "full_name",
            "nickname",
            "phone",
            "risk.country_of_residence"
        ]
    );
    let blank = api.upsert(&json!({"full_name": "   "}), None).await;
    assert_eq!(blank.status, 422);
    let missing = api.upsert(&json!({"email": "a@x.io"}), None).await;
    assert_eq!(missing.status, 422);
    assert_eq!(missing.json()["error"]["errors"][0]["field"], "full_name");
}

#[tokio::test]
async fn camel_case_spellings_are_accepted() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    let reply = api
        .upsert(
            &json!({"fullName": "Ada", "externalId": "crm-1", "tradingName": "Ada's"}),
            None,
        )
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["external_id"], "crm-1");
    assert_eq!(reply.json()["trading_name"], "Ada's");
}

#[tokio::test]
async fn malformed_json_and_wrong_content_type_are_400() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    let reply = api.upsert_raw("{\"full_name\": ", None).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_type(), "invalid_request");

    let reply = Reply::read(
        client()
            .post(format!("{}/v1/customers", sb.base_url))
            .bearer_auth(DEMO_KEY)
            .header("content-type", "text/plain")
            .body(r#"{"full_name": "Ada"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_type(), "invalid_request");
}

#[tokio::test]
async fn missing_malformed_or_unknown_keys_are_401() {
    let sb = SandboxProcess::with_args(&[]);
    let url = format!("{}/v1/customers", sb.base_url);
    let body = r#"{"full_name": "Ada"}"#;
    let c = client();
    let attempts = [
        None,
        Some("ic_test_demo"),       // no scheme
        Some("Basic ic_test_demo"), // wrong scheme
        Some("Bearer "),            // empty token
        Some("Bearer ic_test_nobody"),
    ];
    for auth in attempts {
        let mut request = c
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let reply = Reply::read(request.send().await.unwrap()).await;
        assert_eq!(reply.status, 401, "{auth:?}");
        assert_eq!(reply.error_type(), "unauthorized");
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("ic_test"),
            "key echoed"
        );
    }
    let get = Reply::read(
        c.get(format!(
            "{}/v1/customers/{}",
            sb.base_url,
            uuid::Uuid::new_v4()
        ))
        .bearer_auth("ic_test_nobody")
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(get.status, 401);
}

#[tokio::test]
async fn organisations_are_isolated() {
    let sb = two_orgs();
    let acme = ApiClient::new(&sb, "ic_test_acme");
    let globex = ApiClient::new(&sb, "ic_test_globex");
    let a = acme
        .upsert(&json!({"full_name": "Ada", "email": "ada@x.io"}), None)
        .await;
    let g = globex
        .upsert(&json!({"full_name": "Ada", "email": "ada@x.io"}), None)
        .await;
    assert_eq!(
        (a.status, g.status),
        (201, 201),
        "same email in two orgs: two customers"
    );
    assert_ne!(a.id(), g.id());
    assert_eq!(globex.get(&a.id()).await.status, 404);
    assert_eq!(acme.get(&a.id()).await.status, 200);
    let admin = AdminClient::new(&sb);
    assert_eq!(admin.customers("acme").await.len(), 1);
    assert_eq!(admin.customers("globex").await.len(), 1);
}

#[tokio::test]
async fn get_answers_404_for_unknown_or_malformed_ids() {
    let sb = SandboxProcess::with_args(&[]);
    let api = ApiClient::new(&sb, DEMO_KEY);
    let ids = [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".into(),
        "%FF%FE".into(),
    ];
    for id in ids {
        let reply = api.get(&id).await;
        assert_eq!(reply.status, 404, "{id}");
        assert_eq!(reply.error_type(), "not_found");
    }
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_the_error_shape() {
    let sb = SandboxProcess::with_args(&[]);
    let c = client();
    let unknown = Reply::read(c.get(sb.url("/v2/anything")).send().await.unwrap()).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_type(), "not_found");
    let wrong = Reply::read(c.delete(sb.url("/v1/customers")).send().await.unwrap()).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.error_type(), "invalid_request");
}

#[tokio::test]
async fn racing_creates_with_one_email_make_one_customer() {
    // Latency holds every request between parsing and deciding, so all of them are in
    // flight together when they decide; the lock must still let only one create.
    let sb = SandboxOptions::new()
        .args(["--latency-ms", "300"])
        .admin()
        .start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    let body = json!({"full_name": "Ada", "email": "ada@x.io"});
    let replies = futures_join_all((0..8).map(|_| {
        let api = api.clone();
        let body = body.clone();
        tokio::spawn(async move { api.upsert(&body, None).await })
    }))
    .await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 201]);
    let ids: std::collections::HashSet<_> = replies.iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(AdminClient::new(&sb).customers("demo").await.len(), 1);
}

async fn futures_join_all<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}
