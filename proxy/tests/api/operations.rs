//! Health, metrics, the command line (token, export, configuration errors), and secrets
//! that never appear in logs or responses.

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let (_sandbox, app) = sandbox_and_app().await;
    let (status, _) = app
        .refund("ps_usd_1001", &submission(Some(100), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let metrics = scrape(&app).await;
    let refunds = r#"route="/api/payments/{session_id}/refunds",method="POST",status="201""#;
    for line in [
        format!("proxy_http_requests_total{{{refunds}}} 1"),
        format!("proxy_http_request_duration_seconds_count{{{refunds}}} 1"),
        r#"proxy_upstream_seconds_count{call="refund",outcome="ok"} 1"#.into(),
        r#"proxy_refund_transitions_total{state="in_progress"} 1"#.into(),
        "proxy_ledger_writable 1".into(),
        "proxy_event_streams_open 0".into(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }
}

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE].clone();
    assert!(
        content_type
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{content_type:?}"
    );
    response.text().await.unwrap()
}

/// The gauge counts streams while they are open, and forgets each once its client leaves.
#[tokio::test]
async fn metrics_count_the_event_streams_open() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let open = |n: usize| format!("proxy_event_streams_open {n}");
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(app.open_events("ps_usd_1001").await);
    }
    assert!(scrape(&app).await.lines().any(|l| l == open(3)));
    drop(streams);
    // The server notices a closed stream when it next writes to it (an event or keep-alive)
    // or reads the connection's end; give it a moment.
    let mut last = String::new();
    for _ in 0..100 {
        last = scrape(&app).await;
        if last.lines().any(|l| l == open(0)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("streams still counted after their clients left:\n{last}");
}

#[tokio::test]
async fn proxy_token_prints_a_token_the_proxy_accepts() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let token = succeeded(
        proxy_bin()
            .args([
                "token",
                "--agent",
                "carol",
                "--ttl",
                "5m",
                "--session",
                "ps_usd_1001",
            ])
            .env("PROXY_AGENT_TOKEN_SECRET", TOKEN_SECRET),
    );
    assert_eq!(
        app.get("/api/payments/ps_usd_1001/history", &token).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/payments/ps_eur_1002/history", &token).await.0,
        StatusCode::FORBIDDEN
    );
}

/// A flag wins over the environment, a secret's file over the environment's inline secret
/// too, before the subcommand as after it.
#[tokio::test]
async fn a_secret_file_flag_replaces_the_environments_inline_secret() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token-secret");
    std::fs::write(&file, format!("{TOKEN_SECRET}\n")).unwrap();
    let file = file.to_str().unwrap();
    for args in [
        vec![
            "--agent-token-secret-file",
            file,
            "token",
            "--agent",
            "carol",
        ],
        vec![
            "token",
            "--agent-token-secret-file",
            file,
            "--agent",
            "carol",
        ],
    ] {
        let token = succeeded(proxy_bin().args(&args).env(
            "PROXY_AGENT_TOKEN_SECRET",
            "the-environments-stale-secret-0000",
        ));
        assert_eq!(
            app.get("/api/payments/ps_usd_1001/history", &token).await.0,
            StatusCode::OK,
            "{args:?}: signed with the file's secret"
        );
    }
}

