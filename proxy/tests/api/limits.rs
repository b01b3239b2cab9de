//! Agents' refund limits, set by the merchant's backend in the token (`refund_max`,
//! `refund_daily`) or by the proxy's configuration: enforced by the proxy against its ledger,
//! with a stable code and what the agent may still refund.

use reqwest::StatusCode;
use sandbox::control::CreatePayment;
use sandbox::Sandbox;
use serde_json::{json, Value};
use shared::api::Limit;
use shared::{Currency, Money};
use signing::Secret;

use crate::helpers::*;

fn token(agent: &str, refund_max: Option<Value>, refund_daily: Option<Value>) -> String {
    let now = proxy::auth::now_secs();
    let claims = proxy::auth::Claims {
        sub: agent.to_owned(),
        iat: Some(now),
        exp: now + 600,
        refund_max: refund_max.map(|v| serde_json::from_value(v).unwrap()),
        refund_daily: refund_daily.map(|v| serde_json::from_value(v).unwrap()),
        ..proxy::auth::Claims::default()
    };
    proxy::auth::TokenKeys::new(&Secret::new(TOKEN_SECRET)).mint_claims(&claims)
}

async fn refund(
    app: &TestApp,
    token: &str,
    session: &str,
    amount: u64,
    currency: &str,
) -> (StatusCode, Value) {
    app.post(
        &format!("/api/payments/{session}/refunds"),
        token,
        &submission(Some(amount), currency, &fresh_key()),
    )
    .await
}

fn refused(answer: &(StatusCode, Value), code: &str, allowance: u64, currency: &str) {
    let (status, body) = answer;
    assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(
        body["allowance"],
        json!({"amount": allowance, "currency": currency}),
        "{body}"
    );
}

#[tokio::test]
async fn a_refund_limit_holds_at_its_boundary_in_every_exponent() {
    let (sandbox, app) = sandbox_and_app().await;
    // USD cents, JPY whole yen, KWD fils (three decimals).
    let limits = json!({"usd": 5000, "jpy": 3000, "kwd": 2500});
    let alice = token("alice", Some(limits), None);
    for (session, currency, max) in [
        ("ps_usd_1001", "usd", 5000),
        ("ps_jpy_1004", "jpy", 3000),
        ("ps_kwd_1005", "kwd", 2500),
    ] {
        let over = refund(&app, &alice, session, max + 1, currency).await;
        refused(&over, "over_agent_limit", max, currency);
        assert_eq!(
            sandbox.session(session).await.refunds_received,
            0,
            "nothing sent"
        );
        let at = refund(&app, &alice, session, max, currency).await;
        assert_eq!(at.0, StatusCode::CREATED, "{}", at.1);
        let under = refund(&app, &alice, session, max - 1, currency).await;
        assert_eq!(under.0, StatusCode::CREATED, "{}", under.1);
        assert_eq!(sandbox.session(session).await.refunds_received, 2);
    }
    // A currency the map does not name is not limited by it.
    let eur = refund(&app, &alice, "ps_eur_1002", 4000, "eur").await;
    assert_eq!(eur.0, StatusCode::CREATED, "{}", eur.1);
}

#[tokio::test]
async fn the_configured_default_applies_only_where_the_token_sets_none() {
    let (_sandbox, app) = sandbox_and_app_with(|mut o| {
        o.refund_max = Some(Limit::Any(1000));
        o
    })
    .await;
    let plain = token("bob", None, None);
    refused(
        &refund(&app, &plain, "ps_usd_1001", 1001, "usd").await,
        "over_agent_limit",
        1000,
        "usd",
    );
    let senior = token("carol", Some(json!(6000)), None);
    let answer = refund(&app, &senior, "ps_usd_1001", 6000, "usd").await;
    assert_eq!(answer.0, StatusCode::CREATED, "{}", answer.1);
}

/// Currency by currency: a token whose limits name only euros leaves dollars to the
/// configured default, not unlimited.
#[tokio::test]
async fn a_currency_the_token_leaves_out_keeps_the_configured_limit() {
    let (_sandbox, app) = sandbox_and_app_with(|mut o| {
        o.refund_max = Some(Limit::PerCurrency([("usd".to_owned(), 1000)].into()));
        o
    })
    .await;
    let euros_only = token("dana", Some(json!({"eur": 5000})), None);
    refused(
        &refund(&app, &euros_only, "ps_usd_1001", 9000, "usd").await,
        "over_agent_limit",
        1000,
        "usd",
    );
}

