//! Every upstream call is POST JSON with X-PARTNER-PROJECT and an X-PARTNER-SIGN over the
//! exact bytes sent, in both schemes. A capture server records what arrived.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};
use signing::{Scheme, Secret, Verifier};

use crate::helpers::*;

async fn captured_calls(scheme: Scheme) -> Vec<Captured> {
    let upstream = capture_server(ok_session()).await;
    let mut options = Options::new(&upstream.url);
    options.scheme = scheme;
    let app = spawn_app_with(options).await;
    let (status, body) = app
        .get("/api/payments/ps_usd_1001", &app.token("alice"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The capture server shows no new refund afterwards, so the outcome is unknown (202).
    let (status, body) = app
        .refund("ps_usd_1001", &submission(Some(2500), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Reconciliation polls afterwards; the first three calls are the ones under test.
    let mut calls = upstream.requests.lock().unwrap().clone();
    calls.truncate(3);
    calls
}

fn verifier_of_the_merchant(scheme: Scheme) -> Verifier {
    match scheme {
        Scheme::RsaSha256 => {
            Verifier::rsa_from_pem(&demo_key("DEMO-ONLY-merchant-public.pem")).unwrap()
        }
        Scheme::HmacSha256 => Verifier::hmac(Secret::new(HMAC_REQUEST_SECRET)).unwrap(),
    }
}

fn assert_signed(call: &Captured, scheme: Scheme) {
    assert_eq!(call.headers["content-type"], "application/json");
    assert_eq!(call.headers["x-partner-project"], "demo-project");
    let signature = call.headers["x-partner-sign"].to_str().unwrap();
    match scheme {
        Scheme::HmacSha256 => {
            assert_eq!(signature.len(), 64);
            assert!(signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        Scheme::RsaSha256 => assert!(signature.len() > 300, "base64 of a 2048-bit signature"),
    }
    verifier_of_the_merchant(scheme)
        .verify(&call.body, Some(signature))
        .expect("signature over the exact bytes");
}

#[tokio::test]
async fn status_and_refund_calls_are_signed_over_the_exact_bytes_with_rsa() {
    let calls = captured_calls(Scheme::RsaSha256).await;
    let paths: Vec<&str> = calls.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/session/status",
            "/api/v1/session/status",
            "/api/v1/session/refund"
        ]
    );
    for call in &calls {
        assert_signed(call, Scheme::RsaSha256);
    }
    assert_eq!(&calls[0].body[..], br#"{"session_id":"ps_usd_1001"}"#);
    let refund: Value = serde_json::from_slice(&calls[2].body).unwrap();
    assert_eq!(refund["session_id"], "ps_usd_1001");
    assert_eq!(
        refund["amount_details"],
        json!({"amount": 2500, "currency": "usd"})
    );
    assert_eq!(refund["metadata"]["agent"], "alice");
    assert_eq!(refund["metadata"]["reason"], "requested_by_customer");
    assert!(refund["metadata"]["idempotency_key"]
        .as_str()
        .unwrap()
        .starts_with("key-"));
    assert!(refund["metadata"]["attempt_id"]
        .as_str()
        .unwrap()
        .starts_with("att_"));
}

#[tokio::test]
async fn status_and_refund_calls_are_signed_over_the_exact_bytes_with_hmac() {
    let calls = captured_calls(Scheme::HmacSha256).await;
    assert_eq!(calls.len(), 3);
    for call in &calls {
        assert_signed(call, Scheme::HmacSha256);
    }
    let flipped = {
        let mut body = calls[2].body.to_vec();
        body[5] ^= 1;
        body
    };
    let signature = calls[2].headers["x-partner-sign"].to_str().unwrap();
    assert!(verifier_of_the_merchant(Scheme::HmacSha256)
        .verify(&flipped, Some(signature))
        .is_err());
}

#[tokio::test]
async fn openssl_independently_verifies_the_rsa_signature_of_a_real_call() {
    use base64::Engine as _;
    let calls = captured_calls(Scheme::RsaSha256).await;
    let call = &calls[2];
    let dir = tempfile::tempdir().unwrap();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(call.headers["x-partner-sign"].to_str().unwrap())
        .unwrap();
    std::fs::write(dir.path().join("body"), &call.body).unwrap();
    std::fs::write(dir.path().join("sig"), signature).unwrap();
    std::fs::write(
        dir.path().join("pub.pem"),
        demo_key("DEMO-ONLY-merchant-public.pem"),
    )
    .unwrap();
    let output = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig",
            "body",
        ])
        .output()
        .expect("openssl is installed");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("Verified OK"));
}

#[tokio::test]
async fn the_payment_view_comes_from_session_status() {
    let upstream = capture_server(ok_session()).await;
    let app = spawn_app(&upstream.url).await;
    let view = app.payment("ps_usd_1001").await;
    assert_eq!(view["amount"], json!({"amount": 10000, "currency": "usd"}));
    assert_eq!(view["card"], json!({"brand": "visa", "last4": "4242"}));
    assert_eq!(view["partial_refunds_allowed"], true);
    assert_eq!(view["refunds"], json!([]));
}
