//! The SQLite ledger as an operator handles it: one proxy serving from a file at a time, and a
//! backup taken while it serves.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::sqlite_only;

/// A second `proxy serve` on a SQLite ledger another proxy serves from (a mistaken second
/// instance, a deploy's overlap) would refund beside the first, and would take the first's
/// refunds under way for interrupted ones. It is refused at start, naming the first, and
/// nothing of the first's is touched; once the first has gone (even by `kill -9`), the
/// ledger is free.
#[tokio::test]
async fn a_second_proxy_on_the_same_sqlite_ledger_is_refused_until_the_first_has_gone() {
    sqlite_only!();
    let sandbox = sandbox::Sandbox::start(sandbox::SandboxConfig::demo().fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("ledger.sqlite");
    let mut first = ProxyProcess::start(&sandbox.base_url(), &database, &[]).await;

    let second = refused(
        serve_command(&sandbox.base_url(), &database).env("PROXY_LISTEN", "127.0.0.1:0"),
        "the second proxy served from the first's ledger",
    )
    .await;
    assert!(!second.status.success(), "{second:?}");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("in use by another proxy (pid "), "{said}");
    assert!(said.contains(&*database.to_string_lossy()), "{said}");
    assert!(first.is_ready().await, "the first proxy serves on");

    first.kill_hard();
    let mut again = ProxyProcess::start(&sandbox.base_url(), &database, &[]).await;
    again.wait_ready().await;
    again.stop();
}

/// `proxy backup --to FILE` while the proxy serves and refunds: the copy is a ledger of its
/// own, as of one commit, with every refund recorded before it, its chain intact (its head
/// printed) and readable by its owner alone; a file already there is never overwritten.
#[tokio::test]
async fn a_backup_taken_while_the_proxy_serves_is_a_whole_ledger_of_its_own() {
    sqlite_only!();
    let (_sandbox, app) = sandbox_and_app().await;
    for (session, currency) in [("ps_usd_1001", "usd"), ("ps_eur_1002", "eur")] {
        let (status, view) = app
            .refund(session, &submission(Some(700), currency, &fresh_key()))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.sqlite");
    // Refunds go on while the copy is taken.
    let more = async {
        for _ in 0..3 {
            app.refund("ps_rub_1003", &submission(Some(100), "rub", &fresh_key()))
                .await;
        }
    };
    let backup = tokio::task::spawn_blocking({
        let (database, copy) = (app.database.clone(), copy.clone());
        move || {
            proxy_bin()
                .args(["backup", "--to"])
                .arg(&copy)
                .arg("--database")
                .arg(&database)
                .output()
                .unwrap()
        }
    });
    let (output, ()) = tokio::join!(backup, more);
    let output = output.unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("history chain intact"), "{said}");
    let head = said
        .split("head ")
        .nth(1)
        .expect("the copy's head is printed")
        .trim()
        .to_owned();

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the copy is its owner's alone");
    // The copy is a ledger: it verifies on its own against the head printed, and holds the
    // refunds recorded before it.
    let verified = succeeded(
        proxy_bin()
            .args(["verify-ledger", "--expect-head", &head, "--database"])
            .arg(&copy),
    );
    assert!(verified.starts_with("history chain intact"), "{verified}");
    let exported = succeeded(
        proxy_bin()
            .args(["export", "--since", "2020-01-01", "--database"])
            .arg(&copy),
    );
    for session in ["ps_usd_1001", "ps_eur_1002"] {
        assert!(exported.contains(session), "{exported}");
    }
    // Restored, a proxy serves from it and knows those refunds as its own attempts (Smart
    // Glocal's answer alone would show the refund, but not who asked for it).
    let (_, view) = app
        .get("/api/payments/ps_usd_1001", &app.token("alice"))
        .await;
    let attempt = view["refunds"][0]["attempt_id"].clone();
    assert!(attempt.is_string(), "{view}");
    let restored = spawn_app_with(Options {
        database: Some(copy.clone()),
        ..Options::new(app.options.upstream_url.clone())
    })
    .await;
    let payment: Value = restored.payment("ps_usd_1001").await;
    let refunds = payment["refunds"].as_array().expect("refunds");
    assert_eq!(refunds.len(), 1, "{payment}");
    assert_eq!(refunds[0]["attempt_id"], attempt, "{payment}");
    assert_eq!(refunds[0]["agent"], "alice", "{payment}");

    // A name SQLite would read as a URI is a file name like any other, and nothing is left
    // beside the copy.
    let odd = succeeded(
        proxy_bin()
            .current_dir(dir.path())
            .args(["backup", "--to", "file:odd.sqlite", "--database"])
            .arg(std::path::absolute(&app.database).unwrap()),
    );
    assert!(odd.contains("history chain intact"), "{odd}");
    let odd = dir.path().join("file:odd.sqlite");
    let mode = std::fs::metadata(&odd).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("file:odd.sqlite") && n != "file:odd.sqlite"),
        "{names:?}"
    );

    // A file already there is refused, and left as it was.
    std::fs::write(dir.path().join("taken"), "keep me").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_proxy"))
        .args(["backup", "--to"])
        .arg(dir.path().join("taken"))
        .arg("--database")
        .arg(&app.database)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken")).unwrap(),
        "keep me"
    );
}

/// The lock file is never opened through a symbolic link put in its place (a ledger directory
/// others can write to): the pid a proxy writes there would overwrite the file it names. The
/// start is refused, naming the lock file, and that file is left as it was.
#[tokio::test]
async fn a_symbolic_link_in_the_lock_files_place_is_refused_not_written_through() {
    sqlite_only!();
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("ledger.sqlite");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("ledger.sqlite.lock")).unwrap();
    let output = refused(
        serve_command("http://127.0.0.1:9", &database).env("PROXY_LISTEN", "127.0.0.1:0"),
        "the proxy started through the link",
    )
    .await;
    assert!(!output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("ledger.sqlite.lock"), "{said}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

/// What `command` (a `proxy serve`) printed when it exited; one still running after 20 s is
/// killed, and the test fails with `otherwise`.
async fn refused(command: &mut Command, otherwise: &str) -> std::process::Output {
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{otherwise}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.wait_with_output().unwrap()
}
