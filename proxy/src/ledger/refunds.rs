//! Refund rows: recording an attempt before it is sent, moving states forward only, and
//! matching Smart Glocal's refunds (from webhooks or `session/status`) to attempts.

use super::journal::{Entries, ROWS_PER_INSERT};
use super::kinds::{Origin, Source};
use super::sql::{insert_chunks, Engine, Sql, ToArg};
use super::writer::WriteTx;
use super::{now_ms, Ledger, RefundRow};
use shared::api::{ErrorCode, HistoryKind, RefundReason, RefundState};
use shared::money::to_stored;
use shared::smart_glocal as sg;
use shared::{AttemptId, IdempotencyKey, Money, Note, SessionId};

/// An attempt about to be sent.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub attempt_id: AttemptId,
    pub session_id: SessionId,
    pub agent: String,
    pub amount: Money,
    pub full_refund: bool,
    pub reason: RefundReason,
    pub note: Option<Note>,
    pub idempotency_key: IdempotencyKey,
    pub request_hash: String,
    pub refunds_before: Vec<String>,
    /// The most the agent may refund today (UTC) in this currency, if limited: checked
    /// against the agent's attempts of the day inside the insert's own transaction.
    pub daily_limit: Option<u64>,
    /// `pending` (sent next) or `awaiting_approval` (above `approval_above`: nothing is sent
    /// until a second agent approves).
    pub state: RefundState,
    /// The agent's role (the token's), shown in the history.
    pub role: Option<String>,
    /// When the agent's token was issued (`iat`, Unix seconds): a request awaiting approval
    /// is refused if `proxy revoke` covered that token meanwhile.
    pub token_issued_at: i64,
}

/// What [`Ledger::insert_attempt`] did.
// Built once per refund request and matched at once: boxing the event would save nothing
// worth an allocation (the view grew with the note and failure fields).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Inserted {
    /// Recorded as `pending` (and announced).
    New(RefundRow),
    /// The idempotency key exists already: this is that row.
    Existing(RefundRow),
    /// Another attempt on this payment is still `pending`.
    InFlight,
    /// The agent's attempts today (UTC) leave less than this one: `left` remains.
    OverDailyLimit { left: u64 },
    /// A request awaiting approval whose token was revoked after it was checked.
    Revoked,
    /// A request awaiting approval, while the same agent's earlier one on this payment still
    /// awaits its decision.
    AlreadyRequested,
}

/// What [`Ledger::approve`] did.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Approved {
    /// Now `pending`, the approval in its history: send it.
    Pending(RefundRow),
    /// Another attempt on this payment is `pending`: try again in a moment.
    InFlight,
    /// No longer awaiting approval: the row as it is.
    NotAwaiting(RefundRow),
    /// The approver's tokens were revoked (at or after the token deciding was issued) while
    /// the decision was on its way: nothing approved.
    Revoked,
}

/// A state change to apply.
#[derive(Debug, Clone)]
pub struct Change {
    pub state: Option<RefundState>,
    pub refund_id: Option<String>,
    pub error_code: Option<ErrorCode>,
    pub error_detail: Option<String>,
    pub finished_at: Option<i64>,
    /// The history line it writes.
    pub kind: HistoryKind,
    pub detail: Option<String>,
    /// The refund id it brings was matched by amount, the refund naming no attempt (kept
    /// with the row when the id is learned).
    pub bound_by_amount: bool,
}

impl Change {
    /// No change yet, writing a `kind` history line if one is made.
    pub fn new(kind: HistoryKind) -> Self {
        Self {
            state: None,
            refund_id: None,
            error_code: None,
            error_detail: None,
            finished_at: None,
            kind,
            detail: None,
            bound_by_amount: false,
        }
    }

    /// To `failed` with `code`, `detail` both the row's and its `kind` history line's.
    pub fn failed(code: ErrorCode, detail: &str, kind: HistoryKind) -> Self {
        Self {
            state: Some(RefundState::Failed),
            error_code: Some(code),
            error_detail: Some(detail.to_owned()),
            detail: Some(detail.to_owned()),
            ..Self::new(kind)
        }
    }
}

/// What applying an upstream refund did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The state moved forward (or the refund got matched to its attempt).
    Applied,
    /// Nothing new.
    Duplicate,
    /// An older state than the ledger's: recorded in history, not applied.
    Stale,
    /// A refund the ledger did not know: made elsewhere, or a chargeback.
    New,
    /// Smart Glocal contradicts the ledger (another amount or currency, or a refund id the
    /// ledger holds for another payment): recorded in history as `conflict`, not applied.
    Conflict,
}

const SELECT: &str = "SELECT * FROM refunds";

/// `amount` as stored, or an error that writes nothing: callers check amounts before they
/// reach the ledger (webhooks are refused whole), so this is the last line, not the first.
/// Refund ids as the ledger stores them: a JSON array, as text.
fn ids_json(ids: &[String]) -> Result<String, sqlx::Error> {
    serde_json::to_string(ids).map_err(|e| sqlx::Error::Encode(e.into()))
}

fn stored(amount: u64) -> Result<i64, sqlx::Error> {
    to_stored(amount).ok_or_else(|| {
        sqlx::Error::Encode(format!("amount {amount} does not fit the ledger's integers").into())
    })
}

pub(super) async fn row_by_key(tx: &mut WriteTx<'_>, key: i64) -> Result<RefundRow, sqlx::Error> {
    tx.exec()
        .fetch_one(&Sql::new(format!("{SELECT} WHERE key = ?")).bind(key))
        .await
}

/// Applies `change` to `row` inside the caller's transaction, if it goes forward, noting its
/// history line and event in `journal`. Returns the row as it now is, or `None` when nothing
/// changed.
pub(super) async fn change_row(
    tx: &mut WriteTx<'_>,
    journal: &mut Entries,
    row: &RefundRow,
    change: &Change,
) -> Result<Option<RefundRow>, sqlx::Error> {
    let id_learned = row.refund_id.is_none() && change.refund_id.is_some();
    // A `failed` attempt whose refund turns up upstream after all (reconciliation gave up on
    // it, or a refusal it was told of was not the last word) moved money: the truth wins over
    // "never backwards" here, and the failure's code and detail go (its history line stays).
    // Left failed, it would count for nothing in what remains and in the agent's day.
    let revived = row.state == RefundState::Failed && id_learned;
    let state_moves = change
        .state
        .is_some_and(|next| row.state.can_become(next) || (revived && next != RefundState::Failed));
    if !state_moves && !id_learned {
        return Ok(None);
    }
    let state = if state_moves {
        change.state.unwrap_or(row.state)
    } else {
        row.state
    };
    // When it finished: kept once final, except by a revived attempt, whose finish is Smart
    // Glocal's (or now), not the time it was failed; none while not
    // final (such an attempt back in progress).
    let finished_at = match row.finished_at {
        _ if !state.is_final() => None,
        Some(at) if row.state.is_final() && !revived => Some(at),
        _ => change.finished_at.or(Some(now_ms())),
    };
    let (error_code, error_detail) = if revived && state != RefundState::Failed {
        (None, None)
    } else {
        // A refund failed again keeps the reason it failed for first when that reason is an
        // answer's (a code: Smart Glocal's refusal, which a replay of its key answers with),
        // not replaced by a later "failed"; a verdict without one gives way to Smart Glocal's.
        let detail = if row.state == RefundState::Failed && row.error_code.is_some() {
            row.error_detail
                .clone()
                .or_else(|| change.error_detail.clone())
        } else {
            change
                .error_detail
                .clone()
                .or_else(|| row.error_detail.clone())
        };
        (change.error_code.or(row.error_code), detail)
    };
    let bound_by_amount = if id_learned {
        change.bound_by_amount
    } else {
        row.bound_by_amount
    };
    let update = Sql::new(
        "UPDATE refunds SET state = ?, refund_id = COALESCE(refund_id, ?),
            error_code = ?, error_detail = ?, bound_by_amount = ?,
            finished_at = ?, updated_at = ?, polls = 0, next_poll_at = NULL
         WHERE key = ? RETURNING *",
    )
    .bind(state)
    .bind(&change.refund_id)
    .bind(error_code)
    .bind(&error_detail)
    .bind(bound_by_amount)
    .bind(finished_at)
    .bind(now_ms())
    .bind(row.key);
    let updated: RefundRow = tx.exec().fetch_one(&update).await?;
    journal.history(&updated, change.kind, change.detail.as_deref());
    journal.event(&updated, Some(row.state));
    Ok(Some(updated))
}

