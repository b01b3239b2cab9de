//! The widget's stylesheet, shipped inside the wasm and added to the page once: one request
//! fewer for the host, and no flash of unstyled widget.

const CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/widget.min.css"));
const STYLE_MARKER: &str = "data-sg-refund-style";

/// Adds the stylesheet to `<head>` unless a widget already did.
pub fn install() {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if document
        .query_selector(&format!("style[{STYLE_MARKER}]"))
        .ok()
        .flatten()
        .is_some()
    {
        return;
    }
    let Ok(style) = document.create_element("style") else {
        return;
    };
    let _ = style.set_attribute(STYLE_MARKER, "");
    style.set_text_content(Some(CSS));
    if let Some(head) = document.head() {
        // First in <head>: the widget's selectors are specific enough, and host rules that
        // deliberately theme it through custom properties still win.
        let _ = head.insert_before(&style, head.first_child().as_ref());
    }
}
