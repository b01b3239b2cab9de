//! `/_sandbox/…`: what tests and the demo page use to look inside the sandbox and steer it.
//! Open to any origin (CORS), because the demo page reads the sessions from the browser.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use shared::smart_glocal::RefundStatus;
use shared::SessionId;
use tower_http::cors::CorsLayer;

use crate::control::{
    ChargebackRequest, CreatePayment, FaultRequest, SandboxSession, WebhookUrlRequest,
};
use crate::error::ControlError;
use crate::state::{add_refund, chargeable, remaining, AppState};
use crate::webhook::send_later;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/_sandbox/sessions",
            get(list_sessions).post(create_session),
        )
        .route("/_sandbox/sessions/{id}", get(get_session))
        .route("/_sandbox/sessions/{id}/chargeback", post(chargeback))
        .route(
            "/_sandbox/faults",
            get(list_faults).post(inject_fault).delete(clear_faults),
        )
        .route("/_sandbox/webhook-url", post(set_webhook_url))
        .layer(CorsLayer::permissive())
}

/// The body as `T`, or the control API's `invalid_json` error.
fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, ControlError> {
    payload
        .map(|Json(value)| value)
        .map_err(|e| ControlError::InvalidJson(e.body_text()))
}

fn session_id(raw: &str) -> Result<SessionId, ControlError> {
    SessionId::parse(raw).map_err(|_| ControlError::SessionNotFound(raw.chars().take(80).collect()))
}

async fn list_sessions(State(state): State<AppState>) -> Json<Vec<SandboxSession>> {
    let store = state.store();
    let mut sessions: Vec<SandboxSession> = store
        .sessions
        .values()
        .map(|entry| state.view(entry))
        .collect();
    // Oldest first, as a payments table reads; the seed's ids follow its dates.
    sessions.sort_by(|a, b| {
        (a.session.created_at, &a.session.id).cmp(&(b.session.created_at, &b.session.id))
    });
    Json(sessions)
}

async fn get_session(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<SandboxSession>, ControlError> {
    let id = session_id(&raw)?;
    let store = state.store();
    let entry = store
        .sessions
        .get(&id)
        .ok_or(ControlError::SessionNotFound(raw))?;
    Ok(Json(state.view(entry)))
}

async fn create_session(
    State(state): State<AppState>,
    payload: Result<Json<CreatePayment>, JsonRejection>,
) -> Result<(StatusCode, Json<SandboxSession>), ControlError> {
    let created = state.create_payment(body(payload)?)?;
    tracing::info!(session = %created.session.id, project = created.project, "payment created");
    Ok((StatusCode::CREATED, Json(created)))
}

async fn chargeback(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    payload: Result<Json<ChargebackRequest>, JsonRejection>,
) -> Result<Json<SandboxSession>, ControlError> {
    let request = body(payload)?;
    let id = session_id(&raw)?;
    let (view, project) = {
        let mut store = state.store();
        let entry = store
            .sessions
            .get_mut(&id)
            .ok_or(ControlError::SessionNotFound(raw))?;
        let (Some(left), Some(chargeable)) =
            (remaining(&entry.session), chargeable(&entry.session))
        else {
            return Err(ControlError::InvalidRequest(
                "the session has no succeeded payment".into(),
            ));
        };
        // Without an amount: what remains refundable, or, refunded in full, the payment.
        let amount = request
            .amount
            .unwrap_or(if left > 0 { left } else { chargeable });
        if amount == 0 || amount > chargeable {
            return Err(ControlError::ExceedsRemaining {
                remaining: chargeable,
            });
        }
        // A chargeback is decided by the card holder's bank: it arrives already final.
        add_refund(
            &mut entry.session,
            amount,
            RefundStatus::Accepted,
            true,
            None,
        );
        (state.view(entry), entry.project.clone())
    };
    tracing::info!(session = %id, amount = ?request.amount, "chargeback");
    send_later(state, project, view.session.clone());
    Ok(Json(view))
}

async fn list_faults(State(state): State<AppState>) -> Json<Vec<FaultRequest>> {
    Json(state.store().faults.pending())
}

async fn inject_fault(
    State(state): State<AppState>,
    payload: Result<Json<FaultRequest>, JsonRejection>,
) -> Result<Json<Vec<FaultRequest>>, ControlError> {
    let request = body(payload)?;
    if request.fault.refund_only() && request.route == Some(crate::control::FaultRoute::Status) {
        return Err(ControlError::InvalidRequest(
            "this fault acts on refunds only: on the `status` route it would never be taken".into(),
        ));
    }
    tracing::info!(?request, "fault injected");
    let mut store = state.store();
    store.faults.push(request);
    Ok(Json(store.faults.pending()))
}

async fn clear_faults(State(state): State<AppState>) -> impl IntoResponse {
    state.store().faults.clear();
    StatusCode::NO_CONTENT
}

async fn set_webhook_url(
    State(state): State<AppState>,
    payload: Result<Json<WebhookUrlRequest>, JsonRejection>,
) -> Result<StatusCode, ControlError> {
    let request = body(payload)?;
    match request.project {
        Some(project) => state.set_project_webhook_url(&project, request.url),
        None => state.set_webhook_url(request.url),
    }
    Ok(StatusCode::NO_CONTENT)
}