impl Ledger {
    pub async fn find_by_idempotency_key(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<RefundRow>, sqlx::Error> {
        self.read()
            .fetch_optional(&Sql::new(format!("{SELECT} WHERE idempotency_key = ?")).bind(key))
            .await
    }

    /// The attempt `attempt_id` of `session`, if the ledger holds it.
    pub async fn find_attempt(
        &self,
        session: &SessionId,
        attempt_id: &AttemptId,
    ) -> Result<Option<RefundRow>, sqlx::Error> {
        self.read()
            .fetch_optional(
                &Sql::new(format!("{SELECT} WHERE attempt_id = ? AND session_id = ?"))
                    .bind(attempt_id)
                    .bind(session.as_str()),
            )
            .await
    }

    /// What `agent` asked for today (UTC) in `currency` that may yet move money (see
    /// [`used_today`]).
    pub async fn refunded_today(
        &self,
        agent: &str,
        currency: shared::Currency,
    ) -> Result<u64, sqlx::Error> {
        used_today(self.read(), agent, currency, now_ms()).await
    }

    /// A second agent approved the request `key`: `awaiting_approval` → `pending` with the
    /// refunds Smart Glocal showed just now (what the answer is matched against), unless
    /// another attempt on the payment is `pending`. `detail` (who approved, their note) is
    /// the history line's.
    pub async fn approve(
        &self,
        key: i64,
        refunds_before: &[String],
        detail: &str,
        approver: (&str, i64),
    ) -> Result<Approved, sqlx::Error> {
        let mut tx = self.write().await?;
        let mut journal = Entries::default();
        let result = async {
            if revoked_in(&mut tx, approver.0, approver.1).await? {
                return Ok(Approved::Revoked);
            }
            let row = row_by_key(&mut tx, key).await?;
            if row.state != RefundState::AwaitingApproval {
                return Ok(Approved::NotAwaiting(row));
            }
            if pending_on(&mut tx, &row.session_id).await? {
                return Ok(Approved::InFlight);
            }
            let update = Sql::new(
                "UPDATE refunds SET state = ?, refunds_before = ?, updated_at = ?
                 WHERE key = ? RETURNING *",
            )
            .bind(RefundState::Pending)
            .bind(ids_json(refunds_before)?)
            .bind(now_ms())
            .bind(key);
            let updated: RefundRow = tx.exec().fetch_one(&update).await?;
            journal.history(&updated, HistoryKind::Approved, Some(detail));
            journal.event(&updated, Some(row.state));
            Ok(Approved::Pending(updated))
        }
        .await;
        tx.finish(journal, result).await
    }

    /// Requests still awaiting approval that were made before `before` (Unix ms).
    pub async fn expired_requests(&self, before: i64) -> Result<Vec<RefundRow>, sqlx::Error> {
        self.read()
            .fetch_all(
                &Sql::new(format!(
                    "{SELECT} WHERE state = ? AND created_at < ? ORDER BY key"
                ))
                .bind(RefundState::AwaitingApproval)
                .bind(before),
            )
            .await
    }

    pub async fn find_by_key(&self, key: i64) -> Result<Option<RefundRow>, sqlx::Error> {
        self.read()
            .fetch_optional(&Sql::new(format!("{SELECT} WHERE key = ?")).bind(key))
            .await
    }

    pub async fn rows_for_session(
        &self,
        session: &SessionId,
    ) -> Result<Vec<RefundRow>, sqlx::Error> {
        self.read()
            .fetch_all(
                &Sql::new(format!("{SELECT} WHERE session_id = ? ORDER BY key"))
                    .bind(session.as_str()),
            )
            .await
    }

    /// Records an attempt as `pending` BEFORE anything is sent. The unique idempotency key and
    /// the "no other pending attempt on this payment" check are the database-level guard
    /// behind the in-process per-payment lock.
    pub async fn insert_attempt(&self, attempt: &NewAttempt) -> Result<Inserted, sqlx::Error> {
        let mut tx = self.write().await?;
        let mut journal = Entries::default();
        let result = insert_attempt_in(&mut tx, &mut journal, attempt).await;
        tx.finish(journal, result).await
    }

    /// Records `attempt`, for an intent Smart Glocal has already refunded as `refund` (the
    /// ledger that recorded it was lost: `refund_flow::adopt_lost`), and binds `refund` to it
    /// by the attempt id its metadata names, in one commit: no one sees the attempt `pending`
    /// without its refund, and a stop between the two leaves neither. The row bound, when the
    /// attempt was recorded.
    pub async fn adopt_refund(
        &self,
        attempt: &NewAttempt,
        refund: &sg::Refund,
    ) -> Result<(Inserted, Option<RefundRow>), sqlx::Error> {
        let mut tx = self.write().await?;
        let mut journal = Entries::default();
        let result = adopt_in(&mut tx, &mut journal, attempt, refund).await;
        tx.finish(journal, result).await
    }

    /// Applies `change` to the row `key` if it moves forward; the row as it now is.
    pub async fn change(&self, key: i64, change: Change) -> Result<RefundRow, sqlx::Error> {
        let mut tx = self.write().await?;
        let mut journal = Entries::default();
        let result = async {
            let row = row_by_key(&mut tx, key).await?;
            let changed = change_row(&mut tx, &mut journal, &row, &change).await?;
            Ok(changed.unwrap_or(row))
        }
        .await;
        tx.finish(journal, result).await
    }

    /// Fails the attempt `key` with `change` (a failure): Smart Glocal refused its request or
    /// never received it, so nothing of ours moved, as far as the answer says. A refund the
    /// attempt already holds says more:
    /// - bound to it by amount (the matcher's rule 3) while the request was on its way, it is
    ///   someone else's (the dashboard's, say): the attempt lets go of it, and it becomes a
    ///   row of its own, made elsewhere, as it stands. Left bound, its money would count for
    ///   nothing;
    /// - bound by name (its metadata names the attempt), it is the attempt's own, and the
    ///   refusal was not the last word: nothing is failed, the history says so (a `conflict`
    ///   line), and the row comes back as it is (not `failed`).
    pub async fn fail_unsent(&self, key: i64, change: Change) -> Result<RefundRow, sqlx::Error> {
        let mut tx = self.write().await?;
        let mut journal = Entries::default();
        let result = async {
            let row = row_by_key(&mut tx, key).await?;
            match row.refund_id.as_deref() {
                Some(held) if row.origin == Origin::Proxy && row.bound_by_amount => {
                    release(&mut tx, &mut journal, &row, held, &change).await
                }
                Some(held) if row.origin == Origin::Proxy => {
                    // Smart Glocal contradicts itself: recorded as such, the row unchanged.
                    let detail = change.detail.as_deref().unwrap_or("failed");
                    journal.history(
                        &row,
                        HistoryKind::Conflict,
                        Some(&format!(
                            "{detail}; not applied: refund {held}, which names this attempt, \
                             is at Smart Glocal"
                        )),
                    );
                    Ok(row)
                }
                _ => Ok(change_row(&mut tx, &mut journal, &row, &change)
                    .await?
                    .unwrap_or(row)),
            }
        }
        .await;
        tx.finish(journal, result).await
    }

    /// Applies `change` to `key` provided `still(row)` holds for the row read again inside
    /// this transaction; else nothing changes (`None`). For verdicts reached on an earlier
    /// read that something may have overtaken since.
    async fn change_if(
        &self,
        key: i64,
        still: impl FnOnce(&RefundRow) -> bool + Send,
        change: Change,
    ) -> Result<Option<RefundRow>, sqlx::Error> {
        let mut tx = self.write().await?;
        let mut journal = Entries::default();
        let result = async {
            let row = row_by_key(&mut tx, key).await?;
            if !still(&row) {
                return Ok(None);
            }
            change_row(&mut tx, &mut journal, &row, &change).await
        }
        .await;
        tx.finish(journal, result).await
    }

    /// Closes the request `key` with `change` (rejected, expired, or no longer sendable),
    /// provided it is still `awaiting_approval`. Its payment's lock is what keeps a second
    /// decision out, and a lock can be lost (a PostgreSQL restart drops advisory locks): an
    /// approval sent meanwhile must never be overwritten as rejected, "nothing was sent".
    pub async fn close_request(
        &self,
        key: i64,
        change: Change,
    ) -> Result<Option<RefundRow>, sqlx::Error> {
        self.change_if(
            key,
            |row| row.state == RefundState::AwaitingApproval,
            change,
        )
        .await
    }

    /// Reconciliation's verdict on attempt `key`, which Smart Glocal has shown no refund for
    /// long enough: `failed`, provided it still is what was judged (unresolved, no refund id,
    /// no contradiction flagged). A webhook matches refunds without the payment's lock, so
    /// one may have given the attempt its refund since reconciliation read it: that wins,
    /// and nothing changes (`None`).
    pub async fn fail_absent(
        &self,
        key: i64,
        detail: String,
    ) -> Result<Option<RefundRow>, sqlx::Error> {
        let still_absent = |row: &RefundRow| {
            matches!(row.state, RefundState::Unknown | RefundState::Pending)
                && row.refund_id.is_none()
                && row.attention.is_none()
        };
        // The verdict is the row's reason as well as its history line's: the widget shows it.
        let change = Change {
            state: Some(RefundState::Failed),
            error_detail: Some(detail.clone()),
            detail: Some(detail),
            ..Change::new(HistoryKind::Reconciled)
        };
        self.change_if(key, still_absent, change).await
    }

    /// Applies one of Smart Glocal's refunds of `session` as reported by the answer to our
    /// request, a webhook or `session/status` (`source`: `sent`, `webhook` or `reconciled`):
    /// the one place a refund is matched to its attempt. Matched by refund id, else to
    /// an unresolved attempt (by the attempt id in its metadata, else by amount among refunds
    /// that did not exist before the attempt), else recorded as made elsewhere. Returns what
    /// it did and the row the refund now lives in (so no caller reads it back).
    pub async fn apply_upstream_refund(
        &self,
        session: &SessionId,
        refund: &sg::Refund,
        source: Source,
    ) -> Result<(ApplyOutcome, RefundRow), sqlx::Error> {
        let mut tx = self.write().await?;
        let mut journal = Entries::default();
        let result = apply_in(&mut tx, &mut journal, session, refund, source, None).await;
        tx.finish(journal, result).await
    }

    /// Payments with an attempt `pending` (being sent, or left so by a process that died)
    /// since before `before` (Unix ms).
    pub async fn sessions_pending(&self, before: i64) -> Result<Vec<String>, sqlx::Error> {
        self.read()
            .fetch_all(
                &Sql::new(
                    "SELECT DISTINCT session_id FROM refunds
                     WHERE state = 'pending' AND updated_at < ? ORDER BY session_id",
                )
                .bind(before),
            )
            .await
    }

    /// Attempts of `session` still `pending` while no request holds the payment (the caller
    /// does): the process sending them stopped, or could not record Smart Glocal's answer.
    /// Unknown now, for reconciliation to settle from Smart Glocal's own record.
    /// Only attempts `pending` since before `before` (Unix ms; `i64::MAX`: all of them).
    pub async fn orphaned_to_unknown(
        &self,
        session: &SessionId,
        before: i64,
    ) -> Result<usize, sqlx::Error> {
        let detail = "the proxy sending it stopped, or could not record Smart Glocal's answer";
        let mut tx = self.write().await?;
        let mut journal = Entries::default();
        let result = async {
            let rows: Vec<RefundRow> = tx
                .exec()
                .fetch_all(
                    &Sql::new(format!(
                        "{SELECT} WHERE state = 'pending' AND session_id = ? AND updated_at < ?
                         ORDER BY key"
                    ))
                    .bind(session.as_str())
                    .bind(before),
                )
                .await?;
            for row in &rows {
                let change = Change {
                    state: Some(RefundState::Unknown),
                    detail: Some(detail.to_owned()),
                    ..Change::new(HistoryKind::Interrupted)
                };
                change_row(&mut tx, &mut journal, row, &change).await?;
            }
            Ok(rows.len())
        }
        .await;
        tx.finish(journal, result).await
    }

    /// Payments with a refund whose outcome is not recorded yet (`pending`, `unknown`, or
    /// `in_progress`: its final webhook may have been refused for as long as Smart Glocal
    /// retries while the ledger could not write).
    pub async fn sessions_in_flight(&self) -> Result<Vec<String>, sqlx::Error> {
        self.read()
            .fetch_all(&Sql::new(
                "SELECT DISTINCT session_id FROM refunds WHERE state IN ('pending', 'unknown', 'in_progress') ORDER BY session_id",
            ))
            .await
    }

    /// Rows reconciliation should look at now: `unknown` attempts, `pending` ones older than
    /// `stale_pending_before` (their request is long gone), and refunds `in_progress` since
    /// before `in_progress_before`, each once its `next_poll_at` has come, or when that is
    /// after `set_before_a_step_back` (further ahead than any wait reconciliation sets: the
    /// wall clock stepped back since, and would hold the row that much longer). Every one is
    /// looked at until it ends, however many polls that takes.
    pub async fn due_for_reconcile(
        &self,
        stale_pending_before: i64,
        in_progress_before: i64,
        set_before_a_step_back: i64,
    ) -> Result<Vec<RefundRow>, sqlx::Error> {
        self.read()
            .fetch_all(
                &Sql::new(format!(
                    "{SELECT} WHERE (state = 'unknown'
                         OR (state = 'pending' AND updated_at < ?)
                         OR (state = 'in_progress' AND updated_at < ?))
                       AND (next_poll_at IS NULL OR next_poll_at <= ? OR next_poll_at > ?)
                     ORDER BY key"
                ))
                .bind(stale_pending_before)
                .bind(in_progress_before)
                .bind(now_ms())
                .bind(set_before_a_step_back),
            )
            .await
    }

