//! Live refund updates: `POST …/events/ticket` (bearer auth) returns a short-lived ticket;
//! `GET …/events?ticket=…` streams `event: refund` messages, `id` = the ledger's `seq`.
//!
//! `EventSource` cannot send headers, hence the ticket; the request log never records query
//! strings, so the ticket stays out of logs too. `Last-Event-ID` replays from the ledger.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use shared::api::{EventsTicket, RefundEvent};
use tokio::sync::broadcast::error::RecvError;

use crate::auth::Agent;
use crate::error::ApiError;
use crate::extract::SessionPath;
use crate::AppState;

/// Comment lines keep proxies and browsers from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/payments/{session_id}/events/ticket", post(ticket))
        .route("/api/payments/{session_id}/events", get(stream))
}

async fn ticket(
    State(state): State<AppState>,
    agent: Agent,
    SessionPath(session): SessionPath,
) -> Result<Json<EventsTicket>, ApiError> {
    agent.authorize(&session)?;
    Ok(Json(state.tokens.mint_ticket(&agent.name, &session)))
}

#[derive(Deserialize)]
struct StreamQuery {
    ticket: Option<String>,
}

fn to_sse(event: &RefundEvent) -> Event {
    Event::default()
        .event("refund")
        .id(event.seq.to_string())
        .json_data(event)
        .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
}

async fn stream(
    State(state): State<AppState>,
    SessionPath(session): SessionPath,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let ticket = query
        .ticket
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthenticated)?;
    state.tokens.verify_ticket(&ticket, &session)?;
    let last_seen: i64 = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| ApiError::InvalidRequest("Last-Event-ID must be a number".into()))?,
        None => 0,
    };
    // Subscribe before reading the backlog, so nothing published in between is lost.
    let mut live = state.events.subscribe();
    let ledger = state.ledger.clone();
    let stream = async_stream::stream! {
        let mut last = last_seen;
        if last > 0 {
            match ledger.events_after(&session, last).await {
                Ok(backlog) => for event in backlog {
                    last = event.seq;
                    yield Ok(to_sse(&event));
                },
                Err(e) => tracing::error!(error = %e, "event backlog unavailable"),
            }
        }
        loop {
            match live.recv().await {
                Ok(event) if event.session_id == session && event.seq > last => {
                    last = event.seq;
                    yield Ok(to_sse(&event));
                }
                Ok(_) => {}
                // Fell behind the broadcast buffer: catch up from the ledger.
                Err(RecvError::Lagged(_)) => {
                    if let Ok(backlog) = ledger.events_after(&session, last).await {
                        for event in backlog {
                            last = event.seq;
                            yield Ok(to_sse(&event));
                        }
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
