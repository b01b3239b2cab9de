//! `POST /webhooks/smart-glocal`: verify the signature on the raw bytes, then parse, store
//! and apply; answer 200 quickly (Smart Glocal retries anything else for 30 minutes).
//!
//! Forged or unsigned webhooks get 401 and change nothing: they are kept only in the bounded
//! `rejected_webhooks` audit table (verified = false), never applied. Verified webhooks are
//! stored whole in `webhooks` with a dedup key of (session, refund, status) per refund.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use shared::smart_glocal::{self as sg, WebhookType};

use crate::error::ApiError;
use crate::extract::bytes_rejection;
use crate::ledger::ApplyOutcome;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/webhooks/smart-glocal", post(receive))
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
        tracing::warn!(%reason, bytes = body.len(), "webhook rejected");
        if let Err(e) = state
            .ledger
            .record_rejected_webhook(&body, &reason.to_string())
            .await
        {
            tracing::error!(error = %e, "could not keep the rejected webhook for audit");
        }
        return Err(ApiError::SignatureInvalid);
    }

    let webhook: sg::Webhook = match serde_json::from_slice(&body) {
        Ok(webhook) => webhook,
        Err(e) => {
            // Authentic but unreadable: a retry would not help, so keep it and say 200.
            tracing::warn!(error = %e, "verified webhook could not be parsed; stored");
            state
                .ledger
                .record_webhook(&body, None, None, "unreadable")
                .await?;
            state.metrics.count_webhook("unreadable");
            return Ok(StatusCode::OK);
        }
    };
    let session = &webhook.session;
    let refunds = session
        .payment()
        .map(|p| p.refunds.as_slice())
        .unwrap_or_default();
    let dedup_key = refunds
        .iter()
        .map(|r| format!("{}:{}:{}", session.id, r.id, r.status))
        .collect::<Vec<_>>()
        .join(";");
    if webhook.kind != WebhookType::PaymentRefunded {
        state
            .ledger
            .record_webhook(
                &body,
                Some(session.id.as_str()),
                Some(&dedup_key),
                "ignored",
            )
            .await?;
        state.metrics.count_webhook("ignored");
        return Ok(StatusCode::OK);
    }

    let mut outcome = "duplicate";
    for refund in refunds {
        let applied = state
            .ledger
            .apply_upstream_refund(&session.id, refund, "webhook")
            .await?;
        state.publish_all(applied.event);
        outcome = match (outcome, applied.outcome) {
            (_, ApplyOutcome::Applied | ApplyOutcome::New) => "applied",
            ("applied", _) => "applied",
            (_, ApplyOutcome::Stale) => "stale",
            (current, ApplyOutcome::Duplicate) => current,
        };
    }
    state
        .ledger
        .record_webhook(&body, Some(session.id.as_str()), Some(&dedup_key), outcome)
        .await?;
    state.metrics.count_webhook(outcome);
    Ok(StatusCode::OK)
}
