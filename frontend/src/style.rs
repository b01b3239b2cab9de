//! The widget's stylesheet, shipped inside the wasm and given to the page once: one request
//! fewer for the host, and no flash of unstyled widget.

use std::cell::Cell;

use wasm_bindgen::JsValue;

const CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/widget.min.css"));

thread_local! {
    static INSTALLED: Cell<bool> = const { Cell::new(false) };
}

/// Adds the stylesheet to the page unless it is there already: a constructed stylesheet the
/// document adopts, which a host's Content-Security-Policy does not govern (an inline
/// `<style>` needs `style-src 'unsafe-inline'`, which a policy with nonces or hashes turns
/// off). A browser without constructed stylesheets gets a `<style>` first in `<head>`.
pub fn install() {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if INSTALLED.replace(true) {
        return;
    }
    if let Ok(sheet) = web_sys::CssStyleSheet::new() {
        if sheet.replace_sync(CSS).is_ok() {
            let adopted = document.adopted_style_sheets();
            adopted.push(&sheet);
            document.set_adopted_style_sheets(&JsValue::from(adopted));
            return;
        }
    }
    let Ok(style) = document.create_element("style") else {
        return;
    };
    style.set_text_content(Some(CSS));
    if let Some(head) = document.head() {
        let _ = head.insert_before(&style, head.first_child().as_ref());
    }
}
