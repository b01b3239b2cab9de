//! The durable refund ledger: every SQL statement of the proxy lives under this module.
//!
//! SQLite through rusqlite, WAL, migrations embedded and applied on open (by sqlx's
//! migrator). The writer is a single connection on purpose: every read-modify-write runs
//! inside one transaction on it, so concurrent webhooks, requests and reconciliation are
//! serialised by the database itself and never interleave. Plain reads go to separate
//! read-only connections: in WAL mode a reader sees every transaction committed before it
//! started and never waits for the writer's sync to disk, so a look-up does not queue behind
//! a commit. Statements run on the calling task's thread; only a commit's sync goes to a
//! blocking thread (see [`sqlite`]).
//!
//! - [`refunds`]: attempts recorded before the upstream call, state transitions that never
//!   go backwards, matching Smart Glocal's refunds to attempts.
//! - [`journal`]: events (for SSE replay), history, webhooks received, CSV export.
//! - [`webhooks`]: verified webhooks applied and recorded with one commit per batch.
//! - [`writer`]: write transactions that fail closed, and the ledger's [`Health`].
//! - [`sqlite`]: SQLite's connections, statements on the caller's thread.
//! - [`revocations`]: agents whose tokens issued until a moment are refused.
//! - [`sql`]: each statement written once, run on either engine.
//! - [`listen`]: on PostgreSQL, every replica's events, published in `seq` order.
//! - [`locks`]: one refund decided at a time per payment, across every replica.
//!
//! **PostgreSQL** (a `postgres://` URL in `database`) is for merchants who run more than one
//! proxy on one ledger. The same statements run there; what SQLite's single writer gives
//! within one process, the database gives across processes: every write transaction takes
//! one advisory lock (writes are one at a time, so `seq`, history ids and the hash chain
//! follow commit order), each payment's refund flow holds an advisory lock of its own, and
//! each commit with events sends a `NOTIFY` that every replica's listener fans out.

mod chain;
mod journal;
mod kinds;
mod listen;
mod locks;
mod refunds;
mod revocations;
mod sql;
mod sqlite;
mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::api::{ErrorCode, RefundEvent, RefundReason, RefundState, RefundView};
use shared::{AttemptId, Currency, IdempotencyKey, Money, Note, RefundId, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::watch;

pub use chain::{BrokenLine, ChainEntry, ChainReport};
pub use journal::{EventsPage, ExportRow, REJECTED_BODY_KEPT};
pub use kinds::{Origin, Source, WebhookOutcome};
pub use locks::{advisory_key, is_lock_wait_over, LockError, PaymentGuard, PaymentLocks};
pub use refunds::{
    carries_key, matching_order, ApplyOutcome, Approved, Change, Inserted, NewAttempt,
};
pub use sql::{insert_text, recurring_chunks, Engine};
pub use sqlite::{settings as sqlite_settings, STATEMENT_CACHE as SQLITE_STATEMENT_CACHE};
pub use webhooks::{VerifiedWebhook, WebhookAction, WebhookWriter};
pub use writer::{is_storage_fault, Health, HealthCounts};

use journal::Entries;
use sql::{Exec, FromRecord, Record};
use writer::WriteTx;

/// Embedded at build time; applied by [`Ledger::open`] and [`Ledger::connect`].
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long [`Ledger::open`] waits for another process's lock on the file.
pub const OPEN_PATIENCE: Duration = Duration::from_secs(5);

/// Readiness probes write at most this often; `/readyz` in between answers from [`Health`].
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// A probe's write still under way after this says the ledger is not ready: a write takes
/// milliseconds, a synced commit on a busy disk a few hundred.
const PROBE_STALLED: Duration = Duration::from_secs(2);

/// Where the ledger is: the `database` setting.
#[derive(Clone)]
pub enum Database {
    /// A SQLite file (a path, or a `sqlite:` URL): the embedded default, one process.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database shared by every replica.
    Postgres(Box<PostgresTarget>),
}

/// How to reach PostgreSQL. Its `Debug` never shows the password.
#[derive(Clone)]
pub struct PostgresTarget {
    pub options: PgConnectOptions,
    /// Connections each replica keeps at most for its queries (the listener holds one), and
    /// as many again for payments' locks: that many refunds are in flight at once, the rest
    /// wait their turn.
    pub pool_size: u32,
    /// How long getting a connection may take before the call fails (503).
    pub connect_timeout: Duration,
    /// How long a refund waits for its payment's lock held by another replica before it is
    /// answered `409 refund_in_flight` (see [`locks`]). [`Database::with_lock_wait`].
    pub lock_wait: Duration,
}

/// How long PostgreSQL waits, with nothing heard from a replica's connection, before it
/// probes it, between probes, and how many unanswered probes close it (with the payments'
/// locks it holds): a replica whose host died frees its locks in about 25 s, where Linux's
/// defaults take over two hours.
const KEEPALIVES: [(&str, &str); 3] = [
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
];

impl Database {
    /// A path or `sqlite:` URL, or a `postgres://` / `postgresql://` URL. A URL that does
    /// not parse is refused without being echoed (it may hold a password).
    pub fn parse(text: &str, pool_size: u32, connect_timeout: Duration) -> Result<Self, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(text).map_err(|_| {
                "not a valid PostgreSQL URL (postgres://user:password@host:port/database)"
                    .to_owned()
            })?;
            return Ok(Database::Postgres(Box::new(PostgresTarget {
                options,
                pool_size: pool_size.max(2),
                connect_timeout,
                lock_wait: Duration::from_secs(60),
            })));
        }
        let path = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
            .unwrap_or(text);
        if path.is_empty() {
            return Err("empty: a SQLite file path or a postgres:// URL".into());
        }
        Ok(Database::Sqlite(path.into()))
    }

    /// The same database, a refund waiting at most `wait` for its payment's lock on
    /// PostgreSQL (60 s unless said); nothing changes on SQLite, whose locks are in-process.
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        if let Database::Postgres(target) = &mut self {
            target.lock_wait = wait;
        }
        self
    }

    /// [`Database::describe`], a SQLite path made absolute: a relative one is another ledger
    /// from another working directory, so logs and errors name it whole.
    pub fn describe_whole(&self) -> String {
        match self {
            Database::Sqlite(path) => std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
            Database::Postgres(_) => self.describe(),
        }
    }

    /// What to show in logs: the file, or `postgres://user@host:port/database`.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(target) => {
                let o = &target.options;
                format!(
                    "postgres://{}@{}:{}/{}",
                    o.get_username(),
                    o.get_host(),
                    o.get_port(),
                    o.get_database().unwrap_or_default()
                )
            }
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Database::Sqlite(_) => Engine::Sqlite,
            Database::Postgres(_) => Engine::Postgres,
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The lock pool's connections: [`KEEPALIVES`], and `lock_timeout` bounding the wait for a
/// payment's lock (a lock wait past it fails with SQLSTATE 55P03). PostgreSQL takes at most
/// `i32::MAX` ms (about 24 days); a longer wait (a huge `upstream_timeout_ms`) is that.
fn lock_options(target: &PostgresTarget) -> PgConnectOptions {
    let wait = format!(
        "{}ms",
        target.lock_wait.as_millis().clamp(1, i32::MAX as u128)
    );
    target
        .options
        .clone()
        .options(KEEPALIVES)
        .options([("lock_timeout", wait.as_str())])
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&Database::Postgres(Box::new(self.clone())).describe())
    }
}

