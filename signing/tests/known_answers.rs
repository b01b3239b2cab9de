//! Known-answer tests: HMAC against RFC 4231, RSA against a fixed key checked by openssl.

use std::path::PathBuf;
use std::process::Command;

use signing::{Scheme, Secret, SignatureError, Signer, Verifier};

fn key(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/keys")
            .join(name),
    )
    .unwrap()
}

/// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
#[test]
fn hmac_matches_rfc_4231_test_case_2() {
    let signer = Signer::hmac(Secret::new("Jefe")).unwrap();
    assert_eq!(
        signer.sign(b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

/// RFC 4231 test case 1: key 20 × 0x0b, data "Hi There". The key is not UTF-8-printable but
/// is valid UTF-8, so it fits a `Secret`.
#[test]
fn hmac_matches_rfc_4231_test_case_1() {
    let signer = Signer::hmac(Secret::new("\x0b".repeat(20))).unwrap();
    assert_eq!(
        signer.sign(b"Hi There"),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
}

#[test]
fn hmac_verification_accepts_the_tag_and_rejects_a_flipped_byte() {
    let secret = Secret::new("webhook-secret");
    let body = br#"{"type":"payment_refunded"}"#;
    let tag = Signer::hmac(secret.clone()).unwrap().sign(body);
    let verifier = Verifier::hmac(secret).unwrap();
    assert_eq!(verifier.verify(body, Some(&tag)), Ok(()));
    let mut flipped = body.to_vec();
    flipped[3] ^= 1;
    assert_eq!(
        verifier.verify(&flipped, Some(&tag)),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(verifier.verify(body, None), Err(SignatureError::Missing));
    assert_eq!(
        verifier.verify(body, Some("zz")),
        Err(SignatureError::Malformed)
    );
}

/// RSASSA-PKCS1-v1_5 is deterministic, so a fixed key and message give a fixed signature;
/// openssl computes the same one independently.
#[test]
fn rsa_signature_equals_openssl_and_verifies_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let body = br#"{"session_id":"ps_3230","amount_details":{"amount":500,"currency":"usd"}}"#;
    let body_path = dir.path().join("body.json");
    std::fs::write(&body_path, body).unwrap();
    let keys = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys");

    for private in ["test-pkcs8-private.pem", "test-pkcs1-private.pem"] {
        let signature = Signer::rsa_from_pem(&key(private)).unwrap().sign(body);

        let expected = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(keys.join(private))
            .arg(&body_path)
            .output()
            .expect("openssl is installed by `cargo xtask setup`");
        assert!(expected.status.success());
        use base64::Engine as _;
        let expected = base64::engine::general_purpose::STANDARD.encode(expected.stdout);
        assert_eq!(signature, expected, "{private}");

        let raw = base64::engine::general_purpose::STANDARD
            .decode(&signature)
            .unwrap();
        let sig_path = dir.path().join("body.sig");
        std::fs::write(&sig_path, raw).unwrap();
        let verified = Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(keys.join("test-public.pem"))
            .arg("-signature")
            .arg(&sig_path)
            .arg(&body_path)
            .output()
            .unwrap();
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stdout)
        );
    }
}

#[test]
fn rsa_verification_takes_spki_and_pkcs1_public_keys() {
    let body = b"exact bytes";
    let signature = Signer::rsa_from_pem(&key("test-pkcs8-private.pem"))
        .unwrap()
        .sign(body);
    for public in ["test-public.pem", "test-pkcs1-public.pem"] {
        let verifier = Verifier::rsa_from_pem(&key(public)).unwrap();
        assert_eq!(verifier.verify(body, Some(&signature)), Ok(()));
        assert_eq!(
            verifier.verify(b"exact bytes!", Some(&signature)),
            Err(SignatureError::Mismatch)
        );
    }
}

#[test]
fn keys_of_the_wrong_kind_are_refused_without_echoing_them() {
    let err = Signer::rsa_from_pem(&key("test-public.pem")).unwrap_err();
    assert!(err.to_string().contains("PUBLIC KEY"));
    assert!(Signer::rsa_from_pem("not a key").is_err());
    assert!(Verifier::rsa_from_pem(&key("test-pkcs8-private.pem")).is_err());
    assert!(Signer::from_key(Scheme::HmacSha256, Secret::new("")).is_err());
}

#[test]
fn secrets_never_print() {
    let secret = Secret::new("hunter2");
    // No `Display` at all; `Debug` is redacted.
    assert!(!format!("{secret:?}").contains("hunter2"));
    assert_eq!(secret.expose(), "hunter2");
    let signer = Signer::hmac(secret).unwrap();
    assert!(!format!("{signer:?}").contains("hunter2"));
}
