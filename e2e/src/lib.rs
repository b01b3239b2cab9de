//! The end-to-end harness: the real stack on loopback, driven through headless Chromium.
//!
//! - [`runner`]: [`run`] one scenario in the test binary's one browser, artifacts on failure.
//! - [`browser`]: chromedriver on a free port, Chromium with a fresh profile, the console log.
//! - [`stack`]: sandbox + both proxies in-process on `127.0.0.1:0`, serving `dist/`.
//! - [`demo`]: the demo page: open it on the stack, pick a payment, get its widget.
//! - [`widget`]: the widget as an agent meets it, found by `data-testid`.
//! - [`axe`]: the axe-core accessibility audit.
//! - [`artifacts`]: screenshot, console log and DOM of a failed test in `e2e/artifacts/`.

pub mod artifacts;
pub mod axe;
pub mod browser;
pub mod demo;
pub mod runner;
pub mod stack;
pub mod widget;

use std::path::{Path, PathBuf};

pub use runner::{run, test_name, try_run, Ctx};
pub use stack::{Stack, StackOptions};
pub use widget::{testid, Widget};

/// `Money` from what an agent types in English, e.g. `money("100.00", "usd")`: expected
/// texts are formatted by `shared::Money::format`, the widget's own formatter.
pub fn money(amount: &str, currency: &str) -> shared::Money {
    let currency = shared::Currency::parse(currency).expect("a known currency");
    shared::Money::parse(amount, currency, shared::Locale::En).expect("a valid amount")
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// What a scenario returns: `?` on any step, `Err` fails the test with artifacts.
pub type TestResult = Result<(), BoxError>;

/// The repository root (the parent of `e2e/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// How `money` reads on screen in `locale`: `shared::Money::format` with its no-break spaces
/// as WebDriver reports them (plain spaces, per the WebDriver spec's text rules).
pub fn shown(money: &shared::Money, locale: shared::Locale) -> String {
    widget::plain_spaces(&money.format(locale))
}
