//! Everything shown for a loaded payment, and the one place a refund is submitted from.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use leptos::html;
use leptos::prelude::*;
use shared::api::{
    ErrorCode, PaymentState, PaymentView, RefundState, RefundSubmission, RefundView,
};
use shared::{AttemptId, Locale, Note};

use crate::api::{CallError, Submitted};
use crate::components::{ConfirmDialog, PaymentSummary, RefundForm, RefundList};
use crate::dom::rx;
use crate::form_state::{FormState, Refusal};
use crate::i18n::{self, tr};
use crate::idempotency;
use crate::submit_guard::SubmitGuard;
use crate::testids;

pub type SubmitFuture = Pin<Box<dyn Future<Output = Result<(RefundView, Submitted), CallError>>>>;
/// Sends a refund: the proxy in the widget, anything that answers in tests.
pub type Submit = Rc<dyn Fn(RefundSubmission) -> SubmitFuture>;
/// A second agent's decision on a request awaiting approval: approve (`true`) or reject,
/// with a note.
pub type Decide = Rc<dyn Fn(AttemptId, bool, Option<Note>) -> SubmitFuture>;

/// The refund the agent is looking at in the confirmation.
#[derive(Debug, Clone, PartialEq)]
struct Draft {
    submission: RefundSubmission,
    text: String,
    remaining: String,
}

