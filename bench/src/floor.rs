//! The storage floor: a bare axum server that performs exactly the durable writes the proxy
//! must, and nothing else, on a SQLite file opened through sqlx with the proxy ledger's
//! settings (`proxy/src/ledger/mod.rs`: WAL, `synchronous = FULL`, a 5 s busy timeout,
//! foreign keys on, one writer connection; transactions as plain `BEGIN IMMEDIATE` …
//! `COMMIT`, as `ledger/writer.rs` runs them).
//!
//! - `POST /webhooks/smart-glocal`: one row per webhook (its raw body), group-committed like
//!   the proxy's webhook writer (`ledger/webhooks.rs`: one writer task, every webhook waiting
//!   up to 64 per transaction, one multi-row insert, one commit), answered 200 only once the
//!   commit holding it returned.
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
//! one multi-row insert per table per batch, with fixed contents and nothing read, hashed or
//! serialised. What separates the two floors is SQLite's work on the ledger's rows; what
//! separates this one from the proxy is the proxy's own.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

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
    pool: SqlitePool,
    jobs: mpsc::Sender<Job>,
    rows: Rows,
}

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
    let pool = match open(Path::new(&path)).await {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("floor: cannot open {path}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (jobs, queue) = mpsc::channel(QUEUE);
    tokio::spawn(writer(pool.clone(), queue, rows));
    let app = Router::new()
        .route(WEBHOOK_PATH, post(webhook))
        .route(REFUND_PATH, post(refund))
        .route(LOOKUP_PATH, get(|| async { StatusCode::OK }))
        .with_state(Floor { pool, jobs, rows });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind the floor server");
    crate::servers::serve(listener, app).await;
    std::process::ExitCode::SUCCESS
}

/// The proxy ledger's connection settings and single-connection writer pool.
async fn open(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = proxy::ledger::connect_options(path)?;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS webhooks (
             id INTEGER PRIMARY KEY, received_at INTEGER NOT NULL, raw_body BLOB NOT NULL)",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS attempts (
             id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, state TEXT NOT NULL,
             created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await?;
    Ok(pool)
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
async fn writer(pool: SqlitePool, mut queue: mpsc::Receiver<Job>, rows: Rows) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut written = 0;
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let ok = match rows {
            Rows::One => commit_batch(&pool, &batch).await,
            Rows::Ledger => commit_ledger_rows(&pool, &batch, written).await,
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

async fn commit_batch(pool: &SqlitePool, jobs: &[Job]) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let received_at = now_ms();
    let inserted = async {
        for chunk in jobs.chunks(ROWS_PER_INSERT) {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO webhooks (received_at, raw_body) ");
            insert.push_values(chunk, |mut values, job| {
                values.push_bind(received_at).push_bind(job.body.as_ref());
            });
            insert.build().persistent(false).execute(&mut *conn).await?;
        }
        Ok::<_, sqlx::Error>(())
    }
    .await;
    end(&mut conn, inserted).await
}

/// A refund's event as the ledger stores it (a `RefundView`'s JSON, of the usual length).
const EVENT_JSON: &str = r#"{"attempt_id":null,"refund_id":"rf_bench_ingest_000000_1","amount":{"amount":1500,"currency":"USD"},"state":"accepted","is_chargeback":false,"agent":null,"reason":null,"note":null,"error_code":null,"error_detail":null,"attention":null,"created_at":"2026-11-29T12:00:00.000Z","finished_at":"2026-11-29T12:00:00.000Z"}"#;
/// A history line's hash as the chain stores it (hex SHA-256).
const HASH: &str = "5f1e0c8a9b7d6e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f";

/// The webhooks of `jobs` as the ledger's rows: webhook `first + i` brings refunds
/// `rf_floor_{first + i}_1` and `_2` of payment `ps_floor_{first + i}`.
async fn commit_ledger_rows(
    pool: &SqlitePool,
    jobs: &[Job],
    first: usize,
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let at = now_ms();
    let webhooks: Vec<(usize, &Job)> = (first..).zip(jobs).collect();
    let refunds: Vec<(String, String)> = webhooks
        .iter()
        .flat_map(|(n, _)| [1, 2].map(|r| (format!("ps_floor_{n}"), format!("rf_floor_{n}_{r}"))))
        .collect();
    let inserted = async {
        for chunk in refunds.chunks(LEDGER_ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO refunds (refund_id, session_id, origin, amount, currency, state, created_at, updated_at, finished_at) ",
            );
            insert.push_values(chunk, |mut values, (session, refund)| {
                values
                    .push_bind(refund)
                    .push_bind(session)
                    .push_bind("elsewhere")
                    .push_bind(1_500)
                    .push_bind("USD")
                    .push_bind("accepted")
                    .push_bind(at)
                    .push_bind(at)
                    .push_bind(at);
            });
            insert.build().persistent(false).execute(&mut *conn).await?;
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO history (session_id, at, kind, refund_id, amount, currency, state, detail, hash) ",
            );
            insert.push_values(chunk, |mut values, (session, refund)| {
                values
                    .push_bind(session)
                    .push_bind(at)
                    .push_bind("refunded_elsewhere")
                    .push_bind(refund)
                    .push_bind(1_500)
                    .push_bind("USD")
                    .push_bind("accepted")
                    .push_bind("learned from a webhook")
                    .push_bind(HASH);
            });
            insert.build().persistent(false).execute(&mut *conn).await?;
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO events (session_id, at, refund) ");
            insert.push_values(chunk, |mut values, (session, _)| {
                values.push_bind(session).push_bind(at).push_bind(EVENT_JSON);
            });
            insert.build().persistent(false).execute(&mut *conn).await?;
        }
        for chunk in webhooks.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO webhooks (received_at, verified, session_id, dedup_key, outcome, raw_body) ",
            );
            insert.push_values(chunk, |mut values, (n, job)| {
                values
                    .push_bind(at)
                    .push_bind(true)
                    .push_bind(format!("ps_floor_{n}"))
                    .push_bind(format!("ps_floor_{n}:rf_floor_{n}_1:accepted;ps_floor_{n}:rf_floor_{n}_2:accepted"))
                    .push_bind("applied")
                    .push_bind(job.body.as_ref());
            });
            insert.build().persistent(false).execute(&mut *conn).await?;
        }
        Ok::<_, sqlx::Error>(())
    }
    .await;
    end(&mut conn, inserted).await
}

