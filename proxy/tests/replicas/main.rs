//! Two `proxy` processes on one PostgreSQL ledger, in front of one sandbox: exactly-once
//! across replicas, live events from either, a replica killed mid-refund, and PostgreSQL
//! taken away under load. Real processes, a real throwaway PostgreSQL cluster (started by
//! `testkit::postgres`), every refund counted at the sandbox.

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use sandbox::control::CreatePayment;
use sandbox::{Fault, FaultRequest, FaultRoute, Sandbox, SandboxConfig};
use serde_json::Value;
use shared::{Currency, Money};

use helpers::*;

/// A proxy process as an agent uses it.
struct Replica {
    process: ProxyProcess,
    client: reqwest::Client,
    token: String,
}

impl Replica {
    async fn start(sandbox: &Sandbox, database: &str, extra: &[(&str, &str)]) -> Self {
        // One agent sends every request here: no per-agent rate limit.
        let settings: Vec<(&str, &str)> = [("PROXY_RATE_LIMIT_PER_MINUTE", "0")]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let process =
            ProxyProcess::start(&sandbox.base_url(), Path::new(database), &settings).await;
        process.wait_ready().await;
        Self {
            process,
            client: reqwest::Client::new(),
            token: proxy::auth::TokenKeys::new(&signing::Secret::new(TOKEN_SECRET))
                .mint("alice", 600, None)
                .token,
        }
    }

    /// `proxy_refund_transitions_total` for `state` on this replica's `/metrics`.
    async fn transitions(&self, state: &str) -> u64 {
        let metrics = self
            .client
            .get(self.process.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let series = format!("proxy_refund_transitions_total{{state=\"{state}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .map_or(0, |count| count.parse().unwrap())
    }

    async fn refund(&self, session: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(
                self.process
                    .url(&format!("/api/payments/{session}/refunds")),
            )
            .bearer_auth(&self.token)
            .json(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match response {
            Ok(response) => read(response).await,
            Err(e) => panic!("the replica did not answer: {e}"),
        }
    }

    async fn payment(&self, session: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.process.url(&format!("/api/payments/{session}")))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        read(response).await
    }

    /// An event stream on `session`, resumed after `last_event_id` if given.
    async fn events(&self, session: &str, last_event_id: Option<i64>) -> reqwest::Response {
        let response = self
            .client
            .post(
                self.process
                    .url(&format!("/api/payments/{session}/events/ticket")),
            )
            .bearer_auth(&self.token)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ticket = body["ticket"].as_str().unwrap();
        let mut request = self.client.get(
            self.process
                .url(&format!("/api/payments/{session}/events?ticket={ticket}")),
        );
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let stream = request.send().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        stream
    }
}

/// One row of the shared ledger: (payment, refund id, state, amount).
type LedgerRow = (String, Option<String>, String, i64);

/// The shared ledger's rows on `sessions`, read from PostgreSQL itself: a replica's payment
/// view also lists Smart Glocal's own refunds, so it cannot show what the ledger lacks.
async fn ledger_rows(database: &str, sessions: &[String]) -> Vec<LedgerRow> {
    let pool = sqlx::PgPool::connect(database).await.unwrap();
    let rows = sqlx::query_as(
        "SELECT session_id, refund_id, state, amount FROM refunds
         WHERE session_id = ANY($1) ORDER BY key",
    )
    .bind(sessions)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

/// What the ledger holds as refunded on `session`: every row but those that moved no money.
async fn ledger_total(database: &str, session: &str) -> u64 {
    ledger_rows(database, &[session.to_owned()])
        .await
        .iter()
        .filter(|(_, _, state, _)| !matches!(state.as_str(), "failed" | "awaiting_approval"))
        .map(|(_, _, _, amount)| u64::try_from(*amount).unwrap())
        .sum()
}

fn sandbox_total(session: &sandbox::control::SandboxSession) -> u64 {
    session
        .session
        .payment()
        .unwrap()
        .refunds
        .iter()
        .map(|r| r.amount_details.amount)
        .sum()
}

/// Reads `event: refund` messages until `until` holds for what arrived (10 s at most).
async fn read_events(
    response: &mut reqwest::Response,
    until: impl Fn(&[(i64, Value)]) -> bool,
) -> Vec<(i64, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !until(&events) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("events in time; got {events:?}"))
            .unwrap()
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let id = message
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .map(|v| v.parse().unwrap());
            let data = message.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(id), Some(data)) = (id, data) {
                events.push((id, serde_json::from_str(data).unwrap()));
            }
        }
    }
    events
}

