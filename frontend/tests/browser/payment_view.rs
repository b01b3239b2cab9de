//! What the agent sees of the payment, and what is (not) offered.

use frontend::testids::*;
use leptos::prelude::*;
use shared::api::RefundState;
use shared::smart_glocal::PaymentStatus;
use shared::{Locale, Money};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::support::*;

#[wasm_bindgen_test]
async fn the_payment_its_refunds_and_chargebacks_are_shown() {
    let mut view = payment(10_000, "usd", true);
    let usd = view.amount.currency;
    view.refunds
        .push(refund(Money::new(1_000, usd), RefundState::Accepted, false));
    view.refunds
        .push(refund(Money::new(2_000, usd), RefundState::Accepted, true));
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(view, Locale::En, submit);
    settle().await;

    assert_eq!(panel.text(PAYMENT_AMOUNT), "$100.00");
    assert_eq!(panel.text(PAYMENT_CARD), "Visa •••• 4242");
    assert_eq!(panel.text(PAYMENT_CUSTOMER), "cust-42");
    // A chargeback is a dispute: shown apart, not as a refund, and it ends refunds.
    assert_eq!(panel.text(PAYMENT_STATUS), "Disputed");
    assert_eq!(panel.text(REMAINING), "$0.00");
    assert_eq!(panel.count(REFUND_ROW), 1);
    assert_eq!(panel.text(DISPUTE_AMOUNT), "$20.00");
    assert!(panel.find(REVIEW_BUTTON).is_none());
}

/// A failed refund says why when the ledger knows (Smart Glocal's word, reconciliation's
/// verdict, our code), and shows no empty reason line when it does not.
#[wasm_bindgen_test]
async fn a_failed_refund_says_why_or_nothing() {
    let mut view = payment(10_000, "usd", true);
    let usd = view.amount.currency;
    let mut said = refund(Money::new(1_000, usd), RefundState::Failed, false);
    said.error_detail = Some("Smart Glocal: failed".into());
    let silent = refund(Money::new(2_000, usd), RefundState::Failed, false);
    view.refunds.extend([said, silent]);
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(view, Locale::En, submit);
    settle().await;
    assert_eq!(panel.count(REFUND_ROW), 2);
    assert_eq!(panel.count(REFUND_FAILURE), 1);
    assert_eq!(panel.text(REFUND_FAILURE), "Smart Glocal: failed");
}

#[wasm_bindgen_test]
async fn live_updates_change_a_row_in_place() {
    let mut view = payment(10_000, "usd", true);
    let pending = refund(
        Money::new(1_000, view.amount.currency),
        RefundState::InProgress,
        false,
    );
    view.refunds.push(pending.clone());
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(view, Locale::Ru, submit);
    settle().await;
    assert_eq!(panel.text(REFUND_STATE), "В обработке");

    panel.payment.update(|p| {
        p.upsert_refund(shared::api::RefundView {
            state: RefundState::Accepted,
            ..pending
        })
    });
    settle().await;

    assert_eq!(panel.count(REFUND_ROW), 1);
    assert_eq!(panel.text(REFUND_STATE), "Принят");
}

#[wasm_bindgen_test]
async fn partial_is_not_offered_where_it_is_not_allowed() {
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(payment(1_000, "usd", false), Locale::En, submit);
    settle().await;
    assert!(panel.find(MODE_FULL).is_some());
    assert!(panel.find(MODE_PARTIAL).is_none());
}

#[wasm_bindgen_test]
async fn nothing_is_offered_for_a_payment_that_cannot_be_refunded() {
    let mut failed = payment(1_000, "usd", true);
    failed.status = PaymentStatus::Failed;
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(failed, Locale::En, submit);
    settle().await;
    assert!(panel.find(REVIEW_BUTTON).is_none());
    assert_eq!(
        panel.text(NOT_REFUNDABLE),
        "This payment cannot be refunded."
    );

    let mut partly = payment(1_000, "usd", false);
    partly.refunds.push(refund(
        Money::new(100, partly.amount.currency),
        RefundState::Accepted,
        false,
    ));
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(partly, Locale::En, submit);
    settle().await;
    assert!(panel.find(REVIEW_BUTTON).is_none());
    assert_eq!(
        panel.text(NOT_REFUNDABLE),
        "Partial refunds are not enabled, and part of this payment was already refunded: the rest cannot be refunded here.",
        "not \"only the full amount can be refunded\": nothing can"
    );
}

