//! Proxy overhead on the refund path: the same payments looked up and refunded, at the same
//! fixed rate, once straight against the sandbox and once through the proxy; the added p50 and
//! p99 latency, in both signing schemes.
//!
//! One "agent flow" per payment: a status look-up, then a full refund. Direct, a look-up is a
//! signed `session/status` and a refund is `session/status` then `session/refund` (what any
//! correct client sends, and exactly what the proxy sends upstream for one refund); through
//! the proxy they are `GET /api/payments/{id}` and `POST /api/payments/{id}/refunds`. So the
//! difference is the proxy's own cost: agent auth, the ledger's durable writes, one more hop.
//! Refunds use each payment up, so every pass gets fresh payments from the control API.

use std::sync::Arc;
use std::time::Duration;

use shared::api::{RefundAmount, RefundReason, RefundSubmission};
use shared::smart_glocal::{
    RefundRequest, StatusRequest, HEADER_PROJECT, HEADER_SIGN, PATH_REFUND, PATH_STATUS,
};
use shared::{IdempotencyKey, SessionId};
use signing::{Scheme, Signer};

use crate::load::{self, Latencies};
use crate::report::{self, Row};
use crate::rig::{Rig, RigOptions};
use crate::timing::percentile;

const SECTION: &str = "4. proxy overhead";
/// Requests per pass (half look-ups, half refunds) and the rate they are offered at.
const OPS: usize = 1000;
const RATE: f64 = 200.0;
const WARM_UP_OPS: usize = 100;
const PASS_DEADLINE: Duration = Duration::from_secs(30);
/// Issue 8: at most 1 ms added at p99 with HMAC.
const GOAL_P99_HMAC: Duration = Duration::from_millis(1);

/// Both schemes, two rows each (added p50, added p99), plus what dominates if missed.
pub async fn measure(notes: &mut Vec<String>) -> Vec<Row> {
    let mut rows = Vec::new();
    for scheme in [Scheme::HmacSha256, Scheme::RsaSha256] {
        match measure_scheme(scheme).await {
            Ok((direct, proxied)) => rows.extend(rows_for(scheme, direct, proxied, notes)),
            Err(why) => rows.push(Row::not_measured(
                SECTION,
                format!("added p99, {scheme}"),
                why,
                goal(scheme),
            )),
        }
    }
    rows
}

fn goal(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::HmacSha256 => "≤ 1 ms added at p99",
        Scheme::RsaSha256 => "",
    }
}

async fn measure_scheme(scheme: Scheme) -> Result<(Latencies, Latencies), String> {
    let rig = Arc::new(Rig::start(scheme, RigOptions::default()).await?);
    // Warm up both paths: connections, the proxy's ledger, the allocator.
    let warm = rig.payments(WARM_UP_OPS / 2).await;
    run(&rig, Path::Direct, warm.clone(), WARM_UP_OPS).await;
    let warm = rig.payments(WARM_UP_OPS / 2).await;
    run(&rig, Path::Proxy, warm, WARM_UP_OPS).await;

    let direct = run(&rig, Path::Direct, rig.payments(OPS / 2).await, OPS).await;
    let proxied = run(&rig, Path::Proxy, rig.payments(OPS / 2).await, OPS).await;
    for (name, pass) in [("direct", &direct), ("proxied", &proxied)] {
        if pass.failed > 0 {
            return Err(format!(
                "{} of {OPS} {name} requests failed, first: {}",
                pass.failed,
                pass.first_error.as_deref().unwrap_or("?")
            ));
        }
    }
    Ok((direct, proxied))
}

#[derive(Clone, Copy)]
enum Path {
    Direct,
    Proxy,
}

