//! The amount of a partial refund, typed in the payment's currency, with its inline error.

use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use shared::{Currency, Locale};
use web_sys::HtmlInputElement;

use crate::dom::rx;
use crate::dom::unique_id;
use crate::i18n::tr;
use crate::testids;

#[component]
pub fn AmountField(
    /// What the agent has typed.
    text: RwSignal<String>,
    /// What is wrong with it, if anything: shown under the field and tied to it.
    #[prop(into)]
    error: Signal<Option<String>>,
    /// The payment's currency, shown beside the field.
    currency: Currency,
    /// A hint under the field, e.g. how much may be refunded.
    #[prop(into)]
    hint: Signal<String>,
    /// Language of the label.
    locale: Locale,
) -> impl IntoView {
    let input_id = unique_id("amount");
    let error_id = unique_id("amount-error");
    let hint_id = unique_id("amount-hint");
    let described_by = {
        let (error_id, hint_id) = (error_id.clone(), hint_id.clone());
        move || match error.get() {
            Some(_) => format!("{error_id} {hint_id}"),
            None => hint_id.clone(),
        }
    };
    view! {
        <div class="sgr-field">
            <label class="sgr-label" for=input_id.clone()>
                {tr(locale, "Amount to refund", "Сумма возврата")}
            </label>
            <div class="sgr-input-row">
                <input
                    type="text"
                    id=input_id
                    inputmode="decimal"
                    autocomplete="off"
                    spellcheck="false"
                    data-testid=testids::AMOUNT_INPUT
                    aria-invalid=rx(move || if error.with(Option::is_some) { "true" } else { "false" })
                    aria-describedby=described_by
                    prop:value=rx(move || text.get())
                    on:input=move |ev| text.set(event_target_value(&ev))
                    // The field starts as what remains: selected on entry, so typing replaces it.
                    on:focus=move |ev| {
                        if let Some(input) = ev.target().and_then(|t| t.dyn_into::<HtmlInputElement>().ok()) {
                            input.select();
                        }
                    }
                />
                <span aria-hidden="true">{currency.symbol()}</span>
            </div>
            <p class="sgr-hint" id=hint_id>{rx(move || hint.get())}</p>
            <p class="sgr-error" id=error_id data-testid=testids::AMOUNT_ERROR hidden=rx(move || error.with(Option::is_none))>
                {rx(move || error.get().unwrap_or_default())}
            </p>
        </div>
    }
}
