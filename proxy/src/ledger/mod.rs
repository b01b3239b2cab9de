//! The durable refund ledger: every SQL statement of the proxy lives under this module.
//!
//! SQLite through `sqlx` (runtime-checked queries), WAL, migrations embedded and applied on
//! open. The writer pool holds a single connection on purpose: every read-modify-write runs
//! inside one transaction on it, so concurrent webhooks, requests and reconciliation are
//! serialised by the database itself and never interleave. Plain reads go to a separate
//! read-only pool: in WAL mode a reader sees every transaction committed before it started
//! and never waits for the writer's sync to disk, so a look-up does not queue behind a
//! commit. Another engine would replace this module.
//!
//! - [`refunds`]: attempts recorded before the upstream call, state transitions that never
//!   go backwards, matching Smart Glocal's refunds to attempts.
//! - [`journal`]: events (for SSE replay), history, webhooks received, CSV export.
//! - [`webhooks`]: verified webhooks applied and recorded with one commit per batch.
//! - [`writer`]: write transactions that fail closed, and the ledger's [`Health`].
//! - [`revocations`]: agents whose tokens issued until a moment are refused.

mod chain;
mod journal;
mod kinds;
mod refunds;
mod revocations;
mod webhooks;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::api::{ErrorCode, RefundEvent, RefundReason, RefundState, RefundView};
use shared::{AttemptId, Currency, IdempotencyKey, Money, Note, RefundId, Timestamp};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::SqlitePool;

pub use chain::{BrokenLine, ChainEntry, ChainReport};
pub use journal::ExportRow;
pub use kinds::{Origin, Source, WebhookOutcome};
pub use refunds::{ApplyOutcome, Approved, Change, Inserted, NewAttempt};
pub use webhooks::{VerifiedWebhook, WebhookAction, WebhookWriter};
pub use writer::{is_storage_fault, Health, HealthCounts};

use journal::Entries;
use writer::WriteTx;

/// Embedded at build time; applied by [`Ledger::open`].
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Read-only connections for look-ups; two keep a slow export from blocking the others.
const READERS: u32 = 2;

/// How long [`Ledger::open`] waits for another process's lock on the file.
pub const OPEN_PATIENCE: Duration = Duration::from_secs(5);

/// Readiness probes write at most this often; `/readyz` in between answers from [`Health`].
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Handle to the ledger; cheap to clone.
#[derive(Clone, Debug)]
pub struct Ledger {
    /// The single connection every write transaction runs on.
    pool: SqlitePool,
    /// Look-ups outside any transaction: snapshots of what is committed.
    readers: SqlitePool,
    health: Arc<Health>,
    last_probe: Arc<Mutex<Option<Instant>>>,
    /// Where every committed event goes (the live streams), in commit order.
    publisher: Publisher,
}

/// What the ledger announces each committed [`RefundEvent`] to.
#[derive(Clone)]
struct Publisher(Arc<dyn Fn(RefundEvent) + Send + Sync>);

impl Publisher {
    fn publish(&self, event: RefundEvent) {
        (self.0)(event)
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher")
    }
}

/// Milliseconds since the Unix epoch, the ledger's clock.
pub fn now_ms() -> i64 {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).unix_millis()
}

/// A duration in the ledger's milliseconds, saturating (settings are far below the limit).
pub fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// How the ledger opens its SQLite file: WAL, every commit synced (FULL: a committed attempt
/// survives even a power cut, not only `kill -9`), a 5 s busy timeout, foreign keys on. Public
/// so the benchmarks' storage floor writes with exactly these settings.
pub fn connect_options(path: &Path) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true))
}

