//! Reconciliation: resolves what the proxy could not see happen.
//!
//! A background task polls `session/status` for attempts in `unknown` (the answer was lost),
//! for `pending` ones whose request is long gone, and for refunds still `in_progress` after
//! `reconcile_in_progress_after`. Each upstream refund is applied exactly as a webhook would
//! be (matched to its attempt by the attempt id in its metadata, else by amount among the
//! refunds that did not exist before the call).
//!
//! An unresolved attempt (`unknown`, stale `pending`) holds its amount back from what agents
//! may refund, so it is polled at least every 10 s until resolved, and declared `failed` only
//! when `session/status` answers have shown no refund for it for `reconcile_fail_after`
//! (default 2 min): never earlier, and never because of an error answer (those only mean
//! "ask again"). Refunds `in_progress` back off exponentially to 5 min for
//! `reconcile_max_polls` polls (their webhook normally comes meanwhile), then to one hour, and
//! are polled until they end: Smart Glocal stops retrying a webhook nobody took, and a refund
//! must not stay `in_progress` in the ledger after it ended. On start, attempts a previous
//! process left `pending` become `unknown` first, so a `kill -9` at any point loses nothing.
//!
//! Through a storage fault, [`watch_ledger`] probes the ledger until it can write again, then
//! settles every payment that had an attempt in flight from Smart Glocal's own record: an
//! attempt whose answer could not be written is not left waiting for its back-off.

use std::collections::BTreeMap;
use std::time::Duration;

use shared::api::RefundState;
use shared::{Backoff, SessionId};

use crate::ledger::{millis, now_ms, ApplyOutcome, RefundRow, Source};
use crate::state::AppState;

/// How long past the upstream timeout a `pending` attempt whose payment nobody holds waits
/// before a pass adopts it (its sender records the answer, or the timeout, meanwhile).
const ORPHAN_MARGIN: Duration = Duration::from_secs(2);
/// Longest wait between two polls of one refund `in_progress`, for its first
/// `reconcile_max_polls` polls.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest wait between two polls of a refund still `in_progress` after
/// `reconcile_max_polls` polls: its webhook is late, or will never come.
const LATE_MAX_WAIT: Duration = Duration::from_secs(3600);
/// How often a ledger that cannot write is probed (recovery needs no traffic).
const FAULT_PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Longest wait between two polls of an unresolved attempt: its amount is held back meanwhile.
pub const UNRESOLVED_MAX_WAIT: Duration = Duration::from_secs(10);

/// Runs [`tick`] every `reconcile_interval` until the task is aborted.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tick(&state).await;
            tokio::time::sleep(state.config.reconcile_interval).await;
        }
    })
}

/// Probes the ledger while it cannot write; on each recovery, reconciles at once every payment
/// with an attempt in flight. Runs until aborted.
pub fn watch_ledger(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut recoveries = state.ledger.health().recoveries();
        loop {
            tokio::time::sleep(FAULT_PROBE_INTERVAL).await;
            if !state.ledger.health().is_writable() {
                // A failure is already counted and logged by the ledger.
                let _ = state.ledger.probe().await;
            }
            if recoveries.has_changed().unwrap_or(false) {
                recoveries.mark_unchanged();
                if let Err(e) = in_flight(&state).await {
                    tracing::error!(error = %e, "reconciliation after the storage fault failed; the regular passes will retry");
                }
            }
        }
    })
}

