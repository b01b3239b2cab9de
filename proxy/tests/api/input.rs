//! Bad input gets `{code, message}` with a stable code, never a panic or an HTML page.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const NO_UPSTREAM: &str = "http://127.0.0.1:9";

async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(app.token("alice"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    read(response).await
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("<no code>")
}

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let app = spawn_app(NO_UPSTREAM).await;
    let (status, body) = post_raw(
        &app,
        "/api/payments/ps_usd_1001/refunds",
        "application/json",
        "{\"amount\":",
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn a_body_that_is_not_json_is_an_unsupported_media_type() {
    let app = spawn_app(NO_UPSTREAM).await;
    let (status, body) = post_raw(
        &app,
        "/api/payments/ps_usd_1001/refunds",
        "text/plain",
        "amount=10",
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_too_large() {
    let app = spawn_app(NO_UPSTREAM).await;
    let huge = format!("{{\"note\":\"{}\"}}", "x".repeat(64 * 1024));
    let (status, body) = post_raw(
        &app,
        "/api/payments/ps_usd_1001/refunds",
        "application/json",
        huge,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test]
async fn unknown_field_values_and_unknown_fields_are_invalid_json() {
    let app = spawn_app(NO_UPSTREAM).await;
    let token = app.token("alice");
    let bad_reason = json!({"amount": "full", "reason": "because", "idempotency_key": fresh_key()});
    let extra_field = json!({"amount": "full", "reason": "duplicate", "idempotency_key": fresh_key(), "admin": true});
    let bad_currency = json!({"amount": {"partial": {"amount": 100, "currency": "zzz"}}, "reason": "duplicate", "idempotency_key": fresh_key()});
    let negative = json!({"amount": {"partial": {"amount": -5, "currency": "usd"}}, "reason": "duplicate", "idempotency_key": fresh_key()});
    // Input that spells a field rule's code where serde's message echoes it claims nothing.
    let claims_a_code =
        json!({"amount": "full", "reason": "[note_too_long] x", "idempotency_key": fresh_key()});
    let field_named_as_code = json!({"amount": "full", "reason": "duplicate", "idempotency_key": fresh_key(), "[invalid_idempotency_key] x": 1});
    for body in [
        bad_reason,
        extra_field,
        bad_currency,
        negative,
        claims_a_code,
        field_named_as_code,
    ] {
        let (status, answer) = app
            .post("/api/payments/ps_usd_1001/refunds", &token, &body)
            .await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "invalid_json"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_path_id_that_is_not_a_session_is_rejected() {
    let app = spawn_app(NO_UPSTREAM).await;
    for id in ["3230", "ps_", "rf_1", "ps_a%20b", "ps_..%2Fetc"] {
        let (status, body) = app
            .get(&format!("/api/payments/{id}"), &app.token("alice"))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_session_id"),
            "{id}"
        );
    }
}

/// An approval's path whose segments do not decode (`%FF`) names which was wrong: the attempt
/// (`not_found`: no request has it) or the payment (`invalid_session_id`).
#[tokio::test]
async fn an_undecodable_attempt_in_a_path_is_no_request_and_a_payment_no_session() {
    let app = spawn_app(NO_UPSTREAM).await;
    let token = app.token("alice");
    for (path, expected) in [
        (
            "/api/payments/ps_usd_1001/refunds/%FF/approve",
            (StatusCode::NOT_FOUND, "not_found"),
        ),
        (
            "/api/payments/%FF/refunds/att_00000000000000000000000000000000/approve",
            (StatusCode::BAD_REQUEST, "invalid_session_id"),
        ),
    ] {
        let (status, body) = app.post(path, &token, &json!({})).await;
        assert_eq!((status, code(&body)), expected, "{path}: {body}");
    }
}

#[tokio::test]
async fn field_rules_are_checked_before_anything_is_sent() {
    let app = spawn_app(NO_UPSTREAM).await;
    let token = app.token("alice");
    let short_key = json!({"amount": "full", "reason": "duplicate", "idempotency_key": "short"});
    let (status, body) = app
        .post("/api/payments/ps_usd_1001/refunds", &token, &short_key)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_idempotency_key")
    );
    let no_note = json!({"amount": "full", "reason": "other", "idempotency_key": fresh_key()});
    let (status, body) = app
        .post("/api/payments/ps_usd_1001/refunds", &token, &no_note)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "note_required")
    );
    let long_note = json!({"amount": "full", "reason": "other", "note": "n".repeat(501), "idempotency_key": fresh_key()});
    let (status, body) = app
        .post("/api/payments/ps_usd_1001/refunds", &token, &long_note)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "note_too_long")
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app(NO_UPSTREAM).await;
    let (status, body) = app.get("/api/nothing-here", &app.token("alice")).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let response = app
        .client
        .delete(app.url("/api/payments/ps_usd_1001"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_clear_error() {
    let app = spawn_app(NO_UPSTREAM).await;
    let (status, body) = app
        .get("/api/payments/ps_usd_1001", &app.token("alice"))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_GATEWAY, "upstream_unavailable")
    );
}
