//! Small browser helpers: unique element ids, the host's language, the performance mark.

use std::cell::Cell;
use std::sync::Arc;

use shared::Locale;
use wasm_bindgen::JsValue;

thread_local! {
    static NEXT_ID: Cell<u32> = const { Cell::new(0) };
}

/// The mark a benchmark reads: the payment view is on screen and can be used.
pub const INTERACTIVE_MARK: &str = "sg-refund:interactive";

/// An id unique on the page, so several widgets can tie labels to their own fields.
pub fn unique_id(name: &str) -> String {
    let n = NEXT_ID.with(|next| {
        let n = next.get() + 1;
        next.set(n);
        n
    });
    format!("sgr{n}-{name}")
}

/// `data-lang` if given, else the host page's `<html lang>`, else English.
pub fn locale_for(data_lang: Option<String>) -> Locale {
    let tag = data_lang.filter(|l| !l.trim().is_empty()).or_else(|| {
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
            .and_then(|e| e.get_attribute("lang"))
    });
    tag.map(|t| Locale::from_tag(&t)).unwrap_or_default()
}

/// Whether the keyboard may be moved into the widget after an answer came: it is nowhere the
/// agent chose (the page's body, the control just used having gone), not in a field of the
/// host's or another of the widget's they moved to meanwhile.
pub fn focus_is_free() -> bool {
    let active = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element());
    active.is_none_or(|e| e.tag_name() == "BODY" || !e.is_connected())
}

/// Records `sg-refund:interactive` once per page (the first widget to get there).
pub fn mark_interactive() {
    let Some(performance) = web_sys::window().and_then(|w| w.performance()) else {
        return;
    };
    if performance.get_entries_by_name(INTERACTIVE_MARK).length() == 0 {
        let _ = performance.mark(INTERACTIVE_MARK);
    }
}

/// A reactive value behind one shared type. Leptos compiles its render code once per closure
/// type; boxed as `Arc<dyn Fn() -> T>` every text or attribute of the same `T` shares one copy,
/// which keeps the wasm within its size budget.
pub type Rx<T> = Arc<dyn Fn() -> T + Send + Sync>;

pub fn rx<T>(f: impl Fn() -> T + Send + Sync + 'static) -> Rx<T> {
    Arc::new(f)
}

/// The events a host page listens for on the widget's element (documented in
/// `frontend/embed/sg-refund.d.ts`): bubbling and composed, so they reach `<sg-refund>`, its
/// ancestors and `document`, each with a plain-object `detail`.
pub mod events {
    /// The payment is on screen: `{ session, amount, currency, remaining }`. Also fired once
    /// on `document`, with no detail, when the widget's code has loaded.
    pub const READY: &str = "sg-refund:ready";
    /// The proxy took a refund: `{ session, attemptId, refundId, amount, currency, state }`.
    pub const SUBMITTED: &str = "sg-refund:submitted";
    /// A refund reached `accepted` or `failed`: as `submitted`, plus `errorCode` when failed.
    pub const SETTLED: &str = "sg-refund:settled";
    /// A call to the proxy failed: `{ session, code, status }`.
    pub const ERROR: &str = "sg-refund:error";
    /// The token expired and nothing else renews it: the host sets a new `data-token`. No
    /// detail.
    pub const TOKEN_EXPIRED: &str = "sg-refund:token-expired";
}

/// Dispatches `name` on `target` with a plain-object `detail` of `fields`.
pub fn emit(target: &web_sys::Element, name: &str, fields: &[(&str, JsValue)]) {
    let detail = js_sys::Object::new();
    for (key, value) in fields {
        let _ = js_sys::Reflect::set(&detail, &JsValue::from_str(key), value);
    }
    dispatch(target, name, &detail);
}

/// Dispatches a bubbling, composed `CustomEvent` `name` on `target` with `detail` (`null`
/// for none).
pub fn dispatch(target: &web_sys::EventTarget, name: &str, detail: &JsValue) {
    let init = web_sys::CustomEventInit::new();
    init.set_bubbles(true);
    init.set_composed(true);
    init.set_detail(detail);
    if let Ok(event) = web_sys::CustomEvent::new_with_event_init_dict(name, &init) {
        let _ = target.dispatch_event(&event);
    }
}

/// `Some(text)` as a string, `None` as `null`.
pub fn text_or_null(text: Option<String>) -> JsValue {
    text.map(|t| JsValue::from_str(&t)).unwrap_or(JsValue::NULL)
}

/// An event about one refund, `extra` after the fields every refund event carries (amounts in
/// minor units: JS numbers are exact for every real amount, far below 2^53).
pub fn emit_refund(
    target: &web_sys::Element,
    name: &str,
    session: &str,
    refund: &shared::api::RefundView,
    extra: Option<(&str, JsValue)>,
) {
    let mut fields = vec![
        ("session", JsValue::from_str(session)),
        (
            "attemptId",
            text_or_null(refund.attempt_id.as_ref().map(|a| a.to_string())),
        ),
        (
            "refundId",
            text_or_null(refund.refund_id.as_ref().map(|r| r.to_string())),
        ),
        ("amount", JsValue::from_f64(refund.amount.amount as f64)),
        (
            "currency",
            JsValue::from_str(&refund.amount.currency.code()),
        ),
        ("state", JsValue::from_str(refund.state.as_str())),
    ];
    fields.extend(extra);
    emit(target, name, &fields);
}
