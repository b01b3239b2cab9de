//! Issue 14's hardening, each point over real sockets: amounts that cannot be stored exactly,
//! security headers, static serving, token lifetimes and revocation, and hostile input.

use reqwest::StatusCode;
use serde_json::{json, Value};
use signing::Signer;

use crate::helpers::*;

const NO_UPSTREAM: &str = "http://127.0.0.1:9";

fn sandbox_signer() -> Signer {
    Signer::rsa_from_pem(&demo_key("DEMO-ONLY-sandbox-private.pem")).unwrap()
}

/// A signed `payment_refunded` webhook of `session` with one accepted refund of `amount`.
fn refund_webhook(session: &str, refund_id: &str, amount: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({"type": "payment_refunded", "session": {
        "id": session, "status": "accepted",
        "acquiring_payments": [{
            "id": "pm_1", "status": "succeeded",
            "amount_details": {"amount": amount, "currency": "usd"},
            "refunds": [{
                "id": refund_id, "status": "accepted",
                "amount_details": {"amount": amount, "currency": "usd"}
            }]
        }]
    }}))
    .unwrap()
}

async fn send_webhook(app: &TestApp, body: &[u8]) -> StatusCode {
    app.client
        .post(app.webhook_url())
        .header("content-type", "application/json")
        .header("x-partner-sign", sandbox_signer().sign(body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

async fn history(app: &TestApp, session: &str) -> Vec<Value> {
    let (status, body) = app
        .get(
            &format!("/api/payments/{session}/history"),
            &app.token("alice"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

// 1. Amounts are stored exactly or not at all.

#[tokio::test]
async fn a_webhook_amount_beyond_i64_is_kept_for_audit_counted_and_applied_to_nothing() {
    let app = spawn_app(NO_UPSTREAM).await;
    for (session, amount) in [
        ("ps_big_1", u64::MAX),
        ("ps_big_2", u64::try_from(i64::MAX).unwrap() + 1),
    ] {
        let status = send_webhook(&app, &refund_webhook(session, "rf_big", amount)).await;
        // 200: authentic, and a retry would not make it fit.
        assert_eq!(status, StatusCode::OK);
        assert!(history(&app, session).await.is_empty(), "{session}");
    }
    let ledger = proxy::ledger::Ledger::open(&app.database).await.unwrap();
    assert_eq!(ledger.webhook_counts().await.unwrap(), (2, 0), "kept whole");
    assert!(ledger.export(0, i64::MAX).await.unwrap().is_empty());
    ledger.close().await;
    let metrics = metrics(&app).await;
    assert!(
        metrics.contains(r#"proxy_webhooks_total{outcome="unrepresentable"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_largest_storable_amount_goes_through_exactly() {
    let app = spawn_app(NO_UPSTREAM).await;
    let max = u64::try_from(i64::MAX).unwrap();
    let status = send_webhook(&app, &refund_webhook("ps_big_3", "rf_max", max)).await;
    assert_eq!(status, StatusCode::OK);
    let history = history(&app, "ps_big_3").await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["amount"]["amount"], json!(max));
}

// 2. Security headers.

/// A served folder like `dist/`: a page with one inline script, a script file, and what must
/// never be served next to them.
fn served_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("index.html"),
        "<!doctype html><script type=\"module\" src=\"/app.js\"></script><script type=\"module\">start();</script>",
    )
    .unwrap();
    std::fs::write(root.join("app.js"), "export {};").unwrap();
    std::fs::write(root.join(".env"), "SECRET=1").unwrap();
    std::fs::create_dir(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), "[remote]").unwrap();
    dir
}

async fn spawn_serving(dir: &std::path::Path, frame_ancestors: &str) -> TestApp {
    let mut options = Options::new(NO_UPSTREAM);
    options.serve_dir = Some(dir.to_path_buf());
    options.frame_ancestors = frame_ancestors.into();
    spawn_app_with(options).await
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("<absent>")
}

#[tokio::test]
async fn served_pages_carry_a_csp_allowing_the_wasm_widget_and_its_inline_script_only() {
    let dir = served_folder();
    let app = spawn_serving(dir.path(), "'none'").await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = header(&page, "content-security-policy");
    // sha256("start();"), the page's one inline script.
    for part in [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval' 'sha256-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    assert!(!csp
        .split(';')
        .any(|d| d.contains("script-src") && d.contains("'unsafe-inline'")));
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    assert_ne!(
        header(&page, "cache-control"),
        "no-store",
        "files stay cacheable"
    );
}

#[tokio::test]
async fn the_inline_script_hash_in_the_csp_is_the_scripts_own() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let dir = served_folder();
    let app = spawn_serving(dir.path(), "'none'").await;
    let page = app.client.get(app.url("/index.html")).send().await.unwrap();
    let expected =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"start();"));
    let csp = header(&page, "content-security-policy");
    assert!(csp.contains(&format!("'sha256-{expected}'")), "{csp}");
}

#[tokio::test]
async fn api_answers_are_never_stored_and_carry_the_headers_too() {
    let app = spawn_app(NO_UPSTREAM).await;
    let token = app.token("alice");
    for path in ["/api/payments/ps_usd_1001/history", "/api/payments/nope"] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&response, "cache-control"), "no-store", "{path}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert!(header(&response, "content-security-policy").contains("frame-ancestors 'none'"));
    }
    // Even the middleware's own refusals.
    let refused = app
        .client
        .get(app.url("/api/payments/ps_usd_1001"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&refused, "x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn frame_ancestors_come_from_the_setting() {
    let dir = served_folder();
    let app = spawn_serving(dir.path(), "https://shop.example").await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert!(
        header(&page, "content-security-policy").contains("frame-ancestors https://shop.example")
    );
    assert_eq!(header(&page, "x-frame-options"), "<absent>");
}

// 3. Static serving that cannot leak.

#[tokio::test]
async fn dotfiles_and_dot_folders_are_never_served_however_spelled() {
    let dir = served_folder();
    let app = spawn_serving(dir.path(), "'none'").await;
    for path in [
        "/.env",
        "/%2eenv",
        "/%2Eenv",
        "/.git/config",
        "/.git/",
        "/x/../.env",
        "/app.js/../.env",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("SECRET") && !body.contains("[remote]"),
            "{path}: {body}"
        );
    }
    let ok = app.client.get(app.url("/app.js")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_leading_out_of_serve_dir_are_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "SECRET").unwrap();
    std::fs::write(outside.path().join("index.html"), "SECRET page").unwrap();
    let dir = served_folder();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        dir.path().join("leak.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("elsewhere")).unwrap();
    // A link that stays inside is fine.
    std::os::unix::fs::symlink(dir.path().join("app.js"), dir.path().join("alias.js")).unwrap();
    let app = spawn_serving(dir.path(), "'none'").await;
    for path in [
        "/leak.txt",
        "/elsewhere/secret.txt",
        "/elsewhere/",
        "/elsewhere",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let inside = app.client.get(app.url("/alias.js")).send().await.unwrap();
    assert_eq!(inside.status(), StatusCode::OK);
}

/// The demo configuration with paths replaced.
fn demo_settings(serve_dir: &std::path::Path) -> proxy::Settings {
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/keys");
    proxy::Settings {
        project: Some("demo-project".into()),
        signing_key_file: Some(keys.join("DEMO-ONLY-merchant-private.pem")),
        webhook_key_file: Some(keys.join("DEMO-ONLY-sandbox-public.pem")),
        agent_token_secret: Some(signing::Secret::new(TOKEN_SECRET)),
        serve_dir: Some(serve_dir.to_path_buf()),
        database: Some(serve_dir.parent().unwrap().join("ledger.sqlite")),
        ..Default::default()
    }
}

fn refused_setting(settings: proxy::Settings) -> &'static str {
    match proxy::Config::from_settings(settings) {
        Err(proxy::ConfigError::Invalid { name, .. }) => name,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn secrets_inside_serve_dir_are_refused_at_start() {
    let parent = tempfile::tempdir().unwrap();
    let serve_dir = parent.path().join("dist");
    std::fs::create_dir(&serve_dir).unwrap();
    assert!(proxy::Config::from_settings(demo_settings(&serve_dir)).is_ok());

    // The ledger, also spelled through `..` and not yet created.
    let mut settings = demo_settings(&serve_dir);
    settings.database = Some(serve_dir.join("data/../proxy.sqlite"));
    assert_eq!(refused_setting(settings), "database");

    let key = serve_dir.join("key.pem");
    std::fs::copy(demo_settings(&serve_dir).signing_key_file.unwrap(), &key).unwrap();
    let mut settings = demo_settings(&serve_dir);
    settings.signing_key_file = Some(key);
    assert_eq!(refused_setting(settings), "signing_key_file");

    let secret = serve_dir.join("agent-secret");
    std::fs::write(&secret, TOKEN_SECRET).unwrap();
    let mut settings = demo_settings(&serve_dir);
    settings.agent_token_secret = None;
    settings.agent_token_secret_file = Some(secret);
    assert_eq!(refused_setting(settings), "agent_token_secret_file");

    // The config file itself, read from inside the folder.
    let file = serve_dir.join("proxy.toml");
    std::fs::write(&file, "project = \"demo-project\"\n").unwrap();
    let from_file = proxy::Settings::from_file(&file).unwrap();
    assert_eq!(
        refused_setting(from_file.overridden_by(demo_settings(&serve_dir))),
        "config"
    );
}

// 5. Inputs.

#[tokio::test]
async fn unknown_fields_inside_amount_are_refused_without_serde_internals() {
    let app = spawn_app(NO_UPSTREAM).await;
    let body = json!({
        "amount": {"partial": {"amount": 100, "currency": "usd", "extra": 1}},
        "reason": "requested_by_customer",
        "idempotency_key": fresh_key(),
    });
    let (status, answer) = app.refund("ps_usd_1001", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["code"], "invalid_json");
    let message = answer["message"].as_str().unwrap();
    for internal in [
        "`extra`",
        "expected",
        "line ",
        "column",
        "RefundSubmission",
        "u64",
    ] {
        assert!(!message.contains(internal), "{internal} in {message}");
    }
    let (status, answer) = app
        .post(
            "/demo/token",
            "",
            &json!({"agent": "alice", "scope": "admin"}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
}

#[tokio::test]
async fn a_mistyped_amount_gets_a_sentence_not_a_rust_type_name() {
    let app = spawn_app(NO_UPSTREAM).await;
    let body = json!({
        "amount": {"partial": {"amount": "lots", "currency": "usd"}},
        "reason": "requested_by_customer",
        "idempotency_key": fresh_key(),
    });
    let (status, answer) = app.refund("ps_usd_1001", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = answer["message"].as_str().unwrap();
    assert!(
        !message.contains("invalid type") && !message.contains("u64"),
        "{message}"
    );
}

#[tokio::test]
async fn x_request_id_is_echoed_only_when_it_is_a_plain_token() {
    let app = spawn_app(NO_UPSTREAM).await;
    let echoed = |id: &'static str| {
        let request = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", id);
        async move {
            let response = request.send().await.unwrap();
            header(&response, "x-request-id").to_owned()
        }
    };
    assert_eq!(echoed("req-1.2_AB").await, "req-1.2_AB");
    let too_long: &'static str = Box::leak("a".repeat(65).into_boxed_str());
    for hostile in [
        "forged\tlog line",
        "a b",
        "x\"}{\"level\":\"error",
        "",
        too_long,
        "ünï",
    ] {
        let answered = echoed(hostile).await;
        assert_ne!(answered, hostile);
        assert!(proxy::valid_request_id(answered.as_bytes()), "{answered:?}");
    }
}

#[test]
fn csv_cells_with_control_characters_are_escaped() {
    let row = proxy::ledger::RefundRow {
        key: 1,
        attempt_id: Some("at_1".into()),
        refund_id: None,
        session_id: "ps_usd_1001".into(),
        origin: "proxy".into(),
        agent: Some("alice\u{1b}[31m".into()),
        amount: 100,
        currency: "usd".into(),
        full_refund: false,
        reason: Some("other".into()),
        note: Some("line one\nline two\r\0\u{7}\u{85}".into()),
        idempotency_key: None,
        request_hash: None,
        refunds_before: "[]".into(),
        state: "succeeded".into(),
        error_code: None,
        error_detail: None,
        polls: 0,
        next_poll_at: None,
        created_at: 0,
        updated_at: 0,
        finished_at: None,
    };
    let line = proxy::ledger::ExportRow(row).csv_line();
    assert!(!line.chars().any(char::is_control), "{line:?}");
    assert!(line.contains(r"alice\u{1b}[31m"), "{line}");
    assert!(
        line.contains(r"line one\u{a}line two\u{d}\u{0}\u{7}\u{85}"),
        "{line}"
    );
}