#[component]
pub fn RefundPanel(
    /// The payment, kept current by the caller (live events) and by this panel (submissions).
    payment: RwSignal<PaymentView>,
    /// Sends the refund once confirmed.
    submit: Submit,
    /// Approves or rejects another agent's request; without it, requests are only shown.
    #[prop(optional)]
    decide: Option<Decide>,
    /// The polite live region's text: what changed, for screen readers and everyone else.
    status: RwSignal<String>,
    /// Language of everything shown.
    locale: Locale,
) -> impl IntoView {
    let form = FormState::new();
    let draft = RwSignal::new(None::<Draft>);
    // The confirmation last sent without a final answer (no answer at all, or one that says
    // nothing of whether it landed): the same intent confirmed again, even after Cancel,
    // goes with its key, so a refund that did land is replayed, not made twice.
    let unsettled = RwSignal::new(None::<Draft>);
    let busy = RwSignal::new(false);
    let guard = StoredValue::new_local(SubmitGuard::default());
    let submit = StoredValue::new_local(submit);
    let root = NodeRef::<html::Div>::new();
    let review_button_focus = move || focus_within(root, testids::REVIEW_BUTTON);
    // "Check the highlighted fields." holds only while a field is wrong: cleared once fixed.
    let check_fields = RwSignal::new(false);
    // A refusal of the form as a whole (not a field) is cleared once the agent changes it.
    let form_refusal = RwSignal::new(false);
    // One effect for both (each effect is code in the wasm). It runs when a field changes.
    Effect::new(move |first: Option<()>| {
        form.reason.track();
        let wrong = payment.with(|p| form.has_field_errors(p, locale));
        if check_fields.get_untracked() && !wrong {
            check_fields.set(false);
            status.set(String::new());
        }
        if first.is_some() && form_refusal.get_untracked() {
            form_refusal.set(false);
            form.form_error.set(None);
        }
    });

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
        form_refusal.set(false);
        // A fresh key per opened confirmation: this intent, and only this one.
        let key = idempotency::new_key();
        match payment.with_untracked(|p| form.submission(p, key, locale)) {
            Ok((submission, amount)) => {
                let earlier = unsettled.with_untracked(|u| {
                    u.as_ref()
                        .filter(|d| d.submission.same_intent(&submission))
                        .map(|d| d.submission.clone())
                });
                let submission = earlier.unwrap_or(submission);
                let (text, remaining) = payment.with_untracked(|p| {
                    (
                        i18n::confirmation_text(p, amount, locale),
                        i18n::remaining_after(p.remaining_after(amount), locale),
                    )
                });
                draft.set(Some(Draft {
                    submission,
                    text,
                    remaining,
                }));
            }
            Err(Refusal::Form(message)) => {
                form.form_error.set(Some(message));
                form_refusal.set(true);
            }
            // Field errors already show inline, from the same rules.
            Err(Refusal::Amount(_) | Refusal::Note(_)) => {
                check_fields.set(true);
                status.set(
                    tr(
                        locale,
                        "Check the highlighted fields.",
                        "Проверьте отмеченные поля.",
                    )
                    .into(),
                );
            }
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
            // The widget may have gone meanwhile: removed by its host, even by a listener of
            // the `submitted` event the answer just fired. Nothing of it is left to update.
            if busy.try_set(false).is_some() {
                return;
            }
            let settled = !matches!(&result, Err(error) if !spends_the_key(error));
            // Another refund's answer says nothing of the one without an answer: only its own
            // final answer (a retry of it) forgets it.
            if !settled {
                unsettled.set(Some(current.clone()));
            } else if unsettled.with_untracked(|u| {
                u.as_ref()
                    .is_some_and(|d| d.submission.same_intent(&current.submission))
            }) {
                unsettled.set(None);
            }
            match result {
                Ok((refund, how)) => {
                    payment.update(|p| {
                        // What is left of the agent's day, as the proxy counts it: less by this
                        // refund unless it failed. A replay too: it answers a try that got no
                        // answer here, so it was not counted here.
                        if refund.state != RefundState::Failed {
                            p.viewer.spend(refund.amount);
                        }
                        p.upsert_refund(refund.clone());
                    });
                    draft.set(None);
                    form.reset();
                    status.set(submitted_message(&refund, how, locale));
                    // Focus goes to the result; the form may be gone (nothing left to refund).
                    focus_within(root, testids::STATUS_LIVE);
                }
                Err(error) => {
                    let message = match error.provider() {
                        Some(provider) => i18n::provider_refusal(provider, locale),
                        None => error.message(locale),
                    };
                    // Shown once, in the alert: the live region would say it a second time.
                    status.set(String::new());
                    form.form_error.set(Some(message));
                    if settled {
                        // This key's answer is final and would only be replayed: back to the
                        // form, values kept, and the next Review makes a new key.
                        draft.set(None);
                        focus_within(root, testids::FORM_ERROR);
                    }
                }
            }
        });
    });

    // A decision on a request awaiting approval: the answer updates the row like a refund's.
    let on_decide = decide.map(|decide| {
        let decide = StoredValue::new_local(decide);
        Callback::new(
            move |(attempt, approve, note): (AttemptId, bool, Option<Note>)| {
                let future = decide.with_value(|decide| decide(attempt, approve, note));
                form.form_error.set(None);
                leptos::task::spawn_local(async move {
                    match future.await {
                        Ok((refund, how)) => {
                            payment.update(|p| p.upsert_refund(refund.clone()));
                            status.set(submitted_message(&refund, how, locale));
                            // The buttons just used are gone: the keyboard stays here.
                            focus_within(root, testids::STATUS_LIVE);
                        }
                        Err(error) => {
                            status.set(String::new());
                            form.form_error.set(Some(match error.provider() {
                                Some(provider) => i18n::provider_refusal(provider, locale),
                                None => error.message(locale),
                            }));
                            // The rows render anew, so the request's buttons are back for
                            // another try (a decision someone else made arrives as an event).
                            payment.update(|_| {});
                            focus_within(root, testids::FORM_ERROR);
                        }
                    }
                });
            },
        )
    });

    view! {
        <div node_ref=root>
        <PaymentSummary payment locale />
        <RefundList payment on_decide locale />
        <p class="sgr-hint" data-testid=testids::ALLOWANCE>
            {rx(move || payment.with(|p| i18n::allowance(p, locale)))}
        </p>
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
        {move || draft.get().map(|d| {
            let reason = i18n::reason_label(d.submission.reason, locale);
            view! {
                <ConfirmDialog text=d.text reason remaining=d.remaining busy on_confirm on_cancel locale />
            }
        })}
        <p class="sgr-alert" role="alert" tabindex="-1" data-testid=testids::FORM_ERROR hidden=rx(move || form.form_error.with(Option::is_none))>
            {rx(move || form.form_error.get().unwrap_or_default())}
        </p>
        <p class="sgr-status" role="status" aria-live="polite" tabindex="-1" data-testid=testids::STATUS_LIVE>
            {rx(move || status.get())}
        </p>
        </div>
    }
}

