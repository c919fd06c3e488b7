//! The header and body edge cases of docs/api.md ("Edge cases"), sent as exact bytes over a
//! plain TCP socket to the real sandbox, so nothing between the test and the server tidies
//! them up: a NUL or DEL byte in a header, two Idempotency-Key headers, a body over 64 KiB,
//! a member name repeated in the JSON text, a field under both spellings with one null, and
//! a wrong method. Every answer must be the contract's JSON error body.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{SandboxOptions, SandboxProcess, DEMO_KEY};
use serde_json::Value;

/// One response as read off the socket.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not a JSON body ({e}): {}\n{:?}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn error_type(&self) -> String {
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/json"),
            "{}",
            self.head
        );
        self.json()["error"]["type"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {}", self.json()))
            .to_string()
    }

    /// The message of an `invalid_request` error body.
    fn invalid_request_message(&self) -> String {
        assert_eq!(self.error_type(), "invalid_request", "{}", self.head);
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn fields(&self) -> Vec<(String, String)> {
        self.json()["error"]["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no field errors: {}", self.json()))
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_string(),
                    e["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// Sends `head` (request line and headers, each ending in CRLF, without the blank line)
/// and `body` on a fresh connection, asking the server to close it after answering.
fn send(sb: &SandboxProcess, head: &[u8], body: &[u8]) -> Raw {
    let addr = sb.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = head.to_vec();
    request.extend_from_slice(
        format!(
            "Connection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    // The server may answer and close before it has read a large body; what it answered is
    // what the test is about, so a write cut short is not a failure.
    let _ = stream.write_all(&request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&reply)));
    let head = String::from_utf8_lossy(&reply[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    Raw {
        status,
        head,
        body: reply[split + 4..].to_vec(),
    }
}

fn upsert_head(extra: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST /v1/customers HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Bearer {DEMO_KEY}\r\nContent-Type: application/json\r\n"
    )
    .into_bytes();
    head.extend_from_slice(extra);
    head
}

/// Sends a valid upsert with the `extra` header lines; asserts it was refused with `status`
/// and an `invalid_request` body, and returns the message.
fn refused_upsert(sb: &SandboxProcess, extra: &[u8], status: u16) -> String {
    let reply = send(sb, &upsert_head(extra), br#"{"full_name":"Ada"}"#);
    let sent = String::from_utf8_lossy(extra);
    assert_eq!(reply.status, status, "{sent:?}: {}", reply.head);
    reply.invalid_request_message()
}

#[test]
fn a_nul_or_del_byte_in_a_header_gets_400_with_the_json_error_body() {
    let sb = SandboxOptions::new().admin().start();
    for bad in [
        &b"Idempotency-Key: abc\x00def\r\n"[..],
        b"Idempotency-Key: abc\x7fdef\r\n",
        b"X-Note: a\x01b\r\n",
    ] {
        let message = refused_upsert(&sb, bad, 400);
        assert!(message.contains("NUL, DEL"), "{message}");
    }
    // Nothing was executed, and the server still answers.
    let ok = send(&sb, &upsert_head(b""), br#"{"full_name":"Ada"}"#);
    assert_eq!(ok.status, 201, "{}", ok.head);
}

#[test]
fn too_many_headers_get_431_with_the_json_error_body() {
    let sb = SandboxOptions::new().start();
    let many: String = (0..200).map(|i| format!("X-Filler-{i}: x\r\n")).collect();
    let message = refused_upsert(&sb, many.as_bytes(), 431);
    assert!(message.contains("headers are too large"), "{message}");
}

#[test]
fn two_idempotency_key_headers_are_refused_with_400_and_nothing_runs() {
    let sb = SandboxOptions::new().start();
    for (a, b) in [("k1", "k2"), ("same", "same")] {
        let headers = format!("Idempotency-Key: {a}\r\nIdempotency-Key: {b}\r\n");
        let message = refused_upsert(&sb, headers.as_bytes(), 400);
        assert!(message.contains("at most once"), "{message}");
    }
    // The same key sent once is taken, and was not claimed by the refused requests.
    let once = send(
        &sb,
        &upsert_head(b"Idempotency-Key: k1\r\n"),
        br#"{"full_name":"Ada"}"#,
    );
    assert_eq!(once.status, 201);
    assert_eq!(once.header("idempotent-replayed"), None);
}

#[test]
fn a_body_over_64_kib_gets_400_invalid_request() {
    let sb = SandboxOptions::new().start();
    let body = format!(r#"{{"full_name":"{}"}}"#, "a".repeat(64 * 1024));
    let reply = send(&sb, &upsert_head(b""), body.as_bytes());
    assert_eq!(reply.status, 400, "{}", reply.head);
    let message = reply.invalid_request_message();
    assert!(message.contains("65536 bytes"), "{message}");
}

#[test]
fn a_member_repeated_in_the_json_text_is_refused_as_a_field_given_twice() {
    let sb = SandboxOptions::new().admin().start();
    let reply = send(
        &sb,
        &upsert_head(b""),
        br#"{"full_name":"A","full_name":"B"}"#,
    );
    assert_eq!(reply.status, 422, "{}", reply.head);
    assert_eq!(reply.error_type(), "validation_error");
    assert_eq!(
        reply.fields(),
        [(
            "full_name".to_string(),
            "given twice (full_name appears more than once); send it once".to_string()
        )]
    );
    let nested = send(
        &sb,
        &upsert_head(b""),
        br#"{"full_name":"A","risk":{"is_pep":true,"is_pep":false},"email":"bad"}"#,
    );
    assert_eq!(nested.status, 422);
    let fields: Vec<String> = nested.fields().into_iter().map(|f| f.0).collect();
    assert_eq!(fields, ["email", "risk.is_pep"]);
}

#[test]
fn a_repeated_member_is_refused_even_where_its_last_value_matches_a_stored_key() {
    // Last-one-wins would read this body as the stored one and replay it.
    let sb = SandboxOptions::new().start();
    let key = b"Idempotency-Key: dup-1\r\n";
    let first = send(&sb, &upsert_head(key), br#"{"full_name":"A"}"#);
    assert_eq!(first.status, 201);
    let again = send(
        &sb,
        &upsert_head(key),
        br#"{"full_name":"B","full_name":"A"}"#,
    );
    assert_eq!(again.status, 422, "{}", again.head);
    assert_eq!(again.header("idempotent-replayed"), None);
}

#[test]
fn a_field_under_both_spellings_with_one_null_gets_one_error() {
    let sb = SandboxOptions::new().start();
    let reply = send(
        &sb,
        &upsert_head(b""),
        br#"{"full_name":"A","fullName":null}"#,
    );
    assert_eq!(reply.status, 422, "{}", reply.head);
    assert_eq!(
        reply.fields(),
        [(
            "full_name".to_string(),
            "given twice (as fullName and full_name); send one".to_string()
        )]
    );
}

#[test]
fn a_wrong_method_gets_405_with_allow_and_a_json_body() {
    let sb = SandboxOptions::new().start();
    for (line, allowed) in [
        ("PUT /v1/customers HTTP/1.1\r\n", "POST"),
        (
            "DELETE /v1/customers/00000000-0000-0000-0000-000000000000 HTTP/1.1\r\n",
            "GET",
        ),
    ] {
        let head = format!("{line}Host: sandbox\r\nAuthorization: Bearer {DEMO_KEY}\r\n");
        let reply = send(&sb, head.as_bytes(), b"");
        assert_eq!(reply.status, 405, "{line}: {}", reply.head);
        assert_eq!(reply.error_type(), "invalid_request");
        let allow = reply.header("allow").unwrap_or_default();
        assert!(allow.contains(allowed), "{line}: Allow: {allow}");
    }
}
