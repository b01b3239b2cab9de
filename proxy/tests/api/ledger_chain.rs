//! The history's hash chain: a busy ledger verifies, `proxy export --chain` can be checked
//! offline line by line, and an edited or removed line is found by `proxy verify-ledger`.

use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::*;

fn proxy(args: &[&str], app: &TestApp) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proxy"))
        .args(args)
        .arg("--database")
        .arg(&app.database)
        .output()
        .unwrap()
}

fn verify(app: &TestApp) -> (Option<i32>, String) {
    let output = proxy(&["verify-ledger"], app);
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() != Some(2),
        "verify-ledger could not run: {stderr}"
    );
    (output.status.code(), said)
}

async fn sql(app: &TestApp, statement: &str) {
    let ledger = LedgerSql::open(app).await;
    ledger.execute(statement).await;
    ledger.close().await;
}

/// Several agents' refunds on several payments at once, their webhooks, a decline: a
/// ledger with many writers' lines interleaved.
async fn busy_ledger() -> (sandbox::Sandbox, TestApp) {
    let (sandbox, app) = sandbox_and_app().await;
    let payments = [
        ("ps_usd_1001", "usd"),
        ("ps_eur_1002", "eur"),
        ("ps_rub_1003", "rub"),
    ];
    let mut sent = Vec::new();
    for round in 0..4u64 {
        for (session, currency) in payments {
            let app = &app;
            sent.push(async move {
                app.refund(
                    session,
                    &submission(Some(100 + round), currency, &fresh_key()),
                )
                .await
                .0
            });
        }
    }
    let statuses = futures_util::future::join_all(sent).await;
    assert!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count()
            >= 3,
        "{statuses:?}"
    );
    eventually(10, "the webhooks are in", || async {
        let (_, lines) = app
            .get("/api/payments/ps_usd_1001/history", &app.token("alice"))
            .await;
        lines
            .as_array()
            .is_some_and(|l| l.iter().any(|h| h["kind"] == "webhook"))
    })
    .await;
    (sandbox, app)
}

#[tokio::test]
async fn a_busy_ledger_verifies_and_its_export_checks_offline() {
    let (_sandbox, app) = busy_ledger().await;
    let (code, said) = verify(&app);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.starts_with("history chain intact: "), "{said}");

    let output = proxy(&["export", "--chain", "--since", "2020-01-01"], &app);
    assert!(output.status.success(), "{output:?}");
    let export = String::from_utf8(output.stdout).unwrap();
    let entries: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.len() > 12, "{export}");
    // What finance would do with the export alone: each line hashes to its hash after the
    // line before, and the lines link up.
    let mut previous = String::new();
    for entry in &entries {
        let prev = entry["prev"].as_str().unwrap();
        assert_eq!(prev, previous, "{entry}");
        let line = entry["line"].as_str().unwrap();
        let hash = hex::encode(Sha256::digest(format!("{prev}{line}").as_bytes()));
        assert_eq!(entry["hash"].as_str(), Some(hash.as_str()), "{entry}");
        let columns: Value = serde_json::from_str(line).unwrap();
        assert_eq!(columns[0], entry["session_id"], "{entry}");
        previous = hash;
    }
    assert!(
        said.contains(&format!("intact: {} lines", entries.len())),
        "{said}"
    );
    assert!(said.contains(&format!("head {previous} (")), "{said}");
}

