//! `spawn_app()` and friends: a proxy per test, its token, and a sandbox wired to it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use proxy::Config;
use reqwest::StatusCode;
use sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};
use signing::{Scheme, Secret, Signer, Verifier};
use tokio::sync::oneshot;

pub const TOKEN_SECRET: &str = "test-agent-token-secret-0123456789";
pub const HMAC_REQUEST_SECRET: &str = "DEMO-ONLY-merchant-request-hmac-secret";
pub const HMAC_WEBHOOK_SECRET: &str = "DEMO-ONLY-sandbox-webhook-hmac-secret";

pub fn demo_key(name: &str) -> String {
    let path = format!("{}/../demo/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// How a test proxy is set up; `Options::new(upstream)` is the demo setup (RSA, demo-project).
#[derive(Clone)]
pub struct Options {
    pub upstream_url: String,
    pub project: String,
    pub scheme: Scheme,
    pub partial_refunds: bool,
    pub upstream_timeout_ms: u64,
    pub reconcile_interval_ms: u64,
    pub reconcile_max_polls: u32,
    pub reconcile_fail_after_ms: u64,
    pub allowed_origins: Vec<String>,
    pub database: Option<PathBuf>,
    pub serve_dir: Option<PathBuf>,
    pub frame_ancestors: String,
    pub max_token_ttl_secs: u64,
    pub rate_limit_per_minute: u32,
    pub ops_listen: Option<std::net::SocketAddr>,
    /// Agents' limits where their token sets none.
    pub refund_max: Option<shared::api::Limit>,
    pub refund_daily: Option<shared::api::Limit>,
    /// Refunds above this wait for a second agent's approval.
    pub approval_above: Option<shared::api::Limit>,
    pub approval_ttl_ms: u64,
    pub header_read_timeout_ms: u64,
    pub max_connections: usize,
    pub max_streams_per_agent: u32,
}

impl Options {
    pub fn new(upstream_url: impl Into<String>) -> Self {
        Self {
            upstream_url: upstream_url.into(),
            project: "demo-project".into(),
            scheme: Scheme::RsaSha256,
            partial_refunds: true,
            upstream_timeout_ms: 2_000,
            reconcile_interval_ms: 100,
            reconcile_max_polls: 5,
            reconcile_fail_after_ms: 300,
            allowed_origins: vec!["http://widget.test".into()],
            database: None,
            serve_dir: None,
            frame_ancestors: "'none'".into(),
            max_token_ttl_secs: 3600,
            // Tests fire bursts on one agent; the limit has its own test.
            rate_limit_per_minute: 0,
            ops_listen: None,
            refund_max: None,
            refund_daily: None,
            approval_above: None,
            approval_ttl_ms: 3_600_000,
            header_read_timeout_ms: 10_000,
            max_connections: 16_384,
            max_streams_per_agent: 32,
        }
    }

    pub fn config(&self, database: PathBuf) -> Config {
        let (signer, verifier) = match self.scheme {
            Scheme::RsaSha256 => (
                Signer::rsa_from_pem(&demo_key("DEMO-ONLY-merchant-private.pem")).unwrap(),
                Verifier::rsa_from_pem(&demo_key("DEMO-ONLY-sandbox-public.pem")).unwrap(),
            ),
            Scheme::HmacSha256 => (
                Signer::hmac(Secret::new(HMAC_REQUEST_SECRET)).unwrap(),
                Verifier::hmac(Secret::new(HMAC_WEBHOOK_SECRET)).unwrap(),
            ),
        };
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream_url: self.upstream_url.clone(),
            project: self.project.clone(),
            signer,
            verifier,
            agent_token_secret: Secret::new(TOKEN_SECRET),
            allowed_origins: self.allowed_origins.clone(),
            upstream_timeout: Duration::from_millis(self.upstream_timeout_ms),
            database: proxy::ledger::Database::parse(
                &database.to_string_lossy(),
                10,
                Duration::from_secs(5),
            )
            .unwrap(),
            partial_refunds: self.partial_refunds,
            refund_max: self.refund_max.clone(),
            refund_daily: self.refund_daily.clone(),
            approval_above: self.approval_above.clone(),
            approval_ttl: Duration::from_millis(self.approval_ttl_ms),
            demo_mode: true,
            serve_dir: self.serve_dir.clone(),
            body_limit: 16 * 1024,
            reconcile_interval: Duration::from_millis(self.reconcile_interval_ms),
            reconcile_in_progress_after: Duration::from_secs(1),
            reconcile_max_polls: self.reconcile_max_polls,
            reconcile_fail_after: Duration::from_millis(self.reconcile_fail_after_ms),
            log_json: false,
            frame_ancestors: self.frame_ancestors.clone(),
            connect_src: Vec::new(),
            max_token_ttl: Duration::from_secs(self.max_token_ttl_secs),
            rate_limit_per_minute: self.rate_limit_per_minute,
            ops_listen: self.ops_listen,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            max_connections: self.max_connections,
            max_streams_per_agent: self.max_streams_per_agent,
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub database: PathBuf,
    pub options: Options,
    _dir: Arc<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

pub async fn spawn_app(upstream_url: &str) -> TestApp {
    spawn_app_with(Options::new(upstream_url)).await
}

/// Whether this run of the suite keeps its ledgers in PostgreSQL: `PROXY_TEST_DATABASE=postgres`
/// (`cargo xtask test` runs the suite once with SQLite, once with this). Each test then gets
/// a fresh database on one throwaway cluster the suite starts itself.
pub fn on_postgres() -> bool {
    std::env::var("PROXY_TEST_DATABASE").is_ok_and(|engine| engine == "postgres")
}

/// A new, empty ledger for one test: a file in `dir`, or a fresh PostgreSQL database (its
/// URL, as the `database` setting takes it).
pub fn fresh_ledger(dir: &std::path::Path) -> PathBuf {
    if on_postgres() {
        let cluster = testkit::postgres::shared().expect("the throwaway PostgreSQL starts");
        PathBuf::from(cluster.fresh_database().expect("a fresh database"))
    } else {
        dir.join("ledger.sqlite")
    }
}

/// Ends a test early when the suite runs on PostgreSQL: it looks into the SQLite file
/// itself (or takes its disk away), which has no PostgreSQL counterpart here.
#[macro_export]
macro_rules! sqlite_only {
    () => {
        if $crate::helpers::on_postgres() {
            eprintln!("SQLite only: this test reads or breaks the ledger file itself");
            return;
        }
    };
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let database = options
        .database
        .clone()
        .unwrap_or_else(|| fresh_ledger(dir.path()));
    spawn_on(options, database, dir).await
}

async fn spawn_on(options: Options, database: PathBuf, dir: Arc<tempfile::TempDir>) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = options.config(database.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        proxy::run_until(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .expect("the proxy runs");
    });
    let app = TestApp {
        addr,
        client: reqwest::Client::new(),
        database,
        options,
        _dir: dir,
        stop: Some(stop),
        server,
    };
    // Wait until it answers, so tests start against a ready proxy.
    let ready = match app.options.ops_listen {
        Some(ops) => format!("http://{ops}/readyz"),
        None => app.url("/readyz"),
    };
    if let Err(e) =
        testkit::wait_ready(&ready, testkit::Ready::Success, Duration::from_secs(10)).await
    {
        panic!("the proxy did not become ready: {e}");
    }
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn webhook_url(&self) -> String {
        self.url("/webhooks/smart-glocal")
    }

    pub fn token(&self, agent: &str) -> String {
        proxy::auth::TokenKeys::new(&Secret::new(TOKEN_SECRET))
            .mint(agent, 600, None)
            .token
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn refund(&self, session: &str, body: &Value) -> (StatusCode, Value) {
        self.post(
            &format!("/api/payments/{session}/refunds"),
            &self.token("alice"),
            body,
        )
        .await
    }

    /// An event-stream ticket for `session`, as alice.
    pub async fn events_ticket(&self, session: &str) -> String {
        let (status, body) = self
            .post(
                &format!("/api/payments/{session}/events/ticket"),
                &self.token("alice"),
                &json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["ticket"].as_str().unwrap().to_owned()
    }

    /// `GET …/events` with a fresh ticket for `session`, answered 200: the open stream.
    pub async fn open_events(&self, session: &str) -> reqwest::Response {
        let ticket = self.events_ticket(session).await;
        let stream = self.events_with(session, &ticket).await;
        assert_eq!(stream.status(), StatusCode::OK);
        stream
    }

    /// `GET …/events` for `session` with `ticket`, whatever it answers.
    pub async fn events_with(&self, session: &str, ticket: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/payments/{session}/events?ticket={ticket}")))
            .send()
            .await
            .unwrap()
    }

    pub async fn payment(&self, session: &str) -> Value {
        let (status, body) = self
            .get(&format!("/api/payments/{session}"), &self.token("alice"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Stops gracefully, as on SIGTERM, and waits until it has.
    pub async fn stop(&mut self) {
        self.begin_stop();
        let _ = (&mut self.server).await;
    }

    /// Tells the proxy to stop, as SIGTERM does, and goes on while it drains.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops gracefully and starts again on the same ledger file and options.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        spawn_on(
            self.options.clone(),
            self.database.clone(),
            self._dir.clone(),
        )
        .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A refund submission: `amount` in minor units (None = full), a fresh key unless given.
pub fn submission(amount: Option<u64>, currency: &str, key: &str) -> Value {
    let amount = match amount {
        Some(amount) => json!({"partial": {"amount": amount, "currency": currency}}),
        None => json!("full"),
    };
    json!({"amount": amount, "reason": "requested_by_customer", "idempotency_key": key})
}

pub fn fresh_key() -> String {
    format!("key-{}", uuid::Uuid::new_v4().simple())
}

/// A fast sandbox (demo keys) with a proxy in front of it, webhooks wired to the proxy.
pub async fn sandbox_and_app() -> (Sandbox, TestApp) {
    sandbox_and_app_with(|o| o).await
}

pub async fn sandbox_and_app_with(adjust: impl FnOnce(Options) -> Options) -> (Sandbox, TestApp) {
    let sandbox = Sandbox::start(SandboxConfig::demo().fast()).await;
    let app = spawn_app_with(adjust(Options::new(sandbox.base_url()))).await;
    sandbox.set_webhook_url(app.webhook_url());
    (sandbox, app)
}

/// A fast sandbox whose webhooks come `delay` after a refund is taken, and a proxy in front
/// of it (the webhooks wired to it).
pub async fn webhooks_after(
    delay: Duration,
    adjust: impl FnOnce(Options) -> Options,
) -> (Sandbox, TestApp) {
    let sandbox = Sandbox::start(SandboxConfig::demo().fast().with_webhook_delay(delay)).await;
    let app = spawn_app_with(adjust(Options::new(sandbox.base_url()))).await;
    sandbox.set_webhook_url(app.webhook_url());
    (sandbox, app)
}

/// Polls `check` until it holds or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// One request the capture server received.
#[derive(Debug, Clone)]
pub struct Captured {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A tiny upstream that records every request and answers `answer`.
pub struct CaptureServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Captured>>>,
}

pub async fn capture_server(answer: Value) -> CaptureServer {
    let requests: Arc<Mutex<Vec<Captured>>> = Arc::default();
    let recorded = requests.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            let answer = answer.clone();
            async move {
                recorded.lock().unwrap().push(Captured {
                    path: uri.path().to_owned(),
                    headers,
                    body,
                });
                axum::Json(answer)
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    CaptureServer { url, requests }
}

/// A `status: ok` answer for `ps_usd_1001`, USD 100.00, no refunds.
pub fn ok_session() -> Value {
    json!({"status": "ok", "session": {
        "id": "ps_usd_1001", "status": "accepted",
        "acquiring_payments": [{
            "id": "pm_1", "status": "succeeded",
            "amount_details": {"amount": 10000, "currency": "usd"},
            "payment_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
            "refunds": []
        }]
    }})
}

/// The real `proxy` binary as a child process, for tests that `kill -9` it or take its disk
/// away; stopped when dropped.
pub struct ProxyProcess {
    process: testkit::ServerProcess,
    pub base: String,
}

impl ProxyProcess {
    /// Starts the binary on a free port in front of `upstream_url`, with its ledger at
    /// `database` and `extra` environment settings; returns once `/healthz` answers.
    pub async fn start(
        upstream_url: &str,
        database: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> Self {
        let addr = testkit::free_addr().unwrap();
        let mut command = serve_command(upstream_url, database);
        command
            .env("PROXY_LISTEN", addr.to_string())
            .env("PROXY_PARTIAL_REFUNDS", "true")
            .env("PROXY_RECONCILE_INTERVAL_MS", "100")
            .env("RUST_LOG", "warn")
            .envs(extra.iter().copied());
        let process = testkit::ServerProcess::start(
            command,
            addr,
            "/healthz",
            testkit::Ready::Success,
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| panic!("the proxy binary did not start: {e}"));
        Self {
            base: process.url.clone(),
            process,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    /// `GET /readyz` answers 200 (the ledger can write).
    pub async fn is_ready(&self) -> bool {
        reqwest::get(self.url("/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    pub async fn wait_ready(&self) {
        let readyz = self.url("/readyz");
        if let Err(e) =
            testkit::wait_ready(&readyz, testkit::Ready::Success, Duration::from_secs(5)).await
        {
            panic!("the proxy binary did not become ready: {e}");
        }
    }

    pub fn webhook_url(&self) -> String {
        self.url("/webhooks/smart-glocal")
    }

    /// `kill -9`: no chance to finish anything.
    pub fn kill_hard(&mut self) {
        self.process.kill_hard().unwrap();
    }

    /// SIGTERM, then waits for the graceful stop.
    pub fn stop(&mut self) {
        let status = self.process.stop(Duration::from_secs(30)).unwrap();
        assert!(status.success(), "the proxy stopped cleanly: {status}");
    }
}

/// The test's ledger opened directly, as an operator with a SQL shell would: the SQLite
/// file, or the PostgreSQL database. Statements use `$1` placeholders (both engines read them).
pub enum LedgerSql {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl LedgerSql {
    pub async fn open(app: &TestApp) -> Self {
        let database = app.database.to_string_lossy().into_owned();
        if database.starts_with("postgres://") {
            LedgerSql::Postgres(sqlx::PgPool::connect(&database).await.unwrap())
        } else {
            LedgerSql::Sqlite(
                sqlx::SqlitePool::connect(&format!("sqlite:{database}"))
                    .await
                    .unwrap(),
            )
        }
    }

    pub async fn execute(&self, statement: &str) {
        match self {
            LedgerSql::Sqlite(pool) => sqlx::query(statement).execute(pool).await.map(|_| ()),
            LedgerSql::Postgres(pool) => sqlx::query(statement).execute(pool).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// The one integer `query` answers (`SELECT COUNT(*) …`).
    pub async fn int(&self, query: &str) -> i64 {
        match self {
            LedgerSql::Sqlite(pool) => sqlx::query_scalar(query).fetch_one(pool).await,
            LedgerSql::Postgres(pool) => sqlx::query_scalar(query).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// The one text `query` answers, with `$1` bound to `arg`.
    pub async fn text(&self, query: &str, arg: &str) -> String {
        match self {
            LedgerSql::Sqlite(pool) => sqlx::query_scalar(query).bind(arg).fetch_one(pool).await,
            LedgerSql::Postgres(pool) => sqlx::query_scalar(query).bind(arg).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// The ledger's own state and refund id (empty if none) of the attempt `attempt_id`.
    pub async fn attempt(app: &TestApp, attempt_id: &str) -> (String, String) {
        let ledger = LedgerSql::open(app).await;
        let state = ledger
            .text(
                "SELECT state FROM refunds WHERE attempt_id = $1",
                attempt_id,
            )
            .await;
        let refund_id = ledger
            .text(
                "SELECT COALESCE(refund_id, '') FROM refunds WHERE attempt_id = $1",
                attempt_id,
            )
            .await;
        ledger.close().await;
        (state, refund_id)
    }

    pub async fn close(self) {
        match self {
            LedgerSql::Sqlite(pool) => pool.close().await,
            LedgerSql::Postgres(pool) => pool.close().await,
        }
    }
}

/// `proxy serve` in front of `upstream_url` with its ledger at `database` and the demo's keys:
/// every setting a start needs but where it listens.
pub fn serve_command(upstream_url: &str, database: &std::path::Path) -> std::process::Command {
    let mut command = proxy_bin();
    command
        .arg("serve")
        .env("PROXY_UPSTREAM_URL", upstream_url)
        .env("PROXY_PROJECT", "demo-project")
        .env(
            "PROXY_SIGNING_KEY",
            demo_key("DEMO-ONLY-merchant-private.pem"),
        )
        .env(
            "PROXY_WEBHOOK_KEY",
            demo_key("DEMO-ONLY-sandbox-public.pem"),
        )
        .env("PROXY_AGENT_TOKEN_SECRET", TOKEN_SECRET)
        .env("PROXY_DATABASE", database);
    command
}

/// `body` posted as a webhook with a signature that is no signature.
pub async fn forged_webhook(app: &TestApp, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.client
        .post(app.webhook_url())
        .header("x-partner-sign", "forged")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// What the proxy's `GET /readyz` answers.
pub async fn readyz(app: &TestApp) -> StatusCode {
    app.client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
}

/// The proxy's `/metrics` text.
pub async fn metrics(app: &TestApp) -> String {
    metrics_at(&app.client, &app.url("/metrics")).await
}

/// The `/metrics` text at `url` (a proxy this process runs, or a child process).
pub async fn metrics_at(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// The proxy's binary, as an operator runs it.
pub fn proxy_bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_proxy"))
}

/// What `command` (the proxy's binary) printed, trimmed, once it exited with success; its
/// error output in the failure otherwise.
pub fn succeeded(command: &mut std::process::Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `proxy revoke --agent {agent}` on `app`'s ledger, `after` from now (while a request of the
/// agent's is on its way), as the merchant's operator runs it.
pub async fn revoke_after(app: &TestApp, agent: &str, after: Duration) {
    tokio::time::sleep(after).await;
    let (database, agent) = (app.database.clone(), agent.to_owned());
    tokio::task::spawn_blocking(move || {
        succeeded(
            proxy_bin()
                .args(["revoke", "--agent", &agent])
                .env("PROXY_DATABASE", database),
        )
    })
    .await
    .unwrap();
}
