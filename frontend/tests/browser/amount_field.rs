//! The amount field parses what agents type with `shared`, per currency and locale.

use std::cell::RefCell;
use std::rc::Rc;

use frontend::components::Submit;
use frontend::testids::*;
use shared::api::RefundSubmission;
use shared::Locale;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::support::*;

#[wasm_bindgen_test]
async fn typing_decimals_for_a_yen_payment_says_yen_takes_none() {
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(payment(5_000, "jpy", true), Locale::En, submit);
    panel.click(MODE_PARTIAL);
    settle().await;

    panel.type_text(AMOUNT_INPUT, "1.5");
    settle().await;

    assert!(panel.visible(AMOUNT_ERROR));
    assert_eq!(
        panel.text(AMOUNT_ERROR),
        "JPY amounts take no decimal places."
    );
    assert_eq!(
        panel.attr(AMOUNT_INPUT, "aria-invalid").as_deref(),
        Some("true")
    );
    let error_id = panel.attr(AMOUNT_ERROR, "id").unwrap();
    let described_by = panel.attr(AMOUNT_INPUT, "aria-describedby").unwrap();
    assert!(
        described_by.split(' ').any(|id| id == error_id),
        "{described_by} does not name {error_id}"
    );
}

#[wasm_bindgen_test]
async fn a_russian_agent_types_a_comma_and_it_parses() {
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(payment(10_000, "rub", true), Locale::Ru, submit);
    panel.click(MODE_PARTIAL);
    settle().await;

    panel.type_text(AMOUNT_INPUT, "10,50");
    settle().await;
    assert!(
        !panel.visible(AMOUNT_ERROR),
        "error shown: {}",
        panel.text(AMOUNT_ERROR)
    );
    assert_eq!(
        panel.attr(AMOUNT_INPUT, "aria-invalid").as_deref(),
        Some("false")
    );

    panel.click(REVIEW_BUTTON);
    settle().await;
    assert_eq!(
        panel.text(CONFIRM_TEXT),
        "Вернуть 10,50\u{a0}₽ на карту Visa •••• 4242"
    );
}

#[wasm_bindgen_test]
async fn kuwaiti_dinars_take_three_decimals_and_not_four() {
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(payment(10_000, "kwd", true), Locale::En, submit);
    panel.click(MODE_PARTIAL);
    settle().await;

    panel.type_text(AMOUNT_INPUT, "1.250");
    settle().await;
    assert!(!panel.visible(AMOUNT_ERROR));

    panel.type_text(AMOUNT_INPUT, "1.2505");
    settle().await;
    assert_eq!(
        panel.text(AMOUNT_ERROR),
        "KWD takes at most 3 decimal places."
    );
}

#[wasm_bindgen_test]
async fn more_than_what_remains_is_refused_inline_before_submitting() {
    let (submit, calls) = counting_submit(None);
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    panel.click(MODE_PARTIAL);
    settle().await;

    panel.type_text(AMOUNT_INPUT, "10.01");
    settle().await;
    assert_eq!(
        panel.text(AMOUNT_ERROR),
        "The amount is more than what remains refundable ($10.00)."
    );

    panel.click(REVIEW_BUTTON);
    settle().await;
    assert!(panel.find(CONFIRM_DIALOG).is_none());
    assert_eq!(calls.get(), 0);
}

#[wasm_bindgen_test]
async fn an_empty_amount_is_flagged_only_once_the_agent_tries_to_review() {
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    panel.click(MODE_PARTIAL);
    settle().await;
    // The field offers what remains; the agent empties it.
    assert_eq!(panel.value(AMOUNT_INPUT), "10.00");
    panel.type_text(AMOUNT_INPUT, "");
    settle().await;
    assert!(!panel.visible(AMOUNT_ERROR));

    panel.click(REVIEW_BUTTON);
    settle().await;
    assert_eq!(panel.text(AMOUNT_ERROR), "Enter an amount.");
}

#[wasm_bindgen_test]
async fn reason_other_needs_a_note() {
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    panel.select(REASON_SELECT, "other");
    panel.click(REVIEW_BUTTON);
    settle().await;

    assert!(panel.find(CONFIRM_DIALOG).is_none());
    assert_eq!(panel.text(NOTE_ERROR), "Add a note explaining the reason.");
    assert_eq!(
        panel.attr(NOTE_INPUT, "aria-invalid").as_deref(),
        Some("true")
    );

    panel.type_text(NOTE_INPUT, "Customer called twice");
    panel.click(REVIEW_BUTTON);
    settle().await;
    assert!(panel.find(CONFIRM_DIALOG).is_some());
}

/// A note pasted with control characters nobody sees is taken without them: the refund goes
/// on to its confirmation and is sent, instead of a message about reloading the page.
#[wasm_bindgen_test]
async fn a_note_pasted_with_control_characters_is_taken_without_them() {
    let sent = Rc::new(RefCell::new(Vec::new()));
    let seen = sent.clone();
    let submit: Submit = Rc::new(move |submission: RefundSubmission| {
        seen.borrow_mut()
            .push(submission.note.map(|n| n.as_str().to_owned()));
        Box::pin(std::future::pending())
    });
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    panel.select(REASON_SELECT, "other");
    panel.type_text(NOTE_INPUT, "\u{1b}[1mCustomer\u{c} called twice");
    panel.click(REVIEW_BUTTON);
    settle().await;
    assert!(
        panel.find(CONFIRM_DIALOG).is_some(),
        "{}",
        panel.text(FORM_ERROR)
    );
    panel.click(CONFIRM_BUTTON);
    settle().await;
    assert_eq!(
        *sent.borrow(),
        [Some("[1mCustomer called twice".to_owned())]
    );
}

/// Partial starts as what remains, and entering the field selects it: typing replaces the
/// offer instead of appending to it.
#[wasm_bindgen_test]
async fn the_offered_amount_is_selected_when_the_field_is_entered() {
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(payment(10_000, "usd", true), Locale::En, submit);
    panel.click(MODE_PARTIAL);
    settle().await;
    assert_eq!(panel.value(AMOUNT_INPUT), "100.00");

    let input: web_sys::HtmlInputElement = panel.get(AMOUNT_INPUT).unchecked_into();
    input.focus().unwrap();
    settle().await;
    assert_eq!(input.selection_start().unwrap(), Some(0));
    assert_eq!(input.selection_end().unwrap(), Some(6), "all of it");
}
