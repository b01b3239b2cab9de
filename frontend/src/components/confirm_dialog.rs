//! The confirmation: what will happen (amount, card, reason, what remains refundable after),
//! and the one button that does it.

use leptos::html;
use leptos::prelude::*;
use shared::Locale;

use crate::dom::rx;
use crate::dom::unique_id;
use crate::i18n::tr;
use crate::testids;

#[component]
pub fn ConfirmDialog(
    /// What will happen, e.g. "Refund 1,000 ¥ to Visa •••• 4242".
    text: String,
    /// The reason, as the agent chose it.
    reason: &'static str,
    /// "Remaining refundable after this refund: …".
    remaining: String,
    /// True while the refund is being submitted: the buttons are disabled.
    #[prop(into)]
    busy: Signal<bool>,
    /// The agent confirms. The caller guards against repeats; this only filters key repeats.
    on_confirm: Callback<()>,
    /// The agent changes their mind (Cancel or Escape).
    on_cancel: Callback<()>,
    /// Language of the buttons.
    locale: Locale,
) -> impl IntoView {
    let text_id = unique_id("confirm-text");
    let labelled_by = text_id.clone();
    let confirm_button = NodeRef::<html::Button>::new();
    // Focus moves to the decision, so keyboard users land where they act.
    Effect::new(move |_| {
        if let Some(button) = confirm_button.get() {
            let _ = button.focus();
        }
    });
    let on_keydown = move |ev: web_sys::KeyboardEvent| {
        if ev.key() != "Escape" {
            return;
        }
        // The widget's Escape, even while the refund is on its way: a host's dialog around it
        // does not close as well (taking the widget with it mid-refund).
        ev.stop_propagation();
        if !busy.get_untracked() {
            ev.prevent_default();
            on_cancel.run(());
        }
    };
    // A held Enter repeats keydown, and each repeat would click: only a fresh press counts.
    let on_confirm_keydown = move |ev: web_sys::KeyboardEvent| {
        if ev.repeat() && (ev.key() == "Enter" || ev.key() == " ") {
            ev.prevent_default();
        }
    };
    view! {
        <div
            class="sgr-dialog"
            role="dialog"
            aria-modal="false"
            aria-labelledby=labelled_by
            data-testid=testids::CONFIRM_DIALOG
            on:keydown=on_keydown
        >
            <p class="sgr-strong" id=text_id data-testid=testids::CONFIRM_TEXT>{text}</p>
            <p data-testid=testids::CONFIRM_REASON>{tr(locale, "Reason: ", "Причина: ")}{reason}</p>
            <p data-testid=testids::CONFIRM_REMAINING>{remaining}</p>
            <p class="sgr-muted">{tr(locale,
                "The money goes back to the customer's card. This cannot be undone.",
                "Деньги вернутся покупателю на карту. Отменить это нельзя.")}
            </p>
            <div class="sgr-actions">
                <button
                    type="button"
                    node_ref=confirm_button
                    data-testid=testids::CONFIRM_BUTTON
                    disabled=rx(move || busy.get())
                    aria-busy=rx(move || if busy.get() { "true" } else { "false" })
                    on:keydown=on_confirm_keydown
                    on:click=move |_| on_confirm.run(())
                >
                    {move || if busy.get() {
                        tr(locale, "Refunding…", "Возвращаем…")
                    } else {
                        tr(locale, "Confirm refund", "Подтвердить возврат")
                    }}
                </button>
                <button
                    type="button"
                    class="sgr-secondary"
                    data-testid=testids::CANCEL_BUTTON
                    disabled=rx(move || busy.get())
                    on:click=move |_| on_cancel.run(())
                >
                    {tr(locale, "Cancel", "Отмена")}
                </button>
            </div>
        </div>
    }
}
