//! Storage faults fail closed. A ledger on a disk that fills up, or whose file is made
//! read-only, refuses refunds (`503 ledger_unavailable`, nothing sent to Smart Glocal) and
//! webhooks (503: Smart Glocal sends them again), says so at `/readyz`, and recovers by itself
//! once it can write, with every refund Smart Glocal made recorded once.
//!
//! Real faults on real files, through the real `proxy` binary: a tmpfs the test mounts and
//! fills, and `chattr +i`. Both need root, which CI has; without it the tests fail saying so.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use sandbox::control::{CreatePayment, Fault, FaultRoute};
use sandbox::{FaultRequest, RetryPolicy, Sandbox, SandboxConfig};
use serde_json::Value;
use shared::{Currency, Money};
use sqlx::{Connection, SqliteConnection};

use crate::helpers::*;

/// A tmpfs of `size` mounted on a fresh folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Self { dir },
            Ok(out) => panic!(
                "this test mounts a small tmpfs to fill a real disk, which needs root (CI runs \
                 as root); `mount` said: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!("this test needs `mount` (util-linux) to make a small disk: {e}"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk has no byte left; returns it.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in [64 * 1024, 4096, 512, 1] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// `chattr {flag} file…` (`+i`: nothing may write the file, even through handles open now).
fn chattr(flag: &str, files: &[PathBuf]) {
    let status = Command::new("chattr")
        .arg(flag)
        .args(files)
        .status()
        .expect("this test needs `chattr` (e2fsprogs)");
    assert!(
        status.success(),
        "`chattr {flag}` failed: it needs root and a filesystem with attributes (CI has both)"
    );
}

/// A ledger file in `dir`, and the files `chattr +i` makes read-only: the database and its WAL.
fn ledger_in(dir: &Path) -> (PathBuf, Freezable) {
    let database = dir.join("ledger.sqlite");
    let files = Freezable([database.clone(), dir.join("ledger.sqlite-wal")]);
    (database, files)
}

/// Files a test makes immutable, made mutable again when dropped: a test that fails (or is
/// interrupted) while they are frozen must not leave files that even root cannot remove,
/// with no hint why, in its temporary directory. Declared after that directory, dropped
/// before it.
struct Freezable([PathBuf; 2]);

impl std::ops::Deref for Freezable {
    type Target = [PathBuf];
    fn deref(&self) -> &[PathBuf] {
        &self.0
    }
}

impl Drop for Freezable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

/// The proxy binary on `database` in front of `sandbox`, which sends it its webhooks; ready.
async fn proxy_for(sandbox: &Sandbox, database: &Path) -> ProxyProcess {
    let proxy = ProxyProcess::start(&sandbox.base_url(), database, &[]).await;
    sandbox.set_webhook_url(proxy.webhook_url());
    proxy.wait_ready().await;
    proxy
}

/// A sandbox that sends webhooks after `delay` and retries refused ones for a minute.
async fn sandbox_retrying_webhooks(delay: Duration) -> Sandbox {
    let config = SandboxConfig::demo()
        .fast()
        .with_webhook_delay(delay)
        .with_webhook_retry(RetryPolicy::quick(
            Duration::from_millis(50),
            Duration::from_secs(60),
        ));
    Sandbox::start(config).await
}

async fn payments(sandbox: &Sandbox, count: usize) -> Vec<String> {
    let usd = Currency::parse("usd").unwrap();
    let mut ids = Vec::new();
    for _ in 0..count {
        let created = sandbox
            .create_payment(CreatePayment::new(Money::new(10_000, usd)))
            .await;
        ids.push(created.session.id.to_string());
    }
    ids
}

/// Every refund Smart Glocal holds on `sessions`, by id.
async fn refunds_at_smart_glocal(sandbox: &Sandbox, sessions: &[String]) -> BTreeSet<String> {
    sandbox
        .sessions()
        .await
        .iter()
        .filter(|s| sessions.iter().any(|id| id == s.session.id.as_str()))
        .filter_map(|s| s.session.payment())
        .flat_map(|p| p.refunds.iter().map(|r| r.id.to_string()))
        .collect()
}

struct Agent {
    client: reqwest::Client,
    token: String,
    base: String,
}

impl Agent {
    fn of(proxy: &ProxyProcess) -> Self {
        Self {
            client: reqwest::Client::new(),
            token: proxy::auth::TokenKeys::new(&signing::Secret::new(TOKEN_SECRET))
                .mint("alice", 600, None)
                .token,
            base: proxy.base.clone(),
        }
    }

    /// A partial refund of USD 10.00 on `session`.
    async fn refund(&self, session: &str) -> (StatusCode, Value) {
        self.refund_keyed(session, &fresh_key()).await
    }

    /// The same, under idempotency key `key`.
    async fn refund_keyed(&self, session: &str, key: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/api/payments/{session}/refunds", self.base))
            .bearer_auth(&self.token)
            .json(&submission(Some(1000), "usd", key))
            .send()
            .await
            .unwrap();
        read(response).await
    }

    async fn metrics(&self) -> String {
        metrics_at(&self.client, &format!("{}/metrics", self.base)).await
    }
}

/// Whether the ledger itself (not Smart Glocal's view of it) holds every refund Smart Glocal
/// made, matched to its attempt and accepted.
async fn ledger_has_settled(database: &Path, sandbox: &Sandbox, sessions: &[String]) -> bool {
    let (attempts, _) = ledger_file(database).await;
    refunds_at_smart_glocal(sandbox, sessions)
        .await
        .iter()
        .all(|id| {
            attempts
                .iter()
                .any(|(_, refund, state)| refund.as_ref() == Some(id) && state == "accepted")
        })
}

fn assert_refused_for_the_ledger(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "ledger_unavailable", "{body}");
}

