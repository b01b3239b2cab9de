//! Each injected fault does what it says, to exactly the calls it was aimed at.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use sandbox::{Fault, FaultRequest, FaultRoute, Sandbox};
use signing::Scheme;

use crate::helpers::{refunds, spawn, Receiver};

const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn delay_holds_the_answer_back_then_answers_normally() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    sandbox.inject(Fault::Delay { ms: 1500 }).await;
    let started = Instant::now();
    merchant.status("ps_usd_1001").await.session();
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let started = Instant::now();
    merchant.status("ps_usd_1001").await.session();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "only the next call is delayed"
    );
}

#[tokio::test]
async fn http_500_does_not_apply_the_refund() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    sandbox.inject(Fault::Http500).await;
    let answer = merchant.refund("ps_usd_1001", Some((1000, "usd"))).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let after = sandbox.session("ps_usd_1001").await;
    assert_eq!(after.refunds_received, 0);
    assert!(after.session.acquiring_payments[0].refunds.is_empty());
    // The retry goes through.
    merchant
        .refund("ps_usd_1001", Some((1000, "usd")))
        .await
        .session();
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 1);
}

#[tokio::test]
async fn timeout_applies_the_refund_but_the_answer_never_comes() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    sandbox.inject(Fault::Timeout).await;
    let body = serde_json::to_vec(&serde_json::json!({ "session_id": "ps_usd_1001" })).unwrap();
    let outcome = merchant
        .http
        .post(format!(
            "{}{}",
            merchant.base_url,
            shared::smart_glocal::PATH_REFUND
        ))
        .header("X-PARTNER-PROJECT", "demo-project")
        .header("X-PARTNER-SIGN", merchant.signer.sign(&body))
        .body(body)
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(
        outcome.is_err_and(|e| e.is_timeout()),
        "the caller timed out"
    );
    let after = sandbox.session("ps_usd_1001").await;
    assert_eq!(after.refunds_received, 1, "upstream took the refund");
    assert_eq!(after.session.acquiring_payments[0].refunds.len(), 1);
}

#[tokio::test]
async fn garbage_applies_the_refund_and_answers_something_that_is_not_json() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    sandbox.inject(Fault::Garbage).await;
    let answer = merchant.refund("ps_usd_1001", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        serde_json::from_str::<serde_json::Value>(&answer.text).is_err(),
        "{}",
        answer.text
    );
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 1);
}

#[tokio::test]
async fn decline_refuses_the_refund_and_applies_nothing() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let receiver = Receiver::start(0).await;
    sandbox.set_webhook_url(&receiver.url);
    sandbox.inject(Fault::Decline).await;
    let answer = merchant.refund("ps_usd_1001", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.error_code(), "refund_declined");
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn fail_refund_takes_the_refund_then_the_webhook_says_failed() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let receiver = Receiver::start(0).await;
    sandbox.set_webhook_url(&receiver.url);
    sandbox.inject(Fault::FailRefund).await;
    let taken = merchant.refund("ps_usd_1001", None).await.session();
    assert_eq!(refunds(&taken)[0]["status"], "in_progress");

    let webhook = &receiver.wait_for(1, WITHIN).await[0];
    assert_eq!(webhook.last_refund()["status"], "failed");
    assert!(webhook.last_refund()["finished_at"].is_string());
    // A failed refund gives the money back to what is refundable.
    merchant.refund("ps_usd_1001", None).await.session();
}

#[tokio::test]
async fn duplicate_webhook_sends_the_same_bytes_twice() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let receiver = Receiver::start(0).await;
    sandbox.set_webhook_url(&receiver.url);
    sandbox.inject(Fault::DuplicateWebhook).await;
    merchant.refund("ps_usd_1001", None).await.session();
    let arrived = receiver.wait_for(2, WITHIN).await;
    assert_eq!(arrived[0].body, arrived[1].body);
    assert_eq!(arrived[0].signature, arrived[1].signature);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn out_of_order_webhooks_send_the_final_status_then_a_stale_in_progress() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let receiver = Receiver::start(0).await;
    sandbox.set_webhook_url(&receiver.url);
    sandbox.inject(Fault::OutOfOrderWebhooks).await;
    merchant.refund("ps_usd_1001", None).await.session();
    let arrived = receiver.wait_for(2, WITHIN).await;
    assert_eq!(arrived[0].last_refund()["status"], "accepted");
    assert_eq!(arrived[1].last_refund()["status"], "in_progress");
    assert_eq!(
        arrived[0].last_refund()["id"],
        arrived[1].last_refund()["id"]
    );
}

