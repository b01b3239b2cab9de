//! The storage floor: a bare axum server that performs exactly the durable writes the proxy
//! must, and nothing else, on a SQLite file opened with the proxy ledger's settings and
//! written the way its writer writes (`proxy/src/ledger/sqlite.rs`: WAL, `synchronous =
//! FULL`, foreign keys on, one writer connection through rusqlite; `BEGIN IMMEDIATE` and the
//! statements on the task's thread, the `COMMIT`, which syncs, on a blocking thread).
//!
//! - `POST /webhooks/smart-glocal`: one row per webhook (its raw body), group-committed like
//!   the proxy's webhook writer (`ledger/webhooks.rs`: one writer task, every webhook waiting
//!   up to 64 per transaction, multi-row inserts in the ledger's chunks, one commit),
//!   answered 200 only once the commit holding it returned.
//! - `POST /floor/refund`: the refund path's two commits, one after the other: the attempt
//!   recorded (insert), then its outcome (update). No upstream call: the bench makes the
//!   signed calls itself, straight to the sandbox, around this request.
//! - `GET /floor/lookup`: answers 200 (a look-up writes nothing).
//!
//! No verification, no parsing, no events, no history: what is left of the proxy's time
//! above this server's is the proxy's own.
//!
//! Started with `ledger-rows` (an information row of the ingest bench, not a goal's
//! baseline), a webhook is instead written as the rows the proxy's ledger keeps for one
//! that brings two refunds new to it, in the ledger's own schema (its migrations, its
//! indexes): two `refunds` rows, two `history` lines, two `events` and the `webhooks` row,
//! multi-row inserts per table per batch in the ledger's chunks, with fixed contents and nothing read, hashed or
//! serialised. What separates the two floors is SQLite's work on the ledger's rows; what
//! separates this one from the proxy is the proxy's own.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use proxy::ledger::recurring_chunks;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::servers::WEBHOOK_PATH;

/// The refund path's two commits.
pub const REFUND_PATH: &str = "/floor/refund";
pub const LOOKUP_PATH: &str = "/floor/lookup";

/// As the proxy's webhook writer: at most this many webhooks per transaction.
const MAX_BATCH: usize = 64;
const QUEUE: usize = 1024;
/// Rows per multi-row insert (SQLite's bound-parameter limit leaves room for far more).
const ROWS_PER_INSERT: usize = 64;
/// The ledger's rows per multi-row insert, as its journal writes them.
const LEDGER_ROWS_PER_INSERT: usize = 256;

struct Job {
    body: Bytes,
    done: oneshot::Sender<bool>,
}

/// What a webhook writes.
#[derive(Clone, Copy, PartialEq)]
enum Rows {
    /// One row: its raw body.
    One,
    /// What the ledger keeps for a webhook with two new refunds (see the module's notes).
    Ledger,
}

#[derive(Clone)]
struct Floor {
    db: Arc<Db>,
    jobs: mpsc::Sender<Job>,
    rows: Rows,
}

/// The single writer connection; `None` once a commit's task was lost.
struct Db(Mutex<Option<Connection>>);

