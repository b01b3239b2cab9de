//! Smart Glocal's refund rules: each rejection has its own code, and an accepted refund gets an
//! `rf_…` id and starts `in_progress`.

use axum::http::StatusCode;
use sandbox::seed::{Seed, SeedSession};
use sandbox::SandboxConfig;
use shared::smart_glocal::PaymentStatus;
use shared::SessionId;
use signing::Scheme;

use crate::helpers::{refunds, spawn, spawn_with};

#[tokio::test]
async fn an_accepted_refund_gets_an_rf_id_and_starts_in_progress() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let session = merchant
        .refund("ps_usd_1001", Some((2500, "usd")))
        .await
        .session();
    assert_eq!(session["status"], "in_progress");
    let refund = &refunds(&session)[0];
    assert!(
        refund["id"].as_str().unwrap().starts_with("rf_"),
        "{refund}"
    );
    assert_eq!(refund["status"], "in_progress");
    assert_eq!(refund["amount_details"]["amount"], 2500);
    assert_eq!(refund["amount_details"]["currency"], "usd");
    assert!(refund.get("finished_at").is_none());
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 1);
}

#[tokio::test]
async fn a_refund_without_an_amount_refunds_what_remains() {
    let (_sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let session = merchant.refund("ps_usd_partly_1006", None).await.session();
    let refunds = refunds(&session);
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[1]["amount_details"]["amount"], 7000);
}

#[tokio::test]
async fn zero_and_three_decimal_currencies_are_refunded_in_minor_units() {
    let (_sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let jpy = merchant
        .refund("ps_jpy_1004", Some((12000, "jpy")))
        .await
        .session();
    assert_eq!(refunds(&jpy)[0]["amount_details"]["amount"], 12000);
    let kwd = merchant
        .refund("ps_kwd_1005", Some((1250, "kwd")))
        .await
        .session();
    assert_eq!(refunds(&kwd)[0]["amount_details"]["amount"], 1250);
}

#[tokio::test]
async fn an_unknown_session_is_not_found() {
    let (_sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    for answer in [
        merchant.status("ps_nope_404").await,
        merchant.refund("ps_nope_404", None).await,
    ] {
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.error_code(), "session_not_found");
    }
}

#[tokio::test]
async fn another_projects_session_is_not_found() {
    let (_sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    assert_eq!(
        merchant.status("ps_full_only_1008").await.error_code(),
        "session_not_found"
    );
    assert_eq!(
        merchant
            .refund("ps_full_only_1008", None)
            .await
            .error_code(),
        "session_not_found"
    );
    let other = merchant.for_project("demo-full-only");
    assert_eq!(
        other.status("ps_usd_1001").await.error_code(),
        "session_not_found"
    );
}

#[tokio::test]
async fn a_payment_that_has_not_succeeded_cannot_be_refunded() {
    let mut seed = Seed::default_seed();
    let mut pending = seed.sessions[0].session.clone();
    pending.id = SessionId::parse("ps_pending_2001").unwrap();
    pending.acquiring_payments[0].status = PaymentStatus::Pending;
    seed.sessions.push(SeedSession {
        project: "demo-project".into(),
        session: pending,
    });
    let (sandbox, merchant) = spawn_with(SandboxConfig::demo().fast().with_seed(seed)).await;

    let answer = merchant.refund("ps_pending_2001", None).await;
    assert_eq!(answer.error_code(), "payment_not_succeeded");
    assert_eq!(sandbox.session("ps_pending_2001").await.refunds_received, 0);
}

#[tokio::test]
async fn a_refund_above_the_remaining_amount_is_rejected() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    // 100.00 paid, 30.00 refunded before: 70.00 remain.
    let answer = merchant
        .refund("ps_usd_partly_1006", Some((7001, "usd")))
        .await;
    assert_eq!(answer.error_code(), "amount_exceeds_remaining");
    merchant
        .refund("ps_usd_partly_1006", Some((7000, "usd")))
        .await
        .session();
    let again = merchant
        .refund("ps_usd_partly_1006", Some((1, "usd")))
        .await;
    assert_eq!(again.error_code(), "amount_exceeds_remaining");
    assert_eq!(
        sandbox.session("ps_usd_partly_1006").await.refunds_received,
        1
    );
}

#[tokio::test]
async fn the_total_refunded_never_exceeds_the_payment() {
    let (_sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    for _ in 0..4 {
        merchant
            .refund("ps_usd_1001", Some((2500, "usd")))
            .await
            .session();
    }
    assert_eq!(
        merchant
            .refund("ps_usd_1001", Some((1, "usd")))
            .await
            .error_code(),
        "amount_exceeds_remaining"
    );
    assert_eq!(
        merchant.refund("ps_usd_1001", None).await.error_code(),
        "amount_exceeds_remaining"
    );
}

#[tokio::test]
async fn a_fully_refunded_payment_cannot_be_refunded_again() {
    let (_sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    assert_eq!(
        merchant
            .refund("ps_usd_refunded_1007", None)
            .await
            .error_code(),
        "amount_exceeds_remaining"
    );
}

#[tokio::test]
async fn a_partial_refund_is_rejected_when_the_project_takes_full_refunds_only() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let full_only = merchant.for_project("demo-full-only");
    let answer = full_only
        .refund("ps_full_only_1008", Some((2000, "usd")))
        .await;
    assert_eq!(answer.error_code(), "partial_refund_not_allowed");
    assert_eq!(
        sandbox.session("ps_full_only_1008").await.refunds_received,
        0
    );
    // The whole amount, named or not, is fine.
    let session = full_only
        .refund("ps_full_only_1008", Some((5000, "usd")))
        .await
        .session();
    assert_eq!(refunds(&session)[0]["amount_details"]["amount"], 5000);
}

#[tokio::test]
async fn a_refund_in_another_currency_is_rejected() {
    let (_sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let answer = merchant.refund("ps_eur_1002", Some((100, "usd"))).await;
    assert_eq!(answer.error_code(), "currency_mismatch");
}

#[tokio::test]
async fn a_refund_of_zero_is_rejected() {
    let (_sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    assert_eq!(
        merchant
            .refund("ps_eur_1002", Some((0, "eur")))
            .await
            .error_code(),
        "invalid_amount"
    );
}

#[tokio::test]
async fn a_negative_or_fractional_amount_is_not_a_request() {
    let (_sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    for amount in [
        serde_json::json!(-5),
        serde_json::json!(1.5),
        serde_json::json!("10"),
    ] {
        let body = serde_json::json!({
            "session_id": "ps_eur_1002",
            "amount_details": { "amount": amount, "currency": "eur" }
        });
        let answer = merchant.call(shared::smart_glocal::PATH_REFUND, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.error_code(), "invalid_request");
    }
}
