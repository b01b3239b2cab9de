//! The confirmation states exactly what will happen.

use frontend::i18n::confirmation_text;
use frontend::testids::*;
use shared::api::RefundState;
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
