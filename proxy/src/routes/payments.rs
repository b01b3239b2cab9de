//! `GET /api/payments/{session_id}` (the payment view) and `/history` (the ledger's timeline).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use shared::api::{HistoryEntry, PaymentView};

use crate::error::ApiError;
use crate::extract::Agent;
use crate::extract::SessionPath;
use crate::payment_view::load_payment;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/payments/{session_id}", get(show))
        .route("/api/payments/{session_id}/history", get(history))
}

async fn show(
    State(state): State<AppState>,
    agent: Agent,
    SessionPath(session): SessionPath,
) -> Result<Json<PaymentView>, ApiError> {
    agent.authorize(&session)?;
    load_payment(&state, &agent, &session).await.map(Json)
}

async fn history(
    State(state): State<AppState>,
    agent: Agent,
    SessionPath(session): SessionPath,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    agent.authorize(&session)?;
    Ok(Json(state.ledger.history(&session).await?))
}
