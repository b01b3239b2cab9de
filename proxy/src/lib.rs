//! The signing proxy: the only holder of the merchant's Smart Glocal keys. It authenticates
//! support agents, signs `session/status` and `session/refund`, verifies webhooks, and keeps
//! a durable ledger so that one intent is at most one refund.
//!
//! Where things are:
//! - [`refund_flow`]: the refund flow, idempotency to upstream answer, in one file;
//!   [`payment_view`]: the payment as the agent sees it (Smart Glocal merged with the ledger).
//! - [`state`]: [`AppState`], what handlers, the flow and reconciliation share.
//! - [`routes`]: the HTTP routes; [`app`] assembles them with the middleware.
//! - [`ledger`]: all SQL (SQLite): attempts, history, events, webhooks.
//! - [`reconcile`]: resolves `unknown` and stale refunds by polling `session/status`.
//! - [`upstream`]: the signed Smart Glocal client. [`auth`]: agent tokens and SSE tickets.
//! - [`live`]: refund events encoded once and broadcast to the SSE streams.
//! - [`config`], [`error`], [`metrics`], [`cli`] (`proxy serve | token | export`).

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod ledger;
pub mod live;
pub mod metrics;
pub mod payment_view;
pub mod rate_limit;
pub mod reconcile;
pub mod refund_flow;
pub mod routes;
pub mod security;
pub mod serve;
pub mod state;
pub mod static_files;
pub mod upstream;

use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use config::{Config, ConfigError, Settings};
pub use error::ApiError;

pub use state::{AppState, StartError};

use static_files::StaticFiles;

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// The whole HTTP application: routes, the widget files as fallback, and middleware.
pub fn app(state: AppState) -> Router {
    let config = state.config.clone();
    let mut router = routes::router(&state)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .route_layer(security::no_store());
    router = match &config.serve_dir {
        Some(dir) => {
            let files = StaticFiles::new(dir);
            router.fallback(move |request: Request| async move { files.serve(request).await })
        }
        None => router.fallback(not_found),
    };
    let origins: Vec<HeaderValue> = config
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600));
    let trace = TraceLayer::new_for_http()
        // Path only: query strings (SSE tickets) and headers (Authorization) stay out of logs.
        .make_span_with(|request: &Request| {
            let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %request_id)
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO));
    let router = router
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), check_origin))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(
            ServiceBuilder::new()
                .map_request(sanitize_request_id)
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(cors),
        );
    // Outermost, so every answer has them, the middleware's own rejections included.
    security::with_headers(router, &config).with_state(state)
}

/// Keeps a client's `x-request-id` only if it is one plain token (`[A-Za-z0-9._-]{1,64}`):
/// it is echoed and logged, so newlines, forged log text or kilobytes are dropped, and the
/// request gets a fresh id instead.
fn sanitize_request_id(mut request: Request) -> Request {
    let ids = request.headers().get_all("x-request-id");
    let mut iter = ids.iter();
    let keep = match (iter.next(), iter.next()) {
        (Some(id), None) => valid_request_id(id.as_bytes()),
        (None, _) => true,
        _ => false,
    };
    if !keep {
        request.headers_mut().remove("x-request-id");
    }
    request
}

pub fn valid_request_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The operations routes (`/healthz`, `/readyz`, `/metrics`) alone, for `ops_listen`: an
/// address a load balancer and Prometheus reach and the public does not.
pub fn ops_app(state: AppState) -> Router {
    let config = state.config.clone();
    let router = routes::health::router()
        .route_layer(security::no_store())
        .fallback(not_found);
    security::with_headers(router, &config).with_state(state)
}

/// Browsers always say where a cross-site call comes from: refuse origins not configured.
async fn check_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/api/") || path.starts_with("/demo/") {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let allowed = origin
                .to_str()
                .is_ok_and(|o| state.config.allowed_origins.iter().any(|a| a == o));
            if !allowed {
                return ApiError::OriginNotAllowed.into_response();
            }
        }
    }
    next.run(request).await
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .count_request(&route, &method, response.status().as_u16());
    tracing::debug!(elapsed_ms = %started.elapsed().as_millis(), "handled");
    response
}

/// Serves until Ctrl-C or SIGTERM: resumes interrupted attempts, starts reconciliation.
pub async fn run(listener: TcpListener, config: Config) -> Result<(), StartError> {
    run_until(listener, config, shutdown_signal()).await
}

/// [`run`], stopping gracefully when `shutdown` completes.
pub async fn run_until(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let state = AppState::new(config).await?;
    let interrupted = state.ledger.resume_interrupted().await?;
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "attempts interrupted by the last stop are now unknown; reconciling"
        );
    }
    let reconciler = reconcile::spawn(state.clone());
    let ledger_watch = reconcile::watch_ledger(state.clone());
    let ops = match state.config.ops_listen {
        Some(address) => {
            let ops_listener = TcpListener::bind(address).await?;
            tracing::info!(address = %ops_listener.local_addr()?, "operations routes listening");
            let app = ops_app(state.clone());
            let timeout = state.config.header_read_timeout;
            Some(tokio::spawn(serve::serve(
                ops_listener,
                app,
                timeout,
                std::future::pending(),
            )))
        }
        None => None,
    };
    tracing::info!(address = %listener.local_addr()?, project = %state.config.project, "proxy listening");
    // Each connection shares the router; see `serve` for the header read timeout.
    serve::serve(
        listener,
        app(state.clone()),
        state.config.header_read_timeout,
        shutdown,
    )
    .await;
    reconciler.abort();
    ledger_watch.abort();
    if let Some(ops) = ops {
        ops.abort();
    }
    state.ledger.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