    /// Notes that a `session/status` answer showed no refund for the unresolved attempt
    /// `key`; returns since when that has been so (the first such answer) and how many such
    /// answers there have been, this one included.
    pub async fn note_absent(&self, key: i64, now: i64) -> Result<(i64, i64), sqlx::Error> {
        let mut tx = self.write().await?;
        let update = Sql::new(
            "UPDATE refunds SET absent_since = COALESCE(absent_since, ?), absent_polls = absent_polls + 1
             WHERE key = ? RETURNING absent_since, absent_polls",
        )
        .bind(now)
        .bind(key);
        let result = tx.exec().fetch_one(&update).await;
        tx.finish(Entries::default(), result).await
    }

    /// Counts one more poll of `key` and when the next may happen.
    pub async fn note_poll(&self, key: i64, next_poll_at: i64) -> Result<i64, sqlx::Error> {
        let mut tx = self.write().await?;
        let update = Sql::new(
            "UPDATE refunds SET polls = polls + 1, next_poll_at = ? WHERE key = ? RETURNING polls",
        )
        .bind(next_poll_at)
        .bind(key);
        let result = tx.exec().fetch_one(&update).await;
        tx.finish(Entries::default(), result).await
    }
}

/// Whether an attempt on `session` is `pending` (being sent): at most one is.
async fn pending_on(tx: &mut WriteTx<'_>, session: &str) -> Result<bool, sqlx::Error> {
    let pending: i64 = tx
        .exec()
        .fetch_one(
            &Sql::new("SELECT COUNT(*) FROM refunds WHERE session_id = ? AND state = ?")
                .bind(session)
                .bind(RefundState::Pending),
        )
        .await?;
    Ok(pending > 0)
}

