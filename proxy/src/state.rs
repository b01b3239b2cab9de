//! The application state every handler, the refund flow and reconciliation share: the
//! ledger, the upstream client, token keys, live events, per-payment locks and metrics,
//! built once at start ([`AppState::new`]) and cloned by reference count.

use std::sync::Arc;

use signing::Verifier;

use crate::auth::TokenKeys;
use crate::config::{Config, ConfigError};
use crate::ledger::{Ledger, PaymentLocks, WebhookWriter};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::upstream::Upstream;

/// Everything a handler needs; cheap to clone (one reference count: the router clones its
/// state for every request).
#[derive(Clone)]
pub struct AppState(Arc<Components>);

/// What [`AppState`] is made of; its fields read as the state's own (`state.ledger`).
pub struct Components {
    pub config: Arc<Config>,
    pub upstream: Upstream,
    pub ledger: Ledger,
    pub verifier: Verifier,
    pub tokens: TokenKeys,
    /// Refund updates for SSE subscribers; the ledger's `events` table is the durable copy.
    pub live: Live,
    /// Verified webhooks go to the ledger through this group-commit writer.
    pub webhooks: WebhookWriter,
    pub locks: PaymentLocks,
    pub metrics: Arc<Metrics>,
    /// Requests per agent on the API (see [`rate_limit`]).
    pub rate_limit: RateLimiter,
    /// Webhooks whose signature failed, kept for audit (see [`REJECTED_KEPT_PER_MINUTE`]).
    pub rejected_audit: RateLimiter,
    /// Webhook bodies past `body_limit_bytes` being read (see `routes::webhooks::LARGE_AT_ONCE`).
    pub large_bodies: tokio::sync::Semaphore,
    /// Refunds and approval decisions under way, each in a task of its own
    /// (`refund_flow::serialised`): a stop waits for them (`serve::run_until`).
    pub refunds: tokio_util::task::TaskTracker,
    /// Cancelled when the proxy begins to stop: a refund still waiting for its payment's lock
    /// then gives up (nothing of it was recorded or sent) instead of starting a call.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// How many webhooks with a bad signature a minute are kept in the ledger's audit table (10 a
/// second, in bursts of 150). Anyone can post to the webhook route, and each keep is a
/// synced commit on the one writer that refunds also need; a flood beyond this is counted
/// (`proxy_anomalies_total{kind="rejected_webhook_not_kept"}`), answered 401 all the same, and
/// cannot push the record of earlier forgeries out of the table faster than this.
pub const REJECTED_KEPT_PER_MINUTE: u32 = 600;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the ledger (setting `database`) cannot be opened: {0}")]
    Ledger(#[from] sqlx::Error),
    #[error("the ledger (setting `database` = {database}) cannot be opened: {source}")]
    LedgerAt {
        database: String,
        source: sqlx::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl AppState {
    /// Opens the ledger and builds the upstream client.
    pub async fn new(config: Config) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::default());
        let live = Live::new();
        // The ledger announces every event it commits, in commit order: nobody else publishes.
        let opened = Ledger::connect(&config.database).await;
        let ledger = opened
            .map_err(|source| StartError::LedgerAt {
                database: config.database.describe_whole(),
                source,
            })?
            .publishing_to(
                {
                    let live = live.clone();
                    move |event| live.publish(event)
                },
                {
                    let metrics = metrics.clone();
                    move |state| metrics.count_refund_state(state.as_str())
                },
            );
        let upstream = Upstream::new(
            &config.upstream_url,
            &config.project,
            config.signer.clone(),
            config.upstream_timeout,
            metrics.clone(),
        );
        let webhooks = ledger.webhook_writer();
        let locks = ledger.payment_locks();
        Ok(Self(Arc::new(Components {
            upstream,
            ledger,
            verifier: config.verifier.clone(),
            tokens: TokenKeys::new(&config.agent_token_secret)
                .with_max_ttl(config.max_token_ttl.as_secs()),
            live,
            webhooks,
            locks,
            metrics,
            rate_limit: RateLimiter::new(config.rate_limit_per_minute),
            rejected_audit: RateLimiter::new(REJECTED_KEPT_PER_MINUTE),
            large_bodies: tokio::sync::Semaphore::new(crate::routes::webhooks::LARGE_AT_ONCE),
            refunds: tokio_util::task::TaskTracker::new(),
            stopping: tokio_util::sync::CancellationToken::new(),
            config: Arc::new(config),
        })))
    }
}

impl std::ops::Deref for AppState {
    type Target = Components;

    fn deref(&self) -> &Components {
        &self.0
    }
}
