//! The single definition of every type that crosses a wire.
//!
//! - [`money`]: currencies, amounts in minor units, parsing what an agent types.
//! - [`ids`]: Smart Glocal's identifiers, which exist only once parsed.
//! - [`smart_glocal`]: requests, responses and webhooks of the Smart Glocal API.
//! - [`api`]: what the widget and the proxy say to each other, including the error body.
//! - [`backoff`]: the one exponential back-off schedule, for whoever retries (widget, proxy,
//!   sandbox).
//!
//! No server and no browser code lives here: this crate builds for `wasm32-unknown-unknown`
//! and native alike, so the widget and the proxy reject exactly the same input.

pub mod api;
pub mod backoff;
pub mod fields;
pub mod ids;
pub mod money;
pub mod smart_glocal;
mod string_enum;
pub mod timestamp;

pub use backoff::Backoff;
pub use fields::{AttemptId, FieldError, IdempotencyKey, Note};
pub use ids::{IdError, RefundId, SessionId};
pub use money::{AmountError, Currency, Locale, Money};
/// `Enum::iter()` on the closed enums of [`api`] (ErrorCode, RefundReason, …).
pub use strum::IntoEnumIterator;
pub use timestamp::Timestamp;
