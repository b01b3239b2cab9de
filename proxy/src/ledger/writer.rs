//! Write transactions that fail closed: a write either commits on a connection SQLite itself
//! says is back outside any transaction, or it is an error and its connection is rolled back
//! and, when in doubt, thrown away.
//!
//! The transaction is plain SQL (`BEGIN IMMEDIATE` … `COMMIT` on SQLite's writer connection,
//! see `sqlite`) and on SQLite its outcome is read from `sqlite3_get_autocommit`, the one
//! source that cannot be out of date. Why not a library's transaction type: sqlx's, which the
//! ledger used on SQLite before, counts open transactions itself, and after certain failures
//! (disk full, I/O error: SQLite rolls back on its own, so sqlx's `ROLLBACK` fails and its
//! count stays at 1) the count and the connection disagree. The next `begin()` then issues a
//! `SAVEPOINT` instead of `BEGIN`, a later failure leaves that savepoint's transaction open,
//! and from then on every "commit" only releases a nested savepoint: callers see success,
//! nothing reaches the disk, and everything is rolled back when the process exits.
//!
//! A transaction's history lines and events ([`Entries`]) are written just before its
//! `COMMIT`, and its events published right after it, while the writer connection is still
//! held: every event the ledger commits is announced, once, in commit order, and nothing
//! outside the ledger publishes.
//!
//! [`Health`] is what the rest of the proxy knows of it: whether the last write reached the
//! disk, faults and recoveries counted, and a signal on recovery so reconciliation can look
//! at whatever was in flight when the fault began.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use sqlx::pool::PoolConnection;
use sqlx::Postgres;
use tokio::sync::watch;

use super::journal::Entries;
use super::sql::{Engine, Exec, Sql};
use super::sqlite;
use super::{Ledger, Store};

/// Whether `error` is SQLite saying another connection holds the lock (`SQLITE_BUSY`,
/// `SQLITE_LOCKED`): worth trying again in a moment.
pub fn is_busy(error: &sqlx::Error) -> bool {
    use libsqlite3_sys as c;
    match error {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, c::SQLITE_BUSY | c::SQLITE_LOCKED)),
        _ => false,
    }
}

/// Whether `error` says the database cannot store anything right now (as opposed to a
/// statement the schema refused): disk full, I/O error, read-only file, lock held, …
///
/// On PostgreSQL: the SQLSTATE classes of a lost or refused connection (`08`), of resources
/// (`53`: disk full, out of memory, too many connections), of a server shutting down or
/// starting (`57`), and of the server's own I/O (`58`); and a database that refuses writes,
/// as SQLite's `READONLY` and `PERM` are: `25006` (read-only: a standby after a failover,
/// `default_transaction_read_only`) and `42501` (the role may not write); and `55P03`, the
/// writers' lock not had within [`WRITE_WAIT`], as SQLite's `BUSY` is.
pub fn is_storage_fault(error: &sqlx::Error) -> bool {
    use libsqlite3_sys as c;
    match error {
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let code = pg.code();
                return ["08", "53", "57", "58"]
                    .iter()
                    .any(|class| code.starts_with(class))
                    || ["25006", "42501", "55P03"].contains(&code);
            }
            let Some(code) = db.code().and_then(|code| code.parse::<i32>().ok()) else {
                return false;
            };
            matches!(
                code & 0xff,
                c::SQLITE_PERM
                    | c::SQLITE_BUSY
                    | c::SQLITE_LOCKED
                    | c::SQLITE_NOMEM
                    | c::SQLITE_READONLY
                    | c::SQLITE_IOERR
                    | c::SQLITE_CORRUPT
                    | c::SQLITE_FULL
                    | c::SQLITE_CANTOPEN
                    | c::SQLITE_PROTOCOL
                    | c::SQLITE_NOTADB
            )
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// Whether the ledger can write, as the last write found it.
#[derive(Debug)]
pub struct Health {
    writable: AtomicBool,
    /// Times the ledger went from writable to not (one per fault, however many writes fail).
    faults: AtomicU64,
    recoveries: AtomicU64,
    /// Writes that failed on a storage fault.
    failed_writes: AtomicU64,
    last_fault: Mutex<Option<String>>,
    /// Bumped on every recovery.
    recovered: watch::Sender<u64>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            writable: AtomicBool::new(true),
            faults: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            failed_writes: AtomicU64::new(0),
            last_fault: Mutex::new(None),
            recovered: watch::Sender::new(0),
        }
    }
}

