//! The seed page's examples, copied verbatim, and what Smart Glocal may add later.

use shared::smart_glocal::{
    PaymentStatus, RefundRequest, RefundStatus, Response, SessionStatus, Webhook, WebhookType,
};
use shared::{Currency, Timestamp};

const REFUND_REQUEST: &str = include_str!("fixtures/refund_request.json");
const WEBHOOK: &str = include_str!("fixtures/payment_refunded_webhook.json");
const UNKNOWN_VALUES: &str = include_str!("fixtures/status_response_unknown_values.json");
const ERROR: &str = include_str!("fixtures/error_response.json");

#[test]
fn the_seed_refund_request_parses_as_a_full_refund() {
    let request: RefundRequest = serde_json::from_str(REFUND_REQUEST).unwrap();
    assert_eq!(request.session_id.as_str(), "ps_3230");
    assert_eq!(
        request.amount_details, None,
        "no amount means refund in full"
    );
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        r#"{"session_id":"ps_3230"}"#
    );
}

#[test]
fn the_seed_webhook_parses_and_keeps_every_value() {
    let webhook: Webhook = serde_json::from_str(WEBHOOK).unwrap();
    let at = Timestamp::parse("2024-05-27T02:03:00.000000Z").unwrap();
    assert_eq!(webhook.kind, WebhookType::PaymentRefunded);
    let session = &webhook.session;
    assert_eq!(session.id.as_str(), "ps_3230");
    assert_eq!(session.status, SessionStatus::Accepted);
    assert_eq!(session.created_at, Some(at));
    assert_eq!(session.updated_at, Some(at));
    let payment = &session.acquiring_payments[0];
    assert_eq!(payment.id, "pm_2705");
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    assert_eq!(
        (payment.created_at, payment.finished_at),
        (Some(at), Some(at))
    );
    assert_eq!(
        payment.customer.as_ref().unwrap().reference.as_deref(),
        Some("lucky")
    );
    let details = payment.payment_details.as_ref().unwrap();
    assert_eq!(details.kind, "card");
    let card = details.card.as_ref().unwrap();
    assert_eq!((card.brand.as_str(), card.last4.as_str()), ("visa", "4242"));
    assert_eq!(payment.amount_details.amount, 1000);
    assert_eq!(
        payment.amount_details.currency,
        Currency::parse("usd").unwrap()
    );
    assert_eq!(payment.metadata, Some(serde_json::json!("good")));
    let refund = &payment.refunds[0];
    assert_eq!(refund.id.as_str(), "rf_203");
    assert_eq!(refund.status, RefundStatus::Accepted);
    assert_eq!(
        (refund.created_at, refund.finished_at),
        (Some(at), Some(at))
    );
    assert_eq!(refund.amount_details.amount, 1000);
    assert!(!refund.is_chargeback);

    // Writing it back gives the same JSON value: nothing was lost on the way.
    let original: serde_json::Value = serde_json::from_str(WEBHOOK).unwrap();
    assert_eq!(serde_json::to_value(&webhook).unwrap(), original);
}

#[test]
fn unknown_statuses_and_fields_are_kept_not_rejected() {
    let response: Response = serde_json::from_str(UNKNOWN_VALUES).unwrap();
    let Response::Ok { session } = response else {
        panic!("expected ok")
    };
    let payment = &session.acquiring_payments[0];
    let refund = &payment.refunds[0];
    assert_eq!(refund.status, RefundStatus::Other("awaiting_bank".into()));
    assert_eq!(
        serde_json::to_value(&refund.status).unwrap(),
        "awaiting_bank"
    );
    assert!(refund.is_chargeback);
    assert_eq!(refund.amount_details.currency.exponent(), 3);
    let details = payment.payment_details.as_ref().unwrap();
    assert_eq!(details.kind, "sbp");
    assert!(details.card.is_none());
    assert_eq!(details.other["sbp"]["bank"], "tinkoff");
}

#[test]
fn an_error_envelope_parses_with_its_code() {
    let response: Response = serde_json::from_str(ERROR).unwrap();
    let Response::Error { error } = response else {
        panic!("expected error")
    };
    assert_eq!(error.code, "refund_amount_exceeds");
}

#[test]
fn an_unknown_webhook_type_is_kept() {
    let text = WEBHOOK.replace("payment_refunded", "payout_finished");
    let webhook: Webhook = serde_json::from_str(&text).unwrap();
    assert_eq!(webhook.kind, WebhookType::Other("payout_finished".into()));
}

/// Smart Glocal sending `null` for a text, a list or a flag it could have left out: the
/// answer is still read (an unreadable one would turn a definite refusal into "unknown" and
/// every look-up of the payment into a 502).
#[test]
fn a_null_reads_as_the_field_left_out() {
    let refusal: Response = serde_json::from_str(
        r#"{"status":"error","error":{"code":"refund_declined","description":null}}"#,
    )
    .unwrap();
    let Response::Error { error } = refusal else {
        panic!("expected error")
    };
    assert_eq!(
        (error.code.as_str(), error.description.as_str()),
        ("refund_declined", "")
    );

    let mut original: serde_json::Value = serde_json::from_str(WEBHOOK).unwrap();
    let payment = &mut original["session"]["acquiring_payments"][0];
    payment["payment_details"]["card"]["brand"] = serde_json::Value::Null;
    payment["payment_details"]["card"]["last4"] = serde_json::Value::Null;
    payment["refunds"][0]["is_chargeback"] = serde_json::Value::Null;
    let webhook: Webhook = serde_json::from_value(original.clone()).unwrap();
    let card = webhook.session.acquiring_payments[0]
        .payment_details
        .as_ref()
        .and_then(|details| details.card.as_ref())
        .unwrap();
    assert_eq!((card.brand.as_str(), card.last4.as_str()), ("", ""));
    assert!(!webhook.session.acquiring_payments[0].refunds[0].is_chargeback);

    original["session"]["acquiring_payments"][0]["refunds"] = serde_json::Value::Null;
    let webhook: Webhook = serde_json::from_value(original.clone()).unwrap();
    assert!(webhook.session.acquiring_payments[0].refunds.is_empty());
    original["session"]["acquiring_payments"] = serde_json::Value::Null;
    let webhook: Webhook = serde_json::from_value(original).unwrap();
    assert!(webhook.session.acquiring_payments.is_empty());
}
