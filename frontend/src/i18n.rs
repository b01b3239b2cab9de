//! English and Russian: every sentence the widget shows, and locale-aware dates.
//!
//! Amounts are formatted by `shared::Money::format`; this module only chooses words.

use shared::api::{ErrorCode, PaymentState, PaymentView, ProviderError, RefundReason, RefundState};
use shared::smart_glocal::PaymentStatus;
use shared::{AmountError, Currency, Locale, Money};

/// Picks the sentence for the locale. Both are written side by side so neither is forgotten.
pub fn tr(locale: Locale, en: &'static str, ru: &'static str) -> &'static str {
    match locale {
        Locale::En => en,
        Locale::Ru => ru,
    }
}

/// The BCP 47 tag the browser formats dates with.
pub fn tag(locale: Locale) -> &'static str {
    tr(locale, "en-GB", "ru-RU")
}

/// A human sentence for every error the proxy can answer with.
///
/// No wildcard arm on purpose: a new `ErrorCode` must not compile until it has words here.
pub fn error_message(code: ErrorCode, locale: Locale) -> &'static str {
    use ErrorCode::*;
    let (en, ru) = match code {
        Unauthenticated => (
            "You are not signed in to the refund service. Reload the page and try again.",
            "Вы не вошли в сервис возвратов. Перезагрузите страницу и попробуйте снова.",
        ),
        TokenInvalid => (
            "Your session with the refund service is not valid. Reload the page.",
            "Сессия сервиса возвратов недействительна. Перезагрузите страницу.",
        ),
        TokenExpired => (
            "Your session has expired. Renewing it…",
            "Сессия истекла. Обновляем её…",
        ),
        TokenRevoked => (
            "Your access was revoked. Ask your administrator.",
            "Ваш доступ отозван. Обратитесь к администратору.",
        ),
        Forbidden => (
            "You are not allowed to work with this payment.",
            "У вас нет доступа к этому платежу.",
        ),
        OriginNotAllowed => (
            "This page is not allowed to use the refund service.",
            "Этой странице не разрешено обращаться к сервису возвратов.",
        ),
        InvalidJson | UnsupportedMediaType | InvalidRequest | MethodNotAllowed => (
            "The refund service did not understand the request. Reload the page and try again.",
            "Запрос не понят. Перезагрузите страницу и попробуйте снова.",
        ),
        PayloadTooLarge => (
            "The request is too large. Shorten the note and try again.",
            "Запрос слишком большой. Сократите комментарий и попробуйте снова.",
        ),
        RequestTimeout => (
            "The request arrived too slowly. Try again.",
            "Запрос шёл слишком долго. Попробуйте снова.",
        ),
        InvalidSessionId => (
            "This is not a valid payment id.",
            "Неверный идентификатор платежа.",
        ),
        NotFound => (
            "The refund service could not find what was asked for.",
            "Сервис возвратов не нашёл запрошенное.",
        ),
        AmountEmpty => ("Enter an amount.", "Введите сумму."),
        AmountNotANumber => (
            "Enter the amount as a number.",
            "Введите сумму числом.",
        ),
        AmountNotPositive => (
            "The amount must be greater than zero.",
            "Сумма должна быть больше нуля.",
        ),
        AmountTooManyDecimals => (
            "The amount has more decimal places than the currency allows.",
            "В сумме больше знаков после запятой, чем допускает валюта.",
        ),
        AmountTooLarge => ("The amount is too large.", "Сумма слишком большая."),
        CurrencyMismatch => (
            "The refund must be in the payment's currency.",
            "Возврат должен быть в валюте платежа.",
        ),
        ExceedsRemaining => (
            "The amount is more than what remains refundable.",
            "Сумма больше, чем осталось вернуть.",
        ),
        AmountChanged => (
            "The payment changed while you were confirming: nothing was sent. Review the amount again.",
            "Платёж изменился, пока вы подтверждали: ничего не отправлено. Проверьте сумму ещё раз.",
        ),
        PartialNotAllowed => (
            "Partial refunds are not enabled: only the full amount can be refunded.",
            "Частичные возвраты не включены: можно вернуть только всю сумму.",
        ),
        NotRefundable => (
            "This payment cannot be refunded.",
            "Этот платёж нельзя вернуть.",
        ),
        NoteRequired => (
            "Add a note explaining the reason.",
            "Добавьте комментарий с причиной.",
        ),
        NoteTooLong => ("The note is too long.", "Комментарий слишком длинный."),
        InvalidIdempotencyKey => (
            "The request could not be identified. Close the confirmation and try again.",
            "Не удалось опознать запрос. Закройте подтверждение и попробуйте снова.",
        ),
        IdempotencyConflict => (
            "This confirmation was already used for a different refund. Start again.",
            "Это подтверждение уже использовано для другого возврата. Начните заново.",
        ),
        RefundInFlight => (
            "Another refund of this payment is being submitted right now. Wait a moment and try again.",
            "Другой возврат по этому платежу уже отправляется. Подождите и попробуйте снова.",
        ),
        RateLimited => (
            "Too many requests. Wait a few seconds and try again.",
            "Слишком много запросов. Подождите несколько секунд.",
        ),
        PaymentNotFound => (
            "The payment provider does not know this payment.",
            "Платёжный провайдер не знает этот платёж.",
        ),
        UpstreamRejected => (
            "The payment provider refused the request.",
            "Платёжный провайдер отклонил запрос.",
        ),
        UpstreamUnavailable => (
            "The payment provider cannot be reached right now. Try again in a minute.",
            "Платёжный провайдер сейчас недоступен. Попробуйте через минуту.",
        ),
        UpstreamTimeout => (
            "The payment provider did not answer in time. Try again in a minute.",
            "Платёжный провайдер не ответил вовремя. Попробуйте через минуту.",
        ),
        UpstreamBadResponse => (
            "The payment provider answered something unreadable. Try again in a minute.",
            "Платёжный провайдер прислал непонятный ответ. Попробуйте через минуту.",
        ),
        ApprovalNotAllowed => (
            "Only an agent allowed to approve refunds can approve or reject this request.",
            "Одобрить или отклонить запрос может только агент с таким правом.",
        ),
        OwnRequest => (
            "A second agent must approve or reject your own request.",
            "Ваш собственный запрос одобряет или отклоняет другой агент.",
        ),
        NotAwaitingApproval => (
            "This request was already approved, rejected or expired.",
            "Этот запрос уже одобрен, отклонён или истёк.",
        ),
        AlreadyRequested => (
            "Your earlier request for this payment still awaits approval.",
            "Ваш прежний запрос по этому платежу ещё ждёт одобрения.",
        ),
        ApprovalRejected => (
            "A second agent rejected this refund; nothing was sent.",
            "Другой агент отклонил возврат; ничего не отправлено.",
        ),
        ApprovalExpired => (
            "Nobody approved this refund in time; nothing was sent.",
            "Никто не одобрил возврат вовремя; ничего не отправлено.",
        ),
        SignatureInvalid => (
            "A message could not be verified.",
            "Не удалось проверить подпись сообщения.",
        ),
        Internal => (
            "The refund service failed. Try again; if it persists, contact support.",
            "Ошибка в сервисе возвратов. Попробуйте снова; если повторится, обратитесь в поддержку.",
        ),
        OverAgentLimit => (
            "This is more than you may refund at once.",
            "Это больше, чем вам можно вернуть за раз.",
        ),
        OverDailyLimit => (
            "This is more than you may still refund today.",
            "Это больше, чем вам можно ещё вернуть сегодня.",
        ),
        LedgerUnavailable => (
            "The refund could not be recorded, so this try sent nothing. Try again in a few minutes.",
            "Возврат не удалось записать, поэтому эта попытка ничего не отправила. Попробуйте через несколько минут.",
        ),
    };
    tr(locale, en, ru)
}

