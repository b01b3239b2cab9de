//! The refund flow, start to end: one refund per intent.
//!
//! 1. Idempotency: the same key and request returns the first result and sends nothing (a
//!    twin that waited for the lock may have begun a `session/status` read, dropped once the
//!    first result is found); the same key with another request is `409 idempotency_conflict`.
//! 2. Per-payment serialisation (an in-process lock per session, and the ledger refuses a
//!    second `pending` attempt on one payment).
//! 3. A fresh `session/status`, merged with the ledger's unresolved attempts, decides what
//!    remains; `PaymentView::check_refund` applies the same rules the widget shows.
//! 4. The attempt is recorded `pending` with the refund ids that exist before the call,
//!    BEFORE the signed `session/refund` is sent. A ledger that cannot write answers
//!    `503 ledger_unavailable` and nothing is sent; a commit counts only once SQLite says the
//!    transaction ended (see `ledger::writer`).
//! 5. The answer: a new refund id → `in_progress` (201); `status: error` → `failed` (422),
//!    unless it came with a 5xx; connection refused → `failed` (502); anything else (a 5xx
//!    with or without a refusal, a timeout, garbage) → `unknown` (202), never retried,
//!    resolved by [`crate::reconcile`]. A ledger that cannot record the answer after the
//!    request went out answers `unknown` (202) too, never "nothing was sent": the attempt
//!    stays `pending` and reconciliation records it once the ledger writes.
//!
//! Four eyes: above `approval_above`, step 4 records the attempt `awaiting_approval` (202)
//! and nothing is sent. A second agent whose token says `can_approve` — never the one who
//! asked — approves ([`decide`]): under the same lock, on a fresh view, the amount is
//! checked against what remains now, the attempt becomes `pending` and steps 4–5 follow,
//! once. A rejection or `approval_ttl_secs` passing closes it `failed`; nothing was sent.

use axum::http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use shared::api::{
    ErrorCode, HistoryKind, PaymentView, RefundAmount, RefundState, RefundSubmission, RefundView,
};
use shared::smart_glocal::{self as sg, AmountDetails, RefundRequest};
use shared::{AttemptId, Money, Note, SessionId};
use tracing::Instrument;

use crate::error::ApiError;
use crate::extract::Agent;
use crate::ledger::{
    carries_key, millis, now_ms, Approved, Change, Inserted, LockError, NewAttempt, RefundRow,
    Source,
};
use crate::payment_view::current;
use crate::state::AppState;
use crate::upstream::UpstreamError;

/// What the refund route answers: the status (201 new, 200 replay, 202 unknown) and the view.
pub type Answer = (StatusCode, RefundView);

