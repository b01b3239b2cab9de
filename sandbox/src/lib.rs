//! A local emulation of the Smart Glocal endpoints this project uses, for demos and tests.
//!
//! - [`config`]: keys, projects, webhook timing, the seed ([`SandboxConfig::demo`] needs nothing).
//! - [`seed`]: the payments held on start (`sandbox/seed.json`).
//! - [`routes::smart_glocal`]: `session/status` and `session/refund`, signatures checked.
//! - [`rules`]: the refund rules, one rejection code each.
//! - [`webhook`]: finishing refunds and sending signed `payment_refunded` webhooks, retried.
//! - [`routes::control`] and [`control`]: `/_sandbox/…` to read sessions and inject faults.
//! - [`handle`]: [`Sandbox`], an in-process sandbox on `127.0.0.1:0` for other crates' tests.

pub mod config;
pub mod control;
pub mod error;
mod faults;
pub mod handle;
pub mod routes;
pub mod rules;
pub mod seed;
mod state;
pub mod webhook;

use std::future::Future;

use axum::Router;
use tower_http::trace::TraceLayer;

pub use config::{
    ConfigError, Project, RetryPolicy, SandboxConfig, DEMO_FULL_ONLY_PROJECT,
    DEMO_HMAC_REQUEST_SECRET, DEMO_HMAC_WEBHOOK_SECRET, DEMO_PROJECT,
};
pub use control::{Fault, FaultRequest, FaultRoute, SandboxSession};
pub use error::{ControlError, SgError};
pub use handle::Sandbox;
pub use seed::Seed;
pub use state::AppState;

/// The whole sandbox as a router, for `oneshot` tests or to serve.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(routes::smart_glocal::router())
        .merge(routes::control::router())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `config` on `listener` until the process ends.
pub async fn run(listener: tokio::net::TcpListener, config: SandboxConfig) -> std::io::Result<()> {
    run_until(listener, config, std::future::pending()).await
}

/// Serves until `shutdown` completes, then stops webhook retries and finishes open requests.
pub async fn run_until(
    listener: tokio::net::TcpListener,
    config: SandboxConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(config);
    serve(listener, state, shutdown).await
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopping = state.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.shutdown();
        })
        .await
}
