//! Live events across replicas (PostgreSQL): each commit with events sends
//! `NOTIFY sg_refund_events, '<its last seq>'`, and every replica's listener loads the events
//! after the last one it published and publishes them, in `seq` order. Writes are one at a
//! time across replicas (see `writer`), so `seq` follows commit order: "everything after the
//! last published" never skips an event that commits later.
//!
//! A notification can be lost while the listening connection is down; the listener reloads
//! from its last `seq` whenever it (re)connects and once a second anyway, so a lost
//! notification delays an event by at most that, and nothing is published twice.

use std::sync::Arc;
use std::time::Duration;

use shared::api::{RefundEvent, RefundView};
use shared::{Backoff, SessionId};
use sqlx::postgres::PgListener;

use super::sql::{Exec, Sql};
use super::{PgStore, Publisher};

/// The channel every replica listens on.
pub(super) const CHANNEL: &str = "sg_refund_events";

/// How often the events are reloaded without a notification.
const SAFETY_NET: Duration = Duration::from_secs(1);

/// Events loaded per query while catching up.
const PAGE: i64 = 1000;

/// Runs the listener until the ledger's pool is closed.
pub(super) fn spawn(store: Arc<PgStore>, publisher: Publisher) {
    tokio::spawn(async move {
        let backoff = Backoff::doubling(Duration::from_millis(100), Duration::from_secs(2));
        let mut failures = 0;
        while !store.pool.is_closed() {
            match listen(&store, &publisher).await {
                Ok(()) => return,
                Err(error) => {
                    if store.pool.is_closed() {
                        return;
                    }
                    tracing::warn!(%error, "the ledger's event listener lost PostgreSQL; listening again");
                    tokio::time::sleep(backoff.delay(failures)).await;
                    failures = failures.saturating_add(1);
                }
            }
        }
    });
}

/// Listens, and publishes what every notification (or the safety net) reveals, until the
/// connection fails.
async fn listen(store: &PgStore, publisher: &Publisher) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(&store.pool).await?;
    listener.listen(CHANNEL).await?;
    // Whatever committed while nobody listened.
    catch_up(store, publisher).await?;
    loop {
        tokio::select! {
            notification = listener.try_recv() => {
                // `None`: the connection was lost and is reopened by the next call; anything
                // sent meanwhile is found by reading after the last seq.
                notification?;
            }
            () = tokio::time::sleep(SAFETY_NET) => {}
        }
        if store.pool.is_closed() {
            return Ok(());
        }
        catch_up(store, publisher).await?;
    }
}

/// Publishes every event after the last one published, in `seq` order.
async fn catch_up(store: &PgStore, publisher: &Publisher) -> Result<(), sqlx::Error> {
    loop {
        let last = *store.published.borrow();
        let rows: Vec<(i64, String, String)> = Exec::PgPool(&store.pool)
            .fetch_all(
                &Sql::new(
                    "SELECT seq, session_id, refund FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                )
                .bind(last)
                .bind(PAGE),
            )
            .await?;
        let Some(&(newest, _, _)) = rows.last() else {
            return Ok(());
        };
        let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= PAGE;
        for (seq, session, json) in rows {
            match (
                SessionId::parse(&session),
                serde_json::from_str::<RefundView>(&json),
            ) {
                (Ok(session_id), Ok(refund)) => publisher.publish(RefundEvent {
                    seq,
                    session_id,
                    refund,
                }),
                _ => tracing::error!(seq, "an event in the ledger cannot be read; not published"),
            }
        }
        store.published.send_replace(newest);
        if !full {
            return Ok(());
        }
    }
}
