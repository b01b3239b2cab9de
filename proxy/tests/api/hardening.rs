//! Issue 14's hardening, each point over real sockets: amounts that cannot be stored exactly,
//! security headers, static serving, token lifetimes and revocation, and hostile input.

use reqwest::StatusCode;
use sandbox::{Fault, FaultRequest, FaultRoute};
use serde_json::{json, Value};
use shared::api::RefundState;
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

/// Anyone can post to the webhook route. Forged webhooks are kept for audit only up to a
/// rate (each keep is a synced commit on the writer refunds need); a flood beyond it is
/// answered 401 all the same and counted, not written.
#[tokio::test]
async fn a_flood_of_forged_webhooks_is_refused_and_kept_for_audit_only_up_to_a_rate() {
    let app = spawn_app(NO_UPSTREAM).await;
    let flood = 400;
    let started = std::time::Instant::now();
    for _ in 0..flood {
        let response = forged_webhook(&app, vec![b'x'; 4096]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let seconds = started.elapsed().as_secs_f64();
    let ledger = LedgerSql::open(&app).await;
    let kept = ledger.int("SELECT COUNT(*) FROM rejected_webhooks").await;
    ledger.close().await;
    // The burst, and what the rate refilled meanwhile.
    let most = 150.0 + seconds * 10.0 + 1.0;
    assert!(kept > 0, "some are kept for audit");
    assert!((kept as f64) <= most, "{kept} kept in {seconds:.1} s");
    let metrics = metrics(&app).await;
    let not_kept = format!(
        r#"proxy_anomalies_total{{kind="rejected_webhook_not_kept"}} {}"#,
        flood - kept
    );
    assert!(metrics.contains(&not_kept), "{not_kept} in {metrics}");
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
    let ledger = LedgerSql::open(&app).await;
    let count = |table: &str| format!("SELECT COUNT(*) FROM {table}");
    let stored: (i64, i64, i64) = (
        ledger.int(&count("webhooks")).await,
        ledger.int(&count("rejected_webhooks")).await,
        ledger.int(&count("refunds")).await,
    );
    ledger.close().await;
    assert_eq!(
        stored,
        (2, 0, 0),
        "both kept whole as verified webhooks; no refund recorded"
    );
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
        "<!doctype html><style>h1 { color: red }</style><script type=\"module\" src=\"/app.js\"></script><script type=\"module\">start();</script>",
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
    // No inline script or style but the page's own, by hash: sha256("h1 { color: red }").
    assert!(!csp.contains("'unsafe-inline'"), "{csp}");
    assert!(
        csp.contains("style-src 'self' 'sha256-tTSm1OckW5h6W6ygQhQ4J51f9En6kC/x9O18pXFX6KM='"),
        "{csp}"
    );
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

/// Every `Vary` header's names, lowercase.
fn varies_on(response: &reqwest::Response) -> String {
    let values = response.headers().get_all("vary").iter();
    let names: Vec<String> = values.map(|v| v.to_str().unwrap().to_lowercase()).collect();
    names.join(", ")
}

/// The widget's compressed copies (what `cargo xtask widget` writes beside each file, with the
/// checksum list that vouches for them) go to the clients that accept them, with the file's own
/// type; anyone else gets the file as it is, and so does everyone once the list no longer
/// vouches for the file and its copies. How the folder was copied (file times) is no matter.
#[tokio::test]
async fn a_files_compressed_copy_goes_only_to_clients_that_accept_it_and_never_stale() {
    assert_eq!(
        proxy::static_files::CHECKSUMS,
        testkit::widget_size::CHECKSUMS,
        "the build writes the list the proxy reads"
    );
    let dir = served_folder();
    let wasm = dir.path().join("w_bg.wasm");
    let module = b"\0asm the module ".repeat(100);
    std::fs::write(&wasm, &module).unwrap();
    testkit::widget_size::precompress(dir.path()).unwrap();
    let copy =
        |suffix: &str| std::fs::read(dir.path().join(format!("w_bg.wasm.{suffix}"))).unwrap();
    // As `cp -r` leaves it: the file newer than its copies.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    set_modified(&wasm, later);
    let app = spawn_serving(dir.path(), "'none'").await;
    let get = |accept: &'static str| {
        let request = app.client.get(app.url("/w_bg.wasm"));
        let request = if accept.is_empty() {
            request
        } else {
            request.header("accept-encoding", accept)
        };
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(header(&response, "content-type"), "application/wasm");
            let encoding = header(&response, "content-encoding").to_owned();
            let vary = varies_on(&response);
            let body = response.bytes().await.unwrap().to_vec();
            (encoding, vary, body)
        }
    };

    let (encoding, vary, body) = get("gzip, deflate, br").await;
    assert_eq!(encoding, "br");
    assert_eq!(body, copy("br"));
    assert!(body.len() < module.len());
    assert!(vary.contains("accept-encoding"), "{vary}");
    let (encoding, vary, body) = get("gzip").await;
    assert_eq!((encoding.as_str(), body), ("gzip", copy("gz")));
    assert!(vary.contains("accept-encoding"), "{vary}");
    // Asked again with its tag: unchanged, whichever encoding the browser kept.
    let plain = app.client.get(app.url("/w_bg.wasm")).send().await.unwrap();
    let etag = header(&plain, "etag").to_owned();
    let unchanged = app
        .client
        .get(app.url("/w_bg.wasm"))
        .header("accept-encoding", "br")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert!(varies_on(&unchanged).contains("accept-encoding"));
    for accept in ["", "identity", "zstd"] {
        let (encoding, _, body) = get(accept).await;
        assert_eq!(encoding, "<absent>", "{accept}");
        assert_eq!(body, module, "{accept}");
    }

    // The module built again, its copies not: they are other bytes now.
    let rebuilt = b"\0asm the module, rebuilt ".repeat(100);
    std::fs::write(&wasm, &rebuilt).unwrap();
    let (encoding, _, body) = get("gzip, deflate, br").await;
    assert_eq!(encoding, "<absent>");
    assert_eq!(body, rebuilt);
    // And compressed again: sent compressed again.
    testkit::widget_size::precompress(dir.path()).unwrap();
    let (encoding, _, body) = get("br").await;
    assert_eq!((encoding.as_str(), body), ("br", copy("br")));
    // A copy replaced by anything else is not sent either.
    std::fs::write(dir.path().join("w_bg.wasm.br"), b"not brotli").unwrap();
    let (encoding, _, body) = get("br").await;
    assert_eq!((encoding.as_str(), body), ("<absent>", rebuilt.clone()));

    // A copy that is not a file is not sent either.
    std::fs::remove_file(dir.path().join("w_bg.wasm.br")).unwrap();
    std::fs::create_dir(dir.path().join("w_bg.wasm.br")).unwrap();
    let (encoding, _, body) = get("br").await;
    assert_eq!((encoding.as_str(), body), ("<absent>", rebuilt.clone()));
    std::fs::remove_dir(dir.path().join("w_bg.wasm.br")).unwrap();

    // Without the list (a deploy that skipped dotfiles), nothing vouches: as it is.
    testkit::widget_size::precompress(dir.path()).unwrap();
    assert_eq!(get("br").await.0, "br");
    std::fs::remove_file(dir.path().join(".compressed.sha256")).unwrap();
    let (encoding, _, body) = get("br").await;
    assert_eq!((encoding.as_str(), body), ("<absent>", rebuilt));

    // The list itself is never served, and a file without copies goes out as it is.
    let list = app
        .client
        .get(app.url("/.compressed.sha256"))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::NOT_FOUND);
    std::fs::remove_file(dir.path().join("app.js.br")).unwrap();
    std::fs::remove_file(dir.path().join("app.js.gz")).unwrap();
    let script = app
        .client
        .get(app.url("/app.js"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&script, "content-encoding"), "<absent>");
    assert_eq!(&script.bytes().await.unwrap()[..], b"export {};");
}

