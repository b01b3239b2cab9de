//! What the widget and the proxy cost, each measured against a baseline in the same run.
//!
//! - [`fixtures`]: a realistic ~1 KB `payment_refunded` webhook and the demo keys.
//! - [`timing`]: medians of repeated timings, for CPU-bound work like signing.
//! - [`signing_cost`]: signing and webhook verification in both schemes.
//! - [`weight`]: the widget's files in `dist/`, raw, gzip and brotli; [`wasm_profile`]: its
//!   wasm by crate.
//! - [`start`]: the widget in headless Chromium, navigation to interactive.
//! - [`overhead`]: the refund path straight to the sandbox and through the proxy.
//! - [`ingest`]: the proxy's webhook route against a bare axum 200 handler.
//! - [`floor`]: the storage floor, a bare handler doing only the proxy's durable writes.
//! - [`fanout`]: one webhook to 10,000 event streams, and the proxy's memory.
//! - [`sustained`]: a minute of refunds at a steady rate, and whether the proxy's memory grows.
//! - [`rig`], [`servers`], [`load`]: the stack under test (the proxy in its own process) and
//!   the bounded load generator.
//! - [`machine`]: what the benchmarks ran on.
//! - [`report`]: the one table, printed and written to `BENCHMARKS.md`.
//!
//! Benchmarks are not tests: nothing here fails on a timing. A goal is printed beside each
//! figure with met / missed, and that is all.

pub mod fanout;
pub mod fixtures;
pub mod floor;
pub mod ingest;
pub mod load;
pub mod machine;
pub mod overhead;
pub mod postgres;
pub mod report;
pub mod rig;
pub mod servers;
pub mod signing_cost;
pub mod start;
pub mod sustained;
pub mod timing;
pub mod wasm_profile;
pub mod weight;

/// The repository root (the parent of `bench/`): where `dist/` and `BENCHMARKS.md` live.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}
