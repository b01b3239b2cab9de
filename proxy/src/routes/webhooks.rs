//! `POST /webhooks/smart-glocal`: verify the signature on the raw bytes, then parse, store
//! and apply; answer 200 quickly (Smart Glocal retries anything else for 30 minutes).
//!
//! Forged or unsigned webhooks get 401 and change nothing: they are kept only in the bounded
//! `rejected_webhooks` audit table (verified = false), never applied. Verified webhooks are
//! stored whole in `webhooks` with a dedup key of (session, refund, status) per refund, in
//! the same transaction as their refunds are applied. A verified webhook with an amount the
//! ledger cannot hold exactly (beyond `i64`) is stored whole with outcome `unrepresentable`,
//! counted, and applied to nothing.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use shared::money::to_stored;
use shared::smart_glocal::{self as sg, WebhookType};

use axum::extract::DefaultBodyLimit;

use crate::error::ApiError;
use crate::extract::bytes_rejection;
use crate::ledger::{VerifiedWebhook, WebhookAction, WebhookOutcome};
use crate::state::AppState;

/// Where Smart Glocal posts its webhooks.
pub const PATH: &str = "/webhooks/smart-glocal";

/// The largest webhook taken. Each carries its session whole, every refund of the payment
/// with its metadata (our note among it): as large as a `session/status` answer may be, and
/// far over `body_limit_bytes`, whose 64 KiB a payment with a few dozen noted refunds passes.
pub const MAX_BYTES: usize = crate::upstream::MAX_ANSWER_BYTES;

/// How many webhook bodies over `body_limit_bytes` are read at once: anyone may post to this
/// route, and 4 MiB a connection would let a few thousand connections hold gigabytes. More
/// wait their turn, within the body's clock (`app::body_in_time`).
pub const LARGE_AT_ONCE: usize = 4;

/// How long a large body holding one of those places may pause between two chunks before
/// it is answered 408 and gives its place up: a sender that stalls cannot keep one.
pub const LARGE_STALL: std::time::Duration = std::time::Duration::from_secs(1);

/// The bytes a second a large body holding one of those places must average once it has held
/// it for [`LARGE_STALL`] (408 otherwise): a sender that trickles cannot keep one either.
/// The body's own clock (`header_read_timeout_ms`, 10 s by default) asks more of a 4 MiB one.
pub const LARGE_MIN_RATE: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    // The body is read whole, against its clock and within [`MAX_BYTES`], before any handler
    // runs (`app::body_in_time`); the extractor's own default limit would refuse a large one.
    Router::new().route(PATH, post(receive).layer(DefaultBodyLimit::disable()))
}

async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let body = body.map_err(bytes_rejection)?;
    let signature = headers.get(sg::HEADER_SIGN).and_then(|v| v.to_str().ok());
    if let Err(reason) = state.verifier.verify(&body, signature) {
        state.metrics.count_webhook("signature_invalid");
        if state.rejected_audit.check("rejected webhooks").is_err() {
            // A flood: counted, neither written (`state::REJECTED_KEPT_PER_MINUTE`) nor
            // logged, or anyone could fill the log's disk a warning at a time.
            state.metrics.count_anomaly("rejected_webhook_not_kept");
            return Err(ApiError::SignatureInvalid);
        }
        tracing::warn!(%reason, bytes = body.len(), "webhook rejected");
        // What is kept of it, copied: the body itself (up to 4 MiB) is let go before the
        // audit commit is waited for.
        let kept = body[..body.len().min(crate::ledger::REJECTED_BODY_KEPT)].to_vec();
        drop(body);
        // In a task of its own: a sender that hangs up would otherwise cancel the write
        // mid-commit, and with it the writer's connection (`ledger::writer`).
        let (ledger, reason) = (state.ledger.clone(), reason.to_string());
        let kept =
            tokio::spawn(async move { ledger.record_rejected_webhook(&kept, &reason).await });
        if let Err(e) = kept
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            tracing::warn!(error = %e, "could not keep the rejected webhook for audit");
        }
        return Err(ApiError::SignatureInvalid);
    }

    let webhook = classify(body);
    // Answered once the commit that holds it is on disk (see `ledger::webhooks`). A ledger
    // that cannot write answers 503: Smart Glocal sends the webhook again later.
    if let Some(fault) = state.ledger.health().last_fault() {
        return Err(ApiError::LedgerUnavailable(fault));
    }
    let outcome = state.webhooks.record(webhook).await?;
    state.metrics.count_webhook(outcome.as_str());
    if outcome == WebhookOutcome::Conflict {
        state.metrics.count_anomaly("conflict");
    }
    Ok(StatusCode::OK)
}

/// What the ledger is to do with the body of a webhook whose signature verified. Total: any
/// bytes give an answer (the fuzz targets hold it to that).
pub fn classify(body: Bytes) -> VerifiedWebhook {
    match serde_json::from_slice::<sg::Webhook>(&body) {
        Ok(webhook) => verified(body, webhook),
        Err(e) => {
            // Authentic but unreadable: a retry would not help, so keep it and say 200.
            tracing::warn!(error = ?e.to_string(), "verified webhook could not be parsed; stored");
            VerifiedWebhook {
                raw_body: body.into(),
                session_id: None,
                dedup_key: None,
                action: WebhookAction::Record(WebhookOutcome::Unreadable),
            }
        }
    }
}

/// Whether every amount in `session` fits the ledger's integers. One that does not is not a
/// refund we could record exactly, so the whole webhook is kept for audit and applied to
/// nothing, rather than stored wrapped (a negative number) or in part.
pub fn amounts_representable(session: &sg::Session) -> bool {
    session.acquiring_payments.iter().all(|payment| {
        to_stored(payment.amount_details.amount).is_some()
            && payment
                .refunds
                .iter()
                .all(|refund| to_stored(refund.amount_details.amount).is_some())
    })
}

/// What the ledger is to do with an authentic, readable webhook.
fn verified(body: Bytes, webhook: sg::Webhook) -> VerifiedWebhook {
    let session = webhook.session;
    if !amounts_representable(&session) {
        tracing::error!(session_id = %session.id, "verified webhook carries an amount beyond the ledger's range; stored for audit, not applied");
        return VerifiedWebhook {
            raw_body: body.into(),
            session_id: Some(session.id),
            dedup_key: None,
            action: WebhookAction::Record(WebhookOutcome::Unrepresentable),
        };
    }
    let refunds = session
        .payment()
        .map(|p| p.refunds.as_slice())
        .unwrap_or_default();
    let dedup_key = refunds
        .iter()
        .map(|r| format!("{}:{}:{}", session.id, r.id, r.status))
        .collect::<Vec<_>>()
        .join(";");
    let action = if webhook.kind == WebhookType::PaymentRefunded {
        WebhookAction::Apply(refunds.to_vec())
    } else {
        WebhookAction::Record(WebhookOutcome::Ignored)
    };
    VerifiedWebhook {
        raw_body: body.into(),
        session_id: Some(session.id),
        dedup_key: Some(dedup_key),
        action,
    }
}
