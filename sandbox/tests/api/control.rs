//! The `/_sandbox/…` control API that tests and the demo page use.

use sandbox::control::CreatePayment;
use shared::{Currency, Money};
use signing::Scheme;

use crate::helpers::{refunds, spawn};

#[tokio::test]
async fn the_seed_holds_the_documented_sessions_with_their_projects() {
    let (sandbox, _) = spawn(Scheme::RsaSha256).await;
    let sessions = sandbox.sessions().await;
    let ids: Vec<&str> = sessions.iter().map(|s| s.session.id.as_str()).collect();
    for id in [
        "ps_usd_1001",
        "ps_eur_1002",
        "ps_rub_1003",
        "ps_jpy_1004",
        "ps_kwd_1005",
        "ps_usd_partly_1006",
        "ps_usd_refunded_1007",
        "ps_full_only_1008",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let full_only = sandbox.session("ps_full_only_1008").await;
    assert_eq!(full_only.project, "demo-full-only");
    assert!(!full_only.partial_refunds_allowed);
    let kwd = sandbox.session("ps_kwd_1005").await;
    assert_eq!(
        kwd.session.acquiring_payments[0].amount_details.amount,
        12500
    );
    assert_eq!(
        kwd.session.acquiring_payments[0]
            .amount_details
            .currency
            .code(),
        "kwd"
    );
    let rub = sandbox.session("ps_rub_1003").await;
    assert_eq!(
        rub.session.acquiring_payments[0].amount_details.amount,
        1_500_000
    );
}

#[tokio::test]
async fn a_created_payment_can_be_refunded() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let money = Money::new(777, Currency::parse("gbp").unwrap());
    let created = sandbox.create_payment(CreatePayment::new(money)).await;
    assert!(created.session.id.as_str().starts_with("ps_"));
    assert_eq!(created.project, "demo-project");
    let session = merchant
        .refund(created.session.id.as_str(), Some((700, "gbp")))
        .await
        .session();
    assert_eq!(refunds(&session)[0]["amount_details"]["amount"], 700);
    assert_eq!(
        sandbox.session(&created.session.id).await.refunds_received,
        1
    );
}

#[tokio::test]
async fn control_errors_use_the_shared_error_body() {
    let (sandbox, _) = spawn(Scheme::RsaSha256).await;
    let http = reqwest::Client::new();
    let missing = http
        .get(format!("{}/_sandbox/sessions/ps_nope", sandbox.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: shared::api::ErrorBody = missing.json().await.unwrap();
    assert_eq!(body.code, shared::api::ErrorCode::PaymentNotFound);
    assert!(sandbox.try_session("ps_nope").await.is_none());

    let bad = http
        .post(format!("{}/_sandbox/faults", sandbox.base_url()))
        .header("content-type", "application/json")
        .body(r#"{"fault":"meteor"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: shared::api::ErrorBody = bad.json().await.unwrap();
    assert_eq!(body.code, shared::api::ErrorCode::InvalidJson);

    let too_much = http
        .post(format!(
            "{}/_sandbox/sessions/ps_usd_partly_1006/chargeback",
            sandbox.base_url()
        ))
        .json(&serde_json::json!({ "amount": 10001 }))
        .send()
        .await
        .unwrap();
    assert_eq!(too_much.status(), 422, "more than the payment");
}

#[tokio::test]
async fn faults_are_injected_with_the_documented_json() {
    let (sandbox, _) = spawn(Scheme::RsaSha256).await;
    let http = reqwest::Client::new();
    let pending: serde_json::Value = http
        .post(format!("{}/_sandbox/faults", sandbox.base_url()))
        .json(&serde_json::json!({ "fault": "delay", "ms": 250, "count": 2, "route": "status" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        pending,
        serde_json::json!([{ "fault": "delay", "ms": 250, "count": 2, "route": "status" }])
    );
    let http_500: serde_json::Value =
        serde_json::to_value(sandbox::FaultRequest::new(sandbox::Fault::Http500)).unwrap();
    assert_eq!(
        http_500,
        serde_json::json!({ "fault": "http_500", "count": 1 })
    );
}

#[tokio::test]
async fn the_control_routes_answer_cors_for_any_origin() {
    let (sandbox, _) = spawn(Scheme::RsaSha256).await;
    let http = reqwest::Client::new();
    let response = http
        .get(format!("{}/_sandbox/sessions", sandbox.base_url()))
        .header("origin", "http://127.0.0.1:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let preflight = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/_sandbox/faults", sandbox.base_url()),
        )
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert!(preflight
        .headers()
        .contains_key("access-control-allow-methods"));
}

#[tokio::test]
async fn the_router_answers_without_a_socket_too() {
    use tower::ServiceExt as _;
    let app = sandbox::app(sandbox::AppState::new(sandbox::SandboxConfig::demo()));
    let request = axum::http::Request::get("/_sandbox/sessions/ps_jpy_1004")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn sessions_are_listed_oldest_first() {
    let (sandbox, _) = spawn(Scheme::RsaSha256).await;
    let sessions = sandbox.sessions().await;
    assert_eq!(sessions[0].session.id.as_str(), "ps_usd_1001");
    assert_eq!(sessions[7].session.id.as_str(), "ps_full_only_1008");
}