#[test]
fn a_missing_or_wrong_setting_stops_start_up_naming_it() {
    let missing = proxy_bin()
        .env("PROXY_AGENT_TOKEN_SECRET", TOKEN_SECRET)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("`project`"));
    let wrong = proxy_bin()
        .args([
            "--project",
            "p",
            "--signing-key",
            "not a pem",
            "--webhook-key",
            "x",
            "--agent-token-secret",
            TOKEN_SECRET,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("`signing_key`"), "{stderr}");
    assert!(
        !stderr.contains("not a pem"),
        "the secret value is not echoed"
    );
    // A PEM given inline begins with dashes, like a flag: it is the flag's value, and a
    // mistake elsewhere is named without echoing it.
    let pem = demo_key("DEMO-ONLY-merchant-private.pem");
    let wrong = proxy_bin()
        .args([
            "--project",
            "p",
            "--signing-key",
            &pem,
            "--webhook-key",
            "not a pem either",
            "--agent-token-secret",
            TOKEN_SECRET,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("`webhook_key`"), "{stderr}");
    let body = pem.lines().nth(1).unwrap();
    assert!(
        !stderr.contains("PRIVATE KEY") && !stderr.contains(body),
        "the private key is not echoed: {stderr}"
    );
    // A secret flag missing its value takes the next flag as one, and the secret after that
    // is a word clap does not expect: refused without repeating it.
    let wrong = proxy_bin()
        .args([
            "--project",
            "p",
            "--signing-key",
            "--agent-token-secret",
            "s3cret-token-secret-0123456789",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(stderr.contains("not understood"), "{stderr}");
    assert!(
        !stderr.contains("s3cret"),
        "the secret is not echoed: {stderr}"
    );
}

#[test]
fn the_demo_configuration_loads_from_any_directory() {
    let config = format!("{}/../demo/proxy.toml", env!("CARGO_MANIFEST_DIR"));
    let settings = proxy::Settings::layered(
        Some(std::path::Path::new(&config)),
        proxy::Settings::default(),
    )
    .unwrap();
    let config = proxy::Config::from_settings(settings).unwrap();
    assert_eq!(config.project, "demo-project");
    assert_eq!(config.listen.port(), 8080);
    assert!(config.partial_refunds && config.demo_mode);
    assert!(config.database.describe().ends_with(".data/proxy.sqlite"));
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("DEMO-ONLY-agent-token-secret"),
        "Debug never shows secrets"
    );
    let full_only = format!(
        "{}/../demo/proxy-full-only.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let settings = proxy::Settings::layered(
        Some(std::path::Path::new(&full_only)),
        proxy::Settings::default(),
    )
    .unwrap();
    let config = proxy::Config::from_settings(settings).unwrap();
    assert_eq!(
        (
            config.project.as_str(),
            config.listen.port(),
            config.partial_refunds
        ),
        ("demo-full-only", 8081, false)
    );
}

#[tokio::test]
async fn proxy_export_prints_the_ledger_as_csv() {
    let (_sandbox, app) = sandbox_and_app().await;
    let body = json!({"amount": {"partial": {"amount": 1234, "currency": "usd"}}, "reason": "other", "note": "=cmd, \"quoted\"", "idempotency_key": fresh_key()});
    assert_eq!(
        app.refund("ps_usd_1001", &body).await.0,
        StatusCode::CREATED
    );
    let output = proxy_bin()
        .args(["export", "--since", "2020-01-01", "--database"])
        .arg(&app.database)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("created_at,session_id,attempt_id"));
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].contains(",alice,1234,usd,12.34,other,\"'=cmd, \"\"quoted\"\"\","),
        "{csv}"
    );
    let none = proxy_bin()
        .args([
            "export",
            "--since",
            "2020-01-01",
            "--until",
            "2020-02-01",
            "--database",
        ])
        .arg(&app.database)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(none.stdout).unwrap().lines().count(), 1);
}

