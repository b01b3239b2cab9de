//! A realistic `payment_refunded` webhook body (~1 KB, built from `shared` types) and the
//! demo keys that sign and verify it, so every signing figure is over the same bytes.

use serde_json::json;
use shared::smart_glocal::{
    AcquiringPayment, AmountDetails, Card, Customer, PaymentDetails, PaymentStatus, Refund,
    RefundStatus, Session, SessionStatus, Webhook, WebhookType,
};
use shared::{Currency, RefundId, SessionId, Timestamp};
use signing::{Secret, Signer, Verifier};

/// The sandbox's demo private key: what signs webhooks in the RSA scheme (2048 bits).
pub const SANDBOX_PRIVATE_KEY: &str = include_str!("../../demo/keys/DEMO-ONLY-sandbox-private.pem");
/// Its public half: what the proxy verifies webhooks with.
pub const SANDBOX_PUBLIC_KEY: &str = include_str!("../../demo/keys/DEMO-ONLY-sandbox-public.pem");
/// The sandbox's webhook secret in the HMAC scheme.
pub const HMAC_SECRET: &str = sandbox::DEMO_HMAC_WEBHOOK_SECRET;

/// A `payment_refunded` webhook for a card payment of 129.90 EUR with two partial refunds:
/// the shape Smart Glocal sends, serialised once, as the proxy receives it.
pub fn webhook_body() -> Vec<u8> {
    let session = SessionId::parse("ps_3f9c2b7e1a5d4c8b9e0f6a2d").expect("a valid session id");
    webhook_for(
        &session,
        &[
            ("rf_7c1e2d9a4b6f4e0c8d3a0001", 1_500),
            ("rf_7c1e2d9a4b6f4e0c8d3a0002", 2_000),
        ],
    )
}

/// The same webhook for `session`, listing `refunds` (id, minor units), all `accepted`:
/// like the real service, each webhook carries every refund of the payment so far.
pub fn webhook_for(session: &SessionId, refunds: &[(&str, u64)]) -> Vec<u8> {
    let eur = Currency::parse("EUR").expect("EUR is an ISO currency");
    let at = |millis: i64| Some(Timestamp::from_unix_millis(1_767_225_600_000 + millis));
    let refunds = refunds
        .iter()
        .zip(1i64..)
        .map(|(&(id, amount), n)| Refund {
            id: RefundId::parse(id).expect("a valid refund id"),
            status: RefundStatus::Accepted,
            created_at: at(n * 60_000),
            finished_at: at(n * 60_000 + 1_500),
            amount_details: AmountDetails {
                amount,
                currency: eur,
            },
            is_chargeback: false,
            metadata: Some(json!({ "reason": "damaged_item", "agent": "agent-042" })),
        })
        .collect();
    let webhook = Webhook {
        kind: WebhookType::PaymentRefunded,
        session: Session {
            id: session.clone(),
            status: SessionStatus::Accepted,
            created_at: at(0),
            updated_at: at(3 * 60_000 + 1_500),
            acquiring_payments: vec![AcquiringPayment {
                id: "ap_9b8a7c6d5e4f3a2b1c0d".into(),
                status: PaymentStatus::Succeeded,
                created_at: at(0),
                finished_at: at(2_000),
                customer: Some(Customer {
                    reference: Some("customer-000123456".into()),
                }),
                payment_details: Some(PaymentDetails {
                    kind: "bank_card".into(),
                    card: Some(Card {
                        brand: "visa".into(),
                        last4: "4242".into(),
                    }),
                    other: serde_json::Map::new(),
                }),
                amount_details: AmountDetails {
                    amount: 12_990,
                    currency: eur,
                },
                metadata: Some(json!({ "order_id": "order-2026-000987", "channel": "web" })),
                refunds,
            }],
        },
    };
    serde_json::to_vec(&webhook).expect("a webhook serialises")
}

/// Signs webhooks as the sandbox does in the RSA scheme.
pub fn rsa_signer() -> Signer {
    Signer::rsa_from_pem(SANDBOX_PRIVATE_KEY).expect("the demo private key parses")
}

/// Verifies webhooks as the proxy does in the RSA scheme.
pub fn rsa_verifier() -> Verifier {
    Verifier::rsa_from_pem(SANDBOX_PUBLIC_KEY).expect("the demo public key parses")
}

pub fn hmac_signer() -> Signer {
    Signer::hmac(Secret::new(HMAC_SECRET)).expect("a non-empty secret")
}

pub fn hmac_verifier() -> Verifier {
    Verifier::hmac(Secret::new(HMAC_SECRET)).expect("a non-empty secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_body_is_about_one_kilobyte_and_parses_back() {
        let body = webhook_body();
        assert!((900..=1200).contains(&body.len()), "{} bytes", body.len());
        let parsed: Webhook = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed.kind, WebhookType::PaymentRefunded);
    }

    #[test]
    fn bodies_signed_in_either_scheme_verify() {
        let body = webhook_body();
        for (signer, verifier) in [
            (rsa_signer(), rsa_verifier()),
            (hmac_signer(), hmac_verifier()),
        ] {
            let signature = signer.sign(&body);
            assert_eq!(verifier.verify(&body, Some(&signature)), Ok(()));
        }
    }
}
