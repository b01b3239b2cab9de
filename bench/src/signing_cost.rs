//! Signing and webhook verification in both schemes over the same ~1 KB webhook body.
//!
//! No goal in the issue: these figures explain the proxy-overhead rows (RSA signing is the
//! one cryptographic cost large enough to show up in a request's latency).

use std::time::Duration;

use crate::fixtures;
use crate::report::{self, Row};
use crate::timing::median_per_call;

const SECTION: &str = "3. signing";

/// Four rows: sign and verify, HMAC-SHA256 and RSA-2048, median time per call.
pub fn measure() -> Vec<Row> {
    let body = fixtures::webhook_body();
    let size = format!("{} B body", body.len());
    let samples = 21;
    let batch = Duration::from_millis(20);

    let hmac = fixtures::hmac_signer();
    let hmac_verifier = fixtures::hmac_verifier();
    let hmac_signature = hmac.sign(&body);
    let rsa = fixtures::rsa_signer();
    let rsa_verifier = fixtures::rsa_verifier();
    let rsa_signature = rsa.sign(&body);

    let hmac_sign = median_per_call(samples, batch, || hmac.sign(&body));
    let hmac_verify = median_per_call(samples, batch, || {
        hmac_verifier.verify(&body, Some(&hmac_signature))
    });
    let rsa_sign = median_per_call(samples, batch, || rsa.sign(&body));
    let rsa_verify = median_per_call(samples, batch, || {
        rsa_verifier.verify(&body, Some(&rsa_signature))
    });

    vec![
        Row::plain(
            SECTION,
            format!("HMAC-SHA256 sign, {size}"),
            report::duration(hmac_sign),
        ),
        Row::plain(
            SECTION,
            format!("RSA-2048 sign, {size}"),
            report::duration(rsa_sign),
        )
        .baseline(format!("{:.0}× HMAC sign", ratio(rsa_sign, hmac_sign))),
        Row::plain(
            SECTION,
            "webhook verify, HMAC-SHA256",
            report::duration(hmac_verify),
        ),
        Row::plain(
            SECTION,
            "webhook verify, RSA-2048",
            report::duration(rsa_verify),
        )
        .baseline(format!(
            "{:.0}× HMAC verify",
            ratio(rsa_verify, hmac_verify)
        )),
    ]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}
