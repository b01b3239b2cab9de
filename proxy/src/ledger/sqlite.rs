//! The ledger's SQLite connections, through rusqlite: statements run on the calling task's
//! own thread, the writer's inside its transaction and the readers' on read-only connections
//! taken and put back.
//!
//! Why not sqlx (as until 2026-11-30): an sqlx SQLite connection runs on a thread of its own,
//! and every statement is a message to that thread and an answer back, two thread wake-ups.
//! A refund made 14 such round trips (three reads; `BEGIN`, the insert, the chain's head, the
//! journal and `COMMIT`, the autocommit check; the outcome likewise), each on the request's
//! path. Here a transaction costs one hand-off, its commit.
//!
//! What leaves the task's thread, to a blocking thread: a `COMMIT` (it syncs the WAL to
//! disk); a `BEGIN IMMEDIATE` or a read that found another process's lock, tried again there
//! with the busy timeout; opening and closing connections. What stays is SQLite's work in its
//! page cache and reads of the file through the operating system's cache, microseconds each:
//! the writer never spills a transaction's pages to the WAL before its `COMMIT`
//! (`cache_spill` off) and keeps its statement journals in memory (`temp_store`), so no
//! file is written on the task's thread. A disk that
//! hangs on reads of pages the operating system no longer caches would still hold the task's
//! worker thread for as long.
//!
//! Errors come back as `sqlx::Error::Database` with SQLite's extended code, so
//! [`is_storage_fault`](super::is_storage_fault) and [`is_busy`](super::writer::is_busy) read
//! them as they read sqlx's.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Mutex, MutexGuard};

use super::sql::{Arg, Sql};
use super::PAGE_CACHE_KIB;

/// How long `BEGIN IMMEDIATE` waits for another process's write lock (as the readers' busy
/// timeout), and opening for the journal mode's.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write waits for the writer connection before it counts as a storage fault
/// (a commit stuck on the disk holds it).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per connection: the ledger's recurring statements (about thirty;
/// a batch's multi-row inserts, one per table and power of two, `sql::recurring_chunks`; a
/// batch's look-up, one per power of two), with room. Public (as `ledger::SQLITE_STATEMENT_CACHE`) for the benchmarks' storage floor.
pub const STATEMENT_CACHE: usize = 128;

/// The single connection every SQLite write transaction runs on; opened again after a fault.
#[derive(Debug)]
pub(super) struct Writer {
    path: PathBuf,
    read_only: bool,
    /// `None` after a fault (or a lost commit): the next write opens a fresh connection.
    slot: Mutex<Option<Connection>>,
}

/// The writer connection, held for one transaction.
pub(super) type Held<'a> = MutexGuard<'a, Option<Connection>>;

impl Writer {
    /// Opens the writer now, so a file SQLite can only open read-only fails here.
    pub(super) async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        let writer = Self::lazy(path, false);
        let conn = connect(path.to_owned(), false).await?;
        *writer.slot.lock().await = Some(conn);
        Ok(writer)
    }

    /// A writer that opens the file read-only when first used: every write through it fails.
    pub(super) fn read_only(path: &Path) -> Self {
        Self::lazy(path, true)
    }

    fn lazy(path: &Path, read_only: bool) -> Self {
        Self {
            path: path.to_owned(),
            read_only,
            slot: Mutex::new(None),
        }
    }

    /// The connection, for one transaction: waits for the one before to end, and opens a
    /// fresh connection if the last was thrown away.
    pub(super) async fn acquire(&self) -> Result<Held<'_>, sqlx::Error> {
        let mut held = tokio::time::timeout(ACQUIRE_TIMEOUT, self.slot.lock())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        if held.is_none() {
            *held = Some(connect(self.path.clone(), self.read_only).await?);
        }
        Ok(held)
    }

    /// Closes the connection (a checkpoint, as SQLite's last connection closing does). A
    /// write after this (one still finishing at shutdown) opens a fresh connection and still
    /// lands; it is closed when the ledger is dropped.
    pub(super) async fn close(&self) {
        let conn = self.slot.lock().await.take();
        if let Some(conn) = conn {
            let _ = tokio::task::spawn_blocking(move || drop(conn)).await;
        }
    }
}

/// Look-ups outside any transaction, on the task's thread too: read-only connections, taken
/// for one statement and put back. In WAL mode each statement reads a snapshot of what is
/// committed, and never waits for the writer or its sync to disk.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    idle: std::sync::Mutex<Vec<Connection>>,
    /// How many are kept idle at most ([`idle_readers`], asked once: on Linux each answer
    /// reads the process's cgroup files, a dozen system calls).
    keep: usize,
}

