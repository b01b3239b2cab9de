//! Reconciliation: resolves what the proxy could not see happen.
//!
//! A background task polls `session/status` for attempts in `unknown` (the answer was lost),
//! for `pending` ones whose request is long gone, and for refunds still `in_progress` after
//! `reconcile_in_progress_after`. Each upstream refund is applied exactly as a webhook would
//! be (matched to its attempt by the attempt id in its metadata, else by amount among the
//! refunds that did not exist before the call). An `unknown` attempt that still has no
//! refund after `reconcile_max_polls` polls is marked `failed`. Polls back off exponentially.
//! On start, attempts a previous process left `pending` become `unknown` first, so a
//! `kill -9` at any point loses nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use shared::api::RefundState;
use shared::SessionId;

use crate::ledger::{now_ms, Change, RefundRow};
use crate::AppState;

/// Longest wait between two polls of one refund.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Runs [`tick`] every `reconcile_interval` until the task is aborted.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tick(&state).await;
            tokio::time::sleep(state.config.reconcile_interval).await;
        }
    })
}

fn next_poll_at(state: &AppState, polls: i64) -> i64 {
    let factor = 2u32.saturating_pow(u32::try_from(polls.clamp(0, 16)).unwrap_or(16));
    let wait = state
        .config
        .reconcile_interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF);
    now_ms() + millis(wait)
}

/// A duration in the ledger's milliseconds, saturating (settings are far below the limit).
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// One pass over everything due.
pub async fn tick(state: &AppState) {
    let config = &state.config;
    let now = now_ms();
    let stale_pending = now.saturating_sub(millis(
        config.upstream_timeout * 2 + Duration::from_secs(30),
    ));
    let in_progress_before = now.saturating_sub(millis(config.reconcile_in_progress_after));
    let rows = match state
        .ledger
        .due_for_reconcile(
            stale_pending,
            in_progress_before,
            config.reconcile_max_polls,
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "reconciliation cannot read the ledger");
            return;
        }
    };
    let mut by_session: BTreeMap<String, Vec<RefundRow>> = BTreeMap::new();
    for row in rows {
        by_session
            .entry(row.session_id.clone())
            .or_default()
            .push(row);
    }
    for (session, rows) in by_session {
        let Ok(session) = SessionId::parse(&session) else {
            continue;
        };
        // A refund request is deciding on this payment right now; look next time.
        let Some(_guard) = state.locks.try_lock(&session) else {
            continue;
        };
        if let Err(e) = reconcile_session(state, &session, &rows).await {
            tracing::error!(error = %e, session_id = %session, "reconciliation failed");
        }
    }
}

async fn reconcile_session(
    state: &AppState,
    session: &SessionId,
    rows: &[RefundRow],
) -> Result<(), sqlx::Error> {
    let upstream = match state.upstream.status(session).await {
        Ok(upstream) => upstream,
        Err(e) => {
            tracing::warn!(error = %e, session_id = %session, "reconciliation could not read the payment");
            for row in rows {
                state
                    .ledger
                    .note_poll(row.key, next_poll_at(state, row.polls + 1))
                    .await?;
            }
            return Ok(());
        }
    };
    if !crate::routes::webhooks::amounts_representable(&upstream) {
        // Nothing of an answer we cannot record exactly is applied; the attempts wait.
        tracing::error!(session_id = %session, "session/status carries an amount beyond the ledger's range; not applied");
        state.metrics.count_anomaly("status_unrepresentable");
        for row in rows {
            state
                .ledger
                .note_poll(row.key, next_poll_at(state, row.polls + 1))
                .await?;
        }
        return Ok(());
    }
    for refund in upstream
        .payment()
        .map(|p| p.refunds.as_slice())
        .unwrap_or_default()
    {
        let applied = state
            .ledger
            .apply_upstream_refund(session, refund, "reconciled")
            .await?;
        state.publish_all(applied.event);
    }
    for row in rows {
        let Some(current) = state.ledger.find_by_key(row.key).await? else {
            continue;
        };
        let unresolved = matches!(current.state(), RefundState::Unknown | RefundState::Pending);
        if !unresolved && current.state() != RefundState::InProgress {
            continue;
        }
        if current.updated_at > row.updated_at {
            continue; // just resolved or moved by this pass
        }
        let polls = state
            .ledger
            .note_poll(row.key, next_poll_at(state, current.polls + 1))
            .await?;
        if unresolved
            && current.refund_id.is_none()
            && polls >= i64::from(state.config.reconcile_max_polls)
        {
            let detail = format!(
                "no matching refund at Smart Glocal after {polls} polls: nothing was refunded"
            );
            let change = Change {
                state: Some(RefundState::Failed),
                kind: "reconciled",
                detail: Some(detail),
                ..Change::default()
            };
            let (_, event) = state.ledger.change(row.key, change).await?;
            state.publish_all(event);
        }
    }
    Ok(())
}
