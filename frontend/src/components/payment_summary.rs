//! The payment at a glance: amount, card, customer, its state (derived in `shared` from the
//! payment and its refunds), date, and what is refunded, pending and still refundable.

use leptos::prelude::*;
use shared::api::PaymentView;
use shared::Locale;

use crate::i18n::{self, tr};
use crate::testids;

#[component]
pub fn PaymentSummary(
    /// The payment, as loaded and then updated by live events.
    #[prop(into)]
    payment: Signal<PaymentView>,
    /// Language of the labels, numbers and dates.
    locale: Locale,
) -> impl IntoView {
    // One reactive closure for the whole list rather than one per value: it changes rarely
    // (a refund moves "refundable"), and each closure costs code size in the wasm. The facts
    // are data rendered by one element type, for the same reason: each distinct view type is
    // code in the wasm.
    move || {
        payment.with(|p| {
            let state = p.state();
            let mut facts: Vec<(&'static str, &'static str, String, String)> = vec![
                (
                    tr(locale, "Amount", "Сумма"),
                    testids::PAYMENT_AMOUNT,
                    "sgr-strong".into(),
                    p.amount.format(locale),
                ),
                (
                    tr(locale, "Paid with", "Оплачено"),
                    testids::PAYMENT_CARD,
                    String::new(),
                    i18n::payment_method(p, locale),
                ),
            ];
            if let Some(reference) = &p.customer_reference {
                facts.push((
                    tr(locale, "Customer", "Покупатель"),
                    testids::PAYMENT_CUSTOMER,
                    String::new(),
                    reference.clone(),
                ));
            }
            facts.push((
                tr(locale, "Status", "Статус"),
                testids::PAYMENT_STATUS,
                format!("sgr-badge sgr-payment-{}", state.as_str()),
                i18n::payment_state_label(p, locale),
            ));
            if let Some(at) = p.created_at {
                facts.push((
                    tr(locale, "Paid on", "Дата"),
                    testids::PAYMENT_DATE,
                    String::new(),
                    i18n::format_date(at.unix_millis(), locale),
                ));
            }
            // A chargeback is no refund: told as the dispute it is, never in the refund list.
            for chargeback in p.chargebacks().filter(|c| c.state.holds_money()) {
                facts.push((
                    tr(locale, "Chargeback", "Чарджбэк"),
                    testids::DISPUTE_AMOUNT,
                    "sgr-payment-disputed".into(),
                    chargeback.amount.format(locale),
                ));
            }
            // Money asked back but not yet settled: told apart, so "refundable" dropping
            // while a refund awaits Smart Glocal is explained rather than silent.
            let pending = p.pending_refunds();
            if pending.amount > 0 {
                facts.push((
                    tr(locale, "Pending", "В обработке"),
                    testids::PAYMENT_PENDING,
                    String::new(),
                    pending.format(locale),
                ));
            }
            let refundable = p.refundable_now();
            facts.push((
                tr(locale, "Refundable", "Можно вернуть"),
                testids::REMAINING,
                "sgr-strong".into(),
                refundable.format(locale),
            ));
            let facts = facts
                .into_iter()
                .map(|(label, testid, class, value)| {
                    view! {
                        <dt>{label}</dt>
                        <dd class=class data-testid=testid>{value}</dd>
                    }
                })
                .collect_view();
            view! { <dl class="sgr-facts">{facts}</dl> }
        })
    }
}