/// Counters of [`Health`], for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCounts {
    pub writable: bool,
    pub faults: u64,
    pub recoveries: u64,
    pub failed_writes: u64,
}

impl Health {
    pub fn is_writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    /// What the last fault was, while the ledger cannot write.
    pub fn last_fault(&self) -> Option<String> {
        if self.is_writable() {
            return None;
        }
        self.last_fault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn counts(&self) -> HealthCounts {
        HealthCounts {
            writable: self.is_writable(),
            faults: self.faults.load(Ordering::Relaxed),
            recoveries: self.recoveries.load(Ordering::Relaxed),
            failed_writes: self.failed_writes.load(Ordering::Relaxed),
        }
    }

    /// A receiver that changes on every recovery.
    pub fn recoveries(&self) -> watch::Receiver<u64> {
        self.recovered.subscribe()
    }

    fn fault(&self, error: &sqlx::Error) {
        self.failed_writes.fetch_add(1, Ordering::Relaxed);
        *self.last_fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
        if self.writable.swap(false, Ordering::AcqRel) {
            self.faults.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, "ledger cannot write: refunds and webhooks are refused until it can");
        }
    }

    fn ok(&self) {
        if !self.writable.swap(true, Ordering::AcqRel) {
            self.recoveries.fetch_add(1, Ordering::Relaxed);
            tracing::error!("ledger writes again: recovered from the storage fault");
            self.recovered.send_modify(|n| *n += 1);
        }
    }
}

/// The connection a write transaction holds.
enum Held<'a> {
    Sqlite(sqlite::Held<'a>),
    Postgres(PoolConnection<Postgres>),
}

/// Taken by every write transaction on PostgreSQL, whichever replica runs it: writes are one
/// at a time across all replicas, as SQLite's single writer makes them within one process.
/// The history's hash chain has one head, `seq` and history ids follow commit order, and
/// every read-modify-write sees everything committed before it.
const WRITER_LOCK: i64 = 0x5347_5246_0000_0001;

/// How long a write waits for its turn, and then for the writers' lock, on PostgreSQL: as
/// long as SQLite's writer waits for its connection. A replica frozen mid-transaction, or
/// anyone else holding the lock, is then a storage fault (`/readyz` unready, refunds `503`
/// with nothing sent), not a queue of writes that never ends.
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A write transaction's start on PostgreSQL, with [`WRITE_WAIT`] as its `lock_timeout`.
const WRITE_BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = '10s'";

/// One write transaction: `BEGIN IMMEDIATE` on SQLite's writer connection, `BEGIN` and the
/// writers' advisory lock on PostgreSQL, when made; ended by [`finish`](WriteTx::finish).
/// Dropped without `finish` (a panic, a cancelled task): on SQLite it is rolled back there
/// and then (the connection thrown away if that fails); on PostgreSQL the connection is
/// closed, which rolls back and frees the lock.
pub(super) struct WriteTx<'a> {
    held: Option<Held<'a>>,
    ledger: &'a Ledger,
    /// PostgreSQL: this process's turn to write. Writers queue here, not on the database's
    /// lock, so a burst of writes holds one pooled connection, not one each.
    turn: Option<tokio::sync::MutexGuard<'a, ()>>,
    /// What this transaction writes proves the ledger can write (the probe's heartbeat):
    /// its commit ends a storage fault even with nothing in its journal.
    proves_writable: bool,
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        match self.held.take() {
            // Still open after a rollback: thrown away, the next write opens a fresh one.
            Some(Held::Sqlite(mut held)) if !held.as_ref().is_none_or(sqlite::reset) => {
                *held = None;
            }
            Some(Held::Sqlite(_)) | None => {}
            // Never back in the pool mid-transaction; the server rolls back on disconnect.
            Some(Held::Postgres(conn)) => drop(conn.detach()),
        }
    }
}