impl Readers {
    /// Readers of `path`, opened as they are first needed.
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: std::sync::Mutex::new(Vec::new()),
            keep: idle_readers(),
        }
    }

    /// Runs `sql` on an idle connection (a new one if none is). When SQLite answers busy (a
    /// reader meeting a WAL being reset or recovered), it is tried again on a blocking thread
    /// with the busy timeout. A connection that fails is closed, not put back.
    pub(super) async fn run(&self, sql: &Sql) -> Result<Vec<Row>, sqlx::Error> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(self.path.clone(), true).await?,
        };
        let (conn, done) = match run(&conn, sql) {
            Err(e) if super::writer::is_busy(&e) => {
                let sql = sql.clone();
                on_blocking_thread(conn, move |conn| patiently(conn, |conn| run(conn, &sql)))
                    .await?
            }
            done => (conn, done),
        };
        let (rows, _) = done?;
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.keep {
            idle.push(conn);
        }
        Ok(rows)
    }

    /// Closes the idle connections.
    pub(super) fn close(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Readers kept open between look-ups: as many as threads can read at once (a read holds its
/// connection only while it runs on its thread, so that many are open at most, and a few more
/// while reads wait out a lock on blocking threads), at least four.
fn idle_readers() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get().max(4))
}

/// The ledger's settings of a connection, as SQL: WAL, `synchronous = FULL` (a committed
/// attempt survives even a power cut, not only `kill -9`), foreign keys, the bounded page
/// cache. The writer's also keep a transaction's work in memory until its `COMMIT`, so that
/// nothing is written to any file on the task's thread:
/// - `cache_spill` off: a transaction's pages reach the WAL at its `COMMIT` only, on a
///   blocking thread (a batch of webhooks can outgrow the page cache; it holds its pages in
///   memory until it commits);
/// - `temp_store = MEMORY`: the statement journals (the pages a statement changed that its
///   transaction had changed before, kept to undo that statement alone) stay in memory. By
///   default SQLite moves one past 64 KiB into a temporary file, opened, unlinked and written
///   on the task's thread: a batch of webhooks' multi-row inserts did so every batch.
///
/// A reader leaves the journal mode alone and sorts in files as SQLite does by default (an
/// export's sort could be large). Public (as `ledger::sqlite_settings`) for the benchmarks'
/// storage floor.
pub fn settings(read_only: bool) -> String {
    let writer = if read_only {
        ""
    } else {
        "PRAGMA journal_mode = WAL; PRAGMA cache_spill = OFF; PRAGMA temp_store = MEMORY;"
    };
    format!(
        "{writer} PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -{PAGE_CACHE_KIB};"
    )
}

/// Opens the file with the ledger's [`settings`]; `read_only` for a reader. Refused when
/// SQLite could only open the file read-only and a writer was asked for.
async fn connect(path: PathBuf, read_only: bool) -> Result<Connection, sqlx::Error> {
    tokio::task::spawn_blocking(move || {
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(&path, flags).map_err(error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
        conn.execute_batch(&settings(read_only)).map_err(error)?;
        if !read_only
            && conn
                .is_readonly(rusqlite::DatabaseName::Main)
                .map_err(error)?
        {
            // SQLite quietly falls back to read-only when the file cannot be opened for
            // writing (e.g. `chattr +i`): no writer.
            return Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the ledger file can only be opened read-only",
            )));
        }
        // Statements on the task's thread never wait: only `BEGIN IMMEDIATE` takes the
        // lock, and it waits on a blocking thread (see `begin`; readers: `Readers::run`).
        conn.busy_timeout(Duration::ZERO).map_err(error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    })
    .await
    .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?
}

/// `BEGIN IMMEDIATE`: the write lock, taken now. Tried at once on this thread; when another
/// process holds the lock, waited for on a blocking thread, up to the busy timeout.
pub(super) async fn begin(held: &mut Held<'_>) -> Result<(), sqlx::Error> {
    let conn = held.as_ref().expect("acquired with a connection");
    match conn.execute_batch("BEGIN IMMEDIATE").map_err(error) {
        Err(e) if super::writer::is_busy(&e) => {}
        done => return done,
    }
    off_thread(held, |conn| {
        patiently(conn, |conn| {
            conn.execute_batch("BEGIN IMMEDIATE").map_err(error)
        })
    })
    .await
}