/// Reconciles now, whatever their back-off, every payment with a refund `pending`, `unknown`
/// or `in_progress` (whose final webhook Smart Glocal may have stopped retrying during the
/// fault); payments a request is working on are left to it.
pub async fn in_flight(state: &AppState) -> Result<(), sqlx::Error> {
    for session in state.ledger.sessions_in_flight().await? {
        let Ok(session) = SessionId::parse(&session) else {
            continue;
        };
        let Some(_guard) = state.locks.try_lock(&session).await else {
            continue;
        };
        // Holding the payment's lock, no request of this process is sending on it: `pending`
        // here is an answer that could not be recorded, or another replica's request, whose
        // lock (a connection of its own) the same outage may have dropped while the request
        // still waits. So only attempts past the upstream timeout and a margin are adopted,
        // as in every pass; a younger one is the next passes' once its sender is done.
        let sender_gone =
            now_ms().saturating_sub(millis(state.config.upstream_timeout + ORPHAN_MARGIN));
        state
            .ledger
            .orphaned_to_unknown(&session, sender_gone)
            .await?;
        let rows: Vec<RefundRow> = state
            .ledger
            .rows_for_session(&session)
            .await?
            .into_iter()
            .filter(|row| {
                matches!(
                    row.state,
                    RefundState::Unknown | RefundState::Pending | RefundState::InProgress
                )
            })
            .collect();
        tracing::info!(session_id = %session, attempts = rows.len(), "reconciling a payment that was in flight during the storage fault");
        reconcile_session(state, &session, &rows).await?;
    }
    Ok(())
}

/// Attempts `pending` since before `before` (Unix ms) while nobody holds their payment: the
/// process that was sending them (this one before a restart, or another replica that died)
/// is gone, and with it the lock. Unknown now, for reconciliation to settle from Smart
/// Glocal's own record; how many. Payments someone is working on are left to them.
///
/// At start every such attempt is adopted (`i64::MAX`); each pass adopts only those older
/// than the upstream timeout and a margin, which their sender, alive, has finished with
/// whatever happened to its lock (a replica whose lock's connection dropped still holds
/// its request until the timeout).
pub async fn adopt_orphans(state: &AppState, before: i64) -> Result<usize, sqlx::Error> {
    let mut adopted = 0;
    for session in state.ledger.sessions_pending(before).await? {
        let Ok(session) = SessionId::parse(&session) else {
            continue;
        };
        let Some(_guard) = state.locks.try_lock(&session).await else {
            continue;
        };
        adopted += state.ledger.orphaned_to_unknown(&session, before).await?;
    }
    Ok(adopted)
}

/// The wait before poll number `polls + 1` of a row: doubling from `interval`, capped at
/// [`UNRESOLVED_MAX_WAIT`] for unresolved attempts, at [`MAX_BACKOFF`] for a refund in
/// progress polled fewer than `max_polls` times and at [`LATE_MAX_WAIT`] after that.
pub fn poll_wait(interval: Duration, polls: i64, unresolved: bool, max_polls: u32) -> Duration {
    let cap = if unresolved {
        UNRESOLVED_MAX_WAIT
    } else if polls < i64::from(max_polls) {
        MAX_BACKOFF
    } else {
        LATE_MAX_WAIT
    };
    let polls = u32::try_from(polls.max(0)).unwrap_or(u32::MAX);
    Backoff::doubling(interval, cap).delay(polls)
}

/// How many answers without the refund an unresolved attempt needs, besides
/// `reconcile_fail_after` of wall-clock time, before it is declared failed: as many as its
/// polls bring in that time at their slowest (at most [`UNRESOLVED_MAX_WAIT`] apart, rounded
/// up to the next pass), so the count never makes the usual wait longer. The wall clock alone
/// is not trusted with money: stepped forward (a resumed VM, an NTP step, or on PostgreSQL a
/// replica whose clock runs ahead), it would fail at the next answer an attempt Smart Glocal
/// may yet show, freeing its amount to be refunded twice. Answers come one per pass, and
/// passes are at least `reconcile_interval` apart by the monotonic clock, so the real time
/// behind a failure is at least that many passes (35 s of the 2 minutes with the defaults,
/// where one answer after a step sufficed before).
fn answers_to_fail(fail_after: Duration, interval: Duration) -> i64 {
    let slowest = UNRESOLVED_MAX_WAIT.max(interval) + interval;
    let answers = fail_after.as_millis().div_ceil(slowest.as_millis().max(1));
    i64::try_from(answers).unwrap_or(i64::MAX).max(1)
}

fn next_poll_at(state: &AppState, row: &RefundRow, polls: i64) -> i64 {
    let unresolved = matches!(row.state, RefundState::Unknown | RefundState::Pending);
    now_ms()
        + millis(poll_wait(
            state.config.reconcile_interval,
            polls,
            unresolved,
            state.config.reconcile_max_polls,
        ))
}