/// A fast sandbox and two replicas on a fresh database of the shared cluster (its URL last);
/// the sandbox's webhooks go to the second.
async fn two_replicas() -> (Sandbox, Replica, Replica, String) {
    let sandbox = Sandbox::start(SandboxConfig::demo().fast()).await;
    let database = cluster().fresh_database().unwrap();
    let a = Replica::start(&sandbox, &database, &[]).await;
    let b = Replica::start(&sandbox, &database, &[]).await;
    sandbox.set_webhook_url(b.process.webhook_url());
    (sandbox, a, b, database)
}

fn cluster() -> &'static testkit::postgres::Cluster {
    testkit::postgres::shared().expect("the throwaway PostgreSQL starts")
}

#[tokio::test]
async fn a_hundred_submissions_across_two_replicas_never_refund_past_the_payment() {
    let (sandbox, a, b, database) = two_replicas().await;

    // Each for 30 % of USD 100.00, each with its own key, alternating replicas.
    let answers = join_all((0..100).map(|i| {
        let replica = if i % 2 == 0 { &a } else { &b };
        async move {
            replica
                .refund("ps_usd_1001", &submission(Some(3000), "usd", &fresh_key()))
                .await
        }
    }))
    .await;

    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let exceeded = answers
        .iter()
        .filter(|(_, b)| b["code"] == "exceeds_remaining")
        .count();
    assert_eq!((created, exceeded), (3, 97), "{answers:?}");
    let upstream = sandbox.session("ps_usd_1001").await;
    assert_eq!(upstream.refunds_received, 3);
    assert!(sandbox_total(&upstream) <= 10_000);
    assert_eq!(
        ledger_total(&database, "ps_usd_1001").await,
        sandbox_total(&upstream)
    );
    for replica in [&a, &b] {
        let (status, view) = replica.payment("ps_usd_1001").await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
    // Both replicas wrote history lines at once: the hash chain still follows commit order.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_proxy"))
        .arg("verify-ledger")
        .env("PROXY_DATABASE", &database)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains("history chain intact"),
        "{said} {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Smart Glocal may deliver one webhook to any replica, and again to another: it is applied
/// once, whichever gets it, and both answer 200 (recorded).
#[tokio::test]
async fn the_same_webhook_delivered_to_both_replicas_at_once_is_applied_once() {
    let (sandbox, a, b, database) = two_replicas().await;
    sandbox.clear_webhook_url();
    let (status, refund) = a
        .refund("ps_usd_1001", &submission(Some(2000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    // What the sandbox would send once the refund is accepted, signed with its key.
    let mut session = serde_json::to_value(sandbox.session("ps_usd_1001").await.session).unwrap();
    for r in session["acquiring_payments"][0]["refunds"]
        .as_array_mut()
        .unwrap()
    {
        r["status"] = serde_json::json!("accepted");
    }
    let body =
        serde_json::to_vec(&serde_json::json!({"type": "payment_refunded", "session": session}))
            .unwrap();
    let signature = signing::Signer::rsa_from_pem(&demo_key("DEMO-ONLY-sandbox-private.pem"))
        .unwrap()
        .sign(&body);
    let deliver = |replica: &Replica| {
        replica
            .client
            .post(replica.process.webhook_url())
            .header("content-type", "application/json")
            .header("x-partner-sign", signature.clone())
            .body(body.clone())
            .send()
    };
    let answers = join_all((0..5).flat_map(|_| [deliver(&a), deliver(&b)])).await;
    for answer in answers {
        assert_eq!(answer.unwrap().status(), StatusCode::OK);
    }
    let pool = sqlx::PgPool::connect(&database).await.unwrap();
    let applied: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE outcome = 'applied'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let accepted: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM history WHERE kind = 'webhook' AND state = 'accepted'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!((applied, accepted), (1, 1), "applied once, one transition");
    let rows = ledger_rows(&database, &["ps_usd_1001".to_owned()]).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2, "accepted");
}

#[tokio::test]
async fn one_idempotency_key_sent_to_both_replicas_at_once_makes_one_refund() {
    let (sandbox, a, b, _) = two_replicas().await;

    let body = submission(Some(1000), "usd", &fresh_key());
    let answers = join_all((0..20).flat_map(|_| {
        [
            a.refund("ps_usd_1001", &body),
            b.refund("ps_usd_1001", &body),
        ]
    }))
    .await;

    let attempt = answers[0].1["attempt_id"].clone();
    assert!(attempt.is_string(), "{answers:?}");
    for (status, view) in &answers {
        assert!(
            matches!(*status, StatusCode::CREATED | StatusCode::OK),
            "{status} {view}"
        );
        assert_eq!(
            view["attempt_id"], attempt,
            "every answer is the one attempt"
        );
    }
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 1);
}

/// A payment's lock held elsewhere (a replica stuck, or whose host died and whose
/// connection PostgreSQL has not yet closed) makes a refund wait a bounded time, then answer
/// `409 refund_in_flight` with nothing sent, instead of hanging; once it is free, it goes.
#[tokio::test]
async fn a_payments_lock_held_elsewhere_is_waited_for_a_bounded_time_then_refused() {
    use sqlx::Connection;
    let sandbox = Sandbox::start(SandboxConfig::demo().fast()).await;
    let database = cluster().fresh_database().unwrap();
    // The wait: twice the upstream timeout and 5 s, so 6 s here.
    let replica =
        Replica::start(&sandbox, &database, &[("PROXY_UPSTREAM_TIMEOUT_MS", "500")]).await;
    let session = shared::SessionId::parse("ps_usd_1001").unwrap();
    let mut holder = sqlx::PgConnection::connect(&database).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(proxy::ledger::advisory_key(&session))
        .execute(&mut holder)
        .await
        .unwrap();

    let started = Instant::now();
    let (status, body) = replica
        .refund("ps_usd_1001", &submission(Some(1000), "usd", &fresh_key()))
        .await;
    let waited = started.elapsed();
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("refund_in_flight")),
        "{body}"
    );
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(30),
        "{waited:?}"
    );
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 0);

    holder.close().await.unwrap();
    let (status, body) = replica
        .refund("ps_usd_1001", &submission(Some(1000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 1);
}

#[tokio::test]
async fn a_webhook_received_by_one_replica_reaches_streams_on_the_other() {
    // Webhooks go to B; the agent watches through A.
    let (sandbox, a, b, _) = two_replicas().await;
    let mut on_a = a.events("ps_usd_1001", None).await;

    // A refund through A, settled by the sandbox's webhook into B: pending, in_progress and
    // accepted all reach A's stream, in order.
    let (status, refund) = a
        .refund("ps_usd_1001", &submission(Some(1000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    let events = read_events(&mut on_a, |events| {
        events.iter().any(|(_, e)| {
            e["refund"]["attempt_id"] == refund["attempt_id"] && e["refund"]["state"] == "accepted"
        })
    })
    .await;
    let mut ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
    let states: Vec<&str> = events
        .iter()
        .filter(|(_, e)| e["refund"]["attempt_id"] == refund["attempt_id"])
        .map(|(_, e)| e["refund"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending", "in_progress", "accepted"]);

    // A chargeback: nothing but its webhook, into B.
    let started = Instant::now();
    sandbox.chargeback("ps_usd_1001", 2500).await;
    let chargeback = read_events(&mut on_a, |events| {
        events
            .iter()
            .any(|(_, e)| e["refund"]["is_chargeback"] == true)
    })
    .await;
    let latency = started.elapsed();
    eprintln!("chargeback webhook into replica B → event on replica A's stream: {latency:?}");
    ids.extend(chargeback.iter().map(|(id, _)| *id));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in seq order: {ids:?}");

    // Resumed on the other replica after the first event: everything after it, nothing twice.
    let mut on_b = b.events("ps_usd_1001", Some(ids[0])).await;
    let replayed = read_events(&mut on_b, |replayed| replayed.len() >= ids.len() - 1).await;
    assert_eq!(
        replayed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ids[1..]
    );
    // Each replica counts the states its own commits entered, though both published every
    // event: across the two, the refund's three and the chargeback's one, once each.
    let mut counted = Vec::new();
    for state in ["pending", "in_progress", "accepted"] {
        counted.push((
            state,
            a.transitions(state).await + b.transitions(state).await,
        ));
    }
    assert_eq!(
        counted,
        [("pending", 1), ("in_progress", 1), ("accepted", 2)]
    );
}

#[tokio::test]
async fn a_replica_killed_mid_refund_is_reconciled_by_the_other_with_no_second_refund() {
    let sandbox = Sandbox::start(SandboxConfig::demo().fast()).await;
    // The refund waits at the sandbox for 1 s, is taken, and its answer never comes back.
    sandbox
        .inject(FaultRequest::new(Fault::Delay { ms: 1000 }).on(FaultRoute::Refund))
        .await;
    sandbox
        .inject(FaultRequest::new(Fault::Timeout).on(FaultRoute::Refund))
        .await;
    let database = cluster().fresh_database().unwrap();
    // B adopts an attempt nobody holds once it is older than this timeout (and 2 s).
    let settings = [("PROXY_UPSTREAM_TIMEOUT_MS", "5000")];
    let mut a = Replica::start(&sandbox, &database, &settings).await;
    let b = Replica::start(&sandbox, &database, &settings).await;
    sandbox.set_webhook_url(b.process.webhook_url());

    let request = a
        .client
        .post(a.process.url("/api/payments/ps_usd_1001/refunds"))
        .bearer_auth(&a.token)
        .json(&submission(Some(1500), "usd", &fresh_key()))
        .send();
    let in_flight = tokio::spawn(request);
    // Recorded as pending in the shared ledger (B sees it), then taken by the sandbox.
    eventually(10, "the attempt is recorded", || async {
        let (_, view) = b.payment("ps_usd_1001").await;
        view["refunds"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["state"] == "pending"))
    })
    .await;
    eventually(10, "the sandbox took the refund", || async {
        sandbox.session("ps_usd_1001").await.refunds_received == 1
    })
    .await;
    a.process.kill_hard();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the agent never got an answer from the killed replica"
    );

    // B takes the orphaned attempt over and settles it from the sandbox's own record: the
    // ledger's one row (the attempt) now holds the refund.
    let sessions = ["ps_usd_1001".to_owned()];
    eventually(20, "replica B reconciled the attempt", || async {
        let rows = ledger_rows(&database, &sessions).await;
        rows.len() == 1
            && rows[0].1.is_some()
            && matches!(rows[0].2.as_str(), "accepted" | "in_progress")
    })
    .await;
    let upstream = sandbox.session("ps_usd_1001").await;
    assert_eq!(upstream.refunds_received, 1, "no second refund");
    assert_eq!(ledger_total(&database, "ps_usd_1001").await, 1500);
    assert_eq!(sandbox_total(&upstream), 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_gives_clear_503s_and_recovers_without_a_restart() {
    // A cluster of its own: this test stops it.
    let cluster = testkit::postgres::Cluster::start_with(testkit::postgres::Options::for_tests())
        .expect("a throwaway PostgreSQL");
    let database = cluster.fresh_database().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::demo().fast()).await;
    let settings = [("PROXY_DATABASE_CONNECT_TIMEOUT_MS", "1000")];
    let a = Replica::start(&sandbox, &database, &settings).await;
    let b = Replica::start(&sandbox, &database, &settings).await;
    sandbox.set_webhook_url(b.process.webhook_url());
    let usd = Currency::parse("usd").unwrap();
    let mut sessions = Vec::new();
    for _ in 0..40 {
        let created = sandbox
            .create_payment(CreatePayment::new(Money::new(10_000, usd)))
            .await;
        sessions.push(created.session.id.to_string());
    }

    // Load: one refund after another on fresh payments, alternating replicas, while
    // PostgreSQL goes away for 5 s and comes back.
    let load = async {
        let mut answers = Vec::new();
        for (i, session) in sessions.iter().enumerate() {
            let replica = if i % 2 == 0 { &a } else { &b };
            let started = Instant::now();
            let answer = replica
                .refund(session, &submission(Some(1000), "usd", &fresh_key()))
                .await;
            answers.push((answer, started.elapsed()));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        answers
    };
    let outage = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // pg_ctl waits for the server: off this runtime, which also runs the sandbox.
        tokio::task::block_in_place(|| cluster.stop_server()).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Not ready while PostgreSQL is away.
        assert!(!a.process.is_ready().await && !b.process.is_ready().await);
        tokio::task::block_in_place(|| cluster.start_server()).unwrap();
        let back = Instant::now();
        for replica in [&a, &b] {
            let readyz = replica.process.url("/readyz");
            testkit::wait_ready(&readyz, testkit::Ready::Success, Duration::from_secs(5))
                .await
                .unwrap_or_else(|e| panic!("ready again within 5 s of PostgreSQL: {e}"));
        }
        back.elapsed()
    };
    let (answers, back_in) = tokio::join!(load, outage);
    eprintln!("both replicas ready again {back_in:?} after PostgreSQL returned");

    let mut unavailable = 0;
    for ((status, body), took) in &answers {
        match *status {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["code"], "ledger_unavailable", "{body}");
                unavailable += 1;
            }
            // Sent just before PostgreSQL went away, its answer not yet recorded: never
            // "nothing was sent"; reconciliation records it (checked below).
            StatusCode::ACCEPTED => assert_eq!(body["state"], "unknown", "{body}"),
            other => panic!("only 201, 202 unknown or a clear 503: {other} {body}"),
        }
        assert!(*took < Duration::from_secs(15), "no hang: {took:?}");
    }
    assert!(unavailable > 0, "the outage was seen: {answers:?}");

    // Nothing lost, nothing twice: what the sandbox made is what the ledger holds, once
    // reconciliation has settled whatever was in flight when PostgreSQL went away.
    let mut last = (BTreeSet::new(), BTreeSet::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let upstream: BTreeSet<String> = sandbox
            .sessions()
            .await
            .iter()
            .filter(|s| sessions.iter().any(|id| id == s.session.id.as_str()))
            .filter_map(|s| s.session.payment())
            .flat_map(|p| p.refunds.iter().map(|r| r.id.to_string()))
            .collect();
        let in_ledger: BTreeSet<String> = ledger_rows(&database, &sessions)
            .await
            .into_iter()
            .filter_map(|(_, refund_id, _, _)| refund_id)
            .collect();
        if upstream == in_ledger {
            break;
        }
        last = (upstream, in_ledger);
        assert!(
            Instant::now() < deadline,
            "the sandbox's refunds and the ledger's differ: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let received: usize = join_all(sessions.iter().map(|s| sandbox.session(s)))
        .await
        .iter()
        .map(|s| s.refunds_received)
        .sum();
    let created = answers
        .iter()
        .filter(|((s, _), _)| *s == StatusCode::CREATED)
        .count();
    assert!(received >= created, "every 201 is a refund at the sandbox");
    assert!(
        received <= sessions.len(),
        "at most one refund per submission"
    );
    drop(last);
}

#[tokio::test]
async fn a_replica_whose_connections_are_cut_listens_again_and_misses_no_event() {
    let (_sandbox, a, b, database) = two_replicas().await;
    let mut on_a = a.events("ps_usd_1001", None).await;

    // Every connection to the database is cut, the listeners' included (as a failover or a
    // network blip would), while the replicas keep running.
    let name = database.rsplit('/').next().unwrap();
    let cut = cluster()
        .psql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ),
        )
        .unwrap();
    assert_ne!(cut.trim(), "0", "the replicas' connections were cut");

    // Refunds through B right away: their events reach A's stream, each once, in order.
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let (status, refund) = b
            .refund("ps_usd_1001", &submission(Some(500), "usd", &fresh_key()))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{refund}");
        attempts.push(refund["attempt_id"].clone());
    }
    let events = read_events(&mut on_a, |events| {
        attempts.iter().all(|attempt| {
            events.iter().any(|(_, e)| {
                e["refund"]["attempt_id"] == *attempt && e["refund"]["state"] == "accepted"
            })
        })
    })
    .await;
    let ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "each event once, in seq order: {ids:?}"
    );
    assert_eq!(
        ids.len(),
        9,
        "pending, in_progress, accepted of each: {events:?}"
    );
}

#[tokio::test]
async fn an_events_ticket_opens_one_stream_across_all_replicas() {
    let (_sandbox, a, b, _) = two_replicas().await;
    let response = a
        .client
        .post(a.process.url("/api/payments/ps_usd_1001/events/ticket"))
        .bearer_auth(&a.token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!(
        "/api/payments/ps_usd_1001/events?ticket={}",
        body["ticket"].as_str().unwrap()
    );

    // Minted on A, used on B: no stickiness needed.
    let first = b.client.get(b.process.url(&path)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    // The same ticket again, on either replica: refused.
    for replica in [&a, &b] {
        let again = replica
            .client
            .get(replica.process.url(&path))
            .send()
            .await
            .unwrap();
        let (status, body) = read(again).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["code"], "token_invalid", "{body}");
    }
}