/// `COMMIT` if what the transaction wrote went in, else `ROLLBACK` and the error.
async fn end(
    conn: &mut SqliteConnection,
    written: Result<(), sqlx::Error>,
) -> Result<(), sqlx::Error> {
    match written {
        Ok(()) => sqlx::query("COMMIT").execute(&mut *conn).await.map(|_| ()),
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

/// The attempt committed, then its outcome committed: the refund path's two syncs.
async fn refund(State(floor): State<Floor>, session: Bytes) -> StatusCode {
    let session = String::from_utf8_lossy(&session);
    let committed = match floor.rows {
        Rows::One => two_commits(&floor.pool, &session).await,
        Rows::Ledger => two_commits_of_ledger_rows(&floor.pool, &session).await,
    };
    match committed {
        Ok(()) => StatusCode::CREATED,
        Err(e) => {
            eprintln!("floor: refund path: {e}");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

async fn two_commits(pool: &SqlitePool, session: &str) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let at = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO attempts (session_id, state, created_at, updated_at)
         VALUES (?, 'pending', ?, ?) RETURNING id",
    )
    .bind(session)
    .bind(at)
    .bind(at)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    // The proxy lets go of the writer during the upstream call; so does the floor.
    drop(conn);
    let mut conn = pool.acquire().await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    sqlx::query("UPDATE attempts SET state = 'in_progress', updated_at = ? WHERE id = ?")
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(())
}

/// The refund path's two commits as the ledger writes them: the attempt's row, then its
/// history line, its event and `COMMIT` in one call; the outcome's update likewise. Fixed
/// contents; nothing read, hashed or serialised.
async fn two_commits_of_ledger_rows(pool: &SqlitePool, session: &str) -> Result<(), sqlx::Error> {
    let at = now_ms();
    let journal = |kind: &'static str, state: &'static str| {
        sqlx::query(
            "INSERT INTO history (session_id, at, kind, agent, attempt_id, amount, currency, state, hash, role)
             VALUES (?, ?, ?, 'bench', ?, 1500, 'USD', ?, ?, 'support');
             INSERT INTO events (session_id, at, refund) VALUES (?, ?, ?);
             COMMIT",
        )
        .bind(session.to_owned())
        .bind(at)
        .bind(kind)
        .bind(format!("at_{session}"))
        .bind(state)
        .bind(HASH)
        .bind(session.to_owned())
        .bind(at)
        .bind(EVENT_JSON)
    };
    let mut conn = pool.acquire().await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let key: i64 = sqlx::query_scalar(
        "INSERT INTO refunds (attempt_id, session_id, origin, agent, amount, currency, full_refund,
             reason, idempotency_key, request_hash, refunds_before, state, created_at, updated_at, role)
         VALUES (?, ?, 'proxy', 'bench', 1500, 'USD', 1, 'requested_by_customer', ?, ?, '[]',
             'pending', ?, ?, 'support')
         RETURNING key",
    )
    .bind(format!("at_{session}"))
    .bind(session)
    .bind(format!("key_{session}"))
    .bind(HASH)
    .bind(at)
    .bind(at)
    .fetch_one(&mut *conn)
    .await?;
    // With the `COMMIT`, in one call, as the ledger's journal does.
    journal("requested", "pending").execute(&mut *conn).await?;
    drop(conn);
    let mut conn = pool.acquire().await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    sqlx::query(
        "UPDATE refunds SET state = 'in_progress', refund_id = ?, updated_at = ? WHERE key = ?",
    )
    .bind(format!("rf_{session}"))
    .bind(now_ms())
    .bind(key)
    .execute(&mut *conn)
    .await?;
    journal("sent", "in_progress").execute(&mut *conn).await?;
    Ok(())
}
