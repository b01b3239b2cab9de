//! Operations: `/healthz` (process up), `/readyz` (the ledger can write and the proxy is not
//! stopping), `/metrics`
//! (Prometheus text), and `POST /demo/token`, which stands in for the merchant's backend
//! when `demo_mode = true`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use shared::api::{AgentToken, AgentTokenRequest, Limit};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::metrics::{self, Snapshot};
use crate::state::AppState;

/// Lifetime of demo tokens.
const DEMO_TOKEN_TTL_SECS: u64 = 15 * 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

pub fn demo_router() -> Router<AppState> {
    Router::new().route("/demo/token", post(demo_token))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready while the ledger can write: not while its last write failed, nor when a probe write
/// (at most every half second) fails; ready again once a write reaches the disk. Not ready
/// once the proxy is stopping (503 `{"status":"stopping"}`): its listener takes no more
/// connections while `ops_listen` still answers through the drain, and a load balancer
/// must stop sending it agents.
async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state.live.is_closed() {
        let stopping = Json(json!({"status": "stopping"}));
        return Ok((StatusCode::SERVICE_UNAVAILABLE, stopping).into_response());
    }
    state
        .ledger
        .probe()
        .await
        .map_err(|e| ApiError::LedgerUnavailable(e.to_string()))?;
    Ok(Json(json!({"status": "ready"})).into_response())
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut ledger = state.ledger.health().counts();
    // As `/readyz` says: not writable behind a write that has not ended for seconds.
    ledger.writable &= !state.ledger.writes_stalled();
    let now = Snapshot {
        ledger,
        event_streams_open: state.live.streams_open(),
    };
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(now),
    )
}

async fn demo_token(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AgentTokenRequest>,
) -> Result<Json<AgentToken>, ApiError> {
    let agent = request.agent.trim();
    if !crate::auth::names_an_agent(agent) || agent.len() > 64 {
        return Err(ApiError::InvalidRequest(
            "agent must be 1–64 characters, none a control character".into(),
        ));
    }
    let mut claims = state
        .tokens
        .claims(agent, DEMO_TOKEN_TTL_SECS, request.session_id.as_ref());
    if let Some(demo) = DEMO_AGENTS.iter().find(|demo| demo.name == agent) {
        claims.role = Some(demo.role.to_owned());
        claims.can_approve = demo.can_approve;
        claims.refund_max = demo.refund_max.map(Limit::Any);
        claims.refund_daily = demo.refund_daily.map(Limit::Any);
    }
    Ok(Json(AgentToken {
        token: state.tokens.mint_claims(&claims),
        expires_at: claims.exp,
    }))
}

/// A support team as a merchant's backend would describe it, for the demo page's agent
/// picker: what each may refund on their own, and who may approve others' requests.
pub struct DemoAgent {
    pub name: &'static str,
    pub role: &'static str,
    pub can_approve: bool,
    /// Minor units of the payment's currency.
    pub refund_max: Option<u64>,
    pub refund_daily: Option<u64>,
}

pub const DEMO_AGENTS: [DemoAgent; 3] = [
    DemoAgent {
        name: "june@acme.example",
        role: "junior",
        can_approve: false,
        refund_max: Some(10_000),
        refund_daily: Some(30_000),
    },
    DemoAgent {
        name: "sam@acme.example",
        role: "senior",
        can_approve: true,
        refund_max: Some(50_000),
        refund_daily: None,
    },
    DemoAgent {
        name: "ada@acme.example",
        role: "admin",
        can_approve: true,
        refund_max: None,
        refund_daily: None,
    },
];
