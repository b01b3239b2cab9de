//! Verified webhooks, applied and recorded with group commit: one writer task takes every
//! webhook waiting, applies them all in one transaction, commits once, then answers each.
//!
//! A webhook is answered only after the commit holding it is on disk, so `200` still means
//! "durably recorded"; concurrent webhooks share one sync to disk instead of queueing for
//! one each (before, every refund in a webhook and the webhook itself were separate commits).
//! Events are published by the writer in commit order, so a stream never sees a later `seq`
//! of a payment before an earlier one from the same batch.

use shared::api::RefundEvent;
use shared::smart_glocal as sg;
use shared::SessionId;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::journal::{Entries, ROWS_PER_INSERT};
use super::refunds::{apply_in, ApplyOutcome};
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
    Record(&'static str),
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
    done: oneshot::Sender<Result<&'static str, sqlx::Error>>,
}

/// Handle to the writer task; cheap to clone. The task ends when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct WebhookWriter {
    jobs: mpsc::Sender<Job>,
}

impl WebhookWriter {
    /// Applies and records `webhook`; returns its outcome once it is committed to disk.
    pub async fn record(&self, webhook: VerifiedWebhook) -> Result<&'static str, sqlx::Error> {
        let (done, outcome) = oneshot::channel();
        self.jobs
            .send(Job { webhook, done })
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        outcome.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

impl Ledger {
    /// Starts the webhook writer. `publish` is called with each committed event, in `seq`
    /// order, before the webhooks of that commit are answered.
    pub fn webhook_writer(&self, publish: impl Fn(RefundEvent) + Send + 'static) -> WebhookWriter {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(self.pool.clone(), queue, publish));
        WebhookWriter { jobs }
    }
}

async fn run(pool: SqlitePool, mut queue: mpsc::Receiver<Job>, publish: impl Fn(RefundEvent)) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit(&pool, &batch).await {
            Ok(committed) => answer(batch.drain(..), committed, &publish),
            Err(e) if batch.len() > 1 => {
                // One webhook the database refuses must not fail the others: each alone.
                tracing::warn!(error = %e, webhooks = batch.len(), "webhook batch failed; retrying one by one");
                for job in batch.drain(..) {
                    match commit(&pool, std::slice::from_ref(&job)).await {
                        Ok(committed) => answer(std::iter::once(job), committed, &publish),
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

/// What one commit did: each webhook's outcome, and the events of all, in `seq` order.
struct Committed {
    outcomes: Vec<&'static str>,
    events: Vec<RefundEvent>,
}

fn answer(jobs: impl Iterator<Item = Job>, committed: Committed, publish: &impl Fn(RefundEvent)) {
    // Published before anyone is answered, so a client that reacts to its 200 by opening a
    // stream with `Last-Event-ID` finds the events already in the ledger and announced.
    committed.events.into_iter().for_each(publish);
    for (job, outcome) in jobs.zip(committed.outcomes) {
        // The sender may have gone (client hung up): the webhook is recorded all the same.
        let _ = job.done.send(Ok(outcome));
    }
}

/// One transaction for all of `jobs`, committed to disk before this returns.
async fn commit(pool: &SqlitePool, jobs: &[Job]) -> Result<Committed, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut journal = Entries::default();
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        outcomes.push(apply(&mut tx, &mut journal, &job.webhook).await?);
    }
    let events = journal.write(&mut tx).await?;
    let received_at = now_ms();
    for chunk in jobs
        .iter()
        .zip(&outcomes)
        .collect::<Vec<_>>()
        .chunks(ROWS_PER_INSERT)
    {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO webhooks (received_at, verified, session_id, dedup_key, outcome, raw_body) ",
        );
        insert.push_values(chunk, |mut values, (job, outcome)| {
            let webhook = &job.webhook;
            values
                .push_bind(received_at)
                .push_bind(true)
                .push_bind(webhook.session_id.as_ref().map(SessionId::as_str))
                .push_bind(&webhook.dedup_key)
                .push_bind(**outcome)
                .push_bind(&webhook.raw_body);
        });
        insert.build().persistent(false).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(Committed { outcomes, events })
}

/// Applies one webhook's refunds; its outcome (`applied`, `duplicate`, `stale`, …).
async fn apply(
    conn: &mut SqliteConnection,
    journal: &mut Entries,
    webhook: &VerifiedWebhook,
) -> Result<&'static str, sqlx::Error> {
    Ok(match (&webhook.action, &webhook.session_id) {
        (WebhookAction::Apply(refunds), Some(session)) => {
            let mut outcome = "duplicate";
            for refund in refunds {
                let applied = apply_in(conn, journal, session, refund, "webhook").await?;
                outcome = match (outcome, applied) {
                    // A contradiction is what an operator must see, whatever else it held.
                    (_, ApplyOutcome::Conflict) | ("conflict", _) => "conflict",
                    (_, ApplyOutcome::Applied | ApplyOutcome::New) => "applied",
                    ("applied", _) => "applied",
                    (_, ApplyOutcome::Stale) => "stale",
                    (current, ApplyOutcome::Duplicate) => current,
                };
            }
            outcome
        }
        (WebhookAction::Apply(_), None) => "unreadable",
        (WebhookAction::Record(outcome), _) => *outcome,
    })
}
