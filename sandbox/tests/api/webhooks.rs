//! The `payment_refunded` webhook: shaped like Smart Glocal's, signed over its exact bytes so
//! the proxy's verifier accepts it, and retried on anything but 200 as the retry schedule says.

use std::time::Duration;

use sandbox::{RetryPolicy, SandboxConfig};
use shared::smart_glocal::{RefundStatus, Webhook, WebhookType};
use signing::Scheme;

use crate::helpers::{spawn, spawn_with, webhook_verifier, Receiver};

const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn the_refund_webhook_verifies_with_the_proxys_verifier_in_both_schemes() {
    for scheme in [Scheme::RsaSha256, Scheme::HmacSha256] {
        let (sandbox, merchant) = spawn(scheme).await;
        let receiver = Receiver::start(0).await;
        sandbox.set_webhook_url(&receiver.url);

        let taken = merchant
            .refund("ps_eur_1002", Some((990, "eur")))
            .await
            .session();
        let refund_id = taken["acquiring_payments"][0]["refunds"][0]["id"].clone();

        let webhook = &receiver.wait_for(1, WITHIN).await[0];
        webhook_verifier(scheme)
            .verify(&webhook.body, webhook.signature.as_deref())
            .unwrap_or_else(|e| panic!("{scheme}: {e}"));
        let parsed: Webhook = serde_json::from_slice(&webhook.body).unwrap();
        assert_eq!(parsed.kind, WebhookType::PaymentRefunded);
        assert_eq!(parsed.session.id.as_str(), "ps_eur_1002");
        let refund = &parsed.session.acquiring_payments[0].refunds[0];
        assert_eq!(refund.id.as_str(), refund_id.as_str().unwrap());
        assert_eq!(refund.status, RefundStatus::Accepted);
        assert!(refund.finished_at.is_some());
        assert_eq!(parsed.session.status.as_str(), "accepted");
        assert_has_every_field_of_the_documented_example(&webhook.json());
    }
}

/// Every field of Smart Glocal's example webhook (`shared/tests/fixtures`) is in ours.
fn assert_has_every_field_of_the_documented_example(ours: &serde_json::Value) {
    fn paths(value: &serde_json::Value, prefix: String, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    let path = format!("{prefix}.{key}");
                    out.push(path.clone());
                    paths(inner, path, out);
                }
            }
            serde_json::Value::Array(items) => {
                if let Some(first) = items.first() {
                    paths(first, format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let example: serde_json::Value = serde_json::from_str(include_str!(
        "../../../shared/tests/fixtures/payment_refunded_webhook.json"
    ))
    .unwrap();
    let (mut expected, mut actual) = (Vec::new(), Vec::new());
    paths(&example, String::new(), &mut expected);
    paths(ours, String::new(), &mut actual);
    let missing: Vec<&String> = expected.iter().filter(|p| !actual.contains(p)).collect();
    assert!(
        missing.is_empty(),
        "fields missing from the webhook: {missing:?}"
    );
}

#[tokio::test]
async fn after_the_webhook_the_status_call_shows_the_refund_accepted() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let receiver = Receiver::start(0).await;
    sandbox.set_webhook_url(&receiver.url);
    merchant
        .refund("ps_rub_1003", Some((500000, "rub")))
        .await
        .session();
    receiver.wait_for(1, WITHIN).await;
    let session = merchant.status("ps_rub_1003").await.session();
    assert_eq!(
        session["acquiring_payments"][0]["refunds"][0]["status"],
        "accepted"
    );
}

/// The session is `in_progress` while any of its refunds is: the first refund's webhook, sent
/// while a second is still going, says so; the last one's says `accepted`.
#[tokio::test]
async fn the_session_stays_in_progress_until_its_last_refund_finishes() {
    let config = SandboxConfig::demo_scheme(Scheme::RsaSha256)
        .fast()
        .with_webhook_delay(Duration::from_millis(600));
    let (sandbox, merchant) = spawn_with(config).await;
    let receiver = Receiver::start(0).await;
    sandbox.set_webhook_url(&receiver.url);
    merchant
        .refund("ps_usd_1001", Some((1000, "usd")))
        .await
        .session();
    tokio::time::sleep(Duration::from_millis(200)).await;
    merchant
        .refund("ps_usd_1001", Some((2000, "usd")))
        .await
        .session();

    let first = receiver.wait_for(1, WITHIN).await[0].json();
    let refunds = first["session"]["acquiring_payments"][0]["refunds"].clone();
    assert_eq!(refunds[0]["status"], "accepted", "{first}");
    assert_eq!(refunds[1]["status"], "in_progress", "{first}");
    assert_eq!(first["session"]["status"], "in_progress", "{first}");
    let last = receiver.wait_for(2, WITHIN).await[1].json();
    assert_eq!(last["session"]["status"], "accepted", "{last}");
}

#[tokio::test]
async fn a_refused_webhook_is_retried_until_answered_200() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let receiver = Receiver::start(2).await;
    sandbox.set_webhook_url(&receiver.url);
    merchant.refund("ps_usd_1001", None).await.session();

    let arrived = receiver.wait_for(3, WITHIN).await;
    // The same bytes and signature every time: the body is serialised once.
    assert!(arrived
        .iter()
        .all(|r| r.body == arrived[0].body && r.signature == arrived[0].signature));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 3, "no retry after a 200");
}

