//! Randomized input on stable Rust: proptest-driven targets for what parses hostile bytes —
//! webhook verify + parse, the refund request, money text, agent tokens and tickets. Each
//! holds its code to "answers, never panics" plus the invariants that must survive any input.
//!
//! `cargo test` runs one batch of each. `cargo xtask fuzz --seconds N` sets `FUZZ_SECONDS`
//! and each target keeps drawing fresh batches for its share (N / 4) of the time.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use proxy::auth::TokenKeys;
use proxy::ledger::WebhookAction;
use serde_json::{json, Value};
use shared::api::{PaymentView, RefundAmount, RefundState, RefundSubmission, RefundView};
use shared::money::{to_stored, MAX_MINOR_UNITS};
use shared::smart_glocal::PaymentStatus;
use shared::{Currency, Locale, Money, SessionId};
use signing::{Secret, Signer, Verifier};

const TARGETS: u32 = 4;
const SECRET: &str = "fuzz-agent-token-secret-0123456789";
const WEBHOOK_SECRET: &str = "fuzz-webhook-hmac-secret";

/// Runs `test` on values of `strategy`: one batch, or batches until this target's share of
/// `FUZZ_SECONDS` is spent. Prints how many cases ran, for the README's figure.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let budget = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs) / TARGETS);
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    let started = Instant::now();
    let mut cases = 0u64;
    loop {
        // A fresh runner per batch: one that has passed counts its cases as done and would
        // return at once. Each draws its own random seed, so batches do not repeat.
        let mut runner = TestRunner::new(config.clone());
        if let Err(failure) = runner.run(&strategy, &test) {
            panic!("fuzz target `{name}` failed after {cases} cases: {failure}");
        }
        cases += 256;
        match budget {
            Some(budget) if started.elapsed() < budget => continue,
            _ => break,
        }
    }
    eprintln!(
        "fuzz target `{name}`: {cases} cases in {:.1} s, no failure",
        started.elapsed().as_secs_f64()
    );
}

fn all_currencies() -> Vec<Currency> {
    let letters = b'A'..=b'Z';
    let mut found = Vec::new();
    for a in letters.clone() {
        for b in letters.clone() {
            for c in letters.clone() {
                if let Ok(currency) = Currency::parse(&String::from_utf8(vec![a, b, c]).unwrap()) {
                    found.push(currency);
                }
            }
        }
    }
    found
}

/// JSON values shaped like what the target reads, with every leaf drawn from hostile values:
/// the structure gets past `{` so the field handling is what is exercised.
fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        Just(json!(MAX_MINOR_UNITS + 1)),
        "\\PC{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "usd", "jpy", "kwd", "xxx", "USD", "", "full", "partial"
        ])
        .prop_map(Value::from),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,14}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn webhook_verify_and_parse() {
    let signer = Signer::hmac(Secret::new(WEBHOOK_SECRET)).unwrap();
    let verifier = Verifier::hmac(Secret::new(WEBHOOK_SECRET)).unwrap();
    let amount = prop_oneof![any::<u64>(), 0..100_000u64, Just(u64::MAX)];
    let webhook = (
        prop::sample::select(vec!["payment_refunded", "payment_finished", "other"]),
        "ps_[a-z0-9_]{1,12}",
        amount.clone(),
        amount,
        prop::sample::select(vec!["in_progress", "accepted", "failed", "weird"]),
        any_json(),
    )
        .prop_map(|(kind, session, paid, refunded, status, metadata)| {
            json!({"type": kind, "session": {"id": session, "status": "accepted",
                "acquiring_payments": [{"id": "pm_1", "status": "succeeded",
                    "amount_details": {"amount": paid, "currency": "usd"},
                    "refunds": [{"id": "rf_1", "status": status, "metadata": metadata,
                        "amount_details": {"amount": refunded, "currency": "usd"}}]}]}})
        });
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        webhook.prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ];
    let signature = prop_oneof![
        Just(None),
        Just(Some(String::new())),
        "\\PC{0,90}".prop_map(Some),
        Just(Some("signed".to_owned())),
    ];
    fuzz(
        "webhook verify + parse",
        (body, signature),
        |(body, signature)| {
            let signature = signature.map(|s| if s == "signed" { signer.sign(&body) } else { s });
            let verified = verifier.verify(&body, signature.as_deref()).is_ok();
            if signature.as_deref() == Some(signer.sign(&body).as_str()) {
                prop_assert!(verified, "a correct signature verifies");
            }
            let classified = proxy::routes::webhooks::classify(Bytes::from(body));
            // Whatever is applied fits the ledger exactly.
            if let WebhookAction::Apply(refunds) = &classified.action {
                for refund in refunds {
                    prop_assert!(to_stored(refund.amount_details.amount).is_some());
                }
            }
            Ok(())
        },
    );
}

