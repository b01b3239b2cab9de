//! The widget in a real browser (headless Chromium through `wasm-bindgen-test`): components
//! are mounted with data passed in, so no proxy is needed.

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[path = "browser/support.rs"]
mod support;

#[path = "browser/amount_field.rs"]
mod amount_field;
#[path = "browser/approvals.rs"]
mod approvals;
#[path = "browser/confirmation.rs"]
mod confirmation;
#[path = "browser/embedding.rs"]
mod embedding;
#[path = "browser/errors.rs"]
mod errors;
#[path = "browser/payment_view.rs"]
mod payment_view;
#[path = "browser/submit_once.rs"]
mod submit_once;
