//! Verified webhooks, applied and recorded with group commit: one writer task takes every
//! webhook waiting, applies them all in one transaction, commits once, then answers each.
//!
//! A webhook is answered only after the commit holding it is on disk, so `200` still means
//! "durably recorded"; concurrent webhooks share one sync to disk instead of queueing for
//! one each (before, every refund in a webhook and the webhook itself were separate commits).
//! Events are published by the commit itself (see `writer`), in commit order.

use shared::smart_glocal as sg;
use shared::SessionId;
use tokio::sync::{mpsc, oneshot};

use super::journal::{Entries, ROWS_PER_INSERT};
use super::kinds::{Source, WebhookOutcome};
use super::refunds::{apply_in, ApplyOutcome, BatchRows};
use super::sql::{insert_chunks, Sql, ToArg};
use super::writer::is_storage_fault;
use super::writer::WriteTx;
use super::{now_ms, Ledger};

/// Webhooks taken into one transaction at most: enough to share a sync among everything a
/// burst brings, few enough that a refund request waiting for the connection is not held up.
const MAX_BATCH: usize = 64;
/// Webhooks waiting for the writer before senders wait for room.
const QUEUE: usize = 1024;

/// What to do with a verified webhook.
#[derive(Debug)]
pub enum WebhookAction {
    /// `payment_refunded`: apply each refund, then record the webhook with what happened.
    Apply(Vec<sg::Refund>),
    /// Only record it, with this outcome (`ignored`, `unreadable`).
    Record(WebhookOutcome),
}

/// A webhook whose signature verified, as it goes into the ledger.
#[derive(Debug)]
pub struct VerifiedWebhook {
    pub raw_body: Vec<u8>,
    pub session_id: Option<SessionId>,
    /// `session:refund:status[;…]` of the refunds it carries.
    pub dedup_key: Option<String>,
    pub action: WebhookAction,
}

struct Job {
    webhook: VerifiedWebhook,
    /// The outcome (`applied`, `duplicate`, `stale`, …), sent once committed.
    done: oneshot::Sender<Result<WebhookOutcome, sqlx::Error>>,
}

/// Handle to the writer task; cheap to clone. The task ends when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct WebhookWriter {
    jobs: mpsc::Sender<Job>,
}

impl WebhookWriter {
    /// Applies and records `webhook`; returns its outcome once it is committed to disk.
    pub async fn record(&self, webhook: VerifiedWebhook) -> Result<WebhookOutcome, sqlx::Error> {
        let (done, outcome) = oneshot::channel();
        self.jobs
            .send(Job { webhook, done })
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        outcome.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

impl Ledger {
    /// Starts the webhook writer. A commit's events are published before its webhooks are
    /// answered, so a client that reacts to a 200 by opening a stream with `Last-Event-ID`
    /// finds them already in the ledger and announced.
    pub fn webhook_writer(&self) -> WebhookWriter {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(self.clone(), queue));
        WebhookWriter { jobs }
    }
}

async fn run(ledger: Ledger, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit(&ledger, &batch).await {
            Ok(outcomes) => answer(batch.drain(..), outcomes),
            Err(e) if is_storage_fault(&e) => {
                // Nothing of the batch is on disk: every sender hears so (503, and Smart
                // Glocal sends it again later); retrying one by one would only fail again.
                tracing::warn!(error = %e, webhooks = batch.len(), "webhook batch not recorded: the ledger cannot write");
                for job in batch.drain(..) {
                    let _ = job
                        .done
                        .send(Err(sqlx::Error::Io(std::io::Error::other(e.to_string()))));
                }
            }
            Err(e) if batch.len() > 1 => {
                // One webhook the database refuses must not fail the others: each alone.
                tracing::warn!(error = %e, webhooks = batch.len(), "webhook batch failed; retrying one by one");
                for job in batch.drain(..) {
                    match commit(&ledger, std::slice::from_ref(&job)).await {
                        Ok(outcomes) => answer(std::iter::once(job), outcomes),
                        Err(e) => {
                            let _ = job.done.send(Err(e));
                        }
                    }
                }
            }
            Err(e) => {
                if let Some(job) = batch.pop() {
                    let _ = job.done.send(Err(e));
                }
            }
        }
    }
}

