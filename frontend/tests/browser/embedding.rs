//! Embedding: the token handshake with the host page, and scoped styles.

use std::cell::RefCell;
use std::rc::Rc;

use frontend::token::{TokenSource, TOKEN_EXPIRED_EVENT};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;

/// A host element on the page, its `data-token` set to `token`.
fn host_holding(token: &str) -> (web_sys::Document, web_sys::Element) {
    let document = web_sys::window().unwrap().document().unwrap();
    let host = document.create_element("div").unwrap();
    host.set_attribute("data-token", token).unwrap();
    document.body().unwrap().append_child(&host).unwrap();
    (document, host)
}

#[wasm_bindgen_test]
async fn an_expired_token_asks_the_host_and_waits_for_the_new_one() {
    let (document, host) = host_holding("old");
    // The host page: answers the bubbling event on the document by setting a new attribute.
    let asked = Rc::new(RefCell::new(0));
    let asked_in_listener = asked.clone();
    let listener = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        *asked_in_listener.borrow_mut() += 1;
        let target: web_sys::Element = event.target().unwrap().unchecked_into();
        target.set_attribute("data-token", "new").unwrap();
    });
    document
        .add_event_listener_with_callback(TOKEN_EXPIRED_EVENT, listener.as_ref().unchecked_ref())
        .unwrap();

    let token = TokenSource::attach(&host, None, None);
    assert_eq!(token.current(), "old");
    token.renewed().await;

    assert_eq!(token.current(), "new");
    assert_eq!(*asked.borrow(), 1);
    document
        .remove_event_listener_with_callback(TOKEN_EXPIRED_EVENT, listener.as_ref().unchecked_ref())
        .unwrap();
    token.detach();
    host.remove();
}

#[wasm_bindgen_test]
async fn a_host_that_never_answers_does_not_hold_the_widget_for_ever() {
    let (_, host) = host_holding("old");
    let token = TokenSource::attach(&host, None, None);
    // No listener sets a new token: the renewal gives up after its limit, keeping the old one.
    let started = js_sys::Date::now();
    token.renewed_within(200).await;
    let waited = js_sys::Date::now() - started;
    assert!(
        waited >= 150.0,
        "gave up after {waited} ms, before its limit"
    );
    assert!(waited < 2_000.0, "waited {waited} ms for a 200 ms limit");
    assert_eq!(token.current(), "old");
    // A host that answers later is still heard.
    host.set_attribute("data-token", "late").unwrap();
    frontend::api::sleep(0).await;
    assert_eq!(token.current(), "late");
    token.detach();
    host.remove();
}

/// A token held in memory (the embed script's, from `fetchToken`) is used first and renewed
/// through `set`, which a waiting renewal hears; a `data-token` the host sets later still
/// wins, being the latest word. (That nothing reaches the DOM is the e2e suite's to show.)
#[wasm_bindgen_test]
async fn a_held_token_stays_out_of_the_dom_and_is_renewed_in_memory() {
    let document = web_sys::window().unwrap().document().unwrap();
    let host = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&host).unwrap();
    let token = TokenSource::attach(&host, None, Some("held".into()));
    assert_eq!(token.current(), "held");
    // The embed script answering the renewal (`sgRefund.setToken`), once it is asked.
    let answering = token.clone();
    wasm_bindgen_futures::spawn_local(async move {
        frontend::api::sleep(10).await;
        answering.set("renewed".into());
    });
    let started = js_sys::Date::now();
    token.renewed_within(5_000).await;
    assert!(
        js_sys::Date::now() - started < 2_000.0,
        "the renewal waited for its limit"
    );
    assert_eq!(token.current(), "renewed");
    host.set_attribute("data-token", "from-host").unwrap();
    frontend::api::sleep(0).await;
    assert_eq!(token.current(), "from-host");
    token.detach();
    host.remove();
}

#[wasm_bindgen_test]
fn every_style_rule_is_scoped_under_the_widget_root() {
    let css = include_str!("../../src/widget.css");
    // Strip comments, then look at each selector list outside @media wrappers.
    let mut text = String::new();
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        let end = rest[start..].find("*/").unwrap() + start + 2;
        rest = &rest[end..];
    }
    text.push_str(rest);
    let mut depth_selectors = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '{' => {
                depth_selectors.push(current.trim().to_owned());
                current.clear();
            }
            '}' | ';' => current.clear(),
            _ => current.push(c),
        }
    }
    for selector_list in depth_selectors {
        if selector_list.starts_with('@') || selector_list.is_empty() {
            continue;
        }
        for selector in selector_list.split(',') {
            // `appearance.theme`'s rules narrow which widgets match by an ancestor attribute;
            // what they style is still the widget root.
            // The root class itself, not one that merely begins the same (`.sgr-row`).
            let at_root = |s: &str| {
                s.strip_prefix(".sgr")
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ':', '[', '.']))
            };
            let selector = selector.trim();
            let scoped = at_root(selector)
                || selector
                    .strip_prefix("[data-sgr-theme=")
                    .and_then(|rest| rest.split_once("] "))
                    .is_some_and(|(_, subject)| at_root(subject));
            assert!(scoped, "unscoped selector: {selector:?}");
        }
    }
}