/// A refund Smart Glocal contradicted says so in its row; a long note is clamped and shows
/// whole when focused (keyboard, tap), not only on hover.
#[wasm_bindgen_test]
async fn a_contradicted_refund_needs_attention_and_a_note_can_be_revealed() {
    let mut view = payment(10_000, "usd", true);
    let mut flagged = refund(
        Money::new(4_000, view.amount.currency),
        RefundState::Accepted,
        false,
    );
    flagged.attention = Some("Smart Glocal reports 5000 usd, the ledger holds 4000 usd".into());
    flagged.note = Some("word ".repeat(200));
    view.refunds.push(flagged);
    view.refunds.push(refund(
        Money::new(1_000, view.amount.currency),
        RefundState::Accepted,
        false,
    ));
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(view, Locale::En, submit);
    settle().await;

    assert_eq!(
        panel.count(REFUND_ATTENTION),
        1,
        "only the contradicted refund"
    );
    let text = panel.text(REFUND_ATTENTION);
    assert!(text.starts_with("Needs attention"), "{text}");
    assert!(text.contains("5000 usd"), "{text}");

    let note = panel.get(REFUND_NOTE);
    assert_eq!(note.get_attribute("tabindex").as_deref(), Some("0"));
    let clamped = f64::from(note.offset_height());
    note.focus().unwrap();
    let revealed = f64::from(note.offset_height());
    assert!(
        revealed > clamped * 2.0,
        "focused, the whole note shows: {clamped} px -> {revealed} px"
    );
}

/// Dates are written by the widget itself (a page's first `Intl` date format costs tens of
/// milliseconds): they must read exactly as the browser's `Intl` writes them, in the browser's
/// time zone, for every month, both locales, and hours and minutes below ten.
#[wasm_bindgen_test]
fn dates_read_as_the_browsers_intl_writes_them() {
    use frontend::i18n::{format_date, tag};
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"dateStyle".into(), &"medium".into()).unwrap();
    js_sys::Reflect::set(&options, &"timeStyle".into(), &"short".into()).unwrap();
    for locale in [Locale::En, Locale::Ru] {
        for month in 0..12u32 {
            // A local time in each month (day, hour and minute varied, some below ten),
            // built by the browser so that the time zone is its own.
            let date = js_sys::Date::new_with_year_month_day_hr_min(
                2026,
                month as i32,
                (month * 2 + 1) as i32,
                (month * 2) as i32,
                (month * 5) as i32,
            );
            let millis = date.get_time() as i64;
            let intl: String = date.to_locale_string(tag(locale), &options).into();
            assert_eq!(
                format_date(millis, locale),
                intl,
                "{locale:?}, month {month}"
            );
        }
    }
}

#[wasm_bindgen_test]
fn dates_are_padded_and_named_in_each_language() {
    use frontend::i18n::{written_date, LocalTime};
    let t = |month, day, hour, minute| LocalTime {
        year: 2026,
        month,
        day,
        hour,
        minute,
    };
    let cases = [
        (t(8, 9, 7, 5), Locale::En, "9 Sept 2026, 07:05"),
        (t(11, 31, 23, 59), Locale::En, "31 Dec 2026, 23:59"),
        (t(4, 1, 0, 0), Locale::Ru, "1 мая 2026 г., 00:00"),
        (t(1, 28, 12, 30), Locale::Ru, "28 февр. 2026 г., 12:30"),
    ];
    for (time, locale, text) in cases {
        assert_eq!(written_date(time, locale), text);
    }
}