/// What is wrong with a typed amount, saying how many decimals the currency takes, with an
/// example that is itself valid for the currency (`10` for JPY, `10.500` for KWD).
pub fn amount_error_message(error: &AmountError, currency: Currency, locale: Locale) -> String {
    match error {
        AmountError::NotANumber => {
            let example = currency.example(locale);
            match locale {
                Locale::En => format!("Enter the amount as a number, for example {example}."),
                Locale::Ru => format!("Введите сумму числом, например {example}."),
            }
        }
        AmountError::TooManyDecimals { currency, max: 0 } => match locale {
            Locale::En => format!("{currency} amounts take no decimal places."),
            Locale::Ru => format!("Суммы в {currency} указываются без дробной части."),
        },
        AmountError::TooManyDecimals { currency, max } => match locale {
            Locale::En => format!("{currency} takes at most {max} decimal places."),
            Locale::Ru => format!("В {currency} не больше {max} знаков после запятой."),
        },
        other => error_message(ErrorCode::from(other), locale).to_owned(),
    }
}

/// The words for the network failing before any answer arrived.
pub fn network_error(locale: Locale) -> &'static str {
    tr(
        locale,
        "The refund service cannot be reached. Check the connection and try again.",
        "Сервис возвратов недоступен. Проверьте соединение и попробуйте снова.",
    )
}