#[test]
fn refund_request_parse_and_check() {
    let currencies = all_currencies();
    let submission = (
        prop_oneof![
            Just(json!("full")),
            (
                any::<u64>(),
                prop::sample::select(vec!["usd", "jpy", "kwd", "eur"])
            )
                .prop_map(|(a, c)| json!({"partial": {"amount": a, "currency": c}})),
            any_json(),
        ],
        prop_oneof![Just(json!("other")), Just(json!("duplicate")), any_json()],
        prop_oneof![Just(Value::Null), "\\PC{0,600}".prop_map(Value::from)],
        prop_oneof!["[A-Za-z0-9_-]{16,64}".prop_map(Value::from), any_json()],
        prop::option::of(("[a-z]{1,8}", any_json())),
    )
        .prop_map(|(amount, reason, note, key, extra)| {
            let mut body = json!({"amount": amount, "reason": reason, "idempotency_key": key});
            if !note.is_null() {
                body["note"] = note;
            }
            if let Some((name, value)) = extra {
                body[name] = value;
            }
            serde_json::to_vec(&body).unwrap()
        });
    let body = prop_oneof![prop::collection::vec(any::<u8>(), 0..256), submission];
    let refunds = prop::collection::vec(
        (
            prop_oneof![any::<u64>(), 0..MAX_MINOR_UNITS],
            prop::sample::select(vec![
                RefundState::Accepted,
                RefundState::Failed,
                RefundState::Unknown,
            ]),
        ),
        0..5,
    );
    let payment = (
        prop_oneof![any::<u64>(), 1..MAX_MINOR_UNITS],
        prop::sample::select(currencies),
        refunds,
        any::<bool>(),
    );
    fuzz(
        "refund request parse + check",
        (body, payment),
        |(body, (paid, currency, refunds, partial))| {
            let Ok(submission) = serde_json::from_slice::<RefundSubmission>(&body) else {
                return Ok(());
            };
            let view = PaymentView {
                session_id: SessionId::parse("ps_fuzz").unwrap(),
                payment_id: "pm_1".into(),
                status: PaymentStatus::Succeeded,
                amount: Money::new(paid, currency),
                payment_type: "card".into(),
                card: None,
                customer_reference: None,
                created_at: None,
                refunds: refunds
                    .into_iter()
                    .map(|(amount, state)| RefundView {
                        attempt_id: None,
                        refund_id: None,
                        amount: Money::new(amount, currency),
                        state,
                        is_chargeback: false,
                        agent: None,
                        reason: None,
                        note: None,
                        error_code: None,
                        error_detail: None,
                        attention: None,
                        created_at: None,
                        finished_at: None,
                    })
                    .collect(),
                partial_refunds_allowed: partial,
                viewer: Default::default(),
                last_event_id: 0,
            };
            if let Ok(money) = view.check_refund(&submission) {
                prop_assert!(money.amount > 0);
                prop_assert!(
                    money.amount <= view.remaining().amount,
                    "never beyond what remains"
                );
                prop_assert_eq!(money.currency, currency);
                if let RefundAmount::Partial(asked) = submission.amount {
                    prop_assert_eq!(asked, money);
                }
            }
            Ok(())
        },
    );
}

#[test]
fn money_parse_and_format() {
    let currencies = all_currencies();
    let text = prop_oneof![
        "\\PC{0,40}",
        "[-−]?[0-9 ,.\u{a0}\u{202f}]{0,30}",
        "[0-9]{1,25}([.,][0-9]{0,5})?",
    ];
    let input = (
        text,
        any::<u64>(),
        prop::sample::select(currencies),
        prop::sample::select(vec![Locale::En, Locale::Ru]),
    );
    fuzz(
        "money parse + format",
        input,
        |(text, amount, currency, locale)| {
            if let Ok(money) = Money::parse(&text, currency, locale) {
                prop_assert!(money.amount > 0 && money.amount <= MAX_MINOR_UNITS);
                let again = Money::parse(&money.format_number(locale), currency, locale);
                prop_assert_eq!(again, Ok(money), "what is read is written back the same");
            }
            let money = Money::new(amount, currency);
            let parsed = Money::parse(&money.format_number(locale), currency, locale);
            if (1..=MAX_MINOR_UNITS).contains(&amount) {
                prop_assert_eq!(parsed, Ok(money));
            } else {
                prop_assert!(parsed.is_err());
            }
            let _ = money.format(locale);
            Ok(())
        },
    );
}

#[test]
fn agent_token_and_ticket_parse() {
    let keys = TokenKeys::new(&Secret::new(SECRET));
    let session = SessionId::parse("ps_usd_1001").unwrap();
    let now = proxy::auth::now_secs();
    let claims = (
        prop_oneof![Just(json!("alice")), any_json()],
        prop_oneof![
            (now - 100_000..now + 100_000).prop_map(Value::from),
            any_json()
        ],
        prop_oneof![
            (now - 100_000..now + 100_000).prop_map(Value::from),
            Just(Value::Null),
            any_json()
        ],
        prop_oneof![Just(Value::Null), Just(json!("events")), any_json()],
        prop_oneof![Just(Value::Null), Just(json!("ps_usd_1001")), any_json()],
        prop_oneof![Just(Value::Null), "[a-f0-9]{8}".prop_map(Value::from)],
    )
        .prop_map(|(sub, exp, iat, scope, session_id, jti)| {
            let claims = json!({"sub": sub, "exp": exp, "iat": iat, "scope": scope,
                "session_id": session_id, "jti": jti});
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap()
        });
    let token = prop_oneof![
        "\\PC{0,200}",
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,50}",
        claims,
    ];
    fuzz("agent token + ticket parse", token, |token| {
        if let Ok(agent) = keys.verify_agent(&token) {
            prop_assert!(!agent.name.trim().is_empty());
            prop_assert!(agent.issued_at <= proxy::auth::now_secs() + 5);
        }
        let _ = keys.check_ticket(&token, &session);
        Ok(())
    });
}