/// The schedule itself (intervals, cap, how many fit the window) is unit-tested without a
/// clock in `sandbox/src/config.rs`; this only checks that delivery follows it, with bounds
/// loose enough for a loaded machine.
#[tokio::test]
async fn a_refused_webhook_is_retried_then_stops_after_the_schedules_last_attempt() {
    let retry = RetryPolicy::quick(Duration::from_millis(20), Duration::from_millis(300));
    // Pauses of 20, 40, 80 and 160 ms, then none: 300 ms of pauses in all.
    let attempts = usize::try_from(retry.max_attempts()).unwrap();
    assert_eq!(attempts, 5, "the schedule this test is written for");
    let config = SandboxConfig::demo().fast().with_webhook_retry(retry);
    let (sandbox, merchant) = spawn_with(config).await;
    let receiver = Receiver::start(usize::MAX).await;
    sandbox.set_webhook_url(&receiver.url);
    merchant.refund("ps_usd_1001", None).await.session();

    let retried = receiver.wait_for(2, WITHIN).await;
    let gap = retried[1].at - retried[0].at;
    assert!(
        gap >= retry.first_interval,
        "the retry waits at least the first pause: {gap:?}"
    );
    receiver.wait_for(attempts, WITHIN).await;
    // Another attempt would follow within 160 ms (the schedule's longest pause) of the last.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received().len(),
        attempts,
        "no attempt after the schedule's last"
    );
}

#[tokio::test]
async fn a_refund_finishes_even_when_its_webhook_cannot_be_delivered() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    // Nothing listens on port 9 of the loopback in these sandboxes.
    sandbox.set_webhook_url("http://127.0.0.1:9/webhooks/smart-glocal");
    merchant.refund("ps_usd_1001", None).await.session();
    // The refund finishes regardless of the webhook (retries and giving up are the other
    // tests', against receivers that count).
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let session = merchant.status("ps_usd_1001").await.session();
        let status = session["acquiring_payments"][0]["refunds"][0]["status"].clone();
        if status == "accepted" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_webhook_url_set_while_retrying_is_used_by_the_next_attempt() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let refusing = Receiver::start(usize::MAX).await;
    sandbox.set_webhook_url(&refusing.url);
    let refunded = merchant.refund("ps_usd_1001", None).await.session();
    assert_eq!(
        refunded["acquiring_payments"][0]["refunds"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // Delivery is under way and was refused at least once before the address changes.
    let refused = refusing.wait_for(1, WITHIN).await;
    let receiver = Receiver::start(0).await;
    sandbox.set_webhook_url(&receiver.url);
    let arrived = receiver.wait_for(1, WITHIN).await;
    assert_eq!(
        arrived[0].body, refused[0].body,
        "the new address gets a retry of the refused webhook, not another one"
    );
}

#[tokio::test]
async fn a_chargeback_arrives_as_payment_refunded_with_is_chargeback() {
    let (sandbox, _merchant) = spawn(Scheme::HmacSha256).await;
    let receiver = Receiver::start(0).await;
    sandbox.set_webhook_url(&receiver.url);

    let after = sandbox.chargeback("ps_usd_1001", 4000).await;
    assert_eq!(
        after.refunds_received, 0,
        "a chargeback is not a refund the merchant asked for"
    );

    let webhook = &receiver.wait_for(1, WITHIN).await[0];
    webhook_verifier(Scheme::HmacSha256)
        .verify(&webhook.body, webhook.signature.as_deref())
        .unwrap();
    let refund = webhook.last_refund();
    assert_eq!(refund["is_chargeback"], true);
    assert_eq!(refund["status"], "accepted");
    assert_eq!(refund["amount_details"]["amount"], 4000);
    assert_eq!(webhook.json()["type"], "payment_refunded");
}

#[tokio::test]
async fn each_project_can_have_its_own_webhook_address() {
    let (sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let main = Receiver::start(0).await;
    let full_only = Receiver::start(0).await;
    sandbox.set_webhook_url(&main.url);
    sandbox.set_project_webhook_url("demo-full-only", &full_only.url);

    merchant
        .for_project("demo-full-only")
        .refund("ps_full_only_1008", None)
        .await
        .session();
    let arrived = full_only.wait_for(1, WITHIN).await;
    assert_eq!(arrived[0].json()["session"]["id"], "ps_full_only_1008");
    assert!(main.received().is_empty());
}
