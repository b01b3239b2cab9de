//! The payment at a glance: amount, card, customer, status, date and what remains refundable.

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
    // (a refund moves "refundable"), and each closure costs code size in the wasm.
    move || {
        payment.with(|p| {
            let customer = p.customer_reference.clone().map(|reference| {
                view! {
                    <dt>{tr(locale, "Customer", "Покупатель")}</dt>
                    <dd data-testid=testids::PAYMENT_CUSTOMER>{reference}</dd>
                }
            });
            let created = p.created_at.map(|at| {
                view! {
                    <dt>{tr(locale, "Paid on", "Дата")}</dt>
                    <dd data-testid=testids::PAYMENT_DATE>{i18n::format_date(at.unix_millis(), locale)}</dd>
                }
            });
            view! {
                <dl class="sgr-facts">
                    <dt>{tr(locale, "Amount", "Сумма")}</dt>
                    <dd class="sgr-strong" data-testid=testids::PAYMENT_AMOUNT>{p.amount.format(locale)}</dd>
                    <dt>{tr(locale, "Paid with", "Оплачено")}</dt>
                    <dd data-testid=testids::PAYMENT_CARD>{i18n::payment_method(p, locale)}</dd>
                    {customer}
                    <dt>{tr(locale, "Status", "Статус")}</dt>
                    <dd data-testid=testids::PAYMENT_STATUS>{i18n::payment_status_label(&p.status, locale)}</dd>
                    {created}
                    <dt>{tr(locale, "Refundable", "Можно вернуть")}</dt>
                    <dd class="sgr-strong" data-testid=testids::REMAINING>{p.remaining().format(locale)}</dd>
                </dl>
            }
        })
    }
}