#[wasm_bindgen_test]
fn a_widget_without_a_stream_rereads_fast_only_while_a_refund_has_just_set_off() {
    use frontend::rereads::Rereads;
    let mut reads = Rereads::new(0.0, 0.0);
    // Idle: once a minute.
    assert!(!reads.due(0, 5_000.0));
    assert!(reads.due(0, 60_000.0));
    assert!(!reads.due(0, 65_000.0));
    // A refund sets off at 70 s: every 5 s (give or take a timer's lateness) for a minute.
    assert!(reads.due(1, 70_000.0));
    assert!(!reads.due(1, 72_000.0));
    assert!(reads.due(1, 74_800.0));
    assert!(reads.due(1, 80_000.0));
    assert!(reads.due(1, 125_000.0));
    // Still on its way after the minute: back to once a minute.
    assert!(!reads.due(1, 131_000.0));
    assert!(!reads.due(1, 180_000.0));
    assert!(reads.due(1, 185_000.0));
    // A second refund sets off: fast again.
    assert!(reads.due(2, 190_000.0));
    assert!(reads.due(2, 195_000.0));
    // All settled: idle.
    assert!(!reads.due(0, 200_000.0));
    assert!(reads.due(0, 255_000.0));
}

/// The page hears once that the widget's code loaded: a `CustomEvent` on `document` whose
/// `detail` is `null`, as documented (a plain `Event` had no `detail` at all).
#[wasm_bindgen_test]
fn the_page_hears_the_code_loaded_with_a_null_detail() {
    let document = web_sys::window().unwrap().document().unwrap();
    let heard: Rc<RefCell<Vec<JsValue>>> = Rc::default();
    let heard_in_listener = heard.clone();
    let listener = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        let detail = js_sys::Reflect::get(&event, &JsValue::from_str("detail")).unwrap();
        heard_in_listener.borrow_mut().push(detail);
    });
    document
        .add_event_listener_with_callback(
            frontend::embed::READY_EVENT,
            listener.as_ref().unchecked_ref(),
        )
        .unwrap();
    frontend::boot();
    document
        .remove_event_listener_with_callback(
            frontend::embed::READY_EVENT,
            listener.as_ref().unchecked_ref(),
        )
        .unwrap();
    let heard = heard.borrow();
    assert_eq!(heard.len(), 1);
    assert!(heard[0].is_null(), "{:?}", heard[0]);
}

/// A host that assigns `document.adoptedStyleSheets` itself (a theme loader, say) drops the
/// widget's stylesheet with its own; the next widget mounted puts it back.
#[wasm_bindgen_test]
fn a_host_that_resets_the_adopted_stylesheets_gets_the_widgets_back_on_the_next_mount() {
    let document = web_sys::window().unwrap().document().unwrap();
    frontend::style::install();
    let adopted = document.adopted_style_sheets();
    assert_eq!(adopted.length(), 1, "the widget's stylesheet is adopted");
    document.set_adopted_style_sheets(&js_sys::Array::new());
    let host: web_sys::HtmlElement = document.create_element("div").unwrap().unchecked_into();
    document.body().unwrap().append_child(&host).unwrap();
    frontend::mount(&host, &js_sys::Object::new());
    assert_eq!(document.adopted_style_sheets().length(), 1, "put back");
    // Mounting again adds no second copy.
    frontend::mount(&host, &js_sys::Object::new());
    assert_eq!(document.adopted_style_sheets().length(), 1);
    frontend::unmount(&host);
    host.remove();
}

/// The stylesheet works where `light-dark()` does not (Firefox before 120, Safari before 17.5,
/// Chrome before 123): a custom property holding it is not dropped there but invalid where
/// used, and every colour, border and focus ring of the widget would vanish. So it appears
/// only inside the `@supports` block that tests for it, over a light palette of plain colours.
/// And the focus ring is taken away only where `:focus-visible` is known to give it back.
#[wasm_bindgen_test]
fn the_stylesheet_keeps_its_colours_and_focus_ring_in_browsers_without_light_dark() {
    // Its rules, without the comments (which name light-dark() too).
    let mut css = String::new();
    let mut rest = include_str!("../../src/widget.css");
    while let Some(start) = rest.find("/*") {
        css.push_str(&rest[..start]);
        rest = rest[start..]
            .split_once("*/")
            .map_or("", |(_, after)| after);
    }
    css.push_str(rest);
    let guard = "@supports (color: light-dark(red, red)) {";
    let start = css.find(guard).expect("the light-dark() block");
    let mut depth = 0;
    let mut end = start + guard.len();
    for (i, c) in css[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = start + i;
                    break;
                }
            }
            _ => {}
        }
    }
    let outside = format!("{}{}", &css[..start], &css[end..]);
    assert!(
        !outside.contains("light-dark("),
        "light-dark() outside its @supports block"
    );
    assert!(css[start..end].contains("light-dark("));
    for variable in ["--_accent:", "--_bg:", "--_fg:", "--_border:", "--_focus:"] {
        assert!(outside.contains(variable), "{variable} has no plain colour");
    }
    assert!(!outside.contains(":focus { outline: none"));
    assert!(outside.contains(":focus:not(:focus-visible) { outline: none; }"));
}
