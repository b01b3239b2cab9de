//! HTTP routes, each module owning its handlers and its `router()`.
//!
//! - [`payments`]: `GET /api/payments/{id}` and its `/history`.
//! - [`refunds`]: `POST /api/payments/{id}/refunds` (the flow itself is [`crate::refund_flow`]).
//! - [`events`]: the SSE ticket and stream.
//! - [`webhooks`]: `POST /webhooks/smart-glocal`.
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`, and `POST /demo/token` in demo mode.

pub mod events;
pub mod health;
pub mod payments;
pub mod refunds;
pub mod webhooks;

use axum::Router;

use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let mut router = Router::new()
        .merge(payments::router())
        .merge(refunds::router())
        .merge(events::router())
        .merge(webhooks::router());
    // With `ops_listen`, operations answer only there (see `crate::app::ops_app`).
    if state.config.ops_listen.is_none() {
        router = router.merge(health::router());
    }
    if state.config.demo_mode {
        router = router.merge(health::demo_router());
    }
    router
}