impl<'a> WriteTx<'a> {
    pub(super) async fn begin(ledger: &'a Ledger) -> Result<WriteTx<'a>, sqlx::Error> {
        let health = &*ledger.health;
        let turn = match &ledger.store {
            Store::Postgres(pg) => {
                match tokio::time::timeout(WRITE_WAIT, pg.writing.lock()).await {
                    Ok(turn) => Some(turn),
                    Err(_) => {
                        let error = sqlx::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!(
                                "a write waited {} s for the one before it to finish",
                                WRITE_WAIT.as_secs()
                            ),
                        ));
                        health.fault(&error);
                        return Err(error);
                    }
                }
            }
            Store::Sqlite { .. } => None,
        };
        let held = match &ledger.store {
            Store::Sqlite { writer, .. } => writer.acquire().await.map(Held::Sqlite),
            Store::Postgres(pg) => pg.pool.acquire().await.map(Held::Postgres),
        };
        let held = match held {
            Ok(held) => held,
            Err(error) => {
                if is_storage_fault(&error) {
                    health.fault(&error);
                }
                return Err(error);
            }
        };
        let mut tx = WriteTx {
            held: Some(held),
            ledger,
            turn,
            proves_writable: false,
        };
        let begun = match tx.held.as_mut() {
            // IMMEDIATE: the write lock is taken now, so a busy database fails here, before
            // any work, rather than at the first write or at COMMIT.
            Some(Held::Sqlite(held)) => sqlite::begin(held).await,
            // READ COMMITTED whatever the database's default: each statement after the lock
            // sees every write committed before it (a snapshot taken by the lock's own
            // statement would not).
            Some(Held::Postgres(conn)) => {
                async {
                    // The lock's wait bounded for this transaction only, in the same round
                    // trip; a lock not had in time is SQLSTATE 55P03, a storage fault.
                    // Without arguments: sent as one simple query, both statements in it.
                    sqlx::Executor::execute(&mut **conn, WRITE_BEGIN).await?;
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(WRITER_LOCK)
                        .execute(&mut **conn)
                        .await
                        .map(|_| ())
                }
                .await
            }
            None => Ok(()),
        };
        match begun {
            Ok(()) => Ok(tx),
            Err(error) => Err(tx.discard(error).await),
        }
    }

    /// Where this transaction's statements run.
    pub(super) fn exec(&mut self) -> Exec<'_> {
        match self.held.as_mut() {
            Some(Held::Sqlite(held)) => Exec::SqliteWriter(
                held.as_mut()
                    .expect("a transaction holds its connection until it ends"),
            ),
            Some(Held::Postgres(conn)) => Exec::PgConn(conn),
            None => unreachable!("a transaction holds its connection until it ends"),
        }
    }

    pub(super) fn engine(&self) -> Engine {
        match self.held {
            Some(Held::Postgres(_)) => Engine::Postgres,
            _ => Engine::Sqlite,
        }
    }

    /// If `result` is `Ok`: writes `journal`, commits, and publishes the journal's events.
    /// `Ok` only when the transaction is known to be on disk (on SQLite: the connection is
    /// back in autocommit after `COMMIT`). If not, rolls back and nothing is published.
    pub(super) async fn finish<T>(
        mut self,
        mut journal: Entries,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let entered = journal.take_entered();
        let value = match result {
            Ok(value) => value,
            Err(error) => return Err(self.discard(error).await),
        };
        let (statements, events) = match journal.statements(&mut self).await {
            Ok(written) => written,
            Err(error) => return Err(self.discard(error).await),
        };
        // Each in turn (on SQLite, on this thread), then the NOTIFY on PostgreSQL: delivered
        // to every replica's listener when (and only if) this commits.
        let notify = (self.engine() == Engine::Postgres)
            .then(|| events.last())
            .flatten()
            .map(|last| {
                Sql::new("SELECT pg_notify(?, ?)")
                    .bind(super::listen::CHANNEL)
                    .bind(last.seq.to_string())
            });
        for statement in statements.iter().chain(&notify) {
            if let Err(error) = self.exec().execute(statement).await {
                return Err(self.discard(error).await);
            }
        }
        let health = &*self.ledger.health;
        let committed = match self.held.as_mut() {
            Some(Held::Sqlite(held)) => sqlite::commit(held).await,
            Some(Held::Postgres(conn)) => {
                sqlx::query("COMMIT").execute(&mut **conn).await.map(|_| ())
            }
            None => Ok(()),
        };
        if let Err(error) = committed {
            return Err(self.discard(error).await);
        }
        // A commit that wrote history lines (or the probe's heartbeat) ends a storage fault.
        // One that changed nothing proves nothing: on a full disk an empty transaction
        // commits as well, and the ledger would be declared recovered, over and over.
        if self.proves_writable || !statements.is_empty() {
            health.ok();
        }
        entered
            .into_iter()
            .for_each(|state| self.ledger.publisher.entered(state));
        match self.held.take() {
            Some(Held::Sqlite(held)) => {
                // Still holding the only writer connection: no later commit can publish first.
                events
                    .into_iter()
                    .for_each(|event| self.ledger.publisher.publish(event));
                drop(held);
            }
            Some(Held::Postgres(conn)) => {
                drop(conn);
                // The next write need not wait for this one's events to be published: the
                // listener publishes in `seq` order whatever order the answers go in.
                drop(self.turn.take());
                // Every replica (this one included) publishes from its listener, in `seq`
                // order; answering waits until this one has, as on SQLite.
                if let (Store::Postgres(pg), Some(last)) = (&self.ledger.store, events.last()) {
                    pg.published_through(last.seq).await;
                }
            }
            None => {}
        }
        Ok(value)
    }

    /// This transaction's write proves the ledger writes (see `proves_writable`).
    pub(super) fn proves_writable(&mut self) {
        self.proves_writable = true;
    }

    /// After a failed statement, `BEGIN` or `COMMIT`: rolls back, and closes the connection
    /// unless it is known to be clean and the failure was not a storage fault (a connection
    /// that hit one may have been opened read-only, or hold a broken file handle: a fresh one
    /// costs a millisecond). Returns `error`, for the caller to pass on.
    async fn discard(mut self, error: sqlx::Error) -> sqlx::Error {
        let health = &*self.ledger.health;
        let fault = is_storage_fault(&error);
        if fault {
            health.fault(&error);
        }
        match self.held.take() {
            Some(Held::Sqlite(mut held)) => {
                let clean = held.as_ref().is_some_and(sqlite::reset);
                if fault || !clean {
                    tracing::warn!(%error, clean, "closing the ledger's writer connection; the next write opens a fresh one");
                    // Closed off this thread: closing may checkpoint.
                    if let Some(conn) = held.take() {
                        let _ = tokio::task::spawn_blocking(move || drop(conn)).await;
                    }
                }
            }
            Some(Held::Postgres(conn)) => {
                // Cancelled during the `ROLLBACK` (its caller dropped), the connection would go
                // back to the pool still in the transaction, holding the writers' lock: it is
                // closed instead.
                let mut rolling_back = super::locks::Unfinished(Some(conn));
                let mut clean = !fault;
                if let (true, Some(conn)) = (clean, rolling_back.0.as_mut()) {
                    clean = sqlx::query("ROLLBACK").execute(&mut **conn).await.is_ok();
                }
                if let (false, Some(conn)) = (clean, rolling_back.0.take()) {
                    let _ = conn.close().await;
                }
                // Rolled back: back to the pool (the guard lets it go only when it is taken).
                drop(rolling_back.0.take());
            }
            None => {}
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, SqliteConnection};

    use super::super::Ledger;
    use super::{Entries, Sql};

    async fn open() -> (tempfile::TempDir, std::path::PathBuf, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let ledger = Ledger::open(&path).await.unwrap();
        (dir, path, ledger)
    }

    /// A connection of its own, as another process would have.
    async fn another_process(path: &std::path::Path, read_only: bool) -> SqliteConnection {
        SqliteConnectOptions::from_str("sqlite:")
            .unwrap()
            .filename(path)
            .read_only(read_only)
            .connect()
            .await
            .unwrap()
    }

    /// Seen by another process: only what is committed.
    async fn rejected_webhooks_seen_by_another_connection(path: &std::path::Path) -> i64 {
        let mut other = another_process(path, true).await;
        sqlx::query_scalar("SELECT COUNT(*) FROM rejected_webhooks")
            .fetch_one(&mut other)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_commit_that_fails_leaves_the_next_transaction_working_and_visible_to_others() {
        let (_dir, path, ledger) = open().await;
        // A COMMIT that fails and leaves its transaction open: a deferred foreign key.
        let mut tx = ledger.write().await.unwrap();
        let schema = async {
            tx.exec()
                .execute(&Sql::new("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
                .await?;
            tx.exec()
                .execute(&Sql::new("CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"))
                .await
                .map(|_| ())
        }
        .await;
        tx.finish(Entries::default(), schema).await.unwrap();
        let mut tx = ledger.write().await.unwrap();
        let orphan = tx
            .exec()
            .execute(&Sql::new("INSERT INTO child (parent) VALUES (42)"))
            .await
            .map(|_| ());
        let error = tx.finish(Entries::default(), orphan).await.unwrap_err();
        assert!(
            error.to_string().contains("FOREIGN KEY"),
            "the COMMIT itself failed: {error}"
        );
        assert!(
            ledger.health().is_writable(),
            "a refused statement is no storage fault"
        );

        ledger.record_rejected_webhook(b"{}", "test").await.unwrap();

        assert_eq!(rejected_webhooks_seen_by_another_connection(&path).await, 1);
    }

    /// The journal's inserts run just before the COMMIT: a failing insert among them must
    /// leave nothing of the transaction behind, and the writer working.
    #[tokio::test]
    async fn a_journal_insert_that_fails_commits_nothing_of_its_transaction() {
        let (_dir, _path, ledger) = open().await;
        let session = shared::SessionId::parse("ps_fused_commit").unwrap();
        let refund = |id: &str| -> shared::smart_glocal::Refund {
            serde_json::from_value(serde_json::json!({
                "id": id, "status": "accepted",
                "amount_details": {"amount": 500, "currency": "eur"},
            }))
            .unwrap()
        };
        let schema = |statement: &'static str| {
            let ledger = &ledger;
            async move {
                let mut tx = ledger.write().await.unwrap();
                let done = tx.exec().execute(&Sql::new(statement)).await.map(|_| ());
                tx.finish(Entries::default(), done).await.unwrap();
            }
        };
        schema("CREATE TRIGGER no_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'no events'); END").await;

        let error = ledger
            .apply_upstream_refund(
                &session,
                &refund("rf_fused_1"),
                super::super::Source::Webhook,
            )
            .await
            .unwrap_err();

        assert!(error.to_string().contains("no events"), "{error}");
        let rows = ledger.rows_for_session(&session).await.unwrap();
        assert!(
            rows.is_empty(),
            "the refund's row was rolled back with its event"
        );
        let history = ledger.history(&session).await.unwrap();
        assert!(history.is_empty(), "and its history line");
        schema("DROP TRIGGER no_events").await;
        ledger
            .apply_upstream_refund(
                &session,
                &refund("rf_fused_2"),
                super::super::Source::Webhook,
            )
            .await
            .unwrap();
        assert_eq!(ledger.rows_for_session(&session).await.unwrap().len(), 1);
        assert_eq!(ledger.history(&session).await.unwrap().len(), 1);
        let chain = ledger.verify_chain().await.unwrap();
        assert_eq!((chain.verified, chain.broken), (1, None));
    }

    /// Another process holding SQLite's write lock: a write waits for it (up to the busy
    /// timeout) off the runtime's thread, then commits. On this single-threaded runtime the
    /// sleep below only ends on time if the wait is not on this thread.
    #[tokio::test]
    async fn a_write_waits_for_another_processs_lock_without_holding_up_the_runtime() {
        let (_dir, path, ledger) = open().await;
        let mut other = another_process(&path, false).await;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        let write = tokio::spawn({
            let ledger = ledger.clone();
            async move { ledger.record_rejected_webhook(b"{}", "waited").await }
        });

        let started = std::time::Instant::now();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "the runtime's thread was held up for {:?}",
            started.elapsed()
        );
        assert!(!write.is_finished(), "the write waits for the lock");
        sqlx::query("COMMIT").execute(&mut other).await.unwrap();
        write.await.unwrap().unwrap();
        assert!(ledger.health().is_writable());
        assert_eq!(rejected_webhooks_seen_by_another_connection(&path).await, 1);
    }

    /// A transaction dropped unfinished (a cancelled request, a panic) is rolled back there
    /// and then, and the writer goes on working.
    #[tokio::test]
    async fn a_transaction_dropped_unfinished_leaves_nothing_and_the_writer_working() {
        let (_dir, path, ledger) = open().await;
        let mut tx = ledger.write().await.unwrap();
        tx.exec()
            .execute(&Sql::new("INSERT INTO rejected_webhooks (received_at, reason, raw_body) VALUES (0, 'dropped', x'7b7d')"))
            .await
            .unwrap();
        drop(tx);

        ledger
            .record_rejected_webhook(b"{}", "after")
            .await
            .unwrap();

        assert_eq!(rejected_webhooks_seen_by_another_connection(&path).await, 1);
        assert!(ledger.health().is_writable());
    }

    #[tokio::test]
    async fn a_full_database_fails_every_write_then_recovers_with_nothing_half_written() {
        let (_dir, path, ledger) = open().await;
        ledger
            .record_rejected_webhook(b"{}", "before")
            .await
            .unwrap();
        // The writer's database may not grow by a page: every write that needs one fails with
        // SQLITE_FULL, as on a full disk. (Per connection: the writer's fresh connection after
        // the fault is the disk "freed".)
        let mut tx = ledger.write().await.unwrap();
        let limit = async {
            // Free pages first taken (a migration that drops an index leaves some), so that
            // the next write needs a new one.
            tx.exec()
                .execute(&Sql::new("CREATE TABLE filler (bytes BLOB)"))
                .await?;
            tx.exec()
                .execute(&Sql::new(
                    "INSERT INTO filler SELECT zeroblob((SELECT freelist_count FROM pragma_freelist_count()) * (SELECT page_size FROM pragma_page_size()))",
                ))
                .await?;
            let pages: i64 = tx.exec().fetch_one(&Sql::new("PRAGMA page_count")).await?;
            tx.exec()
                .execute(&Sql::new(format!("PRAGMA max_page_count = {pages}")))
                .await
                .map(|_| ())
        }
        .await;
        tx.finish(Entries::default(), limit).await.unwrap();
        let big = vec![b'x'; 64 * 1024];

        let error = ledger
            .record_rejected_webhook(&big, "too big for the disk")
            .await
            .unwrap_err();

        assert!(super::is_storage_fault(&error), "{error}");
        assert!(!ledger.health().is_writable());
        assert_eq!(ledger.health().counts().faults, 1);
        // A transaction that writes nothing commits on a full disk too: it proves nothing
        // (reconciliation re-applying a state unchanged would declare a recovery each time).
        let tx = ledger.write().await.unwrap();
        tx.finish(Entries::default(), Ok(())).await.unwrap();
        assert!(
            !ledger.health().is_writable(),
            "an empty commit is no recovery"
        );
        assert_eq!(ledger.health().counts().recoveries, 0);
        assert!(
            ledger.probe().await.is_ok(),
            "a fresh writer connection can write"
        );
        assert!(ledger.health().is_writable());
        assert_eq!(ledger.health().counts().recoveries, 1);
        ledger.record_rejected_webhook(&big, "after").await.unwrap();
        assert_eq!(rejected_webhooks_seen_by_another_connection(&path).await, 2);
    }
}
