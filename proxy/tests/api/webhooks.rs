//! Webhooks: verified on the raw bytes before parsing; forged ones change nothing; verified
//! ones are stored and applied without ever going backwards.

use rand::seq::SliceRandom;
use reqwest::StatusCode;
use serde_json::{json, Value};
use signing::{Scheme, Secret, Signer};

use crate::helpers::*;

fn sandbox_signer() -> Signer {
    Signer::rsa_from_pem(&demo_key("DEMO-ONLY-sandbox-private.pem")).unwrap()
}

async fn send(app: &TestApp, body: &[u8], signature: Option<String>) -> (StatusCode, Value) {
    let mut request = app
        .client
        .post(app.webhook_url())
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-partner-sign", signature);
    }
    read(request.send().await.unwrap()).await
}

fn seed_example() -> Vec<u8> {
    std::fs::read(format!(
        "{}/../shared/tests/fixtures/payment_refunded_webhook.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn history(app: &TestApp, session: &str) -> Vec<Value> {
    let (status, body) = app
        .get(
            &format!("/api/payments/{session}/history"),
            &app.token("alice"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

#[tokio::test]
async fn the_seed_webhook_example_signed_is_accepted_and_recorded_as_refunded_elsewhere() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let body = seed_example();
    let (status, _) = send(&app, &body, Some(sandbox_signer().sign(&body))).await;
    assert_eq!(status, StatusCode::OK);
    let history = history(&app, "ps_3230").await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["kind"], "refunded_elsewhere");
    assert_eq!(history[0]["refund_id"], "rf_203");
    assert_eq!(history[0]["state"], "accepted");
}

#[tokio::test]
async fn a_webhook_with_a_single_flipped_byte_is_rejected_and_changes_nothing() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let body = seed_example();
    let signature = sandbox_signer().sign(&body);
    let mut flipped = body.clone();
    let at = flipped.iter().position(|b| *b == b'1').unwrap();
    flipped[at] = b'2';
    let (status, answer) = send(&app, &flipped, Some(signature)).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("signature_invalid"))
    );
    assert!(history(&app, "ps_3230").await.is_empty());
}

#[tokio::test]
async fn a_webhook_without_a_signature_is_rejected() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let (status, answer) = send(&app, &seed_example(), None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("signature_invalid"))
    );
    let (status, answer) = send(&app, &seed_example(), Some("not base64 !!".into())).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("signature_invalid"))
    );
    assert!(history(&app, "ps_3230").await.is_empty());
}