fn answer(jobs: impl Iterator<Item = Job>, outcomes: Vec<WebhookOutcome>) {
    for (job, outcome) in jobs.zip(outcomes) {
        // The sender may have gone (client hung up): the webhook is recorded all the same.
        let _ = job.done.send(Ok(outcome));
    }
}

/// One transaction for all of `jobs`, committed to disk before this returns; each webhook's
/// outcome.
async fn commit(ledger: &Ledger, jobs: &[Job]) -> Result<Vec<WebhookOutcome>, sqlx::Error> {
    let mut tx = ledger.write().await?;
    let mut journal = Entries::default();
    let result = apply_all(&mut tx, &mut journal, jobs).await;
    tx.finish(journal, result).await
}

/// Applies and records `jobs` inside the caller's transaction.
async fn apply_all(
    tx: &mut WriteTx<'_>,
    journal: &mut Entries,
    jobs: &[Job],
) -> Result<Vec<WebhookOutcome>, sqlx::Error> {
    // One look-up for every refund the batch carries, not one per refund.
    let refunds: Vec<(&SessionId, &sg::Refund)> = jobs
        .iter()
        .filter_map(|job| match (&job.webhook.action, &job.webhook.session_id) {
            (WebhookAction::Apply(refunds), Some(session)) => {
                Some(refunds.iter().map(move |r| (session, r)))
            }
            _ => None,
        })
        .flatten()
        .collect();
    let mut rows = BatchRows::read(tx, &refunds).await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        outcomes.push(apply(tx, journal, &mut rows, &job.webhook).await?);
    }
    // The refunds new to the ledger, in one statement (or a few) for the whole batch.
    rows.write_new(tx).await?;
    let received_at = now_ms();
    // A duplicate says nothing the ledger does not hold already (its refunds' states, and
    // for a late status the history line the first copy added) and is not kept: a captured
    // webhook replayed, signature and all, would otherwise add a row, and its body of up to
    // 4 MiB, at every replay. Each is counted (`proxy_webhooks_total{outcome="duplicate"}`).
    let written: Vec<_> = jobs
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| **outcome != WebhookOutcome::Duplicate)
        .collect();
    for chunk in insert_chunks(tx.engine(), &written, ROWS_PER_INSERT) {
        let insert = Sql::insert_rows(
            "INSERT INTO webhooks (received_at, verified, session_id, dedup_key, outcome, raw_body)",
            chunk.iter().map(|(job, outcome)| {
                let webhook = &job.webhook;
                vec![
                    received_at.to_arg(),
                    true.to_arg(),
                    webhook.session_id.as_ref().map(SessionId::as_str).to_arg(),
                    (&webhook.dedup_key).to_arg(),
                    (**outcome).to_arg(),
                    (&webhook.raw_body).to_arg(),
                ]
            }),
        );
        tx.exec().execute(&insert).await?;
    }
    Ok(outcomes)
}