/// The ledger's connections.
#[derive(Clone, Debug)]
enum Store {
    Sqlite {
        /// The single connection every write transaction runs on.
        writer: Arc<sqlite::Writer>,
        /// Look-ups outside any transaction: snapshots of what is committed.
        readers: Arc<sqlite::Readers>,
    },
    Postgres(Arc<PgStore>),
}

/// PostgreSQL's side of the ledger: one pool for everything, and how far this replica has
/// published the events every replica commits.
#[derive(Debug)]
struct PgStore {
    pool: PgPool,
    /// Connections that hold payments' advisory locks (see [`locks`]).
    lock_pool: PgPool,
    /// This process's writers, one at a time (see `writer`).
    writing: tokio::sync::Mutex<()>,
    /// The last `seq` this replica's listener published (see [`listen`]).
    published: watch::Sender<i64>,
    /// Whether a listener runs (a ledger opened by `proxy revoke` has none to wait for).
    listening: std::sync::atomic::AtomicBool,
}

impl PgStore {
    /// Waits (a little) until this replica has published `seq`, so a write is answered after
    /// its events are announced, as on SQLite. Past the wait the events are in the ledger
    /// all the same; streams get them when the listener catches up.
    async fn published_through(&self, seq: i64) {
        if !self.listening.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let mut published = self.published.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            published.wait_for(|&published| published >= seq),
        )
        .await;
    }
}

/// Handle to the ledger; cheap to clone.
#[derive(Clone, Debug)]
pub struct Ledger {
    store: Store,
    health: Arc<Health>,
    last_probe: Arc<Mutex<Probe>>,
    /// Where every committed event goes (the live streams), in commit order.
    publisher: Publisher,
}

/// What the ledger announces each committed [`RefundEvent`] to, and each state a refund
/// entered in a commit of this process's own (every replica publishes every replica's events
/// on PostgreSQL, and an event may change no state: neither may be what is counted).
#[derive(Clone)]
struct Publisher {
    publish: Arc<dyn Fn(RefundEvent) + Send + Sync>,
    entered: Arc<dyn Fn(RefundState) + Send + Sync>,
}

impl Publisher {
    fn none() -> Self {
        Publisher {
            publish: Arc::new(|_| {}),
            entered: Arc::new(|_| {}),
        }
    }

