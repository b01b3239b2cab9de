//! Everything shown for a loaded payment, and the one place a refund is submitted from.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use leptos::html;
use leptos::prelude::*;
use shared::api::{ErrorCode, PaymentView, RefundSubmission, RefundView};
use shared::Locale;

use crate::api::{ApiError, Submitted};
use crate::components::{ConfirmDialog, PaymentSummary, RefundForm, RefundList};
use crate::dom::rx;
use crate::form_state::{FormState, Refusal};
use crate::i18n::{self, tr};
use crate::idempotency;
use crate::submit_guard::SubmitGuard;
use crate::testids;

pub type SubmitFuture = Pin<Box<dyn Future<Output = Result<(RefundView, Submitted), ApiError>>>>;
/// Sends a refund: the proxy in the widget, anything that answers in tests.
pub type Submit = Rc<dyn Fn(RefundSubmission) -> SubmitFuture>;

/// The refund the agent is looking at in the confirmation.
#[derive(Debug, Clone, PartialEq)]
struct Draft {
    submission: RefundSubmission,
    text: String,
}

#[component]
pub fn RefundPanel(
    /// The payment, kept current by the caller (live events) and by this panel (submissions).
    payment: RwSignal<PaymentView>,
    /// Sends the refund once confirmed.
    submit: Submit,
    /// The polite live region's text: what changed, for screen readers and everyone else.
    status: RwSignal<String>,
    /// Language of everything shown.
    locale: Locale,
) -> impl IntoView {
    let form = FormState::new();
    let draft = RwSignal::new(None::<Draft>);
    let busy = RwSignal::new(false);
    let guard = StoredValue::new_local(SubmitGuard::default());
    let submit = StoredValue::new_local(submit);
    let root = NodeRef::<html::Div>::new();
    let review_button_focus = move || focus_within(root, testids::REVIEW_BUTTON);

    let offer = move || {
        payment.with(|p| {
            p.refundable() && (p.partial_refunds_allowed || p.remaining().amount == p.amount.amount)
        })
    };

    let on_review = Callback::new(move |()| {
        if draft.with_untracked(Option::is_some) {
            return;
        }
        form.show_all_errors.set(true);
        form.form_error.set(None);
        // A fresh key per opened confirmation: this intent, and only this one.
        let key = idempotency::new_key();
        match payment.with_untracked(|p| form.submission(p, key, locale)) {
            Ok((submission, amount)) => {
                let text = payment.with_untracked(|p| i18n::confirmation_text(p, amount, locale));
                draft.set(Some(Draft { submission, text }));
            }
            Err(Refusal::Form(message)) => form.form_error.set(Some(message)),
            // Field errors already show inline, from the same rules.
            Err(Refusal::Amount(_) | Refusal::Note(_)) => status.set(
                tr(
                    locale,
                    "Check the highlighted fields.",
                    "Проверьте отмеченные поля.",
                )
                .into(),
            ),
        }
    });

    let on_cancel = Callback::new(move |()| {
        draft.set(None);
        form.form_error.set(None);
        review_button_focus();
    });

    let on_confirm = Callback::new(move |()| {
        let Some(in_flight) = guard.with_value(SubmitGuard::try_begin) else {
            return;
        };
        let Some(current) = draft.get_untracked() else {
            return;
        };
        busy.set(true);
        form.form_error.set(None);
        status.set(tr(locale, "Submitting the refund…", "Отправляем возврат…").into());
        let future = submit.with_value(|submit| submit(current.submission.clone()));
        leptos::task::spawn_local(async move {
            let result = future.await;
            drop(in_flight);
            busy.set(false);
            match result {
                Ok((refund, how)) => {
                    payment.update(|p| p.upsert_refund(refund.clone()));
                    draft.set(None);
                    form.reset();
                    status.set(submitted_message(&refund, how, locale));
                    review_button_focus();
                }
                Err(error) => {
                    let message = error.message(locale);
                    // The key was spent on another request: this confirmation cannot be retried.
                    if error.code() == Some(ErrorCode::IdempotencyConflict) {
                        draft.set(None);
                    }
                    status.set(message.clone());
                    form.form_error.set(Some(message));
                }
            }
        });
    });

    view! {
        <div node_ref=root>
        <PaymentSummary payment locale />
        <RefundList payment locale />
        <Show
            when=offer
            fallback=move || view! {
                <p class="sgr-hint" data-testid=testids::NOT_REFUNDABLE>
                    {rx(move || not_refundable_reason(&payment.get(), locale))}
                </p>
            }
        >
            <RefundForm payment form locked=Signal::derive(move || draft.with(Option::is_some)) on_review locale />
        </Show>
        {move || draft.get().map(|d| view! {
            <ConfirmDialog text=d.text busy on_confirm on_cancel locale />
        })}
        <p class="sgr-alert" role="alert" data-testid=testids::FORM_ERROR hidden=rx(move || form.form_error.with(Option::is_none))>
            {rx(move || form.form_error.get().unwrap_or_default())}
        </p>
        <p class="sgr-status" role="status" aria-live="polite" data-testid=testids::STATUS_LIVE>
            {rx(move || status.get())}
        </p>
        </div>
    }
}

/// What the live region says once the proxy has taken the refund.
fn submitted_message(refund: &RefundView, how: Submitted, locale: Locale) -> String {
    let amount = refund.amount.format(locale);
    match (how, locale) {
        (Submitted::Created, Locale::En) => format!("Refund of {amount} submitted: {}.", i18n::state_phrase(refund.state, locale)),
        (Submitted::Created, Locale::Ru) => format!("Возврат {amount} отправлен: {}.", i18n::state_phrase(refund.state, locale)),
        (Submitted::Replayed, Locale::En) => format!("This refund of {amount} was already submitted: {}.", i18n::state_phrase(refund.state, locale)),
        (Submitted::Replayed, Locale::Ru) => format!("Этот возврат {amount} уже был отправлен: {}.", i18n::state_phrase(refund.state, locale)),
        (Submitted::OutcomeUnknown, Locale::En) => format!("Refund of {amount} sent; the payment provider has not confirmed it yet. It will update here."),
        (Submitted::OutcomeUnknown, Locale::Ru) => format!("Возврат {amount} отправлен; платёжный провайдер ещё не подтвердил его. Статус обновится здесь."),
    }
}

fn not_refundable_reason(payment: &PaymentView, locale: Locale) -> &'static str {
    if payment.refundable() {
        // Refundable, but only partly, and partial refunds are off.
        i18n::error_message(ErrorCode::PartialNotAllowed, locale)
    } else if payment.remaining().amount == 0 {
        tr(
            locale,
            "This payment has been fully refunded.",
            "Этот платёж уже полностью возвращён.",
        )
    } else {
        i18n::error_message(ErrorCode::NotRefundable, locale)
    }
}

/// Moves focus back to a control of this panel after the dialog closes, once it is rendered.
fn focus_within(root: NodeRef<html::Div>, testid: &'static str) {
    request_animation_frame(move || {
        let Some(root) = root.get_untracked() else {
            return;
        };
        if let Ok(Some(el)) = root.query_selector(&format!("[data-testid=\"{testid}\"]")) {
            use wasm_bindgen::JsCast;
            if let Some(el) = el.dyn_ref::<web_sys::HtmlElement>() {
                let _ = el.focus();
            }
        }
    });
}
