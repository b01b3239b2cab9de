//! Finishing refunds and sending `payment_refunded` webhooks, signed, with bounded retries.
//!
//! Each body is serialised once and signed over those exact bytes; a retry or a duplicate
//! sends the same bytes with the same signature, as the real service does.

use std::time::Duration;

use shared::smart_glocal::{
    RefundStatus, Session, SessionStatus, Webhook, WebhookType, HEADER_SIGN,
};
use shared::{RefundId, SessionId};

use crate::control::Fault;
use crate::faults::RefundFaults;
use crate::state::{now, AppState};

/// After the configured delay, moves the refund to its final status and sends the webhook(s)
/// the faults call for. `stale` is the session as it was when the refund was taken.
pub(crate) fn finish_refund_later(
    state: AppState,
    session_id: SessionId,
    refund_id: RefundId,
    stale: Session,
    faults: RefundFaults,
) {
    tokio::spawn(async move {
        if !pause(&state, state.0.webhook_delay).await {
            return;
        }
        let status = match faults.outcome {
            Some(Fault::FailRefund) => RefundStatus::Failed,
            _ => RefundStatus::Accepted,
        };
        let Some((project, session)) = finish(&state, &session_id, &refund_id, status.clone())
        else {
            return;
        };
        tracing::info!(session = %session_id, refund = %refund_id, %status, "refund finished");
        match faults.webhook {
            Some(Fault::NoWebhook) => {
                tracing::info!(session = %session_id, "no_webhook fault: webhook withheld");
            }
            Some(Fault::DuplicateWebhook) => {
                let body = encode(&session);
                deliver(&state, &project, &body).await;
                deliver(&state, &project, &body).await;
            }
            Some(Fault::OutOfOrderWebhooks) => {
                deliver(&state, &project, &encode(&session)).await;
                deliver(&state, &project, &encode(&stale)).await;
            }
            _ => {
                deliver(&state, &project, &encode(&session)).await;
            }
        }
    });
}

/// Sends one webhook for `session` in the background (a chargeback: already final).
pub(crate) fn send_later(state: AppState, project: String, session: Session) {
    tokio::spawn(async move {
        deliver(&state, &project, &encode(&session)).await;
    });
}

fn finish(
    state: &AppState,
    session_id: &SessionId,
    refund_id: &RefundId,
    status: RefundStatus,
) -> Option<(String, Session)> {
    let mut store = state.store();
    let entry = store.sessions.get_mut(session_id)?;
    let at = now();
    let refund = entry
        .session
        .acquiring_payments
        .iter_mut()
        .flat_map(|p| p.refunds.iter_mut())
        .find(|r| &r.id == refund_id)?;
    refund.status = status;
    refund.finished_at = Some(at);
    // The session is `in_progress` while any of its refunds is, `accepted` again after the
    // last one finishes (whether it was accepted or failed).
    let refunding = entry
        .session
        .acquiring_payments
        .iter()
        .flat_map(|p| &p.refunds)
        .any(|r| r.status == RefundStatus::InProgress);
    if !refunding {
        entry.session.status = SessionStatus::Accepted;
    }
    entry.session.updated_at = Some(at);
    Some((entry.project.clone(), entry.session.clone()))
}

/// The webhook body: `{"type":"payment_refunded","session":{…}}`.
pub(crate) fn encode(session: &Session) -> Vec<u8> {
    let webhook = Webhook {
        kind: WebhookType::PaymentRefunded,
        session: session.clone(),
    };
    serde_json::to_vec(&webhook).expect("a session always serialises")
}

/// POSTs `body` until the receiver answers 200 or the retry schedule
/// ([`RetryPolicy::pause_after`](crate::RetryPolicy::pause_after)) runs out. Returns whether it was
/// delivered.
pub(crate) async fn deliver(state: &AppState, project: &str, body: &[u8]) -> bool {
    let signature = state.0.signer.sign(body);
    let policy = state.0.webhook_retry;
    let mut attempt = 1u32;
    loop {
        // Read the address on every attempt, so a retry goes where it points now (tests and
        // demos often learn the receiver's port only after the sandbox started). With none
        // set, the webhook is dropped, not kept for later: a merchant without a webhook
        // address gets none, and tests clear it to have refunds settle without webhooks.
        let Some(url) = state.webhook_url_for(project) else {
            tracing::info!(project, "no webhook URL configured: webhook not sent");
            return false;
        };
        let outcome = state
            .0
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_SIGN, &signature)
            .timeout(policy.attempt_timeout)
            .body(body.to_vec())
            .send()
            .await;
        match outcome {
            // The real service wants exactly 200; anything else is retried.
            Ok(response) if response.status() == reqwest::StatusCode::OK => {
                tracing::info!(%url, attempt, "webhook delivered");
                return true;
            }
            Ok(response) => {
                tracing::warn!(%url, attempt, status = %response.status(), "webhook refused");
            }
            Err(error) => {
                tracing::warn!(%url, attempt, error = %error, "webhook not answered");
            }
        }
        let Some(wait) = policy.pause_after(attempt) else {
            tracing::warn!(%url, attempts = attempt, "webhook retries used up: giving up");
            return false;
        };
        if !pause(state, wait).await {
            return false;
        }
        attempt = attempt.saturating_add(1);
    }
}

/// Sleeps, unless the sandbox stops first. Returns whether to go on.
pub(crate) async fn pause(state: &AppState, duration: Duration) -> bool {
    let mut shutdown = state.0.shutdown.subscribe();
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(duration) => true,
        _ = shutdown.changed() => false,
    }
}