    fn publish(&self, event: RefundEvent) {
        (self.publish)(event)
    }

    fn entered(&self, state: RefundState) {
        (self.entered)(state)
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

/// An empty file at `path` that only its owner may read or write; one there already is left
/// as it is (another proxy made it first).
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        opened => opened.map(drop),
    }
}

/// The file a serving proxy holds locked beside its SQLite ledger (`proxy.sqlite.lock`), in
/// the ledger's directory as the file system resolves it: a ledger reached through a symbolic
/// link to its directory is the same ledger, with the same lock.
pub fn lock_path(ledger: &Path) -> PathBuf {
    let mut name = ledger.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    let dir = ledger.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_owned())
        .join(name)
}

/// Holds the SQLite ledger at `path` for one serving proxy, for as long as the file returned
/// is open (the process's life: the kernel lets go of it however the process ends, `kill -9`
/// included). On SQLite a payment's refunds are one at a time only within a process (its
/// locks are in memory), and a proxy starting marks every attempt still `pending` in the file
/// as interrupted: a second proxy on the same file, a mistaken second instance or a deploy's
/// overlap, would refund beside the first and take the first's refunds under way for dead.
/// It is refused, naming the process that holds the file. Several proxies share a PostgreSQL
/// ledger instead (`docs/LEDGER.md`). `proxy revoke`, `export` and `verify-ledger` take no
/// such lock: they may run beside the proxy.
pub fn hold_sqlite_ledger(path: &Path) -> Result<std::fs::File, String> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("the ledger's directory {}: {e}", dir.display()))?;
    }
    let lock = lock_path(path);
    let shown = std::path::absolute(&lock).unwrap_or_else(|_| lock.clone());
    let say = |e: std::io::Error| format!("the ledger's lock file {}: {e}", shown.display());
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // Not through a symbolic link someone put in its place: the pid written into it
        // would overwrite whatever file the link names.
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock)
        .map_err(say)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let by = if holder.chars().all(|c| c.is_ascii_digit()) && !holder.is_empty() {
                format!("another proxy (pid {holder})")
            } else {
                "another proxy".to_owned()
            };
            return Err(format!(
                "the ledger {} is in use by {by}: one proxy serves from a SQLite ledger at a time; stop the other first, or share a PostgreSQL ledger between several",
                Database::Sqlite(path.to_owned()).describe_whole()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(say(e)),
    }
    // Who holds it, for the next one's refusal; the lock is what counts, so a pid that cannot
    // be written (a full disk) does not stop the start.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()));
    Ok(file)
}

/// Warns when the SQLite ledger at `path` is readable or writable by others than its owner (a
/// file restored or copied without its permissions): it names agents and holds their notes.
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let whole = Database::Sqlite(path.to_owned()).describe_whole();
            tracing::warn!(path = %whole, mode = %format!("{mode:o}"), "the ledger file is open to other users of this machine: it names agents and holds their notes; `chmod 600` it");
        }
    }
}

/// The readiness probe's write: when it last began, and whether it is still under way.
#[derive(Debug, Default)]
struct Probe {
    last: Option<Instant>,
    running: bool,
}

/// Marks the probe's write over, however its task ends.
struct ProbeDone(Arc<Mutex<Probe>>);

impl Drop for ProbeDone {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).running = false;
    }
}

/// The migrations' connection (sqlx's migrator runs them), with the settings every other
/// connection gets in `sqlite::connect`: WAL, every commit synced (FULL: a committed attempt
/// survives even a power cut, not only `kill -9`), a 5 s busy timeout, foreign keys on.
fn migration_options(path: &Path) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
        .pragma("cache_size", format!("-{PAGE_CACHE_KIB}")))
}

