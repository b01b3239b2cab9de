//! One refund decided at a time per payment: decide → record → send → record runs holding
//! the payment's lock, and reconciliation works only payments nobody holds.
//!
//! Within a process an async mutex per payment does it. On PostgreSQL the guard also holds a
//! session-level advisory lock on the payment, on a connection of its own, so the same holds
//! across replicas: a replica that dies mid-refund loses its connection, and with it the
//! lock, so another replica's reconciliation can take the payment over. The in-process mutex
//! is taken first, so each replica waits on the database with one request per payment.
//!
//! The advisory locks live on a pool of their own (`database_pool_size` connections): a
//! refund holding its payment's lock still gets a connection for its writes. A semaphore as
//! wide as that pool queues the refunds beyond it in the process, so waiting for a turn is
//! never mistaken for PostgreSQL being unreachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use shared::SessionId;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::Postgres;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

/// Per-payment locks; cheap to clone. Made by [`Ledger::payment_locks`](super::Ledger::payment_locks).
#[derive(Clone)]
pub struct PaymentLocks {
    local: Arc<Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<()>>>>>,
    /// The replicas' shared database, when there is one.
    shared: Option<Shared>,
}

/// The lock pool and one permit per connection in it.
#[derive(Clone)]
struct Shared {
    pool: PgPool,
    turns: Arc<Semaphore>,
}

/// A lock held on PostgreSQL: its connection, its key, and the turn that connection uses.
struct Held {
    conn: PoolConnection<Postgres>,
    key: i64,
    turn: OwnedSemaphorePermit,
}

/// Held while a payment is being worked on; dropping it lets the next one in.
pub struct PaymentGuard {
    _local: OwnedMutexGuard<()>,
    /// The advisory lock (PostgreSQL).
    shared: Option<Held>,
}

impl Drop for PaymentGuard {
    fn drop(&mut self) {
        if let Some(Held {
            mut conn,
            key,
            turn,
        }) = self.shared.take()
        {
            // Unlocked on its connection before that goes back to the pool; a connection
            // that cannot say so is closed, which unlocks too.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                // No runtime left (the process is ending): closing the connection unlocks.
                drop(conn.detach());
                return;
            };
            drop(runtime.spawn(async move {
                let unlocked: Result<bool, _> = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await;
                if matches!(unlocked, Ok(true)) {
                    // Back in the pool before the next one takes the turn.
                    drop(conn);
                } else {
                    let _ = conn.close().await;
                }
                drop(turn);
            }));
        }
    }
}

/// A connection asking for a lock (or rolling back, `writer`): if the asking is cancelled or
/// fails, the connection is closed rather than pooled, so a lock granted after all (or a
/// transaction never rolled back) can never stay held by a pooled connection.
pub(super) struct Unfinished(pub(super) Option<PoolConnection<Postgres>>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

/// Why [`PaymentLocks::lock`] gave no lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone held the payment longer than the wait allowed (answered `409 refund_in_flight`).
    #[error("the payment's lock was held longer than the wait allowed")]
    WaitOver,
    /// The database could not be reached (answered 503: nothing was decided).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Whether `error` is a wait for a payment's lock that outlasted the ledger's `lock_wait`
/// (PostgreSQL's `lock_timeout`, SQLSTATE 55P03): another replica holds the payment.
pub fn is_lock_wait_over(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("55P03"))
}

/// The advisory lock key of a payment on PostgreSQL (`pg_locks.objid` and `classid` hold its
/// halves): 64 bits of SHA-256 of its id. Two payments sharing a key would only wait for
/// each other.
pub fn advisory_key(session: &SessionId) -> i64 {
    let digest = Sha256::digest(format!("payment:{session}").as_bytes());
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

impl PaymentLocks {
    pub(super) fn in_process() -> Self {
        Self {
            local: Arc::default(),
            shared: None,
        }
    }

    /// Locks on `pool`, which only they use.
    pub(super) fn shared(pool: PgPool) -> Self {
        let turns = Arc::new(Semaphore::new(pool.options().get_max_connections() as usize));
        Self {
            local: Arc::default(),
            shared: Some(Shared { pool, turns }),
        }
    }

    fn slot(&self, session: &SessionId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 1024 {
            // Forget locks nobody holds or waits for.
            map.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        map.entry(session.clone()).or_default().clone()
    }

    /// Waits for the payment's lock: at most `wait` in this process (another request on the
    /// payment, or for a turn on the lock pool), then on PostgreSQL at most the ledger's
    /// `lock_wait` for another replica's hold, which the database itself ends
    /// ([`is_lock_wait_over`]): a wait cut short in the middle of `pg_advisory_lock` would
    /// leave the database waiting for a client that left. Fails when the database cannot be
    /// reached (the caller answers 503: nothing was decided).
    pub async fn lock(
        &self,
        session: &SessionId,
        wait: Duration,
    ) -> Result<PaymentGuard, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        let local = tokio::time::timeout_at(deadline, self.slot(session).lock_owned())
            .await
            .map_err(|_| LockError::WaitOver)?;
        let shared = match &self.shared {
            None => None,
            Some(shared) => {
                let turn = tokio::time::timeout_at(deadline, shared.turns.clone().acquire_owned())
                    .await
                    .map_err(|_| LockError::WaitOver)?
                    .map_err(|_| sqlx::Error::PoolClosed)?;
                let key = advisory_key(session);
                let mut waiting = Unfinished(Some(shared.pool.acquire().await?));
                if let Some(conn) = waiting.0.as_mut() {
                    sqlx::query("SELECT pg_advisory_lock($1)")
                        .bind(key)
                        .execute(&mut **conn)
                        .await
                        .map_err(|e| {
                            if is_lock_wait_over(&e) {
                                LockError::WaitOver
                            } else {
                                LockError::Database(e)
                            }
                        })?;
                }
                let conn = waiting.0.take().ok_or(sqlx::Error::PoolClosed)?;
                Some(Held { conn, key, turn })
            }
        };
        Ok(PaymentGuard {
            _local: local,
            shared,
        })
    }

    /// The lock if free now, in this process and on every replica; reconciliation skips
    /// payments someone is working on (and, when the database cannot be reached, all).
    pub async fn try_lock(&self, session: &SessionId) -> Option<PaymentGuard> {
        let local = self.slot(session).try_lock_owned().ok()?;
        let shared = match &self.shared {
            None => None,
            Some(shared) => {
                let turn = shared.turns.clone().try_acquire_owned().ok()?;
                let key = advisory_key(session);
                let mut asking = Unfinished(Some(shared.pool.acquire().await.ok()?));
                let conn = asking.0.as_mut()?;
                let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut **conn)
                    .await
                    .ok()?;
                let conn = asking.0.take()?;
                if !taken {
                    // Not ours: the connection goes back to the pool holding nothing.
                    return None;
                }
                Some(Held { conn, key, turn })
            }
        };
        Some(PaymentGuard {
            _local: local,
            shared,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_payment_has_its_own_stable_key() {
        let a = SessionId::parse("ps_1").unwrap();
        let b = SessionId::parse("ps_2").unwrap();
        assert_eq!(advisory_key(&a), advisory_key(&a));
        assert_ne!(advisory_key(&a), advisory_key(&b));
    }
}