#[tokio::test]
async fn hmac_webhooks_are_verified_with_the_shared_secret() {
    let mut options = Options::new("http://127.0.0.1:9");
    options.scheme = Scheme::HmacSha256;
    let app = spawn_app_with(options).await;
    let body = seed_example();
    let good = Signer::hmac(Secret::new(HMAC_WEBHOOK_SECRET))
        .unwrap()
        .sign(&body);
    let wrong = Signer::hmac(Secret::new("another-secret"))
        .unwrap()
        .sign(&body);
    assert_eq!(
        send(&app, &body, Some(wrong)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(&app, &body, Some(good)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_same_webhook_46_times_in_shuffled_order_ends_in_one_final_state() {
    let (sandbox, app) = sandbox_and_app().await;
    // The sandbox sends none of its own: the test is the only webhook sender.
    sandbox.clear_webhook_url();
    let (status, refund) = app
        .refund("ps_usd_1001", &submission(Some(4000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    let refund_id = refund["refund_id"].as_str().unwrap().to_owned();

    let session = sandbox.session("ps_usd_1001").await.session;
    let with_status = |status: &str| {
        let mut webhook = json!({"type": "payment_refunded", "session": session});
        for r in webhook["session"]["acquiring_payments"][0]["refunds"]
            .as_array_mut()
            .unwrap()
        {
            if r["id"] == refund_id.as_str() {
                r["status"] = json!(status);
            }
        }
        serde_json::to_vec(&webhook).unwrap()
    };
    let mut deliveries: Vec<Vec<u8>> = Vec::new();
    for i in 0..46 {
        deliveries.push(with_status(if i % 3 == 0 {
            "in_progress"
        } else {
            "accepted"
        }));
    }
    deliveries.shuffle(&mut rand::rng());
    let sends = deliveries
        .iter()
        .map(|body| send(&app, body, Some(sandbox_signer().sign(body))));
    for (status, _) in futures_util::future::join_all(sends).await {
        assert_eq!(status, StatusCode::OK);
    }

    let view = app.payment("ps_usd_1001").await;
    let refunds = view["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 1, "{view}");
    assert_eq!(refunds[0]["state"], "accepted");
    let accepted = history(&app, "ps_usd_1001")
        .await
        .into_iter()
        .filter(|h| h["state"] == "accepted" && h["kind"] == "webhook")
        .count();
    assert_eq!(accepted, 1, "exactly one transition to accepted");
    // The ledger itself ends accepted: no late `in_progress` went over it.
    let attempt = refund["attempt_id"].as_str().unwrap();
    assert_eq!(
        LedgerSql::attempt(&app, attempt).await,
        ("accepted".to_owned(), refund_id.clone())
    );
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 1);
}

#[tokio::test]
async fn a_late_in_progress_after_accepted_is_recorded_not_applied() {
    let (sandbox, app) = sandbox_and_app().await;
    sandbox.inject(sandbox::Fault::OutOfOrderWebhooks).await;
    let (status, refund) = app
        .refund("ps_usd_1001", &submission(Some(1000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    eventually(10, "the stale webhook is recorded", || async {
        history(&app, "ps_usd_1001")
            .await
            .iter()
            .any(|h| h["kind"] == "webhook_ignored")
    })
    .await;
    let view = app.payment("ps_usd_1001").await;
    assert_eq!(view["refunds"][0]["state"], "accepted");
}

#[tokio::test]
async fn a_chargeback_is_added_to_the_payments_history() {
    let (sandbox, app) = sandbox_and_app().await;
    sandbox.chargeback("ps_eur_1002", 990).await;
    chargeback_recorded(&app, "ps_eur_1002").await;
    let view = app.payment("ps_eur_1002").await;
    assert_eq!(view["refunds"][0]["is_chargeback"], true);
    assert_eq!(view["refunds"][0]["amount"]["amount"], 990);
}

/// Refunded in full, then disputed anyway (the merchant pays twice): the chargeback is
/// recorded beside the refund, the payment reads as disputed with nothing left to refund,
/// and a further refund is refused with nothing sent.
#[tokio::test]
async fn a_payment_refunded_in_full_then_charged_back_is_read_and_refused_cleanly() {
    let (sandbox, app) = sandbox_and_app().await;
    let (status, refund) = app
        .refund("ps_eur_1002", &submission(None, "eur", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    sandbox.chargeback("ps_eur_1002", 4990).await;
    chargeback_recorded(&app, "ps_eur_1002").await;
    let view: shared::api::PaymentView =
        serde_json::from_value(app.payment("ps_eur_1002").await).unwrap();
    assert_eq!(view.refunds.len(), 2, "{view:?}");
    assert_eq!(view.remaining().amount, 0);
    assert_eq!(view.state(), shared::api::PaymentState::Disputed);
    let (status, body) = app
        .refund("ps_eur_1002", &submission(Some(100), "eur", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(sandbox.session("ps_eur_1002").await.refunds_received, 1);
}

/// Waits until the payment's history has the chargeback's line.
async fn chargeback_recorded(app: &TestApp, session: &str) {
    eventually(10, "the chargeback appears", || async {
        history(app, session)
            .await
            .iter()
            .any(|h| h["kind"] == "chargeback")
    })
    .await;
}

/// The ledger's state of the attempt and how many times reconciliation polled it.
async fn ledger_row(app: &TestApp, attempt: &str) -> (String, i64) {
    let ledger = LedgerSql::open(app).await;
    let state = ledger
        .text("SELECT state FROM refunds WHERE attempt_id = $1", attempt)
        .await;
    let polls = ledger
        .text(
            "SELECT CAST(polls AS TEXT) FROM refunds WHERE attempt_id = $1",
            attempt,
        )
        .await;
    ledger.close().await;
    (state, polls.parse().unwrap())
}

#[tokio::test]
async fn a_refund_whose_webhook_never_comes_is_recorded_as_it_ended_after_its_polls_run_out() {
    // Smart Glocal finishes the refund 3 s after taking it and never sends the webhook (it
    // gave up, or lost it). By then reconciliation has polled it `reconcile_max_polls` times.
    let (sandbox, app) = webhooks_after(std::time::Duration::from_secs(3), |mut o| {
        o.reconcile_interval_ms = 50;
        o.reconcile_max_polls = 2;
        o
    })
    .await;
    sandbox
        .inject(sandbox::FaultRequest::new(sandbox::Fault::NoWebhook))
        .await;
    let (status, view) = app
        .refund("ps_usd_1001", &submission(Some(2500), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let attempt = view["attempt_id"].as_str().unwrap().to_owned();
    eventually(
        10,
        "polled as often as reconcile_max_polls says",
        || async { ledger_row(&app, &attempt).await.1 >= 2 },
    )
    .await;
    assert_eq!(
        ledger_row(&app, &attempt).await.0,
        "in_progress",
        "Smart Glocal has not finished it yet"
    );
    // Polling goes on, more slowly, until the ledger holds how the refund ended.
    eventually(10, "the ledger records the refund accepted", || async {
        ledger_row(&app, &attempt).await.0 == "accepted"
    })
    .await;
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 1);
}

/// A signed webhook of a payment of 10.00 with 200 noted refunds of 0.05, well over 64 KiB.
fn noted_refunds_webhook() -> Vec<u8> {
    let mut webhook: Value = serde_json::from_slice(&seed_example()).unwrap();
    let note = "Возврат по просьбе покупателя, товар не подошёл. ".repeat(4);
    let refunds: Vec<Value> = (0u128..200)
        .map(|i| {
            json!({
                // Ids as Smart Glocal's look: nothing a compressor shortens much.
                "id": format!("rf_{:032x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
                "status": "accepted",
                "amount_details": {"amount": 5, "currency": "usd"},
                "metadata": {"note": note},
            })
        })
        .collect();
    webhook["session"]["acquiring_payments"][0]["refunds"] = Value::Array(refunds);
    serde_json::to_vec(&webhook).unwrap()
}

/// The few places for large webhook bodies cannot be held by senders that stall or trickle:
/// one that pauses past `LARGE_STALL`, or sends less than `LARGE_MIN_RATE` once it has held
/// its place that long, gives it up (408), and Smart Glocal's large webhook, queued behind
/// them, is taken.
#[tokio::test]
async fn senders_stalling_in_the_places_for_large_bodies_do_not_keep_a_webhook_out() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let body = noted_refunds_webhook();
    // First senders that stop; then senders that go on, a byte every 300 ms (never pausing a
    // whole second): each time as many as there are places, then Smart Glocal's webhook.
    for trickle in [false, true] {
        let holders: Vec<_> = (0..proxy::routes::webhooks::LARGE_AT_ONCE)
            .map(|_| tokio::spawn(hold_a_large_place(app.addr, trickle)))
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        let (status, answer) = send(&app, &body, Some(sandbox_signer().sign(&body))).await;
        assert_eq!(status, StatusCode::OK, "trickle {trickle}: {answer}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "trickle {trickle}: taken once the holders gave their places up, not at their clock's end"
        );
        for holder in holders {
            let answer = holder.await.unwrap();
            assert!(
                answer.starts_with(b"HTTP/1.1 408"),
                "trickle {trickle}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
}

/// Posts a webhook announced as 4 MB, sends 70 KB of it (one of the places for large bodies
/// is its), then stops or, with `trickle`, sends a byte every 300 ms; the proxy's answer.
async fn hold_a_large_place(proxy: std::net::SocketAddr, trickle: bool) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(proxy).await.unwrap();
    socket
        .write_all(
            b"POST /webhooks/smart-glocal HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n",
        )
        .await
        .unwrap();
    socket.write_all(&vec![b' '; 70 * 1024]).await.unwrap();
    let (mut reading, mut writing) = socket.into_split();
    let mut answer = vec![0; 64];
    let read = loop {
        tokio::select! {
            read = reading.read(&mut answer) => break read.unwrap_or(0),
            () = tokio::time::sleep(std::time::Duration::from_millis(300)), if trickle => {
                let _ = writing.write_all(b" ").await;
            }
        }
    };
    answer.truncate(read);
    answer
}

/// Every webhook carries its session whole, each refund with its metadata: a payment with a
/// few dozen noted refunds sends webhooks well over `body_limit_bytes` (64 KiB), which are
/// taken, recorded and applied (on PostgreSQL too, where an index on the webhook's refunds
/// once refused a few hundred); a body past the webhook limit (4 MiB) is refused as too large.
#[tokio::test]
async fn a_webhook_past_the_body_limit_is_taken_whole_up_to_its_own_limit() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let body = noted_refunds_webhook();
    assert!(body.len() > 64 * 1024, "{} bytes", body.len());
    let (status, answer) = send(&app, &body, Some(sandbox_signer().sign(&body))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let history = history(&app, "ps_3230").await;
    assert_eq!(history.len(), 200, "{history:?}");
    assert!(history.iter().all(|h| h["kind"] == "refunded_elsewhere"));

    let mut padded = body.clone();
    padded.resize(4 * 1024 * 1024 + 1, b' ');
    let (status, answer) = send(&app, &padded, Some(sandbox_signer().sign(&padded))).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
}

/// A webhook received again (Smart Glocal's retry, or a captured one replayed, signature and
/// all) is answered 200, changes nothing and is not kept again: replays add nothing to the
/// ledger, however many and however large. A late status received again adds no second
/// history line.
#[tokio::test]
async fn a_webhook_received_again_keeps_no_body_and_no_line_again() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let body = seed_example();
    let signature = sandbox_signer().sign(&body);
    for _ in 0..3 {
        let (status, answer) = send(&app, &body, Some(signature.clone())).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    // The same refund, still in progress: Smart Glocal's late word, replayed.
    let mut late: Value = serde_json::from_slice(&body).unwrap();
    late["session"]["acquiring_payments"][0]["refunds"][0]["status"] = json!("in_progress");
    let late = serde_json::to_vec(&late).unwrap();
    let late_signature = sandbox_signer().sign(&late);
    // Together, as a burst of retries comes (copies in one batch of the ledger's writer are
    // the unit test `a_late_status_twice_in_one_batch_is_one_history_line`).
    let once = || send(&app, &late, Some(late_signature.clone()));
    let (a, b, c) = tokio::join!(once(), once(), once());
    for (status, answer) in [a, b, c] {
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    let ledger = LedgerSql::open(&app).await;
    let received = ledger.int("SELECT COUNT(*) FROM webhooks").await;
    let bodies = ledger
        .int("SELECT COALESCE(SUM(LENGTH(raw_body)), 0) FROM webhooks")
        .await;
    ledger.close().await;
    assert_eq!(received, 2, "each webhook once");
    assert_eq!(
        bodies,
        i64::try_from(body.len() + late.len()).unwrap(),
        "each body once"
    );
    let history = history(&app, "ps_3230").await;
    let kinds: Vec<&str> = history
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["refunded_elsewhere", "webhook_ignored"],
        "{history:#?}"
    );
    let metrics = metrics(&app).await;
    assert!(
        metrics.contains(r#"proxy_webhooks_total{outcome="duplicate"} 4"#),
        "{metrics}"
    );
}