/// Whether `attempt`'s agent has a request awaiting approval on its payment.
async fn awaiting_from(tx: &mut WriteTx<'_>, attempt: &NewAttempt) -> Result<bool, sqlx::Error> {
    let awaiting: i64 = tx
        .exec()
        .fetch_one(
            &Sql::new(
                "SELECT COUNT(*) FROM refunds WHERE session_id = ? AND agent = ? AND state = ?",
            )
            .bind(attempt.session_id.as_str())
            .bind(&attempt.agent)
            .bind(RefundState::AwaitingApproval),
        )
        .await?;
    Ok(awaiting > 0)
}

/// Everything `agent` asked for on the UTC day of `now` in `currency` that did not fail:
/// pending, unknown and awaiting-approval ones count, they may yet move money.
async fn used_today(
    exec: super::sql::Exec<'_>,
    agent: &str,
    currency: shared::Currency,
    now: i64,
) -> Result<u64, sqlx::Error> {
    const DAY_MS: i64 = 86_400_000;
    // CAST: PostgreSQL's SUM of BIGINT is NUMERIC.
    let used: i64 = exec
        .fetch_one(
            &Sql::new(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refunds
                 WHERE agent = ? AND origin = ? AND currency = ? AND created_at >= ? AND state != ?",
            )
            .bind(agent)
            .bind(Origin::Proxy)
            .bind(currency)
            .bind(now - now.rem_euclid(DAY_MS))
            .bind(RefundState::Failed),
        )
        .await?;
    Ok(shared::money::from_stored(used).unwrap_or(u64::MAX))
}

/// Whether `agent`'s tokens issued at `issued_at` (Unix seconds) are revoked, read inside
/// the write transaction about to act on one: a `proxy revoke` committed after the request's
/// own check (while it waited for its payment's lock, or for Smart Glocal) still holds.
async fn revoked_in(
    tx: &mut WriteTx<'_>,
    agent: &str,
    issued_at: i64,
) -> Result<bool, sqlx::Error> {
    let revoked: i64 = tx
        .exec()
        .fetch_one(
            &Sql::new(
                "SELECT COUNT(*) FROM agent_revocations WHERE agent = ? AND revoked_until >= ?",
            )
            .bind(agent)
            .bind(issued_at),
        )
        .await?;
    Ok(revoked > 0)
}

/// [`Ledger::insert_attempt`] inside the caller's transaction.
///
/// Without a daily limit to check, the common case is one statement: the idempotency key and
/// "one `pending` attempt per payment" are unique indexes, so an insert that would break
/// either inserts nothing (`ON CONFLICT DO NOTHING`), and only then is the reason looked up.
async fn adopt_in(
    tx: &mut WriteTx<'_>,
    journal: &mut Entries,
    attempt: &NewAttempt,
    refund: &sg::Refund,
) -> Result<(Inserted, Option<RefundRow>), sqlx::Error> {
    let inserted = insert_attempt_in(tx, journal, attempt).await?;
    let Inserted::New(row) = &inserted else {
        return Ok((inserted, None));
    };
    let key = row.key;
    let (_, bound) = apply_in(
        tx,
        journal,
        &attempt.session_id,
        refund,
        Source::Reconciled,
        None,
    )
    .await?;
    // Bound to another attempt (by amount, had its metadata named none): nothing is kept, or
    // the new attempt would stay `pending` and hold the payment.
    if bound.key != key {
        return Err(sqlx::Error::Protocol(
            "the refund Smart Glocal has for this key went to another attempt".into(),
        ));
    }
    Ok((inserted, Some(bound)))
}

async fn insert_attempt_in(
    tx: &mut WriteTx<'_>,
    journal: &mut Entries,
    attempt: &NewAttempt,
) -> Result<Inserted, sqlx::Error> {
    let now = now_ms();
    // A request checked against revocations before `proxy revoke` committed, recorded after
    // it: a request awaiting approval would outlive the revocation that closed the agent's
    // others, and one to be sent may have waited minutes for the payment's lock behind a
    // slow Smart Glocal. Neither is recorded.
    if revoked_in(tx, &attempt.agent, attempt.token_issued_at).await? {
        return Ok(Inserted::Revoked);
    }
    let awaiting = attempt.state == RefundState::AwaitingApproval;
    if attempt.daily_limit.is_none() && !awaiting {
        if let Some(row) = insert_row(tx, attempt, now).await? {
            return Ok(recorded(journal, attempt, row));
        }
    }
    let existing: Option<RefundRow> = tx
        .exec()
        .fetch_optional(
            &Sql::new(format!("{SELECT} WHERE idempotency_key = ?")).bind(&attempt.idempotency_key),
        )
        .await?;
    if let Some(row) = existing {
        return Ok(Inserted::Existing(row));
    }
    // A request awaiting approval sends nothing, so it waits beside a pending attempt.
    if attempt.state == RefundState::Pending && pending_on(tx, attempt.session_id.as_str()).await? {
        return Ok(Inserted::InFlight);
    }
    // One request awaiting approval per agent and payment: each writes a row, a history line
    // and an event, holds nothing back (`holds_money`), and is read by every look-up of the
    // payment, so without this one agent could add them without end.
    if awaiting && awaiting_from(tx, attempt).await? {
        return Ok(Inserted::AlreadyRequested);
    }
    if let Some(limit) = attempt.daily_limit {
        let used = used_today(tx.exec(), &attempt.agent, attempt.amount.currency, now).await?;
        let left = limit.saturating_sub(used);
        if attempt.amount.amount > left {
            return Ok(Inserted::OverDailyLimit { left });
        }
    }
    match insert_row(tx, attempt, now).await? {
        Some(row) => Ok(recorded(journal, attempt, row)),
        // Neither the key nor a pending attempt: a random attempt id met its twin.
        None => Err(sqlx::Error::Protocol(format!(
            "attempt {} conflicts with a row of the ledger",
            attempt.attempt_id
        ))),
    }
}

/// The attempt's row, inserted unless a unique index already holds its like.
async fn insert_row(
    tx: &mut WriteTx<'_>,
    attempt: &NewAttempt,
    now: i64,
) -> Result<Option<RefundRow>, sqlx::Error> {
    let insert = Sql::new(
        "INSERT INTO refunds (attempt_id, session_id, origin, agent, amount, currency, full_refund, reason,
            note, idempotency_key, request_hash, refunds_before, state, created_at, updated_at, role)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING RETURNING *",
    )
    .bind(&attempt.attempt_id)
    .bind(attempt.session_id.as_str())
    .bind(Origin::Proxy)
    .bind(&attempt.agent)
    .bind(stored(attempt.amount.amount)?)
    .bind(attempt.amount.currency)
    .bind(attempt.full_refund)
    .bind(attempt.reason)
    .bind(&attempt.note)
    .bind(&attempt.idempotency_key)
    .bind(&attempt.request_hash)
    .bind(ids_json(&attempt.refunds_before)?)
    .bind(attempt.state)
    .bind(now)
    .bind(now)
    .bind(&attempt.role);
    tx.exec().fetch_optional(&insert).await
}

/// A new attempt's history line and event.
fn recorded(journal: &mut Entries, attempt: &NewAttempt, row: RefundRow) -> Inserted {
    let kind = match attempt.state {
        RefundState::AwaitingApproval => HistoryKind::ApprovalRequested,
        _ => HistoryKind::Requested,
    };
    journal.history(&row, kind, attempt.note.as_ref().map(Note::as_str));
    journal.event(&row, None);
    Inserted::New(row)
}

/// Refunds whose rows one statement of [`BatchRows::read`] looks up (two bound values each at
/// most, far under every engine's limit). Small in tests, so they cross it.
const REFUNDS_PER_READ: usize = if cfg!(test) { 3 } else { 1_000 };

/// The refund rows a batch of upstream refunds may touch, read in one statement for the whole
/// batch and kept current as the batch writes them: the batch holds the writer, so nothing
/// else changes them meanwhile. Each refund then finds its rows here, as [`apply_in`]'s own
/// look-up would have found them in the table, without a round trip of its own.
///
/// A refund new to the ledger is not inserted on its own either: it waits here as a row
/// with a provisional key below zero, and [`BatchRows::write_new`] inserts every such row
/// together (a few multi-row statements), before anything needs its key (a later refund of the batch that matches
/// it, and in any case before the batch commits). Its history line and event need no key.
#[derive(Default)]
pub(super) struct BatchRows {
    /// Each row once, as it now is.
    rows: Vec<RefundRow>,
    /// Provisional keys handed out so far (the next is `-(unwritten + 1)`).
    unwritten: i64,
}