/// The widget's files keep their names across builds, and its glue and wasm only work
/// together: a browser must ask before it uses a kept copy (a 304 when unchanged), so no page
/// pairs one from before a deploy with the other from after. The tag is the bytes' hash, so
/// a file put back with the same time (a rollback, `rsync -a`) or rebuilt within the same
/// second is still told apart.
#[tokio::test]
async fn served_files_are_revalidated_before_each_use_by_their_bytes() {
    let dir = served_folder();
    let file = dir.path().join("app.js");
    let app = spawn_serving(dir.path(), "'none'").await;
    let first = app.client.get(app.url("/app.js")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "cache-control"), "no-cache");
    let modified = header(&first, "last-modified").to_owned();
    let etag = header(&first, "etag").to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");

    for (name, value) in [("if-none-match", &etag), ("if-modified-since", &modified)] {
        let again = app
            .client
            .get(app.url("/app.js"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{name}");
        assert_eq!(header(&again, "cache-control"), "no-cache");
        assert_eq!(header(&again, "etag"), etag);
        assert!(again.bytes().await.unwrap().is_empty());
    }

    // Other bytes under the same time: the tag tells, whatever the date says.
    let at = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, "export const v = 2;").unwrap();
    set_modified(&file, at);
    let rebuilt = app
        .client
        .get(app.url("/app.js"))
        .header("if-none-match", &etag)
        .header("if-modified-since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(rebuilt.status(), StatusCode::OK);
    assert_ne!(header(&rebuilt, "etag"), etag);
    assert_eq!(&rebuilt.bytes().await.unwrap()[..], b"export const v = 2;");
}

fn set_modified(path: &std::path::Path, at: std::time::SystemTime) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(at).unwrap();
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

/// A per-currency limit naming something that is not a currency (`rur`, the ruble's old code;
/// `jyp`) would bind nothing and leave the currency meant unlimited: the proxy does not start,
/// and says which setting and which code, whether the limit came from the file or a flag.
#[test]
fn a_limit_naming_no_currency_is_refused_at_start() {
    let parent = tempfile::tempdir().unwrap();
    let serve_dir = parent.path().join("dist");
    std::fs::create_dir(&serve_dir).unwrap();
    let limit = |json: &str| Some(serde_json::from_str::<shared::api::Limit>(json).unwrap());
    let mut settings = demo_settings(&serve_dir);
    settings.approval_above = limit(r#"{"usd": 5000, "rur": 500000}"#);
    assert_eq!(refused_setting(settings), "approval_above");
    let mut settings = demo_settings(&serve_dir);
    settings.refund_daily = limit(r#"{"jyp": 5000}"#);
    assert_eq!(refused_setting(settings), "refund_daily");
    let mut settings = demo_settings(&serve_dir);
    settings.refund_max = limit(r#"{"USD": 5000, "rub": 100000}"#);
    assert!(
        proxy::Config::from_settings(settings).is_ok(),
        "codes in any case"
    );
    // As a flag or `PROXY_*` value.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_proxy"))
        .args(["serve", "--approval-above", r#"{"rur":1}"#])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(said.contains("`rur` is not a currency code"), "{said}");
}

/// `demo_mode` hands an approver's token to anyone who asks: the proxy does not start with it
/// in front of anything but a sandbox on this machine.
#[test]
fn demo_mode_is_refused_unless_smart_glocal_is_a_sandbox_on_this_machine() {
    let parent = tempfile::tempdir().unwrap();
    let serve_dir = parent.path().join("dist");
    std::fs::create_dir(&serve_dir).unwrap();
    for (upstream, starts) in [
        (None, false), // the default: Smart Glocal's test server
        (Some("https://proxy.smart-glocal.com"), false),
        (Some("http://127.0.0.1.example.com:7070"), false),
        (Some("http://127.0.0.1:7070"), true),
        (Some("http://localhost:7070"), true),
        (Some("http://[::1]:7070"), true),
    ] {
        let mut settings = demo_settings(&serve_dir);
        settings.demo_mode = Some(true);
        settings.upstream_url = upstream.map(str::to_owned);
        match proxy::Config::from_settings(settings) {
            Ok(_) => assert!(starts, "{upstream:?} started"),
            Err(proxy::ConfigError::Invalid { name, .. }) => {
                assert!(!starts, "{upstream:?} refused");
                assert_eq!(name, "demo_mode");
            }
            Err(other) => panic!("{upstream:?}: {other:?}"),
        }
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
    // Spelled as a URL, which names the same file.
    for scheme in ["sqlite:", "sqlite://"] {
        let mut settings = demo_settings(&serve_dir);
        let url = format!("{scheme}{}", serve_dir.join("proxy.sqlite").display());
        settings.database = Some(url.into());
        assert_eq!(refused_setting(settings), "database");
    }
    // …and relative in the config file, which resolves against the file's parent folder.
    let conf = parent.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("proxy.toml"),
        "database = \"sqlite:dist/ledger.sqlite\"\n",
    )
    .unwrap();
    let from_file = proxy::Settings::from_file(&conf.join("proxy.toml")).unwrap();
    let mut settings = demo_settings(&serve_dir);
    settings.database = None;
    assert_eq!(
        refused_setting(from_file.overridden_by(settings).unwrap()),
        "database"
    );

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
        refused_setting(from_file.overridden_by(demo_settings(&serve_dir)).unwrap()),
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
        attempt_id: Some(shared::AttemptId::from_random(1)),
        refund_id: None,
        session_id: "ps_usd_1001".into(),
        origin: proxy::ledger::Origin::Proxy,
        agent: Some("alice\u{1b}[31m".into()),
        amount: 100,
        currency: shared::Currency::parse("usd").unwrap(),
        full_refund: false,
        reason: Some(shared::api::RefundReason::Other),
        // A note taken before notes refused control characters, as the ledger reads it back.
        note: shared::Note::recorded("line one\nline two\r\0\u{7}\u{85}end"),
        idempotency_key: None,
        request_hash: None,
        refunds_before: Vec::new(),
        state: shared::api::RefundState::Accepted,
        error_code: None,
        error_detail: None,
        polls: 0,
        next_poll_at: None,
        created_at: 0,
        updated_at: 0,
        finished_at: None,
        absent_since: None,
        attention: None,
        role: None,
        bound_by_amount: false,
    };
    let mut reversed = row.clone();
    reversed.note = shared::Note::parse("refund\u{202e}txt.exe\u{2028}next").unwrap();
    let line = proxy::ledger::ExportRow(row).csv_line();
    assert!(!line.chars().any(char::is_control), "{line:?}");
    assert!(line.contains(r"alice\u{1b}[31m"), "{line}");
    assert!(
        line.contains(r"line one\u{a}line two\u{d}\u{0}\u{7}\u{85}end"),
        "{line}"
    );
    // Text that reads otherwise than it is written: a right-to-left override, a line separator.
    let line = proxy::ledger::ExportRow(reversed).csv_line();
    assert!(
        line.contains(r"refund\u{202e}txt.exe\u{2028}next"),
        "{line}"
    );
}

// 4. Tokens: bounded lifetime, `iat` required, revocation, single-use tickets.

fn jwt(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TOKEN_SECRET.as_bytes()),
    )
    .unwrap()
}

fn now() -> i64 {
    proxy::auth::now_secs()
}

async fn code_with(app: &TestApp, token: &str) -> (StatusCode, String) {
    let (status, body) = app.get("/api/payments/ps_usd_1001/history", token).await;
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn a_token_living_longer_than_max_token_ttl_is_refused() {
    let app = spawn_app(NO_UPSTREAM).await;
    let year_9999 = jwt(json!({"sub": "alice", "iat": now(), "exp": 253_402_300_799_i64}));
    assert_eq!(
        code_with(&app, &year_9999).await,
        (StatusCode::UNAUTHORIZED, "token_invalid".into())
    );
    let two_hours = jwt(json!({"sub": "alice", "iat": now(), "exp": now() + 7200}));
    assert_eq!(
        code_with(&app, &two_hours).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Issued long ago, so `exp` − `iat` is long even though little of it is left.
    let old = jwt(json!({"sub": "alice", "iat": now() - 86_400, "exp": now() + 60}));
    assert_eq!(code_with(&app, &old).await.0, StatusCode::UNAUTHORIZED);
    let one_hour = jwt(json!({"sub": "alice", "iat": now(), "exp": now() + 3600}));
    assert_eq!(code_with(&app, &one_hour).await.0, StatusCode::OK);
}

#[tokio::test]
async fn max_token_ttl_is_a_setting() {
    let mut options = Options::new(NO_UPSTREAM);
    options.max_token_ttl_secs = 60;
    let app = spawn_app_with(options).await;
    let ten_minutes = jwt(json!({"sub": "alice", "iat": now(), "exp": now() + 600}));
    assert_eq!(
        code_with(&app, &ten_minutes).await,
        (StatusCode::UNAUTHORIZED, "token_invalid".into())
    );
}

/// An agent's name with a control character in it is no name: a NUL failed a refund's commit
/// on PostgreSQL (500) after SQLite had taken it, and an escape sequence reached the log.
#[tokio::test]
async fn a_token_whose_agent_has_a_control_character_is_refused() {
    let app = spawn_app(NO_UPSTREAM).await;
    for sub in ["alice\u{0}", "\u{1b}[31malice", "al\u{7f}ice", "   "] {
        let token = jwt(json!({"sub": sub, "iat": now(), "exp": now() + 600}));
        assert_eq!(
            code_with(&app, &token).await,
            (StatusCode::UNAUTHORIZED, "token_invalid".into()),
            "{sub:?}"
        );
    }
    // The role is written beside the name in the ledger: the same rule.
    let role = jwt(json!({"sub": "alice", "role": "lead\u{0}", "iat": now(), "exp": now() + 600}));
    assert_eq!(
        code_with(&app, &role).await,
        (StatusCode::UNAUTHORIZED, "token_invalid".into())
    );
    let token = jwt(
        json!({"sub": "Alice Smith (support)", "role": "team lead", "iat": now(), "exp": now() + 600}),
    );
    assert_eq!(code_with(&app, &token).await.0, StatusCode::OK);
    let refused = proxy_bin()
        .args(["token", "--agent", "alice\u{1b}[2J"])
        .env("PROXY_AGENT_TOKEN_SECRET", TOKEN_SECRET)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty(), "no token printed");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no control characters"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test]
async fn a_token_must_say_when_it_was_issued_and_not_in_the_future() {
    let app = spawn_app(NO_UPSTREAM).await;
    let without_iat = jwt(json!({"sub": "alice", "exp": now() + 600}));
    assert_eq!(
        code_with(&app, &without_iat).await,
        (StatusCode::UNAUTHORIZED, "token_invalid".into())
    );
    let from_the_future = jwt(json!({"sub": "alice", "iat": now() + 120, "exp": now() + 600}));
    assert_eq!(
        code_with(&app, &from_the_future).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A few seconds of clock skew are tolerated.
    let skewed = jwt(json!({"sub": "alice", "iat": now() + 3, "exp": now() + 600}));
    assert_eq!(code_with(&app, &skewed).await.0, StatusCode::OK);
}

#[test]
fn proxy_token_refuses_to_mint_beyond_max_token_ttl() {
    let mint = |ttl: &str| {
        proxy_bin()
            .args(["token", "--agent", "carol", "--ttl", ttl])
            .env("PROXY_AGENT_TOKEN_SECRET", TOKEN_SECRET)
            .env_remove("PROXY_MAX_TOKEN_TTL_SECS")
            .output()
            .unwrap()
    };
    let refused = mint("36500d");
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty(), "no token printed");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("max_token_ttl_secs"), "{stderr}");
    assert!(!mint("2h").status.success());
    assert!(mint("1h").status.success());
}

#[tokio::test]
async fn proxy_revoke_refuses_an_agents_earlier_tokens_and_survives_a_restart() {
    let app = spawn_app(NO_UPSTREAM).await;
    let alice = app.token("alice");
    let bob = app.token("bob");
    assert_eq!(code_with(&app, &alice).await.0, StatusCode::OK);
    // Minted just before the revoke by a merchant backend whose clock runs 4 s ahead (a skew
    // the proxy accepts).
    let ahead = jwt(json!({ "sub": "alice", "iat": now() + 4, "exp": now() + 600 }));
    assert_eq!(code_with(&app, &ahead).await.0, StatusCode::OK);

    succeeded(
        proxy_bin()
            .args(["revoke", "--agent", "alice"])
            .env("PROXY_DATABASE", &app.database),
    );

    assert_eq!(
        code_with(&app, &alice).await,
        (StatusCode::UNAUTHORIZED, "token_revoked".into())
    );
    assert_eq!(code_with(&app, &bob).await.0, StatusCode::OK, "only alice");
    // The same agent named with another case or a space is alice.
    for same in ["Alice", "alice ", " ALICE "] {
        let token = jwt(json!({ "sub": same, "iat": now() - 1, "exp": now() + 600 }));
        assert_eq!(
            code_with(&app, &token).await,
            (StatusCode::UNAUTHORIZED, "token_revoked".into()),
            "{same:?}"
        );
    }
    let app = app.restart().await;
    assert_eq!(
        code_with(&app, &alice).await,
        (StatusCode::UNAUTHORIZED, "token_revoked".into()),
        "kept in the ledger"
    );
    // The token from the backend whose clock runs ahead is revoked too.
    assert_eq!(
        code_with(&app, &ahead).await,
        (StatusCode::UNAUTHORIZED, "token_revoked".into())
    );
    // `iat` has whole seconds: a token from past that skew on is a new sign-in.
    let skew = std::time::Duration::from_secs(proxy::auth::LEEWAY_SECS);
    tokio::time::sleep(skew + std::time::Duration::from_millis(1100)).await;
    assert_eq!(code_with(&app, &app.token("alice")).await.0, StatusCode::OK);
}

/// A refund that waited for its payment's lock (behind another being sent to a slow Smart
/// Glocal) while `proxy revoke` ran is not sent: the revocation is checked where the attempt
/// is recorded, not only when the request came in.
#[tokio::test]
async fn a_refund_queued_while_its_agent_is_revoked_sends_nothing() {
    let (sandbox, app) = sandbox_and_app().await;
    sandbox.clear_webhook_url();
    sandbox
        .inject(FaultRequest::new(Fault::Delay { ms: 1200 }).on(FaultRoute::Refund))
        .await;
    let token = app.token("mallory");
    let path = "/api/payments/ps_usd_1001/refunds";
    let ledger = LedgerSql::open(&app).await;
    let (one, two) = (
        submission(Some(1000), "usd", &fresh_key()),
        submission(Some(1000), "usd", &fresh_key()),
    );
    let first = app.post(path, &token, &one);
    let queued = async {
        eventually(5, "the first refund is being sent", || async {
            ledger
                .int("SELECT COUNT(*) FROM refunds WHERE state = 'pending'")
                .await
                == 1
        })
        .await;
        let second = app.post(path, &token, &two);
        let revoke = revoke_after(&app, " Mallory", std::time::Duration::from_millis(300));
        tokio::join!(second, revoke).0
    };
    let (first, second) = tokio::join!(first, queued);
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    assert_eq!(second.0, StatusCode::UNAUTHORIZED, "{}", second.1);
    assert_eq!(second.1["code"], "token_revoked", "{}", second.1);
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 1);
}

#[tokio::test]
async fn proxy_revoke_never_creates_a_ledger_nor_migrates_one() {
    // Run where the proxy's config is not: the default database is not there.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join(".data/proxy.sqlite");
    let output = proxy_bin()
        .args(["revoke", "--agent", "alice"])
        .env("PROXY_DATABASE", &missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no ledger at"), "{stderr}");
    assert!(!missing.exists() && !dir.path().join(".data").exists());

    // A ledger of an older schema is refused as it is, not migrated. (On PostgreSQL the
    // test database is shared by the suite's tests: the SQLite case shows the check.)
    if on_postgres() {
        return;
    }
    let app = spawn_app(NO_UPSTREAM).await;
    let ledger = LedgerSql::open(&app).await;
    let latest = ledger
        .int("SELECT MAX(version) FROM _sqlx_migrations")
        .await;
    ledger
        .execute(&format!(
            "UPDATE _sqlx_migrations SET success = 0 WHERE version = {latest}"
        ))
        .await;
    let revoke = || {
        proxy_bin()
            .args(["revoke", "--agent", "alice"])
            .env("PROXY_DATABASE", &app.database)
            .output()
            .unwrap()
    };
    let output = revoke();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("schema version"), "{stderr}");
    assert_eq!(
        ledger
            .int("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 0")
            .await,
        1,
        "nothing migrated"
    );
    assert_eq!(
        ledger.int("SELECT COUNT(*) FROM agent_revocations").await,
        0
    );
    // Current again: the revocation is written, and the answer names the ledger.
    ledger
        .execute(&format!(
            "UPDATE _sqlx_migrations SET success = 1 WHERE version = {latest}"
        ))
        .await;
    let output = revoke();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&app.database.display().to_string()),
        "{stderr}"
    );
    assert_eq!(
        ledger.int("SELECT COUNT(*) FROM agent_revocations").await,
        1
    );
    ledger.close().await;
}

/// A malformed query string gets the proxy's own error body, not the extractor's text.
#[tokio::test]
async fn an_event_streams_malformed_query_gets_a_stable_code() {
    let app = spawn_app(NO_UPSTREAM).await;
    for query in ["ticket=a&ticket=b", "ticket=&ticket="] {
        let url = app.url(&format!("/api/payments/ps_usd_1001/events?{query}"));
        let response = app.client.get(&url).send().await.unwrap();
        let status = response.status();
        assert_eq!(
            header(&response, "content-type"),
            "application/json",
            "{query}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{query}: {body}"
        );
        assert!(!body.to_string().contains("deserialize"), "{body}");
    }
}

#[tokio::test]
async fn an_events_ticket_opens_one_stream_only() {
    let app = spawn_app(NO_UPSTREAM).await;
    let ticket = app.events_ticket("ps_usd_1001").await;
    let url = app.url(&format!("/api/payments/ps_usd_1001/events?ticket={ticket}"));
    let first = app.client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let (status, body) = read(app.client.get(&url).send().await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_invalid"))
    );
    drop(first);
}

// 6. `unknown` resolves: polled often, failed only after good answers showed nothing for long.

/// The attempt's state as the ledger holds it, read straight from the database.
async fn ledger_state(app: &TestApp, attempt: &str) -> RefundState {
    let ledger = LedgerSql::open(app).await;
    let state = ledger
        .text("SELECT state FROM refunds WHERE attempt_id = $1", attempt)
        .await;
    ledger.close().await;
    state.parse().unwrap()
}

/// A refund answered HTTP 500 (nothing applied upstream): `unknown`; its attempt id.
async fn unknown_attempt(sandbox: &sandbox::Sandbox, app: &TestApp) -> String {
    sandbox
        .inject(FaultRequest::new(Fault::Http500).on(FaultRoute::Refund))
        .await;
    let (status, view) = app
        .refund("ps_usd_1001", &submission(Some(2500), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    view["attempt_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_unknown_attempt_is_failed_only_after_status_showed_nothing_for_the_configured_time() {
    let (sandbox, app) = sandbox_and_app_with(|mut o| {
        o.reconcile_interval_ms = 50;
        // Many polls happen well before the time is up: their number decides nothing.
        o.reconcile_max_polls = 2;
        o.reconcile_fail_after_ms = 3000;
        o
    })
    .await;
    let started = std::time::Instant::now();
    let attempt = unknown_attempt(&sandbox, &app).await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        ledger_state(&app, &attempt).await,
        RefundState::Unknown,
        "not yet"
    );
    eventually(10, "the attempt is declared failed", || async {
        ledger_state(&app, &attempt).await == RefundState::Failed
    })
    .await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(3000));
    assert_eq!(sandbox.session("ps_usd_1001").await.refunds_received, 0);
}

#[tokio::test]
async fn a_wall_clock_stepped_forward_does_not_fail_an_unknown_attempt_at_the_next_answer() {
    // 30 s to wait: three answers without the refund, besides the time.
    let (sandbox, app) = sandbox_and_app_with(|mut o| {
        o.reconcile_interval_ms = 200;
        o.reconcile_fail_after_ms = 30_000;
        o
    })
    .await;
    let attempt = unknown_attempt(&sandbox, &app).await;
    let ledger = LedgerSql::open(&app).await;
    let answers = format!("SELECT absent_polls FROM refunds WHERE attempt_id = '{attempt}'");
    eventually(10, "a first answer without the refund", || async {
        ledger.int(&answers).await >= 1
    })
    .await;
    // The clock steps three minutes forward (a resumed VM, an NTP step, a replica running
    // ahead): as the ledger now reads it, the refund has been absent for three minutes.
    ledger
        .execute(&format!(
            "UPDATE refunds SET absent_since = absent_since - 180000 WHERE attempt_id = '{attempt}'"
        ))
        .await;
    eventually(10, "a second answer without the refund", || async {
        ledger.int(&answers).await >= 2
    })
    .await;
    // The pass that counted it has decided by now; the third answer is 0.8 s away.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(
        ledger_state(&app, &attempt).await,
        RefundState::Unknown,
        "one answer after the step is not the wait the setting asks for"
    );
    eventually(
        10,
        "the attempt is declared failed at the third answer",
        || async { ledger_state(&app, &attempt).await == RefundState::Failed },
    )
    .await;
    assert!(ledger.int(&answers).await >= 3);
    ledger.close().await;
}

/// A poll time further ahead than any wait reconciliation sets was set before the wall clock
/// stepped back: the attempt is polled now, not when the clock catches up (its amount is held
/// back meanwhile, and the widget says "Confirming with Smart Glocal").
#[tokio::test]
async fn a_wall_clock_stepped_back_does_not_hold_an_unknown_attempt_unpolled() {
    let (sandbox, app) = sandbox_and_app_with(|mut o| {
        o.reconcile_interval_ms = 100;
        o.reconcile_fail_after_ms = 60_000;
        o
    })
    .await;
    let attempt = unknown_attempt(&sandbox, &app).await;
    let ledger = LedgerSql::open(&app).await;
    let polls = format!("SELECT polls FROM refunds WHERE attempt_id = '{attempt}'");
    eventually(10, "a first poll", || async {
        ledger.int(&polls).await >= 1
    })
    .await;
    // As a clock three hours ahead would have set it, seen after the clock is put right
    // (again if a poll under way wrote over it).
    let far_ahead = format!(
        "SELECT COUNT(*) FROM refunds WHERE attempt_id = '{attempt}' AND next_poll_at > {}",
        proxy::ledger::now_ms() + 7_200_000
    );
    let mut before = 0;
    for _ in 0..5 {
        ledger
            .execute(&format!(
                "UPDATE refunds SET next_poll_at = next_poll_at + 10800000 WHERE attempt_id = '{attempt}'"
            ))
            .await;
        before = ledger.int(&polls).await;
        if ledger.int(&far_ahead).await == 1 {
            break;
        }
    }
    eventually(10, "polled again", || async {
        ledger.int(&polls).await > before
    })
    .await;
    ledger.close().await;
}

/// An answer from Smart Glocal over `MAX_ANSWER_BYTES` is not read into memory: the look-up
/// is answered `upstream_bad_response`. One just under it is read as ever.
#[tokio::test]
async fn an_oversized_answer_from_smart_glocal_is_not_read() {
    let limit = proxy::upstream::MAX_ANSWER_BYTES;
    for (padding, expected) in [
        (limit, StatusCode::BAD_GATEWAY),
        (limit - 1024, StatusCode::OK),
    ] {
        let mut answer = ok_session();
        answer["session"]["padding"] = json!("x".repeat(padding));
        let upstream = capture_server(answer).await;
        let app = spawn_app(&upstream.url).await;
        let (status, body) = app
            .get("/api/payments/ps_usd_1001", &app.token("alice"))
            .await;
        assert_eq!(status, expected, "{body}");
        if expected == StatusCode::BAD_GATEWAY {
            assert_eq!(body["code"], "upstream_bad_response", "{body}");
        }
    }
}

#[tokio::test]
async fn error_answers_never_fail_an_unknown_attempt_and_polling_goes_on_after_them() {
    let (sandbox, app) = sandbox_and_app_with(|mut o| {
        o.reconcile_interval_ms = 50;
        o.reconcile_max_polls = 2;
        o.reconcile_fail_after_ms = 300;
        o
    })
    .await;
    let attempt = unknown_attempt(&sandbox, &app).await;
    sandbox
        .inject(
            FaultRequest::new(Fault::Http500)
                .on(FaultRoute::Status)
                .times(100_000),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        ledger_state(&app, &attempt).await,
        RefundState::Unknown,
        "five times the fail-after time of error answers decide nothing"
    );
    sandbox.clear_faults().await;
    // Polling did not stop after the errors: good answers now resolve it.
    eventually(10, "the attempt is declared failed", || async {
        ledger_state(&app, &attempt).await == RefundState::Failed
    })
    .await;
}

// 7. Mismatches are flagged, not absorbed.

#[tokio::test]
async fn a_webhook_contradicting_the_ledger_is_a_conflict_not_an_update() {
    let (sandbox, app) = sandbox_and_app().await;
    sandbox.clear_webhook_url();
    let (status, refund) = app
        .refund("ps_usd_1001", &submission(Some(4000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    let refund_id = refund["refund_id"].as_str().unwrap().to_owned();

    let session = sandbox.session("ps_usd_1001").await.session;
    let mut webhook = json!({"type": "payment_refunded", "session": session});
    for r in webhook["session"]["acquiring_payments"][0]["refunds"]
        .as_array_mut()
        .unwrap()
    {
        if r["id"] == refund_id.as_str() {
            r["status"] = json!("accepted");
            r["amount_details"]["amount"] = json!(5000);
        }
    }
    let body = serde_json::to_vec(&webhook).unwrap();
    assert_eq!(send_webhook(&app, &body).await, StatusCode::OK);

    // The same refund id reported for another payment.
    let other = refund_webhook("ps_eur_1002", &refund_id, 4000);
    assert_eq!(send_webhook(&app, &other).await, StatusCode::OK);

    let lines = history(&app, "ps_usd_1001").await;
    let conflicts: Vec<&Value> = lines.iter().filter(|h| h["kind"] == "conflict").collect();
    assert_eq!(conflicts.len(), 2, "{lines:?}");
    assert!(conflicts[0]["detail"].as_str().unwrap().contains("5000"));
    assert!(conflicts[1]["detail"]
        .as_str()
        .unwrap()
        .contains("ps_eur_1002"));
    // Nothing of either webhook was applied (the payment view below reads Smart Glocal's
    // own, true, state, so the ledger's history is what tells).
    assert!(!lines.iter().any(|h| h["kind"] == "webhook"), "{lines:?}");
    let view = app.payment("ps_usd_1001").await;
    assert_eq!(view["refunds"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(view["refunds"][0]["amount"]["amount"], 4000);
    // The refund itself says it needs attention, with the latest contradiction, for the
    // widget to show beside it.
    let attention = view["refunds"][0]["attention"].as_str().unwrap_or_default();
    assert!(attention.contains("ps_eur_1002"), "{view}");
    assert!(history(&app, "ps_eur_1002").await.is_empty());
    let metrics = metrics(&app).await;
    assert!(
        metrics.contains(r#"proxy_anomalies_total{kind="conflict"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"proxy_webhooks_total{outcome="conflict"} 2"#));
}

/// The same through reconciliation: `session/status` reporting another amount for a refund
/// the ledger holds, or an amount beyond the ledger's integers, is flagged, not applied.
#[tokio::test]
async fn a_status_answer_contradicting_the_ledger_is_a_conflict_not_an_update() {
    // Smart Glocal's status, as this stand-in gives it for every call: rf_1 of ps_status at
    // 900 cents, and rf_2 at more than the ledger's integers hold.
    let refund = |id: &str, amount: u64| {
        json!({"id": id, "status": "in_progress",
               "amount_details": {"amount": amount, "currency": "usd"}})
    };
    let status = |refunds: Vec<Value>| {
        json!({"status": "ok", "session": {
            "id": "ps_status", "status": "accepted",
            "acquiring_payments": [{
                "id": "pm_1", "status": "succeeded",
                "amount_details": {"amount": 10_000, "currency": "usd"},
                "refunds": refunds
            }]
        }})
    };
    for (reported, anomaly) in [
        (refund("rf_1", 900), "conflict"),
        (refund("rf_1", u64::MAX), "status_unrepresentable"),
    ] {
        let upstream = capture_server(status(vec![reported])).await;
        let app = spawn_app(&upstream.url).await;
        // The ledger learns rf_1 at 1000 cents, in progress, from a webhook.
        let mut webhook: Value =
            serde_json::from_slice(&refund_webhook("ps_status", "rf_1", 1000)).unwrap();
        webhook["session"]["acquiring_payments"][0]["amount_details"]["amount"] = json!(10_000);
        webhook["session"]["acquiring_payments"][0]["refunds"][0]["status"] = json!("in_progress");
        let body = serde_json::to_vec(&webhook).unwrap();
        assert_eq!(send_webhook(&app, &body).await, StatusCode::OK);

        // Reconciliation asks about it once it has been in progress a while.
        eventually(10, "reconciliation read the payment", || async {
            metrics(&app)
                .await
                .contains(&format!(r#"proxy_anomalies_total{{kind="{anomaly}"}} "#))
        })
        .await;
        let ledger = LedgerSql::open(&app).await;
        assert_eq!(
            ledger
                .text(
                    "SELECT CAST(amount AS TEXT) FROM refunds WHERE refund_id = $1",
                    "rf_1"
                )
                .await,
            "1000",
            "{anomaly}: the ledger's amount stands"
        );
        ledger.close().await;
        let lines = history(&app, "ps_status").await;
        let conflicts = lines.iter().filter(|h| h["kind"] == "conflict").count();
        assert_eq!(
            conflicts,
            usize::from(anomaly == "conflict"),
            "{anomaly}: {lines:?}"
        );
        assert!(
            !lines.iter().any(|h| h["kind"] == "reconciled"),
            "{anomaly}: nothing applied: {lines:?}"
        );
    }
}

#[tokio::test]
async fn an_agent_over_the_rate_limit_gets_429_with_retry_after() {
    let mut options = Options::new(NO_UPSTREAM);
    options.rate_limit_per_minute = 60; // a burst of 15, then one a second
    let app = spawn_app_with(options).await;
    let alice = app.token("alice");
    let mut statuses = Vec::new();
    for _ in 0..16 {
        statuses.push(code_with(&app, &alice).await.0);
    }
    assert!(
        statuses[..15].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let limited = app
        .client
        .get(app.url("/api/payments/ps_usd_1001/history"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&limited, "retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let (_, body) = read(limited).await;
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(
        code_with(&app, &app.token("bob")).await.0,
        StatusCode::OK,
        "per agent"
    );
}

/// A proxy with its operations routes on an address of their own (a free port: bound, noted,
/// released), and that address.
async fn with_ops_listen() -> (TestApp, std::net::SocketAddr) {
    let ops = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut options = Options::new(NO_UPSTREAM);
    options.ops_listen = Some(ops);
    (spawn_app_with(options).await, ops)
}

/// Stopping, the proxy takes no more connections on `listen` while it drains what is in
/// flight; `ops_listen` still answers meanwhile, and says it is not ready, so a load
/// balancer stops sending it agents.
#[tokio::test]
async fn a_stopping_proxy_says_it_is_not_ready_while_it_drains() {
    use tokio::io::AsyncWriteExt;
    let (mut app, ops) = with_ops_listen().await;
    let readyz = format!("http://{ops}/readyz");
    let ready = app.client.get(&readyz).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    // A request in flight (its body still to come) holds the drain open.
    let mut held = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    held.write_all(
        b"POST /api/payments/ps_usd_1001/refunds HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.begin_stop();
    eventually(5, "ops_listen says the proxy is stopping", || async {
        match app.client.get(&readyz).send().await {
            Ok(answer) if answer.status() == StatusCode::SERVICE_UNAVAILABLE => {
                answer.json::<Value>().await.unwrap()["status"] == "stopping"
            }
            _ => false,
        }
    })
    .await;
    drop(held);
}

#[tokio::test]
async fn with_ops_listen_health_and_metrics_leave_the_public_address() {
    let (app, ops) = with_ops_listen().await;
    for path in ["/metrics", "/healthz", "/readyz"] {
        let public = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            public.status(),
            StatusCode::NOT_FOUND,
            "{path} on the public address"
        );
        let private = app
            .client
            .get(format!("http://{ops}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(private.status(), StatusCode::OK, "{path} on ops_listen");
        assert_eq!(header(&private, "cache-control"), "no-store");
    }
    // The API stays where it was.
    assert_eq!(code_with(&app, &app.token("alice")).await.0, StatusCode::OK);
}

/// A new ledger, its WAL and the WAL's index are readable by their owner alone: they name the
/// agents and hold their notes, and the default umask would have let every local user read
/// them.
#[tokio::test]
async fn a_new_ledger_is_readable_by_its_owner_alone() {
    crate::sqlite_only!();
    use std::os::unix::fs::PermissionsExt;
    let (_sandbox, app) = sandbox_and_app().await;
    let (status, _) = app
        .refund("ps_usd_1001", &submission(Some(100), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for suffix in ["", "-wal", "-shm"] {
        let mut path = app.database.clone().into_os_string();
        path.push(suffix);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path:?} is {mode:o}");
    }
}

/// `proxy token | something-that-quits` ends quietly: the reader gone is not a crash (a panic
/// in `println!`, an abort in a release build).
#[test]
fn a_token_printed_to_a_reader_that_has_gone_is_no_crash() {
    let mut child = proxy_bin()
        .args(["token", "--agent", "alice"])
        .env("PROXY_AGENT_TOKEN_SECRET", TOKEN_SECRET)
        .env_remove("PROXY_MAX_TOKEN_TTL_SECS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A token that cannot be written (a full disk) is a failure the caller sees, not a success
/// with nothing printed.
#[test]
fn a_token_that_cannot_be_written_fails() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = proxy_bin()
        .args(["token", "--agent", "alice"])
        .env("PROXY_AGENT_TOKEN_SECRET", TOKEN_SECRET)
        .env_remove("PROXY_MAX_TOKEN_TTL_SECS")
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("writing the token"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// With the widget's files served, a method other than `GET` or `HEAD` on a path that is no
/// route (a typo in a route, a route's path with a trailing slash) names no route: the JSON
/// `404 not_found` every other refusal's shape, never the file service's bare `405`.
#[tokio::test]
async fn a_method_files_do_not_take_on_no_route_is_a_json_not_found() {
    let dir = served_folder();
    let app = spawn_serving(dir.path(), "'none'").await;
    let client = &app.client;
    for request in [
        client.post(app.url("/api/payments/ps_usd_1001/refund")),
        client.post(app.url("/api/payments")),
        client.post(app.url("/webhooks/smart-glocal/")),
        client.put(app.url("/")),
        client.delete(app.url("/index.html")),
    ] {
        let answer = request.send().await.unwrap();
        assert_eq!(header(&answer, "cache-control"), "no-store");
        let (status, body) = read(answer).await;
        assert_eq!(
            (status, body["code"].as_str().unwrap_or("")),
            (StatusCode::NOT_FOUND, "not_found"),
            "{body}"
        );
    }
    // The files themselves still come.
    let page = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
}

/// The operations listener refuses a method its routes do not take as the API does: a JSON
/// `405 method_not_allowed`.
#[tokio::test]
async fn a_wrong_method_on_ops_listen_is_a_json_method_not_allowed() {
    let (_app, ops) = with_ops_listen().await;
    let client = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let answer = client
            .post(format!("http://{ops}{path}"))
            .send()
            .await
            .unwrap();
        let (status, body) = read(answer).await;
        assert_eq!(
            (status, body["code"].as_str().unwrap_or("")),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            "{path}: {body}"
        );
    }
}

/// A `401` names the scheme it wants (RFC 9110): `Bearer`, and `invalid_token` for a token
/// that was refused; the scheme is read in any case.
#[tokio::test]
async fn a_401_names_the_bearer_scheme_and_the_scheme_is_read_in_any_case() {
    let app = spawn_app(NO_UPSTREAM).await;
    let url = app.url("/api/payments/ps_usd_1001/events/ticket");
    let none = app.client.post(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&none, "www-authenticate"), "Bearer");
    let token = app.token("alice");
    let refused = app
        .client
        .post(&url)
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&refused, "www-authenticate"),
        "Bearer error=\"invalid_token\""
    );
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let answer = app
            .client
            .post(&url)
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{scheme}");
    }
    // A webhook's 401 is about its signature, which no bearer challenge describes.
    let forged = forged_webhook(&app, "{}").await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&forged, "www-authenticate"), "<absent>");
}

/// A page on another origin can read `Retry-After`, which a `429` asks it to honour.
#[tokio::test]
async fn a_cross_origin_page_may_read_retry_after() {
    let app = spawn_app(NO_UPSTREAM).await;
    let origin = app.options.allowed_origins[0].clone();
    let answer = app
        .client
        .get(app.url("/api/payments/ps_usd_1001"))
        .header("origin", &origin)
        .send()
        .await
        .unwrap();
    let exposed = header(&answer, "access-control-expose-headers").to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

/// Smart Glocal's address answering with a redirect (a misconfigured gateway, a hijacked DNS
/// name's host): nothing follows it. A signed refund, its signature and project headers never
/// go to the `Location`, and what another host says is never read as Smart Glocal's answer.
#[tokio::test]
async fn a_redirect_from_smart_glocal_is_not_followed_with_a_signed_request() {
    let elsewhere = capture_server(ok_session()).await;
    let target = elsewhere.url.clone();
    // Look-ups are answered; the refund is sent elsewhere, or the payment's second look-up.
    let looked_up = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let front = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let location = format!("{target}{}", uri.path());
        let first_look_up = uri.path().ends_with("/session/status")
            && looked_up.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2;
        async move {
            use axum::response::IntoResponse;
            if first_look_up {
                return axum::Json(ok_session()).into_response();
            }
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, location)],
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, front).await.unwrap() });
    let app = spawn_app(&url).await;

    let (status, body) = app
        .get("/api/payments/ps_usd_1001", &app.token("alice"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Recorded, then sent: a 307 says nothing of whether it was made.
    let (status, body) = app
        .refund("ps_usd_1001", &submission(Some(1000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["state"], "unknown", "{body}");
    let (status, body) = app
        .get("/api/payments/ps_usd_1001", &app.token("alice"))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let reached: Vec<String> = elsewhere
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(reached.is_empty(), "followed to {reached:?}");
}