/// `COMMIT`, on a blocking thread (it syncs the WAL to disk). `Ok` only if the connection is
/// back in autocommit afterwards: a `COMMIT` that returns with its transaction still open
/// (a deferred constraint) is an error.
pub(super) async fn commit(held: &mut Held<'_>) -> Result<(), sqlx::Error> {
    off_thread(held, |conn| {
        conn.prepare_cached("COMMIT")
            .and_then(|mut commit| commit.raw_execute())
            .map(drop)
            .map_err(error)
    })
    .await?;
    match held.as_ref() {
        Some(conn) if conn.is_autocommit() => Ok(()),
        _ => Err(sqlx::Error::Protocol(
            "COMMIT returned but the transaction is still open".into(),
        )),
    }
}

/// Runs `work` on the held connection on a blocking thread. If the task is lost (a panic, or
/// this future dropped before it ends) so is the connection: the next write opens a fresh one.
async fn off_thread(
    held: &mut Held<'_>,
    work: impl FnOnce(&Connection) -> Result<(), sqlx::Error> + Send + 'static,
) -> Result<(), sqlx::Error> {
    let conn = held.take().expect("acquired with a connection");
    let (conn, done) = on_blocking_thread(conn, work).await?;
    **held = Some(conn);
    done
}

/// Moves `conn` to a blocking thread for `work`, and back with `work`'s outcome.
async fn on_blocking_thread<T: Send + 'static>(
    conn: Connection,
    work: impl FnOnce(&Connection) -> Result<T, sqlx::Error> + Send + 'static,
) -> Result<(Connection, Result<T, sqlx::Error>), sqlx::Error> {
    tokio::task::spawn_blocking(move || {
        let done = work(&conn);
        (conn, done)
    })
    .await
    .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))
}

/// `work` with the busy timeout on (off the task's thread: it may wait for another process's
/// lock), then off again.
fn patiently<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
    let done = work(conn);
    conn.busy_timeout(Duration::ZERO).map_err(error)?;
    done
}

/// Rolls back whatever the connection holds open; `true` when it is back in autocommit, the
/// only state in which it may be used again.
pub(super) fn reset(conn: &Connection) -> bool {
    if !conn.is_autocommit() {
        // Fails harmlessly when SQLite has already rolled back by itself.
        let _ = conn.execute_batch("ROLLBACK");
    }
    conn.is_autocommit()
}

/// A row read back: its columns' names and values.
#[derive(Debug)]
pub(super) struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub(super) fn names(&self) -> &[String] {
        &self.names
    }

    pub(super) fn value(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }
}

/// Runs `sql`: the rows it returns, and the rows it changed.
pub(super) fn run(conn: &Connection, sql: &Sql) -> Result<(Vec<Row>, u64), sqlx::Error> {
    let (mut cached, mut once);
    let statement: &mut rusqlite::Statement<'_> = if sql.is_persistent() {
        cached = conn.prepare_cached(sql.text()).map_err(error)?;
        &mut cached
    } else {
        // Not kept: the cache would hold one entry per batch size.
        once = conn.prepare(sql.text()).map_err(error)?;
        &mut once
    };
    if statement.parameter_count() != sql.args().len() {
        return Err(sqlx::Error::Protocol(format!(
            "the statement takes {} arguments, {} given",
            statement.parameter_count(),
            sql.args().len()
        )));
    }
    for (i, arg) in sql.args().iter().enumerate() {
        let bound = match arg {
            Arg::Int(v) => statement.raw_bind_parameter(i + 1, v),
            Arg::Text(v) => statement.raw_bind_parameter(i + 1, v),
            Arg::Bool(v) => statement.raw_bind_parameter(i + 1, v),
            Arg::Bytes(v) => statement.raw_bind_parameter(i + 1, v),
        };
        bound.map_err(error)?;
    }
    let writes = !statement.readonly();
    let names: Arc<[String]> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    let mut results = statement.raw_query();
    while let Some(row) = results.next().map_err(error)? {
        let values = (0..names.len())
            .map(|i| row.get::<_, Value>(i))
            .collect::<Result<_, _>>()
            .map_err(error)?;
        rows.push(Row {
            names: names.clone(),
            values,
        });
    }
    drop(results);
    // sqlite3_changes() is the last write's count, stale after a statement that wrote nothing.
    let changed = if writes { conn.changes() } else { 0 };
    Ok((rows, changed))
}

/// SQLite's error as sqlx reports one: `Database` with the extended result code.
pub(super) fn error(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            sqlx::Error::Database(Box::new(SqliteError {
                code: code.extended_code,
                message: message.unwrap_or_else(|| code.to_string()),
            }))
        }
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// An error SQLite returned, with its extended result code.
#[derive(Debug)]
struct SqliteError {
    code: i32,
    message: String,
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteError {}

impl sqlx::error::DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use libsqlite3_sys as c;
        use sqlx::error::ErrorKind;
        match self.code {
            c::SQLITE_CONSTRAINT_UNIQUE | c::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            c::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            c::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            c::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