impl BatchRows {
    /// Every row matched to one of `refunds`' ids, and every attempt one of them could belong
    /// to (a payment's attempts without a refund id, `pending`, `unknown` or `failed`).
    pub(super) async fn read(
        tx: &mut WriteTx<'_>,
        refunds: &[(&SessionId, &sg::Refund)],
    ) -> Result<Self, sqlx::Error> {
        let mut rows: Vec<RefundRow> = Vec::new();
        // A webhook lists every refund of its payment: a burst of them could pass the
        // engines' limits on bound values (32,766 on SQLite) in one statement.
        for chunk in refunds.chunks(REFUNDS_PER_READ) {
            rows.extend(Self::read_chunk(tx, chunk).await?);
        }
        // A row two chunks both read (its payment in each) is kept once.
        rows.sort_by_key(|row| row.key);
        rows.dedup_by_key(|row| row.key);
        Ok(Self { rows, unwritten: 0 })
    }

    async fn read_chunk(
        tx: &mut WriteTx<'_>,
        refunds: &[(&SessionId, &sg::Refund)],
    ) -> Result<Vec<RefundRow>, sqlx::Error> {
        let mut ids: Vec<&str> = refunds.iter().map(|(_, r)| r.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut sessions: Vec<&str> = refunds.iter().map(|(s, _)| s.as_str()).collect();
        sessions.sort_unstable();
        sessions.dedup();
        // On SQLite both lists are padded to one power of two (the last value repeated,
        // which changes nothing in an `IN`), so that the statement's text recurs and stays
        // prepared on the connection: one text per power of two, up to the one at or above
        // `REFUNDS_PER_READ` (1,024). On PostgreSQL a batch's look-up is planned for its
        // values every time (`Sql::once`); one refund's, the same text each time, is kept.
        let on_sqlite = tx.engine() == Engine::Sqlite;
        if on_sqlite {
            let padded = ids.len().max(sessions.len()).next_power_of_two();
            for list in [&mut ids, &mut sessions] {
                if let Some(&last) = list.last() {
                    list.resize(padded, last);
                }
            }
        }
        let in_ids = vec!["?"; ids.len()].join(", ");
        let in_sessions = vec!["?"; sessions.len()].join(", ");
        // One look-up for both: the rows already matched to these refunds, and the attempts
        // they could belong to, each through its own index: on SQLite one `OR` whose
        // `+refund_id` keeps the planner on the payment's index rather than every refund-less
        // attempt of every payment; on PostgreSQL a `UNION ALL` of two index look-ups (the
        // `OR` is planned from the table's statistics, and a young, growing table without
        // them is scanned whole).
        let text = match tx.engine() {
            Engine::Sqlite => format!(
                "{SELECT} WHERE refund_id IN ({in_ids})
                    OR (session_id IN ({in_sessions}) AND origin = ? AND +refund_id IS NULL
                        AND state IN (?, ?, ?))"
            ),
            Engine::Postgres => format!(
                "{SELECT} WHERE refund_id IN ({in_ids})
                 UNION ALL
                 {SELECT} WHERE session_id IN ({in_sessions}) AND origin = ?
                    AND refund_id IS NULL AND state IN (?, ?, ?)"
            ),
        };
        let mut query = Sql::new(text);
        if !on_sqlite && (ids.len() > 1 || sessions.len() > 1) {
            query = query.once();
        }
        for id in ids {
            query = query.bind(id);
        }
        for session in sessions {
            query = query.bind(session);
        }
        let query = query
            .bind(Origin::Proxy)
            .bind(RefundState::Pending)
            .bind(RefundState::Unknown)
            .bind(RefundState::Failed);
        tx.exec().fetch_all(&query).await
    }

    /// What `apply_in`'s look-up selects for `refund` of `session`, as the rows now are.
    fn select(&self, session: &SessionId, refund: &sg::Refund) -> Vec<RefundRow> {
        let mut rows: Vec<RefundRow> = self
            .rows
            .iter()
            .filter(|row| {
                row.refund_id.as_deref() == Some(refund.id.as_str())
                    || (row.session_id == session.as_str()
                        && row.origin == Origin::Proxy
                        && row.refund_id.is_none()
                        && matches!(
                            row.state,
                            RefundState::Pending | RefundState::Unknown | RefundState::Failed
                        ))
            })
            .cloned()
            .collect();
        rows.sort_by_key(|row| row.key);
        rows
    }

    /// `row` as the batch just wrote it.
    fn keep(&mut self, row: &RefundRow) {
        match self.rows.iter_mut().find(|r| r.key == row.key) {
            Some(kept) => *kept = row.clone(),
            None => self.rows.push(row.clone()),
        }
    }

    /// `row`, new to the ledger, kept under a provisional key (below zero, never a stored
    /// row's) until [`write_new`](BatchRows::write_new) inserts it.
    fn wait(&mut self, row: RefundRow) -> RefundRow {
        self.unwritten += 1;
        let row = RefundRow {
            key: -self.unwritten,
            ..row
        };
        self.rows.push(row.clone());
        row
    }

    /// Inserts every row still waiting under a provisional key, in the order they were
    /// learned (multi-row inserts of at most [`ROWS_PER_INSERT`] rows, see
    /// [`insert_chunks`]), and keeps each as stored. A stored
    /// row that differs from what the batch announced for it, its key aside, is an error:
    /// the whole batch rolls back rather than commit a history that says otherwise.
    pub(super) async fn write_new(&mut self, tx: &mut WriteTx<'_>) -> Result<(), sqlx::Error> {
        let waiting: Vec<RefundRow> = self.rows.iter().filter(|r| r.key < 0).cloned().collect();
        for chunk in insert_chunks(tx.engine(), &waiting, ROWS_PER_INSERT) {
            let insert = Sql::insert_rows(
                "INSERT INTO refunds (refund_id, session_id, origin, amount, currency, state, error_detail, created_at, updated_at, finished_at)",
                chunk.iter().map(|row| {
                    vec![
                        (&row.refund_id).to_arg(),
                        row.session_id.as_str().to_arg(),
                        row.origin.to_arg(),
                        row.amount.to_arg(),
                        row.currency.to_arg(),
                        row.state.to_arg(),
                        (&row.error_detail).to_arg(),
                        row.created_at.to_arg(),
                        row.updated_at.to_arg(),
                        row.finished_at.to_arg(),
                    ]
                }),
            )
            .returning_all();
            let stored: Vec<RefundRow> = tx.exec().fetch_all(&insert).await?;
            for row in stored {
                let kept = self
                    .rows
                    .iter_mut()
                    .find(|r| r.key < 0 && r.refund_id == row.refund_id)
                    .ok_or_else(|| unlike("a row it did not insert", &row))?;
                let announced = RefundRow {
                    key: row.key,
                    ..kept.clone()
                };
                if announced != row {
                    return Err(unlike("a row other than the one announced", &row));
                }
                *kept = row;
            }
        }
        match self.rows.iter().find(|r| r.key < 0) {
            Some(left) => Err(unlike("no row", left)),
            None => Ok(()),
        }
    }
}

/// The error of an insert whose stored row is not the one the batch holds for it.
fn unlike(what: &str, row: &RefundRow) -> sqlx::Error {
    sqlx::Error::Protocol(format!(
        "the insert of refund {:?} returned {what}",
        row.refund_id
    ))
}

/// Applies one upstream refund inside the caller's transaction (see
/// [`Ledger::apply_upstream_refund`]); its history and event go to `journal`. With `batch`,
/// the rows come from it (and what is written goes back to it) instead of a look-up of its own,
/// and a refund new to the ledger comes back with its provisional key (below zero): its row is
/// inserted by [`BatchRows::write_new`], and only that row carries the key to use.
pub(super) async fn apply_in(
    tx: &mut WriteTx<'_>,
    journal: &mut Entries,
    session: &SessionId,
    refund: &sg::Refund,
    source: Source,
    mut batch: Option<&mut BatchRows>,
) -> Result<(ApplyOutcome, RefundRow), sqlx::Error> {
    let (outcome, row) =
        apply_to_rows(tx, journal, session, refund, source, batch.as_deref_mut()).await?;
    if let Some(batch) = batch {
        batch.keep(&row);
    }
    Ok((outcome, row))
}

/// Applies `refund`; with `batch`, a refund new to the ledger gets a provisional key and is
/// inserted later by [`BatchRows::write_new`].
async fn apply_to_rows(
    tx: &mut WriteTx<'_>,
    journal: &mut Entries,
    session: &SessionId,
    refund: &sg::Refund,
    source: Source,
    mut batch: Option<&mut BatchRows>,
) -> Result<(ApplyOutcome, RefundRow), sqlx::Error> {
    let state = RefundState::from(&refund.status);
    let finished_at = refund.finished_at.map(|t| t.unix_millis());
    let said = format!("Smart Glocal: {}", refund.status);
    let mut change = Change {
        state: Some(state),
        refund_id: Some(refund.id.to_string()),
        finished_at,
        // A refund Smart Glocal failed or cancelled says so where the widget shows why.
        error_detail: (state == RefundState::Failed).then(|| said.clone()),
        detail: Some(said),
        ..Change::new(source.history_kind())
    };

    // Without a batch, the same look-up for this one refund. A row the batch has not
    // inserted yet is inserted now: what follows may change it by its key.
    let rows = match batch.as_deref_mut() {
        Some(batch) => {
            let rows = batch.select(session, refund);
            if rows.iter().any(|row| row.key < 0) {
                batch.write_new(tx).await?;
                batch.select(session, refund)
            } else {
                rows
            }
        }
        None => BatchRows::read(tx, &[(session, refund)])
            .await?
            .select(session, refund),
    };
    let (known, candidates): (Vec<RefundRow>, Vec<RefundRow>) = rows
        .into_iter()
        .partition(|row| row.refund_id.as_deref() == Some(refund.id.as_str()));
    // `taken`: the attempt `refund` names, which holds another refund, bound to it by amount
    // before this one came.
    let (row, taken) = match known.into_iter().next() {
        Some(row) => (Some(row), false),
        None => match match_attempt(candidates, refund) {
            Some(row) => {
                change.bound_by_amount = named_attempt(refund).is_none();
                (Some(row), false)
            }
            None => {
                let taken = named_but_taken(tx, batch.as_deref(), session, refund).await?;
                let is_taken = taken.is_some();
                (taken, is_taken)
            }
        },
    };
    match row {
        Some(row) => {
            if let Some(reason) = contradiction(&row, session, refund) {
                tracing::error!(
                    refund_id = %refund.id, session_id = %session, %reason, %source,
                    "Smart Glocal contradicts the ledger: recorded as a conflict, not applied"
                );
                let detail = format!("{source}: {reason}; not applied, needs attention");
                // Flagged on the refund itself, so every widget on the payment shows it (the
                // event), and kept until someone resolves it; its amounts stay the ledger's.
                let flagged: RefundRow = tx
                    .exec()
                    .fetch_one(
                        &Sql::new("UPDATE refunds SET attention = ? WHERE key = ? RETURNING *")
                            .bind(&reason)
                            .bind(row.key),
                    )
                    .await?;
                journal.history(&flagged, HistoryKind::Conflict, Some(&detail));
                journal.event(&flagged, Some(row.state));
                return Ok((ApplyOutcome::Conflict, flagged));
            }
            if taken {
                return rebind(tx, journal, &row, &change, source, batch).await;
            }
            if let Some(changed) = change_row(tx, journal, &row, &change).await? {
                return Ok((ApplyOutcome::Applied, changed));
            }
            if row.state == state {
                return Ok((ApplyOutcome::Duplicate, row));
            }
            if source == Source::Webhook {
                let detail = format!(
                    "late `{}` after `{}`: recorded, not applied",
                    refund.status,
                    row.state.as_str()
                );
                // Recorded once: the same late webhook again (Smart Glocal's retry, or one
                // replayed, signature and all) says nothing new, and must not add a line to
                // the payment's history at every replay.
                let recorded: Option<i64> = tx
                    .exec()
                    .fetch_optional(
                        &Sql::new(
                            "SELECT id FROM history WHERE session_id = ? AND refund_id = ?
                             AND kind = ? AND detail = ? LIMIT 1",
                        )
                        .bind(row.session_id.as_str())
                        .bind(refund.id.as_str())
                        .bind(HistoryKind::WebhookIgnored.as_str())
                        .bind(&detail),
                    )
                    .await?;
                // In the same batch, the line is not in `history` yet.
                let pending =
                    journal.has_history(refund.id.as_str(), HistoryKind::WebhookIgnored, &detail);
                if recorded.is_some() || pending {
                    return Ok((ApplyOutcome::Duplicate, row));
                }
                journal.history(&row, HistoryKind::WebhookIgnored, Some(&detail));
            }
            Ok((ApplyOutcome::Stale, row))
        }
        None => {
            let (origin, kind) = if refund.is_chargeback {
                (Origin::Chargeback, HistoryKind::Chargeback)
            } else {
                (Origin::Elsewhere, HistoryKind::RefundedElsewhere)
            };
            let now = now_ms();
            let learned = Learned {
                session: session.as_str(),
                refund_id: refund.id.as_str(),
                origin,
                amount: stored(refund.amount_details.amount)?,
                currency: refund.amount_details.currency,
                state,
                error_detail: (state == RefundState::Failed)
                    .then(|| format!("Smart Glocal: {}", refund.status)),
                created_at: refund.created_at.map(|t| t.unix_millis()).unwrap_or(now),
                finished_at: if state.is_final() {
                    finished_at.or(Some(now))
                } else {
                    None
                },
            };
            let row = insert_learned(tx, batch, learned.row(now)).await?;
            journal.history(&row, kind, Some(&format!("learned from {source}")));
            journal.event(&row, None);
            Ok((ApplyOutcome::New, row))
        }
    }
}

/// A refund of Smart Glocal's new to the ledger (made elsewhere, or a chargeback), before its
/// row is written.
struct Learned<'a> {
    session: &'a str,
    refund_id: &'a str,
    origin: Origin,
    amount: i64,
    currency: shared::Currency,
    state: RefundState,
    /// Why, for one learned failed (Smart Glocal's word).
    error_detail: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
}

