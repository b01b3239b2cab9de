//! Every error the proxy can answer with becomes a sentence, in English and in Russian.

use frontend::api::CallError;
use frontend::i18n::error_message;
use frontend::testids::*;

use shared::api::{ErrorBody, ErrorCode, ProviderError};
use shared::{IntoEnumIterator, Locale};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::support::*;

fn refused(code: ErrorCode, status: u16) -> CallError {
    CallError::Proxy {
        status,
        body: ErrorBody::new(code, "detail for the log"),
    }
}

async fn shown_after_submitting(code: ErrorCode, locale: Locale) -> String {
    let (submit, _) = counting_submit(Some(Err(refused(code, 422))));
    let panel = mount_panel(payment(1_000, "usd", true), locale, submit);
    panel.click(REVIEW_BUTTON);
    settle().await;
    panel.click(CONFIRM_BUTTON);
    settle().await;
    assert!(panel.visible(FORM_ERROR));
    assert_eq!(panel.attr(FORM_ERROR, "role").as_deref(), Some("alert"));
    panel.text(FORM_ERROR)
}

#[wasm_bindgen_test]
async fn no_error_box_takes_room_before_there_is_an_error() {
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    settle().await;

    for testid in [FORM_ERROR, AMOUNT_ERROR, NOTE_ERROR] {
        if let Some(element) = panel.find(testid) {
            assert_eq!(
                element.offset_height(),
                0,
                "{testid} takes room while empty"
            );
        }
    }
}

#[wasm_bindgen_test]
async fn a_timeout_upstream_reads_as_a_sentence_in_english_and_russian() {
    assert_eq!(
        shown_after_submitting(ErrorCode::UpstreamTimeout, Locale::En).await,
        "The payment provider did not answer in time. Try again in a minute."
    );
    assert_eq!(
        shown_after_submitting(ErrorCode::UpstreamTimeout, Locale::Ru).await,
        "Платёжный провайдер не ответил вовремя. Попробуйте через минуту."
    );
}

#[wasm_bindgen_test]
async fn a_refund_already_in_flight_reads_as_a_sentence_in_both_languages() {
    assert_eq!(
        shown_after_submitting(ErrorCode::RefundInFlight, Locale::En).await,
        "Another refund of this payment is being submitted right now. Wait a moment and try again."
    );
    assert_eq!(
        shown_after_submitting(ErrorCode::RefundInFlight, Locale::Ru).await,
        "Другой возврат по этому платежу уже отправляется. Подождите и попробуйте снова."
    );
}

#[wasm_bindgen_test]
async fn partial_not_allowed_from_the_proxy_is_explained() {
    let text = shown_after_submitting(ErrorCode::PartialNotAllowed, Locale::En).await;
    assert!(
        text.starts_with("Partial refunds are not enabled"),
        "{text}"
    );
}

/// No answer at all: the refund may have reached the proxy, so the same confirmation (the
/// same idempotency key) is what may be retried.
#[wasm_bindgen_test]
async fn after_no_answer_the_same_confirmation_can_be_retried() {
    let (submit, calls) = counting_submit(Some(Err(CallError::Network)));
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    panel.click(REVIEW_BUTTON);
    settle().await;
    panel.click(CONFIRM_BUTTON);
    settle().await;
    panel.click(CONFIRM_BUTTON);
    settle().await;
    assert_eq!(calls.get(), 2);
    assert!(panel.find(CONFIRM_DIALOG).is_some());
}

/// A retry after no answer that is refused for the agent's rate limit learns nothing of the
/// first try, which may have landed: the dialog stays, and the next Confirm sends the same key.
#[wasm_bindgen_test]
async fn a_rate_limited_retry_keeps_the_confirmation_and_its_key() {
    let (submit, keys) = key_recording_submit(|n| match n {
        1 => Err(CallError::Network),
        _ => Err(CallError::Proxy {
            status: 429,
            body: ErrorBody::new(ErrorCode::RateLimited, "slow down"),
        }),
    });
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    panel.click(REVIEW_BUTTON);
    settle().await;
    for _ in 0..3 {
        panel.click(CONFIRM_BUTTON);
        settle().await;
        assert!(
            panel.find(CONFIRM_DIALOG).is_some(),
            "the confirmation stays"
        );
    }
    let keys = keys.borrow();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "one intent, one key: {keys:?}"
    );
}