pub fn reason_label(reason: RefundReason, locale: Locale) -> &'static str {
    match reason {
        RefundReason::RequestedByCustomer => {
            tr(locale, "Requested by customer", "По просьбе покупателя")
        }
        RefundReason::Duplicate => tr(locale, "Duplicate payment", "Повторный платёж"),
        RefundReason::ProductNotReceived => tr(locale, "Product not received", "Товар не получен"),
        RefundReason::Fraudulent => tr(locale, "Fraudulent", "Мошенничество"),
        RefundReason::Other => tr(locale, "Other", "Другое"),
    }
}

pub fn state_label(state: RefundState, locale: Locale) -> &'static str {
    match state {
        RefundState::AwaitingApproval => tr(locale, "Awaiting approval", "Ждёт одобрения"),
        RefundState::Pending => tr(locale, "Submitting", "Отправляется"),
        // The proxy is asking Smart Glocal (at least every 10 s) until it knows.
        RefundState::Unknown => tr(
            locale,
            "Confirming with Smart Glocal",
            "Уточняется в Smart Glocal",
        ),
        RefundState::InProgress => tr(locale, "In progress", "В обработке"),
        RefundState::Accepted => tr(locale, "Accepted", "Принят"),
        RefundState::Failed => tr(locale, "Failed", "Не прошёл"),
    }
}

/// The state inside a sentence ("Refund of 10.00 $: accepted."). Written out rather than
/// lower-cased at run time, which would pull Unicode case tables into the wasm.
pub fn state_phrase(state: RefundState, locale: Locale) -> &'static str {
    match state {
        RefundState::AwaitingApproval => tr(
            locale,
            "waiting for a second agent's approval, nothing sent yet",
            "ждёт одобрения другого агента, пока ничего не отправлено",
        ),
        RefundState::Pending => tr(locale, "submitting", "отправляется"),
        RefundState::Unknown => tr(
            locale,
            "confirming with Smart Glocal",
            "уточняется в Smart Glocal",
        ),
        RefundState::InProgress => tr(locale, "in progress", "в обработке"),
        RefundState::Accepted => tr(locale, "accepted", "принят"),
        RefundState::Failed => tr(locale, "failed", "не прошёл"),
    }
}

/// The payment's badge: its state as derived in `shared`, or an unknown status as written.
pub fn payment_state_label(payment: &PaymentView, locale: Locale) -> String {
    let (en, ru) = match payment.state() {
        PaymentState::Succeeded => ("Succeeded", "Успешен"),
        PaymentState::RefundPending => ("Refund pending", "Возврат в обработке"),
        PaymentState::PartiallyRefunded => ("Partially refunded", "Частично возвращён"),
        PaymentState::Refunded => ("Refunded", "Возвращён"),
        PaymentState::Disputed => ("Disputed", "Оспорен"),
        PaymentState::Processing | PaymentState::Failed | PaymentState::Unknown => {
            return payment_status_label(&payment.status, locale)
        }
    };
    tr(locale, en, ru).to_owned()
}

/// The widget's heading: what the agent can do, or what happened to the payment.
pub fn title(payment: &PaymentView, locale: Locale) -> &'static str {
    match payment.state() {
        PaymentState::Refunded => tr(locale, "Payment refunded", "Платёж возвращён"),
        PaymentState::Disputed => tr(locale, "Payment disputed", "Платёж оспорен"),
        _ => tr(locale, "Refund payment", "Возврат платежа"),
    }
}