/// What the ledger file holds once no proxy runs: `(attempt_id, refund_id, state)` of every
/// attempt, and how many verified webhooks were applied.
async fn ledger_file(database: &Path) -> (Vec<(String, Option<String>, String)>, i64) {
    // Read-only: the proxy may still be running.
    let mut conn = SqliteConnection::connect(&format!("sqlite:{}?mode=ro", database.display()))
        .await
        .unwrap();
    let attempts = sqlx::query_as(
        "SELECT attempt_id, refund_id, state FROM refunds WHERE origin = 'proxy' ORDER BY key",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let applied = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE outcome = 'applied'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    (attempts, applied)
}

/// Every refund Smart Glocal made is an attempt of the ledger, every attempt answered 201 is
/// there and past `pending`, and nothing is recorded twice.
fn assert_ledger_holds(
    attempts: &[(String, Option<String>, String)],
    at_smart_glocal: &BTreeSet<String>,
    answered_201: &[String],
) {
    let recorded: Vec<&String> = attempts.iter().filter_map(|(_, r, _)| r.as_ref()).collect();
    let unique: BTreeSet<&String> = recorded.iter().copied().collect();
    assert_eq!(recorded.len(), unique.len(), "a refund recorded twice");
    for id in at_smart_glocal {
        assert!(
            unique.contains(id),
            "refund {id} was made at Smart Glocal but is not in the ledger"
        );
    }
    for attempt in answered_201 {
        let row = attempts.iter().find(|(a, _, _)| a == attempt);
        assert!(
            row.is_some_and(|(_, refund, state)| refund.is_some() && state != "pending"),
            "attempt {attempt} was answered 201 but the ledger holds {row:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_and_frees_never_lets_a_refund_out_unrecorded() {
    // The faults are SQLite's own (a full disk under the file, an immutable file); the
    // PostgreSQL outage has its own test (tests/replicas).
    crate::sqlite_only!();
    let disk = Tmpfs::mount("16m");
    let database = disk.path().join("ledger.sqlite");
    let sandbox = sandbox_retrying_webhooks(Duration::from_millis(50)).await;
    let mut proxy = proxy_for(&sandbox, &database).await;
    let agent = Agent::of(&proxy);
    let sessions = payments(&sandbox, 30).await;
    let mut answered_201 = Vec::new();
    for session in &sessions[..5] {
        let (status, view) = agent.refund(session).await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
        answered_201.push(view["attempt_id"].as_str().unwrap().to_owned());
    }

    // The disk fills mid-load: refunds go on until the ledger cannot write.
    let filler = disk.fill();
    let mut refused = Vec::new();
    for session in &sessions[5..20] {
        let (status, view) = agent.refund(session).await;
        match status {
            StatusCode::CREATED => answered_201.push(view["attempt_id"].as_str().unwrap().into()),
            // Sent, and its answer could not be recorded: not known yet, settled later.
            StatusCode::ACCEPTED => assert_eq!(view["state"], "unknown", "{view}"),
            _ => {
                assert_refused_for_the_ledger(status, &view);
                refused.push(session.clone());
            }
        }
    }
    assert!(!refused.is_empty(), "a full disk refused no refund");
    // A refusal says nothing was sent, and nothing was.
    assert_eq!(
        refunds_at_smart_glocal(&sandbox, &refused).await,
        BTreeSet::new(),
        "a refund answered ledger_unavailable was made"
    );
    assert!(!proxy.is_ready().await, "/readyz is ready on a full disk");
    // While it cannot write, nothing more reaches Smart Glocal.
    let sent = refunds_at_smart_glocal(&sandbox, &sessions).await;
    for session in &sessions[20..25] {
        let (status, view) = agent.refund(session).await;
        assert_refused_for_the_ledger(status, &view);
    }
    assert_eq!(
        refunds_at_smart_glocal(&sandbox, &sessions).await,
        sent,
        "a refund was sent while the ledger could not write"
    );
    assert!(
        agent.metrics().await.contains("proxy_ledger_writable 0"),
        "the metric shows the fault"
    );

    // The disk frees: the proxy recovers by itself and settles what was in flight.
    std::fs::remove_file(filler).unwrap();
    eventually(15, "/readyz ready again", || proxy.is_ready()).await;
    for session in &sessions[25..] {
        let (status, view) = agent.refund(session).await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
        answered_201.push(view["attempt_id"].as_str().unwrap().to_owned());
    }
    eventually(30, "every refund recorded and settled", || {
        ledger_has_settled(&database, &sandbox, &sessions)
    })
    .await;
    let metrics = agent.metrics().await;
    assert!(metrics.contains("proxy_ledger_writable 1"), "{metrics}");
    assert!(
        metrics.contains("proxy_ledger_recoveries_total 1"),
        "{metrics}"
    );

    let at_smart_glocal = refunds_at_smart_glocal(&sandbox, &sessions).await;
    assert!(at_smart_glocal.len() >= answered_201.len());
    proxy.kill_hard();
    let (attempts, _) = ledger_file(&database).await;
    assert_ledger_holds(&attempts, &at_smart_glocal, &answered_201);

    // And after a clean stop of a restarted proxy, the same.
    let mut proxy = ProxyProcess::start(&sandbox.base_url(), &database, &[]).await;
    proxy.wait_ready().await;
    proxy.stop();
    let (attempts, _) = ledger_file(&database).await;
    assert_ledger_holds(&attempts, &at_smart_glocal, &answered_201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_made_read_only_refuses_refunds_and_webhooks_then_applies_them_when_writable() {
    // The faults are SQLite's own (a full disk under the file, an immutable file); the
    // PostgreSQL outage has its own test (tests/replicas).
    crate::sqlite_only!();
    let dir = tempfile::tempdir().unwrap();
    let (database, files) = ledger_in(dir.path());
    // Webhooks a moment after each refund, so they land while the file is read-only.
    let sandbox = sandbox_retrying_webhooks(Duration::from_millis(400)).await;
    let mut proxy = proxy_for(&sandbox, &database).await;
    let agent = Agent::of(&proxy);
    let sessions = payments(&sandbox, 9).await;
    let mut answered_201 = Vec::new();
    for session in &sessions[..3] {
        let (status, view) = agent.refund(session).await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
        answered_201.push(view["attempt_id"].as_str().unwrap().to_owned());
    }

    chattr("+i", &files);
    let sent = refunds_at_smart_glocal(&sandbox, &sessions).await;
    for session in &sessions[3..6] {
        let (status, view) = agent.refund(session).await;
        assert_refused_for_the_ledger(status, &view);
    }
    let webhook_refused = "route=\"/webhooks/smart-glocal\",method=\"POST\",status=\"503\"";
    eventually(10, "webhooks answered 503 while read-only", || async {
        agent.metrics().await.contains(webhook_refused)
    })
    .await;
    assert!(
        !proxy.is_ready().await,
        "/readyz is ready on a read-only ledger"
    );
    assert_eq!(
        refunds_at_smart_glocal(&sandbox, &sessions).await,
        sent,
        "a refund was sent while the ledger was read-only"
    );

    chattr("-i", &files);
    eventually(15, "/readyz ready again", || proxy.is_ready()).await;
    for session in &sessions[6..] {
        let (status, view) = agent.refund(session).await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
        answered_201.push(view["attempt_id"].as_str().unwrap().to_owned());
    }
    // The refused webhooks come again and are applied: every refund settles.
    eventually(30, "every webhook applied", || {
        ledger_has_settled(&database, &sandbox, &sessions)
    })
    .await;
    let at_smart_glocal = refunds_at_smart_glocal(&sandbox, &sessions).await;
    assert_eq!(at_smart_glocal.len(), 6);

    proxy.stop();
    let (attempts, applied) = ledger_file(&database).await;
    assert_ledger_holds(&attempts, &at_smart_glocal, &answered_201);
    assert!(applied >= 6, "{applied} webhooks applied");
}

/// A refund whose request went out while the ledger could still write, but whose answer
/// cannot be recorded: the money may have moved, so the agent is told the outcome is not
/// known yet (202 `unknown`), never that nothing was sent, and the ledger records the refund
/// once it can write again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_sent_before_the_ledger_stops_writing_is_unknown_not_unsent() {
    crate::sqlite_only!();
    let dir = tempfile::tempdir().unwrap();
    let (database, files) = ledger_in(dir.path());
    let sandbox = sandbox_retrying_webhooks(Duration::from_millis(50)).await;
    let mut proxy = proxy_for(&sandbox, &database).await;
    let agent = Agent::of(&proxy);
    let sessions = payments(&sandbox, 1).await;
    // Smart Glocal takes its time over the refund; the ledger turns read-only meanwhile.
    sandbox
        .inject(FaultRequest::new(Fault::Delay { ms: 1500 }).on(FaultRoute::Refund))
        .await;
    let key = fresh_key();
    let refund = agent.refund_keyed(&sessions[0], &key);
    // Frozen once the attempt is recorded `pending` (and so being sent): Smart Glocal holds its
    // answer 1.5 s from then.
    let freeze = async {
        eventually(10, "the attempt is recorded and being sent", || async {
            ledger_file(&database)
                .await
                .0
                .iter()
                .any(|(_, _, state)| state == "pending")
        })
        .await;
        chattr("+i", &files);
    };
    let ((status, view), ()) = tokio::join!(refund, freeze);

    let made = refunds_at_smart_glocal(&sandbox, &sessions).await;
    assert_eq!(made.len(), 1, "Smart Glocal made the refund");
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    assert_eq!(view["state"], "unknown", "{view}");
    assert!(view["attempt_id"].is_string(), "{view}");
    // The agent confirms again (the widget keeps the key after no clear answer): the attempt
    // is still `pending` in the ledger, being sent by no one. Its outcome is not known, and
    // the answer says so (202), not "already submitted"; nothing more is sent.
    let (status, again) = agent.refund_keyed(&sessions[0], &key).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["state"], "unknown", "{again}");
    assert_eq!(again["attempt_id"], view["attempt_id"], "{again}");
    assert_eq!(refunds_at_smart_glocal(&sandbox, &sessions).await.len(), 1);

    chattr("-i", &files);
    eventually(30, "the refund recorded and settled", || {
        ledger_has_settled(&database, &sandbox, &sessions)
    })
    .await;
    proxy.stop();
    let (attempts, _) = ledger_file(&database).await;
    assert_ledger_holds(&attempts, &made, &[]);
}

/// A refund in progress whose final webhook came while the ledger could not write, and which
/// Smart Glocal stopped retrying before it could: the recovery asks Smart Glocal about it and
/// records how it ended (regular passes would look at it only minutes later, if at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_webhook_lost_during_a_fault_is_recovered_from_smart_glocal() {
    crate::sqlite_only!();
    let dir = tempfile::tempdir().unwrap();
    let (database, files) = ledger_in(dir.path());
    let config = SandboxConfig::demo()
        .fast()
        .with_webhook_delay(Duration::from_millis(1000))
        .with_webhook_retry(RetryPolicy::quick(
            Duration::from_millis(100),
            Duration::from_millis(800),
        ));
    let sandbox = Sandbox::start(config).await;
    let mut proxy = proxy_for(&sandbox, &database).await;
    let agent = Agent::of(&proxy);
    let sessions = payments(&sandbox, 1).await;
    let (status, view) = agent.refund(&sessions[0]).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["state"], "in_progress", "{view}");

    // The ledger cannot write when the final webhook comes, and for as long as it is retried.
    chattr("+i", &files);
    let refused = "route=\"/webhooks/smart-glocal\",method=\"POST\",status=\"503\"";
    eventually(10, "the final webhook refused", || async {
        agent.metrics().await.contains(refused)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    chattr("-i", &files);

    eventually(15, "the refund recorded as it ended", || {
        ledger_has_settled(&database, &sandbox, &sessions)
    })
    .await;
    proxy.stop();
}

/// On PostgreSQL, a database that refuses writes (a standby after a failover answers
/// `read_only_sql_transaction`) is a storage fault as a read-only SQLite file is: `503
/// ledger_unavailable`, nothing sent, `/readyz` says so, and it recovers by itself.
#[tokio::test]
async fn a_postgres_ledger_that_refuses_writes_is_unavailable_and_nothing_is_sent() {
    if !on_postgres() {
        eprintln!("PostgreSQL only: SQLite's read-only file is the test above");
        return;
    }
    let (sandbox, app) = sandbox_and_app().await;
    let ledger = LedgerSql::open(&app).await;
    ledger
        .execute(
            "CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'read-only' USING ERRCODE = '25006'; END $$",
        )
        .await;
    for table in ["refunds", "heartbeat"] {
        ledger
            .execute(&format!(
                "CREATE TRIGGER refuse_writes BEFORE INSERT OR UPDATE ON {table}
                 FOR EACH ROW EXECUTE FUNCTION refuse_writes()"
            ))
            .await;
    }
    let (status, body) = app
        .refund("ps_usd_1001", &submission(Some(1000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "ledger_unavailable", "{body}");
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 0);
    assert_eq!(readyz(&app).await, StatusCode::SERVICE_UNAVAILABLE);

    for table in ["refunds", "heartbeat"] {
        ledger
            .execute(&format!("DROP TRIGGER refuse_writes ON {table}"))
            .await;
    }
    refunds_once_ready(&app, 10, "the ledger writes again").await;
}

/// The writers' lock, held from outside as a process frozen mid-transaction would hold it:
/// SQLite's write lock (`BEGIN IMMEDIATE` on the file), or on PostgreSQL the advisory lock
/// every replica's writes take. Let go when dropped (the connection closes).
enum WriterLockHeld {
    Sqlite(SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriterLockHeld {
    async fn take(app: &TestApp) -> Self {
        let database = app.database.to_string_lossy().into_owned();
        if database.starts_with("postgres://") {
            let mut conn = sqlx::PgConnection::connect(&database).await.unwrap();
            sqlx::query("SELECT pg_advisory_lock(6000855489095663617)") // 0x5347_5246_0000_0001
                .execute(&mut conn)
                .await
                .unwrap();
            WriterLockHeld::Postgres(conn)
        } else {
            let mut conn = SqliteConnection::connect(&format!("sqlite:{database}"))
                .await
                .unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .unwrap();
            WriterLockHeld::Sqlite(conn)
        }
    }

    async fn release(self) {
        match self {
            WriterLockHeld::Sqlite(conn) => conn.close().await.unwrap(),
            WriterLockHeld::Postgres(conn) => conn.close().await.unwrap(),
        }
    }
}

/// Behind a writer that never finishes, no write fails at first: `/readyz` must not answer
/// from the last write that did (ready) while its own probe write waits. A load balancer that
/// gave up on the first probe asks again and is told not ready; a refund waits a bounded
/// time and is refused with nothing sent; once the lock is let go, all is well again.
#[tokio::test]
async fn a_ledger_whose_writes_wait_on_a_held_lock_is_not_ready_and_refuses_in_bounded_time() {
    let logs = crate::operations::captured_logs();
    let (sandbox, app) = sandbox_and_app().await;
    // The probe at start-up long enough ago that the next one writes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let held = WriterLockHeld::take(&app).await;

    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    // A load balancer with a short timeout: its probe gives up while the write waits.
    let _ = impatient.get(app.url("/readyz")).send().await;
    // Asked again, while that write still waits (10 s on PostgreSQL, 5 on SQLite), it is told
    // not ready: before, the last write's outcome said ready until the wait ran out.
    eventually(4, "not ready while the probe's write waits", || async {
        readyz(&app).await == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    // And `/metrics` says the same, for alerts built on it.
    let scraped = metrics(&app).await;
    assert!(scraped.contains("\nproxy_ledger_writable 0"), "{scraped}");

    // Its write waits at most 10 s for the lock (on PostgreSQL, also 10 s for its turn behind
    // the probe's write): answered well within 30.
    let asked = submission(Some(1000), "usd", &fresh_key());
    let refund = app.refund("ps_usd_1001", &asked);
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), refund)
        .await
        .expect("a refund behind a held writers' lock is answered in bounded time");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "ledger_unavailable", "{body}");
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 0);

    // A load balancer asking all along: its refusals are not errors of their own (the fault
    // is one `error` line when it begins), or they would bury it.
    let probes = format!("readyz-{}", fresh_key());
    for n in 0..3 {
        let answer = app
            .client
            .get(app.url("/readyz"))
            .header("x-request-id", format!("{probes}-{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    let errors: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains(&probes) && line.contains("ERROR"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    held.release().await;
    refunds_once_ready(&app, 15, "ready once the lock is let go").await;
}

/// Waits up to `secs` for `/readyz` to say ready (`what`), then a refund goes through.
async fn refunds_once_ready(app: &TestApp, secs: u64, what: &str) {
    eventually(secs, what, || async { readyz(app).await == StatusCode::OK }).await;
    let (status, body) = app
        .refund("ps_usd_1001", &submission(Some(1000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
