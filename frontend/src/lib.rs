//! The refund widget: a Leptos client-side app that support agents use inside the merchant's
//! admin page to refund a Smart Glocal payment.
//!
//! - [`embed`]: how it gets onto a page (`[data-sg-refund]` elements, `window.sgRefund.mount`).
//! - [`components`]: what the agent sees, one component per file.
//! - [`api`]: the only module that talks to the proxy (JSON calls and the event stream).
//! - [`form_state`], [`i18n`], [`token`], [`submit_guard`], [`idempotency`]: the rules behind it.
//!
//! `main.rs` only calls [`boot`].

pub mod api;
pub mod components;
pub mod dom;
pub mod embed;
pub mod form_state;
pub mod i18n;
pub mod idempotency;
pub mod rereads;
pub mod style;
pub mod submit_guard;
pub mod testids;
pub mod token;

pub use embed::{boot, mount, unmount};
