//! The confirmation states exactly what will happen.

use std::cell::RefCell;
use std::rc::Rc;

use frontend::components::Submit;
use frontend::i18n::confirmation_text;
use frontend::testids::*;
use leptos::prelude::*;
use shared::api::{RefundAmount, RefundState, RefundSubmission};
use shared::{Locale, Money};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::support::*;

#[wasm_bindgen_test]
async fn a_full_yen_refund_is_confirmed_with_amount_and_card() {
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(payment(1_000, "jpy", true), Locale::En, submit);

    panel.click(REVIEW_BUTTON);
    settle().await;

    assert!(panel.find(CONFIRM_DIALOG).is_some());
    assert_eq!(panel.text(CONFIRM_TEXT), "Refund ¥1,000 to Visa •••• 4242");
    assert_eq!(
        panel.attr(CONFIRM_DIALOG, "role").as_deref(),
        Some("dialog")
    );
}

#[wasm_bindgen_test]
async fn a_full_refund_of_a_partly_refunded_payment_is_what_remains() {
    let mut view = payment(10_000, "usd", true);
    view.refunds.push(refund(
        Money::new(2_500, view.amount.currency),
        RefundState::Accepted,
        false,
    ));
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(view, Locale::En, submit);

    panel.click(REVIEW_BUTTON);
    settle().await;

    assert_eq!(panel.text(CONFIRM_TEXT), "Refund $75.00 to Visa •••• 4242");
}

/// The refund sent is bound to the amount the confirmation showed: if the payment changes
/// before Confirm (an earlier refund fails, so more remains), the proxy refuses rather than
/// refund more than the agent confirmed.
#[wasm_bindgen_test]
async fn the_submission_carries_the_amount_the_confirmation_showed() {
    let mut view = payment(10_000, "usd", true);
    let usd = view.amount.currency;
    view.refunds.push(refund(
        Money::new(4_000, usd),
        RefundState::InProgress,
        false,
    ));
    let sent = Rc::new(RefCell::new(Vec::<RefundSubmission>::new()));
    let seen = sent.clone();
    let submit: Submit = Rc::new(move |submission: RefundSubmission| {
        seen.borrow_mut().push(submission);
        Box::pin(std::future::pending())
    });
    let panel = mount_panel(view, Locale::En, submit);
    panel.click(REVIEW_BUTTON);
    settle().await;
    assert_eq!(panel.text(CONFIRM_TEXT), "Refund $60.00 to Visa •••• 4242");
    // The earlier refund fails while the confirmation is open.
    panel
        .payment
        .update(|p| p.refunds[0].state = RefundState::Failed);
    settle().await;
    panel.click(CONFIRM_BUTTON);
    settle().await;

    let sent = sent.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].amount, RefundAmount::Full);
    assert_eq!(sent[0].confirmed_amount, Some(Money::new(6_000, usd)));
}

#[wasm_bindgen_test]
async fn cancelling_closes_the_confirmation_and_sends_nothing() {
    let (submit, calls) = counting_submit(None);
    let panel = mount_panel(payment(1_000, "jpy", true), Locale::En, submit);
    panel.click(REVIEW_BUTTON);
    settle().await;

    panel.click(CANCEL_BUTTON);
    settle().await;

    assert!(panel.find(CONFIRM_DIALOG).is_none());
    assert_eq!(calls.get(), 0);
}

#[wasm_bindgen_test]
fn the_sentence_is_russian_for_russian_agents() {
    let view = payment(100_000, "rub", true);
    let text = confirmation_text(&view, Money::new(100_000, view.amount.currency), Locale::Ru);
    assert_eq!(text, "Вернуть 1\u{a0}000,00\u{a0}₽ на карту Visa •••• 4242");
}

#[wasm_bindgen_test]
async fn escape_closes_the_confirmation_and_nothing_around_the_widget_hears_it() {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    panel.click(REVIEW_BUTTON);
    settle().await;
    // A host's dialog around the widget, closing on Escape as such dialogs do.
    let heard = Rc::new(std::cell::Cell::new(0));
    let count = heard.clone();
    let listener = Closure::<dyn Fn()>::new(move || count.set(count.get() + 1));
    panel
        .root
        .add_event_listener_with_callback("keydown", listener.as_ref().unchecked_ref())
        .unwrap();
    let init = web_sys::KeyboardEventInit::new();
    init.set_key("Escape");
    init.set_bubbles(true);
    let escape =
        web_sys::KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).unwrap();
    panel.get(CONFIRM_BUTTON).dispatch_event(&escape).unwrap();
    settle().await;
    assert!(
        panel.find(CONFIRM_DIALOG).is_none(),
        "the confirmation closed"
    );
    assert_eq!(heard.get(), 0, "the host heard the widget's Escape");

    // While the refund is on its way, Escape closes nothing, the host's dialog included.
    let never: Submit = Rc::new(|_| Box::pin(std::future::pending()));
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, never);
    panel.click(REVIEW_BUTTON);
    settle().await;
    panel.click(CONFIRM_BUTTON);
    settle().await;
    panel
        .root
        .add_event_listener_with_callback("keydown", listener.as_ref().unchecked_ref())
        .unwrap();
    let escape =
        web_sys::KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).unwrap();
    panel.get(CONFIRM_BUTTON).dispatch_event(&escape).unwrap();
    settle().await;
    assert!(
        panel.find(CONFIRM_DIALOG).is_some(),
        "the refund on its way stays on screen"
    );
    assert_eq!(
        heard.get(),
        0,
        "the host heard Escape while the refund was sent"
    );
}