async fn run(rig: &Arc<Rig>, path: Path, payments: Vec<SessionId>, ops: usize) -> Latencies {
    let payments = Arc::new(payments);
    load::fixed_rate(ops, RATE, PASS_DEADLINE, move |i| {
        let (rig, payments) = (rig.clone(), payments.clone());
        async move {
            let session = payments[i / 2].clone();
            let refund = i % 2 == 1;
            match (path, refund) {
                (Path::Direct, false) => direct_status(&rig, &session).await,
                (Path::Direct, true) => {
                    direct_status(&rig, &session).await?;
                    direct_refund(&rig, &session).await
                }
                (Path::Proxy, false) => {
                    let url = format!("{}/api/payments/{session}", rig.proxy.url);
                    load::expect_status(
                        rig.http.get(url).bearer_auth(&rig.token).send().await,
                        &[200],
                    )
                    .await
                }
                (Path::Proxy, true) => {
                    let url = format!("{}/api/payments/{session}/refunds", rig.proxy.url);
                    let submission = RefundSubmission {
                        amount: RefundAmount::Full,
                        reason: RefundReason::RequestedByCustomer,
                        note: None,
                        idempotency_key: IdempotencyKey::parse(&format!("bench-key-{session}"))
                            .expect("bench keys are 16 to 64 plain characters"),
                    };
                    let sent = rig
                        .http
                        .post(url)
                        .bearer_auth(&rig.token)
                        .json(&submission)
                        .send()
                        .await;
                    load::expect_status(sent, &[200, 201, 202]).await
                }
            }
        }
    })
    .await
}

async fn direct_status(rig: &Rig, session: &SessionId) -> Result<(), String> {
    let body = serde_json::to_vec(&StatusRequest {
        session_id: session.clone(),
    })
    .map_err(|e| e.to_string())?;
    signed_call(rig, PATH_STATUS, body).await
}

async fn direct_refund(rig: &Rig, session: &SessionId) -> Result<(), String> {
    let request = RefundRequest {
        session_id: session.clone(),
        amount_details: None,
        metadata: None,
    };
    let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    signed_call(rig, PATH_REFUND, body).await
}

/// A Smart Glocal call as the proxy makes it: the exact bytes signed, project header set.
async fn signed_call(rig: &Rig, path: &str, body: Vec<u8>) -> Result<(), String> {
    let signer: &Signer = &rig.merchant_signer;
    let response = rig
        .http
        .post(format!("{}{path}", rig.sandbox.base_url()))
        .header("content-type", "application/json")
        .header(HEADER_PROJECT, sandbox::DEMO_PROJECT)
        .header(HEADER_SIGN, signer.sign(&body))
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let text = response.text().await.map_err(|e| e.to_string())?;
    if text.contains("\"status\":\"ok\"") {
        Ok(())
    } else {
        Err(format!(
            "the sandbox answered {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

fn rows_for(
    scheme: Scheme,
    mut direct: Latencies,
    mut proxied: Latencies,
    notes: &mut Vec<String>,
) -> Vec<Row> {
    let (d50, d99) = (
        percentile(&mut direct.ok, 50.0),
        percentile(&mut direct.ok, 99.0),
    );
    let (p50, p99) = (
        percentile(&mut proxied.ok, 50.0),
        percentile(&mut proxied.ok, 99.0),
    );
    let added99 = p99.saturating_sub(d99);
    let baseline = |d, p| {
        format!(
            "direct {} → proxied {}",
            report::duration(d),
            report::duration(p)
        )
    };
    let what = |q: &str| format!("added {q}, {scheme}, {OPS} req at {RATE:.0}/s");
    let p50_row =
        Row::plain(SECTION, what("p50"), report::delta(d50, p50)).baseline(baseline(d50, p50));
    let mut p99_row =
        Row::plain(SECTION, what("p99"), report::delta(d99, p99)).baseline(baseline(d99, p99));
    if scheme == Scheme::HmacSha256 {
        let met = added99 <= GOAL_P99_HMAC;
        p99_row = p99_row.goal(goal(scheme), met);
        if !met {
            notes.push(format!(
                "Proxy overhead ({scheme}) misses ≤ 1 ms at p99 (+{}). A proxied refund is a \
                 `session/status` and a `session/refund` upstream plus SQLite transactions \
                 (attempt recorded `pending` before the call, then its outcome), each committed \
                 with a sync to disk; the look-up adds agent-token checks, a ledger read and one \
                 more loopback hop. The p99 is set by the refunds' ledger commits queueing behind \
                 each other on a 2-core machine shared with the load generator and the sandbox.",
                report::duration(added99)
            ));
        }
    }
    vec![p50_row, p99_row]
}
