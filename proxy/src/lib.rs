//! The signing proxy: the only holder of the merchant's Smart Glocal keys. It authenticates
//! support agents, signs `session/status` and `session/refund`, verifies webhooks, and keeps
//! a durable ledger so that one intent is at most one refund.
//!
//! Where things are:
//! - [`refund_flow`]: the refund flow, idempotency to upstream answer, in one file;
//!   [`payment_view`]: the payment as the agent sees it (Smart Glocal merged with the ledger).
//! - [`state`]: [`AppState`], what handlers, the flow and reconciliation share.
//! - [`routes`]: the HTTP routes; [`app`](app()) assembles them with the middleware;
//!   [`serve`]: [`run`] from start to stop, and the accept loop.
//! - [`ledger`]: all SQL (SQLite): attempts, history, events, webhooks.
//! - [`reconcile`]: resolves `unknown` and stale refunds by polling `session/status`.
//! - [`upstream`]: the signed Smart Glocal client. [`auth`]: agent tokens and SSE tickets.
//! - [`live`]: refund events encoded once and broadcast to the SSE streams.
//! - [`config`], [`error`], [`metrics`], [`cli`] (`proxy serve | token | revoke | export |
//!   verify-ledger`).

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod ledger;
pub mod live;
pub mod memory;
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

pub use app::{app, ops_app, valid_request_id};
pub use config::{Config, ConfigError, Settings};
pub use error::ApiError;
pub use serve::{run, run_until};
pub use state::{AppState, StartError};
