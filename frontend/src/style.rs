//! The widget's stylesheet, shipped inside the wasm and given to the page: one request fewer
//! for the host, and no flash of unstyled widget.

use std::cell::{Cell, RefCell};

use wasm_bindgen::JsValue;

const CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/widget.min.css"));

thread_local! {
    /// The constructed stylesheet, once made.
    static SHEET: RefCell<Option<web_sys::CssStyleSheet>> = const { RefCell::new(None) };
    /// The `<style>` fallback was added.
    static STYLE_ADDED: Cell<bool> = const { Cell::new(false) };
}

/// Gives the page the stylesheet unless it has it: a constructed stylesheet the document
/// adopts, which a host's Content-Security-Policy does not govern (an inline `<style>` needs
/// `style-src 'unsafe-inline'`, which a policy with nonces or hashes turns off). Called on
/// every mount: a host that assigns `document.adoptedStyleSheets` itself drops it, and the
/// next widget puts it back. A browser without constructed stylesheets gets a `<style>`
/// first in `<head>`.
pub fn install() {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if STYLE_ADDED.get() {
        return;
    }
    let sheet = SHEET.with_borrow_mut(|sheet| {
        if sheet.is_none() {
            *sheet = web_sys::CssStyleSheet::new()
                .ok()
                .filter(|s| s.replace_sync(CSS).is_ok());
        }
        sheet.clone()
    });
    if let Some(sheet) = sheet {
        let adopted = document.adopted_style_sheets();
        if !adopted.includes(&sheet, 0) {
            // A new array, not the document's own pushed to: older browsers froze it.
            let list = js_sys::Array::from(&adopted);
            list.push(&sheet);
            document.set_adopted_style_sheets(&JsValue::from(list));
        }
        return;
    }
    let Ok(style) = document.create_element("style") else {
        return;
    };
    style.set_text_content(Some(CSS));
    if let Some(head) = document.head() {
        let _ = head.insert_before(&style, head.first_child().as_ref());
        STYLE_ADDED.set(true);
    }
}