/// Lines removed from the chain's end leave a chain that verifies; a head held from before
/// shows them gone. A head still in the chain passes.
#[tokio::test]
async fn a_removed_tail_is_shown_by_a_head_held_from_before() {
    let (_sandbox, app) = busy_ledger().await;
    let head = |said: &str| {
        said.split("head ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap()
            .to_owned()
    };
    let (_, said) = verify(&app);
    let earlier = head(&said);
    // One more line, and its head.
    let (status, body) = app
        .refund("ps_usd_1001", &submission(Some(100), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, said) = verify(&app);
    let latest = head(&said);
    assert_ne!(earlier, latest);
    let expecting = |held: &str| {
        let output = proxy(&["verify-ledger", "--expect-head", held], &app);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    assert_eq!(
        expecting(&earlier).0,
        Some(0),
        "an earlier head is in the chain"
    );
    assert_eq!(expecting(&latest).0, Some(0));
    // An unset shell variable, or anything but a head as printed: a mistake, not a verdict.
    assert_eq!(expecting("").0, Some(2));
    assert_eq!(expecting(&latest.to_uppercase()).0, Some(2));

    // The refund's lines removed from the end: the chain alone still verifies.
    sql(
        &app,
        &format!(
            "DELETE FROM history WHERE id > (SELECT id FROM history WHERE hash = '{earlier}')"
        ),
    )
    .await;
    assert_eq!(verify(&app).0, Some(0), "what a chain alone cannot show");
    let (code, said) = expecting(&latest);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("is no line of this ledger"), "{said}");
}

#[tokio::test]
async fn an_edited_or_removed_line_is_named_and_fails_the_check() {
    let (_sandbox, app) = busy_ledger().await;
    assert_eq!(verify(&app).0, Some(0));

    // An amount changed by hand in the file, as an insider covering a refund would.
    sql(&app, "UPDATE history SET amount = amount + 1 WHERE id = 4").await;
    let (code, said) = verify(&app);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("BROKEN at history line 4 "), "{said}");
    assert!(said.contains("3 lines before it verified"), "{said}");
    sql(&app, "UPDATE history SET amount = amount - 1 WHERE id = 4").await;
    assert_eq!(
        verify(&app).0,
        Some(0),
        "the content, restored, matches again"
    );

    // A line removed: the one after it no longer follows from its predecessor.
    sql(&app, "DELETE FROM history WHERE id = 6").await;
    let (code, said) = verify(&app);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("BROKEN at history line 7 "), "{said}");

    // A hash emptied by hand is not sealed anew when the ledger opens again.
    sql(&app, "UPDATE history SET hash = NULL WHERE id = 2").await;
    let database = proxy::ledger::Database::parse(
        &app.database.to_string_lossy(),
        2,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let reopened = proxy::ledger::Ledger::connect(&database).await.unwrap();
    let report = reopened.verify_chain().await.unwrap();
    reopened.close().await;
    assert_eq!(report.broken.map(|b| b.id), Some(2));
}

/// A ledger from before the chain (its lines without hashes, never sealed) is sealed in
/// order the first time it opens, and only then: a hash emptied later stays broken.
#[tokio::test]
async fn lines_from_before_the_chain_are_sealed_once_on_open() {
    use proxy::ledger::{Inserted, Ledger, NewAttempt};
    use shared::api::RefundReason;
    use shared::{AttemptId, Currency, IdempotencyKey, Money, SessionId};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let ledger = Ledger::open(&path).await.unwrap();
    for n in 1..=5u64 {
        let attempt = NewAttempt {
            attempt_id: AttemptId::from_random(n.into()),
            session_id: SessionId::parse(&format!("ps_old_{n}")).unwrap(),
            agent: "alice".into(),
            amount: Money::new(100 * n, Currency::parse("usd").unwrap()),
            full_refund: false,
            reason: RefundReason::Duplicate,
            note: None,
            idempotency_key: IdempotencyKey::parse(&format!("old-key-0000000{n}")).unwrap(),
            request_hash: "h".into(),
            refunds_before: Vec::new(),
            daily_limit: None,
            state: shared::api::RefundState::Pending,
            role: None,
            token_issued_at: 0,
        };
        assert!(matches!(
            ledger.insert_attempt(&attempt).await.unwrap(),
            Inserted::New(_)
        ));
    }
    ledger.close().await;
    let tamper = |statement: &'static str| {
        let url = format!("sqlite:{}", path.display());
        async move {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
            pool.close().await;
        }
    };
    let report = || async {
        let ledger = Ledger::open(&path).await.unwrap();
        let report = ledger.verify_chain().await.unwrap();
        ledger.close().await;
        report
    };

    // As the migration leaves an older ledger: no hashes, not sealed yet.
    tamper("UPDATE history SET hash = NULL; UPDATE chain_sealed SET sealed = 0").await;
    let sealed = report().await;
    assert_eq!((sealed.verified, sealed.broken), (5, None));

    // Lines edited and their hashes emptied, the seal's flag cleared: not sealed anew (the
    // chain would otherwise take the edits in as if they were older than it).
    tamper(
        "UPDATE history SET detail = 'laundered', hash = NULL WHERE id >= 3;
         UPDATE chain_sealed SET sealed = 0",
    )
    .await;
    assert_eq!(
        report().await.broken.map(|b| b.id),
        Some(3),
        "a seal cleared by hand launders nothing"
    );

    tamper("UPDATE history SET hash = NULL WHERE id = 2").await;
    assert_eq!(
        report().await.broken.map(|b| b.id),
        Some(2),
        "not sealed anew"
    );
}

/// Flags before the subcommand win over the environment, as flags after it do.
#[tokio::test]
async fn a_flag_before_the_subcommand_wins_over_the_environment() {
    if on_postgres() {
        return; // a SQLite file is what can be named missing
    }
    let app = spawn_app("http://127.0.0.1:9").await;
    let elsewhere = tempfile::tempdir().unwrap();
    let missing = elsewhere.path().join("not-a-ledger.sqlite");
    for args in [
        [
            "--database",
            app.database.to_str().unwrap(),
            "verify-ledger",
        ],
        [
            "verify-ledger",
            "--database",
            app.database.to_str().unwrap(),
        ],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_proxy"))
            .args(args)
            .env("PROXY_DATABASE", &missing)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && said.contains("history chain intact"),
            "{args:?}: {said} {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The environment alone still counts.
    let output = Command::new(env!("CARGO_BIN_EXE_proxy"))
        .arg("verify-ledger")
        .env("PROXY_DATABASE", &app.database)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(!missing.exists());
}

/// What `verify-ledger` prints of a broken line was chosen by whoever rewrote the ledger: a
/// carriage return and a terminal's escape codes in a hash must not print "intact" over the
/// verdict. Every control character comes out escaped; only the lines' own breaks remain.
#[tokio::test]
async fn a_tampered_hash_prints_no_control_character() {
    let (_sandbox, app) = busy_ledger().await;
    let char = if on_postgres() { "chr" } else { "char" };
    sql(
        &app,
        &format!("UPDATE history SET hash = 'x' || {char}(13) || {char}(27) || '[2K history chain intact' WHERE id = 3"),
    )
    .await;
    let (code, said) = verify(&app);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("BROKEN at history line 3 "), "{said}");
    assert!(
        !said.chars().any(|c| c.is_control() && c != '\n'),
        "{said:?}"
    );
}