/// One pass over everything due.
pub async fn tick(state: &AppState) {
    expire_requests(state).await;
    let sender_gone =
        now_ms().saturating_sub(millis(state.config.upstream_timeout + ORPHAN_MARGIN));
    match adopt_orphans(state, sender_gone).await {
        Ok(0) => {}
        Ok(adopted) => tracing::warn!(
            count = adopted,
            "attempts whose sender is gone (a stopped process or replica) are now unknown; reconciling"
        ),
        Err(e) => tracing::warn!(error = %e, "looking for interrupted attempts failed; the next pass retries"),
    }
    let config = &state.config;
    let now = now_ms();
    let stale_pending = now.saturating_sub(millis(
        config.upstream_timeout * 2 + Duration::from_secs(30),
    ));
    let in_progress_before = now.saturating_sub(millis(config.reconcile_in_progress_after));
    // A poll time further ahead than the longest wait was set before the clock stepped back.
    let stepped_back = now.saturating_add(millis(LATE_MAX_WAIT + Duration::from_secs(60)));
    let rows = match state
        .ledger
        .due_for_reconcile(stale_pending, in_progress_before, stepped_back)
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
        let Some(_guard) = state.locks.try_lock(&session).await else {
            continue;
        };
        if let Err(e) = reconcile_session(state, &session, &rows).await {
            tracing::error!(error = %e, session_id = %session, "reconciliation failed");
        }
    }
}