impl Learned<'_> {
    /// The row as the insert will store it: every column not written is its default.
    fn row(&self, now: i64) -> RefundRow {
        RefundRow {
            key: 0,
            attempt_id: None,
            refund_id: Some(self.refund_id.to_owned()),
            session_id: self.session.to_owned(),
            origin: self.origin,
            agent: None,
            amount: self.amount,
            currency: self.currency,
            full_refund: false,
            reason: None,
            note: None,
            idempotency_key: None,
            request_hash: None,
            refunds_before: Vec::new(),
            state: self.state,
            error_code: None,
            error_detail: self.error_detail.clone(),
            polls: 0,
            next_poll_at: None,
            created_at: self.created_at,
            updated_at: now,
            finished_at: self.finished_at,
            absent_since: None,
            attention: None,
            role: None,
            bound_by_amount: false,
        }
    }
}

/// Writes `learned`: with `batch`, among the batch's other new rows (see
/// [`BatchRows::write_new`], it comes back under its provisional key); alone, at once.
async fn insert_learned(
    tx: &mut WriteTx<'_>,
    batch: Option<&mut BatchRows>,
    learned: RefundRow,
) -> Result<RefundRow, sqlx::Error> {
    match batch {
        Some(batch) => Ok(batch.wait(learned)),
        None => {
            let mut alone = BatchRows::default();
            let row = alone.wait(learned);
            alone.write_new(tx).await?;
            alone.rows.pop().ok_or_else(|| unlike("no row", &row))
        }
    }
}

