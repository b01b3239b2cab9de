//! One confirmation sends one request, however often the agent clicks or holds Enter.

use frontend::api::Submitted;
use frontend::submit_guard::SubmitGuard;
use frontend::testids::*;
use shared::api::RefundState;
use shared::Locale;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::{KeyboardEvent, KeyboardEventInit};

use crate::support::*;

#[wasm_bindgen_test]
async fn a_double_click_on_confirm_sends_one_request() {
    let (submit, calls) = counting_submit(None);
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    panel.click(REVIEW_BUTTON);
    settle().await;

    // Both clicks land before the next render could disable the button: only code stops them.
    let confirm = panel.get(CONFIRM_BUTTON);
    confirm.click();
    confirm.click();
    settle().await;
    confirm.click();

    assert_eq!(calls.get(), 1);
    assert_eq!(panel.attr(CONFIRM_BUTTON, "disabled").as_deref(), Some(""));
    assert_eq!(panel.text(STATUS_LIVE), "Submitting the refund…");
}

#[wasm_bindgen_test]
async fn a_held_enter_key_repeats_are_ignored_on_confirm() {
    let (submit, _calls) = counting_submit(None);
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    panel.click(REVIEW_BUTTON);
    settle().await;

    let init = KeyboardEventInit::new();
    init.set_key("Enter");
    init.set_repeat(true);
    init.set_bubbles(true);
    init.set_cancelable(true);
    let repeat = KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).unwrap();
    let confirm = panel.get(CONFIRM_BUTTON);
    confirm.dispatch_event(&repeat).unwrap();
    // A keydown made by script never activates a button by itself, so counting submissions
    // here would prove nothing: what the widget decides is whether the browser's default
    // action, the activation, is cancelled.
    assert!(
        repeat.default_prevented(),
        "a repeated Enter would activate the button"
    );
    // Focus is on the confirm button, so a fresh Enter press is the one that confirms.
    let active = web_sys::window()
        .unwrap()
        .document()
        .unwrap()
        .active_element()
        .unwrap();
    assert_eq!(active.unchecked_into::<web_sys::HtmlElement>(), confirm);
}

#[wasm_bindgen_test]
async fn the_accepted_refund_appears_in_the_list_and_is_announced() {
    let view = payment(1_000, "usd", true);
    let answer = refund(view.amount, RefundState::InProgress, false);
    let (submit, calls) = counting_submit(Some(Ok((answer, Submitted::Created))));
    let panel = mount_panel(view, Locale::En, submit);
    panel.click(REVIEW_BUTTON);
    settle().await;

    panel.click(CONFIRM_BUTTON);
    settle().await;

    assert_eq!(calls.get(), 1);
    assert!(panel.find(CONFIRM_DIALOG).is_none());
    assert_eq!(panel.count(REFUND_ROW), 1);
    assert_eq!(panel.text(REFUND_STATE), "In progress");
    assert_eq!(
        panel.text(STATUS_LIVE),
        "Refund of $10.00 submitted: in progress."
    );
    assert_eq!(
        panel.attr(STATUS_LIVE, "aria-live").as_deref(),
        Some("polite")
    );
    // Nothing remains, so nothing more is offered.
    assert_eq!(panel.text(REMAINING), "$0.00");
    assert!(panel.find(REVIEW_BUTTON).is_none());
}

#[wasm_bindgen_test]
async fn an_unknown_outcome_is_shown_honestly() {
    let view = payment(1_000, "usd", true);
    let answer = refund(view.amount, RefundState::Unknown, false);
    let (submit, _) = counting_submit(Some(Ok((answer, Submitted::OutcomeUnknown))));
    let panel = mount_panel(view, Locale::En, submit);
    panel.click(REVIEW_BUTTON);
    settle().await;
    panel.click(CONFIRM_BUTTON);
    settle().await;

    assert_eq!(panel.text(REFUND_STATE), "Confirming with Smart Glocal");
    assert!(panel.text(STATUS_LIVE).contains("has not confirmed it yet"));
}

#[wasm_bindgen_test]
fn the_guard_lets_the_next_submission_through_once_the_first_is_answered() {
    let guard = SubmitGuard::default();
    let first = guard.try_begin();
    assert!(first.is_some());
    assert!(guard.try_begin().is_none());
    drop(first);
    assert!(guard.try_begin().is_some());
}

#[wasm_bindgen_test]
fn each_confirmation_gets_a_fresh_valid_idempotency_key() {
    let a = frontend::idempotency::new_key();
    let b = frontend::idempotency::new_key();
    assert_ne!(a, b);
    for key in [a, b] {
        // What the proxy will read back: the same rule, in `shared`.
        assert_eq!(shared::IdempotencyKey::parse(key.as_str()), Ok(key.clone()));
        assert_eq!(key.as_str().len(), 32);
    }
}
