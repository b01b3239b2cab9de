//! `POST /api/payments/{session_id}/refunds`: authenticate, parse, then the refund flow;
//! `POST …/refunds/{attempt_id}/approve` and `/reject`: a second agent's decision on a
//! request above `approval_above` (see `refund_flow`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use shared::api::{ApprovalDecision, RefundSubmission, RefundView};

use crate::error::ApiError;
use crate::extract::Agent;
use crate::extract::{ApiJson, AttemptPath, OptionalJson, SessionPath};
use crate::refund_flow::{self, Decision};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/payments/{session_id}/refunds", post(create))
        .route(
            "/api/payments/{session_id}/refunds/{attempt_id}/approve",
            post(|state, agent, path, body| decide(Decision::Approve, state, agent, path, body)),
        )
        .route(
            "/api/payments/{session_id}/refunds/{attempt_id}/reject",
            post(|state, agent, path, body| decide(Decision::Reject, state, agent, path, body)),
        )
}

/// 201 new, 200 idempotent replay, 202 outcome unknown or awaiting approval (see
/// `refund_flow`).
async fn create(
    State(state): State<AppState>,
    agent: Agent,
    SessionPath(session): SessionPath,
    ApiJson(submission): ApiJson<RefundSubmission>,
) -> Result<(StatusCode, Json<RefundView>), ApiError> {
    agent.authorize(&session)?;
    let (status, view) = refund_flow::submit(state, agent, session, submission).await?;
    Ok((status, Json(view)))
}

/// Approve: answers as a submission once sent (201, 202 unknown, or the refusal). Reject:
/// 200 with the request, now `failed` with `approval_rejected`; a note is required.
async fn decide(
    decision: Decision,
    State(state): State<AppState>,
    agent: Agent,
    AttemptPath(session, attempt): AttemptPath,
    OptionalJson(body): OptionalJson<ApprovalDecision>,
) -> Result<(StatusCode, Json<RefundView>), ApiError> {
    agent.authorize(&session)?;
    let (status, view) =
        refund_flow::decide(state, agent, session, attempt, decision, body.note).await?;
    Ok((status, Json(view)))
}