/// The page cache of each of the proxy's SQLite connections (the writer and the readers),
/// KiB; SQLite's default is 2,000. The ledger's reads are index look-ups (a payment's rows,
/// a key, the chain's head): the b-trees' upper pages and the newest leaves, well inside
/// this; the rest comes from the operating system's file cache, shared by every connection.
/// With SQLite's default the proxy's memory grew with the ledger file until each of its three
/// connections held 2 MB: in the sustained-load bench, steps of 1–2 MB late in a run (+16.8 %
/// over its last 30 s in one of four runs); with 256 KiB, +4.7 to +8.8 % in five runs, and
/// the refund path's latency unchanged (BENCHMARKS.md's notes). `proxy export` and
/// `verify-ledger` read with the same bound.
pub const PAGE_CACHE_KIB: u32 = 256;

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

    /// Opens the ledger `database` names: [`open`](Self::open) for a SQLite file, else
    /// connects to PostgreSQL and applies its pending migrations (one replica at a time:
    /// the migrator holds an advisory lock).
    pub async fn connect(database: &Database) -> Result<Self, sqlx::Error> {
        let ledger = Self::connect_migrated(database).await?;
        let renamed = ledger.normalise_agent_ids().await?;
        if renamed > 0 {
            tracing::info!(
                renamed,
                "agent ids in the ledger now trimmed and in lower case, as tokens are read"
            );
        }
        Ok(ledger)
    }

    async fn connect_migrated(database: &Database) -> Result<Self, sqlx::Error> {
        match database {
            Database::Sqlite(path) => Self::open(path).await,
            Database::Postgres(target) => {
                let ledger = Self::connect_postgres(target).await?;
                if let Store::Postgres(pg) = &ledger.store {
                    let empty: bool = ledger
                        .read()
                        .fetch_one(&sql::Sql::new("SELECT to_regclass('refunds') IS NULL"))
                        .await?;
                    if empty {
                        // As for a SQLite file that is not there: right on a first start;
                        // on any other, the `database` setting names another database than
                        // the one with every attempt, key and allowance so far.
                        tracing::warn!(database = %database.describe_whole(), "no ledger in this database: a new, empty one is created");
                    }
                    PG_MIGRATOR.run(&pg.pool).await?;
                    let last: i64 = ledger
                        .read()
                        .fetch_one(&sql::Sql::new("SELECT COALESCE(MAX(seq), 0) FROM events"))
                        .await?;
                    pg.published.send_replace(last);
                }
                Ok(ledger)
            }
        }
    }

    async fn connect_postgres(target: &PostgresTarget) -> Result<Self, sqlx::Error> {
        let options = || {
            PgPoolOptions::new()
                .max_connections(target.pool_size)
                .acquire_timeout(target.connect_timeout)
                // A connection PostgreSQL dropped (a restart) is found out before it is used.
                .test_before_acquire(true)
        };
        let pool = options()
            // A commit is on disk when it returns: an attempt must be before its refund is
            // sent, a webhook before its 200. A database or role set to
            // `synchronous_commit = off` would answer first and could lose both in a crash;
            // stronger settings (`remote_apply`…) are kept as they are.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    let (setting,): (String,) =
                        sqlx::query_as("SELECT current_setting('synchronous_commit')")
                            .fetch_one(&mut *conn)
                            .await?;
                    if setting == "off" {
                        sqlx::query("SET synchronous_commit = on")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(target.options.clone().options(KEEPALIVES))
            .await?;
        let lock_pool = options().connect_lazy_with(lock_options(target));
        Ok(Self {
            store: Store::Postgres(Arc::new(PgStore {
                pool,
                lock_pool,
                writing: tokio::sync::Mutex::new(()),
                published: watch::Sender::new(0),
                listening: false.into(),
            })),
            health: Arc::default(),
            last_probe: Arc::default(),
            publisher: Publisher::none(),
        })
    }

    /// Which database this ledger is on.
    pub fn engine(&self) -> Engine {
        match self.store {
            Store::Sqlite { .. } => Engine::Sqlite,
            Store::Postgres(_) => Engine::Postgres,
        }
    }

    /// Where look-ups run: snapshots of what is committed.
    fn read(&self) -> Exec<'_> {
        match &self.store {
            Store::Sqlite { readers, .. } => Exec::SqliteReaders(readers),
            Store::Postgres(pg) => Exec::PgPool(&pg.pool),
        }
    }

    async fn open_once(path: &Path) -> Result<Self, sqlx::Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        if !path.exists() {
            // Right on a first start; on any other, the `database` setting (or the working
            // directory a relative path depends on) is not what it was, and the ledger with
            // every attempt, key and allowance so far is somewhere else.
            let whole = Database::Sqlite(path.to_owned()).describe_whole();
            tracing::warn!(path = %whole, "no ledger at this path: a new, empty one is created");
            // Readable by its owner alone: it names agents and holds their notes. SQLite gives
            // the WAL and its index the same permissions when it makes them.
            create_private(path)?;
        } else {
            warn_if_shared(path);
        }
        let options = migration_options(path)?;
        // The writer first: a file SQLite could only open read-only is refused here.
        let writer = Arc::new(sqlite::Writer::open(path).await?);
        // The migrations run through sqlx, on a connection of their own closed after them.
        let migrations = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let migrated = MIGRATOR.run(&migrations).await;
        migrations.close().await;
        migrated?;
        // Opened when first read, after the migrations: the WAL exists and the schema is there.
        let readers = Arc::new(sqlite::Readers::new(path));
        let ledger = Self {
            store: Store::Sqlite { writer, readers },
            health: Arc::default(),
            last_probe: Arc::default(),
            publisher: Publisher::none(),
        };
        // History written before the chain existed is sealed once, in order, through the
        // same fail-closed write transaction as every other write.
        let mut tx = ledger.write().await?;
        let sealed = chain::seal_unhashed(&mut tx).await;
        tx.finish(Entries::default(), sealed).await?;
        Ok(ledger)
    }

    /// The ledger a proxy serves from, opened to write beside it (`proxy revoke`): never
    /// created and never migrated. A command run without the proxy's config must not write to
    /// a fresh, empty ledger of its own and report success, nor move the schema of a shared
    /// PostgreSQL ledger under replicas still running an older version.
    pub async fn open_existing(database: &Database) -> Result<Self, sqlx::Error> {
        let refuse = |why: String| sqlx::Error::Configuration(why.into());
        let described = database.describe_whole();
        if let Database::Sqlite(path) = database {
            if !path.is_file() {
                return Err(refuse(format!(
                    "no ledger at {described}: name the one the proxy serves from (-c its config file, or --database)"
                )));
            }
        }
        let (migrator, reader) = match database {
            Database::Sqlite(_) => (&MIGRATOR, Self::open_read_only(database).await?),
            Database::Postgres(target) => (&PG_MIGRATOR, Self::connect_postgres(target).await?),
        };
        let applied = reader
            .read()
            .fetch_one::<i64>(&sql::Sql::new(
                "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM _sqlx_migrations WHERE success",
            ))
            .await;
        reader.close().await;
        let latest = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        match applied {
            // Current already: opening it the usual way migrates nothing.
            Ok(version) if version == latest => Self::connect(database).await,
            Ok(version) => Err(refuse(format!(
                "the ledger at {described} is at schema version {version}, this proxy's is {latest}: run the command with the proxy version that serves it"
            ))),
            // No migrations table (SQLite's "no such table", PostgreSQL's 42P01): some other
            // database. Anything else (unreachable, not allowed) is said as it is.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("42P01") || e.message().contains("no such table") =>
            {
                Err(refuse(format!("{described} is not a proxy's ledger")))
            }
            Err(e) => Err(e),
        }
    }

    /// Opens an existing ledger to read only (`proxy export`, `proxy verify-ledger`): no
    /// migration, no write, no journal-mode change, so it runs beside a busy proxy without
    /// taking a lock (changing the journal mode would, and fails at once under load).
    pub async fn open_read_only(database: &Database) -> Result<Self, sqlx::Error> {
        let path = match database {
            Database::Sqlite(path) => path,
            // Reads beside the replicas, like any other client: no migration, no write.
            Database::Postgres(target) => return Self::connect_postgres(target).await,
        };
        // Opened now, so a file that is not there (or not a ledger) fails here.
        let readers = Arc::new(sqlite::Readers::new(path));
        Exec::SqliteReaders(&readers)
            .fetch_one::<i64>(&sql::Sql::new("SELECT COUNT(*) FROM sqlite_master"))
            .await?;
        Ok(Self {
            store: Store::Sqlite {
                // Writes through it fail: SQLite opens the file read-only.
                writer: Arc::new(sqlite::Writer::read_only(path)),
                readers,
            },
            health: Arc::default(),
            last_probe: Arc::default(),
            publisher: Publisher::none(),
        })
    }

    /// A consistent copy of the SQLite ledger at `target`, taken while the proxy serves from
    /// it (`proxy backup`): SQLite's `VACUUM INTO` on a read-only connection, one read
    /// transaction, so the copy is the ledger as of one commit, WAL included; writers go on
    /// meanwhile. A file copied with `cp` beside a running proxy may miss commits still in the
    /// WAL, or catch a checkpoint half-written. `target` must not exist: it is made readable
    /// by its owner alone, as the ledger is. A PostgreSQL ledger is backed up by PostgreSQL's
    /// own tools (`pg_dump`).
    pub async fn backup_into(&self, target: &Path) -> Result<(), String> {
        let Store::Sqlite { readers, .. } = &self.store else {
            return Err("a PostgreSQL ledger is backed up with PostgreSQL's own tools (pg_dump, or the cluster's base backups), not by the proxy".into());
        };
        // Absolute: SQLite would read a name starting `file:` as a URI.
        let target =
            std::path::absolute(target).map_err(|e| format!("{}: {e}", target.display()))?;
        if target.symlink_metadata().is_ok() {
            return Err(format!(
                "{} is there already: a backup never overwrites",
                target.display()
            ));
        }
        // Made beside it under another name, and given its name only once whole: a copy cut
        // short (Ctrl-C, a full disk) is never where a restore would look.
        let mut partial = target.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let say = |e: std::io::Error| format!("{}: {e}", partial.display());
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => format!(
                    "{} is there already (a backup cut short?): remove it first",
                    partial.display()
                ),
                _ => say(e),
            })?;
        let name = partial
            .to_str()
            .ok_or_else(|| format!("{}: not a UTF-8 path", partial.display()))?;
        let copied = Exec::SqliteReaders(readers)
            .execute(&sql::Sql::new("VACUUM INTO ?").bind(name.to_owned()))
            .await;
        let named = copied
            .map_err(|e| format!("copying the ledger into {}: {e}", partial.display()))
            // On disk before it takes its name: `VACUUM INTO` does not sync what it writes.
            .and_then(|_| {
                std::fs::File::open(&partial)
                    .and_then(|f| f.sync_all())
                    .map_err(say)
            })
            .and_then(|()| {
                // A link never replaces a file that appeared meanwhile; a file system without
                // links (vfat, some network mounts) gets a rename after the check above.
                std::fs::hard_link(&partial, &target)
                    .or_else(|_| std::fs::rename(&partial, &target))
                    .map_err(|e| format!("{}: {e}", target.display()))
            });
        let _ = std::fs::remove_file(&partial);
        named
    }

    /// The same ledger, announcing each event it commits to `publish`, in commit order (on
    /// PostgreSQL, every replica's events, from a listener started here: see [`listen`]), and
    /// each state a refund entered in one of its own commits to `entered`.
    pub fn publishing_to(
        mut self,
        publish: impl Fn(RefundEvent) + Send + Sync + 'static,
        entered: impl Fn(RefundState) + Send + Sync + 'static,
    ) -> Self {
        self.publisher = Publisher {
            publish: Arc::new(publish),
            entered: Arc::new(entered),
        };
        if let Store::Postgres(pg) = &self.store {
            pg.listening
                .store(true, std::sync::atomic::Ordering::Release);
            listen::spawn(pg.clone(), self.publisher.clone());
        }
        self
    }

    /// Per-payment locks on this ledger: in-process, and on PostgreSQL across replicas too.
    pub fn payment_locks(&self) -> PaymentLocks {
        match &self.store {
            Store::Sqlite { .. } => PaymentLocks::in_process(),
            Store::Postgres(pg) => PaymentLocks::shared(pg.lock_pool.clone()),
        }
    }

    /// A write transaction on the writer connection (see [`writer`]).
    async fn write(&self) -> Result<WriteTx<'_>, sqlx::Error> {
        WriteTx::begin(self).await
    }

    /// Whether the ledger can write, as its last write found it.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Whether the readiness probe's write has been under way for [`PROBE_STALLED`] or more:
    /// the ledger's writes are stuck behind something, though none has failed yet.
    pub fn writes_stalled(&self) -> bool {
        let probe = self.last_probe.lock().unwrap_or_else(|p| p.into_inner());
        probe.running && probe.last.is_some_and(|at| at.elapsed() >= PROBE_STALLED)
    }

    /// Whether the ledger can write now (`/readyz`): the last write's outcome, checked by a
    /// tiny write of its own at most every [`PROBE_EVERY`].
    pub async fn probe(&self) -> Result<(), sqlx::Error> {
        let stalled = || {
            sqlx::Error::Io(std::io::Error::other(format!(
                "a write has waited more than {} s",
                PROBE_STALLED.as_secs()
            )))
        };
        let due = {
            let mut probe = self.last_probe.lock().unwrap_or_else(|p| p.into_inner());
            // Behind a writer that never finishes (a disk that hangs, another replica frozen
            // holding the writers' lock), no write fails, and the last one's outcome would
            // say ready for ever: a probe still under way this long says not.
            if probe.running && probe.last.is_some_and(|at| at.elapsed() >= PROBE_STALLED) {
                return Err(stalled());
            }
            // (`writes_stalled` asks the same, for `/metrics`.)
            // One at a time: behind a stalled writer, probes would otherwise queue a write
            // each, every `PROBE_EVERY`, ahead of the refunds' own.
            let due = !probe.running && probe.last.is_none_or(|at| at.elapsed() >= PROBE_EVERY);
            if due {
                *probe = Probe {
                    last: Some(Instant::now()),
                    running: true,
                };
            }
            due
        };
        if due {
            // In a task of its own: a `/readyz` whose caller hangs up (a load balancer's short
            // timeout) would otherwise cancel the write mid-commit, and with it the writer's
            // connection (`writer`), and leave the next probe not yet due.
            let ledger = self.clone();
            let beat = tokio::spawn(async move {
                let _done = ProbeDone(ledger.last_probe.clone());
                let mut tx = ledger.write().await?;
                tx.proves_writable();
                let beat = sql::Sql::new(
                    "INSERT INTO heartbeat (id, at) VALUES (1, ?)
                     ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                )
                .bind(now_ms());
                let result = tx.exec().execute(&beat).await.map(|_| ());
                tx.finish(Entries::default(), result).await
            });
            // Waited for no longer than a load balancer's probe would.
            tokio::time::timeout(PROBE_STALLED, beat)
                .await
                .map_err(|_| {
                    tracing::warn!(
                        "the readiness probe's write has waited more than {} s: not ready until it ends",
                        PROBE_STALLED.as_secs()
                    );
                    stalled()
                })?
                .map_err(|e| sqlx::Error::Io(std::io::Error::other(e.to_string())))??;
        }
        match self.health.last_fault() {
            Some(fault) => Err(sqlx::Error::Io(std::io::Error::other(fault))),
            None => Ok(()),
        }
    }

    /// Walks the history's hash chain (`proxy verify-ledger`): how many lines match, and the
    /// first that does not.
    pub async fn verify_chain(&self) -> Result<ChainReport, sqlx::Error> {
        chain::verify(self).await
    }

    /// Whether `head`, a chain head held from before (an export's last hash, or what
    /// `verify-ledger` printed), is a line of this ledger's chain. On a chain that verifies,
    /// it is unless lines up to it were removed, or rewritten and hashed anew from some line
    /// on: what the chain alone cannot show.
    pub async fn chain_holds(&self, head: &str) -> Result<bool, sqlx::Error> {
        if head == chain::GENESIS {
            return Ok(true);
        }
        let lines: i64 = self
            .read()
            .fetch_one(&sql::Sql::new("SELECT COUNT(*) FROM history WHERE hash = ?").bind(head))
            .await?;
        Ok(lines > 0)
    }

    /// The history lines written in `[since, until)` with their hashes (`proxy export --chain`).
    pub async fn export_chain(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<ChainEntry>, sqlx::Error> {
        chain::export(self, since, until).await
    }

    pub async fn close(&self) {
        match &self.store {
            Store::Sqlite { writer, readers } => {
                readers.close();
                writer.close().await;
            }
            Store::Postgres(pg) => {
                pg.lock_pool.close().await;
                pg.pool.close().await;
            }
        }
    }
}

