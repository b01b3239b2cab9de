//! Every Smart Glocal call must name a known project and carry a signature of its exact bytes.

use axum::http::StatusCode;
use serde_json::json;
use shared::smart_glocal::PATH_STATUS;
use signing::{Scheme, Secret, Signer};

use crate::helpers::{spawn, MERCHANT_PRIVATE_KEY};

const SCHEMES: [Scheme; 2] = [Scheme::RsaSha256, Scheme::HmacSha256];

fn body() -> Vec<u8> {
    serde_json::to_vec(&json!({ "session_id": "ps_usd_1001" })).unwrap()
}

#[tokio::test]
async fn a_correctly_signed_request_is_answered_in_both_schemes() {
    for scheme in SCHEMES {
        let (_sandbox, merchant) = spawn(scheme).await;
        let answer = merchant.status("ps_usd_1001").await;
        assert_eq!(answer.session()["id"], "ps_usd_1001", "{scheme}");
    }
}

#[tokio::test]
async fn a_request_without_a_signature_is_rejected_with_401_in_both_schemes() {
    for scheme in SCHEMES {
        let (_sandbox, merchant) = spawn(scheme).await;
        let answer = merchant
            .send(PATH_STATUS, body(), None, Some("demo-project"))
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{scheme}");
        assert_eq!(answer.error_code(), "invalid_signature");
        let answer = merchant
            .send(PATH_STATUS, body(), Some(""), Some("demo-project"))
            .await;
        assert_eq!(answer.error_code(), "invalid_signature");
    }
}

#[tokio::test]
async fn a_signature_made_with_the_wrong_key_is_rejected_in_both_schemes() {
    for scheme in SCHEMES {
        let (_sandbox, merchant) = spawn(scheme).await;
        let stranger = match scheme {
            // The sandbox's own key is a perfectly good RSA key, just not the merchant's.
            Scheme::RsaSha256 => Signer::rsa_from_pem(include_str!(
                "../../../demo/keys/DEMO-ONLY-sandbox-private.pem"
            ))
            .unwrap(),
            Scheme::HmacSha256 => Signer::hmac(Secret::new("not-the-shared-secret")).unwrap(),
        };
        let signature = stranger.sign(&body());
        let answer = merchant
            .send(PATH_STATUS, body(), Some(&signature), Some("demo-project"))
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{scheme}");
        assert_eq!(answer.error_code(), "invalid_signature");
    }
}

#[tokio::test]
async fn a_body_changed_by_one_byte_after_signing_is_rejected_in_both_schemes() {
    for scheme in SCHEMES {
        let (_sandbox, merchant) = spawn(scheme).await;
        let signed = body();
        let signature = merchant.signer.sign(&signed);
        let mut flipped = signed.clone();
        // `ps_usd_1001` becomes `ps_usd_1000`: still valid JSON, a different request.
        let at = flipped.iter().rposition(|b| *b == b'1').unwrap();
        flipped[at] = b'0';
        let answer = merchant
            .send(PATH_STATUS, flipped, Some(&signature), Some("demo-project"))
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{scheme}");
        assert_eq!(answer.error_code(), "invalid_signature");
    }
}

#[tokio::test]
async fn a_signature_that_is_not_even_well_formed_is_rejected() {
    for scheme in SCHEMES {
        let (_sandbox, merchant) = spawn(scheme).await;
        let answer = merchant
            .send(PATH_STATUS, body(), Some("%%%"), Some("demo-project"))
            .await;
        assert_eq!(answer.error_code(), "invalid_signature", "{scheme}");
    }
}

#[tokio::test]
async fn a_signature_of_the_other_scheme_is_rejected() {
    let (_sandbox, merchant) = spawn(Scheme::HmacSha256).await;
    let rsa = Signer::rsa_from_pem(MERCHANT_PRIVATE_KEY)
        .unwrap()
        .sign(&body());
    let answer = merchant
        .send(PATH_STATUS, body(), Some(&rsa), Some("demo-project"))
        .await;
    assert_eq!(answer.error_code(), "invalid_signature");
}

#[tokio::test]
async fn a_missing_or_unknown_project_is_rejected_with_401() {
    let (_sandbox, merchant) = spawn(Scheme::RsaSha256).await;
    let signature = merchant.signer.sign(&body());
    for project in [None, Some("someone-else"), Some("")] {
        let answer = merchant
            .send(PATH_STATUS, body(), Some(&signature), project)
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{project:?}");
        assert_eq!(answer.error_code(), "unknown_project");
    }
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_request_is_rejected_with_400() {
    let (_sandbox, merchant) = spawn(Scheme::HmacSha256).await;
    for bad in [&b"not json"[..], br#"{"session_id":"3230"}"#, br#"{}"#] {
        let signature = merchant.signer.sign(bad);
        let answer = merchant
            .send(
                PATH_STATUS,
                bad.to_vec(),
                Some(&signature),
                Some("demo-project"),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.error_code(), "invalid_request");
    }
}