/// The same after the token's or the origin's refusal (answered before the proxy looks the
/// key up, so they say nothing of the first try): the next Confirm, with a new token say,
/// sends the same key, and a first try that landed is replayed rather than made twice.
#[wasm_bindgen_test]
async fn a_refusal_before_the_key_is_looked_up_keeps_the_key() {
    for (status, code) in [
        (401, ErrorCode::TokenRevoked),
        (403, ErrorCode::Forbidden),
        (403, ErrorCode::OriginNotAllowed),
        // The proxy's own middleware: the body came too slowly, or too large.
        (408, ErrorCode::RequestTimeout),
        (413, ErrorCode::PayloadTooLarge),
    ] {
        let (submit, keys) = key_recording_submit(move |n| match n {
            2 => Err(CallError::Proxy {
                status,
                body: ErrorBody::new(code, "refused"),
            }),
            _ => Err(CallError::Network),
        });
        let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
        panel.click(REVIEW_BUTTON);
        settle().await;
        for _ in 0..3 {
            panel.click(CONFIRM_BUTTON);
            settle().await;
        }
        let keys = keys.borrow();
        assert_eq!(keys.len(), 3, "{code:?}");
        assert!(
            keys.iter().all(|k| *k == keys[0]),
            "{code:?}: one intent, one key: {keys:?}"
        );
    }
}

/// No answer, then Cancel: the refund may have landed. Reviewed again unchanged, it is the
/// same intent and goes with the same key (a landed refund is replayed, not made twice);
/// changed, it is a new one.
#[wasm_bindgen_test]
async fn after_no_answer_and_cancel_the_same_refund_keeps_its_key() {
    let (submit, keys) = key_recording_submit(|_| Err(CallError::Network));
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    panel.click(MODE_PARTIAL);
    settle().await;
    panel.type_text(AMOUNT_INPUT, "4.00");
    for _ in 0..2 {
        panel.click(REVIEW_BUTTON);
        settle().await;
        panel.click(CONFIRM_BUTTON);
        settle().await;
        panel.click(CANCEL_BUTTON);
        settle().await;
    }
    panel.type_text(AMOUNT_INPUT, "3.00");
    panel.click(REVIEW_BUTTON);
    settle().await;
    panel.click(CONFIRM_BUTTON);
    settle().await;

    let keys = keys.borrow();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0], keys[1], "the same refund, the same key");
    assert_ne!(keys[1], keys[2], "another amount, another intent");
}

#[wasm_bindgen_test]
fn no_answer_at_all_is_explained_too() {
    assert_eq!(
        CallError::Network.message(Locale::En),
        "The refund service cannot be reached. Check the connection and try again."
    );
    assert!(CallError::Network
        .message(Locale::Ru)
        .starts_with("Сервис возвратов недоступен"));
}

/// A limit's refusal says what the agent may still refund, from the proxy's `allowance`.
#[wasm_bindgen_test]
fn a_limits_refusal_says_what_may_still_be_refunded() {
    let mut body = ErrorBody::new(ErrorCode::OverDailyLimit, "over");
    body.allowance = Some(shared::Money::new(
        1_000,
        shared::Currency::parse("usd").unwrap(),
    ));
    let refused = CallError::Proxy { status: 422, body };
    assert_eq!(
        refused.message(Locale::En),
        "This is more than you may still refund today. You can refund up to $10.00."
    );
    assert!(
        refused
            .message(Locale::Ru)
            .contains(" Вы можете вернуть до 10,00"),
        "{}",
        refused.message(Locale::Ru)
    );
}

#[wasm_bindgen_test]
fn every_code_has_an_english_and_a_different_russian_sentence() {
    for code in ErrorCode::iter() {
        let en = error_message(code, Locale::En);
        let ru = error_message(code, Locale::Ru);
        assert!(en.ends_with('.') || en.ends_with('…'), "{code:?}: {en}");
        assert!(
            ru.chars().any(|c| ('а'..='я').contains(&c)),
            "{code:?} is not Russian: {ru}"
        );
        assert_ne!(en, ru);
        assert!(!en.contains('_'), "{code:?} leaks a code: {en}");
    }
}

