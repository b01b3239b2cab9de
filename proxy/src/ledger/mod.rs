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

mod journal;
mod refunds;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use shared::api::{RefundReason, RefundState, RefundView};
use shared::{Currency, Money, RefundId, Timestamp};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

pub use journal::ExportRow;
pub use refunds::{Applied, ApplyOutcome, Change, Inserted, NewAttempt};
pub use webhooks::{VerifiedWebhook, WebhookAction, WebhookWriter};

/// Embedded at build time; applied by [`Ledger::open`].
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Read-only connections for look-ups; two keep a slow export from blocking the others.
const READERS: u32 = 2;

/// Handle to the ledger; cheap to clone.
#[derive(Clone, Debug)]
pub struct Ledger {
    /// The single connection every write transaction runs on.
    pool: SqlitePool,
    /// Look-ups outside any transaction: snapshots of what is committed.
    readers: SqlitePool,
}

/// Milliseconds since the Unix epoch, the ledger's clock.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Ledger {
    /// Opens (creating if needed) the SQLite file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed attempt survives even a power cut, not only `kill -9`.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        // Opened after the migrations, so the WAL exists and the schema is there to read.
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { pool, readers })
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map(|_| ())
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
    pub attempt_id: Option<String>,
    pub refund_id: Option<String>,
    pub session_id: String,
    /// `proxy`, `elsewhere` or `chargeback`.
    pub origin: String,
    pub agent: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub full_refund: bool,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub refunds_before: String,
    pub state: String,
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    pub polls: i64,
    pub next_poll_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

pub(crate) fn currency(code: &str) -> Currency {
    // Codes are written by this module from a parsed `Currency`; XXX ("no currency") only
    // appears if someone edited the file by hand.
    Currency::parse(code).unwrap_or_else(|_| Currency::parse("xxx").expect("XXX is ISO 4217"))
}

impl RefundRow {
    pub fn state(&self) -> RefundState {
        RefundState::parse(&self.state).unwrap_or(RefundState::Unknown)
    }

    pub fn money(&self) -> Money {
        Money::new(self.amount.max(0) as u64, currency(&self.currency))
    }

    /// Refund ids that existed upstream before this attempt was sent.
    pub fn refunds_before(&self) -> Vec<String> {
        serde_json::from_str(&self.refunds_before).unwrap_or_default()
    }

    pub fn view(&self) -> RefundView {
        RefundView {
            attempt_id: self.attempt_id.clone(),
            refund_id: self
                .refund_id
                .as_deref()
                .and_then(|id| RefundId::parse(id).ok()),
            amount: self.money(),
            state: self.state(),
            is_chargeback: self.origin == "chargeback",
            agent: self.agent.clone(),
            reason: self.reason.as_deref().and_then(RefundReason::parse),
            note: self.note.clone(),
            error_code: self
                .error_code
                .as_deref()
                .and_then(|code| serde_json::from_value(serde_json::Value::from(code)).ok()),
            error_detail: self.error_detail.clone(),
            created_at: Some(Timestamp::from_unix_millis(self.created_at)),
            finished_at: self.finished_at.map(Timestamp::from_unix_millis),
        }
    }
}