/// What the live region says once the proxy has taken the refund.
fn submitted_message(refund: &RefundView, how: Submitted, locale: Locale) -> String {
    let amount = refund.amount.format(locale);
    if refund.error_code == Some(ErrorCode::ApprovalRejected) {
        return format!(
            "{}{amount}{}",
            tr(locale, "Request for a refund of ", "Запрос на возврат "),
            tr(
                locale,
                " rejected: nothing was sent.",
                " отклонён: ничего не отправлено."
            )
        );
    }
    if refund.state == RefundState::AwaitingApproval {
        return format!(
            "{}{amount}: {}.",
            tr(locale, "Refund of ", "Возврат "),
            i18n::state_phrase(refund.state, locale)
        );
    }
    match (how, locale) {
        (Submitted::Created, Locale::En) => format!("Refund of {amount} submitted: {}.", i18n::state_phrase(refund.state, locale)),
        (Submitted::Created, Locale::Ru) => format!("Возврат {amount} отправлен: {}.", i18n::state_phrase(refund.state, locale)),
        (Submitted::Replayed, Locale::En) => format!("This refund of {amount} was already submitted: {}.", i18n::state_phrase(refund.state, locale)),
        (Submitted::Replayed, Locale::Ru) => format!("Этот возврат {amount} уже был отправлен: {}.", i18n::state_phrase(refund.state, locale)),
        (Submitted::OutcomeUnknown, Locale::En) => format!("Refund of {amount} sent; the payment provider has not confirmed it yet. It will update here."),
        (Submitted::OutcomeUnknown, Locale::Ru) => format!("Возврат {amount} отправлен; платёжный провайдер ещё не подтвердил его. Статус обновится здесь."),
    }
}

/// Whether the proxy's answer is final for this idempotency key, so confirming again with it
/// would only replay the answer: Smart Glocal refused or was not reached (the ledger records
/// the attempt as failed), the key belongs to another request, or a refund rule refused it.
/// A network failure, `refund_in_flight` or a 5xx of the proxy itself keep the key: the
/// same confirmation may be retried safely, and must be, since the first may have landed.
/// So do the answers given before the proxy looks the key up (the token's, the payment's
/// binding, the origin's, the agent's rate limit): they say nothing of whether an earlier try
/// with this key landed.
fn spends_the_key(error: &CallError) -> bool {
    match error {
        CallError::Proxy { status, body } => match body.code {
            ErrorCode::UpstreamRejected
            | ErrorCode::UpstreamUnavailable
            | ErrorCode::IdempotencyConflict => true,
            ErrorCode::RefundInFlight
            | ErrorCode::RequestTimeout
            | ErrorCode::PayloadTooLarge
            | ErrorCode::RateLimited
            | ErrorCode::TokenExpired
            | ErrorCode::TokenRevoked
            | ErrorCode::Unauthenticated
            | ErrorCode::TokenInvalid
            | ErrorCode::Forbidden
            | ErrorCode::OriginNotAllowed => false,
            _ => (400..500).contains(status),
        },
        CallError::Network | CallError::BadResponse { .. } => false,
    }
}

/// Why there is no form, said as what happened to the payment.
fn not_refundable_reason(payment: &PaymentView, locale: Locale) -> String {
    match payment.state() {
        // Money remains, but part was refunded already and partial refunds are off: a full
        // refund is no longer possible either, so none is offered.
        _ if payment.refundable() => tr(
            locale,
            "Partial refunds are not enabled, and part of this payment was already refunded: the rest cannot be refunded here.",
            "Частичные возвраты не включены, а часть платежа уже возвращена: остаток здесь вернуть нельзя.",
        )
        .to_owned(),
        PaymentState::Disputed => tr(
            locale,
            "This payment is disputed: the card holder's bank took the money back, so it cannot be refunded.",
            "Платёж оспорен: банк держателя карты вернул деньги, поэтому возврат невозможен.",
        )
        .to_owned(),
        PaymentState::Refunded => tr(
            locale,
            "This payment has been fully refunded.",
            "Этот платёж уже полностью возвращён.",
        )
        .to_owned(),
        PaymentState::RefundPending => format!(
            "{}{}{}",
            tr(locale, "Refund of ", "Возврат "),
            payment.pending_refunds().format(locale),
            tr(
                locale,
                " pending with Smart Glocal. It will update here.",
                " в обработке у Smart Glocal. Статус обновится здесь."
            )
        ),
        _ => i18n::error_message(ErrorCode::NotRefundable, locale).to_owned(),
    }
}

/// Moves focus back to a control of this panel after the dialog closes, once it is rendered.
fn focus_within(root: NodeRef<html::Div>, testid: &'static str) {
    request_animation_frame(move || {
        // The panel may have left the page before the frame.
        let Some(root) = root.try_get_untracked().flatten() else {
            return;
        };
        if !crate::dom::focus_is_free() {
            return;
        }
        if let Ok(Some(el)) = root.query_selector(&format!("[data-testid=\"{testid}\"]")) {
            use wasm_bindgen::JsCast;
            if let Some(el) = el.dyn_ref::<web_sys::HtmlElement>() {
                let _ = el.focus();
            }
        }
    });
}