/// Smart Glocal's refusal in words the agent can act on: a known code gets its cause and
/// the next step that cause calls for; an unknown one is shown as Smart Glocal wrote it.
pub fn provider_refusal(provider: &ProviderError, locale: Locale) -> String {
    let code = provider.code.as_str();
    let known = match code {
        "refund_declined" => Some((
            tr(
                locale,
                "The card issuer declined the refund.",
                "Банк-эмитент отклонил возврат.",
            ),
            tr(
                locale,
                "You can try again; if it is declined again, contact Smart Glocal support with this payment.",
                "Можно попробовать снова; если отказ повторится, обратитесь в поддержку Smart Glocal с этим платежом.",
            ),
        )),
        "amount_exceeds_remaining" => Some((
            tr(
                locale,
                "Smart Glocal shows less left to refund.",
                "По данным Smart Glocal, осталось меньше.",
            ),
            tr(
                locale,
                "Reload the payment to see what remains.",
                "Обновите платёж, чтобы увидеть остаток.",
            ),
        )),
        "partial_refund_not_allowed" => Some((
            tr(
                locale,
                "This project takes full refunds only.",
                "Этот проект принимает только полные возвраты.",
            ),
            tr(
                locale,
                "Refund the whole payment instead.",
                "Верните платёж целиком.",
            ),
        )),
        "payment_not_succeeded" => Some((
            tr(
                locale,
                "The payment did not succeed: nothing to refund.",
                "Платёж не прошёл: возвращать нечего.",
            ),
            tr(
                locale,
                "Check the payment in Smart Glocal.",
                "Проверьте платёж в Smart Glocal.",
            ),
        )),
        _ => None,
    };
    let (what, next) = match known {
        Some((what, next)) => (what.to_owned(), next),
        None => {
            let words = if provider.description.is_empty() {
                code
            } else {
                &provider.description
            };
            let what = tr(
                locale,
                "Smart Glocal refused the refund: ",
                "Smart Glocal отклонил возврат: ",
            );
            (
                format!("{what}{words}."),
                tr(
                    locale,
                    "Check the amount and try again; if it is refused again, contact Smart Glocal support.",
                    "Проверьте сумму и попробуйте снова; если отказ повторится, обратитесь в поддержку Smart Glocal.",
                ),
            )
        }
    };
    format!("{what} {next} ({code})")
}

pub fn payment_status_label(status: &PaymentStatus, locale: Locale) -> String {
    match status {
        PaymentStatus::Succeeded => tr(locale, "Succeeded", "Успешен").to_owned(),
        PaymentStatus::InProgress => tr(locale, "In progress", "В обработке").to_owned(),
        PaymentStatus::Pending => tr(locale, "Pending", "Ожидает").to_owned(),
        PaymentStatus::Failed => tr(locale, "Failed", "Не прошёл").to_owned(),
        PaymentStatus::Other(raw) => raw.clone(),
    }
}

/// A date and time in the browser's time zone, as people of the locale write it: what `Intl`'s
/// medium date and short time give for `en-GB` and `ru-RU` (`29 Nov 2026, 15:42`,
/// `29 нояб. 2026 г., 15:42`). Written here rather than asked of `Intl`: a page's first `Intl`
/// date format loads the browser's locale data, 30–70 ms of the page's main thread on the
/// benchmark machine, all of it on the way to the widget's first render.
pub fn format_date(unix_millis: i64, locale: Locale) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(unix_millis as f64));
    written_date(
        LocalTime {
            year: date.get_full_year(),
            month: date.get_month(),
            day: date.get_date(),
            hour: date.get_hours(),
            minute: date.get_minutes(),
        },
        locale,
    )
}

/// A moment as the browser's clock shows it (`Date`'s local getters: month from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub year: u32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
}