#[tokio::test]
async fn a_daily_limit_counts_the_agents_refunds_of_this_utc_day_only() {
    let (sandbox, app) = sandbox_and_app().await;
    let alice = token("alice", None, Some(json!({"usd": 3000})));
    let first = refund(&app, &alice, "ps_usd_1001", 2000, "usd").await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    refused(
        &refund(&app, &alice, "ps_usd_partly_1006", 1500, "usd").await,
        "over_daily_limit",
        1000,
        "usd",
    );
    // Another agent's refunds are theirs.
    let bob = token("bob", None, Some(json!({"usd": 3000})));
    let other = refund(&app, &bob, "ps_usd_partly_1006", 2500, "usd").await;
    assert_eq!(other.0, StatusCode::CREATED, "{}", other.1);
    let exact = refund(&app, &alice, "ps_usd_1001", 1000, "usd").await;
    assert_eq!(exact.0, StatusCode::CREATED, "{}", exact.1);
    refused(
        &refund(&app, &alice, "ps_usd_1001", 1, "usd").await,
        "over_daily_limit",
        0,
        "usd",
    );

    // Across midnight UTC: alice's refunds were yesterday's; today starts from zero.
    let ledger = LedgerSql::open(&app).await;
    ledger
        .execute("UPDATE refunds SET created_at = created_at - 86400000 WHERE agent = 'alice'")
        .await;
    ledger.close().await;
    let tomorrow = refund(&app, &alice, "ps_usd_1001", 3000, "usd").await;
    assert_eq!(tomorrow.0, StatusCode::CREATED, "{}", tomorrow.1);
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 3);
}

async fn usd_payments(sandbox: &Sandbox, count: usize) -> Vec<String> {
    let usd = Currency::parse("usd").unwrap();
    let mut sessions = Vec::new();
    for _ in 0..count {
        let created = sandbox
            .create_payment(CreatePayment::new(Money::new(10_000, usd)))
            .await;
        sessions.push(created.session.id.to_string());
    }
    sessions
}

#[tokio::test]
async fn twenty_concurrent_submissions_never_take_more_than_the_daily_limit() {
    let (sandbox, app) = sandbox_and_app().await;
    let sessions = usd_payments(&sandbox, 20).await;
    let alice = token("alice", None, Some(json!({"usd": 5000})));
    let answers = futures_util::future::join_all(
        sessions
            .iter()
            .map(|session| refund(&app, &alice, session, 1000, "usd")),
    )
    .await;
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 5, "{answers:?}");
    for (status, body) in &answers {
        assert!(
            *status == StatusCode::CREATED || body["code"] == "over_daily_limit",
            "{status} {body}"
        );
    }
    let mut received = 0;
    for session in &sessions {
        received += sandbox.session(session).await.refunds_received;
    }
    assert_eq!(
        received, 5,
        "only what the limit allows reached Smart Glocal"
    );
}

/// `proxy token` mints limited tokens too, as a merchant's backend would.
#[tokio::test]
async fn proxy_token_mints_an_agent_with_limits() {
    let (_sandbox, app) = sandbox_and_app().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_proxy"))
        .args(["token", "--agent", "dora", "--ttl", "5m"])
        .args(["--limit", r#"{"usd": 1000}"#, "--daily-limit", "1500"])
        .env("PROXY_AGENT_TOKEN_SECRET", TOKEN_SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let dora = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    refused(
        &refund(&app, &dora, "ps_usd_1001", 1001, "usd").await,
        "over_agent_limit",
        1000,
        "usd",
    );
    assert_eq!(
        refund(&app, &dora, "ps_usd_1001", 1000, "usd").await.0,
        StatusCode::CREATED
    );
    refused(
        &refund(&app, &dora, "ps_usd_1001", 600, "usd").await,
        "over_daily_limit",
        500,
        "usd",
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_proxy"))
        .args(["token", "--agent", "dora", "--limit", "lots"])
        .env("PROXY_AGENT_TOKEN_SECRET", TOKEN_SECRET)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a limit"));
}

/// A token whose limit names something that is not a currency (`jyp`) is refused as invalid:
/// honoured, it would leave the agent unlimited in the currency the backend meant.
#[tokio::test]
async fn a_token_limiting_no_currency_is_refused() {
    let (sandbox, app) = sandbox_and_app().await;
    for (max, daily) in [
        (Some(json!({"usd": 10000, "jyp": 5000})), None),
        (None, Some(json!({"rur": 500000}))),
        // Not exactly a code: a space would keep it from binding USD.
        (Some(json!({"usd ": 50})), None),
        // One currency twice: which one binds?
        (Some(json!({"usd": 50, "USD": 100000})), None),
    ] {
        let token = token("alice", max, daily);
        let (status, body) = refund(&app, &token, "ps_usd_1001", 100, "usd").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["code"], "token_invalid", "{body}");
    }
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 0);
    // The same limits with real codes are honoured.
    let fine = token("alice", Some(json!({"usd": 10000, "jpy": 5000})), None);
    let (status, body) = refund(&app, &fine, "ps_usd_1001", 100, "usd").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Over the per-refund limit with less than that left of the day, the allowance given is
/// what is left of the day: a retry at that figure goes, where one at the per-refund limit
/// would be refused again.
#[tokio::test]
async fn over_the_refund_limit_the_allowance_is_what_is_left_of_the_day() {
    let (_sandbox, app) = sandbox_and_app().await;
    let june = token(
        "june",
        Some(json!({"usd": 2000})),
        Some(json!({"usd": 5000})),
    );
    for amount in [2000, 2000] {
        let sent = refund(&app, &june, "ps_usd_1001", amount, "usd").await;
        assert_eq!(sent.0, StatusCode::CREATED, "{}", sent.1);
    }
    let over = refund(&app, &june, "ps_usd_1001", 2500, "usd").await;
    refused(&over, "over_agent_limit", 1000, "usd");
    let retry = refund(&app, &june, "ps_usd_1001", 1000, "usd").await;
    assert_eq!(retry.0, StatusCode::CREATED, "{}", retry.1);
}