/// Applies one webhook's refunds; its outcome (`applied`, `duplicate`, `stale`, …).
async fn apply(
    conn: &mut WriteTx<'_>,
    journal: &mut Entries,
    rows: &mut BatchRows,
    webhook: &VerifiedWebhook,
) -> Result<WebhookOutcome, sqlx::Error> {
    Ok(match (&webhook.action, &webhook.session_id) {
        (WebhookAction::Apply(refunds), Some(session)) => {
            let mut outcome = WebhookOutcome::Duplicate;
            for refund in super::refunds::matching_order(refunds) {
                let (applied, _) =
                    apply_in(conn, journal, session, refund, Source::Webhook, Some(rows)).await?;
                outcome = match (outcome, applied) {
                    // A contradiction is what an operator must see, whatever else it held.
                    (_, ApplyOutcome::Conflict) | (WebhookOutcome::Conflict, _) => {
                        WebhookOutcome::Conflict
                    }
                    (_, ApplyOutcome::Applied | ApplyOutcome::New) => WebhookOutcome::Applied,
                    (WebhookOutcome::Applied, _) => WebhookOutcome::Applied,
                    (_, ApplyOutcome::Stale) => WebhookOutcome::Stale,
                    (current, ApplyOutcome::Duplicate) => current,
                };
            }
            outcome
        }
        (WebhookAction::Apply(_), None) => WebhookOutcome::Unreadable,
        (WebhookAction::Record(outcome), _) => *outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::test_rows::{new_attempt, temporary_ledger as ledger};
    use crate::ledger::Inserted;

    fn refund(id: &str, amount: u64, status: &str) -> sg::Refund {
        serde_json::from_value(serde_json::json!({
            "id": id, "status": status,
            "amount_details": {"amount": amount, "currency": "usd"},
        }))
        .unwrap()
    }

    /// Alice's attempt of 7.00 USD on `session`, recorded `pending` (about to be sent).
    async fn pending_attempt(ledger: &Ledger, session: &SessionId) -> crate::ledger::RefundRow {
        match ledger.insert_attempt(&new_attempt(session, 1, 700)).await {
            Ok(Inserted::New(row)) => row,
            other => panic!("attempt not recorded: {other:?}"),
        }
    }

    fn job(session: &SessionId, refunds: Vec<sg::Refund>) -> Job {
        let (done, _) = oneshot::channel();
        Job {
            webhook: VerifiedWebhook {
                raw_body: b"{}".to_vec(),
                session_id: Some(session.clone()),
                dedup_key: None,
                action: WebhookAction::Apply(refunds),
            },
            done,
        }
    }

    /// The refunds' rows are read once for the whole batch: a webhook must still see what an
    /// earlier one of the same batch wrote, as it would reading the table.
    #[tokio::test]
    async fn a_webhook_sees_what_an_earlier_one_in_its_batch_wrote() {
        let (_dir, ledger) = ledger().await;
        let entered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let ledger = ledger.publishing_to(|_| {}, {
            let entered = entered.clone();
            move |state| entered.lock().unwrap().push(state)
        });
        let session = SessionId::parse("ps_batch").unwrap();
        let jobs = [
            job(&session, vec![refund("rf_1", 1_500, "pending")]),
            job(&session, vec![refund("rf_1", 1_500, "accepted")]),
            job(&session, vec![refund("rf_1", 1_500, "accepted")]),
            job(&session, vec![refund("rf_1", 9_900, "accepted")]),
        ];
        // One transaction for all four (the writer's fallback, one by one, is not taken).
        let outcomes = commit(&ledger, &jobs).await.unwrap();
        assert_eq!(
            outcomes,
            [
                WebhookOutcome::Applied,
                WebhookOutcome::Applied,
                WebhookOutcome::Duplicate,
                WebhookOutcome::Conflict,
            ]
        );
        let rows = ledger.rows_for_session(&session).await.unwrap();
        assert_eq!(rows.len(), 1, "one row for the refund: {rows:?}");
        assert_eq!(rows[0].state, crate::ledger::RefundState::Accepted);
        assert!(rows[0].attention.is_some(), "the contradiction is flagged");
        // What is counted: the states entered, not the flag, which changed none.
        use crate::ledger::RefundState::{Accepted, InProgress};
        assert_eq!(*entered.lock().unwrap(), [InProgress, Accepted]);
    }

    /// A late status received again in the same batch (a burst of retries, a replay) adds no
    /// second history line: the first's is not in `history` yet when the second is applied.
    #[tokio::test]
    async fn a_late_status_twice_in_one_batch_is_one_history_line() {
        let (_dir, ledger) = ledger().await;
        let session = SessionId::parse("ps_late").unwrap();
        let accepted = [job(&session, vec![refund("rf_1", 1_500, "accepted")])];
        commit(&ledger, &accepted).await.unwrap();
        let late = [
            job(&session, vec![refund("rf_1", 1_500, "in_progress")]),
            job(&session, vec![refund("rf_1", 1_500, "in_progress")]),
        ];
        let outcomes = commit(&ledger, &late).await.unwrap();
        assert_eq!(outcomes, [WebhookOutcome::Stale, WebhookOutcome::Duplicate]);
        let ignored = ledger
            .history(&session)
            .await
            .unwrap()
            .into_iter()
            .filter(|line| line.kind == shared::api::HistoryKind::WebhookIgnored)
            .count();
        assert_eq!(ignored, 1);
    }

    /// Refunds new to the ledger wait for the end of their batch and are inserted together
    /// (in statements of three rows in tests): each must be stored as its event and history
    /// line announced it, keyed in the order the batch learned them, the chain unbroken; one
    /// a later webhook of the batch moves on is inserted (with the three waiting) before it is
    /// moved, and the four left at the end take two statements.
    #[tokio::test]
    async fn new_refunds_are_stored_as_the_batch_announced_them() {
        let (_dir, ledger) = ledger().await;
        let session = SessionId::parse("ps_new").unwrap();
        let other = SessionId::parse("ps_new_other").unwrap();
        let mut chargeback = refund("rf_5", 400, "accepted");
        chargeback.is_chargeback = true;
        let jobs = [
            job(&session, vec![refund("rf_1", 100, "in_progress")]),
            job(
                &other,
                vec![
                    refund("rf_2", 200, "accepted"),
                    refund("rf_3", 300, "cancelled"),
                ],
            ),
            job(&session, vec![refund("rf_1", 100, "accepted"), chargeback]),
            job(&other, vec![refund("rf_6", 600, "accepted")]),
            job(
                &session,
                vec![
                    refund("rf_7", 700, "accepted"),
                    refund("rf_8", 800, "accepted"),
                ],
            ),
        ];
        let outcomes = commit(&ledger, &jobs).await.unwrap();
        assert_eq!(outcomes, [WebhookOutcome::Applied; 5]);

        let mut rows = ledger.rows_for_session(&session).await.unwrap();
        rows.extend(ledger.rows_for_session(&other).await.unwrap());
        rows.sort_by_key(|row| row.key);
        let learned: Vec<&str> = rows.iter().filter_map(|r| r.refund_id.as_deref()).collect();
        assert_eq!(
            learned,
            ["rf_1", "rf_2", "rf_3", "rf_5", "rf_6", "rf_7", "rf_8"]
        );
        let row = |id: &str| {
            rows.iter()
                .find(|r| r.refund_id.as_deref() == Some(id))
                .unwrap()
        };
        assert_eq!(row("rf_1").state, crate::ledger::RefundState::Accepted);
        assert_eq!(row("rf_5").origin, crate::ledger::Origin::Chargeback);
        assert_eq!(row("rf_3").state, crate::ledger::RefundState::Failed);
        assert!(
            row("rf_3").finished_at.is_some(),
            "a final state is finished"
        );

        // Each refund's last event is its stored row.
        for payment in [&session, &other] {
            // Every page of them (a few events a page in unit tests).
            let (mut events, mut after) = (Vec::new(), 0);
            loop {
                let page = ledger.events_after(payment, after).await.unwrap();
                events.extend(page.events);
                after = page.through;
                if !page.more {
                    break;
                }
            }
            for stored in rows.iter().filter(|r| r.session_id == payment.as_str()) {
                let last = events
                    .iter()
                    .rev()
                    .find(|e| {
                        e.refund.refund_id.as_ref().map(|id| id.as_str())
                            == stored.refund_id.as_deref()
                    })
                    .unwrap_or_else(|| panic!("no event for {stored:?}"));
                assert_eq!(last.refund, stored.view());
            }
        }
        // One line each as learned, one for rf_1 accepted; every line hashes into the chain.
        let history = ledger.history(&session).await.unwrap().len()
            + ledger.history(&other).await.unwrap().len();
        assert_eq!(history, 8);
        let chain = ledger.verify_chain().await.unwrap();
        assert_eq!((chain.verified, chain.broken), (8, None));
    }

    /// A refund Smart Glocal refused (its words kept, a replay answers with them) and later
    /// lists as failed, naming the attempt: it stays failed for the reason it failed first.
    /// One learned failed says why too, from Smart Glocal's word.
    #[tokio::test]
    async fn a_refused_attempt_keeps_its_refusal_and_a_refund_learned_failed_says_why() {
        use crate::ledger::{Change, RefundState};
        use shared::api::{ErrorCode, HistoryKind};
        let (_dir, ledger) = ledger().await;
        let session = SessionId::parse("ps_refused").unwrap();
        let attempt = pending_attempt(&ledger, &session).await;
        let refusal = "Smart Glocal refused the refund: refund_declined the issuer said no";
        let refused = Change::failed(ErrorCode::UpstreamRejected, refusal, HistoryKind::Failed);
        ledger.change(attempt.key, refused).await.unwrap();
        let mut naming = refund("rf_named", 700, "failed");
        naming.metadata = Some(serde_json::json!({
            "attempt_id": attempt.attempt_id.as_ref().unwrap().as_str()
        }));
        let jobs = [job(
            &session,
            vec![naming, refund("rf_elsewhere", 300, "cancelled")],
        )];
        commit(&ledger, &jobs).await.unwrap();
        let rows = ledger.rows_for_session(&session).await.unwrap();
        let ours = rows.iter().find(|r| r.key == attempt.key).unwrap();
        assert_eq!(ours.state, RefundState::Failed);
        assert_eq!(ours.refund_id.as_deref(), Some("rf_named"));
        assert_eq!(ours.error_code, Some(ErrorCode::UpstreamRejected));
        assert_eq!(ours.error_detail.as_deref(), Some(refusal));
        let elsewhere = rows
            .iter()
            .find(|r| r.refund_id.as_deref() == Some("rf_elsewhere"))
            .unwrap();
        assert_eq!(elsewhere.state, RefundState::Failed);
        assert_eq!(
            elsewhere.error_detail.as_deref(),
            Some("Smart Glocal: cancelled")
        );

        // Failed by reconciliation's verdict alone (no code, no answer): Smart Glocal's word,
        // once a refund naming it shows, replaces "no refund appeared".
        let Ok(Inserted::New(second)) = ledger.insert_attempt(&new_attempt(&session, 2, 200)).await
        else {
            panic!("second attempt not recorded");
        };
        let lost = Change {
            state: Some(RefundState::Unknown),
            ..Change::new(HistoryKind::Unknown)
        };
        ledger.change(second.key, lost).await.unwrap();
        let verdict = "Smart Glocal showed no refund for this attempt: nothing was refunded";
        ledger
            .fail_absent(second.key, verdict.into())
            .await
            .unwrap()
            .expect("failed");
        let mut late = refund("rf_late", 200, "failed");
        late.metadata = Some(serde_json::json!({
            "attempt_id": second.attempt_id.as_ref().unwrap().as_str()
        }));
        commit(&ledger, &[job(&session, vec![late])]).await.unwrap();
        let second = ledger.find_by_key(second.key).await.unwrap().unwrap();
        assert_eq!(second.refund_id.as_deref(), Some("rf_late"));
        assert_eq!(second.error_detail.as_deref(), Some("Smart Glocal: failed"));
    }

    /// Reconciliation judged an attempt absent at Smart Glocal; before its verdict is written,
    /// a webhook (which takes no payment lock) gives the attempt its refund. The verdict is
    /// checked again in its own transaction: the refund wins, the attempt is not failed.
    #[tokio::test]
    async fn a_webhook_that_finds_an_attempt_first_wins_over_reconciliations_verdict() {
        use crate::ledger::{Change, RefundState};
        let (_dir, ledger) = ledger().await;
        let session = SessionId::parse("ps_race").unwrap();
        let mut keys = Vec::new();
        for n in [1, 2] {
            let Ok(Inserted::New(row)) = ledger
                .insert_attempt(&new_attempt(&session, n, 1_500 * n))
                .await
            else {
                panic!("attempt {n} not recorded");
            };
            let lost = Change {
                state: Some(RefundState::Unknown),
                ..Change::new(shared::api::HistoryKind::Unknown)
            };
            ledger.change(row.key, lost).await.unwrap();
            keys.push(row.key);
        }
        // Reconciliation has read both as unknown and absent; the webhook lands for the first.
        let jobs = [job(
            &session,
            vec![refund("rf_first", 1_500, "in_progress")],
        )];
        assert_eq!(
            commit(&ledger, &jobs).await.unwrap(),
            [WebhookOutcome::Applied]
        );

        let verdict = "Smart Glocal showed no refund for this attempt: nothing was refunded";
        assert!(ledger
            .fail_absent(keys[0], verdict.into())
            .await
            .unwrap()
            .is_none());
        let first = ledger.find_by_key(keys[0]).await.unwrap().unwrap();
        assert_eq!(first.state, RefundState::InProgress);
        assert_eq!(first.refund_id.as_deref(), Some("rf_first"));
        // The one still absent is failed.
        let second = ledger.fail_absent(keys[1], verdict.into()).await.unwrap();
        let second = second.expect("failed");
        assert_eq!(second.state, RefundState::Failed);
        // The verdict is the refund's reason, which the widget shows, not only history.
        assert_eq!(second.view().error_detail.as_deref(), Some(verdict));
    }

    /// An attempt reconciliation gave up on too early (failed, no refund seen) that Smart
    /// Glocal shows after all: it moves on, back in progress then accepted, and its finish is
    /// the refund's, not the time it was given up.
    #[tokio::test]
    async fn an_attempt_given_up_too_early_moves_on_and_finishes_when_its_refund_does() {
        use crate::ledger::{Change, RefundState};
        let (_dir, ledger) = ledger().await;
        let session = SessionId::parse("ps_late").unwrap();
        let Ok(Inserted::New(row)) = ledger.insert_attempt(&new_attempt(&session, 1, 900)).await
        else {
            panic!("attempt not recorded");
        };
        let lost = Change {
            state: Some(RefundState::Unknown),
            ..Change::new(shared::api::HistoryKind::Unknown)
        };
        ledger.change(row.key, lost).await.unwrap();
        let given_up = ledger
            .fail_absent(row.key, "absent".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(given_up.state, RefundState::Failed);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;

        let named = |status| {
            let mut refund = refund("rf_late", 900, status);
            refund.metadata = Some(serde_json::json!({"attempt_id": row.attempt_id}));
            refund
        };
        let jobs = [job(&session, vec![named("in_progress")])];
        commit(&ledger, &jobs).await.unwrap();
        let moving = ledger.find_by_key(row.key).await.unwrap().unwrap();
        assert_eq!(moving.state, RefundState::InProgress);
        assert_eq!(moving.finished_at, None, "not finished while in progress");
        let jobs = [job(&session, vec![named("accepted")])];
        commit(&ledger, &jobs).await.unwrap();
        let done = ledger.find_by_key(row.key).await.unwrap().unwrap();
        assert_eq!(done.state, RefundState::Accepted);
        assert!(done.finished_at > given_up.finished_at, "{done:?}");
    }

    /// An attempt failed on a refusal (it has a code) whose refund Smart Glocal lists after
    /// all, naming it: money moved, so it moves on with the refund, loses the failure's code,
    /// and counts again in what its agent used today.
    #[tokio::test]
    async fn a_refused_attempt_whose_refund_turns_up_counts_again() {
        use crate::ledger::{Change, RefundState};
        use shared::api::{ErrorCode, HistoryKind};
        let (_dir, ledger) = ledger().await;
        let session = SessionId::parse("ps_refused").unwrap();
        let row = pending_attempt(&ledger, &session).await;
        let usd = shared::Currency::parse("usd").unwrap();
        let refused = Change::failed(ErrorCode::UpstreamRejected, "refused", HistoryKind::Failed);
        ledger.change(row.key, refused).await.unwrap();
        assert_eq!(ledger.refunded_today("alice", usd).await.unwrap(), 0);

        let mut refund = refund("rf_after_all", 700, "in_progress");
        refund.metadata = Some(serde_json::json!({"attempt_id": row.attempt_id}));
        commit(&ledger, &[job(&session, vec![refund])])
            .await
            .unwrap();
        let now = ledger.find_by_key(row.key).await.unwrap().unwrap();
        assert_eq!(now.state, RefundState::InProgress);
        assert_eq!(now.refund_id.as_deref(), Some("rf_after_all"));
        assert_eq!((now.error_code, now.error_detail), (None, None));
        assert_eq!(ledger.refunded_today("alice", usd).await.unwrap(), 700);
    }

    /// A refund of the same amount made elsewhere, bound to our attempt by amount while our
    /// request was on its way, when our request then comes back refused: the attempt fails
    /// and lets go of it, and the other refund is a row of its own, made elsewhere, that goes
    /// on to its end. Its money is in the ledger; the attempt's is not counted.
    #[tokio::test]
    async fn a_refused_attempt_lets_go_of_a_refund_bound_to_it_by_amount() {
        use crate::ledger::{Change, Origin, RefundState};
        use shared::api::{ErrorCode, HistoryKind};
        let (_dir, ledger) = ledger().await;
        let entered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let ledger = ledger.publishing_to(|_| {}, {
            let entered = entered.clone();
            move |state| entered.lock().unwrap().push(state)
        });
        let session = SessionId::parse("ps_released").unwrap();
        let row = pending_attempt(&ledger, &session).await;
        commit(
            &ledger,
            &[job(&session, vec![refund("rf_dash", 700, "in_progress")])],
        )
        .await
        .unwrap();
        let bound = ledger.find_by_key(row.key).await.unwrap().unwrap();
        assert_eq!(
            bound.refund_id.as_deref(),
            Some("rf_dash"),
            "the race happened"
        );

        let refused = Change::failed(ErrorCode::UpstreamRejected, "refused", HistoryKind::Failed);
        let failed = ledger.fail_unsent(row.key, refused).await.unwrap();
        assert_eq!(failed.state, RefundState::Failed);
        assert_eq!(failed.refund_id, None);
        assert_eq!(failed.error_code, Some(ErrorCode::UpstreamRejected));
        commit(
            &ledger,
            &[job(&session, vec![refund("rf_dash", 700, "accepted")])],
        )
        .await
        .unwrap();
        let rows = ledger.rows_for_session(&session).await.unwrap();
        let dash = rows
            .iter()
            .find(|r| r.refund_id.as_deref() == Some("rf_dash"))
            .unwrap();
        assert_eq!(dash.origin, Origin::Elsewhere);
        assert_eq!(dash.state, RefundState::Accepted);
        assert_eq!(rows.len(), 2);
        let usd = shared::Currency::parse("usd").unwrap();
        assert_eq!(ledger.refunded_today("alice", usd).await.unwrap(), 0);
        // Each state entered once: the refund moving to a row of its own enters none.
        use RefundState::{Accepted, Failed, InProgress, Pending};
        assert_eq!(
            *entered.lock().unwrap(),
            [Pending, InProgress, Failed, Accepted]
        );
    }

    /// The same refusal when the refund the attempt holds names it: that refund is its own,
    /// the refusal was not the last word, and nothing is failed; the refund goes on to its
    /// end as the attempt's, counted in the agent's day.
    #[tokio::test]
    async fn a_refusal_leaves_an_attempt_holding_its_own_refund_as_it_is() {
        use crate::ledger::{Change, RefundState};
        use shared::api::{ErrorCode, HistoryKind};
        let (_dir, ledger) = ledger().await;
        let session = SessionId::parse("ps_kept").unwrap();
        let row = pending_attempt(&ledger, &session).await;
        let ours = |status| {
            let mut refund = refund("rf_ours", 700, status);
            refund.metadata = Some(serde_json::json!({"attempt_id": row.attempt_id}));
            refund
        };
        commit(&ledger, &[job(&session, vec![ours("in_progress")])])
            .await
            .unwrap();
        let refused = Change::failed(ErrorCode::UpstreamRejected, "refused", HistoryKind::Failed);
        let kept = ledger.fail_unsent(row.key, refused).await.unwrap();
        assert_eq!(kept.state, RefundState::InProgress);
        assert_eq!(kept.refund_id.as_deref(), Some("rf_ours"));
        commit(&ledger, &[job(&session, vec![ours("accepted")])])
            .await
            .unwrap();
        let done = ledger.find_by_key(row.key).await.unwrap().unwrap();
        assert_eq!(done.state, RefundState::Accepted);
        assert_eq!(done.error_code, None);
        assert_eq!(ledger.rows_for_session(&session).await.unwrap().len(), 1);
        let usd = shared::Currency::parse("usd").unwrap();
        assert_eq!(ledger.refunded_today("alice", usd).await.unwrap(), 700);
    }

    /// A refund of another payment whose metadata names an attempt of this one (holding a
    /// refund already) is that payment's refund made elsewhere: the attempt is not touched.
    #[tokio::test]
    async fn a_refund_naming_another_payments_attempt_is_made_elsewhere_on_its_own() {
        use crate::ledger::ApplyOutcome;
        let (_dir, ledger) = ledger().await;
        let first = SessionId::parse("ps_first").unwrap();
        let second = SessionId::parse("ps_second").unwrap();
        let row = pending_attempt(&ledger, &first).await;
        let named = |id: &str| {
            let mut refund = refund(id, 700, "accepted");
            refund.metadata = Some(serde_json::json!({"attempt_id": row.attempt_id}));
            refund
        };
        commit(&ledger, &[job(&first, vec![named("rf_ours")])])
            .await
            .unwrap();
        let (outcome, other) = ledger
            .apply_upstream_refund(&second, &named("rf_theirs"), Source::Webhook)
            .await
            .unwrap();
        assert_eq!(outcome, ApplyOutcome::New);
        assert_eq!(other.session_id, "ps_second");
        assert_eq!(other.attempt_id, None);
        let ours = ledger.find_by_key(row.key).await.unwrap().unwrap();
        assert_eq!(ours.refund_id.as_deref(), Some("rf_ours"));
        assert_eq!(ours.attention, None);
    }

    /// Attempts recorded before the batch are matched as the per-refund look-up matched them:
    /// two refunds of the same amount in one batch take one attempt each (the second does not
    /// claim the attempt the first took), a third is recorded as made elsewhere, and the
    /// batch's refunds span several look-ups (three refunds each in tests).
    #[tokio::test]
    async fn a_batch_matches_attempts_made_before_it_one_refund_each() {
        let (_dir, ledger) = ledger().await;
        let session = SessionId::parse("ps_pairs").unwrap();
        let other = SessionId::parse("ps_other").unwrap();
        // One attempt whose answer was lost (`unknown`), then a second one, `pending` (a
        // payment has one `pending` attempt at most).
        for n in [1, 2] {
            let inserted = ledger
                .insert_attempt(&new_attempt(&session, n, 1_500))
                .await;
            let Ok(crate::ledger::Inserted::New(row)) = inserted else {
                panic!("attempt {n} not recorded: {inserted:?}");
            };
            if n == 1 {
                let lost = crate::ledger::Change {
                    state: Some(crate::ledger::RefundState::Unknown),
                    ..crate::ledger::Change::new(shared::api::HistoryKind::Unknown)
                };
                ledger.change(row.key, lost).await.unwrap();
            }
        }
        let inserted = ledger.insert_attempt(&new_attempt(&other, 3, 700)).await;
        assert!(matches!(inserted, Ok(crate::ledger::Inserted::New(_))));
        let jobs = [
            job(&session, vec![refund("rf_a", 1_500, "accepted")]),
            job(&other, vec![refund("rf_x", 700, "pending")]),
            job(
                &session,
                vec![
                    refund("rf_a", 1_500, "accepted"),
                    refund("rf_b", 1_500, "accepted"),
                ],
            ),
            job(
                &session,
                vec![
                    refund("rf_a", 1_500, "accepted"),
                    refund("rf_b", 1_500, "accepted"),
                    refund("rf_c", 1_500, "accepted"),
                ],
            ),
            job(&other, vec![refund("rf_x", 700, "accepted")]),
        ];
        let outcomes = commit(&ledger, &jobs).await.unwrap();
        assert_eq!(outcomes, [WebhookOutcome::Applied; 5]);
        let rows = ledger.rows_for_session(&session).await.unwrap();
        let by_refund = |id: &str| {
            rows.iter()
                .filter(|r| r.refund_id.as_deref() == Some(id))
                .collect::<Vec<_>>()
        };
        let (a, b, c) = (by_refund("rf_a"), by_refund("rf_b"), by_refund("rf_c"));
        assert_eq!((a.len(), b.len(), c.len()), (1, 1, 1), "{rows:?}");
        assert!(a[0].attempt_id.is_some() && b[0].attempt_id.is_some());
        assert_ne!(a[0].key, b[0].key, "one attempt each");
        assert_eq!(c[0].origin, crate::ledger::Origin::Elsewhere);
        assert_eq!(
            rows.len(),
            3,
            "no attempt left over, no row twice: {rows:?}"
        );
        let others = ledger.rows_for_session(&other).await.unwrap();
        assert_eq!(others.len(), 1, "{others:?}");
        assert_eq!(others[0].refund_id.as_deref(), Some("rf_x"));
        assert_eq!(others[0].state, crate::ledger::RefundState::Accepted);
    }
}