impl Ledger {
    /// Opens (creating if needed) the SQLite file and applies pending migrations.
    ///
    /// Beside a busy proxy on the same file (`proxy revoke`, a second replica), opening can
    /// meet SQLite's lock while it sets the journal mode, before its busy timeout applies:
    /// that is tried again for up to [`OPEN_PATIENCE`], not failed at once.
    pub async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        let started = Instant::now();
        loop {
            match Self::open_once(path).await {
                Err(e) if writer::is_busy(&e) && started.elapsed() < OPEN_PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                opened => return opened,
            }
        }
    }

    async fn open_once(path: &Path) -> Result<Self, sqlx::Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let options = connect_options(path)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            // A writer that SQLite could only open read-only is no writer: refused, so the
            // pool tries again (and fails closed) until the file is writable.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    if writer::is_writable(conn).await? {
                        Ok(())
                    } else {
                        Err(sqlx::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::PermissionDenied,
                            "the ledger file can only be opened read-only",
                        )))
                    }
                })
            })
            // Every connection handed back is checked with SQLite itself: still inside a
            // transaction after a rollback means closed, never reused.
            .after_release(|conn, _| Box::pin(writer::reset(conn)))
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        // Opened after the migrations, so the WAL exists and the schema is there to read.
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(Duration::from_secs(10))
            .after_release(|conn, _| Box::pin(writer::reset(conn)))
            .connect_with(options.read_only(true))
            .await?;
        let ledger = Self {
            pool,
            readers,
            health: Arc::default(),
            last_probe: Arc::default(),
            publisher: Publisher(Arc::new(|_| {})),
        };
        // History written before the chain existed is sealed once, in order, through the
        // same fail-closed write transaction as every other write.
        let mut tx = ledger.write().await?;
        let sealed = chain::seal_unhashed(&mut tx).await;
        tx.finish(Entries::default(), sealed).await?;
        Ok(ledger)
    }

    /// Opens an existing ledger to read only (`proxy export`, `proxy verify-ledger`): no
    /// migration, no write, no journal-mode change, so it runs beside a busy proxy without
    /// taking a lock (changing the journal mode would, and fails at once under load).
    pub async fn open_read_only(path: &Path) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(5));
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self {
            // Writes through it fail: SQLite opened the file read-only.
            pool: readers.clone(),
            readers,
            health: Arc::default(),
            last_probe: Arc::default(),
            publisher: Publisher(Arc::new(|_| {})),
        })
    }

    /// The same ledger, announcing each event it commits to `publish`, in commit order.
    pub fn publishing_to(mut self, publish: impl Fn(RefundEvent) + Send + Sync + 'static) -> Self {
        self.publisher = Publisher(Arc::new(publish));
        self
    }

    /// A write transaction on the writer connection (see [`writer`]).
    async fn write(&self) -> Result<WriteTx<'_>, sqlx::Error> {
        WriteTx::begin(self).await
    }

    /// Whether the ledger can write, as its last write found it.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Whether the ledger can write now (`/readyz`): the last write's outcome, checked by a
    /// tiny write of its own at most every [`PROBE_EVERY`].
    pub async fn probe(&self) -> Result<(), sqlx::Error> {
        let due = {
            let mut last = self.last_probe.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|at| at.elapsed() >= PROBE_EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            let mut tx = self.write().await?;
            let result = sqlx::query(
                "INSERT INTO heartbeat (id, at) VALUES (1, ?)
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            )
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map(|_| ());
            tx.finish(Entries::default(), result).await?;
        }
        match self.health.last_fault() {
            Some(fault) => Err(sqlx::Error::Io(std::io::Error::other(fault))),
            None => Ok(()),
        }
    }

    /// Walks the history's hash chain (`proxy verify-ledger`): how many lines match, and the
    /// first that does not.
    pub async fn verify_chain(&self) -> Result<ChainReport, sqlx::Error> {
        chain::verify(&self.readers).await
    }

    /// The history lines written in `[since, until)` with their hashes (`proxy export --chain`).
    pub async fn export_chain(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ChainEntry>, sqlx::Error> {
        chain::export(&self.readers, since, until).await
    }

    pub async fn close(&self) {
        self.readers.close().await;
        self.pool.close().await;
    }
}

/// One row of `refunds`: an attempt made through the proxy, or a refund learned from upstream.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefundRow {
    pub key: i64,
    pub attempt_id: Option<AttemptId>,
    pub refund_id: Option<String>,
    pub session_id: String,
    pub origin: Origin,
    pub agent: Option<String>,
    pub amount: i64,
    pub currency: Currency,
    pub full_refund: bool,
    pub reason: Option<RefundReason>,
    pub note: Option<Note>,
    pub idempotency_key: Option<IdempotencyKey>,
    pub request_hash: Option<String>,
    /// Refund ids that existed upstream before this attempt was sent.
    pub refunds_before: Json<Vec<String>>,
    pub state: RefundState,
    pub error_code: Option<ErrorCode>,
    pub error_detail: Option<String>,
    pub polls: i64,
    pub next_poll_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// When `session/status` first showed no refund for this unresolved attempt.
    #[sqlx(default)]
    pub absent_since: Option<i64>,
    /// The last contradiction Smart Glocal reported about this refund, if any.
    #[sqlx(default)]
    pub attention: Option<String>,
    /// The requesting agent's role, from their token.
    #[sqlx(default)]
    pub role: Option<String>,
}

impl RefundRow {
    pub fn money(&self) -> Money {
        // Only checked amounts are written (`money::to_stored`); a negative one would be a
        // hand-edited file, shown as 0 rather than as a huge number.
        Money::new(
            shared::money::from_stored(self.amount).unwrap_or(0),
            self.currency,
        )
    }

    pub fn view(&self) -> RefundView {
        RefundView {
            attempt_id: self.attempt_id.clone(),
            refund_id: self
                .refund_id
                .as_deref()
                .and_then(|id| RefundId::parse(id).ok()),
            amount: self.money(),
            state: self.state,
            is_chargeback: self.origin == Origin::Chargeback,
            agent: self.agent.clone(),
            reason: self.reason,
            note: self.note.as_ref().map(|note| note.as_str().to_owned()),
            error_code: self.error_code,
            error_detail: self.error_detail.clone(),
            attention: self.attention.clone(),
            created_at: Some(Timestamp::from_unix_millis(self.created_at)),
            finished_at: self.finished_at.map(Timestamp::from_unix_millis),
        }
    }
}

/// Rows as the ledger would hold them, for the unit tests of what reads them.
#[cfg(test)]
pub(crate) mod test_rows {
    use super::*;

    /// An attempt through the proxy of `amount` USD cents, in `state`, made at `created_at`.
    pub fn attempt(key: i64, amount: i64, state: RefundState, created_at: i64) -> RefundRow {
        RefundRow {
            key,
            attempt_id: Some(AttemptId::from_random(key.unsigned_abs().into())),
            refund_id: None,
            session_id: "ps_1".into(),
            origin: Origin::Proxy,
            agent: Some("alice".into()),
            amount,
            currency: Currency::parse("usd").unwrap(),
            full_refund: false,
            reason: Some(RefundReason::Duplicate),
            note: Note::parse("charged twice").unwrap(),
            idempotency_key: None,
            request_hash: None,
            refunds_before: Json(Vec::new()),
            state,
            error_code: None,
            error_detail: None,
            polls: 0,
            next_poll_at: None,
            created_at,
            updated_at: created_at,
            finished_at: None,
            absent_since: None,
            attention: None,
            role: None,
        }
    }
}
