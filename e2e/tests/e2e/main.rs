//! The end-to-end suite, one test binary so the browser and the stack start once.
//!
//! Every scenario asserts on what the agent sees and on the sandbox's own record of refunds.
//! Run `cargo xtask widget` first (the README's `cargo xtask test` does), then
//! `cargo test -p e2e`. A failing scenario leaves `e2e/artifacts/<test name>/`.

mod accessibility;
mod approvals;
mod embedding;
mod failures;
mod harness;
mod keyboard;
mod locale;
mod refunds;
mod repeats;
mod security;
mod tokens;
mod truth;
mod validation;
