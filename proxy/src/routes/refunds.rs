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
use crate::extract::{ApiJson, AttemptPath, SessionPath};
use crate::refund_flow::{self, Decision};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/payments/{session_id}/refunds", post(create))
        .route(
            "/api/payments/{session_id}/refunds/{attempt_id}/approve",
            post(approve),
        )
        .route(
            "/api/payments/{session_id}/refunds/{attempt_id}/reject",
            post(reject),
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

/// As a submission answers once sent: 201, 202 unknown, or the refusal.
async fn approve(
    State(state): State<AppState>,
    agent: Agent,
    AttemptPath(session, attempt): AttemptPath,
    ApiJson(decision): ApiJson<ApprovalDecision>,
) -> Result<(StatusCode, Json<RefundView>), ApiError> {
    agent.authorize(&session)?;
    let (status, view) = refund_flow::decide(
        state,
        agent,
        session,
        attempt,
        Decision::Approve,
        decision.note,
    )
    .await?;
    Ok((status, Json(view)))
}

/// 200 with the request, now `failed` with `approval_rejected`; a note is required.
async fn reject(
    State(state): State<AppState>,
    agent: Agent,
    AttemptPath(session, attempt): AttemptPath,
    ApiJson(decision): ApiJson<ApprovalDecision>,
) -> Result<(StatusCode, Json<RefundView>), ApiError> {
    agent.authorize(&session)?;
    let (status, view) = refund_flow::decide(
        state,
        agent,
        session,
        attempt,
        Decision::Reject,
        decision.note,
    )
    .await?;
    Ok((status, Json(view)))
}