/// Requests nobody approved within `approval_ttl_secs` close `failed`; nothing was sent.
/// A payment someone is deciding on right now is left to the next pass (the approval itself
/// re-checks the time under the lock).
async fn expire_requests(state: &AppState) {
    let before = now_ms().saturating_sub(millis(state.config.approval_ttl));
    let rows = match state.ledger.expired_requests(before).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "cannot read requests awaiting approval");
            return;
        }
    };
    for row in rows {
        let Ok(session) = SessionId::parse(&row.session_id) else {
            continue;
        };
        let Some(_guard) = state.locks.try_lock(&session).await else {
            continue;
        };
        // Re-read under the lock: approved or rejected meanwhile is no longer ours to close.
        match state.ledger.find_by_key(row.key).await {
            Ok(Some(current)) if current.state == RefundState::AwaitingApproval => {
                if let Err(e) = crate::refund_flow::expire(state, &current).await {
                    tracing::error!(error = %e, session_id = %session, "could not expire a request");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read a request awaiting approval"),
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
            // Quoted (`?`): the error may hold Smart Glocal's text, line breaks and all.
            tracing::warn!(error = ?e.to_string(), session_id = %session, "reconciliation could not read the payment");
            state.metrics.count_reconciliation("unreachable");
            return wait_all(state, rows).await;
        }
    };
    if upstream.payment().is_none() {
        // An answer without the payment (no succeeded acquiring payment in it) says nothing
        // of its refunds: not taken as showing none, which would fail the attempts waiting.
        tracing::warn!(session_id = %session, "session/status shows no payment; not taken as an answer about its refunds");
        state.metrics.count_reconciliation("no_payment");
        return wait_all(state, rows).await;
    }
    if !crate::routes::webhooks::amounts_representable(&upstream) {
        // Nothing of an answer we cannot record exactly is applied; the attempts wait.
        tracing::error!(session_id = %session, "session/status carries an amount beyond the ledger's range; not applied");
        state.metrics.count_anomaly("status_unrepresentable");
        state.metrics.count_reconciliation("unrepresentable");
        return wait_all(state, rows).await;
    }
    for refund in crate::ledger::matching_order(
        upstream
            .payment()
            .map(|p| p.refunds.as_slice())
            .unwrap_or_default(),
    ) {
        let (outcome, applied) = state
            .ledger
            .apply_upstream_refund(session, refund, Source::Reconciled)
            .await?;
        if matches!(outcome, ApplyOutcome::Applied | ApplyOutcome::New) {
            tracing::info!(
                attempt_id = applied.attempt_id.as_ref().map(tracing::field::display),
                session_id = %session,
                refund_id = %refund.id,
                state = applied.state.as_str(),
                "reconciliation recorded what Smart Glocal shows of a refund"
            );
        }
        if outcome == ApplyOutcome::Conflict {
            state.metrics.count_anomaly("conflict");
        }
    }
    state.metrics.count_reconciliation("checked");
    for row in rows {
        let Some(current) = state.ledger.find_by_key(row.key).await? else {
            continue;
        };
        let unresolved = matches!(current.state, RefundState::Unknown | RefundState::Pending);
        if !unresolved && current.state != RefundState::InProgress {
            continue;
        }
        if current.updated_at > row.updated_at {
            continue; // just resolved or moved by this pass
        }
        state
            .ledger
            .note_poll(row.key, next_poll_at(state, &current, current.polls + 1))
            .await?;
        // A refund id, or a refund that names the attempt but contradicts it (flagged for
        // attention): Smart Glocal did show something for it, so it is not absent.
        if !unresolved || current.refund_id.is_some() || current.attention.is_some() {
            continue;
        }
        // This answer, a good one, shows no refund for the attempt.
        let now = now_ms();
        let (absent_since, answers) = state.ledger.note_absent(row.key, now).await?;
        let absent_for = now.saturating_sub(absent_since);
        if absent_for >= millis(state.config.reconcile_fail_after)
            && answers
                >= answers_to_fail(
                    state.config.reconcile_fail_after,
                    state.config.reconcile_interval,
                )
        {
            let detail = format!(
                "Smart Glocal showed no refund for this attempt for {} s: nothing was refunded",
                absent_for / 1000
            );
            if state.ledger.fail_absent(row.key, detail).await?.is_some() {
                tracing::warn!(
                    attempt_id = current.attempt_id.as_ref().map(tracing::field::display),
                    session_id = %session,
                    agent = current.agent.as_deref().map(tracing::field::display),
                    amount = current.amount,
                    currency = %current.currency,
                    absent_secs = absent_for / 1000,
                    "a refund whose outcome was not known is failed: Smart Glocal shows none; its amount may be refunded again"
                );
                state.metrics.count_reconciliation("failed_absent");
            }
        }
    }
    Ok(())
}

/// Each of `rows` polled once more, at its next time: an answer that says nothing of them.
async fn wait_all(state: &AppState, rows: &[RefundRow]) -> Result<(), sqlx::Error> {
    for row in rows {
        state
            .ledger
            .note_poll(row.key, next_poll_at(state, row, row.polls + 1))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unresolved_attempt_is_polled_at_least_every_ten_seconds() {
        let interval = Duration::from_secs(5);
        let waits: Vec<u64> = (0..12)
            .map(|polls| poll_wait(interval, polls, true, 10).as_secs())
            .collect();
        assert_eq!(waits, [5, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10]);
        assert_eq!(poll_wait(interval, 9, false, 10), MAX_BACKOFF);
        assert_eq!(poll_wait(interval, 1, false, 10), Duration::from_secs(10));
    }

    #[test]
    fn a_refund_in_progress_backs_off_to_five_minutes_then_to_an_hour_and_is_never_dropped() {
        let waits: Vec<u64> = (0..14)
            .map(|polls| poll_wait(Duration::from_secs(5), polls, false, 10).as_secs())
            .collect();
        assert_eq!(
            waits,
            [5, 10, 20, 40, 80, 160, 300, 300, 300, 300, 3600, 3600, 3600, 3600]
        );
        // A tiny interval still reaches each cap, and a huge poll count does not overflow.
        let tiny = Duration::from_millis(1);
        assert_eq!(poll_wait(tiny, 9, false, 30), tiny * 512);
        assert_eq!(poll_wait(tiny, 29, false, 30), MAX_BACKOFF);
        assert_eq!(poll_wait(tiny, 30, false, 30), LATE_MAX_WAIT);
        assert_eq!(poll_wait(tiny, i64::MAX, false, 30), LATE_MAX_WAIT);
        assert_eq!(
            poll_wait(tiny, -1, false, 30),
            tiny,
            "a negative count is the first poll"
        );
    }
}