/// [`format_date`]'s text for a local time.
pub fn written_date(t: LocalTime, locale: Locale) -> String {
    const EN: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sept", "Oct", "Nov", "Dec",
    ];
    // Russian months abbreviated in the genitive, as in "29 нояб." ("of November").
    const RU: [&str; 12] = [
        "янв.",
        "февр.",
        "мар.",
        "апр.",
        "мая",
        "июн.",
        "июл.",
        "авг.",
        "сент.",
        "окт.",
        "нояб.",
        "дек.",
    ];
    let names = match locale {
        Locale::En => &EN,
        Locale::Ru => &RU,
    };
    let month = names.get(t.month as usize).copied().unwrap_or("?");
    let two = |n: u32| {
        [
            char::from(b'0' + (n / 10 % 10) as u8),
            char::from(b'0' + (n % 10) as u8),
        ]
    };
    let mut out = t.day.to_string();
    out.push(' ');
    out.push_str(month);
    out.push(' ');
    out.push_str(&t.year.to_string());
    out.push_str(tr(locale, ", ", " г., "));
    out.extend(two(t.hour));
    out.push(':');
    out.extend(two(t.minute));
    out
}

/// `Visa •••• 4242`: the brand as people write it and the last four digits.
pub fn card_label(card: &shared::api::CardView) -> String {
    let mut brand = card.brand.trim().to_owned();
    if brand.is_empty() {
        brand = "Card".into();
    } else if brand.chars().all(|c| c.is_ascii_lowercase()) {
        brand = match brand.as_str() {
            "mastercard" => "Mastercard".into(),
            "amex" => "Amex".into(),
            "unionpay" => "UnionPay".into(),
            "jcb" | "mir" => brand.to_ascii_uppercase(),
            _ => {
                let mut chars = brand.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            }
        };
    }
    format!("{brand} •••• {}", card.last4)
}

/// How the customer paid, for display.
pub fn payment_method(payment: &shared::api::PaymentView, locale: Locale) -> String {
    match &payment.card {
        Some(card) => card_label(card),
        None if payment.payment_type.is_empty() => {
            tr(locale, "Unknown method", "Неизвестный способ").to_owned()
        }
        None => payment.payment_type.clone(),
    }
}

/// "Remaining refundable after this refund: $50.00".
pub fn remaining_after(amount: Money, locale: Locale) -> String {
    let label = tr(
        locale,
        "Remaining refundable after this refund: ",
        "Останется к возврату после этого: ",
    );
    format!("{label}{}", amount.format(locale))
}

/// The confirmation's one sentence: "Refund ¥1,000 to Visa •••• 4242".
pub fn confirmation_text(
    payment: &shared::api::PaymentView,
    amount: shared::Money,
    locale: Locale,
) -> String {
    // Above the approval threshold, confirming only asks: say so where the agent decides.
    let viewer = &payment.viewer;
    let asks = viewer.approval_above.is_some_and(|above| {
        above.currency == amount.currency
            && payment.awaits_approval(&viewer.agent, amount, above.amount)
    });
    let amount = amount.format(locale);
    let text = match (&payment.card, locale) {
        (Some(card), Locale::En) => format!("Refund {amount} to {}", card_label(card)),
        (Some(card), Locale::Ru) => format!("Вернуть {amount} на карту {}", card_label(card)),
        (None, Locale::En) => format!(
            "Refund {amount} to the customer ({})",
            payment_method(payment, locale)
        ),
        (None, Locale::Ru) => format!(
            "Вернуть {amount} покупателю ({})",
            payment_method(payment, locale)
        ),
    };
    if asks {
        return text
            + tr(
                locale,
                ": after a second agent approves it. Confirming sends the request.",
                ": после одобрения другим агентом. Подтверждение отправит запрос.",
            );
    }
    text
}

/// What the agent may refund on their own, said before they type: their allowance (the
/// lower of the per-refund and what is left of the daily limit) and the approval threshold.
pub fn allowance(payment: &PaymentView, locale: Locale) -> String {
    let viewer = &payment.viewer;
    let mut parts = Vec::new();
    if let Some(allowance) = viewer.allowance() {
        parts.push(format!(
            "{}{}{}",
            tr(locale, "You can refund up to ", "Вы можете вернуть до "),
            allowance.format(locale),
            tr(locale, " now.", " сейчас.")
        ));
    }
    if let Some(above) = viewer.approval_above {
        parts.push(format!(
            "{}{}{}",
            tr(locale, "Refunds above ", "Возвраты больше "),
            above.format(locale),
            tr(
                locale,
                " (yours of this payment together) wait for a second agent's approval.",
                " (ваши по этому платежу вместе) ждут одобрения другого агента."
            )
        ));
    }
    parts.join(" ")
}
