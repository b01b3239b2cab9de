//! The refund's details: full or partial, the amount, the reason and a note.

use leptos::prelude::*;
use shared::api::{PaymentView, RefundReason, NOTE_MAX_CHARS};
use shared::{IntoEnumIterator, Locale};

use crate::components::AmountField;
use crate::dom::rx;
use crate::dom::unique_id;
use crate::form_state::{FormState, Mode};
use crate::i18n::{self, tr};
use crate::testids;

#[component]
pub fn RefundForm(
    /// The payment being refunded: its currency, what remains, whether partial is allowed.
    #[prop(into)]
    payment: Signal<PaymentView>,
    /// The form's fields, owned by the caller so it can reset them after a refund.
    form: FormState,
    /// True while the confirmation is open: the fields cannot change under it.
    #[prop(into)]
    locked: Signal<bool>,
    /// The agent asks to review the refund (button or Enter).
    on_review: Callback<()>,
    /// Language of the labels and messages.
    locale: Locale,
) -> impl IntoView {
    let radio_name = unique_id("mode");
    let reason_id = unique_id("reason");
    let note_id = unique_id("note");
    let note_error_id = unique_id("note-error");
    let note_hint_id = unique_id("note-hint");
    // The merchant's setting: fixed for the life of the widget, so not reactive.
    let partial_allowed = payment.with_untracked(|p| p.partial_refunds_allowed);
    let currency = payment.with_untracked(|p| p.amount.currency);

    let amount_error = Signal::derive(move || payment.with(|p| form.amount_error(p, locale)));
    let amount_hint = Signal::derive(move || {
        let remaining = payment.with(|p| p.remaining().format(locale));
        match locale {
            Locale::En => format!("Up to {remaining}."),
            Locale::Ru => format!("Не больше {remaining}."),
        }
    });
    let note_error = Signal::derive(move || form.note_error(locale));
    let note_described_by = {
        let (error_id, hint_id) = (note_error_id.clone(), note_hint_id.clone());
        move || match note_error.get() {
            Some(_) => format!("{error_id} {hint_id}"),
            None => hint_id.clone(),
        }
    };
    let note_required = move || form.reason.get() == RefundReason::Other;

    let full_label = move || {
        let remaining = payment.with(|p| p.remaining().format(locale));
        match locale {
            Locale::En => format!("Full refund ({remaining})"),
            Locale::Ru => format!("Полный возврат ({remaining})"),
        }
    };

    view! {
        <form
            class="sgr-form"
            novalidate
            on:submit=move |ev| {
                ev.prevent_default();
                if !locked.get_untracked() {
                    on_review.run(());
                }
            }
        >
            <fieldset disabled=rx(move || locked.get())>
                <fieldset>
                    <legend>{tr(locale, "Refund", "Возврат")}</legend>
                    <div class="sgr-radios">
                        <label class="sgr-choice">
                            <input
                                type="radio"
                                name=radio_name.clone()
                                value="full"
                                data-testid=testids::MODE_FULL
                                prop:checked=rx(move || form.mode.get() == Mode::Full)
                                on:change=move |_| form.mode.set(Mode::Full)
                            />
                            {full_label}
                        </label>
                        {partial_allowed.then(|| view! {
                            <label class="sgr-choice">
                                <input
                                    type="radio"
                                    name=radio_name.clone()
                                    value="partial"
                                    data-testid=testids::MODE_PARTIAL
                                    prop:checked=rx(move || form.mode.get() == Mode::Partial)
                                    on:change=move |_| payment.with_untracked(|p| form.choose_partial(p, locale))
                                />
                                {tr(locale, "Partial refund", "Частичный возврат")}
                            </label>
                        })}
                    </div>
                    {(!partial_allowed).then(|| view! {
                        <p class="sgr-hint">{tr(locale,
                            "Partial refunds are not enabled for this merchant.",
                            "Частичные возвраты для этого магазина не включены.")}
                        </p>
                    })}
                </fieldset>

                {move || (form.mode.get() == Mode::Partial).then(|| view! {
                    <AmountField text=form.amount error=amount_error currency hint=amount_hint locale />
                })}

                <div class="sgr-field">
                    <label class="sgr-label" for=reason_id.clone()>{tr(locale, "Reason", "Причина")}</label>
                    <select
                        id=reason_id
                        data-testid=testids::REASON_SELECT
                        prop:value=rx(move || form.reason.get().as_str())
                        on:change=move |ev| {
                            if let Ok(reason) = event_target_value(&ev).parse::<RefundReason>() {
                                form.reason.set(reason);
                            }
                        }
                    >
                        {RefundReason::iter().map(|reason| view! {
                            <option value=reason.as_str() selected=rx(move || form.reason.get() == reason)>
                                {i18n::reason_label(reason, locale)}
                            </option>
                        }).collect_view()}
                    </select>
                </div>

                <div class="sgr-field">
                    <label class="sgr-label" for=note_id.clone()>
                        {move || if note_required() {
                            tr(locale, "Note (required)", "Комментарий (обязательно)")
                        } else {
                            tr(locale, "Note (optional)", "Комментарий (необязательно)")
                        }}
                    </label>
                    <textarea
                        id=note_id
                        data-testid=testids::NOTE_INPUT
                        aria-required=rx(move || if note_required() { "true" } else { "false" })
                        aria-invalid=rx(move || if note_error.with(Option::is_some) { "true" } else { "false" })
                        aria-describedby=note_described_by
                        prop:value=rx(move || form.note.get())
                        on:input=move |ev| form.note.set(event_target_value(&ev))
                    ></textarea>
                    <p class="sgr-hint" id=note_hint_id>
                        {rx(move || format!("{} / {NOTE_MAX_CHARS}", form.note.with(|n| n.trim().chars().count())))}
                    </p>
                    <p class="sgr-error" id=note_error_id data-testid=testids::NOTE_ERROR hidden=rx(move || note_error.with(Option::is_none))>
                        {rx(move || note_error.get().unwrap_or_default())}
                    </p>
                </div>
            </fieldset>
            <button type="submit" data-testid=testids::REVIEW_BUTTON disabled=rx(move || locked.get())>
                {tr(locale, "Review refund…", "Проверить возврат…")}
            </button>
        </form>
    }
}
