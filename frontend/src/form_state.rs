//! The refund form's state and its checks, kept apart from the markup so the rules read in
//! one place. The final word is `PaymentView::check_refund`, the proxy's own check.

use leptos::prelude::*;
use shared::api::{
    ErrorCode, PaymentView, RefundAmount, RefundReason, RefundSubmission, NOTE_MAX_CHARS,
};
use shared::{FieldError, IdempotencyKey, Locale, Money};

use crate::i18n;

/// Full (everything that remains) or partial (an amount the agent types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Partial,
}

/// The form's fields. Signals are `Copy`, so the struct is too.
#[derive(Debug, Clone, Copy)]
pub struct FormState {
    pub mode: RwSignal<Mode>,
    pub amount: RwSignal<String>,
    pub reason: RwSignal<RefundReason>,
    pub note: RwSignal<String>,
    /// Errors for untouched fields (an empty amount) show only after a review attempt.
    pub show_all_errors: RwSignal<bool>,
    /// An error that belongs to no single field.
    pub form_error: RwSignal<Option<String>>,
}

/// Where a refused refund's message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Amount(String),
    Note(String),
    Form(String),
}

impl Default for FormState {
    fn default() -> Self {
        Self::new()
    }
}

impl FormState {
    pub fn new() -> Self {
        Self {
            mode: RwSignal::new(Mode::Full),
            amount: RwSignal::new(String::new()),
            reason: RwSignal::new(RefundReason::RequestedByCustomer),
            note: RwSignal::new(String::new()),
            show_all_errors: RwSignal::new(false),
            form_error: RwSignal::new(None),
        }
    }

    pub fn reset(&self) {
        self.mode.set(Mode::Full);
        self.amount.set(String::new());
        self.reason.set(RefundReason::RequestedByCustomer);
        self.note.set(String::new());
        self.show_all_errors.set(false);
        self.form_error.set(None);
    }

    /// The amount field's inline error, as the agent types.
    pub fn amount_error(&self, payment: &PaymentView, locale: Locale) -> Option<String> {
        if self.mode.get() != Mode::Partial {
            return None;
        }
        let text = self.amount.get();
        match Money::parse(&text, payment.amount.currency, locale) {
            Err(shared::AmountError::Empty) if !self.show_all_errors.get() => None,
            Err(error) => Some(i18n::amount_error_message(
                &error,
                payment.amount.currency,
                locale,
            )),
            Ok(money) if money.amount > payment.remaining().amount => {
                Some(exceeds_remaining(payment, locale))
            }
            Ok(_) => None,
        }
    }

    /// Partial mode, with the amount field offering what remains (the agent types over it).
    pub fn choose_partial(&self, payment: &PaymentView, locale: Locale) {
        if self.amount.with_untracked(|a| a.trim().is_empty()) {
            self.amount.set(payment.remaining().format_number(locale));
        }
        self.mode.set(Mode::Partial);
    }

    /// Whether any field shows an error now: the "check the highlighted fields" summary is
    /// only true while this is.
    pub fn has_field_errors(&self, payment: &PaymentView, locale: Locale) -> bool {
        self.amount_error(payment, locale).is_some() || self.note_error(locale).is_some()
    }

    /// The note field's inline error.
    pub fn note_error(&self, locale: Locale) -> Option<String> {
        let note = self.note.get();
        let note = note.trim();
        if note.chars().count() > NOTE_MAX_CHARS {
            return Some(note_too_long(note.chars().count(), locale));
        }
        if self.reason.get() == RefundReason::Other && note.is_empty() && self.show_all_errors.get()
        {
            return Some(i18n::error_message(ErrorCode::NoteRequired, locale).to_owned());
        }
        None
    }

    /// Builds the submission the confirmation will send, checked exactly as the proxy will.
    pub fn submission(
        &self,
        payment: &PaymentView,
        idempotency_key: IdempotencyKey,
        locale: Locale,
    ) -> Result<(RefundSubmission, Money), Refusal> {
        let amount = match self.mode.get_untracked() {
            Mode::Full => RefundAmount::Full,
            Mode::Partial => {
                let text = self.amount.get_untracked();
                let money = Money::parse(&text, payment.amount.currency, locale).map_err(|e| {
                    Refusal::Amount(i18n::amount_error_message(
                        &e,
                        payment.amount.currency,
                        locale,
                    ))
                })?;
                RefundAmount::Partial(money)
            }
        };
        let submission = RefundSubmission::new(
            amount,
            self.reason.get_untracked(),
            &self.note.get_untracked(),
            idempotency_key,
        )
        .map_err(|FieldError(code)| refusal(code, payment, locale))?;
        match payment.check_refund(&submission) {
            // What the confirmation shows is what may be sent: if the payment changes before
            // the agent confirms, the proxy refuses (`amount_changed`) rather than send more.
            Ok(money) => Ok((submission.confirming(money), money)),
            Err(code) => Err(refusal(code, payment, locale)),
        }
    }
}

fn exceeds_remaining(payment: &PaymentView, locale: Locale) -> String {
    let remaining = payment.remaining().format(locale);
    match locale {
        Locale::En => format!("The amount is more than what remains refundable ({remaining})."),
        Locale::Ru => format!("Сумма больше, чем осталось вернуть ({remaining})."),
    }
}

fn note_too_long(chars: usize, locale: Locale) -> String {
    match locale {
        Locale::En => {
            format!("The note is too long: {chars} characters, at most {NOTE_MAX_CHARS}.")
        }
        Locale::Ru => format!(
            "Комментарий слишком длинный: символов — {chars}, можно не больше {NOTE_MAX_CHARS}."
        ),
    }
}

/// Sends each refusal to the field it is about.
fn refusal(code: ErrorCode, payment: &PaymentView, locale: Locale) -> Refusal {
    match code {
        ErrorCode::ExceedsRemaining => Refusal::Amount(exceeds_remaining(payment, locale)),
        ErrorCode::AmountNotANumber => Refusal::Amount(i18n::amount_error_message(
            &shared::AmountError::NotANumber,
            payment.amount.currency,
            locale,
        )),
        ErrorCode::AmountEmpty
        | ErrorCode::AmountNotPositive
        | ErrorCode::AmountTooManyDecimals
        | ErrorCode::AmountTooLarge
        | ErrorCode::CurrencyMismatch => {
            Refusal::Amount(i18n::error_message(code, locale).to_owned())
        }
        ErrorCode::NoteRequired | ErrorCode::NoteTooLong => {
            Refusal::Note(i18n::error_message(code, locale).to_owned())
        }
        other => Refusal::Form(i18n::error_message(other, locale).to_owned()),
    }
}