/// The attempt `refund`'s metadata names, when the ledger has bound another refund to it:
/// that one named no attempt and was matched by amount (rule 3 of the matcher) while the
/// attempt was still unresolved, before the refund naming it came. The dashboard's refund of
/// the same sum, whose webhook arrived before our own answer, is the usual case.
async fn named_but_taken(
    tx: &mut WriteTx<'_>,
    batch: Option<&BatchRows>,
    session: &SessionId,
    refund: &sg::Refund,
) -> Result<Option<RefundRow>, sqlx::Error> {
    let Some(id) = named_attempt(refund).filter(|_| !refund.is_chargeback) else {
        return Ok(None);
    };
    // The batch's copy is the row as it now is, if the batch holds it.
    let held = batch.and_then(|b| b.rows.iter().find(|r| r.attempt_id.as_ref() == Some(&id)));
    let row = match held {
        Some(row) => Some(row.clone()),
        None => {
            tx.exec()
                .fetch_optional(&Sql::new(format!("{SELECT} WHERE attempt_id = ?")).bind(&id))
                .await?
        }
    };
    // Another payment's attempt is not this refund's, whatever its metadata says: the refund
    // is then made elsewhere, on its own payment.
    Ok(row.filter(|row| {
        row.origin == Origin::Proxy
            && row.session_id == session.as_str()
            && row
                .refund_id
                .as_deref()
                .is_some_and(|other| other != refund.id.as_str())
    }))
}

/// Binds `row`'s attempt to the refund `change` names, which names the attempt, and records
/// the refund it held until now (matched by amount) as made elsewhere, as it stands: both
/// moved money, and each is now the ledger's under its own id. The attempt takes the named
/// refund's state as it is, even an earlier one than the other's: it is another refund.
async fn rebind(
    tx: &mut WriteTx<'_>,
    journal: &mut Entries,
    row: &RefundRow,
    change: &Change,
    source: Source,
    batch: Option<&mut BatchRows>,
) -> Result<(ApplyOutcome, RefundRow), sqlx::Error> {
    let (Some(other), Some(named), Some(state)) = (
        row.refund_id.as_deref(),
        change.refund_id.as_deref(),
        change.state,
    ) else {
        return Err(unlike("a re-binding without both refunds", row));
    };
    let now = now_ms();
    let finished_at = state.is_final().then(|| change.finished_at.unwrap_or(now));
    let update = Sql::new(
        "UPDATE refunds SET state = ?, refund_id = ?, bound_by_amount = ?, finished_at = ?,
            updated_at = ?, polls = 0, next_poll_at = NULL, absent_since = NULL,
            absent_polls = 0
         WHERE key = ? RETURNING *",
    )
    .bind(state)
    .bind(named)
    .bind(false)
    .bind(finished_at)
    .bind(now)
    .bind(row.key);
    let rebound: RefundRow = tx.exec().fetch_one(&update).await?;
    let attempt = row.attempt_id.as_ref().map_or("", |id| id.as_str());
    journal.history(
        &rebound,
        change.kind,
        Some(&format!(
            "{source}: refund {named} names this attempt; refund {other}, matched to it by \
             amount before, is recorded as made elsewhere"
        )),
    );
    // The refund named is new to the ledger: its state is one entered. The one it held moves
    // to a row of its own in the state it had (`split_off`), which is none.
    journal.event(&rebound, None);
    let why = format!(
        "matched by amount to attempt {attempt} until refund {named}, which names that \
         attempt, came ({source})"
    );
    split_off(tx, journal, row, other, batch, &why).await?;
    Ok((ApplyOutcome::Applied, rebound))
}

/// Writes `held`, the refund the attempt `row` held until now (bound by amount, someone
/// else's), as a row of its own, made elsewhere, in the state the attempt had from it; its
/// history line says `why`. The attempt has let go of it already (the refund id is unique).
async fn split_off(
    tx: &mut WriteTx<'_>,
    journal: &mut Entries,
    row: &RefundRow,
    held: &str,
    batch: Option<&mut BatchRows>,
    why: &str,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let learned = Learned {
        session: &row.session_id,
        refund_id: held,
        origin: Origin::Elsewhere,
        amount: row.amount,
        currency: row.currency,
        state: row.state,
        // Bound by amount only while the attempt was unresolved: a failure it shows since is
        // that refund's, and so is its reason.
        error_detail: row
            .error_detail
            .clone()
            .filter(|_| row.state == RefundState::Failed),
        created_at: now,
        finished_at: row.finished_at.filter(|_| row.state.is_final()),
    };
    let elsewhere = insert_learned(tx, batch, learned.row(now)).await?;
    journal.history(&elsewhere, HistoryKind::RefundedElsewhere, Some(why));
    journal.event(&elsewhere, Some(elsewhere.state));
    Ok(())
}

/// [`Ledger::fail_unsent`] for an attempt holding `held`, a refund bound to it by amount.
async fn release(
    tx: &mut WriteTx<'_>,
    journal: &mut Entries,
    row: &RefundRow,
    held: &str,
    change: &Change,
) -> Result<RefundRow, sqlx::Error> {
    let now = now_ms();
    let update = Sql::new(
        "UPDATE refunds SET refund_id = NULL, bound_by_amount = ?, state = ?, error_code = ?,
            error_detail = ?, finished_at = ?, updated_at = ?, polls = 0, next_poll_at = NULL
         WHERE key = ? RETURNING *",
    )
    .bind(false)
    .bind(RefundState::Failed)
    .bind(change.error_code)
    .bind(&change.error_detail)
    .bind(now)
    .bind(now)
    .bind(row.key);
    let failed: RefundRow = tx.exec().fetch_one(&update).await?;
    let detail = change.detail.as_deref().unwrap_or("failed");
    journal.history(
        &failed,
        change.kind,
        Some(&format!(
            "{detail}; refund {held}, matched to it by amount meanwhile, is recorded as made \
             elsewhere"
        )),
    );
    journal.event(&failed, Some(row.state));
    let attempt = row.attempt_id.as_ref().map_or("", |id| id.as_str());
    let why =
        format!("matched by amount to attempt {attempt} until its own request came back refused");
    split_off(tx, journal, row, held, None, &why).await?;
    Ok(failed)
}

/// How `refund` (of `session`, from Smart Glocal) contradicts the ledger's `row` it matched,
/// if it does: a refund is one payment's and one amount, whatever reports it.
fn contradiction(row: &RefundRow, session: &SessionId, refund: &sg::Refund) -> Option<String> {
    if row.session_id != session.as_str() {
        return Some(format!(
            "refund {} is reported for payment {session}, the ledger holds it for {}",
            refund.id, row.session_id
        ));
    }
    let amount = refund.amount_details;
    if to_stored(amount.amount) != Some(row.amount) || amount.currency != row.currency {
        return Some(format!(
            "Smart Glocal reports {} {} for refund {}, the ledger holds {} {}",
            amount.amount,
            amount.currency.code(),
            refund.id,
            row.amount,
            row.currency.code()
        ));
    }
    None
}

/// The attempt id `refund`'s metadata names, if it names one.
fn named_attempt(refund: &sg::Refund) -> Option<AttemptId> {
    refund
        .metadata
        .as_ref()
        .and_then(|m| m.get("attempt_id"))
        .and_then(|v| v.as_str())
        .and_then(AttemptId::parse)
}

/// Whether `refund`'s metadata carries idempotency key `key`: one of ours, sent for that
/// intent (`refund_flow::send` writes the key there).
pub fn carries_key(refund: &sg::Refund, key: &shared::IdempotencyKey) -> bool {
    refund
        .metadata
        .as_ref()
        .and_then(|m| m.get("idempotency_key"))
        .and_then(|v| v.as_str())
        == Some(key.as_str())
}

/// `refunds` in the order to apply them: those whose metadata names an attempt first (each
/// group in Smart Glocal's order). Where one answer holds both our refund and another of the
/// same amount made meanwhile (the dashboard, another tool), ours is bound to its attempt by
/// name before the other could be bound to it by amount.
pub fn matching_order(refunds: &[sg::Refund]) -> impl Iterator<Item = &sg::Refund> {
    let named = |r: &&sg::Refund| named_attempt(r).is_some();
    refunds
        .iter()
        .filter(named)
        .chain(refunds.iter().filter(move |r| !named(r)))
}

