//! Four eyes: refunds above `approval_above` wait, recorded and unsent, until a second agent
//! whose token says `can_approve` approves (then they are sent, once) or rejects them; nobody
//! decides on their own request; requests expire.

use reqwest::StatusCode;
use sandbox::Sandbox;
use serde_json::{json, Value};
use shared::api::Limit;
use signing::Secret;

use crate::helpers::*;

const PAYMENT: &str = "ps_usd_1001"; // $100.00

fn token(agent: &str, can_approve: bool, role: Option<&str>) -> String {
    let now = proxy::auth::now_secs();
    let claims = proxy::auth::Claims {
        sub: agent.to_owned(),
        iat: Some(now),
        exp: now + 600,
        can_approve,
        role: role.map(str::to_owned),
        ..proxy::auth::Claims::default()
    };
    proxy::auth::TokenKeys::new(&Secret::new(TOKEN_SECRET)).mint_claims(&claims)
}

/// A proxy where refunds above $50.00 need approval.
async fn four_eyes(adjust: impl FnOnce(Options) -> Options) -> (Sandbox, TestApp) {
    sandbox_and_app_with(|mut o| {
        o.approval_above = Some(Limit::PerCurrency([("usd".to_owned(), 5000)].into()));
        adjust(o)
    })
    .await
}

async fn request(app: &TestApp, token: &str, amount: u64) -> (StatusCode, Value) {
    app.post(
        &format!("/api/payments/{PAYMENT}/refunds"),
        token,
        &submission(Some(amount), "usd", &fresh_key()),
    )
    .await
}

async fn decide(
    app: &TestApp,
    token: &str,
    attempt: &str,
    decision: &str,
    note: Option<&str>,
) -> (StatusCode, Value) {
    let body = match note {
        Some(note) => json!({ "note": note }),
        None => json!({}),
    };
    app.post(
        &format!("/api/payments/{PAYMENT}/refunds/{attempt}/{decision}"),
        token,
        &body,
    )
    .await
}

fn awaiting(answer: &(StatusCode, Value)) -> String {
    assert_eq!(answer.0, StatusCode::ACCEPTED, "{}", answer.1);
    assert_eq!(answer.1["state"], "awaiting_approval", "{}", answer.1);
    answer.1["attempt_id"].as_str().unwrap().to_owned()
}

fn refused(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
}