/// `bench floor-serve 127.0.0.1:<port> <sqlite file> [ledger-rows]`.
pub async fn floor_serve() -> std::process::ExitCode {
    let mut args = std::env::args().skip(2);
    let (Some(addr), Some(path), Some(rows)) = (
        args.next().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.next(),
        match args.next().as_deref() {
            None => Some(Rows::One),
            Some("ledger-rows") => Some(Rows::Ledger),
            Some(_) => None,
        },
    ) else {
        eprintln!("usage: bench floor-serve 127.0.0.1:<port> <sqlite file> [ledger-rows]");
        return std::process::ExitCode::from(2);
    };
    if rows == Rows::Ledger {
        // The ledger's schema, by its own migrations.
        match proxy::ledger::Ledger::open(Path::new(&path)).await {
            Ok(ledger) => ledger.close().await,
            Err(e) => {
                eprintln!("floor: cannot create the ledger's schema in {path}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let db = match open(Path::new(&path)).await {
        Ok(db) => Arc::new(db),
        Err(e) => {
            eprintln!("floor: cannot open {path}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (jobs, queue) = mpsc::channel(QUEUE);
    tokio::spawn(writer(db.clone(), queue, rows));
    let app = Router::new()
        .route(WEBHOOK_PATH, post(webhook))
        .route(REFUND_PATH, post(refund))
        .route(LOOKUP_PATH, get(|| async { StatusCode::OK }))
        .with_state(Floor { db, jobs, rows });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind the floor server");
    crate::servers::serve(listener, app).await;
    std::process::ExitCode::SUCCESS
}

/// The proxy ledger's connection settings (`proxy::ledger::sqlite_settings`).
async fn open(path: &Path) -> Result<Db, String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(&proxy::ledger::sqlite_settings(false))?;
        // As many prepared statements kept as the ledger's connections keep.
        conn.set_prepared_statement_cache_capacity(proxy::ledger::SQLITE_STATEMENT_CACHE);
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS webhooks (
                 id INTEGER PRIMARY KEY, received_at INTEGER NOT NULL, raw_body BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS attempts (
                 id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, state TEXT NOT NULL,
                 created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);",
        )?;
        Ok::<_, rusqlite::Error>(Db(Mutex::new(Some(conn))))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// One write transaction, as the proxy's ledger runs one: `BEGIN IMMEDIATE` and `write` on
/// this thread, then `COMMIT` (the sync to disk) on a blocking thread; `ROLLBACK` if `write`
/// fails.
async fn transaction<T>(
    db: &Db,
    write: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, String> {
    let mut held = db.0.lock().await;
    let conn = held.take().ok_or("the writer connection was lost")?;
    // Nothing else takes the floor file's lock, so `BEGIN IMMEDIATE` never waits here.
    let written = conn
        .execute_batch("BEGIN IMMEDIATE")
        .and_then(|()| write(&conn));
    let value = match written {
        Ok(value) => value,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            *held = Some(conn);
            return Err(e.to_string());
        }
    };
    let (conn, committed) = tokio::task::spawn_blocking(move || {
        let committed = conn
            .prepare_cached("COMMIT")
            .and_then(|mut c| c.raw_execute());
        (conn, committed)
    })
    .await
    .map_err(|e| e.to_string())?;
    committed.map_err(|e| e.to_string())?;
    // As the ledger: a connection still inside a transaction is not used again.
    if !conn.is_autocommit() {
        return Err("COMMIT returned but the transaction is still open".into());
    }
    *held = Some(conn);
    Ok(value)
}

/// `INSERT …` of `rows` in one statement, the ledger's text for it
/// ([`proxy::ledger::insert_text`]), prepared once per text and kept, as the ledger's: the
/// callers chunk their rows as the ledger does ([`recurring_chunks`]), so the texts recur.
fn insert_rows(
    conn: &Connection,
    head: &str,
    rows: impl IntoIterator<Item = Vec<Value>>,
) -> rusqlite::Result<()> {
    let rows: Vec<Vec<Value>> = rows.into_iter().collect();
    let text = proxy::ledger::insert_text(head, rows.iter().map(Vec::len));
    conn.prepare_cached(&text)?
        .execute(params_from_iter(rows.into_iter().flatten()))?;
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn webhook(State(floor): State<Floor>, body: Bytes) -> StatusCode {
    let (done, committed) = oneshot::channel();
    if floor.jobs.send(Job { body, done }).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match committed.await {
        Ok(true) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Group commit: every webhook waiting (up to [`MAX_BATCH`]) in one transaction.
async fn writer(db: Arc<Db>, mut queue: mpsc::Receiver<Job>, rows: Rows) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut written = 0;
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let ok = match rows {
            Rows::One => transaction(&db, |conn| commit_batch(conn, &batch)).await,
            Rows::Ledger => {
                transaction(&db, |conn| commit_ledger_rows(conn, &batch, written)).await
            }
        };
        if let Err(e) = &ok {
            eprintln!("floor: webhook batch: {e}");
        }
        let ok = ok.is_ok();
        written += batch.len();
        for job in batch.drain(..) {
            let _ = job.done.send(ok);
        }
    }
}

fn commit_batch(conn: &Connection, jobs: &[Job]) -> rusqlite::Result<()> {
    let received_at = now_ms();
    for chunk in recurring_chunks(jobs, ROWS_PER_INSERT) {
        insert_rows(
            conn,
            "INSERT INTO webhooks (received_at, raw_body)",
            chunk
                .iter()
                .map(|job| vec![Value::Integer(received_at), Value::Blob(job.body.to_vec())]),
        )?;
    }
    Ok(())
}

/// A refund's event as the ledger stores it (a `RefundView`'s JSON, of the usual length).
const EVENT_JSON: &str = r#"{"attempt_id":null,"refund_id":"rf_bench_ingest_000000_1","amount":{"amount":1500,"currency":"USD"},"state":"accepted","is_chargeback":false,"agent":null,"reason":null,"note":null,"error_code":null,"error_detail":null,"attention":null,"created_at":"2026-11-29T12:00:00.000Z","finished_at":"2026-11-29T12:00:00.000Z"}"#;
/// A history line's hash as the chain stores it (hex SHA-256).
const HASH: &str = "5f1e0c8a9b7d6e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f";

/// The webhooks of `jobs` as the ledger's rows: webhook `first + i` brings refunds
/// `rf_floor_{first + i}_1` and `_2` of payment `ps_floor_{first + i}`.
fn commit_ledger_rows(conn: &Connection, jobs: &[Job], first: usize) -> rusqlite::Result<()> {
    let at = Value::Integer(now_ms());
    let text = |s: &str| Value::Text(s.to_owned());
    let webhooks: Vec<(usize, &Job)> = (first..).zip(jobs).collect();
    let refunds: Vec<(String, String)> = webhooks
        .iter()
        .flat_map(|(n, _)| [1, 2].map(|r| (format!("ps_floor_{n}"), format!("rf_floor_{n}_{r}"))))
        .collect();
    for chunk in recurring_chunks(&refunds, LEDGER_ROWS_PER_INSERT) {
        insert_rows(
            conn,
            "INSERT INTO refunds (refund_id, session_id, origin, amount, currency, state, error_detail, created_at, updated_at, finished_at)",
            chunk.iter().map(|(session, refund)| {
                vec![
                    text(refund),
                    text(session),
                    text("elsewhere"),
                    Value::Integer(1_500),
                    text("USD"),
                    text("accepted"),
                    Value::Null,
                    at.clone(),
                    at.clone(),
                    at.clone(),
                ]
            }),
        )?;
        insert_rows(
            conn,
            "INSERT INTO history (session_id, at, kind, refund_id, amount, currency, state, detail, hash)",
            chunk.iter().map(|(session, refund)| {
                vec![
                    text(session),
                    at.clone(),
                    text("refunded_elsewhere"),
                    text(refund),
                    Value::Integer(1_500),
                    text("USD"),
                    text("accepted"),
                    text("learned from a webhook"),
                    text(HASH),
                ]
            }),
        )?;
        insert_rows(
            conn,
            "INSERT INTO events (session_id, at, refund)",
            chunk
                .iter()
                .map(|(session, _)| vec![text(session), at.clone(), text(EVENT_JSON)]),
        )?;
    }
    for chunk in recurring_chunks(&webhooks, ROWS_PER_INSERT) {
        insert_rows(
            conn,
            "INSERT INTO webhooks (received_at, verified, session_id, dedup_key, outcome, raw_body)",
            chunk.iter().map(|(n, job)| {
                vec![
                    at.clone(),
                    Value::Integer(1),
                    Value::Text(format!("ps_floor_{n}")),
                    Value::Text(format!(
                        "ps_floor_{n}:rf_floor_{n}_1:accepted;ps_floor_{n}:rf_floor_{n}_2:accepted"
                    )),
                    text("applied"),
                    Value::Blob(job.body.to_vec()),
                ]
            }),
        )?;
    }
    Ok(())
}

/// The attempt committed, then its outcome committed: the refund path's two syncs.
async fn refund(State(floor): State<Floor>, session: Bytes) -> StatusCode {
    let session = String::from_utf8_lossy(&session);
    let committed = match floor.rows {
        Rows::One => two_commits(&floor.db, &session).await,
        Rows::Ledger => two_commits_of_ledger_rows(&floor.db, &session).await,
    };
    match committed {
        Ok(()) => StatusCode::CREATED,
        Err(e) => {
            eprintln!("floor: refund path: {e}");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// The proxy lets go of the writer during the upstream call; so does the floor, between its
/// two transactions.
async fn two_commits(db: &Db, session: &str) -> Result<(), String> {
    let at = now_ms();
    let id: i64 = transaction(db, |conn| {
        conn.prepare_cached(
            "INSERT INTO attempts (session_id, state, created_at, updated_at)
             VALUES (?, 'pending', ?, ?) RETURNING id",
        )?
        .query_row(params![session, at, at], |row| row.get(0))
    })
    .await?;
    transaction(db, |conn| {
        conn.prepare_cached(
            "UPDATE attempts SET state = 'in_progress', updated_at = ? WHERE id = ?",
        )?
        .execute(params![now_ms(), id])
    })
    .await?;
    Ok(())
}

/// The refund path's two commits as the ledger writes them: the attempt's row, its history
/// line and its event; then the outcome's update, line and event. Fixed contents; nothing
/// read, hashed or serialised.
async fn two_commits_of_ledger_rows(db: &Db, session: &str) -> Result<(), String> {
    let at = now_ms();
    let journal = |conn: &Connection, kind: &str, state: &str| {
        conn.prepare_cached(
            "INSERT INTO history (session_id, at, kind, agent, attempt_id, amount, currency, state, hash, role)
             VALUES (?, ?, ?, 'bench', ?, 1500, 'USD', ?, ?, 'support')",
        )?
        .execute(params![session, at, kind, format!("at_{session}"), state, HASH])?;
        conn.prepare_cached("INSERT INTO events (session_id, at, refund) VALUES (?, ?, ?)")?
            .execute(params![session, at, EVENT_JSON])
    };
    let key: i64 = transaction(db, |conn| {
        let key = conn
            .prepare_cached(
                "INSERT INTO refunds (attempt_id, session_id, origin, agent, amount, currency, full_refund,
                     reason, idempotency_key, request_hash, refunds_before, state, created_at, updated_at, role)
                 VALUES (?, ?, 'proxy', 'bench', 1500, 'USD', 1, 'requested_by_customer', ?, ?, '[]',
                     'pending', ?, ?, 'support')
                 RETURNING key",
            )?
            .query_row(
                params![format!("at_{session}"), session, format!("key_{session}"), HASH, at, at],
                |row| row.get(0),
            )?;
        journal(conn, "requested", "pending")?;
        Ok(key)
    })
    .await?;
    transaction(db, |conn| {
        conn.prepare_cached(
            "UPDATE refunds SET state = 'in_progress', refund_id = ?, updated_at = ? WHERE key = ?",
        )?
        .execute(params![format!("rf_{session}"), now_ms(), key])?;
        journal(conn, "sent", "in_progress")
    })
    .await?;
    Ok(())
}
