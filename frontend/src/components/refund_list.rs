//! The payment's refunds (failed ones too; chargebacks are not refunds and show in the
//! summary), each with what an auditor asks: reason, note, agent, Smart Glocal's id, times.
//! A request awaiting approval offers an agent who may decide on it (not its requester) a
//! note and Approve / Reject.

use leptos::prelude::*;
use shared::api::{PaymentView, RefundState, RefundView};
use shared::{AttemptId, Locale, Note};

use crate::dom::rx;
use crate::i18n::{self, tr};
use crate::testids;

/// What the agent typed for each request awaiting a decision.
type Drafts = StoredValue<Vec<(AttemptId, String)>, LocalStorage>;

#[component]
pub fn RefundList(
    /// The payment whose refunds are listed, oldest first.
    #[prop(into)]
    payment: Signal<PaymentView>,
    /// Approves (`true`) or rejects a request; `None`: requests are only shown.
    on_decide: Option<Callback<(AttemptId, bool, Option<Note>)>>,
    /// Language of the labels, amounts and dates.
    locale: Locale,
) -> impl IntoView {
    let heading = crate::dom::unique_id("refunds");
    let heading_for_list = heading.clone();
    // What the agent typed for each request: the rows render anew whenever the payment
    // changes (an event, a re-read, a decision that failed), and the text stays.
    let drafts: Drafts = StoredValue::new_local(Vec::new());
    let rows = move || {
        let (refunds, viewer) = payment.with(|p| {
            let refunds: Vec<RefundView> = p.refund_attempts().cloned().collect();
            (refunds, p.viewer.clone())
        });
        if refunds.is_empty() {
            return view! { <p class="sgr-muted">{tr(locale, "No refunds yet.", "Возвратов ещё не было.")}</p> }
                .into_any();
        }
        let items = refunds
            .into_iter()
            .map(|r| {
                // Someone else's request, and this agent may decide on it.
                let decide = on_decide.filter(|_| {
                    r.state == RefundState::AwaitingApproval
                        && viewer.can_approve
                        && r.agent.as_deref() != Some(viewer.agent.as_str())
                });
                let controls = decide
                    .zip(r.attempt_id.clone())
                    .map(|(decide, attempt)| approval(attempt, decide, drafts, locale));
                view! { {row(r, locale)}{controls} }
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
        let why = match (refund.error_code, refund.error_detail) {
            (Some(code), Some(detail)) => {
                format!("{} ({detail})", i18n::error_message(code, locale))
            }
            (Some(code), None) => i18n::error_message(code, locale).to_owned(),
            (None, Some(detail)) => detail,
            (None, None) => String::new(),
        };
        if !why.is_empty() {
            details.push((testids::REFUND_FAILURE, "sgr-error", why));
        }
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

/// A note and Approve / Reject for a request awaiting approval. Rejecting needs the note
/// (the requester reads why); both buttons are off while the decision is on its way.
fn approval(
    attempt: AttemptId,
    decide: Callback<(AttemptId, bool, Option<Note>)>,
    drafts: Drafts,
    locale: Locale,
) -> impl IntoView {
    let typed = drafts.with_value(|d| {
        d.iter()
            .find(|(a, _)| *a == attempt)
            .map(|(_, t)| t.clone())
    });
    let note = RwSignal::new(typed.unwrap_or_default());
    let keep = {
        let attempt = attempt.clone();
        move |text: String| {
            drafts.update_value(|d| {
                d.retain(|(a, _)| *a != attempt);
                d.push((attempt.clone(), text.clone()));
            });
            note.set(text);
        }
    };
    let sent = RwSignal::new(false);
    let label = crate::dom::unique_id("approval-note");
    let send = move |approve: bool| {
        // Once: a second click can come before the button shows it is off.
        if sent.get_untracked() {
            return;
        }
        let Ok(text) = Note::typed(&note.get_untracked()) else {
            return;
        };
        if !approve && text.is_none() {
            return;
        }
        sent.set(true);
        decide.run((attempt.clone(), approve, text));
    };
    let send_approve = send.clone();
    view! {
        <li class="sgr-approval">
            <label for=label.clone()>{tr(locale, "Note for the requester", "Комментарий для автора запроса")}</label>
            <input id=label type="text" maxlength=shared::api::NOTE_MAX_CHARS data-testid=testids::APPROVAL_NOTE
                prop:value=rx(move || note.get()) on:input=move |ev| keep(event_target_value(&ev)) />
            <button type="button" data-testid=testids::APPROVE
                disabled=rx(move || sent.get()) on:click=move |_| send_approve(true)>
                {tr(locale, "Approve and send", "Одобрить и отправить")}
            </button>
            <button type="button" class="sgr-secondary" data-testid=testids::REJECT
                disabled=rx(move || sent.get() || note.with(|n| n.trim().is_empty()))
                on:click=move |_| send(false)>
                {tr(locale, "Reject", "Отклонить")}
            </button>
        </li>
    }
}
