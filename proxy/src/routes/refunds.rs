//! `POST /api/payments/{session_id}/refunds`: authenticate, parse, then the refund flow.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use shared::api::{RefundSubmission, RefundView};

use crate::error::ApiError;
use crate::extract::Agent;
use crate::extract::{ApiJson, SessionPath};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/payments/{session_id}/refunds", post(create))
}

/// 201 new, 200 idempotent replay, 202 outcome unknown (see `refund_flow`).
async fn create(
    State(state): State<AppState>,
    agent: Agent,
    SessionPath(session): SessionPath,
    ApiJson(submission): ApiJson<RefundSubmission>,
) -> Result<(StatusCode, Json<RefundView>), ApiError> {
    agent.authorize(&session)?;
    let (status, view) = crate::refund_flow::submit(state, agent, session, submission).await?;
    Ok((status, Json(view)))
}