/// The request `attempt` as the payment lists it.
async fn listed(app: &TestApp, attempt: &str) -> Value {
    let payment = app.payment(PAYMENT).await;
    payment["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["attempt_id"] == attempt)
        .cloned()
        .unwrap_or_else(|| panic!("{attempt} is not listed: {payment}"))
}

async fn received(sandbox: &Sandbox) -> usize {
    sandbox.session(PAYMENT).await.refunds_received
}

async fn history_kinds(app: &TestApp, token: &str) -> Vec<String> {
    let (status, body) = app
        .get(&format!("/api/payments/{PAYMENT}/history"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|line| line["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn above_the_threshold_a_refund_waits_and_a_second_agent_sends_it_once() {
    // One threshold for every currency here: $30.00.
    let (sandbox, app) = four_eyes(|mut o| {
        o.approval_above = Some(Limit::Any(3000));
        o
    })
    .await;
    let junior = token("june", false, Some("support"));
    let senior = token("sam", true, Some("lead"));

    // At the threshold: sent at once.
    let at = request(&app, &junior, 3000).await;
    assert_eq!(at.0, StatusCode::CREATED, "{}", at.1);
    assert_eq!(received(&sandbox).await, 1);

    // A cent above it: recorded, nothing sent, and every widget on the payment sees it.
    let attempt = awaiting(&request(&app, &junior, 3001).await);
    assert_eq!(received(&sandbox).await, 1, "nothing sent before approval");
    let shown = listed(&app, &attempt).await;
    assert_eq!(shown["state"], "awaiting_approval");
    assert_eq!(shown["agent"], "june");

    // The requester has no approver rights.
    refused(
        &decide(&app, &junior, &attempt, "approve", None).await,
        StatusCode::FORBIDDEN,
        "approval_not_allowed",
    );

    // Ten approvals at once, by the approver: one sends, the others find it decided.
    let answers = futures_util::future::join_all((0..10).map(|_| {
        decide(
            &app,
            &senior,
            &attempt,
            "approve",
            Some("checked the order"),
        )
    }))
    .await;
    let sent: Vec<&(StatusCode, Value)> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .collect();
    assert_eq!(sent.len(), 1, "{answers:?}");
    assert_eq!(sent[0].1["state"], "in_progress");
    for other in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        refused(other, StatusCode::CONFLICT, "not_awaiting_approval");
    }
    assert_eq!(received(&sandbox).await, 2, "sent exactly once");

    let kinds = history_kinds(&app, &senior).await;
    for kind in ["approval_requested", "approved"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let (_, lines) = app
        .get(&format!("/api/payments/{PAYMENT}/history"), &senior)
        .await;
    // The requester's role (their token's) is on the request's lines.
    let requested = lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "approval_requested")
        .unwrap();
    assert_eq!(requested["agent"], "june");
    assert_eq!(requested["role"], "support", "{requested}");
    let approved = lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "approved")
        .unwrap();
    assert_eq!(
        approved["detail"], "approved by sam (lead): checked the order",
        "{approved}"
    );
}

#[tokio::test]
async fn nobody_decides_on_their_own_request_whatever_token_they_hold() {
    let (sandbox, app) = four_eyes(|o| o).await;
    let senior = token("sam", true, None);
    let attempt = awaiting(&request(&app, &senior, 8000).await);
    refused(
        &decide(&app, &senior, &attempt, "approve", None).await,
        StatusCode::FORBIDDEN,
        "own_request",
    );
    // A second token for the same agent (another role, minted later) is the same person.
    let again = token("sam", true, Some("admin"));
    assert_ne!(again, senior);
    refused(
        &decide(&app, &again, &attempt, "approve", None).await,
        StatusCode::FORBIDDEN,
        "own_request",
    );
    refused(
        &decide(&app, &again, &attempt, "reject", Some("changed my mind")).await,
        StatusCode::FORBIDDEN,
        "own_request",
    );
    // Nor the same person named with another case or a space, as a backend passing a login
    // through as typed would mint it.
    for same in ["Sam", "sam ", " SAM"] {
        refused(
            &decide(&app, &token(same, true, None), &attempt, "approve", None).await,
            StatusCode::FORBIDDEN,
            "own_request",
        );
    }
    assert_eq!(received(&sandbox).await, 0);
    // Someone else can, with no body at all (the note is optional).
    let other = token("olga", true, None);
    let approved = read(
        app.client
            .post(app.url(&format!(
                "/api/payments/{PAYMENT}/refunds/{attempt}/approve"
            )))
            .bearer_auth(&other)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(approved.0, StatusCode::CREATED, "{}", approved.1);
    assert_eq!(received(&sandbox).await, 1);
}

#[tokio::test]
async fn approval_after_the_payment_was_refunded_meanwhile_is_refused_with_exceeds_remaining() {
    let (sandbox, app) = four_eyes(|o| o).await;
    let attempt = awaiting(&request(&app, &token("june", false, None), 8000).await);
    // Meanwhile another agent refunds half: $50.00 remain, the $80.00 request no longer fits.
    let half = request(&app, &token("mia", false, None), 5000).await;
    assert_eq!(half.0, StatusCode::CREATED, "{}", half.1);

    let answer = decide(&app, &token("sam", true, None), &attempt, "approve", None).await;
    refused(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "exceeds_remaining",
    );
    assert_eq!(received(&sandbox).await, 1, "only mia's refund was sent");
    // Closed, so nobody is offered an approval that cannot be sent.
    let request = listed(&app, &attempt).await;
    assert_eq!(request["state"], "failed", "{request}");
    assert_eq!(request["error_code"], "exceeds_remaining", "{request}");
    assert_eq!(
        app.payment(PAYMENT).await["refunds"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn an_approval_held_back_only_by_an_unresolved_attempt_stays_open_until_it_resolves() {
    let (sandbox, app) = four_eyes(|mut o| {
        o.reconcile_interval_ms = 50;
        o.reconcile_fail_after_ms = 1500;
        o
    })
    .await;
    let attempt = awaiting(&request(&app, &token("june", false, None), 8000).await);
    // Another agent's $50.00 gets no answer (Smart Glocal took nothing): `unknown`, its
    // amount held back until reconciliation knows.
    sandbox
        .inject(sandbox::FaultRequest::new(sandbox::Fault::Http500).on(sandbox::FaultRoute::Refund))
        .await;
    let half = request(&app, &token("mia", false, None), 5000).await;
    assert_eq!(half.0, StatusCode::ACCEPTED, "{}", half.1);
    assert_eq!(half.1["state"], "unknown", "{}", half.1);

    let approver = token("sam", true, None);
    let answer = decide(&app, &approver, &attempt, "approve", None).await;
    refused(&answer, StatusCode::CONFLICT, "refund_in_flight");
    assert_eq!(
        listed(&app, &attempt).await["state"],
        "awaiting_approval",
        "not closed for good"
    );
    assert_eq!(received(&sandbox).await, 0);

    // Reconciliation finds nothing at Smart Glocal for mia's attempt: failed, the hold goes.
    eventually(10, "the request can be approved", || async {
        let answer = decide(&app, &approver, &attempt, "approve", None).await;
        answer.0 == StatusCode::CREATED
    })
    .await;
    assert_eq!(received(&sandbox).await, 1, "june's refund, once");
}

#[tokio::test]
async fn revoking_an_agent_closes_their_requests_awaiting_approval() {
    let (sandbox, app) = four_eyes(|o| o).await;
    let attempt = awaiting(&request(&app, &token("june", false, None), 8000).await);
    let other = awaiting(&request(&app, &token("mia", false, None), 6000).await);
    // june's tokens leaked: whoever held them may have asked for this refund.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_proxy"))
        .args(["revoke", "--agent", "june"])
        .env("PROXY_DATABASE", &app.database)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("1 of their requests awaiting approval closed"),
        "{said}"
    );

    let approver = token("sam", true, None);
    let answer = decide(&app, &approver, &attempt, "approve", None).await;
    refused(&answer, StatusCode::CONFLICT, "not_awaiting_approval");
    let closed = listed(&app, &attempt).await;
    assert_eq!(
        (closed["state"].as_str(), closed["error_code"].as_str()),
        (Some("failed"), Some("approval_rejected")),
        "{closed}"
    );
    assert_eq!(received(&sandbox).await, 0);
    // Another agent's request is theirs to have approved.
    let answer = decide(&app, &approver, &other, "approve", None).await;
    assert_eq!(answer.0, StatusCode::CREATED, "{}", answer.1);
    assert_eq!(received(&sandbox).await, 1);
}

/// An agent has one request awaiting approval per payment at a time: each is a row, a
/// history line and an event that every look-up of the payment reads, and holds nothing back,
/// so without this one agent could add them without end. A retry of the same request still
/// replays it; other agents and other payments are not counted.
#[tokio::test]
async fn an_agent_has_one_request_awaiting_approval_per_payment_at_a_time() {
    let (sandbox, app) = four_eyes(|o| o).await;
    let june = token("june", false, None);
    let first_body = submission(Some(8000), "usd", &fresh_key());
    let path = format!("/api/payments/{PAYMENT}/refunds");
    let first = awaiting(&app.post(&path, &june, &first_body).await);
    refused(
        &request(&app, &june, 6000).await,
        StatusCode::CONFLICT,
        "already_requested",
    );
    let replayed = app.post(&path, &june, &first_body).await;
    assert_eq!(replayed.0, StatusCode::OK, "{}", replayed.1);
    assert_eq!(
        replayed.1["attempt_id"],
        first.as_str(),
        "the same request, replayed"
    );
    awaiting(&request(&app, &token("mia", false, None), 6000).await);
    let elsewhere = app
        .post(
            "/api/payments/ps_usd_partly_1006/refunds",
            &june,
            &submission(Some(6000), "usd", &fresh_key()),
        )
        .await;
    awaiting(&elsewhere);
    // Once decided, june may ask again.
    let sam = token("sam", true, None);
    let rejected = decide(&app, &sam, &first, "reject", Some("ask for less")).await;
    assert_eq!(rejected.0, StatusCode::OK, "{}", rejected.1);
    awaiting(&request(&app, &june, 6000).await);
    assert_eq!(received(&sandbox).await, 0);
}

/// The threshold counts what the agent has refunded of the payment themselves: a request
/// rejected and asked again in pieces below it, or a refund split from the start, waits for
/// the piece that takes the agent's total above it.
#[tokio::test]
async fn a_refund_asked_in_pieces_below_the_threshold_still_waits() {
    let (sandbox, app) = four_eyes(|o| o).await;
    let june = token("june", false, None);
    let attempt = awaiting(&request(&app, &june, 8000).await);
    let sam = token("sam", true, None);
    let rejected = decide(&app, &sam, &attempt, "reject", Some("no proof")).await;
    assert_eq!(rejected.0, StatusCode::OK, "{}", rejected.1);
    // The first piece is within the threshold: sent.
    let first = request(&app, &june, 5000).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    // The second takes june's refunds of this payment to $80.00: it waits.
    let second = awaiting(&request(&app, &june, 3000).await);
    assert_eq!(received(&sandbox).await, 1);
    // What another agent refunds is theirs: mia's $10.00 is within the threshold.
    let mia = request(&app, &token("mia", false, None), 1000).await;
    assert_eq!(mia.0, StatusCode::CREATED, "{}", mia.1);
    assert_eq!(received(&sandbox).await, 2);
    let answer = decide(&app, &sam, &second, "approve", None).await;
    assert_eq!(answer.0, StatusCode::CREATED, "{}", answer.1);
    assert_eq!(received(&sandbox).await, 3);
}

#[tokio::test]
async fn a_rejection_needs_a_note_sends_nothing_and_is_final() {
    let (sandbox, app) = four_eyes(|o| o).await;
    let senior = token("sam", true, None);
    let attempt = awaiting(&request(&app, &token("june", false, None), 9000).await);
    refused(
        &decide(&app, &senior, &attempt, "reject", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "note_required",
    );
    let rejected = decide(
        &app,
        &senior,
        &attempt,
        "reject",
        Some("no proof of return"),
    )
    .await;
    assert_eq!(rejected.0, StatusCode::OK, "{}", rejected.1);
    assert_eq!(rejected.1["state"], "failed");
    assert_eq!(rejected.1["error_code"], "approval_rejected");
    assert_eq!(
        rejected.1["error_detail"],
        "rejected by sam: no proof of return"
    );
    refused(
        &decide(&app, &senior, &attempt, "approve", None).await,
        StatusCode::CONFLICT,
        "not_awaiting_approval",
    );
    assert_eq!(received(&sandbox).await, 0);
    assert!(history_kinds(&app, &senior)
        .await
        .contains(&"rejected".to_owned()));
    // Unknown requests and malformed ids are not found.
    for id in ["att_00000000000000000000000000000000", "nope"] {
        refused(
            &decide(&app, &senior, id, "approve", None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

#[tokio::test]
async fn an_expired_request_cannot_be_approved() {
    let (sandbox, app) = four_eyes(|mut o| {
        o.approval_ttl_ms = 300;
        o
    })
    .await;
    let senior = token("sam", true, None);
    let attempt = awaiting(&request(&app, &token("june", false, None), 9000).await);
    // Reconciliation (every 100 ms here) closes it once the time has passed.
    let mut state = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let payment = app.payment(PAYMENT).await;
        state = payment["refunds"][0].clone();
        if state["state"] == "failed" {
            break;
        }
    }
    assert_eq!(state["state"], "failed", "{state}");
    assert_eq!(state["error_code"], "approval_expired", "{state}");
    refused(
        &decide(&app, &senior, &attempt, "approve", None).await,
        StatusCode::CONFLICT,
        "approval_expired",
    );
    assert_eq!(received(&sandbox).await, 0);
    assert!(history_kinds(&app, &senior)
        .await
        .contains(&"expired".to_owned()));
}

#[tokio::test]
async fn the_payment_tells_the_agent_their_limits_and_the_threshold_before_they_type() {
    let (_sandbox, app) = four_eyes(|o| o).await;
    let now = proxy::auth::now_secs();
    let claims = proxy::auth::Claims {
        sub: "june".into(),
        iat: Some(now),
        exp: now + 600,
        refund_max: Some(Limit::Any(7000)),
        refund_daily: Some(Limit::Any(9000)),
        ..proxy::auth::Claims::default()
    };
    let junior = proxy::auth::TokenKeys::new(&Secret::new(TOKEN_SECRET)).mint_claims(&claims);
    let first = request(&app, &junior, 2500).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let (status, payment) = app.get(&format!("/api/payments/{PAYMENT}"), &junior).await;
    assert_eq!(status, StatusCode::OK, "{payment}");
    let money = |amount: u64| json!({"amount": amount, "currency": "usd"});
    assert_eq!(payment["viewer"]["agent"], "june");
    assert_eq!(payment["viewer"]["can_approve"], false);
    assert_eq!(payment["viewer"]["refund_max"], money(7000));
    assert_eq!(payment["viewer"]["daily_left"], money(6500));
    assert_eq!(payment["viewer"]["approval_above"], money(5000));
    let (_, approver) = app
        .get(
            &format!("/api/payments/{PAYMENT}"),
            &token("sam", true, None),
        )
        .await;
    assert_eq!(approver["viewer"]["can_approve"], true);
    assert!(approver["viewer"].get("refund_max").is_none(), "{approver}");
}

/// A ledger written before agent ids were read trimmed and in lower case holds them as the
/// tokens spelled them. The proxy renames them at start, so the rules that compare them
/// still hold: nobody approves their own request, and a revocation stays in force.
#[tokio::test]
async fn agent_ids_an_older_ledger_spelled_otherwise_still_match_their_agent() {
    let (sandbox, app) = four_eyes(|o| o).await;
    let attempt = awaiting(&request(&app, &token("sam@acme.example", false, None), 8000).await);
    let ledger = LedgerSql::open(&app).await;
    // As the older proxy wrote them: the request under the token's spelling, and a
    // revocation of olga's tokens (until an hour from now) under another.
    ledger
        .execute("UPDATE refunds SET agent = 'Sam@ACME.example'")
        .await;
    let until = proxy::auth::now_secs() + 3600;
    ledger
        .execute(&format!(
            "INSERT INTO agent_revocations (agent, revoked_until, revoked_at) VALUES ('Olga ', {until}, 0)"
        ))
        .await;
    let app = app.restart().await;

    refused(
        &decide(
            &app,
            &token("sam@acme.example", true, None),
            &attempt,
            "approve",
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "own_request",
    );
    refused(
        &decide(&app, &token("olga", true, None), &attempt, "approve", None).await,
        StatusCode::UNAUTHORIZED,
        "token_revoked",
    );
    assert_eq!(received(&sandbox).await, 0);
    let approved = decide(&app, &token("mia", true, None), &attempt, "approve", None).await;
    assert_eq!(approved.0, StatusCode::CREATED, "{}", approved.1);
    assert_eq!(received(&sandbox).await, 1);
}

/// An approval on its way while its approver is revoked (Smart Glocal slow to show the
/// payment meanwhile) approves nothing: the revocation is read where the approval is recorded.
#[tokio::test]
async fn an_approval_under_way_when_its_approver_is_revoked_sends_nothing() {
    use sandbox::{Fault, FaultRequest, FaultRoute};
    let (sandbox, app) = four_eyes(|o| o).await;
    let attempt = awaiting(&request(&app, &token("june", false, None), 8000).await);
    sandbox
        .inject(FaultRequest::new(Fault::Delay { ms: 1200 }).on(FaultRoute::Status))
        .await;
    let olga = token("olga", true, None);
    let approve = decide(&app, &olga, &attempt, "approve", None);
    let revoke = revoke_after(&app, "olga", std::time::Duration::from_millis(300));
    let (answer, ()) = tokio::join!(approve, revoke);
    refused(&answer, StatusCode::UNAUTHORIZED, "token_revoked");
    assert_eq!(received(&sandbox).await, 0);
    assert_eq!(listed(&app, &attempt).await["state"], "awaiting_approval");
}

/// Approving needs no body: none at all, or an empty one of unknown length (chunked), as
/// some HTTP clients send.
#[tokio::test]
async fn an_approval_with_an_empty_chunked_body_is_taken() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (sandbox, app) = four_eyes(|o| o).await;
    let attempt = awaiting(&request(&app, &token("june", false, None), 8000).await);
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let raw = format!(
        "POST /api/payments/{PAYMENT}/refunds/{attempt}/approve HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Bearer {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
        app.addr,
        token("sam", true, None)
    );
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(received(&sandbox).await, 1);
}