/// Hash of what was asked, to tell a replay from a different request under the same key.
pub fn request_hash(session: &SessionId, submission: &RefundSubmission) -> String {
    let mut canonical = json!({
        "session_id": session,
        "amount": submission.amount,
        "reason": submission.reason,
        "note": submission.note.as_ref().map(Note::as_str).unwrap_or(""),
    });
    // Only when given, so the hash of a submission without it is what it always was.
    if let Some(confirmed) = submission.confirmed_amount {
        canonical["confirmed_amount"] = json!(confirmed);
    }
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// The answer stored for an attempt, replayed for the same key and request.
fn replay(row: &RefundRow, hash: &str) -> Result<Answer, ApiError> {
    if row.request_hash.as_deref() != Some(hash) {
        return Err(ApiError::IdempotencyConflict);
    }
    answer_of(row)
}

/// What a replay answers for `row`: its refund, or its failure in the first answer's words.
fn answer_of(row: &RefundRow) -> Result<Answer, ApiError> {
    if let (RefundState::Failed, Some(code)) = (row.state, row.error_code) {
        // Smart Glocal's refusal: the same body as the first answer, its code and words.
        let refusal = row.error_detail.as_deref().and_then(refusal_in);
        if let (ErrorCode::UpstreamRejected, Some(refusal)) = (code, refusal) {
            return Err(ApiError::Upstream(UpstreamError::Rejected(refusal)));
        }
        let message = row
            .error_detail
            .clone()
            .unwrap_or_else(|| "the refund failed".into());
        return Err(ApiError::Replayed(code, message));
    }
    Ok((StatusCode::OK, row.view()))
}

/// How Smart Glocal's refusal of a refund is kept in its attempt's `error_detail` (and so its
/// history); [`refusal_in`] reads it back for a replay.
const REFUSED: &str = "Smart Glocal refused the refund: ";

/// A NUL in Smart Glocal's words becomes U+FFFD: PostgreSQL's text cannot hold one, and the
/// refusal's commit would fail there.
fn refusal_detail(error: &sg::SmartGlocalError) -> String {
    format!("{REFUSED}{} {}", error.code, error.description)
        .trim_end()
        .replace('\0', "\u{fffd}")
}

fn refusal_in(detail: &str) -> Option<sg::SmartGlocalError> {
    let rest = detail.strip_prefix(REFUSED)?;
    let (code, description) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(sg::SmartGlocalError {
        code: code.to_owned(),
        description: description.to_owned(),
    })
}

/// `POST /api/payments/{id}/refunds` after authentication and parsing.
pub async fn submit(
    state: AppState,
    agent: Agent,
    session: SessionId,
    submission: RefundSubmission,
) -> Result<Answer, ApiError> {
    let hash = request_hash(&session, &submission);
    if let Some(row) = state
        .ledger
        .find_by_idempotency_key(&submission.idempotency_key)
        .await?
    {
        // A pending twin is being sent right now: wait for its outcome behind the lock.
        if row.state != RefundState::Pending || row.request_hash.as_deref() != Some(hash.as_str()) {
            return replay(&row, &hash);
        }
    }
    serialised(state, session, move |state, session| async move {
        decide_and_send(&state, &agent, &session, &submission, &hash).await
    })
    .await
}

/// Runs `work` holding the payment's lock, in its own task: if the browser goes away
/// mid-call, what was begun is still carried to a recorded outcome rather than dropped, and a
/// stop waits for it (`state.refunds`).
///
/// The lock is waited for as long as one holder's two calls to Smart Glocal may take, and 5 s,
/// no longer (`409 refund_in_flight`; [`crate::config::payment_lock_wait`]): behind a slow
/// Smart Glocal, refunds queued on one payment would otherwise wait minutes, each a
/// connection and a task, long after their agent gave up. The same wait bounds another
/// replica's hold on PostgreSQL, where the database ends it (`Database::with_lock_wait`).
async fn serialised<F, Fut>(
    state: AppState,
    session: SessionId,
    work: F,
) -> Result<Answer, ApiError>
where
    F: FnOnce(AppState, SessionId) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Answer, ApiError>> + Send,
{
    let tasks = state.refunds.clone();
    let locked_work = async move {
        let wait = crate::config::payment_lock_wait(state.config.upstream_timeout);
        // Stopping, this gives up the wait: the holder's refund is still under way, and a
        // stop waits only for work that holds its lock (`serve::run_until`).
        let locked = tokio::select! {
            // The lock first: one free now is taken even as the stop begins.
            biased;
            locked = state.locks.lock(&session, wait) => locked,
            () = state.stopping.cancelled() => Err(LockError::WaitOver),
        };
        let _serialised = locked.map_err(|e| match e {
            LockError::WaitOver => ApiError::RefundInFlight,
            LockError::Database(e) => ApiError::from(e),
        })?;
        work(state.clone(), session.clone()).await
    };
    // Its log lines carry the request's id, as the handler's do.
    tasks
        .spawn(locked_work.instrument(tracing::Span::current()))
        .await
        .map_err(|e| ApiError::Internal(format!("refund task: {e}")))?
}

async fn decide_and_send(
    state: &AppState,
    agent: &Agent,
    session: &SessionId,
    submission: &RefundSubmission,
    hash: &str,
) -> Result<Answer, ApiError> {
    // Someone with the same key may have finished while we waited for the lock: replayed
    // whatever else is answered (a `session/status` that failed now would answer an error
    // the widget takes as final, and a retry under a new key could refund twice). The fresh
    // view is asked meanwhile, not after: its `session/status` goes out first, and the
    // look-up runs while Smart Glocal answers. A twin found answers at once, and the view,
    // if still on its way, is dropped (that `session/status` only reads).
    let twin = state
        .ledger
        .find_by_idempotency_key(&submission.idempotency_key);
    let fresh = fresh_view(state, session);
    tokio::pin!(twin, fresh);
    let mut viewed = None;
    let twin = loop {
        tokio::select! {
            biased;
            view = &mut fresh, if viewed.is_none() => viewed = Some(view),
            twin = &mut twin => break twin,
        }
    };
    if let Some(row) = twin? {
        // Still `pending` while this holds the payment's lock: no one is sending it. Its
        // attempt was recorded but not its outcome (the ledger failed after the call went
        // out, or before it and the answer said nothing was sent): whether Smart Glocal has
        // it is not known until reconciliation asks. Said so (202), not "already submitted".
        if row.state == RefundState::Pending && row.request_hash.as_deref() == Some(hash) {
            let mut view = row.view();
            view.state = RefundState::Unknown;
            return Ok((StatusCode::ACCEPTED, view));
        }
        return replay(&row, hash);
    }
    let (upstream, view) = match viewed {
        Some(view) => view,
        None => fresh.await,
    }?;
    // Smart Glocal already has a refund sent for this key that the ledger does not know of:
    // the ledger was restored from a backup older than it, or the proxy serves from another
    // (its `database` setting, or the working directory a relative path depends on, changed).
    // The key reaches Smart Glocal in the refund's metadata, so a retry of the intent is
    // answered with that refund, recorded now as the attempt it was, and not made again.
    if let Some(paid) = upstream.payment() {
        if let Some(made) = paid
            .refunds
            .iter()
            .find(|r| !r.is_chargeback && carries_key(r, &submission.idempotency_key))
        {
            return adopt_lost(state, agent, session, submission, hash, made, paid).await;
        }
    }
    let amount = view.check_refund(submission).map_err(ApiError::Rule)?;
    // The agent's own limits: per refund here, per day inside the attempt's insert (so that
    // concurrent submissions on different payments cannot add up past it).
    let binding = agent.binding(&state.config, amount.currency);
    if let Some(max) = binding.per_refund {
        if amount.amount > max {
            // What the agent may still refund: the per-refund limit, or what is left of the
            // day if less, so that a retry at the figure given is not refused again.
            let mut allowance = max;
            if let Some(daily) = binding.daily {
                let used = state
                    .ledger
                    .refunded_today(&agent.name, amount.currency)
                    .await?;
                allowance = allowance.min(daily.saturating_sub(used));
            }
            return Err(ApiError::OverAgentLimit(Money::new(
                allowance,
                amount.currency,
            )));
        }
    }
    let daily_limit = binding.daily;
    let awaits_approval = binding
        .approval_above
        .is_some_and(|above| view.awaits_approval(&agent.name, amount, above));
    let payment = upstream.payment().ok_or(ApiError::PaymentNotFound)?;
    let refunds_before: Vec<String> = payment.refunds.iter().map(|r| r.id.to_string()).collect();

    let attempt = NewAttempt {
        refunds_before: refunds_before.clone(),
        daily_limit,
        state: if awaits_approval {
            RefundState::AwaitingApproval
        } else {
            RefundState::Pending
        },
        ..attempt_of(agent, session, submission, hash, amount)
    };
    let row = match recorded(state.ledger.insert_attempt(&attempt).await?, hash, amount)? {
        Ok(row) => row,
        Err(answer) => return Ok(answer),
    };

    if awaits_approval {
        tracing::info!(attempt_id = %attempt.attempt_id, session_id = %session, agent = %agent.name, amount = amount.amount, currency = %amount.currency, "refund awaits approval");
        return Ok((StatusCode::ACCEPTED, row.view()));
    }
    send(
        state,
        session,
        &row,
        payment.amount_details.into(),
        &refunds_before,
        None,
    )
    .await
}

/// Records `made`, a refund Smart Glocal has under `submission`'s key that the ledger had lost
/// (see `decide_and_send`), as the attempt that sent it: its attempt id from its metadata,
/// the key and this request's hash, then Smart Glocal's refund bound to it by that id. The
/// answer is then the key's replay, as the ledger that made it would give: a refund failed
/// at Smart Glocal is its failure, and another request under the key is a conflict. `paid` is
/// the payment as Smart Glocal listed it.
async fn adopt_lost(
    state: &AppState,
    agent: &Agent,
    session: &SessionId,
    submission: &RefundSubmission,
    hash: &str,
    made: &sg::Refund,
    paid: &sg::AcquiringPayment,
) -> Result<Answer, ApiError> {
    let listed = paid.refunds.as_slice();
    let said = |field: &str| made.metadata.as_ref().and_then(|m| m.get(field));
    let amount: Money = made.amount_details.into();
    // What the request says that the refund's metadata kept: another amount, reason or note
    // under the same key is another request.
    let same_reason = said("reason").and_then(|r| r.as_str()) == Some(submission.reason.as_str());
    let same_note =
        said("note").and_then(|n| n.as_str()) == submission.note.as_ref().map(|n| n.as_str());
    // In full: all that was left before it, by Smart Glocal's list (the payment less its
    // other refunds and chargebacks that hold money).
    let same_amount = match submission.amount {
        RefundAmount::Partial(asked) => asked == amount,
        RefundAmount::Full => {
            let others: u64 = listed
                .iter()
                .filter(|r| r.id != made.id && r.status.holds_money())
                .map(|r| r.amount_details.amount)
                .sum();
            paid.amount_details.amount.saturating_sub(others) == made.amount_details.amount
        }
    };
    if !(same_reason && same_note && same_amount) {
        return Err(ApiError::IdempotencyConflict);
    }
    // Learnt of meanwhile, from a webhook or reconciliation, as a refund made elsewhere (it
    // had no attempt in this ledger then): answered as it stands.
    if let Some(known) = state
        .ledger
        .rows_for_session(session)
        .await?
        .into_iter()
        .find(|r| r.refund_id.as_deref() == Some(made.id.as_str()))
    {
        return answer_of(&known);
    }
    let attempt_id = said("attempt_id")
        .and_then(|a| a.as_str())
        .and_then(AttemptId::parse)
        .unwrap_or_else(|| AttemptId::from_random(uuid::Uuid::new_v4().as_u128()));
    // Only `made` is new to the attempt, should it be bound by amount (no attempt id said).
    let others = listed
        .iter()
        .filter(|r| r.id != made.id)
        .map(|r| r.id.to_string())
        .collect();
    // Made already: no limit of today's can undo it (`attempt_of` sets none).
    let attempt = NewAttempt {
        attempt_id,
        refunds_before: others,
        ..attempt_of(agent, session, submission, hash, amount)
    };
    let (inserted, bound) = state.ledger.adopt_refund(&attempt, made).await?;
    let row = match recorded(inserted, hash, amount)? {
        Ok(row) => row,
        Err(answer) => return Ok(answer),
    };
    tracing::warn!(refund_id = %made.id, attempt_id = %attempt.attempt_id, "a refund Smart Glocal has for this idempotency key was missing from the ledger: recorded, not made again");
    match bound {
        Some(bound) if bound.key == row.key => replay(&bound, hash),
        // `adopt_refund` keeps nothing it could not bind to the attempt.
        _ => Err(ApiError::Internal(
            "the adopted refund was not bound to its attempt".into(),
        )),
    }
}

/// The attempt `submission` makes, as `agent` asks it: `pending`, with a fresh id, nothing
/// before it and no daily limit (each caller says otherwise where it differs).
fn attempt_of(
    agent: &Agent,
    session: &SessionId,
    submission: &RefundSubmission,
    hash: &str,
    amount: Money,
) -> NewAttempt {
    NewAttempt {
        attempt_id: AttemptId::from_random(uuid::Uuid::new_v4().as_u128()),
        session_id: session.clone(),
        agent: agent.name.clone(),
        amount,
        full_refund: matches!(submission.amount, RefundAmount::Full),
        reason: submission.reason,
        note: submission.note.clone(),
        idempotency_key: submission.idempotency_key.clone(),
        request_hash: hash.to_owned(),
        refunds_before: Vec::new(),
        daily_limit: None,
        role: agent.role.clone(),
        token_issued_at: agent.issued_at,
        state: RefundState::Pending,
    }
}

/// The attempt `insert_attempt` recorded (`Ok`), or the answer for a request it did not
/// record (`Err`: the key's replay), or its refusal.
fn recorded(
    inserted: Inserted,
    hash: &str,
    amount: Money,
) -> Result<Result<RefundRow, Answer>, ApiError> {
    match inserted {
        Inserted::New(row) => Ok(Ok(row)),
        Inserted::Existing(row) => replay(&row, hash).map(Err),
        Inserted::InFlight => Err(ApiError::RefundInFlight),
        Inserted::Revoked => Err(ApiError::TokenRevoked),
        Inserted::AlreadyRequested => Err(ApiError::Rule(ErrorCode::AlreadyRequested)),
        Inserted::OverDailyLimit { left } => {
            Err(ApiError::OverDailyLimit(Money::new(left, amount.currency)))
        }
    }
}

/// What a decision to send rests on: a fresh `session/status` merged with the ledger
/// ([`current`]; under the payment's lock nothing of ours changes its rows meanwhile). Known
/// unable to write, the ledger refuses first, without a look at Smart Glocal (should the
/// fault be new, the attempt's write fails instead, still before anything is sent).
async fn fresh_view(
    state: &AppState,
    session: &SessionId,
) -> Result<(sg::Session, shared::api::PaymentView), ApiError> {
    if let Some(fault) = state.ledger.health().last_fault() {
        return Err(ApiError::LedgerUnavailable(fault));
    }
    current(state, session).await
}

/// Sends the recorded `pending` attempt `row` (signed) and settles the answer.
/// `refunds_before` are the payment's refunds just before; `approved_by` names the second
/// agent, if one approved it.
async fn send(
    state: &AppState,
    session: &SessionId,
    row: &RefundRow,
    payment_amount: Money,
    refunds_before: &[String],
    approved_by: Option<&str>,
) -> Result<Answer, ApiError> {
    // Every line about it names the attempt, its payment, agent and amount.
    let span = tracing::info_span!(
        "refund",
        attempt_id = row.attempt_id.as_ref().map(tracing::field::display),
        session_id = %session,
        agent = row.agent.as_deref().map(tracing::field::display),
        amount = row.amount,
        currency = %row.currency,
    );
    let answer = async {
        let amount = row.money();
        let request = RefundRequest {
            session_id: session.clone(),
            // Absent means "in full"; only said so when nothing was refunded before.
            amount_details: (amount != payment_amount || !refunds_before.is_empty())
                .then(|| AmountDetails::from(amount)),
            metadata: Some(json!({
                "agent": row.agent,
                "reason": row.reason.map(|r| r.as_str()),
                "note": row.note,
                "idempotency_key": row.idempotency_key,
                "attempt_id": row.attempt_id,
                "approved_by": approved_by,
            })),
        };
        tracing::info!(approved_by, "sending refund");
        let outcome = state.upstream.refund(&request).await;
        // Unless Smart Glocal refused it or was never reached, the refund may now be made: a
        // ledger that cannot record the answer must not tell the agent "nothing was sent".
        let maybe_made = !matches!(
            outcome,
            Err(UpstreamError::Rejected(_) | UpstreamError::Unreachable(_))
        );
        match settle(state, session, row, refunds_before, outcome).await {
            Err(ApiError::LedgerUnavailable(detail) | ApiError::Internal(detail)) if maybe_made => {
                // The attempt stays `pending` in the ledger; reconciliation settles it from Smart
                // Glocal's record once the ledger can write (`reconcile`), and the webhook too.
                tracing::error!(?detail, "the refund was sent but its outcome could not be recorded; reconciliation will record it");
                let view = RefundView {
                    state: RefundState::Unknown,
                    ..row.view()
                };
                Ok((StatusCode::ACCEPTED, view))
            }
            answer => answer,
        }
    }
    .instrument(span.clone())
    .await;
    span.in_scope(|| match &answer {
        Ok((status, view)) => tracing::info!(
            status = status.as_u16(),
            state = view.state.as_str(),
            refund_id = view.refund_id.as_ref().map(tracing::field::display),
            "refund answered"
        ),
        Err(e) => tracing::info!(code = e.code().name(), "refund not made"),
    });
    answer
}

/// Records what Smart Glocal's answer means for the attempt, and what the agent sees.
async fn settle(
    state: &AppState,
    session: &SessionId,
    row: &RefundRow,
    refunds_before: &[String],
    outcome: Result<sg::Session, UpstreamError>,
) -> Result<Answer, ApiError> {
    match outcome {
        Ok(after) => {
            // Every refund new since the attempt was sent goes through the ledger's one
            // matcher (by the attempt id in its metadata, else by amount), as a webhook's would.
            let fresh = crate::ledger::matching_order(
                after
                    .payment()
                    .map(|p| p.refunds.as_slice())
                    .unwrap_or_default(),
            )
            .filter(|r| !refunds_before.iter().any(|id| id == r.id.as_str()));
            let mut stored = None;
            for refund in fresh {
                let (_, applied) = state
                    .ledger
                    .apply_upstream_refund(session, refund, Source::Sent)
                    .await?;
                if applied.key == row.key {
                    stored = Some(applied);
                }
            }
            // No new refund matched the attempt: read it as it is.
            if stored.is_none() {
                stored = state.ledger.find_by_key(row.key).await?;
            }
            match stored {
                Some(stored) if stored.refund_id.is_some() => {
                    Ok((StatusCode::CREATED, stored.view()))
                }
                _ => {
                    unknown(
                        state,
                        row,
                        "Smart Glocal answered ok but showed no new refund",
                    )
                    .await
                }
            }
        }
        Err(UpstreamError::Rejected(error)) => {
            let detail = refusal_detail(&error);
            match fail(state, row, ErrorCode::UpstreamRejected, &detail).await? {
                Some(stands) => Ok(stands),
                None => Err(ApiError::Upstream(UpstreamError::Rejected(error))),
            }
        }
        Err(UpstreamError::Unreachable(reason)) => {
            tracing::warn!(?reason, "refund not sent: Smart Glocal unreachable");
            let detail = "Smart Glocal could not be reached; nothing was sent";
            match fail(state, row, ErrorCode::UpstreamUnavailable, detail).await? {
                Some(stands) => Ok(stands),
                None => Err(ApiError::Upstream(UpstreamError::Unreachable(reason))),
            }
        }
        Err(other) => {
            // Quoted (`?`): the error may hold Smart Glocal's text, line breaks and all.
            tracing::warn!(error = ?other.to_string(), "refund outcome not read from Smart Glocal's answer");
            unknown(state, row, &other.public_detail()).await
        }
    }
}

/// A second agent's decision on a request awaiting approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

/// `POST …/refunds/{attempt_id}/approve` or `/reject`: a second agent decides. Approving
/// re-checks the amount on a fresh view and sends it (the answer is the send's); rejecting
/// closes the request `failed` with `approval_rejected`. Either happens at most once.
pub async fn decide(
    state: AppState,
    agent: Agent,
    session: SessionId,
    attempt_id: AttemptId,
    decision: Decision,
    note: Option<Note>,
) -> Result<Answer, ApiError> {
    if !agent.can_approve {
        return Err(ApiError::Rule(ErrorCode::ApprovalNotAllowed));
    }
    if decision == Decision::Reject && note.is_none() {
        return Err(ApiError::Rule(ErrorCode::NoteRequired));
    }
    serialised(state, session, move |state, session| async move {
        // Revoked while this waited for the payment's lock: it decides nothing.
        agent.check_not_revoked(&state).await?;
        let row = state
            .ledger
            .find_attempt(&session, &attempt_id)
            .await?
            .ok_or(ApiError::NoSuchRequest)?;
        if row.agent.as_deref() == Some(agent.name.as_str()) {
            return Err(ApiError::Rule(ErrorCode::OwnRequest));
        }
        if row.state != RefundState::AwaitingApproval {
            return Err(ApiError::Rule(match row.error_code {
                Some(ErrorCode::ApprovalExpired) => ErrorCode::ApprovalExpired,
                _ => ErrorCode::NotAwaitingApproval,
            }));
        }
        if now_ms().saturating_sub(row.created_at) >= millis(state.config.approval_ttl) {
            return Err(ApiError::Rule(if expire(&state, &row).await? {
                ErrorCode::ApprovalExpired
            } else {
                ErrorCode::NotAwaitingApproval
            }));
        }
        let who = match &agent.role {
            Some(role) => format!("{} ({role})", agent.name),
            None => agent.name.clone(),
        };
        let said = note.map(|n| format!(": {n}")).unwrap_or_default();
        match decision {
            Decision::Reject => {
                let detail = format!("rejected by {who}{said}");
                let closed = close_request(
                    &state,
                    &row,
                    ErrorCode::ApprovalRejected,
                    &detail,
                    HistoryKind::Rejected,
                )
                .await?
                .ok_or(ApiError::Rule(ErrorCode::NotAwaitingApproval))?;
                tracing::info!(attempt_id = %attempt_id, session_id = %session, by = %agent.name, "refund request rejected; nothing was sent");
                Ok((StatusCode::OK, closed.view()))
            }
            Decision::Approve => {
                approve_and_send(
                    &state,
                    &session,
                    &row,
                    &format!("approved by {who}{said}"),
                    &agent,
                )
                .await
            }
        }
    })
    .await
}

async fn approve_and_send(
    state: &AppState,
    session: &SessionId,
    row: &RefundRow,
    detail: &str,
    approver: &Agent,
) -> Result<Answer, ApiError> {
    let (upstream, view) = fresh_view(state, session).await?;
    // What remains now decides: the payment may have been refunded while this waited. An
    // attempt whose outcome is not known yet holds its amount back only until it is: if that
    // is all that stands in the way, the request stays open for a later approval.
    if view.check_amount(row.money()).is_err()
        && unresolved_aside(&view).check_amount(row.money()).is_ok()
    {
        return Err(ApiError::RefundInFlight);
    }
    if let Err(code) = view.check_amount(row.money()) {
        let detail = format!("{detail}, but it can no longer be sent: {}", code.name());
        return match close_request(state, row, code, &detail, HistoryKind::Failed).await? {
            Some(_) => Err(ApiError::Rule(code)),
            None => Err(ApiError::Rule(ErrorCode::NotAwaitingApproval)),
        };
    }
    let payment = upstream.payment().ok_or(ApiError::PaymentNotFound)?;
    let refunds_before: Vec<String> = payment.refunds.iter().map(|r| r.id.to_string()).collect();
    match state
        .ledger
        .approve(
            row.key,
            &refunds_before,
            detail,
            (&approver.name, approver.issued_at),
        )
        .await?
    {
        Approved::Pending(row) => {
            tracing::info!(attempt_id = row.attempt_id.as_ref().map(tracing::field::display), session_id = %session, by = %approver.name, "refund request approved");
            send(
                state,
                session,
                &row,
                payment.amount_details.into(),
                &refunds_before,
                Some(&approver.name),
            )
            .await
        }
        Approved::Revoked => Err(ApiError::TokenRevoked),
        Approved::InFlight => Err(ApiError::RefundInFlight),
        Approved::NotAwaiting(_) => Err(ApiError::Rule(ErrorCode::NotAwaitingApproval)),
    }
}

/// `view` as if every attempt whose outcome is not known yet (`pending`, `unknown`) had
/// moved no money.
fn unresolved_aside(view: &PaymentView) -> PaymentView {
    let mut aside = view.clone();
    aside
        .refunds
        .retain(|r| !matches!(r.state, RefundState::Pending | RefundState::Unknown));
    aside
}

/// Closes a request nobody approved within `approval_ttl_secs`; nothing was sent. `false`
/// if it was no longer awaiting approval (decided meanwhile).
pub async fn expire(state: &AppState, row: &RefundRow) -> Result<bool, ApiError> {
    let detail = format!(
        "nobody approved it within {}",
        humantime::format_duration(state.config.approval_ttl)
    );
    close_request(
        state,
        row,
        ErrorCode::ApprovalExpired,
        &detail,
        HistoryKind::Expired,
    )
    .await
    .map(|closed| {
        if closed.is_some() {
            tracing::info!(attempt_id = row.attempt_id.as_ref().map(tracing::field::display), session_id = %row.session_id, "refund request expired; nothing was sent");
        }
        closed.is_some()
    })
}

/// Closes the request `row` `failed` with `code`, nothing sent, if it is still awaiting
/// approval (see [`crate::ledger::Ledger::close_request`]); `None` if it is not any more.
async fn close_request(
    state: &AppState,
    row: &RefundRow,
    code: ErrorCode,
    detail: &str,
    kind: HistoryKind,
) -> Result<Option<RefundRow>, ApiError> {
    Ok(state
        .ledger
        .close_request(row.key, Change::failed(code, detail, kind))
        .await?)
}

/// Records the attempt failed: nothing of ours was sent or applied, says the answer. A refund
/// bound to the attempt by amount meanwhile is not ours; one naming it is, and it stands
/// (`Ledger::fail_unsent`): then that refund is the agent's answer, not the failure.
async fn fail(
    state: &AppState,
    row: &RefundRow,
    code: ErrorCode,
    detail: &str,
) -> Result<Option<Answer>, ApiError> {
    let stored = state
        .ledger
        .fail_unsent(row.key, Change::failed(code, detail, HistoryKind::Failed))
        .await?;
    if stored.state == RefundState::Failed {
        return Ok(None);
    }
    tracing::warn!(
        code = code.name(),
        "Smart Glocal answered a failure for a refund it lists as taken: the refund stands"
    );
    Ok(Some((StatusCode::CREATED, stored.view())))
}

async fn unknown(state: &AppState, row: &RefundRow, detail: &str) -> Result<Answer, ApiError> {
    tracing::warn!(
        ?detail,
        "refund outcome unknown; reconciliation will resolve it"
    );
    let change = Change {
        state: Some(RefundState::Unknown),
        detail: Some(detail.to_owned()),
        ..Change::new(HistoryKind::Unknown)
    };
    // A webhook may already have resolved it while we waited: then nothing changes, and the
    // row as the ledger holds it is what the agent sees.
    let view = state.ledger.change(row.key, change).await?.view();
    let status = if view.state == RefundState::Unknown {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    Ok((status, view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_kept_in_words_postgresql_can_hold_and_read_back() {
        let error = sg::SmartGlocalError {
            code: "refund_not_allowed".into(),
            description: "refused\0 by the bank".into(),
        };
        let detail = refusal_detail(&error);
        assert!(!detail.contains('\0'), "{detail:?}");
        let back = refusal_in(&detail).unwrap();
        assert_eq!(back.code, "refund_not_allowed");
        assert_eq!(back.description, "refused\u{fffd} by the bank");
    }
}