/// The unresolved attempt this new upstream refund belongs to, if any, among the payment's
/// attempts without a refund id (`pending`, `unknown` or `failed`), oldest first.
fn match_attempt(candidates: Vec<RefundRow>, refund: &sg::Refund) -> Option<RefundRow> {
    if refund.is_chargeback {
        return None;
    }
    // A refund that names its attempt is that attempt's or nobody's: never bound by amount to
    // another attempt that happens to be waiting for the same sum.
    if let Some(id) = named_attempt(refund) {
        return candidates
            .into_iter()
            .find(|row| row.attempt_id.as_ref() == Some(&id));
    }
    // Without metadata, only attempts still unresolved can be matched, by amount and by the
    // refund being new since the attempt was sent.
    candidates
        .into_iter()
        .filter(|row| matches!(row.state, RefundState::Pending | RefundState::Unknown))
        .find(|row| {
            to_stored(refund.amount_details.amount) == Some(row.amount)
                && row.currency == refund.amount_details.currency
                && !row.refunds_before.iter().any(|id| id == refund.id.as_str())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::test_rows::attempt;

    fn refund(id: &str, amount: u64, metadata: Option<serde_json::Value>) -> sg::Refund {
        let mut refund: sg::Refund = serde_json::from_value(serde_json::json!({
            "id": id, "status": "accepted",
            "amount_details": {"amount": amount, "currency": "usd"},
        }))
        .unwrap();
        refund.metadata = metadata;
        refund
    }

    fn keys(row: Option<RefundRow>) -> Option<i64> {
        row.map(|r| r.key)
    }

    /// Two decisions on one request, the payment's lock lost between them (a PostgreSQL
    /// restart drops advisory locks): the approval went out first, so the rejection (or the
    /// expiry) that follows changes nothing; a request still awaiting is closed.
    #[tokio::test]
    async fn a_request_is_closed_only_while_it_still_awaits_approval() {
        use crate::ledger::test_rows::{new_attempt, temporary_ledger};
        let (_dir, ledger) = temporary_ledger().await;
        let session = SessionId::parse("ps_approval").unwrap();
        let mut keys = Vec::new();
        for n in [1, 2] {
            let mut request = new_attempt(&session, n, 5_000);
            request.state = RefundState::AwaitingApproval;
            // Two agents' requests: one agent has one awaiting per payment at a time.
            request.agent = format!("agent-{n}");
            let Ok(Inserted::New(row)) = ledger.insert_attempt(&request).await else {
                panic!("request {n} not recorded");
            };
            keys.push(row.key);
        }
        let approved = ledger
            .approve(keys[0], &[], "approved by bob", ("bob", 0))
            .await
            .unwrap();
        assert!(matches!(approved, Approved::Pending(_)));
        let rejection = || Change {
            state: Some(RefundState::Failed),
            error_code: Some(ErrorCode::ApprovalRejected),
            detail: Some("rejected by carol".into()),
            ..Change::new(HistoryKind::Rejected)
        };
        assert!(ledger
            .close_request(keys[0], rejection())
            .await
            .unwrap()
            .is_none());
        let sent = ledger.find_by_key(keys[0]).await.unwrap().unwrap();
        assert_eq!((sent.state, sent.error_code), (RefundState::Pending, None));
        let closed = ledger.close_request(keys[1], rejection()).await.unwrap();
        assert_eq!(
            closed.map(|r| (r.state, r.error_code)),
            Some((RefundState::Failed, Some(ErrorCode::ApprovalRejected)))
        );
    }

    /// A request checked against revocations just before `proxy revoke`, recorded just after:
    /// refused in its own transaction, so no request of a revoked token is left to approve.
    #[tokio::test]
    async fn a_request_of_a_token_revoked_meanwhile_is_not_recorded() {
        use crate::ledger::test_rows::{new_attempt, temporary_ledger};
        let (_dir, ledger) = temporary_ledger().await;
        let session = SessionId::parse("ps_revoked").unwrap();
        ledger.revoke_agent("alice", 100).await.unwrap();
        let request = |n: u64, issued_at: i64, state: RefundState| {
            let mut attempt = new_attempt(&session, n, 5_000);
            attempt.token_issued_at = issued_at;
            attempt.state = state;
            attempt
        };
        let revoked = request(1, 100, RefundState::AwaitingApproval);
        assert!(matches!(
            ledger.insert_attempt(&revoked).await.unwrap(),
            Inserted::Revoked
        ));
        // A token issued after the revocation is a new sign-in.
        let later = request(2, 101, RefundState::AwaitingApproval);
        assert!(matches!(
            ledger.insert_attempt(&later).await.unwrap(),
            Inserted::New(_)
        ));
        let rows = ledger.rows_for_session(&session).await.unwrap();
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn a_refund_naming_an_attempt_is_never_bound_by_amount_to_another() {
        // It names attempt 1, which is not among the candidates (already bound elsewhere):
        // attempt 2, pending for the same amount, is not its.
        let named = attempt(1, 500, RefundState::Pending, 1).attempt_id.unwrap();
        let pending = attempt(2, 500, RefundState::Pending, 2);
        let found = match_attempt(
            vec![pending],
            &refund("rf_1", 500, Some(serde_json::json!({"attempt_id": named}))),
        );
        assert_eq!(keys(found), None);
    }

    #[test]
    fn refunds_naming_their_attempt_are_applied_first() {
        let id = attempt(1, 500, RefundState::Pending, 1).attempt_id.unwrap();
        let refunds = [
            refund("rf_dashboard", 500, None),
            refund("rf_other", 700, Some(serde_json::json!({"note": "x"}))),
            refund("rf_ours", 500, Some(serde_json::json!({"attempt_id": id}))),
        ];
        let order: Vec<&str> = matching_order(&refunds).map(|r| r.id.as_str()).collect();
        assert_eq!(order, ["rf_ours", "rf_dashboard", "rf_other"]);
    }

    #[test]
    fn the_attempt_id_in_metadata_decides_even_for_a_failed_attempt() {
        let failed = attempt(1, 500, RefundState::Failed, 1);
        let pending = attempt(2, 500, RefundState::Pending, 2);
        let id = failed.attempt_id.clone().unwrap();
        let found = match_attempt(
            vec![failed, pending],
            &refund("rf_1", 500, Some(serde_json::json!({"attempt_id": id}))),
        );
        assert_eq!(keys(found), Some(1));
    }

    #[test]
    fn without_metadata_only_an_unresolved_attempt_of_that_amount_matches() {
        let candidates = || {
            vec![
                attempt(1, 500, RefundState::Failed, 1),
                attempt(2, 700, RefundState::Unknown, 2),
                attempt(3, 500, RefundState::Unknown, 3),
            ]
        };
        assert_eq!(
            keys(match_attempt(candidates(), &refund("rf_1", 500, None))),
            Some(3)
        );
        assert_eq!(
            keys(match_attempt(candidates(), &refund("rf_1", 900, None))),
            None
        );
        // A refund that existed before the attempt was sent is not the attempt's.
        let mut before = candidates();
        before[2].refunds_before = vec!["rf_1".into()];
        assert_eq!(
            keys(match_attempt(before, &refund("rf_1", 500, None))),
            None
        );
        // An unreadable attempt id in metadata falls back to the amount.
        let odd = refund(
            "rf_1",
            700,
            Some(serde_json::json!({"attempt_id": "att_../x"})),
        );
        assert_eq!(keys(match_attempt(candidates(), &odd)), Some(2));
    }

    #[test]
    fn a_chargeback_is_nobodys_attempt() {
        let mut chargeback = refund("rf_1", 500, None);
        chargeback.is_chargeback = true;
        let candidates = vec![attempt(1, 500, RefundState::Unknown, 1)];
        assert_eq!(keys(match_attempt(candidates, &chargeback)), None);
    }
}
