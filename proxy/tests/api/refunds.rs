//! The refund path end to end against the sandbox: rules, success, refusal.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_partial_refund_is_sent_once_and_accepted_by_webhook() {
    let (sandbox, app) = sandbox_and_app().await;
    let (status, refund) = app
        .refund("ps_usd_1001", &submission(Some(1000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["state"], "in_progress");
    assert_eq!(refund["agent"], "alice");
    assert!(refund["refund_id"].as_str().unwrap().starts_with("rf_"));
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 1);

    let view = app.payment("ps_usd_1001").await;
    assert_eq!(view["refunds"][0]["attempt_id"], refund["attempt_id"]);
    // The ledger's own row: the view would show Smart Glocal's `accepted` before any webhook.
    let attempt = refund["attempt_id"].as_str().unwrap();
    eventually(10, "the webhook accepts the refund", || async {
        LedgerSql::attempt(&app, attempt).await.0 == "accepted"
    })
    .await;
}

/// A NUL, which PostgreSQL's text cannot hold, and the other control characters: refused
/// before anything is recorded or sent, on either ledger (on PostgreSQL the refund's commit
/// used to fail with a 500), while line breaks and tabs stay a note's own.
#[tokio::test]
async fn a_note_with_a_control_character_is_refused_and_nothing_is_sent() {
    let (sandbox, app) = sandbox_and_app().await;
    for note in [
        "charged\0twice",
        "charged\u{1b}[2J twice",
        "charged\u{85}twice",
    ] {
        let body = json!({"amount": {"partial": {"amount": 1000, "currency": "usd"}}, "reason": "other",
            "note": note, "idempotency_key": fresh_key()});
        let (status, answer) = app.refund("ps_usd_1001", &body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{note:?}: {answer}"
        );
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("control characters"),
            "{answer}"
        );
    }
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 0);
    assert_eq!(app.payment("ps_usd_1001").await["refunds"], json!([]));
    let body = json!({"amount": {"partial": {"amount": 1000, "currency": "usd"}}, "reason": "other",
        "note": "charged twice,\r\n\tsee ticket 42", "idempotency_key": fresh_key()});
    let (status, refund) = app.refund("ps_usd_1001", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["note"], "charged twice,\r\n\tsee ticket 42");
}

#[tokio::test]
async fn more_than_remains_is_refused_with_exceeds_remaining() {
    let (sandbox, app) = sandbox_and_app().await;
    let (status, body) = app
        .refund(
            "ps_usd_partly_1006",
            &submission(Some(9000), "usd", &fresh_key()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("exceeds_remaining"))
    );
    assert_eq!(
        sandbox.session("ps_usd_partly_1006").await.refunds_received,
        0
    );
}

#[tokio::test]
async fn a_fully_refunded_payment_is_not_refundable() {
    let (_sandbox, app) = sandbox_and_app().await;
    let (status, body) = app
        .refund(
            "ps_usd_refunded_1007",
            &submission(None, "usd", &fresh_key()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("not_refundable"))
    );
}

#[tokio::test]
async fn another_currency_is_a_currency_mismatch() {
    let (_sandbox, app) = sandbox_and_app().await;
    let (status, body) = app
        .refund("ps_usd_1001", &submission(Some(100), "eur", &fresh_key()))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("currency_mismatch"))
    );
}

#[tokio::test]
async fn zero_and_three_decimal_currencies_refund_in_minor_units() {
    let (sandbox, app) = sandbox_and_app().await;
    let (status, body) = app
        .refund("ps_jpy_1004", &submission(Some(500), "jpy", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["amount"], json!({"amount": 500, "currency": "jpy"}));
    let (status, body) = app
        .refund("ps_kwd_1005", &submission(Some(1250), "kwd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let kwd = sandbox.session("ps_kwd_1005").await.session;
    assert_eq!(
        kwd.payment().unwrap().refunds[0].amount_details.amount,
        1250
    );
}

#[tokio::test]
async fn a_merchant_without_partial_refunds_can_only_refund_in_full() {
    let (sandbox, app) = sandbox_and_app_with(|mut o| {
        o.project = "demo-full-only".into();
        o.partial_refunds = false;
        o
    })
    .await;
    let (status, body) = app
        .refund(
            "ps_full_only_1008",
            &submission(Some(100), "usd", &fresh_key()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("partial_not_allowed")
        )
    );
    let (status, body) = app
        .refund("ps_full_only_1008", &submission(None, "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["amount"]["amount"], 5000);
    assert_eq!(
        sandbox.session("ps_full_only_1008").await.refunds_received,
        1
    );
}

#[tokio::test]
async fn a_refusal_by_smart_glocal_fails_the_attempt_with_upstream_rejected() {
    let (sandbox, app) = sandbox_and_app().await;
    sandbox.inject(sandbox::Fault::Decline).await;
    let key = fresh_key();
    let (status, first) = app
        .refund("ps_usd_1001", &submission(Some(1000), "usd", &key))
        .await;
    assert_eq!(
        (status, first["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("upstream_rejected"))
    );
    assert_eq!(first["provider"]["code"], "refund_declined", "{first}");
    // The same key replays the same answer, Smart Glocal's words included, without calling
    // again (the widget shows the provider's reason from them).
    let (status, replayed) = app
        .refund("ps_usd_1001", &submission(Some(1000), "usd", &key))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(replayed, first);
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 0);
}

#[tokio::test]
async fn a_payment_smart_glocal_does_not_know_is_not_found() {
    let (_sandbox, app) = sandbox_and_app().await;
    let (status, body) = app
        .get("/api/payments/ps_nobody_9999", &app.token("alice"))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("payment_not_found"))
    );
    // Another project's payment is as invisible.
    let (status, _) = app
        .get("/api/payments/ps_full_only_1008", &app.token("alice"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The agent confirms a full refund of what remains while an earlier refund is still in
/// flight; that refund then fails. The confirmed amount binds: the proxy refuses
/// (`409 amount_changed`, nothing sent) rather than refund more than the agent confirmed.
#[tokio::test]
async fn a_full_refund_is_refused_when_more_remains_than_was_confirmed() {
    let (sandbox, app) = sandbox_and_app().await;
    let session = "ps_usd_1001";
    let total = app.payment(session).await["amount"]["amount"]
        .as_u64()
        .unwrap();
    sandbox.inject(sandbox::Fault::FailRefund).await;
    let (status, first) = app
        .refund(session, &submission(Some(1000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    // What the confirmation showed: the rest, with the first refund still in flight.
    let confirmed = json!({"amount": total - 1000, "currency": "usd"});
    eventually(10, "the first refund fails", || async {
        app.payment(session).await["refunds"][0]["state"] == "failed"
    })
    .await;
    // Why, where the widget shows it: Smart Glocal's word, on the look-up as in the event.
    assert_eq!(
        app.payment(session).await["refunds"][0]["error_detail"],
        "Smart Glocal: failed"
    );

    let mut full = submission(None, "usd", &fresh_key());
    full["confirmed_amount"] = confirmed;
    let (status, body) = app.refund(session, &full).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("amount_changed")),
        "{body}"
    );
    assert_eq!(sandbox.session(session).await.refunds_received, 1);

    // Confirmed again at what now remains: sent.
    let mut full = submission(None, "usd", &fresh_key());
    full["confirmed_amount"] = json!({"amount": total, "currency": "usd"});
    let (status, body) = app.refund(session, &full).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["amount"]["amount"].as_u64(), Some(total));
    assert_eq!(sandbox.session(session).await.refunds_received, 2);
}