#[tokio::test]
async fn no_webhook_finishes_the_refund_silently() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let receiver = Receiver::start(0).await;
    sandbox.set_webhook_url(&receiver.url);
    sandbox.inject(Fault::NoWebhook).await;
    merchant.refund("ps_usd_1001", None).await.session();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(receiver.received().is_empty());
    let session = merchant.status("ps_usd_1001").await.session();
    assert_eq!(
        refunds(&session)[0]["status"],
        "accepted",
        "only status shows the outcome"
    );
}

#[tokio::test]
async fn a_fault_hits_count_calls_of_its_route_and_no_more() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    sandbox
        .inject(
            FaultRequest::new(Fault::Http500)
                .times(2)
                .on(FaultRoute::Refund),
        )
        .await;
    assert_eq!(
        merchant.status("ps_usd_1001").await.status,
        StatusCode::OK,
        "status is spared"
    );
    for _ in 0..2 {
        let answer = merchant.refund("ps_usd_1001", Some((100, "usd"))).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    merchant
        .refund("ps_usd_1001", Some((100, "usd")))
        .await
        .session();
}

#[tokio::test]
async fn a_refund_the_rules_refuse_leaves_refund_faults_for_the_next_one() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    sandbox.inject(Fault::Decline).await;
    assert_eq!(
        merchant
            .refund("ps_usd_1001", Some((0, "usd")))
            .await
            .error_code(),
        "invalid_amount"
    );
    assert_eq!(
        merchant.refund("ps_usd_1001", None).await.error_code(),
        "refund_declined"
    );
}

/// A transport fault spoils whatever the call answers: a refund the rules refuse comes back
/// cut off, as an applied one would, and the next refund is answered whole.
#[tokio::test]
async fn garbage_spoils_a_refusal_too_and_is_used_up_by_it() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    sandbox.inject(Fault::Garbage).await;
    let refused = merchant
        .refund("ps_usd_1001", Some((1_000_000, "usd")))
        .await;
    assert_eq!(refused.status, StatusCode::OK);
    assert!(
        serde_json::from_str::<serde_json::Value>(&refused.text).is_err(),
        "{}",
        refused.text
    );
    assert!(pending_faults(&sandbox).await.is_empty());
    let next = merchant.refund("ps_usd_1001", Some((1000, "usd"))).await;
    next.session();
}

/// A refund's fault aimed at the `status` route could never be taken: refused when injected.
#[tokio::test]
async fn a_refund_fault_aimed_at_status_is_refused() {
    let (sandbox, _) = spawn(Scheme::RsaSha256).await;
    for fault in [Fault::Decline, Fault::FailRefund, Fault::NoWebhook] {
        let response = reqwest::Client::new()
            .post(format!("{}/_sandbox/faults", sandbox.base_url()))
            .json(&FaultRequest::new(fault).on(FaultRoute::Status))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{fault:?}");
    }
    assert!(pending_faults(&sandbox).await.is_empty());
}

#[tokio::test]
async fn clearing_faults_removes_those_pending() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    sandbox
        .inject(FaultRequest::new(Fault::Http500).times(5))
        .await;
    assert_eq!(
        pending_faults(&sandbox).await,
        [FaultRequest::new(Fault::Http500).times(5)],
        "the five 500s are pending before the clear, or clearing them proves nothing"
    );
    sandbox.clear_faults().await;
    assert!(
        pending_faults(&sandbox).await.is_empty(),
        "nothing is pending after the clear"
    );
    // None of the five 500s is left: the very next call is answered normally.
    let answer = merchant.status("ps_usd_1001").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.session()["id"], "ps_usd_1001");
}

/// `GET /_sandbox/faults`: the faults not yet used up.
async fn pending_faults(sandbox: &Sandbox) -> Vec<FaultRequest> {
    reqwest::get(format!("{}/_sandbox/faults", sandbox.base_url()))
        .await
        .expect("the sandbox answers")
        .json()
        .await
        .expect("a list of faults")
}
