//! The payment's refunds (failed ones too; chargebacks are not refunds and show in the
//! summary), each with what an auditor asks: reason, note, agent, Smart Glocal's id, times.

use leptos::prelude::*;
use shared::api::{PaymentView, RefundState, RefundView};
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
        let refunds: Vec<RefundView> = payment.with(|p| p.refund_attempts().cloned().collect());
        if refunds.is_empty() {
            return view! { <p class="sgr-muted">{tr(locale, "No refunds yet.", "Возвратов ещё не было.")}</p> }
                .into_any();
        }
        let items = refunds.into_iter().map(|r| row(r, locale)).collect_view();
        view! { <ul class="sgr-refunds" data-testid=testids::REFUND_LIST aria-labelledby=heading_for_list.clone()>{items}</ul> }
            .into_any()
    };
    view! {
        <h3 class="sgr-subtitle" id=heading>{tr(locale, "Refunds", "Возвраты")}</h3>
        {rows}
    }
}

fn row(refund: RefundView, locale: Locale) -> impl IntoView {
    let state = refund.state;
    let date = |t: shared::Timestamp| i18n::format_date(t.unix_millis(), locale);
    // Every detail is the same element, so the wasm holds one view type for all of them
    // rather than one per kind of detail.
    let mut details: Vec<(&'static str, &'static str, String)> = Vec::new();
    if let Some(reason) = refund.reason {
        let label = i18n::reason_label(reason, locale).to_owned();
        details.push((testids::REFUND_REASON, "", label));
    }
    if let Some(agent) = refund.agent {
        details.push((
            testids::REFUND_AGENT,
            "",
            format!("{}{agent}", tr(locale, "by ", "агент: ")),
        ));
    }
    if let Some(id) = refund.refund_id {
        // Selected whole on one click (CSS `user-select: all`), so it copies without a button.
        details.push((testids::REFUND_ID, "sgr-id", id.to_string()));
    }
    if let Some(at) = refund.finished_at {
        details.push((
            "",
            "",
            format!("{}{}", tr(locale, "Finished ", "Завершён "), date(at)),
        ));
    }
    if let Some(note) = refund.note {
        // Clamped to two lines; hovering, focusing (Tab) or tapping it shows the whole note.
        details.push((testids::REFUND_NOTE, "sgr-note", note));
    }
    if let Some(what) = refund.attention {
        details.push((
            testids::REFUND_ATTENTION,
            "sgr-error",
            format!(
                "{}{what}",
                tr(
                    locale,
                    "Needs attention: Smart Glocal reports otherwise: ",
                    "Требует внимания: у Smart Glocal иначе: "
                )
            ),
        ));
    }
    if state == RefundState::Failed {
        let mut why = refund
            .error_code
            .map(|code| i18n::error_message(code, locale).to_owned())
            .unwrap_or_default();
        if let Some(detail) = refund.error_detail {
            why = format!("{why} ({detail})");
        }
        details.push((testids::REFUND_FAILURE, "sgr-error", why));
    }
    let details = details
        .into_iter()
        .map(|(testid, class, text)| {
            // Only a clamped note takes focus: that is how a keyboard or a tap reveals it.
            let tabindex = (class == "sgr-note").then_some("0");
            view! { <span class=class data-testid=testid tabindex=tabindex>{text}</span> }
        })
        .collect_view();
    view! {
        <li data-testid=testids::REFUND_ROW data-state=state.as_str()>
            <div class="sgr-row">
                <span class="sgr-amount" data-testid=testids::REFUND_AMOUNT>{refund.amount.format(locale)}</span>
                <span class=format!("sgr-badge sgr-state-{}", state.as_str()) data-testid=testids::REFUND_STATE>
                    {i18n::state_label(state, locale)}
                </span>
                <span class="sgr-muted">{refund.created_at.map(date)}</span>
            </div>
            <div class="sgr-row sgr-small">{details}</div>
        </li>
    }
}
