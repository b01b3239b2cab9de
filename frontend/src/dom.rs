//! Small browser helpers: unique element ids, the host's language, the performance mark.

use std::cell::Cell;
use std::sync::Arc;

use shared::Locale;

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