/// One row of `refunds`: an attempt made through the proxy, or a refund learned from upstream.
#[derive(Debug, Clone, PartialEq)]
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
    pub refunds_before: Vec<String>,
    pub state: RefundState,
    pub error_code: Option<ErrorCode>,
    pub error_detail: Option<String>,
    pub polls: i64,
    pub next_poll_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// When `session/status` first showed no refund for this unresolved attempt.
    pub absent_since: Option<i64>,
    /// The last contradiction Smart Glocal reported about this refund, if any.
    pub attention: Option<String>,
    /// The requesting agent's role, from their token.
    pub role: Option<String>,
    /// Its refund id was bound by amount (a refund that named no attempt), not by name.
    pub bound_by_amount: bool,
}

/// An attempt id as stored; one the ledger would never write is a decode error.
fn parse_attempt_id(text: &str) -> Result<AttemptId, &'static str> {
    AttemptId::parse(text).ok_or("not an attempt id")
}

impl FromRecord for RefundRow {
    fn from_record(r: &Record<'_>) -> Result<Self, sqlx::Error> {
        Ok(Self {
            key: r.int("key")?,
            attempt_id: r.opt_parsed("attempt_id", parse_attempt_id)?,
            refund_id: r.opt_text("refund_id")?,
            session_id: r.text("session_id")?,
            origin: r.parsed("origin", Origin::parse)?,
            agent: r.opt_text("agent")?,
            amount: r.int("amount")?,
            currency: r.parsed("currency", Currency::parse)?,
            full_refund: r.bool("full_refund")?,
            reason: r.opt_parsed("reason", str::parse)?,
            note: r.opt_text("note")?.as_deref().and_then(Note::recorded),
            idempotency_key: r.opt_parsed("idempotency_key", IdempotencyKey::parse)?,
            request_hash: r.opt_text("request_hash")?,
            refunds_before: r.parsed("refunds_before", |text| serde_json::from_str(text))?,
            state: r.parsed("state", str::parse)?,
            error_code: r.opt_parsed("error_code", str::parse)?,
            error_detail: r.opt_text("error_detail")?,
            polls: r.int("polls")?,
            next_poll_at: r.opt_int("next_poll_at")?,
            created_at: r.int("created_at")?,
            updated_at: r.int("updated_at")?,
            finished_at: r.opt_int("finished_at")?,
            absent_since: r.opt_int("absent_since")?,
            attention: r.opt_text("attention")?,
            role: r.opt_text("role")?,
            bound_by_amount: r.bool("bound_by_amount")?,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The throwaway cluster the tests start runs with `synchronous_commit = off` (tests need
    /// no disk): the ledger's own sessions still commit to disk before they answer.
    #[tokio::test]
    async fn postgres_sessions_commit_to_disk_whatever_the_databases_setting() {
        let cluster = testkit::postgres::shared().expect("a throwaway PostgreSQL");
        let url = cluster.fresh_database().expect("a fresh database");
        let database = Database::parse(&url, 2, Duration::from_secs(5)).unwrap();
        let ledger = Ledger::connect(&database).await.unwrap();
        let (default,): (String,) =
            sqlx::query_as("SELECT setting FROM pg_settings WHERE name = 'synchronous_commit'")
                .fetch_one(
                    &mut <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                        .await
                        .unwrap(),
                )
                .await
                .unwrap();
        assert_eq!(
            default, "off",
            "the cluster's own setting, which the ledger must not keep"
        );
        let setting: String = ledger
            .read()
            .fetch_one(&sql::Sql::new(
                "SELECT current_setting('synchronous_commit')",
            ))
            .await
            .unwrap();
        assert_eq!(setting, "on");
    }

    /// The value of `PRAGMA {name}` on the connection behind `exec`.
    async fn pragma(exec: Exec<'_>, name: &'static str) -> i64 {
        exec.fetch_one(&sql::Sql::new(format!("PRAGMA {name}")))
            .await
            .unwrap()
    }

    #[test]
    fn lock_connections_bound_the_wait_and_probe_a_silent_peer() {
        let database = Database::parse(
            "postgres://u:p@h/db?options=-c%20search_path%3Dx",
            4,
            Duration::from_secs(1),
        )
        .unwrap()
        .with_lock_wait(Duration::from_millis(2500));
        let Database::Postgres(target) = database else {
            panic!("a PostgreSQL target");
        };
        let options = lock_options(&target);
        let options = options.get_options().unwrap_or_default();
        for set in [
            "-c search_path=x",
            "-c tcp_keepalives_idle=10",
            "-c tcp_keepalives_interval=5",
            "-c tcp_keepalives_count=3",
            "-c lock_timeout=2500ms",
        ] {
            assert!(options.contains(set), "{set} in {options}");
        }
    }

    #[tokio::test]
    async fn every_connection_bounds_its_page_cache() {
        let (_dir, ledger) = test_rows::temporary_ledger().await;
        let bound = -i64::from(PAGE_CACHE_KIB);
        let mut tx = ledger.write().await.unwrap();
        assert_eq!(pragma(tx.exec(), "cache_size").await, bound);
        assert_eq!(
            pragma(tx.exec(), "cache_spill").await,
            0,
            "the writer writes to the disk at COMMIT only, off the task's thread"
        );
        assert_eq!(
            pragma(tx.exec(), "temp_store").await,
            2,
            "the writer's statement journals stay in memory"
        );
        tx.finish(Entries::default(), Ok(())).await.unwrap();
        assert_eq!(pragma(ledger.read(), "cache_size").await, bound);
    }

    /// SQLite's temporary files open with this prefix, and are unlinked at once.
    #[cfg(target_os = "linux")]
    fn open_temporary_files() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().contains("etilqs_"))
            .count()
    }

    /// A statement that changes many rows its transaction had already changed keeps their
    /// old pages (to undo that statement alone) in memory, not in a temporary file written on
    /// the task's thread: what a batch of webhooks' multi-row inserts did, every batch.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_transaction_writes_no_temporary_file() {
        let (_dir, ledger) = test_rows::temporary_ledger().await;
        let mut tx = ledger.write().await.unwrap();
        for _ in 0..300 {
            tx.exec()
                .execute(&sql::Sql::new(
                    "INSERT INTO rejected_webhooks (received_at, verified, reason, raw_body)
                         VALUES (0, FALSE, 'test', zeroblob(1024))",
                ))
                .await
                .unwrap();
        }
        // Every page of the table at once: far past SQLite's 64 KiB before it spills.
        tx.exec()
            .execute(&sql::Sql::new(
                "UPDATE rejected_webhooks SET reason = 'changed'",
            ))
            .await
            .unwrap();
        let open = open_temporary_files();
        tx.finish(Entries::default(), Ok(())).await.unwrap();
        assert_eq!(open, 0, "a statement journal went to a temporary file");
    }
}

/// Rows as the ledger would hold them, for the unit tests of what reads them.
#[cfg(test)]
pub(crate) mod test_rows {
    use super::*;

    /// A ledger of its own, in a directory that lives as long as the first value.
    pub async fn temporary_ledger() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite"))
            .await
            .unwrap();
        (dir, ledger)
    }

    /// Attempt `n` of alice on `session`, `amount` USD cents, about to be sent (`pending`).
    pub fn new_attempt(session: &shared::SessionId, n: u64, amount: u64) -> NewAttempt {
        NewAttempt {
            attempt_id: AttemptId::from_random(n.into()),
            session_id: session.clone(),
            agent: "alice".into(),
            amount: Money::new(amount, Currency::parse("usd").unwrap()),
            full_refund: false,
            reason: RefundReason::Duplicate,
            note: None,
            idempotency_key: shared::IdempotencyKey::parse(&format!("batch-key-000000{n}"))
                .unwrap(),
            request_hash: "h".into(),
            refunds_before: Vec::new(),
            daily_limit: None,
            state: RefundState::Pending,
            role: None,
            token_issued_at: 0,
        }
    }

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
            refunds_before: Vec::new(),
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
            bound_by_amount: false,
        }
    }
}
