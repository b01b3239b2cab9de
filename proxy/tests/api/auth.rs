//! Every `/api/…` call needs a valid, unexpired agent token for that payment.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Nothing listens there: auth must fail before any upstream call.
const NO_UPSTREAM: &str = "http://127.0.0.1:9";

fn jwt(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now() -> i64 {
    proxy::auth::now_secs()
}

async fn code_for(app: &TestApp, token: Option<&str>) -> (StatusCode, String) {
    let mut request = app.client.get(app.url("/api/payments/ps_usd_1001"));
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let (status, body) = read(request.send().await.unwrap()).await;
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_request_without_a_token_is_unauthenticated() {
    let app = spawn_app(NO_UPSTREAM).await;
    assert_eq!(
        code_for(&app, None).await,
        (StatusCode::UNAUTHORIZED, "unauthenticated".into())
    );
}

#[tokio::test]
async fn a_malformed_token_is_unauthenticated() {
    let app = spawn_app(NO_UPSTREAM).await;
    for header in [
        "Bearer not-a-jwt",
        "Basic YWxpY2U6cHc=",
        "Bearer ",
        "Bearer a.b.c",
    ] {
        assert_eq!(
            code_for(&app, Some(header)).await,
            (StatusCode::UNAUTHORIZED, "unauthenticated".into()),
            "{header}"
        );
    }
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_invalid() {
    let app = spawn_app(NO_UPSTREAM).await;
    let forged = jwt(
        "another-secret-of-enough-length",
        json!({"sub": "mallory", "exp": now() + 600}),
    );
    assert_eq!(
        code_for(&app, Some(&format!("Bearer {forged}"))).await,
        (StatusCode::UNAUTHORIZED, "token_invalid".into())
    );
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_invalid() {
    let app = spawn_app(NO_UPSTREAM).await;
    let valid = app.token("alice");
    let payload = valid.split('.').nth(1).unwrap();
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let (status, code) = code_for(&app, Some(&format!("Bearer {unsigned}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        code == "token_invalid" || code == "unauthenticated",
        "{code}"
    );
}

#[tokio::test]
async fn an_expired_token_says_so() {
    let app = spawn_app(NO_UPSTREAM).await;
    let expired = jwt(TOKEN_SECRET, json!({"sub": "alice", "exp": now() - 120}));
    assert_eq!(
        code_for(&app, Some(&format!("Bearer {expired}"))).await,
        (StatusCode::UNAUTHORIZED, "token_expired".into())
    );
}

#[tokio::test]
async fn a_token_without_an_agent_is_invalid() {
    let app = spawn_app(NO_UPSTREAM).await;
    let nobody = jwt(TOKEN_SECRET, json!({"exp": now() + 600}));
    assert_eq!(
        code_for(&app, Some(&format!("Bearer {nobody}"))).await,
        (StatusCode::UNAUTHORIZED, "token_invalid".into())
    );
}

#[tokio::test]
async fn a_token_for_another_payment_is_forbidden() {
    let app = spawn_app(NO_UPSTREAM).await;
    let other = jwt(
        TOKEN_SECRET,
        json!({"sub": "alice", "iat": now(), "exp": now() + 600, "session_id": "ps_eur_1002"}),
    );
    assert_eq!(
        code_for(&app, Some(&format!("Bearer {other}"))).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let (status, body) = app
        .post(
            "/api/payments/ps_usd_1001/refunds",
            &other,
            &submission(Some(100), "usd", &fresh_key()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
}

#[tokio::test]
async fn an_events_ticket_is_not_an_agent_token() {
    let app = spawn_app(NO_UPSTREAM).await;
    let (status, ticket) = app
        .post(
            "/api/payments/ps_usd_1001/events/ticket",
            &app.token("alice"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    let ticket = ticket["ticket"].as_str().unwrap();
    assert_eq!(
        code_for(&app, Some(&format!("Bearer {ticket}"))).await,
        (StatusCode::UNAUTHORIZED, "token_invalid".into())
    );
}

#[tokio::test]
async fn a_browser_origin_not_configured_is_refused_and_a_configured_one_gets_cors() {
    let app = spawn_app(NO_UPSTREAM).await;
    let response = app
        .client
        .get(app.url("/api/payments/ps_usd_1001/history"))
        .bearer_auth(app.token("alice"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let (status, body) = read(response).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("origin_not_allowed"))
    );

    let allowed = app
        .client
        .get(app.url("/api/payments/ps_usd_1001/history"))
        .bearer_auth(app.token("alice"))
        .header("origin", "http://widget.test")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://widget.test"
    );
}

#[tokio::test]
async fn demo_tokens_are_minted_in_demo_mode_and_work() {
    let app = spawn_app(NO_UPSTREAM).await;
    let response = app
        .client
        .post(app.url("/demo/token"))
        .json(&json!({"agent": "bob"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap();
    let (status, _) = app.get("/api/payments/ps_usd_1001/history", token).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_token_not_valid_yet_is_invalid() {
    let app = spawn_app(NO_UPSTREAM).await;
    let later = jwt(
        TOKEN_SECRET,
        json!({"sub": "alice", "iat": now(), "nbf": now() + 1800, "exp": now() + 3600}),
    );
    assert_eq!(
        code_for(&app, Some(&format!("Bearer {later}"))).await,
        (StatusCode::UNAUTHORIZED, "token_invalid".into())
    );
}
