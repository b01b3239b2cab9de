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
    let customer = move || payment.with(|p| p.customer_reference.clone());
    let created = move || {
        payment.with(|p| {
            p.created_at
                .map(|t| i18n::format_date(t.unix_millis(), locale))
        })
    };
    view! {
        <dl class="sgr-facts">
            <dt>{tr(locale, "Amount", "Сумма")}</dt>
            <dd class="sgr-strong" data-testid=testids::PAYMENT_AMOUNT>
                {move || payment.with(|p| p.amount.format(locale))}
            </dd>
            <dt>{tr(locale, "Paid with", "Оплачено")}</dt>
            <dd data-testid=testids::PAYMENT_CARD>{move || payment.with(|p| i18n::payment_method(p, locale))}</dd>
            {move || customer().map(|reference| view! {
                <dt>{tr(locale, "Customer", "Покупатель")}</dt>
                <dd data-testid=testids::PAYMENT_CUSTOMER>{reference}</dd>
            })}
            <dt>{tr(locale, "Status", "Статус")}</dt>
            <dd data-testid=testids::PAYMENT_STATUS>
                {move || payment.with(|p| i18n::payment_status_label(&p.status, locale))}
            </dd>
            {move || created().map(|date| view! {
                <dt>{tr(locale, "Paid on", "Дата")}</dt>
                <dd data-testid=testids::PAYMENT_DATE>{date}</dd>
            })}
            <dt>{tr(locale, "Refundable", "Можно вернуть")}</dt>
            <dd class="sgr-strong" data-testid=testids::REMAINING>
                {move || payment.with(|p| p.remaining().format(locale))}
            </dd>
        </dl>
    }
}