/// Everything logged by this test binary, from a global subscriber.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: Arc<Mutex<Vec<u8>>> = Arc::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .init();
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A flood of forged webhooks beyond what is kept for audit is counted, not logged: anyone can
/// post to the route, and a warning each would fill the log's disk.
#[tokio::test]
async fn forged_webhooks_beyond_the_audit_rate_are_not_logged() {
    let logs = captured_logs();
    let app = spawn_app("http://127.0.0.1:9").await;
    // A size no other test sends, to find this test's lines among every test's.
    let size = 4093;
    for _ in 0..300 {
        let response = forged_webhook(&app, vec![b'x'; size]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let ledger = LedgerSql::open(&app).await;
    let kept = ledger.int("SELECT COUNT(*) FROM rejected_webhooks").await;
    ledger.close().await;
    assert!(
        kept < 300,
        "the flood went beyond the audit rate: {kept} kept"
    );
    let logged = String::from_utf8_lossy(&logs.lock().unwrap())
        .lines()
        .filter(|line| line.contains("webhook rejected") && line.contains(&format!("bytes={size}")))
        .count();
    assert_eq!(
        i64::try_from(logged).unwrap(),
        kept,
        "one warning per webhook kept, none beyond"
    );
}

#[tokio::test]
async fn no_secret_appears_in_any_log_line_or_response() {
    let logs = captured_logs();
    let (sandbox, app) = sandbox_and_app().await;
    let token = app.token("alice");
    let mut answers = String::new();
    let forged = format!("{}x", token);
    for auth in [token.as_str(), forged.as_str()] {
        let (_, body) = app.get("/api/payments/ps_usd_1001", auth).await;
        answers.push_str(&body.to_string());
    }
    let (_, body) = app
        .refund("ps_usd_1001", &submission(Some(100), "usd", &fresh_key()))
        .await;
    answers.push_str(&body.to_string());
    sandbox.inject(sandbox::Fault::Decline).await;
    let (_, body) = app
        .refund("ps_usd_1001", &submission(Some(100), "usd", &fresh_key()))
        .await;
    answers.push_str(&body.to_string());
    let (_, body) = app
        .post(
            "/api/payments/ps_usd_1001/events/ticket",
            &token,
            &json!({}),
        )
        .await;
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    let sse = app
        .client
        .get(app.url(&format!("/api/payments/ps_usd_1001/events?ticket={ticket}")))
        .send()
        .await
        .unwrap();
    drop(sse);
    let response = forged_webhook(&app, "{}").await;
    answers.push_str(&response.text().await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(
        logged.contains("request"),
        "the subscriber captured the proxy's logs"
    );
    let private_key = demo_key("DEMO-ONLY-merchant-private.pem");
    let key_line = private_key.lines().nth(1).unwrap();
    for secret in [
        TOKEN_SECRET,
        HMAC_REQUEST_SECRET,
        HMAC_WEBHOOK_SECRET,
        key_line,
        token.as_str(),
        ticket.as_str(),
    ] {
        assert!(!logged.contains(secret), "a secret was logged");
        assert!(!answers.contains(secret), "a secret was answered");
    }
}

/// A request body is echoed in the log only quoted: a line break in it cannot forge a log
/// line of its own.
#[tokio::test]
async fn a_line_break_in_a_rejected_body_forges_no_log_line() {
    let logs = captured_logs();
    let app = spawn_app("http://127.0.0.1:9").await;
    let marker = format!("FORGED-{}", fresh_key());
    let body = json!({
        "amount": "full",
        "reason": format!("x\n2026-11-30T00:00:00Z ERROR {marker} refund sent"),
        "idempotency_key": fresh_key(),
    });
    let (status, answer) = app
        .post(
            "/api/payments/ps_usd_1001/refunds",
            &app.token("alice"),
            &body,
        )
        .await;
    assert_eq!(answer["code"], "invalid_json", "{status} {answer}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    let lines: Vec<&str> = logged.lines().filter(|l| l.contains(&marker)).collect();
    assert!(!lines.is_empty(), "the rejection is logged");
    for line in lines {
        assert!(
            line.contains("request rejected"),
            "a line of its own: {line}"
        );
    }
}

/// Logs written to a pipe (a file, a log collector) carry no terminal colour codes.
/// What `proxy` (a `serve`, on any free port, logging at its default level to a pipe) logs
/// until it listens; then it is stopped.
fn logged_until_listening(mut proxy: Command) -> String {
    use std::io::{BufRead, BufReader};
    let mut proxy = proxy
        .env("PROXY_LISTEN", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut logged = String::new();
    for line in BufReader::new(proxy.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        logged.push_str(&line);
        logged.push('\n');
        if line.contains("proxy listening") {
            break;
        }
    }
    proxy.kill().unwrap();
    proxy.wait().unwrap();
    logged
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut proxy = proxy_bin();
    proxy
        .current_dir(&root)
        .args(["serve", "--config", "demo/proxy.toml"])
        .env("PROXY_DATABASE", dir.path().join("ledger.sqlite"));
    let logged = logged_until_listening(proxy);
    assert!(logged.contains("proxy listening"), "{logged}");
    assert!(!logged.contains('\u{1b}'), "colour codes in: {logged:?}");
}

/// The start says which ledger it writes, whole (a relative path is another ledger from
/// another directory), and warns when there was none there: on any start but the first,
/// the ledger with every attempt and key so far is somewhere else.
#[test]
fn the_start_names_the_ledger_whole_and_warns_when_it_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let start = || {
        let mut proxy = proxy_bin();
        proxy
            .current_dir(dir.path())
            .arg("serve")
            .arg("--config")
            .arg(root.join("demo/proxy.toml"))
            .env("PROXY_DATABASE", "ledgers/here.sqlite");
        logged_until_listening(proxy)
    };
    let whole = std::fs::canonicalize(dir.path())
        .unwrap()
        .join("ledgers/here.sqlite");
    let first = start();
    let listening = first.lines().find(|l| l.contains("proxy listening"));
    assert!(
        listening.is_some_and(|l| l.contains(&whole.display().to_string())),
        "{first}"
    );
    assert!(first.contains("a new, empty one is created"), "{first}");
    let second = start();
    assert!(second.contains("proxy listening"), "{second}");
    assert!(!second.contains("a new, empty one"), "{second}");
}

/// The lines logged under the request whose `x-request-id` is `id`.
fn lines_of(logs: &Arc<Mutex<Vec<u8>>>, id: &str) -> Vec<String> {
    String::from_utf8_lossy(&logs.lock().unwrap())
        .lines()
        .filter(|line| line.contains(id))
        .map(str::to_owned)
        .collect()
}

/// A refund's lines can be found from what the agent's browser saw: its request id, and the
/// attempt id the answer carries, as the answer writes it; each names the agent, the payment
/// and the amount with its currency, and the last says how it ended.
#[tokio::test]
async fn a_refunds_log_lines_carry_its_request_attempt_agent_and_amount() {
    let logs = captured_logs();
    let (_sandbox, app) = sandbox_and_app().await;
    let request_id = format!("refund-{}", fresh_key());
    let answer = app
        .client
        .post(app.url("/api/payments/ps_usd_1001/refunds"))
        .bearer_auth(app.token("alice"))
        .header("x-request-id", &request_id)
        .json(&submission(Some(1234), "usd", &fresh_key()))
        .send()
        .await
        .unwrap();
    let (status, body) = read(answer).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let attempt = body["attempt_id"].as_str().unwrap();
    let lines = lines_of(&logs, &request_id);
    let sending = lines
        .iter()
        .find(|line| line.contains("sending refund"))
        .unwrap_or_else(|| panic!("no line sending the refund under its request: {lines:#?}"));
    for field in [
        format!("attempt_id={attempt}"),
        "agent=alice".to_owned(),
        "session_id=ps_usd_1001".to_owned(),
        "amount=1234".to_owned(),
        "currency=".to_owned(),
    ] {
        assert!(sending.contains(&field), "{field} missing: {sending}");
    }
    let answered = lines
        .iter()
        .find(|line| line.contains("refund answered"))
        .unwrap_or_else(|| panic!("no line saying how it ended: {lines:#?}"));
    assert!(answered.contains("status=201"), "{answered}");
    assert!(
        answered.contains(&format!("attempt_id={attempt}")),
        "{answered}"
    );
}

/// A refused request is its one access line, with its status and error code: no second line
/// per refusal that anyone could multiply, and no `ERROR` for what a client did.
#[tokio::test]
async fn a_refused_request_is_one_access_line_with_its_code() {
    let logs = captured_logs();
    let app = spawn_app("http://127.0.0.1:9").await;
    let request_id = format!("refused-{}", fresh_key());
    let answer = app
        .client
        .get(app.url("/api/payments/ps_usd_1001"))
        .header("x-request-id", &request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let lines: Vec<String> = lines_of(&logs, &request_id)
        .into_iter()
        .filter(|line| !line.contains(" DEBUG ") && !line.contains(" TRACE "))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("status=401"), "{}", lines[0]);
    assert!(lines[0].contains("unauthenticated"), "{}", lines[0]);
    assert!(!lines[0].contains("ERROR"), "{}", lines[0]);
}

/// `proxy serve` with the settings every start needs, `database` in `dir`, logging at the
/// default level; `extra` on top.
fn serve_in(dir: &std::path::Path, extra: &[(&str, &str)]) -> Command {
    let mut proxy = serve_command("http://127.0.0.1:9", &dir.join("ledger.sqlite"));
    proxy
        .env("PROXY_LISTEN", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .envs(extra.iter().copied());
    proxy
}

/// What `proxy` printed when it exited; one still running after 20 s (it started after all) is
/// stopped, and the test fails.
fn refused_start(mut proxy: Command) -> std::process::Output {
    let child = proxy
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output().unwrap()));
    exited
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("the proxy started where it should have refused to")
        })
}

/// A start that cannot happen says in one line which setting is at fault, with its value (never
/// a credential in it), and exits 2.
#[test]
fn a_start_that_fails_names_the_setting_and_never_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let occupied = refused_start(serve_in(dir.path(), &[("PROXY_OPS_LISTEN", &taken)]));
    let said = String::from_utf8_lossy(&occupied.stderr);
    assert_eq!(occupied.status.code(), Some(2), "{said}");
    assert!(
        said.contains("ops_listen") && said.contains(&taken),
        "{said}"
    );

    let demo_elsewhere = refused_start(serve_in(
        dir.path(),
        &[
            (
                "PROXY_UPSTREAM_URL",
                "https://merchant:hunter2-secret@sg.example",
            ),
            ("PROXY_DEMO_MODE", "true"),
        ],
    ));
    let said = String::from_utf8_lossy(&demo_elsewhere.stderr);
    assert_eq!(demo_elsewhere.status.code(), Some(2), "{said}");
    assert!(said.contains("demo_mode"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");

    let not_a_ledger = tempfile::tempdir().unwrap();
    let file = not_a_ledger.path().join("ledger.sqlite");
    std::fs::write(&file, vec![b'x'; 4096]).unwrap();
    let unopenable = refused_start(serve_in(not_a_ledger.path(), &[]));
    let said = String::from_utf8_lossy(&unopenable.stderr);
    assert_eq!(unopenable.status.code(), Some(2), "{said}");
    assert!(said.contains(&*file.to_string_lossy()), "{said}");
}

/// A `RUST_LOG` the proxy cannot read is said so, not silently replaced.
#[test]
fn a_rust_log_it_cannot_read_is_said_so() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut proxy = serve_in(dir.path(), &[("RUST_LOG", "proxy=loud")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = proxy.stderr.take().unwrap();
    let (lines, logged) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut said = String::new();
    // Bounded: a proxy that neither listens nor exits fails the test, never hangs it.
    while let Ok(line) = logged.recv_timeout(std::time::Duration::from_secs(20)) {
        said.push_str(&line);
        said.push('\n');
        if line.contains("proxy listening") {
            break;
        }
    }
    proxy.kill().unwrap();
    proxy.wait().unwrap();
    assert!(said.contains("proxy listening"), "{said}");
    assert!(said.contains("RUST_LOG"), "{said}");
}
