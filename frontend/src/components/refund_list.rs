//! Refunds and chargebacks so far, each with its live state.

use leptos::prelude::*;
use shared::api::PaymentView;
use shared::Locale;

use crate::i18n::{self, tr};
use crate::testids;

#[component]
pub fn RefundList(
    /// The payment whose refunds are listed, oldest first.
    #[prop(into)]
    payment: Signal<PaymentView>,
    /// Language of the labels, amounts and dates.
    locale: Locale,
) -> impl IntoView {
    let heading = crate::dom::unique_id("refunds");
    let heading_for_list = heading.clone();
    let rows = move || {
        let refunds = payment.with(|p| p.refunds.clone());
        if refunds.is_empty() {
            return view! { <p class="sgr-muted">{tr(locale, "No refunds yet.", "Возвратов ещё не было.")}</p> }
                .into_any();
        }
        let items = refunds
            .into_iter()
            .map(|refund| {
                let state = refund.state;
                let date = refund.created_at.map(|t| i18n::format_date(t.unix_millis(), locale));
                view! {
                    <li data-testid=testids::REFUND_ROW data-state=state.as_str()>
                        <span class="sgr-amount" data-testid=testids::REFUND_AMOUNT>{refund.amount.format(locale)}</span>
                        <span class=format!("sgr-badge sgr-state-{}", state.as_str()) data-testid=testids::REFUND_STATE>
                            {i18n::state_label(state, locale)}
                        </span>
                        {refund.is_chargeback.then(|| view! {
                            <span class="sgr-badge sgr-chargeback" data-testid=testids::CHARGEBACK_BADGE>
                                {tr(locale, "Chargeback", "Чарджбэк")}
                            </span>
                        })}
                        {date.map(|d| view! { <span class="sgr-muted">{d}</span> })}
                    </li>
                }
            })
            .collect_view();
        view! { <ul class="sgr-refunds" data-testid=testids::REFUND_LIST aria-labelledby=heading_for_list.clone()>{items}</ul> }
            .into_any()
    };
    view! {
        <h3 class="sgr-subtitle" id=heading>{tr(locale, "Refunds", "Возвраты")}</h3>
        {rows}
    }
}
