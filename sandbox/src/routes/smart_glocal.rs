//! `POST /api/v1/session/status` and `POST /api/v1/session/refund`, as Smart Glocal answers
//! them: project and signature first, over the raw body, then the request, then the faults.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::de::DeserializeOwned;
use shared::smart_glocal::{
    self as sg, RefundRequest, RefundStatus, SessionStatus, StatusRequest, HEADER_PROJECT,
    HEADER_SIGN, PATH_REFUND, PATH_STATUS,
};

use crate::control::{Fault, FaultRoute};
use crate::error::SgError;
use crate::faults::TransportFaults;
use crate::rules::check_refund;
use crate::state::{add_refund, AppState};
use crate::webhook::{finish_refund_later, pause};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH_STATUS, post(status))
        .route(PATH_REFUND, post(refund))
}

async fn status(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (project, request): (String, StatusRequest) = match authenticate(&state, &headers, &body) {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let faults = state.store().faults.take_transport(FaultRoute::Status);
    if let Some(early) = before_handling(faults).await {
        return early;
    }
    let answer = {
        let store = state.store();
        match store.sessions.get(&request.session_id) {
            Some(entry) if entry.project == project => sg::Response::Ok {
                session: entry.session.clone(),
            },
            // Another project's session is as invisible as a missing one.
            _ => SgError::SessionNotFound.envelope(),
        }
    };
    after_handling(&state, faults, answer).await
}

async fn refund(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (project_id, request): (String, RefundRequest) = match authenticate(&state, &headers, &body)
    {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let faults = state.store().faults.take_transport(FaultRoute::Refund);
    if let Some(early) = before_handling(faults).await {
        return early;
    }
    let project = state
        .project(&project_id)
        .cloned()
        .expect("authenticate checked the project");

    let taken = (|| {
        let mut store = state.store();
        let store = &mut *store;
        let entry = store
            .sessions
            .get_mut(&request.session_id)
            .filter(|e| e.project == project_id)
            .ok_or(SgError::SessionNotFound)?;
        let amount = check_refund(&entry.session, &project, &request)?;
        let refund_faults = store.faults.take_refund();
        if refund_faults.outcome == Some(Fault::Decline) {
            return Err(SgError::RefundDeclined);
        }
        let refund_id = add_refund(
            &mut entry.session,
            amount,
            RefundStatus::InProgress,
            false,
            request.metadata.clone(),
        )
        .expect("check_refund found a succeeded payment");
        entry.session.status = SessionStatus::InProgress;
        entry.refunds_received += 1;
        tracing::info!(
            session = %request.session_id, refund = %refund_id, amount, "refund taken"
        );
        Ok((refund_id, entry.session.clone(), refund_faults))
    })();
    // A refusal is an answer like any other: a transport fault taken by the call spoils it.
    let (refund_id, session, refund_faults) = match taken {
        Ok(taken) => taken,
        Err(refused) => return after_handling(&state, faults, refused.envelope()).await,
    };
    finish_refund_later(
        state.clone(),
        request.session_id,
        refund_id,
        session.clone(),
        refund_faults,
    );
    after_handling(&state, faults, sg::Response::Ok { session }).await
}

/// Checks `X-PARTNER-PROJECT`, then `X-PARTNER-SIGN` over the raw bytes, then parses.
fn authenticate<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, T), SgError> {
    let project = headers
        .get(HEADER_PROJECT)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|p| state.project(p).is_some())
        .ok_or(SgError::UnknownProject)?
        .to_owned();
    let signature = headers.get(HEADER_SIGN).and_then(|v| v.to_str().ok());
    if let Err(reason) = state.0.verifier.verify(body, signature) {
        tracing::info!(project, %reason, "request signature rejected");
        return Err(SgError::InvalidSignature);
    }
    let request =
        serde_json::from_slice(body).map_err(|error| SgError::InvalidRequest(error.to_string()))?;
    Ok((project, request))
}

/// Applies a delay, and answers for the request when it is not to be applied at all.
async fn before_handling(faults: TransportFaults) -> Option<Response> {
    if let Some(ms) = faults.delay_ms {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    (faults.transport == Some(Fault::Http500)).then(|| {
        tracing::info!("http_500 fault: request not applied");
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
    })
}

/// Sends the answer of a handled request (applied, or refused by the rules), as the transport
/// fault (if any) spoils it.
async fn after_handling(
    state: &AppState,
    faults: TransportFaults,
    answer: sg::Response,
) -> Response {
    let body = serde_json::to_vec(&answer).expect("a response always serialises");
    match faults.transport {
        Some(Fault::Timeout) => {
            tracing::info!("timeout fault: request applied, answer held back");
            // Stopping the sandbox ends the hang, so a graceful shutdown does not wait for it.
            pause(state, state.0.timeout_fault_hang).await;
        }
        Some(Fault::Garbage) => {
            tracing::info!("garbage fault: request applied, answer cut off");
            let cut = body[..body.len() / 2].to_vec();
            return ([(header::CONTENT_TYPE, "application/json")], cut).into_response();
        }
        _ => {}
    }
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