/// Smart Glocal declined: its reason is shown once, with a next step; the dialog closes back
/// to the form with the values kept, and the next Review → Confirm sends a new key.
#[wasm_bindgen_test]
async fn a_decline_is_explained_once_and_the_next_confirmation_uses_a_new_key() {
    let (submit, keys) = key_recording_submit(|_| {
        let mut body = ErrorBody::new(ErrorCode::UpstreamRejected, "refused");
        body.provider = Some(ProviderError {
            code: "refund_declined".into(),
            description: "the refund was declined by the acquirer".into(),
        });
        Err(CallError::Proxy { status: 422, body })
    });
    let panel = mount_panel(payment(1_000, "usd", true), Locale::En, submit);
    panel.click(MODE_PARTIAL);
    settle().await;
    panel.type_text(AMOUNT_INPUT, "4.00");
    panel.click(REVIEW_BUTTON);
    settle().await;
    panel.click(CONFIRM_BUTTON);
    settle().await;

    assert!(panel.find(CONFIRM_DIALOG).is_none(), "back to the form");
    let shown = panel.text(FORM_ERROR);
    assert!(
        shown.starts_with("The card issuer declined the refund."),
        "{shown}"
    );
    assert!(shown.contains("refund_declined"), "{shown}");
    assert_eq!(panel.text(STATUS_LIVE), "", "said once, not twice");
    assert_eq!(panel.value(AMOUNT_INPUT), "4.00", "the values are kept");

    panel.click(REVIEW_BUTTON);
    settle().await;
    panel.click(CONFIRM_BUTTON);
    settle().await;
    let keys = keys.borrow();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1], "a new intent, a new key");
}

/// Each refusal Smart Glocal documents gets its own cause and next step, in both languages;
/// an unknown one is shown in Smart Glocal's words with the generic step.
#[wasm_bindgen_test]
fn each_provider_refusal_names_its_cause_and_next_step() {
    let refusal = |code: &str, locale| {
        frontend::i18n::provider_refusal(
            &ProviderError {
                code: code.into(),
                description: "as Smart Glocal wrote it".into(),
            },
            locale,
        )
    };
    let cases = [
        ("refund_declined", "support"),
        ("amount_exceeds_remaining", "Reload the payment"),
        ("partial_refund_not_allowed", "whole payment"),
        ("payment_not_succeeded", "Check the payment"),
    ];
    let mut seen = std::collections::HashSet::new();
    for (code, step) in cases {
        let en = refusal(code, Locale::En);
        assert!(en.contains(step), "{code}: {en}");
        assert!(en.ends_with(&format!("({code})")), "{en}");
        assert!(
            !en.contains("as Smart Glocal wrote it"),
            "a known cause: {en}"
        );
        assert!(seen.insert(en), "each cause its own sentence");
        let ru = refusal(code, Locale::Ru);
        assert!(ru.chars().any(|c| ('а'..='я').contains(&c)), "{ru}");
    }
    let unknown = refusal("velocity_limit", Locale::En);
    assert!(unknown.contains("as Smart Glocal wrote it"), "{unknown}");
    assert!(unknown.contains("try again"), "{unknown}");
}

/// A request whose answer never comes is given up after its wait, as a network failure (the
/// widget shows it, and a refund keeps its key); one that answers in time is its answer.
#[wasm_bindgen_test]
async fn an_answer_that_never_comes_is_given_up_after_its_wait() {
    use frontend::api::answered_within;
    use wasm_bindgen_futures::JsFuture;
    let never = js_sys::Promise::new(&mut |_, _| {});
    let started = js_sys::Date::now();
    assert!(JsFuture::from(answered_within(never, 200)).await.is_err());
    let waited = js_sys::Date::now() - started;
    assert!(waited >= 190.0, "gave up after {waited} ms");
    let answered = js_sys::Promise::resolve(&wasm_bindgen::JsValue::from_str("answer"));
    let value = JsFuture::from(answered_within(answered, 200))
        .await
        .unwrap();
    assert_eq!(value.as_string().as_deref(), Some("answer"));
}

/// A look-up Smart Glocal refused (a wrong key or project) is not said as a refused refund,
/// and carries Smart Glocal's own words.
#[wasm_bindgen_test]
fn a_refused_look_up_says_what_smart_glocal_said() {
    let mut body = ErrorBody::new(ErrorCode::UpstreamRejected, "refused");
    body.provider = Some(ProviderError {
        code: "invalid_signature".into(),
        description: "the signature does not match".into(),
    });
    let refused = CallError::Proxy { status: 422, body };
    assert_eq!(
        refused.message(Locale::En),
        "The payment provider refused the request. Smart Glocal: the signature does not match"
    );
    assert_eq!(
        refused.message(Locale::Ru),
        "Платёжный провайдер отклонил запрос. Smart Glocal: the signature does not match"
    );
}
